/*
 * recorder.c - the provenance recorder: from FUSE requests to lineage rows.
 *
 * DESIGN
 *
 * Request path.  The filesystem layer calls the observer on the FUSE
 * request thread.  At open the recorder finds the caller's process image
 * (process_table.c: a cache, /proc only on first sight), the file's state
 * (a table keyed by device and inode) and the path (one readlink of the
 * node's O_PATH descriptor), builds a struct access and queues an OPEN
 * event.  Reads and writes only bump counters in the access, and writes
 * feed a running XXH3-128 while they continue where the last one stopped.
 * At release the access is closed; when it was the file's last writer the
 * new version is complete: its hash is the running hash when the bytes were
 * written in one sequential pass from offset 0, or else a job for the hash
 * pool, which reaches the file by handle (hash_pool.h).  No request ever
 * waits on SQLite or on hashing a whole file.
 *
 * Producers.  A write request names the process that made it: that process
 * (looked up on its first write, while it surely lives) is who wrote the
 * handle's bytes, and the producer of a version is chosen among the handles
 * that wrote or truncated it.  A handle nobody records (excluded name,
 * unidentified caller) is still watched for writes: the file is dirty
 * whatever name the writes came through.
 * Under kernel passthrough no write request comes: the filesystem
 * layer's writer watch reports each process that wrote the file instead
 * (on_bypass_written), before the handles written through are released.
 *
 * Readers of files being written.  A read-open while others write is linked
 * to the version those writers complete (file->upcoming), or to the known
 * version whose row may still be queued (file->known_version): never to a
 * made-up 'external' one.  A change counter per file, bumped by every write
 * and truncate, tells a hash job whether the bytes it read are still its
 * version's, where timestamps may be too coarse to tell.
 *
 * Queue.  A bounded FIFO of events (capacity 65,536).  When it is full a
 * request waits: lossless backpressure while the store works.  When the
 * store itself fails (disk full, I/O error) the writer stops applying
 * events and counts them as lost, logs loudly, and probes the store each
 * second; recording resumes when a probe succeeds.  Nothing is dropped
 * without being counted.
 *
 * Writer.  One thread takes everything queued, at least every 100 ms, and
 * applies it in one transaction (writer.c).  Events hold references to the
 * in-memory images, accesses and versions they name, so rows are created
 * in order and on demand: a process row before its accesses, a version
 * before the hash that completes it.
 *
 * The writer is background work: it runs SCHED_IDLE, so a caller woken by
 * a reply, or a request thread woken by a request, takes its CPU at once
 * instead of waiting behind SQLite (an open-heavy job spends its time in
 * such wakeups).  What that buys is within the spread of runs on two
 * CPUs: 6% more opens by the ratio of medians of scripts/bench-recorder
 * -r 5, and files created, read and untarred alike with the writer kept
 * at normal priority (scripts/bench --paired, README).  A background
 * thread may starve on a busy machine, and requests wait when the queue
 * is full: so the request that fills a quarter of the queue, and anyone
 * waiting for a flush, puts the writer back at normal priority, and it
 * goes back to the background when it has caught up.  Without the
 * privilege to come back (CAP_SYS_NICE), it never leaves normal priority.
 *
 * Durability.  WAL with synchronous=NORMAL: after kill -9 the store is
 * consistent and holds every batch committed: a crash loses the flush
 * interval plus whatever is queued behind the writer, at most the queue's
 * capacity.  Each batch records the queue's length (recorder_stats), so a
 * crash's loss is visible afterwards.  Clean unmount and SIGTERM drain the
 * event queue; hash jobs still queued are cancelled (their versions stay
 * 'pending'), so unmounting never waits for a hashing backlog.
 *
 * Versions read.  A read-open compares the file's size, mtime, ctime and
 * inode with the last recorded version.  When they match, that version was
 * read.  When they do not, the content changed outside provfs (or was
 * never seen): the writer records a new version, 'external' or 'initial',
 * and has it hashed from a descriptor taken at open.  The filesystem layer
 * has already dropped the kernel's cached pages in that case.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "backing_path.h"
#include "caller.h"
#include "content_hash.h"
#include "log.h"
#include "openlineage_outbox.h"
#include "path_glob.h"
#include "recorder_i.h"

#define QUEUE_CAPACITY 65536
#define HASH_QUEUE_CAPACITY 4096 /* queued hash jobs; one per file at most */
#define FLUSH_INTERVAL_MS 100
#define BATCH_WAKE_LENGTH 4096 /* queued events that wake the writer early */
#define CUT_ORDER_WAIT_LIMIT_S 5 /* queue_in_cut_order */
#define OPEN_FOR_EXEC 040      /* __FMODE_EXEC in the open flags of an execve */

struct executable_hash {
	dev_t device;
	ino_t inode;
	off_t size;
	int64_t mtime_ns, ctime_ns;
	char hash[33];
	struct executable_hash *next;
};

static struct stamp
stamp_of(const struct stat *st)
{
	return (struct stamp){.size = st->st_size, .mtime_ns = timespec_ns(st->st_mtim),
			      .ctime_ns = timespec_ns(st->st_ctim), .inode = st->st_ino};
}

static bool
stamps_equal(const struct stamp *a, const struct stamp *b)
{
	return a->size == b->size && a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns &&
	       a->inode == b->inode;
}

/* ---- events and queue ---------------------------------------------------- */

static _Thread_local bool on_writer_thread;

struct event *
event_new(enum event_kind kind)
{
	struct event *event = calloc(1, sizeof(*event));

	if (event == NULL)
		abort(); /* a lost event must be counted; we cannot even do that */
	event->kind = kind;
	event->time_ns = wall_clock_ns();
	return event;
}

/*
 * The OPEN or CLOSE event of access, which lives in it: the caller gives it
 * its reference to the access.
 */
static struct event *
access_event(struct access *access, enum event_kind kind, int64_t time_ns)
{
	struct event *event = kind == EVENT_OPEN ? &access->open_event : &access->close_event;

	event->kind = kind;
	event->time_ns = time_ns;
	event->embedded = true;
	event->access = access;
	return event;
}

void
event_free(struct event *event)
{
	if (event->embedded) {
		/* Part of its access, and holding nothing else: this may free
		 * the access, and the event with it. */
		access_release(event->access);
		return;
	}
	process_info_release(event->process);
	access_release(event->access);
	version_release(event->version);
	file_state_release(event->ordered_file);
	file_state_release(event->file);
	free(event->path);
	free(event->new_path);
	recorder_policy_record_free(event->policy_record);
	free(event);
}

/* ---- the writer's priority ------------------------------------------------------ */

/*
 * May a thread of the daemon move a thread back from SCHED_IDLE?  It takes
 * CAP_SYS_NICE, or an RLIMIT_NICE that allows nice 0 (sched(7)).
 */
static bool
may_leave_background(void)
{
	struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];
	struct rlimit limit;

	if (getrlimit(RLIMIT_NICE, &limit) == 0 && limit.rlim_cur >= 20)
		return true;
	return syscall(SYS_capget, &header, data) == 0 &&
	       (data[CAP_TO_INDEX(CAP_SYS_NICE)].effective & CAP_TO_MASK(CAP_SYS_NICE));
}

static bool
set_writer_background(pid_t tid, bool background)
{
	struct sched_param none = {0};

	if (sched_setscheduler(tid, background ? SCHED_IDLE : SCHED_OTHER, &none) == 0)
		return true;
	log_debug("cannot move the writer %s: %s",
		  background ? "to the background" : "back to normal priority", strerror(errno));
	return false;
}

/*
 * Under queue_lock: the writer back at normal priority, once, when it runs
 * in the background (one system call, rare: when the queue passes a
 * quarter full, or someone waits for a flush).  A refusal (a request
 * thread that gave up its capabilities for the caller) leaves it to the
 * next caller.
 */
static void
boost_writer(struct recorder *recorder)
{
	if (recorder->writer_tid == 0 || recorder->writer_boosted)
		return;
	if (set_writer_background(recorder->writer_tid, false))
		recorder->writer_boosted = true;
}

void
recorder_enqueue(struct recorder *recorder, struct event *event)
{
	pthread_mutex_lock(&recorder->queue_lock);
	/* The writer never waits for itself (a hash job it submits may be
	 * refused at once, and that is an event). */
	while (recorder->queue_length >= recorder->queue_capacity && !recorder->stopping &&
	       !on_writer_thread)
		pthread_cond_wait(&recorder->queue_not_full, &recorder->queue_lock);
	if (recorder->queue_tail)
		recorder->queue_tail->next = event;
	else
		recorder->queue_head = event;
	recorder->queue_tail = event;
	recorder->queue_length++;
	/* What the writer needs to know of a batch before it writes its
	 * first row: whether an access's CLOSE, or the VERSION it wrote, is
	 * in it too (then its row goes in whole).  Said here, where the
	 * access is in this thread's cache, rather than by a pass of the
	 * writer over a batch of events queued long ago, one cache miss each
	 * (a tenth of the writer's time when it was behind).  A handle that
	 * wrote two versions keeps the batch of the first: once that batch is
	 * applied its row exists, and no later batch waits for a version to
	 * write it; a later number, set while the writer applies the first
	 * batch, would have it stop waiting half-way. */
	if (event->kind == EVENT_CLOSE) {
		atomic_store_explicit(&event->access->close_batch, recorder->queue_batch,
				      memory_order_relaxed);
	} else if (event->kind == EVENT_VERSION) {
		for (size_t i = 0; i < event->version->writer_count; i++) {
			atomic_uint_fast64_t *batch = &event->version->writers[i]->version_batch;
			if (atomic_load_explicit(batch, memory_order_relaxed) == 0)
				atomic_store_explicit(batch, recorder->queue_batch,
						      memory_order_relaxed);
		}
	}
	if (recorder->queue_length > recorder->queue_high_water)
		recorder->queue_high_water = recorder->queue_length;
	recorder->events_queued++;
	/* The writer wakes on its own every flush interval; a full batch
	 * wakes it early.  Small transactions would cost more than they save. */
	if (recorder->queue_length == BATCH_WAKE_LENGTH)
		pthread_cond_signal(&recorder->queue_not_empty);
	if (recorder->queue_length >= recorder->queue_capacity / 4)
		boost_writer(recorder);
	pthread_mutex_unlock(&recorder->queue_lock);
}

/*
 * Queue event, made by the content change cut under file->lock as the
 * file's order-th (file->versions_cut), once every change cut before it is
 * queued; event NULL: only take the turn (a change nobody records).  The
 * writer numbers a file's versions as they arrive, and the newest is what
 * the next open's stamp is compared with; a hash job of a newer version
 * replaces a queued one of the same file.  Out of order, an older content
 * would be the newest version, the newest version's hash cancelled, and
 * the next reader would see a change outside provfs.  The order can break
 * because the lock is dropped before queuing, and RELEASE is asynchronous:
 * while one thread queues the version of a close, others may serve the
 * next open, its writes and its release, or a truncate ('>f; >f' on a
 * loaded machine).  So the later change waits for its elder; the thread
 * queuing the elder waits for nothing the later one holds.
 *
 * file->versions_queued is one past the latest turn taken.  A change that
 * waited too long takes its turn anyway; an elder that comes after it then
 * finds its turn past and waits no more.
 */
static void
queue_in_cut_order(struct recorder *recorder, struct file_state *file, uint64_t order,
		   struct event *event)
{
	if (atomic_load(&file->versions_queued) < order) {
		/* Bounded: an elder stuck (a queue full for that long) costs
		 * the order, never a thread of the mount. */
		struct timespec deadline;
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += CUT_ORDER_WAIT_LIMIT_S;
		bool late = false;
		pthread_mutex_lock(&recorder->version_order_lock);
		atomic_fetch_add(&recorder->version_order_waiters, 1);
		while (atomic_load(&file->versions_queued) < order && !late)
			late = pthread_cond_timedwait(&recorder->version_queued,
						      &recorder->version_order_lock,
						      &deadline) == ETIMEDOUT &&
			       atomic_load(&file->versions_queued) < order;
		atomic_fetch_sub(&recorder->version_order_waiters, 1);
		pthread_mutex_unlock(&recorder->version_order_lock);
		if (late)
			log_warning("a change of inode %llu waited %d s for an earlier one to be "
				    "queued; queued out of order",
				    (unsigned long long)file->inode, CUT_ORDER_WAIT_LIMIT_S);
	}
	if (event)
		recorder_enqueue(recorder, event);
	uint_fast64_t queued = atomic_load(&file->versions_queued);
	while (queued < order + 1 &&
	       !atomic_compare_exchange_weak(&file->versions_queued, &queued, order + 1))
		;
	/* A waiter counted before the count moved, or it saw the count moved. */
	if (atomic_load(&recorder->version_order_waiters) > 0) {
		pthread_mutex_lock(&recorder->version_order_lock);
		pthread_cond_broadcast(&recorder->version_queued);
		pthread_mutex_unlock(&recorder->version_order_lock);
	}
}

static void
queue_version(struct recorder *recorder, struct version *version, int64_t time_ns)
{
	struct event *event = event_new(EVENT_VERSION);

	event->version = version;
	event->time_ns = version->completed_ns ? version->completed_ns : time_ns;
	queue_in_cut_order(recorder, version->file, version->cut_order, event);
}

/* ---- reference counting ---------------------------------------------------- */

static void clear_bypass_writers(struct file_state *file);
static bool cut_version(struct recorder *recorder, struct file_state *file,
			const struct stamp *baseline, bool truncated, struct version **version);
static void add_open_writer(struct file_state *file, struct access *access);
static void remove_open_writer(struct file_state *file, struct access *access);

void
file_state_release(struct file_state *file)
{
	if (file == NULL || atomic_fetch_sub(&file->references, 1) != 1)
		return;
	for (size_t i = 0; i < file->pending_count; i++)
		access_release(file->pending_writers[i]);
	free(file->pending_writers);
	free(file->open_writers);
	clear_bypass_writers(file);
	version_release(file->upcoming);
	if (file->stream)
		XXH3_freeState(file->stream);
	free(file->open_path);
	free(file->recorded_path);
	pthread_mutex_destroy(&file->lock);
	free(file);
}

void
access_release(struct access *access)
{
	if (access == NULL || atomic_fetch_sub(&access->references, 1) != 1)
		return;
	process_info_release(access->process);
	process_info_release(access->last_image);
	process_info_release(access->writer_image);
	version_release(access->version_read);
	version_release(access->version_read_later);
	file_state_release(access->file);
	hash_source_free(access->hash_source);
	free(access->path);
	free(access);
}

void
version_release(struct version *version)
{
	if (version == NULL || atomic_fetch_sub(&version->references, 1) != 1)
		return;
	file_state_release(version->file);
	process_info_release(version->producer);
	for (size_t i = 0; i < version->writer_count; i++)
		access_release(version->writers[i]);
	free(version->writers);
	for (size_t i = 0; i < version->reader_count; i++)
		access_release(version->readers[i]);
	free(version->readers);
	hash_source_free(version->hash_source);
	free(version);
}

static struct access *
access_acquire(struct access *access)
{
	atomic_fetch_add(&access->references, 1);
	return access;
}

struct file_state *
file_state_acquire(struct file_state *file)
{
	atomic_fetch_add(&file->references, 1);
	return file;
}

static struct version *
version_acquire(struct version *version)
{
	atomic_fetch_add(&version->references, 1);
	return version;
}

static struct version *
version_new(struct recorder *recorder, struct file_state *file)
{
	struct version *version = calloc(1, sizeof(*version));

	if (version == NULL)
		return NULL;
	atomic_init(&version->references, 1);
	version->recorder = recorder;
	version->file = file_state_acquire(file);
	return version;
}

/* ---- file table ------------------------------------------------------------ */

static size_t
file_slot(const struct recorder *recorder, dev_t device, ino_t inode)
{
	uint64_t key = (uint64_t)inode * 0x9e3779b97f4a7c15ULL ^ (uint64_t)device;

	return (size_t)(key ^ (key >> 31)) & (recorder->file_slot_count - 1);
}

/*
 * The known version refers to its file: let go of it before the table
 * lets go of the file, or neither is ever freed.
 */
static void
detach_known_version(struct file_state *file)
{
	pthread_mutex_lock(&file->lock);
	struct version *known = file->known_version;
	file->known_version = NULL;
	pthread_mutex_unlock(&file->lock);
	version_release(known);
}

/*
 * A reference on file held only by its known version's own accesses: the
 * writers that made it and the readers waiting for its row hold the file
 * too (access->file), and nothing but the version holds them.
 */
static bool
held_by_version_alone(const struct file_state *file, struct access *const *accesses,
		      size_t count, int *references)
{
	for (size_t i = 0; i < count; i++) {
		if (accesses[i]->file != file || atomic_load(&accesses[i]->references) != 1)
			return false;
		(*references)++;
	}
	return true;
}

/*
 * Is file referenced by the table alone, and by the cycle of its own known
 * version (the version holds the file, and so do that version's accesses)?
 * Only the table and file->known_version lead to them, under the table lock
 * and file->lock, so no new reference can appear while this looks.
 */
static bool
file_is_idle(struct file_state *file)
{
	int references = atomic_load(&file->references);
	int cycle = 2; /* the table's and known_version->file */

	if (references == 1)
		return true;
	pthread_mutex_lock(&file->lock);
	struct version *known = file->known_version;
	bool idle = known && atomic_load(&known->references) == 1 &&
		    held_by_version_alone(file, known->writers, known->writer_count, &cycle) &&
		    held_by_version_alone(file, known->readers, known->reader_count, &cycle) &&
		    references == cycle;
	pthread_mutex_unlock(&file->lock);
	return idle;
}

/*
 * Take idle states out of the table when it is over its limit, down to
 * half of it.  Holds files_lock; the states taken out join the list
 * *evicted (through next) for release_evicted_files() to free after the
 * lock is dropped, since freeing them closes descriptors of hash sources.
 *
 * States in use (open files, events still queued, hash jobs) cannot go.
 * When too many are in use for a pass to reach half the limit, the next
 * pass waits until the table has doubled: a pass costs the whole table,
 * and one per insert made creates quadratic once 65,536 files had been
 * seen (tmpfs never reuses inode numbers).  Memory stays within twice
 * what is in use.
 */
static void
evict_idle_files(struct recorder *recorder, struct file_state **evicted)
{
	for (size_t i = 0; i < recorder->file_slot_count &&
			   recorder->file_count > recorder->file_table_limit / 2;
	     i++) {
		struct file_state **link = &recorder->file_slots[i];
		while (*link) {
			struct file_state *file = *link;
			if (file_is_idle(file)) {
				*link = file->next;
				recorder->file_count--;
				file->next = *evicted;
				*evicted = file;
				recorder->files_evicted++;
			} else {
				link = &file->next;
			}
		}
	}
	recorder->eviction_passes++;
	recorder->evict_above = recorder->file_count > recorder->file_table_limit / 2
					? 2 * recorder->file_count
					: recorder->file_table_limit;
}

static void
release_evicted_files(struct file_state *evicted)
{
	while (evicted) {
		struct file_state *file = evicted;
		evicted = file->next;
		file->next = NULL;
		detach_known_version(file);
		file_state_release(file);
	}
}

/* The state of (device, inode) if the table has it, with a reference. */
struct file_state *
recorder_find_file(struct recorder *recorder, dev_t device, ino_t inode)
{
	struct file_state *file;

	pthread_mutex_lock(&recorder->files_lock);
	for (file = recorder->file_slots[file_slot(recorder, device, inode)]; file;
	     file = file->next)
		if (file->device == device && file->inode == inode)
			break;
	if (file)
		file_state_acquire(file);
	pthread_mutex_unlock(&recorder->files_lock);
	return file;
}

/*
 * The state of the file behind fd (an open descriptor), with a reference.
 *
 * The inode's generation tells a reused inode number from the file the
 * state was made for.  Reading it costs an ioctl, so it is read again only
 * when the inode may have been freed since it was last read: its ctime
 * moved (the last unlink moves it, and a new file's is its creation), a
 * rename went through the mount or a name of a file not known was removed
 * (the namespace epoch), a name of this file was removed that it may not
 * survive (generation_in_doubt()), or the backing tree is exposed to others, whose
 * changes are never seen.
 */
static struct file_state *
file_state_get(struct recorder *recorder, const struct stat *st, int fd)
{
	struct file_state *file, *evicted = NULL;
	int64_t ctime_ns = timespec_ns(st->st_ctim);
	uint64_t epoch = atomic_load(&recorder->namespace_epoch);
	uint64_t removals = atomic_load(&recorder->last_name_removals);

	if (!recorder->options.backing_exposed) {
		pthread_mutex_lock(&recorder->files_lock);
		for (file = recorder->file_slots[file_slot(recorder, st->st_dev, st->st_ino)];
		     file; file = file->next)
			if (file->device == st->st_dev && file->inode == st->st_ino)
				break;
		if (file && file->generation_epoch == epoch &&
		    file->generation_ctime_ns == ctime_ns) {
			file_state_acquire(file);
			pthread_mutex_unlock(&recorder->files_lock);
			return file;
		}
		pthread_mutex_unlock(&recorder->files_lock);
	}

	unsigned int generation = 0;
	if (ioctl(fd, FS_IOC_GETVERSION, &generation) < 0)
		generation = 0;
	pthread_mutex_lock(&recorder->files_lock);
	size_t slot = file_slot(recorder, st->st_dev, st->st_ino);
	struct file_state **link = &recorder->file_slots[slot];
	for (file = *link; file; link = &file->next, file = file->next)
		if (file->device == st->st_dev && file->inode == st->st_ino)
			break;
	if (file && file->generation != generation) {
		/* The inode number was reused by another file: forget the old one
		 * (freed with the evicted, after the lock). */
		*link = file->next;
		recorder->file_count--;
		file->next = evicted;
		evicted = file;
		file = NULL;
	}
	if (file == NULL) {
		file = calloc(1, sizeof(*file));
		if (file == NULL) {
			pthread_mutex_unlock(&recorder->files_lock);
			release_evicted_files(evicted);
			return NULL;
		}
		atomic_init(&file->references, 1);
		file->device = st->st_dev;
		file->inode = st->st_ino;
		file->generation = generation;
		pthread_mutex_init(&file->lock, NULL);
		file->next = recorder->file_slots[slot];
		recorder->file_slots[slot] = file;
		/* The caller's reference first, so eviction cannot take this one. */
		file_state_acquire(file);
		if (++recorder->file_count > recorder->evict_above)
			evict_idle_files(recorder, &evicted);
	} else {
		file_state_acquire(file);
	}
	file->generation_ctime_ns = ctime_ns;
	/* A last name removed while the generation was read may have been
	 * this file's, its doubt set before this: leave it in doubt. */
	file->generation_epoch = atomic_load(&recorder->last_name_removals) == removals
					 ? epoch
					 : GENERATION_IN_DOUBT;
	pthread_mutex_unlock(&recorder->files_lock);
	release_evicted_files(evicted);
	return file;
}

/*
 * A name of file went through the mount and nothing showed the file
 * survives it (its last name, or one of two removed at once, each unlink
 * seeing the other name still there): its inode number may be freed and
 * handed to a new file, so the next open of that number reads the
 * generation again.  Other files' generations still hold: an unlink
 * frees no inode but its own (GNU tar removes one placeholder at the end of
 * an extraction; a pipeline deletes its temporary files while it reads).
 */
static void
generation_in_doubt(struct recorder *recorder, struct file_state *file)
{
	atomic_fetch_add(&recorder->last_name_removals, 1);
	if (file == NULL)
		return; /* no state: the next open of the number reads it anyway */
	pthread_mutex_lock(&recorder->files_lock);
	file->generation_epoch = GENERATION_IN_DOUBT;
	pthread_mutex_unlock(&recorder->files_lock);
}

/*
 * The writes of a handle still open moved file's ctime to ctime_ns: the
 * inode is the one whose generation was read (an open one cannot be freed),
 * so the next open need not read it again, unless a rename, link or unlink
 * went through the mount since it was read (the epoch: the file may be
 * freed once closed).
 */
static void
generation_still_known(struct recorder *recorder, struct file_state *file, int64_t ctime_ns)
{
	uint64_t epoch = atomic_load(&recorder->namespace_epoch);

	pthread_mutex_lock(&recorder->files_lock);
	if (file->generation_epoch == epoch)
		file->generation_ctime_ns = ctime_ns;
	pthread_mutex_unlock(&recorder->files_lock);
}

/* ---- paths ----------------------------------------------------------------- */

/*
 * The path of an O_PATH descriptor below the backing root (backing_path.h),
 * read relative to the daemon's own /proc/self/fd: one name to resolve
 * instead of four, on every recorded open.
 */
static char *
relative_path(const struct recorder *recorder, int fd)
{
	char name[16], target[4096];
	ssize_t length;

	if (recorder->proc_fds < 0)
		return backing_path_of(recorder->backing_dir, fd);
	snprintf(name, sizeof(name), "%d", fd);
	length = readlinkat(recorder->proc_fds, name, target, sizeof(target) - 1);
	if (length < 0)
		return NULL;
	target[length] = '\0';
	return backing_path_below(recorder->backing_dir, target);
}

static bool name_unlinked(const char *path);

#define DIRECTORY_PATH_SLOTS 64 /* power of two */

struct directory_path {
	dev_t device;
	ino_t inode;
	uint64_t epoch; /* recorder->directory_epoch when path was read */
	char *path;     /* NULL: a free slot */
};

/*
 * The path of the directory fd (an O_PATH descriptor), as relative_path()
 * reads it, remembered by device and inode: an rm -r or an untar makes
 * thousands of changes in one directory.  The layer names the directory
 * (device, inode; an inode of 0 when it does not), so a cached path costs
 * no system call at all; otherwise an fstat, a fraction of the readlink of
 * /proc.  A directory's path changes only when it or one above it is
 * renamed, and its inode number is reused only after it was removed: both
 * move the directory epoch when made through the mount (read before the
 * path, so a change while it is read is a later epoch).
 * When the backing tree is exposed, whose changes are never seen, every
 * change reads the path.
 */
static char *
directory_path(struct recorder *recorder, int fd, dev_t device, ino_t inode)
{
	struct stat st = {.st_dev = device, .st_ino = inode};

	if (recorder->options.backing_exposed || recorder->directories == NULL ||
	    (inode == 0 && (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode))))
		return relative_path(recorder, fd);
	uint64_t epoch = atomic_load(&recorder->directory_epoch);
	uint64_t key = (uint64_t)st.st_ino * 0x9e3779b97f4a7c15ULL ^ (uint64_t)st.st_dev;
	struct directory_path *entry =
		&recorder->directories[(key ^ (key >> 29)) & (DIRECTORY_PATH_SLOTS - 1)];
	char *path = NULL;

	pthread_mutex_lock(&recorder->directories_lock);
	if (entry->path && entry->device == st.st_dev && entry->inode == st.st_ino &&
	    entry->epoch == epoch)
		path = strdup(entry->path);
	pthread_mutex_unlock(&recorder->directories_lock);
	if (path)
		return path;
	path = relative_path(recorder, fd);
	char *copy = path && !name_unlinked(path) ? strdup(path) : NULL;
	if (copy) {
		pthread_mutex_lock(&recorder->directories_lock);
		free(entry->path);
		*entry = (struct directory_path){.device = st.st_dev, .inode = st.st_ino,
						 .epoch = epoch, .path = copy};
		pthread_mutex_unlock(&recorder->directories_lock);
	}
	return path;
}

static char *
join_path(const char *directory, const char *name)
{
	return backing_path_join(directory, name);
}

static bool
path_is_excluded(struct recorder *recorder, const char *path)
{
	const struct string_list *exclude =
		&atomic_load_explicit(&recorder->rules, memory_order_acquire)->exclude;

	for (size_t i = 0; i < exclude->count; i++)
		if (path_glob_match(exclude->items[i], path))
			return true;
	return false;
}

/* SQLite's companions fold into the database they belong to. */
static bool
is_sqlite_companion(const char *path)
{
	static const char *const suffixes[] = {"-journal", "-wal", "-shm"};
	size_t length = strlen(path);

	for (size_t i = 0; i < 3; i++) {
		size_t suffix_length = strlen(suffixes[i]);
		if (length > suffix_length &&
		    strcmp(path + length - suffix_length, suffixes[i]) == 0)
			return true;
	}
	return false;
}

/* Does a path read from /proc/self/fd name a link that was removed? */
static bool
name_unlinked(const char *path)
{
	static const char suffix[] = " (deleted)";
	size_t length = strlen(path);

	return length >= sizeof(suffix) - 1 &&
	       strcmp(path + length - (sizeof(suffix) - 1), suffix) == 0;
}

/*
 * Does path, beneath the backing directory, name the inode st describes?
 * For a path that ends in " (deleted)" while the file still has links: a
 * link of it that was removed (the daemon's descriptor was opened through
 * it), or a name that truly ends so.  Never follows a symlink.
 */
static bool
path_names_inode(const struct recorder *recorder, const char *path, const struct stat *st)
{
	struct open_how how = {.flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS};
	struct stat found;
	int fd = (int)syscall(SYS_openat2, recorder->options.backing_fd, path, &how, sizeof(how));
	bool names = false;

	if (fd >= 0) {
		names = fstat(fd, &found) == 0 && found.st_dev == st->st_dev &&
			found.st_ino == st->st_ino;
		close(fd);
	}
	return names;
}

/* Keep path as file's for the next open (node_path()); epoch: the path
 * epoch read before the path was. */
static void
remember_open_path(struct file_state *file, const struct stat *st, const char *path,
		   uint64_t epoch)
{
	char *copy = strdup(path);

	pthread_mutex_lock(&file->lock);
	free(file->open_path);
	file->open_path = copy;
	file->open_path_ctime_ns = timespec_ns(st->st_ctim);
	file->open_path_epoch = epoch;
	pthread_mutex_unlock(&file->lock);
}

/*
 * The path of node, the file file (relative_path()).  Reading it costs a
 * readlink of /proc, the recorder's largest cost on an open-heavy job, so
 * an open takes the path the last one read while nothing can have moved
 * the file since: it has one link, and its ctime is the one it had then
 * (a rename, link or unlink of the file itself moves its ctime), no
 * rename, link or unlink went through the mount since (a directory above
 * it may have moved, and a ctime may not move within one clock tick: the
 * path epoch; the unlink of another file's last name, which GNU tar makes
 * once at the end of every extraction, moves no path and not the epoch),
 * and nobody else can reach the backing tree (changes made there directly
 * are never seen; when it is exposed, every open reads the path).
 */
static char *
node_path(struct recorder *recorder, struct file_state *file, const struct fs_node_info *node,
	  const struct stat *st)
{
	bool cacheable = file && !recorder->options.backing_exposed && st->st_nlink == 1;
	int64_t ctime_ns = timespec_ns(st->st_ctim);
	/* Read before the path: a change while it is read is a later epoch. */
	uint64_t epoch = atomic_load(&recorder->path_epoch);
	char *path = NULL;

	if (cacheable) {
		pthread_mutex_lock(&file->lock);
		if (file->open_path && file->open_path_ctime_ns == ctime_ns &&
		    file->open_path_epoch == epoch)
			path = strdup(file->open_path);
		pthread_mutex_unlock(&file->lock);
		if (path)
			return path;
	}
	path = relative_path(recorder, node->backing_fd);
	if (cacheable && path && !name_unlinked(path))
		remember_open_path(file, st, path, epoch);
	return path;
}

/*
 * The writes of a handle moved file's ctime to ctime_ns, not its name: the
 * path an open read (node_path) still holds for the next open, unless a
 * rename, link or unlink went through the mount since it was read (the
 * path epoch).  Without this, the first read of every file written through
 * the mount read its path from /proc again.
 */
static void
path_still_known(struct recorder *recorder, struct file_state *file, int64_t ctime_ns)
{
	uint64_t epoch = atomic_load(&recorder->path_epoch);

	pthread_mutex_lock(&file->lock);
	if (file->open_path && file->open_path_epoch == epoch)
		file->open_path_ctime_ns = ctime_ns;
	pthread_mutex_unlock(&file->lock);
}

/*
 * A change of attributes through the mount (chmod, chown, times, an
 * extended attribute, a truncate) moved file's ctime from before_ns to
 * after_ns, and neither its names nor its inode: the generation and path
 * the last open read still hold for the next one.  tar, cp -p and rsync
 * change the attributes of every file they write, and without this the
 * first read of each read its path from /proc again.  Only when they were
 * read at before_ns: a change in between that no event has explained yet
 * (a rename of the file whose report is on its way) still makes the next
 * open read them again, as do the epochs (node_path(), file_state_get()).
 */
static void
attributes_moved_ctime(struct recorder *recorder, struct file_state *file, int64_t before_ns,
		       int64_t after_ns)
{
	uint64_t names = atomic_load(&recorder->namespace_epoch);
	uint64_t paths = atomic_load(&recorder->path_epoch);

	pthread_mutex_lock(&recorder->files_lock);
	if (file->generation_epoch == names && file->generation_ctime_ns == before_ns)
		file->generation_ctime_ns = after_ns;
	pthread_mutex_unlock(&recorder->files_lock);
	pthread_mutex_lock(&file->lock);
	if (file->open_path && file->open_path_epoch == paths &&
	    file->open_path_ctime_ns == before_ns)
		file->open_path_ctime_ns = after_ns;
	pthread_mutex_unlock(&file->lock);
}

/* ---- observer callbacks (request threads) ------------------------------------ */

static struct process_info *
caller_image(struct recorder *recorder, fuse_req_t req)
{
	struct caller caller;

	caller_from_request(req, &caller);
	return process_table_lookup(recorder->processes, caller.process_id);
}

static void *
on_opened(void *context, fuse_req_t req, const struct fs_node_info *node, int open_fd,
	  int flags, bool created)
{
	struct recorder *recorder = context;
	struct access *access;
	struct file_state *state = NULL;
	struct stat st;
	char *path;

	if (node->open_attributes)
		st = *node->open_attributes; /* the layer's look at open_fd */
	else if (fstat(open_fd, &st) < 0)
		return NULL;
	if (!S_ISREG(st.st_mode))
		return NULL;
	int mode = flags & O_ACCMODE;
	bool writes = mode != O_RDONLY || (flags & O_TRUNC);
	/*
	 * Exclusion is decided by the name the caller looked up.  When the
	 * layer cannot say for sure which it was, the file may have been
	 * reached through any of its hard links, some of which may be
	 * recorded names, and a file reached by a recorded name is recorded:
	 * so it is excluded only when the name the node kept is its one and
	 * only name (not a link since removed, whose file lives on under a
	 * name not known here).  The access keeps the best name known.
	 */
	char *looked_up = NULL;
	bool certain = node->name_certain;
	/* Read before the path: a change while it is read is a later epoch. */
	uint64_t epoch = atomic_load(&recorder->path_epoch);
	if (created && node->created_name && node->created_parent_fd >= 0) {
		/* Its directory's path is cached: no readlink of /proc for a
		 * file just made (an untar, a feature job writing thousands). */
		char *directory = directory_path(recorder, node->created_parent_fd,
						 node->created_parent_device,
						 node->created_parent_inode);
		if (directory && !name_unlinked(directory))
			looked_up = join_path(directory, node->created_name);
		free(directory);
		certain = looked_up != NULL;
	} else if (node->name_path) {
		looked_up = backing_path_below(recorder->backing_dir, node->name_path);
	}
	bool excluded = false;
	if (looked_up && certain) {
		path = looked_up;
		excluded = path_is_excluded(recorder, path);
	} else {
		state = file_state_get(recorder, &st, open_fd);
		char *kept = node_path(recorder, state, node, &st);
		if (kept && st.st_nlink <= 1 && !name_unlinked(kept))
			excluded = path_is_excluded(recorder, kept);
		path = looked_up ? looked_up : kept;
		if (path != kept)
			free(kept);
	}
	/*
	 * A file without a name (unlinked, reopened through /proc/PID/fd):
	 * /proc gives the name it last had with " (deleted)" appended.  The
	 * access keeps that name, which the writer does not take for a
	 * current one.  So for a link of it that was removed while it keeps
	 * others (opened again through a descriptor of that link): unless
	 * the name truly ends so, the file has no such name.
	 */
	bool nameless = path && name_unlinked(path) &&
			(st.st_nlink == 0 || !path_names_inode(recorder, path, &st));
	if (nameless) {
		path[strlen(path) - (sizeof(" (deleted)") - 1)] = '\0';
		if (!excluded)
			excluded = path_is_excluded(recorder, path);
	}
	bool recorded = path && !is_sqlite_companion(path) && !excluded;
	/*
	 * A handle nobody may record (an excluded or companion name, a caller
	 * that cannot be identified) is still watched when it may write: its
	 * writes change the file whatever name it goes by later.
	 */
	if (!recorded && !writes) {
		free(path);
		file_state_release(state);
		return NULL;
	}
	access = calloc(1, sizeof(*access));
	if (access == NULL) {
		free(path);
		file_state_release(state);
		return NULL;
	}
	atomic_init(&access->references, 1);
	access->file = state;
	access->recorder = recorder;
	access->path = path;
	access->nameless = nameless;
	access->flags = flags;
	access->opened_ns = wall_clock_ns();
	access->open_stamp = stamp_of(&st);
	access->is_exec = (flags & OPEN_FOR_EXEC) != 0;
	access->writes = writes;
	access->reads = mode != O_WRONLY && !(flags & O_TRUNC) && !created;
	access->created = created;
	if (recorded && !access->is_exec) {
		access->process = caller_image(recorder, req);
		if (access->process == NULL) {
			recorded = false;
			if (!writes) {
				access_release(access);
				return NULL;
			}
		}
	}
	access->recorded = recorded;
	access->bypass = node->data_bypass;
	access->writers_reported = node->data_bypass && node->writers_reported && writes;
	access->writers_reported_late = access->writers_reported && node->writers_reported_late;
	if (access->file == NULL)
		access->file = file_state_get(recorder, &st, open_fd);
	if (access->file == NULL) {
		access_release(access);
		return NULL;
	}

	struct file_state *file = access->file;
	bool need_hash = false;
	/* The next open of a file just made finds its path here (node_path()). */
	if (created && certain && path && !recorder->options.backing_exposed && st.st_nlink == 1)
		remember_open_path(file, &st, path, epoch);
	pthread_mutex_lock(&file->lock);
	/* Before this open's own truncate is counted (a change since the
	 * others' close would forbid the cut). */
	struct version *cut = NULL;
	bool others_quiescent = access->writes && file->writers > 0 &&
				cut_version(recorder, file, &access->open_stamp,
					    (flags & O_TRUNC) != 0, &cut);
	if (access->writes)
		add_open_writer(file, access);
	if (access->writes && file->writers++ == 0) {
		/* First writer: the running hash is good only from an empty file. */
		file->stream_valid = st.st_size == 0;
		file->stream_offset = 0;
		if (file->stream_valid) {
			if (file->stream == NULL)
				file->stream = XXH3_createState();
			if (file->stream == NULL || XXH3_128bits_reset(file->stream) != XXH_OK)
				file->stream_valid = false;
		}
	}
	if (access->writes && access->bypass)
		file->stream_valid = false; /* its bytes never reach us */
	if (access->writers_reported) {
		access->open_bypass_reports = file->bypass_reports;
		if (!stamps_equal(&file->explained_stamp, &access->open_stamp)) {
			file->explained_stamp = access->open_stamp;
			file->explained_epoch++;
		}
		access->explained_epoch = file->explained_epoch;
	}
	if ((flags & O_TRUNC) || created) {
		/* New content (empty) without a write. */
		file->dirty = true;
		file->stamp_known = false;
		file->changes++;
		if (file->writers > 1)
			file->stream_valid = false; /* truncated under another writer */
	}
	access->open_changes = change_mark(file);
	if (access->reads && recorded) {
		bool others_write = file->writers > (access->writes ? 1 : 0) && !others_quiescent;
		if (others_write && !file->dirty && file->stamp_known && file->known_version &&
		    stamps_equal(&file->known_stamp, &access->open_stamp)) {
			/* Others hold it open to write (a logger) but changed
			 * nothing since its last version: that is what this
			 * reads, unless they change it before it closes
			 * (on_released). */
			access->version_read = version_acquire(file->known_version);
			access->read_known_version = !access->writes;
		} else if (others_write) {
			/* Others are writing: this reads the version they will
			 * complete (or, if they change nothing, the one there was). */
			if (file->upcoming == NULL)
				file->upcoming = version_new(recorder, file);
			if (file->upcoming)
				access->version_read = version_acquire(file->upcoming);
		} else {
			need_hash = !(file->stamp_known &&
				      stamps_equal(&file->known_stamp, &access->open_stamp));
			/* Its row may still be queued behind this open. */
			if (!need_hash && file->known_version) {
				access->version_read = version_acquire(file->known_version);
				access->read_known_version = !access->writes;
			}
		}
	}
	pthread_mutex_unlock(&file->lock);
	if (cut) {
		if (cut->hash[0] == '\0')
			cut->hash_source = hash_source_new(recorder->hashes, open_fd);
		queue_version(recorder, cut, access->opened_ns);
	}
	if (need_hash)
		access->hash_source = hash_source_new(recorder->hashes, open_fd);
	if (!recorded)
		return access; /* watched for its writes, never recorded */

	if (access->is_exec) {
		/* The opener is in execve: the access belongs to the image the
		 * execve makes; the process table hands it over (on_exec_input). */
		struct caller caller;
		caller_from_request(req, &caller);
		access_acquire(access);
		process_table_note_exec(recorder->processes, caller.process_id, access, open_fd);
		return access;
	}
	recorder_enqueue(recorder,
			 access_event(access_acquire(access), EVENT_OPEN, access->opened_ns));
	return access;
}

static void
on_data_read(void *cookie, off_t offset, size_t bytes)
{
	struct access *access = cookie;

	atomic_fetch_add_explicit(&access->bytes_read, bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&access->read_calls, 1, memory_order_relaxed);
}

/*
 * A write request: the file changed.  The process that made the request
 * wrote (not necessarily the opener: a shell opens a redirect, a child
 * inherits it), so it is looked up on the first request of each thread,
 * while it is certainly alive.  The writeback cache sends writes from the
 * kernel (no caller): those keep the attribution the handle had.
 */
static void
on_data_writing(void *cookie)
{
	struct access *access = cookie;

	atomic_fetch_add(&access->file->writes_in_flight, 1);
	atomic_fetch_add(&access->file->writes_begun, 1);
}

/* After on_data_written counted the change (or the change failed). */
static void
on_data_write_ended(void *cookie)
{
	struct access *access = cookie;

	atomic_fetch_sub(&access->file->writes_in_flight, 1);
}

static void
on_data_written(void *cookie, fuse_req_t req, const void *data, off_t offset, size_t bytes)
{
	struct access *access = cookie;
	struct file_state *file = access->file;
	struct process_info *image = NULL, *previous = NULL;
	pid_t thread = 0;

	atomic_fetch_add_explicit(&access->bytes_written, bytes, memory_order_relaxed);
	atomic_fetch_add_explicit(&access->write_calls, 1, memory_order_relaxed);
	if (req && access->recorded) {
		thread = fuse_req_ctx(req)->pid;
		if (thread > 0 &&
		    atomic_load_explicit(&access->writer_thread, memory_order_relaxed) != thread) {
			struct caller caller;
			caller_from_request(req, &caller);
			if (caller.process_id > 0)
				image = process_table_lookup(access->recorder->processes,
							     caller.process_id);
		}
	}
	pthread_mutex_lock(&file->lock);
	file->dirty = true;
	file->stamp_known = false;
	file->changes++;
	if (file->stream_valid) {
		if (data && (uint64_t)offset == file->stream_offset) {
			XXH3_128bits_update(file->stream, data, bytes);
			file->stream_offset += bytes;
		} else {
			file->stream_valid = false; /* rehash in the pool at release */
		}
	}
	if (image) {
		previous = access->writer_image;
		access->writer_image = image;
		atomic_store_explicit(&access->writer_thread, thread, memory_order_relaxed);
	}
	pthread_mutex_unlock(&file->lock);
	process_info_release(previous);
}

/* Size, mtime and inode as expected: only the ctime may have moved. */
static bool
only_ctime_moved(const struct stamp *expected, const struct stat *st)
{
	return st->st_size == expected->size && timespec_ns(st->st_mtim) == expected->mtime_ns &&
	       st->st_ino == expected->inode;
}

static const char *
hash_state_after(int result, const struct stamp *expected, const struct stat *before,
		 const struct stat *after)
{
	if (result < 0 || before == NULL || after == NULL)
		return "failed";
	struct stamp stamp_before = stamp_of(before), stamp_after = stamp_of(after);
	if (!stamps_equal(&stamp_before, expected) || !stamps_equal(&stamp_after, expected))
		return "changed";
	return "hashed";
}

/* How long a hash job's verdict waits, polling each millisecond, for a
 * setattr's report and for a writer that wrote nothing to close. */
#define SETATTR_REPORT_WAIT_LIMIT_MS 1000
#define WRITER_CLOSE_WAIT_LIMIT_MS 250

/*
 * Writes that could be under way unseen, for bytes expected to be those of
 * the stamp expected: those of the open writers the kernel passes through,
 * reported after they are made, or of any the table of open writers does
 * not hold; and the daemon's own writes begun and not yet counted (one
 * that began before a mark was taken may still land after it).
 *
 * Except a handle open to read and write, passed through and watched late
 * (a database's reader holds one), that opened on the expected content:
 * a write of its would begin after that stamp was taken, by a stat, and
 * every write moves the ctime as it begins, to a time finer than the stat
 * saw (the multigrain timestamps of Linux 6.13+, on every filesystem that
 * takes the watch's marks), so the stamps taken around the hash show it.
 * A writer that only writes is not so excused: its version is hashed
 * after it closes.  file->lock held.
 */
static bool
writes_unseen(const struct file_state *file, const struct stamp *expected)
{
	int seen = 0;

	if (atomic_load(&file->writes_in_flight) > 0)
		return true;
	for (size_t i = 0; i < file->open_writer_count; i++) {
		const struct access *writer = file->open_writers[i];
		if (!writer->bypass ||
		    (writer->writers_reported_late && stamps_equal(&writer->open_stamp, expected)))
			seen++;
	}
	return file->writers > seen;
}

/* One millisecond of such a wait, file->lock released meanwhile. */
static void
pause_unlocked(struct file_state *file)
{
	pthread_mutex_unlock(&file->lock);
	nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	pthread_mutex_lock(&file->lock);
}

const char *
hash_outcome(int result, const struct stamp *expected, const struct stat *before,
	     const struct stat *after, struct file_state *file, uint64_t mark)
{
	if (result == -ESHUTDOWN)
		return NULL;
	if (result == -ECANCELED)
		return "changed"; /* a newer version's job took its place */
	if (result == -EBUSY)
		return "unhashed";
	const char *state = hash_state_after(result, expected, before, after);
	/*
	 * A ctime that alone moved is a rename, link or chmod (an atomic save
	 * renames right after the close): the bytes are still the version's
	 * when the change mark below agrees.
	 */
	if (strcmp(state, "changed") == 0 && file && only_ctime_moved(expected, before) &&
	    only_ctime_moved(expected, after))
		state = "hashed";
	/*
	 * A touch through the mount after the close (git and cp -p copy a
	 * file, close it, then set its times) moves the mtime the job
	 * expected.  The file's known stamp follows such setattrs only when
	 * the attributes before each were the known ones (refresh_known_stamp):
	 * when it names what the hash saw, the bytes are the version's, if the
	 * change mark below agrees.  A change made outside the mount never
	 * moves the known stamp.
	 */
	bool touched = false;
	if (strcmp(state, "changed") == 0 && file && result >= 0 && before && after &&
	    before->st_size == expected->size && before->st_ino == expected->inode) {
		struct stamp stamp_before = stamp_of(before), stamp_after = stamp_of(after);
		pthread_mutex_lock(&file->lock);
		/* A setattr that moved them may not have reported yet: its
		 * report is what moves the known stamp (a few microseconds
		 * later, unless the machine is loaded). */
		for (int waited = 0;
		     file->setattrs_in_flight > 0 && waited < SETATTR_REPORT_WAIT_LIMIT_MS; waited++)
			pause_unlocked(file);
		/* The touch may also have come while the bytes were read. */
		touched = file->stamp_known && !file->dirty &&
			  (stamps_equal(&file->known_stamp, &stamp_before) ||
			   stamps_equal(expected, &stamp_before)) &&
			  stamps_equal(&file->known_stamp, &stamp_after);
		pthread_mutex_unlock(&file->lock);
		if (touched)
			state = "hashed";
	}
	if (strcmp(state, "hashed") != 0 || file == NULL)
		return state;
	/*
	 * Stamps miss a same-size rewrite within one timestamp tick; the
	 * change mark does not.  A handle the daemon serves moves it before
	 * each write starts, so one that is open and wrote nothing (a
	 * database reader opens O_RDWR) changed nothing; a write of its that
	 * began before the mark was taken is waited for.  A passthrough
	 * writer's writes are reported after they are made: while one is
	 * open, the bytes read are not to be trusted.  Most such handles
	 * never write and close at once (touch(1) opens the file whose times
	 * it sets): wait for that, briefly, rather than call an unchanged
	 * version changed.
	 */
	pthread_mutex_lock(&file->lock);
	for (int waited = 0;
	     change_mark(file) == mark && writes_unseen(file, expected) &&
	     waited < WRITER_CLOSE_WAIT_LIMIT_MS;
	     waited++)
		pause_unlocked(file);
	bool unchanged = change_mark(file) == mark && !writes_unseen(file, expected);
	pthread_mutex_unlock(&file->lock);
	return unchanged ? "hashed" : "changed";
}

void
version_hash_done(void *argument, int result, const char *hex, const struct stat *before,
		  const struct stat *after)
{
	struct version *version = argument;
	struct recorder *recorder = version->recorder;
	const char *state = hash_outcome(result, &version->stamp, before, after, version->file,
					 version->changes);

	if (state == NULL) {
		version_release(version); /* stays 'pending': nothing is known */
		return;
	}
	struct event *event = event_new(EVENT_VERSION_HASH);
	event->version = version; /* the job's reference moves to the event */
	event->hash_state = state;
	if (strcmp(state, "hashed") == 0)
		snprintf(event->hash, sizeof(event->hash), "%s", hex);
	recorder_enqueue(recorder, event);
}

/* ---- writers the kernel passes through ---------------------------------------
 *
 * A handle whose data the kernel passes through sends no write requests;
 * the filesystem layer's writer watch (fs/writer_watch.c) asks who each
 * process is that reads or writes the file, inside its read(2) or
 * write(2), which waits for the answer (on_bypass_identify: the process
 * table, so the process certainly runs), and then reports each process
 * that wrote with that identity (on_bypass_written), on its own thread,
 * before the release of the handles written through.  An identity that
 * could not be had stays unknown, never replaced by a process that did
 * not write.
 */

#define BYPASS_WRITERS_KEPT 16 /* per file between versions; the oldest go first */

static void
clear_bypass_writers(struct file_state *file)
{
	for (size_t i = 0; i < file->bypass_writer_count; i++)
		process_info_release(file->bypass_writers[i].image);
	free(file->bypass_writers);
	file->bypass_writers = NULL;
	file->bypass_writer_count = 0;
}

static void *
on_bypass_identify(void *context, pid_t pid)
{
	struct recorder *recorder = context;
	struct process_info *image = process_table_lookup(recorder->processes, pid);

	if (image && image->executable == NULL) {
		/* No program, no argv (a kernel thread): unknown. */
		process_info_release(image);
		image = NULL;
	}
	return image;
}

static void
on_bypass_forget(void *context, void *identity)
{
	(void)context;
	process_info_release(identity);
}

/* A write already made: pid's identity only if it certainly wrote with it. */
static void *
on_bypass_identify_since(void *context, pid_t pid, int64_t since_ns)
{
	struct recorder *recorder = context;
	struct process_info *image = on_bypass_identify(context, pid);

	/* Checked after the lookup: an exec between the write and the lookup
	 * is then among the changes seen. */
	if (image && !process_table_unchanged_since(recorder->processes, pid, since_ns)) {
		process_info_release(image);
		image = NULL;
	}
	return image;
}

static bool
on_bypass_identifies_late(void *context)
{
	struct recorder *recorder = context;

	return recorder->processes && process_table_tracks_changes(recorder->processes);
}

static void
on_bypass_written(void *context, dev_t device, ino_t inode, pid_t pid, void *identity,
		  bool checked)
{
	struct recorder *recorder = context;
	struct file_state *file = recorder_find_file(recorder, device, inode);
	struct process_info *image = NULL, *dropped = NULL;

	if (file == NULL)
		return;
	/* The same writer again (a stream of writes): nothing to change. */
	pthread_mutex_lock(&file->lock);
	size_t count = file->bypass_writer_count;
	if (pid > 0 && identity && file->writers > 0 && count > 0 &&
	    file->bypass_writers[count - 1].pid == pid &&
	    file->bypass_writers[count - 1].image == identity) {
		file->changes++;
		file->bypass_reports++;
		pthread_mutex_unlock(&file->lock);
		file_state_release(file);
		return;
	}
	pthread_mutex_unlock(&file->lock);
	if (pid > 0 && identity)
		image = process_info_acquire(identity);
	log_debug("passthrough write of inode %lu by pid %d: %s", (unsigned long)inode, (int)pid,
		  image ? image->executable : "unknown");
	pthread_mutex_lock(&file->lock);
	if (file->writers > 0) {
		file->dirty = true;
		file->stamp_known = false;
		file->changes++;
		file->bypass_reports++;
		/* The latest report last: drop this pid's earlier one, or the
		 * oldest when full. */
		size_t i = 0;
		while (i < file->bypass_writer_count && file->bypass_writers[i].pid != pid)
			i++;
		if (i == file->bypass_writer_count && i == BYPASS_WRITERS_KEPT)
			i = 0;
		struct bypass_writer *writers = file->bypass_writers;
		if (i < file->bypass_writer_count) {
			dropped = writers[i].image;
			memmove(&writers[i], &writers[i + 1],
				(file->bypass_writer_count - i - 1) * sizeof(*writers));
			file->bypass_writer_count--;
		} else {
			writers = realloc(writers, (file->bypass_writer_count + 1) * sizeof(*writers));
		}
		if (writers) {
			file->bypass_writers = writers;
			/* A newer report of an identified writer keeps its image,
			 * unless it was looked for and not found (an exec, an
			 * exit since: the image may not be the writer's). */
			if (image == NULL && !checked && dropped && pid > 0)
				image = dropped, dropped = NULL;
			writers[file->bypass_writer_count++] =
				(struct bypass_writer){.pid = pid, .image = image};
			image = NULL;
		}
	}
	pthread_mutex_unlock(&file->lock);
	process_info_release(image);
	process_info_release(dropped);
	file_state_release(file);
}

/*
 * Did a passthrough writer write?  When a write was reported while it was
 * open (whatever the timestamps' granularity), or when its stamp moved
 * (stamp_now) otherwise than by the changes the daemon explains: a store
 * through a shared mapping, or conservatively whatever is unexplained.  A
 * touch or chmod through the mount alone is no write.  file->lock held.
 */
static bool
bypass_reported_wrote(const struct file_state *file, const struct access *access,
		      bool stamp_moved, const struct stamp *stamp_now)
{
	if (file->bypass_reports != access->open_bypass_reports)
		return true;
	if (!stamp_moved)
		return false;
	return !(access->explained_epoch == file->explained_epoch &&
		 stamps_equal(&file->explained_stamp, stamp_now));
}

/*
 * A change made through the mount while passthrough writers are open:
 * the stamp they explain follows it when it started from that stamp (a
 * setattr's attributes before; a rename, link or chmod without them moves
 * only the ctime), else the chain breaks.  file->lock held.
 */
static void
follow_explained_stamp(struct file_state *file, const struct fs_namespace_event *change)
{
	struct stamp after = stamp_of(change->attributes);
	bool follows;

	if (file->writers == 0)
		return;
	if (change->before) {
		struct stamp before = stamp_of(change->before);
		follows = stamps_equal(&file->explained_stamp, &before);
	} else {
		follows = change->change != FS_CHANGE_TIMES && change->change != FS_CHANGE_TRUNCATE &&
			  file->explained_stamp.size == after.size &&
			  file->explained_stamp.mtime_ns == after.mtime_ns &&
			  file->explained_stamp.inode == after.inode;
	}
	if (!follows)
		file->explained_epoch++;
	file->explained_stamp = after;
}

/*
 * Who produced a version whose last writer to close was the passthrough
 * handle last, among the identified processes reported writing it: the
 * latest of the handle's own processes (its opener, or the later image
 * that closed it) that wrote, else the latest writer.  NULL when no writer
 * could be identified: never a process that did not write.  file->lock
 * held.
 */
static struct process_info *
bypass_producer(const struct file_state *file, const struct access *last)
{
	struct process_info *latest = NULL;

	for (size_t i = file->bypass_writer_count; i-- > 0;) {
		const struct bypass_writer *writer = &file->bypass_writers[i];
		if (writer->image == NULL)
			continue;
		if ((last->process && last->process->pid == writer->pid) ||
		    (last->last_image && last->last_image->pid == writer->pid))
			return writer->image;
		if (latest == NULL)
			latest = writer->image;
	}
	return latest;
}

/*
 * The last writer of file closed and some handle wrote or truncated: make
 * the version they completed.  Its producer is the last of those handles
 * to close, attributed to the process that made its write requests (or,
 * for a handle that only truncated, the image that closed it or opened
 * it).  *upcoming, the version readers already wait for, is used and
 * taken when there is one.  Called with file->lock held; stamp: the
 * file's as the version was complete.
 */
static struct version *
complete_version_as(struct recorder *recorder, struct file_state *file, struct version **upcoming,
		    const struct stamp *stamp)
{
	struct version *version = *upcoming ? *upcoming : version_new(recorder, file);

	if (version == NULL)
		return NULL;
	*upcoming = NULL;
	struct access *last = file->pending_writers[file->pending_count - 1];
	struct process_info *producer = last->writer_image ? last->writer_image
					: last->last_image ? last->last_image
							   : last->process;
	if (last->bypass && file->bypass_writer_count > 0)
		producer = bypass_producer(file, last);
	version->stamp = *stamp;
	version->producer = producer ? process_info_acquire(producer) : NULL;
	version->changes = change_mark(file);
	version->cut_order = file->versions_cut++;
	version->writers = file->pending_writers;
	version->writer_count = file->pending_count;
	file->pending_writers = NULL;
	file->pending_count = 0;
	if (file->stream_valid && file->stream_offset == (uint64_t)stamp->size)
		content_hash_format(XXH3_128bits_digest(file->stream), version->hash);
	file->dirty = false;
	file->truncated = false;
	file->stream_valid = false;
	clear_bypass_writers(file);
	file->stamp_known = true;
	file->known_stamp = version->stamp;
	version_release(file->known_version); /* never the last reference: the table holds file */
	file->known_version = version_acquire(version);
	return version;
}

/*
 * complete_version_as() with the file's stamp now (fd: a descriptor of
 * it).  Read here, under file->lock, never earlier: a utimensat after the
 * close (cp --preserve, git) is reported under the same lock, and must
 * find either the stamp it left or the version it moves (refresh_known_stamp).
 */
static struct version *
complete_version(struct recorder *recorder, struct file_state *file, struct version **upcoming,
		 int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return NULL;
	struct stamp stamp = stamp_of(&st);
	return complete_version_as(recorder, file, upcoming, &stamp);
}

/*
 * Did writer change the content since its writes were last cut into a
 * version: a write, or a change without bytes (fallocate punching or
 * zeroing a range)?  Each is one data_written call.
 */
static bool
changed_since_cut(const struct access *writer)
{
	return atomic_load(&writer->write_calls) > writer->write_calls_at_cut;
}

/*
 * Has writer not written since its latest close?  Its own write requests
 * say so; a passthrough writer's writes are reported for the file, not
 * the handle, so for it no change of the file since may have come.
 * file->lock held.
 */
static bool
quiescent(const struct file_state *file, const struct access *writer)
{
	if (!writer->flushed)
		return false;
	if (writer->bypass)
		return writer->flushed_changes == file->changes;
	return atomic_load(&writer->write_calls) == writer->flushed_write_calls;
}

/*
 * An open for writing while other handles are open to write.  When every
 * one of them was closed (flushed) since it last wrote, nobody writes the
 * file now, and what they wrote is a version complete at that close.  The kernel sends a handle's RELEASE
 * asynchronously, after close(2) returned, so a process that closes a file
 * and opens it again at once ('>f' then '>>f') is often served the new
 * OPEN first; without the cut the two writes made one version.  The
 * handles stay open until their release; what they write from now on
 * counts for the next version.  baseline: the file's stamp after this open;
 * truncated: the open truncated it (then the version's stamp is the one
 * its writers saw at their latest close).  True when the others are
 * quiescent (then *version is the version cut, or NULL when they wrote
 * nothing since the last one).  file->lock held.
 */
static bool
cut_version(struct recorder *recorder, struct file_state *file, const struct stamp *baseline,
	    bool truncated, struct version **version)
{
	const struct access *latest = NULL;
	int64_t last_close_ns = 0;

	*version = NULL;
	if (file->open_writer_count == 0 || file->open_writer_count != (size_t)file->writers)
		return false; /* a handle not tracked (out of memory): no cut */
	for (size_t i = 0; i < file->open_writer_count; i++) {
		const struct access *writer = file->open_writers[i];
		if (!quiescent(file, writer))
			return false;
		if (latest == NULL || writer->flushed_stamp.ctime_ns > latest->flushed_stamp.ctime_ns)
			latest = writer;
		if (writer->flushed_ns > last_close_ns)
			last_close_ns = writer->flushed_ns;
	}
	struct stamp stamp = truncated ? latest->flushed_stamp : *baseline;
	for (size_t i = 0; i < file->open_writer_count; i++) {
		struct access *writer = file->open_writers[i];
		bool bypass_wrote = false;
		if (writer->bypass) {
			bool moved = !stamps_equal(&writer->open_stamp, &stamp);
			bypass_wrote = writer->writers_reported
					       ? bypass_reported_wrote(file, writer, moved, &stamp)
					       : moved;
		}
		bool wrote = bypass_wrote || changed_since_cut(writer) ||
			     (!writer->cut && ((writer->flags & O_TRUNC) || writer->created));
		if (bypass_wrote) {
			file->dirty = true;
			file->stamp_known = false;
		}
		if (writer->recorded && wrote) {
			struct access **pending = realloc(file->pending_writers,
							  (file->pending_count + 1) * sizeof(*pending));
			if (pending) {
				file->pending_writers = pending;
				pending[file->pending_count++] = access_acquire(writer);
			}
		}
	}
	if (file->pending_count > 0)
		*version = complete_version_as(recorder, file, &file->upcoming, &stamp);
	if (*version)
		(*version)->completed_ns = last_close_ns;
	/* From here on each counts afresh, against this open's stamp, which
	 * the changes the daemon made or saw explain. */
	if (!stamps_equal(&file->explained_stamp, baseline)) {
		file->explained_stamp = *baseline;
		file->explained_epoch++;
	}
	for (size_t i = 0; i < file->open_writer_count; i++) {
		struct access *writer = file->open_writers[i];
		writer->cut = true;
		writer->write_calls_at_cut = atomic_load(&writer->write_calls);
		writer->open_stamp = *baseline;
		writer->open_bypass_reports = file->bypass_reports;
		writer->explained_epoch = file->explained_epoch;
	}
	return true;
}

/* Track access among file's open writers (file->lock held); on failure it
 * is not, and versions are no longer cut while it is open. */
static void
add_open_writer(struct file_state *file, struct access *access)
{
	if (file->open_writer_count == file->open_writer_capacity) {
		size_t grown = file->open_writer_capacity ? file->open_writer_capacity * 2 : 2;
		struct access **writers = realloc(file->open_writers, grown * sizeof(*writers));
		if (writers == NULL)
			return;
		file->open_writers = writers;
		file->open_writer_capacity = grown;
	}
	file->open_writers[file->open_writer_count++] = access;
}

static void
remove_open_writer(struct file_state *file, struct access *access)
{
	for (size_t i = 0; i < file->open_writer_count; i++)
		if (file->open_writers[i] == access) {
			file->open_writers[i] = file->open_writers[--file->open_writer_count];
			return;
		}
}

/* Is image the same process as ancestor (a later exec), or below it? */
static bool
descends_from(const struct process_info *image, const struct process_info *ancestor)
{
	for (int depth = 0; image && depth < 32; depth++, image = image->parent)
		if (image->pid == ancestor->pid && image->start_ns == ancestor->start_ns &&
		    image->kernel_id == ancestor->kernel_id)
			return true;
	return false;
}

/*
 * close() by a process: remember who closed a written handle.  A shell
 * opens the redirect of "prog >out" (bash in the forked child before the
 * exec, dash in itself before the fork) and prog closes it last: for a
 * handle that truncated without writing, the image that closes it, when it
 * is the opener's exec successor or descendant, is the producer.  Only a
 * descendant that used the handle: one that wrote through it, or any when
 * the handle truncated or created the file and nobody wrote through it yet.
 * A logger's shell holds its log open ("exec 4>>log") and runs cp and
 * truncate, which inherit the descriptor and close it at exit unused.
 */
static void
on_flushed(void *cookie, fuse_req_t req, const struct stat *attributes)
{
	struct access *access = cookie;
	struct caller caller;

	if (!access->writes)
		return;
	/* Its writes before this close are all made and counted (reported,
	 * for a passthrough writer: the layer drained them): the point a
	 * later open may cut a version at (cut_version()). */
	pthread_mutex_lock(&access->file->lock);
	access->flushed = attributes != NULL;
	access->flushed_ns = wall_clock_ns();
	access->flushed_changes = access->file->changes;
	access->flushed_write_calls = atomic_load(&access->write_calls);
	if (attributes)
		access->flushed_stamp = stamp_of(attributes);
	pthread_mutex_unlock(&access->file->lock);
	if (access->process == NULL || !access->recorded)
		return;
	caller_from_request(req, &caller);
	/*
	 * Only an image the table already has: a FLUSH may come from inside
	 * an execve (closing a close-on-exec descriptor), where reading the
	 * caller's /proc waits for the exec, which waits for this reply.  A
	 * process whose first request is that FLUSH never used the handle.
	 */
	struct process_info *image = process_table_peek(access->recorder->processes,
							caller.process_id);
	if (image && image != access->process && descends_from(image, access->process)) {
		struct file_state *file = access->file;
		pthread_mutex_lock(&file->lock);
		bool used = ((access->flags & O_TRUNC) || access->created) &&
			    (access->bypass ? file->bypass_writer_count == 0
					    : atomic_load(&access->write_calls) == 0);
		if (access->writer_image && access->writer_image->pid == image->pid)
			used = true;
		for (size_t i = 0; access->bypass && i < file->bypass_writer_count; i++)
			if (file->bypass_writers[i].pid == image->pid)
				used = true;
		struct process_info *previous = NULL;
		if (used) {
			previous = access->last_image;
			access->last_image = image;
			image = NULL;
		}
		pthread_mutex_unlock(&file->lock);
		process_info_release(previous);
	}
	process_info_release(image);
}

/*
 * A read handle a shell's forked child opened and kept across the exec
 * that started a job: "PROVFS_JOB=etl sqlite3 db <etl.sql" opens etl.sql
 * before the exec, in the child, which belongs to the shell's run; it is
 * sqlite3 that reads it, in the run the exec started.  Read handles send
 * no FLUSH (FOPEN_NOFLUSH) and the kernel passes their reads through, so
 * what is known is that the handle outlived the exec: the input goes to
 * the image the process ran last, when that image began a run of its own.
 * Only for the first image of a forked process (no shell's own handles,
 * "exec 3<conf", move), and only when the table built the later image
 * before the release (a program that ends at once may be missed: the read
 * then stays with the child, as before).  Called at release, before the
 * CLOSE event is queued.
 */
static void
give_read_to_exec_successor(struct access *access)
{
	struct process_info *opener = access->process, *latest = NULL, *next;

	if (!access->reads || access->writes || access->is_exec || opener == NULL ||
	    opener->exec_index != 0 || !access->recorded)
		return;
	next = atomic_load(&opener->successor);
	for (int depth = 0; next && depth < 16; depth++) {
		latest = next;
		next = atomic_load(&latest->successor);
	}
	if (latest == NULL || latest->run == NULL || latest->run == opener->run ||
	    latest->run->root_pid != latest->pid || latest->run->root_start_ns != latest->start_ns)
		return;
	pthread_mutex_lock(&access->file->lock);
	struct process_info *previous = access->last_image;
	access->last_image = process_info_acquire(latest);
	pthread_mutex_unlock(&access->file->lock);
	process_info_release(previous);
}

static void
on_released(void *cookie, int fd, const struct stat *attributes)
{
	struct access *access = cookie;
	struct recorder *recorder = access->recorder;
	struct file_state *file = access->file;
	struct version *version = NULL, *abandoned = NULL;
	bool held_back = false;

	access->closed_ns = wall_clock_ns();
	if (access->is_exec) {
		pthread_mutex_lock(&recorder->exec_lock);
		bool waiting = access->process == NULL;
		access->released = waiting;
		pthread_mutex_unlock(&recorder->exec_lock);
		if (waiting) {
			access_release(access); /* on_exec_input queues OPEN and CLOSE */
			return;
		}
	}
	give_read_to_exec_successor(access);
	if (access->read_known_version) {
		/* The file changed while it was open (writers it opened beside,
		 * or one that opened later): it may have read their bytes, so it
		 * reads the version they make (or made, when they all closed
		 * meanwhile).  A handle that also wrote keeps the version it
		 * read before its own writes. */
		pthread_mutex_lock(&file->lock);
		if (change_mark(file) != access->open_changes) {
			struct version *later = file->upcoming;
			if (later == NULL && file->dirty && file->writers > 0)
				later = file->upcoming = version_new(recorder, file);
			else if (later == NULL && !file->dirty)
				later = file->known_version;
			if (later && later != access->version_read)
				access->version_read_later = version_acquire(later);
		}
		pthread_mutex_unlock(&file->lock);
	}
	if (access->writes) {
		/* Passthrough writes (and mmap) show only in the file itself:
		 * a stamp moved since open counts as written, unless the
		 * writer watch reports this handle's writes (see
		 * bypass_reported_wrote()). */
		bool bypass_wrote = false;
		struct stat now;
		struct stamp stamp_now = {0};
		if (access->bypass) {
			if (attributes)
				now = *attributes;
			bypass_wrote = (attributes == NULL && fstat(fd, &now) < 0) ||
				       (stamp_now = stamp_of(&now),
					!stamps_equal(&access->open_stamp, &stamp_now));
		}
		pthread_mutex_lock(&file->lock);
		/* The kernel sends RELEASE after close(2) returned, as late as a
		 * loaded machine makes it: a handle that wrote nothing since its
		 * last close was closed then ('job; date' must find the job's
		 * version current at that date).  Before this release's own
		 * changes are counted. */
		if (quiescent(file, access) &&
		    (!access->bypass || stamps_equal(&access->flushed_stamp, &stamp_now)))
			access->closed_ns = access->flushed_ns;
		remove_open_writer(file, access);
		if (access->writers_reported)
			bypass_wrote = bypass_reported_wrote(file, access, bypass_wrote, &stamp_now);
		if (bypass_wrote) {
			file->dirty = true;
			file->stamp_known = false;
			file->changes++;
		}
		/* What it wrote before a cut is in that version already. */
		if (access->recorded &&
		    (changed_since_cut(access) ||
		     (!access->cut && ((access->flags & O_TRUNC) || access->created)) ||
		     bypass_wrote)) {
			struct access **pending = realloc(file->pending_writers,
							  (file->pending_count + 1) * sizeof(*pending));
			if (pending) {
				file->pending_writers = pending;
				pending[file->pending_count++] = access_acquire(access);
			}
		}
		if (--file->writers == 0) {
			/* A truncate (setattr) through a handle changes content
			 * without a write: the closing handle stands for it. */
			if (file->pending_count == 0 && file->truncated && access->recorded) {
				file->pending_writers = malloc(sizeof(*file->pending_writers));
				if (file->pending_writers)
					file->pending_writers[file->pending_count++] =
						access_acquire(access);
			}
			if (file->pending_count > 0)
				version = complete_version(recorder, file, &file->upcoming, fd);
			/* Complete at its writers' latest close: each has been
			 * released (this one last), its close time set. */
			for (size_t i = 0; version && i < version->writer_count; i++)
				if (version->writers[i]->closed_ns > version->completed_ns)
					version->completed_ns = version->writers[i]->closed_ns;
			if (version == NULL && file->dirty) {
				/* Changed only by handles nobody records: the
				 * content is unknown until read again. */
				file->dirty = false;
				file->truncated = false;
				file->stream_valid = false;
				file->stamp_known = false;
			}
			clear_bypass_writers(file);
			abandoned = file->upcoming; /* its writers changed nothing */
			file->upcoming = NULL;
			/* Its readers then read the version there was: not one
			 * that comes after. */
			if (abandoned)
				abandoned->cut_order = file->versions_cut++;
			/* The running hash serves open writers only: a state kept
			 * for every file ever written grows the daemon by 640 bytes
			 * a file (a page fault every few creates); the next writer
			 * takes one freed here instead. */
			XXH3_freeState(file->stream);
			file->stream = NULL;
			file->stream_valid = false;
		}
		/* Test only: the first release of a file that completes or
		 * abandons a version queues it late. */
		if (recorder->test_version_queue_delay_ms > 0 && (version || abandoned) &&
		    !file->test_release_held_back)
			held_back = file->test_release_held_back = true;
		pthread_mutex_unlock(&file->lock);
	}
	if (held_back) {
		int milliseconds = recorder->test_version_queue_delay_ms;
		nanosleep(&(struct timespec){.tv_sec = milliseconds / 1000,
					     .tv_nsec = milliseconds % 1000 * 1000000L},
			  NULL);
	}
	if (version) {
		generation_still_known(recorder, file, version->stamp.ctime_ns);
		path_still_known(recorder, file, version->stamp.ctime_ns);
	}
	/* Not one sequential pass: hashed in the pool once its row is
	 * committed, reaching the file by handle (no descriptor kept). */
	if (version && version->hash[0] == '\0')
		version->hash_source = hash_source_new(recorder->hashes, fd);
	if (access->recorded) {
		/* The handle's reference moves to the event. */
		recorder_enqueue(recorder, access_event(access, EVENT_CLOSE, access->closed_ns));
	} else {
		access_release(access);
	}
	if (version)
		queue_version(recorder, version, access->closed_ns);
	if (abandoned) {
		struct event *event = event_new(EVENT_ABANDONED);
		event->version = abandoned;
		queue_in_cut_order(recorder, file, abandoned->cut_order, event);
	}
}

/*
 * Renames, links and attribute changes move a file's ctime without touching
 * its content: keep the known stamp in step, so the next read does not
 * take provfs's own change for one made outside.  Only when the content is
 * known unchanged: the attributes before a setattr must be the known ones
 * (a same-size write outside the mount, then a touch through it, must not
 * pass for the version before).  A truncate does change the content; when
 * no handle is writing, it makes a version by itself.
 */
static void
refresh_known_stamp(struct recorder *recorder, const struct fs_namespace_event *change,
		    struct event *event)
{
	const struct stat *st = change->attributes;
	struct file_state *file;

	/* An unlink moves nothing that is known, unless the file lives on
	 * under another name (the layer then says what it was before). */
	if (change->change == FS_CHANGE_CREATE ||
	    (change->change == FS_CHANGE_UNLINK && change->before == NULL) ||
	    !S_ISREG(st->st_mode))
		return;
	pthread_mutex_lock(&recorder->files_lock);
	for (file = recorder->file_slots[file_slot(recorder, st->st_dev, st->st_ino)]; file;
	     file = file->next)
		if (file->device == st->st_dev && file->inode == st->st_ino)
			break;
	if (file) {
		file_state_acquire(file); /* eviction may drop the table's meanwhile */
		pthread_mutex_lock(&file->lock);
	}
	pthread_mutex_unlock(&recorder->files_lock);
	if (file == NULL) {
		event->truncated_closed = change->change == FS_CHANGE_TRUNCATE;
		return;
	}
	follow_explained_stamp(file, change);
	if (change->change == FS_CHANGE_TRUNCATE) {
		file->stamp_known = false;
		file->stream_valid = false; /* the bytes hashed so far are not the file's */
		file->changes++;
		event->changes = change_mark(file);
		if (file->writers > 0) {
			file->dirty = true;
			file->truncated = true;
		} else {
			event->truncated_closed = true;
			/* A version by itself: in turn with those of closes. */
			event->ordered_file = file_state_acquire(file);
			event->cut_order = file->versions_cut++;
		}
	} else if (file->stamp_known && !file->dirty) {
		bool unchanged;
		if (change->before) {
			struct stamp before = stamp_of(change->before), after = stamp_of(st);
			unchanged = file->known_stamp.inode == before.inode &&
				    stamp_before_change(file->known_stamp.size,
							file->known_stamp.mtime_ns,
							file->known_stamp.ctime_ns, &before, &after);
		} else {
			unchanged = change->change != FS_CHANGE_TIMES &&
				    file->known_stamp.size == st->st_size &&
				    file->known_stamp.mtime_ns == timespec_ns(st->st_mtim);
		}
		if (unchanged) {
			file->known_stamp.mtime_ns = timespec_ns(st->st_mtim);
			file->known_stamp.ctime_ns = timespec_ns(st->st_ctim);
			/* Its row may still be queued behind this event: the
			 * close's RELEASE made it, but the setattr got here
			 * first (git: write, close, utimensat). */
			if (change->before && file->known_version)
				event->version = version_acquire(file->known_version);
		} else {
			file->stamp_known = false;
		}
	}
	pthread_mutex_unlock(&file->lock);
	if (change->before &&
	    (change->change == FS_CHANGE_CHMOD || change->change == FS_CHANGE_CHOWN ||
	     change->change == FS_CHANGE_TIMES || change->change == FS_CHANGE_XATTR ||
	     change->change == FS_CHANGE_TRUNCATE))
		attributes_moved_ctime(recorder, file, timespec_ns(change->before->st_ctim),
				       timespec_ns(st->st_ctim));
	file_state_release(file);
}

/*
 * A setattr through the mount is under way (fs_observer.setattr_begin):
 * the file's times may move before refresh_known_stamp() hears of it, and
 * a hash that sees them moved in between waits for that (hash_outcome).
 * The token holds the file state's reference.
 */
static void *
on_setattr_begin(void *context, const struct stat *before)
{
	struct file_state *file = recorder_find_file(context, before->st_dev, before->st_ino);

	if (file) {
		pthread_mutex_lock(&file->lock);
		file->setattrs_in_flight++;
		pthread_mutex_unlock(&file->lock);
	}
	return file;
}

static void
on_setattr_end(void *context, void *token)
{
	struct file_state *file = token;

	(void)context;
	pthread_mutex_lock(&file->lock);
	file->setattrs_in_flight--;
	pthread_mutex_unlock(&file->lock);
	file_state_release(file);
}

static void
on_namespace_changed(void *context, const struct fs_namespace_event *change)
{
	struct recorder *recorder = context;
	struct event *event;
	char *directory = NULL, *new_directory = NULL;

	/* Generations and paths read before may be wrong now (file_state_get,
	 * node_path).  The unlink of a regular file's last name frees its
	 * inode for reuse, but moves no path: the file is gone, and a new one
	 * made with its number is told by its generation, which only that
	 * file's state doubts (below).  A link frees nothing; a rename may
	 * free what it replaces, and an unlink of something unknown anything. */
	bool names_changed = change->change == FS_CHANGE_RENAME ||
			     change->change == FS_CHANGE_LINK || change->change == FS_CHANGE_UNLINK;
	bool last_name_of_file = change->change == FS_CHANGE_UNLINK && change->before == NULL &&
				 change->attributes && S_ISREG(change->attributes->st_mode) &&
				 change->attributes->st_nlink <= 1;
	if (change->change == FS_CHANGE_RENAME ||
	    (change->change == FS_CHANGE_UNLINK && change->attributes == NULL))
		atomic_fetch_add(&recorder->namespace_epoch, 1);
	/* Not known to survive: two links removed at once each saw the other. */
	bool may_free_file = change->change == FS_CHANGE_UNLINK && change->before == NULL &&
			     change->attributes && S_ISREG(change->attributes->st_mode);
	if (names_changed && !last_name_of_file)
		atomic_fetch_add(&recorder->path_epoch, 1);
	/* Directory paths read before may be wrong now (directory_path). */
	if (change->change == FS_CHANGE_RENAME ||
	    (change->change == FS_CHANGE_UNLINK &&
	     (change->attributes == NULL || !S_ISREG(change->attributes->st_mode))))
		atomic_fetch_add(&recorder->directory_epoch, 1);
	if (change->attributes == NULL)
		return;
	/* A regular file is created by an open, whose access records it. */
	if (change->change == FS_CHANGE_CREATE && S_ISREG(change->attributes->st_mode))
		return;
	/*
	 * The last name of a file held open went: it lives on, nameless, and
	 * the unlink moved its ctime, which must not look like a change made
	 * outside provfs when it is opened again through a descriptor.  Its
	 * stamp follows as a survivor's does (the epochs above took it as
	 * the last name it was).
	 */
	struct fs_namespace_event lives_on;
	if (change->change == FS_CHANGE_UNLINK && change->before == NULL && change->unlinked_open) {
		lives_on = *change;
		lives_on.before = change->attributes;
		lives_on.attributes = change->unlinked_open;
		change = &lives_on;
	}
	if (change->name && change->parent_fd >= 0)
		directory = directory_path(recorder, change->parent_fd, change->parent_device,
					   change->parent_inode);
	if (change->new_name && change->new_parent_fd >= 0)
		new_directory = directory_path(recorder, change->new_parent_fd,
					       change->new_parent_device, change->new_parent_inode);
	event = event_new(EVENT_NAMESPACE);
	event->change = change->change;
	event->flags = change->flags;
	event->device = change->attributes->st_dev;
	event->inode = change->attributes->st_ino;
	if (directory && change->name)
		event->path = join_path(directory, change->name);
	if (new_directory && change->new_name)
		event->new_path = join_path(new_directory, change->new_name);
	free(directory);
	free(new_directory);
	event->stamp = stamp_of(change->attributes);
	event->is_directory = S_ISDIR(change->attributes->st_mode);
	event->is_regular = S_ISREG(change->attributes->st_mode);
	if (event->is_regular)
		event->file = recorder_find_file(recorder, event->device, event->inode);
	if (may_free_file)
		generation_in_doubt(recorder, event->file);
	if (change->before) {
		event->before_known = true;
		event->before = stamp_of(change->before);
	}
	/* Whatever the name, the file's state follows the change. */
	refresh_known_stamp(recorder, change, event);
	if ((event->path && (path_is_excluded(recorder, event->path) ||
			     is_sqlite_companion(event->path))) ||
	    (event->new_path && path_is_excluded(recorder, event->new_path) && !event->path)) {
		if (event->ordered_file)
			queue_in_cut_order(recorder, event->ordered_file, event->cut_order, NULL);
		event_free(event);
		return;
	}
	/* Times alone name nobody in the store (apply_namespace), so they owe
	 * no drain of the connector: tar, cp -p and rsync set them on every file. */
	if (change->caller && change->change != FS_CHANGE_TIMES)
		event->process = process_table_lookup(recorder->processes,
						      change->caller->process_id);
	if (event->ordered_file)
		queue_in_cut_order(recorder, event->ordered_file, event->cut_order, event);
	else
		recorder_enqueue(recorder, event);
}

/* ---- process table hooks ------------------------------------------------------ */

static void
on_exec_input(void *context, struct process_info *image, void *cookie)
{
	struct recorder *recorder = context;
	struct access *access = cookie;
	bool closed;

	pthread_mutex_lock(&recorder->exec_lock);
	if (image)
		access->process = process_info_acquire(image);
	closed = access->released;
	pthread_mutex_unlock(&recorder->exec_lock);
	if (image) {
		recorder_enqueue(recorder, access_event(access_acquire(access), EVENT_OPEN,
							access->opened_ns));
		if (closed)
			recorder_enqueue(recorder, access_event(access_acquire(access),
								EVENT_CLOSE, access->closed_ns));
	}
	access_release(access); /* the table's reference */
}

static void
on_image_seen(void *context, struct process_info *image)
{
	struct event *event = event_new(EVENT_PROCESS);

	event->process = process_info_acquire(image);
	recorder_enqueue(context, event);
}

static void
on_image_exited(void *context, struct process_info *image, int64_t time_ns, bool status_known,
		int status)
{
	struct event *event = event_new(EVENT_PROCESS_EXIT);

	event->process = process_info_acquire(image);
	event->time_ns = time_ns;
	event->status_known = status_known;
	event->status = status;
	recorder_enqueue(context, event);
}

struct executable_job {
	struct recorder *recorder;
	struct process_info *image;
	struct stat st;
};

static struct executable_hash *
find_executable(struct recorder *recorder, const struct stat *st)
{
	for (struct executable_hash *entry = recorder->executables; entry; entry = entry->next)
		if (entry->device == st->st_dev && entry->inode == st->st_ino &&
		    entry->size == st->st_size && entry->mtime_ns == timespec_ns(st->st_mtim) &&
		    entry->ctime_ns == timespec_ns(st->st_ctim))
			return entry;
	return NULL;
}

/* The hash of image's executable is known: tell the table's waiters and the store. */
static void
executable_hashed(struct recorder *recorder, struct process_info *image, const char *hash)
{
	process_table_executable_hashed(recorder->processes, image, hash);
	struct event *event = event_new(EVENT_EXECUTABLE_HASH);
	event->process = process_info_acquire(image);
	snprintf(event->hash, sizeof(event->hash), "%s", hash);
	recorder_enqueue(recorder, event);
}

#define EXECUTABLE_CACHE_LIMIT 4096 /* executable hashes remembered */

static void
executable_hash_done(void *argument, int result, const char *hex, const struct stat *before,
		     const struct stat *after)
{
	struct executable_job *job = argument;
	struct recorder *recorder = job->recorder;
	struct stamp expected = stamp_of(&job->st);

	if (strcmp(hash_state_after(result, &expected, before, after), "hashed") == 0) {
		struct executable_hash *entry = calloc(1, sizeof(*entry));
		if (entry) {
			entry->device = job->st.st_dev;
			entry->inode = job->st.st_ino;
			entry->size = job->st.st_size;
			entry->mtime_ns = timespec_ns(job->st.st_mtim);
			entry->ctime_ns = timespec_ns(job->st.st_ctim);
			snprintf(entry->hash, sizeof(entry->hash), "%s", hex);
			pthread_mutex_lock(&recorder->executables_lock);
			entry->next = recorder->executables;
			recorder->executables = entry;
			/* Bounded: one who rewrites and runs a binary over and over
			 * must not grow the daemon; the oldest entries go. */
			struct executable_hash *last = entry, *dropped = NULL;
			for (int kept = 1; last && kept < EXECUTABLE_CACHE_LIMIT; kept++)
				last = last->next;
			if (last) {
				dropped = last->next;
				last->next = NULL;
			}
			pthread_mutex_unlock(&recorder->executables_lock);
			while (dropped) {
				struct executable_hash *next = dropped->next;
				free(dropped);
				dropped = next;
			}
		}
		executable_hashed(recorder, job->image, hex);
	} else {
		/* Changed while read, or unreadable: what ran is not known. */
		process_table_executable_hashed(recorder->processes, job->image, NULL);
	}
	process_info_release(job->image);
	free(job);
}

/*
 * On the process table's executable thread, after the image is published:
 * fd is the very inode the image executed.  A hash is cached by device,
 * inode, size, mtime and ctime, so a binary rewritten in place and
 * backdated (touch -r) is hashed again: its ctime moved.
 */
static void
on_hash_executable(void *context, struct process_info *image, int fd)
{
	struct recorder *recorder = context;
	struct executable_job *job;
	struct stat st;
	char hash[33] = "";

	if (fstat(fd, &st) < 0) {
		close(fd);
		process_table_executable_hashed(recorder->processes, image, NULL);
		return;
	}
	pthread_mutex_lock(&recorder->executables_lock);
	struct executable_hash *known = find_executable(recorder, &st);
	if (known)
		memcpy(hash, known->hash, sizeof(hash));
	pthread_mutex_unlock(&recorder->executables_lock);
	if (hash[0]) {
		close(fd);
		executable_hashed(recorder, image, hash);
		return;
	}
	job = malloc(sizeof(*job));
	if (job == NULL) {
		close(fd);
		process_table_executable_hashed(recorder->processes, image, NULL);
		return;
	}
	job->recorder = recorder;
	job->image = process_info_acquire(image);
	job->st = st;
	hash_pool_submit(recorder->hashes, fd, executable_hash_done, job);
}

/* ---- writer thread -------------------------------------------------------------- */

static void *
writer_main(void *argument)
{
	struct recorder *recorder = argument;
	sigset_t all;
	bool failing = false;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-writer");
	on_writer_thread = true;
	/* Runs earlier daemons left open although their root is gone. */
	abandoned_runs_close(store_db(recorder->store), recorder->host);
	/* Files recorded under this directory's path before it was moved. */
	moved_backing_follow(recorder);
	/* Versions they left unhashed; the runs' ends wait for those hashes,
	 * and a flush now sends those settled at once. */
	if (pending_hashes_resume(recorder) > 0 && openlineage_outbox_enabled()) {
		struct event *none;
		writer_apply_batch(recorder, NULL, 0, &none);
	}
	pthread_mutex_lock(&recorder->queue_lock);
	if (may_leave_background() && set_writer_background(0, true))
		recorder->writer_tid = (pid_t)gettid();
	for (;;) {
		if (recorder->queue_length < BATCH_WAKE_LENGTH && !recorder->stopping) {
			/* Sleep one flush interval, or until a full batch is queued. */
			struct timespec deadline;
			clock_gettime(CLOCK_REALTIME, &deadline);
			deadline.tv_nsec += FLUSH_INTERVAL_MS * 1000000L;
			if (deadline.tv_nsec >= 1000000000L) {
				deadline.tv_sec++;
				deadline.tv_nsec -= 1000000000L;
			}
			while (recorder->queue_length < BATCH_WAKE_LENGTH && !recorder->stopping &&
			       !recorder->flush_now &&
			       pthread_cond_timedwait(&recorder->queue_not_empty,
						      &recorder->queue_lock, &deadline) == 0)
				;
		}
		if (recorder->queue_head == NULL) {
			if (recorder->stopping)
				openlineage_outbox_ungate();
			if (openlineage_outbox_gated() && !failing) {
				/* A START waits for a hash whose verdict may bring no
				 * event: look again, and send it once it may go. */
				struct event *none;
				recorder->writer_busy = true; /* writer_flush() waits for it */
				pthread_mutex_unlock(&recorder->queue_lock);
				if (writer_apply_batch(recorder, NULL, 0, &none) < 0) {
					failing = true; /* the next batch probes first */
					log_error("store failed (%s): recording suspended, events "
						  "are counted as lost until it works again",
						  recorder->last_error);
				}
				pthread_mutex_lock(&recorder->queue_lock);
				recorder->writer_busy = false;
				if (recorder->queue_head)
					continue;
			}
			if (recorder->stopping)
				break;
			recorder->flush_now = false; /* done: wait normally again */
			pthread_cond_broadcast(&recorder->queue_drained);
			continue;
		}
		struct event *batch = recorder->queue_head;
		size_t count = recorder->queue_length;
		uint64_t batch_number = recorder->queue_batch++;
		recorder->queue_head = recorder->queue_tail = NULL;
		recorder->queue_length = 0;
		recorder->writer_busy = true;
		pthread_cond_broadcast(&recorder->queue_not_full);
		pthread_mutex_unlock(&recorder->queue_lock);

		struct event *unwritten = batch; /* what a failing store loses */
		if (failing) {
			/* Counted loss: probe the store, resume when it answers. */
			struct event *none;
			if (writer_apply_batch(recorder, NULL, 0, &none) == 0) {
				log_warning("store works again: recording resumed after %llu lost "
					    "events",
					    (unsigned long long)recorder->events_lost);
				failing = false;
			}
		}
		if (!failing && writer_apply_batch(recorder, batch, batch_number, &unwritten) < 0) {
			failing = true;
			log_error("store failed (%s): recording suspended, events are counted "
				  "as lost until it works again",
				  recorder->last_error);
		}
		if (failing) {
			/* Pieces committed before the failure are written. */
			size_t lost = 0;
			for (struct event *event = unwritten; event; event = event->next)
				lost++;
			recorder->events_written += count - lost;
			recorder->events_lost += lost;
			writer_batch_lost(unwritten); /* no reader waits for a row that never comes */
		} else {
			recorder->events_written += count;
		}
		recorder->batches++;
		while (batch) {
			struct event *next = batch->next;
			event_free(batch);
			batch = next;
		}
		if (failing)
			sleep(1); /* the next probe in a second; requests keep queueing */

		pthread_mutex_lock(&recorder->queue_lock);
		recorder->writer_busy = false;
		/* Caught up: back to the background. */
		if (recorder->writer_boosted && !recorder->flush_now && !recorder->stopping &&
		    recorder->queue_length < recorder->queue_capacity / 16 &&
		    set_writer_background(0, true))
			recorder->writer_boosted = false;
	}
	pthread_cond_broadcast(&recorder->queue_drained);
	pthread_mutex_unlock(&recorder->queue_lock);
	return NULL;
}

/* ---- life cycle ------------------------------------------------------------------ */

/* The [record] rules of config, copied (it may be freed after), or NULL. */
static struct record_rules *
record_rules_new(const struct provfs_config *config)
{
	struct record_rules *rules = calloc(1, sizeof(*rules));

	if (rules == NULL)
		return NULL;
	for (size_t i = 0; i < config->exclude.count; i++)
		string_list_append(&rules->exclude, config->exclude.items[i]);
	for (size_t i = 0; i < config->redact.count; i++)
		string_list_append(&rules->redact, config->redact.items[i]);
	rules->redaction = (struct process_redaction){
		.globs = (const char *const *)rules->redact.items, .count = rules->redact.count};
	return rules;
}

/* rules and every set it replaced. */
static void
record_rules_free(struct record_rules *rules)
{
	while (rules) {
		struct record_rules *replaced = rules->replaced;
		string_list_release(&rules->exclude);
		string_list_release(&rules->redact);
		free(rules);
		rules = replaced;
	}
}

void
recorder_set_record_rules(struct recorder *recorder, const struct provfs_config *config)
{
	struct record_rules *rules = record_rules_new(config);

	if (rules == NULL) {
		log_error("reload: out of memory; the [record] rules in force stay");
		return;
	}
	/* One reload at a time (the reload thread): no other writer races this. */
	rules->replaced = atomic_load_explicit(&recorder->rules, memory_order_relaxed);
	atomic_store_explicit(&recorder->rules, rules, memory_order_release);
	if (recorder->processes)
		process_table_set_redaction(recorder->processes, &rules->redaction);
	/* A smaller table evicts at the next new file, a larger one grows. */
	pthread_mutex_lock(&recorder->files_lock);
	if (!recorder->file_table_limit_fixed) {
		recorder->file_table_limit = config->remembered_files;
		recorder->evict_above = recorder->file_table_limit;
	}
	pthread_mutex_unlock(&recorder->files_lock);
}

struct recorder *
recorder_new(const struct recorder_options *options, char *error, size_t error_size)
{
	struct recorder *recorder = calloc(1, sizeof(*recorder));

	if (recorder == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	recorder->options = *options;
	atomic_init(&recorder->rules, record_rules_new(options->config));
	if (atomic_load(&recorder->rules) == NULL) {
		free(recorder);
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	recorder->proc_fds = -1;
	recorder->backing_dir = strdup(options->backing_dir);
	recorder->mount_point = strdup(options->mount_point);
	gethostname(recorder->host, sizeof(recorder->host) - 1);
	pthread_mutex_init(&recorder->files_lock, NULL);
	pthread_mutex_init(&recorder->queue_lock, NULL);
	pthread_mutex_init(&recorder->executables_lock, NULL);
	pthread_mutex_init(&recorder->exec_lock, NULL);
	pthread_mutex_init(&recorder->version_order_lock, NULL);
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&recorder->version_queued, &monotonic);
	pthread_condattr_destroy(&monotonic);
	pthread_cond_init(&recorder->queue_not_empty, NULL);
	pthread_cond_init(&recorder->queue_not_full, NULL);
	pthread_cond_init(&recorder->queue_drained, NULL);
	recorder->queue_capacity = QUEUE_CAPACITY;
	recorder->queue_batch = 1; /* 0: an access's CLOSE not queued yet */
	recorder->file_slot_count = 16384;
	recorder->file_table_limit = options->config->remembered_files;
	/* Test only: tests/bats/recorder.bats churns more files than a smaller
	 * limit than provfs.conf allows (1,024), to see the table stay
	 * bounded quickly.  Read once; a reload keeps it. */
	const char *test_limit = getenv("PROVFS_TEST_FILE_TABLE_LIMIT");
	if (test_limit && atol(test_limit) >= 16) {
		recorder->file_table_limit = (size_t)atol(test_limit);
		recorder->file_table_limit_fixed = true;
	}
	recorder->evict_above = recorder->file_table_limit;
	/* Test only: tests/bats/lineage_integrity.bats holds the first release
	 * of each file that completes or abandons a version back before it
	 * queues it, so that the next change is made first (on_released). */
	const char *test_delay = getenv("PROVFS_TEST_VERSION_QUEUE_DELAY_MS");
	if (test_delay && atoi(test_delay) > 0 && atoi(test_delay) <= 10000)
		recorder->test_version_queue_delay_ms = atoi(test_delay);
	/* Test only: tests/bats/recorder.bats fills a quarter of a smaller
	 * queue to see the writer brought back from the background. */
	const char *test_queue = getenv("PROVFS_TEST_QUEUE_CAPACITY");
	if (test_queue && atol(test_queue) >= 64 && atol(test_queue) <= QUEUE_CAPACITY)
		recorder->queue_capacity = (size_t)atol(test_queue);
	recorder->file_slots = calloc(recorder->file_slot_count, sizeof(*recorder->file_slots));
	pthread_mutex_init(&recorder->directories_lock, NULL);
	recorder->directories = calloc(DIRECTORY_PATH_SLOTS, sizeof(*recorder->directories));
	if (recorder->file_slots == NULL || recorder->directories == NULL) {
		snprintf(error, error_size, "out of memory");
		goto fail;
	}
	/*
	 * Create or migrate the store now, so a bad one stops the mount, but
	 * keep no connection: SQLite's locks do not survive the fork that
	 * daemonizes, so the writer's connection is opened in recorder_start().
	 */
	recorder->store = store_open(options->store_path, STORE_READ_WRITE,
				     options->config->reader_group, error, error_size);
	if (recorder->store == NULL)
		goto fail;
	store_close(recorder->store);
	recorder->store = NULL;

	recorder->observer = (struct fs_observer){
		.context = recorder,
		.opened = on_opened,
		.data_read = on_data_read,
		.data_writing = on_data_writing,
		.data_write_ended = on_data_write_ended,
		.data_written = on_data_written,
		.flushed = on_flushed,
		.released = on_released,
		.namespace_changed = on_namespace_changed,
		.setattr_begin = on_setattr_begin,
		.setattr_end = on_setattr_end,
		.bypass_identify = on_bypass_identify,
		.bypass_forget = on_bypass_forget,
		.bypass_written = on_bypass_written,
		.bypass_identify_since = on_bypass_identify_since,
		.bypass_identifies_late = on_bypass_identifies_late,
	};
	return recorder;
fail:
	if (recorder->store)
		store_close(recorder->store);
	free(recorder->file_slots);
	free(recorder->directories);
	free(recorder->backing_dir);
	free(recorder->mount_point);
	record_rules_free(atomic_load(&recorder->rules));
	free(recorder);
	return NULL;
}

int
recorder_start(struct recorder *recorder)
{
	struct process_table_options table_options = {
		.redaction = &atomic_load(&recorder->rules)->redaction,
		.mount_point = recorder->mount_point,
		.backing_fd = recorder->options.backing_fd,
		.hooks = {.context = recorder,
			  .image_seen = on_image_seen,
			  .image_exited = on_image_exited,
			  .hash_executable = on_hash_executable,
			  .exec_input = on_exec_input,
			  .request_received_ns = caller_request_received_ns},
	};

	char error[512];
	recorder->store = store_open(recorder->options.store_path, STORE_READ_WRITE,
				     recorder->options.config->reader_group, error, sizeof(error));
	if (recorder->store == NULL || writer_prepare(recorder, error, sizeof(error)) ||
	    writer_record_session(recorder, error, sizeof(error))) {
		log_error("%s", error);
		return -1;
	}
	/* Opened here, in the daemon: /proc/self is the process that opens it. */
	recorder->proc_fds = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	recorder->hashes = hash_pool_new(2, HASH_QUEUE_CAPACITY, recorder->options.backing_fd);
	recorder->pending_hashes = pending_hashes_new();
	recorder->processes = process_table_new(&table_options);
	if (recorder->hashes == NULL || recorder->pending_hashes == NULL ||
	    recorder->processes == NULL)
		return -1;
	if (pthread_create(&recorder->writer, NULL, writer_main, recorder) != 0)
		return -1;
	recorder->writer_running = true;
	process_table_start(recorder->processes);
	return 0;
}

const struct fs_observer *
recorder_observer(struct recorder *recorder)
{
	return &recorder->observer;
}

/* How long an unmount waits for the hashes of the last versions. */
#define UNMOUNT_HASH_WAIT_MS 3000

/* Wait until the writer has applied everything queued so far. */
static void
writer_flush(struct recorder *recorder)
{
	pthread_mutex_lock(&recorder->queue_lock);
	for (;;) {
		if (recorder->queue_head == NULL && !recorder->writer_busy)
			break;
		boost_writer(recorder); /* someone waits for it */
		recorder->flush_now = true;
		pthread_cond_signal(&recorder->queue_not_empty);
		struct timespec wait = {0};
		clock_gettime(CLOCK_REALTIME, &wait);
		wait.tv_nsec += 10 * 1000000L;
		if (wait.tv_nsec >= 1000000000L) {
			wait.tv_sec++;
			wait.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&recorder->queue_drained, &recorder->queue_lock, &wait);
	}
	pthread_mutex_unlock(&recorder->queue_lock);
}

void
recorder_stop(struct recorder *recorder)
{
	if (recorder == NULL)
		return;
	if (recorder->processes)
		process_table_stop(recorder->processes);
	/* Earlier daemons' leftovers wait for the next one, not the unmount. */
	pending_hashes_stop(recorder->pending_hashes);
	/*
	 * No request comes any more.  The writer commits what is queued, which
	 * hands the last versions to the hash pool, and the pool gets a few
	 * seconds to finish them: a job's output is hashed when its mount
	 * ends.  Hashes still queued after that are not waited for: their
	 * versions stay 'pending' (never wrong), and an unmount takes seconds
	 * whatever the backlog.  Then the writer applies what is queued (what
	 * it submits to the stopped pool is refused at once).
	 */
	if (recorder->writer_running && recorder->hashes) {
		writer_flush(recorder);
		if (hash_pool_drain(recorder->hashes, UNMOUNT_HASH_WAIT_MS))
			writer_flush(recorder); /* the hashes' events */
	}
	if (recorder->hashes) {
		recorder->hashes_completed = hash_pool_completed(recorder->hashes);
		hash_pool_stop(recorder->hashes);
	}
	if (recorder->writer_running) {
		writer_flush(recorder);
		pthread_mutex_lock(&recorder->queue_lock);
		recorder->stopping = true;
		pthread_cond_broadcast(&recorder->queue_not_empty);
		pthread_cond_broadcast(&recorder->queue_not_full);
		pthread_mutex_unlock(&recorder->queue_lock);
		pthread_join(recorder->writer, NULL);
		recorder->writer_running = false;
	}
	if (recorder->hashes) {
		recorder->hashes_completed = hash_pool_completed(recorder->hashes);
		recorder->hashes_refused = hash_pool_refused(recorder->hashes);
		hash_pool_free(recorder->hashes);
		recorder->hashes = NULL;
	}
	pending_hashes_free(recorder->pending_hashes);
	recorder->pending_hashes = NULL;
	if (recorder->store) {
		writer_close_session(recorder);
		writer_finish(recorder);
		store_close(recorder->store);
	}
	process_table_free(recorder->processes);
	/*
	 * Freeing the table hands the opens of an execve still in flight to
	 * their image, which queues events the stopped writer will never take:
	 * they are not recorded, and must not outlive the recorder.
	 */
	while (recorder->queue_head) {
		struct event *next = recorder->queue_head->next;
		event_free(recorder->queue_head);
		recorder->queue_head = next;
	}
	recorder->queue_tail = NULL;
	recorder->queue_length = 0;
	log_debug("file table: %zu file states at unmount (limit %zu); %llu evicted in %llu "
		  "passes",
		  recorder->file_count, recorder->file_table_limit,
		  (unsigned long long)recorder->files_evicted,
		  (unsigned long long)recorder->eviction_passes);
	for (size_t i = 0; i < recorder->file_slot_count; i++) {
		while (recorder->file_slots[i]) {
			struct file_state *file = recorder->file_slots[i];
			recorder->file_slots[i] = file->next;
			detach_known_version(file);
			/*
			 * The version readers wait for and the writers of a version
			 * never completed refer back to the file: break those
			 * cycles, or the file, its versions, accesses and process
			 * images outlive the recorder.
			 */
			struct version *upcoming = file->upcoming;
			struct access **pending = file->pending_writers;
			size_t pending_count = file->pending_count;
			file->upcoming = NULL;
			file->pending_writers = NULL;
			file->pending_count = 0;
			if (upcoming)
				writer_version_forgotten(upcoming); /* its readers refer to it */
			version_release(upcoming);
			for (size_t j = 0; j < pending_count; j++)
				access_release(pending[j]);
			free(pending);
			file_state_release(file);
		}
	}
	free(recorder->file_slots);
	while (recorder->executables) {
		struct executable_hash *next = recorder->executables->next;
		free(recorder->executables);
		recorder->executables = next;
	}
	if (recorder->proc_fds >= 0)
		close(recorder->proc_fds);
	for (size_t i = 0; recorder->directories && i < DIRECTORY_PATH_SLOTS; i++)
		free(recorder->directories[i].path);
	free(recorder->directories);
	pthread_mutex_destroy(&recorder->directories_lock);
	free(recorder->backing_dir);
	free(recorder->mount_point);
	record_rules_free(atomic_load(&recorder->rules)); /* after the process table */
	free(recorder);
}

/* ---- label policy records ----------------------------------------------------- */

void
recorder_policy_record_free(struct recorder_policy_record *record)
{
	if (record == NULL)
		return;
	process_info_release(record->process);
	free(record->path);
	free(record->level);
	free(record->label_source);
	free(record->clearance);
	free(record->grants);
	free(record->operation);
	free(record->revision);
	free(record->reason);
	free(record);
}

void
recorder_record_policy(struct recorder *recorder, struct recorder_policy_record *record)
{
	struct event *event = event_new(EVENT_POLICY);

	event->policy_record = record;
	if (record->time_ns)
		event->time_ns = record->time_ns;
	recorder_enqueue(recorder, event);
}

struct process_table *
recorder_processes(struct recorder *recorder)
{
	return recorder->processes;
}
