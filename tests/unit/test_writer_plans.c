/*
 * test_writer_plans.c - every statement of the recorder's writer uses an
 * index: EXPLAIN QUERY PLAN of each, on a fresh store of the current
 * schema, never shows a full scan of a table that grows with the store.
 * A scan would make each event cost O(n) in the store's size, and a busy
 * mount's writer fall behind for good (issue 9).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../recorder/recorder_i.h"

/* Tables that grow with the store; a scan of any of them fails the test. */
static const char *const growing[] = {"runs",     "processes", "files",     "file_names",
				      "versions", "accesses",  "namespace_events"};

/*
 * Columns shared by (nearly) every row: a search on them alone, like
 * "SEARCH file_names USING INDEX i (backing_dir=?)", visits every name of
 * the mount, a full scan in all but name.
 */
static bool
is_unselective_search(const char *detail)
{
	static const char *const shared[] = {"backing_dir", "host", "mount_session_id"};
	const char *constraints = strchr(detail, '(');

	if (strncmp(detail, "SEARCH ", 7) != 0 || constraints == NULL)
		return false;
	for (const char *term = constraints + 1; *term;) {
		size_t length = strcspn(term, "=<>");
		bool is_shared = false;
		for (size_t i = 0; i < sizeof(shared) / sizeof(shared[0]); i++)
			if (length == strlen(shared[i]) && strncmp(term, shared[i], length) == 0)
				is_shared = true;
		if (!is_shared)
			return false;
		const char *next = strstr(term, " AND ");
		if (next == NULL)
			break;
		term = next + 5;
	}
	return true;
}

static bool
is_full_scan(const char *detail)
{
	/* "SCAN t", "SCAN t USING INDEX i", "SCAN t USING COVERING INDEX i". */
	if (strncmp(detail, "SCAN ", 5) != 0)
		return false;
	for (size_t i = 0; i < sizeof(growing) / sizeof(growing[0]); i++) {
		size_t length = strlen(growing[i]);
		if (strncmp(detail + 5, growing[i], length) == 0 &&
		    (detail[5 + length] == '\0' || detail[5 + length] == ' '))
			return true;
	}
	return false;
}

/*
 * A statement that builds a temporary table pays for it at every run: an
 * UPDATE whose WHERE searches an index on a column it changes (the
 * partial index of current names, until_ns) runs in two passes through
 * one, which was a third of the writer's time per unlink.  Only the
 * statements over all the names beneath a renamed directory (a range
 * ending in '/') may: there the table is shared by many rows.  0 or the
 * number of failures.
 */
static int
check_no_temporary_tables(sqlite3 *db)
{
	int failures = 0;

	for (size_t i = 0; i < writer_statement_count(); i++) {
		const char *sql = writer_statement_sql(i);
		if (strstr(sql, "|| '/'"))
			continue;
		char *explain = sqlite3_mprintf("EXPLAIN %s", sql);
		sqlite3_stmt *statement;
		if (sqlite3_prepare_v2(db, explain, -1, &statement, NULL) != SQLITE_OK) {
			fprintf(stderr, "cannot prepare statement %zu: %s\n", i, sqlite3_errmsg(db));
			failures++;
		} else {
			while (sqlite3_step(statement) == SQLITE_ROW) {
				const char *opcode = (const char *)sqlite3_column_text(statement, 1);
				if (opcode && strcmp(opcode, "OpenEphemeral") == 0) {
					fprintf(stderr, "a temporary table in writer statement %zu:\n  %s\n",
						i, sql);
					failures++;
					break;
				}
			}
			sqlite3_finalize(statement);
		}
		sqlite3_free(explain);
	}
	return failures;
}

/*
 * A plan can use an index and still read many rows: a file system gives
 * an inode number out again as soon as it is free (a rename over a file
 * frees one, the next new file takes it), so one number may have thousands
 * of rows.  The writer's search for the newest row of an inode number must
 * cost the same with one row or 5,000: counted in SQLite's VM steps, which
 * grow with every row read.  0 or the number of failures.
 */
static int
check_reused_inode(sqlite3 *db)
{
	const char *sql = NULL;
	sqlite3_stmt *statement;
	int failures = 0;

	for (size_t i = 0; i < writer_statement_count(); i++)
		if (strstr(writer_statement_sql(i), "max(id) FROM files"))
			sql = writer_statement_sql(i);
	if (sql == NULL) {
		fprintf(stderr, "no writer statement looks up the newest row of an inode\n");
		return 1;
	}
	if (sqlite3_exec(db,
			 "BEGIN;"
			 "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 5000)"
			 " INSERT INTO files (host, device, inode, generation, backing_dir, path,"
			 " first_seen_ns) SELECT 'h', 7, 12, (i * 2654435761) % 4294967296, '/b',"
			 " 'f' || i, i FROM n;"
			 "INSERT INTO files (host, device, inode, generation, backing_dir, path,"
			 " first_seen_ns) VALUES ('h', 7, 13, 1, '/b', 'other', 1);"
			 "COMMIT;",
			 NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &statement, NULL) != SQLITE_OK) {
		fprintf(stderr, "cannot set up the reused inode: %s\n", sqlite3_errmsg(db));
		return 1;
	}
	sqlite3_bind_text(statement, 1, "h", -1, SQLITE_STATIC);
	sqlite3_bind_int64(statement, 2, 7);
	sqlite3_bind_int64(statement, 3, 12);
	if (sqlite3_step(statement) != SQLITE_ROW || sqlite3_column_int64(statement, 0) != 5000) {
		fprintf(stderr, "the newest row of inode 12 is not row 5000\n");
		failures++;
	}
	int steps = sqlite3_stmt_status(statement, SQLITE_STMTSTATUS_VM_STEP, 0);
	if (steps > 100) {
		fprintf(stderr, "the newest row of an inode number with 5,000 rows took %d VM steps:\n  %s\n",
			steps, sql);
		failures++;
	}
	sqlite3_finalize(statement);
	return failures;
}

int
main(void)
{
	char directory[] = "/tmp/provfs-unit-plans.XXXXXX", path[64], error[512];
	int failures = 0;

	if (mkdtemp(directory) == NULL)
		return 2;
	snprintf(path, sizeof(path), "%s/store.db", directory);
	struct store *store = store_open(path, STORE_READ_WRITE, NULL, error, sizeof(error));
	if (store == NULL) {
		fprintf(stderr, "%s\n", error);
		return 2;
	}
	sqlite3 *db = store_db(store);
	for (size_t i = 0; i < writer_statement_count(); i++) {
		const char *sql = writer_statement_sql(i);
		char *explain = sqlite3_mprintf("EXPLAIN QUERY PLAN %s", sql);
		sqlite3_stmt *statement;
		if (sqlite3_prepare_v2(db, explain, -1, &statement, NULL) != SQLITE_OK) {
			fprintf(stderr, "cannot prepare statement %zu: %s\n", i, sqlite3_errmsg(db));
			failures++;
			sqlite3_free(explain);
			continue;
		}
		while (sqlite3_step(statement) == SQLITE_ROW) {
			const char *detail = (const char *)sqlite3_column_text(statement, 3);
			if (detail && (is_full_scan(detail) || is_unselective_search(detail))) {
				fprintf(stderr, "full scan (%s) in writer statement %zu:\n  %s\n",
					detail, i, sql);
				failures++;
			}
		}
		sqlite3_finalize(statement);
		sqlite3_free(explain);
	}
	failures += check_no_temporary_tables(db);
	failures += check_reused_inode(db);
	store_close(store);
	char command[128];
	snprintf(command, sizeof(command), "rm -rf '%s'", directory);
	if (system(command) != 0)
		return 2;
	if (failures == 0)
		printf("%zu writer statements: every one uses an index, none but a directory's "
		       "range a temporary table; an inode number's newest row in one seek\n",
		       writer_statement_count());
	return failures ? 1 : 0;
}
