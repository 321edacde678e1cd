#!/usr/bin/env bats
# write_passthrough.bats - kernel FUSE passthrough of writes (issue 9): the
# kernel writes the backing file itself, and the producer of each version is
# still the process that wrote (identified inside its write by the writer
# watch, fanotify pre-content events, fs/writer_watch.c; a read-write
# handle's writers after their write, and only when certain), its hash is
# taken by the hash pool after the last writer closes, and its byte counts
# are unknown (NULL), never 0.
#
# Evidence that the data bypassed the daemon: its own I/O counters, as in
# passthrough_io.bats.

load helpers
load recorder_helpers

SIZE=$((8 * 1024 * 1024))

setup() {
	common_setup
	chmod 700 "$BACKING"
	[ -e /dev/fuse ] || skip "no /dev/fuse"
	FANOTIFY_GROUPS=/proc/sys/fs/fanotify/max_user_groups
	SAVED_GROUPS=
}

teardown() {
	if [ -n "$SAVED_GROUPS" ]; then
		echo "$SAVED_GROUPS" >"$FANOTIFY_GROUPS"
	fi
	common_teardown
}

# The daemon's writes only: its reads include the hash pool's rereads.
DAEMON_IO_FIELDS=wchar

# Skip unless the mount passes writers through (kernel passthrough and the
# writer watch both there).
require_write_passthrough() {
	if grep -q "passthrough unavailable\|passthrough is for reading only" "$TMP/mount.err"; then
		skip "this kernel cannot pass writers through: $(cat "$TMP/mount.err")"
	fi
}

producer_of() {
	q "SELECT producer_process_id FROM versions WHERE id = ($(latest_version_sql "$1"))"
}

# The byte and call counts of every access to $1 that may write are NULL.
assert_writers_passed_through() {
	assert_sql "SELECT count(*), count(bytes_written), count(write_calls) FROM accesses
	            WHERE file_id = ($(file_id_sql "$1")) AND (open_flags & 3 != 0 OR open_flags & 512)" \
		"$2|0|0"
}

@test "a writer's data bypasses the daemon; its counts are NULL, the version is reread and right" {
	mount_provfs
	require_write_passthrough
	run daemon_io_while dd if=/dev/urandom of="$MNT/written" bs=1M count=8 status=none
	[ "$status" -eq 0 ]
	[ "$output" -lt $((SIZE / 8)) ]
	[ "$(stat -c %s "$BACKING/written")" -eq "$SIZE" ]
	stop_provfs
	assert_writers_passed_through written 1
	assert_sql "SELECT count(*), origin, hash_state, hash, hash_method FROM versions
	            WHERE file_id = ($(file_id_sql written))" \
		"1|written|hashed|$(xxh "$BACKING/written")|reread"
	assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.id = ($(latest_version_sql written))" "$(real_exe dd)"
}

@test "producer through passthrough: sh -c 'exec prog >out' is prog" {
	printf 'b\na\nc\n' >"$BACKING/in.txt"
	mount_provfs
	require_write_passthrough
	(cd "$MNT" && sh -c 'exec sort in.txt >out.txt')
	(cd "$MNT" && sh -c 'exec "$0" -c "import os; os.write(1, b\"quick\")" >quick.txt' "$PYTHON")
	stop_provfs
	assert_writers_passed_through out.txt 1
	assert_process_is "$(producer_of out.txt)" "$(real_exe sort)" "sort in.txt"
	assert_writers_passed_through quick.txt 1
	assert_process_is "$(producer_of quick.txt)" "$(realpath "$PYTHON")" \
		"$PYTHON -c import os; os.write(1, b\"quick\")"
}

# The process row $1 runs $2 with argv (one line) $3.
assert_process_is() {
	[ -n "$1" ] || { echo "no producer recorded" >&2; return 1; }
	assert_sql "SELECT executable FROM processes WHERE id = $1" "$2"
	[ "$(argv_line_of "$1")" = "$3" ] || { echo "argv: $(argv_line_of "$1")" >&2; return 1; }
}

@test "producer through passthrough: a parent opens, a child writes, the parent closes last: the child" {
	mount_provfs
	require_write_passthrough
	# bash opens the file; printf(1), its child, writes through the
	# inherited descriptor and exits; bash closes it afterwards.
	local printf
	printf=$(realpath /usr/bin/printf)
	bash -c 'exec 3>"$1"; "$2" "from the child\n" >&3; sleep 0.2; exec 3>&-' bash \
		"$MNT/child.txt" "$printf"
	stop_provfs
	[ "$(cat "$BACKING/child.txt")" = "from the child" ]
	assert_writers_passed_through child.txt 1
	assert_process_is "$(producer_of child.txt)" "$printf" "$printf from the child\n"
}

@test "producer through passthrough: a child that only inherits the descriptor is not the producer" {
	mount_provfs
	require_write_passthrough
	# The subshell (bash) writes; sleep inherits the descriptor, writes
	# nothing and closes it last.
	bash -c 'exec 3>"$1"; echo written >&3; sleep 1 & exec 3>&-; wait' bash "$MNT/idle.txt"
	stop_provfs
	assert_writers_passed_through idle.txt 1
	local producer
	producer=$(producer_of idle.txt)
	assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(real_exe bash)"
	# sleep was recorded (it closed the handle), but never as a producer.
	assert_sql "SELECT count(*) FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE p.executable = '$(real_exe sleep)'" 0
}

@test "two writers through passthrough: the hash is right and both are writers; the producer wrote" {
	mount_provfs
	require_write_passthrough
	head -c 3000000 /dev/urandom >"$MNT/data.bin"
	"$PYTHON" - "$MNT/data.bin" <<-'EOF'
	import os, sys
	a = os.open(sys.argv[1], os.O_WRONLY)
	b = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
	os.pwrite(a, b"middle" * 1000, 1000000)
	if os.fork() == 0:
	    os.write(b, b"tail from the child")
	    os._exit(0)
	os.wait()
	os.close(a)
	os.close(b)
	EOF
	stop_provfs
	local version
	version=$(q "$(latest_version_sql data.bin)")
	assert_sql "SELECT number, origin, hash_state, hash, hash_method FROM versions WHERE id = $version" \
		"2|written|hashed|$(xxh "$BACKING/data.bin")|reread"
	assert_sql "SELECT count(*), count(bytes_written) FROM accesses WHERE written_version_id = $version" "2|0"
	assert_sql "SELECT executable FROM processes WHERE id = $(producer_of data.bin)" \
		"$(realpath "$PYTHON")"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all --format json
	[ "$status" -eq 0 ]
	echo "$output" | "$PYTHON" -c '
import json, sys
d = json.load(sys.stdin)
st = {f["path"]: f["status"] for f in d["files"]}
assert st["data.bin"] == "ok", st
assert d["summary"]["mismatch"] == 0, d["summary"]'
}

@test "mmap shared write through a read-write handle: hashed right, produced by the opener that mapped it" {
	mount_provfs
	require_write_passthrough
	"$PYTHON" -c 'import sys; open(sys.argv[1], "wb").write(b"." * 65536)' "$MNT/mapped"
	"$PYTHON" - "$MNT/mapped" <<-'EOF'
	import mmap, os, sys
	fd = os.open(sys.argv[1], os.O_RDWR)
	m = mmap.mmap(fd, 65536)
	m[4096:4101] = b"hello"
	m.flush()
	m.close()
	os.close(fd)
	EOF
	stop_provfs
	[ "$(head -c 4101 "$BACKING/mapped" | tail -c 5)" = hello ]
	assert_sql "SELECT group_concat(origin), count(*) FROM versions WHERE file_id = ($(file_id_sql mapped))" \
		"written,written|2"
	assert_sql "SELECT hash_state, hash, hash_method FROM versions WHERE id = ($(latest_version_sql mapped))" \
		"hashed|$(xxh "$BACKING/mapped")|reread"
	# No write system call was made: the writer is the opener.
	local producer
	producer=$(producer_of mapped)
	assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(realpath "$PYTHON")"
	[ "$(argv_line_of "$producer")" = "$PYTHON - $MNT/mapped" ]
}

@test "a passthrough writer opened and touched without a write makes no version" {
	echo kept >"$BACKING/kept"
	mount_provfs
	require_write_passthrough
	cat "$MNT/kept" >/dev/null
	touch "$MNT/kept"
	"$PYTHON" -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_RDWR))' "$MNT/kept"
	stop_provfs
	assert_sql "SELECT group_concat(origin) FROM versions WHERE file_id = ($(file_id_sql kept))" initial
}

# v1 of big is written and closed; as soon as its close is recorded, v2
# rewrites its start through a handle opened $1 (wo: write-only, watched
# as it waits; rw: read-write, watched late), while v1's hash is surely
# being taken.  v1 must not be given a hash of bytes it no longer has.
change_while_hashed() {
	mount_provfs
	require_write_passthrough
	# v1 is large (its hash takes a second or more); v2 rewrites it as soon
	# as v1's close is recorded, so that v1's hash job is surely under way
	# (v1 is complete at its close either way: README, "File versions").
	"$PYTHON" - "$MNT/big" "$STORE" "$1" <<-'EOF'
	import os, sqlite3, sys, time
	mode = os.O_RDWR if sys.argv[3] == "rw" else os.O_WRONLY
	fd = os.open(sys.argv[1], os.O_CREAT | mode, 0o644)
	os.pwrite(fd, b"end", 4 << 30)
	os.pwrite(fd, b"start", 0)
	os.close(fd)
	db = sqlite3.connect("file:%s?mode=ro" % sys.argv[2], uri=True)
	for _ in range(500):
	    try:
	        closed, = db.execute("SELECT count(*) FROM accesses WHERE path = 'big' AND closed_ns IS NOT NULL").fetchone()
	    except sqlite3.OperationalError:
	        closed = 0
	    if closed:
	        break
	    time.sleep(0.01)
	else:
	    sys.exit("v1's close was not recorded within 5 s")
	fd = os.open(sys.argv[1], mode)
	os.pwrite(fd, b"START", 0)
	os.close(fd)
	EOF
	stop_provfs
	local file
	file=$(file_id_of big)
	assert_sql "SELECT count(*) FROM versions WHERE file_id = $file" 2
	# Every hash recorded is of the bytes of its version: v1's bytes are
	# gone, so v1 is 'changed' (or still pending), never hashed.
	assert_sql "SELECT hash_state IN ('changed', 'pending') FROM versions WHERE file_id = $file AND number = 1" 1
	local newest
	newest=$(q "SELECT hash_state || ' ' || coalesce(hash, '') FROM versions WHERE file_id = $file
	            AND number = 2")
	case $newest in
	"hashed "*) [ "$newest" = "hashed $(xxh "$BACKING/big")" ] ;;
	esac
}

@test "a version changed through passthrough while its hash is taken is 'changed', never a wrong hash" {
	change_while_hashed wo
}

@test "a version changed through a read-write passthrough handle while its hash is taken is 'changed', never a wrong hash" {
	change_while_hashed rw
}

@test "without the writer watch (fanotify refused), writers go through the daemon, said once, producers right" {
	[ -w "$FANOTIFY_GROUPS" ] || skip "no $FANOTIFY_GROUPS"
	SAVED_GROUPS=$(cat "$FANOTIFY_GROUPS")
	# No new fanotify group for anyone while the daemon mounts (a second).
	echo 0 >"$FANOTIFY_GROUPS"
	mount_provfs
	echo "$SAVED_GROUPS" >"$FANOTIFY_GROUPS"
	SAVED_GROUPS=
	grep -q "passthrough unavailable" "$TMP/mount.err" && skip "the kernel offers no FUSE passthrough"
	[ "$(grep -c "passthrough is for reading only" "$TMP/mount.err")" -eq 1 ]
	head -c "$SIZE" /dev/urandom >"$BACKING/data"
	run daemon_io_while cat "$MNT/data"
	[ "$output" -lt $((SIZE / 8)) ] # readers still pass through
	run daemon_io_while dd if=/dev/zero of="$MNT/written" bs=1M count=8 status=none
	[ "$output" -ge "$SIZE" ]
	printf 'b\na\n' >"$BACKING/in.txt"
	(cd "$MNT" && sh -c 'exec sort in.txt >out.txt')
	stop_provfs
	assert_sql "SELECT bytes_written FROM accesses WHERE file_id = ($(file_id_sql written))" "$SIZE"
	assert_sql "SELECT executable FROM processes WHERE id = $(producer_of out.txt)" "$(real_exe sort)"
}

@test "-o nopassthrough: writers through the daemon, counts exact, as before" {
	mount_provfs -o nopassthrough
	run daemon_io_while dd if=/dev/zero of="$MNT/written" bs=1M count=8 status=none
	[ "$output" -ge "$SIZE" ]
	stop_provfs
	assert_sql "SELECT bytes_written, write_calls > 0 FROM accesses WHERE file_id = ($(file_id_sql written))" \
		"$SIZE|1"
	assert_sql "SELECT hash_method FROM versions WHERE id = ($(latest_version_sql written))" streamed
	! grep -q "passthrough is for reading only" "$TMP/mount.err"
}

# The daemon's writer watch thread: its one thread with a raised priority.
watch_thread() {
	local task
	for task in /proc/"$1"/task/*; do
		if [ "$(awk '{ print $19 }' "$task/stat")" = -10 ]; then
			basename "$task"
		fi
	done
}

# stop_thread TID SECONDS MARKER: stop one thread (ptrace, the others run
# on), touch MARKER once it is stopped, and let it go after SECONDS.
write_stop_thread() {
	cat >"$TMP/stop_thread.py" <<-'EOF'
	import ctypes, os, sys, time
	libc = ctypes.CDLL(None, use_errno=True)
	libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
	PTRACE_DETACH, PTRACE_SEIZE, PTRACE_INTERRUPT, WALL = 17, 0x4206, 0x4207, 0x40000000
	tid = int(sys.argv[1])
	if libc.ptrace(PTRACE_SEIZE, tid, None, None) < 0:
	    sys.exit("cannot trace thread %d: %s" % (tid, os.strerror(ctypes.get_errno())))
	libc.ptrace(PTRACE_INTERRUPT, tid, None, None)
	os.waitpid(tid, WALL)
	open(sys.argv[3], "w").close()
	time.sleep(float(sys.argv[2]))
	libc.ptrace(PTRACE_DETACH, tid, None, None)
	EOF
}

# Mount with writers passed through, ready to stop the daemon's writer
# watch thread: its id in WATCH, stop_thread.py written.
mount_with_stoppable_watch() {
	mount_provfs
	require_write_passthrough
	WATCH=$(watch_thread "$MOUNTED_PID")
	[ -n "$WATCH" ] || {
		echo "no writer watch thread" >&2
		return 1
	}
	write_stop_thread
}

@test "a writer that writes and exits at once while the writer watch cannot run is still the producer" {
	mount_with_stoppable_watch
	# bash opens the file; with the watch thread stopped for a second (the
	# rest of the daemon runs), python3 writes through the inherited
	# descriptor and exits.  A watch told of writes afterwards finds it
	# gone; here it waits in write(2) until it is identified.
	run bash -c '
		exec 5>"$1"
		"$3" "$4" "$2" 1 "$5" 5>&- &
		stopper=$!
		until [ -e "$5" ]; do sleep 0.01 5>&-; done
		"$3" -c "import os; os.write(5, b\"written\\n\")" &
		writer=$!
		sleep 0.6 5>&-
		status=0
		if [ -s "$6" ]; then
			echo "the write was made before its writer was identified" >&2
			status=1
		fi
		wait "$stopper" || status=1
		wait "$writer" || status=1
		exec 5>&-
		exit "$status"' bash "$MNT/o.txt" "$WATCH" "$PYTHON" "$TMP/stop_thread.py" \
		"$TMP/stopped" "$BACKING/o.txt"
	echo "$output"
	[ "$status" -eq 0 ]
	stop_provfs
	[ "$(cat "$BACKING/o.txt")" = written ]
	assert_writers_passed_through o.txt 1
	assert_process_is "$(producer_of o.txt)" "$(realpath "$PYTHON")" \
		"$PYTHON -c import os; os.write(5, b\"written\\n\")"
}

@test "a writer waits little longer than the guard's bound when the writer watch cannot run" {
	mount_with_stoppable_watch
	# The watch thread stopped for 8 s: the guard lets the writer go after
	# about 2 s (its writer is then unknown, and the mount says so once).
	run bash -c '
		exec 5>"$1"
		"$3" "$4" "$2" 8 "$5" 5>&- &
		stopper=$!
		until [ -e "$5" ]; do sleep 0.01 5>&-; done
		start=$(date +%s%N)
		"$3" -c "import os; os.write(5, b\"x\")"
		echo "waited $((($(date +%s%N) - start) / 1000000)) ms"
		wait "$stopper"
		exec 5>&-' bash "$MNT/late.txt" "$WATCH" "$PYTHON" "$TMP/stop_thread.py" "$TMP/stopped"
	echo "$output"
	[ "$status" -eq 0 ]
	local waited=${output##*waited }
	waited=${waited% ms}
	[ "$waited" -ge 1500 ]
	[ "$waited" -lt 6000 ]
	stop_provfs
	[ "$(cat "$BACKING/late.txt")" = x ]
	[ "$(grep -c "the writer watch made no progress" "$TMP/mount.err")" -le 1 ]
}

@test "many writers that write and exit at once under load: each is its file's producer" {
	mount_provfs
	require_write_passthrough
	# Two CPU hogs per core compete with the daemon's threads meanwhile.
	local hogs=() i
	for i in $(seq $((2 * $(nproc)))); do
		start_background sh -c 'while :; do :; done'
		hogs+=("$LAST_BG")
	done
	for i in $(seq 20); do
		{ "$PYTHON" -c 'print("quick")'; /bin/true; } >"$MNT/o$i.txt" &
	done
	wait_jobs_but "${hogs[@]}"
	kill "${hogs[@]}"
	stop_provfs
	for i in $(seq 20); do
		assert_process_is "$(producer_of "o$i.txt")" "$(realpath "$PYTHON")" \
			"$PYTHON -c print(\"quick\")"
	done
}

# Wait for every background job but the pids given.
wait_jobs_but() {
	local pid skip
	for pid in $(jobs -p); do
		for skip in "$@"; do
			[ "$pid" = "$skip" ] && continue 2
		done
		wait "$pid"
	done
}

@test "a caller that wrote small new files in a row has its next written through the daemon, hashed and right; a large one ends the run" {
	mount_provfs
	require_write_passthrough
	# One process opens them all (printf is a bash builtin): one caller.
	bash -c '
		small=$(head -c 4096 /dev/zero | tr "\0" s)
		large=$(head -c 1048576 /dev/zero | tr "\0" l)
		for i in 1 2 3 4 5 6; do printf "%s" "$small" >"$1/s$i"; done
		printf "%s" "$large" >"$1/large"
		printf "%s" "$small" >"$1/after"
	' bash "$MNT"
	stop_provfs
	# The first four pass through as any new file does (counts unknown).
	local f
	for f in s1 s2 s3 s4; do
		assert_writers_passed_through "$f" 1
	done
	# From the fifth small one in a row, through the daemon: counts exact.
	for f in s5 s6; do
		assert_sql "SELECT bytes_written FROM accesses WHERE file_id = ($(file_id_sql "$f"))" 4096
	done
	assert_sql "SELECT bytes_written FROM accesses WHERE file_id = ($(file_id_sql large))" 1048576
	# A large file ended the run: the next new file passes through again.
	assert_writers_passed_through after 1
	# Either way each version is hashed right and produced by the shell.
	for f in s1 s2 s3 s4 s5 s6 large after; do
		assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_sql "$f"))" \
			"$(xxh "$BACKING/$f")"
		assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
		            WHERE v.id = ($(latest_version_sql "$f"))" "$(realpath "$(command -v bash)")"
	done
}

@test "producer through passthrough: a process that only reads the file while its writer's descriptor is open is not the producer" {
	mount_provfs
	require_write_passthrough
	# bash opens for writing; python3 writes through the shared descriptor,
	# then another python3 opens the file for reading and reads it while
	# that descriptor is open, last.  Both wait in their calls to be
	# identified (the file is watched while a writer has it open); only
	# the first wrote.
	bash -c 'exec 3>"$1"
		"$2" -c "import os; os.write(3, b\"written\\n\")"
		"$2" -c "import sys; open(sys.argv[1], \"rb\").read()" "$1"
		exec 3>&-' bash "$MNT/rw.txt" "$PYTHON"
	stop_provfs
	[ "$(cat "$BACKING/rw.txt")" = written ]
	assert_writers_passed_through rw.txt 1
	assert_process_is "$(producer_of rw.txt)" "$(realpath "$PYTHON")" \
		"$PYTHON -c import os; os.write(3, b\"written\\n\")"
}

@test "a read-write descriptor passes through, watched late: the child that wrote through it is the producer, a reader through it is not" {
	mount_provfs
	require_write_passthrough
	# A pre-access cannot tell a read from a write, so a read-write handle
	# is watched for FAN_MODIFY only: nothing waits, and each writer is
	# identified after its write, kept only if it certainly has not exec'd
	# or exited since (fs/writer_watch.c, LATE).  The child lives on a
	# second after its write: a writer that lives is named, even when the
	# machine is loaded and the watch reads its write late.
	bash -c 'exec 3<>"$1"
		"$2" -c "import os, time; os.write(3, b\"written\\n\"); time.sleep(1)"
		"$2" -c "import os; os.pread(3, 100, 0)"
		exec 3>&-' bash "$MNT/rw.txt" "$PYTHON"
	stop_provfs
	[ "$(cat "$BACKING/rw.txt")" = written ]
	assert_writers_passed_through rw.txt 1
	assert_process_is "$(producer_of rw.txt)" "$(realpath "$PYTHON")" \
		"$PYTHON -c import os, time; os.write(3, b\"written\\n\"); time.sleep(1)"
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql rw.txt))" \
		"hashed|$(xxh "$BACKING/rw.txt")"
}

FILL_SQL="CREATE TABLE t(x, y); WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 200000) INSERT INTO t SELECT i, hex(randomblob(16)) FROM c;"

# sqlite3 fills the database $1 of the mount with FILL_SQL; its page writes
# must go from sqlite3 to the backing file, not through the daemon.
fill_database_bypassing() {
	run daemon_io_while sqlite3 "$MNT/$1" "$FILL_SQL"
	[ "$status" -eq 0 ]
	local size
	size=$(stat -c %s "$BACKING/$1")
	[ "$size" -gt $((4 * 1024 * 1024)) ]
	[ "$output" -lt $((size / 8)) ] || {
		echo "the daemon wrote $output bytes of a $size-byte database" >&2
		return 1
	}
	[ "$(sqlite3 "$MNT/$1" "SELECT count(*) FROM t")" = 200000 ]
}

@test "a SQLite database written through the mount: its pages bypass the daemon, sqlite3 is the producer, the hash is right" {
	mount_provfs
	require_write_passthrough
	fill_database_bypassing etl.db
	stop_provfs
	assert_sql "SELECT count(*) > 0, count(bytes_written) FROM accesses
	            WHERE file_id = ($(file_id_sql etl.db)) AND open_flags & 3 = 2" "1|0"
	assert_process_is "$(producer_of etl.db)" "$(real_exe sqlite3)" \
		"sqlite3 $MNT/etl.db $FILL_SQL"
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql etl.db))" \
		"hashed|$(xxh "$BACKING/etl.db")"
}

@test "two processes write one SQLite database in WAL mode at once through passthrough: every row there, the file intact, a writer its producer" {
	mount_provfs
	require_write_passthrough
	sqlite3 "$MNT/shared.db" "PRAGMA journal_mode=WAL;" "CREATE TABLE t(who, i);" >/dev/null
	# The -shm index is shared memory: both map it, through passthrough.
	local writer='
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=30)
for i in range(400):
    with db:
        db.execute("INSERT INTO t VALUES (?, ?)", (sys.argv[2], i))
db.close()
'
	"$PYTHON" -c "$writer" "$MNT/shared.db" a &
	local a=$!
	"$PYTHON" -c "$writer" "$MNT/shared.db" b
	wait "$a"
	[ "$(sqlite3 "$MNT/shared.db" "SELECT count(*), count(DISTINCT who) FROM t")" = "800|2" ]
	[ "$(sqlite3 "$MNT/shared.db" "PRAGMA integrity_check")" = ok ]
	stop_provfs
	[ "$(sqlite3 "$BACKING/shared.db" "SELECT count(*) FROM t")" = 800 ]
	local producer
	producer=$(producer_of shared.db)
	[ -n "$producer" ]
	# The last to close checkpoints the log into the file: a writer of it.
	assert_sql "SELECT executable IN ('$(real_exe sqlite3)', '$(realpath "$PYTHON")')
	            FROM processes WHERE id = $producer" 1
}

@test "-o norecord: nobody asks who writes, so a database's pages bypass the daemon and no writer watch runs" {
	mount_provfs -o norecord
	require_write_passthrough
	fill_database_bypassing n.db
	# Nothing asks who writes: no writer watch at all.
	[ -z "$(watch_thread "$MOUNTED_PID")" ]
}

@test "a writer through a read-write descriptor that execs before its write is read is unknown, never the program it became" {
	mount_with_stoppable_watch
	# The watch thread is stopped for a second: python3 writes through the
	# inherited read-write descriptor and execs sleep at once, so when
	# the watch reads the write, the pid is sleep.  Nobody waited, so who
	# wrote cannot be known: unknown, not sleep and not the shell that opened.
	run bash -c '
		exec 5<>"$1"
		"$3" "$4" "$2" 1 "$5" 5>&- &
		stopper=$!
		until [ -e "$5" ]; do sleep 0.01 5>&-; done
		"$3" -c "import os; os.write(5, b\"written\\n\"); os.execv(\"$6\", [\"sleep\", \"1.5\"])"
		wait "$stopper" || exit 1
		exec 5>&-' bash "$MNT/o.txt" "$WATCH" "$PYTHON" "$TMP/stop_thread.py" \
		"$TMP/stopped" "$(real_exe sleep)"
	echo "$output"
	[ "$status" -eq 0 ]
	stop_provfs
	[ "$(cat "$BACKING/o.txt")" = written ]
	assert_writers_passed_through o.txt 1
	assert_sql "SELECT origin, producer_process_id IS NULL, hash FROM versions
	            WHERE id = ($(latest_version_sql o.txt))" "written|1|$(xxh "$BACKING/o.txt")"
}

@test "a writer named at one write of a read-write descriptor, then exec'd, writes again: the new program or unknown, never the image it left" {
	mount_provfs
	require_write_passthrough
	# python3 writes (it lives: it is named), then execs sh, which writes
	# at once.  The second write is sh's or unknown; the pid's earlier
	# identity must not stand in for it.
	bash -c 'exec 5<>"$1"
		"$2" -c "import os, time; os.write(5, b\"a\"); time.sleep(0.5); os.execv(\"$3\", [\"sh\", \"-c\", \"printf b >&5\"])"
		exec 5>&-' bash "$MNT/twice.txt" "$PYTHON" "$(real_exe sh)"
	stop_provfs
	[ "$(cat "$BACKING/twice.txt")" = ab ]
	assert_sql "SELECT coalesce((SELECT executable FROM processes WHERE id = v.producer_process_id),
	            'unknown') IN ('$(real_exe sh)', 'unknown') FROM versions v
	            WHERE v.id = ($(latest_version_sql twice.txt))" 1
}

@test "without the process connector (another network namespace), read-write handles stay with the daemon: producer and counts exact" {
	command -v unshare >/dev/null || skip "no unshare(1)"
	# The kernel's process connector answers only in the first network
	# namespace: a daemon started in another cannot tell whether a writer
	# exec'd since it wrote, so its read-write handles are not passed through.
	cat >"$TMP/provfs-netns" <<-EOF
	#!/bin/sh
	exec unshare --net "$PROVFS" "\$@"
	EOF
	chmod +x "$TMP/provfs-netns"
	PROVFS="$TMP/provfs-netns" mount_provfs
	require_write_passthrough
	bash -c 'exec 3<>"$1"; "$2" -c "import os; os.write(3, b\"written\\n\")"; exec 3>&-' \
		bash "$MNT/rw.txt" "$PYTHON"
	"$PYTHON" -c 'import sys; open(sys.argv[1], "wb").write(b"w" * 100000)' "$MNT/wo.txt"
	stop_provfs
	# The read-write handle through the daemon: its writes counted.
	assert_sql "SELECT count(*), sum(bytes_written) FROM accesses
	            WHERE file_id = ($(file_id_sql rw.txt)) AND open_flags & 3 = 2" "1|8"
	assert_process_is "$(producer_of rw.txt)" "$(realpath "$PYTHON")" \
		"$PYTHON -c import os; os.write(3, b\"written\\n\")"
	# A write-only one still passes through, identified as it waits.
	assert_writers_passed_through wo.txt 1
}

@test "a file open to write one way takes a writer the other way through the daemon: contents, hashes and producers right" {
	mount_provfs
	require_write_passthrough
	# Write-only first (watched as writers wait), then read-write (which
	# would be watched late): the second is served by the daemon, so its
	# 1 MiB goes through the daemon's own writes.
	run daemon_io_while bash -c 'exec 3>"$1"; printf one >&3
		exec 4<>"$1"; head -c 1048576 /dev/zero >&4; exec 4>&- 3>&-' bash "$MNT/first_wo"
	[ "$status" -eq 0 ]
	[ "$output" -ge 1048576 ]
	# Read-write first (watched late), then write-only: the same.
	run daemon_io_while bash -c 'exec 3<>"$1"; printf one >&3
		exec 4>>"$1"; head -c 1048576 /dev/zero >&4; exec 4>&- 3>&-' bash "$MNT/first_rw"
	[ "$status" -eq 0 ]
	[ "$output" -ge 1048576 ]
	stop_provfs
	[ "$(stat -c %s "$BACKING/first_wo")" -eq 1048576 ]
	[ "$(head -c 3 "$BACKING/first_rw")" = one ]
	[ "$(stat -c %s "$BACKING/first_rw")" -eq $((1048576 + 3)) ]
	local f
	for f in first_wo first_rw; do
		assert_sql "SELECT count(*) FROM accesses WHERE file_id = ($(file_id_sql $f))" 2
		assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql $f))" \
			"hashed|$(xxh "$BACKING/$f")"
		assert_sql "SELECT executable FROM processes WHERE id = $(producer_of $f)" \
			"$(real_exe head)"
	done
}

@test "a writer waiting to be identified is let go at once when the daemon dies" {
	mount_provfs
	require_write_passthrough
	local daemon watch
	daemon=$(provfs_pids "$MNT" | head -n 1)
	watch=$(watch_thread "$daemon")
	[ -n "$watch" ]
	write_stop_thread
	# The writer waits for the stopped watch thread; the daemon is killed:
	# the kernel lets it go (well before the guard's 2 s) as the group closes.
	# (The thread's stopper, which would hold it 30 s, is ended with the
	# check: its output would keep run waiting for it.)
	run bash -c '
		exec 5>"$1"
		"$3" "$4" "$2" 30 "$5" 5>&- >/dev/null 2>&1 &
		stopper=$!
		until [ -e "$5" ]; do sleep 0.01 5>&-; done
		"$3" -c "import os; os.write(5, b\"x\")" 2>/dev/null &
		writer=$!
		sleep 0.3 5>&-
		kill -KILL "$6"
		for i in $(seq 10); do
			if ! kill -0 "$writer" 2>/dev/null; then
				kill "$stopper"
				exit 0
			fi
			sleep 0.1 5>&-
		done
		kill "$stopper"
		echo "the writer still waits 1 s after the daemon died" >&2
		exit 1' bash "$MNT/dies.txt" "$watch" "$PYTHON" "$TMP/stop_thread.py" "$TMP/stopped" \
		"$daemon"
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "a backing filesystem without pre-content events (tmpfs): writers through the daemon, said once, readers pass through" {
	mkdir "$TMP/tmpfs"
	mount -t tmpfs -o size=64m,mode=700 tmpfs "$TMP/tmpfs" || skip "cannot mount a tmpfs"
	MOUNT_BACKING=$TMP/tmpfs/backing
	mkdir -m 700 "$MOUNT_BACKING"
	mount_provfs
	grep -q "passthrough unavailable" "$TMP/mount.err" && skip "the kernel offers no FUSE passthrough"
	[ "$(grep -c "passthrough is for reading only" "$TMP/mount.err")" -eq 1 ]
	grep -q "the backing filesystem refuses fanotify pre-content marks" "$TMP/mount.err"
	head -c "$SIZE" /dev/urandom >"$MOUNT_BACKING/data"
	run daemon_io_while cat "$MNT/data"
	[ "$output" -lt $((SIZE / 8)) ] # readers still pass through
	run daemon_io_while dd if=/dev/zero of="$MNT/written" bs=1M count=8 status=none
	[ "$output" -ge "$SIZE" ]
	{ "$PYTHON" -c 'print(1)'; /bin/true; } >"$MNT/o.txt"
	stop_provfs
	assert_sql "SELECT bytes_written FROM accesses WHERE file_id = ($(file_id_sql written))" "$SIZE"
	assert_process_is "$(producer_of o.txt)" "$(realpath "$PYTHON")" "$PYTHON -c print(1)"
}
