/*
 * small_writers.c - which callers write small new files, so that their
 * next new file is written through the daemon rather than passed through.
 *
 * WHY
 *
 * A file written through kernel passthrough costs the daemon a fixed price
 * however small it is: a backing registration, the writer watch's mark,
 * one wait per write(2), a drain at close and a reread by the hash pool,
 * where a file written through the daemon is one WRITE request per write
 * and is hashed as its bytes pass.  For a 4 KiB file that fixed price is
 * the larger one (scripts/bench: small-file creates and untar ran 1.2 to
 * 1.3 times as long with passthrough as without on a 2-core VM); from
 * about 100 KiB on, passthrough wins, and by far for large files.  An open
 * does not say how much will be written, but a caller that has just
 * written several small new files (tar, a shell loop, a feature job
 * writing shards) most likely writes another.
 *
 * HOW
 *
 * Per calling thread (the request's pid; a thread pool's threads each
 * learn for themselves), the count of consecutive new files it closed
 * under SMALL_FILE_BYTES, capped.  Counted at the close (FLUSH), which the
 * caller waits for, so its next open sees it (the release comes later).
 * From SMALL_RUN on, its next new file is served by the daemon; one large
 * file ends the run, so a process that turns to large files passes them
 * through again from its next one.
 *
 * Only a speed choice: both ways are recorded alike and enforce the same,
 * so a wrong guess (a slot shared by two threads, a thread id reused)
 * costs time, never correctness.  A slot is one atomic word, (thread <<
 * 32) | count: no lock on the open path.
 */
#include "small_writers_i.h"

#define SMALL_FILE_BYTES (64 * 1024)
#define SMALL_RUN 4    /* small new files in a row before the daemon serves the next */
#define RUN_CAP 0xffff /* counts stop here */

static _Atomic uint64_t *
slot_of(struct small_writers *writers, pid_t thread)
{
	uint32_t key = (uint32_t)thread * 2654435761u; /* Knuth's multiplicative hash */

	return &writers->slots[(key >> 16) & (SMALL_WRITER_SLOTS - 1)];
}

bool
small_writers_expected(struct small_writers *writers, pid_t thread)
{
	if (thread <= 0)
		return false;
	uint64_t value = atomic_load_explicit(slot_of(writers, thread), memory_order_relaxed);
	return (pid_t)(value >> 32) == thread && (value & RUN_CAP) >= SMALL_RUN;
}

void
small_writers_note(struct small_writers *writers, pid_t thread, off_t size, bool *counted)
{
	if (thread <= 0 || size == 0) /* nothing written yet: no evidence */
		return;
	if (size < SMALL_FILE_BYTES && *counted)
		return;
	_Atomic uint64_t *slot = slot_of(writers, thread);
	uint64_t value = atomic_load_explicit(slot, memory_order_relaxed);
	uint64_t run = (pid_t)(value >> 32) == thread ? value & RUN_CAP : 0;

	if (size >= SMALL_FILE_BYTES)
		run = 0;
	else if (run < RUN_CAP)
		run++;
	*counted = true;
	atomic_store_explicit(slot, ((uint64_t)(uint32_t)thread << 32) | run, memory_order_relaxed);
}
