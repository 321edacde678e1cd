/*
 * clock.h - the clocks provfs reads, as signed 64-bit nanoseconds.
 *
 * Every module stamps or times something: the recorder stamps events with
 * the wall clock (the store's time format is nanoseconds since the epoch),
 * deadlines and rate limits run on the monotonic clock, which no date
 * change can move.  Eight modules once carried their own four-line copy of
 * these helpers; one header keeps the arithmetic, and the choice of clock
 * for each purpose, in one place.  Inline: some run on every request.
 */
#ifndef PROVFS_CLOCK_H
#define PROVFS_CLOCK_H

#include <stdint.h>
#include <time.h>

#define NANOSECONDS_PER_SECOND 1000000000LL

static inline int64_t
timespec_ns(struct timespec t)
{
	return (int64_t)t.tv_sec * NANOSECONDS_PER_SECOND + t.tv_nsec;
}

static inline int64_t
clock_ns(clockid_t clock)
{
	struct timespec now;

	clock_gettime(clock, &now);
	return timespec_ns(now);
}

/* For intervals and deadlines. */
static inline int64_t
monotonic_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/* The same, to a tick's precision, without a full clock read. */
static inline int64_t
monotonic_coarse_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC_COARSE);
}

/* For records: the time a user reads (nanoseconds since the epoch). */
static inline int64_t
wall_clock_ns(void)
{
	return clock_ns(CLOCK_REALTIME);
}

#endif
