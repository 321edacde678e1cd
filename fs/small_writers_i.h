/*
 * small_writers_i.h - private to fs/: which callers have been writing small
 * new files (fs/small_writers.c).
 */
#ifndef PROVFS_SMALL_WRITERS_I_H
#define PROVFS_SMALL_WRITERS_I_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define SMALL_WRITER_SLOTS 1024 /* power of two */

/* Zeroed: nobody known.  Lock-free; lives inside struct fs. */
struct small_writers {
	_Atomic uint64_t slots[SMALL_WRITER_SLOTS];
};

/* Has thread's latest run of new files been small ones?  Then its next is
 * likely small too. */
bool small_writers_expected(struct small_writers *writers, pid_t thread);

/* A handle thread opened on new content (created or truncated) was
 * closed with the file size bytes.  *counted (the handle's, false at open)
 * makes a handle closed several times (a shell's dup2) count once. */
void small_writers_note(struct small_writers *writers, pid_t thread, off_t size, bool *counted);

#endif
