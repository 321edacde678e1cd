/*
 * query_stats.c - stats (the store itself: size, counts, recorder counters)
 * and report (the provenance section of a datasheet or model card).
 *
 * report summarizes the lineage of a file's current version for a person
 * who signs off on it: what produced it and when, every source dataset with
 * version, hash and label and whether it changed outside provfs, the jobs and
 * executables (with hashes) involved, the open gaps and the refused accesses.
 * Markdown is its text form; names in it are escaped for the terminal first
 * and then for Markdown, so a hostile name can neither inject markup nor
 * break a table.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "query_i.h"

/* --- stats -------------------------------------------------------------------- */

static const char *const counted_tables[] = {
    "mount_sessions", "runs",          "processes",          "files",
    "file_names",     "versions",      "accesses",           "namespace_events",
    "denials",        "label_changes", "openlineage_outbox",
};

static int64_t
file_size(const char *path, const char *suffix)
{
	struct qbuf name = QBUF_INIT;
	struct stat st;
	int rc;

	qbuf_init(&name);
	qbuf_addf(&name, "%s%s", path, suffix);
	rc = stat(name.buf, &st);
	qbuf_release(&name);
	return rc == 0 ? (int64_t)st.st_size : Q_NONE;
}

static int
single_int(struct query *q, sqlite3_stmt *statement, int64_t *value)
{
	int rc;

	if (statement == NULL)
		return -1;
	rc = q_step(q, statement);
	if (rc < 0)
		return -1;
	*value = rc == SQLITE_ROW ? q_col_int(statement, 0) : Q_NONE;
	sqlite3_reset(statement);
	return 0;
}

int
cmd_stats(struct query *q)
{
	json_object *doc = NULL, *counts = NULL, *recorders = NULL;
	int64_t n[sizeof(counted_tables) / sizeof(counted_tables[0])];
	int64_t schema, external, pending, outbox, first, last;
	int64_t size = file_size(q->store_path, ""), wal = file_size(q->store_path, "-wal");
	struct q_table table;
	sqlite3_stmt *statement;
	int status = 2, rc;

	q_table_init(&table, 2);
	/* Table names are from the fixed list above, never from input. */
	static const char *const count_sql[] = {
	    "SELECT COUNT(*) FROM mount_sessions",
	    "SELECT COUNT(*) FROM runs",
	    "SELECT COUNT(*) FROM processes",
	    "SELECT COUNT(*) FROM files",
	    "SELECT COUNT(*) FROM file_names",
	    "SELECT COUNT(*) FROM versions",
	    "SELECT COUNT(*) FROM accesses",
	    "SELECT COUNT(*) FROM namespace_events",
	    "SELECT COUNT(*) FROM denials",
	    "SELECT COUNT(*) FROM label_changes",
	    "SELECT COUNT(*) FROM openlineage_outbox",
	};
	for (size_t i = 0; i < sizeof(count_sql) / sizeof(count_sql[0]); i++)
		if (single_int(q, q_prepare(q, count_sql[i]), &n[i]) < 0)
			goto out;
	if (single_int(q, q_prepare(q, "PRAGMA user_version"), &schema) < 0 ||
	    single_int(q, q_prepare(q, "SELECT COUNT(*) FROM versions WHERE origin = 'external'"),
	               &external) < 0 ||
	    single_int(q,
	               q_prepare(q, "SELECT COUNT(*) FROM openlineage_outbox "
	                            "WHERE delivered_ns IS NULL"),
	               &outbox) < 0 ||
	    single_int(q, q_prepare(q, "SELECT SUM(hash_backlog) FROM recorder_stats"), &pending) <
	        0 ||
	    single_int(q, q_prepare(q, "SELECT MIN(started_ns) FROM mount_sessions"), &first) < 0 ||
	    single_int(q, q_prepare(q, "SELECT MAX(started_ns) FROM runs"), &last) < 0)
		goto out;

	if (q->format == Q_FORMAT_JSON) {
		doc = q_jdoc(q);
		counts = json_object_new_object();
		recorders = json_object_new_array();
		json_object_object_add(doc, "store", q_jstr(q->store_path));
		json_object_object_add(doc, "schema_version", q_jint(schema));
		json_object_object_add(doc, "size", q_jint(size));
		json_object_object_add(doc, "wal_size", q_jint(wal));
		json_object_object_add(doc, "first_mount", q_jtime(first));
		json_object_object_add(doc, "last_run", q_jtime(last));
		for (size_t i = 0; i < sizeof(counted_tables) / sizeof(counted_tables[0]); i++)
			json_object_object_add(counts, counted_tables[i], q_jint(n[i]));
		json_object_object_add(counts, "external_versions", q_jint(external));
		json_object_object_add(counts, "openlineage_undelivered", q_jint(outbox));
		json_object_object_add(doc, "counts", counts);
		counts = NULL;
	} else {
		q_print_field("", "store", "%s", q_tx(q, q->store_path));
		if (wal != Q_NONE && wal > 0)
			q_print_field("", "size", "%s (+ %s write-ahead log), schema version %lld",
			              q_size(size), q_size(wal), (long long)schema);
		else
			q_print_field("", "size", "%s, schema version %lld", q_size(size),
			              (long long)schema);
		q_print_field("", "recording", "since %s, newest run started %s", q_when(q, first),
		              q_when(q, last));
		putchar('\n');
		for (size_t i = 0; i < sizeof(counted_tables) / sizeof(counted_tables[0]); i++) {
			char value[32];
			snprintf(value, sizeof(value), "%lld", (long long)n[i]);
			q_table_add(&table, counted_tables[i], value);
		}
		char value[32];
		snprintf(value, sizeof(value), "%lld", (long long)external);
		q_table_add(&table, "  of versions: external", value);
		snprintf(value, sizeof(value), "%lld", (long long)outbox);
		q_table_add(&table, "  of outbox: undelivered", value);
		q_table_print(&table, "  ");
	}

	statement =
	    q_prepare(q, "SELECT m.host, m.mount_point, m.backing_dir, m.stopped_ns, "
	                 "s.events_queued, s.events_written, s.events_lost, s.batches, "
	                 "s.queue_high_water, s.queue_capacity, s.hash_backlog, s.hashes_done, "
	                 "s.store_errors, s.last_error, s.updated_ns, m.id, s.queue_length, "
	                 "s.hashes_unhashed, m.stopped_ns IS NULL AND EXISTS (SELECT 1 FROM "
	                 "mount_sessions n WHERE n.host = m.host AND n.mount_point = m.mount_point "
	                 "AND n.started_ns > m.started_ns) "
	                 "FROM recorder_stats s JOIN mount_sessions m ON m.id = s.mount_session_id "
	                 "ORDER BY m.started_ns");
	if (statement == NULL)
		goto out;
	if (!doc)
		printf("\nrecorders:\n");
	size_t sessions = 0;
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		static const char *const names[] = {
		    "events_queued", "events_written",   "events_lost",
		    "batches",       "queue_high_water", "queue_capacity",
		    "hash_backlog",  "hashes_done",      "store_errors",
		};
		sessions++;
		if (doc) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "mount_session_id",
			                       q_jint(q_col_int(statement, 15)));
			json_object_object_add(
			    j, "host", q_jstr((const char *)sqlite3_column_text(statement, 0)));
			json_object_object_add(
			    j, "mount_point",
			    q_jstr((const char *)sqlite3_column_text(statement, 1)));
			json_object_object_add(
			    j, "backing_dir",
			    q_jstr((const char *)sqlite3_column_text(statement, 2)));
			json_object_object_add(j, "stopped", q_jtime(q_col_int(statement, 3)));
			for (int i = 0; i < 9; i++)
				json_object_object_add(j, names[i],
				                       q_jint(q_col_int(statement, 4 + i)));
			json_object_object_add(
			    j, "last_error",
			    q_jstr((const char *)sqlite3_column_text(statement, 13)));
			json_object_object_add(j, "updated", q_jtime(q_col_int(statement, 14)));
			json_object_object_add(j, "queue_length", q_jint(q_col_int(statement, 16)));
			json_object_object_add(j, "hashes_unhashed",
			                       q_jint(q_col_int(statement, 17)));
			/* Mounted again later without having been unmounted: the daemon
			 * died, and what was queued behind its last batch was lost. */
			json_object_object_add(
			    j, "crashed", json_object_new_boolean(sqlite3_column_int(statement, 18)));
			json_object_array_add(recorders, j);
		} else {
			q_print_wrappedf("  ", "      ", "%s:%s (%s)%s, updated %s",
			       q_tx(q, (const char *)sqlite3_column_text(statement, 0)),
			       q_tx(q, (const char *)sqlite3_column_text(statement, 1)),
			       q_tx(q, (const char *)sqlite3_column_text(statement, 2)),
			       sqlite3_column_type(statement, 3) == SQLITE_NULL ? "" : ", stopped",
			       q_when(q, q_col_int(statement, 14)));
			q_print_wrappedf(
			    "    ", "      ",
			    "events %lld queued, %lld written, %lld lost in %lld batches; "
			    "queue high water %lld of %lld",
			    (long long)q_col_int(statement, 4), (long long)q_col_int(statement, 5),
			    (long long)q_col_int(statement, 6), (long long)q_col_int(statement, 7),
			    (long long)q_col_int(statement, 8), (long long)q_col_int(statement, 9));
			q_print_wrappedf("    ", "      ", "hashes %lld done, %lld waiting; %lld store errors%s%s",
			       (long long)q_col_int(statement, 11),
			       (long long)q_col_int(statement, 10),
			       (long long)q_col_int(statement, 12),
			       sqlite3_column_type(statement, 13) == SQLITE_NULL ? "" : ", last: ",
			       sqlite3_column_type(statement, 13) == SQLITE_NULL
			           ? ""
			           : q_tx(q, (const char *)sqlite3_column_text(statement, 13)));
			if (q_col_int(statement, 17) > 0)
				printf("    %lld versions left unhashed (hash queue full)\n",
				       (long long)q_col_int(statement, 17));
			if (sqlite3_column_int(statement, 18))
				q_print_wrappedf("    ", "      ",
				                 "ended without unmount (daemon killed): the events "
				                 "queued after its last batch were lost (%lld were "
				                 "queued then)",
				       (long long)q_col_int(statement, 16));
		}
	}
	if (rc < 0)
		goto out;
	if (doc) {
		json_object_object_add(doc, "recorders", recorders);
		recorders = NULL;
		if (q_openlineage_stats(q, doc) < 0)
			goto out;
		status = q_emit_json(q, doc);
		doc = NULL;
	} else {
		if (sessions == 0)
			printf("  (no recorder counters yet)\n");
		status = q_openlineage_stats(q, NULL) < 0 ? 2 : 0;
	}
	(void)pending;
out:
	json_object_put(counts);
	json_object_put(recorders);
	json_object_put(doc);
	q_table_release(&table);
	return status;
}

/* --- report ------------------------------------------------------------------- */

/* Text already escaped for a terminal, made inert for Markdown (no markup, no table break). */
static const char *
md_text(const char *text)
{
	static struct qbuf ring[8];
	static unsigned next;
	struct qbuf *out = &ring[next++ % 8];

	qbuf_reset(out);
	for (const char *p = text; *p; p++) {
		if (strchr("\\`*_{}[]<>|~&#!", *p))
			qbuf_addc(out, '\\');
		qbuf_addc(out, *p);
	}
	return out->buf;
}

/* A Markdown list item, its lines wrapped at 80 columns. */
__attribute__((format(printf, 1, 2))) static void
md_item(const char *fmt, ...)
{
	va_list ap;
	char *text;

	va_start(ap, fmt);
	if (vasprintf(&text, fmt, ap) < 0)
		abort();
	va_end(ap);
	q_print_markdown("- ", "  ", text);
	free(text);
}

/* A name for Markdown: terminal-safe first, then inert. */
static const char *
md(struct query *q, const char *s)
{
	return md_text(q_tx(q, s));
}

static bool
changed_outside(struct query *q, const struct q_version *v)
{
	sqlite3_stmt *statement;
	bool changed = v->origin && strcmp(v->origin, "external") == 0;

	if (changed)
		return true;
	statement = q_prepare(q, "SELECT 1 FROM versions WHERE file_id = ? AND number > ? AND "
	                         "origin = 'external' LIMIT 1");
	if (statement == NULL)
		return false;
	q_bind_int(statement, 1, v->file_id);
	q_bind_int(statement, 2, v->number);
	changed = q_step(q, statement) == SQLITE_ROW;
	sqlite3_reset(statement);
	return changed;
}

struct gap {
	const char *kind;
	char *text;
};

static void
gap_add(struct gap **gaps, size_t *count, const char *kind, char *text)
{
	*gaps = realloc(*gaps, (*count + 1) * sizeof(**gaps));
	if (*gaps == NULL)
		abort();
	(*gaps)[*count].kind = kind;
	(*gaps)[(*count)++].text = text;
}

int
cmd_report(struct query *q)
{
	struct q_target target;
	struct q_file file = {0};
	struct q_version version = {0};
	struct q_graph *graph = NULL;
	struct gap *gaps = NULL;
	size_t gap_count = 0;
	enum q_disk_state disk;
	const struct q_process *producer = NULL;
	const struct q_run *producer_run = NULL;
	char now_iso[QUERY_TIME_BUFSIZE];
	json_object *doc = NULL;
	int status, rc;

	status = q_resolve(q, q->args[0], Q_NONE, &target);
	if (status)
		return status;
	status = 2;
	if (q_file_load(q, target.file_id, &file) != 0)
		goto out;
	rc = q_version_find(q, target.file_id, Q_NONE, &version);
	if (rc != 0) {
		status = rc < 0 ? 2 : q_error(q, 1, "%s: no version recorded", q->args[0]);
		goto out;
	}
	disk = q_disk_check(q, &file, &version);
	graph = q_lineage_build(q, version.id);
	if (graph == NULL)
		goto out;
	/* The producer: the first process the walk reached from node 0. */
	for (size_t i = 0; i < q_graph_count(graph) && producer == NULL; i++) {
		const struct q_process *p = q_graph_process(graph, i);
		if (p && version.producer_id != Q_NONE) {
			for (size_t k = 0; k < p->image_count; k++)
				if (p->images[k].id == version.producer_id) {
					producer = p;
					producer_run = q_graph_run(graph, i);
				}
		}
	}

	/* Gaps. */
	if (disk == Q_DISK_DIFFERS || disk == Q_DISK_MISSING) {
		struct qbuf t = QBUF_INIT;
		qbuf_init(&t);
		qbuf_addf(&t,
		          "the file on disk %s the last recorded version (run provfs-query verify)",
		          disk == Q_DISK_MISSING ? "is missing:" : "no longer matches");
		gap_add(&gaps, &gap_count, "changed_since_recorded", qbuf_detach(&t));
	}
	for (size_t i = 0; i < q_graph_count(graph); i++) {
		const struct q_version *v = q_graph_version(graph, i);
		struct qbuf t = QBUF_INIT;
		if (v == NULL)
			continue;
		qbuf_init(&t);
		if (v->origin && strcmp(v->origin, "external") == 0) {
			qbuf_addf(&t, "%s v%lld was changed outside provfs (unattributed)", v->path,
			          (long long)v->number);
			gap_add(&gaps, &gap_count, "external_version", qbuf_detach(&t));
		} else if (v->hash == NULL) {
			qbuf_addf(&t, "%s v%lld has no content hash (%s)", v->path,
			          (long long)v->number, v->hash_state ? v->hash_state : "none");
			gap_add(&gaps, &gap_count, "unhashed_version", qbuf_detach(&t));
		} else if (v->producer_id == Q_NONE && v->origin &&
		           strcmp(v->origin, "initial") == 0) {
			qbuf_addf(
			    &t,
			    "%s v%lld existed before provfs first saw it: its history is unknown",
			    v->path, (long long)v->number);
			gap_add(&gaps, &gap_count, "unknown_history", qbuf_detach(&t));
		}
		qbuf_release(&t);
	}
	for (size_t i = 0; i < q_graph_count(graph); i++) {
		const struct q_process *p = q_graph_process(graph, i);
		if (p == NULL || q_process_last(p)->executable_hash)
			continue;
		struct qbuf t = QBUF_INIT;
		qbuf_init(&t);
		qbuf_addf(&t, "the executable of %s (%s) was not hashed", q_process_ref(p),
		          q_process_last(p)->executable ? q_process_last(p)->executable : "?");
		gap_add(&gaps, &gap_count, "unhashed_executable", qbuf_detach(&t));
	}
	if (q_graph_truncated(graph))
		gap_add(&gaps, &gap_count, "truncated", strdup("the lineage was cut at --depth"));
	{
		sqlite3_stmt *statement = q_prepare(
		    q, "SELECT host, backing_dir, mount_point FROM mount_sessions "
		       "WHERE backing_exposed = 1 AND backing_dir = ? GROUP BY host, backing_dir");
		if (statement == NULL)
			goto out;
		sqlite3_bind_text(statement, 1, file.backing_dir, -1, SQLITE_STATIC);
		while ((rc = q_step(q, statement)) == SQLITE_ROW) {
			struct qbuf t = QBUF_INIT;
			qbuf_init(&t);
			qbuf_addf(&t,
			          "the backing directory %s on %s was reachable by other users "
			          "outside the mount",
			          (const char *)sqlite3_column_text(statement, 1),
			          (const char *)sqlite3_column_text(statement, 0));
			gap_add(&gaps, &gap_count, "exposed_backing_dir", qbuf_detach(&t));
		}
		if (rc < 0)
			goto out;
	}

	query_time_iso(q->now_ns, now_iso);
	if (q->format == Q_FORMAT_JSON) {
		json_object *sources = json_object_new_array(),
		            *intermediates = json_object_new_array();
		json_object *processes = json_object_new_array(), *jgaps = json_object_new_array();
		json_object *denials = json_object_new_array(), *programs = json_object_new_array();
		doc = q_jdoc(q);
		json_object_object_add(doc, "file", q_file_json(&file));
		json_object_object_add(doc, "version", q_version_json(&version));
		json_object_object_add(doc, "disk",
		                       json_object_new_string(q_disk_state_name(disk)));
		json_object_object_add(doc, "producer",
		                       producer ? q_process_json(q, producer) : NULL);
		json_object_object_add(doc, "run", producer_run ? q_run_json(producer_run) : NULL);
		for (size_t i = 1; i < q_graph_count(graph); i++) {
			const struct q_version *v = q_graph_version(graph, i);
			const struct q_process *p = q_graph_process(graph, i);
			if (v) {
				json_object *j = q_version_json(v);
				json_object_object_add(
				    j, "changed_outside_provfs",
				    json_object_new_boolean(changed_outside(q, v)));
				json_object_array_add(q_graph_is_code(graph, i)     ? programs
				                      : q_graph_is_source(graph, i) ? sources
				                                                    : intermediates,
				                      j);
			} else {
				json_object *j = q_process_json(q, p);
				const struct q_run *run = q_graph_run(graph, i);
				json_object_object_add(j, "run", run ? q_run_json(run) : NULL);
				json_object_array_add(processes, j);
			}
		}
		json_object_object_add(doc, "sources", sources);
		json_object_object_add(doc, "intermediates", intermediates);
		json_object_object_add(doc, "programs", programs);
		json_object_object_add(doc, "processes", processes);
		for (size_t i = 0; i < gap_count; i++) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "kind", json_object_new_string(gaps[i].kind));
			json_object_object_add(j, "text", q_jstr(gaps[i].text));
			json_object_array_add(jgaps, j);
		}
		json_object_object_add(doc, "gaps", jgaps);
		json_object_object_add(doc, "denials", denials);
		json_object_object_add(doc, "generated", json_object_new_string(now_iso));
		json_object_object_add(doc, "host", q_jstr(q->host));
		json_object_object_add(doc, "store", q_jstr(q->store_path));
	}

	/* Refused accesses to anything in the lineage (the labels work fills denials). */
	for (size_t i = 0; i < q_graph_count(graph); i++) {
		const struct q_version *v = q_graph_version(graph, i);
		sqlite3_stmt *statement;
		if (v == NULL)
			continue;
		statement =
		    q_prepare(q, "SELECT path, uid, label, clearance, rule, time_ns FROM denials "
		                 "WHERE file_id = ? ORDER BY time_ns");
		if (statement == NULL)
			goto out;
		q_bind_int(statement, 1, v->file_id);
		while ((rc = q_step(q, statement)) == SQLITE_ROW) {
			const char *path = (const char *)sqlite3_column_text(statement, 0);
			int64_t uid = q_col_int(statement, 1);
			const char *label = (const char *)sqlite3_column_text(statement, 2);
			const char *clearance = (const char *)sqlite3_column_text(statement, 3);
			const char *rule = (const char *)sqlite3_column_text(statement, 4);
			int64_t time_ns = q_col_int(statement, 5);
			if (doc) {
				json_object *j = json_object_new_object();
				json_object_object_add(j, "path", q_jstr(path));
				json_object_object_add(j, "uid", q_jint(uid));
				json_object_object_add(j, "user", q_jstr(q_user_name(uid)));
				json_object_object_add(j, "label", q_jstr(label));
				json_object_object_add(j, "clearance", q_jstr(clearance));
				json_object_object_add(j, "rule", q_jstr(rule));
				json_object_object_add(j, "time", q_jtime(time_ns));
				json_object_array_add(json_object_object_get(doc, "denials"), j);
			} else {
				struct qbuf t = QBUF_INIT;
				char iso[QUERY_TIME_BUFSIZE];
				qbuf_init(&t);
				query_time_iso(time_ns, iso);
				qbuf_addf(&t, "%s: %s (clearance %s) was refused %s (%s); rule: %s",
				          iso, md(q, q_user_name(uid)), md(q, clearance),
				          md(q, path), md(q, label), md(q, rule));
				gap_add(&gaps, &gap_count, "denial", qbuf_detach(&t));
			}
		}
		if (rc < 0)
			goto out;
	}

	if (doc) {
		status = q_emit_json(q, doc);
		doc = NULL;
		goto out;
	}

	/*
	 * Markdown that reads as text too: no tables (a row cannot wrap), but
	 * list items whose lines wrap at 80 columns (md_item).
	 */
	char iso[QUERY_TIME_BUFSIZE];
	printf("## Provenance of %s\n\n", md(q, file.path));
	md_item("**File**: %s, version %lld", md(q, file.path), (long long)version.number);
	query_time_iso(version.recorded_ns, iso);
	md_item("**Recorded**: %s", iso);
	md_item("**Content hash**: XXH3-128 `%s`", version.hash ? version.hash : "none");
	md_item("**Size**: %s (%lld bytes)", q_size(version.size), (long long)version.size);
	md_item("**Label**: %s", version.effective_label ? md(q, version.effective_label) : "none");
	md_item("**On disk**: %s",
	        disk == Q_DISK_MATCHES   ? "matches the recorded size and modification time"
	        : disk == Q_DISK_DIFFERS ? "**differs from the recorded version**"
	        : disk == Q_DISK_MISSING ? "**missing**"
	        : disk == Q_DISK_REMOVED ? "removed through provfs"
	                                 : "not checked (another host)");
	if (producer) {
		const struct q_image *last = q_process_last(producer);
		md_item("**Produced by**: %s",
		        md_text(q_argv_text(q, last->argv, last->argc, last->executable)));
		md_item("**Executable**: %s, XXH3-128 `%s`", md(q, last->executable),
		        last->executable_hash ? last->executable_hash : "not hashed");
		md_item("**Process**: %s on %s, user %s", q_process_ref(producer),
		        md(q, producer->host), md(q, q_user_name(last->uid)));
		if (producer_run) {
			query_time_iso(producer_run->started_ns, iso);
			md_item("**Job**: %s, run `%s`, started %s", md(q, producer_run->job_name),
			        producer_run->uuid, iso);
		}
	} else {
		md_item("**Produced by**: %s",
		        version.origin && strcmp(version.origin, "external") == 0
		            ? "**changed outside provfs (unattributed)**"
		            : "unknown (the file existed before provfs first saw it)");
	}

	printf("\n### Source datasets\n\n");
	size_t sources = 0, intermediates = 0;
	for (size_t i = 1; i < q_graph_count(graph); i++) {
		const struct q_version *v = q_graph_version(graph, i);
		if (v == NULL || q_graph_is_code(graph, i) || !q_graph_is_source(graph, i))
			continue;
		sources++;
		query_time_iso(v->recorded_ns, iso);
		md_item("%s, version %lld%s%s: XXH3-128 `%s`, recorded %s%s", md(q, v->path),
		        (long long)v->number, v->effective_label ? ", label " : "",
		        v->effective_label ? md(q, v->effective_label) : "", v->hash ? v->hash : "none", iso,
		        changed_outside(q, v) ? ", **changed outside provfs**" : "");
	}
	if (sources == 0)
		printf("None recorded.\n");
	for (size_t i = 1; i < q_graph_count(graph); i++)
		intermediates += q_graph_version(graph, i) && !q_graph_is_code(graph, i) &&
		                 !q_graph_is_source(graph, i);
	if (intermediates) {
		printf("\n### Intermediate datasets\n\n");
		for (size_t i = 1; i < q_graph_count(graph); i++) {
			const struct q_version *v = q_graph_version(graph, i);
			if (v == NULL || q_graph_is_code(graph, i) || q_graph_is_source(graph, i))
				continue;
			query_time_iso(v->recorded_ns, iso);
			md_item("%s, version %lld%s%s: XXH3-128 `%s`, recorded %s", md(q, v->path),
			        (long long)v->number, v->effective_label ? ", label " : "",
			        v->effective_label ? md(q, v->effective_label) : "", v->hash ? v->hash : "none", iso);
		}
	}
	size_t programs = 0;
	for (size_t i = 1; i < q_graph_count(graph); i++)
		programs += q_graph_version(graph, i) && q_graph_is_code(graph, i);
	if (programs) {
		printf("\n### Programs and scripts read from the mount\n\n");
		for (size_t i = 1; i < q_graph_count(graph); i++) {
			const struct q_version *v = q_graph_version(graph, i);
			if (v == NULL || !q_graph_is_code(graph, i))
				continue;
			query_time_iso(v->recorded_ns, iso);
			md_item("%s, version %lld: XXH3-128 `%s`, recorded %s%s", md(q, v->path),
			        (long long)v->number, v->hash ? v->hash : "none", iso,
			        changed_outside(q, v) ? ", **changed outside provfs**" : "");
		}
	}
	printf("\n### Jobs and executables\n\n");
	for (size_t i = 0; i < q_graph_count(graph); i++) {
		const struct q_process *p = q_graph_process(graph, i);
		const struct q_run *run = q_graph_run(graph, i);
		if (p == NULL)
			continue;
		const struct q_image *last = q_process_last(p);
		md_item("%s%s%s%s%s process %s: %s, XXH3-128 `%s`, ran %s",
		        run ? "job " : "", run ? md(q, run->job_name) : "", run ? ", run `" : "",
		        run ? run->uuid : "", run ? "`," : "", q_process_ref(p),
		        md(q, last->executable),
		        last->executable_hash ? last->executable_hash : "none",
		        md_text(q_argv_text(q, last->argv, last->argc, last->executable)));
	}
	printf("\n### Open gaps\n\n");
	if (gap_count == 0)
		printf(
		    "None: every version in the lineage was produced through provfs and hashed.\n");
	for (size_t i = 0; i < gap_count; i++)
		md_item("%s",
		        strcmp(gaps[i].kind, "denial") == 0 ? gaps[i].text : md(q, gaps[i].text));
	putchar('\n');
	q_print_wrappedf("", "", "_Generated by provfs-query %s on %s at %s from the store %s._",
	                 PROVFS_VERSION, md(q, q->host), now_iso, md(q, q->store_path));
	status = 0;
out:
	json_object_put(doc);
	for (size_t i = 0; i < gap_count; i++)
		free(gaps[i].text);
	free(gaps);
	q_graph_free(graph);
	q_version_release(&version);
	q_file_release(&file);
	q_target_release(&target);
	return status;
}
