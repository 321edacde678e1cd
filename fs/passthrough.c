/**
 * @file
 * passthrough.c - the provfs filesystem layer.
 *
 * DESIGN
 *
 * The kernel names files by node ids; each node id here is the address of a
 * struct fs_inode holding an O_PATH descriptor of the backing inode, found
 * again by (device, inode) so hard links share one node.  The kernel counts
 * lookups; the node lives until forget() brings the count to zero.
 *
 * Resolution is one component at a time: openat(parent_fd, name,
 * O_PATH|O_NOFOLLOW).  A symlink in the backing tree is therefore never
 * followed by the daemon (the kernel follows it, in the caller's namespace
 * and with the caller's rights, like any symlink).  Names are single
 * components; "." and ".." and names with '/' are refused.  Opening a node
 * for I/O reopens its O_PATH descriptor through /proc/self/fd, which names
 * exactly that inode and resolves nothing.
 *
 * Permissions are checked by the kernel (default_permissions, with POSIX
 * ACLs enabled so the kernel evaluates them too).  The daemon then works as
 * root, except where the caller's identity shapes the result: creating a
 * node runs with the caller's fsuid, fsgid, groups and umask (caller.h), so
 * ownership, setgid directories, default ACLs and quotas come out as on the
 * native filesystem.
 *
 * Caching: entries and attributes are cached by the kernel for `timeout`
 * seconds, and data in its page cache.  Page cache is kept across opens only
 * when the backing file's size, mtime and ctime are as they were when it was
 * last closed through the mount; a change made directly in the backing
 * directory drops it, so no reader is served stale bytes.  The kernel's
 * writeback cache is off by default: with it the kernel owns a file's size
 * and mtime, so it would miss changes made outside the mount and answer
 * SEEK_DATA/SEEK_HOLE before its dirty pages reach the backing file.  It is
 * there for those who accept that (-o writeback_cache); then write-only
 * opens are widened to read-write (the kernel reads around partial pages)
 * and O_APPEND is left to the kernel.
 *
 * Locks (flock and POSIX) are handled by the kernel for the mount, which
 * is exact as long as the backing tree is reached only through the mount
 * (mount in place).
 *
 * Errors: every operation replies exactly once, with fuse_reply_err(req,
 * errno) on failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "caller.h"
#include "log.h"
#include "passthrough.h"
#include "session_io_i.h"

struct fs_inode {
	int fd; /* O_PATH, owned */
	dev_t device;
	ino_t inode;
	uint64_t lookup_count;  /* protected by fs->table_lock */
	struct fs_inode *next;  /* hash chain, protected by fs->table_lock */

	/* Backing file as last seen closed through the mount; keep_cache
	 * is granted only while it still matches.  Protected by stamp_lock. */
	pthread_mutex_t stamp_lock;
	bool stamp_valid;
	off_t stamp_size;
	struct timespec stamp_mtime, stamp_ctime;
};

struct fs_handle {
	int fd;
	struct fs_inode *inode;
	void *cookie; /* observer's per-handle state */
};

struct fs_directory {
	DIR *stream;
	off_t offset;
	struct dirent *entry; /* read but not yet returned */
};

struct fs {
	struct fs_inode root;
	pthread_mutex_t table_lock;
	struct fs_inode **buckets; /* protected by table_lock */
	size_t bucket_count;       /* power of two */
	size_t node_count;
	double timeout;
	bool writeback;
	const struct fs_observer *observer;
	int proc_fd; /* O_PATH of /proc/self/fd */
	struct fuse_session *session; /* for notifications; NULL until attached */
};

static struct fs *
fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct fs_inode *
inode_of(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &fs_of(req)->root;
	return (struct fs_inode *)(uintptr_t)ino;
}

static int
fd_of(fuse_req_t req, fuse_ino_t ino)
{
	return inode_of(req, ino)->fd;
}

static struct fs_handle *
handle_of(struct fuse_file_info *fi)
{
	return (struct fs_handle *)(uintptr_t)fi->fh;
}

/* Name of an O_PATH descriptor under /proc/self/fd, for calls that take paths. */
static void
proc_name(char buffer[static 16], int fd)
{
	snprintf(buffer, 16, "%d", fd);
}

/* Only single, ordinary path components may reach the backing directory. */
static bool
name_is_safe(const char *name)
{
	return name[0] && strchr(name, '/') == NULL && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

static size_t
bucket_of(const struct fs *fs, dev_t device, ino_t inode)
{
	uint64_t key = (uint64_t)inode * 0x9e3779b97f4a7c15ULL ^ (uint64_t)device;

	return (size_t)(key ^ (key >> 29)) & (fs->bucket_count - 1);
}

/* Double the table when it gets crowded.  Caller holds table_lock. */
static void
table_grow(struct fs *fs)
{
	size_t new_count = fs->bucket_count * 2;
	struct fs_inode **buckets = calloc(new_count, sizeof(*buckets));

	if (buckets == NULL)
		return; /* keep working with longer chains */
	struct fs_inode **old = fs->buckets;
	size_t old_count = fs->bucket_count;
	fs->buckets = buckets;
	fs->bucket_count = new_count;
	for (size_t i = 0; i < old_count; i++) {
		struct fs_inode *node = old[i];
		while (node) {
			struct fs_inode *next = node->next;
			size_t b = bucket_of(fs, node->device, node->inode);
			node->next = buckets[b];
			buckets[b] = node;
			node = next;
		}
	}
	free(old);
}

/*
 * Find the node for st, or adopt fd as a new one.  Takes one lookup
 * reference.  fd is consumed: kept by a new node, closed otherwise.
 * Returns NULL (errno ENOMEM) when a new node cannot be allocated.
 */
static struct fs_inode *
table_acquire(struct fs *fs, int fd, const struct stat *st)
{
	struct fs_inode *node;

	if (st->st_dev == fs->root.device && st->st_ino == fs->root.inode) {
		close(fd);
		pthread_mutex_lock(&fs->table_lock);
		fs->root.lookup_count++;
		pthread_mutex_unlock(&fs->table_lock);
		return &fs->root;
	}
	pthread_mutex_lock(&fs->table_lock);
	size_t b = bucket_of(fs, st->st_dev, st->st_ino);
	for (node = fs->buckets[b]; node; node = node->next) {
		if (node->device == st->st_dev && node->inode == st->st_ino) {
			node->lookup_count++;
			pthread_mutex_unlock(&fs->table_lock);
			close(fd);
			return node;
		}
	}
	node = calloc(1, sizeof(*node));
	if (node == NULL) {
		pthread_mutex_unlock(&fs->table_lock);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	node->fd = fd;
	node->device = st->st_dev;
	node->inode = st->st_ino;
	node->lookup_count = 1;
	pthread_mutex_init(&node->stamp_lock, NULL);
	node->next = fs->buckets[b];
	fs->buckets[b] = node;
	if (++fs->node_count > fs->bucket_count)
		table_grow(fs);
	pthread_mutex_unlock(&fs->table_lock);
	return node;
}

static void
table_release(struct fs *fs, struct fs_inode *node, uint64_t count)
{
	pthread_mutex_lock(&fs->table_lock);
	if (count > node->lookup_count) {
		log_error("forget of %" PRIu64 " lookups on a node with %" PRIu64,
			  count, node->lookup_count);
		count = node->lookup_count;
	}
	node->lookup_count -= count;
	if (node->lookup_count == 0 && node != &fs->root) {
		struct fs_inode **link = &fs->buckets[bucket_of(fs, node->device, node->inode)];
		while (*link != node)
			link = &(*link)->next;
		*link = node->next;
		fs->node_count--;
		pthread_mutex_unlock(&fs->table_lock);
		close(node->fd);
		pthread_mutex_destroy(&node->stamp_lock);
		free(node);
		return;
	}
	pthread_mutex_unlock(&fs->table_lock);
}

static int
stat_node(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* Look name up in parent and fill an entry reply; 0 or a positive errno. */
static int
lookup_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
	     struct fuse_entry_param *entry)
{
	struct fs *fs = fs_of(req);
	int fd, error;

	memset(entry, 0, sizeof(*entry));
	entry->attr_timeout = fs->timeout;
	entry->entry_timeout = fs->timeout;
	if (!name_is_safe(name))
		return EINVAL;
	fd = openat(fd_of(req, parent), name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno;
	error = stat_node(fd, &entry->attr);
	if (error) {
		close(fd);
		return -error;
	}
	struct fs_inode *node = table_acquire(fs, fd, &entry->attr);
	if (node == NULL)
		return errno;
	entry->ino = (uintptr_t)node;
	return 0;
}

/* Does anyone want namespace changes?  Saves the stat calls when not. */
static bool
observing_changes(fuse_req_t req)
{
	const struct fs_observer *observer = fs_of(req)->observer;

	return observer && observer->namespace_changed;
}

static void
report_change(fuse_req_t req, struct fs_namespace_event *event)
{
	const struct fs_observer *observer = fs_of(req)->observer;
	struct caller caller;

	if (observer == NULL || observer->namespace_changed == NULL)
		return;
	caller_from_request(req, &caller);
	event->caller = &caller;
	observer->namespace_changed(observer->context, event);
	event->caller = NULL; /* it pointed into this frame */
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->proc_fd < 0)
		log_error("cannot open /proc/self/fd: %s", strerror(errno));

	/* The kernel evaluates ACLs and leaves the umask to us, so that a
	 * default ACL in the backing directory wins over it as on ext4. */
	if (conn->capable & FUSE_CAP_POSIX_ACL)
		conn->want |= FUSE_CAP_POSIX_ACL;
	if (conn->capable & FUSE_CAP_DONT_MASK)
		conn->want |= FUSE_CAP_DONT_MASK;
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE))
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	else
		fs->writeback = false;
	/* Locks stay in the kernel (see the file comment). */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* Data is copied through our buffers so observers can see it. */
	conn->want &= ~(unsigned)(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE |
				  FUSE_CAP_SPLICE_MOVE);
}

/*
 * Reply with a looked-up entry.  When the reply does not reach the kernel
 * (the request was interrupted), the kernel never counts the lookup and
 * will never forget it: give the reference back here.
 */
static void
reply_entry(fuse_req_t req, const struct fuse_entry_param *entry)
{
	if (fuse_reply_entry(req, entry) == -ENOENT && entry->ino)
		table_release(fs_of(req), inode_of(req, entry->ino), 1);
}

static void
op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param entry;
	int error = lookup_entry(req, parent, name, &entry);

	if (error == ENOENT) {
		/* Negative entry: the kernel remembers the name is absent. */
		entry.ino = 0;
		fuse_reply_entry(req, &entry);
	} else if (error) {
		fuse_reply_err(req, error);
	} else {
		reply_entry(req, &entry);
	}
}

static void
op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	table_release(fs_of(req), inode_of(req, ino), nlookup);
	fuse_reply_none(req);
}

static void
op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		table_release(fs_of(req), inode_of(req, forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static void
op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int error;

	if (fi)
		error = fstat(handle_of(fi)->fd, &st) < 0 ? errno : 0;
	else
		error = -stat_node(fd_of(req, ino), &st);
	if (error)
		fuse_reply_err(req, error);
	else
		fuse_reply_attr(req, &st, fs_of(req)->timeout);
}

/* utimensat on a node, which may be a symlink or a file without a handle. */
static int
set_times(struct fs *fs, struct fs_inode *node, const struct timespec times[2],
	  struct fuse_file_info *fi)
{
	char name[16];

	if (fi)
		return futimens(handle_of(fi)->fd, times) < 0 ? errno : 0;
	if (utimensat(node->fd, "", times, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL && errno != EBADF)
		return errno;
	proc_name(name, node->fd);
	return utimensat(fs->proc_fd, name, times, 0) < 0 ? errno : 0;
}

/*
 * Drop suid, sgid and file capabilities from a regular file, as the VFS
 * does when a caller without CAP_FSETID writes or truncates it
 * (setattr_should_drop_suidgid): suid always, sgid when the group may
 * execute or the caller is not in the file's group.  The kernel asks for it
 * per request (see fs/session_io.c); the caller is the one of that request.
 * With notify, the kernel is told to forget the mode it has cached (a
 * setattr reply carries fresh attributes instead).
 */
static int
drop_privileges(fuse_req_t req, struct fs *fs, fuse_ino_t ino, int fd, bool notify)
{
	char name[16], path[32];
	struct stat st;
	bool changed = false;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return 0;
	mode_t mode = st.st_mode & ~(mode_t)S_ISUID;
	if ((mode & S_ISGID) && ((mode & S_IXGRP) || !caller_in_group(req, st.st_gid)))
		mode &= ~(mode_t)S_ISGID;
	proc_name(name, fd);
	if (mode != st.st_mode) {
		if (fchmodat(fs->proc_fd, name, mode & 07777, 0) < 0)
			return -errno;
		changed = true;
	}
	/* removexattr takes a path; /proc/self/fd/N names fd's inode. */
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	if (removexattr(path, "security.capability") == 0)
		changed = true;
	else if (errno != ENODATA && errno != ENOTSUP)
		return -errno;
	if (changed && notify && fs->session)
		fuse_lowlevel_notify_inval_inode(fs->session, ino, -1, 0);
	return 0;
}

/*
 * chown(2), also with owner and group both -1, as the VFS does it
 * (chown_common): the backing filesystem, called as root, updates ctime and
 * drops suid, sgid with group execute and file capabilities from a
 * non-directory.  A caller without the privilege (uid 0 stands for
 * CAP_FSETID) who is not in the file's group also loses a sgid without
 * group execute; root cannot make the backing filesystem see that.
 */
/* Does a write drop anything from this file: suid, sgid, capabilities? */
static bool
has_privileges(struct fs_inode *node, const struct stat *st)
{
	char path[32];

	if (S_ISDIR(st->st_mode))
		return false;
	if ((st->st_mode & S_ISUID) || (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		return true;
	if (!S_ISREG(st->st_mode))
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", node->fd);
	return getxattr(path, "security.capability", NULL, 0) >= 0;
}

/* May the caller of req write the node (mode bits, ACLs, its groups)? */
static bool
caller_may_write(fuse_req_t req, struct fs *fs, struct fs_inode *node)
{
	char name[16];
	bool allowed;

	if (caller_become(req) != 0)
		return false;
	proc_name(name, node->fd);
	allowed = faccessat(fs->proc_fd, name, W_OK, AT_EACCESS) == 0;
	caller_restore();
	return allowed;
}

static int
change_owner(fuse_req_t req, struct fs *fs, struct fs_inode *node, uid_t uid, gid_t gid)
{
	struct stat before;
	bool drop_sgid = false;
	char name[16];

	uid_t caller_uid = fuse_req_ctx(req)->uid;
	if (caller_uid != 0) {
		if (stat_node(node->fd, &before) < 0)
			return errno;
		/*
		 * A request that changes nothing is either chown(f, -1, -1) or the
		 * kernel dropping privileges before a write (KILLPRIV_V2 leaves
		 * that to us); the two look the same.  On ext4 anyone may chown a
		 * file to -1, -1, but when it has privileges to drop only its owner
		 * may (dropping them is a mode change), while a writer drops them
		 * by writing.  So: refuse a caller who is neither, and nobody
		 * strips another user's setuid bit.
		 */
		if (uid == (uid_t)-1 && gid == (gid_t)-1 && caller_uid != before.st_uid &&
		    has_privileges(node, &before) && !caller_may_write(req, fs, node))
			return EPERM;
		if (!S_ISDIR(before.st_mode) && (before.st_mode & (S_ISGID | S_IXGRP)) == S_ISGID &&
		    !caller_in_group(req, before.st_gid))
			drop_sgid = true;
	}
	if (fchownat(node->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (drop_sgid) {
		proc_name(name, node->fd);
		if (fchmodat(fs->proc_fd, name, before.st_mode & 07777 & ~(mode_t)(S_ISUID | S_ISGID),
			     0) < 0)
			return errno;
	}
	return 0;
}

/* Attributes a setattr request may change; the rest are flags. */
#define SETATTR_CHANGES                                                                  \
	(FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE |   \
	 FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW |                \
	 FUSE_SET_ATTR_MTIME_NOW)

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
	   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *node = inode_of(req, ino);
	char name[16];
	int error = 0;
	struct stat st;

	proc_name(name, node->fd);
	/*
	 * Owner before mode: chown clears set-id bits, a mode set with it
	 * must survive.  A request that changes nothing is chown(2) with
	 * owner and group -1 (the kernel sends at most a ctime with it), or
	 * the kernel dropping privileges before a write: both are the same
	 * chown on the backing file.
	 */
	if ((valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) || !(valid & SETATTR_CHANGES)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;
		error = change_owner(req, fs, node, uid, gid);
		if (error)
			goto out;
	}
	if (valid & FUSE_SET_ATTR_MODE) {
		int result = fi ? fchmod(handle_of(fi)->fd, attr->st_mode)
				: fchmodat(fs->proc_fd, name, attr->st_mode, 0);
		if (result < 0)
			goto out_errno;
	}
	if (valid & FUSE_SET_ATTR_SIZE) {
		int result;
		if (fi) {
			result = ftruncate(handle_of(fi)->fd, attr->st_size);
		} else {
			int fd = openat(fs->proc_fd, name, O_WRONLY | O_CLOEXEC);
			if (fd < 0)
				goto out_errno;
			result = ftruncate(fd, attr->st_size);
			int saved = errno;
			close(fd);
			errno = saved;
		}
		if (result < 0)
			goto out_errno;
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_nsec = UTIME_OMIT}};
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			times[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			times[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			times[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			times[1] = attr->st_mtim;
		error = set_times(fs, node, times, fi);
		if (error)
			goto out;
	}
	/* With a chown the kernel asks too, but change_owner() did that part. */
	if (fs_session_kill_requested() && !(valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		error = -drop_privileges(req, fs, ino, node->fd, false);
		if (error)
			goto out;
	}
	error = -stat_node(node->fd, &st);
	if (error)
		goto out;
	if (valid & (FUSE_SET_ATTR_SIZE | FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
		     FUSE_SET_ATTR_GID | FUSE_SET_ATTR_MTIME)) {
		struct fs_namespace_event event = {
			.change = (valid & FUSE_SET_ATTR_SIZE)	 ? FS_CHANGE_TRUNCATE
				  : (valid & FUSE_SET_ATTR_MODE) ? FS_CHANGE_CHMOD
				  : (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))
					  ? FS_CHANGE_CHOWN
					  : FS_CHANGE_TIMES,
			.attributes = &st,
			.parent_fd = -1,
			.new_parent_fd = -1,
		};
		report_change(req, &event);
	}
	fuse_reply_attr(req, &st, fs->timeout);
	return;
out_errno:
	error = errno;
out:
	fuse_reply_err(req, error);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[PATH_MAX + 1];
	ssize_t length = readlinkat(fd_of(req, ino), "", target, sizeof(target));

	if (length < 0)
		fuse_reply_err(req, errno);
	else if (length >= (ssize_t)sizeof(target))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		target[length] = '\0';
		fuse_reply_readlink(req, target);
	}
}

enum node_kind { NODE_SPECIAL, NODE_DIRECTORY, NODE_SYMLINK };

/* mknod, mkdir and symlink: create as the caller, then look the name up. */
static void
make_node(fuse_req_t req, fuse_ino_t parent, const char *name, enum node_kind kind,
	  mode_t mode, dev_t device, const char *link_target)
{
	int parent_fd = fd_of(req, parent);
	struct fuse_entry_param entry;
	int error, result;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	error = -caller_become(req);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	if (kind == NODE_DIRECTORY)
		result = mkdirat(parent_fd, name, mode);
	else if (kind == NODE_SYMLINK)
		result = symlinkat(link_target, parent_fd, name);
	else
		result = mknodat(parent_fd, name, mode, device);
	error = result < 0 ? errno : 0;
	caller_restore();
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	error = lookup_entry(req, parent, name, &entry);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_CREATE,
						   .attributes = &entry.attr,
						   .name = name,
						   .parent_fd = parent_fd,
						   .new_parent_fd = -1};
		report_change(req, &event);
	}
	reply_entry(req, &entry);
}

static void
op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	make_node(req, parent, name, NODE_SPECIAL, mode, rdev, NULL);
}

static void
op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	make_node(req, parent, name, NODE_DIRECTORY, mode, 0, NULL);
}

static void
op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	make_node(req, parent, name, NODE_SYMLINK, 0, 0, link);
}

static void
op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char *new_name)
{
	struct fs *fs = fs_of(req);
	char name[16];

	if (!name_is_safe(new_name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	proc_name(name, fd_of(req, ino));
	if (linkat(fs->proc_fd, name, fd_of(req, new_parent), new_name, AT_SYMLINK_FOLLOW) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	struct fuse_entry_param entry;
	int error = lookup_entry(req, new_parent, new_name, &entry);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_LINK,
						   .attributes = &entry.attr,
						   .new_name = new_name,
						   .parent_fd = -1,
						   .new_parent_fd = fd_of(req, new_parent)};
		report_change(req, &event);
	}
	reply_entry(req, &entry);
}

static void
remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	int parent_fd = fd_of(req, parent);
	struct stat st;
	bool known;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	known = observing_changes(req) &&
		fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (unlinkat(parent_fd, name, flags) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (known) {
		struct fs_namespace_event event = {.change = FS_CHANGE_UNLINK,
						   .attributes = &st,
						   .name = name,
						   .parent_fd = parent_fd,
						   .new_parent_fd = -1};
		report_change(req, &event);
	}
	fuse_reply_err(req, 0);
}

static void
op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, 0);
}

static void
op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	remove_name(req, parent, name, AT_REMOVEDIR);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t new_parent,
	  const char *new_name, unsigned int flags)
{
	int from_fd = fd_of(req, parent), to_fd = fd_of(req, new_parent);
	struct stat st;
	bool known;

	if (!name_is_safe(name) || !name_is_safe(new_name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	known = observing_changes(req) &&
		fstatat(from_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	if (renameat2(from_fd, name, to_fd, new_name, flags) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	/* Attributes after the move: rename changes the ctime. */
	if (known && fstatat(to_fd, new_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		struct fs_namespace_event event = {.change = FS_CHANGE_RENAME,
						   .attributes = &st,
						   .name = name,
						   .new_name = new_name,
						   .flags = flags,
						   .parent_fd = from_fd,
						   .new_parent_fd = to_fd};
		report_change(req, &event);
	}
	fuse_reply_err(req, 0);
}

/* Flags for the backing descriptor of a handle. */
static int
backing_flags(const struct fs *fs, int flags)
{
	flags &= ~(O_NOFOLLOW | O_CREAT | O_EXCL | O_NOCTTY | O_DIRECT);
	if (fs->writeback) {
		/* The kernel may read to fill pages around a write, and it
		 * positions appends itself. */
		if ((flags & O_ACCMODE) == O_WRONLY)
			flags = (flags & ~O_ACCMODE) | O_RDWR;
		flags &= ~O_APPEND;
	}
	return flags | O_CLOEXEC;
}

/* May the kernel keep its cached pages of node for this open? */
static bool
cache_still_valid(struct fs_inode *node, int fd)
{
	struct stat st;
	bool valid;

	if (fstat(fd, &st) < 0)
		return false;
	pthread_mutex_lock(&node->stamp_lock);
	valid = node->stamp_valid && node->stamp_size == st.st_size &&
		node->stamp_mtime.tv_sec == st.st_mtim.tv_sec &&
		node->stamp_mtime.tv_nsec == st.st_mtim.tv_nsec &&
		node->stamp_ctime.tv_sec == st.st_ctim.tv_sec &&
		node->stamp_ctime.tv_nsec == st.st_ctim.tv_nsec;
	pthread_mutex_unlock(&node->stamp_lock);
	return valid;
}

static void
remember_stamp(struct fs_inode *node, int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return;
	pthread_mutex_lock(&node->stamp_lock);
	node->stamp_valid = true;
	node->stamp_size = st.st_size;
	node->stamp_mtime = st.st_mtim;
	node->stamp_ctime = st.st_ctim;
	pthread_mutex_unlock(&node->stamp_lock);
}

static struct fs_node_info
node_info(struct fs_inode *node)
{
	return (struct fs_node_info){.device = node->device, .inode = node->inode,
				     .backing_fd = node->fd};
}

/*
 * Wrap an open descriptor in a handle, tell the observer, fill fi.
 * Consumes fd.  Returns 0 or a positive errno.
 */
static int
attach_handle(fuse_req_t req, struct fs_inode *node, int fd, struct fuse_file_info *fi,
	      bool created)
{
	struct fs *fs = fs_of(req);
	struct fs_handle *handle = malloc(sizeof(*handle));

	if (handle == NULL) {
		close(fd);
		return ENOMEM;
	}
	handle->fd = fd;
	handle->inode = node;
	handle->cookie = NULL;
	fi->keep_cache = !created && cache_still_valid(node, fd);
	fi->fh = (uintptr_t)handle;
	if (fs->observer && fs->observer->opened) {
		struct fs_node_info info = node_info(node);
		handle->cookie = fs->observer->opened(fs->observer->context, req, &info, fd,
						       fi->flags, created);
	}
	return 0;
}

/* Tell the observer a handle is gone, close it and free it. */
static void
discard_handle(struct fs *fs, struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);

	if (fs->observer && fs->observer->released && handle->cookie)
		fs->observer->released(handle->cookie, handle->fd);
	close(handle->fd);
	free(handle);
}

static int
check_open(fuse_req_t req, struct fs_inode *node, const char *name, int flags)
{
	const struct fs_observer *observer = fs_of(req)->observer;

	if (observer == NULL || observer->check_open == NULL)
		return 0;
	struct fs_node_info info = node_info(node);
	return observer->check_open(observer->context, req, &info, name, flags);
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_inode *node = inode_of(req, ino);
	char name[16];
	int fd, error;

	error = -check_open(req, node, NULL, fi->flags);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	proc_name(name, node->fd);
	fd = openat(fs->proc_fd, name, backing_flags(fs, fi->flags));
	if (fd < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (fs_session_kill_requested())
		drop_privileges(req, fs, ino, fd, true);
	error = attach_handle(req, node, fd, fi, false);
	if (error)
		fuse_reply_err(req, error);
	else if (fuse_reply_open(req, fi) == -ENOENT)
		discard_handle(fs, fi); /* interrupted: no release will come */
}

static void
op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
	  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int parent_fd = fd_of(req, parent);
	struct fuse_entry_param entry;
	int fd, error;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	/* The label policy may refuse a new file (no_write_down). */
	error = -check_open(req, inode_of(req, parent), name, fi->flags);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	error = -caller_become(req);
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	/*
	 * Always exclusive and never following a symlink: the kernel sends
	 * CREATE only for a name it believes absent, so the file made here is
	 * new (what the observer and keep_cache are told).  When the name
	 * exists after all (made behind the kernel's back, its negative entry
	 * still cached) and the caller did not ask for O_EXCL, ESTALE makes
	 * the VFS look the name up again and open what is there, with its own
	 * permission checks and following a symlink in the caller's namespace.
	 */
	fd = openat(parent_fd, name, backing_flags(fs, fi->flags) | O_CREAT | O_EXCL | O_NOFOLLOW,
		    mode);
	error = fd < 0 ? errno : 0;
	caller_restore();
	if (error == EEXIST && !(fi->flags & O_EXCL))
		error = ESTALE;
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	error = lookup_entry(req, parent, name, &entry);
	if (error) {
		close(fd);
		fuse_reply_err(req, error);
		return;
	}
	struct fs_inode *node = inode_of(req, entry.ino);
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_CREATE,
						   .attributes = &entry.attr,
						   .name = name,
						   .parent_fd = parent_fd,
						   .new_parent_fd = -1};
		report_change(req, &event);
	}
	error = attach_handle(req, node, fd, fi, true);
	if (error) {
		table_release(fs, node, 1);
		fuse_reply_err(req, error);
		return;
	}
	if (fuse_reply_create(req, &entry, fi) == -ENOENT) {
		discard_handle(fs, fi);
		table_release(fs, node, 1); /* the lookup the kernel never got */
	}
}

/*
 * Thread-local read buffer, grown to the largest request seen.  The key's
 * destructor frees it when the worker thread exits (libfuse ends idle
 * workers, and all of them at unmount).
 */
static _Thread_local char *read_buffer;
static _Thread_local size_t read_buffer_size;
static pthread_key_t read_buffer_key;
static pthread_once_t read_buffer_once = PTHREAD_ONCE_INIT;
static bool read_buffer_key_made;

static void
read_buffer_make_key(void)
{
	read_buffer_key_made = pthread_key_create(&read_buffer_key, free) == 0;
	if (!read_buffer_key_made)
		log_error("cannot create the read buffer key: buffers of ended threads leak");
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
	struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	const struct fs_observer *observer = fs_of(req)->observer;
	ssize_t count;

	if (size > read_buffer_size) {
		char *buffer = realloc(read_buffer, size);
		if (buffer == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		read_buffer = buffer;
		read_buffer_size = size;
		pthread_once(&read_buffer_once, read_buffer_make_key);
		if (read_buffer_key_made)
			pthread_setspecific(read_buffer_key, buffer);
	}
	count = pread(handle->fd, read_buffer, size, offset);
	if (count < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (observer && observer->data_read && handle->cookie)
		observer->data_read(handle->cookie, offset, (size_t)count);
	fuse_reply_buf(req, read_buffer, (size_t)count);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t offset,
	 struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	const struct fs_observer *observer = fs_of(req)->observer;
	ssize_t count;

	/* Without the writeback cache, O_APPEND reached the backing fd and
	 * pwrite() appends there whatever the offset. */
	if (fs_session_kill_requested())
		drop_privileges(req, fs_of(req), ino, handle->fd, true);
	count = pwrite(handle->fd, data, size, offset);
	if (count < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (observer && observer->data_written && handle->cookie)
		observer->data_written(handle->cookie, data, offset, (size_t)count);
	fuse_reply_write(req, (size_t)count);
}

static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/* close() of a duplicate reports deferred write errors of the backing
	 * filesystem to the caller's close(), as the native filesystem would. */
	const struct fs_observer *observer = fs_of(req)->observer;
	int fd = dup(handle_of(fi)->fd);

	if (observer && observer->flushed && handle_of(fi)->cookie)
		observer->flushed(handle_of(fi)->cookie, req);
	if (fd < 0 || close(fd) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_err(req, 0);
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);

	remember_stamp(handle->inode, handle->fd);
	discard_handle(fs_of(req), fi);
	fuse_reply_err(req, 0);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = handle_of(fi)->fd;
	int result = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, result < 0 ? errno : 0);
}

static void
op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_directory *directory = calloc(1, sizeof(*directory));
	int fd, error;

	if (directory == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	fd = openat(fd_of(req, ino), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out_errno;
	directory->stream = fdopendir(fd);
	if (directory->stream == NULL) {
		error = errno;
		close(fd);
		goto out;
	}
	fi->fh = (uintptr_t)directory;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) == -ENOENT) {
		closedir(directory->stream);
		free(directory);
	}
	return;
out_errno:
	error = errno;
out:
	free(directory);
	fuse_reply_err(req, error);
}

static struct fs_directory *
directory_of(struct fuse_file_info *fi)
{
	return (struct fs_directory *)(uintptr_t)fi->fh;
}

static bool
is_dot_or_dotdot(const char *name)
{
	return name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'));
}

static void
read_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
	       struct fuse_file_info *fi, bool plus)
{
	struct fs_directory *directory = directory_of(fi);
	char *buffer = malloc(size);
	size_t used = 0;
	int error = 0;

	if (buffer == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (offset != directory->offset) {
		seekdir(directory->stream, offset);
		directory->entry = NULL;
		directory->offset = offset;
	}
	for (;;) {
		if (directory->entry == NULL) {
			errno = 0;
			directory->entry = readdir(directory->stream);
			if (directory->entry == NULL) {
				error = errno; /* 0 at the end */
				break;
			}
		}
		struct dirent *dirent = directory->entry;
		off_t next = dirent->d_off;
		size_t entry_size;

		if (plus) {
			struct fuse_entry_param entry = {0};
			if (is_dot_or_dotdot(dirent->d_name)) {
				entry.attr.st_ino = dirent->d_ino;
				entry.attr.st_mode = (mode_t)DTTOIF(dirent->d_type);
			} else {
				error = lookup_entry(req, ino, dirent->d_name, &entry);
				if (error == ENOENT) { /* removed meanwhile */
					error = 0;
					directory->entry = NULL;
					directory->offset = next;
					continue;
				}
				if (error)
					break;
			}
			entry_size = fuse_add_direntry_plus(req, buffer + used, size - used,
							    dirent->d_name, &entry, next);
			if (entry_size > size - used) {
				if (entry.ino)
					table_release(fs_of(req), inode_of(req, entry.ino), 1);
				break;
			}
		} else {
			struct stat st = {.st_ino = dirent->d_ino,
					  .st_mode = (mode_t)DTTOIF(dirent->d_type)};
			entry_size = fuse_add_direntry(req, buffer + used, size - used,
						       dirent->d_name, &st, next);
			if (entry_size > size - used)
				break;
		}
		used += entry_size;
		directory->entry = NULL;
		directory->offset = next;
	}
	/* An error after some entries is reported on the next call. */
	if (error && used == 0)
		fuse_reply_err(req, error);
	else
		fuse_reply_buf(req, buffer, used);
	free(buffer);
}

static void
op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
	   struct fuse_file_info *fi)
{
	read_directory(req, ino, size, offset, fi, false);
}

static void
op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
	       struct fuse_file_info *fi)
{
	read_directory(req, ino, size, offset, fi, true);
}

static void
op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_directory *directory = directory_of(fi);

	closedir(directory->stream);
	free(directory);
	fuse_reply_err(req, 0);
}

static void
op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = dirfd(directory_of(fi)->stream);
	int result = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, result < 0 ? errno : 0);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	if (fstatvfs(fd_of(req, ino), &st) < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &st);
}

/*
 * Extended attributes go through /proc/self/fd/N, which names the inode
 * itself (an O_PATH descriptor cannot be used with f*xattr).
 */
static void
xattr_path(fuse_req_t req, fuse_ino_t ino, char path[static 32])
{
	snprintf(path, 32, "/proc/self/fd/%d", fd_of(req, ino));
}

static void
reply_xattr_size_or_data(fuse_req_t req, ssize_t result, size_t size, const char *buffer)
{
	if (result < 0)
		fuse_reply_err(req, errno);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)result);
	else
		fuse_reply_buf(req, buffer, (size_t)result);
}

/* user.provfs.* names belong to the observer (labels, lineage); true when handled. */
static bool
virtual_xattr(fuse_req_t req, fuse_ino_t ino, char op, const char *name, const char *value,
	      size_t size)
{
	const struct fs_observer *observer = fs_of(req)->observer;

	if (strncmp(name, "user.provfs.", 12) != 0)
		return false;
	if (observer == NULL || observer->virtual_xattr == NULL) {
		fuse_reply_err(req, op == 'g' ? ENODATA : ENOTSUP);
		return true;
	}
	struct fs_node_info info = node_info(inode_of(req, ino));
	observer->virtual_xattr(observer->context, req, &info, op, name, value, size);
	return true;
}

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[32], *buffer = NULL;
	ssize_t result;

	if (virtual_xattr(req, ino, 'g', name, NULL, size))
		return;
	xattr_path(req, ino, path);
	if (size) {
		buffer = malloc(size);
		if (buffer == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	result = getxattr(path, name, buffer, size);
	reply_xattr_size_or_data(req, result, size, buffer);
	free(buffer);
}

/*
 * Remove trusted.* names from a listxattr result: the daemon lists as root,
 * and the native filesystem shows those names only to privileged callers
 * (uid 0 stands in for CAP_SYS_ADMIN, which FUSE does not pass on).
 */
static size_t
hide_trusted_names(char *list, size_t length)
{
	size_t kept = 0;

	for (size_t offset = 0; offset < length;) {
		size_t name_length = strnlen(list + offset, length - offset) + 1;
		if (strncmp(list + offset, "trusted.", 8) != 0) {
			memmove(list + kept, list + offset, name_length);
			kept += name_length;
		}
		offset += name_length;
	}
	return kept;
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[32], *buffer = NULL;
	ssize_t result;

	xattr_path(req, ino, path);
	if (fuse_req_ctx(req)->uid != 0) {
		/* The whole list, filtered, answers both the size and the data. */
		for (;;) {
			result = listxattr(path, NULL, 0);
			if (result < 0)
				break;
			char *list = realloc(buffer, (size_t)result + 1);
			if (list == NULL) {
				result = -1;
				errno = ENOMEM;
				break;
			}
			buffer = list;
			result = listxattr(path, buffer, (size_t)result + 1);
			if (result >= 0 || errno != ERANGE)
				break;
		}
		if (result >= 0) {
			result = (ssize_t)hide_trusted_names(buffer, (size_t)result);
			if (size && (size_t)result > size) {
				result = -1;
				errno = ERANGE;
			}
		}
		reply_xattr_size_or_data(req, result, size, buffer);
		free(buffer);
		return;
	}
	if (size) {
		buffer = malloc(size);
		if (buffer == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	result = listxattr(path, buffer, size);
	reply_xattr_size_or_data(req, result, size, buffer);
	free(buffer);
}

static void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
	    size_t size, int flags)
{
	/*
	 * Setting an access ACL may clear the setgid bit, depending on who
	 * sets it (posix_acl_update_mode): done as the caller, as on the native
	 * filesystem.  The kernel has already checked that the caller may.
	 */
	bool as_caller = strcmp(name, "system.posix_acl_access") == 0;
	char path[32];
	int error;

	if (virtual_xattr(req, ino, 's', name, value, size))
		return;
	xattr_path(req, ino, path);
	if (as_caller) {
		error = -caller_become(req);
		if (error) {
			fuse_reply_err(req, error);
			return;
		}
	}
	error = setxattr(path, name, value, size, flags) < 0 ? errno : 0;
	if (as_caller)
		caller_restore();
	fuse_reply_err(req, error);
}

static void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	char path[32];

	if (virtual_xattr(req, ino, 'r', name, NULL, 0))
		return;
	xattr_path(req, ino, path);
	fuse_reply_err(req, removexattr(path, name) < 0 ? errno : 0);
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
	     struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	const struct fs_observer *observer = fs_of(req)->observer;
	int result = fallocate(handle->fd, mode, offset, length);

	/* Punching or zeroing changes content without a write: say so. */
	if (result == 0 && observer && observer->data_written && handle->cookie)
		observer->data_written(handle->cookie, NULL, offset, 0);
	fuse_reply_err(req, result < 0 ? errno : 0);
}

static void
op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t offset_in,
		   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t offset_out,
		   struct fuse_file_info *fi_out, size_t length, int flags)
{
	struct fs_handle *in = handle_of(fi_in), *out = handle_of(fi_out);
	const struct fs_observer *observer = fs_of(req)->observer;
	ssize_t count;

	count = copy_file_range(in->fd, &offset_in, out->fd, &offset_out, length,
				(unsigned)flags);
	if (count < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	if (observer && observer->data_read && in->cookie)
		observer->data_read(in->cookie, offset_in - count, (size_t)count);
	if (observer && observer->data_written && out->cookie)
		observer->data_written(out->cookie, NULL, offset_out - count, (size_t)count);
	fuse_reply_write(req, (size_t)count);
}

static void
op_lseek(fuse_req_t req, fuse_ino_t ino, off_t offset, int whence,
	 struct fuse_file_info *fi)
{
	off_t result = lseek(handle_of(fi)->fd, offset, whence);

	if (result < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, result);
}

static const struct fuse_lowlevel_ops operations = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.open = op_open,
	.create = op_create,
	.read = op_read,
	.write = op_write,
	.flush = op_flush,
	.release = op_release,
	.fsync = op_fsync,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
	.lseek = op_lseek,
};

void
fs_set_observer(struct fs *fs, const struct fs_observer *observer)
{
	fs->observer = observer;
}

int
fs_attach_session(struct fs *fs, struct fuse_session *session)
{
	fs->session = session;
	return fs_session_use_io(session);
}

const struct fuse_lowlevel_ops *
fs_operations(void)
{
	return &operations;
}

struct fs *
fs_new(const struct fs_options *options)
{
	struct fs *fs = calloc(1, sizeof(*fs));
	struct stat st;

	if (fs == NULL)
		return NULL;
	if (fstat(options->backing_fd, &st) < 0)
		goto out_free;
	fs->proc_fd = -1; /* opened in op_init: after daemonizing, "self" changes */
	fs->bucket_count = 1024;
	fs->buckets = calloc(fs->bucket_count, sizeof(*fs->buckets));
	if (fs->buckets == NULL)
		goto out_free;
	pthread_mutex_init(&fs->table_lock, NULL);
	fs->root.fd = options->backing_fd;
	fs->root.device = st.st_dev;
	fs->root.inode = st.st_ino;
	fs->root.lookup_count = 2; /* never dropped */
	pthread_mutex_init(&fs->root.stamp_lock, NULL);
	fs->timeout = options->timeout;
	fs->writeback = options->writeback;
	fs->observer = options->observer;
	return fs;
out_free:
	free(fs);
	return NULL;
}

void
fs_free(struct fs *fs)
{
	if (fs == NULL)
		return;
	for (size_t i = 0; i < fs->bucket_count; i++) {
		struct fs_inode *node = fs->buckets[i];
		while (node) {
			struct fs_inode *next = node->next;
			close(node->fd);
			pthread_mutex_destroy(&node->stamp_lock);
			free(node);
			node = next;
		}
	}
	free(fs->buckets);
	close(fs->root.fd);
	if (fs->proc_fd >= 0)
		close(fs->proc_fd);
	pthread_mutex_destroy(&fs->table_lock);
	pthread_mutex_destroy(&fs->root.stamp_lock);
	free(fs);
}
