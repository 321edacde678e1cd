/*
 * label_store.h - what the tools read of the label policy from provfs.conf
 * and the store: the path rule of a path, a file's effective label as the
 * store records it, and the clearance a recorded process had.
 *
 * The daemon (policy/) is the authority on labels: it decides at open with
 * its in-memory state, and `getfattr -n user.provfs.label` asks it.  The
 * tools answer questions about the past and about files no mount serves
 * now, so they rebuild the same answer from what the daemon recorded:
 *
 *   effective label = the forced label of a declassification of the file's
 *                     current version, if that is the file's last
 *                     label_changes row; else the highest of
 *                       its path rule ([paths], most specific glob wins,
 *                         ties to the later line),
 *                       its explicit label (the last label_changes row,
 *                         when it is not forced; a NULL level removed it),
 *                       its propagated label (versions.label of the
 *                         current version, from label_from_version_id).
 *   Only the last change counts, as in the daemon: a set or an unset after
 *   a declassification ends it, and a declassification replaces the
 *   explicit label set before it (which does not return when the file is
 *   written again and the declassification lapses).
 *   Equal levels name the rule first, then the explicit label, then the
 *   propagation, so a source is shown only when it raised the label.
 *
 * Levels are ranked by their place in [classification] levels; a level the
 * store holds but the configuration no longer names ranks -1 (below every
 * level) and is shown as it was stored.
 *
 * Clearance of a recorded process (for provfs-query exposure): see
 * label_clearance_of() below.
 *
 * Ownership: struct label_facts is filled by label_facts_load() and emptied
 * by label_facts_release(); its strings belong to it, and rule points into
 * the configuration, which must outlive it.
 */
#ifndef PROVFS_LABEL_STORE_H
#define PROVFS_LABEL_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"

#define LABEL_NONE INT64_MIN

/* The rank of level (0 = lowest), or -1 when the configuration lacks it. */
int label_rank(const struct provfs_config *config, const char *level);

/* The [paths] rule that decides path (relative to the mount root), or NULL. */
const struct path_rule *label_path_rule(const struct provfs_config *config, const char *path);

struct label_facts {
	int64_t file_id;
	int64_t version_id; /* the current version, LABEL_NONE when none was recorded */
	int64_t version_number;
	const struct path_rule *rule; /* NULL: no rule matches */
	char *explicit_level;         /* NULL: none set (or removed) */
	int64_t explicit_uid, explicit_ns;
	char *propagated; /* NULL: the current version carries no propagated label */
	int64_t from_version_id;
	char *from_path; /* the input's file, its version number and hash */
	int64_t from_number;
	char *from_hash;
	char *declassified; /* forced level of the current version, or NULL */
	char *declassify_reason;
	int64_t declassify_uid, declassify_ns;
	/* The answer: a level name (belongs to the facts or the config) and its source. */
	const char *effective; /* NULL: nothing labels the file (the lowest level applies) */
	const char *source;    /* "declassified", "rule", "explicit", "propagated", "default" */
};

/*
 * Load the label facts of file_id, whose current path (relative to the mount
 * root) is path.  Returns 0, or -1 with SQLite's message in error.
 */
int label_facts_load(sqlite3 *db, const struct provfs_config *config, int64_t file_id,
		     const char *path, struct label_facts *facts, char *error, size_t error_size);

/*
 * The same for one version of the file (version_id; LABEL_NONE: the current
 * one, as label_facts_load), for the tools that show past versions: the
 * label that version carried when it was superseded by the next one (the
 * current version: now), so that an old version never shows a label set
 * after it was replaced, and the current one shows what
 * `provfs-label get` shows.
 *   - propagated: versions.label of that version (the daemon records it
 *     per version);
 *   - explicit: the last label_changes row set before the next version was
 *     recorded, when it is not forced (labels belong to the file: one set
 *     before the version was written still held while it was current);
 *   - declassified: that row, when it is forced and of that version;
 *   - rule: the rule of path, the name the caller shows the file by (the
 *     store keeps no policy history: the rules of the configuration given).
 */
int label_facts_load_version(sqlite3 *db, const struct provfs_config *config, int64_t file_id,
			     int64_t version_id, const char *path, struct label_facts *facts,
			     char *error, size_t error_size);
void label_facts_release(struct label_facts *facts);

/*
 * Finalize the statements label_facts_load() keeps prepared on its
 * connection; call before closing the store (sqlite3_close() refuses a
 * connection with live statements).
 */
void label_store_finish(void);

/*
 * The clearance a recorded process image had, and how that is known:
 *
 *   "denial"  a denial record of this image states the clearance the daemon
 *             computed when it refused an open: the daemon's own answer;
 *   "grants"  otherwise the grants of the configuration are evaluated against
 *             what the store recorded of the image: its uid (user:, uid:),
 *             its gid and the user's groups as the system lists them now
 *             (group:), its executable and hash (exe:), its executable,
 *             argv and cwd judged by the daemon's own script: rules
 *             (policy_script_fails()) and the hash of a version of the
 *             script it read (script:), its run's PROVFS_JOB (job:).
 *             Tracing and injecting variables (LD_PRELOAD and the like)
 *             are not kept, so they are taken to be absent; the other
 *             facts the daemon read from the kernel are rebuilt or taken
 *             on the side that reports the read (label_store.c,
 *             recorded_facts()).
 *   "default" no grant holds: default_clearance.
 *
 * *level points into the configuration or into buffer (for a denial's
 * clearance).  Returns 0, or -1 with SQLite's message in error.
 */
int label_clearance_of(sqlite3 *db, const struct provfs_config *config, int64_t image_id,
		       char *buffer, size_t buffer_size, const char **level, const char **how,
		       char *error, size_t error_size);

/* Does the table have this column?  (Columns a later schema may add.) */
bool label_has_column(sqlite3 *db, const char *table, const char *column);

#endif
