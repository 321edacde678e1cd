/*
 * provfs_label.c - provfs-label: set, remove, show and list the
 * classification labels of files in provfs mounts.
 *
 * WHY THROUGH THE MOUNT
 *
 * A label change goes to the running daemon as an extended attribute call on
 * the file itself (setxattr "user.provfs.label", removexattr, setxattr
 * "user.provfs.declassify" = "LEVEL\nREASON"), made with the caller's own
 * credentials.  The daemon checks them (root or admin_group), records the
 * change in the store and enforces it at the next open.  With
 * default_permissions the kernel refuses a user.* attribute change (EACCES)
 * to a caller without write permission on the file, before the daemon sees
 * it; an admin need not be able to write the data it classifies, so
 * provfs-label then makes the same change under system.provfs.label
 * (system.provfs.declassify), names the kernel leaves to the filesystem,
 * where the daemon applies the same check.  So an admin needs
 * no write access to the store, provfs-label needs no privilege of its own,
 * and there is exactly one place that decides: the daemon.  What this
 * program checks beforehand (the level is one the configuration names,
 * --force has a --reason, the path is inside a provfs mount) only gives a
 * better message earlier; it never grants anything.
 *
 * A path outside every provfs mount is refused before any call: setxattr on
 * a backing file would set an ordinary user.* attribute there, which labels
 * nothing.  The mount is the longest mount point above the canonical path in
 * /proc/self/mountinfo (the last one listed when mounts are stacked), and it
 * must have the type fuse.provfs.
 *
 * `list` reads the store (read-only) and provfs.conf instead: see
 * label_store.h for how the effective label is rebuilt from them.
 *
 * Exit status (../shared/INTERFACES.md): 0 success; 1 a negative answer (a
 * label refused: not an admin, a lowering without --force; no explicit label
 * to remove); 2 usage, configuration, store or other error.  Every error is
 * one line: "provfs-label: set: PATH: message".
 */
#include <acl/libacl.h>
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <json-c/json.h>
#include <langinfo.h>
#include <limits.h>
#include <locale.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/acl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "label_store.h"
#include "query_escape.h"
#include "store.h"

#define PROGRAM "provfs-label"
#define XATTR_LABEL "user.provfs.label"
#define XATTR_WHY "user.provfs.label.why"
#define XATTR_DECLASSIFY "user.provfs.declassify"
/* The admin route the kernel does not refuse for lack of write permission. */
#define XATTR_ADMIN_LABEL "system.provfs.label"
#define XATTR_ADMIN_DECLASSIFY "system.provfs.declassify"
#define WHY_MAX 65536

static const char *const usage_lines[] = {
	"usage: provfs-label [--config FILE] [--store PATH] COMMAND [ARGS]",
	"",
	"  set PATH LEVEL [--recursive] [--force --reason TEXT]",
	"                        label PATH (--recursive: every file under the",
	"                        directory PATH; --force: declassify the current",
	"                        version below its label, saying why in TEXT)",
	"  unset PATH            remove PATH's explicit label",
	"  get PATH              PATH's effective label, where it comes from, and its ACL",
	"  list [--under DIR]    the labeled files the store knows, with their labels",
	"",
	"  --config FILE         provfs.conf (default /etc/provfs/provfs.conf)",
	"  --store PATH          the store for list (default: [store] path of the config)",
	"  --help, --version     this text; the program's version",
	"",
	"Labels change through the mount (extended attributes checked by the daemon):",
	"only root and members of [classification] admin_group may change them.",
	"Exit status: 0 success, 1 label refused or nothing to remove, 2 error.",
	NULL,
};

/* Everything a command needs; one per run. */
struct label_cmd {
	const char *name; /* the command, for messages */
	const char *config_path;
	const char *store_path;
	struct provfs_config *config; /* NULL when it could not be read (set/unset/get) */
	char config_error[1024];
	bool utf8;
};

/* --- messages ------------------------------------------------------------- */

static bool stdout_utf8;
/* Appended to the next error (set --recursive: how far it got). */
static char error_suffix[PATH_MAX + 128];

/* One line on stderr, control characters escaped; returns status. */
__attribute__((format(printf, 3, 4))) static int
fail(const struct label_cmd *cmd, int status, const char *fmt, ...)
{
	char message[4096 + sizeof(error_suffix)];
	struct qbuf line = QBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(message, sizeof(message), fmt, ap);
	va_end(ap);
	if (error_suffix[0])
		snprintf(message + strlen(message), sizeof(message) - strlen(message), "%s",
			 error_suffix);
	qbuf_init(&line);
	escape_text(&line, message, strlen(message), stdout_utf8);
	fflush(stdout);
	if (cmd && cmd->name)
		fprintf(stderr, PROGRAM ": %s: %s\n", cmd->name, line.buf);
	else
		fprintf(stderr, PROGRAM ": %s\n", line.buf);
	qbuf_release(&line);
	return status;
}

static void
print_usage(FILE *out)
{
	for (const char *const *line = usage_lines; *line; line++)
		fprintf(out, "%s\n", *line);
}

/* A usage error: one line naming the problem and the synopsis, exit 2. */
static int
usage_error(const struct label_cmd *cmd, const char *synopsis, const char *message)
{
	return fail(cmd, 2, "%s (usage: provfs-label %s)", message, synopsis);
}

/* Print s escaped for the terminal (names may hold any byte). */
static const char *
tx(const char *s)
{
	static struct qbuf ring[8];
	static unsigned next;
	struct qbuf *out = &ring[next++ % 8];

	if (out->buf == NULL)
		qbuf_init(out);
	qbuf_reset(out);
	if (s == NULL)
		s = "-";
	escape_text(out, s, strlen(s), stdout_utf8);
	return out->buf;
}

/* Terminal columns of the first n bytes of escaped text: one a code point. */
static size_t
columns_n(const char *s, size_t n)
{
	size_t width = 0;

	for (size_t i = 0; i < n && s[i]; i++)
		width += ((unsigned char)s[i] & 0xc0) != 0x80;
	return width;
}

static size_t
columns(const char *s)
{
	return columns_n(s, strlen(s));
}

/*
 * Print text after first, wrapped at spaces to 80 columns; continuation
 * lines are indented by indent spaces.  A word wider than a line stands
 * alone on its line.
 */
static void
print_wrapped(const char *first, size_t indent, const char *text)
{
	size_t used = columns(first);
	bool line_start = true;

	fputs(first, stdout);
	while (*text) {
		size_t word = strcspn(text, " "), width = columns_n(text, word);

		if (!line_start && used + 1 + width > 80) {
			printf("\n%*s", (int)indent, "");
			used = indent;
			line_start = true;
		}
		if (!line_start) {
			putchar(' ');
			used++;
		}
		fwrite(text, 1, word, stdout);
		used += width;
		line_start = false;
		text += word;
		while (*text == ' ')
			text++;
	}
	putchar('\n');
}

/* "name:       value", the value wrapped under itself (get's layout). */
static void
print_field(const char *name, const char *value)
{
	char first[32];

	/* "declassified:" is longer than the column: a space still follows it. */
	snprintf(first, sizeof(first), "%-11s ", name);
	print_wrapped(first, 12, value);
}

/* --- configuration ---------------------------------------------------------- */

/*
 * Load the configuration.  An explicit --config that fails is an error; the
 * default one may be unreadable to an admin who is not root (it may be mode
 * 600 for its API key), and set/unset/get then work without it: the daemon
 * decides, only the messages know less.
 */
static int
load_config(struct label_cmd *cmd, bool required)
{
	cmd->config = config_load(cmd->config_path, cmd->config_error, sizeof(cmd->config_error));
	if (cmd->config == NULL && (required || cmd->config_path))
		return fail(cmd, 2, "%s", cmd->config_error);
	return 0;
}

/* "public internal confidential restricted" */
static void
levels_text(const struct provfs_config *config, struct qbuf *out)
{
	for (size_t i = 0; i < config->levels.count; i++)
		qbuf_addf(out, "%s%s", i ? " " : "", config->levels.items[i]);
}

/* Is the caller root or a member of admin_group (as far as the config says)? */
static bool
caller_is_admin(const struct provfs_config *config)
{
	struct group *group;
	gid_t groups[NGROUPS_MAX];
	int count;

	if (geteuid() == 0)
		return true;
	if (config == NULL || config->admin_group == NULL)
		return false;
	group = getgrnam(config->admin_group);
	if (group == NULL)
		return false;
	if (getegid() == group->gr_gid)
		return true;
	count = getgroups(NGROUPS_MAX, groups);
	for (int i = 0; i < count; i++)
		if (groups[i] == group->gr_gid)
			return true;
	return false;
}

static int
not_admin(const struct label_cmd *cmd, const char *path)
{
	if (cmd->config == NULL)
		return fail(cmd, 1, "%s: only root or members of the admin_group may change labels",
			    path);
	if (cmd->config->admin_group == NULL)
		return fail(cmd, 1,
			    "%s: only root may change labels (no admin_group is configured)",
			    path);
	return fail(cmd, 1, "%s: only root or members of admin_group '%s' may change labels",
		    path, cmd->config->admin_group);
}

/*
 * EACCES on a label change comes from the kernel, before the daemon.  On
 * the admin route (system.provfs.*, which the VFS does not check against
 * the file's mode) it means the caller cannot reach the file: no search
 * permission on a directory above it.  A daemon without that route
 * (ENOTSUP there) leaves only user.*, whose change the kernel allows only
 * with write permission on the file (xattr_permission() in the VFS).
 */
static int
kernel_refused(const struct label_cmd *cmd, const char *path, bool admin_route)
{
	if (!caller_is_admin(cmd->config))
		return not_admin(cmd, path);
	if (admin_route)
		return fail(cmd, 1,
			    "%s: permission denied by the kernel: no search permission on a "
			    "directory above it (label it as root, or as an admin who can reach it)",
			    path);
	return fail(cmd, 1,
		    "%s: permission denied by the kernel: the provfs serving it has no admin route "
		    "(system.provfs.label), and changing user.provfs.label needs write permission "
		    "on the file (label it as root, or remount with this provfs)",
		    path);
}

/* --- the mount ------------------------------------------------------------- */

/* Undo mountinfo's octal escapes (\040 space, \011 tab, \012 newline, \134 backslash). */
static void
unescape_mountinfo(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*out++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*out++ = *s;
		}
	}
	*out = '\0';
}

/* Is path (canonical) dir or below it? */
static bool
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);

	if (strcmp(dir, "/") == 0)
		return true;
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

/*
 * The provfs mount that serves canonical: its mount point in mount_point
 * (PATH_MAX bytes).  Returns 0; 1 when the mount above the path is not
 * provfs, with hint (PATH_MAX bytes) set to the path through the mount when
 * canonical lies in a provfs mount's backing directory (the mount's source,
 * as provfs names it) and "" otherwise; -1 when mountinfo cannot be read
 * (errno set).
 */
static int
find_mount(const char *canonical, char *mount_point, char *hint)
{
	FILE *file = fopen("/proc/self/mountinfo", "re");
	char *line = NULL, best[PATH_MAX] = "";
	bool best_is_provfs = false;
	size_t size = 0;

	hint[0] = '\0';
	if (file == NULL)
		return -1;
	while (getline(&line, &size, file) >= 0) {
		char *fields[5], *save = NULL, *word, *separator, fstype[64], source[PATH_MAX];
		int n = 0;

		separator = strstr(line, " - ");
		if (separator == NULL || sscanf(separator + 3, "%63s", fstype) != 1)
			continue;
		if (strcmp(fstype, "fuse.provfs") != 0 ||
		    sscanf(separator + 3, "%*s %4095s", source) != 1)
			source[0] = '\0';
		*separator = '\0';
		for (word = strtok_r(line, " ", &save); word && n < 5;
		     word = strtok_r(NULL, " ", &save))
			fields[n++] = word;
		if (n < 5)
			continue;
		unescape_mountinfo(fields[4]);
		unescape_mountinfo(source);
		if (source[0] == '/' && strcmp(source, fields[4]) != 0 &&
		    path_under(canonical, source)) {
			const char *rest = canonical + strlen(source);
			snprintf(hint, PATH_MAX, "%s%s", fields[4], strcmp(source, "/") ? rest : canonical);
		}
		if (!path_under(canonical, fields[4]) || strlen(fields[4]) < strlen(best))
			continue;
		/* Equal length: a later line is a mount stacked on top. */
		snprintf(best, sizeof(best), "%s", fields[4]);
		best_is_provfs = strcmp(fstype, "fuse.provfs") == 0;
	}
	free(line);
	fclose(file);
	if (!best_is_provfs)
		return 1;
	hint[0] = '\0';
	snprintf(mount_point, PATH_MAX, "%s", best);
	return 0;
}

/*
 * Check that arg names an existing file inside a provfs mount; its
 * canonical path into canonical (PATH_MAX), the mount into mount_point.
 * Returns 0 or the exit status after the message.
 */
static int
locate(const struct label_cmd *cmd, const char *arg, char *canonical, char *mount_point)
{
	char hint[PATH_MAX];
	int rc;

	if (realpath(arg, canonical) == NULL) {
		if (errno == ENOENT || errno == ENOTDIR)
			return fail(cmd, 2, "%s: no such file or directory", arg);
		return fail(cmd, 2, "%s: %s", arg, strerror(errno));
	}
	rc = find_mount(canonical, mount_point, hint);
	if (rc < 0)
		return fail(cmd, 2, "cannot read /proc/self/mountinfo: %s", strerror(errno));
	if (rc > 0 && hint[0])
		return fail(cmd, 2,
			    "%s: not inside a provfs mount: it is in the backing directory of one "
			    "(labels are set through the mount: %s)",
			    arg, hint);
	if (rc > 0)
		return fail(cmd, 2, "%s: not inside a provfs mount", arg);
	return 0;
}

static bool
unsupported(int error)
{
	return error == ENOTSUP || error == EOPNOTSUPP || error == ENODATA;
}

static int
no_label_support(const struct label_cmd *cmd, const char *arg, const char *mount_point)
{
	return fail(cmd, 2,
		    "%s: the provfs serving %s does not support labels (mounted with -o nopolicy, "
		    "or a provfs without labels)",
		    arg, mount_point);
}

/* --- user.provfs.label.why ---------------------------------------------------- */

/* The daemon's explanation of a file's label, parsed; NULL and errno set on failure. */
static json_object *
read_why(const char *path)
{
	char *buffer = malloc(WHY_MAX + 1);
	json_object *why = NULL;
	ssize_t n;

	if (buffer == NULL)
		abort();
	n = getxattr(path, XATTR_WHY, buffer, WHY_MAX);
	if (n >= 0) {
		buffer[n] = '\0';
		why = json_tokener_parse(buffer);
		if (why == NULL || !json_object_is_type(why, json_type_object)) {
			json_object_put(why);
			why = NULL;
			errno = EBADMSG;
		}
	}
	free(buffer);
	return why;
}

static const char *
why_string(json_object *why, const char *key)
{
	json_object *value;

	if (!json_object_object_get_ex(why, key, &value) || value == NULL)
		return NULL;
	if (json_object_is_type(value, json_type_string))
		return json_object_get_string(value);
	return json_object_to_json_string_ext(value, JSON_C_TO_STRING_PLAIN);
}

static void why_from_text(json_object *why, struct qbuf *out);

/* The source in words: "rule GLOB (line 14)", "propagated from raw/a.csv v3 (a1b2c3d4e5f6)" */
static void
why_source_text(json_object *why, struct qbuf *out)
{
	const char *source = why_string(why, "source");

	qbuf_adds(out, source ? source : "unknown");
	if (source && strcmp(source, "rule") == 0 && why_string(why, "rule"))
		qbuf_addf(out, " %s", why_string(why, "rule"));
	if (source && strcmp(source, "propagated") == 0)
		why_from_text(why, out);
}

/* " from raw/a.csv v3 (a1b2c3d4e5f6)" when the file carries a propagated label. */
static void
why_from_text(json_object *why, struct qbuf *out)
{
	json_object *from;

	if (json_object_object_get_ex(why, "propagated_from", &from) &&
	    json_object_is_type(from, json_type_object)) {
		json_object *path, *version, *hash;
		qbuf_adds(out, " from");
		/* Absent facts are null: say nothing rather than "v0". */
		if (json_object_object_get_ex(from, "path", &path) &&
		    json_object_is_type(path, json_type_string))
			qbuf_addf(out, " %s", json_object_get_string(path));
		else
			qbuf_adds(out, " an input not recorded");
		if (json_object_object_get_ex(from, "version", &version) &&
		    json_object_is_type(version, json_type_int))
			qbuf_addf(out, " v%lld", (long long)json_object_get_int64(version));
		if (json_object_object_get_ex(from, "hash", &hash) &&
		    json_object_is_type(hash, json_type_string))
			qbuf_addf(out, " (%.12s)", json_object_get_string(hash));
	}
}

/* --- set ------------------------------------------------------------------------- */

struct set_options {
	const char *level;
	const char *reason; /* with force */
	bool force;
	bool recursive;
};

/* Regular files found under a directory (--recursive). */
static struct {
	char **paths;
	size_t count, alloc;
	dev_t device;
	char *unreadable; /* a directory or file the walk could not read: stop */
} walk;

static int
collect(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_DNR || type == FTW_NS) {
		/* Labeling all but what we cannot see would be half a job. */
		walk.unreadable = strdup(path);
		return 1;
	}
	if (type == FTW_F && S_ISREG(st->st_mode) && st->st_dev == walk.device) {
		if (walk.count == walk.alloc) {
			walk.alloc = walk.alloc ? walk.alloc * 2 : 64;
			walk.paths = realloc(walk.paths, walk.alloc * sizeof(*walk.paths));
			if (walk.paths == NULL)
				abort();
		}
		walk.paths[walk.count] = strdup(path);
		if (walk.paths[walk.count] == NULL)
			abort();
		walk.count++;
	}
	return 0;
}

static int
compare_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Why the daemon refused a label an admin asked for (EPERM): the level is
 * below what the file carries, which only a declassification may do.
 */
static int
explain_refusal(const struct label_cmd *cmd, const char *arg, const struct set_options *o)
{
	json_object *why = read_why(arg);
	struct qbuf source = QBUF_INIT;
	int status;

	qbuf_init(&source);
	if (why)
		why_source_text(why, &source);
	if (o->force)
		status = fail(cmd, 1, "%s: the daemon refused to declassify it to %s%s%s%s", arg,
			      o->level, why ? " (its label: " : "", why ? source.buf : "",
			      why ? ")" : "");
	else if (why && why_string(why, "label") && cmd->config &&
		 label_rank(cmd->config, why_string(why, "label")) >
		     label_rank(cmd->config, o->level))
		status = fail(cmd, 1,
			      "%s: %s is below its label %s (%s); lowering it is a "
			      "declassification: add --force --reason TEXT",
			      arg, o->level, why_string(why, "label"), source.buf);
	else if (why)
		/* Not below: the mount's policy does not count the caller as an admin. */
		status = fail(cmd, 1,
			      "%s: the daemon refused the change: the mount's policy does not let "
			      "this user change labels (is %s the config the mount uses?)",
			      arg, cmd->config && cmd->config->source ? cmd->config->source
								      : "the built-in policy");
	else
		status = fail(cmd, 1,
			      "%s: the daemon refused %s (not an admin of the mount's policy, or "
			      "below the label the file carries: lowering needs --force --reason TEXT)",
			      arg, o->level);
	qbuf_release(&source);
	json_object_put(why);
	return status;
}

/*
 * Label one file: target is the path the call uses (canonical, checked to
 * be in the mount), arg the one messages name.  0 or the exit status after
 * the message.
 */
static int
set_one(const struct label_cmd *cmd, const char *arg, const char *target,
	const char *mount_point, const struct set_options *o)
{
	struct qbuf value = QBUF_INIT;
	int rc, saved;

	qbuf_init(&value);
	if (o->force)
		qbuf_addf(&value, "%s\n%s", o->level, o->reason);
	else
		qbuf_addf(&value, "%s", o->level);
	rc = setxattr(target, o->force ? XATTR_DECLASSIFY : XATTR_LABEL, value.buf, value.len, 0);
	saved = errno;
	if (rc < 0 && saved == EACCES) {
		/* No write permission: the admin route (see the top of this file). */
		rc = setxattr(target, o->force ? XATTR_ADMIN_DECLASSIFY : XATTR_ADMIN_LABEL,
			      value.buf, value.len, 0);
		saved = errno;
		if (rc < 0 && (saved == ENOTSUP || saved == EOPNOTSUPP)) {
			qbuf_release(&value);
			return kernel_refused(cmd, arg, false);
		}
	}
	qbuf_release(&value);
	if (rc == 0)
		return 0;
	switch (saved) {
	case EPERM:
		if (!caller_is_admin(cmd->config))
			return not_admin(cmd, arg);
		return explain_refusal(cmd, arg, o);
	case EACCES:
		return kernel_refused(cmd, arg, true);
	case EINVAL:
		if (cmd->config) {
			struct qbuf levels = QBUF_INIT;
			qbuf_init(&levels);
			levels_text(cmd->config, &levels);
			rc = fail(cmd, 2, "unknown level '%s' for the mount %s (%s names: %s)",
				  o->level, mount_point, cmd->config->source ? cmd->config->source
									  : "the built-in policy",
				  levels.buf);
			qbuf_release(&levels);
			return rc;
		}
		return fail(cmd, 2, "unknown level '%s' for the mount %s", o->level, mount_point);
	case ENOENT:
		return fail(cmd, 2, "%s: no such file or directory", arg);
	default:
		if (unsupported(saved))
			return no_label_support(cmd, arg, mount_point);
		return fail(cmd, 2, "%s: %s", arg, strerror(saved));
	}
}

static int
cmd_set(struct label_cmd *cmd, const char *arg, const struct set_options *o)
{
	char canonical[PATH_MAX], mount_point[PATH_MAX];
	struct stat st;
	int status;

	if (load_config(cmd, false))
		return 2;
	/* A level the configuration does not know: refuse before changing anything. */
	if (cmd->config && label_rank(cmd->config, o->level) < 0) {
		struct qbuf levels = QBUF_INIT;
		qbuf_init(&levels);
		levels_text(cmd->config, &levels);
		status = fail(cmd, 2, "unknown level '%s' (levels: %s)", o->level, levels.buf);
		qbuf_release(&levels);
		return status;
	}
	status = locate(cmd, arg, canonical, mount_point);
	if (status)
		return status;
	if (stat(arg, &st) < 0)
		return fail(cmd, 2, "%s: %s", arg, strerror(errno));
	if (!S_ISDIR(st.st_mode)) {
		if (!S_ISREG(st.st_mode))
			return fail(cmd, 2, "%s: not a regular file (labels belong to files)", arg);
		return set_one(cmd, arg, canonical, mount_point, o);
	}
	if (!o->recursive)
		return fail(cmd, 2,
			    "%s: is a directory (labels belong to files; --recursive labels every "
			    "file under it)",
			    arg);

	/* Collect first, so a walk error changes nothing; never follow a symlink. */
	walk.device = st.st_dev;
	status = nftw(arg, collect, 64, FTW_PHYS | FTW_MOUNT);
	if (status != 0) {
		if (walk.unreadable)
			status = fail(cmd, 2, "%s: cannot read '%s' (nothing was labeled)", arg,
				      walk.unreadable);
		else
			status = fail(cmd, 2, "%s: cannot walk the directory: %s", arg,
				      strerror(errno));
		goto out_walk;
	}
	if (walk.count > 1) /* paths is NULL for an empty walk */
		qsort(walk.paths, walk.count, sizeof(*walk.paths), compare_paths);
	for (size_t i = 0; i < walk.count && status == 0; i++) {
		if (i > 0)
			snprintf(error_suffix, sizeof(error_suffix),
				 " (stopped there: %zu of the %zu files under %s were labeled)", i,
				 walk.count, arg);
		status = set_one(cmd, walk.paths[i], walk.paths[i], mount_point, o);
	}
	error_suffix[0] = '\0';
out_walk:
	for (size_t i = 0; i < walk.count; i++)
		free(walk.paths[i]);
	free(walk.paths);
	free(walk.unreadable);
	return status;
}

/* --- unset ----------------------------------------------------------------------- */

static int
cmd_unset(struct label_cmd *cmd, const char *arg)
{
	char canonical[PATH_MAX], mount_point[PATH_MAX];
	int status, saved;

	if (load_config(cmd, false))
		return 2;
	status = locate(cmd, arg, canonical, mount_point);
	if (status)
		return status;
	if (removexattr(canonical, XATTR_LABEL) == 0)
		return 0;
	saved = errno;
	if (saved == EACCES) {
		/* No write permission: the admin route (see the top of this file). */
		if (removexattr(canonical, XATTR_ADMIN_LABEL) == 0)
			return 0;
		saved = errno;
		if (saved == ENOTSUP || saved == EOPNOTSUPP)
			return kernel_refused(cmd, arg, false);
	}
	if (saved == EPERM)
		return not_admin(cmd, arg);
	if (saved == EACCES)
		return kernel_refused(cmd, arg, true);
	if (saved == ENODATA) {
		/* Both "no explicit label" and "no label support" say ENODATA: ask. */
		char probe[256];
		if (getxattr(arg, XATTR_LABEL, probe, sizeof(probe)) < 0 && unsupported(errno))
			return no_label_support(cmd, arg, mount_point);
		return fail(cmd, 1, "%s: has no explicit label", arg);
	}
	if (unsupported(saved))
		return no_label_support(cmd, arg, mount_point);
	return fail(cmd, 2, "%s: %s", arg, strerror(saved));
}

/* --- get ---------------------------------------------------------------------------- */

/* Print an ACL in libacl's text form, one entry a line after the field name. */
static void
print_acl(const char *field, const char *text)
{
	const char *line = text;
	bool first = true;

	while (line && *line) {
		const char *end = strchr(line, '\n');
		size_t n = end ? (size_t)(end - line) : strlen(line);
		char *entry = strndup(line, n);

		if (entry == NULL)
			abort();
		print_field(first ? field : "", tx(entry));
		free(entry);
		first = false;
		line = end ? end + 1 : NULL;
	}
}

static int
show_acls(const struct label_cmd *cmd, const char *arg, bool is_dir)
{
	acl_t acl;
	char *text;

	acl = acl_get_file(arg, ACL_TYPE_ACCESS);
	if (acl == NULL) {
		if (errno == ENOTSUP || errno == EOPNOTSUPP) {
			print_field("acl:", "(ACLs not supported here)");
			return 0;
		}
		return fail(cmd, 2, "%s: cannot read its ACL: %s", arg, strerror(errno));
	}
	text = acl_to_text(acl, NULL);
	acl_free(acl);
	if (text == NULL)
		return fail(cmd, 2, "%s: cannot print its ACL: %s", arg, strerror(errno));
	print_acl("acl:", text);
	acl_free(text);
	if (!is_dir)
		return 0;
	acl = acl_get_file(arg, ACL_TYPE_DEFAULT);
	if (acl == NULL)
		return 0;
	text = acl_entries(acl) > 0 ? acl_to_text(acl, NULL) : NULL;
	acl_free(acl);
	if (text) {
		print_acl("default:", text);
		acl_free(text);
	}
	return 0;
}

static int
cmd_get(struct label_cmd *cmd, const char *arg)
{
	char canonical[PATH_MAX], mount_point[PATH_MAX];
	json_object *why;
	struct qbuf source = QBUF_INIT;
	struct stat st;
	const char *field;
	int status;

	if (load_config(cmd, false))
		return 2;
	status = locate(cmd, arg, canonical, mount_point);
	if (status)
		return status;
	if (stat(arg, &st) < 0)
		return fail(cmd, 2, "%s: %s", arg, strerror(errno));
	why = read_why(arg);
	if (why == NULL && (errno == EACCES || errno == EPERM)) {
		/*
		 * Where a label comes from names inputs and rules: the daemon
		 * tells only root, admin_group and those cleared for the file.
		 * The level itself is readable by anyone who can see the file.
		 */
		char level[256];
		ssize_t n = getxattr(arg, XATTR_LABEL, level, sizeof(level) - 1);
		if (n < 0)
			return fail(cmd, 2, "%s: cannot read its label: %s", arg, strerror(errno));
		level[n] = '\0';
		print_field("path:", tx(canonical));
		print_field("label:", tx(level));
		print_field("source:",
		       "(shown to root, admin_group and those cleared to read the file)");
		return show_acls(cmd, arg, S_ISDIR(st.st_mode));
	}
	if (why == NULL) {
		if (errno == EBADMSG)
			return fail(cmd, 2, "%s: the daemon's %s is not a JSON object", arg,
				    XATTR_WHY);
		if (unsupported(errno))
			return no_label_support(cmd, arg, mount_point);
		return fail(cmd, 2, "%s: cannot read its label: %s", arg, strerror(errno));
	}
	qbuf_init(&source);
	why_source_text(why, &source);
	print_field("path:", tx(canonical));
	print_field("label:", tx(why_string(why, "label")));
	print_field("source:", tx(source.buf));
	if (strcmp(why_string(why, "source") ? why_string(why, "source") : "", "rule") != 0 &&
	    why_string(why, "rule"))
		print_field("rule:", tx(why_string(why, "rule")));
	if ((field = why_string(why, "explicit")) && strcmp(field, "null") != 0)
		print_field("explicit:", tx(field));
	if ((field = why_string(why, "declassified")) && strcmp(field, "null") != 0)
		print_field("declassified:", tx(field));
	if (strcmp(why_string(why, "source") ? why_string(why, "source") : "", "propagated") != 0) {
		/* A propagated label below the deciding one: still worth knowing. */
		qbuf_reset(&source);
		why_from_text(why, &source);
		if (source.len)
			print_field("propagated:", tx(source.buf + 1));
	}
	qbuf_release(&source);
	json_object_put(why);
	return show_acls(cmd, arg, S_ISDIR(st.st_mode));
}

/* --- list --------------------------------------------------------------------------- */

struct list_row {
	char *level;
	char *path; /* shown: mount point / relative path */
	char *source;
	int rank;
};

static int
compare_rows(const void *a, const void *b)
{
	const struct list_row *x = a, *y = b;

	return strcmp(x->path, y->path);
}

/* The time of a label change in local time, as provfs-query prints times. */
static void
add_local_time(struct qbuf *out, int64_t ns)
{
	time_t seconds = (time_t)(ns / 1000000000);
	struct tm tm;
	char text[64];

	if (ns == LABEL_NONE || localtime_r(&seconds, &tm) == NULL)
		return;
	strftime(text, sizeof(text), "%Y-%m-%d %H:%M", &tm);
	qbuf_addf(out, " %s", text);
}

static const char *
user_name(int64_t uid)
{
	static char number[32];
	struct passwd *pw = uid == LABEL_NONE ? NULL : getpwuid((uid_t)uid);

	if (pw)
		return pw->pw_name;
	snprintf(number, sizeof(number), "%lld", (long long)uid);
	return number;
}

static void
facts_source_text(const struct label_facts *f, struct qbuf *out)
{
	if (strcmp(f->source, "rule") == 0) {
		qbuf_addf(out, "rule %s (line %d)", f->rule->glob, f->rule->line);
	} else if (strcmp(f->source, "explicit") == 0) {
		qbuf_addf(out, "explicit (%s", user_name(f->explicit_uid));
		add_local_time(out, f->explicit_ns);
		qbuf_adds(out, ")");
	} else if (strcmp(f->source, "propagated") == 0) {
		qbuf_addf(out, "propagated from %s v%lld", f->from_path ? f->from_path : "?",
			  (long long)f->from_number);
	} else if (strcmp(f->source, "declassified") == 0) {
		qbuf_addf(out, "declassified v%lld (%s", (long long)f->version_number,
			  user_name(f->declassify_uid));
		add_local_time(out, f->declassify_ns);
		qbuf_addf(out, ": %s)", f->declassify_reason ? f->declassify_reason : "");
	} else {
		qbuf_adds(out, f->source);
	}
}

/*
 * Canonical form of path (PATH_MAX bytes) that need not exist any more (a
 * mount point after unmounting): realpath(3) of its longest existing
 * ancestor, the rest normalized lexically.  -1 with errno set on failure.
 */
static int
canonicalize_missing(const char *path, char *canonical)
{
	char absolute[PATH_MAX], cwd[PATH_MAX];
	struct qbuf rest = QBUF_INIT;
	size_t cut;
	int n;

	if (path[0] == '/')
		n = snprintf(absolute, sizeof(absolute), "%s", path);
	else if (getcwd(cwd, sizeof(cwd)))
		n = snprintf(absolute, sizeof(absolute), "%s/%s", cwd, path);
	else
		return -1;
	if (n < 0 || (size_t)n >= sizeof(absolute)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Drop trailing components until what is left exists. */
	for (cut = strlen(absolute);;) {
		char saved = absolute[cut];
		absolute[cut] = '\0';
		char *resolved = realpath(cut ? absolute : "/", canonical);
		absolute[cut] = saved;
		if (resolved)
			break;
		if (errno != ENOENT && errno != ENOTDIR)
			return -1;
		while (cut > 0 && absolute[cut - 1] != '/')
			cut--;
		while (cut > 0 && absolute[cut - 1] == '/')
			cut--;
	}
	/* Append the missing components, with "." and ".." applied. */
	qbuf_init(&rest);
	qbuf_adds(&rest, strcmp(canonical, "/") == 0 ? "" : canonical);
	for (const char *p = absolute + cut; *p;) {
		const char *end;
		size_t len;
		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		len = (size_t)(end - p);
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(rest.buf, '/');
			rest.len = slash ? (size_t)(slash - rest.buf) : 0;
			rest.buf[rest.len] = '\0';
		} else if (len && !(len == 1 && p[0] == '.')) {
			qbuf_addc(&rest, '/');
			qbuf_add(&rest, p, len);
		}
		p = end;
	}
	n = snprintf(canonical, PATH_MAX, "%s", rest.len ? rest.buf : "/");
	qbuf_release(&rest);
	if ((size_t)n >= PATH_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * --under DIR as a backing directory and a prefix relative to its root, from
 * the mount sessions the store recorded (the directory may be given in the
 * mount or in the backing directory).  0, or the exit status after the message.
 */
static int
resolve_under(const struct label_cmd *cmd, sqlite3 *db, const char *dir, char **backing,
	      char **prefix)
{
	char canonical[PATH_MAX];
	sqlite3_stmt *statement;
	size_t best = 0;
	int rc;

	*backing = *prefix = NULL;
	if (canonicalize_missing(dir, canonical) < 0)
		return fail(cmd, 2, "--under: %s: %s", dir, strerror(errno));
	if (sqlite3_prepare_v2(db,
			       "SELECT backing_dir, mount_point FROM mount_sessions "
			       "ORDER BY started_ns",
			       -1, &statement, NULL) != SQLITE_OK)
		return fail(cmd, 2, "cannot read the store: %s", sqlite3_errmsg(db));
	while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
		for (int column = 0; column < 2; column++) {
			const char *root = (const char *)sqlite3_column_text(statement, column);
			size_t n = root ? strlen(root) : 0;
			if (root == NULL || !path_under(canonical, root) || n < best)
				continue;
			best = n;
			free(*backing);
			free(*prefix);
			*backing = strdup((const char *)sqlite3_column_text(statement, 0));
			*prefix = strdup(strcmp(root, "/") == 0 ? canonical + 1
				  : canonical[n] ? canonical + n + 1 : "");
		}
	}
	sqlite3_finalize(statement);
	if (rc != SQLITE_DONE)
		return fail(cmd, 2, "cannot read the store: %s", sqlite3_errmsg(db));
	if (*backing == NULL)
		return fail(cmd, 2, "--under: %s: not inside a provfs mount the store knows", dir);
	return 0;
}

static int
cmd_list(struct label_cmd *cmd, const char *under)
{
	struct store *store = NULL;
	sqlite3 *db;
	sqlite3_stmt *statement = NULL;
	struct list_row *rows = NULL;
	size_t count = 0, alloc = 0, level_width = 5;
	char error[1024], *backing = NULL, *prefix = NULL;
	const char *store_path;
	int status = 2, rc;

	if (load_config(cmd, true))
		return 2;
	store_path = cmd->store_path ? cmd->store_path
		     : cmd->config->store_path ? cmd->config->store_path
					       : CONFIG_DEFAULT_STORE;
	store = store_open(store_path, STORE_READ_ONLY, NULL, error, sizeof(error));
	if (store == NULL)
		return fail(cmd, 2, "%s", error);
	db = store_db(store);
	if (sqlite3_exec(db, "PRAGMA query_only = 1; BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
		fail(cmd, 2, "cannot read store '%s': %s", store_path, sqlite3_errmsg(db));
		goto out;
	}
	if (under && (status = resolve_under(cmd, db, under, &backing, &prefix)) != 0)
		goto out;
	status = 2;
	/*
	 * Each file with the mount point it was last served at (the most
	 * recent session of its backing directory on its host).
	 */
	if (sqlite3_prepare_v2(
		db,
		"SELECT f.id, f.path, (SELECT m.mount_point FROM mount_sessions m "
		"WHERE m.backing_dir = f.backing_dir AND m.host = f.host "
		"ORDER BY m.started_ns DESC LIMIT 1) "
		"FROM files f WHERE f.removed_ns IS NULL AND (?1 IS NULL OR (f.backing_dir = ?1 AND "
		"(?2 = '' OR f.path = ?2 OR substr(f.path, 1, length(?2) + 1) = ?2 || '/')))",
		-1, &statement, NULL) != SQLITE_OK) {
		fail(cmd, 2, "cannot read store '%s': %s", store_path, sqlite3_errmsg(db));
		goto out;
	}
	if (backing) {
		sqlite3_bind_text(statement, 1, backing, -1, SQLITE_STATIC);
		sqlite3_bind_text(statement, 2, prefix, -1, SQLITE_STATIC);
	}
	while ((rc = sqlite3_step(statement)) == SQLITE_ROW) {
		const char *path = (const char *)sqlite3_column_text(statement, 1);
		const char *mount = (const char *)sqlite3_column_text(statement, 2);
		struct label_facts facts;
		struct qbuf text = QBUF_INIT;

		if (label_facts_load(db, cmd->config, sqlite3_column_int64(statement, 0), path,
				     &facts, error, sizeof(error)) < 0) {
			fail(cmd, 2, "%s", error);
			goto out;
		}
		if (facts.effective) {
			if (count == alloc) {
				alloc = alloc ? alloc * 2 : 64;
				rows = realloc(rows, alloc * sizeof(*rows));
				if (rows == NULL)
					abort();
			}
			qbuf_init(&text);
			facts_source_text(&facts, &text);
			rows[count].source = qbuf_detach(&text);
			qbuf_init(&text);
			if (mount)
				qbuf_addf(&text, "%s%s", strcmp(mount, "/") ? mount : "", "/");
			qbuf_adds(&text, path);
			rows[count].path = qbuf_detach(&text);
			rows[count].level = strdup(facts.effective);
			if (strlen(facts.effective) > level_width)
				level_width = strlen(facts.effective);
			count++;
		}
		label_facts_release(&facts);
	}
	if (rc != SQLITE_DONE) {
		fail(cmd, 2, "cannot read store '%s': %s", store_path, sqlite3_errmsg(db));
		goto out;
	}
	if (count > 1) /* rows is NULL when none */
		qsort(rows, count, sizeof(*rows), compare_rows);
	/*
	 * "LEVEL  PATH  SOURCE" a line while every row fits 80 columns; else
	 * each path on a line of its own and "LEVEL  SOURCE" indented below.
	 */
	bool stacked = false;
	for (size_t i = 0; i < count && !stacked; i++)
		stacked = level_width + 2 + columns(tx(rows[i].path)) + 2 +
			      columns(tx(rows[i].source)) >
			  80;
	for (size_t i = 0; i < count; i++) {
		char first[64];

		if (!stacked) {
			printf("%-*s  %s  %s\n", (int)level_width, tx(rows[i].level),
			       tx(rows[i].path), tx(rows[i].source));
			continue;
		}
		printf("%s\n", tx(rows[i].path));
		snprintf(first, sizeof(first), "    %-*s  ", (int)level_width, tx(rows[i].level));
		print_wrapped(first, 4 + level_width + 2 + 4, tx(rows[i].source));
	}
	status = fflush(stdout) == 0 && !ferror(stdout)
		     ? 0
		     : fail(cmd, 2, "cannot write the output: %s", strerror(errno));
out:
	for (size_t i = 0; i < count; i++) {
		free(rows[i].level);
		free(rows[i].path);
		free(rows[i].source);
	}
	free(rows);
	free(backing);
	free(prefix);
	sqlite3_finalize(statement);
	label_store_finish();
	sqlite3_exec(store_db(store), "COMMIT", NULL, NULL, NULL);
	store_close(store);
	return status;
}

/* --- main ------------------------------------------------------------------------------ */

static const char set_synopsis[] = "set PATH LEVEL [--recursive] [--force --reason TEXT]";
static const char unset_synopsis[] = "unset PATH";
static const char get_synopsis[] = "get PATH";
static const char list_synopsis[] = "list [--under DIR]";

/*
 * The options of one command, after it: getopt_long over argv[0..argc),
 * where argv[0] is the command.  Returns 0 or an exit status.
 */
static int
command_options(struct label_cmd *cmd, int argc, char **argv, const char *synopsis,
		struct set_options *set, const char **under, char ***args, int *nargs)
{
	static const struct option options[] = {
		{"recursive", no_argument, NULL, 'R'}, {"force", no_argument, NULL, 'f'},
		{"reason", required_argument, NULL, 'r'}, {"under", required_argument, NULL, 'u'},
		{"help", no_argument, NULL, 'h'},      {NULL, 0, NULL, 0},
	};
	char message[512];
	int c;

	optind = 0; /* GNU: restart, allowing options after the operands */
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":hRf", options, NULL)) != -1) {
		bool applies = true;

		switch (c) {
		case 'R':
			applies = set != NULL;
			if (set)
				set->recursive = true;
			break;
		case 'f':
			applies = set != NULL;
			if (set)
				set->force = true;
			break;
		case 'r':
			applies = set != NULL;
			if (set)
				set->reason = optarg;
			break;
		case 'u':
			applies = under != NULL;
			if (under)
				*under = optarg;
			break;
		case 'h':
			printf("usage: provfs-label %s\n", synopsis);
			return -1;
		case ':':
			snprintf(message, sizeof(message), "option '%s' needs a value",
				 argv[optind - 1]);
			return usage_error(cmd, synopsis, message);
		default:
			snprintf(message, sizeof(message), "unknown option '%s'", argv[optind - 1]);
			return usage_error(cmd, synopsis, message);
		}
		if (!applies) {
			snprintf(message, sizeof(message), "option '%s' does not apply to %s",
				 argv[optind - 1], cmd->name);
			return usage_error(cmd, synopsis, message);
		}
	}
	*args = argv + optind;
	*nargs = argc - optind;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option global_options[] = {
		{"config", required_argument, NULL, 'C'}, {"store", required_argument, NULL, 'S'},
		{"help", no_argument, NULL, 'h'},	   {"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct label_cmd cmd = {0};
	struct set_options set = {0};
	const char *under = NULL, *codeset;
	char **args;
	int nargs, c, status = 2;

	setlocale(LC_CTYPE, "");
	codeset = nl_langinfo(CODESET);
	stdout_utf8 = codeset && strcmp(codeset, "UTF-8") == 0;

	/* Global options stop at the command ('+'): its own options follow it. */
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:h", global_options, NULL)) != -1) {
		switch (c) {
		case 'C':
			cmd.config_path = optarg;
			break;
		case 'S':
			cmd.store_path = optarg;
			break;
		case 'h':
			print_usage(stdout);
			return 0;
		case 'V':
			printf("provfs-label %s\n", PROVFS_VERSION);
			return 0;
		/* One line, as after the command: the usage would bury it. */
		case ':':
			return fail(NULL, 2, "option '%s' needs a value", argv[optind - 1]);
		default:
			return fail(NULL, 2, "unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		fail(NULL, 2, "no command given");
		print_usage(stderr);
		return 2;
	}
	cmd.name = argv[optind];
	argc -= optind;
	argv += optind;

	if (strcmp(cmd.name, "set") == 0) {
		status = command_options(&cmd, argc, argv, set_synopsis, &set, NULL, &args, &nargs);
		if (status)
			goto out;
		if (nargs != 2) {
			status = usage_error(&cmd, set_synopsis,
					     nargs < 2 ? "missing argument" : "too many arguments");
			goto out;
		}
		set.level = args[1];
		if (set.force && (set.reason == NULL || set.reason[0] == '\0')) {
			status = usage_error(&cmd, set_synopsis,
					     "--force needs --reason TEXT (a declassification is "
					     "recorded with who, when and why)");
			goto out;
		}
		if (set.reason && !set.force) {
			status = usage_error(&cmd, set_synopsis,
					     "--reason applies only to --force");
			goto out;
		}
		if (set.reason && strpbrk(set.reason, "\n\r")) {
			status = usage_error(&cmd, set_synopsis, "--reason must be one line");
			goto out;
		}
		if (set.level[0] == '\0' || strpbrk(set.level, " \t\n\r")) {
			status = fail(&cmd, 2, "'%s' is not a level name", set.level);
			goto out;
		}
		status = cmd_set(&cmd, args[0], &set);
	} else if (strcmp(cmd.name, "unset") == 0 || strcmp(cmd.name, "get") == 0) {
		const char *synopsis = cmd.name[0] == 'u' ? unset_synopsis : get_synopsis;
		status = command_options(&cmd, argc, argv, synopsis, NULL, NULL, &args, &nargs);
		if (status)
			goto out;
		if (nargs != 1) {
			status = usage_error(&cmd, synopsis,
					     nargs < 1 ? "missing argument" : "too many arguments");
			goto out;
		}
		status = cmd.name[0] == 'u' ? cmd_unset(&cmd, args[0]) : cmd_get(&cmd, args[0]);
	} else if (strcmp(cmd.name, "list") == 0) {
		status =
		    command_options(&cmd, argc, argv, list_synopsis, NULL, &under, &args, &nargs);
		if (status)
			goto out;
		if (nargs != 0) {
			status = usage_error(&cmd, list_synopsis, "too many arguments");
			goto out;
		}
		status = cmd_list(&cmd, under);
	} else {
		const char *name = cmd.name;
		cmd.name = NULL;
		status = fail(&cmd, 2, "unknown command '%s' (see provfs-label --help)", name);
	}
out:
	if (status < 0)
		status = 0; /* --help after a command */
	else if (status == 0 && fflush(stdout) != 0)
		status = fail(&cmd, 2, "cannot write the output: %s", strerror(errno));
	config_free(cmd.config);
	return status;
}
