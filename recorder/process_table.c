/*
 * process_table.c - process identity from /proc, kept current by the
 * kernel's process connector.
 *
 * DESIGN
 *
 * The table maps a pid to its current image (struct process_info).  A
 * lookup that misses reads /proc/PID once: stat (parent, session, start
 * ticks), cmdline, exe, cwd, cgroup, status (a tracer) and the environment
 * (the variables that name a run or inject code).  Parents are looked up
 * the same way, so every image links to the chain above it and a pipeline
 * is one tree.
 *
 * No lock is held while /proc is read.  A lookup takes the lock to find
 * the entry, notes what it saw (a build plan), drops the lock, reads /proc,
 * and takes the lock again to publish.  Reading /proc may wait (a process's
 * cmdline, environ and maps take its mmap lock, which a page fault on this
 * very mount may hold, or the process itself, at will), so a lock held
 * there could stall every request or, when the wait is on a FUSE request,
 * deadlock the mount; and those three are read on the memory reader
 * (proc_reader.h), which a request leaves after a deadline.  Two threads that
 * build the same image both succeed; the first to publish wins and the
 * other frees its copy and returns the winner's.
 *
 * Nothing that may call into a filesystem is opened on a request thread or
 * by the connector's reader: the executed file is pinned with an O_PATH
 * open of /proc/PID/exe and statx(AT_STATX_DONT_SYNC), neither of which
 * reaches the filesystem, and the executable thread of this table turns
 * the pin into a readable descriptor later: from the backing tree when the
 * file is in this mount (checked to be the same inode), never through a
 * FUSE or stacked filesystem (an overlayfs whose lower layer is this mount
 * would send its open back to us).  The hash is then computed by the
 * hash_executable hook (the recorder's pool), which reports the verdict
 * back with process_table_executable_hashed().  One look at a name is
 * made on the reading thread, for a Python image only and only while the
 * policy has a program grant: the file argv[0] names, looked up beneath
 * one of the few root-owned directories fixed when the table was made
 * (process_argv0_trust()); no directory a process names is ever walked.
 *
 * The process connector (netlink) tells the table about execs, exits and
 * ptrace attaches.  Its events only mark entries, under the lock:
 *   - EXEC of a known pid counts a pending exec; the next lookup of the
 *     pid, or the watcher thread soon after, builds the new image
 *     (exec_index + the execs counted, previous = the old image);
 *   - EXIT of a known thread-group leader drops the entry and reports the
 *     exit status (for the image a build in progress is about to publish,
 *     when there is one);
 *   - PTRACE attach marks the image traced for good: a grant refused to a
 *     traced process does not come back when the tracer detaches.
 *   - an overflow of the socket (ENOBUFS: events lost) drops every exec
 *     record and marks every entry to be read again (events_lost()): the
 *     same program keeps its image's identity, but its facts are read
 *     anew and it counts as not seen at exec; exits are found by sweep().
 * Each EXEC is also noted in the exec records (FACTS FROM EXEC TIME in
 * process_table.h), for any pid, and queued for the watcher, which reads
 * the new image's stat, cmdline and environ at once, before anything else
 * it does; a lookup that finds the record still pending makes it from its
 * own reads.  read_image() holds the image to the record (held_to_exec()).
 * Request threads that drain the connector only note: they never read
 * /proc for an exec of another process.
 *
 * An open with the exec flag means an execve is in progress for that pid:
 * the next lookup makes the new image itself, and the EXEC event that
 * follows is then recognised and not counted twice.
 *
 * Without the connector the table still works: a lookup checks the start
 * time in /proc/PID/stat (cheap, one read, unlocked) to notice pid reuse,
 * and the sweep in the watcher thread notices processes that are gone,
 * recording the time seen gone and an unknown status.
 *
 * CHANGES SINCE A TIME.  A write reported after the fact (a read-write
 * handle the kernel passes through: fs/writer_watch.c) names only a pid,
 * and the process may have exec'd or exited, and the pid been reused,
 * before anyone looks it up.  process_table_unchanged_since() says whether
 * that certainly did not happen since a given time: every exec and exit
 * the connector reports stamps the slot its pid hashes to with the
 * event's own time (the kernel's CLOCK_MONOTONIC, taken in the exec after
 * the old image's threads are gone, and in the exit after the last write),
 * and an overflow stamps them all.  A slot shared by several pids only
 * makes the answer "changed" more often, never "unchanged" wrongly; no
 * memory grows with the number of processes.
 *
 * Exec chains stay short: a new image keeps the one before it only as a
 * detached copy (same facts, no previous of its own), so a process that
 * execs itself 20,000 times holds two images, and releasing images walks
 * a worklist instead of recursing.
 *
 * Runs: an image belongs to its parent's run when both are in the same
 * session and carry the same PROVFS_JOB; otherwise it roots a new run.  So
 * by default the run is the session (a cron job, a login shell), and
 * PROVFS_JOB names and delimits a job inside it.
 *
 * LOCKS (they nest only as connector_lock, then lock)
 *   lock            the entries (slots and every field of struct
 *                   table_entry), the stale list, the serial counter and
 *                   every image's executable verdict.  Held only to look
 *                   at and change memory: no I/O, no hook call.
 *                   verdict_changed is waited on with it (which releases
 *                   it).
 *   connector_lock  one reader of the netlink socket at a time, so events
 *                   are applied in the kernel's order.  Held across a
 *                   non-blocking recv() and the marks above, no more: the
 *                   exits found are reported after it is released.  A
 *                   drain that finds the socket empty and no other drain
 *                   applying (connector_settled) does not take it.
 *   exec records'   their own lock (struct process_exec_records), a leaf:
 *   lock            taken under connector_lock or alone, never with lock
 *                   held, for a scan of one set of eight entries.
 *   jobs_lock       the executable thread's job queue.  The thread takes
 *                   a job and releases the lock before it opens anything.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <linux/openat2.h>

#include "clock.h"
#include "log.h"
#include "proc_reader.h"
#include "process_table.h"

#define TABLE_SLOTS 4096 /* power of two; chains grow beyond */
#define ENVIRON_LIMIT (1 << 20)
#define MEMORY_READ_DEADLINE_MS 1000 /* see proc_reader.h */
#define MEMORY_WARNING_INTERVAL_NS (60LL * 1000000000) /* one warning a minute */
#define EXEC_FILE_LIMIT 8 /* exec-opens kept per execve: binary, interpreter, script */
#define EXEC_READ_QUEUE 4096 /* execs the watcher reads at once; more wait for their lookup */
#define CONNECTOR_BATCH_MS 50 /* without exec facts: the watcher drains events at most this often */
#define CHANGE_SLOTS 16384 /* power of two: see CHANGES SINCE A TIME */

struct table_entry {
	pid_t pid;
	uint64_t serial;            /* tells this entry from a later one of the same pid */
	struct process_info *image; /* referenced; NULL until the first build publishes */
	unsigned int generation;    /* images published so far */
	int builders;               /* lookups reading /proc for this entry now */
	unsigned int execs_pending; /* EXEC events since image */
	unsigned int execs_ahead;   /* execs a lookup counted before their EXEC event */
	unsigned int attaches;      /* ptrace attaches seen */
	unsigned int rechecks;      /* connector overflows while it lived: an exec or
				     * PTRACE event of it may be lost */
	unsigned int rechecked;     /* rechecks when image was read */
	bool exec_opened;           /* an exec-open was seen; next lookup re-reads */
	void **exec_inputs;         /* cookies of opens made during the execve */
	size_t exec_input_count;
	int *exec_files;            /* their backing descriptors (dups) */
	size_t exec_file_count;
	bool exited;                /* the last builder reports it */
	bool exit_known;
	int exit_status;
	int64_t exit_ns;
	struct table_entry *next;
};

/* An executed inode to open and hand to the hasher (executable thread). */
struct executable_job {
	struct process_info *image; /* referenced */
	int pinned_fd;              /* O_PATH of /proc/PID/exe */
	uint64_t mount_id;          /* of the mount it was executed from */
	int *exec_files;            /* backing descriptors of the exec-opens */
	size_t exec_file_count;
	struct executable_job *next;
};

struct process_table {
	pthread_mutex_t lock; /* see LOCKS above */
	pthread_cond_t verdict_changed;
	struct table_entry *slots[TABLE_SLOTS];
	uint64_t next_serial;
	pid_t *stale; /* exec'd pids whose new image the watcher builds */
	size_t stale_count, stale_capacity;

	struct process_table_options options;
	_Atomic(const struct process_redaction *) redaction; /* in force; NULL: none */
	char *mount_point;
	int64_t boot_ns;
	long ticks_per_second;
	int netlink_fd;                 /* -1 when the connector is unavailable */
	struct process_exec_records *exec_records; /* its own lock */
	struct proc_reader *memory_reader;          /* cmdline, environ, maps; its own lock */
	_Atomic int64_t memory_warned_ns;           /* last warning of a late read */
	struct process_trusted_directories trusted; /* set at creation, then read only */
	struct stat own_mount_namespace;           /* the daemon's /proc/self/ns/mnt */
	struct stat own_user_namespace;            /* and ns/user; st_ino 0: unknown */
	/* Does a grant need facts from exec time (process_table_want_exec_facts)?
	 * Until one does, execs are not read and the watcher lets events gather. */
	atomic_bool exec_facts_wanted;
	pid_t exec_reads[EXEC_READ_QUEUE]; /* noted execs for the watcher to read: under lock */
	size_t exec_read_count;
	pthread_mutex_t connector_lock; /* see LOCKS above */
	/* Drains between their first recv() and the end of applying what
	 * they took (connector_settled). */
	atomic_int connector_readers;
	atomic_bool sweep_needed;       /* the connector overflowed */
	_Atomic int64_t drained_since_ns; /* every event queued before it is applied */
	/* CHANGES SINCE A TIME: the latest exec or exit (the connector's
	 * CLOCK_MONOTONIC stamp) of any pid hashing to each slot, and when
	 * events were last found lost.  Written under connector_lock. */
	_Atomic int64_t changed_ns[CHANGE_SLOTS];
	_Atomic int64_t lost_ns;
	int64_t tracked_since_ns; /* the connector's opening: nothing is known before */
	int stop_pipe[2];
	int wake_fd; /* eventfd: stale images to build, or a sweep */
	pthread_t watcher;
	bool watcher_running;

	pthread_mutex_t jobs_lock; /* see LOCKS above */
	pthread_cond_t jobs_ready;
	struct executable_job *jobs_head, **jobs_tail;
	bool jobs_running, jobs_stopping;
	pthread_t executable_thread;
	dev_t mount_device;      /* executable thread only */
	bool mount_device_known;

	char host[256];
};

static void drain_connector(struct process_table *table);

struct process_info *
process_info_acquire(struct process_info *image)
{
	if (image)
		atomic_fetch_add(&image->references, 1);
	return image;
}

static void
run_release(struct run_info *run)
{
	if (run == NULL || atomic_fetch_sub(&run->references, 1) != 1)
		return;
	free(run->job_name);
	free(run->parent_namespace);
	free(run->parent_job_name);
	free(run->parent_run_id);
	free(run->root_parent_namespace);
	free(run->root_parent_job_name);
	free(run->root_parent_run_id);
	free(run);
}

/*
 * Drop a reference; an image whose last reference goes drops its parent's
 * and previous's in turn.  Iterative (a worklist threaded through
 * release_next), so no chain, however long, can overflow the stack.
 */
void
process_info_release(struct process_info *image)
{
	struct process_info *dying;

	if (image == NULL || atomic_fetch_sub(&image->references, 1) != 1)
		return;
	image->release_next = NULL;
	dying = image;
	while (dying) {
		struct process_info *gone = dying;
		struct process_info *links[3] = {gone->parent, gone->previous,
						 atomic_load(&gone->successor)};
		dying = gone->release_next;
		run_release(gone->run);
		free(gone->executable);
		free(gone->argv);
		free(gone->cwd);
		free(gone->cgroup);
		free(gone->job);
		free(gone);
		for (int i = 0; i < 3; i++)
			if (links[i] && atomic_fetch_sub(&links[i]->references, 1) == 1) {
				links[i]->release_next = dying;
				dying = links[i];
			}
	}
}

/* The uid PID runs as, as /proc shows it (the owner of /proc/PID), or -1. */
static uid_t
owner_of(pid_t pid)
{
	char path[32];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return stat(path, &st) == 0 ? st.st_uid : (uid_t)-1;
}

/*
 * /proc/PID/NAME of a file read out of the process's memory (cmdline,
 * environ, maps), on the table's memory reader (proc_reader.h), which a
 * request never waits on past its deadline.  NULL when gone or unreadable;
 * NULL with *held set when the process kept its memory from us past the
 * deadline, or its user has too many such reads asleep: then nothing is
 * known of it, which is not the same as empty.
 */
static char *
read_process_memory(struct process_table *table, pid_t pid, uid_t owner, const char *name,
		    size_t limit, size_t *length, bool *held)
{
	char *content = proc_reader_read(table->memory_reader, pid, owner, name, limit, length);

	if (content || errno == ENOENT || errno == ESRCH || errno == EACCES)
		return content;
	*held = true;
	int64_t now = wall_clock_ns(), last = atomic_load(&table->memory_warned_ns);
	if (now - last >= MEMORY_WARNING_INTERVAL_NS &&
	    atomic_compare_exchange_strong(&table->memory_warned_ns, &last, now))
		log_warning("process %d (uid %d) kept /proc/%d/%s from provfs past %d ms (%s): "
			    "it is recorded without it, and no exe: or script: grant holds for it; "
			    "%u such reads still wait (at most one warning a minute)",
			    (int)pid, (int)owner, (int)pid, name, MEMORY_READ_DEADLINE_MS,
			    errno == ETIMEDOUT ? "its memory is held, as by a read from a "
						 "filesystem that does not answer"
					       : "too many of its user's reads wait",
			    proc_reader_stuck(table->memory_reader));
	return NULL;
}

static char *
read_proc_link(pid_t pid, const char *name)
{
	char path[64], target[4096];
	ssize_t length;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	length = readlink(path, target, sizeof(target) - 1);
	if (length < 0)
		return NULL;
	target[length] = '\0';
	return strdup(target);
}

struct stat_fields {
	pid_t parent_pid;
	pid_t session_id;
	unsigned long long start_ticks;
	uint64_t layout; /* XXH3-64 of fields 48-51: where argv and environ are */
};

#define STAT_LAST_FIELD 51 /* env_end (Linux 3.5+) */

static int
read_stat(pid_t pid, struct stat_fields *fields)
{
	char *text = proc_file_read(pid, "stat", 4096, NULL);
	unsigned long long values[STAT_LAST_FIELD + 1] = {0};
	int field = 3, result = -1;

	if (text == NULL)
		return -1;
	/* The command name may hold anything, ')' included: parse after the last. */
	char *cursor = strrchr(text, ')');
	if (cursor && cursor[1] == ' ' && cursor[2] != '\0') {
		cursor += 3; /* field 3, the state: a letter */
		cursor += strcspn(cursor, " ");
		for (field = 4; field <= STAT_LAST_FIELD && *cursor == ' '; field++) {
			char *end;
			values[field] = strtoull(cursor + 1, &end, 10);
			if (end == cursor + 1)
				break;
			cursor = end;
		}
		if (field > 22) {
			fields->parent_pid = (pid_t)values[4];
			fields->session_id = (pid_t)values[6];
			fields->start_ticks = values[22];
			/* Set by the kernel at exec; all zero when unknown (a kernel thread). */
			fields->layout = field > STAT_LAST_FIELD
						 ? XXH3_64bits(&values[48], 4 * sizeof(values[0]))
						 : 0;
			result = 0;
		}
	}
	free(text);
	return result;
}

static int64_t read_boot_ns(void);

static int64_t
start_ns_of(const struct process_table *table, unsigned long long ticks)
{
	return table->boot_ns +
	       (int64_t)(ticks * (1000000000ULL / (unsigned long long)table->ticks_per_second));
}

static bool
word_is_redacted(const struct process_redaction *redaction, const char *word)
{
	for (size_t i = 0; redaction && i < redaction->count; i++)
		if (fnmatch(redaction->globs[i], word, 0) == 0)
			return true;
	return false;
}

/*
 * argv with redaction: a word matching a redact glob becomes [REDACTED];
 * so does the word after an option like "--password" that matched without
 * carrying its value ("--password=x" carries it).
 */
static char *
redact_argv(const struct process_table *table, const char *raw, size_t raw_length,
	    size_t *length)
{
	static const char marker[] = "[REDACTED]";
	char *out = malloc(raw_length + 1 + sizeof(marker) * 64);
	size_t used = 0, capacity = raw_length + 1 + sizeof(marker) * 64;
	bool redact_next = false;
	/* One set of globs for the whole argv, whatever a reload does meanwhile. */
	const struct process_redaction *redaction =
		atomic_load_explicit(&table->redaction, memory_order_acquire);

	if (out == NULL)
		return NULL;
	for (size_t offset = 0; offset < raw_length;) {
		const char *word = raw + offset;
		size_t word_length = strnlen(word, raw_length - offset);
		bool redact = redact_next || word_is_redacted(redaction, word);
		redact_next = redact && !redact_next && word[0] == '-' && !strchr(word, '=');
		const char *piece = redact ? marker : word;
		size_t piece_length = redact ? sizeof(marker) - 1 : word_length;
		if (used + piece_length + 1 > capacity) {
			capacity = (used + piece_length + 1) * 2;
			char *grown = realloc(out, capacity);
			if (grown == NULL) {
				free(out);
				return NULL;
			}
			out = grown;
		}
		memcpy(out + used, piece, piece_length);
		used += piece_length;
		out[used++] = '\0';
		offset += word_length + 1;
	}
	*length = used;
	return out;
}

/* Value of NAME= in a NUL-separated environment block, or NULL. */
static char *
environment_value(const char *block, size_t length, const char *name)
{
	size_t name_length = strlen(name);

	for (size_t offset = 0; offset < length;) {
		const char *entry = block + offset;
		size_t entry_length = strnlen(entry, length - offset);
		if (entry_length > name_length && strncmp(entry, name, name_length) == 0 &&
		    entry[name_length] == '=')
			return strndup(entry + name_length + 1, entry_length - name_length - 1);
		offset += entry_length + 1;
	}
	return NULL;
}

static void
make_run_uuid(const struct process_table *table, struct run_info *run)
{
	char key[512];
	XXH128_hash_t hash;
	unsigned char bytes[16];

	snprintf(key, sizeof(key), "%s\n%d\n%lld\n%s", table->host, (int)run->root_pid,
		 (long long)run->root_start_ns, run->job_name);
	hash = XXH3_128bits(key, strlen(key));
	for (int i = 0; i < 8; i++) {
		bytes[i] = (unsigned char)(hash.high64 >> (56 - 8 * i));
		bytes[8 + i] = (unsigned char)(hash.low64 >> (56 - 8 * i));
	}
	bytes[6] = (unsigned char)((bytes[6] & 0x0f) | 0x80); /* version 8: custom */
	bytes[8] = (unsigned char)((bytes[8] & 0x3f) | 0x80); /* RFC 9562 variant */
	snprintf(run->uuid, sizeof(run->uuid),
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
		 bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14],
		 bytes[15]);
}

static const char *
base_name(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;

	return slash ? slash + 1 : (path ? path : "unknown");
}

/*
 * The OpenLineage run the environment names with PREFIX_JOB_NAMESPACE,
 * PREFIX_JOB_NAME and PREFIX_RUN_ID, or, without PREFIX_RUN_ID, with
 * PREFIX_ID ("namespace/job/runId", as dbt-ol and Airflow's macros pass
 * it).  Whether any of these was set.
 */
static bool
openlineage_run_named(const char *environment, size_t environment_length, const char *prefix,
		      char **namespace, char **job_name, char **run_id)
{
	char name[64];

	snprintf(name, sizeof(name), "%s_JOB_NAMESPACE", prefix);
	*namespace = environment_value(environment, environment_length, name);
	snprintf(name, sizeof(name), "%s_JOB_NAME", prefix);
	*job_name = environment_value(environment, environment_length, name);
	snprintf(name, sizeof(name), "%s_RUN_ID", prefix);
	*run_id = environment_value(environment, environment_length, name);
	snprintf(name, sizeof(name), "%s_ID", prefix);
	char *id = environment_value(environment, environment_length, name);
	bool named = *namespace || *job_name || *run_id || id;
	/* namespace/job/runId: the job name may hold '/', the run id is last. */
	char *first = id ? strchr(id, '/') : NULL, *last = id ? strrchr(id, '/') : NULL;
	if (*run_id == NULL && first && last > first) {
		free(*namespace);
		free(*job_name);
		*namespace = strndup(id, (size_t)(first - id));
		*job_name = strndup(first + 1, (size_t)(last - first - 1));
		*run_id = strdup(last + 1);
	}
	free(id);
	return named;
}

static struct run_info *
new_run(const struct process_table *table, const struct process_info *root,
	const char *environment, size_t environment_length)
{
	struct run_info *run = calloc(1, sizeof(*run));

	if (run == NULL)
		return NULL;
	atomic_init(&run->references, 1);
	run->root_pid = root->pid;
	run->root_start_ns = root->start_ns;
	run->started_ns = root->start_ns;
	if (root->job) {
		run->job_name = strdup(root->job);
		run->named_by = "PROVFS_JOB";
	} else {
		run->job_name = strdup(base_name(root->executable));
		run->named_by = "session";
	}
	if (environment) {
		openlineage_run_named(environment, environment_length, "OPENLINEAGE_PARENT",
				      &run->parent_namespace, &run->parent_job_name,
				      &run->parent_run_id);
		/*
		 * OpenLineage's rule, as dbt-ol and the Spark integration apply it:
		 * a parent named without a root started the chain, so it is the root.
		 */
		if (!openlineage_run_named(environment, environment_length,
					   "OPENLINEAGE_ROOT_PARENT", &run->root_parent_namespace,
					   &run->root_parent_job_name, &run->root_parent_run_id) &&
		    run->parent_run_id) {
			run->root_parent_namespace =
			    run->parent_namespace ? strdup(run->parent_namespace) : NULL;
			run->root_parent_job_name =
			    run->parent_job_name ? strdup(run->parent_job_name) : NULL;
			run->root_parent_run_id = strdup(run->parent_run_id);
		}
	}
	make_run_uuid(table, run);
	return run;
}

static bool
same_job(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/* ---- what a caller could have injected ------------------------------------ */

/*
 * Variables through which whoever set a process's environment runs code of
 * its choosing inside that process.  A name ending in '*' is a prefix.
 *
 * LOADER: what glibc's dynamic loader honours for an ordinary program and
 * drops for a setuid one (its UNSECURE_ENVVARS) because it changes which
 * objects are loaded or how their symbols bind, musl's two (LD_PRELOAD,
 * LD_LIBRARY_PATH, both in the list), GLIBC_TUNABLES (parsed by the loader
 * itself) and GCONV_PATH (glibc dlopen()s iconv modules from it).
 *
 * SCRIPT: what makes an interpreter load or run code from elsewhere before
 * or beside the script it was given: Python (search paths, startup file,
 * home, inspect mode, user site, breakpoint hook and warning filters, which
 * import their category's module), Perl, Ruby (and its gems), Node.js, the
 * shells (BASH_ENV, ENV, exported bash functions, and SHELLOPTS/PS4, which
 * together run a command substitution on every traced line), Lua, Tcl, R
 * and the JVM.
 *
 * (PYTHONPYCACHEPREFIX: Python loads the bytecode of the modules it imports
 * from that directory, and a .pyc there runs whatever it holds.)
 *
 * A variable with an empty value changes nothing and is not counted.
 * PYTHONNOUSERSITE is the one variable that takes code away: set, Python
 * does not run the user's own site directory (PROCESS_PYTHON_NO_USER_SITE).
 */
static const char *const loader_variables[] = {
	"LD_PRELOAD",	 "LD_LIBRARY_PATH",  "LD_AUDIT",     "LD_ORIGIN_PATH", "LD_DEBUG",
	"LD_DEBUG_OUTPUT", "LD_DYNAMIC_WEAK", "LD_HWCAP_MASK", "LD_PROFILE",	"LD_PROFILE_OUTPUT",
	"LD_SHOW_AUXV",	 "LD_USE_LOAD_BIAS", "LD_BIND_NOT",  "GLIBC_TUNABLES", "GCONV_PATH",
};

static const char *const script_variables[] = {
	"PYTHONPATH",	 "PYTHONSTARTUP",    "PYTHONHOME",	 "PYTHONINSPECT",
	"PYTHONUSERBASE", "PYTHONPLATLIBDIR", "PYTHONBREAKPOINT", "PYTHONWARNINGS",
	"PERL5LIB",	 "PERL5OPT",	     "PERLLIB",		 "PERL5DB",
	"RUBYLIB",	 "RUBYOPT",	     "GEM_PATH",	 "GEM_HOME",
	"NODE_OPTIONS",	 "NODE_PATH",	     "BASH_ENV",	 "ENV",
	"BASH_FUNC_*",	 "SHELLOPTS",	     "PS4",		 "LUA_PATH*",
	"LUA_CPATH*",	 "LUA_INIT*",	     "TCLLIBPATH",	 "R_PROFILE",
	"R_PROFILE_USER", "R_LIBS",	     "R_LIBS_USER",	 "JAVA_TOOL_OPTIONS",
	"_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",	"PYTHONPYCACHEPREFIX",
};

/* ---- where argv[0] leads Python ---------------------------------------------- */

/*
 * Which directories may argv[0] lead Python to?  Only a fixed few, chosen
 * when the table is made (process_trusted_directories_init(): the one time
 * names are walked, on the daemon's main thread, by lstat of each prefix
 * with cached attributes).  At read_image(), on a request thread, no name
 * a process gave is ever walked: argv[0]'s directory and each PATH entry
 * are compared as strings with the trusted names, and a file is looked up
 * only in a trusted directory, by an openat2() of its one name beneath
 * that directory's descriptor (no "..", no symlink out of it, no mount
 * crossed).  A user's own FUSE mount on PATH, an NFS home that does not
 * answer: neither is ever asked, so neither can hold a request thread.
 */
enum chain {
	CHAIN_UNTRUSTED,
	CHAIN_TRUSTED,
	CHAIN_ABSENT, /* missing, in a directory only root can write */
};

#define CHAIN_DEPTH 8 /* symlinks followed for one name */

/* Is path at or under the directory mount_point (NULL: never)? */
static bool
under_mount(const char *path, const char *mount_point)
{
	size_t length = mount_point ? strlen(mount_point) : 0;

	if (length == 0)
		return false;
	if (strcmp(mount_point, "/") == 0)
		return true;
	return strncmp(path, mount_point, length) == 0 &&
	       (path[length] == '/' || path[length] == '\0');
}

/* lstat with cached attributes. */
static int
look(const char *path, struct statx *attributes)
{
	return statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC,
		     STATX_TYPE | STATX_MODE | STATX_UID | STATX_INO, attributes);
}

/*
 * The target of the symlink at link, as an absolute name (a relative
 * target joined to link's directory) in target: 0, or -1 when it cannot be
 * read, is too long, or has a "." or ".." component (not resolved here:
 * what ".." names depends on the symlinks before it).
 */
static int
link_target(const char *link, char target[PATH_MAX])
{
	char read[PATH_MAX];
	ssize_t length = readlink(link, read, sizeof(read) - 1);
	int n;

	if (length <= 0 || length >= (ssize_t)sizeof(read) - 1)
		return -1;
	read[length] = '\0';
	if (read[0] == '/') {
		n = snprintf(target, PATH_MAX, "%s", read);
	} else {
		const char *slash = strrchr(link, '/');
		n = snprintf(target, PATH_MAX, "%.*s/%s", (int)(slash - link), link, read);
	}
	if (n < 0 || n >= PATH_MAX)
		return -1;
	for (const char *c = target; (c = strchr(c, '/')) != NULL;) {
		c++;
		size_t name = strcspn(c, "/");
		if ((name == 1 && c[0] == '.') || (name == 2 && c[0] == '.' && c[1] == '.'))
			return -1;
	}
	return 0;
}

/*
 * May only root change what the absolute directory path names, and what it
 * and its parent hold?  Its lexical prefixes ("/", "/usr", "/usr/bin") are
 * looked at in turn, as Python names them (it reads pyvenv.cfg from
 * "DIR/.." as a string, so "." and ".." components are refused, not
 * resolved): each must be a directory owned by root; path and its parent
 * writable by no group and no other user; a directory above them may be
 * writable if sticky (/tmp: nobody but root may rename the root-owned
 * entry below it).  A symlink among them must be owned by root and its
 * target passes the same test (/bin -> usr/bin: /usr/bin).  CHAIN_ABSENT:
 * a component does not exist.  Called by process_trusted_directories_init()
 * only, never on a request thread.
 */
static enum chain
directory_chain(const char *path, const char *mount_point, int depth)
{
	char prefix[PATH_MAX];
	size_t length = strlen(path);
	size_t components = 0, seen = 0, end = 0;
	bool root_only = true; /* the prefix before this one: writable by root alone */

	if (path[0] != '/' || length >= sizeof(prefix) || depth > CHAIN_DEPTH ||
	    under_mount(path, mount_point))
		return CHAIN_UNTRUSTED;
	for (size_t i = 0; i < length; i++)
		components += path[i] != '/' && path[i - (i > 0)] == '/';
	for (;;) {
		struct statx attributes;
		char target[PATH_MAX];
		/* prefix: "/", then path up to the end of each component in turn. */
		memcpy(prefix, path, end ? end : 1);
		prefix[end ? end : 1] = '\0';
		if (end) {
			const char *name = strrchr(prefix, '/') + 1;
			if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
				return CHAIN_UNTRUSTED;
			seen++;
		}
		bool strict = seen + 1 >= components; /* path itself, or its parent */
		if (look(prefix, &attributes) < 0)
			return errno == ENOENT && root_only ? CHAIN_ABSENT : CHAIN_UNTRUSTED;
		if (S_ISLNK(attributes.stx_mode)) {
			/* Trusted, the target is a directory of root's alone (strict). */
			if (attributes.stx_uid != 0 || link_target(prefix, target) < 0 ||
			    directory_chain(target, mount_point, depth + 1) != CHAIN_TRUSTED)
				return CHAIN_UNTRUSTED;
			root_only = true;
		} else {
			if (!S_ISDIR(attributes.stx_mode) || attributes.stx_uid != 0)
				return CHAIN_UNTRUSTED;
			root_only = !(attributes.stx_mode & (S_IWGRP | S_IWOTH));
			if (!root_only && (strict || !(attributes.stx_mode & S_ISVTX)))
				return CHAIN_UNTRUSTED;
		}
		while (end < length && path[end] == '/')
			end++;
		if (end == length)
			return CHAIN_TRUSTED;
		while (end < length && path[end] != '/')
			end++;
	}
}

static const char *const default_trusted_directories[] = {
	"/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin",
};

void
process_trusted_directories_init(struct process_trusted_directories *trusted,
				 const char *const *names, size_t count, const char *mount_point)
{
	memset(trusted, 0, sizeof(*trusted));
	if (names == NULL) {
		names = default_trusted_directories;
		count = sizeof(default_trusted_directories) / sizeof(default_trusted_directories[0]);
	}
	for (size_t i = 0; i < count && trusted->count < PROCESS_TRUSTED_DIRECTORY_MAX; i++) {
		struct process_trusted_directory *directory = &trusted->directory[trusted->count];
		struct stat st;
		if (directory_chain(names[i], mount_point, 0) != CHAIN_TRUSTED)
			continue;
		directory->name = strdup(names[i]);
		directory->fd = open(names[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (directory->name == NULL || directory->fd < 0 || fstat(directory->fd, &st) < 0 ||
		    st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
			if (directory->fd >= 0)
				close(directory->fd);
			free(directory->name);
			directory->name = NULL;
			continue;
		}
		directory->device = st.st_dev;
		directory->inode = st.st_ino;
		trusted->count++;
	}
}

void
process_trusted_directories_release(struct process_trusted_directories *trusted)
{
	for (size_t i = 0; i < trusted->count; i++) {
		close(trusted->directory[i].fd);
		free(trusted->directory[i].name);
	}
	memset(trusted, 0, sizeof(*trusted));
}

/* The trusted directory named exactly name (length bytes), or NULL. */
static const struct process_trusted_directory *
trusted_directory(const struct process_trusted_directories *trusted, const char *name,
		  size_t length)
{
	for (size_t i = 0; trusted && i < trusted->count; i++)
		if (strlen(trusted->directory[i].name) == length &&
		    memcmp(trusted->directory[i].name, name, length) == 0)
			return &trusted->directory[i];
	return NULL;
}

enum found {
	FOUND_NONE,     /* no executable file of that name */
	FOUND_EXECUTED, /* the executed inode */
	FOUND_OTHER,    /* another executable file, or one not looked at */
};

/*
 * What name (one component) is in the trusted directory, symlinks followed
 * only beneath it (python3 -> python3.11) and on its own mount: the
 * executed inode?
 */
static enum found
found_file(const struct process_trusted_directory *directory, const char *name, dev_t device,
	   ino_t inode)
{
	struct open_how how = {
		.flags = O_PATH | O_CLOEXEC,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
	};
	struct statx attributes;
	int fd, saved;

	if (name[0] == '\0' || strchr(name, '/'))
		return FOUND_OTHER;
	fd = (int)syscall(SYS_openat2, directory->fd, name, &how, sizeof(how));
	if (fd < 0)
		return errno == ENOENT ? FOUND_NONE : FOUND_OTHER;
	int rc = statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
		       STATX_TYPE | STATX_MODE | STATX_INO, &attributes);
	saved = errno;
	close(fd);
	errno = saved;
	if (rc < 0)
		return FOUND_OTHER;
	if (!S_ISREG(attributes.stx_mode) || !(attributes.stx_mode & 0111))
		return FOUND_NONE;
	return inode != 0 && attributes.stx_ino == inode &&
			       makedev(attributes.stx_dev_major, attributes.stx_dev_minor) == device
		       ? FOUND_EXECUTED
		       : FOUND_OTHER;
}

unsigned int
process_argv0_trust(const struct process_trusted_directories *trusted, const char *argv0,
		    const char *cwd, const char *path, dev_t device, ino_t inode)
{
	char file[PATH_MAX];
	const struct process_trusted_directory *directory;
	int n;

	if (argv0 == NULL || argv0[0] == '\0')
		return PROCESS_ARGV0_UNTRUSTED;
	if (strchr(argv0, '/')) {
		/* Python's abspath(argv[0]): cwd/argv0, "./" dropped. */
		while (argv0[0] == '.' && argv0[1] == '/')
			argv0 += 2;
		if (argv0[0] == '/')
			n = snprintf(file, sizeof(file), "%s", argv0);
		else if (cwd && cwd[0] == '/')
			n = snprintf(file, sizeof(file), "%s/%s", strcmp(cwd, "/") ? cwd : "", argv0);
		else
			return PROCESS_ARGV0_UNTRUSTED;
		if (n < 0 || (size_t)n >= sizeof(file))
			return PROCESS_ARGV0_UNTRUSTED;
		const char *slash = strrchr(file, '/');
		directory = trusted_directory(trusted, file, (size_t)(slash - file));
		if (directory == NULL)
			return PROCESS_ARGV0_UNTRUSTED;
		return found_file(directory, slash + 1, device, inode) == FOUND_EXECUTED
			       ? 0
			       : PROCESS_ARGV0_UNTRUSTED;
	}
	/* A bare name: the first executable of that name on PATH, as Python
	 * looks; an entry before it that is not trusted could hold another. */
	for (const char *entry = path; entry;) {
		const char *colon = strchr(entry, ':');
		size_t length = colon ? (size_t)(colon - entry) : strlen(entry);
		directory = trusted_directory(trusted, entry, length);
		entry = colon ? colon + 1 : NULL;
		if (directory == NULL)
			return PROCESS_ARGV0_UNTRUSTED; /* "" (cwd), relative, or another */
		switch (found_file(directory, argv0, device, inode)) {
		case FOUND_NONE:
			continue;
		case FOUND_EXECUTED:
			return 0;
		case FOUND_OTHER:
			return PROCESS_ARGV0_UNTRUSTED;
		}
	}
	return PROCESS_ARGV0_UNTRUSTED; /* not found (or no PATH): Python looks elsewhere */
}

static bool
name_listed(const char *name, size_t length, const char *const *list, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		size_t listed = strlen(list[i]);
		if (list[i][listed - 1] == '*') {
			if (length >= listed - 1 && memcmp(name, list[i], listed - 1) == 0)
				return true;
		} else if (length == listed && memcmp(name, list[i], length) == 0) {
			return true;
		}
	}
	return false;
}

unsigned int
process_injection_of(const char *environment, size_t length)
{
	unsigned int found = 0;

	for (size_t offset = 0; environment && offset < length;) {
		const char *entry = environment + offset;
		size_t entry_length = strnlen(entry, length - offset);
		const char *equals = memchr(entry, '=', entry_length);
		offset += entry_length + 1;
		if (equals == NULL || equals == entry || equals + 1 == entry + entry_length)
			continue; /* no name, or an empty value */
		size_t name_length = (size_t)(equals - entry);
		if (name_listed(entry, name_length, loader_variables,
				sizeof(loader_variables) / sizeof(loader_variables[0])))
			found |= PROCESS_INJECTION_LOADER;
		if (name_listed(entry, name_length, script_variables,
				sizeof(script_variables) / sizeof(script_variables[0])))
			found |= PROCESS_INJECTION_SCRIPT;
		if (name_length == strlen("PYTHONNOUSERSITE") &&
		    memcmp(entry, "PYTHONNOUSERSITE", name_length) == 0)
			found |= PROCESS_PYTHON_NO_USER_SITE;
	}
	return found;
}

/* Is a tracer attached to pid's main thread (TracerPid in its status)? */
static bool
read_traced(pid_t pid)
{
	char *status = proc_file_read(pid, "status", 1 << 16, NULL);
	const char *line = status ? strstr(status, "\nTracerPid:") : NULL;
	bool traced = line && strtol(line + strlen("\nTracerPid:"), NULL, 10) != 0;

	free(status);
	return traced;
}

/* ---- facts from exec time ---------------------------------------------------- */

/*
 * The records of process_table.h's FACTS FROM EXEC TIME.  One entry per
 * process whose exec was seen, in sets of EXEC_RECORD_WAYS by pid (pids
 * are handed out in turn, so consecutive ones fill different sets); 48
 * bytes each, allocated once.  Live processes rarely number more than a few
 * thousand: with the default 32,768 entries a set overflows (and its oldest
 * record, perhaps of a live process, is replaced) about never at 2,000 and
 * seldom at 10,000.
 */
#define EXEC_RECORDS 32768
#define EXEC_RECORD_WAYS 8

enum { EXEC_RECORD_FREE, EXEC_RECORD_PENDING_STATE, EXEC_RECORD_READ_STATE };

#define EXEC_AGE_MASK ((1u << 30) - 1)

struct exec_record {
	pid_t pid;
	uint32_t age : 30;  /* records.clock when noted, modulo 2^30 */
	uint32_t state : 2; /* EXEC_RECORD_* */
	uint64_t start_ticks;
	struct process_exec_facts facts; /* READ only */
};
_Static_assert(sizeof(struct exec_record) <= 48, "an exec record is 48 bytes at most");

struct process_exec_records {
	pthread_mutex_t lock; /* every field below; held for a scan of one set, no I/O */
	uint32_t clock;
	size_t sets;
	struct exec_record *entries; /* sets * EXEC_RECORD_WAYS */
	uint64_t *evicted_ticks;     /* per set: when a record last went while its
				      * process may live (ticks since boot) */
	uint64_t cleared_ticks;      /* when every record last went */
	long ticks_per_second;
};

/* Clock ticks since boot now, as /proc/PID/stat counts a start time. */
static uint64_t
boot_ticks_now(const struct process_exec_records *records)
{
	struct timespec now;

	clock_gettime(CLOCK_BOOTTIME, &now);
	return (uint64_t)now.tv_sec * (uint64_t)records->ticks_per_second +
	       (uint64_t)now.tv_nsec / (1000000000u / (uint64_t)records->ticks_per_second);
}

struct process_exec_records *
process_exec_records_new(size_t capacity)
{
	struct process_exec_records *records = calloc(1, sizeof(*records));

	if (records == NULL)
		return NULL;
	records->sets = capacity / EXEC_RECORD_WAYS + (capacity % EXEC_RECORD_WAYS != 0);
	if (records->sets == 0)
		records->sets = 1;
	records->entries = calloc(records->sets * EXEC_RECORD_WAYS, sizeof(struct exec_record));
	records->evicted_ticks = calloc(records->sets, sizeof(uint64_t));
	if (records->entries == NULL || records->evicted_ticks == NULL) {
		free(records->entries);
		free(records->evicted_ticks);
		free(records);
		return NULL;
	}
	records->ticks_per_second = sysconf(_SC_CLK_TCK);
	if (records->ticks_per_second <= 0 || records->ticks_per_second > 1000000)
		records->ticks_per_second = 100;
	pthread_mutex_init(&records->lock, NULL);
	return records;
}

void
process_exec_records_free(struct process_exec_records *records)
{
	if (records == NULL)
		return;
	pthread_mutex_destroy(&records->lock);
	free(records->entries);
	free(records->evicted_ticks);
	free(records);
}

static struct exec_record *
exec_set(struct process_exec_records *records, pid_t pid)
{
	return records->entries + ((size_t)(unsigned)pid % records->sets) * EXEC_RECORD_WAYS;
}

/* pid's entry in its set, or NULL.  Under records->lock. */
static struct exec_record *
exec_record_of(struct process_exec_records *records, pid_t pid)
{
	struct exec_record *set = exec_set(records, pid);

	for (int i = 0; i < EXEC_RECORD_WAYS; i++)
		if (set[i].state != EXEC_RECORD_FREE && set[i].pid == pid)
			return &set[i];
	return NULL;
}

void
process_exec_records_note(struct process_exec_records *records, pid_t pid)
{
	pthread_mutex_lock(&records->lock);
	struct exec_record *set = exec_set(records, pid), *record = exec_record_of(records, pid);
	for (int i = 0; record == NULL && i < EXEC_RECORD_WAYS; i++)
		if (set[i].state == EXEC_RECORD_FREE)
			record = &set[i];
	if (record == NULL) {
		/* A full set: the oldest goes (its image will count as unseen). */
		record = &set[0];
		for (int i = 1; i < EXEC_RECORD_WAYS; i++)
			if (((records->clock - set[i].age) & EXEC_AGE_MASK) >
			    ((records->clock - record->age) & EXEC_AGE_MASK))
				record = &set[i];
		records->evicted_ticks[(set - records->entries) / EXEC_RECORD_WAYS] =
			boot_ticks_now(records);
	}
	memset(record, 0, sizeof(*record));
	record->pid = pid;
	record->age = ++records->clock & EXEC_AGE_MASK;
	record->state = EXEC_RECORD_PENDING_STATE;
	pthread_mutex_unlock(&records->lock);
}

uint32_t
process_exec_records_clock(struct process_exec_records *records)
{
	pthread_mutex_lock(&records->lock);
	uint32_t clock = records->clock & EXEC_AGE_MASK;
	pthread_mutex_unlock(&records->lock);
	return clock;
}

void
process_exec_records_fulfil(struct process_exec_records *records, pid_t pid,
			    uint64_t start_ticks, const struct process_exec_facts *facts,
			    uint32_t read_began)
{
	pthread_mutex_lock(&records->lock);
	struct exec_record *record = exec_record_of(records, pid);
	/* Noted at or before read_began: the age is at most that clock,
	 * modulo 2^30 (far more notes than fit in one read's time). */
	if (record && record->state == EXEC_RECORD_PENDING_STATE &&
	    ((read_began - record->age) & EXEC_AGE_MASK) < (EXEC_AGE_MASK >> 1)) {
		record->start_ticks = start_ticks;
		record->facts = *facts;
		record->state = EXEC_RECORD_READ_STATE;
	}
	pthread_mutex_unlock(&records->lock);
}

void
process_exec_records_exited(struct process_exec_records *records, pid_t pid)
{
	pthread_mutex_lock(&records->lock);
	struct exec_record *record = exec_record_of(records, pid);
	if (record)
		memset(record, 0, sizeof(*record));
	pthread_mutex_unlock(&records->lock);
}

void
process_exec_records_clear(struct process_exec_records *records)
{
	pthread_mutex_lock(&records->lock);
	memset(records->entries, 0, records->sets * EXEC_RECORD_WAYS * sizeof(*records->entries));
	records->cleared_ticks = boot_ticks_now(records);
	pthread_mutex_unlock(&records->lock);
}

bool
process_exec_records_complete_since(struct process_exec_records *records, pid_t pid,
				    uint64_t start_ticks)
{
	pthread_mutex_lock(&records->lock);
	uint64_t lost = records->evicted_ticks[(exec_set(records, pid) - records->entries) /
					       EXEC_RECORD_WAYS];
	if (records->cleared_ticks > lost)
		lost = records->cleared_ticks;
	pthread_mutex_unlock(&records->lock);
	/* A tick is coarse (10 ms): the same tick counts as after. */
	return lost == 0 || start_ticks > lost + 1;
}

enum process_exec_record_state
process_exec_records_find(struct process_exec_records *records, pid_t pid,
			  uint64_t start_ticks, struct process_exec_facts *facts)
{
	enum process_exec_record_state state = PROCESS_EXEC_RECORD_NONE;

	pthread_mutex_lock(&records->lock);
	struct exec_record *record = exec_record_of(records, pid);
	if (record && record->state == EXEC_RECORD_PENDING_STATE) {
		state = PROCESS_EXEC_RECORD_PENDING;
	} else if (record && record->start_ticks == start_ticks) {
		*facts = record->facts;
		state = PROCESS_EXEC_RECORD_READ;
	}
	pthread_mutex_unlock(&records->lock);
	return state;
}

/* The facts of raw cmdline and environ bytes (either may be NULL: none read). */
static void
exec_facts_of(struct process_exec_facts *facts, uint64_t layout, const char *argv,
	      size_t argv_length, const char *environment, size_t environment_length)
{
	facts->layout = layout;
	facts->argv_hash = XXH3_64bits(argv ? argv : "", argv ? argv_length : 0);
	facts->environment_hash =
		XXH3_64bits(environment ? environment : "", environment ? environment_length : 0);
	facts->injection = process_injection_of(environment, environment_length);
}

/* The facts of pid's image as /proc shows them now; -1 when not all could be read. */
static int
exec_facts_read(struct process_table *table, pid_t pid, uint64_t *start_ticks,
		struct process_exec_facts *facts)
{
	struct stat_fields fields;
	size_t argv_length = 0, environment_length = 0;
	char *argv, *environment = NULL;
	bool held = false;
	uid_t owner = owner_of(pid);

	if (read_stat(pid, &fields) < 0)
		return -1;
	argv = read_process_memory(table, pid, owner, "cmdline", 1 << 20, &argv_length, &held);
	if (!held)
		environment = read_process_memory(table, pid, owner, "environ", ENVIRON_LIMIT,
						  &environment_length, &held);
	if (!held)
		exec_facts_of(facts, fields.layout, argv, argv_length, environment,
			      environment_length);
	free(argv);
	free(environment);
	if (held)
		return -1; /* no record: the image counts as not seen at exec */
	if (start_ticks)
		*start_ticks = fields.start_ticks;
	return 0;
}

unsigned int
process_exec_facts_apply(unsigned int injection, const struct process_exec_facts *at_exec,
			 const struct process_exec_facts *now)
{
	if (at_exec == NULL || at_exec->layout == 0 || at_exec->layout != now->layout)
		return (injection & ~PROCESS_PYTHON_NO_USER_SITE) | PROCESS_EXEC_UNSEEN;
	if (at_exec->argv_hash != now->argv_hash)
		injection |= PROCESS_ARGV_CHANGED;
	if (at_exec->environment_hash != now->environment_hash)
		injection |= PROCESS_ENVIRONMENT_CHANGED;
	/* What could inject at either time; PYTHONNOUSERSITE only when set at both. */
	injection |= at_exec->injection & (PROCESS_INJECTION_LOADER | PROCESS_INJECTION_SCRIPT);
	if (!(at_exec->injection & PROCESS_PYTHON_NO_USER_SITE))
		injection &= ~PROCESS_PYTHON_NO_USER_SITE;
	return injection;
}

/* Is the file mapped at range (START-END of a maps line) root's alone? */
static bool
mapped_file_is_roots(pid_t pid, const char *range)
{
	char path[96];
	struct statx attributes;
	int fd;
	bool roots;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%s", (int)pid, range);
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return false;
	roots = statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC, STATX_MODE | STATX_UID,
		      &attributes) == 0 &&
		(attributes.stx_mask & (STATX_MODE | STATX_UID)) == (STATX_MODE | STATX_UID) &&
		attributes.stx_uid == 0 && !(attributes.stx_mode & (S_IWGRP | S_IWOTH));
	close(fd);
	return roots;
}

bool
process_table_foreign_code(struct process_table *table, struct process_info *image)
{
	int known = atomic_load(&image->mapped_code);
	char *maps, *save = NULL;
	unsigned int last_major = 0, last_minor = 0;
	unsigned long long last_inode = 0;
	bool foreign = false;

	bool held = false;

	if (known != 0)
		return known < 0;
	maps = read_process_memory(table, image->pid, image->uid, "maps", 1 << 24, NULL, &held);
	if (maps == NULL || maps[0] == '\0')
		foreign = true; /* gone, or unreadable: not known to be clean */
	for (char *line = maps ? strtok_r(maps, "\n", &save) : NULL; line && !foreign;
	     line = strtok_r(NULL, "\n", &save)) {
		char range[64], permissions[8];
		unsigned int major, minor;
		unsigned long long inode;
		if (sscanf(line, "%63s %7s %*s %x:%x %llu", range, permissions, &major, &minor,
			   &inode) != 5) {
			foreign = true;
			break;
		}
		if (permissions[2] != 'x' || inode == 0)
			continue; /* not code, or not a file ([vdso], anonymous) */
		if (makedev(major, minor) == image->executable_device &&
		    (ino_t)inode == image->executable_inode)
			continue; /* the executable: judged by its own facts */
		if (major == last_major && minor == last_minor && inode == last_inode)
			continue; /* the same file as the line before */
		if (!mapped_file_is_roots(image->pid, range))
			foreign = true;
		last_major = major, last_minor = minor, last_inode = inode;
	}
	free(maps);
	atomic_store(&image->mapped_code, foreign ? -1 : 1);
	return foreign;
}

/* ---- the executed inode ------------------------------------------------------ */

/*
 * Pin the inode pid executes: an O_PATH descriptor of /proc/PID/exe, which
 * is the executed file itself, unlinked or renamed or not, whatever names
 * now say.  Neither the O_PATH open of that magic link nor statx with
 * AT_STATX_DONT_SYNC calls into the file's filesystem (no open, no FUSE
 * request: cached attributes only), so this is safe on a request thread
 * even when the executable lives on this very mount or on a filesystem
 * stacked on it (overlayfs).  Reading the file is left to the executable
 * thread.  The owner and mode come with the same statx: the policy trusts
 * an interpreter by them (executable_trust()).
 */
static int
pin_executable(pid_t pid, struct statx *attributes)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	fd = open(path, O_PATH | O_CLOEXEC);
	if (fd < 0)
		return -1;
	if (statx(fd, "", AT_EMPTY_PATH | AT_STATX_DONT_SYNC,
		  STATX_TYPE | STATX_MODE | STATX_UID | STATX_INO | STATX_MNT_ID, attributes) < 0 ||
	    !(attributes->stx_mask & STATX_MNT_ID) || !S_ISREG(attributes->stx_mode)) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The PROCESS_EXECUTABLE_* bits of the inode pinned with attributes
 * (pinned false: nothing was pinned, nothing is known).
 */
static unsigned int
executable_trust(bool pinned, const struct statx *attributes)
{
	unsigned int facts = 0;

	if (!pinned || (attributes->stx_mask & (STATX_MODE | STATX_UID)) !=
			       (STATX_MODE | STATX_UID))
		return PROCESS_EXECUTABLE_UNKNOWN | PROCESS_EXECUTABLE_NOT_ROOT |
		       PROCESS_EXECUTABLE_SHARED_WRITABLE;
	if (attributes->stx_uid != 0)
		facts |= PROCESS_EXECUTABLE_NOT_ROOT;
	if (attributes->stx_mode & (S_IWGRP | S_IWOTH))
		facts |= PROCESS_EXECUTABLE_SHARED_WRITABLE;
	return facts;
}

/* A whole small file (mountinfo): NUL-terminated, or NULL. */
static char *
read_small_file(const char *path, size_t limit)
{
	size_t size = 0, capacity = 16384;
	char *buffer = malloc(capacity + 1);
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (buffer == NULL || fd < 0) {
		free(buffer);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	for (;;) {
		if (size == capacity) {
			char *grown = capacity < limit ? realloc(buffer, capacity * 2 + 1) : NULL;
			if (grown == NULL)
				break;
			buffer = grown;
			capacity *= 2;
		}
		ssize_t count = read(fd, buffer + size, capacity - size);
		if (count <= 0)
			break;
		size += (size_t)count;
	}
	close(fd);
	buffer[size] = '\0';
	return buffer;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo: undo it in place. */
static void
unescape_octal(char *text)
{
	char *out = text;

	for (char *in = text; *in;) {
		if (in[0] == '\\' && in[1] >= '0' && in[1] <= '3' && in[2] >= '0' && in[2] <= '7' &&
		    in[3] >= '0' && in[3] <= '7') {
			*out++ = (char)((in[1] - '0') * 64 + (in[2] - '0') * 8 + (in[3] - '0'));
			in += 4;
		} else {
			*out++ = *in++;
		}
	}
	*out = '\0';
}

struct mount_line {
	uint64_t id;
	unsigned int major, minor;
	char *mount_point;
	char *type;
};

/* Split one mountinfo line (modified in place); false when malformed. */
static bool
parse_mount_line(char *line, struct mount_line *mount)
{
	char *fields[5], *save = NULL, *word;
	int count = 0;

	for (word = strtok_r(line, " ", &save); word && count < 5;
	     word = strtok_r(NULL, " ", &save))
		fields[count++] = word;
	if (count < 5)
		return false;
	/* Optional fields end with a lone "-"; the type follows it. */
	while ((word = strtok_r(NULL, " ", &save)) && strcmp(word, "-") != 0)
		;
	if (word == NULL || (mount->type = strtok_r(NULL, " ", &save)) == NULL)
		return false;
	if (sscanf(fields[2], "%u:%u", &mount->major, &mount->minor) != 2)
		return false;
	mount->id = strtoull(fields[0], NULL, 10);
	mount->mount_point = fields[4];
	unescape_octal(mount->mount_point);
	return true;
}

/*
 * The filesystem type of mount id in mountinfo file path: 0 with type
 * filled, or -1 when the mount is not listed there.
 */
static int
mount_type_in(const char *path, uint64_t id, char *type, size_t type_size)
{
	char *text = read_small_file(path, 1 << 24), *save = NULL;
	int result = -1;

	if (text == NULL)
		return -1;
	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		struct mount_line mount;
		if (parse_mount_line(line, &mount) && mount.id == id) {
			snprintf(type, type_size, "%s", mount.type);
			result = 0;
			break;
		}
	}
	free(text);
	return result;
}

/*
 * The device of this mount as the kernel numbers it (what st_dev says of
 * the files seen through it), from our own mountinfo.  Executable thread
 * only; found once.
 */
static bool
mount_device_of(struct process_table *table, dev_t *device)
{
	if (!table->mount_device_known) {
		char *text = read_small_file("/proc/self/mountinfo", 1 << 24), *save = NULL;
		for (char *line = text ? strtok_r(text, "\n", &save) : NULL; line;
		     line = strtok_r(NULL, "\n", &save)) {
			struct mount_line mount;
			if (parse_mount_line(line, &mount) &&
			    strcmp(mount.mount_point, table->mount_point) == 0 &&
			    strncmp(mount.type, "fuse", 4) == 0) {
				table->mount_device = makedev(mount.major, mount.minor);
				table->mount_device_known = true; /* the last such line is on top */
			}
		}
		free(text);
	}
	*device = table->mount_device;
	return table->mount_device_known;
}

/*
 * Filesystems whose files the daemon must not open: a FUSE filesystem is
 * served by a process that may never answer (or by this daemon: a request
 * to ourselves), and a stacked one (overlayfs and kin) opens a file of a
 * lower layer that may be on FUSE, this mount included.
 */
static bool
filesystem_may_be_opened(const char *type)
{
	static const char *const refused[] = {"fuse", "fuseblk", "overlay", "aufs",
					      "ecryptfs", "shiftfs", "unionfs"};

	if (strncmp(type, "fuse.", 5) == 0)
		return false;
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++)
		if (strcmp(type, refused[i]) == 0)
			return false;
	return true;
}

/* fd, reopened read-only as a file description of its own; -1 on error. */
static int
reopen_readable(int fd)
{
	char path[64];
	struct stat st;
	int readable;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	readable = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	/* Never block on, or hash, anything but a regular file. */
	if (readable >= 0 && (fstat(readable, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(readable);
		readable = -1;
	}
	return readable;
}

static bool
is_inode(int fd, ino_t inode)
{
	struct stat st;

	return fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_ino == inode;
}

/*
 * An executable that lives in this mount, read from the backing tree: the
 * descriptor an exec-open of this execve was served with, else the backing
 * file under the name /proc/PID/exe gave, each only when it is the executed
 * inode (FUSE passes the backing inode numbers through), so a decoy put
 * where the name points is never taken for it.
 */
static int
open_backing_executable(struct process_table *table, const struct process_info *image,
			const int *exec_files, size_t exec_file_count)
{
	size_t length = strlen(table->mount_point);
	const char *executable = image->executable;
	int fd;

	for (size_t i = 0; i < exec_file_count; i++)
		if (is_inode(exec_files[i], image->executable_inode))
			return reopen_readable(exec_files[i]);
	if (executable == NULL || strncmp(executable, table->mount_point, length) != 0 ||
	    (executable[length] != '/' && strcmp(table->mount_point, "/") != 0))
		return -1;
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
			       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
					  RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV};
	const char *relative = executable + length;
	while (*relative == '/')
		relative++;
	fd = (int)syscall(SYS_openat2, table->options.backing_fd, relative, &how, sizeof(how));
	if (fd >= 0 && !is_inode(fd, image->executable_inode)) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/*
 * A readable descriptor of the very inode job's image executed, or -1 when
 * it cannot be had safely.  Runs on the executable thread alone: it may
 * wait on a slow disk, never on FUSE.
 */
static int
open_executed_inode(struct process_table *table, struct executable_job *job)
{
	const struct process_info *image = job->image;
	char path[64], type[64];
	dev_t device;
	int fd;

	if (mount_device_of(table, &device) && image->executable_device == device)
		return open_backing_executable(table, image, job->exec_files, job->exec_file_count);
	/* The process's own mount namespace first: the mount may be private to it. */
	snprintf(path, sizeof(path), "/proc/%d/mountinfo", (int)image->pid);
	if (mount_type_in(path, job->mount_id, type, sizeof(type)) < 0 &&
	    mount_type_in("/proc/self/mountinfo", job->mount_id, type, sizeof(type)) < 0)
		return -1;
	if (!filesystem_may_be_opened(type))
		return -1;
	fd = reopen_readable(job->pinned_fd);
	if (fd >= 0) {
		struct stat st;
		if (fstat(fd, &st) < 0 || st.st_dev != image->executable_device ||
		    st.st_ino != image->executable_inode) {
			close(fd);
			fd = -1;
		}
	}
	return fd;
}

static void
executable_job_free(struct executable_job *job)
{
	if (job->pinned_fd >= 0)
		close(job->pinned_fd);
	for (size_t i = 0; i < job->exec_file_count; i++)
		close(job->exec_files[i]);
	free(job->exec_files);
	process_info_release(job->image);
	free(job);
}

static void
queue_executable_job(struct process_table *table, struct executable_job *job)
{
	pthread_mutex_lock(&table->jobs_lock);
	if (table->jobs_running) {
		*table->jobs_tail = job;
		table->jobs_tail = &job->next;
		pthread_cond_signal(&table->jobs_ready);
		job = NULL;
	}
	pthread_mutex_unlock(&table->jobs_lock);
	if (job) {
		/* No executable thread (not started, or stopped): unknown. */
		process_table_executable_hashed(table, job->image, NULL);
		executable_job_free(job);
	}
}

static void *
executable_main(void *argument)
{
	struct process_table *table = argument;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-exe");
	pthread_mutex_lock(&table->jobs_lock);
	for (;;) {
		while (table->jobs_head == NULL && !table->jobs_stopping)
			pthread_cond_wait(&table->jobs_ready, &table->jobs_lock);
		if (table->jobs_head == NULL)
			break; /* stopping, and every job queued before is done */
		struct executable_job *job = table->jobs_head;
		table->jobs_head = job->next;
		if (table->jobs_head == NULL)
			table->jobs_tail = &table->jobs_head;
		pthread_mutex_unlock(&table->jobs_lock);

		int fd = open_executed_inode(table, job);
		if (fd >= 0 && table->options.hooks.hash_executable) {
			table->options.hooks.hash_executable(table->options.hooks.context, job->image,
							     fd);
		} else {
			if (fd >= 0)
				close(fd);
			process_table_executable_hashed(table, job->image, NULL);
		}
		executable_job_free(job);
		pthread_mutex_lock(&table->jobs_lock);
	}
	pthread_mutex_unlock(&table->jobs_lock);
	return NULL;
}

void
process_table_executable_hashed(struct process_table *table, struct process_info *image,
				const char *hash)
{
	pthread_mutex_lock(&table->lock);
	if (hash && strlen(hash) == 32) {
		memcpy(image->executable_verdict_hash, hash, 33);
		image->executable_verdict = 1;
	} else {
		image->executable_verdict = -1;
	}
	pthread_cond_broadcast(&table->verdict_changed);
	pthread_mutex_unlock(&table->lock);
}

int
process_table_executable_verdict(struct process_table *table, struct process_info *image,
				 char hash[33])
{
	int verdict;

	pthread_mutex_lock(&table->lock);
	verdict = image->executable_verdict;
	if (verdict == 1)
		memcpy(hash, image->executable_verdict_hash, 33);
	pthread_mutex_unlock(&table->lock);
	return verdict;
}

int
process_table_executable_hash(struct process_table *table, struct process_info *image,
			      int timeout_ms, char hash[33])
{
	struct timespec deadline;
	int result = -1;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&table->lock);
	while (image->executable_verdict == 0 &&
	       pthread_cond_timedwait(&table->verdict_changed, &table->lock, &deadline) == 0)
		;
	if (image->executable_verdict == 1) {
		memcpy(hash, image->executable_verdict_hash, 33);
		result = 0;
	}
	pthread_mutex_unlock(&table->lock);
	return result;
}

/* ---- building an image (no lock held) ---------------------------------------- */

#define PIDFS_SUPER_MAGIC 0x50494446

/*
 * The inode of a pidfd: since Linux 6.9 pidfs gives every process one that
 * is never reused while the system runs, finer than the start time's clock
 * ticks.  Before, every pidfd shares one anonymous inode, which tells
 * nothing: 0 (unknown) then.
 */
static uint64_t
kernel_id_of(pid_t pid)
{
	struct statfs filesystem;
	struct stat st;
	uint64_t id = 0;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return 0;
	if (fstatfs(fd, &filesystem) == 0 && filesystem.f_type == PIDFS_SUPER_MAGIC &&
	    fstat(fd, &st) == 0)
		id = (uint64_t)st.st_ino;
	close(fd);
	return id;
}

int
process_running_now(pid_t pid, int64_t *start_ns, uint64_t *kernel_id)
{
	char *text = pid > 0 ? proc_file_read(pid, "stat", 4096, NULL) : NULL;
	char *cursor = text ? strrchr(text, ')') : NULL;
	unsigned long long ticks = 0;
	long ticks_per_second = sysconf(_SC_CLK_TCK);
	int result = -1;

	/* After the command name (which may hold ')'): state, then fields 4 to 22. */
	if (cursor && cursor[1] == ' ' && cursor[2] != '\0' && cursor[2] != 'Z' &&
	    cursor[2] != 'X') {
		cursor += 3;
		for (int field = 3; field < 22 && cursor; field++) {
			cursor = strchr(cursor, ' ');
			if (cursor)
				cursor++;
		}
		if (cursor && sscanf(cursor, "%llu", &ticks) == 1) {
			if (ticks_per_second <= 0)
				ticks_per_second = 100;
			*start_ns = read_boot_ns() +
				    (int64_t)(ticks * (1000000000ULL / (unsigned long long)ticks_per_second));
			*kernel_id = kernel_id_of(pid);
			result = 0;
		}
	}
	free(text);
	return result;
}

/*
 * image, detached from its history, to be a new image's previous: the same
 * facts (so the store finds or makes the same row), but no previous of its
 * own, so exec chains never grow.  Always a copy, even of an image without
 * a previous: the image itself links to the new one (successor), and the
 * new one back to it would be a cycle that no release ever ends.
 */
static struct process_info *
detached_copy(struct process_info *image)
{
	struct process_info *copy;

	copy = calloc(1, sizeof(*copy));
	if (copy == NULL)
		return NULL;
	atomic_init(&copy->references, 1);
	copy->pid = image->pid;
	copy->start_ns = image->start_ns;
	copy->kernel_id = image->kernel_id;
	copy->exec_index = image->exec_index;
	copy->parent_pid = image->parent_pid;
	copy->session_id = image->session_id;
	copy->uid = image->uid;
	copy->gid = image->gid;
	copy->executable = image->executable ? strdup(image->executable) : NULL;
	if (image->argv && (copy->argv = malloc(image->argv_length)) != NULL) {
		memcpy(copy->argv, image->argv, image->argv_length);
		copy->argv_length = image->argv_length;
	}
	copy->cwd = image->cwd ? strdup(image->cwd) : NULL;
	copy->cgroup = image->cgroup ? strdup(image->cgroup) : NULL;
	copy->job = image->job ? strdup(image->job) : NULL;
	copy->seen_ns = image->seen_ns;
	copy->parent = process_info_acquire(image->parent);
	copy->run = image->run;
	if (copy->run)
		atomic_fetch_add(&copy->run->references, 1);
	memcpy(copy->executable_hash, image->executable_hash, sizeof(copy->executable_hash));
	copy->environment_injection = image->environment_injection;
	atomic_init(&copy->traced, atomic_load(&image->traced));
	atomic_init(&copy->mapped_code, atomic_load(&image->mapped_code));
	copy->executable_device = image->executable_device;
	copy->executable_inode = image->executable_inode;
	copy->exec_facts = image->exec_facts;
	copy->executable_verdict = -1; /* never asked: the live image is */
	return copy;
}

/*
 * PROCESS_ARGV0_UNTRUSTED of a new image, or 0 (process_argv0_trust()).
 * Only Python looks for its installation beside argv[0], and only the
 * policy's Python rules read the fact, so only an image whose executable is
 * named python... is looked at (an openat2 in a trusted directory or two,
 * once per image), and only while the policy has a program grant; any
 * other image has the fact set without a look.
 */
static unsigned int
argv0_trust(const struct process_table *table, const struct process_info *image,
	    const char *environment, size_t environment_length)
{
	const char *name = image->executable ? strrchr(image->executable, '/') : NULL;
	char *path;
	unsigned int fact;

	if (!atomic_load_explicit(&table->exec_facts_wanted, memory_order_relaxed) ||
	    name == NULL || strncmp(name + 1, "python", 6) != 0 || image->argv == NULL ||
	    image->argv_length == 0)
		return PROCESS_ARGV0_UNTRUSTED;
	path = environment ? environment_value(environment, environment_length, "PATH") : NULL;
	fact = process_argv0_trust(&table->trusted, image->argv, image->cwd, path,
				   image->executable_device, image->executable_inode);
	free(path);
	return fact;
}

/*
 * PROCESS_FOREIGN_NAMESPACE when pid's mount or user namespace is not the
 * daemon's, or either cannot be compared; else 0.  The ns links of /proc
 * are the kernel's (nsfs): a stat of them asks no other filesystem.
 */
static unsigned int
namespace_trust(const struct process_table *table, pid_t pid)
{
	static const char *const kinds[] = {"mnt", "user"};
	const struct stat *own[] = {&table->own_mount_namespace, &table->own_user_namespace};
	char path[64];
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		snprintf(path, sizeof(path), "/proc/%d/ns/%s", (int)pid, kinds[i]);
		if (own[i]->st_ino == 0 || stat(path, &st) < 0 || st.st_ino != own[i]->st_ino ||
		    st.st_dev != own[i]->st_dev)
			return PROCESS_FOREIGN_NAMESPACE;
	}
	return 0;
}

/*
 * image's trust facts held to those of its exec (process_exec_facts_apply()),
 * now being what read_image() just read: the record of its exec, made now
 * from these very reads when it is still pending and was noted before they
 * began (no earlier read of the new image exists: this one is as early as
 * any; reads begun before the note may show the image before the exec);
 * else, for a child forked without exec (its parent's layout), the record
 * its parent was held to.  Sets exec_facts.
 */
static unsigned int
held_to_exec(struct process_table *table, struct process_info *image, uint64_t start_ticks,
	     const struct process_exec_facts *now, uint32_t read_began, bool events_lost)
{
	const struct process_info *parent = image->parent;
	struct process_exec_facts at_exec;
	enum process_exec_record_state state;

	state = process_exec_records_find(table->exec_records, image->pid, start_ticks, &at_exec);
	if (state == PROCESS_EXEC_RECORD_PENDING &&
	    !(image->environment_injection & PROCESS_MEMORY_UNREAD)) {
		process_exec_records_fulfil(table->exec_records, image->pid, start_ticks, now,
					    read_began);
		state = process_exec_records_find(table->exec_records, image->pid, start_ticks,
						  &at_exec);
	}
	/*
	 * The parent's record, only for a child with no exec of its own since
	 * it started: no record of its pid (an exec of it would have left
	 * one), none of its set lost since it started, no events lost for it.
	 * Layout alone does not tell (setarch -R repeats layouts).
	 */
	if (state == PROCESS_EXEC_RECORD_NONE && !events_lost && parent &&
	    !(parent->environment_injection & (PROCESS_EXEC_UNSEEN | PROCESS_MEMORY_UNREAD)) &&
	    parent->exec_facts.layout == now->layout &&
	    process_exec_records_complete_since(table->exec_records, image->pid, start_ticks)) {
		at_exec = parent->exec_facts;
		state = PROCESS_EXEC_RECORD_READ;
	}
	unsigned int facts = process_exec_facts_apply(
		image->environment_injection, state == PROCESS_EXEC_RECORD_READ ? &at_exec : NULL,
		now);
	if (!(facts & PROCESS_EXEC_UNSEEN))
		image->exec_facts = at_exec;
	return facts;
}

/* Do a and b run the same executable with the same argv? */
static bool
same_program(const struct process_info *a, const struct process_info *b)
{
	return a->executable && b->executable && strcmp(a->executable, b->executable) == 0 &&
	       a->argv_length == b->argv_length &&
	       (a->argv_length == 0 || memcmp(a->argv, b->argv, a->argv_length) == 0);
}

/* What a builder saw of a table entry before it read /proc. */
struct build_plan {
	pid_t pid;
	uint64_t serial;              /* the entry's */
	unsigned int generation;      /* entry->generation then */
	unsigned int attaches;        /* entry->attaches then */
	struct process_info *previous; /* entry->image then (referenced), or NULL */
	unsigned int execs;           /* EXEC events not yet in previous */
	bool exec_opened;
	unsigned int rechecks;        /* entry->rechecks then */
	bool recheck;                 /* events may be lost since previous was read */
	/* out of read_image */
	int pinned_fd;
	uint64_t mount_id;
};

static struct process_info *lookup(struct process_table *table, pid_t pid, int depth,
				   bool create);

/*
 * Read /proc for plan->pid and build its image, with no lock held: the
 * reads may wait (on the process's mmap lock, say) and nobody waits for us.
 * plan->previous is the image before an execve (or NULL).  depth bounds
 * the walk up the parent chain.
 */
static struct process_info *
read_image(struct process_table *table, struct build_plan *plan, int depth)
{
	pid_t pid = plan->pid;
	struct process_info *previous = plan->previous;
	struct stat_fields fields;
	struct process_info *image;
	char *raw_argv, *environment;
	size_t raw_length = 0, environment_length = 0;
	struct process_exec_facts now; /* of what was just read */
	struct statx executed;
	struct stat st;
	char path[64];

	/* Before the first read: only an exec noted by then is surely past. */
	uint32_t read_began = process_exec_records_clock(table->exec_records);
	if (read_stat(pid, &fields) < 0)
		return NULL;
	image = calloc(1, sizeof(*image));
	if (image == NULL)
		return NULL;
	atomic_init(&image->references, 1);
	atomic_init(&image->traced, false);
	atomic_init(&image->mapped_code, 0);
	image->pid = pid;
	image->start_ns = start_ns_of(table, fields.start_ticks);
	image->kernel_id = previous ? previous->kernel_id : kernel_id_of(pid);
	image->parent_pid = fields.parent_pid;
	image->session_id = fields.session_id;
	image->seen_ns = wall_clock_ns();
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	if (stat(path, &st) == 0) {
		image->uid = st.st_uid;
		image->gid = st.st_gid;
	}
	plan->pinned_fd = pin_executable(pid, &executed);
	if (plan->pinned_fd >= 0) {
		image->executable_device = makedev(executed.stx_dev_major, executed.stx_dev_minor);
		image->executable_inode = (ino_t)executed.stx_ino;
		plan->mount_id = executed.stx_mnt_id;
	} else {
		image->executable_verdict = -1; /* nothing pinned: never known */
	}
	image->environment_injection = executable_trust(plan->pinned_fd >= 0, &executed);
	image->executable = read_proc_link(pid, "exe");
	image->cwd = read_proc_link(pid, "cwd");
	bool held = false; /* its memory kept from us: argv and environ unknown */
	raw_argv = read_process_memory(table, pid, image->uid, "cmdline", 1 << 20, &raw_length,
				       &held);
	if (raw_argv)
		image->argv = redact_argv(table, raw_argv, raw_length, &image->argv_length);
	char *cgroup = proc_file_read(pid, "cgroup", 4096, NULL);
	if (cgroup) {
		char *line_end = strchr(cgroup, '\n');
		char *path_start = strstr(cgroup, "::");
		if (line_end)
			*line_end = '\0';
		image->cgroup = strdup(path_start ? path_start + 2 : cgroup);
		free(cgroup);
	}
	environment = held ? NULL
			   : read_process_memory(table, pid, image->uid, "environ", ENVIRON_LIMIT,
						 &environment_length, &held);
	if (held)
		image->environment_injection |= PROCESS_MEMORY_UNREAD;
	if (environment) {
		image->job = environment_value(environment, environment_length, "PROVFS_JOB");
		image->environment_injection |=
			process_injection_of(environment, environment_length);
	}
	image->environment_injection |= argv0_trust(table, image, environment, environment_length);
	image->environment_injection |= namespace_trust(table, pid);
	if (read_traced(pid))
		atomic_store(&image->traced, true);
	exec_facts_of(&now, fields.layout, raw_argv, raw_length, environment, environment_length);
	free(raw_argv);

	if (previous && plan->recheck && plan->execs == 0 && !plan->exec_opened &&
	    same_program(previous, image)) {
		/* Read again after lost events, the same program: the same
		 * image (as far as can be told), with its facts read anew. */
		image->exec_index = previous->exec_index;
		image->previous = process_info_acquire(previous->previous);
		image->parent = process_info_acquire(previous->parent);
		if (atomic_load(&previous->traced))
			atomic_store(&image->traced, true);
	} else if (previous) {
		image->exec_index = previous->exec_index + (plan->execs ? (int)plan->execs : 1);
		image->previous = detached_copy(previous);
		image->parent = process_info_acquire(previous->parent);
	} else if (fields.parent_pid > 0 && depth < 64) {
		image->parent = lookup(table, fields.parent_pid, depth + 1, true);
	}
	struct process_info *parent = image->parent;
	image->environment_injection =
		held_to_exec(table, image, fields.start_ticks, &now, read_began, plan->recheck);
	if (previous && previous->run && same_job(previous->job, image->job))
		image->run = previous->run, atomic_fetch_add(&previous->run->references, 1);
	else if (parent && parent->run && parent->session_id == image->session_id &&
		 same_job(parent->job, image->job))
		image->run = parent->run, atomic_fetch_add(&parent->run->references, 1);
	else
		image->run = new_run(table, image, environment, environment_length);
	free(environment);
	return image;
}

/*
 * Is pid still running the image recorded as image (same executable and
 * argv)?  After an exec-open with no exec event, that means the execve
 * failed.
 */
static bool
image_unchanged(struct process_table *table, pid_t pid, const struct process_info *image)
{
	char *executable = read_proc_link(pid, "exe");
	size_t raw_length = 0, length = 0;
	bool held = false; /* unknown: not the same */
	char *raw = read_process_memory(table, pid, image->uid, "cmdline", 1 << 20, &raw_length,
					&held);
	char *argv = raw ? redact_argv(table, raw, raw_length, &length) : NULL;
	bool same = executable && image->executable && strcmp(executable, image->executable) == 0 &&
		    argv && image->argv && length == image->argv_length &&
		    memcmp(argv, image->argv, length) == 0;

	free(executable);
	free(raw);
	free(argv);
	return same;
}

/* ---- the table (in memory, under lock) --------------------------------------- */

static struct table_entry **
slot_of(struct process_table *table, pid_t pid)
{
	return &table->slots[(unsigned)pid & (TABLE_SLOTS - 1)];
}

static struct table_entry *
find_entry(struct process_table *table, pid_t pid)
{
	for (struct table_entry *entry = *slot_of(table, pid); entry; entry = entry->next)
		if (entry->pid == pid)
			return entry;
	return NULL;
}

static struct table_entry *
insert_entry(struct process_table *table, pid_t pid)
{
	struct table_entry *entry = calloc(1, sizeof(*entry));

	if (entry == NULL)
		return NULL;
	entry->pid = pid;
	entry->serial = ++table->next_serial;
	entry->next = *slot_of(table, pid);
	*slot_of(table, pid) = entry;
	return entry;
}

/* Unlink entry and put it on *retired, for retire_entries() after the lock. */
static void
unlink_entry(struct process_table *table, struct table_entry *entry,
	     struct table_entry **retired)
{
	struct table_entry **link = slot_of(table, entry->pid);

	while (*link != entry)
		link = &(*link)->next;
	*link = entry->next;
	entry->next = *retired;
	*retired = entry;
}

static bool
entry_stale(const struct table_entry *entry)
{
	return entry->image == NULL || entry->execs_pending > 0 || entry->exec_opened ||
	       entry->rechecks != entry->rechecked;
}

/* Hand the opens made during an execve to image (NULL: to nobody). */
static void
deliver_exec_inputs(struct process_table *table, struct process_info *image, void **inputs,
		    size_t count)
{
	for (size_t i = 0; i < count; i++)
		if (table->options.hooks.exec_input)
			table->options.hooks.exec_input(table->options.hooks.context, image,
							inputs[i]);
	free(inputs);
}

static void
close_files(int *files, size_t count)
{
	for (size_t i = 0; i < count; i++)
		close(files[i]);
	free(files);
}

/*
 * Entries taken out of the table: their pending exec inputs go to their
 * image, their exit is reported when they exited, and they are freed.
 * Called with no lock held.
 */
static void
retire_entries(struct process_table *table, struct table_entry *retired)
{
	while (retired) {
		struct table_entry *entry = retired;
		retired = entry->next;
		deliver_exec_inputs(table, entry->image, entry->exec_inputs,
				    entry->exec_input_count);
		close_files(entry->exec_files, entry->exec_file_count);
		if (entry->exited && entry->image && table->options.hooks.image_exited)
			table->options.hooks.image_exited(table->options.hooks.context, entry->image,
							  entry->exit_ns, entry->exit_known,
							  entry->exit_status);
		process_info_release(entry->image);
		free(entry);
	}
}

/*
 * A builder is done with entry (its image published or not): when it was
 * the last one and the process exited meanwhile, the exit is reported
 * now, for the image the entry ended with.  Under lock.
 */
static void
builder_done(struct process_table *table, struct table_entry *entry,
	     struct table_entry **retired)
{
	entry->builders--;
	if (entry->builders > 0)
		return;
	if (entry->exited || entry->image == NULL)
		unlink_entry(table, entry, retired);
}

/*
 * Publish what a builder made.  The first builder of a generation wins:
 * its image becomes the entry's; a later one (two threads built the same
 * image) frees its copy and takes the winner's.  Hooks run after the lock.
 */
static struct process_info *
publish(struct process_table *table, struct build_plan *plan, struct process_info *image,
	bool failed_exec)
{
	struct table_entry *retired = NULL, *entry;
	struct process_info *result = NULL, *replaced = NULL, *loser = NULL;
	struct process_info *inputs_image = NULL;
	void **inputs = NULL;
	size_t input_count = 0, file_count = 0;
	int *files = NULL;
	struct executable_job *job = NULL;

	pthread_mutex_lock(&table->lock);
	entry = find_entry(table, plan->pid);
	/* Our builders count keeps the entry in the table until we are done. */
	if (failed_exec) {
		/* The execve failed (ENOEXEC, say): same program, same image. */
		if (entry->generation == plan->generation && entry->exec_opened &&
		    entry->execs_pending == 0) {
			entry->exec_opened = false;
			inputs = entry->exec_inputs, input_count = entry->exec_input_count;
			files = entry->exec_files, file_count = entry->exec_file_count;
			entry->exec_inputs = NULL, entry->exec_input_count = 0;
			entry->exec_files = NULL, entry->exec_file_count = 0;
		}
		inputs_image = process_info_acquire(plan->previous);
		result = process_info_acquire(plan->previous);
	} else if (image && entry->generation == plan->generation) {
		replaced = entry->image;
		entry->image = process_info_acquire(image);
		if (replaced && image->exec_index > replaced->exec_index &&
		    atomic_load(&replaced->successor) == NULL)
			atomic_store(&replaced->successor, process_info_acquire(image));
		entry->generation++;
		entry->execs_pending -= plan->execs;
		entry->rechecked = plan->rechecks;
		if (plan->exec_opened && plan->execs == 0 && table->netlink_fd >= 0)
			entry->execs_ahead++; /* counted from the exec-open: its event is to come */
		if (plan->exec_opened) {
			entry->exec_opened = false;
			inputs = entry->exec_inputs, input_count = entry->exec_input_count;
			files = entry->exec_files, file_count = entry->exec_file_count;
			entry->exec_inputs = NULL, entry->exec_input_count = 0;
			entry->exec_files = NULL, entry->exec_file_count = 0;
		}
		if (entry->attaches != plan->attaches)
			atomic_store(&image->traced, true); /* attached while we read */
		inputs_image = process_info_acquire(image);
		result = image; /* the builder's reference */
		if (plan->pinned_fd >= 0 && (job = calloc(1, sizeof(*job))) != NULL) {
			job->image = process_info_acquire(image);
			job->pinned_fd = plan->pinned_fd;
			job->mount_id = plan->mount_id;
			job->exec_files = files, job->exec_file_count = file_count;
			files = NULL, file_count = 0;
			plan->pinned_fd = -1;
		}
	} else if (image) {
		loser = image;
		result = process_info_acquire(entry->image);
	}
	builder_done(table, entry, &retired);
	pthread_mutex_unlock(&table->lock);

	if (image && result == image && job == NULL)
		process_table_executable_hashed(table, image, NULL); /* nothing to hash from */
	if (plan->pinned_fd >= 0)
		close(plan->pinned_fd);
	plan->pinned_fd = -1;
	close_files(files, file_count);
	if (inputs)
		deliver_exec_inputs(table, inputs_image, inputs, input_count);
	process_info_release(inputs_image);
	retire_entries(table, retired);
	process_info_release(replaced);
	process_info_release(loser);
	if (job)
		queue_executable_job(table, job);
	return result;
}

/*
 * A process seen once, not kept: pid's entry belongs to a process that
 * exited while its image was being built, and pid is asked for again.
 */
static struct process_info *
standalone_image(struct process_table *table, pid_t pid, int depth)
{
	struct build_plan plan = {.pid = pid, .pinned_fd = -1};
	struct process_info *image = read_image(table, &plan, depth);

	if (plan.pinned_fd >= 0)
		close(plan.pinned_fd);
	if (image) {
		image->executable_verdict = -1; /* not published: never hashed */
		if (table->options.hooks.image_seen)
			table->options.hooks.image_seen(table->options.hooks.context, image);
	}
	return image;
}

/*
 * The current image of pid, with a new reference, built when missing or
 * stale (an exec since).  The lock is held only to look and to publish;
 * /proc is read in between, unlocked.  create: make an entry for a pid the
 * table does not know (false: only refresh a known one).
 */
static struct process_info *
lookup(struct process_table *table, pid_t pid, int depth, bool create)
{
	struct table_entry *retired = NULL, *entry;
	struct process_info *image;
	struct build_plan plan = {.pid = pid, .pinned_fd = -1};
	bool checked = table->netlink_fd < 0;
	int64_t running_start = -1;

	if (checked) {
		/* No exit events: make sure the pid was not reused. */
		struct stat_fields fields;
		if (read_stat(pid, &fields) == 0)
			running_start = start_ns_of(table, fields.start_ticks);
	}
	pthread_mutex_lock(&table->lock);
	entry = find_entry(table, pid);
	if (entry && checked && entry->image && entry->builders == 0 && !entry->exited &&
	    entry->image->start_ns != running_start) {
		entry->exited = true; /* seen gone: status unknown */
		entry->exit_known = false;
		entry->exit_ns = wall_clock_ns();
		unlink_entry(table, entry, &retired);
		entry = NULL;
	}
	if (entry && entry->exited) {
		pthread_mutex_unlock(&table->lock);
		return standalone_image(table, pid, depth);
	}
	if (entry && !entry_stale(entry)) {
		image = process_info_acquire(entry->image);
		pthread_mutex_unlock(&table->lock);
		retire_entries(table, retired);
		return image;
	}
	if (entry == NULL && (!create || (entry = insert_entry(table, pid)) == NULL)) {
		pthread_mutex_unlock(&table->lock);
		retire_entries(table, retired);
		return NULL;
	}
	plan.serial = entry->serial;
	plan.generation = entry->generation;
	plan.attaches = entry->attaches;
	plan.previous = process_info_acquire(entry->image);
	plan.execs = entry->execs_pending;
	plan.exec_opened = entry->exec_opened;
	plan.rechecks = entry->rechecks;
	plan.recheck = entry->rechecks != entry->rechecked;
	entry->builders++;
	pthread_mutex_unlock(&table->lock);
	retire_entries(table, retired);

	bool failed_exec = plan.previous && plan.execs == 0 && plan.exec_opened &&
			   image_unchanged(table, pid, plan.previous);
	image = failed_exec ? NULL : read_image(table, &plan, depth);
	/*
	 * Reported before it is published, so the image's record is queued
	 * before that of any image that names it (a later exec's previous).
	 * A copy that loses the race is recorded as the same row.
	 */
	if (image && table->options.hooks.image_seen)
		table->options.hooks.image_seen(table->options.hooks.context, image);
	image = publish(table, &plan, image, failed_exec);
	process_info_release(plan.previous);
	return image;
}

struct process_info *
process_table_lookup(struct process_table *table, pid_t pid)
{
	if (pid <= 0)
		return NULL;
	/*
	 * The caller made its request after any exec of its own, and the
	 * kernel queued that exec's event before then: a drain that began
	 * after the request was read has applied it.  So one drain serves
	 * every lookup of a request (the recorder's and the policy's at open,
	 * each write, each flush), and any other thread's drain serves too.
	 */
	int64_t (*received_ns)(void) = table->options.hooks.request_received_ns;
	int64_t received = received_ns ? received_ns() : 0;
	if (received == 0 || atomic_load_explicit(&table->drained_since_ns,
						  memory_order_acquire) <= received)
		drain_connector(table);
	return lookup(table, pid, 0, true);
}

bool
process_table_tracks_changes(const struct process_table *table)
{
	return table->netlink_fd >= 0;
}

bool
process_table_unchanged_since(struct process_table *table, pid_t pid, int64_t since_ns)
{
	if (pid <= 0 || table->netlink_fd < 0 || since_ns <= table->tracked_since_ns)
		return false;
	/* Whatever the kernel queued until now is applied, whoever drained
	 * last: an exec or exit before this call is in its slot. */
	drain_connector(table);
	if (atomic_load_explicit(&table->lost_ns, memory_order_acquire) >= since_ns)
		return false;
	return atomic_load_explicit(&table->changed_ns[(uint32_t)pid & (CHANGE_SLOTS - 1)],
				    memory_order_acquire) < since_ns;
}

struct process_info *
process_table_peek(struct process_table *table, pid_t pid)
{
	struct process_info *image = NULL;

	if (pid <= 0)
		return NULL;
	pthread_mutex_lock(&table->lock);
	struct table_entry *entry = find_entry(table, pid);
	if (entry && !entry->exited && !entry_stale(entry))
		image = process_info_acquire(entry->image);
	pthread_mutex_unlock(&table->lock);
	return image;
}

void
process_table_note_exec(struct process_table *table, pid_t pid, void *cookie, int fd)
{
	struct table_entry *entry;
	int file = fd >= 0 ? fcntl(fd, F_DUPFD_CLOEXEC, 0) : -1;

	pthread_mutex_lock(&table->lock);
	entry = find_entry(table, pid);
	if (entry == NULL) {
		/* The image before the execve is recorded too: it made the call
		 * (and /proc still shows it until the execve's point of no return). */
		pthread_mutex_unlock(&table->lock);
		drain_connector(table);
		process_info_release(lookup(table, pid, 0, true));
		pthread_mutex_lock(&table->lock);
		entry = find_entry(table, pid);
	}
	void **inputs = entry && !entry->exited
				? realloc(entry->exec_inputs,
					  (entry->exec_input_count + 1) * sizeof(void *))
				: NULL;
	if (inputs) {
		entry->exec_opened = true;
		entry->exec_inputs = inputs;
		inputs[entry->exec_input_count++] = cookie;
		int *files = file >= 0 && entry->exec_file_count < EXEC_FILE_LIMIT
				     ? realloc(entry->exec_files,
					       (entry->exec_file_count + 1) * sizeof(int))
				     : NULL;
		if (files) {
			entry->exec_files = files;
			files[entry->exec_file_count++] = file;
			file = -1;
		}
	}
	pthread_mutex_unlock(&table->lock);
	if (file >= 0)
		close(file);
	if (inputs == NULL && table->options.hooks.exec_input)
		table->options.hooks.exec_input(table->options.hooks.context, NULL, cookie);
}

/* ---- events of the process connector (marks only, under lock) ---------------- */

static void
wake_watcher(struct process_table *table)
{
	uint64_t one = 1;

	if (table->wake_fd >= 0)
		(void)!write(table->wake_fd, &one, sizeof(one));
}

void
process_table_want_exec_facts(struct process_table *table, bool wanted)
{
	if (table == NULL)
		return;
	/* Switched on: the records kept from before may be stale (an exec
	 * event lost while off, when events gather): none is trusted.  An
	 * exec noted between the two steps is dropped too: unseen, as it
	 * would be without the records. */
	if (!atomic_exchange(&table->exec_facts_wanted, wanted) && wanted)
		process_exec_records_clear(table->exec_records);
}

/* An execve completed: the next lookup (or the watcher) builds the new image. */
static void
mark_exec(struct process_table *table, pid_t pid)
{
	bool wake = false;

	/* The new image's argv and environ are to be read at once (FACTS FROM
	 * EXEC TIME): by the watcher, or by the image's first lookup if that
	 * comes first.  A full queue leaves the read to that lookup. */
	bool wanted = atomic_load_explicit(&table->exec_facts_wanted, memory_order_relaxed);
	if (wanted)
		process_exec_records_note(table->exec_records, pid);
	else
		process_exec_records_exited(table->exec_records, pid); /* its record was
									* of an image before */
	pthread_mutex_lock(&table->lock);
	if (wanted && table->exec_read_count < EXEC_READ_QUEUE) {
		wake = table->exec_read_count == 0; /* once per batch */
		table->exec_reads[table->exec_read_count++] = pid;
	}
	struct table_entry *entry = find_entry(table, pid);
	if (entry && !entry->exited) {
		if (entry->execs_ahead > 0) {
			entry->execs_ahead--; /* a lookup made this image already */
		} else {
			entry->execs_pending++;
			if (table->stale_count == table->stale_capacity) {
				/* realloc() may grow it in place: the capacity moves either way. */
				size_t grown = table->stale_capacity * 2 + 16;
				pid_t *stale = realloc(table->stale, grown * sizeof(pid_t));
				if (stale) {
					table->stale = stale;
					table->stale_capacity = grown;
				}
			}
			if (table->stale_count < table->stale_capacity) {
				table->stale[table->stale_count++] = pid;
				wake = true;
			}
		}
	}
	pthread_mutex_unlock(&table->lock);
	if (wake)
		wake_watcher(table);
}

static void
mark_exit(struct process_table *table, pid_t pid, int status, int64_t time_ns,
	  struct table_entry **retired)
{
	process_exec_records_exited(table->exec_records, pid);
	pthread_mutex_lock(&table->lock);
	struct table_entry *entry = find_entry(table, pid);
	if (entry && !entry->exited) {
		entry->exited = true;
		entry->exit_known = true;
		entry->exit_status = status;
		entry->exit_ns = time_ns;
		/* Being built: the last builder reports it, for the image it made. */
		if (entry->builders == 0)
			unlink_entry(table, entry, retired);
	}
	pthread_mutex_unlock(&table->lock);
}

/* A tracer attached: the image is traced for good, and so is one being built. */
static void
mark_traced(struct process_table *table, pid_t pid)
{
	pthread_mutex_lock(&table->lock);
	struct table_entry *entry = find_entry(table, pid);
	if (entry) {
		entry->attaches++;
		if (entry->image)
			atomic_store(&entry->image->traced, true);
	}
	pthread_mutex_unlock(&table->lock);
}

/*
 * Without the connector (or after it overflowed): entries whose process is
 * gone, or whose pid now names another process, are reported as seen gone,
 * status unknown, and dropped.  /proc is read between two short holds of
 * the lock.
 */
static void
sweep(struct process_table *table)
{
	struct known {
		pid_t pid;
		uint64_t serial;
		int64_t start_ns;
	} *known = NULL;
	size_t count = 0, capacity = 0;
	struct table_entry *retired = NULL;

	pthread_mutex_lock(&table->lock);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		for (struct table_entry *entry = table->slots[i]; entry; entry = entry->next) {
			if (entry->image == NULL || entry->builders > 0 || entry->exited)
				continue;
			if (count == capacity) {
				struct known *grown =
					realloc(known, (capacity * 2 + 64) * sizeof(*known));
				if (grown == NULL)
					goto collected;
				known = grown;
				capacity = capacity * 2 + 64;
			}
			known[count++] = (struct known){entry->pid, entry->serial,
							entry->image->start_ns};
		}
collected:
	pthread_mutex_unlock(&table->lock);

	size_t gone = 0;
	for (size_t i = 0; i < count; i++) {
		struct stat_fields fields;
		if (read_stat(known[i].pid, &fields) < 0 ||
		    start_ns_of(table, fields.start_ticks) != known[i].start_ns)
			known[gone++] = known[i];
	}
	if (gone > 0) {
		int64_t now = wall_clock_ns();
		pthread_mutex_lock(&table->lock);
		for (size_t i = 0; i < gone; i++) {
			struct table_entry *entry = find_entry(table, known[i].pid);
			if (entry && entry->serial == known[i].serial && entry->builders == 0 &&
			    !entry->exited && entry->image &&
			    entry->image->start_ns == known[i].start_ns) {
				entry->exited = true;
				entry->exit_known = false;
				entry->exit_ns = now;
				unlink_entry(table, entry, &retired);
			}
		}
		pthread_mutex_unlock(&table->lock);
	}
	free(known);
	retire_entries(table, retired);
}

/*
 * The connector overflowed: an exec or PTRACE event of any process may be
 * lost.  Every record goes (no image is held to one, and no forked child
 * to its parent's: PROCESS_EXEC_UNSEEN until its next exec), and every
 * image is read again at its next lookup (entry_stale()).
 */
static void
events_lost(struct process_table *table)
{
	process_exec_records_clear(table->exec_records);
	pthread_mutex_lock(&table->lock);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		for (struct table_entry *entry = table->slots[i]; entry; entry = entry->next)
			entry->rechecks++;
	pthread_mutex_unlock(&table->lock);
}

static int
connector_open(void)
{
	struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC,
				      .nl_pid = 0};
	struct {
		struct nlmsghdr header;
		struct cn_msg message;
		enum proc_cn_mcast_op operation;
	} __attribute__((packed)) request;
	int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);

	if (fd < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&address, sizeof(address)) < 0)
		goto fail;
	memset(&request, 0, sizeof(request));
	request.header.nlmsg_len = sizeof(request);
	request.header.nlmsg_type = NLMSG_DONE;
	request.header.nlmsg_pid = (unsigned)getpid();
	request.message.id.idx = CN_IDX_PROC;
	request.message.id.val = CN_VAL_PROC;
	request.message.len = sizeof(enum proc_cn_mcast_op);
	request.operation = PROC_CN_MCAST_LISTEN;
	if (send(fd, &request, sizeof(request), 0) < 0)
		goto fail;
	/*
	 * Linux 6.6+ filters for the listener: only execs, exits and ptrace
	 * attaches, not the fork of every process and thread on the machine
	 * (each one a wakeup of the watcher and a receive).  The same request
	 * with a struct proc_input (operation, event mask) does it; an older
	 * kernel ignores a request of that length and keeps sending all.
	 */
	struct {
		struct nlmsghdr header;
		struct cn_msg message;
		uint32_t operation, events; /* struct proc_input of Linux 6.6 */
	} __attribute__((packed)) filtered;
	memset(&filtered, 0, sizeof(filtered));
	filtered.header = request.header;
	filtered.header.nlmsg_len = sizeof(filtered);
	filtered.message = request.message;
	filtered.message.len = 2 * sizeof(uint32_t);
	filtered.operation = PROC_CN_MCAST_LISTEN;
	filtered.events = PROC_EVENT_EXEC | PROC_EVENT_EXIT | PROC_EVENT_PTRACE;
	(void)!send(fd, &filtered, sizeof(filtered), 0);
	int size = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return fd;
fail:
	close(fd);
	return -1;
}

/*
 * Apply one datagram of the connector (in-memory marks); false when none
 * was waiting.  Exits found go on *retired, to be reported after the locks.
 */
/* An exec or exit of pid at kernel time stamp_ns (see CHANGES SINCE A
 * TIME).  Under connector_lock, so slots only move forward. */
static void
note_change(struct process_table *table, pid_t pid, uint64_t stamp_ns)
{
	/* No stamp (never seen, but cheap to allow for): now is later, so safe. */
	int64_t when = stamp_ns > 0 ? (int64_t)stamp_ns : monotonic_ns();
	_Atomic int64_t *slot = &table->changed_ns[(uint32_t)pid & (CHANGE_SLOTS - 1)];

	if (atomic_load_explicit(slot, memory_order_relaxed) < when)
		atomic_store_explicit(slot, when, memory_order_release);
}

static bool
read_connector(struct process_table *table, struct table_entry **retired)
{
	char buffer[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t length = recv(table->netlink_fd, buffer, sizeof(buffer), MSG_DONTWAIT);
	int64_t wall_now = 0, monotonic_now = 0;

	if (length < 0) {
		if (errno == ENOBUFS) {
			/* Exits and execs were lost: the watcher checks every entry
			 * (and says so: not here, a log may block). */
			atomic_store_explicit(&table->lost_ns, monotonic_ns(), memory_order_release);
			atomic_store(&table->sweep_needed, true);
			wake_watcher(table);
			return true;
		}
		return false;
	}
	for (struct nlmsghdr *header = (struct nlmsghdr *)buffer; NLMSG_OK(header, (size_t)length);
	     header = NLMSG_NEXT(header, length)) {
		if (header->nlmsg_type != NLMSG_DONE)
			continue;
		struct cn_msg *message = NLMSG_DATA(header);
		struct proc_event event;
		/* The event sits 4-byte aligned in the datagram; it wants 8. */
		size_t available = (size_t)((const char *)header + header->nlmsg_len -
					    (const char *)message->data);
		if (available < offsetof(struct proc_event, event_data) + sizeof(event.event_data.exit))
			continue;
		memset(&event, 0, sizeof(event));
		memcpy(&event, message->data, available < sizeof(event) ? available : sizeof(event));
		if (event.what == PROC_EVENT_EXEC) {
			note_change(table, event.event_data.exec.process_tgid, event.timestamp_ns);
			mark_exec(table, event.event_data.exec.process_tgid);
		} else if (event.what == PROC_EVENT_EXIT &&
			   event.event_data.exit.process_pid == event.event_data.exit.process_tgid) {
			note_change(table, event.event_data.exit.process_tgid, event.timestamp_ns);
			if (wall_now == 0) {
				wall_now = wall_clock_ns();
				monotonic_now = monotonic_ns();
			}
			/* When it exited (the event's CLOCK_MONOTONIC stamp), however
			 * late the watcher reads it. */
			int64_t age = monotonic_now - (int64_t)event.timestamp_ns;
			int64_t exit_ns = event.timestamp_ns > 0 && age >= 0 ? wall_now - age
									  : wall_now;
			mark_exit(table, event.event_data.exit.process_tgid,
				  (int)event.event_data.exit.exit_code, exit_ns, retired);
		} else if (event.what == PROC_EVENT_PTRACE &&
			   event.event_data.ptrace.tracer_pid != 0) {
			mark_traced(table, event.event_data.ptrace.process_tgid);
		}
	}
	return true;
}

/*
 * Is every event the kernel queued until now applied, without taking
 * connector_lock?  Yes when the socket holds nothing (a poll that waits for
 * nothing; an overflow shows as an error, for a drain to handle) and no
 * drain is between its recv() and the end of applying what it took: a drain
 * counts itself in connector_readers before its first recv(), so an event
 * the socket no longer holds is counted or applied.  Most lookups find it
 * so, and pay one poll() instead of queuing on the lock behind each other
 * (measured: that lock was most of the daemon's futex waits in an open
 * storm of two processes).
 */
static bool
connector_settled(struct process_table *table)
{
	struct pollfd socket = {.fd = table->netlink_fd, .events = POLLIN};

	if (poll(&socket, 1, 0) != 0)
		return false;
	atomic_thread_fence(memory_order_seq_cst);
	return atomic_load(&table->connector_readers) == 0;
}

/* drained_since_ns moves forward to started, never back. */
static void
note_drained(struct process_table *table, int64_t started)
{
	int64_t drained = atomic_load_explicit(&table->drained_since_ns, memory_order_relaxed);
	while (drained < started &&
	       !atomic_compare_exchange_weak_explicit(&table->drained_since_ns, &drained, started,
						      memory_order_release, memory_order_relaxed))
		;
}

/*
 * Apply every connector event already queued by the kernel.  The kernel
 * queues an exec's event before the new image runs a single instruction,
 * so draining here before a lookup means a process is never taken for the
 * image it replaced, however far behind the watcher thread is.  Events
 * only mark entries; images are built later, with no lock held, and exits
 * are reported once connector_lock is released.
 */
static void
drain_connector(struct process_table *table)
{
	struct table_entry *retired = NULL;

	if (table->netlink_fd < 0)
		return;
	int64_t started = monotonic_ns();
	if (connector_settled(table)) {
		note_drained(table, started);
		return;
	}
	/* Locked before looking: the watcher may hold an event it has read
	 * but not yet applied.  (Netlink has no FIONREAD: a non-blocking
	 * receive that finds nothing is the cheapest look.) */
	pthread_mutex_lock(&table->connector_lock);
	atomic_fetch_add(&table->connector_readers, 1);
	atomic_thread_fence(memory_order_seq_cst); /* counted before any recv() */
	while (read_connector(table, &retired))
		;
	/* Whatever the kernel queued before started is applied now. */
	note_drained(table, started);
	atomic_fetch_sub(&table->connector_readers, 1);
	pthread_mutex_unlock(&table->connector_lock);
	retire_entries(table, retired);
}

/*
 * Read the argv and environ of the images whose exec was noted, first of
 * all (a few microseconds each; see FACTS FROM EXEC TIME).  Watcher only.
 */
static void
read_execs(struct process_table *table)
{
	pid_t pids[EXEC_READ_QUEUE];
	size_t count;

	pthread_mutex_lock(&table->lock);
	count = table->exec_read_count;
	memcpy(pids, table->exec_reads, count * sizeof(pids[0]));
	table->exec_read_count = 0;
	pthread_mutex_unlock(&table->lock);
	for (size_t i = 0; i < count; i++) {
		struct process_exec_facts facts;
		uint64_t start_ticks;
		uint32_t read_began = process_exec_records_clock(table->exec_records);
		if (exec_facts_read(table, pids[i], &start_ticks, &facts) == 0)
			process_exec_records_fulfil(table->exec_records, pids[i], start_ticks,
						    &facts, read_began);
	}
}

/* Build the images of processes that exec'd, so each image is recorded. */
static void
build_stale(struct process_table *table)
{
	pthread_mutex_lock(&table->lock);
	pid_t *stale = table->stale;
	size_t count = table->stale_count;
	table->stale = NULL;
	table->stale_count = table->stale_capacity = 0;
	pthread_mutex_unlock(&table->lock);
	for (size_t i = 0; i < count; i++)
		process_info_release(lookup(table, stale[i], 0, false));
	free(stale);
}

static void *
watcher_main(void *argument)
{
	struct process_table *table = argument;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-procs");
	int64_t resume_ns = 0; /* the connector is watched again from then */
	for (;;) {
		struct pollfd fds[3] = {{.fd = table->stop_pipe[0], .events = POLLIN},
					{.fd = table->wake_fd, .events = POLLIN},
					{.fd = table->netlink_fd, .events = POLLIN}};
		/*
		 * Every event is taken as it comes: an exec's argv and environ
		 * must be read before the new image's own code can rewrite them
		 * (FACTS FROM EXEC TIME in process_table.h), so the watcher never
		 * lets exec events gather.  Without exe: or script: grants
		 * nothing needs exec-time facts, and exec and exit events of the
		 * whole machine, a wakeup each, gather for CONNECTOR_BATCH_MS
		 * after a drain: lookups drain before they look (nobody is taken
		 * for an image it replaced), exits carry their own time, and the
		 * socket holds thousands of events.
		 */
		bool watch_connector = table->netlink_fd >= 0;
		int timeout_ms = 1000;
		if (watch_connector && resume_ns > 0) {
			int64_t wait_ns = resume_ns - monotonic_ns();
			if (wait_ns > 0 &&
			    !atomic_load_explicit(&table->exec_facts_wanted, memory_order_relaxed)) {
				watch_connector = false;
				timeout_ms = (int)((wait_ns + 999999) / 1000000);
			} else {
				resume_ns = 0;
			}
		}
		int ready = poll(fds, watch_connector ? 3 : 2, timeout_ms);
		if (ready < 0 && errno != EINTR)
			break;
		if (fds[0].revents) {
			drain_connector(table); /* the last exits, for the record */
			break;
		}
		if (fds[1].revents & POLLIN) {
			uint64_t count;
			(void)!read(table->wake_fd, &count, sizeof(count));
		}
		if (watch_connector && (fds[2].revents & POLLIN)) {
			drain_connector(table);
			resume_ns = monotonic_ns() + CONNECTOR_BATCH_MS * 1000000LL;
		}
		read_execs(table);
		if (atomic_exchange(&table->sweep_needed, false)) {
			log_warning("process connector overflowed: checking every process; "
				    "one that exec'd meanwhile holds no exe: or script: grant");
			events_lost(table);
			sweep(table);
		} else if (table->netlink_fd < 0 && ready == 0) {
			sweep(table);
		}
		build_stale(table);
	}
	return NULL;
}

/*
 * The wall-clock time of boot in ns: CLOCK_REALTIME less CLOCK_BOOTTIME,
 * the clock the start times in /proc/PID/stat count on.  /proc/stat's
 * btime is the same difference cut to whole seconds, which made every
 * process start up to a second early (a 16 ms job took 969 ms).  The
 * reading whose two wall-clock looks are closest together wins.
 *
 * Rounded to the millisecond: each daemon reads the difference anew, a
 * few nanoseconds apart from the last one's, and a process's identity
 * (PID@START, its run's id) must not change when a daemon is restarted
 * under a job that outlives it.  A millisecond is a tenth of /proc's tick.
 */
#define BOOT_TIME_GRAIN_NS 1000000LL

static int64_t
read_boot_ns(void)
{
	int64_t boot_ns = 0, narrowest = INT64_MAX;

	for (int i = 0; i < 5; i++) {
		struct timespec before, boot, after;
		clock_gettime(CLOCK_REALTIME, &before);
		clock_gettime(CLOCK_BOOTTIME, &boot);
		clock_gettime(CLOCK_REALTIME, &after);
		int64_t before_ns = (int64_t)before.tv_sec * 1000000000LL + before.tv_nsec;
		int64_t after_ns = (int64_t)after.tv_sec * 1000000000LL + after.tv_nsec;
		if (after_ns - before_ns < narrowest) {
			narrowest = after_ns - before_ns;
			boot_ns = before_ns + (after_ns - before_ns) / 2 -
				  ((int64_t)boot.tv_sec * 1000000000LL + boot.tv_nsec);
		}
	}
	return (boot_ns + BOOT_TIME_GRAIN_NS / 2) / BOOT_TIME_GRAIN_NS * BOOT_TIME_GRAIN_NS;
}

void
process_table_set_redaction(struct process_table *table,
			    const struct process_redaction *redaction)
{
	atomic_store_explicit(&table->redaction, redaction, memory_order_release);
}

struct process_table *
process_table_new(const struct process_table_options *options)
{
	struct process_table *table = calloc(1, sizeof(*table));
	pthread_condattr_t monotonic;

	if (table == NULL)
		return NULL;
	pthread_mutex_init(&table->lock, NULL);
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&table->verdict_changed, &monotonic);
	pthread_condattr_destroy(&monotonic);
	pthread_mutex_init(&table->connector_lock, NULL);
	pthread_mutex_init(&table->jobs_lock, NULL);
	pthread_cond_init(&table->jobs_ready, NULL);
	table->jobs_tail = &table->jobs_head;
	table->options = *options;
	atomic_init(&table->redaction, options->redaction);
	table->mount_point = strdup(options->mount_point ? options->mount_point : "");
	table->boot_ns = read_boot_ns();
	table->ticks_per_second = sysconf(_SC_CLK_TCK);
	if (table->ticks_per_second <= 0)
		table->ticks_per_second = 100;
	table->netlink_fd = -1;
	table->stop_pipe[0] = table->stop_pipe[1] = -1;
	table->wake_fd = -1;
	atomic_init(&table->sweep_needed, false);
	gethostname(table->host, sizeof(table->host) - 1);
	table->exec_records = process_exec_records_new(EXEC_RECORDS);
	table->memory_reader = proc_reader_new(MEMORY_READ_DEADLINE_MS);
	process_trusted_directories_init(&table->trusted, NULL, 0, table->mount_point);
	if (stat("/proc/self/ns/mnt", &table->own_mount_namespace) < 0)
		table->own_mount_namespace.st_ino = 0;
	if (stat("/proc/self/ns/user", &table->own_user_namespace) < 0)
		table->own_user_namespace.st_ino = 0;
	if (table->mount_point == NULL || table->exec_records == NULL ||
	    table->memory_reader == NULL) {
		process_table_free(table);
		return NULL;
	}
	return table;
}

int
process_table_start(struct process_table *table)
{
	table->netlink_fd = connector_open();
	table->tracked_since_ns = monotonic_ns(); /* subscribed: changes from now on are seen */
	if (table->netlink_fd < 0)
		log_warning("process connector unavailable (%s): exit statuses will be "
			    "recorded as unknown, and no exe: or script: grant holds (no "
			    "process is seen at exec)",
			    strerror(errno));
	if (pipe2(table->stop_pipe, O_CLOEXEC) < 0)
		return -1;
	table->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (table->wake_fd < 0)
		return -1;
	if (pthread_create(&table->executable_thread, NULL, executable_main, table) != 0)
		return -1;
	pthread_mutex_lock(&table->jobs_lock);
	table->jobs_running = true;
	pthread_mutex_unlock(&table->jobs_lock);
	if (pthread_create(&table->watcher, NULL, watcher_main, table) != 0)
		return -1;
	table->watcher_running = true;
	return table->netlink_fd < 0 ? -1 : 0;
}

void
process_table_stop(struct process_table *table)
{
	if (table->watcher_running) {
		(void)!write(table->stop_pipe[1], "x", 1);
		pthread_join(table->watcher, NULL);
		table->watcher_running = false;
	}
	/*
	 * The executable thread finishes the jobs queued (an open each: the
	 * hashing itself is the pool's, which the recorder drains), so a clean
	 * unmount records the hash of everything that ran.
	 */
	pthread_mutex_lock(&table->jobs_lock);
	bool running = table->jobs_running;
	table->jobs_running = false;
	table->jobs_stopping = true;
	pthread_cond_broadcast(&table->jobs_ready);
	pthread_mutex_unlock(&table->jobs_lock);
	if (running)
		pthread_join(table->executable_thread, NULL);
	pthread_mutex_lock(&table->jobs_lock);
	struct executable_job *jobs = table->jobs_head;
	table->jobs_head = NULL;
	table->jobs_tail = &table->jobs_head;
	pthread_mutex_unlock(&table->jobs_lock);
	/* Never started: unknown, and their waiters are told so. */
	while (jobs) {
		struct executable_job *next = jobs->next;
		process_table_executable_hashed(table, jobs->image, NULL);
		executable_job_free(jobs);
		jobs = next;
	}
}

void
process_table_free(struct process_table *table)
{
	struct table_entry *retired = NULL;

	if (table == NULL)
		return;
	process_table_stop(table);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		while (table->slots[i])
			unlink_entry(table, table->slots[i], &retired);
	retire_entries(table, retired);
	if (table->netlink_fd >= 0)
		close(table->netlink_fd);
	if (table->stop_pipe[0] >= 0) {
		close(table->stop_pipe[0]);
		close(table->stop_pipe[1]);
	}
	if (table->wake_fd >= 0)
		close(table->wake_fd);
	free(table->stale);
	free(table->mount_point);
	process_exec_records_free(table->exec_records);
	proc_reader_free(table->memory_reader);
	process_trusted_directories_release(&table->trusted);
	pthread_mutex_destroy(&table->lock);
	pthread_cond_destroy(&table->verdict_changed);
	pthread_mutex_destroy(&table->connector_lock);
	pthread_mutex_destroy(&table->jobs_lock);
	pthread_cond_destroy(&table->jobs_ready);
	free(table);
}
