/*
 * query_progress.c - a progress bar on stderr for long commands (verify
 * --all, prune, large exports).
 *
 * A bar is drawn only when stderr is a terminal (q->progress), so piped and
 * logged output never holds carriage returns or escape sequences.  It is
 * redrawn at most ten times a second: a loop over a million rows may call
 * q_progress_update() for every row at the cost of one clock read.  The
 * line fits an 80-column terminal:
 *
 *   prune: deleting [##########..........]  512,000/1,024,000 rows  85,000/s
 *
 * and is erased by q_progress_end(), so the command's own output starts on
 * a clean line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include "clock.h"
#include "query_i.h"

#define BAR_WIDTH 20
#define REDRAW_NS (100 * 1000 * 1000)

/* 1234567 as "1,234,567" into buf (at least 32 bytes). */
static const char *
grouped(int64_t n, char *buf, size_t size)
{
	char digits[32];
	size_t len, out = 0;

	if (n < 0)
		n = 0;
	len = (size_t)snprintf(digits, sizeof(digits), "%lld", (long long)n);
	for (size_t i = 0; i < len && out + 2 < size; i++) {
		if (i > 0 && (len - i) % 3 == 0)
			buf[out++] = ',';
		buf[out++] = digits[i];
	}
	buf[out] = '\0';
	return buf;
}

void
q_progress_start(struct query *q, struct q_progress *progress, const char *what,
                 const char *unit, int64_t total)
{
	memset(progress, 0, sizeof(*progress));
	progress->enabled = q->progress;
	progress->program = q->command ? q->command : "provfs-query";
	progress->what = what;
	progress->unit = unit;
	progress->total = total;
	progress->begin_ns = monotonic_ns();
	progress->drawn_ns = 0;
}

static void
draw(struct q_progress *progress, int64_t now_ns)
{
	char done[32], total[32], rate[32];
	double elapsed = (double)(now_ns - progress->begin_ns) / 1e9;
	int64_t per_second = elapsed > 0.05 ? (int64_t)((double)progress->done / elapsed) : 0;
	char bar[BAR_WIDTH + 1];

	if (progress->total > 0) {
		int64_t filled = progress->done >= progress->total
		                     ? BAR_WIDTH
		                     : progress->done * BAR_WIDTH / progress->total;
		for (int i = 0; i < BAR_WIDTH; i++)
			bar[i] = i < filled ? '#' : '.';
		bar[BAR_WIDTH] = '\0';
		fprintf(stderr, "\r%s: %s [%s] %s/%s %s  %s/s%s%s\033[K", progress->program,
		        progress->what, bar, grouped(progress->done, done, sizeof(done)),
		        grouped(progress->total, total, sizeof(total)), progress->unit,
		        grouped(per_second, rate, sizeof(rate)), progress->detail[0] ? "  " : "",
		        progress->detail);
	} else {
		/* Unknown total: counts and rate only. */
		fprintf(stderr, "\r%s: %s %s %s  %s/s\033[K", progress->program, progress->what,
		        grouped(progress->done, done, sizeof(done)), progress->unit,
		        grouped(per_second, rate, sizeof(rate)));
	}
	progress->drawn_ns = now_ns;
	progress->shown = true;
}

void
q_progress_update(struct q_progress *progress, int64_t done)
{
	int64_t now_ns;

	progress->done = done;
	if (!progress->enabled)
		return;
	now_ns = monotonic_ns();
	if (now_ns - progress->drawn_ns < REDRAW_NS)
		return;
	draw(progress, now_ns);
}

void
q_progress_detail(struct q_progress *progress, const char *detail)
{
	snprintf(progress->detail, sizeof(progress->detail), "%s", detail);
}

void
q_progress_end(struct q_progress *progress)
{
	if (progress->enabled && progress->shown)
		fputs("\r\033[K", stderr);
	progress->shown = false;
}

/*
 * A memory stream that counts lines: what open_memstream() gives, for a
 * writer that emits one record a line (OpenLineage events), with the count
 * shown as progress.  The buffer is published to *text and *length (NUL
 * terminated) when the stream is closed.
 */
struct counting_stream {
	struct q_progress *progress;
	char **text;
	size_t *length;
	char *buf;
	size_t len, alloc;
	int64_t lines;
};

static ssize_t
counting_write(void *cookie, const char *data, size_t size)
{
	struct counting_stream *cs = cookie;

	if (cs->len + size + 1 > cs->alloc) {
		size_t alloc = cs->alloc ? cs->alloc : 65536;
		char *buf;

		while (cs->len + size + 1 > alloc)
			alloc *= 2;
		buf = realloc(cs->buf, alloc);
		if (buf == NULL)
			return -1;
		cs->buf = buf;
		cs->alloc = alloc;
	}
	memcpy(cs->buf + cs->len, data, size);
	cs->len += size;
	cs->buf[cs->len] = '\0';
	for (const char *p = data; (p = memchr(p, '\n', size - (size_t)(p - data))) != NULL; p++)
		cs->lines++;
	q_progress_update(cs->progress, cs->lines);
	return (ssize_t)size;
}

static int
counting_close(void *cookie)
{
	struct counting_stream *cs = cookie;
	int rc;

	if (cs->buf == NULL)
		cs->buf = calloc(1, 1);
	*cs->text = cs->buf;
	*cs->length = cs->len;
	rc = cs->buf ? 0 : -1;
	free(cs);
	return rc;
}

FILE *
q_progress_memstream(struct q_progress *progress, char **text, size_t *length)
{
	static const cookie_io_functions_t functions = {
	    .write = counting_write,
	    .close = counting_close,
	};
	struct counting_stream *cs = calloc(1, sizeof(*cs));
	FILE *stream;

	*text = NULL;
	*length = 0;
	if (cs == NULL)
		return NULL;
	cs->progress = progress;
	cs->text = text;
	cs->length = length;
	stream = fopencookie(cs, "w", functions);
	if (stream == NULL)
		free(cs);
	return stream;
}
