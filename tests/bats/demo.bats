#!/usr/bin/env bats
# demo.bats - README command one: the demo runs real jobs through a mount and
# shows their lineage, and leaves nothing mounted.

load helpers

setup() {
	common_setup
	DEMO=$TMP/demo
}

teardown() {
	unmount_all_under "$TMP"
	common_teardown
}

@test "scripts/demo: real jobs, real lineage, a rendered graph, nothing left mounted" {
	run "$PROVFS_SOURCE_ROOT/scripts/demo" "$DEMO"
	[ "$status" -eq 0 ]
	# The model's producer is the training job, with the features it read.
	[[ "$output" == *"job         churn-training (named by PROVFS_JOB)"* ]]
	[[ "$output" == *"features/customer_features.csv"* ]]
	# The lineage reaches back through the feature job and the ETL to the export.
	[[ "$output" == *"[job feature-pipeline"* ]]
	[[ "$output" == *"[job crm-nightly-etl"* ]]
	[[ "$output" == *"raw/crm/export.csv"* ]]
	# The report names the model's hash as the file's bytes give it.
	local hash
	hash=$(xxhsum -H2 "$DEMO/data/models/churn_model.json" | cut -d' ' -f1)
	[[ "$output" == *"XXH3-128 \`$hash\`"* ]]
	[ -s "$DEMO/lineage.svg" ]
	[ -s "$DEMO/lineage.png" ]
	grep -q 'churn_model.json' "$DEMO/lineage.svg"
	! mounts_under "$DEMO" | grep -q .
}
