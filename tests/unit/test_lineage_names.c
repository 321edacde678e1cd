/*
 * Unit tests of the names lineage/ gives files and strings: dataset names
 * through [openlineage] path_map, the JSON strings of names that are not
 * UTF-8, and the times of events and PROV documents.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lineage_i.h"

static int failures;

static void
expect_name(const char *maps, const char *mount_point, const char *path, const char *expected)
{
	struct string_list map = {0};
	char *copy = strdup(maps), *save = NULL;

	for (char *word = strtok_r(copy, " ", &save); word; word = strtok_r(NULL, " ", &save))
		string_list_append(&map, word);
	char *got = lineage_dataset_name(&map, mount_point, path);
	if (got == NULL || strcmp(got, expected) != 0) {
		fprintf(stderr, "FAIL: map '%s', '%s' + '%s': got '%s', expected '%s'\n", maps,
		        mount_point, path, got ? got : "(null)", expected);
		failures++;
	}
	free(got);
	free(copy);
	string_list_release(&map);
}

static void
expect_json(const char *bytes, size_t length, const char *expected)
{
	json_object *jso = lineage_jstr_len(bytes, length);
	const char *got = lineage_json_text(jso);

	if (strcmp(got, expected) != 0) {
		fprintf(stderr, "FAIL: JSON of %zu bytes: got %s, expected %s\n", length, got,
		        expected);
		failures++;
	}
	json_object_put(jso);
}

static void
expect_time(int64_t ns, int offset, const char *expected)
{
	char got[LINEAGE_TIME_SIZE];

	lineage_time(ns, offset, got);
	if (strcmp(got, expected) != 0) {
		fprintf(stderr, "FAIL: time %lld: got %s, expected %s\n", (long long)ns, got,
		        expected);
		failures++;
	}
}

int
main(void)
{
	/* No map: the mount path. */
	expect_name("", "/mnt/data", "raw/x.csv", "/mnt/data/raw/x.csv");
	expect_name("", "/", "x", "/x");
	expect_name("", "/mnt/data", "", "/mnt/data");
	/* A prefix is whole components only; the first match wins. */
	expect_name("/mnt/data=/data", "/mnt/data", "raw/x.csv", "/data/raw/x.csv");
	expect_name("/mnt/data=/data", "/mnt/database", "x", "/mnt/database/x");
	expect_name("/mnt/data/=/data/", "/mnt/data", "x", "/data/x");
	expect_name("/mnt=/a /mnt/data=/b", "/mnt/data", "x", "/a/data/x");
	expect_name("/mnt/other=/o /mnt/data=/shared", "/mnt/data", "y", "/shared/y");
	expect_name("/mnt/data=/", "/mnt/data", "x", "/x");
	expect_name("/mnt/data=/", "/mnt/data", "", "/");
	expect_name("/mnt/data=/data", "/mnt/data", "", "/data");

	/* JSON strings: valid UTF-8 kept, other bytes as \udcXX, controls escaped. */
	expect_json("a/b", 3, "\"a/b\"");
	expect_json("caf\xc3\xa9", 5, "\"caf\xc3\xa9\"");
	expect_json("x\xff\xfey", 4, "\"x\\udcff\\udcfey\"");
	expect_json("a\nb\"c\\", 6, "\"a\\u000ab\\\"c\\\\\"");
	expect_json("\xed\xa0\x80", 3, "\"\\udced\\udca0\\udc80\""); /* an encoded surrogate */
	expect_json("\xe2\x80\xa8", 3, "\"\\u2028\"");
	expect_json("a\0b", 3, "\"a\\u0000b\"");

	/* Times: milliseconds, UTC, "Z" or "+00:00"; before 1970 too. */
	expect_time(1764216630123456789LL, 0, "2025-11-27T04:10:30.123Z");
	expect_time(1764216630123456789LL, 1, "2025-11-27T04:10:30.123+00:00");
	expect_time(-1, 0, "1969-12-31T23:59:59.999Z");

	if (failures) {
		fprintf(stderr, "%d failures\n", failures);
		return 1;
	}
	return 0;
}
