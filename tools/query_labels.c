/*
 * query_labels.c - the label questions of provfs-query: denials (every
 * refused open with its explanation), exposure (who read a file, or data
 * derived from it, with a clearance below its label) and the label sections
 * of gaps.
 *
 * DESIGN
 *
 * The daemon writes a denial row when it refuses an open: process, file,
 * path, uid, label, clearance and "rule" (what decided).  A later schema may
 * add columns (the version refused, where the label came from, the grant
 * lines considered, the policy revision): denials reads the rows with
 * SELECT * and shows every column it finds, naming the ones it knows and
 * passing any other through under its own name, so a store with more
 * columns is explained fully and one without them still answers.
 *
 * Labels and clearances of the past are rebuilt from the store and
 * provfs.conf by label_store.c (see label_store.h for the rules and for
 * what "clearance" of a recorded process means).  The configuration is
 * --config FILE, else /etc/provfs/provfs.conf: it must be the one the mount
 * used, since the levels' order and the path rules live only there.
 *
 * Exposure follows the impact graph of query_graph.c (q_impact_build) from
 * every version of the file: a process node there read a version of the
 * file or of something derived from it.  Only the images of the process
 * that did the reading are judged (an exec'd image inherits open
 * descriptors, but a shell that exec'd a cleared trainer never read), and
 * the lowest clearance among them is the process's.
 */
#include <errno.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "label_store.h"
#include "query_i.h"

/* Where the values of a denial's fields start: "  process    ". */
#define DENIAL_INDENT "             "

/*
 * Did the store's mounts enforce a provfs.conf?  Without --config and
 * without /etc/provfs/provfs.conf the tool would answer with the built-in
 * levels and no path rules: right for mounts that had no provfs.conf
 * either, wrong (and silently so) for mounts that enforced one.  A mount
 * session names the revision (XXH3-128) of the provfs.conf in force from
 * its start and at every reload, and every denial the one that refused;
 * the built-in policy's is the hash of no bytes.  (Daemons before this one
 * named it only at reloads: their stores tell only through denials.)
 */
#define BUILTIN_POLICY_REVISION "99aa06d3014798d86001c324468d497f"

/* Does sql (?1: the built-in revision) give a row?  False when the store lacks its columns. */
static bool
store_has_row(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;
	bool found = false;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, BUILTIN_POLICY_REVISION, -1, SQLITE_STATIC);
		found = sqlite3_step(s) == SQLITE_ROW;
	}
	sqlite3_finalize(s);
	return found;
}

static bool
store_enforced_a_config(struct query *q)
{
	return store_has_row(q->db, "SELECT 1 FROM mount_sessions WHERE policy = 1 "
	                            "AND policy_revision IS NOT NULL "
	                            "AND policy_revision <> ?1 LIMIT 1") ||
	       store_has_row(q->db, "SELECT 1 FROM denials WHERE policy_revision IS NOT "
	                            "NULL AND policy_revision <> ?1 LIMIT 1");
}

struct provfs_config *
q_label_config_load(struct query *q, char *error, size_t error_size)
{
	if (q->config_path == NULL && access(CONFIG_DEFAULT_PATH, F_OK) < 0 && errno == ENOENT &&
	    store_enforced_a_config(q)) {
		snprintf(error, error_size,
		         "%s does not exist, but the store's mounts enforced a "
		         "provfs.conf: name the one they used with --config FILE",
		         CONFIG_DEFAULT_PATH);
		return NULL;
	}
	return config_load(q->config_path, error, error_size);
}

/* The configuration for the label questions; NULL after the message (exit 2). */
static struct provfs_config *
label_config(struct query *q, char *error, size_t error_size)
{
	return q_label_config_load(q, error, error_size);
}

/* --- denials --------------------------------------------------------------- */

/* Columns of a denial row the explanation names; any other is passed through. */
enum denial_column {
	D_ID,
	D_PROCESS,
	D_FILE,
	D_MOUNT,
	D_PATH,
	D_UID,
	D_LABEL,
	D_CLEARANCE,
	D_RULE,
	D_TIME,
	D_VERSION,      /* optional: the version refused */
	D_SOURCE,       /* optional: "rule", "explicit", "propagated" */
	D_FROM_VERSION, /* optional: the input the label was propagated from */
	D_GRANTS,       /* optional: grant lines considered */
	D_REVISION,     /* optional: hash of the provfs.conf in force */
	D_ACCESS,       /* optional: "read", "exec", "xattr-read", "write-down" */
	D_COUNT,
};

/* Names a later schema may use for the same facts; the first present wins. */
static const char *const denial_names[D_COUNT][4] = {
	[D_ID] = {"id"},
	[D_PROCESS] = {"process_id"},
	[D_FILE] = {"file_id"},
	[D_MOUNT] = {"mount_session_id"},
	[D_PATH] = {"path"},
	[D_UID] = {"uid"},
	[D_LABEL] = {"label"},
	[D_CLEARANCE] = {"clearance"},
	[D_RULE] = {"rule"},
	[D_TIME] = {"time_ns"},
	[D_VERSION] = {"version_id", "read_version_id"},
	[D_SOURCE] = {"label_source", "source"},
	[D_FROM_VERSION] = {"label_from_version_id", "propagated_from_version_id"},
	[D_GRANTS] = {"grants", "grants_considered", "grant_lines"},
	[D_REVISION] = {"policy_revision", "policy_hash", "config_hash"},
	[D_ACCESS] = {"operation", "access", "kind"},
};

static int
denial_column_of(const char *name)
{
	for (int c = 0; c < D_COUNT; c++)
		for (int i = 0; i < 4 && denial_names[c][i]; i++)
			if (strcmp(denial_names[c][i], name) == 0)
				return c;
	return -1;
}

static int
parse_user(struct query *q, const char *text, int64_t *uid)
{
	struct passwd *pw = getpwnam(text);
	char *end;
	long long number;

	if (pw) {
		*uid = pw->pw_uid;
		return 0;
	}
	number = strtoll(text, &end, 10);
	if (*text && *end == '\0' && number >= 0 && number <= UINT32_MAX) {
		*uid = number;
		return 0;
	}
	return q_error(q, 2, "--user: unknown user '%s'", text);
}

/* A version's "path vN hash" in text, from its id. */
static void
version_words(struct query *q, struct qbuf *out, int64_t version_id)
{
	struct q_version version;

	if (version_id == Q_NONE || q_version_load(q, version_id, &version) != 0) {
		qbuf_adds(out, "?");
		return;
	}
	qbuf_addf(out, "%s v%lld %s", q_tx(q, version.path), (long long)version.number,
	          q_short_hash(version.hash, version.hash_state));
	q_version_release(&version);
}

static json_object *
version_json_of(struct query *q, int64_t version_id)
{
	struct q_version version;
	json_object *j;

	if (version_id == Q_NONE || q_version_load(q, version_id, &version) != 0)
		return NULL;
	j = q_version_json(&version);
	q_version_release(&version);
	return j;
}

/* One denial: text block or JSON object. */
static int
show_denial(struct query *q, sqlite3_stmt *row, const int *column_of, json_object *list)
{
	int columns = sqlite3_column_count(row);
	int at[D_COUNT];
	struct q_process process;
	bool have_process = false;
	int64_t version_id = Q_NONE, file_id, time_ns, process_id;
	const char *mount_point = NULL, *host = NULL, *source, *rule;
	struct qbuf line = QBUF_INIT;
	sqlite3_stmt *session;
	int status = 2, rc;

	for (int c = 0; c < D_COUNT; c++)
		at[c] = -1;
	for (int i = 0; i < columns; i++)
		if (column_of[i] >= 0 && at[column_of[i]] < 0)
			at[column_of[i]] = i;
#define TEXT(c) (at[c] >= 0 ? (const char *)sqlite3_column_text(row, at[c]) : NULL)
#define INT(c) (at[c] >= 0 ? q_col_int(row, at[c]) : Q_NONE)
	file_id = INT(D_FILE);
	time_ns = INT(D_TIME);
	process_id = INT(D_PROCESS);
	if (process_id != Q_NONE) {
		rc = q_process_load(q, process_id, &process);
		if (rc < 0)
			return 2;
		have_process = rc == 0;
	}
	/* The version refused: recorded, else the file's version at that time. */
	version_id = INT(D_VERSION);
	if (version_id == Q_NONE && file_id != Q_NONE && time_ns != Q_NONE) {
		struct q_version version;
		rc = q_version_at(q, file_id, time_ns, &version);
		if (rc < 0)
			goto out;
		if (rc == 0) {
			version_id = version.id;
			q_version_release(&version);
		}
	}
	session = q_prepare(q, "SELECT host, mount_point FROM mount_sessions WHERE id = ?");
	if (session == NULL)
		goto out;
	q_bind_int(session, 1, INT(D_MOUNT));
	rc = q_step(q, session);
	if (rc < 0)
		goto out;
	/* The text stays valid until the statement is reset (next denial). */
	if (rc == SQLITE_ROW) {
		host = (const char *)sqlite3_column_text(session, 0);
		mount_point = (const char *)sqlite3_column_text(session, 1);
	}

	if (list) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "time", q_jtime(time_ns));
		json_object_object_add(j, "host", q_jstr(host));
		json_object_object_add(j, "mount_point", q_jstr(mount_point));
		json_object_object_add(j, "path", q_jstr(TEXT(D_PATH)));
		json_object_object_add(j, "access", q_jstr(TEXT(D_ACCESS)));
		json_object_object_add(j, "uid", q_jint(INT(D_UID)));
		json_object_object_add(j, "user", q_jstr(INT(D_UID) == Q_NONE
		                                             ? NULL
		                                             : q_user_name(INT(D_UID))));
		json_object_object_add(j, "process",
		                       have_process ? q_process_json(q, &process) : NULL);
		json_object_object_add(j, "version", version_json_of(q, version_id));
		json_object_object_add(j, "label", q_jstr(TEXT(D_LABEL)));
		json_object_object_add(j, "label_source", q_jstr(TEXT(D_SOURCE)));
		json_object_object_add(j, "rule", q_jstr(TEXT(D_RULE)));
		json_object_object_add(j, "propagated_from",
		                       version_json_of(q, INT(D_FROM_VERSION)));
		json_object_object_add(j, "clearance", q_jstr(TEXT(D_CLEARANCE)));
		json_object_object_add(j, "grants_considered", q_jstr(TEXT(D_GRANTS)));
		json_object_object_add(j, "policy_revision", q_jstr(TEXT(D_REVISION)));
		for (int i = 0; i < columns; i++) {
			if (column_of[i] >= 0)
				continue;
			if (sqlite3_column_type(row, i) == SQLITE_INTEGER)
				json_object_object_add(j, sqlite3_column_name(row, i),
				                       q_jint(sqlite3_column_int64(row, i)));
			else
				json_object_object_add(
				    j, sqlite3_column_name(row, i),
				    q_jstr((const char *)sqlite3_column_text(row, i)));
		}
		json_object_array_add(list, j);
		status = 0;
		goto out;
	}

	qbuf_init(&line);
	q_print_wrappedf("", "    ", "%s  DENIED %s%s%s", q_when(q, time_ns),
	                 TEXT(D_ACCESS) ? q_tx(q, TEXT(D_ACCESS)) : "", TEXT(D_ACCESS) ? " of " : "",
	                 q_tx(q, TEXT(D_PATH)));
	if (have_process) {
		const struct q_image *last = q_process_last(&process);
		qbuf_reset(&line);
		q_process_line(q, &line, &process);
		q_print_wrapped("  process    ", DENIAL_INDENT, line.buf);
		q_print_wrappedf(DENIAL_INDENT, DENIAL_INDENT, "exe %s %s, user %s",
		                 q_tx(q, last->executable),
		                 q_short_hash(last->executable_hash,
		                              last->executable_hash ? "hashed" : "pending"),
		                 q_user_name(INT(D_UID)));
	} else {
		q_print_wrappedf("  process    ", DENIAL_INDENT, "(not recorded), user %s",
		                 q_user_name(INT(D_UID)));
	}
	qbuf_reset(&line);
	if (version_id != Q_NONE)
		version_words(q, &line, version_id);
	else
		qbuf_adds(&line, q_tx(q, TEXT(D_PATH)));
	if (mount_point)
		qbuf_addf(&line, "  (mount %s on %s)", q_tx(q, mount_point), q_tx(q, host));
	q_print_wrapped("  file       ", DENIAL_INDENT, line.buf);
	/* A store may keep the label's source in both columns: say it once. */
	source = TEXT(D_SOURCE);
	rule = TEXT(D_RULE);
	qbuf_reset(&line);
	qbuf_adds(&line, q_tx(q, TEXT(D_LABEL)));
	if (source && !(rule && strcmp(source, rule) == 0))
		qbuf_addf(&line, " (%s)", q_tx(q, source));
	if (rule)
		qbuf_addf(&line, ": %s", q_tx(q, rule));
	q_print_wrapped("  label      ", DENIAL_INDENT, line.buf);
	if (INT(D_FROM_VERSION) != Q_NONE) {
		qbuf_reset(&line);
		version_words(q, &line, INT(D_FROM_VERSION));
		q_print_wrappedf(DENIAL_INDENT, DENIAL_INDENT, "propagated from %s", line.buf);
	}
	q_print_wrapped("  clearance  ", DENIAL_INDENT, q_tx(q, TEXT(D_CLEARANCE)));
	if (at[D_GRANTS] >= 0)
		q_print_wrapped("  grants     ", DENIAL_INDENT,
		                TEXT(D_GRANTS) ? q_tx(q, TEXT(D_GRANTS)) : "(none considered)");
	if (at[D_REVISION] >= 0)
		q_print_wrappedf("  policy     ", DENIAL_INDENT, "revision %s",
		                 q_tx(q, TEXT(D_REVISION)));
	for (int i = 0; i < columns; i++)
		if (column_of[i] < 0) {
			char name[64];
			snprintf(name, sizeof(name), "  %-10s ", q_tx(q, sqlite3_column_name(row, i)));
			q_print_wrapped(name, DENIAL_INDENT,
			                q_tx(q, (const char *)sqlite3_column_text(row, i)));
		}
	status = 0;
#undef TEXT
#undef INT
out:
	qbuf_release(&line);
	if (have_process)
		q_process_release(&process);
	return status;
}

int
cmd_denials(struct query *q)
{
	char *backing = NULL, *prefix = NULL;
	int64_t uid = Q_NONE;
	sqlite3_stmt *rows = NULL;
	json_object *doc = NULL, *list = NULL;
	int *column_of = NULL, status = 2, rc, columns;
	size_t shown = 0;

	if (q->user && parse_user(q, q->user, &uid))
		return 2;
	if (q->path && (status = q_resolve_dir(q, q->path, &backing, &prefix)) != 0)
		return status;
	status = 2;
	/*
	 * SELECT d.*: the columns this store has (see DESIGN).  Not cached by
	 * q_prepare: its rows are read while other cached statements run.
	 */
	if (sqlite3_prepare_v2(
	        q->db,
	        "SELECT d.* FROM denials d LEFT JOIN mount_sessions m ON m.id = d.mount_session_id "
	        "WHERE (?1 IS NULL OR d.time_ns >= ?1) AND (?2 IS NULL OR d.uid = ?2) "
	        "AND (?3 IS NULL OR (m.backing_dir = ?3 AND (?4 = '' OR d.path = ?4 OR "
	        "substr(d.path, 1, length(?4) + 1) = ?4 || '/'))) "
	        "ORDER BY d.time_ns, d.id",
	        -1, &rows, NULL) != SQLITE_OK) {
		q_store_error(q);
		goto out;
	}
	q_bind_int(rows, 1, q->since_ns);
	q_bind_int(rows, 2, uid);
	if (backing) {
		sqlite3_bind_text(rows, 3, backing, -1, SQLITE_STATIC);
		sqlite3_bind_text(rows, 4, prefix, -1, SQLITE_STATIC);
	}
	columns = sqlite3_column_count(rows);
	column_of = calloc((size_t)columns, sizeof(*column_of));
	if (column_of == NULL)
		abort();
	for (int i = 0; i < columns; i++)
		column_of[i] = denial_column_of(sqlite3_column_name(rows, i));
	if (q->format == Q_FORMAT_JSON) {
		doc = q_jdoc(q);
		list = json_object_new_array();
	}
	while ((rc = q_step(q, rows)) == SQLITE_ROW) {
		if (!list && shown)
			putchar('\n');
		if (show_denial(q, rows, column_of, list))
			goto out;
		shown++;
	}
	if (rc < 0)
		goto out;
	if (doc) {
		json_object_object_add(doc, "denials", list);
		list = NULL;
		status = q_emit_json(q, doc);
		doc = NULL;
	} else {
		if (shown == 0)
			printf("no denials%s\n", q->since_ns != Q_NONE || q->user || q->path
			                             ? " match"
			                             : " recorded");
		status = 0;
	}
out:
	sqlite3_finalize(rows);
	json_object_put(list);
	json_object_put(doc);
	free(column_of);
	free(backing);
	free(prefix);
	return status;
}

/* --- exposure ---------------------------------------------------------------- */

static int
compare_ids(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

struct exposed {
	size_t node;         /* process node of the graph */
	const char *level;   /* its clearance */
	const char *how;     /* "denial", "grants", "default" */
	char buffer[64];     /* a denial's clearance */
	int64_t *reads;      /* graph versions its judged images read */
	size_t read_count;
};

/*
 * Judge one process node: the images that read a version of the graph, and
 * the lowest clearance among them.  *judged false when no image read one
 * (reached only through --run).  0, or -1 after an error.
 */
static int
judge_process(struct query *q, const struct provfs_config *config, const struct q_graph *g,
              size_t node, const int64_t *versions, size_t version_count, struct exposed *e,
              bool *judged)
{
	const struct q_process *process = q_graph_process(g, node);
	char error[512];
	int lowest = 1 << 30;

	*judged = false;
	memset(e, 0, sizeof(*e));
	e->node = node;
	for (size_t i = 0; i < process->image_count; i++) {
		sqlite3_stmt *statement = q_prepare(
		    q, "SELECT DISTINCT read_version_id FROM accesses WHERE process_id = ? "
		       "AND read_version_id IS NOT NULL ORDER BY read_version_id");
		int64_t *ids = NULL;
		size_t count = 0;
		bool image_read = false;

		if (statement == NULL)
			return -1;
		q_bind_int(statement, 1, process->images[i].id);
		if (q_collect_ids(q, statement, &ids, &count) < 0)
			return -1;
		for (size_t k = 0; k < count; k++) {
			if (!bsearch(&ids[k], versions, version_count, sizeof(*versions), compare_ids))
				continue;
			image_read = true;
			e->reads = realloc(e->reads, (e->read_count + 1) * sizeof(*e->reads));
			if (e->reads == NULL)
				abort();
			e->reads[e->read_count++] = ids[k];
		}
		free(ids);
		if (image_read) {
			char buffer[64];
			const char *level, *how;
			int rank;

			if (label_clearance_of(q->db, config, process->images[i].id, buffer,
			                       sizeof(buffer), &level, &how, error,
			                       sizeof(error)) < 0) {
				q_error(q, 2, "%s", error);
				return -1;
			}
			rank = label_rank(config, level);
			if (!*judged || rank < lowest) {
				lowest = rank;
				e->how = how;
				if (level == buffer) {
					snprintf(e->buffer, sizeof(e->buffer), "%s", buffer);
					e->level = e->buffer;
				} else {
					e->level = level;
				}
			}
			*judged = true;
		}
	}
	return 0;
}

int
cmd_exposure(struct query *q)
{
	struct provfs_config *config;
	struct q_target target = {0};
	struct q_file file = {0};
	struct label_facts facts = {0};
	struct q_graph *g = NULL;
	struct exposed *list = NULL;
	size_t list_count = 0, version_count = 0, start_count = 0;
	int64_t *starts = NULL, *versions = NULL, *runs = NULL;
	size_t run_count = 0;
	char error[1024];
	const char *label;
	int rank, status;
	sqlite3_stmt *statement;

	config = label_config(q, error, sizeof(error));
	if (config == NULL)
		return q_error(q, 2, "%s", error);
	status = q_resolve(q, q->args[0], Q_NONE, &target);
	if (status)
		goto out_config;
	status = 2;
	if (q_file_load(q, target.file_id, &file) != 0)
		goto out;
	if (label_facts_load(q->db, config, file.id, file.path, &facts, error, sizeof(error)) < 0) {
		q_error(q, 2, "%s", error);
		goto out;
	}
	label = facts.effective ? facts.effective : config->levels.items[0];
	rank = label_rank(config, label);

	statement = q_prepare(q, "SELECT id FROM versions WHERE file_id = ? ORDER BY number");
	if (statement == NULL)
		goto out;
	q_bind_int(statement, 1, file.id);
	if (q_collect_ids(q, statement, &starts, &start_count) < 0)
		goto out;
	if (start_count) {
		g = q_impact_build(q, starts, start_count);
		if (g == NULL)
			goto out;
		for (size_t i = 0; i < q_graph_count(g); i++) {
			const struct q_version *v = q_graph_version(g, i);
			if (v == NULL)
				continue;
			versions = realloc(versions, (version_count + 1) * sizeof(*versions));
			if (versions == NULL)
				abort();
			versions[version_count++] = v->id;
		}
		if (version_count > 1) /* versions is NULL when none */
			qsort(versions, version_count, sizeof(*versions), compare_ids);
		for (size_t i = 0; i < q_graph_count(g); i++) {
			struct exposed e;
			bool judged;
			if (q_graph_process(g, i) == NULL)
				continue;
			if (judge_process(q, config, g, i, versions, version_count, &e, &judged) <
			    0) {
				free(e.reads);
				goto out;
			}
			if (!judged || label_rank(config, e.level) >= rank) {
				free(e.reads);
				continue;
			}
			list = realloc(list, (list_count + 1) * sizeof(*list));
			if (list == NULL)
				abort();
			list[list_count++] = e;
			if (list[list_count - 1].level == e.buffer) /* moved: re-point */
				list[list_count - 1].level = list[list_count - 1].buffer;
			const struct q_run *run = q_graph_run(g, i);
			if (run) {
				bool seen = false;
				for (size_t r = 0; r < run_count; r++)
					seen |= runs[r] == run->id;
				if (!seen) {
					runs = realloc(runs, (run_count + 1) * sizeof(*runs));
					if (runs == NULL)
						abort();
					runs[run_count++] = run->id;
				}
			}
		}
	}

	if (q->format == Q_FORMAT_JSON) {
		json_object *doc = q_jdoc(q), *processes = json_object_new_array();
		json_object *run_list = json_object_new_array();
		json_object_object_add(doc, "file", q_file_json(&file));
		json_object_object_add(doc, "label", q_jstr(label));
		json_object_object_add(doc, "label_source", q_jstr(facts.source));
		json_object_object_add(doc, "truncated",
		                       json_object_new_boolean(g && q_graph_truncated(g)));
		for (size_t i = 0; i < list_count; i++) {
			json_object *j = q_process_json(q, q_graph_process(g, list[i].node));
			json_object *reads = json_object_new_array();
			const struct q_run *run = q_graph_run(g, list[i].node);
			json_object_object_add(j, "clearance", q_jstr(list[i].level));
			json_object_object_add(j, "clearance_from", q_jstr(list[i].how));
			json_object_object_add(j, "run", run ? q_jstr(run->uuid) : NULL);
			for (size_t k = 0; k < list[i].read_count; k++)
				json_object_array_add(reads, version_json_of(q, list[i].reads[k]));
			json_object_object_add(j, "read", reads);
			json_object_array_add(processes, j);
		}
		for (size_t i = 0; g && i < q_graph_count(g); i++) {
			const struct q_run *run = q_graph_run(g, i);
			bool wanted = false;
			if (run == NULL || q_graph_process(g, i) == NULL)
				continue;
			for (size_t r = 0; r < run_count; r++)
				if (runs[r] == run->id) {
					wanted = true;
					runs[r] = Q_NONE; /* once */
				}
			if (wanted)
				json_object_array_add(run_list, q_run_json(run));
		}
		json_object_object_add(doc, "processes", processes);
		json_object_object_add(doc, "runs", run_list);
		status = q_emit_json(q, doc);
		goto out;
	}

	{
		struct qbuf line = QBUF_INIT;
		qbuf_init(&line);
		qbuf_addf(&line, "%s: label %s", q_tx(q, q->args[0]), q_tx(q, label));
		if (facts.effective) {
			if (strcmp(facts.source, "rule") == 0)
				qbuf_addf(&line, " (rule %s, line %d)", q_tx(q, facts.rule->glob),
				          facts.rule->line);
			else
				qbuf_addf(&line, " (%s)", facts.source);
		} else {
			qbuf_adds(&line, " (no rule, explicit or propagated label: the lowest level)");
		}
		q_print_wrapped("", "    ", line.buf);
		q_print_wrappedf("", "    ", "read by %zu process%s with a clearance below %s%s",
		                 list_count, list_count == 1 ? "" : "es", q_tx(q, label),
		                 list_count ? " (directly or through derived files):" : "");
		for (size_t i = 0; i < list_count; i++) {
			const struct q_process *process = q_graph_process(g, list[i].node);
			const struct q_run *run = q_graph_run(g, list[i].node);
			qbuf_reset(&line);
			q_process_line(q, &line, process);
			q_print_wrapped("  ", "      ", line.buf);
			qbuf_reset(&line);
			qbuf_addf(&line, "user %s, clearance %s (%s)",
			          q_user_name(q_process_last(process)->uid), q_tx(q, list[i].level),
			          strcmp(list[i].how, "denial") == 0
			              ? "recorded in a denial"
			              : strcmp(list[i].how, "grants") == 0 ? "from the grants"
			                                                   : "default_clearance");
			if (run) {
				qbuf_adds(&line, ", ");
				q_run_line(q, &line, run);
			}
			q_print_wrapped("      ", "          ", line.buf);
			for (size_t k = 0; k < list[i].read_count; k++) {
				qbuf_reset(&line);
				version_words(q, &line, list[i].reads[k]);
				q_print_wrappedf("      ", "          ", "read %s", line.buf);
			}
		}
		if (run_count) {
			printf("runs (%zu):\n", run_count);
			for (size_t i = 0; i < q_graph_count(g); i++) {
				const struct q_run *run = q_graph_run(g, i);
				if (run == NULL || q_graph_process(g, i) == NULL)
					continue;
				for (size_t r = 0; r < run_count; r++) {
					if (runs[r] != run->id)
						continue;
					runs[r] = Q_NONE;
					qbuf_reset(&line);
					q_run_line(q, &line, run);
					q_print_wrapped("  ", "      ", line.buf);
				}
			}
		}
		if (g && q_graph_truncated(g))
			printf("(the walk stopped at --depth; more may be exposed)\n");
		qbuf_release(&line);
		status = 0;
	}
out:
	for (size_t i = 0; i < list_count; i++)
		free(list[i].reads);
	free(list);
	free(runs);
	free(starts);
	free(versions);
	q_graph_free(g);
	label_facts_release(&facts);
	label_store_finish();
	q_file_release(&file);
	q_target_release(&target);
out_config:
	config_free(config);
	return status;
}

/* --- gaps -------------------------------------------------------------------- */

/* The label a file had just before version_id was written: rule, explicit, previous version. */
static int
label_before(struct query *q, const struct provfs_config *config, int64_t file_id,
             int64_t number, int64_t recorded_ns, const char *path, int *rank)
{
	const struct path_rule *rule = label_path_rule(config, path);
	sqlite3_stmt *statement;
	int rc;

	*rank = rule ? label_rank(config, rule->level) : 0;
	statement = q_prepare(q, "SELECT label FROM versions WHERE file_id = ? AND number = ?");
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, file_id);
	q_bind_int(statement, 2, number - 1);
	rc = q_step(q, statement);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_ROW && sqlite3_column_text(statement, 0)) {
		int r = label_rank(config, (const char *)sqlite3_column_text(statement, 0));
		if (r > *rank)
			*rank = r;
	}
	statement = q_prepare(q, "SELECT level FROM label_changes WHERE file_id = ? AND forced = 0 "
	                         "AND time_ns <= ? ORDER BY time_ns DESC, id DESC LIMIT 1");
	if (statement == NULL)
		return -1;
	q_bind_int(statement, 1, file_id);
	q_bind_int(statement, 2, recorded_ns);
	rc = q_step(q, statement);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_ROW && sqlite3_column_text(statement, 0)) {
		int r = label_rank(config, (const char *)sqlite3_column_text(statement, 0));
		if (r > *rank)
			*rank = r;
	}
	return 0;
}

int
q_gaps_labels(struct query *q, json_object *doc)
{
	struct provfs_config *config;
	struct q_table t_raised, t_declassified, t_down;
	json_object *raised = NULL, *declassified = NULL, *down = NULL;
	sqlite3_stmt *statement;
	char error[1024];
	int64_t *ids = NULL;
	size_t count = 0;
	int status = 2, rc;

	q_table_init(&t_raised, 4);
	q_table_init(&t_declassified, 5);
	q_table_init(&t_down, 4);
	if (doc) {
		raised = json_object_new_array();
		declassified = json_object_new_array();
		down = json_object_new_array();
	}
	/* The path rules and the levels' order are in provfs.conf only. */
	config = label_config(q, error, sizeof(error));

	/* 1. Current versions whose propagated label is above their path rule. */
	if (config) {
		statement = q_prepare(
		    q, "SELECT f.id FROM files f JOIN versions v ON v.file_id = f.id AND "
		       "v.number = (SELECT MAX(number) FROM versions w WHERE w.file_id = f.id) "
		       "WHERE f.removed_ns IS NULL AND v.label IS NOT NULL ORDER BY f.path");
		if (statement == NULL || q_collect_ids(q, statement, &ids, &count) < 0)
			goto out;
		for (size_t i = 0; i < count; i++) {
			struct q_file file;
			struct label_facts facts;
			int rule_rank;

			if (q_file_load(q, ids[i], &file) != 0)
				continue;
			if (label_facts_load(q->db, config, file.id, file.path, &facts, error,
			                     sizeof(error)) < 0) {
				q_file_release(&file);
				q_error(q, 2, "%s", error);
				goto out;
			}
			rule_rank = facts.rule ? label_rank(config, facts.rule->level) : 0;
			if (facts.propagated && label_rank(config, facts.propagated) > rule_rank) {
				const char *rule_level =
				    facts.rule ? facts.rule->level : config->levels.items[0];
				struct qbuf from = QBUF_INIT;
				qbuf_init(&from);
				if (facts.from_version_id != LABEL_NONE)
					version_words(q, &from, facts.from_version_id);
				if (doc) {
					json_object *j = json_object_new_object();
					json_object_object_add(j, "path", q_jstr(file.path));
					json_object_object_add(j, "backing_dir",
					                       q_jstr(file.backing_dir));
					json_object_object_add(j, "version",
					                       q_jint(facts.version_number));
					json_object_object_add(j, "label", q_jstr(facts.propagated));
					json_object_object_add(j, "rule_level", q_jstr(rule_level));
					json_object_object_add(
					    j, "rule", q_jstr(facts.rule ? facts.rule->glob : NULL));
					json_object_object_add(
					    j, "propagated_from",
					    version_json_of(q, facts.from_version_id == LABEL_NONE
					                           ? Q_NONE
					                           : facts.from_version_id));
					json_object_array_add(raised, j);
				} else {
					char levels[160];
					snprintf(levels, sizeof(levels), "%s > %s",
					         q_tx(q, facts.propagated), q_tx(q, rule_level));
					q_table_add(&t_raised, q_tx(q, file.path), levels,
					            facts.rule ? "(path rule)" : "(no rule)",
					            from.len ? from.buf : "-");
				}
				qbuf_release(&from);
			}
			label_facts_release(&facts);
			q_file_release(&file);
		}
		free(ids);
		ids = NULL;
	}

	/* 2. Declassifications, oldest first. */
	statement = q_prepare(q, "SELECT l.file_id, f.path, l.version_id, l.level, l.reason, l.uid, "
	                         "l.time_ns FROM label_changes l JOIN files f ON f.id = l.file_id "
	                         "WHERE l.forced = 1 ORDER BY l.time_ns, l.id");
	if (statement == NULL)
		goto out;
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(statement, 1);
		const char *level = (const char *)sqlite3_column_text(statement, 3);
		const char *reason = (const char *)sqlite3_column_text(statement, 4);
		int64_t version_id = q_col_int(statement, 2), uid = q_col_int(statement, 5);
		int64_t time_ns = q_col_int(statement, 6);
		if (doc) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "path", q_jstr(path));
			json_object_object_add(j, "version_id", q_jint(version_id));
			json_object_object_add(j, "level", q_jstr(level));
			json_object_object_add(j, "reason", q_jstr(reason));
			json_object_object_add(j, "uid", q_jint(uid));
			json_object_object_add(j, "user", q_jstr(q_user_name(uid)));
			json_object_object_add(j, "time", q_jtime(time_ns));
			json_object_array_add(declassified, j);
		} else {
			struct qbuf who = QBUF_INIT;
			qbuf_init(&who);
			qbuf_addf(&who, "by %s", q_user_name(uid));
			q_table_add(&t_declassified, q_tx(q, path), q_tx(q, level), who.buf,
			            q_when(q, time_ns), q_tx(q, reason));
			qbuf_release(&who);
		}
	}
	if (rc < 0)
		goto out;

	/* 3. Writes down that were allowed: a version raised above the file's label by its input. */
	if (config) {
		statement = q_prepare(q, "SELECT id FROM versions WHERE label IS NOT NULL AND "
		                         "label_from_version_id IS NOT NULL ORDER BY recorded_ns, id");
		if (statement == NULL || q_collect_ids(q, statement, &ids, &count) < 0)
			goto out;
		for (size_t i = 0; i < count; i++) {
			struct q_version version;
			sqlite3_stmt *from;
			int64_t from_id = Q_NONE, writer = Q_NONE;
			int before;
			const char *path;

			if (q_version_load(q, ids[i], &version) != 0)
				continue;
			/* The path it was written under, and by which process. */
			from = q_prepare(q, "SELECT v.label_from_version_id, a.path, a.process_id "
			                    "FROM versions v LEFT JOIN accesses a ON "
			                    "a.written_version_id = v.id WHERE v.id = ? "
			                    "ORDER BY a.closed_ns DESC LIMIT 1");
			if (from == NULL) {
				q_version_release(&version);
				goto out;
			}
			q_bind_int(from, 1, version.id);
			rc = q_step(q, from);
			if (rc < 0) {
				q_version_release(&version);
				goto out;
			}
			path = version.path;
			char *access_path = NULL;
			if (rc == SQLITE_ROW) {
				from_id = q_col_int(from, 0);
				access_path = q_col_text(from, 1);
				writer = q_col_int(from, 2);
			}
			if (access_path)
				path = access_path;
			if (label_before(q, config, version.file_id, version.number,
			                 version.recorded_ns, path, &before) < 0) {
				free(access_path);
				q_version_release(&version);
				goto out;
			}
			if (label_rank(config, version.label) > before) {
				struct qbuf source = QBUF_INIT, num = QBUF_INIT;
				qbuf_init(&source);
				qbuf_init(&num);
				version_words(q, &source, from_id);
				qbuf_addf(&num, "v%lld %s > %s", (long long)version.number,
				          q_tx(q, version.label), config->levels.items[before]);
				if (doc) {
					json_object *j = q_version_json(&version);
					json_object_object_add(j, "written_as", q_jstr(path));
					json_object_object_add(j, "label_before",
					                       q_jstr(config->levels.items[before]));
					json_object_object_add(j, "propagated_from",
					                       version_json_of(q, from_id));
					json_object_object_add(j, "writer_process_id", q_jint(writer));
					json_object_array_add(down, j);
				} else {
					q_table_add(&t_down, q_tx(q, path), num.buf,
					            source.len ? source.buf : "-",
					            q_when(q, version.recorded_ns));
				}
				qbuf_release(&source);
				qbuf_release(&num);
			}
			free(access_path);
			q_version_release(&version);
		}
	}

	if (doc) {
		json_object_object_add(doc, "labels_raised_by_propagation", raised);
		json_object_object_add(doc, "declassifications", declassified);
		json_object_object_add(doc, "writes_down_allowed", down);
		json_object_object_add(doc, "label_policy_error", config ? NULL : q_jstr(error));
		raised = declassified = down = NULL;
		status = 0;
		goto out;
	}
	if (config) {
		printf("\nfiles whose label was raised above their path rule by propagation (%zu):\n",
		       t_raised.rows);
		q_table_print(&t_raised, "  ");
	} else {
		printf("\nfiles whose label was raised above their path rule by propagation: "
		       "unknown (%s)\n",
		       q_tx(q, error));
	}
	printf("\ndeclassifications (%zu):\n", t_declassified.rows);
	q_table_print(&t_declassified, "  ");
	if (config) {
		printf("\nwrites down that were allowed (%zu):\n", t_down.rows);
		q_table_print(&t_down, "  ");
	} else {
		printf("\nwrites down that were allowed: unknown (%s)\n", q_tx(q, error));
	}
	status = 0;
out:
	free(ids);
	json_object_put(raised);
	json_object_put(declassified);
	json_object_put(down);
	q_table_release(&t_raised);
	q_table_release(&t_declassified);
	q_table_release(&t_down);
	label_store_finish();
	config_free(config);
	return status;
}
