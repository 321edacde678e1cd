/*
 * caller.h - who is asking: the identity behind a FUSE request.
 *
 * The kernel tells the daemon the caller's thread id, uid, gid and umask.
 * The recorder and the label policy need the process (thread group) and the
 * supplementary groups as well; both come from /proc, so both are cached
 * here and the request path reads /proc at most once per thread per second.
 *
 * caller_become() makes the current daemon thread act with the caller's
 * filesystem credentials (fsuid, fsgid, supplementary groups, umask) so that
 * files are created owned by the caller and setgid directories, default ACLs
 * and quotas apply exactly as on the native filesystem.  Credentials are
 * per thread: setfsuid/setfsgid and the raw setgroups system call change only
 * the calling thread, and each worker thread unshares its umask (CLONE_FS)
 * the first time it is used.
 */
#ifndef PROVFS_CALLER_H
#define PROVFS_CALLER_H

#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct caller {
	pid_t thread_id;  /* as the kernel reported it; 0 for kernel-internal requests */
	pid_t process_id; /* thread group id; 0 when unknown (thread already gone) */
	uid_t uid;
	gid_t gid;
	mode_t umask;
};

/* Fill caller from the request (process id from the cache). */
void caller_from_request(fuse_req_t req, struct caller *caller);

/* The thread group id of thread_id, or 0 when it cannot be found. */
pid_t caller_process_of_thread(pid_t thread_id);

/*
 * Act as the caller for filesystem access until caller_restore().
 * Returns 0 or -errno; on error the thread's credentials are unchanged.
 */
int caller_become(fuse_req_t req);

/*
 * caller_become() with the groups read afresh, and for a caller other than
 * root also without the daemon's capabilities (setfsuid() drops only the
 * filesystem ones; others, CAP_SYS_ADMIN among them, would still grant
 * what the caller may not): for calls whose permission the kernel has not
 * checked for the caller, or where group membership decides.  Same
 * contract; caller_restore() gives them back.
 */
int caller_become_exactly(fuse_req_t req);

/*
 * After a call made as the caller (caller_become()) failed with error:
 * when it may have failed for groups cached from before a setgroups()
 * (EACCES or EPERM, and the caller's groups read afresh now differ), act
 * with the fresh ones and return true: the call is worth one more try.
 * False otherwise, the thread still acting as the caller.
 */
bool caller_retry_with_fresh_groups(fuse_req_t req, int error);

/* Back to the daemon's own identity (fsuid and fsgid 0, all capabilities). */
void caller_restore(void);

/*
 * The credentials a passthrough backing file is registered with (the
 * kernel keeps the registering thread's for the I/O it does on the file;
 * fs/session_io.c): a writer who may keep nothing, without CAP_FSETID,
 * with the overflow group and no supplementary groups; fsuid stays 0.
 * caller_become_registrar() puts this thread in them (0 or -errno), and
 * the thread stays so, costing nothing, until caller_become_daemon()
 * gives back the daemon's own: a read-only open after another registers
 * its file with one ioctl instead of eight system calls, six of them
 * credential changes (each also a process-connector broadcast).
 * caller_become() gives them back itself.  A thread that libfuse starts
 * from a registrar thread is born one, and is known as one.
 */
int caller_become_registrar(void);
void caller_become_daemon(void);

/* Is gid the caller's filesystem group or one of its supplementary groups
 * (read afresh: the answer may keep a setgid bit)? */
bool caller_in_group(fuse_req_t req, gid_t gid);

/*
 * When this thread read the request it handles (CLOCK_MONOTONIC ns), noted
 * by the FUSE transport; 0 on a thread that handles no request.  Whatever
 * the caller did before it made the request happened before that instant,
 * so work already done since (the process table's drain of exec and exit
 * events) need not be done again for this request.
 */
void caller_request_received(void);
int64_t caller_request_received_ns(void);

#endif
