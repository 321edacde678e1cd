/*
 * writer_watch_i.h - private to fs/: which processes write the files whose
 * writes the kernel passes through (fs/writer_watch.c).
 */
#ifndef PROVFS_WRITER_WATCH_I_H
#define PROVFS_WRITER_WATCH_I_H

#include <sys/types.h>

struct writer_watch;
struct writer_watch_file;

/*
 * Called on the watch's own thread: process pid wrote (device, inode), a
 * file watched with writer_watch_add().  pid 0: the kernel's queue
 * overflowed and writes of the file may have gone unseen.  Never called
 * for the daemon's own writes.
 */
typedef void writer_watch_report_fn(void *context, dev_t device, ino_t inode, pid_t pid);

/*
 * A fanotify group that reports writes; nothing is watched and no thread
 * runs yet.  NULL with errno set when the kernel cannot give one (no
 * fanotify, no FAN_REPORT_FID).
 */
struct writer_watch *writer_watch_new(writer_watch_report_fn *report, void *context);

/* Start the reading thread (after daemonizing: fork keeps only the caller,
 * and the daemon's own writes are told apart by its pid then).  0 or a
 * negative errno. */
int writer_watch_start(struct writer_watch *watch);

/* Stop the thread and free everything; watched files are let go. */
void writer_watch_free(struct writer_watch *watch);

/*
 * Report the writes to fd's file (an open descriptor of the backing file,
 * device and inode its identity) from now on, until the matching
 * writer_watch_remove().  Files are counted: a file already watched is
 * only counted again.  Must be called before the caller can write, that
 * is before the open is replied to.  The file's token, or NULL with errno
 * set.
 */
struct writer_watch_file *writer_watch_add(struct writer_watch *watch, int fd, dev_t device,
					   ino_t inode);

/*
 * Deliver every write the kernel queued before this call: returns when
 * the reports of all writes completed before it have been made, or after
 * a bounded wait (then logged once).  For the release of a handle, whose
 * writes have all completed: its writers are known to the observer before
 * it decides who produced the file.
 */
void writer_watch_drain(struct writer_watch *watch);

/* Stop counting file (the token of writer_watch_add()); fd: an open
 * descriptor of it, to drop the mark with the last count. */
void writer_watch_remove(struct writer_watch *watch, struct writer_watch_file *file, int fd);

#endif
