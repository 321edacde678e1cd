/*
 * query_escape.c - byte buffers and the text, JSON and DOT escapings of
 * names provfs-query does not control.  The schemes are specified in
 * query_escape.h; tests/unit/test_query_escape.c pins them down.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query_escape.h"

static void
qbuf_grow(struct qbuf *sb, size_t extra)
{
	size_t want = sb->len + extra + 1;

	if (want <= sb->alloc)
		return;
	size_t alloc = sb->alloc ? sb->alloc : 64;
	while (alloc < want)
		alloc *= 2;
	char *buf = realloc(sb->buf, alloc);
	if (buf == NULL) {
		fputs("provfs-query: out of memory\n", stderr);
		abort();
	}
	sb->buf = buf;
	sb->alloc = alloc;
}

void
qbuf_init(struct qbuf *sb)
{
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
	qbuf_grow(sb, 0);
	sb->buf[0] = '\0';
}

void
qbuf_release(struct qbuf *sb)
{
	free(sb->buf);
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
}

void
qbuf_reset(struct qbuf *sb)
{
	if (sb->buf == NULL) {
		qbuf_init(sb);
		return;
	}
	sb->len = 0;
	sb->buf[0] = '\0';
}

char *
qbuf_detach(struct qbuf *sb)
{
	char *buf;

	if (sb->buf == NULL)
		qbuf_init(sb);
	buf = sb->buf;
	sb->buf = NULL;
	sb->len = 0;
	sb->alloc = 0;
	return buf;
}

void
qbuf_add(struct qbuf *sb, const void *data, size_t len)
{
	qbuf_grow(sb, len);
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void
qbuf_addc(struct qbuf *sb, char c)
{
	qbuf_add(sb, &c, 1);
}

void
qbuf_adds(struct qbuf *sb, const char *s)
{
	qbuf_add(sb, s, strlen(s));
}

void
qbuf_addf(struct qbuf *sb, const char *fmt, ...)
{
	va_list ap;
	int n;

	qbuf_grow(sb, 64);
	va_start(ap, fmt);
	n = vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sb->alloc - sb->len) {
		qbuf_grow(sb, (size_t)n);
		va_start(ap, fmt);
		vsnprintf(sb->buf + sb->len, sb->alloc - sb->len, fmt, ap);
		va_end(ap);
	}
	sb->len += (size_t)n;
}

size_t
utf8_decode(const unsigned char *s, size_t len, uint32_t *code_point)
{
	uint32_t c;
	size_t n;

	if (s[0] < 0x80) {
		*code_point = s[0];
		return 1;
	}
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0; /* continuation byte, overlong lead (c0, c1) or f5..ff */
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	/* Shortest form only, no surrogates, nothing above U+10FFFF. */
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10ffff ||
	    (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*code_point = c;
	return n;
}

/* Characters a terminal may act on or that reorder or break the line. */
static bool
unsafe_code_point(uint32_t c)
{
	return (c >= 0x80 && c <= 0x9f) ||     /* C1 controls, e.g. CSI */
	       c == 0x200e || c == 0x200f ||   /* LRM, RLM */
	       (c >= 0x202a && c <= 0x202e) || /* bidi embeddings, overrides */
	       (c >= 0x2066 && c <= 0x2069) || /* bidi isolates */
	       c == 0x2028 || c == 0x2029 ||   /* line, paragraph separators */
	       c == 0xfeff;                    /* zero-width no-break space */
}

void
escape_text(struct qbuf *out, const char *s, size_t len, bool utf8)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	while (i < len) {
		unsigned char b = p[i];
		uint32_t c;
		size_t n;

		if (b >= 0x20 && b < 0x7f) {
			if (b == '\\')
				qbuf_addc(out, '\\');
			qbuf_addc(out, (char)b);
			i++;
			continue;
		}
		switch (b) {
		case '\n':
			qbuf_adds(out, "\\n");
			i++;
			continue;
		case '\t':
			qbuf_adds(out, "\\t");
			i++;
			continue;
		case '\r':
			qbuf_adds(out, "\\r");
			i++;
			continue;
		case 0x1b:
			qbuf_adds(out, "\\e");
			i++;
			continue;
		}
		if (b < 0x80 || !utf8) {
			qbuf_addf(out, "\\x%02x", b);
			i++;
			continue;
		}
		n = utf8_decode(p + i, len - i, &c);
		if (n == 0) {
			qbuf_addf(out, "\\x%02x", b);
			i++;
		} else if (unsafe_code_point(c)) {
			qbuf_addf(out, "\\u%04x", (unsigned)c);
			i += n;
		} else {
			qbuf_add(out, p + i, n);
			i += n;
		}
	}
}

void
escape_json(struct qbuf *out, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	qbuf_addc(out, '"');
	while (i < len) {
		unsigned char b = p[i];
		uint32_t c;
		size_t n;

		if (b >= 0x20 && b < 0x7f) {
			if (b == '"' || b == '\\')
				qbuf_addc(out, '\\');
			qbuf_addc(out, (char)b);
			i++;
			continue;
		}
		if (b < 0x80) {
			switch (b) {
			case '\n':
				qbuf_adds(out, "\\n");
				break;
			case '\t':
				qbuf_adds(out, "\\t");
				break;
			case '\r':
				qbuf_adds(out, "\\r");
				break;
			case '\b':
				qbuf_adds(out, "\\b");
				break;
			case '\f':
				qbuf_adds(out, "\\f");
				break;
			default:
				qbuf_addf(out, "\\u%04x", b);
			}
			i++;
			continue;
		}
		n = utf8_decode(p + i, len - i, &c);
		if (n == 0) {
			qbuf_addf(out, "\\udc%02x", b); /* PEP 383 surrogateescape */
			i++;
		} else if (c == 0x2028 || c == 0x2029) {
			qbuf_addf(out, "\\u%04x", (unsigned)c);
			i += n;
		} else {
			qbuf_add(out, p + i, n);
			i += n;
		}
	}
	qbuf_addc(out, '"');
}

void
escape_dot(struct qbuf *out, const char *s, size_t len)
{
	struct qbuf text = QBUF_INIT;

	qbuf_init(&text);
	escape_text(&text, s, len, true);
	for (size_t i = 0; i < text.len; i++) {
		char c = text.buf[i];
		if (c == '\\' || c == '"')
			qbuf_addc(out, '\\');
		if (c == '&')
			qbuf_adds(out, "&amp;");
		else
			qbuf_addc(out, c);
	}
	qbuf_release(&text);
}

size_t
utf8_prefix(const char *s, size_t len, size_t max_chars)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;

	for (size_t chars = 0; i < len && chars < max_chars; chars++) {
		uint32_t c;
		size_t n = utf8_decode(p + i, len - i, &c);
		i += n ? n : 1;
	}
	return i;
}
