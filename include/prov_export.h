/*
 * prov_export.h - provfs lineage as a W3C PROV document (PROV-JSON or
 * PROV-O Turtle).
 *
 * A document is a scope (processes and file versions chosen by the caller:
 * the runs of an export, or the nodes of a lineage graph) and everything
 * PROV can say among them:
 *
 *   entity     a file version, id from its host, file, version number and
 *              path (identical bytes written twice are two entities); hash,
 *              size, label, path as attributes; specializationOf the file
 *              (an entity too); wasRevisionOf the version before it.
 *   activity   a process (all its execve() images: an open handle crosses
 *              exec) with start and end times and argv; a run (start, end).
 *   agent      the user (prov:Person) and the program (prov:SoftwareAgent,
 *              by executable hash) of each process.
 *   relations  used and wasGeneratedBy, qualified with times (the open of
 *              the handle; the close that made the version); wasAssociatedWith
 *              (user, program); wasStartedBy for fork (the parent process
 *              started the child); wasDerivedFrom from each version a
 *              process used to each version it generated later.
 * Times are xsd:dateTime in UTC with an explicit "+00:00" offset.
 *
 * PROV-CONSTRAINTS this output keeps: an activity's start precedes its end
 * (its end is the later of its exit and its last close); usage and
 * generation lie within their activity (its start is the earlier of the
 * kernel's start time, which is derived from the boot time to the second,
 * and its first recorded open); one generation per entity (the version's
 * producer, its last writer to close).
 *
 * Ownership: prov_document_new() returns a document freed with
 * prov_document_free(); the add functions read the store through db.
 * Every function returns 0, or -1 on a store error (sqlite3_errmsg(db)).
 */
#ifndef PROVFS_PROV_EXPORT_H
#define PROVFS_PROV_EXPORT_H

#include <sqlite3.h>
#include <stdint.h>
#include <stdio.h>

struct provfs_config;
struct prov_document;

enum prov_format {
	PROV_FORMAT_JSON, /* PROV-JSON (W3C Member Submission), one document */
	PROV_FORMAT_O,    /* PROV-O in Turtle */
};

/* Dataset paths are mapped through config's [openlineage] path_map. */
struct prov_document *prov_document_new(const struct provfs_config *config);
void prov_document_free(struct prov_document *doc);

/*
 * Called as prov_add_runs() adds processes: done of total so far (a
 * progress bar for a large store).  May be NULL.
 */
typedef void prov_progress_fn(void *context, int64_t done, int64_t total);

/*
 * Every process of the runs started at or after since_ns whose job is job
 * (NULL: any); progress, if not NULL, is told how far it got.
 */
int prov_add_runs(struct prov_document *doc, sqlite3 *db, int64_t since_ns, const char *job,
                  prov_progress_fn *progress, void *progress_context);
/* The process one of whose images is the processes row image_id. */
int prov_add_process(struct prov_document *doc, sqlite3 *db, int64_t image_id);
/* One file version (a versions row). */
int prov_add_version(struct prov_document *doc, sqlite3 *db, int64_t version_id);

/*
 * Load what the scope needs (versions the processes used or generated when
 * prov_add_runs chose them) and write the document to out.
 */
int prov_write(struct prov_document *doc, sqlite3 *db, enum prov_format format, FILE *out);

#endif
