/*
 * writer.c - the recorder's writer thread: events become rows.
 *
 * Only the writer thread calls into this file after writer_prepare(), so
 * the prepared statements and every `store_id` field need no lock.  A batch
 * is one transaction (several, in order, when it changes very many rows:
 * ROWS_PER_TRANSACTION); rows are created on demand in dependency order
 * (run before process, process before access, file before version), so an
 * event whose predecessors were lost while the store failed still lands
 * whole.  See store/schema.sql for what every column means.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "content_hash.h"
#include "log.h"
#include "openlineage_outbox.h"
#include "passthrough.h"
#include "recorder_i.h"

enum statement_id {
	INSERT_SESSION,
	CLOSE_SESSION,
	INSERT_RUN,
	SELECT_RUN,
	INSERT_PROCESS,
	SELECT_PROCESS,
	UPDATE_PROCESS_EXIT,
	UPDATE_RUN_END,
	UPDATE_PROCESS_HASH,
	SELECT_FILE,
	INSERT_FILE,
	INSERT_NEW_FILE,
	SELECT_CURRENT_NAME,
	INSERT_NAME,
	UPDATE_FILE_PATH,
	INSERT_VERSION,
	UPDATE_VERSION_HASH,
	INSERT_ACCESS,
	INSERT_CLOSED_ACCESS,
	INSERT_WRITTEN_ACCESS,
	CLOSE_ACCESS,
	SET_WRITTEN_VERSION,
	SET_READ_VERSION,
	INSERT_NAMESPACE_EVENT,
	SELECT_FILE_BY_INODE,
	SELECT_CURRENT_NAMES,
	CLOSE_NAME,
	CLOSE_NAMES_UNDER,
	COPY_NAMES_UNDER,
	UPDATE_PATHS_UNDER,
	SELECT_CURRENT_NAME_FILES,
	MARK_FILE_REMOVED,
	MARK_REPLACED_REMOVED,
	SELECT_LATEST_FOR_FILE,
	UPDATE_VERSION_TIMES,
	SELECT_FILE_PATH,
	SELECT_LOST_WRITER,
	UPSERT_STATS,
	STATEMENT_COUNT
};

static const char *const statement_sql[STATEMENT_COUNT] = {
	[INSERT_SESSION] = "INSERT INTO mount_sessions (host, backing_dir, mount_point, "
			   "provfs_version, daemon_pid, started_ns, backing_exposed, recording, "
			   "policy, backing_device, backing_inode, backing_generation) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?, ?, ?)",
	[CLOSE_SESSION] = "UPDATE mount_sessions SET stopped_ns = ? WHERE id = ?",
	[INSERT_RUN] = "INSERT OR IGNORE INTO runs (uuid, job_name, named_by, host, root_pid, "
		       "root_start_ns, started_ns, parent_namespace, parent_job_name, "
		       "parent_run_id, root_parent_namespace, root_parent_job_name, "
		       "root_parent_run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[SELECT_RUN] = "SELECT id FROM runs WHERE uuid = ?",
	[INSERT_PROCESS] = "INSERT OR IGNORE INTO processes (host, pid, start_ns, exec_index, "
			   "parent_id, previous_id, run_id, mount_session_id, executable, "
			   "executable_hash, argv, cwd, uid, gid, session_id, cgroup, seen_ns, "
			   "kernel_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[SELECT_PROCESS] = "SELECT id FROM processes WHERE host = ? AND pid = ? AND "
			   "start_ns = ? AND exec_index = ? AND kernel_id = ?",
	[UPDATE_PROCESS_EXIT] = "UPDATE processes SET exited_ns = ?, exit_status = ?, "
				"exit_known = ? WHERE id = ? AND exited_ns IS NULL",
	/* A run a later daemon closed as found gone (abandoned_runs.c) keeps
	 * that end: its ABORT went out. */
	[UPDATE_RUN_END] = "UPDATE runs SET ended_ns = ? WHERE id = ? AND root_pid = ? AND "
			   "root_start_ns = ? AND end_unknown = 0",
	[UPDATE_PROCESS_HASH] = "UPDATE processes SET executable_hash = ? WHERE id = ?",
	/* A file the writer does not hold (evicted from the file table, or
	 * known from an earlier mount): all ensure_file asks of the store in
	 * one statement, each statement costing a few thousand instructions
	 * before it reads a page.  With whether the row already says that
	 * path (?5) is where it is, so that a file opened by its last name
	 * needs no UPDATE of the row and of its place in files_path (two
	 * random pages, for nothing); whether path is one of its current
	 * names; and its newest version. */
	[SELECT_FILE] = "SELECT f.id, f.path = ?5 AND f.removed_ns IS NULL, EXISTS (SELECT 1 FROM "
			"file_names n WHERE n.backing_dir = ?6 AND n.path = ?5 AND n.until_ns IS "
			"NULL AND n.file_id = f.id), v.id, v.number, v.size, v.mtime_ns, "
			"v.ctime_ns FROM files f LEFT JOIN versions v ON v.id = (SELECT id FROM "
			"versions WHERE file_id = f.id ORDER BY number DESC LIMIT 1) WHERE "
			"f.host = ?1 AND f.device = ?2 AND f.inode = ?3 AND f.generation = ?4",
	[INSERT_FILE] = "INSERT INTO files (host, device, inode, generation, backing_dir, path, "
			"first_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
	[SELECT_CURRENT_NAME] = "SELECT 1 FROM file_names WHERE file_id = ? AND backing_dir = ? "
				"AND path = ? AND until_ns IS NULL",
	[INSERT_NAME] = "INSERT INTO file_names (file_id, backing_dir, path, since_ns, how) "
			"VALUES (?, ?, ?, ?, ?)",
	/* A file its open created: almost always a new row, so one statement
	 * where a search and an insert were (ignored: the row was there). */
	[INSERT_NEW_FILE] = "INSERT OR IGNORE INTO files (host, device, inode, generation, "
			    "backing_dir, path, first_seen_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
	[UPDATE_FILE_PATH] = "UPDATE files SET path = ?, removed_ns = NULL WHERE id = ?",
	[INSERT_VERSION] = "INSERT INTO versions (file_id, number, size, mtime_ns, ctime_ns, hash, "
			   "hash_state, origin, producer_process_id, recorded_ns, hash_method) "
			   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	/* A hash that comes later was read back from the file by the pool. */
	[UPDATE_VERSION_HASH] = "UPDATE versions SET hash = ?1, hash_state = ?2, hash_method = "
				"CASE WHEN ?1 IS NULL THEN NULL ELSE 'reread' END WHERE id = ?3",
	[INSERT_ACCESS] = "INSERT INTO accesses (process_id, file_id, mount_session_id, path, "
			  "open_flags, is_exec, opened_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
	/* An access whose OPEN and CLOSE come in one batch: one row, no update. */
	[INSERT_CLOSED_ACCESS] = "INSERT INTO accesses (process_id, file_id, mount_session_id, "
				 "path, open_flags, is_exec, opened_ns, closed_ns, bytes_read, "
				 "bytes_written, read_calls, write_calls, read_version_id) "
				 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	/* A handle that wrote the version of its batch: its row comes whole
	 * after the version's, with it (insert_written_access). */
	[INSERT_WRITTEN_ACCESS] = "INSERT INTO accesses (process_id, file_id, mount_session_id, "
				  "path, open_flags, is_exec, opened_ns, closed_ns, bytes_read, "
				  "bytes_written, read_calls, write_calls, read_version_id, "
				  "written_version_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
	[CLOSE_ACCESS] = "UPDATE accesses SET closed_ns = ?, bytes_read = ?, bytes_written = ?, "
			 "read_calls = ?, write_calls = ?, read_version_id = ?, "
			 "process_id = coalesce(?, process_id) WHERE id = ?",
	[SET_WRITTEN_VERSION] = "UPDATE accesses SET written_version_id = ? WHERE id = ?",
	[SET_READ_VERSION] = "UPDATE accesses SET read_version_id = ? WHERE id = ?",
	[INSERT_NAMESPACE_EVENT] = "INSERT INTO namespace_events (kind, file_id, process_id, "
				   "mount_session_id, path, new_path, time_ns) "
				   "VALUES (?, ?, ?, ?, ?, ?, ?)",
	/* The newest row of an inode: the last entry of files_inode for it, one
	 * seek (a miss, as for every directory, reads nothing). */
	[SELECT_FILE_BY_INODE] = "SELECT max(id) FROM files WHERE host = ? AND device = ? AND "
				 "inode = ?",
	/* The current names of a path (one, unless records were lost), then
	 * each ended by row id.  An UPDATE whose own WHERE searched the index
	 * of current names would change that index's column, which SQLite does
	 * in two passes through a temporary table (a third of the writer's time
	 * per unlink); one that ended a name a run had to run again to learn
	 * that there was no other. */
	[SELECT_CURRENT_NAMES] = "SELECT id FROM file_names WHERE backing_dir = ? AND path = ? "
				 "AND until_ns IS NULL",
	[CLOSE_NAME] = "UPDATE file_names SET until_ns = ? WHERE id = ?",
	/* Names beneath dir are the range ['dir/', 'dir0'): '0' follows '/'.
	 * With the partial index of current names, a rename costs the names
	 * it moves, not the names the store holds. */
	[CLOSE_NAMES_UNDER] = "UPDATE file_names SET until_ns = ?1 WHERE backing_dir = ?2 AND "
			      "until_ns IS NULL AND since_ns < ?1 AND "
			      "path >= ?3 || '/' AND path < ?3 || '0'",
	/* Only names older than the rename: an exchange copies both ways at
	 * one time, and the names it has just made must not go round again. */
	[COPY_NAMES_UNDER] = "INSERT INTO file_names (file_id, backing_dir, path, since_ns, how) "
			     "SELECT file_id, backing_dir, ?4 || substr(path, length(?3) + 1), "
			     "?1, 'rename' FROM file_names WHERE backing_dir = ?2 AND "
			     "until_ns IS NULL AND since_ns < ?1 AND "
			     "path >= ?3 || '/' AND path < ?3 || '0'",
	[UPDATE_PATHS_UNDER] = "UPDATE files SET path = ?3 || substr(path, length(?2) + 1) "
			       "WHERE backing_dir = ?1 AND path >= ?2 || '/' AND path < ?2 || '0'",
	/* The current names of a path and their files (exchange_names). */
	[SELECT_CURRENT_NAME_FILES] = "SELECT id, file_id FROM file_names WHERE backing_dir = ? AND "
				      "path = ? AND until_ns IS NULL",
	/* The file's last name went: removed, in one statement with the check. */
	[MARK_FILE_REMOVED] = "UPDATE files SET removed_ns = ?1 WHERE id = ?2 AND NOT EXISTS "
			      "(SELECT 1 FROM file_names WHERE file_id = ?2 AND until_ns IS NULL)",
	/* The file a rename's new name named, if that name was its last. */
	[MARK_REPLACED_REMOVED] = "UPDATE files SET removed_ns = ?1 WHERE id = (SELECT file_id "
				  "FROM file_names WHERE backing_dir = ?2 AND path = ?3 AND "
				  "until_ns IS NULL) AND NOT EXISTS (SELECT 1 FROM file_names "
				  "n WHERE n.file_id = files.id AND n.until_ns IS NULL AND "
				  "n.path <> ?3)",
	[SELECT_LATEST_FOR_FILE] = "SELECT id, number, size, mtime_ns, ctime_ns FROM versions WHERE "
				   "file_id = ? ORDER BY number DESC LIMIT 1",
	[UPDATE_VERSION_TIMES] = "UPDATE versions SET mtime_ns = ?, ctime_ns = ? WHERE id = ?",
	[SELECT_FILE_PATH] = "SELECT path FROM files WHERE id = ?",
	/* A file with no version: was it made through the mount, and who last
	 * opened it to write?  (resolve_read_version) */
	[SELECT_LOST_WRITER] = "SELECT EXISTS (SELECT 1 FROM file_names WHERE file_id = ?1 AND "
			       "how = 'create'), (SELECT process_id FROM accesses WHERE id = "
			       "(SELECT max(id) FROM accesses WHERE file_id = ?1 AND "
			       "open_flags & 3 <> 0))",
	[UPSERT_STATS] = "INSERT OR REPLACE INTO recorder_stats (mount_session_id, events_queued, "
			 "events_written, events_lost, batches, queue_high_water, queue_capacity, "
			 "hash_backlog, hashes_done, store_errors, last_error, updated_ns, "
			 "hashes_unhashed, queue_length) "
			 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
};

static sqlite3_stmt *statements[STATEMENT_COUNT];
static struct recorder *current; /* the recorder these statements serve */
/*
 * Rows one transaction may change before the batch is committed in another
 * piece.  Most batches are far below it (an open is a row or two); a
 * rename of a directory copies a name row for everything beneath it, and a
 * queue of such renames as one transaction grew the WAL by gigabytes that
 * no checkpoint could reclaim until it ended, and a crash lost all of it.
 */
#define ROWS_PER_TRANSACTION 50000

/*
 * Closed accesses (OPEN and CLOSE in one batch: most of them) go into the
 * store several to an INSERT, up to ACCESS_ROWS_PER_INSERT: SQLite's cost
 * per statement (a cursor on the table and on each of its four indexes,
 * registers, the record) was a quarter of the writer's time per open.  A
 * row waits only while OPEN and CLOSE events follow; any other event may
 * need its id and has the waiting rows inserted first (apply_event), as
 * does the end of a transaction.  The ids of one INSERT are consecutive:
 * SQLite gives each new row the largest rowid plus one, and nothing else
 * inserts while the statement runs.
 */
#define ACCESS_ROWS_PER_INSERT 16
#define CLOSED_ACCESS_COLUMNS 13 /* of INSERT_CLOSED_ACCESS */

static struct pending_access {
	struct access *access;
	int64_t process_id;
} pending_accesses[ACCESS_ROWS_PER_INSERT];
static size_t pending_access_count;
/* INSERT_CLOSED_ACCESS of n rows at [n], prepared when first needed. */
static sqlite3_stmt *insert_closed_accesses[ACCESS_ROWS_PER_INSERT + 1];

static uint64_t batch_serial;    /* the batch applied: access->close_batch, version_batch */
static sqlite3_int64 rows_per_transaction; /* ROWS_PER_TRANSACTION, unless a test says */

/*
 * Undo journal of the open transaction: the in-memory ids it assigned and
 * the file caches it changed.  A rollback forgets them, so that no object
 * keeps the id of a row that was never committed.
 */
static int64_t **assigned_ids;
static size_t assigned_count, assigned_capacity;
static struct file_state **touched_files;
static size_t touched_count, touched_capacity;

static void
journal_id(int64_t *slot)
{
	if (assigned_count == assigned_capacity) {
		size_t capacity = assigned_capacity ? assigned_capacity * 2 : 256;
		int64_t **grown = realloc(assigned_ids, capacity * sizeof(*grown));
		if (grown == NULL)
			abort();
		assigned_ids = grown;
		assigned_capacity = capacity;
	}
	assigned_ids[assigned_count++] = slot;
}

static void
journal_file(struct file_state *file)
{
	if (touched_count == touched_capacity) {
		size_t capacity = touched_capacity ? touched_capacity * 2 : 256;
		struct file_state **grown = realloc(touched_files, capacity * sizeof(*grown));
		if (grown == NULL)
			abort();
		touched_files = grown;
		touched_capacity = capacity;
	}
	atomic_fetch_add(&file->references, 1); /* kept until the batch ends */
	touched_files[touched_count++] = file;
}

/* The batch ended (committed or undone): let go of the journal. */
static void
journal_clear(void)
{
	for (size_t i = 0; i < touched_count; i++)
		file_state_release(touched_files[i]);
	assigned_count = touched_count = 0;
}

static void
journal_undo(void)
{
	for (size_t i = 0; i < assigned_count; i++)
		*assigned_ids[i] = 0;
	for (size_t i = 0; i < touched_count; i++) {
		struct file_state *file = touched_files[i];
		file->store_id = 0;
		file->latest_version_id = 0;
		file->latest_number = 0;
		free(file->recorded_path);
		file->recorded_path = NULL;
	}
	journal_clear();
}

/*
 * Hash jobs found by the open transaction.  They are handed to the pool
 * only after COMMIT: a job must never carry the id of a row that a
 * rollback could take back (SQLite would give that id to another row).
 */
struct deferred_hash {
	dev_t device;
	ino_t inode;
	struct hash_source *source;
	hash_done_fn *done;
	void *argument;
};
static struct deferred_hash *deferred;
static size_t deferred_count, deferred_capacity;

static void
defer_hash(dev_t device, ino_t inode, struct hash_source *source, hash_done_fn *done,
	   void *argument)
{
	if (deferred_count == deferred_capacity) {
		size_t capacity = deferred_capacity ? deferred_capacity * 2 : 64;
		struct deferred_hash *grown = realloc(deferred, capacity * sizeof(*grown));
		if (grown == NULL)
			abort();
		deferred = grown;
		deferred_capacity = capacity;
	}
	deferred[deferred_count++] = (struct deferred_hash){
		.device = device, .inode = inode, .source = source, .done = done,
		.argument = argument};
}

/* The batch committed: its rows exist, their jobs may run. */
static void
deferred_submit(void)
{
	for (size_t i = 0; i < deferred_count; i++)
		hash_pool_submit_source(current->hashes, deferred[i].device, deferred[i].inode,
					deferred[i].source, deferred[i].done,
					deferred[i].argument);
	deferred_count = 0;
}

/* The batch was undone: its jobs have no rows to complete. */
static void
deferred_cancel(void)
{
	for (size_t i = 0; i < deferred_count; i++) {
		hash_source_free(deferred[i].source);
		deferred[i].done(deferred[i].argument, -ESHUTDOWN, NULL, NULL, NULL);
	}
	deferred_count = 0;
}

static sqlite3 *
db(void)
{
	return store_db(current->store);
}

/*
 * Images whose row was written while their executable was still being
 * hashed.  The hash comes later (EVENT_EXECUTABLE_HASH); until then a
 * START that describes one of them waits (openlineage_outbox_executable_gate),
 * and each batch looks again: a hash known by then is written at once, in
 * the batch whose flush may spool the START, and an image the hasher gave
 * up on (no event comes for it) stops holding anything back.
 */
struct hashing_image {
	struct process_info *image; /* referenced */
	int64_t since_ns;           /* monotonic: given up after the START's wait */
};
static struct hashing_image *hashing;
static size_t hashing_count, hashing_capacity;

static void
hashing_add(struct process_info *image)
{
	for (size_t i = 0; i < hashing_count; i++)
		if (hashing[i].image == image)
			return; /* its row written again after a rollback */
	if (hashing_count == hashing_capacity) {
		size_t capacity = hashing_capacity ? hashing_capacity * 2 : 16;
		struct hashing_image *grown = realloc(hashing, capacity * sizeof(*grown));
		if (grown == NULL)
			return; /* its START just does not wait */
		hashing = grown;
		hashing_capacity = capacity;
	}
	hashing[hashing_count++] = (struct hashing_image){
		.image = process_info_acquire(image), .since_ns = monotonic_ns()};
}

static bool
executable_hashing(int64_t process_id)
{
	for (size_t i = 0; i < hashing_count; i++)
		if (hashing[i].image->store_id == process_id)
			return true;
	return false;
}

/* Reset a statement and bind the given values by their C types. */
static sqlite3_stmt *
statement(enum statement_id id)
{
	sqlite3_stmt *s = statements[id];

	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
	return s;
}

static void
bind_text(sqlite3_stmt *s, int index, const char *text)
{
	if (text)
		sqlite3_bind_text(s, index, text, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(s, index);
}

static void
bind_id(sqlite3_stmt *s, int index, int64_t id)
{
	if (id > 0)
		sqlite3_bind_int64(s, index, id);
	else
		sqlite3_bind_null(s, index);
}

/* Run a statement that returns nothing; SQLITE_DONE or an error code. */
static int
run(sqlite3_stmt *s)
{
	int rc = sqlite3_step(s);

	sqlite3_reset(s);
	return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}

/* Run a statement returning one integer; 0 when no row. */
static int64_t
select_integer(sqlite3_stmt *s, int *rc)
{
	int64_t value = 0;
	int step = sqlite3_step(s);

	if (step == SQLITE_ROW)
		value = sqlite3_column_int64(s, 0);
	else if (step != SQLITE_DONE)
		*rc = step;
	sqlite3_reset(s);
	return value;
}

size_t
writer_statement_count(void)
{
	return STATEMENT_COUNT;
}

const char *
writer_statement_sql(size_t index)
{
	return index < STATEMENT_COUNT ? statement_sql[index] : NULL;
}

int
writer_prepare(struct recorder *recorder, char *error, size_t error_size)
{
	current = recorder;
	rows_per_transaction = ROWS_PER_TRANSACTION;
	openlineage_outbox_executable_gate(executable_hashing);
	/* Test only: PROVFS_TEST_ROWS_PER_TRANSACTION=N commits a batch after
	 * every N rows (1: after every event), so that tests/bats can check
	 * that a batch split anywhere records what one transaction would. */
	const char *test_rows = getenv("PROVFS_TEST_ROWS_PER_TRANSACTION");
	if (test_rows && atol(test_rows) > 0)
		rows_per_transaction = atol(test_rows);
	for (int i = 0; i < STATEMENT_COUNT; i++) {
		if (sqlite3_prepare_v3(db(), statement_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
				       &statements[i], NULL) != SQLITE_OK) {
			snprintf(error, error_size, "cannot prepare store statement: %s",
				 sqlite3_errmsg(db()));
			return -1;
		}
	}
	return 0;
}

void
writer_finish(struct recorder *recorder)
{
	deferred_cancel();
	free(deferred);
	deferred = NULL;
	deferred_capacity = 0;
	free(assigned_ids);
	free(touched_files);
	assigned_ids = NULL;
	touched_files = NULL;
	assigned_count = assigned_capacity = touched_count = touched_capacity = 0;
	openlineage_outbox_executable_gate(NULL);
	for (size_t i = 0; i < hashing_count; i++)
		process_info_release(hashing[i].image);
	free(hashing);
	hashing = NULL;
	hashing_count = hashing_capacity = 0;
	for (int i = 0; i < STATEMENT_COUNT; i++) {
		sqlite3_finalize(statements[i]);
		statements[i] = NULL;
	}
	for (int i = 0; i <= ACCESS_ROWS_PER_INSERT; i++) {
		sqlite3_finalize(insert_closed_accesses[i]);
		insert_closed_accesses[i] = NULL;
	}
}

static int write_stats(struct recorder *recorder);

int
writer_record_session(struct recorder *recorder, char *error, size_t error_size)
{
	sqlite3_stmt *s = statement(INSERT_SESSION);

	bind_text(s, 1, recorder->host);
	bind_text(s, 2, recorder->backing_dir);
	bind_text(s, 3, recorder->mount_point);
	bind_text(s, 4, PROVFS_VERSION);
	sqlite3_bind_int(s, 5, getpid());
	sqlite3_bind_int64(s, 6, wall_clock_ns());
	sqlite3_bind_int(s, 7, recorder->options.backing_exposed);
	sqlite3_bind_int(s, 8, recorder->options.policy);
	struct backing_identity identity;
	if (backing_identity_of(recorder->options.backing_fd, &identity) == 0) {
		sqlite3_bind_int64(s, 9, (int64_t)identity.device);
		sqlite3_bind_int64(s, 10, (int64_t)identity.inode);
		sqlite3_bind_int64(s, 11, (int64_t)identity.generation);
	}
	if (run(s) != SQLITE_DONE) {
		snprintf(error, error_size, "cannot write to store '%s': %s",
			 recorder->options.store_path, sqlite3_errmsg(db()));
		return -1;
	}
	recorder->mount_session_id = sqlite3_last_insert_rowid(db());
	return 0;
}

void
writer_close_session(struct recorder *recorder)
{
	sqlite3_stmt *s = statement(CLOSE_SESSION);

	write_stats(recorder);
	sqlite3_bind_int64(s, 1, wall_clock_ns());
	sqlite3_bind_int64(s, 2, recorder->mount_session_id);
	if (run(s) != SQLITE_DONE)
		log_error("cannot close the mount session in the store: %s", sqlite3_errmsg(db()));
}

static int
write_stats(struct recorder *recorder)
{
	sqlite3_stmt *s = statement(UPSERT_STATS);

	sqlite3_bind_int64(s, 1, recorder->mount_session_id);
	sqlite3_bind_int64(s, 2, (int64_t)recorder->events_queued);
	sqlite3_bind_int64(s, 3, (int64_t)recorder->events_written);
	sqlite3_bind_int64(s, 4, (int64_t)recorder->events_lost);
	sqlite3_bind_int64(s, 5, (int64_t)recorder->batches);
	sqlite3_bind_int64(s, 6, (int64_t)recorder->queue_high_water);
	sqlite3_bind_int64(s, 7, (int64_t)recorder->queue_capacity);
	sqlite3_bind_int64(s, 8, recorder->hashes ? (int64_t)hash_pool_backlog(recorder->hashes) : 0);
	sqlite3_bind_int64(s, 9, recorder->hashes ? (int64_t)hash_pool_completed(recorder->hashes)
						  : (int64_t)recorder->hashes_completed);
	sqlite3_bind_int64(s, 10, (int64_t)recorder->store_errors);
	bind_text(s, 11, recorder->last_error[0] ? recorder->last_error : NULL);
	sqlite3_bind_int64(s, 12, wall_clock_ns());
	sqlite3_bind_int64(s, 13, recorder->hashes ? (int64_t)hash_pool_refused(recorder->hashes)
						  : (int64_t)recorder->hashes_refused);
	/* What a crash now would lose: events queued behind this batch. */
	pthread_mutex_lock(&recorder->queue_lock);
	int64_t queued = (int64_t)recorder->queue_length;
	pthread_mutex_unlock(&recorder->queue_lock);
	sqlite3_bind_int64(s, 14, queued);
	return run(s);
}

/* ---- rows on demand ------------------------------------------------------------ */

static int
ensure_run(struct run_info *run_info)
{
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;

	if (run_info == NULL || run_info->store_id)
		return SQLITE_DONE;
	s = statement(INSERT_RUN);
	bind_text(s, 1, run_info->uuid);
	bind_text(s, 2, run_info->job_name ? run_info->job_name : "unknown");
	bind_text(s, 3, run_info->named_by);
	bind_text(s, 4, current->host);
	sqlite3_bind_int(s, 5, run_info->root_pid);
	sqlite3_bind_int64(s, 6, run_info->root_start_ns);
	sqlite3_bind_int64(s, 7, run_info->started_ns);
	bind_text(s, 8, run_info->parent_namespace);
	bind_text(s, 9, run_info->parent_job_name);
	bind_text(s, 10, run_info->parent_run_id);
	bind_text(s, 11, run_info->root_parent_namespace);
	bind_text(s, 12, run_info->root_parent_job_name);
	bind_text(s, 13, run_info->root_parent_run_id);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	s = statement(SELECT_RUN);
	bind_text(s, 1, run_info->uuid);
	run_info->store_id = select_integer(s, &rc);
	journal_id(&run_info->store_id);
	if (rc == SQLITE_DONE) /* its START is spooled, unless the outbox has it */
		openlineage_outbox_start(run_info->store_id);
	return rc;
}

static int
ensure_process(struct process_info *image, int depth)
{
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;

	if (image == NULL || image->store_id)
		return SQLITE_DONE;
	if (depth < 128) {
		if ((rc = ensure_process(image->parent, depth + 1)) != SQLITE_DONE ||
		    (rc = ensure_process(image->previous, depth + 1)) != SQLITE_DONE)
			return rc;
	}
	if ((rc = ensure_run(image->run)) != SQLITE_DONE)
		return rc;
	s = statement(INSERT_PROCESS);
	bind_text(s, 1, current->host);
	sqlite3_bind_int(s, 2, image->pid);
	sqlite3_bind_int64(s, 3, image->start_ns);
	sqlite3_bind_int(s, 4, image->exec_index);
	bind_id(s, 5, image->parent ? image->parent->store_id : 0);
	bind_id(s, 6, image->previous ? image->previous->store_id : 0);
	bind_id(s, 7, image->run ? image->run->store_id : 0);
	sqlite3_bind_int64(s, 8, current->mount_session_id);
	char hash[33] = "";
	int verdict = current->processes
			  ? process_table_executable_verdict(current->processes, image, hash)
			  : -1;
	bind_text(s, 9, image->executable);
	bind_text(s, 10, image->executable_hash[0] ? image->executable_hash
			 : verdict == 1		  ? hash
						  : NULL);
	if (image->argv)
		sqlite3_bind_blob(s, 11, image->argv, (int)image->argv_length, SQLITE_TRANSIENT);
	else
		sqlite3_bind_blob(s, 11, "", 0, SQLITE_STATIC);
	bind_text(s, 12, image->cwd);
	sqlite3_bind_int64(s, 13, image->uid);
	sqlite3_bind_int64(s, 14, image->gid);
	sqlite3_bind_int(s, 15, image->session_id);
	bind_text(s, 16, image->cgroup);
	sqlite3_bind_int64(s, 17, image->seen_ns);
	sqlite3_bind_int64(s, 18, (int64_t)image->kernel_id);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	s = statement(SELECT_PROCESS);
	bind_text(s, 1, current->host);
	sqlite3_bind_int(s, 2, image->pid);
	sqlite3_bind_int64(s, 3, image->start_ns);
	sqlite3_bind_int(s, 4, image->exec_index);
	sqlite3_bind_int64(s, 5, (int64_t)image->kernel_id);
	image->store_id = select_integer(s, &rc);
	journal_id(&image->store_id);
	/* Only a START waits for it: without one, the hash's event will do. */
	if (rc == SQLITE_DONE && verdict == 0 && !image->executable_hash[0] &&
	    openlineage_outbox_enabled())
		hashing_add(image);
	return rc;
}

/* Before a flush: the images whose hash is now known, or never will be, go. */
static int
hashing_settle(void)
{
	int64_t now = monotonic_ns();
	size_t kept = 0;
	int rc = SQLITE_DONE;

	for (size_t i = 0; i < hashing_count; i++) {
		struct hashing_image *entry = &hashing[i];
		char hash[33];
		int verdict = process_table_executable_verdict(current->processes, entry->image, hash);
		if (verdict == 1 && entry->image->store_id && rc == SQLITE_DONE) {
			/* The event that will say so may still be queued. */
			sqlite3_stmt *s = statement(UPDATE_PROCESS_HASH);
			bind_text(s, 1, hash);
			sqlite3_bind_int64(s, 2, entry->image->store_id);
			rc = run(s);
		}
		if (verdict != 0 || now - entry->since_ns >= OPENLINEAGE_EXECUTABLE_WAIT_NS) {
			process_info_release(entry->image);
			continue;
		}
		hashing[kept++] = *entry;
	}
	hashing_count = kept;
	return rc;
}

/* The newest version of file, from columns first to first + 4 of s's row:
 * id, number, size, mtime_ns, ctime_ns. */
static void
set_latest_version(struct file_state *file, sqlite3_stmt *s, int first)
{
	file->latest_version_id = sqlite3_column_int64(s, first);
	file->latest_number = sqlite3_column_int64(s, first + 1);
	file->latest_stamp = (struct stamp){.size = sqlite3_column_int64(s, first + 2),
					    .mtime_ns = sqlite3_column_int64(s, first + 3),
					    .ctime_ns = sqlite3_column_int64(s, first + 4),
					    .inode = file->inode};
}

/* The values of a new files row, as INSERT_FILE and INSERT_NEW_FILE take them. */
static void
bind_file_row(sqlite3_stmt *s, const struct file_state *file, const char *path, int64_t time_ns)
{
	bind_text(s, 1, current->host);
	sqlite3_bind_int64(s, 2, (int64_t)file->device);
	sqlite3_bind_int64(s, 3, (int64_t)file->inode);
	sqlite3_bind_int64(s, 4, (int64_t)file->generation);
	bind_text(s, 5, current->backing_dir);
	bind_text(s, 6, path ? path : "");
	sqlite3_bind_int64(s, 7, time_ns);
}

/*
 * The file row, and path recorded as one of its current names; with
 * nameless, path is the name the file last had (it has none now): a new
 * row takes it, marked removed, and no name is recorded.
 */
static int
ensure_file(struct file_state *file, const char *path, int64_t time_ns, const char *how,
	    bool nameless)
{
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;
	bool inserted = false;
	bool row_says_path = false; /* the row's path is path, and it is not removed */
	bool name_checked = false, name_current = false; /* path among its current names */

	journal_file(file);
	if (file->store_id == 0 && how && strcmp(how, "create") == 0) {
		s = statement(INSERT_NEW_FILE);
		bind_file_row(s, file, path, time_ns);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
		if (sqlite3_changes(db()) > 0) {
			file->store_id = sqlite3_last_insert_rowid(db());
			inserted = true;
		}
	}
	if (file->store_id == 0) {
		s = statement(SELECT_FILE);
		bind_text(s, 1, current->host);
		sqlite3_bind_int64(s, 2, (int64_t)file->device);
		sqlite3_bind_int64(s, 3, (int64_t)file->inode);
		sqlite3_bind_int64(s, 4, (int64_t)file->generation);
		bind_text(s, 5, path ? path : "");
		bind_text(s, 6, current->backing_dir);
		rc = sqlite3_step(s);
		if (rc == SQLITE_ROW) {
			file->store_id = sqlite3_column_int64(s, 0);
			row_says_path = path && sqlite3_column_int(s, 1) == 1;
			name_checked = path != NULL;
			name_current = sqlite3_column_int(s, 2) == 1;
			if (sqlite3_column_type(s, 3) != SQLITE_NULL)
				set_latest_version(file, s, 3);
			rc = SQLITE_DONE;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return rc;
		if (file->store_id == 0) {
			s = statement(INSERT_FILE);
			bind_file_row(s, file, path, time_ns);
			if ((rc = run(s)) != SQLITE_DONE)
				return rc;
			file->store_id = sqlite3_last_insert_rowid(db());
			inserted = true;
			if (nameless) {
				s = statement(MARK_FILE_REMOVED);
				sqlite3_bind_int64(s, 1, time_ns);
				sqlite3_bind_int64(s, 2, file->store_id);
				if ((rc = run(s)) != SQLITE_DONE)
					return rc;
			}
		}
	}
	if (nameless)
		return rc;
	if (path && (file->recorded_path == NULL || strcmp(file->recorded_path, path) != 0)) {
		bool known = name_current;
		if (!inserted && !name_checked) {
			s = statement(SELECT_CURRENT_NAME);
			sqlite3_bind_int64(s, 1, file->store_id);
			bind_text(s, 2, current->backing_dir);
			bind_text(s, 3, path);
			known = select_integer(s, &rc) != 0;
		}
		if (!known && rc == SQLITE_DONE) {
			s = statement(INSERT_NAME);
			sqlite3_bind_int64(s, 1, file->store_id);
			bind_text(s, 2, current->backing_dir);
			bind_text(s, 3, path);
			sqlite3_bind_int64(s, 4, time_ns);
			bind_text(s, 5, how);
			rc = run(s);
		}
		if (rc == SQLITE_DONE && !inserted && !row_says_path) {
			s = statement(UPDATE_FILE_PATH);
			bind_text(s, 1, path);
			sqlite3_bind_int64(s, 2, file->store_id);
			rc = run(s);
		}
		free(file->recorded_path);
		file->recorded_path = strdup(path);
	}
	return rc;
}

static int64_t
insert_version(struct file_state *file, const struct stamp *stamp, const char *hash,
	       const char *hash_state, const char *origin, int64_t producer_id, int64_t time_ns,
	       int *rc)
{
	sqlite3_stmt *s = statement(INSERT_VERSION);

	/* Its cached latest version moves with this row (a scratch state on
	 * the stack, which no table holds, has nothing cached to undo). */
	if (atomic_load(&file->references) > 0)
		journal_file(file);
	sqlite3_bind_int64(s, 1, file->store_id);
	sqlite3_bind_int64(s, 2, file->latest_number + 1);
	sqlite3_bind_int64(s, 3, stamp->size);
	sqlite3_bind_int64(s, 4, stamp->mtime_ns);
	sqlite3_bind_int64(s, 5, stamp->ctime_ns);
	bind_text(s, 6, hash && hash[0] ? hash : NULL);
	bind_text(s, 7, hash_state);
	bind_text(s, 8, origin);
	bind_id(s, 9, producer_id);
	sqlite3_bind_int64(s, 10, time_ns);
	/* A hash known at insert was streamed: taken from the writes as they passed. */
	bind_text(s, 11, hash && hash[0] ? "streamed" : NULL);
	if ((*rc = run(s)) != SQLITE_DONE)
		return 0;
	file->latest_version_id = sqlite3_last_insert_rowid(db());
	file->latest_number++;
	file->latest_stamp = *stamp;
	return file->latest_version_id;
}

static bool
same_stamp(const struct stamp *a, const struct stamp *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns;
}

static void
read_hash_done(void *argument, int result, const char *hex, const struct stat *before,
	       const struct stat *after)
{
	struct access *access = argument;
	struct stamp expected = access->open_stamp;

	/* A rename through the mount moves the ctime, not the content: the
	 * change counter stands for changes made through the mount. */
	if (before && after && before->st_ctim.tv_sec == after->st_ctim.tv_sec &&
	    before->st_ctim.tv_nsec == after->st_ctim.tv_nsec)
		expected.ctime_ns = (int64_t)before->st_ctim.tv_sec * 1000000000LL +
				    before->st_ctim.tv_nsec;
	const char *state = hash_outcome(result, &expected, before, after, access->file,
					 access->open_changes);
	if (state == NULL) {
		access_release(access);
		return;
	}
	struct event *event = event_new(EVENT_READ_HASH);
	event->access = access; /* the job's reference moves to the event */
	event->hash_state = state;
	if (strcmp(state, "hashed") == 0)
		snprintf(event->hash, sizeof(event->hash), "%s", hex);
	recorder_enqueue(access->recorder, event);
}

int
recorder_open_beneath(const struct recorder *recorder, const char *path, ino_t inode,
		      struct stat *st)
{
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
	int fd = (int)syscall(SYS_openat2, recorder->options.backing_fd, path, &how, sizeof(how));

	if (fd < 0)
		return -1;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || (inode && st->st_ino != inode)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int
open_beneath(const char *path, ino_t inode)
{
	struct stat st;

	return recorder_open_beneath(current, path, inode, &st);
}

/* A pool source for the file at path (inode), or NULL. */
static struct hash_source *
source_beneath(const char *path, ino_t inode)
{
	int fd = path ? open_beneath(path, inode) : -1;
	struct hash_source *source = NULL;

	if (fd >= 0) {
		source = hash_source_new(current->hashes, fd);
		close(fd);
	}
	return source;
}

/*
 * A reader given the version there was at its open, of a file changed
 * before it closed, reads the version the change makes (on_released): it
 * replaces the one it was given.  Only once its CLOSE is in the batch being applied,
 * which the release queued after setting it.
 */
static bool
take_later_read(struct access *access)
{
	struct version *later = access->version_read_later;

	if (later == NULL)
		return false;
	access->version_read_later = NULL;
	version_release(access->version_read);
	access->version_read = later;
	return true;
}

/*
 * A file without a version that was created through the mount: the record
 * of what its writers wrote was lost (the daemon was killed before their
 * close, while kernel passthrough still took their writes), so its content
 * is 'unrecorded', produced as far as the store knows by the process that
 * last opened it to write; never 'initial', which says it was there before
 * provfs.  *origin and *producer_id change only then.
 */
static int
lost_writer(const struct file_state *file, const char **origin, int64_t *producer_id)
{
	sqlite3_stmt *s = statement(SELECT_LOST_WRITER);
	int rc;

	sqlite3_bind_int64(s, 1, file->store_id);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		if (sqlite3_column_int(s, 0)) {
			*origin = "unrecorded";
			*producer_id = sqlite3_column_int64(s, 1); /* 0 when NULL */
		}
		rc = SQLITE_DONE;
	}
	sqlite3_reset(s);
	return rc;
}

/*
 * Which version did this read-open see?  The one its stamp names, or a new
 * one when the stamp is new.  A reader that opened while others were
 * writing reads what they complete: it waits in that version's readers
 * until it is recorded (apply_version) or abandoned (apply_abandoned, or
 * writer_version_forgotten when its event was lost with a batch).
 */
static int
resolve_read_version(struct access *access)
{
	struct file_state *file = access->file;
	struct version *upcoming = access->version_read;
	int rc = SQLITE_DONE;

	if (upcoming && upcoming->store_id) {
		access->read_version_id = upcoming->store_id;
		return SQLITE_DONE;
	}
	if (upcoming && !upcoming->abandoned) {
		struct access **grown = realloc(upcoming->readers,
						(upcoming->reader_count + 1) * sizeof(*grown));
		if (grown == NULL)
			abort();
		upcoming->readers = grown;
		atomic_fetch_add(&access->references, 1);
		grown[upcoming->reader_count++] = access;
		return SQLITE_DONE;
	}
	if (file->latest_version_id && same_stamp(&file->latest_stamp, &access->open_stamp)) {
		access->read_version_id = file->latest_version_id;
	} else {
		/*
		 * Content written through the mount whose row the store lost
		 * (it failed, say full, when the version's batch came) is no
		 * change made outside provfs: 'unrecorded', with its producer.
		 */
		struct version *lost = upcoming && upcoming->lost &&
						       same_stamp(&upcoming->stamp, &access->open_stamp)
					       ? upcoming
					       : NULL;
		const char *origin = lost			 ? "unrecorded"
				     : file->latest_version_id ? "external"
							       : "initial";
		int64_t producer_id = 0;
		if (lost && lost->producer) {
			if ((rc = ensure_process(lost->producer, 0)) != SQLITE_DONE)
				return rc;
			producer_id = lost->producer->store_id;
		} else if (!lost && file->latest_version_id == 0 &&
			   (rc = lost_writer(file, &origin, &producer_id)) != SQLITE_DONE) {
			return rc;
		}
		access->read_version_id = insert_version(file, &access->open_stamp, NULL,
							 "pending", origin, producer_id,
							 access->opened_ns, &rc);
		if (rc != SQLITE_DONE)
			return rc;
		struct hash_source *source = access->hash_source;
		access->hash_source = NULL;
		if (source == NULL)
			source = source_beneath(access->path, access->file->inode);
		atomic_fetch_add(&access->references, 1);
		defer_hash(file->device, file->inode, source, read_hash_done, access);
		if (strcmp(origin, "external") == 0)
			log_info("'%s' changed outside provfs (version %lld)", access->path,
				 (long long)file->latest_number);
	}
	hash_source_free(access->hash_source);
	access->hash_source = NULL;
	struct version *forgotten = NULL;
	pthread_mutex_lock(&file->lock);
	if (!upcoming && !file->dirty && file->writers == 0 &&
	    change_mark(file) == access->open_changes) {
		file->stamp_known = true;
		file->known_stamp = access->open_stamp;
		forgotten = file->known_version; /* a row of the store now */
		file->known_version = NULL;
	}
	pthread_mutex_unlock(&file->lock);
	version_release(forgotten);
	return rc;
}

/* A reader resolved after its OPEN (and maybe its CLOSE) was applied. */
static int
set_read_version(struct access *reader)
{
	sqlite3_stmt *s;

	if (reader->store_id == 0 || reader->read_version_id == 0)
		return SQLITE_DONE;
	/* The rule of apply_close: a handle that wrote but read nothing was no input. */
	if (atomic_load(&reader->bytes_written) > 0 && atomic_load(&reader->bytes_read) == 0)
		return SQLITE_DONE;
	s = statement(SET_READ_VERSION);
	sqlite3_bind_int64(s, 1, reader->read_version_id);
	sqlite3_bind_int64(s, 2, reader->store_id);
	return run(s);
}

static void
drop_readers(struct version *version)
{
	for (size_t i = 0; i < version->reader_count; i++)
		access_release(version->readers[i]);
	free(version->readers);
	version->readers = NULL;
	version->reader_count = 0;
}

/*
 * What the close of access reports, bound from column first on: the close
 * time, bytes and calls read and written, and the version read when the
 * handle was an input.
 */
static void
bind_close(sqlite3_stmt *s, int first, struct access *access)
{
	uint64_t bytes_read = atomic_load(&access->bytes_read);
	uint64_t bytes_written = atomic_load(&access->bytes_written);
	/* A read-write handle that wrote but read nothing was no input.  A
	 * passthrough handle's counts are unknown (NULL): it may have read. */
	bool input = access->read_version_id &&
		     (access->bypass || bytes_written == 0 || bytes_read > 0);

	sqlite3_bind_int64(s, first, access->closed_ns);
	if (access->bypass) {
		for (int column = first + 1; column <= first + 4; column++)
			sqlite3_bind_null(s, column);
	} else {
		sqlite3_bind_int64(s, first + 1, (int64_t)bytes_read);
		sqlite3_bind_int64(s, first + 2, (int64_t)bytes_written);
		sqlite3_bind_int64(s, first + 3, (int64_t)atomic_load(&access->read_calls));
		sqlite3_bind_int64(s, first + 4, (int64_t)atomic_load(&access->write_calls));
	}
	bind_id(s, first + 5, input ? access->read_version_id : 0);
}

/* Columns first to first + 6 of a new accesses row: what its open says. */
static void
bind_opened_at(sqlite3_stmt *s, int first, const struct access *access, int64_t process_id)
{
	sqlite3_bind_int64(s, first, process_id);
	sqlite3_bind_int64(s, first + 1, access->file->store_id);
	sqlite3_bind_int64(s, first + 2, current->mount_session_id);
	/* The access outlives the statement's step and reset: no copy. */
	if (access->path)
		sqlite3_bind_text(s, first + 3, access->path, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(s, first + 3);
	sqlite3_bind_int(s, first + 4, access->flags);
	sqlite3_bind_int(s, first + 5, access->is_exec);
	sqlite3_bind_int64(s, first + 6, access->opened_ns);
}

static void
bind_opened(sqlite3_stmt *s, const struct access *access, int64_t process_id)
{
	bind_opened_at(s, 1, access, process_id);
}

/* Was the event whose batch number is at batch queued in the batch applied? */
static bool
batch_holds(const atomic_uint_fast64_t *batch)
{
	return atomic_load_explicit(batch, memory_order_relaxed) == batch_serial;
}

/*
 * Does access's row wait for the version it wrote?  When its CLOSE and
 * that VERSION are both in this batch and it read nothing (no version
 * read to resolve), the row is written whole after the version's,
 * written_version_id included: one insert where an insert and an update
 * were (a created or rewritten file, closed within a flush interval).
 */
static bool
row_waits_for_version(const struct access *access)
{
	return access->store_id == 0 && batch_holds(&access->close_batch) &&
	       batch_holds(&access->version_batch) && !access->reads;
}

/* INSERT_CLOSED_ACCESS with rows rows; NULL when it cannot be prepared. */
static sqlite3_stmt *
closed_accesses_statement(size_t rows)
{
	static const char row[] = "(?,?,?,?,?,?,?,?,?,?,?,?,?)";
	const char *single = statement_sql[INSERT_CLOSED_ACCESS];
	const char *values = strstr(single, "VALUES ");

	if (insert_closed_accesses[rows])
		return insert_closed_accesses[rows];
	size_t prefix = (size_t)(values - single) + strlen("VALUES ");
	size_t size = prefix + rows * sizeof(row) + 1;
	char *sql = malloc(size), *end;
	if (sql == NULL)
		return NULL;
	memcpy(sql, single, prefix);
	end = sql + prefix;
	for (size_t i = 0; i < rows; i++)
		end += sprintf(end, "%s%s", i ? "," : "", row);
	if (sqlite3_prepare_v3(db(), sql, -1, SQLITE_PREPARE_PERSISTENT,
			       &insert_closed_accesses[rows], NULL) != SQLITE_OK)
		insert_closed_accesses[rows] = NULL;
	free(sql);
	return insert_closed_accesses[rows];
}

/* Insert the closed rows that wait (pending_accesses) and give them their ids. */
static int
flush_pending_accesses(void)
{
	size_t count = pending_access_count;
	int rc;

	if (count == 0)
		return SQLITE_DONE;
	sqlite3_stmt *s = closed_accesses_statement(count);
	if (s == NULL)
		return sqlite3_errcode(db()) != SQLITE_OK ? sqlite3_errcode(db()) : SQLITE_NOMEM;
	sqlite3_reset(s); /* every parameter is bound below */
	for (size_t i = 0; i < count; i++) {
		int first = (int)i * CLOSED_ACCESS_COLUMNS + 1;
		bind_opened_at(s, first, pending_accesses[i].access, pending_accesses[i].process_id);
		bind_close(s, first + 7, pending_accesses[i].access);
	}
	rc = run(s);
	int64_t last = sqlite3_last_insert_rowid(db());
	for (size_t i = 0; i < count; i++) {
		struct access *access = pending_accesses[i].access;
		access->row_pending = false;
		if (rc == SQLITE_DONE)
			access->store_id = last - (int64_t)(count - 1 - i);
	}
	pending_access_count = 0;
	return rc;
}

/* The transaction rolls back: the rows that waited will not be written. */
static void
discard_pending_accesses(void)
{
	for (size_t i = 0; i < pending_access_count; i++)
		pending_accesses[i].access->row_pending = false;
	pending_access_count = 0;
}

/*
 * The row of access, inserted on demand.  closed: its CLOSE event is in
 * this batch, so the row is written whole, one statement where an insert
 * and an update were (most handles live less than a batch).  Not when the
 * version it read is yet to be recorded (it waits among that version's
 * readers, whose row comes later in the batch) or when the image that
 * closed it has no row yet (made at the CLOSE, in the order of events):
 * then the CLOSE updates the row as usual.  Either way the row ends the
 * same.
 */
static int
insert_access(struct access *access, bool closed)
{
	sqlite3_stmt *s;
	int rc;
	bool resolved = false;

	if (access->store_id || access->row_pending)
		return SQLITE_DONE;
	if (closed)
		take_later_read(access);
	if ((rc = ensure_process(access->process, 0)) != SQLITE_DONE ||
	    (rc = ensure_file(access->file, access->path, access->opened_ns,
			      access->created ? "create" : "seen", access->nameless)) != SQLITE_DONE)
		return rc;
	journal_id(&access->store_id);
	journal_id(&access->read_version_id);
	if (row_waits_for_version(access))
		return SQLITE_DONE; /* its file and name rows are there: the version needs them */
	closed = closed && (access->last_image == NULL || access->last_image->store_id);
	if (closed && access->reads) {
		/* The version read first: its row, if new, before this one. */
		if ((rc = resolve_read_version(access)) != SQLITE_DONE)
			return rc;
		resolved = true;
		struct version *upcoming = access->version_read;
		closed = !(upcoming && upcoming->store_id == 0 && !upcoming->abandoned);
	}
	if (closed) {
		/* Its read version resolved (or none): nothing else to do. */
		pending_accesses[pending_access_count++] = (struct pending_access){
			.access = access,
			.process_id = access->last_image ? access->last_image->store_id
							 : access->process->store_id};
		access->row_pending = true;
		access->closed_in_row = true;
		return pending_access_count == ACCESS_ROWS_PER_INSERT ? flush_pending_accesses()
								      : SQLITE_DONE;
	}
	s = statement(INSERT_ACCESS);
	bind_opened(s, access, access->process->store_id);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	access->store_id = sqlite3_last_insert_rowid(db());
	access->closed_in_row = false;
	if (access->reads && !resolved)
		rc = resolve_read_version(access);
	return rc;
}

static int
ensure_access(struct access *access)
{
	return insert_access(access, false);
}

static int
apply_close(struct event *event)
{
	struct access *access = event->access;
	sqlite3_stmt *s;
	int rc;

	if ((rc = ensure_access(access)) != SQLITE_DONE)
		return rc;
	if (access->closed_in_row)
		return SQLITE_DONE; /* inserted closed at its OPEN, in this batch */
	if (take_later_read(access)) {
		/* Its row named the version there was at its open; the close
		 * binds the one it read instead, or its row waits for it. */
		access->read_version_id = 0;
		if ((rc = resolve_read_version(access)) != SQLITE_DONE)
			return rc;
		journal_id(&access->read_version_id);
	}
	if (row_waits_for_version(access)) /* inserted closed with its version */
		return ensure_process(access->last_image, 0);
	if ((rc = ensure_process(access->last_image, 0)) != SQLITE_DONE)
		return rc;
	s = statement(CLOSE_ACCESS);
	bind_close(s, 1, access);
	bind_id(s, 7, access->last_image ? access->last_image->store_id : 0);
	sqlite3_bind_int64(s, 8, access->store_id);
	return run(s);
}

/* The whole row of access, a writer of version_id (row_waits_for_version). */
static int
insert_written_access(struct access *access, int64_t version_id)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = ensure_process(access->last_image, 0)) != SQLITE_DONE)
		return rc;
	s = statement(INSERT_WRITTEN_ACCESS);
	bind_opened(s, access, access->last_image ? access->last_image->store_id
						  : access->process->store_id);
	bind_close(s, 8, access);
	sqlite3_bind_int64(s, 14, version_id);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	access->store_id = sqlite3_last_insert_rowid(db());
	access->closed_in_row = true;
	return SQLITE_DONE;
}

static bool
is_writer_of(const struct version *version, const struct access *access)
{
	for (size_t i = 0; i < version->writer_count; i++)
		if (version->writers[i] == access)
			return true;
	return false;
}

/* A version completed by its last writer's close: the row, its writers, its readers. */
static int
apply_version(struct event *event)
{
	struct version *version = event->version;
	sqlite3_stmt *s;
	int rc;

	if ((rc = ensure_process(version->producer, 0)) != SQLITE_DONE)
		return rc;
	for (size_t i = 0; i < version->writer_count; i++)
		if (version->writers[i]->process &&
		    (rc = ensure_access(version->writers[i])) != SQLITE_DONE)
			return rc;
	if ((rc = ensure_file(version->file, NULL, event->time_ns, "seen", false)) != SQLITE_DONE)
		return rc;
	if (version->times_moved) { /* by a setattr applied before this row */
		version->stamp.mtime_ns = version->moved_mtime_ns;
		version->stamp.ctime_ns = version->moved_ctime_ns;
	}
	version->store_id = insert_version(version->file, &version->stamp, version->hash,
					   version->hash[0] ? "hashed" : "pending", "written",
					   version->producer ? version->producer->store_id : 0,
					   event->time_ns, &rc);
	if (rc != SQLITE_DONE)
		return rc;
	journal_id(&version->store_id);
	if (version->hash[0] == '\0') {
		atomic_fetch_add(&version->references, 1); /* the job's */
		defer_hash(version->file->device, version->file->inode, version->hash_source,
			   version_hash_done, version);
		version->hash_source = NULL;
	}
	for (size_t i = 0; i < version->writer_count; i++) {
		struct access *writer = version->writers[i];
		if (writer->process && row_waits_for_version(writer)) {
			if ((rc = insert_written_access(writer, version->store_id)) != SQLITE_DONE)
				return rc;
			continue;
		}
		if (writer->store_id == 0)
			continue;
		s = statement(SET_WRITTEN_VERSION);
		sqlite3_bind_int64(s, 1, version->store_id);
		sqlite3_bind_int64(s, 2, version->writers[i]->store_id);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
	}
	for (size_t i = 0; i < version->reader_count; i++) {
		struct access *reader = version->readers[i];
		if (is_writer_of(version, reader))
			continue; /* it read (partly) what it wrote */
		reader->read_version_id = version->store_id;
		journal_id(&reader->read_version_id);
		if ((rc = set_read_version(reader)) != SQLITE_DONE)
			return rc;
	}
	drop_readers(version);
	return SQLITE_DONE;
}

/* Writers closed without changing the file: its readers read what was there. */
static int
apply_abandoned(struct event *event)
{
	struct version *version = event->version;
	int rc = SQLITE_DONE;

	version->abandoned = true;
	for (size_t i = 0; i < version->reader_count && rc == SQLITE_DONE; i++) {
		struct access *reader = version->readers[i];
		if (reader->store_id == 0)
			continue;
		if ((rc = resolve_read_version(reader)) == SQLITE_DONE) {
			journal_id(&reader->read_version_id);
			rc = set_read_version(reader);
		}
	}
	drop_readers(version);
	return rc;
}

/*
 * A batch the store lost held events of versions whose rows will never be
 * written: a completed version (EVENT_VERSION) or an abandoned one.  Their
 * readers were waiting for those rows; nothing else will release them, and
 * each reader refers back to its version, so the pair would never be freed.
 * Readers already waiting keep no read version (they are part of the
 * loss); a reader that opens later resolves by the stamp it saw, as if the
 * version had been abandoned.  Called for every event of a lost batch,
 * also one rolled back after it was partly applied.
 */
void
writer_batch_lost(struct event *batch)
{
	for (struct event *event = batch; event; event = event->next) {
		if (event->kind == EVENT_VERSION)
			event->version->lost = true;
		if (event->kind == EVENT_VERSION || event->kind == EVENT_ABANDONED)
			writer_version_forgotten(event->version);
	}
}

/* version will never have a row: let go of its readers, wait for it no more. */
void
writer_version_forgotten(struct version *version)
{
	version->abandoned = true;
	drop_readers(version);
}

static int
update_version_hash(int64_t version_id, const char *hash, const char *state)
{
	sqlite3_stmt *s;

	if (version_id == 0)
		return SQLITE_DONE;
	s = statement(UPDATE_VERSION_HASH);
	bind_text(s, 1, hash[0] ? hash : NULL);
	bind_text(s, 2, state);
	sqlite3_bind_int64(s, 3, version_id);
	return run(s);
}

/* A version an earlier daemon left pending, unless settled meanwhile. */
static int
apply_resumed_hash(const struct event *event)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db(),
			       "UPDATE versions SET hash = ?1, hash_state = ?2, hash_method = CASE "
			       "WHEN ?1 IS NULL THEN NULL ELSE 'reread' END WHERE id = ?3 AND "
			       "hash_state = 'pending'",
			       -1, &s, NULL) != SQLITE_OK)
		return sqlite3_errcode(db());
	bind_text(s, 1, event->hash[0] ? event->hash : NULL);
	bind_text(s, 2, event->hash_state);
	sqlite3_bind_int64(s, 3, event->version_id);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc;
}

static const char *
change_kind(const struct event *event)
{
	switch (event->change) {
	case FS_CHANGE_CREATE: return "create";
	case FS_CHANGE_UNLINK: return "unlink";
	case FS_CHANGE_RENAME: return (event->flags & RENAME_EXCHANGE) ? "exchange" : "rename";
	case FS_CHANGE_LINK: return "link";
	case FS_CHANGE_TRUNCATE: return "truncate";
	case FS_CHANGE_CHMOD: return "chmod";
	case FS_CHANGE_CHOWN: return "chown";
	case FS_CHANGE_TIMES: return "times";
	case FS_CHANGE_XATTR: return "xattr";
	}
	return "unknown";
}

/* End the current names of path at time_ns: one, unless records were lost. */
static int
close_name(const char *path, int64_t time_ns)
{
	sqlite3_stmt *s = statement(SELECT_CURRENT_NAMES);
	int64_t ids[8]; /* a pass's worth: lost records rarely leave more */
	const size_t per_pass = sizeof(ids) / sizeof(ids[0]);
	size_t count;
	int rc;

	do {
		/* Ids first: updating rows of the index the search walks would
		 * move the search. */
		bind_text(s, 1, current->backing_dir);
		bind_text(s, 2, path);
		for (count = 0; count < per_pass && (rc = sqlite3_step(s)) == SQLITE_ROW;)
			ids[count++] = sqlite3_column_int64(s, 0);
		bool more = count == per_pass;
		sqlite3_reset(s);
		if (!more && rc != SQLITE_DONE)
			return rc;
		sqlite3_stmt *end_name = statement(CLOSE_NAME);
		for (size_t i = 0; i < count; i++) {
			sqlite3_bind_int64(end_name, 1, time_ns);
			sqlite3_bind_int64(end_name, 2, ids[i]);
			if ((rc = run(end_name)) != SQLITE_DONE)
				return rc;
		}
		if (!more)
			return SQLITE_DONE;
	} while (true);
}

/* Move the current name from to to (and every name beneath it, for a directory). */
static int
rename_names(int64_t file_id, const char *from, const char *to, int64_t time_ns,
	     bool directory)
{
	sqlite3_stmt *s;
	int rc;

	if ((rc = close_name(to, time_ns)) != SQLITE_DONE) /* whatever was there is replaced */
		return rc;
	if ((rc = close_name(from, time_ns)) != SQLITE_DONE)
		return rc;
	if (file_id) {
		s = statement(INSERT_NAME);
		sqlite3_bind_int64(s, 1, file_id);
		bind_text(s, 2, current->backing_dir);
		bind_text(s, 3, to);
		sqlite3_bind_int64(s, 4, time_ns);
		bind_text(s, 5, "rename");
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
		s = statement(UPDATE_FILE_PATH);
		bind_text(s, 1, to);
		sqlite3_bind_int64(s, 2, file_id);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
	}
	if (!directory)
		return SQLITE_DONE;
	s = statement(COPY_NAMES_UNDER);
	sqlite3_bind_int64(s, 1, time_ns);
	bind_text(s, 2, current->backing_dir);
	bind_text(s, 3, from);
	bind_text(s, 4, to);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	s = statement(UPDATE_PATHS_UNDER);
	bind_text(s, 1, current->backing_dir);
	bind_text(s, 2, from);
	bind_text(s, 3, to);
	if ((rc = run(s)) != SQLITE_DONE)
		return rc;
	s = statement(CLOSE_NAMES_UNDER);
	sqlite3_bind_int64(s, 1, time_ns);
	bind_text(s, 2, current->backing_dir);
	bind_text(s, 3, from);
	return run(s);
}

/*
 * renameat2(RENAME_EXCHANGE): first and second trade what they name, a file
 * or a directory and every name beneath it, at time_ns.  Neither name is
 * ever free, so each file keeps a current name throughout.
 */
static int
exchange_names(const char *first, const char *second, int64_t time_ns)
{
	const char *names[2] = {first, second};
	struct {
		int64_t name_id, file_id;
	} held[2][8]; /* what each name names: one file, unless records were lost */
	size_t count[2] = {0, 0};
	char temporary[64];
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;

	/* Both names' files first, before either name changes. */
	for (int way = 0; way < 2; way++) {
		s = statement(SELECT_CURRENT_NAME_FILES);
		bind_text(s, 1, current->backing_dir);
		bind_text(s, 2, names[way]);
		while (count[way] < 8 && (rc = sqlite3_step(s)) == SQLITE_ROW) {
			held[way][count[way]].name_id = sqlite3_column_int64(s, 0);
			held[way][count[way]].file_id = sqlite3_column_int64(s, 1);
			count[way]++;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return rc;
	}
	for (int way = 0; way < 2; way++) {
		for (size_t i = 0; i < count[way]; i++) {
			s = statement(CLOSE_NAME);
			sqlite3_bind_int64(s, 1, time_ns);
			sqlite3_bind_int64(s, 2, held[way][i].name_id);
			if ((rc = run(s)) != SQLITE_DONE)
				return rc;
			s = statement(INSERT_NAME);
			sqlite3_bind_int64(s, 1, held[way][i].file_id);
			bind_text(s, 2, current->backing_dir);
			bind_text(s, 3, names[!way]);
			sqlite3_bind_int64(s, 4, time_ns);
			bind_text(s, 5, "rename");
			if ((rc = run(s)) != SQLITE_DONE)
				return rc;
			s = statement(UPDATE_FILE_PATH);
			bind_text(s, 1, names[!way]);
			sqlite3_bind_int64(s, 2, held[way][i].file_id);
			if ((rc = run(s)) != SQLITE_DONE)
				return rc;
		}
	}
	/* Beneath them, when they are directories: each way (names older
	 * than the exchange only), then the old ones closed. */
	for (int way = 0; way < 2; way++) {
		s = statement(COPY_NAMES_UNDER);
		sqlite3_bind_int64(s, 1, time_ns);
		bind_text(s, 2, current->backing_dir);
		bind_text(s, 3, names[way]);
		bind_text(s, 4, names[!way]);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
	}
	for (int way = 0; way < 2; way++) {
		s = statement(CLOSE_NAMES_UNDER);
		sqlite3_bind_int64(s, 1, time_ns);
		bind_text(s, 2, current->backing_dir);
		bind_text(s, 3, names[way]);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
	}
	/* Their files' last known paths, through a name no file has. */
	snprintf(temporary, sizeof(temporary), "\x01provfs-exchange-%lld", (long long)time_ns);
	const char *moves[3][2] = {{first, temporary}, {second, first}, {temporary, second}};
	for (int i = 0; i < 3; i++) {
		s = statement(UPDATE_PATHS_UNDER);
		bind_text(s, 1, current->backing_dir);
		bind_text(s, 2, moves[i][0]);
		bind_text(s, 3, moves[i][1]);
		if ((rc = run(s)) != SQLITE_DONE)
			return rc;
	}
	return SQLITE_DONE;
}

/*
 * After a change made through provfs: a metadata change moves the latest
 * version's ctime along; a truncate that no open handle covers is a new
 * version, produced by the process that truncated.
 */
static int
follow_content(struct event *event, int64_t file_id)
{
	sqlite3_stmt *s;
	int64_t version_id = 0, number = 0, size = -1, mtime_ns = 0, ctime_ns = 0;
	int rc = SQLITE_DONE;

	/* An unlink moves the ctime of a file that lives on under another name. */
	if (event->change == FS_CHANGE_CREATE ||
	    (event->change == FS_CHANGE_UNLINK && !event->before_known))
		return SQLITE_DONE;

	/* The writer's cached view of the file must move along with the rows. */
	struct file_state *cached = event->file ? file_state_acquire(event->file) : NULL;
	if (cached && cached->store_id != file_id) {
		file_state_release(cached);
		cached = NULL;
	}
	if (cached) {
		/*
		 * A file state with a row holds its latest version as this
		 * writer, the only one that adds versions, left it (loaded
		 * with the row, moved by every insert, forgotten by a
		 * rollback); prune keeps every file's latest version.  A
		 * tar's chown, chmod and utimensat of each file it extracts
		 * need no search of the versions table.
		 */
		version_id = cached->latest_version_id;
		number = cached->latest_number;
		if (version_id) {
			size = cached->latest_stamp.size;
			mtime_ns = cached->latest_stamp.mtime_ns;
			ctime_ns = cached->latest_stamp.ctime_ns;
		}
	} else {
		s = statement(SELECT_LATEST_FOR_FILE);
		sqlite3_bind_int64(s, 1, file_id);
		int step = sqlite3_step(s);
		if (step == SQLITE_ROW) {
			version_id = sqlite3_column_int64(s, 0);
			number = sqlite3_column_int64(s, 1);
			size = sqlite3_column_int64(s, 2);
			mtime_ns = sqlite3_column_int64(s, 3);
			ctime_ns = sqlite3_column_int64(s, 4);
		} else if (step != SQLITE_DONE) {
			rc = step;
		}
		sqlite3_reset(s);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (event->change == FS_CHANGE_TRUNCATE && event->truncated_closed) {
		static const char empty_hash[] = "99aa06d3014798d86001c324468d497f";
		struct file_state scratch = {.store_id = file_id, .latest_number = number};
		struct file_state *file = cached ? cached : &scratch;
		if (cached)
			journal_file(cached);
		int64_t id = insert_version(file, &event->stamp,
					    event->stamp.size == 0 ? empty_hash : NULL,
					    event->stamp.size == 0 ? "hashed" : "pending", "written",
					    event->process ? event->process->store_id : 0,
					    event->time_ns, &rc);
		if (rc != SQLITE_DONE || event->stamp.size == 0) {
			file_state_release(cached);
			return rc;
		}
		/* Hash the truncated content from the backing tree, in the pool. */
		s = statement(SELECT_FILE_PATH);
		sqlite3_bind_int64(s, 1, file_id);
		struct hash_source *source = NULL;
		if (sqlite3_step(s) == SQLITE_ROW)
			source = source_beneath((const char *)sqlite3_column_text(s, 0),
						event->inode);
		sqlite3_reset(s);
		struct version *version = calloc(1, sizeof(*version));
		if (version == NULL) {
			hash_source_free(source);
			file_state_release(cached);
			return SQLITE_DONE; /* stays 'pending': no hash is better than a wrong one */
		}
		atomic_init(&version->references, 1); /* the job's */
		version->recorder = current;
		version->stamp = event->stamp;
		version->store_id = id;
		/* The change counter, when the file had a state at the truncate. */
		if (cached && event->changes) {
			version->file = cached; /* the reference moves */
			version->changes = event->changes;
		} else {
			file_state_release(cached);
		}
		defer_hash(event->device, event->inode, source, version_hash_done, version);
		return SQLITE_DONE;
	}
	/*
	 * Only content known unchanged moves along: after a setattr, the
	 * attributes before it must be the version's (a touch must not hide a
	 * same-size change made outside provfs); otherwise size and mtime.
	 */
	bool unchanged = event->before_known
				 ? version_id && stamp_before_change(size, mtime_ns, ctime_ns,
								     &event->before, &event->stamp)
				 : event->change != FS_CHANGE_TIMES && size == event->stamp.size &&
					   mtime_ns == event->stamp.mtime_ns;
	/*
	 * The version the attributes before a setattr stand for may have no
	 * row yet: the close that made it was queued after the setattr.  Its
	 * row is written with the times after (apply_version).
	 */
	struct version *queued = event->version;
	if (!(version_id && unchanged) && queued && queued->store_id == 0 && event->before_known &&
	    stamp_before_change(queued->stamp.size,
				queued->times_moved ? queued->moved_mtime_ns : queued->stamp.mtime_ns,
				queued->times_moved ? queued->moved_ctime_ns : queued->stamp.ctime_ns,
				&event->before, &event->stamp)) {
		queued->times_moved = true;
		queued->moved_mtime_ns = event->stamp.mtime_ns;
		queued->moved_ctime_ns = event->stamp.ctime_ns;
		file_state_release(cached);
		return SQLITE_DONE;
	}
	if (version_id && unchanged) {
		if (cached && cached->latest_version_id == version_id) {
			/* Undone with the UPDATE if the batch rolls back. */
			journal_file(cached);
			cached->latest_stamp.mtime_ns = event->stamp.mtime_ns;
			cached->latest_stamp.ctime_ns = event->stamp.ctime_ns;
		}
		file_state_release(cached);
		s = statement(UPDATE_VERSION_TIMES);
		sqlite3_bind_int64(s, 1, event->stamp.mtime_ns);
		sqlite3_bind_int64(s, 2, event->stamp.ctime_ns);
		sqlite3_bind_int64(s, 3, version_id);
		return run(s);
	}
	file_state_release(cached);
	return SQLITE_DONE;
}

static int
apply_namespace(struct event *event)
{
	sqlite3_stmt *s;
	int rc = SQLITE_DONE;
	int64_t file_id;

	if (event->process && (rc = ensure_process(event->process, 0)) != SQLITE_DONE)
		return rc;
	/*
	 * The file the change was about: the table's state at the request
	 * (its row, or none when nothing of it was recorded), else the newest
	 * row of the inode's number.  Never the table's state now: the number
	 * may belong to a new file by then.  Only regular files have rows.
	 */
	file_id = event->file ? event->file->store_id : 0;
	if (event->file == NULL && event->is_regular) {
		s = statement(SELECT_FILE_BY_INODE);
		bind_text(s, 1, current->host);
		sqlite3_bind_int64(s, 2, (int64_t)event->device);
		sqlite3_bind_int64(s, 3, (int64_t)event->inode);
		file_id = select_integer(s, &rc);
		if (rc != SQLITE_DONE)
			return rc;
	}
	if (file_id == 0 && event->path == NULL && event->new_path == NULL)
		return SQLITE_DONE; /* attributes of something never recorded */

	if (event->change == FS_CHANGE_RENAME && event->path && event->new_path) {
		if (event->flags & RENAME_EXCHANGE) {
			rc = exchange_names(event->path, event->new_path, event->time_ns);
		} else {
			/* A rename over a name unlinks the file it named (git's
			 * config.lock over config): no longer in the tree, unless
			 * it has another name. */
			s = statement(MARK_REPLACED_REMOVED);
			sqlite3_bind_int64(s, 1, event->time_ns);
			bind_text(s, 2, current->backing_dir);
			bind_text(s, 3, event->new_path);
			if ((rc = run(s)) != SQLITE_DONE)
				return rc;
			rc = rename_names(file_id, event->path, event->new_path, event->time_ns,
					  event->is_directory);
		}
	} else if (event->change == FS_CHANGE_LINK && file_id && event->new_path) {
		/* The request names the inode, not a path: the event says the
		 * name the file was last known by. */
		if (event->path == NULL) {
			s = statement(SELECT_FILE_PATH);
			sqlite3_bind_int64(s, 1, file_id);
			if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0))
				event->path = strdup((const char *)sqlite3_column_text(s, 0));
			sqlite3_reset(s);
		}
		s = statement(INSERT_NAME);
		sqlite3_bind_int64(s, 1, file_id);
		bind_text(s, 2, current->backing_dir);
		bind_text(s, 3, event->new_path);
		sqlite3_bind_int64(s, 4, event->time_ns);
		bind_text(s, 5, "link");
		rc = run(s);
	} else if (event->change == FS_CHANGE_UNLINK && event->path) {
		rc = close_name(event->path, event->time_ns);
		if (rc == SQLITE_DONE && file_id) {
			s = statement(MARK_FILE_REMOVED);
			sqlite3_bind_int64(s, 1, event->time_ns);
			sqlite3_bind_int64(s, 2, file_id);
			rc = run(s);
		}
	}
	if (rc != SQLITE_DONE)
		return rc;
	if (file_id && (rc = follow_content(event, file_id)) != SQLITE_DONE)
		return rc;
	if (event->change == FS_CHANGE_TIMES)
		return SQLITE_DONE; /* mostly the kernel flushing mtime: not an event */
	s = statement(INSERT_NAMESPACE_EVENT);
	bind_text(s, 1, change_kind(event));
	bind_id(s, 2, file_id);
	bind_id(s, 3, event->process ? event->process->store_id : 0);
	sqlite3_bind_int64(s, 4, current->mount_session_id);
	bind_text(s, 5, event->path);
	bind_text(s, 6, event->new_path);
	sqlite3_bind_int64(s, 7, event->time_ns);
	return run(s);
}

static int
apply_event(struct event *event)
{
	sqlite3_stmt *s;
	int rc;

	if (event->kind != EVENT_OPEN && event->kind != EVENT_CLOSE &&
	    (rc = flush_pending_accesses()) != SQLITE_DONE)
		return rc;
	switch (event->kind) {
	case EVENT_PROCESS:
		return ensure_process(event->process, 0);
	case EVENT_PROCESS_EXIT:
		if ((rc = ensure_process(event->process, 0)) != SQLITE_DONE)
			return rc;
		s = statement(UPDATE_PROCESS_EXIT);
		sqlite3_bind_int64(s, 1, event->time_ns);
		if (event->status_known)
			sqlite3_bind_int(s, 2, event->status);
		else
			sqlite3_bind_null(s, 2);
		sqlite3_bind_int(s, 3, event->status_known);
		sqlite3_bind_int64(s, 4, event->process->store_id);
		if ((rc = run(s)) != SQLITE_DONE || event->process->run == NULL)
			return rc;
		s = statement(UPDATE_RUN_END);
		sqlite3_bind_int64(s, 1, event->time_ns);
		sqlite3_bind_int64(s, 2, event->process->run->store_id);
		sqlite3_bind_int(s, 3, event->process->pid);
		sqlite3_bind_int64(s, 4, event->process->start_ns);
		if ((rc = run(s)) == SQLITE_DONE && sqlite3_changes(db()) > 0)
			openlineage_outbox_complete(event->process->run->store_id);
		return rc;
	case EVENT_EXECUTABLE_HASH:
		if ((rc = ensure_process(event->process, 0)) != SQLITE_DONE)
			return rc;
		s = statement(UPDATE_PROCESS_HASH);
		bind_text(s, 1, event->hash);
		sqlite3_bind_int64(s, 2, event->process->store_id);
		return run(s);
	case EVENT_OPEN:
		return insert_access(event->access, batch_holds(&event->access->close_batch));
	case EVENT_CLOSE:
		return apply_close(event);
	case EVENT_VERSION:
		return apply_version(event);
	case EVENT_ABANDONED:
		return apply_abandoned(event);
	case EVENT_VERSION_HASH:
		return update_version_hash(event->version->store_id, event->hash,
					   event->hash_state);
	case EVENT_READ_HASH:
		return update_version_hash(event->access->read_version_id, event->hash,
					   event->hash_state);
	case EVENT_NAMESPACE:
		return apply_namespace(event);
	case EVENT_POLICY:
		return writer_apply_policy(event);
	case EVENT_RESUMED_HASH:
		return apply_resumed_hash(event);
	}
	return SQLITE_DONE;
}

/*
 * Apply events from piece on in one transaction, up to the end of the
 * batch or until ROWS_PER_TRANSACTION rows changed; *rest: the first event
 * not applied (NULL at the end).  0, or -1 when the store failed (the
 * transaction rolled back).
 */
static int
apply_piece(struct recorder *recorder, struct event *piece, struct event **rest)
{
	int rc;

	*rest = NULL;
	if (sqlite3_exec(db(), "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto failed;
	sqlite3_int64 changes_before = sqlite3_total_changes64(db());
	for (struct event *event = piece; event; event = event->next) {
		rc = apply_event(event);
		if (rc != SQLITE_DONE && rc != SQLITE_OK)
			goto failed_rollback;
		if (sqlite3_total_changes64(db()) - changes_before >= rows_per_transaction) {
			*rest = event->next;
			break;
		}
	}
	if ((rc = flush_pending_accesses()) != SQLITE_DONE)
		goto failed_rollback;
	/* The counters ride along: with an empty batch this is the probe that
	 * tells a failing store works again. */
	rc = write_stats(recorder);
	if (rc != SQLITE_DONE)
		goto failed_rollback;
	/* OpenLineage events of this piece's runs, in its transaction. */
	if (hashing_settle() != SQLITE_DONE || openlineage_outbox_flush(db()) != SQLITE_DONE)
		goto failed_rollback;
	if (sqlite3_exec(db(), "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		goto failed_rollback;
	openlineage_outbox_committed();
	journal_clear();
	deferred_submit();
	return 0;
failed_rollback:
	snprintf(recorder->last_error, sizeof(recorder->last_error), "%s", sqlite3_errmsg(db()));
	sqlite3_exec(db(), "ROLLBACK", NULL, NULL, NULL);
	goto undo;
failed:
	snprintf(recorder->last_error, sizeof(recorder->last_error), "%s", sqlite3_errmsg(db()));
undo:
	discard_pending_accesses();
	journal_undo();
	deferred_cancel();
	recorder->store_errors++;
	return -1;
}

int
writer_apply_batch(struct recorder *recorder, struct event *batch, uint64_t batch_number,
		   struct event **unwritten)
{
	*unwritten = NULL;
	journal_clear();
	/* Which accesses close in this batch (their rows are written whole)
	 * recorder_enqueue said as it queued their CLOSE events, by number.
	 * A batch committed in several pieces keeps its number: an access
	 * whose row waits for a later event (its CLOSE, its VERSION) is
	 * written in that event's piece, as in one transaction. */
	batch_serial = batch_number;
	struct event *piece = batch;
	do {
		struct event *rest;
		if (apply_piece(recorder, piece, &rest) < 0) {
			*unwritten = piece;
			return -1;
		}
		piece = rest;
	} while (piece);
	return 0;
}

/* ---- label policy records -------------------------------------------------------
 *
 * Rare rows (denials, label changes, reloads): each statement is prepared
 * when used rather than kept in the table above.
 */

static int
policy_step(const char *sql, sqlite3_stmt **out)
{
	int rc = sqlite3_prepare_v2(db(), sql, -1, out, NULL);

	return rc == SQLITE_OK ? SQLITE_DONE : rc;
}

/* The newest file row of (device, inode) on this host; 0 when none. */
static int64_t
policy_file_id(dev_t device, ino_t inode, int *rc)
{
	sqlite3_stmt *s = statement(SELECT_FILE_BY_INODE);

	bind_text(s, 1, current->host);
	sqlite3_bind_int64(s, 2, (int64_t)device);
	sqlite3_bind_int64(s, 3, (int64_t)inode);
	return select_integer(s, rc);
}

static int64_t
policy_latest_version(int64_t file_id, int *rc)
{
	sqlite3_stmt *s = statement(SELECT_LATEST_FOR_FILE);

	if (file_id == 0)
		return 0;
	sqlite3_bind_int64(s, 1, file_id);
	return select_integer(s, rc);
}

/* A file row for a label set on a file the recorder never saw opened. */
static int64_t
policy_ensure_file(const struct recorder_policy_record *record, int64_t time_ns, int *rc)
{
	int64_t id = policy_file_id(record->device, record->inode, rc);

	if (id || *rc != SQLITE_DONE)
		return id;
	sqlite3_stmt *s = statement(INSERT_FILE);
	bind_text(s, 1, current->host);
	sqlite3_bind_int64(s, 2, (int64_t)record->device);
	sqlite3_bind_int64(s, 3, (int64_t)record->inode);
	sqlite3_bind_int64(s, 4, (int64_t)record->generation);
	bind_text(s, 5, current->backing_dir);
	bind_text(s, 6, record->path ? record->path : "");
	sqlite3_bind_int64(s, 7, time_ns);
	if ((*rc = run(s)) != SQLITE_DONE)
		return 0;
	return sqlite3_last_insert_rowid(db());
}

int
writer_apply_policy(struct event *event)
{
	const struct recorder_policy_record *record = event->policy_record;
	sqlite3_stmt *s = NULL;
	int rc = SQLITE_DONE;
	int64_t file_id, version_id;

	switch (record->kind) {
	case RECORDER_DENIAL:
		if ((rc = ensure_process(record->process, 0)) != SQLITE_DONE)
			return rc;
		file_id = record->inode ? policy_ensure_file(record, event->time_ns, &rc) : 0;
		version_id = policy_latest_version(file_id, &rc);
		if (rc != SQLITE_DONE ||
		    (rc = policy_step("INSERT INTO denials (process_id, file_id, mount_session_id, "
				      "path, uid, label, clearance, rule, time_ns, operation, "
				      "label_source, grants, version_id, policy_revision) VALUES "
				      "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
				      &s)) != SQLITE_DONE)
			break;
		bind_id(s, 1, record->process ? record->process->store_id : 0);
		bind_id(s, 2, file_id);
		sqlite3_bind_int64(s, 3, current->mount_session_id);
		bind_text(s, 4, record->path ? record->path : "");
		sqlite3_bind_int64(s, 5, record->uid);
		bind_text(s, 6, record->level);
		bind_text(s, 7, record->clearance);
		bind_text(s, 8, record->label_source);
		sqlite3_bind_int64(s, 9, event->time_ns);
		bind_text(s, 10, record->operation);
		bind_text(s, 11, record->label_source);
		bind_text(s, 12, record->grants);
		bind_id(s, 13, version_id);
		bind_text(s, 14, record->revision);
		rc = sqlite3_step(s);
		break;
	case RECORDER_LABEL_PROPAGATED: {
		file_id = policy_file_id(record->device, record->inode, &rc);
		version_id = policy_latest_version(file_id, &rc);
		int64_t from_file = policy_file_id(record->from_device, record->from_inode, &rc);
		int64_t from_version = policy_latest_version(from_file, &rc);
		if (rc != SQLITE_DONE || version_id == 0)
			break; /* no version of it recorded (excluded, or norecord) */
		if ((rc = policy_step("UPDATE versions SET label = ?, label_from_version_id = ? "
				      "WHERE id = ?",
				      &s)) != SQLITE_DONE)
			break;
		bind_text(s, 1, record->level);
		bind_id(s, 2, from_version);
		sqlite3_bind_int64(s, 3, version_id);
		rc = sqlite3_step(s);
		break;
	}
	case RECORDER_LABEL_CHANGE:
		file_id = policy_ensure_file(record, event->time_ns, &rc);
		version_id = policy_latest_version(file_id, &rc);
		if (rc != SQLITE_DONE ||
		    (rc = policy_step("INSERT INTO label_changes (file_id, version_id, level, "
				      "forced, reason, uid, time_ns) VALUES (?, ?, ?, ?, ?, ?, ?)",
				      &s)) != SQLITE_DONE)
			break;
		sqlite3_bind_int64(s, 1, file_id);
		bind_id(s, 2, version_id);
		bind_text(s, 3, record->level);
		sqlite3_bind_int(s, 4, record->forced);
		bind_text(s, 5, record->reason);
		sqlite3_bind_int64(s, 6, record->uid);
		sqlite3_bind_int64(s, 7, event->time_ns);
		rc = sqlite3_step(s);
		break;
	case RECORDER_CONFIG_RELOAD:
		if ((rc = policy_step(record->failed
					      ? "UPDATE mount_sessions SET config_reload_failures = "
						"config_reload_failures + 1, last_config_error = ? "
						"WHERE id = ?"
					      : "UPDATE mount_sessions SET policy_revision = ? "
						"WHERE id = ?",
				      &s)) != SQLITE_DONE)
			break;
		bind_text(s, 1, record->failed ? record->reason : record->revision);
		sqlite3_bind_int64(s, 2, current->mount_session_id);
		rc = sqlite3_step(s);
		break;
	}
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? SQLITE_DONE : rc;
}
