/*
 * memory_holder.c - a caller that keeps its memory from other processes
 * (hardening.bats).  One thread reads its own memory through
 * /proc/self/mem where a file of a FUSE filesystem that will not answer is
 * mapped, which holds its mmap lock for reading; a second asks for the
 * lock for writing (mmap), which queues every later reader behind it, as
 * provfs's read of /proc/PID/cmdline.  Then it opens a file of the mount
 * under test.
 *
 * Usage: memory_holder STALL_FILE TARGET
 * Prints "ready" once STALL_FILE is mapped.  On a line on stdin, holds its
 * memory, opens TARGET and prints "opened MS" (milliseconds the open took)
 * or "failed ERRNO"; then keeps its memory held until stdin ends.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static char *stalled;
static int go_reader[2], go_writer[2];

static void *
read_own_memory(void *unused)
{
	char byte;
	int fd;

	(void)unused;
	if (read(go_reader[0], &byte, 1) != 1)
		return NULL;
	fd = open("/proc/self/mem", O_RDONLY);
	if (fd >= 0 && pread(fd, &byte, 1, (off_t)(unsigned long)stalled) < 0)
		perror("pread");
	return NULL;
}

static void *
ask_to_write(void *unused)
{
	char byte;

	(void)unused;
	if (read(go_writer[0], &byte, 1) == 1)
		mmap(NULL, 1 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return NULL;
}

static long
milliseconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

int
main(int argc, char **argv)
{
	pthread_t reader, writer;
	char target[4096];
	int fd;

	if (argc != 3) {
		fprintf(stderr, "usage: memory_holder STALL_FILE TARGET\n");
		return 2;
	}
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		perror(argv[1]);
		return 2;
	}
	stalled = mmap(NULL, 65536, PROT_READ, MAP_SHARED, fd, 0);
	if (stalled == MAP_FAILED || pipe(go_reader) < 0 || pipe(go_writer) < 0) {
		perror("memory_holder");
		return 2;
	}
	snprintf(target, sizeof(target), "%s", argv[2]);
	/* Threads first: their stacks are mappings, which need the lock.  So
	 * does any first touch of a page once the lock is held, so the code
	 * and data used after that are touched now (and it is linked with
	 * -z now: no lazy binding). */
	pthread_create(&reader, NULL, read_own_memory, NULL);
	pthread_create(&writer, NULL, ask_to_write, NULL);
	long start = milliseconds();
	printf("ready\n");
	fflush(stdout);
	if (getchar() == EOF)
		return 2;
	if (write(go_reader[1], "x", 1) != 1)
		return 2;
	usleep(200000);
	if (write(go_writer[1], "x", 1) != 1)
		return 2;
	usleep(200000);
	start = milliseconds();
	fd = open(target, O_RDONLY);
	if (fd < 0)
		printf("failed %d\n", errno);
	else
		printf("opened %ld\n", milliseconds() - start);
	fflush(stdout);
	while (getchar() != EOF)
		;
	_exit(0);
}
