/*
 * pending_hashes.c - the hashes an earlier daemon never took.
 *
 * WHY
 *
 * A version's hash is taken by the hash pool after its row is committed.
 * A daemon that unmounts with a backlog (a job that wrote a large model
 * just before the unmount: the pool gets a few seconds, not hours), that
 * is killed, or that loses power, leaves versions 'pending' with no hash,
 * and no later daemon took them: `provfs-query verify` said "unhashed" of
 * the file for ever, and its lineage named a version without content.
 *
 * WHAT
 *
 * When the writer thread starts (after abandoned_runs_close, before its
 * first batch), and no other live daemon of this host serves the same
 * backing directory (such a daemon may be hashing them now), it looks at
 * the pending versions of the files of its backing directory (index
 * versions_pending) and settles each one:
 *   - a version that is no longer its file's newest: 'changed', the bytes
 *     it names were replaced before their hash was taken;
 *   - the newest version of a file that is still there, at its last known
 *     name beneath the backing directory (never following a symlink), as
 *     the same inode with the version's size, mtime and ctime: hashed by
 *     the pool like any version, 'hashed' when the stamps taken around the
 *     read still name it, else 'changed';
 *   - that of a file with other attributes now: 'changed';
 *   - that of a file removed, or not found as that inode at its name:
 *     'failed', as a version whose file went before its turn.
 * A ctime that moved counts as a change, although a rename made through
 * the mount moves it too: the daemon that could have told them apart is
 * gone, and a wrong hash is worse than none.
 *
 * COST AND LOCKS
 *
 * One indexed query and, per pending version, an openat2 and an fstat on
 * the writer thread with no transaction open, then one short write
 * transaction; requests queue their events meanwhile and never wait for
 * it.  The jobs go to the pool one at a time (RESUMED_IN_FLIGHT), smallest
 * file first, each completion submitting the next, so a large backlog
 * never fills the pool's queue or its threads, which the mount's own
 * versions need; a queued job holds a file handle, not a descriptor.  The rest wait in a list the recorder
 * owns; stopping ends the list, and the versions left stay 'pending' for
 * the next daemon.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "hash_pool.h"
#include "log.h"
#include "recorder_i.h"

#define RESUMED_IN_FLIGHT 1 /* jobs of the list in the pool at once */

struct resumed_hash {
	struct recorder *recorder;
	int64_t version_id;
	struct stamp expected;
	dev_t device;
	struct hash_source *source; /* until submitted */
	struct resumed_hash *next;
};

struct pending_hashes {
	pthread_mutex_t lock;
	struct resumed_hash *head; /* not submitted yet */
	size_t in_flight;
	bool stopped;
};

/* A pending version and what is known of its file, as the query gives them. */
struct pending_version {
	int64_t version_id;
	struct stamp expected;
	dev_t device;
	bool newest;
	bool removed;
	char *path;
	const char *state; /* settled without a hash: 'changed' or 'failed'; 'pending': left
			    * alone; NULL: hash it */
	struct hash_source *source;
};

static void submit_more(struct pending_hashes *lane);

static void
resumed_hash_done(void *argument, int result, const char *hex, const struct stat *before,
		  const struct stat *after)
{
	struct resumed_hash *job = argument;
	struct recorder *recorder = job->recorder;
	struct pending_hashes *lane = recorder->pending_hashes;
	const char *state = hash_outcome(result, &job->expected, before, after, NULL, 0);

	/* Stopped first (state NULL): it stays 'pending' for the next daemon.
	 * The queue was full: likewise, rather than 'unhashed' for ever. */
	if (state && strcmp(state, "unhashed") != 0) {
		struct event *event = event_new(EVENT_RESUMED_HASH);
		event->version_id = job->version_id;
		event->hash_state = state;
		if (strcmp(state, "hashed") == 0)
			snprintf(event->hash, sizeof(event->hash), "%s", hex);
		recorder_enqueue(recorder, event);
	}
	free(job);
	pthread_mutex_lock(&lane->lock);
	lane->in_flight--;
	if (result == -ESHUTDOWN || result == -EBUSY)
		lane->stopped = true; /* the pool will take no more */
	pthread_mutex_unlock(&lane->lock);
	submit_more(lane);
}

/* Hand the pool the next jobs of the list, up to RESUMED_IN_FLIGHT. */
static void
submit_more(struct pending_hashes *lane)
{
	for (;;) {
		pthread_mutex_lock(&lane->lock);
		struct resumed_hash *job = NULL;
		if (!lane->stopped && lane->in_flight < RESUMED_IN_FLIGHT && lane->head) {
			job = lane->head;
			lane->head = job->next;
			lane->in_flight++;
		}
		pthread_mutex_unlock(&lane->lock);
		if (job == NULL)
			return;
		struct hash_source *source = job->source;
		job->source = NULL;
		/* A refusal calls back at once, here: in_flight is counted first. */
		hash_pool_submit_source(job->recorder->hashes, job->device, job->expected.inode,
					source, resumed_hash_done, job);
	}
}

/* The pending versions of the files of host and backing_dir, in *found (malloc'd). */
static int
find_pending(sqlite3 *db, const char *host, const char *backing_dir,
	     struct pending_version **found, size_t *count)
{
	sqlite3_stmt *s = NULL;
	struct pending_version *list = NULL;
	size_t used = 0, capacity = 0;
	int rc;

	*found = NULL;
	*count = 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT v.id, v.size, v.mtime_ns, v.ctime_ns, f.device, f.inode, "
			       "v.number = (SELECT max(number) FROM versions WHERE file_id = f.id), "
			       "f.removed_ns IS NOT NULL, f.path "
			       /* From the few pending versions, not the many files. */
			       "FROM versions v INDEXED BY versions_pending CROSS JOIN files f "
			       "ON f.id = v.file_id "
			       "WHERE v.hash_state = 'pending' AND f.host = ?1 AND f.backing_dir = ?2 "
			       /* Small first: one large file must not hold up the rest. */
			       "ORDER BY v.size, v.id",
			       -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, backing_dir, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		if (used == capacity) {
			size_t grown_capacity = capacity ? capacity * 2 : 16;
			struct pending_version *grown = realloc(list, grown_capacity * sizeof(*grown));
			if (grown == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = grown;
			capacity = grown_capacity;
		}
		const unsigned char *path = sqlite3_column_text(s, 8);
		struct pending_version *v = &list[used];
		*v = (struct pending_version){
			.version_id = sqlite3_column_int64(s, 0),
			.expected = {.size = sqlite3_column_int64(s, 1),
				     .mtime_ns = sqlite3_column_int64(s, 2),
				     .ctime_ns = sqlite3_column_int64(s, 3),
				     .inode = (ino_t)sqlite3_column_int64(s, 5)},
			.device = (dev_t)sqlite3_column_int64(s, 4),
			.newest = sqlite3_column_int(s, 6),
			.removed = sqlite3_column_int(s, 7),
			.path = strdup(path ? (const char *)path : ""),
		};
		if (v->path == NULL) {
			rc = SQLITE_NOMEM;
			break;
		}
		used++;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_DONE) {
		for (size_t i = 0; i < used; i++)
			free(list[i].path);
		free(list);
		return -1;
	}
	*found = list;
	*count = used;
	return 0;
}

/*
 * Settle v by looking at its file (no lock, no transaction): v->state, or
 * v->source to hash it from.
 */
static void
look_at_file(struct recorder *recorder, struct pending_version *v)
{
	struct stat st;
	int fd;

	if (!v->newest) {
		v->state = "changed";
		return;
	}
	v->state = "failed";
	if (v->removed || v->path[0] == '\0')
		return;
	fd = recorder_open_beneath(recorder, v->path, v->expected.inode, &st);
	if (fd < 0)
		return;
	if (st.st_dev != v->device)
		goto out;
	if (st.st_size != v->expected.size || timespec_ns(st.st_mtim) != v->expected.mtime_ns ||
	    timespec_ns(st.st_ctim) != v->expected.ctime_ns) {
		v->state = "changed";
		goto out;
	}
	v->source = hash_source_new(recorder->hashes, fd);
	/* Without a way to reach it later (no file handles, and descriptors
	 * short) it is left for a later daemon. */
	v->state = v->source ? NULL : "pending";
out:
	close(fd);
}

/* Write the states settled without a hash, in one transaction. */
static int
settle(sqlite3 *db, struct pending_version *list, size_t count)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	rc = sqlite3_prepare_v2(db,
				"UPDATE versions SET hash_state = ?1 WHERE id = ?2 AND "
				"hash_state = 'pending'",
				-1, &s, NULL);
	for (size_t i = 0; i < count && rc == SQLITE_OK; i++) {
		if (list[i].state == NULL || strcmp(list[i].state, "pending") == 0)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_text(s, 1, list[i].state, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, list[i].version_id);
		rc = sqlite3_step(s) == SQLITE_DONE ? SQLITE_OK : SQLITE_ERROR;
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK || sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

int
pending_hashes_resume(struct recorder *recorder)
{
	sqlite3 *db = store_db(recorder->store);
	struct pending_version *list = NULL;
	size_t count = 0, to_hash = 0, changed = 0, failed = 0;
	int another;

	if (recorder->hashes == NULL || recorder->pending_hashes == NULL)
		return 0;
	another = backing_dir_served(db, recorder->host, recorder->backing_dir);
	if (another != 0) {
		if (another < 0)
			log_warning("cannot look for versions earlier daemons left unhashed: %s",
				    sqlite3_errmsg(db));
		return another < 0 ? -1 : 0;
	}
	if (find_pending(db, recorder->host, recorder->backing_dir, &list, &count) < 0) {
		log_warning("cannot look for versions earlier daemons left unhashed: %s",
			    sqlite3_errmsg(db));
		return -1;
	}
	if (count == 0)
		return 0;
	for (size_t i = 0; i < count; i++)
		look_at_file(recorder, &list[i]);
	int rc = settle(db, list, count);
	if (rc < 0)
		log_warning("cannot settle versions earlier daemons left unhashed: %s",
			    sqlite3_errmsg(db));
	struct pending_hashes *lane = recorder->pending_hashes;
	struct resumed_hash **tail = &lane->head;
	pthread_mutex_lock(&lane->lock);
	while (*tail)
		tail = &(*tail)->next;
	for (size_t i = 0; i < count; i++) {
		struct pending_version *v = &list[i];
		if (v->state) {
			changed += strcmp(v->state, "changed") == 0;
			failed += strcmp(v->state, "failed") == 0;
		} else if (rc == 0 && !lane->stopped) {
			struct resumed_hash *job = calloc(1, sizeof(*job));
			if (job) {
				*job = (struct resumed_hash){.recorder = recorder,
							     .version_id = v->version_id,
							     .expected = v->expected,
							     .device = v->device,
							     .source = v->source};
				v->source = NULL;
				*tail = job;
				tail = &job->next;
				to_hash++;
			}
		}
		hash_source_free(v->source);
		free(v->path);
	}
	pthread_mutex_unlock(&lane->lock);
	free(list);
	if (rc == 0)
		log_info("versions earlier daemons left unhashed: %zu to hash in the background, "
			 "%zu changed since, %zu gone",
			 to_hash, changed, failed);
	submit_more(lane);
	return rc < 0 ? -1 : (int)(changed + failed > 0);
}

struct pending_hashes *
pending_hashes_new(void)
{
	struct pending_hashes *lane = calloc(1, sizeof(*lane));

	if (lane)
		pthread_mutex_init(&lane->lock, NULL);
	return lane;
}

void
pending_hashes_stop(struct pending_hashes *lane)
{
	if (lane == NULL)
		return;
	pthread_mutex_lock(&lane->lock);
	lane->stopped = true;
	pthread_mutex_unlock(&lane->lock);
}

void
pending_hashes_free(struct pending_hashes *lane)
{
	if (lane == NULL)
		return;
	while (lane->head) {
		struct resumed_hash *next = lane->head->next;
		hash_source_free(lane->head->source);
		free(lane->head);
		lane->head = next;
	}
	pthread_mutex_destroy(&lane->lock);
	free(lane);
}
