/**
 * @file
 * passthrough.c - the provfs filesystem layer.
 *
 * DESIGN
 *
 * The kernel names files by node ids; each node id here is the address of a
 * struct fs_inode for one backing inode, found again by (device, inode) so
 * hard links share one node.  The kernel counts lookups; the node lives
 * until forget() brings the count to zero.
 *
 * Millions of files, a bounded number of descriptors.  The kernel may
 * remember every inode of a tree it has walked, far more than the daemon
 * may hold open.  So a node is named by the backing filesystem's file handle
 * (name_to_handle_at), and its O_PATH descriptor is only cached: at most a
 * quarter of the open-file limit of them stay open, the least recently used
 * closed first, and a request that needs one borrows it (node_borrow(),
 * reopened with open_by_handle_at on a miss) so that it stays open until
 * the request gives it back.  When the daemon runs out of descriptors
 * anyway, the cache shrinks and the call is retried: a caller never gets
 * EMFILE because of the daemon's own descriptors.  virtiofsd's
 * --inode-file-handles works the same way.  Where the backing filesystem
 * has no usable handles (said once at mount), or for an inode on another
 * mount below the backing directory, the node holds its descriptor for
 * life, as before, and the open-file limit bounds the tree.
 *
 * Handles and confinement.  open_by_handle_at can open any inode of the
 * backing filesystem, inside the backing directory or not, so where a
 * handle comes from matters: only from name_to_handle_at on a descriptor
 * the daemon itself got by the confined resolution below, and it never
 * leaves the daemon (the kernel sees node ids, which are addresses).  A
 * handle therefore names an inode that was reached inside the backing
 * tree, exactly as a descriptor held since that lookup would; its
 * generation makes a reused inode number fail (ESTALE) instead of naming
 * another file.  On Linux 6.13+ handles are connectable: they name the
 * file's directory too, and the kernel resolves them only to a path below
 * the backing root (the mount fd given to open_by_handle_at), so the
 * descriptor has a real path for observers.  A file moved to another
 * directory outside the mount loses that (ESTALE) and is opened by its
 * identity alone; a rename through the mount renews the handle.  Before
 * 6.13, a node remembers its last name instead (see "Name hints").
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
 * Directories are listed without OPENDIR where the kernel allows it
 * (Linux 5.1+) and the backing filesystem's directory offsets stay valid
 * from one open to the next (ext2/3/4, XFS, Btrfs): each READDIR opens the
 * directory, goes to its offset and reads what one reply holds
 * (read_directory()).  That saves the OPENDIR and RELEASEDIR round trips
 * of every listing (find, du, rm -r, git status), and the kernel then
 * caches listings as it caches entries: a change through the mount drops
 * the directory's listing at once, a change made directly in the backing
 * directory is seen once the directory's attributes are older than
 * `timeout`, as a name created there is.  Elsewhere (tmpfs, whose offsets
 * count entries before 6.6, another FUSE filesystem) a listing keeps one
 * open directory from OPENDIR to RELEASEDIR, as before.
 *
 * Locks (flock and POSIX) are handled by the kernel for the mount, which
 * is exact as long as the backing tree is reached only through the mount
 * (mount in place).
 *
 * Errors: every operation replies exactly once, with fuse_reply_err(req,
 * errno) on failure.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "backing_files_i.h"
#include "caller.h"
#include "listing_expiry_i.h"
#include "log.h"
#include "passthrough.h"
#include "session_io_i.h"
#include "session_ring_i.h"
#include "small_writers_i.h"
#include "writer_watch_i.h"

/*
 * A node: one backing inode the kernel knows.  It is named by its file
 * handle when the backing filesystem has them (handle_size > 0); its O_PATH
 * descriptor is then only a cached copy, closed when the cache is full and
 * opened again by handle when a request needs it.  A node without a handle
 * (no handle support, or an inode on another mount below the backing
 * directory) keeps its descriptor for life, as every node once did.
 */
struct fs_inode {
	dev_t device;
	ino_t inode;
	uint64_t lookup_count;  /* protected by fs->table_lock */
	struct fs_inode *next;  /* hash chain, protected by fs->table_lock */

	/* The descriptor cache (see node_borrow()); protected by fs->cache_lock. */
	int fd;                 /* O_PATH, owned; -1 while closed */
	unsigned int borrowers; /* requests using fd: it is not closed meanwhile */
	struct fs_inode *newer, *older; /* in fs's LRU while open and not borrowed */

	/* The handle's bytes follow the node (node_handle()); protected by
	 * fs->cache_lock, since a rename through the mount renews them. */
	bool by_handle;                 /* set once: false, fd held for life */
	unsigned short handle_size;
	unsigned short handle_capacity;
	int handle_type;

	/* Backing file as last seen closed through the mount; keep_cache
	 * is granted only while it still matches.  Protected by stamp_lock. */
	pthread_mutex_t stamp_lock;
	bool stamp_valid;
	off_t stamp_size;
	struct timespec stamp_mtime, stamp_ctime;

	/* When a lookup first saw this regular file with several names (ms of
	 * CLOCK_MONOTONIC), 0 before; see "The name a caller looked up". */
	atomic_uint_least64_t several_names_since;

	/* Where a non-directory was last named through the mount, while
	 * handles are not connectable: see node_reopen_by_hint().  Protected
	 * by fs->cache_lock. */
	struct name_hint *hint; /* owned; NULL: none */

	/* Handles open on it through the mount (the kernel keeps a node with
	 * open files looked up); protected by fs->handles_lock. */
	struct fs_handle *handles;
};

/* A node's directory (its inode, on the node's device) and name in it. */
struct name_hint {
	ino_t parent;
	char name[];
};

#define NAME_SLOTS 64 /* caller threads whose latest lookup is remembered */

struct fs_handle {
	int fd;
	struct fs_inode *inode;
	void *cookie; /* observer's per-handle state */
	fuse_ino_t ino;
	enum fs_io_mode io_mode;
	struct writer_watch_file *watched; /* passthrough writer: its writers are watched */
	bool watch_shared;                  /* another handle was watched when it opened */
	pid_t new_content_thread; /* opened created or truncated by this caller thread, which
				   * small_writers learns from at each close; 0 otherwise */
	bool new_content_counted; /* small_writers_note() */
	atomic_bool content_changed; /* a write, fallocate or copy through it changed the
				      * file (see struct change_attempt) */
	uid_t holder; /* the opener's uid, whose share it counts in (handle_share_take()) */
	struct fs_handle *previous, *next; /* fs->open_handles; fs->handles_lock */
	struct fs_handle *inode_previous, *inode_next; /* inode->handles; likewise */
};

struct fs_directory {
	DIR *stream;
	off_t offset;
	struct dirent64 *entry; /* read but not yet returned */
};

struct fs {
	struct fs_inode root;
	pthread_mutex_t table_lock;
	struct fs_inode **buckets; /* protected by table_lock */
	size_t bucket_count;       /* power of two */
	size_t node_count;

	/*
	 * The descriptor cache: the O_PATH descriptors of nodes with a handle
	 * that are open, at most cache_capacity of them (borrowed ones may
	 * exceed it until given back).  The least recently used unborrowed one
	 * is closed first.  No I/O under cache_lock: descriptors are opened
	 * before and closed after it.
	 */
	pthread_mutex_t cache_lock;
	struct fs_inode *lru_newest, *lru_oldest; /* protected by cache_lock */
	size_t cached_count;                      /* protected by cache_lock */
	size_t cache_capacity;
	int mount_fd;      /* O_RDONLY of the backing root, for open_by_handle_at; -1 */
	int mount_id;      /* of the backing root's mount */
	bool handles;      /* the backing filesystem names inodes by handle */
	bool connectable;  /* ... and its handles name a file's directory (Linux 6.13+) */

	double timeout;
	bool writeback;
	bool noatime; /* mounted noatime: reads leave the backing files' atimes alone */
	int noatime_view_fd;  /* -o noatime: a private noatime clone of the backing mount; -1 */
	int noatime_view_dir; /* O_RDONLY of its root, for open_by_handle_at; -1 */
	struct listing_expiry *listings; /* kept listings end with their entries; or NULL */
	bool stable_directory_offsets; /* the backing filesystem's survive a reopen */
	bool directories_without_open; /* ... and the kernel lists without OPENDIR */
	const struct fs_observer *observer;
	int proc_fd; /* O_PATH of /proc/self/fd */
	struct fuse_session *session; /* for notifications; NULL until attached */
	bool passthrough;             /* offer kernel passthrough (fs_options) */
	bool io_uring;                /* accept FUSE over io_uring (fs_options) */
	struct backing_files *backing_files; /* with passthrough */
	/* Reports who writes through passthrough handles (fs/writer_watch.c);
	 * NULL: handles that may write are not passed through. */
	struct writer_watch *writer_watch;
	atomic_bool watch_failure_logged;
	struct small_writers small_writers; /* whose new files go through the daemon */

	/* The latest lookup of a file with several names, per caller thread
	 * (see remember_name()); protected by names_lock. */
	pthread_mutex_t names_lock;
	/* Every handle the kernel holds, for those it never releases: the daemon
	 * stopped while files were open (SIGTERM after a lazy unmount). */
	pthread_mutex_t handles_lock;
	struct fs_handle *open_handles;
	/* Handles each uid holds (handle_share_take()); protected by handles_lock. */
	struct handle_share *shares;
	size_t share_limit;
	struct looked_up_name {
		pid_t thread; /* 0: free */
		dev_t device;
		ino_t inode;
		uint64_t when; /* ms of CLOCK_MONOTONIC */
		char *path;    /* absolute, owned */
	} names[NAME_SLOTS];
};

/* How many handles one uid holds open (see handle_share_take()). */
struct handle_share {
	uid_t uid;
	size_t count;
	struct handle_share *next;
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

/* The backing identity of directory ino into an event's parent fields. */
static void
identify_parent(fuse_req_t req, fuse_ino_t ino, dev_t *device, ino_t *inode)
{
	const struct fs_inode *node = inode_of(req, ino);

	*device = node->device;
	*inode = node->inode;
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

#ifndef AT_HANDLE_CONNECTABLE
#define AT_HANDLE_CONNECTABLE 0x002 /* Linux 6.13: the handle names the parent too */
#endif
#define HANDLE_TYPE_CONNECTABLE 0x10000 /* FILEID_IS_CONNECTABLE, in handle_type */
#define HANDLE_BYTES_MAX 128           /* MAX_HANDLE_SZ */
#define TRIM_BATCH 16                  /* descriptors closed per lock hold */
#define FUSE_SUPER_MAGIC 0x65735546

/* Room for any file handle. */
union handle_buffer {
	struct file_handle header;
	unsigned char space[sizeof(struct file_handle) + HANDLE_BYTES_MAX];
};

static unsigned char *
node_handle(struct fs_inode *node)
{
	return (unsigned char *)(node + 1);
}

static bool
out_of_descriptors(int error)
{
	return error == EMFILE || error == ENFILE;
}

static void
close_all(const int *fds, size_t count)
{
	for (size_t i = 0; i < count; i++)
		close(fds[i]);
}

/* Caller holds cache_lock for the LRU helpers. */
static void
lru_remove(struct fs *fs, struct fs_inode *node)
{
	if (node->newer)
		node->newer->older = node->older;
	else
		fs->lru_newest = node->older;
	if (node->older)
		node->older->newer = node->newer;
	else
		fs->lru_oldest = node->newer;
	node->newer = node->older = NULL;
}

static void
lru_push(struct fs *fs, struct fs_inode *node)
{
	node->newer = NULL;
	node->older = fs->lru_newest;
	if (fs->lru_newest)
		fs->lru_newest->newer = node;
	else
		fs->lru_oldest = node;
	fs->lru_newest = node;
}

/*
 * Take the least recently used descriptors out of the cache until it holds
 * at most keep (or victims[TRIM_BATCH] is full); the caller closes them
 * after unlocking.  Caller holds cache_lock.
 */
static size_t
cache_trim(struct fs *fs, size_t keep, int victims[static TRIM_BATCH])
{
	size_t count = 0;

	while (fs->cached_count > keep && fs->lru_oldest && count < TRIM_BATCH) {
		struct fs_inode *node = fs->lru_oldest;
		lru_remove(fs, node);
		victims[count++] = node->fd;
		node->fd = -1;
		fs->cached_count--;
	}
	return count;
}

/*
 * The daemon ran out of descriptors (EMFILE, ENFILE): something else holds
 * more than the cache left room for.  Halve the cache, and keep it at that
 * size, so that the failed call can be retried.  Whether any was closed.
 */
static bool
cache_shrink(struct fs *fs)
{
	int victims[TRIM_BATCH];
	size_t count, closed = 0;

	pthread_mutex_lock(&fs->cache_lock);
	if (fs->cache_capacity > 2 * TRIM_BATCH)
		fs->cache_capacity = fs->cache_capacity / 2;
	pthread_mutex_unlock(&fs->cache_lock);
	do {
		pthread_mutex_lock(&fs->cache_lock);
		count = cache_trim(fs, fs->cached_count / 2, victims);
		pthread_mutex_unlock(&fs->cache_lock);
		close_all(victims, count);
		closed += count;
	} while (count == TRIM_BATCH);
	if (closed)
		log_warning("out of descriptors: the inode cache now keeps at most %zu open",
			    fs->cache_capacity);
	return closed > 0;
}

/*
 * Make fd, just opened for node, the node's cached descriptor; when another
 * thread was faster, fd is closed and theirs kept.  With borrow, the caller
 * borrows it (see node_borrow()) and the descriptor is returned; without,
 * it goes in the LRU and -1 is returned.
 */
static int
cache_admit(struct fs *fs, struct fs_inode *node, int fd, bool borrow)
{
	int victims[TRIM_BATCH], extra = -1;
	size_t count;

	pthread_mutex_lock(&fs->cache_lock);
	if (node->fd >= 0) {
		extra = fd;
		fd = node->fd;
		if (node->borrowers == 0)
			lru_remove(fs, node);
	} else {
		node->fd = fd;
		fs->cached_count++;
	}
	if (borrow)
		node->borrowers++;
	else if (node->borrowers == 0)
		lru_push(fs, node);
	count = cache_trim(fs, fs->cache_capacity, victims);
	pthread_mutex_unlock(&fs->cache_lock);
	if (extra >= 0)
		close(extra);
	close_all(victims, count);
	return borrow ? fd : -1;
}

static int node_reopen_by_hint(struct fs *fs, struct fs_inode *node,
			       const union handle_buffer *handle);

/*
 * Open node's inode again from its handle.  The handle came from the
 * daemon's own lookup inside the backing tree (see node_take_handle()), so
 * this reaches an inode that was reached there.  A connectable handle
 * (Linux 6.13+) is resolved by the kernel to a path below mount_fd, the
 * backing root, or refused: the descriptor then names a file inside the
 * tree, with a path the observer can read.  When the file has moved to
 * another directory since (ESTALE), the inode is opened by its identity
 * alone, as a descriptor held since the lookup would still name it.
 */
static int
node_reopen(struct fs *fs, struct fs_inode *node)
{
	union handle_buffer handle;
	int fd, attempts = 0;

	pthread_mutex_lock(&fs->cache_lock);
	handle.header.handle_bytes = node->handle_size;
	handle.header.handle_type = node->handle_type;
	memcpy(handle.header.f_handle, node_handle(node), node->handle_size);
	pthread_mutex_unlock(&fs->cache_lock);
	fd = node_reopen_by_hint(fs, node, &handle);
	if (fd >= 0)
		return fd;
	for (;;) {
		fd = open_by_handle_at(fs->mount_fd, &handle.header, O_PATH | O_CLOEXEC);
		if (fd >= 0)
			return fd;
		int error = errno;
		if (error == ESTALE && (handle.header.handle_type & HANDLE_TYPE_CONNECTABLE)) {
			handle.header.handle_type &= ~HANDLE_TYPE_CONNECTABLE;
			continue;
		}
		if (out_of_descriptors(error) && attempts++ < 2 && cache_shrink(fs))
			continue;
		return -error;
	}
}

/*
 * Borrow node's O_PATH descriptor for the length of a request; give it back
 * with node_return().  A borrowed descriptor stays open and unchanged, so
 * it may be handed to observers (struct fs_node_info) during a callback.
 * Returns the descriptor or -errno (ESTALE: the inode is gone).
 */
static int
node_borrow(struct fs *fs, struct fs_inode *node)
{
	int fd;

	if (!node->by_handle)
		return node->fd; /* held for life, never closed before forget */
	pthread_mutex_lock(&fs->cache_lock);
	fd = node->fd;
	if (fd >= 0 && node->borrowers++ == 0)
		lru_remove(fs, node);
	pthread_mutex_unlock(&fs->cache_lock);
	if (fd >= 0)
		return fd;
	fd = node_reopen(fs, node);
	if (fd < 0)
		return fd;
	return cache_admit(fs, node, fd, true);
}

static void
node_return(struct fs *fs, struct fs_inode *node)
{
	int victims[TRIM_BATCH];
	size_t count;

	if (!node->by_handle)
		return;
	pthread_mutex_lock(&fs->cache_lock);
	assert(node->borrowers > 0 && node->fd >= 0);
	if (--node->borrowers == 0)
		lru_push(fs, node);
	count = cache_trim(fs, fs->cache_capacity, victims);
	pthread_mutex_unlock(&fs->cache_lock);
	close_all(victims, count);
}

/* Borrow the descriptor of the node the kernel calls ino. */
static int
borrow_ino(fuse_req_t req, fuse_ino_t ino)
{
	return node_borrow(fs_of(req), inode_of(req, ino));
}

static void
return_ino(fuse_req_t req, fuse_ino_t ino)
{
	node_return(fs_of(req), inode_of(req, ino));
}

/*
 * The handle of the inode fd names, into *handle.  Asked through
 * /proc/self/fd/N so that a connectable handle can be had (that flag
 * refuses AT_EMPTY_PATH): the magic link resolves to fd's own dentry,
 * nothing is looked up by name.  False when the inode cannot be named by
 * a handle that opens through mount_fd (another mount below the backing
 * directory, or a filesystem without handles): the node then keeps fd.
 */
static bool
node_take_handle(struct fs *fs, int fd, union handle_buffer *handle)
{
	char name[16];
	int mount_id, flags = AT_SYMLINK_FOLLOW | AT_HANDLE_CONNECTABLE;

	if (!fs->handles || fs->proc_fd < 0)
		return false;
	proc_name(name, fd);
	handle->header.handle_bytes = HANDLE_BYTES_MAX;
	if (fs->connectable &&
	    name_to_handle_at(fs->proc_fd, name, &handle->header, &mount_id, flags) == 0)
		goto named;
	/* Not connectable here (tmpfs, a disconnected dentry): by identity alone. */
	handle->header.handle_bytes = HANDLE_BYTES_MAX;
	if (name_to_handle_at(fs->proc_fd, name, &handle->header, &mount_id,
			      AT_SYMLINK_FOLLOW) < 0)
		return false;
named:
	return mount_id == fs->mount_id && handle->header.handle_bytes <= UINT16_MAX;
}

/*
 * Find the node for st, or make a new one for the inode fd names.  Takes
 * one lookup reference.  fd is consumed: cached or kept by the node, or
 * closed.  Returns NULL (errno ENOMEM) when a new node cannot be allocated.
 */
static struct fs_inode *
table_acquire(struct fs *fs, int fd, const struct stat *st)
{
	union handle_buffer handle;
	struct fs_inode *node;
	size_t b;

	if (st->st_dev == fs->root.device && st->st_ino == fs->root.inode) {
		close(fd);
		pthread_mutex_lock(&fs->table_lock);
		fs->root.lookup_count++;
		pthread_mutex_unlock(&fs->table_lock);
		return &fs->root;
	}
	for (bool named = false;; named = true) {
		pthread_mutex_lock(&fs->table_lock);
		b = bucket_of(fs, st->st_dev, st->st_ino);
		for (node = fs->buckets[b]; node; node = node->next) {
			if (node->device == st->st_dev && node->inode == st->st_ino) {
				node->lookup_count++;
				pthread_mutex_unlock(&fs->table_lock);
				if (node->by_handle)
					cache_admit(fs, node, fd, false); /* a fresh copy, or closed */
				else
					close(fd);
				return node;
			}
		}
		if (named)
			break;
		/* New: name it outside the lock, then look again. */
		pthread_mutex_unlock(&fs->table_lock);
		if (!node_take_handle(fs, fd, &handle))
			handle.header.handle_bytes = 0;
	}
	/* table_lock held */
	node = calloc(1, sizeof(*node) + handle.header.handle_bytes);
	if (node == NULL) {
		pthread_mutex_unlock(&fs->table_lock);
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	node->device = st->st_dev;
	node->inode = st->st_ino;
	node->lookup_count = 1;
	node->fd = -1;
	node->handle_size = (unsigned short)handle.header.handle_bytes;
	node->handle_capacity = node->handle_size;
	node->handle_type = handle.header.handle_type;
	memcpy(node_handle(node), handle.header.f_handle, node->handle_size);
	node->by_handle = node->handle_size > 0;
	if (!node->by_handle)
		node->fd = fd;
	/* The kernel holds no entry of a new node: one with several names now
	 * never had one cached as its only name (see "The name a caller
	 * looked up"), its name is known from this lookup on. */
	if (S_ISREG(st->st_mode) && st->st_nlink > 1)
		atomic_init(&node->several_names_since, 1);
	pthread_mutex_init(&node->stamp_lock, NULL);
	node->next = fs->buckets[b];
	fs->buckets[b] = node;
	if (++fs->node_count > fs->bucket_count)
		table_grow(fs);
	pthread_mutex_unlock(&fs->table_lock);
	if (node->by_handle)
		cache_admit(fs, node, fd, false);
	return node;
}

/* Forget node: its descriptor, if open, is closed (no request borrows it now). */
static void
node_free(struct fs *fs, struct fs_inode *node)
{
	int fd;

	pthread_mutex_lock(&fs->cache_lock);
	fd = node->fd;
	if (fd >= 0 && node->by_handle) {
		assert(node->borrowers == 0);
		lru_remove(fs, node);
		fs->cached_count--;
	}
	node->fd = -1;
	pthread_mutex_unlock(&fs->cache_lock);
	if (fd >= 0)
		close(fd);
	pthread_mutex_destroy(&node->stamp_lock);
	free(node->hint);
	free(node);
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
		node_free(fs, node);
		return;
	}
	pthread_mutex_unlock(&fs->table_lock);
}

/*
 * A name of a known inode moved (rename through the mount): renew its
 * connectable handle, which names the directory, so that reopening it
 * still finds a path.  fd is a descriptor of the inode, borrowed.
 */
static void
table_renew_handle(struct fs *fs, const struct stat *st, int fd)
{
	union handle_buffer handle;
	struct fs_inode *node;

	if (!fs->connectable || !node_take_handle(fs, fd, &handle))
		return;
	pthread_mutex_lock(&fs->table_lock);
	for (node = fs->buckets[bucket_of(fs, st->st_dev, st->st_ino)]; node; node = node->next)
		if (node->device == st->st_dev && node->inode == st->st_ino)
			break;
	if (node && node->by_handle && handle.header.handle_bytes <= node->handle_capacity) {
		pthread_mutex_lock(&fs->cache_lock);
		node->handle_size = (unsigned short)handle.header.handle_bytes;
		node->handle_type = handle.header.handle_type;
		memcpy(node_handle(node), handle.header.f_handle, node->handle_size);
		pthread_mutex_unlock(&fs->cache_lock);
	}
	pthread_mutex_unlock(&fs->table_lock);
}

static int
stat_node(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* openat() that makes room in the descriptor cache when the daemon is out. */
static int
open_below(struct fs *fs, int directory_fd, const char *name, int flags)
{
	for (int attempts = 0;; attempts++) {
		int fd = openat(directory_fd, name, flags);
		/* O_NOATIME is for the file's owner and CAP_FOWNER, which a
		 * daemon started without it lacks: such a file opens as ever. */
		if (fd < 0 && errno == EPERM && (flags & O_NOATIME)) {
			flags &= ~O_NOATIME;
			fd = openat(directory_fd, name, flags);
		}
		if (fd >= 0 || !out_of_descriptors(errno) || attempts == 2 || !cache_shrink(fs))
			return fd;
	}
}

/*
 * Name hints, for handles that are not connectable.
 *
 * Before Linux 6.13 (Debian 12 runs 6.1) a file handle names the inode
 * alone.  When the cache has closed a regular file's descriptor and the
 * kernel has evicted its dentry too, open_by_handle_at gives a
 * DISCONNECTED dentry, whose /proc/self/fd path is "/" or "/name" instead
 * of a path below the backing root: observers could then not name the
 * file: its open went unrecorded, and the label policy could not read its
 * path.
 * Directories are always reconnected by the kernel, so such a node keeps
 * where it was last named through the mount (lookup, create, link,
 * rename): its directory's inode and its name.  A reopen first tries
 * openat(directory, name, O_PATH | O_NOFOLLOW), exactly the confined
 * resolution of a lookup, and keeps the result only when it is the same
 * inode with the same handle (generation included); otherwise, after a
 * change made outside the mount, the handle opens it as before.  A hint
 * costs the node a pointer, and apart its directory's inode number and a
 * copy of its name; only observed mounts without connectable handles keep
 * one.
 */
static bool
hints_wanted(const struct fs *fs)
{
	return fs->handles && !fs->connectable && fs->observer != NULL;
}

/* node (a non-directory with a handle, referenced by the caller) is name in parent. */
static void
node_set_hint(struct fs *fs, struct fs_inode *node, const struct fs_inode *parent,
	      const char *name)
{
	size_t length = strlen(name);
	struct name_hint *hint, *old;
	bool same;

	if (!node->by_handle || parent->device != node->device || length > NAME_MAX)
		return;
	pthread_mutex_lock(&fs->cache_lock);
	same = node->hint && node->hint->parent == parent->inode &&
	       strcmp(node->hint->name, name) == 0;
	pthread_mutex_unlock(&fs->cache_lock);
	if (same || (hint = malloc(sizeof(*hint) + length + 1)) == NULL)
		return; /* without memory the old hint stays: a reopen checks it */
	hint->parent = parent->inode;
	memcpy(hint->name, name, length + 1);
	pthread_mutex_lock(&fs->cache_lock);
	old = node->hint;
	node->hint = hint;
	pthread_mutex_unlock(&fs->cache_lock);
	free(old);
}

/* After a lookup of name in the directory parent found entry (a reference held). */
static void
hint_entry(fuse_req_t req, fuse_ino_t parent, const char *name,
	   const struct fuse_entry_param *entry)
{
	struct fs *fs = fs_of(req);

	if (entry->ino && hints_wanted(fs) && !S_ISDIR(entry->attr.st_mode))
		node_set_hint(fs, inode_of(req, entry->ino), inode_of(req, parent), name);
}

/* After a rename through the mount: name in directory (fd borrowed) is a known node's new name. */
static void
hint_moved(struct fs *fs, const struct fs_inode *directory, int directory_fd,
	   const char *name)
{
	struct fs_inode *node;
	struct stat st;
	int fd;

	if (!hints_wanted(fs))
		return;
	fd = openat(directory_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	bool found = stat_node(fd, &st) == 0 && !S_ISDIR(st.st_mode);
	close(fd);
	if (!found)
		return;
	pthread_mutex_lock(&fs->table_lock);
	for (node = fs->buckets[bucket_of(fs, st.st_dev, st.st_ino)]; node; node = node->next)
		if (node->device == st.st_dev && node->inode == st.st_ino)
			break;
	if (node)
		node->lookup_count++; /* kept while the hint is set, outside table_lock */
	pthread_mutex_unlock(&fs->table_lock);
	if (node) {
		node_set_hint(fs, node, directory, name);
		table_release(fs, node, 1);
	}
}

/* The node for (device, inode) with one more reference, or NULL when not known. */
static struct fs_inode *
table_pin(struct fs *fs, dev_t device, ino_t inode)
{
	struct fs_inode *node;

	pthread_mutex_lock(&fs->table_lock);
	if (device == fs->root.device && inode == fs->root.inode)
		node = &fs->root;
	else
		for (node = fs->buckets[bucket_of(fs, device, inode)]; node; node = node->next)
			if (node->device == device && node->inode == inode)
				break;
	if (node)
		node->lookup_count++;
	pthread_mutex_unlock(&fs->table_lock);
	return node;
}

/* Does fd name the inode handle names, generation included? */
static bool
handle_matches(struct fs *fs, int fd, const union handle_buffer *handle)
{
	union handle_buffer found;
	char name[16];
	int mount_id;

	proc_name(name, fd);
	found.header.handle_bytes = HANDLE_BYTES_MAX;
	if (name_to_handle_at(fs->proc_fd, name, &found.header, &mount_id, AT_SYMLINK_FOLLOW) < 0)
		return false;
	return mount_id == fs->mount_id && found.header.handle_type == handle->header.handle_type &&
	       found.header.handle_bytes == handle->header.handle_bytes &&
	       memcmp(found.header.f_handle, handle->header.f_handle,
		      handle->header.handle_bytes) == 0;
}

/*
 * Open node again by its hint, as its directory's child, so that the
 * descriptor has its path below the backing root; handle is the node's.
 * -1 when there is no hint or it names something else now.
 */
static int
node_reopen_by_hint(struct fs *fs, struct fs_inode *node, const union handle_buffer *handle)
{
	char name[NAME_MAX + 1];
	struct fs_inode *parent;
	ino_t parent_inode = 0;
	struct stat st;
	int parent_fd, fd = -1;

	if (fs->connectable || fs->proc_fd < 0)
		return -1;
	pthread_mutex_lock(&fs->cache_lock);
	bool hinted = node->hint != NULL;
	if (hinted) {
		snprintf(name, sizeof(name), "%s", node->hint->name);
		parent_inode = node->hint->parent;
	}
	pthread_mutex_unlock(&fs->cache_lock);
	if (!hinted || (parent = table_pin(fs, node->device, parent_inode)) == NULL)
		return -1;
	parent_fd = node_borrow(fs, parent);
	if (parent_fd >= 0) {
		fd = open_below(fs, parent_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		node_return(fs, parent);
	}
	table_release(fs, parent, 1);
	if (fd >= 0 && (stat_node(fd, &st) != 0 || st.st_dev != node->device ||
			st.st_ino != node->inode || !handle_matches(fs, fd, handle))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * The name a caller looked up.
 *
 * An OPEN names an inode, not the name that led to it, and a file with
 * several hard links can be reached by any of them; yet observers decide
 * by name ([record] exclude: a file reached by a recorded name is
 * recorded, one reached by an excluded name is not).  The kernel resolves
 * a path one LOOKUP at a time on the caller's own thread (a request
 * carries the thread's id), and the LOOKUP of the last component comes
 * right before the OPEN it leads to, unless the kernel had that entry
 * cached.  So:
 *
 * - a regular file seen with several names is never cached as an entry
 *   (timeout 0, sticky for the node's life): every path walk to it sends
 *   a LOOKUP, at the cost of one round trip per walk for such files only;
 * - that LOOKUP is remembered for the caller's thread, in a small table
 *   (a collision forgets one, which only makes its name unknown);
 * - the caller's OPEN of that file takes it (fs_node_info.name_path).
 *
 * Entries the kernel was given while the file had one name stay valid for
 * the entry timeout, so an open may use one of them without a LOOKUP:
 * until two timeouts after the file was first seen with several names (one
 * for the entries, one for a reply the kernel takes in late), and for a
 * lookup older than that, the name is only the caller's latest lookup
 * (name_certain false) and observers treat the file as possibly reached by
 * any of its names.
 */
static uint64_t
monotonic_ms(void)
{
	return (uint64_t)monotonic_ns() / 1000000;
}

static bool
names_matter(const struct fs *fs)
{
	return fs->observer && fs->observer->opened;
}

/* Note how many names the regular file node has (st); whether it has had several. */
static bool
note_several_names(struct fs_inode *node, const struct stat *st)
{
	uint64_t since = atomic_load_explicit(&node->several_names_since, memory_order_relaxed);
	uint64_t unset = 0;

	if (since || st->st_nlink <= 1)
		return since != 0;
	atomic_compare_exchange_strong(&node->several_names_since, &unset, monotonic_ms() | 1);
	return true;
}

/* After a LOOKUP of name in parent_fd (borrowed) found entry: remember the
 * name for the caller's thread when the file has several names. */
static void
remember_name(fuse_req_t req, int parent_fd, const char *name,
	      const struct fuse_entry_param *entry)
{
	struct fs *fs = fs_of(req);
	pid_t thread = fuse_req_ctx(req)->pid;
	char link[16], directory[PATH_MAX];
	char *path = NULL;
	ssize_t length;

	if (thread <= 0 || !S_ISREG(entry->attr.st_mode) || fs->proc_fd < 0 ||
	    atomic_load_explicit(&inode_of(req, entry->ino)->several_names_since,
				 memory_order_relaxed) == 0)
		return;
	proc_name(link, parent_fd);
	length = readlinkat(fs->proc_fd, link, directory, sizeof(directory) - 1);
	if (length > 0) {
		directory[length] = '\0';
		size_t size = (size_t)length + strlen(name) + 2;
		path = malloc(size);
		if (path)
			snprintf(path, size, "%s%s%s", directory,
				 strcmp(directory, "/") == 0 ? "" : "/", name);
	}
	/* Without a path the slot is still taken: an older lookup of the
	 * same thread must not stand in for this one. */
	pthread_mutex_lock(&fs->names_lock);
	struct looked_up_name *slot = &fs->names[(unsigned)thread % NAME_SLOTS];
	free(slot->path);
	*slot = (struct looked_up_name){.thread = thread, .device = entry->attr.st_dev,
					.inode = entry->attr.st_ino, .when = monotonic_ms(),
					.path = path};
	pthread_mutex_unlock(&fs->names_lock);
}

/* At the caller's OPEN of node: the name it looked the file up by, if
 * known (*certain: by that name and no other); the caller frees it. */
static char *
take_looked_up_name(fuse_req_t req, struct fs_inode *node, bool *certain)
{
	struct fs *fs = fs_of(req);
	pid_t thread = fuse_req_ctx(req)->pid;
	uint64_t since = atomic_load_explicit(&node->several_names_since, memory_order_relaxed);
	uint64_t when = 0, slack = (uint64_t)(2000 * fs->timeout);
	char *path = NULL;

	*certain = false;
	if (since == 0 || thread <= 0)
		return NULL;
	pthread_mutex_lock(&fs->names_lock);
	struct looked_up_name *slot = &fs->names[(unsigned)thread % NAME_SLOTS];
	if (slot->thread == thread && slot->device == node->device &&
	    slot->inode == node->inode) {
		path = slot->path;
		when = slot->when;
		*slot = (struct looked_up_name){0};
	}
	pthread_mutex_unlock(&fs->names_lock);
	uint64_t now = monotonic_ms();
	*certain = path && now > since + slack && now - when <= slack;
	return path;
}

/*
 * Look name up in the directory parent_fd (borrowed) and fill an entry
 * reply; 0 or a positive errno.
 */
static int
lookup_entry(fuse_req_t req, int parent_fd, const char *name, struct fuse_entry_param *entry)
{
	struct fs *fs = fs_of(req);
	int fd, error;

	memset(entry, 0, sizeof(*entry));
	entry->attr_timeout = fs->timeout;
	entry->entry_timeout = fs->timeout;
	if (!name_is_safe(name))
		return EINVAL;
	fd = open_below(fs, parent_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
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
	/* Every walk to a file with several names asks us (see above). */
	if (S_ISREG(entry->attr.st_mode) && names_matter(fs) &&
	    note_several_names(node, &entry->attr))
		entry->entry_timeout = 0;
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

/* A node's attributes moved from before to after, no name with them. */
static void
report_attributes_changed(fuse_req_t req, enum fs_namespace_change change,
			  const struct stat *before, const struct stat *after)
{
	struct fs_namespace_event event = {.change = change,
					   .attributes = after,
					   .before = before,
					   .parent_fd = -1,
					   .new_parent_fd = -1};
	report_change(req, &event);
}

/* A setattr of a regular file begins (see setattr_begin): the token for setattr_ended(). */
static void *
setattr_began(struct fs *fs, const struct stat *before)
{
	const struct fs_observer *observer = fs->observer;

	if (observer == NULL || observer->setattr_begin == NULL || !S_ISREG(before->st_mode))
		return NULL;
	return observer->setattr_begin(observer->context, before);
}

static void
setattr_ended(struct fs *fs, void *token)
{
	if (token)
		fs->observer->setattr_end(fs->observer->context, token);
}

/* The observers' view of passthrough writers (struct writer_watch_ops). */
static void *
identify_passthrough_caller(void *context, pid_t pid)
{
	const struct fs_observer *observer = ((struct fs *)context)->observer;

	return observer->bypass_identify(observer->context, pid);
}

static void
forget_passthrough_caller(void *context, void *identity)
{
	const struct fs_observer *observer = ((struct fs *)context)->observer;

	observer->bypass_forget(observer->context, identity);
}

static void *
identify_passthrough_writer_since(void *context, pid_t pid, int64_t since_ns)
{
	const struct fs_observer *observer = ((struct fs *)context)->observer;

	if (observer->bypass_identify_since == NULL)
		return NULL;
	return observer->bypass_identify_since(observer->context, pid, since_ns);
}

static void
report_passthrough_write(void *context, dev_t device, ino_t inode, pid_t pid, void *identity,
			 bool checked)
{
	const struct fs_observer *observer = ((struct fs *)context)->observer;

	observer->bypass_written(observer->context, device, inode, pid, identity, checked);
}

/* Do the observers want to know which process writes (a write request names it)? */
static bool
writers_need_watch(const struct fs *fs)
{
	const struct fs_observer *observer = fs->observer;

	return observer && (observer->data_written || observer->flushed);
}

/* Why the kernel gave no writer watch, for the mount's one line. */
static const char *
writer_watch_refusal(int error)
{
	switch (error) {
	case EINVAL:
		return "this kernel has no fanotify pre-content events, Linux 6.14+";
	case EOPNOTSUPP:
		return "the backing filesystem refuses fanotify pre-content marks";
	case EPERM:
		return "no privilege for fanotify pre-content events";
	default:
		return strerror(error);
	}
}

/*
 * Writers pass through only when it is known who writes them (see
 * may_pass_through()).  The watch is made as the session is attached,
 * before daemonizing, so that a failure is said once where the mount is
 * made; its thread starts at INIT, after daemonizing.
 */
static void
make_writer_watch(struct fs *fs)
{
	const struct fs_observer *observer = fs->observer;

	if (!fs->passthrough || fs->writer_watch || !writers_need_watch(fs) ||
	    !observer->bypass_identify || !observer->bypass_forget || !observer->bypass_written)
		return;
	struct writer_watch_ops ops = {.context = fs,
				       .identify = identify_passthrough_caller,
				       .forget = forget_passthrough_caller,
				       .identify_since = identify_passthrough_writer_since,
				       .report = report_passthrough_write};
	fs->writer_watch = writer_watch_new(&ops, fs->root.fd);
	if (fs->writer_watch == NULL)
		log_info("kernel FUSE passthrough is for reading only: the writers of a file "
			 "cannot be identified as they write (%s), so files opened for writing go "
			 "through the daemon",
			 writer_watch_refusal(errno));
}

static void
start_writer_watch(struct fs *fs)
{
	int error;

	if (fs->writer_watch == NULL || (error = writer_watch_start(fs->writer_watch)) == 0)
		return;
	log_info("kernel FUSE passthrough is for reading only: cannot start the writer "
		 "watch (%s)",
		 strerror(-error));
	writer_watch_free(fs->writer_watch);
	fs->writer_watch = NULL;
}

static void
op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;

	fs->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->proc_fd < 0)
		log_error("cannot open /proc/self/fd: %s", strerror(errno));
	start_writer_watch(fs);

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
	/* Takes effect at the first OPENDIR, answered ENOSYS (op_opendir()). */
	fs->directories_without_open = fs->stable_directory_offsets &&
				       (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT);
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
	int parent_fd = borrow_ino(req, parent);
	int error = parent_fd < 0 ? -parent_fd : lookup_entry(req, parent_fd, name, &entry);

	if (error == 0 && names_matter(fs_of(req)))
		remember_name(req, parent_fd, name, &entry);
	if (error == 0)
		hint_entry(req, parent, name, &entry);
	if (parent_fd >= 0)
		return_ino(req, parent);
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

	if (fi) {
		error = fstat(handle_of(fi)->fd, &st) < 0 ? errno : 0;
	} else {
		int fd = borrow_ino(req, ino);
		error = fd < 0 ? -fd : -stat_node(fd, &st);
		if (fd >= 0)
			return_ino(req, ino);
	}
	if (error)
		fuse_reply_err(req, error);
	else
		fuse_reply_attr(req, &st, fs_of(req)->timeout);
}

/* utimensat on a node, which may be a symlink or a file without a handle. */
static int
set_times(struct fs *fs, int node_fd, const struct timespec times[2],
	  struct fuse_file_info *fi)
{
	char name[16];

	if (fi)
		return futimens(handle_of(fi)->fd, times) < 0 ? errno : 0;
	if (utimensat(node_fd, "", times, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != EINVAL && errno != EBADF)
		return errno;
	proc_name(name, node_fd);
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
has_privileges(int node_fd, const struct stat *st)
{
	char path[32];

	if (S_ISDIR(st->st_mode))
		return false;
	if ((st->st_mode & S_ISUID) || (st->st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		return true;
	if (!S_ISREG(st->st_mode))
		return false;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", node_fd);
	return getxattr(path, "security.capability", NULL, 0) >= 0;
}

/* May the caller of req write the node (mode bits, ACLs, its groups)? */
static bool
caller_may_write(fuse_req_t req, struct fs *fs, int node_fd)
{
	char name[16];
	bool allowed;

	if (caller_become_exactly(req) != 0)
		return false;
	proc_name(name, node_fd);
	allowed = faccessat(fs->proc_fd, name, W_OK, AT_EACCESS) == 0;
	caller_restore();
	return allowed;
}

static int
change_owner(fuse_req_t req, struct fs *fs, int node_fd, uid_t uid, gid_t gid)
{
	struct stat before;
	bool drop_sgid = false;
	char name[16];

	uid_t caller_uid = fuse_req_ctx(req)->uid;
	if (caller_uid != 0) {
		int error = -stat_node(node_fd, &before);
		if (error)
			return error;
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
		    has_privileges(node_fd, &before) && !caller_may_write(req, fs, node_fd))
			return EPERM;
		if (!S_ISDIR(before.st_mode) && (before.st_mode & (S_ISGID | S_IXGRP)) == S_ISGID &&
		    !caller_in_group(req, before.st_gid))
			drop_sgid = true;
	}
	if (fchownat(node_fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return errno;
	if (drop_sgid) {
		proc_name(name, node_fd);
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

/* The handle's content is about to change (fs_observer.data_writing)... */
static void
announce_write(const struct fs_observer *observer, const struct fs_handle *handle)
{
	if (observer && observer->data_writing && handle->cookie)
		observer->data_writing(handle->cookie);
}

/* ...and the change is made and reported, or failed. */
static void
end_write(const struct fs_observer *observer, const struct fs_handle *handle)
{
	if (observer && observer->data_write_ended && handle->cookie)
		observer->data_write_ended(handle->cookie);
}

static void
op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
	   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	char name[16];
	int error = 0;
	struct stat st, before;
	int node_fd = borrow_ino(req, ino);
	/* Observers tell a touch of known content from one hiding a change. */
	bool before_known =
		node_fd >= 0 && observing_changes(req) && stat_node(node_fd, &before) == 0;

	if (node_fd < 0) {
		fuse_reply_err(req, -node_fd);
		return;
	}
	/* A hash taken as the times move must wait for this report (a touch
	 * right after the close: git, cp -p). */
	void *setattr_token = before_known ? setattr_began(fs, &before) : NULL;
	proc_name(name, node_fd);
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
		error = change_owner(req, fs, node_fd, uid, gid);
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
			/* Through a handle, a truncate is its holder's change like
			 * a write: the handle is a writer of the version it makes
			 * ('truncate -s 0 log' while the logger holds it open). */
			struct fs_handle *handle = handle_of(fi);
			const struct fs_observer *observer = fs->observer;
			announce_write(observer, handle);
			result = ftruncate(handle->fd, attr->st_size);
			int saved = errno;
			if (result == 0 && observer && observer->data_written && handle->cookie)
				observer->data_written(handle->cookie, req, NULL, attr->st_size, 0);
			end_write(observer, handle);
			errno = saved;
		} else {
			int fd = open_below(fs, fs->proc_fd, name, O_WRONLY | O_CLOEXEC);
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
		error = set_times(fs, node_fd, times, fi);
		if (error)
			goto out;
	}
	/* With a chown the kernel asks too, but change_owner() did that part. */
	if (fs_session_kill_requested() && !(valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		error = -drop_privileges(req, fs, ino, node_fd, false);
		if (error)
			goto out;
	}
	error = -stat_node(node_fd, &st);
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
			.before = before_known ? &before : NULL,
			.parent_fd = -1,
			.new_parent_fd = -1,
		};
		report_change(req, &event);
	}
	setattr_ended(fs, setattr_token);
	return_ino(req, ino);
	fuse_reply_attr(req, &st, fs->timeout);
	return;
out_errno:
	error = errno;
out:
	setattr_ended(fs, setattr_token);
	return_ino(req, ino);
	fuse_reply_err(req, error);
}

static void
op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char target[PATH_MAX + 1];
	int fd = borrow_ino(req, ino);
	ssize_t length;

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	length = readlinkat(fd, "", target, sizeof(target));
	int error = errno;
	return_ino(req, ino);
	if (length < 0)
		fuse_reply_err(req, error);
	else if (length >= (ssize_t)sizeof(target))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		target[length] = '\0';
		fuse_reply_readlink(req, target);
	}
}

enum node_kind { NODE_SPECIAL, NODE_DIRECTORY, NODE_SYMLINK };

/*
 * Take back a name this request created, as the caller, when the request
 * fails after all: an error must mean that nothing happened.
 */
static void
undo_create(fuse_req_t req, int parent_fd, const char *name, bool directory)
{
	if (caller_become(req) != 0)
		return;
	unlinkat(parent_fd, name, directory ? AT_REMOVEDIR : 0);
	caller_restore();
}

/* mknod, mkdir and symlink: create as the caller, then look the name up. */
static void
make_node(fuse_req_t req, fuse_ino_t parent, const char *name, enum node_kind kind,
	  mode_t mode, dev_t device, const char *link_target)
{
	struct fuse_entry_param entry;
	int parent_fd, error, result;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	parent_fd = borrow_ino(req, parent);
	if (parent_fd < 0) {
		fuse_reply_err(req, -parent_fd);
		return;
	}
	error = -caller_become(req);
	if (error)
		goto out;
	bool retried = false; /* once: groups read afresh (caller.c) */
	do {
		if (kind == NODE_DIRECTORY)
			result = mkdirat(parent_fd, name, mode);
		else if (kind == NODE_SYMLINK)
			result = symlinkat(link_target, parent_fd, name);
		else
			result = mknodat(parent_fd, name, mode, device);
		error = result < 0 ? errno : 0;
	} while (!retried && (retried = caller_retry_with_fresh_groups(req, error)));
	caller_restore();
	if (error)
		goto out;
	error = lookup_entry(req, parent_fd, name, &entry);
	if (error) {
		undo_create(req, parent_fd, name, kind == NODE_DIRECTORY);
		goto out;
	}
	hint_entry(req, parent, name, &entry);
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_CREATE,
						   .attributes = &entry.attr,
						   .name = name,
						   .parent_fd = parent_fd,
						   .new_parent_fd = -1};
		identify_parent(req, parent, &event.parent_device, &event.parent_inode);
		report_change(req, &event);
	}
	return_ino(req, parent);
	reply_entry(req, &entry);
	return;
out:
	return_ino(req, parent);
	fuse_reply_err(req, error);
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
	struct fuse_entry_param entry;
	char name[16];
	int fd, parent_fd, error;

	if (!name_is_safe(new_name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	fd = borrow_ino(req, ino);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	parent_fd = borrow_ino(req, new_parent);
	if (parent_fd < 0) {
		return_ino(req, ino);
		fuse_reply_err(req, -parent_fd);
		return;
	}
	proc_name(name, fd);
	if (linkat(fs->proc_fd, name, parent_fd, new_name, AT_SYMLINK_FOLLOW) < 0) {
		error = errno;
		goto out;
	}
	error = lookup_entry(req, parent_fd, new_name, &entry);
	if (error) {
		undo_create(req, parent_fd, new_name, false);
		goto out;
	}
	hint_entry(req, new_parent, new_name, &entry);
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_LINK,
						   .attributes = &entry.attr,
						   .new_name = new_name,
						   .parent_fd = -1,
						   .new_parent_fd = parent_fd};
		identify_parent(req, new_parent, &event.new_parent_device, &event.new_parent_inode);
		report_change(req, &event);
	}
out:
	return_ino(req, new_parent);
	return_ino(req, ino);
	if (error)
		fuse_reply_err(req, error);
	else
		reply_entry(req, &entry);
}

/*
 * A regular file with another name outlives the removal of this one, its
 * ctime moved by it: an O_PATH of it (st: its attributes), so that its
 * attributes after can be told (report_unlink), or -1.  (git links each
 * object under its final name, then unlinks the temporary one; rsync
 * renames over names that backups hard-link.)
 */
static int
open_if_linked_elsewhere(int parent_fd, const char *name, const struct stat *st)
{
	if (!S_ISREG(st->st_mode) || st->st_nlink < 2)
		return -1;
	return openat(parent_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
}

/*
 * A descriptor of a regular file whose last name is about to go, when a
 * handle of the mount holds it open (it lives on, nameless): a dup of the
 * handle's, or -1.  Found through the node's own handles, not a walk of
 * every handle open on the mount: a job holding thousands of files open
 * while another deletes must not pay for them at each unlink.
 */
static int
open_if_held_open(struct fs *fs, const struct stat *st)
{
	struct fs_inode *node;
	int fd = -1;

	if (!S_ISREG(st->st_mode) || st->st_nlink != 1)
		return -1;
	node = table_pin(fs, st->st_dev, st->st_ino);
	if (node == NULL)
		return -1; /* not looked up through the mount: nothing of ours holds it */
	pthread_mutex_lock(&fs->handles_lock);
	if (node->handles)
		fd = fcntl(node->handles->fd, F_DUPFD_CLOEXEC, 0);
	pthread_mutex_unlock(&fs->handles_lock);
	table_release(fs, node, 1);
	return fd;
}

/* Name (st: the attributes of what it named) is gone; survivor_fd as
 * open_if_linked_elsewhere() gave it, for the attributes after, or
 * held_fd as open_if_held_open() did. */
static void
report_unlink(fuse_req_t req, fuse_ino_t parent, int parent_fd, const char *name,
	      const struct stat *st, int survivor_fd, int held_fd)
{
	struct stat after, held;
	bool survives = survivor_fd >= 0 && stat_node(survivor_fd, &after) == 0 &&
			after.st_dev == st->st_dev && after.st_ino == st->st_ino &&
			after.st_nlink > 0;
	bool held_open = !survives && held_fd >= 0 && fstat(held_fd, &held) == 0 &&
			 held.st_dev == st->st_dev && held.st_ino == st->st_ino &&
			 held.st_nlink == 0;
	struct fs_namespace_event event = {.change = FS_CHANGE_UNLINK,
					   .attributes = survives ? &after : st,
					   .before = survives ? st : NULL,
					   .unlinked_open = held_open ? &held : NULL,
					   .name = name,
					   .parent_fd = parent_fd,
					   .new_parent_fd = -1};
	identify_parent(req, parent, &event.parent_device, &event.parent_inode);
	report_change(req, &event);
}

static void
remove_name(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct stat st;
	bool known;
	int parent_fd, error = 0;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	parent_fd = borrow_ino(req, parent);
	if (parent_fd < 0) {
		fuse_reply_err(req, -parent_fd);
		return;
	}
	known = observing_changes(req) &&
		fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	int survivor_fd = known ? open_if_linked_elsewhere(parent_fd, name, &st) : -1;
	int held_fd = known && survivor_fd < 0 ? open_if_held_open(fs_of(req), &st) : -1;
	if (unlinkat(parent_fd, name, flags) < 0)
		error = errno;
	else if (known)
		report_unlink(req, parent, parent_fd, name, &st, survivor_fd, held_fd);
	if (survivor_fd >= 0)
		close(survivor_fd);
	if (held_fd >= 0)
		close(held_fd);
	return_ino(req, parent);
	fuse_reply_err(req, error);
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

/* After a rename through the mount: the moved inode's handle names its new directory. */
static void
renew_moved_handle(struct fs *fs, int directory_fd, const char *name)
{
	struct stat st;
	int fd;

	if (!fs->connectable)
		return;
	fd = openat(directory_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (stat_node(fd, &st) == 0)
		table_renew_handle(fs, &st, fd);
	close(fd);
}

static void
op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t new_parent,
	  const char *new_name, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	int from_fd, to_fd, replaced_fd = -1, error = 0;
	struct stat st, replaced, exchanged;
	bool known, exchanged_known;

	if (!name_is_safe(name) || !name_is_safe(new_name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	from_fd = borrow_ino(req, parent);
	if (from_fd < 0) {
		fuse_reply_err(req, -from_fd);
		return;
	}
	to_fd = borrow_ino(req, new_parent);
	if (to_fd < 0) {
		return_ino(req, parent);
		fuse_reply_err(req, -to_fd);
		return;
	}
	known = observing_changes(req) &&
		fstatat(from_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	/* What the rename replaces loses a name: it may outlive it. */
	if (known && !(flags & RENAME_EXCHANGE) &&
	    fstatat(to_fd, new_name, &replaced, AT_SYMLINK_NOFOLLOW) == 0 &&
	    (replaced.st_dev != st.st_dev || replaced.st_ino != st.st_ino))
		replaced_fd = open_if_linked_elsewhere(to_fd, new_name, &replaced);
	/* What an exchange moves the other way: its ctime moves too. */
	exchanged_known = known && (flags & RENAME_EXCHANGE) &&
			  fstatat(to_fd, new_name, &exchanged, AT_SYMLINK_NOFOLLOW) == 0;
	/* For an observer that must know what ran while the names changed. */
	int64_t started_ns = known ? monotonic_ns() : 0;
	if (renameat2(from_fd, name, to_fd, new_name, flags) < 0) {
		error = errno;
		goto out;
	}
	if (replaced_fd >= 0)
		report_unlink(req, new_parent, to_fd, new_name, &replaced, replaced_fd, -1);
	if (from_fd != to_fd) {
		renew_moved_handle(fs, to_fd, new_name);
		if (flags & RENAME_EXCHANGE)
			renew_moved_handle(fs, from_fd, name);
	}
	hint_moved(fs, inode_of(req, new_parent), to_fd, new_name);
	if (flags & RENAME_EXCHANGE)
		hint_moved(fs, inode_of(req, parent), from_fd, name);
	/* Attributes after the move: rename changes the ctime. */
	if (known && fstatat(to_fd, new_name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		struct fs_namespace_event event = {.change = FS_CHANGE_RENAME,
						   .attributes = &st,
						   .name = name,
						   .new_name = new_name,
						   .flags = flags,
						   .started_ns = started_ns,
						   .parent_fd = from_fd,
						   .new_parent_fd = to_fd};
		identify_parent(req, parent, &event.parent_device, &event.parent_inode);
		identify_parent(req, new_parent, &event.new_parent_device, &event.new_parent_inode);
		report_change(req, &event);
	}
	/*
	 * The rename event names the file that moved to new_name; the one
	 * that came back to name had its ctime moved by the mount just the
	 * same, and must not look changed outside provfs at its next open.
	 */
	struct stat after;
	if (exchanged_known && fstatat(from_fd, name, &after, AT_SYMLINK_NOFOLLOW) == 0 &&
	    after.st_dev == exchanged.st_dev && after.st_ino == exchanged.st_ino)
		report_attributes_changed(req, FS_CHANGE_TIMES, &exchanged, &after);
out:
	if (replaced_fd >= 0)
		close(replaced_fd);
	return_ino(req, new_parent);
	return_ino(req, parent);
	fuse_reply_err(req, error);
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
	/* The kernel leaves the node's atime alone on a noatime mount; the
	 * backing file's is the one a stat shows, and the daemon's reads would
	 * move it.  (Kernel passthrough opens a backing file of its own, with
	 * the caller's flags, on the registered descriptor's mount: see
	 * open_noatime_view().) */
	if (fs->noatime)
		flags |= O_NOATIME;
	return flags | O_CLOEXEC;
}

/* May the kernel keep its cached pages of node for this open (st: the open file's)? */
static bool
cache_still_valid(struct fs_inode *node, const struct stat *st)
{
	bool valid;

	if (st == NULL)
		return false;
	pthread_mutex_lock(&node->stamp_lock);
	valid = node->stamp_valid && node->stamp_size == st->st_size &&
		node->stamp_mtime.tv_sec == st->st_mtim.tv_sec &&
		node->stamp_mtime.tv_nsec == st->st_mtim.tv_nsec &&
		node->stamp_ctime.tv_sec == st->st_ctim.tv_sec &&
		node->stamp_ctime.tv_nsec == st->st_ctim.tv_nsec;
	pthread_mutex_unlock(&node->stamp_lock);
	return valid;
}

static void
remember_stamp(struct fs_inode *node, const struct stat *st)
{
	pthread_mutex_lock(&node->stamp_lock);
	node->stamp_valid = true;
	node->stamp_size = st->st_size;
	node->stamp_mtime = st->st_mtim;
	node->stamp_ctime = st->st_ctim;
	pthread_mutex_unlock(&node->stamp_lock);
}

/* What observers see of node; the caller has borrowed its descriptor. */
static struct fs_node_info
node_info(struct fs_inode *node)
{
	return (struct fs_node_info){.device = node->device, .inode = node->inode,
				     .backing_fd = node->fd, .created_parent_fd = -1};
}

static bool
may_write(int flags)
{
	return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC);
}

/* Can the observers be told who writes through a passthrough handle? */
static bool
writers_may_pass_through(const struct fs *fs)
{
	if (!writers_need_watch(fs))
		return true; /* nobody asks who writes */
	return fs->writer_watch != NULL;
}

/* Can they be told it after the write (a handle that reads too: LATE in
 * fs/writer_watch.c)?  Asked at each open: the observer's process table
 * starts after the watch is made. */
static bool
writers_identified_late(const struct fs *fs)
{
	const struct fs_observer *observer = fs->observer;

	return fs->writer_watch && observer->bypass_identify_since &&
	       observer->bypass_identifies_late &&
	       observer->bypass_identifies_late(observer->context);
}

/* A handle that may write and also reads: its writers are watched late. */
static bool
reads_and_writes(int flags)
{
	return (flags & O_ACCMODE) == O_RDWR;
}

/*
 * May the kernel read and write this handle's file itself?  Only a regular
 * file whose writes drop nothing: suid, sgid and file capabilities are
 * dropped on write by the daemon, as the native filesystem does for the
 * writer (see drop_privileges()).  A new file has no capabilities yet.
 */
static bool
may_pass_through(struct fs *fs, int fd, const struct stat *st, int flags, bool created,
		 pid_t new_content_thread)
{
	if (fs->backing_files == NULL || !fs_session_passthrough())
		return false;
	/*
	 * A handle that may write passes through only when the observers can
	 * do without its write requests: they learn from each which process
	 * wrote (the producer of a version is the process that wrote, not the
	 * last one to close an inherited descriptor).  The writer watch tells
	 * them instead; without it such a handle stays with the daemon.
	 */
	if (may_write(flags) && !writers_may_pass_through(fs))
		return false;
	/* A watched writer costs more than the daemon for a small file, and
	 * this caller has been writing small new files (fs/small_writers.c). */
	if (new_content_thread && small_writers_expected(&fs->small_writers, new_content_thread))
		return false;
	/*
	 * One open for reading and writing is watched late (nothing waits: a
	 * pre-access would make every read(2) wait as a write does); where
	 * writers cannot be identified after the fact it stays with the
	 * daemon, whose write requests name their writer.
	 */
	if (reads_and_writes(flags) && writers_need_watch(fs) && !writers_identified_late(fs))
		return false;
	if (st == NULL || !S_ISREG(st->st_mode) || (st->st_mode & (S_ISUID | S_ISGID)))
		return false;
	return created || fgetxattr(fd, "security.capability", NULL, 0) < 0;
}

/* Choose how the handle's data is served and put it in fi (see
 * fs/backing_files.c); a passthrough id goes into this thread's reply.
 * 0 or a positive errno. */
static int
choose_io_mode(struct fs *fs, struct fs_handle *handle, struct fuse_file_info *fi,
	       const struct stat *st, bool created)
{
	int backing_id, error;

	handle->io_mode = FS_IO_CACHED;
	handle->watched = NULL;
	if (fs->backing_files == NULL || !fs_session_passthrough())
		return 0;
	bool eligible = may_pass_through(fs, handle->fd, st, fi->flags, created,
					 handle->new_content_thread);
	/* A writer's file is watched before the caller can write (the reply
	 * is not sent yet): see fs/writer_watch.c. */
	if (eligible && may_write(fi->flags) && fs->writer_watch && st) {
		handle->watched = writer_watch_add(fs->writer_watch, handle->fd, st->st_dev,
						   st->st_ino, reads_and_writes(fi->flags),
						   &handle->watch_shared);
		if (handle->watched == NULL) {
			/* EBUSY: open to write the other way (watched late or
			 * not): this one is served by the daemon, as is right. */
			if (errno != EBUSY && !atomic_exchange(&fs->watch_failure_logged, true))
				log_warning("cannot watch the writers of a file (%s): such files "
					    "are written through the daemon",
					    strerror(errno));
			eligible = false;
		}
	}
	error = -backing_files_open(fs->backing_files, handle->ino, handle->fd, eligible,
				    &handle->io_mode, &backing_id);
	if (handle->watched && (error || handle->io_mode != FS_IO_PASSTHROUGH)) {
		/* Its writes come to the daemon after all (another handle keeps
		 * the page cache): no need to watch. */
		writer_watch_remove(fs->writer_watch, handle->watched, handle->fd);
		handle->watched = NULL;
	}
	if (error)
		return error;
	/*
	 * A write-only handle the daemon serves anyway (a small new file whose
	 * writer the recorder learns from its WRITE requests; a file with
	 * privileges) is opened with direct I/O.  Before a write through the
	 * page cache the kernel asks GETXATTR security.capability of every
	 * inode it has not yet seen without privileges (once per new file,
	 * again after each attribute refresh): one more round trip per created
	 * file than the write itself.  A direct write asks nothing; it sends
	 * WRITE as the cached path does, flagged when the writer lacks
	 * CAP_FSETID, and the daemon drops suid and sgid as the kernel would
	 * have (drop_privileges() in op_write()); file capabilities go with
	 * any write, the daemon's own included, on the backing filesystem.
	 * Such a handle cannot read or be mapped, so it loses no cache; the
	 * kernel (6.9+ here: passthrough was negotiated) drops cached pages
	 * of the range before each direct write, so other handles' readers
	 * see it as before.
	 */
	if (handle->io_mode == FS_IO_CACHED && (fi->flags & O_ACCMODE) == O_WRONLY)
		fi->direct_io = 1;
	if (handle->io_mode != FS_IO_CACHED) {
		/* The kernel refuses passthrough with its page cache kept. */
		fi->keep_cache = 0;
		fi->direct_io = handle->io_mode == FS_IO_PASSTHROUGH_DIRECT;
		fs_session_pass_through(backing_id);
	}
	return 0;
}

/* Where a create made the file it opens (op_create). */
struct fs_created {
	int parent_fd; /* borrowed */
	const char *name;
	dev_t parent_device;
	ino_t parent_inode;
};

/*
 * Wrap an open descriptor in a handle, tell the observer, fill fi.
 * created: NULL for an open of an existing file.  Consumes fd.  Returns 0
 * or a positive errno.
 */
static int
attach_handle(fuse_req_t req, fuse_ino_t ino, struct fs_inode *node, int fd,
	      struct fuse_file_info *fi, const struct fs_created *created, const struct stat *known)
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
	handle->ino = ino;
	handle->holder = fuse_req_ctx(req)->uid; /* its share, taken by the caller */
	handle->new_content_thread =
		fs->backing_files && writers_need_watch(fs) && may_write(fi->flags) &&
				(created || (fi->flags & O_TRUNC))
			? fuse_req_ctx(req)->pid
			: 0;
	handle->new_content_counted = false;
	atomic_init(&handle->content_changed, false);
	/* One look at the open file serves the page cache, passthrough and
	 * observers (known: a create's, taken as it looked the new file up). */
	struct stat st;
	const struct stat *attributes = known ? known : fstat(fd, &st) == 0 ? &st : NULL;
	fi->keep_cache = !created && cache_still_valid(node, attributes);
	/*
	 * A read-only handle's close has nothing to report: closing a
	 * duplicate of it flushes nothing on any backing filesystem (they
	 * write back only for FMODE_WRITE), and observers care only about who
	 * closes what may have been written.  FOPEN_NOFLUSH spares the round
	 * trip of every close of a file that was read (the kernel ignores it
	 * under the writeback cache).
	 */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY && !(fi->flags & O_TRUNC);
	int error = choose_io_mode(fs, handle, fi, attributes, created != NULL);
	if (error) {
		close(fd);
		free(handle);
		return error;
	}
	fi->fh = (uintptr_t)handle;
	if (fs->observer && fs->observer->opened) {
		struct fs_node_info info = node_info(node);
		/* Direct I/O still maps the backing file: mmap writes bypass us. */
		info.data_bypass = handle->io_mode != FS_IO_CACHED;
		info.writers_reported = handle->watched != NULL;
		info.writers_reported_late = info.writers_reported && reads_and_writes(fi->flags);
		/* Writes through the other handles before this open are
		 * reported before it (recorder.c counts those made while a
		 * handle was open); a file no other handle writes has none. */
		if (handle->watched && handle->watch_shared)
			writer_watch_drain(fs->writer_watch);
		info.open_attributes = attributes;
		char *name_path = created ? NULL : take_looked_up_name(req, node, &info.name_certain);
		info.name_path = name_path;
		if (created) {
			info.created_parent_fd = created->parent_fd;
			info.created_name = created->name;
			info.created_parent_device = created->parent_device;
			info.created_parent_inode = created->parent_inode;
		}
		handle->cookie = fs->observer->opened(fs->observer->context, req, &info, fd,
						       fi->flags, created != NULL);
		free(name_path);
	}
	pthread_mutex_lock(&fs->handles_lock);
	handle->previous = NULL;
	handle->next = fs->open_handles;
	if (handle->next)
		handle->next->previous = handle;
	fs->open_handles = handle;
	handle->inode_previous = NULL;
	handle->inode_next = node->handles;
	if (handle->inode_next)
		handle->inode_next->inode_previous = handle;
	node->handles = handle;
	pthread_mutex_unlock(&fs->handles_lock);
	return 0;
}

/*
 * Every open file holds one of the daemon's descriptors, and those are
 * shared by every user of the mount: one user holding them all (a few
 * processes of 1,000 descriptors each) would leave the others EMFILE on
 * every open and create.  So a uid other than root holds at most
 * share_limit handles (a quarter of the daemon's descriptors), and its
 * next open fails with EMFILE, as its own limit would have it.  0 or
 * EMFILE; a success is given back by handle_share_give().
 */
static int
handle_share_take(struct fs *fs, uid_t uid)
{
	struct handle_share *share;
	int error = 0;

	if (uid == 0)
		return 0;
	pthread_mutex_lock(&fs->handles_lock);
	for (share = fs->shares; share && share->uid != uid; share = share->next)
		;
	if (share == NULL && (share = calloc(1, sizeof(*share))) != NULL) {
		share->uid = uid;
		share->next = fs->shares;
		fs->shares = share;
	}
	if (share == NULL)
		error = ENOMEM;
	else if (share->count >= fs->share_limit)
		error = EMFILE;
	else
		share->count++;
	pthread_mutex_unlock(&fs->handles_lock);
	return error;
}

static void
handle_share_give(struct fs *fs, uid_t uid)
{
	if (uid == 0)
		return;
	pthread_mutex_lock(&fs->handles_lock);
	for (struct handle_share **link = &fs->shares; *link; link = &(*link)->next) {
		struct handle_share *share = *link;
		if (share->uid != uid)
			continue;
		if (--share->count == 0) {
			*link = share->next;
			free(share);
		}
		break;
	}
	pthread_mutex_unlock(&fs->handles_lock);
}

/* Tell the observer a handle is gone (attributes: the file's as the
 * release found it, or NULL), close it and free it. */
static void
discard(struct fs *fs, struct fs_handle *handle, const struct stat *attributes)
{
	pthread_mutex_lock(&fs->handles_lock);
	if (handle->previous)
		handle->previous->next = handle->next;
	else
		fs->open_handles = handle->next;
	if (handle->next)
		handle->next->previous = handle->previous;
	if (handle->inode_previous)
		handle->inode_previous->inode_next = handle->inode_next;
	else
		handle->inode->handles = handle->inode_next;
	if (handle->inode_next)
		handle->inode_next->inode_previous = handle->inode_previous;
	pthread_mutex_unlock(&fs->handles_lock);
	/* Who wrote through it is known before observers hear it closed. */
	if (handle->watched)
		writer_watch_drain(fs->writer_watch);
	if (fs->observer && fs->observer->released && handle->cookie)
		fs->observer->released(handle->cookie, handle->fd, attributes);
	if (handle->watched)
		writer_watch_remove(fs->writer_watch, handle->watched, handle->fd);
	if (fs->backing_files && fs_session_passthrough())
		backing_files_close(fs->backing_files, handle->ino, handle->io_mode);
	close(handle->fd);
	handle_share_give(fs, handle->holder);
	free(handle);
}

static void
discard_handle(struct fs *fs, struct fuse_file_info *fi)
{
	discard(fs, handle_of(fi), NULL);
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
	int node_fd = node_borrow(fs, node);

	if (node_fd < 0) {
		fuse_reply_err(req, -node_fd);
		return;
	}
	error = -check_open(req, node, NULL, fi->flags);
	if (error == 0)
		error = handle_share_take(fs, fuse_req_ctx(req)->uid);
	if (error) {
		node_return(fs, node);
		fuse_reply_err(req, error);
		return;
	}
	proc_name(name, node_fd);
	fd = open_below(fs, fs->proc_fd, name, backing_flags(fs, fi->flags));
	if (fd < 0) {
		error = errno;
		handle_share_give(fs, fuse_req_ctx(req)->uid);
		node_return(fs, node);
		fuse_reply_err(req, error);
		return;
	}
	if (fs_session_kill_requested())
		drop_privileges(req, fs, ino, fd, true);
	error = attach_handle(req, ino, node, fd, fi, NULL, NULL);
	node_return(fs, node);
	if (error)
		handle_share_give(fs, fuse_req_ctx(req)->uid);
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
	struct fuse_entry_param entry;
	int parent_fd, fd, error;

	if (!name_is_safe(name)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	parent_fd = borrow_ino(req, parent);
	if (parent_fd < 0) {
		fuse_reply_err(req, -parent_fd);
		return;
	}
	/* The label policy may refuse a new file (no_write_down). */
	error = -check_open(req, inode_of(req, parent), name, fi->flags);
	if (error == 0)
		error = handle_share_take(fs, fuse_req_ctx(req)->uid);
	if (error) {
		return_ino(req, parent);
		fuse_reply_err(req, error);
		return;
	}
	error = -caller_become(req);
	if (error) {
		handle_share_give(fs, fuse_req_ctx(req)->uid);
		return_ino(req, parent);
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
	bool retried = false; /* once: groups read afresh (caller.c) */
	/* A new file has no atime to keep, and O_NOATIME, checked only after
	 * the file is made, could refuse a create that happened anyway where
	 * the backing filesystem does not make the caller its owner. */
	int flags = (backing_flags(fs, fi->flags) & ~O_NOATIME) | O_CREAT | O_EXCL | O_NOFOLLOW;
	int shrinks = 0;
	for (;;) {
		fd = openat(parent_fd, name, flags, mode);
		error = fd < 0 ? errno : 0;
		/* Out of descriptors, the daemon's own doing: the descriptor is
		 * taken before the name is made, so nothing was made yet. */
		if (out_of_descriptors(error) && shrinks < 2 && cache_shrink(fs)) {
			shrinks++;
			continue;
		}
		if (!retried && (retried = caller_retry_with_fresh_groups(req, error)))
			continue;
		break;
	}
	caller_restore();
	if (error == EEXIST && !(fi->flags & O_EXCL))
		error = ESTALE;
	if (error) {
		handle_share_give(fs, fuse_req_ctx(req)->uid);
		return_ino(req, parent);
		fuse_reply_err(req, error);
		return;
	}
	error = lookup_entry(req, parent_fd, name, &entry);
	if (error) {
		close(fd);
		handle_share_give(fs, fuse_req_ctx(req)->uid);
		undo_create(req, parent_fd, name, false);
		return_ino(req, parent);
		fuse_reply_err(req, error);
		return;
	}
	hint_entry(req, parent, name, &entry);
	struct fs_inode *node = inode_of(req, entry.ino);
	if (observing_changes(req)) {
		struct fs_namespace_event event = {.change = FS_CHANGE_CREATE,
						   .attributes = &entry.attr,
						   .name = name,
						   .parent_fd = parent_fd,
						   .new_parent_fd = -1};
		identify_parent(req, parent, &event.parent_device, &event.parent_inode);
		report_change(req, &event);
	}
	int node_fd = node_borrow(fs, node);
	struct fs_created created = {.parent_fd = parent_fd, .name = name};
	identify_parent(req, parent, &created.parent_device, &created.parent_inode);
	error = node_fd < 0 ? -node_fd
			    : attach_handle(req, entry.ino, node, fd, fi, &created, &entry.attr);
	if (node_fd >= 0)
		node_return(fs, node);
	else
		close(fd);
	if (error) {
		handle_share_give(fs, fuse_req_ctx(req)->uid);
		table_release(fs, node, 1);
		undo_create(req, parent_fd, name, false);
		return_ino(req, parent);
		fuse_reply_err(req, error);
		return;
	}
	return_ino(req, parent);
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

/*
 * A content change that fails may still have moved the file's times: the
 * kernel stamps mtime and ctime before it allocates, so a write refused for
 * want of space (ENOSPC, EDQUOT) leaves the bytes as they were under new
 * times, which would read as a change made outside provfs.  So until a
 * handle has changed content, each content change through it is preceded
 * by a stat, and a failure that moved the stamp is reported as the change
 * of attributes it is.  One stat per handle as a rule: once it changed the
 * content, the version cut when it closes takes the final stamp, failed
 * writes and all.  (Not followed: a failure on a handle that stays open
 * after a version of its writes was cut, say when another writer opened;
 * a stat before every write would cover it.)
 */
struct change_attempt {
	bool before_known;
	struct stat before;
};

/* always: a stat before even after a change (a preallocation needs it). */
static void
change_attempt_begin(fuse_req_t req, struct fs_handle *handle, struct change_attempt *attempt,
		     bool always)
{
	attempt->before_known =
		(always || !atomic_load_explicit(&handle->content_changed, memory_order_relaxed)) &&
		observing_changes(req) && fstat(handle->fd, &attempt->before) == 0;
}

static void
change_attempt_succeeded(struct fs_handle *handle)
{
	if (!atomic_load_explicit(&handle->content_changed, memory_order_relaxed))
		atomic_store_explicit(&handle->content_changed, true, memory_order_relaxed);
}

static bool
same_stamp(const struct stat *a, const struct stat *b)
{
	return a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

/* It failed: report what it moved all the same.  Between announce_write()
 * and end_write(). */
static void
change_attempt_failed(fuse_req_t req, struct fs_handle *handle,
		      const struct change_attempt *attempt)
{
	const struct fs_observer *observer = fs_of(req)->observer;
	struct stat after;

	if (!attempt->before_known || fstat(handle->fd, &after) != 0 ||
	    same_stamp(&attempt->before, &after))
		return;
	if (after.st_size == attempt->before.st_size) {
		report_attributes_changed(req, FS_CHANGE_TIMES, &attempt->before, &after);
		return;
	}
	/* The size moved: it changed content part way (an allocation that
	 * grew the file before it ran out of space). */
	if (observer->data_written && handle->cookie)
		observer->data_written(handle->cookie, req, NULL, attempt->before.st_size, 0);
	change_attempt_succeeded(handle);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *data, size_t size, off_t offset,
	 struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	const struct fs_observer *observer = fs_of(req)->observer;
	struct change_attempt attempt;
	ssize_t count;

	/* Without the writeback cache, O_APPEND reached the backing fd and
	 * pwrite() appends there whatever the offset. */
	if (fs_session_kill_requested())
		drop_privileges(req, fs_of(req), ino, handle->fd, true);
	change_attempt_begin(req, handle, &attempt, false);
	announce_write(observer, handle);
	count = pwrite(handle->fd, data, size, offset);
	if (count < 0) {
		int error = errno;
		change_attempt_failed(req, handle, &attempt);
		end_write(observer, handle);
		fuse_reply_err(req, error);
		return;
	}
	if (count > 0)
		change_attempt_succeeded(handle);
	if (observer && observer->data_written && handle->cookie)
		observer->data_written(handle->cookie, req, data, offset, (size_t)count);
	end_write(observer, handle);
	fuse_reply_write(req, (size_t)count);
}

/*
 * A handle that maps the backing file itself (kernel passthrough, or direct
 * I/O) changes its times, not the ones the kernel cached for the node,
 * when stores through a shared mapping reach it: nothing tells the kernel
 * (write(2) through passthrough does).  At each close of such a handle
 * (FLUSH: close(2) waits for it) and at its release (when a mapping that
 * outlived the close is gone) the cached attributes are dropped, so a stat
 * after munmap or close shows the mtime and ctime the stores moved, as on
 * the backing filesystem.  Handles with no FLUSH are read-only, and cannot
 * map the file to write.
 */
static void
forget_mapped_times(struct fs *fs, const struct fs_handle *handle)
{
	if (handle->io_mode != FS_IO_CACHED && fs->session)
		fuse_lowlevel_notify_inval_inode(fs->session, handle->ino, -1, 0);
}

static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	/*
	 * close() of a duplicate reports deferred write errors of the backing
	 * filesystem to the caller's close(), as the native filesystem would.
	 * Those are the only errors a close may report: when the daemon cannot
	 * even make the duplicate (out of descriptors, its own business, not
	 * the file's), there is nothing to report.  errno is read right after
	 * the call that set it, before the observer runs.
	 */
	struct fs *fs = fs_of(req);
	const struct fs_observer *observer = fs->observer;
	struct fs_handle *handle = handle_of(fi);
	int error = 0;
	int fd = fcntl(handle->fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0 && out_of_descriptors(errno) && cache_shrink(fs))
		fd = fcntl(handle->fd, F_DUPFD_CLOEXEC, 0);
	if (fd >= 0 && close(fd) < 0 && errno != EINTR)
		error = errno;
	/*
	 * A passthrough writer's reports are all handled before its close(2)
	 * returns, so its FLUSH is a point where its writes are counted: a
	 * later open may complete a version there (recorder.c, cut_version()).
	 * And a writer whose closes do not wait for the watch thread runs
	 * ahead of it while its releases (which do wait) fall behind.
	 */
	if (handle->watched)
		writer_watch_drain(fs->writer_watch);
	/* The file as this close leaves it, one fstat for all who ask. */
	bool observed = observer && observer->flushed && handle->cookie;
	struct stat st;
	const struct stat *attributes =
		(observed || handle->new_content_thread) && fstat(handle->fd, &st) == 0 ? &st
											: NULL;
	/* At the close, not the release the kernel sends later: the caller's
	 * next open comes after this reply. */
	if (handle->new_content_thread && attributes)
		small_writers_note(&fs->small_writers, handle->new_content_thread, st.st_size,
				   &handle->new_content_counted);
	if (observed)
		observer->flushed(handle->cookie, req, attributes);
	forget_mapped_times(fs, handle);
	fuse_reply_err(req, error);
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	struct stat st;
	bool known = fstat(handle->fd, &st) == 0;

	if (known)
		remember_stamp(handle->inode, &st);
	if ((fi->flags & O_ACCMODE) != O_RDONLY)
		forget_mapped_times(fs_of(req), handle);
	discard(fs_of(req), handle, known ? &st : NULL);
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
	struct fs_directory *directory;
	int fd, error;

	if (fs_of(req)->directories_without_open) {
		/* The kernel takes it for success and sends no more OPENDIR
		 * or RELEASEDIR: each READDIR opens the directory itself. */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	directory = calloc(1, sizeof(*directory));
	if (directory == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	int node_fd = borrow_ino(req, ino);
	if (node_fd < 0) {
		error = -node_fd;
		goto out;
	}
	fd = open_below(fs_of(req), node_fd, ".",
			O_RDONLY | O_DIRECTORY | O_CLOEXEC | (fs_of(req)->noatime ? O_NOATIME : 0));
	error = errno;
	return_ino(req, ino);
	if (fd < 0)
		goto out;
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
out:
	free(directory);
	fuse_reply_err(req, error);
}

/* OPENDIR's stream, or NULL when the directory is listed without OPENDIR. */
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

/*
 * Where one READDIR's entries come from: the stream OPENDIR opened, kept
 * between requests, or (listed without OPENDIR) the directory opened for
 * this request alone at its offset and read with getdents64 in batches of
 * about one reply, so that a large directory is not read many times over.
 * An entry left over when the reply is full is read again by the next
 * READDIR, which starts at its offset.
 */
struct listing {
	struct fs_directory *kept; /* NULL: without OPENDIR */
	int fd;                    /* without OPENDIR: this request's, or -1 */
	char *batch;
	size_t batch_size, length, position;
};

/* Without OPENDIR: open the directory (node_fd) and go to offset; 0 or an errno. */
static int
listing_open(struct fs *fs, struct listing *listing, int node_fd, off_t offset,
	     size_t batch_size)
{
	listing->batch_size = batch_size < 1024 ? 1024 : batch_size;
	listing->batch = malloc(listing->batch_size);
	if (listing->batch == NULL)
		return ENOMEM;
	listing->fd = open_below(fs, node_fd, ".",
				 O_RDONLY | O_DIRECTORY | O_CLOEXEC | (fs->noatime ? O_NOATIME : 0));
	if (listing->fd < 0)
		return errno;
	if (offset != 0 && lseek(listing->fd, offset, SEEK_SET) < 0)
		return errno;
	return 0;
}

static void
listing_close(struct listing *listing)
{
	if (listing->fd >= 0)
		close(listing->fd);
	free(listing->batch);
}

/* The next entry, not yet used up; NULL at the end (*error 0) or on error. */
static struct dirent64 *
listing_peek(struct listing *listing, int *error)
{
	struct fs_directory *directory = listing->kept;

	if (directory) {
		if (directory->entry == NULL) {
			errno = 0;
			directory->entry = readdir64(directory->stream);
			if (directory->entry == NULL)
				*error = errno; /* 0 at the end */
		}
		return directory->entry;
	}
	if (listing->position >= listing->length) {
		ssize_t length = getdents64(listing->fd, listing->batch, listing->batch_size);
		if (length <= 0) {
			*error = length < 0 ? errno : 0;
			return NULL;
		}
		listing->length = (size_t)length;
		listing->position = 0;
	}
	return (struct dirent64 *)(void *)(listing->batch + listing->position);
}

/* The entry listing_peek() gave is used up (returned, or gone meanwhile). */
static void
listing_advance(struct listing *listing, const struct dirent64 *entry)
{
	if (listing->kept) {
		listing->kept->entry = NULL;
		listing->kept->offset = entry->d_off;
	} else {
		listing->position += entry->d_reclen;
	}
}

static void
read_directory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset,
	       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct listing listing = {.kept = directory_of(fi), .fd = -1};
	char *buffer = malloc(size);
	/* Nodes whose lookups this reply carries: given back if it fails. */
	struct fs_inode **taken = NULL;
	size_t taken_count = 0, taken_capacity = 0;
	size_t used = 0;
	int error = 0, directory_fd = -1;

	if (buffer == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (plus || listing.kept == NULL) {
		directory_fd = borrow_ino(req, ino);
		if (directory_fd < 0) {
			free(buffer);
			fuse_reply_err(req, -directory_fd);
			return;
		}
	}
	if (listing.kept == NULL) {
		/* An entry of READDIRPLUS takes about four times its dirent64. */
		error = listing_open(fs, &listing, directory_fd, offset, plus ? size / 4 : size);
	} else if (offset != listing.kept->offset) {
		seekdir(listing.kept->stream, offset);
		listing.kept->entry = NULL;
		listing.kept->offset = offset;
	}
	while (error == 0) {
		struct dirent64 *dirent = listing_peek(&listing, &error);
		if (dirent == NULL)
			break;
		off_t next = dirent->d_off;
		size_t entry_size;

		if (plus) {
			struct fuse_entry_param entry = {0};
			if (is_dot_or_dotdot(dirent->d_name)) {
				entry.attr.st_ino = dirent->d_ino;
				entry.attr.st_mode = (mode_t)DTTOIF(dirent->d_type);
			} else {
				if (taken_count == taken_capacity) {
					size_t capacity = taken_capacity ? 2 * taken_capacity : 32;
					struct fs_inode **grown =
						realloc(taken, capacity * sizeof(*taken));
					if (grown == NULL) {
						error = ENOMEM;
						break;
					}
					taken = grown;
					taken_capacity = capacity;
				}
				error = lookup_entry(req, directory_fd, dirent->d_name, &entry);
				if (error == ENOENT) { /* removed meanwhile */
					error = 0;
					listing_advance(&listing, dirent);
					continue;
				}
				if (error)
					break;
				hint_entry(req, ino, dirent->d_name, &entry);
			}
			entry_size = fuse_add_direntry_plus(req, buffer + used, size - used,
							    dirent->d_name, &entry, next);
			if (entry_size > size - used) {
				if (entry.ino)
					table_release(fs, inode_of(req, entry.ino), 1);
				break;
			}
			if (entry.ino)
				taken[taken_count++] = inode_of(req, entry.ino);
		} else {
			struct stat st = {.st_ino = dirent->d_ino,
					  .st_mode = (mode_t)DTTOIF(dirent->d_type)};
			entry_size = fuse_add_direntry(req, buffer + used, size - used,
						       dirent->d_name, &st, next);
			if (entry_size > size - used)
				break;
		}
		used += entry_size;
		listing_advance(&listing, dirent);
	}
	listing_close(&listing);
	if (directory_fd >= 0)
		return_ino(req, ino);
	/*
	 * An error after some entries is reported on the next call.  When the
	 * reply does not reach the kernel, it never counts the lookups the
	 * entries carry and will never forget them: give them back here.
	 */
	if (error && used == 0)
		fuse_reply_err(req, error);
	else if (fuse_reply_buf(req, buffer, used) < 0)
		for (size_t i = 0; i < taken_count; i++)
			table_release(fs, taken[i], 1);
	else if (offset == 0 && listing.kept == NULL)
		/* Listed without OPENDIR: the kernel keeps what it fills now. */
		listing_expiry_note(fs->listings, ino);
	free(taken);
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

	if (directory) {
		closedir(directory->stream);
		free(directory);
	}
	fuse_reply_err(req, 0);
}

static void
op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_directory *directory = directory_of(fi);
	int fd, result, error = 0;

	if (directory) {
		fd = dirfd(directory->stream);
		result = datasync ? fdatasync(fd) : fsync(fd);
		fuse_reply_err(req, result < 0 ? errno : 0);
		return;
	}
	/* Listed without OPENDIR: the directory opened for this request. */
	int node_fd = borrow_ino(req, ino);
	if (node_fd < 0) {
		fuse_reply_err(req, -node_fd);
		return;
	}
	fd = open_below(fs_of(req), node_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		error = errno;
	return_ino(req, ino);
	if (fd >= 0) {
		if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
			error = errno;
		close(fd);
	}
	fuse_reply_err(req, error);
}

static void
op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs st;

	int fd = borrow_ino(req, ino);

	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	int result = fstatvfs(fd, &st), error = errno;
	return_ino(req, ino);
	if (result < 0)
		fuse_reply_err(req, error);
	else
		fuse_reply_statfs(req, &st);
}

/*
 * Extended attributes go through /proc/self/fd/N, which names the inode
 * itself (an O_PATH descriptor cannot be used with f*xattr).  The node's
 * descriptor is borrowed for the call: xattr_begin() fills path (and
 * node_fd, when asked), and xattr_end() gives the descriptor back.
 *
 * Who may change what: every change runs with the caller's credentials
 * (fsuid, fsgid, groups), so the backing filesystem checks owner, mode and
 * ACLs for the caller as the native filesystem would.  The kernel checks
 * only some names for a FUSE filesystem before the request arrives (user.*
 * and other names: write permission; trusted.* and security.*:
 * CAP_SYS_ADMIN or CAP_SETFCAP; POSIX ACLs: the owner), and none of
 * system.* (system.nfs4_acl ...), whose handlers in the backing filesystem
 * decide alone, as may those of btrfs.* or ceph.*.  So a change by a caller
 * other than root runs without the daemon's capabilities too
 * (caller_become_exactly()): setfsuid() drops only the filesystem ones, and
 * CAP_SYS_ADMIN would let a handler grant what the caller may not.  Only
 * trusted.* and security.* keep them, the capability having been checked
 * for the caller by the kernel (root stands for the capabilities, as
 * elsewhere in this file: a caller with capabilities but another uid gets
 * what that uid may do).
 *
 * The names user.provfs.* belong to the label policy (INTERFACES.md), which
 * answers them through its own observer hook (virtual_xattr()); without the
 * hook they are not found.  The observer may refuse a read or a change of
 * any other user.* name (check_xattr(): the policy decides it like an
 * access to the file's data); the other namespaces never reach it.
 */
static int
xattr_begin(fuse_req_t req, fuse_ino_t ino, char path[static 32], int *node_fd)
{
	int fd = borrow_ino(req, ino);

	if (fd >= 0)
		snprintf(path, 32, "/proc/self/fd/%d", fd);
	if (node_fd)
		*node_fd = fd;
	return fd < 0 ? fd : 0;
}

static void
xattr_end(fuse_req_t req, fuse_ino_t ino)
{
	return_ino(req, ino);
}

/* Did the kernel check the capability a change of name needs, for the caller? */
static bool
xattr_needs_capability(const char *name)
{
	return strncmp(name, "trusted.", 8) == 0 || strncmp(name, "security.", 9) == 0;
}

static void
reply_xattr_size_or_data(fuse_req_t req, ssize_t result, int error, size_t size,
			 const char *buffer)
{
	if (result < 0)
		fuse_reply_err(req, error);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)result);
	else
		fuse_reply_buf(req, buffer, (size_t)result);
}

/*
 * May the caller of req read ('g') or change ('s', 'r') the user.* name of
 * ino?  The observer decides (check_xattr); 0 or a negative errno.  The
 * node's descriptor is borrowed by the caller (xattr_begin()).
 */
static int
check_xattr(fuse_req_t req, fuse_ino_t ino, char op, const char *name)
{
	const struct fs_observer *observer = fs_of(req)->observer;

	if (observer == NULL || observer->check_xattr == NULL || strncmp(name, "user.", 5) != 0)
		return 0;
	struct fs_node_info info = node_info(inode_of(req, ino));
	return observer->check_xattr(observer->context, req, &info, op, name);
}

/* user.provfs.* names belong to the observer (labels, lineage); true when handled. */
static bool
virtual_xattr(fuse_req_t req, fuse_ino_t ino, char op, const char *name, const char *value,
	      size_t size)
{
	const struct fs_observer *observer = fs_of(req)->observer;

	if (strncmp(name, "user.provfs.", 12) != 0 &&
	    strncmp(name, "system.provfs.", 14) != 0) /* labels' admin route: see labels.c */
		return false;
	if (observer == NULL || observer->virtual_xattr == NULL) {
		fuse_reply_err(req, op == 'g' ? ENODATA : ENOTSUP);
		return true;
	}
	struct fs *fs = fs_of(req);
	struct fs_inode *node = inode_of(req, ino);
	int fd = node_borrow(fs, node);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return true;
	}
	/* The descriptor is the observer's for the call only (node_info()). */
	struct fs_node_info info = node_info(node);
	observer->virtual_xattr(observer->context, req, &info, op, name, value, size);
	/* The observer has replied: req is gone, so no fs_of(req) from here. */
	node_return(fs, node);
	return true;
}

static void
op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	char path[32], *buffer = NULL;
	ssize_t result;
	int error;

	if (virtual_xattr(req, ino, 'g', name, NULL, size))
		return;
	if (size) {
		buffer = malloc(size);
		if (buffer == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	error = -xattr_begin(req, ino, path, NULL);
	if (error == 0) {
		error = -check_xattr(req, ino, 'g', name);
		if (error)
			xattr_end(req, ino);
	}
	if (error) {
		free(buffer);
		fuse_reply_err(req, error);
		return;
	}
	result = getxattr(path, name, buffer, size);
	error = errno;
	xattr_end(req, ino);
	reply_xattr_size_or_data(req, result, error, size, buffer);
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

/* listxattr of path for a caller who is not root: trusted.* names hidden. */
static ssize_t
list_unprivileged(const char *path, char **buffer, size_t size)
{
	ssize_t result;

	/* The whole list, filtered, answers both the size and the data. */
	for (;;) {
		result = listxattr(path, NULL, 0);
		if (result < 0)
			return -errno;
		char *list = realloc(*buffer, (size_t)result + 1);
		if (list == NULL)
			return -ENOMEM;
		*buffer = list;
		result = listxattr(path, *buffer, (size_t)result + 1);
		if (result >= 0)
			break;
		if (errno != ERANGE)
			return -errno;
	}
	result = (ssize_t)hide_trusted_names(*buffer, (size_t)result);
	if (size && (size_t)result > size)
		return -ERANGE;
	return result;
}

static void
op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char path[32], *buffer = NULL;
	ssize_t result;
	int error;

	if (fuse_req_ctx(req)->uid == 0 && size) {
		buffer = malloc(size);
		if (buffer == NULL) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	error = -xattr_begin(req, ino, path, NULL);
	if (error) {
		free(buffer);
		fuse_reply_err(req, error);
		return;
	}
	if (fuse_req_ctx(req)->uid != 0) {
		result = list_unprivileged(path, &buffer, size);
		error = result < 0 ? (int)-result : 0;
	} else {
		result = listxattr(path, buffer, size);
		error = errno;
	}
	xattr_end(req, ino);
	reply_xattr_size_or_data(req, result, error, size, buffer);
	free(buffer);
}

/*
 * setxattr (value != NULL) or removexattr of name, as the caller (see
 * above).  Setting an access ACL may also clear the setgid bit, depending
 * on who sets it (posix_acl_update_mode): as on the native filesystem.
 */
static void
change_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
	     size_t size, int flags)
{
	char path[32];
	struct stat before, after;
	int error, result, node_fd;

	error = -xattr_begin(req, ino, path, &node_fd);
	if (error == 0) {
		error = -check_xattr(req, ino, value ? 's' : 'r', name);
		if (error)
			xattr_end(req, ino);
	}
	if (error) {
		fuse_reply_err(req, error);
		return;
	}
	/* The change moves the node's ctime (and a POSIX ACL its mode):
	 * observers follow it from the attributes before and after, as for
	 * a chmod, and learn who changed an ACL. */
	bool observed = observing_changes(req) && stat_node(node_fd, &before) == 0;
	error = xattr_needs_capability(name) ? -caller_become(req) : -caller_become_exactly(req);
	if (error == 0) {
		result = value ? setxattr(path, name, value, size, flags) : removexattr(path, name);
		error = result < 0 ? errno : 0;
		caller_restore();
	}
	if (error == 0 && observed && stat_node(node_fd, &after) == 0)
		report_attributes_changed(req, FS_CHANGE_XATTR, &before, &after);
	xattr_end(req, ino);
	fuse_reply_err(req, error);
}

static void
op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
	    size_t size, int flags)
{
	if (virtual_xattr(req, ino, 's', name, value, size))
		return;
	change_xattr(req, ino, name, value ? value : "", size, flags);
}

static void
op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (virtual_xattr(req, ino, 'r', name, NULL, 0))
		return;
	change_xattr(req, ino, name, NULL, 0, 0);
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
	     struct fuse_file_info *fi)
{
	struct fs_handle *handle = handle_of(fi);
	const struct fs_observer *observer = fs_of(req)->observer;
	/* Punching or zeroing a range changes content without a write, and
	 * so does an allocation that grows the file.  One that keeps the size
	 * (a preallocation) changes nothing a reader sees but the times:
	 * reported as such, so nobody takes them for a change made outside. */
	bool zeroes = mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE);
	bool may_grow = !(mode & FALLOC_FL_KEEP_SIZE);
	bool announced = zeroes || may_grow;
	struct change_attempt attempt;
	struct stat after;

	change_attempt_begin(req, handle, &attempt, !zeroes);
	if (announced)
		announce_write(observer, handle);
	if (fallocate(handle->fd, mode, offset, length) < 0) {
		int error = errno;
		change_attempt_failed(req, handle, &attempt);
		if (announced)
			end_write(observer, handle);
		fuse_reply_err(req, error);
		return;
	}
	bool after_known = attempt.before_known && fstat(handle->fd, &after) == 0;
	bool changed = zeroes || (may_grow && (!after_known ||
					       after.st_size != attempt.before.st_size));
	if (changed) {
		change_attempt_succeeded(handle);
		if (observer && observer->data_written && handle->cookie)
			observer->data_written(handle->cookie, req, NULL, offset, 0);
	}
	if (announced)
		end_write(observer, handle);
	if (!changed && after_known)
		report_attributes_changed(req, FS_CHANGE_TIMES, &attempt.before, &after);
	fuse_reply_err(req, 0);
}

static void
op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t offset_in,
		   struct fuse_file_info *fi_in, fuse_ino_t ino_out, off_t offset_out,
		   struct fuse_file_info *fi_out, size_t length, int flags)
{
	struct fs_handle *in = handle_of(fi_in), *out = handle_of(fi_out);
	const struct fs_observer *observer = fs_of(req)->observer;
	struct change_attempt attempt;
	ssize_t count;

	change_attempt_begin(req, out, &attempt, false);
	announce_write(observer, out);
	count = copy_file_range(in->fd, &offset_in, out->fd, &offset_out, length,
				(unsigned)flags);
	if (count < 0) {
		int error = errno;
		change_attempt_failed(req, out, &attempt);
		end_write(observer, out);
		fuse_reply_err(req, error);
		return;
	}
	if (count > 0)
		change_attempt_succeeded(out);
	if (observer && observer->data_read && in->cookie)
		observer->data_read(in->cookie, offset_in - count, (size_t)count);
	if (count > 0 && observer && observer->data_written && out->cookie)
		observer->data_written(out->cookie, req, NULL, offset_out - count, (size_t)count);
	end_write(observer, out);
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

void
fs_start_threads(struct fs *fs)
{
	/* Kept listings (no OPENDIR) would outlive the entries they came
	 * with: see fs/listing_expiry.c. */
	if (fs->session && fs->stable_directory_offsets && fs->timeout > 0) {
		fs->listings = listing_expiry_new(fs->session, fs->timeout);
		if (fs->listings == NULL)
			log_warning("cannot start the listing expiry thread (%s): a directory "
				    "listed again after -o timeout looks its entries up one by one",
				    strerror(errno));
	}
}

void
fs_stop_threads(struct fs *fs)
{
	if (fs == NULL)
		return;
	session_ring_stop(); /* its threads process requests: before the observers stop */
	/*
	 * Handles the kernel will never release: the daemon is stopping while
	 * files are open (a signal, after a lazy unmount).  No request reaches
	 * them any more, so they end now, and observers hear them closed.
	 */
	while (fs->open_handles)
		discard(fs, fs->open_handles, NULL);
	writer_watch_free(fs->writer_watch);
	fs->writer_watch = NULL;
	listing_expiry_free(fs->listings);
	fs->listings = NULL;
}

int
fs_attach_session(struct fs *fs, struct fuse_session *session)
{
	fs->session = session;
	make_writer_watch(fs);
	return fs_session_use_io(session, fs->passthrough, fs->io_uring);
}

void
fs_detach_session(struct fs *fs)
{
	(void)fs;
	fs_session_detach_io();
}

const struct fuse_lowlevel_ops *
fs_operations(void)
{
	return &operations;
}

/*
 * Does a directory offset the backing filesystem gave (d_off) name the same
 * place in a later open of the directory?  On ext2/3/4 (hash cookies or
 * byte offsets), XFS and Btrfs it does, which lets a READDIR open the
 * directory afresh at its offset (read_directory()).
 */
static bool
has_stable_directory_offsets(int root_fd)
{
	struct statfs backing;

	if (fstatfs(root_fd, &backing) < 0)
		return false;
	switch ((unsigned long)backing.f_type) {
	case 0xEF53UL:     /* EXT2/3/4_SUPER_MAGIC */
	case 0x58465342UL: /* XFS_SUPER_MAGIC */
	case 0x9123683EUL: /* BTRFS_SUPER_MAGIC */
		return true;
	default:
		return false;
	}
}

/*
 * -o noatime with kernel passthrough: the kernel reads a passed-through
 * file through a backing file it opens on the registered descriptor's
 * mount, so the daemon's O_NOATIME is lost and the backing mount's rule
 * (relatime, most often) moves atimes.  A clone of the backing mount that
 * only this daemon holds (detached: no one else sees it), set noatime,
 * gives the kernel a mount whose reads leave atimes alone; backing files
 * are registered through it by handle (fs/backing_files.c).  Says once
 * why not when it cannot be had.
 */
static void
open_noatime_view(struct fs *fs, int root_fd)
{
	struct mount_attr attributes = {.attr_set = MOUNT_ATTR_NOATIME,
					.attr_clr = MOUNT_ATTR__ATIME};
	const char *reason = "the backing filesystem does not name inodes by handle";
	int view = -1;

	if (!fs->handles)
		goto out;
	view = open_tree(root_fd, "", OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH);
	if (view < 0 ||
	    mount_setattr(view, "", AT_EMPTY_PATH, &attributes, sizeof(attributes)) < 0) {
		reason = strerror(errno);
		goto out;
	}
	/* open_by_handle_at wants a descriptor that is not O_PATH, which
	 * open_tree's is; the view lives while open_tree's is open. */
	fs->noatime_view_dir = openat(view, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->noatime_view_dir < 0) {
		reason = strerror(errno);
		goto out;
	}
	fs->noatime_view_fd = view;
	backing_files_register_through(fs->backing_files, fs->noatime_view_dir, fs->mount_id);
	return;
out:
	if (view >= 0)
		close(view);
	log_info("-o noatime: reads the kernel passes through will move backing atimes: "
		 "no noatime view of the backing mount (%s)",
		 reason);
}

/*
 * Can inodes of the backing filesystem be named by handle and opened again
 * by the daemon (CAP_DAC_READ_SEARCH)?  Sets fs->handles, fs->connectable,
 * fs->mount_fd and fs->mount_id, and says once why not.
 */
static void
probe_handles(struct fs *fs, int root_fd)
{
	union handle_buffer handle;
	struct statfs backing;
	const char *reason;
	char path[32];
	int fd;

	fs->mount_fd = -1;
	if (fstatfs(root_fd, &backing) == 0 && backing.f_type == FUSE_SUPER_MAGIC) {
		/* It makes handles, but opens them only while the inode is cached. */
		reason = "a FUSE filesystem opens them only while it caches the inode";
		goto out;
	}
	fs->mount_fd = openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fs->mount_fd < 0)
		goto out_errno;
	handle.header.handle_bytes = HANDLE_BYTES_MAX;
	if (name_to_handle_at(root_fd, "", &handle.header, &fs->mount_id, AT_EMPTY_PATH) < 0)
		goto out_errno;
	fd = open_by_handle_at(fs->mount_fd, &handle.header, O_PATH | O_CLOEXEC);
	if (fd < 0)
		goto out_errno;
	close(fd);
	fs->handles = true;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", root_fd);
	handle.header.handle_bytes = HANDLE_BYTES_MAX;
	fs->connectable = name_to_handle_at(AT_FDCWD, path, &handle.header, &fd,
					    AT_SYMLINK_FOLLOW | AT_HANDLE_CONNECTABLE) == 0;
	/* Test only: PROVFS_TEST_HANDLES=unconnectable makes a kernel with
	 * connectable handles (Linux 6.13+) behave as one without, such as
	 * Debian 12's 6.1, so that tests/bats/scale.bats can exercise the
	 * name hints (node_reopen_by_hint()).  Read once, here, at mount. */
	const char *test_handles = getenv("PROVFS_TEST_HANDLES");
	if (test_handles && strcmp(test_handles, "unconnectable") == 0)
		fs->connectable = false;
	return;
out_errno:
	reason = strerror(errno);
out:
	log_warning("the backing filesystem cannot name files by handle (%s): one descriptor "
		    "is held per file the kernel knows, so the open-file limit bounds the tree",
		    reason);
	if (fs->mount_fd >= 0)
		close(fs->mount_fd);
	fs->mount_fd = -1;
}

/* A quarter of the descriptors the daemon may open; the rest for open files. */
static size_t
cache_capacity_for_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) < 0 || limit.rlim_cur == RLIM_INFINITY)
		return 4096;
	return limit.rlim_cur / 4 > 2 * TRIM_BATCH ? (size_t)limit.rlim_cur / 4 : 2 * TRIM_BATCH;
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
	pthread_mutex_init(&fs->cache_lock, NULL);
	pthread_mutex_init(&fs->names_lock, NULL);
	pthread_mutex_init(&fs->handles_lock, NULL);
	fs->cache_capacity = cache_capacity_for_limit();
	fs->share_limit = fs->cache_capacity; /* a quarter of the descriptors, as the cache */
	probe_handles(fs, options->backing_fd);
	fs->stable_directory_offsets = has_stable_directory_offsets(options->backing_fd);
	fs->root.fd = options->backing_fd;
	fs->root.device = st.st_dev;
	fs->root.inode = st.st_ino;
	fs->root.lookup_count = 2; /* never dropped */
	pthread_mutex_init(&fs->root.stamp_lock, NULL);
	fs->timeout = options->timeout;
	fs->writeback = options->writeback;
	fs->noatime = options->noatime;
	fs->observer = options->observer;
	fs->passthrough = options->passthrough && !options->writeback;
	fs->io_uring = options->io_uring;
	if (options->passthrough && options->writeback)
		log_info("kernel FUSE passthrough is off: the kernel refuses it with "
			 "writeback_cache");
	fs->noatime_view_fd = -1;
	fs->noatime_view_dir = -1;
	if (fs->passthrough) {
		fs->backing_files = backing_files_new();
		if (fs->backing_files == NULL)
			goto out_free;
		if (fs->noatime)
			open_noatime_view(fs, options->backing_fd);
	}
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
			if (node->fd >= 0)
				close(node->fd);
			pthread_mutex_destroy(&node->stamp_lock);
			free(node->hint);
			free(node);
			node = next;
		}
	}
	free(fs->buckets);
	writer_watch_free(fs->writer_watch);
	backing_files_free(fs->backing_files);
	close(fs->root.fd);
	if (fs->proc_fd >= 0)
		close(fs->proc_fd);
	if (fs->mount_fd >= 0)
		close(fs->mount_fd);
	if (fs->noatime_view_dir >= 0)
		close(fs->noatime_view_dir);
	if (fs->noatime_view_fd >= 0)
		close(fs->noatime_view_fd);
	for (size_t i = 0; i < NAME_SLOTS; i++)
		free(fs->names[i].path);
	pthread_mutex_destroy(&fs->names_lock);
	while (fs->shares) {
		struct handle_share *next = fs->shares->next;
		free(fs->shares);
		fs->shares = next;
	}
	pthread_mutex_destroy(&fs->handles_lock);
	pthread_mutex_destroy(&fs->cache_lock);
	pthread_mutex_destroy(&fs->table_lock);
	pthread_mutex_destroy(&fs->root.stamp_lock);
	free(fs);
}
