# helpers.bash - common setup for the provfs end-to-end suites.
#
# Every test gets its own world-traversable temporary directory
#   $TMP            /tmp/provfs-test.XXXXXX (mode 755)
#   $BACKING        $TMP/backing            (mode 755)
#   $MNT            $TMP/mnt                (mode 755)
#   $STORE          $TMP/store/provfs.db    (outside both)
#   $NATIVE         $TMP/native             (a plain ext4 directory to compare with)
# and a teardown that unmounts everything mounted under $TMP and ends every
# provfs daemon serving it, whatever the test did or how it failed.
#
# Unprivileged users provfs-u1, provfs-u2, provfs-u3 (and group provfs-g,
# with provfs-u1 as a member) are created on first use; as_user and
# as_user_sh run commands as one of them.

PROVFS=${PROVFS:-/work/main/build/provfs}
PROVFS_SOURCE_ROOT=${PROVFS_SOURCE_ROOT:-/work/main}
# The system interpreter: reachable by every user (a pyenv shim under /root
# is not) and quick to start.
if [ -x /usr/bin/python3 ]; then
	PYTHON=/usr/bin/python3
else
	PYTHON=$(command -v python3)
fi
SAFE_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

TEST_USERS=(provfs-u1 provfs-u2 provfs-u3)
TEST_GROUP=provfs-g

common_setup() {
	TMP=$(mktemp -d /tmp/provfs-test.XXXXXX)
	chmod 755 "$TMP"
	BACKING=$TMP/backing
	MNT=$TMP/mnt
	NATIVE=$TMP/native
	STORE=$TMP/store/provfs.db
	mkdir -p "$BACKING" "$MNT" "$NATIVE" "$TMP/store"
	chmod 755 "$BACKING" "$MNT" "$NATIVE"
	export TMP BACKING MNT NATIVE STORE PYTHON
	umask 022
}

common_teardown() {
	[ -n "${TMP:-}" ] && [ -d "$TMP" ] || return 0
	cleanup_background
	unmount_all_under "$TMP"
	# Never rm -rf through a live mount.
	if ! mounts_under "$TMP" | grep -q .; then
		rm -rf "$TMP"
	else
		echo "# teardown: mounts remain under $TMP, not removing it" >&3
	fi
}

# ---------------------------------------------------------------- mounts

# Mount points (one a line, as in /proc/mounts) at or below $1.
mounts_under() {
	local prefix=$1 target
	# (The test paths hold no characters /proc/mounts would escape.)
	while read -r _ target _; do
		case $target in
		"$prefix" | "$prefix"/*) echo "$target" ;;
		esac
	done </proc/mounts
}

is_mounted() {
	mounts_under "$1" | grep -qxF -- "$1"
}

# Process ids of provfs daemons whose command line names $1 (a path: the
# mount point or the test directory).  Only processes this suite started
# have the test's unique temporary path on their command line.
provfs_pids() {
	local needle=$1 pid
	# pgrep -f matches the whole command line as a regex: quote the path.
	for pid in $(pgrep -f -- "$(printf '%s' "$needle" | sed 's/[][\\.*^$+?(){}|]/\\&/g')"); do
		[ "$pid" = "$$" ] && continue
		pid_running "$pid" || continue
		case $(readlink "/proc/$pid/exe" 2>/dev/null) in
		*/provfs | *"/provfs (deleted)") echo "$pid" ;;
		esac
	done
}

# Is the process running?  A zombie has exited: a daemon is re-parented to
# init, which may take a while to reap it.
pid_running() {
	local line
	line=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	line=${line##*) }
	[ "${line%% *}" != Z ]
}

# Wait until none of the given pids runs; 1 after $WAIT_TIMEOUT (10) seconds,
# with what the survivors are doing on stderr.
wait_pids_gone() {
	local deadline=$((SECONDS + ${WAIT_TIMEOUT:-10})) pid alive
	while :; do
		alive=
		for pid in "$@"; do
			pid_running "$pid" && alive="$alive $pid"
		done
		[ -z "$alive" ] && return 0
		if [ "$SECONDS" -ge "$deadline" ]; then
			echo "still running after ${WAIT_TIMEOUT:-10} s:$alive" >&2
			for pid in $alive; do
				ps -L -o pid,tid,stat,wchan:32,comm,args -p "$pid" >&2 || true
			done
			return 1
		fi
		sleep 0.05
	done
}

# Poll until $1 is a mount point (wait_unmounted: is not); up to 5 seconds.
wait_mounted() {
	local mnt=$1 i
	for i in $(seq 100); do
		mountpoint -q "$mnt" && return 0
		sleep 0.05
	done
	return 1
}

wait_unmounted() {
	local mnt=$1 i
	for i in $(seq 100); do
		is_mounted "$mnt" || return 0
		sleep 0.05
	done
	return 1
}

# mount_provfs [extra args...]: mount $BACKING on $MNT (override with
# MOUNT_BACKING / MOUNT_POINT) with a store in $TMP/store.  The daemon's
# stderr (e.g. the reachability warning) goes to $TMP/mount.err.
mount_provfs() {
	local backing=${MOUNT_BACKING:-$BACKING} mnt=${MOUNT_POINT:-$MNT} status=0
	"$PROVFS" -o "store=$STORE" "$@" "$backing" "$mnt" 2>"$TMP/mount.err" || status=$?
	if [ "$status" -ne 0 ]; then
		echo "provfs exited $status:" >&2
		cat "$TMP/mount.err" >&2
		return 1
	fi
	if ! wait_mounted "$mnt"; then
		echo "provfs: $mnt did not become a mount point" >&2
		return 1
	fi
	MOUNTED_PID=$(provfs_pids "$mnt" | head -n 1)
}

# Remount with libfuse's log of every request (-d) in $TMP/requests.log.
mount_logging_requests() {
	unmount_provfs
	"$PROVFS" -d -o "store=$STORE" "$@" "$BACKING" "$MNT" 2>"$TMP/requests.log" 3>&- &
	wait_mounted "$MNT"
}

# How many requests of opcode $1 (OPENDIR, READDIRPLUS, ...) the log holds.
requests_of() {
	grep -c "opcode: $1 (" "$TMP/requests.log" || true
}

# unmount_provfs [MNT]: unmount and wait for the daemon to exit.
unmount_provfs() {
	local mnt=${1:-${MOUNT_POINT:-$MNT}} pids
	pids=$(provfs_pids "$mnt")
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" || return 1
	fi
	wait_unmounted "$mnt" || return 1
	# shellcheck disable=SC2086
	wait_pids_gone $pids
}

# Unmount every mount under $1 (deepest first) and end the daemons.
unmount_all_under() {
	local dir=$1 mnt pids pid
	pids=$(provfs_pids "$dir")
	for mnt in $(mounts_under "$dir" | sort -r); do
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	done
	for mnt in $(mounts_under "$dir" | sort -r); do
		umount -l "$mnt" 2>/dev/null || true
	done
	[ -z "$pids" ] && return 0
	# shellcheck disable=SC2086
	wait_pids_gone $pids && return 0
	for pid in $pids; do kill -TERM "$pid" 2>/dev/null || true; done
	# shellcheck disable=SC2086
	WAIT_TIMEOUT=2 wait_pids_gone $pids && return 0
	for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}

# Nothing of this test mounted and no daemon of it running.
assert_nothing_mounted() {
	local left
	left=$(mounts_under "$TMP")
	if [ -n "$left" ]; then
		echo "still mounted: $left" >&2
		return 1
	fi
	left=$(provfs_pids "$TMP")
	# shellcheck disable=SC2086 # one pid a word
	if [ -n "$left" ] && ! wait_pids_gone $left; then
		echo "provfs still running: $left" >&2
		return 1
	fi
}

# ---------------------------------------------------------------- background processes

# start_background CMD...: run in the background (without bats' fd 3, so
# bats never waits for it), remembered for teardown.  Sets LAST_BG.
start_background() {
	"$@" 3>&- &
	LAST_BG=$!
	echo "$LAST_BG" >>"$TMP/.background"
}

# A pid and all its descendants, found through /proc (children first).
descendants_of() {
	local parent=$1 stat line pid ppid
	for stat in /proc/[0-9]*/stat; do
		line=$(cat "$stat" 2>/dev/null) || continue
		pid=${line%% *}
		line=${line##*) } # after the command name, which may hold spaces
		read -r _ ppid _ <<<"$line"
		[ "$ppid" = "$parent" ] && descendants_of "$pid"
	done
	echo "$parent"
}

# kill_tree PID: SIGTERM a background process started by this test and its
# children, by pid.
kill_tree() {
	local pid
	for pid in $(descendants_of "$1"); do
		kill -TERM "$pid" 2>/dev/null || true
	done
}

cleanup_background() {
	local pid
	[ -f "$TMP/.background" ] || return 0
	while read -r pid; do
		kill -0 "$pid" 2>/dev/null && kill_tree "$pid"
	done <"$TMP/.background"
	rm -f "$TMP/.background"
}

# release FIFO: write a line to a fifo a background process waits on; gives
# up after 5 s instead of blocking when nobody reads it.
release() {
	timeout 5 sh -c 'echo go >"$1"' sh "$1"
}

# Wait up to 5 s for a file to exist.
wait_for_file() {
	local i
	for i in $(seq 100); do
		[ -e "$1" ] && return 0
		sleep 0.05
	done
	echo "timed out waiting for $1" >&2
	return 1
}

# ---------------------------------------------------------------- users

ensure_test_users() {
	# Suites run two at a time: useradd refuses while another holds the
	# lock of /etc/passwd, so the first suite here creates the users alone.
	local user users_lock
	exec {users_lock}>/run/provfs-test-users.lock
	flock "$users_lock"
	getent group "$TEST_GROUP" >/dev/null || groupadd "$TEST_GROUP" 2>/dev/null ||
		getent group "$TEST_GROUP" >/dev/null
	for user in "${TEST_USERS[@]}"; do
		if ! id -u "$user" >/dev/null 2>&1; then
			useradd -M -d /nonexistent -s /bin/sh -U "$user" 2>/dev/null ||
				id -u "$user" >/dev/null
		fi
	done
	id -nG provfs-u1 | grep -qw "$TEST_GROUP" || usermod -a -G "$TEST_GROUP" provfs-u1
	exec {users_lock}>&-
	U1=provfs-u1 U2=provfs-u2 U3=provfs-u3
}

# as_user USER CMD...: run CMD as USER (its groups, a clean PATH, cwd /).
as_user() {
	local user=$1
	shift
	(cd / && exec setpriv --reuid="$user" --regid="$user" --init-groups --reset-env \
		env PATH="$SAFE_PATH" TMP="$TMP" MNT="$MNT" BACKING="$BACKING" NATIVE="$NATIVE" \
		PYTHON="$PYTHON" "$@")
}

# user_reachable PROGRAM: the path of a copy of PROGRAM that every user can
# run.  The build directory may sit in a tree other users cannot traverse
# (a clone in root's home, mode 700), so tests that run a built program as
# a test user run this copy, kept in the test's own world-traversable $TMP.
user_reachable() {
	local program=$1 copy
	copy=$TMP/bin/$(basename "$program")
	if [ ! -x "$copy" ]; then
		mkdir -p "$TMP/bin"
		chmod 755 "$TMP/bin"
		install -m 755 "$program" "$copy" || return 1
	fi
	printf '%s\n' "$copy"
}

# as_user_sh USER 'shell text': the same, through sh -c.
as_user_sh() {
	local user=$1
	shift
	as_user "$user" /bin/sh -c "$1"
}

# ---------------------------------------------------------------- misc

# run_split CMD...: like run, but keeps stdout and stderr apart in $stdout and
# $stderr (and $stderr_lines); sets $status.
run_split() {
	local out=$TMP/.stdout err=$TMP/.stderr
	status=0
	"$@" >"$out" 2>"$err" || status=$?
	stdout=$(cat "$out")
	stderr=$(cat "$err")
	stderr_lines=()
	if [ -n "$stderr" ]; then
		mapfile -t stderr_lines <"$err"
	fi
}

# Fail with a message showing expected and actual.
assert_equal() {
	if [ "$1" != "$2" ]; then
		printf 'expected: %s\nactual:   %s\n' "$2" "$1" >&2
		return 1
	fi
}

assert_match() {
	if ! [[ $1 =~ $2 ]]; then
		printf 'expected to match: %s\nactual: %s\n' "$2" "$1" >&2
		return 1
	fi
}

# exchange A B: renameat2(A, B, RENAME_EXCHANGE), each name gets the other's object.
exchange() {
	"$PYTHON" -c 'import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))' "$1" "$2"
}

# trace_daemon CALLS: strace of the mounted daemon's system calls CALLS
# (strace's -e trace= list) into $TMP/trace, TRACER its pid.  Returns once
# strace has attached (the daemon's threads show a tracer), 1 if it has not
# within 10 s.  untrace_daemon stops it.
trace_daemon() {
	strace -f -qq -p "$MOUNTED_PID" -e trace="$1" -o "$TMP/trace" &
	TRACER=$!
	local tid
	for _ in $(seq 100); do
		tid=$(ls "/proc/$MOUNTED_PID/task" | head -n 1)
		[ "$(awk '/^TracerPid/ {print $2}' "/proc/$MOUNTED_PID/task/$tid/status")" != 0 ] && return 0
		sleep 0.1
	done
	return 1
}

untrace_daemon() {
	kill "$TRACER"
	wait "$TRACER" || true
}
