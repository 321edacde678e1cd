/*
 * content_hash.c - XXH3-128 of whole files, formatted as xxhsum -H2 does.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "content_hash.h"

#define READ_CHUNK (1 << 20)

void
content_hash_format(XXH128_hash_t hash, char hex[static CONTENT_HASH_HEX_LENGTH + 1])
{
	/* xxhsum prints the canonical (big-endian) form: high 64 bits first.
	 * By hand: every close of a written file formats one, and snprintf
	 * cost ten times as much. */
	static const char digits[] = "0123456789abcdef";
	for (int i = 0; i < 16; i++) {
		hex[i] = digits[(hash.high64 >> (60 - 4 * i)) & 0xf];
		hex[16 + i] = digits[(hash.low64 >> (60 - 4 * i)) & 0xf];
	}
	hex[CONTENT_HASH_HEX_LENGTH] = '\0';
}

int
content_hash_fd(int fd, off_t limit, const atomic_bool *cancel,
		char hex[static CONTENT_HASH_HEX_LENGTH + 1], off_t *bytes)
{
	XXH3_state_t *state = XXH3_createState();
	char *buffer = malloc(READ_CHUNK);
	off_t offset = 0;
	int result = 0;

	if (state == NULL || buffer == NULL) {
		result = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(state);
	for (;;) {
		if (cancel && atomic_load_explicit(cancel, memory_order_relaxed)) {
			result = -ESHUTDOWN;
			goto out;
		}
		size_t want = READ_CHUNK;
		if (limit >= 0 && limit - offset < (off_t)want)
			want = (size_t)(limit - offset);
		if (want == 0)
			break;
		ssize_t count = pread(fd, buffer, want, offset);
		if (count < 0) {
			if (errno == EINTR)
				continue;
			result = -errno;
			goto out;
		}
		if (count == 0)
			break;
		XXH3_128bits_update(state, buffer, (size_t)count);
		offset += count;
	}
	content_hash_format(XXH3_128bits_digest(state), hex);
	if (bytes)
		*bytes = offset;
out:
	free(buffer);
	XXH3_freeState(state);
	return result;
}
