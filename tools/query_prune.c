/*
 * query_prune.c - provfs-query prune: retention.  Remove the records older
 * than --before that nothing still needs, while mounts keep recording.
 *
 * WHAT IS KEPT
 *
 * A record older than --before is removed unless one of these needs it:
 *
 *   - the lineage of a file version that still exists (the last version of
 *     every file not removed): its writers, every version they read (data,
 *     programs and scripts alike), the writers of those, back to the roots;
 *   - a record younger than --before (it stays, so does everything it refers
 *     to, and so does its lineage: whatever remains explains itself);
 *   - a process that may still be running (no exit recorded): a daemon may
 *     still add accesses to it, and its future outputs need its inputs;
 *   - a denial, or a declassification (label_changes.forced = 1), younger
 *     than --keep-audit (default one year); the latest label change of every
 *     file (it says what the file's explicit label is);
 *   - an OpenLineage event not yet delivered, and its run.
 *
 * Closing over lineage is a superset of what `provfs-query lineage` walks
 * (it does not apply lineage's time window), so every lineage answer about
 * a kept version is the same after pruning.  Repeated reads of a kept
 * version by a kept process stay: they are how often and when it was read.
 *
 * HOW
 *
 * Phase 1 decides in one read transaction (one snapshot, nothing locked for
 * writers in WAL mode): seed tables of what must stay, then a breadth-first
 * closure over temp tables (frontier, next, kept), each step an indexed
 * lookup per frontier row (versions_producer, accesses_written_version,
 * accesses_process, processes_pid), so the closure is linear in what it
 * keeps.  The temp tables have no statistics: CROSS JOIN makes SQLite loop
 * over the (small) frontier and look up the store's rows by index, never the
 * other way round (a scan of accesses per step).  The rows to remove are listed per table in temp tables.
 *
 * Phase 2 deletes them in batches of BATCH rows, each batch its own short
 * write transaction (BEGIN IMMEDIATE, the store's busy timeout), children
 * before parents, so a recording daemon waits at most one batch for the
 * write lock; prune checkpoints its own WAL frames every few batches
 * (passive: it never waits for a reader), so the daemon's commits do not
 * inherit the copying.  Rows a daemon adds meanwhile never refer to a removed row:
 * they belong to running processes, live versions, open mount sessions and
 * files not removed, all of which phase 1 keeps.
 *
 * Phase 3 gives the space back: with auto_vacuum=INCREMENTAL (stores
 * created by this provfs) PRAGMA incremental_vacuum in steps of VACUUM_STEP
 * pages, each its own transaction, then a passive checkpoint, after which
 * the file is smaller.  With auto_vacuum=NONE (older stores) the freed
 * pages stay in the file and are reused as the store grows (see store.h).
 *
 * Only root prunes (checked in provfs_query.c); the store is opened with
 * STORE_MAINTAIN: never created, never migrated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_i.h"

#define BATCH 500
#define VACUUM_STEP 256
#define CHECKPOINT_EVERY 8 /* batches between passive checkpoints */

/* The tables prune removes from, children before parents (delete order). */
static const char *const tables[] = {
    "accesses",   "namespace_events", "denials", "label_changes", "openlineage_outbox",
    "recorder_stats", "versions", "file_names", "files", "processes",
    "runs",       "mount_sessions",
};
#define TABLE_COUNT (sizeof(tables) / sizeof(tables[0]))

struct prune {
	struct query *q;
	int64_t audit_cut_ns; /* denials, declassifications older than this may go */
	int64_t removed[TABLE_COUNT];
	int64_t total[TABLE_COUNT];
	int64_t pages_before, pages_after, page_size, free_pages;
	int auto_vacuum;
};

/*
 * Run one statement to its end with :before and :audit bound (when it has
 * them); returns the rows it changed, or -1 after printing the error.
 */
static int64_t
run(struct prune *p, const char *sql)
{
	sqlite3_stmt *statement;
	int index, rc;

	if (sqlite3_prepare_v2(p->q->db, sql, -1, &statement, NULL) != SQLITE_OK) {
		q_store_error(p->q);
		return -1;
	}
	if ((index = sqlite3_bind_parameter_index(statement, ":before")) > 0)
		sqlite3_bind_int64(statement, index, p->q->before_ns);
	if ((index = sqlite3_bind_parameter_index(statement, ":audit")) > 0)
		sqlite3_bind_int64(statement, index, p->audit_cut_ns);
	while ((rc = sqlite3_step(statement)) == SQLITE_ROW)
		;
	sqlite3_finalize(statement);
	if (rc != SQLITE_DONE) {
		q_store_error(p->q);
		return -1;
	}
	return sqlite3_changes64(p->q->db);
}

/* The integer a one-row query gives, or -1 after printing the error. */
static int64_t
scalar(struct prune *p, const char *sql)
{
	sqlite3_stmt *statement;
	int64_t value = -1;

	if (sqlite3_prepare_v2(p->q->db, sql, -1, &statement, NULL) != SQLITE_OK) {
		q_store_error(p->q);
		return -1;
	}
	if (sqlite3_step(statement) == SQLITE_ROW)
		value = sqlite3_column_int64(statement, 0);
	else
		q_store_error(p->q);
	sqlite3_finalize(statement);
	return value;
}

static int
run_all(struct prune *p, const char *const *sql, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (run(p, sql[i]) < 0)
			return -1;
	return 0;
}

/* --- phase 1: what stays -------------------------------------------------- */

static const char *const setup_sql[] = {
    "CREATE TEMP TABLE keep_access(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_label_change(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_version(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_process(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_file(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_run(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE keep_session(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE front_version(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE front_process(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE next_version(id INTEGER PRIMARY KEY)",
    "CREATE TEMP TABLE next_process(id INTEGER PRIMARY KEY)",
};

/* What must stay whatever its lineage: young, open, running, audit, live. */
static const char *const seed_sql[] = {
    /* Accesses younger than --before, or still open (or never closed). */
    "INSERT INTO temp.keep_access SELECT id FROM accesses"
    " WHERE opened_ns >= :before OR closed_ns IS NULL OR closed_ns >= :before",
    /* Label changes: young ones, declassifications within the audit
     * period, and the latest of every file. */
    "INSERT OR IGNORE INTO temp.keep_label_change SELECT id FROM label_changes"
    " WHERE time_ns >= :before OR (forced = 1 AND time_ns >= :audit)"
    " UNION SELECT MAX(id) FROM label_changes GROUP BY file_id",
    /* Versions: the last of every file not removed (before --before), the
     * young, and those that kept rows name. */
    "INSERT OR IGNORE INTO temp.keep_version"
    " SELECT v.id FROM files f JOIN versions v ON v.file_id = f.id"
    "  AND v.number = (SELECT MAX(number) FROM versions WHERE file_id = f.id)"
    "  WHERE f.removed_ns IS NULL OR f.removed_ns >= :before"
    " UNION SELECT id FROM versions WHERE recorded_ns >= :before"
    " UNION SELECT a.read_version_id FROM temp.keep_access k CROSS JOIN accesses a ON a.id = k.id"
    "  WHERE a.read_version_id IS NOT NULL"
    " UNION SELECT a.written_version_id FROM temp.keep_access k CROSS JOIN accesses a ON a.id = k.id"
    "  WHERE a.written_version_id IS NOT NULL"
    " UNION SELECT l.version_id FROM temp.keep_label_change k CROSS JOIN label_changes l ON l.id = k.id"
    "  WHERE l.version_id IS NOT NULL",
    /* Processes: young, maybe still running, or named by kept rows. */
    "INSERT OR IGNORE INTO temp.keep_process"
    " SELECT id FROM processes WHERE seen_ns >= :before OR exited_ns IS NULL"
    " UNION SELECT a.process_id FROM temp.keep_access k CROSS JOIN accesses a ON a.id = k.id"
    " UNION SELECT process_id FROM denials WHERE time_ns >= :audit AND process_id IS NOT NULL"
    " UNION SELECT process_id FROM namespace_events"
    "  WHERE time_ns >= :before AND process_id IS NOT NULL",
    "INSERT INTO temp.front_version SELECT id FROM temp.keep_version",
    "INSERT INTO temp.front_process SELECT id FROM temp.keep_process",
};

/* One step of the closure: from the frontier to what it needs. */
static const char *const step_sql[] = {
    "DELETE FROM temp.next_version",
    "DELETE FROM temp.next_process",
    /* A version needs its writers... */
    "INSERT OR IGNORE INTO temp.next_process"
    " SELECT v.producer_process_id FROM temp.front_version f CROSS JOIN versions v ON v.id = f.id"
    " WHERE v.producer_process_id IS NOT NULL"
    " AND v.producer_process_id NOT IN (SELECT id FROM temp.keep_process)",
    "INSERT OR IGNORE INTO temp.next_process"
    " SELECT a.process_id FROM temp.front_version f CROSS JOIN accesses a"
    " ON a.written_version_id = f.id"
    " WHERE a.process_id NOT IN (SELECT id FROM temp.keep_process)",
    /* ...and the version its label was propagated from. */
    "INSERT OR IGNORE INTO temp.next_version"
    " SELECT v.label_from_version_id FROM temp.front_version f CROSS JOIN versions v ON v.id = f.id"
    " WHERE v.label_from_version_id IS NOT NULL"
    " AND v.label_from_version_id NOT IN (SELECT id FROM temp.keep_version)",
    /* A process needs its other images (one activity across execve), its
     * parent and the image before it... */
    "INSERT OR IGNORE INTO temp.next_process"
    " SELECT i.id FROM temp.front_process f CROSS JOIN processes p ON p.id = f.id"
    " CROSS JOIN processes i ON i.pid = p.pid AND i.start_ns = p.start_ns AND i.host = p.host"
    " WHERE i.id NOT IN (SELECT id FROM temp.keep_process)",
    "INSERT OR IGNORE INTO temp.next_process"
    " SELECT p.parent_id FROM temp.front_process f CROSS JOIN processes p ON p.id = f.id"
    " WHERE p.parent_id IS NOT NULL AND p.parent_id NOT IN (SELECT id FROM temp.keep_process)",
    "INSERT OR IGNORE INTO temp.next_process"
    " SELECT p.previous_id FROM temp.front_process f CROSS JOIN processes p ON p.id = f.id"
    " WHERE p.previous_id IS NOT NULL"
    " AND p.previous_id NOT IN (SELECT id FROM temp.keep_process)",
    /* ...and every version it read: data, programs, scripts. */
    "INSERT OR IGNORE INTO temp.next_version"
    " SELECT a.read_version_id FROM temp.front_process f CROSS JOIN accesses a"
    " ON a.process_id = f.id"
    " WHERE a.read_version_id IS NOT NULL"
    " AND a.read_version_id NOT IN (SELECT id FROM temp.keep_version)",
    "DELETE FROM temp.front_version",
    "DELETE FROM temp.front_process",
    "INSERT INTO temp.front_version SELECT id FROM temp.next_version",
    "INSERT INTO temp.front_process SELECT id FROM temp.next_process",
    "INSERT INTO temp.keep_version SELECT id FROM temp.next_version",
    "INSERT INTO temp.keep_process SELECT id FROM temp.next_process",
};

/* Once the closure is done: files, runs, sessions that kept rows name. */
static const char *const finish_sql[] = {
    "INSERT OR IGNORE INTO temp.keep_file"
    " SELECT id FROM files"
    "  WHERE removed_ns IS NULL OR removed_ns >= :before OR first_seen_ns >= :before"
    " UNION SELECT v.file_id FROM temp.keep_version k CROSS JOIN versions v ON v.id = k.id"
    " UNION SELECT a.file_id FROM temp.keep_access k CROSS JOIN accesses a ON a.id = k.id"
    " UNION SELECT l.file_id FROM temp.keep_label_change k CROSS JOIN label_changes l ON l.id = k.id"
    " UNION SELECT file_id FROM denials WHERE time_ns >= :audit AND file_id IS NOT NULL"
    " UNION SELECT file_id FROM namespace_events"
    "  WHERE time_ns >= :before AND file_id IS NOT NULL",
    "INSERT OR IGNORE INTO temp.keep_run"
    " SELECT p.run_id FROM temp.keep_process k CROSS JOIN processes p ON p.id = k.id"
    "  WHERE p.run_id IS NOT NULL"
    " UNION SELECT run_id FROM openlineage_outbox"
    "  WHERE delivered_ns IS NULL OR created_ns >= :before"
    " UNION SELECT id FROM runs WHERE started_ns >= :before",
};

/*
 * The rows to remove, per table (same order as tables[]).  An old access
 * stays when its process, file and versions all stay; an old namespace
 * event when its process and file stay.
 */
static const char *const doomed_sql[] = {
    "INSERT INTO temp.doomed_accesses SELECT id FROM accesses a"
    " WHERE id NOT IN (SELECT id FROM temp.keep_access) AND NOT ("
    "  a.process_id IN (SELECT id FROM temp.keep_process)"
    "  AND a.file_id IN (SELECT id FROM temp.keep_file)"
    "  AND (a.read_version_id IS NULL"
    "       OR a.read_version_id IN (SELECT id FROM temp.keep_version))"
    "  AND (a.written_version_id IS NULL"
    "       OR a.written_version_id IN (SELECT id FROM temp.keep_version)))",
    "INSERT INTO temp.doomed_namespace_events SELECT id FROM namespace_events n"
    " WHERE time_ns < :before AND NOT ("
    "  (n.process_id IS NULL OR n.process_id IN (SELECT id FROM temp.keep_process))"
    "  AND (n.file_id IS NULL OR n.file_id IN (SELECT id FROM temp.keep_file)))",
    "INSERT INTO temp.doomed_denials SELECT id FROM denials WHERE time_ns < :audit",
    "INSERT INTO temp.doomed_label_changes SELECT id FROM label_changes"
    " WHERE id NOT IN (SELECT id FROM temp.keep_label_change)",
    "INSERT INTO temp.doomed_openlineage_outbox SELECT id FROM openlineage_outbox"
    " WHERE delivered_ns IS NOT NULL AND created_ns < :before",
    NULL, /* recorder_stats: with its mount session, below */
    "INSERT INTO temp.doomed_versions SELECT id FROM versions"
    " WHERE id NOT IN (SELECT id FROM temp.keep_version)",
    "INSERT INTO temp.doomed_file_names SELECT id FROM file_names"
    " WHERE file_id NOT IN (SELECT id FROM temp.keep_file)",
    "INSERT INTO temp.doomed_files SELECT id FROM files"
    " WHERE id NOT IN (SELECT id FROM temp.keep_file)",
    "INSERT INTO temp.doomed_processes SELECT id FROM processes"
    " WHERE id NOT IN (SELECT id FROM temp.keep_process)",
    "INSERT INTO temp.doomed_runs SELECT id FROM runs"
    " WHERE id NOT IN (SELECT id FROM temp.keep_run)",
    NULL, /* mount_sessions: below, once every other table is decided */
};

/* Mount sessions still named by a row that stays, or recent or open. */
static const char *const session_sql[] = {
    "INSERT OR IGNORE INTO temp.keep_session"
    " SELECT id FROM mount_sessions"
    "  WHERE stopped_ns IS NULL OR stopped_ns >= :before OR started_ns >= :before"
    " UNION SELECT p.mount_session_id FROM temp.keep_process k CROSS JOIN processes p ON p.id = k.id"
    "  WHERE p.mount_session_id IS NOT NULL"
    " UNION SELECT mount_session_id FROM accesses"
    "  WHERE id NOT IN (SELECT id FROM temp.doomed_accesses)"
    " UNION SELECT mount_session_id FROM namespace_events"
    "  WHERE id NOT IN (SELECT id FROM temp.doomed_namespace_events)"
    " UNION SELECT mount_session_id FROM denials"
    "  WHERE id NOT IN (SELECT id FROM temp.doomed_denials)",
    "INSERT INTO temp.doomed_mount_sessions SELECT id FROM mount_sessions"
    " WHERE id NOT IN (SELECT id FROM temp.keep_session)",
    /* recorder_stats is keyed by mount_session_id. */
    "INSERT INTO temp.doomed_recorder_stats SELECT mount_session_id FROM recorder_stats"
    " WHERE mount_session_id IN (SELECT id FROM temp.doomed_mount_sessions)",
};

static int
decide(struct prune *p)
{
	struct q_progress progress;
	char sql[256];
	int64_t added, kept = 0;

	if (run_all(p, setup_sql, sizeof(setup_sql) / sizeof(setup_sql[0])))
		return -1;
	for (size_t t = 0; t < TABLE_COUNT; t++) {
		snprintf(sql, sizeof(sql), "CREATE TEMP TABLE doomed_%s(id INTEGER PRIMARY KEY)",
		         tables[t]);
		if (run(p, sql) < 0)
			return -1;
	}
	q_progress_start(p->q, &progress, "lineage to keep", "records", 0);
	if (run_all(p, seed_sql, sizeof(seed_sql) / sizeof(seed_sql[0])))
		goto fail;
	do {
		added = 0;
		for (size_t i = 0; i < sizeof(step_sql) / sizeof(step_sql[0]); i++) {
			int64_t changed = run(p, step_sql[i]);
			if (changed < 0)
				goto fail;
			/* The last two statements add the new frontier to the kept sets. */
			if (i + 2 >= sizeof(step_sql) / sizeof(step_sql[0]))
				added += changed;
		}
		kept += added;
		q_progress_update(&progress, kept);
	} while (added > 0);
	q_progress_end(&progress);
	if (run_all(p, finish_sql, sizeof(finish_sql) / sizeof(finish_sql[0])))
		return -1;
	for (size_t t = 0; t < TABLE_COUNT; t++)
		if (doomed_sql[t] && run(p, doomed_sql[t]) < 0)
			return -1;
	if (run_all(p, session_sql, sizeof(session_sql) / sizeof(session_sql[0])))
		return -1;
	for (size_t t = 0; t < TABLE_COUNT; t++) {
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM temp.doomed_%s", tables[t]);
		if ((p->removed[t] = scalar(p, sql)) < 0)
			return -1;
		snprintf(sql, sizeof(sql), "SELECT COUNT(*) FROM main.%s", tables[t]);
		if ((p->total[t] = scalar(p, sql)) < 0)
			return -1;
	}
	return 0;
fail:
	q_progress_end(&progress);
	return -1;
}

/* --- phase 2: remove, in short transactions ------------------------------ */

static int
remove_rows(struct prune *p)
{
	struct q_progress progress;
	int64_t total = 0, done = 0, batches = 0;
	char sql[512];

	for (size_t t = 0; t < TABLE_COUNT; t++)
		total += p->removed[t];
	q_progress_start(p->q, &progress, "removing", "rows", total);
	for (size_t t = 0; t < TABLE_COUNT; t++) {
		const char *key = strcmp(tables[t], "recorder_stats") == 0 ? "mount_session_id" : "id";
		int64_t last = INT64_MIN;

		for (;;) {
			sqlite3_stmt *bound;
			int64_t high = Q_NONE, count = 0, changed;

			/* The next batch: ids after last, at most BATCH of them. */
			snprintf(sql, sizeof(sql),
			         "SELECT MAX(id), COUNT(*) FROM (SELECT id FROM temp.doomed_%s"
			         " WHERE id > ?1 ORDER BY id LIMIT %d)",
			         tables[t], BATCH);
			if (sqlite3_prepare_v2(p->q->db, sql, -1, &bound, NULL) != SQLITE_OK)
				goto rollback;
			sqlite3_bind_int64(bound, 1, last);
			if (sqlite3_step(bound) == SQLITE_ROW) {
				high = q_col_int(bound, 0);
				count = sqlite3_column_int64(bound, 1);
			}
			sqlite3_finalize(bound);
			if (count == 0 || high == Q_NONE)
				break;
			/* Busy past the store's timeout: stop between batches, and say so. */
			if (sqlite3_exec(p->q->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
				goto rollback;
			snprintf(sql, sizeof(sql),
			         "DELETE FROM main.%s WHERE %s IN (SELECT id FROM temp.doomed_%s"
			         " WHERE id > ?1 AND id <= ?2)",
			         tables[t], key, tables[t]);
			if (sqlite3_prepare_v2(p->q->db, sql, -1, &bound, NULL) != SQLITE_OK)
				goto rollback;
			sqlite3_bind_int64(bound, 1, last);
			sqlite3_bind_int64(bound, 2, high);
			changed = sqlite3_step(bound) == SQLITE_DONE ? sqlite3_changes64(p->q->db) : -1;
			sqlite3_finalize(bound);
			if (changed < 0 ||
			    sqlite3_exec(p->q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
				goto rollback;
			last = high;
			done += count;
			q_progress_update(&progress, done);
			/*
			 * Copy our WAL frames into the file now and then ourselves: else
			 * the daemon's next commit past the auto-checkpoint threshold
			 * pays for copying what prune wrote.
			 */
			if (++batches % CHECKPOINT_EVERY == 0)
				sqlite3_wal_checkpoint_v2(p->q->db, NULL, SQLITE_CHECKPOINT_PASSIVE,
				                          NULL, NULL);
		}
	}
	q_progress_end(&progress);
	return 0;
rollback:
	/*
	 * Every batch committed is whole (children before parents), so the
	 * store is consistent: say how far prune got and that a second run
	 * removes the rest.
	 */
	q_progress_end(&progress);
	q_error(p->q, 2,
	        "cannot remove rows from store '%s': %s (removed %lld of %lld rows; the "
	        "store is consistent, run prune again for the rest)",
	        p->q->store_path, sqlite3_errmsg(p->q->db), (long long)done, (long long)total);
	sqlite3_exec(p->q->db, "ROLLBACK", NULL, NULL, NULL);
	return -1;
}

/* --- phase 3: give the space back ------------------------------------- */

static int
reclaim(struct prune *p)
{
	struct q_progress progress;
	int64_t start_free = scalar(p, "PRAGMA freelist_count"), left = start_free;
	char sql[64];

	if (start_free < 0)
		return -1;
	if (p->auto_vacuum == 2 && start_free > 0) {
		q_progress_start(p->q, &progress, "freeing", "pages", start_free);
		snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%d)", VACUUM_STEP);
		while (left > 0) {
			int64_t before = left;
			if (run(p, sql) < 0)
				goto fail;
			if ((left = scalar(p, "PRAGMA freelist_count")) < 0)
				goto fail;
			q_progress_update(&progress, start_free - left);
			sqlite3_wal_checkpoint_v2(p->q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL,
			                          NULL);
			if (left >= before)
				break; /* a daemon is filling pages as fast: stop here */
		}
		q_progress_end(&progress);
	}
	/* Copy the WAL into the file (and shrink it) without waiting for anyone. */
	sqlite3_wal_checkpoint_v2(p->q->db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	p->free_pages = scalar(p, "PRAGMA freelist_count");
	p->pages_after = scalar(p, "PRAGMA page_count");
	return p->free_pages < 0 || p->pages_after < 0 ? -1 : 0;
fail:
	q_progress_end(&progress);
	return -1;
}

/* --- output ------------------------------------------------------------- */

static const char *
grouped(int64_t n)
{
	static char ring[8][32];
	static int next;
	char digits[32], *out = ring[next++ % 8];
	size_t len = (size_t)snprintf(digits, sizeof(digits), "%lld", (long long)n), o = 0;

	for (size_t i = 0; i < len; i++) {
		if (i > 0 && digits[i - 1] != '-' && (len - i) % 3 == 0)
			out[o++] = ',';
		out[o++] = digits[i];
	}
	out[o] = '\0';
	return out;
}

static const char *
auto_vacuum_name(int mode)
{
	return mode == 2 ? "incremental" : mode == 1 ? "full" : "none";
}

static int
print_text(struct prune *p)
{
	struct query *q = p->q;

	printf("%s records older than %s\n", q->dry_run ? "Would remove" : "Removed",
	       q_when(q, q->before_ns));
	printf("%s denials and declassifications since %s\n", q->dry_run ? "Would keep" : "Kept",
	       q_when(q, p->audit_cut_ns));
	printf("\n  %-22s %14s %14s\n", "", q->dry_run ? "would remove" : "removed", "kept");
	for (size_t t = 0; t < TABLE_COUNT; t++)
		printf("  %-22s %14s %14s\n", tables[t], grouped(p->removed[t]),
		       grouped(p->total[t] - p->removed[t]));
	printf("\n");
	if (q->dry_run) {
		printf("%-9s %s, nothing removed (--dry-run)\n", "store",
		       q_size(p->pages_before * p->page_size));
	} else if (p->auto_vacuum == 2 || p->auto_vacuum == 1) {
		printf("%-9s %s -> %s\n", "store", q_size(p->pages_before * p->page_size),
		       q_size(p->pages_after * p->page_size));
	} else {
		printf("%-9s %s, %s free pages reused as it grows\n", "store",
		       q_size(p->pages_after * p->page_size), grouped(p->free_pages));
		printf("%-9s auto_vacuum is off in this older store: see provfs-query(1)\n", "");
	}
	return 0;
}

static int
print_json(struct prune *p)
{
	struct query *q = p->q;
	json_object *doc = q_jdoc(q), *counts = json_object_new_object();

	json_object_object_add(doc, "before", q_jtime(q->before_ns));
	json_object_object_add(doc, "keep_audit", q_jtime(p->audit_cut_ns));
	json_object_object_add(doc, "dry_run", json_object_new_boolean(q->dry_run));
	for (size_t t = 0; t < TABLE_COUNT; t++) {
		json_object *row = json_object_new_object();
		json_object_object_add(row, "removed", json_object_new_int64(p->removed[t]));
		json_object_object_add(row, "kept",
		                       json_object_new_int64(p->total[t] - p->removed[t]));
		json_object_object_add(counts, tables[t], row);
	}
	json_object_object_add(doc, "tables", counts);
	json_object_object_add(doc, "auto_vacuum",
	                       json_object_new_string(auto_vacuum_name(p->auto_vacuum)));
	json_object_object_add(doc, "size_before",
	                       json_object_new_int64(p->pages_before * p->page_size));
	json_object_object_add(doc, "size_after",
	                       json_object_new_int64(p->pages_after * p->page_size));
	json_object_object_add(doc, "free_pages", json_object_new_int64(p->free_pages));
	return q_emit_json(q, doc);
}

int
cmd_prune(struct query *q)
{
	struct prune p = {.q = q};
	int status = 2;

	/* A denial older than --keep-audit but younger than --before stays too. */
	p.audit_cut_ns = q->keep_audit_ns < q->before_ns ? q->keep_audit_ns : q->before_ns;
	if (sqlite3_exec(q->db,
	                 "PRAGMA temp_store = MEMORY; PRAGMA cache_size = -131072;"
	                 " PRAGMA foreign_keys = OFF",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return q_store_error(q);
	if ((p.auto_vacuum = (int)scalar(&p, "PRAGMA auto_vacuum")) < 0 ||
	    (p.page_size = scalar(&p, "PRAGMA page_size")) < 0 ||
	    (p.pages_before = scalar(&p, "PRAGMA page_count")) < 0)
		return 2;
	p.pages_after = p.pages_before;
	/* Phase 1 in one snapshot. */
	if (sqlite3_exec(q->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		return q_store_error(q);
	if (decide(&p) < 0) {
		sqlite3_exec(q->db, "ROLLBACK", NULL, NULL, NULL);
		return 2;
	}
	if (sqlite3_exec(q->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
		return q_store_error(q);
	if (!q->dry_run) {
		if (remove_rows(&p) < 0 || reclaim(&p) < 0)
			goto out;
	} else {
		p.free_pages = scalar(&p, "PRAGMA freelist_count");
	}
	status = q->format == Q_FORMAT_JSON ? print_json(&p) : print_text(&p);
out:
	return status;
}
