/*
 * query_escape.h - a growable byte buffer, and the three ways provfs-query
 * writes a name it does not control.
 *
 * File names and argv words come from users and programs: they may hold
 * newlines, quotes, backslashes, terminal escape sequences and bytes that are
 * not UTF-8.  They are data, never markup, so every one goes through exactly
 * one of these functions on its way out:
 *
 *   text  for a terminal: the output is printable, holds no control
 *         character and no sequence a terminal would act on.  Backslash
 *         escapes as in C ("\n", "\t", "\e", "\\", "\xff" for a byte that is
 *         not UTF-8, "\u202e" for C1 controls, bidirectional overrides and
 *         line separators).  The mapping is injective: a literal backslash is
 *         doubled, so "a\nb" and "a<LF>b" stay distinguishable.
 *   JSON  a string literal (RFC 8259) that is valid UTF-8.  A byte that is
 *         not part of valid UTF-8 is written as the lone surrogate escape
 *         "\udcXX" (XX = the byte, 80..ff), the "surrogateescape" scheme of
 *         PEP 383: lossless, e.g. Python's
 *         json.loads(s).encode('utf-8', 'surrogateescape') returns the
 *         original bytes; valid UTF-8 never produces a lone surrogate, so the
 *         scheme is unambiguous.  Control characters, U+2028 and U+2029 are
 *         escaped as \uXXXX; '/' is not escaped.
 *   DOT   the inside of a Graphviz double-quoted string: the text escaping
 *         first (so the result is valid UTF-8 with no control characters),
 *         then '\' and '"' escaped for DOT and '&' written as "&amp;" so that
 *         Graphviz neither interprets "\l" nor an entity.
 *
 * A struct qbuf's buf is always NUL-terminated and never NULL after
 * qbuf_init(); the caller owns it (qbuf_release() frees it, qbuf_detach()
 * hands it over).  Allocation failure aborts: these are command-line tools.
 */
#ifndef PROVFS_QUERY_ESCAPE_H
#define PROVFS_QUERY_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct qbuf {
	char *buf;
	size_t len;
	size_t alloc;
};

#define QBUF_INIT                                                                                  \
	{                                                                                          \
		NULL, 0, 0                                                                         \
	}

void qbuf_init(struct qbuf *sb);
void qbuf_release(struct qbuf *sb);
void qbuf_reset(struct qbuf *sb);
char *qbuf_detach(struct qbuf *sb);
void qbuf_add(struct qbuf *sb, const void *data, size_t len);
void qbuf_addc(struct qbuf *sb, char c);
void qbuf_adds(struct qbuf *sb, const char *s);
void qbuf_addf(struct qbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Decode one UTF-8 character from s (len > 0 bytes available).  Returns its
 * length (1..4) and stores the code point, or 0 when s does not start with a
 * valid, shortest-form encoding of a scalar value (surrogates and values
 * above U+10FFFF are invalid).
 */
size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *code_point);

/*
 * Append s (len bytes, may contain NUL) escaped for a terminal.  When utf8 is
 * false (the terminal's character set is not UTF-8) every byte above 0x7f is
 * written as "\xNN".
 */
void escape_text(struct qbuf *out, const char *s, size_t len, bool utf8);

/* Append s as a JSON string literal, with the surrounding quotes. */
void escape_json(struct qbuf *out, const char *s, size_t len);

/* Append s escaped for the inside of a DOT double-quoted string. */
void escape_dot(struct qbuf *out, const char *s, size_t len);

/*
 * The length of the longest prefix of s (len bytes) that holds at most
 * max_chars characters and does not split a UTF-8 sequence; for shortening
 * long arguments in labels.
 */
size_t utf8_prefix(const char *s, size_t len, size_t max_chars);

#endif
