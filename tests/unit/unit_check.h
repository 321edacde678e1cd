/*
 * unit_check.h - the assertion C unit tests share: CHECK(condition) names
 * the failing line and condition on stderr and counts it in failures, so
 * that one run reports every failure; main returns failures ? 1 : 0.
 * Included once per test program (it defines failures).
 */
#ifndef PROVFS_UNIT_CHECK_H
#define PROVFS_UNIT_CHECK_H

#include <stdio.h>

static int failures;

#define CHECK(condition)                                                                           \
	do {                                                                                       \
		if (!(condition)) {                                                                \
			fprintf(stderr, "FAIL line %d: %s\n", __LINE__, #condition);               \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

#endif
