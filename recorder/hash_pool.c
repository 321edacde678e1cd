/*
 * hash_pool.c - a FIFO of hashing jobs served by a few threads.
 *
 * Modelled on Redis's bio.c: submitting is lock, append, count, signal,
 * unlock.  The queue is unbounded because a job is a few words and every
 * job stands for a file version that must get its hash; the backlog is
 * visible in provfs-query stats.
 */
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "content_hash.h"
#include "hash_pool.h"

struct hash_job {
	int fd;
	hash_done_fn *done;
	void *argument;
	struct hash_job *next;
};

struct hash_pool {
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct hash_job *head, *tail; /* protected by lock */
	uint64_t backlog;             /* queued + running; protected by lock */
	uint64_t completed;
	bool stopping;
	int thread_count;
	pthread_t threads[];
};

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
		while (pool->head == NULL && !pool->stopping)
			pthread_cond_wait(&pool->work, &pool->lock);
		struct hash_job *job = pool->head;
		if (job == NULL)
			break; /* stopping and drained */
		pool->head = job->next;
		if (pool->head == NULL)
			pool->tail = NULL;
		pthread_mutex_unlock(&pool->lock);

		struct stat before = {0}, after = {0};
		char hex[CONTENT_HASH_HEX_LENGTH + 1] = "";
		/* Hashing is no access: read through a description of our own
		 * with O_NOATIME, so the file's atime stays as its users left it
		 * (the job's descriptor may share a caller's open handle). */
		char link[32];
		snprintf(link, sizeof(link), "/proc/self/fd/%d", job->fd);
		int own_fd = open(link, O_RDONLY | O_NOATIME | O_CLOEXEC);
		if (own_fd >= 0) {
			close(job->fd);
			job->fd = own_fd;
		}
		int result = fstat(job->fd, &before) < 0 ? -1 : 0;
		if (result == 0)
			/* The size at the start bounds the read; a file that grew
			 * meanwhile shows in the stat after, and the caller decides. */
			result = content_hash_fd(job->fd, before.st_size, hex, NULL);
		fstat(job->fd, &after);
		close(job->fd);
		job->done(job->argument, result, hex, &before, &after);
		free(job);

		pthread_mutex_lock(&pool->lock);
		pool->backlog--;
		pool->completed++;
	}
	pthread_mutex_unlock(&pool->lock);
	return NULL;
}

struct hash_pool *
hash_pool_new(int thread_count)
{
	struct hash_pool *pool = calloc(1, sizeof(*pool) + (size_t)thread_count * sizeof(pthread_t));

	if (pool == NULL)
		return NULL;
	pthread_mutex_init(&pool->lock, NULL);
	pthread_cond_init(&pool->work, NULL);
	for (int i = 0; i < thread_count; i++) {
		if (pthread_create(&pool->threads[i], NULL, worker_main, pool) != 0)
			break;
		pool->thread_count++;
	}
	if (pool->thread_count == 0) {
		free(pool);
		return NULL;
	}
	return pool;
}

void
hash_pool_submit(struct hash_pool *pool, int fd, hash_done_fn *done, void *argument)
{
	struct hash_job *job = malloc(sizeof(*job));

	if (job == NULL) {
		close(fd);
		done(argument, -12 /* -ENOMEM */, NULL, NULL, NULL);
		return;
	}
	*job = (struct hash_job){.fd = fd, .done = done, .argument = argument};
	pthread_mutex_lock(&pool->lock);
	if (pool->tail)
		pool->tail->next = job;
	else
		pool->head = job;
	pool->tail = job;
	pool->backlog++;
	pthread_cond_signal(&pool->work);
	pthread_mutex_unlock(&pool->lock);
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

void
hash_pool_free(struct hash_pool *pool)
{
	if (pool == NULL)
		return;
	pthread_mutex_lock(&pool->lock);
	pool->stopping = true;
	pthread_cond_broadcast(&pool->work);
	pthread_mutex_unlock(&pool->lock);
	for (int i = 0; i < pool->thread_count; i++)
		pthread_join(pool->threads[i], NULL);
	pthread_cond_destroy(&pool->work);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}
