/*
 * test_query_escape.c - hostile names on their way out of provfs-query
 * (tools/query_escape.c): text for a terminal carries no control character
 * and stays unambiguous, JSON is valid UTF-8 and keeps non-UTF-8 bytes
 * recoverable ("\udcXX"), DOT strings cannot be closed or interpreted.
 */
#include <stdio.h>
#include <string.h>

#include "query_escape.h"

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

enum kind { TEXT, TEXT_ASCII, JSON, DOT };

static void
expect(enum kind kind, const char *in, size_t len, const char *want)
{
	struct qbuf out = QBUF_INIT;

	qbuf_init(&out);
	switch (kind) {
	case TEXT:
		escape_text(&out, in, len, true);
		break;
	case TEXT_ASCII:
		escape_text(&out, in, len, false);
		break;
	case JSON:
		escape_json(&out, in, len);
		break;
	case DOT:
		escape_dot(&out, in, len);
		break;
	}
	CHECK(strcmp(out.buf, want) == 0, "kind %d: got [%s], want [%s]", kind, out.buf, want);
	qbuf_release(&out);
}

#define E(kind, literal, want) expect(kind, literal, sizeof(literal) - 1, want)

/* No byte below 0x20, no DEL, no C1 control encoded in UTF-8. */
static void
check_inert(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		CHECK(*p >= 0x20 && *p != 0x7f, "control byte %02x in [%s]", *p, s);
		CHECK(!(p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f), "C1 control in [%s]", s);
	}
}

static void
test_text(void)
{
	E(TEXT, "plain/path-1.csv", "plain/path-1.csv");
	E(TEXT, "a\nb", "a\\nb");
	E(TEXT, "a\\nb", "a\\\\nb"); /* a literal backslash stays distinguishable */
	E(TEXT, "tab\there\r", "tab\\there\\r");
	E(TEXT, "\x1b[31mred\x1b[0m", "\\e[31mred\\e[0m");
	E(TEXT, "\x1b]0;title\x07", "\\e]0;title\\x07");
	E(TEXT, "del\x7f", "del\\x7f");
	E(TEXT, "quote\"'", "quote\"'");
	E(TEXT, "caf\xc3\xa9", "caf\xc3\xa9"); /* valid UTF-8 passes */
	E(TEXT, "\xe6\x97\xa5\xe6\x9c\xac", "\xe6\x97\xa5\xe6\x9c\xac");
	E(TEXT, "bad\xff\xfe", "bad\\xff\\xfe");
	E(TEXT, "\xc3", "\\xc3");                            /* truncated sequence */
	E(TEXT, "\xc0\xaf", "\\xc0\\xaf");                   /* overlong '/' */
	E(TEXT, "\xed\xa0\x80", "\\xed\\xa0\\x80");          /* encoded surrogate */
	E(TEXT, "\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80"); /* above U+10FFFF */
	E(TEXT,
	  "csi\xc2\x9b"
	  "2J",
	  "csi\\u009b2J"); /* C1 CSI */
	E(TEXT,
	  "evil\xe2\x80\xae"
	  "txt.exe",
	  "evil\\u202etxt.exe"); /* bidi override */
	E(TEXT, "nul\0byte", "nul\\x00byte");
	E(TEXT_ASCII, "caf\xc3\xa9", "caf\\xc3\\xa9");

	static const char hostile[] = "a\n\x1b[2J\x07\xc2\x9b\xff\\\"'\t\r\x7f\xe2\x80\xa8z";
	struct qbuf out = QBUF_INIT;
	qbuf_init(&out);
	escape_text(&out, hostile, sizeof(hostile) - 1, true);
	check_inert(out.buf);
	qbuf_release(&out);
}

static void
test_json(void)
{
	E(JSON, "plain", "\"plain\"");
	E(JSON, "a/b", "\"a/b\"");
	E(JSON, "q\"b\\", "\"q\\\"b\\\\\"");
	E(JSON, "n\nt\tr\rb\bf\f", "\"n\\nt\\tr\\rb\\bf\\f\"");
	E(JSON, "\x1b[0m\x01\x7f", "\"\\u001b[0m\\u0001\\u007f\"");
	E(JSON, "nul\0x", "\"nul\\u0000x\"");
	E(JSON, "caf\xc3\xa9", "\"caf\xc3\xa9\"");
	E(JSON, "bad\xff\xfe", "\"bad\\udcff\\udcfe\"");
	E(JSON, "\xed\xa0\x80", "\"\\udced\\udca0\\udc80\"");
	E(JSON, "\xc3(", "\"\\udcc3(\"");
	E(JSON, "ls\xe2\x80\xa8ps\xe2\x80\xa9", "\"ls\\u2028ps\\u2029\"");
}

static void
test_dot(void)
{
	E(DOT, "plain.csv", "plain.csv");
	E(DOT, "q\"uote", "q\\\"uote");
	E(DOT, "back\\slash", "back\\\\\\\\slash"); /* text "\\\\" then DOT-escaped */
	E(DOT, "new\nline", "new\\\\nline");        /* shown as \n, never a line break */
	E(DOT, "left\\l", "left\\\\\\\\l");         /* no Graphviz \l justification */
	E(DOT, "a&amp;b", "a&amp;amp;b");           /* no entity */
	E(DOT, "bad\xff", "bad\\\\xff");            /* valid UTF-8 for Graphviz */
	E(DOT, "\x1b[31m", "\\\\e[31m");
}

static void
test_helpers(void)
{
	struct qbuf sb = QBUF_INIT;
	uint32_t cp = 0;

	qbuf_init(&sb);
	qbuf_addf(&sb, "%s-%d", "x", 42);
	for (int i = 0; i < 100; i++)
		qbuf_adds(&sb, "0123456789");
	CHECK(sb.len == 4 + 1000 && strncmp(sb.buf, "x-42", 4) == 0, "qbuf: %zu", sb.len);
	qbuf_release(&sb);

	CHECK(utf8_decode((const unsigned char *)"\xe2\x82\xac", 3, &cp) == 3 && cp == 0x20ac,
	      "euro sign");
	CHECK(utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp) == 0, "truncated");
	CHECK(utf8_prefix("ab\xc3\xa9"
	                  "cd",
	                  6, 3) == 4,
	      "prefix keeps a whole character");
	CHECK(utf8_prefix("abc", 3, 10) == 3, "prefix of a short string");
}

int
main(void)
{
	test_text();
	test_json();
	test_dot();
	test_helpers();
	if (failures)
		fprintf(stderr, "%d check(s) failed\n", failures);
	return failures ? 1 : 0;
}
