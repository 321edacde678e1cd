/*
 * lineage_i.h - private to lineage/: what the OpenLineage and W3C PROV
 * writers share: strings that stay valid UTF-8, times, dataset names.
 */
#ifndef PROVFS_LINEAGE_I_H
#define PROVFS_LINEAGE_I_H

#include <json-c/json.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdint.h>

struct string_list;

/*
 * A JSON string holding len bytes of s that serializes as valid UTF-8:
 * a byte that is not part of valid UTF-8 is written "\udcXX" (PEP 383,
 * lossless), control characters as \uXXXX, '/' unescaped.  NULL for NULL.
 */
json_object *lineage_jstr_len(const char *s, size_t len);
json_object *lineage_jstr(const char *s);

/* A JSON string for column of statement (text or blob), or NULL for SQL NULL. */
json_object *lineage_jcol(sqlite3_stmt *statement, int column);

/* argv words (the store's NUL-separated BLOB) as a JSON array of strings. */
json_object *lineage_jargv(sqlite3_stmt *statement, int column);

/* Serialize without newlines, '/' unescaped; the result belongs to jso. */
const char *lineage_json_text(json_object *jso);

#define LINEAGE_TIME_SIZE 40
/*
 * ns since the epoch as ISO 8601 UTC with milliseconds: "Z" suffix
 * ("2026-11-27T04:10:30.123Z"), or "+00:00" when offset is set (what
 * xsd:dateTime readers expect of PROV).
 */
void lineage_time(int64_t ns, int offset, char out[LINEAGE_TIME_SIZE]);

/*
 * The absolute name of path (relative to the mount root) in the mount at
 * mount_point, rewritten by the first path_map entry "FROM=TO" whose FROM
 * is a whole-component prefix.  malloc'd; NULL only when out of memory.
 */
char *lineage_dataset_name(const struct string_list *path_map, const char *mount_point,
                           const char *path);

#endif
