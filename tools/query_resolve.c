/*
 * query_resolve.c - from a PATH a user typed to a file of the store.
 *
 * A user may name a file by its path in the mount, by its path in the
 * backing directory, or relative to the current directory, and the file may
 * no longer exist.  The store knows files by (backing_dir, path relative to
 * the mount root), so:
 *
 *   1. Make the path absolute (prefix the current directory) and canonical:
 *      realpath(3) when it exists; else realpath of its longest existing
 *      ancestor, with the rest normalized lexically ("." and ".." removed).
 *   2. Find the recorded mount sessions whose mount_point or backing_dir
 *      contains it; the longest such prefix wins (nested trees), then
 *      sessions of this host, then the most recent.  The rest of the path is
 *      the path relative to the mount root.
 *   3. Look the name up in file_names (index file_names_path): the name
 *      valid at --at TIME when given, else a current name (until_ns NULL),
 *      else the most recent name it had.
 *
 * A path outside every recorded mount, or a name never recorded, is a
 * negative answer (exit 1): "never seen through provfs".  So is a --job
 * NAME no run was ever recorded under (q_check_job).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "query_i.h"

/* Append component (len bytes) to path, handling "." and "..". */
static void
push_component(struct qbuf *path, const char *component, size_t len)
{
	if (len == 0 || (len == 1 && component[0] == '.'))
		return;
	if (len == 2 && component[0] == '.' && component[1] == '.') {
		char *slash = strrchr(path->buf, '/');
		if (slash) {
			path->len = (size_t)(slash - path->buf);
			path->buf[path->len] = '\0';
		}
		return;
	}
	qbuf_addc(path, '/');
	qbuf_add(path, component, len);
}

/* Normalize an absolute path lexically into out ("/" is the empty string). */
static void
normalize(const char *abs, struct qbuf *out)
{
	const char *p = abs;

	qbuf_reset(out);
	while (*p) {
		const char *end;
		while (*p == '/')
			p++;
		end = strchr(p, '/');
		if (end == NULL)
			end = p + strlen(p);
		push_component(out, p, (size_t)(end - p));
		p = end;
	}
}

/*
 * Canonicalize abs into out (no trailing slash; "" for the root): realpath of
 * the longest existing ancestor, the rest lexically.
 */
static void
canonicalize(const char *abs, struct qbuf *out)
{
	struct qbuf lexical = QBUF_INIT;
	char *resolved;
	size_t cut;

	qbuf_init(&lexical);
	normalize(abs, &lexical);
	qbuf_reset(out);
	cut = lexical.len;
	for (;;) {
		char saved = lexical.buf[cut];
		lexical.buf[cut] = '\0';
		resolved = realpath(cut ? lexical.buf : "/", NULL);
		lexical.buf[cut] = saved;
		if (resolved || cut == 0)
			break;
		while (cut > 0 && lexical.buf[cut - 1] != '/')
			cut--;
		if (cut > 0)
			cut--; /* drop the slash */
	}
	if (resolved && strcmp(resolved, "/") != 0)
		qbuf_adds(out, resolved);
	free(resolved);
	/* The part that does not exist, already normalized. */
	qbuf_add(out, lexical.buf + cut, lexical.len - cut);
	qbuf_release(&lexical);
}

/* If path is root or below it, the rest ("" for root itself); else NULL. */
static const char *
under(const char *path, const char *root)
{
	size_t n = strlen(root);

	while (n > 0 && root[n - 1] == '/')
		n--;
	if (strncmp(path, root, n) != 0)
		return NULL;
	if (path[n] == '\0')
		return path + n;
	if (path[n] == '/')
		return path + n + 1;
	return NULL;
}

struct candidate {
	char *backing_dir;
	char *mount_point;
	const char *rel;
	size_t prefix_len;
};

static int
compare_candidates(const void *a, const void *b)
{
	const struct candidate *x = a, *y = b;

	/* Longer prefix first; qsort is not stable, so order is by prefix only. */
	return x->prefix_len < y->prefix_len ? 1 : x->prefix_len > y->prefix_len ? -1 : 0;
}

/*
 * The mount sessions that contain canonical, best first.  Returns the
 * number found (0 when none), or -1 after a store error.
 */
static int
find_sessions(struct query *q, const char *canonical, struct candidate **result)
{
	sqlite3_stmt *statement = q_prepare(
	    q, "SELECT backing_dir, mount_point, MAX(started_ns) AS latest, host = ? AS here "
	       "FROM mount_sessions GROUP BY backing_dir, mount_point "
	       "ORDER BY here DESC, latest DESC");
	struct candidate *list = NULL;
	size_t count = 0, alloc = 0;
	int rc;

	if (statement == NULL)
		return -1;
	sqlite3_bind_text(statement, 1, q->host, -1, SQLITE_STATIC);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *backing = (const char *)sqlite3_column_text(statement, 0);
		const char *mount = (const char *)sqlite3_column_text(statement, 1);
		const char *rel_mount = mount ? under(canonical, mount) : NULL;
		const char *rel_backing = backing ? under(canonical, backing) : NULL;
		const char *rel = rel_mount;
		size_t prefix = rel_mount ? (size_t)(rel_mount - canonical) : 0;

		if (rel_backing && (size_t)(rel_backing - canonical) > prefix) {
			rel = rel_backing;
			prefix = (size_t)(rel_backing - canonical);
		}
		if (rel == NULL || backing == NULL)
			continue;
		if (count == alloc) {
			alloc = alloc ? alloc * 2 : 4;
			list = realloc(list, alloc * sizeof(*list));
			if (list == NULL)
				abort();
		}
		list[count].backing_dir = strdup(backing);
		list[count].mount_point = strdup(mount);
		list[count].rel = rel;
		list[count].prefix_len = prefix;
		count++;
	}
	if (rc < 0) {
		for (size_t i = 0; i < count; i++) {
			free(list[i].backing_dir);
			free(list[i].mount_point);
		}
		free(list);
		return -1;
	}
	/* Keep this host's and recent sessions first among equal prefixes. */
	for (size_t i = 1; i < count; i++) {
		struct candidate c = list[i];
		size_t j = i;
		while (j > 0 && compare_candidates(&list[j - 1], &c) > 0) {
			list[j] = list[j - 1];
			j--;
		}
		list[j] = c;
	}
	*result = list;
	return (int)count;
}

static int
lookup_name(struct query *q, const char *backing_dir, const char *rel, int64_t at_ns,
            int64_t *file_id)
{
	sqlite3_stmt *statement =
	    q_prepare(q, "SELECT file_id FROM file_names WHERE backing_dir = ?1 AND path = ?2 "
	                 "ORDER BY (?3 IS NOT NULL AND since_ns <= ?3 AND "
	                 "(until_ns IS NULL OR until_ns > ?3)) DESC, until_ns IS NULL DESC, "
	                 "since_ns DESC LIMIT 1");
	int rc;

	if (statement == NULL)
		return -1;
	sqlite3_bind_text(statement, 1, backing_dir, -1, SQLITE_STATIC);
	sqlite3_bind_text(statement, 2, rel, -1, SQLITE_STATIC);
	q_bind_int(statement, 3, at_ns);
	rc = q_step(q, statement);
	if (rc < 0)
		return -1;
	if (rc == SQLITE_DONE)
		return 1;
	*file_id = sqlite3_column_int64(statement, 0);
	sqlite3_reset(statement);
	return 0;
}

static int
make_canonical(struct query *q, const char *arg, struct qbuf *canonical)
{
	struct qbuf abs = QBUF_INIT;

	qbuf_init(&abs);
	if (arg[0] != '/') {
		char *cwd = getcwd(NULL, 0);
		if (cwd == NULL) {
			qbuf_release(&abs);
			return q_error(q, 2, "cannot get the current directory: %s",
			               strerror(errno));
		}
		qbuf_adds(&abs, cwd);
		qbuf_addc(&abs, '/');
		free(cwd);
	}
	qbuf_adds(&abs, arg);
	canonicalize(abs.buf, canonical);
	qbuf_release(&abs);
	return 0;
}

int
q_resolve(struct query *q, const char *arg, int64_t at_ns, struct q_target *target)
{
	struct qbuf canonical = QBUF_INIT;
	struct candidate *list = NULL;
	int count, status = 1;

	memset(target, 0, sizeof(*target));
	if (arg[0] == '\0')
		return q_error(q, 2, "empty path");
	qbuf_init(&canonical);
	if (make_canonical(q, arg, &canonical)) {
		status = 2;
		goto out;
	}
	count = find_sessions(q, canonical.len ? canonical.buf : "/", &list);
	if (count < 0) {
		status = 2;
		goto out;
	}
	if (count == 0) {
		q_error(q, 1, "%s: never seen through provfs (not under any recorded mount)", arg);
		goto out;
	}
	for (int i = 0; i < count; i++) {
		int64_t file_id;
		int rc = lookup_name(q, list[i].backing_dir, list[i].rel, at_ns, &file_id);
		if (rc < 0) {
			status = 2;
			goto out;
		}
		if (rc == 0) {
			target->file_id = file_id;
			target->backing_dir = strdup(list[i].backing_dir);
			target->mount_point = strdup(list[i].mount_point);
			target->rel = strdup(list[i].rel);
			status = 0;
			goto out;
		}
	}
	q_error(q, 1, "%s: never seen through provfs", arg);
out:
	for (int i = 0; list && i < count; i++) {
		free(list[i].backing_dir);
		free(list[i].mount_point);
	}
	free(list);
	qbuf_release(&canonical);
	return status;
}

int
q_resolve_dir(struct query *q, const char *arg, char **backing_dir, char **prefix)
{
	struct qbuf canonical = QBUF_INIT;
	struct candidate *list = NULL;
	int count, status = 1;

	qbuf_init(&canonical);
	if (make_canonical(q, arg, &canonical)) {
		status = 2;
		goto out;
	}
	count = find_sessions(q, canonical.len ? canonical.buf : "/", &list);
	if (count < 0) {
		status = 2;
		goto out;
	}
	if (count == 0) {
		q_error(q, 1, "%s: not under any recorded provfs mount", arg);
		goto out;
	}
	*backing_dir = strdup(list[0].backing_dir);
	*prefix = strdup(list[0].rel);
	status = 0;
out:
	for (int i = 0; list && i < count; i++) {
		free(list[i].backing_dir);
		free(list[i].mount_point);
	}
	free(list);
	qbuf_release(&canonical);
	return status;
}

int
q_check_job(struct query *q)
{
	sqlite3_stmt *statement;
	int rc;

	if (q->job == NULL)
		return 0;
	/* Index runs_job: one lookup, whatever the --since window. */
	statement = q_prepare(q, "SELECT 1 FROM runs WHERE job_name = ?1 LIMIT 1");
	if (statement == NULL)
		return 2;
	sqlite3_bind_text(statement, 1, q->job, -1, SQLITE_STATIC);
	rc = q_step(q, statement);
	if (rc < 0)
		return 2;
	if (rc == SQLITE_DONE)
		return q_error(q, 1, "job '%s': no run of this job in the store", q->job);
	return 0;
}

void
q_target_release(struct q_target *target)
{
	free(target->backing_dir);
	free(target->mount_point);
	free(target->rel);
	memset(target, 0, sizeof(*target));
}
