#!/usr/bin/env bats
# scale.bats - a tree of any size with a bounded number of descriptors.
#
# The daemon names the inodes the kernel knows by file handle and keeps only
# a bounded cache of open descriptors (fs/passthrough.c), so a job through
# the mount never sees EMFILE or ENFILE because of the daemon's own
# descriptors, and every open is still recorded.  The daemon here runs under
# a hard limit it cannot raise (no CAP_SYS_RESOURCE in its bounding set).

bats_require_minimum_version 1.5.0

load helpers
load recorder_helpers

setup() {
	common_setup
	chmod 700 "$BACKING"
}

teardown() {
	common_teardown
}

# mount_limited LIMIT [provfs args...]: mount $BACKING on $MNT with a
# descriptor limit of LIMIT that the daemon cannot raise.
mount_limited() {
	local limit=$1 status=0
	shift
	setpriv --bounding-set -sys_resource prlimit --nofile="$limit:$limit" \
		"$PROVFS" -o "store=$STORE" "$@" "$BACKING" "$MNT" 2>"$TMP/mount.err" || status=$?
	if [ "$status" -ne 0 ]; then
		echo "provfs exited $status:" >&2
		cat "$TMP/mount.err" >&2
		return 1
	fi
	wait_mounted "$MNT" || return 1
	MOUNTED_PID=$(provfs_pids "$MNT" | head -n 1)
	# The limit holds: the daemon could not raise it.
	grep -E "^Max open files +$limit +$limit " "/proc/$MOUNTED_PID/limits"
}

# make_tree DIR DIRS FILES: DIRS directories of FILES small files each, natively.
make_tree() {
	"$PYTHON" - "$@" <<-'EOF'
	import os, sys
	root, dirs, files = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
	for d in range(dirs):
	    path = os.path.join(root, "d%03d" % d)
	    os.makedirs(path)
	    for f in range(files):
	        with open(os.path.join(path, "f%05d" % f), "w") as out:
	            out.write("%d/%d\n" % (d, f))
	EOF
}

@test "40,000 files read and 12,000 written under a limit of 4,096 descriptors: no error, every open recorded" {
	make_tree "$BACKING/tree" 40 1000
	mount_limited 4096
	run -0 "$PYTHON" - "$MNT" <<-'EOF'
	import os, sys
	mnt = sys.argv[1]
	read = 0
	for d in sorted(os.listdir(os.path.join(mnt, "tree"))):
	    base = os.path.join(mnt, "tree", d)
	    for f in sorted(os.listdir(base)):
	        with open(os.path.join(base, f)) as src:
	            if src.read() != "%d/%d\n" % (int(d[1:]), int(f[1:])):
	                sys.exit("wrong content in %s/%s" % (d, f))
	        read += 1
	written = 0
	for d in range(12):
	    base = os.path.join(mnt, "out", "o%02d" % d)
	    os.makedirs(base)
	    for f in range(1000):
	        with open(os.path.join(base, "w%04d" % f), "w") as out:
	            out.write("%d\n" % f)
	        written += 1
	print(read, written)
	EOF
	[ "$output" = "40000 12000" ]
	# The kernel still knows many more inodes than the daemon may open.
	[ "$(ls "/proc/$MOUNTED_PID/fd" | wc -l)" -le 4096 ]
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE 'tree/%' AND open_flags & 3 = 0" 40000
	assert_sql "SELECT count(DISTINCT path) FROM accesses WHERE path LIKE 'tree/%'" 40000
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE 'out/%' AND written_version_id IS NOT NULL" 12000
	[ "$(find "$BACKING/out" -type f | wc -l)" = 12000 ]
}

@test "a file reopened by handle after the cache let it go is recorded under its name, also after a move" {
	# Connectable handles (they name the file's directory) came with Linux 6.13.
	local version
	version=$(uname -r | sed -E 's/^([0-9]+)\.([0-9]+).*/\1 \2/')
	set -- $version
	if [ "$1" -lt 6 ] || { [ "$1" -eq 6 ] && [ "$2" -lt 13 ]; }; then
		skip "Linux $(uname -r) has no connectable file handles"
	fi
	make_tree "$BACKING/tree" 20 100
	mount_limited 256
	# Every inode known, most descriptors let go, one moved to another directory.
	find "$MNT/tree" -type f | wc -l
	mkdir "$MNT/moved"
	mv "$MNT/tree/d000/f00000" "$MNT/moved/first"
	mv "$MNT/tree/d001" "$MNT/moved/d001"
	# The backing dentries may go too: the handle must find the path again.
	sync
	echo 2 >/proc/sys/vm/drop_caches
	cat "$MNT/moved/first" "$MNT/moved/d001/f00007" "$MNT/tree/d019/f00099" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'moved/first'" 1
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'moved/d001/f00007'" 1
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'tree/d019/f00099'" 1
}

@test "creating 6,000 files under a limit of 1,024 descriptors: every create succeeds or leaves nothing" {
	mount_limited 1024 -o norecord
	run -0 "$PYTHON" - "$MNT" <<-'EOF'
	import os, sys
	base = os.path.join(sys.argv[1], "many")
	os.mkdir(base)
	failed = 0
	for i in range(6000):
	    path = os.path.join(base, "c%05d" % i)
	    try:
	        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
	        os.close(fd)
	    except OSError as e:
	        failed += 1
	        if os.path.lexists(path):
	            sys.exit("create of %s failed (%s) but the file exists" % (path, e))
	print(failed)
	EOF
	[ "$output" = 0 ]
	[ "$(ls "$BACKING/many" | wc -l)" = 6000 ]
}

@test "a backing filesystem without file handles: said once at mount, and it works as before" {
	# A FUSE mount has no file handles unless its server exports them.
	local inner=$TMP/inner innermnt=$TMP/innermnt
	mkdir -p "$inner" "$innermnt"
	"$PROVFS" -o norecord "$inner" "$innermnt" 2>/dev/null
	wait_mounted "$innermnt"
	echo content >"$innermnt/file"
	MOUNT_BACKING=$innermnt mount_provfs -o norecord
	[ "$(grep -c 'cannot name files by handle' "$TMP/mount.err")" = 1 ]
	[ "$(cat "$MNT/file")" = content ]
	echo more >>"$MNT/file"
	[ "$(cat "$inner/file")" = "$(printf 'content\nmore')" ]
}

@test "scripts/bench-million runs (smoke: a tiny tree, no timing asserted)" {
	run -0 env PROVFS="$PROVFS" "$PROVFS_SOURCE_ROOT/scripts/bench-million" --smoke -d "$TMP/bench"
	[[ "$output" == *"300 files in 3 directories"* ]]
	for variant in native passthrough_ll provfs provfs-norecord; do
		[[ "$output" == *"| $variant | "* ]]
	done
	# Every variant read every file.
	[ "$(awk -F, 'NR > 1 && $4 != 0' "$TMP/bench/results.csv" | wc -l)" = 0 ]
	[ -z "$(grep -s " $TMP/bench" /proc/mounts)" ]
	# passthrough_ll with too few descriptors for the tree: the directories
	# it could not list are one line, not one line each.
	run -0 prlimit --nofile=60:60 env PROVFS="$PROVFS" \
		"$PROVFS_SOURCE_ROOT/scripts/bench-million" --smoke -d "$TMP/bench" -V native,passthrough_ll
	[[ "$output" =~ "bench-million: passthrough_ll: "(listed [0-9]+ files of 300; |reading: )[1-3]" directories could not be" ]]
	[[ "$output" != *$'\nfind: '* ]]
	! grep -qs " $TMP/bench" /proc/mounts
}

@test "a daemon left without a free descriptor: close() and the next opens still succeed" {
	make_tree "$BACKING/tree" 4 100
	mount_limited 1024
	# Every inode known: the descriptor cache holds as many as it may.
	cat "$MNT"/tree/*/* >/dev/null
	run "$PYTHON" - "$MNT" "$MOUNTED_PID" <<-'EOF'
	import os, subprocess, sys
	mnt, pid = sys.argv[1], sys.argv[2]
	fd = os.open(os.path.join(mnt, "written"), os.O_CREAT | os.O_WRONLY, 0o644)
	os.write(fd, b"data\n")
	# Leave the daemon no descriptor to open: its limit becomes its lowest free number.
	used = {int(n) for n in os.listdir("/proc/%s/fd" % pid)}
	free = min(set(range(len(used) + 1)) - used)
	subprocess.run(["prlimit", "--pid", pid, "--nofile=%d:%d" % (free, free)], check=True)
	os.close(fd)  # flush: may only report the backing file's own errors
	with open(os.path.join(mnt, "tree", "d003", "f00099")) as f:
	    assert f.read() == "3/99\n"
	with open(os.path.join(mnt, "again"), "w") as f:
	    f.write("more\n")
	print("ok")
	EOF
	# Which step failed, when one does (the traceback).
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
	[ "$(cat "$BACKING/written")" = data ]
}

@test "without connectable handles (Linux < 6.13), a file reopened after its dentry went keeps its path: every open recorded, path rules enforced" {
	# Handles that name the inode alone reopen an evicted file as a
	# DISCONNECTED dentry ("/" in /proc/self/fd), which observers cannot
	# name; the daemon reopens it by its last name instead (name hints).
	make_tree "$BACKING/tree" 20 100
	make_tree "$BACKING/secret" 2 10
	local conf=$TMP/provfs.conf
	printf '%s\n' "[classification]" "levels = public internal confidential" \
		"default_clearance = internal" "[paths]" "secret/** = confidential" >"$conf"
	# A descriptor cache of 64 for 2,020 files (a quarter of the limit).
	PROVFS_TEST_HANDLES=unconnectable mount_limited 256 -o "config=$conf"
	run -0 "$PYTHON" - "$MNT" "$BACKING" <<-'EOF'
	import os, resource, sys
	mnt, backing = sys.argv[1], sys.argv[2]
	resource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))
	# O_PATH descriptors keep the mount's entries (no OPEN reaches the
	# daemon): the kernel keeps every node while the daemon's cache closes
	# all but 64 backing descriptors.
	held = {}
	# The secret files first: their descriptors are closed by the cache too.
	for top in ("secret", "tree"):
	    for d in sorted(os.listdir(os.path.join(mnt, top))):
	        for f in sorted(os.listdir(os.path.join(mnt, top, d))):
	            rel = "%s/%s/%s" % (top, d, f)
	            held[rel] = (os.open(os.path.join(mnt, rel), os.O_PATH), "%d/%d\n" % (int(d[1:]), int(f[1:])))
	# Renamed through the mount: its latest name is the one to record.
	os.rename(os.path.join(mnt, "tree/d000/f00000"), os.path.join(mnt, "tree/d001/moved"))
	held["tree/d001/moved"] = held.pop("tree/d000/f00000")
	# A directory renamed: its files' paths change, and the label policy
	# reads every path afresh (its path cache is dropped).
	os.rename(os.path.join(mnt, "tree/d019"), os.path.join(mnt, "tree/renamed"))
	for rel in [rel for rel in held if rel.startswith("tree/d019/")]:
	    held["tree/renamed/" + rel[len("tree/d019/"):]] = held.pop(rel)
	# Replaced outside the mount: its last name now names another file,
	# which the daemon must not take for it (read by handle, unnamed).
	os.rename(os.path.join(backing, "tree/d003/f00001"), os.path.join(backing, "tree/d003/old"))
	with open(os.path.join(backing, "tree/d003/f00001"), "w") as impostor:
	    impostor.write("impostor\n")
	held["replaced"] = held.pop("tree/d003/f00001")
	# The backing filesystem's dentries go (the nodes stay known).
	os.sync()
	with open("/proc/sys/vm/drop_caches", "w") as drop:
	    drop.write("2\n")
	read = refused = 0
	for rel, (fd, content) in sorted(held.items()):
	    # Through the descriptor: an OPEN on the known node, no LOOKUP first.
	    try:
	        with open("/proc/self/fd/%d" % fd) as src:
	            if src.read() != content:
	                sys.exit("wrong content in " + rel)
	            read += 1
	    except PermissionError:
	        refused += 1
	print(read, refused)
	EOF
	[ "$output" = "2000 20" ]
	stop_provfs
	# Every open recorded, each under its own path, exactly once.
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE 'tree/%' AND path != 'tree/d003/old' AND open_flags & 3 = 0" 1999
	assert_sql "SELECT count(DISTINCT path) FROM accesses WHERE path LIKE 'tree/%' AND path != 'tree/d003/old'" 1999
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'tree/d003/f00001'" 0
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'tree/d001/moved'" 1
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE 'tree/renamed/f%'" 100
	assert_sql "SELECT count(*) FROM accesses WHERE path NOT LIKE 'tree/%'" 0
	# Every refusal by the path rule, named.
	assert_sql "SELECT count(DISTINCT path) FROM denials WHERE path LIKE 'secret/d00_/f000__' AND label = 'confidential'" 20
}
