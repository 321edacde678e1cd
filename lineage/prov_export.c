/*
 * prov_export.c - a scope of the store as a W3C PROV document.
 *
 * DESIGN
 * The document is built in two passes.  The add functions only choose the
 * scope: processes (one PROV activity per process, every execve() image
 * folded into it) and file versions.  prov_write() then reads what PROV
 * says about them, entirely from the store:
 *
 *   1. widen: for an export, every version the processes read, wrote or
 *      produced; for every version, the version before it (wasRevisionOf
 *      needs its target declared);
 *   2. times: an activity starts at the earlier of the kernel's start time
 *      and its first open, and ends at the later of its exit and its last
 *      close or generation (a handle may be released after the exit);
 *   3. relations among items of the scope only: usages (earliest open per
 *      process and version), the one generation of each version (its
 *      producer, at the close that made it), derivations (a version a
 *      process generated from every version it used no later), revisions,
 *      specializations, associations, fork starts;
 *   4. serialize the model as PROV-JSON (json-c) or PROV-O Turtle.
 *
 * Identifiers are IRIs under urn:provfs: (prefix "pfd"), built from what
 * names the thing for a person (kind, host, path, version number,
 * PID-START, run UUID) plus the store's row id where a name alone could
 * collide (a path reused by a new file, a pid reused within one second):
 * "pfd:version.HOST.f12.v3.data.raw_2Ecsv" is version 3 of file row 12,
 * /data/raw.csv.  Local parts must be XML NCNames, since PROV-XML types
 * every id as xs:QName: they start with the kind (a letter), fields are
 * separated by '.', a path's '/' becomes '.', and every other byte outside
 * [A-Za-z0-9-] is written _XX (hex).  Nothing is lost, no two things share
 * an identifier, and the same identifiers are valid QNames in PROV-JSON
 * and PROV-XML and valid IRIs in Turtle.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "lineage_i.h"
#include "prov_export.h"

#define PROVFS_NS "https://github.com/provfs/provfs/ns#"
#define DATA_NS "urn:provfs:"

/* ---- an int64 -> index map (open addressing) --------------------------------- */

struct id_map {
	int64_t *keys;
	size_t *values;
	size_t count, capacity; /* capacity: 0 or a power of two */
};

static size_t
slot_of(const struct id_map *map, int64_t key)
{
	uint64_t x = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
	size_t mask = map->capacity - 1, i = (size_t)(x >> 17) & mask;

	while (map->keys[i] != 0 && map->keys[i] != key)
		i = (i + 1) & mask;
	return i;
}

/* The index stored for key (> 0), or SIZE_MAX. */
static size_t
map_get(const struct id_map *map, int64_t key)
{
	if (map->capacity == 0)
		return SIZE_MAX;
	size_t i = slot_of(map, key);
	return map->keys[i] == key ? map->values[i] : SIZE_MAX;
}

static int
map_put(struct id_map *map, int64_t key, size_t value)
{
	if ((map->count + 1) * 2 > map->capacity) {
		struct id_map grown = {0};
		grown.capacity = map->capacity ? map->capacity * 2 : 64;
		grown.keys = calloc(grown.capacity, sizeof(*grown.keys));
		grown.values = calloc(grown.capacity, sizeof(*grown.values));
		if (grown.keys == NULL || grown.values == NULL) {
			free(grown.keys);
			free(grown.values);
			return -1;
		}
		for (size_t i = 0; i < map->capacity; i++)
			if (map->keys[i]) {
				size_t j = slot_of(&grown, map->keys[i]);
				grown.keys[j] = map->keys[i];
				grown.values[j] = map->values[i];
			}
		grown.count = map->count;
		free(map->keys);
		free(map->values);
		*map = grown;
	}
	size_t i = slot_of(map, key);
	if (map->keys[i] == 0)
		map->count++;
	map->keys[i] = key;
	map->values[i] = value;
	return 0;
}

static void
map_release(struct id_map *map)
{
	free(map->keys);
	free(map->values);
	memset(map, 0, sizeof(*map));
}

/* Grow *array (of *count elements of size) by one zeroed element; NULL when out of memory. */
static void *
grow(void *array_ptr, size_t *count, size_t *alloc, size_t size)
{
	void **array = array_ptr;

	if (*count == *alloc) {
		size_t capacity = *alloc ? *alloc * 2 : 16;
		void *bigger = realloc(*array, capacity * size);
		if (bigger == NULL)
			return NULL;
		*array = bigger;
		*alloc = capacity;
	}
	void *element = (char *)*array + (*count)++ * size;
	memset(element, 0, size);
	return element;
}

/* ---- the model ------------------------------------------------------------------- */

struct activity {
	int64_t key; /* the first image's processes row */
	char *host;
	int64_t pid, start_ns, kernel_id;
	int64_t begin_ns, end_ns;
	bool ended;
	int64_t uid, run_id, parent_image;
	char *executable, *executable_hash;
	char *argv; /* the last image's words as a JSON array (text) */
	char *id, *user_id, *program_id;
	int64_t *images;
	size_t image_count;
};

struct version {
	int64_t id, file_id, number, size, producer_image, recorded_ns, gen_ns;
	char *hash, *hash_state, *hash_method, *origin, *label, *name, *host;
	char *id_text, *file_text;
	size_t generated_by; /* activity index, or SIZE_MAX */
	size_t previous;     /* version index, or SIZE_MAX */
};

struct run {
	int64_t id, started_ns, ended_ns;
	bool ended;
	char *uuid, *job_name, *id_text;
};

struct usage {
	size_t activity, version;
	int64_t time_ns;
};

struct agent {
	char *id;
	bool person;
	char *name; /* user name or executable */
	char *hash; /* programs: the executable's hash */
	int64_t uid;
};

struct prov_document {
	struct string_list path_map;
	bool widen; /* add every version the processes touched (export) */

	struct activity *activities;
	size_t activity_count, activity_alloc;
	struct id_map images; /* processes row -> activity */

	struct version *versions;
	size_t version_count, version_alloc;
	struct id_map version_map; /* versions row -> version */

	struct run *runs;
	size_t run_count, run_alloc;
	struct id_map run_map;

	struct usage *usages;
	size_t usage_count, usage_alloc;

	/* Versions by generating activity: generated[first[a] .. first[a + 1]). */
	size_t *generated, *first;

	struct agent *agents;
	size_t agent_count, agent_alloc;
};

struct prov_document *
prov_document_new(const struct provfs_config *config)
{
	struct prov_document *doc = calloc(1, sizeof(*doc));

	if (doc == NULL)
		return NULL;
	for (size_t i = 0; config && i < config->openlineage_path_map.count; i++)
		string_list_append(&doc->path_map, config->openlineage_path_map.items[i]);
	return doc;
}

void
prov_document_free(struct prov_document *doc)
{
	if (doc == NULL)
		return;
	for (size_t i = 0; i < doc->activity_count; i++) {
		struct activity *a = &doc->activities[i];
		free(a->host);
		free(a->executable);
		free(a->executable_hash);
		free(a->argv);
		free(a->id);
		free(a->user_id);
		free(a->program_id);
		free(a->images);
	}
	for (size_t i = 0; i < doc->version_count; i++) {
		struct version *v = &doc->versions[i];
		free(v->hash);
		free(v->hash_state);
		free(v->hash_method);
		free(v->origin);
		free(v->label);
		free(v->name);
		free(v->host);
		free(v->id_text);
		free(v->file_text);
	}
	for (size_t i = 0; i < doc->run_count; i++) {
		free(doc->runs[i].uuid);
		free(doc->runs[i].job_name);
		free(doc->runs[i].id_text);
	}
	for (size_t i = 0; i < doc->agent_count; i++) {
		free(doc->agents[i].id);
		free(doc->agents[i].name);
		free(doc->agents[i].hash);
	}
	free(doc->activities);
	free(doc->versions);
	free(doc->runs);
	free(doc->usages);
	free(doc->generated);
	free(doc->first);
	free(doc->agents);
	map_release(&doc->images);
	map_release(&doc->version_map);
	map_release(&doc->run_map);
	string_list_release(&doc->path_map);
	free(doc);
}

/* ---- identifiers ----------------------------------------------------------------- */

/*
 * Append s to a malloc'd *out as part of an NCName: [A-Za-z0-9-] as they
 * are, '/' as '.' when slash_as_dot (a path), every other byte as _XX.
 */
static int
append_encoded(char **out, const char *s, bool slash_as_dot)
{
	size_t have = *out ? strlen(*out) : 0, len = strlen(s);
	char *bigger = realloc(*out, have + len * 3 + 1), *p;

	if (bigger == NULL)
		return -1;
	*out = bigger;
	p = bigger + have;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if ((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '-') {
			*p++ = (char)*c;
		} else if (*c == '/' && slash_as_dot) {
			*p++ = '.';
		} else {
			static const char hex[] = "0123456789ABCDEF";
			*p++ = '_';
			*p++ = hex[*c >> 4];
			*p++ = hex[*c & 15];
		}
	}
	*p = '\0';
	return 0;
}

/*
 * "pfd:KIND.HOST", then tail ("/"-separated fields of [A-Za-z0-9-]), then
 * the path, when there is one; NULL when out of memory.  A path that is
 * not absolute gets a separator of its own, so that it never runs into
 * the tail's last field.
 */
static char *
make_id(const char *kind, const char *host, const char *tail, const char *path)
{
	char *id = strdup("pfd:");

	if (id == NULL || append_encoded(&id, kind, false) ||
	    (host && (append_encoded(&id, "/", true) || append_encoded(&id, host, false))) ||
	    (tail && append_encoded(&id, tail, true)) ||
	    (path && path[0] != '/' && append_encoded(&id, "/", true)) ||
	    (path && append_encoded(&id, path, true))) {
		free(id);
		return NULL;
	}
	return id;
}

static char *
dup_text(sqlite3_stmt *s, int column)
{
	const char *text = (const char *)sqlite3_column_text(s, column);

	return text ? strdup(text) : NULL;
}

/* ---- choosing the scope ------------------------------------------------------------ */

int
prov_add_process(struct prov_document *doc, sqlite3 *db, int64_t image_id)
{
	sqlite3_stmt *s = NULL;
	struct activity *a;
	int rc = -1, step;

	if (map_get(&doc->images, image_id) != SIZE_MAX)
		return 0;
	if (sqlite3_prepare_v2(
	        db,
	        "SELECT i.id, i.host, i.pid, i.start_ns, i.kernel_id, i.parent_id, "
	        "i.run_id, i.executable, i.executable_hash, i.argv, i.uid, i.seen_ns, "
	        "i.exited_ns FROM processes p JOIN processes i ON i.host = p.host AND "
	        "i.pid = p.pid AND i.start_ns = p.start_ns AND i.kernel_id = p.kernel_id "
	        "WHERE p.id = ? ORDER BY i.exec_index, i.id",
	        -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, image_id);
	a = NULL;
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		int64_t id = sqlite3_column_int64(s, 0);
		if (a == NULL) {
			a = grow(&doc->activities, &doc->activity_count, &doc->activity_alloc,
			         sizeof(*a));
			if (a == NULL)
				goto out;
			a->key = id;
			a->host = dup_text(s, 1);
			a->pid = sqlite3_column_int64(s, 2);
			a->start_ns = sqlite3_column_int64(s, 3);
			a->kernel_id = sqlite3_column_int64(s, 4);
			a->parent_image = sqlite3_column_int64(s, 5);
			a->begin_ns = a->start_ns;
			int64_t seen = sqlite3_column_int64(s, 11);
			if (seen && seen < a->begin_ns)
				a->begin_ns = seen;
		}
		/* The last image names the process: its program, argv, run and user. */
		if (sqlite3_column_type(s, 6) != SQLITE_NULL)
			a->run_id = sqlite3_column_int64(s, 6);
		free(a->executable);
		free(a->executable_hash);
		free(a->argv);
		a->executable = dup_text(s, 7);
		a->executable_hash = dup_text(s, 8);
		json_object *argv = lineage_jargv(s, 9);
		a->argv = strdup(lineage_json_text(argv));
		json_object_put(argv);
		a->uid = sqlite3_column_int64(s, 10);
		if (sqlite3_column_type(s, 12) != SQLITE_NULL) {
			int64_t exited = sqlite3_column_int64(s, 12);
			if (!a->ended || exited > a->end_ns)
				a->end_ns = exited;
			a->ended = true;
		}
		int64_t *images = realloc(a->images, (a->image_count + 1) * sizeof(*images));
		if (images == NULL || a->argv == NULL)
			goto out;
		a->images = images;
		a->images[a->image_count++] = id;
		if (map_put(&doc->images, id, doc->activity_count - 1))
			goto out;
	}
	rc = step == SQLITE_DONE ? 0 : -1;
out:
	sqlite3_finalize(s);
	return rc;
}

/* How many processes prov_add_runs() will add: the total of its progress. */
static int64_t
count_run_processes(sqlite3 *db, int64_t since_ns, const char *job)
{
	sqlite3_stmt *s = NULL;
	int64_t count = 0;

	if (sqlite3_prepare_v2(db,
	                       "SELECT count(*) FROM processes p JOIN runs r ON r.id = p.run_id "
	                       "WHERE r.started_ns >= ?1 AND (?2 IS NULL OR r.job_name = ?2)",
	                       -1, &s, NULL) != SQLITE_OK)
		return 0;
	sqlite3_bind_int64(s, 1, since_ns);
	if (job)
		sqlite3_bind_text(s, 2, job, -1, SQLITE_STATIC);
	if (sqlite3_step(s) == SQLITE_ROW)
		count = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return count;
}

int
prov_add_runs(struct prov_document *doc, sqlite3 *db, int64_t since_ns, const char *job,
              prov_progress_fn *progress, void *progress_context)
{
	sqlite3_stmt *s = NULL;
	int64_t done = 0, total = progress ? count_run_processes(db, since_ns, job) : 0;
	int step;

	doc->widen = true;
	if (sqlite3_prepare_v2(db,
	                       "SELECT p.id FROM processes p JOIN runs r ON r.id = p.run_id "
	                       "WHERE r.started_ns >= ?1 AND (?2 IS NULL OR r.job_name = ?2) "
	                       "ORDER BY p.id",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, since_ns);
	if (job)
		sqlite3_bind_text(s, 2, job, -1, SQLITE_STATIC);
	while ((step = sqlite3_step(s)) == SQLITE_ROW) {
		if (prov_add_process(doc, db, sqlite3_column_int64(s, 0)) < 0) {
			step = SQLITE_ERROR;
			break;
		}
		if (progress)
			progress(progress_context, ++done, total);
	}
	sqlite3_finalize(s);
	return step == SQLITE_DONE ? 0 : -1;
}

int
prov_add_version(struct prov_document *doc, sqlite3 *db, int64_t version_id)
{
	sqlite3_stmt *s = NULL;
	struct version *v;
	int rc = -1, step;
	char number[64], file[32];

	if (map_get(&doc->version_map, version_id) != SIZE_MAX)
		return 0;
	if (sqlite3_prepare_v2(
	        db,
	        "SELECT v.id, v.file_id, v.number, v.size, v.producer_process_id, "
	        "v.recorded_ns, v.hash, v.hash_state, v.origin, v.label, f.host, f.path, "
	        "coalesce((SELECT ms.mount_point FROM mount_sessions ms WHERE "
	        "ms.host = f.host AND ms.backing_dir = f.backing_dir ORDER BY ms.id DESC "
	        "LIMIT 1), f.backing_dir), v.hash_method "
	        "FROM versions v JOIN files f ON f.id = v.file_id WHERE v.id = ?",
	        -1, &s, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(s, 1, version_id);
	step = sqlite3_step(s);
	if (step != SQLITE_ROW) {
		rc = step == SQLITE_DONE ? 0 : -1;
		goto out;
	}
	v = grow(&doc->versions, &doc->version_count, &doc->version_alloc, sizeof(*v));
	if (v == NULL)
		goto out;
	v->id = version_id;
	v->file_id = sqlite3_column_int64(s, 1);
	v->number = sqlite3_column_int64(s, 2);
	v->size = sqlite3_column_int64(s, 3);
	v->producer_image = sqlite3_column_int64(s, 4);
	v->recorded_ns = sqlite3_column_int64(s, 5);
	v->hash = dup_text(s, 6);
	v->hash_state = dup_text(s, 7);
	v->hash_method = dup_text(s, 13);
	v->origin = dup_text(s, 8);
	v->label = dup_text(s, 9);
	v->host = dup_text(s, 10);
	v->name = lineage_dataset_name(&doc->path_map, (const char *)sqlite3_column_text(s, 12),
	                               (const char *)sqlite3_column_text(s, 11));
	v->generated_by = v->previous = SIZE_MAX;
	snprintf(file, sizeof(file), "/f%lld", (long long)v->file_id);
	snprintf(number, sizeof(number), "/f%lld/v%lld", (long long)v->file_id,
	         (long long)v->number);
	if (v->name) {
		v->file_text = make_id("file", v->host ? v->host : "", file, v->name);
		v->id_text = make_id("version", v->host ? v->host : "", number, v->name);
	}
	if (v->file_text == NULL || v->id_text == NULL)
		goto out;
	rc = map_put(&doc->version_map, version_id, doc->version_count - 1);
out:
	sqlite3_finalize(s);
	return rc;
}

/* ---- what PROV says about the scope ------------------------------------------------- */

static int
widen(struct prov_document *doc, sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db,
	                       "SELECT read_version_id FROM accesses WHERE process_id = ?1 AND "
	                       "read_version_id IS NOT NULL UNION SELECT written_version_id FROM "
	                       "accesses WHERE process_id = ?1 AND written_version_id IS NOT NULL "
	                       "UNION SELECT id FROM versions WHERE producer_process_id = ?1",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < doc->activity_count && step == SQLITE_DONE; i++)
		for (size_t j = 0; j < doc->activities[i].image_count && step == SQLITE_DONE; j++) {
			sqlite3_reset(s);
			sqlite3_bind_int64(s, 1, doc->activities[i].images[j]);
			while ((step = sqlite3_step(s)) == SQLITE_ROW)
				if (prov_add_version(doc, db, sqlite3_column_int64(s, 0)) < 0) {
					step = SQLITE_ERROR;
					break;
				}
		}
	sqlite3_finalize(s);
	return step == SQLITE_DONE ? 0 : -1;
}

/* Declare the version before each version of the scope (one level). */
static int
add_previous_versions(struct prov_document *doc, sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	size_t count = doc->version_count;
	int step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db, "SELECT id FROM versions WHERE file_id = ? AND number = ?", -1,
	                       &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < count; i++) {
		if (doc->versions[i].number <= 1)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, doc->versions[i].file_id);
		sqlite3_bind_int64(s, 2, doc->versions[i].number - 1);
		step = sqlite3_step(s);
		if (step == SQLITE_ROW) {
			int64_t previous = sqlite3_column_int64(s, 0);
			if (prov_add_version(doc, db, previous) < 0)
				break;
			doc->versions[i].previous = map_get(&doc->version_map, previous);
			step = SQLITE_DONE;
		} else if (step != SQLITE_DONE) {
			break;
		}
	}
	sqlite3_finalize(s);
	return step == SQLITE_DONE ? 0 : -1;
}

static int
usage_order(const void *left, const void *right)
{
	const struct usage *a = left, *b = right;

	if (a->activity != b->activity)
		return a->activity < b->activity ? -1 : 1;
	if (a->version != b->version)
		return a->version < b->version ? -1 : 1;
	return (a->time_ns > b->time_ns) - (a->time_ns < b->time_ns);
}

/* Activity times from the accesses, and the usages of versions in scope. */
static int
load_accesses(struct prov_document *doc, sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db,
	                       "SELECT read_version_id, opened_ns, coalesce(closed_ns, opened_ns) "
	                       "FROM accesses WHERE process_id = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < doc->activity_count && step == SQLITE_DONE; i++) {
		struct activity *a = &doc->activities[i];
		for (size_t j = 0; j < a->image_count && step == SQLITE_DONE; j++) {
			sqlite3_reset(s);
			sqlite3_bind_int64(s, 1, a->images[j]);
			while ((step = sqlite3_step(s)) == SQLITE_ROW) {
				int64_t opened = sqlite3_column_int64(s, 1);
				int64_t closed = sqlite3_column_int64(s, 2);
				if (opened < a->begin_ns)
					a->begin_ns = opened;
				if (a->ended && closed > a->end_ns)
					a->end_ns = closed;
				size_t version =
				    sqlite3_column_type(s, 0) == SQLITE_NULL
				        ? SIZE_MAX
				        : map_get(&doc->version_map, sqlite3_column_int64(s, 0));
				if (version == SIZE_MAX)
					continue;
				struct usage *u = grow(&doc->usages, &doc->usage_count,
				                       &doc->usage_alloc, sizeof(*u));
				if (u == NULL) {
					step = SQLITE_NOMEM;
					break;
				}
				u->activity = i;
				u->version = version;
				u->time_ns = opened;
			}
		}
	}
	sqlite3_finalize(s);
	if (step != SQLITE_DONE)
		return -1;
	/* One usage per process and version: the first. */
	if (doc->usage_count > 1) /* usages is NULL when none */
		qsort(doc->usages, doc->usage_count, sizeof(*doc->usages), usage_order);
	size_t kept = 0;
	for (size_t i = 0; i < doc->usage_count; i++)
		if (kept == 0 || doc->usages[kept - 1].activity != doc->usages[i].activity ||
		    doc->usages[kept - 1].version != doc->usages[i].version)
			doc->usages[kept++] = doc->usages[i];
	doc->usage_count = kept;
	return 0;
}

/* The one generation of each version whose producer is in scope. */
static int
load_generations(struct prov_document *doc, sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int step = SQLITE_DONE;

	if (sqlite3_prepare_v2(db,
	                       "SELECT process_id, coalesce(closed_ns, opened_ns) FROM accesses "
	                       "WHERE written_version_id = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < doc->version_count && step == SQLITE_DONE; i++) {
		struct version *v = &doc->versions[i];
		size_t producer =
		    v->producer_image ? map_get(&doc->images, v->producer_image) : SIZE_MAX;
		bool found = false;
		if (producer == SIZE_MAX)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, v->id);
		while ((step = sqlite3_step(s)) == SQLITE_ROW) {
			if (map_get(&doc->images, sqlite3_column_int64(s, 0)) != producer)
				continue;
			int64_t closed = sqlite3_column_int64(s, 1);
			if (!found || closed > v->gen_ns)
				v->gen_ns = closed;
			found = true;
		}
		if (!found)
			v->gen_ns = v->recorded_ns;
		v->generated_by = producer;
		struct activity *a = &doc->activities[producer];
		if (a->ended && v->gen_ns > a->end_ns)
			a->end_ns = v->gen_ns;
		if (v->gen_ns < a->begin_ns)
			a->begin_ns = v->gen_ns;
	}
	sqlite3_finalize(s);
	return step == SQLITE_DONE ? 0 : -1;
}

static int
load_runs(struct prov_document *doc, sqlite3 *db)
{
	sqlite3_stmt *s = NULL;
	int rc = 0;

	/* A run closed by a later daemon (end_unknown) has no known end: none is written. */
	if (sqlite3_prepare_v2(db,
	                       "SELECT uuid, job_name, started_ns, CASE WHEN end_unknown THEN NULL "
	                       "ELSE ended_ns END FROM runs WHERE id = ?",
	                       -1, &s, NULL) != SQLITE_OK)
		return -1;
	for (size_t i = 0; i < doc->activity_count && rc == 0; i++) {
		int64_t id = doc->activities[i].run_id;
		if (id == 0 || map_get(&doc->run_map, id) != SIZE_MAX)
			continue;
		sqlite3_reset(s);
		sqlite3_bind_int64(s, 1, id);
		int step = sqlite3_step(s);
		if (step == SQLITE_DONE)
			continue;
		if (step != SQLITE_ROW)
			return sqlite3_finalize(s), -1;
		struct run *r = grow(&doc->runs, &doc->run_count, &doc->run_alloc, sizeof(*r));
		if (r == NULL) {
			rc = -1;
			break;
		}
		r->id = id;
		r->uuid = dup_text(s, 0);
		r->job_name = dup_text(s, 1);
		r->started_ns = sqlite3_column_int64(s, 2);
		r->ended = sqlite3_column_type(s, 3) != SQLITE_NULL;
		r->ended_ns = sqlite3_column_int64(s, 3);
		r->id_text = make_id("run", r->uuid ? r->uuid : "", NULL, NULL);
		if (r->id_text == NULL || map_put(&doc->run_map, id, doc->run_count - 1))
			rc = -1;
	}
	/* A run spans its processes (a root seen late still started it). */
	for (size_t i = 0; i < doc->activity_count; i++) {
		size_t r = map_get(&doc->run_map, doc->activities[i].run_id);
		if (r == SIZE_MAX)
			continue;
		struct run *run = &doc->runs[r];
		if (doc->activities[i].begin_ns < run->started_ns)
			run->started_ns = doc->activities[i].begin_ns;
		if (run->ended && doc->activities[i].ended &&
		    doc->activities[i].end_ns > run->ended_ns)
			run->ended_ns = doc->activities[i].end_ns;
	}
	sqlite3_finalize(s);
	return rc;
}

static const char *
find_agent(struct prov_document *doc, char *id, bool person, const char *name, const char *hash,
           int64_t uid)
{
	for (size_t i = 0; i < doc->agent_count; i++)
		if (strcmp(doc->agents[i].id, id) == 0) {
			free(id);
			return doc->agents[i].id;
		}
	struct agent *agent =
	    grow(&doc->agents, &doc->agent_count, &doc->agent_alloc, sizeof(*agent));
	if (agent == NULL) {
		free(id);
		return NULL;
	}
	agent->id = id;
	agent->person = person;
	agent->name = name ? strdup(name) : NULL;
	agent->hash = hash ? strdup(hash) : NULL;
	agent->uid = uid;
	return id;
}

/* Identifiers of activities and their agents. */
static int
name_activities(struct prov_document *doc)
{
	for (size_t i = 0; i < doc->activity_count; i++) {
		struct activity *a = &doc->activities[i];
		char part[96];
		const char *agent;

		snprintf(part, sizeof(part), "/%lld-%lld/%lld", (long long)a->pid,
		         (long long)(a->start_ns / 1000000000), (long long)a->key);
		a->id = make_id("process", a->host ? a->host : "", part, NULL);
		snprintf(part, sizeof(part), "/%lld", (long long)a->uid);
		agent = find_agent(doc, make_id("user", a->host ? a->host : "", part, NULL), true,
		                   NULL, NULL, a->uid);
		a->user_id = agent ? strdup(agent) : NULL;
		if (a->executable_hash) {
			agent = find_agent(
			    doc, make_id("program-xxh3-128", a->executable_hash, NULL, NULL), false,
			    a->executable, a->executable_hash, a->uid);
		} else {
			agent = find_agent(doc,
			                   make_id("program", a->host ? a->host : "", NULL,
			                           a->executable ? a->executable : "/unknown"),
			                   false, a->executable, NULL, a->uid);
		}
		a->program_id = agent ? strdup(agent) : NULL;
		if (a->id == NULL || a->user_id == NULL || a->program_id == NULL)
			return -1;
	}
	return 0;
}

/* ---- PROV-JSON ---------------------------------------------------------------------- */

static void
add(json_object *object, const char *key, json_object *value)
{
	if (value)
		json_object_object_add(object, key, value);
}

static json_object *
typed(const char *value, const char *type)
{
	json_object *literal = json_object_new_object();

	add(literal, "$", lineage_jstr(value));
	add(literal, "type", json_object_new_string(type));
	return literal;
}

static json_object *
typed_int(int64_t value)
{
	char text[32];

	snprintf(text, sizeof(text), "%lld", (long long)value);
	return typed(text, "xsd:long");
}

static json_object *
json_time(int64_t ns)
{
	char iso[LINEAGE_TIME_SIZE];

	lineage_time(ns, 1, iso);
	return json_object_new_string(iso);
}

/* A relation record {"_:pN": {...}} under section of doc; returns the record. */
static json_object *
relation(json_object *root, const char *section, const char *prefix, size_t *counter)
{
	json_object *group, *record = json_object_new_object();
	char id[48];

	if (!json_object_object_get_ex(root, section, &group)) {
		group = json_object_new_object();
		json_object_object_add(root, section, group);
	}
	snprintf(id, sizeof(id), "_:%s%zu", prefix, ++*counter);
	json_object_object_add(group, id, record);
	return record;
}

static json_object *
section(json_object *root, const char *name)
{
	json_object *group;

	if (!json_object_object_get_ex(root, name, &group)) {
		group = json_object_new_object();
		json_object_object_add(root, name, group);
	}
	return group;
}

static json_object *
version_json(const struct version *v)
{
	json_object *e = json_object_new_object();
	char hash[64];

	add(e, "prov:type", typed("provfs:FileVersion", "prov:QUALIFIED_NAME"));
	add(e, "provfs:path", lineage_jstr(v->name));
	add(e, "provfs:host", lineage_jstr(v->host));
	add(e, "provfs:version", typed_int(v->number));
	add(e, "provfs:size", typed_int(v->size));
	if (v->hash) {
		snprintf(hash, sizeof(hash), "xxh3-128:%s", v->hash);
		add(e, "provfs:hash", json_object_new_string(hash));
	}
	add(e, "provfs:hashState", lineage_jstr(v->hash_state));
	add(e, "provfs:hashMethod", lineage_jstr(v->hash_method));
	add(e, "provfs:origin", lineage_jstr(v->origin));
	add(e, "provfs:label", lineage_jstr(v->label));
	return e;
}

static int
write_json(struct prov_document *doc, FILE *out)
{
	json_object *root = json_object_new_object(), *prefix = json_object_new_object();
	size_t counter = 0;

	add(prefix, "provfs", json_object_new_string(PROVFS_NS));
	add(prefix, "pfd", json_object_new_string(DATA_NS));
	add(prefix, "xsd", json_object_new_string("http://www.w3.org/2001/XMLSchema#"));
	add(root, "prefix", prefix);

	for (size_t i = 0; i < doc->version_count; i++) {
		const struct version *v = &doc->versions[i];
		json_object *entities = section(root, "entity");
		json_object_object_add(entities, v->id_text, version_json(v));
		if (!json_object_object_get_ex(entities, v->file_text, NULL)) {
			json_object *file = json_object_new_object();
			add(file, "prov:type", typed("provfs:File", "prov:QUALIFIED_NAME"));
			add(file, "provfs:path", lineage_jstr(v->name));
			json_object_object_add(entities, v->file_text, file);
		}
		json_object *r = relation(root, "specializationOf", "s", &counter);
		add(r, "prov:specificEntity", json_object_new_string(v->id_text));
		add(r, "prov:generalEntity", json_object_new_string(v->file_text));
		if (v->previous != SIZE_MAX) {
			r = relation(root, "wasDerivedFrom", "d", &counter);
			add(r, "prov:generatedEntity", json_object_new_string(v->id_text));
			add(r, "prov:usedEntity",
			    json_object_new_string(doc->versions[v->previous].id_text));
			add(r, "prov:type", typed("prov:Revision", "prov:QUALIFIED_NAME"));
		}
		if (v->generated_by != SIZE_MAX) {
			r = relation(root, "wasGeneratedBy", "g", &counter);
			add(r, "prov:entity", json_object_new_string(v->id_text));
			add(r, "prov:activity",
			    json_object_new_string(doc->activities[v->generated_by].id));
			add(r, "prov:time", json_time(v->gen_ns));
		}
	}
	for (size_t i = 0; i < doc->run_count; i++) {
		const struct run *run = &doc->runs[i];
		json_object *a = json_object_new_object();
		add(a, "prov:startTime", json_time(run->started_ns));
		if (run->ended)
			add(a, "prov:endTime", json_time(run->ended_ns));
		add(a, "prov:type", typed("provfs:Run", "prov:QUALIFIED_NAME"));
		add(a, "provfs:runId", lineage_jstr(run->uuid));
		add(a, "provfs:job", lineage_jstr(run->job_name));
		json_object_object_add(section(root, "activity"), run->id_text, a);
	}
	for (size_t i = 0; i < doc->activity_count; i++) {
		const struct activity *p = &doc->activities[i];
		json_object *a = json_object_new_object(), *r;
		char ref[64];
		add(a, "prov:startTime", json_time(p->begin_ns));
		if (p->ended)
			add(a, "prov:endTime", json_time(p->end_ns));
		add(a, "prov:type", typed("provfs:Process", "prov:QUALIFIED_NAME"));
		snprintf(ref, sizeof(ref), "%lld@%lld", (long long)p->pid,
		         (long long)(p->start_ns / 1000000000));
		add(a, "provfs:process", json_object_new_string(ref));
		add(a, "provfs:host", lineage_jstr(p->host));
		add(a, "provfs:executable", lineage_jstr(p->executable));
		add(a, "provfs:argv", lineage_jstr(p->argv));
		size_t run = map_get(&doc->run_map, p->run_id);
		if (run != SIZE_MAX)
			add(a, "provfs:run", typed(doc->runs[run].id_text, "prov:QUALIFIED_NAME"));
		json_object_object_add(section(root, "activity"), p->id, a);
		r = relation(root, "wasAssociatedWith", "a", &counter);
		add(r, "prov:activity", json_object_new_string(p->id));
		add(r, "prov:agent", json_object_new_string(p->user_id));
		r = relation(root, "wasAssociatedWith", "a", &counter);
		add(r, "prov:activity", json_object_new_string(p->id));
		add(r, "prov:agent", json_object_new_string(p->program_id));
		size_t parent = p->parent_image ? map_get(&doc->images, p->parent_image) : SIZE_MAX;
		if (parent != SIZE_MAX && parent != i) {
			r = relation(root, "wasStartedBy", "t", &counter);
			add(r, "prov:activity", json_object_new_string(p->id));
			add(r, "prov:starter", json_object_new_string(doc->activities[parent].id));
			add(r, "prov:time", json_time(p->begin_ns));
		}
	}
	for (size_t i = 0; i < doc->agent_count; i++) {
		const struct agent *agent = &doc->agents[i];
		json_object *a = json_object_new_object();
		if (agent->person) {
			add(a, "prov:type", typed("prov:Person", "prov:QUALIFIED_NAME"));
			add(a, "provfs:uid", typed_int(agent->uid));
		} else {
			add(a, "prov:type", typed("prov:SoftwareAgent", "prov:QUALIFIED_NAME"));
			add(a, "provfs:executable", lineage_jstr(agent->name));
			if (agent->hash) {
				char hash[64];
				snprintf(hash, sizeof(hash), "xxh3-128:%s", agent->hash);
				add(a, "provfs:hash", json_object_new_string(hash));
			}
		}
		json_object_object_add(section(root, "agent"), agent->id, a);
	}
	for (size_t i = 0; i < doc->usage_count; i++) {
		const struct usage *u = &doc->usages[i];
		json_object *r = relation(root, "used", "u", &counter);
		add(r, "prov:activity", json_object_new_string(doc->activities[u->activity].id));
		add(r, "prov:entity", json_object_new_string(doc->versions[u->version].id_text));
		add(r, "prov:time", json_time(u->time_ns));
		/* Derivations: every later generation of this activity came from it. */
		for (size_t k = doc->first[u->activity]; k < doc->first[u->activity + 1]; k++) {
			size_t j = doc->generated[k];
			const struct version *g = &doc->versions[j];
			if (j == u->version || g->gen_ns < u->time_ns)
				continue;
			json_object *d = relation(root, "wasDerivedFrom", "d", &counter);
			add(d, "prov:generatedEntity", json_object_new_string(g->id_text));
			add(d, "prov:usedEntity",
			    json_object_new_string(doc->versions[u->version].id_text));
			add(d, "prov:activity",
			    json_object_new_string(doc->activities[u->activity].id));
		}
	}
	fputs(json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY |
	                                               JSON_C_TO_STRING_SPACED |
	                                               JSON_C_TO_STRING_NOSLASHESCAPE),
	      out);
	fputc('\n', out);
	json_object_put(root);
	return 0;
}

/* ---- PROV-O (Turtle) ------------------------------------------------------------------ */

/* An IRI from a "pfd:..." identifier (already percent-encoded). */
static void
ttl_iri(FILE *out, const char *id)
{
	fprintf(out, "<%s%s>", DATA_NS, id + 4);
}

/* A Turtle string literal; bytes that are not UTF-8 become U+FFFD (the IRIs keep them). */
static void
ttl_string(FILE *out, const char *s)
{
	json_object *jso = lineage_jstr(s ? s : "");
	const char *json = lineage_json_text(jso);

	/*
	 * The JSON form is valid UTF-8 with \", \\, \uXXXX and \n-style escapes,
	 * which Turtle's STRING_LITERAL_QUOTE accepts too, except the lone
	 * surrogates "\udcXX" of bytes that are not UTF-8: those become U+FFFD.
	 */
	for (const char *p = json; *p; p++) {
		if (p[0] == '\\' && p[1] == 'u' && (p[2] == 'd' || p[2] == 'D') && p[3] &&
		    strchr("cdefCDEF", p[3]) != NULL) {
			fputs("\\uFFFD", out);
			p += 5;
		} else if (p[0] == '\\' && p[1]) {
			fputc(p[0], out);
			fputc(p[1], out);
			p++;
		} else {
			fputc(*p, out);
		}
	}
	json_object_put(jso);
}

static void
ttl_time(FILE *out, int64_t ns)
{
	char iso[LINEAGE_TIME_SIZE];

	lineage_time(ns, 1, iso);
	fprintf(out, "\"%s\"^^xsd:dateTime", iso);
}

static int
write_turtle(struct prov_document *doc, FILE *out)
{
	fputs("@prefix prov: <http://www.w3.org/ns/prov#> .\n"
	      "@prefix xsd: <http://www.w3.org/2001/XMLSchema#> .\n"
	      "@prefix provfs: <" PROVFS_NS "> .\n\n",
	      out);
	for (size_t i = 0; i < doc->version_count; i++) {
		const struct version *v = &doc->versions[i];
		ttl_iri(out, v->file_text);
		fputs(" a prov:Entity, provfs:File ;\n    provfs:path ", out);
		ttl_string(out, v->name);
		fputs(" .\n", out);
		ttl_iri(out, v->id_text);
		fputs(" a prov:Entity, provfs:FileVersion ;\n    provfs:path ", out);
		ttl_string(out, v->name);
		fputs(" ;\n    provfs:host ", out);
		ttl_string(out, v->host);
		fprintf(out,
		        " ;\n    provfs:version \"%lld\"^^xsd:long ;\n"
		        "    provfs:size \"%lld\"^^xsd:long ;\n",
		        (long long)v->number, (long long)v->size);
		if (v->hash)
			fprintf(out, "    provfs:hash \"xxh3-128:%s\" ;\n", v->hash);
		if (v->label) {
			fputs("    provfs:label ", out);
			ttl_string(out, v->label);
			fputs(" ;\n", out);
		}
		if (v->hash_method) {
			fputs("    provfs:hashMethod ", out);
			ttl_string(out, v->hash_method);
			fputs(" ;\n", out);
		}
		fputs("    provfs:hashState ", out);
		ttl_string(out, v->hash_state);
		fputs(" ;\n    provfs:origin ", out);
		ttl_string(out, v->origin);
		fputs(" ;\n    prov:specializationOf ", out);
		ttl_iri(out, v->file_text);
		if (v->previous != SIZE_MAX) {
			fputs(" ;\n    prov:wasRevisionOf ", out);
			ttl_iri(out, doc->versions[v->previous].id_text);
		}
		if (v->generated_by != SIZE_MAX) {
			const char *activity = doc->activities[v->generated_by].id;
			fputs(" ;\n    prov:wasGeneratedBy ", out);
			ttl_iri(out, activity);
			fputs(
			    " ;\n    prov:qualifiedGeneration [ a prov:Generation ; prov:activity ",
			    out);
			ttl_iri(out, activity);
			fputs(" ; prov:atTime ", out);
			ttl_time(out, v->gen_ns);
			fputs(" ]", out);
		}
		fputs(" .\n", out);
	}
	for (size_t i = 0; i < doc->run_count; i++) {
		const struct run *run = &doc->runs[i];
		ttl_iri(out, run->id_text);
		fputs(" a prov:Activity, provfs:Run ;\n    prov:startedAtTime ", out);
		ttl_time(out, run->started_ns);
		if (run->ended) {
			fputs(" ;\n    prov:endedAtTime ", out);
			ttl_time(out, run->ended_ns);
		}
		fputs(" ;\n    provfs:runId ", out);
		ttl_string(out, run->uuid);
		fputs(" ;\n    provfs:job ", out);
		ttl_string(out, run->job_name);
		fputs(" .\n", out);
	}
	for (size_t i = 0; i < doc->activity_count; i++) {
		const struct activity *p = &doc->activities[i];
		ttl_iri(out, p->id);
		fputs(" a prov:Activity, provfs:Process ;\n    prov:startedAtTime ", out);
		ttl_time(out, p->begin_ns);
		if (p->ended) {
			fputs(" ;\n    prov:endedAtTime ", out);
			ttl_time(out, p->end_ns);
		}
		fprintf(out, " ;\n    provfs:process \"%lld@%lld\" ;\n    provfs:host ",
		        (long long)p->pid, (long long)(p->start_ns / 1000000000));
		ttl_string(out, p->host);
		if (p->executable) {
			fputs(" ;\n    provfs:executable ", out);
			ttl_string(out, p->executable);
		}
		fputs(" ;\n    provfs:argv ", out);
		ttl_string(out, p->argv);
		size_t run = map_get(&doc->run_map, p->run_id);
		if (run != SIZE_MAX) {
			fputs(" ;\n    provfs:run ", out);
			ttl_iri(out, doc->runs[run].id_text);
		}
		fputs(" ;\n    prov:wasAssociatedWith ", out);
		ttl_iri(out, p->user_id);
		fputs(", ", out);
		ttl_iri(out, p->program_id);
		size_t parent = p->parent_image ? map_get(&doc->images, p->parent_image) : SIZE_MAX;
		if (parent != SIZE_MAX && parent != i) {
			fputs(" ;\n    prov:qualifiedStart [ a prov:Start ; prov:hadActivity ",
			      out);
			ttl_iri(out, doc->activities[parent].id);
			fputs(" ; prov:atTime ", out);
			ttl_time(out, p->begin_ns);
			fputs(" ]", out);
		}
		for (size_t j = 0; j < doc->usage_count; j++) {
			const struct usage *u = &doc->usages[j];
			if (u->activity != i)
				continue;
			fputs(" ;\n    prov:used ", out);
			ttl_iri(out, doc->versions[u->version].id_text);
			fputs(" ;\n    prov:qualifiedUsage [ a prov:Usage ; prov:entity ", out);
			ttl_iri(out, doc->versions[u->version].id_text);
			fputs(" ; prov:atTime ", out);
			ttl_time(out, u->time_ns);
			fputs(" ]", out);
		}
		fputs(" .\n", out);
	}
	/* Derivations, as statements about the generated versions. */
	for (size_t i = 0; i < doc->usage_count; i++) {
		const struct usage *u = &doc->usages[i];
		for (size_t k = doc->first[u->activity]; k < doc->first[u->activity + 1]; k++) {
			size_t j = doc->generated[k];
			const struct version *g = &doc->versions[j];
			if (j == u->version || g->gen_ns < u->time_ns)
				continue;
			ttl_iri(out, g->id_text);
			fputs(" prov:wasDerivedFrom ", out);
			ttl_iri(out, doc->versions[u->version].id_text);
			fputs(" .\n", out);
		}
	}
	for (size_t i = 0; i < doc->agent_count; i++) {
		const struct agent *agent = &doc->agents[i];
		ttl_iri(out, agent->id);
		if (agent->person) {
			fprintf(
			    out,
			    " a prov:Agent, prov:Person ;\n    provfs:uid \"%lld\"^^xsd:long .\n",
			    (long long)agent->uid);
			continue;
		}
		fputs(" a prov:Agent, prov:SoftwareAgent", out);
		if (agent->name) {
			fputs(" ;\n    provfs:executable ", out);
			ttl_string(out, agent->name);
		}
		if (agent->hash)
			fprintf(out, " ;\n    provfs:hash \"xxh3-128:%s\"", agent->hash);
		fputs(" .\n", out);
	}
	return 0;
}

/* Index the generations by activity (a counting sort), for derivations. */
static int
index_generations(struct prov_document *doc)
{
	doc->first = calloc(doc->activity_count + 2, sizeof(*doc->first));
	doc->generated = malloc((doc->version_count + 1) * sizeof(*doc->generated));
	if (doc->first == NULL || doc->generated == NULL)
		return -1;
	for (size_t i = 0; i < doc->version_count; i++)
		if (doc->versions[i].generated_by != SIZE_MAX)
			doc->first[doc->versions[i].generated_by + 2]++;
	for (size_t a = 2; a < doc->activity_count + 2; a++)
		doc->first[a] += doc->first[a - 1];
	for (size_t i = 0; i < doc->version_count; i++)
		if (doc->versions[i].generated_by != SIZE_MAX)
			doc->generated[doc->first[doc->versions[i].generated_by + 1]++] = i;
	return 0;
}

int
prov_write(struct prov_document *doc, sqlite3 *db, enum prov_format format, FILE *out)
{
	if ((doc->widen && widen(doc, db) < 0) || add_previous_versions(doc, db) < 0 ||
	    load_accesses(doc, db) < 0 || load_generations(doc, db) < 0 ||
	    index_generations(doc) < 0 || load_runs(doc, db) < 0 || name_activities(doc) < 0)
		return -1;
	return format == PROV_FORMAT_JSON ? write_json(doc, out) : write_turtle(doc, out);
}
