/*
 * content_hash.h - XXH3-128 content hashes as provfs writes them.
 *
 * A hash is 32 lowercase hex digits, exactly the first field `xxhsum -H2`
 * prints: the 128-bit value high half first.
 */
#ifndef PROVFS_CONTENT_HASH_H
#define PROVFS_CONTENT_HASH_H

#include <stdint.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <xxhash.h>

#define CONTENT_HASH_HEX_LENGTH 32

/* Format hash into hex (33 bytes with the terminating NUL). */
void content_hash_format(XXH128_hash_t hash, char hex[static CONTENT_HASH_HEX_LENGTH + 1]);

/*
 * Hash what fd holds from offset 0, up to limit bytes (all of it when limit
 * is negative), reading with pread (the file offset is not moved).  A file
 * that keeps growing is thus read for a bounded time.  cancel, when not
 * NULL, is looked at between chunks: once true the hash stops with
 * -ESHUTDOWN (a pool that stops waits for one chunk, not one file).
 * Returns 0, or -errno on a read error.
 */
int content_hash_fd(int fd, off_t limit, const atomic_bool *cancel,
		    char hex[static CONTENT_HASH_HEX_LENGTH + 1], off_t *bytes);

#endif
