/*
 * test_content_hash.c - the two string helpers every create and close
 * runs: a hash in xxhsum's form, and a backing path joined from a
 * directory and a name.
 */
#include <stdlib.h>
#include <string.h>

#include "backing_path.h"
#include "content_hash.h"
#include "unit_check.h"

static int
hash_is(XXH128_hash_t hash, const char *expected)
{
	char hex[CONTENT_HASH_HEX_LENGTH + 1];

	memset(hex, 'x', sizeof(hex));
	content_hash_format(hash, hex);
	return strcmp(hex, expected) == 0;
}

static int
join_is(const char *directory, const char *name, const char *expected)
{
	char *path = backing_path_join(directory, name);
	int same = path && strcmp(path, expected) == 0;

	free(path);
	return same;
}

int
main(void)
{
	/* `xxhsum -H2 /dev/null` and `printf abc | xxhsum -H2`. */
	CHECK(hash_is(XXH3_128bits("", 0), "99aa06d3014798d86001c324468d497f"));
	CHECK(hash_is(XXH3_128bits("abc", 3), "06b05ab6733a618578af5f94892f3950"));
	/* High half first, each half zero-padded to 16 digits. */
	CHECK(hash_is((XXH128_hash_t){.high64 = 1, .low64 = 0xabc},
	              "00000000000000010000000000000abc"));
	CHECK(hash_is((XXH128_hash_t){.high64 = UINT64_MAX, .low64 = 0},
	              "ffffffffffffffff0000000000000000"));

	/* The root is "", so its entries have no leading slash. */
	CHECK(join_is("", "a", "a"));
	CHECK(join_is("d", "a", "d/a"));
	CHECK(join_is("d/e", "name with spaces", "d/e/name with spaces"));
	CHECK(join_is("d", "", "d/"));
	return failures ? 1 : 0;
}
