/*
 * Unit tests of the label policy's pure logic (policy/policy.c): which
 * path rule is the most specific, when a grant holds, what a refusal
 * explains, and the configuration errors the loader must refuse.
 */
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "policy.h"
#include "process_table.h"
#include "unit_check.h"

static char conf_path[] = "/tmp/provfs-test-policy.XXXXXX";

static struct provfs_config *
load(const char *text, char *error, size_t error_size)
{
	FILE *file = fopen(conf_path, "w");

	fputs(text, file);
	fclose(file);
	return config_load(conf_path, error, error_size);
}

static struct policy *
compile(const char *text)
{
	char error[600];
	struct provfs_config *config = load(text, error, sizeof(error));

	if (config == NULL) {
		fprintf(stderr, "FAIL: config refused: %s\n", error);
		exit(1);
	}
	struct policy *policy = policy_compile(config, "0123", error, sizeof(error));
	if (policy == NULL) {
		fprintf(stderr, "FAIL: policy refused: %s\n", error);
		exit(1);
	}
	config_free(config);
	return policy;
}

/* The configuration error for text, or "" when it loads. */
static const char *
config_error(const char *text)
{
	static char error[600];
	struct provfs_config *config = load(text, error, sizeof(error));

	if (config) {
		config_free(config);
		return "";
	}
	return error;
}

static void
expect_error(const char *text, int line, const char *needle)
{
	const char *error = config_error(text);
	char prefix[128];

	snprintf(prefix, sizeof(prefix), "%s:%d: ", conf_path, line);
	if (strncmp(error, prefix, strlen(prefix)) != 0 || strstr(error, needle) == NULL) {
		fprintf(stderr, "FAIL: expected '%s...%s', got '%s'\n", prefix, needle, error);
		failures++;
	}
}

/* ---- a test subject -------------------------------------------------------- */

struct fake {
	gid_t groups[4];
	int group_count;
	const char *executable_hash;
	const char *script_hash;
	bool script_hashing; /* the hash is still being computed */
	int hash_calls;
	bool foreign_code; /* maps code from a file not root's */
};

static bool
fake_foreign_code(void *context)
{
	return ((struct fake *)context)->foreign_code;
}

static bool
fake_in_group(void *context, gid_t gid)
{
	struct fake *fake = context;

	for (int i = 0; i < fake->group_count; i++)
		if (fake->groups[i] == gid)
			return true;
	return false;
}

static int
fake_executable_hash(void *context, char hash[33])
{
	struct fake *fake = context;

	fake->hash_calls++;
	if (fake->executable_hash == NULL)
		return -1;
	snprintf(hash, 33, "%s", fake->executable_hash);
	return 0;
}

static int
fake_file_hash(void *context, const char *path, char hash[33])
{
	struct fake *fake = context;

	fake->hash_calls++;
	if (fake->script_hashing)
		return -2;
	if (fake->script_hash == NULL)
		return -1;
	snprintf(hash, 33, "%s", fake->script_hash);
	return 0;
}

static struct policy_subject
subject_of(struct fake *fake, uid_t uid, const char *executable, const char *argv,
           size_t argv_length)
{
	return (struct policy_subject){
	    .uid = uid,
	    .context = fake,
	    .in_group = fake_in_group,
	    .executable_hash = fake_executable_hash,
	    .file_hash = fake_file_hash,
	    .foreign_code = fake_foreign_code,
	    .executable = executable,
	    .argv = argv,
	    .argv_length = argv_length,
	    .cwd = "/srv",
	};
}

static bool
allowed(const struct policy *policy, const struct policy_subject *subject, const char *level)
{
	struct policy_decision decision;

	policy_decide(policy, subject, policy_level_index(policy, level), &decision);
	return decision.allowed;
}

/*
 * Refused restricted with injection set (then put back), and the
 * explanation has reason.
 */
static bool
refused_because(const struct policy *policy, struct policy_subject *subject,
                unsigned int injection, const char *reason)
{
	struct policy_decision decision;
	unsigned int before = subject->injection;

	subject->injection |= injection;
	policy_decide(policy, subject, policy_level_index(policy, "restricted"), &decision);
	subject->injection = before;
	if (decision.allowed)
		return false;
	if (strstr(policy_explain(policy, &decision), reason) == NULL) {
		fprintf(stderr, "explanation without '%s': %s\n", reason, decision.explanation);
		return false;
	}
	return true;
}

#define PIN_A "0123456789abcdef0123456789abcdef"
#define PIN_B "fedcba9876543210fedcba9876543210"

static void
test_rules(void)
{
	struct policy *policy = compile("[classification]\n"
	                                "levels = public internal confidential restricted\n"
	                                "[paths]\n"
	                                "raw/** = internal\n"          /* line 4 */
	                                "raw/crm/** = confidential\n"  /* line 5 */
	                                "raw/crm/public/** = public\n" /* line 6 */
	                                "*.key = restricted\n"         /* line 7 */
	                                "a/*/x = internal\n"           /* line 8 */
	                                "a/x/* = confidential\n");     /* line 9 */
	struct policy_rule_info rule;

	CHECK(policy_path_level(policy, "raw/a.csv", NULL) == 1);
	CHECK(policy_path_level(policy, "raw/crm/x.csv", &rule) == 2 && rule.line == 5);
	/* More literal characters win, whatever the level. */
	CHECK(policy_path_level(policy, "raw/crm/public/p.csv", &rule) == 0 && rule.line == 6);
	CHECK(policy_path_level(policy, "raw/crm/secret.key", NULL) == 2); /* 8 > 4 literals */
	CHECK(policy_path_level(policy, "home/a.key", NULL) == 3);
	/* A tie goes to the later line. */
	CHECK(policy_path_level(policy, "a/x/x", &rule) == 2 && rule.line == 9);
	CHECK(policy_path_level(policy, "elsewhere/file", NULL) == -1);
	/* The literal prefix only filters: "**" matches nothing below it too. */
	CHECK(policy_path_level(policy, "raw/crm", &rule) == 2 && rule.line == 5);
	CHECK(policy_path_level(policy, "raw/crmx/a.csv", &rule) == 1 && rule.line == 4);
	CHECK(policy_path_level(policy, "rawx/a.csv", NULL) == -1);
	const char **roots;
	size_t count = policy_index_roots(policy, &roots);
	/* Labeled rules only (not "public"); "*.key" matches anywhere: the root. */
	bool saw_crm = false, saw_top = false;
	for (size_t i = 0; i < count; i++) {
		saw_crm |= strcmp(roots[i], "raw/crm") == 0;
		saw_top |= strcmp(roots[i], "") == 0;
		CHECK(strcmp(roots[i], "raw/crm/public") != 0);
	}
	CHECK(saw_crm && saw_top);
	policy_free(policy);
}

static void
test_grants(void)
{
	struct group *group = getgrnam("staff");
	char text[2048];

	CHECK(group != NULL);
	snprintf(text, sizeof(text),
	         "[classification]\n"
	         "levels = public internal confidential restricted\n"
	         "default_clearance = internal\n"
	         "[clearance]\n"
	         "confidential = group:staff\n"                            /* line 5 */
	         "restricted = exe:/opt/train@xxh3:%s uid:1000\n"          /* line 6 */
	         "restricted = script:/srv/score.py@xxh3:%s user:nobody\n" /* line 7 */
	         "confidential = job:nightly uid:1001\n",                  /* line 8 */
	         PIN_A, PIN_B);
	struct policy *policy = compile(text);
	uid_t nobody = getpwnam("nobody")->pw_uid;
	struct fake fake = {.executable_hash = PIN_A, .script_hash = PIN_B};
	struct policy_subject subject;
	struct policy_decision decision;

	/* At or below the default clearance: no grant is even looked at. */
	subject = subject_of(&fake, 0, "/bin/cat", NULL, 0);
	CHECK(allowed(policy, &subject, "internal"));
	CHECK(fake.hash_calls == 0);
	/* Root is a user like any other. */
	CHECK(!allowed(policy, &subject, "confidential"));
	policy_decide(policy, &subject, 2, &decision);
	CHECK(decision.clearance == 1);
	CHECK(strstr(policy_explain(policy, &decision), "line 5 confidential = group:staff") != NULL);
	CHECK(strstr(policy_explain(policy, &decision), "not a member") != NULL);
	CHECK(strstr(policy_explain(policy, &decision), "line 6 restricted") != NULL); /* higher grants too */
	/* group: by the caller's groups. */
	fake.groups[fake.group_count++] = group->gr_gid;
	CHECK(allowed(policy, &subject, "confidential"));
	CHECK(!allowed(policy, &subject, "restricted"));
	fake.group_count = 0;

	/* exe: pinned: path, hash, no tracing, no loader injection. */
	subject = subject_of(&fake, 1000, "/opt/train", NULL, 0);
	CHECK(allowed(policy, &subject, "restricted"));
	policy_decide(policy, &subject, 3, &decision);
	CHECK(decision.clearance == 3 && strstr(policy_explain(policy, &decision), "holds"));
	subject.executable = "/opt/train-copy"; /* a renamed copy */
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.executable = "/opt/train";
	fake.executable_hash = PIN_B; /* rewritten */
	CHECK(!allowed(policy, &subject, "restricted"));
	policy_decide(policy, &subject, 3, &decision);
	CHECK(strstr(policy_explain(policy, &decision), "hash differs") != NULL);
	fake.executable_hash = NULL; /* unknown: never a grant */
	CHECK(!allowed(policy, &subject, "restricted"));
	fake.executable_hash = PIN_A;
	subject.traced = true;
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.traced = false;
	subject.injection = PROCESS_INJECTION_LOADER;
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.injection = PROCESS_INJECTION_SCRIPT; /* no interpreter here: exe: holds */
	CHECK(allowed(policy, &subject, "restricted"));
	/* argv and environ held to what they were at exec (process_table.h). */
	CHECK(refused_because(policy, &subject, PROCESS_ARGV_CHANGED, "(argv changed after exec)"));
	CHECK(refused_because(policy, &subject, PROCESS_ENVIRONMENT_CHANGED,
	                      "(environment changed after exec)"));
	CHECK(refused_because(policy, &subject, PROCESS_EXEC_UNSEEN,
	                      "(process not seen at exec (started before provfs, or its exec event "
	                      "was lost): start it again)"));
	/* argv and environ never read: the process kept its memory (proc_reader.h). */
	CHECK(refused_because(policy, &subject, PROCESS_MEMORY_UNREAD,
	                      "(argv and environment unknown (the process kept its memory from "
	                      "provfs))"));
	/* Another mount or user namespace: a bind mount there could put any
	 * file at the granted path (unshare -rm). */
	CHECK(refused_because(policy, &subject, PROCESS_FOREIGN_NAMESPACE,
	                      "(runs in another mount or user namespace"));
	fake.foreign_code = true; /* an LD_PRELOAD object still mapped */
	CHECK(refused_because(policy, &subject, 0, "(code mapped from a file not root's"));
	fake.foreign_code = false;
	subject.uid = 1001; /* every condition must hold */
	CHECK(!allowed(policy, &subject, "restricted"));

	/*
	 * script: a root-owned interpreter runs the script, nothing of the
	 * user's before it, hash matches (test_script_runs: the rest).
	 */
	static const char run_script[] = "python3\0-I\0/srv/score.py\0--fast";
	static const char relative[] = "python3\0-I\0./score.py";
	static const char option_first[] = "python3\0-i\0/srv/score.py";
	static const char other[] = "python3\0-I\0/srv/other.py";
	subject = subject_of(&fake, nobody, "/usr/bin/python3.11", run_script, sizeof(run_script));
	CHECK(allowed(policy, &subject, "restricted"));
	subject.argv = relative;
	subject.argv_length = sizeof(relative);
	CHECK(allowed(policy, &subject, "restricted"));
	subject.argv = option_first;
	subject.argv_length = sizeof(option_first);
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.argv = other;
	subject.argv_length = sizeof(other);
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.argv = run_script;
	subject.argv_length = sizeof(run_script);
	subject.injection = PROCESS_INJECTION_SCRIPT; /* PYTHONPATH and the like */
	CHECK(!allowed(policy, &subject, "restricted"));
	subject.injection = 0;
	CHECK(refused_because(policy, &subject, PROCESS_ARGV_CHANGED, "(argv changed after exec)"));
	CHECK(refused_because(policy, &subject, PROCESS_ENVIRONMENT_CHANGED,
	                      "(environment changed after exec)"));
	CHECK(refused_because(policy, &subject, PROCESS_EXEC_UNSEEN, "(process not seen at exec"));
	CHECK(refused_because(policy, &subject, PROCESS_MEMORY_UNREAD, "(argv and environment unknown"));
	CHECK(refused_because(policy, &subject, PROCESS_FOREIGN_NAMESPACE,
	                      "(runs in another mount or user namespace"));
	fake.foreign_code = true;
	CHECK(refused_because(policy, &subject, 0, "(code mapped from a file not root's"));
	fake.foreign_code = false;
	CHECK(allowed(policy, &subject, "restricted"));
	fake.script_hash = PIN_A; /* the script was changed */
	CHECK(!allowed(policy, &subject, "restricted"));
	fake.script_hash = PIN_B;
	/* Its hash not known yet: refused, and the explanation says so. */
	fake.script_hashing = true;
	struct policy_decision pending;
	policy_decide(policy, &subject, policy_level_index(policy, "restricted"), &pending);
	CHECK(!pending.allowed && strstr(policy_explain(policy, &pending), "script hash still being computed"));
	fake.script_hashing = false;
	CHECK(allowed(policy, &subject, "restricted"));

	/* job: only with the identity on its line. */
	subject = subject_of(&fake, 1002, "/bin/sh", NULL, 0);
	subject.job = "nightly"; /* faked PROVFS_JOB */
	CHECK(!allowed(policy, &subject, "confidential"));
	subject.uid = 1001;
	CHECK(allowed(policy, &subject, "confidential"));
	subject.job = NULL;
	CHECK(!allowed(policy, &subject, "confidential"));
	policy_free(policy);
}

/*
 * Why a script: grant for /srv/score.py did not hold for executable with
 * argv (cwd /srv) and the trust facts injection: NULL when it held.
 */
static const char *
script_refusal(const struct policy *policy, const char *executable, const char *argv,
               size_t argv_length, unsigned int injection)
{
	static struct policy_decision decision;
	static struct fake fake = {.script_hash = PIN_B};
	struct policy_subject subject =
	    subject_of(&fake, getpwnam("nobody")->pw_uid, executable, argv, argv_length);

	subject.injection = injection;
	policy_decide(policy, &subject, policy_level_index(policy, "restricted"), &decision);
	if (decision.allowed)
		return NULL;
	const char *explanation = policy_explain(policy, &decision);
	const char *reason = strstr(explanation, "@xxh3:" PIN_B " (");
	return reason ? reason + strlen("@xxh3:" PIN_B " (") : explanation;
}

#define REFUSAL(executable, argv, injection) \
	script_refusal(policy, executable, argv, sizeof(argv), injection)
/* The refusal starts with reason (the explanation goes on with ")"). */
#define CHECK_REFUSED(executable, argv, injection, reason)                                        \
	do {                                                                                      \
		const char *got_ = REFUSAL(executable, argv, injection);                          \
		CHECK(got_ != NULL && strncmp(got_, reason, strlen(reason)) == 0 &&               \
		      got_[strlen(reason)] == ')');                                               \
		if (got_ == NULL || strncmp(got_, reason, strlen(reason)) != 0)                   \
			fprintf(stderr, "  %s %s: got '%s'\n", executable, #argv,                  \
			        got_ ? got_ : "(allowed)");                                         \
	} while (0)
#define CHECK_GRANTED(executable, argv, injection)                                                \
	do {                                                                                      \
		const char *got_ = REFUSAL(executable, argv, injection);                          \
		CHECK(got_ == NULL);                                                              \
		if (got_)                                                                         \
			fprintf(stderr, "  %s %s: refused: %s\n", executable, #argv, got_);        \
	} while (0)

static const char python_user_site[] =
    "python without -I or -s runs the user's site-packages first: run python3 -I SCRIPT";

/* script: holds for a trusted interpreter running the script, and for nothing else. */
static void
test_script_runs(void)
{
	struct policy *policy = compile("[classification]\n"
	                                "levels = public internal confidential restricted\n"
	                                "[clearance]\n"
	                                "restricted = script:/srv/score.py@xxh3:" PIN_B
	                                " user:nobody\n");
	const char *python = "/usr/bin/python3.11";
	const unsigned int user_owned = PROCESS_EXECUTABLE_NOT_ROOT;

	/* Any other program given the script as argv[1] reads what it is told to next. */
	static const char vim[] = "vim\0/srv/score.py";
	static const char mine[] = "./mine\0score.py";
	static const char head[] = "head\0-c0\0/srv/score.py\0/srv/secret";
	static const char less[] = "less\0/srv/other.txt";
	CHECK_REFUSED("/usr/bin/vim.basic", vim, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/home/u/mine", mine, user_owned, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/head", head, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/less", less, 0, "not running this script");
	/* Names: a version suffix is allowed, nothing else. */
	static const char plain[] = "x\0/srv/score.py";
	CHECK_REFUSED("/usr/bin/shred", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/pythonista", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/python3.11 (deleted)", plain, 0,
	              "executable is not a script interpreter");
	/* Python's free-threaded build: a 't' after the version. */
	static const char isolated_t[] = "python3.13t\0-I\0/srv/score.py";
	CHECK_GRANTED("/usr/bin/python3.13t", isolated_t, 0);
	CHECK_GRANTED("/usr/bin/python3t", isolated_t, 0);
	CHECK_REFUSED("/usr/bin/python3.13tt", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/python3.t", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/pythont", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/perl5t", plain, 0, "executable is not a script interpreter");
	CHECK_REFUSED("/usr/bin/python3.13t", plain, 0, python_user_site);
	CHECK_GRANTED("/usr/bin/perl5.36.0", plain, 0);
	CHECK_GRANTED("/usr/bin/lua5.4", plain, 0);
	CHECK_GRANTED("/usr/bin/dash", plain, 0);
	CHECK_GRANTED("/usr/bin/bash", plain, 0);

	/* The interpreter itself: owned by root, written by nobody else. */
	static const char isolated[] = "python3\0-I\0/srv/score.py";
	CHECK_GRANTED(python, isolated, 0);
	CHECK_REFUSED("/home/u/python3", isolated, user_owned, "interpreter not owned by root");
	CHECK_REFUSED(python, isolated, PROCESS_EXECUTABLE_SHARED_WRITABLE,
	              "interpreter writable by group or others");
	CHECK_REFUSED(python, isolated,
	              PROCESS_EXECUTABLE_UNKNOWN | PROCESS_EXECUTABLE_NOT_ROOT |
	                  PROCESS_EXECUTABLE_SHARED_WRITABLE,
	              "interpreter's owner and mode unknown");

	/* Python: the user's site directory off (-I, -s, -S), in any cluster. */
	static const char bare[] = "python3\0/srv/score.py\0--fast";
	static const char unbuffered[] = "python3\0-u\0score.py";
	static const char no_site[] = "python3\0-s\0/srv/score.py";
	static const char no_site_module[] = "python3\0-S\0/srv/score.py";
	static const char cluster_is[] = "python3\0-Is\0/srv/score.py";
	static const char cluster_sb[] = "python3\0-sB\0/srv/score.py";
	static const char cluster_ib[] = "python3\0-IB\0./score.py";
	static const char cluster_ui[] = "python3\0-u\0-OO\0-Iu\0/srv/score.py";
	static const char dashes[] = "python3\0-I\0--\0/srv/score.py";
	CHECK_REFUSED(python, bare, 0, python_user_site);
	CHECK_REFUSED(python, unbuffered, 0, python_user_site);
	CHECK_GRANTED(python, no_site, 0);
	CHECK_GRANTED(python, no_site_module, 0);
	CHECK_GRANTED(python, cluster_is, 0);
	CHECK_GRANTED(python, cluster_sb, 0);
	CHECK_GRANTED(python, cluster_ib, 0);
	CHECK_GRANTED(python, cluster_ui, 0);
	CHECK_GRANTED(python, dashes, 0);
	/* PYTHONNOUSERSITE counts, but not under -E, which ignores it. */
	static const char ignore_environment[] = "python3\0-E\0/srv/score.py";
	CHECK_GRANTED(python, bare, PROCESS_PYTHON_NO_USER_SITE);
	CHECK_REFUSED(python, ignore_environment, PROCESS_PYTHON_NO_USER_SITE, python_user_site);
	/* The user-site reason only once the rest holds: this script, a trusted interpreter. */
	static const char bare_other[] = "python3\0/srv/other.py";
	CHECK_REFUSED(python, bare_other, 0, "not running this script");
	CHECK_REFUSED("/home/u/python3", bare, user_owned, "interpreter not owned by root");

	/* Options with an argument consume it, stuck on or in the next word. */
	static const char w_ignore[] = "python3\0-W\0ignore\0-I\0/srv/score.py";
	static const char w_stuck[] = "python3\0-Wignore\0-s\0/srv/score.py";
	static const char w_category[] = "python3\0-I\0-W\0error::DeprecationWarning\0score.py";
	static const char w_module[] = "python3\0-I\0-W\0ignore::evil.Warn\0/srv/score.py";
	static const char w_eats_script[] = "python3\0-I\0-W\0/srv/score.py";
	static const char x_dev[] = "python3\0-X\0dev\0-I\0/srv/score.py";
	static const char x_stuck[] = "python3\0-IXutf8=1\0/srv/score.py";
	static const char x_eats_option[] = "python3\0-X\0-I\0/srv/score.py";
	static const char x_pycache[] = "python3\0-I\0-X\0pycache_prefix=/tmp/c\0/srv/score.py";
	static const char x_unknown[] = "python3\0-I\0-Xpresite=evil\0/srv/score.py";
	static const char check_pycs[] =
	    "python3\0--check-hash-based-pycs\0never\0-I\0/srv/score.py";
	CHECK_GRANTED(python, w_ignore, 0);
	CHECK_GRANTED(python, w_stuck, 0);
	CHECK_GRANTED(python, w_category, 0);
	CHECK_REFUSED(python, w_module, 0,
	              "python -W with a module's warning category imports that module first");
	CHECK_REFUSED(python, w_eats_script, 0, "not running this script");
	CHECK_GRANTED(python, x_dev, 0);
	CHECK_GRANTED(python, x_stuck, 0);
	CHECK_REFUSED(python, x_eats_option, 0, "python -X option not known to be safe");
	CHECK_REFUSED(python, x_pycache, 0, "python -X option not known to be safe");
	CHECK_REFUSED(python, x_unknown, 0, "python -X option not known to be safe");
	CHECK_GRANTED(python, check_pycs, 0);

	/* Not this script, or more than it. */
	static const char command[] = "python3\0-I\0-c\0import x\0/srv/score.py";
	static const char command_cluster[] = "python3\0-Ic\0/srv/score.py";
	static const char module[] = "python3\0-I\0-m\0score\0/srv/score.py";
	static const char interactive[] = "python3\0-Ii\0/srv/score.py";
	static const char stdin_script[] = "python3\0-I\0-\0/srv/score.py";
	static const char help[] = "python3\0--help\0/srv/score.py";
	static const char missing[] = "python3\0-I";
	CHECK_REFUSED(python, command, 0, "not running this script");
	CHECK_REFUSED(python, command_cluster, 0, "not running this script");
	CHECK_REFUSED(python, module, 0, "not running this script");
	CHECK_REFUSED(python, interactive, 0, "python -i opens a prompt after the script");
	CHECK_REFUSED(python, stdin_script, 0, "not running this script");
	CHECK_REFUSED(python, help, 0, "not running this script");
	CHECK_REFUSED(python, missing, 0, "not running this script");

	/*
	 * Shebangs: "#!/usr/bin/python3 -I" makes the kernel run
	 * [/usr/bin/python3, -I, ./score.py]; "#!/usr/bin/env python3" gives
	 * Python no option.
	 */
	static const char shebang[] = "/usr/bin/python3\0-I\0./score.py\0--fast";
	static const char env_shebang[] = "python3\0./score.py";
	static const char two_options[] = "/usr/bin/python3\0-I -u\0./score.py";
	CHECK_GRANTED(python, shebang, 0);
	CHECK_REFUSED(python, env_shebang, 0, python_user_site);
	CHECK_REFUSED(python, two_options, 0, "not running this script"); /* Python refuses too */

	/*
	 * A virtual environment: Python finds pyvenv.cfg beside the path it
	 * was started by (argv[0], else PATH), and runs the .pth files of
	 * the venv's site-packages, -I or not.  Where argv[0] leads is looked
	 * at by the process table (test_process_table.c); the rules take its
	 * word, PROCESS_ARGV0_UNTRUSTED, whatever the name.
	 */
	static const char venv[] = "/home/u/venv/bin/python3\0-I\0/srv/score.py";
	static const char merged_usr[] = "/bin/python3\0-I\0/srv/score.py";
	static const char venv_reason[] =
	    "python named outside its own directory may start a virtual environment's "
	    "site-packages first: run /usr/bin/python3 -I SCRIPT";
	CHECK_REFUSED(python, venv, PROCESS_ARGV0_UNTRUSTED, venv_reason);
	CHECK_REFUSED(python, isolated, PROCESS_ARGV0_UNTRUSTED, venv_reason); /* bare, PATH=~/venv/bin:... */
	CHECK_GRANTED(python, merged_usr, 0); /* /bin -> usr/bin: the same directory */
	/* The other interpreters do not look beside argv[0]. */
	static const char perl_elsewhere[] = "/home/u/bin/perl\0/srv/score.py";
	CHECK_GRANTED("/usr/bin/perl", perl_elsewhere, PROCESS_ARGV0_UNTRUSTED);
	/*
	 * By names alone, for provfs-query, which has no directories to look
	 * at: argv[0]'s directory is the executable's, as a string.
	 */
	CHECK(policy_python_argv0_in_place(python, "/usr/bin/python3", "/"));
	CHECK(policy_python_argv0_in_place(python, "/usr/bin/python3", NULL));
	CHECK(policy_python_argv0_in_place("/srv/bin/python3.11", "bin/python3", "/srv"));
	CHECK(policy_python_argv0_in_place("/srv/bin/python3.11", "./bin/python3", "/srv"));
	CHECK(policy_python_argv0_in_place("/srv/python3.11", "./python3", "/srv"));
	CHECK(policy_python_argv0_in_place("/python3.11", "python3/../python3", "/") == false);
	CHECK(!policy_python_argv0_in_place(python, "/home/u/venv/bin/python3", "/"));
	CHECK(!policy_python_argv0_in_place(python, "./python3", "/srv"));
	CHECK(!policy_python_argv0_in_place(python, "../usr/bin/python3", "/srv")); /* ".." */
	CHECK(!policy_python_argv0_in_place(python, "bin/python3", NULL));
	CHECK(!policy_python_argv0_in_place(python, "/usr/bin2/python3", "/"));
	CHECK(!policy_python_argv0_in_place(python, "/usr/python3", "/"));
	CHECK(!policy_python_argv0_in_place(python, "/bin/python3", "/")); /* names only */
	CHECK(!policy_python_argv0_in_place(python, "python3", "/"));      /* PATH unknown */
	CHECK(!policy_python_argv0_in_place(NULL, "/usr/bin/python3", "/"));
	static const char no_argv[] = "";
	CHECK_REFUSED(python, no_argv, 0, "not running this script");

	/* The other interpreters: the script is argv[1], as before. */
	static const char perl_debug[] = "perl\0-d\0/srv/score.py";
	static const char perl_after[] = "perl\0/srv/score.py\0-d";
	CHECK_REFUSED("/usr/bin/perl", perl_debug, 0, "not running this script");
	CHECK_GRANTED("/usr/bin/perl", perl_after, 0);
	CHECK_REFUSED("/usr/bin/perl", perl_after, user_owned, "interpreter not owned by root");
	/* zsh reads the user's ~/.zshenv unless -f. */
	static const char zsh[] = "zsh\0/srv/score.py";
	static const char zsh_f[] = "zsh\0-f\0/srv/score.py";
	static const char zsh_x[] = "zsh\0-x\0/srv/score.py";
	CHECK_REFUSED("/usr/bin/zsh", zsh, 0,
	              "zsh without -f runs the user's ~/.zshenv first: run zsh -f SCRIPT");
	CHECK_GRANTED("/usr/bin/zsh", zsh_f, 0);
	CHECK_REFUSED("/usr/bin/zsh", zsh_x, 0, "not running this script");
	/* Traced or injected: refused whatever the interpreter (test_grants). */
	CHECK_REFUSED(python, isolated, PROCESS_INJECTION_SCRIPT, "environment can inject code");
	policy_free(policy);
}

/* A decision records the grant lines it considered; the text comes only when asked. */
static void
test_explanation(void)
{
	struct fake fake = {0};
	struct policy_subject subject = subject_of(&fake, 0, "/bin/cat", NULL, 0);
	struct policy_decision decision;
	struct policy *policy = compile("[classification]\n"
	                                "levels = public internal confidential restricted\n"
	                                "default_clearance = internal\n");

	policy_decide(policy, &subject, 3, &decision);
	CHECK(!decision.allowed && decision.step_count == 0 && decision.explanation[0] == '\0');
	CHECK(strcmp(policy_explain(policy, &decision),
	             "no grant reaches restricted; default_clearance internal") == 0);
	policy_decide(policy, &subject, 1, &decision); /* within the default: nothing to say */
	CHECK(decision.allowed && strcmp(policy_explain(policy, &decision), "") == 0);
	policy_free(policy);

	policy = compile("[classification]\n"
	                 "levels = public internal confidential restricted\n"
	                 "default_clearance = internal\n"
	                 "[clearance]\n"
	                 "restricted = uid:4242\n"           /* line 5 */
	                 "confidential = user:nobody uid:0\n" /* line 6 */
	                 "confidential = uid:0\n");          /* line 7 */
	policy_decide(policy, &subject, 2, &decision);
	CHECK(decision.allowed && decision.clearance == 2 && decision.step_count == 3);
	CHECK(decision.explanation[0] == '\0'); /* an allowed decision formats nothing */
	CHECK(strcmp(policy_explain(policy, &decision),
	             "line 5 restricted = uid:4242: uid:4242 (other user); "
	             "line 6 confidential = user:nobody uid:0: user:nobody (other user); "
	             "line 7 confidential = uid:0: holds") == 0);
	/* Asked twice, the same text (not appended again). */
	size_t length = strlen(policy_explain(policy, &decision));
	CHECK(strlen(policy_explain(policy, &decision)) == length);
	policy_free(policy);

	/* More grant lines than a decision keeps: the rest are counted. */
	char text[16384];
	size_t used = (size_t)snprintf(text, sizeof(text),
	                               "[classification]\nlevels = public internal confidential "
	                               "restricted\ndefault_clearance = internal\n[clearance]\n");
	for (int i = 0; i < POLICY_DECISION_STEPS + 6; i++)
		used += (size_t)snprintf(text + used, sizeof(text) - used, "restricted = uid:%d\n",
		                         5000 + i);
	policy = compile(text);
	policy_decide(policy, &subject, 3, &decision);
	CHECK(!decision.allowed && decision.step_count == POLICY_DECISION_STEPS &&
	      decision.steps_left_out == 6);
	const char *explanation = policy_explain(policy, &decision);
	CHECK(strncmp(explanation, "line 5 restricted = uid:5000: uid:5000 (other user); ", 53) == 0);
	CHECK(strstr(explanation, "; and 6 more grant lines") != NULL ||
	      strlen(explanation) == sizeof(decision.explanation) - 1);
	policy_free(policy);
}

static void
test_bad_input(void)
{
	expect_error("[classification]\nlevels = low high\ndefault_clearance = low\n[paths]\nx/** "
	             "= secret\n",
	             5, "unknown level 'secret'");
	expect_error("[clearance]\nrestricted = job:nightly\n", 2, "job:");
	expect_error("[clearance]\nrestricted = user:no-such-user-provfs\n", 2, "unknown user");
	expect_error("[clearance]\nrestricted = group:no-such-group-provfs\n", 2, "unknown group");
	expect_error("[clearance]\nrestricted = exe:relative/path\n", 2, "absolute path");
	expect_error("[clearance]\nrestricted = exe:/bin/sh@xxh3:XYZ\n", 2, "xxh3");
	expect_error("[clearance]\nrestricted = colour:blue\n", 2, "unknown condition");
	expect_error("[clearance]\ntopsecret = uid:0\n", 2, "unknown level 'topsecret'");
	expect_error("[classification]\nadmin_group = no-such-group-provfs\n", 2, "admin_group");
	CHECK(strcmp(config_error("[clearance]\nrestricted = job:nightly uid:5\n"), "") == 0);
}

int
main(void)
{
	int fd = mkstemp(conf_path);

	if (fd < 0 || fchmod(fd, 0644) < 0) {
		perror("mkstemp");
		return 1;
	}
	close(fd);
	test_rules();
	test_grants();
	test_script_runs();
	test_explanation();
	test_bad_input();
	unlink(conf_path);
	if (failures)
		fprintf(stderr, "%d failures\n", failures);
	return failures ? 1 : 0;
}
