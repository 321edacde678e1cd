#!/usr/bin/env bats
# uring.bats - FUSE over io_uring (Linux 6.14+, fs/session_ring.c): with the
# fuse module's enable_uring on, the kernel hands each request to a daemon
# thread of its caller's CPU (provfs-ringN), and everything else stays as
# it is through /dev/fuse: permissions, lineage, hashes, large requests and
# replies, and a clean exit.
#
# enable_uring is a setting of the whole machine: each test turns it on
# only while it mounts (a connection keeps what it got at INIT) and puts
# the old value back at once.

load helpers
load recorder_helpers

KNOB=/sys/module/fuse/parameters/enable_uring

setup() {
	common_setup
	chmod 700 "$BACKING"
	[ -e /dev/fuse ] || skip "no /dev/fuse"
	[ -w "$KNOB" ] || skip "this kernel has no FUSE over io_uring ($KNOB)"
}

teardown() {
	common_teardown
}

# mount_with_uring [provfs args...]: mount while the kernel offers io_uring.
mount_with_uring() {
	local saved status=0
	saved=$(cat "$KNOB")
	echo Y >"$KNOB"
	mount_provfs "$@" || status=$?
	# The kernel decides when it takes the INIT reply: the first request
	# waits for that.
	stat "$MNT" >/dev/null || status=$?
	echo "$saved" >"$KNOB"
	return "$status"
}

# The daemon's ring threads, one line each: TID
ring_threads() {
	local pid=$1 task
	for task in /proc/"$pid"/task/*; do
		[[ $(cat "$task/comm" 2>/dev/null) == provfs-ring* ]] && echo "${task##*/}"
	done
	return 0
}

# Times the daemon's ring threads have been woken (voluntary context
# switches): each request they serve wakes one.
ring_wakeups() {
	local pid=$1 tid total=0 count
	for tid in $(ring_threads "$pid"); do
		count=$(awk '/^voluntary_ctxt_switches/ { print $2 }' "/proc/$pid/task/$tid/status")
		total=$((total + count))
	done
	echo "$total"
}

@test "io_uring: every CPU's queue has its ring threads, and they serve the requests" {
	mount_with_uring
	local pid=$MOUNTED_PID possible
	possible=$(awk -F'[-,]' '{ print $NF + 1 }' /sys/devices/system/cpu/possible)
	# At least one thread for every queue the kernel waits for.
	run ring_threads "$pid"
	[ "${#lines[@]}" -ge "$possible" ]
	for cpu in $(seq 0 $((possible - 1))); do
		grep -qx "provfs-ring$cpu" /proc/"$pid"/task/*/comm
	done
	local before after
	before=$(ring_wakeups "$pid")
	for i in $(seq 300); do echo "$i" >"$MNT/f$i"; done
	after=$(ring_wakeups "$pid")
	# 300 creates are well over 600 requests; idle threads wake once a second.
	[ $((after - before)) -ge 300 ]
	[ "$(cat "$MNT/f300")" = 300 ]
}

@test "-o nouring: no ring threads, requests through /dev/fuse" {
	mount_with_uring -o nouring
	run ring_threads "$MOUNTED_PID"
	[ -z "$output" ]
	echo data >"$MNT/f"
	[ "$(cat "$MNT/f")" = data ]
}

@test "io_uring: large requests and replies (1 MiB writes and reads through the daemon), names, links, xattrs and directories as through /dev/fuse" {
	mount_with_uring -o nopassthrough
	head -c $((3 * 1024 * 1024 + 123)) /dev/urandom >"$TMP/data"
	dd if="$TMP/data" of="$MNT/big" bs=1M status=none
	cmp "$TMP/data" "$BACKING/big"
	cmp "$TMP/data" "$MNT/big"
	# A directory listing larger than one reply.
	mkdir "$MNT/d"
	for i in $(seq 400); do : >"$MNT/d/a-rather-long-file-name-to-fill-the-reply-$i"; done
	[ "$(ls "$MNT/d" | wc -l)" -eq 400 ]
	[ "$(ls -l "$MNT/d" | grep -c '^-')" -eq 400 ]
	mv "$MNT/big" "$MNT/d/big"
	ln "$MNT/d/big" "$MNT/hard"
	ln -s d/big "$MNT/soft"
	[ "$(readlink "$MNT/soft")" = d/big ]
	[ "$(stat -c %h "$MNT/hard")" -eq 2 ]
	setfattr -n user.colour -v blue "$MNT/hard"
	[ "$(getfattr --only-values -n user.colour "$BACKING/d/big")" = blue ]
	truncate -s 5 "$MNT/hard"
	[ "$(stat -c %s "$BACKING/d/big")" -eq 5 ]
	rm -r "$MNT/d"
	[ ! -e "$BACKING/d" ]
	run cat "$MNT/missing"
	[ "$status" -ne 0 ]
	[[ $output == *"No such file or directory"* ]]
}

@test "io_uring: the caller's credentials decide, and lineage and hashes are recorded" {
	ensure_test_users
	chmod 755 "$BACKING"
	mkdir -m 700 "$BACKING/private"
	mkdir -m 1777 "$BACKING/shared"
	mount_with_uring
	run as_user provfs-u1 ls "$MNT/private"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u1 sh -c "echo from-u1 >'$MNT/owned'"
	[ "$status" -ne 0 ]
	[ ! -e "$BACKING/owned" ]
	as_user provfs-u1 sh -c "echo from-u1 >'$MNT/shared/owned'"
	[ "$(stat -c %U "$BACKING/shared/owned")" = provfs-u1 ]
	cat "$MNT/shared/owned" >/dev/null
	stop_provfs
	assert_sql "SELECT count(*), origin, hash_state, hash FROM versions
	            WHERE file_id = ($(file_id_sql shared/owned))" \
		"1|written|hashed|$(xxh "$BACKING/shared/owned")"
	# The writer is the user's shell, its reader root's cat.
	assert_sql "SELECT group_concat(DISTINCT p.uid) FROM accesses a
	            JOIN processes p ON p.id = a.process_id
	            WHERE a.file_id = ($(file_id_sql shared/owned)) AND a.written_version_id IS NOT NULL" \
		"$(id -u provfs-u1)"
}

@test "io_uring: an answer made off the request thread (the lineage xattr, from the store) reaches the caller" {
	mount_with_uring
	echo data >"$MNT/a"
	cat "$MNT/a" >"$MNT/b"
	# The recorder writes the version in the background: wait for it.
	local lineage i
	for i in $(seq 50); do
		lineage=$(getfattr --only-values -n user.provfs.lineage "$MNT/b" 2>/dev/null) &&
			[[ $lineage == *'"origin":"written"'* ]] && break
		sleep 0.1
	done
	echo "$lineage"
	[[ $lineage == '{"path":"b"'* ]]
	[[ $lineage == *'"executable":"'*'/cat"'* ]]
}

@test "io_uring over a backing filesystem that refuses the writer watch (tmpfs): requests still served" {
	mount -t tmpfs -o size=16m provfs-uring-test "$BACKING"
	mount_with_uring
	run ring_threads "$MOUNTED_PID"
	[ -n "$output" ]
	grep -q "for reading only" "$TMP/mount.err"
	echo written >"$MNT/f"
	[ "$(cat "$MNT/f")" = written ]
	cp "$MNT/f" "$MNT/g"
	[ "$(cat "$BACKING/g")" = written ]
}

@test "io_uring: the daemon exits at unmount, and at SIGTERM while a file is held open" {
	mount_with_uring
	echo x >"$MNT/f"
	unmount_provfs
	mount_with_uring
	local pid=$MOUNTED_PID
	exec 7<"$MNT/f"
	kill -TERM "$pid"
	WAIT_TIMEOUT=10 wait_pids_gone "$pid"
	exec 7<&-
}

@test "io_uring: a write carried out as the daemon stops is reported done (SIGTERM under two appenders)" {
	# libfuse closes its /dev/fuse descriptor at unmount: an answer still to
	# be sent went nowhere, and the writer saw a failure for a write that was
	# in the file (three runs in four before).
	local round c
	for round in 1 2; do
		mount_with_uring -o nopassthrough
		local pid=$MOUNTED_PID
		for c in 0 1; do
			taskset -c "$c" "$PYTHON" -c "
import os
fd = os.open('$MNT/f$c', os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
n = 0
try:
    while True:
        os.write(fd, b'x' * 100)
        n += 1
        os.stat('$MNT/f$c')
except OSError:
    open('$TMP/done$c', 'w').write(str(n))
" &
		done
		sleep 1.5
		kill -TERM "$pid"
		wait
		WAIT_TIMEOUT=10 wait_pids_gone "$pid"
		for c in 0 1; do
			[ "$(($(stat -c %s "$BACKING/f$c") / 100))" -eq "$(cat "$TMP/done$c")" ]
			rm -f "$BACKING/f$c" "$TMP/done$c"
		done
		umount -l "$MNT" 2>/dev/null || true
	done
}
