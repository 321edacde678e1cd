/*
 * query_commands.c - the record-level commands of provfs-query: producer,
 * history, process, run and runs.  Each reads a handful of rows through
 * indexes (see store/schema.sql) and prints them as text or JSON; lineage
 * and impact, which walk the graph, are in query_graph.c.
 */
#include <assert.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "query_i.h"

/* One access: what a process read or wrote, as a version. */
struct access {
	int64_t process_id; /* the processes row (image) that opened it */
	int64_t version_id;
	char *path; /* path at open */
	int64_t opened_ns;
	int64_t closed_ns;
	int64_t bytes; /* -1: unknown (kernel passthrough) */
	bool is_exec;
	bool intermediate; /* run inputs: produced by the run itself */
	struct q_version version;
};

struct access_list {
	struct access *items;
	size_t count, alloc;
};

static void
access_list_release(struct access_list *list)
{
	for (size_t i = 0; i < list->count; i++) {
		free(list->items[i].path);
		q_version_release(&list->items[i].version);
	}
	free(list->items);
	memset(list, 0, sizeof(*list));
}

static bool
access_list_has(const struct access_list *list, int64_t version_id)
{
	for (size_t i = 0; i < list->count; i++)
		if (list->items[i].version_id == version_id)
			return true;
	return false;
}

/*
 * Append the rows of statement (columns: process_id, version_id, path,
 * opened_ns, closed_ns, bytes, is_exec), one per version unless all, then
 * load each new version.  Returns 0 or -1 after a store error.
 */
static int
access_list_fill(struct query *q, sqlite3_stmt *statement, struct access_list *list, bool all)
{
	size_t first = list->count;
	int rc;

	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		int64_t version_id = sqlite3_column_int64(statement, 1);
		struct access *a;

		if (!all && access_list_has(list, version_id))
			continue;
		if (list->count == list->alloc) {
			list->alloc = list->alloc ? list->alloc * 2 : 16;
			list->items = realloc(list->items, list->alloc * sizeof(*list->items));
			if (list->items == NULL)
				abort();
		}
		a = &list->items[list->count++];
		memset(a, 0, sizeof(*a));
		a->process_id = sqlite3_column_int64(statement, 0);
		a->version_id = version_id;
		a->path = q_col_text(statement, 2);
		a->opened_ns = q_col_int(statement, 3);
		a->closed_ns = q_col_int(statement, 4);
		a->bytes = sqlite3_column_type(statement, 5) == SQLITE_NULL ? -1
										: q_col_int(statement, 5);
		a->is_exec = sqlite3_column_int(statement, 6) != 0;
	}
	if (rc < 0)
		return -1;
	for (size_t i = first; i < list->count; i++)
		if (q_version_load(q, list->items[i].version_id, &list->items[i].version) < 0)
			return -1;
	return 0;
}

/* What the images of a process read (before cutoff_ns unless Q_NONE) or wrote. */
static int
process_accesses(struct query *q, const struct q_process *process, bool writes, int64_t cutoff_ns,
                 struct access_list *list)
{
	for (size_t i = 0; i < process->image_count; i++) {
		sqlite3_stmt *statement =
		    writes ? q_prepare(q, "SELECT a.process_id, a.written_version_id, a.path, "
		                          "a.opened_ns, a.closed_ns, a.bytes_written, a.is_exec "
		                          "FROM accesses a WHERE a.process_id = ?1 AND "
		                          "a.written_version_id IS NOT NULL ORDER BY a.opened_ns")
		           : q_prepare(q, "SELECT a.process_id, a.read_version_id, a.path, "
		                          "a.opened_ns, a.closed_ns, a.bytes_read, a.is_exec "
		                          "FROM accesses a WHERE a.process_id = ?1 AND "
		                          "a.read_version_id IS NOT NULL AND "
		                          "(?2 IS NULL OR a.opened_ns <= ?2) ORDER BY a.opened_ns");
		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, process->images[i].id);
		if (!writes)
			q_bind_int(statement, 2, cutoff_ns);
		if (access_list_fill(q, statement, list, false) < 0)
			return -1;
	}
	return 0;
}

static json_object *
access_json(const struct access *a, const char *via)
{
	json_object *o = json_object_new_object();

	json_object_object_add(o, "version", q_version_json(&a->version));
	json_object_object_add(o, "path", q_jstr(a->path));
	json_object_object_add(o, "process_id", q_jint(a->process_id));
	json_object_object_add(o, "opened", q_jtime(a->opened_ns));
	json_object_object_add(o, "closed", q_jtime(a->closed_ns));
	json_object_object_add(o, "bytes", a->bytes < 0 ? NULL : q_jint(a->bytes));
	json_object_object_add(o, "is_exec", json_object_new_boolean(a->is_exec));
	if (via)
		json_object_object_add(o, "via", json_object_new_string(via));
	return o;
}

static json_object *
access_list_json(const struct access_list *list, const char *via)
{
	json_object *array = json_object_new_array();

	for (size_t i = 0; i < list->count; i++)
		json_object_array_add(array, access_json(&list->items[i], via));
	return array;
}

/*
 * Print accesses [from, to) of list as an aligned table: version, path,
 * hash, size, when, note.  A range, because producer keeps the process's
 * own inputs and the rest of its run's in one list (so that none is listed
 * twice) and prints them under two headings.
 */
static void
access_list_print(struct query *q, const struct access_list *list, size_t from, size_t to,
                  bool with_process)
{
	struct q_table table;

	assert(from <= to && to <= list->count);
	q_table_init(&table, 6);
	for (size_t i = from; i < to; i++) {
		const struct access *a = &list->items[i];
		const struct q_version *v = &a->version;
		struct qbuf note = QBUF_INIT;
		char number[32];

		qbuf_init(&note);
		snprintf(number, sizeof(number), "v%lld", (long long)v->number);
		if (a->is_exec)
			qbuf_adds(&note, "executed ");
		if (a->intermediate)
			qbuf_adds(&note, "(made by this run) ");
		if (v->origin && strcmp(v->origin, "external") == 0)
			qbuf_adds(&note, "CHANGED OUTSIDE PROVFS ");
		if (with_process) {
			struct q_process p;
			if (q_process_load(q, a->process_id, &p) == 0) {
				qbuf_adds(&note, "by ");
				q_process_line(q, &note, &p);
				q_process_release(&p);
			}
		}
		q_table_add(&table, q_tx(q, a->path ? a->path : v->path), number,
		            q_short_hash(v->hash, v->hash_state), q_size(v->size),
		            q_when(q, a->opened_ns), note.buf);
		qbuf_release(&note);
	}
	q_table_print(&table, "  ");
	q_table_release(&table);
}

static const char *
exit_text(int64_t status)
{
	static char buf[32];

	if (status == Q_NONE)
		return "exit status unknown";
	if (WIFEXITED((int)status))
		snprintf(buf, sizeof(buf), "exit %d", WEXITSTATUS((int)status));
	else if (WIFSIGNALED((int)status))
		snprintf(buf, sizeof(buf), "killed by signal %d", WTERMSIG((int)status));
	else
		snprintf(buf, sizeof(buf), "status %lld", (long long)status);
	return buf;
}

/* The detail lines of a process, as producer and process print them. */
static void
print_process_detail(struct query *q, const struct q_process *process, const char *indent)
{
	const struct q_image *first = &process->images[0], *last = q_process_last(process);
	char duration[QUERY_TIME_BUFSIZE];

	for (size_t i = 0; i < process->image_count; i++) {
		const struct q_image *image = &process->images[i];
		q_print_field(indent, i ? "then exec'd" : "program", "%s",
		              q_argv_text(q, image->argv, image->argc, image->executable));
		q_print_field(indent, "", "%s  xxh3 %s", q_tx(q, image->executable),
		              image->executable_hash ? q_tx(q, image->executable_hash)
		                                     : "(not hashed)");
	}
	q_print_field(indent, "user", "%s (uid %lld), host %s", q_tx(q, q_user_name(last->uid)),
	              (long long)last->uid, q_tx(q, process->host));
	if (last->cwd)
		q_print_field(indent, "directory", "%s", q_tx(q, last->cwd));
	q_print_field(indent, "started", "%s", q_when(q, process->start_ns));
	if (last->exited_ns != Q_NONE) {
		query_time_duration(last->exited_ns - process->start_ns, duration);
		q_print_field(indent, "exited", "%s after %s, %s", q_when(q, last->exited_ns),
		              duration, exit_text(last->exit_status));
	} else {
		q_print_field(indent, "exited", "%s", "not seen (still running, or not recorded)");
	}
	(void)first;
}

/* A run's fields; its id too unless a heading above already names it. */
static void
print_run_detail(struct query *q, const struct q_run *run, const char *indent, bool with_id)
{
	char duration[QUERY_TIME_BUFSIZE];

	q_print_field(indent, "job", "%s (named by %s)", q_tx(q, run->job_name),
	              q_tx(q, run->named_by));
	if (with_id)
		q_print_field(indent, "run", "%s", q_tx(q, run->uuid));
	if (run->ended_ns != Q_NONE && !run->end_unknown) {
		query_time_duration(run->ended_ns - run->started_ns, duration);
		q_print_field(indent, "run started", "%s, took %s", q_when(q, run->started_ns),
		              duration);
	} else {
		q_print_field(indent, "run started", "%s", q_when(q, run->started_ns));
	}
	if (run->end_unknown)
		q_print_field(indent, "run ended", "aborted, when unknown: the daemon recording it "
		              "stopped first; its root was found gone %s",
		              q_when(q, run->ended_ns));
	if (run->parent_run_id || run->parent_job_name)
		q_print_field(indent, "orchestrator", "%s/%s run %s",
		              q_tx(q, run->parent_namespace), q_tx(q, run->parent_job_name),
		              q_tx(q, run->parent_run_id));
}

/* --- producer ------------------------------------------------------------------ */

/* The latest close of the process's writes of version_id; Q_NONE when any is open. */
static int
write_cutoff(struct query *q, const struct q_process *process, int64_t version_id, int64_t *cutoff)
{
	sqlite3_stmt *statement = q_prepare(
	    q, "SELECT process_id, MAX(closed_ns), COUNT(*) - COUNT(closed_ns) FROM accesses "
	       "WHERE written_version_id = ? GROUP BY process_id");
	int64_t latest = INT64_MIN;
	bool open = false;
	int rc;

	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, version_id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		int64_t image = sqlite3_column_int64(statement, 0);
		for (size_t i = 0; i < process->image_count; i++) {
			if (process->images[i].id != image)
				continue;
			if (sqlite3_column_int64(statement, 2) ||
			    sqlite3_column_type(statement, 1) == SQLITE_NULL)
				open = true;
			else if (sqlite3_column_int64(statement, 1) > latest)
				latest = sqlite3_column_int64(statement, 1);
		}
	}
	if (rc < 0)
		return -1;
	*cutoff = open || latest == INT64_MIN ? Q_NONE : latest;
	return 0;
}

/* The other processes that wrote version_id (leads of their OS processes). */
static int
other_writers(struct query *q, int64_t version_id, const struct q_process *producer,
              struct q_process **list, size_t *count)
{
	sqlite3_stmt *statement =
	    q_prepare(q, "SELECT DISTINCT process_id FROM accesses WHERE written_version_id = ?");
	int64_t *ids = NULL;
	size_t n = 0;

	*list = NULL;
	*count = 0;
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, version_id);
	if (q_collect_ids(q, statement, &ids, &n) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		struct q_process p;
		bool dup = false;

		if (q_process_load(q, ids[i], &p) != 0)
			continue;
		dup = producer && p.id == producer->id;
		for (size_t j = 0; j < *count && !dup; j++)
			dup = (*list)[j].id == p.id;
		if (dup) {
			q_process_release(&p);
			continue;
		}
		*list = realloc(*list, (*count + 1) * sizeof(**list));
		if (*list == NULL)
			abort();
		(*list)[(*count)++] = p;
	}
	free(ids);
	return 0;
}

int
cmd_producer(struct query *q)
{
	struct q_target target;
	struct q_file file = {0};
	struct q_version version = {0};
	struct q_process process = {0}, *writers = NULL;
	struct q_run run = {0};
	struct access_list inputs = {0};
	size_t writer_count = 0, own = 0;
	bool have_process = false, have_run = false;
	enum q_disk_state disk;
	int64_t cutoff = Q_NONE;
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
	if (version.producer_id != Q_NONE) {
		rc = q_process_load(q, version.producer_id, &process);
		if (rc < 0)
			goto out;
		have_process = rc == 0;
	}
	if (have_process) {
		const struct q_image *last = q_process_last(&process);
		int64_t run_id = last->run_id;
		for (size_t i = 0; i < process.image_count && run_id == Q_NONE; i++)
			run_id = process.images[i].run_id;
		if (run_id != Q_NONE) {
			rc = q_run_load(q, run_id, &run);
			if (rc < 0)
				goto out;
			have_run = rc == 0;
		}
		if (write_cutoff(q, &process, version.id, &cutoff) < 0 ||
		    process_accesses(q, &process, false, cutoff, &inputs) < 0)
			goto out;
	}
	if (other_writers(q, version.id, have_process ? &process : NULL, &writers, &writer_count) <
	    0)
		goto out;
	own = inputs.count;
	if (have_run) {
		/* Appended to the process's own inputs, so that none is listed twice. */
		sqlite3_stmt *statement = q_prepare(
		    q, "SELECT a.process_id, a.read_version_id, a.path, a.opened_ns, a.closed_ns, "
		       "a.bytes_read, a.is_exec FROM processes p JOIN accesses a ON "
		       "a.process_id = p.id WHERE p.run_id = ?1 AND a.read_version_id IS NOT NULL "
		       "AND a.opened_ns <= ?2 ORDER BY a.opened_ns");
		if (statement == NULL)
			goto out;
		q_bind_int(statement, 1, run.id);
		q_bind_int(statement, 2, cutoff != Q_NONE ? cutoff : version.recorded_ns);
		if (access_list_fill(q, statement, &inputs, false) < 0)
			goto out;
		for (size_t i = own; i < inputs.count; i++) {
			struct access *a = &inputs.items[i];
			struct q_process p;
			if (a->version.producer_id != Q_NONE &&
			    q_process_load(q, a->version.producer_id, &p) == 0) {
				for (size_t j = 0; j < p.image_count; j++)
					a->intermediate |= p.images[j].run_id == run.id;
				q_process_release(&p);
			}
		}
	}

	if (q->format == Q_FORMAT_JSON) {
		json_object *doc = q_jdoc(q), *array = json_object_new_array(), *all;
		json_object_object_add(doc, "file", q_file_json(&file));
		json_object_object_add(doc, "version", q_version_json(&version));
		json_object_object_add(doc, "disk",
		                       json_object_new_string(q_disk_state_name(disk)));
		json_object_object_add(doc, "process",
		                       have_process ? q_process_json(q, &process) : NULL);
		json_object_object_add(doc, "run", have_run ? q_run_json(&run) : NULL);
		for (size_t i = 0; i < writer_count; i++)
			json_object_array_add(array, q_process_json(q, &writers[i]));
		json_object_object_add(doc, "other_writers", array);
		all = json_object_new_array();
		for (size_t i = 0; i < inputs.count; i++) {
			json_object *j = access_json(&inputs.items[i], i < own ? "process" : "run");
			if (i >= own)
				json_object_object_add(
				    j, "intermediate",
				    json_object_new_boolean(inputs.items[i].intermediate));
			json_object_array_add(all, j);
		}
		json_object_object_add(doc, "inputs", all);
		status = q_emit_json(q, doc);
		goto out;
	}

	struct qbuf line = QBUF_INIT;
	qbuf_init(&line);
	q_version_line(q, &line, &version);
	q_print_wrapped("", "    ", line.buf);
	qbuf_release(&line);
	q_print_field("  ", "recorded", "%s", q_when(q, version.recorded_ns));
	switch (disk) {
	case Q_DISK_MATCHES:
		q_print_field("  ", "on disk", "%s", "same size and mtime as recorded");
		break;
	case Q_DISK_DIFFERS:
		q_print_field("  ", "on disk", "%s",
		              "CHANGED since recorded (size or mtime differ); run provfs-query "
		              "verify");
		break;
	case Q_DISK_MISSING:
		q_print_field("  ", "on disk", "%s", "MISSING from the backing directory");
		break;
	case Q_DISK_REMOVED:
		q_print_field("  ", "on disk", "removed through provfs %s",
		              q_when(q, file.removed_ns));
		break;
	default:
		q_print_field("  ", "on disk", "%s", "not checked (file is on another host)");
		break;
	}
	if (have_process) {
		q_print_field("  ", "produced by", "process %s", q_process_ref(&process));
		print_process_detail(q, &process, "  ");
		if (have_run)
			print_run_detail(q, &run, "  ", true);
	} else if (version.origin && strcmp(version.origin, "external") == 0) {
		q_print_field("  ", "produced by", "%s",
		              "CHANGED OUTSIDE PROVFS: no process of a provfs mount wrote this "
		              "version (unattributed)");
	} else if (version.origin && strcmp(version.origin, "initial") == 0) {
		q_print_field("  ", "produced by", "%s",
		              "unknown: the file existed before provfs first saw it");
	} else {
		q_print_field("  ", "produced by", "%s",
		              "unknown: the producing process was not recorded");
	}
	for (size_t i = 0; i < writer_count; i++) {
		struct qbuf who = QBUF_INIT;
		qbuf_init(&who);
		q_process_line(q, &who, &writers[i]);
		q_print_field("  ", "also written", "%s", who.buf);
		qbuf_release(&who);
	}
	if (have_process) {
		printf("\ninputs read by the process (%zu):\n", own);
		access_list_print(q, &inputs, 0, own, false);
	}
	if (inputs.count > own) {
		printf("\ninputs read by other processes of the run before it (%zu):\n",
		       inputs.count - own);
		access_list_print(q, &inputs, own, inputs.count, true);
	}
	status = 0;
out:
	access_list_release(&inputs);
	for (size_t i = 0; i < writer_count; i++)
		q_process_release(&writers[i]);
	free(writers);
	q_run_release(&run);
	q_process_release(&process);
	q_version_release(&version);
	q_file_release(&file);
	q_target_release(&target);
	return status;
}

/* --- history ------------------------------------------------------------------ */

int
cmd_history(struct query *q)
{
	struct q_target target;
	struct q_file file = {0};
	struct q_table table;
	json_object *doc = NULL, *versions = NULL, *names = NULL, *events = NULL;
	int64_t *ids = NULL;
	size_t count = 0;
	sqlite3_stmt *statement;
	int status, rc;

	status = q_resolve(q, q->args[0], Q_NONE, &target);
	if (status)
		return status;
	status = 2;
	q_table_init(&table, 6);
	if (q_file_load(q, target.file_id, &file) != 0)
		goto out;
	statement = q_prepare(q, "SELECT id FROM versions WHERE file_id = ? ORDER BY number");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, file.id);
	if (q_collect_ids(q, statement, &ids, &count) < 0)
		goto out;

	if (q->format == Q_FORMAT_JSON) {
		doc = q_jdoc(q);
		versions = json_object_new_array();
		names = json_object_new_array();
		events = json_object_new_array();
		json_object_object_add(doc, "file", q_file_json(&file));
	} else {
		struct qbuf head = QBUF_INIT;
		qbuf_init(&head);
		qbuf_addf(&head, "%s  (file %lld on %s, first seen %s", q_tx(q, file.path),
		          (long long)file.id, q_tx(q, file.host), q_when(q, file.first_seen_ns));
		if (file.removed_ns != Q_NONE)
			qbuf_addf(&head, ", removed %s", q_when(q, file.removed_ns));
		qbuf_addc(&head, ')');
		q_print_wrapped("", "    ", head.buf);
		putchar('\n');
		qbuf_release(&head);
		q_table_add(&table, "VERSION", "RECORDED", "HASH", "SIZE", "ORIGIN", "PRODUCER");
	}
	for (size_t i = 0; i < count; i++) {
		struct q_version v;
		struct q_process p = {0};
		struct q_run run = {0};
		bool have_p = false, have_run = false;
		char number[32];

		if (q_version_load(q, ids[i], &v) != 0)
			goto out;
		if (v.producer_id != Q_NONE && q_process_load(q, v.producer_id, &p) == 0) {
			have_p = true;
			int64_t run_id = q_process_last(&p)->run_id;
			have_run = run_id != Q_NONE && q_run_load(q, run_id, &run) == 0;
		}
		if (doc) {
			json_object *j = q_version_json(&v);
			json_object_object_add(j, "producer",
			                       have_p ? q_process_json(q, &p) : NULL);
			json_object_object_add(j, "run", have_run ? q_run_json(&run) : NULL);
			json_object_array_add(versions, j);
		} else {
			struct qbuf who = QBUF_INIT;
			qbuf_init(&who);
			if (have_p) {
				q_process_line(q, &who, &p);
				if (have_run) {
					qbuf_adds(&who, "  [");
					q_run_line(q, &who, &run);
					qbuf_addc(&who, ']');
				}
			} else if (v.origin && strcmp(v.origin, "external") == 0) {
				qbuf_adds(&who, "CHANGED OUTSIDE PROVFS");
			} else if (v.origin && strcmp(v.origin, "initial") == 0) {
				qbuf_adds(&who, "first seen: history unknown");
			} else {
				qbuf_adds(&who, "not recorded");
			}
			snprintf(number, sizeof(number), "v%lld", (long long)v.number);
			q_table_add(&table, number, q_when(q, v.recorded_ns),
			            q_short_hash(v.hash, v.hash_state), q_size(v.size),
			            q_tx(q, v.origin), who.buf);
			qbuf_release(&who);
		}
		q_run_release(&run);
		q_process_release(&p);
		q_version_release(&v);
	}
	if (!doc) {
		q_table_print(&table, "");
		q_table_release(&table);
		q_table_init(&table, 4);
		printf("\nnames:\n");
	}
	statement =
	    q_prepare(q, "SELECT path, backing_dir, since_ns, until_ns, how FROM file_names "
	                 "WHERE file_id = ? ORDER BY since_ns, id");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, file.id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(statement, 0);
		int64_t since = q_col_int(statement, 2), until = q_col_int(statement, 3);
		const char *how = (const char *)sqlite3_column_text(statement, 4);
		if (doc) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "path", q_jstr(path));
			json_object_object_add(
			    j, "backing_dir",
			    q_jstr((const char *)sqlite3_column_text(statement, 1)));
			json_object_object_add(j, "since", q_jtime(since));
			json_object_object_add(j, "until", q_jtime(until));
			json_object_object_add(j, "how", q_jstr(how));
			json_object_array_add(names, j);
		} else {
			q_table_add(&table, q_tx(q, path), q_tx(q, how), q_when(q, since),
			            until == Q_NONE ? "current" : q_when(q, until));
		}
	}
	if (rc < 0)
		goto out;
	if (!doc) {
		q_table_print(&table, "  ");
		q_table_release(&table);
		q_table_init(&table, 3);
	}
	statement = q_prepare(q, "SELECT kind, path, new_path, time_ns, process_id "
	                         "FROM namespace_events WHERE file_id = ? ORDER BY time_ns, id");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, file.id);
	size_t event_count = 0;
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *kind = (const char *)sqlite3_column_text(statement, 0);
		const char *path = (const char *)sqlite3_column_text(statement, 1);
		const char *new_path = (const char *)sqlite3_column_text(statement, 2);
		int64_t time_ns = q_col_int(statement, 3), process_id = q_col_int(statement, 4);
		struct q_process p = {0};
		bool have_p = false;
		/* The statement is not re-entered: process loads use their own. */
		if (process_id != Q_NONE)
			have_p = q_process_load(q, process_id, &p) == 0;
		event_count++;
		if (doc) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "kind", q_jstr(kind));
			json_object_object_add(j, "path", q_jstr(path));
			json_object_object_add(j, "new_path", q_jstr(new_path));
			json_object_object_add(j, "time", q_jtime(time_ns));
			json_object_object_add(j, "process", have_p ? q_process_json(q, &p) : NULL);
			json_object_array_add(events, j);
		} else {
			struct qbuf what = QBUF_INIT, who = QBUF_INIT;
			qbuf_init(&what);
			qbuf_init(&who);
			qbuf_addf(&what, "%s %s", q_tx(q, kind), q_tx(q, path));
			if (new_path)
				qbuf_addf(&what, " -> %s", q_tx(q, new_path));
			if (have_p) {
				qbuf_adds(&who, "by ");
				q_process_line(q, &who, &p);
			}
			q_table_add(&table, q_when(q, time_ns), what.buf, who.buf);
			qbuf_release(&what);
			qbuf_release(&who);
		}
		q_process_release(&p);
	}
	if (rc < 0)
		goto out;
	if (doc) {
		json_object_object_add(doc, "versions", versions);
		json_object_object_add(doc, "names", names);
		json_object_object_add(doc, "events", events);
		versions = names = events = NULL;
		status = q_emit_json(q, doc);
		doc = NULL;
	} else {
		if (event_count) {
			printf("\nevents:\n");
			q_table_print(&table, "  ");
		}
		status = 0;
	}
out:
	json_object_put(versions);
	json_object_put(names);
	json_object_put(events);
	json_object_put(doc);
	q_table_release(&table);
	free(ids);
	q_file_release(&file);
	q_target_release(&target);
	return status;
}

/* --- process ------------------------------------------------------------------ */

static int
parse_process_ref(const char *text, int64_t *pid, int64_t *start)
{
	char *end;
	long long v;

	v = strtoll(text, &end, 10);
	if (end == text || v <= 0 || v > 4194304 || (*end != '\0' && *end != '@'))
		return -1;
	*pid = v;
	*start = Q_NONE;
	if (*end == '@') {
		const char *s = end + 1;
		v = strtoll(s, &end, 10);
		if (end == s || *end != '\0' || v < 0 || v > INT64_MAX / 1000000000LL)
			return -1;
		*start = v;
	}
	return 0;
}

int
cmd_process(struct query *q)
{
	struct q_process process = {0}, parent = {0};
	struct q_process *children = NULL;
	size_t child_count = 0;
	struct q_run run = {0};
	struct access_list reads = {0}, writes = {0};
	bool have_parent = false, have_run = false;
	int64_t pid, start, *leads = NULL, lead_count = 0;
	sqlite3_stmt *statement;
	int status = 2, rc;

	if (parse_process_ref(q->args[0], &pid, &start) < 0)
		return q_error(q, 2,
		               "'%s' is not PID or PID@START (START in seconds since the epoch)",
		               q->args[0]);
	statement = q_prepare(q, "SELECT MIN(id), start_ns FROM processes WHERE pid = ?1 AND "
	                         "(?2 IS NULL OR (start_ns >= ?2 * 1000000000 AND "
	                         "start_ns < (?2 + 1) * 1000000000)) GROUP BY host, start_ns "
	                         "ORDER BY start_ns DESC");
	if (statement == NULL)
		return 2;
	q_bind_int(statement, 1, pid);
	q_bind_int(statement, 2, start);
	struct qbuf candidates = QBUF_INIT;
	qbuf_init(&candidates);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		leads = realloc(leads, (size_t)(lead_count + 1) * sizeof(*leads));
		if (leads == NULL)
			abort();
		leads[lead_count++] = sqlite3_column_int64(statement, 0);
		if (lead_count <= 4)
			qbuf_addf(&candidates, "%s%lld@%lld", lead_count > 1 ? ", " : "",
			          (long long)pid,
			          (long long)(sqlite3_column_int64(statement, 1) / 1000000000LL));
	}
	if (rc < 0)
		goto out;
	if (lead_count == 0) {
		status = q_error(q, 1, "%s: no such process was recorded", q->args[0]);
		goto out;
	}
	if (lead_count > 1) {
		status = q_error(q, 2, "%s: %lld processes had this pid (%s%s); give PID@START",
		                 q->args[0], (long long)lead_count, candidates.buf,
		                 lead_count > 4 ? ", ..." : "");
		goto out;
	}
	if (q_process_load(q, leads[0], &process) != 0)
		goto out;
	if (process.images[0].parent_id != Q_NONE) {
		rc = q_process_load(q, process.images[0].parent_id, &parent);
		if (rc < 0)
			goto out;
		have_parent = rc == 0;
	}
	int64_t run_id = q_process_last(&process)->run_id;
	if (run_id != Q_NONE) {
		rc = q_run_load(q, run_id, &run);
		if (rc < 0)
			goto out;
		have_run = rc == 0;
	}
	for (size_t i = 0; i < process.image_count; i++) {
		int64_t *ids = NULL;
		size_t n = 0;
		statement =
		    q_prepare(q, "SELECT id FROM processes WHERE parent_id = ? ORDER BY start_ns");
		if (statement == NULL)
			goto out;
		q_bind_int(statement, 1, process.images[i].id);
		rc = q_collect_ids(q, statement, &ids, &n);
		for (size_t j = 0; rc >= 0 && j < n; j++) {
			struct q_process child;
			bool dup = false;
			if (q_process_load(q, ids[j], &child) != 0)
				continue;
			for (size_t k = 0; k < child_count && !dup; k++)
				dup = children[k].id == child.id;
			if (dup || child.id == process.id) {
				q_process_release(&child);
				continue;
			}
			children = realloc(children, (child_count + 1) * sizeof(*children));
			if (children == NULL)
				abort();
			children[child_count++] = child;
		}
		free(ids);
		if (rc < 0)
			goto out;
	}
	if (process_accesses(q, &process, false, Q_NONE, &reads) < 0 ||
	    process_accesses(q, &process, true, Q_NONE, &writes) < 0)
		goto out;

	if (q->format == Q_FORMAT_JSON) {
		json_object *doc = q_jdoc(q), *array = json_object_new_array();
		json_object_object_add(doc, "process", q_process_json(q, &process));
		json_object_object_add(doc, "parent",
		                       have_parent ? q_process_json(q, &parent) : NULL);
		for (size_t i = 0; i < child_count; i++)
			json_object_array_add(array, q_process_json(q, &children[i]));
		json_object_object_add(doc, "children", array);
		json_object_object_add(doc, "run", have_run ? q_run_json(&run) : NULL);
		json_object_object_add(doc, "reads", access_list_json(&reads, NULL));
		json_object_object_add(doc, "writes", access_list_json(&writes, NULL));
		status = q_emit_json(q, doc);
		goto out;
	}
	struct qbuf line = QBUF_INIT;
	qbuf_init(&line);
	q_process_line(q, &line, &process);
	q_print_wrapped("", "    ", line.buf);
	print_process_detail(q, &process, "  ");
	if (have_parent) {
		qbuf_reset(&line);
		q_process_line(q, &line, &parent);
		q_print_field("  ", "parent", "%s", line.buf);
	}
	for (size_t i = 0; i < child_count; i++) {
		qbuf_reset(&line);
		q_process_line(q, &line, &children[i]);
		q_print_field("  ", i ? "" : "children", "%s", line.buf);
	}
	if (have_run)
		print_run_detail(q, &run, "  ", true);
	qbuf_release(&line);
	printf("\nread (%zu):\n", reads.count);
	access_list_print(q, &reads, 0, reads.count, false);
	printf("\nwrote (%zu):\n", writes.count);
	access_list_print(q, &writes, 0, writes.count, false);
	status = 0;
out:
	qbuf_release(&candidates);
	free(leads);
	access_list_release(&reads);
	access_list_release(&writes);
	for (size_t i = 0; i < child_count; i++)
		q_process_release(&children[i]);
	free(children);
	q_run_release(&run);
	q_process_release(&parent);
	q_process_release(&process);
	return status;
}

/* --- run ------------------------------------------------------------------------ */

/*
 * A run id as the store keeps it: the UUID in text, lowercase and hyphenated
 * (8-4-4-4-12), or its first 4 or more characters.  UUIDs are read in either
 * case (RFC 4122: "case insensitive on input"), so text is lowercased into
 * id.  False when text cannot be the start of a UUID.
 */
static bool
run_id_parse(const char *text, char id[37])
{
	size_t n = strlen(text);

	if (n < 4 || n > 36)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = text[i];
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (c != '-')
				return false;
		} else if (c >= 'A' && c <= 'F') {
			c = (char)(c - 'A' + 'a');
		} else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
			return false;
		}
		id[i] = c;
	}
	id[n] = '\0';
	return true;
}

/* Some process of list not printed yet was forked by list[index]. */
static bool
has_unprinted_child(const struct q_process *list, size_t count, size_t index, const bool *printed)
{
	for (size_t i = 0; i < count; i++)
		for (size_t k = 0; !printed[i] && k < list[index].image_count; k++)
			if (list[index].images[k].id == list[i].images[0].parent_id && i != index)
				return true;
	return false;
}

/* Print the processes of a run as a tree along fork parents. */
static void
print_run_tree(struct query *q, struct q_process *list, size_t count, size_t parent_index,
               bool *printed, struct qbuf *prefix)
{
	size_t *kids = NULL, n = 0;

	for (size_t i = 0; i < count; i++) {
		int64_t parent_id = list[i].images[0].parent_id;
		bool mine = false;
		if (printed[i])
			continue;
		if (parent_index == SIZE_MAX) {
			/* Roots: no parent among the run's processes. */
			mine = true;
			for (size_t j = 0; j < count && mine; j++)
				for (size_t k = 0; k < list[j].image_count; k++)
					if (j != i && list[j].images[k].id == parent_id)
						mine = false;
		} else {
			for (size_t k = 0; k < list[parent_index].image_count; k++)
				mine |= list[parent_index].images[k].id == parent_id;
		}
		if (mine) {
			kids = realloc(kids, (n + 1) * sizeof(*kids));
			if (kids == NULL)
				abort();
			kids[n++] = i;
			printed[i] = true;
		}
	}
	for (size_t i = 0; i < n; i++) {
		struct qbuf line = QBUF_INIT, first = QBUF_INIT, rest = QBUF_INIT;
		size_t saved = prefix->len;
		bool last = i + 1 == n;
		qbuf_init(&line);
		qbuf_init(&first);
		qbuf_init(&rest);
		q_process_line(q, &line, &list[kids[i]]);
		qbuf_addf(&first, "  %s%s", prefix->buf, q_tree_branch(q, last));
		qbuf_addf(&rest, "  %s%s%s", prefix->buf, q_tree_stem(q, last),
		          q_tree_stem(q, !has_unprinted_child(list, count, kids[i], printed)));
		q_print_wrapped(first.buf, rest.buf, line.buf);
		qbuf_release(&line);
		qbuf_release(&first);
		qbuf_release(&rest);
		qbuf_adds(prefix, q_tree_stem(q, last));
		print_run_tree(q, list, count, kids[i], printed, prefix);
		prefix->len = saved;
		prefix->buf[saved] = '\0';
	}
	free(kids);
}

int
cmd_run(struct query *q)
{
	struct q_run run = {0};
	struct q_process *processes = NULL;
	size_t process_count = 0;
	struct access_list inputs = {0}, outputs = {0};
	int64_t run_id = Q_NONE, *images = NULL;
	size_t image_count = 0, matches = 0;
	sqlite3_stmt *statement;
	int status = 2, rc;
	struct qbuf candidates = QBUF_INIT;
	char id[37]; /* the run id given, lowercased */

	qbuf_init(&candidates);
	if (!run_id_parse(q->args[0], id)) {
		status = q_error(q, 2,
		                 "'%s' is not a run id (a UUID like "
		                 "5f2c1a9e-0b7d-4c3e-9a41-2d6f8e0c7b15, or its first 4 or more "
		                 "characters)",
		                 q->args[0]);
		goto out;
	}
	statement = q_prepare(q, "SELECT id, uuid FROM runs WHERE substr(uuid, 1, length(?1)) = ?1 "
	                         "ORDER BY started_ns DESC LIMIT 5");
	if (statement == NULL)
		goto out;
	sqlite3_bind_text(statement, 1, id, -1, SQLITE_STATIC);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (strcmp((const char *)sqlite3_column_text(statement, 1), id) == 0) {
			run_id = sqlite3_column_int64(statement, 0);
			matches = 1;
			break;
		}
		if (matches++ == 0)
			run_id = sqlite3_column_int64(statement, 0);
		qbuf_addf(&candidates, "%s%s", matches > 1 ? ", " : "",
		          sqlite3_column_text(statement, 1));
	}
	if (rc < 0)
		goto out;
	if (matches == 0) {
		status = q_error(q, 1, "%s: no such run was recorded", q->args[0]);
		goto out;
	}
	if (matches > 1) {
		status = q_error(q, 2, "%s: ambiguous run id (%s); give more digits", q->args[0],
		                 candidates.buf);
		goto out;
	}
	if (q_run_load(q, run_id, &run) != 0)
		goto out;
	statement =
	    q_prepare(q, "SELECT id FROM processes WHERE run_id = ? ORDER BY start_ns, exec_index");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, run_id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		images = realloc(images, (image_count + 1) * sizeof(*images));
		if (images == NULL)
			abort();
		images[image_count++] = sqlite3_column_int64(statement, 0);
	}
	if (rc < 0)
		goto out;
	for (size_t i = 0; i < image_count; i++) {
		struct q_process p;
		bool dup = false;
		if (q_process_load(q, images[i], &p) != 0)
			continue;
		for (size_t j = 0; j < process_count && !dup; j++)
			dup = processes[j].id == p.id;
		if (dup) {
			q_process_release(&p);
			continue;
		}
		processes = realloc(processes, (process_count + 1) * sizeof(*processes));
		if (processes == NULL)
			abort();
		processes[process_count++] = p;
	}
	statement = q_prepare(
	    q, "SELECT a.process_id, a.read_version_id, a.path, a.opened_ns, "
	       "a.closed_ns, a.bytes_read, a.is_exec FROM processes p JOIN accesses a "
	       "ON a.process_id = p.id WHERE p.run_id = ? AND a.read_version_id IS NOT NULL "
	       "ORDER BY a.opened_ns");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, run_id);
	if (access_list_fill(q, statement, &inputs, false) < 0)
		goto out;
	statement =
	    q_prepare(q, "SELECT a.process_id, a.written_version_id, a.path, a.opened_ns, "
	                 "a.closed_ns, a.bytes_written, a.is_exec FROM processes p JOIN accesses a "
	                 "ON a.process_id = p.id WHERE p.run_id = ? AND "
	                 "a.written_version_id IS NOT NULL ORDER BY a.opened_ns");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, run_id);
	if (access_list_fill(q, statement, &outputs, false) < 0)
		goto out;
	for (size_t i = 0; i < inputs.count; i++)
		inputs.items[i].intermediate =
		    access_list_has(&outputs, inputs.items[i].version_id);

	if (q->format == Q_FORMAT_JSON) {
		json_object *doc = q_jdoc(q), *array = json_object_new_array(), *in;
		json_object_object_add(doc, "run", q_run_json(&run));
		for (size_t i = 0; i < process_count; i++)
			json_object_array_add(array, q_process_json(q, &processes[i]));
		json_object_object_add(doc, "processes", array);
		in = json_object_new_array();
		for (size_t i = 0; i < inputs.count; i++) {
			json_object *j = access_json(&inputs.items[i], NULL);
			json_object_object_add(
			    j, "intermediate",
			    json_object_new_boolean(inputs.items[i].intermediate));
			json_object_array_add(in, j);
		}
		json_object_object_add(doc, "inputs", in);
		json_object_object_add(doc, "outputs", access_list_json(&outputs, NULL));
		status = q_emit_json(q, doc);
		goto out;
	}
	printf("run %s\n", q_tx(q, run.uuid));
	print_run_detail(q, &run, "  ", false);
	q_print_field("  ", "host", "%s", q_tx(q, run.host));
	printf("\nprocesses (%zu):\n", process_count);
	{
		bool *printed = calloc(process_count + 1, sizeof(bool));
		struct qbuf prefix = QBUF_INIT;
		qbuf_init(&prefix);
		print_run_tree(q, processes, process_count, SIZE_MAX, printed, &prefix);
		qbuf_release(&prefix);
		free(printed);
	}
	printf("\nread (%zu):\n", inputs.count);
	access_list_print(q, &inputs, 0, inputs.count, false);
	printf("\nwrote (%zu):\n", outputs.count);
	access_list_print(q, &outputs, 0, outputs.count, false);
	status = 0;
out:
	qbuf_release(&candidates);
	free(images);
	for (size_t i = 0; i < process_count; i++)
		q_process_release(&processes[i]);
	free(processes);
	access_list_release(&inputs);
	access_list_release(&outputs);
	q_run_release(&run);
	return status;
}

/* --- runs ----------------------------------------------------------------------- */

int
cmd_runs(struct query *q)
{
	sqlite3_stmt *statement =
	    /* Versions read and written, as `run` lists them: a file a job
	     * opens twice (python reads its script twice) is one input. */
	    q_prepare(q, "SELECT r.id, (SELECT COUNT(*) FROM processes p WHERE p.run_id = r.id), "
	                 "(SELECT COUNT(DISTINCT a.read_version_id) FROM processes p JOIN "
	                 "accesses a ON a.process_id = p.id WHERE p.run_id = r.id), "
	                 "(SELECT COUNT(DISTINCT a.written_version_id) FROM processes p JOIN "
	                 "accesses a ON a.process_id = p.id WHERE p.run_id = r.id) "
	                 "FROM runs r WHERE (?1 IS NULL OR r.job_name = ?1) AND "
	                 "(?2 IS NULL OR r.started_ns >= ?2) AND "
	                 /* Runs that used the mount, as OpenLineage sends them: not
	                  * one made only of the ancestors of those that did (init,
	                  * a login session). */
	                 "(EXISTS (SELECT 1 FROM processes p JOIN accesses a ON "
	                 "a.process_id = p.id WHERE p.run_id = r.id) OR EXISTS (SELECT 1 FROM "
	                 "processes p JOIN namespace_events e ON e.process_id = p.id WHERE "
	                 "p.run_id = r.id)) ORDER BY r.started_ns, r.id");
	struct {
		int64_t id, processes, reads, writes;
	} *rows = NULL;
	size_t count = 0, alloc = 0;
	struct q_table table;
	json_object *doc = NULL, *array = NULL;
	int status = 2, rc;

	if (statement == NULL)
		return 2;
	if ((status = q_check_job(q)) != 0)
		return status;
	if (q->job)
		sqlite3_bind_text(statement, 1, q->job, -1, SQLITE_STATIC);
	q_bind_int(statement, 2, q->since_ns);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			rows = realloc(rows, alloc * sizeof(*rows));
			if (rows == NULL)
				abort();
		}
		rows[count].id = sqlite3_column_int64(statement, 0);
		rows[count].processes = sqlite3_column_int64(statement, 1);
		rows[count].reads = sqlite3_column_int64(statement, 2);
		rows[count].writes = sqlite3_column_int64(statement, 3);
		count++;
	}
	if (rc < 0) {
		free(rows);
		return 2;
	}
	q_table_init(&table, 7);
	if (q->format == Q_FORMAT_JSON) {
		doc = q_jdoc(q);
		array = json_object_new_array();
	} else {
		/* The run id last: on a terminal it moves to a line of its own (q_table_print). */
		q_table_add(&table, "STARTED", "TOOK", "PROCS", "READ", "WROTE", "JOB", "RUN");
	}
	for (size_t i = 0; i < count; i++) {
		struct q_run run;
		if (q_run_load(q, rows[i].id, &run) != 0)
			goto out;
		if (doc) {
			json_object *j = q_run_json(&run);
			json_object_object_add(j, "processes", q_jint(rows[i].processes));
			json_object_object_add(j, "reads", q_jint(rows[i].reads));
			json_object_object_add(j, "writes", q_jint(rows[i].writes));
			json_object_array_add(array, j);
		} else {
			char took[QUERY_TIME_BUFSIZE] = "-", p[24], r[24], w[24];
			if (run.end_unknown)
				snprintf(took, sizeof(took), "aborted");
			else if (run.ended_ns != Q_NONE)
				query_time_duration(run.ended_ns - run.started_ns, took);
			snprintf(p, sizeof(p), "%lld", (long long)rows[i].processes);
			snprintf(r, sizeof(r), "%lld", (long long)rows[i].reads);
			snprintf(w, sizeof(w), "%lld", (long long)rows[i].writes);
			q_table_add(&table, q_when(q, run.started_ns), took, p, r, w,
			            q_tx(q, run.job_name), q_tx(q, run.uuid));
		}
		q_run_release(&run);
	}
	if (doc) {
		json_object_object_add(doc, "runs", array);
		array = NULL;
		status = q_emit_json(q, doc);
		doc = NULL;
	} else {
		if (count)
			q_table_print(&table, "");
		else
			printf("no runs recorded%s\n",
			       q->job || q->since_ns != Q_NONE ? " that match" : "");
		status = 0;
	}
out:
	json_object_put(array);
	json_object_put(doc);
	q_table_release(&table);
	free(rows);
	return status;
}
