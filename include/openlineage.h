/*
 * openlineage.h - provfs runs as OpenLineage RunEvents (spec 2-0-2).
 *
 * One piece of code turns a run of the store into its events, so that
 * `provfs-query export --format openlineage` and the daemon's live delivery
 * (the outbox, then the sender) emit the same documents:
 *
 *   START     at the run's start: job, run id, run facets (parent,
 *             processing_engine, provfs_process), no datasets yet;
 *   COMPLETE  the root process exited 0, or its status is unknown (then the
 *             provfs_process facet says "exitStatus": "unknown");
 *   FAIL      the root exited non-zero;
 *   ABORT     the root was killed by a signal; or no daemon saw it end (the
 *             one recording the run stopped first, and a later one found
 *             the root gone: runs.end_unknown): then eventTime is when that
 *             daemon noticed, and provfs_process says "exitStatus":
 *             "unknown", "endUnknown": true.
 * The terminal event repeats every input and output of the run (some
 * consumers read only that one).
 *
 * Naming follows OpenLineage's convention for files: dataset namespace
 * "file" (or "file://HOST", [openlineage] dataset_namespace), dataset name
 * the absolute path in the mount, rewritten by the first matching
 * [openlineage] path_map prefix, so that hosts that mount one shared tree
 * at different places still name its files alike.  The job namespace is
 * [openlineage] namespace, else the run's host name; the job name is the
 * run's (PROVFS_JOB, else the root's executable name); the runId is the
 * run's UUID.
 *
 * Events are one line of JSON (no newline inside), valid UTF-8: a path or
 * argv byte that is not UTF-8 is written "\udcXX" (PEP 383), as
 * provfs-query does everywhere.  The custom facets provfs_fileVersion and
 * provfs_process point their _schemaURL at schemas/ of this project.
 *
 * Threads: an openlineage context is read-only after openlineage_new() and
 * may be shared; each call uses only the sqlite3 connection it is given.
 */
#ifndef PROVFS_OPENLINEAGE_H
#define PROVFS_OPENLINEAGE_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

struct provfs_config;
struct openlineage;

/* The URI naming provfs as the producer of events and facets. */
#define OPENLINEAGE_PRODUCER "https://github.com/provfs/provfs/tree/v" PROVFS_VERSION
#define OPENLINEAGE_SCHEMA_URL "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent"
/* Where the custom facets' JSON Schemas live (schemas/ in this project). */
#define OPENLINEAGE_PROVFS_SCHEMAS                                                                 \
	"https://github.com/provfs/provfs/blob/v" PROVFS_VERSION "/schemas/"

enum openlineage_stage {
	OPENLINEAGE_START,
	OPENLINEAGE_TERMINAL, /* COMPLETE, FAIL or ABORT from the root's exit */
};

/*
 * A context from the [openlineage] keys of config (namespace,
 * dataset_namespace, path_map); config may be freed afterwards.  NULL with
 * a message in error when out of memory.  Free with openlineage_free().
 */
struct openlineage *openlineage_new(const struct provfs_config *config, char *error,
                                    size_t error_size);
void openlineage_free(struct openlineage *ol);

/*
 * Build the event of the given stage for the runs row run_id, reading the
 * store through db.  On success returns 0 and sets *event (malloc'd, one
 * line, no newline; the caller frees it) and *event_type ("START",
 * "COMPLETE", "FAIL" or "ABORT", static).  Returns 1 when the run has no
 * such event yet (no such run; terminal asked of a run whose root has not
 * ended), or -1 on a store error (sqlite3_errmsg(db) says which).
 */
int openlineage_build(const struct openlineage *ol, sqlite3 *db, int64_t run_id,
                      enum openlineage_stage stage, char **event, const char **event_type);

/*
 * 1 when a process of the run used the mount (an access, or a create,
 * rename, unlink ... through it), 0 when not (a run recorded only as the
 * ancestor of other processes: no lineage, no events), -1 on a store error.
 */
int openlineage_run_touched(sqlite3 *db, int64_t run_id);

/*
 * The processes row whose image the run's START describes (its root as it
 * started, or its first recorded process when the root never used the
 * mount): 1 with *process_id set, 0 for a run with no process yet, -1 on a
 * store error.
 */
int openlineage_start_process(sqlite3 *db, int64_t run_id, int64_t *process_id);

/*
 * Write every run that used the mount, started at or after since_ns (INT64_MIN: all) whose job
 * is job (NULL: any) to out, oldest first: its START, then its terminal
 * event once its root has ended.  0, or -1 on a store error.
 */
int openlineage_export(const struct openlineage *ol, sqlite3 *db, int64_t since_ns, const char *job,
                       FILE *out);

#endif
