/*
 * openlineage_outbox.c - spooling RunEvents in the writer's transactions.
 * See include/openlineage_outbox.h for the contract; the writer thread is
 * the only caller, so the notes below need no lock.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "openlineage.h"
#include "openlineage_outbox.h"

struct note {
	int64_t run_id;
	enum openlineage_stage stage;
	int64_t first_flush_ns; /* 0 until a flush has seen it */
	bool written;           /* inserted (or settled) in the open transaction */
};

static struct openlineage *context;
static struct note *notes;
static size_t note_count, note_alloc;
static bool recovered;
static bool (*executable_hashing)(int64_t process_id);
static bool gated;   /* the last flush held a START back for its hash */
static bool ungated; /* stopping: nothing is held back any more */

void
openlineage_outbox_executable_gate(bool (*hashing)(int64_t process_id))
{
	executable_hashing = hashing;
}

bool
openlineage_outbox_gated(void)
{
	return gated;
}

void
openlineage_outbox_ungate(void)
{
	ungated = true;
}

bool
openlineage_outbox_enabled(void)
{
	return context != NULL;
}

void
openlineage_outbox_enable(struct openlineage *ol)
{
	context = ol;
	recovered = false;
	gated = ungated = false;
}

void
openlineage_outbox_disable(void)
{
	context = NULL;
	free(notes);
	notes = NULL;
	note_count = note_alloc = 0;
}

static struct note *
note(int64_t run_id, enum openlineage_stage stage)
{
	if (context == NULL || run_id <= 0)
		return NULL;
	for (size_t i = 0; i < note_count; i++)
		if (notes[i].run_id == run_id && notes[i].stage == stage)
			return &notes[i];
	if (note_count == note_alloc) {
		size_t capacity = note_alloc ? note_alloc * 2 : 64;
		struct note *grown = realloc(notes, capacity * sizeof(*grown));
		if (grown == NULL) {
			log_error("openlineage: out of memory: run %lld loses an event",
			          (long long)run_id);
			return NULL;
		}
		notes = grown;
		note_alloc = capacity;
	}
	notes[note_count] = (struct note){.run_id = run_id, .stage = stage};
	return &notes[note_count++];
}

void
openlineage_outbox_start(int64_t run_id)
{
	note(run_id, OPENLINEAGE_START);
}

void
openlineage_outbox_complete(int64_t run_id)
{
	note(run_id, OPENLINEAGE_TERMINAL);
}

void
openlineage_outbox_abandoned(int64_t run_id)
{
	note(run_id, OPENLINEAGE_START);
	note(run_id, OPENLINEAGE_TERMINAL);
}

/* 1: a version the run read or wrote still waits for its hash. */
static int
hashes_pending(sqlite3 *db, int64_t run_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT 1 FROM accesses a JOIN processes p ON p.id = a.process_id "
	                       "JOIN versions v ON v.id = a.read_version_id OR "
	                       "v.id = a.written_version_id WHERE p.run_id = ? AND "
	                       "v.hash_state = 'pending' LIMIT 1",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	rc = sqlite3_step(s);
	sqlite3_finalize(s);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
}

/* 1: the image the run's START describes is still being hashed. */
static int
executable_pending(sqlite3 *db, int64_t run_id)
{
	int64_t process_id;
	int rc;

	if (executable_hashing == NULL || ungated)
		return 0;
	rc = openlineage_start_process(db, run_id, &process_id);
	return rc <= 0 ? rc : executable_hashing(process_id);
}

/* 1: the run's end is recorded (or the run is gone). */
static int
run_ended(sqlite3 *db, int64_t run_id)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db, "SELECT ended_ns IS NOT NULL FROM runs WHERE id = ?", -1, &s,
	                       NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, run_id);
	rc = sqlite3_step(s);
	rc = rc == SQLITE_ROW ? sqlite3_column_int(s, 0) : rc == SQLITE_DONE ? 1 : -1;
	sqlite3_finalize(s);
	return rc;
}

/* 1: the run has a START note not yet spooled (an untouched run's, or one waiting). */
static bool
start_unwritten(int64_t run_id)
{
	for (size_t i = 0; i < note_count; i++)
		if (notes[i].run_id == run_id && notes[i].stage == OPENLINEAGE_START)
			return !notes[i].written;
	return false;
}

/*
 * An event that cannot be built is given up with a log line: the batch it
 * rides in holds the provenance records themselves, which must not be
 * rolled back for the sake of one event.  Only the INSERT's own failure
 * (the store failing) fails the batch.
 */
static void
give_up(sqlite3 *db, struct note *n, const char *what)
{
	log_warning("openlineage: %s the %s event of run %lld (%s): not sent", what,
	            n->stage == OPENLINEAGE_START ? "START" : "terminal", (long long)n->run_id,
	            sqlite3_errmsg(db));
	n->written = true;
}

/* Insert the event unless the outbox has it; SQLITE_DONE or an error. */
static int
spool(sqlite3 *db, struct note *n, int64_t now)
{
	sqlite3_stmt *s = NULL;
	const char *type;
	char *event = NULL;
	int rc;

	rc = openlineage_build(context, db, n->run_id, n->stage, &event, &type);
	if (rc < 0) {
		give_up(db, n, "cannot build");
		return SQLITE_DONE;
	}
	if (rc > 0) {
		n->written = true; /* no such run (a rolled-back id): nothing to send */
		return SQLITE_DONE;
	}
	rc = sqlite3_prepare_v2(
	    db,
	    "INSERT INTO openlineage_outbox (run_id, event_type, event, created_ns) "
	    "SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM openlineage_outbox WHERE "
	    "run_id = ?1 AND (event_type = 'START') = (?2 = 'START')) AND (?2 = 'START' OR "
	    "EXISTS (SELECT 1 FROM openlineage_outbox WHERE run_id = ?1 AND event_type = 'START'))",
	    -1, &s, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_bind_int64(s, 1, n->run_id);
		sqlite3_bind_text(s, 2, type, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 3, event, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 4, now);
		rc = sqlite3_step(s);
	}
	sqlite3_finalize(s);
	free(event);
	if (rc == SQLITE_DONE)
		n->written = true;
	return rc;
}

/*
 * Runs that ended with a START spooled but no terminal event: the daemon
 * that saw the end died before its hashes came in.  Noted once per enable.
 */
static int
recover(sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int rc;

	if (sqlite3_prepare_v2(db,
	                       "SELECT o.run_id FROM openlineage_outbox o JOIN runs r ON "
	                       "r.id = o.run_id WHERE o.event_type = 'START' AND r.ended_ns IS NOT "
	                       "NULL AND NOT EXISTS (SELECT 1 FROM openlineage_outbox t WHERE "
	                       "t.run_id = o.run_id AND t.event_type != 'START')",
	                       -1, &s, NULL) != SQLITE_OK)
		return sqlite3_errcode(db);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW)
		note(sqlite3_column_int64(s, 0), OPENLINEAGE_TERMINAL);
	sqlite3_finalize(s);
	return rc;
}

int
openlineage_outbox_flush(sqlite3 *db)
{
	int64_t now;
	int rc;

	if (context == NULL)
		return SQLITE_DONE;
	if (!recovered) {
		if (recover(db) != SQLITE_DONE)
			log_warning("openlineage: cannot look for unfinished runs: %s",
			            sqlite3_errmsg(db));
		recovered = true;
	}
	if (note_count == 0)
		return SQLITE_DONE;
	/* What an earlier, rolled-back batch wrote is written again here. */
	for (size_t i = 0; i < note_count; i++)
		notes[i].written = false;
	now = wall_clock_ns();
	gated = false;
	/* STARTs first: a run noted twice in one batch spools START, then its end. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < note_count; i++) {
			struct note *n = &notes[i];
			if (n->written || (pass == 0) != (n->stage == OPENLINEAGE_START))
				continue;
			if (n->first_flush_ns == 0)
				n->first_flush_ns = now;
			if (n->stage == OPENLINEAGE_TERMINAL && start_unwritten(n->run_id))
				continue; /* after its START, which waits */
			if (n->stage == OPENLINEAGE_START) {
				/*
				 * A run seen only as an ancestor has no lineage: its
				 * START waits for its first use of the mount, and is
				 * dropped (with its end) if it ends without one.
				 */
				int touched = openlineage_run_touched(db, n->run_id);
				if (touched < 0) {
					give_up(db, n, "cannot check");
					continue;
				}
				if (!touched) {
					int ended = run_ended(db, n->run_id);
					if (ended < 0)
						give_up(db, n, "cannot check");
					else if (ended)
						n->written = true; /* settled: nothing to send */
					continue;
				}
				if (now - n->first_flush_ns < OPENLINEAGE_EXECUTABLE_WAIT_NS) {
					int hashing = executable_pending(db, n->run_id);
					if (hashing < 0) {
						give_up(db, n, "cannot check");
						continue;
					}
					if (hashing) {
						gated = true;
						continue; /* a later flush has its hash */
					}
				}
			}
			if (n->stage == OPENLINEAGE_TERMINAL &&
			    now - n->first_flush_ns < OPENLINEAGE_HASH_WAIT_NS) {
				int pending = hashes_pending(db, n->run_id);
				if (pending < 0) {
					give_up(db, n, "cannot check");
					continue;
				}
				if (pending)
					continue; /* a later batch records the hash */
			}
			if ((rc = spool(db, n, now)) != SQLITE_DONE)
				return rc;
		}
	}
	return SQLITE_DONE;
}

void
openlineage_outbox_committed(void)
{
	size_t kept = 0;

	for (size_t i = 0; i < note_count; i++)
		if (!notes[i].written)
			notes[kept++] = notes[i];
	note_count = kept;
}
