/*
 * query_export.c - provfs-query export, and lineage in the W3C PROV formats.
 *
 * The documents themselves are built by lineage/ (openlineage.h,
 * prov_export.h), which the daemon shares for live delivery; this file
 * chooses the scope from the command line and reports errors in
 * provfs-query's one-line manner.  Nothing reaches stdout before the whole
 * document is built: it is written to a memory stream first, so an error
 * half-way leaves no half a document behind.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "openlineage.h"
#include "prov_export.h"
#include "query_i.h"

/* provfs.conf for the [openlineage] naming keys (namespace, dataset_namespace, path_map). */
static struct provfs_config *
load_config(struct query *q)
{
	char error[1024];
	struct provfs_config *config = config_load(q->config_path, error, sizeof(error));

	if (config == NULL)
		q_error(q, 2, "%s", error);
	return config;
}

/* Copy a finished memory stream to stdout; 0, or 2 when stdout failed. */
static int
emit(struct query *q, char *text, size_t length)
{
	if (length && fwrite(text, 1, length, stdout) != length)
		return q_error(q, 2, "cannot write the output: %s", strerror(errno));
	return 0;
}

static int
write_prov(struct query *q, struct prov_document *doc, enum prov_format format)
{
	char *text = NULL;
	size_t length = 0;
	FILE *memory = open_memstream(&text, &length);
	int status;

	if (memory == NULL)
		return q_error(q, 2, "out of memory");
	if (prov_write(doc, q->db, format, memory) < 0) {
		fclose(memory);
		free(text);
		return q_store_error(q);
	}
	if (fclose(memory) != 0) {
		free(text);
		return q_error(q, 2, "out of memory");
	}
	status = emit(q, text, length);
	free(text);
	return status;
}

/* prov_add_runs()'s progress, on the bar (a terminal only). */
static void
show_prov_progress(void *context, int64_t done, int64_t total)
{
	struct q_progress *progress = context;

	progress->total = total;
	q_progress_update(progress, done);
}

int
cmd_export(struct query *q)
{
	struct provfs_config *config;
	int64_t since = q->since_ns == Q_NONE ? INT64_MIN : q->since_ns;
	int status = 2;

	if (q->format != Q_FORMAT_OPENLINEAGE && q->format != Q_FORMAT_PROV_JSON &&
	    q->format != Q_FORMAT_PROV_O)
		return q_error(q, 2, "--format openlineage, prov-json or prov-o is required");
	/* A job never recorded is a negative answer, before any document. */
	if ((status = q_check_job(q)) != 0)
		return status;
	config = load_config(q);
	if (config == NULL)
		return 2;
	if (q->format == Q_FORMAT_OPENLINEAGE) {
		char error[256], *text = NULL;
		size_t length = 0;
		struct openlineage *ol = openlineage_new(config, error, sizeof(error));
		FILE *memory;

		if (ol == NULL) {
			status = q_error(q, 2, "%s", error);
			goto out;
		}
		struct q_progress progress;
		q_progress_start(q, &progress, "writing", "events", 0);
		memory = q_progress_memstream(&progress, &text, &length);
		if (memory == NULL) {
			openlineage_free(ol);
			status = q_error(q, 2, "out of memory");
			goto out;
		}
		int rc = openlineage_export(ol, q->db, since, q->job, memory);
		openlineage_free(ol);
		int closed = fclose(memory);
		q_progress_end(&progress);
		if (closed != 0 || rc < 0) {
			free(text);
			status = rc < 0 ? q_store_error(q) : q_error(q, 2, "out of memory");
			goto out;
		}
		status = emit(q, text, length);
		free(text);
	} else {
		struct prov_document *doc = prov_document_new(config);
		if (doc == NULL) {
			status = q_error(q, 2, "out of memory");
			goto out;
		}
		struct q_progress progress;
		q_progress_start(q, &progress, "reading", "processes", 0);
		/* Counting the processes first costs a query: only for a bar. */
		int rc = prov_add_runs(doc, q->db, since, q->job,
		                       progress.enabled ? show_prov_progress : NULL, &progress);
		q_progress_end(&progress);
		if (rc < 0)
			status = q_store_error(q);
		else
			status = write_prov(q, doc,
			                    q->format == Q_FORMAT_PROV_JSON ? PROV_FORMAT_JSON
			                                                    : PROV_FORMAT_O);
		prov_document_free(doc);
	}
out:
	config_free(config);
	return status;
}

int
cmd_lineage_prov(struct query *q)
{
	struct provfs_config *config;
	struct prov_document *doc = NULL;
	struct q_target target;
	struct q_version version;
	struct q_graph *graph = NULL;
	int status, rc;

	status = q_resolve(q, q->args[0], q->at_ns, &target);
	if (status)
		return status;
	if (q->at_ns != Q_NONE)
		rc = q_version_at(q, target.file_id, q->at_ns, &version);
	else
		rc = q_version_find(q, target.file_id, q->version, &version);
	q_target_release(&target);
	if (rc != 0)
		return rc < 0 ? 2 : q_error(q, 1, "%s: no such version recorded", q->args[0]);
	graph = q_lineage_build(q, version.id);
	q_version_release(&version);
	if (graph == NULL)
		return 2;
	config = load_config(q);
	if (config == NULL) {
		q_graph_free(graph);
		return 2;
	}
	doc = prov_document_new(config);
	if (doc == NULL) {
		status = q_error(q, 2, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < q_graph_count(graph); i++) {
		const struct q_version *v = q_graph_version(graph, i);
		const struct q_process *p = q_graph_process(graph, i);
		if ((v && prov_add_version(doc, q->db, v->id) < 0) ||
		    (p && prov_add_process(doc, q->db, p->id) < 0)) {
			status = q_store_error(q);
			goto out;
		}
	}
	status =
	    write_prov(q, doc, q->format == Q_FORMAT_PROV_JSON ? PROV_FORMAT_JSON : PROV_FORMAT_O);
out:
	prov_document_free(doc);
	config_free(config);
	q_graph_free(graph);
	return status;
}

/*
 * The OpenLineage outbox for stats: queued (waiting for delivery), sent,
 * retried (failed attempts, each later resent), dead-lettered (refused for
 * good, with the response), and the oldest event still queued.  Added to
 * doc as "openlineage", or printed as text when doc is NULL.
 */
int
q_openlineage_stats(struct query *q, json_object *doc)
{
	sqlite3_stmt *s =
	    q_prepare(q, "SELECT count(*) FILTER (WHERE delivered_ns IS NULL AND dead_ns IS NULL), "
	                 "count(delivered_ns), coalesce(sum(attempts), 0) - count(delivered_ns) - "
	                 "count(dead_ns), count(dead_ns), "
	                 "min(created_ns) FILTER (WHERE delivered_ns IS NULL AND dead_ns IS NULL) "
	                 "FROM openlineage_outbox");
	int64_t queued, sent, retried, dead, oldest;
	json_object *stats = NULL, *letters = NULL;
	int rc;

	if (s == NULL || q_step(q, s) != SQLITE_ROW)
		return -1;
	queued = q_col_int(s, 0);
	sent = q_col_int(s, 1);
	retried = q_col_int(s, 2);
	dead = q_col_int(s, 3);
	oldest = q_col_int(s, 4);
	if (doc) {
		stats = json_object_new_object();
		json_object_object_add(stats, "queued", q_jint(queued));
		json_object_object_add(stats, "sent", q_jint(sent));
		json_object_object_add(stats, "retried", q_jint(retried));
		json_object_object_add(stats, "dead_lettered", q_jint(dead));
		json_object_object_add(stats, "oldest_queued", q_jtime(oldest));
		letters = json_object_new_array();
		json_object_object_add(stats, "dead_letters", letters);
		json_object_object_add(doc, "openlineage", stats);
	} else {
		printf("\nopenlineage outbox:\n  queued %lld, sent %lld, retried %lld, "
		       "dead-lettered %lld\n",
		       (long long)queued, (long long)sent, (long long)retried, (long long)dead);
		if (oldest != Q_NONE)
			printf("  oldest queued event: %s\n", q_when(q, oldest));
	}
	s = q_prepare(q, "SELECT o.id, r.uuid, r.job_name, o.event_type, o.dead_ns, o.response "
	                 "FROM openlineage_outbox o LEFT JOIN runs r ON r.id = o.run_id "
	                 "WHERE o.dead_ns IS NOT NULL ORDER BY o.id DESC LIMIT 20");
	if (s == NULL)
		return -1;
	while ((rc = q_step(q, s)) == SQLITE_ROW) {
		char *uuid = q_col_text(s, 1), *job = q_col_text(s, 2), *type = q_col_text(s, 3);
		char *response = q_col_text(s, 5);
		if (letters) {
			json_object *letter = json_object_new_object();
			json_object_object_add(letter, "id", q_jint(q_col_int(s, 0)));
			json_object_object_add(letter, "run", q_jstr(uuid));
			json_object_object_add(letter, "job", q_jstr(job));
			json_object_object_add(letter, "event_type", q_jstr(type));
			json_object_object_add(letter, "dead", q_jtime(q_col_int(s, 4)));
			json_object_object_add(letter, "response", q_jstr(response));
			json_object_array_add(letters, letter);
		} else {
			printf("  dead letter %lld: %s of %s (run %s), %s: %s\n",
			       (long long)q_col_int(s, 0), q_tx(q, type), q_tx(q, job),
			       q_tx(q, uuid), q_when(q, q_col_int(s, 4)), q_tx(q, response));
		}
		free(uuid);
		free(job);
		free(type);
		free(response);
	}
	return rc == SQLITE_DONE ? 0 : -1;
}
