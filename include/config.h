/*
 * config.h - provfs.conf, the one file an administrator edits.
 *
 * The file is INI (parsed with libinih).  Every section and key that
 * ../shared/INTERFACES.md names is known here, including the ones the label
 * policy and the OpenLineage exporter use, so a file written for a later
 * provfs is either understood or refused with the line that is wrong; nothing
 * is silently ignored.  Values are validated at load time: a loaded config is
 * always usable as it stands.
 *
 * Ownership: config_load() returns a config the caller frees with
 * config_free().  All strings inside belong to the config.
 */
#ifndef PROVFS_CONFIG_H
#define PROVFS_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define CONFIG_DEFAULT_PATH "/etc/provfs/provfs.conf"
#define CONFIG_DEFAULT_STORE "/var/lib/provfs/provfs.db"

/* A growable list of owned strings. */
struct string_list {
	char **items;
	size_t count;
};

/* "[paths] GLOB = LEVEL": a label rule, kept with its line for messages. */
struct path_rule {
	char *glob;
	char *level;
	int line;
};

/* "[clearance] LEVEL = COND COND ...": one grant; all conditions must hold. */
struct clearance_grant {
	char *level;
	struct string_list conditions; /* "user:NAME", "exe:/p@xxh3:HEX", ... */
	int line;
};

struct provfs_config {
	char *source; /* file it was read from; NULL when built-in defaults */

	/* [store] */
	char *store_path;
	char *reader_group; /* NULL: root only */

	/* [record] */
	struct string_list exclude; /* globs relative to the mount root */
	struct string_list redact;  /* argv/env words stored as [REDACTED] */
	size_t remembered_files;    /* idle file states the recorder keeps */

	/* [classification] */
	struct string_list levels; /* lowest first */
	char *default_clearance;
	bool no_write_down;
	char *admin_group;
	char *propagation; /* "process" (default) or "run" */

	/* [paths] and [clearance] */
	struct path_rule *path_rules;
	size_t path_rule_count;
	struct clearance_grant *grants;
	size_t grant_count;

	/* [openlineage] */
	char *openlineage_transport; /* "none", "http" or "file" */
	char *openlineage_url;
	char *openlineage_api_key;
	char *openlineage_ca_file;
	int openlineage_timeout_ms;
	char *openlineage_path;
	char *openlineage_namespace; /* NULL: the host name */
	char *openlineage_dataset_namespace;
	char *openlineage_compression;          /* "gzip", or NULL */
	struct string_list openlineage_path_map; /* "FROM=TO": absolute prefixes */
};

/*
 * Load the configuration from path, or from CONFIG_DEFAULT_PATH when path is
 * NULL (a missing default file means built-in defaults; a missing explicit
 * file is an error).  The file must be a regular file owned by root and not
 * writable by group or others.  On error returns NULL and writes a one-line
 * message such as "/etc/provfs/provfs.conf:12: unknown key 'x' in [store]"
 * into error (of error_size bytes).
 */
/* [record] remembered_files: the default, and the range a file may give. */
#define CONFIG_REMEMBERED_FILES_DEFAULT 65536
#define CONFIG_REMEMBERED_FILES_MIN 1024
#define CONFIG_REMEMBERED_FILES_MAX 67108864

struct provfs_config *config_load(const char *path, char *error, size_t error_size);

/* Built-in defaults, as if an empty file had been read. */
struct provfs_config *config_defaults(void);

void config_free(struct provfs_config *config);

/* Print the effective configuration as provfs.conf text (--check-config). */
void config_print(const struct provfs_config *config, FILE *out);

/* Index of a level name in config->levels, or -1 when unknown. */
int config_level_index(const struct provfs_config *config, const char *name);

void string_list_append(struct string_list *list, const char *item);
void string_list_release(struct string_list *list);

#endif
