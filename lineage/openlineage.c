/*
 * openlineage.c - a run of the store as OpenLineage RunEvents.
 *
 * The events are built from rows alone (runs, processes, accesses,
 * versions, namespace_events, mount_sessions), never from the recorder's
 * memory, so that the same store gives the same bytes to the exporter and
 * to the outbox, whichever process asks.  What each event holds:
 *
 *   run      runId = runs.uuid; facets parent (the orchestrator's run from
 *            OPENLINEAGE_PARENT_*, when its run id is a UUID, with root: the
 *            run that started the orchestrator's chain, from
 *            OPENLINEAGE_ROOT_PARENT_*, or the parent itself when it was
 *            named without a root, as the recorder stored it), processing_engine
 *            (provfs and its version), provfs_process (the run's root process:
 *            executable, its hash, argv as recorded, user, PID@START, host,
 *            mount session, exit status).
 *   job      namespace = [openlineage] namespace or the run's host; name =
 *            runs.job_name; facet jobType (BATCH, integration PROVFS).
 *   inputs   (terminal event) every version read by a process of the run,
 *            except versions the run itself produced: facets version
 *            ("xxh3-128:HEX", once hashed), datasetType FILE, tags (the
 *            classification label), provfs_fileVersion; inputFacets
 *            inputStatistics (the size of the version read, fileCount 1:
 *            reads served by the page cache never reach provfs, so bytes
 *            served would undercount).
 *   outputs  (terminal event) every version written by the run, with
 *            lifecycleStateChange CREATE (version 1 of a file made through
 *            the mount), OVERWRITE (opened with O_TRUNC) or TRUNCATE; every
 *            rename (RENAME with previousIdentifier) and unlink (DROP) made
 *            by the run; outputFacets outputStatistics.
 * Statements are prepared per call: events are built once per run start and
 * end in the daemon, and the exporter's cost is dominated by its rows.
 */
#include <fcntl.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "config.h"
#include "lineage_i.h"
#include "openlineage.h"

#define FACETS "https://openlineage.io/spec/facets/"
#define URL_PARENT FACETS "1-2-0/ParentRunFacet.json#/$defs/ParentRunFacet"
#define URL_ENGINE FACETS "1-1-1/ProcessingEngineRunFacet.json#/$defs/ProcessingEngineRunFacet"
#define URL_JOB_TYPE FACETS "2-0-4/JobTypeJobFacet.json#/$defs/JobTypeJobFacet"
#define URL_VERSION FACETS "1-0-1/DatasetVersionDatasetFacet.json#/$defs/DatasetVersionDatasetFacet"
#define URL_TYPE FACETS "1-0-1/DatasetTypeDatasetFacet.json#/$defs/DatasetTypeDatasetFacet"
#define URL_INPUT_STATS                                                                            \
	FACETS "1-0-0/InputStatisticsInputDatasetFacet.json#/$defs/"                               \
	       "InputStatisticsInputDatasetFacet"
#define URL_OUTPUT_STATS                                                                           \
	FACETS "1-0-2/OutputStatisticsOutputDatasetFacet.json#/$defs/"                             \
	       "OutputStatisticsOutputDatasetFacet"
#define URL_LIFECYCLE                                                                              \
	FACETS "1-0-1/LifecycleStateChangeDatasetFacet.json#/$defs/"                               \
	       "LifecycleStateChangeDatasetFacet"
#define URL_TAGS FACETS "1-0-0/TagsDatasetFacet.json#/$defs/TagsDatasetFacet"
#define URL_FILE_VERSION                                                                           \
	OPENLINEAGE_PROVFS_SCHEMAS "provfs_fileVersion.json#/$defs/ProvfsFileVersionDatasetFacet"
#define URL_PROCESS OPENLINEAGE_PROVFS_SCHEMAS "provfs_process.json#/$defs/ProvfsProcessRunFacet"

struct openlineage {
	char *job_namespace; /* NULL: the run's host */
	char *dataset_namespace;
	struct string_list path_map;
};

struct openlineage *
openlineage_new(const struct provfs_config *config, char *error, size_t error_size)
{
	struct openlineage *ol = calloc(1, sizeof(*ol));

	if (ol == NULL)
		goto oom;
	if (config->openlineage_namespace &&
	    (ol->job_namespace = strdup(config->openlineage_namespace)) == NULL)
		goto oom;
	ol->dataset_namespace = strdup(
	    config->openlineage_dataset_namespace ? config->openlineage_dataset_namespace : "file");
	if (ol->dataset_namespace == NULL)
		goto oom;
	for (size_t i = 0; i < config->openlineage_path_map.count; i++)
		string_list_append(&ol->path_map, config->openlineage_path_map.items[i]);
	return ol;
oom:
	snprintf(error, error_size, "out of memory");
	openlineage_free(ol);
	return NULL;
}

void
openlineage_free(struct openlineage *ol)
{
	if (ol == NULL)
		return;
	free(ol->job_namespace);
	free(ol->dataset_namespace);
	string_list_release(&ol->path_map);
	free(ol);
}

/* ---- small builders ---------------------------------------------------------- */

static void
add(json_object *object, const char *key, json_object *value)
{
	if (value)
		json_object_object_add(object, key, value);
}

static json_object *
facet(const char *schema_url)
{
	json_object *f = json_object_new_object();

	add(f, "_producer", json_object_new_string(OPENLINEAGE_PRODUCER));
	add(f, "_schemaURL", json_object_new_string(schema_url));
	return f;
}

static json_object *
time_string(int64_t ns)
{
	char iso[LINEAGE_TIME_SIZE];

	lineage_time(ns, 0, iso);
	return json_object_new_string(iso);
}

/* A UUID as OpenLineage's runId wants it: 8-4-4-4-12 hex digits. */
static bool
looks_like_uuid(const char *s)
{
	if (s == NULL || strlen(s) != 36)
		return false;
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

static int
prepare(sqlite3 *db, const char *sql, sqlite3_stmt **statement)
{
	return sqlite3_prepare_v2(db, sql, -1, statement, NULL) == SQLITE_OK ? 0 : -1;
}

static const char *
column_text(sqlite3_stmt *statement, int column)
{
	return (const char *)sqlite3_column_text(statement, column);
}

/* The dataset's name for a path of a mount; NULL when out of memory. */
static json_object *
dataset_name(const struct openlineage *ol, const char *mount_point, const char *path)
{
	char *name =
	    lineage_dataset_name(&ol->path_map, mount_point ? mount_point : "", path ? path : "");
	json_object *jso = lineage_jstr(name);

	free(name);
	return jso;
}

/* ---- the run and its root process ----------------------------------------------- */

struct run_row {
	char *uuid, *job_name, *host;
	char *parent_namespace, *parent_job_name, *parent_run_id;
	char *root_parent_namespace, *root_parent_job_name, *root_parent_run_id;
	int64_t root_pid, root_start_ns, started_ns, ended_ns;
	bool ended;
	bool end_unknown; /* closed by a later daemon: ended_ns is when it found the root gone */
};

static void
run_row_release(struct run_row *run)
{
	free(run->uuid);
	free(run->job_name);
	free(run->host);
	free(run->parent_namespace);
	free(run->parent_job_name);
	free(run->parent_run_id);
	free(run->root_parent_namespace);
	free(run->root_parent_job_name);
	free(run->root_parent_run_id);
}

static char *
dup_column(sqlite3_stmt *statement, int column)
{
	const char *text = column_text(statement, column);

	return text ? strdup(text) : NULL;
}

/* 0, 1 when there is no such run, -1 on a store error. */
static int
load_run(sqlite3 *db, int64_t run_id, struct run_row *run)
{
	sqlite3_stmt *s = NULL;
	int rc;

	memset(run, 0, sizeof(*run));
	if (prepare(db,
	            "SELECT uuid, job_name, host, parent_namespace, parent_job_name, "
	            "parent_run_id, root_pid, root_start_ns, started_ns, ended_ns, "
	            "root_parent_namespace, root_parent_job_name, root_parent_run_id, "
	            "end_unknown FROM runs WHERE id = ?",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		run->uuid = dup_column(s, 0);
		run->job_name = dup_column(s, 1);
		run->host = dup_column(s, 2);
		run->parent_namespace = dup_column(s, 3);
		run->parent_job_name = dup_column(s, 4);
		run->parent_run_id = dup_column(s, 5);
		run->root_pid = sqlite3_column_int64(s, 6);
		run->root_start_ns = sqlite3_column_int64(s, 7);
		run->started_ns = sqlite3_column_int64(s, 8);
		run->ended = sqlite3_column_type(s, 9) != SQLITE_NULL;
		run->ended_ns = sqlite3_column_int64(s, 9);
		run->root_parent_namespace = dup_column(s, 10);
		run->root_parent_job_name = dup_column(s, 11);
		run->root_parent_run_id = dup_column(s, 12);
		run->end_unknown = sqlite3_column_int(s, 13) != 0;
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? 1 : -1;
	}
	sqlite3_finalize(s);
	return rc;
}

/*
 * The process row whose image a facet describes: the run's root, as it
 * started (terminal false) or as it exited; or, when the root never
 * touched the mount, the run's first recorded process.  1 with *process_id
 * set, 0 for a run without processes, -1 on a store error.
 */
static int
facet_process(sqlite3 *db, int64_t run_id, int64_t root_pid, int64_t root_start_ns, bool terminal,
              int64_t *process_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (prepare(db,
	            "SELECT id FROM processes WHERE run_id = ?1 "
	            "ORDER BY pid = ?2 AND start_ns = ?3 DESC, "
	            "CASE WHEN pid = ?2 AND start_ns = ?3 THEN exec_index * ?4 ELSE id END LIMIT 1",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	sqlite3_bind_int64(s, 2, root_pid);
	sqlite3_bind_int64(s, 3, root_start_ns);
	sqlite3_bind_int(s, 4, terminal ? -1 : 1);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*process_id = sqlite3_column_int64(s, 0);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(s);
	return rc;
}

int
openlineage_start_process(sqlite3 *db, int64_t run_id, int64_t *process_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (prepare(db, "SELECT root_pid, root_start_ns FROM runs WHERE id = ?1", &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		rc = facet_process(db, run_id, sqlite3_column_int64(s, 0),
		                   sqlite3_column_int64(s, 1), false, process_id);
	else
		rc = rc == SQLITE_DONE ? 0 : -1;
	sqlite3_finalize(s);
	return rc;
}

/*
 * The provfs_process facet of the run's root (the image it started with for
 * START, the image that exited for the terminal event), or of its
 * first recorded process when the root never touched the mount.  Sets
 * *event_type from the root's exit when terminal.
 */
static int
process_facet(sqlite3 *db, int64_t run_id, const struct run_row *run, bool terminal,
              json_object **out, const char **event_type)
{
	sqlite3_stmt *s = NULL;
	json_object *f = NULL;
	int64_t process_id;
	int rc;

	*out = NULL;
	*event_type = terminal ? "COMPLETE" : "START";
	rc = facet_process(db, run_id, run->root_pid, run->root_start_ns, terminal, &process_id);
	if (rc <= 0)
		return rc; /* 0: a run without processes has no facet */
	if (prepare(db,
	            "SELECT p.pid, p.start_ns, p.executable, p.executable_hash, p.argv, p.uid, "
	            "p.exit_status, p.exit_known, p.exited_ns, p.pid = ?2 AND p.start_ns = ?3, "
	            "m.id, m.host, m.mount_point, p.cwd "
	            "FROM processes p LEFT JOIN mount_sessions m ON m.id = p.mount_session_id "
	            "WHERE p.id = ?1",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, process_id);
	sqlite3_bind_int64(s, 2, run->root_pid);
	sqlite3_bind_int64(s, 3, run->root_start_ns);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW) {
		rc = -1;
		goto out;
	}
	f = facet(URL_PROCESS);
	char ref[64];
	snprintf(ref, sizeof(ref), "%lld@%lld", (long long)sqlite3_column_int64(s, 0),
	         (long long)(sqlite3_column_int64(s, 1) / 1000000000));
	add(f, "process", json_object_new_string(ref));
	add(f, "root", json_object_new_boolean(sqlite3_column_int(s, 9)));
	add(f, "executable", lineage_jcol(s, 2));
	if (column_text(s, 3)) {
		char hash[64];
		snprintf(hash, sizeof(hash), "xxh3-128:%s", column_text(s, 3));
		add(f, "executableHash", json_object_new_string(hash));
	}
	add(f, "argv", lineage_jargv(s, 4));
	add(f, "cwd", lineage_jcol(s, 13));
	int64_t uid = sqlite3_column_int64(s, 5);
	add(f, "uid", json_object_new_int64(uid));
	struct passwd pwd, *found = NULL;
	char pwbuf[1024];
	if (getpwuid_r((uid_t)uid, &pwd, pwbuf, sizeof(pwbuf), &found) == 0 && found)
		add(f, "user", lineage_jstr(found->pw_name));
	add(f, "host", lineage_jstr(run->host));
	if (sqlite3_column_type(s, 10) != SQLITE_NULL) {
		json_object *session = json_object_new_object();
		add(session, "id", json_object_new_int64(sqlite3_column_int64(s, 10)));
		add(session, "host", lineage_jcol(s, 11));
		add(session, "mountPoint", lineage_jcol(s, 12));
		add(f, "mountSession", session);
	}
	if (terminal && run->end_unknown) {
		/*
		 * No daemon saw the root end: the one recording the run stopped
		 * first, and a later one found the root gone at eventTime.
		 */
		add(f, "exitStatus", json_object_new_string("unknown"));
		add(f, "endUnknown", json_object_new_boolean(1));
		*event_type = "ABORT";
	} else if (terminal) {
		bool is_root = sqlite3_column_int(s, 9);
		bool known =
		    is_root && sqlite3_column_int(s, 7) && sqlite3_column_type(s, 6) != SQLITE_NULL;
		int status = sqlite3_column_int(s, 6);
		if (!known) {
			add(f, "exitStatus", json_object_new_string("unknown"));
		} else if (WIFSIGNALED(status)) {
			add(f, "exitStatus", json_object_new_string("killed"));
			add(f, "signal", json_object_new_int(WTERMSIG(status)));
			*event_type = "ABORT";
		} else {
			add(f, "exitStatus", json_object_new_string("exited"));
			add(f, "exitCode", json_object_new_int(WEXITSTATUS(status)));
			*event_type = WEXITSTATUS(status) == 0 ? "COMPLETE" : "FAIL";
		}
	} else {
		add(f, "exitStatus", json_object_new_string("running"));
	}
	*out = f;
	rc = 0;
out:
	sqlite3_finalize(s);
	return rc;
}

static json_object *
run_object(const struct run_row *run, json_object *process)
{
	json_object *object = json_object_new_object(), *facets = json_object_new_object();

	add(object, "runId", json_object_new_string(run->uuid));
	if (run->parent_namespace && run->parent_job_name && looks_like_uuid(run->parent_run_id)) {
		json_object *parent = facet(URL_PARENT), *prun = json_object_new_object(),
		            *pjob = json_object_new_object();
		add(prun, "runId", lineage_jstr(run->parent_run_id));
		add(pjob, "namespace", lineage_jstr(run->parent_namespace));
		add(pjob, "name", lineage_jstr(run->parent_job_name));
		add(parent, "run", prun);
		add(parent, "job", pjob);
		if (run->root_parent_namespace && run->root_parent_job_name &&
		    looks_like_uuid(run->root_parent_run_id)) {
			json_object *root = json_object_new_object(),
			            *rrun = json_object_new_object(),
			            *rjob = json_object_new_object();
			add(rrun, "runId", lineage_jstr(run->root_parent_run_id));
			add(rjob, "namespace", lineage_jstr(run->root_parent_namespace));
			add(rjob, "name", lineage_jstr(run->root_parent_job_name));
			add(root, "run", rrun);
			add(root, "job", rjob);
			add(parent, "root", root);
		}
		add(facets, "parent", parent);
	}
	json_object *engine = facet(URL_ENGINE);
	add(engine, "version", json_object_new_string(PROVFS_VERSION));
	add(engine, "name", json_object_new_string("provfs"));
	add(engine, "openlineageAdapterVersion", json_object_new_string(PROVFS_VERSION));
	add(facets, "processing_engine", engine);
	add(facets, "provfs_process", process);
	add(object, "facets", facets);
	return object;
}

static json_object *
job_object(const struct openlineage *ol, const struct run_row *run)
{
	json_object *object = json_object_new_object(), *facets = json_object_new_object();
	json_object *type = facet(URL_JOB_TYPE);

	add(object, "namespace", lineage_jstr(ol->job_namespace ? ol->job_namespace : run->host));
	add(object, "name", lineage_jstr(run->job_name));
	add(type, "processingType", json_object_new_string("BATCH"));
	add(type, "integration", json_object_new_string("PROVFS"));
	add(type, "jobType", json_object_new_string("JOB"));
	add(facets, "jobType", type);
	add(object, "facets", facets);
	return object;
}

/* ---- datasets -------------------------------------------------------------------- */

/*
 * Columns shared by the input and output queries, from 0: v.number,
 * v.size, v.hash, v.hash_state, v.label, v.origin, f.device, f.inode,
 * f.host, m.id, m.host, m.mount_point, a.path, v.hash_method.
 */
#define DATASET_COLUMN_COUNT 14
#define DATASET_COLUMNS                                                                            \
	"v.number, v.size, v.hash, v.hash_state, v.label, v.origin, f.device, f.inode, f.host, "   \
	"m.id, m.host, m.mount_point, a.path, v.hash_method"

static json_object *
dataset_base(const struct openlineage *ol, const char *mount_point, const char *path,
             json_object **facets)
{
	json_object *dataset = json_object_new_object(), *type = facet(URL_TYPE);

	add(dataset, "namespace", lineage_jstr(ol->dataset_namespace));
	add(dataset, "name", dataset_name(ol, mount_point, path));
	*facets = json_object_new_object();
	add(type, "datasetType", json_object_new_string("FILE"));
	add(*facets, "datasetType", type);
	add(dataset, "facets", *facets);
	return dataset;
}

/* The version facets of a dataset row of DATASET_COLUMNS. */
static json_object *
version_dataset(const struct openlineage *ol, sqlite3_stmt *s, json_object **facets)
{
	json_object *dataset = dataset_base(ol, column_text(s, 11), column_text(s, 12), facets);
	json_object *file_version = facet(URL_FILE_VERSION);
	const char *hash = column_text(s, 2), *label = column_text(s, 4);

	if (hash) {
		char value[64];
		json_object *version = facet(URL_VERSION);
		snprintf(value, sizeof(value), "xxh3-128:%s", hash);
		add(version, "datasetVersion", json_object_new_string(value));
		add(*facets, "version", version);
	}
	if (label) {
		json_object *tags = facet(URL_TAGS), *list = json_object_new_array(),
		            *tag = json_object_new_object();
		add(tag, "key", json_object_new_string("classification"));
		add(tag, "value", lineage_jstr(label));
		add(tag, "source", json_object_new_string("PROVFS"));
		json_object_array_add(list, tag);
		add(tags, "tags", list);
		add(*facets, "tags", tags);
	}
	add(file_version, "version", json_object_new_int64(sqlite3_column_int64(s, 0)));
	add(file_version, "size", json_object_new_int64(sqlite3_column_int64(s, 1)));
	add(file_version, "hashAlgorithm", json_object_new_string("xxh3-128"));
	add(file_version, "hash", lineage_jstr(hash));
	add(file_version, "hashState", lineage_jcol(s, 3));
	add(file_version, "hashMethod", lineage_jcol(s, 13));
	add(file_version, "origin", lineage_jcol(s, 5));
	add(file_version, "label", lineage_jstr(label));
	add(file_version, "device", json_object_new_int64(sqlite3_column_int64(s, 6)));
	add(file_version, "inode", json_object_new_int64(sqlite3_column_int64(s, 7)));
	add(file_version, "host", lineage_jcol(s, 8));
	json_object *session = json_object_new_object();
	add(session, "id", json_object_new_int64(sqlite3_column_int64(s, 9)));
	add(session, "host", lineage_jcol(s, 10));
	add(session, "mountPoint", lineage_jcol(s, 11));
	add(file_version, "mountSession", session);
	add(file_version, "path", lineage_jcol(s, 12));
	add(*facets, "provfs_fileVersion", file_version);
	return dataset;
}

static json_object *
statistics(const char *url, int64_t size)
{
	json_object *f = facet(url);

	add(f, "size", json_object_new_int64(size));
	add(f, "fileCount", json_object_new_int(1));
	return f;
}

static int
add_inputs(const struct openlineage *ol, sqlite3 *db, int64_t run_id, json_object *inputs)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (prepare(db,
	            "SELECT " DATASET_COLUMNS ", min(a.opened_ns) FROM accesses a "
	            "JOIN processes p ON p.id = a.process_id "
	            "JOIN versions v ON v.id = a.read_version_id "
	            "JOIN files f ON f.id = v.file_id "
	            "JOIN mount_sessions m ON m.id = a.mount_session_id "
	            "WHERE p.run_id = ?1 AND NOT EXISTS (SELECT 1 FROM processes w WHERE "
	            "w.id = v.producer_process_id AND w.run_id = ?1) "
	            "GROUP BY v.id ORDER BY min(a.opened_ns), v.id",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_object *facets, *dataset = version_dataset(ol, s, &facets);
		json_object *input_facets = json_object_new_object();
		add(input_facets, "inputStatistics",
		    statistics(URL_INPUT_STATS, sqlite3_column_int64(s, 1)));
		add(dataset, "inputFacets", input_facets);
		json_object_array_add(inputs, dataset);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

static json_object *
lifecycle(const char *change)
{
	json_object *f = facet(URL_LIFECYCLE);

	add(f, "lifecycleStateChange", json_object_new_string(change));
	return f;
}

static int
add_outputs(const struct openlineage *ol, sqlite3 *db, int64_t run_id, json_object *outputs)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (prepare(
	        db,
	        "SELECT " DATASET_COLUMNS ", max(a.opened_ns), "
	        "EXISTS (SELECT 1 FROM accesses t JOIN processes tp ON tp.id = t.process_id "
	        "  WHERE t.written_version_id = v.id AND t.open_flags & ?2 AND tp.run_id = ?1), "
	        "EXISTS (SELECT 1 FROM namespace_events e JOIN processes ep ON "
	        "  ep.id = e.process_id WHERE e.file_id = v.file_id AND e.kind = 'truncate' "
	        "  AND ep.run_id = ?1) "
	        "FROM accesses a JOIN processes p ON p.id = a.process_id "
	        "JOIN versions v ON v.id = a.written_version_id "
	        "JOIN files f ON f.id = v.file_id "
	        "JOIN mount_sessions m ON m.id = a.mount_session_id "
	        "WHERE p.run_id = ?1 GROUP BY v.id ORDER BY v.id",
	        &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	sqlite3_bind_int(s, 2, O_TRUNC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		json_object *facets, *dataset = version_dataset(ol, s, &facets);
		json_object *output_facets = json_object_new_object();
		const char *origin = column_text(s, 5);
		if (sqlite3_column_int64(s, 0) == 1 && origin && strcmp(origin, "written") == 0)
			add(facets, "lifecycleStateChange", lifecycle("CREATE"));
		else if (sqlite3_column_int(s, DATASET_COLUMN_COUNT + 1)) /* opened with O_TRUNC */
			add(facets, "lifecycleStateChange", lifecycle("OVERWRITE"));
		else if (sqlite3_column_int(s, DATASET_COLUMN_COUNT + 2)) /* truncated */
			add(facets, "lifecycleStateChange", lifecycle("TRUNCATE"));
		add(output_facets, "outputStatistics",
		    statistics(URL_OUTPUT_STATS, sqlite3_column_int64(s, 1)));
		add(dataset, "outputFacets", output_facets);
		json_object_array_add(outputs, dataset);
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE)
		return -1;

	/* Names the run changed: renames and unlinks, as datasets of their own. */
	if (prepare(db,
	            "SELECT e.kind, e.path, e.new_path, m.mount_point FROM namespace_events e "
	            "JOIN processes p ON p.id = e.process_id "
	            "JOIN mount_sessions m ON m.id = e.mount_session_id "
	            "WHERE p.run_id = ?1 AND e.kind IN ('rename', 'unlink') AND e.path IS NOT NULL "
	            "ORDER BY e.time_ns, e.id",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *kind = column_text(s, 0), *mount_point = column_text(s, 3);
		bool rename = strcmp(kind, "rename") == 0;
		json_object *facets, *dataset;
		if (rename && column_text(s, 2) == NULL)
			continue;
		dataset = dataset_base(ol, mount_point, column_text(s, rename ? 2 : 1), &facets);
		json_object *change = lifecycle(rename ? "RENAME" : "DROP");
		if (rename) {
			json_object *previous = json_object_new_object();
			add(previous, "name", dataset_name(ol, mount_point, column_text(s, 1)));
			add(previous, "namespace", lineage_jstr(ol->dataset_namespace));
			add(change, "previousIdentifier", previous);
		}
		add(facets, "lifecycleStateChange", change);
		json_object_array_add(outputs, dataset);
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* ---- events ------------------------------------------------------------------------ */

int
openlineage_build(const struct openlineage *ol, sqlite3 *db, int64_t run_id,
                  enum openlineage_stage stage, char **event, const char **event_type)
{
	bool terminal = stage == OPENLINEAGE_TERMINAL;
	struct run_row run;
	json_object *root = NULL, *process = NULL, *inputs, *outputs;
	int rc;

	*event = NULL;
	*event_type = NULL;
	rc = load_run(db, run_id, &run);
	if (rc)
		return rc;
	if (terminal && !run.ended) {
		rc = 1;
		goto out;
	}
	if ((rc = process_facet(db, run_id, &run, terminal, &process, event_type)) < 0)
		goto out;
	if (terminal && run.end_unknown)
		*event_type = "ABORT"; /* a run without processes too */
	root = json_object_new_object();
	add(root, "eventTime", time_string(terminal ? run.ended_ns : run.started_ns));
	add(root, "producer", json_object_new_string(OPENLINEAGE_PRODUCER));
	add(root, "schemaURL", json_object_new_string(OPENLINEAGE_SCHEMA_URL));
	add(root, "eventType", json_object_new_string(*event_type));
	add(root, "run", run_object(&run, process));
	add(root, "job", job_object(ol, &run));
	inputs = json_object_new_array();
	outputs = json_object_new_array();
	add(root, "inputs", inputs);
	add(root, "outputs", outputs);
	if (terminal &&
	    (add_inputs(ol, db, run_id, inputs) || add_outputs(ol, db, run_id, outputs))) {
		rc = -1;
		goto out;
	}
	*event = strdup(lineage_json_text(root));
	rc = *event ? 0 : -1;
out:
	json_object_put(root);
	run_row_release(&run);
	return rc;
}

#define RUN_TOUCHED(run)                                                                           \
	"(EXISTS (SELECT 1 FROM processes tp JOIN accesses ta ON ta.process_id = tp.id "           \
	"WHERE tp.run_id = " run ") OR EXISTS (SELECT 1 FROM processes tp JOIN namespace_events "  \
	"te ON te.process_id = tp.id WHERE tp.run_id = " run "))"

int
openlineage_run_touched(sqlite3 *db, int64_t run_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (prepare(db, "SELECT " RUN_TOUCHED("?1"), &s))
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	rc = sqlite3_step(s);
	rc = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) != 0 : -1;
	sqlite3_finalize(s);
	return rc;
}

int
openlineage_export(const struct openlineage *ol, sqlite3 *db, int64_t since_ns, const char *job,
                   FILE *out)
{
	sqlite3_stmt *s = NULL;
	int rc;

	/* Every event in time order; a run's START before its terminal event. */
	if (prepare(db,
	            "SELECT id, started_ns AS t, 0 AS stage FROM runs "
	            "WHERE started_ns >= ?1 AND (?2 IS NULL OR job_name = ?2) AND " RUN_TOUCHED(
	                "runs.id") " UNION ALL SELECT id, ended_ns, 1 FROM runs WHERE "
	                           "ended_ns IS NOT NULL AND started_ns >= ?1 AND (?2 IS NULL OR "
	                           "job_name = ?2) AND " RUN_TOUCHED(
	                               "runs.id") " ORDER BY t, stage, id",
	            &s))
		return -1;
	sqlite3_bind_int64(s, 1, since_ns);
	if (job)
		sqlite3_bind_text(s, 2, job, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		char *event;
		const char *type;
		int built = openlineage_build(ol, db, sqlite3_column_int64(s, 0),
		                              sqlite3_column_int(s, 2) ? OPENLINEAGE_TERMINAL
		                                                       : OPENLINEAGE_START,
		                              &event, &type);
		if (built < 0) {
			rc = SQLITE_ERROR;
			break;
		}
		if (built == 0) {
			fputs(event, out);
			fputc('\n', out);
			free(event);
		}
	}
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}
