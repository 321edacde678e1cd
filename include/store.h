/*
 * store.h - the provenance store: one SQLite database, schema and migrations.
 *
 * The schema, with what every table and column means, is store/schema.sql;
 * this module opens a store, creates or migrates it, and refuses one it
 * cannot trust (corrupt, or written by a newer provfs).  It is shared by
 * the daemon (read-write, through the recorder's writer thread only) and by
 * provfs-query and provfs-label (read-only), and by provfs-query prune
 * (STORE_MAINTAIN).
 *
 * Space: a store created by this provfs uses auto_vacuum=INCREMENTAL, so
 * prune can hand freed pages back to the filesystem in short steps while a
 * daemon records (PRAGMA incremental_vacuum).  A store created before has
 * auto_vacuum=NONE: prune's freed pages are reused by the store as it grows,
 * and the file shrinks only after an offline
 * `sqlite3 STORE 'PRAGMA auto_vacuum = INCREMENTAL; VACUUM'` (no mount
 * recording into it meanwhile).  The writer's connection trims the -wal
 * file to 16 MiB after a checkpoint and empties it at close
 * (journal_size_limit), so a WAL grown behind a long reader does not stay.
 */
#ifndef PROVFS_STORE_H
#define PROVFS_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

#define STORE_SCHEMA_VERSION 8

struct store;

enum store_mode {
	STORE_READ_ONLY,
	STORE_READ_WRITE, /* creates the file and its directory when missing */
	/*
	 * An existing store of this schema version, opened for writing by a
	 * maintenance command (provfs-query prune): never created, never
	 * migrated (migrating is the daemon's job), refused like a reader
	 * refuses it when older or newer.
	 */
	STORE_MAINTAIN,
};

/*
 * Open the store at path.  For STORE_READ_WRITE the directory and file are
 * created readable by root and reader_group only (NULL: root only), WAL
 * mode is set, and the schema is created or migrated.  On error returns
 * NULL with a one-line message in error, e.g. "store '/x' has schema
 * version 3, newer than this provfs understands (1)".
 */
struct store *store_open(const char *path, enum store_mode mode, const char *reader_group,
			 char *error, size_t error_size);

/* The connection; owned by the store. */
sqlite3 *store_db(struct store *store);

void store_close(struct store *store);

#endif
