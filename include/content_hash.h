/*
 * content_hash.h - XXH3-128 content hashes as provfs writes them.
 *
 * A hash is 32 lowercase hex digits, exactly the first field `xxhsum -H2`
 * prints: the 128-bit value high half first.
 */
#ifndef PROVFS_CONTENT_HASH_H
#define PROVFS_CONTENT_HASH_H

#include <stdint.h>
#include <sys/types.h>
#include <xxhash.h>

#define CONTENT_HASH_HEX_LENGTH 32

/* Format hash into hex (33 bytes with the terminating NUL). */
void content_hash_format(XXH128_hash_t hash, char hex[static CONTENT_HASH_HEX_LENGTH + 1]);

/*
 * Hash everything fd holds, reading with pread from offset 0 (the file
 * offset is not moved).  Returns 0, or -errno on a read error.
 */
int content_hash_fd(int fd, char hex[static CONTENT_HASH_HEX_LENGTH + 1], off_t *bytes);

#endif
