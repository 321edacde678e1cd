#!/usr/bin/env bats
# passthrough_io.bats - kernel FUSE passthrough of file data (Linux 6.9+):
# the kernel reads and writes the backing file itself, and lineage, hashes
# and privilege dropping stay as they are without it.
#
# Evidence that the data bypassed the daemon, without strace: the daemon's
# own I/O counters (/proc/PID/io rchar + wchar count every byte it reads or
# writes, the /dev/fuse traffic included).  A file's data through the
# daemon moves at least its size twice; passed through, it moves none.

load helpers
load recorder_helpers

SIZE=$((8 * 1024 * 1024))

setup() {
	common_setup
	chmod 700 "$BACKING"
	[ -e /dev/fuse ] || skip "no /dev/fuse"
}

teardown() {
	common_teardown
}

# Does this kernel pass data through?  The mount log says so when it does not.
require_kernel_passthrough() {
	if grep -q "passthrough unavailable" "$TMP/mount.err"; then
		skip "the kernel offers no FUSE passthrough"
	fi
}

# PATH has exactly one version, written through provfs, hashed right.
assert_single_written_version() {
	assert_sql "SELECT count(*), origin, hash_state, hash FROM versions
	            WHERE file_id = ($(file_id_sql "$1"))" \
		"1|written|hashed|$(xxh "$BACKING/$1")"
}

@test "passthrough: neither reads nor writes pass through the daemon" {
	head -c "$SIZE" /dev/urandom >"$BACKING/data"
	mount_provfs -o norecord
	require_kernel_passthrough
	run daemon_io_while cat "$MNT/data"
	[ "$status" -eq 0 ]
	[ "$output" -lt $((SIZE / 8)) ]
	# Writers too (their writers are reported by fanotify, write_passthrough.bats).
	run daemon_io_while dd if=/dev/zero of="$MNT/written" bs=1M count=8 status=none
	[ "$output" -lt $((SIZE / 8)) ]
	[ "$(stat -c %s "$BACKING/written")" -eq "$SIZE" ]
	cmp "$MNT/data" "$BACKING/data"
}

@test "-o nopassthrough: the same data goes through the daemon" {
	head -c "$SIZE" /dev/urandom >"$BACKING/data"
	mount_provfs -o norecord,nopassthrough
	run daemon_io_while cat "$MNT/data"
	[ "$output" -ge "$SIZE" ]
	run daemon_io_while dd if=/dev/zero of="$MNT/written" bs=1M count=8 status=none
	[ "$output" -ge "$SIZE" ]
	cmp "$MNT/data" "$BACKING/data"
}

@test "a file with suid, sgid or capabilities is not passed through" {
	for f in suid sgid caps; do
		head -c "$SIZE" /dev/urandom >"$BACKING/$f"
	done
	chmod 4755 "$BACKING/suid"
	chmod 2755 "$BACKING/sgid"
	setcap cap_net_raw+ep "$BACKING/caps"
	head -c "$SIZE" /dev/urandom >"$BACKING/plain"
	mount_provfs -o norecord
	require_kernel_passthrough
	for f in suid sgid caps; do
		run daemon_io_while cat "$MNT/$f"
		[ "$output" -ge "$SIZE" ]
	done
	run daemon_io_while cat "$MNT/plain"
	[ "$output" -lt $((SIZE / 8)) ]
}

@test "-o writeback_cache: passthrough is off, said once at mount, data through the daemon" {
	head -c "$SIZE" /dev/urandom >"$BACKING/data"
	mount_provfs -o norecord,writeback_cache
	[ "$(grep -c "passthrough is off" "$TMP/mount.err")" -eq 1 ]
	run daemon_io_while cat "$MNT/data"
	[ "$output" -ge "$SIZE" ]
}

@test "versions written through passthrough are hashed right, after the last writer closes" {
	mount_provfs
	require_kernel_passthrough
	head -c 3000000 /dev/urandom >"$MNT/seq"
	head -c 100000 /dev/urandom >"$MNT/patched"
	# Two writers at once; the version is made when the second closes.
	"$PYTHON" - "$MNT/patched" <<-'EOF'
	import os, sys
	a = os.open(sys.argv[1], os.O_RDWR)
	b = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
	os.pwrite(a, b"middle", 5000)
	os.close(a)
	os.write(b, b"tail")
	os.close(b)
	EOF
	stop_provfs
	assert_single_written_version seq
	assert_sql "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql patched))" 2
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql patched))" \
		"hashed|$(xxh "$BACKING/patched")"
	# Both writers of the second version are recorded as its writers.
	assert_sql "SELECT count(*) FROM accesses WHERE written_version_id = \
	            ($(latest_version_sql patched))" 2
}

@test "byte counts of a passthrough handle, reader or writer, are unknown (NULL), never zero" {
	head -c 100000 /dev/urandom >"$BACKING/in"
	mount_provfs
	require_kernel_passthrough
	cp "$MNT/in" "$MNT/out"
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE file_id IN (($(file_id_sql in)), \
	            ($(file_id_sql out))) AND closed_ns IS NOT NULL" 2
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = ($(file_id_sql in)) AND \
	            (bytes_read IS NOT NULL OR bytes_written IS NOT NULL OR read_calls IS NOT NULL \
	             OR write_calls IS NOT NULL)" 0
	assert_sql "SELECT count(*), count(bytes_written), count(write_calls) FROM accesses
	            WHERE file_id = ($(file_id_sql out))" "1|0|0"
	# The copy is still an input of the version it produced.
	assert_sql "SELECT count(*) FROM accesses WHERE read_version_id IS NOT NULL AND \
	            file_id = ($(file_id_sql in))" 1
}

@test "-o nopassthrough: byte counts are the bytes the daemon served" {
	head -c 100000 /dev/urandom >"$BACKING/in"
	mount_provfs -o nopassthrough
	cp "$MNT/in" "$MNT/out"
	stop_provfs
	assert_sql "SELECT bytes_read FROM accesses WHERE file_id = ($(file_id_sql in))" 100000
	assert_sql "SELECT bytes_written FROM accesses WHERE file_id = ($(file_id_sql out))" 100000
}

@test "mmap writes through a passthrough handle make a new version" {
	mount_provfs
	require_kernel_passthrough
	"$PYTHON" -c 'import sys; open(sys.argv[1], "wb").write(b"." * 8192)' "$MNT/mapped"
	# A reader holds the file open through passthrough, so the read-write
	# open that maps it is passed through too (with direct I/O; alone it
	# would stay with the daemon): its stores reach the backing file
	# without a request.
	exec 4<"$MNT/mapped"
	"$PYTHON" - "$MNT/mapped" <<-'EOF'
	import mmap, sys
	with open(sys.argv[1], "r+b") as f:
	    m = mmap.mmap(f.fileno(), 8192)
	    m[100:105] = b"hello"
	    m.close()
	EOF
	exec 4<&-
	[ "$(head -c 105 "$BACKING/mapped" | tail -c 5)" = hello ]
	stop_provfs
	assert_sql "SELECT count(*), count(bytes_written) FROM accesses
	            WHERE file_id = ($(file_id_sql mapped)) AND open_flags & 3 = 2" "1|0"
	assert_sql "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql mapped))" 2
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql mapped))" \
		"hashed|$(xxh "$BACKING/mapped")"
}

@test "a stat right after stores through a passthrough mapping shows the times they moved" {
	mount_provfs
	require_kernel_passthrough
	"$PYTHON" -c 'import sys; open(sys.argv[1], "wb").write(b"." * 4096)' "$MNT/mapped"
	"$PYTHON" - "$MNT/mapped" "$BACKING/mapped" <<-'EOF'
	import mmap, os, sys, time
	path, backing = sys.argv[1], sys.argv[2]
	with open(path, "r+b") as f:
	    m = mmap.mmap(f.fileno(), 4096)
	    # Asked after the mapping is made (xfs_io's mmap does), the kernel
	    # keeps these attributes for a second.
	    before = os.fstat(f.fileno())
	    time.sleep(0.05)
	    m[0:5] = b"hello"
	    m.close()
	after, native = os.stat(path), os.stat(backing)
	assert after.st_mtime_ns > before.st_mtime_ns, "mtime not moved"
	assert after.st_ctime_ns > before.st_ctime_ns, "ctime not moved"
	assert (after.st_mtime_ns, after.st_ctime_ns) == (native.st_mtime_ns, native.st_ctime_ns)
	EOF
	[ "$(head -c 5 "$MNT/mapped")" = hello ]
}

@test "-o noatime: reads the daemon serves, and listings, leave the backing atimes alone" {
	ensure_test_users
	chmod 755 "$BACKING"
	mkdir -m 1777 "$BACKING/w"
	printf 'data\n' >"$BACKING/f"
	mkdir "$BACKING/d"
	touch "$BACKING/d/x"
	touch -a -d '2 days ago' "$BACKING/f" "$BACKING/d"
	local file_atime dir_atime
	file_atime=$(stat -c %X "$BACKING/f")
	dir_atime=$(stat -c %X "$BACKING/d")
	mount_provfs -o noatime,nopassthrough
	cat "$MNT/f" >/dev/null
	ls "$MNT/d" >/dev/null
	[ "$(stat -c %X "$MNT/f")" = "$file_atime" ]
	# Files are made as ever, as the caller (O_NOATIME is for reads).
	as_user_sh "$U1" "echo new >'$MNT/w/made'"
	[ "$(cat "$MNT/w/made")" = new ]
	[ "$(stat -c %U "$BACKING/w/made")" = "$U1" ]
	unmount_provfs
	[ "$(stat -c %X "$BACKING/f")" = "$file_atime" ]
	[ "$(stat -c %X "$BACKING/d")" = "$dir_atime" ]
	# With kernel passthrough too: the kernel reads the file itself, through
	# a backing file registered from the daemon's noatime view of the
	# backing mount (a read, a second read and an mmap).
	mount_provfs -o noatime
	cat "$MNT/f" >/dev/null
	cat "$MNT/f" >/dev/null
	python3 -c 'import mmap, sys
with open(sys.argv[1], "rb") as f:
    assert mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)[:4] == b"data"' "$MNT/f"
	ls "$MNT/d" >/dev/null
	[ "$(stat -c %X "$MNT/f")" = "$file_atime" ]
	unmount_provfs
	[ "$(stat -c %X "$BACKING/f")" = "$file_atime" ]
	[ "$(stat -c %X "$BACKING/d")" = "$dir_atime" ]
	# The view was made (said at mount, before the daemon detaches).
	[[ "$(cat "$TMP/mount.err")" != *"no noatime view"* ]]
	# Without it (relatime, as the backing mount): the same read and
	# listing move two-day-old atimes.
	mount_provfs -o nopassthrough
	cat "$MNT/f" >/dev/null
	ls "$MNT/d" >/dev/null
	unmount_provfs
	[ "$(stat -c %X "$BACKING/f")" -gt "$file_atime" ]
	[ "$(stat -c %X "$BACKING/d")" -gt "$dir_atime" ]
}

# The access-time word in effect on the mount at $MNT (/proc/self/mounts
# names relatime and noatime; strictatime is neither), then nodiratime if set.
mount_atime_flags() {
	local flags
	flags=$(awk -v mnt="$MNT" '$2 == mnt { print $4 }' /proc/self/mounts)
	case ",$flags," in
	*,noatime,*) printf noatime ;;
	*,relatime,*) printf relatime ;;
	*) printf strictatime ;;
	esac
	case ",$flags," in *,nodiratime,*) printf ' nodiratime' ;; esac
	echo
}

@test "access-time words of mount(8) and fstab (relatime, strictatime, nodiratime, ...) mount as for any filesystem; the last wins" {
	# libfuse 3.14 refuses all but atime and noatime ("unknown option"): an
	# fstab line with relatime did not mount.
	local words expected
	while read -r words expected; do
		mount_provfs -o "$words"
		[ "$(mount_atime_flags)" = "${expected//_/ }" ] ||
			{ echo "-o $words: $(mount_atime_flags), expected ${expected//_/ }"; false; }
		unmount_provfs
	done <<-EOF
		relatime relatime
		strictatime strictatime
		norelatime strictatime
		nostrictatime relatime
		noatime,relatime relatime
		relatime,noatime noatime
		noatime,strictatime,nodiratime strictatime_nodiratime
		nodiratime,diratime relatime
		lazytime,nolazytime,mand,nomand relatime
	EOF
}

@test "-o noatime, the daemon without CAP_FOWNER: another user's file and directory still open and list" {
	ensure_test_users
	mkdir "$BACKING/d"
	printf 'owned\n' >"$BACKING/d/f"
	chown -R "$U1" "$BACKING/d"
	# O_NOATIME is for a file's owner and CAP_FOWNER: without it, the
	# daemon opens such files as before instead of failing the open.
	setpriv --bounding-set=-fowner -- "$PROVFS" -o "store=$STORE" -o noatime,nopassthrough \
		"$BACKING" "$MNT" 2>"$TMP/mount.err"
	wait_mounted "$MNT"
	[ "$(cat "$MNT/d/f")" = owned ]
	[ "$(ls "$MNT/d")" = f ]
	unmount_provfs
}

@test "a read-write open that writes nothing makes no version" {
	echo content >"$BACKING/kept"
	mount_provfs
	require_kernel_passthrough
	"$PYTHON" -c 'import sys; open(sys.argv[1], "r+b").read()' "$MNT/kept"
	stop_provfs
	assert_sql "SELECT group_concat(origin) FROM versions WHERE file_id = ($(file_id_sql kept))" \
		initial
	# A read-write handle passes through too (its writers watched late):
	# the daemon saw none of its bytes, so their counts are unknown.
	assert_sql "SELECT open_flags & 3, read_version_id IS NOT NULL, written_version_id IS NULL,
	            bytes_read IS NULL, bytes_written IS NULL FROM accesses
	            WHERE file_id = ($(file_id_sql kept))" "2|1|1|1|1"
}

@test "a file written then renamed at once (atomic save) is hashed, not 'changed'" {
	mount_provfs
	require_kernel_passthrough
	"$PYTHON" - "$MNT" <<-'EOF'
	import os, sys
	for i in range(1, 9):
	    tmp = os.path.join(sys.argv[1], "save.tmp")
	    with open(tmp, "wb") as f:
	        f.write(os.urandom(200000))
	    os.rename(tmp, os.path.join(sys.argv[1], "saved%d" % i))
	EOF
	stop_provfs
	for i in 1 2 3 4 5 6 7 8; do
		assert_single_written_version "saved$i"
	done
}

@test "a file that gains suid while a user writes it through passthrough loses it, as on ext4" {
	ensure_test_users
	chmod 755 "$BACKING"
	mount_provfs -o norecord
	require_kernel_passthrough
	local sig=$TMP/sig
	mkdir -m 777 "$sig"
	for dir in "$NATIVE" "$MNT"; do
		echo data >"$dir/f"
		chmod 666 "$dir/f"
		rm -f "$sig/opened" "$sig/wrote" "$sig/go1" "$sig/go2"
		mkfifo "$sig/go1" "$sig/go2"
		# The user opens it (no privileges yet: passed through) and writes
		# after root made it suid and sgid; then, with that handle still
		# open, opens it again after root did so once more.
		as_user_sh provfs-u1 "exec 3>>'$dir/f'; touch '$sig/opened'; read x <'$sig/go1'; \
			echo more >&3; touch '$sig/wrote'; read x <'$sig/go2'; echo again >>'$dir/f'" &
		local writer=$!
		wait_for_file "$sig/opened"
		# Through the backing directory: the kernel's cached mode of the
		# mount's inode stays without suid, so only the backing write can
		# drop it (the credentials passthrough registered the file with).
		if [ "$dir" = "$MNT" ]; then
			chmod 6666 "$BACKING/f"
		else
			chmod 6666 "$dir/f"
		fi
		echo go >"$sig/go1"
		wait_for_file "$sig/wrote"
		[ "$(stat -c %A "$dir/f")" = "-rw-rw-rw-" ]
		chmod 6666 "$dir/f"
		echo go >"$sig/go2"
		wait "$writer"
		[ "$(stat -c %A "$dir/f")" = "-rw-rw-rw-" ]
	done
	[ "$(cat "$MNT/f")" = "$(printf 'data\nmore\nagain')" ]
}

@test "a thread that registered a read-only open's file keeps those credentials only for what only looks: root's writes, creates and chmods right after are root's" {
	chmod 755 "$BACKING"
	for i in $(seq 8); do echo "read $i" >"$BACKING/r$i"; done
	printf 'x' >"$BACKING/suid"
	chmod 4755 "$BACKING/suid"
	echo g >"$BACKING/g"
	chown 0:1234 "$BACKING/g"
	mount_provfs
	require_kernel_passthrough
	local i
	# Read-only opens leave their threads with the registering credentials
	# (no CAP_FSETID, the overflow group, no groups); every request after
	# them that makes or changes something must run as the daemon again.
	for i in $(seq 40); do
		cat "$MNT/r$((i % 8 + 1))" >/dev/null
		printf 'x' >>"$MNT/suid"
		[ "$(stat -c %a "$BACKING/suid")" = 4755 ] || {
			echo "round $i: a root write through the daemon dropped suid" >&2
			return 1
		}
		cat "$MNT/r$((i % 8 + 1))" >/dev/null
		mkdir "$MNT/d$i"
		: >"$MNT/f$i"
		[ "$(stat -c %g "$BACKING/d$i") $(stat -c %g "$BACKING/f$i")" = "0 0" ] || {
			echo "round $i: root's new files belong to group $(stat -c %g "$BACKING/f$i")" >&2
			return 1
		}
		cat "$MNT/r$((i % 8 + 1))" >/dev/null
		chmod 644 "$MNT/g"
		chmod 2755 "$MNT/g"
		[ "$(stat -c %a "$BACKING/g")" = 2755 ] || {
			echo "round $i: root's chmod g+s of another group's file lost sgid" >&2
			return 1
		}
	done
}

@test "external changes are still seen at open under passthrough" {
	echo one >"$BACKING/f"
	mount_provfs
	require_kernel_passthrough
	cat "$MNT/f" >/dev/null
	echo two >"$BACKING/f"
	touch -d '2001-01-01' "$BACKING/f"
	[ "$(cat "$MNT/f")" = two ]
	stop_provfs
	assert_sql "SELECT group_concat(origin) FROM versions WHERE file_id = ($(file_id_sql f))" \
		"initial,external"
}

@test "scripts/bench smoke run: passthrough rows beside native and -o nopassthrough" {
	PROVFS="$PROVFS" run "$PROVFS_SOURCE_ROOT/scripts/bench" --quick -r 1 -w seqio \
		-V native,provfs,provfs-nopassthrough -d "$TMP/bench"
	[ "$status" -eq 0 ]
	[[ "$output" == *"| seqio/reread | provfs | "* ]]
	[[ "$output" == *"| seqio/read | provfs-nopassthrough | "* ]]
	[[ "$output" == *"check seqio: all runs agree"* ]]
	assert_nothing_mounted
}

@test "provfs-query shows a passthrough handle's byte count as null, not 0 (reader and writer)" {
	head -c 100000 /dev/urandom >"$BACKING/in"
	mount_provfs
	require_kernel_passthrough
	cp "$MNT/in" "$MNT/out" &
	local pid=$!
	wait "$pid"
	stop_provfs
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" process "$pid" --format json
	[ "$status" -eq 0 ]
	echo "$output" | "$PYTHON" -c '
import json, sys
found = []
def walk(node):
    if isinstance(node, dict):
        if "bytes" in node:
            found.append(node["bytes"])
        for value in node.values():
            walk(value)
    elif isinstance(node, list):
        for value in node:
            walk(value)
walk(json.load(sys.stdin))
assert found == [None, None], found'
}

@test "opens of one file in both modes at once never fail (the kernel's one-mode-per-inode rule)" {
	echo data >"$BACKING/f"
	chmod 4755 "$BACKING/f"
	mount_provfs -o norecord
	require_kernel_passthrough
	# Held open while it has suid: through the daemon, in the page cache.
	exec 5<"$MNT/f"
	chmod 755 "$MNT/f"
	# No privileges now, but the cached handle is open: this one is cached too.
	[ "$(cat "$MNT/f")" = data ]
	echo more >>"$MNT/f"
	exec 5<&-
	# And the other way round: a passthrough handle held, then suid appears.
	exec 5<"$MNT/f"
	chmod 4755 "$MNT/f"
	[ "$(cat "$MNT/f")" = "$(printf 'data\nmore')" ]
	echo again >>"$MNT/f"
	exec 5<&-
	[ "$(cat "$BACKING/f")" = "$(printf 'data\nmore\nagain')" ]
}

@test "small new files the daemon writes cost no GETXATTR each: their write-only handles are direct I/O" {
	mount_logging_requests
	if grep -q "passthrough unavailable" "$TMP/requests.log"; then
		skip "the kernel offers no FUSE passthrough"
	fi
	mkdir "$MNT/shards"
	# One shell writing small new files: from the fifth on, the daemon
	# serves the writes (fs/small_writers.c).
	for i in $(seq 12); do
		printf 'shard %s\n' "$i" >"$MNT/shards/$i"
	done
	local writes getxattrs
	writes=$(requests_of WRITE)
	getxattrs=$(requests_of GETXATTR)
	echo "WRITE $writes GETXATTR $getxattrs" >&2
	[ "$writes" -ge 8 ]
	# Only the files passed through asked (once each, before their write).
	[ "$getxattrs" -le $((12 - writes)) ]
	for i in $(seq 12); do
		[ "$(cat "$BACKING/shards/$i")" = "shard $i" ]
	done
	unmount_provfs
	assert_single_written_version shards/12
	assert_sql "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE a.written_version_id IS NOT NULL AND a.path LIKE 'shards/%'
	            AND p.pid = $BASHPID" 12
}

@test "a reader's cached pages follow what a direct-I/O writer writes" {
	mount_provfs
	require_kernel_passthrough
	# A run of small new files, so that the daemon serves this writer's
	# next one (direct I/O); a reader opened meanwhile is cached (the
	# kernel's one mode per inode) and keeps pages that the next write
	# changes.
	run "$PYTHON" -c '
import os, sys
mnt = sys.argv[1]
for i in range(6):
    with open("%s/small%d" % (mnt, i), "w") as f:
        f.write("x")
writer = os.open(mnt + "/shared", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(writer, b"first\n")
reader = os.open(mnt + "/shared", os.O_RDONLY)
assert os.pread(reader, 100, 0) == b"first\n"
os.write(writer, b"second\n")
print(os.pread(reader, 100, 0))
os.close(writer)
print(os.pread(reader, 100, 0))' "$MNT"
	echo "$output"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf "%s\n%s" "b'first\\nsecond\\n'" "b'first\\nsecond\\n'")" ]
}
