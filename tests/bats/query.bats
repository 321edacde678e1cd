#!/usr/bin/env bats
# query.bats - provfs-query against a store that a real mount filled while
# real jobs ran through it (no hand-inserted rows).
#
# setup_file mounts provfs once (with reader_group = provfs-g) and runs the
# scenario: an ingest job writes a feed three times (good, compromised,
# good), a features job runs after each, a training job reads the features
# built from the compromised feed, a shell pipeline (cat | sort) makes a
# report, a shell runs one process that reads a file and then another that
# reads a second one and writes a file, a file is renamed, and a program
# with hostile argv writes a file
# with a hostile name.  It then unmounts, so the store is complete, and every
# test reads it; only the verify test changes a backing file, its own.
#
# Output checks: text (escaped: no control byte reaches the terminal), JSON
# (parsed with python3; non-UTF-8 bytes recovered with surrogateescape), DOT
# (accepted by `dot`).  Bad input: exit status 1 or 2 with one line on stderr
# and nothing on stdout.

load helpers
load recorder_helpers

bats_require_minimum_version 1.5.0

QUERY=${PROVFS_QUERY:-${PROVFS_BUILD_ROOT:-/work/main/build}/provfs-query}

setup_file() {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	common_setup
	ensure_test_users
	chmod 700 "$BACKING"
	CONF=$TMP/provfs.conf
	printf '%s\n' '[store]' "reader_group = $TEST_GROUP" >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
	mkdir -p "$BACKING/raw" "$BACKING/features" "$BACKING/models" "$BACKING/hostile" "$BACKING/two"
	echo "read first, by another process of the run" >"$BACKING/two/a.txt"
	echo "read by the producer" >"$BACKING/two/b.txt"
	cat >"$BACKING/features.py" <<-'EOF'
		import sys
		rows = open("raw/feed.csv").read().splitlines()[1:]
		with open("features/f.csv", "w") as out:
		    out.write("id,feature\n")
		    for row in rows:
		        i, v = row.split(",")
		        out.write(f"{i},{int(v) * 2}\n")
	EOF
	cat >"$BACKING/train.py" <<-'EOF'
		data = open("features/f.csv").read()
		open("models/model.bin", "w").write("MODEL:" + str(len(data)) + "\n")
	EOF
	cat >"$BACKING/hostile.py" <<-'EOF'
		import os, sys
		name = b"hostile/ev\nil\x1b[31m\"q'uote\\back\xff\xfe.csv"
		fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
		os.write(fd, b"x\n")
		os.close(fd)
	EOF
	mount_provfs -o "config=$CONF"
	(
		cd "$MNT"
		set -e
		PROVFS_JOB=ingest sh -c 'printf "id,v\n1,10\n2,20\n" > raw/feed.csv'
		PROVFS_JOB=features "$PYTHON" features.py
		sleep 0.1
		date -u +%Y-%m-%dT%H:%M:%S.%3NZ >"$TMP/t_bad"
		sleep 0.1
		PROVFS_JOB=ingest sh -c 'printf "id,v\n1,666\n2,666\n" > raw/feed.csv'
		PROVFS_JOB=features "$PYTHON" features.py
		PROVFS_JOB=train "$PYTHON" train.py
		sleep 0.1
		date -u +%Y-%m-%dT%H:%M:%S.%3NZ >"$TMP/t_good"
		sleep 0.1
		PROVFS_JOB=ingest sh -c 'printf "id,v\n1,11\n2,21\n" > raw/feed.csv'
		PROVFS_JOB=features "$PYTHON" features.py
		PROVFS_JOB=report sh -c 'cat raw/feed.csv | sort > report.csv'
		PROVFS_JOB=two-step sh -c 'cat two/a.txt >/dev/null; cat two/b.txt >two/out.txt'
		PROVFS_JOB=copy cp report.csv old-name.csv
		mv old-name.csv new-name.csv
		PROVFS_JOB=tamper sh -c 'echo "fine" > tamper.csv'
		PROVFS_JOB=$'evil\e]0;pwned\a' "$PYTHON" hostile.py $'\e[2J' $'a\nb' $'\xff\xfe' "it's \"q\""
	)
	# Let the hashing threads finish before unmounting.
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 10 || true
	stop_provfs
	HOSTILE=$(printf 'hostile/ev\nil\033[31m"q'"'"'uote\\back\377\376.csv')
	export TMP BACKING MNT STORE CONF QUERY HOSTILE
}

teardown_file() {
	common_teardown
}

setup() {
	cd "$TMP"
}

# pq ARGS...: provfs-query on the scenario's store, stdout and stderr apart,
# with the provfs.conf the mount used (without it and without
# /etc/provfs/provfs.conf, the labels shown on versions would lack its rules,
# and provfs-query says so on stderr).
pq() {
	run_split "$QUERY" --store "$STORE" --config "$CONF" "$@"
}

# The last pq succeeded with nothing on stderr.
assert_ok() {
	if [ "$status" -ne 0 ] || [ -n "$stderr" ]; then
		printf 'exit status %s\nstderr: %s\nstdout: %s\n' "$status" "$stderr" "$stdout" >&2
		return 1
	fi
}

# The last pq failed with status $1 and one "provfs-query: " line matching $2, no stdout.
assert_fails() {
	if [ "$status" -ne "$1" ]; then
		printf 'exit status %s, expected %s\nstderr: %s\n' "$status" "$1" "$stderr" >&2
		return 1
	fi
	if [ "${#stderr_lines[@]}" -ne 1 ]; then
		printf 'expected one line on stderr, got:\n%s\n' "$stderr" >&2
		return 1
	fi
	assert_match "${stderr_lines[0]}" "^provfs-query: "
	assert_match "${stderr_lines[0]}" "$2"
	assert_equal "$stdout" ""
}

# Evaluate a python3 expression over the JSON document on stdout ("d").
json() {
	printf '%s' "$stdout" | "$PYTHON" -c "import json, sys
d = json.load(sys.stdin)
$1"
}

# No byte below 0x20 but tab and newline, no DEL, no C1 control in stdout.
assert_terminal_safe() {
	if printf '%s' "$stdout" | LC_ALL=C grep -qP '[\x00-\x08\x0b-\x1f\x7f]|\xc2[\x80-\x9f]'; then
		echo "control characters in the output:" >&2
		printf '%s' "$stdout" | cat -A >&2
		return 1
	fi
}

@test "producer: the training job, its program, and the features it read" {
	pq producer "$MNT/models/model.bin"
	assert_ok
	assert_match "$stdout" "job +train"
	assert_match "$stdout" "train\.py"
	assert_match "$stdout" "features/f\.csv +v2 "
	assert_match "$stdout" "same size and mtime as recorded"
	pq producer "$BACKING/models/model.bin" --format json
	assert_ok
	json 'assert d["command"] == "producer"
assert d["run"]["job"] == "train"
assert [i["version"]["path"] for i in d["inputs"] if i["version"]["path"] == "features/f.csv"][0]
assert [i for i in d["inputs"] if i["version"]["path"] == "features/f.csv"][0]["version"]["version"] == 2
assert d["disk"] == "matches"'
	[ "$(json 'print(d["version"]["hash"])')" = "$(xxh "$BACKING/models/model.bin")" ]
}

@test "producer: relative paths resolve through the mount session" {
	# Unmounted now: the mount point is an empty directory, the rest lexical.
	cd "$MNT"
	pq producer models/model.bin
	assert_ok
	cd "$BACKING/models"
	pq producer ../features/../models/model.bin
	assert_ok
}

@test "producer: the process's own inputs under its heading, the run's earlier ones once under theirs" {
	pq producer "$MNT/two/out.txt"
	assert_ok
	own=$(printf '%s\n' "$stdout" | sed -n '/^inputs read by the process /,/^$/p')
	others=$(printf '%s\n' "$stdout" | sed -n '/^inputs read by other processes of the run /,/^$/p')
	assert_match "$own" "^inputs read by the process \(1\):"
	assert_match "$own" "two/b\.txt +v1 "
	assert_match "$others" "^inputs read by other processes of the run before it \(1\):"
	assert_match "$others" "two/a\.txt +v1 .*by [0-9]+@[0-9]+ cat two/a\.txt"
	# Each input once, under its own heading.
	[ "$(printf '%s\n' "$stdout" | grep -cE 'two/a\.txt +v1 ')" -eq 1 ]
	[ "$(printf '%s\n' "$stdout" | grep -cE 'two/b\.txt +v1 ')" -eq 1 ]
	if [[ $own == *two/a.txt* || $others == *two/b.txt* ]]; then
		echo "an input under the wrong heading: $stdout" >&2
		return 1
	fi
	pq producer "$MNT/two/out.txt" --format json
	assert_ok
	json 'via = {i["version"]["path"]: i["via"] for i in d["inputs"]}
assert via == {"two/b.txt": "process", "two/a.txt": "run"}, via'
}

@test "lineage: model <- train <- features v2 <- features job <- compromised feed v2" {
	pq lineage "$MNT/models/model.bin"
	assert_ok
	assert_match "$stdout" "features/f\.csv +v2 "
	assert_match "$stdout" "raw/feed\.csv +v2 "
	pq lineage "$MNT/models/model.bin" --format json
	assert_ok
	json 'nodes = {n["key"]: n for n in d["nodes"]}
versions = {(n["path"], n["version"]) for n in d["nodes"] if n["kind"] == "version"}
assert ("raw/feed.csv", 2) in versions and ("raw/feed.csv", 1) not in versions, versions
assert all(e["from"] in nodes and e["to"] in nodes for e in d["edges"])
assert {e["relation"] for e in d["edges"]} <= {"used", "wasGeneratedBy", "wasInformedBy"}
assert nodes[d["start"]]["path"] == "models/model.bin"'
	pq lineage "$MNT/models/model.bin" --depth 1 --format json
	assert_ok
	json 'assert d["truncated"] is True
assert not any(n.get("path") == "raw/feed.csv" for n in d["nodes"])'
}

@test "lineage: --version and --at pick the version; --run follows a shell pipeline" {
	pq lineage "$MNT/features/f.csv" --version 1 --format json
	assert_ok
	json 'assert any(n.get("path") == "raw/feed.csv" and n["version"] == 1 for n in d["nodes"])'
	pq lineage "$MNT/features/f.csv" --at "$(cat "$TMP/t_bad")" --format json
	assert_ok
	json 'start = [n for n in d["nodes"] if n["key"] == d["start"]][0]
assert start["version"] == 1, start'
	pq lineage "$MNT/report.csv" --run
	assert_ok
	assert_match "$stdout" "raw/feed\.csv +v3 "
}

@test "lineage and impact as DOT that Graphviz accepts" {
	command -v dot >/dev/null || skip "graphviz not installed"
	pq lineage "$MNT/models/model.bin" --format dot
	assert_ok
	printf '%s\n' "$stdout" | dot -Tsvg >/dev/null
	assert_match "$stdout" "wasGeneratedBy"
	assert_match "$stdout" "used"
	pq impact "$MNT/raw/feed.csv" --version 2 --format dot
	assert_ok
	printf '%s\n' "$stdout" | dot -Tsvg >/dev/null
}

@test "impact: the compromised feed reached the model; runs on good versions are told apart" {
	pq impact "$MNT/raw/feed.csv" --version 2
	assert_ok
	assert_match "$stdout" "models/model\.bin"
	pq impact "$MNT/raw/feed.csv" --version 2 --format json
	assert_ok
	json 'runs = {}
for r in d["runs"]:
    runs.setdefault(r["job"], []).append(r["impact"])
assert runs["train"] == ["derived"], runs
assert sorted(runs["features"]) == ["read", "unaffected", "unaffected"], runs
assert any(n.get("path") == "models/model.bin" for n in d["nodes"])
derived = {(n["path"], n["version"]) for n in d["nodes"] if n["kind"] == "version" and not n["start"]}
assert ("features/f.csv", 2) in derived and ("features/f.csv", 1) not in derived, derived'
}

@test "impact: --since selects the window of the compromise, --hash every copy of the content" {
	pq impact "$MNT/raw/feed.csv" --since "$(cat "$TMP/t_bad")" --format json
	assert_ok
	json 'starts = sorted(n["version"] for n in d["nodes"] if n["kind"] == "version" and n["start"])
assert starts == [2, 3], starts'
	hash=$(q "SELECT hash FROM versions WHERE number = 2 AND file_id = ($(file_id_sql raw/feed.csv))")
	pq impact --hash "$hash" --format json
	assert_ok
	json 'assert [n["version"] for n in d["nodes"] if n["kind"] == "version" and n["start"]] == [2]
assert any(n.get("path") == "models/model.bin" for n in d["nodes"])'
	pq impact --hash "${hash:0:12}"
	assert_ok
}

@test "history: every version with its producer, and the rename" {
	pq history "$MNT/raw/feed.csv"
	assert_ok
	assert_match "$stdout" "v3 "
	assert_match "$stdout" "ingest"
	pq history "$MNT/new-name.csv" --format json
	assert_ok
	json 'names = [n["path"] for n in d["names"]]
assert names == ["old-name.csv", "new-name.csv"], names
assert [e["kind"] for e in d["events"]].count("rename") == 1'
	pq history "$MNT/old-name.csv"
	assert_ok
}

@test "verify: ok, then a change made in the backing directory is caught" {
	pq verify "$MNT/tamper.csv" "$MNT/models/model.bin"
	assert_ok
	echo "changed behind provfs's back" >>"$BACKING/tamper.csv"
	pq verify "$MNT/tamper.csv"
	[ "$status" -eq 1 ]
	assert_match "$stdout" "MODIFIED"
	pq verify --all --format json
	[ "$status" -eq 1 ]
	json 'st = {f["path"]: f["status"] for f in d["files"]}
assert st["tamper.csv"] == "mismatch", st
assert st["models/model.bin"] == "ok", st
assert d["summary"]["mismatch"] == 1'
	pq gaps
	assert_ok
	assert_match "$stdout" "tamper\.csv"
}

@test "runs, run, process, stats" {
	pq runs --job features
	assert_ok
	[ "$(printf '%s\n' "$stdout" | grep -c features)" -eq 3 ]
	pq runs --format json
	assert_ok
	uuid=$(json 'print([r["uuid"] for r in d["runs"] if r["job"] == "train"][0])')
	# runs counts what run lists: the versions read and written.
	local counts
	counts=$(json 'r = [r for r in d["runs"] if r["job"] == "train"][0]; print(r["reads"], r["writes"])')
	pq run "$uuid"
	assert_ok
	assert_match "$stdout" "models/model\.bin"
	# The heading names the run; its fields do not repeat the id.
	[ "$(printf '%s\n' "$stdout" | grep -c -- "$uuid")" -eq 1 ]
	pq run "${uuid:0:8}" --format json
	assert_ok
	json 'assert d["run"]["job"] == "train"'
	[ "$(json 'print(len(d["inputs"]), len(d["outputs"]))')" = "$counts" ]
	ref=$(json 'print(d["processes"][0]["ref"])')
	pq process "$ref"
	assert_ok
	assert_match "$stdout" "train\.py"
	pq stats --format json
	assert_ok
	json 'assert d["counts"]["runs"] >= 8 and d["schema_version"] == 8'
	# A run starts with its root process (a login shell may be hours old):
	# the text says so rather than "last run", which reads as last activity.
	pq stats
	assert_ok
	assert_match "$stdout" "newest run started "
}

@test "report: the provenance section of the model card" {
	pq report "$MNT/models/model.bin"
	assert_ok
	assert_match "$stdout" "## Provenance of models/model.bin"
	assert_match "$stdout" "### Source datasets"
	assert_match "$stdout" "raw/feed.csv"
	assert_match "$stdout" "$(xxh "$BACKING/models/model.bin")"
	pq report "$MNT/models/model.bin" --format json
	assert_ok
	json 'assert any(s["path"] == "raw/feed.csv" and s["version"] == 2 for s in d["sources"]), d["sources"]
assert d["run"]["job"] == "train"'
}

@test "hostile names and argv: escaped text, valid JSON, valid DOT" {
	pq producer "$MNT/$HOSTILE"
	assert_ok
	assert_terminal_safe
	assert_match "$stdout" 'ev\\nil\\e\[31m"q'"'"'uote\\\\back\\xff\\xfe\.csv'
	LC_ALL=C.UTF-8 run_split "$QUERY" --store "$STORE" --config "$CONF" lineage "$MNT/$HOSTILE"
	assert_ok
	assert_terminal_safe
	pq history "$MNT/$HOSTILE"
	assert_ok
	assert_terminal_safe
	pq runs
	assert_terminal_safe
	pq producer "$MNT/$HOSTILE" --format json
	assert_ok
	printf '%s' "$stdout" | iconv -f UTF-8 -t UTF-8 >/dev/null
	json 'raw = d["version"]["path"].encode("utf-8", "surrogateescape")
assert raw == b"hostile/ev\nil\x1b[31m\"q\x27uote\\back\xff\xfe.csv", raw
argv = [w.encode("utf-8", "surrogateescape") for w in d["process"]["argv"]]
assert argv[-4:] == [b"\x1b[2J", b"a\nb", b"\xff\xfe", b"it\x27s \"q\""], argv
assert d["run"]["job"] == "evil\x1b]0;pwned\x07"'
	if command -v dot >/dev/null; then
		pq lineage "$MNT/$HOSTILE" --format dot
		assert_ok
		printf '%s\n' "$stdout" | dot -Tsvg >/dev/null
		assert_terminal_safe
	fi
}

@test "the store is readable by reader_group members only" {
	ensure_test_users
	local query
	query=$(user_reachable "$QUERY")
	as_user "$U1" "$query" --store "$STORE" stats >/dev/null
	run_split as_user "$U2" "$query" --store "$STORE" stats
	assert_fails 2 "readable by root and its reader_group only"
}

@test "an unknown job is a negative answer; a known job with nothing in the window is empty" {
	local format
	pq runs --job nosuch
	assert_fails 1 "^provfs-query: runs: job 'nosuch': no run of this job in the store$"
	pq runs --job nosuch --format json
	assert_fails 1 "job 'nosuch'"
	for format in openlineage prov-json prov-o; do
		pq export --format "$format" --job nosuch
		assert_fails 1 "^provfs-query: export: job 'nosuch': no run of this job in the store$"
	done
	# The name is data: escaped in the one line like any other.
	pq runs --job $'no\nsuch'
	assert_fails 1 "job 'no\\\\nsuch'"
	# A job the store knows, with no run since TIME: an empty answer.
	pq runs --job features --since 2100-01-01
	assert_ok
	assert_equal "$stdout" "no runs recorded that match"
	pq runs --job features --since 2100-01-01 --format json
	assert_ok
	json 'assert d["runs"] == []'
	pq export --format openlineage --job features --since 2100-01-01
	assert_ok
	assert_equal "$stdout" ""
	pq export --format prov-json --job features --since 2100-01-01
	assert_ok
	json 'assert "activity" not in d or d["activity"] == {}, d'
	pq export --format openlineage --job features
	assert_ok
	[ -n "$stdout" ]
}

@test "run ID: either case; unknown is a negative answer, malformed a usage error" {
	local uuid
	pq runs --job train --format json
	assert_ok
	uuid=$(json 'print(d["runs"][0]["uuid"])')
	# RFC 4122: UUIDs are case insensitive on input.
	pq run "${uuid^^}" --format json
	assert_ok
	json "assert d['run']['uuid'] == '$uuid'"
	pq run "${uuid:0:8}"
	assert_ok
	pq run 00000000-0000-0000-0000-000000000000
	assert_fails 1 "^provfs-query: run: 00000000-0000-0000-0000-000000000000: no such run was recorded$"
	pq run 0000
	assert_fails 1 "no such run was recorded"
	local bad
	for bad in abc nosuch abcd-ef "${uuid}0" "${uuid:0:8}x" "${uuid//-/}"; do
		pq run "$bad"
		assert_fails 2 "^provfs-query: run: '$bad' is not a run id"
	done
}

@test "TIME: a bad one is one line naming the option, the value and why; 30s and now are TIMEs" {
	pq runs --since 3x
	assert_fails 2 "^provfs-query: runs: --since: '3x' is not a TIME \(ISO 8601 like 2026-11-27 or 2026-11-27T04:10, or 30s, 30m, 12h, 3d, 2w, now\)$"
	pq runs --since ''
	assert_fails 2 "^provfs-query: runs: --since: '' is not a TIME \("
	pq runs --since -3d
	assert_fails 2 "^provfs-query: runs: --since: '-3d' is not a TIME \(relative TIMEs count back from now and take no sign: 3d is 3 days ago\)$"
	pq runs --since 12
	assert_fails 2 "'12' is not a TIME \(a number needs its unit"
	pq lineage "$MNT/models/model.bin" --at 2026-13-01
	assert_fails 2 "^provfs-query: lineage: --at: '2026-13-01' is not a valid date or time of day$"
	pq export --format openlineage --since 99999999999d
	assert_fails 2 "^provfs-query: export: --since: '99999999999d' is out of range \(a relative TIME goes back at most 100 years\)$"
	pq prune --before 1d --keep-audit 1969-07-20 --dry-run
	assert_fails 2 "^provfs-query: prune: --keep-audit: '1969-07-20' is out of range"
	pq runs --since 30s
	assert_ok
	pq runs --since now --format json
	assert_ok
	json 'assert d["runs"] == []'
}

@test "bad input: export's missing --format before the store, a directory as store, a full stdout" {
	# A usage error is found before the store is opened: it names --format, not the store.
	run_split "$QUERY" --store "$TMP/no-such.db" export
	assert_fails 2 "^provfs-query: export: --format is required \(usage: provfs-query export --format openlineage\|prov-json\|prov-o \[--since TIME\] \[--job NAME\]\)$"
	pq export --job features
	assert_fails 2 "^provfs-query: export: --format is required"
	run_split "$QUERY" --store "$TMP" stats
	assert_fails 2 "^provfs-query: stats: store '$TMP' is a directory, not a provfs store$"
	run_split "$QUERY" --store "$TMP" prune --before 1d --dry-run
	assert_fails 2 "^provfs-query: prune: store '$TMP' is a directory, not a provfs store$"
	local format
	for format in openlineage prov-json; do
		status=0
		"$QUERY" --store "$STORE" --config "$CONF" export --format "$format" >/dev/full 2>"$TMP/err" || status=$?
		assert_equal "$status" 2
		assert_equal "$(cat "$TMP/err")" "provfs-query: export: cannot write the output: No space left on device"
	done
}

@test "bad input: one line, the right status, never a partial document" {
	pq producer "$TMP/elsewhere.csv"
	assert_fails 1 "never seen through provfs"
	pq producer "$MNT/no-such-file.csv" --format json
	assert_fails 1 "no-such-file\.csv: never seen through provfs"
	pq lineage "$MNT/models/model.bin" --version 7
	assert_fails 1 "has no version 7"
	pq lineage "$MNT/models/model.bin" --at yesterday
	assert_fails 2 "not a TIME"
	pq lineage "$MNT/models/model.bin" --format xml
	assert_fails 2 "unknown format 'xml'"
	pq lineage "$MNT/models/model.bin" --at 1d --version 1
	assert_fails 2 "mutually exclusive"
	pq verify --all "$MNT/models/model.bin"
	assert_fails 2 "not both"
	pq verify "$BACKING/models"
	assert_fails 2 "models: a directory; verify --all --under .*/models checks the files under it"
	pq producer "$MNT/models/model.bin" --depth 2
	assert_fails 2 "does not apply"
	pq frobnicate
	assert_fails 2 "unknown command"
	pq process 4194000
	assert_fails 1 "no such process"
	run_split "$QUERY" --store "$TMP/missing.db" stats
	assert_fails 2 "does not exist"
	head -c 8192 /dev/urandom >"$TMP/corrupt.db"
	run_split "$QUERY" --store "$TMP/corrupt.db" stats --format json
	assert_fails 2 "corrupt.db"
	cp "$STORE" "$TMP/newer.db"
	sqlite3 "$TMP/newer.db" "PRAGMA user_version = 99"
	run_split "$QUERY" --store "$TMP/newer.db" stats
	assert_fails 2 "newer than this provfs understands"
	run_split "$QUERY" --config "$TMP/no-such.conf" stats
	assert_fails 2 "no-such\.conf"
}

@test "bad input: an option without its value is one line, before the command too" {
	local option
	for option in --store --config --format; do
		run_split "$QUERY" "$option"
		assert_fails 2 "^provfs-query: option '$option' needs a value$"
	done
	pq stats --since
	assert_fails 2 "^provfs-query: stats: option '--since' needs a value$"
}
