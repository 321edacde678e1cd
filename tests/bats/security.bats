#!/usr/bin/env bats
# security.bats - the daemon runs as root with allow_other: it must never let
# a caller do what the caller's own credentials forbid, never act on a
# symlink's target, and never expose its store through the mount.

load helpers

setup() {
	common_setup
	ensure_test_users
	OUTSIDE=$TMP/outside
	mkdir -p "$OUTSIDE"
	echo secret >"$OUTSIDE/target"
	chmod 644 "$OUTSIDE/target"
	touch -d '2001-01-01 00:00:00' "$OUTSIDE/target"
	ln -s "$OUTSIDE/target" "$BACKING/link"
	mount_provfs
}

teardown() {
	common_teardown
}

@test "lchown through the mount changes the symlink, never its target outside" {
	chown -h 4242:4242 "$MNT/link"
	[ "$(stat -c %u:%g "$BACKING/link")" = 4242:4242 ]
	[ "$(stat -c %u:%g "$OUTSIDE/target")" = 0:0 ]
}

@test "touch -h through the mount sets the symlink's times, never its target's" {
	touch -h -d '2020-02-02 00:00:00' "$MNT/link"
	[ "$(stat -c %Y "$OUTSIDE/target")" = "$(date -d '2001-01-01 00:00:00' +%s)" ]
	[ "$(stat -c %Y "$BACKING/link")" = "$(date -d '2020-02-02 00:00:00' +%s)" ]
}

@test "a symlink is shown as a symlink; following it is the caller's business" {
	[ "$(readlink "$MNT/link")" = "$OUTSIDE/target" ]
	[ -L "$MNT/link" ]
	# An unprivileged caller following it gets what its own rights give.
	chmod 600 "$OUTSIDE/target"
	run as_user provfs-u1 cat "$MNT/link"
	[ "$status" -ne 0 ]
	[[ "$output" == *"Permission denied"* ]]
}

@test "'..' from inside the mount never leaves it" {
	# The kernel resolves '..' itself; the daemon refuses such names anyway.
	mkdir "$MNT/d"
	[ "$(cd "$MNT/d/.." && pwd -P)" = "$MNT" ]
	[ "$(stat -c %i "$MNT/d/..")" = "$(stat -c %i "$MNT")" ]
}

@test "a write by a user without CAP_FSETID drops suid, sgid and capabilities as on ext4" {
	for dir in "$NATIVE" "$MNT"; do
		for f in written truncated reopened; do
			echo data >"$dir/$f"
			chmod 6777 "$dir/$f"
		done
		setcap cap_net_raw+ep "$dir/written"
		as_user_sh provfs-u1 "echo more >>'$dir/written'; truncate -s 2 '$dir/truncated'; : >'$dir/reopened'"
	done
	for f in written truncated reopened; do
		[ "$(stat -c %A "$MNT/$f")" = "$(stat -c %A "$NATIVE/$f")" ]
		[ "$(stat -c %A "$MNT/$f")" = "-rwxrwxrwx" ]
	done
	[ -z "$(getcap "$MNT/written")" ]
	[ -z "$(getcap "$BACKING/written")" ]
}

@test "root writing keeps suid and sgid, as on ext4" {
	echo data >"$MNT/kept"
	chmod 6755 "$MNT/kept"
	echo more >>"$MNT/kept"
	[ "$(stat -c %A "$MNT/kept")" = "-rwsr-sr-x" ]
}

@test "root writing drops file capabilities but keeps suid and sgid, as on ext4 (appends and small new files alike)" {
	for dir in "$NATIVE" "$MNT"; do
		echo data >"$dir/capable"
		chmod 6755 "$dir/capable"
		setcap cap_net_raw+ep "$dir/capable"
		echo more >>"$dir/capable"
		# A run of small new files: the daemon serves the writes of the
		# later ones (fs/small_writers.c), each given capabilities between
		# its create and its write.
		for i in 1 2 3 4 5 6; do
			exec {fd}>"$dir/new$i"
			setcap cap_net_raw+ep "$dir/new$i"
			echo data >&"$fd"
			exec {fd}>&-
		done
	done
	for f in capable new1 new2 new3 new4 new5 new6; do
		[ -z "$(getcap "$NATIVE/$f")" ]
		[ -z "$(getcap "$MNT/$f")" ] || { echo "$f kept its capabilities"; false; }
		[ -z "$(getcap "$BACKING/$f")" ]
		[ "$(cat "$MNT/$f")" = "$(cat "$NATIVE/$f")" ]
	done
	[ "$(stat -c %A "$MNT/capable")" = "$(stat -c %A "$NATIVE/capable")" ]
	[ "$(stat -c %A "$MNT/capable")" = "-rwsr-sr-x" ]
}

@test "a user cannot chown a file to someone else, or chmod a file it does not own" {
	chmod 1777 "$MNT"
	as_user_sh provfs-u1 "echo mine >'$MNT/mine'"
	run as_user chown provfs-u2 "$MNT/mine"
	[ "$status" -ne 0 ]
	run as_user provfs-u2 chmod 777 "$MNT/mine"
	[ "$status" -ne 0 ]
	[ "$(stat -c %U "$BACKING/mine")" = provfs-u1 ]
	[ "$(stat -c %a "$BACKING/mine")" = 644 ]
}

@test "the store refuses to live inside the mounted tree" {
	unmount_provfs
	run "$PROVFS" -o store="$BACKING/.provfs/store.db" "$BACKING" "$MNT"
	[ "$status" -eq 2 ]
	[[ "$output" == *"inside the mounted tree"* ]]
	if is_mounted "$MNT"; then
		echo "still mounted"
		false
	fi
	[ ! -e "$BACKING/.provfs" ]
}

@test "the store is readable by root only when no reader_group is set" {
	echo x >"$MNT/f"
	unmount_provfs
	[ "$(stat -c %a "$STORE")" = 600 ]
	run as_user provfs-u1 cat "$STORE"
	[ "$status" -ne 0 ]
}

@test "chown(f, -1, -1) by someone else is refused and leaves setuid alone, as on ext4" {
	for dir in "$NATIVE" "$MNT"; do
		cp /bin/true "$dir/prog"
		chmod 4755 "$dir/prog"
		run as_user provfs-u1 "$PYTHON" -c "import os, sys; os.chown(sys.argv[1], -1, -1)" "$dir/prog"
		[ "$status" -ne 0 ]
		[[ "$output" == *"Operation not permitted"* ]]
		[ "$(stat -c %A "$dir/prog")" = "-rwsr-xr-x" ]
		# Without privileges to drop, chown(f, -1, -1) is anyone's no-op.
		echo plain >"$dir/plain"
		run as_user provfs-u1 "$PYTHON" -c "import os, sys; os.chown(sys.argv[1], -1, -1)" "$dir/plain"
		[ "$status" -eq 0 ]
	done
}

@test "trusted.* attribute names are listed to root only, as on ext4" {
	for dir in "$NATIVE" "$MNT"; do
		echo x >"$dir/f"
		setfattr -n trusted.secret -v 1 "$dir/f"
		setfattr -n user.visible -v 1 "$dir/f"
		[[ "$(getfattr -m - "$dir/f")" == *trusted.secret* ]]
		run as_user provfs-u1 getfattr -m - "$dir/f"
		[ "$status" -eq 0 ]
		[[ "$output" == *user.visible* ]]
		[[ "$output" != *trusted.secret* ]]
	done
}

# For every setxattr/removexattr of NAME in the trace: the last setfsuid
# (other than the -1 query) of its thread before it, and the last capset.
credentials_of_xattr_calls() {
	awk -v name="\"$1\"" '
		$2 ~ /^setfsuid\(/ && $2 !~ /^setfsuid\((-1|4294967295)\)/ {
			fsuid[$1] = $2
		}
		$2 ~ /^capset\(/ { caps[$1] = ($0 ~ /effective=0,/) ? "no-caps" : "caps" }
		($2 ~ /^(setxattr|removexattr)\(/) && index($0, name) {
			print fsuid[$1], (caps[$1] ? caps[$1] : "caps")
		}' "$TMP/trace"
}

@test "every xattr change by a user runs with the user's credentials and without the daemon's capabilities" {
	local uid
	uid=$(id -u provfs-u1)
	echo x >"$MNT/owned"
	chown provfs-u1 "$MNT/owned"
	# The daemon threads' system calls on xattrs, with the setfsuid and capset
	# calls before them.
	trace_daemon setfsuid,capset,setxattr,removexattr
	as_user provfs-u1 setfattr -n user.note -v 1 "$MNT/owned"
	as_user provfs-u1 setfattr -x user.note "$MNT/owned"
	# Names the kernel does not check for a FUSE filesystem (system.*)
	# are decided by the backing filesystem, for the caller.
	run as_user provfs-u1 setfattr -n system.nfs4_acl -v 1 "$MNT/owned"
	[ "$status" -ne 0 ]
	untrace_daemon
	run credentials_of_xattr_calls user.note
	[ "${#lines[@]}" -eq 2 ]
	[ "${lines[0]}" = "setfsuid($uid) no-caps" ]
	[ "${lines[1]}" = "setfsuid($uid) no-caps" ]
	run credentials_of_xattr_calls system.nfs4_acl
	for line in "${lines[@]}"; do
		[ "$line" = "setfsuid($uid) no-caps" ]
	done
	run getfattr -n user.note "$BACKING/owned"
	[ "$status" -ne 0 ]
}

@test "root's xattr changes keep root's privileges (trusted.*), as on ext4" {
	echo x >"$MNT/f"
	setfattr -n trusted.t -v 1 "$MNT/f"
	[ "$(getfattr --only-values -n trusted.t "$BACKING/f")" = 1 ]
	run as_user provfs-u1 setfattr -n trusted.u -v 1 "$MNT/f"
	[ "$status" -ne 0 ]
}

@test "a store directory writable by others, with a planted -wal symlink: refused, the target untouched" {
	unmount_provfs
	local shared=$TMP/shared
	mkdir -p "$shared"
	chmod 1777 "$shared"
	echo private >"$TMP/target"
	chmod 600 "$TMP/target"
	ln -s "$TMP/target" "$shared/provfs.db-wal"
	ln -s "$TMP/target" "$shared/provfs.db-shm"
	chmod 700 "$BACKING" # no warning about it
	run_split "$PROVFS" -o "store=$shared/provfs.db" "$BACKING" "$MNT"
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "${stderr_lines[0]}" == "provfs: "*"$shared"*"writable by group or others"* ]]
	if is_mounted "$MNT"; then
		echo "still mounted"
		false
	fi
	[ "$(stat -c '%U:%G %a' "$TMP/target")" = "root:root 600" ]
	[ "$(cat "$TMP/target")" = private ]
}

@test "a store directory owned by another user: refused with one line, exit 2" {
	unmount_provfs
	ensure_test_users
	local theirs=$TMP/theirs
	mkdir -p "$theirs"
	chown provfs-u1 "$theirs"
	chmod 755 "$theirs"
	chmod 700 "$BACKING" # no warning about it
	run_split "$PROVFS" -o "store=$theirs/provfs.db" "$BACKING" "$MNT"
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "${stderr_lines[0]}" == "provfs: "*"$theirs"*"owned by root"* ]]
	if is_mounted "$MNT"; then
		echo "still mounted"
		false
	fi
	[ ! -e "$theirs/provfs.db" ]
}

@test "groups set with setgroups() count at once, for a create right after it" {
	# The same thread creates as root, then drops to a user who is in the
	# directory's group only by the setgroups() it just made.
	mkdir "$MNT/shared"
	chgrp provfs-g "$MNT/shared"
	chmod 2770 "$MNT/shared"
	run "$PYTHON" - "$MNT" "$(id -u provfs-u2)" "$(getent group provfs-g | cut -d: -f3)" <<-'EOF'
	import os, sys
	mnt, uid, gid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	open(os.path.join(mnt, "warm"), "w").close()
	os.setgroups([gid])
	os.setresgid(uid, uid, uid)
	os.setresuid(uid, uid, uid)
	os.mkdir(os.path.join(mnt, "shared", "d"))
	open(os.path.join(mnt, "shared", "f"), "w").close()
	EOF
	[ "$status" -eq 0 ]
	[ "$(stat -c %U:%G "$BACKING/shared/d")" = provfs-u2:provfs-g ]
}

@test "groups changed by setgroups() alone (CAP_SETGID, same uid and gid) count at once, for a create right after it" {
	# The cache of groups is keyed on thread, uid and gid: none of them
	# changes here.  The thread creates once (its groups are cached), then
	# joins the directory's group and creates there at once.
	mkdir "$MNT/own" "$MNT/shared"
	chown provfs-u2 "$MNT/own"
	chgrp provfs-g "$MNT/shared"
	chmod 2770 "$MNT/shared"
	run setpriv --reuid provfs-u2 --regid provfs-u2 --clear-groups \
		--inh-caps +setgid --ambient-caps +setgid \
		"$PYTHON" - "$MNT" "$(getent group provfs-g | cut -d: -f3)" <<-'EOF'
	import os, sys
	mnt, gid = sys.argv[1], int(sys.argv[2])
	open(os.path.join(mnt, "own", "warm"), "w").close()
	os.setgroups([gid])
	os.mkdir(os.path.join(mnt, "shared", "d"))
	open(os.path.join(mnt, "shared", "f"), "w").close()
	EOF
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$(stat -c %U:%G "$BACKING/shared/d")" = provfs-u2:provfs-g ]
	[ "$(stat -c %U:%G "$BACKING/shared/f")" = provfs-u2:provfs-g ]
}

@test "a reader_group member queries the store after the daemon has unmounted" {
	# The store is in WAL mode: a reader may open it only while its -wal
	# and -shm files exist, and may not create them itself.
	unmount_provfs
	printf '%s\n' '[store]' 'reader_group = provfs-g' >"$TMP/reader.conf"
	chmod 644 "$TMP/reader.conf"
	mount_provfs -o "config=$TMP/reader.conf"
	echo x >"$MNT/f"
	unmount_provfs
	local query
	query=$(user_reachable "${PROVFS_BUILD_ROOT:-$PROVFS_SOURCE_ROOT/build}/provfs-query")
	run as_user provfs-u1 "$query" --store "$STORE" stats
	echo "$output"
	[ "$status" -eq 0 ]
	run as_user provfs-u2 "$query" --store "$STORE" stats
	[ "$status" -eq 2 ]
}

# ---------------------------------------------------------------- script: grants

# Remount with a restricted directory and a script: grant for provfs-u3's
# job: $TMP/jobs/job.py (root's, outside the mount), which prints the file
# it is given, and may also run by its shebang, "#!/usr/bin/python3 -I".
mount_script_grant() {
	unmount_provfs
	mkdir -p "$BACKING/secret" "$TMP/jobs"
	chmod 755 "$BACKING/secret" "$TMP/jobs"
	echo "income,0.93" >"$BACKING/secret/scores.csv"
	chmod 644 "$BACKING/secret/scores.csv"
	JOB=$TMP/jobs/job.py
	printf '%s\n' "#!$PYTHON -I" 'import sys' 'print(open(sys.argv[1]).read().strip())' >"$JOB"
	chmod 755 "$JOB"
	mount_restricted_grant "script:$JOB@xxh3:$(xxh3_of "$JOB") user:provfs-u3"
}

# The pin of a file as a grant takes it (xxhsum -H2's hash).
xxh3_of() {
	local hash
	hash=$(xxhsum -H2 "$1")
	echo "${hash%% *}"
}

# Mount with secret/** restricted and one grant for it ($1: its conditions);
# QUERY is provfs-query.
mount_restricted_grant() {
	CONF=$TMP/provfs.conf
	{
		echo "[classification]"
		echo "levels = public internal confidential restricted"
		echo "[paths]"
		echo "secret/** = restricted"
		echo "[clearance]"
		echo "restricted = $1"
	} >"$CONF"
	chmod 644 "$CONF"
	mount_provfs -o "config=$CONF"
	QUERY=${PROVFS_BUILD_ROOT:-$PROVFS_SOURCE_ROOT/build}/provfs-query
}

# The denials, explained (after the daemon has stored them: unmounts), in
# $output with the lines provfs-query wraps joined again.
# home and site: provfs-u3's home for these tests and its Python user site
# directory in it (made), where a usercustomize.py runs at startup.
user_site_of_u3() {
	home=$TMP/home-u3
	mkdir -p "$home"
	site=$(HOME=$home "$PYTHON" -c 'import site; print(site.getusersitepackages())')
	mkdir -p "$site"
}

denials() {
	unmount_provfs
	run "$QUERY" --config "$CONF" --store "$STORE" denials
	echo "$output"
	[ "$status" -eq 0 ]
	output=$(tr -s ' \n' ' ' <<<"$output")
}

@test "a script: grant holds for python3 -I SCRIPT; python3 SCRIPT runs the user's site-packages first and is refused" {
	mount_script_grant
	# The user's own site directory, with code that reads under the grant.
	local home site
	user_site_of_u3
	cat >"$site/usercustomize.py" <<-EOF
	try:
	    print("usercustomize read", open("$MNT/secret/scores.csv").read().strip())
	except OSError as error:
	    print("usercustomize refused:", error.strerror)
	EOF
	chown -R provfs-u3: "$home"
	# The job as it must run: no site directory of the user's.
	run as_user provfs-u3 env HOME="$home" "$PYTHON" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	# By its shebang: the kernel runs [/usr/bin/python3, -I, JOB, ...].
	run as_user provfs-u3 env HOME="$home" "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	# PYTHONNOUSERSITE keeps the site directory shut as -s does.
	run as_user provfs-u3 env HOME="$home" PYTHONNOUSERSITE=1 "$PYTHON" "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	# Without: usercustomize.py runs first, and neither it nor the script reads.
	run as_user provfs-u3 env HOME="$home" "$PYTHON" "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"usercustomize refused: Permission denied"* ]]
	[[ $output == *"PermissionError"* ]]
	[[ $output != *income* ]]
	denials
	[[ $output == *"(python without -I or -s runs the user's site-packages first: run python3 -I SCRIPT)"* ]]
}

@test "a script: grant does not follow the script into a program that is not a root-owned interpreter, nor into a virtual environment" {
	mount_script_grant
	# cat given the script first, then the restricted file (as vim's :e would).
	run as_user provfs-u3 cat "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[[ $output != *income* ]]
	# The user's own copy of the interpreter is the user's program.
	mkdir -p "$TMP/u3bin"
	chmod 755 "$TMP/u3bin"
	install -o provfs-u3 -m 755 "$(readlink -f "$PYTHON")" "$TMP/u3bin/python3"
	run as_user provfs-u3 "$TMP/u3bin/python3" -s "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[[ $output != *income* ]]
	# The user's virtual environment: its python3 is a symlink to the
	# system's, and Python runs its site-packages' .pth files first, -I or not.
	"$PYTHON" -m venv --without-pip "$TMP/venv"
	local pth
	pth=$("$TMP/venv/bin/python3" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/read.pth
	echo "import sys; print('pth read', open('$MNT/secret/scores.csv').read().strip()) if 1 else 0" >"$pth"
	chown -R provfs-u3: "$TMP/venv"
	run as_user provfs-u3 "$TMP/venv/bin/python3" "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output != *income* ]]
	run as_user provfs-u3 "$TMP/venv/bin/python3" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output != *income* ]]
	denials
	[[ $output == *"(executable is not a script interpreter)"* ]]
	[[ $output == *"(interpreter not owned by root)"* ]]
	[[ $output == *"(python named outside its own directory may start a virtual environment's site-packages first: run /usr/bin/python3 -I SCRIPT)"* ]]
}

@test "a script: grant holds for /bin/python3 on a merged /usr and for python3 found on a PATH of system directories; any other PATH directory before it is refused" {
	mount_script_grant
	# /bin -> usr/bin: argv[0] /bin/python3 is the executed python's own directory.
	if [ -L /bin ] && [ "$(readlink -f /bin/python3)" = "$(readlink -f "$PYTHON")" ]; then
		run as_user provfs-u3 /bin/python3 -I "$JOB" "$MNT/secret/scores.csv"
		[ "$status" -eq 0 ]
		[ "$output" = "income,0.93" ]
	fi
	local python
	python=$(basename "$PYTHON")
	run as_user provfs-u3 env PATH="/usr/bin:/bin" \
		"$python" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	# A directory of root's that is not a system directory, searched first:
	# refused without a look (the daemon walks no directory a process names).
	mkdir -p "$TMP/rootbin" "$TMP/staffbin"
	chmod 755 "$TMP/rootbin"
	run as_user provfs-u3 env PATH="$TMP/rootbin:$(dirname "$PYTHON")" \
		"$python" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[[ $output != *income* ]]
	# Group-writable, as Debian's /usr/local/bin (2775 root:staff) was: any
	# member could put a python3 there that leads to a virtual environment.
	chgrp provfs-g "$TMP/staffbin"
	chmod 2775 "$TMP/staffbin"
	run as_user provfs-u3 env PATH="$TMP/staffbin:$(dirname "$PYTHON")" \
		"$python" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[[ $output != *income* ]]
	denials
	[[ $output == *"(python named outside its own directory may start a virtual environment's site-packages first: run /usr/bin/python3 -I SCRIPT)"* ]]
}

@test "a script: grant is refused in a private mount namespace, where the user bind-mounts a script of theirs over the granted one" {
	[ "$(cat /proc/sys/user/max_user_namespaces 2>/dev/null || echo 0)" -gt 0 ] ||
		skip "user namespaces are disabled"
	mount_script_grant
	mkdir -p "$TMP/u3"
	printf '%s\n' 'import sys' 'print("evil read", open(sys.argv[1]).read().strip())' >"$TMP/u3/evil.py"
	chown -R provfs-u3: "$TMP/u3"
	as_user provfs-u3 unshare -rm true 2>/dev/null ||
		skip "provfs-u3 may not make a user namespace (unshare -rm)"
	# The daemon hashes the granted path in its own view: root's job.py.
	# The process runs the user's evil.py under that same name.
	run as_user provfs-u3 unshare -rm sh -c \
		"mount --bind '$TMP/u3/evil.py' '$JOB' && exec '$PYTHON' -I '$JOB' '$MNT/secret/scores.csv'"
	echo "$output"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[[ $output != *income* ]]
	# The job itself, in the daemon's namespace, still holds.
	run as_user provfs-u3 "$PYTHON" -I "$JOB" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	denials
	[[ $output == *"(runs in another mount or user namespace"* ]]
}

# /proc/PID/cmdline and /proc/PID/environ are the process's own memory: code
# that runs in it before its first open through the mount can rewrite them.

@test "a script: grant is not fooled by argv rewritten in place before the first open (usercustomize turns -W ignore into -I)" {
	mount_script_grant
	local home site
	user_site_of_u3
	# The argv bytes live at arg_start (field 48 of /proc/self/stat):
	# "-W\0ignore\0" becomes "-I\0-Bsuuu\0", the same length.
	cat >"$site/usercustomize.py" <<-EOF
	stat = open("/proc/self/stat").read()
	start, end = (int(f) for f in stat[stat.rindex(")") + 2:].split()[45:47])
	with open("/proc/self/mem", "r+b") as mem:
	    mem.seek(start)
	    argv = mem.read(end - start)
	    mem.seek(start)
	    mem.write(argv.replace(b"-W\0ignore\0", b"-I\0-Bsuuu\0", 1))
	try:
	    print("usercustomize read", open("$MNT/secret/scores.csv").read().strip())
	except OSError as error:
	    print("usercustomize refused:", error.strerror)
	EOF
	chown -R provfs-u3: "$home"
	run as_user provfs-u3 env HOME="$home" "$PYTHON" -W ignore "$JOB" "$MNT/secret/scores.csv"
	echo "$output"
	[[ $output == *"usercustomize refused: Permission denied"* ]]
	[[ $output != *income* ]]
	[ "$status" -ne 0 ]
	denials
	[[ $output == *"(argv changed after exec)"* ]]
}

@test "an exe: grant is not fooled by LD_PRELOAD wiped from the environment by the preloaded object" {
	command -v cc >/dev/null || skip "no C compiler"
	unmount_provfs
	mkdir -p "$BACKING/secret" "$TMP/tool" "$TMP/evil"
	chmod 755 "$BACKING/secret" "$TMP/tool" "$TMP/evil"
	echo "income,0.93" >"$BACKING/secret/scores.csv"
	chmod 644 "$BACKING/secret/scores.csv"
	# The granted tool: a root-owned copy of cat.
	install -m 755 "$(readlink -f /bin/cat)" "$TMP/tool/granted-cat"
	# The user's object: its constructor blanks LD_PRELOAD in the environ
	# block (same length) and reads the restricted file itself.
	cat >"$TMP/evil/evil.c" <<-EOF
	#include <fcntl.h>
	#include <stdio.h>
	#include <string.h>
	#include <unistd.h>
	extern char **environ;
	__attribute__((constructor)) static void
	evil(void)
	{
		char line[256];
		ssize_t n;
		int fd;

		for (char **e = environ; *e; e++)
			if (strncmp(*e, "LD_PRELOAD=", 11) == 0)
				memset(*e, 'X', strlen(*e));
		fd = open("$MNT/secret/scores.csv", O_RDONLY);
		if (fd < 0) {
			perror("evil refused");
			return;
		}
		n = read(fd, line, sizeof(line) - 1);
		line[n > 0 ? n : 0] = '\0';
		printf("evil read %s", line);
		fflush(stdout);
	}
	EOF
	cc -shared -fPIC -o "$TMP/evil/evil.so" "$TMP/evil/evil.c"
	chown -R provfs-u3: "$TMP/evil"
	mount_restricted_grant "exe:$TMP/tool/granted-cat@xxh3:$(xxh3_of "$TMP/tool/granted-cat") user:provfs-u3"
	# The grant as it is meant.
	run as_user provfs-u3 "$TMP/tool/granted-cat" "$MNT/secret/scores.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	# The injection, hidden before the first open.
	run as_user provfs-u3 env LD_PRELOAD="$TMP/evil/evil.so" "$TMP/tool/granted-cat" "$MNT/secret/scores.csv"
	echo "$output"
	[[ $output == *"evil refused"* ]]
	[[ $output != *income* ]]
	denials
	# Which reason depends on who came first: the daemon's read at exec
	# saw LD_PRELOAD (or at least the environment before the wipe), or
	# the constructor ran before it, and the object is still mapped.
	[[ $output == *"(loader environment (LD_PRELOAD ...))"* ||
		$output == *"(environment changed after exec)"* ||
		$output == *"(code mapped from a file not root's (LD_PRELOAD, LD_LIBRARY_PATH ...))"* ]]
}

@test "one user holding open files cannot take every descriptor of the daemon from the others" {
	# Every open file holds a descriptor of the daemon.  With a limit of
	# 1,024 the daemon gives one uid a quarter of them.
	unmount_provfs
	(ulimit -n 1024 && mount_provfs)
	echo shared >"$MNT/f"
	chmod 1777 "$MNT"
	mkdir -m 1777 "$TMP/shared"
	# provfs-u3 holds the file open as often as it may...
	start_background as_user provfs-u3 "$PYTHON" -c 'import os, sys, time
fds = []
try:
    while len(fds) < 2000:
        fds.append(os.open(sys.argv[1], os.O_RDONLY))
except OSError as e:
    print(len(fds), e.strerror, file=open(sys.argv[2], "w"))
time.sleep(60)' "$MNT/f" "$TMP/shared/held"
	wait_for_file "$TMP/shared/held"
	sleep 0.2
	cat "$TMP/shared/held"
	[[ $(cat "$TMP/shared/held") == "256 Too many open files" ]]
	# ...and the others still open and create.
	run as_user provfs-u1 cat "$MNT/f"
	[ "$status" -eq 0 ]
	[ "$output" = shared ]
	run as_user_sh provfs-u1 "echo mine >'$MNT/mine'"
	[ "$status" -eq 0 ]
	run cat "$MNT/mine"
	[ "$output" = mine ]
	# Its handles closed, provfs-u3 opens again.
	cleanup_background
	for _ in $(seq 50); do
		as_user provfs-u3 cat "$MNT/f" >/dev/null 2>&1 && break
		sleep 0.1
	done
	run as_user provfs-u3 cat "$MNT/f"
	[ "$status" -eq 0 ]
}
