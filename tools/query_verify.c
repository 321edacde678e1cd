/*
 * query_verify.c - is the content on disk still what provfs recorded?
 *
 * verify rehashes files with XXH3-128 (the hash the recorder writes, as
 * `xxhsum -H2` prints it) and compares with each file's last recorded
 * version.  It reads the backing directory (mount_sessions.backing_dir +
 * path), never the mount: reading through provfs would record the audit as
 * accesses, and the mount may be gone.  Files are hashed by a few threads so
 * that many small files keep the disk busy; one large file is read
 * sequentially in 1 MiB chunks, so verify is limited by disk bandwidth, not
 * by the hash (XXH3 runs at several GB/s).  Progress goes to stderr, only
 * when it is a terminal.
 *
 * gaps lists what an auditor must look at: versions changed outside provfs
 * (unattributed), recorded files whose backing file no longer has the
 * recorded size and mtime (a stat, not a rehash: verify confirms), current
 * versions whose content was never hashed, and mounts whose backing
 * directory other users can reach directly.
 *
 * q_disk_check() is the stat-based test, shared with producer.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "query_i.h"

#define CHUNK (1 << 20)
#define MAX_THREADS 4

static char *
backing_path(const char *backing_dir, const char *path)
{
	struct qbuf sb = QBUF_INIT;

	qbuf_init(&sb);
	qbuf_adds(&sb, backing_dir);
	if (sb.len == 0 || sb.buf[sb.len - 1] != '/')
		qbuf_addc(&sb, '/');
	qbuf_adds(&sb, path);
	return qbuf_detach(&sb);
}

const char *
q_disk_state_name(enum q_disk_state state)
{
	switch (state) {
	case Q_DISK_MATCHES:
		return "matches";
	case Q_DISK_DIFFERS:
		return "differs";
	case Q_DISK_MISSING:
		return "missing";
	case Q_DISK_REMOVED:
		return "removed";
	default:
		return "unknown";
	}
}

static enum q_disk_state
disk_check(struct query *q, const char *host, const char *backing_dir, const char *path,
           int64_t removed_ns, int64_t size, int64_t mtime_ns)
{
	struct stat st;
	char *full;
	int rc;

	if (removed_ns != Q_NONE)
		return Q_DISK_REMOVED;
	if (host == NULL || strcmp(host, q->host) != 0 || backing_dir == NULL || path == NULL)
		return Q_DISK_UNKNOWN;
	full = backing_path(backing_dir, path);
	rc = lstat(full, &st);
	free(full);
	if (rc < 0)
		return errno == ENOENT || errno == ENOTDIR ? Q_DISK_MISSING : Q_DISK_UNKNOWN;
	if ((int64_t)st.st_size != size ||
	    (int64_t)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec != mtime_ns)
		return Q_DISK_DIFFERS;
	return Q_DISK_MATCHES;
}

enum q_disk_state
q_disk_check(struct query *q, const struct q_file *file, const struct q_version *last)
{
	return disk_check(q, file->host, file->backing_dir, file->path, file->removed_ns,
	                  last->size, last->mtime_ns);
}

/* --- verify ------------------------------------------------------------------- */

enum verify_status {
	V_OK,
	V_EXTERNAL,  /* matches, but the last change was made outside provfs */
	V_MISMATCH,  /* content differs from the last recorded hash */
	V_MISSING,   /* the store says it exists; the backing directory does not */
	V_UNHASHED,  /* the last version has no hash to compare with */
	V_REMOVED,   /* removed through provfs: nothing to compare */
	V_ELSEWHERE, /* recorded on another host */
	V_ERROR,     /* could not be read */
};

static const char *const verify_names[] = {
    "ok", "external", "mismatch", "missing", "unhashed", "removed", "elsewhere", "error",
};

struct verify_item {
	char *arg; /* as given, or the path relative to the mount root */
	int64_t file_id;
	char *host;
	char *full; /* backing directory + path */
	int64_t removed_ns;
	struct q_version version;
	/* Filled by the workers. */
	enum verify_status status;
	char actual[33];
	int error;
};

struct verify_job {
	struct verify_item *items;
	size_t count;
	atomic_size_t next;
	atomic_size_t done;
	atomic_llong bytes;
};

static int
hash_file(const char *path, char actual[33], atomic_llong *bytes)
{
	XXH3_state_t *state = XXH3_createState();
	char *buffer = malloc(CHUNK);
	int fd = -1, result = 0;

	if (state == NULL || buffer == NULL) {
		result = ENOMEM;
		goto out;
	}
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		result = errno;
		goto out;
	}
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	XXH3_128bits_reset(state);
	for (;;) {
		ssize_t n = read(fd, buffer, CHUNK);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			result = errno;
			goto out;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(state, buffer, (size_t)n);
		atomic_fetch_add(bytes, n);
	}
	XXH128_hash_t h = XXH3_128bits_digest(state);
	snprintf(actual, 33, "%016llx%016llx", (unsigned long long)h.high64,
	         (unsigned long long)h.low64);
out:
	if (fd >= 0)
		close(fd);
	free(buffer);
	XXH3_freeState(state);
	return result;
}

static void
verify_one(struct verify_item *item, struct verify_job *job)
{
	int error;

	if (item->status != V_OK)
		return; /* decided without reading */
	error = hash_file(item->full, item->actual, &job->bytes);
	if (error == ENOENT || error == ENOTDIR) {
		item->status = V_MISSING;
	} else if (error) {
		item->status = V_ERROR;
		item->error = error;
	} else if (strcmp(item->actual, item->version.hash) != 0) {
		item->status = V_MISMATCH;
	} else if (item->version.origin && strcmp(item->version.origin, "external") == 0) {
		item->status = V_EXTERNAL;
	}
}

static void *
verify_worker(void *arg)
{
	struct verify_job *job = arg;
	size_t i;

	while ((i = atomic_fetch_add(&job->next, 1)) < job->count) {
		verify_one(&job->items[i], job);
		atomic_fetch_add(&job->done, 1);
	}
	return NULL;
}

/* Decide what needs no reading: removed, elsewhere, unhashed. */
static void
verify_prepare(struct query *q, struct verify_item *item)
{
	item->status = V_OK;
	if (item->removed_ns != Q_NONE)
		item->status = V_REMOVED;
	else if (item->host == NULL || strcmp(item->host, q->host) != 0)
		item->status = V_ELSEWHERE;
	else if (item->version.hash == NULL || strlen(item->version.hash) != 32)
		item->status = V_UNHASHED;
}

static void
run_verify(struct query *q, struct verify_job *job, int64_t total_bytes)
{
	pthread_t threads[MAX_THREADS];
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nthreads = job->count < MAX_THREADS ? job->count : MAX_THREADS;
	size_t started = 0;
	struct q_progress progress;

	if (cpus > 0 && (size_t)cpus < nthreads)
		nthreads = (size_t)cpus;
	if (nthreads == 0)
		nthreads = 1;
	int64_t begin = monotonic_ns();
	/* Drawn before the workers start: a small store may be hashed before
	 * this thread looks again, and a terminal still sees what ran. */
	q_progress_start(q, &progress, "hashing", "files", (int64_t)job->count);
	q_progress_update(&progress, 0);
	for (size_t i = 0; i < nthreads; i++)
		if (pthread_create(&threads[started], NULL, verify_worker, job) == 0)
			started++;
	if (started == 0)
		verify_worker(job);
	while (q->progress && atomic_load(&job->done) < job->count) {
		struct timespec pause = {0, 100 * 1000 * 1000};
		double elapsed, rate;
		long long bytes = atomic_load(&job->bytes);
		char detail[32];

		elapsed = (double)(monotonic_ns() - begin) / 1e9;
		rate = elapsed > 0 ? bytes / elapsed : 0;
		snprintf(detail, sizeof(detail), "%s, %s/s", q_size(bytes), q_size((int64_t)rate));
		q_progress_detail(&progress, detail);
		q_progress_update(&progress, (int64_t)atomic_load(&job->done));
		nanosleep(&pause, NULL);
	}
	for (size_t i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	q_progress_end(&progress);
	(void)total_bytes; /* the bar counts files; the detail says the bytes */
}

/* Fill an item from a row: file id, host, backing dir, path, removed, version id. */
static int
item_load(struct query *q, struct verify_item *item, int64_t file_id)
{
	struct q_file file;
	int rc;

	if (q_file_load(q, file_id, &file) != 0)
		return -1;
	item->file_id = file_id;
	item->host = file.host;
	item->full =
	    backing_path(file.backing_dir ? file.backing_dir : "", file.path ? file.path : "");
	item->removed_ns = file.removed_ns;
	if (item->arg == NULL)
		item->arg = file.path ? strdup(file.path) : strdup("?");
	file.host = NULL;
	q_file_release(&file);
	rc = q_version_find(q, file_id, Q_NONE, &item->version);
	if (rc < 0)
		return -1;
	return 0;
}

int
cmd_verify(struct query *q)
{
	struct verify_job job = {0};
	size_t alloc = 0, counts[V_ERROR + 1] = {0};
	int64_t total = 0;
	int status = 2;

	if (q->all) {
		char *backing = NULL, *prefix = NULL;
		sqlite3_stmt *statement;
		int rc;

		if (q->under) {
			status = q_resolve_dir(q, q->under, &backing, &prefix);
			if (status)
				return status;
			status = 2;
		}
		statement = q_prepare(
		    q, "SELECT id FROM files WHERE removed_ns IS NULL AND host = ?1 "
		       "AND NOT (EXISTS (SELECT 1 FROM file_names n WHERE n.file_id = files.id) AND "
		       "NOT EXISTS (SELECT 1 FROM file_names n WHERE n.file_id = files.id AND "
		       "n.until_ns IS NULL)) "
		       "AND (?2 IS NULL OR backing_dir = ?2) AND (?3 IS NULL OR "
		       "?3 = '' OR path = ?3 OR substr(path, 1, length(?3) + 1) = ?3 || '/') "
		       "ORDER BY backing_dir, path");
		if (statement == NULL) {
			free(backing);
			free(prefix);
			return 2;
		}
		sqlite3_bind_text(statement, 1, q->host, -1, SQLITE_STATIC);
		if (backing)
			sqlite3_bind_text(statement, 2, backing, -1, SQLITE_TRANSIENT);
		if (prefix)
			sqlite3_bind_text(statement, 3, prefix, -1, SQLITE_TRANSIENT);
		while ((rc = q_step(q, statement)) == SQLITE_ROW) {
			if (job.count == alloc) {
				alloc = alloc ? alloc * 2 : 256;
				job.items = realloc(job.items, alloc * sizeof(*job.items));
				if (job.items == NULL)
					abort();
			}
			memset(&job.items[job.count], 0, sizeof(job.items[0]));
			job.items[job.count++].file_id = sqlite3_column_int64(statement, 0);
		}
		free(backing);
		free(prefix);
		if (rc < 0)
			goto out;
	} else {
		job.items = calloc((size_t)q->nargs, sizeof(*job.items));
		if (job.items == NULL)
			abort();
		for (int i = 0; i < q->nargs; i++) {
			struct q_target target;
			struct stat st;
			/* Files are recorded, directories are not: name the command. */
			if (stat(q->args[i], &st) == 0 && S_ISDIR(st.st_mode)) {
				status = q_error(q, 2,
				                 "%s: a directory; verify --all --under %s checks the "
				                 "files under it",
				                 q->args[i], q->args[i]);
				goto out;
			}
			int rc = q_resolve(q, q->args[i], Q_NONE, &target);
			if (rc) {
				status = rc;
				goto out;
			}
			job.items[job.count].arg = strdup(q->args[i]);
			job.items[job.count++].file_id = target.file_id;
			q_target_release(&target);
		}
	}
	for (size_t i = 0; i < job.count; i++) {
		if (item_load(q, &job.items[i], job.items[i].file_id) < 0)
			goto out;
		verify_prepare(q, &job.items[i]);
		if (job.items[i].status == V_OK)
			total += job.items[i].version.size;
	}
	run_verify(q, &job, total);

	for (size_t i = 0; i < job.count; i++)
		counts[job.items[i].status]++;
	if (q->format == Q_FORMAT_JSON) {
		json_object *doc = q_jdoc(q), *files = json_object_new_array(),
		            *summary = json_object_new_object();
		for (size_t i = 0; i < job.count; i++) {
			struct verify_item *item = &job.items[i];
			json_object *j = json_object_new_object();
			json_object_object_add(j, "path", q_jstr(item->arg));
			json_object_object_add(j, "file_id", q_jint(item->file_id));
			json_object_object_add(j, "status",
			                       json_object_new_string(verify_names[item->status]));
			json_object_object_add(j, "version", q_version_json(&item->version));
			json_object_object_add(
			    j, "actual_hash",
			    item->actual[0] ? json_object_new_string(item->actual) : NULL);
			json_object_object_add(
			    j, "error",
			    item->error ? json_object_new_string(strerror(item->error)) : NULL);
			json_object_array_add(files, j);
		}
		json_object_object_add(doc, "files", files);
		for (int s = V_OK; s <= V_ERROR; s++)
			json_object_object_add(summary, verify_names[s],
			                       q_jint((int64_t)counts[s]));
		json_object_object_add(summary, "bytes", q_jint(atomic_load(&job.bytes)));
		json_object_object_add(doc, "summary", summary);
		status = q_emit_json(q, doc);
		if (status)
			goto out;
	} else {
		for (size_t i = 0; i < job.count; i++) {
			struct verify_item *item = &job.items[i];
			const char *what;
			char detail[256] = "";

			if (q->all && (item->status == V_OK || item->status == V_REMOVED ||
			               item->status == V_ELSEWHERE))
				continue;
			switch (item->status) {
			case V_OK:
				what = "ok";
				break;
			case V_EXTERNAL:
				what = "ok";
				snprintf(detail, sizeof(detail),
				         "  (its last change was made OUTSIDE provfs)");
				break;
			case V_MISMATCH:
				what = "MODIFIED";
				snprintf(detail, sizeof(detail),
				         "  now %.12s: changed outside provfs since recorded",
				         item->actual);
				break;
			case V_MISSING:
				what = "MISSING";
				snprintf(detail, sizeof(detail), "  (deleted outside provfs)");
				break;
			case V_UNHASHED:
				what = "unhashed";
				snprintf(detail, sizeof(detail), "  (hash %s: nothing to compare)",
				         item->version.hash_state ? item->version.hash_state
				                                  : "missing");
				break;
			case V_REMOVED:
				what = "removed";
				snprintf(detail, sizeof(detail), "  (removed through provfs)");
				break;
			case V_ELSEWHERE:
				what = "skipped";
				snprintf(detail, sizeof(detail), "  (recorded on host %s)",
				         q_tx(q, item->host));
				break;
			default:
				what = "ERROR";
				snprintf(detail, sizeof(detail), "  (%s)", strerror(item->error));
				break;
			}
			q_print_wrappedf("", "          ", "%-9s %s  v%lld %s%s", what,
			                 q_tx(q, item->arg), (long long)item->version.number,
			                 q_short_hash(item->version.hash, item->version.hash_state),
			                 detail);
		}
		if (q->all || job.count > 1)
			q_print_wrappedf(
			    "", "    ",
			    "%zu file%s, %s read: %zu ok, %zu modified, %zu missing, %zu changed "
			    "outside provfs earlier, %zu unhashed, %zu unreadable",
			    job.count, job.count == 1 ? "" : "s", q_size(atomic_load(&job.bytes)),
			    counts[V_OK], counts[V_MISMATCH], counts[V_MISSING], counts[V_EXTERNAL],
			    counts[V_UNHASHED], counts[V_ERROR]);
	}
	if (counts[V_MISMATCH] || counts[V_MISSING])
		status = 1;
	else if (counts[V_ERROR])
		status = q_error(q, 2, "%zu file%s could not be read", counts[V_ERROR],
		                 counts[V_ERROR] == 1 ? "" : "s");
	else
		status = 0;
out:
	for (size_t i = 0; i < job.count; i++) {
		free(job.items[i].arg);
		free(job.items[i].host);
		free(job.items[i].full);
		q_version_release(&job.items[i].version);
	}
	free(job.items);
	return status;
}

/* --- gaps ----------------------------------------------------------------------- */

/*
 * Versions of one origin, oldest first, into table (text) or array (JSON),
 * with whether each is its file's current one.  The origins listed here
 * have partial indexes of their own (versions_origin, versions_unrecorded):
 * a store of millions of versions is not scanned.  0, or -1 on error.
 */
static int
list_versions_of_origin(struct query *q, const char *origin, struct q_table *table,
                        json_object *array)
{
	sqlite3_stmt *statement = q_prepare(
	    q, "SELECT v.id, v.number = (SELECT MAX(number) FROM versions w "
	       "WHERE w.file_id = v.file_id) FROM versions v "
	       "WHERE v.origin = ?1 ORDER BY v.recorded_ns");
	int64_t *ids = NULL;
	bool *current = NULL;
	size_t n = 0;
	int rc;

	if (statement == NULL)
		return -1;
	sqlite3_bind_text(statement, 1, origin, -1, SQLITE_STATIC);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		ids = realloc(ids, (n + 1) * sizeof(*ids));
		current = realloc(current, (n + 1) * sizeof(*current));
		if (ids == NULL || current == NULL)
			abort();
		ids[n] = sqlite3_column_int64(statement, 0);
		current[n++] = sqlite3_column_int(statement, 1) != 0;
	}
	for (size_t i = 0; rc >= 0 && i < n; i++) {
		struct q_version v;
		if (q_version_load(q, ids[i], &v) != 0)
			continue;
		if (array) {
			json_object *j = q_version_json(&v);
			json_object_object_add(j, "current", json_object_new_boolean(current[i]));
			json_object_array_add(array, j);
		} else {
			char number[32];
			snprintf(number, sizeof(number), "v%lld%s", (long long)v.number,
			         current[i] ? "" : " (superseded)");
			q_table_add(table, q_tx(q, v.path), number, q_short_hash(v.hash, v.hash_state),
			            q_when(q, v.recorded_ns));
		}
		q_version_release(&v);
	}
	free(ids);
	free(current);
	return rc < 0 ? -1 : 0;
}

int
cmd_gaps(struct query *q)
{
	json_object *doc = NULL, *external = NULL, *unrecorded = NULL, *changed = NULL,
	            *unhashed = NULL, *mounts = NULL;
	struct q_table t_external, t_unrecorded, t_changed, t_unhashed, t_mounts;
	sqlite3_stmt *statement;
	int status = 2, rc;

	q_table_init(&t_external, 4);
	q_table_init(&t_unrecorded, 4);
	q_table_init(&t_changed, 4);
	q_table_init(&t_unhashed, 3);
	q_table_init(&t_mounts, 4);
	if (q->format == Q_FORMAT_JSON) {
		doc = q_jdoc(q);
		external = json_object_new_array();
		unrecorded = json_object_new_array();
		changed = json_object_new_array();
		unhashed = json_object_new_array();
		mounts = json_object_new_array();
	}

	/* 1. Versions that appeared outside provfs, and those whose record was lost. */
	if (list_versions_of_origin(q, "external", &t_external, external) < 0 ||
	    list_versions_of_origin(q, "unrecorded", &t_unrecorded, unrecorded) < 0)
		goto out;

	/* 2 and 3. Live files of this host: stat against the last version; unhashed. */
	statement = q_prepare(
	    q, "SELECT f.backing_dir, coalesce((SELECT n.path FROM file_names n WHERE n.file_id "
	       "= f.id AND n.until_ns IS NULL ORDER BY n.since_ns DESC LIMIT 1), f.path) AS "
	       "current_path, v.number, v.size, v.mtime_ns, v.hash, v.hash_state, v.recorded_ns, "
	       "v.id FROM files f JOIN versions v ON v.file_id = f.id AND "
	       "v.number = (SELECT MAX(number) FROM versions w WHERE w.file_id = f.id) "
	       "WHERE f.removed_ns IS NULL AND f.host = ? AND NOT (EXISTS (SELECT 1 FROM "
	       "file_names n WHERE n.file_id = f.id) AND NOT EXISTS (SELECT 1 FROM file_names n "
	       "WHERE n.file_id = f.id AND n.until_ns IS NULL)) "
	       "ORDER BY f.backing_dir, current_path");
	if (statement == NULL)
		goto out;
	sqlite3_bind_text(statement, 1, q->host, -1, SQLITE_STATIC);
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *backing = (const char *)sqlite3_column_text(statement, 0);
		const char *path = (const char *)sqlite3_column_text(statement, 1);
		const char *hash = (const char *)sqlite3_column_text(statement, 5);
		const char *state = (const char *)sqlite3_column_text(statement, 6);
		int64_t number = sqlite3_column_int64(statement, 2);
		enum q_disk_state disk = disk_check(q, q->host, backing, path, Q_NONE,
		                                    sqlite3_column_int64(statement, 3),
		                                    sqlite3_column_int64(statement, 4));
		char num[32];

		snprintf(num, sizeof(num), "v%lld", (long long)number);
		if (disk == Q_DISK_DIFFERS || disk == Q_DISK_MISSING) {
			if (doc) {
				json_object *j = json_object_new_object();
				json_object_object_add(j, "path", q_jstr(path));
				json_object_object_add(j, "backing_dir", q_jstr(backing));
				json_object_object_add(j, "version", q_jint(number));
				json_object_object_add(j, "hash", q_jstr(hash));
				json_object_object_add(
				    j, "disk", json_object_new_string(q_disk_state_name(disk)));
				json_object_array_add(changed, j);
			} else {
				q_table_add(
				    &t_changed, q_tx(q, path), num, q_short_hash(hash, state),
				    disk == Q_DISK_MISSING ? "missing" : "size/mtime differ");
			}
		}
		/* Pending is normal while a mount hashes; listed, since it may never finish. */
		if (state && strcmp(state, "hashed") != 0) {
			if (doc) {
				json_object *j = json_object_new_object();
				json_object_object_add(j, "path", q_jstr(path));
				json_object_object_add(j, "version", q_jint(number));
				json_object_object_add(j, "hash_state", q_jstr(state));
				json_object_array_add(unhashed, j);
			} else {
				q_table_add(&t_unhashed, q_tx(q, path), num, q_tx(q, state));
			}
		}
	}
	if (rc < 0)
		goto out;

	/* 4. Backing directories other users can reach. */
	statement =
	    q_prepare(q, "SELECT host, backing_dir, mount_point, started_ns, stopped_ns "
	                 "FROM mount_sessions WHERE backing_exposed = 1 ORDER BY started_ns");
	if (statement == NULL)
		goto out;
	while ((rc = q_step(q, statement)) == SQLITE_ROW) {
		const char *host = (const char *)sqlite3_column_text(statement, 0);
		const char *backing = (const char *)sqlite3_column_text(statement, 1);
		const char *mount = (const char *)sqlite3_column_text(statement, 2);
		int64_t started = q_col_int(statement, 3), stopped = q_col_int(statement, 4);
		if (doc) {
			json_object *j = json_object_new_object();
			json_object_object_add(j, "host", q_jstr(host));
			json_object_object_add(j, "backing_dir", q_jstr(backing));
			json_object_object_add(j, "mount_point", q_jstr(mount));
			json_object_object_add(j, "started", q_jtime(started));
			json_object_object_add(j, "stopped", q_jtime(stopped));
			json_object_array_add(mounts, j);
		} else {
			struct qbuf where = QBUF_INIT;
			qbuf_init(&where);
			qbuf_addf(&where, "%s on %s", q_tx(q, backing), q_tx(q, mount));
			q_table_add(&t_mounts, q_tx(q, host), where.buf, q_when(q, started),
			            stopped == Q_NONE ? "(mounted, or killed)" : "");
			qbuf_release(&where);
		}
	}
	if (rc < 0)
		goto out;

	if (doc) {
		json_object_object_add(doc, "external_versions", external);
		json_object_object_add(doc, "unrecorded_versions", unrecorded);
		json_object_object_add(doc, "changed_since_recorded", changed);
		json_object_object_add(doc, "unhashed_versions", unhashed);
		json_object_object_add(doc, "exposed_mounts", mounts);
		external = unrecorded = changed = unhashed = mounts = NULL;
		if (q_gaps_labels(q, doc))
			goto out;
		status = q_emit_json(q, doc);
		doc = NULL;
		goto out;
	}
	printf("versions changed outside provfs, unattributed (%zu):\n", t_external.rows);
	q_table_print(&t_external, "  ");
	printf("\nversions written through provfs whose record the store lost (%zu):\n",
	       t_unrecorded.rows);
	q_table_print(&t_unrecorded, "  ");
	if (t_unrecorded.rows)
		printf("  (recorded when next read; provfs-query stats counts the events lost)\n");
	printf("\nfiles whose backing file differs from the last recorded version (%zu):\n",
	       t_changed.rows);
	q_table_print(&t_changed, "  ");
	if (t_changed.rows)
		printf("  (size or mtime differ; provfs-query verify PATH rehashes to confirm)\n");
	printf("\ncurrent versions without a content hash (%zu):\n", t_unhashed.rows);
	q_table_print(&t_unhashed, "  ");
	printf("\nmounts whose backing directory other users can reach directly (%zu):\n",
	       t_mounts.rows);
	q_table_print(&t_mounts, "  ");
	if (q_gaps_labels(q, NULL))
		goto out;
	status = 0;
out:
	json_object_put(external);
	json_object_put(unrecorded);
	json_object_put(changed);
	json_object_put(unhashed);
	json_object_put(mounts);
	json_object_put(doc);
	q_table_release(&t_external);
	q_table_release(&t_unrecorded);
	q_table_release(&t_changed);
	q_table_release(&t_unhashed);
	q_table_release(&t_mounts);
	return status;
}
