/*
 * store.c - open, create and migrate the provenance store.
 *
 * DESIGN
 *
 * PRAGMA user_version is the schema version.  A fresh file gets the whole
 * schema (store/schema.sql, compiled in) in one transaction; an older one
 * gets each migration step in order, also in one transaction, so a crash
 * never leaves a half-migrated store.  A store newer than this build is
 * refused, never written.
 *
 * The store lives outside the mounted tree (the daemon refuses anything
 * else) and is readable by root and reader_group only: it names every
 * file, program and argument that passed through the mount.
 *
 * WAL mode lets provfs-query read while a daemon writes, and (the WAL files
 * are kept, mode 0640 like the store) when none runs.  synchronous=NORMAL
 * loses at most the last transactions on power failure, never consistency;
 * the recorder's flush interval bounds what a kill -9 can lose.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"
#include "store_schema.h" /* generated from store/schema.sql: store_schema_sql */

struct store {
	sqlite3 *db;
	char *path;
};

/* Migration steps: migrations[i] takes version i+1 to i+2. */
static const char *const migrations[] = {
	/*
	 * 1 -> 2: the label policy's audit; the OpenLineage outbox's dead-letter list and lookups by run;
	 * the writer's statements all use an index (names current now, paths by
	 * range); counters of unhashed versions and of the queue; access byte
	 * and call counts may be NULL (unknown: kernel passthrough), and SQLite
	 * cannot drop NOT NULL in place, so accesses is rebuilt.
	 */
	"ALTER TABLE denials ADD COLUMN operation TEXT NOT NULL DEFAULT 'read';"
	"ALTER TABLE denials ADD COLUMN label_source TEXT;"
	"ALTER TABLE denials ADD COLUMN grants TEXT;"
	"ALTER TABLE denials ADD COLUMN version_id INTEGER REFERENCES versions(id);"
	"ALTER TABLE denials ADD COLUMN policy_revision TEXT;"
	"ALTER TABLE mount_sessions ADD COLUMN policy_revision TEXT;"
	"ALTER TABLE mount_sessions ADD COLUMN config_reload_failures INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mount_sessions ADD COLUMN last_config_error TEXT;"
	"ALTER TABLE openlineage_outbox ADD COLUMN dead_ns INTEGER;"
	"ALTER TABLE openlineage_outbox ADD COLUMN response TEXT;"
	"CREATE INDEX openlineage_outbox_run ON openlineage_outbox(run_id, event_type);"
	"DROP INDEX openlineage_outbox_pending;"
	"CREATE INDEX openlineage_outbox_pending ON openlineage_outbox(id) "
	"WHERE delivered_ns IS NULL AND dead_ns IS NULL;"
	"CREATE INDEX file_names_current ON file_names(backing_dir, path) WHERE until_ns IS NULL;"
	"CREATE INDEX file_names_current_file ON file_names(file_id) WHERE until_ns IS NULL;"
	"CREATE INDEX files_path ON files(backing_dir, path);"
	"ALTER TABLE recorder_stats ADD COLUMN hashes_unhashed INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE recorder_stats ADD COLUMN queue_length INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE accesses_v2 ("
	" id INTEGER PRIMARY KEY,"
	" process_id INTEGER NOT NULL REFERENCES processes(id),"
	" file_id INTEGER NOT NULL REFERENCES files(id),"
	" mount_session_id INTEGER NOT NULL REFERENCES mount_sessions(id),"
	" path TEXT NOT NULL,"
	" open_flags INTEGER NOT NULL,"
	" is_exec INTEGER NOT NULL DEFAULT 0,"
	" read_version_id INTEGER REFERENCES versions(id),"
	" written_version_id INTEGER REFERENCES versions(id),"
	" opened_ns INTEGER NOT NULL,"
	" closed_ns INTEGER,"
	" bytes_read INTEGER DEFAULT 0,"
	" bytes_written INTEGER DEFAULT 0,"
	" read_calls INTEGER DEFAULT 0,"
	" write_calls INTEGER DEFAULT 0);"
	"INSERT INTO accesses_v2 SELECT id, process_id, file_id, mount_session_id, path,"
	" open_flags, is_exec, read_version_id, written_version_id, opened_ns, closed_ns,"
	" bytes_read, bytes_written, read_calls, write_calls FROM accesses;"
	"DROP TABLE accesses;"
	"ALTER TABLE accesses_v2 RENAME TO accesses;"
	"CREATE INDEX accesses_process ON accesses(process_id);"
	"CREATE INDEX accesses_read_version ON accesses(read_version_id)"
	" WHERE read_version_id IS NOT NULL;"
	"CREATE INDEX accesses_written_version ON accesses(written_version_id)"
	" WHERE written_version_id IS NOT NULL;"
	"CREATE INDEX accesses_file ON accesses(file_id, opened_ns);",
	/*
	 * 2 -> 3: how each version's hash was taken (streamed or re-read); the
	 * root of the orchestrator's run.  Rows recorded before stay NULL:
	 * unknown.
	 */
	"ALTER TABLE versions ADD COLUMN hash_method TEXT;"
	"ALTER TABLE runs ADD COLUMN root_parent_namespace TEXT;"
	"ALTER TABLE runs ADD COLUMN root_parent_job_name TEXT;"
	"ALTER TABLE runs ADD COLUMN root_parent_run_id TEXT;",
	/*
	 * 3 -> 4: versions written through a mount whose record the store
	 * lost get origin 'unrecorded' (no change of column), which gaps lists
	 * through this index as it lists 'external' ones.
	 */
	"CREATE INDEX versions_unrecorded ON versions(origin) WHERE origin = 'unrecorded';",
	/*
	 * 4 -> 5: the newest row of an inode number in one seek (schema.sql,
	 * files_inode); the writer asked the UNIQUE index, which holds the
	 * number's rows in generation order, and read all of them.
	 */
	"CREATE INDEX files_inode ON files(host, device, inode);",
	/*
	 * 5 -> 6: one index for a file's accesses and a version's readers
	 * (schema.sql, accesses_file_read): one B-tree fewer to insert into
	 * at every recorded open.
	 */
	"DROP INDEX accesses_read_version;"
	"DROP INDEX accesses_file;"
	"CREATE INDEX accesses_file_read ON accesses(file_id, read_version_id, opened_ns);",
	/*
	 * 6 -> 7: runs whose root ended while no daemon recorded it, closed by
	 * a later daemon with the time it noticed (schema.sql, end_unknown),
	 * and the open runs it looks through.  Runs ended before keep 0: their
	 * end was seen.
	 */
	"ALTER TABLE runs ADD COLUMN end_unknown INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX runs_open ON runs(host) WHERE ended_ns IS NULL;",
	/*
	 * 7 -> 8: the versions whose hash is still to be taken, which a
	 * daemon finishes when an earlier one left them (schema.sql,
	 * versions_pending); the backing directory's own identity, by which a
	 * mount of it moved elsewhere finds its files.  Sessions before keep
	 * NULL: unknown.
	 */
	"CREATE INDEX versions_pending ON versions(file_id) WHERE hash_state = 'pending';"
	"ALTER TABLE mount_sessions ADD COLUMN backing_device INTEGER;"
	"ALTER TABLE mount_sessions ADD COLUMN backing_inode INTEGER;"
	"ALTER TABLE mount_sessions ADD COLUMN backing_generation INTEGER;"
	"CREATE INDEX mount_sessions_backing ON mount_sessions(backing_device, backing_inode);",
};
_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == STORE_SCHEMA_VERSION - 1,
	       "one migration step per schema version after the first");

/* SQLite's message, with the system's reason when there is one. */
static void
describe(sqlite3 *db, const char *message, char *out, size_t out_size)
{
	int system_error = sqlite3_system_errno(db);

	if (system_error)
		snprintf(out, out_size, "%s (%s)", message, strerror(system_error));
	else
		snprintf(out, out_size, "%s", message);
}

static int
exec_sql(sqlite3 *db, const char *sql, char *error, size_t error_size, const char *what)
{
	char *message = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
		char reason[300];
		describe(db, message ? message : sqlite3_errmsg(db), reason, sizeof(reason));
		snprintf(error, error_size, "%s: %s", what, reason);
		sqlite3_free(message);
		return -1;
	}
	return 0;
}

static int
schema_version(sqlite3 *db, int *version)
{
	sqlite3_stmt *statement;
	int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &statement, NULL);

	if (rc != SQLITE_OK)
		return rc;
	rc = sqlite3_step(statement);
	if (rc == SQLITE_ROW) {
		*version = sqlite3_column_int(statement, 0);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(statement);
	return rc;
}

/* Create the directory of path (one level) for root and group only. */
static int
prepare_directory(const char *path, gid_t group, char *error, size_t error_size)
{
	char *directory = strdup(path);
	char *slash = directory ? strrchr(directory, '/') : NULL;
	int result = 0;

	if (slash == NULL || slash == directory)
		goto out;
	*slash = '\0';
	if (mkdir(directory, 0750) == 0) {
		if (chown(directory, 0, group) < 0 || chmod(directory, group ? 0750 : 0700) < 0) {
			snprintf(error, error_size, "cannot set owner of store directory '%s': %s",
				 directory, strerror(errno));
			result = -1;
		}
	} else if (errno != EEXIST) {
		snprintf(error, error_size, "cannot create store directory '%s': %s", directory,
			 strerror(errno));
		result = -1;
	} else {
		struct stat st;
		if (stat(directory, &st) < 0 || !S_ISDIR(st.st_mode)) {
			snprintf(error, error_size, "store directory '%s' is not a directory",
				 directory);
			result = -1;
		} else if (st.st_uid != 0) {
			/* Whoever owns it could swap the store or plant its companions. */
			snprintf(error, error_size, "store directory '%s' must be owned by root",
				 directory);
			result = -1;
		} else if (st.st_mode & (S_IWGRP | S_IWOTH)) {
			snprintf(error, error_size,
				 "store directory '%s' is writable by group or others; run chmod "
				 "go-w on it, or put the store elsewhere",
				 directory);
			result = -1;
		} else if (access(directory, W_OK) < 0) {
			snprintf(error, error_size, "cannot write in store directory '%s': %s",
				 directory, strerror(errno));
			result = -1;
		}
	}
out:
	free(directory);
	return result;
}

static int
resolve_group(const char *name, gid_t *gid, char *error, size_t error_size)
{
	struct group *group;

	*gid = 0;
	if (name == NULL)
		return 0;
	group = getgrnam(name);
	if (group == NULL) {
		snprintf(error, error_size, "reader_group '%s' does not exist", name);
		return -1;
	}
	*gid = group->gr_gid;
	return 0;
}

/*
 * Make the store file and its WAL companions root:group, mode 0640.  On
 * the files themselves, through a descriptor opened without following a
 * symlink: a symlink under a companion's name gives nobody its target.
 *
 * The descriptor is O_PATH, and must be: closing any other descriptor of
 * a file drops every POSIX lock this process holds on it, SQLite's among
 * them (this runs while other connections of the daemon are open), and
 * another process would then take the store for unused and delete its WAL
 * under the writer.  Closing an O_PATH descriptor releases no lock.
 */
static void
restrict_files(const char *path, gid_t group)
{
	static const char *const suffixes[] = {"", "-wal", "-shm"};
	char name[4096], link[32];
	struct stat st;

	for (size_t i = 0; i < 3; i++) {
		snprintf(name, sizeof(name), "%s%s", path, suffixes[i]);
		int fd = open(name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
		    fchownat(fd, "", 0, group, AT_EMPTY_PATH) == 0)
			chmod(link, group ? 0640 : 0600); /* the magic link: the file itself */
		close(fd);
	}
}

/* A store written by a newer provfs is never touched. */
static int
refuse_newer(const char *path, int version, char *error, size_t error_size)
{
	snprintf(error, error_size,
		 "store '%s' has schema version %d, newer than this provfs understands (%d); "
		 "upgrade provfs",
		 path, version, STORE_SCHEMA_VERSION);
	return -1;
}

static int
migrate(sqlite3 *db, const char *path, char *error, size_t error_size)
{
	int version = 0;

	if (schema_version(db, &version) != SQLITE_OK) {
		snprintf(error, error_size, "store '%s' cannot be read: %s", path,
			 sqlite3_errmsg(db));
		return -1;
	}
	if (version > STORE_SCHEMA_VERSION)
		return refuse_newer(path, version, error, error_size);
	if (version == STORE_SCHEMA_VERSION)
		return 0;
	if (exec_sql(db, "BEGIN IMMEDIATE", error, error_size, "cannot lock the store"))
		return -1;
	/* Someone else may have migrated while we waited for the lock. */
	if (schema_version(db, &version) != SQLITE_OK)
		goto rollback;
	if (version == 0) {
		if (exec_sql(db, store_schema_sql, error, error_size, "cannot create the schema"))
			goto rollback;
		version = STORE_SCHEMA_VERSION; /* schema.sql is the current version */
	}
	assert(version >= 1); /* migrations[i] takes version i+1 to i+2 */
	for (; version < STORE_SCHEMA_VERSION; version++) {
		/* cppcheck-suppress negativeIndex ; version >= 1 here, asserted above */
		if (exec_sql(db, migrations[version - 1], error, error_size,
			     "cannot migrate the store"))
			goto rollback;
	}
	char pragma[64];
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
	if (exec_sql(db, pragma, error, error_size, "cannot set the schema version") ||
	    exec_sql(db, "COMMIT", error, error_size, "cannot commit the schema"))
		goto rollback;
	return 0;
rollback:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* A reader never migrates: it takes the store as it is, or says why not. */
static int
check_readable_version(sqlite3 *db, const char *path, char *error, size_t error_size)
{
	int version = 0;

	if (schema_version(db, &version) != SQLITE_OK) {
		snprintf(error, error_size, "store '%s' is not a provfs store or is corrupt (%s)",
			 path, sqlite3_errmsg(db));
		return -1;
	}
	if (version == 0) {
		snprintf(error, error_size, "'%s' is not a provfs store", path);
		return -1;
	}
	if (version > STORE_SCHEMA_VERSION)
		return refuse_newer(path, version, error, error_size);
	if (version < STORE_SCHEMA_VERSION) {
		snprintf(error, error_size,
			 "store '%s' has the older schema version %d; mount it once with this "
			 "provfs to migrate it",
			 path, version);
		return -1;
	}
	return 0;
}

/*
 * A statement that changes several rows (an INSERT of many accesses, a
 * rename's names beneath a directory) keeps a copy of every page it
 * touches until it ends, so that a constraint failing half-way can undo
 * it.  SQLite keeps 64 KiB of those copies in memory and writes the rest to
 * a temporary file: the writer's 16-row inserts went over, and the copies
 * cost it two write(2)s a page, more system time than the store's own WAL.
 * 4 MiB holds any statement the writer makes of ordinary batches; a bigger
 * one (the rename of a large tree) still goes to a file.
 */
#define STATEMENT_JOURNAL_IN_MEMORY (4 * 1024 * 1024)

/*
 * Debian's SQLite keeps memory statistics, which takes a process-wide
 * mutex around every allocation it makes, and it is built without
 * lookaside memory, so a one-row insert makes about ten allocations.  No
 * provfs program reads those statistics.  Has to come before SQLite
 * initialises (the first open); later it is refused, harmlessly.
 */
static void
configure_sqlite(void)
{
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, STATEMENT_JOURNAL_IN_MEMORY);
}

struct store *
store_open(const char *path, enum store_mode mode, const char *reader_group, char *error,
	   size_t error_size)
{
	static pthread_once_t configured = PTHREAD_ONCE_INIT;
	struct store *store = calloc(1, sizeof(*store));
	int flags = mode == STORE_READ_ONLY  ? SQLITE_OPEN_READONLY
		    : mode == STORE_MAINTAIN ? SQLITE_OPEN_READWRITE
					     : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	gid_t group = 0;
	int rc;

	if (store == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	store->path = strdup(path);
	if (mode == STORE_READ_WRITE) {
		if (resolve_group(reader_group, &group, error, error_size) ||
		    prepare_directory(path, group, error, error_size))
			goto fail;
	} else if (access(path, F_OK) < 0) {
		snprintf(error, error_size, "store '%s' does not exist (mount with provfs first, "
					    "or name the store with --store)", path);
		goto fail;
	} else if (access(path, R_OK) < 0) {
		snprintf(error, error_size, "store '%s' is readable by root and its reader_group "
					    "only; ask an administrator for access", path);
		goto fail;
	}
	pthread_once(&configured, configure_sqlite);
	rc = sqlite3_open_v2(path, &store->db, flags | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		snprintf(error, error_size, "cannot open store '%s': %s", path,
			 store->db ? sqlite3_errmsg(store->db) : sqlite3_errstr(rc));
		goto fail;
	}
	sqlite3_busy_timeout(store->db, 5000);
	sqlite3_extended_result_codes(store->db, 1);
	/*
	 * Keep the -wal and -shm files when the last connection closes.  A
	 * reader (reader_group) may open a WAL store read-only only when they
	 * exist: it may not create them in the root-owned directory, so with
	 * them gone no reader could open the store until the next mount.
	 */
	int persist_wal = 1;
	sqlite3_file_control(store->db, "main", SQLITE_FCNTL_PERSIST_WAL, &persist_wal);
	if (mode == STORE_READ_WRITE) {
		char message[256];
		/*
		 * Takes effect only on a new, empty file, and only before WAL is
		 * set (see store.h, Space); a no-op on an existing store.
		 */
		if (exec_sql(store->db, "PRAGMA auto_vacuum = INCREMENTAL", message,
			     sizeof(message), "cannot set auto_vacuum") ||
		    exec_sql(store->db, "PRAGMA journal_mode = WAL", message, sizeof(message),
			     "cannot use WAL")) {
			if (strstr(message, "not a database"))
				snprintf(error, error_size, "store '%s' is not a provfs store or is corrupt",
					 path);
			else
				snprintf(error, error_size, "cannot open store '%s': %s", path,
					 strstr(message, ": ") ? strstr(message, ": ") + 2 : message);
			goto fail;
		}
		/*
		 * SQLite reuses its WAL file rather than shrinking it, so one
		 * burst of events while a long provfs-query held its snapshot
		 * (no checkpoint may pass a reader) left the -wal file at its
		 * largest for good, across unmounts too (it is kept, see
		 * above).  The limit trims it after a checkpoint, and to
		 * nothing when the daemon closes the store.
		 *
		 * The writer's page cache: 32 MiB instead of SQLite's 2.  Two of
		 * the indexes of accesses (by file, by version read) take their
		 * rows in no order, so each row touches a leaf page anywhere in
		 * them; once they outgrow the cache every row read such pages
		 * back from the kernel.
		 */
		if (exec_sql(store->db,
			     "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = OFF; "
			     "PRAGMA journal_size_limit = 16777216; " /* 16 MiB */
			     "PRAGMA cache_size = -32768",          /* KiB */
			     error, error_size, "cannot configure the store"))
			goto fail;
		restrict_files(path, group);
	}
	if (mode == STORE_READ_WRITE) {
		if (migrate(store->db, path, error, error_size))
			goto fail;
	} else if (check_readable_version(store->db, path, error, error_size)) {
		goto fail;
	}
	return store;
fail:
	store_close(store);
	return NULL;
}

sqlite3 *
store_db(struct store *store)
{
	return store->db;
}

void
store_close(struct store *store)
{
	if (store == NULL)
		return;
	if (store->db)
		sqlite3_close(store->db);
	free(store->path);
	free(store);
}
