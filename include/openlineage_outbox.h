/*
 * openlineage_outbox.h - OpenLineage events spooled in the store, written
 * by the recorder's writer thread in the transactions that record what
 * they describe.
 *
 * The writer calls four hooks, all from its one thread (this module keeps
 * its state without a lock for that reason):
 *
 *   openlineage_outbox_start(run)     it met a run for the first time (inserted
 *                                     its row, or found it made by another mount
 *                                     or an earlier daemon);
 *   openlineage_outbox_complete(run)  it recorded the end of the run's root;
 *   openlineage_outbox_abandoned(run) it closed a run of an earlier daemon
 *                                     whose root ended unrecorded (end_unknown);
 *   openlineage_outbox_flush(db)      before COMMIT: the events of the
 *                                     runs noted are built from the rows of
 *                                     this very transaction and inserted;
 *   openlineage_outbox_committed()    after COMMIT: forget what was written.
 * A rolled-back batch keeps its notes, and the retried batch writes them
 * again; an insert is skipped when the outbox already holds that run's
 * START (or terminal) event, so an event is spooled exactly once.
 *
 * A terminal event waits (at most OPENLINEAGE_HASH_WAIT_NS) for the hashes
 * of the versions its run read or wrote that are still pending, so that it
 * carries their version facets; it is then spooled in the transaction that
 * records the last of those hashes.  That of an abandoned run waits too:
 * the daemon that closes it also takes the hashes the dead one left
 * (recorder/pending_hashes.c).  A terminal event is spooled only after its
 * run's START.  A START waits for its run's first use of the mount (a
 * run recorded only as the ancestor of processes that used it, like a
 * login session or init, has no lineage to report); a run that ends
 * without one sends nothing.  It also waits while the executable of the
 * image it describes is being hashed (openlineage_outbox_executable_gate),
 * and a terminal event never goes before its START.  Nothing is spooled
 * unless openlineage_outbox_enable() was called (transport = http or file):
 * a store mounted with transport = none does not grow an outbox nobody reads.
 */
#ifndef PROVFS_OPENLINEAGE_OUTBOX_H
#define PROVFS_OPENLINEAGE_OUTBOX_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

struct openlineage;

#define OPENLINEAGE_HASH_WAIT_NS (30 * 1000000000LL)
#define OPENLINEAGE_EXECUTABLE_WAIT_NS (10 * 1000000000LL)

/*
 * A START describes an image (openlineage_start_process()) whose hash comes
 * after its row, from the recorder's hasher.  hashing(process_id), when
 * set, tells whether that row's executable is still being hashed; the
 * START then waits for it (at most OPENLINEAGE_EXECUTABLE_WAIT_NS, like the
 * run's terminal event), so that the catalog receives executableHash and
 * the bytes provfs-query export builds later.  NULL: no START waits.
 */
void openlineage_outbox_executable_gate(bool (*hashing)(int64_t process_id));

/*
 * True when the last flush held back a START for its executable's hash:
 * the writer flushes again (an empty batch) soon even when nothing else
 * comes, so a verdict that brings no event still lets the START go.
 */
bool openlineage_outbox_gated(void);

/* The writer stops: later flushes hold nothing back for a hash. */
void openlineage_outbox_ungate(void);

/* Are events spooled at all (transport = http or file)? */
bool openlineage_outbox_enabled(void);

/*
 * Spool events built with ol (borrowed until openlineage_outbox_disable();
 * NULL disables).  Call before the writer thread starts.  The first flush
 * also spools the terminal events of runs that ended while a previous
 * daemon died between their end and their terminal event.
 */
void openlineage_outbox_enable(struct openlineage *ol);
void openlineage_outbox_disable(void);

void openlineage_outbox_start(int64_t run_id);
void openlineage_outbox_complete(int64_t run_id);
/*
 * The run's START (unless the outbox has it: the daemon that met the run
 * may have died before its batch committed) and its terminal event, ABORT,
 * without waiting for hashes: those its daemon had not taken yet never come.
 */
void openlineage_outbox_abandoned(int64_t run_id);

/*
 * SQLITE_DONE, or the SQLite error of an INSERT into the outbox (the store
 * failing), which rolls the batch back.  An event that cannot be built is
 * logged and given up instead: it never costs the batch its records.
 */
int openlineage_outbox_flush(sqlite3 *db);
void openlineage_outbox_committed(void);

#endif
