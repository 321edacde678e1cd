/*
 * query_model.c - files, versions, processes and runs as provfs-query reads
 * them from the store, and how each is written in JSON and in one line of
 * text.  These JSON objects are the one schema every command shares
 * (tools/provfs-query.md lists the fields).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "config.h"
#include "label_store.h"
#include "query_i.h"

#define VERSION_COLUMNS                                                                            \
	"SELECT v.id, v.file_id, v.number, v.size, v.mtime_ns, v.recorded_ns, "                    \
	"v.producer_process_id, v.hash, v.hash_state, v.origin, v.label, f.path, "                 \
	"f.backing_dir, f.host FROM versions v JOIN files f ON f.id = v.file_id "

/*
 * The configuration the labels are decided by: --config FILE, else the
 * default provfs.conf (absent: the built-in levels and no path rules).  An
 * auditor may read the store but not provfs.conf (it may be mode 600 for its
 * API key): then the versions show the propagated labels the store
 * recorded, and one warning says that path rules and explicit labels are
 * missing (their levels cannot be ranked without the configuration).
 */
static const struct provfs_config *
label_config(struct query *q)
{
	char error[1024];

	if (!q->label_config_tried) {
		q->label_config_tried = true;
		q->label_config = q_label_config_load(q, error, sizeof(error));
		if (q->label_config == NULL)
			q_error(q, 0, "warning: only the propagated labels the store recorded "
			              "are shown (path rules and explicit labels need the "
			              "configuration): %s", error);
	}
	return q->label_config;
}

/*
 * The effective label of a loaded version, as provfs-label get and the
 * user.provfs.label xattr report it (label_store.c decides; see
 * label_facts_load_version() for which explicit label a past version shows).
 */
static int
load_label(struct query *q, struct q_version *version)
{
	const struct provfs_config *config = label_config(q);
	struct label_facts facts;
	char error[1024];

	if (config == NULL) {
		if (version->label) {
			version->effective_label = strdup(version->label);
			if (version->effective_label == NULL)
				abort();
			version->label_source = "propagated";
		}
		return 0;
	}
	if (label_facts_load_version(q->db, config, version->file_id, version->id,
	                             version->path, &facts, error, sizeof(error)) < 0) {
		q_error(q, 2, "%s", error);
		return -1;
	}
	if (facts.effective) {
		version->effective_label = strdup(facts.effective);
		if (version->effective_label == NULL)
			abort();
		version->label_source = facts.source;
	}
	label_facts_release(&facts);
	return 0;
}

static int
load_rows(struct query *q, sqlite3_stmt *statement, struct q_version *version)
{
	int rc;

	if (statement == NULL)
		return -1;
	rc = q_step(q, statement);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 1;
	version->id = q_col_int(statement, 0);
	version->file_id = q_col_int(statement, 1);
	version->number = q_col_int(statement, 2);
	version->size = q_col_int(statement, 3);
	version->mtime_ns = q_col_int(statement, 4);
	version->recorded_ns = q_col_int(statement, 5);
	version->producer_id = q_col_int(statement, 6);
	version->hash = q_col_text(statement, 7);
	version->hash_state = q_col_text(statement, 8);
	version->origin = q_col_text(statement, 9);
	version->label = q_col_text(statement, 10);
	version->path = q_col_text(statement, 11);
	version->backing_dir = q_col_text(statement, 12);
	version->host = q_col_text(statement, 13);
	sqlite3_reset(statement);
	if (load_label(q, version) < 0) {
		q_version_release(version);
		return -1;
	}
	return 0;
}

int
q_version_load(struct query *q, int64_t id, struct q_version *version)
{
	sqlite3_stmt *statement = q_prepare(q, VERSION_COLUMNS "WHERE v.id = ?");

	memset(version, 0, sizeof(*version));
	if (statement)
		q_bind_int(statement, 1, id);
	return load_rows(q, statement, version);
}

int
q_version_find(struct query *q, int64_t file_id, int64_t number, struct q_version *version)
{
	sqlite3_stmt *statement;

	memset(version, 0, sizeof(*version));
	if (number == Q_NONE) {
		statement = q_prepare(q, VERSION_COLUMNS
		                      "WHERE v.file_id = ? ORDER BY v.number DESC LIMIT 1");
		if (statement)
			q_bind_int(statement, 1, file_id);
	} else {
		statement = q_prepare(q, VERSION_COLUMNS "WHERE v.file_id = ? AND v.number = ?");
		if (statement) {
			q_bind_int(statement, 1, file_id);
			q_bind_int(statement, 2, number);
		}
	}
	return load_rows(q, statement, version);
}

int
q_version_at(struct query *q, int64_t file_id, int64_t at_ns, struct q_version *version)
{
	sqlite3_stmt *statement =
	    q_prepare(q, VERSION_COLUMNS "WHERE v.file_id = ? AND v.recorded_ns <= ? "
	                                 "ORDER BY v.number DESC LIMIT 1");

	memset(version, 0, sizeof(*version));
	if (statement) {
		q_bind_int(statement, 1, file_id);
		q_bind_int(statement, 2, at_ns);
	}
	return load_rows(q, statement, version);
}

void
q_version_release(struct q_version *version)
{
	free(version->hash);
	free(version->hash_state);
	free(version->origin);
	free(version->label);
	free(version->path);
	free(version->backing_dir);
	free(version->host);
	free(version->effective_label);
	memset(version, 0, sizeof(*version));
}

int
q_file_load(struct query *q, int64_t id, struct q_file *file)
{
	/*
	 * files.path is the last name the file was given; when that name was
	 * unlinked or renamed over while another link stays, the file lives
	 * on under the other: its newest current name is where it is.
	 * Stores recorded before provfs marked the file a rename replaced as
	 * removed (git's config.lock over config) left it with every name
	 * ended and removed_ns NULL: it left the tree when its last name did.
	 */
	sqlite3_stmt *statement = q_prepare(
	    q, "SELECT id, host, backing_dir, coalesce((SELECT n.path FROM file_names n WHERE "
	       "n.file_id = files.id AND n.until_ns IS NULL ORDER BY n.since_ns DESC LIMIT 1), "
	       "path), first_seen_ns, "
	       "coalesce(removed_ns, (SELECT max(until_ns) FROM file_names n WHERE n.file_id = "
	       "files.id HAVING count(*) > 0 AND count(*) = count(until_ns))) "
	       "FROM files WHERE id = ?");
	int rc;

	memset(file, 0, sizeof(*file));
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, id);
	rc = q_step(q, statement);
	if (rc != SQLITE_ROW)
		return rc < 0 ? -1 : 1;
	file->id = q_col_int(statement, 0);
	file->host = q_col_text(statement, 1);
	file->backing_dir = q_col_text(statement, 2);
	file->path = q_col_text(statement, 3);
	file->first_seen_ns = q_col_int(statement, 4);
	file->removed_ns = q_col_int(statement, 5);
	sqlite3_reset(statement);
	return 0;
}

void
q_file_release(struct q_file *file)
{
	free(file->host);
	free(file->backing_dir);
	free(file->path);
	memset(file, 0, sizeof(*file));
}

int
q_process_load(struct query *q, int64_t id, struct q_process *process)
{
	sqlite3_stmt *statement = q_prepare(
	    q, "SELECT p2.id, p2.host, p2.pid, p2.start_ns, p2.exec_index, p2.parent_id, "
	       "p2.previous_id, p2.run_id, p2.uid, p2.gid, p2.seen_ns, p2.exited_ns, "
	       "p2.exit_status, p2.exit_known, p2.executable, p2.executable_hash, p2.argv, "
	       "p2.cwd FROM processes p1 JOIN processes p2 ON p2.pid = p1.pid AND "
	       "p2.start_ns = p1.start_ns AND p2.host = p1.host WHERE p1.id = ? "
	       "ORDER BY p2.exec_index, p2.id");
	size_t alloc = 0;
	int rc;

	memset(process, 0, sizeof(*process));
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, id);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		struct q_image *image;

		if (process->image_count == alloc) {
			alloc = alloc ? alloc * 2 : 2;
			process->images = realloc(process->images, alloc * sizeof(*image));
			if (process->images == NULL)
				abort();
		}
		image = &process->images[process->image_count++];
		if (process->image_count == 1) {
			process->id = q_col_int(statement, 0);
			process->host = q_col_text(statement, 1);
			process->pid = q_col_int(statement, 2);
			process->start_ns = q_col_int(statement, 3);
		}
		image->id = q_col_int(statement, 0);
		image->exec_index = q_col_int(statement, 4);
		image->parent_id = q_col_int(statement, 5);
		image->previous_id = q_col_int(statement, 6);
		image->run_id = q_col_int(statement, 7);
		image->uid = q_col_int(statement, 8);
		image->gid = q_col_int(statement, 9);
		image->seen_ns = q_col_int(statement, 10);
		image->exited_ns = q_col_int(statement, 11);
		image->exit_status =
		    q_col_int(statement, 13) == 1 ? q_col_int(statement, 12) : Q_NONE;
		image->executable = q_col_text(statement, 14);
		image->executable_hash = q_col_text(statement, 15);
		image->argv = q_col_argv(statement, 16, &image->argc);
		image->cwd = q_col_text(statement, 17);
	}
	if (rc < 0) {
		q_process_release(process);
		return -1;
	}
	return process->image_count ? 0 : 1;
}

void
q_process_release(struct q_process *process)
{
	for (size_t i = 0; i < process->image_count; i++) {
		struct q_image *image = &process->images[i];
		free(image->executable);
		free(image->executable_hash);
		q_words_free(image->argv, image->argc);
		free(image->cwd);
	}
	free(process->images);
	free(process->host);
	memset(process, 0, sizeof(*process));
}

const struct q_image *
q_process_last(const struct q_process *process)
{
	return &process->images[process->image_count - 1];
}

const char *
q_process_ref(const struct q_process *process)
{
	static char ref[4][48];
	static unsigned next;
	char *buf = ref[next++ % 4];

	snprintf(buf, sizeof(ref[0]), "%lld@%lld", (long long)process->pid,
	         (long long)(process->start_ns / 1000000000LL));
	return buf;
}

/* The run of a process: its last image's, else any image's. */
static int64_t
process_run(const struct q_process *process)
{
	for (size_t i = process->image_count; i > 0; i--)
		if (process->images[i - 1].run_id != Q_NONE)
			return process->images[i - 1].run_id;
	return Q_NONE;
}

int
q_run_load(struct query *q, int64_t id, struct q_run *run)
{
	sqlite3_stmt *statement =
	    q_prepare(q, "SELECT id, uuid, job_name, named_by, host, root_pid, root_start_ns, "
	                 "started_ns, ended_ns, parent_namespace, parent_job_name, parent_run_id, "
	                 "end_unknown FROM runs WHERE id = ?");
	int rc;

	memset(run, 0, sizeof(*run));
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, id);
	rc = q_step(q, statement);
	if (rc != SQLITE_ROW)
		return rc < 0 ? -1 : 1;
	run->id = q_col_int(statement, 0);
	run->uuid = q_col_text(statement, 1);
	run->job_name = q_col_text(statement, 2);
	run->named_by = q_col_text(statement, 3);
	run->host = q_col_text(statement, 4);
	run->root_pid = q_col_int(statement, 5);
	run->root_start_ns = q_col_int(statement, 6);
	run->started_ns = q_col_int(statement, 7);
	run->ended_ns = q_col_int(statement, 8);
	run->parent_namespace = q_col_text(statement, 9);
	run->parent_job_name = q_col_text(statement, 10);
	run->parent_run_id = q_col_text(statement, 11);
	run->end_unknown = sqlite3_column_int(statement, 12) != 0;
	sqlite3_reset(statement);
	return 0;
}

void
q_run_release(struct q_run *run)
{
	free(run->uuid);
	free(run->job_name);
	free(run->named_by);
	free(run->host);
	free(run->parent_namespace);
	free(run->parent_job_name);
	free(run->parent_run_id);
	memset(run, 0, sizeof(*run));
}

/* --- JSON ------------------------------------------------------------------ */

#define ADD(object, key, value) json_object_object_add(object, key, value)

json_object *
q_file_json(const struct q_file *file)
{
	json_object *o = json_object_new_object();

	ADD(o, "id", q_jint(file->id));
	ADD(o, "path", q_jstr(file->path));
	ADD(o, "backing_dir", q_jstr(file->backing_dir));
	ADD(o, "host", q_jstr(file->host));
	ADD(o, "first_seen", q_jtime(file->first_seen_ns));
	ADD(o, "removed", q_jtime(file->removed_ns));
	return o;
}

json_object *
q_version_json(const struct q_version *version)
{
	json_object *o = json_object_new_object();

	ADD(o, "id", q_jint(version->id));
	ADD(o, "file_id", q_jint(version->file_id));
	ADD(o, "path", q_jstr(version->path));
	ADD(o, "version", q_jint(version->number));
	ADD(o, "hash", q_jstr(version->hash));
	ADD(o, "hash_state", q_jstr(version->hash_state));
	ADD(o, "size", q_jint(version->size));
	ADD(o, "mtime", q_jtime(version->mtime_ns));
	ADD(o, "recorded", q_jtime(version->recorded_ns));
	ADD(o, "origin", q_jstr(version->origin));
	ADD(o, "label", q_jstr(version->effective_label));
	ADD(o, "label_source", q_jstr(version->label_source));
	ADD(o, "propagated_label", q_jstr(version->label));
	ADD(o, "producer_process_id", q_jint(version->producer_id));
	return o;
}

static json_object *
exit_json(int64_t status)
{
	json_object *o;

	if (status == Q_NONE)
		return NULL;
	o = json_object_new_object();
	ADD(o, "status", q_jint(status));
	if (WIFEXITED((int)status))
		ADD(o, "code", q_jint(WEXITSTATUS((int)status)));
	else if (WIFSIGNALED((int)status))
		ADD(o, "signal", q_jint(WTERMSIG((int)status)));
	return o;
}

json_object *
q_process_json(struct query *q, const struct q_process *process)
{
	json_object *o = json_object_new_object(), *images = json_object_new_array();
	const struct q_image *last = q_process_last(process), *first = &process->images[0];

	ADD(o, "id", q_jint(process->id));
	ADD(o, "ref", json_object_new_string(q_process_ref(process)));
	ADD(o, "host", q_jstr(process->host));
	ADD(o, "pid", q_jint(process->pid));
	ADD(o, "start", q_jtime(process->start_ns));
	ADD(o, "executable", q_jstr(last->executable));
	ADD(o, "executable_hash", q_jstr(last->executable_hash));
	ADD(o, "argv", q_jargv(last->argv, last->argc));
	ADD(o, "cwd", q_jstr(last->cwd));
	ADD(o, "uid", q_jint(last->uid));
	ADD(o, "user", q_jstr(q_user_name(last->uid)));
	ADD(o, "gid", q_jint(last->gid));
	ADD(o, "parent_id", q_jint(first->parent_id));
	ADD(o, "run_id", q_jint(process_run(process)));
	ADD(o, "seen", q_jtime(first->seen_ns));
	ADD(o, "exited", q_jtime(last->exited_ns));
	ADD(o, "exit", exit_json(last->exit_status));
	for (size_t i = 0; i < process->image_count; i++) {
		const struct q_image *image = &process->images[i];
		json_object *j = json_object_new_object();
		ADD(j, "id", q_jint(image->id));
		ADD(j, "exec_index", q_jint(image->exec_index));
		ADD(j, "executable", q_jstr(image->executable));
		ADD(j, "executable_hash", q_jstr(image->executable_hash));
		ADD(j, "argv", q_jargv(image->argv, image->argc));
		ADD(j, "seen", q_jtime(image->seen_ns));
		json_object_array_add(images, j);
	}
	ADD(o, "images", images);
	(void)q;
	return o;
}

json_object *
q_run_json(const struct q_run *run)
{
	json_object *o = json_object_new_object(), *parent = NULL;
	char root[48];

	snprintf(root, sizeof(root), "%lld@%lld", (long long)run->root_pid,
	         (long long)(run->root_start_ns / 1000000000LL));
	ADD(o, "id", q_jint(run->id));
	ADD(o, "uuid", q_jstr(run->uuid));
	ADD(o, "job", q_jstr(run->job_name));
	ADD(o, "named_by", q_jstr(run->named_by));
	ADD(o, "host", q_jstr(run->host));
	ADD(o, "root", json_object_new_string(root));
	ADD(o, "started", q_jtime(run->started_ns));
	ADD(o, "ended", q_jtime(run->ended_ns));
	ADD(o, "end_unknown", json_object_new_boolean(run->end_unknown));
	if (run->parent_run_id || run->parent_job_name || run->parent_namespace) {
		parent = json_object_new_object();
		ADD(parent, "namespace", q_jstr(run->parent_namespace));
		ADD(parent, "job", q_jstr(run->parent_job_name));
		ADD(parent, "run_id", q_jstr(run->parent_run_id));
	}
	ADD(o, "parent", parent);
	return o;
}

/* --- one line of text ------------------------------------------------------ */

void
q_version_line(struct query *q, struct qbuf *out, const struct q_version *version)
{
	qbuf_addf(out, "%s  v%lld  %s  %s", q_tx(q, version->path), (long long)version->number,
	          q_short_hash(version->hash, version->hash_state), q_size(version->size));
	if (version->effective_label)
		qbuf_addf(out, "  [%s]", q_tx(q, version->effective_label));
}

void
q_process_line(struct query *q, struct qbuf *out, const struct q_process *process)
{
	qbuf_addf(out, "%s ", q_process_ref(process));
	for (size_t i = 0; i < process->image_count; i++) {
		const struct q_image *image = &process->images[i];
		if (i)
			qbuf_adds(out, q->utf8 ? " → " : " -> ");
		qbuf_adds(out, q_argv_text(q, image->argv, image->argc, image->executable));
	}
}

void
q_run_line(struct query *q, struct qbuf *out, const struct q_run *run)
{
	qbuf_addf(out, "job %s, run %.8s", q_tx(q, run->job_name), run->uuid ? run->uuid : "?");
}

int
q_collect_ids(struct query *q, sqlite3_stmt *statement, int64_t **ids, size_t *count)
{
	size_t capacity = 0;
	int rc;

	*ids = NULL;
	*count = 0;
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		if (*count == capacity) {
			capacity = capacity ? capacity * 2 : 16;
			int64_t *grown = realloc(*ids, capacity * sizeof(**ids));
			if (grown == NULL)
				abort();
			*ids = grown;
		}
		(*ids)[(*count)++] = sqlite3_column_int64(statement, 0);
	}
	if (rc < 0) {
		free(*ids);
		*ids = NULL;
		*count = 0;
		return -1;
	}
	return 0;
}
