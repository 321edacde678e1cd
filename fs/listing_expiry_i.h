/*
 * listing_expiry_i.h - private to fs/: kept directory listings dropped when
 * their entries time out (fs/listing_expiry.c).
 */
#ifndef PROVFS_LISTING_EXPIRY_I_H
#define PROVFS_LISTING_EXPIRY_I_H

#include <fuse_lowlevel.h>

struct listing_expiry;

/* Starts the thread that drops listings timeout_s seconds after they were
 * noted; NULL (errno set) when it cannot.  The caller frees it with
 * listing_expiry_free() before session goes away. */
struct listing_expiry *listing_expiry_new(struct fuse_session *session, double timeout_s);

/* The kernel is filling its listing of directory ino (a listing from
 * offset 0); NULL expiry: nothing to do. */
void listing_expiry_note(struct listing_expiry *expiry, fuse_ino_t ino);

/* Stops the thread; notes still waiting are dropped (the mount is going). */
void listing_expiry_free(struct listing_expiry *expiry);

#endif
