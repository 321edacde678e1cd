/*
 * test_query_time.c - TIME arguments and time formatting of provfs-query
 * (tools/query_time.c): every accepted form, every rejected one, and the
 * ISO 8601 UTC form JSON carries.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "query_time.h"

static int failures;

#define CHECK(cond, ...)                                                                           \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			fprintf(stderr, "%s:%d: ", __FILE__, __LINE__);                            \
			fprintf(stderr, __VA_ARGS__);                                              \
			fputc('\n', stderr);                                                       \
			failures++;                                                                \
		}                                                                                  \
	} while (0)

#define S 1000000000LL
/* 2026-11-27T04:10:30Z */
#define BASE 1795752630LL

static void
expect(const char *text, int64_t now, int64_t want)
{
	int64_t got = 0;
	int rc = query_time_parse(text, now, &got);

	CHECK(rc == 0, "'%s' was refused", text);
	CHECK(rc != 0 || got == want, "'%s' gave %lld, want %lld", text, (long long)got,
	      (long long)want);
}

static void
refuse(const char *text)
{
	int64_t got = 12345;

	CHECK(query_time_parse(text, BASE * S, &got) < 0, "'%s' was accepted", text);
	CHECK(got == 12345, "'%s' stored a value on failure", text);
}

static void
test_parse_utc(void)
{
	expect("2026-11-27T04:10:30Z", 0, BASE * S);
	expect("2026-11-27t04:10:30z", 0, BASE * S);
	expect("2026-11-27 04:10:30Z", 0, BASE * S);
	expect("2026-11-27T04:10Z", 0, (BASE - 30) * S);
	expect("2026-11-27T04:10:30.123Z", 0, BASE * S + 123000000);
	expect("2026-11-27T04:10:30,5Z", 0, BASE * S + 500000000);
	expect("2026-11-27T04:10:30.123456789Z", 0, BASE * S + 123456789);
	expect("2026-11-27T05:10:30+01:00", 0, BASE * S);
	expect("2026-11-27T05:10:30+0100", 0, BASE * S);
	expect("2026-11-27T05:10:30+01", 0, BASE * S);
	expect("2026-11-26T23:40:30-04:30", 0, BASE * S);
	expect("2024-02-29T00:00:00Z", 0, 1709164800LL * S);
	expect("1970-01-01T00:00:00Z", 0, 0);
}

static void
test_parse_local(void)
{
	/* Local time follows TZ, as date(1) does. */
	setenv("TZ", "UTC", 1);
	tzset();
	expect("2026-11-27", 0, (BASE - 4 * 3600 - 10 * 60 - 30) * S);
	expect("2026-11-27T04:10:30", 0, BASE * S);
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1); /* no tzdata needed */
	tzset();
	expect("2026-11-27T05:10:30", 0, BASE * S);         /* CET, +01:00 */
	expect("2026-07-01T02:00:00", 0, 1782864000LL * S); /* CEST, +02:00 */
	setenv("TZ", "UTC", 1);
	tzset();
}

static void
test_parse_relative(void)
{
	int64_t now = BASE * S;

	expect("30s", now, now - 30 * S);
	expect("30m", now, now - 30 * 60 * S);
	expect("12h", now, now - 12 * 3600 * S);
	expect("3d", now, now - 3 * 86400 * S);
	expect("2w", now, now - 14 * 86400 * S);
	expect("0d", now, now);
	expect("now", now, now);
}

static void
test_parse_refused(void)
{
	static const char *const bad[] = {
	    "",
	    "2w ",
	    " 2w",
	    "2",
	    "w",
	    "-2w",
	    "+2w",
	    "2x",
	    "2ww",
	    "1.5h",
	    "yesterday",
	    "2026-13-01",
	    "2026-00-10",
	    "2026-02-30",
	    "2025-02-29",
	    "2026-11-31",
	    "2026-11-27T",
	    "2026-11-27T24:00",
	    "2026-11-27T04:60",
	    "2026-11-27T04:10:61",
	    "2026-11-27T4:10",
	    "2026-11-27T04:10:30.",
	    "2026-11-27T04:10:30Zx",
	    "2026-11-27T04:10:30+25:00",
	    "2026-11-27T04:10:30+01:60",
	    "26-11-27",
	    "2026/11/27",
	    "2026-1-27",
	    "1969-12-31",
	    "2262-04-12", /* past the last nanosecond an int64 holds (2262-04-11T23:47:16Z) */
	    "3000-01-01T00:00:00Z",
	    "9999-12-31",
	    "99999999999999999999d",
	    "1000000w",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		refuse(bad[i]);
}

/* Each refusal says why: the one-line error names the argument, the value and this. */
static void
test_parse_errors(void)
{
	static const struct {
		const char *text;
		int error;
	} cases[] = {
	    {"", QUERY_TIME_ESYNTAX},
	    {"3x", QUERY_TIME_ESYNTAX},
	    {"3D", QUERY_TIME_ESYNTAX},
	    {"2ww", QUERY_TIME_ESYNTAX},
	    {"1.5h", QUERY_TIME_ESYNTAX},
	    {"yesterday", QUERY_TIME_ESYNTAX},
	    {" 2w", QUERY_TIME_ESYNTAX},
	    {"2w ", QUERY_TIME_ESYNTAX},
	    {"-", QUERY_TIME_ESYNTAX},
	    {"-x", QUERY_TIME_ESYNTAX},
	    {"-3x", QUERY_TIME_ESYNTAX},
	    {"--3d", QUERY_TIME_ESYNTAX},
	    {"2026/11/27", QUERY_TIME_ESYNTAX},
	    {"2026-11-27T", QUERY_TIME_ESYNTAX},
	    {"2026-11-27T4:10", QUERY_TIME_ESYNTAX},
	    {"2026-11-27T04:10:30Zx", QUERY_TIME_ESYNTAX},
	    {"2026-13-01x", QUERY_TIME_ESYNTAX}, /* the form before the fields */
	    {"-3d", QUERY_TIME_ESIGN},
	    {"+3d", QUERY_TIME_ESIGN},
	    {"-99999999999d", QUERY_TIME_ESIGN},
	    {"12", QUERY_TIME_EUNIT},
	    {"0", QUERY_TIME_EUNIT},
	    {"2026-13-01", QUERY_TIME_EFIELD},
	    {"2026-00-10", QUERY_TIME_EFIELD},
	    {"2026-02-30", QUERY_TIME_EFIELD},
	    {"2025-02-29", QUERY_TIME_EFIELD},
	    {"2026-11-27T24:00", QUERY_TIME_EFIELD},
	    {"2026-11-27T04:60", QUERY_TIME_EFIELD},
	    {"2026-11-27T04:10:30+25:00", QUERY_TIME_EFIELD},
	    {"1969-12-31", QUERY_TIME_ERANGE},
	    {"1970-01-01T00:30+01:00", QUERY_TIME_ERANGE},
	    {"2262-04-12", QUERY_TIME_ERANGE},
	    {"9999-12-31", QUERY_TIME_ERANGE},
	    {"99999999999d", QUERY_TIME_ETOOFAR},
	    {"99999999999999999999d", QUERY_TIME_ETOOFAR},
	    {"999999999999999999999999999999s", QUERY_TIME_ETOOFAR},
	    {"1000000w", QUERY_TIME_ETOOFAR},
	    {"36601d", QUERY_TIME_ETOOFAR},
	};
	const char *syntax = query_time_strerror(QUERY_TIME_ESYNTAX);

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t got = 12345;
		int rc = query_time_parse(cases[i].text, BASE * S, &got);

		CHECK(rc == cases[i].error, "'%s': error %d, want %d", cases[i].text, rc,
		      cases[i].error);
		CHECK(got == 12345, "'%s' stored a value on failure", cases[i].text);
		CHECK(strncmp(query_time_strerror(rc), "is ", 3) == 0, "'%s': message '%s'",
		      cases[i].text, query_time_strerror(rc));
		CHECK(strchr(query_time_strerror(rc), '\n') == NULL, "'%s': two lines",
		      cases[i].text);
	}
	/* Every reason has its own words; the syntax help names every form. */
	for (int e = QUERY_TIME_EUNIT; e < QUERY_TIME_ESYNTAX; e++)
		CHECK(strcmp(query_time_strerror(e), syntax) != 0, "error %d has no message", e);
	CHECK(strstr(syntax, "2026-11-27T04:10") && strstr(syntax, "30s") && strstr(syntax, "2w") &&
	          strstr(syntax, "now"),
	      "syntax help: %s", syntax);
	/* The largest accepted: 36600 days, 100 years of 366 days. */
	expect("36600d", BASE * S, BASE * S - 36600LL * 86400 * S);
}

static void
test_format(void)
{
	char buf[QUERY_TIME_BUFSIZE];

	query_time_iso(BASE * S + 123456789, buf);
	CHECK(strcmp(buf, "2026-11-27T04:10:30.123Z") == 0, "iso: %s", buf);
	query_time_iso(0, buf);
	CHECK(strcmp(buf, "1970-01-01T00:00:00.000Z") == 0, "iso epoch: %s", buf);
	query_time_iso(-1, buf);
	CHECK(strcmp(buf, "1969-12-31T23:59:59.999Z") == 0, "iso before epoch: %s", buf);

	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1); /* no tzdata needed */
	tzset();
	query_time_local(BASE * S, buf);
	CHECK(strcmp(buf, "2026-11-27 05:10:30") == 0, "local: %s", buf);
	setenv("TZ", "UTC", 1);
	tzset();

	query_time_relative(BASE * S, BASE * S, buf);
	CHECK(strcmp(buf, "just now") == 0, "relative 0: %s", buf);
	query_time_relative(BASE * S - 45 * S, BASE * S, buf);
	CHECK(strcmp(buf, "45s ago") == 0, "relative 45s: %s", buf);
	query_time_relative(BASE * S - 3 * 86400 * S, BASE * S, buf);
	CHECK(strcmp(buf, "3d ago") == 0, "relative 3d: %s", buf);
	query_time_relative(BASE * S - 30 * 86400 * S, BASE * S, buf);
	CHECK(strcmp(buf, "4w ago") == 0, "relative 30d: %s", buf);
	query_time_relative(BASE * S + 300 * S, BASE * S, buf);
	CHECK(strcmp(buf, "in 5m") == 0, "relative future: %s", buf);

	query_time_duration(850 * 1000000LL, buf);
	CHECK(strcmp(buf, "850ms") == 0, "duration ms: %s", buf);
	query_time_duration(12345 * 1000000LL, buf);
	CHECK(strcmp(buf, "12.3s") == 0, "duration s: %s", buf);
	query_time_duration(245 * S, buf);
	CHECK(strcmp(buf, "4m05s") == 0, "duration m: %s", buf);
	query_time_duration(7380 * S, buf);
	CHECK(strcmp(buf, "2h03m") == 0, "duration h: %s", buf);
}

static void
test_round_trip(void)
{
	/* What JSON prints, provfs-query accepts back, to the millisecond. */
	char buf[QUERY_TIME_BUFSIZE];
	int64_t t = BASE * S + 987000000, back = 0;

	query_time_iso(t, buf);
	CHECK(query_time_parse(buf, 0, &back) == 0 && back == t, "round trip of %s", buf);
}

int
main(void)
{
	test_parse_utc();
	test_parse_local();
	test_parse_relative();
	test_parse_refused();
	test_parse_errors();
	test_format();
	test_round_trip();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
