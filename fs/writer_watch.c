/*
 * writer_watch.c - which processes write the files whose writes the
 * kernel passes through, identified while they wait.
 *
 * WHY
 *
 * With kernel FUSE passthrough a write(2) to a file of the mount goes from
 * the caller to the backing file without a request to the daemon, so the
 * daemon no longer learns from a WRITE request which process wrote.  The
 * recorder needs that: the producer of a version is the process that made
 * the writes, not the shell that opened a redirect nor a child that only
 * inherited the descriptor (README, "What is recorded").  And it needs to
 * learn it while the writer certainly runs: a writer is identified from
 * /proc, and one that writes and exits at once ('{ python3 -c ...; } >o')
 * is gone before any after-the-fact report could be read.  An earlier
 * design read asynchronous FAN_MODIFY events and lost exactly those
 * writers under load.
 *
 * HOW
 *
 * Linux 6.14 has pre-content events: a group of class
 * FAN_CLASS_PRE_CONTENT that marks an inode for FAN_PRE_ACCESS gets a
 * permission event inside every read(2) and write(2) of it, before any
 * byte moves, in the caller's context, and the caller waits until the
 * group answers.  A passed-through write is vfs_iter_write() on the
 * kernel's backing file in the writer's context, so the event names the
 * writer (its pid) and the writer waits for us.  So every backing inode
 * with a passthrough writer open gets an inode mark for FAN_PRE_ACCESS |
 * FAN_MODIFY, added before the open is replied to (the kernel decides when
 * it opens its backing file for the caller, after our reply, whether that
 * file raises pre-content events), and the watch's thread, for each
 * pre-access of a process other than the daemon:
 *
 *   1. identifies the caller (ops->identify: the recorder's process
 *      table, a cache that reads /proc only at a process's first sight),
 *   2. keeps that identity in the file's table of accessors (pid -> token),
 *   3. answers FAN_ALLOW (never anything else: this is no policy).
 *
 * A pre-access does not say whether it reads or writes.  FAN_MODIFY, in
 * the same group, does, after the write: it is reported (ops->report) with
 * the identity taken in step 1, which the writer's own earlier pre-access
 * made certain (a write begins only after we answered, so its FAN_MODIFY
 * is queued after its pre-access was handled).  Reports need no live
 * process, so they may come late: a handle's release waits for them
 * (writer_watch_drain()).
 *
 * What was measured and chosen (Linux 6.18, ext4, a 2-core VM):
 *   - FAN_REPORT_FID is refused with FAN_CLASS_PRE_CONTENT (EINVAL), so
 *     every event carries a descriptor the kernel opens on the backing
 *     file (never on the mount: the mark is on the backing inode), which
 *     names the file (fstat) and must be closed;
 *   - tmpfs refuses pre-content marks (EOPNOTSUPP): writer_watch_new()
 *     tries one on the backing directory, so a mount says so once;
 *   - a pre-access costs one round trip per read(2) or write(2) of a
 *     watched file: about 15 to 40 us here, nothing against 1 MiB writes,
 *     about what a WRITE request through the daemon costs at 4 KiB;
 *   - stores into a shared writable mapping raise nothing: the recorder
 *     tells those from the file's stamp (recorder.c).
 *
 * LATE
 *
 * A handle open to read and write (a database, 'r+b') cannot take that
 * wait: a pre-access does not say whether it reads or writes, so every
 * read(2) would wait as a write does, where the page cache serves a
 * database's reads of its own pages (SQLite's aggregate in scripts/bench
 * took 1.3 times as long through such a watch as through the daemon).
 * Such a file is marked for FAN_MODIFY only
 * (writer_watch_add(late)): nothing waits, and the writer is identified
 * after its write, on this thread, by ops->identify_since(pid, since):
 * kept only if the process has certainly not exec'd or exited since a
 * time before the write (the recorder's process table knows, from the
 * process connector), else reported unknown, never as another image.
 * The time: an event read after a read(2) of the group found it empty
 * was queued after that read began (quiet_ns), so a batch's events all
 * come after the last empty read before it, and after the file was marked.
 * While a file is watched late, this thread reads the group every
 * LATE_TICK_MS even when nothing comes, so that the time stays recent: a
 * child that execs a program and writes through an inherited descriptor a
 * few milliseconds later is named.  And while only late files are
 * watched, nobody waits for this thread, so it lets writes gather for
 * LATE_GATHER_MS before it reads: the kernel merges one writer's events of
 * one file while they are queued, so a database's thousands of page
 * writes come as a few events.  A writer that writes and exits or
 * execs at once, before we read its event, is unknown; a database's
 * writer, which lives, is named.  A file is watched one way
 * at a time: while a file has handles watched one way, a handle that wants
 * the other is refused (EBUSY) and its caller served by the daemon.
 *
 * Bounded: a caller waits for us little more than RESPONSE_TIMEOUT_MS at
 * worst.  A guard thread watches the watch thread's progress: when it has
 * had work and finished none of it for that long (an identification whose
 * /proc read hangs, a report that waits, a thread that is not scheduled),
 * the guard answers the caller being identified and, while the thread
 * stays stuck, reads and allows everything itself, reporting writers as
 * unknown.  Closing the group (at exit, or when the daemon dies) makes the
 * kernel allow every waiting access.  The queue is unlimited: a full
 * queue would let pre-access events through unanswered, unseen.
 *
 * LOCKS
 *   lock   the table of watched files, their accessors, the counters and
 *          the guard's state.  Held over memory, fanotify_mark(2),
 *          FIONREAD, the group's non-blocking read(2) (so that drains
 *          count exactly) and a write to the wakeup eventfd, never
 *          across identify(), a report, or an answer.  Tokens are
 *          forgotten after it is released.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/fanotify.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "writer_watch_i.h"

/* Linux 6.14 uapi, newer than the build's headers (linux/fanotify.h). */
#ifndef FAN_PRE_ACCESS
#define FAN_PRE_ACCESS 0x00100000
#endif

#define WATCH_MASK (FAN_PRE_ACCESS | FAN_MODIFY)
#define LATE_WATCH_MASK FAN_MODIFY
#define WATCH_BUCKETS 1024        /* power of two */
#define ACCESSORS_KEPT 256        /* per watched file; the oldest go first */
#define RESPONSE_TIMEOUT_MS 2000  /* a caller waits at most about this long */
#define GUARD_TICK_MS 500
#define DRAIN_TIMEOUT_MS 5000     /* a release waits at most this long for reports */
#define READ_BUFFER 16384
#define WATCH_NICENESS -10        /* see watch_main() */
#define LATE_TICK_MS 5            /* while files are watched late, an empty read this often */
#define LATE_GATHER_MS 1          /* with only late files, writes gather this long: LATE */

struct accessor {
	pid_t pid;
	void *token; /* ops->identify's, referenced */
};

struct writer_watch_file {
	dev_t device;
	ino_t inode;
	bool late;             /* FAN_MODIFY only: writers identified after they wrote (LATE) */
	int64_t marked_ns;     /* when its mark was made: its events all come after */
	unsigned long handles; /* writer_watch_add() counts; protected by lock */
	unsigned long users;   /* events being handled; protected by lock */
	struct accessor *accessors; /* the latest last; protected by lock */
	size_t accessor_count, accessor_capacity;
	struct writer_watch_file *next; /* in the table while handles > 0 */
};

struct writer_watch {
	int group_fd; /* fanotify */
	int wake_fd;  /* eventfd: stop, or tick (a first file watched late) */
	pid_t self;
	struct writer_watch_ops ops;

	pthread_mutex_t lock;
	pthread_cond_t changed; /* a batch handled, the guard's answer done */
	pthread_cond_t guard_wake;
	struct writer_watch_file *buckets[WATCH_BUCKETS]; /* protected by lock */
	uint64_t taken;   /* events read from the group; protected by lock */
	uint64_t handled; /* events handled; protected by lock */
	uint64_t progress; /* batches and identifications the watch thread finished */
	/* Every event read from now on was queued after this time (LATE):
	 * when a read of the group last found it empty.  Protected by lock. */
	int64_t quiet_ns;
	size_t late_files; /* watched late; protected by lock */
	size_t files;      /* watched, late or not; protected by lock */
	bool gathering;    /* the watch thread lets writes gather: wake it to read now */
	/* The event whose caller is being identified (guard); protected by lock. */
	bool identifying;
	int waiting_fd;
	bool waiting_answered; /* by the guard */
	bool guard_answering;  /* the guard writes its answer: keep waiting_fd open */
	bool guard_logged, drain_logged; /* protected by lock */
	atomic_bool fd_failure_logged, answer_failure_logged;

	pthread_t thread, guard;
	bool running;
	bool stopping; /* protected by lock */
};

static void
deadline_in(struct timespec *deadline, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, deadline);
	deadline->tv_sec += ms / 1000;
	deadline->tv_nsec += (ms % 1000) * 1000000L;
	if (deadline->tv_nsec >= 1000000000L) {
		deadline->tv_sec++;
		deadline->tv_nsec -= 1000000000L;
	}
}

/* ---- watched files -------------------------------------------------------------- */

static size_t
bucket_of(dev_t device, ino_t inode)
{
	uint64_t hash = ((uint64_t)inode ^ ((uint64_t)device << 32)) * 0x9e3779b97f4a7c15ULL;

	return (size_t)(hash >> 40) & (WATCH_BUCKETS - 1);
}

/* The watched file (device, inode), or NULL.  Locked. */
static struct writer_watch_file *
find_file(struct writer_watch *watch, dev_t device, ino_t inode)
{
	struct writer_watch_file *file = watch->buckets[bucket_of(device, inode)];

	while (file && !(file->device == device && file->inode == inode))
		file = file->next;
	return file;
}

/* Free a file nobody counts or uses any more (not locked). */
static void
free_file(struct writer_watch *watch, struct writer_watch_file *file)
{
	for (size_t i = 0; i < file->accessor_count; i++)
		watch->ops.forget(watch->ops.context, file->accessors[i].token);
	free(file->accessors);
	free(file);
}

/* The watched file an event's descriptor names, with a use; or NULL. */
static struct writer_watch_file *
event_file(struct writer_watch *watch, int fd)
{
	struct writer_watch_file *file;
	struct stat st;

	if (fstat(fd, &st) < 0)
		return NULL;
	pthread_mutex_lock(&watch->lock);
	file = find_file(watch, st.st_dev, st.st_ino);
	if (file)
		file->users++;
	pthread_mutex_unlock(&watch->lock);
	return file;
}

static void
put_file(struct writer_watch *watch, struct writer_watch_file *file)
{
	pthread_mutex_lock(&watch->lock);
	bool last = --file->users == 0 && file->handles == 0;
	pthread_mutex_unlock(&watch->lock);
	if (last)
		free_file(watch, file);
}

/*
 * Keep token as pid's identity for file, the latest last.  The token to
 * forget (a replaced or evicted one, or token itself when it adds
 * nothing), or NULL.  Locked.
 */
static void *
remember(struct writer_watch_file *file, pid_t pid, void *token)
{
	struct accessor *accessors = file->accessors;
	size_t i = file->accessor_count;
	void *dropped;

	if (token == NULL)
		return NULL;
	while (i > 0 && accessors[i - 1].pid != pid)
		i--;
	if (i > 0 && accessors[i - 1].token == token)
		return token; /* the same image again: the common case */
	if (i > 0) {
		i--;
	} else if (file->accessor_count == ACCESSORS_KEPT) {
		i = 0;
	} else {
		if (file->accessor_count == file->accessor_capacity) {
			size_t grown = file->accessor_capacity ? file->accessor_capacity * 2 : 4;
			accessors = realloc(accessors, grown * sizeof(*accessors));
			if (accessors == NULL)
				return token; /* it stays unknown */
			file->accessors = accessors;
			file->accessor_capacity = grown;
		}
		accessors[file->accessor_count++] = (struct accessor){.pid = pid, .token = token};
		return NULL;
	}
	dropped = accessors[i].token;
	memmove(&accessors[i], &accessors[i + 1], (file->accessor_count - i - 1) * sizeof(*accessors));
	accessors[file->accessor_count - 1] = (struct accessor){.pid = pid, .token = token};
	return dropped;
}

/* pid's identity on file, borrowed, or NULL.  Locked. */
static void *
accessor_token(const struct writer_watch_file *file, pid_t pid)
{
	for (size_t i = file->accessor_count; i-- > 0;)
		if (file->accessors[i].pid == pid)
			return file->accessors[i].token;
	return NULL;
}

struct writer_watch *
writer_watch_new(const struct writer_watch_ops *ops, int backing_fd)
{
	struct writer_watch *watch = calloc(1, sizeof(*watch));
	int saved;

	if (watch == NULL)
		return NULL;
	watch->wake_fd = -1;
	watch->group_fd = fanotify_init(FAN_CLASS_PRE_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK |
						FAN_UNLIMITED_QUEUE,
					O_RDONLY | O_CLOEXEC | O_LARGEFILE);
	if (watch->group_fd < 0)
		goto out_errno;
	/* Does the backing filesystem take pre-content marks?  A directory's
	 * mark raises nothing for the files in it; it is dropped at once. */
	if (fanotify_mark(watch->group_fd, FAN_MARK_ADD | FAN_MARK_INODE, FAN_PRE_ACCESS, backing_fd,
			  ".") < 0)
		goto out_errno;
	fanotify_mark(watch->group_fd, FAN_MARK_REMOVE | FAN_MARK_INODE, FAN_PRE_ACCESS, backing_fd,
		      ".");
	watch->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (watch->wake_fd < 0)
		goto out_errno;
	watch->quiet_ns = monotonic_ns(); /* no mark yet: nothing can be queued */
	watch->ops = *ops;
	pthread_mutex_init(&watch->lock, NULL);
	pthread_condattr_t attributes;
	pthread_condattr_init(&attributes);
	pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
	pthread_cond_init(&watch->changed, &attributes);
	pthread_cond_init(&watch->guard_wake, &attributes);
	pthread_condattr_destroy(&attributes);
	return watch;
out_errno:
	saved = errno;
	if (watch->group_fd >= 0)
		close(watch->group_fd);
	free(watch);
	errno = saved;
	return NULL;
}

static void
wake_watch(struct writer_watch *watch)
{
	uint64_t one = 1;

	if (write(watch->wake_fd, &one, sizeof(one)) < 0)
		log_debug("cannot wake the writer watch: %s", strerror(errno));
}

struct writer_watch_file *
writer_watch_add(struct writer_watch *watch, int fd, dev_t device, ino_t inode, bool late,
		 bool *shared)
{
	struct writer_watch_file *file;

	/* The mark is made and dropped under the lock, so that a last
	 * remove and a first add of one file cannot cross. */
	pthread_mutex_lock(&watch->lock);
	file = find_file(watch, device, inode);
	*shared = file != NULL;
	if (file) {
		/* One way at a time: a late file's writes carry no earlier
		 * identification, and a file with pre-access marks makes
		 * every reader of it wait. */
		if (file->late != late) {
			file = NULL;
			errno = EBUSY;
			goto out;
		}
		file->handles++;
		goto out;
	}
	file = calloc(1, sizeof(*file));
	if (file == NULL)
		goto out;
	file->marked_ns = monotonic_ns(); /* before the mark: no event of it is older */
	if (fanotify_mark(watch->group_fd, FAN_MARK_ADD | FAN_MARK_INODE,
			  late ? LATE_WATCH_MASK : WATCH_MASK, fd, NULL) < 0) {
		int saved = errno;
		free(file);
		file = NULL;
		errno = saved;
		goto out;
	}
	file->device = device;
	file->inode = inode;
	file->late = late;
	file->handles = 1;
	watch->files++;
	/* Asleep with no timeout, it must tick from now on; gathering, it
	 * must not keep a writer of this file waiting. */
	if ((late && watch->late_files++ == 0) || (!late && watch->gathering))
		wake_watch(watch);
	size_t bucket = bucket_of(device, inode);
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
	if (--file->handles > 0) {
		pthread_mutex_unlock(&watch->lock);
		return;
	}
	struct writer_watch_file **link = &watch->buckets[bucket_of(file->device, file->inode)];
	while (*link != file)
		link = &(*link)->next;
	*link = file->next;
	if (file->late)
		watch->late_files--;
	watch->files--;
	/* A mark holds its inode: an unlinked file would keep its blocks.
	 * Events of it still queued find no file and are allowed. */
	if (fanotify_mark(watch->group_fd, FAN_MARK_REMOVE | FAN_MARK_INODE,
			  file->late ? LATE_WATCH_MASK : WATCH_MASK, fd, NULL) < 0 &&
	    errno != ENOENT)
		log_error("cannot stop watching a written file: %s", strerror(errno));
	bool last = file->users == 0;
	pthread_mutex_unlock(&watch->lock);
	if (last)
		free_file(watch, file);
}

/* ---- events ---------------------------------------------------------------------- */

static void
allow(struct writer_watch *watch, int fd)
{
	struct fanotify_response response = {.fd = fd, .response = FAN_ALLOW};

	/* ENOENT: the guard answered it already. */
	if (write(watch->group_fd, &response, sizeof(response)) < 0 && errno != ENOENT &&
	    !atomic_exchange(&watch->answer_failure_logged, true)) {
		log_error("cannot answer a read or write of a watched file: %s", strerror(errno));
	}
}

/* Report every watched file as possibly written unseen. */
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
		watch->ops.report(watch->ops.context, files[i].device, files[i].inode, 0, NULL, true);
	free(files);
}

/* A pre-access: identify the caller, remember it, then let it go on. */
static void
identify_caller(struct writer_watch *watch, const struct fanotify_event_metadata *event)
{
	struct writer_watch_file *file = event_file(watch, event->fd);

	if (file == NULL) {
		allow(watch, event->fd); /* no longer watched */
		return;
	}
	pthread_mutex_lock(&watch->lock);
	watch->waiting_fd = event->fd;
	watch->waiting_answered = false;
	watch->identifying = true;
	pthread_mutex_unlock(&watch->lock);

	void *token = watch->ops.identify(watch->ops.context, event->pid);

	pthread_mutex_lock(&watch->lock);
	watch->identifying = false;
	watch->progress++;
	while (watch->guard_answering)
		pthread_cond_wait(&watch->changed, &watch->lock);
	bool answered = watch->waiting_answered;
	void *dropped = remember(file, event->pid, token);
	pthread_mutex_unlock(&watch->lock);
	if (!answered)
		allow(watch, event->fd);
	if (dropped)
		watch->ops.forget(watch->ops.context, dropped);
	put_file(watch, file);
}

/*
 * A write: report its writer with the identity its pre-access gave, or for
 * a late file the one it certainly had since since_ns (LATE).
 */
static void
report_writer(struct writer_watch *watch, const struct fanotify_event_metadata *event,
	      bool identified, int64_t since_ns)
{
	struct writer_watch_file *file = event_file(watch, event->fd);

	if (file == NULL)
		return;
	if (file->late) {
		/* The guard does not look (a lookup may be what is stuck), and
		 * no earlier identity stands in: the process may have exec'd. */
		if (file->marked_ns > since_ns)
			since_ns = file->marked_ns;
		void *token = identified ? watch->ops.identify_since(watch->ops.context,
								     event->pid, since_ns)
					 : NULL;
		watch->ops.report(watch->ops.context, file->device, file->inode, event->pid, token,
				  true);
		if (token)
			watch->ops.forget(watch->ops.context, token);
		put_file(watch, file);
		return;
	}
	/* Tokens change only on the identifying thread (this one, when
	 * identified) and the file's use keeps them: borrowed safely. */
	pthread_mutex_lock(&watch->lock);
	void *token = identified ? accessor_token(file, event->pid) : NULL;
	pthread_mutex_unlock(&watch->lock);
	watch->ops.report(watch->ops.context, file->device, file->inode, event->pid, token,
			  identified);
	put_file(watch, file);
}

/* identify: false on the guard, which lets everything go unidentified.
 * since_ns: the event was queued after it (quiet_ns). */
static void
handle_event(struct writer_watch *watch, const struct fanotify_event_metadata *event,
	     bool identify, int64_t since_ns)
{
	bool permission = event->mask & FAN_PRE_ACCESS;

	if (event->mask & FAN_Q_OVERFLOW) {
		log_warning("the kernel's queue of write events overflowed: the writers of files "
			    "written through kernel passthrough meanwhile are unknown");
		report_all_unknown(watch);
		return;
	}
	if (event->fd < 0) {
		/* The kernel could not open the file for us (out of
		 * descriptors): it let a pre-access go; a write is unseen. */
		if (!atomic_exchange(&watch->fd_failure_logged, true)) {
			log_warning("an event of a written file came without its file: its writer "
				    "is recorded as unknown");
		}
		if (!permission)
			report_all_unknown(watch);
		return;
	}
	if (event->pid == watch->self || event->pid <= 0) {
		/* The daemon's own (its writes come as requests with a caller). */
		if (permission)
			allow(watch, event->fd);
		return;
	}
	if (permission) {
		if (identify)
			identify_caller(watch, event);
		else
			allow(watch, event->fd);
	}
	if (event->mask & FAN_MODIFY)
		report_writer(watch, event, identify, since_ns);
}

/*
 * Read and handle until the queue is empty.  Each batch is read under the
 * lock and counted, so that a drain knows which events came before it.
 */
static void
read_pass(struct writer_watch *watch, bool identify)
{
	_Alignas(struct fanotify_event_metadata) char buffer[READ_BUFFER];

	for (;;) {
		/* Taken before the read: if it finds nothing, whatever comes
		 * later was queued after this (LATE). */
		int64_t reading_ns = monotonic_ns();
		pthread_mutex_lock(&watch->lock);
		int64_t since_ns = watch->quiet_ns;
		ssize_t length = read(watch->group_fd, buffer, sizeof(buffer));
		int error = errno;
		if (length < 0 && error == EAGAIN && reading_ns > watch->quiet_ns)
			watch->quiet_ns = reading_ns;
		uint64_t count = 0;
		const struct fanotify_event_metadata *event = (const void *)buffer;
		for (ssize_t left = length; left > 0 && FAN_EVENT_OK(event, left);
		     event = FAN_EVENT_NEXT(event, left))
			count++;
		watch->taken += count;
		pthread_mutex_unlock(&watch->lock);
		if (length < 0) {
			if (error == EINTR)
				continue;
			if (error != EAGAIN)
				log_error("cannot read write events: %s", strerror(error));
			return;
		}
		event = (const void *)buffer;
		while (FAN_EVENT_OK(event, length)) {
			if (event->vers == FANOTIFY_METADATA_VERSION)
				handle_event(watch, event, identify, since_ns);
			else if (event->fd >= 0 && (event->mask & FAN_PRE_ACCESS))
				allow(watch, event->fd);
			if (event->fd >= 0)
				close(event->fd);
			event = FAN_EVENT_NEXT(event, length);
		}
		pthread_mutex_lock(&watch->lock);
		watch->handled += count;
		if (identify)
			watch->progress++;
		pthread_cond_broadcast(&watch->changed);
		pthread_mutex_unlock(&watch->lock);
	}
}

static void
take_wakeups(struct writer_watch *watch)
{
	uint64_t count;

	if (read(watch->wake_fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		log_debug("cannot read the writer watch's wakeup: %s", strerror(errno));
}

static void *
watch_main(void *argument)
{
	struct writer_watch *watch = argument;
	struct pollfd sources[2] = {{.fd = watch->group_fd, .events = POLLIN},
				    {.fd = watch->wake_fd, .events = POLLIN}};

	pthread_setname_np(pthread_self(), "provfs-watch");
	/* Callers wait for this thread in their read and write calls: it
	 * gets the CPU first when one comes (this thread only; Linux
	 * niceness is per thread). */
	if (setpriority(PRIO_PROCESS, (id_t)gettid(), WATCH_NICENESS) < 0)
		log_debug("cannot raise the writer watch's priority: %s", strerror(errno));

	for (;;) {
		pthread_mutex_lock(&watch->lock);
		int timeout = watch->late_files > 0 ? LATE_TICK_MS : -1;
		pthread_mutex_unlock(&watch->lock);
		if (poll(sources, 2, timeout) < 0 && errno != EINTR) {
			log_error("cannot wait for write events: %s", strerror(errno));
			sleep(1);
		}
		if (sources[1].revents & POLLIN)
			take_wakeups(watch);
		/*
		 * Only late files watched: nobody waits for us, so let a
		 * stream of writes gather for a moment.  The kernel merges a
		 * writer's events of one file while they wait in the queue (a
		 * database's page writes become a few events, not thousands).
		 * A drain, or a file watched as its writers wait, cuts it short.
		 */
		pthread_mutex_lock(&watch->lock);
		bool stopping = watch->stopping;
		/* A wakeup may be a drain that waits: then no gathering. */
		bool gather = !stopping && (sources[0].revents & POLLIN) &&
			      !(sources[1].revents & POLLIN) && watch->files > 0 &&
			      watch->late_files == watch->files;
		watch->gathering = gather;
		pthread_mutex_unlock(&watch->lock);
		if (gather) {
			struct pollfd wake = {.fd = watch->wake_fd, .events = POLLIN};
			if (poll(&wake, 1, LATE_GATHER_MS) > 0)
				take_wakeups(watch);
			pthread_mutex_lock(&watch->lock);
			watch->gathering = false;
			stopping = watch->stopping;
			pthread_mutex_unlock(&watch->lock);
		}
		read_pass(watch, true);
		if (stopping)
			return NULL;
	}
}

/*
 * Is there work the watch thread has not finished: events read and not
 * handled, or queued?  Locked.
 */
static bool
work_pending(struct writer_watch *watch)
{
	int queued = 0;

	return watch->handled < watch->taken ||
	       ioctl(watch->group_fd, FIONREAD, &queued) < 0 || queued > 0;
}

/*
 * The guard: when the watch thread has made no progress for
 * RESPONSE_TIMEOUT_MS with work pending (an identification that hangs, a
 * report that waits, a thread that does not run), answer the caller it
 * identifies, and while it stays stuck read and allow everything else,
 * its writers reported unknown.
 */
static void *
guard_main(void *argument)
{
	struct writer_watch *watch = argument;
	struct timespec deadline;
	uint64_t seen = 0;
	int64_t seen_ns = monotonic_ns();

	pthread_setname_np(pthread_self(), "provfs-guard");
	pthread_mutex_lock(&watch->lock);
	while (!watch->stopping) {
		deadline_in(&deadline, GUARD_TICK_MS);
		pthread_cond_timedwait(&watch->guard_wake, &watch->lock, &deadline);
		int64_t now = monotonic_ns();
		if (watch->stopping)
			break;
		if (watch->progress != seen || !work_pending(watch)) {
			seen = watch->progress;
			seen_ns = now;
			continue;
		}
		if (now - seen_ns < (int64_t)RESPONSE_TIMEOUT_MS * 1000000)
			continue;
		bool log_it = !watch->guard_logged;
		watch->guard_logged = true;
		if (watch->identifying && !watch->waiting_answered) {
			int fd = watch->waiting_fd;
			watch->waiting_answered = true;
			watch->guard_answering = true;
			pthread_mutex_unlock(&watch->lock);
			allow(watch, fd);
			pthread_mutex_lock(&watch->lock);
			watch->guard_answering = false;
			pthread_cond_broadcast(&watch->changed);
		}
		pthread_mutex_unlock(&watch->lock);
		if (log_it)
			log_warning("the writer watch made no progress for %d ms: waiting reads and "
				    "writes are let go, and their writers recorded as unknown, until it "
				    "does",
				    RESPONSE_TIMEOUT_MS);
		struct pollfd source = {.fd = watch->group_fd, .events = POLLIN};
		for (;;) {
			pthread_mutex_lock(&watch->lock);
			bool stuck = watch->progress == seen && !watch->stopping;
			pthread_mutex_unlock(&watch->lock);
			if (!stuck)
				break;
			if (poll(&source, 1, GUARD_TICK_MS) > 0)
				read_pass(watch, false);
		}
		pthread_mutex_lock(&watch->lock);
	}
	pthread_mutex_unlock(&watch->lock);
	return NULL;
}

int
writer_watch_start(struct writer_watch *watch)
{
	int error;

	watch->self = getpid(); /* after daemonizing: the pid of our own accesses */
	error = pthread_create(&watch->thread, NULL, watch_main, watch);
	if (error)
		return -error;
	error = pthread_create(&watch->guard, NULL, guard_main, watch);
	if (error) {
		uint64_t one = 1;
		pthread_mutex_lock(&watch->lock);
		watch->stopping = true;
		pthread_mutex_unlock(&watch->lock);
		if (write(watch->wake_fd, &one, sizeof(one)) < 0)
			log_error("cannot stop the write watch: %s", strerror(errno));
		pthread_join(watch->thread, NULL);
		return -error;
	}
	watch->running = true;
	return 0;
}

void
writer_watch_drain(struct writer_watch *watch)
{
	struct timespec deadline;
	int queued = 0, error = 0;

	pthread_mutex_lock(&watch->lock);
	if (!watch->running || watch->stopping) {
		pthread_mutex_unlock(&watch->lock);
		return;
	}
	/* FIONREAD counts what is queued (at least a header per event): with
	 * what was taken, the events that came before this call. */
	if (ioctl(watch->group_fd, FIONREAD, &queued) < 0)
		queued = (int)sizeof(struct fanotify_event_metadata); /* cannot tell: one more */
	uint64_t target = watch->taken + (uint64_t)queued / sizeof(struct fanotify_event_metadata);
	if (watch->gathering)
		wake_watch(watch); /* someone waits for it now */
	deadline_in(&deadline, DRAIN_TIMEOUT_MS);
	while (watch->handled < target && !watch->stopping && error != ETIMEDOUT) {
		/* All taken handled and nothing queued: nothing can be missing. */
		if (watch->handled == watch->taken &&
		    ioctl(watch->group_fd, FIONREAD, &queued) == 0 && queued == 0)
			break;
		error = pthread_cond_timedwait(&watch->changed, &watch->lock, &deadline);
	}
	bool log_it = error == ETIMEDOUT && !watch->drain_logged;
	if (log_it)
		watch->drain_logged = true;
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
		pthread_cond_broadcast(&watch->guard_wake);
		pthread_mutex_unlock(&watch->lock);
		if (write(watch->wake_fd, &one, sizeof(one)) < 0)
			log_error("cannot stop the write watch: %s", strerror(errno));
		pthread_join(watch->thread, NULL);
		pthread_join(watch->guard, NULL);
	}
	/* Closing the group allows every access still waiting. */
	close(watch->group_fd);
	for (size_t i = 0; i < WATCH_BUCKETS; i++) {
		struct writer_watch_file *file = watch->buckets[i];
		while (file) {
			struct writer_watch_file *next = file->next;
			free_file(watch, file);
			file = next;
		}
	}
	close(watch->wake_fd);
	pthread_cond_destroy(&watch->changed);
	pthread_cond_destroy(&watch->guard_wake);
	pthread_mutex_destroy(&watch->lock);
	free(watch);
}
