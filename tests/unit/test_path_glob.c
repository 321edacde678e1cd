/*
 * Unit tests of path_glob: the semantics users rely on in provfs.conf.
 */
#include <stdio.h>
#include <stdlib.h>

#include "path_glob.h"

static int failures;

static void
expect(const char *glob, const char *path, bool expected)
{
	bool got = path_glob_match(glob, path);

	if (got != expected) {
		fprintf(stderr, "FAIL: '%s' vs '%s': expected %s\n", glob, path,
			expected ? "match" : "no match");
		failures++;
	}
}

int
main(void)
{
	/* A name glob matches at any depth, dot files included. */
	expect("*.swp", "a.swp", true);
	expect("*.swp", "dir/sub/.file.swp", true);
	expect("*.swp", "a.swp.txt", false);
	/* "**" spans directories, zero included. */
	expect("__pycache__/**", "__pycache__/x.pyc", true);
	expect("__pycache__/**", "__pycache__/a/b.pyc", true);
	expect("raw/crm/**", "raw/crm/2026/export.csv", true);
	expect("raw/crm/**", "raw/crmx/export.csv", false);
	expect("raw/crm/**", "raw/crm", true);
	expect("**/__pycache__/**", "src/pkg/__pycache__/m.pyc", true);
	expect("**/__pycache__/**", "__pycache__/m.pyc", true);
	expect("features/**/*.parquet", "features/a/b/c.parquet", true);
	expect("features/**/*.parquet", "features/c.parquet", true);
	expect("features/**/*.parquet", "features/c.csv", false);
	/* A '*' never crosses '/' in an anchored glob. */
	expect("raw/*.csv", "raw/a.csv", true);
	expect("raw/*.csv", "raw/sub/a.csv", false);
	expect("tmp/**", "tmp", true);
	expect("tmp/**", "other/tmp/x", false);
	expect("", "x", false);

	if (path_glob_specificity("raw/crm/**") != 8 ||
	    path_glob_specificity("raw/crm/secret.csv") <= path_glob_specificity("raw/crm/**") ||
	    path_glob_specificity("[abc]x") != 1) {
		fprintf(stderr, "FAIL: specificity\n");
		failures++;
	}
	if (failures == 0)
		printf("path_glob: all passed\n");
	return failures ? EXIT_FAILURE : EXIT_SUCCESS;
}
