/*
 * Unit tests of label_store: the tools' reconstruction of a file's
 * effective label and of a recorded process's clearance, on a real store
 * (created by store_open in a temporary directory) with rows written here.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "../../tools/label_store.h"
#include "store.h"

static int failures;

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);    \
			failures++;                                                        \
		}                                                                          \
	} while (0)

static bool
same(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

static void
exec_sql(sqlite3 *db, const char *sql)
{
	char *message = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &message) != SQLITE_OK) {
		fprintf(stderr, "sql failed: %s\n%s\n", message, sql);
		exit(2);
	}
}

static struct provfs_config *
load(const char *dir, const char *text)
{
	char path[512], error[512];
	struct provfs_config *config;
	FILE *file;

	snprintf(path, sizeof(path), "%s/provfs.conf", dir);
	file = fopen(path, "w");
	if (file == NULL || fputs(text, file) < 0 || fclose(file) != 0) {
		perror(path);
		exit(2);
	}
	config = config_load(path, error, sizeof(error));
	if (config == NULL) {
		fprintf(stderr, "config: %s\n", error);
		exit(2);
	}
	return config;
}

static void
test_rules(struct provfs_config *config)
{
	const struct path_rule *rule;

	/* The most literal characters win; a tie goes to the later line. */
	rule = label_path_rule(config, "raw/crm/a.csv");
	CHECK(rule && same(rule->level, "confidential"));
	rule = label_path_rule(config, "raw/crm/pii/a.csv");
	CHECK(rule && same(rule->level, "restricted"));
	rule = label_path_rule(config, "tie/x");
	CHECK(rule && same(rule->level, "restricted") && rule->line == 9);
	CHECK(label_path_rule(config, "elsewhere/a.csv") == NULL);
	CHECK(label_rank(config, "public") == 0);
	CHECK(label_rank(config, "restricted") == 3);
	CHECK(label_rank(config, "secret") == -1);
	CHECK(label_rank(config, NULL) == -1);
}

static void
expect_label(sqlite3 *db, struct provfs_config *config, int64_t file_id, const char *path,
	     const char *effective, const char *source)
{
	struct label_facts facts;
	char error[256];

	if (label_facts_load(db, config, file_id, path, &facts, error, sizeof(error)) < 0) {
		fprintf(stderr, "FAIL: %s: %s\n", path, error);
		failures++;
		return;
	}
	if (!same(facts.effective, effective) || !same(facts.source, source)) {
		fprintf(stderr, "FAIL: %s: got %s from %s, expected %s from %s\n", path,
			facts.effective ? facts.effective : "(none)", facts.source,
			effective ? effective : "(none)", source);
		failures++;
	}
	label_facts_release(&facts);
}

static void
test_effective(sqlite3 *db, struct provfs_config *config)
{
	exec_sql(db,
		 "INSERT INTO files (id, host, device, inode, generation, backing_dir, path, "
		 "first_seen_ns) VALUES (1,'h',1,1,0,'/b','raw/crm/a.csv',1), "
		 "(2,'h',1,2,0,'/b','pub/b.csv',1), (3,'h',1,3,0,'/b','pub/c.csv',1), "
		 "(4,'h',1,4,0,'/b','raw/crm/d.csv',1), (5,'h',1,5,0,'/b','pub/e.csv',1), "
		 "(6,'h',1,6,0,'/b','pub/f.csv',1);"
		 "INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash_state, "
		 "origin, recorded_ns, label, label_from_version_id) VALUES "
		 "(1,1,1,0,0,0,'hashed','initial',1,NULL,NULL),"
		 "(2,2,1,0,0,0,'hashed','written',2,'confidential',1),"
		 "(3,3,1,0,0,0,'hashed','written',3,'confidential',1),"
		 "(4,3,2,0,0,0,'hashed','written',4,NULL,NULL),"
		 "(5,4,1,0,0,0,'hashed','initial',5,NULL,NULL),"
		 "(6,5,1,0,0,0,'hashed','written',6,'confidential',1),"
		 "(7,6,1,0,0,0,'hashed','initial',7,NULL,NULL);"
		 /* d.csv: explicit restricted above its rule; then removed, then internal. */
		 "INSERT INTO label_changes (file_id, version_id, level, forced, reason, uid, "
		 "time_ns) VALUES (4,5,'restricted',0,NULL,0,10),"
		 /* e.csv: declassified to public for its current version. */
		 "(5,6,'public',1,'aggregates',0,11),"
		 /* f.csv: explicit restricted, then unset. */
		 "(6,7,'restricted',0,NULL,0,12),(6,7,NULL,0,NULL,0,13),"
		 /* c.csv: a declassification of an older version no longer applies. */
		 "(3,3,'public',1,'old',0,14);");
	expect_label(db, config, 1, "raw/crm/a.csv", "confidential", "rule");
	expect_label(db, config, 2, "pub/b.csv", "confidential", "propagated");
	/* c.csv's current version (v2) carries no propagated label. */
	expect_label(db, config, 3, "pub/c.csv", NULL, "default");
	expect_label(db, config, 4, "raw/crm/d.csv", "restricted", "explicit");
	expect_label(db, config, 5, "pub/e.csv", "public", "declassified");
	expect_label(db, config, 6, "pub/f.csv", NULL, "default");
	/*
	 * Only the last change counts, as in the daemon: k.csv was declassified,
	 * then set restricted, then unset (its propagated label is back); i.csv
	 * was declassified, then set restricted (explicit, no declassification).
	 */
	exec_sql(db, "INSERT INTO files (id, host, device, inode, generation, backing_dir, path, "
		     "first_seen_ns) VALUES (7,'h',1,7,0,'/b','pub/k.csv',1), "
		     "(8,'h',1,8,0,'/b','pub/i.csv',1);"
		     "INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, "
		     "hash_state, origin, recorded_ns, label, label_from_version_id) VALUES "
		     "(8,7,1,0,0,0,'hashed','written',8,'confidential',1),"
		     "(9,8,1,0,0,0,'hashed','written',9,'confidential',1);"
		     "INSERT INTO label_changes (file_id, version_id, level, forced, reason, uid, "
		     "time_ns) VALUES (7,8,'public',1,'r',0,15),(7,8,'restricted',0,NULL,0,16),"
		     "(7,8,NULL,0,NULL,0,17),(8,9,'public',1,'r',0,15),"
		     "(8,9,'restricted',0,NULL,0,16);");
	expect_label(db, config, 7, "pub/k.csv", "confidential", "propagated");
	expect_label(db, config, 8, "pub/i.csv", "restricted", "explicit");
	/* An explicit label equal to the rule: the rule is named. */
	exec_sql(db, "INSERT INTO label_changes (file_id, version_id, level, forced, uid, "
		     "time_ns) VALUES (1,1,'confidential',0,0,20)");
	expect_label(db, config, 1, "raw/crm/a.csv", "confidential", "rule");
}

static void
expect_version_label(sqlite3 *db, struct provfs_config *config, int64_t file_id,
		     int64_t version_id, const char *path, const char *effective,
		     const char *source)
{
	struct label_facts facts;
	char error[256];

	if (label_facts_load_version(db, config, file_id, version_id, path, &facts, error,
				     sizeof(error)) < 0) {
		fprintf(stderr, "FAIL: %s version %lld: %s\n", path, (long long)version_id, error);
		failures++;
		return;
	}
	if (!same(facts.effective, effective) || !same(facts.source, source)) {
		fprintf(stderr, "FAIL: %s version %lld: got %s from %s, expected %s from %s\n",
			path, (long long)version_id, facts.effective ? facts.effective : "(none)",
			facts.source, effective ? effective : "(none)", source);
		failures++;
	}
	label_facts_release(&facts);
}

/* Past versions show the label they carried when the next version replaced them. */
static void
test_versions(sqlite3 *db, struct provfs_config *config)
{
	exec_sql(db,
		 "INSERT INTO files (id, host, device, inode, generation, backing_dir, path, "
		 "first_seen_ns) VALUES (20,'h',1,20,0,'/b','pub/g.csv',1), "
		 "(21,'h',1,21,0,'/b','raw/crm/h.csv',1);"
		 "INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash_state, "
		 "origin, recorded_ns, label, label_from_version_id) VALUES "
		 "(20,20,1,0,0,0,'hashed','initial',100,NULL,NULL),"
		 "(21,20,2,0,0,0,'hashed','written',200,'confidential',1),"
		 "(22,20,3,0,0,0,'hashed','written',300,NULL,NULL),"
		 "(23,21,1,0,0,0,'hashed','initial',100,NULL,NULL),"
		 "(24,21,2,0,0,0,'hashed','written',200,NULL,NULL);"
		 /*
		  * g.csv: internal before v1 was written (it still held), restricted
		  * while v2 was current (not v1's: set after v1 was replaced),
		  * removed while v3 is current.
		  */
		 "INSERT INTO label_changes (file_id, version_id, level, forced, reason, uid, "
		 "time_ns) VALUES (20,NULL,'internal',0,NULL,0,50),"
		 "(20,21,'restricted',0,NULL,0,250),(20,22,NULL,0,NULL,0,350),"
		 /* h.csv: v1 declassified; v2 is under its rule again. */
		 "(21,23,'public',1,'sample',0,150);");
	expect_version_label(db, config, 20, 20, "pub/g.csv", "internal", "explicit");
	expect_version_label(db, config, 20, 21, "pub/g.csv", "restricted", "explicit");
	expect_version_label(db, config, 20, 22, "pub/g.csv", NULL, "default");
	expect_version_label(db, config, 20, LABEL_NONE, "pub/g.csv", NULL, "default");
	expect_version_label(db, config, 21, 23, "raw/crm/h.csv", "public", "declassified");
	expect_version_label(db, config, 21, 24, "raw/crm/h.csv", "confidential", "rule");
	/* A version of another file is not this file's. */
	expect_version_label(db, config, 21, 21, "raw/crm/h.csv", "confidential", "rule");
	/*
	 * Without v3, v2 is current: it shows the label of now (the explicit
	 * label was removed at 350), as the file itself does.
	 */
	exec_sql(db, "DELETE FROM versions WHERE id = 22");
	expect_version_label(db, config, 20, 21, "pub/g.csv", "confidential", "propagated");
	expect_version_label(db, config, 20, LABEL_NONE, "pub/g.csv", "confidential", "propagated");
}

static void
expect_clearance(sqlite3 *db, struct provfs_config *config, int64_t image,
		 const char *level_expected, const char *how_expected)
{
	char buffer[64], error[256];
	const char *level, *how;

	if (label_clearance_of(db, config, image, buffer, sizeof(buffer), &level, &how, error,
			       sizeof(error)) < 0) {
		fprintf(stderr, "FAIL: image %lld: %s\n", (long long)image, error);
		failures++;
		return;
	}
	if (!same(level, level_expected) || !same(how, how_expected)) {
		fprintf(stderr, "FAIL: image %lld: got %s (%s), expected %s (%s)\n",
			(long long)image, level, how, level_expected, how_expected);
		failures++;
	}
}

static void
test_clearance(sqlite3 *db, struct provfs_config *config)
{
	char sql[4096];

	/*
	 * 1: uid 4242, the pinned trainer: restricted needs the job too.
	 * 2: the same with its run named otherwise: confidential (exe alone).
	 * 3: an interpreter running the pinned script, having read its hash.
	 * 4: the same script path, a different hash read: default.
	 * 5: refused once with clearance "internal": the denial wins.
	 * 3 and 4 ran on this host (the interpreter's owner is looked at
	 * here, test_script_rules); python3 -I: no site directory of the user's.
	 */
	char host[256] = "";
	CHECK(gethostname(host, sizeof(host) - 1) == 0);
	snprintf(sql, sizeof(sql),
		 "INSERT INTO runs (id, uuid, job_name, named_by, host, root_pid, root_start_ns, "
		 "started_ns) VALUES (1,'u1','train','PROVFS_JOB','h',1,1,1),"
		 "(2,'u2','train','session','h',1,1,1);"
		 "INSERT INTO processes (id, host, pid, start_ns, exec_index, run_id, executable, "
		 "executable_hash, argv, uid, gid, seen_ns) VALUES "
		 "(1,'h',1,1,0,1,'/opt/train','%s',CAST('train' || char(0) AS BLOB),4242,4242,1),"
		 "(2,'h',2,1,0,2,'/opt/train','%s',CAST('train' || char(0) AS BLOB),4242,4242,1),"
		 "(3,'%s',3,1,0,NULL,'/usr/bin/python3','x',"
		 "CAST('python3' || char(0) || '-I' || char(0) || '/srv/score.py' || char(0) AS BLOB),"
		 "4243,4243,1),"
		 "(4,'%s',4,1,0,NULL,'/usr/bin/python3','x',"
		 "CAST('python3' || char(0) || '-I' || char(0) || '/srv/score.py' || char(0) AS BLOB),"
		 "4243,4243,1),"
		 "(5,'h',5,1,0,1,'/opt/train','%s',CAST('train' || char(0) AS BLOB),4242,4242,1);"
		 "INSERT INTO files (id, host, device, inode, generation, backing_dir, path, "
		 "first_seen_ns) VALUES (10,'h',1,10,0,'/b','srv/score.py',1);"
		 "INSERT INTO versions (id, file_id, number, size, mtime_ns, ctime_ns, hash, "
		 "hash_state, origin, recorded_ns) VALUES (10,10,1,0,0,0,'%s','hashed','initial',1),"
		 "(11,10,2,0,0,0,'%s','hashed','initial',2);"
		 "INSERT INTO mount_sessions (id, host, backing_dir, mount_point, provfs_version, "
		 "daemon_pid, started_ns, backing_exposed, recording, policy) VALUES "
		 "(1,'h','/b','/m','0',1,1,0,1,1);"
		 "INSERT INTO accesses (process_id, file_id, mount_session_id, path, open_flags, "
		 "read_version_id, opened_ns) VALUES (3,10,1,'srv/score.py',0,10,1),"
		 "(4,10,1,'srv/score.py',0,11,1);"
		 "INSERT INTO denials (process_id, file_id, mount_session_id, path, uid, label, "
		 "clearance, rule, time_ns) VALUES (5,10,1,'x',4242,'restricted','internal','r',1);",
		 "0123456789abcdef0123456789abcdef", "0123456789abcdef0123456789abcdef", host,
		 host, "0123456789abcdef0123456789abcdef", "fedcba9876543210fedcba9876543210",
		 "00000000000000000000000000000000");
	exec_sql(db, sql);
	expect_clearance(db, config, 1, "restricted", "grants");
	expect_clearance(db, config, 2, "confidential", "grants");
	expect_clearance(db, config, 3, "confidential", "grants");
	expect_clearance(db, config, 4, "internal", "default");
	expect_clearance(db, config, 5, "internal", "denial");
}

/*
 * A recorded process is judged by the daemon's script: rules
 * (policy_script_fails()), not by its argv[1]: each image below read the
 * pinned version of /srv/score.py (hash fedcba...), as image 3 above.
 */
static void
test_script_rules(sqlite3 *db, struct provfs_config *config)
{
	static const struct {
		const char *host; /* NULL: this host */
		const char *executable;
		const char *argv; /* '|' stands for NUL */
		const char *cwd;
		const char *expected;
	} cases[] = {
		/* 20: the way it must run. */
		{NULL, "/usr/bin/python3", "python3|-I|/srv/score.py|", "/", "confidential"},
		/* 21: relative to the cwd, in a cluster. */
		{NULL, "/usr/bin/python3", "python3|-Iu|./score.py|", "/srv", "confidential"},
		/* 22: by the shebang line "#!/usr/bin/python3 -I". */
		{NULL, "/usr/bin/python3", "/usr/bin/python3|-I|/srv/score.py|", "/", "confidential"},
		/* 23: the user's site-packages ran first. */
		{NULL, "/usr/bin/python3", "python3|/srv/score.py|", "/", "internal"},
		/* 24: not an interpreter, given the script first: argv[1] is no proof. */
		{NULL, "/usr/bin/cat", "cat|/srv/score.py|/srv/secret|", "/", "internal"},
		/* 25: a virtual environment's python. */
		{NULL, "/usr/bin/python3", "/home/u/venv/bin/python3|-I|/srv/score.py|", "/",
		 "internal"},
		/* 26: another host: the interpreter's owner cannot be looked at. */
		{"elsewhere.invalid", "/usr/bin/python3", "python3|-I|/srv/score.py|", "/",
		 "internal"},
		/* 27: an interpreter this host does not have. */
		{NULL, "/nonexistent/python3", "python3|-I|/srv/score.py|", "/", "internal"},
	};
	char host[256] = "";
	char sql[1024];

	CHECK(gethostname(host, sizeof(host) - 1) == 0);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char argv[128];
		int id = 20 + (int)i;
		snprintf(argv, sizeof(argv), "%s", cases[i].argv);
		for (char *c = argv; *c; c++)
			if (*c == '|')
				*c = '\0';
		snprintf(sql, sizeof(sql),
			 "INSERT INTO processes (id, host, pid, start_ns, exec_index, executable, "
			 "argv, cwd, uid, gid, seen_ns) VALUES (%d,'%s',%d,1,0,'%s',?,'%s',4243,4243,1);"
			 "INSERT INTO accesses (process_id, file_id, mount_session_id, path, "
			 "open_flags, read_version_id, opened_ns) VALUES (%d,10,1,'srv/score.py',0,10,1);",
			 id, cases[i].host ? cases[i].host : host, id, cases[i].executable,
			 cases[i].cwd, id);
		sqlite3_stmt *statement;
		const char *tail;
		CHECK(sqlite3_prepare_v2(db, sql, -1, &statement, &tail) == SQLITE_OK);
		sqlite3_bind_blob(statement, 1, argv, (int)strlen(cases[i].argv), SQLITE_TRANSIENT);
		CHECK(sqlite3_step(statement) == SQLITE_DONE);
		sqlite3_finalize(statement);
		exec_sql(db, tail);
		expect_clearance(db, config, id, cases[i].expected,
				 strcmp(cases[i].expected, "internal") == 0 ? "default" : "grants");
	}
}

int
main(void)
{
	char dir[] = "/tmp/provfs-unit-label.XXXXXX", path[512], error[512];
	struct provfs_config *config;
	struct store *store;

	/* provfs.conf must be owned by root: config_load() refuses it otherwise. */
	if (geteuid() != 0) {
		fprintf(stderr, "skipped: needs root (a provfs.conf owned by root)\n");
		return 77;
	}
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 2;
	}
	config = load(dir,
		      "[classification]\n"
		      "levels = public internal confidential restricted\n"
		      "default_clearance = internal\n"
		      "[paths]\n"
		      "raw/crm/** = confidential\n"
		      "raw/crm/pii/** = restricted\n"
		      "tie/* = public\n"
		      "tie/? = confidential\n"
		      "tie/** = restricted\n"
		      "[clearance]\n"
		      "restricted = exe:/opt/train@xxh3:0123456789abcdef0123456789abcdef job:train\n"
		      "confidential = exe:/opt/train@xxh3:0123456789abcdef0123456789abcdef\n"
		      "confidential = script:/srv/score.py@xxh3:fedcba9876543210fedcba9876543210 "
		      "uid:4243\n");
	snprintf(path, sizeof(path), "%s/provfs.db", dir);
	store = store_open(path, STORE_READ_WRITE, NULL, error, sizeof(error));
	if (store == NULL) {
		fprintf(stderr, "store: %s\n", error);
		return 2;
	}
	test_rules(config);
	test_effective(store_db(store), config);
	test_versions(store_db(store), config);
	test_clearance(store_db(store), config);
	test_script_rules(store_db(store), config);
	label_store_finish();
	store_close(store);
	config_free(config);
	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	if (system(path) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
