#!/usr/bin/env bats
# openlineage.bats - provfs's lineage in the open standards, through real
# mounts: OpenLineage RunEvents exported (provfs-query export) and delivered
# live from the store's outbox (transport = file, and http to a receiver
# written here, on 127.0.0.1), and W3C PROV (PROV-JSON, PROV-O).
#
# Validation is offline and real: every event against OpenLineage's JSON
# Schemas and every facet against its own (openlineage_check.py, Debian's
# python3-jsonschema); PROV documents through python3-prov and
# python3-rdflib with the PROV-CONSTRAINTS that apply (prov_check.py).

load helpers
load recorder_helpers

bats_require_minimum_version 1.5.0

QUERY=${PROVFS_QUERY:-${PROVFS_BUILD_ROOT:-/work/main/build}/provfs-query}
# The OpenLineage project's schemas, in shared/ beside the checkout (as CI
# lays it out), else where the developers' machines keep it.
if [ -z "${OPENLINEAGE_SCHEMAS:-}" ] && [ -f "$PROVFS_SOURCE_ROOT/../shared/schemas/openlineage/OpenLineage.json" ]; then
	OPENLINEAGE_SCHEMAS=$PROVFS_SOURCE_ROOT/../shared/schemas/openlineage
fi
OL_SCHEMAS=${OPENLINEAGE_SCHEMAS:-/work/shared/schemas/openlineage}
# W3C's PROV XML Schema (prov.xsd and the prov-core, prov-dictionary and
# prov-links schemas it includes, unchanged from www.w3.org/ns/), in shared/
# beside the checkout like the OpenLineage schemas.  prov-core.xsd imports
# W3C's schema of the xml: namespace from the network: Debian's
# xmltooling-schemas has W3C's file, and prov_check.py maps the import to it.
if [ -z "${PROV_XSD:-}" ] && [ -f "$PROVFS_SOURCE_ROOT/../shared/schemas/prov/prov.xsd" ]; then
	PROV_XSD=$PROVFS_SOURCE_ROOT/../shared/schemas/prov
fi
PROV_XSD=${PROV_XSD:-/work/shared/schemas/prov}
XML_XSD=${XML_XSD:-/usr/share/xml/xmltooling/xml.xsd}
HERE=$PROVFS_SOURCE_ROOT/tests/bats

setup() {
	if [ "$(id -u)" -ne 0 ] || [ ! -c /dev/fuse ]; then
		skip "needs root and /dev/fuse"
	fi
	common_setup
	chmod 700 "$BACKING"
	CONF=$TMP/provfs.conf
	PARENT_RUN=0190b5c4-3b1f-7c4e-9a51-8f4e2d7b6a10
}

teardown() {
	common_teardown
}

conf() {
	printf '%s\n' "$@" >"$CONF"
	chown root:root "$CONF"
	chmod 644 "$CONF"
}

ol_check() {
	if [ ! -f "$OL_SCHEMAS/OpenLineage.json" ]; then
		echo "OpenLineage schemas not found in $OL_SCHEMAS (set OPENLINEAGE_SCHEMAS)" >&2
		return 1
	fi
	/usr/bin/python3 "$HERE/openlineage_check.py" "$OL_SCHEMAS" "$PROVFS_SOURCE_ROOT/schemas" "$1"
}

# prov_check DOC.json DOC.ttl: prov_check.py, with the PROV-XML validated by
# xmllint against W3C's PROV XSD when it is here.
prov_check() {
	if [ -f "$PROV_XSD/prov.xsd" ]; then
		/usr/bin/python3 "$HERE/prov_check.py" "$1" "$2" "$PROV_XSD" "$XML_XSD"
	else
		echo "# PROV-XML not validated with xmllint: no W3C PROV XSD in $PROV_XSD" >&3
		/usr/bin/python3 "$HERE/prov_check.py" "$1" "$2"
	fi
}

# The jobs every export test looks at, run in $MNT.
run_jobs() {
	(
		cd "$MNT" || exit 1
		PROVFS_JOB=ingest sh -c 'printf "id,v\n1,2\n" >raw.csv; echo old >report.txt; echo x >scratch'
		PROVFS_JOB=etl OPENLINEAGE_PARENT_JOB_NAMESPACE=airflow \
			OPENLINEAGE_PARENT_JOB_NAME=dag.task OPENLINEAGE_PARENT_RUN_ID=$PARENT_RUN \
			OPENLINEAGE_PARENT_ID=airflow/dag.task/$PARENT_RUN \
			sh -c 'cat raw.csv >out.tmp && mv out.tmp out.csv && echo new >report.txt && rm scratch'
		PROVFS_JOB=fails sh -c 'cat out.csv >f.txt; exit 3' || true
		PROVFS_JOB=killed sh -c 'cat out.csv >k.txt; kill -KILL $$' || true
	)
}

# py CODE: run python with the export in E (a list of events) and the environment.
py() {
	EVENTS=$1 /usr/bin/python3 -c "
import json, os, re, sys
E = [json.loads(l) for l in open(os.environ['EVENTS'])]
def of(job, kind=None):
    return [e for e in E if e['job']['name'] == job and (kind is None or e['eventType'] == kind)]
def one(job, kind):
    found = of(job, kind)
    assert len(found) == 1, (job, kind, [e['eventType'] for e in of(job)])
    return found[0]
def ds(event, side, name):
    found = [d for d in event[side] if d['name'] == name]
    assert found, (side, name, [d['name'] for d in event[side]])
    return found[0]
$2"
}

@test "export --format openlineage: START and COMPLETE/FAIL/ABORT per run, every event and facet valid" {
	conf '[openlineage]' 'namespace = team-ns' 'dataset_namespace = file://shared-nas' \
		"path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	run_jobs
	stop_provfs
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage >"$TMP/events"
	ol_check "$TMP/events"
	# One JSON document a line, nothing else.
	[ "$(grep -c . "$TMP/events")" -eq "$(wc -l <"$TMP/events")" ]
	local raw_hash out_hash raw_inode version
	raw_hash=$(xxh "$BACKING/raw.csv")
	out_hash=$(xxh "$BACKING/out.csv")
	raw_inode=$(stat -c %i "$BACKING/raw.csv")
	version=$("$PROVFS" --version | awk '{print $2}')
	py "$TMP/events" "
etl = one('etl', 'COMPLETE'); start = one('etl', 'START')
assert start['inputs'] == [] and start['outputs'] == []
assert etl['run']['runId'] == start['run']['runId']
assert etl['job']['namespace'] == 'team-ns'
assert etl['job']['facets']['jobType']['integration'] == 'PROVFS'
assert etl['job']['facets']['jobType']['processingType'] == 'BATCH'
engine = etl['run']['facets']['processing_engine']
assert engine['name'] == 'provfs' and engine['version'] == '$version', engine
for e in of('etl'):
    parent = e['run']['facets']['parent']
    assert parent['run']['runId'] == '$PARENT_RUN', parent
    assert parent['job'] == {'namespace': 'airflow', 'name': 'dag.task'}, parent
    # Named without a root, the parent started the orchestrator's chain: it is the root.
    assert parent['root'] == {'run': {'runId': '$PARENT_RUN'},
                              'job': {'namespace': 'airflow', 'name': 'dag.task'}}, parent
raw = ds(etl, 'inputs', '/data/raw.csv')
assert raw['namespace'] == 'file://shared-nas'
assert raw['facets']['version']['datasetVersion'] == 'xxh3-128:$raw_hash'
assert raw['facets']['datasetType']['datasetType'] == 'FILE'
assert raw['inputFacets']['inputStatistics'] == {**raw['inputFacets']['inputStatistics'], 'size': 9, 'fileCount': 1}
fv = raw['facets']['provfs_fileVersion']
assert fv['inode'] == $raw_inode and fv['version'] == 1 and fv['hashAlgorithm'] == 'xxh3-128', fv
assert fv['hash'] == '$raw_hash' and fv['hashState'] == 'hashed'
assert ds(etl, 'outputs', '/data/out.tmp')['facets']['lifecycleStateChange']['lifecycleStateChange'] == 'CREATE'
renamed = ds(etl, 'outputs', '/data/out.csv')['facets']['lifecycleStateChange']
assert renamed['lifecycleStateChange'] == 'RENAME'
assert renamed['previousIdentifier'] == {'name': '/data/out.tmp', 'namespace': 'file://shared-nas'}
out = ds(etl, 'outputs', '/data/out.tmp')['facets']
# A version gets a version facet exactly when its hash was taken (the recorder may mark a
# version renamed right after its write 'changed': then it has no hash, and no facet).
if out['provfs_fileVersion']['hashState'] == 'hashed':
    assert out['version']['datasetVersion'] == 'xxh3-128:$out_hash'
else:
    assert 'version' not in out and 'hash' not in out['provfs_fileVersion'], out
assert ds(etl, 'outputs', '/data/report.txt')['facets']['lifecycleStateChange']['lifecycleStateChange'] == 'OVERWRITE'
assert ds(etl, 'outputs', '/data/scratch')['facets']['lifecycleStateChange']['lifecycleStateChange'] == 'DROP'
assert ds(etl, 'outputs', '/data/out.tmp')['outputFacets']['outputStatistics']['fileCount'] == 1
process = etl['run']['facets']['provfs_process']
assert process['argv'][:2] == ['sh', '-c'] and process['user'] == 'root', process
assert re.fullmatch(r'[0-9]+@[0-9]+', process['process']) and process['root'] is True
assert process['exitStatus'] == 'exited' and process['exitCode'] == 0
assert process['mountSession']['mountPoint'] == '$MNT'
fails = one('fails', 'FAIL')['run']['facets']['provfs_process']
assert fails['exitCode'] == 3, fails
assert ds(one('fails', 'FAIL'), 'inputs', '/data/out.csv')
killed = one('killed', 'ABORT')['run']['facets']['provfs_process']
assert killed['exitStatus'] == 'killed' and killed['signal'] == 9, killed
assert one('ingest', 'COMPLETE')
assert not any('lineage' in d.get('facets', {}) for e in E for d in e['inputs'] + e['outputs'])
# Runs recorded only as ancestors of the jobs (the test's session, init) never used the mount: no events.
assert {e['job']['name'] for e in E} == {'ingest', 'etl', 'fails', 'killed'}, {e['job']['name'] for e in E}
"
	# --job and --since choose runs.
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job etl >"$TMP/etl"
	[ "$(wc -l <"$TMP/etl")" -eq 2 ]
	py "$TMP/etl" "assert [e['eventType'] for e in E] == ['START', 'COMPLETE']"
	run -0 "$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --since 2099-01-01
	[ -z "$output" ]
}

@test "export: an unknown exit status is COMPLETE with 'unknown'; a label becomes a classification tag" {
	conf '[openlineage]' "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	run_jobs
	stop_provfs
	# The store as it is when the process connector missed an exit, and once labels exist.
	q "UPDATE processes SET exit_known = 0, exit_status = NULL WHERE run_id =
	   (SELECT id FROM runs WHERE job_name = 'fails')"
	q "UPDATE versions SET label = 'confidential' WHERE id = ($(latest_version_of raw.csv))"
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage >"$TMP/events"
	ol_check "$TMP/events"
	py "$TMP/events" "
fails = one('fails', 'COMPLETE')['run']['facets']['provfs_process']
assert fails['exitStatus'] == 'unknown' and 'exitCode' not in fails, fails
raw = ds(one('etl', 'COMPLETE'), 'inputs', '/data/raw.csv')
assert raw['facets']['tags']['tags'] == [{'key': 'classification', 'value': 'confidential', 'source': 'PROVFS'}]
assert raw['facets']['provfs_fileVersion']['label'] == 'confidential'
"
}

@test "parent facet: root from OPENLINEAGE_ROOT_PARENT_* (both forms); none when the root is incomplete" {
	local root_run=0190b5c4-3b1f-7c4e-9a51-8f4e2d7b6a11
	conf '[openlineage]'
	mount_provfs -o "config=$CONF"
	(
		cd "$MNT" || exit 1
		# Airflow's task, below its DAG run, as the provider passes them (separate variables).
		PROVFS_JOB=separate OPENLINEAGE_PARENT_JOB_NAMESPACE=airflow \
			OPENLINEAGE_PARENT_JOB_NAME=dag.task OPENLINEAGE_PARENT_RUN_ID=$PARENT_RUN \
			OPENLINEAGE_ROOT_PARENT_JOB_NAMESPACE=airflow-root OPENLINEAGE_ROOT_PARENT_JOB_NAME=dag \
			OPENLINEAGE_ROOT_PARENT_RUN_ID=$root_run sh -c 'echo 1 >a'
		# As dbt-ol takes them: namespace/job/runId.
		PROVFS_JOB=joined OPENLINEAGE_PARENT_ID=airflow/dag.task/$PARENT_RUN \
			OPENLINEAGE_ROOT_PARENT_ID=airflow-root/dag/$root_run sh -c 'echo 2 >b'
		# A root named in part is no root to claim, and the parent is not it either.
		PROVFS_JOB=partial OPENLINEAGE_PARENT_ID=airflow/dag.task/$PARENT_RUN \
			OPENLINEAGE_ROOT_PARENT_JOB_NAME=dag sh -c 'echo 3 >c'
		# No parent: no facet at all.
		PROVFS_JOB=alone sh -c 'echo 4 >d'
	)
	stop_provfs
	assert_sql "SELECT root_parent_namespace || ' ' || root_parent_job_name || ' ' ||
	            root_parent_run_id FROM runs WHERE job_name = 'separate'" "airflow-root dag $root_run"
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage >"$TMP/events"
	ol_check "$TMP/events"
	py "$TMP/events" "
root = {'run': {'runId': '$root_run'}, 'job': {'namespace': 'airflow-root', 'name': 'dag'}}
for job in ('separate', 'joined'):
    for e in of(job):
        parent = e['run']['facets']['parent']
        assert parent['run'] == {'runId': '$PARENT_RUN'}, parent
        assert parent['job'] == {'namespace': 'airflow', 'name': 'dag.task'}, parent
        assert parent['root'] == root, parent
for e in of('partial'):
    parent = e['run']['facets']['parent']
    assert parent['run'] == {'runId': '$PARENT_RUN'} and 'root' not in parent, parent
for e in of('alone'):
    assert 'parent' not in e['run']['facets'], e['run']['facets']
assert len(of('partial')) == len(of('alone')) == 2
"
}

@test "provfs_fileVersion and PROV say how each hash was taken: streamed or re-read" {
	printf 'seen first\n' >"$BACKING/initial.txt"
	conf '[openlineage]' "path_map = $MNT=/data"
	# A hash is streamed from the writes only when they reach the daemon
	# (kernel passthrough hands writers to the kernel: reread).
	mount_provfs -o "config=$CONF" -o nopassthrough
	(
		cd "$MNT" || exit 1
		# In order from offset 0: hashed from the writes as they pass.  A write
		# at offset 4096 first: the file is read back by the hash pool.
		PROVFS_JOB=hashes sh -c 'seq 1000 >seq.txt
			dd if=/dev/zero of=random.bin bs=1 count=1 seek=4096 status=none
			dd if=/dev/zero of=random.bin bs=4096 count=1 conv=notrunc status=none
			cat initial.txt >/dev/null'
	)
	wait_until '[ "$(q "SELECT count(*) FROM versions WHERE hash_state = '"'pending'"'")" = 0 ]' 30
	stop_provfs
	assert_sql "SELECT hash_method FROM versions WHERE id = ($(latest_version_of seq.txt))" streamed
	assert_sql "SELECT hash_method FROM versions WHERE id = ($(latest_version_of random.bin))" reread
	assert_sql "SELECT origin || ' ' || hash_method FROM versions
	            WHERE id = ($(latest_version_of initial.txt))" "initial reread"
	# The hashes are right however they were taken.
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_of seq.txt))" "$(xxh "$BACKING/seq.txt")"
	assert_sql "SELECT hash FROM versions WHERE id = ($(latest_version_of random.bin))" \
		"$(xxh "$BACKING/random.bin")"
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job hashes >"$TMP/events"
	ol_check "$TMP/events"
	py "$TMP/events" "
done = one('hashes', 'COMPLETE')
fv = lambda side, name: ds(done, side, name)['facets']['provfs_fileVersion']
assert fv('outputs', '/data/seq.txt')['hashMethod'] == 'streamed', fv('outputs', '/data/seq.txt')
# random.bin's first version may have changed before its hash was taken: its last one counts.
last = max((d['facets']['provfs_fileVersion'] for d in done['outputs'] if d['name'] == '/data/random.bin'),
           key=lambda f: f['version'])
assert last['version'] == 2 and last['hashMethod'] == 'reread', last
assert fv('inputs', '/data/initial.txt').get('hashMethod') == 'reread', fv('inputs', '/data/initial.txt')
"
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-json >"$TMP/doc.json"
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-o >"$TMP/doc.ttl"
	prov_check "$TMP/doc.json" "$TMP/doc.ttl"
	/usr/bin/python3 - "$TMP/doc.json" "$TMP/doc.ttl" <<-'EOF'
		import json, sys, rdflib
		E = json.load(open(sys.argv[1]))["entity"]
		method = {(v["provfs:path"], int(v["provfs:version"]["$"])): v.get("provfs:hashMethod")
		          for v in E.values() if "provfs:version" in v}
		assert method[("/data/seq.txt", 1)] == "streamed" and method[("/data/random.bin", 2)] == "reread", method
		g = rdflib.Graph().parse(sys.argv[2], format="turtle")
		P = rdflib.Namespace("https://github.com/provfs/provfs/ns#")
		assert {str(o) for o in g.objects(None, P.hashMethod)} == {"streamed", "reread"}
	EOF
}

@test "a version-2 store is migrated to the current version: what was recorded before stays unknown" {
	sqlite3 "$STORE" <"$PROVFS_SOURCE_ROOT/tests/fixtures/store-schema-v2.sql"
	q "PRAGMA user_version = 2;
	   INSERT INTO runs (id, uuid, job_name, named_by, host, root_pid, root_start_ns, started_ns,
	                     parent_namespace, parent_job_name, parent_run_id)
	   VALUES (1, '0190b5c4-3b1f-7c4e-9a51-8f4e2d7b6a12', 'old', 'PROVFS_JOB', 'h', 1, 1, 1,
	           'airflow', 'dag.task', '$PARENT_RUN');
	   INSERT INTO files (id, host, device, inode, generation, backing_dir, path, first_seen_ns)
	   VALUES (1, 'h', 1, 1, 0, '/nowhere', 'old.txt', 1);
	   INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash, hash_state,
	                         origin, recorded_ns)
	   VALUES (1, 1, 1, 0, 1, 1, '99aa06d3014798d86001c324468d497f', 'hashed', 'written', 1);"
	conf '[openlineage]'
	# A hash is streamed from the writes only when they reach the daemon
	# (kernel passthrough hands writers to the kernel: reread).
	mount_provfs -o "config=$CONF" -o nopassthrough
	(cd "$MNT" && PROVFS_JOB=new OPENLINEAGE_PARENT_ID=airflow/dag.task/$PARENT_RUN sh -c 'echo new >new.txt')
	stop_provfs
	assert_sql "PRAGMA user_version" 8
	assert_sql "PRAGMA integrity_check" ok
	assert_sql "SELECT count(*) FROM versions WHERE id = 1 AND hash_method IS NULL" 1
	assert_sql "SELECT count(*) FROM runs WHERE id = 1 AND root_parent_run_id IS NULL AND
	            root_parent_namespace IS NULL AND root_parent_job_name IS NULL" 1
	assert_sql "SELECT hash_method FROM versions WHERE id = ($(latest_version_of new.txt))" streamed
	assert_sql "SELECT root_parent_run_id FROM runs WHERE job_name = 'new'" "$PARENT_RUN"
}

@test "export: bad use is one line, exit 2, nothing on stdout" {
	conf '[openlineage]'
	mount_provfs -o "config=$CONF"
	stop_provfs
	run_split "$QUERY" --store "$STORE" --config "$CONF" export
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
	assert_match "$stderr" '^provfs-query: export: --format is required \(usage: provfs-query export --format openlineage\|prov-json\|prov-o \[--since TIME\] \[--job NAME\]\)$'
	run_split "$QUERY" --store "$STORE" --config "$CONF" export --format dot
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
	[ "$(echo "$stderr" | wc -l)" -eq 1 ]
	run_split "$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --since yesterday
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
	run_split "$QUERY" --store "$STORE" --config "$CONF" lineage x --format openlineage
	[ "$status" -eq 2 ]
	[ -z "$stdout" ]
}

# run_jobs through a mount whose events go to $TMP/events.ndjson, until the
# last of them is appended; the mount is stopped after.
spool_jobs_to_file() {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	run_jobs
	wait_until "[ \"\$(q \"SELECT count(*) FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
	            WHERE r.job_name = 'killed' AND o.delivered_ns IS NOT NULL\")\" = 2 ]" 30
	stop_provfs
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL" 0
}

@test "transport = file: every spooled event appended once, byte-identical to the outbox" {
	spool_jobs_to_file
	q "SELECT event FROM openlineage_outbox ORDER BY id" >"$TMP/outbox"
	cmp "$TMP/outbox" "$TMP/events.ndjson"
	ol_check "$TMP/events.ndjson"
	py "$TMP/events.ndjson" "
assert [e['eventType'] for e in of('etl')] == ['START', 'COMPLETE']
assert [e['eventType'] for e in of('fails')] == ['START', 'FAIL']
assert [e['eventType'] for e in of('killed')] == ['START', 'ABORT']
assert {e['job']['name'] for e in E} == {'ingest', 'etl', 'fails', 'killed'}, {e['job']['name'] for e in E}
assert ds(one('etl', 'COMPLETE'), 'inputs', '/data/raw.csv')['facets']['version']
"
	# The live terminal event is the exported one, byte for byte.
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job etl >"$TMP/etl"
	grep -qxF -- "$(sed -n 2p "$TMP/etl")" "$TMP/events.ndjson"
	# A remount sends nothing twice.
	mount_provfs -o "config=$CONF"
	sleep 1
	stop_provfs
	[ "$(sort "$TMP/events.ndjson" | uniq -d | wc -l)" -eq 0 ]
}

@test "transport = file: an event a killed daemon appended but had not yet recorded is recorded, not appended again; one it had not appended is" {
	spool_jobs_to_file
	cp "$TMP/events.ndjson" "$TMP/complete"
	[ "$(wc -l <"$TMP/complete")" -eq 8 ]
	local last
	last=$(q "SELECT max(id) FROM openlineage_outbox")
	# Killed after the append and its fsync, before the UPDATE that records it.
	sqlite3 "$STORE" "UPDATE openlineage_outbox SET delivered_ns = NULL WHERE id = $last"
	mount_provfs -o "config=$CONF"
	wait_until all_delivered 30
	stop_provfs
	cmp "$TMP/complete" "$TMP/events.ndjson"
	# Killed before the append: the line is not there, so it is sent.
	sqlite3 "$STORE" "UPDATE openlineage_outbox SET delivered_ns = NULL WHERE id = $last"
	sed -i '$d' "$TMP/events.ndjson"
	mount_provfs -o "config=$CONF"
	wait_until all_delivered 30
	stop_provfs
	cmp "$TMP/complete" "$TMP/events.ndjson"
	ol_check "$TMP/events.ndjson"
}

# ---------------------------------------------------------------- http

# The receiver: answers POSTs as $TMP/mode says (ok, 500, 400, hang) and
# logs each one with the status it got, in arrival order.
write_receiver() {
	cat >"$TMP/receiver.py" <<-'EOF'
		import gzip, http.server, json, sys, time
		mode_file, log_file, port_file, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
		class Handler(http.server.BaseHTTPRequestHandler):
		    protocol_version = "HTTP/1.1"
		    def do_POST(self):
		        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
		        if self.headers.get("Content-Encoding") == "gzip":
		            body = gzip.decompress(body)
		        mode = open(mode_file).read().strip()
		        if mode == "hang":
		            with open(log_file, "a") as log:
		                log.write(json.dumps({"status": 0}) + "\n")
		            time.sleep(3600)
		        status = {"ok": 200, "500": 500, "400": 400}[mode]
		        with open(log_file, "a") as log:
		            log.write(json.dumps({"status": status, "path": self.path, "type": self.headers.get("Content-Type"),
		                                  "auth": self.headers.get("Authorization"), "body": body.decode()}) + "\n")
		        answer = b'{"error":"bad event"}' if status == 400 else b""
		        self.send_response(status)
		        self.send_header("Content-Length", str(len(answer)))
		        self.end_headers()
		        self.wfile.write(answer)
		    def log_message(self, *args):
		        pass
		server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
		server.daemon_threads = True
		if len(sys.argv) > 5:  # https with CERT:KEY
		    import ssl
		    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
		    context.load_cert_chain(*sys.argv[5].split(":"))
		    server.socket = context.wrap_socket(server.socket, server_side=True)
		open(port_file + ".tmp", "w").write(str(server.server_address[1]))
		import os; os.rename(port_file + ".tmp", port_file)
		server.serve_forever()
	EOF
}

# start_receiver MODE [PORT [CERT:KEY]]: sets PORT and RECEIVER.
start_receiver() {
	echo "$1" >"$TMP/mode"
	rm -f "$TMP/port"
	start_background /usr/bin/python3 "$TMP/receiver.py" "$TMP/mode" "$TMP/received" "$TMP/port" \
		"${2:-0}" ${3:+"$3"}
	RECEIVER=$LAST_BG
	wait_for_file "$TMP/port"
	PORT=$(cat "$TMP/port")
}

stop_receiver() {
	kill -KILL "$RECEIVER"
	wait "$RECEIVER" 2>/dev/null || true
}

received_with() {
	grep -c "\"status\": $1" "$TMP/received" 2>/dev/null || true
}

terminal_spooled() {
	[ "$(q "SELECT count(*) FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
	       WHERE r.job_name = '$1' AND o.event_type != 'START'")" = 1 ]
}

# ---------------------------------------------------------------- runs a killed daemon left open

# start_held_job JOB: a job (PROVFS_JOB=JOB) whose root shell holds in.csv
# open through the mount, copies it to JOB.out, then waits on $TMP/JOB.fifo
# (release it to end the job); returns once its START is spooled.  Sets
# HELD (the root's pid).
start_held_job() {
	mkfifo "$TMP/$1.fifo"
	start_background env PROVFS_JOB="$1" MNT="$MNT" FIFO="$TMP/$1.fifo" \
		sh -c 'exec 4<"$MNT/in.csv"; cat "$MNT/in.csv" >"$MNT/$PROVFS_JOB.out"; read -r _ <"$FIFO"'
	HELD=$LAST_BG
	wait_until "[ \"\$(q \"SELECT count(*) FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
	            WHERE r.job_name = '$1' AND o.event_type = 'START'\")\" = 1 ]" 20
	# cat's read and write are recorded too, not only the shell's open.
	wait_until "[ \"\$(q \"SELECT count(a.read_version_id) > 0 AND count(a.written_version_id) > 0
	            FROM accesses a JOIN processes p ON p.id = a.process_id JOIN runs r ON r.id = p.run_id
	            WHERE r.job_name = '$1'\")\" = 1 ]" 20
}

# end_held_job JOB: let the job's root exit, and wait until it has.
end_held_job() {
	release "$TMP/$1.fifo"
	wait "$HELD" 2>/dev/null || true
	wait_pids_gone "$HELD"
}

# kill_daemon: SIGKILL the daemon serving $MNT and drop its dead mount.
kill_daemon() {
	kill -KILL "$MOUNTED_PID"
	wait_pids_gone "$MOUNTED_PID"
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
}

# The outbox's terminal events of job $1, their types one a line.
terminals_of() {
	q "SELECT o.event_type FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
	   WHERE r.job_name = '$1' AND o.event_type != 'START' ORDER BY o.id"
}

all_delivered() {
	[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL")" = 0 ]
}

@test "daemon killed -9 mid-job: the next daemon closes the run as ABORT, end time unknown, once the root has gone" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	echo 'id,v' >"$MNT/in.csv"
	start_held_job orphan
	kill_daemon
	end_held_job orphan
	local gone_ns uuid ended_ns
	gone_ns=$(date +%s%N)
	# Nobody saw the root end: the run is open, as the killed daemon left it.
	assert_sql "SELECT count(*) FROM runs WHERE job_name = 'orphan' AND ended_ns IS NULL" 1
	mount_provfs -o "config=$CONF"
	wait_until '[ "$(terminals_of orphan)" = ABORT ]' 20
	wait_until all_delivered 30
	stop_provfs
	# Closed with the time the new daemon noticed, marked as such: never an invented exit.
	assert_sql "SELECT end_unknown, ended_ns >= $gone_ns FROM runs WHERE job_name = 'orphan'" "1|1"
	assert_sql "SELECT count(*) FROM processes p JOIN runs r ON r.id = p.run_id
	            WHERE r.job_name = 'orphan' AND p.pid = r.root_pid AND p.exited_ns IS NULL" 1
	ended_ns=$(q "SELECT ended_ns FROM runs WHERE job_name = 'orphan'")
	uuid=$(q "SELECT uuid FROM runs WHERE job_name = 'orphan'")
	ol_check "$TMP/events.ndjson"
	py "$TMP/events.ndjson" "
import time
assert [e['eventType'] for e in of('orphan')] == ['START', 'ABORT'], of('orphan')
abort = one('orphan', 'ABORT')
assert abort['run']['runId'] == '$uuid'
process = abort['run']['facets']['provfs_process']
assert process['exitStatus'] == 'unknown' and process['endUnknown'] is True, process
assert 'exitCode' not in process and 'signal' not in process, process
ns = $ended_ns
assert abort['eventTime'] == time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(ns // 10**9)) + '.%03dZ' % (ns // 10**6 % 1000), abort['eventTime']
assert ds(abort, 'inputs', '/data/in.csv')
assert ds(abort, 'outputs', '/data/orphan.out')['facets']['lifecycleStateChange']['lifecycleStateChange'] == 'CREATE'
"
	# The export builds the very events the daemon spooled.
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job orphan >"$TMP/orphan"
	[ "$(wc -l <"$TMP/orphan")" -eq 2 ]
	grep -qxF -- "$(sed -n 1p "$TMP/orphan")" "$TMP/events.ndjson"
	grep -qxF -- "$(sed -n 2p "$TMP/orphan")" "$TMP/events.ndjson"
	# provfs-query: ended abnormally, not running.
	run -0 "$QUERY" --store "$STORE" runs --job orphan
	[[ "$output" == *aborted* ]]
	run -0 "$QUERY" --store "$STORE" run "$uuid"
	[[ "$output" == *"run ended"*"aborted, when unknown"* ]]
	run -0 "$QUERY" --store "$STORE" runs --job orphan --format json
	/usr/bin/python3 -c 'import json, sys
r = json.loads(sys.argv[1])["runs"][0]
assert r["end_unknown"] is True and r["ended"], r' "$output"
	# PROV states no end it does not know.
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-json --job orphan >"$TMP/orphan.json"
	/usr/bin/python3 -c 'import json, sys
runs = [a for a in json.load(open(sys.argv[1]))["activity"].values() if a["prov:type"]["$"] == "provfs:Run"]
assert len(runs) == 1 and "prov:endTime" not in runs[0], runs' "$TMP/orphan.json"
}

@test "a START waits for its executable's hash: the catalog gets executableHash, the bytes export builds" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	echo 'id,v' >"$MNT/in.csv"
	# Executables large enough that hashing them takes longer than the
	# batch that records their first read (a hole of a GiB after the
	# program: nothing to write, a second to hash): each is a new inode,
	# so no hash the daemon remembers serves it.
	local i
	for i in 1 2 3 4; do
		cp /bin/cat "$TMP/cat$i"
		truncate -s +1G "$TMP/cat$i"
		PROVFS_JOB=big$i "$TMP/cat$i" "$MNT/in.csv" >/dev/null
		xxh "$TMP/cat$i" >"$TMP/cat$i.hash"
		# Removed (its ctime moves) only once the daemon has taken its hash.
		wait_until "[ \"\$(q \"SELECT count(*) FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
		            WHERE r.job_name = 'big$i' AND o.event_type = 'START'\")\" = 1 ]" 30
		rm "$TMP/cat$i"
	done
	for i in 1 2 3 4; do
		wait_until "[ \"\$(terminals_of big$i)\" = COMPLETE ]" 30
	done
	wait_until all_delivered 30
	stop_provfs
	ol_check "$TMP/events.ndjson"
	for i in 1 2 3 4; do
		py "$TMP/events.ndjson" "
start = one('big$i', 'START')
assert start['run']['facets']['provfs_process'].get('executableHash') == 'xxh3-128:$(cat "$TMP/cat$i.hash")', start['run']['facets']['provfs_process']
"
		"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job "big$i" >"$TMP/big$i"
		[ "$(wc -l <"$TMP/big$i")" -eq 2 ]
		grep -qxF -- "$(sed -n 1p "$TMP/big$i")" "$TMP/events.ndjson"
		grep -qxF -- "$(sed -n 2p "$TMP/big$i")" "$TMP/events.ndjson"
	done
}

@test "a START whose executable cannot be hashed (it runs from another FUSE mount) is not held back" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	local backing_b=$TMP/backing-b mnt_b=$TMP/mnt-b
	mkdir -p "$backing_b" "$mnt_b"
	chmod 700 "$backing_b"
	mount_provfs -o "config=$CONF"
	STORE=$TMP/store-b.db MOUNT_BACKING=$backing_b MOUNT_POINT=$mnt_b mount_provfs
	cp /bin/cat "$mnt_b/cat"
	echo 'id,v' >"$MNT/in.csv"
	mkfifo "$TMP/held.fifo"
	# The job holds on after its read (cat then waits on the fifo), so its
	# START cannot ride on its end.
	start_background env PROVFS_JOB=foreign "$mnt_b/cat" "$MNT/in.csv" "$TMP/held.fifo" >/dev/null
	local started=$SECONDS
	wait_until "[ \"\$(q \"SELECT count(*) FROM openlineage_outbox o JOIN runs r ON r.id = o.run_id
	            WHERE r.job_name = 'foreign' AND o.event_type = 'START'\")\" = 1 ]" 20
	# Well inside the 10 s a START may wait for a hash that is coming.
	[ $((SECONDS - started)) -lt 6 ]
	release "$TMP/held.fifo"
	wait "$LAST_BG" || true
	wait_until "[ \"\$(terminals_of foreign)\" = COMPLETE ]" 20
	wait_until all_delivered 30
	assert_sql "SELECT count(*) FROM processes p JOIN runs r ON r.id = p.run_id
	            WHERE r.job_name = 'foreign' AND p.executable_hash IS NOT NULL" 0
	py "$TMP/events.ndjson" "
start = one('foreign', 'START')
assert 'executableHash' not in start['run']['facets']['provfs_process'], start
"
}

@test "daemon killed -9 beside a second mount of the store: the run only it recorded is still closed, the other's runs are not" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	local backing_b=$TMP/backing-b mnt_b=$TMP/mnt-b daemon_a
	mkdir -p "$backing_b" "$mnt_b"
	chmod 700 "$backing_b"
	mount_provfs -o "config=$CONF"
	daemon_a=$MOUNTED_PID
	MOUNT_BACKING=$backing_b MOUNT_POINT=$mnt_b mount_provfs -o "config=$CONF"
	echo 'id,v' >"$MNT/in.csv"
	start_held_job orphan
	# A job of the live mount, still running when the killed one restarts.
	mkfifo "$TMP/beside.fifo"
	start_background env PROVFS_JOB=beside MNT_B="$mnt_b" FIFO="$TMP/beside.fifo" \
		sh -c 'echo b >"$MNT_B/beside.out"; read -r _ <"$FIFO"'
	local beside=$LAST_BG
	wait_until "[ \"\$(q \"SELECT count(*) FROM runs WHERE job_name = 'beside'\")\" = 1 ]" 20
	MOUNTED_PID=$daemon_a kill_daemon
	end_held_job orphan
	mount_provfs -o "config=$CONF"
	wait_until '[ "$(terminals_of orphan)" = ABORT ]' 20
	assert_sql "SELECT end_unknown FROM runs WHERE job_name = 'orphan'" 1
	assert_sql "SELECT ended_ns IS NULL FROM runs WHERE job_name = 'beside'" 1
	release "$TMP/beside.fifo"
	wait "$beside" 2>/dev/null || true
	wait_until '[ "$(terminals_of beside)" = COMPLETE ]' 20
	MOUNT_POINT=$mnt_b unmount_provfs
	stop_provfs
	assert_sql "SELECT end_unknown FROM runs WHERE job_name = 'beside'" 0
}

@test "daemon killed -9 while a job outlives it: the next daemon leaves the run open; one after the job ended closes it" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	echo 'id,v' >"$MNT/in.csv"
	start_held_job outlives
	kill_daemon
	mount_provfs -o "config=$CONF"
	# The writer looks for abandoned runs before its first batch: once a later
	# job's events are in, it has looked.  (The job reads nothing the killed
	# daemon left unhashed: its terminal event would wait for that hash.)
	(cd "$MNT" && PROVFS_JOB=later sh -c 'echo x >later.out')
	wait_until 'terminal_spooled later' 20
	assert_sql "SELECT ended_ns IS NULL FROM runs WHERE job_name = 'outlives'" 1
	[ -z "$(terminals_of outlives)" ]
	run -0 "$QUERY" --store "$STORE" runs --job outlives
	[[ "$output" != *aborted* ]]
	# The job ends while this daemon runs, which never met its root: still open ...
	end_held_job outlives
	stop_provfs
	assert_sql "SELECT ended_ns IS NULL FROM runs WHERE job_name = 'outlives'" 1
	# ... until the next daemon finds the root gone.
	mount_provfs -o "config=$CONF"
	wait_until '[ "$(terminals_of outlives)" = ABORT ]' 20
	wait_until all_delivered 30
	stop_provfs
	assert_sql "SELECT end_unknown FROM runs WHERE job_name = 'outlives'" 1
	ol_check "$TMP/events.ndjson"
	py "$TMP/events.ndjson" "
assert [e['eventType'] for e in of('outlives')] == ['START', 'ABORT'], of('outlives')
assert [e['eventType'] for e in of('later')] == ['START', 'COMPLETE'], of('later')
"
}

@test "remounts after a daemon killed -9: each run gets exactly one terminal event" {
	conf '[openlineage]' 'transport = file' "path = $TMP/events.ndjson" "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	echo 'id,v' >"$MNT/in.csv"
	(cd "$MNT" && PROVFS_JOB=done sh -c 'cat in.csv >done.out')
	wait_until 'terminal_spooled done' 20
	start_held_job orphan
	kill_daemon
	end_held_job orphan
	local ended_ns
	for round in 1 2 3; do
		mount_provfs -o "config=$CONF"
		(cd "$MNT" && PROVFS_JOB=round$round sh -c 'cat in.csv >/dev/null')
		wait_until "terminal_spooled round$round" 20
		wait_until all_delivered 30
		stop_provfs
		[ "$(terminals_of orphan)" = ABORT ]
		[ "$(terminals_of done)" = COMPLETE ]
		if [ "$round" = 1 ]; then
			ended_ns=$(q "SELECT ended_ns FROM runs WHERE job_name = 'orphan'")
		fi
		# The run keeps the end the first remount gave it.
		assert_sql "SELECT ended_ns FROM runs WHERE job_name = 'orphan'" "$ended_ns"
	done
	[ "$(sort "$TMP/events.ndjson" | uniq -d | wc -l)" -eq 0 ]
	ol_check "$TMP/events.ndjson"
	py "$TMP/events.ndjson" "
assert [e['eventType'] for e in of('orphan')] == ['START', 'ABORT'], of('orphan')
assert [e['eventType'] for e in of('done')] == ['START', 'COMPLETE'], of('done')
"
}

@test "http: 500, then down, then back, daemon killed -9 between: every event arrives once, in order per run" {
	write_receiver
	start_receiver 500
	conf '[openlineage]' 'transport = http' "url = http://127.0.0.1:$PORT/api/v1/lineage" \
		'timeout_ms = 2000' 'api_key = k3y' "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	(cd "$MNT" && PROVFS_JOB=job-a sh -c 'echo 1 >a.csv; cat a.csv >a2.csv')
	wait_until '[ "$(received_with 500)" -ge 2 ]' 30
	stop_receiver
	(cd "$MNT" && PROVFS_JOB=job-b sh -c 'cat a2.csv >b.csv')
	wait_until 'terminal_spooled job-a && terminal_spooled job-b' 40
	kill -KILL "$MOUNTED_PID"
	wait_pids_gone "$MOUNTED_PID"
	fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	# Nothing was delivered: refused (500), then refused connections.
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NOT NULL" 0
	start_receiver ok "$PORT"
	mount_provfs -o "config=$CONF"
	(cd "$MNT" && PROVFS_JOB=job-c sh -c 'cat b.csv >c.csv')
	wait_until 'terminal_spooled job-c' 40
	wait_until '[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL")" = 0 ]' 60
	stop_provfs
	q "SELECT id || ' ' || event FROM openlineage_outbox ORDER BY id" >"$TMP/outbox"
	/usr/bin/python3 - "$TMP/received" "$TMP/outbox" <<-'EOF'
		import json, sys
		received = [json.loads(l) for l in open(sys.argv[1])]
		outbox = [l.rstrip("\n").split(" ", 1) for l in open(sys.argv[2])]
		accepted = [r["body"] for r in received if r["status"] == 200]
		events = [body for _, body in outbox]
		# Every event arrived, exactly once (the earlier attempts were refused or failed).
		for body in events:
		    assert accepted.count(body) == 1, ("arrived", accepted.count(body), body[:200])
		assert sorted(accepted) == sorted(events)
		# In order: each run's START before its terminal event, and outbox order overall.
		assert accepted == events, "not in outbox order"
		seen = {}
		for body in accepted:
		    e = json.loads(body)
		    seen.setdefault(e["run"]["runId"], []).append(e["eventType"])
		for run, types in seen.items():
		    assert types[0] == "START" and len(types) <= 2, (run, types)
		jobs = {json.loads(b)["job"]["name"]: json.loads(b)["eventType"] for b in accepted}
		for job in ("job-a", "job-b", "job-c"):
		    assert jobs.get(job) == "COMPLETE", (job, jobs)
		# The 500s were answered to the very same bytes, later resent unchanged.
		assert all(r["body"] in events for r in received)
		assert all(r["auth"] == "Bearer k3y" and r["type"] == "application/json" for r in received)
		assert all(r["path"] == "/api/v1/lineage" for r in received)
	EOF
	ol_check <(q "SELECT event FROM openlineage_outbox ORDER BY id")
	stop_receiver
}

@test "http: a 400 is dead-lettered with its response, never retried, and counted by stats" {
	write_receiver
	start_receiver 400
	conf '[openlineage]' 'transport = http' "url = http://127.0.0.1:$PORT/api/v1/lineage" \
		'compression = gzip'
	mount_provfs -o "config=$CONF"
	(cd "$MNT" && PROVFS_JOB=refused sh -c 'echo 1 >r.csv')
	wait_until 'terminal_spooled refused' 30
	wait_until '[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE dead_ns IS NULL")" = 0 ]' 30
	sleep 1 # a retry, if there were one, would come now
	stop_provfs
	local rows
	rows=$(q "SELECT count(*) FROM openlineage_outbox")
	[ "$rows" -ge 2 ]
	[ "$(received_with 400)" -eq "$rows" ]
	assert_sql "SELECT DISTINCT attempts FROM openlineage_outbox" 1
	assert_sql "SELECT DISTINCT response FROM openlineage_outbox" 'HTTP 400: {"error":"bad event"}'
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NOT NULL" 0
	run -0 "$QUERY" --store "$STORE" stats --format json
	/usr/bin/python3 -c "
import json, sys
d = json.loads(sys.argv[1])['openlineage']
assert d['dead_lettered'] == $rows and d['sent'] == 0 and d['queued'] == 0, d
" "$output"
	run -0 "$QUERY" --store "$STORE" stats
	assert_match "$output" "dead-lettered +$rows"
	stop_receiver
}

@test "http: a receiver that accepts and never answers does not stall the filesystem" {
	write_receiver
	start_receiver hang
	conf '[openlineage]' 'transport = http' "url = http://127.0.0.1:$PORT/api/v1/lineage" \
		'timeout_ms = 600000'
	mount_provfs -o "config=$CONF"
	(cd "$MNT" && PROVFS_JOB=first sh -c 'echo 1 >first')
	wait_until '[ "$(received_with 0)" -ge 1 ]' 30
	# The sender now waits on the receiver; jobs go on at full speed.
	local start=$SECONDS
	(cd "$MNT" && PROVFS_JOB=many sh -c 'mkdir d; for i in $(seq 300); do echo $i >d/f$i; cat d/f$i >/dev/null; done')
	[ $((SECONDS - start)) -lt 20 ]
	wait_until 'terminal_spooled many' 30
	# Unmounting abandons the attempt in flight at once; the events stay queued.
	start=$SECONDS
	stop_provfs
	[ $((SECONDS - start)) -lt 10 ]
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL AND
	            dead_ns IS NULL AND event_type != 'START' AND run_id =
	            (SELECT id FROM runs WHERE job_name = 'many')" 1
	stop_receiver
}

@test "http: two mounts sharing one store send each event once" {
	write_receiver
	start_receiver ok
	conf '[openlineage]' 'transport = http' "url = http://127.0.0.1:$PORT/api/v1/lineage"
	local backing_b=$TMP/backing-b mnt_b=$TMP/mnt-b
	mkdir -p "$backing_b" "$mnt_b"
	chmod 700 "$backing_b"
	mount_provfs -o "config=$CONF"
	MOUNT_BACKING=$backing_b MOUNT_POINT=$mnt_b mount_provfs -o "config=$CONF"
	local i
	for i in 1 2 3 4 5 6; do
		(cd "$MNT" && PROVFS_JOB=a$i sh -c "echo $i >a$i")
		(cd "$mnt_b" && PROVFS_JOB=b$i sh -c "echo $i >b$i")
	done
	wait_until 'terminal_spooled a6 && terminal_spooled b6' 40
	wait_until '[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL")" = 0 ]' 40
	sleep 1 # a second sender, if there were one, would send again now
	MOUNT_POINT=$mnt_b unmount_provfs
	stop_provfs
	q "SELECT event FROM openlineage_outbox ORDER BY id" >"$TMP/outbox"
	[ "$(wc -l <"$TMP/outbox")" -eq 24 ]
	/usr/bin/python3 - "$TMP/received" "$TMP/outbox" <<-'EOF'
		import json, sys
		accepted = [json.loads(l)["body"] for l in open(sys.argv[1])]
		events = [l.rstrip("\n") for l in open(sys.argv[2])]
		assert sorted(accepted) == sorted(events), (len(accepted), len(events))
	EOF
	stop_receiver
}

@test "https: the endpoint is verified; ca_file adds a CA to the system's; the key goes only over TLS" {
	command -v openssl >/dev/null || skip "needs openssl to make a certificate"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
		-days 1 -subj /CN=provfs-test -addext subjectAltName=IP:127.0.0.1 2>/dev/null
	write_receiver
	start_receiver ok 0 "$TMP/cert.pem:$TMP/key.pem"
	conf '[openlineage]' 'transport = http' "url = https://127.0.0.1:$PORT/api/v1/lineage" \
		'timeout_ms = 3000' 'api_key = t0ken'
	mount_provfs -o "config=$CONF"
	(cd "$MNT" && PROVFS_JOB=tls sh -c 'echo 1 >t.csv')
	wait_until 'terminal_spooled tls' 30
	# A self-signed endpoint is not trusted by the system's CAs: nothing is delivered.
	wait_until '[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE attempts > 0")" -ge 1 ]' 30
	stop_provfs
	assert_sql "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NOT NULL" 0
	assert_match "$(q "SELECT last_error FROM openlineage_outbox WHERE attempts > 0 LIMIT 1")" \
		'[Cc]ertificate|SSL'
	[ ! -s "$TMP/received" ]
	# ca_file adds the endpoint's CA: everything queued is delivered, with the key.
	conf '[openlineage]' 'transport = http' "url = https://127.0.0.1:$PORT/api/v1/lineage" \
		'timeout_ms = 3000' 'api_key = t0ken' "ca_file = $TMP/cert.pem"
	mount_provfs -o "config=$CONF"
	wait_until '[ "$(q "SELECT count(*) FROM openlineage_outbox WHERE delivered_ns IS NULL")" = 0 ]' 60
	stop_provfs
	[ "$(received_with 200)" -eq "$(q "SELECT count(*) FROM openlineage_outbox")" ]
	/usr/bin/python3 -c "
import json, sys
assert all(json.loads(l)['auth'] == 'Bearer t0ken' for l in open(sys.argv[1]))
" "$TMP/received"
	stop_receiver
}

@test "bad [openlineage] config: one line, exit 2, at mount and with --check-config" {
	local bad
	for bad in 'transport = kafka' \
		$'transport = http\nurl = https://catalog.example/api/v1/lineage\nca_file = /nonexistent/ca.pem' \
		$'transport = http\nurl = http://catalog.example:5000/api/v1/lineage\napi_key = s3cret' \
		$'transport = http' $'compression = brotli' $'path_map = relative=/data' \
		$'transport = file\npath = events.ndjson'; do
		conf '[openlineage]' "$bad"
		run_split "$PROVFS" --check-config "$CONF"
		[ "$status" -eq 2 ]
		[ -z "$stdout" ]
		[ "$(echo "$stderr" | wc -l)" -eq 1 ]
		assert_match "$stderr" "^provfs: $CONF:[0-9]+: "
		run_split "$PROVFS" -o "config=$CONF,store=$STORE" "$BACKING" "$MNT"
		[ "$status" -eq 2 ]
		[ "$(echo "$stderr" | wc -l)" -eq 1 ]
		[[ $stderr != *s3cret* ]]
		assert_nothing_mounted
	done
	# An api_key to a loopback host over http, and one over https, are fine.
	conf '[openlineage]' 'transport = http' 'url = http://127.0.0.1:5000/api/v1/lineage' 'api_key = k'
	run -0 "$PROVFS" --check-config "$CONF"
	conf '[openlineage]' 'transport = http' 'url = https://catalog.example/api/v1/lineage' 'api_key = k'
	run -0 "$PROVFS" --check-config "$CONF"
}

# ---------------------------------------------------------------- W3C PROV

@test "PROV-JSON and PROV-O: export and lineage satisfy PROV-CONSTRAINTS, read by python3-prov and rdflib" {
	conf '[openlineage]' "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	run_jobs
	(cd "$MNT" && PROVFS_JOB=again sh -c 'cat raw.csv >>out.csv; cat raw.csv >copy.csv')
	stop_provfs
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-json >"$TMP/doc.json"
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-o >"$TMP/doc.ttl"
	prov_check "$TMP/doc.json" "$TMP/doc.ttl"
	local raw_hash
	raw_hash=$(xxh "$BACKING/raw.csv")
	/usr/bin/python3 - "$TMP/doc.json" <<-EOF
		import json, sys
		d = json.load(open(sys.argv[1]))
		E, A = d["entity"], d["activity"]
		raw = [k for k, v in E.items() if v.get("provfs:path") == "/data/raw.csv" and "provfs:version" in v]
		assert len(raw) == 1 and E[raw[0]]["provfs:hash"] == "xxh3-128:$raw_hash", raw
		# out.csv has two versions: the second a revision of the first, each one generation.
		out = sorted((int(v["provfs:version"]["\$"]), k) for k, v in E.items()
		             if v.get("provfs:path") == "/data/out.csv" and "provfs:version" in v)
		assert [n for n, _ in out] == [1, 2], out
		revisions = [r for r in d["wasDerivedFrom"].values() if r.get("prov:type", {}).get("\$") == "prov:Revision"]
		assert any(r["prov:generatedEntity"] == out[1][1] and r["prov:usedEntity"] == out[0][1] for r in revisions)
		spec = [r for r in d["specializationOf"].values() if r["prov:specificEntity"] == out[1][1]]
		assert len(spec) == 1 and E[spec[0]["prov:generalEntity"]]["prov:type"]["\$"] == "provfs:File"
		# copy.csv was derived from raw.csv by the process that used one and generated the other.
		copy = [k for k, v in E.items() if v.get("provfs:path") == "/data/copy.csv" and "provfs:version" in v][0]
		assert any(r["prov:generatedEntity"] == copy and r["prov:usedEntity"] == raw[0] and "prov:activity" in r
		           for r in d["wasDerivedFrom"].values())
		gen = [r for r in d["wasGeneratedBy"].values() if r["prov:entity"] == copy]
		assert len(gen) == 1
		p = A[gen[0]["prov:activity"]]
		assert p["prov:type"]["\$"] == "provfs:Process" and json.loads(p["provfs:argv"]) == ["cat", "raw.csv"], p
		assert p["prov:startTime"].endswith("+00:00") and "provfs:run" in p
		# The shell started cat (fork); users and programs are associated agents.
		assert any(r["prov:activity"] == gen[0]["prov:activity"] for r in d["wasStartedBy"].values())
		agents = {d["agent"][r["prov:agent"]]["prov:type"]["\$"] for r in d["wasAssociatedWith"].values()
		          if r["prov:activity"] == gen[0]["prov:activity"]}
		assert agents == {"prov:Person", "prov:SoftwareAgent"}, agents
		runs = [v for v in A.values() if v["prov:type"]["\$"] == "provfs:Run"]
		assert {"etl", "again", "fails", "killed", "ingest"} <= {v["provfs:job"] for v in runs}
	EOF
	# lineage PATH: the graph of one version.
	"$QUERY" --store "$STORE" --config "$CONF" lineage "$MNT/copy.csv" --format prov-json >"$TMP/l.json"
	"$QUERY" --store "$STORE" --config "$CONF" lineage "$MNT/copy.csv" --format prov-o >"$TMP/l.ttl"
	prov_check "$TMP/l.json" "$TMP/l.ttl"
	/usr/bin/python3 - "$TMP/l.json" <<-'EOF'
		import json, sys
		d = json.load(open(sys.argv[1]))
		paths = {v.get("provfs:path") for v in d["entity"].values()}
		assert {"/data/copy.csv", "/data/raw.csv"} <= paths, paths
		assert "/data/f.txt" not in paths  # not in copy.csv's lineage
	EOF
	run_split "$QUERY" --store "$STORE" --config "$CONF" lineage "$MNT/nowhere" --format prov-json
	[ "$status" -eq 1 ]
	[ -z "$stdout" ]
}

@test "PROV-XML: identifiers are xs:QNames; the export validates with xmllint against W3C's PROV XSD" {
	[ -f "$XML_XSD" ] # W3C's xml.xsd: scripts/install-deps installs xmltooling-schemas
	conf '[openlineage]' "path_map = $MNT=/data"
	mount_provfs -o "config=$CONF"
	# Names that are no XML names: identifiers must still be xs:QNames.
	mkdir "$MNT/1 dir"
	(cd "$MNT/1 dir" && PROVFS_JOB='odd job' sh -c 'echo a >"sp ace@x_y%z.csv"; cat "sp ace@x_y%z.csv" >_.csv')
	stop_provfs
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-json >"$TMP/doc.json"
	"$QUERY" --store "$STORE" --config "$CONF" export --format prov-o >"$TMP/doc.ttl"
	/usr/bin/python3 "$HERE/prov_check.py" "$TMP/doc.json" "$TMP/doc.ttl" # QNames checked
	/usr/bin/python3 -c '
import sys, prov.model
print(prov.model.ProvDocument.deserialize(source=sys.argv[1], format="json").serialize(format="xml"))
' "$TMP/doc.json" >"$TMP/doc.xml"
	grep -q 'prov:id="pfd:version\.[^"]*\.v1\.data\.1_20dir\.sp_20ace_40x_5Fy_25z_2Ecsv"' "$TMP/doc.xml"
	[ -f "$PROV_XSD/prov.xsd" ] ||
		skip "W3C's PROV XSD (prov.xsd and the three it includes) is not in $PROV_XSD (set PROV_XSD)"
	/usr/bin/python3 "$HERE/prov_check.py" --xmllint "$TMP/doc.xml" "$PROV_XSD" "$XML_XSD"
	# The check is real: an identifier that is no xs:QName is refused (provfs
	# wrote such before), and so is an element out of place.
	sed 's|prov:id="pfd:version\.|prov:id="pfd:version/|' "$TMP/doc.xml" >"$TMP/bad-id.xml"
	run -1 /usr/bin/python3 "$HERE/prov_check.py" --xmllint "$TMP/bad-id.xml" "$PROV_XSD" "$XML_XSD"
	assert_match "$output" "is not a valid value of the atomic type 'xs:QName'"
	sed '0,/<prov:entity /s|<prov:entity \([^>]*\)>|<prov:entity \1><prov:endTime>2026-01-01T00:00:00Z</prov:endTime>|' \
		"$TMP/doc.xml" >"$TMP/bad-element.xml"
	if cmp -s "$TMP/doc.xml" "$TMP/bad-element.xml"; then
		echo "the bad document is the good one"
		false
	fi
	run -1 /usr/bin/python3 "$HERE/prov_check.py" --xmllint "$TMP/bad-element.xml" "$PROV_XSD" "$XML_XSD"
	assert_match "$output" "endTime"
}

@test "many hosts: mounts of one shared tree at different places give its files one dataset name" {
	# Two mounts of one backing tree stand for two hosts mounting a shared filesystem.
	local mnt_a=$TMP/host-a mnt_b=$TMP/host-b
	mkdir -p "$mnt_a" "$mnt_b"
	conf '[openlineage]' 'dataset_namespace = file://nas' "path_map = $mnt_a=/shared $mnt_b=/shared"
	MOUNT_POINT=$mnt_a mount_provfs -o "config=$CONF"
	(cd "$mnt_a" && PROVFS_JOB=writer sh -c 'echo hello >handoff.csv')
	MOUNT_POINT=$mnt_a unmount_provfs
	STORE=$TMP/store/b.db MOUNT_POINT=$mnt_b mount_provfs -o "config=$CONF"
	(cd "$mnt_b" && PROVFS_JOB=reader sh -c 'cat handoff.csv >/dev/null')
	MOUNT_POINT=$mnt_b unmount_provfs
	"$QUERY" --store "$STORE" --config "$CONF" export --format openlineage --job writer >"$TMP/a"
	"$QUERY" --store "$TMP/store/b.db" --config "$CONF" export --format openlineage --job reader >"$TMP/b"
	cat "$TMP/a" "$TMP/b" >"$TMP/both"
	ol_check "$TMP/both"
	py "$TMP/both" "
w = ds(one('writer', 'COMPLETE'), 'outputs', '/shared/handoff.csv')
r = ds(one('reader', 'COMPLETE'), 'inputs', '/shared/handoff.csv')
assert w['namespace'] == r['namespace'] == 'file://nas'
assert w['facets']['version'] == r['facets']['version'] or w['facets']['version']['datasetVersion'] == r['facets']['version']['datasetVersion']
assert r['facets']['provfs_fileVersion']['mountSession']['mountPoint'] == '$mnt_b'
assert w['facets']['provfs_fileVersion']['mountSession']['mountPoint'] == '$mnt_a'
"
}
