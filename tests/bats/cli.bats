#!/usr/bin/env bats
# cli.bats - the command line: help, version, every refusal, --check-config.
#
# A refusal is exit status 2 with exactly one line on stderr that starts
# with "provfs: " and names the problem, and nothing left mounted.  The
# backing directory here is mode 700 so that the "reachable by other users"
# warning does not add a line to stderr.

load helpers

setup() {
	common_setup
	chmod 700 "$BACKING"
	CONF=$TMP/provfs.conf
}

teardown() {
	common_teardown
}

# Run provfs with a store in the test directory, stdout and stderr apart.
provfs_run() {
	run_split "$PROVFS" -o "store=$STORE" "$@"
}

# The last run_split was a clean refusal: status 2, one "provfs: " line on
# stderr matching $1 (an extended regex), nothing mounted.
assert_refused() {
	local pattern=$1
	if [ "$status" -ne 2 ]; then
		echo "exit status $status, expected 2; stderr: $stderr" >&2
		return 1
	fi
	if [ "${#stderr_lines[@]}" -ne 1 ]; then
		printf 'expected one line on stderr, got %d:\n%s\n' "${#stderr_lines[@]}" "$stderr" >&2
		return 1
	fi
	assert_match "${stderr_lines[0]}" "^provfs: "
	assert_match "${stderr_lines[0]}" "$pattern"
	assert_nothing_mounted
}

write_conf() {
	printf '%s\n' "$@" >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
}

# ------------------------------------------------------------ help, version

@test "--help prints usage on stdout and exits 0" {
	run_split "$PROVFS" --help
	[ "$status" -eq 0 ]
	assert_match "$stdout" "^usage: provfs "
	assert_match "$stdout" "BACKING_DIR MOUNTPOINT"
	assert_match "$stdout" "--check-config"
	[ -z "$stderr" ]
}

@test "-h is --help" {
	run_split "$PROVFS" -h
	[ "$status" -eq 0 ]
	assert_match "$stdout" "^usage: provfs "
}

@test "--version prints the version and exits 0" {
	run_split "$PROVFS" --version
	[ "$status" -eq 0 ]
	assert_match "$stdout" "^provfs [0-9]+\.[0-9]+\.[0-9]+"
	[ -z "$stderr" ]
	local expected
	expected=$(sed -n "s/^ *version : '\(.*\)',/\1/p" "$PROVFS_SOURCE_ROOT/meson.build" | head -n 1)
	if [ -n "$expected" ]; then
		assert_match "$stdout" "^provfs $expected"
	fi
}

# ------------------------------------------------------------ arguments

@test "no arguments: refused, names the missing BACKING_DIR and MOUNTPOINT" {
	run_split "$PROVFS"
	assert_refused "missing BACKING_DIR"
}

@test "one argument: refused, names the missing MOUNTPOINT" {
	provfs_run "$BACKING"
	assert_refused "missing MOUNTPOINT"
}

@test "BACKING_DIR that does not exist: refused" {
	provfs_run "$TMP/absent" "$MNT"
	assert_refused "backing directory '$TMP/absent': No such file or directory"
}

@test "BACKING_DIR that is a regular file: refused" {
	echo x >"$TMP/file"
	provfs_run "$TMP/file" "$MNT"
	assert_refused "backing directory '$TMP/file' is not a directory"
}

@test "MOUNTPOINT that does not exist: refused" {
	provfs_run "$BACKING" "$TMP/absent"
	assert_refused "mount point '$TMP/absent': No such file or directory"
}

@test "MOUNTPOINT that is a regular file: refused" {
	echo x >"$TMP/file"
	provfs_run "$BACKING" "$TMP/file"
	assert_refused "mount point '$TMP/file' is not a directory"
}

@test "busy MOUNTPOINT (provfs already mounted there): refused, first mount intact" {
	echo before >"$BACKING/f"
	mount_provfs
	mkdir "$TMP/other"
	chmod 700 "$TMP/other"
	run_split "$PROVFS" -o "store=$TMP/store/second.db" "$TMP/other" "$MNT"
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "${stderr_lines[0]}" "^provfs: mount point '$MNT' is busy"
	# Still exactly one mount there, and it still serves the first tree.
	[ "$(mounts_under "$MNT" | wc -l)" -eq 1 ]
	[ "$(cat "$MNT/f")" = before ]
	[ "$(provfs_pids "$TMP/other")" = "" ]
	unmount_provfs
	assert_nothing_mounted
}

@test "MOUNTPOINT a directory inside another provfs mount: mounted there, not taken for busy" {
	mount_provfs
	mkdir "$MNT/sub"
	mkdir "$TMP/other"
	chmod 700 "$TMP/other"
	echo inner >"$TMP/other/f"
	MOUNT_BACKING=$TMP/other MOUNT_POINT=$MNT/sub mount_provfs -o "store=$TMP/store/second.db"
	[ "$(cat "$MNT/sub/f")" = inner ]
	[ "$(mounts_under "$MNT" | wc -l)" -eq 2 ]
	unmount_provfs "$MNT/sub"
	[ -d "$BACKING/sub" ]
	unmount_provfs
	assert_nothing_mounted
}

@test "MOUNTPOINT inside BACKING_DIR: refused as nested" {
	mkdir "$BACKING/sub"
	provfs_run "$BACKING" "$BACKING/sub"
	assert_refused "mount point '$BACKING/sub' and backing directory '$BACKING' are nested"
}

@test "BACKING_DIR inside MOUNTPOINT: refused as nested" {
	mkdir "$MNT/sub"
	chmod 700 "$MNT/sub"
	provfs_run "$MNT/sub" "$MNT"
	assert_refused "mount point '$MNT' and backing directory '$MNT/sub' are nested"
}

@test "nested through a symlink or .. is still nested" {
	mkdir "$BACKING/sub"
	ln -s "$BACKING" "$TMP/link"
	provfs_run "$TMP/link" "$MNT/../backing/sub"
	assert_refused "are nested"
}

@test "unknown option --bogus: refused, names it" {
	provfs_run --bogus "$BACKING" "$MNT"
	assert_refused "unknown option '--bogus'"
}

@test "-o timeout: anything but seconds from 0 to 86400 is refused, naming the value" {
	for value in abc -1 86401 nan inf 1e3x ""; do
		provfs_run -o "timeout=$value" "$BACKING" "$MNT"
		assert_refused "-o timeout=$value: not a number of seconds from 0 to 86400"
	done
	[ ! -e "$STORE" ]
}

@test "a third path argument: refused" {
	provfs_run "$BACKING" "$MNT" "$TMP"
	assert_refused "'$TMP'"
}

@test "unknown -o FUSE option: refused with one provfs: line naming it, no store left" {
	provfs_run -o bogusopt "$BACKING" "$MNT"
	assert_refused "bogusopt"
	# A refused start should not have created the store either.
	[ ! -e "$STORE" ]
}

@test "store inside BACKING_DIR: refused" {
	run_split "$PROVFS" -o "store=$BACKING/provfs.db" "$BACKING" "$MNT"
	assert_refused "store '$BACKING/provfs.db' is inside the mounted tree"
	[ ! -e "$BACKING/provfs.db" ]
}

@test "store in a not yet existing directory inside BACKING_DIR: refused" {
	run_split "$PROVFS" -o "store=$BACKING/a/b/provfs.db" "$BACKING" "$MNT"
	assert_refused "is inside the mounted tree"
	[ ! -e "$BACKING/a" ]
}

@test "store inside MOUNTPOINT: refused" {
	run_split "$PROVFS" -o "store=$MNT/provfs.db" "$BACKING" "$MNT"
	assert_refused "store '$MNT/provfs.db' is inside the mounted tree; put it outside '$MNT'$"
}

@test "store given as a relative path: refused" {
	run_split "$PROVFS" -o "store=relative.db" "$BACKING" "$MNT"
	assert_refused "store path 'relative.db' must be absolute"
}

@test "running as a non-root user: refused" {
	ensure_test_users
	chmod 755 "$BACKING"
	run_split as_user provfs-u1 "$(user_reachable "$PROVFS")" -o "store=$TMP/u1.db" "$BACKING" "$MNT"
	assert_refused "must run as root"
}

@test "a good start exits 0 with nothing on stderr (backing not reachable by others)" {
	echo x >"$BACKING/f"
	run_split "$PROVFS" -o "store=$STORE" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	wait_mounted "$MNT"
	[ "$(cat "$MNT/f")" = x ]
	unmount_provfs
	assert_nothing_mounted
}

@test "a backing directory reachable by others: mounts, warns with one provfs: warning line" {
	chmod 755 "$BACKING"
	run_split "$PROVFS" -o "store=$STORE" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "${stderr_lines[0]}" "^provfs: warning: backing directory '$BACKING' is reachable by other users"
	wait_mounted "$MNT"
	unmount_provfs
	assert_nothing_mounted
}

@test "mounting in place does not warn even when the directory is 755" {
	chmod 755 "$BACKING"
	run_split "$PROVFS" -o "store=$STORE" "$BACKING" "$BACKING"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	wait_mounted "$BACKING"
	unmount_provfs "$BACKING"
	assert_nothing_mounted
}

# ------------------------------------------------------------ config file

@test "config: explicit file that does not exist: refused" {
	provfs_run -o "config=$TMP/absent.conf" "$BACKING" "$MNT"
	assert_refused "cannot read config '$TMP/absent.conf': No such file or directory"
}

@test "config: unreadable file: refused" {
	write_conf '[store]'
	chmod 000 "$CONF"
	# Root reads anything; take away the capabilities that let it.
	run_split setpriv --bounding-set=-dac_override,-dac_read_search -- \
		"$PROVFS" -o "store=$STORE" -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "cannot read config '$CONF': Permission denied"
}

@test "config: a directory instead of a file: refused" {
	mkdir "$TMP/conf.d"
	provfs_run -o "config=$TMP/conf.d" "$BACKING" "$MNT"
	assert_refused "config '$TMP/conf.d' is not a regular file"
}

@test "config: not owned by root: refused" {
	ensure_test_users
	write_conf '[store]'
	chown provfs-u1 "$CONF"
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "config '$CONF' must be owned by root"
}

@test "config: group-writable: refused" {
	write_conf '[store]'
	chmod 664 "$CONF"
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "config '$CONF' is writable by group or others"
}

@test "config: other-writable: refused" {
	write_conf '[store]'
	chmod 646 "$CONF"
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "config '$CONF' is writable by group or others"
}

@test "config: malformed line: refused, names file and line" {
	write_conf '; a comment' '[store]' '' 'this line is not ini'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:4: "
}

@test "config: unknown section: refused, names file, line and section" {
	write_conf '[store]' 'path = /var/tmp/provfs-test.db' '[bogus]' 'x = 1'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:3: unknown section \[bogus\]"
}

@test "config: unknown section without keys is refused too" {
	write_conf '[store]' '[bogus]'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:2: .*bogus"
}

@test "config: unknown key: refused, names file, line, key and section" {
	write_conf '[store]' 'path = /var/tmp/provfs-test.db' '' 'x = 1'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:4: unknown key 'x' in \[store\]$"
}

@test "config: a default_clearance that is no level names its line; levels without the default one name none" {
	write_conf '[classification]' 'levels = low high' 'default_clearance = zzz'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:3: default_clearance 'zzz' is not one of the levels$"
	# The built-in default_clearance (internal), no line of the file.
	write_conf '[classification]' 'levels = low high'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF: default_clearance 'internal' is not one of the levels$"
}

@test "config: key before any section: refused with its line" {
	write_conf 'path = /x.db'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:1: key 'path' stands before any \[section\]"
}

@test "config: unknown level in [paths]: refused with the rule's line" {
	write_conf '[paths]' 'a/** = restricted' 'secret/** = topsecret' 'b/* = public'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:3: unknown level 'topsecret'"
}

@test "config: [paths] level defined by [classification] later in the file is fine" {
	write_conf '[paths]' 'x/** = top' '[classification]' 'levels = low top' 'default_clearance = low'
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	assert_match "$stdout" $'\nx/\\*\\* = top\n'
}

@test "config: job:-only grant: refused with its line" {
	write_conf '[clearance]' 'internal = user:root' 'confidential = job:nightly'
	provfs_run -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "^provfs: $CONF:3: .*job:"
}

@test "config: bad values are refused with their line" {
	local bad
	for bad in 'no_write_down = maybe' 'propagation = everywhere' 'levels = a b a'; do
		write_conf '[classification]' "$bad"
		run_split "$PROVFS" --check-config "$CONF"
		assert_refused "^provfs: $CONF:2: "
	done
	write_conf '[openlineage]' 'transport = carrier-pigeon'
	run_split "$PROVFS" --check-config "$CONF"
	assert_refused "^provfs: $CONF:2: transport takes http, file or none"
	write_conf '[openlineage]' 'timeout_ms = 0'
	run_split "$PROVFS" --check-config "$CONF"
	assert_refused "^provfs: $CONF:2: timeout_ms"
	write_conf '[clearance]' 'internal = exe:/bin/sh@xxh3:XYZ'
	run_split "$PROVFS" --check-config "$CONF"
	assert_refused "^provfs: $CONF:2: .*xxh3"
	write_conf '[store]' 'path = relative.db'
	run_split "$PROVFS" --check-config "$CONF"
	assert_refused "^provfs: $CONF:2: store path 'relative.db' must be absolute"
	for bad in abc 1023 -5 '' 67108865 99999999999999999999999 '2000 files'; do
		write_conf '[record]' "remembered_files = $bad"
		run_split "$PROVFS" --check-config "$CONF"
		assert_refused "^provfs: $CONF:2: remembered_files takes a number of files from 1024 to 67108864, not '$bad'$"
	done
}

@test "config: remembered_files is 65536 unless given; the bounds are accepted" {
	write_conf '[record]'
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 0 ]
	assert_match "$stdout" $'\nremembered_files = 65536\n'
	local good
	for good in 1024 67108864; do
		write_conf '[record]' "remembered_files = $good"
		run_split "$PROVFS" --check-config "$CONF"
		[ "$status" -eq 0 ]
		assert_match "$stdout" $'\nremembered_files = '"$good"$'\n'
	done
}

# ------------------------------------------------------------ --check-config

full_conf() {
	write_conf \
		'[store]' \
		'path = /var/tmp/provfs-check.db' \
		'reader_group = adm' \
		'' \
		'[record]' \
		'exclude = *.tmp build/**' \
		'redact = password token' \
		'remembered_files = 300000' \
		'' \
		'[classification]' \
		'levels = low mid high' \
		'default_clearance = mid' \
		'no_write_down = yes' \
		'admin_group = root' \
		'propagation = run' \
		'' \
		'[paths]' \
		'secret/** = high' \
		'pub/* = low' \
		'' \
		'[clearance]' \
		'high = user:nobody exe:/usr/bin/python3@xxh3:0123456789abcdef0123456789abcdef' \
		'mid = group:staff job:nightly' \
		'' \
		'[openlineage]' \
		'transport = http' \
		'url = https://ol.example/api' \
		'api_key = s3cret' \
		'timeout_ms = 2500' \
		'namespace = ns' \
		'dataset_namespace = files' \
		"ca_file = $TMP/ca.pem"
	# ca_file must name a file that exists (it is checked when read).
	touch "$TMP/ca.pem"
}

@test "--check-config FILE prints the effective configuration and exits 0" {
	full_conf
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	assert_match "$stdout" "effective configuration from $CONF"
	local expected
	for expected in 'path = /var/tmp/provfs-check.db' 'reader_group = adm' \
		'exclude = \*\.tmp build/\*\*' 'redact = password token' 'remembered_files = 300000' \
		'levels = low mid high' 'default_clearance = mid' 'no_write_down = true' \
		'admin_group = root' 'propagation = run' 'secret/\*\* = high' 'pub/\* = low' \
		'high = user:nobody exe:/usr/bin/python3@xxh3:0123456789abcdef0123456789abcdef' \
		'mid = group:staff job:nightly' 'transport = http' 'url = https://ol.example/api' \
		'timeout_ms = 2500' 'namespace = ns' 'dataset_namespace = files'; do
		assert_match "$stdout" $'(^|\n)'"$expected"$'(\n|$)'
	done
	# The API key is not echoed.
	[[ $stdout != *s3cret* ]]
	assert_nothing_mounted
}

@test "--check-config prints every key it accepted (ca_file too)" {
	full_conf
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 0 ]
	assert_match "$stdout" $'\nca_file = '"$TMP"$'/ca.pem(\n|$)'
}

@test "--check-config output is itself a valid config with the same meaning" {
	full_conf
	sed -i '/^api_key/d' "$CONF"
	"$PROVFS" --check-config "$CONF" >"$TMP/round.conf"
	chmod 644 "$TMP/round.conf"
	run_split "$PROVFS" --check-config "$TMP/round.conf"
	[ "$status" -eq 0 ]
	diff <(sed 1d "$TMP/round.conf") <(echo "$stdout" | sed 1d)
}

@test "--check-config -o store= shows the overriding store" {
	full_conf
	run_split "$PROVFS" --check-config "$CONF" -o store=/var/tmp/other.db
	[ "$status" -eq 0 ]
	assert_match "$stdout" $'\npath = /var/tmp/other.db\n'
}

@test "--check-config on a bad file exits 2 with one line naming file and line" {
	write_conf '[store]' 'path = /x.db' 'colour = blue'
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_equal "${stderr_lines[0]}" "provfs: $CONF:3: unknown key 'colour' in [store]"
}

@test "--check-config on a missing file exits 2" {
	run_split "$PROVFS" --check-config "$TMP/absent.conf"
	assert_refused "cannot read config '$TMP/absent.conf'"
	[ -z "$stdout" ]
}

@test "--check-config with two files is refused" {
	write_conf '[store]'
	run_split "$PROVFS" --check-config "$CONF" "$CONF"
	assert_refused "at most one FILE"
}

@test "--check-config -o config=FILE checks that file" {
	write_conf '[store]' 'path = /var/tmp/via-o.db'
	run_split "$PROVFS" --check-config -o "config=$CONF"
	[ "$status" -eq 0 ]
	assert_match "$stdout" $'\npath = /var/tmp/via-o.db\n'
}

@test "mounting with a valid config uses it (store path from [store])" {
	write_conf '[store]' "path = $TMP/store/from-conf.db"
	echo x >"$BACKING/f"
	run_split "$PROVFS" -o "config=$CONF" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	wait_mounted "$MNT"
	cat "$MNT/f" >/dev/null
	[ -e "$TMP/store/from-conf.db" ]
	unmount_provfs
	assert_nothing_mounted
}

@test "a config naming a store inside BACKING_DIR is refused at mount" {
	write_conf '[store]' "path = $BACKING/s.db"
	run_split "$PROVFS" -o "config=$CONF" "$BACKING" "$MNT"
	assert_refused "is inside the mounted tree"
}

# ------------------------------------------------------------ modes

@test "-o norecord mounts and creates no store" {
	echo x >"$BACKING/f"
	run_split "$PROVFS" -o norecord -o "store=$STORE" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	wait_mounted "$MNT"
	[ "$(cat "$MNT/f")" = x ]
	echo y >"$MNT/g"
	unmount_provfs
	[ ! -e "$STORE" ]
	assert_nothing_mounted
}

@test "-o nopolicy mounts" {
	run_split "$PROVFS" -o nopolicy -o "store=$STORE" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	wait_mounted "$MNT"
	echo y >"$MNT/g"
	[ "$(cat "$BACKING/g")" = y ]
	unmount_provfs
	assert_nothing_mounted
}

# Wait (at most 5 s) for a foreground provfs started with & to exit; its
# exit status in $status.
wait_foreground() {
	local daemon=$1
	if ! wait_pids_gone "$daemon"; then
		kill -KILL "$daemon" 2>/dev/null || true
		echo "provfs -f (pid $daemon) did not exit" >&2
		return 1
	fi
	status=0
	wait "$daemon" || status=$?
}

@test "-f stays in the foreground until unmounted, then exits 0" {
	"$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" >"$TMP/fg.out" 2>"$TMP/fg.err" 3>&- &
	local daemon=$!
	echo "$daemon" >>"$TMP/.background"
	wait_mounted "$MNT"
	# Still our child: it did not daemonize.
	pid_running "$daemon"
	[ "$(provfs_pids "$MNT")" = "$daemon" ]
	fusermount3 -u "$MNT"
	wait_foreground "$daemon"
	[ "$status" -eq 0 ]
	assert_nothing_mounted
}

@test "-f: SIGTERM unmounts and exits 0; SIGHUP reloads and stays mounted" {
	local daemon
	# (Not SIGINT: a shell starts background jobs with SIGINT ignored, and
	# libfuse keeps an ignored signal ignored.)
	"$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" >"$TMP/fg.out" 2>"$TMP/fg.err" 3>&- &
	daemon=$!
	echo "$daemon" >>"$TMP/.background"
	wait_mounted "$MNT"
	# SIGHUP reloads provfs.conf (../shared/INTERFACES.md): the mount stays.
	kill -HUP "$daemon"
	sleep 0.5
	is_mounted "$MNT"
	pid_running "$daemon"
	kill -TERM "$daemon"
	wait_foreground "$daemon"
	[ "$status" -eq 0 ]
	assert_nothing_mounted
}

@test "-f: SIGTERM with files held open detaches the mount, exits 0, and logs no error" {
	local daemon holder
	echo data >"$BACKING/held.txt"
	"$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" >"$TMP/fg.out" 2>"$TMP/fg.err" 3>&- &
	daemon=$!
	echo "$daemon" >>"$TMP/.background"
	wait_mounted "$MNT"
	# Files open to read and to write (through kernel passthrough, where
	# the kernel offers it: each holds a backing id of the connection).
	sleep 30 <"$MNT/held.txt" 3>>"$MNT/held.txt" &
	holder=$!
	echo "$holder" >>"$TMP/.background"
	sleep 0.5
	kill -TERM "$daemon"
	wait_foreground "$daemon"
	kill "$holder" 2>/dev/null || true
	cat "$TMP/fg.err"
	[ "$status" -eq 0 ]
	run grep -c "error\|cannot" "$TMP/fg.err"
	[ "$output" = 0 ]
	assert_nothing_mounted
}

@test "-o ro passes to FUSE: a read-only mount" {
	echo x >"$BACKING/f"
	run_split "$PROVFS" -o ro -o "store=$STORE" "$BACKING" "$MNT"
	[ "$status" -eq 0 ]
	wait_mounted "$MNT"
	[ "$(cat "$MNT/f")" = x ]
	run sh -c "echo y > '$MNT/f'"
	[ "$status" -ne 0 ]
	[[ $output == *"Read-only file system"* ]]
	unmount_provfs
	assert_nothing_mounted
}
