/*
 * session_ring.c - FUSE over io_uring (Linux 6.14+): the kernel hands each
 * request to a daemon thread of the CPU its caller runs on.
 *
 * WHY
 *
 * Through /dev/fuse every request wakes whichever daemon thread sleeps in
 * read(2), usually on the other CPU, and every reply wakes the caller back
 * across CPUs.  On a VM without guest halt polling each such wakeup goes
 * through the host, and that, not the daemon's work, is what the benchmark
 * ratios measure (README, "Benchmarks": the SQLite job at 1.41 of native
 * as is, 1.06 with daemon and job on one CPU).  FUSE over io_uring keeps
 * one request queue per CPU: a caller's request goes to the queue of the
 * CPU it runs on, and the threads serving that queue are pinned there, so
 * the wakeup stays on the CPU that is about to sleep anyway.
 *
 * HOW
 *
 * The kernel offers FUSE_OVER_IO_URING in INIT only when the fuse module's
 * enable_uring parameter is on.  Before the INIT reply accepts it,
 * session_ring_prepare() creates every ring, buffer and thread (parked), so
 * that nothing can fail between the acceptance and the registration the
 * kernel then waits for (requests block until every queue has an entry; a
 * failed registration returns the connection to /dev/fuse).  After the
 * reply, session_ring_start() lets the RING_THREADS_PER_QUEUE threads per
 * possible CPU go, each with its own ring and one entry: it registers the
 * entry, then
 * loops taking a request, processing it with libfuse, and committing the
 * reply together with the fetch of the next request (one system call per
 * request).
 *
 * A ring entry carries the request split in three: the in header, the
 * operation's fixed argument (op_in) and the rest (payload).  libfuse
 * wants them contiguous, as read(2) returns them.  The entry's header and
 * payload buffers are laid out back to back, so the header and the fixed
 * argument are moved down to end just before the payload: the request
 * becomes contiguous where it lies, without copying the payload (a write's
 * data).
 *
 * libfuse writes each reply on the thread that processed the request
 * (provfs never defers a reply); session_io.c's writev hook hands it here
 * (session_ring_take_reply()), which copies it into the entry and queues
 * the commit.  Forgets, interrupts and the daemon's notifications still
 * travel through /dev/fuse, served by libfuse's own threads as before.
 *
 * Teardown: unmounting aborts the connection and the kernel completes
 * every entry with an error; the threads also look at a stop flag once a
 * second, for a daemon that stops while the mount lingers (a lazy
 * unmount), and deliver the answer of a request they have carried out
 * before they end.  A thread never ends otherwise, but for a kernel that
 * refuses the rings: a CPU's queue without threads would leave that CPU's
 * callers waiting for good.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "session_ring_i.h"

/* The kernel's FUSE-over-io_uring protocol (linux/fuse.h 7.42, a stable ABI). */
enum {
	URING_IN_OUT_HEADER_SIZE = 128,
	URING_OP_IN_OUT_SIZE = 128,
	URING_CMD_REGISTER = 1,
	URING_CMD_COMMIT_AND_FETCH = 2,
	IN_HEADER_SIZE = 40,  /* struct fuse_in_header */
	OUT_HEADER_SIZE = 16, /* struct fuse_out_header */
};
struct wire_ring_entry_in_out {
	uint64_t flags;
	uint64_t commit_id;
	uint32_t payload_size;
	uint32_t padding;
	uint64_t reserved;
};
struct wire_ring_header {
	char in_out[URING_IN_OUT_HEADER_SIZE]; /* fuse_in_header, then fuse_out_header */
	char op_in[URING_OP_IN_OUT_SIZE];      /* the request's fixed argument */
	struct wire_ring_entry_in_out entry;
};
struct wire_ring_command { /* in the 80-byte command area of a 128-byte SQE */
	uint64_t flags;
	uint64_t commit_id;
	uint16_t queue;
	uint8_t padding[6];
};
_Static_assert(sizeof(struct wire_ring_header) == 288, "fuse_uring_req_header");
_Static_assert(sizeof(struct wire_ring_command) == 24, "fuse_uring_cmd_req");

enum {
	RING_THREADS_PER_QUEUE = 2, /* a request that blocks leaves its CPU served */
	STOP_CHECK_SECONDS = 1,
	FUSE_MIN_READ_BUFFER = 8192,
};

struct ring_thread {
	struct io_uring ring;
	bool ring_ready;
	pthread_t thread;
	bool started;
	unsigned int queue; /* = the CPU it serves */
	bool pinned;        /* the CPU is online: pin the thread to it */
	char *buffer;       /* the wire header, then the payload */
	size_t buffer_size;
	struct iovec iov[2];
	uint64_t unique;   /* the request being processed; 0 none */
	bool replied;      /* its commit is queued */
	/* A reply made on another thread (the label module answers the lineage
	 * xattr from a thread of its own), kept until this thread sends it:
	 * deferred_lock. */
	uint64_t awaited;  /* the request such a reply may answer; 0 none */
	char *deferred;    /* out header and payload, malloc'd; NULL none yet */
	size_t deferred_length;
	bool deferred_failed; /* the reply came but could not be kept: answer EIO */
	pthread_cond_t deferred_arrived;
	atomic_bool error_logged;
};

static struct {
	struct fuse_session *session;
	int device_fd; /* our own duplicate of /dev/fuse's: libfuse closes its own
			* at unmount, while a thread may still have a reply to send */
	size_t payload_size;
	struct ring_thread *threads; /* read by other threads under deferred_lock */
	_Atomic unsigned int thread_count; /* 0: no rings (replies go to /dev/fuse) */
	unsigned int queue_count;
	atomic_bool stopping;
	atomic_bool refusal_logged;
	/* The threads are made parked with the rings (session_ring_prepare), so
	 * that nothing can fail once the INIT reply accepted io_uring, and
	 * go when released (session_ring_start). */
	pthread_mutex_t release_lock;
	pthread_cond_t released_cond;
	bool released; /* release_lock */
} rings = {.device_fd = -1,
           .release_lock = PTHREAD_MUTEX_INITIALIZER,
           .released_cond = PTHREAD_COND_INITIALIZER};

static _Thread_local struct ring_thread *this_thread;
static pthread_mutex_t deferred_lock = PTHREAD_MUTEX_INITIALIZER;

static struct wire_ring_header *
header_of(struct ring_thread *thread)
{
	return (struct wire_ring_header *)(void *)thread->buffer;
}

static char *
payload_of(struct ring_thread *thread)
{
	return thread->buffer + sizeof(struct wire_ring_header);
}

/*
 * Reads a CPU list such as "0-3,8-11" into present[]; returns one past the
 * highest CPU, or -1.
 */
static int
read_cpu_list(const char *path, unsigned char *present, unsigned int capacity)
{
	char text[4096];
	FILE *file = fopen(path, "re");
	int highest = -1;

	if (file == NULL)
		return -1;
	if (fgets(text, sizeof(text), file) == NULL) {
		fclose(file);
		return -1;
	}
	fclose(file);
	for (char *cursor = text; *cursor && *cursor != '\n';) {
		char *end;
		long first = strtol(cursor, &end, 10), last = first;
		if (end == cursor || first < 0)
			return -1;
		if (*end == '-') {
			cursor = end + 1;
			last = strtol(cursor, &end, 10);
			if (end == cursor || last < first)
				return -1;
		}
		for (long cpu = first; cpu <= last && cpu < (long)capacity; cpu++)
			present[cpu] = 1;
		if (last > highest)
			highest = (int)last;
		cursor = *end == ',' ? end + 1 : end;
		if (end == cursor && *cursor != '\0' && *cursor != '\n')
			return -1;
	}
	return highest + 1;
}

enum { CPU_CAPACITY = 8192 };

static int
make_ring(struct io_uring *ring)
{
	struct io_uring_params params = {.flags = IORING_SETUP_SQE128 | IORING_SETUP_COOP_TASKRUN};
	int error = io_uring_queue_init_params(2, ring, &params);

	if (error == -EINVAL) { /* before Linux 5.19: no cooperative task running */
		memset(&params, 0, sizeof(params));
		params.flags = IORING_SETUP_SQE128;
		error = io_uring_queue_init_params(2, ring, &params);
	}
	return error;
}

static void *ring_main(void *argument);

/* Let the parked threads go: to serve, or (stopping set) to end. */
static void
release_threads(void)
{
	pthread_mutex_lock(&rings.release_lock);
	rings.released = true;
	pthread_cond_broadcast(&rings.released_cond);
	pthread_mutex_unlock(&rings.release_lock);
}

/* End the threads (stopping set) and free the rings and buffers. */
static void
free_threads(void)
{
	atomic_store(&rings.stopping, true);
	release_threads();
	for (unsigned int i = 0; i < rings.thread_count; i++)
		if (rings.threads[i].started)
			pthread_join(rings.threads[i].thread, NULL);
	/* A reply from another thread (defer_reply) may come at any time:
	 * from here on it finds no ring and goes to /dev/fuse. */
	pthread_mutex_lock(&deferred_lock);
	struct ring_thread *threads = rings.threads;
	unsigned int thread_count = rings.thread_count;
	rings.threads = NULL;
	rings.thread_count = 0;
	pthread_mutex_unlock(&deferred_lock);
	for (unsigned int i = 0; i < thread_count; i++) {
		struct ring_thread *thread = &threads[i];
		if (thread->ring_ready)
			io_uring_queue_exit(&thread->ring);
		if (thread->buffer)
			munmap(thread->buffer, thread->buffer_size);
		free(thread->deferred);
		pthread_cond_destroy(&thread->deferred_arrived);
	}
	free(threads);
	rings.queue_count = 0;
	rings.released = false;
	/* The last reference to the connection's device, once the rings are
	 * gone: closing it ends the connection. */
	if (rings.device_fd >= 0)
		close(rings.device_fd);
	rings.device_fd = -1;
}

int
session_ring_prepare(int device_fd, size_t max_write, size_t max_pages)
{
	unsigned char *possible = calloc(CPU_CAPACITY, 1), *online = calloc(CPU_CAPACITY, 1);
	long page_size = sysconf(_SC_PAGESIZE);
	int queue_count, error = 0;

	if (possible == NULL || online == NULL) {
		error = -ENOMEM;
		goto out;
	}
	/*
	 * The kernel makes one queue per possible CPU, num_possible_cpus() of
	 * them numbered from 0, and puts a request on the queue numbered as
	 * the caller's CPU (fuse_uring_task_to_queue()); a queue beyond that
	 * count is refused.  online says which may be pinned to.
	 */
	int highest = read_cpu_list("/sys/devices/system/cpu/possible", possible, CPU_CAPACITY);
	if (highest <= 0 || highest > CPU_CAPACITY ||
	    read_cpu_list("/sys/devices/system/cpu/online", online, CPU_CAPACITY) <= 0) {
		error = -ENOENT;
		goto out;
	}
	queue_count = 0;
	for (int cpu = 0; cpu < highest; cpu++)
		queue_count += possible[cpu];
	/* The kernel refuses an entry whose payload buffer is smaller than the
	 * largest request or reply it may carry. */
	size_t payload = max_write > FUSE_MIN_READ_BUFFER ? max_write : FUSE_MIN_READ_BUFFER;
	if (max_pages * (size_t)page_size > payload)
		payload = max_pages * (size_t)page_size;
	rings.payload_size = payload;
	rings.device_fd = fcntl(device_fd, F_DUPFD_CLOEXEC, 0);
	if (rings.device_fd < 0) {
		error = -errno;
		goto out;
	}
	rings.queue_count = (unsigned int)queue_count;
	rings.threads = calloc((size_t)queue_count * RING_THREADS_PER_QUEUE,
	                       sizeof(*rings.threads));
	if (rings.threads == NULL) {
		error = -ENOMEM;
		goto out;
	}
	for (unsigned int queue = 0; queue < rings.queue_count; queue++) {
		/* A CPU that is not online serves no caller: one thread to be
		 * ready (the kernel waits for every queue), unpinned. */
		unsigned int count = online[queue] ? RING_THREADS_PER_QUEUE : 1;
		for (unsigned int k = 0; k < count; k++) {
			struct ring_thread *thread = &rings.threads[rings.thread_count++];
			thread->queue = queue;
			thread->pinned = online[queue];
			pthread_cond_init(&thread->deferred_arrived, NULL);
			thread->buffer_size = sizeof(struct wire_ring_header) + payload;
			thread->buffer = mmap(NULL, thread->buffer_size, PROT_READ | PROT_WRITE,
			                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
			if (thread->buffer == MAP_FAILED) {
				thread->buffer = NULL;
				error = -errno;
				goto out;
			}
			thread->iov[0] = (struct iovec){thread->buffer,
			                                sizeof(struct wire_ring_header)};
			thread->iov[1] = (struct iovec){payload_of(thread), payload};
			error = make_ring(&thread->ring);
			if (error < 0)
				goto out;
			thread->ring_ready = true;
		}
	}
	atomic_store(&rings.stopping, false);
	/* Signals are for libfuse's loop, not for these threads. */
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	for (unsigned int i = 0; i < rings.thread_count && error == 0; i++) {
		struct ring_thread *thread = &rings.threads[i];
		error = -pthread_create(&thread->thread, NULL, ring_main, thread);
		thread->started = error == 0;
	}
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
out:
	if (error < 0)
		free_threads();
	free(possible);
	free(online);
	return error;
}

void
session_ring_discard(void)
{
	free_threads();
}

/* Queue a ring command for this thread's entry (the SQ has room: one entry
 * and one command at a time). */
static void
queue_command(struct ring_thread *thread, uint32_t command, uint64_t commit_id)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&thread->ring);

	if (sqe == NULL) /* cannot be: one command at a time in a ring of two */
		return;
	memset(sqe, 0, 2 * sizeof(*sqe)); /* a 128-byte SQE */
	sqe->opcode = IORING_OP_URING_CMD;
	sqe->fd = rings.device_fd;
	sqe->cmd_op = command;
	sqe->addr = (uint64_t)(uintptr_t)thread->iov;
	sqe->len = 2;
	struct wire_ring_command request = {.commit_id = commit_id, .queue = (uint16_t)thread->queue};
	memcpy((char *)sqe + offsetof(struct io_uring_sqe, cmd), &request, sizeof(request));
}

/*
 * Make the request the entry holds contiguous where it lies: the in header
 * and the fixed argument end just before the payload.  Its address, or
 * NULL for a malformed one.
 */
static char *
gather_request(struct ring_thread *thread, size_t *size)
{
	struct wire_ring_header *header = header_of(thread);
	uint32_t length, payload_size = header->entry.payload_size;

	memcpy(&length, header->in_out, sizeof(length));
	if (payload_size > rings.payload_size || length < IN_HEADER_SIZE + payload_size ||
	    length - IN_HEADER_SIZE - payload_size > URING_OP_IN_OUT_SIZE)
		return NULL;
	size_t op_size = length - IN_HEADER_SIZE - payload_size;
	char *start = payload_of(thread) - op_size - IN_HEADER_SIZE;
	memmove(start + IN_HEADER_SIZE, header->op_in, op_size);
	memmove(start, header->in_out, IN_HEADER_SIZE);
	*size = length;
	return start;
}

/* Answer the request on the entry without libfuse: an error. */
static void
reply_error(struct ring_thread *thread, uint64_t unique, int error)
{
	struct wire_ring_header *header = header_of(thread);
	struct {
		uint32_t length;
		int32_t error;
		uint64_t unique;
	} out = {OUT_HEADER_SIZE, -error, unique};

	memcpy(header->in_out, &out, sizeof(out));
	memset(&header->entry, 0, sizeof(header->entry));
	queue_command(thread, URING_CMD_COMMIT_AND_FETCH, unique);
	thread->replied = true;
}

static size_t
iov_payload(const struct iovec *iov, int count)
{
	size_t payload = 0;

	for (int i = 1; i < count; i++)
		payload += iov[i].iov_len;
	return payload;
}

/* Put a reply (out header, then its payload) in the entry and queue its
 * commit; false when it does not fit. */
static bool
commit_reply(struct ring_thread *thread, uint64_t unique, const struct iovec *iov, int count)
{
	struct wire_ring_header *header = header_of(thread);
	size_t payload = 0;

	for (int i = 1; i < count; i++) {
		if (payload + iov[i].iov_len > rings.payload_size)
			return false;
		memmove(payload_of(thread) + payload, iov[i].iov_base, iov[i].iov_len);
		payload += iov[i].iov_len;
	}
	memcpy(header->in_out, iov[0].iov_base, OUT_HEADER_SIZE);
	memset(&header->entry, 0, sizeof(header->entry));
	header->entry.payload_size = (uint32_t)payload;
	queue_command(thread, URING_CMD_COMMIT_AND_FETCH, unique);
	thread->replied = true;
	return true;
}

/*
 * A reply made on a thread that is not the ring thread awaiting it: copied
 * for that thread to send (only it may touch its ring); false when no ring
 * thread awaits this request.
 */
static bool
defer_reply(uint64_t unique, const struct iovec *iov, int count, ssize_t *written)
{
	size_t length = 0;
	char *copy;

	for (int i = 0; i < count; i++)
		length += iov[i].iov_len;
	pthread_mutex_lock(&deferred_lock);
	struct ring_thread *thread = NULL;
	for (unsigned int i = 0; i < rings.thread_count && thread == NULL; i++)
		if (rings.threads[i].awaited == unique && rings.threads[i].deferred == NULL)
			thread = &rings.threads[i];
	if (thread == NULL) {
		pthread_mutex_unlock(&deferred_lock);
		return false;
	}
	if (length - OUT_HEADER_SIZE > rings.payload_size || (copy = malloc(length)) == NULL) {
		thread->deferred_failed = true; /* the awaiting thread answers EIO */
		pthread_cond_signal(&thread->deferred_arrived);
		pthread_mutex_unlock(&deferred_lock);
		*written = -1;
		errno = length - OUT_HEADER_SIZE > rings.payload_size ? EINVAL : ENOMEM;
		return true;
	}
	for (size_t i = 0, at = 0; i < (size_t)count; at += iov[i].iov_len, i++)
		memcpy(copy + at, iov[i].iov_base, iov[i].iov_len);
	thread->deferred = copy;
	thread->deferred_length = length;
	pthread_cond_signal(&thread->deferred_arrived);
	pthread_mutex_unlock(&deferred_lock);
	*written = (ssize_t)length;
	return true;
}

bool
session_ring_take_reply(const struct iovec *iov, int count, ssize_t *written)
{
	struct ring_thread *thread = this_thread;
	uint64_t unique;

	if (rings.thread_count == 0 || count < 1 || iov[0].iov_len < OUT_HEADER_SIZE)
		return false;
	memcpy(&unique, (const char *)iov[0].iov_base + 8, sizeof(unique));
	if (unique == 0)
		return false; /* a notification, sent through /dev/fuse */
	if (thread == NULL || unique != thread->unique || thread->replied)
		return defer_reply(unique, iov, count, written);
	if (!commit_reply(thread, unique, iov, count)) {
		/* Larger than the entry's buffer: the caller must not wait for
		 * an answer that cannot come. */
		reply_error(thread, unique, EIO);
		*written = -1;
		errno = EINVAL;
		return true;
	}
	*written = (ssize_t)(OUT_HEADER_SIZE + iov_payload(iov, count));
	return true;
}

/*
 * The request was handed to another thread, which replies later: wait for
 * that reply and send it.  Another thread of this CPU's queue serves
 * meanwhile.  If the daemon stops before it comes, the caller gets EIO.
 */
static void
send_deferred_reply(struct ring_thread *thread, uint64_t unique)
{
	char *reply = NULL;
	size_t length = 0;
	int waited_stopping = 0;

	pthread_mutex_lock(&deferred_lock);
	while (thread->deferred == NULL && !thread->deferred_failed && waited_stopping < 10) {
		struct timespec deadline;
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += 1;
		pthread_cond_timedwait(&thread->deferred_arrived, &deferred_lock, &deadline);
		if (atomic_load(&rings.stopping))
			waited_stopping++;
	}
	reply = thread->deferred;
	length = thread->deferred_length;
	thread->deferred = NULL;
	thread->deferred_failed = false;
	thread->awaited = 0;
	pthread_mutex_unlock(&deferred_lock);
	struct iovec iov[2] = {{reply, OUT_HEADER_SIZE},
	                       {reply ? reply + OUT_HEADER_SIZE : NULL,
	                        reply ? length - OUT_HEADER_SIZE : 0}};
	if (reply == NULL || length < OUT_HEADER_SIZE || !commit_reply(thread, unique, iov, 2))
		reply_error(thread, unique, EIO);
	free(reply);
}

/* The connection is gone: the kernel ends every entry with one of these. */
static bool
is_teardown(int error)
{
	return error == -ENOTCONN || error == -ECANCELED || error == -ECONNABORTED ||
	       error == -ENODEV;
}

static void *
ring_main(void *argument)
{
	struct ring_thread *thread = argument;
	struct __kernel_timespec stop_check = {.tv_sec = STOP_CHECK_SECONDS};
	unsigned int registrations = 0; /* tries while the kernel says EAGAIN */

	pthread_mutex_lock(&rings.release_lock);
	while (!rings.released)
		pthread_cond_wait(&rings.released_cond, &rings.release_lock);
	pthread_mutex_unlock(&rings.release_lock);
	if (atomic_load(&rings.stopping))
		goto out; /* discarded before it served */
	this_thread = thread;
	char name[16];
	snprintf(name, sizeof(name), "provfs-ring%u", thread->queue);
	pthread_setname_np(pthread_self(), name);
	if (thread->pinned) {
		cpu_set_t cpus;
		CPU_ZERO(&cpus);
		CPU_SET(thread->queue, &cpus);
		pthread_setaffinity_np(pthread_self(), sizeof(cpus), &cpus);
	}
	queue_command(thread, URING_CMD_REGISTER, 0);
	bool registering = true;
	for (;;) {
		if (atomic_load_explicit(&rings.stopping, memory_order_relaxed)) {
			/* A request already carried out has its answer delivered. */
			if (thread->replied)
				io_uring_submit(&thread->ring);
			break;
		}
		struct io_uring_cqe *cqe = NULL;
		int error = io_uring_submit_and_wait_timeout(&thread->ring, &cqe, 1, &stop_check,
		                                             NULL);
		if (error == -ETIME || error == -EINTR)
			continue;
		if (error < 0) {
			/* Leaving would leave this CPU's queue a thread short, for
			 * good: try again, the stop flag ends it. */
			if (!atomic_exchange(&thread->error_logged, true))
				log_error("FUSE io_uring queue %u: %s; trying again", thread->queue,
				          strerror(-error));
			usleep(1000);
			continue;
		}
		if (cqe == NULL) /* the wait timed out after the submission */
			continue;
		int result = cqe->res;
		io_uring_cqe_seen(&thread->ring, cqe);
		thread->unique = 0;
		thread->replied = false;
		if (is_teardown(result))
			break;
		if (result == -EAGAIN && registering && registrations++ < 1000) {
			/* The kernel has not finished taking the INIT reply. */
			usleep(1000);
			queue_command(thread, URING_CMD_REGISTER, 0);
			continue;
		}
		if (result < 0 && registering) {
			/* The kernel turned back to /dev/fuse for good (enable_uring
			 * turned off between its INIT and its reply, say). */
			if (!atomic_exchange(&rings.refusal_logged, true))
				log_error("FUSE over io_uring: the kernel refused the rings (%s): "
				          "requests go through /dev/fuse",
				          strerror(-result));
			break;
		}
		if (result < 0) {
			/*
			 * A commit the kernel could not match: the entry is lost
			 * to it.  Register it afresh, so that this CPU's queue
			 * keeps its threads.
			 */
			log_warning("FUSE io_uring queue %u: %s; registering again", thread->queue,
			            strerror(-result));
			queue_command(thread, URING_CMD_REGISTER, 0);
			registering = true;
			continue;
		}
		registering = false;
		uint64_t unique = header_of(thread)->entry.commit_id;
		size_t size = 0;
		char *request = gather_request(thread, &size);
		if (request == NULL) {
			log_error("FUSE io_uring queue %u: malformed request %llu", thread->queue,
			          (unsigned long long)unique);
			reply_error(thread, unique, EIO);
			continue;
		}
		thread->unique = unique;
		pthread_mutex_lock(&deferred_lock);
		thread->awaited = unique;
		pthread_mutex_unlock(&deferred_lock);
		session_io_request_received(request, size);
		struct fuse_buf buffer = {.mem = request, .size = size};
		fuse_session_process_buf(rings.session, &buffer);
		if (thread->replied) {
			pthread_mutex_lock(&deferred_lock);
			thread->awaited = 0;
			pthread_mutex_unlock(&deferred_lock);
		} else {
			send_deferred_reply(thread, unique);
		}
	}
out:
	return NULL;
}

int
session_ring_start(struct fuse_session *session)
{
	rings.session = session;
	release_threads();
	log_info("FUSE over io_uring: %u queues, %u threads", rings.queue_count,
	         rings.thread_count);
	return (int)rings.thread_count;
}

void
session_ring_stop(void)
{
	free_threads();
}
