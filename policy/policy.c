/*
 * policy.c - compile provfs.conf's classification sections; decide a read.
 *
 * Pure logic: no threads, no store, no FUSE.  The daemon's enforcement
 * (enforce.c) supplies the subject and the file's label; the unit tests
 * (tests/unit/test_policy.c) supply them by hand.  See policy.h for the
 * decision and what it costs.  Which process runs a script: grant's script
 * is decided in script.c, which provfs-query exposure shares.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "content_hash.h"
#include "path_glob.h"
#include "policy.h"
#include "process_table.h"

enum condition_kind {
	CONDITION_USER, /* user:NAME and uid:N both become a uid */
	CONDITION_GROUP,
	CONDITION_EXE,
	CONDITION_SCRIPT,
	CONDITION_JOB,
};

struct condition {
	enum condition_kind kind;
	char *text; /* as written, for explanations */
	uid_t uid;
	gid_t gid;
	char *path;   /* exe:, script: */
	char pin[33]; /* "" when not pinned */
	char *job;
};

struct grant {
	int level;
	int line;
	char *text; /* "restricted = exe:... user:..." for explanations */
	struct condition *conditions;
	size_t condition_count;
};

struct rule {
	char *glob;
	int level;
	int line;
	size_t specificity;
	char *prefix; /* literal leading directories: a path elsewhere cannot match */
	size_t prefix_length;
};

struct policy {
	char revision[33];
	char **levels;
	int level_count;
	int default_clearance;
	bool no_write_down;
	bool by_run;
	bool has_admin_group;
	gid_t admin_gid;
	struct rule *rules;
	size_t rule_count;
	struct grant *grants; /* sorted by level, highest first; stable by line */
	size_t grant_count;
	const char **index_roots;
	size_t index_root_count;
};

static int
resolve_user(const char *name, uid_t *uid)
{
	struct passwd entry, *found = NULL;
	char buffer[4096];

	if (getpwnam_r(name, &entry, buffer, sizeof(buffer), &found) != 0 || found == NULL)
		return -1;
	*uid = found->pw_uid;
	return 0;
}

static int
resolve_group(const char *name, gid_t *gid)
{
	struct group entry, *found = NULL;
	char buffer[16384];

	if (getgrnam_r(name, &entry, buffer, sizeof(buffer), &found) != 0 || found == NULL)
		return -1;
	*gid = found->gr_gid;
	return 0;
}

/* Parse one condition (already validated by config.c). */
static int
compile_condition(struct condition *condition, const char *text, char *error, size_t error_size,
                  int line)
{
	const char *value = strchr(text, ':') + 1;
	size_t kind_length = (size_t)(value - 1 - text);

	condition->text = strdup(text);
	if (kind_length == 4 && strncmp(text, "user", 4) == 0) {
		condition->kind = CONDITION_USER;
		if (resolve_user(value, &condition->uid) < 0) {
			snprintf(error, error_size, "line %d: unknown user '%s'", line, value);
			return -1;
		}
	} else if (kind_length == 3 && strncmp(text, "uid", 3) == 0) {
		condition->kind = CONDITION_USER;
		condition->uid = (uid_t)strtoul(value, NULL, 10);
	} else if (kind_length == 5 && strncmp(text, "group", 5) == 0) {
		condition->kind = CONDITION_GROUP;
		if (resolve_group(value, &condition->gid) < 0) {
			snprintf(error, error_size, "line %d: unknown group '%s'", line, value);
			return -1;
		}
	} else if (kind_length == 3 && strncmp(text, "job", 3) == 0) {
		condition->kind = CONDITION_JOB;
		condition->job = strdup(value);
	} else {
		condition->kind = kind_length == 3 ? CONDITION_EXE : CONDITION_SCRIPT;
		const char *pin = strstr(value, "@xxh3:");
		size_t path_length = pin ? (size_t)(pin - value) : strlen(value);
		condition->path = strndup(value, path_length);
		if (pin)
			snprintf(condition->pin, sizeof(condition->pin), "%s", pin + 6);
	}
	return 0;
}

static int
compare_rules(const void *a, const void *b)
{
	const struct rule *x = a, *y = b;

	if (x->specificity != y->specificity)
		return x->specificity < y->specificity ? 1 : -1;
	return y->line - x->line;
}

static int
compare_grants(const void *a, const void *b)
{
	const struct grant *x = a, *y = b;

	if (x->level != y->level)
		return y->level - x->level;
	return x->line - y->line;
}

/* Literal leading directory components of glob ("" when it has none). */
static char *
literal_root(const char *glob)
{
	if (strchr(glob, '/') == NULL)
		return strdup(""); /* matches a name at any depth */
	char *root = strdup(glob);
	char *end = root, *component = root;
	for (;;) {
		char *slash = strchr(component, '/');
		if (slash == NULL)
			break; /* the last component names files, not a directory */
		*slash = '\0';
		if (strpbrk(component, "*?[\\")) {
			*slash = '/';
			break;
		}
		*slash = '/';
		end = slash;
		component = slash + 1;
	}
	*end = '\0';
	return root;
}

static void
add_index_root(struct policy *policy, char *root)
{
	for (size_t i = 0; i < policy->index_root_count; i++) {
		if (strcmp(policy->index_roots[i], root) == 0) {
			free(root);
			return;
		}
	}
	const char **roots =
	    realloc(policy->index_roots, (policy->index_root_count + 1) * sizeof(*roots));
	if (roots == NULL)
		abort();
	policy->index_roots = roots;
	roots[policy->index_root_count++] = root;
}

struct policy *
policy_compile(const struct provfs_config *config, const char *revision, char *error,
               size_t error_size)
{
	struct policy *policy = calloc(1, sizeof(*policy));

	if (policy == NULL)
		abort();
	snprintf(policy->revision, sizeof(policy->revision), "%s", revision ? revision : "");
	if (config->levels.count > POLICY_MAX_LEVELS) {
		snprintf(error, error_size, "[classification] has %zu levels; at most %d",
		         config->levels.count, POLICY_MAX_LEVELS);
		goto fail;
	}
	policy->level_count = (int)config->levels.count;
	policy->levels = calloc(config->levels.count, sizeof(char *));
	for (size_t i = 0; i < config->levels.count; i++)
		policy->levels[i] = strdup(config->levels.items[i]);
	policy->default_clearance = config_level_index(config, config->default_clearance);
	policy->no_write_down = config->no_write_down;
	policy->by_run = config->propagation && strcmp(config->propagation, "run") == 0;
	if (config->admin_group) {
		if (resolve_group(config->admin_group, &policy->admin_gid) < 0) {
			snprintf(error, error_size, "admin_group: unknown group '%s'",
			         config->admin_group);
			goto fail;
		}
		policy->has_admin_group = true;
	}

	policy->rules = calloc(config->path_rule_count + 1, sizeof(*policy->rules));
	for (size_t i = 0; i < config->path_rule_count; i++) {
		const struct path_rule *source = &config->path_rules[i];
		struct rule *rule = &policy->rules[policy->rule_count++];
		rule->glob = strdup(source->glob);
		rule->level = config_level_index(config, source->level);
		rule->line = source->line;
		rule->specificity = path_glob_specificity(source->glob);
		rule->prefix = literal_root(source->glob);
		rule->prefix_length = strlen(rule->prefix);
		if (rule->level > 0)
			add_index_root(policy, strdup(rule->prefix));
	}
	/* Most specific first, the later line first among equals: the first match wins. */
	qsort(policy->rules, policy->rule_count, sizeof(*policy->rules), compare_rules);

	policy->grants = calloc(config->grant_count + 1, sizeof(*policy->grants));
	for (size_t i = 0; i < config->grant_count; i++) {
		const struct clearance_grant *source = &config->grants[i];
		struct grant *grant = &policy->grants[policy->grant_count++];
		size_t text_length = strlen(source->level) + 4;
		grant->level = config_level_index(config, source->level);
		grant->line = source->line;
		for (size_t j = 0; j < source->conditions.count; j++)
			text_length += strlen(source->conditions.items[j]) + 1;
		grant->text = malloc(text_length);
		snprintf(grant->text, text_length, "%s =", source->level);
		grant->conditions = calloc(source->conditions.count, sizeof(*grant->conditions));
		for (size_t j = 0; j < source->conditions.count; j++) {
			strcat(grant->text, " ");
			strcat(grant->text, source->conditions.items[j]);
		}
		for (size_t j = 0; j < source->conditions.count; j++) {
			grant->condition_count++;
			if (compile_condition(&grant->conditions[j], source->conditions.items[j],
			                      error, error_size, source->line) < 0)
				goto fail;
		}
	}
	qsort(policy->grants, policy->grant_count, sizeof(*policy->grants), compare_grants);
	return policy;
fail:
	policy_free(policy);
	return NULL;
}

void
policy_free(struct policy *policy)
{
	if (policy == NULL)
		return;
	for (int i = 0; i < policy->level_count; i++)
		free(policy->levels ? policy->levels[i] : NULL);
	free(policy->levels);
	for (size_t i = 0; i < policy->rule_count; i++) {
		free(policy->rules[i].glob);
		free(policy->rules[i].prefix);
	}
	free(policy->rules);
	for (size_t i = 0; i < policy->grant_count; i++) {
		struct grant *grant = &policy->grants[i];
		for (size_t j = 0; j < grant->condition_count; j++) {
			free(grant->conditions[j].path);
			free(grant->conditions[j].job);
			free(grant->conditions[j].text);
		}
		free(grant->conditions);
		free(grant->text);
	}
	free(policy->grants);
	for (size_t i = 0; i < policy->index_root_count; i++)
		free((char *)policy->index_roots[i]);
	free(policy->index_roots);
	free(policy);
}

int
policy_revision_of_file(const char *path, char revision[33])
{
	off_t bytes;

	if (path == NULL) {
		content_hash_format(XXH3_128bits("", 0), revision);
		return 0;
	}
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -1;
	int result = content_hash_fd(fd, -1, NULL, revision, &bytes);
	close(fd);
	return result < 0 ? -1 : 0;
}

const char *
policy_revision(const struct policy *policy)
{
	return policy->revision;
}

int
policy_level_count(const struct policy *policy)
{
	return policy->level_count;
}

const char *
policy_level_name(const struct policy *policy, int level)
{
	if (level < 0 || level >= policy->level_count)
		return "?";
	return policy->levels[level];
}

int
policy_level_index(const struct policy *policy, const char *name)
{
	for (int i = 0; i < policy->level_count; i++)
		if (strcmp(policy->levels[i], name) == 0)
			return i;
	return -1;
}

int
policy_default_clearance(const struct policy *policy)
{
	return policy->default_clearance;
}

bool
policy_no_write_down(const struct policy *policy)
{
	return policy->no_write_down;
}

bool
policy_propagates_by_run(const struct policy *policy)
{
	return policy->by_run;
}

bool
policy_admin_group(const struct policy *policy, gid_t *gid)
{
	if (policy->has_admin_group)
		*gid = policy->admin_gid;
	return policy->has_admin_group;
}

bool
policy_has_path_rules(const struct policy *policy)
{
	return policy->rule_count > 0;
}

bool
policy_has_program_grants(const struct policy *policy)
{
	for (size_t i = 0; i < policy->grant_count; i++)
		for (size_t k = 0; k < policy->grants[i].condition_count; k++)
			if (policy->grants[i].conditions[k].kind == CONDITION_EXE ||
			    policy->grants[i].conditions[k].kind == CONDITION_SCRIPT)
				return true;
	return false;
}

int
policy_path_level(const struct policy *policy, const char *path, struct policy_rule_info *rule)
{
	for (size_t i = 0; i < policy->rule_count; i++) {
		const struct rule *candidate = &policy->rules[i];
		/* The first byte turns most rules away before a comparison call. */
		if (candidate->prefix_length &&
		    (path[0] != candidate->prefix[0] ||
		     strncmp(path, candidate->prefix, candidate->prefix_length) != 0 ||
		     (path[candidate->prefix_length] != '/' &&
		      path[candidate->prefix_length] != '\0')))
			continue;
		if (!path_glob_match(candidate->glob, path))
			continue;
		if (rule)
			*rule = (struct policy_rule_info){candidate->glob, candidate->level,
							  candidate->line};
		return candidate->level;
	}
	return -1;
}

size_t
policy_index_roots(const struct policy *policy, const char ***roots)
{
	*roots = policy->index_roots;
	return policy->index_root_count;
}

/* ---- the decision ----------------------------------------------------------- */

static void explain(struct policy_decision *decision, const char *format, ...)
    __attribute__((format(printf, 2, 3)));

static void
explain(struct policy_decision *decision, const char *format, ...)
{
	size_t used = strlen(decision->explanation);
	va_list ap;

	if (used + 1 >= sizeof(decision->explanation))
		return;
	va_start(ap, format);
	vsnprintf(decision->explanation + used, sizeof(decision->explanation) - used, format, ap);
	va_end(ap);
}

/*
 * Why an image's argv and environ, read at its first open, cannot be taken
 * for what it was started with (process_table.h, FACTS FROM EXEC TIME), or
 * NULL.  exe: and script: conditions need both: the arguments name the
 * script, and the environment what could run before it.
 */
static const char *
exec_facts_fail(unsigned int injection)
{
	if (injection & PROCESS_MEMORY_UNREAD)
		return "argv and environment unknown (the process kept its memory from provfs)";
	if (injection & PROCESS_EXEC_UNSEEN)
		return "process not seen at exec (started before provfs, or its exec event was "
		       "lost): start it again";
	if (injection & PROCESS_ARGV_CHANGED)
		return "argv changed after exec";
	if (injection & PROCESS_ENVIRONMENT_CHANGED)
		return "environment changed after exec";
	return NULL;
}

#define FOREIGN_NAMESPACE \
	"runs in another mount or user namespace (its names are not the daemon's)"

#define FOREIGN_CODE "code mapped from a file not root's (LD_PRELOAD, LD_LIBRARY_PATH ...)"

/* Does condition hold?  NULL when it does, else why not. */
static const char *
condition_fails(const struct condition *condition, const struct policy_subject *subject)
{
	const char *failed; /* why an exe: or script: condition fails */
	char hash[33];

	switch (condition->kind) {
	case CONDITION_USER:
		return subject->uid == condition->uid ? NULL : "other user";
	case CONDITION_GROUP:
		return subject->in_group && subject->in_group(subject->context, condition->gid)
		           ? NULL
		           : "not a member";
	case CONDITION_JOB:
		return subject->job && strcmp(subject->job, condition->job) == 0 ? NULL
		                                                                 : "other job";
	case CONDITION_EXE:
		if (subject->executable == NULL ||
		    strcmp(subject->executable, condition->path) != 0)
			return "other executable";
		if (subject->injection & PROCESS_FOREIGN_NAMESPACE)
			return FOREIGN_NAMESPACE;
		if (subject->traced)
			return "traced";
		if (subject->injection & PROCESS_INJECTION_LOADER)
			return "loader environment (LD_PRELOAD ...)";
		if ((failed = exec_facts_fail(subject->injection)) != NULL)
			return failed;
		if (subject->foreign_code && subject->foreign_code(subject->context))
			return FOREIGN_CODE;
		if (condition->pin[0] == '\0')
			return NULL;
		if (subject->executable_hash == NULL ||
		    subject->executable_hash(subject->context, hash) < 0)
			return "executable hash unknown";
		return strcmp(hash, condition->pin) == 0 ? NULL : "executable hash differs";
	case CONDITION_SCRIPT:
		failed = policy_script_fails(subject->executable, subject->argv,
		                             subject->argv_length, subject->cwd,
		                             subject->injection, condition->path);
		if (failed != NULL)
			return failed;
		if (subject->injection & PROCESS_FOREIGN_NAMESPACE)
			return FOREIGN_NAMESPACE;
		if (subject->traced)
			return "traced";
		if (subject->injection & (PROCESS_INJECTION_LOADER | PROCESS_INJECTION_SCRIPT))
			return "environment can inject code";
		if ((failed = exec_facts_fail(subject->injection)) != NULL)
			return failed;
		if (subject->foreign_code && subject->foreign_code(subject->context))
			return FOREIGN_CODE;
		if (condition->pin[0] == '\0')
			return NULL;
		if (subject->file_hash == NULL)
			return "script hash unknown";
		switch (subject->file_hash(subject->context, condition->path, hash)) {
		case 0:
			break;
		case -2:
			return "script hash still being computed; the next open is decided again";
		default:
			return "script hash unknown";
		}
		return strcmp(hash, condition->pin) == 0 ? NULL : "script hash differs";
	}
	return "unknown condition";
}

void
policy_decide(const struct policy *policy, const struct policy_subject *subject, int label,
              struct policy_decision *decision)
{
	decision->explanation[0] = '\0';
	decision->step_count = decision->steps_left_out = 0;
	decision->label = label;
	decision->clearance = policy->default_clearance;
	decision->allowed = label <= policy->default_clearance;
	if (decision->allowed)
		return;
	for (size_t i = 0; i < policy->grant_count && policy->grants[i].level >= label; i++) {
		const struct grant *grant = &policy->grants[i];
		const char *failed = NULL;
		size_t j;
		for (j = 0; j < grant->condition_count; j++) {
			failed = condition_fails(&grant->conditions[j], subject);
			if (failed)
				break;
		}
		if (decision->step_count < POLICY_DECISION_STEPS)
			decision->steps[decision->step_count++] = (struct policy_decision_step){
			    (unsigned int)i, failed ? (int)j : -1, failed};
		else
			decision->steps_left_out++;
		if (failed == NULL) {
			decision->allowed = true;
			decision->clearance = grant->level;
			return;
		}
	}
}

const char *
policy_explain(const struct policy *policy, struct policy_decision *decision)
{
	if (decision->explanation[0] != '\0')
		return decision->explanation;
	for (size_t i = 0; i < decision->step_count; i++) {
		const struct policy_decision_step *step = &decision->steps[i];
		const struct grant *grant = &policy->grants[step->grant];
		const char *separator = i ? "; " : "";
		if (step->condition < 0)
			explain(decision, "%sline %d %s: holds", separator, grant->line, grant->text);
		else
			explain(decision, "%sline %d %s: %s (%s)", separator, grant->line, grant->text,
			        grant->conditions[step->condition].text, step->reason);
	}
	if (decision->steps_left_out)
		explain(decision, "; and %zu more grant lines", decision->steps_left_out);
	if (decision->step_count == 0 && !decision->allowed)
		explain(decision, "no grant reaches %s; default_clearance %s",
		        policy_level_name(policy, decision->label),
		        policy_level_name(policy, policy->default_clearance));
	return decision->explanation;
}
