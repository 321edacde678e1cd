/*
 * query_time.c - parse TIME arguments, format times for JSON and for people.
 *
 * Parsing is strict (every character must be accounted for, every field in
 * range) so that a typo is an error rather than a surprising time.  Local
 * times go through mktime() with tm_isdst = -1, so the zone rules of TZ
 * decide, as they do for date(1).
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "query_time.h"

int64_t
query_time_now(void)
{
	return wall_clock_ns();
}

/* Read exactly width decimal digits. */
static bool
digits(const char **p, int width, int *value)
{
	int v = 0;

	for (int i = 0; i < width; i++) {
		if (!isdigit((unsigned char)(*p)[i]))
			return false;
		v = v * 10 + ((*p)[i] - '0');
	}
	*p += width;
	*value = v;
	return true;
}

static int
days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

static int
parse_relative(const char *text, int64_t now_ns, int64_t *result_ns)
{
	const char *p = text;
	int64_t count = 0, unit;

	if (strcmp(text, "now") == 0) {
		*result_ns = now_ns;
		return 0;
	}
	if ((text[0] == '-' || text[0] == '+') && isdigit((unsigned char)text[1])) {
		int64_t ignored;
		int rc = parse_relative(text + 1, now_ns, &ignored);
		/* "-3d": the user meant a relative TIME; say how to write it. */
		return rc == 0 || rc == QUERY_TIME_ETOOFAR ? QUERY_TIME_ESIGN : QUERY_TIME_ESYNTAX;
	}
	if (!isdigit((unsigned char)*p))
		return QUERY_TIME_ESYNTAX;
	/* Digits by hand: no sign, no spaces, and an overflow is "too far". */
	for (; isdigit((unsigned char)*p); p++)
		if (count < INT64_MAX / 10)
			count = count * 10 + (*p - '0');
	if (*p == '\0')
		return QUERY_TIME_EUNIT;
	if (p[1] != '\0')
		return QUERY_TIME_ESYNTAX;
	switch (*p) {
	case 's':
		unit = NANOSECONDS_PER_SECOND;
		break;
	case 'm':
		unit = 60 * NANOSECONDS_PER_SECOND;
		break;
	case 'h':
		unit = 3600 * NANOSECONDS_PER_SECOND;
		break;
	case 'd':
		unit = 86400 * NANOSECONDS_PER_SECOND;
		break;
	case 'w':
		unit = 7 * 86400 * NANOSECONDS_PER_SECOND;
		break;
	default:
		return QUERY_TIME_ESYNTAX;
	}
	/* A century back is far enough and keeps the product in range. */
	if (count > 100LL * 366 * 86400 * NANOSECONDS_PER_SECOND / unit)
		return QUERY_TIME_ETOOFAR;
	*result_ns = now_ns - count * unit;
	return 0;
}

int
query_time_parse(const char *text, int64_t now_ns, int64_t *result_ns)
{
	const char *p = text;
	struct tm tm = {0};
	int year, month, day, hour = 0, minute = 0, second = 0;
	int64_t fraction_ns = 0;
	bool has_zone = false;
	int zone_sign = 1, zone_hour = 0, zone_minute = 0;
	time_t seconds;

	if (text == NULL || text[0] == '\0')
		return QUERY_TIME_ESYNTAX;
	if (strlen(text) < 10 || text[4] != '-')
		return parse_relative(text, now_ns, result_ns);

	if (!digits(&p, 4, &year) || *p++ != '-' || !digits(&p, 2, &month) || *p++ != '-' ||
	    !digits(&p, 2, &day))
		return QUERY_TIME_ESYNTAX;
	if (*p == 'T' || *p == 't' || *p == ' ') {
		p++;
		if (!digits(&p, 2, &hour) || *p++ != ':' || !digits(&p, 2, &minute))
			return QUERY_TIME_ESYNTAX;
		if (*p == ':') {
			p++;
			if (!digits(&p, 2, &second))
				return QUERY_TIME_ESYNTAX;
			if (*p == '.' || *p == ',') {
				int64_t scale = NANOSECONDS_PER_SECOND / 10;
				p++;
				if (!isdigit((unsigned char)*p))
					return QUERY_TIME_ESYNTAX;
				for (; isdigit((unsigned char)*p); p++) {
					fraction_ns += (*p - '0') * scale;
					scale /= 10;
				}
			}
		}
		if (*p == 'Z' || *p == 'z') {
			has_zone = true;
			p++;
		} else if (*p == '+' || *p == '-') {
			has_zone = true;
			zone_sign = *p++ == '-' ? -1 : 1;
			if (!digits(&p, 2, &zone_hour))
				return QUERY_TIME_ESYNTAX;
			if (*p == ':')
				p++;
			if (isdigit((unsigned char)*p) && !digits(&p, 2, &zone_minute))
				return QUERY_TIME_ESYNTAX;
		}
	}
	/* The form first, then the fields: "2026-13-01x" is not a TIME at all. */
	if (*p != '\0')
		return QUERY_TIME_ESYNTAX;
	if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
		return QUERY_TIME_EFIELD;
	if (hour > 23 || minute > 59 || second > 60 || zone_hour > 14 || zone_minute > 59)
		return QUERY_TIME_EFIELD;
	if (year < 1970)
		return QUERY_TIME_ERANGE;

	tm.tm_year = year - 1900;
	tm.tm_mon = month - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = minute;
	tm.tm_sec = second;
	if (has_zone) {
		seconds = timegm(&tm);
		seconds -= zone_sign * (zone_hour * 3600 + zone_minute * 60);
	} else {
		tm.tm_isdst = -1;
		seconds = mktime(&tm);
		if (seconds == (time_t)-1)
			return QUERY_TIME_ERANGE;
	}
	/* Times are nanoseconds in an int64: nothing after 2262-04-11. */
	if (seconds < 0 || seconds >= INT64_MAX / NANOSECONDS_PER_SECOND)
		return QUERY_TIME_ERANGE;
	*result_ns = (int64_t)seconds * NANOSECONDS_PER_SECOND + fraction_ns;
	return 0;
}

const char *
query_time_strerror(int error)
{
	switch (error) {
	case QUERY_TIME_EFIELD:
		return "is not a valid date or time of day";
	case QUERY_TIME_ERANGE:
		return "is out of range (a TIME lies between 1970-01-01 and 2262-04-11)";
	case QUERY_TIME_ETOOFAR:
		return "is out of range (a relative TIME goes back at most 100 years)";
	case QUERY_TIME_ESIGN:
		return "is not a TIME (relative TIMEs count back from now and take no sign: "
		       "3d is 3 days ago)";
	case QUERY_TIME_EUNIT:
		return "is not a TIME (a number needs its unit: s, m, h, d or w, as in 12h)";
	}
	return "is not a TIME (ISO 8601 like 2026-11-27 or 2026-11-27T04:10, or 30s, 30m, "
	       "12h, 3d, 2w, now)";
}

/* Split ns into whole seconds and the rest, rounding toward the past. */
static void
split(int64_t ns, time_t *seconds, int64_t *rest_ns)
{
	int64_t s = ns / NANOSECONDS_PER_SECOND, r = ns % NANOSECONDS_PER_SECOND;

	if (r < 0) {
		r += NANOSECONDS_PER_SECOND;
		s--;
	}
	*seconds = (time_t)s;
	*rest_ns = r;
}

void
query_time_iso(int64_t ns, char buf[QUERY_TIME_BUFSIZE])
{
	struct tm tm;
	time_t seconds;
	int64_t rest;

	split(ns, &seconds, &rest);
	gmtime_r(&seconds, &tm);
	snprintf(buf, QUERY_TIME_BUFSIZE, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
	         (int)(rest / 1000000));
}

void
query_time_local(int64_t ns, char buf[QUERY_TIME_BUFSIZE])
{
	struct tm tm;
	time_t seconds;
	int64_t rest;

	split(ns, &seconds, &rest);
	localtime_r(&seconds, &tm);
	snprintf(buf, QUERY_TIME_BUFSIZE, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900,
	         tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static void
coarse(int64_t ns, char *buf, size_t size)
{
	int64_t s = ns / NANOSECONDS_PER_SECOND;

	if (s < 60)
		snprintf(buf, size, "%llds", (long long)s);
	else if (s < 3600)
		snprintf(buf, size, "%lldm", (long long)(s / 60));
	else if (s < 2 * 86400)
		snprintf(buf, size, "%lldh", (long long)(s / 3600));
	else if (s < 14 * 86400)
		snprintf(buf, size, "%lldd", (long long)(s / 86400));
	else
		snprintf(buf, size, "%lldw", (long long)(s / (7 * 86400)));
}

void
query_time_relative(int64_t ns, int64_t now_ns, char buf[QUERY_TIME_BUFSIZE])
{
	int64_t delta = now_ns - ns;
	char amount[32];

	if (delta >= 0 && delta < NANOSECONDS_PER_SECOND) {
		snprintf(buf, QUERY_TIME_BUFSIZE, "just now");
		return;
	}
	coarse(delta < 0 ? -delta : delta, amount, sizeof(amount));
	snprintf(buf, QUERY_TIME_BUFSIZE, delta < 0 ? "in %s" : "%s ago", amount);
}

void
query_time_duration(int64_t ns, char buf[QUERY_TIME_BUFSIZE])
{
	long long ms = (long long)(ns / 1000000), s = (long long)(ns / NANOSECONDS_PER_SECOND);

	if (ns < 0)
		snprintf(buf, QUERY_TIME_BUFSIZE, "?");
	else if (ms < 1000)
		snprintf(buf, QUERY_TIME_BUFSIZE, "%lldms", ms);
	else if (s < 60)
		snprintf(buf, QUERY_TIME_BUFSIZE, "%lld.%llds", s, (ms % 1000) / 100);
	else if (s < 3600)
		snprintf(buf, QUERY_TIME_BUFSIZE, "%lldm%02llds", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, QUERY_TIME_BUFSIZE, "%lldh%02lldm", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, QUERY_TIME_BUFSIZE, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
}
