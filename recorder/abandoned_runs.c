/*
 * abandoned_runs.c - closing the runs whose root ended while no daemon
 * recorded it.
 *
 * WHY
 *
 * A run ends when its daemon sees the run's root process exit (the process
 * connector, or the sweep).  A daemon that is killed, crashes, loses power
 * or is unmounted while a job runs never sees that exit, and no later
 * daemon would: the run stayed open for ever, "running" in provfs-query
 * and in every OpenLineage catalog, which had its START and never a
 * terminal event.
 *
 * WHAT
 *
 * When the writer thread starts, before its first batch, it looks through
 * the open runs of its host (index runs_open) and closes each one
 *   - that no live daemon records: none of its processes, and no access of
 *     them, belongs to a mount session whose daemon still runs (stopped_ns
 *     NULL, its pid running a process that started before the session), for
 *     that daemon may yet see the root end; and
 *   - whose root is gone: its pid is free, or ended (a zombie), or names
 *     another process (one that started more than PROCESS_START_SLACK_NS
 *     away from the root, or has another kernel id where both are known).
 * A run whose root still runs (a job that outlived its daemon) stays open:
 * a daemon that sees the root exit ends it as usual, else the next daemon
 * to start looks again.
 *
 * Closing says what is known and no more.  ended_ns is the time of this
 * look and end_unknown = 1 says so: the end came earlier, unobserved, at
 * some time after the run's last record.  The run's terminal OpenLineage
 * event, ABORT (openlineage.h), goes into the outbox in the same
 * transaction, after its START if the outbox lacks that (the dead daemon's
 * last batch may not have committed), once the hashes the dead daemon
 * never took are in: this daemon takes them (pending_hashes.c), and the
 * event waits for them as any run's end does.  The run's processes keep exited_ns NULL: their
 * exit is not known either, and nothing here looks at them.
 *
 * COST AND LOCKS
 *
 * One statement per open run and a read of /proc/PID/stat (and a pidfd)
 * per root, all with no transaction open, then one short write
 * transaction.  Its UPDATE checks ended_ns IS NULL again, so a run that
 * another daemon ended meanwhile keeps the end it recorded.  It runs on the
 * writer thread, holding none of the recorder's locks: a request never
 * waits for it (its events queue meanwhile).
 *
 * What it cannot tell: a live daemon that knows the root (it met the
 * process) but has recorded nothing of the run in its own session yet, and
 * is about to record the root's exit, races this close; the run then keeps
 * the unknown end and its ABORT (UPDATE_RUN_END leaves such a run alone).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "openlineage_outbox.h"
#include "process_table.h"
#include "recorder_i.h"

struct open_run {
	int64_t id;
	pid_t root_pid;
	int64_t root_start_ns;
	uint64_t root_kernel_id; /* 0 unknown */
};

static bool
within_slack(int64_t a, int64_t b)
{
	return a - b <= PROCESS_START_SLACK_NS && b - a <= PROCESS_START_SLACK_NS;
}

/* Is the process an earlier daemon recorded as (pid, start_ns, kernel_id) still running? */
static bool
still_running(pid_t pid, int64_t start_ns, uint64_t kernel_id)
{
	int64_t now_start_ns;
	uint64_t now_kernel_id;

	if (process_running_now(pid, &now_start_ns, &now_kernel_id) < 0)
		return false;
	if (kernel_id && now_kernel_id && kernel_id != now_kernel_id)
		return false; /* the pid was reused, however close the start */
	return within_slack(now_start_ns, start_ns);
}

char *
live_mount_sessions(sqlite3 *db, const char *host)
{
	sqlite3_stmt *s = NULL;
	size_t length = 0, capacity = 64;
	char *ids = malloc(capacity);
	int rc;

	if (ids == NULL)
		return NULL;
	ids[length++] = '[';
	if (sqlite3_prepare_v2(db,
			       "SELECT id, daemon_pid, started_ns FROM mount_sessions "
			       "WHERE host = ?1 AND stopped_ns IS NULL",
			       -1, &s, NULL) != SQLITE_OK)
		goto fail;
	sqlite3_bind_text(s, 1, host, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		pid_t daemon = (pid_t)sqlite3_column_int(s, 1);
		int64_t started_ns = sqlite3_column_int64(s, 2), daemon_start_ns;
		uint64_t kernel_id;
		/*
		 * Its daemon started before it recorded the session; a pid
		 * reused since, after.  This daemon's own session has recorded
		 * nothing yet (the writer looks before its first batch), and a
		 * session of our pid is an earlier daemon's that died.
		 */
		if (daemon == getpid() ||
		    process_running_now(daemon, &daemon_start_ns, &kernel_id) < 0 ||
		    daemon_start_ns - started_ns > PROCESS_START_SLACK_NS)
			continue;
		if (length + 24 > capacity) {
			char *grown = realloc(ids, capacity * 2);
			if (grown == NULL)
				goto fail;
			ids = grown;
			capacity *= 2;
		}
		length += (size_t)snprintf(ids + length, capacity - length, "%s%lld",
					   ids[length - 1] == '[' ? "" : ",",
					   (long long)sqlite3_column_int64(s, 0));
	}
	if (rc != SQLITE_DONE)
		goto fail;
	sqlite3_finalize(s);
	ids[length++] = ']';
	ids[length] = '\0';
	return ids;
fail:
	sqlite3_finalize(s);
	free(ids);
	return NULL;
}

int
backing_dir_served(sqlite3 *db, const char *host, const char *backing_dir)
{
	sqlite3_stmt *s = NULL;
	char *live = live_mount_sessions(db, host);
	int rc = -1;

	if (live == NULL)
		return -1;
	if (sqlite3_prepare_v2(db,
			       "SELECT EXISTS (SELECT 1 FROM mount_sessions WHERE backing_dir = ?1 "
			       "AND id IN (SELECT value FROM json_each(?2)))",
			       -1, &s, NULL) == SQLITE_OK) {
		sqlite3_bind_text(s, 1, backing_dir, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, live, -1, SQLITE_STATIC);
		if (sqlite3_step(s) == SQLITE_ROW)
			rc = sqlite3_column_int(s, 0);
	}
	sqlite3_finalize(s);
	free(live);
	return rc;
}

/*
 * The open runs of host whose root is gone and that no live session
 * records, in *found (malloc'd).  0, or -1 on a store error.
 */
static int
find_abandoned(sqlite3 *db, const char *host, struct open_run **found, size_t *count)
{
	sqlite3_stmt *runs = NULL, *recorded = NULL;
	struct open_run *list = NULL;
	size_t used = 0, capacity = 0;
	char *live = live_mount_sessions(db, host);
	int rc = SQLITE_ERROR;

	*found = NULL;
	*count = 0;
	if (live == NULL)
		return -1;
	/*
	 * With no other daemon recording into the store, nothing can be
	 * recorded by one: the search of a dead run's accesses (all of them,
	 * for a run no live session touched) is skipped, as it is on most
	 * starts.
	 */
	bool others_live = strcmp(live, "[]") != 0;
	if (sqlite3_prepare_v2(db,
			       "SELECT r.id, r.root_pid, r.root_start_ns, (SELECT p.kernel_id FROM "
			       "processes p WHERE p.pid = r.root_pid AND p.start_ns = "
			       "r.root_start_ns AND p.host = r.host ORDER BY p.exec_index LIMIT 1) "
			       "FROM runs r WHERE r.host = ?1 AND r.ended_ns IS NULL",
			       -1, &runs, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db,
			       "SELECT EXISTS (SELECT 1 FROM processes p WHERE p.run_id = ?1 AND "
			       "p.mount_session_id IN (SELECT value FROM json_each(?2))) OR EXISTS "
			       "(SELECT 1 FROM processes p JOIN accesses a ON a.process_id = p.id "
			       "WHERE p.run_id = ?1 AND a.mount_session_id IN (SELECT value FROM "
			       "json_each(?2)))",
			       -1, &recorded, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_text(runs, 1, host, -1, SQLITE_STATIC);
	sqlite3_bind_text(recorded, 2, live, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(runs)) == SQLITE_ROW) {
		struct open_run run = {
			.id = sqlite3_column_int64(runs, 0),
			.root_pid = (pid_t)sqlite3_column_int(runs, 1),
			.root_start_ns = sqlite3_column_int64(runs, 2),
			.root_kernel_id = (uint64_t)sqlite3_column_int64(runs, 3),
		};
		if (still_running(run.root_pid, run.root_start_ns, run.root_kernel_id))
			continue;
		if (others_live) {
			sqlite3_reset(recorded);
			sqlite3_bind_int64(recorded, 1, run.id);
			if (sqlite3_step(recorded) != SQLITE_ROW) {
				rc = SQLITE_ERROR;
				break;
			}
			if (sqlite3_column_int(recorded, 0))
				continue; /* a live daemon records it: its own to end */
		}
		if (used == capacity) {
			size_t grown_capacity = capacity ? capacity * 2 : 16;
			struct open_run *grown = realloc(list, grown_capacity * sizeof(*grown));
			if (grown == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			list = grown;
			capacity = grown_capacity;
		}
		list[used++] = run;
	}
out:
	sqlite3_finalize(runs);
	sqlite3_finalize(recorded);
	free(live);
	if (rc != SQLITE_DONE) {
		free(list);
		return -1;
	}
	*found = list;
	*count = used;
	return 0;
}

int
abandoned_runs_close(sqlite3 *db, const char *host)
{
	sqlite3_stmt *s = NULL;
	struct open_run *list;
	size_t count, closed = 0;
	int64_t now;
	int rc;

	if (find_abandoned(db, host, &list, &count) < 0) {
		log_warning("cannot look for runs whose root ended unrecorded: %s",
			    sqlite3_errmsg(db));
		return -1;
	}
	if (count == 0)
		return 0;
	now = wall_clock_ns();
	if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
		goto failed;
	rc = sqlite3_prepare_v2(db,
				"UPDATE runs SET ended_ns = ?1, end_unknown = 1 "
				"WHERE id = ?2 AND ended_ns IS NULL",
				-1, &s, NULL);
	for (size_t i = 0; i < count && rc == SQLITE_OK; i++) {
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, now);
		sqlite3_bind_int64(s, 2, list[i].id);
		if ((rc = sqlite3_step(s)) != SQLITE_DONE)
			break;
		rc = SQLITE_OK;
		if (sqlite3_changes(db) > 0) {
			openlineage_outbox_abandoned(list[i].id);
			closed++;
		}
	}
	sqlite3_finalize(s);
	if (rc != SQLITE_OK || openlineage_outbox_flush(db) != SQLITE_DONE ||
	    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
		log_warning("cannot close runs whose root ended unrecorded: %s", sqlite3_errmsg(db));
		sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		free(list);
		return -1;
	}
	openlineage_outbox_committed();
	free(list);
	if (closed)
		log_info("closed %zu run%s of earlier daemons whose root process ended unrecorded "
			 "(end time unknown)",
			 closed, closed == 1 ? "" : "s");
	return 0;
failed:
	log_warning("cannot close runs whose root ended unrecorded: %s", sqlite3_errmsg(db));
	free(list);
	return -1;
}
