/*
 * proc_reader.h - reads of the /proc files that wait on a process's memory,
 * with a deadline.
 *
 * /proc/PID/cmdline and /proc/PID/environ copy the bytes out of the
 * process's own memory, and /proc/PID/maps walks its mappings; all three
 * take its mmap lock.  A process can keep that lock from us for as long as
 * it likes: one of its threads reads its own memory through /proc/self/mem
 * where a file of a FUSE filesystem that never answers is mapped (a user
 * may mount one with fusermount3), which holds the lock for reading, and a
 * second thread asks for it for writing (mmap), which queues every later
 * reader behind it.  A daemon thread that reads such a file then sleeps,
 * unkillably, until the user lets go; seventeen such processes held every
 * request thread of a mount and stopped it for all its users.
 *
 * So these reads run on reader threads that the caller can leave behind.
 * The caller waits until its deadline; past it, the read goes on (its
 * thread stays asleep in the kernel until the process lets go) and the
 * caller goes on without it (errno ETIMEDOUT).  Reads of one user's
 * processes that have gone past their deadline and are still asleep are
 * counted: from four on, a read of that user's processes is refused at
 * once (EAGAIN), so one user cannot take every reader, nor make
 * each of its new processes cost a request its deadline.  The threads are
 * bounded too; when all are taken the read is refused at once (EAGAIN).
 * Callers treat a refused or late read as unknown, never as empty.
 *
 * Thread-safe.  A read costs a wakeup of a reader thread on top of the
 * read itself; it is for the first sight of a process, not for every
 * request.
 */
#ifndef PROVFS_PROC_READER_H
#define PROVFS_PROC_READER_H

#include <stddef.h>
#include <sys/types.h>

struct proc_reader;

/* deadline_ms: how long a caller waits for one read (> 0).  NULL on ENOMEM. */
struct proc_reader *proc_reader_new(int deadline_ms);

/*
 * Stops the idle readers.  Readers still asleep in a read past its
 * deadline are left to finish on their own and free what they hold.
 */
void proc_reader_free(struct proc_reader *reader);

/*
 * The content of /proc/PID/NAME (NAME one of the files above), read up to
 * limit bytes, NUL-terminated, in a buffer the caller frees; its length
 * in *length when length is not NULL.  owner: the uid the process runs as
 * (whose count of late reads this read joins).  NULL with errno set:
 * ETIMEDOUT (past the deadline), EAGAIN (refused: see above), ESHUTDOWN
 * (being freed), or the error of the open or read (ENOENT: gone).
 */
char *proc_reader_read(struct proc_reader *reader, pid_t pid, uid_t owner, const char *name,
                       size_t limit, size_t *length);

/*
 * The same read made directly, on the calling thread: for the /proc files
 * that do not wait on the process's memory (stat, status, cgroup).
 */
char *proc_file_read(pid_t pid, const char *name, size_t limit, size_t *length);

/* Reads past their deadline still asleep now (for tests and the log). */
unsigned int proc_reader_stuck(struct proc_reader *reader);

#endif
