/*
 * test_proc_reader.c - reads through the memory reader give what a direct
 * read gives, name what went wrong, and hold up under concurrent callers.
 * (A read held past its deadline needs a process that keeps its memory
 * from us: hardening.bats has one, through a real mount.)
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

	/* Freed with no read ever made. */
	proc_reader_free(proc_reader_new(10));
	return failures ? 1 : 0;
}
