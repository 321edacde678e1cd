/*
 * executable_hash_fallback.c - process_table_executable_hash() until the
 * process table provides it.
 *
 * include/process_table.h declares the call and recorder/process_table.c
 * is to define it (waiting on its hasher).  Until that lands, this weak
 * definition waits, up to timeout_ms, for the recorder's hasher to fill
 * image->executable_hash.  A strong definition in process_table.c replaces
 * it at link time; then this file can go.
 */
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "process_table.h"

__attribute__((weak)) int
process_table_executable_hash(struct process_table *table, struct process_info *image,
                              int timeout_ms, char hash[33])
{
	const struct timespec pause = {0, 1000000};

	for (int waited = 0; image && waited <= timeout_ms; waited++) {
		atomic_thread_fence(memory_order_acquire);
		if (image->executable_hash[0] && strlen(image->executable_hash) == 32) {
			memcpy(hash, image->executable_hash, 33);
			return 0;
		}
		nanosleep(&pause, NULL);
	}
	return -1;
}
