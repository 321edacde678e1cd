/*
 * process_table.h - process identity: who a caller is, once per process.
 *
 * A process image is identified by (pid, start time, exec index): the start
 * time tells apart two processes that reused a pid, the exec index counts
 * execve() calls of one process, each of which starts a new image (a cleared
 * program that execs `cat` is not that program).  The table reads /proc once
 * per image, on first sight, and keeps the result; the kernel's process
 * connector (netlink) tells it about execs and exits, so entries never go
 * stale and exit statuses are known.  Without the connector (no
 * CAP_NET_ADMIN), entries are checked against the start time in /proc and
 * exits are noticed by a sweep, with the exit status recorded as unknown.
 *
 * Images and runs are reference counted and immutable once published, but
 * for store_id (the recorder's writer thread alone), traced (an atomic that
 * only ever goes from false to true) and the hasher's verdict (under the
 * table's lock, see process_table_executable_hash).  executable_hash is
 * never set after publication: the hash arrives later as its own event.
 *
 * An image keeps the one before its execve (previous) only as a detached
 * copy that has no previous of its own, so a process that execs itself
 * thousands of times holds two images, not a chain.
 */
#ifndef PROVFS_PROCESS_TABLE_H
#define PROVFS_PROCESS_TABLE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct run_info {
	atomic_int references;
	char uuid[37];
	char *job_name;
	const char *named_by; /* "PROVFS_JOB" or "session" */
	pid_t root_pid;
	int64_t root_start_ns;
	int64_t started_ns;
	char *parent_namespace; /* OpenLineage orchestrator run, or NULL */
	char *parent_job_name;
	char *parent_run_id;
	char *root_parent_namespace; /* the root of the orchestrator's chain, or NULL */
	char *root_parent_job_name;
	char *root_parent_run_id;
	int64_t store_id; /* writer thread only; 0 until stored */
};

/* What an image's argv and environ were at exec (FACTS FROM EXEC TIME, below). */
struct process_exec_facts {
	uint64_t layout;           /* hash of argv's and environ's addresses: the image */
	uint64_t argv_hash;        /* XXH3-64 of cmdline's bytes */
	uint64_t environment_hash; /* XXH3-64 of environ's bytes */
	unsigned int injection;    /* process_injection_of(environ) */
};

struct process_info {
	atomic_int references;
	pid_t pid;
	int64_t start_ns;
	uint64_t kernel_id; /* pidfs inode of the process (Linux >= 6.9): unique since
			     * boot; 0 when unknown or before pidfs */
	int exec_index;
	pid_t parent_pid;
	pid_t session_id;
	uid_t uid;
	gid_t gid;
	char *executable;   /* may be NULL (kernel thread, gone) */
	char *argv;         /* NUL-terminated words, redacted */
	size_t argv_length; /* bytes in argv including every NUL */
	char *cwd;
	char *cgroup;
	char *job; /* PROVFS_JOB, or NULL */
	int64_t seen_ns;
	struct process_info *parent;   /* referenced; NULL at the top */
	struct process_info *previous; /* image before execve, as a detached copy
					* whose own previous is NULL; referenced */
	struct run_info *run;          /* referenced */
	/* The image its process exec'd next, once the table has built it
	 * (set once; referenced): what a descriptor it opened and the
	 * process kept across the exec was handed to. */
	_Atomic(struct process_info *) successor;
	char executable_hash[33];      /* "" (the hash comes as a later event) */
	int64_t store_id;              /* writer thread only */
	/*
	 * What the label policy needs to trust an exe:/script: grant.  Read
	 * with the image's other facts at first sight; traced also follows
	 * the process connector's ptrace events for the life of the image.
	 */
	unsigned int environment_injection; /* PROCESS_* trust facts, below: what
					     * environ can inject, and the
					     * executed inode's owner and mode */
	atomic_bool traced;                 /* a tracer is (or was) attached */
	dev_t executable_device;            /* the very inode that was executed, as the */
	ino_t executable_inode;             /* kernel's /proc/PID/exe names it; 0/0 unknown */
	/* What the image was held to (FACTS FROM EXEC TIME, below): valid when
	 * PROCESS_EXEC_UNSEEN is clear; a forked child is held to it too. */
	struct process_exec_facts exec_facts;

	/* The hasher's verdict on that inode: under the table's lock. */
	int executable_verdict;             /* 0 pending, 1 hashed, -1 unknown */
	char executable_verdict_hash[33];
	atomic_int mapped_code; /* process_table_foreign_code(): 0 not looked at yet,
				 * 1 root's files only, -1 another's */
	struct process_info *release_next;  /* process_info_release's own worklist */
};

/*
 * The trust facts of an image, one word (environment_injection, which the
 * policy receives as policy_subject.injection).  The INJECTION bits name
 * environment variables through which a caller can run its own code;
 * PYTHON_NO_USER_SITE is PYTHONNOUSERSITE set (not empty).  ARGV0_UNTRUSTED
 * says that argv[0] may lead Python to a directory someone other than root
 * controls, where a virtual environment's pyvenv.cfg would make it run
 * that environment's site-packages (process_argv0_trust()).  The
 * EXECUTABLE bits come from the statx of the pinned executed inode, never
 * from a name.  All but PYTHON_NO_USER_SITE are negative, so that an image
 * whose facts could not be read is never trusted: a root-owned executable
 * not writable by group or others, started by a name that leads to it
 * through root's directories, has none of them.
 *
 * FOREIGN_NAMESPACE: the process's mount or user namespace is not the
 * daemon's (/proc/PID/ns/mnt and /proc/PID/ns/user against the daemon's
 * own, by device and inode, once per image), or could not be compared.
 * Names mean something else there: a user who may make a user namespace
 * (unshare -rm) can bind-mount a script of theirs over a granted script's
 * path, or any file over a granted executable's, and the daemon, which
 * judges paths in its own view, would take one for the other.
 */
enum process_injection {
	PROCESS_INJECTION_LOADER = 1u << 0, /* LD_PRELOAD, LD_LIBRARY_PATH, LD_AUDIT, ... */
	PROCESS_INJECTION_SCRIPT = 1u << 1, /* PYTHONPATH, PYTHONSTARTUP, PERL5LIB, NODE_OPTIONS, ... */
	PROCESS_PYTHON_NO_USER_SITE = 1u << 2,        /* PYTHONNOUSERSITE=1 */
	PROCESS_EXECUTABLE_UNKNOWN = 1u << 3,         /* owner and mode not read */
	PROCESS_EXECUTABLE_NOT_ROOT = 1u << 4,        /* not owned by root (or unknown) */
	PROCESS_EXECUTABLE_SHARED_WRITABLE = 1u << 5, /* writable by group or others (or unknown) */
	PROCESS_ARGV0_UNTRUSTED = 1u << 6,            /* argv[0] may lead Python elsewhere */
	PROCESS_ARGV_CHANGED = 1u << 7,        /* argv's bytes are not those at exec */
	PROCESS_ENVIRONMENT_CHANGED = 1u << 8, /* environ's bytes are not those at exec */
	PROCESS_EXEC_UNSEEN = 1u << 9,         /* the image's exec was not seen: no facts
						* from exec time to hold the others to */
	PROCESS_FOREIGN_NAMESPACE = 1u << 10,  /* another mount or user namespace than the
						* daemon's (or unknown) */
	PROCESS_MEMORY_UNREAD = 1u << 11,      /* argv and environ unknown: the process kept
						* its memory from us (proc_reader.h) */
};

/*
 * FACTS FROM EXEC TIME
 *
 * /proc/PID/cmdline and /proc/PID/environ read the process's own memory,
 * which code running in it may rewrite: a usercustomize.py that turns
 * "python3 -W ignore" into "python3 -I" in place, a preloaded object whose
 * constructor wipes LD_PRELOAD.  So the table also reads them when the
 * image starts: on each exec event of the process connector, the watcher
 * thread (or the first lookup, whichever comes first) reads stat, cmdline
 * and environ and keeps a record of what it saw (struct process_exec_facts),
 * and an image built later is held to it (process_exec_facts_apply()).
 *
 * The records are kept per process, keyed by pid and start time, and the
 * image by its memory layout: the addresses of its argv and environment
 * (fields 48-51 of /proc/PID/stat), which the kernel sets at exec and the
 * process cannot change without CAP_SYS_RESOURCE; a later exec, or a pid
 * reused, never matches.  A child forked without exec has its parent's
 * layout and is held to the parent image's record.
 *
 * What it guarantees: argv and environ are those of the exec's first read,
 * which comes as soon as the watcher is scheduled after the exec (tens of
 * microseconds on an idle machine; the kernel queues the event before the
 * new image runs).  What it does not: code that runs in the image before
 * that read.  Python's site and usercustomize run milliseconds after exec,
 * so a rewrite there is caught unless the daemon is starved of CPU for that
 * long; the dynamic loader runs an LD_PRELOAD object's constructor a few
 * hundred microseconds after exec, so a constructor that rewrites environ
 * at once races the watcher, and a loaded machine can let it win.
 *
 * The record itself is struct process_exec_facts, above struct process_info.
 */

/*
 * The trust facts of an image whose environment_injection was computed
 * from the facts now, held to those at exec (NULL: none recorded):
 * PROCESS_EXEC_UNSEEN without a record or when the layouts differ (another
 * image); else PROCESS_ARGV_CHANGED and PROCESS_ENVIRONMENT_CHANGED for
 * bytes that differ, the PROCESS_INJECTION_* bits of both, and
 * PROCESS_PYTHON_NO_USER_SITE only when both had it.  Pure.
 */
unsigned int process_exec_facts_apply(unsigned int injection,
				      const struct process_exec_facts *at_exec,
				      const struct process_exec_facts *now);

/*
 * The records, a fixed table (no allocation after process_exec_records_new):
 * capacity entries of 48 bytes, in sets of eight by pid; a new record takes
 * a free entry of its set, else the oldest (whose image then counts as
 * unseen).  An exit frees its process's entry.  Thread-safe: each call
 * holds the table's own lock (no I/O under it) for a scan of one set.
 */
struct process_exec_records;

/* capacity rounded up to a multiple of eight; NULL when out of memory. */
struct process_exec_records *process_exec_records_new(size_t capacity);
void process_exec_records_free(struct process_exec_records *records);

/* pid exec'd: its record waits for a first read (pending), in place of any before. */
void process_exec_records_note(struct process_exec_records *records, pid_t pid);

/*
 * The records' clock, to be read before reading an image that may fulfil
 * a record: it counts the records noted so far.
 */
uint32_t process_exec_records_clock(struct process_exec_records *records);

/*
 * The first read of pid's image since its exec was noted: kept when pid's
 * record is pending and was noted before read_began, the clock read before
 * the first read of the image.  The exec's event comes after the exec, so
 * a read begun after it was noted shows the new image; one begun earlier
 * may show the image before the exec (a lookup racing the exec), and is
 * ignored, as is any read when pid has no record or one read already
 * (which the earlier read keeps).
 */
void process_exec_records_fulfil(struct process_exec_records *records, pid_t pid,
				 uint64_t start_ticks, const struct process_exec_facts *facts,
				 uint32_t read_began);

/* pid exited (or exec'd while facts are not wanted): its record goes. */
void process_exec_records_exited(struct process_exec_records *records, pid_t pid);

/* Every record goes (facts switched on again, or exec events were lost). */
void process_exec_records_clear(struct process_exec_records *records);

/*
 * Could no record of pid, started at start_ticks (clock ticks since boot),
 * have gone since it started (its set full and one replaced, or every
 * record cleared)?  False: an exec of pid may have left no record.  A
 * forked child is held to its parent's record only when this is true and
 * pid has no record (process_table.c, held_to_exec()).
 */
bool process_exec_records_complete_since(struct process_exec_records *records, pid_t pid,
					 uint64_t start_ticks);

enum process_exec_record_state {
	PROCESS_EXEC_RECORD_NONE,    /* no exec of pid seen (or the record was replaced) */
	PROCESS_EXEC_RECORD_PENDING, /* exec seen, not yet read */
	PROCESS_EXEC_RECORD_READ,    /* *facts filled */
};

/*
 * What is recorded for pid started at start_ticks: PENDING whatever the
 * start (the exec event carries none), READ only for that very process.
 */
enum process_exec_record_state process_exec_records_find(struct process_exec_records *records,
							 pid_t pid, uint64_t start_ticks,
							 struct process_exec_facts *facts);

/*
 * The PROCESS_INJECTION_* and PROCESS_PYTHON_NO_USER_SITE bits that an
 * environment (NUL-separated NAME=value entries, length bytes) carries.
 * The variables are listed in process_table.c.
 */
unsigned int process_injection_of(const char *environment, size_t length);

/*
 * The directories argv[0] may lead Python to (process_argv0_trust()),
 * fixed when the table is made: /usr/local/sbin, /usr/local/bin,
 * /usr/sbin, /usr/bin, /sbin and /bin by default, each kept only when it
 * and every directory above it is owned by root and writable by no group
 * or other user (a directory above may be writable if sticky; a symlink
 * on the way, owned by root, has its target checked alike: /bin ->
 * usr/bin), and it is not under mount_point (this provfs's own mount; may
 * be NULL).  Each kept directory is held open (O_PATH) under its name as
 * given.  Init walks those names (an lstat per component): call it where
 * waiting on a filesystem is harmless, never on a request thread.
 */
#define PROCESS_TRUSTED_DIRECTORY_MAX 8

struct process_trusted_directory {
	char *name; /* as given: compared as a string, never walked again */
	int fd;     /* O_PATH, O_DIRECTORY */
	dev_t device;
	ino_t inode;
};

struct process_trusted_directories {
	size_t count;
	struct process_trusted_directory directory[PROCESS_TRUSTED_DIRECTORY_MAX];
};

/* names NULL: the default list above (count ignored). */
void process_trusted_directories_init(struct process_trusted_directories *trusted,
				      const char *const *names, size_t count,
				      const char *mount_point);
void process_trusted_directories_release(struct process_trusted_directories *trusted);

/*
 * PROCESS_ARGV0_UNTRUSTED, or 0 when argv0 leads Python to the executed
 * inode (device, inode) through trusted directories only.  Python takes
 * its own path from argv[0], not from the kernel: argv0 itself when it
 * has a slash (relative to cwd), else the first executable of that name in
 * the directories of path (the PATH value; NULL when the environment has
 * none or could not be read); it reads pyvenv.cfg in that directory and
 * the one above.  So argv0's directory (cwd joined, "./" dropped), or
 * every PATH entry up to and including the one where argv0 is found, must
 * be one of trusted's names, exactly as a string: "/usr/bin/../bin", a
 * trailing slash, an empty or relative entry, a directory not in the list
 * (~/.local/bin first on PATH, /usr/games) make it untrusted, fail-closed.
 * The file is looked up by its one name with openat2() beneath the
 * trusted directory's descriptor (symlinks followed only inside it, no
 * mount crossed), and must be the executed inode.
 *
 * Cost: one or a few openat2 and statx calls in root's own directories,
 * once per image.  No name the process gave is walked, so no filesystem of
 * the user's (a FUSE mount of theirs on PATH, a stalled NFS home) is ever
 * asked: safe on a request thread.
 */
unsigned int process_argv0_trust(const struct process_trusted_directories *trusted,
				 const char *argv0, const char *cwd, const char *path,
				 dev_t device, ino_t inode);

struct process_table;

/*
 * Hooks the table calls: a new image to record, an exit, and an executable
 * to hash.  image_seen, image_exited and exec_input are called from request
 * threads and the watcher thread, never with a table lock held; they must
 * not block on I/O.  hash_executable is called from the table's own
 * executable thread with fd, a readable descriptor of the very inode the
 * image executed (never opened through a FUSE or stacked filesystem), which
 * the hook owns; the hook must end with process_table_executable_hashed(),
 * now or from the thread that hashes.
 */
struct process_table_hooks {
	void *context;
	void (*image_seen)(void *context, struct process_info *image);
	void (*image_exited)(void *context, struct process_info *image, int64_t time_ns,
			     bool status_known, int status);
	void (*hash_executable)(void *context, struct process_info *image, int fd);
	/* An open made during execve (note_exec) now has the image it belongs to. */
	void (*exec_input)(void *context, struct process_info *image, void *cookie);
	/*
	 * When the request the calling thread handles was read (CLOCK_MONOTONIC
	 * ns, 0 off request threads; caller_request_received_ns()).  A lookup
	 * skips draining the connector when a drain has begun since: the
	 * caller's exec, if any, came before its request.  NULL: always drain.
	 */
	int64_t (*request_received_ns)(void);
};

/* fnmatch globs for argv words: a matching word is stored as [REDACTED]. */
struct process_redaction {
	const char *const *globs;
	size_t count;
};

struct process_table_options {
	const struct process_redaction *redaction; /* borrowed; NULL: none */
	const char *mount_point;   /* executables inside it are hashed from the backing file */
	int backing_fd;            /* borrowed */
	struct process_table_hooks hooks;
};

struct process_table *process_table_new(const struct process_table_options *options);

/*
 * Redact with these globs from now on (a reload of provfs.conf): images
 * read before keep the argv they were recorded with.  Borrowed, like the
 * options' redaction: the caller keeps every redaction it gave the table
 * alive until the table is freed, since a reader may still hold the old.
 */
void process_table_set_redaction(struct process_table *table,
				 const struct process_redaction *redaction);

/* Start the exec/exit watcher thread; returns 0, or -1 when it runs degraded. */
int process_table_start(struct process_table *table);

/*
 * The current image of process pid, with a new reference (release with
 * process_info_release).  First sight reads /proc and reports image_seen.
 * NULL when the process is gone.
 */
struct process_info *process_table_lookup(struct process_table *table, pid_t pid);

/*
 * Has process pid certainly neither exec'd nor exited since since_ns
 * (CLOCK_MONOTONIC)?  Then the image a lookup gives now is the one it had
 * at any moment since.  Applies the connector's pending events first; false
 * whenever it cannot be sure (events lost since then, another pid of the
 * same slot changed, no connector).  See CHANGES SINCE A TIME in
 * process_table.c.
 */
bool process_table_unchanged_since(struct process_table *table, pid_t pid, int64_t since_ns);

/* Does the table learn of execs and exits as they happen (the process
 * connector)?  Without, process_table_unchanged_since() is always false. */
bool process_table_tracks_changes(const struct process_table *table);

/*
 * The image of pid if the table already has it current, with a new
 * reference; NULL otherwise.  Never reads /proc, so it never waits on the
 * process: for requests a process may send while it holds locks that
 * /proc readers need (the FLUSH of a close-on-exec descriptor is sent
 * from inside execve, with the process's exec_update_lock held, and
 * reading its /proc/PID/stat waits for that lock: a deadlock).
 */
struct process_info *process_table_peek(struct process_table *table, pid_t pid);

/*
 * pid is in execve and opened the file cookie stands for (exec flag on
 * open).  exec_input() hands cookie back with the new image as soon as it
 * exists (or with the old one, should the process exit without it).  fd
 * (borrowed; -1 when none) is the backing file the execve opened: when the
 * new image runs that very inode, its hash is taken from it, which holds
 * even when its name was removed.
 */
void process_table_note_exec(struct process_table *table, pid_t pid, void *cookie, int fd);

void process_table_stop(struct process_table *table);
void process_table_free(struct process_table *table);

/*
 * The XXH3-128 hash (32 hex digits) of the inode image executed, waiting up
 * to timeout_ms for the background hasher; 0 with hash filled, or -1 when it
 * is unknown (unreadable, replaced, timed out).  May block the caller: for
 * the policy's exe: grants only, never called with a lock held.
 */
int process_table_executable_hash(struct process_table *table, struct process_info *image,
				  int timeout_ms, char hash[33]);

/*
 * The hasher's verdict on image's executable so far, without waiting: 1
 * with hash filled, 0 while it is being hashed, -1 when it cannot be known.
 */
int process_table_executable_verdict(struct process_table *table, struct process_info *image,
				     char hash[33]);

/*
 * The hasher's verdict on image's executable (from the hash_executable
 * hook): hash, 32 hex digits, or NULL when it cannot be known.  Wakes the
 * waiters of process_table_executable_hash.
 */
void process_table_executable_hashed(struct process_table *table, struct process_info *image,
				     const char *hash);

/*
 * Does image's process map executable code from a file other than its
 * executable that root does not own, or that a group or other users may
 * write: a preloaded or audit object (LD_PRELOAD, LD_AUDIT), a library
 * found through LD_LIBRARY_PATH, a module of the user's?  True too when the
 * mappings cannot be read.  /proc/PID/maps is read once per image, at the
 * first call (the policy's exe: and script: conditions, when all else
 * holds), and each file mapped there is looked at through its
 * /proc/PID/map_files link (an O_PATH open and a statx of cached
 * attributes: no call into any filesystem, so a request thread may ask);
 * the answer is kept for the image.  Anonymous executable memory (a JIT's,
 * or code copied there before its file was unmapped) is not looked at.
 * Unlike the environment, the mappings are the kernel's: code in the
 * process can hide an object it loaded only by unmapping it.
 */
bool process_table_foreign_code(struct process_table *table, struct process_info *image);

/*
 * Read each exec's argv and environ as it happens (FACTS FROM EXEC TIME)?
 * Only exe: and script: grants need them, and they cost every exec on the
 * machine tens of microseconds of the watcher's time, so they are read
 * only while the policy has such a grant (off until told).  A process
 * that exec'd while they were off is "not seen at exec": each exec event
 * drops the pid's record while they are off, and switching them on drops
 * every record.
 */
void process_table_want_exec_facts(struct process_table *table, bool wanted);

/*
 * Whether pid names a running process now, for a process an earlier daemon
 * recorded: 0 with its start time (as image->start_ns counts it, boot time
 * from the clocks read now) and its kernel id (0 when unknown) when it runs;
 * -1 when no process has that pid or it has ended (a zombie).  Reads /proc,
 * takes no lock, needs no table.
 *
 * The caller compares: a start time from another daemon is the same
 * process's only within PROCESS_START_SLACK_NS (each daemon reads the boot
 * time from the wall clock, which NTP slews and steps between them), and
 * a kernel id known on both sides settles it exactly.
 */
int process_running_now(pid_t pid, int64_t *start_ns, uint64_t *kernel_id);

/*
 * How far apart two daemons' start times of one process may lie: the
 * boot time each reads moves with every adjustment of the wall clock in
 * between (chrony slews up to 83 ms a second).  A pid reused within this
 * much of the first process's start is taken for it, unless kernel ids
 * (Linux 6.9 and later) tell them apart.
 */
#define PROCESS_START_SLACK_NS (10 * 1000000000LL)

struct process_info *process_info_acquire(struct process_info *image);
void process_info_release(struct process_info *image);

#endif
