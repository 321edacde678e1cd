/*
 * passthrough.h - the filesystem layer: a passthrough of a backing directory.
 *
 * Every inode the kernel knows is named by its file handle (or, where the
 * backing filesystem has none, held as an O_PATH descriptor), with a bounded
 * cache of open O_PATH descriptors, so the tree served is not bounded by
 * the daemon's open-file limit.  Every operation works on those descriptors
 * with *at() system calls, one path component at a time and never following
 * a symlink.  So the daemon cannot be steered out of the backing directory,
 * whatever the callers do to the tree (see fs/passthrough.c for the
 * reasoning).
 *
 * Observers (the provenance recorder, the label policy) attach through
 * struct fs_observer: the layer calls them at open, on data transfer, at
 * release and on namespace changes, on the request thread.  An observer must
 * never block on I/O there; it hands work to its own threads.
 */
#ifndef PROVFS_PASSTHROUGH_H
#define PROVFS_PASSTHROUGH_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct fs;
struct caller;

/* What an observer sees of an inode: identity plus a slot it owns. */
struct fs_node_info {
	dev_t device;
	ino_t inode;
	int backing_fd; /* O_PATH; valid during the callback it is given to (the
			 * layer borrows it from its descriptor cache); never keep it */
	/* opened() only: the kernel reads, writes and maps this handle's data
	 * itself (kernel FUSE passthrough), so data_read and data_written are
	 * never called for it; what it wrote shows only in the file. */
	bool data_bypass;
	/* opened() only, with data_bypass: the handle may write, and the
	 * processes that write through it are reported (bypass_written). */
	bool writers_reported;
	/* opened() only, with writers_reported: after they wrote, not as
	 * they waited (a handle open to read and write: bypass_identify_since). */
	bool writers_reported_late;
	/* opened() only: open_fd's attributes, taken by the layer as it
	 * opened (one fstat for everyone); NULL when they could not be had. */
	const struct stat *open_attributes;
	/*
	 * opened() only: the name the caller looked the file up by, as an
	 * absolute path in the daemon's view (like the target of backing_fd
	 * under /proc/self/fd), when the layer knows it; NULL otherwise (then
	 * backing_fd's own name is the only one the file had when the kernel
	 * was given it).  With name_certain the caller reached the file by
	 * that name and no other; without, it is the caller's latest lookup
	 * of the file, and another of its hard links may have been used.
	 */
	const char *name_path;
	bool name_certain;
	/*
	 * opened() only, for a file the open created: the directory it was
	 * created in (O_PATH, borrowed for the callback like backing_fd) and
	 * its name there, which is certainly the caller's (the create is
	 * exclusive); -1 and NULL otherwise.
	 */
	int created_parent_fd;
	const char *created_name;
	/* opened() only, with created_parent_fd: that directory's identity,
	 * known to the layer, so an observer need not fstat it. */
	dev_t created_parent_device;
	ino_t created_parent_inode;
};

/* Namespace changes reported to observers after they succeeded. */
enum fs_namespace_change {
	FS_CHANGE_CREATE,   /* a new regular file, directory, node or symlink */
	FS_CHANGE_UNLINK,   /* name removed (file or directory) */
	FS_CHANGE_RENAME,   /* name moved; with RENAME_EXCHANGE both ways */
	FS_CHANGE_LINK,     /* a new hard link */
	FS_CHANGE_TRUNCATE, /* size set through setattr */
	FS_CHANGE_CHMOD,
	FS_CHANGE_CHOWN,
	FS_CHANGE_TIMES,    /* atime/mtime set (utimensat, or the kernel's writeback) */
	FS_CHANGE_XATTR,    /* an extended attribute set or removed (setfattr, setfacl) */
};

struct fs_namespace_event {
	enum fs_namespace_change change;
	const struct caller *caller;
	const struct stat *attributes; /* of the node the change is about, if known (an
					* unlink the file outlives: after it) */
	const struct stat *before;     /* setattr, xattr, or an unlink the file outlives (it
					* has another name): its attributes before, if known */
	/* An unlink of the last name of a file open through the mount: its
	 * attributes after (st_nlink 0, the ctime the unlink moved), for a
	 * later open of it through a descriptor (/proc/PID/fd); else NULL. */
	const struct stat *unlinked_open;
	const char *name;              /* component in the parent directory */
	const char *new_name;          /* rename/link target component */
	unsigned int flags; /* rename flags */
	int64_t started_ns; /* rename: CLOCK_MONOTONIC just before it was made; 0 unknown */
	int parent_fd;      /* O_PATH of parent; valid during the callback, -1 unknown */
	int new_parent_fd;  /* O_PATH of new_parent; likewise */
	/* The identities of parent and new_parent as the layer knows them (an
	 * inode of 0: not given), so an observer need not fstat them. */
	dev_t parent_device, new_parent_device;
	ino_t parent_inode, new_parent_inode;
};

/*
 * Callbacks; any may be NULL.  opened() returns an observer cookie stored
 * with the handle and given back to data_read/data_written/released.
 * check_open() may refuse an open with a negative errno (policy).
 */
struct fs_observer {
	void *context;
	int (*check_open)(void *context, fuse_req_t req, const struct fs_node_info *node,
			  const char *name, int flags);
	void *(*opened)(void *context, fuse_req_t req, const struct fs_node_info *node,
			int open_fd, int flags, bool created);
	void (*data_read)(void *cookie, off_t offset, size_t bytes);
	/* The handle's content is about to change (a write, fallocate or
	 * copy_file_range the layer makes): from now until data_write_ended,
	 * the bytes may differ from what was reported.  data_writing comes
	 * on the request thread before the change, data_write_ended after it
	 * (and after its data_written) or after it failed. */
	void (*data_writing)(void *cookie);
	void (*data_write_ended)(void *cookie);
	/* req: the write request (its caller wrote), or NULL */
	void (*data_written)(void *cookie, fuse_req_t req, const void *data, off_t offset,
			     size_t bytes);
	/* close() by the caller of req; never for a read-only handle (no
	 * O_TRUNC), whose closes the kernel is told not to send (noflush).
	 * attributes: the file's, taken by the layer after the close's writes
	 * were all made (one fstat for everyone); NULL when they could not be
	 * had */
	void (*flushed)(void *cookie, fuse_req_t req, const struct stat *attributes);
	/* attributes: the file's as the release found it (one fstat for
	 * everyone); NULL when not taken */
	void (*released)(void *cookie, int open_fd, const struct stat *attributes);
	void (*namespace_changed)(void *context, const struct fs_namespace_event *event);
	/*
	 * A setattr of a regular file (before: its attributes) is under way:
	 * setattr_begin comes before the layer changes the file, setattr_end
	 * after, whether the change succeeded (namespace_changed came between)
	 * or failed.  An observer that sees the file change meanwhile knows
	 * its report is coming.  setattr_begin returns a token for the
	 * setattr_end, NULL for none.
	 */
	void *(*setattr_begin)(void *context, const struct stat *before);
	void (*setattr_end)(void *context, void *token);
	/*
	 * Extended attributes named "user.provfs.*" are virtual (labels,
	 * lineage) and never reach the backing file: the observer replies to
	 * req itself, from any thread.  op is 'g' (get; size is the caller's
	 * buffer size, 0 asks for the length), 's' (set value of size bytes)
	 * or 'r' (remove).  Without this callback: ENODATA, or ENOTSUP to set.
	 */
	void (*virtual_xattr)(void *context, fuse_req_t req, const struct fs_node_info *node,
			      char op, const char *name, const char *value, size_t size);
	/*
	 * Any other "user.*" extended attribute is about to be read ('g') or
	 * set or removed ('s', 'r') on the backing node, for the caller of
	 * req, after the kernel's own permission checks: 0 lets it go on, a
	 * negative errno refuses it (policy).  On the request thread, before
	 * the backing call; node may be of any type (user.* names exist on
	 * regular files and directories).  Never called for listxattr nor for
	 * the other namespaces (system.*, with the POSIX ACLs, security.*,
	 * which the kernel asks about before every write, trusted.*), which
	 * stay the backing filesystem's alone.
	 */
	int (*check_xattr)(void *context, fuse_req_t req, const struct fs_node_info *node,
			   char op, const char *name);
	/*
	 * Writers the kernel passes through (fs/writer_watch.c).  A handle
	 * whose data the kernel passes through (data_bypass) sends no write
	 * requests; the layer identifies instead every process that reads or
	 * writes its file, inside that read(2) or write(2), which waits until
	 * bypass_identify returns (so the process certainly runs), and then
	 * reports those that wrote.  All three are called on the layer's own
	 * threads, never for the daemon's own accesses.
	 *
	 * bypass_identify: process pid's identity, an opaque token with a new
	 * reference, or NULL when it cannot be had.  Called before every read
	 * and write of a watched file: it must answer from a cache for a
	 * process it has seen.  bypass_forget drops such a reference.
	 *
	 * bypass_identify_since: the same for a write reported after it was
	 * made, when the writer no longer waits (a handle open to read and
	 * write, whose reads must not wait for the layer: fs/writer_watch.c):
	 * pid's identity only when the process has certainly had it since
	 * since_ns (CLOCK_MONOTONIC, a time before the write), with no exec
	 * and no exit in between; NULL otherwise.  bypass_identifies_late:
	 * can it answer at all?  Without both, or when it cannot, handles
	 * open to read and write are not passed through.
	 *
	 * bypass_written: process pid wrote the file (device, inode); identity
	 * (borrowed for the call) is what bypass_identify gave as it waited
	 * before that write, or bypass_identify_since after it, NULL when it
	 * is unknown; pid 0: some writes of the file went unseen.  checked:
	 * the identity was looked for at this write, so NULL means unknown;
	 * false when it was not (the layer fell behind and let writes go),
	 * and an identity that pid had at an earlier write may stand in.
	 * Called before released() of the handles it may have written
	 * through.  Stores into a shared mapping are never reported.
	 *
	 * Without the first three, handles that may write are not passed
	 * through when data_written or flushed is set.
	 */
	void *(*bypass_identify)(void *context, pid_t pid);
	void (*bypass_forget)(void *context, void *identity);
	void (*bypass_written)(void *context, dev_t device, ino_t inode, pid_t pid, void *identity,
			       bool checked);
	void *(*bypass_identify_since)(void *context, pid_t pid, int64_t since_ns);
	bool (*bypass_identifies_late)(void *context);
};

struct fs_options {
	int backing_fd;          /* O_PATH|O_DIRECTORY fd of BACKING_DIR; owned by fs */
	double timeout;          /* entry and attribute cache timeout, seconds */
	bool writeback;          /* kernel writeback cache */
	bool noatime;            /* mounted noatime (-o noatime) */
	bool passthrough;        /* kernel FUSE passthrough where offered; not with writeback */
	bool io_uring;           /* FUSE over io_uring where the kernel offers it */
	const struct fs_observer *observer; /* may be NULL; must outlive the fs */
};

/* Create the filesystem state; NULL on error (errno set). */
struct fs *fs_new(const struct fs_options *options);
void fs_free(struct fs *fs);

/* Attach an observer before the filesystem is mounted (it must outlive fs). */
void fs_set_observer(struct fs *fs, const struct fs_observer *observer);

/*
 * Start the layer's own background threads (kept directory listings
 * ending with their entries): once mounted, after fuse_daemonize(), whose
 * fork no thread survives.
 */
void fs_start_threads(struct fs *fs);

/*
 * Stop the layer's own threads, which call observers (the writer watch):
 * after the session loop returned, before the observers are stopped.
 */
void fs_stop_threads(struct fs *fs);

/* The low-level operation table; userdata for fuse_session_new is the fs. */
const struct fuse_lowlevel_ops *fs_operations(void);

/*
 * Attach the mounted session: its /dev/fuse traffic goes through provfs's
 * transport, which takes over dropping privileges on write (see
 * fs/session_io.c), and the fs may notify the kernel of changes.  Call
 * after fuse_session_mount(); 0 or a negative errno.
 */
int fs_attach_session(struct fs *fs, struct fuse_session *session);

/*
 * The session's loop has ended: call before fuse_session_unmount(), which
 * closes /dev/fuse (handles still open, discarded after it, have nothing
 * to release in the kernel any more).
 */
void fs_detach_session(struct fs *fs);

#endif
