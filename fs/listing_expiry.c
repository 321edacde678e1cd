/*
 * listing_expiry.c - kept directory listings end when their entries time
 * out.
 *
 * WHY
 *
 * On a backing filesystem with stable directory offsets provfs lists
 * directories without OPENDIR (see fs/passthrough.c), and the kernel then
 * keeps a listing until the directory's mtime changes.  The names and
 * attributes that came with the listing (READDIRPLUS) time out after
 * -o timeout seconds, the listing does not: a second `du`, `find` or `git
 * status` of the tree a moment later reads the kept listing and then looks
 * every entry up again with a LOOKUP of its own, where a filesystem whose
 * listings the kernel drops (libfuse's passthrough_ll) lists the directory
 * again and gets all its entries back in one READDIRPLUS.  scripts/bench's
 * untar-grep `rewalk` measured 3,507 LOOKUPs against passthrough_ll's
 * 1,586 requests in all.
 *
 * HOW
 *
 * Each listing the kernel fills (a READDIR or READDIRPLUS from offset 0)
 * is noted with the time its entries time out.  The timeout is one for the
 * whole mount, so notes come due in the order they were taken: a ring,
 * oldest first.  A thread sleeps until the oldest is due and then tells the
 * kernel to drop that directory's cached pages (notify_inval_inode from
 * offset 0), which hold the listing; the next listing asks the daemon
 * again.  When the ring is full the oldest note is sent early: a listing
 * dropped early only costs one more READDIRPLUS.  A note for a directory
 * the kernel has since forgotten is refused by the kernel (ENOENT) and
 * ignored, and so is the rest of the work while the mount goes away.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "listing_expiry_i.h"

#define NOTE_CAPACITY 8192 /* listings awaiting their end; power of two */

struct note {
	fuse_ino_t ino;
	int64_t due_ns; /* monotonic */
};

struct listing_expiry {
	struct fuse_session *session;
	int64_t timeout_ns;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t changed;     /* a note added, or stopping */
	struct note notes[NOTE_CAPACITY]; /* under lock: ring, oldest at head */
	size_t head, count;
	bool stopping;
};

/* Drop the kept listing of ino.  Called without the lock: it writes to the kernel. */
static void
expire(struct listing_expiry *expiry, fuse_ino_t ino)
{
	/* Offset 0, length 0: the directory's whole page cache, and its
	 * attributes (a second old by now anyway). */
	fuse_lowlevel_notify_inval_inode(expiry->session, ino, 0, 0);
}

static void *
run(void *argument)
{
	struct listing_expiry *expiry = argument;

	pthread_mutex_lock(&expiry->lock);
	while (!expiry->stopping) {
		if (expiry->count == 0) {
			pthread_cond_wait(&expiry->changed, &expiry->lock);
			continue;
		}
		struct note oldest = expiry->notes[expiry->head];
		if (oldest.due_ns > monotonic_ns()) {
			struct timespec until = {.tv_sec = oldest.due_ns / NANOSECONDS_PER_SECOND,
						 .tv_nsec = oldest.due_ns % NANOSECONDS_PER_SECOND};
			pthread_cond_timedwait(&expiry->changed, &expiry->lock, &until);
			continue;
		}
		expiry->head = (expiry->head + 1) & (NOTE_CAPACITY - 1);
		expiry->count--;
		pthread_mutex_unlock(&expiry->lock);
		expire(expiry, oldest.ino);
		pthread_mutex_lock(&expiry->lock);
	}
	pthread_mutex_unlock(&expiry->lock);
	return NULL;
}

struct listing_expiry *
listing_expiry_new(struct fuse_session *session, double timeout_s)
{
	struct listing_expiry *expiry = calloc(1, sizeof(*expiry));
	pthread_condattr_t attributes;

	if (expiry == NULL)
		return NULL;
	expiry->session = session;
	expiry->timeout_ns = (int64_t)(timeout_s * (double)NANOSECONDS_PER_SECOND);
	pthread_mutex_init(&expiry->lock, NULL);
	pthread_condattr_init(&attributes);
	pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
	pthread_cond_init(&expiry->changed, &attributes);
	pthread_condattr_destroy(&attributes);
	int error = pthread_create(&expiry->thread, NULL, run, expiry);
	if (error) {
		pthread_cond_destroy(&expiry->changed);
		pthread_mutex_destroy(&expiry->lock);
		free(expiry);
		errno = error;
		return NULL;
	}
	pthread_setname_np(expiry->thread, "provfs-listings");
	return expiry;
}

void
listing_expiry_note(struct listing_expiry *expiry, fuse_ino_t ino)
{
	fuse_ino_t early = 0;

	if (expiry == NULL)
		return;
	pthread_mutex_lock(&expiry->lock);
	if (expiry->count == NOTE_CAPACITY) {
		early = expiry->notes[expiry->head].ino;
		expiry->head = (expiry->head + 1) & (NOTE_CAPACITY - 1);
		expiry->count--;
	}
	size_t tail = (expiry->head + expiry->count) & (NOTE_CAPACITY - 1);
	expiry->notes[tail] = (struct note){.ino = ino, .due_ns = monotonic_ns() + expiry->timeout_ns};
	if (expiry->count++ == 0)
		pthread_cond_signal(&expiry->changed);
	pthread_mutex_unlock(&expiry->lock);
	if (early)
		expire(expiry, early);
}

void
listing_expiry_free(struct listing_expiry *expiry)
{
	if (expiry == NULL)
		return;
	pthread_mutex_lock(&expiry->lock);
	expiry->stopping = true;
	pthread_cond_signal(&expiry->changed);
	pthread_mutex_unlock(&expiry->lock);
	pthread_join(expiry->thread, NULL);
	pthread_cond_destroy(&expiry->changed);
	pthread_mutex_destroy(&expiry->lock);
	free(expiry);
}
