#!/usr/bin/env bats
# label_tools.bats - provfs-label and the label questions of provfs-query
# (denials, exposure, the label sections of gaps).
#
# Three parts:
#   1. provfs-label's bad input: each one line on stderr, the right exit
#      status, nothing changed (no mount needed, or a mount of any provfs).
#   2. provfs-query denials / exposure / gaps and provfs-label list against a
#      store filled by hand with sqlite3 INSERTs that follow store/schema.sql:
#      the answers are checked against a scenario whose every row is known.
#   3. End to end through a real mount: label, unset, declassify, refuse a
#      non-admin.  These need a daemon that serves the label xattrs
#      (user.provfs.label); against one that does not, they skip and say so.

load helpers
load recorder_helpers

bats_require_minimum_version 1.5.0

LABEL=${PROVFS_LABEL:-${PROVFS_BUILD_ROOT:-/work/main/build}/provfs-label}
QUERY=${PROVFS_QUERY:-${PROVFS_BUILD_ROOT:-/work/main/build}/provfs-query}

# --------------------------------------------------------------- the hand-made store

# ns N: now minus N seconds, in nanoseconds.
ns_ago() {
	echo $((NOW_NS - $1 * 1000000000))
}

# A store with the scenario below (see the comments in the SQL).
make_store() {
	local host u1 u2 u3 g version
	host=$(hostname)
	u1=$(id -u provfs-u1) u2=$(id -u provfs-u2) u3=$(id -u provfs-u3)
	g=$(getent group provfs-g | cut -d: -f3)
	mkdir -p "$(dirname "$HSTORE")"
	# schema.sql is always the newest schema; its first line names its version.
	version=$(sed -n '1s/.*schema version \([0-9][0-9]*\).*/\1/p' "$PROVFS_SOURCE_ROOT/store/schema.sql")
	sqlite3 -batch "$HSTORE" <"$PROVFS_SOURCE_ROOT/store/schema.sql"
	sqlite3 -batch "$HSTORE" <<-EOF
		PRAGMA user_version = $version;
		BEGIN;
		INSERT INTO mount_sessions (id, host, backing_dir, mount_point, provfs_version, daemon_pid, started_ns,
		                            stopped_ns, backing_exposed, recording, policy) VALUES (1, '$host', '$HB', '$HM', '0.1.0', 1, $(ns_ago 3600), NULL, 1, 1, 1);
		INSERT INTO runs (id, uuid, job_name, named_by, host, root_pid, root_start_ns, started_ns)
		VALUES (1, '11111111-1111-4111-8111-111111111111', 'etl', 'PROVFS_JOB', '$host', 100, $(ns_ago 3000), $(ns_ago 3000)),
		       (2, '22222222-2222-4222-8222-222222222222', 'report', 'PROVFS_JOB', '$host', 200, $(ns_ago 2000), $(ns_ago 2000));
		-- 1: provfs-u1 (group provfs-g: cleared for confidential) builds features from the CRM feed.
		-- 2: provfs-u2 (no grant: internal) reads the features: exposed.
		-- 3: provfs-u3 (no grant) was refused the CRM feed: a denial.
		-- 4: provfs-u1 reads the feed directly: cleared, not exposed.
		-- 5: provfs-u3 reads a public file only.
		INSERT INTO processes (id, host, pid, start_ns, exec_index, run_id, mount_session_id, executable,
		                       executable_hash, argv, cwd, uid, gid, seen_ns)
		VALUES (1, '$host', 100, $(ns_ago 3000), 0, 1, 1, '/usr/bin/python3', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
		        CAST('python3' || char(0) || 'features.py' || char(0) AS BLOB), '$HM', $u1, $u1, $(ns_ago 3000)),
		       (2, '$host', 200, $(ns_ago 2000), 0, 2, 1, '/usr/bin/python3', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
		        CAST('python3' || char(0) || 'report.py' || char(0) AS BLOB), '$HM', $u2, $u2, $(ns_ago 2000)),
		       (3, '$host', 300, $(ns_ago 1000), 0, NULL, 1, '/usr/bin/cat', 'cccccccccccccccccccccccccccccccc',
		        CAST('cat' || char(0) || 'raw/crm/a.csv' || char(0) AS BLOB), '$HM', $u3, $u3, $(ns_ago 1000)),
		       (4, '$host', 400, $(ns_ago 900), 0, NULL, 1, '/usr/bin/cat', 'cccccccccccccccccccccccccccccccc',
		        CAST('cat' || char(0) || 'raw/crm/a.csv' || char(0) AS BLOB), '$HM', $u1, $g, $(ns_ago 900)),
		       (5, '$host', 500, $(ns_ago 800), 0, NULL, 1, '/usr/bin/cat', 'cccccccccccccccccccccccccccccccc',
		        CAST('cat' || char(0) || 'public/x.csv' || char(0) AS BLOB), '$HM', $u3, $u3, $(ns_ago 800));
		INSERT INTO files (id, host, device, inode, generation, backing_dir, path, first_seen_ns)
		VALUES (1, '$host', 1, 11, 0, '$HB', 'raw/crm/a.csv', $(ns_ago 3500)),
		       (2, '$host', 1, 12, 0, '$HB', 'features/f.csv', $(ns_ago 3000)),
		       (3, '$host', 1, 13, 0, '$HB', 'public/x.csv', $(ns_ago 3500)),
		       (4, '$host', 1, 14, 0, '$HB', 'public/summary.csv', $(ns_ago 2900));
		INSERT INTO file_names (file_id, backing_dir, path, since_ns, how)
		VALUES (1, '$HB', 'raw/crm/a.csv', $(ns_ago 3500), 'seen'), (2, '$HB', 'features/f.csv', $(ns_ago 3000), 'create'),
		       (3, '$HB', 'public/x.csv', $(ns_ago 3500), 'seen'), (4, '$HB', 'public/summary.csv', $(ns_ago 2900), 'create');
		-- features/f.csv v1 and public/summary.csv v1 carry the feed's label (propagated from a.csv v1).
		INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash, hash_state, origin,
		                      producer_process_id, recorded_ns, label, label_from_version_id)
		VALUES (1, 1, 1, 10, $(ns_ago 3500), $(ns_ago 3500), 'a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1', 'hashed', 'initial', NULL, $(ns_ago 3500), NULL, NULL),
		       (2, 2, 1, 20, $(ns_ago 2990), $(ns_ago 2990), 'f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2', 'hashed', 'written', 1, $(ns_ago 2990), 'confidential', 1),
		       (3, 3, 1, 30, $(ns_ago 3500), $(ns_ago 3500), 'c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3', 'hashed', 'initial', NULL, $(ns_ago 3500), NULL, NULL),
		       (4, 4, 1, 40, $(ns_ago 2900), $(ns_ago 2900), 'd4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4', 'hashed', 'written', 1, $(ns_ago 2900), 'confidential', 1);
		INSERT INTO accesses (process_id, file_id, mount_session_id, path, open_flags, read_version_id, written_version_id, opened_ns, closed_ns)
		VALUES (1, 1, 1, 'raw/crm/a.csv', 0, 1, NULL, $(ns_ago 2995), $(ns_ago 2994)),
		       (1, 2, 1, 'features/f.csv', 577, NULL, 2, $(ns_ago 2993), $(ns_ago 2990)),
		       (1, 4, 1, 'public/summary.csv', 577, NULL, 4, $(ns_ago 2950), $(ns_ago 2900)),
		       (2, 2, 1, 'features/f.csv', 0, 2, NULL, $(ns_ago 1990), $(ns_ago 1989)),
		       (4, 1, 1, 'raw/crm/a.csv', 0, 1, NULL, $(ns_ago 899), $(ns_ago 898)),
		       (5, 3, 1, 'public/x.csv', 0, 3, NULL, $(ns_ago 799), $(ns_ago 798));
		INSERT INTO denials (process_id, file_id, mount_session_id, path, uid, label, clearance, rule, time_ns)
		VALUES (3, 1, 1, 'raw/crm/a.csv', $u3, 'confidential', 'internal', 'paths: raw/crm/** (line 9)', $(ns_ago 1000));
		-- An admin labeled x.csv restricted; summary.csv v1 was declassified to public.
		INSERT INTO label_changes (file_id, version_id, level, forced, reason, uid, time_ns)
		VALUES (3, 3, 'restricted', 0, NULL, 0, $(ns_ago 700)),
		       (4, 4, 'public', 1, 'aggregates only, no customer rows', 0, $(ns_ago 600));
		COMMIT;
	EOF
}

setup_file() {
	common_setup
	ensure_test_users
	NOW_NS=$(date +%s%N)
	HSTORE=$TMP/hand/provfs.db
	HB=$TMP/hand/backing
	HM=$TMP/hand/mnt
	mkdir -p "$HB" "$HM/raw/crm" "$HM/features" "$HM/public"
	CONF=$TMP/provfs.conf
	cat >"$CONF" <<-EOF
		[store]
		path = $HSTORE
		[classification]
		levels = public internal confidential restricted
		default_clearance = internal
		admin_group = provfs-g
		[paths]
		raw/crm/** = confidential
		[clearance]
		confidential = group:provfs-g
	EOF
	chown root:root "$CONF"
	chmod 644 "$CONF"
	make_store
	export TMP HSTORE HB HM CONF NOW_NS
}

teardown_file() {
	common_teardown
}

setup() {
	cd "$TMP"
}

# The end-to-end tests mount: never leave a mount behind a test.
teardown() {
	cd /
	unmount_all_under "$TMP"
}

pl() {
	run_split "$LABEL" --config "$CONF" "$@"
}

pq() {
	run_split "$QUERY" --config "$CONF" --store "$HSTORE" "$@"
}

assert_ok() {
	if [ "$status" -ne 0 ] || [ -n "$stderr" ]; then
		printf 'exit status %s\nstderr: %s\nstdout: %s\n' "$status" "$stderr" "$stdout" >&2
		return 1
	fi
}

# The last command failed with status $1 and one "PROGRAM: " line matching $2, no stdout.
assert_fails() {
	if [ "$status" -ne "$1" ]; then
		printf 'exit status %s, expected %s\nstderr: %s\n' "$status" "$1" "$stderr" >&2
		return 1
	fi
	if [ "${#stderr_lines[@]}" -ne 1 ]; then
		printf 'expected one line on stderr, got:\n%s\n' "$stderr" >&2
		return 1
	fi
	assert_match "${stderr_lines[0]}" "^provfs-(label|query): "
	assert_match "${stderr_lines[0]}" "$2"
	assert_equal "$stdout" ""
}

json() {
	printf '%s' "$stdout" | "$PYTHON" -c "import json, sys
d = json.load(sys.stdin)
$1"
}

# ------------------------------------------------------------ 1. provfs-label: bad input

@test "provfs-label: --help and --version answer on stdout" {
	run_split "$LABEL" --help
	assert_ok
	assert_match "$stdout" "set PATH LEVEL \[--recursive\] \[--force --reason TEXT\]"
	assert_match "$stdout" "list \[--under DIR\]"
	run_split "$LABEL" --version
	assert_ok
	assert_match "$stdout" "^provfs-label [0-9]"
}

@test "provfs-label: no command, an unknown command, an unknown option: exit 2, one line" {
	run_split "$LABEL"
	[ "$status" -eq 2 ]
	assert_match "${stderr_lines[0]}" "no command given"
	pl frobnicate
	assert_fails 2 "unknown command 'frobnicate'"
	pl get --bogus x
	assert_fails 2 "unknown option '--bogus'"
	pl list --recursive
	assert_fails 2 "option '--recursive' does not apply to list"
	pl get
	assert_fails 2 "missing argument \(usage: provfs-label get PATH\)"
	pl set "$TMP" confidential extra
	assert_fails 2 "too many arguments"
}

@test "provfs-label: a global option without its value, or unknown: one line (exit 2)" {
	local option
	for option in --store --config; do
		run_split "$LABEL" "$option"
		assert_fails 2 "^provfs-label: option '$option' needs a value$"
	done
	run_split "$LABEL" --bogus list
	assert_fails 2 "^provfs-label: unknown option '--bogus'$"
}

@test "provfs-label set: an unknown level names the configured levels (exit 2)" {
	pl set "$TMP" secret
	assert_fails 2 "unknown level 'secret' \(levels: public internal confidential restricted\)"
}

@test "provfs-label set: --force without --reason, --reason without --force (exit 2)" {
	pl set "$TMP" public --force
	assert_fails 2 "--force needs --reason TEXT"
	pl set "$TMP" public --force --reason ''
	assert_fails 2 "--force needs --reason TEXT"
	pl set "$TMP" public --reason "why not"
	assert_fails 2 "--reason applies only to --force"
	pl set "$TMP" public --force --reason $'two\nlines'
	assert_fails 2 "--reason must be one line"
}

@test "provfs-label: a path outside every provfs mount, a missing file (exit 2, nothing set)" {
	echo data >"$TMP/plain"
	for command in "set $TMP/plain confidential" "unset $TMP/plain" "get $TMP/plain"; do
		# shellcheck disable=SC2086
		pl $command
		assert_fails 2 "$TMP/plain: not inside a provfs mount"
	done
	run getfattr -n user.provfs.label "$TMP/plain"
	[ "$status" -ne 0 ]
	pl set "$TMP/no/such/file" confidential
	assert_fails 2 "$TMP/no/such/file: no such file or directory"
	pl get "$TMP/missing"
	assert_fails 2 "$TMP/missing: no such file or directory"
}

@test "provfs-label: an unreadable or broken --config is an error (exit 2)" {
	pl --config "$TMP/nope.conf" get "$TMP"
	# (pl passes --config first; the second one wins in getopt)
	assert_fails 2 "cannot read config '$TMP/nope.conf'"
	printf '[classification]\nlevels = a b\ndefault_clearance = c\n' >"$TMP/bad.conf"
	chmod 644 "$TMP/bad.conf"
	run_split "$LABEL" --config "$TMP/bad.conf" set "$TMP" a
	assert_fails 2 "default_clearance 'c' is not one of the levels"
}

# ------------------------------------------------------------ 2. the hand-made store

@test "provfs-label list: rule, explicit, propagated and declassified labels, with their source" {
	pl --store "$HSTORE" list
	assert_ok
	# Rows wider than 80 columns: each path on a line, its level and source
	# indented below (wrapped at spaces), in the order of the paths.
	local nl=$'\n' ws='[[:space:]]+'
	assert_match "$stdout" "^$HM/features/f.csv$nl +confidential +propagated from raw/crm/a.csv v1$nl$HM/public/summary.csv$nl +public +declassified v1 \(root [0-9-]+ [0-9:]+: aggregates${ws}only,${ws}no${ws}customer${ws}rows\)$nl$HM/public/x.csv$nl +restricted +explicit \(root [0-9-]+ [0-9:]+\)$nl$HM/raw/crm/a.csv$nl +confidential +rule raw/crm/\*\* \(line 8\)$"
}

@test "provfs-label list --under: only the files below the directory (mount or backing path)" {
	pl --store "$HSTORE" list --under "$HM/public"
	assert_ok
	[ "$(printf '%s\n' "$stdout" | grep -o "$HM/[^ ]*" | wc -l)" -eq 2 ]
	assert_match "$stdout" "public/summary.csv"
	assert_match "$stdout" "public/x.csv"
	mkdir -p "$HB/raw"
	pl --store "$HSTORE" list --under "$HB/raw"
	assert_ok
	assert_match "$stdout" "^(confidential +)?$HM/raw/crm/a.csv[[:space:]]+(confidential +)?rule raw"
	[ "$(printf '%s\n' "$stdout" | grep -o "$HM/[^ ]*" | wc -l)" -eq 1 ]
	pl --store "$HSTORE" list --under "$TMP"
	assert_fails 2 "--under: $TMP: not inside a provfs mount the store knows"
}

@test "provfs-label list: a missing store is an error (exit 2)" {
	pl --store "$TMP/none.db" list
	[ "$status" -eq 2 ]
	[ "${#stderr_lines[@]}" -eq 1 ]
}

@test "denials: each refusal with process, file version, label and its rule, clearance" {
	pq denials
	assert_ok
	assert_match "$stdout" "DENIED (read of )?raw/crm/a.csv"
	assert_match "$stdout" "process +300@[0-9]+ cat raw/crm/a.csv"
	assert_match "$stdout" "exe /usr/bin/cat cccccccccccc, user provfs-u3"
	assert_match "$stdout" "file +raw/crm/a.csv v1 a1a1a1a1a1a1[[:space:]]+\(mount $HM on "
	assert_match "$stdout" "label +confidential: paths: raw/crm/\*\* \(line 9\)"
	assert_match "$stdout" "clearance +internal"
	pq denials --format json
	assert_ok
	json '
x = d["denials"]
assert len(x) == 1, x
x = x[0]
assert x["user"] == "provfs-u3" and x["label"] == "confidential" and x["clearance"] == "internal", x
assert x["process"]["executable"] == "/usr/bin/cat" and x["process"]["argv"] == ["cat", "raw/crm/a.csv"], x
assert x["version"]["version"] == 1 and x["version"]["hash"] == "a1" * 16, x
assert x["rule"] == "paths: raw/crm/** (line 9)", x
assert x["time"].endswith("Z"), x'
}

@test "denials --user, --path, --since filter; an unknown user is an error" {
	pq denials --user provfs-u3
	assert_ok
	assert_match "$stdout" "DENIED (read of )?raw/crm/a.csv"
	pq denials --user provfs-u2
	assert_ok
	assert_equal "$stdout" "no denials match"
	pq denials --user "$(id -u provfs-u3)" --format json
	assert_ok
	json 'assert len(d["denials"]) == 1'
	pq denials --path "$HM/raw"
	assert_ok
	assert_match "$stdout" "DENIED (read of )?raw/crm/a.csv"
	pq denials --path "$HM/public"
	assert_ok
	assert_equal "$stdout" "no denials match"
	pq denials --since 10m
	assert_ok
	assert_equal "$stdout" "no denials match"
	pq denials --since 2h --format json
	assert_ok
	json 'assert len(d["denials"]) == 1'
	pq denials --user no-such-user-here
	assert_fails 2 "--user: unknown user 'no-such-user-here'"
	pq denials --path "$TMP/elsewhere"
	assert_fails 1 "not under any recorded provfs mount"
	pq history "$HM/raw/crm/a.csv" --user provfs-u3
	assert_fails 2 "option '--user' does not apply"
}

@test "denials: columns a later schema adds (grants, revision, label source) are shown" {
	cp "$HSTORE" "$TMP/v2.db"
	# The columns the label policy's schema adds (present already once it is merged),
	# and one this provfs-query has never heard of.
	for column in "grants TEXT" "policy_revision TEXT" "label_source TEXT" \
		"version_id INTEGER" "operation TEXT" "executable_inode INTEGER"; do
		if ! sqlite3 -batch "$TMP/v2.db" "SELECT 1 FROM pragma_table_info('denials')
			WHERE name = '${column% *}'" | grep -q 1; then
			sqlite3 -batch "$TMP/v2.db" "ALTER TABLE denials ADD COLUMN $column"
		fi
	done
	sqlite3 -batch "$TMP/v2.db" "UPDATE denials SET operation = 'read';
		UPDATE denials SET grants = 'confidential = group:provfs-g (line 11)',
			policy_revision = 'beefbeefbeefbeefbeefbeefbeefbeef', label_source = 'rule',
			version_id = 1, executable_inode = 77;"
	run_split "$QUERY" --config "$CONF" --store "$TMP/v2.db" denials
	assert_ok
	assert_match "$stdout" "label +confidential \(rule\): paths: raw/crm/\*\* \(line 9\)"
	assert_match "$stdout" "grants +confidential = group:provfs-g \(line 11\)"
	assert_match "$stdout" "policy +revision beefbeefbeefbeefbeefbeefbeefbeef"
	assert_match "$stdout" "DENIED read of raw/crm/a.csv"
	assert_match "$stdout" "executable_inode 77"
	run_split "$QUERY" --config "$CONF" --store "$TMP/v2.db" denials --format json
	assert_ok
	json '
x = d["denials"][0]
assert x["grants_considered"] == "confidential = group:provfs-g (line 11)", x
assert x["policy_revision"] == "beef" * 8 and x["label_source"] == "rule", x
assert x["executable_inode"] == 77 and x["access"] == "read", x'
}

@test "denials: an empty store says so" {
	cp "$HSTORE" "$TMP/empty.db"
	sqlite3 -batch "$TMP/empty.db" "DELETE FROM denials"
	run_split "$QUERY" --store "$TMP/empty.db" denials
	assert_ok
	assert_equal "$stdout" "no denials recorded"
}

@test "exposure: the uncleared reader of a derived file, not the cleared readers" {
	pq exposure "$HM/raw/crm/a.csv"
	assert_ok
	assert_match "$stdout" "label confidential[[:space:]]+\(rule[[:space:]]+raw/crm/\*\*, line 8\)"
	assert_match "$stdout" "read by 1 process with a clearance below confidential"
	assert_match "$stdout" "200@[0-9]+ python3 report.py"
	assert_match "$stdout" "user provfs-u2, clearance internal \(default_clearance\), job report"
	assert_match "$stdout" "read features/f.csv v1 f2f2f2f2f2f2"
	[[ ! "$stdout" =~ features.py ]]
	[[ ! "$stdout" =~ 400@ ]]
	pq exposure "$HM/raw/crm/a.csv" --format json
	assert_ok
	json '
assert d["label"] == "confidential" and d["label_source"] == "rule", d
p = d["processes"]
assert [x["pid"] for x in p] == [200], p
assert p[0]["clearance"] == "internal" and p[0]["clearance_from"] == "default", p
assert [r["path"] for r in p[0]["read"]] == ["features/f.csv"], p
assert [r["job"] for r in d["runs"]] == ["report"], d["runs"]'
}

@test "exposure and denials without --config, when the default provfs.conf is absent but the mounts enforced one: one line, exit 2" {
	[ ! -e /etc/provfs/provfs.conf ] || skip "this machine has /etc/provfs/provfs.conf"
	cp "$HSTORE" "$TMP/c.db"
	sqlite3 -batch "$TMP/c.db" "UPDATE mount_sessions SET policy_revision = 'a1b2c3' WHERE id = 1"
	run_split "$QUERY" --store "$TMP/c.db" exposure "$HM/raw/crm/a.csv"
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "$stderr" "/etc/provfs/provfs.conf does not exist, but the store's mounts enforced a provfs.conf: name the one they used with --config FILE"
	# denials answers from what the daemon recorded, and warns once.
	run_split "$QUERY" --store "$TMP/c.db" denials
	[ "$status" -eq 0 ]
	[[ "$stdout" == *"DENIED read of raw/crm/a.csv"* ]]
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "$stderr" "^provfs-query: denials: warning: only the propagated labels the store recorded are shown .*name the one they used with --config FILE$"
	# With the configuration named, the same questions are answered.
	run_split "$QUERY" --config "$CONF" --store "$TMP/c.db" exposure "$HM/raw/crm/a.csv"
	assert_ok
	# A store whose mounts enforced no provfs.conf answers with the built-in levels.
	run_split "$QUERY" --store "$HSTORE" denials
	[ "$status" -ne 2 ]
	# So does one reloaded without a provfs.conf: the built-in policy's
	# revision is the hash of no bytes.
	sqlite3 -batch "$TMP/c.db" "UPDATE mount_sessions SET policy_revision = '99aa06d3014798d86001c324468d497f'"
	run_split "$QUERY" --store "$TMP/c.db" exposure "$HM/raw/crm/a.csv"
	assert_ok
}

@test "exposure: a recorded denial's clearance is used; a grant that holds clears a reader" {
	cp "$HSTORE" "$TMP/e.db"
	# provfs-u3 (refused before, clearance internal) now reads the features.
	sqlite3 -batch "$TMP/e.db" "INSERT INTO accesses (process_id, file_id, mount_session_id, path,
		open_flags, read_version_id, opened_ns, closed_ns) VALUES (3, 2, 1, 'features/f.csv', 0, 2,
		$(ns_ago 990), $(ns_ago 989))"
	run_split "$QUERY" --config "$CONF" --store "$TMP/e.db" exposure "$HM/raw/crm/a.csv" --format json
	assert_ok
	json '
p = {x["pid"]: x for x in d["processes"]}
assert sorted(p) == [200, 300], p
assert p[300]["clearance"] == "internal" and p[300]["clearance_from"] == "denial", p'
	# A grant for provfs-u2 clears the report job: nobody is exposed any more.
	sed 's/^confidential = group:provfs-g$/confidential = group:provfs-g\nconfidential = user:provfs-u2/' \
		"$CONF" >"$TMP/granted.conf"
	chmod 644 "$TMP/granted.conf"
	run_split "$QUERY" --config "$TMP/granted.conf" --store "$HSTORE" exposure "$HM/raw/crm/a.csv"
	assert_ok
	assert_match "$stdout" "read by 0 processes with a clearance below confidential"
}

@test "exposure: a file raised by an explicit label counts readers below the new label" {
	# public/x.csv is labeled restricted; provfs-u3 read it (clearance internal).
	pq exposure "$HM/public/x.csv" --format json
	assert_ok
	json '
assert d["label"] == "restricted" and d["label_source"] == "explicit", d
assert [x["pid"] for x in d["processes"]] == [500], d'
	pq exposure "$HM/nowhere.csv"
	assert_fails 1 "never seen through provfs"
	run_split "$QUERY" --config "$TMP/nope.conf" --store "$HSTORE" exposure "$HM/public/x.csv"
	assert_fails 2 "cannot read config '$TMP/nope.conf'"
}

@test "gaps: labels raised by propagation, declassifications, writes down allowed, exposed backing" {
	pq gaps
	assert_ok
	assert_match "$stdout" "files whose label was raised above their path rule by propagation \(2\):"
	assert_match "$stdout" "features/f.csv +confidential > public +\(no rule\)[[:space:]]+raw/crm/a.csv v1 a1a1a1a1a1a1"
	assert_match "$stdout" "public/summary.csv +confidential > public"
	assert_match "$stdout" "declassifications \(1\):"
	assert_match "$stdout" "public/summary.csv +public +by root .*aggregates only, no customer rows"
	assert_match "$stdout" "writes down that were allowed \(2\):"
	assert_match "$stdout" "features/f.csv +v1 confidential > public +raw/crm/a.csv v1"
	assert_match "$stdout" "mounts whose backing directory other users can reach directly \(1\):"
	pq gaps --format json
	assert_ok
	json '
r = sorted(x["path"] for x in d["labels_raised_by_propagation"])
assert r == ["features/f.csv", "public/summary.csv"], r
c = d["declassifications"]
assert len(c) == 1 and c[0]["level"] == "public" and c[0]["user"] == "root", c
w = d["writes_down_allowed"]
assert sorted(x["path"] for x in w) == ["features/f.csv", "public/summary.csv"], w
assert all(x["label_before"] == "public" and x["propagated_from"]["path"] == "raw/crm/a.csv" for x in w), w
assert len(d["exposed_mounts"]) == 1, d
assert d["label_policy_error"] is None'
}

@test "gaps: a propagated label no higher than the path rule is not a gap; nor a write into a labeled file" {
	cp "$HSTORE" "$TMP/g.db"
	# features/f.csv now lies under a rule at its own level: not raised above it.
	sed 's|^raw/crm/\*\* = confidential$|raw/crm/** = confidential\nfeatures/** = confidential|' \
		"$CONF" >"$TMP/rule.conf"
	chmod 644 "$TMP/rule.conf"
	run_split "$QUERY" --config "$TMP/rule.conf" --store "$TMP/g.db" gaps --format json
	assert_ok
	json '
assert [x["path"] for x in d["labels_raised_by_propagation"]] == ["public/summary.csv"], d
assert [x["path"] for x in d["writes_down_allowed"]] == ["public/summary.csv"], d'
}

@test "gaps: without a readable configuration the label sections say why, the rest still answers" {
	run_split "$QUERY" --config "$TMP/nope.conf" --store "$HSTORE" gaps
	assert_ok
	assert_match "$stdout" "raised above their path rule by propagation: unknown \(cannot read config"
	assert_match "$stdout" "declassifications \(1\):"
	assert_match "$stdout" "mounts whose backing directory other users can reach directly \(1\):"
}

# ----------------------------------------- 2b. the effective label in lineage, impact, report
#
# raw/crm/a.csv is labeled only by its path rule (confidential), public/x.csv
# only by an explicit label (restricted): neither carries a propagated label
# (versions.label), yet both are what the daemon enforces.

# The version node of PATH in a lineage/impact JSON document, as "label source propagated".
node_label() {
	json "
n = [x for x in d['nodes'] if x['kind'] == 'version' and x['path'] == '$1']
assert len(n) == 1, n
print(n[0]['label'], n[0]['label_source'], n[0]['propagated_label'])"
}

@test "lineage, impact: a file labeled by a path rule shows its label (text, JSON)" {
	pq lineage "$HM/features/f.csv"
	assert_ok
	assert_match "$stdout" "raw/crm/a.csv +v1 +a1a1a1a1a1a1 +10 B +\[confidential\]"
	assert_match "$stdout" "features/f.csv +v1 +f2f2f2f2f2f2 +20 B +\[confidential\]"
	pq lineage "$HM/features/f.csv" --format json
	assert_ok
	run_split node_label raw/crm/a.csv
	assert_equal "$stdout" "confidential rule None"
	pq lineage "$HM/features/f.csv" --format json
	run_split node_label features/f.csv
	assert_equal "$stdout" "confidential propagated confidential"
	pq impact "$HM/raw/crm/a.csv"
	assert_ok
	assert_match "${stdout%%$'\n'*}" "^raw/crm/a.csv +v1 +a1a1a1a1a1a1 +10 B +\[confidential\]$"
	# The declassified summary shows the level it was declassified to.
	assert_match "$stdout" "wrote public/summary.csv +v1 +d4d4d4d4d4d4 +40 B +\[public\]"
	pq impact "$HM/raw/crm/a.csv" --format json
	assert_ok
	run_split node_label raw/crm/a.csv
	assert_equal "$stdout" "confidential rule None"
	pq impact "$HM/raw/crm/a.csv" --format json
	run_split node_label public/summary.csv
	assert_equal "$stdout" "public declassified confidential"
}

@test "lineage, impact: a file labeled only explicitly shows its label (text, JSON)" {
	pq impact "$HM/public/x.csv"
	assert_ok
	assert_match "${stdout%%$'\n'*}" "^public/x.csv +v1 +c3c3c3c3c3c3 +30 B +\[restricted\]$"
	pq impact "$HM/public/x.csv" --format json
	assert_ok
	run_split node_label public/x.csv
	assert_equal "$stdout" "restricted explicit None"
	pq lineage "$HM/public/x.csv"
	assert_ok
	assert_match "$stdout" "^public/x.csv +v1 +c3c3c3c3c3c3 +30 B +\[restricted\]"
	pq lineage "$HM/public/x.csv" --format json
	assert_ok
	run_split node_label public/x.csv
	assert_equal "$stdout" "restricted explicit None"
	# A file nothing labels shows no label.
	cp "$HSTORE" "$TMP/n.db"
	sqlite3 -batch "$TMP/n.db" "DELETE FROM label_changes WHERE file_id = 3"
	run_split "$QUERY" --config "$CONF" --store "$TMP/n.db" lineage "$HM/public/x.csv" --format json
	assert_ok
	run_split node_label public/x.csv
	assert_equal "$stdout" "None None None"
}

@test "report: the model card shows rule and explicit labels (Markdown, JSON)" {
	pq report "$HM/features/f.csv"
	assert_ok
	assert_match "$stdout" "- raw/crm/a\.csv, version 1, label confidential: XXH3-128"$'\n'"  \`a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1\`"
	pq report "$HM/features/f.csv" --format json
	assert_ok
	json '
s = d["sources"]
assert [(x["path"], x["label"], x["label_source"]) for x in s] == [("raw/crm/a.csv", "confidential", "rule")], s'
	pq report "$HM/raw/crm/a.csv"
	assert_ok
	assert_match "$stdout" "- \*\*Label\*\*: confidential"
	pq report "$HM/public/x.csv"
	assert_ok
	assert_match "$stdout" "- \*\*Label\*\*: restricted"
	pq report "$HM/public/x.csv" --format json
	assert_ok
	json '
v = d["version"]
assert (v["label"], v["label_source"], v["propagated_label"]) == ("restricted", "explicit", None), v'
}

@test "lineage, impact as DOT: rule and explicit labels color the files, with a legend" {
	pq lineage "$HM/features/f.csv" --format dot
	assert_ok
	# a.csv (version row 1) is filled with confidential's color and labeled.
	assert_match "$stdout" 'v1 \[shape=note, style="filled", fillcolor="#fce5cd".*label="raw/crm/a\.csv\\nv1  a1a1a1a1a1a1\\n\[confidential\]"\];'
	assert_match "$stdout" '"legend_[0-9]+" \[shape=note, style=filled, fillcolor="#fce5cd", fontsize=9, label="confidential"\]'
	if command -v dot >/dev/null; then printf '%s\n' "$stdout" | dot -Tsvg >/dev/null; fi
	pq impact "$HM/public/x.csv" --format dot
	assert_ok
	assert_match "$stdout" 'v3 \[shape=note, style="filled", fillcolor="#f4cccc".*label="public/x\.csv\\nv1  c3c3c3c3c3c3\\n\[restricted\]"\];'
	assert_match "$stdout" '"legend_[0-9]+" \[shape=note, style=filled, fillcolor="#f4cccc", fontsize=9, label="restricted"\]'
	if command -v dot >/dev/null; then printf '%s\n' "$stdout" | dot -Tsvg >/dev/null; fi
}

@test "a past version shows the explicit label in force when it was replaced" {
	cp "$HSTORE" "$TMP/h.db"
	# x.csv v2 was written 750 s ago; the admin labeled the file 700 s ago.
	sqlite3 -batch "$TMP/h.db" "INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns,
		hash, hash_state, origin, recorded_ns) VALUES (5, 3, 2, 31, $(ns_ago 750), $(ns_ago 750),
		'e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5e5', 'hashed', 'external', $(ns_ago 750))"
	run_split "$QUERY" --config "$CONF" --store "$TMP/h.db" history "$HM/public/x.csv" --format json
	assert_ok
	json '
v = [(x["version"], x["label"], x["label_source"]) for x in d["versions"]]
assert v == [(1, None, None), (2, "restricted", "explicit")], v'
	run_split "$QUERY" --config "$CONF" --store "$TMP/h.db" lineage "$HM/public/x.csv" --version 1
	assert_ok
	assert_match "$stdout" "^public/x.csv +v1 +c3c3c3c3c3c3 +30 B +\(first seen"
	if [[ $stdout == *restricted* ]]; then
		echo "v1 shows a label set after it was replaced: $stdout" >&2
		return 1
	fi
	# Had the label been set before v2 was written, v1 carried it too.
	sqlite3 -batch "$TMP/h.db" "UPDATE label_changes SET time_ns = $(ns_ago 800) WHERE file_id = 3"
	run_split "$QUERY" --config "$CONF" --store "$TMP/h.db" lineage "$HM/public/x.csv" --version 1
	assert_ok
	assert_match "$stdout" "^public/x.csv +v1 +c3c3c3c3c3c3 +30 B +\[restricted\]"
}

@test "labels without a readable configuration: the recorded ones, and one warning" {
	run_split "$QUERY" --config "$TMP/nope.conf" --store "$HSTORE" lineage "$HM/features/f.csv"
	[ "$status" -eq 0 ]
	assert_match "$stdout" "features/f.csv +v1 +f2f2f2f2f2f2 +20 B +\[confidential\]"
	assert_match "$stdout" "raw/crm/a.csv +v1 +a1a1a1a1a1a1 +10 B +\(first seen"
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "${stderr_lines[0]}" "^provfs-query: lineage: warning: only the propagated labels .*cannot read config '$TMP/nope.conf'"
}

# ------------------------------------------------------------ 3. through a real mount

# Mount $BACKING on $MNT with a label policy; skip when the daemon does not
# serve the label xattrs (a provfs without the policy module).
mount_with_labels() {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	# A world-traversable directory of this test's own (the suite shares $TMP).
	E=$(mktemp -d "$TMP/e2e.XXXXXX")
	chmod 755 "$E"
	BACKING=$E/backing MNT=$E/mnt STORE=$E/store/provfs.db
	mkdir -p "$BACKING" "$MNT" "$E/store"
	chmod 755 "$BACKING" "$MNT"
	MCONF=$E/mount.conf
	cat >"$MCONF" <<-EOF
		[store]
		path = $STORE
		[classification]
		levels = public internal confidential restricted
		default_clearance = internal
		admin_group = provfs-g
		[paths]
		raw/crm/** = confidential
		[clearance]
		confidential = group:provfs-g
	EOF
	chmod 644 "$MCONF"
	mkdir -p "$BACKING/raw/crm" "$BACKING/pub/sub"
	echo "id,name" >"$BACKING/raw/crm/a.csv"
	echo "x" >"$BACKING/pub/p.csv"
	echo "y" >"$BACKING/pub/sub/q.csv"
	ln -s "$BACKING/raw/crm/a.csv" "$BACKING/pub/link.csv"
	chmod -R a+rX "$BACKING"
	chmod 1777 "$BACKING/pub" # test users write here
	mount_provfs -o "config=$MCONF"
	if ! getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv" >/dev/null 2>&1; then
		skip "the daemon does not serve user.provfs.label (no label policy in this provfs)"
	fi
	UL=$(user_reachable "$LABEL")
}

@test "e2e: get shows the rule, its source and the file's POSIX ACL" {
	mount_with_labels
	setfacl -m u:provfs-u2:r "$BACKING/raw/crm/a.csv"
	run_split "$LABEL" --config "$MCONF" get "$MNT/raw/crm/a.csv"
	assert_ok
	assert_match "$stdout" "label: +confidential"
	assert_match "$stdout" "source: +rule raw/crm/\*\*"
	assert_match "$stdout" "acl: +user::rw-"
	assert_match "$stdout" "user:provfs-u2:r--"
}

@test "e2e: set and unset an explicit label as root; the daemon answers the new label at once" {
	mount_with_labels
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/p.csv" restricted
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv")" restricted
	run_split "$LABEL" --config "$MCONF" get "$MNT/pub/p.csv"
	assert_match "$stdout" "source: +explicit"
	run_split "$LABEL" --config "$MCONF" unset "$MNT/pub/p.csv"
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv")" public
	run_split "$LABEL" --config "$MCONF" unset "$MNT/pub/p.csv"
	assert_fails 1 "has no explicit label"
}

@test "e2e: a non-admin is refused (exit 1, one line naming admin_group); a member may" {
	mount_with_labels
	# The kernel lets only users who may write a file change its user.* attributes:
	# provfs-u2 owns u2.csv (so the daemon itself refuses it), not p.csv (the kernel does).
	echo z >"$BACKING/pub/u2.csv"
	chown provfs-u2 "$BACKING/pub/u2.csv"
	for file in u2.csv p.csv; do
		run_split as_user provfs-u2 "$UL" --config "$MCONF" set "$MNT/pub/$file" restricted
		assert_fails 1 "$MNT/pub/$file: only root or members of admin_group 'provfs-g' may change labels"
		assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/$file")" public
		run_split as_user provfs-u2 "$UL" --config "$MCONF" unset "$MNT/pub/$file"
		assert_fails 1 "$MNT/pub/$file: only root or members of admin_group 'provfs-g' may change labels"
	done
	# A member of admin_group with write access to the file may.
	chgrp provfs-g "$BACKING/pub/p.csv"
	chmod g+w "$BACKING/pub/p.csv"
	run_split as_user provfs-u1 "$UL" --config "$MCONF" set "$MNT/pub/p.csv" confidential
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv")" confidential
	# Without write access the kernel refuses the member's user.* change before
	# the daemon sees it; provfs-label takes the admin route (system.provfs.*),
	# where the daemon checks the member as it checks everyone.
	run as_user provfs-u1 test -w "$MNT/pub/sub/q.csv"
	[ "$status" -ne 0 ]
	run as_user provfs-u1 setfattr -n user.provfs.label -v confidential "$MNT/pub/sub/q.csv"
	[[ $output == *"Permission denied"* ]]
	run_split as_user provfs-u1 "$UL" --config "$MCONF" set "$MNT/pub/sub/q.csv" confidential
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/sub/q.csv")" confidential
	run_split as_user provfs-u1 "$UL" --config "$MCONF" unset "$MNT/pub/sub/q.csv"
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/sub/q.csv")" public
	# The route grants nothing: a non-admin is refused there by the daemon.
	run_split as_user provfs-u2 "$UL" --config "$MCONF" set "$MNT/pub/sub/q.csv" restricted
	assert_fails 1 "$MNT/pub/sub/q.csv: only root or members of admin_group 'provfs-g' may change labels"
	run as_user provfs-u2 setfattr -n system.provfs.label -v restricted "$MNT/pub/sub/q.csv"
	[[ $output == *"Operation not permitted"* ]]
	run as_user provfs-u2 setfattr -x system.provfs.label "$MNT/pub/p.csv"
	[[ $output == *"Operation not permitted"* ]]
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv")" confidential
	# Only the label goes that way: the lineage stays behind the kernel's read check.
	run getfattr --only-values -n system.provfs.lineage "$MNT/pub/p.csv"
	[ "$status" -ne 0 ]
}

@test "e2e: lowering below the rule needs --force --reason; declassifying is recorded" {
	mount_with_labels
	run_split "$LABEL" --config "$MCONF" set "$MNT/raw/crm/a.csv" public
	assert_fails 1 "public is below its label confidential .*--force --reason TEXT"
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/raw/crm/a.csv")" confidential
	run_split "$LABEL" --config "$MCONF" set "$MNT/raw/crm/a.csv" public --force --reason "header only"
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/raw/crm/a.csv")" public
	unmount_provfs
	run_split "$QUERY" --config "$MCONF" --store "$STORE" gaps
	assert_ok
	assert_match "$stdout" "raw/crm/a.csv +public +by root .*header only"
}

@test "e2e: --recursive labels every file under a directory, never through a symlink" {
	mount_with_labels
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub" restricted --recursive
	assert_ok
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/p.csv")" restricted
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/sub/q.csv")" restricted
	# The link's target keeps its rule label (the walk did not follow the link).
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/raw/crm/a.csv")" confidential
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub" restricted
	assert_fails 2 "is a directory \(labels belong to files; --recursive"
}

@test "e2e: the backing directory is outside the mount: refused, nothing set there" {
	mount_with_labels
	run_split "$LABEL" --config "$MCONF" set "$BACKING/pub/p.csv" restricted
	assert_fails 2 "$BACKING/pub/p.csv: not inside a provfs mount: it is in the backing directory of one \(labels are set through the mount: $MNT/pub/p.csv\)"
	run getfattr -n user.provfs.label "$BACKING/pub/p.csv"
	[ "$status" -ne 0 ]
}

@test "e2e: a refused read is a denial that explains itself" {
	mount_with_labels
	run as_user provfs-u2 cat "$MNT/raw/crm/a.csv"
	[ "$status" -ne 0 ]
	assert_match "$output" "Permission denied"
	unmount_provfs
	run_split "$QUERY" --config "$MCONF" --store "$STORE" denials --user provfs-u2
	assert_ok
	assert_match "$stdout" "DENIED (read of )?raw/crm/a.csv"
	assert_match "$stdout" "process +[0-9]+@[0-9]+ cat[[:space:]]+$MNT/raw/crm/a.csv"
	assert_match "$stdout" "user provfs-u2"
	assert_match "$stdout" "label +confidential.*raw/crm/\*\*"
	assert_match "$stdout" "clearance +internal"
	run_split "$QUERY" --config "$MCONF" --store "$STORE" denials --format json --path "$MNT/raw"
	assert_ok
	json '
x = d["denials"]
assert len(x) == 1 and x[0]["user"] == "provfs-u2" and x[0]["clearance"] == "internal", x
assert x[0]["process"]["argv"][0] == "cat", x'
}

@test "e2e: exposure without --config or the default provfs.conf, on the store of a mount that enforced one: one line, exit 2" {
	[ ! -e /etc/provfs/provfs.conf ] || skip "this machine has /etc/provfs/provfs.conf"
	mount_with_labels
	# The session names the provfs.conf in force from its start, never reloaded.
	wait_until "[ \"\$(q 'SELECT policy_revision FROM mount_sessions WHERE stopped_ns IS NULL')\" = $(xxhsum -H2 "$MCONF" | cut -d' ' -f1) ]"
	run_split "$QUERY" --store "$STORE" exposure "$MNT/pub/p.csv"
	assert_fails 2 "^provfs-query: exposure: /etc/provfs/provfs.conf does not exist, but the store's mounts enforced a provfs.conf: name the one they used with --config FILE$"
	run as_user provfs-u2 cat "$MNT/raw/crm/a.csv"
	[ "$status" -ne 0 ]
	unmount_provfs
	run_split "$QUERY" --store "$STORE" exposure "$MNT/pub/p.csv"
	assert_fails 2 "^provfs-query: exposure: /etc/provfs/provfs.conf does not exist, but the store's mounts enforced a provfs.conf: name the one they used with --config FILE$"
	# A session that names no revision (a daemon that records it at reloads
	# only, never reloaded): the revision its denial recorded tells.
	sqlite3 -batch "$STORE" "VACUUM INTO '$E/norev.db'"
	sqlite3 -batch "$E/norev.db" "UPDATE mount_sessions SET policy_revision = NULL"
	run_split "$QUERY" --store "$E/norev.db" exposure "$MNT/pub/p.csv"
	assert_fails 2 "^provfs-query: exposure: /etc/provfs/provfs.conf does not exist, but the store's mounts enforced a provfs.conf: name the one they used with --config FILE$"
	run_split "$QUERY" --config "$MCONF" --store "$STORE" exposure "$MNT/pub/p.csv"
	[ "$status" -ne 2 ]
}

@test "e2e: a cleared copy into a public path raises the copy; gaps lists it; get says where from" {
	mount_with_labels
	as_user_sh provfs-u1 "cat '$MNT/raw/crm/a.csv' > '$MNT/pub/out.csv'"
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/out.csv")" confidential
	run_split "$LABEL" --config "$MCONF" get "$MNT/pub/out.csv"
	assert_ok
	assert_match "$stdout" "source: +propagated from raw/crm/a.csv"
	unmount_provfs
	run_split "$QUERY" --config "$MCONF" --store "$STORE" gaps --format json
	assert_ok
	json '
assert [x["path"] for x in d["labels_raised_by_propagation"]] == ["pub/out.csv"], d
w = d["writes_down_allowed"]
assert [x["path"] for x in w] == ["pub/out.csv"] and w[0]["label_before"] == "public", w
assert w[0]["propagated_from"]["path"] == "raw/crm/a.csv", w'
	run_split "$LABEL" --config "$MCONF" --store "$STORE" list --under "$MNT/pub"
	assert_ok
	# A row wider than 80 columns: the path, then level and source below it.
	assert_match "$stdout" "^$MNT/pub/out.csv[[:space:]]+confidential +propagated from raw/crm/a.csv v1"
}

@test "e2e: list agrees with get after a declassification, a set and an unset" {
	mount_with_labels
	as_user_sh provfs-u1 "cat '$MNT/raw/crm/a.csv' > '$MNT/pub/d.csv'"
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/d.csv")" confidential
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/d.csv" public --force --reason "header only"
	assert_ok
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/d.csv" restricted
	assert_ok
	run_split "$LABEL" --config "$MCONF" unset "$MNT/pub/d.csv"
	assert_ok
	# The unset ended both the explicit label and the declassification it replaced.
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/pub/d.csv")" confidential
	run_split "$LABEL" --config "$MCONF" get "$MNT/pub/d.csv"
	assert_ok
	assert_match "$stdout" "label: +confidential"
	assert_match "$stdout" "source: +propagated from raw/crm/a.csv"
	unmount_provfs
	run_split "$LABEL" --config "$MCONF" --store "$STORE" list --under "$MNT/pub"
	assert_ok
	assert_match "$stdout" "^$MNT/pub/d.csv[[:space:]]+confidential +propagated from raw/crm/a.csv v1"
	if [[ $stdout == *declassified* || $stdout == *public* ]]; then
		echo "list still shows the declassification: $stdout" >&2
		return 1
	fi
	# A plain set after a declassification: explicit, as get says.
	mount_provfs -o "config=$MCONF"
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/d.csv" public --force --reason "again"
	assert_ok
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/d.csv" restricted
	assert_ok
	run_split "$LABEL" --config "$MCONF" get "$MNT/pub/d.csv"
	assert_match "$stdout" "label: +restricted"
	assert_match "$stdout" "source: +explicit"
	unmount_provfs
	run_split "$LABEL" --config "$MCONF" --store "$STORE" list --under "$MNT/pub"
	assert_ok
	assert_match "$stdout" "^$MNT/pub/d.csv[[:space:]]+restricted +explicit \\(root"
}

@test "e2e: after a label is raised, exposure names who read it or a copy below the new label" {
	mount_with_labels
	as_user_sh provfs-u2 "cp '$MNT/pub/p.csv' '$MNT/pub/copy.csv'"
	as_user_sh provfs-u3 "cat '$MNT/pub/copy.csv' >/dev/null"
	as_user_sh provfs-u1 "cat '$MNT/pub/p.csv' >/dev/null"
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/p.csv" confidential
	assert_ok
	unmount_provfs
	run_split "$QUERY" --config "$MCONF" --store "$STORE" exposure "$MNT/pub/p.csv" --format json
	assert_ok
	json '
assert d["label"] == "confidential" and d["label_source"] == "explicit", d
users = sorted(p["user"] for p in d["processes"])
assert users == ["provfs-u2", "provfs-u3"], users
assert all(p["clearance"] == "internal" for p in d["processes"]), d'
}

@test "e2e: exposure judges a script: grant by the daemon's rules: python3 -I SCRIPT is cleared, cat SCRIPT FILE and an ungranted read are not" {
	mount_with_labels
	# provfs-u3 may read confidential data by running jobs/job.py (pinned).
	mkdir -p "$BACKING/jobs"
	printf '%s\n' 'import sys' 'print(open(sys.argv[1]).read().strip())' >"$BACKING/jobs/job.py"
	chmod 755 "$BACKING/jobs" "$BACKING/jobs/job.py"
	local job=$MNT/jobs/job.py hash
	hash=$(xxhsum -H2 "$BACKING/jobs/job.py")
	hash=${hash%% *}
	unmount_provfs
	echo "confidential = script:$job@xxh3:$hash user:provfs-u3" >>"$MCONF"
	mount_provfs -o "config=$MCONF"
	# Read while p.csv is public: the job as it must run, cat given the
	# script first (as an editor's :e would read), and a user with no grant.
	run as_user provfs-u3 python3 -I "$job" "$MNT/pub/p.csv"
	[ "$status" -eq 0 ]
	[ "$output" = x ]
	run as_user provfs-u3 cat "$job" "$MNT/pub/p.csv"
	[ "$status" -eq 0 ]
	run as_user provfs-u2 cat "$MNT/pub/p.csv"
	[ "$status" -eq 0 ]
	run_split "$LABEL" --config "$MCONF" set "$MNT/pub/p.csv" confidential
	assert_ok
	# Now the grant is needed, and the daemon grants it (once the script's
	# hash is known: an open decided before is decided again).
	local try
	for try in $(seq 50); do
		run as_user provfs-u3 python3 -I "$job" "$MNT/pub/p.csv"
		[ "$status" -eq 0 ] && break
		sleep 0.1
	done
	[ "$status" -eq 0 ]
	[ "$output" = x ]
	run as_user provfs-u3 cat "$job" "$MNT/pub/p.csv"
	[ "$status" -ne 0 ]
	[[ $output == *"Permission denied"* ]]
	unmount_provfs
	[ "$(q "SELECT count(*) FROM versions WHERE hash = '$hash'")" -ge 1 ]
	run_split "$QUERY" --config "$MCONF" --store "$STORE" exposure "$MNT/pub/p.csv" --format json
	assert_ok
	json '
exposed = sorted((p["user"], " ".join(p["argv"])) for p in d["processes"])
job, csv = "'"$job"'", "'"$MNT/pub/p.csv"'"
assert exposed == [("provfs-u2", "cat " + csv), ("provfs-u3", "cat %s %s" % (job, csv))], exposed
assert all(p["clearance"] == "internal" for p in d["processes"]), d'
}

@test "e2e: a mount without the label policy (-o nopolicy): one line, exit 2, nothing set" {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	E=$(mktemp -d "$TMP/e2e.XXXXXX")
	chmod 755 "$E"
	BACKING=$E/backing MNT=$E/mnt STORE=$E/store/provfs.db
	mkdir -p "$BACKING" "$MNT" "$E/store"
	echo x >"$BACKING/f.csv"
	echo y >"$BACKING/probe"
	mount_provfs -o nopolicy
	# A provfs from before the label policy passes user.provfs.* to the backing file.
	if setfattr -n user.provfs.label -v public "$MNT/probe" 2>/dev/null; then
		skip "the daemon passes user.provfs.* through (no label policy in this provfs)"
	fi
	run_split "$LABEL" get "$MNT/f.csv"
	assert_fails 2 "$MNT/f.csv: the provfs serving $MNT does not support labels"
	run_split "$LABEL" set "$MNT/f.csv" public
	assert_fails 2 "$MNT/f.csv: the provfs serving $MNT does not support labels"
	run getfattr -n user.provfs.label "$BACKING/f.csv"
	[ "$status" -ne 0 ]
}

@test "provfs-label: a path in a mount's backing directory names the path through the mount" {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	E=$(mktemp -d "$TMP/e2e.XXXXXX")
	chmod 755 "$E"
	BACKING=$E/backing MNT=$E/mnt STORE=$E/store/provfs.db
	mkdir -p "$BACKING/d" "$MNT" "$E/store"
	echo x >"$BACKING/d/f.csv"
	mount_provfs
	for command in "set $BACKING/d/f.csv public" "unset $BACKING/d/f.csv" "get $BACKING/d/f.csv"; do
		# shellcheck disable=SC2086
		run_split "$LABEL" $command
		assert_fails 2 "$BACKING/d/f.csv: not inside a provfs mount: it is in the backing directory of one \(labels are set through the mount: $MNT/d/f.csv\)"
	done
	run getfattr -n user.provfs.label "$BACKING/d/f.csv"
	[ "$status" -ne 0 ]
}

@test "provfs-label set --recursive: an unreadable directory below stops it before anything is set" {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	ensure_test_users
	E=$(mktemp -d "$TMP/e2e.XXXXXX")
	chmod 755 "$E"
	BACKING=$E/backing MNT=$E/mnt STORE=$E/store/provfs.db
	mkdir -p "$BACKING/d/a" "$BACKING/d/z" "$MNT" "$E/store"
	echo x >"$BACKING/d/a/f.csv"
	echo y >"$BACKING/d/z/g.csv"
	chmod -R a+rwX "$BACKING/d"
	chmod 700 "$BACKING/d/z"
	mount_provfs
	UL=$(user_reachable "$LABEL")
	run_split as_user provfs-u1 "$UL" --config "$CONF" set "$MNT/d" confidential --recursive
	assert_fails 2 "$MNT/d: cannot read '$MNT/d/z' \(nothing was labeled\)"
	run getfattr -n user.provfs.label "$BACKING/d/a/f.csv"
	[ "$status" -ne 0 ]
}

@test "e2e: a refusal part way through --recursive says how far it got, in the one line" {
	mount_with_labels
	mkdir -p "$BACKING/grp"
	echo 1 >"$BACKING/grp/1.csv"
	echo 2 >"$BACKING/grp/2.csv"
	echo 3 >"$BACKING/grp/3.csv"
	chmod 755 "$BACKING/grp"
	chmod 666 "$BACKING/grp/3.csv"
	# The daemon refuses the third: it holds confidential data (propagated),
	# and going below that takes --force.
	as_user_sh provfs-u1 "cat '$MNT/raw/crm/a.csv' >'$MNT/grp/3.csv'"
	run_split as_user provfs-u1 "$UL" --config "$MCONF" set "$MNT/grp" internal --recursive
	assert_fails 1 "$MNT/grp/3.csv: .*internal.* \(stopped there: 2 of the 3 files under $MNT/grp were labeled\)"
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/grp/2.csv")" internal
	assert_equal "$(getfattr --only-values -n user.provfs.label "$MNT/grp/3.csv")" confidential
}
