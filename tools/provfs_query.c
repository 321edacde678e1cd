/*
 * provfs_query.c - provfs-query: read the provenance store and answer what
 * produced a file, what it fed, and whether it was changed behind provfs's
 * back.
 *
 * This file parses the command line (getopt_long over the whole argument
 * list, so options may stand before or after the command), checks that every
 * option given applies to the command, finds and opens the store read-only
 * (--store, else [store] path of --config FILE or /etc/provfs/provfs.conf),
 * and dispatches.  The commands live in query_*.c; their contract is in
 * query_i.h.  provfs-query never writes the store: it opens it read-only with
 * PRAGMA query_only, and WAL lets it read while mounts record.
 *
 * Exit status (../shared/INTERFACES.md): 0 success, 1 a negative answer
 * (verify mismatch, a path never seen through provfs), 2 usage,
 * configuration, store or other error, always with one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <langinfo.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "label_store.h"
#include "log.h"
#include "query_i.h"
#include "store.h"

#define PROGRAM "provfs-query"

static const char usage_text[] =
    "usage: provfs-query [--store PATH] [--config FILE] COMMAND [--format FMT] [ARGS]\n"
    "\n"
    "  producer PATH                the process and run that produced PATH\n"
    "  lineage PATH [--depth N] [--at TIME | --version N] [--run]\n"
    "                               everything PATH was derived from\n"
    "  impact [PATH] [--version N | --hash HASH] [--since TIME] [--depth N] [--run]\n"
    "                               everything derived from PATH\n"
    "  history PATH                 every version, rename and link of PATH\n"
    "  verify PATH... | --all [--under DIR]\n"
    "                               rehash files, compare with the last version\n"
    "  runs [--job NAME] [--since TIME]\n"
    "                               runs of jobs\n"
    "  run ID                       what a run read and wrote\n"
    "  process PID[@START]          what a process read and wrote\n"
    "  gaps                         what an auditor must look at\n"
    "  stats                        store size, counts, recorder counters\n"
    "  report PATH                  the provenance section of a model card\n"
    "  prune --before TIME [--keep-audit TIME] [--dry-run]\n"
    "                               remove older records no lineage needs (root)\n"
    "  denials [--since TIME] [--user U] [--path P]\n"
    "                               refused opens, each with its explanation\n"
    "  exposure PATH                who read PATH or data derived from it\n"
    "                               with a clearance below its label\n"
    "  export --format openlineage|prov-json|prov-o [--since TIME] [--job NAME]\n"
    "                               runs as OpenLineage events or a W3C PROV\n"
    "                               document\n"
    "\n"
    "  --format text|json (every command), dot (lineage, impact),\n"
    "           markdown (report, its default), prov-json|prov-o (lineage,\n"
    "           export), openlineage (export)\n"
    "  --run    widens lineage and impact from a process to the rest of its run\n"
    "  --keep-audit  keep denials and declassifications since TIME (default 52w)\n"
    "  --store PATH, --config FILE  the store (default: [store] path of\n"
    "           /etc/provfs/provfs.conf); --help; --version alone: provfs-query's\n"
    "  TIME     ISO 8601 (2026-11-27, 2026-11-27T04:10:30Z; local time without\n"
    "           a zone) or back from now (30s, 30m, 12h, 3d, 2w; now)\n"
    "\n"
    "Exit status: 0 success, 1 negative answer (mismatch, never seen), 2 error.\n";

enum opt_bit {
	OPT_DEPTH = 1 << 0,
	OPT_AT = 1 << 1,
	OPT_VERSION = 1 << 2,
	OPT_HASH = 1 << 3,
	OPT_SINCE = 1 << 4,
	OPT_JOB = 1 << 5,
	OPT_ALL = 1 << 6,
	OPT_UNDER = 1 << 7,
	OPT_RUN = 1 << 8,
	OPT_BEFORE = 1 << 9,
	OPT_KEEP_AUDIT = 1 << 10,
	OPT_DRY_RUN = 1 << 11,
	OPT_USER = 1 << 12,
	OPT_PATH = 1 << 13,
};

enum fmt_bit {
	FMT_TEXT = 1 << Q_FORMAT_TEXT,
	FMT_JSON = 1 << Q_FORMAT_JSON,
	FMT_DOT = 1 << Q_FORMAT_DOT,
	FMT_MARKDOWN = 1 << Q_FORMAT_MARKDOWN,
	FMT_OPENLINEAGE = 1 << Q_FORMAT_OPENLINEAGE,
	FMT_PROV_JSON = 1 << Q_FORMAT_PROV_JSON,
	FMT_PROV_O = 1 << Q_FORMAT_PROV_O,
};

struct command {
	const char *name;
	int (*fn)(struct query *q);
	unsigned options;
	unsigned formats;
	int min_args;
	int max_args; /* -1: any number */
	const char *synopsis;
};

static const struct command commands[] = {
    {"producer", cmd_producer, 0, FMT_TEXT | FMT_JSON, 1, 1, "producer PATH"},
    {"lineage", cmd_lineage, OPT_DEPTH | OPT_AT | OPT_VERSION | OPT_RUN,
     FMT_TEXT | FMT_JSON | FMT_DOT | FMT_PROV_JSON | FMT_PROV_O, 1, 1,
     "lineage PATH [--depth N] [--at TIME | --version N] [--run]"},
    {"impact", cmd_impact, OPT_DEPTH | OPT_VERSION | OPT_HASH | OPT_SINCE | OPT_RUN,
     FMT_TEXT | FMT_JSON | FMT_DOT, 0, 1,
     "impact PATH [--version N | --hash HASH] [--since TIME] [--depth N] [--run]"},
    {"history", cmd_history, 0, FMT_TEXT | FMT_JSON, 1, 1, "history PATH"},
    {"verify", cmd_verify, OPT_ALL | OPT_UNDER, FMT_TEXT | FMT_JSON, 0, -1,
     "verify PATH... | --all [--under DIR]"},
    {"runs", cmd_runs, OPT_JOB | OPT_SINCE, FMT_TEXT | FMT_JSON, 0, 0,
     "runs [--job NAME] [--since TIME]"},
    {"run", cmd_run, 0, FMT_TEXT | FMT_JSON, 1, 1, "run ID"},
    {"process", cmd_process, 0, FMT_TEXT | FMT_JSON, 1, 1, "process PID[@START]"},
    {"gaps", cmd_gaps, 0, FMT_TEXT | FMT_JSON, 0, 0, "gaps"},
    {"stats", cmd_stats, 0, FMT_TEXT | FMT_JSON, 0, 0, "stats"},
    {"report", cmd_report, 0, FMT_TEXT | FMT_JSON | FMT_MARKDOWN, 1, 1,
     "report PATH [--format markdown|json]"},
    {"prune", cmd_prune, OPT_BEFORE | OPT_KEEP_AUDIT | OPT_DRY_RUN, FMT_TEXT | FMT_JSON, 0, 0,
     "prune --before TIME [--keep-audit TIME] [--dry-run]"},
    {"denials", cmd_denials, OPT_SINCE | OPT_USER | OPT_PATH, FMT_TEXT | FMT_JSON, 0, 0,
     "denials [--since TIME] [--user U] [--path P]"},
    {"exposure", cmd_exposure, 0, FMT_TEXT | FMT_JSON, 1, 1, "exposure PATH"},
    {"export", cmd_export, OPT_SINCE | OPT_JOB, FMT_OPENLINEAGE | FMT_PROV_JSON | FMT_PROV_O, 0,
     0, "export --format openlineage|prov-json|prov-o [--since TIME] [--job NAME]"},
};

static const char *const format_names[] = {"text",        "json",      "dot",   "markdown",
					   "openlineage", "prov-json", "prov-o"};

/* --- errors and the statement cache ------------------------------------ */

int
q_error(struct query *q, int status, const char *fmt, ...)
{
	char message[2048];
	struct qbuf line = QBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	/* Messages may quote user input: keep them one safe line. */
	qbuf_init(&line);
	escape_text(&line, message, strlen(message), q ? q->utf8 : false);
	fflush(stdout);
	if (q && q->command)
		fprintf(stderr, PROGRAM ": %s: %s\n", q->command, line.buf);
	else
		fprintf(stderr, PROGRAM ": %s\n", line.buf);
	qbuf_release(&line);
	return status;
}

struct cached_statement {
	const char *sql;
	sqlite3_stmt *statement;
};

static struct cached_statement statement_cache[96];
static size_t statement_count;

sqlite3_stmt *
q_prepare(struct query *q, const char *sql)
{
	sqlite3_stmt *statement;

	for (size_t i = 0; i < statement_count; i++) {
		if (statement_cache[i].sql == sql) {
			statement = statement_cache[i].statement;
			sqlite3_reset(statement);
			sqlite3_clear_bindings(statement);
			return statement;
		}
	}
	if (sqlite3_prepare_v2(q->db, sql, -1, &statement, NULL) != SQLITE_OK) {
		q_store_error(q);
		return NULL;
	}
	if (statement_count < sizeof(statement_cache) / sizeof(statement_cache[0])) {
		statement_cache[statement_count].sql = sql;
		statement_cache[statement_count].statement = statement;
		statement_count++;
	} else {
		/* Cannot happen with the fixed set of queries. */
		q_error(q, 2, "BUG: statement cache full");
		sqlite3_finalize(statement);
		return NULL;
	}
	return statement;
}

static void
statement_cache_clear(void)
{
	for (size_t i = 0; i < statement_count; i++)
		sqlite3_finalize(statement_cache[i].statement);
	statement_count = 0;
}

int
q_step(struct query *q, sqlite3_stmt *statement)
{
	int rc = sqlite3_step(statement);

	if (rc == SQLITE_ROW || rc == SQLITE_DONE)
		return rc;
	q_store_error(q);
	return -1;
}

int
q_store_error(struct query *q)
{
	int code = sqlite3_errcode(q->db);

	if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
		return q_error(q, 2, "store '%s' is corrupt: %s (restore it from a backup)",
		               q->store_path, sqlite3_errmsg(q->db));
	return q_error(q, 2, "cannot read store '%s': %s", q->store_path, sqlite3_errmsg(q->db));
}

/* --- options ------------------------------------------------------------ */

static int
parse_count(const char *text, int64_t min, int64_t max, int64_t *value)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(text, &end, 10);
	if (errno || end == text || *end != '\0' || v < min || v > max)
		return -1;
	*value = v;
	return 0;
}

static const struct command *
find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char *
option_name(unsigned bit)
{
	switch (bit) {
	case OPT_DEPTH:
		return "--depth";
	case OPT_AT:
		return "--at";
	case OPT_VERSION:
		return "--version";
	case OPT_HASH:
		return "--hash";
	case OPT_SINCE:
		return "--since";
	case OPT_JOB:
		return "--job";
	case OPT_ALL:
		return "--all";
	case OPT_UNDER:
		return "--under";
	case OPT_RUN:
		return "--run";
	case OPT_BEFORE:
		return "--before";
	case OPT_KEEP_AUDIT:
		return "--keep-audit";
	case OPT_DRY_RUN:
		return "--dry-run";
	case OPT_USER:
		return "--user";
	case OPT_PATH:
		return "--path";
	}
	return "?";
}

static bool
valid_hash_prefix(const char *s)
{
	size_t n = strlen(s);

	if (n < 6 || n > 32)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void
detect_terminal(struct query *q)
{
	const char *codeset;

	/* Only the character type: numbers and JSON stay in the C locale. */
	setlocale(LC_CTYPE, "");
	codeset = nl_langinfo(CODESET);
	q->utf8 = codeset && (strcmp(codeset, "UTF-8") == 0 || strcmp(codeset, "utf8") == 0);
	q->progress = isatty(STDERR_FILENO);
}

static int
open_store(struct query *q, const char *store_option, const char *config_option, char **store_path,
           bool maintain)
{
	struct provfs_config *config = NULL;
	char error[1024];
	struct stat st;

	if (store_option) {
		*store_path = strdup(store_option);
	} else {
		config = config_load(config_option, error, sizeof(error));
		if (config == NULL)
			return q_error(q, 2, "%s", error);
		*store_path =
		    strdup(config->store_path ? config->store_path : CONFIG_DEFAULT_STORE);
		/* Kept: its path rules and levels decide the labels shown. */
		q->label_config = config;
		q->label_config_tried = true;
	}
	if (*store_path == NULL)
		return q_error(q, 2, "out of memory");
	q->store_path = *store_path;
	/* SQLite would say "disk I/O error" or "unable to open database file". */
	if (stat(*store_path, &st) == 0 && S_ISDIR(st.st_mode))
		return q_error(q, 2, "store '%s' is a directory, not a provfs store", *store_path);
	q->store = store_open(*store_path, maintain ? STORE_MAINTAIN : STORE_READ_ONLY, NULL, error,
	                      sizeof(error));
	if (q->store == NULL)
		return q_error(q, 2, "%s", error);
	q->db = store_db(q->store);
	/* prune writes: it runs its own short transactions (query_prune.c). */
	if (maintain)
		return 0;
	/*
	 * One read transaction for the whole command: every answer comes from
	 * one snapshot even while a mount records, and SQLite neither relocks
	 * nor revalidates its page cache between the many small queries of a
	 * graph walk.  The cache and the memory map cover a store of a few
	 * hundred MB.
	 */
	if (sqlite3_exec(q->db,
	                 "PRAGMA query_only = 1; PRAGMA cache_size = -131072; "
	                 "PRAGMA mmap_size = 1073741824; BEGIN",
	                 NULL, NULL, NULL) != SQLITE_OK)
		return q_store_error(q);
	return 0;
}

/*
 * The TIME text of option name into *ns: 0, or 2 after one line naming the
 * option, the value and what is wrong with it.
 */
static int
time_option(struct query *q, const char *name, const char *text, int64_t *ns)
{
	int rc = query_time_parse(text, q->now_ns, ns);

	if (rc < 0)
		return q_error(q, 2, "%s: '%s' %s", name, text, query_time_strerror(rc));
	return 0;
}

/* prune's TIMEs, and who may prune: one line and exit 2 otherwise. */
static int
prune_arguments(struct query *q, const char *before, const char *keep_audit)
{
	if (before == NULL)
		return q_error(q, 2, "--before TIME is required (usage: provfs-query prune "
		                     "--before TIME [--keep-audit TIME] [--dry-run])");
	if (time_option(q, "--before", before, &q->before_ns))
		return 2;
	if (keep_audit == NULL)
		q->keep_audit_ns = q->now_ns - 365LL * 86400 * 1000000000;
	else if (time_option(q, "--keep-audit", keep_audit, &q->keep_audit_ns))
		return 2;
	if (q->before_ns > q->now_ns)
		return q_error(q, 2, "--before: '%s' is in the future", before);
	if (geteuid() != 0)
		return q_error(q, 2, "only root may prune the store");
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option long_options[] = {
	    {"store", required_argument, NULL, 'S'},  {"config", required_argument, NULL, 'C'},
	    {"format", required_argument, NULL, 'F'}, {"depth", required_argument, NULL, 'd'},
	    {"at", required_argument, NULL, 'a'},     {"version", required_argument, NULL, 'V'},
	    {"hash", required_argument, NULL, 'H'},   {"since", required_argument, NULL, 's'},
	    {"job", required_argument, NULL, 'j'},    {"all", no_argument, NULL, 'A'},
	    {"under", required_argument, NULL, 'u'},  {"run", no_argument, NULL, 'r'},
	    {"help", no_argument, NULL, 'h'},         {"before", required_argument, NULL, 'B'},
	    {"keep-audit", required_argument, NULL, 'K'}, {"dry-run", no_argument, NULL, 'n'},
	    {"user", required_argument, NULL, 'U'},   {"path", required_argument, NULL, 'P'},
	    {NULL, 0, NULL, 0},
	};
	const char *before_option = NULL, *keep_audit_option = NULL;
	struct query q = {0};
	const struct command *command;
	const char *store_option = NULL, *config_option = NULL, *format_option = NULL;
	const char *at_option = NULL, *since_option = NULL;
	char *store_path = NULL, *hash = NULL;
	char bad_option[256] = "";
	unsigned given = 0;
	int64_t value;
	int status = 2, c;

	log_set_program(PROGRAM);
	detect_terminal(&q);
	q.depth = -1;
	q.at_ns = q.version = q.since_ns = q.before_ns = q.keep_audit_ns = Q_NONE;
	q.now_ns = query_time_now();
	if (gethostname(q.host, sizeof(q.host) - 1) < 0)
		q.host[0] = '\0';

	/* "provfs-query --version" alone is the program's version. */
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("provfs-query %s (store schema %d)\n", PROVFS_VERSION, STORE_SCHEMA_VERSION);
		return 0;
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", long_options, NULL)) != -1) {
		switch (c) {
		case 'S':
			store_option = optarg;
			break;
		case 'C':
			config_option = optarg;
			break;
		case 'F':
			format_option = optarg;
			break;
		case 'd':
			given |= OPT_DEPTH;
			if (parse_count(optarg, 0, 1000000, &value) < 0)
				snprintf(bad_option, sizeof(bad_option),
				         "--depth wants a number of steps, not '%s'", optarg);
			q.depth = (int)value;
			break;
		case 'a':
			given |= OPT_AT;
			at_option = optarg;
			break;
		case 'V':
			given |= OPT_VERSION;
			if (parse_count(optarg, 1, INT64_MAX, &q.version) < 0)
				snprintf(bad_option, sizeof(bad_option),
				         "--version wants a version number (1, 2, ...), not '%s'",
				         optarg);
			break;
		case 'H':
			given |= OPT_HASH;
			free(hash);
			hash = strdup(optarg);
			for (char *p = hash; p && *p; p++)
				if (*p >= 'A' && *p <= 'F')
					*p = (char)(*p - 'A' + 'a');
			if (hash && !valid_hash_prefix(hash))
				snprintf(
				    bad_option, sizeof(bad_option),
				    "--hash wants an XXH3-128 hash (32 hex digits, or at least "
				    "the first 6), not '%s'",
				    optarg);
			q.hash = hash;
			break;
		case 's':
			given |= OPT_SINCE;
			since_option = optarg;
			break;
		case 'j':
			given |= OPT_JOB;
			q.job = optarg;
			break;
		case 'A':
			given |= OPT_ALL;
			q.all = true;
			break;
		case 'u':
			given |= OPT_UNDER;
			q.under = optarg;
			break;
		case 'r':
			given |= OPT_RUN;
			q.run_scope = true;
			break;
		case 'B':
			given |= OPT_BEFORE;
			before_option = optarg;
			break;
		case 'K':
			given |= OPT_KEEP_AUDIT;
			keep_audit_option = optarg;
			break;
		case 'n':
			given |= OPT_DRY_RUN;
			q.dry_run = true;
			break;
		case 'U':
			given |= OPT_USER;
			q.user = optarg;
			break;
		case 'P':
			given |= OPT_PATH;
			q.path = optarg;
			break;
		case 'h':
			fputs(usage_text, stdout);
			free(hash);
			return 0;
		case ':':
			snprintf(bad_option, sizeof(bad_option), "option '%s' needs a value",
			         argv[optind - 1]);
			break;
		default:
			if (optopt)
				snprintf(bad_option, sizeof(bad_option), "unknown option '-%c'",
				         optopt);
			else
				snprintf(bad_option, sizeof(bad_option), "unknown option '%s'",
				         argv[optind - 1]);
			break;
		}
	}

	/*
	 * A bad option is one line, wherever it stands: "--store" last took no
	 * value and left no command, but the usage would bury what went wrong.
	 */
	if (optind >= argc && bad_option[0]) {
		q_error(NULL, 2, "%s", bad_option);
		goto out;
	}
	if (optind >= argc) {
		q_error(NULL, 2, "no command given");
		fputs(usage_text, stderr);
		goto out;
	}
	command = find_command(argv[optind]);
	if (command == NULL) {
		q_error(&q, 2, "unknown command '%s' (see provfs-query --help)", argv[optind]);
		goto out;
	}
	q.command = command->name;
	q.config_path = config_option;
	q.args = argv + optind + 1;
	q.nargs = argc - optind - 1;

	if (bad_option[0]) {
		q_error(&q, 2, "%s", bad_option);
		goto out;
	}
	for (unsigned bit = 1; bit <= OPT_PATH; bit <<= 1) {
		if ((given & bit) && !(command->options & bit)) {
			q_error(&q, 2, "option '%s' does not apply (usage: provfs-query %s)",
			        option_name(bit), command->synopsis);
			goto out;
		}
	}
	if (q.nargs < command->min_args ||
	    (command->max_args >= 0 && q.nargs > command->max_args)) {
		q_error(&q, 2, "%s (usage: provfs-query %s)",
		        q.nargs < command->min_args ? "missing argument" : "too many arguments",
		        command->synopsis);
		goto out;
	}
	q.format = command->formats & FMT_MARKDOWN ? Q_FORMAT_MARKDOWN : Q_FORMAT_TEXT;
	if (format_option) {
		size_t i;
		for (i = 0; i < sizeof(format_names) / sizeof(format_names[0]); i++)
			if (strcmp(format_option, format_names[i]) == 0)
				break;
		if (i == sizeof(format_names) / sizeof(format_names[0]) ||
		    !(command->formats & (1u << i))) {
			struct qbuf list = QBUF_INIT;
			qbuf_init(&list);
			for (size_t j = 0; j < sizeof(format_names) / sizeof(format_names[0]); j++)
				if (command->formats & (1u << j))
					qbuf_addf(&list, "%s%s", list.len ? ", " : "",
					          format_names[j]);
			q_error(&q, 2, "unknown format '%s' (expected %s)", format_option,
			        list.buf);
			qbuf_release(&list);
			goto out;
		}
		/* "text" for a report is its Markdown, which reads as text. */
		q.format = i == Q_FORMAT_TEXT && (command->formats & FMT_MARKDOWN)
		               ? Q_FORMAT_MARKDOWN
		               : (enum q_format)i;
	}
	/* export has no default format: a usage error, before the store is opened. */
	if (format_option == NULL && !(command->formats & (FMT_TEXT | FMT_MARKDOWN))) {
		q_error(&q, 2, "--format is required (usage: provfs-query %s)", command->synopsis);
		goto out;
	}
	if ((given & OPT_AT) && (given & OPT_VERSION)) {
		q_error(&q, 2, "--at and --version are mutually exclusive");
		goto out;
	}
	if ((given & OPT_HASH) && (given & OPT_VERSION)) {
		q_error(&q, 2, "--hash and --version are mutually exclusive");
		goto out;
	}
	if (command->fn == cmd_impact && q.nargs == 0 && !(given & OPT_HASH)) {
		q_error(&q, 2, "missing argument (usage: provfs-query %s)", command->synopsis);
		goto out;
	}
	if (command->fn == cmd_verify) {
		if (q.under && !q.all) {
			q_error(&q, 2, "--under needs --all");
			goto out;
		}
		if (q.all && q.nargs > 0) {
			q_error(&q, 2, "give PATH... or --all, not both");
			goto out;
		}
		if (!q.all && q.nargs == 0) {
			q_error(&q, 2, "missing argument (usage: provfs-query %s)",
			        command->synopsis);
			goto out;
		}
	}
	if (at_option && time_option(&q, "--at", at_option, &q.at_ns))
		goto out;
	if (since_option && time_option(&q, "--since", since_option, &q.since_ns))
		goto out;

	if (command->fn == cmd_prune && prune_arguments(&q, before_option, keep_audit_option))
		goto out;
	if (open_store(&q, store_option, config_option, &store_path, command->fn == cmd_prune))
		goto out;
	if (command->fn == cmd_lineage &&
	    (q.format == Q_FORMAT_PROV_JSON || q.format == Q_FORMAT_PROV_O))
		status = cmd_lineage_prov(&q);
	else
		status = command->fn(&q);
	if (status == 0 || status == 1) {
		int flushed = q_finish_output(&q);
		if (flushed)
			status = flushed;
	}
out:
	statement_cache_clear();
	label_store_finish();
	config_free(q.label_config);
	if (q.db)
		sqlite3_exec(q.db, "COMMIT", NULL, NULL, NULL);
	store_close(q.store);
	free(store_path);
	free(hash);
	return status;
}
