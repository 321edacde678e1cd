/*
 * label_store.c - the label policy as the store and provfs.conf record it,
 * for provfs-label list and provfs-query (see label_store.h).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "label_store.h"
#include "path_glob.h"
#include "policy.h"
#include "process_table.h"

int
label_rank(const struct provfs_config *config, const char *level)
{
	if (config == NULL || level == NULL)
		return -1;
	return config_level_index(config, level);
}

const struct path_rule *
label_path_rule(const struct provfs_config *config, const char *path)
{
	const struct path_rule *best = NULL;
	size_t best_specificity = 0;

	if (config == NULL || path == NULL)
		return NULL;
	for (size_t i = 0; i < config->path_rule_count; i++) {
		const struct path_rule *rule = &config->path_rules[i];
		size_t specificity;

		if (!path_glob_match(rule->glob, path))
			continue;
		specificity = path_glob_specificity(rule->glob);
		/* Ties go to the later line: >=. */
		if (best == NULL || specificity >= best_specificity) {
			best = rule;
			best_specificity = specificity;
		}
	}
	return best;
}

static char *
column_text(sqlite3_stmt *statement, int column)
{
	const unsigned char *text = sqlite3_column_text(statement, column);

	return text ? strdup((const char *)text) : NULL;
}

static int64_t
column_int(sqlite3_stmt *statement, int column)
{
	if (sqlite3_column_type(statement, column) == SQLITE_NULL)
		return LABEL_NONE;
	return sqlite3_column_int64(statement, column);
}

static int
fail(sqlite3 *db, char *error, size_t error_size)
{
	snprintf(error, error_size, "cannot read the store: %s", sqlite3_errmsg(db));
	return -1;
}

/*
 * The statements of label_facts_load, prepared once per connection: list
 * and exposure call it once per file.
 */
static const char sql_version[] =
	"SELECT v.id, v.number, v.label, v.label_from_version_id, f.path, w.number, w.hash "
	"FROM versions v LEFT JOIN versions w ON w.id = v.label_from_version_id "
	"LEFT JOIN files f ON f.id = w.file_id "
	"WHERE v.file_id = ? ORDER BY v.number DESC LIMIT 1";
/* One version by id, with when it was superseded (NULL: it is the current one). */
static const char sql_version_id[] =
	"SELECT v.id, v.number, v.label, v.label_from_version_id, f.path, w.number, w.hash, "
	"(SELECT MIN(n.recorded_ns) FROM versions n WHERE n.file_id = v.file_id "
	"AND n.number > v.number) "
	"FROM versions v LEFT JOIN versions w ON w.id = v.label_from_version_id "
	"LEFT JOIN files f ON f.id = w.file_id "
	"WHERE v.id = ?2 AND v.file_id = ?1";
/*
 * The file's last label change (before ?2, the end of the version's time;
 * NULL for the current version).  Only the last one counts, as in the
 * daemon (policy/labels.c, set_label, unset_label and load_persisted):
 * each set, declassification or unset replaces whatever explicit label or
 * declassification came before, so a declassification followed by a plain
 * set, or by an unset, no longer holds.
 */
static const char sql_change[] =
	"SELECT level, forced, version_id, reason, uid, time_ns FROM label_changes "
	"WHERE file_id = ?1 AND (?2 IS NULL OR time_ns < ?2) "
	"ORDER BY time_ns DESC, id DESC LIMIT 1";

static struct {
	sqlite3 *db;
	sqlite3_stmt *version, *version_id, *change;
} cache;

static void
cache_clear(void)
{
	sqlite3_finalize(cache.version);
	sqlite3_finalize(cache.version_id);
	sqlite3_finalize(cache.change);
	cache.version = cache.version_id = cache.change = NULL;
	cache.db = NULL;
}

static int
cache_prepare(sqlite3 *db)
{
	if (cache.db == db)
		return 0;
	cache_clear();
	if (sqlite3_prepare_v2(db, sql_version, -1, &cache.version, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql_version_id, -1, &cache.version_id, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql_change, -1, &cache.change, NULL) != SQLITE_OK) {
		cache_clear();
		return -1;
	}
	cache.db = db;
	return 0;
}

/* Pick the effective label and its source (see label_store.h). */
static void
decide(const struct provfs_config *config, struct label_facts *f)
{
	int best = -2;

	f->effective = NULL;
	f->source = "default";
	if (f->declassified) {
		f->effective = f->declassified;
		f->source = "declassified";
		return;
	}
	if (f->rule) {
		best = label_rank(config, f->rule->level);
		f->effective = f->rule->level;
		f->source = "rule";
	}
	if (f->explicit_level && label_rank(config, f->explicit_level) > best) {
		best = label_rank(config, f->explicit_level);
		f->effective = f->explicit_level;
		f->source = "explicit";
	}
	if (f->propagated && label_rank(config, f->propagated) > best) {
		f->effective = f->propagated;
		f->source = "propagated";
	}
}

int
label_facts_load(sqlite3 *db, const struct provfs_config *config, int64_t file_id,
		 const char *path, struct label_facts *f, char *error, size_t error_size)
{
	return label_facts_load_version(db, config, file_id, LABEL_NONE, path, f, error,
					error_size);
}

int
label_facts_load_version(sqlite3 *db, const struct provfs_config *config, int64_t file_id,
			 int64_t version_id, const char *path, struct label_facts *f,
			 char *error, size_t error_size)
{
	sqlite3_stmt *version;
	int64_t superseded_ns = LABEL_NONE; /* the end of the version's time; NONE: current */
	int rc;

	memset(f, 0, sizeof(*f));
	f->file_id = file_id;
	f->version_id = f->version_number = f->from_version_id = f->from_number = LABEL_NONE;
	f->explicit_uid = f->explicit_ns = f->declassify_uid = f->declassify_ns = LABEL_NONE;
	if (cache_prepare(db) < 0)
		return fail(db, error, error_size);
	f->rule = label_path_rule(config, path);

	version = version_id == LABEL_NONE ? cache.version : cache.version_id;
	sqlite3_reset(version);
	sqlite3_bind_int64(version, 1, file_id);
	if (version_id != LABEL_NONE)
		sqlite3_bind_int64(version, 2, version_id);
	rc = sqlite3_step(version);
	if (rc == SQLITE_ROW) {
		f->version_id = sqlite3_column_int64(version, 0);
		f->version_number = sqlite3_column_int64(version, 1);
		f->propagated = column_text(version, 2);
		f->from_version_id = column_int(version, 3);
		f->from_path = column_text(version, 4);
		f->from_number = column_int(version, 5);
		f->from_hash = column_text(version, 6);
		if (version_id != LABEL_NONE)
			superseded_ns = column_int(version, 7);
	} else if (rc != SQLITE_DONE) {
		goto fail;
	}
	sqlite3_reset(version);

	sqlite3_reset(cache.change);
	sqlite3_bind_int64(cache.change, 1, file_id);
	if (superseded_ns != LABEL_NONE)
		sqlite3_bind_int64(cache.change, 2, superseded_ns);
	else
		sqlite3_bind_null(cache.change, 2);
	rc = sqlite3_step(cache.change);
	if (rc == SQLITE_ROW) {
		bool forced = sqlite3_column_int(cache.change, 1) != 0;
		int64_t of_version = column_int(cache.change, 2);

		if (!forced) {
			/* A set, or an unset (NULL level): no explicit label. */
			f->explicit_level = column_text(cache.change, 0);
			if (f->explicit_level) {
				f->explicit_uid = column_int(cache.change, 4);
				f->explicit_ns = column_int(cache.change, 5);
			}
		} else if (f->version_id != LABEL_NONE && of_version == f->version_id) {
			f->declassified = column_text(cache.change, 0);
			f->declassify_reason = column_text(cache.change, 3);
			f->declassify_uid = column_int(cache.change, 4);
			f->declassify_ns = column_int(cache.change, 5);
		}
		/*
		 * Else it declassified an older version: that ended when the
		 * file was written again, and the explicit label it had
		 * replaced does not come back (the daemon loads neither).
		 */
	} else if (rc != SQLITE_DONE) {
		goto fail;
	}
	sqlite3_reset(cache.change);
	decide(config, f);
	return 0;
fail:
	fail(db, error, error_size);
	sqlite3_reset(cache.version);
	sqlite3_reset(cache.version_id);
	sqlite3_reset(cache.change);
	label_facts_release(f);
	return -1;
}

void
label_store_finish(void)
{
	cache_clear();
}

void
label_facts_release(struct label_facts *f)
{
	free(f->explicit_level);
	free(f->propagated);
	free(f->from_path);
	free(f->from_hash);
	free(f->declassified);
	free(f->declassify_reason);
	memset(f, 0, sizeof(*f));
}

bool
label_has_column(sqlite3 *db, const char *table, const char *column)
{
	sqlite3_stmt *statement;
	bool found = false;

	/* pragma_table_info() is an ordinary query: no schema knowledge needed. */
	if (sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info(?) WHERE name = ?", -1,
			       &statement, NULL) != SQLITE_OK)
		return false;
	sqlite3_bind_text(statement, 1, table, -1, SQLITE_STATIC);
	sqlite3_bind_text(statement, 2, column, -1, SQLITE_STATIC);
	found = sqlite3_step(statement) == SQLITE_ROW;
	sqlite3_finalize(statement);
	return found;
}

/* --- clearance of a recorded process ------------------------------------- */

/* What the store recorded of one process image, for grant conditions. */
struct image_facts {
	int64_t id;
	int64_t uid, gid;
	char *executable, *executable_hash;
	char *argv;         /* NUL-terminated words, as recorded */
	size_t argv_length; /* bytes in argv */
	char *cwd;
	char *host;
	char *job;   /* PROVFS_JOB of its run, NULL when the run was named otherwise */
	unsigned int facts; /* trust facts for the script: rules (recorded_facts()) */
};

static void
image_facts_release(struct image_facts *image)
{
	free(image->executable);
	free(image->executable_hash);
	free(image->argv);
	free(image->cwd);
	free(image->host);
	free(image->job);
}

/*
 * The trust facts (process_table.h) a script: condition needs of a recorded
 * image, for policy_script_fails(), the rules the daemon decides by.  The
 * daemon read them from the kernel while the process ran; the store keeps
 * the names (executable, argv, cwd) but not the facts.  exposure asks who
 * read a file without the clearance for it, and an auditor would rather
 * look at one read too many than miss one, so where a fact cannot be
 * rebuilt the grant is taken not to hold (the read is reported), but for
 * the facts of the environment, below:
 *
 *   PROCESS_EXECUTABLE_*: the owner and mode of the executed inode are not
 *   recorded.  The file at the recorded path is looked at now, on the host
 *   the process ran on only: owned by root and writable by no group or
 *   other user, it is taken to have been so then (only root can have made
 *   it so since); missing, someone else's, or another host's: unknown, so
 *   the grant does not hold.
 *
 *   PROCESS_ARGV0_UNTRUSTED: the daemon looked at the directories argv[0]
 *   leads Python to (by device and inode, with their owners); the store
 *   has the names only.  An argv[0] with a slash must name the executable's
 *   directory as a string (policy_python_argv0_in_place()): "/bin/python3"
 *   for /usr/bin/python3.11 on a merged-/usr system, which the daemon
 *   accepts, is reported.  A bare name ("python3 -I SCRIPT") was looked up
 *   on a PATH the store does not keep; it is taken to have led to the
 *   executable, as it does on a PATH of root's directories: the one fact
 *   of where Python starts that exposure cannot check.
 *
 *   PROCESS_PYTHON_NO_USER_SITE is never assumed: Python's -I, -s or -S
 *   must be in the recorded argv.
 *
 *   The environment's PROCESS_INJECTION_* and a tracer are not recorded
 *   and not checked (condition_holds()): taken to be absent, or no exe: or
 *   script: grant would ever hold here.  The daemon refused every such
 *   process a read of a file whose label needed the grant when it read it.
 */
static unsigned int
recorded_facts(const struct image_facts *image)
{
	const unsigned int unknown = PROCESS_EXECUTABLE_UNKNOWN | PROCESS_EXECUTABLE_NOT_ROOT |
				     PROCESS_EXECUTABLE_SHARED_WRITABLE;
	unsigned int facts = 0;
	char host[256] = "";
	struct stat st;

	if (image->executable == NULL || image->host == NULL ||
	    gethostname(host, sizeof(host) - 1) < 0 || strcmp(host, image->host) != 0 ||
	    stat(image->executable, &st) < 0)
		facts |= unknown;
	else if (st.st_uid != 0)
		facts |= PROCESS_EXECUTABLE_NOT_ROOT;
	else if (st.st_mode & (S_IWGRP | S_IWOTH))
		facts |= PROCESS_EXECUTABLE_SHARED_WRITABLE;
	if (image->argv == NULL || image->argv_length == 0 ||
	    (strchr(image->argv, '/') &&
	     !policy_python_argv0_in_place(image->executable, image->argv, image->cwd)))
		facts |= PROCESS_ARGV0_UNTRUSTED;
	return facts;
}

static int
image_facts_load(sqlite3 *db, int64_t image_id, struct image_facts *image)
{
	sqlite3_stmt *statement;
	int rc;

	memset(image, 0, sizeof(*image));
	image->id = image_id;
	if (sqlite3_prepare_v2(db,
			       "SELECT p.uid, p.gid, p.executable, p.executable_hash, p.argv, "
			       "CASE WHEN r.named_by = 'PROVFS_JOB' THEN r.job_name END, "
			       "p.cwd, p.host "
			       "FROM processes p LEFT JOIN runs r ON r.id = p.run_id WHERE p.id = ?",
			       -1, &statement, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(statement, 1, image_id);
	rc = sqlite3_step(statement);
	if (rc == SQLITE_ROW) {
		const char *argv = sqlite3_column_blob(statement, 4);
		int size = sqlite3_column_bytes(statement, 4);

		image->uid = sqlite3_column_int64(statement, 0);
		image->gid = sqlite3_column_int64(statement, 1);
		image->executable = column_text(statement, 2);
		image->executable_hash = column_text(statement, 3);
		/* argv is NUL-terminated words; one more NUL keeps a cut word a string. */
		if (argv && size > 0) {
			image->argv = malloc((size_t)size + 1);
			if (image->argv == NULL)
				abort();
			memcpy(image->argv, argv, (size_t)size);
			image->argv[size] = '\0';
			image->argv_length = (size_t)size;
		}
		image->job = column_text(statement, 5);
		image->cwd = column_text(statement, 6);
		image->host = column_text(statement, 7);
		image->facts = recorded_facts(image);
		rc = SQLITE_DONE;
	}
	sqlite3_finalize(statement);
	return rc == SQLITE_DONE ? 0 : -1;
}

/* "/path@xxh3:HEX" into path and hash (NULL when not pinned); both owned by the caller. */
static void
split_pin(const char *value, char **path, char **hash)
{
	const char *at = strstr(value, "@xxh3:");

	if (at) {
		*path = strndup(value, (size_t)(at - value));
		*hash = strdup(at + 6);
	} else {
		*path = strdup(value);
		*hash = NULL;
	}
}

static bool
user_in_group(int64_t uid, int64_t primary_gid, const char *group_name)
{
	struct group *group = getgrnam(group_name);
	struct passwd *pw;

	if (group == NULL)
		return false;
	if ((int64_t)group->gr_gid == primary_gid)
		return true;
	pw = getpwuid((uid_t)uid);
	if (pw == NULL)
		return false;
	for (char **member = group->gr_mem; *member; member++)
		if (strcmp(*member, pw->pw_name) == 0)
			return true;
	return (int64_t)pw->pw_gid == (int64_t)group->gr_gid;
}

/* Did the image read a version with this hash (the script it ran)? */
static int
read_hash(sqlite3 *db, int64_t image_id, const char *hash, bool *found)
{
	sqlite3_stmt *statement;
	int rc;

	*found = false;
	if (sqlite3_prepare_v2(db,
			       "SELECT 1 FROM accesses a JOIN versions v ON v.id = a.read_version_id "
			       "WHERE a.process_id = ? AND v.hash = ? LIMIT 1",
			       -1, &statement, NULL) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(statement, 1, image_id);
	sqlite3_bind_text(statement, 2, hash, -1, SQLITE_STATIC);
	rc = sqlite3_step(statement);
	*found = rc == SQLITE_ROW;
	sqlite3_finalize(statement);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

static int
condition_holds(sqlite3 *db, const struct image_facts *image, const char *condition,
		bool *holds)
{
	const char *value = strchr(condition, ':');
	int rc = 0;

	*holds = false;
	if (value == NULL)
		return 0;
	value++;
	if (strncmp(condition, "user:", 5) == 0) {
		struct passwd *pw = getpwnam(value);
		*holds = pw && (int64_t)pw->pw_uid == image->uid;
	} else if (strncmp(condition, "uid:", 4) == 0) {
		char *end;
		long long uid = strtoll(value, &end, 10);
		*holds = *value && *end == '\0' && uid == image->uid;
	} else if (strncmp(condition, "group:", 6) == 0) {
		*holds = user_in_group(image->uid, image->gid, value);
	} else if (strncmp(condition, "exe:", 4) == 0) {
		char *path, *hash;
		split_pin(value, &path, &hash);
		*holds = image->executable && strcmp(image->executable, path) == 0 &&
			 (hash == NULL ||
			  (image->executable_hash && strcmp(image->executable_hash, hash) == 0));
		free(path);
		free(hash);
	} else if (strncmp(condition, "script:", 7) == 0) {
		char *path, *hash;
		split_pin(value, &path, &hash);
		if (policy_script_fails(image->executable, image->argv, image->argv_length,
					image->cwd, image->facts, path) == NULL) {
			if (hash == NULL)
				*holds = true;
			else
				rc = read_hash(db, image->id, hash, holds);
		}
		free(path);
		free(hash);
	} else if (strncmp(condition, "job:", 4) == 0) {
		*holds = image->job && strcmp(image->job, value) == 0;
	}
	return rc;
}

int
label_clearance_of(sqlite3 *db, const struct provfs_config *config, int64_t image_id,
		   char *buffer, size_t buffer_size, const char **level, const char **how,
		   char *error, size_t error_size)
{
	struct image_facts image;
	sqlite3_stmt *statement;
	int best, rc;

	*level = config->default_clearance;
	*how = "default";

	/* 1. The daemon's own answer, when it refused this image something. */
	if (sqlite3_prepare_v2(db,
			       "SELECT clearance FROM denials WHERE process_id = ? "
			       "ORDER BY time_ns DESC LIMIT 1",
			       -1, &statement, NULL) != SQLITE_OK)
		return fail(db, error, error_size);
	sqlite3_bind_int64(statement, 1, image_id);
	rc = sqlite3_step(statement);
	if (rc == SQLITE_ROW && sqlite3_column_text(statement, 0)) {
		snprintf(buffer, buffer_size, "%s", (const char *)sqlite3_column_text(statement, 0));
		*level = buffer;
		*how = "denial";
	}
	sqlite3_finalize(statement);
	if (rc == SQLITE_ROW)
		return 0;
	if (rc != SQLITE_DONE)
		return fail(db, error, error_size);

	/* 2. The grants, against what the store recorded of the image. */
	if (image_facts_load(db, image_id, &image) < 0)
		return fail(db, error, error_size);
	best = label_rank(config, config->default_clearance);
	for (size_t i = 0; i < config->grant_count; i++) {
		const struct clearance_grant *grant = &config->grants[i];
		bool all = grant->conditions.count > 0;

		if (label_rank(config, grant->level) <= best)
			continue;
		for (size_t c = 0; all && c < grant->conditions.count; c++) {
			bool holds;
			if (condition_holds(db, &image, grant->conditions.items[c], &holds) < 0) {
				image_facts_release(&image);
				return fail(db, error, error_size);
			}
			all = holds;
		}
		if (all) {
			best = label_rank(config, grant->level);
			*level = grant->level;
			*how = "grants";
		}
	}
	image_facts_release(&image);
	return 0;
}
