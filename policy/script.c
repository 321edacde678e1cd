/*
 * script.c - the rules of a script: grant: which process runs the script.
 *
 * One function, policy_script_fails(), for the two that judge by these
 * rules: the daemon's decision at open (policy.c, with the facts the
 * process table read from the kernel) and provfs-query exposure (with the
 * facts the store recorded of a past process, tools/label_store.c).  Pure
 * logic over strings and fact bits: no I/O, no state, no allocation.
 *
 * A script: condition holds for an interpreter running the script, and for
 * nothing else that names it.  Three facts, all from the kernel or from
 * the process's first words, decide it:
 *
 *   the executable (the kernel's /proc/PID/exe, not argv[0]) is a known
 *   interpreter by its base name, a version suffix allowed ("python3.11",
 *   "perl5.36.0", "lua5.4"; Python's free-threaded build "python3.13t"):
 *   an editor, a pager, a debugger or the user's own program given the
 *   script as argv[1] would read whatever it is told to afterwards;
 *
 *   its inode is owned by root and writable by no group and no other user
 *   (PROCESS_EXECUTABLE_*, from the statx of the pinned inode): a copy of
 *   python3 in the user's home is the user's program;
 *
 *   the interpreter runs nothing of the user's before the script: its
 *   arguments up to the script are options known to be safe, and those
 *   that keep the interpreter's own startup hooks shut are there.  Python
 *   runs .pth files and usercustomize.py from the user's site directory
 *   unless -I, -s or -S is given (or PYTHONNOUSERSITE, which -E and -I
 *   ignore), and a virtual environment's site-packages (-I or not) when
 *   argv[0] leads it to a pyvenv.cfg (PROCESS_ARGV0_UNTRUSTED: the process
 *   table checks where argv[0] leads); zsh reads ~/.zshenv unless -f is
 *   given.  The other shells, Perl, Ruby, Node.js, Lua and Tcl read no user
 *   file before a script they are given as their first argument (their
 *   environment variables that would, PROCESS_INJECTION_SCRIPT, refuse the
 *   grant in policy.c), so for them the script must be argv[1], with no
 *   option before it.
 *
 * An option taking an argument (-W ARG, -X OPT, also stuck on: -Wignore)
 * consumes the word after it; clusters (-Is, -sBu) are read letter by
 * letter, as CPython's getopt reads them.
 */
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "policy.h"
#include "process_table.h"

/* What policy_script_fails() reads of one process. */
struct script_process {
	const char *executable;
	const char *argv;
	size_t argv_length;
	const char *cwd;
	unsigned int facts;
};

enum interpreter_kind {
	INTERPRETER_NONE,
	INTERPRETER_PLAIN, /* the script is argv[1] */
	INTERPRETER_PYTHON,
	INTERPRETER_ZSH,
};

static const struct interpreter {
	const char *name;
	enum interpreter_kind kind;
} interpreters[] = {
	{"python", INTERPRETER_PYTHON}, {"perl", INTERPRETER_PLAIN},  {"ruby", INTERPRETER_PLAIN},
	{"node", INTERPRETER_PLAIN},    {"nodejs", INTERPRETER_PLAIN}, {"bash", INTERPRETER_PLAIN},
	{"sh", INTERPRETER_PLAIN},      {"dash", INTERPRETER_PLAIN},   {"ksh", INTERPRETER_PLAIN},
	{"mksh", INTERPRETER_PLAIN},    {"zsh", INTERPRETER_ZSH},      {"lua", INTERPRETER_PLAIN},
	{"luajit", INTERPRETER_PLAIN},  {"tclsh", INTERPRETER_PLAIN},
};

/*
 * Which interpreter executable is, by its base name and a version suffix
 * of digits and dots.  Python's free-threaded build adds a 't' to its
 * version ("python3.13t", "python3t"): the same interpreter, the same
 * startup, so the same rules.
 */
static enum interpreter_kind
interpreter_of(const char *executable)
{
	const char *name = strrchr(executable, '/');

	name = name ? name + 1 : executable;
	for (size_t i = 0; i < sizeof(interpreters) / sizeof(interpreters[0]); i++) {
		size_t length = strlen(interpreters[i].name);
		if (strncmp(name, interpreters[i].name, length) != 0)
			continue;
		size_t version = strspn(name + length, "0123456789.");
		const char *end = name + length + version;
		if (interpreters[i].kind == INTERPRETER_PYTHON && version > 0 &&
		    end[-1] != '.' && end[0] == 't')
			end++;
		if (*end == '\0')
			return interpreters[i].kind;
	}
	return INTERPRETER_NONE;
}

/* Is argument, a word of argv, the script at path (relative to the cwd)? */
static bool
argument_is_script(const struct script_process *process, const char *argument, const char *path)
{
	if (argument[0] == '/')
		return strcmp(argument, path) == 0;
	if (process->cwd == NULL || argument[0] == '\0')
		return false;
	/* A relative argument: cwd/argument, with a leading "./" dropped. */
	while (argument[0] == '.' && argument[1] == '/')
		argument += 2;
	size_t cwd_length = strlen(process->cwd);
	if (strcmp(process->cwd, "/") == 0)
		cwd_length = 0;
	return strncmp(path, process->cwd, cwd_length) == 0 && path[cwd_length] == '/' &&
	       strcmp(path + cwd_length + 1, argument) == 0;
}

/* argv as words: the count, and up to max words in words (the rest cut). */
static size_t
argv_words(const struct script_process *process, const char **words, size_t max)
{
	size_t count = 0;

	for (size_t offset = 0; process->argv && offset < process->argv_length && count < max;) {
		const char *word = process->argv + offset;
		size_t length = strnlen(word, process->argv_length - offset);
		if (offset + length >= process->argv_length)
			break; /* not NUL-terminated: a cut word is no word */
		words[count++] = word;
		offset += length + 1;
	}
	return count;
}

#define SCRIPT_WORDS 64 /* argv words looked at: options before the script and the script */

static const char *const python_safe_x_options[] = {
	"dev",          "faulthandler",       "showrefcount",          "tracemalloc",
	"importtime",   "utf8",               "warn_default_encoding", "int_max_str_digits",
	"no_debug_ranges", "frozen_modules",  "perf",                  "perf_jit",
	"cpu_count",    "gil",                "context_aware_warnings", "thread_inherit_context",
	"disable_remote_debug",
};

/*
 * -X OPT: safe when OPT (up to '=') is a known option that loads no code.
 * Not: pycache_prefix=DIR (bytecode for every import from DIR), presite=MOD
 * (imports MOD first), and any name Python does not know, which it keeps
 * in sys._xoptions for whoever asks.
 */
static bool
python_x_option_safe(const char *option)
{
	size_t length = strcspn(option, "=");

	for (size_t i = 0; i < sizeof(python_safe_x_options) / sizeof(python_safe_x_options[0]); i++)
		if (strlen(python_safe_x_options[i]) == length &&
		    strncmp(option, python_safe_x_options[i], length) == 0)
			return true;
	return false;
}

/*
 * -W ACTION:MESSAGE:CATEGORY:MODULE:LINENO: a category with a dot names a
 * module, which Python imports to find it; a bare name is a built-in.
 */
static bool
python_w_option_safe(const char *filter)
{
	const char *category = strchr(filter, ':');

	if (category == NULL || (category = strchr(category + 1, ':')) == NULL)
		return true;
	category++;
	size_t length = strcspn(category, ":");
	return memchr(category, '.', length) == NULL;
}

static const char python_user_site[] =
    "python without -I or -s runs the user's site-packages first: run python3 -I SCRIPT";

/*
 * Python's command line, as CPython's getopt reads it ("bBc:dEhiIm:OPqRsS
 * tuvVW:xX:?" and --check-hash-based-pycs ARG): the index of the script
 * in words, or -1 with why not in *reason.
 *
 * Python computes its own path from argv[0] (that path when it has a
 * slash, else the first match on PATH), not from /proc/self/exe, and looks
 * for a virtual environment's pyvenv.cfg beside it and one directory up: a
 * symlink ~/venv/bin/python3 to the system's python runs the .pth files of
 * the venv's site-packages, -I or not.  Where argv[0] leads is judged by
 * the process table once per image, against a few root-owned directories
 * fixed at start: PROCESS_ARGV0_UNTRUSTED (process_table.h).
 */
static int
python_script(const struct script_process *process, const char **words, size_t count,
              const char **reason)
{
	bool no_user_site = false, ignore_environment = false;
	const char *unsafe = NULL;
	size_t i;

	*reason = "not running this script";
	if (count == 0)
		return -1;
	for (i = 1; i < count; i++) {
		const char *word = words[i];
		if (word[0] != '-' || word[1] == '\0')
			break; /* the script, or "-": stdin */
		if (strcmp(word, "--") == 0) {
			i++;
			break;
		}
		if (word[1] == '-') {
			if (strcmp(word, "--check-hash-based-pycs") != 0)
				return -1; /* --help, --version ...: no script runs */
			i++;
			continue;
		}
		for (const char *letter = word + 1; *letter; letter++) {
			const char *argument = NULL;
			if (strchr("cmWX", *letter)) {
				argument = letter[1] ? letter + 1 : i + 1 < count ? words[++i] : NULL;
				if (argument == NULL)
					return -1; /* Python refuses to start */
			}
			switch (*letter) {
			case 'I':
				ignore_environment = no_user_site = true;
				break;
			case 's':
			case 'S':
				no_user_site = true;
				break;
			case 'E':
				ignore_environment = true;
				break;
			case 'b':
			case 'B':
			case 'd':
			case 'O':
			case 'P':
			case 'q':
			case 'R':
			case 't':
			case 'u':
			case 'v':
			case 'x':
				break;
			case 'W':
				if (!python_w_option_safe(argument) && unsafe == NULL)
					unsafe = "python -W with a module's warning category "
					         "imports that module first";
				break;
			case 'X':
				if (!python_x_option_safe(argument) && unsafe == NULL)
					unsafe = "python -X option not known to be safe";
				break;
			case 'i':
				if (unsafe == NULL)
					unsafe = "python -i opens a prompt after the script";
				break;
			default: /* -c, -m: not a script; -h, -V: nothing runs */
				return -1;
			}
			if (argument)
				break; /* the rest of the word was the argument */
		}
	}
	if (unsafe) {
		*reason = unsafe;
	} else if (process->facts & PROCESS_ARGV0_UNTRUSTED) {
		*reason = "python named outside its own directory may start a virtual environment's "
		          "site-packages first: run /usr/bin/python3 -I SCRIPT";
	} else if (!no_user_site &&
	           (ignore_environment || !(process->facts & PROCESS_PYTHON_NO_USER_SITE))) {
		*reason = python_user_site;
	} else {
		*reason = NULL;
	}
	return i < count ? (int)i : -1;
}

const char *
policy_script_fails(const char *executable, const char *argv, size_t argv_length,
                    const char *cwd, unsigned int facts, const char *path)
{
	const struct script_process process = {executable, argv, argv_length, cwd, facts};
	const char *words[SCRIPT_WORDS];
	size_t count = argv_words(&process, words, SCRIPT_WORDS);
	const char *reason = NULL;
	int script = -1;

	if (executable == NULL)
		return "executable unknown";
	switch (interpreter_of(executable)) {
	case INTERPRETER_NONE:
		for (size_t i = 1; i < count; i++)
			if (argument_is_script(&process, words[i], path))
				return "executable is not a script interpreter";
		return "not running this script";
	case INTERPRETER_PLAIN:
		script = count > 1 && words[1][0] != '-' ? 1 : -1;
		break;
	case INTERPRETER_ZSH:
		if (count > 2 && (strcmp(words[1], "-f") == 0 || strcmp(words[1], "--no-rcs") == 0)) {
			script = 2;
		} else if (count > 1 && words[1][0] != '-') {
			script = 1;
			reason = "zsh without -f runs the user's ~/.zshenv first: run zsh -f SCRIPT";
		}
		break;
	case INTERPRETER_PYTHON:
		script = python_script(&process, words, count, &reason);
		break;
	}
	if (script < 0 || !argument_is_script(&process, words[script], path))
		return "not running this script";
	if (facts & PROCESS_EXECUTABLE_UNKNOWN)
		return "interpreter's owner and mode unknown";
	if (facts & PROCESS_EXECUTABLE_NOT_ROOT)
		return "interpreter not owned by root";
	if (facts & PROCESS_EXECUTABLE_SHARED_WRITABLE)
		return "interpreter writable by group or others";
	return reason;
}

bool
policy_python_argv0_in_place(const char *executable, const char *argv0, const char *cwd)
{
	const char *slash = strrchr(argv0, '/');
	const char *executable_slash = executable ? strrchr(executable, '/') : NULL;

	if (slash == NULL || executable_slash == NULL)
		return false;
	size_t directory_length = (size_t)(executable_slash - executable);
	if (argv0[0] == '/')
		return (size_t)(slash - argv0) == directory_length &&
		       strncmp(argv0, executable, directory_length) == 0;
	/* Relative: cwd/argv0's directory, with leading "./" dropped. */
	if (cwd == NULL)
		return false;
	while (argv0[0] == '.' && argv0[1] == '/')
		argv0 += 2;
	slash = strrchr(argv0, '/');
	size_t cwd_length = strcmp(cwd, "/") == 0 ? 0 : strlen(cwd);
	size_t rest = slash ? (size_t)(slash - argv0) : 0; /* "dir" of "dir/python3" */
	if (strncmp(executable, cwd, cwd_length) != 0)
		return false;
	if (rest == 0)
		return directory_length == cwd_length;
	return directory_length == cwd_length + 1 + rest && executable[cwd_length] == '/' &&
	       strncmp(executable + cwd_length + 1, argv0, rest) == 0;
}
