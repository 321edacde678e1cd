/*
 * lineage_common.c - the pieces the OpenLineage and PROV writers share.
 *
 * Names of files and argv words are bytes, not text: json-c would copy a
 * byte that is not UTF-8 straight into its output and make an invalid
 * document, so every such string gets a serializer of its own that keeps
 * the output valid UTF-8 and the bytes recoverable (PEP 383 "\udcXX"), the
 * scheme provfs-query's JSON uses.
 */
#include <json-c/printbuf.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "lineage_i.h"

/* Length of the valid, shortest-form UTF-8 sequence at s, or 0. */
static size_t
utf8_sequence(const unsigned char *s, size_t len)
{
	uint32_t code;
	size_t need;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 2, code = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 3, code = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 4, code = s[0] & 0x07;
	else
		return 0;
	if (len < need)
		return 0;
	for (size_t i = 1; i < need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		code = code << 6 | (s[i] & 0x3f);
	}
	if ((need == 3 && code < 0x800) || (need == 4 && (code < 0x10000 || code > 0x10ffff)) ||
	    (code >= 0xd800 && code <= 0xdfff))
		return 0;
	return need;
}

static int
string_serializer(json_object *jso, struct printbuf *pb, int level, int flags)
{
	const unsigned char *s = (const unsigned char *)json_object_get_string(jso);
	size_t len = (size_t)json_object_get_string_len(jso);
	char escape[8];

	printbuf_strappend(pb, "\"");
	for (size_t i = 0; i < len;) {
		size_t n = utf8_sequence(s + i, len - i);
		if (n == 0) {
			snprintf(escape, sizeof(escape), "\\udc%02x", s[i]);
			printbuf_memappend(pb, escape, 6);
			i++;
		} else if (n == 1 && (s[i] < 0x20 || s[i] == '"' || s[i] == '\\' || s[i] == 0x7f)) {
			if (s[i] == '"' || s[i] == '\\') {
				escape[0] = '\\';
				escape[1] = (char)s[i];
				printbuf_memappend(pb, escape, 2);
			} else {
				snprintf(escape, sizeof(escape), "\\u%04x", s[i]);
				printbuf_memappend(pb, escape, 6);
			}
			i++;
		} else if (n == 3 && s[i] == 0xe2 && s[i + 1] == 0x80 &&
		           (s[i + 2] == 0xa8 || s[i + 2] == 0xa9)) {
			/* U+2028, U+2029: valid JSON, but they end lines in JavaScript. */
			printbuf_memappend(pb, s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029", 6);
			i += 3;
		} else {
			printbuf_memappend(pb, (const char *)s + i, (int)n);
			i += n;
		}
	}
	printbuf_strappend(pb, "\"");
	return 0;
}

json_object *
lineage_jstr_len(const char *s, size_t len)
{
	json_object *jso;

	if (s == NULL)
		return NULL;
	jso = json_object_new_string_len(s, (int)len);
	if (jso)
		json_object_set_serializer(jso, string_serializer, NULL, NULL);
	return jso;
}

json_object *
lineage_jstr(const char *s)
{
	return s ? lineage_jstr_len(s, strlen(s)) : NULL;
}

json_object *
lineage_jcol(sqlite3_stmt *statement, int column)
{
	const char *text;

	if (sqlite3_column_type(statement, column) == SQLITE_NULL)
		return NULL;
	text = (const char *)sqlite3_column_blob(statement, column);
	return lineage_jstr_len(text ? text : "", (size_t)sqlite3_column_bytes(statement, column));
}

json_object *
lineage_jargv(sqlite3_stmt *statement, int column)
{
	json_object *array = json_object_new_array();
	const char *data = (const char *)sqlite3_column_blob(statement, column);
	size_t len = (size_t)sqlite3_column_bytes(statement, column), start = 0;

	if (data == NULL)
		return array;
	/* NUL-terminated words, as /proc/PID/cmdline has them; the last may lack its NUL. */
	for (size_t i = 0; i <= len; i++) {
		if (i == len ? start < len : data[i] == '\0') {
			json_object_array_add(array, lineage_jstr_len(data + start, i - start));
			start = i + 1;
		}
	}
	return array;
}

const char *
lineage_json_text(json_object *jso)
{
	return json_object_to_json_string_ext(jso, JSON_C_TO_STRING_PLAIN |
	                                               JSON_C_TO_STRING_NOSLASHESCAPE);
}

void
lineage_time(int64_t ns, int offset, char out[LINEAGE_TIME_SIZE])
{
	time_t seconds = (time_t)(ns / 1000000000);
	int64_t rest = ns % 1000000000;
	struct tm tm;
	char date[32];

	if (rest < 0) {
		rest += 1000000000;
		seconds--;
	}
	gmtime_r(&seconds, &tm);
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, LINEAGE_TIME_SIZE, "%s.%03dZ", date, (int)(rest / 1000000));
	if (offset)
		strcpy(out + strlen(out) - 1, "+00:00");
}

char *
lineage_dataset_name(const struct string_list *path_map, const char *mount_point, const char *path)
{
	char *name = NULL;
	size_t root = strlen(mount_point);

	/* The mount root itself is "/"-terminated only when it is "/". */
	if (asprintf(&name, "%s%s%s", mount_point,
	             (root && mount_point[root - 1] == '/') || !path[0] ? "" : "/", path) < 0)
		return NULL;
	for (size_t i = 0; path_map && i < path_map->count; i++) {
		const char *map = path_map->items[i], *equals = strchr(map, '=');
		size_t from = (size_t)(equals - map);
		char *mapped;

		while (from > 1 && map[from - 1] == '/')
			from--; /* "/mnt/data/=/data" means "/mnt/data" */
		if (strncmp(name, map, from) != 0 || (name[from] != '/' && name[from] != '\0'))
			continue;
		const char *to = equals + 1;
		size_t to_len = strlen(to);
		while (to_len > 1 && to[to_len - 1] == '/')
			to_len--;
		const char *rest = name + from;
		if (to_len == 1 && rest[0] == '/')
			to_len = 0; /* mapped to "/": the rest carries the slash */
		if (asprintf(&mapped, "%.*s%s", (int)to_len, to, rest[0] || to_len ? rest : "/") <
		    0) {
			free(name);
			return NULL;
		}
		free(name);
		return mapped;
	}
	return name;
}
