/*
 * labels.h - classification labels enforced at open (the label policy at work).
 *
 * The labels module is an observer of the filesystem layer placed in front
 * of the recorder (it wraps the recorder's observer as sshfs's cache wraps
 * its next operations): every open for reading or executing is checked
 * against the caller's clearance (policy.h) and refused with EACCES, with
 * a denial record, when the file's effective label is above it.
 *
 * Effective label of a file = the highest of
 *   - the path rule of the path it is opened by,
 *   - the highest path rule any of its names had (the inode index: built
 *     by walking the backing tree under labeled rules at mount and reload,
 *     and kept up to date at open, create and rename, so a hard link or a
 *     rename into a public directory still carries the label),
 *   - its explicit label (user.provfs.label, set by an admin),
 *   - its propagated label (what the processes that wrote it had read);
 * or exactly the declassified level while a forced explicit label holds
 * (until the file is next opened for writing).  Labels belong to the inode
 * (device, inode).  Levels are the policy's indexes, 0 the lowest.
 *
 * Propagation.  A process's read level is the highest label it opened for
 * reading, plus what its ancestors had read before it was started (fork
 * inherits memory), plus, with propagation = run, what any process of its
 * run read.  It raises at once every file the process opens for writing,
 * and every file it or an ancestor holds open for writing when it reads
 * (the shell opened `> out` before `cat secret` ran).  With no_write_down
 * such opens are refused instead.  The limit of the default scope: data a
 * process passes to an unrelated process (a pipe to a sibling, a socket, a
 * file descriptor passed over a socket) carries no label; `run` catches
 * siblings of one run, nothing catches a descriptor passed to another run.
 *
 * Virtual xattrs (user.provfs.*) are answered here; see ../shared/INTERFACES.md
 * and the README.  They never reach the backing file.  Other user.* xattrs
 * of a regular file are its data (check_xattr): reading one is decided
 * like an open for reading ("xattr-read" denials) and propagates like one;
 * setting or removing one by a process that has read above the file's
 * label is refused ("write-down"), since no handle raises the file.
 * system.* (ACLs), security.*, trusted.* and listxattr are not decided.
 *
 * Threads: the observer callbacks run on FUSE request threads and never
 * touch SQLite, hash a file nor walk a directory: labels live in memory;
 * persisted ones are loaded at mount; a script: grant's hash comes from a
 * hash pool thread; the files below a directory renamed through the mount
 * are walked by a thread of the module's own, which keeps in the store the
 * rule labels their new names no longer give them (so a remount finds
 * them labeled).  Audit rows go through the recorder's queue.
 *
 * The admin route: system.provfs.label and system.provfs.declassify are
 * answered like their user.provfs.* names (same check: root or
 * admin_group).  The kernel checks user.* changes against the file's mode
 * (write permission), not system.* ones, so an admin labels files it may
 * not write; provfs-label takes that route when the kernel refuses.
 */
#ifndef PROVFS_LABELS_H
#define PROVFS_LABELS_H

#include <stdbool.h>

#include "config.h"
#include "passthrough.h"

struct labels;
struct recorder;

struct labels_options {
	const struct provfs_config *config; /* compiled now; not kept */
	const char *config_path;            /* for reloads; NULL: the default path */
	const char *backing_dir;            /* canonical */
	const char *mount_point;            /* canonical */
	int backing_fd;                     /* O_PATH of the backing root; borrowed */
	const char *store_path;             /* persisted labels; NULL: none */
	struct recorder *recorder;          /* audit rows and the next observer; may be NULL */
};

/*
 * Compile the policy, index the backing tree under labeled rules and load
 * the labels persisted in the store.  NULL with a one-line message in
 * error when the policy cannot be compiled.
 */
struct labels *labels_new(const struct labels_options *options, char *error, size_t error_size);

/* Start after daemonizing (the process table, the reload thread). */
int labels_start(struct labels *labels);

/* The observer for fs_set_observer: labels first, then the recorder. */
const struct fs_observer *labels_observer(struct labels *labels);

/*
 * Ask for provfs.conf to be reloaded (async-signal-safe: a SIGHUP handler
 * calls it).  The reload thread compiles the new file; a file that fails
 * leaves the policy in force, is logged and counted (mount_sessions).
 */
void labels_request_reload(struct labels *labels);

/*
 * Stop threads (the walks of renamed directories already queued are
 * finished first: their kept labels reach the recorder, so stop it after
 * this), log the decision timings, free everything.
 */
void labels_stop(struct labels *labels);

#endif
