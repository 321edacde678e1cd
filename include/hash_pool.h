/*
 * hash_pool.h - background threads that hash whole files.
 *
 * Hashing a file can take seconds; no FUSE request may wait for it.  The
 * pool is bounded in every resource a busy mount could exhaust:
 *
 *   - A queued job holds no descriptor.  It names its file by a hash_source:
 *     a file handle (name_to_handle_at) that the job reopens when it runs,
 *     or, on a filesystem without file handles, one of a few descriptors.
 *   - At most one queued job per file: a newer job for the same device and
 *     inode supersedes the queued one, whose bytes are gone anyway.
 *   - The queue has a fixed capacity; a job that does not fit is refused
 *     at once and counted (the version stays unhashed, and says so).
 *   - Stopping cancels what is queued and interrupts what runs, so an
 *     unmount never waits for a backlog.
 *
 * Every job's callback runs exactly once, with result
 *   0            hex set; before/after: fstat around the read
 *   -ECANCELED   a newer job for the same file took its place
 *   -EBUSY       the queue was full (or no source): not hashed
 *   -ESHUTDOWN   the pool stopped first: nothing is known
 *   other -errno the file could not be reopened or read
 * on a pool thread, or on the submitter's thread when refused at once.
 */
#ifndef PROVFS_HASH_POOL_H
#define PROVFS_HASH_POOL_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>

struct hash_pool;
struct hash_source;

typedef void hash_done_fn(void *argument, int result, const char *hex,
			  const struct stat *before, const struct stat *after);

/*
 * thread_count threads, at most capacity queued jobs.  mount_fd (borrowed,
 * may be O_PATH) is any descriptor on the backing filesystem: file handles
 * of that mount are reopened through it.
 */
struct hash_pool *hash_pool_new(int thread_count, size_t capacity, int mount_fd);

/*
 * How to reach the file open as fd later, without keeping fd: its file
 * handle, or a duplicate of fd while few are held.  NULL when neither.
 * Cheap (one system call), callable on the request path.
 */
struct hash_source *hash_source_new(struct hash_pool *pool, int fd);
void hash_source_free(struct hash_source *source);

/*
 * Queue a job hashing the file (device, inode) reached through source
 * (taken; NULL means "no way to reach it": refused with -EBUSY).  Never
 * blocks.
 */
void hash_pool_submit_source(struct hash_pool *pool, dev_t device, ino_t inode,
			     struct hash_source *source, hash_done_fn *done, void *argument);

/* Queue a job on an open descriptor (taken), never superseded. */
void hash_pool_submit(struct hash_pool *pool, int fd, hash_done_fn *done, void *argument);

/* Jobs queued or running; jobs finished; jobs refused (queue full, no source). */
uint64_t hash_pool_backlog(struct hash_pool *pool);
uint64_t hash_pool_completed(struct hash_pool *pool);
uint64_t hash_pool_refused(struct hash_pool *pool);

/*
 * Wait until no job is queued or running, or timeout_ms passed; true when
 * the pool is idle.  Jobs may still be submitted meanwhile.
 */
bool hash_pool_drain(struct hash_pool *pool, int timeout_ms);

/*
 * Cancel every queued job (-ESHUTDOWN), interrupt running ones, wait for
 * the threads.  Later submissions are refused with -ESHUTDOWN.  Returns
 * within a read of one chunk per thread.
 */
void hash_pool_stop(struct hash_pool *pool);

/* Stop (if not yet) and free the pool. */
void hash_pool_free(struct hash_pool *pool);

#endif
