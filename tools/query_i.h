/*
 * query_i.h - private to provfs-query: the query context, the records it
 * reads from the store, and the helpers its commands share.
 *
 * Ownership: every struct q_* is filled by a q_*_load() function and
 * emptied by the matching q_*_release(); strings inside belong to it.
 * Integer fields that the store may leave NULL hold Q_NONE.
 *
 * Errors: a command returns the process exit status (0, 1 for a negative
 * answer, 2 for an error).  q_error() prints the one line
 * "provfs-query: COMMAND: message" and returns the status it is given, so a
 * failure reads `return q_error(q, 2, "...")`.  Nothing is written to stdout
 * before a command knows it will succeed when the format is JSON: JSON
 * documents are built in memory and printed whole.
 */
#ifndef PROVFS_QUERY_I_H
#define PROVFS_QUERY_I_H

#include <json-c/json.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "query_escape.h"
#include "query_time.h"

#define Q_NONE INT64_MIN
#define Q_SCHEMA "provfs-query/1"

enum q_format {
	Q_FORMAT_TEXT,
	Q_FORMAT_JSON,
	Q_FORMAT_DOT,
	Q_FORMAT_MARKDOWN,
	Q_FORMAT_OPENLINEAGE, /* export: newline-delimited OpenLineage RunEvents */
	Q_FORMAT_PROV_JSON,   /* export, lineage: W3C PROV-JSON */
	Q_FORMAT_PROV_O,      /* export, lineage: W3C PROV-O (Turtle) */
};

struct store;
struct provfs_config;

struct query {
	const char *command; /* names errors */
	struct store *store;
	sqlite3 *db;
	const char *store_path;
	const char *config_path; /* --config, or NULL for the default */
	enum q_format format;
	int64_t now_ns;
	bool utf8;      /* stdout's locale is UTF-8: tree lines, names unescaped */
	bool progress;  /* stderr is a terminal: progress bars */
	char host[256]; /* this host, to prefer its mount sessions */

	/* Command options; Q_NONE / NULL / -1 when not given. */
	int depth;
	int64_t at_ns;
	int64_t version;
	const char *hash;
	int64_t since_ns;
	const char *job;
	const char *under;
	bool all;
	bool run_scope;
	const char *user;        /* denials --user */
	const char *path;        /* denials --path */
	char **args; /* positional arguments after the command */
	int nargs;

	/* prune */
	int64_t before_ns;     /* --before: Q_NONE when not given */
	int64_t keep_audit_ns; /* --keep-audit: denials, declassifications since */
	bool dry_run;

	/*
	 * The configuration whose path rules and levels decide the labels shown
	 * (query_model.c); loaded once, by open_store or at the first version.
	 * NULL with label_config_tried: unreadable, the recorded labels are shown.
	 */
	struct provfs_config *label_config;
	bool label_config_tried;
};

/* --- provfs_query.c -------------------------------------------------- */

/* The configuration for the label questions (--config, else the default);
 * NULL with error set when it cannot be had, or when the default is absent
 * although the store's mounts enforced one (the built-in levels and no
 * path rules would then answer wrongly). */
struct provfs_config *q_label_config_load(struct query *q, char *error, size_t error_size);
int q_error(struct query *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A prepared statement for sql, which must be a string literal: statements
 * are cached by address and reset on every call.  NULL after printing the
 * error when SQLite refuses it.
 */
sqlite3_stmt *q_prepare(struct query *q, const char *sql);

/* sqlite3_step(); an error other than ROW or DONE is printed and gives -1. */
int q_step(struct query *q, sqlite3_stmt *statement);
/*
 * Step statement to its end, collecting column 0 of every row into *ids
 * (allocated; the caller frees it) and their number into *count.  Returns
 * 0, or -1 on a store error (then *ids is NULL and *count 0).
 */
int q_collect_ids(struct query *q, sqlite3_stmt *statement, int64_t **ids, size_t *count);

/* The store error, as q_error(q, 2, ...) with SQLite's message. */
int q_store_error(struct query *q);

/* --- query_output.c -------------------------------------------------- */

/* Column helpers: a copy of a text column (NULL for SQL NULL), an integer or Q_NONE. */
char *q_col_text(sqlite3_stmt *statement, int column);
int64_t q_col_int(sqlite3_stmt *statement, int column);
void q_bind_int(sqlite3_stmt *statement, int index, int64_t value);

/*
 * Text output: each returns a string valid until 16 more calls of these
 * functions (a ring of buffers), for use as printf arguments.
 */
const char *q_tx(struct query *q, const char *s);              /* escaped name, "-" for NULL */
const char *q_short_hash(const char *hash, const char *state); /* 12 digits or why none */
const char *q_size(int64_t bytes);                             /* "12.3 MiB" */
const char *q_when(struct query *q, int64_t ns);               /* local time and "(3d ago)" */
const char *q_argv_text(struct query *q, char *const *argv, size_t argc, const char *executable);

/* Tree drawing pieces for the locale: "├─ ", "└─ ", "│  ", "   ". */
const char *q_tree_branch(struct query *q, bool last);
const char *q_tree_stem(struct query *q, bool last);

/* JSON values; NULL / Q_NONE become JSON null.  Strings are escaped per query_escape.h. */
json_object *q_jstr(const char *s);
json_object *q_jint(int64_t value);
json_object *q_jtime(int64_t ns);
/* argv words as a JSON array of strings. */
json_object *q_jargv(char *const *argv, size_t argc);

/* A new document {"schema": ..., "command": ...}. */
json_object *q_jdoc(struct query *q);

/* Print a JSON document and free it; returns 0, or 2 when stdout failed. */
int q_emit_json(struct query *q, json_object *doc);

/* Flush stdout; 0, or 2 with a message when writing failed. */
int q_finish_output(struct query *q);

/*
 * The words of an argv column: the recorder's BLOB of NUL-terminated words,
 * or a JSON array of strings (what store/schema.sql describes); other text
 * is one word.  *count words (0 for NULL); free with q_words_free().
 */
char **q_col_argv(sqlite3_stmt *statement, int column, size_t *count);
void q_words_free(char **words, size_t count);

/*
 * Text output fits an 80-column terminal: long lines wrap at spaces onto
 * indented continuation lines.  Only a single word wider than the line (a
 * long path) overflows, alone on its line or after a short label.  Deep
 * trees keep at least Q_MIN_TEXT_WIDTH columns of text a line, past the
 * right edge if need be.
 */
#define Q_TEXT_WIDTH 80
#define Q_MIN_TEXT_WIDTH 32
#define Q_FIELD_WIDTH 12 /* "  recorded    2026-..." */
#define Q_LABEL_WIDTH 16 /* a label this short keeps the over-long word after it */

/* Terminal columns of len bytes of escaped text. */
size_t q_text_width(const char *s, size_t len);
/* Print text (escaped) after first, wrapped; continuation lines start with rest. */
void q_print_wrapped(const char *first, const char *rest, const char *text);
/* The same for Markdown: never breaks where the next line would open a block. */
void q_print_markdown(const char *first, const char *rest, const char *text);
/* q_print_wrapped(), formatted. */
void q_print_wrappedf(const char *first, const char *rest, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "INDENT NAME        value", the value wrapped under itself. */
void q_print_field(const char *indent, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Aligned columns of text cells (escaped already); the last column is not
 * padded.  A table wider than the terminal prints each row on several
 * lines (query_output.c: bands).
 */
struct q_table {
	size_t columns;
	char **cells;
	size_t rows, alloc;
};

void q_table_init(struct q_table *table, size_t columns);
void q_table_add(struct q_table *table, ...); /* exactly `columns` strings */
void q_table_print(struct q_table *table, const char *indent);
void q_table_release(struct q_table *table);

/* A user name for uid, or the number ("alice", "1000"). */
const char *q_user_name(int64_t uid);

/* --- query_model.c: records of the store ----------------------------- */

struct q_file {
	int64_t id;
	char *host;
	char *backing_dir;
	char *path; /* last known path, relative to the mount root */
	int64_t first_seen_ns;
	int64_t removed_ns;
};

struct q_version {
	int64_t id;
	int64_t file_id;
	int64_t number;
	int64_t size;
	int64_t mtime_ns;
	int64_t recorded_ns;
	int64_t producer_id; /* a processes row */
	char *hash;
	char *hash_state;
	char *origin;
	char *label; /* the propagated label the daemon recorded (versions.label) */
	char *path;  /* the file's last known path */
	char *backing_dir;
	char *host;
	/*
	 * The effective label of this version (label_store.h: the highest of its
	 * path rule, explicit label and propagated label, or its declassified
	 * level), NULL when nothing labels it; label_source says which decided:
	 * "rule", "explicit", "propagated" or "declassified" (a string literal).
	 */
	char *effective_label;
	const char *label_source;
};

/* One process image: a processes row. */
struct q_image {
	int64_t id;
	int64_t exec_index;
	int64_t parent_id;
	int64_t previous_id;
	int64_t run_id;
	int64_t uid;
	int64_t gid;
	int64_t seen_ns;
	int64_t exited_ns;
	int64_t exit_status;
	char *executable;
	char *executable_hash;
	char **argv; /* words */
	size_t argc;
	char *cwd;
};

/*
 * A process as the operating system sees it: (host, pid, start) with every
 * image execve() gave it, oldest first.  id is its first image's row, the
 * key provfs-query uses for it.  An open handle stays with the process
 * across execve(), so its images are one activity for lineage.
 */
struct q_process {
	int64_t id;
	char *host;
	int64_t pid;
	int64_t start_ns;
	struct q_image *images;
	size_t image_count;
};

struct q_run {
	int64_t id;
	char *uuid;
	char *job_name;
	char *named_by;
	char *host;
	int64_t root_pid;
	int64_t root_start_ns;
	int64_t started_ns;
	int64_t ended_ns; /* the root's exit; with end_unknown, when a later daemon found it gone */
	bool end_unknown; /* no daemon saw the run end (runs.end_unknown) */
	char *parent_namespace;
	char *parent_job_name;
	char *parent_run_id;
};

/* Each load returns 0, 1 when there is no such row, -1 after printing a store error. */
int q_file_load(struct query *q, int64_t id, struct q_file *file);
void q_file_release(struct q_file *file);
int q_version_load(struct query *q, int64_t id, struct q_version *version);
/* The version numbered number of file_id, or its last one when number is Q_NONE. */
int q_version_find(struct query *q, int64_t file_id, int64_t number, struct q_version *version);
/* The last version recorded at or before at_ns. */
int q_version_at(struct query *q, int64_t file_id, int64_t at_ns, struct q_version *version);
void q_version_release(struct q_version *version);
/* The process of the processes row id (any of its images). */
int q_process_load(struct query *q, int64_t id, struct q_process *process);
void q_process_release(struct q_process *process);
int q_run_load(struct query *q, int64_t id, struct q_run *run);
void q_run_release(struct q_run *run);

/* The image the process ran last (what it "is" now). */
const struct q_image *q_process_last(const struct q_process *process);
/* "PID@START". */
const char *q_process_ref(const struct q_process *process);

json_object *q_file_json(const struct q_file *file);
json_object *q_version_json(const struct q_version *version);
json_object *q_process_json(struct query *q, const struct q_process *process);
json_object *q_run_json(const struct q_run *run);

/* "data/x.csv v3 a1b2c3d4e5f6 12 KiB" */
void q_version_line(struct query *q, struct qbuf *out, const struct q_version *version);
/* "4242@1764216630 python3 train.py --epochs 3" (the last image; execs joined by " -> ") */
void q_process_line(struct query *q, struct qbuf *out, const struct q_process *process);
/* "nightly-etl (run 5f2c...)" */
void q_run_line(struct query *q, struct qbuf *out, const struct q_run *run);

/* --- query_resolve.c ------------------------------------------------- */

struct q_target {
	int64_t file_id;
	char *backing_dir; /* of the mount session the path fell in */
	char *mount_point;
	char *rel; /* the name given, relative to the mount root */
};

/*
 * Resolve a PATH argument to a file of the store (see query_resolve.c).
 * Returns 0; or 1 after saying the path was never seen through provfs;
 * or 2 after an error.  at_ns (or Q_NONE) prefers the name valid then.
 */
int q_resolve(struct query *q, const char *arg, int64_t at_ns, struct q_target *target);
void q_target_release(struct q_target *target);

/*
 * A directory argument (verify --under) as a backing directory and a path
 * prefix relative to its root ("" for the root); 0, or 1/2 as above.
 */
int q_resolve_dir(struct query *q, const char *arg, char **backing_dir, char **prefix);

/*
 * --job NAME (q->job) names a job some run of the store had: 0 (also when no
 * --job was given); 1 after saying no run of it was ever recorded (a
 * negative answer, as a path never seen); 2 after a store error.  A known
 * job with no run in the --since window is not this case: the commands
 * answer it with an empty list.
 */
int q_check_job(struct query *q);

/* --- query_graph.c, for report ------------------------------------- */

/*
 * The lineage of a version (backward, process scope unless --run), for
 * commands that summarize it.  NULL after printing an error.  Nodes are
 * indexed 0..count-1; node 0 is the version itself.
 */
struct q_graph *q_lineage_build(struct query *q, int64_t version_id);
void q_graph_free(struct q_graph *graph);
size_t q_graph_count(const struct q_graph *graph);
/* NULL when node i is a process (resp. a version). */
const struct q_version *q_graph_version(const struct q_graph *graph, size_t i);
const struct q_process *q_graph_process(const struct q_graph *graph, size_t i);
/* The run of process node i, or NULL. */
const struct q_run *q_graph_run(const struct q_graph *graph, size_t i);
/* Version node i has writers in the graph (it is not a source). */
bool q_graph_has_producer(const struct q_graph *graph, size_t i);
bool q_graph_truncated(const struct q_graph *graph);
/* Version node i was only ever executed (a program or script), never read as data. */
bool q_graph_is_code(const struct q_graph *graph, size_t i);
/* Version node i entered from outside: no writer of it read a dataset. */
bool q_graph_is_source(const struct q_graph *graph, size_t i);
/*
 * Impact (forward, process scope unless --run) from several versions, for
 * exposure.  NULL after printing an error.
 */
struct q_graph *q_impact_build(struct query *q, const int64_t *version_ids, size_t count);

/* --- commands -------------------------------------------------------- */

int cmd_producer(struct query *q);
int cmd_history(struct query *q);
int cmd_lineage(struct query *q);
int cmd_impact(struct query *q);
int cmd_verify(struct query *q);
int cmd_runs(struct query *q);
int cmd_run(struct query *q);
int cmd_process(struct query *q);
int cmd_gaps(struct query *q);
int cmd_stats(struct query *q);
int cmd_report(struct query *q);
int cmd_denials(struct query *q);
int cmd_exposure(struct query *q);

/* --- query_labels.c, for gaps ----------------------------------------- */

/*
 * The label sections of gaps: files raised above their path rule by
 * propagation, declassifications, writes down that were allowed.  Adds them
 * to doc (JSON) or prints them (text).  0, or 2 after an error.
 */
int q_gaps_labels(struct query *q, json_object *doc);

/* query_export.c: export, and lineage --format prov-json|prov-o */
int cmd_export(struct query *q);
int cmd_lineage_prov(struct query *q);
/* The outbox counters, into doc (JSON) or printed (doc NULL); -1 after a store error. */
int q_openlineage_stats(struct query *q, json_object *doc);

/* --- query_verify.c, shared with gaps and producer ------------------- */

enum q_disk_state {
	Q_DISK_UNKNOWN, /* not on this host, or not checkable */
	Q_DISK_MATCHES, /* size and mtime as recorded */
	Q_DISK_DIFFERS, /* size or mtime differ: changed since recorded */
	Q_DISK_MISSING, /* no such file in the backing directory */
	Q_DISK_REMOVED, /* removed through provfs, as recorded */
};

/* Cheap check of a file's last version against the backing file (stat only). */
enum q_disk_state q_disk_check(struct query *q, const struct q_file *file,
                               const struct q_version *last);
const char *q_disk_state_name(enum q_disk_state state);

/* --- query_prune.c -------------------------------------------------- */

int cmd_prune(struct query *q);

/* --- query_progress.c: a progress bar on stderr, terminals only ------ */

struct q_progress {
	bool enabled; /* stderr is a terminal */
	bool shown;   /* a bar is on the screen */
	const char *program, *what, *unit;
	int64_t total; /* 0: unknown */
	int64_t done;
	int64_t begin_ns, drawn_ns;
	char detail[32]; /* shown after the rate, e.g. "1.2 GiB, 340 MiB/s" */
};

/* A bar "COMMAND: WHAT [####....] DONE/TOTAL UNIT  RATE/s"; what and unit are kept. */
void q_progress_start(struct query *q, struct q_progress *progress, const char *what,
                      const char *unit, int64_t total);
/* Set the count; redraws at most ten times a second. */
void q_progress_update(struct q_progress *progress, int64_t done);
/* Text shown after the rate from the next redraw on (kept short: 80 columns). */
void q_progress_detail(struct q_progress *progress, const char *detail);
/* Erase the bar. */
void q_progress_end(struct q_progress *progress);
/*
 * open_memstream() that counts the lines written as the progress (a
 * writer of one record a line: OpenLineage events).  *text and *length are
 * set when the stream is closed; the caller frees *text.  NULL when out of
 * memory.
 */
FILE *q_progress_memstream(struct q_progress *progress, char **text, size_t *length);

#endif
