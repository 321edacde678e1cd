/*
 * query_output.c - what every command needs to print: store columns to C
 * values, names escaped for a terminal, times and sizes for people, JSON
 * values whose strings follow the scheme of query_escape.h.
 *
 * JSON strings: json-c writes bytes above 0x7f as they are, which makes an
 * invalid document when a name is not UTF-8.  q_jstr() therefore gives every
 * string a serializer of its own (json_object_set_serializer) that writes it
 * with escape_json(): valid UTF-8 always, non-UTF-8 bytes as "\udcXX".
 */
#include <errno.h>
#include <json-c/printbuf.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "query_i.h"

char *
q_col_text(sqlite3_stmt *statement, int column)
{
	const unsigned char *text = sqlite3_column_text(statement, column);
	char *copy;
	int len;

	if (text == NULL)
		return NULL;
	len = sqlite3_column_bytes(statement, column);
	copy = malloc((size_t)len + 1);
	if (copy == NULL) {
		fputs("provfs-query: out of memory\n", stderr);
		abort();
	}
	memcpy(copy, text, (size_t)len);
	copy[len] = '\0';
	return copy;
}

int64_t
q_col_int(sqlite3_stmt *statement, int column)
{
	if (sqlite3_column_type(statement, column) == SQLITE_NULL)
		return Q_NONE;
	return sqlite3_column_int64(statement, column);
}

void
q_bind_int(sqlite3_stmt *statement, int index, int64_t value)
{
	if (value == Q_NONE)
		sqlite3_bind_null(statement, index);
	else
		sqlite3_bind_int64(statement, index, value);
}

/* --- text ---------------------------------------------------------------- */

static struct qbuf *
ring_next(void)
{
	static struct qbuf ring[16];
	static unsigned next;
	struct qbuf *sb = &ring[next++ % 16];

	qbuf_reset(sb);
	return sb;
}

const char *
q_tx(struct query *q, const char *s)
{
	struct qbuf *sb;

	if (s == NULL)
		return "-";
	sb = ring_next();
	escape_text(sb, s, strlen(s), q->utf8);
	return sb->buf;
}

const char *
q_short_hash(const char *hash, const char *state)
{
	struct qbuf *sb;

	if (hash == NULL || strlen(hash) < 12)
		return state && strcmp(state, "hashed") != 0 ? state : "(no hash)";
	sb = ring_next();
	qbuf_add(sb, hash, 12);
	return sb->buf;
}

const char *
q_size(int64_t bytes)
{
	static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB"};
	struct qbuf *sb = ring_next();
	double value = (double)bytes;
	int unit = -1;

	if (bytes == Q_NONE) {
		qbuf_adds(sb, "-");
		return sb->buf;
	}
	if (bytes < 1024) {
		qbuf_addf(sb, "%lld B", (long long)bytes);
		return sb->buf;
	}
	while (value >= 1024 && unit < 4) {
		value /= 1024;
		unit++;
	}
	qbuf_addf(sb, value < 10 ? "%.1f %s" : "%.0f %s", value, units[unit]);
	return sb->buf;
}

const char *
q_when(struct query *q, int64_t ns)
{
	char local[QUERY_TIME_BUFSIZE], relative[QUERY_TIME_BUFSIZE];
	struct qbuf *sb = ring_next();

	if (ns == Q_NONE) {
		qbuf_adds(sb, "-");
		return sb->buf;
	}
	query_time_local(ns, local);
	query_time_relative(ns, q->now_ns, relative);
	qbuf_addf(sb, "%s (%s)", local, relative);
	return sb->buf;
}

/* Trailing empty arguments written out before the rest are counted. */
#define EMPTY_ARGUMENTS_SHOWN 3

/* Words that read unambiguously without quotes. */
static bool
plain_word(const char *s)
{
	if (*s == '\0')
		return false;
	for (; *s; s++)
		if (!(strchr("_@%+=:,./-", *s) || (*s >= 'a' && *s <= 'z') ||
		      (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      (unsigned char)*s >= 0x80))
			return false;
	return true;
}

const char *
q_argv_text(struct query *q, char *const *words, size_t count, const char *executable)
{
	struct qbuf *sb = ring_next();
	size_t empty_tail = 0;

	if (count == 0) {
		escape_text(sb, executable ? executable : "?",
		            strlen(executable ? executable : "?"), q->utf8);
	}
	/*
	 * A program that writes its title over its arguments (node, npm,
	 * postgres: setproctitle) leaves the rest of their space zeroed, which
	 * /proc gives as empty arguments, dozens of them.  A few are said, a
	 * longer run is counted: the words stay exactly as recorded.
	 */
	while (empty_tail < count && words[count - 1 - empty_tail][0] == '\0')
		empty_tail++;
	if (empty_tail < EMPTY_ARGUMENTS_SHOWN || empty_tail == count)
		empty_tail = 0;
	count -= empty_tail;
	for (size_t i = 0; i < count; i++) {
		if (i)
			qbuf_addc(sb, ' ');
		if (plain_word(words[i])) {
			escape_text(sb, words[i], strlen(words[i]), q->utf8);
		} else {
			/* Quoted for reading; inside, ' is \' and escapes are as always. */
			qbuf_addc(sb, '\'');
			for (const char *p = words[i]; *p;) {
				uint32_t cp;
				size_t n = utf8_decode((const unsigned char *)p, strlen(p), &cp);

				if (n == 0)
					n = 1;
				if (*p == '\'')
					qbuf_adds(sb, "\\'");
				else
					escape_text(sb, p, n, q->utf8);
				p += n;
			}
			qbuf_addc(sb, '\'');
		}
	}
	if (empty_tail)
		qbuf_addf(sb, " [and %zu empty arguments]", empty_tail);
	return sb->buf;
}

const char *
q_tree_branch(struct query *q, bool last)
{
	if (q->utf8)
		return last ? "└─ " : "├─ ";
	return last ? "`- " : "|- ";
}

const char *
q_tree_stem(struct query *q, bool last)
{
	if (last)
		return "   ";
	return q->utf8 ? "│  " : "|  ";
}

/* --- users ---------------------------------------------------------------- */

const char *
q_user_name(int64_t uid)
{
	static struct {
		int64_t uid;
		char name[64];
	} cache[32];
	static size_t count;
	struct passwd *pw;
	size_t slot;

	if (uid == Q_NONE)
		return "?";
	for (size_t i = 0; i < count; i++)
		if (cache[i].uid == uid)
			return cache[i].name;
	slot = count < 32 ? count++ : (size_t)(uid % 32);
	cache[slot].uid = uid;
	pw = getpwuid((uid_t)uid);
	if (pw)
		snprintf(cache[slot].name, sizeof(cache[slot].name), "%s", pw->pw_name);
	else
		snprintf(cache[slot].name, sizeof(cache[slot].name), "%lld", (long long)uid);
	return cache[slot].name;
}

/* --- argv ----------------------------------------------------------------- */

static char **
words_alloc(size_t n)
{
	char **words = calloc(n ? n : 1, sizeof(*words));

	if (words == NULL)
		abort();
	return words;
}

static char *
dup_bytes(const char *s, size_t len)
{
	char *copy = malloc(len + 1);

	if (copy == NULL)
		abort();
	memcpy(copy, s, len);
	copy[len] = '\0';
	return copy;
}

/* A JSON array of strings; NULL when text is not one. */
static char **
json_words(const char *text, size_t *count)
{
	json_object *array = json_tokener_parse(text);
	char **words;
	size_t n;

	if (array == NULL || !json_object_is_type(array, json_type_array)) {
		json_object_put(array);
		return NULL;
	}
	n = json_object_array_length(array);
	words = words_alloc(n);
	for (size_t i = 0; i < n; i++) {
		json_object *word = json_object_array_get_idx(array, i);
		const char *s = json_object_get_string(word);
		words[i] = strdup(s ? s : "");
	}
	*count = n;
	json_object_put(array);
	return words;
}

char **
q_col_argv(sqlite3_stmt *statement, int column, size_t *count)
{
	const char *data;
	size_t len, n = 0, start = 0;
	char **words;

	*count = 0;
	if (sqlite3_column_type(statement, column) == SQLITE_NULL)
		return NULL;
	data = (const char *)sqlite3_column_blob(statement, column);
	len = (size_t)sqlite3_column_bytes(statement, column);
	if (data == NULL || len == 0)
		return NULL;
	if (data[0] == '[' && memchr(data, '\0', len) == NULL) {
		char *text = dup_bytes(data, len);
		words = json_words(text, count);
		free(text);
		if (words)
			return words;
	}
	/* NUL-terminated words, as /proc/PID/cmdline has them; a last word may lack its NUL. */
	for (size_t i = 0; i < len; i++)
		n += data[i] == '\0';
	if (data[len - 1] != '\0')
		n++;
	words = words_alloc(n);
	for (size_t i = 0; i <= len; i++) {
		if (i == len ? start < len : data[i] == '\0') {
			words[*count] = dup_bytes(data + start, i - start);
			(*count)++;
			start = i + 1;
		}
	}
	return words;
}

void
q_words_free(char **words, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(words[i]);
	free(words);
}

/* --- JSON ----------------------------------------------------------------- */

static int
string_serializer(json_object *jso, struct printbuf *pb, int level, int flags)
{
	struct qbuf sb = QBUF_INIT;
	int rc;

	qbuf_init(&sb);
	escape_json(&sb, json_object_get_string(jso), (size_t)json_object_get_string_len(jso));
	rc = printbuf_memappend(pb, sb.buf, (int)sb.len);
	qbuf_release(&sb);
	return rc < 0 ? -1 : 0;
}

json_object *
q_jstr(const char *s)
{
	json_object *jso;

	if (s == NULL)
		return NULL;
	jso = json_object_new_string(s);
	json_object_set_serializer(jso, string_serializer, NULL, NULL);
	return jso;
}

json_object *
q_jint(int64_t value)
{
	return value == Q_NONE ? NULL : json_object_new_int64(value);
}

json_object *
q_jtime(int64_t ns)
{
	char iso[QUERY_TIME_BUFSIZE];

	if (ns == Q_NONE)
		return NULL;
	query_time_iso(ns, iso);
	return json_object_new_string(iso);
}

json_object *
q_jargv(char *const *argv, size_t argc)
{
	json_object *array = json_object_new_array();

	for (size_t i = 0; i < argc; i++)
		json_object_array_add(array, q_jstr(argv[i]));
	return array;
}

json_object *
q_jdoc(struct query *q)
{
	json_object *doc = json_object_new_object();

	json_object_object_add(doc, "schema", json_object_new_string(Q_SCHEMA));
	json_object_object_add(doc, "command", json_object_new_string(q->command));
	return doc;
}

int
q_emit_json(struct query *q, json_object *doc)
{
	const char *text = json_object_to_json_string_ext(doc, JSON_C_TO_STRING_PRETTY |
	                                                           JSON_C_TO_STRING_NOSLASHESCAPE);

	if (text == NULL) {
		json_object_put(doc);
		return q_error(q, 2, "cannot format the JSON document");
	}
	fputs(text, stdout);
	fputc('\n', stdout);
	json_object_put(doc);
	return 0;
}

int
q_finish_output(struct query *q)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		return q_error(q, 2, "cannot write the output: %s", strerror(errno));
	return 0;
}

/* --- tables ----------------------------------------------------------------- */

void
q_table_init(struct q_table *table, size_t columns)
{
	memset(table, 0, sizeof(*table));
	table->columns = columns;
}

void
q_table_add(struct q_table *table, ...)
{
	va_list ap;

	if (table->rows == table->alloc) {
		table->alloc = table->alloc ? table->alloc * 2 : 16;
		table->cells =
		    realloc(table->cells, table->alloc * table->columns * sizeof(char *));
		if (table->cells == NULL)
			abort();
	}
	va_start(ap, table);
	for (size_t i = 0; i < table->columns; i++) {
		const char *cell = va_arg(ap, const char *);
		table->cells[table->rows * table->columns + i] = strdup(cell ? cell : "");
	}
	va_end(ap);
	table->rows++;
}

/* --- fitting 80 columns ------------------------------------------------------ */

/*
 * Columns a string takes on a terminal.  Text reaching here is escaped
 * already (escape_text), so it holds no control characters: each code point
 * is one column, or what wcwidth() says for wide and combining ones.
 */
size_t
q_text_width(const char *s, size_t len)
{
	size_t width = 0, i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n = utf8_decode((const unsigned char *)s + i, len - i, &cp);
		int w;

		if (n == 0) {
			n = 1;
			cp = '?';
		}
		w = cp < 0x80 ? 1 : wcwidth((wchar_t)cp);
		width += w < 0 ? 1 : (size_t)w;
		i += n;
	}
	return width;
}

static size_t
display_width(const char *s)
{
	return q_text_width(s, strlen(s));
}

/* A Markdown line that starts with word would open a block (a list, heading, quote, rule). */
static bool
starts_markdown_block(const char *word)
{
	size_t digits = strspn(word, "0123456789");

	if (word[0] != '\0' && strchr("-+*=#>|", word[0]))
		return true;
	return digits > 0 && (word[digits] == '.' || word[digits] == ')');
}

/*
 * The end of the next piece of text that fits room columns.  Lines break
 * at spaces, preferably between fields (two spaces, or before " → ", the
 * next program a process exec'd), else after a comma or a semicolon, when
 * that keeps at least a third of the line.  A first word wider than room (a
 * long path) is a piece of its own.  In Markdown, never before a word that
 * would open a block at the start of the next line.
 */
static size_t
fitting_piece(const char *text, size_t room, bool markdown)
{
	static const char arrow[] = " → ";
	size_t length = strlen(text);
	size_t width = 0, i = 0, cut = 0;
	size_t field_cut = 0, field_width = 0;   /* between fields, before an exec */
	size_t clause_cut = 0, clause_width = 0; /* after a comma or a semicolon */

	while (text[i]) {
		uint32_t cp;
		size_t n = utf8_decode((const unsigned char *)text + i, length - i, &cp);

		if (n == 0)
			n = 1;
		if (text[i] == ' ' && i > 0 &&
		    !(markdown && starts_markdown_block(text + i + strspn(text + i, " ")))) {
			cut = i;
			if (text[i + 1] == ' ' || strncmp(text + i, arrow, sizeof(arrow) - 1) == 0 ||
			    strncmp(text + i, " -> ", 4) == 0) {
				field_cut = i;
				field_width = width;
			} else if (text[i - 1] == ',' || text[i - 1] == ';') {
				clause_cut = i;
				clause_width = width;
			}
		}
		width += q_text_width(text + i, n);
		if (width > room && text[i] != ' ') {
			if (field_cut && field_width * 3 >= room)
				return field_cut;
			if (clause_cut && clause_width * 3 >= room)
				return clause_cut;
			if (cut)
				return cut;
			while (text[i] && text[i] != ' ')
				i++;
			return i;
		}
		i += n;
	}
	return i;
}

static void
print_wrapped(const char *first, const char *rest, const char *text, bool markdown)
{
	const char *prefix = first;
	struct qbuf line = QBUF_INIT;

	qbuf_init(&line);
	do {
		size_t used = display_width(prefix), room, n;

		room = used + Q_MIN_TEXT_WIDTH > Q_TEXT_WIDTH ? Q_MIN_TEXT_WIDTH
		                                              : Q_TEXT_WIDTH - used;
		n = fitting_piece(text, room, markdown);
		/*
		 * A short label ("MODIFIED") keeps the over-long word that follows
		 * it (a path that overflows on any line) rather than stand alone.
		 */
		size_t label = n;
		while (label > 0 && text[label - 1] == ' ')
			label--;
		if (text[n] == ' ' && label > 0 && memchr(text, ' ', label) == NULL &&
		    used + q_text_width(text, label) <= Q_LABEL_WIDTH) {
			const char *word = text + n + strspn(text + n, " ");
			size_t len = strcspn(word, " ");
			size_t rest_used = display_width(rest);

			if (q_text_width(word, len) + rest_used > Q_TEXT_WIDTH)
				n = (size_t)(word - text) + len;
		}
		qbuf_reset(&line);
		qbuf_adds(&line, prefix);
		qbuf_add(&line, text, n);
		while (line.len && line.buf[line.len - 1] == ' ')
			line.buf[--line.len] = '\0';
		puts(line.buf);
		text += n;
		while (*text == ' ')
			text++;
		prefix = rest;
	} while (*text);
	qbuf_release(&line);
}

void
q_print_wrapped(const char *first, const char *rest, const char *text)
{
	print_wrapped(first, rest, text, false);
}

void
q_print_markdown(const char *first, const char *rest, const char *text)
{
	print_wrapped(first, rest, text, true);
}

void
q_print_wrappedf(const char *first, const char *rest, const char *fmt, ...)
{
	va_list ap;
	char *text;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	text = malloc(len > 0 ? (size_t)len + 1 : 1);
	if (text == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(text, len > 0 ? (size_t)len + 1 : 1, fmt, ap);
	va_end(ap);
	q_print_wrapped(first, rest, text);
	free(text);
}

void
q_print_field(const char *indent, const char *name, const char *fmt, ...)
{
	struct qbuf first = QBUF_INIT, rest = QBUF_INIT;
	va_list ap;
	char *text;
	int len;

	va_start(ap, fmt);
	len = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	text = malloc(len > 0 ? (size_t)len + 1 : 1);
	if (text == NULL)
		abort();
	va_start(ap, fmt);
	vsnprintf(text, len > 0 ? (size_t)len + 1 : 1, fmt, ap);
	va_end(ap);
	qbuf_init(&first);
	qbuf_init(&rest);
	qbuf_addf(&first, "%s%-*s", indent, Q_FIELD_WIDTH, name);
	qbuf_addf(&rest, "%s%*s", indent, Q_FIELD_WIDTH, "");
	q_print_wrapped(first.buf, rest.buf, text);
	free(text);
	qbuf_release(&first);
	qbuf_release(&rest);
}

/*
 * A table wider than the terminal is printed in bands: each row becomes
 * several lines, each holding a run of columns aligned with the same run
 * of the other rows.  A band too wide is split by moving its widest end
 * column to a line of its own, indented four more columns when it is the
 * last one (the first column keeps its place, the rest of its band moves
 * in).  A band of one column too wide wraps at spaces.  So a table of
 * paths keeps each path on the row's first line, and a table whose last
 * column is a command line puts it below the rest of the row.
 */
struct band {
	size_t first, end; /* columns [first, end) */
	size_t indent;     /* extra columns after the table's indent */
};

#define MAX_BANDS 16

static size_t
band_width(const size_t *widths, const struct band *band)
{
	size_t width = band->indent;

	for (size_t c = band->first; c < band->end; c++)
		width += widths[c] + (c + 1 < band->end ? 2 : 0);
	return width;
}

static size_t
table_bands(const size_t *widths, size_t columns, size_t indent, struct band *bands)
{
	size_t count = 1;

	bands[0] = (struct band){0, columns, 0};
	for (size_t b = 0; b < count; b++) {
		while (count < MAX_BANDS && bands[b].end - bands[b].first > 1 &&
		       indent + band_width(widths, &bands[b]) > Q_TEXT_WIDTH) {
			struct band *band = &bands[b];

			memmove(band + 2, band + 1, (count - b - 1) * sizeof(*band));
			count++;
			if (widths[band->first] > widths[band->end - 1]) {
				band[1] = (struct band){band->first + 1, band->end, band->indent + 4};
				band->end = band->first + 1;
			} else {
				band[1] = (struct band){band->end - 1, band->end, band->indent + 4};
				band->end--;
			}
		}
	}
	return count;
}

void
q_table_print(struct q_table *table, const char *indent)
{
	size_t *widths = calloc(table->columns, sizeof(size_t));
	struct band bands[MAX_BANDS];
	size_t band_count;
	struct qbuf line = QBUF_INIT, first = QBUF_INIT, rest = QBUF_INIT;

	if (widths == NULL)
		abort();
	for (size_t r = 0; r < table->rows; r++)
		for (size_t c = 0; c < table->columns; c++) {
			size_t w = display_width(table->cells[r * table->columns + c]);
			if (w > widths[c])
				widths[c] = w;
		}
	band_count = table_bands(widths, table->columns, display_width(indent), bands);
	qbuf_init(&line);
	qbuf_init(&first);
	qbuf_init(&rest);
	for (size_t r = 0; r < table->rows; r++) {
		for (size_t b = 0; b < band_count; b++) {
			const struct band *band = &bands[b];
			bool empty = true;

			qbuf_reset(&line);
			for (size_t c = band->first; c < band->end; c++) {
				const char *cell = table->cells[r * table->columns + c];
				empty = empty && cell[0] == '\0';
				qbuf_adds(&line, cell);
				if (c + 1 < band->end && widths[c + 1] + widths[c] > 0)
					for (size_t w = display_width(cell); w < widths[c] + 2; w++)
						qbuf_addc(&line, ' ');
			}
			/* A band of the row with nothing in it takes no line (the first always does). */
			if (empty && b > 0)
				continue;
			qbuf_reset(&first);
			qbuf_reset(&rest);
			qbuf_addf(&first, "%s%*s", indent, (int)band->indent, "");
			qbuf_addf(&rest, "%s%*s", indent, (int)band->indent + 4, "");
			q_print_wrapped(first.buf, rest.buf, line.buf);
		}
	}
	qbuf_release(&line);
	qbuf_release(&first);
	qbuf_release(&rest);
	free(widths);
}

void
q_table_release(struct q_table *table)
{
	for (size_t i = 0; i < table->rows * table->columns; i++)
		free(table->cells[i]);
	free(table->cells);
	memset(table, 0, sizeof(*table));
}
