/*
 * session_ring_i.h - private to fs/: FUSE over io_uring (session_ring.c).
 */
#ifndef PROVFS_SESSION_RING_I_H
#define PROVFS_SESSION_RING_I_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Create the rings, buffers and (parked) threads, for requests and replies
 * of up to max_write bytes and max_pages pages, before the INIT reply
 * accepts FUSE over io_uring: 0, or a negative errno and nothing kept.
 */
int session_ring_prepare(int device_fd, size_t max_write, size_t max_pages);

/* The INIT reply did not accept it: free what session_ring_prepare made. */
void session_ring_discard(void);

/* After the INIT reply was written: let the threads go, which register
 * their entries.  How many there are. */
int session_ring_start(struct fuse_session *session);

/* After the session ended (the connection is gone or going): stop and
 * join the threads, and free the rings. */
void session_ring_stop(void);

/*
 * The reply libfuse writes on this thread: when it answers the request
 * this ring thread is processing, it goes into the ring entry (true, with
 * the byte count writev would have returned in *written); else false, and
 * it goes to /dev/fuse (notifications, or not a ring thread).
 */
bool session_ring_take_reply(const struct iovec *iov, int count, ssize_t *written);

/* session_io.c: note what the transport needs of a request before it is
 * processed (the same as for one read from /dev/fuse). */
void session_io_request_received(const void *request, size_t size);

#endif
