/*
 * policy.h - the classification policy: who may read a file of which label.
 *
 * provfs.conf's [classification], [paths] and [clearance] sections are
 * compiled once (at mount, and again on SIGHUP) into an immutable struct
 * policy: the ordered levels, the path rules and the grants as lists of
 * typed conditions with users and groups already resolved to ids.  Nothing
 * in a compiled policy changes; a reload builds a new one and swaps the
 * pointer, so a decision never sees half a policy.
 *
 * THE DECISION
 *
 * policy_decide() answers one question: may this process image read (or
 * execute) a file whose effective label is `label`?  A process's clearance
 * is the highest level among the grants all of whose conditions hold for
 * it, and default_clearance when none does.  A read is allowed when
 * label <= clearance.  Only grants whose level is at least `label` can
 * change the answer, so only those are evaluated (a file at or below the
 * default clearance costs one comparison), highest level first, stopping
 * at the first that holds.  Every grant line considered is written into
 * the explanation, with why it did not hold, for the denial record.
 *
 * INPUTS (struct policy_subject)
 *
 *   uid, and group membership through a callback: FUSE passes only the
 *   caller's uid, gid and thread id; the supplementary groups come from
 *   the caller cache (fs/caller.c: /proc/TID/status read at most once per
 *   thread per second), so a group: grant follows `usermod -G` within a
 *   second.
 *   the image (process_table.h): executable path, argv, cwd, job, and the
 *   trust facts environment_injection and traced.  An exe: or script:
 *   condition never holds for a traced image; exe: never holds with
 *   LD_PRELOAD-style injection, script: never with either kind.  Neither
 *   holds when argv or environ now differ from what they were at exec, or
 *   the exec was not seen (PROCESS_ARGV_CHANGED, _ENVIRONMENT_CHANGED,
 *   _EXEC_UNSEEN: process_table.h, FACTS FROM EXEC TIME), nor for a process
 *   that maps code from a file not root's alone (foreign_code, below),
 *   nor for one in another mount or user namespace than the daemon's
 *   (PROCESS_FOREIGN_NAMESPACE: a container, or unshare -rm with a bind
 *   mount over the granted path), whose names are not the daemon's.
 *   A script: condition holds only for a known interpreter (by the base
 *   name of the executed file, version suffix allowed) whose inode is
 *   owned by root and writable by no group or other user (the
 *   PROCESS_EXECUTABLE_* facts, from the statx of the pinned inode), run
 *   with the script as its script argument and nothing of the user's
 *   before it: Python needs -I, -s or -S (or PYTHONNOUSERSITE without -E)
 *   and an argv[0] that leads it through trusted system directories only
 *   (PROCESS_ARGV0_UNTRUSTED clear), zsh -f; every option before the
 *   script must be one known to be safe.  policy_script_fails() below
 *   decides it; script.c lists the interpreters and the options.
 *   executable and script hashes through callbacks, so that a pinned
 *   condition costs a hash lookup only when it is evaluated.
 *
 * Root is a user like any other: it gets the default clearance unless a
 * grant names it.  job: conditions come from the caller's environment and
 * are refused by the configuration loader unless combined with an identity
 * condition on the same line.
 *
 * COST
 *
 * policy_path_level() walks the rules (fnmatch per component) whose
 * literal leading directories the path has; the daemon caches its answer
 * per inode, so a warm open matches nothing.  policy_decide() walks at
 * most the grants above the label; every condition is an integer or string
 * comparison, but for pinned hashes, which the caller caches (process
 * table; the script hash cache, filled off the request thread).  The
 * daemon measures the whole decision at open (policy/labels.c).
 */
#ifndef PROVFS_POLICY_H
#define PROVFS_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"

#define POLICY_MAX_LEVELS 64

struct policy;

/*
 * Compile config.  revision is the policy's identity in audit records (the
 * hash of the provfs.conf text in force); it is copied.  Unknown users and
 * groups were refused by config_load(); one that vanished since is refused
 * here.  NULL with a one-line message in error on failure.
 */
struct policy *policy_compile(const struct provfs_config *config, const char *revision, char *error,
                              size_t error_size);
void policy_free(struct policy *policy);

/* The XXH3-128 of the file at path ("" for built-in defaults); 0 or -1. */
int policy_revision_of_file(const char *path, char revision[33]);

const char *policy_revision(const struct policy *policy);
int policy_level_count(const struct policy *policy);
const char *policy_level_name(const struct policy *policy, int level);
/* Index of a level name, or -1 when the policy has no such level. */
int policy_level_index(const struct policy *policy, const char *name);
int policy_default_clearance(const struct policy *policy);
bool policy_no_write_down(const struct policy *policy);
bool policy_propagates_by_run(const struct policy *policy);
/* The admin group's id; false when no admin_group is configured. */
bool policy_admin_group(const struct policy *policy, gid_t *gid);
bool policy_has_path_rules(const struct policy *policy);
/* Does a grant name a program (exe: or script:)?  Only those need facts of
 * a process's exec (process_table_want_exec_facts). */
bool policy_has_program_grants(const struct policy *policy);

/* A path rule as the configuration wrote it. */
struct policy_rule_info {
	const char *glob;
	int level;
	int line;
};

/*
 * The level the most specific path rule gives path (relative to the mount
 * root), or -1 when no rule matches.  "Most specific" = most literal
 * characters; ties go to the later line.  rule (may be NULL) gets the rule.
 */
int policy_path_level(const struct policy *policy, const char *path, struct policy_rule_info *rule);

/*
 * Directories (relative to the mount root, "" for the root) under which a
 * labeled rule may match: the literal leading components of every rule
 * whose level is above the lowest.  The mount-time index walks these.
 */
size_t policy_index_roots(const struct policy *policy, const char ***roots);

struct policy_subject {
	uid_t uid;
	void *context; /* for the callbacks */
	bool (*in_group)(void *context, gid_t gid);
	/* The executed image's XXH3-128, or -1 when unknown (may wait briefly). */
	int (*executable_hash)(void *context, char hash[33]);
	/*
	 * The XXH3-128 of the file at an absolute path: 0, -1 when unknown, -2
	 * while it is still being computed (may wait briefly).
	 */
	int (*file_hash)(void *context, const char *path, char hash[33]);
	/*
	 * Does the process map code from a file not root's alone (an
	 * LD_PRELOAD object: process_table_foreign_code())?  Asked for an
	 * exe: or script: condition that holds otherwise.  NULL: not asked
	 * (no live process).
	 */
	bool (*foreign_code)(void *context);
	const char *executable; /* may be NULL */
	const char *argv;       /* NUL-separated words; may be NULL */
	size_t argv_length;
	const char *cwd; /* for a relative script argument; may be NULL */
	const char *job; /* PROVFS_JOB, or NULL */
	bool traced;
	unsigned int injection; /* the PROCESS_* trust facts (process_table.h): 0: a
				 * root-owned executable started by its own name,
				 * nothing injected */
};

/*
 * The script: rules alone, shared by the daemon's decision and provfs-query
 * exposure (which judges recorded processes by them): does a process that
 * executes executable (the kernel's path of the executed file; NULL:
 * unknown) with argv (NUL-terminated words, argv_length bytes in all; a
 * word cut short at the end is ignored) in cwd (for a relative argument;
 * NULL: no relative argument matches) run the script at path (absolute) as
 * a trusted interpreter would, given the trust facts facts
 * (PROCESS_PYTHON_NO_USER_SITE, PROCESS_ARGV0_UNTRUSTED and
 * PROCESS_EXECUTABLE_* of process_table.h)?  NULL when it does, else why
 * not: static text such as "executable is not a script interpreter".
 * Tracing, the PROCESS_INJECTION_* facts and the script's hash are not
 * looked at here; policy_decide() checks them after.  No I/O.
 */
const char *policy_script_fails(const char *executable, const char *argv, size_t argv_length,
                                const char *cwd, unsigned int facts, const char *path);

/*
 * Where argv[0] leads Python judged by names alone, for a caller that has
 * the names but not the directories (provfs-query, from the store): true
 * when argv0 has a slash and its directory (absolute, or relative to cwd
 * with leading "./" dropped; ".." is not resolved) is, as a string, the
 * directory of executable.  A bare name, or another directory (/bin for
 * /usr/bin included), is false.  The daemon does not use it: the process
 * table compares directories by device and inode and checks their owners
 * (PROCESS_ARGV0_UNTRUSTED).
 */
bool policy_python_argv0_in_place(const char *executable, const char *argv0, const char *cwd);

/* One grant line a decision considered: which condition failed, and why. */
struct policy_decision_step {
	unsigned int grant;  /* index into the policy's grants */
	int condition;       /* the condition that failed; -1: the grant held */
	const char *reason;  /* static text, e.g. "not a member"; NULL when held */
};

#define POLICY_DECISION_STEPS 64

struct policy_decision {
	bool allowed;
	int clearance; /* the highest level found to hold (at least the default) */
	int label;     /* the level decided for */
	/*
	 * The grant lines considered, in order.  A decision records them and
	 * formats nothing: most decisions allow, and only a refusal is ever
	 * explained (policy_explain()).  Beyond POLICY_DECISION_STEPS lines
	 * the rest are counted in steps_left_out.
	 */
	size_t step_count;
	size_t steps_left_out;
	struct policy_decision_step steps[POLICY_DECISION_STEPS];
	/*
	 * The explanation: empty until policy_explain() formats the steps,
	 * e.g. "line 14 restricted: exe:/opt/train@xxh3:... (hash differs)";
	 * a caller that decides by other means (no_write_down) may write its
	 * own text here instead.
	 */
	char explanation[4096];
};

/* May subject read a file of level label?  Fills decision. */
void policy_decide(const struct policy *policy, const struct policy_subject *subject, int label,
                   struct policy_decision *decision);

/*
 * The grant lines decision considered and why each did not hold, as text
 * (empty when no grant had to be considered); "no grant reaches LEVEL;
 * default_clearance LEVEL" for a refusal that considered none.  policy
 * must be the one that decided.  Returns decision->explanation.
 */
const char *policy_explain(const struct policy *policy, struct policy_decision *decision);

#endif
