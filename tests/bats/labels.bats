#!/usr/bin/env bats
# labels.bats - classification labels enforced at open, through a real mount,
# with real users: every bypass attempt the labels issue lists must fail,
# and every refusal must leave a denial record that explains itself.
#
# Cast (tests/bats/helpers.bash creates them):
#   provfs-u1  member of provfs-g = admin_group: may set labels, cleared for nothing
#   provfs-u2  cleared for confidential by user:
#   provfs-u3  cleared for restricted only when running the pinned trainer
#   root       no grant: the default clearance, like anyone

bats_require_minimum_version 1.5.0

load helpers
load recorder_helpers

setup() {
	common_setup
	ensure_test_users
	# Users reach the tree through the mount (the backing tree warning is fine here).
	chmod 755 "$BACKING"
	CONF=$TMP/provfs.conf
	mkdir -p "$BACKING/raw/crm" "$BACKING/features/pii" "$BACKING/pub"
	chmod 755 "$BACKING/raw" "$BACKING/raw/crm" "$BACKING/features" "$BACKING/features/pii"
	chmod 1777 "$BACKING/pub"
	echo "alice,555-0100" >"$BACKING/raw/crm/customers.csv"
	echo "income,0.93" >"$BACKING/features/pii/scores.csv"
	echo "hello" >"$BACKING/pub/readme"
	chmod 644 "$BACKING/raw/crm/customers.csv" "$BACKING/features/pii/scores.csv" \
		"$BACKING/pub/readme"
	# The authorized program: a shell, copied where every user may run it.
	mkdir -p "$TMP/bin"
	chmod 755 "$TMP/bin"
	install -m 755 /bin/dash "$TMP/bin/trainer"
	TRAINER=$TMP/bin/trainer
	TRAINER_HASH=$(xxh "$TRAINER")
	mkdir -m 1777 "$TMP/shared"
	write_policy
}

teardown() {
	common_teardown
	[ -z "${SHM_DIR:-}" ] || rm -rf "$SHM_DIR"
}

# write_policy [EXTRA CLASSIFICATION LINES...]
write_policy() {
	{
		echo "[classification]"
		echo "levels = public internal confidential restricted"
		echo "default_clearance = internal"
		echo "admin_group = provfs-g"
		printf '%s\n' "$@"
		echo "[paths]"
		echo "raw/crm/** = confidential"
		echo "features/pii/** = restricted"
		echo "[clearance]"
		echo "confidential = user:provfs-u2"
		echo "confidential = job:nightly user:provfs-u3"
		echo "restricted = exe:$TRAINER@xxh3:$TRAINER_HASH user:provfs-u3"
	} >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
}

mount_labels() {
	mount_provfs -o "config=$CONF" "$@"
}

# refused USER CMD...: CMD as USER fails with EACCES.
refused() {
	run as_user "$@"
	if [ "$status" -eq 0 ] || [[ $output != *"Permission denied"* ]]; then
		echo "expected a refusal, got status $status: $output" >&2
		return 1
	fi
}

label_of() {
	getfattr --only-values -n user.provfs.label "$1"
}

# projects_tree: raw/crm/projects (under the confidential rule) with a.csv
# and sub/b.csv, readable by everyone.
projects_tree() {
	mkdir -p "$BACKING/raw/crm/projects/sub"
	echo a >"$BACKING/raw/crm/projects/a.csv"
	echo b >"$BACKING/raw/crm/projects/sub/b.csv"
	chmod -R a+rX "$BACKING/raw/crm/projects"
}

@test "a user without a grant is refused, a cleared one reads; the denial explains itself" {
	mount_labels
	run as_user provfs-u2 cat "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[ "$output" = "alice,555-0100" ]
	refused provfs-u1 cat "$MNT/raw/crm/customers.csv"
	stop_provfs
	local uid
	uid=$(id -u provfs-u1)
	assert_sql "SELECT operation, path, uid, label, clearance, label_source
	            FROM denials" "read|raw/crm/customers.csv|$uid|confidential|internal|rule raw/crm/** (line 7)"
	assert_sql "SELECT grants FROM denials" \
		"line 12 restricted = exe:$TRAINER@xxh3:$TRAINER_HASH user:provfs-u3: exe:$TRAINER@xxh3:$TRAINER_HASH (other executable); line 10 confidential = user:provfs-u2: user:provfs-u2 (other user); line 11 confidential = job:nightly user:provfs-u3: job:nightly (other job)"
	assert_sql "SELECT policy_revision FROM denials" "$(xxh "$CONF")"
	# The mount session says a policy was in force (issue 8 case 10).
	assert_sql "SELECT policy FROM mount_sessions ORDER BY id DESC LIMIT 1" 1
	# The process behind it: exe and argv are one join away.
	assert_sql "SELECT p.executable, p.uid FROM denials d JOIN processes p ON p.id = d.process_id" \
		"$(real_exe cat)|$uid"
	# The file and the version that was refused.
	assert_sql "SELECT f.path, v.number FROM denials d JOIN files f ON f.id = d.file_id
	            JOIN versions v ON v.id = d.version_id" "raw/crm/customers.csv|1"
}

@test "root without a grant is refused like anyone" {
	mount_labels
	run cat "$MNT/raw/crm/customers.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	# Root still administers: it may see the label and change it.
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = confidential ]
	stop_provfs
	# A file never read before still gets its row in the denial.
	assert_sql "SELECT d.uid, d.label, f.path FROM denials d JOIN files f ON f.id = d.file_id" \
		"0|confidential|raw/crm/customers.csv"
}

@test "bypass: a hard link into a public directory carries the label" {
	mount_labels
	ln "$MNT/raw/crm/customers.csv" "$MNT/pub/link.csv"
	[ "$(label_of "$MNT/pub/link.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/link.csv"
	run as_user provfs-u2 cat "$MNT/pub/link.csv"
	[ "$status" -eq 0 ]
}

@test "bypass: a hard link into a public directory, then the labeled name removed: the link keeps the label" {
	mount_labels
	ln "$MNT/raw/crm/customers.csv" "$MNT/pub/link.csv"
	rm "$MNT/raw/crm/customers.csv"
	[ "$(label_of "$MNT/pub/link.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/link.csv"
	# The same when a rename over the labeled name removes it.
	ln "$MNT/pub/link.csv" "$MNT/raw/crm/again.csv"
	echo other >"$MNT/raw/crm/other.csv"
	mv "$MNT/raw/crm/other.csv" "$MNT/raw/crm/again.csv"
	[ "$(label_of "$MNT/pub/link.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/link.csv"
	# And after a remount, whose walk finds it under the public rule only.
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/link.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/link.csv"
	# The store says why (its names there: the recorder never saw this one).
	assert_match "$(q "SELECT c.reason FROM label_changes c JOIN files f ON f.id = c.file_id
	                   WHERE f.inode = $(stat -c %i "$BACKING/pub/link.csv")")" \
		'^kept from rule raw/crm/\*\* \(line [0-9]+\) when linked as pub/link\.csv$'
}

@test "bypass: a symlink from a public path to a labeled file" {
	mount_labels
	ln -s ../raw/crm/customers.csv "$MNT/pub/sym.csv"
	refused provfs-u1 cat "$MNT/pub/sym.csv"
	as_user provfs-u1 ln -s "$MNT/features/pii/scores.csv" "$MNT/pub/mine"
	refused provfs-u1 cat "$MNT/pub/mine"
}

@test "bypass: renaming a labeled file into a public directory keeps its label" {
	mount_labels
	mv "$MNT/raw/crm/customers.csv" "$MNT/pub/renamed.csv"
	[ "$(label_of "$MNT/pub/renamed.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/renamed.csv"
	# A rename of the directory above it too.
	mv "$MNT/features/pii" "$MNT/pub/pii"
	refused provfs-u1 cat "$MNT/pub/pii/scores.csv"
	# And after a remount, whose walk no longer finds it under the rule.
	as_user provfs-u2 cat "$MNT/pub/renamed.csv" >/dev/null
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/renamed.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/renamed.csv"
}

@test "bypass: a directory renamed out from under its rule: its files keep the label after a remount" {
	mkdir -p "$BACKING/raw/crm/projects/sub/deeper"
	echo a >"$BACKING/raw/crm/projects/a.csv"
	echo b >"$BACKING/raw/crm/projects/sub/b.csv"
	echo c >"$BACKING/raw/crm/projects/sub/deeper/c.csv"
	chmod -R a+rX "$BACKING/raw/crm/projects"
	ln -s a.csv "$BACKING/raw/crm/projects/link"
	mount_labels
	mv "$MNT/raw/crm/projects" "$MNT/pub/projects"
	# A rename of a directory above the rule's own directory too.
	mv "$MNT/raw" "$MNT/pub/old-raw"
	[ "$(label_of "$MNT/pub/projects/sub/b.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/old-raw/crm/customers.csv"
	stop_provfs
	# The remount's walk finds them under pub/ only: the store kept their label.
	mount_labels
	local f
	for f in projects/a.csv projects/sub/b.csv projects/sub/deeper/c.csv \
		old-raw/crm/customers.csv; do
		[ "$(label_of "$MNT/pub/$f")" = confidential ]
		refused provfs-u1 cat "$MNT/pub/$f"
	done
	run as_user provfs-u2 cat "$MNT/pub/projects/sub/deeper/c.csv"
	[ "$status" -eq 0 ]
	[ "$output" = c ]
	# label.why says why, from the store.
	local why
	why=$(getfattr --only-values -n user.provfs.label.why "$MNT/pub/projects/sub/b.csv")
	echo "$why"
	[[ $why == *'"label":"confidential","source":"explicit"'* ]]
	[[ $why == *'"reason":"kept from rule raw/crm/** (line 7) when its directory raw/crm/projects was renamed to pub/projects"'* ]]
	why=$(getfattr --only-values -n user.provfs.label.why "$MNT/pub/old-raw/crm/customers.csv")
	[[ $why == *'"reason":"kept from rule raw/crm/** (line 7) when its directory raw was renamed to pub/old-raw"'* ]]
	stop_provfs
	# One label change per file, each naming where it went; the symlink has none.
	assert_sql "SELECT f.path, c.level FROM label_changes c JOIN files f ON f.id = c.file_id
	            ORDER BY f.path" "pub/old-raw/crm/customers.csv|confidential
pub/projects/a.csv|confidential
pub/projects/sub/b.csv|confidential
pub/projects/sub/deeper/c.csv|confidential"
}

@test "a directory renamed within its rule, or under a higher one, records nothing" {
	projects_tree
	mount_labels
	mv "$MNT/raw/crm/projects" "$MNT/raw/crm/renamed"
	mv "$MNT/raw/crm/renamed/sub" "$MNT/features/pii/sub"
	# A public directory moved around in public: nothing to keep either.
	mkdir "$MNT/pub/plain"
	echo x >"$MNT/pub/plain/x"
	mv "$MNT/pub/plain" "$MNT/pub/other"
	stop_provfs
	assert_sql "SELECT count(*) FROM label_changes" 0
	mount_labels
	[ "$(label_of "$MNT/raw/crm/renamed/a.csv")" = confidential ]
	[ "$(label_of "$MNT/features/pii/sub/b.csv")" = restricted ]
	[ "$(label_of "$MNT/pub/other/x")" = public ]
}

@test "a directory exchanged with a public one, then a subdirectory moved out at once: labels kept after a remount" {
	projects_tree
	mkdir -p "$BACKING/pub/other"
	echo x >"$BACKING/pub/other/x"
	chmod -R a+rX "$BACKING/pub/other"
	mount_labels
	# The labeled directory goes to the old name's place.
	exchange "$MNT/pub/other" "$MNT/raw/crm/projects"
	# Moved out of the tree being walked, maybe before the walk reached it.
	mv "$MNT/pub/other/sub" "$MNT/pub/sub"
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/other/a.csv")" = confidential ]
	[ "$(label_of "$MNT/pub/sub/b.csv")" = confidential ]
	[ "$(label_of "$MNT/raw/crm/projects/x")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/other/a.csv"
	refused provfs-u1 cat "$MNT/pub/sub/b.csv"
	stop_provfs
	# Each kept once, whichever walk found it first.
	assert_sql "SELECT count(*), count(DISTINCT file_id) FROM label_changes" "2|2"
}

@test "a subdirectory moved out of a renamed tree after the walk listed it, the walk ended before the move was handled: its file keeps the label" {
	projects_tree
	# The walk pauses before each entry it listed; a rename decides
	# whether to walk 1.5 s after it was made.  So the mv below lands
	# after the walk listed sub, which then finds sub gone and ends
	# before the mv's own check: only the time the mv was made tells
	# that it overlapped the walk.
	PROVFS_TEST_MOVED_WALK_DELAY_MS=400 PROVFS_TEST_RENAME_CHECK_DELAY_MS=1500 mount_labels
	mv "$MNT/raw/crm/projects" "$MNT/pub/projects"
	mv "$MNT/pub/projects/sub" "$MNT/pub/sub"
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/projects/a.csv")" = confidential ]
	[ "$(label_of "$MNT/pub/sub/b.csv")" = confidential ]
	stop_provfs
	assert_sql "SELECT f.path FROM label_changes c JOIN files f ON f.id = c.file_id ORDER BY f.path" "pub/projects/a.csv
pub/sub/b.csv"
}

@test "bypass: a labeled file exchanged with a public file keeps its label after a remount" {
	echo decoy >"$BACKING/pub/decoy"
	chmod 644 "$BACKING/pub/decoy"
	mount_labels
	# The labeled file is the exchange's target: it moves from the new name to the old.
	exchange "$MNT/pub/decoy" "$MNT/raw/crm/customers.csv"
	[ "$(label_of "$MNT/pub/decoy")" = confidential ]
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/decoy")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/decoy"
	run as_user provfs-u2 cat "$MNT/pub/decoy"
	[ "$status" -eq 0 ]
	[ "$output" = "alice,555-0100" ]
	# The decoy now under the rule is labeled by it, and keeps nothing.
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = confidential ]
	stop_provfs
	assert_sql "SELECT f.path, c.level, c.reason FROM label_changes c
	            JOIN files f ON f.id = c.file_id" \
		"pub/decoy|confidential|kept from rule raw/crm/** (line 7) when renamed from raw/crm/customers.csv"
}

@test "bypass: a labeled file exchanged with a public directory keeps its label after a remount" {
	mkdir -p "$BACKING/pub/dir" "$BACKING/raw/crm/projects"
	echo x >"$BACKING/pub/dir/x"
	echo a >"$BACKING/raw/crm/projects/a.csv"
	echo note >"$BACKING/pub/note"
	chmod -R a+rX "$BACKING/pub/dir" "$BACKING/raw/crm/projects" "$BACKING/pub/note"
	mount_labels
	# The labeled file goes to the directory's old name.
	exchange "$MNT/pub/dir" "$MNT/raw/crm/customers.csv"
	# And the other way: a labeled directory goes to a public file's old name.
	exchange "$MNT/pub/note" "$MNT/raw/crm/projects"
	[ "$(label_of "$MNT/pub/dir")" = confidential ]
	[ "$(label_of "$MNT/pub/note/a.csv")" = confidential ]
	stop_provfs
	mount_labels
	local f
	for f in dir note/a.csv; do
		[ "$(label_of "$MNT/pub/$f")" = confidential ]
		refused provfs-u1 cat "$MNT/pub/$f"
	done
	run as_user provfs-u2 cat "$MNT/pub/dir"
	[ "$status" -eq 0 ]
	[ "$output" = "alice,555-0100" ]
	# What went under the rule is labeled by it.
	[ "$(label_of "$MNT/raw/crm/customers.csv/x")" = confidential ]
	[ "$(label_of "$MNT/raw/crm/projects")" = confidential ]
	stop_provfs
	assert_sql "SELECT f.path, c.level FROM label_changes c JOIN files f ON f.id = c.file_id
	            ORDER BY f.path" "pub/dir|confidential
pub/note/a.csv|confidential"
}

@test "a file created in a directory moved under a labeled rule carries the rule" {
	mount_labels
	# Creates in a directory name their file from its cached path: the
	# cache must follow the directory's rename, and forget a removed one.
	mkdir -m 1777 "$MNT/pub/dir"
	echo one >"$MNT/pub/dir/first"
	[ "$(label_of "$MNT/pub/dir/first")" = public ]
	mv "$MNT/pub/dir" "$MNT/raw/crm/dir"
	as_user_sh provfs-u2 "echo two >'$MNT/raw/crm/dir/second'"
	[ "$(label_of "$MNT/raw/crm/dir/second")" = confidential ]
	refused provfs-u1 cat "$MNT/raw/crm/dir/second"
	mv "$MNT/raw/crm/dir" "$MNT/pub/back"
	sleep 0.05 # past the rename's tick: see the test after the next
	echo three >"$MNT/pub/back/third"
	[ "$(label_of "$MNT/pub/back/third")" = public ]
	# A directory removed; new ones (its inode number may come back) elsewhere.
	mkdir "$MNT/raw/crm/gone"
	echo x >"$MNT/raw/crm/gone/f"
	rm -r "$MNT/raw/crm/gone"
	for i in 1 2 3; do
		mkdir "$MNT/pub/new$i"
		echo y >"$MNT/pub/new$i/f"
		[ "$(label_of "$MNT/pub/new$i/f")" = public ]
	done
}

@test "bypass: a hard link made in the backing directory before mounting" {
	ln "$BACKING/features/pii/scores.csv" "$BACKING/pub/early.csv"
	mount_labels
	[ "$(label_of "$MNT/pub/early.csv")" = restricted ]
	refused provfs-u1 cat "$MNT/pub/early.csv"
	refused provfs-u2 cat "$MNT/pub/early.csv"
}

@test "bypass: a cleared process copies into a public path; the copy is labeled at once" {
	mount_labels
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >'$MNT/pub/copy.csv'"
	[ "$(label_of "$MNT/pub/copy.csv")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/copy.csv"
	# cp opens the output after reading the input: the other order.
	as_user provfs-u2 cp "$MNT/raw/crm/customers.csv" "$MNT/pub/cp.csv"
	refused provfs-u1 cat "$MNT/pub/cp.csv"
	local why
	why=$(getfattr --only-values -n user.provfs.label.why "$MNT/pub/copy.csv")
	[[ $why == *'"label":"confidential","source":"propagated"'* ]]
	[[ $why == *'"propagated_from":{"path":"raw/crm/customers.csv"'* ]]
	# The input's version and hash, once the writer has stored them.
	wait_until "getfattr --only-values -n user.provfs.label.why '$MNT/pub/copy.csv' |
		grep -qF '\"version\":1,\"hash\":\"$(xxh "$BACKING/raw/crm/customers.csv")\"'"
	stop_provfs
	# The version produced carries the label and the input version behind it.
	assert_sql "SELECT v.label, sf.path FROM versions v
	            JOIN versions sv ON sv.id = v.label_from_version_id
	            JOIN files sf ON sf.id = sv.file_id
	            WHERE v.id = ($(latest_version_sql pub/copy.csv))" "confidential|raw/crm/customers.csv"
}

@test "bypass: the copy is labeled while it is still open for writing" {
	mount_labels
	# The shell opens the output first, cat reads the secret, the file stays open.
	start_background as_user_sh provfs-u2 \
		"(cat '$MNT/raw/crm/customers.csv'; echo written >'$TMP/shared/marker'; sleep 30) >'$MNT/pub/live.csv'"
	wait_for_file "$TMP/shared/marker"
	[ -s "$BACKING/pub/live.csv" ]
	refused provfs-u1 cat "$MNT/pub/live.csv"
	[ "$(label_of "$MNT/pub/live.csv")" = confidential ]
	cleanup_background
}

@test "propagation: a child forked after its parent read carries the read" {
	mount_labels
	# The shell reads with a builtin, then forks cat to write.
	as_user_sh provfs-u2 "read line <'$MNT/raw/crm/customers.csv'; cat '$MNT/pub/readme' >'$MNT/pub/derived'"
	refused provfs-u1 cat "$MNT/pub/derived"
	# A child started before the read does not inherit it.
	as_user_sh provfs-u2 "cat '$MNT/pub/readme' >'$MNT/pub/clean'; read line <'$MNT/raw/crm/customers.csv'"
	run as_user provfs-u1 cat "$MNT/pub/clean"
	[ "$status" -eq 0 ]
}

@test "propagation = run: data passed between siblings through a pipe is caught" {
	# Process scope: tee never read the secret, cat never opened the output.
	mount_labels
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' | tee '$MNT/pub/teed' >/dev/null"
	run as_user provfs-u1 cat "$MNT/pub/teed"
	[ "$status" -eq 0 ]
	stop_provfs
	# Run scope: everything the run read before raises what it writes.
	write_policy "propagation = run"
	mount_labels
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' | tee '$MNT/pub/teed2' >/dev/null"
	refused provfs-u1 cat "$MNT/pub/teed2"
	[ "$(label_of "$MNT/pub/teed2")" = confidential ]
}

@test "bypass: changing the label xattr as a non-admin; admins label, declassify, unset" {
	mount_labels
	chmod 666 "$MNT/raw/crm/customers.csv" "$MNT/pub/readme"
	# provfs-u3 is no admin: EPERM, the label stays.
	run as_user provfs-u3 setfattr -n user.provfs.label -v public "$MNT/raw/crm/customers.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u3 setfattr -n user.provfs.declassify -v $'public\nmine now' \
		"$MNT/raw/crm/customers.csv"
	[ "$status" -ne 0 ]
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = confidential ]
	# Nor through the admin route, which the kernel does not check against the mode.
	run as_user provfs-u3 setfattr -n system.provfs.label -v public "$MNT/raw/crm/customers.csv"
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u3 setfattr -n system.provfs.declassify -v $'public\nmine now' \
		"$MNT/raw/crm/customers.csv"
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u3 setfattr -n system.provfs.label -v restricted "$MNT/pub/readme"
	[[ $output == *"Operation not permitted"* ]]
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = confidential ]
	[ "$(label_of "$MNT/pub/readme")" = public ]
	# An admin cannot go below the rule without declassifying...
	run as_user provfs-u1 setfattr -n user.provfs.label -v public "$MNT/raw/crm/customers.csv"
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u1 setfattr -n user.provfs.label -v topsecret "$MNT/pub/readme"
	[[ $output == *"Invalid argument"* ]]
	# ...raises at once...
	as_user provfs-u1 setfattr -n user.provfs.label -v restricted "$MNT/pub/readme"
	[ "$(label_of "$MNT/pub/readme")" = restricted ]
	refused provfs-u2 cat "$MNT/pub/readme"
	as_user provfs-u1 setfattr -x user.provfs.label "$MNT/pub/readme"
	run as_user provfs-u2 cat "$MNT/pub/readme"
	[ "$status" -eq 0 ]
	# ...and declassifies with a reason, for the current version.
	run as_user provfs-u1 setfattr -n user.provfs.declassify -v public "$MNT/raw/crm/customers.csv"
	[[ $output == *"Invalid argument"* ]]
	as_user provfs-u1 setfattr -n user.provfs.declassify -v $'public\nreviewed: synthetic data' \
		"$MNT/raw/crm/customers.csv"
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = public ]
	run as_user provfs-u3 cat "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	echo "new secret" >>"$MNT/raw/crm/customers.csv"
	[ "$(label_of "$MNT/raw/crm/customers.csv")" = confidential ]
	stop_provfs
	assert_sql "SELECT c.level, c.forced, c.reason, c.uid FROM label_changes c
	            ORDER BY c.id" "restricted|0||$(id -u provfs-u1)
|0||$(id -u provfs-u1)
public|1|reviewed: synthetic data|$(id -u provfs-u1)"
}

@test "virtual xattrs: label for anyone, why and lineage for the cleared, none listed" {
	mount_labels
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >'$MNT/pub/copy.csv'"
	[ "$(as_user provfs-u3 getfattr --only-values -n user.provfs.label "$MNT/pub/copy.csv")" = confidential ]
	run as_user provfs-u3 getfattr -n user.provfs.label.why "$MNT/pub/copy.csv"
	[ "$status" -ne 0 ]
	run as_user provfs-u3 getfattr -n user.provfs.lineage "$MNT/pub/copy.csv"
	[ "$status" -ne 0 ]
	local why
	why=$(as_user provfs-u2 getfattr --only-values -n user.provfs.label.why "$MNT/raw/crm/customers.csv")
	[ "$why" = '{"label":"confidential","source":"rule","rule":"raw/crm/** (line 7)","explicit":null,"propagated_from":null}' ]
	# Lineage comes from the store: wait for the writer's flush and the input's hash.
	local lineage input_hash
	input_hash=$(xxh "$BACKING/raw/crm/customers.csv")
	wait_until "getfattr --only-values -n user.provfs.lineage '$MNT/pub/copy.csv' >'$TMP/lineage' 2>/dev/null &&
		grep -qF '$input_hash' '$TMP/lineage'"
	lineage=$(cat "$TMP/lineage")
	echo "$lineage"
	[[ $lineage == *'"label":"confidential"'* ]]
	[[ $lineage == *'"executable":"'"$(real_exe cat)"'"'* ]]
	[[ $lineage == *'"inputs":[{"path":"raw/crm/customers.csv","version":1,"hash":"'"$(xxh "$BACKING/raw/crm/customers.csv")"'"'* ]]
	run setfattr -n user.provfs.lineage -v x "$MNT/pub/copy.csv"
	[ "$status" -ne 0 ]
	run getfattr -d -m - "$MNT/pub/copy.csv"
	[[ $output != *provfs* ]]
	# Never on the backing file.
	run getfattr -d -m - "$BACKING/pub/copy.csv"
	[[ $output != *provfs* ]]
}

@test "xattrs: a user.* attribute of a labeled file is read like the file: refused without the clearance, with a denial" {
	setfattr -n user.note -v alice-555-0100 "$BACKING/raw/crm/customers.csv"
	setfattr -n user.note -v hello "$BACKING/pub/readme"
	setfacl -m u:provfs-u3:r "$BACKING/raw/crm/customers.csv"
	mount_labels
	# Not cleared: refused, the value and its length never reach the caller.
	refused provfs-u1 getfattr --absolute-names --only-values -n user.note "$MNT/raw/crm/customers.csv"
	[[ $output != *alice* ]]
	refused provfs-u1 getfattr --only-values -n user.none "$MNT/raw/crm/customers.csv"
	# Cleared: read as before.
	run as_user provfs-u2 getfattr --absolute-names --only-values -n user.note "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[ "$output" = alice-555-0100 ]
	# A public file's attributes: anyone's.
	run as_user provfs-u1 getfattr --absolute-names --only-values -n user.note "$MNT/pub/readme"
	[ "$status" -eq 0 ]
	[ "$output" = hello ]
	# ACLs, ls -l, the names (listxattr) and the label stay readable to the uncleared.
	run as_user provfs-u1 getfacl -p "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[[ $output == *"user:provfs-u3:r--"* ]]
	run as_user provfs-u1 ls -l "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[[ $output == -rw-r--r--+* ]]
	run as_user provfs-u1 getfattr -m - "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[[ $output == *user.note* ]]
	[[ $output == *system.posix_acl_access* ]]
	[ "$(as_user provfs-u1 getfattr --only-values -n user.provfs.label "$MNT/raw/crm/customers.csv")" = confidential ]
	# Root without a grant, like its open.
	run getfattr --absolute-names --only-values -n user.note "$MNT/raw/crm/customers.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	stop_provfs
	local uid
	uid=$(id -u provfs-u1)
	assert_sql "SELECT operation, path, uid, label, clearance FROM denials ORDER BY id" \
		"xattr-read|raw/crm/customers.csv|$uid|confidential|internal
xattr-read|raw/crm/customers.csv|$uid|confidential|internal
xattr-read|raw/crm/customers.csv|0|confidential|internal"
	run "${PROVFS_BUILD_ROOT:-$PROVFS_SOURCE_ROOT/build}/provfs-query" --store "$STORE" denials --user provfs-u1
	[ "$status" -eq 0 ]
	[[ $output == *"DENIED xattr-read of raw/crm/customers.csv"* ]]
	# -o nopolicy: as before, the mode alone decides.
	mount_labels -o nopolicy
	run as_user provfs-u1 getfattr --absolute-names --only-values -n user.note "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	[ "$output" = alice-555-0100 ]
}

@test "xattrs: a cleared reader's output is raised by what it read from a user.* attribute" {
	setfattr -n user.note -v alice-555-0100 "$BACKING/raw/crm/customers.csv"
	mount_labels
	# The shell opens the output, getfattr reads the confidential value into it.
	as_user_sh provfs-u2 "getfattr --only-values -n user.note '$MNT/raw/crm/customers.csv' >'$MNT/pub/out'"
	[ "$(cat "$BACKING/pub/out")" = alice-555-0100 ]
	[ "$(label_of "$MNT/pub/out")" = confidential ]
	refused provfs-u1 cat "$MNT/pub/out"
}

@test "xattrs: a process that read a labeled file cannot copy it into a user.* attribute of a lower file" {
	install -m 666 /dev/null "$BACKING/pub/notes"
	install -m 666 /dev/null "$BACKING/raw/crm/more.csv"
	setfattr -n user.old -v kept "$BACKING/pub/notes"
	mount_labels
	# The shell reads the secret with a builtin; setfattr, forked after, carries the read.
	run as_user_sh provfs-u2 "read line <'$MNT/raw/crm/customers.csv'; setfattr -n user.leak -v \"\$line\" '$MNT/pub/notes'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run getfattr -n user.leak "$BACKING/pub/notes"
	[ "$status" -ne 0 ]
	run as_user_sh provfs-u2 "read line <'$MNT/raw/crm/customers.csv'; setfattr -x user.old '$MNT/pub/notes'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	[ "$(getfattr --only-values -n user.old "$BACKING/pub/notes")" = kept ]
	# The xattr path raises no label.
	[ "$(label_of "$MNT/pub/notes")" = public ]
	# At the file's own level, or having read only public data: as before.
	as_user_sh provfs-u2 "read line <'$MNT/raw/crm/customers.csv'; setfattr -n user.copy -v \"\$line\" '$MNT/raw/crm/more.csv'"
	[ "$(getfattr --only-values -n user.copy "$BACKING/raw/crm/more.csv")" = alice,555-0100 ]
	as_user_sh provfs-u2 "read line <'$MNT/pub/readme'; setfattr -n user.note -v \"\$line\" '$MNT/pub/notes'"
	[ "$(getfattr --only-values -n user.note "$BACKING/pub/notes")" = hello ]
	as_user provfs-u1 setfattr -x user.note "$MNT/pub/notes"
	# Root is no exception: it reads an internal file, then cannot write it down.
	setfattr -n user.provfs.label -v internal "$MNT/pub/readme"
	run bash -c "read line <'$MNT/pub/readme'; setfattr -n user.root -v x '$MNT/pub/notes'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	stop_provfs
	local uid
	uid=$(id -u provfs-u2)
	assert_sql "SELECT operation, path, uid, label, clearance FROM denials ORDER BY id" \
		"write-down|pub/notes|$uid|public|confidential
write-down|pub/notes|$uid|public|confidential
write-down|pub/notes|0|public|internal"
	mount_labels -o nopolicy
	as_user_sh provfs-u2 "read line <'$MNT/raw/crm/customers.csv'; setfattr -n user.leak -v \"\$line\" '$MNT/pub/notes'"
	[ "$(getfattr --only-values -n user.leak "$BACKING/pub/notes")" = alice,555-0100 ]
}

@test "bypass: a faked PROVFS_JOB" {
	mount_labels
	refused provfs-u1 env PROVFS_JOB=nightly cat "$MNT/raw/crm/customers.csv"
	# The grant needs the job and the user: the user alone is not enough...
	refused provfs-u3 cat "$MNT/raw/crm/customers.csv"
	# ...and both together hold.
	run as_user provfs-u3 env PROVFS_JOB=nightly cat "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
}

@test "bypass: the authorized program reads; when it execs cat, cat is refused" {
	mount_labels
	run as_user provfs-u3 "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'; echo \"\$line\""
	[ "$status" -eq 0 ]
	[ "$output" = "income,0.93" ]
	refused provfs-u3 "$TRAINER" -c "exec cat '$MNT/features/pii/scores.csv'"
	# The same program as another user: every condition must hold.
	refused provfs-u2 "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'"
}

@test "script: grants hold on the first run, from the mount or outside; a modified script loses it" {
	# Three places: the test tree (the root filesystem), another mount
	# (/dev/shm: its path crosses a mount point), and the mount itself.
	SHM_DIR=$(mktemp -d /dev/shm/provfs-script.XXXXXX)
	chmod 755 "$SHM_DIR"
	local body="read line <'$MNT/features/pii/scores.csv' && echo \"\$line\""
	local outside=$TMP/bin/score.sh crossing=$SHM_DIR/score.sh inside=$MNT/pub/score.sh
	printf '%s\n' "$body" >"$outside"
	printf '%s\n' "$body" >"$crossing"
	printf '%s\n' "$body" >"$BACKING/pub/score.sh"
	chmod 644 "$outside" "$crossing" "$BACKING/pub/score.sh"
	# A symlink from outside into the mount: never hashed through the mount.
	ln -s "$inside" "$TMP/bin/into-mount.sh"
	local hash
	hash=$(xxh "$outside")
	{
		echo "restricted = script:$outside@xxh3:$hash user:provfs-u3"
		echo "restricted = script:$crossing@xxh3:$hash user:provfs-u3"
		echo "restricted = script:$inside@xxh3:$hash user:provfs-u3"
		echo "restricted = script:$TMP/bin/into-mount.sh@xxh3:$hash user:provfs-u3"
	} >>"$CONF"
	mount_labels
	local script
	for script in "$outside" "$crossing" "$inside"; do
		run as_user provfs-u3 /bin/dash "$script"
		[ "$status" -eq 0 ]
		[ "$output" = "income,0.93" ]
		# Another user running the same script: every condition must hold.
		refused provfs-u2 /bin/dash "$script"
	done
	refused provfs-u3 /bin/dash "$TMP/bin/into-mount.sh"
	# Modified (through the mount for the one inside): the grant is gone.
	echo "# changed" >>"$outside"
	echo "# changed" >>"$crossing"
	echo "# changed" >>"$inside"
	for script in "$outside" "$crossing" "$inside"; do
		refused provfs-u3 /bin/dash "$script"
	done
	stop_provfs
	assert_sql "SELECT count(*) FROM denials WHERE uid = $(id -u provfs-u3) AND
	            grants LIKE '%script:$TMP/bin/into-mount.sh@xxh3:$hash (script hash unknown)%'" 1
	assert_sql "SELECT count(*) FROM denials WHERE uid = $(id -u provfs-u3) AND
	            grants LIKE '%script:$crossing@xxh3:$hash (script hash differs)%'" 1
	rm -rf "$SHM_DIR"
}

@test "bypass: a renamed copy of the authorized binary" {
	mount_labels
	install -m 755 "$TRAINER" "$TMP/bin/trainer-copy"
	refused provfs-u3 "$TMP/bin/trainer-copy" -c "read line <'$MNT/features/pii/scores.csv'"
}

@test "bypass: the pinned binary rewritten and backdated loses its grant" {
	mount_labels
	run as_user provfs-u3 "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'"
	[ "$status" -eq 0 ]
	cp -p "$TRAINER" "$TMP/original"
	printf '\0' >>"$TRAINER"
	touch -r "$TMP/original" "$TRAINER"
	refused provfs-u3 "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'"
	stop_provfs
	assert_sql "SELECT grants LIKE '%hash differs%' FROM denials" 1
}

@test "bypass: the pinned binary run with LD_PRELOAD loses its grant" {
	if ! grep -q LD_PRELOAD "$PROVFS_SOURCE_ROOT/recorder/process_table.c"; then
		skip "needs the process table's environment_injection (recorder/process_table.c)"
	fi
	mount_labels
	local libc
	libc=$(ldd /bin/dash | awk '/libc.so/ {print $3}')
	refused provfs-u3 env LD_PRELOAD="$libc" "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'"
	run as_user provfs-u3 "$TRAINER" -c "read line <'$MNT/features/pii/scores.csv'"
	[ "$status" -eq 0 ]
}

@test "bypass: writing the store or provfs.conf as a non-root user" {
	mount_labels
	run as_user provfs-u1 sh -c "echo x >>'$STORE'"
	[ "$status" -ne 0 ]
	run as_user provfs-u1 sh -c "echo '[paths]' >>'$CONF'"
	[ "$status" -ne 0 ]
	# A provfs.conf others may write is refused outright.
	chmod 666 "$CONF"
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 2 ]
}

@test "no_write_down = true refuses the write instead of raising the file" {
	write_policy "no_write_down = true"
	mount_labels
	run as_user provfs-u2 cp "$MNT/raw/crm/customers.csv" "$MNT/pub/down.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	# The other order: a file open for writing, then the read is refused.
	run as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >'$MNT/pub/down2.csv'"
	[ "$status" -ne 0 ]
	# Writing up is fine.
	install -m 666 /dev/null "$BACKING/raw/crm/more.csv"
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >>'$MNT/raw/crm/more.csv'"
	stop_provfs
	assert_sql "SELECT count(*) > 0 FROM denials WHERE operation = 'write-down'" 1
}

@test "-o norecord still enforces; -o nopolicy enforces nothing and says so" {
	mount_labels -o norecord
	refused provfs-u1 cat "$MNT/raw/crm/customers.csv"
	unmount_provfs
	mount_labels -o nopolicy
	run as_user provfs-u1 cat "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	stop_provfs
	assert_sql "SELECT policy FROM mount_sessions ORDER BY id DESC LIMIT 1" 0
}

@test "a file made in a renamed directory before the walk of its files reached it keeps no label of the old name" {
	# A long walk first (a directory of 20,000 labeled files moved out from
	# under their rule), so that the walk of the directory renamed next
	# waits behind it and the file made in it right after the rename comes
	# before its walk.
	mkdir -p "$BACKING/raw/crm/big"
	(cd "$BACKING/raw/crm/big" && seq -f 'f%g' 20000 | xargs touch)
	mkdir -m 1777 "$BACKING/raw/crm/dir"
	echo old >"$BACKING/raw/crm/dir/old"
	mount_labels
	[ "$(label_of "$MNT/raw/crm/dir/old")" = confidential ]
	mv "$MNT/raw/crm/big" "$MNT/pub/big"
	mv "$MNT/raw/crm/dir" "$MNT/pub/back"
	# Birth times tick with the kernel's coarse clock: a file made in the
	# rename's own tick cannot be told from one made before it, and keeps
	# the old label (the safe side).  The next tick comes within 10 ms.
	sleep 0.05
	echo new >"$MNT/pub/back/new"
	[ "$(label_of "$MNT/pub/back/new")" = public ]
	stop_provfs # every walk queued is finished before the daemon exits
	mount_labels
	# The file that was below the old name keeps its label; the new one
	# was never there.
	[ "$(label_of "$MNT/pub/back/old")" = confidential ]
	[ "$(label_of "$MNT/pub/back/new")" = public ]
}

@test "labels persist: explicit and propagated labels hold after a remount" {
	mount_labels
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >'$MNT/pub/copy.csv'"
	setfattr -n user.provfs.label -v restricted "$MNT/pub/readme"
	stop_provfs
	mount_labels
	[ "$(label_of "$MNT/pub/copy.csv")" = confidential ]
	[ "$(label_of "$MNT/pub/readme")" = restricted ]
	refused provfs-u1 cat "$MNT/pub/copy.csv"
	refused provfs-u2 cat "$MNT/pub/readme"
}

@test "SIGHUP reloads provfs.conf; a bad one leaves the policy in force and is counted" {
	mount_labels
	local daemon
	daemon=$(provfs_pids "$MNT" | head -n 1)
	refused provfs-u1 cat "$MNT/raw/crm/customers.csv"
	sed -i 's/^confidential = user:provfs-u2$/confidential = user:provfs-u1/' "$CONF"
	kill -HUP "$daemon"
	wait_until "as_user provfs-u1 cat '$MNT/raw/crm/customers.csv' >/dev/null 2>&1"
	# A broken file: the policy in force stays.
	echo "restricted = user:no-such-user-provfs" >>"$CONF"
	kill -HUP "$daemon"
	sleep 1
	run as_user provfs-u1 cat "$MNT/raw/crm/customers.csv"
	[ "$status" -eq 0 ]
	is_mounted "$MNT"
	stop_provfs
	assert_sql "SELECT config_reload_failures, last_config_error LIKE '%unknown user%'
	            FROM mount_sessions" "1|1"
}

@test "config: an unknown user or group in a grant is one line naming it, exit 2" {
	printf '[clearance]\nconfidential = user:no-such-user-provfs\n' >"$CONF"
	run_split "$PROVFS" -o "config=$CONF" "$BACKING" "$MNT"
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "$stderr" "^provfs: $CONF:2: .*unknown user"
	printf '[clearance]\nconfidential = group:no-such-group-provfs uid:0\n' >"$CONF"
	run_split "$PROVFS" --check-config "$CONF"
	[ "$status" -eq 2 ]
	assert_match "$stderr" "^provfs: $CONF:2: .*unknown group"
	assert_nothing_mounted
}

@test "propagation: every version a cleared writer produces records its label, not only the first" {
	mount_labels
	# Night after night the cleared job rewrites the same output: the file is
	# confidential from the first night on, and each new version holds the
	# confidential data again (a model retrained on restricted features).
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >'$MNT/pub/nightly.csv'"
	as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' '$MNT/pub/readme' >'$MNT/pub/nightly.csv'"
	[ "$(label_of "$MNT/pub/nightly.csv")" = confidential ]
	stop_provfs
	assert_sql "SELECT v.number, v.label, sf.path FROM versions v
	            JOIN versions sv ON sv.id = v.label_from_version_id
	            JOIN files sf ON sf.id = sv.file_id
	            WHERE v.file_id = ($(file_id_sql pub/nightly.csv)) ORDER BY v.number" \
		"1|confidential|raw/crm/customers.csv
2|confidential|raw/crm/customers.csv"
}

# hold_open_for_reading USER FILE: USER opens FILE for reading and keeps it
# open; on "go" in $TMP/shared/go it reads it again through the same
# descriptor into $TMP/shared/seen.  Waits until the file is open.
hold_open_for_reading() {
	mkfifo -m 666 "$TMP/shared/go"
	start_background as_user "$1" "$PYTHON" -c 'import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
open(sys.argv[2] + "/open", "w").close()
open(sys.argv[2] + "/go").read()
with open(sys.argv[2] + "/seen", "wb") as seen:
    seen.write(os.pread(fd, 4096, 0))' "$2" "$TMP/shared"
	wait_for_file "$TMP/shared/open"
}

@test "bypass: a descriptor opened for reading before a cleared writer raised the file never reads the new content" {
	mount_labels
	as_user_sh provfs-u3 "umask 0; echo public >'$MNT/pub/out.csv'"
	# provfs-u3 (cleared for nothing) holds the job's output open, public.
	hold_open_for_reading provfs-u3 "$MNT/pub/out.csv"
	# The cleared job writes it after reading (cp), or reads while it
	# holds it open for writing (the shell's redirection): both refused.
	run as_user provfs-u2 cp "$MNT/raw/crm/customers.csv" "$MNT/pub/out.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	run as_user_sh provfs-u2 "cat '$MNT/raw/crm/customers.csv' >>'$MNT/pub/out.csv'"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	release "$TMP/shared/go"
	wait_for_file "$TMP/shared/seen"
	sleep 0.2
	[ "$(cat "$TMP/shared/seen")" = public ]
	[ "$(label_of "$MNT/pub/out.csv")" = public ]
	# Once the reader is gone, the job writes, and the file is raised.
	wait_until "as_user provfs-u2 cp '$MNT/raw/crm/customers.csv' '$MNT/pub/out.csv'"
	[ "$(label_of "$MNT/pub/out.csv")" = confidential ]
	refused provfs-u3 cat "$MNT/pub/out.csv"
	stop_provfs
	assert_sql "SELECT path, grants LIKE 'the process has read raw/crm/customers.csv (confidential): the file is held open for reading by pid %, not cleared for it'
	            FROM denials WHERE operation = 'write-down' AND path = 'pub/out.csv'" 'pub/out.csv|1'
	assert_sql "SELECT path, grants LIKE 'it holds open for writing a file held open for reading by pid %, not cleared for confidential'
	            FROM denials WHERE operation = 'write-down' AND path = 'raw/crm/customers.csv'" 'raw/crm/customers.csv|1'
}
