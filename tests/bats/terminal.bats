#!/usr/bin/env bats
# terminal.bats - what people see on a terminal: every text output of
# provfs-query, provfs-label and provfs fits 80 columns, every --help lists
# every option its parser accepts, and long operations draw a progress bar
# on a terminal and nothing when piped.
#
# setup_file mounts provfs with a label policy and runs a night of jobs with
# the path lengths of real data (raw/crm/exports/customers_2026-12-04.parquet,
# a feature pipeline with long argv, a training job, a rename, a refused
# read, a change made behind provfs's back), then unmounts: every test reads
# that store.  A line wider than 80 columns is allowed only when it holds a
# single word (an over-long path) after its indentation.

load helpers
load recorder_helpers

bats_require_minimum_version 1.5.0

BUILD=${PROVFS_BUILD_ROOT:-/work/main/build}
QUERY=$BUILD/provfs-query
LABEL=$BUILD/provfs-label
SOURCE=${PROVFS_SOURCE_ROOT:-/work/main}

setup_file() {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	common_setup
	ensure_test_users
	CONF=$TMP/provfs.conf
	{
		echo "[store]"
		echo "reader_group = $TEST_GROUP"
		echo "[classification]"
		echo "levels = public internal confidential restricted"
		echo "default_clearance = internal"
		echo "admin_group = $TEST_GROUP"
		echo "[paths]"
		echo "raw/crm/** = confidential"
		echo "features/pii/** = restricted"
		echo "[clearance]"
		echo "confidential = user:root"
		echo "confidential = user:provfs-u2"
		echo "restricted = user:root"
		echo "restricted = user:provfs-u3"
	} >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
	mkdir -p "$BACKING"/{raw/crm/exports,warehouse/dim,features/pii,models/churn,pipelines,pub}
	chmod -R 755 "$BACKING"
	chmod 1777 "$BACKING/pub"
	CRM=raw/crm/exports/customers_2026-12-04.parquet
	FEATURES=features/pii/customers_2026-12-04.parquet
	DIMENSION=warehouse/dim/customer_dimension_2026-12-04.csv
	MODEL=models/churn/churn-model-2026-12-04.onnx
	for i in $(seq 200); do echo "$i,customer$i,555-$i"; done >"$BACKING/$CRM"
	cat >"$BACKING/pipelines/build_customer_features.py" <<-'EOF'
		import sys
		rows = open(sys.argv[2]).read().splitlines()
		with open(sys.argv[4], "w") as out:
		    for r in rows:
		        out.write(r.split(",")[0] + ",0.5\n")
	EOF
	cat >"$BACKING/pipelines/train_churn_model.py" <<-'EOF'
		import sys
		data = open(sys.argv[2]).read() + open(sys.argv[4]).read()
		open(sys.argv[6], "w").write("MODEL " + str(len(data)) + "\n")
	EOF
	chmod 644 "$BACKING"/pipelines/*.py "$BACKING/$CRM"
	mount_provfs -o "config=$CONF"
	(
		cd "$MNT"
		set -e
		PROVFS_JOB=crm-nightly-etl sh -c "sort $CRM > $DIMENSION"
		PROVFS_JOB=feature-pipeline "$PYTHON" pipelines/build_customer_features.py \
			--input "$CRM" --output "$FEATURES" --window-days 28
		PROVFS_JOB=churn-training "$PYTHON" pipelines/train_churn_model.py \
			--features "$FEATURES" --dimension "$DIMENSION" --output "$MODEL" \
			--epochs 30 --learning-rate 0.001
		PROVFS_JOB=quarterly-report sh -c "cat $DIMENSION | sort -r > pub/report.csv"
		mv pub/report.csv pub/quarterly-report-2026-q4.csv
	)
	as_user provfs-u1 cat "$MNT/$FEATURES" >/dev/null 2>&1 || true
	as_user provfs-u2 cp "$MNT/$CRM" "$MNT/pub/customers-copy-for-the-quarterly-review.csv"
	as_user provfs-u1 cat "$MNT/pub/customers-copy-for-the-quarterly-review.csv" \
		>/dev/null 2>&1 || true
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 10 || true
	stop_provfs
	echo "changed behind provfs's back" >>"$BACKING/$DIMENSION"
	RUN_UUID=$(q "SELECT uuid FROM runs WHERE job_name = 'churn-training'")
	PROCESS=$(q "SELECT p.pid || '@' || (p.start_ns / 1000000000) FROM processes p
		JOIN runs r ON r.id = p.run_id WHERE r.job_name = 'churn-training' LIMIT 1")
	export TMP BACKING MNT STORE CONF CRM FEATURES DIMENSION MODEL RUN_UUID PROCESS
}

teardown_file() {
	common_teardown
}

setup() {
	cd "$TMP"
}

# Lines of the file $1 wider than 80 columns that are more than a single
# over-long word after their indentation (tree lines count as indentation)
# or after a short field name ("path:       /a/path/longer/than/64/columns"),
# other than the one-line error messages.
too_wide() {
	"$PYTHON" - "$1" <<-'EOF'
		import re, sys, unicodedata
		def width(s):
		    return sum(0 if unicodedata.combining(c) else
		               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in s)
		bad = 0
		for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
		    line = line.rstrip("\n")
		    if width(line) <= 80:
		        continue
		    body = line.lstrip(" \u2502\u251c\u2514\u2500|`-")
		    if " " not in body:
		        continue
		    # A field name ("path:", "store") and one word too long for any line.
		    head, _, word = line.rstrip().rpartition(" ")
		    if len(head.split()) == 1 and width(head) <= 16 and width(word) > 64:
		        continue
		    # An error is one line by contract (INTERFACES.md), however long.
		    if re.match(r"(provfs|provfs-query|provfs-label): ", line):
		        continue
		    print("%d columns: %s" % (width(line), line))
		    bad += 1
		sys.exit(1 if bad else 0)
	EOF
}

# fits STATUS CMD...: run CMD (stdout and stderr together, in a UTF-8 locale
# and in C), expect STATUS, and fail on any line too wide.
fits() {
	local expected=$1 locale out status
	shift
	for locale in C.UTF-8 C; do
		out=$TMP/.fits
		status=0
		LC_ALL=$locale "$@" >"$out" 2>&1 || status=$?
		if [ "$status" -ne "$expected" ]; then
			echo "exit status $status, expected $expected: $*" >&2
			cat "$out" >&2
			return 1
		fi
		if ! [ -s "$out" ]; then
			echo "no output: $*" >&2
			return 1
		fi
		if ! too_wide "$out" >&2; then
			echo "(LC_ALL=$locale $*)" >&2
			return 1
		fi
	done
}

pq() {
	"$QUERY" --store "$STORE" --config "$CONF" "$@"
}

@test "the checker itself: a wide line of words fails, a lone over-long path passes" {
	printf '%s\n' "$(printf 'word %.0s' $(seq 20))" >"$TMP/wide"
	run too_wide "$TMP/wide"
	[ "$status" -eq 1 ]
	printf '   │  %s\n' "/srv/$(printf 'x%.0s' $(seq 100))" >"$TMP/path"
	printf 'path:       %s\n' "/srv/$(printf 'x%.0s' $(seq 70))" >>"$TMP/path"
	too_wide "$TMP/path"
	printf 'path: %s\n' "/srv/$(printf 'x%.0s' $(seq 70)) and more words" >"$TMP/wide"
	run too_wide "$TMP/wide"
	[ "$status" -eq 1 ]
}

@test "provfs-query: producer, lineage, impact, history fit 80 columns" {
	fits 0 pq producer "$MNT/$MODEL"
	fits 0 pq producer "$MNT/$DIMENSION"
	fits 0 pq lineage "$MNT/$MODEL"
	fits 0 pq lineage --run "$MNT/$MODEL"
	fits 0 pq lineage --depth 1 "$MNT/$MODEL"
	fits 0 pq impact "$MNT/$CRM"
	fits 0 pq impact --run "$MNT/$CRM"
	fits 0 pq history "$MNT/pub/quarterly-report-2026-q4.csv"
	fits 0 pq history "$MNT/$DIMENSION"
	# Nothing is lost on the way: the full run id and the whole command line.
	run pq producer "$MNT/$MODEL"
	[[ $output == *"$RUN_UUID"* ]]
	run pq lineage "$MNT/$MODEL"
	[[ $(printf '%s' "$output" | tr -d '\n│├└─ ') == *"--epochs30--learning-rate0.001"* ]]
}

@test "provfs-query: verify, runs, run, process, gaps, stats, denials, exposure fit 80 columns" {
	fits 1 pq verify "$MNT/$DIMENSION" "$MNT/$MODEL" "$MNT/$FEATURES"
	fits 1 pq verify --all
	fits 0 pq runs
	fits 0 pq runs --job churn-training
	fits 0 pq run "$RUN_UUID"
	fits 0 pq process "$PROCESS"
	fits 0 pq gaps
	fits 0 pq stats
	fits 0 pq denials
	fits 0 pq denials --user provfs-u1 --path "$MNT/$FEATURES"
	fits 0 pq exposure "$MNT/$CRM"
	fits 0 pq exposure "$MNT/$FEATURES"
	# runs keeps every run id whole, and the job beside its start.
	run pq runs
	[[ $output == *"$RUN_UUID"* ]]
	[ "$(printf '%s\n' "$output" | grep -c churn-training)" -eq 1 ]
}

@test "provfs-query: the report's Markdown fits 80 columns and keeps full hashes" {
	fits 0 pq report "$MNT/$MODEL"
	run pq report "$MNT/$MODEL"
	[[ $output == *"$(xxh "$BACKING/$FEATURES")"* ]]
	[[ $output == *"$RUN_UUID"* ]]
}

@test "provfs-query: usage errors and --help fit 80 columns" {
	fits 0 "$QUERY" --help
	fits 0 "$QUERY" --version
	fits 2 "$QUERY"
	fits 2 pq lineage
	fits 2 pq prune
	fits 2 pq runs --depth 3
}

@test "provfs-label: list, get, --help and errors fit 80 columns" {
	fits 0 "$LABEL" --config "$CONF" --store "$STORE" list
	fits 0 "$LABEL" --help
	fits 0 "$LABEL" set --help
	fits 2 "$LABEL" set
	mount_provfs -o "config=$CONF"
	fits 0 "$LABEL" --config "$CONF" get "$MNT/$FEATURES"
	fits 0 "$LABEL" --config "$CONF" get "$MNT/pub/customers-copy-for-the-quarterly-review.csv"
	unmount_provfs
}

@test "provfs: --help, --version and --check-config fit 80 columns" {
	fits 0 "$PROVFS" --help
	fits 0 "$PROVFS" --version
	fits 0 "$PROVFS" --check-config "$CONF"
	fits 2 "$PROVFS"
}

# ---------------------------------------------------------------- --help

@test "provfs-query --help names every option of the parser, and each command's own" {
	"$PYTHON" - "$SOURCE/tools/provfs_query.c" "$QUERY" <<-'EOF'
		import re, subprocess, sys
		source = open(sys.argv[1]).read()
		help = subprocess.run([sys.argv[2], "--help"], capture_output=True, text=True,
		                      check=True).stdout
		# Every long option getopt accepts.
		table = source[source.index("long_options[] = {"):]
		table = table[:table.index("{NULL, 0, NULL, 0}")]
		options = re.findall(r'\{"([a-z-]+)",', table)
		assert len(options) >= 18, options
		missing = [o for o in options if "--" + o not in help]
		assert not missing, "not in --help: %s" % missing
		# Each command's options, from its row of the command table, in its entry.
		names = dict(re.findall(r'case (OPT_\w+):\s*return "(--[a-z-]+)";', source))
		rows = re.findall(r'\{"(\w+)", cmd_\w+, ([^,]+),', source)
		assert len(rows) >= 15, rows
		entries = {}
		current = None
		for line in help.splitlines():
		    m = re.match(r"  ([a-z]+)( |$)", line)
		    if m and not line.startswith("  --"):
		        current = m.group(1)
		        entries[current] = ""
		    elif not line.strip() or not line.startswith("   "):
		        current = None
		    if current:
		        entries[current] += line + "\n"
		# The synopsis a usage error quotes names them too.
		for m in re.finditer(r'\{"(\w+)", cmd_\w+, ([^,]+),(.*?)\},\n', source, re.S):
		    synopsis = re.findall(r'"([^"]*)"', m.group(3))[-1]
		    for bit in re.findall(r"OPT_\w+", m.group(2)):
		        assert names[bit] in synopsis, "%s: %s not in its synopsis %r" % (
		            m.group(1), names[bit], synopsis)
		for command, bits in rows:
		    assert command in entries, "command %s not in --help" % command
		    for bit in re.findall(r"OPT_\w+", bits):
		        assert names[bit] in entries[command], \
		            "%s: %s not in its --help entry:\n%s" % (command, names[bit], entries[command])
	EOF
	# --help after any command is the same text, with status 0.
	for command in producer lineage impact history verify runs run process gaps stats \
		report prune denials exposure export; do
		run "$QUERY" "$command" --help
		[ "$status" -eq 0 ]
		[[ $output == "usage: provfs-query"* ]]
	done
}

@test "provfs-label --help names every option of its parsers" {
	# The table below is checked against the parser: an option added to
	# provfs_label.c without a line here (and in the help) fails.
	declare -A where=(
		[config]=global [store]=global [help]=global [version]=global
		[recursive]=set [force]=set [reason]=set [under]=list
	)
	"$PYTHON" - "$SOURCE/tools/provfs_label.c" "${!where[@]}" <<-'EOF'
		import re, sys
		source = open(sys.argv[1]).read()
		parsed = set(re.findall(r'\{"([a-z-]+)", (?:no|required)_argument', source))
		assert parsed == set(sys.argv[2:]), (sorted(parsed), sorted(sys.argv[2:]))
	EOF
	run "$LABEL" --help
	[ "$status" -eq 0 ]
	for option in "${!where[@]}"; do
		[[ $output == *"--$option"* ]] || {
			echo "--$option not in provfs-label --help" >&2
			return 1
		}
		[ "${where[$option]}" = global ] && continue
		run "$LABEL" "${where[$option]}" --help
		[ "$status" -eq 0 ]
		[[ $output == *"--$option"* ]] || {
			echo "--$option not in provfs-label ${where[$option]} --help" >&2
			return 1
		}
		run "$LABEL" --help
	done
}

@test "provfs --help names every option of its option table" {
	"$PYTHON" - "$SOURCE/daemon/main.c" "$PROVFS" <<-'EOF'
		import re, subprocess, sys
		source = open(sys.argv[1]).read()
		table = source[source.index("option_table[] = {"):]
		table = table[:table.index("FUSE_OPT_END")]
		templates = re.findall(r'(?:OPTION|FUSE_OPT_KEY)\("([^"]+)"', table)
		assert len(templates) >= 14, templates
		help = subprocess.run([sys.argv[2], "--help"], capture_output=True, text=True).stdout
		missing = []
		for t in templates:
		    name = re.split(r"[= ]", t)[0]
		    shown = name if name.startswith("-") else "-o " + name
		    if shown not in help:
		        missing.append(shown)
		assert not missing, "not in provfs --help: %s" % missing
	EOF
}

# ---------------------------------------------------------------- progress

# on_tty CMD...: run CMD with a terminal as stdin, stdout and stderr
# (script(1)); its output, raw, in $TMP/tty.out.
on_tty() {
	local command
	command=$(printf '%q ' "$@")
	TERM=xterm script -qec "$command" /dev/null >"$TMP/tty.out" 2>&1 </dev/null || return $?
}

# A progress bar: "COMMAND: WHAT [####....] N/M UNIT  RATE/s" or, total unknown, counts and rate.
has_bar() {
	grep -aqE "$1: [a-z ]+ (\[[#.]{20}\] )?[0-9,]+(/[0-9,]+)? [a-z]+  [0-9,]+/s" "$TMP/tty.out" || {
		echo "no progress bar for $1 in:" >&2
		cat -A "$TMP/tty.out" >&2
		return 1
	}
}

@test "progress: verify --all draws a bar on a terminal, nothing when piped" {
	# The store's mount enforced $CONF: without it verify says so on stderr.
	on_tty "$QUERY" --config "$CONF" --store "$STORE" verify --all || [ "$?" -eq 1 ]
	has_bar verify
	# The bar is erased: the summary starts on a clean line.
	grep -aq $'\r\033\\[K' "$TMP/tty.out"
	run_split "$QUERY" --config "$CONF" --store "$STORE" verify --all
	[ "$status" -eq 1 ]
	[ -z "$stderr" ]
	! grep -q $'\r' <<<"$stdout"
}

@test "progress: prune draws a bar on a terminal, nothing when piped" {
	"$SOURCE/scripts/gen-store" --pipelines 2 --days 20 --stages 3 --accesses 5000 \
		--files 300 --retention-days 5 "$TMP/prune.db" >/dev/null
	cp "$TMP/prune.db" "$TMP/prune2.db"
	on_tty "$QUERY" --store "$TMP/prune.db" prune --before 10d
	has_bar prune
	run_split "$QUERY" --store "$TMP/prune2.db" prune --before 10d
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ $stdout != *$'\r'* ]]
	[[ $stdout == *"removed"* ]]
}

@test "progress: export draws a count and rate on a terminal, nothing when piped" {
	"$SOURCE/scripts/gen-store" --pipelines 2 --days 5 --stages 3 --accesses 2000 \
		--files 100 "$TMP/export.db" >/dev/null
	on_tty "$QUERY" --store "$TMP/export.db" --config "$CONF" export --format openlineage
	has_bar export
	run_split "$QUERY" --store "$TMP/export.db" --config "$CONF" export --format openlineage
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[ "$(printf '%s\n' "$stdout" | wc -l)" -ge 10 ]
}

@test "progress: a PROV export draws a bar of processes on a terminal, nothing when piped" {
	"$SOURCE/scripts/gen-store" --pipelines 2 --days 5 --stages 3 --accesses 2000 \
		--files 100 "$TMP/prov-export.db" >/dev/null
	local processes
	processes=$(sqlite3 -batch "$TMP/prov-export.db" "SELECT count(*) FROM processes")
	on_tty "$QUERY" --store "$TMP/prov-export.db" --config "$CONF" export --format prov-json
	has_bar export
	grep -aqE "export: reading \[[#.]{20}\] [0-9,]+/[0-9,]+ processes" "$TMP/tty.out"
	run_split "$QUERY" --store "$TMP/prov-export.db" --config "$CONF" export --format prov-json
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	[[ $stdout != *$'\r'* ]]
	python3 -c 'import json, sys; d = json.load(sys.stdin); assert d["activity"], "no activity"' <<<"$stdout"
	[ "$processes" -gt 0 ]
}
