/*
 * test_proc_reader.c - reads through the memory reader give what a direct
 * read gives, name what went wrong, and hold up under concurrent callers.
 * A read held past its deadline needs a process that keeps its memory
 * from us: hardening.bats has real ones, through a real mount.  Here a
 * pipe with a writer and no data stands in for one (/proc/self/fd/N of
 * its read end: the reader sleeps in read() until the writer closes), to
 * count late reads and refusals exactly.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "proc_reader.h"
#include "unit_check.h"

static char *
read_directly(const char *path, size_t *length)
{
	char *buffer = calloc(1, 1 << 16);
	int fd = open(path, O_RDONLY);
	ssize_t count = fd >= 0 ? read(fd, buffer, (1 << 16) - 1) : -1;

	if (fd >= 0)
		close(fd);
	*length = count > 0 ? (size_t)count : 0;
	return buffer;
}

struct worker {
	struct proc_reader *reader;
	int reads, good;
};

static void *
read_many(void *argument)
{
	struct worker *worker = argument;

	for (int i = 0; i < worker->reads; i++) {
		size_t length = 0;
		char *content = proc_reader_read(worker->reader, getpid(), getuid(), "cmdline",
		                                 1 << 20, &length);
		if (content && length > 0 && strstr(content, "unit-proc_reader"))
			worker->good++;
		free(content);
	}
	return NULL;
}

static double
seconds_now(void)
{
	return (double)monotonic_ns() / 1e9;
}

/*
 * A stand-in for a process that keeps its memory from us: a read of name
 * (fd/N of a pipe's read end, under /proc/self) sleeps until the pipe's
 * writer, ends[1], is closed.
 */
struct held_read {
	int ends[2];
	char name[16];
};

static bool
hold_read(struct held_read *held)
{
	if (pipe(held->ends) < 0)
		return false;
	snprintf(held->name, sizeof(held->name), "fd/%d", held->ends[0]);
	return true;
}

/* 0 when a read of the caller's own /proc/self/name gives content, else its errno. */
static int
read_error(struct proc_reader *reader, uid_t owner, const char *name)
{
	size_t length;

	errno = 0;
	char *content = proc_reader_read(reader, getpid(), owner, name, 4096, &length);
	int error = content ? 0 : errno;
	free(content);
	return error;
}

/*
 * Late reads are counted per owner and in all: a fifth late read of one
 * user's processes, and any read once every reader is taken, is refused at
 * once; when the late reads end, reads are served again.
 */
static void
test_late_reads_and_refusals(void)
{
	struct proc_reader *reader = proc_reader_new(50);
	struct held_read held;
	size_t length;

	CHECK(reader != NULL && hold_read(&held));
	for (uid_t owner = 1000; owner < 1008; owner++) {
		for (int i = 0; i < 4; i++) {
			CHECK(read_error(reader, owner, held.name) == ETIMEDOUT);
		}
		/* A fifth of the same owner's: refused, not waited for. */
		double started = seconds_now();
		CHECK(read_error(reader, owner, held.name) == EAGAIN);
		CHECK(seconds_now() - started < 0.04);
	}
	CHECK(proc_reader_stuck(reader) == 32);
	/* Every reader taken: another user's good read is refused at once. */
	double started = seconds_now();
	CHECK(read_error(reader, 2000, "cmdline") == EAGAIN);
	CHECK(seconds_now() - started < 0.04);

	/* The writer goes: every late read ends, and reads are served again. */
	close(held.ends[1]);
	for (int i = 0; i < 200 && proc_reader_stuck(reader) > 0; i++)
		usleep(10000);
	CHECK(proc_reader_stuck(reader) == 0);
	char *content = NULL;
	for (int i = 0; i < 20 && content == NULL; i++) /* 50 ms each, on a busy machine */
		content = proc_reader_read(reader, getpid(), 1000, "cmdline", 4096, &length);
	CHECK(content != NULL && length > 0);
	free(content);
	close(held.ends[0]);
	proc_reader_free(reader);
}

/* The threads of this process, from /proc/self/status. */
static int
thread_count(void)
{
	char line[256];
	int threads = -1;
	FILE *status = fopen("/proc/self/status", "r");

	while (status && fgets(line, sizeof(line), status))
		if (sscanf(line, "Threads: %d", &threads) == 1)
			break;
	if (status)
		fclose(status);
	return threads;
}

/*
 * Freed while a read is late (the daemon unmounts while a process still
 * keeps its memory from us): the free returns without waiting for it, and
 * the late reader, once its read ends, frees what is left and exits.  The
 * sanitizer build sees a leak or a use after free if it does not.
 */
static void
test_freed_while_late(void)
{
	/* The readers of the tests before may still be on their way out. */
	for (int i = 0; i < 300 && thread_count() > 1; i++)
		usleep(10000);
	int before = thread_count();
	CHECK(before == 1);
	struct proc_reader *reader = proc_reader_new(50);
	struct held_read held;

	CHECK(reader != NULL && hold_read(&held));
	CHECK(read_error(reader, 1000, held.name) == ETIMEDOUT);
	CHECK(proc_reader_stuck(reader) == 1);
	double started = seconds_now();
	proc_reader_free(reader);
	CHECK(seconds_now() - started < 1.0);
	CHECK(thread_count() == before + 1); /* the late reader, still asleep */
	close(held.ends[1]);
	for (int i = 0; i < 300 && thread_count() > before; i++)
		usleep(10000);
	CHECK(thread_count() == before);
	close(held.ends[0]);
}

int
main(void)
{
	struct proc_reader *reader = proc_reader_new(2000);
	size_t length = 0, expected_length = 0;
	char *content, *expected;

	CHECK(reader != NULL);

	/* The same bytes as a direct read, NUL-terminated, with their length. */
	expected = read_directly("/proc/self/cmdline", &expected_length);
	content = proc_reader_read(reader, getpid(), getuid(), "cmdline", 1 << 20, &length);
	CHECK(content != NULL);
	CHECK(length == expected_length && length > 0);
	CHECK(content && memcmp(content, expected, length) == 0 && content[length] == '\0');
	free(content);
	free(expected);

	/* At most limit bytes. */
	content = proc_reader_read(reader, getpid(), getuid(), "maps", 4096, &length);
	CHECK(content != NULL && length > 0 && length <= 4096 && strlen(content) == length);
	free(content);

	/* A process that is gone: NULL with ENOENT, nothing counted late. */
	errno = 0;
	content = proc_reader_read(reader, 0x3ffffff0, 0, "environ", 1 << 20, &length);
	CHECK(content == NULL && errno == ENOENT);
	CHECK(proc_reader_stuck(reader) == 0);

	/* Sixteen callers at once: every read answered. */
	pthread_t threads[16];
	struct worker workers[16];
	for (int i = 0; i < 16; i++) {
		workers[i] = (struct worker){.reader = reader, .reads = 50};
		pthread_create(&threads[i], NULL, read_many, &workers[i]);
	}
	for (int i = 0; i < 16; i++) {
		pthread_join(threads[i], NULL);
		CHECK(workers[i].good == workers[i].reads);
	}
	CHECK(proc_reader_stuck(reader) == 0);
	proc_reader_free(reader);

	test_late_reads_and_refusals();
	test_freed_while_late();

	/* Freed with no read ever made. */
	proc_reader_free(proc_reader_new(10));
	return failures ? 1 : 0;
}
