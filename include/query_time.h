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

/* Why a TIME was refused: query_time_parse()'s negative results. */
enum query_time_error {
	QUERY_TIME_ESYNTAX = -1, /* not of any TIME form ("3x", "", "2026/11/27") */
	QUERY_TIME_EFIELD = -2,  /* a field out of its range ("2026-13-01", "24:00") */
	QUERY_TIME_ERANGE = -3,  /* a date before 1970 or after 2262-04-11 */
	QUERY_TIME_ETOOFAR = -4, /* relative, more than 100 years back */
	QUERY_TIME_ESIGN = -5,   /* relative with a sign ("-3d") */
	QUERY_TIME_EUNIT = -6,   /* a number without its unit ("12") */
};

/*
 * Parse TIME relative to now_ns.  Returns 0 and stores nanoseconds since the
 * epoch in *result_ns, or a negative enum query_time_error when text is not
 * a TIME (nothing stored).
 *
 * Accepted: ISO 8601 date or date-time (see above), and relative times
 * COUNT UNIT, COUNT decimal digits and UNIT one of s m h d w, at most 100
 * years back; "now".  ("30s" and "now" are beyond what INTERFACES.md names,
 * and documented in provfs-query(1).)
 */
int query_time_parse(const char *text, int64_t now_ns, int64_t *result_ns);

/*
 * What to say after "'TEXT' " for a query_time_parse() error: "is not a TIME
 * (ISO 8601 like ...)", "is out of range (...)", ...  A static string.
 */
const char *query_time_strerror(int error);

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
