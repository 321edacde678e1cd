/*
 * query_time.h - TIME arguments and the ways provfs-query prints a time.
 *
 * The store keeps nanoseconds since the Unix epoch (UTC).  Users type
 * TIME as ISO 8601 ("2026-11-27", "2026-11-27T04:10", "2026-11-27 04:10:30.5",
 * "2026-11-27T04:10:30Z", "...+01:00"; without a zone it is local time, as
 * with date(1)) or relative to now ("30s", "30m", "12h", "3d", "2w" ago;
 * "now").  JSON carries ISO 8601 UTC with milliseconds; text shows local time
 * and how long ago.
 */
#ifndef PROVFS_QUERY_TIME_H
#define PROVFS_QUERY_TIME_H

#include <stdint.h>

#define QUERY_TIME_BUFSIZE 96

/*
 * Parse TIME relative to now_ns.  Returns 0 and stores nanoseconds since the
 * epoch in *result_ns, or -1 when text is not a TIME (nothing stored).
 */
int query_time_parse(const char *text, int64_t now_ns, int64_t *result_ns);

/* "2026-11-27T04:10:30.123Z" (milliseconds truncated toward the past). */
void query_time_iso(int64_t ns, char buf[QUERY_TIME_BUFSIZE]);

/* Local time "2026-11-27 05:10:30". */
void query_time_local(int64_t ns, char buf[QUERY_TIME_BUFSIZE]);

/* "just now", "45s ago", "3m ago", "5h ago", "3d ago", "2w ago", "in 5m". */
void query_time_relative(int64_t ns, int64_t now_ns, char buf[QUERY_TIME_BUFSIZE]);

/* A length of time: "850ms", "12.3s", "4m05s", "2h03m", "3d04h". */
void query_time_duration(int64_t ns, char buf[QUERY_TIME_BUFSIZE]);

/* The current time in nanoseconds since the epoch. */
int64_t query_time_now(void);

#endif
