#!/usr/bin/env bats
# recorder.bats - what the provenance recorder leaves in the store, checked
# the way an auditor would: real programs through a real mount, then plain
# sqlite3 queries on the store (no provfs-query).
#
# Conventions of the store (store/schema.sql): paths are relative to the
# mount root; argv is a BLOB of NUL-terminated words; hashes are the first
# field of `xxhsum -H2`; exit_status is a wait status.  Every test unmounts
# (stop_provfs) and waits for the daemon to exit before it reads the store;
# teardown unmounts whatever is left, also after a failure.

load helpers
load recorder_helpers

setup() {
	common_setup
	# 700: no "reachable by other users" warning line on stderr.
	chmod 700 "$BACKING"
	CONF=$TMP/provfs.conf
	MNT_REAL=$(realpath "$MNT")
}

teardown() {
	common_teardown
	# A tmpfs backing directory of a test that failed before removing it.
	if [ -f "$TMP/.shm_backing" ]; then rm -rf "$(cat "$TMP/.shm_backing")"; fi
}

write_conf() {
	printf '%s\n' "$@" >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
}

# The process row (id) that produced the newest version of PATH.
producer_of() {
	q "SELECT producer_process_id FROM versions WHERE id = ($(latest_version_sql "$1"))"
}

# Assert: PATH has exactly one version, written through provfs, hashed, and
# its hash is the hash of the bytes now in the backing file.
assert_single_written_version() {
	local path=$1
	assert_sql "SELECT count(*), origin, hash_state, hash FROM versions
	            WHERE file_id = ($(file_id_sql "$path"))" \
		"1|written|hashed|$(xxh "$BACKING/$path")"
}

# Assert: the process row $1 has executable $2 and argv (a word an argument) $3...
assert_process() {
	local id=$1 exe=$2
	shift 2
	assert_sql "SELECT executable FROM processes WHERE id = $id" "$exe"
	local expected actual
	expected=$(printf '%s\n' "$@")
	actual=$(argv_of "$id")
	if [ "$actual" != "$expected" ]; then
		printf 'argv of process %s\nexpected:\n%s\nactual:\n%s\n' "$id" "$expected" "$actual" >&2
		return 1
	fi
}

# ------------------------------------------------------------ a pipeline

@test "pipeline under PROVFS_JOB: producers, argv, inputs with versions, hashes, one run, parent links" {
	printf 'region,amount\nnorth,10\nsouth,5\nnorth,7\neast,1\n' >"$BACKING/raw.csv"
	cat >"$TMP/pipeline.sh" <<'EOF'
#!/bin/sh
# A nightly ETL job: CSV -> SQLite -> summary -> report.
set -eu
echo $$ >"$TMP/pipeline.pid"
cd "$1"
sqlite3 -bail sales.db <<'SQL'
.mode csv
.import raw.csv sales
.headers on
.once summary.csv
SELECT region, SUM(amount) AS total FROM sales GROUP BY region ORDER BY region;
SQL
awk -F, 'NR > 1 { printf "%s %d\n", $1, $2 * 2 }' summary.csv >doubled.txt
"$PYTHON" -c '
import os, sys
with open(sys.argv[1]) as source, open(sys.argv[2] + ".tmp", "w") as out:
    for line in source:
        region, value = line.split()
        out.write("%s=%s\n" % (region.upper(), value))
os.rename(sys.argv[2] + ".tmp", sys.argv[2])
' doubled.txt report.txt
sort -r doubled.txt >sorted.tmp
mv sorted.tmp sorted.txt
EOF
	mount_provfs
	PROVFS_JOB=nightly-etl sh "$TMP/pipeline.sh" "$MNT"
	stop_provfs

	[ "$(cat "$BACKING/report.txt")" = "$(printf 'EAST=2\nNORTH=34\nSOUTH=10')" ]
	local script_pid run
	script_pid=$(cat "$TMP/pipeline.pid")

	# One run, named by PROVFS_JOB, rooted at the script's shell.
	assert_sql "SELECT count(*) FROM runs WHERE job_name = 'nightly-etl'" 1
	run=$(q "SELECT id FROM runs WHERE job_name = 'nightly-etl'")
	assert_sql "SELECT named_by, root_pid FROM runs WHERE id = $run" "PROVFS_JOB|$script_pid"
	local script
	script=$(q "SELECT id FROM processes WHERE pid = $script_pid AND exec_index = 0")
	[ -n "$script" ]
	assert_process "$script" "$(real_exe sh)" sh "$TMP/pipeline.sh" "$MNT"
	assert_sql "SELECT run_id FROM processes WHERE id = $script" "$run"

	# Every output: one version, written, hashed, hash = xxhsum of the bytes.
	local out
	for out in sales.db summary.csv doubled.txt report.txt sorted.txt; do
		assert_single_written_version "$out"
	done

	# sqlite3 made sales.db and summary.csv, from raw.csv version 1.
	local sqlite
	sqlite=$(producer_of sales.db)
	[ -n "$sqlite" ]
	assert_process "$sqlite" "$(real_exe sqlite3)" sqlite3 -bail sales.db
	assert_sql "SELECT producer_process_id FROM versions WHERE id = ($(latest_version_sql summary.csv))" \
		"$sqlite"
	assert_sql "SELECT v.number, v.origin, v.hash FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            WHERE a.process_id = $sqlite AND a.path = 'raw.csv'" \
		"1|initial|$(xxh "$BACKING/raw.csv")"

	# awk read summary.csv as sqlite3 left it and made doubled.txt.
	local awk
	awk=$(producer_of doubled.txt)
	assert_process "$awk" "$(real_exe awk)" awk -F, 'NR > 1 { printf "%s %d\n", $1, $2 * 2 }' summary.csv
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $awk
	            AND read_version_id = ($(latest_version_sql summary.csv))" 1

	# python3 read doubled.txt and wrote report.txt.tmp, renamed into place:
	# the lineage is on the final name.
	local python
	python=$(producer_of report.txt)
	assert_sql "SELECT executable FROM processes WHERE id = $python" "$(realpath "$PYTHON")"
	[ "$(argv_of "$python" | head -n 2 | paste -sd ' ')" = "$PYTHON -c" ]
	[ "$(argv_of "$python" | tail -n 2 | paste -sd ' ')" = "doubled.txt report.txt" ]
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $python
	            AND read_version_id = ($(latest_version_sql doubled.txt))" 1
	assert_sql "SELECT path, how, until_ns IS NOT NULL FROM file_names
	            WHERE file_id = ($(file_id_sql report.txt)) ORDER BY since_ns, id" \
		"$(printf 'report.txt.tmp|create|1\nreport.txt|rename|0')"

	# sort read doubled.txt and made sorted.tmp; mv renamed it.
	local sort mv
	sort=$(producer_of sorted.txt)
	assert_process "$sort" "$(real_exe sort)" sort -r doubled.txt
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $sort
	            AND read_version_id = ($(latest_version_sql doubled.txt))" 1
	mv=$(q "SELECT process_id FROM namespace_events WHERE kind = 'rename'
	        AND path = 'sorted.tmp' AND new_path = 'sorted.txt'")
	assert_process "$mv" "$(real_exe mv)" mv sorted.tmp sorted.txt

	# All of them in the run, children of the script's shell.
	local p
	for p in "$sqlite" "$awk" "$python" "$sort" "$mv"; do
		assert_sql "SELECT run_id, parent_id FROM processes WHERE id = $p" "$run|$script"
	done
	# SQLite's journal is no file of its own.
	assert_sql "SELECT count(*) FROM files WHERE path LIKE '%-journal' OR path LIKE '%-wal'" 0
}

@test "output of a shell redirect ('prog >out') is produced by prog, not by the shell before exec" {
	printf 'b\na\nc\n' >"$BACKING/in.txt"
	mount_provfs
	(cd "$MNT" && sort in.txt >out.txt)
	stop_provfs
	assert_single_written_version out.txt
	local producer
	producer=$(producer_of out.txt)
	assert_process "$producer" "$(real_exe sort)" sort in.txt
}

@test "input of a shell redirect ('PROVFS_JOB=j prog <in'): the job's run read it, not the shell's" {
	printf 'create table t(x);\ninsert into t values (1);\n' >"$BACKING/etl.sql"
	echo hello >"$BACKING/in.txt"
	echo conf >"$BACKING/conf"
	mount_provfs
	(
		cd "$MNT" || exit 1
		PROVFS_JOB=redirected cat <in.txt >out.txt
		PROVFS_JOB=etl sqlite3 db.sqlite <etl.sql
		# A descriptor the shell itself holds is not handed to the jobs it runs.
		exec 3<conf
		PROVFS_JOB=beside cat in.txt >/dev/null
		exec 3<&-
	)
	stop_provfs
	# The run's inputs are what its processes read.
	local job path program
	for job in redirected:in.txt:cat etl:etl.sql:sqlite3; do
		IFS=: read -r job path program <<<"$job"
		# Read by the program, in its run.
		assert_sql "SELECT count(*), p.executable FROM accesses a
		            JOIN processes p ON p.id = a.process_id JOIN runs r ON r.id = p.run_id
		            WHERE r.job_name = '$job' AND a.path = '$path' AND a.read_version_id IS NOT NULL" \
			"1|$(real_exe "$program")"
	done
	assert_sql "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            JOIN runs r ON r.id = p.run_id WHERE r.job_name = 'beside' AND a.path = 'conf'" 0
	run -0 "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" export --format openlineage --job etl
	[[ "$output" == *'"eventType":"COMPLETE"'* ]]
	/usr/bin/python3 -c 'import json, sys
events = [json.loads(l) for l in sys.argv[1].splitlines()]
complete = [e for e in events if e["eventType"] == "COMPLETE"][0]
names = sorted(d["name"].rsplit("/", 1)[-1] for d in complete["inputs"])
assert names == ["etl.sql"], names' "$output"
}

@test "provfs-query runs lists the runs that used the mount, not a run of their ancestors only" {
	echo hello >"$BACKING/in.txt"
	mount_provfs
	# A new session whose shell only starts a job: its run has no access.
	setsid sh -c 'PROVFS_JOB=child cat "$1" >/dev/null' sh "$MNT/in.txt"
	stop_provfs
	# The store holds such runs (that shell's session, and those above it).
	[ "$(q "SELECT count(*) FROM runs r WHERE r.job_name != 'child' AND NOT EXISTS
	        (SELECT 1 FROM processes p JOIN accesses a ON a.process_id = p.id
	         WHERE p.run_id = r.id)")" -ge 1 ]
	run -0 "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" runs --format json
	/usr/bin/python3 -c 'import json, sys
runs = json.loads(sys.argv[1])["runs"]
assert [r["job"] for r in runs] == ["child"], runs' "$output"
}

# ------------------------------------------------------------ writers and readers

@test "two processes appending to one file: both accesses are writers of the final version" {
	mount_provfs
	# A opens, appends, waits; B appends and closes; A appends again and closes.
	"$PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, b"A1\n")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
os.write(fd, b"A2\n")
os.close(fd)
' "$MNT/log.txt" "$TMP/ready" "$TMP/go" 3>&- &
	local a=$!
	wait_for_file "$TMP/ready"
	sh -c 'echo B1 >>"$1"' sh "$MNT/log.txt"
	touch "$TMP/go"
	wait "$a"
	stop_provfs

	[ "$(cat "$BACKING/log.txt")" = "$(printf 'A1\nB1\nA2')" ]
	local final
	final=$(q "$(latest_version_sql log.txt)")
	assert_sql "SELECT origin, hash_state, hash FROM versions WHERE id = $final" \
		"written|hashed|$(xxh "$BACKING/log.txt")"
	# Both handles are writers of that version: the python3 one and the sh one.
	assert_sql "SELECT count(*), count(DISTINCT process_id) FROM accesses WHERE written_version_id = $final" "2|2"
	assert_sql "SELECT p.executable FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE a.written_version_id = $final ORDER BY p.executable" \
		"$(printf '%s\n' "$(realpath "$PYTHON")" "$(real_exe sh)" | sort)"
	# The last writer to close (python3) is the producer.
	assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.id = $final" "$(realpath "$PYTHON")"
}

@test "a process that opens O_RDWR and only reads is an input, not a producer" {
	printf 'some input\n' >"$BACKING/data.txt"
	# The daemon counts the bytes (kernel passthrough: NULL, passthrough_io.bats).
	mount_provfs -o nopassthrough
	"$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
assert os.read(fd, 100) == b"some input\n"
os.close(fd)
' "$MNT/data.txt"
	stop_provfs

	local file
	file=$(file_id_of data.txt)
	assert_sql "SELECT count(*), origin, hash FROM versions WHERE file_id = $file" \
		"1|initial|$(xxh "$BACKING/data.txt")"
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = $file" 1
	assert_sql "SELECT open_flags & 3, read_version_id IS NOT NULL, written_version_id IS NULL, bytes_written
	            FROM accesses WHERE file_id = $file" "2|1|1|0"
	assert_sql "SELECT p.executable FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = $file" "$(realpath "$PYTHON")"
	assert_sql "SELECT count(*) FROM versions WHERE producer_process_id IS NOT NULL AND file_id = $file" 0
}

# ------------------------------------------------------------ process identity

@test "pid reuse: two processes with the same pid are two process rows" {
	echo data >"$BACKING/f"
	mount_provfs
	local target attempt pid1 pid2
	target=$(free_pid_after $(($(cat /proc/sys/kernel/ns_last_pid) + 3000)))
	for attempt in $(seq 20); do
		target=$(free_pid_after "$target")
		rm -f "$TMP/pid1" "$TMP/pid2"
		echo $((target - 1)) >/proc/sys/kernel/ns_last_pid
		sh -c 'echo $$ >"$1"; read -r line <"$2"' sh "$TMP/pid1" "$MNT/f"
		sleep 0.05 # another clock tick: a start time of its own
		echo $((target - 1)) >/proc/sys/kernel/ns_last_pid
		sh -c 'echo $$ >"$1"; read -r line <"$2"' sh "$TMP/pid2" "$MNT/f"
		pid1=$(cat "$TMP/pid1") pid2=$(cat "$TMP/pid2")
		[ "$pid1" = "$pid2" ] && break
		target=$((target + 50))
	done
	[ "$pid1" = "$pid2" ] || skip "could not get the same pid twice (raced $attempt times)"
	stop_provfs

	assert_sql "SELECT count(*), count(DISTINCT start_ns) FROM processes WHERE pid = $pid1" "2|2"
	# Each of the two read f once.
	assert_sql "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE p.pid = $pid1 AND a.path = 'f' GROUP BY p.id" "$(printf '1\n1')"
	local first second
	first=$(q "SELECT id FROM processes WHERE pid = $pid1 ORDER BY start_ns LIMIT 1")
	second=$(q "SELECT id FROM processes WHERE pid = $pid1 ORDER BY start_ns DESC LIMIT 1")
	argv_of "$first" | grep -qx "$TMP/pid1"
	argv_of "$second" | grep -qx "$TMP/pid2"
	assert_sql "SELECT exited_ns IS NOT NULL, exit_known FROM processes WHERE id = $first" "1|1"
}

@test "pid reused within one clock tick (same PID@START): still two process rows, each with its own read" {
	echo data >"$BACKING/f"
	mount_provfs
	# Each shell writes "PID START_TICKS" (fields 1 and 22 of /proc/self/stat).
	local probe='read -r stat </proc/$$/stat; set -- ${stat##*) }; echo "$$ ${20}" >"$0"; read -r line <"$MNT/f"'
	local target attempt first second
	target=$(free_pid_after $(($(cat /proc/sys/kernel/ns_last_pid) + 3000)))
	for attempt in $(seq 50); do
		target=$(free_pid_after "$target")
		echo $((target - 1)) >/proc/sys/kernel/ns_last_pid
		sh -c "$probe" "$TMP/one"
		echo $((target - 1)) >/proc/sys/kernel/ns_last_pid
		sh -c "$probe" "$TMP/two"
		first=$(cat "$TMP/one") second=$(cat "$TMP/two")
		[ "$first" = "$second" ] && break
		target=$((target + 50))
	done
	[ "$first" = "$second" ] || skip "could not start two processes with the same pid in one tick"
	stop_provfs
	local pid=${first%% *}
	assert_sql "SELECT count(*) FROM processes WHERE pid = $pid" 2
	assert_sql "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE p.pid = $pid AND a.path = 'f' GROUP BY p.id" "$(printf '1\n1')"
}

@test "a process that execs another program: two images, same pid, linked, the read is the new image's" {
	echo payload >"$BACKING/f"
	mount_provfs
	sh -c 'echo $$ >"$2"; read -r line <"$1"; exec cat "$1"' sh "$MNT/f" "$TMP/pid" >"$TMP/out"
	stop_provfs
	[ "$(cat "$TMP/out")" = payload ]

	local pid before after
	pid=$(cat "$TMP/pid")
	assert_sql "SELECT count(*), count(DISTINCT start_ns) FROM processes WHERE pid = $pid" "2|1"
	before=$(q "SELECT id FROM processes WHERE pid = $pid AND exec_index = 0")
	after=$(q "SELECT id FROM processes WHERE pid = $pid AND exec_index = 1")
	assert_process "$before" "$(real_exe sh)" sh -c 'echo $$ >"$2"; read -r line <"$1"; exec cat "$1"' \
		sh "$MNT/f" "$TMP/pid"
	assert_process "$after" "$(real_exe cat)" cat "$MNT/f"
	assert_sql "SELECT previous_id FROM processes WHERE id = $after" "$before"
	# Same parent and run for both images.
	assert_sql "SELECT count(DISTINCT parent_id), count(DISTINCT run_id) FROM processes WHERE pid = $pid" "1|1"
	# One read-open each: the shell's read, and cat's.
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $before AND path = 'f'" 1
	assert_sql "SELECT count(*), min(read_version_id IS NOT NULL) FROM accesses
	            WHERE process_id = $after AND path = 'f'" "1|1"
}

@test "execs while other processes open files without pause: every open after an exec is the new image's" {
	# Lookups skip the connector's lock when its socket is empty and no
	# drain is applying events; the storm's own cats keep execs and exits
	# coming, so lookups take both ways, and meet drains of other threads.
	mkdir "$BACKING/d"
	local i
	for i in $(seq 50); do echo "$i" >"$BACKING/d/$i"; done
	echo payload >"$BACKING/f"
	mount_provfs
	local storm=()
	for i in 1 2; do
		(while [ ! -e "$TMP/stop" ]; do cat "$MNT"/d/* >/dev/null; done) &
		storm+=($!)
	done
	for i in $(seq 40); do
		sh -c 'read -r line <"$1"; exec cat "$1"' sh "$MNT/f" >>"$TMP/out"
	done
	touch "$TMP/stop"
	wait "${storm[@]}"
	stop_provfs
	[ "$(grep -c '^payload$' "$TMP/out")" = 40 ]
	# Each shell read f once, and each cat it became once.
	local expected
	expected=$(printf '%s|40\n' "$(real_exe cat)" "$(real_exe sh)" | sort)
	assert_sql "SELECT p.executable, count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE a.path = 'f' GROUP BY p.executable ORDER BY 1" "$expected"
}

@test "exit status is recorded: exit 3 gives WEXITSTATUS 3, a signal gives WTERMSIG" {
	echo x >"$BACKING/f"
	mount_provfs
	run sh -c 'echo $$ >"$2"; read -r line <"$1"; exit 3' sh "$MNT/f" "$TMP/pid3"
	[ "$status" -eq 3 ]
	run sh -c 'echo $$ >"$2"; read -r line <"$1"; kill -TERM $$' sh "$MNT/f" "$TMP/pid15"
	stop_provfs
	assert_sql "SELECT exit_known, (exit_status >> 8) & 255, exit_status & 127, exited_ns > start_ns
	            FROM processes WHERE pid = $(cat "$TMP/pid3")" "1|3|0|1"
	assert_sql "SELECT exit_known, exit_status & 127 FROM processes WHERE pid = $(cat "$TMP/pid15")" "1|15"
}

@test "a process's start time is its own, to the kernel's tick: not up to a second early" {
	echo x >"$BACKING/f"
	mount_provfs
	local i
	for i in 1 2 3 4 5; do
		date +%s%N >"$TMP/before$i"
		sh -c 'echo $$ >"$2"; read -r line <"$1"' sh "$MNT/f" "$TMP/pid$i"
		date +%s%N >"$TMP/after$i"
		sleep 0.13 # another fraction of a second for the next
	done
	stop_provfs
	for i in 1 2 3 4 5; do
		# /proc counts start times in ticks (10 ms at HZ=100): 20 ms of slack.
		assert_sql "SELECT start_ns >= $(cat "$TMP/before$i") - 20000000,
		                   start_ns <= $(cat "$TMP/after$i"),
		                   exited_ns - start_ns < 1000000000
		            FROM processes WHERE pid = $(cat "$TMP/pid$i")" "1|1|1"
	done
}

@test "a process that outlives a remount is one process and one run, before and after" {
	echo a >"$BACKING/a"
	echo b >"$BACKING/b"
	mount_provfs
	mkfifo "$TMP/go"
	start_background env PROVFS_JOB=outlives MNT="$MNT" FIFO="$TMP/go" \
		sh -c 'read -r x <"$MNT/a"; read -r _ <"$FIFO"; read -r x <"$MNT/b"'
	local job=$LAST_BG
	wait_until "[ \"\$(q \"SELECT count(*) FROM accesses WHERE path = 'a'\")\" = 1 ]" 20
	stop_provfs
	# Each daemon reads the boot time from the clocks itself: the same process
	# must come out with the same start time, or it is two processes and two runs.
	mount_provfs
	release "$TMP/go"
	wait "$job"
	stop_provfs
	assert_sql "SELECT count(DISTINCT p.id), count(DISTINCT p.run_id), count(DISTINCT a.mount_session_id)
	            FROM accesses a JOIN processes p ON p.id = a.process_id WHERE a.path IN ('a', 'b')" "1|1|2"
	assert_sql "SELECT count(*) FROM runs WHERE job_name = 'outlives'" 1
}

# ------------------------------------------------------------ executables in the mount

@test "exec of a script that lives in the mount: an is_exec access of the exec'd image" {
	printf '#!/bin/sh\nread -r line <"$(dirname "$0")/data.txt"\necho "$line"\n' >"$BACKING/job.sh"
	chmod 755 "$BACKING/job.sh"
	echo datum >"$BACKING/data.txt"
	mount_provfs
	run "$MNT/job.sh"
	[ "$status" -eq 0 ]
	[ "$output" = datum ]
	stop_provfs

	local access image
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'job.sh' AND is_exec = 1" 1
	access=$(q "SELECT id FROM accesses WHERE path = 'job.sh' AND is_exec = 1")
	image=$(q "SELECT process_id FROM accesses WHERE id = $access")
	# The image that runs the script: /bin/sh with the script as its argument.
	assert_process "$image" "$(real_exe sh)" /bin/sh "$MNT/job.sh"
	assert_sql "SELECT v.hash FROM accesses a JOIN versions v ON v.id = a.read_version_id WHERE a.id = $access" \
		"$(xxh "$BACKING/job.sh")"
	# The same image read data.txt.
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $image AND path = 'data.txt'" 1
}

@test "exec of a binary that lives in the mount: is_exec input, executable and its hash from the backing file" {
	cp "$(real_exe cat)" "$BACKING/mycat"
	echo meow >"$BACKING/in.txt"
	mount_provfs
	run "$MNT/mycat" "$MNT/in.txt"
	[ "$output" = meow ]
	stop_provfs

	local image
	image=$(q "SELECT process_id FROM accesses WHERE path = 'mycat' AND is_exec = 1")
	[ -n "$image" ]
	assert_process "$image" "$MNT_REAL/mycat" "$MNT/mycat" "$MNT/in.txt"
	assert_sql "SELECT executable_hash FROM processes WHERE id = $image" "$(xxh "$BACKING/mycat")"
	assert_sql "SELECT count(*) FROM accesses WHERE process_id = $image AND path = 'in.txt'
	            AND read_version_id IS NOT NULL" 1
}

# ------------------------------------------------------------ external changes

@test "a change made directly in BACKING: new 'external' version with the new hash, new bytes served" {
	mount_provfs
	echo 'version one' >"$MNT/same.txt"
	echo 'short' >"$MNT/grow.txt"
	echo 'a long original line' >"$MNT/shrink.txt"
	echo 'untouched' >"$BACKING/never.txt"
	# Read through the mount: the pages are in the kernel's cache now.
	[ "$(cat "$MNT/same.txt")" = 'version one' ]
	[ "$(cat "$MNT/grow.txt")" = short ]
	[ "$(cat "$MNT/shrink.txt")" = 'a long original line' ]
	[ "$(cat "$MNT/never.txt")" = untouched ]
	# Change them behind provfs's back: same size, longer, shorter, and one
	# that was only ever read.
	echo 'VERSION TWO' >"$BACKING/same.txt"
	echo 'much longer content now' >"$BACKING/grow.txt"
	echo 'tiny' >"$BACKING/shrink.txt"
	echo 'tampered!' >"$BACKING/never.txt"
	local path
	for path in same.txt grow.txt shrink.txt never.txt; do
		cmp "$BACKING/$path" "$MNT/$path"
		[ "$(stat -c %s "$MNT/$path")" = "$(stat -c %s "$BACKING/$path")" ]
	done
	stop_provfs

	for path in same.txt grow.txt shrink.txt never.txt; do
		assert_sql "SELECT origin, hash_state, hash, producer_process_id IS NULL FROM versions
		            WHERE id = ($(latest_version_sql "$path"))" "external|hashed|$(xxh "$BACKING/$path")|1"
		# The reader of the new bytes read the external version.
		assert_sql "SELECT a.read_version_id = ($(latest_version_sql "$path")) FROM accesses a
		            WHERE a.path = $(sqlq "$path") ORDER BY a.opened_ns DESC LIMIT 1" 1
	done
	assert_sql "SELECT group_concat(origin, ',') FROM (SELECT origin FROM versions
	            WHERE file_id = ($(file_id_sql same.txt)) ORDER BY number)" "written,external"
	assert_sql "SELECT group_concat(origin, ',') FROM (SELECT origin FROM versions
	            WHERE file_id = ($(file_id_sql never.txt)) ORDER BY number)" "initial,external"
}

# ------------------------------------------------------------ databases

@test "a SQLite job writing a .db file: one output file, hashed after its writers close" {
	mount_provfs
	# Rollback journal (the default), several transactions.
	sqlite3 "$MNT/dim.db" 'CREATE TABLE dim (k INTEGER PRIMARY KEY, v TEXT);' \
		"INSERT INTO dim (v) SELECT 'row' || value FROM generate_series(1, 2000);" \
		"UPDATE dim SET v = upper(v) WHERE k % 3 = 0;"
	# WAL mode: -wal and -shm come and go.
	sqlite3 "$MNT/wal.db" 'PRAGMA journal_mode=WAL;' 'CREATE TABLE t (x);' \
		"INSERT INTO t SELECT value FROM generate_series(1, 5000);" >/dev/null
	stop_provfs
	[ "$(sqlite3 "$BACKING/dim.db" 'SELECT count(*) FROM dim')" = 2000 ]

	assert_sql "SELECT path FROM files ORDER BY path" "$(printf 'dim.db\nwal.db')"
	assert_sql "SELECT count(*) FROM file_names WHERE path LIKE '%-journal' OR path LIKE '%-wal' OR path LIKE '%-shm'" 0
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE '%-journal' OR path LIKE '%-wal' OR path LIKE '%-shm'" 0
	local db
	for db in dim.db wal.db; do
		assert_single_written_version "$db"
		assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
		            WHERE v.id = ($(latest_version_sql "$db"))" "$(real_exe sqlite3)"
	done
}

# ------------------------------------------------------------ names

@test "hard link and rename history: file_names with how and until_ns, directory renames carry their files" {
	mount_provfs
	(
		cd "$MNT"
		echo one >f
		ln f g
		mv f h
		mkdir d
		echo two >d/x
		mv d e
	)
	stop_provfs

	assert_sql "SELECT path, how, until_ns IS NOT NULL FROM file_names
	            WHERE file_id = ($(file_id_sql g)) ORDER BY since_ns, id" \
		"$(printf 'f|create|1\ng|link|0\nh|rename|0')"
	assert_sql "SELECT count(DISTINCT file_id) FROM file_names WHERE path IN ('f', 'g', 'h')" 1
	assert_sql "SELECT path, how, until_ns IS NOT NULL FROM file_names
	            WHERE file_id = ($(file_id_sql e/x)) ORDER BY since_ns, id" \
		"$(printf 'd/x|create|1\ne/x|rename|0')"
	# The old name was closed when the new one began.
	assert_sql "SELECT (SELECT until_ns FROM file_names WHERE path = 'f') =
	                   (SELECT since_ns FROM file_names WHERE path = 'h')" 1
	assert_sql "SELECT path FROM files WHERE id = ($(file_id_sql e/x))" e/x
	# The creating open is an access of the file (O_CREAT, wrote version 1).
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = ($(file_id_sql h)) AND path = 'f'
	            AND open_flags & 64 AND written_version_id IS NOT NULL" 1
	# The link and the renames are namespace events naming the file and who did it.
	# A link's request names the inode: its event names the file's last known path.
	assert_sql "SELECT kind, path, new_path FROM namespace_events
	            WHERE file_id = ($(file_id_sql h)) AND kind IN ('link', 'rename') ORDER BY time_ns, id" \
		"$(printf 'link|f|g\nrename|f|h')"
	assert_sql "SELECT p.executable FROM namespace_events e JOIN processes p ON p.id = e.process_id
	            WHERE e.file_id = ($(file_id_sql h)) AND e.kind = 'link'" "$(real_exe ln)"
	assert_sql "SELECT p.executable FROM namespace_events e JOIN processes p ON p.id = e.process_id
	            WHERE e.kind = 'rename' AND e.path = 'd' AND e.new_path = 'e'" "$(real_exe mv)"
}

@test "a batch committed in pieces (each event its own transaction) records what one transaction does" {
	# The writer commits a batch in pieces once it has changed very many
	# rows (a queue of directory renames: recorder/writer.c,
	# ROWS_PER_TRANSACTION).  PROVFS_TEST_ROWS_PER_TRANSACTION=1 cuts every
	# batch after each event, so an open and its close, a version and the
	# handles that wrote it, a reader and the version it read, a rename and
	# the names beneath it land in different transactions.
	workload() {
		mkdir "$1"
		cd "$1"
		echo one >a.txt
		cat a.txt >/dev/null
		cp a.txt b.txt
		mkdir d
		for i in 1 2 3; do echo "$i" >"d/f$i"; done
		mv d e
		cat e/f2 >/dev/null
		printf 'two\n' >>a.txt
		sort a.txt >e/sorted
		ln e/sorted linked
		rm e/f1
		cd /
	}
	# What a store says of the run in directory $1, without ids and times.
	# Hashes of the last versions of files still there only: whether an
	# earlier one was hashed before the file changed again, or e/f1's
	# before the rm took it away, is a race with the hash pool.
	dump() {
		local last="= (SELECT max(number) FROM versions WHERE file_id = %s.file_id)
		            AND (SELECT removed_ns FROM files WHERE id = %s.file_id) IS NULL"
		# shellcheck disable=SC2059
		q "SELECT substr(a.path, length('$1') + 2), a.open_flags & 3,
		          w.number, CASE WHEN w.number $(printf "$last" w w) THEN w.hash END,
		          r.number, CASE WHEN r.number $(printf "$last" r r) THEN r.hash END,
		          a.closed_ns IS NOT NULL, a.bytes_written
		   FROM accesses a LEFT JOIN versions w ON w.id = a.written_version_id
		   LEFT JOIN versions r ON r.id = a.read_version_id
		   WHERE a.path LIKE '$1/%' ORDER BY a.opened_ns, a.id"
		q "SELECT substr(path, length('$1') + 2), how, until_ns IS NULL FROM file_names
		   WHERE path LIKE '$1/%' ORDER BY since_ns, id"
		q "SELECT kind, substr(path, length('$1') + 2), substr(new_path, length('$1') + 2)
		   FROM namespace_events WHERE path LIKE '$1/%' ORDER BY time_ns, id"
		q "SELECT events_lost, store_errors FROM recorder_stats"
	}
	# The WAL grows by the pages of every commit: many more with pieces.
	local whole_wal pieces_wal
	STORE=$TMP/whole.db mount_provfs
	(workload "$MNT/whole")
	sleep 0.5
	whole_wal=$(stat -c %s "$TMP/whole.db-wal")
	STORE=$TMP/whole.db stop_provfs
	PROVFS_TEST_ROWS_PER_TRANSACTION=1 STORE=$TMP/pieces.db mount_provfs
	(workload "$MNT/pieces")
	sleep 0.5
	pieces_wal=$(stat -c %s "$TMP/pieces.db-wal")
	STORE=$TMP/pieces.db stop_provfs
	echo "WAL bytes: one transaction a batch $whole_wal, each event its own $pieces_wal"
	[ "$pieces_wal" -gt $((2 * whole_wal)) ]
	local whole pieces
	whole=$(STORE=$TMP/whole.db dump whole)
	pieces=$(STORE=$TMP/pieces.db dump pieces)
	echo "$pieces"
	[ "$pieces" = "$whole" ]
	# The dump holds what the workload did, hashes and all (the last
	# column, bytes written, is unknown where the kernel passed them through).
	local hash
	hash=$(xxh "$BACKING/whole/a.txt")
	[[ "$whole" == *$'\n'"a.txt|1|2|$hash|||1|"* ]]     # the append wrote version 2
	[[ "$whole" == *$'\n'"e/sorted|1|1|$hash|||1|"* ]]  # sort's output, the same bytes
	[[ "$whole" == *$'\n'"a.txt|0|||2|$hash|1|"* ]]     # sort read version 2
	[[ "$whole" == *$'\n'"e/f2|rename|1"$'\n'* ]]                # carried by the directory's rename
	[[ "$whole" == *$'\n'"linked|link|1"$'\n'* ]]
	[[ "$whole" == *$'\n'"rename|d|e"$'\n'* ]]
	[[ "$whole" == *$'\n'"0|0" ]]                                 # nothing lost, no store error
}

@test "chmod and chown are events naming who made them; a change of times alone is none, and moves the version along" {
	mount_provfs
	echo data >"$MNT/f"
	chmod 600 "$MNT/f"
	chown 1:1 "$MNT/f"
	touch -d '2021-02-03 04:05:06 UTC' "$MNT/f"
	cat "$MNT/f" >/dev/null
	stop_provfs

	assert_sql "SELECT kind FROM namespace_events WHERE file_id = ($(file_id_sql f))
	            ORDER BY time_ns, id" "$(printf 'chmod\nchown')"
	assert_sql "SELECT p.executable FROM namespace_events e JOIN processes p ON p.id = e.process_id
	            WHERE e.file_id = ($(file_id_sql f)) AND e.kind = 'chmod'" "$(real_exe chmod)"
	assert_sql "SELECT p.executable FROM namespace_events e JOIN processes p ON p.id = e.process_id
	            WHERE e.file_id = ($(file_id_sql f)) AND e.kind = 'chown'" "$(real_exe chown)"
	# One version, holding the times it was given, and the cat read it: no
	# change is taken for one made outside provfs.
	assert_sql "SELECT count(*), min(origin), min(hash_state), min(mtime_ns) FROM versions
	            WHERE file_id = ($(file_id_sql f))" "1|written|hashed|1612325106000000000"
	assert_sql "SELECT a.read_version_id = ($(latest_version_sql f)) FROM accesses a
	            WHERE a.path = 'f' ORDER BY a.opened_ns DESC LIMIT 1" 1
}

# ------------------------------------------------------------ durability

@test "kill -9 of the daemon: store intact, events older than 0.5 s present, a new mount continues" {
	mount_provfs
	local daemon=$MOUNTED_PID
	echo first >"$MNT/kept.txt"
	cat "$MNT/kept.txt" >/dev/null
	sleep 0.6
	kill -9 "$daemon"
	wait_pids_gone "$daemon"
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	wait_unmounted "$MNT"

	assert_sql 'PRAGMA integrity_check' ok
	local file
	file=$(file_id_of kept.txt)
	[ -n "$file" ]
	assert_sql "SELECT number, origin, hash FROM versions WHERE file_id = $file" \
		"1|written|$(xxh "$BACKING/kept.txt")"
	assert_sql "SELECT count(*), sum(written_version_id IS NOT NULL), sum(read_version_id IS NOT NULL)
	            FROM accesses WHERE file_id = $file" "2|1|1"
	assert_sql "SELECT count(*), stopped_ns IS NULL FROM mount_sessions" "1|1"

	# Mount again on the same store: a second session, same file id, version 2.
	mount_provfs
	echo second >>"$MNT/kept.txt"
	stop_provfs
	assert_sql "SELECT count(*) FROM mount_sessions" 2
	assert_sql "SELECT count(*) FROM files" 1
	assert_sql "SELECT file_id_of FROM (SELECT ($(file_id_sql kept.txt)) AS file_id_of)" "$file"
	assert_sql "SELECT number, origin, hash FROM versions WHERE file_id = $file ORDER BY number" \
		"$(printf '1|written|%s\n2|written|%s' "$(q "SELECT hash FROM versions WHERE file_id = $file AND number = 1")" "$(xxh "$BACKING/kept.txt")")"
	assert_sql "SELECT a.mount_session_id FROM accesses a JOIN versions v ON v.id = a.written_version_id
	            WHERE v.file_id = $file AND v.number = 2" 2
}

@test "mounting again after a clean unmount continues the same file's history" {
	echo base >"$BACKING/f.txt"
	mount_provfs
	cat "$MNT/f.txt" >/dev/null
	stop_provfs
	mount_provfs
	cat "$MNT/f.txt" >/dev/null # unchanged: no new version
	echo more >>"$MNT/f.txt"
	stop_provfs
	assert_sql "SELECT count(*), count(stopped_ns) FROM mount_sessions" "2|2"
	assert_sql "SELECT count(*) FROM files" 1
	assert_sql "SELECT number, origin FROM versions ORDER BY number" "$(printf '1|initial\n2|written')"
	assert_sql "SELECT count(*) FROM accesses WHERE read_version_id = (SELECT id FROM versions WHERE number = 1)" 2
}

# ------------------------------------------------------------ options and configuration

@test "-o norecord: files pass through, nothing is recorded" {
	echo old >"$BACKING/in.txt"
	mount_provfs -o norecord
	cat "$MNT/in.txt" >/dev/null
	echo new >"$MNT/out.txt"
	mv "$MNT/out.txt" "$MNT/renamed.txt"
	[ "$(cat "$MNT/renamed.txt")" = new ]
	unmount_provfs
	[ "$(cat "$BACKING/renamed.txt")" = new ]
	if [ -e "$STORE" ]; then
		assert_sql "SELECT (SELECT count(*) FROM accesses) + (SELECT count(*) FROM files) +
		            (SELECT count(*) FROM versions) + (SELECT count(*) FROM processes) +
		            (SELECT count(*) FROM namespace_events)" 0
	fi
}

@test "exclude globs from provfs.conf: excluded paths work but leave nothing in the store" {
	write_conf '[record]' 'exclude = *.swp tmp/**'
	mount_provfs -o "config=$CONF"
	(
		cd "$MNT"
		mkdir -p sub tmp/deep sub/tmp
		echo a >.notes.swp
		echo b >sub/.x.swp
		echo c >tmp/a.txt
		echo d >tmp/deep/b.txt
		mv tmp/a.txt tmp/deep/a2.txt
		echo keep >keep.txt
		echo keep2 >sub/tmp/c.txt
		cat .notes.swp sub/.x.swp tmp/deep/b.txt tmp/deep/a2.txt keep.txt sub/tmp/c.txt
	) >"$TMP/out"
	stop_provfs
	[ "$(cat "$TMP/out")" = "$(printf 'a\nb\nd\nc\nkeep\nkeep2')" ]
	[ "$(cat "$BACKING/tmp/deep/a2.txt")" = c ]

	assert_sql "SELECT path FROM files ORDER BY path" "$(printf 'keep.txt\nsub/tmp/c.txt')"
	assert_sql "SELECT count(*) FROM file_names WHERE path LIKE '%.swp' OR path LIKE 'tmp/%'" 0
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE '%.swp' OR path LIKE 'tmp/%'" 0
	assert_sql "SELECT count(*) FROM namespace_events WHERE path LIKE '%.swp' OR path LIKE 'tmp/%'
	            OR new_path LIKE '%.swp' OR new_path LIKE 'tmp/%'" 0
}

@test "redact globs: matching argv words and the value after --token are stored as [REDACTED]" {
	write_conf '[record]' 'redact = *password* *token*'
	echo x >"$BACKING/f"
	mount_provfs -o "config=$CONF"
	sh -c 'cat "$1" >/dev/null' sh "$MNT/f" --password=hunter2
	"$PYTHON" -c 'import sys; open(sys.argv[1]).read()' "$MNT/f" --password=sup3rs3cret --token tok-abc123 --user bob
	stop_provfs

	local sh_id py_id
	sh_id=$(q "SELECT id FROM processes WHERE executable = '$(real_exe sh)' AND hex(argv) LIKE '%$(printf '%s' "$MNT/f" | xxd -p | tr -d '\n' | tr a-f A-F)%'")
	[ -n "$sh_id" ]
	assert_process "$sh_id" "$(real_exe sh)" sh -c 'cat "$1" >/dev/null' sh "$MNT/f" '[REDACTED]'
	# The python3 that read f (meson, running this suite, may be a python3 ancestor).
	py_id=$(q "SELECT DISTINCT p.id FROM processes p JOIN accesses a ON a.process_id = p.id
	           WHERE p.executable = '$(realpath "$PYTHON")' AND a.path = 'f'")
	assert_process "$py_id" "$(realpath "$PYTHON")" "$PYTHON" -c 'import sys; open(sys.argv[1]).read()' \
		"$MNT/f" '[REDACTED]' '[REDACTED]' '[REDACTED]' --user bob
	# The secrets are nowhere in the store's bytes.
	local secret
	for secret in hunter2 sup3rs3cret tok-abc123; do
		if grep -q -a -- "$secret" "$STORE" "$STORE"-wal 2>/dev/null; then
			echo "$secret is in the store"
			false
		fi
	done
}

@test "a program that writes its title over its argv (setproctitle): argv kept as /proc gave it, the text output counts the empty tail" {
	command -v cc >/dev/null || skip "no C compiler"
	# As node, npm and postgres do: the title over the first argument, the
	# rest of the argument space zeroed, which /proc gives as empty words.
	cat >"$TMP/titled.c" <<-'EOF'
		#include <fcntl.h>
		#include <string.h>
		#include <unistd.h>
		int main(int argc, char **argv)
		{
			char *end = argv[argc - 1] + strlen(argv[argc - 1]);
			const char *title = "etl-worker: loading";
			int fd;
			memset(argv[0], 0, (size_t)(end - argv[0]));
			memcpy(argv[0], title, strlen(title));
			fd = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
			if (fd < 0 || write(fd, "x\n", 2) != 2)
				return 1;
			return close(fd);
		}
	EOF
	cc -o "$TMP/titled" "$TMP/titled.c"
	mount_provfs
	(cd "$MNT" && "$TMP/titled" --table customers --batch-size 5000 --verbose)
	stop_provfs

	local producer words
	producer=$(producer_of out.txt)
	[ -n "$producer" ]
	# Nothing dropped from the record: the title, then an empty word for
	# each zero byte /proc found after it (the words' bytes were zeroed).
	local argv
	argv=$(q "SELECT hex(argv) FROM processes WHERE id = $producer" |
		"$PYTHON" -c 'import sys; w = bytes.fromhex(sys.stdin.read().strip()).split(b"\0")[:-1]; print(len(w), repr(w[0]), sum(1 for x in w if x))')
	words=${argv%% *}
	[ "$words" -gt 10 ]
	[ "$argv" = "$words b'etl-worker: loading' 1" ]

	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" producer "$MNT/out.txt"
	[ "$status" -eq 0 ]
	[[ "$output" == *"'etl-worker: loading' [and $((words - 1)) empty arguments]"* ]]
	[[ "$output" != *"'' ''"* ]]
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" producer "$MNT/out.txt" --format json
	[ "$status" -eq 0 ]
	[ "$(printf '%s' "$output" | "$PYTHON" -c 'import json, sys; print(len(json.load(sys.stdin)["process"]["argv"]))')" = "$words" ]
}

# SIGHUP rereads provfs.conf's [record] rules (../shared/INTERFACES.md:
# "policy and record rules"), with the mount options $@.
check_record_rules_reload() {
	write_conf '[record]' 'exclude = *.tmp' 'redact = *alpha-secret*'
	echo a >"$BACKING/a.tmp"
	echo b >"$BACKING/b.swp"
	echo c >"$BACKING/c.txt"
	mount_provfs -o "config=$CONF" "$@"
	local daemon=$MOUNTED_PID
	cat "$MNT/a.tmp" "$MNT/b.swp" >/dev/null
	sh -c 'cat "$1" >/dev/null' sh "$MNT/c.txt" alpha-secret-1 bravo-secret-1
	write_conf '[record]' 'exclude = *.swp' 'redact = *bravo-secret*'
	kill -HUP "$daemon"
	# Until the reload is in force: a.tmp's open is recorded.
	wait_until "cat '$MNT/a.tmp' >/dev/null && [ \"\$(q \"SELECT count(*) FROM accesses WHERE path = 'a.tmp'\")\" != 0 ]"
	cat "$MNT/b.swp" >/dev/null
	sh -c 'cat "$1" >/dev/null' sh "$MNT/c.txt" alpha-secret-2 bravo-secret-2
	# A file that does not load changes nothing.
	write_conf '[record]' 'exclude = *.txt' 'no_such_key = 1'
	kill -HUP "$daemon"
	sleep 1
	cat "$MNT/b.swp" "$MNT/c.txt" >/dev/null
	is_mounted "$MNT"
	stop_provfs

	# b.swp: its read before the reload only; a.tmp: its reads after it only
	# (the first, excluded then, opened before any of b.swp's).
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'b.swp'" 1
	assert_sql "SELECT count(*) > 0, min(opened_ns) > (SELECT opened_ns FROM accesses
	            WHERE path = 'b.swp') FROM accesses WHERE path = 'a.tmp'" "1|1"
	# c.txt: read by both sh -c runs, and once more after the refused file.
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'c.txt' AND process_id IN
	            (SELECT id FROM processes WHERE executable = '$(real_exe cat)')" 3
	local first second
	first=$(q "SELECT id FROM processes WHERE hex(argv) LIKE '%$(printf 'bravo-secret-1' | xxd -p | tr a-f A-F)%'")
	second=$(q "SELECT id FROM processes WHERE hex(argv) LIKE '%$(printf 'alpha-secret-2' | xxd -p | tr a-f A-F)%'")
	[ -n "$first" ]
	[ -n "$second" ]
	assert_process "$first" "$(real_exe sh)" sh -c 'cat "$1" >/dev/null' sh "$MNT/c.txt" \
		'[REDACTED]' bravo-secret-1
	assert_process "$second" "$(real_exe sh)" sh -c 'cat "$1" >/dev/null' sh "$MNT/c.txt" \
		alpha-secret-2 '[REDACTED]'
}

@test "SIGHUP rereads the [record] rules: exclude and redact apply from then on, a file that does not load changes neither" {
	check_record_rules_reload
}

@test "SIGHUP rereads the [record] rules also with -o nopolicy" {
	check_record_rules_reload -o nopolicy
}

# ------------------------------------------------------------ bad stores

# The last run_split was a refusal: status 2, one line naming $1 (regex), nothing mounted.
assert_store_refused() {
	if [ "$status" -ne 2 ]; then
		echo "exit status $status, expected 2; stderr: $stderr" >&2
		return 1
	fi
	if [ "${#stderr_lines[@]}" -ne 1 ]; then
		printf 'expected one line on stderr, got %d:\n%s\n' "${#stderr_lines[@]}" "$stderr" >&2
		return 1
	fi
	assert_match "${stderr_lines[0]}" "^provfs: "
	assert_match "${stderr_lines[0]}" "$1"
	assert_nothing_mounted
}

@test "store under a regular file: mount refused, exit 2, one line" {
	touch "$TMP/afile"
	run_split "$PROVFS" -o "store=$TMP/afile/provfs.db" "$BACKING" "$MNT"
	assert_store_refused "$TMP/afile.*(Not a directory|not a directory)"
}

@test "store on a read-only filesystem: mount refused, exit 2, one line" {
	mkdir -p "$TMP/ro"
	mount --bind "$TMP/ro" "$TMP/ro"
	mount -o remount,bind,ro "$TMP/ro"
	run_split "$PROVFS" -o "store=$TMP/ro/provfs.db" "$BACKING" "$MNT"
	umount "$TMP/ro"
	assert_store_refused "$TMP/ro.*([Rr]ead-only|readonly)"
}

@test "corrupt store (random bytes): mount refused, exit 2, one line, file left as it was" {
	head -c 65536 /dev/urandom >"$STORE"
	chmod 600 "$STORE"
	local before
	before=$(xxh "$STORE")
	run_split "$PROVFS" -o "store=$STORE" "$BACKING" "$MNT"
	assert_store_refused "$STORE.*(not a database|corrupt|malformed)"
	[ "$(xxh "$STORE")" = "$before" ]
}

@test "store of a newer schema (user_version 99): mount refused, exit 2, one line, not migrated" {
	sqlite3 "$STORE" 'PRAGMA user_version = 99; CREATE TABLE future (x);'
	chmod 600 "$STORE"
	run_split "$PROVFS" -o "store=$STORE" "$BACKING" "$MNT"
	assert_store_refused "$STORE.*99"
	assert_sql 'PRAGMA user_version' 99
	assert_sql "SELECT group_concat(name) FROM sqlite_master" future
}

@test "store inside BACKING reached through a symlink: refused" {
	ln -s "$BACKING" "$TMP/link"
	run_split "$PROVFS" -o "store=$TMP/link/provfs.db" "$BACKING" "$MNT"
	assert_store_refused "inside"
	[ ! -e "$BACKING/provfs.db" ]
}

# ------------------------------------------------------------ counted loss

@test "store on a full disk: the filesystem keeps serving, loss is counted and logged, recording resumes" {
	local small=$TMP/small
	mkdir -p "$small"
	mount -t tmpfs -o size=1M,mode=700 tmpfs "$small"
	STORE=$small/provfs.db
	start_background "$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" 2>"$TMP/daemon.err"
	wait_mounted "$MNT"
	# Fill the tmpfs but for a few pages.
	local free_kb
	free_kb=$(df -k --output=avail "$small" | tail -n 1)
	dd if=/dev/zero of="$small/filler" bs=1k count=$((free_kb - 8)) status=none 2>/dev/null || true
	# Events until the store fails: every write through the mount must succeed.
	local i=0 n
	mkdir "$MNT/many"
	while :; do
		for n in $(seq 50); do
			echo "line $i $n" >"$MNT/many/file-with-a-rather-long-name-$i-$n.txt"
		done
		i=$((i + 1))
		grep -q 'store failed' "$TMP/daemon.err" && break
		[ "$i" -lt 200 ] || break
		sleep 0.05
	done
	grep 'store failed' "$TMP/daemon.err"
	[ "$(cat "$MNT/many/file-with-a-rather-long-name-0-1.txt")" = "line 0 1" ]
	echo 'still serving' >"$MNT/during.txt"
	[ "$(cat "$MNT/during.txt")" = 'still serving' ]
	[ "$(cat "$BACKING/during.txt")" = 'still serving' ]
	# Free the space: recording resumes (the writer probes the store when
	# events arrive).
	rm -f "$small/filler"
	for i in $(seq 50); do
		grep -q 'recording resumed' "$TMP/daemon.err" && break
		echo poke >"$MNT/poke.txt"
		sleep 0.2
	done
	grep 'recording resumed' "$TMP/daemon.err"
	echo after >"$MNT/after.txt"
	cat "$MNT/after.txt" >/dev/null
	stop_provfs

	assert_sql 'PRAGMA integrity_check' ok
	assert_sql "SELECT events_lost > 0, store_errors > 0, last_error IS NOT NULL FROM recorder_stats" "1|1|1"
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'after.txt'" 2
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_sql after.txt))" "$(xxh "$BACKING/after.txt")"
}

@test "a version whose record was lost with the store: its later reader still gets a read version" {
	# A version completed while the store failed loses its row with the
	# batch.  A reader that opens it after recording resumed used to wait
	# for that row forever: no read version, and the reader and the
	# version held each other (LeakSanitizer in scripts/test-sanitizers).
	local small=$TMP/small
	mkdir -p "$small"
	mount -t tmpfs -o size=1M,mode=700 tmpfs "$small"
	STORE=$small/provfs.db
	start_background "$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" 2>"$TMP/daemon.err"
	wait_mounted "$MNT"
	dd if=/dev/zero of="$small/filler" bs=1k status=none 2>/dev/null || true
	local i=0 n
	mkdir "$MNT/many"
	until grep -q 'store failed' "$TMP/daemon.err"; do
		[ "$i" -lt 200 ]
		for n in $(seq 50); do
			echo "line $i $n" >"$MNT/many/file-with-a-rather-long-name-$i-$n.txt"
		done
		i=$((i + 1))
		sleep 0.05
	done
	# Written while every batch is lost: its version has no row (unless a
	# small batch fits into the frames a rolled-back one freed: filled
	# again first, and checked at the end).
	dd if=/dev/zero of="$small/filler2" bs=1k status=none 2>/dev/null || true
	echo 'lost with the store' >"$MNT/lost.txt"
	sleep 1
	rm -f "$small/filler" "$small/filler2"
	for i in $(seq 50); do
		grep -q 'recording resumed' "$TMP/daemon.err" && break
		echo poke >"$MNT/poke.txt"
		sleep 0.2
	done
	grep 'recording resumed' "$TMP/daemon.err"
	[ "$(cat "$MNT/lost.txt")" = 'lost with the store' ]
	stop_provfs

	assert_sql 'PRAGMA integrity_check' ok
	# The write was lost with the store (else the store took that batch
	# after all, and the case was not reached: said, not failed); the read
	# was recorded, with the version it read: the bytes it got, hashed.
	local reached=1
	if [ "$(q "SELECT count(*) FROM accesses WHERE path = 'lost.txt' AND written_version_id IS NOT NULL")" -ne 0 ]; then
		echo "# the store took lost.txt's batch: the lost-version case was not reached this run" >&3
		reached=0
	fi
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'lost.txt' AND read_version_id IS NOT NULL" 1
	assert_sql "SELECT v.hash FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            WHERE a.path = 'lost.txt'" "$(xxh "$BACKING/lost.txt")"
	if [ "$reached" -eq 1 ]; then
		# Written through the mount, its record lost: not a change made
		# outside provfs, and its writer (the shell) is named.
		assert_sql "SELECT v.origin FROM accesses a JOIN versions v ON v.id = a.read_version_id
		            WHERE a.path = 'lost.txt'" unrecorded
		assert_sql "SELECT p.executable LIKE '%bash' FROM accesses a
		            JOIN versions v ON v.id = a.read_version_id
		            JOIN processes p ON p.id = v.producer_process_id
		            WHERE a.path = 'lost.txt'" 1
		run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps
		echo "$output"
		[[ "$output" == *"versions changed outside provfs, unattributed (0)"* ]]
		[[ "$output" == *"versions written through provfs whose record the store lost (1)"* ]]
		[[ "$output" == *"lost.txt"* ]]
	fi
}

# ------------------------------------------------------------ open-heavy recording
#
# The request path keeps what an open learned about a file (its path, its
# inode's generation) while nothing can have changed it; these check that
# whatever can change it is seen.

@test "every open records the file's path at that open: after renames of its directory, of itself, and a link then unlink" {
	mount_provfs
	mkdir "$MNT/d"
	echo x >"$MNT/d/f"
	cat "$MNT/d/f" >/dev/null
	cat "$MNT/d/f" >/dev/null
	mv "$MNT/d" "$MNT/e" # the file's own ctime stays: only the directory moved
	cat "$MNT/e/f" >/dev/null
	mv "$MNT/e/f" "$MNT/e/g"
	cat "$MNT/e/g" >/dev/null
	ln "$MNT/e/g" "$MNT/h"
	rm "$MNT/e/g"
	cat "$MNT/h" >/dev/null
	# Moved behind provfs's back (the file's ctime moves with it).
	sleep 0.05
	mv "$BACKING/h" "$BACKING/k"
	cat "$MNT/k" >/dev/null
	stop_provfs

	assert_sql "SELECT group_concat(path, ',') FROM (SELECT path FROM accesses
	            WHERE file_id = ($(file_id_sql k)) ORDER BY opened_ns, id)" \
		"d/f,d/f,d/f,e/f,e/g,h,k"
}

@test "a file's path survives its chmod, touch and another file's unlink (GNU tar's pattern): the next open reads none from /proc, and a rename after still shows" {
	command -v strace >/dev/null || skip "strace is not installed"
	mount_provfs
	local i
	mkdir "$MNT/d"
	for i in $(seq 10); do
		echo x >"$MNT/d/f$i"
		chmod 600 "$MNT/d/f$i"
		touch -d @1000000 "$MNT/d/f$i"
	done
	# tar unlinks the placeholder of each symlink once, at the end.
	echo y >"$MNT/placeholder"
	rm "$MNT/placeholder"
	trace_daemon readlinkat
	for i in $(seq 10); do
		cat "$MNT/d/f$i" >/dev/null
	done
	untrace_daemon
	[ "$(grep -c readlinkat "$TMP/trace")" = 0 ]
	# The paths it kept are still dropped when a directory moves, or the
	# file itself (a link, then an unlink of its old name).
	mv "$MNT/d" "$MNT/e"
	cat "$MNT/e/f1" >/dev/null
	ln "$MNT/e/f2" "$MNT/g"
	rm "$MNT/e/f2"
	chmod 644 "$MNT/g"
	cat "$MNT/g" >/dev/null
	stop_provfs

	# Each file's accesses: echo, touch (it opens the file), cat, then cat under its new name.
	assert_sql "SELECT group_concat(path, ',') FROM (SELECT path FROM accesses
	            WHERE file_id = ($(file_id_sql e/f1)) ORDER BY opened_ns, id)" "d/f1,d/f1,d/f1,e/f1"
	assert_sql "SELECT group_concat(path, ',') FROM (SELECT path FROM accesses
	            WHERE file_id = ($(file_id_sql g)) ORDER BY opened_ns, id)" "d/f2,d/f2,d/f2,g"
}

@test "another file's unlink leaves the generations read before: the next opens read none (FS_IOC_GETVERSION), a rename does" {
	command -v strace >/dev/null || skip "strace is not installed"
	mount_provfs
	local i
	for i in $(seq 10); do
		echo x >"$MNT/f$i"
		cat "$MNT/f$i" >/dev/null
	done
	# Removed last names (tar's placeholder), a link and its removal.
	echo y >"$MNT/placeholder"
	rm "$MNT/placeholder"
	echo o >"$MNT/other"
	ln "$MNT/other" "$MNT/other.link"
	rm "$MNT/other.link" "$MNT/other"
	trace_daemon ioctl
	for i in $(seq 10); do
		cat "$MNT/f$i" >/dev/null
	done
	sleep 0.2
	local read_before
	read_before=$(grep -c FS_IOC_GETVERSION "$TMP/trace") || true
	# A rename may free what it replaces: every generation is read again.
	echo z >"$MNT/tmp"
	mv "$MNT/tmp" "$MNT/renamed"
	for i in $(seq 10); do
		cat "$MNT/f$i" >/dev/null
	done
	sleep 0.2
	untrace_daemon
	cat "$TMP/trace"
	[ "$read_before" = 0 ]
	[ "$(grep -c FS_IOC_GETVERSION "$TMP/trace")" -ge 10 ]
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = ($(file_id_sql f3))" 4
}

@test "an inode number reused by a new file: a new file row, not a version of the old file" {
	mount_provfs
	local inode i reused=
	echo old >"$MNT/old"
	cat "$MNT/old" >/dev/null
	inode=$(stat -c %i "$BACKING/old")
	rm "$MNT/old"
	# ext4 hands a freed inode out again soon; try until it does.
	for i in $(seq 100); do
		echo new >"$MNT/new$i"
		if [ "$(stat -c %i "$BACKING/new$i")" = "$inode" ]; then
			reused=new$i
			break
		fi
	done
	# The same again behind provfs's back: deleted and created in BACKING.
	local inode2 j outside=
	echo old2 >"$MNT/old2"
	cat "$MNT/old2" >/dev/null
	inode2=$(stat -c %i "$BACKING/old2")
	sleep 0.05
	rm "$BACKING/old2"
	for j in $(seq 100); do
		echo new >"$BACKING/other$j"
		if [ "$(stat -c %i "$BACKING/other$j")" = "$inode2" ]; then
			outside=other$j
			cat "$MNT/$outside" >/dev/null
			break
		fi
	done
	stop_provfs

	if [ -z "$reused" ] && [ -z "$outside" ]; then
		skip "the backing filesystem reused no inode number in 100 creates"
	fi
	if [ -n "$reused" ]; then
		assert_sql "SELECT count(DISTINCT generation) = count(*) FROM files WHERE inode = $inode" 1
		assert_sql "SELECT count(*) FROM files WHERE inode = $inode" 2
		assert_sql "SELECT origin FROM versions WHERE file_id = ($(file_id_sql "$reused"))" written
	fi
	if [ -n "$outside" ]; then
		assert_sql "SELECT count(*) FROM files WHERE inode = $inode2" 2
		assert_sql "SELECT group_concat(origin) FROM versions WHERE file_id =
		            (SELECT id FROM files WHERE inode = $inode2 ORDER BY id DESC LIMIT 1)" initial
	fi
}

# The scheduling policy of the daemon $1's writer thread, as chrt names it.
writer_policy() {
	local task
	for task in /proc/"$1"/task/*; do
		[ "$(cat "$task/comm" 2>/dev/null)" = provfs-writer ] || continue
		chrt -p "${task##*/}" | sed -n 's/.*current scheduling policy: //p'
	done
}

@test "the writer runs in the background; a quarter-full queue brings it back to normal priority until it has caught up, nothing lost" {
	mkdir "$BACKING/data"
	for i in $(seq 1 300); do echo "$i" >"$BACKING/data/f$i"; done
	PROVFS_TEST_QUEUE_CAPACITY=512 mount_provfs
	local daemon=$MOUNTED_PID
	[ "$(writer_policy "$daemon")" = SCHED_IDLE ]

	# Another connection holds the store's write lock: the writer waits for
	# it (its busy timeout is 5 s) while 300 opens and closes queue, past a
	# quarter of 512 (then the queue fills and the reader waits).
	mkfifo "$TMP/release"
	python3 - "$STORE" "$TMP/locked" "$TMP/release" <<'EOF' &
import sqlite3, sys
store, locked, release = sys.argv[1:]
db = sqlite3.connect(store, isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
open(locked, "w").close()
open(release).read()
db.execute("ROLLBACK")
EOF
	local holder=$!
	wait_until '[ -e "$TMP/locked" ]'
	cat "$MNT"/data/f* >/dev/null &
	local reader=$!
	local boosted=0
	wait_until '[ "$(writer_policy "$daemon")" = SCHED_OTHER ]' 4 && boosted=1
	echo >"$TMP/release"
	wait "$holder"
	wait "$reader"
	[ "$boosted" = 1 ]
	wait_until '[ "$(writer_policy "$daemon")" = SCHED_IDLE ]'
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE 'data/f%'" 300
	assert_sql "SELECT events_lost, queue_capacity FROM recorder_stats" "0|512"
}

@test "a daemon that could not bring its writer back from the background (no CAP_SYS_NICE) keeps it at normal priority, and records" {
	echo data >"$BACKING/in.txt"
	setpriv --bounding-set -sys_nice "$PROVFS" -o "store=$STORE" "$BACKING" "$MNT" \
		2>"$TMP/mount.err"
	wait_mounted "$MNT"
	local daemon
	daemon=$(provfs_pids "$MNT" | head -n 1)
	# CAP_SYS_NICE is bit 23 of the daemon's capabilities: gone.
	[ $((0x$(awk '/^CapEff:/ { print $2 }' "/proc/$daemon/status") >> 23 & 1)) = 0 ]
	[ "$(writer_policy "$daemon")" = SCHED_OTHER ]
	cat "$MNT/in.txt" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'in.txt'" 1
}

# Mount (with "$@" before the options) a tmpfs, where every new file is a
# new state; let 2,100 files come and go in 14 rounds, each waited for
# until the store has its rows and hashes (a state still in use by a queued
# event or a hash job stays, and the table may grow to twice their number);
# unmount.  $TMP/daemon.err has the daemon's -d log, and before the rounds
# run_before_rounds, if set, runs.
churn_file_table() {
	local backing daemon
	backing=$(mktemp -d /dev/shm/provfs-table.XXXXXX)
	echo "$backing" >"$TMP/.shm_backing"
	"$@" "$PROVFS" -d -o "store=$STORE${MOUNT_CONFIG:+,config=$MOUNT_CONFIG}" "$backing" "$MNT" \
		>/dev/null 2>"$TMP/daemon.err" 3>&- &
	daemon=$!
	echo "$daemon" >>"$TMP/.background"
	wait_mounted "$MNT"
	[ -z "${run_before_rounds:-}" ] || eval "$run_before_rounds"
	timeout -s KILL 300 "$PYTHON" - "$MNT" "$STORE" <<-'PY'
	import os, sqlite3, sys, time
	mnt, store = sys.argv[1], sys.argv[2]
	files = 0
	for r in range(14):
	    d = os.path.join(mnt, "round%d" % r)
	    os.mkdir(d)
	    names = [os.path.join(d, "f%d" % i) for i in range(150)]
	    for i, name in enumerate(names):
	        with open(name, "w") as f:
	            f.write("row %d %d\n" % (r, i))
	    for i, name in enumerate(names):
	        with open(name) as f:
	            assert f.read() == "row %d %d\n" % (r, i)
	    for name in names:
	        os.unlink(name)
	    os.rmdir(d)
	    files += len(names)
	    db = sqlite3.connect("file:%s?mode=ro" % store, uri=True)
	    for _ in range(600):
	        hashed, = db.execute("SELECT count(*) FROM versions WHERE hash_state = 'hashed'").fetchone()
	        read, = db.execute("SELECT count(*) FROM accesses WHERE read_version_id IS NOT NULL").fetchone()
	        if hashed >= files and read >= files:
	            break
	        time.sleep(0.05)
	    else:
	        sys.exit("round %d: %d hashed versions and %d reads recorded of %d" % (r, hashed, read, files))
	    db.close()
	PY
	fusermount3 -u "$MNT"
	wait_pids_gone "$daemon"
	rm -rf "$backing"
}

# The unmount's line "file table: STATES file states at unmount (limit
# LIMIT); EVICTED evicted": STATES <= LIMIT = $1, EVICTED >= $2.
assert_file_table() {
	run grep -o 'file table: [0-9]* file states at unmount (limit [0-9]*); [0-9]* evicted' \
		"$TMP/daemon.err"
	echo "$output"
	[ "$status" -eq 0 ]
	local states limit evicted
	states=$(echo "$output" | awk '{print $3}')
	limit=$(echo "$output" | awk '{print $9}' | tr -d ');')
	evicted=$(echo "$output" | awk '{print $10}')
	[ "$limit" -eq "$1" ]
	[ "$states" -le "$1" ]
	[ "$evicted" -ge "$2" ]
}

@test "the recorder's table of file states stays bounded when more files come and go than it holds" {
	# Each file's known version (and the accesses that wrote it) hold the
	# state; such states must still count as idle, or the table grows
	# without bound and every create scans the whole of it.
	churn_file_table env PROVFS_TEST_FILE_TABLE_LIMIT=400
	# 2,100 files came and went; no more than the limit stay.
	assert_file_table 400 1600
}

@test "[record] remembered_files sets the recorder's table, and a reload changes it" {
	write_conf '[record]' 'remembered_files = 8192'
	MOUNT_CONFIG=$CONF
	# shellcheck disable=SC2034 # churn_file_table runs it
	run_before_rounds='write_conf "[record]" "remembered_files = 1024"
		kill -HUP "$daemon"
		wait_until "grep -q \"reloaded .*$CONF\" \"$TMP/daemon.err\""'
	churn_file_table env
	# 2,100 files through a table of 1,024 (halved by each eviction pass).
	assert_file_table 1024 1000
}

@test "changes in a directory name it as it is now: after renames of it and above it, and a directory made again" {
	mount_provfs
	mkdir -p "$MNT/a/d"
	local f
	for f in f1 f2 f3 f4; do echo "$f" >"$MNT/a/d/$f"; done
	rm "$MNT/a/d/f1"
	mv "$MNT/a/d" "$MNT/a/e"
	rm "$MNT/a/e/f2"
	mv "$MNT/a" "$MNT/b"
	rm "$MNT/b/e/f3"
	mv "$MNT/b/e/f4" "$MNT/b/e/f5"
	rm "$MNT/b/e/f5"
	rmdir "$MNT/b/e"
	# A new directory, maybe with the removed one's inode number.
	mkdir "$MNT/c"
	echo g >"$MNT/c/g"
	rm "$MNT/c/g"
	stop_provfs

	assert_sql "SELECT group_concat(kind || ' ' || path || coalesce(' ' || new_path, ''), ',')
	            FROM (SELECT kind, path, new_path FROM namespace_events
	                  WHERE kind IN ('unlink', 'rename') ORDER BY time_ns, id)" \
		"unlink a/d/f1,rename a/d a/e,unlink a/e/f2,rename a b,unlink b/e/f3,rename b/e/f4 b/e/f5,unlink b/e/f5,unlink b/e,unlink c/g"
}

@test "a file renamed while a handle writes it: the next open records its new name" {
	mount_provfs
	exec 7>"$MNT/w"
	echo a >&7
	mv "$MNT/w" "$MNT/v"
	echo b >&7
	exec 7>&-
	cat "$MNT/v" >/dev/null
	echo c >"$MNT/u"
	cat "$MNT/u" >/dev/null
	stop_provfs

	assert_sql "SELECT group_concat(path, ',') FROM (SELECT path FROM accesses
	            WHERE file_id = ($(file_id_sql v)) ORDER BY opened_ns, id)" "w,v"
	assert_sql "SELECT group_concat(path, ',') FROM (SELECT path FROM accesses
	            WHERE file_id = ($(file_id_sql u)) ORDER BY opened_ns, id)" "u,u"
}
