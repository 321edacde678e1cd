# recorder_helpers.bash - store queries for the recorder suite (recorder.bats).
#
# Loaded after helpers.bash.  Every query goes straight to the SQLite store
# with the sqlite3 CLI, as an auditor without provfs-query would do.
#
#   q SQL               run SQL on $STORE (one value per line, '|' between columns)
#   sqlq TEXT           TEXT as an SQL string literal
#   xxh FILE            the XXH3-128 of FILE, as `xxhsum -H2` prints it
#   argv_of PROCESS_ID  the stored argv of a process row, one word a line
#   file_id_of PATH     id of the file whose current name is PATH (mount-relative)
#   latest_version_of PATH   id of that file's newest version
#   stop_provfs [MNT]   unmount, wait for the daemon, check the session was closed

# q SQL: query the store.  Fails (with the message) when sqlite3 does.
# Like provfs's own connections, it keeps the store's -wal and -shm files
# when it closes last: readers of reader_group need them (store.c).
q() {
	sqlite3 -batch -noheader -cmd '.output /dev/null' -cmd '.filectrl persist_wal 1' \
		-cmd '.output stdout' -cmd '.timeout 5000' "${QSTORE:-$STORE}" "$1"
}

sqlq() {
	printf "'%s'" "${1//\'/\'\'}"
}

xxh() {
	local hash
	hash=$(xxhsum -H2 "$1") || return 1
	echo "${hash%% *}"
}

# The argv BLOB (NUL-terminated words) of processes.id = $1, a word a line.
argv_of() {
	q "SELECT hex(argv) FROM processes WHERE id = $1" | xxd -r -p | tr '\0' '\n'
}

# The argv as one line, words separated by single spaces.
argv_line_of() {
	argv_of "$1" | paste -sd ' '
}

file_id_of() {
	q "SELECT file_id FROM file_names WHERE path = $(sqlq "$1") AND until_ns IS NULL
	   ORDER BY since_ns DESC LIMIT 1"
}

latest_version_of() {
	q "SELECT v.id FROM versions v WHERE v.file_id = ($(file_id_sql "$1"))
	   ORDER BY v.number DESC LIMIT 1"
}

# SQL expression for the id of the file currently named $1.
file_id_sql() {
	echo "SELECT file_id FROM file_names WHERE path = $(sqlq "$1") AND until_ns IS NULL
	      ORDER BY since_ns DESC LIMIT 1"
}

# SQL expression for the id of the newest version of the file named $1.
latest_version_sql() {
	echo "SELECT id FROM versions WHERE file_id = ($(file_id_sql "$1")) ORDER BY number DESC LIMIT 1"
}

# Bytes the daemon serving $MNT has moved so far: the /proc/PID/io fields
# named by DAEMON_IO_FIELDS (an awk alternation; default reads and writes).
daemon_io() {
	local pid
	pid=$(provfs_pids "$MNT" | head -n 1)
	[ -n "$pid" ] || return 1
	awk -v fields="^(${DAEMON_IO_FIELDS:-rchar|wchar}):" \
		'$0 ~ fields { total += $2 } END { print total + 0 }' "/proc/$pid/io"
}

# Run "$@" (its output dropped); echo the daemon's I/O meanwhile.
daemon_io_while() {
	local before after
	before=$(daemon_io)
	"$@" >/dev/null
	after=$(daemon_io)
	echo $((after - before))
}

# stop_provfs [MNT]: unmount, wait until the daemon has exited, and check
# that it closed its mount session (stopped_ns set): the store is complete.
stop_provfs() {
	local mnt=${1:-$MNT}
	unmount_provfs "$mnt" || {
		echo "cannot unmount $mnt" >&2
		return 1
	}
	local open
	open=$(q "SELECT count(*) FROM mount_sessions WHERE stopped_ns IS NULL AND id =
	          (SELECT max(id) FROM mount_sessions WHERE mount_point = $(sqlq "$(realpath "$mnt")"))") ||
		return 1
	if [ "$open" != 0 ]; then
		echo "mount session of $mnt not closed after unmount" >&2
		return 1
	fi
}

# assert_sql SQL EXPECTED: the query's output equals EXPECTED.
assert_sql() {
	local actual
	actual=$(q "$1") || return 1
	if [ "$actual" != "$2" ]; then
		printf 'query:    %s\nexpected: %s\nactual:   %s\n' "$1" "$2" "$actual" >&2
		return 1
	fi
}

# The real program behind a command name (what /proc/PID/exe shows).
real_exe() {
	realpath "$(command -v "$1")"
}

# Wait up to $2 (default 10) seconds for a shell condition to hold.
wait_until() {
	local deadline=$((SECONDS + ${2:-10}))
	until eval "$1"; do
		[ "$SECONDS" -ge "$deadline" ] && return 1
		sleep 0.1
	done
}

# free_pid_after N: the first pid from N on (wrapping below pid_max, as the
# kernel does) that no process or thread uses.
free_pid_after() {
	local pid=$1 max
	max=$(cat /proc/sys/kernel/pid_max)
	for _ in $(seq 1000); do
		if [ "$pid" -ge $((max - 2)) ] || [ "$pid" -lt 1000 ]; then
			pid=1000
		fi
		[ -e "/proc/$pid" ] || { echo "$pid"; return 0; }
		pid=$((pid + 1))
	done
	return 1
}
