#!/usr/bin/env bats
# passthrough.bats - what a user checks through a real mount: files behave as
# on the native filesystem underneath.  Where it is sensible the same steps
# run in $NATIVE (a plain directory on the same filesystem as $BACKING) and
# the results are compared.

load helpers

setup() {
	common_setup
	ensure_test_users
	mount_provfs
}

teardown() {
	common_teardown
}

# Run a shell script in $NATIVE and in $MNT (as root or, with -u USER, as
# that user) and require the same output and status.  The script sees its
# directory as the current directory.
same_as_native() {
	local user= script native mounted native_status=0 mounted_status=0
	if [ "$1" = -u ]; then
		user=$2
		shift 2
	fi
	script=$1
	if [ -n "$user" ]; then
		native=$(as_user_sh "$user" "cd '$NATIVE' && $script" 2>&1) || native_status=$?
		mounted=$(as_user_sh "$user" "cd '$MNT' && $script" 2>&1) || mounted_status=$?
	else
		native=$(cd "$NATIVE" && sh -c "$script" 2>&1) || native_status=$?
		mounted=$(cd "$MNT" && sh -c "$script" 2>&1) || mounted_status=$?
	fi
	if [ "$native" != "$mounted" ] || [ "$native_status" != "$mounted_status" ]; then
		echo "script: $script" >&2
		echo "--- native (status $native_status)" >&2
		echo "$native" >&2
		echo "--- provfs (status $mounted_status)" >&2
		echo "$mounted" >&2
		diff <(echo "$native") <(echo "$mounted") >&2 || true
		return 1
	fi
	SAME_OUTPUT=$native
}

# A directory owned by USER, in the mount and in $NATIVE.
user_dir() {
	local user=$1 name=$2
	mkdir "$MNT/$name" "$NATIVE/$name"
	chown "$user:$user" "$MNT/$name" "$NATIVE/$name"
}

# ------------------------------------------------------------ data

@test "create, write and read back a file" {
	echo hello >"$MNT/f"
	[ "$(cat "$MNT/f")" = hello ]
	[ "$(cat "$BACKING/f")" = hello ]
	head -c 300000 /dev/urandom >"$TMP/random"
	cp "$TMP/random" "$MNT/random"
	cmp "$TMP/random" "$MNT/random"
	cmp "$TMP/random" "$BACKING/random"
}

@test "files in the backing directory before mounting are visible" {
	unmount_provfs
	echo old >"$BACKING/old"
	mkdir "$BACKING/dir"
	echo inner >"$BACKING/dir/inner"
	mount_provfs
	[ "$(cat "$MNT/old")" = old ]
	[ "$(cat "$MNT/dir/inner")" = inner ]
	[ "$(ls "$MNT")" = "$(printf 'dir\nold')" ]
}

@test "O_TRUNC: rewriting a file truncates it" {
	printf 'a long first version\n' >"$MNT/f"
	printf 'short\n' >"$MNT/f"
	[ "$(cat "$MNT/f")" = short ]
	[ "$(stat -c %s "$MNT/f")" -eq 6 ]
	[ "$(stat -c %s "$BACKING/f")" -eq 6 ]
}

@test "O_APPEND: >> appends" {
	echo one >"$MNT/f"
	echo two >>"$MNT/f"
	echo three >>"$MNT/f"
	[ "$(cat "$MNT/f")" = "$(printf 'one\ntwo\nthree')" ]
	[ "$(cat "$BACKING/f")" = "$(printf 'one\ntwo\nthree')" ]
}

@test "O_APPEND writes go to the end even after a seek" {
	printf '0123456789' >"$MNT/f"
	run "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
os.lseek(fd, 0, os.SEEK_SET)
os.write(fd, b"AB")
os.close(fd)
print(open(sys.argv[1]).read())' "$MNT/f"
	[ "$status" -eq 0 ]
	[ "$output" = 0123456789AB ]
}

@test "O_EXCL: noclobber and O_CREAT|O_EXCL refuse an existing file" {
	echo first >"$MNT/f"
	run bash -c "set -o noclobber; echo second > '$MNT/f'"
	[ "$status" -ne 0 ]
	[[ $output == *"cannot overwrite existing file"* ]]
	[ "$(cat "$MNT/f")" = first ]
	run "$PYTHON" -c '
import os, sys, errno
try:
    os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
except OSError as e:
    print(errno.errorcode[e.errno]); sys.exit(0)
print("opened"); sys.exit(1)' "$MNT/f"
	[ "$status" -eq 0 ]
	[ "$output" = EEXIST ]
	# And on a new name O_EXCL creates.
	run "$PYTHON" -c '
import os, sys
os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o640))' "$MNT/new"
	[ "$status" -eq 0 ]
	[ -f "$BACKING/new" ]
}

@test "truncate: shrink and extend" {
	printf 'abcdefghij' >"$MNT/f"
	truncate -s 4 "$MNT/f"
	[ "$(cat "$MNT/f")" = abcd ]
	truncate -s 10000 "$MNT/f"
	[ "$(stat -c %s "$MNT/f")" -eq 10000 ]
	[ "$(stat -c %s "$BACKING/f")" -eq 10000 ]
	# The extension reads as zeros.
	[ "$(tail -c 9996 "$MNT/f" | tr -d '\0' | wc -c)" -eq 0 ]
	truncate -s 0 "$MNT/f"
	[ "$(stat -c %s "$MNT/f")" -eq 0 ]
	# ftruncate on an open descriptor.
	"$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
os.write(fd, b"x" * 100)
os.ftruncate(fd, 7)
assert os.fstat(fd).st_size == 7
os.close(fd)' "$MNT/f"
	[ "$(stat -c %s "$MNT/f")" -eq 7 ]
	[ "$(stat -c %s "$BACKING/f")" -eq 7 ]
}

@test "overwriting in the middle of a file" {
	printf 'aaaaaaaaaa' >"$MNT/f"
	printf 'XY' | dd of="$MNT/f" bs=1 seek=4 conv=notrunc status=none
	[ "$(cat "$MNT/f")" = aaaaXYaaaa ]
	[ "$(cat "$BACKING/f")" = aaaaXYaaaa ]
}

# ------------------------------------------------------------ attributes

@test "stat attributes through the mount match the backing file" {
	printf 'some content\n' >"$MNT/f"
	mkdir "$MNT/d"
	ln -s f "$MNT/l"
	chown provfs-u1:provfs-g "$MNT/f"
	chmod 640 "$MNT/f"
	sync
	local fmt='%F|%s|%b|%a|%u|%g|%h|%i|%t:%T'
	for name in f d l; do
		assert_equal "$(stat -c "$fmt" "$MNT/$name")" "$(stat -c "$fmt" "$BACKING/$name")"
	done
	[ "$(stat -c '%F|%s|%a|%U|%G' "$MNT/f")" = "regular file|13|640|provfs-u1|provfs-g" ]
	# Times agree once writes are done.
	for name in f d; do
		assert_equal "$(stat -c '%Y %X' "$MNT/$name")" "$(stat -c '%Y %X' "$BACKING/$name")"
	done
}

@test "writing updates mtime and ctime" {
	echo one >"$MNT/f"
	touch -d '2000-01-01 00:00:00' "$MNT/f"
	local before
	before=$(stat -c %Z "$MNT/f")
	echo two >>"$MNT/f"
	[ "$(stat -c %Y "$MNT/f")" -gt 946684800 ]
	[ "$(stat -c %Y "$MNT/f")" -ge "$before" ]
	[ "$(stat -c %Z "$MNT/f")" -ge "$before" ]
}

@test "chmod" {
	echo x >"$MNT/f"
	mkdir "$MNT/d"
	chmod 640 "$MNT/f"
	[ "$(stat -c %a "$MNT/f")" = 640 ]
	[ "$(stat -c %a "$BACKING/f")" = 640 ]
	chmod 4755 "$MNT/f"
	[ "$(stat -c %a "$MNT/f")" = 4755 ]
	chmod 1777 "$MNT/d"
	[ "$(stat -c %a "$MNT/d")" = 1777 ]
	[ "$(stat -c %a "$BACKING/d")" = 1777 ]
	chmod 000 "$MNT/f"
	[ "$(stat -c %a "$BACKING/f")" = 0 ]
}

@test "chmod by the owner works, by another user is refused" {
	touch "$MNT/f"
	chown provfs-u1 "$MNT/f"
	as_user provfs-u1 chmod 600 "$MNT/f"
	[ "$(stat -c %a "$BACKING/f")" = 600 ]
	run as_user provfs-u2 chmod 666 "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
	[ "$(stat -c %a "$BACKING/f")" = 600 ]
}

@test "chmod g+s by a user outside the file's group drops the bit, as on ext4" {
	user_dir provfs-u2 d
	same_as_native -u provfs-u2 'touch d/f && chmod 2755 d/f && stat -c %a d/f'
	[ "$SAME_OUTPUT" = 2755 ]
	chgrp provfs-g "$MNT/d/f" "$NATIVE/d/f"
	same_as_native -u provfs-u2 'chmod 2755 d/f; stat -c %a d/f'
}

@test "chown as root" {
	echo x >"$MNT/f"
	chown provfs-u1:provfs-u2 "$MNT/f"
	[ "$(stat -c %U:%G "$MNT/f")" = provfs-u1:provfs-u2 ]
	[ "$(stat -c %U:%G "$BACKING/f")" = provfs-u1:provfs-u2 ]
	chgrp provfs-g "$MNT/f"
	[ "$(stat -c %U:%G "$BACKING/f")" = provfs-u1:provfs-g ]
	# chown -h changes a symlink itself, not its target.
	ln -s f "$MNT/l"
	chown -h provfs-u2:provfs-u2 "$MNT/l"
	[ "$(stat -c %U "$BACKING/l")" = provfs-u2 ]
	[ "$(stat -c %U "$BACKING/f")" = provfs-u1 ]
}

@test "chown clears set-user-ID as on ext4" {
	same_as_native 'touch f && chmod 6755 f && chown provfs-u1 f && stat -c "%a %U" f'
}

@test "chown by a user is refused" {
	touch "$MNT/f"
	chown provfs-u1 "$MNT/f"
	run as_user provfs-u1 chown provfs-u2 "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
	[ "$(stat -c %U "$BACKING/f")" = provfs-u1 ]
}

@test "utimens: touch -d sets both times exactly" {
	echo x >"$MNT/f"
	touch -d '2001-02-03 04:05:06.123456789 UTC' "$MNT/f"
	[ "$(TZ=UTC stat -c '%x|%y' "$MNT/f")" = \
		"2001-02-03 04:05:06.123456789 +0000|2001-02-03 04:05:06.123456789 +0000" ]
	[ "$(TZ=UTC stat -c '%x|%y' "$BACKING/f")" = \
		"2001-02-03 04:05:06.123456789 +0000|2001-02-03 04:05:06.123456789 +0000" ]
	mkdir "$MNT/d"
	touch -d '1999-12-31 23:59:59 UTC' "$MNT/d"
	[ "$(stat -c %Y "$BACKING/d")" = 946684799 ]
}

@test "utimens: touch -a and -m change one time and leave the other (UTIME_OMIT)" {
	echo x >"$MNT/f"
	touch -d '2001-01-01 00:00:00 UTC' "$MNT/f"
	touch -a -d '2002-02-02 00:00:00 UTC' "$MNT/f"
	[ "$(stat -c '%X %Y' "$MNT/f")" = "1012608000 978307200" ]
	[ "$(stat -c '%X %Y' "$BACKING/f")" = "1012608000 978307200" ]
	touch -m -d '2003-03-03 00:00:00 UTC' "$MNT/f"
	[ "$(stat -c '%X %Y' "$MNT/f")" = "1012608000 1046649600" ]
	[ "$(stat -c '%X %Y' "$BACKING/f")" = "1012608000 1046649600" ]
	# touch with no date: now, for both.
	touch "$MNT/f"
	[ "$(stat -c %Y "$MNT/f")" -ge $(($(date +%s) - 60)) ]
	[ "$(stat -c %X "$BACKING/f")" -ge $(($(date +%s) - 60)) ]
}

@test "utimens on a symlink itself (touch -h)" {
	ln -s nowhere "$MNT/l"
	touch -h -d '2004-04-04 00:00:00 UTC' "$MNT/l"
	[ "$(stat -c %Y "$MNT/l")" = 1081036800 ]
	[ "$(stat -c %Y "$BACKING/l")" = 1081036800 ]
}

@test "utimens: touch by a non-owner with write access sets now, a date is refused" {
	echo x >"$MNT/f"
	chmod 666 "$MNT/f"
	touch -d '2001-01-01 UTC' "$MNT/f"
	as_user provfs-u1 touch "$MNT/f"
	[ "$(stat -c %Y "$BACKING/f")" -gt 978307200 ]
	run as_user provfs-u1 touch -d '2001-01-01 UTC' "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
}

# ------------------------------------------------------------ namespace

@test "mkdir, rmdir, unlink" {
	mkdir "$MNT/d"
	mkdir -p "$MNT/d/e/f"
	[ -d "$BACKING/d/e/f" ]
	echo x >"$MNT/d/file"
	run rmdir "$MNT/d"
	[ "$status" -ne 0 ]
	[[ $output == *"Directory not empty"* ]]
	rm "$MNT/d/file"
	[ ! -e "$MNT/d/file" ]
	[ ! -e "$BACKING/d/file" ]
	rmdir "$MNT/d/e/f" "$MNT/d/e" "$MNT/d"
	[ ! -e "$MNT/d" ]
	[ ! -e "$BACKING/d" ]
	run rm "$MNT/absent"
	[ "$status" -ne 0 ]
	[[ $output == *"No such file or directory"* ]]
	echo x >"$MNT/f"
	run rmdir "$MNT/f"
	[[ $output == *"Not a directory"* ]]
	mkdir "$MNT/d2"
	run rm "$MNT/d2"
	[[ $output == *"Is a directory"* ]]
}

@test "readdir of a directory with 1000 entries" {
	mkdir "$MNT/big"
	(cd "$MNT/big" && seq -f 'file-%04g' 1000 | xargs touch)
	[ "$(ls "$MNT/big" | wc -l)" -eq 1000 ]
	[ "$(ls -f "$MNT/big" | wc -l)" -eq 1002 ] # with . and ..
	diff <(ls "$MNT/big") <(ls "$BACKING/big")
	diff <(ls "$MNT/big") <(seq -f 'file-%04g' 1000)
	# readdirplus (ls -l) and a second pass agree.
	[ "$(ls -l "$MNT/big" | grep -c '^-')" -eq 1000 ]
	run "$PYTHON" -c '
import os, sys
names = os.listdir(sys.argv[1])
print(len(names), len(set(names)))
entries = list(os.scandir(sys.argv[1]))
print(sum(1 for e in entries if e.is_file(follow_symlinks=False)))' "$MNT/big"
	[ "$output" = "$(printf '1000 1000\n1000')" ]
}

@test "rm -r of a directory with 1000 entries removes everything" {
	mkdir "$MNT/big"
	(cd "$MNT/big" && seq -f 'file-%04g' 1000 | xargs touch && mkdir sub && touch sub/x)
	rm -r "$MNT/big"
	[ ! -e "$MNT/big" ]
	[ ! -e "$BACKING/big" ]
}

@test "directories: listed without OPENDIR, an unchanged listing is the kernel's; changes show as on ext4" {
	case $(stat -f -c %T "$BACKING") in
	ext2/ext3 | xfs | btrfs) ;;
	*) skip "the backing directory is on $(stat -f -c %T "$BACKING"): listings keep OPENDIR's stream there" ;;
	esac
	mkdir "$BACKING/d"
	# Long names: a listing takes several READDIR requests.
	(cd "$BACKING/d" && seq -f 'a-file-with-a-rather-long-name-%04g' 3000 | xargs touch)
	# Three seconds, so that the listing is still kept when looked at again
	# on a slow machine (a kept listing ends with its entries).
	mount_logging_requests -o timeout=3
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	[ "$(ls -l "$MNT/d" | grep -c '^-')" -eq 3000 ]
	listed=$(($(requests_of READDIR) + $(requests_of READDIRPLUS)))
	[ "$listed" -ge 3 ]
	# The kernel answered its first OPENDIR (ENOSYS: "list without") and
	# sends no more of them, nor RELEASEDIR.
	[ "$(requests_of OPENDIR)" -le 1 ]
	[ "$(requests_of RELEASEDIR)" -eq 0 ]
	# Unchanged: listed again from the kernel's cache.
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	[ "$(($(requests_of READDIR) + $(requests_of READDIRPLUS)))" -eq "$listed" ]
	# Changes through the mount show in the next listing, at once.
	touch "$MNT/d/new-through-the-mount"
	rm "$MNT/d/a-file-with-a-rather-long-name-0007"
	mv "$MNT/d/a-file-with-a-rather-long-name-0008" "$MNT/d/renamed"
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	ls "$MNT/d" | grep -qx new-through-the-mount
	[ -z "$(ls "$MNT/d" | grep -- '-0007$')" ]
	# A change made directly in the backing directory, once the
	# directory's attributes are older than the timeout, as a name created
	# there is found.
	touch "$BACKING/d/new-in-the-backing-directory"
	sleep 3.2
	ls "$MNT/d" | grep -qx new-in-the-backing-directory
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	# fsync of a directory without an OPENDIR handle.
	"$PYTHON" -c '
import os, sys
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
os.fsync(d)
os.fdatasync(d)
os.close(d)' "$MNT/d"
	[ "$(requests_of FSYNCDIR)" -ge 1 ]
	unmount_provfs
}

@test "directories: each entry is listed once while the lister removes what it has listed (rm -r)" {
	mkdir "$MNT/d"
	(cd "$MNT/d" && seq -f 'a-file-with-a-rather-long-name-%04g' 3000 | xargs touch)
	sleep 1.2 # the listing starts from the backing directory, not the kernel's cache
	# scandir keeps one directory open, reads a batch, and each entry is
	# unlinked before the next batch is asked for at the offset after it.
	run "$PYTHON" -c '
import os, sys
seen = []
with os.scandir(sys.argv[1]) as it:
    for entry in it:
        seen.append(entry.name)
        os.unlink(entry.path)
print(len(seen), len(set(seen)), len(os.listdir(sys.argv[1])))' "$MNT/d"
	[ "$status" -eq 0 ]
	[ "$output" = "3000 3000 0" ]
	[ -z "$(ls -A "$BACKING/d")" ]
}

@test "-o timeout=30: files already seen are stat'ed from the kernel's cache; changes through the mount show at once" {
	mkdir "$BACKING/d"
	(cd "$BACKING/d" && seq -f 'f%03g' 300 | xargs touch)
	# Default (1 s): a second look after 1.2 s asks the daemon again, as
	# the first did.  The listing the kernel kept ended with its entries
	# (fs/listing_expiry.c), so it is listed again and the entries come
	# back with it (READDIRPLUS), rather than a LOOKUP for every one.
	mount_logging_requests
	stat "$MNT"/d/* >/dev/null
	local listings lookups first_lookups
	first_lookups=$(($(requests_of LOOKUP) + $(requests_of GETATTR)))
	sleep 1.2
	listings=$(($(requests_of READDIR) + $(requests_of READDIRPLUS)))
	lookups=$(($(requests_of LOOKUP) + $(requests_of GETATTR)))
	stat "$MNT"/d/* >/dev/null
	echo "first look: $first_lookups lookups; second: listings $listings ->" \
		"$(($(requests_of READDIR) + $(requests_of READDIRPLUS))), lookups $lookups ->" \
		"$(($(requests_of LOOKUP) + $(requests_of GETATTR)))"
	[ $(($(requests_of READDIR) + $(requests_of READDIRPLUS) - listings)) -ge 1 ]
	[ $(($(requests_of LOOKUP) + $(requests_of GETATTR) - lookups)) -le $((first_lookups + 5)) ]
	[ $(($(requests_of LOOKUP) + $(requests_of GETATTR) - lookups)) -lt 250 ]
	unmount_provfs
	mount_logging_requests -o timeout=30
	stat "$MNT"/d/* >/dev/null
	sleep 1.2
	before=$(($(requests_of LOOKUP) + $(requests_of GETATTR)))
	stat "$MNT"/d/* >/dev/null
	find "$MNT/d" -type f | wc -l | grep -qx 300
	[ $(($(requests_of LOOKUP) + $(requests_of GETATTR) - before)) -le 5 ]
	# Through the mount: a chmod, an unlink, a create and a write show at once.
	chmod 600 "$MNT/d/f001"
	[ "$(stat -c %a "$MNT/d/f001")" = 600 ]
	rm "$MNT/d/f002"
	[ ! -e "$MNT/d/f002" ]
	echo new >"$MNT/d/f003"
	[ "$(stat -c %s "$MNT/d/f003")" = 4 ]
	touch "$MNT/d/new"
	[ -e "$MNT/d/new" ]
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	unmount_provfs
}

@test "directories: a directory removed while open lists as on ext4 (empty, then ENOENT)" {
	# Listed without a handle, each READDIR opens the directory anew: a
	# removed one must read as it does natively, not fail differently.
	[ "$(uname -m)" = x86_64 ] || skip "calls getdents64 by its x86_64 number"
	cat >"$TMP/removed.py" <<'EOF'
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def getdents(fd):
    buffer = ctypes.create_string_buffer(4096)
    n = libc.syscall(217, fd, buffer, 4096)  # getdents64
    return "error %s" % errno.errorcode[ctypes.get_errno()] if n < 0 else ("entries" if n else "end")
os.mkdir("empty")
fd = os.open("empty", os.O_RDONLY | os.O_DIRECTORY)
os.rmdir("empty")
print("removed while open:", os.listdir(fd), getdents(fd))
os.mkdir("full")
for i in range(3000):
    open("full/a-file-with-a-rather-long-name-%05d" % i, "w").close()
fd = os.open("full", os.O_RDONLY | os.O_DIRECTORY)
print("first batch:", getdents(fd))
for name in os.listdir("full"):
    os.unlink("full/" + name)
os.rmdir("full")
print("after its removal:", getdents(fd), getdents(fd))
EOF
	same_as_native "$PYTHON $TMP/removed.py"
	echo "$SAME_OUTPUT"
	[[ "$SAME_OUTPUT" == *"removed while open: []"* ]]
	[[ "$SAME_OUTPUT" == *"first batch: entries"* ]]
}

@test "directories: on a tmpfs backing directory a listing keeps OPENDIR's stream" {
	unmount_provfs
	mount -t tmpfs -o size=16m,mode=755 provfs-test-tmpfs "$BACKING" || skip "cannot mount a tmpfs"
	mkdir "$BACKING/d"
	(cd "$BACKING/d" && seq -f 'a-file-with-a-rather-long-name-%04g' 2000 | xargs touch)
	mount_logging_requests
	diff <(ls -f "$MNT/d" | sort) <(ls -f "$BACKING/d" | sort)
	rm -r "$MNT/d"
	[ ! -e "$BACKING/d" ]
	unmount_provfs # RELEASEDIR comes after the close: all are logged by now
	# (Threads may interleave their log lines: counted at least.)
	[ "$(requests_of OPENDIR)" -ge 1 ]
	[ "$(requests_of RELEASEDIR)" -ge 1 ]
	umount "$BACKING"
}

@test "rename: file, over an existing file, directory, across directories" {
	echo a >"$MNT/a"
	mv "$MNT/a" "$MNT/b"
	[ ! -e "$MNT/a" ]
	[ "$(cat "$MNT/b")" = a ]
	[ "$(cat "$BACKING/b")" = a ]
	echo c >"$MNT/c"
	mv -f "$MNT/c" "$MNT/b"
	[ "$(cat "$MNT/b")" = c ]
	[ ! -e "$BACKING/c" ]
	mkdir -p "$MNT/d1/sub" "$MNT/d2"
	echo deep >"$MNT/d1/sub/file"
	mv "$MNT/d1/sub" "$MNT/d2/moved"
	[ "$(cat "$MNT/d2/moved/file")" = deep ]
	[ "$(cat "$BACKING/d2/moved/file")" = deep ]
	[ ! -e "$MNT/d1/sub" ]
	# A directory cannot move into itself.
	run mv "$MNT/d2" "$MNT/d2/moved/"
	[ "$status" -ne 0 ]
	[ -d "$MNT/d2/moved" ]
}

renameat2() {
	"$PYTHON" - "$@" <<'EOF'
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
flags = {"noreplace": 1, "exchange": 2}[sys.argv[1]]
if libc.renameat2(-100, os.fsencode(sys.argv[2]), -100, os.fsencode(sys.argv[3]), flags) != 0:
    print(errno.errorcode[ctypes.get_errno()])
    sys.exit(1)
print("ok")
EOF
}

@test "rename with RENAME_NOREPLACE" {
	echo a >"$MNT/a"
	echo b >"$MNT/b"
	run renameat2 noreplace "$MNT/a" "$MNT/b"
	[ "$status" -eq 1 ]
	[ "$output" = EEXIST ]
	[ "$(cat "$MNT/a")" = a ]
	[ "$(cat "$MNT/b")" = b ]
	run renameat2 noreplace "$MNT/a" "$MNT/c"
	[ "$status" -eq 0 ]
	[ ! -e "$MNT/a" ]
	[ "$(cat "$MNT/c")" = a ]
	[ "$(cat "$BACKING/c")" = a ]
}

@test "rename with RENAME_EXCHANGE" {
	echo a >"$MNT/a"
	echo b >"$MNT/b"
	mkdir "$MNT/d"
	echo in-d >"$MNT/d/x"
	run renameat2 exchange "$MNT/a" "$MNT/b"
	[ "$status" -eq 0 ]
	[ "$(cat "$MNT/a")" = b ]
	[ "$(cat "$MNT/b")" = a ]
	[ "$(cat "$BACKING/a")" = b ]
	# A file and a directory swap too.
	run renameat2 exchange "$MNT/a" "$MNT/d"
	[ "$status" -eq 0 ]
	[ -d "$MNT/a" ]
	[ "$(cat "$MNT/a/x")" = in-d ]
	[ "$(cat "$MNT/d")" = b ]
	# Exchanging with a missing name fails.
	run renameat2 exchange "$MNT/a" "$MNT/absent"
	[ "$status" -eq 1 ]
	[ "$output" = ENOENT ]
}

@test "hard links: same inode, link count, shared data" {
	echo one >"$MNT/a"
	ln "$MNT/a" "$MNT/b"
	[ "$(stat -c %h "$MNT/a")" -eq 2 ]
	[ "$(stat -c %h "$MNT/b")" -eq 2 ]
	[ "$(stat -c %i "$MNT/a")" = "$(stat -c %i "$MNT/b")" ]
	[ "$(stat -c %i "$BACKING/a")" = "$(stat -c %i "$BACKING/b")" ]
	echo two >>"$MNT/b"
	[ "$(cat "$MNT/a")" = "$(printf 'one\ntwo')" ]
	mkdir "$MNT/d"
	ln "$MNT/a" "$MNT/d/c"
	[ "$(stat -c %h "$MNT/b")" -eq 3 ]
	rm "$MNT/a"
	[ "$(stat -c %h "$MNT/b")" -eq 2 ]
	[ "$(stat -c %h "$BACKING/b")" -eq 2 ]
	[ "$(cat "$MNT/d/c")" = "$(printf 'one\ntwo')" ]
	# Hard links to directories are refused.
	run ln "$MNT/d" "$MNT/d2"
	[ "$status" -ne 0 ]
}

@test "symlink and readlink" {
	echo target >"$MNT/t"
	ln -s t "$MNT/rel"
	ln -s "$MNT/t" "$MNT/abs"
	ln -s does/not/exist "$MNT/dangling"
	[ "$(readlink "$MNT/rel")" = t ]
	[ "$(readlink "$BACKING/rel")" = t ]
	[ "$(readlink "$MNT/abs")" = "$MNT/t" ]
	[ "$(cat "$MNT/rel")" = target ]
	[ "$(stat -c %F "$MNT/rel")" = "symbolic link" ]
	[ "$(stat -L -c %F "$MNT/rel")" = "regular file" ]
	[ "$(readlink "$MNT/dangling")" = does/not/exist ]
	run cat "$MNT/dangling"
	[ "$status" -ne 0 ]
	[[ $output == *"No such file or directory"* ]]
	# A long target survives.
	local long
	long=$(printf 'x%.0s' $(seq 1000))/$(printf 'y%.0s' $(seq 1000))
	ln -s "$long" "$MNT/long"
	[ "$(readlink "$MNT/long")" = "$long" ]
	# A symlink to a directory resolves through the mount.
	mkdir "$MNT/dir"
	echo inner >"$MNT/dir/file"
	ln -s dir "$MNT/dirlink"
	[ "$(cat "$MNT/dirlink/file")" = inner ]
}

@test "mkfifo and mknod of a fifo; data passes through the fifo" {
	mkfifo "$MNT/fifo"
	mknod "$MNT/fifo2" p
	[ "$(stat -c %F "$MNT/fifo")" = fifo ]
	[ "$(stat -c %F "$BACKING/fifo2")" = fifo ]
	start_background sh -c "echo through-the-fifo >'$MNT/fifo'"
	run timeout 5 cat "$MNT/fifo"
	[ "$status" -eq 0 ]
	[ "$output" = through-the-fifo ]
}

@test "mknod of a character device as root (c 1 3)" {
	mknod "$MNT/null" c 1 3
	[ "$(stat -c '%F %t %T' "$MNT/null")" = "character special file 1 3" ]
	[ "$(stat -c '%F %t %T' "$BACKING/null")" = "character special file 1 3" ]
	mknod -m 600 "$MNT/blk" b 7 200
	[ "$(stat -c '%F %a %t %T' "$MNT/blk")" = "block special file 600 7 c8" ]
}

@test "mknod of a device by a user is refused" {
	user_dir provfs-u1 d
	run as_user provfs-u1 mknod "$MNT/d/null" c 1 3
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
	[ ! -e "$BACKING/d/null" ]
}

@test "statfs: df works and reports the backing filesystem's sizes" {
	run df -P "$MNT"
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 2 ]
	[[ ${lines[1]} == *" $MNT" ]]
	run df -i "$MNT"
	[ "$status" -eq 0 ]
	# Same block size and total as the backing filesystem.
	assert_equal "$(stat -f -c '%S %b %c' "$MNT")" "$(stat -f -c '%S %b %c' "$BACKING")"
	[ "$(stat -f -c %l "$MNT")" -eq 255 ]
}

@test "xattrs: set, get, list, remove user.* attributes" {
	echo x >"$MNT/f"
	setfattr -n user.colour -v blue "$MNT/f"
	setfattr -n user.empty "$MNT/f"
	[ "$(getfattr --only-values -n user.colour "$MNT/f")" = blue ]
	[ "$(getfattr --only-values -n user.colour "$BACKING/f")" = blue ]
	run getfattr --absolute-names -d "$MNT/f"
	[[ $output == *'user.colour="blue"'* ]]
	[[ $output == *'user.empty'* ]]
	# A large value round-trips.  It starts with a letter: setfattr reads a
	# value that begins with 0x or 0s as hex or base64 (one run in 2,048).
	{ printf v; head -c 3000 /dev/urandom | base64 -w0; } >"$TMP/big"
	setfattr -n user.big -v "$(cat "$TMP/big")" "$MNT/f"
	[ "$(getfattr --only-values -n user.big "$MNT/f")" = "$(cat "$TMP/big")" ]
	setfattr -x user.colour "$MNT/f"
	run getfattr -n user.colour "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"No such attribute"* ]]
	run getfattr --only-values -n user.colour "$BACKING/f"
	[ "$status" -ne 0 ]
	# On a directory too.
	mkdir "$MNT/d"
	setfattr -n user.tag -v dir "$MNT/d"
	[ "$(getfattr --only-values -n user.tag "$BACKING/d")" = dir ]
}

@test "xattrs: XATTR_CREATE and XATTR_REPLACE flags" {
	echo x >"$MNT/f"
	run "$PYTHON" -c '
import os, sys, errno
p = sys.argv[1]
os.setxattr(p, "user.a", b"1", os.XATTR_CREATE)
try:
    os.setxattr(p, "user.a", b"2", os.XATTR_CREATE); print("created twice")
except OSError as e: print(errno.errorcode[e.errno])
try:
    os.setxattr(p, "user.b", b"2", os.XATTR_REPLACE); print("replaced missing")
except OSError as e: print(errno.errorcode[e.errno])
os.setxattr(p, "user.a", b"3", os.XATTR_REPLACE)
print(os.getxattr(p, "user.a").decode())' "$MNT/f"
	[ "$status" -eq 0 ]
	[ "$output" = "$(printf 'EEXIST\nENODATA\n3')" ]
}

@test "xattrs: a user without write access cannot set user.* attributes" {
	echo x >"$MNT/f"
	chmod 644 "$MNT/f"
	run as_user provfs-u1 setfattr -n user.x -v 1 "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run getfattr -n user.x "$BACKING/f"
	[ "$status" -ne 0 ]
}

# ------------------------------------------------------------ POSIX ACLs

@test "ACL: granting a second user read on a 0600 file; a third user stays out" {
	user_dir provfs-u1 home
	as_user_sh provfs-u1 "umask 077; echo secret > '$MNT/home/f'"
	[ "$(stat -c %a "$MNT/home/f")" = 600 ]
	run as_user provfs-u2 cat "$MNT/home/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	as_user provfs-u1 setfacl -m u:provfs-u2:r "$MNT/home/f"
	run getfacl -cp "$BACKING/home/f"
	[[ $output == *"user:provfs-u2:r--"* ]]
	run as_user provfs-u2 cat "$MNT/home/f"
	[ "$status" -eq 0 ]
	[ "$output" = secret ]
	run as_user provfs-u3 cat "$MNT/home/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	# Read only: u2 cannot write.
	run as_user_sh provfs-u2 "echo x >> '$MNT/home/f'"
	[ "$status" -ne 0 ]
	# Taking the grant away takes the access away.
	as_user provfs-u1 setfacl -x u:provfs-u2 "$MNT/home/f"
	run as_user provfs-u2 cat "$MNT/home/f"
	[ "$status" -ne 0 ]
}

@test "ACL: getfacl through the mount equals getfacl on the backing file" {
	touch "$MNT/f"
	setfacl -m u:provfs-u1:rw,g:provfs-g:r,m::rw "$MNT/f"
	assert_equal "$(getfacl -cp "$MNT/f")" "$(getfacl -cp "$BACKING/f")"
	[ "$(stat -c %a "$MNT/f")" = 664 ]
	setfacl -b "$MNT/f"
	[ "$(getfacl -cp "$BACKING/f" | grep -c '^user:provfs')" -eq 0 ]
}

@test "ACL: a group grant lets members in" {
	user_dir provfs-u2 home
	as_user_sh provfs-u2 "umask 077; echo for-group > '$MNT/home/f'; setfacl -m g:provfs-g:r '$MNT/home/f'"
	run as_user provfs-u1 cat "$MNT/home/f"
	[ "$output" = for-group ]
	run as_user provfs-u3 cat "$MNT/home/f"
	[ "$status" -ne 0 ]
}

@test "ACL: a default ACL propagates to new files and directories, as on ext4" {
	user_dir provfs-u1 d
	setfacl -d -m u:provfs-u2:rwx,g::rx,o::- "$MNT/d"
	setfacl -d -m u:provfs-u2:rwx,g::rx,o::- "$NATIVE/d"
	same_as_native -u provfs-u1 'echo data > d/f && mkdir d/sub && getfacl -cp d/f d/sub && stat -c "%n %a" d/f d/sub'
	[[ $SAME_OUTPUT == *"user:provfs-u2:rwx"* ]]
	# And the grant works through the mount.
	run as_user provfs-u2 cat "$MNT/d/f"
	[ "$status" -eq 0 ]
	[ "$output" = data ]
	run as_user provfs-u3 cat "$MNT/d/f"
	[ "$status" -ne 0 ]
}

@test "ACL: the umask does not override a default ACL, as on ext4" {
	user_dir provfs-u1 d
	setfacl -d -m u::rwx,u:provfs-u2:rw,g::r,m::rwx,o::r "$MNT/d"
	setfacl -d -m u::rwx,u:provfs-u2:rw,g::r,m::rwx,o::r "$NATIVE/d"
	same_as_native -u provfs-u1 'umask 077; touch d/f; mkdir d/sub; stat -c "%n %a" d/f d/sub; getfacl -cp d/f d/sub'
	# The umask 077 would have given 600/700; the default ACL gives more.
	[[ $SAME_OUTPUT == *"d/f 664"* ]]
	[[ $SAME_OUTPUT == *"d/sub 774"* ]]
	run as_user provfs-u2 cat "$MNT/d/f"
	[ "$status" -eq 0 ]
}

@test "ACL: without a default ACL the umask applies" {
	user_dir provfs-u1 d
	same_as_native -u provfs-u1 'umask 027; touch d/f; mkdir d/sub; stat -c "%n %a" d/f d/sub'
	[ "$SAME_OUTPUT" = "$(printf 'd/f 640\nd/sub 750')" ]
}

# ------------------------------------------------------------ space, ranges

@test "fallocate -l allocates space" {
	fallocate -l 1M "$MNT/f"
	[ "$(stat -c %s "$MNT/f")" -eq 1048576 ]
	[ "$(stat -c %s "$BACKING/f")" -eq 1048576 ]
	[ "$(($(stat -c '%b * %B' "$BACKING/f")))" -ge 1048576 ]
	# Keep size: allocates beyond EOF without growing it.
	fallocate -n -o 1M -l 1M "$MNT/f"
	[ "$(stat -c %s "$MNT/f")" -eq 1048576 ]
	# Punch a hole: size stays, blocks go.
	fallocate -p -o 0 -l 512K "$MNT/f"
	[ "$(stat -c %s "$BACKING/f")" -eq 1048576 ]
	[ "$(($(stat -c '%b * %B' "$BACKING/f")))" -lt 2097152 ]
	[ "$(head -c 524288 "$MNT/f" | tr -d '\0' | wc -c)" -eq 0 ]
}

@test "copy_file_range copies data between files in the mount" {
	head -c 200000 /dev/urandom >"$MNT/src"
	run "$PYTHON" -c '
import os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
total = 0
while True:
    n = os.copy_file_range(src, dst, 1 << 20)
    if n == 0: break
    total += n
# A range from the middle, to an offset.
n = os.copy_file_range(src, dst, 1000, 5000, 300000)
os.close(src); os.close(dst)
print(total, n)' "$MNT/src" "$MNT/dst"
	[ "$status" -eq 0 ]
	[ "$output" = "200000 1000" ]
	[ "$(stat -c %s "$MNT/dst")" -eq 301000 ]
	cmp -n 200000 "$MNT/src" "$MNT/dst"
	cmp -n 1000 -i 5000:300000 "$MNT/src" "$MNT/dst"
	cmp -n 200000 "$BACKING/src" "$BACKING/dst"
}

# Write data at 0 and 1 MiB into a new file and report SEEK_HOLE / SEEK_DATA;
# with "reopen", close the file first and seek on a new descriptor.
sparse_seeks() {
	"$PYTHON" - "$@" <<'EOF'
import os, sys
path, mode = sys.argv[1], sys.argv[2]
fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
os.pwrite(fd, b"x" * 4096, 0)
os.pwrite(fd, b"y" * 4096, 1 << 20)
if mode == "reopen":
    os.close(fd)
    fd = os.open(path, os.O_RDONLY)
out = []
for whence, offset in ((os.SEEK_HOLE, 0), (os.SEEK_DATA, 4096), (os.SEEK_HOLE, 1 << 20),
                       (os.SEEK_DATA, 0)):
    try:
        out.append(str(os.lseek(fd, offset, whence)))
    except OSError as e:
        out.append("errno %d" % e.errno)
try:
    os.lseek(fd, (1 << 20) + 4096, os.SEEK_DATA)
    out.append("no ENXIO past the end")
except OSError as e:
    out.append("ENXIO" if e.errno == 6 else "errno %d" % e.errno)
print(" ".join(out))
EOF
}

@test "lseek SEEK_DATA/SEEK_HOLE on a sparse file (reopened)" {
	run sparse_seeks "$NATIVE/sparse" reopen
	local native=$output
	[ "$native" = "4096 1048576 1052672 0 ENXIO" ]
	run sparse_seeks "$MNT/sparse" reopen
	[ "$status" -eq 0 ]
	assert_equal "$output" "$native"
}

@test "lseek SEEK_DATA/SEEK_HOLE on the descriptor that just wrote the data" {
	run sparse_seeks "$NATIVE/sparse" same
	local native=$output
	run sparse_seeks "$MNT/sparse" same
	[ "$status" -eq 0 ]
	assert_equal "$output" "$native"
}

@test "sparse file: a write beyond 4 GiB" {
	printf 'START' >"$MNT/big"
	printf 'MARK' | dd of="$MNT/big" bs=1 seek=$((5 * 1024 * 1024 * 1024)) conv=notrunc status=none
	[ "$(stat -c %s "$MNT/big")" -eq $((5 * 1024 * 1024 * 1024 + 4)) ]
	[ "$(stat -c %s "$BACKING/big")" -eq $((5 * 1024 * 1024 * 1024 + 4)) ]
	# Sparse: far fewer blocks than bytes.
	[ "$(stat -c %b "$BACKING/big")" -lt 1000 ]
	[ "$(dd if="$MNT/big" bs=1 skip=$((5 * 1024 * 1024 * 1024)) count=4 status=none)" = MARK ]
	[ "$(dd if="$BACKING/big" bs=1 skip=$((5 * 1024 * 1024 * 1024)) count=4 status=none)" = MARK ]
	[ "$(head -c 5 "$MNT/big")" = START ]
	# The hole reads as zeros.
	[ "$(dd if="$MNT/big" bs=4096 skip=$((4 * 1024 * 256)) count=4 status=none | tr -d '\0' | wc -c)" -eq 0 ]
	# dd with a 1 MiB block beyond 4 GiB.
	dd if=/dev/zero of="$MNT/big2" bs=1M seek=4100 count=1 status=none
	[ "$(stat -c %s "$MNT/big2")" -eq $((4101 * 1024 * 1024)) ]
}

# ------------------------------------------------------------ locks, sync

@test "flock: a second process waits or fails with -n" {
	echo x >"$MNT/lockfile"
	mkfifo "$TMP/release"
	start_background flock "$MNT/lockfile" -c "touch '$TMP/held'; read x <'$TMP/release'"
	wait_for_file "$TMP/held"
	run flock -n "$MNT/lockfile" true
	[ "$status" -eq 1 ]
	run flock -w 0.3 "$MNT/lockfile" true
	[ "$status" -eq 1 ]
	# Shared locks conflict with the exclusive one too.
	run flock -s -n "$MNT/lockfile" true
	[ "$status" -eq 1 ]
	start_background flock "$MNT/lockfile" -c "touch '$TMP/got'"
	sleep 0.3
	[ ! -e "$TMP/got" ]
	release "$TMP/release"
	wait_for_file "$TMP/got"
	run flock -n "$MNT/lockfile" true
	[ "$status" -eq 0 ]
}

@test "flock: shared locks coexist" {
	echo x >"$MNT/lockfile"
	mkfifo "$TMP/release"
	start_background flock -s "$MNT/lockfile" -c "touch '$TMP/held'; read x <'$TMP/release'"
	wait_for_file "$TMP/held"
	run flock -s -n "$MNT/lockfile" true
	[ "$status" -eq 0 ]
	run flock -n "$MNT/lockfile" true
	[ "$status" -eq 1 ]
	release "$TMP/release"
}

@test "POSIX locks: lockf from two processes" {
	echo 0123456789 >"$MNT/lockfile"
	mkfifo "$TMP/release"
	start_background "$PYTHON" -c '
import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX, 5, 0)          # bytes 0-4
open(sys.argv[2], "w").close()
open(sys.argv[3]).read()' "$MNT/lockfile" "$TMP/held" "$TMP/release"
	wait_for_file "$TMP/held"
	run "$PYTHON" -c '
import errno, fcntl, sys
f = open(sys.argv[1], "r+")
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 0)
    print("locked")
except OSError as e:
    print(errno.errorcode[e.errno])
try:
    fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB, 5, 5)   # bytes 5-9: free
    print("range ok")
except OSError as e:
    print(errno.errorcode[e.errno])' "$MNT/lockfile"
	[ "$status" -eq 0 ]
	[[ ${lines[0]} == EAGAIN || ${lines[0]} == EACCES ]]
	[ "${lines[1]}" = "range ok" ]
	# F_GETLK names the holder.
	run "$PYTHON" -c '
import fcntl, os, struct, sys
f = open(sys.argv[1], "r+")
lk = struct.pack("hhqqi", fcntl.F_WRLCK, 0, 0, 5, 0)
res = fcntl.fcntl(f, fcntl.F_GETLK, lk)
t, w, s, l, pid = struct.unpack("hhqqi", res)
print(t == fcntl.F_WRLCK, pid)' "$MNT/lockfile"
	[ "$output" = "True $LAST_BG" ]
	release "$TMP/release"
	wait_pids_gone "$LAST_BG"
	run "$PYTHON" -c '
import fcntl, sys
f = open(sys.argv[1], "r+")
fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("free")' "$MNT/lockfile"
	[ "$output" = free ]
}

@test "fsync and fdatasync of a file and a directory" {
	run "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1] + "/f", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"durable")
os.fsync(fd)
os.fdatasync(fd)
os.close(fd)
d = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)
os.fsync(d)
os.close(d)
print("ok")' "$MNT"
	[ "$status" -eq 0 ]
	[ "$output" = ok ]
	[ "$(cat "$BACKING/f")" = durable ]
	sync "$MNT/f"
	sync -f "$MNT"
}

@test "fsync makes written data visible in the backing file" {
	run "$PYTHON" -c '
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"written-before-fsync")
os.fsync(fd)
print(open(sys.argv[2]).read())
os.close(fd)' "$MNT/f" "$BACKING/f"
	[ "$output" = written-before-fsync ]
}

# ------------------------------------------------------------ ownership, permissions

@test "ownership: file, directory, symlink and fifo created by a user belong to that user" {
	user_dir provfs-u1 home
	as_user_sh provfs-u1 "cd '$MNT/home' && echo x > f && mkdir d && ln -s f l && mkfifo p && mknod q p"
	local name
	for name in f d l p q; do
		assert_equal "$(stat -c %U:%G "$MNT/home/$name")" provfs-u1:provfs-u1
		assert_equal "$(stat -c %U:%G "$BACKING/home/$name")" provfs-u1:provfs-u1
	done
	# Also for a file created by O_CREAT on open (create) vs. mknod.
	as_user provfs-u1 "$PYTHON" -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))' "$MNT/home/created"
	[ "$(stat -c %U:%G:%a "$BACKING/home/created")" = provfs-u1:provfs-u1:600 ]
	# Hard links and renames keep the owner.
	as_user provfs-u1 ln "$MNT/home/f" "$MNT/home/hard"
	as_user provfs-u1 mv "$MNT/home/d" "$MNT/home/d2"
	[ "$(stat -c %U "$BACKING/home/d2")" = provfs-u1 ]
}

@test "ownership: a user's supplementary group is used for a setgid directory" {
	mkdir "$MNT/sg" "$NATIVE/sg"
	chgrp provfs-g "$MNT/sg" "$NATIVE/sg"
	chmod 2777 "$MNT/sg" "$NATIVE/sg"
	same_as_native -u provfs-u1 'touch sg/f && mkdir sg/sub && mkdir sg/sub/deeper && stat -c "%n %U %G %A" sg/f sg/sub sg/sub/deeper'
	[[ $SAME_OUTPUT == *"sg/f provfs-u1 provfs-g -rw-r--r--"* ]]
	[[ $SAME_OUTPUT == *"sg/sub provfs-u1 provfs-g drwxr-sr-x"* ]]
	[[ $SAME_OUTPUT == *"sg/sub/deeper provfs-u1 provfs-g drwxr-sr-x"* ]]
	[ "$(stat -c %G "$BACKING/sg/f")" = provfs-g ]
}

@test "ownership: setgid directory inheritance for a user outside the group" {
	mkdir "$MNT/sg" "$NATIVE/sg"
	chgrp provfs-g "$MNT/sg" "$NATIVE/sg"
	chmod 2777 "$MNT/sg" "$NATIVE/sg"
	same_as_native -u provfs-u2 'touch sg/f && mkdir sg/sub && stat -c "%n %U %G %A" sg/f sg/sub'
	[[ $SAME_OUTPUT == *"sg/f provfs-u2 provfs-g"* ]]
	[[ $SAME_OUTPUT == *"sg/sub provfs-u2 provfs-g drwxr-sr-x"* ]]
}

@test "umask of the caller is respected" {
	user_dir provfs-u1 home
	as_user_sh provfs-u1 "umask 077; cd '$MNT/home' && touch f && mkdir d && mkfifo p"
	[ "$(stat -c %a "$MNT/home/f")" = 600 ]
	[ "$(stat -c %a "$MNT/home/d")" = 700 ]
	[ "$(stat -c %a "$MNT/home/p")" = 600 ]
	[ "$(stat -c %a "$BACKING/home/f")" = 600 ]
	as_user_sh provfs-u1 "umask 002; cd '$MNT/home' && touch g && mkdir e"
	[ "$(stat -c %a "$BACKING/home/g")" = 664 ]
	[ "$(stat -c %a "$BACKING/home/e")" = 775 ]
	# Root's umask too.
	(umask 027 && touch "$MNT/rootfile" && mkdir "$MNT/rootdir")
	[ "$(stat -c %a "$BACKING/rootfile")" = 640 ]
	[ "$(stat -c %a "$BACKING/rootdir")" = 750 ]
	# The mode given to open() is honoured under the umask.
	as_user_sh provfs-u1 "umask 022; '$PYTHON' -c 'import os; os.close(os.open(\"$MNT/home/m\", os.O_CREAT | os.O_WRONLY, 0o751))'"
	[ "$(stat -c %a "$BACKING/home/m")" = 751 ]
}

@test "permissions: another user cannot read a 0600 file" {
	user_dir provfs-u1 home
	as_user_sh provfs-u1 "echo private > '$MNT/home/f' && chmod 600 '$MNT/home/f'"
	run as_user provfs-u2 cat "$MNT/home/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u2 "$PYTHON" -c 'open(__import__("sys").argv[1], "r+")' "$MNT/home/f"
	[ "$status" -ne 0 ]
	[[ $output == *"PermissionError"* ]]
	# The owner can.
	run as_user provfs-u1 cat "$MNT/home/f"
	[ "$output" = private ]
	# Root can.
	[ "$(cat "$MNT/home/f")" = private ]
}

@test "permissions: a user cannot write in another user's 0755 directory" {
	user_dir provfs-u1 home
	as_user_sh provfs-u1 "echo mine > '$MNT/home/f' && chmod 755 '$MNT/home'"
	run as_user_sh provfs-u2 "echo x > '$MNT/home/new'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u2 mkdir "$MNT/home/d"
	[ "$status" -ne 0 ]
	run as_user provfs-u2 rm -f "$MNT/home/f"
	[ "$status" -ne 0 ]
	run as_user provfs-u2 mv "$MNT/home/f" "$MNT/home/g"
	[ "$status" -ne 0 ]
	run as_user provfs-u2 ln -s x "$MNT/home/l"
	[ "$status" -ne 0 ]
	run as_user_sh provfs-u2 "echo x >> '$MNT/home/f'"
	[ "$status" -ne 0 ]
	[ ! -e "$BACKING/home/new" ]
	[ ! -e "$BACKING/home/d" ]
	[ "$(cat "$BACKING/home/f")" = mine ]
}

@test "permissions: a 0700 directory cannot be entered or listed by others" {
	user_dir provfs-u1 home
	chmod 700 "$MNT/home"
	touch "$MNT/home/f"
	run as_user provfs-u2 ls "$MNT/home"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u2 stat "$MNT/home/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
}

@test "permissions: in a sticky directory a user cannot delete another user's file" {
	mkdir "$MNT/tmp"
	chmod 1777 "$MNT/tmp"
	as_user_sh provfs-u1 "echo mine > '$MNT/tmp/f'"
	run as_user provfs-u2 rm -f "$MNT/tmp/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u2 mv "$MNT/tmp/f" "$MNT/tmp/g"
	[ "$status" -ne 0 ]
	[ -e "$BACKING/tmp/f" ]
	# u2 may delete its own file, u1 its own.
	as_user_sh provfs-u2 "touch '$MNT/tmp/g' && rm '$MNT/tmp/g'"
	as_user provfs-u1 rm "$MNT/tmp/f"
	[ ! -e "$BACKING/tmp/f" ]
}

@test "permissions: executing needs x, writing needs w" {
	printf '#!/bin/sh\necho ran\n' >"$MNT/script"
	chmod 644 "$MNT/script"
	run as_user provfs-u1 "$MNT/script"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user_sh provfs-u1 "echo x >> '$MNT/script'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
}

@test "a write by another user clears set-user-ID, as on ext4" {
	same_as_native 'touch f && chmod 6777 f && stat -c %a f'
	same_as_native -u provfs-u1 'echo x >> f; stat -c %a f'
}

# ------------------------------------------------------------ concurrency, mmap

@test "two processes appending to one file concurrently" {
	local writer='
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
line = (sys.argv[2] * 63 + "\n").encode()
for _ in range(2000):
    os.write(fd, line)
os.close(fd)'
	touch "$MNT/log"
	"$PYTHON" -c "$writer" "$MNT/log" a &
	local first=$!
	"$PYTHON" -c "$writer" "$MNT/log" b &
	local second=$!
	wait "$first"
	wait "$second"
	[ "$(stat -c %s "$MNT/log")" -eq $((2 * 2000 * 64)) ]
	[ "$(stat -c %s "$BACKING/log")" -eq $((2 * 2000 * 64)) ]
	[ "$(grep -cx 'a\{63\}' "$MNT/log")" -eq 2000 ]
	[ "$(grep -cx 'b\{63\}' "$MNT/log")" -eq 2000 ]
	[ "$(grep -cx 'a\{63\}' "$BACKING/log")" -eq 2000 ]
}

@test "two processes writing different regions of one file concurrently" {
	local writer='
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
base = int(sys.argv[2]) * 4096 * 256
for i in range(256):
    os.pwrite(fd, sys.argv[3].encode() * 4096, base + i * 4096)
os.close(fd)'
	"$PYTHON" -c "$writer" "$MNT/f" 0 a &
	local first=$!
	"$PYTHON" -c "$writer" "$MNT/f" 1 b &
	local second=$!
	wait "$first"
	wait "$second"
	[ "$(stat -c %s "$BACKING/f")" -eq $((2 * 4096 * 256)) ]
	[ "$(head -c $((4096 * 256)) "$MNT/f" | tr -d a | wc -c)" -eq 0 ]
	[ "$(tail -c $((4096 * 256)) "$MNT/f" | tr -d b | wc -c)" -eq 0 ]
	[ "$(tail -c $((4096 * 256)) "$BACKING/f" | tr -d b | wc -c)" -eq 0 ]
}

@test "mmap: write through a shared mapping, read it back" {
	run "$PYTHON" -c '
import mmap, os, sys
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"." * 8192)
with open(path, "r+b") as f:
    m = mmap.mmap(f.fileno(), 8192)
    m[0:5] = b"hello"
    m[8187:8192] = b"world"
    m.flush()
    m.close()
with open(path, "rb") as f:
    data = f.read()
print(len(data), data[:5].decode(), data[-5:].decode())' "$MNT/mapped"
	[ "$status" -eq 0 ]
	[ "$output" = "8192 hello world" ]
	[ "$(head -c 5 "$BACKING/mapped")" = hello ]
	[ "$(tail -c 5 "$BACKING/mapped")" = world ]
}

@test "mmap: a write() is seen by an existing mapping" {
	run "$PYTHON" -c '
import mmap, os, sys
path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"." * 4096)
f = open(path, "r+b")
m = mmap.mmap(f.fileno(), 4096, access=mmap.ACCESS_READ)
with open(path, "r+b") as g:
    g.write(b"fresh")
print(m[:5].decode())' "$MNT/mapped"
	[ "$output" = fresh ]
}

# ------------------------------------------------------------ lifecycle

@test "unmount (umount -l) while a file is open: no mount remains, the daemon exits" {
	echo data >"$MNT/f"
	mkfifo "$TMP/release"
	start_background sh -c "exec 4<'$MNT/f'; touch '$TMP/open'; read x <'$TMP/release'; cat <&4 >'$TMP/after' 2>&1"
	local holder=$LAST_BG
	wait_for_file "$TMP/open"
	local daemon=$MOUNTED_PID
	[ -n "$daemon" ]
	umount -l "$MNT"
	wait_unmounted "$MNT"
	run mountpoint -q "$MNT"
	[ "$status" -ne 0 ]
	# The open file is still served until it is closed.
	release "$TMP/release"
	wait_pids_gone "$holder"
	[ "$(cat "$TMP/after")" = data ]
	wait_pids_gone "$daemon"
	assert_nothing_mounted
}

@test "SIGTERM to the daemon while a file is open: mount gone, daemon exits" {
	echo data >"$MNT/f"
	mkfifo "$TMP/release"
	start_background sh -c "exec 4<'$MNT/f'; touch '$TMP/open'; read x <'$TMP/release'"
	local holder=$LAST_BG
	wait_for_file "$TMP/open"
	local daemon=$MOUNTED_PID
	[ -n "$daemon" ]
	kill -TERM "$daemon"
	wait_unmounted "$MNT"
	wait_pids_gone "$daemon"
	assert_nothing_mounted
	release "$TMP/release"
	wait_pids_gone "$holder"
	# The directory is usable again: mount once more.
	mount_provfs
	[ "$(cat "$MNT/f")" = data ]
}

@test "SIGTERM to an idle daemon unmounts cleanly" {
	local daemon=$MOUNTED_PID
	[ -n "$daemon" ]
	kill -TERM "$daemon"
	wait_pids_gone "$daemon"
	assert_nothing_mounted
}

@test "fusermount3 -u ends the daemon" {
	local daemon=$MOUNTED_PID
	fusermount3 -u "$MNT"
	wait_pids_gone "$daemon"
	assert_nothing_mounted
}

@test "O_TMPFILE fails cleanly and the mount keeps working" {
	run "$PYTHON" -c '
import errno, os, sys
try:
    fd = os.open(sys.argv[1], os.O_TMPFILE | os.O_RDWR, 0o600)
except OSError as e:
    print("OSError", errno.errorcode.get(e.errno, e.errno))
    sys.exit(0)
print("opened")
sys.exit(1)' "$MNT"
	[ "$status" -eq 0 ]
	[[ $output == "OSError "* ]]
	pid_running "$MOUNTED_PID"
	echo still-works >"$MNT/after"
	[ "$(cat "$MNT/after")" = still-works ]
	[ "$(ls -A "$BACKING")" = after ]
}

@test "in-place mount: files before the mount are visible, files written through it stay" {
	unmount_provfs
	local dir=$TMP/inplace
	mkdir "$dir"
	chmod 755 "$dir"
	echo before >"$dir/old"
	mkdir "$dir/sub"
	echo deep >"$dir/sub/file"
	MOUNT_BACKING=$dir MOUNT_POINT=$dir mount_provfs
	[ -z "$(cat "$TMP/mount.err")" ] || { cat "$TMP/mount.err" >&2; false; }
	is_mounted "$dir"
	[ "$(cat "$dir/old")" = before ]
	[ "$(cat "$dir/sub/file")" = deep ]
	echo through >"$dir/new"
	echo more >>"$dir/old"
	mkdir "$dir/newdir"
	ln -s new "$dir/newlink"
	as_user_sh provfs-u1 "cat '$dir/new'" >/dev/null
	unmount_provfs "$dir"
	run is_mounted "$dir"
	[ "$status" -ne 0 ]
	[ "$(cat "$dir/new")" = through ]
	[ "$(cat "$dir/old")" = "$(printf 'before\nmore')" ]
	[ -d "$dir/newdir" ]
	[ "$(readlink "$dir/newlink")" = new ]
}

@test "a symlink in the backing directory pointing outside stays a symlink" {
	ln -s /etc/shadow "$BACKING/shadow-link"
	ln -s /etc "$BACKING/etc-link"
	ln -s ../../../../../../../etc/shadow "$BACKING/relative-link"
	[ "$(stat -c %F "$MNT/shadow-link")" = "symbolic link" ]
	[ "$(readlink "$MNT/shadow-link")" = /etc/shadow ]
	[ "$(readlink "$MNT/etc-link")" = /etc ]
	# Following it leaves the mount: the target is the real /etc/shadow,
	# with its real permissions, not a file served by the daemon.
	[ "$(stat -L -c %d:%i "$MNT/shadow-link")" = "$(stat -c %d:%i /etc/shadow)" ]
	[ "$(stat -c %d:%i "$MNT/etc-link/shadow")" = "$(stat -c %d:%i /etc/shadow)" ]
	[ "$(stat -L -c %d "$MNT/shadow-link")" != "$(stat -c %d "$MNT")" ]
	run as_user provfs-u1 cat "$MNT/shadow-link"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u1 cat "$MNT/etc-link/shadow"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user provfs-u1 cat "$MNT/relative-link"
	[ "$status" -ne 0 ]
	# No regular file by those names through the mount.
	[ -z "$(find "$MNT" -type f)" ]
	run as_user provfs-u1 "$PYTHON" -c '
import os, sys
try:
    fd = os.open(sys.argv[1], os.O_RDONLY | os.O_NOFOLLOW)
    print("opened")
except OSError as e:
    print(e.strerror)' "$MNT/shadow-link"
	[ "$output" = "Too many levels of symbolic links" ]
}

@test "a symlink swapped in the backing dir for a file is seen as a symlink" {
	echo plain >"$BACKING/f"
	[ "$(cat "$MNT/f")" = plain ]
	rm "$BACKING/f"
	ln -s /etc/shadow "$BACKING/f"
	sleep 1.2 # the entry timeout
	[ "$(stat -c %F "$MNT/f")" = "symbolic link" ]
	run as_user provfs-u1 cat "$MNT/f"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
}

@test "executable scripts and binaries run from the mount" {
	printf '#!/bin/sh\necho "ran with $1"\n' >"$MNT/script.sh"
	chmod 755 "$MNT/script.sh"
	run "$MNT/script.sh" arg
	[ "$status" -eq 0 ]
	[ "$output" = "ran with arg" ]
	run as_user provfs-u1 "$MNT/script.sh" user
	[ "$output" = "ran with user" ]
	cp /bin/echo "$MNT/echo"
	run "$MNT/echo" binary
	[ "$output" = binary ]
	printf '#!%s\nimport sys; print("py", sys.argv[1])\n' "$PYTHON" >"$MNT/tool.py"
	chmod 755 "$MNT/tool.py"
	run "$MNT/tool.py" ok
	[ "$output" = "py ok" ]
}

make_tree() {
	local src=$1
	mkdir -p "$src/a/b/c" "$src/empty" "$src/private"
	echo top >"$src/top.txt"
	head -c 1500000 /dev/urandom >"$src/a/random.bin"
	printf '#!/bin/sh\necho hi\n' >"$src/a/run.sh"
	chmod 755 "$src/a/run.sh"
	echo deep >"$src/a/b/c/deep.txt"
	: >"$src/a/b/empty-file"
	ln -s ../top.txt "$src/a/link-to-top"
	ln -s /nonexistent "$src/a/dangling"
	ln "$src/top.txt" "$src/a/hardlink"
	mkfifo "$src/a/fifo"
	echo secret >"$src/private/s"
	chmod 600 "$src/private/s"
	chmod 700 "$src/private"
	chown provfs-u1:provfs-g "$src/private/s"
	setfattr -n user.note -v hello "$src/top.txt"
	truncate -s 10M "$src/a/sparse"
	echo tail >>"$src/a/sparse"
	touch -h -d '2005-05-05 05:05:05' "$src/a/link-to-top"
	find "$src" -exec touch -h -d '2010-10-10 10:10:10.5' {} +
}

tree_listing() {
	(cd "$1" && find . ! -name . -printf '%p %y %m %u %g %s %n %T@ %l\n' | sort)
}

@test "cp -a of a tree into the mount: diff -r and attributes equal" {
	make_tree "$TMP/src"
	cp -a "$TMP/src" "$MNT/"
	diff -r --no-dereference -x fifo "$TMP/src" "$MNT/src"
	diff <(tree_listing "$TMP/src") <(tree_listing "$MNT/src")
	diff <(tree_listing "$TMP/src") <(tree_listing "$BACKING/src")
	[ "$(getfattr --only-values -n user.note "$MNT/src/top.txt")" = hello ]
	[ "$(stat -c %i "$MNT/src/top.txt")" = "$(stat -c %i "$MNT/src/a/hardlink")" ]
	# And back out again.
	cp -a "$MNT/src" "$TMP/copy"
	diff -r --no-dereference -x fifo "$TMP/src" "$TMP/copy"
	diff <(tree_listing "$TMP/src") <(tree_listing "$TMP/copy")
}

@test "tar x into the mount" {
	make_tree "$TMP/src"
	tar -C "$TMP/src" --xattrs -cf "$TMP/tree.tar" .
	mkdir "$MNT/t"
	tar -C "$MNT/t" --xattrs --xattrs-include='user.*' -xpf "$TMP/tree.tar"
	diff -r --no-dereference -x fifo "$TMP/src" "$MNT/t"
	diff <(tree_listing "$TMP/src") <(tree_listing "$MNT/t")
	[ "$(getfattr --only-values -n user.note "$BACKING/t/top.txt")" = hello ]
	# tar c from the mount gives the same archive listing.
	diff <(tar -tvf "$TMP/tree.tar" | sort) <(tar -C "$MNT/t" -cf - . | tar -tvf - | sort)
}

@test "tar x as a user into the mount" {
	make_tree "$TMP/src"
	chown -R provfs-u1:provfs-u1 "$TMP/src"
	tar -C "$TMP/src" -cf "$TMP/tree.tar" .
	chmod 644 "$TMP/tree.tar"
	user_dir provfs-u1 t
	as_user provfs-u1 tar -C "$MNT/t" -xf "$TMP/tree.tar"
	diff -r --no-dereference -x fifo "$TMP/src" "$MNT/t"
	[ -z "$(find "$BACKING/t" ! -user provfs-u1)" ]
}

@test "a change made directly in the backing directory is seen through the mount" {
	echo one >"$BACKING/f"
	[ "$(cat "$MNT/f")" = one ]
	echo two >>"$BACKING/f"
	sleep 1.2 # the attribute timeout
	[ "$(stat -c %s "$MNT/f")" -eq 8 ]
	[ "$(cat "$MNT/f")" = "$(printf 'one\ntwo')" ]
}

@test "creates alternating between a user and root are each owned by their creator" {
	# Request threads skip the fs id switch for root: a root create right
	# after a user's, on the same thread, must still be root's.
	user_dir provfs-u1 mix
	chmod 777 "$MNT/mix"
	for i in $(seq 1 12); do
		as_user provfs-u1 sh -c "echo u > '$MNT/mix/u$i'; mkdir '$MNT/mix/ud$i'"
		echo r >"$MNT/mix/r$i"
		mkdir "$MNT/mix/rd$i"
	done
	[ -z "$(find "$BACKING/mix" -mindepth 1 -name 'u*' ! -user provfs-u1)" ]
	[ -z "$(find "$BACKING/mix" -mindepth 1 -name 'u*' ! -group provfs-u1)" ]
	[ -z "$(find "$BACKING/mix" -mindepth 1 -name 'r*' ! -user root)" ]
	[ -z "$(find "$BACKING/mix" -mindepth 1 -name 'r*' ! -group root)" ]
	[ "$(find "$BACKING/mix" -mindepth 1 | wc -l)" -eq 48 ]
}

@test "closing a file opened read-only costs no FLUSH request; a written one is flushed" {
	unmount_provfs
	echo hello >"$BACKING/a"
	echo world >"$BACKING/b"
	"$PROVFS" -d -o "store=$STORE" "$BACKING" "$MNT" 2>"$TMP/debug.log" &
	wait_mounted "$MNT"
	cat "$MNT/a" "$MNT/b" >/dev/null
	cat "$MNT/a" >/dev/null
	sync
	[ "$(grep -c 'opcode: OPEN' "$TMP/debug.log")" -eq 3 ]
	[ "$(grep -c 'opcode: FLUSH' "$TMP/debug.log")" -eq 0 ]
	echo more >>"$MNT/a"
	[ "$(grep -c 'opcode: FLUSH' "$TMP/debug.log")" -ge 1 ]
	unmount_provfs
	[ "$(cat "$BACKING/a")" = "$(printf 'hello\nmore')" ]
}
