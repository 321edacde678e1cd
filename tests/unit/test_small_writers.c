/*
 * test_small_writers.c - the run of small new files after which a caller's
 * next new file is served by the daemon (fs/small_writers.c).
 */
#include <stdio.h>
#include <string.h>

#include "../../fs/small_writers_i.h"
#include "unit_check.h"

static struct small_writers writers;

/* One handle of thread, closed once with size bytes. */
static void
close_new_file(pid_t thread, off_t size)
{
	bool counted = false;

	small_writers_note(&writers, thread, size, &counted);
}

int
main(void)
{
	/* Nobody known: everyone passes through. */
	CHECK(!small_writers_expected(&writers, 100));
	CHECK(!small_writers_expected(&writers, 0));

	/* Four small new files in a row make the next one expected small. */
	for (int i = 0; i < 3; i++)
		close_new_file(100, 4096);
	CHECK(!small_writers_expected(&writers, 100));
	close_new_file(100, 4096);
	CHECK(small_writers_expected(&writers, 100));
	/* Only for that caller. */
	CHECK(!small_writers_expected(&writers, 101));

	/* One large file ends the run at once; small ones start it again. */
	close_new_file(100, 64 * 1024);
	CHECK(!small_writers_expected(&writers, 100));
	for (int i = 0; i < 4; i++)
		close_new_file(100, 65535);
	CHECK(small_writers_expected(&writers, 100));

	/* A handle closed several times counts once while small (a shell's
	 * dup2 closes it before and after the write); an empty close is no
	 * evidence; growing large on a later close still ends the run. */
	memset(&writers, 0, sizeof(writers));
	bool counted = false;
	small_writers_note(&writers, 200, 0, &counted);
	CHECK(!counted);
	for (int i = 0; i < 5; i++)
		small_writers_note(&writers, 200, 10, &counted);
	CHECK(!small_writers_expected(&writers, 200));
	for (int i = 0; i < 3; i++)
		close_new_file(200, 10);
	CHECK(small_writers_expected(&writers, 200));
	small_writers_note(&writers, 200, 1 << 20, &counted);
	CHECK(!small_writers_expected(&writers, 200));

	/* A thread that takes another's slot starts from nothing: a reused
	 * slot never lends its run. */
	memset(&writers, 0, sizeof(writers));
	for (int i = 0; i < 4; i++)
		close_new_file(300, 1);
	for (pid_t other = 301; other < 301 + 4 * SMALL_WRITER_SLOTS; other++) {
		close_new_file(other, 1);
		CHECK(!small_writers_expected(&writers, other));
	}

	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
