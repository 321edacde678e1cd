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

@test "smoke: scripts/bench-prune prunes a tiny generated year while a writer records, checks pass" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	run "$SCRIPTS/bench-prune" --store "$TMP/bp/year.db" --query "$QUERY" --keep-days 20 \
		--gen-args "--pipelines 2 --days 60 --stages 4 --accesses 20000 --retention-days 7"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"checks: integrity_check ok; foreign_key_check clean; lineage of 7 existing files unchanged"* ]]
	[[ "$output" =~ writer\ during\ prune:\ [0-9]+\ commits,\ 0\ failed ]]
	[[ "$output" =~ versions\ +[0-9,]+\ +[1-9][0-9,]*\  ]]
	# The cached store is never changed; the work copy is gone.
	! ls "$TMP/bp" | grep -q provfs-bench-prune-
}

@test "smoke: scripts/bench --quick runs every workload on native, passthrough_ll and provfs" {
	needs_fuse
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" -V native,passthrough_ll,provfs
	echo "$output"
	[ "$status" -eq 0 ]
	# A first run in a new work directory still names its file system.
	local fstype
	fstype=$(findmnt -no FSTYPE -T "$TMP")
	[[ "$output" == *"filesystem: $fstype on "?* ]]
	[[ "$output" == *"check seqio: all runs agree"* ]]
	[[ "$output" == *"check sqlite-etl: all runs agree"* ]]
	[[ "$output" == *"| **smallfiles** | provfs |"* ]]
	assert_nothing_mounted
}

@test "smoke: scripts/bench-policy times a policy against -o nopolicy and prints the daemon's decision line" {
	needs_fuse
	run "$SCRIPTS/bench-policy" -r 1 -f 20 -p 12 -d "$TMP/bpol"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ \|\ create\ \|\ policy\ \|\ [0-9.]+\ \| ]]
	[[ "$output" =~ \|\ read\ \|\ nopolicy\ \|\ [0-9.]+\ \|.*\|\ 1\.000\ \| ]]
	[[ "$output" == *"policy: provfs: policy: 40 decisions at open"*"20 of them reads above the default clearance"* ]]
	# Backing directories on a tmpfs each (ext4's allocator state is not the
	# policy's cost), unmounted again at the end.
	[[ "$output" == *"backing on tmpfs"* ]]
	if findmnt -rn -t tmpfs -o TARGET | grep -q "^$TMP/bpol/"; then
		echo "a tmpfs is left under $TMP/bpol"
		false
	fi
	run "$SCRIPTS/bench-policy" -p 5
	[ "$status" -eq 2 ]
	[[ "$output" == *"--rules needs a number >= 10"* ]]
	assert_nothing_mounted
}

@test "smoke: scripts/bench-policy --instructions counts the daemon's instructions per file under callgrind" {
	needs_fuse
	command -v valgrind >/dev/null || skip "valgrind is not installed (scripts/install-deps installs it)"
	run "$SCRIPTS/bench-policy" --instructions -r 1 -f 10 -p 12 -d "$TMP/bpoli"
	echo "$output"
	[ "$status" -eq 0 ]
	# Counts, not placeholders: a create costs the daemon tens of thousands of
	# instructions, and the policy's own row is compared to nopolicy's.
	[[ "$output" =~ \|\ create\ \|\ policy\ \|\ ([0-9]+)\ \|.*\|\ ([0-9]+\.[0-9]{3})\ \| ]]
	((BASH_REMATCH[1] > 10000))
	[[ "$output" =~ \|\ read\ \|\ nopolicy\ \|\ [0-9]+\ \|\ [0-9]+\ \|\ [0-9]+\ \|\ 1\.000\ \| ]]
	if ls "$TMP"/bpoli/*/callgrind.out.* >/dev/null 2>&1; then
		echo "callgrind output left behind"
		false
	fi
	assert_nothing_mounted
}

@test "scripts/bench-policy --instructions without valgrind: one line naming it, exit 2, nothing mounted" {
	# A PATH with every program of this machine but valgrind's.
	mkdir "$TMP/path"
	find /usr/bin /usr/sbin -maxdepth 1 ! -type d ! -name 'valgrind*' ! -name 'callgrind*' \
		! -name vgdb -exec ln -sf -t "$TMP/path" {} +
	PATH=$TMP/path run "$SCRIPTS/bench-policy" --instructions -r 1 -f 10 -d "$TMP/bpolv"
	echo "$output"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	[[ "$output" == *"--instructions needs valgrind (apt-get install valgrind)"* ]]
	[ ! -e "$TMP/bpolv" ]
	assert_nothing_mounted
}

@test "smoke: scripts/bench -b times another provfs binary beside this one; a bad -b is refused" {
	needs_fuse
	cp "$PROVFS" "$TMP/provfs-other"
	run "$SCRIPTS/bench" --quick -r 2 -w smallfiles -d "$TMP/bench" -V provfs,provfs-other \
		-b other="$TMP/provfs-other" --paired provfs-other/provfs
	echo "$output"
	[ "$status" -eq 0 ]
	local other
	other=$(realpath "$TMP/provfs-other")
	[[ "$output" == *"provfs-other: BIN=$other"* ]]
	[[ "$output" == *"mounting provfs-other: $other "* ]]
	[[ "$output" == *"| **smallfiles** | provfs-other |"* ]]
	[[ "$output" == *"check smallfiles: all runs agree"* ]]
	# The paired table: each rep's ratio, from the raw timings (the median
	# of two is their mean).
	[[ "$output" == *"| workload | provfs-other / provfs within a rep: median | lowest | highest | n |"* ]]
	local csv expected metric
	csv=$(sed -n 's/.*raw timings: //p' <<<"$output")
	for metric in smallfiles smallfiles/create smallfiles/delete; do
		expected=$(awk -F, -v m="$metric" '$5 == m && $7 == "ok" { t[$1, $3] = $6 }
			END { a = t[1, "provfs-other"] / t[1, "provfs"]; b = t[2, "provfs-other"] / t[2, "provfs"]
			      label = m ~ /\// ? m : "**" m "**"
			      printf "| %s | %.2f | %.2f | %.2f | 2 |", label, (a + b) / 2, a < b ? a : b, a < b ? b : a }' "$csv")
		grep -qxF -- "$expected" <<<"$output"
	done
	assert_nothing_mounted
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" -V provfs --paired provfs/provfs-norecord
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: --paired provfs/provfs-norecord: variant 'provfs-norecord' is not among those run (provfs)" ]
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" --paired provfs
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: bad --paired 'provfs' (want A/B, e.g. provfs/provfs-norecord)" ]
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" -b other="$TMP/no-such-provfs"
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: provfs binary '$TMP/no-such-provfs' is not an executable file" ]
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" -b other
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: bad provfs binary 'other' (want NAME=BINARY, e.g. main=/tmp/main/provfs)" ]
}

@test "smoke: scripts/bench --cpu gives each phase's daemon CPU by kind of thread: the writer's only where there is one" {
	needs_fuse
	run "$SCRIPTS/bench" --quick -w smallfiles -d "$TMP/bench" -V native,provfs,provfs-norecord \
		-x norecord='-o norecord' --cpu
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"| phase | variant | daemon CPU ms: all | requests | writer | hash | watch | other | rounds |"* ]]
	local csv
	csv=$(dirname "$(sed -n 's/.*raw timings: //p' <<<"$output")")/cpu.csv
	# Every phase of both daemons, none of native (no daemon).
	[ "$(awk -F, '$5 == "all"' "$csv" | wc -l)" -eq 8 ]
	[ "$(grep -c ',native,' "$csv")" -eq 0 ]
	# A daemon that created 500 files used some CPU to do it, on its request threads.
	awk -F, '$3 == "provfs" && $4 == "smallfiles/create" && $5 == "requests" { ok = $6 > 0 } END { exit !ok }' "$csv"
	# "all" is the sum of the kinds; the table shows the (single) round's figures.
	awk -F, 'NR > 1 { if ($5 == "all") all[$3, $4] = $6; else sum[$3, $4] += $6 }
		END { for (k in all) if (all[k] - sum[k] > 0.1 * 6 || sum[k] - all[k] > 0.1 * 6) exit 1 }' "$csv"
	local row
	row=$(awk -F, '$3 == "provfs" && $4 == "smallfiles/delete" { v[$5] = $6 }
		END { printf "| smallfiles/delete | provfs | %s | %s | %s | %s | %s | %s | 1 |",
		      v["all"], v["requests"], v["writer"], v["hash"], v["watch"], v["other"] }' "$csv")
	grep -qxF -- "$row" <<<"$output"
	# Without recording there is no writer: its column says so.
	grep -qE '^\| smallfiles/create \| provfs-norecord \| [0-9.]+ \| [0-9.]+ \| - \|' <<<"$output"
	grep -qE '^\| smallfiles/create \| provfs \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|' <<<"$output"
	assert_nothing_mounted
}

@test "smoke: scripts/bench --cpus confines every daemon and workload to the CPUs given; a bad list is refused" {
	needs_fuse
	# A provfs that notes which CPUs it may run on, then is provfs.
	cat >"$TMP/provfs-noting" <<-EOF
		#!/bin/sh
		grep Cpus_allowed_list /proc/self/status >"$TMP/daemon-cpus"
		exec "$PROVFS" "\$@"
	EOF
	chmod +x "$TMP/provfs-noting"
	run "$SCRIPTS/bench" --quick --cpus 0 -w smallfiles -d "$TMP/bench" -V native,provfs-noting \
		-b noting="$TMP/provfs-noting"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"cpus: every daemon and workload on CPU 0 (taskset)"* ]]
	[[ "$output" == *"1 CPUs)"* ]]
	[[ "$output" == *"| **smallfiles** | provfs-noting |"* ]]
	[[ "$(cat "$TMP/daemon-cpus")" =~ ^Cpus_allowed_list:[[:space:]]+0$ ]]
	assert_nothing_mounted
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" --cpus 'all'
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: --cpus needs a CPU list such as 0 or 0-1" ]
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" --cpus 4096
	[ "$status" -eq 1 ]
	[[ "$output" == "bench: error: cannot run on CPUs '4096' (this machine has "*")" ]]
}

@test "smoke: scripts/bench --uring mounts provfs over io_uring beside -o nouring; --autogroup sets the scheduler's groups for the run; both put back" {
	needs_fuse
	local knob=/sys/module/fuse/parameters/enable_uring before
	local groups=/proc/sys/kernel/sched_autogroup_enabled groups_before other
	[ -w "$knob" ] || skip "this kernel has no FUSE over io_uring"
	[ -w "$groups" ] || skip "this kernel has no autogroups"
	before=$(cat "$knob")
	groups_before=$(cat "$groups")
	other=$((1 - groups_before))
	run "$SCRIPTS/bench" --quick --uring --autogroup "$other" -w smallfiles -d "$TMP/bench" \
		-V native,provfs,provfs-nouring -x nouring='-o nouring'
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *"uring: fuse.enable_uring=Y while mounting (--uring)"* ]]
	[[ "$output" =~ "provfs: requests through FUSE over io_uring, "[1-9][0-9]*" ring threads" ]]
	[[ "$output" == *"provfs-nouring: requests through /dev/fuse"* ]]
	[[ "$output" == *"| **smallfiles** | provfs-nouring |"* ]]
	[[ "$output" == *"kernel.sched_autogroup_enabled=$other"* ]]
	[ "$(cat "$knob")" = "$before" ]
	[ "$(cat "$groups")" = "$groups_before" ]
	assert_nothing_mounted
	run "$SCRIPTS/bench" --quick --autogroup yes -d "$TMP/bench"
	[ "$status" -ne 0 ]
	[ "$output" = "bench: error: --autogroup needs 0 or 1" ]
	[ "$(cat "$groups")" = "$groups_before" ]
}

@test "smoke: scripts/bench --scratch-ext4 runs on a fresh journaled ext4 it removes after; --requests counts each phase's FUSE requests" {
	needs_fuse
	losetup -f >/dev/null 2>&1 || skip "this machine has no free loop device"
	local event=/sys/kernel/tracing/events/fuse/fuse_request_send buffer_before=""
	# As bench does: a fresh machine may not have tracefs mounted yet.
	if [ ! -e /sys/kernel/tracing/events ] && grep -qw tracefs /proc/filesystems; then
		mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null || true
	fi
	if [ ! -w "$event/enable" ]; then
		# A kernel without the trace event: refused in one line, nothing mounted.
		run "$SCRIPTS/bench" --quick -w smallfiles -d "$TMP/bench" -V provfs --requests
		[ "$status" -eq 1 ]
		[ "$output" = "bench: error: --requests needs the fuse_request_send trace event ($event), which this kernel ($(uname -r)) does not have" ]
		assert_nothing_mounted
		skip "this kernel has no fuse_request_send trace event"
	fi
	buffer_before=$(cat /sys/kernel/tracing/buffer_size_kb)
	run "$SCRIPTS/bench" --quick -w smallfiles -d "$TMP/bench" -V native,provfs \
		--scratch-ext4 256M --requests
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" =~ "filesystem: ext4 on /dev/loop"[0-9]+", journal (--scratch-ext4 256M, made for this run)" ]]
	[[ "$output" == *"| **smallfiles** | provfs |"* ]]
	[[ "$output" == *"check smallfiles: all runs agree"* ]]
	# The quick run's 500 files: one CREATE each, one UNLINK each, and the
	# table's total is the sum of its opcodes.
	local requests create delete
	requests=$(sed -n '/^| phase | variant | FUSE requests | by opcode |$/,/^$/p' <<<"$output")
	create=$(grep -F '| smallfiles/create | provfs |' <<<"$requests")
	delete=$(grep -F '| smallfiles/delete | provfs |' <<<"$requests")
	[[ "$create" == *"CREATE 500"* ]]
	[[ "$delete" == *"UNLINK 500"* ]]
	local row total sum
	for row in "$create" "$delete"; do
		total=$(awk -F'|' '{ print $4 + 0 }' <<<"$row")
		sum=$(awk -F'|' '{ n = split($5, op, ","); for (i = 1; i <= n; i++) { split(op[i], f, " "); s += f[2] } print s }' <<<"$row")
		[ "$total" -eq "$sum" ]
	done
	# native has no FUSE requests to count
	[[ "$requests" != *"| native |"* ]]
	# Gone after: the mounts, the image, its loop device; tracing put back.
	assert_nothing_mounted
	[ ! -e "$TMP/bench/scratch-ext4.img" ]
	[[ "$(losetup -a)" != *"$TMP/bench/scratch-ext4.img"* ]]
	[ "$(cat "$event/enable")" = 0 ]
	local buffer_after
	buffer_after=$(cat /sys/kernel/tracing/buffer_size_kb)
	if [[ $buffer_before =~ \(expanded:\ ([0-9]+)\) ]]; then
		# Unused since boot: put back at the size it takes once used,
		# which is what the kernel shows after that size is written.
		echo "${BASH_REMATCH[1]}" >/sys/kernel/tracing/buffer_size_kb
		buffer_before=$(cat /sys/kernel/tracing/buffer_size_kb)
	fi
	[ "$buffer_after" = "$buffer_before" ]
	# The daemon's output is kept with the results, not on the removed image.
	ls "$TMP"/bench/results/*/daemon-provfs.log
	run ! findmnt -rn --mountpoint "$TMP/bench/fs"
	run "$SCRIPTS/bench" --quick -d "$TMP/bench" --scratch-ext4 8
	[ "$status" -eq 1 ]
	[ "$output" = "bench: error: --scratch-ext4 needs a size such as 8G or 512M" ]
	# An image too small for a journal (mkfs makes it without one) is
	# refused, and unmounted and removed again.
	run "$SCRIPTS/bench" --quick -w smallfiles -d "$TMP/bench" -V native --scratch-ext4 1M
	[ "$status" -eq 1 ]
	[ "${lines[-1]}" = "bench: error: --scratch-ext4 1M: too small for ext4 to keep a journal; give 256M or more" ]
	run ! findmnt -rn --mountpoint "$TMP/bench/fs"
	[ ! -e "$TMP/bench/scratch-ext4.img" ]
	[[ "$(losetup -a)" != *"$TMP/bench/scratch-ext4.img"* ]]
}

@test "smoke: scripts/bench-recorder -R -W opens the files in a random order after a longer warm-up, every open recorded" {
	needs_fuse
	run "$SCRIPTS/bench-recorder" -s 1 -w 2 -n 300 -r 1 -R -W 0.7 -m 1024 -d "$TMP/br"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == *"2 workers, 300 files (random), 1s per mode;"* ]]
	# opens/s, failed 0, rows/s the same as opens/s (each open one row), lost 0.
	local opens rows
	read -r _ opens _ rows _ < <(grep -E '^record +[0-9]+ +0 +[0-9]+ +[0-9.]+ +[0-9]+ +0 ' <<<"$output")
	[ -n "$opens" ]
	[ "$opens" -gt 0 ]
	[ "$rows" = "$opens" ]
	[ "$(grep -cE '^norecord +[0-9]+ +0 ' <<<"$output")" = 1 ]
	# The warm-up (in file order) opened every file: no first sights timed.
	[[ "$output" != *"first sights"* ]]
	assert_nothing_mounted
}

@test "smoke: scripts/bench-recorder -R says when its warm-up left files unopened" {
	needs_fuse
	# 0.01 s: the worker looks at the clock every 256 opens, so it stops
	# after 256 of the 3,000 files.
	run "$SCRIPTS/bench-recorder" -s 1 -w 1 -n 3000 -r 1 -R -W 0.01 -d "$TMP/br"
	echo "$output"
	[ "$status" -eq 0 ]
	local pattern='^bench-recorder: (record|norecord): the warm-up opened ([0-9]+) of the 3000 files; the timed run includes first sights \(a longer -W opens them all\)$'
	[ "$(grep -cE "$pattern" <<<"$output")" = 2 ]
	local opened
	opened=$(grep -E "$pattern" <<<"$output" | sed -E "s/$pattern/\2/" | head -n 1)
	[ "$opened" -ge 256 ]
	[ "$opened" -lt 3000 ]
	assert_nothing_mounted
}

@test "smoke: scripts/bench-recorder records every open, loses nothing" {
	needs_fuse
	run "$SCRIPTS/bench-recorder" -s 1 -w 1 -n 50 -r 2 -d "$TMP/br"
	echo "$output"
	[ "$status" -eq 0 ]
	# The recording rows, one a round: opens/s, failed 0, ... lost 0.
	[ "$(grep -cE '^record +[0-9]+ +0 +[0-9]+ +[0-9.]+ +[0-9]+ +0 ' <<<"$output")" = 2 ]
	[ "$(grep -cE '^norecord +[0-9]+ +0 ' <<<"$output")" = 2 ]
	# The daemon's CPU per open, the writer's share and its write(2) calls
	# per open (none of either without recording: no writer thread).
	[ "$(grep -cE '^record .* [0-9]+\.[0-9] +[0-9]+\.[0-9] +[0-9]+\.[0-9]{2}$' <<<"$output")" = 2 ]
	[ "$(grep -cE '^norecord .* [0-9]+\.[0-9] +0\.0 +0\.00$' <<<"$output")" = 2 ]
	[[ "${lines[-2]}" =~ ^median\ of\ 2\ rounds:\ record\ [0-9]+\ opens/s,\ norecord\ [0-9]+\ opens/s:\ recorded\ at\ [0-9.]+\ of\ the\ unrecorded\ rate$ ]]
	# The paired line: the rounds' own ratios (record over norecord of the
	# same round; the median of two is their mean) and the CPU medians.
	local expected
	expected=$(awk '$1 == "record" { r[++nr] = $2; rc[nr] = $15 }
		$1 == "norecord" { n[++nn] = $2; nc[nn] = $15 }
		# Means as the script passes them on, printed through %.6g: 49.65,
		# not 49.650000000000006 (which would print as 49.7, not 49.6).
		function mean(x, y) { return sprintf("%.6g", (x + y) / 2) + 0 }
		END { a = sprintf("%.6f", r[1] / n[1]) + 0; b = sprintf("%.6f", r[2] / n[2]) + 0; lo = a < b ? a : b; hi = a < b ? b : a
		      printf "paired: recorded at %.2f of the unrecorded rate in the median round (lowest %.2f, highest %.2f); daemon CPU per open, median: record %.1f us, norecord %.1f us",
		             mean(a, b), lo, hi, mean(rc[1], rc[2]), mean(nc[1], nc[2]) }' <<<"$output")
	[ "${lines[-1]}" = "$expected" ]
	assert_nothing_mounted
	run "$SCRIPTS/bench-recorder" -r 0 -d "$TMP/br"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-recorder: -r needs a positive whole number, not '0'" ]
	run "$SCRIPTS/bench-recorder" -n 100001 -R -d "$TMP/br"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-recorder: -n: at most 100000 files, not 100001" ]
	run "$SCRIPTS/bench-recorder" -W 0 -d "$TMP/br"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-recorder: -W needs a number of seconds above 0, not '0'" ]
	[ ! -e "$TMP/br" ]
	# A mount that fails ends the run, whatever the round.
	PROVFS=/bin/false run "$SCRIPTS/bench-recorder" -s 1 -w 1 -n 10 -r 2 -d "$TMP/br"
	[ "$status" -eq 2 ]
	[[ "${lines[-1]}" == "bench-recorder: mount (record) failed: "* ]]
	[ "$(grep -c '^median' <<<"$output")" = 0 ]
	[ ! -e "$TMP/br" ]
	run "$SCRIPTS/bench-recorder" -m 5 -d "$TMP/br"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-recorder: -m 5: $TMP/br/provfs.conf:2: remembered_files takes a number of files from 1024 to 67108864, not '5'" ]
	[ ! -e "$TMP/br" ]
	run "$SCRIPTS/bench-recorder" -m lots -d "$TMP/br"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-recorder: -m needs a positive whole number of files, not 'lots'" ]
}

@test "smoke: scripts/bench-writer counts the daemon's instructions per operation, the writer's apart" {
	needs_fuse
	command -v valgrind >/dev/null || skip "needs valgrind (scripts/install-deps installs it)"
	run "$SCRIPTS/bench-writer" -n 40 -d "$TMP/bw"
	echo "$output"
	[ "$status" -eq 0 ]
	local phase norecord record writer rest
	for phase in create open unlink; do
		[[ "$output" =~ \|\ $phase\ \|\ ([0-9]+)\ \|\ ([0-9]+)\ \|\ ([0-9]+)\ \|\ ([0-9]+)\ \|\ [0-9.]+\ \| ]]
		norecord=${BASH_REMATCH[1]} record=${BASH_REMATCH[2]}
		writer=${BASH_REMATCH[3]} rest=${BASH_REMATCH[4]}
		# The writer runs only when recording, and recording costs more.
		[ "$writer" -gt 0 ]
		[ "$record" -gt "$norecord" ]
		# Its two parts make the whole (each rounded).
		[ $((writer + rest - record)) -le 1 ]
		[ $((record - writer - rest)) -le 1 ]
	done
	assert_nothing_mounted
	[ ! -e "$TMP/bw" ]
	run "$SCRIPTS/bench-writer" -n 0
	[ "$status" -eq 2 ]
	[ "$output" = "bench-writer: -n: not a positive whole number: 0" ]
	PROVFS=/bin/false run "$SCRIPTS/bench-writer" -n 10 -d "$TMP/bw"
	[ "$status" -eq 2 ]
	[ "$output" = "bench-writer: record: the daemon did not mount: it exited without a word" ]
	[ ! -e "$TMP/bw" ]
}

@test "scripts/bench-writer with its mount held busy at the end of a mode: one line, exit 2, nothing left mounted (it used to wait for ever)" {
	needs_fuse
	command -v valgrind >/dev/null || skip "needs valgrind (scripts/install-deps installs it)"
	local mnt=$TMP/bw/mnt
	# A process whose directory is in the mount, as a shell's can be.
	(
		for _ in $(seq 600); do mountpoint -q "$mnt" && break; sleep 0.1; done
		cd "$mnt" || exit 1
		for _ in $(seq 600); do [ -e "$TMP/release" ] && break; sleep 0.1; done
	) &
	local holder=$!
	run timeout 180 "$SCRIPTS/bench-writer" -n 5 -d "$TMP/bw"
	touch "$TMP/release"
	wait "$holder"
	echo "$output"
	[ "$status" -eq 2 ]
	[ "${lines[-1]}" = "bench-writer: record: cannot unmount $mnt: busy for 5 s" ]
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

# ---------------------------------------------------------------- retention: prune

# A night through a real mount: the CRM export written twice (the first
# version nobody read), a scratch file made and removed, features built from
# the export, a model trained on the features.
prune_scenario() {
	mount_provfs
	mkdir -p "$MNT/raw" "$MNT/features" "$MNT/models"
	cat >"$MNT/features.py" <<-'EOF2'
		rows = open("raw/export.csv").read().splitlines()[1:]
		with open("features/f.csv", "w") as out:
		    out.write("id,f\n")
		    for row in rows:
		        i, v = row.split(",")
		        out.write(f"{i},{int(v) * 2}\n")
	EOF2
	cat >"$MNT/train.py" <<-'EOF2'
		data = open("features/f.csv").read()
		open("models/model.bin", "w").write("MODEL:" + str(len(data)) + "\n")
	EOF2
	(
		cd "$MNT"
		set -e
		PROVFS_JOB=etl sh -c 'printf "id,v\n1,1\n" > raw/export.csv'
		PROVFS_JOB=etl sh -c 'printf "id,v\n1,2\n2,3\n" > raw/export.csv'
		PROVFS_JOB=scratch sh -c 'echo tmp > scratch.txt && cat scratch.txt >/dev/null && rm scratch.txt'
		PROVFS_JOB=features "$PYTHON" features.py
		PROVFS_JOB=train "$PYTHON" train.py
	)
	# The writer commits every 100 ms: wait for the model's hashed version.
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
		WHERE f.path = 'models/model.bin' AND v.hash_state = 'hashed'\")\" = 1 ]" 10
	wait_until "[ \"\$(q \"SELECT count(*) FROM versions WHERE hash_state = 'pending'\")\" = 0 ]" 10
	# ... and for the jobs' exits (the process watcher reads them in batches).
	wait_until "[ \"\$(q \"SELECT count(*) FROM runs WHERE job_name = 'train' AND ended_ns IS NULL\")\" = 0 ]" 10
}

# pq ARGS...: provfs-query on the test's store, stdout and stderr apart.
pq() {
	run_split "$QUERY" --store "$STORE" "$@"
}

assert_consistent() {
	assert_equal "$(q 'PRAGMA integrity_check')" "ok"
	assert_equal "$(q 'PRAGMA foreign_key_check')" ""
}

@test "prune: the model's producer is still the training job with its inputs and hashes, while the mount records" {
	needs_fuse
	prune_scenario
	pq producer "$MNT/models/model.bin" --format json
	[ "$status" -eq 0 ]
	local producer_before=$stdout
	pq lineage "$MNT/models/model.bin" --format json
	local lineage_before=$stdout
	[[ "$producer_before" == *'"job":"train"'* ]]
	[[ "$producer_before" == *"$(xxh "$BACKING/features/f.csv")"* ]]
	[ "$(q "SELECT count(*) FROM versions WHERE file_id = ($(file_id_sql raw/export.csv))")" -eq 2 ]
	[ "$(q "SELECT count(*) FROM files WHERE path = 'scratch.txt'")" -eq 1 ]
	# The mount keeps recording while prune runs.
	mkdir "$MNT/during"
	start_background env PROVFS_JOB=during sh -c \
		'for i in $(seq 300); do echo "$i" > "$1/during/f$i"; cat "$1/during/f$i" >/dev/null; done' \
		sh "$MNT"
	local writer=$LAST_BG
	pq prune --before now
	echo "$stdout$stderr"
	[ "$status" -eq 0 ]
	[ -z "$stderr" ]
	assert_match "$stdout" "versions +[1-9][0-9]* +[0-9]"
	assert_match "$stdout" "files +[1-9][0-9]* +[0-9]"
	# Every text line fits 80 columns.
	[ "$(printf '%s\n' "$stdout" | awk 'length > 80' | wc -l)" -eq 0 ]
	wait "$writer"
	# The lineage of what exists is whole: the same answers as before.
	pq producer "$MNT/models/model.bin" --format json
	[ "$status" -eq 0 ]
	assert_equal "$stdout" "$producer_before"
	pq lineage "$MNT/models/model.bin" --format json
	assert_equal "$stdout" "$lineage_before"
	# What nothing needs is gone: the export's unread first version, the scratch file.
	assert_sql "SELECT number FROM versions WHERE file_id = ($(file_id_sql raw/export.csv))" "2"
	assert_sql "SELECT count(*) FROM files WHERE path = 'scratch.txt'" "0"
	assert_consistent
	stop_provfs
	# Every open made during the prune was recorded, nothing lost.
	assert_sql "SELECT count(DISTINCT file_id) FROM accesses WHERE path LIKE 'during/f%'" "300"
	assert_sql "SELECT count(*) FROM versions v JOIN files f ON f.id = v.file_id
	            WHERE f.path LIKE 'during/f%' AND v.hash_state = 'hashed'" "300"
	assert_sql "SELECT sum(events_lost) FROM recorder_stats" "0"
	assert_consistent
}

@test "prune: keeps denials and declassifications younger than --keep-audit, undelivered OpenLineage events, each file's label" {
	needs_fuse
	prune_scenario
	stop_provfs
	local day=$((86400 * 1000000000)) now file process session run
	now=$(date +%s%N)
	file=$(q "SELECT id FROM files WHERE path = 'models/model.bin'")
	process=$(q "SELECT producer_process_id FROM versions WHERE file_id = $file")
	session=$(q "SELECT max(id) FROM mount_sessions")
	run=$(q "SELECT run_id FROM processes WHERE id = $process")
	q "INSERT INTO denials (process_id, file_id, mount_session_id, path, uid, label, clearance, rule, time_ns) VALUES
	   ($process, $file, $session, 'models/model.bin', 1000, 'restricted', 'internal', 'old', $((now - 700 * day))),
	   ($process, $file, $session, 'models/model.bin', 1000, 'restricted', 'internal', 'recent', $((now - 100 * day)));
	   INSERT INTO label_changes (file_id, level, forced, reason, uid, time_ns) VALUES
	   ($file, 'public', 1, 'old declassification', 0, $((now - 700 * day))),
	   ($file, 'internal', 1, 'recent declassification', 0, $((now - 100 * day))),
	   ($file, 'confidential', 0, 'old label', 0, $((now - 600 * day))),
	   ($file, 'restricted', 0, 'current label', 0, $((now - 500 * day)));
	   INSERT INTO openlineage_outbox (run_id, event_type, event, created_ns, delivered_ns) VALUES
	   ($run, 'COMPLETE', '{}', $((now - 400 * day)), $((now - 400 * day))),
	   ($run, 'COMPLETE', '{}', $((now - 400 * day)), NULL);"
	pq prune --before 1d
	[ "$status" -eq 0 ]
	assert_sql "SELECT rule FROM denials ORDER BY id" "recent"
	assert_sql "SELECT reason FROM label_changes ORDER BY id" "recent declassification
current label"
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL" "1"
	assert_sql "SELECT count(*) FROM openlineage_outbox" "1"
	assert_sql "SELECT count(*) FROM runs WHERE id = $run" "1"
	# A shorter audit period lets the recent ones go too, but never the
	# file's current label nor the undelivered event.
	pq prune --before 1d --keep-audit 30d
	[ "$status" -eq 0 ]
	assert_sql "SELECT count(*) FROM denials" "0"
	assert_sql "SELECT reason FROM label_changes" "current label"
	assert_sql "SELECT count(*) FROM openlineage_outbox" "1"
	assert_consistent
}

@test "prune: --dry-run reports what a prune removes and removes nothing" {
	needs_fuse
	prune_scenario
	stop_provfs
	local counts
	counts=$(q "SELECT (SELECT count(*) FROM accesses), (SELECT count(*) FROM versions),
	            (SELECT count(*) FROM files), (SELECT count(*) FROM processes)")
	pq prune --before now --dry-run --format json
	[ "$status" -eq 0 ]
	local would=$stdout
	assert_equal "$(q "SELECT (SELECT count(*) FROM accesses), (SELECT count(*) FROM versions),
	            (SELECT count(*) FROM files), (SELECT count(*) FROM processes)")" "$counts"
	pq prune --before now --format json
	[ "$status" -eq 0 ]
	# The same counts, apart from dry_run and the sizes.
	assert_equal "$(printf '%s' "$would" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tables"])')" \
		"$(printf '%s' "$stdout" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["tables"])')"
	[[ "$would" == *'"dry_run":true'* ]]
}

@test "prune: the space comes back (incremental vacuum on a store the daemon created; reuse on an older one)" {
	needs_fuse
	prune_scenario
	stop_provfs
	assert_sql "PRAGMA auto_vacuum" "2"
	# Bulk the store up with records nothing needs: a removed file's many versions.
	q "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000)
	   INSERT INTO files (host, device, inode, generation, backing_dir, path, first_seen_ns, removed_ns)
	   SELECT 'h', 1, 900000 + i, 0, '/x', 'bulk/' || i || '-' || hex(randomblob(40)), 1, 2 FROM n"
	local pages_before
	pages_before=$(q "PRAGMA page_count")
	pq prune --before 1d
	[ "$status" -eq 0 ]
	[[ "$stdout" == *"files "*"20,000"* ]]
	[ "$(q "PRAGMA page_count")" -lt $((pages_before / 2)) ]
	assert_sql "PRAGMA freelist_count" "0"
	assert_consistent
	# A store made before auto_vacuum was set: the pages stay for reuse, and prune says so.
	sqlite3 "$STORE" "PRAGMA auto_vacuum = NONE; VACUUM"
	assert_sql "PRAGMA auto_vacuum" "0"
	q "INSERT INTO files (host, device, inode, generation, backing_dir, path, first_seen_ns, removed_ns)
	   VALUES ('h', 1, 1, 0, '/x', 'bulk/again', 1, 2)"
	pq prune --before 1d
	[ "$status" -eq 0 ]
	[[ "$stdout" == *"auto_vacuum is off in this older store"* ]]
	assert_consistent
}

@test "store: a burst recorded while a long query held the store leaves no large WAL behind" {
	needs_fuse
	mount_provfs
	# A reader holding one snapshot (a long provfs-query) keeps every
	# checkpoint from passing it, so the store's WAL grows meanwhile.
	mkfifo "$TMP/go"
	start_background python3 -c '
import sqlite3, sys
reader = sqlite3.connect("file:" + sys.argv[1] + "?mode=ro", uri=True, isolation_level=None)
reader.execute("BEGIN")
reader.execute("SELECT count(*) FROM accesses").fetchone()
open(sys.argv[2] + ".held", "w").close()
open(sys.argv[2]).read()
reader.execute("COMMIT")
' "$STORE" "$TMP/go"
	local reader=$LAST_BG
	wait_for_file "$TMP/go.held"
	mkdir "$MNT/burst"
	local i
	for ((i = 1; i <= 12000; i++)); do
		echo "$i" >"$MNT/burst/f$i"
	done
	local limit=$((16 * 1024 * 1024)) size
	for i in $(seq 100); do
		size=$(stat -c %s "$STORE-wal")
		[ "$size" -gt "$limit" ] && break
		sleep 0.1
	done
	echo "WAL while the reader held its snapshot: $size bytes"
	[ "$size" -gt "$limit" ] # else this test shows nothing
	release "$TMP/go"
	wait "$reader"
	# The next checkpoints pass; the file is trimmed to the limit, not kept.
	for i in $(seq 100); do
		echo "$i" >"$MNT/burst/f$i"
		size=$(stat -c %s "$STORE-wal")
		[ "$size" -le "$limit" ] && break
		sleep 0.1
	done
	echo "WAL after: $size bytes"
	[ "$size" -le "$limit" ]
	stop_provfs
	# Closed by the daemon: everything is in the store file, the WAL empty
	# (kept, for readers of reader_group).
	assert_equal "$(stat -c %s "$STORE-wal")" 0
	assert_sql "PRAGMA integrity_check" "ok"
	assert_sql "SELECT count(*) FROM files WHERE path LIKE 'burst/f%'" 12000
}

@test "prune: a store locked past the busy timeout is one line saying how far prune got; a second run finishes" {
	needs_fuse
	prune_scenario
	stop_provfs
	local held=$TMP/held
	# Another writer holds the write lock longer than the store's busy timeout (5 s).
	start_background "$PYTHON" -c 'import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
open(sys.argv[2], "w").close()
time.sleep(9)' "$STORE" "$held"
	wait_for_file "$held"
	pq prune --before now
	assert_equal "$status" 2
	assert_equal "$stdout" ""
	[ "${#stderr_lines[@]}" -eq 1 ]
	assert_match "$stderr" "^provfs-query: prune: cannot remove rows from store '.*': database is locked \(removed 0 of [1-9][0-9]* rows; the store is consistent, run prune again for the rest\)$"
	kill_tree "$LAST_BG"
	wait "$LAST_BG" 2>/dev/null || true
	assert_consistent
	pq prune --before now --format json
	assert_equal "$status" 0
	assert_consistent
}

@test "prune: bad input is one line and exit 2, and changes nothing" {
	needs_fuse
	prune_scenario
	stop_provfs
	local before
	before=$(q "SELECT count(*) FROM accesses")
	pq prune
	assert_equal "$status" 2
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "provfs-query: prune: --before TIME is required"* ]]
	pq prune --before yesterday
	assert_equal "$status" 2
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "provfs-query: prune: --before: 'yesterday' is not a TIME"* ]]
	pq prune --before 1d --keep-audit soon
	assert_equal "$status" 2
	[[ "$stderr" == "provfs-query: prune: --keep-audit: 'soon' is not a TIME"* ]]
	pq prune --before 2200-01-01
	assert_equal "$status" 2
	[[ "$stderr" == *"is in the future"* ]]
	pq prune --before 1d --depth 2
	assert_equal "$status" 2
	[[ "$stderr" == *"option '--depth' does not apply"* ]]
	pq prune --before 1d extra
	assert_equal "$status" 2
	[[ "$stderr" == *"too many arguments"* ]]
	# Only root prunes.
	ensure_test_users
	chmod 755 "$TMP/store"
	chmod 644 "$STORE"
	local query
	query=$(user_reachable "$QUERY")
	run_split as_user "$U1" "$query" --store "$STORE" prune --before 1d
	assert_equal "$status" 2
	[ "${#stderr_lines[@]}" -eq 1 ]
	[[ "$stderr" == "provfs-query: prune: only root may prune the store" ]]
	assert_equal "$stdout" ""
	assert_equal "$(q "SELECT count(*) FROM accesses")" "$before"
	# No store: said, never created.
	pq prune --before 1d
	run_split "$QUERY" --store "$TMP/none.db" prune --before 1d
	assert_equal "$status" 2
	[[ "$stderr" == *"does not exist"* ]]
	[ ! -e "$TMP/none.db" ]
}

@test "progress: prune shows a bar with counts and rate on a terminal, nothing when piped" {
	[ "$(id -u)" -eq 0 ] || skip "needs root"
	command -v script >/dev/null || skip "script(1) is not installed"
	"$SCRIPTS/gen-store" --pipelines 2 --days 60 --stages 4 --accesses 20000 --retention-days 7 \
		"$TMP/p.db" >/dev/null
	cp "$TMP/p.db" "$TMP/q.db"
	# Piped: the report alone, no carriage return or escape sequence anywhere.
	"$QUERY" --store "$TMP/p.db" prune --before 2026-09-10 >"$TMP/out" 2>"$TMP/err"
	[ ! -s "$TMP/err" ]
	if grep -q $'[\r\e]' "$TMP/out"; then
		echo "control characters in the output"
		false
	fi
	# On a terminal (script(1) gives it one): the bar, erased at the end.
	script -qec "'$QUERY' --store '$TMP/q.db' prune --before 2026-09-10" "$TMP/typescript" >/dev/null
	tr '\r' '\n' <"$TMP/typescript" >"$TMP/screen"
	grep -Eq 'prune: lineage to keep [0-9,]+ records  [0-9,]+/s' "$TMP/screen"
	grep -Eq 'prune: removing \[[#.]{20}\] [0-9,]+/[0-9,]+ rows  [0-9,]+/s' "$TMP/screen"
	# Every drawn line fits 80 columns.
	[ "$(grep -v '^Script ' "$TMP/screen" | sed 's/\x1b\[K//g' | awk 'length > 80' | wc -l)" -eq 0 ]
}

# ---------------------------------------------------------------- install, service, fstab, man

BUILD=${PROVFS_BUILD_ROOT:-/work/main/build}

# The build's install directories: PREFIX BINDIR SBINDIR MANDIR DATADIR UNITDIR HELPERDIR.
install_dirs() {
	meson introspect "$BUILD" --buildoptions | "$PYTHON" -c '
import json, sys
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
unit = o["systemd_unit_dir"] or o["prefix"] + "/lib/systemd/system"
print(o["prefix"], o["bindir"], o["sbindir"], o["mandir"], o["datadir"], unit, o["mount_helper_dir"])'
}

stage_install() {
	DEST=$TMP/dest
	meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$TMP/install.log" 2>&1 || {
		cat "$TMP/install.log"
		return 1
	}
	read -r PREFIX BINDIR SBINDIR MANDIR DATADIR UNITDIR HELPERDIR < <(install_dirs)
}

@test "install: meson install into a DESTDIR puts programs, man pages, unit, helper and example config in place" {
	stage_install
	local sbin=$DEST$PREFIX/$SBINDIR bin=$DEST$PREFIX/$BINDIR man=$DEST$PREFIX/$MANDIR
	[ -x "$sbin/provfs" ]
	[ -x "$bin/provfs-query" ]
	[ ! -e "$bin/provfs" ]
	# provfs-label, once built, is an administrator's program too.
	if [ -e "$BUILD/provfs-label" ]; then
		[ -x "$sbin/provfs-label" ]
	fi
	[ -f "$man/man8/provfs.8" ]
	[ -f "$man/man1/provfs-query.1" ]
	[ -f "$man/man8/provfs-label.8" ]
	[ -f "$man/man5/provfs.conf.5" ]
	# The unit and the helper run the installed provfs by its absolute path.
	grep -qx "ExecStart=$PREFIX/$SBINDIR/provfs -o config=/etc/provfs/%I.conf %f %f" \
		"$DEST$UNITDIR/provfs@.service"
	[ -x "$DEST$HELPERDIR/mount.fuse.provfs" ]
	grep -qx "PROVFS=$PREFIX/$SBINDIR/provfs" "$DEST$HELPERDIR/mount.fuse.provfs"
	# The example configuration, valid as it stands, owned by root, 0644.
	cmp "$PROVFS_SOURCE_ROOT/provfs.conf" "$DEST/etc/provfs/provfs.conf"
	cmp "$PROVFS_SOURCE_ROOT/provfs.conf" "$DEST$PREFIX/$DATADIR/doc/provfs/provfs.conf.example"
	assert_equal "$(stat -c '%U %a' "$DEST/etc/provfs/provfs.conf")" "root 644"
	run "$sbin/provfs" --check-config "$DEST/etc/provfs/provfs.conf"
	[ "$status" -eq 0 ]
	# Nothing outside the DESTDIR's tree of known places.
	run sh -c "cd '$DEST' && find . -type f | sort"
	local f
	for f in "${lines[@]}"; do
		case $f in
		./etc/provfs/provfs.conf | ".$PREFIX/"* | ".$HELPERDIR/mount.fuse.provfs") ;;
		*) echo "unexpected file $f" >&2; return 1 ;;
		esac
	done
	# An administrator's configuration is never replaced.
	echo "; edited by the administrator" >>"$DEST/etc/provfs/provfs.conf"
	cp "$DEST/etc/provfs/provfs.conf" "$TMP/edited.conf"
	meson install -C "$BUILD" --no-rebuild --destdir "$DEST" >"$TMP/install2.log" 2>&1
	cmp "$TMP/edited.conf" "$DEST/etc/provfs/provfs.conf"
}

@test "--version: provfs and provfs-query print their version and the store schema version" {
	local schema version
	schema=$(sed -n 's/^#define STORE_SCHEMA_VERSION \([0-9]*\)$/\1/p' "$PROVFS_SOURCE_ROOT/include/store.h")
	version=$(meson introspect "$BUILD" --projectinfo | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["version"])')
	run "$PROVFS" --version
	[ "$status" -eq 0 ]
	[[ "$output" == "provfs $version (store schema $schema, libfuse "*")" ]]
	run "$QUERY" --version
	[ "$status" -eq 0 ]
	assert_equal "$output" "provfs-query $version (store schema $schema)"
}

@test "--help: every option of provfs and provfs-query is listed, in 80 columns" {
	run "$QUERY" --help
	[ "$status" -eq 0 ]
	local option
	for option in --store --config --format --depth --at --version --hash --since --job --all \
		--under --run --before --keep-audit --dry-run --help; do
		[[ "$output" == *"$option"* ]] || { echo "provfs-query --help lacks $option" >&2; return 1; }
	done
	printf '%s\n' "$output" | awk 'length > 80 { print "too wide: " $0; bad = 1 } END { exit bad }' >&2
	run "$PROVFS" --help
	[ "$status" -eq 0 ]
	for option in -f -d config= store= norecord nopolicy writeback_cache --check-config --help --version; do
		[[ "$output" == *"$option"* ]] || { echo "provfs --help lacks $option" >&2; return 1; }
	done
	printf '%s\n' "$output" | awk 'length > 80 { print "too wide: " $0; bad = 1 } END { exit bad }' >&2
}

@test "man pages render at 80 columns without warnings" {
	command -v man >/dev/null || skip "man is not installed"
	local page err
	for page in provfs.8 provfs-query.1 provfs-label.8 provfs.conf.5; do
		err=$(MANWIDTH=80 man --warnings -l "$PROVFS_SOURCE_ROOT/docs/man/$page" 2>&1 >"$TMP/page")
		[ -z "$err" ] || { echo "$page: $err" >&2; return 1; }
		[ -s "$TMP/page" ]
		# Columns, not bytes: man may hyphenate with U+2010 (mawk counts bytes).
		[ "$(LC_ALL=C.UTF-8 wc -L <"$TMP/page")" -le 80 ] || { echo "$page is wider than 80 columns" >&2; return 1; }
	done
}

@test "systemd: provfs@.service passes systemd-analyze verify" {
	command -v systemd-analyze >/dev/null || skip "systemd-analyze is not installed"
	stage_install
	# Verify an instance of the staged unit, pointed at the staged program and
	# man pages (verify checks that both exist).
	mkdir -p "$TMP/units"
	sed "s|$PREFIX/$SBINDIR/provfs|$DEST$PREFIX/$SBINDIR/provfs|" "$DEST$UNITDIR/provfs@.service" \
		>"$TMP/units/provfs@data.service"
	run env MANPATH="$DEST$PREFIX/$MANDIR" systemd-analyze verify "$TMP/units/provfs@data.service"
	echo "$output"
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

# unit_words KEY INSTANCE: the words of the unit's KEY= line for INSTANCE, one
# per line, as systemd would run them: quotes removed, %I and %f replaced,
# the program the one built, configs in $TMP/conf instead of /etc/provfs.
unit_words() {
	local path
	path=$(systemd-escape --unescape --path "$2")
	sed -n "s/^$1=//p" "$DEST$UNITDIR/provfs@.service" |
		sed "s|$PREFIX/$SBINDIR/provfs|$PROVFS|; s|/etc/provfs/%I.conf|$TMP/conf/%I.conf|" |
		"$PYTHON" -c '
import shlex, sys
words = shlex.split(sys.stdin.read())
print("\n".join(w.replace("%I", sys.argv[1]).replace("%f", sys.argv[2]) for w in words))' \
			"$(systemd-escape --unescape "$2")" "$path"
}

# run_unit KEY INSTANCE: run that command.
run_unit() {
	local words
	mapfile -t words < <(unit_words "$1" "$2")
	"${words[@]}"
}

@test "systemd: the unit's commands mount the instance's directory in place, stop cleanly, and restart after a crash with the store intact" {
	needs_fuse
	command -v systemd-escape >/dev/null || skip "systemd-escape is not installed"
	stage_install
	local data=$TMP/data instance pid
	mkdir -p "$data" "$TMP/conf"
	echo "before" >"$data/kept.txt"
	instance=$(systemd-escape --path "$data")
	# The configuration is named by the unescaped instance (%I): the path
	# without its leading slash.
	mkdir -p "$(dirname "$TMP/conf/${data#/}.conf")"
	assert_equal "$(systemd-escape --unescape "$instance")" "${data#/}"
	printf '[store]\npath = %s\n' "$STORE" >"$TMP/conf/${data#/}.conf"
	assert_equal "$(unit_words ExecStart "$instance" | paste -sd ' ')" \
		"$PROVFS -o config=$TMP/conf/${data#/}.conf $data $data"
	# Type=forking: the command returns once mounted.
	run_unit ExecStartPre "$instance"
	run_unit ExecStart "$instance"
	is_mounted "$data"
	(cd "$data" && PROVFS_JOB=service sh -c 'cat kept.txt > copy.txt')
	# systemctl stop: SIGTERM to the main process; it unmounts and writes the queue.
	pid=$(provfs_pids "$data")
	kill -TERM "$pid"
	wait_unmounted "$data"
	wait_pids_gone "$pid"
	assert_sql "SELECT count(*) FROM accesses WHERE path = 'copy.txt'" "1"
	assert_sql "SELECT count(*) FROM mount_sessions WHERE stopped_ns IS NULL" "0"
	# A crash leaves a stale mount; Restart=on-failure runs ExecStartPre, then ExecStart.
	run_unit ExecStart "$instance"
	(cd "$data" && PROVFS_JOB=service sh -c 'cat copy.txt > copy2.txt')
	wait_until "[ \"\$(q \"SELECT count(*) FROM accesses WHERE path = 'copy2.txt'\")\" = 1 ]" 10
	pid=$(provfs_pids "$data")
	kill -KILL "$pid"
	wait_pids_gone "$pid"
	run stat "$data"
	[ "$status" -ne 0 ]
	run_unit ExecStartPre "$instance"
	run_unit ExecStart "$instance"
	is_mounted "$data"
	[ "$(cat "$data/copy2.txt")" = "before" ]
	assert_equal "$(q 'PRAGMA integrity_check')" "ok"
	assert_sql "SELECT count(DISTINCT file_id) FROM accesses WHERE written_version_id IS NOT NULL
	            AND path IN ('copy.txt', 'copy2.txt')" "2"
	# ExecStartPre leaves a live mount alone.
	run_unit ExecStartPre "$instance"
	is_mounted "$data"
	unmount_provfs "$data"
}

@test "fstab: mount -t fuse.provfs and an fstab line mount through mount.fuse.provfs; umount unmounts" {
	needs_fuse
	stage_install
	# mount(8) looks for /sbin/mount.fuse.provfs: in a private mount namespace,
	# the staged helper (pointed at this build's provfs) is laid over /usr/sbin.
	mkdir -p "$TMP/helper" "$TMP/data" "$TMP/data2" "$TMP/conf"
	sed "s|^PROVFS=.*|PROVFS=$PROVFS|" "$DEST$HELPERDIR/mount.fuse.provfs" >"$TMP/helper/mount.fuse.provfs"
	chmod 755 "$TMP/helper/mount.fuse.provfs"
	printf '[store]\npath = %s\n' "$STORE" >"$TMP/conf/data.conf"
	echo "x" >"$TMP/data/in.txt"
	echo "y" >"$TMP/data2/in.txt"
	cat /etc/fstab >"$TMP/fstab"
	# With access-time words as fstab lines for ext4 carry them (libfuse 3.14
	# refused relatime: such a line did not mount).
	echo "$TMP/data2 $TMP/data2 fuse.provfs config=$TMP/conf/data.conf,noauto,nofail,nosuid,relatime,nodiratime,lazytime,x-systemd.requires=local-fs.target 0 0" >>"$TMP/fstab"
	cat >"$TMP/ns.sh" <<-EOF2
		set -e
		sbin=\$(readlink -f /sbin)
		mount -t overlay overlay -o "lowerdir=$TMP/helper:\$sbin" "\$sbin"
		mount --bind "$TMP/fstab" /etc/fstab
		mount -t fuse.provfs "$TMP/data" "$TMP/data" -o "config=$TMP/conf/data.conf"
		grep -q " $TMP/data fuse.provfs " /proc/self/mounts
		# mount(8)'s defaults, as for any other filesystem: dev and suid.
		# (Under set -e a negated command never fails the script: if, exit.)
		if grep " $TMP/data fuse.provfs " /proc/self/mounts | grep -Eq 'nodev|nosuid'; then
			echo "nodev or nosuid on $TMP/data"; exit 1
		fi
		# A remount changes the flags; no second daemon, no second mount.
		mount -o remount,ro "$TMP/data"
		grep " $TMP/data fuse.provfs " /proc/self/mounts | grep -q ' ro,'
		if (echo z >"$TMP/data/refused.txt") 2>/dev/null; then
			echo "a read-only remount took a write"; exit 1
		fi
		mount -o remount,rw "$TMP/data"
		[ "\$(grep -c " $TMP/data fuse.provfs " /proc/self/mounts)" -eq 1 ]
		(cd "$TMP/data" && PROVFS_JOB=fstab cat in.txt > out.txt)
		mount "$TMP/data2"
		grep -q " $TMP/data2 fuse.provfs " /proc/self/mounts
		grep " $TMP/data2 fuse.provfs " /proc/self/mounts | grep -q nosuid
		grep " $TMP/data2 fuse.provfs " /proc/self/mounts | grep -q relatime
		grep " $TMP/data2 fuse.provfs " /proc/self/mounts | grep -q nodiratime
		if grep " $TMP/data2 fuse.provfs " /proc/self/mounts | grep -q nodev; then
			echo "nodev on $TMP/data2"; exit 1
		fi
		(cd "$TMP/data2" && PROVFS_JOB=fstab cat in.txt > out2.txt)
		umount "$TMP/data"
		umount "$TMP/data2"
		# (Only this test's: the namespace began with a copy of every mount
		# the machine had, another provfs mount among them perhaps.)
		if grep -Eq " $TMP/data2? fuse.provfs " /proc/self/mounts; then
			echo "still mounted"; exit 1
		fi
		echo done
	EOF2
	run timeout 60 unshare -m --propagation private sh "$TMP/ns.sh"
	echo "$output"
	[ "$status" -eq 0 ]
	[[ "$output" == *done* ]]
	assert_nothing_mounted
	assert_sql "SELECT count(*) FROM accesses WHERE path IN ('out.txt', 'out2.txt')" "2"
	# Bad use of the helper: one line, exit 2.
	run "$TMP/helper/mount.fuse.provfs" "$TMP/data"
	[ "$status" -eq 2 ]
	[ "${#lines[@]}" -eq 1 ]
	run "$TMP/helper/mount.fuse.provfs" "$TMP/data" "$TMP/data" -o
	[ "$status" -eq 2 ]
	[[ "$output" == "mount.fuse.provfs: option '-o' needs a value" ]]
}

# ---------------------------------------------------------------- the lineage picture

@test "lineage DOT: data flows forward, files and processes apart, runs in labeled clusters, page-shaped, labels with a legend" {
	needs_fuse
	command -v dot >/dev/null || skip "graphviz not installed"
	prune_scenario
	stop_provfs
	local model export features producer
	model=$(q "SELECT v.id FROM versions v JOIN files f ON f.id = v.file_id WHERE f.path = 'models/model.bin'")
	features=$(q "SELECT max(v.id) FROM versions v JOIN files f ON f.id = v.file_id WHERE f.path = 'features/f.csv'")
	export=$(q "SELECT max(v.id) FROM versions v JOIN files f ON f.id = v.file_id WHERE f.path = 'raw/export.csv'")
	pq lineage "$MNT/models/model.bin" --format dot
	[ "$status" -eq 0 ]
	local graph=$stdout
	# Edges run from inputs to processes to outputs: the model is only ever a
	# head; into the export comes one edge, from the ETL's sh that wrote it,
	# and from it one goes on to the features job.
	[[ "$graph" =~ p[0-9]+\ -\>\ v$model\  ]]
	[[ ! "$graph" =~ v$model\ -\> ]]
	[[ "$graph" =~ v$export\ -\>\ p[0-9]+ ]]
	producer=$(q "SELECT producer_process_id FROM versions WHERE id = $export")
	[ "$(q "SELECT r.job_name FROM processes p JOIN runs r ON r.id = p.run_id WHERE p.id = $producer")" = etl ]
	[ "$(printf '%s\n' "$graph" | grep -c -- "-> v$export ")" -eq 1 ]
	[[ "$graph" == *"p$producer -> v$export "* ]]
	[[ "$graph" =~ v$features\ -\>\ p[0-9]+ ]]
	[[ "$graph" =~ p[0-9]+\ -\>\ v$features\  ]]
	# PROV's relation stays on each edge, as its tooltip.
	[[ "$graph" == *'tooltip="used"'* ]]
	[[ "$graph" == *'tooltip="wasGeneratedBy"'* ]]
	# Files are notes, processes rounded boxes; each run is a cluster named by its job.
	[[ "$graph" =~ v$model\ \[shape=note ]]
	[[ "$graph" =~ p[0-9]+\ \[shape=box,\ style=\"rounded,filled\" ]]
	[[ "$graph" == *'subgraph "cluster_run_'* ]]
	[[ "$graph" == *'job train\nrun '* ]]
	[[ "$graph" == *'job features\nrun '* ]]
	# Version and short hash on each file.
	local hash
	hash=$(xxh "$BACKING/models/model.bin")
	[[ "$graph" == *"models/model.bin\\nv1  ${hash:0:12}"* ]]
	# No more than about 3:1 either way (dot -Tplain: "graph SCALE WIDTH HEIGHT").
	local size
	size=$(printf '%s\n' "$graph" | dot -Tplain | head -n 1)
	"$PYTHON" -c 'import sys; _, _, w, h = sys.argv[1].split(); w, h = float(w), float(h); sys.exit(0 if max(w / h, h / w) <= 3.2 else 1)' "$size" ||
		{ echo "not page-shaped: $size" >&2; return 1; }
	[[ "$graph" != *cluster_legend* ]]
	# Labels color the files, with a legend; a version changed outside
	# provfs and an unhashed one stand out.
	q "UPDATE versions SET label = 'confidential' WHERE id = $export;
	   UPDATE versions SET label = 'restricted' WHERE id IN ($features, $model);
	   UPDATE versions SET origin = 'external' WHERE id = $export"
	q "UPDATE versions SET hash = NULL, hash_state = 'failed'
	   WHERE id = (SELECT max(v.id) FROM versions v JOIN files f ON f.id = v.file_id
	               WHERE f.path = 'train.py')"
	pq lineage "$MNT/models/model.bin" --format dot
	[ "$status" -eq 0 ]
	graph=$stdout
	[[ "$graph" =~ v$model\ \[shape=note,\ style=\"filled\",\ fillcolor=\"#f4cccc\" ]]
	[[ "$graph" =~ v$export\ \[shape=note,\ style=\"filled\",\ fillcolor=\"#fce5cd\",\ color=\"#cc0000\" ]]
	[[ "$graph" == *"CHANGED OUTSIDE PROVFS"* ]]
	[[ "$graph" == *'style="filled,dashed"'*'not hashed'* ]]
	[[ "$graph" == *cluster_legend*'label="confidential"'*'label="restricted"'*'changed outside provfs'* ]]
	printf '%s\n' "$graph" | dot -Tsvg >/dev/null
}
