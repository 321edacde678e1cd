/*
 * moved_backing.c - a backing directory that was moved keeps its files.
 *
 * WHY
 *
 * A file's row names the backing directory it was recorded under, by its
 * path: that is how provfs-query finds it on disk (verify, producer's "on
 * disk") and how a path given to it finds the file.  Move the directory
 * (mv /srv/data /srv/archive/data) and mount it from its new place, and
 * every file recorded before seemed gone: verify called each one MISSING,
 * "deleted outside provfs", a false alarm of tampering, and verify --all
 * skipped them.  Their history went on by inode for those opened again,
 * under the old directory's name.
 *
 * WHAT
 *
 * Each mount session records the backing directory's own device, inode
 * and generation.  When the writer thread starts (before its first batch),
 * it looks for earlier sessions of this host with that identity and
 * another path.  An old path is carried over to the new one when
 *   - no live daemon serves it (that one is still at work there), and
 *   - it does not lead to this same directory now (a bind mount or a
 *     second name of it: both paths are real, nothing moved);
 * then the rows of files recorded under it, and their names, take the new
 * path, in one transaction.  A directory made anew, whose number an old
 * removed one had, is told apart by its generation; a filesystem without
 * generations gives 0 for both, and is then taken by number alone.
 *
 * COST
 *
 * One indexed query at every mount (mount_sessions_backing), and only
 * after a move, one UPDATE of the files and names recorded under the old
 * path; on the writer thread, while requests queue their events.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "recorder_i.h"

int
backing_identity_of(int backing_fd, struct backing_identity *identity)
{
	struct stat st;
	unsigned int generation = 0;
	int fd;

	if (fstat(backing_fd, &st) < 0)
		return -1;
	identity->device = st.st_dev;
	identity->inode = st.st_ino;
	/* The ioctl wants a descriptor opened for reading, not O_PATH. */
	fd = openat(backing_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || ioctl(fd, FS_IOC_GETVERSION, &generation) < 0)
		generation = 0;
	if (fd >= 0)
		close(fd);
	identity->generation = generation;
	return 0;
}

/* Does path lead to the directory identity names, now? */
static bool
leads_to(const char *path, const struct backing_identity *identity)
{
	struct stat st;

	return stat(path, &st) == 0 && st.st_dev == identity->device &&
	       st.st_ino == identity->inode;
}

/* The earlier paths of this directory, as a list of strdup'd strings. */
static int
earlier_paths(sqlite3 *db, const struct recorder *recorder,
	      const struct backing_identity *identity, struct string_list *paths)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
			       "SELECT DISTINCT backing_dir FROM mount_sessions WHERE "
			       "backing_device = ?1 AND backing_inode = ?2 AND "
			       "backing_generation = ?3 AND host = ?4 AND backing_dir != ?5",
			       -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, (int64_t)identity->device);
	sqlite3_bind_int64(s, 2, (int64_t)identity->inode);
	sqlite3_bind_int64(s, 3, (int64_t)identity->generation);
	sqlite3_bind_text(s, 4, recorder->host, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, recorder->backing_dir, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		string_list_append(paths, (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* The rows recorded under from take to, in one transaction; the files moved or -1. */
static int64_t
carry_over(sqlite3 *db, const struct recorder *recorder, const char *from)
{
	static const char *const statements[] = {
	    /* Names first, while their files still say from. */
	    "UPDATE file_names SET backing_dir = ?2 WHERE backing_dir = ?1 AND file_id IN "
	    "(SELECT id FROM files WHERE backing_dir = ?1 AND host = ?3)",
	    "UPDATE files SET backing_dir = ?2 WHERE backing_dir = ?1 AND host = ?3",
	};
	int64_t moved = 0;

	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < sizeof(statements) / sizeof(statements[0]); i++) {
		sqlite3_stmt *s = NULL;
		int rc = sqlite3_prepare_v2(db, statements[i], -1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_text(s, 1, from, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 2, recorder->backing_dir, -1, SQLITE_STATIC);
			sqlite3_bind_text(s, 3, recorder->host, -1, SQLITE_STATIC);
			rc = sqlite3_step(s);
			moved = sqlite3_changes64(db);
		}
		sqlite3_finalize(s);
		if (rc != SQLITE_DONE) {
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
			return -1;
		}
	}
	if (sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return moved;
}

int
moved_backing_follow(struct recorder *recorder)
{
	sqlite3 *db = store_db(recorder->store);
	struct backing_identity identity;
	struct string_list paths = {0};
	int rc = 0;

	if (backing_identity_of(recorder->options.backing_fd, &identity) < 0)
		return 0;
	if (earlier_paths(db, recorder, &identity, &paths) < 0) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < paths.count; i++) {
		const char *from = paths.items[i];
		int served = backing_dir_served(db, recorder->host, from);
		if (served < 0) {
			rc = -1;
			break;
		}
		if (served || leads_to(from, &identity))
			continue; /* still in use there, or another name of it */
		int64_t moved = carry_over(db, recorder, from);
		if (moved < 0) {
			rc = -1;
			break;
		}
		log_info("backing directory moved from '%s': the %lld file%s recorded there follow it",
			 from, (long long)moved, moved == 1 ? "" : "s");
	}
out:
	if (rc < 0)
		log_warning("cannot carry over the files of a moved backing directory: %s",
			    sqlite3_errmsg(db));
	string_list_release(&paths);
	return rc;
}
