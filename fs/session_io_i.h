/*
 * session_io_i.h - private to fs/: the /dev/fuse transport (session_io.c).
 */
#ifndef PROVFS_SESSION_IO_I_H
#define PROVFS_SESSION_IO_I_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

/* Install the transport on a mounted session. */
int fs_session_use_io(struct fuse_session *session);

/* Did the kernel ask, for the request this thread is handling, that
 * privileges be dropped (suid, sgid, file capabilities)? */
bool fs_session_kill_requested(void);

#endif
