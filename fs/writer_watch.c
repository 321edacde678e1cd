/*
 * writer_watch.c - which processes write the files whose writes the
 * kernel passes through.
 *
 * WHY
 *
 * With kernel FUSE passthrough a write(2) to a file of the mount goes from
 * the caller to the backing file without a request to the daemon, so the
 * daemon no longer learns from a WRITE request which process wrote.  The
 * recorder needs that: the producer of a version is the process that made
 * the writes, not the shell that opened a redirect nor a child that only
 * inherited the descriptor (README, "What is recorded").
 *
 * The kernel writes a passed-through file with vfs_iter_write() on the
 * backing file, in the writer's own context, and that raises FAN_MODIFY on
 * the backing inode with the writer's pid, as any write to it would.  So
 * the daemon keeps one fanotify group, FAN_CLASS_NOTIF with FAN_REPORT_FID,
 * and marks the backing inode of every file that has a passthrough writer
 * open (an inode mark, added before the open is replied to, so that no
 * write can precede it).  What was tried first and why not (Linux 6.18):
 *   - a mount or filesystem mark on the FUSE mount itself with
 *     FAN_REPORT_FID fails with ENODEV: a FUSE filesystem's fsid is 0;
 *   - without FAN_REPORT_FID every event carries a descriptor the kernel
 *     opens on the file, here an OPEN request of the mount to itself (a
 *     recursion, and an access the recorder would have to tell apart);
 *     O_PATH is refused as the events' open flags (EINVAL);
 *   - a mount mark on the backing filesystem sees every write to it (the
 *     store's own, the root filesystem's), where an inode mark sees only
 *     the files being written through the mount.
 * FAN_REPORT_FID names the file by its file handle and opens nothing.
 *
 * Events of one file by one process merge while they wait in the kernel's
 * queue, so a stream of writes costs a handful of events.  They are read
 * on this module's own thread, never on a FUSE request thread, and handed
 * to the report function there (the recorder looks the writer up while it
 * most likely still runs).  The daemon's own writes (a handle served by
 * the daemon beside passthrough ones, a truncate) come as requests with
 * their caller and are not reported.
 *
 * Ordering: the kernel queues the event inside the write system call, so
 * by the time a handle's RELEASE reaches the daemon every write through it
 * is in the queue.  writer_watch_drain() waits until the thread has read
 * and reported everything queued at the time of the call: a pass that
 * starts after the call reads until the queue is empty.  The wait is
 * bounded; the common case (queue empty, thread idle) costs one ioctl.
 *
 * What the kernel does not tell: stores into a shared writable mapping
 * (no write system call), and an overflowing queue (reported as pid 0 for
 * every watched file).  The recorder falls back for those (recorder.c).
 *
 * LOCKS
 *   lock   the table of watched files, the pass counters and busy.  Held
 *          over memory, FIONREAD and fanotify_mark(2) (which does no I/O),
 *          never across read(2) or a report.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "writer_watch_i.h"

#ifndef AT_HANDLE_FID
#define AT_HANDLE_FID 0x200 /* Linux 6.5: the handle fanotify reports as a file id */
#endif

#define FID_BYTES_MAX 128     /* MAX_HANDLE_SZ */
#define WATCH_BUCKETS 1024    /* power of two */
#define DRAIN_TIMEOUT_MS 1000 /* a release waits at most this long for the reports */
#define READ_BUFFER 16384
#define WATCH_NICENESS -10    /* see watch_main() */

/* A file id as fanotify reports it: filesystem id, handle type and bytes. */
struct file_id {
	int32_t fsid[2];
	int handle_type;
	unsigned int length;
	unsigned char bytes[FID_BYTES_MAX];
};

struct writer_watch_file {
	struct file_id id;
	dev_t device;
	ino_t inode;
	unsigned long count; /* handles watched; protected by watch->lock */
	struct writer_watch_file *next;
};

struct writer_watch {
	int group_fd; /* fanotify */
	int wake_fd;  /* eventfd: stop */
	pid_t self;
	writer_watch_report_fn *report;
	void *context;

	pthread_mutex_t lock;
	pthread_cond_t pass_done;
	struct writer_watch_file *buckets[WATCH_BUCKETS]; /* protected by lock */
	uint64_t passes;  /* reading passes finished; protected by lock */
	bool busy;        /* a pass is reading or reporting; protected by lock */
	bool drain_timeout_logged;

	_Alignas(struct fanotify_event_metadata) char buffer[READ_BUFFER]; /* the thread's */
	pthread_t thread;
	bool running;
	bool stopping; /* protected by lock */
};

/* ---- file ids ---------------------------------------------------------------- */

static size_t
bucket_of(const struct file_id *id)
{
	uint64_t hash = 1469598103934665603ULL; /* FNV-1a */

	for (unsigned int i = 0; i < id->length; i++)
		hash = (hash ^ id->bytes[i]) * 1099511628211ULL;
	hash ^= (uint64_t)(uint32_t)id->fsid[0] ^ ((uint64_t)(uint32_t)id->fsid[1] << 32);
	return (size_t)(hash ^ (hash >> 29)) & (WATCH_BUCKETS - 1);
}

static bool
ids_equal(const struct file_id *a, const struct file_id *b)
{
	return a->fsid[0] == b->fsid[0] && a->fsid[1] == b->fsid[1] &&
	       a->handle_type == b->handle_type && a->length == b->length &&
	       memcmp(a->bytes, b->bytes, a->length) == 0;
}

/* The id fanotify gives fd's file.  0 or -1 with errno set. */
static int
file_id_of(int fd, struct file_id *id)
{
	union {
		struct file_handle header;
		char space[sizeof(struct file_handle) + FID_BYTES_MAX];
	} handle;
	struct statfs filesystem;
	int mount_id;

	if (fstatfs(fd, &filesystem) < 0)
		return -1;
	handle.header.handle_bytes = FID_BYTES_MAX;
	if (name_to_handle_at(fd, "", &handle.header, &mount_id, AT_EMPTY_PATH | AT_HANDLE_FID) <
	    0) {
		if (errno != EINVAL)
			return -1;
		/* Before Linux 6.5: the export handle, which is the same where
		 * the filesystem can export at all. */
		handle.header.handle_bytes = FID_BYTES_MAX;
		if (name_to_handle_at(fd, "", &handle.header, &mount_id, AT_EMPTY_PATH) < 0)
			return -1;
	}
	memset(id, 0, sizeof(*id));
	memcpy(id->fsid, &filesystem.f_fsid, sizeof(id->fsid));
	id->handle_type = handle.header.handle_type;
	id->length = handle.header.handle_bytes;
	memcpy(id->bytes, handle.header.f_handle, id->length);
	return 0;
}

/* The watched file named id, or NULL.  Locked. */
static struct writer_watch_file *
find_file(struct writer_watch *watch, const struct file_id *id)
{
	struct writer_watch_file *file = watch->buckets[bucket_of(id)];

	while (file && !ids_equal(&file->id, id))
		file = file->next;
	return file;
}

/* ---- watching ------------------------------------------------------------------ */

struct writer_watch *
writer_watch_new(writer_watch_report_fn *report, void *context)
{
	struct writer_watch *watch = calloc(1, sizeof(*watch));
	int saved;

	if (watch == NULL)
		return NULL;
	watch->wake_fd = -1;
	watch->group_fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK |
						FAN_REPORT_FID,
					O_RDONLY | O_CLOEXEC | O_LARGEFILE);
	if (watch->group_fd < 0)
		goto out_errno;
	watch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch->wake_fd < 0)
		goto out_errno;
	watch->report = report;
	watch->context = context;
	pthread_mutex_init(&watch->lock, NULL);
	pthread_cond_init(&watch->pass_done, NULL);
	return watch;
out_errno:
	saved = errno;
	if (watch->group_fd >= 0)
		close(watch->group_fd);
	if (watch->wake_fd >= 0)
		close(watch->wake_fd);
	free(watch);
	errno = saved;
	return NULL;
}

struct writer_watch_file *
writer_watch_add(struct writer_watch *watch, int fd, dev_t device, ino_t inode)
{
	struct writer_watch_file *file;
	struct file_id id;

	if (file_id_of(fd, &id) < 0)
		return NULL;
	/* The mark is made and dropped under the lock, so that a last
	 * remove and a first add of one file cannot cross. */
	pthread_mutex_lock(&watch->lock);
	file = find_file(watch, &id);
	if (file) {
		file->count++;
		goto out;
	}
	file = calloc(1, sizeof(*file));
	if (file == NULL)
		goto out;
	if (fanotify_mark(watch->group_fd, FAN_MARK_ADD | FAN_MARK_INODE, FAN_MODIFY, fd, NULL) <
	    0) {
		int saved = errno;
		free(file);
		file = NULL;
		errno = saved;
		goto out;
	}
	file->id = id;
	file->device = device;
	file->inode = inode;
	file->count = 1;
	size_t bucket = bucket_of(&id);
	file->next = watch->buckets[bucket];
	watch->buckets[bucket] = file;
out:
	pthread_mutex_unlock(&watch->lock);
	return file;
}

void
writer_watch_remove(struct writer_watch *watch, struct writer_watch_file *file, int fd)
{
	pthread_mutex_lock(&watch->lock);
	if (--file->count > 0) {
		pthread_mutex_unlock(&watch->lock);
		return;
	}
	struct writer_watch_file **link = &watch->buckets[bucket_of(&file->id)];
	while (*link != file)
		link = &(*link)->next;
	*link = file->next;
	/* A mark holds its inode: an unlinked file would keep its blocks.
	 * Events of it still queued are ignored from now on. */
	if (fanotify_mark(watch->group_fd, FAN_MARK_REMOVE | FAN_MARK_INODE, FAN_MODIFY, fd,
			  NULL) < 0 &&
	    errno != ENOENT)
		log_error("cannot stop watching a written file: %s", strerror(errno));
	pthread_mutex_unlock(&watch->lock);
	free(file);
}

/* ---- the reading thread ------------------------------------------------------- */

/* Report every watched file as possibly written unseen (queue overflow). */
static void
report_all_unknown(struct writer_watch *watch)
{
	size_t count = 0, capacity = 0;
	struct {
		dev_t device;
		ino_t inode;
	} *files = NULL;

	pthread_mutex_lock(&watch->lock);
	for (size_t i = 0; i < WATCH_BUCKETS; i++)
		for (struct writer_watch_file *file = watch->buckets[i]; file; file = file->next) {
			if (count == capacity) {
				size_t grown = capacity ? capacity * 2 : 16;
				void *more = realloc(files, grown * sizeof(*files));
				if (more == NULL)
					break;
				files = more;
				capacity = grown;
			}
			files[count].device = file->device;
			files[count].inode = file->inode;
			count++;
		}
	pthread_mutex_unlock(&watch->lock);
	for (size_t i = 0; i < count; i++)
		watch->report(watch->context, files[i].device, files[i].inode, 0);
	free(files);
}

/* One event: report its writer if its file is watched. */
static void
handle_event(struct writer_watch *watch, const struct fanotify_event_metadata *event)
{
	const char *record = (const char *)event + event->metadata_len;
	const char *end = (const char *)event + event->event_len;

	if (event->mask & FAN_Q_OVERFLOW) {
		log_warning("the kernel's queue of write events overflowed: the writers of files "
			    "written through kernel passthrough meanwhile are unknown");
		report_all_unknown(watch);
		return;
	}
	if (!(event->mask & FAN_MODIFY) || event->pid == watch->self || event->pid <= 0)
		return;
	while (record + sizeof(struct fanotify_event_info_header) <= end) {
		const struct fanotify_event_info_header *header = (const void *)record;
		if (header->len < sizeof(*header) || record + header->len > end)
			return;
		if (header->info_type == FAN_EVENT_INFO_TYPE_FID &&
		    header->len >= sizeof(struct fanotify_event_info_fid) +
					   sizeof(struct file_handle)) {
			const struct fanotify_event_info_fid *info = (const void *)record;
			struct file_handle handle;
			struct file_id id;
			memcpy(&handle, info->handle, sizeof(handle));
			if (handle.handle_bytes > FID_BYTES_MAX ||
			    sizeof(*info) + sizeof(handle) + handle.handle_bytes > header->len)
				return;
			memset(&id, 0, sizeof(id));
			memcpy(id.fsid, &info->fsid, sizeof(id.fsid));
			id.handle_type = handle.handle_type;
			id.length = handle.handle_bytes;
			memcpy(id.bytes, info->handle + sizeof(handle), id.length);
			pthread_mutex_lock(&watch->lock);
			struct writer_watch_file *file = find_file(watch, &id);
			dev_t device = file ? file->device : 0;
			ino_t inode = file ? file->inode : 0;
			pthread_mutex_unlock(&watch->lock);
			if (file)
				watch->report(watch->context, device, inode, event->pid);
			return;
		}
		record += header->len;
	}
}

/* Read and report until the queue is empty. */
static void
read_pass(struct writer_watch *watch)
{
	char *buffer = watch->buffer;

	for (;;) {
		ssize_t length = read(watch->group_fd, buffer, sizeof(watch->buffer));
		if (length < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				log_error("cannot read write events: %s", strerror(errno));
			return;
		}
		const struct fanotify_event_metadata *event = (const void *)buffer;
		while (FAN_EVENT_OK(event, length)) {
			if (event->vers == FANOTIFY_METADATA_VERSION)
				handle_event(watch, event);
			if (event->fd >= 0)
				close(event->fd); /* never with FAN_REPORT_FID */
			event = FAN_EVENT_NEXT(event, length);
		}
	}
}

static void *
watch_main(void *argument)
{
	struct writer_watch *watch = argument;
	struct pollfd sources[2] = {{.fd = watch->group_fd, .events = POLLIN},
				    {.fd = watch->wake_fd, .events = POLLIN}};

	/*
	 * A writer is identified from /proc while it runs; many exit right
	 * after their last write.  This thread does little (events merge in
	 * the kernel) and must get the CPU first when one comes: a higher
	 * weight than the callers' (this thread only; Linux niceness is per
	 * thread).
	 */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), WATCH_NICENESS) < 0)
		log_debug("cannot raise the writer watch's priority: %s", strerror(errno));

	for (;;) {
		if (poll(sources, 2, -1) < 0 && errno != EINTR) {
			log_error("cannot wait for write events: %s", strerror(errno));
			sleep(1);
		}
		pthread_mutex_lock(&watch->lock);
		bool stopping = watch->stopping;
		watch->busy = true;
		pthread_mutex_unlock(&watch->lock);
		read_pass(watch);
		pthread_mutex_lock(&watch->lock);
		watch->busy = false;
		watch->passes++;
		pthread_cond_broadcast(&watch->pass_done);
		pthread_mutex_unlock(&watch->lock);
		if (stopping)
			return NULL;
	}
}

int
writer_watch_start(struct writer_watch *watch)
{
	watch->self = getpid(); /* after daemonizing: the pid of our own writes */
	int error = pthread_create(&watch->thread, NULL, watch_main, watch);

	if (error)
		return -error;
	watch->running = true;
	return 0;
}

void
writer_watch_drain(struct writer_watch *watch)
{
	struct timespec deadline;
	int queued = 0, error = 0;

	pthread_mutex_lock(&watch->lock);
	if (ioctl(watch->group_fd, FIONREAD, &queued) < 0)
		queued = 1; /* cannot tell: wait for a pass */
	if (!watch->running || watch->stopping || (queued == 0 && !watch->busy)) {
		pthread_mutex_unlock(&watch->lock);
		return;
	}
	/*
	 * With events queued, the next pass reads them all; a pass already
	 * under way may have read before they came, so then the one after it.
	 */
	uint64_t target = watch->passes + (watch->busy ? 2 : 1);
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += DRAIN_TIMEOUT_MS / 1000;
	deadline.tv_nsec += (long)(DRAIN_TIMEOUT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	while (watch->passes < target && !watch->stopping && error != ETIMEDOUT) {
		/* A busy pass ends with the queue empty: if it ended with nothing
		 * queued since, the one after is not needed. */
		error = pthread_cond_timedwait(&watch->pass_done, &watch->lock, &deadline);
		if (watch->passes + 1 == target && !watch->busy &&
		    ioctl(watch->group_fd, FIONREAD, &queued) == 0 && queued == 0)
			break;
	}
	bool log_it = error == ETIMEDOUT && !watch->drain_timeout_logged;
	if (log_it)
		watch->drain_timeout_logged = true;
	pthread_mutex_unlock(&watch->lock);
	if (log_it)
		log_warning("the write events of a closing file were not read within %d ms: "
			    "its writer may be recorded as unknown",
			    DRAIN_TIMEOUT_MS);
}

void
writer_watch_free(struct writer_watch *watch)
{
	if (watch == NULL)
		return;
	if (watch->running) {
		uint64_t one = 1;
		pthread_mutex_lock(&watch->lock);
		watch->stopping = true;
		pthread_mutex_unlock(&watch->lock);
		if (write(watch->wake_fd, &one, sizeof(one)) < 0)
			log_error("cannot stop the write watch: %s", strerror(errno));
		pthread_join(watch->thread, NULL);
	}
	for (size_t i = 0; i < WATCH_BUCKETS; i++) {
		struct writer_watch_file *file = watch->buckets[i];
		while (file) {
			struct writer_watch_file *next = file->next;
			free(file);
			file = next;
		}
	}
	close(watch->group_fd);
	close(watch->wake_fd);
	pthread_cond_destroy(&watch->pass_done);
	pthread_mutex_destroy(&watch->lock);
	free(watch);
}
