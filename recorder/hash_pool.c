/*
 * hash_pool.c - a bounded FIFO of hashing jobs served by a few threads.
 *
 * Modelled on Redis's bio.c: submitting is lock, append, count, signal,
 * unlock.  Three things keep a busy mount from exhausting the daemon (see
 * hash_pool.h): jobs name files by handle, not by descriptor; a table of
 * queued jobs by (device, inode) lets a newer version of a file take the
 * place of an older one still waiting; and the queue has a capacity, past
 * which a job is refused and counted rather than kept.
 *
 * A job that runs reopens its file, hashes it in chunks and checks between
 * chunks whether the pool is stopping, so stopping waits for one chunk, not
 * for a file.  The callback decides what the hash means (the recorder
 * compares stamps and change counters): the pool only reports.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "content_hash.h"
#include "hash_pool.h"

#define DESCRIPTOR_SOURCES_MAX 32 /* sources held as descriptors at once */

/* Sources held as descriptors, daemon-wide: a source may outlive its job. */
static atomic_int descriptor_sources;

struct hash_source {
	int fd;                     /* fallback: a duplicate; -1 with a handle */
	struct file_handle *handle; /* reopened through the pool's mount_fd */
};

struct hash_job {
	dev_t device;
	ino_t inode;
	bool keyed; /* in the table: a newer job for the file replaces it */
	struct hash_source *source;
	int fd; /* unkeyed jobs: the descriptor given */
	hash_done_fn *done;
	void *argument;
	struct hash_job *previous, *next; /* FIFO */
	struct hash_job *chain;           /* table bucket */
};

struct hash_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct hash_job *head, *tail; /* protected by lock */
	struct hash_job **table;      /* queued keyed jobs; protected by lock */
	size_t table_size;
	size_t queued, capacity; /* protected by lock */
	uint64_t backlog;        /* queued + running; protected by lock */
	uint64_t completed;      /* protected by lock */
	atomic_uint_fast64_t refused;
	atomic_bool stopping;
	bool stopped; /* threads joined; protected by lock */
	int mount_fd;
	int mount_id;
	bool handles; /* the backing filesystem gives file handles */
	int thread_count;
	pthread_t threads[];
};

/* ---- sources ------------------------------------------------------------- */

struct hash_source *
hash_source_new(struct hash_pool *pool, int fd)
{
	struct hash_source *source = calloc(1, sizeof(*source));

	if (source == NULL)
		return NULL;
	source->fd = -1;
	if (pool->handles) {
		struct file_handle *handle = malloc(sizeof(*handle) + MAX_HANDLE_SZ);
		int mount_id;
		if (handle) {
			handle->handle_bytes = MAX_HANDLE_SZ;
			if (name_to_handle_at(fd, "", handle, &mount_id, AT_EMPTY_PATH) == 0 &&
			    mount_id == pool->mount_id) {
				source->handle = handle;
				return source;
			}
			free(handle);
		}
	}
	/* No handle (another filesystem below the backing root, or none
	 * supported): a descriptor, while few are held. */
	if (atomic_fetch_add(&descriptor_sources, 1) < DESCRIPTOR_SOURCES_MAX) {
		source->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (source->fd >= 0)
			return source;
	}
	atomic_fetch_sub(&descriptor_sources, 1);
	free(source);
	return NULL;
}

void
hash_source_free(struct hash_source *source)
{
	if (source == NULL)
		return;
	if (source->fd >= 0) {
		close(source->fd);
		atomic_fetch_sub(&descriptor_sources, 1);
	}
	free(source->handle);
	free(source);
}

/* A readable descriptor of the source's file, or -errno. */
static int
source_open(struct hash_pool *pool, struct hash_source *source)
{
	int fd;

	if (source->handle) {
		fd = open_by_handle_at(pool->mount_fd, source->handle,
				       O_RDONLY | O_NOATIME | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return -errno;
	} else {
		char link[32];
		/* Reopen for reading: the duplicate may be write-only.  Hashing
		 * is no access: O_NOATIME leaves atime as the file's users left it. */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", source->fd);
		fd = open(link, O_RDONLY | O_NOATIME | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
		if (fd < 0)
			return -errno;
	}
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	return fd;
}

/* ---- queue --------------------------------------------------------------- */

static size_t
bucket_of(const struct hash_pool *pool, dev_t device, ino_t inode)
{
	uint64_t key = (uint64_t)inode * 0x9e3779b97f4a7c15ULL ^ (uint64_t)device;

	return (size_t)(key ^ (key >> 29)) % pool->table_size;
}

/* Take job out of the FIFO (and the table).  Holds lock. */
static void
unlink_job(struct hash_pool *pool, struct hash_job *job)
{
	if (job->previous)
		job->previous->next = job->next;
	else
		pool->head = job->next;
	if (job->next)
		job->next->previous = job->previous;
	else
		pool->tail = job->previous;
	if (job->keyed) {
		struct hash_job **link = &pool->table[bucket_of(pool, job->device, job->inode)];
		while (*link != job)
			link = &(*link)->chain;
		*link = job->chain;
	}
	pool->queued--;
}

static void
finish_job(struct hash_pool *pool, struct hash_job *job, int result, const char *hex,
	   const struct stat *before, const struct stat *after)
{
	hash_source_free(job->source);
	if (job->fd >= 0)
		close(job->fd);
	job->done(job->argument, result, hex, before, after);
	free(job);
}

/* Hash fd up to limit bytes; -ESHUTDOWN when the pool stops meanwhile. */
static int
hash_fd(struct hash_pool *pool, int fd, off_t limit, char *hex)
{
	return content_hash_fd(fd, limit, &pool->stopping, hex, NULL);
}

static void
run_job(struct hash_pool *pool, struct hash_job *job)
{
	struct stat before = {0}, after = {0};
	char hex[CONTENT_HASH_HEX_LENGTH + 1] = "";
	int fd = job->fd, result = 0;

	if (fd < 0) {
		fd = source_open(pool, job->source);
		if (fd < 0) {
			finish_job(pool, job, fd, NULL, NULL, NULL);
			return;
		}
	} else {
		job->fd = -1; /* closed here */
	}
	if (fstat(fd, &before) < 0)
		result = -errno;
	/* The size at the start bounds the read; a file that grew meanwhile
	 * shows in the stat after, and the callback decides. */
	if (result == 0)
		result = hash_fd(pool, fd, before.st_size, hex);
	if (result == 0 && fstat(fd, &after) < 0)
		result = -errno;
	close(fd);
	if (result < 0)
		finish_job(pool, job, result, NULL, NULL, NULL);
	else
		finish_job(pool, job, 0, hex, &before, &after);
}

static void *
worker_main(void *argument)
{
	struct hash_pool *pool = argument;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-hash");
	pthread_mutex_lock(&pool->lock);
	for (;;) {
		while (pool->head == NULL && !atomic_load(&pool->stopping))
			pthread_cond_wait(&pool->work, &pool->lock);
		if (atomic_load(&pool->stopping))
			break; /* hash_pool_stop cancels what is queued */
		struct hash_job *job = pool->head;
		unlink_job(pool, job);
		pthread_mutex_unlock(&pool->lock);

		run_job(pool, job);

		pthread_mutex_lock(&pool->lock);
		pool->backlog--;
		pool->completed++;
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

struct hash_pool *
hash_pool_new(int thread_count, size_t capacity, int mount_fd)
{
	struct hash_pool *pool = calloc(1, sizeof(*pool) + (size_t)thread_count * sizeof(pthread_t));

	if (pool == NULL)
		return NULL;
	pool->capacity = capacity;
	pool->table_size = capacity > 16 ? capacity : 16;
	pool->table = calloc(pool->table_size, sizeof(*pool->table));
	if (pool->table == NULL) {
		free(pool);
		return NULL;
	}
	/* open_by_handle_at() wants a real descriptor: an O_PATH one is EBADF. */
	pool->mount_fd = mount_fd >= 0 ? openat(mount_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC)
				       : -1;
	struct file_handle *probe = malloc(sizeof(*probe) + MAX_HANDLE_SZ);
	if (probe && pool->mount_fd >= 0) {
		probe->handle_bytes = MAX_HANDLE_SZ;
		pool->handles = name_to_handle_at(pool->mount_fd, "", probe, &pool->mount_id,
						  AT_EMPTY_PATH) == 0;
	}
	free(probe);
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	for (int i = 0; i < thread_count; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
			break;
		pool->thread_count++;
	}
	if (pool->thread_count == 0) {
		if (pool->mount_fd >= 0)
			close(pool->mount_fd);
		free(pool->table);
		free(pool);
		return NULL;
	}
	return pool;
}

/* Queue job, or refuse it at once.  Takes the job. */
static void
submit(struct hash_pool *pool, struct hash_job *job)
{
	struct hash_job *superseded = NULL;
	int refusal = 0;

	pthread_mutex_lock(&pool->lock);
	if (atomic_load(&pool->stopping)) {
		refusal = -ESHUTDOWN;
		goto out;
	}
	if (job->keyed) {
		size_t bucket = bucket_of(pool, job->device, job->inode);
		for (struct hash_job *queued = pool->table[bucket]; queued; queued = queued->chain)
			if (queued->device == job->device && queued->inode == job->inode) {
				superseded = queued;
				unlink_job(pool, queued);
				pool->backlog--;
				break;
			}
	}
	if (pool->queued >= pool->capacity) {
		refusal = -EBUSY;
		goto out;
	}
	job->previous = pool->tail;
	job->next = NULL;
	if (pool->tail)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	if (job->keyed) {
		size_t bucket = bucket_of(pool, job->device, job->inode);
		job->chain = pool->table[bucket];
		pool->table[bucket] = job;
	}
	pool->queued++;
	pool->backlog++;
	pthread_cond_signal(&pool->work);
out:
	pthread_mutex_unlock(&pool->lock);
	if (superseded)
		finish_job(pool, superseded, -ECANCELED, NULL, NULL, NULL);
	if (refusal) {
		if (refusal == -EBUSY)
			atomic_fetch_add(&pool->refused, 1);
		finish_job(pool, job, refusal, NULL, NULL, NULL);
	}
}

void
hash_pool_submit_source(struct hash_pool *pool, dev_t device, ino_t inode,
			struct hash_source *source, hash_done_fn *done, void *argument)
{
	struct hash_job *job;

	if (source == NULL || (job = calloc(1, sizeof(*job))) == NULL) {
		hash_source_free(source);
		atomic_fetch_add(&pool->refused, 1);
		done(argument, -EBUSY, NULL, NULL, NULL);
		return;
	}
	*job = (struct hash_job){.device = device, .inode = inode, .keyed = true,
				 .source = source, .fd = -1, .done = done, .argument = argument};
	submit(pool, job);
}

void
hash_pool_submit(struct hash_pool *pool, int fd, hash_done_fn *done, void *argument)
{
	struct hash_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		close(fd);
		done(argument, -ENOMEM, NULL, NULL, NULL);
		return;
	}
	*job = (struct hash_job){.fd = fd, .done = done, .argument = argument};
	submit(pool, job);
}

uint64_t
hash_pool_backlog(struct hash_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	uint64_t backlog = pool->backlog;
	pthread_mutex_unlock(&pool->lock);
	return backlog;
}

uint64_t
hash_pool_completed(struct hash_pool *pool)
{
	pthread_mutex_lock(&pool->lock);
	uint64_t completed = pool->completed;
	pthread_mutex_unlock(&pool->lock);
	return completed;
}

uint64_t
hash_pool_refused(struct hash_pool *pool)
{
	return atomic_load(&pool->refused);
}

bool
hash_pool_drain(struct hash_pool *pool, int timeout_ms)
{
	/*
	 * Polled: this runs once, at unmount, and a job ends in milliseconds.
	 * The clock, not the count of pauses, says when time is up: on a
	 * loaded machine a 10 ms pause lasts two or three times that, and a
	 * 3 s wait behind two huge hashes grew to 9 s (lineage_integrity.bats
	 * "unmount in seconds").
	 */
	const struct timespec pause = {.tv_nsec = 10 * 1000000L};
	int64_t deadline = monotonic_ns() + (int64_t)timeout_ms * 1000000;

	for (;;) {
		if (hash_pool_backlog(pool) == 0)
			return true;
		if (monotonic_ns() >= deadline)
			return false;
		nanosleep(&pause, NULL);
	}
}

void
hash_pool_stop(struct hash_pool *pool)
{
	struct hash_job *cancelled;

	pthread_mutex_lock(&pool->lock);
	if (pool->stopped) {
		pthread_mutex_unlock(&pool->lock);
		return;
	}
	atomic_store(&pool->stopping, true);
	cancelled = pool->head;
	pool->head = pool->tail = NULL;
	memset(pool->table, 0, pool->table_size * sizeof(*pool->table));
	pool->backlog -= pool->queued;
	pool->queued = 0;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	while (cancelled) {
		struct hash_job *next = cancelled->next;
		finish_job(pool, cancelled, -ESHUTDOWN, NULL, NULL, NULL);
		cancelled = next;
	}
	for (int i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_mutex_lock(&pool->lock);
	pool->stopped = true;
	pthread_mutex_unlock(&pool->lock);
}

void
hash_pool_free(struct hash_pool *pool)
{
	if (pool == NULL)
		return;
	hash_pool_stop(pool);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	if (pool->mount_fd >= 0)
		close(pool->mount_fd);
	free(pool->table);
	free(pool);
}
