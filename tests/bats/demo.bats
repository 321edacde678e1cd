#!/usr/bin/env bats
# demo.bats - README command one: the demo runs real jobs through a mount and
# tells the whole story (lineage, labels enforced at open, the denials
# explained, the lineage xattr, the incident question, OpenLineage events
# validated, the model's report), and leaves nothing mounted.
#
# The demo runs once (setup_file); each test checks one part of its output,
# the section under one "== " heading, or what it left on disk.

load helpers
load recorder_helpers

setup_file() {
	common_setup
	export DEMO_TMP=$TMP
	DEMO=$TMP/demo
	local status=0 started=$SECONDS
	"$PROVFS_SOURCE_ROOT/scripts/demo" "$DEMO" >"$TMP/demo.out" 2>&1 || status=$?
	echo "$status" >"$TMP/demo.status"
	# The time bound (under a minute once built) is reported, not asserted:
	# the machine may be shared.
	echo "# scripts/demo: exit $status in $((SECONDS - started)) s," \
		"$(grep -o 'Done in [0-9]* s' "$TMP/demo.out" || echo 'no Done line')" >&3
}

teardown_file() {
	TMP=$DEMO_TMP
	common_teardown
}

setup() {
	TMP=$DEMO_TMP
	DEMO=$TMP/demo
	STORE=$DEMO/store/provfs.db # read by q and assert_sql (recorder_helpers)
	export STORE
	output=$(cat "$TMP/demo.out")
}

# section TITLE: the output under the "== TITLE..." heading, to the next one.
section() {
	awk -v title="== $1" 'index($0, title) == 1 { on = 1; next } /^== / { on = 0 } on' \
		"$TMP/demo.out"
}

@test "scripts/demo: exits 0 and leaves nothing mounted, no daemon running" {
	if [ "$(cat "$TMP/demo.status")" -ne 0 ]; then
		tail -n 40 "$TMP/demo.out" >&2
		return 1
	fi
	[[ $output == *"nothing left mounted"* ]]
	[ -z "$(mounts_under "$DEMO")" ]
	[ -z "$(provfs_pids "$DEMO")" ]
	# The daemon closed its mount session: the store is complete.
	assert_sql "SELECT count(*) FROM mount_sessions WHERE stopped_ns IS NULL" 0
}

@test "scripts/demo: the model's producer is the authorized training job, with the features it read" {
	[[ $output == *"job         churn-training (named by PROVFS_JOB)"* ]]
	[[ $output == *"user        provfs-train (uid $(id -u provfs-train))"* ]]
	[[ $output == *"features/customer_features.csv"* ]]
	# The lineage reaches back through the feature job and the ETL to the export.
	[[ $output == *"[job feature-pipeline"* ]]
	[[ $output == *"[job crm-nightly-etl"* ]]
	[[ $output == *"raw/crm/export.csv"* ]]
}

@test "scripts/demo: the export is confidential by a reloaded path rule, the features restricted by provfs-label" {
	local text
	text=$(section "The admin classifies")
	[[ $text == *"raw/crm/** = confidential"* ]]
	[[ $text == *"reloaded: policy "* ]]
	# The grants are pinned by the hashes xxhsum -H2 gives the files.
	local hash
	hash=$(xxh "$DEMO/data/jobs/train_model.py")
	grep -qx "restricted = script:$DEMO/data/jobs/train_model.py@xxh3:$hash user:provfs-train" \
		"$DEMO/provfs.conf"
	text=$(section "The features are restricted")
	[[ $text == *'user.provfs.label="confidential"'* ]]
	[[ $text == *'user.provfs.label="restricted"'* ]]
	[[ $text == *"source:     explicit"* ]]
}

@test "scripts/demo: the authorized training job reads the restricted features; its model is restricted" {
	local text
	text=$(section "The authorized model")
	# A script: grant holds for python3 -I: no site-packages of the account's first.
	[[ $text == *"python3 -I jobs/train_model.py"* ]]
	[[ $text == *"trained on 5000 rows, accuracy"* ]]
	[[ $text == *$'\nrestricted '* ]]
	# Every version trained on the features records the label, and the input behind it.
	assert_sql "SELECT v.number, v.label, sf.path FROM versions v
	            JOIN versions sv ON sv.id = v.label_from_version_id
	            JOIN files sf ON sf.id = sv.file_id
	            WHERE v.file_id = ($(file_id_sql models/churn_model.json)) ORDER BY v.number" \
		"2|restricted|features/customer_features.csv
3|restricted|features/customer_features.csv"
	# The report (Markdown lists that fit 80 columns) records the label.
	[[ $output == *"- **Label**: restricted"* ]]
}

@test "scripts/demo: a modified training script and root are refused; the denials explain why" {
	local text
	text=$(section "Unauthorized: the same account")
	[[ $text == *"Permission denied: 'features/customer_features.csv'"* ]]
	text=$(section "Unauthorized: root")
	[[ $text == *"features/customer_features.csv"*"Permission denied"* ]]
	text=$(section "Every refusal explains itself")
	[ "$(grep -c 'DENIED read of features/customer_features.csv' <<<"$text")" -eq 2 ]
	[[ $text == *"python3 -I jobs/train_experiment.py"*"user provfs-train"* ]]
	[[ $text == *"(not running this script)"* ]]
	[[ $text != *"warning"* ]] # the demo's own queries name its provfs.conf
	[[ $text == *"head -3 features/customer_features.csv"*"user root"* ]]
	[[ $text == *"label      restricted: explicit"* ]]
	[[ $text == *"clearance  internal"* ]]
	# Nothing was read: no output of the experiment, and the store agrees.
	[ ! -e "$DEMO/data/models/experiment.json" ]
	assert_sql "SELECT count(*) FROM denials WHERE operation = 'read' AND path = 'features/customer_features.csv'" 2
}

@test "scripts/demo: the lineage xattr of the features names their producer and inputs" {
	local json
	json=$(section "Every feature file carries" | sed -n '/^{/,/^}/p')
	run /usr/bin/python3 -c '
import json, sys
d = json.loads(sys.stdin.read())
print(d["label"], d["run"]["job"], " ".join(d["process"]["argv"]),
      " ".join(i["path"] + "@" + i["hash"] for i in d["inputs"]))' <<<"$json"
	[ "$status" -eq 0 ]
	local crm
	crm=$(q "SELECT v.hash FROM versions v WHERE v.number = 1 AND v.file_id = ($(file_id_sql warehouse/crm.db))")
	[[ $output == "restricted feature-pipeline python3 -I jobs/build_features.py warehouse/crm.db features/customer_features.csv "* ]]
	[[ $output == *"warehouse/crm.db@$crm"* ]]
}

@test "scripts/demo: the incident question names what the poisoned export reached" {
	local text
	text=$(section "The incident question")
	[[ $text == *"$ provfs-query impact raw/crm/export.csv --version 2"* ]]
	[[ $text == *"wrote warehouse/crm.db  v2"* ]]
	[[ $text == *"wrote features/customer_features.csv  v2"* ]]
	[[ $text == *"wrote models/churn_model.json  v3"* ]]
	[[ $text == *"wrote bi/revenue_by_region.csv"* ]]
	# The version asked about is the poisoned one, as the bytes on disk give it.
	[[ $text == *"raw/crm/export.csv  v2  $(xxh "$DEMO/data/raw/crm/export.csv" | cut -c1-12)"* ]]
	# Night 1's run read the good export only: not affected.
	[[ $text == *"runs that read other versions only (not affected) (1)"* ]]
}

@test "scripts/demo: the nights exported as OpenLineage events, validated" {
	local text
	text=$(section "The nights as OpenLineage events")
	[[ $text == *" 0 problems"* ]]
	[[ $text == *"OpenLineage validation passed"* ]]
	[ -s "$DEMO/openlineage.ndjson" ]
	# One START and one COMPLETE per run, the training run among them.
	grep -q '"name":"churn-training"' "$DEMO/openlineage.ndjson"
}

@test "scripts/demo: a rendered graph and the model's report with its hash" {
	[ -s "$DEMO/lineage.svg" ]
	[ -s "$DEMO/lineage.png" ]
	grep -q 'churn_model.json' "$DEMO/lineage.svg"
	local hash
	hash=$(xxh "$DEMO/data/models/churn_model.json")
	[[ $output == *"XXH3-128 \`$hash\`"* ]]
}

@test "scripts/demo: its own text fits 80 columns" {
	# Its own: the headings, the commands it shows (with their continuation
	# lines), the grants it shows; the programs' answers are theirs.
	local long
	long=$(awk '/^(== |\$ |# as |confidential = |restricted = )/ || cont { own = 1 }
	            { cont = own && /\\$/ }
	            own && length($0) > 80 { print }
	            { own = 0 }' "$TMP/demo.out")
	if [ -n "$long" ]; then
		printf 'longer than 80 columns:\n%s\n' "$long" >&2
		return 1
	fi
	# The check itself sees the commands it means to check.
	[ "$(grep -c '^\$ ' "$TMP/demo.out")" -ge 20 ]
}

@test "scripts/demo: a DEMO_DIR the service account cannot reach is refused before mounting" {
	mkdir -m 700 "$TMP/private"
	run "$PROVFS_SOURCE_ROOT/scripts/demo" "$TMP/private/demo"
	[ "$status" -eq 2 ]
	[[ ${lines[-1]} == "demo: $TMP/private/demo/data: the service account provfs-train cannot reach it"* ]]
	[ -z "$(mounts_under "$TMP/private")" ]
}

@test "scripts/demo: a DEMO_DIR that is not a demo directory is left alone" {
	mkdir -p "$TMP/precious"
	echo keep >"$TMP/precious/notes.txt"
	run "$PROVFS_SOURCE_ROOT/scripts/demo" "$TMP/precious"
	[ "$status" -eq 2 ]
	[[ ${lines[-1]} == "demo: $TMP/precious: exists and is not a demo directory: not removing it"* ]]
	[ "$(cat "$TMP/precious/notes.txt")" = keep ]
	[ -z "$(mounts_under "$TMP/precious")" ]
}
