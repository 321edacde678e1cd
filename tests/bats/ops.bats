#!/usr/bin/env bats
# ops.bats - provfs as an operator runs it: the benchmark and generator
# scripts still run (smoke runs: tiny sizes, one round, no timing asserted),
# retention (provfs-query prune), install, the systemd unit, the fstab
# mount helper and the man pages.

load helpers
load recorder_helpers

bats_require_minimum_version 1.5.0

QUERY=${PROVFS_QUERY:-${PROVFS_BUILD_ROOT:-/work/main/build}/provfs-query}
SCRIPTS=$PROVFS_SOURCE_ROOT/scripts

setup() {
	common_setup
}

teardown() {
	common_teardown
}

needs_fuse() {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
}

# A tiny store from the generator: two nightly pipelines over three days.
tiny_store() {
	"$SCRIPTS/gen-store" --pipelines 2 --days 3 --stages 3 --accesses 2000 --files 100 "$1"
}

# ---------------------------------------------------------------- smoke runs of scripts/

@test "smoke: scripts/gen-store writes a store provfs-query reads, consistent and of the current schema" {
	run tiny_store "$TMP/gen.db"
	[ "$status" -eq 0 ]
	[[ "$output" == *"gen-store: $TMP/gen.db: 6 runs, 18 processes"* ]]
	local version
	version=$(sed -n 's/^#define STORE_SCHEMA_VERSION \([0-9]*\)$/\1/p' "$PROVFS_SOURCE_ROOT/include/store.h")
	assert_equal "$(sqlite3 "$TMP/gen.db" 'PRAGMA user_version')" "$version"
	assert_equal "$(sqlite3 "$TMP/gen.db" 'PRAGMA integrity_check')" "ok"
	assert_equal "$(sqlite3 "$TMP/gen.db" 'PRAGMA foreign_key_check')" ""
	run "$QUERY" --store "$TMP/gen.db" stats
	[ "$status" -eq 0 ]
	[[ "$output" == *"accesses"*"2000"* ]]
	# An existing target is refused unless --force.
	run tiny_store "$TMP/gen.db"
	[ "$status" -ne 0 ]
	[[ "$output" == *"exists (use --force to replace it)"* ]]
}

@test "smoke: scripts/bench-query builds a tiny store and times every command" {
	run "$SCRIPTS/bench-query" --store "$TMP/bq/bench.db" --query "$QUERY" --runs 1 \
		--verify-mib 2 --gen-args "--pipelines 2 --days 3 --stages 3 --accesses 2000 --files 100"
	echo "$output"
	[ "$status" -eq 0 ]
	# Every command ran and answered (no "exit N" verdict).
	[[ "$output" != *"exit "* ]]
	[[ "$output" == *"producer  deepest output"* ]]
	[[ "$output" == *"verify --all"* ]]
}

@test "smoke: scripts/bench --quick runs every workload on native, passthrough_ll and provfs" {
	needs_fuse
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" -V native,passthrough_ll,provfs
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"check seqio: all runs agree"* ]]
	[[ "$output" == *"check sqlite-etl: all runs agree"* ]]
	[[ "$output" == *"| **smallfiles** | provfs |"* ]]
	assert_nothing_mounted
}

@test "smoke: scripts/bench-recorder records every open, loses nothing" {
	needs_fuse
	run "$SCRIPTS/bench-recorder" -s 1 -w 1 -n 50 -d "$TMP/br"
	echo "$output"
	[ "$status" -eq 0 ]
	# The recording row: opens/s, failed 0, ... lost 0.
	[[ "$output" =~ record\ +[0-9]+\ +0\ +[0-9]+\ +[0-9.]+\ +[0-9]+\ +0\  ]]
	assert_nothing_mounted
}

@test "smoke: scripts/strace-compare runs the ETL job four ways with the same result" {
	needs_fuse
	run "$SCRIPTS/strace-compare" -r 1 -m 1 -d "$TMP/sc"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"result.csv identical across all runs: yes"* ]]
	assert_nothing_mounted
}

@test "smoke: scripts/pjdfstest-run runs a suite with prove in a directory of a mount" {
	needs_fuse
	run "$SCRIPTS/pjdfstest-run" "$TMP" "$TMP"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"is not a built pjdfstest checkout"* ]]
	# A stand-in checkout (pjdfstest itself is built outside the repository):
	# one TAP test that creates a file where it runs.
	mkdir -p "$TMP/pjd/tests/smoke"
	printf '#!/bin/sh\n' >"$TMP/pjd/pjdfstest"
	printf '#!/bin/sh\necho 1..1\n: >created && echo ok 1 - create\n' >"$TMP/pjd/tests/smoke/00.t"
	chmod 755 "$TMP/pjd/pjdfstest" "$TMP/pjd/tests/smoke/00.t"
	mount_provfs
	run "$SCRIPTS/pjdfstest-run" -o "$TMP/pjd.log" "$TMP/pjd" "$MNT"
	cat "$TMP/pjd.log"
	[ "$status" -eq 0 ]
	grep -q "Result: PASS" "$TMP/pjd.log"
	[ -e "$BACKING/created" ]
	unmount_provfs
}
