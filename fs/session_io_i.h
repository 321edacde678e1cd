/*
 * session_io_i.h - private to fs/: the /dev/fuse transport (session_io.c).
 */
#ifndef PROVFS_SESSION_IO_I_H
#define PROVFS_SESSION_IO_I_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

/* Install the transport on a mounted session; with passthrough, offer the
 * kernel FUSE passthrough at INIT; with uring, accept FUSE over io_uring
 * when the kernel offers it (fs/session_ring.c). */
int fs_session_use_io(struct fuse_session *session, bool passthrough, bool uring);

/* Did the kernel ask, for the request this thread is handling, that
 * privileges be dropped (suid, sgid, file capabilities)? */
bool fs_session_kill_requested(void);

/* Did the INIT reply turn kernel passthrough on? */
bool fs_session_passthrough(void);

/* Register fd's file as a backing file: its backing id (> 0) or -errno. */
int fs_session_backing_open(int fd);

/* Drop a backing id; handles already opened with it keep their file. */
void fs_session_backing_close(int backing_id);

/* The session's loop has ended and /dev/fuse is about to be closed: the
 * connection's backing ids go with it, none is released any more. */
void fs_session_detach_io(void);

/* The OPEN or CREATE reply this thread sends next passes the handle's data
 * through to backing_id. */
void fs_session_pass_through(int backing_id);

#endif
