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
	! is_mounted "$MNT"
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
