/*
 * hash_pool.h - background threads that hash whole files.
 *
 * Hashing a file can take seconds; no FUSE request may wait for it.  A job
 * gives the pool an open descriptor (the pool closes it) and a callback.
 * The pool checks that the file did not change while it was read: the
 * callback gets the stat before and after, and decides.
 */
#ifndef PROVFS_HASH_POOL_H
#define PROVFS_HASH_POOL_H

#include <stdint.h>
#include <sys/stat.h>

struct hash_pool;

/* result: 0 and hex set, or -errno; before/after: fstat around the read. */
typedef void hash_done_fn(void *argument, int result, const char *hex,
			  const struct stat *before, const struct stat *after);

struct hash_pool *hash_pool_new(int thread_count);

/* Queue a job; takes ownership of fd.  Never blocks. */
void hash_pool_submit(struct hash_pool *pool, int fd, hash_done_fn *done, void *argument);

/* Jobs queued or running. */
uint64_t hash_pool_backlog(struct hash_pool *pool);
uint64_t hash_pool_completed(struct hash_pool *pool);

/* Finish every queued job, then stop the threads and free the pool. */
void hash_pool_free(struct hash_pool *pool);

#endif
