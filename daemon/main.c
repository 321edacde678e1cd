/*
 * main.c - the provfs daemon: parse options, check the request, mount, serve.
 *
 * Everything that can be refused is refused before mounting, with one line
 * on stderr and exit status 2, so a failed start never leaves a mount
 * behind.  The order matters: the backing directory is opened before the
 * mount, so that mounting over it in place (BACKING_DIR == MOUNTPOINT) still
 * reaches the tree underneath; threads are started only after daemonizing,
 * because fork() keeps only the calling thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "config.h"
#include "labels.h"
#include "log.h"
#include "openlineage.h"
#include "openlineage_outbox.h"
#include "openlineage_sender.h"
#include "passthrough.h"
#include "recorder.h"
#include "store.h"

#define EXIT_USAGE 2
#define FUSE_SUPER_MAGIC 0x65735546

struct options {
	char *config_path;
	char *store_path;
	int norecord;
	int nopolicy;
	int writeback; /* -o writeback_cache: the kernel's writeback cache, at its price */
	int nopassthrough; /* -o nopassthrough: file data through the daemon, never the kernel */
	int nouring;       /* -o nouring: requests through /dev/fuse, never io_uring */
	int noatime;       /* -o noatime (a FUSE option too): backing atimes left alone */
	char *timeout_text; /* -o timeout=SECONDS: how long the kernel keeps entries */
	/* Access-time words libfuse 3.14 refuses, which fstab lines and
	 * mount(8) pass on: set on the mount once it is made. */
	bool set_atime;               /* atime_attribute replaces the mount's access-time rule */
	unsigned int atime_attribute; /* MOUNT_ATTR_RELATIME (which is 0) or _STRICTATIME */
	int nodiratime;
	int foreground;
	int debug;
	int show_help;
	int show_version;
	int check_config;
	char *paths[2];
	int path_count;
	char *bad_option; /* first unknown command-line option */
};

enum {
	KEY_FOREGROUND,
	KEY_DEBUG,
	KEY_HELP,
	KEY_VERSION,
	KEY_CHECK_CONFIG,
};

#define OPTION(template, field, value) {template, offsetof(struct options, field), value}

static const struct fuse_opt option_table[] = {
	OPTION("config=%s", config_path, 0),
	OPTION("--config=%s", config_path, 0),
	OPTION("--config %s", config_path, 0),
	OPTION("store=%s", store_path, 0),
	OPTION("norecord", norecord, 1),
	OPTION("nopolicy", nopolicy, 1),
	OPTION("writeback_cache", writeback, 1),
	OPTION("nopassthrough", nopassthrough, 1),
	OPTION("nouring", nouring, 1),
	OPTION("timeout=%s", timeout_text, 0),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_DEBUG),
	FUSE_OPT_KEY("debug", KEY_DEBUG),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("--check-config", KEY_CHECK_CONFIG),
	FUSE_OPT_END,
};

static void
print_usage(FILE *out)
{
	fprintf(out,
		"usage: provfs [options] BACKING_DIR MOUNTPOINT [-o OPT[,OPT...]]\n"
		"       provfs --check-config [FILE]\n"
		"\n"
		"Mount BACKING_DIR at MOUNTPOINT (the same directory mounts in place) and\n"
		"record which process read and wrote which file version.\n"
		"\n"
		"options:\n"
		"  -f                 stay in the foreground (log to stderr)\n"
		"  -d, -o debug       debug log; implies -f\n"
		"  -o config=FILE     provfs.conf to use (default %s);\n"
		"                     also --config FILE\n"
		"  -o store=PATH      provenance store (overrides [store] path)\n"
		"  -o norecord        pass through and record nothing\n"
		"  -o nopolicy        record, enforce no labels\n"
		"  -o writeback_cache let the kernel gather writes (faster small writes; changes\n"
		"                     made outside the mount and SEEK_DATA see data late)\n"
		"  -o nopassthrough   no kernel FUSE passthrough: file data goes through the\n"
		"                     daemon (default: passed through where the kernel offers it)\n"
		"  -o nouring         requests through /dev/fuse, not FUSE over io_uring\n"
		"                     (default: io_uring where the kernel offers it, with the\n"
		"                     fuse module's enable_uring on)\n"
		"  -o noatime         as for any mount; the daemon's reads leave the backing\n"
		"                     files' atimes alone too\n"
		"  -o relatime, strictatime, nodiratime (and the other access-time words of\n"
		"                     mount(8)) as for any mount\n"
		"  -o timeout=SECONDS how long the kernel keeps names, attributes and listings\n"
		"                     (default 1; up to 86400): raise it when nothing changes the\n"
		"                     backing directory but the mount (mounted in place)\n"
		"  -o OPT             any other option goes to FUSE (see mount.fuse3(8))\n"
		"  --check-config [FILE]  validate the configuration, print it, mount nothing\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version and the store schema version\n",
		CONFIG_DEFAULT_PATH);
}

static int
process_option(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct options *options = data;

	switch (key) {
	case KEY_FOREGROUND:
		options->foreground = 1;
		return 0;
	case KEY_DEBUG:
		options->debug = 1;
		options->foreground = 1;
		return 0;
	case KEY_HELP:
		options->show_help = 1;
		return 0;
	case KEY_VERSION:
		options->show_version = 1;
		return 0;
	case KEY_CHECK_CONFIG:
		options->check_config = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (options->path_count < 2) {
			options->paths[options->path_count++] = strdup(arg);
			return 0;
		}
		if (!options->bad_option)
			options->bad_option = strdup(arg);
		return 0;
	case FUSE_OPT_KEY_OPT:
		if (arg[0] == '-') {
			if (!options->bad_option)
				options->bad_option = strdup(arg);
			return 0;
		}
		/* FUSE's own, and the backing files' atimes follow (the last word wins). */
		if (strcmp(arg, "noatime") == 0 || strcmp(arg, "atime") == 0) {
			options->noatime = strcmp(arg, "noatime") == 0;
			options->set_atime = false;
			return 1;
		}
		if (strcmp(arg, "relatime") == 0 || strcmp(arg, "nostrictatime") == 0 ||
		    strcmp(arg, "strictatime") == 0 || strcmp(arg, "norelatime") == 0) {
			options->noatime = 0;
			options->set_atime = true;
			options->atime_attribute = strcmp(arg, "relatime") == 0 ||
							   strcmp(arg, "nostrictatime") == 0
						   ? MOUNT_ATTR_RELATIME
						   : MOUNT_ATTR_STRICTATIME;
			return 0;
		}
		if (strcmp(arg, "nodiratime") == 0 || strcmp(arg, "diratime") == 0) {
			options->nodiratime = strcmp(arg, "nodiratime") == 0;
			return 0;
		}
		/* No effect on a FUSE mount: the backing filesystem writes the
		 * timestamps, and Linux 5.15 dropped mandatory locks. */
		if (strcmp(arg, "lazytime") == 0 || strcmp(arg, "nolazytime") == 0 ||
		    strcmp(arg, "mand") == 0 || strcmp(arg, "nomand") == 0)
			return 0;
		return 1; /* a -o option for FUSE */
	}
	return 1;
}

/* The access-time flags libfuse could not take, on the mount just made at mountpoint. */
static int
set_atime_flags(const struct options *options, const char *mountpoint)
{
	struct mount_attr attributes = {0};

	if (options->set_atime) {
		attributes.attr_clr = MOUNT_ATTR__ATIME;
		attributes.attr_set = options->atime_attribute;
	}
	if (options->nodiratime)
		attributes.attr_set |= MOUNT_ATTR_NODIRATIME;
	if (attributes.attr_clr == 0 && attributes.attr_set == 0)
		return 0;
	/* A path walk that ends at the mount's root asks the new mount nothing. */
	if (mount_setattr(AT_FDCWD, mountpoint, AT_SYMLINK_NOFOLLOW, &attributes,
			  sizeof(attributes)) == 0)
		return 0;
	log_error("cannot set the access-time options on '%s': %s", mountpoint, strerror(errno));
	return -1;
}

/*
 * -o timeout=SECONDS: a number from 0 to MAX_TIMEOUT_S, nothing after it.
 * Returns false (and says why) for anything else.
 */
#define MAX_TIMEOUT_S 86400.0 /* a day, as passthrough_ll's cache=always */

static bool
parse_timeout(const char *text, double *seconds)
{
	char *end;

	errno = 0;
	double value = strtod(text, &end);
	if (*text == '\0' || *end != '\0' || errno != 0 || !isfinite(value) || value < 0 ||
	    value > MAX_TIMEOUT_S) {
		log_error("-o timeout=%s: not a number of seconds from 0 to %.0f", text,
			  MAX_TIMEOUT_S);
		return false;
	}
	*seconds = value;
	return true;
}

static char *
resolve_directory(const char *path, const char *role)
{
	struct stat st;
	char *resolved;

	if (stat(path, &st) < 0) {
		if (errno == ENOTCONN)
			log_error("%s '%s' is a stale FUSE mount; run fusermount3 -u '%s'", role,
				  path, path);
		else
			log_error("%s '%s': %s", role, path, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_error("%s '%s' is not a directory", role, path);
		return NULL;
	}
	resolved = realpath(path, NULL);
	if (resolved == NULL)
		log_error("%s '%s': %s", role, path, strerror(errno));
	return resolved;
}

/* Is inner a strict descendant of outer (both canonical)? */
static int
is_inside(const char *inner, const char *outer)
{
	size_t length = strlen(outer);

	if (strcmp(outer, "/") == 0)
		return strcmp(inner, "/") != 0;
	return strncmp(inner, outer, length) == 0 && inner[length] == '/';
}

/*
 * Is a FUSE filesystem (another provfs, say) mounted on path itself?  Every
 * directory inside one has its type, and may be a mount point of its own
 * (xfstests mounts on one); the root of a mount is told by statx.
 */
static bool
fuse_mounted_on(const char *path)
{
	struct statfs filesystem;
	struct statx attributes;

	if (statfs(path, &filesystem) != 0 || filesystem.f_type != FUSE_SUPER_MAGIC)
		return false;
	if (statx(AT_FDCWD, path, AT_NO_AUTOMOUNT, STATX_TYPE, &attributes) == 0 &&
	    (attributes.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT))
		return (attributes.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
	return true; /* cannot tell: refused, as a mount there would hide another */
}

/*
 * Can users other than root reach the backing tree without the mount?
 * True when the directory is not root's own or grants any rights to group
 * or others, and every ancestor lets others pass.
 */
static int
backing_reachable_by_others(const char *backing)
{
	char path[PATH_MAX];
	struct stat st;

	if (stat(backing, &st) < 0)
		return 0;
	if (st.st_uid == 0 && (st.st_mode & 077) == 0)
		return 0;
	snprintf(path, sizeof(path), "%s", backing);
	for (;;) {
		char *slash = strrchr(path, '/');
		if (slash == NULL)
			break;
		if (slash == path)
			slash[1] = '\0';
		else
			*slash = '\0';
		if (stat(path, &st) < 0)
			return 0;
		if (st.st_uid == 0 && (st.st_mode & 011) == 0)
			return 0;
		if (strcmp(path, "/") == 0)
			break;
	}
	return 1;
}

/* Refuse a store inside the backing tree or the mount: it would be exposed. */
static int
check_store_location(const char *store_path, const char *backing, const char *mountpoint)
{
	char directory[PATH_MAX], resolved[PATH_MAX];

	snprintf(directory, sizeof(directory), "%s", store_path);
	char *slash = strrchr(directory, '/');
	if (slash == NULL || store_path[0] != '/') {
		log_error("store path '%s' must be absolute", store_path);
		return -1;
	}
	if (slash == directory)
		slash[1] = '\0';
	else
		*slash = '\0';
	/* The directory may not exist yet: check the nearest existing ancestor. */
	while (realpath(directory, resolved) == NULL) {
		slash = strrchr(directory, '/');
		if (slash == NULL || slash == directory) {
			snprintf(resolved, sizeof(resolved), "/");
			break;
		}
		*slash = '\0';
	}
	bool in_backing = strcmp(resolved, backing) == 0 || is_inside(resolved, backing);
	bool in_mount = strcmp(resolved, mountpoint) == 0 || is_inside(resolved, mountpoint);
	if (in_backing || in_mount) {
		/* Name the tree it is in (both, when the mount is in place). */
		if (in_backing && in_mount && strcmp(backing, mountpoint) != 0)
			log_error("store '%s' is inside the mounted tree; put it outside '%s' and '%s'",
				  store_path, backing, mountpoint);
		else
			log_error("store '%s' is inside the mounted tree; put it outside '%s'",
				  store_path, in_backing ? backing : mountpoint);
		return -1;
	}
	return 0;
}

/* SIGHUP reloads provfs.conf; the handler only wakes the reload thread. */
static struct labels *reload_target;

/*
 * With -o nopolicy there is no policy to reload, but a recording mount's
 * [record] rules are (otherwise the policy's reload thread takes both from
 * the file).  The same file, the same all-or-nothing: a file that fails to
 * load leaves the rules in force.
 */
static struct {
	sem_t requests;
	atomic_bool armed; /* requests initialised: the handler may post */
	atomic_bool stopping;
	bool running;      /* thread started */
	pthread_t thread;
	struct recorder *recorder;
	const char *config_path; /* NULL: the default path */
} record_reload;

static void
on_hangup(int signal_number)
{
	(void)signal_number;
	if (reload_target)
		labels_request_reload(reload_target);
	else if (atomic_load(&record_reload.armed))
		sem_post(&record_reload.requests);
}

static void *
record_reload_main(void *argument)
{
	(void)argument;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-reload");
	for (;;) {
		while (sem_wait(&record_reload.requests) < 0 && errno == EINTR)
			;
		if (atomic_load(&record_reload.stopping))
			break;
		char error[600];
		const char *path = record_reload.config_path ? record_reload.config_path
							     : CONFIG_DEFAULT_PATH;
		struct provfs_config *config =
			config_load(record_reload.config_path, error, sizeof(error));
		if (config == NULL) {
			log_error("reload refused, the [record] rules in force stay: %s", error);
			continue;
		}
		recorder_set_record_rules(record_reload.recorder, config);
		config_free(config);
		log_info("reloaded '%s': [record] rules (-o nopolicy: no label policy)", path);
	}
	return NULL;
}

static void
record_reload_arm(struct recorder *recorder, const char *config_path)
{
	record_reload.recorder = recorder;
	record_reload.config_path = config_path;
	if (sem_init(&record_reload.requests, 0, 0) == 0)
		atomic_store(&record_reload.armed, true);
}

/* After daemonizing: threads do not survive its fork. */
static int
record_reload_start(void)
{
	if (!atomic_load(&record_reload.armed))
		return 0;
	if (pthread_create(&record_reload.thread, NULL, record_reload_main, NULL) != 0)
		return -1;
	record_reload.running = true;
	return 0;
}

static void
record_reload_stop(void)
{
	if (!atomic_load(&record_reload.armed))
		return;
	atomic_store(&record_reload.armed, false); /* the handler posts no more */
	if (record_reload.running) {
		atomic_store(&record_reload.stopping, true);
		sem_post(&record_reload.requests);
		pthread_join(record_reload.thread, NULL);
		record_reload.running = false;
	}
	/* Not destroyed: a SIGHUP that saw it armed may still post it. */
}

/*
 * libfuse's own messages ("unknown option(s)") in provfs's voice.  libfuse
 * may write one line in several calls: gather up to the newline.
 */
static void
log_from_fuse(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static char line[1024];
	static size_t used;
	char *newline;

	vsnprintf(line + used, sizeof(line) - used, fmt, ap);
	used = strlen(line);
	while ((newline = strchr(line, '\n')) != NULL || used == sizeof(line) - 1) {
		if (newline)
			*newline = '\0';
		if (line[0])
			log_message(level <= FUSE_LOG_ERR	? LOG_ERR
				    : level == FUSE_LOG_WARNING ? LOG_WARNING
				    : level == FUSE_LOG_DEBUG	? LOG_DEBUG
								: LOG_INFO,
				    "%s", line);
		size_t rest = newline ? strlen(newline + 1) : 0;
		memmove(line, newline ? newline + 1 : line + used, rest + 1);
		used = rest;
	}
}

/*
 * The daemon holds a descriptor for every inode the kernel remembers: take
 * all the descriptors the hard limit allows, as the native filesystem
 * would not run out where a tree of many files is walked.
 */
static void
raise_file_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
		limit.rlim_cur = limit.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &limit) < 0)
			log_warning("cannot raise the open-file limit: %s", strerror(errno));
	}
}

int
main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct options options = {0};
	struct provfs_config *config = NULL;
	struct fuse_session *session = NULL;
	struct fuse_loop_config *loop_config = NULL;
	struct fs *fs = NULL;
	struct recorder *recorder = NULL;
	struct labels *labels = NULL;
	struct openlineage *lineage = NULL;          /* events the writer spools */
	struct openlineage_sender *lineage_sender = NULL;
	char *backing = NULL, *mountpoint = NULL, *mount_options = NULL;
	char error[600];
	int status = EXIT_USAGE, backing_fd = -1;

	log_set_program("provfs");
	fuse_set_log_func(log_from_fuse);
	if (fuse_opt_parse(&args, &options, option_table, process_option) < 0)
		goto out;
	if (options.show_help) {
		print_usage(stdout);
		status = 0;
		goto out;
	}
	if (options.show_version) {
		printf("provfs %s (store schema %d, libfuse %s)\n", PROVFS_VERSION,
		       STORE_SCHEMA_VERSION, fuse_pkgversion());
		status = 0;
		goto out;
	}
	if (options.bad_option) {
		log_error("unknown option '%s' (see provfs --help)", options.bad_option);
		goto out;
	}
	double timeout = 1.0;
	if (options.timeout_text && !parse_timeout(options.timeout_text, &timeout))
		goto out;
	if (options.check_config) {
		const char *path = options.config_path;
		if (options.path_count > 1) {
			log_error("--check-config takes at most one FILE");
			goto out;
		}
		if (options.path_count == 1)
			path = options.paths[0];
		config = config_load(path, error, sizeof(error));
		if (config == NULL) {
			log_error("%s", error);
			goto out;
		}
		if (options.store_path) {
			free(config->store_path);
			config->store_path = strdup(options.store_path);
		}
		config_print(config, stdout);
		status = 0;
		goto out;
	}
	if (options.path_count < 2) {
		log_error("missing %s (usage: provfs [options] BACKING_DIR MOUNTPOINT)",
			  options.path_count == 0 ? "BACKING_DIR and MOUNTPOINT" : "MOUNTPOINT");
		goto out;
	}
	if (geteuid() != 0) {
		log_error("must run as root (it mounts for every user, with allow_other)");
		goto out;
	}
	log_set_debug(options.debug);

	config = config_load(options.config_path, error, sizeof(error));
	if (config == NULL) {
		log_error("%s", error);
		goto out;
	}
	if (options.store_path) {
		free(config->store_path);
		config->store_path = strdup(options.store_path);
	}

	backing = resolve_directory(options.paths[0], "backing directory");
	if (backing == NULL)
		goto out;
	mountpoint = resolve_directory(options.paths[1], "mount point");
	if (mountpoint == NULL)
		goto out;
	if (is_inside(mountpoint, backing) || is_inside(backing, mountpoint)) {
		log_error("mount point '%s' and backing directory '%s' are nested; use "
			  "separate trees, or the same directory to mount in place",
			  mountpoint, backing);
		goto out;
	}
	if (fuse_mounted_on(mountpoint)) {
		log_error("mount point '%s' is busy: a FUSE filesystem is already mounted there",
			  mountpoint);
		goto out;
	}
	if (!options.norecord && check_store_location(config->store_path, backing, mountpoint))
		goto out;
	if (strcmp(backing, mountpoint) != 0 && backing_reachable_by_others(backing))
		log_warning("backing directory '%s' is reachable by other users outside the "
			    "mount: their direct access bypasses provenance and labels (mount "
			    "in place, or move it under a directory only root may enter)",
			    backing);

	raise_file_limit();
	umask(077);
	backing_fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (backing_fd < 0) {
		log_error("cannot open backing directory '%s': %s", backing, strerror(errno));
		goto out;
	}

	struct fs_options fs_options = {
		.backing_fd = backing_fd,
		.timeout = timeout,
		.writeback = options.writeback,
		.noatime = options.noatime,
		.passthrough = !options.nopassthrough,
		.io_uring = !options.nouring,
		.observer = NULL, /* the recorder attaches once the options are known good */
	};
	fs = fs_new(&fs_options);
	if (fs == NULL) {
		log_error("cannot set up the filesystem: %s", strerror(errno));
		goto out;
	}
	int root_fd = backing_fd; /* owned by fs now; lent to the recorder */
	backing_fd = -1;

	if (fuse_opt_add_arg(&args, "-o") < 0 ||
	    fuse_opt_add_opt(&mount_options, "allow_other,default_permissions,subtype=provfs") < 0 ||
	    fuse_opt_add_opt(&mount_options, "fsname=") < 0 ||
	    fuse_opt_add_opt_escaped(&mount_options, backing) < 0)
		goto out;
	/* fuse_opt_add_opt inserted a comma before the escaped value: join it. */
	char *fsname = strstr(mount_options, "fsname=,");
	if (fsname)
		memmove(fsname + 7, fsname + 8, strlen(fsname + 8) + 1);
	if (fuse_opt_add_arg(&args, mount_options) < 0)
		goto out;
	if (options.debug && fuse_opt_add_arg(&args, "-odebug") < 0)
		goto out;

	session = fuse_session_new(&args, fs_operations(), sizeof(struct fuse_lowlevel_ops), fs);
	if (session == NULL)
		goto out; /* libfuse said why (e.g. an unknown -o option) */

	/* The store only now: a refused option must not leave one behind. */
	bool exposed = strcmp(backing, mountpoint) != 0 && backing_reachable_by_others(backing);
	if (!options.norecord) {
		struct recorder_options recorder_options = {
			.config = config,
			.store_path = config->store_path,
			.backing_dir = backing,
			.mount_point = mountpoint,
			.backing_exposed = exposed,
			.policy = !options.nopolicy,
			.backing_fd = root_fd,
		};
		recorder = recorder_new(&recorder_options, error, sizeof(error));
		if (recorder == NULL) {
			log_error("%s", error);
			goto out;
		}
		fs_set_observer(fs, recorder_observer(recorder));
		if (strcmp(config->openlineage_transport, "none") != 0) {
			lineage = openlineage_new(config, error, sizeof(error));
			if (lineage == NULL) {
				log_error("%s", error);
				goto out;
			}
			openlineage_outbox_enable(lineage);
		}
	}
	/* The label policy goes in front of the recorder (-o norecord: alone). */
	if (!options.nopolicy) {
		struct labels_options labels_options = {
			.config = config,
			.config_path = options.config_path,
			.backing_dir = backing,
			.mount_point = mountpoint,
			.backing_fd = root_fd,
			.store_path = config->store_path,
			.recorder = recorder,
		};
		labels = labels_new(&labels_options, error, sizeof(error));
		if (labels == NULL) {
			log_error("%s", error);
			goto out;
		}
		fs_set_observer(fs, labels_observer(labels));
	}

	if (fuse_set_signal_handlers(session) != 0)
		goto out;
	reload_target = labels;
	if (labels == NULL && recorder)
		record_reload_arm(recorder, options.config_path);
	struct sigaction hangup = {.sa_handler = on_hangup};
	sigemptyset(&hangup.sa_mask);
	hangup.sa_flags = SA_RESTART;
	sigaction(SIGHUP, &hangup, NULL);
	if (fuse_session_mount(session, mountpoint) != 0) {
		log_error("cannot mount on '%s'", mountpoint);
		goto out_signals;
	}
	if (set_atime_flags(&options, mountpoint) != 0)
		goto out_unmount;
	if (fs_attach_session(fs, session) != 0) {
		log_error("cannot set up the FUSE transport");
		goto out_unmount;
	}
	if (fuse_daemonize(options.foreground) != 0)
		goto out_unmount;
	if (!options.foreground)
		log_use_syslog();
	log_info("mounted '%s' on '%s'", backing, mountpoint);
	fs_start_threads(fs); /* after fuse_daemonize: threads do not survive its fork */
	if (recorder && recorder_start(recorder) < 0) {
		log_error("cannot start the recorder threads");
		status = 2;
		goto out_unmount;
	}
	if (labels && labels_start(labels) < 0) {
		log_error("cannot start the label policy");
		status = 2;
		goto out_unmount;
	}
	if (record_reload_start() < 0) {
		log_error("cannot start the reload thread");
		status = 2;
		goto out_unmount;
	}
	if (lineage) {
		lineage_sender = openlineage_sender_start(config, config->store_path, error,
							  sizeof(error));
		if (lineage_sender == NULL) {
			log_error("%s", error);
			status = 2;
			goto out_unmount;
		}
	}

	loop_config = fuse_loop_cfg_create();
	if (loop_config == NULL)
		goto out_unmount;
	fuse_loop_cfg_set_clone_fd(loop_config, 1);
	fuse_loop_cfg_set_max_threads(loop_config, 16);
	status = fuse_session_loop_mt(session, loop_config) < 0 ? 2 : 0;
	log_info("unmounting '%s'", mountpoint);

out_unmount:
	fs_detach_session(fs);
	fuse_session_unmount(session);
out_signals:
	fuse_remove_signal_handlers(session);
out:
	reload_target = NULL;
	record_reload_stop();
	fs_stop_threads(fs); /* the writer watch calls the observers below */
	labels_stop(labels); /* it writes through the recorder: first */
	openlineage_sender_stop(lineage_sender); /* what it did not send stays in the store */
	recorder_stop(recorder); /* flushes everything before the store closes */
	openlineage_outbox_disable();
	openlineage_free(lineage);
	if (loop_config)
		fuse_loop_cfg_destroy(loop_config);
	if (session)
		fuse_session_destroy(session);
	fs_free(fs);
	if (backing_fd >= 0)
		close(backing_fd);
	config_free(config);
	free(mount_options);
	free(backing);
	free(mountpoint);
	free(options.paths[0]);
	free(options.paths[1]);
	free(options.config_path);
	free(options.store_path);
	free(options.bad_option);
	free(options.timeout_text);
	fuse_opt_free_args(&args);
	return status;
}
