/*
 * backing_files.c - which handles the kernel may pass through, and their
 * backing ids.
 *
 * WHY
 *
 * With kernel FUSE passthrough (see fs/session_io.c) the kernel puts each
 * inode in one I/O mode at a time: while any handle of it is cached (the
 * kernel's page cache over requests to the daemon) a passthrough open
 * fails, and while any handle is passed through every other open must be
 * passed through too, naming the same backing id; otherwise the caller's
 * open fails with EIO.  A passthrough open may add FOPEN_DIRECT_IO: then
 * reads and writes come to the daemon and only mmap goes to the backing
 * file.  So the daemon keeps, per node with open handles, how many are
 * cached and how many passed through, and the one backing id they share,
 * and decides each open under one lock:
 *
 *   eligible, no cached handle open    -> passthrough (register the backing
 *                                         file on the first one)
 *   eligible, a cached handle open     -> cached
 *   not eligible, passthrough handles  -> passthrough with direct I/O
 *   not eligible, otherwise            -> cached
 *
 * A handle that may not be passed through is one whose writes must drop
 * privileges the way only the daemon does it (a file with suid, sgid or
 * file capabilities at open): direct I/O keeps its reads and writes in the
 * daemon while others pass through.
 *
 * The daemon's counts cover the kernel's at every moment: a handle is
 * counted before its open reply is sent and uncounted at RELEASE, which
 * the kernel sends after it stopped using the handle.  The backing id is
 * dropped when the last passthrough handle is released; a kernel inode
 * holds the backing file itself while it has passthrough handles, so an
 * id is only needed until the open replies that name it are taken.
 *
 * The ioctl that registers a backing file is made outside the lock; when
 * two first opens race, the loser drops its id and takes the winner's.
 *
 * The kernel opens each passed-through handle's backing file anew, on the
 * mount of the descriptor registered, with the caller's flags: the
 * daemon's O_NOATIME does not carry over, and reads the kernel passes
 * through follow that mount's access-time rule.  On a -o noatime mount the
 * descriptor registered is therefore the same inode reopened by handle
 * through a private noatime view of the backing mount
 * (backing_files_register_through()).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backing_files_i.h"
#include "log.h"
#include "session_io_i.h"

struct backing_entry {
	fuse_ino_t ino;
	unsigned long cached;      /* open cached handles */
	unsigned long passthrough; /* open passthrough handles */
	int backing_id;            /* > 0 while passthrough > 0 */
	struct backing_entry *next;
};

struct backing_files {
	pthread_mutex_t lock;
	struct backing_entry **buckets; /* protected by lock */
	size_t bucket_count;            /* power of two */
	size_t entry_count;
	bool open_failure_logged;
	int view_fd;  /* a noatime view of the backing mount, or -1 (not owned) */
	int mount_id; /* the backing mount's, whose handles view_fd opens */
	bool view_failure_logged;
};

struct backing_files *
backing_files_new(void)
{
	struct backing_files *files = calloc(1, sizeof(*files));

	if (files == NULL)
		return NULL;
	files->bucket_count = 256;
	files->buckets = calloc(files->bucket_count, sizeof(*files->buckets));
	if (files->buckets == NULL) {
		free(files);
		return NULL;
	}
	pthread_mutex_init(&files->lock, NULL);
	files->view_fd = -1;
	return files;
}

/* The first time flag (one of files's) is asked: a reason is logged once. */
static bool
first_time(struct backing_files *files, bool *flag)
{
	pthread_mutex_lock(&files->lock);
	bool first = !*flag;
	*flag = true;
	pthread_mutex_unlock(&files->lock);
	return first;
}

void
backing_files_register_through(struct backing_files *files, int view_fd, int mount_id)
{
	files->view_fd = view_fd;
	files->mount_id = mount_id;
}

/*
 * fd's inode opened again through the noatime view, for registering: -1
 * when there is no view, or fd is on another mount (a handle means
 * something only on its own filesystem), or the handle does not open.
 */
static int
reopen_in_view(struct backing_files *files, int fd)
{
	union {
		struct file_handle header;
		char bytes[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} handle;
	int mount_id, reopened;

	if (files->view_fd < 0)
		return -1;
	handle.header.handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", &handle.header, &mount_id, AT_EMPTY_PATH) == 0) {
		if (mount_id != files->mount_id)
			errno = EXDEV;
		else if ((reopened = open_by_handle_at(files->view_fd, &handle.header,
						       O_RDONLY | O_CLOEXEC)) >= 0)
			return reopened;
	}
	int error = errno;
	if (first_time(files, &files->view_failure_logged))
		log_info("-o noatime: a backing file could not be reopened through the noatime "
			 "view (%s): reads the kernel passes through move its atime",
			 strerror(error));
	return -1;
}

void
backing_files_free(struct backing_files *files)
{
	if (files == NULL)
		return;
	for (size_t i = 0; i < files->bucket_count; i++) {
		struct backing_entry *entry = files->buckets[i];
		while (entry) {
			struct backing_entry *next = entry->next;
			free(entry);
			entry = next;
		}
	}
	free(files->buckets);
	pthread_mutex_destroy(&files->lock);
	free(files);
}

static size_t
bucket_of(const struct backing_files *files, fuse_ino_t ino)
{
	uint64_t key = (uint64_t)ino * 0x9e3779b97f4a7c15ULL;

	return (size_t)(key >> 32) & (files->bucket_count - 1);
}

/* The entry of ino, made when absent (NULL when out of memory).  Locked. */
static struct backing_entry **
entry_slot(struct backing_files *files, fuse_ino_t ino)
{
	struct backing_entry **slot = &files->buckets[bucket_of(files, ino)];

	while (*slot && (*slot)->ino != ino)
		slot = &(*slot)->next;
	return slot;
}

static void
grow(struct backing_files *files)
{
	size_t count = files->bucket_count * 2;
	struct backing_entry **buckets = calloc(count, sizeof(*buckets));
	struct backing_entry **old = files->buckets;
	size_t old_count = files->bucket_count;

	if (buckets == NULL)
		return; /* longer chains, still correct */
	files->buckets = buckets;
	files->bucket_count = count;
	for (size_t i = 0; i < old_count; i++) {
		struct backing_entry *entry = old[i];
		while (entry) {
			struct backing_entry *next = entry->next;
			size_t b = bucket_of(files, entry->ino);
			entry->next = buckets[b];
			buckets[b] = entry;
			entry = next;
		}
	}
	free(old);
}

static struct backing_entry *
entry_get(struct backing_files *files, fuse_ino_t ino)
{
	struct backing_entry **slot = entry_slot(files, ino);

	if (*slot)
		return *slot;
	struct backing_entry *entry = calloc(1, sizeof(*entry));
	if (entry == NULL)
		return NULL;
	entry->ino = ino;
	*slot = entry;
	if (++files->entry_count > files->bucket_count)
		grow(files);
	return entry;
}

/* Forget an entry with no handles left.  Locked. */
static void
entry_put(struct backing_files *files, struct backing_entry *entry)
{
	if (entry->cached || entry->passthrough)
		return;
	struct backing_entry **slot = entry_slot(files, entry->ino);
	*slot = entry->next;
	files->entry_count--;
	free(entry);
}

int
backing_files_open(struct backing_files *files, fuse_ino_t ino, int fd, bool eligible,
		   enum fs_io_mode *mode_out, int *backing_id)
{
	enum fs_io_mode mode = FS_IO_CACHED;
	struct backing_entry *entry;
	int registered = 0; /* an id this call registered and may have to drop */

	*backing_id = 0;
	for (;;) {
		pthread_mutex_lock(&files->lock);
		entry = entry_get(files, ino);
		if (entry == NULL) {
			pthread_mutex_unlock(&files->lock);
			if (registered > 0)
				fs_session_backing_close(registered);
			return -ENOMEM;
		}
		if (!eligible) {
			if (entry->passthrough) {
				entry->passthrough++;
				*backing_id = entry->backing_id;
				mode = FS_IO_PASSTHROUGH_DIRECT;
			} else {
				entry->cached++;
				mode = FS_IO_CACHED;
			}
			break;
		}
		if (entry->cached) {
			entry->cached++;
			mode = FS_IO_CACHED;
			break;
		}
		if (entry->passthrough) {
			entry->passthrough++;
			*backing_id = entry->backing_id;
			mode = FS_IO_PASSTHROUGH;
			break;
		}
		if (registered > 0) {
			entry->passthrough = 1;
			entry->backing_id = registered;
			*backing_id = registered;
			registered = 0;
			mode = FS_IO_PASSTHROUGH;
			break;
		}
		entry_put(files, entry);
		pthread_mutex_unlock(&files->lock);

		int reopened = reopen_in_view(files, fd);
		registered = fs_session_backing_open(reopened >= 0 ? reopened : fd);
		if (reopened >= 0)
			close(reopened); /* the kernel keeps its own reference */
		if (registered < 0) {
			if (first_time(files, &files->open_failure_logged))
				log_info("cannot register a backing file for kernel passthrough "
					 "(%s): such files go through the daemon",
					 strerror(-registered));
			eligible = false;
			registered = 0;
		}
	}
	entry_put(files, entry); /* frees nothing it counted */
	pthread_mutex_unlock(&files->lock);
	if (registered > 0)
		fs_session_backing_close(registered); /* another open won the race */
	*mode_out = mode;
	return 0;
}

void
backing_files_close(struct backing_files *files, fuse_ino_t ino, enum fs_io_mode mode)
{
	int backing_id = 0;

	pthread_mutex_lock(&files->lock);
	struct backing_entry *entry = *entry_slot(files, ino);
	if (entry == NULL) {
		pthread_mutex_unlock(&files->lock);
		log_error("handle of an untracked node closed");
		return;
	}
	if (mode == FS_IO_CACHED) {
		entry->cached--;
	} else if (--entry->passthrough == 0) {
		backing_id = entry->backing_id;
		entry->backing_id = 0;
	}
	entry_put(files, entry);
	pthread_mutex_unlock(&files->lock);
	if (backing_id > 0)
		fs_session_backing_close(backing_id);
}
