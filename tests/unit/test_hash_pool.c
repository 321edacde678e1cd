/*
 * test_hash_pool.c - the hash pool's bounds, and what a finished hash means.
 *
 * The pool: a newer job for a file takes the place of the queued one
 * (-ECANCELED), a full queue refuses at once (-EBUSY, counted), a job
 * reaches its file by handle after the descriptor it came from is closed,
 * and stopping cancels the queue (-ESHUTDOWN) without hashing it.
 * hash_outcome(): identical stamps are not enough when the file's change
 * counter moved or a writer is open (timestamps may be coarse).
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash_pool.h"
#include "../../recorder/recorder_i.h"

struct outcome {
	pthread_mutex_t lock;
	pthread_cond_t done;
	int finished;
	int results[64];
	char hex[64][33];
};

static struct outcome outcome = {.lock = PTHREAD_MUTEX_INITIALIZER, .done = PTHREAD_COND_INITIALIZER};

static void
record(void *argument, int result, const char *hex, const struct stat *before,
       const struct stat *after)
{
	int slot = (int)(intptr_t)argument;

	pthread_mutex_lock(&outcome.lock);
	outcome.results[slot] = result;
	if (hex)
		snprintf(outcome.hex[slot], sizeof(outcome.hex[slot]), "%s", hex);
	outcome.finished++;
	pthread_cond_broadcast(&outcome.done);
	pthread_mutex_unlock(&outcome.lock);
}

static void
wait_finished(int count)
{
	pthread_mutex_lock(&outcome.lock);
	while (outcome.finished < count)
		pthread_cond_wait(&outcome.done, &outcome.lock);
	pthread_mutex_unlock(&outcome.lock);
}

static int
make_file(const char *directory, const char *name, off_t sparse_size, const char *content)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", directory, name);
	int fd = open(path, O_CREAT | O_RDWR | O_TRUNC, 0600);
	assert(fd >= 0);
	if (sparse_size)
		assert(ftruncate(fd, sparse_size) == 0);
	if (content)
		assert(write(fd, content, strlen(content)) == (ssize_t)strlen(content));
	return fd;
}

static void
submit_file(struct hash_pool *pool, int fd, int slot)
{
	struct stat st;
	assert(fstat(fd, &st) == 0);
	struct hash_source *source = hash_source_new(pool, fd);
	assert(source != NULL);
	close(fd); /* the job holds no descriptor of it */
	hash_pool_submit_source(pool, st.st_dev, st.st_ino, source, record, (void *)(intptr_t)slot);
}

static void
test_pool(const char *directory)
{
	int root = open(directory, O_PATH | O_DIRECTORY);
	assert(root >= 0);
	/* One thread, room for three queued jobs. */
	struct hash_pool *pool = hash_pool_new(1, 3, root);
	assert(pool);

	/* Slot 0 keeps the thread busy (a huge sparse file). */
	submit_file(pool, make_file(directory, "big", (off_t)200 << 30, NULL), 0);
	usleep(100 * 1000);
	/* Slots 1 and 2: the same file; 2 supersedes 1. */
	submit_file(pool, make_file(directory, "a", 0, "one"), 1);
	submit_file(pool, make_file(directory, "a", 0, "two"), 2);
	wait_finished(1);
	assert(outcome.results[1] == -ECANCELED);
	/* Slots 3, 4: two more files fill the queue (3 queued: a, b, c). */
	submit_file(pool, make_file(directory, "b", 0, "bee"), 3);
	submit_file(pool, make_file(directory, "c", 0, "sea"), 4);
	/* Slot 5: refused at once, counted. */
	submit_file(pool, make_file(directory, "d", 0, "dee"), 5);
	wait_finished(2);
	assert(outcome.results[5] == -EBUSY);
	assert(hash_pool_refused(pool) == 1);
	/* Stop: the big file is interrupted, the queue cancelled unhashed. */
	hash_pool_stop(pool);
	wait_finished(6);
	assert(outcome.results[0] == -ESHUTDOWN);
	assert(outcome.results[2] == -ESHUTDOWN);
	assert(outcome.results[3] == -ESHUTDOWN);
	assert(outcome.results[4] == -ESHUTDOWN);
	hash_pool_free(pool);

	/* A job reopens its file by handle and hashes it (xxhsum -H2 of "hello\n"). */
	outcome.finished = 0;
	pool = hash_pool_new(1, 8, root);
	submit_file(pool, make_file(directory, "e", 0, "hello\n"), 6);
	wait_finished(1);
	assert(outcome.results[6] == 0);
	assert(strcmp(outcome.hex[6], "6bba86c7e069f56d5a10b435f1c8e49c") == 0);
	hash_pool_free(pool);
	close(root);
}

static void
test_outcome(void)
{
	struct stat st = {.st_size = 3, .st_ino = 7};
	st.st_mtim.tv_sec = 100;
	st.st_ctim.tv_sec = 100;
	struct stamp stamp = {.size = 3, .mtime_ns = 100000000000LL, .ctime_ns = 100000000000LL,
			      .inode = 7};
	struct file_state file = {0};
	pthread_mutex_init(&file.lock, NULL);

	file.changes = 5;
	assert(strcmp(hash_outcome(0, &stamp, &st, &st, &file, 5), "hashed") == 0);
	/* Same stamps, but written again through the mount (one timestamp tick). */
	assert(strcmp(hash_outcome(0, &stamp, &st, &st, &file, 4), "changed") == 0);
	/* Same counter, but a writer is open: a write may be in flight. */
	file.writers = 1;
	assert(strcmp(hash_outcome(0, &stamp, &st, &st, &file, 5), "changed") == 0);
	file.writers = 0;
	/* Stamps that moved: changed outside the mount. */
	struct stat later = st;
	later.st_mtim.tv_sec = 101;
	assert(strcmp(hash_outcome(0, &stamp, &st, &later, &file, 5), "changed") == 0);
	assert(strcmp(hash_outcome(-ECANCELED, &stamp, NULL, NULL, &file, 5), "changed") == 0);
	assert(strcmp(hash_outcome(-EBUSY, &stamp, NULL, NULL, &file, 5), "unhashed") == 0);
	assert(strcmp(hash_outcome(-ESTALE, &stamp, NULL, NULL, &file, 5), "failed") == 0);
	assert(hash_outcome(-ESHUTDOWN, &stamp, NULL, NULL, &file, 5) == NULL);
	pthread_mutex_destroy(&file.lock);
}

int
main(void)
{
	char directory[] = "/tmp/provfs-unit-hash.XXXXXX";
	assert(mkdtemp(directory));
	test_outcome();
	test_pool(directory);
	char command[256];
	snprintf(command, sizeof(command), "rm -rf '%s'", directory);
	assert(system(command) == 0);
	printf("hash pool: ok\n");
	return 0;
}
