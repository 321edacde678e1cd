/*
 * proc_reader.c - reads of /proc/PID/{cmdline,environ,maps} on threads a
 * caller can leave behind (see proc_reader.h for why).
 *
 * HOW
 *
 * A caller hands its job to an idle reader, which it first moves to its
 * own CPU, and waits on job_done until the job is done or its deadline
 * passes.  On the caller's CPU the reader is woken without waking the
 * other CPU, which on a VM can cost more than the read itself; so a read
 * costs about 30 us more than a direct one on this project's 2-core VM
 * (2,000 reads of /proc/PID/cmdline, 100 us apart).  A reader is started when none is
 * idle, up to READERS_MAX, and they stay (a read is cheap, a thread start
 * is not).  A job left behind is marked abandoned: its reader frees it
 * when its read returns, and until then it counts against its owner.
 *
 * LOCKS
 *   lock  the idle readers, every job's state, the counters and the late
 *         reads by owner; held over memory, pthread_setaffinity_np() and
 *         the start of a reader, never over a read of /proc.
 *
 * Lifetime: readers are detached.  proc_reader_free() wakes the idle ones
 * and waits for them to leave; one asleep in a late read cannot be woken,
 * so the last reader to leave frees the struct when free() could not.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "proc_reader.h"

#define READERS_MAX 32            /* threads, late ones included */
#define STUCK_PER_OWNER 4         /* late reads of one user's processes before refusals */
#define READER_STACK (128 * 1024) /* a reader only opens, reads and allocates */
#define FREE_WAIT_MS 2000         /* proc_reader_free() waits this long for idle readers */

struct read_job {
	pid_t pid;
	uid_t owner;
	char name[16];
	size_t limit;
	bool done;
	bool abandoned; /* its caller left at the deadline */
	char *content;
	size_t length;
	int error;
};

struct reader_thread {
	struct proc_reader *reader;
	pthread_t thread;
	pthread_cond_t wake;
	struct read_job *job; /* NULL: idle */
	struct reader_thread *next_idle;
};

struct late_owner {
	uid_t owner;
	unsigned int count;
};

struct proc_reader {
	pthread_mutex_t lock;
	pthread_cond_t job_done;    /* callers wait for theirs (broadcast) */
	pthread_cond_t left;        /* proc_reader_free() waits for readers to leave */
	struct reader_thread *idle; /* a stack */
	unsigned int threads, stuck;
	struct late_owner late[READERS_MAX]; /* one late read per reader at most */
	bool stopping;
	bool orphaned; /* freed while a reader was asleep: the last reader frees */
	int deadline_ms;
};

static struct timespec
deadline_in(int milliseconds)
{
	int64_t at = monotonic_ns() + (int64_t)milliseconds * 1000000;

	return (struct timespec){.tv_sec = at / 1000000000, .tv_nsec = at % 1000000000};
}

char *
proc_file_read(pid_t pid, const char *name, size_t limit, size_t *length)
{
	char path[64];
	size_t size = 0, capacity = 4096;
	char *buffer;
	int fd, error = 0;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	buffer = malloc(capacity + 1);
	if (buffer == NULL) {
		close(fd);
		errno = ENOMEM;
		return NULL;
	}
	for (;;) {
		if (size == capacity) {
			if (capacity >= limit)
				break;
			char *grown = realloc(buffer, capacity * 2 + 1);
			if (grown == NULL)
				break;
			buffer = grown;
			capacity *= 2;
		}
		ssize_t count = read(fd, buffer + size, capacity - size);
		if (count < 0) {
			error = errno;
			break;
		}
		if (count == 0)
			break;
		size += (size_t)count;
	}
	close(fd);
	if (error && size == 0) {
		free(buffer);
		errno = error;
		return NULL;
	}
	buffer[size] = '\0';
	if (length)
		*length = size;
	return buffer;
}

static struct late_owner *
late_owner_of(struct proc_reader *reader, uid_t owner)
{
	for (int i = 0; i < READERS_MAX; i++)
		if (reader->late[i].count && reader->late[i].owner == owner)
			return &reader->late[i];
	return NULL;
}

static void
count_late(struct proc_reader *reader, uid_t owner)
{
	struct late_owner *entry = late_owner_of(reader, owner);

	for (int i = 0; entry == NULL && i < READERS_MAX; i++)
		if (reader->late[i].count == 0)
			entry = &reader->late[i], entry->owner = owner;
	if (entry) /* always: a late read holds a reader, and there are READERS_MAX */
		entry->count++;
	reader->stuck++;
}

static void
uncount_late(struct proc_reader *reader, uid_t owner)
{
	struct late_owner *entry = late_owner_of(reader, owner);

	if (entry)
		entry->count--;
	reader->stuck--;
}

static void
reader_destroy(struct proc_reader *reader)
{
	pthread_mutex_destroy(&reader->lock);
	pthread_cond_destroy(&reader->job_done);
	pthread_cond_destroy(&reader->left);
	free(reader);
}

static void *
reader_main(void *argument)
{
	struct reader_thread *self = argument;
	struct proc_reader *reader = self->reader;

	/* Started from a request thread, it took that thread's filesystem ids,
	 * which may be the ones passthrough registrations use (caller.h): the
	 * permission checks of /proc (ptrace's, by fsuid and fsgid) are the
	 * daemon's own. */
	setfsuid(geteuid());
	setfsgid(getegid());
	pthread_mutex_lock(&reader->lock);
	for (;;) {
		while (self->job == NULL && !reader->stopping)
			pthread_cond_wait(&self->wake, &reader->lock);
		struct read_job *job = self->job;
		if (job == NULL)
			break; /* stopping: proc_reader_free() emptied the idle stack */
		pthread_mutex_unlock(&reader->lock);

		size_t length = 0;
		char *content = proc_file_read(job->pid, job->name, job->limit, &length);
		int error = content ? 0 : errno;

		pthread_mutex_lock(&reader->lock);
		self->job = NULL;
		if (job->abandoned) {
			uncount_late(reader, job->owner);
			free(content);
			free(job);
		} else {
			job->content = content;
			job->length = length;
			job->error = error;
			job->done = true;
			pthread_cond_broadcast(&reader->job_done);
		}
		if (reader->stopping)
			break;
		self->next_idle = reader->idle;
		reader->idle = self;
	}
	reader->threads--;
	bool last_of_orphaned = reader->orphaned && reader->threads == 0;
	pthread_cond_broadcast(&reader->left);
	pthread_mutex_unlock(&reader->lock);
	pthread_cond_destroy(&self->wake);
	free(self);
	if (last_of_orphaned)
		reader_destroy(reader);
	return NULL;
}

/* A reader for a job, on this CPU: an idle one, or a new one; under lock.
 * NULL when every reader is taken and no more may start. */
static struct reader_thread *
take_reader(struct proc_reader *reader)
{
	struct reader_thread *taken = reader->idle;
	int cpu = sched_getcpu();
	cpu_set_t here;

	CPU_ZERO(&here);
	if (cpu >= 0)
		CPU_SET(cpu, &here);
	if (taken) {
		reader->idle = taken->next_idle;
		if (cpu >= 0)
			pthread_setaffinity_np(taken->thread, sizeof(here), &here);
		return taken;
	}
	if (reader->threads >= READERS_MAX || (taken = calloc(1, sizeof(*taken))) == NULL)
		return NULL;
	taken->reader = reader;
	pthread_cond_init(&taken->wake, NULL);

	pthread_attr_t attributes;
	pthread_attr_init(&attributes);
	pthread_attr_setdetachstate(&attributes, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attributes, READER_STACK);
	if (cpu >= 0)
		pthread_attr_setaffinity_np(&attributes, sizeof(here), &here);
	int error = pthread_create(&taken->thread, &attributes, reader_main, taken);
	pthread_attr_destroy(&attributes);
	if (error) {
		pthread_cond_destroy(&taken->wake);
		free(taken);
		return NULL;
	}
	pthread_setname_np(taken->thread, "provfs-procread");
	reader->threads++;
	return taken;
}

struct proc_reader *
proc_reader_new(int deadline_ms)
{
	struct proc_reader *reader = calloc(1, sizeof(*reader));
	pthread_condattr_t monotonic;

	if (reader == NULL)
		return NULL;
	pthread_mutex_init(&reader->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&reader->job_done, &monotonic);
	pthread_cond_init(&reader->left, &monotonic);
	pthread_condattr_destroy(&monotonic);
	reader->deadline_ms = deadline_ms > 0 ? deadline_ms : 1;
	return reader;
}

void
proc_reader_free(struct proc_reader *reader)
{
	if (reader == NULL)
		return;
	pthread_mutex_lock(&reader->lock);
	reader->stopping = true;
	for (struct reader_thread *idle = reader->idle; idle; idle = idle->next_idle)
		pthread_cond_signal(&idle->wake);
	reader->idle = NULL;
	struct timespec until = deadline_in(FREE_WAIT_MS);
	/* Every caller has left, so the readers still here are idle or late. */
	while (reader->threads > reader->stuck &&
	       pthread_cond_timedwait(&reader->left, &reader->lock, &until) == 0)
		;
	bool now = reader->threads == 0;
	reader->orphaned = !now;
	pthread_mutex_unlock(&reader->lock);
	if (now)
		reader_destroy(reader);
}

char *
proc_reader_read(struct proc_reader *reader, pid_t pid, uid_t owner, const char *name, size_t limit,
                 size_t *length)
{
	struct reader_thread *thread = NULL;
	struct read_job *job;
	char *content = NULL;
	int error = 0;

	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	job->pid = pid;
	job->owner = owner;
	snprintf(job->name, sizeof(job->name), "%s", name);
	job->limit = limit;

	pthread_mutex_lock(&reader->lock);
	struct late_owner *late = late_owner_of(reader, owner);
	if (reader->stopping)
		error = ESHUTDOWN;
	else if (late && late->count >= STUCK_PER_OWNER)
		error = EAGAIN;
	else if ((thread = take_reader(reader)) == NULL)
		error = EAGAIN; /* every reader taken, and no more may start */
	if (error) {
		pthread_mutex_unlock(&reader->lock);
		free(job);
		errno = error;
		return NULL;
	}
	thread->job = job;
	pthread_cond_signal(&thread->wake);

	struct timespec until = deadline_in(reader->deadline_ms);
	while (!job->done &&
	       pthread_cond_timedwait(&reader->job_done, &reader->lock, &until) != ETIMEDOUT)
		;
	if (job->done) {
		content = job->content;
		error = job->error;
		if (length)
			*length = job->length;
		free(job);
	} else {
		job->abandoned = true; /* its reader frees it */
		count_late(reader, owner);
		error = ETIMEDOUT;
	}
	pthread_mutex_unlock(&reader->lock);
	if (content == NULL)
		errno = error;
	return content;
}

unsigned int
proc_reader_stuck(struct proc_reader *reader)
{
	pthread_mutex_lock(&reader->lock);
	unsigned int stuck = reader->stuck;
	pthread_mutex_unlock(&reader->lock);
	return stuck;
}
