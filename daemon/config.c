/*
 * config.c - load and validate provfs.conf.
 *
 * libinih does the INI syntax; this file knows the sections and keys and
 * checks every value as it arrives, so that the first problem is reported
 * with its line and nothing half-valid is ever used.  Checks that need the
 * whole file (a level named in [paths] before [classification] defines it)
 * run after parsing, with the line kept beside each rule.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <ini.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

/* libinih as Debian builds it reads at most this many bytes of a line. */
#define INI_LINE_LIMIT 199

struct parse_state {
	struct provfs_config *config;
	const char *path;
	int line;         /* line of the key being handled, found by scanning; 0: none */
	/* Lines of keys checked only once the whole file is read (0: absent). */
	int levels_line, default_clearance_line;
	int transport_line, api_key_line, ca_file_line, lineage_path_line;
	char error[512];  /* first error; empty while all is well */
	bool levels_seen; /* [classification] levels replaced the defaults */
};

static char *
xstrdup(const char *s)
{
	char *copy = strdup(s);

	if (copy == NULL)
		abort(); /* out of memory while loading a config: nothing to save */
	return copy;
}

static void
replace_string(char **slot, const char *value)
{
	free(*slot);
	*slot = value[0] ? xstrdup(value) : NULL;
}

void
string_list_append(struct string_list *list, const char *item)
{
	char **items = realloc(list->items, (list->count + 1) * sizeof(*items));

	if (items == NULL)
		abort();
	list->items = items;
	list->items[list->count++] = xstrdup(item);
}

void
string_list_release(struct string_list *list)
{
	for (size_t i = 0; i < list->count; i++)
		free(list->items[i]);
	free(list->items);
	list->items = NULL;
	list->count = 0;
}

/* Split a value on white space into list (appending). */
static void
split_words(struct string_list *list, const char *value)
{
	const char *p = value;

	while (*p) {
		while (isspace((unsigned char)*p))
			p++;
		const char *start = p;
		while (*p && !isspace((unsigned char)*p))
			p++;
		if (p > start) {
			char *word = strndup(start, (size_t)(p - start));
			if (word == NULL)
				abort();
			string_list_append(list, word);
			free(word);
		}
	}
}

static void
fail(struct parse_state *state, const char *fmt, ...)
{
	va_list ap;
	char message[400];

	if (state->error[0])
		return; /* keep the first problem */
	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	/* A check of the whole file names no line. */
	if (state->line > 0)
		snprintf(state->error, sizeof(state->error), "%s:%d: %s", state->path,
			 state->line, message);
	else
		snprintf(state->error, sizeof(state->error), "%s: %s", state->path, message);
}

static bool
parse_bool(const char *value, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(value, yes[i]) == 0)
			return *out = true, true;
		if (strcasecmp(value, no[i]) == 0)
			return *out = false, true;
	}
	return false;
}

static bool
is_level_name(const char *name)
{
	if (!name[0])
		return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-')
			return false;
	return true;
}

static bool
is_hex_digits(const char *s, size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (!isxdigit((unsigned char)s[i]) || isupper((unsigned char)s[i]))
			return false;
	return s[count] == '\0';
}

/*
 * Check one grant condition.  Returns NULL when valid, else what is wrong.
 * exe: and script: take an absolute path, optionally pinned to a content
 * hash as xxhsum -H2 prints it (32 lowercase hex digits).
 */
static const char *
check_condition(const char *condition)
{
	const char *colon = strchr(condition, ':');

	if (colon == NULL || colon[1] == '\0')
		return "expected KIND:VALUE";
	size_t kind_length = (size_t)(colon - condition);
	const char *value = colon + 1;
	if (strncmp(condition, "user", kind_length) == 0 && kind_length == 4)
		return getpwnam(value) ? NULL : "unknown user";
	if (strncmp(condition, "group", kind_length) == 0 && kind_length == 5)
		return getgrnam(value) ? NULL : "unknown group";
	if (strncmp(condition, "job", kind_length) == 0 && kind_length == 3)
		return NULL;
	if (strncmp(condition, "uid", kind_length) == 0 && kind_length == 3) {
		for (const char *p = value; *p; p++)
			if (!isdigit((unsigned char)*p))
				return "uid: takes a number";
		return NULL;
	}
	if ((kind_length == 3 && strncmp(condition, "exe", 3) == 0) ||
	    (kind_length == 6 && strncmp(condition, "script", 6) == 0)) {
		if (value[0] != '/')
			return "exe: and script: take an absolute path";
		const char *pin = strstr(value, "@xxh3:");
		if (pin && !is_hex_digits(pin + 6, 32))
			return "the pin after @xxh3: must be 32 lowercase hex digits";
		return NULL;
	}
	return "unknown condition kind (user, group, uid, exe, script or job)";
}

static void
add_grant(struct parse_state *state, const char *level, const char *value)
{
	struct provfs_config *config = state->config;
	struct clearance_grant grant = {.level = xstrdup(level), .line = state->line};
	bool has_identity = false;

	split_words(&grant.conditions, value);
	if (grant.conditions.count == 0)
		fail(state, "grant for '%s' has no condition", level);
	for (size_t i = 0; i < grant.conditions.count; i++) {
		const char *condition = grant.conditions.items[i];
		const char *problem = check_condition(condition);
		if (problem)
			fail(state, "'%s': %s", condition, problem);
		if (strncmp(condition, "job:", 4) != 0)
			has_identity = true;
	}
	if (grant.conditions.count && !has_identity)
		fail(state, "a job: condition comes from the caller's environment; "
			    "combine it with user:, uid:, group:, exe: or script:");
	struct clearance_grant *grants =
		realloc(config->grants, (config->grant_count + 1) * sizeof(*grants));
	if (grants == NULL)
		abort();
	config->grants = grants;
	config->grants[config->grant_count++] = grant;
}

static void
add_path_rule(struct parse_state *state, const char *glob, const char *level)
{
	struct provfs_config *config = state->config;

	if (glob[0] == '/')
		fail(state, "path rule '%s' must be relative to the mount root", glob);
	if (strchr(level, ' ') || !is_level_name(level))
		fail(state, "path rule '%s' needs one level name, not '%s'", glob, level);
	struct path_rule *rules = realloc(config->path_rules,
					  (config->path_rule_count + 1) * sizeof(*rules));
	if (rules == NULL)
		abort();
	config->path_rules = rules;
	config->path_rules[config->path_rule_count++] = (struct path_rule){
		.glob = xstrdup(glob), .level = xstrdup(level), .line = state->line};
}

static void
handle_store(struct parse_state *state, const char *name, const char *value)
{
	struct provfs_config *config = state->config;

	if (strcmp(name, "path") == 0) {
		if (value[0] != '/')
			fail(state, "store path '%s' must be absolute", value);
		replace_string(&config->store_path, value);
	} else if (strcmp(name, "reader_group") == 0) {
		replace_string(&config->reader_group, value);
	} else {
		fail(state, "unknown key '%s' in [store]", name);
	}
}

static void
handle_record(struct parse_state *state, const char *name, const char *value)
{
	if (strcmp(name, "exclude") == 0)
		split_words(&state->config->exclude, value);
	else if (strcmp(name, "redact") == 0)
		split_words(&state->config->redact, value);
	else if (strcmp(name, "remembered_files") == 0) {
		char *end;
		errno = 0;
		unsigned long long files = strtoull(value, &end, 10);
		if (errno || *end || end == value || value[0] == '-' ||
		    files < CONFIG_REMEMBERED_FILES_MIN || files > CONFIG_REMEMBERED_FILES_MAX)
			fail(state, "remembered_files takes a number of files from %d to %d, not '%s'",
			     CONFIG_REMEMBERED_FILES_MIN, CONFIG_REMEMBERED_FILES_MAX, value);
		else
			state->config->remembered_files = (size_t)files;
	} else
		fail(state, "unknown key '%s' in [record]", name);
}

static void
handle_classification(struct parse_state *state, const char *name, const char *value)
{
	struct provfs_config *config = state->config;

	if (strcmp(name, "levels") == 0) {
		state->levels_line = state->line;
		if (!state->levels_seen)
			string_list_release(&config->levels);
		state->levels_seen = true;
		size_t before = config->levels.count;
		split_words(&config->levels, value);
		for (size_t i = before; i < config->levels.count; i++) {
			const char *level = config->levels.items[i];
			if (!is_level_name(level))
				fail(state, "level name '%s' may hold only letters, digits, '_' and '-'",
				     level);
			for (size_t j = 0; j < i; j++)
				if (strcmp(config->levels.items[j], level) == 0)
					fail(state, "level '%s' is listed twice", level);
		}
	} else if (strcmp(name, "default_clearance") == 0) {
		replace_string(&config->default_clearance, value);
		state->default_clearance_line = state->line;
	} else if (strcmp(name, "no_write_down") == 0) {
		if (!parse_bool(value, &config->no_write_down))
			fail(state, "no_write_down takes true or false, not '%s'", value);
	} else if (strcmp(name, "admin_group") == 0) {
		if (value[0] && getgrnam(value) == NULL)
			fail(state, "admin_group: unknown group '%s'", value);
		replace_string(&config->admin_group, value);
	} else if (strcmp(name, "propagation") == 0) {
		if (strcmp(value, "process") != 0 && strcmp(value, "run") != 0)
			fail(state, "propagation takes process or run, not '%s'", value);
		replace_string(&config->propagation, value);
	} else {
		fail(state, "unknown key '%s' in [classification]", name);
	}
}

/* "path_map = /mnt/data=/data ...": absolute FROM=TO prefixes, in order. */
static void
add_path_maps(struct parse_state *state, const char *value)
{
	struct string_list words = {0};

	split_words(&words, value);
	for (size_t i = 0; i < words.count; i++) {
		const char *map = words.items[i], *equals = strchr(map, '=');
		if (equals == NULL || map[0] != '/' || equals[1] != '/') {
			fail(state, "path_map takes FROM=TO with absolute paths, not '%s'", map);
			break;
		}
		string_list_append(&state->config->openlineage_path_map, map);
	}
	string_list_release(&words);
}

static void
handle_openlineage(struct parse_state *state, const char *name, const char *value)
{
	struct provfs_config *config = state->config;

	if (strcmp(name, "transport") == 0) {
		if (strcmp(value, "http") && strcmp(value, "file") && strcmp(value, "none"))
			fail(state, "transport takes http, file or none, not '%s'", value);
		replace_string(&config->openlineage_transport, value);
		state->transport_line = state->line;
	} else if (strcmp(name, "url") == 0) {
		if (value[0] && strncmp(value, "http://", 7) && strncmp(value, "https://", 8))
			fail(state, "url '%s' must start with http:// or https://", value);
		replace_string(&config->openlineage_url, value);
	} else if (strcmp(name, "api_key") == 0) {
		replace_string(&config->openlineage_api_key, value);
		state->api_key_line = state->line;
	} else if (strcmp(name, "ca_file") == 0) {
		replace_string(&config->openlineage_ca_file, value);
		state->ca_file_line = state->line;
	} else if (strcmp(name, "timeout_ms") == 0) {
		char *end;
		errno = 0;
		long timeout = strtol(value, &end, 10);
		if (errno || *end || end == value || timeout <= 0 || timeout > 600000)
			fail(state, "timeout_ms takes milliseconds from 1 to 600000, not '%s'",
			     value);
		else
			config->openlineage_timeout_ms = (int)timeout;
	} else if (strcmp(name, "path") == 0) {
		replace_string(&config->openlineage_path, value);
		state->lineage_path_line = state->line;
	} else if (strcmp(name, "namespace") == 0) {
		replace_string(&config->openlineage_namespace, value);
	} else if (strcmp(name, "dataset_namespace") == 0) {
		replace_string(&config->openlineage_dataset_namespace, value);
	} else if (strcmp(name, "compression") == 0) {
		if (value[0] && strcmp(value, "gzip"))
			fail(state, "compression takes gzip or nothing, not '%s'", value);
		replace_string(&config->openlineage_compression, value);
	} else if (strcmp(name, "path_map") == 0) {
		add_path_maps(state, value);
	} else {
		fail(state, "unknown key '%s' in [openlineage]", name);
	}
}

/*
 * libinih does not report line numbers to handlers, so the line of each key
 * is found by scanning the file text (kept in parse_state) in step with the
 * callbacks; see locate_key().
 */
struct line_index {
	char **lines;
	int count;
	int next; /* first line not yet matched to a callback */
};

static struct line_index line_index;

static int
locate_key(const char *name)
{
	for (int i = line_index.next; i < line_index.count; i++) {
		const char *line = line_index.lines[i];
		while (isspace((unsigned char)*line))
			line++;
		size_t length = strlen(name);
		if (strncmp(line, name, length) == 0) {
			const char *rest = line + length;
			while (*rest == ' ' || *rest == '\t')
				rest++;
			if (*rest == '=' || *rest == ':') {
				line_index.next = i + 1;
				return i + 1;
			}
		}
	}
	return line_index.next; /* a continuation line: same key as before */
}

static int
handle_entry(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *state = user;

	state->line = locate_key(name);
	if (strcmp(section, "store") == 0)
		handle_store(state, name, value);
	else if (strcmp(section, "record") == 0)
		handle_record(state, name, value);
	else if (strcmp(section, "classification") == 0)
		handle_classification(state, name, value);
	else if (strcmp(section, "paths") == 0)
		add_path_rule(state, name, value);
	else if (strcmp(section, "clearance") == 0)
		add_grant(state, name, value);
	else if (strcmp(section, "openlineage") == 0)
		handle_openlineage(state, name, value);
	else if (section[0] == '\0')
		fail(state, "key '%s' stands before any [section]", name);
	else
		fail(state, "unknown section [%s]", section);
	return state->error[0] ? 0 : 1;
}

/* The host of an http(s) URL is loopback: 127.0.0.0/8, [::1] or localhost. */
static bool
url_host_is_loopback(const char *url)
{
	const char *host = strstr(url, "://");
	size_t length;

	host = host ? host + 3 : url;
	const char *at = strpbrk(host, "@/");
	if (at && *at == '@')
		host = at + 1; /* user:password@host */
	length = strcspn(host, "/?#");
	if (length >= 5 && strncmp(host, "[::1]", 5) == 0)
		return host[5] == ':' || length == 5;
	size_t name = strcspn(host, ":/?#");
	if (name == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	return name >= 4 && strncmp(host, "127.", 4) == 0 &&
	       strspn(host, "0123456789.") == name;
}

/*
 * Transport settings that would leak a key or fail only at the first event
 * are refused when the file is read, so --check-config and the mount say so.
 */
static void
check_openlineage_transport(struct parse_state *state)
{
	struct provfs_config *config = state->config;
	const char *url = config->openlineage_url;
	struct stat st;

	if (!config->openlineage_transport || strcmp(config->openlineage_transport, "http") != 0 ||
	    url == NULL)
		return;
	state->line = state->api_key_line;
	if (config->openlineage_api_key && strncmp(url, "http://", 7) == 0 &&
	    !url_host_is_loopback(url)) {
		fail(state, "[openlineage] api_key would be sent in clear text to '%s': use "
			    "https, or a loopback host",
		     url);
		return;
	}
	if (config->openlineage_ca_file) {
		state->line = state->ca_file_line;
		if (stat(config->openlineage_ca_file, &st) < 0)
			fail(state, "[openlineage] ca_file '%s': %s", config->openlineage_ca_file,
			     strerror(errno));
		else if (!S_ISREG(st.st_mode))
			fail(state, "[openlineage] ca_file '%s' is not a regular file",
			     config->openlineage_ca_file);
	}
}

/* Checks that need the whole file. */
static void
check_levels(struct parse_state *state)
{
	struct provfs_config *config = state->config;

	if (config->levels.count == 0) {
		state->line = state->levels_line;
		fail(state, "[classification] levels is empty");
		return;
	}
	if (config_level_index(config, config->default_clearance) < 0) {
		state->line = state->default_clearance_line;
		fail(state, "default_clearance '%s' is not one of the levels",
		     config->default_clearance ? config->default_clearance : "");
	}
	for (size_t i = 0; i < config->path_rule_count; i++) {
		state->line = config->path_rules[i].line;
		if (config_level_index(config, config->path_rules[i].level) < 0)
			fail(state, "unknown level '%s'", config->path_rules[i].level);
	}
	for (size_t i = 0; i < config->grant_count; i++) {
		state->line = config->grants[i].line;
		if (config_level_index(config, config->grants[i].level) < 0)
			fail(state, "unknown level '%s'", config->grants[i].level);
	}
	if (config->openlineage_transport &&
	    strcmp(config->openlineage_transport, "http") == 0 && !config->openlineage_url) {
		state->line = state->transport_line;
		fail(state, "[openlineage] transport = http needs a url");
	}
	if (config->openlineage_transport &&
	    strcmp(config->openlineage_transport, "file") == 0 && !config->openlineage_path) {
		state->line = state->transport_line;
		fail(state, "[openlineage] transport = file needs a path");
	}
	if (config->openlineage_path && config->openlineage_path[0] != '/') {
		state->line = state->lineage_path_line;
		fail(state, "[openlineage] path '%s' must be absolute", config->openlineage_path);
	}
	check_openlineage_transport(state);
}

int
config_level_index(const struct provfs_config *config, const char *name)
{
	if (name == NULL)
		return -1;
	for (size_t i = 0; i < config->levels.count; i++)
		if (strcmp(config->levels.items[i], name) == 0)
			return (int)i;
	return -1;
}

struct provfs_config *
config_defaults(void)
{
	struct provfs_config *config = calloc(1, sizeof(*config));

	if (config == NULL)
		abort();
	config->store_path = xstrdup(CONFIG_DEFAULT_STORE);
	config->remembered_files = CONFIG_REMEMBERED_FILES_DEFAULT;
	split_words(&config->levels, "public internal confidential restricted");
	config->default_clearance = xstrdup("internal");
	config->propagation = xstrdup("process");
	config->openlineage_transport = xstrdup("none");
	config->openlineage_timeout_ms = 5000;
	config->openlineage_dataset_namespace = xstrdup("file");
	return config;
}

/*
 * libinih reports a section only through its keys: a "[bogus]" with no key
 * under it would pass unseen.  Check every section header as a line.
 */
static void
check_section_line(struct parse_state *state, const char *line, int number)
{
	static const char *const known[] = {"store",	"record",    "classification",
					    "paths",	"clearance", "openlineage"};
	const char *start = line;

	while (isspace((unsigned char)*start))
		start++;
	if (*start != '[')
		return;
	const char *end = strchr(start, ']');
	if (end == NULL)
		return; /* libinih reports the malformed line */
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if ((size_t)(end - start - 1) == strlen(known[i]) &&
		    strncmp(start + 1, known[i], strlen(known[i])) == 0)
			return;
	state->line = number;
	fail(state, "unknown section [%.*s]", (int)(end - start - 1), start + 1);
}

/* Read the whole file into memory, split into lines, checking their length. */
static int
read_lines(FILE *file, struct parse_state *state)
{
	char *text = NULL;
	size_t size = 0;
	ssize_t length;
	int number = 0;

	line_index = (struct line_index){0};
	while ((length = getline(&text, &size, file)) >= 0) {
		number++;
		if (length > 0 && text[length - 1] == '\n')
			text[--length] = '\0';
		if (length > INI_LINE_LIMIT) {
			state->line = number;
			fail(state, "line is longer than %d characters "
				    "(continue the value on an indented line)",
			     INI_LINE_LIMIT);
		}
		check_section_line(state, text, number);
		char **lines = realloc(line_index.lines, (size_t)(number) * sizeof(char *));
		if (lines == NULL)
			abort();
		line_index.lines = lines;
		line_index.lines[number - 1] = xstrdup(text);
	}
	line_index.count = number;
	free(text);
	return state->error[0] ? -1 : 0;
}

static void
release_lines(void)
{
	for (int i = 0; i < line_index.count; i++)
		free(line_index.lines[i]);
	free(line_index.lines);
	line_index = (struct line_index){0};
}

struct provfs_config *
config_load(const char *path, char *error, size_t error_size)
{
	const char *file_path = path ? path : CONFIG_DEFAULT_PATH;
	struct parse_state state = {.path = file_path};
	struct provfs_config *config = NULL;
	struct stat st;
	FILE *file;

	file = fopen(file_path, "re");
	if (file == NULL) {
		if (errno == ENOENT && path == NULL)
			return config_defaults();
		snprintf(error, error_size, "cannot read config '%s': %s", file_path,
			 strerror(errno));
		return NULL;
	}
	if (fstat(fileno(file), &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(error, error_size, "config '%s' is not a regular file", file_path);
		goto out_close;
	}
	if (st.st_uid != 0) {
		snprintf(error, error_size,
			 "config '%s' must be owned by root (it may hold an API key)", file_path);
		goto out_close;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(error, error_size,
			 "config '%s' is writable by group or others; run chmod go-w on it",
			 file_path);
		goto out_close;
	}

	config = config_defaults();
	config->source = xstrdup(file_path);
	state.config = config;
	if (read_lines(file, &state) == 0) {
		rewind(file);
		int bad_line = ini_parse_file(file, handle_entry, &state);
		if (bad_line > 0 && !state.error[0]) {
			state.line = bad_line;
			fail(&state, "expected '[section]' or 'key = value'");
		} else if (bad_line < 0 && !state.error[0]) {
			state.line = 0;
			fail(&state, "cannot parse the file");
		}
	}
	if (!state.error[0])
		check_levels(&state);
	release_lines();
	if (state.error[0]) {
		snprintf(error, error_size, "%s", state.error);
		config_free(config);
		config = NULL;
	}
out_close:
	fclose(file);
	return config;
}

void
config_free(struct provfs_config *config)
{
	if (config == NULL)
		return;
	free(config->source);
	free(config->store_path);
	free(config->reader_group);
	string_list_release(&config->exclude);
	string_list_release(&config->redact);
	string_list_release(&config->levels);
	free(config->default_clearance);
	free(config->admin_group);
	free(config->propagation);
	for (size_t i = 0; i < config->path_rule_count; i++) {
		free(config->path_rules[i].glob);
		free(config->path_rules[i].level);
	}
	free(config->path_rules);
	for (size_t i = 0; i < config->grant_count; i++) {
		free(config->grants[i].level);
		string_list_release(&config->grants[i].conditions);
	}
	free(config->grants);
	free(config->openlineage_transport);
	free(config->openlineage_url);
	free(config->openlineage_api_key);
	free(config->openlineage_ca_file);
	free(config->openlineage_path);
	free(config->openlineage_namespace);
	free(config->openlineage_dataset_namespace);
	free(config->openlineage_compression);
	string_list_release(&config->openlineage_path_map);
	free(config);
}

static void
print_list(FILE *out, const char *key, const struct string_list *list)
{
	fprintf(out, "%s =", key);
	for (size_t i = 0; i < list->count; i++)
		fprintf(out, " %s", list->items[i]);
	fputc('\n', out);
}

static const char *
or_empty(const char *s)
{
	return s ? s : "";
}

void
config_print(const struct provfs_config *config, FILE *out)
{
	fprintf(out, "; effective configuration from %s\n",
		config->source ? config->source : "built-in defaults");
	fprintf(out, "[store]\npath = %s\nreader_group = %s\n", config->store_path,
		or_empty(config->reader_group));
	fprintf(out, "\n[record]\n");
	print_list(out, "exclude", &config->exclude);
	print_list(out, "redact", &config->redact);
	fprintf(out, "remembered_files = %zu\n", config->remembered_files);
	fprintf(out, "\n[classification]\n");
	print_list(out, "levels", &config->levels);
	fprintf(out, "default_clearance = %s\nno_write_down = %s\nadmin_group = %s\n"
		     "propagation = %s\n",
		config->default_clearance, config->no_write_down ? "true" : "false",
		or_empty(config->admin_group), config->propagation);
	fprintf(out, "\n[paths]\n");
	for (size_t i = 0; i < config->path_rule_count; i++)
		fprintf(out, "%s = %s\n", config->path_rules[i].glob,
			config->path_rules[i].level);
	fprintf(out, "\n[clearance]\n");
	for (size_t i = 0; i < config->grant_count; i++)
		print_list(out, config->grants[i].level, &config->grants[i].conditions);
	fprintf(out, "\n[openlineage]\ntransport = %s\nurl = %s\napi_key = %s\nca_file = %s\n"
		     "timeout_ms = %d\npath = %s\nnamespace = %s\ndataset_namespace = %s\n",
		config->openlineage_transport, or_empty(config->openlineage_url),
		config->openlineage_api_key ? "(set, not shown)" : "",
		or_empty(config->openlineage_ca_file), config->openlineage_timeout_ms,
		or_empty(config->openlineage_path), or_empty(config->openlineage_namespace),
		or_empty(config->openlineage_dataset_namespace));
	fprintf(out, "compression = %s\n", or_empty(config->openlineage_compression));
	print_list(out, "path_map", &config->openlineage_path_map);
}
