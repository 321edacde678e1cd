/*
 * writer_watch_i.h - private to fs/: which processes write the files whose
 * writes the kernel passes through, identified while they wait
 * (fs/writer_watch.c).
 */
#ifndef PROVFS_WRITER_WATCH_I_H
#define PROVFS_WRITER_WATCH_I_H

#include <stdbool.h>
#include <sys/types.h>

struct writer_watch;
struct writer_watch_file;

/*
 * What the watch asks of its user.  All three are called on the watch's
 * own threads, never with a lock of the watch held, and never for the
 * daemon's own accesses.
 */
struct writer_watch_ops {
	void *context;
	/*
	 * Process pid is about to read or write a watched file and waits, in
	 * that system call, until this returns: it is certainly alive.  Its
	 * identity as a token with a new reference, or NULL when it cannot be
	 * had.  Called before every such access: it must be cheap for a
	 * process it has seen (a cache, no /proc read).
	 */
	void *(*identify)(void *context, pid_t pid);
	/* Drop a reference identify() or identify_since() gave. */
	void (*forget)(void *context, void *token);
	/*
	 * Process pid wrote a file watched late (writer_watch_add()), some
	 * time after since_ns (CLOCK_MONOTONIC), and no longer waits: its
	 * identity as identify() gives it, but only when the process has
	 * certainly had it since since_ns (no exec, no exit); else NULL.
	 */
	void *(*identify_since)(void *context, pid_t pid, int64_t since_ns);
	/*
	 * Process pid wrote (device, inode).  token (borrowed for the call):
	 * its identity taken as it waited before that write, or certainly
	 * its own at the write (late), NULL when it is unknown.  checked:
	 * the identity was looked for, so NULL means unknown; false when the
	 * watch let the write go unidentified (stuck), and an identity pid had
	 * at an earlier write may stand in.  pid 0: writes of the file may
	 * have gone unseen.
	 */
	void (*report)(void *context, dev_t device, ino_t inode, pid_t pid, void *token,
		       bool checked);
};

/*
 * A fanotify group of class FAN_CLASS_PRE_CONTENT (Linux 6.14), nothing
 * watched yet, no thread running.  backing_fd: a descriptor of the backing
 * directory, whose filesystem must accept pre-content marks (ext4 does,
 * tmpfs does not: filesystems opt in).  NULL with errno set when the kernel cannot
 * give one: no fanotify, no pre-content events (EINVAL), no privilege
 * (EPERM), a filesystem that refuses them (EOPNOTSUPP).
 */
struct writer_watch *writer_watch_new(const struct writer_watch_ops *ops, int backing_fd);

/* Start the threads (after daemonizing: the daemon's own accesses are told
 * apart by its pid).  0 or a negative errno. */
int writer_watch_start(struct writer_watch *watch);

/* Stop the threads and free everything; every access still waiting is
 * allowed (closing the group answers them), watched files are let go. */
void writer_watch_free(struct writer_watch *watch);

/*
 * Identify the processes that read or write fd's file (an open descriptor
 * of the backing file; device and inode its identity) from now on, and
 * report those that write, until the matching writer_watch_remove().  Must
 * be called before the file is opened for the caller (before the open is
 * replied to): the kernel decides at open whether a file's accesses raise
 * pre-content events.  late: for a handle that also reads, whose reads
 * must not wait: nobody waits, and each writer is identified after its
 * write (see LATE above).  Files are counted: a file already watched is
 * only counted again, and *shared says so (when it is false, no write of
 * the file can be waiting to be reported: the last release drained them).
 * The file's token, or NULL with errno set (EOPNOTSUPP: its filesystem
 * refuses; EBUSY: the file is watched the other way, late or not, while
 * it has handles).
 */
struct writer_watch_file *writer_watch_add(struct writer_watch *watch, int fd, dev_t device,
					   ino_t inode, bool late, bool *shared);

/*
 * Report every write made before this call: returns when all the write
 * events the kernel had queued are handled, or after a bounded wait (then
 * logged once).  For the release of a handle, whose writes have all
 * completed, so that its writers are known before it is recorded closed.
 */
void writer_watch_drain(struct writer_watch *watch);

/* Stop counting file (the token of writer_watch_add()); fd: an open
 * descriptor of it, to drop the mark with the last count. */
void writer_watch_remove(struct writer_watch *watch, struct writer_watch_file *file, int fd);

#endif
