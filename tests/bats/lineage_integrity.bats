#!/usr/bin/env bats
# lineage_integrity.bats - recorded facts stay true under load and concurrency
# (issue 8, cases 3, 4, 5, 6, 8) and the writer keeps up whatever the size
# of the store (issue 9).
#
# Real programs through a real mount, then plain sqlite3 on the store, as
# in recorder.bats.  A wrong record is worse than a missing one: where a
# hash cannot be known, the store must say so ('changed', 'unhashed',
# 'pending'), never keep a hash of other bytes.

load helpers
load recorder_helpers

setup() {
	common_setup
	chmod 700 "$BACKING"
	CONF=$TMP/provfs.conf
}

teardown() {
	common_teardown
}

write_conf() {
	printf '%s\n' "$@" >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
}

# wait_hashed N: until the store holds N hashed versions (10 s at most).
wait_hashed() {
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'hashed'\")\" = $1 ]"
}

producer_of() {
	q "SELECT producer_process_id FROM versions WHERE id = ($(latest_version_sql "$1"))"
}

# Every version recorded as 'hashed' has the hash of the bytes it names:
# the backing file's for the newest version of each file given.
assert_newest_hashes_true() {
	local path expected actual
	for path in "$@"; do
		actual=$(q "SELECT hash_state || ' ' || coalesce(hash, '') FROM versions
		            WHERE id = ($(latest_version_sql "$path"))")
		case $actual in
		"hashed "*)
			expected=$(xxh "$BACKING/$path")
			if [ "$actual" != "hashed $expected" ]; then
				echo "$path: recorded '$actual', the bytes hash to $expected" >&2
				return 1
			fi
			;;
		esac
	done
}

# --------------------------------------------------- case 3: bounded hash jobs

# occupy_hash_pool [GIB]: two sparse files of GIB GiB (default 400), written
# out of order: both hashing threads stay busy with them (400 GiB: for
# minutes, until the unmount interrupts them).
occupy_hash_pool() {
	"$PYTHON" - "$MNT" "${1:-400}" <<'EOF'
import os, sys
for name in ("big1", "big2"):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"end", int(sys.argv[2]) << 30)
    os.close(fd)
EOF
}

@test "hash jobs: 4,000 random-write versions under a 1,024-descriptor limit: no EMFILE, unmount in seconds" {
	mount_provfs
	prlimit --pid "$MOUNTED_PID" --nofile=1024:1024
	occupy_hash_pool
	# 100 files, 40 versions each, every one written out of order (a pool job).
	"$PYTHON" - "$MNT" <<'EOF'
import os, sys
errors = 0
for round in range(40):
    for i in range(100):
        try:
            fd = os.open(os.path.join(sys.argv[1], "s%03d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
            os.pwrite(fd, b"%05d" % round, 1)
            os.pwrite(fd, b"x", 0)
            os.close(fd)
        except OSError as e:
            errors += 1
            if errors < 5:
                print("error:", round, i, e, file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
	local started=$SECONDS
	stop_provfs
	# The backlog (two 400 GiB files, thousands of versions) is not waited for.
	[ $((SECONDS - started)) -le 10 ]
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 's%'" 4000
	# Interrupted hashes stay pending, never a wrong hash.
	assert_sql "SELECT group_concat(hash_state) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path IN ('big1', 'big2')" "pending,pending"
	local wrong
	wrong=$(q "SELECT f.path || ' ' || v.hash FROM versions v JOIN files f ON f.id = v.file_id
	           WHERE v.hash_state = 'hashed' AND f.path LIKE 's%' AND v.number = 40" |
		(cd "$BACKING" && while read -r path hash; do
			[ "$(xxh "$path")" = "$hash" ] || echo "$path"
		done))
	[ -z "$wrong" ]
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 's%' AND v.number < 40 AND v.hash_state = 'hashed'" 0
}

@test "hash jobs: the queue is bounded: versions beyond it are 'unhashed', counted, listed by gaps" {
	mount_provfs
	occupy_hash_pool
	"$PYTHON" - "$MNT" <<'EOF'
import os, sys
for i in range(4500):
    fd = os.open(os.path.join(sys.argv[1], "s%05d" % i), os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"%05d" % i, 1)
    os.pwrite(fd, b"x", 0)
    os.close(fd)
EOF
	local started=$SECONDS
	stop_provfs
	[ $((SECONDS - started)) -le 10 ]
	local unhashed
	unhashed=$(q "SELECT count(*) FROM versions WHERE hash_state = 'unhashed'")
	[ "$unhashed" -gt 0 ]
	assert_sql "SELECT hashes_unhashed FROM recorder_stats" "$unhashed"
	"$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps >"$TMP/gaps"
	grep -q "unhashed" "$TMP/gaps"
}

# state_of PATH: hash_state and hash_method of the newest version of PATH.
state_of() {
	q "SELECT hash_state || ' ' || coalesce(hash_method, '-') FROM versions
	   WHERE id = ($(latest_version_sql "$1"))"
}

@test "hash jobs an unmount left pending: the next mount hashes a file unchanged since, and says 'changed' or 'failed' of one changed or removed outside" {
	mount_provfs
	occupy_hash_pool
	# Behind the two large files, these wait for a hash thread.
	echo kept >"$MNT/kept"
	echo edited >"$MNT/edited"
	echo gone >"$MNT/gone"
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 5 ]"
	stop_provfs
	local path
	for path in big1 big2 kept edited gone; do
		[ "$(state_of "$path")" = "pending -" ]
	done
	# Outside any mount: one file changed, three removed.
	echo more >>"$BACKING/edited"
	rm "$BACKING/gone" "$BACKING/big1" "$BACKING/big2"
	mount_provfs
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]"
	[ "$(state_of kept)" = "hashed reread" ]
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_sql kept))" "$(xxh "$BACKING/kept")"
	[ "$(state_of edited)" = "changed -" ]
	[ "$(state_of gone)" = "failed -" ]
	[ "$(state_of big1)" = "failed -" ]
	# What an auditor runs: the file is what provfs recorded.
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify "$MNT/kept"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *ok*kept* ]]
	# Read now, it is the version recorded, not a change made outside provfs.
	cat "$MNT/kept" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql kept))" 1
}

@test "hash jobs left pending while another daemon serves the same directory: left to it" {
	mount_provfs
	occupy_hash_pool
	echo kept >"$MNT/kept"
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 3 ]"
	# A second mount of the same directory while the first still serves it.
	local second=$TMP/second
	mkdir "$second"
	MOUNT_POINT=$second mount_provfs
	sleep 1
	[ "$(state_of kept)" = "pending -" ]
	fusermount3 -u "$second"
	wait_unmounted "$second"
}

@test "hash jobs: one pending job per file: superseded versions are 'changed', the newest is hashed" {
	mount_provfs
	occupy_hash_pool 24
	"$PYTHON" - "$MNT" <<'EOF'
import os, sys
mnt = sys.argv[1]
for i in range(300):
    fd = os.open(os.path.join(mnt, "churn"), os.O_WRONLY | os.O_CREAT, 0o644)
    os.pwrite(fd, b"%05d" % i, 1)
    os.pwrite(fd, b"x", 0)
    os.close(fd)
EOF
	# Let the pool finish the newest job before unmounting.
	sleep 1
	wait_until "[ \"\$(q \"SELECT hash_state FROM versions WHERE id = (\$(latest_version_sql churn))\")\" != pending ]" 240
	stop_provfs
	# (A release may come after the next open: then two closes make one version.)
	local versions
	versions=$(q "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql churn))")
	[ "$versions" -ge 100 ]
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql churn))" \
		"hashed|$(xxh "$BACKING/churn")"
	# The superseded ones never got a hash of bytes that were not theirs.
	assert_sql "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql churn))
	            AND hash_state = 'changed' AND number < $versions" $((versions - 1))
}

# --------------------------------------------------- case 4: readers of files being written

@test "a reader of a file being written reads the version its writer completes, no external version" {
	mount_provfs
	(for i in 1 2 3; do echo $i; sleep 1; done) >"$MNT/log" &
	local writer=$!
	sleep 1.5
	cat "$MNT/log" >"$TMP/seen"
	wait "$writer"
	stop_provfs
	assert_sql "SELECT count(*), origin FROM versions WHERE file_id = ($(file_id_sql log))" "1|written"
	# cat's access has as input the version the loop completed.
	assert_sql "SELECT a.read_version_id = ($(latest_version_sql log)) FROM accesses a
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql log)) AND p.executable = '$(real_exe cat)'" 1
	assert_sql "SELECT count(*) FROM versions WHERE origin IN ('external', 'initial')" 0
}

@test "create, close, rename, open read-only, close, unlink, 200 times: no external version" {
	mount_provfs
	"$PYTHON" - "$MNT" <<'EOF'
import os, sys
os.chdir(sys.argv[1])
for i in range(200):
    fd = os.open("a%d" % i, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o644)
    os.write(fd, b"data %d\n" % i)
    os.close(fd)
    os.rename("a%d" % i, "b%d" % i)
    fd = os.open("b%d" % i, os.O_RDONLY)
    assert os.read(fd, 100) == b"data %d\n" % i
    os.close(fd)
    os.unlink("b%d" % i)
EOF
	stop_provfs
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'external'" 0
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'initial'" 0
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'written'" 200
	"$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps --format json >"$TMP/gaps.json"
	"$PYTHON" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert d["external_versions"] == [], d["external_versions"]' "$TMP/gaps.json"
	# Every read names the version written before it.
	assert_sql "SELECT count(*) FROM accesses WHERE open_flags & 3 = 0 AND read_version_id IS NULL" 0
}

# --------------------------------------------------- case 5: the producer is the process that wrote

@test "producer: a subshell writing between sleeps is the producer, not sleep" {
	mount_provfs
	(for i in 1 2 3; do echo $i; sleep 1; done) >"$MNT/log"
	stop_provfs
	local producer
	producer=$(producer_of log)
	assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(real_exe bash)"
}

@test "producer: '{ python3 -c ...; /bin/true; } >o.txt' is python3 with its argv" {
	mount_provfs
	{ "$PYTHON" -c 'print(1)'; /bin/true; } >"$MNT/o.txt"
	stop_provfs
	local producer
	producer=$(producer_of o.txt)
	assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(realpath "$PYTHON")"
	[ "$(argv_line_of "$producer")" = "$PYTHON -c print(1)" ]
}

@test "producer: a handle opened read-write that writes nothing is never the producer" {
	echo a >"$BACKING/o.csv"
	mount_provfs
	# Alone: no new version.
	bash -c 'exec 3<>"$1"; exec 3>&-' bash "$MNT/o.csv"
	# With a writer: the writer is the producer even when the idle handle closes last.
	"$PYTHON" -c '
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.write(fd, b"b\n")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
os.close(fd)
' "$MNT/o.csv" "$TMP/ready" "$TMP/go" &
	local writer=$!
	wait_for_file "$TMP/ready"
	bash -c 'exec 3<>"$1"; touch "$2"; sleep 1; exec 3>&-' bash "$MNT/o.csv" "$TMP/go"
	wait "$writer"
	stop_provfs
	local file
	file=$(file_id_of o.csv)
	assert_sql "SELECT group_concat(origin) FROM versions WHERE file_id = $file ORDER BY number" \
		"initial,written"
	assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.id = ($(latest_version_sql o.csv))" "$(realpath "$PYTHON")"
}

@test "producer: a process that writes and exits at once is stored with its program and argv" {
	mount_provfs
	for i in 1 2 3 4 5; do
		"$PYTHON" -c 'import os; os.write(1, b"x")' >"$MNT/quick$i"
	done
	stop_provfs
	for i in 1 2 3 4 5; do
		local producer
		producer=$(producer_of "quick$i")
		assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(realpath "$PYTHON")"
		[ "$(argv_line_of "$producer")" = "$PYTHON -c import os; os.write(1, b\"x\")" ]
	done
}

@test "producer: the redirect rule holds (sort >out: sort, not the shell)" {
	printf 'b\na\n' >"$BACKING/in.txt"
	mount_provfs
	(cd "$MNT" && sort in.txt >out.txt)
	stop_provfs
	local producer
	producer=$(producer_of out.txt)
	assert_sql "SELECT executable FROM processes WHERE id = $producer" "$(real_exe sort)"
}

# --------------------------------------------------- case 6: unobserved writes

@test "a handle opened under an excluded name, renamed back, written and touched: the next read is of the new bytes" {
	write_conf '[record]' 'exclude = *.swp'
	mount_provfs -o "config=$CONF"
	printf 'aaaa' >"$MNT/data.csv"
	local mtime
	mtime=$(stat -c %Y "$MNT/data.csv")
	mv "$MNT/data.csv" "$MNT/x.swp"
	"$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1] + "/x.swp", os.O_WRONLY)
os.rename(sys.argv[1] + "/x.swp", sys.argv[1] + "/data.csv")
os.pwrite(fd, b"bbbb", 0)
os.close(fd)
' "$MNT"
	touch -d "@$mtime" "$MNT/data.csv"
	cat "$MNT/data.csv" >/dev/null
	stop_provfs
	[ "$(cat "$BACKING/data.csv")" = bbbb ]
	# cat read a version whose hash is that of bbbb (never aaaa's).
	assert_sql "SELECT v.hash_state, v.hash FROM accesses a JOIN processes p ON p.id = a.process_id
	            JOIN versions v ON v.id = a.read_version_id
	            WHERE p.executable = '$(real_exe cat)'" "hashed|$(xxh "$BACKING/data.csv")"
}

@test "touch through the mount does not hide a same-size change made outside it" {
	mount_provfs
	printf 'aaaa' >"$MNT/data.csv"
	cat "$MNT/data.csv" >/dev/null
	printf 'cccc' >"$BACKING/data.csv"
	touch "$MNT/data.csv"
	cat "$MNT/data.csv" >/dev/null
	stop_provfs
	assert_sql "SELECT v.origin, v.hash FROM accesses a JOIN processes p ON p.id = a.process_id
	            JOIN versions v ON v.id = a.read_version_id
	            WHERE p.executable = '$(real_exe cat)' ORDER BY a.id DESC LIMIT 1" \
		"external|$(xxh "$BACKING/data.csv")"
}

@test "touch of content known unchanged keeps the version (no false external)" {
	mount_provfs
	printf 'aaaa' >"$MNT/data.csv"
	touch "$MNT/data.csv"
	touch -d '2001-01-01' "$MNT/data.csv"
	cat "$MNT/data.csv" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*), group_concat(origin) FROM versions WHERE file_id = ($(file_id_sql data.csv))" "1|written"
}

# --------------------------------------------------- case 8: a hash belongs to its version

@test "a same-size rewrite right after a version: no version gets the later bytes' hash" {
	mount_provfs
	"$PYTHON" - "$MNT" "$TMP/expected" <<'EOF'
import os, sys
mnt, expected = sys.argv[1], sys.argv[2]
os.mkdir(expected)
# Both hashing threads busy a few seconds: version 1 jobs wait behind them.
for name in ("big1", "big2"):
    fd = os.open(os.path.join(mnt, name), os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"end", 3 << 30)
    os.close(fd)
for i in range(200):
    path = os.path.join(mnt, "f%03d" % i)
    for version, byte in ((1, b"A"), (2, b"B")):
        data = byte * 64
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, data[1:], 1)
        os.pwrite(fd, data[:1], 0)
        os.close(fd)
        with open(os.path.join(expected, "f%03d.v%d" % (i, version)), "wb") as f:
            f.write(data)
EOF
	# Every close recorded first (a release comes after close(2) returns,
	# and its rows a batch later): until then "nothing pending" may only
	# mean the last versions' rows are not written yet, and an unmount
	# cancels their hash jobs.
	wait_until "[ \"\$(q \"SELECT count(*) FROM accesses a JOIN files f ON f.id = a.file_id
	                        WHERE f.path LIKE 'f%' AND a.closed_ns IS NOT NULL\")\" = 400 ]" 60
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 60
	stop_provfs
	local a b
	a=$(xxh "$TMP/expected/f000.v1")
	b=$(xxh "$TMP/expected/f000.v2")
	# The newest version of every file holds B bytes; an earlier one (there is
	# none when a release came after the next open and both closes made one
	# version) holds A bytes: 'hashed' only with those bytes' hash.
	local newest="v.number = (SELECT max(number) FROM versions w WHERE w.file_id = v.file_id)"
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'f%' AND NOT $newest AND v.hash_state = 'hashed'
	            AND v.hash <> '$a'" 0
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'f%' AND $newest AND v.hash_state = 'hashed'
	            AND v.hash <> '$b'" 0
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'f%' AND $newest AND v.hash_state = 'hashed'" 200
}

@test "a version queued after the next change: versions keep the order of their contents, and a reader sees no change outside provfs" {
	# Each file's first version is held back a second between its release
	# and the queue: the second open, writes and release come meanwhile.
	PROVFS_TEST_VERSION_QUEUE_DELAY_MS=1000 mount_provfs
	local i
	for i in 1 2 3; do
		printf 'first' >"$MNT/f$i"
		sleep 0.3 # the first RELEASE served (and held) before the next open
		printf 'second, longer' >"$MNT/f$i"
	done
	# A truncate(2) while no handle writes is a version by itself, in turn.
	printf 'first' >"$MNT/t"
	sleep 0.3
	"$PYTHON" -c 'import os, sys; os.truncate(sys.argv[1], 2)' "$MNT/t"
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 30
	cat "$MNT"/f1 "$MNT"/f2 "$MNT"/f3 "$MNT"/t >/dev/null
	stop_provfs
	local first second
	first=$(printf 'first' | xxh -)
	second=$(printf 'second, longer' | xxh -)
	# The first version's bytes were gone before its row, and its hash
	# job, came: 'changed', or 'hashed' with its own bytes' hash.
	local file
	for file in f1 f2 f3; do
		assert_sql "SELECT group_concat(version, ' ') FROM
		            (SELECT v.number || ':' || v.size || ':' || v.origin AS version
		             FROM versions v JOIN files f ON f.id = v.file_id
		             WHERE f.path = '$file' ORDER BY v.number)" \
			"1:5:written 2:14:written"
	done
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'f_' AND v.number = 2 AND v.hash_state = 'hashed'
	            AND v.hash = '$second'" 3
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'f_' AND v.number = 1 AND v.hash_state = 'hashed'
	            AND v.hash <> '$first'" 0
	assert_sql "SELECT group_concat(version, ' ') FROM
	            (SELECT v.number || ':' || v.size || ':' || v.origin AS version
	             FROM versions v JOIN files f ON f.id = v.file_id
	             WHERE f.path = 't' ORDER BY v.number)" "1:5:written 2:2:written"
	assert_sql "SELECT v.hash_state || ':' || v.hash FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path = 't' AND v.number = 2" "hashed:$(printf 'fi' | xxh -)"
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'external'" 0
}

@test "a reader of a file its writer left unchanged is linked to the content it read, even when the next version is queued first" {
	printf 'as it was' >"$BACKING/g"
	# The writer's release that abandons the version the reader waits
	# for is held back a second: the next version is made meanwhile.
	PROVFS_TEST_VERSION_QUEUE_DELAY_MS=1000 mount_provfs
	"$PYTHON" - "$MNT/g" <<'EOF2'
import os, sys, time
writer = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
with open(sys.argv[1], "rb") as reader:
    assert reader.read() == b"as it was"
os.close(writer)
time.sleep(0.3)
with open(sys.argv[1], "ab") as f:
    f.write(b", and more")
EOF2
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 30
	stop_provfs
	assert_sql "SELECT group_concat(version, ' ') FROM
	            (SELECT v.number || ':' || v.size || ':' || v.origin AS version
	             FROM versions v JOIN files f ON f.id = v.file_id
	             WHERE f.path = 'g' ORDER BY v.number)" "1:9:initial 2:19:written"
	assert_sql "SELECT v.number FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            WHERE a.path = 'g' AND a.open_flags & 3 = 0" 1
}

@test "a change whose elder is held back past the limit is queued anyway, with a warning: no thread of the mount waits for ever" {
	PROVFS_TEST_VERSION_QUEUE_DELAY_MS=7000 start_background \
		"$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" 2>"$TMP/daemon.err"
	wait_mounted "$MNT"
	printf 'first' >"$MNT/f"
	sleep 0.3
	printf 'second, longer' >"$MNT/f"
	# The second version waits 5 s for the first, then goes ahead.
	wait_until "grep -q 'queued out of order' '$TMP/daemon.err'" 10
	grep 'waited 5 s for an earlier one' "$TMP/daemon.err"
	[ "$(cat "$MNT/f")" = 'second, longer' ]
	stop_provfs
	# The elder, queued at last, finds its turn past: it waits no more.
	[ "$(grep -c 'queued out of order' "$TMP/daemon.err")" -eq 1 ]
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path = 'f'" 2
}

@test "a batch that rolls back hands no row id to a hash job: the id SQLite reuses keeps its own version's hash" {
	start_background "$PROVFS" -f -o "store=$STORE" "$BACKING" "$MNT" 2>"$TMP/daemon.err"
	wait_mounted "$MNT"
	printf 'hello, world' >"$MNT/f"
	# Both hashing threads busy a few seconds: a job submitted now waits.
	"$PYTHON" - "$MNT" <<'EOF2'
import os, sys
for name in ("big1", "big2"):
    fd = os.open(os.path.join(sys.argv[1], name), os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"end", 3 << 30)
    os.close(fd)
EOF2
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	                          WHERE f.path LIKE 'big%'\")\" = 2 ]" 10
	# Every batch fails from now on, after its rows were inserted: a
	# trigger of the store raises in the statistics the writer updates last.
	q "CREATE TRIGGER inject_insert BEFORE INSERT ON recorder_stats BEGIN SELECT RAISE(ABORT, 'injected failure'); END;
	   CREATE TRIGGER inject_update BEFORE UPDATE ON recorder_stats BEGIN SELECT RAISE(ABORT, 'injected failure'); END;"
	# A truncate with no handle open makes a version (and a hash job) by itself.
	"$PYTHON" -c 'import os, sys; os.truncate(sys.argv[1], 5)' "$MNT/f"
	wait_until "grep -q 'store failed' '$TMP/daemon.err'" 10
	q "DROP TRIGGER inject_insert; DROP TRIGGER inject_update"
	# The rolled-back version's id is free again: g's version takes it.
	printf 'g bytes, streamed' >"$MNT/g"
	wait_until "grep -q 'recording resumed' '$TMP/daemon.err'" 10
	# g's hash job runs behind the big ones (not every version: a hash
	# finished while batches failed lost its result with them, and its
	# version stays 'pending', which is never wrong).
	wait_until "[ \"\$(q \"SELECT hash_state FROM versions WHERE id = ($(latest_version_sql g))\")\" = hashed ]" 60
	sleep 1 # a job queued behind the big ones has run too
	stop_provfs
	grep -q 'injected failure' "$TMP/daemon.err"
	assert_sql "SELECT hash_state, hash FROM versions WHERE id = ($(latest_version_sql g))" \
		"hashed|$(xxh "$BACKING/g")"
	# The truncated bytes' hash is on no other file's version.
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path <> 'f' AND v.hash = '$(xxh "$BACKING/f")'" 0
}

@test "a hard link under a recorded name is recorded, even when the daemon knows the file by an excluded name" {
	write_conf '[record]' 'exclude = *.swp'
	mount_provfs -o "config=$CONF"
	echo secret-ish >"$MNT/x.swp"
	ln "$MNT/x.swp" "$MNT/data.csv"
	cat "$MNT/data.csv" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE p.executable = '$(real_exe cat)' AND a.read_version_id IS NOT NULL" 1
}

# accesses_by PROGRAM: how many accesses the program's processes made.
accesses_by() {
	q "SELECT count(*) FROM accesses a JOIN processes p ON p.id = a.process_id
	   WHERE p.executable = '$(real_exe "$1")'"
}

@test "exclusion follows the name the caller looked up: a hard link under an excluded name is not recorded, its recorded name is" {
	write_conf '[record]' 'exclude = *.swp'
	mount_provfs -o "config=$CONF"
	echo data >"$MNT/data.csv"
	ln "$MNT/data.csv" "$MNT/x.swp"
	sleep 2.5 # past the entry timeout of the name cached while it was the only one
	cat "$MNT/x.swp" >/dev/null
	head -c 1 "$MNT/data.csv" >/dev/null
	tail -c 1 "$MNT/x.swp" >/dev/null
	stop_provfs
	[ "$(accesses_by cat)" = 0 ]
	[ "$(accesses_by tail)" = 0 ]
	[ "$(accesses_by head)" = 1 ]
}

@test "exclusion follows the name the caller looked up: created under an excluded name, read through a recorded link" {
	write_conf '[record]' 'exclude = *.swp'
	mount_provfs -o "config=$CONF"
	echo data >"$MNT/x.swp"
	ln "$MNT/x.swp" "$MNT/data.csv"
	sleep 2.5
	cat "$MNT/data.csv" >/dev/null
	tail -c 1 "$MNT/x.swp" >/dev/null
	stop_provfs
	[ "$(accesses_by cat)" = 1 ]
	[ "$(accesses_by tail)" = 0 ]
	assert_sql "SELECT a.path FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE p.executable = '$(real_exe cat)'" data.csv
}

@test "exclusion follows the name the caller looked up, at once for a file the kernel had forgotten" {
	write_conf '[record]' 'exclude = *.swp'
	mount_provfs -o "config=$CONF"
	echo data >"$MNT/data.csv"
	ln "$MNT/data.csv" "$MNT/x.swp"
	# The kernel drops its entries and forgets the inode: no entry of it
	# can be used without a lookup, so the name is known at once.
	sync
	echo 2 >/proc/sys/vm/drop_caches
	sleep 0.3
	cat "$MNT/x.swp" >/dev/null
	head -c 1 "$MNT/data.csv" >/dev/null
	stop_provfs
	[ "$(accesses_by cat)" = 0 ]
	[ "$(accesses_by head)" = 1 ]
}

@test "the name the daemon knew a file by is gone: a read through its remaining recorded name is recorded" {
	write_conf '[record]' 'exclude = scratch/*'
	mount_provfs -o "config=$CONF"
	mkdir "$MNT/scratch"
	echo data >"$MNT/scratch/part"
	cat "$MNT/scratch/part" >/dev/null
	ln "$MNT/scratch/part" "$MNT/data.csv"
	rm "$MNT/scratch/part"
	cat "$MNT/data.csv" >/dev/null
	sleep 2.5
	head -c 1 "$MNT/data.csv" >/dev/null
	stop_provfs
	[ "$(accesses_by cat)" = 1 ]
	[ "$(accesses_by head)" = 1 ]
	# Each access keeps the name it was made through.
	assert_sql "SELECT DISTINCT a.path FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE p.executable IN ('$(real_exe cat)', '$(real_exe head)')" data.csv
}

# --------------------------------------------------- issue 9: the writer keeps up

@test "directory rename moves exactly the names beneath it (range bounds: d/ but not d0, d-x, d.txt)" {
	mkdir -p "$BACKING/d/sub" "$BACKING/d0" "$BACKING/d-x"
	for f in d/a d/sub/b d0/c d-x/e d.txt; do echo "$f" >"$BACKING/$f"; done
	mount_provfs
	for f in d/a d/sub/b d0/c d-x/e d.txt; do cat "$MNT/$f" >/dev/null; done
	mv "$MNT/d" "$MNT/e"
	mv "$MNT/d.txt" "$MNT/d.moved"
	stop_provfs
	assert_sql "SELECT path FROM file_names WHERE until_ns IS NULL ORDER BY path" \
		"$(printf '%s\n' d-x/e d.moved d0/c e/a e/sub/b)"
	assert_sql "SELECT path FROM files ORDER BY path" \
		"$(printf '%s\n' d-x/e d.moved d0/c e/a e/sub/b)"
	assert_sql "SELECT count(*) FROM file_names WHERE until_ns IS NOT NULL" 3
}

@test "unlink of a file that had many names marks it removed only when its last name goes" {
	echo x >"$BACKING/f"
	mount_provfs
	cat "$MNT/f" >/dev/null
	for i in $(seq 30); do
		ln "$MNT/f" "$MNT/l$i"
		rm "$MNT/l$i"
	done
	ln "$MNT/f" "$MNT/keep"
	rm "$MNT/f"
	stop_provfs
	assert_sql "SELECT removed_ns IS NULL FROM files" 1
	assert_sql "SELECT path FROM file_names WHERE until_ns IS NULL" keep
	assert_sql "SELECT count(*) FROM file_names" 32
	mount_provfs
	rm "$MNT/keep"
	stop_provfs
	assert_sql "SELECT removed_ns IS NOT NULL FROM files" 1
}

@test "a file the store knows from an earlier mount, read again: by its name, by a link made outside, by its name back after provfs saw it removed" {
	# A file the writer does not hold (known from an earlier mount, or
	# evicted from the daemon's table) is looked up in one statement;
	# reading it by the name its row already holds changes no row.
	echo x >"$BACKING/a"
	mount_provfs
	cat "$MNT/a" >/dev/null
	stop_provfs
	local id
	id=$(q "SELECT id FROM files")
	mount_provfs
	cat "$MNT/a" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM files" 1
	assert_sql "SELECT path || '|' || (removed_ns IS NULL) FROM files" "a|1"
	assert_sql "SELECT count(*) || '|' || group_concat(path) FROM file_names" "1|a"
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = $id" 2
	# A second name given outside provfs: seen at its first read.
	ln "$BACKING/a" "$BACKING/b"
	mount_provfs
	cat "$MNT/b" >/dev/null
	stop_provfs
	assert_sql "SELECT path FROM files" b
	assert_sql "SELECT group_concat(path || ':' || how, ' ') FROM (SELECT path, how FROM file_names
	            WHERE until_ns IS NULL ORDER BY path)" "a:seen b:seen"
	# Both names removed through the mount, one put back outside it (a link
	# kept elsewhere): the file, marked removed, is read by the name its
	# row still holds.  It is not removed, and that name is current again.
	ln "$BACKING/a" "$TMP/kept"
	mount_provfs
	rm "$MNT/a" "$MNT/b"
	stop_provfs
	assert_sql "SELECT removed_ns IS NOT NULL FROM files" 1
	assert_sql "SELECT count(*) FROM file_names WHERE until_ns IS NULL" 0
	ln "$TMP/kept" "$BACKING/b"
	mount_provfs
	cat "$MNT/b" >/dev/null
	stop_provfs
	assert_sql "SELECT path || '|' || (removed_ns IS NULL) FROM files" "b|1"
	assert_sql "SELECT group_concat(path || ':' || how) FROM file_names WHERE until_ns IS NULL" "b:seen"
	assert_sql "SELECT count(*) FROM files" 1
}

@test "an unlink closes every current name of its path, also the strays lost events left (more than one batch of them)" {
	echo x >"$BACKING/f"
	mount_provfs
	cat "$MNT/f" >/dev/null
	stop_provfs
	# Lost events (a create recorded, its unlink not) leave a path with
	# several current names; the writer closes them eight at a time.
	local i
	for i in $(seq 11); do
		q "INSERT INTO file_names (file_id, backing_dir, path, since_ns, how)
		   SELECT file_id, backing_dir, path, since_ns - $i, how FROM file_names
		   WHERE path = 'f' AND until_ns IS NULL LIMIT 1"
	done
	assert_sql "SELECT count(*) FROM file_names WHERE path = 'f' AND until_ns IS NULL" 12
	mount_provfs
	rm "$MNT/f"
	stop_provfs
	assert_sql "SELECT count(*), count(DISTINCT until_ns) FROM file_names WHERE path = 'f'
	            AND until_ns IS NOT NULL" "12|1"
	assert_sql "SELECT count(*) FROM file_names WHERE until_ns IS NULL" 0
	assert_sql "SELECT removed_ns IS NOT NULL FROM files" 1
}

@test "a daemon killed with events queued: the next mount's stats say the session ended without unmount" {
	mount_provfs
	local daemon=$MOUNTED_PID
	echo one >"$MNT/a"
	sleep 0.5
	kill -9 "$daemon"
	wait_pids_gone "$daemon"
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	wait_unmounted "$MNT"
	mount_provfs
	stop_provfs
	"$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" stats >"$TMP/stats"
	grep -q "ended without unmount (daemon killed)" "$TMP/stats"
	[ "$(grep -c 'ended without unmount' "$TMP/stats")" = 1 ]
	"$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" stats --format json >"$TMP/stats.json"
	"$PYTHON" -c '
import json, sys
d = json.load(open(sys.argv[1]))
crashed = [r["crashed"] for r in d["recorders"]]
assert crashed == [True, False], crashed
assert all("queue_length" in r for r in d["recorders"])
' "$TMP/stats.json"
}

@test "a file its writer was still writing when the daemon was killed: read after the next mount, its version is 'unrecorded', by that writer, and gaps lists it" {
	mount_provfs
	local daemon=$MOUNTED_PID
	# The writer holds out.txt open to write across the kill.
	"$PYTHON" -c 'import sys, time
f = open(sys.argv[1], "w")
f.write("first\n"); f.flush()
time.sleep(2)
try:
    f.write("second\n"); f.close()
except OSError:
    pass' "$MNT/out.txt" &
	local writer=$!
	sleep 1 # its open is in the store (the writer flushes every 0.1 s)
	kill -9 "$daemon"
	wait_pids_gone "$daemon"
	wait "$writer" || true
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	wait_unmounted "$MNT"
	mount_provfs
	cat "$MNT/out.txt" >/dev/null
	stop_provfs
	# Made through the mount: not 'initial' (there before provfs).
	assert_sql "SELECT origin, producer_process_id = (SELECT process_id FROM accesses
	            WHERE path = 'out.txt' AND open_flags & 3 <> 0)
	            FROM versions WHERE file_id = ($(file_id_sql out.txt))" "unrecorded|1"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps
	echo "$output"
	[[ "$output" == *"out.txt"* ]]
}

# bench_renames_mode MODE RENAMES HEADER LEAST_ROWS: one smoke run of a
# scripts/bench-renames mode over 500 names; it says HEADER, loses nothing
# and writes at least LEAST_ROWS rows ($output stays for more checks).
bench_renames_mode() {
	PROVFS=$PROVFS run "$PROVFS_SOURCE_ROOT/scripts/bench-renames" -m "$1" -n 500 -r "$2" \
		-d "$TMP/bench-$1"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"$3"* ]]
	[[ "$output" =~ lost\ +0 ]]
	[[ "$output" =~ rows\ +([0-9]+) ]]
	[ "${BASH_REMATCH[1]}" -ge "$4" ]
}

@test "bench-renames: smoke run (tiny sizes)" {
	PROVFS=$PROVFS run "$PROVFS_SOURCE_ROOT/scripts/bench-renames" -n 500 -r 20 -d "$TMP/bench"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"provfs renames/s"* ]]
	[[ "$output" =~ lost\ +0 ]]
	# Each save adds at least a file, its version, its access and a name.
	bench_renames_mode over 40 "40 renames (each a new file written and renamed over the last one)" 160
	# tree: each rename of the 500-file directory moves its 500 names.
	bench_renames_mode tree 4 "4 renames (a directory of 500 files, back and forth)" 2000
	[[ "$output" =~ wal\ peak\ MiB\ +[0-9]+\.[0-9] ]]
	run "$PROVFS_SOURCE_ROOT/scripts/bench-renames" -m sideways
	[ "$status" -eq 2 ]
	[ "$output" = "bench-renames: -m: not a mode (moves, over or tree): sideways" ]
	run "$PROVFS_SOURCE_ROOT/scripts/bench-renames" -r x
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"-r: not a number: x"* ]]
	run "$PROVFS_SOURCE_ROOT/scripts/bench-renames" -z
	[ "$status" -eq 2 ]
	[ "$output" = "bench-renames: unknown option -z (see -h)" ]
}

@test "a version-3 store is migrated to the current version: its versions stay; gaps lists lost records through an index" {
	sqlite3 "$STORE" <"$PROVFS_SOURCE_ROOT/tests/fixtures/store-schema-v3.sql"
	q "PRAGMA user_version = 3;
	   INSERT INTO files (id, host, device, inode, generation, backing_dir, path, first_seen_ns)
	   VALUES (1, 'h', 1, 1, 0, '/nowhere', 'old.txt', 1);
	   INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash, hash_state,
	                         origin, recorded_ns, hash_method)
	   VALUES (1, 1, 1, 0, 1, 1, '99aa06d3014798d86001c324468d497f', 'hashed', 'written', 1,
	           'streamed');"
	mount_provfs
	echo new >"$MNT/new.txt"
	stop_provfs
	assert_sql "PRAGMA user_version" 8
	assert_sql "PRAGMA integrity_check" ok
	assert_sql "SELECT origin || ' ' || hash_method FROM versions WHERE id = 1" "written streamed"
	assert_sql "SELECT count(*) FROM versions" 2
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps
	[ "$status" -eq 0 ]
	[[ "$output" == *"versions written through provfs whose record the store lost (0)"* ]]
	# The section reads the new index, never a scan of every version.
	run q "EXPLAIN QUERY PLAN SELECT v.id FROM versions v WHERE v.origin = 'unrecorded'"
	[[ "$output" == *"INDEX versions_unrecorded"* ]]
}

@test "a version-1 store is migrated to the current version: the writer's indexes and counters are added" {
	# A store as provfs 0.1 with schema version 1 made it (the schema of that
	# release, kept as a fixture), with one file recorded by hand.
	sqlite3 "$STORE" <"$PROVFS_SOURCE_ROOT/tests/fixtures/store-schema-v1.sql"
	q "PRAGMA user_version = 1"
	mount_provfs
	echo a >"$MNT/a"
	mv "$MNT/a" "$MNT/b"
	stop_provfs
	assert_sql "PRAGMA user_version" 8
	# Version 7: runs closed after their root ended unrecorded say so; open runs are indexed.
	assert_sql "SELECT count(*) FROM pragma_table_info('runs') WHERE name = 'end_unknown'" 1
	assert_sql "SELECT count(*) FROM sqlite_master WHERE name = 'runs_open'" 1
	# Version 6: one index for a file's accesses and a version's readers.
	assert_sql "SELECT group_concat(name, ' ') FROM (SELECT name FROM sqlite_master
	            WHERE type = 'index' AND tbl_name = 'accesses' ORDER BY name)" \
		"accesses_file_read accesses_process accesses_written_version"
	# Version 5: an inode number's newest row in one seek.
	assert_sql "SELECT count(*) FROM sqlite_master WHERE name = 'files_inode'" 1
	# Version 4: lost records of writes are listed through an index.
	assert_sql "SELECT count(*) FROM sqlite_master WHERE name = 'versions_unrecorded'" 1
	# Version 3: how each hash was taken; the orchestrator's root run.
	assert_sql "SELECT count(*) FROM pragma_table_info('versions') WHERE name = 'hash_method'" 1
	assert_sql "SELECT count(*) FROM pragma_table_info('runs')
	            WHERE name IN ('root_parent_namespace', 'root_parent_job_name', 'root_parent_run_id')" 3
	# Every branch of version 2 is there: the label audit, the outbox's dead
	# letters, nullable byte counts (kernel passthrough).
	assert_sql "SELECT count(*) FROM pragma_table_info('denials') WHERE name IN
	            ('operation', 'label_source', 'grants', 'version_id', 'policy_revision')" 5
	assert_sql "SELECT count(*) FROM pragma_table_info('openlineage_outbox')
	            WHERE name IN ('dead_ns', 'response')" 2
	assert_sql "SELECT \"notnull\" FROM pragma_table_info('accesses') WHERE name = 'bytes_read'" 0
	assert_sql "PRAGMA integrity_check" ok
	assert_sql "SELECT group_concat(name) FROM (SELECT name FROM sqlite_master
	            WHERE name IN ('file_names_current', 'file_names_current_file', 'files_path')
	            ORDER BY name)" "file_names_current,file_names_current_file,files_path"
	assert_sql "SELECT count(*), sum(queue_length >= 0), sum(hashes_unhashed) FROM recorder_stats" "1|1|0"
	assert_sql "SELECT path FROM file_names WHERE until_ns IS NULL" b
}

@test "a rename over a file removes the file it replaced (git's config.lock over config): verify finds nothing modified" {
	mount_provfs
	(
		cd "$MNT"
		set -e
		mkdir repo && cd repo
		git init -q .
		git config user.email t@example.com
		git config core.bare false
		# By hand as well: the lock file renamed over the file.
		echo one >cfg
		echo two >cfg.lock
		mv cfg.lock cfg
		# A target with another name is not gone: only that name is.
		echo three >kept
		ln kept kept-too
		echo four >kept.new
		mv kept.new kept
	)
	stop_provfs
	# Each config file that config.lock replaced left the tree with its name.
	local replaced
	replaced=$(q "SELECT count(*) FROM files f WHERE f.path = 'repo/.git/config'
	              AND f.removed_ns IS NULL AND NOT EXISTS (SELECT 1 FROM file_names n
	              WHERE n.file_id = f.id AND n.until_ns IS NULL)")
	[ "$replaced" -eq 0 ]
	[ "$(q "SELECT count(*) FROM files WHERE path = 'repo/.git/config'
	         AND removed_ns IS NOT NULL")" -ge 2 ]
	# cfg's first file is removed; the second holds the name.
	[ "$(q "SELECT count(*) FROM files WHERE path = 'repo/cfg' AND removed_ns IS NOT NULL")" -eq 1 ]
	[ "$(q "SELECT count(*) FROM files WHERE path = 'repo/cfg' AND removed_ns IS NULL")" -eq 1 ]
	# The file replaced at 'kept' still lives as kept-too.
	[ "$(q "SELECT f.removed_ns IS NULL FROM files f JOIN file_names n ON n.file_id = f.id
	         WHERE n.path = 'repo/kept-too' AND n.until_ns IS NULL")" -eq 1 ]
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 modified, 0 missing"* ]]
	# A store recorded before the fix (removed_ns left NULL) reads the same.
	q "UPDATE files SET removed_ns = NULL WHERE path IN ('repo/.git/config', 'repo/cfg')"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 modified, 0 missing"* ]]
}

# write_then_set_times DIR COUNT HOW: COUNT files created, written and
# closed under $MNT/DIR, each then given the mtime 1500000000 + its number,
# by the writer itself (HOW=utime, as git and cp -p do) or by a new touch(1)
# process (HOW=touch, which opens the file to write and writes nothing).
write_then_set_times() {
	timeout -s KILL 180 "$PYTHON" - "$MNT/$1" "$2" "$3" <<'EOF2'
import os, subprocess, sys
directory, count, how = sys.argv[1], int(sys.argv[2]), sys.argv[3]
os.mkdir(directory)
for i in range(count):
    path = os.path.join(directory, "f%04d" % i)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    os.write(fd, b"content %d\n" % i)
    os.close(fd)
    if how == "utime":
        os.utime(path, (1500000000 + i, 1500000000 + i))
    else:
        subprocess.run(["touch", "-m", "-d", "@%d" % (1500000000 + i), path], check=True)
EOF2
}

# assert_versions_have_set_times DIR COUNT: after write_then_set_times and
# the unmount, nothing differs from its record, and every file's version
# is hashed and holds the mtime set after it.
assert_versions_have_set_times() {
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" gaps
	echo "$output" | head -20
	[ "$status" -eq 0 ]
	[[ "$output" == *"files whose backing file differs from the last recorded version (0)"* ]]
	[[ "$output" == *"current versions without a content hash (0)"* ]]
	[ "$(q "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	         WHERE f.path LIKE '$1/f%' AND v.hash_state = 'hashed'
	         AND v.mtime_ns = (1500000000 + CAST(substr(f.path, length('$1/f') + 1) AS INTEGER))
	                          * 1000000000")" -eq "$2" ]
}

@test "write, close, then utimensat (git clone --local, cp --preserve): every version row has the times set after it" {
	mount_provfs
	# The close's RELEASE reaches the daemon asynchronously, so the touch
	# may be recorded before the version it touches; gaps once listed such
	# files as "size/mtime differ" (4 of a git clone's objects).  And the
	# hash pool may read the file between the utimensat and the report of
	# it: that version was once called 'changed' (1 of 1,500, in 2 of 8
	# runs; 6 with a 30 ms pause there).
	write_then_set_times objects 1500 utime
	stop_provfs
	assert_versions_have_set_times objects 1500
}

@test "write, close, then touch(1) in a new process (it opens the file to set the times): every version is hashed" {
	mount_provfs
	# touch(1) opens the file for writing and never writes: a hash job
	# that finished while that handle was open called the version
	# 'changed' (10 to 18 of 1,500 files here); a new process per touch
	# also makes each setattr's report slower than the utimensat.
	write_then_set_times stamps 1000 touch
	stop_provfs
	assert_versions_have_set_times stamps 1000
}

@test "a file closed and at once opened again to write ('>f' then '>>f', 300 rounds): each close makes its own version" {
	mount_provfs
	# The kernel sends a handle's RELEASE after close(2) returns, so the
	# next OPEN is often served first: the writes of both handles made one
	# version (about 4 in 600 here, more under load).
	local i
	for i in $(seq 300); do
		printf '%s\n' "$i" >"$MNT/shell.txt"
		printf 'x\n' >>"$MNT/shell.txt"
	done
	"$PYTHON" - "$MNT/python.txt" <<-'EOF2'
	import sys
	for i in range(300):
	    with open(sys.argv[1], "w") as f:
	        f.write(str(i))
	    with open(sys.argv[1], "a") as f:
	        f.write("x")
	EOF2
	stop_provfs
	assert_sql "SELECT count(*), max(number) FROM versions WHERE file_id = ($(file_id_sql shell.txt))" \
		"600|600"
	assert_sql "SELECT count(*), max(number) FROM versions WHERE file_id = ($(file_id_sql python.txt))" \
		"600|600"
	# The newest is hashed and right; every one is produced by its writer.
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql python.txt)) AND number = 600" \
		"$(xxh "$BACKING/python.txt")"
	assert_sql "SELECT count(*) FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.file_id = ($(file_id_sql python.txt)) AND p.executable = '$(realpath "$PYTHON")'" 600
}

@test "a writer that wrote since its last close keeps the version open when another handle opens to write" {
	mount_provfs
	# Nothing may be cut while a writer can still be writing: the first
	# handle wrote after its last close (none), so both handles' writes
	# are one version, as before.
	"$PYTHON" - "$MNT/both.txt" <<-'EOF2'
	import os, sys
	a = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
	os.write(a, b"first ")
	b = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
	os.write(b, b"second ")
	os.write(a, b"third")
	os.close(a)
	os.close(b)
	EOF2
	stop_provfs
	assert_sql "SELECT count(*), hash FROM versions WHERE file_id = ($(file_id_sql both.txt))" \
		"1|$(xxh "$BACKING/both.txt")"
	assert_sql "SELECT count(*) FROM accesses WHERE file_id = ($(file_id_sql both.txt))
	            AND written_version_id IS NOT NULL" 2
}

@test "a version read at once through a handle open to read and write (a database's reader) is hashed, not 'changed'" {
	mount_provfs
	# A SQLite job writes a database; a reader opens it O_RDWR (as every
	# SQLite connection does) and holds it while the hash pool reads the
	# version just written.  The reader writes nothing, so nothing changed.
	sqlite3 "$MNT/sales.db" "CREATE TABLE t(x);
		WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 50000)
		INSERT INTO t SELECT i FROM c;"
	"$PYTHON" -c '
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1])
db.execute("SELECT count(*) FROM t").fetchone()
time.sleep(1)
db.close()
' "$MNT/sales.db"
	# The same with a plain handle, and one that writes only after the
	# pool has read the version: the first version keeps its own bytes' hash.
	head -c 3000000 /dev/urandom >"$MNT/data.bin"
	cp "$BACKING/data.bin" "$TMP/data.v1"
	bash -c 'exec 5<>"$1"; head -c 100 <&5 >/dev/null; sleep 1; printf X >&5; exec 5>&-' \
		bash "$MNT/data.bin"
	stop_provfs
	assert_sql "SELECT count(*), min(hash_state), min(hash) FROM versions
	            WHERE file_id = ($(file_id_sql sales.db))" "1|hashed|$(xxh "$BACKING/sales.db")"
	assert_sql "SELECT group_concat(hash_state || ' ' || hash, ',') FROM (SELECT hash_state, hash
	            FROM versions WHERE file_id = ($(file_id_sql data.bin)) ORDER BY number)" \
		"hashed $(xxh "$TMP/data.v1"),hashed $(xxh "$BACKING/data.bin")"
}

@test "a file linked under its final name, then its first name removed (git's objects): no external version at the next read" {
	mount_provfs
	local i
	for i in 1 2 3 4 5; do
		echo "object $i" >"$MNT/tmp_obj_$i"
		sleep 0.1 # the close's release is in: the version is complete
		ln "$MNT/tmp_obj_$i" "$MNT/object_$i"
		rm "$MNT/tmp_obj_$i"
	done
	# A second name removed later, through a rename over it: the same.
	echo kept >"$MNT/twice"
	ln "$MNT/twice" "$MNT/twice.link"
	sleep 0.1
	echo other >"$MNT/other"
	mv "$MNT/other" "$MNT/twice.link"
	cat "$MNT"/object_* "$MNT/twice" >/dev/null
	stop_provfs
	for i in 1 2 3 4 5; do
		assert_sql "SELECT group_concat(origin || ' ' || hash_state) FROM versions
		            WHERE file_id = ($(file_id_sql "object_$i"))" "written hashed"
		# The read was of that version.
		assert_sql "SELECT a.read_version_id = ($(latest_version_sql "object_$i")) FROM accesses a
		            WHERE a.path = 'object_$i'" 1
	done
	assert_sql "SELECT group_concat(origin || ' ' || hash_state) FROM versions
	            WHERE file_id = ($(file_id_sql twice))" "written hashed"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 modified"* ]]
}

@test "renameat2 RENAME_EXCHANGE through the mount: no external version for either file at the next read, nor after a remount" {
	mount_provfs
	mkdir "$MNT/d"
	echo one >"$MNT/x1"
	echo two >"$MNT/d/x2"
	echo three >"$MNT/y1"
	echo four >"$MNT/y2"
	sleep 0.1 # the closes' releases are in: the versions are complete
	exchange "$MNT/x1" "$MNT/d/x2"
	exchange "$MNT/y1" "$MNT/y2"
	sleep 1.5 # past the attribute timeout: the reads see both files' new ctimes
	[ "$(cat "$MNT/x1" "$MNT/d/x2" "$MNT/y1" "$MNT/y2")" = "$(printf 'two\none\nfour\nthree')" ]
	stop_provfs
	mount_provfs
	cat "$MNT/x1" "$MNT/d/x2" "$MNT/y1" "$MNT/y2" >/dev/null
	stop_provfs
	local path
	for path in x1 d/x2 y1 y2; do
		assert_sql "SELECT group_concat(origin || ' ' || hash_state) FROM versions
		            WHERE file_id = ($(file_id_sql "$path"))" "written hashed"
	done
	# Each name now names the other file: its one version is the other's bytes.
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql x1))" "$(xxh "$BACKING/x1")"
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql y2))" "$(xxh "$BACKING/y2")"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 modified"* ]]
}

# verify_all_ok N [ARG...]: provfs-query verify --all ARG... finds N files, all of them ok.
verify_all_ok() {
	local count=$1
	shift
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all "$@"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"$count file"*"$count ok, 0 modified, 0 missing"* ]]
}

# current_names PATH...: the current names of the files now at each PATH, one line each.
current_names() {
	local path
	for path in "$@"; do
		q "SELECT group_concat(path, ',') FROM (SELECT path FROM file_names
		   WHERE file_id = ($(file_id_sql "$path")) AND until_ns IS NULL ORDER BY path)"
	done
}

@test "RENAME_EXCHANGE of two files and of two directories: every file keeps exactly its new name, none read since" {
	mount_provfs
	mkdir -p "$MNT/A/sub" "$MNT/B"
	echo a >"$MNT/A/x"
	echo deep >"$MNT/A/sub/z"
	echo b >"$MNT/B/y"
	echo one >"$MNT/f1"
	echo two >"$MNT/f2"
	sleep 0.1 # the closes' releases are in
	exchange "$MNT/A" "$MNT/B"
	exchange "$MNT/f1" "$MNT/f2"
	stop_provfs
	# Nothing read them since: the names come from the exchanges alone.
	[ "$(current_names B/x B/sub/z A/y f1 f2 | tr '\n' ' ')" = "B/x B/sub/z A/y f1 f2 " ]
	assert_sql "SELECT count(*) FROM file_names WHERE until_ns IS NULL AND path LIKE '%provfs-exchange%'" 0
	assert_sql "SELECT group_concat(path, ' ') FROM (SELECT path FROM files ORDER BY path)" \
		"A/y B/sub/z B/x f1 f2"
	# f1 names the file made as f2, and the other way round.
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql f1))" "$(xxh "$BACKING/f1")"
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql f2))" "$(xxh "$BACKING/f2")"
	verify_all_ok 5
}

@test "an inode number a removed file had, taken by a directory or a device node: their renames are not the file's" {
	mount_provfs
	mkdir "$MNT/r"
	echo data >"$MNT/r/f"
	local inode
	inode=$(stat -c %i "$BACKING/r/f")
	rm "$MNT/r/f"
	# ext4 gives the number freed last to the next inode it makes.
	mkdir "$MNT/r/d"
	[ "$(stat -c %i "$BACKING/r/d")" = "$inode" ] || skip "the backing filesystem did not reuse the inode number"
	mv "$MNT/r/d" "$MNT/r/d2"
	rmdir "$MNT/r/d2"
	mknod "$MNT/r/c" c 1 3
	[ "$(stat -c %i "$BACKING/r/c")" = "$inode" ] || skip "the backing filesystem did not reuse the inode number"
	mv "$MNT/r/c" "$MNT/r/c2"
	stop_provfs
	# The file keeps the one name it had, ended by its removal.
	assert_sql "SELECT group_concat(path || ' ' || how || ' ' || (until_ns IS NOT NULL), ',')
	            FROM file_names WHERE file_id = (SELECT id FROM files WHERE inode = $inode)" "r/f create 1"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	echo "$output"
	[ "$status" -eq 0 ]
}

@test "files truncated, removed and their inode numbers taken by new files faster than the writer's batches (-o nopassthrough): no store failure, nothing lost" {
	mount_provfs -o nopassthrough
	"$PYTHON" - "$MNT" <<'EOF'
import os, sys
for r in range(300):
    for i in range(4):
        path = os.path.join(sys.argv[1], "f%d" % i)
        fd = os.open(path, os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, b"x" * (100 + r), r)
        os.close(fd)
        os.truncate(path, r % 7)
        if (r + i) % 3 == 0:
            os.unlink(path)
EOF
	stop_provfs
	assert_sql "SELECT sum(store_errors), sum(events_lost) FROM recorder_stats" "0|0"
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'external'" 0
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify --all
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *" 0 modified, 0 missing"* ]]
}

@test "a link removed while the file keeps another, read again through a descriptor of it: no ' (deleted)' name; a name that truly ends so is kept" {
	mount_provfs
	echo x >"$MNT/a"
	(
		exec 3<"$MNT/a"
		ln "$MNT/a" "$MNT/b"
		rm "$MNT/a"
		cat /proc/self/fd/3 >/dev/null
	)
	echo y >"$MNT/c (deleted)"
	cat "$MNT/c (deleted)" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*) FROM file_names WHERE path = 'a (deleted)'" 0
	assert_sql "SELECT group_concat(path, ',') FROM file_names WHERE file_id = ($(file_id_sql b))
	            AND until_ns IS NULL" b
	assert_sql "SELECT count(*) FROM file_names WHERE path = 'c (deleted)' AND until_ns IS NULL" 1
	verify_all_ok 2
}

@test "a backing directory moved, then mounted from its new place: its files are where they were recorded, verify finds them all" {
	mount_provfs
	mkdir "$MNT/etl"
	echo report >"$MNT/etl/report.csv"
	echo kept >"$MNT/kept"
	stop_provfs
	mv "$BACKING" "$TMP/moved"
	MOUNT_BACKING=$TMP/moved mount_provfs
	verify_all_ok 2 --under "$MNT"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" verify "$MNT/etl/report.csv"
	[ "$status" -eq 0 ]
	# Written again from the new place: the same file, its second version.
	echo more >>"$MNT/etl/report.csv"
	stop_provfs
	assert_sql "SELECT count(DISTINCT backing_dir) FROM files" 1
	assert_sql "SELECT backing_dir FROM files WHERE path = 'etl/report.csv'" "$(realpath "$TMP/moved")"
	assert_sql "SELECT count(*), max(number) FROM versions WHERE file_id = ($(file_id_sql etl/report.csv))" "2|2"
	assert_sql "SELECT count(*) FROM file_names WHERE backing_dir != '$(realpath "$TMP/moved")'" 0
}

@test "a backing directory reached by a second name (a symlink at its old path): its files keep the path they were recorded under" {
	mount_provfs
	echo kept >"$MNT/kept"
	stop_provfs
	local old
	old=$(realpath "$BACKING")
	mv "$BACKING" "$TMP/moved"
	ln -s "$TMP/moved" "$BACKING"
	MOUNT_BACKING=$TMP/moved mount_provfs
	stop_provfs
	assert_sql "SELECT backing_dir FROM files WHERE path = 'kept'" "$old"
}

@test "a file removed while open, read again through /proc/self/fd: the read is of its version, under the name it had; no ' (deleted)' name, no external version" {
	mount_provfs
	echo x >"$MNT/f3.txt"
	sleep 0.1 # the close's release is in: the version is complete
	# Through the mount: the rm; outside it: the rm of gone.txt.
	bash -c 'exec 7<"$1"; rm "$1"; sleep 1.5; cat /proc/self/fd/7' sh "$MNT/f3.txt" >"$TMP/read3"
	echo y >"$MNT/gone.txt"
	sleep 0.1
	bash -c 'exec 7<"$1"; rm "$2"; cat /proc/self/fd/7' sh "$MNT/gone.txt" "$BACKING/gone.txt" >"$TMP/read4"
	[ "$(cat "$TMP/read3" "$TMP/read4")" = "$(printf 'x\ny')" ]
	stop_provfs
	assert_sql "SELECT count(*) FROM file_names WHERE path LIKE '%(deleted)%'" 0
	assert_sql "SELECT count(*) FROM files WHERE path LIKE '%(deleted)%'" 0
	assert_sql "SELECT count(*) FROM accesses WHERE path LIKE '%(deleted)%'" 0
	# f3.txt: removed through the mount, one version; cat read it by its name.
	assert_sql "SELECT path, removed_ns IS NOT NULL FROM files WHERE path = 'f3.txt'" "f3.txt|1"
	assert_sql "SELECT group_concat(origin || ' ' || hash_state) FROM versions WHERE file_id =
	            (SELECT id FROM files WHERE path = 'f3.txt')" "written hashed"
	assert_sql "SELECT count(*) FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            WHERE a.path = 'f3.txt' AND v.number = 1 AND a.process_id IN
	            (SELECT id FROM processes WHERE executable = '$(real_exe cat)')" 1
	# f3.txt's name is not current (gone.txt's went outside provfs, unseen).
	assert_sql "SELECT count(*) FROM file_names WHERE until_ns IS NULL AND path = 'f3.txt'" 0
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'gone.txt' AND process_id IN
	            (SELECT id FROM processes WHERE executable = '$(real_exe cat)')" 1
}

@test "an ACL or extended attribute set through the mount: an 'xattr' event naming who, and no external version at the next read" {
	mount_provfs
	echo a >"$MNT/acl.csv"
	echo b >"$MNT/attr.csv"
	sleep 0.1 # the close's release is in: the versions are complete
	setfacl -m u:1:r "$MNT/acl.csv"
	setfattr -n user.note -v checked "$MNT/attr.csv"
	setfattr -x user.note "$MNT/attr.csv"
	cat "$MNT/acl.csv" "$MNT/attr.csv" >/dev/null
	stop_provfs
	local path
	for path in acl.csv attr.csv; do
		assert_sql "SELECT group_concat(origin || ' ' || hash_state) FROM versions
		            WHERE file_id = ($(file_id_sql "$path"))" "written hashed"
	done
	assert_sql "SELECT p.executable FROM namespace_events e JOIN processes p ON p.id = e.process_id
	            WHERE e.file_id = ($(file_id_sql acl.csv)) AND e.kind = 'xattr'" "$(real_exe setfacl)"
	assert_sql "SELECT count(*) FROM namespace_events
	            WHERE file_id = ($(file_id_sql attr.csv)) AND kind = 'xattr'" 2
}

@test "fallocate punching a hole, zeroing a range, growing the file: each a version fallocate made; a preallocation none" {
	mount_provfs
	head -c 65536 /dev/urandom >"$MNT/sparse.bin"
	sleep 0.1
	fallocate -p -o 4096 -l 4096 "$MNT/sparse.bin"
	sleep 0.1
	fallocate -z -o 16384 -l 4096 "$MNT/sparse.bin"
	sleep 0.1
	fallocate -n -o 0 -l 1048576 "$MNT/sparse.bin" # keeps the size: no change a reader sees
	sleep 0.1
	fallocate -o 65536 -l 65536 "$MNT/sparse.bin"
	[ "$(stat -c %s "$MNT/sparse.bin")" = 131072 ]
	cat "$MNT/sparse.bin" >/dev/null
	stop_provfs
	assert_sql "SELECT group_concat(origin || ' ' || hash_state || ' ' || size, ',') FROM (SELECT origin,
	            hash_state, size FROM versions WHERE file_id = ($(file_id_sql sparse.bin)) ORDER BY number)" \
		"written hashed 65536,written hashed 65536,written hashed 65536,written hashed 131072"
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_sql sparse.bin))" \
		"$(xxh "$BACKING/sparse.bin")"
	assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.id = ($(latest_version_sql sparse.bin))" "$(real_exe fallocate)"
}

@test "a write, copy or fallocate refused for want of space (ENOSPC) makes no version: no external version at the next read" {
	# On a full filesystem the kernel stamps a file's times before it finds
	# no space: the bytes stay as they were, under new times.
	mount -t tmpfs -o size=1m,mode=700 provfs-test-full "$BACKING"
	mount_provfs
	local name
	for name in log data copy; do
		head -c 65536 /dev/urandom >"$MNT/$name"
	done
	cat "$MNT/log" "$MNT/data" "$MNT/copy" >/dev/null
	run dd if=/dev/zero of="$MNT/filler" bs=64k count=64
	echo "$output"
	[[ "$output" == *"No space left on device"* ]]
	sleep 0.05 # a later time than the versions'
	run "$PYTHON" -c '
import os, sys
os.write(os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND), b"more\n")
' "$MNT/log"
	echo "$output"
	[[ "$output" == *"No space left on device"* ]]
	run "$PYTHON" -c '
import os, sys
source = os.open(sys.argv[1], os.O_RDONLY)
target = os.open(sys.argv[2], os.O_WRONLY)
os.copy_file_range(source, target, 65536, 0, 65536) # to its end
' "$MNT/data" "$MNT/copy"
	echo "$output"
	[[ "$output" == *"No space left on device"* ]]
	run fallocate -o 65536 -l 1048576 "$MNT/data"
	[ "$status" -ne 0 ]
	cat "$MNT/log" "$MNT/data" "$MNT/copy" >/dev/null
	stop_provfs
	for name in log data copy; do
		assert_sql "SELECT group_concat(origin || ' ' || hash_state || ' ' || size, ',') FROM versions
		            WHERE file_id = ($(file_id_sql "$name"))" "written hashed 65536"
		assert_newest_hashes_true "$name"
	done
	assert_sql "SELECT count(*) FROM versions WHERE origin = 'external'" 0
}

@test "a log held open by its writer (exec 4>>log), copied while it is idle: the copy read the version there was, the handle is the shell's" {
	mount_provfs
	mkfifo "$TMP/read" "$TMP/go"
	seq 100 >"$MNT/log"
	seq 50 >"$MNT/log2"
	# Hashed before the logger opens them (a version is not hashed while a
	# writer the kernel passes through holds the file).
	wait_hashed 2
	(
		cd "$MNT"
		exec 4>>log 5>>log2 # the logger's shell holds both, idle
		cp log log.1        # a rotation copies the idle log
		# A reader that opened log2 idle and reads on after the logger wrote.
		"$PYTHON" -c '
import sys
f = open("log2", "rb")
open(sys.argv[1], "w").write("opened\n")
open(sys.argv[2]).read()
sys.stdout.buffer.write(f.read())' "$TMP/read" "$TMP/go" >"$TMP/log2.read" &
		cat "$TMP/read" >/dev/null
		echo new >&4
		echo more >&5
		release "$TMP/go"
		wait
		exec 4>&- 5>&-
	)
	stop_provfs
	# cp read version 1, whose bytes log.1 holds; the logger's write made version 2.
	assert_sql "SELECT v.number FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql log)) AND p.executable = '$(real_exe cp)'" 1
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql log)) AND number = 1" \
		"$(xxh "$BACKING/log.1")"
	assert_sql "SELECT group_concat(number || ' ' || size, ',') FROM versions
	            WHERE file_id = ($(file_id_sql log))" "1 292,2 296"
	# The handle the shell opened is the shell's, though cp inherited it and closed it first.
	assert_sql "SELECT p.executable FROM accesses a JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql log)) AND a.open_flags & $((0x400)) != 0" \
		"$(realpath "$BASH")"
	# The reader that read on after the write read what the write made.
	[ "$(tail -n 1 "$TMP/log2.read")" = more ]
	assert_sql "SELECT v.number FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql log2)) AND p.executable = '$(real_exe "$PYTHON")'" 2
}

@test "copytruncate under a logger holding the log open: the truncating handle is a writer of the version, the logger its producer" {
	mount_provfs
	seq 100 >"$MNT/log"
	wait_hashed 1
	mkfifo "$TMP/opened" "$TMP/go"
	(
		cd "$MNT"
		# The logger holds the log open, idle until rotated.
		"$PYTHON" -c '
import sys
log = open("log", "a")
open(sys.argv[1], "w").write("opened\n")
open(sys.argv[2]).read()
log.write("new\n")' "$TMP/opened" "$TMP/go" &
		cat "$TMP/opened" >/dev/null
		cp log log.1
		truncate -s 0 log
		release "$TMP/go"
		wait
	)
	stop_provfs
	assert_sql "SELECT group_concat(number || ' ' || size, ',') FROM versions
	            WHERE file_id = ($(file_id_sql log))" "1 292,2 4"
	assert_sql "SELECT v.number FROM accesses a JOIN versions v ON v.id = a.written_version_id
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql log)) AND p.executable = '$(real_exe truncate)'" 2
	assert_sql "SELECT p.executable FROM versions v JOIN processes p ON p.id = v.producer_process_id
	            WHERE v.id = ($(latest_version_sql log))" "$(real_exe "$PYTHON")"
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_sql log))" "$(xxh "$BACKING/log")"
}

@test "a reader that opened before a writer changed the file it was reading: its read is of the version the change made, not the one at its open" {
	mount_provfs
	head -c 32768 /dev/zero | tr '\0' A >"$MNT/f"
	wait_hashed 1
	mkfifo "$TMP/began" "$TMP/go"
	"$PYTHON" -c '
import sys
with open(sys.argv[1], "rb") as f, open(sys.argv[2], "wb") as out:
    out.write(f.read(4096))
    open(sys.argv[3], "w").write("began\n")
    open(sys.argv[4]).read()
    out.write(f.read())' "$MNT/f" "$TMP/copy" "$TMP/began" "$TMP/go" &
	local reader=$!
	cat "$TMP/began" >/dev/null
	printf 'BBBBBBBB' | dd of="$MNT/f" bs=1 seek=20000 conv=notrunc status=none # ahead of the reader
	release "$TMP/go"
	wait "$reader"
	stop_provfs
	assert_sql "SELECT v.number FROM accesses a JOIN versions v ON v.id = a.read_version_id
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql f)) AND p.executable = '$(real_exe "$PYTHON")'
	              AND a.open_flags & 3 = 0" 2
	assert_sql "SELECT hash FROM versions WHERE file_id = ($(file_id_sql f)) AND number = 2" \
		"$(xxh "$TMP/copy")"
}

@test "a version is current from its writer's close(2), not from when the store took its row: 'job; date', then lineage --at that date finds it" {
	mount_provfs
	echo one >"$MNT/f"
	wait_until "[ \"\$(q 'SELECT count(*) FROM versions')\" = 1 ]"
	# Another process holds the store's write lock for 2 s (the daemon's
	# busy timeout is 5 s): the rows of the job wait for it.
	"$PYTHON" -c '
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(2)
db.execute("COMMIT")' "$STORE" "$TMP/locked" &
	local holder=$!
	wait_for_file "$TMP/locked"
	PROVFS_JOB=job sh -c 'echo two >"$1"' sh "$MNT/f"
	local after_ns after
	after_ns=$(date +%s%N)
	after=$(date -u -d "@${after_ns:0:-9}.${after_ns: -9}" +%Y-%m-%dT%H:%M:%S.%3NZ)
	wait "$holder"
	wait_until "[ \"\$(q 'SELECT count(*) FROM versions')\" = 2 ]"
	run "$PROVFS_BUILD_ROOT/provfs-query" --store "$STORE" lineage "$MNT/f" --at "$after" --format json
	echo "$output"
	[ "$status" -eq 0 ]
	"$PYTHON" -c '
import json, sys
d = json.loads(sys.argv[1])
start = [n for n in d["nodes"] if n["key"] == d["start"]][0]
assert start["version"] == 2, start' "$output"
	# The job's access closed then too, and the row says when.
	assert_sql "SELECT count(*) FROM versions v JOIN accesses a ON a.written_version_id = v.id
	            WHERE v.number = 2 AND a.closed_ns <= $after_ns AND v.recorded_ns <= $after_ns" 1
	stop_provfs
}
