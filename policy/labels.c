/*
 * labels.c - labels enforced at open, propagated at open, explained.
 *
 * DESIGN
 *
 * Three in-memory tables serve every decision; none is ever read from the
 * store on a request thread:
 *
 *   inode table   (device, inode) -> rule/explicit/propagated levels and
 *                 where they came from.  A read-write lock: opens read it,
 *                 label changes and propagation write it.
 *   read marks    (pid, start) and run uuid -> for each level, when the
 *                 process (run) first opened a file of that level for
 *                 reading, and which file.  Children inherit the marks of
 *                 their ancestors made before they were started.
 *   write handles every open handle that may write, with its opener, so
 *                 that a read can raise the files its process is writing.
 *   read handles  every open handle of a regular file that reads, by inode,
 *                 with its opener and the level it was checked for: a
 *                 descriptor keeps reading whatever is written to its file
 *                 after its open, so data of a level its opener is not
 *                 cleared for may not be written there while it is open
 *                 (reader_not_cleared()).
 *
 * Lock order: handles_lock, then table_lock or a reader slot's lock;
 * marks_lock, scripts_lock and the crossing opener's lock are never held
 * with another.  No lock is held
 * across I/O but for the inode table during the mount-time walk, before
 * any request.
 *
 * The warm open.  A path's rule is cached per inode with the file's type
 * (no readlink, no fstat), a directory's path for the creates in it; the
 * check hands what it found, the caller's process image included, to the
 * opened() that follows on the same thread, so an open looks its caller up
 * once and a create names its file once.  The rest is hash lookups under
 * short locks.  The daemon logs at unmount what its decisions, and its
 * whole share of an open, took (log_decision_times).
 *
 * Scripts.  A script: grant needs the script's hash; hashing is whole-file
 * I/O, so it runs on a hash pool thread of the policy's own, once per
 * script content, and the request thread waits for it at most
 * SCRIPT_HASH_WAIT_MS (see subject_file_hash).  Neither thread ever reads
 * a script through the mount.
 *
 * The policy object is immutable; a reload compiles a new one and swaps
 * the pointer.  Old policies stay allocated until unmount (a reload is a
 * rare admin action; this spares the request path any reference counting).
 *
 * Clocks.  A process's start time has clock-tick resolution (10 ms); a
 * mark made up to CHILD_START_MARGIN_NS after a child's recorded start is
 * still inherited by it, so a child forked right after its parent read a
 * secret never slips through (a child forked just before is raised too: the
 * error is on the safe side).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "backing_path.h"
#include "caller.h"
#include "content_hash.h"
#include "hash_pool.h"
#include "labels.h"
#include "log.h"
#include "policy.h"
#include "process_table.h"
#include "recorder.h"
#include "store.h"

#define OPEN_FOR_EXEC 040 /* __FMODE_EXEC in the open flags of an execve */
#define TABLE_SLOTS 65536 /* power of two */
#define MARK_SLOTS 4096   /* power of two */
#define READER_SLOTS 1024 /* power of two */
#define READER_LOCKS 64   /* power of two: a lock for every READER_SLOTS / READER_LOCKS slots */
#define CHILD_START_MARGIN_NS 20000000LL
#define EXECUTABLE_HASH_WAIT_MS 2000
#define SCRIPT_HASH_LIMIT (16 << 20) /* larger scripts are not trusted */
#define SCRIPT_HASH_WAIT_MS 2000     /* a decision waits this long for a script's hash */
#define SCRIPT_HASH_QUEUE 64
#define HISTOGRAM_BUCKET_NS 100
#define HISTOGRAM_BUCKETS 1000
#define LINEAGE_LIMIT 65536
#define PATH_CACHE_SLOTS 65536 /* power of two, at most TABLE_SLOTS */
#define DIRECTORY_CACHE_SLOTS 4096 /* power of two, at most TABLE_SLOTS */
#define DIRECTORY_CACHE_PATH 240   /* longer directory paths are read every time */

enum label_source { SOURCE_DEFAULT, SOURCE_RULE, SOURCE_EXPLICIT, SOURCE_PROPAGATED };

/*
 * The text of a path rule, "GLOB (line N)", made once however many inodes
 * are indexed under it (a tree of a million files names a few rules), and
 * kept until the end: an entry may outlive the policy that had the rule.
 */
struct rule_text {
	struct rule_text *next;
	int line;
	size_t glob_length; /* text starts with the glob */
	char text[];
};

struct label_entry {
	dev_t device;
	ino_t inode;
	int rule;           /* highest path-rule level of any of its names; -1 */
	const char *rule_text; /* the rule as "GLOB (line N)"; labels->rule_texts owns it */
	int explicit_level; /* -1: none */
	bool forced;        /* a declassification: explicit_level is the label */
	char *reason;       /* why explicit_level was set (kept, declassified); NULL */
	int kept;           /* level of a label kept in the store since the mount; -1 */
	int propagated;     /* -1: none */
	char *from_path;    /* the input it was propagated from */
	dev_t from_device;
	ino_t from_inode;
	int64_t from_version; /* as loaded from the store; 0 unknown */
	char from_hash[33];
	struct label_entry *next;
};

struct label_view {
	int path_rule_level;               /* the rule of the path opened; -1 */
	struct policy_rule_info path_rule; /* its glob belongs to the policy */
	int level;
	enum label_source source;
	char rule_text[512]; /* the inode's indexed rule, when it won; see view_rule_text() */
	int explicit_level;
	bool forced;
	char reason[512]; /* of the explicit label; "" for none */
	int propagated;
	char from_path[512];
	dev_t from_device;
	ino_t from_inode;
	int64_t from_version;
	char from_hash[33];
};

struct mark {
	int64_t time_ns; /* 0: never */
	dev_t device;
	ino_t inode;
	char *path;
};

struct marks {
	pid_t pid;
	int64_t start_ns;
	char *run; /* run uuid for run-scope marks, else NULL */
	struct mark levels[POLICY_MAX_LEVELS];
	struct marks *next;
};

struct handle {
	struct labels *labels;
	void *next_cookie;
	bool writes;
	dev_t device;
	ino_t inode;
	struct process_info *opener; /* referenced */
	int raised;                  /* propagated level this handle caused; -1 */
	dev_t from_device;
	ino_t from_inode;
	char *path;
	struct handle *prev, *next; /* write handles list; handles_lock */
	int64_t cost_ns;            /* the policy's time for this open so far */
	bool created;
	bool reads;                 /* in labels->readers */
	int cleared;                /* a reader's opener is cleared at least this far: the
	                             * level it was checked for, or the default clearance */
	struct handle *reader_prev, *reader_next; /* readers bucket; handles_lock */
};

/* A script's hash by its stamp: known, or being computed by the pool. */
struct script_hash {
	struct labels *labels;
	dev_t device;
	ino_t inode;
	off_t size;
	int64_t mtime_ns, ctime_ns;
	int state; /* SCRIPT_HASHING, SCRIPT_KNOWN */
	char hash[33];
	struct script_hash *next;
};

enum { SCRIPT_HASHING, SCRIPT_KNOWN };

struct path_cache_entry {
	pthread_spinlock_t lock;
	dev_t device;
	ino_t inode;
	const struct policy *policy; /* NULL: empty */
	uint64_t generation;
	int level;
	struct policy_rule_info rule;
	bool regular; /* an open found it a regular file (a type never changes) */
};

/* A directory's path below the backing root, for the creates in it. */
struct directory_cache_entry {
	pthread_spinlock_t lock;
	dev_t device;
	ino_t inode;
	uint64_t generation;
	bool valid;
	char path[DIRECTORY_CACHE_PATH];
};

struct labels {
	char *config_path;
	char *backing_dir;
	char *mount_point;
	int backing_fd;
	char *store_path;
	char host[256];
	struct recorder *recorder;
	const struct fs_observer *next;
	struct fs_observer observer;
	struct process_table *processes;
	bool own_processes;

	_Atomic(struct policy *) policy;
	struct policy **retired; /* reload_lock */
	size_t retired_count;
	pthread_mutex_t reload_lock;

	pthread_rwlock_t table_lock;
	struct rule_text *rule_texts; /* every rule text an entry named; under table_lock */
	struct label_entry **slots;
	atomic_size_t entry_count;

	pthread_mutex_t marks_lock;
	struct marks **mark_slots;
	atomic_size_t mark_count;

	pthread_mutex_t handles_lock;
	struct handle *handles;
	/* Read handles by inode, each slot under reader_locks[slot % READER_LOCKS]:
	 * every read-only open adds one and its release removes it, so the two
	 * request threads of a busy mount must not meet on one lock for it. */
	struct handle *readers[READER_SLOTS];
	pthread_mutex_t reader_locks[READER_LOCKS];

	pthread_mutex_t scripts_lock;
	pthread_cond_t scripts_changed; /* a script's hash became known, or failed */
	struct script_hash *scripts;
	struct hash_pool *script_hashes; /* hashes scripts off the request threads */
	struct crossing_opener *crossing;

	sem_t reload_requests;
	pthread_t reload_thread;
	bool reload_running;
	atomic_bool stopping;

	atomic_uint_fast64_t histogram[HISTOGRAM_BUCKETS + 1];     /* wall clock */
	atomic_uint_fast64_t cpu_histogram[HISTOGRAM_BUCKETS + 1]; /* thread CPU, sampled */
	atomic_uint_fast64_t decided_histogram[HISTOGRAM_BUCKETS + 1]; /* grants evaluated */
	/*
	 * The policy's whole time per open: check, opened, release (the
	 * recorder's excluded); [1] for creates, [0] for the other opens.
	 */
	atomic_uint_fast64_t open_cost_histogram[2][HISTOGRAM_BUCKETS + 1];
	atomic_uint_fast64_t decisions;
	atomic_uint_fast64_t denials;

	struct lineage_queue *lineage;
	struct directory_mover *mover; /* walks of renamed directories */

	struct path_cache_entry *path_cache;
	atomic_uint_fast64_t path_generation; /* bumped by a directory rename */
	struct directory_cache_entry *directory_cache;
};

/*
 * What check_open found, handed to the opened() that follows it on the
 * same thread (op_open and op_create call one right after the other, and
 * every opened() has its check first): the open is then decided once and
 * the caller's process image looked up once.  For a create, the check
 * knows the new file's path but not its inode: the CREATE event that comes
 * in between (same thread, same name) binds it.  path and image are owned;
 * a check whose open failed leaves them to the next check on the thread,
 * or to the thread's exit (last_check_key).
 */
static _Thread_local struct {
	struct labels *labels;
	dev_t device;
	ino_t inode;
	int level;
	int path_rule_level;
	struct policy_rule_info path_rule;
	char *path;
	struct process_info *image; /* referenced; NULL: not looked up */
	bool created;               /* a create: bound by its CREATE event */
	const char *created_name;   /* the new name, inside path */
	uint64_t generation;        /* path_generation the path was read at */
	int64_t cost_ns;            /* the check's time */
	bool regular;               /* known a regular file (the path cache) */
	bool valid;
} last_check;

static pthread_key_t last_check_key;
static pthread_once_t last_check_once = PTHREAD_ONCE_INIT;

static void
forget_last_check(void)
{
	free(last_check.path);
	last_check.path = NULL;
	process_info_release(last_check.image);
	last_check.image = NULL;
	last_check.created = false;
	last_check.valid = false;
}

/* A worker thread ends (libfuse retires idle ones): what it held goes. */
static void
last_check_thread_exit(void *unused)
{
	(void)unused;
	forget_last_check();
}

static void
last_check_key_create(void)
{
	if (pthread_key_create(&last_check_key, last_check_thread_exit) != 0)
		abort();
}

/* Hand what this check found to the opened() that follows. */
static void
keep_last_check(void)
{
	last_check.valid = true;
	pthread_once(&last_check_once, last_check_key_create);
	if (pthread_getspecific(last_check_key) == NULL)
		pthread_setspecific(last_check_key, &last_check);
}

static struct policy *
current_policy(struct labels *labels)
{
	return atomic_load_explicit(&labels->policy, memory_order_acquire);
}

static char *
xstrdup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* ---- paths ---------------------------------------------------------------- */

/* The path of an O_PATH descriptor below the backing root (backing_path.h). */
static char *
relative_path(const struct labels *labels, int fd)
{
	return backing_path_of(labels->backing_dir, fd);
}

static char *
join_path(const char *directory, const char *name)
{
	return backing_path_join(directory, name);
}

/* ---- inode table -------------------------------------------------------------- */

static size_t
table_slot(dev_t device, ino_t inode)
{
	uint64_t key = (uint64_t)inode * 0x9e3779b97f4a7c15ULL ^ (uint64_t)device;

	return (size_t)(key ^ (key >> 31)) & (TABLE_SLOTS - 1);
}

/* Under table_lock (either mode). */
static struct label_entry *
table_find(struct labels *labels, dev_t device, ino_t inode)
{
	for (struct label_entry *entry = labels->slots[table_slot(device, inode)]; entry;
	     entry = entry->next)
		if (entry->device == device && entry->inode == inode)
			return entry;
	return NULL;
}

/* Under table_lock for writing. */
static struct label_entry *
table_get(struct labels *labels, dev_t device, ino_t inode)
{
	struct label_entry *entry = table_find(labels, device, inode);

	if (entry)
		return entry;
	entry = calloc(1, sizeof(*entry));
	if (entry == NULL)
		abort();
	entry->device = device;
	entry->inode = inode;
	entry->rule = -1;
	entry->explicit_level = -1;
	entry->kept = -1;
	entry->propagated = -1;
	size_t slot = table_slot(device, inode);
	entry->next = labels->slots[slot];
	labels->slots[slot] = entry;
	atomic_fetch_add(&labels->entry_count, 1);
	return entry;
}

static void
set_string(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup_or_null(value);
}

/*
 * Copy a string into a fixed buffer, cut to fit.  Decisions copy the few
 * strings an explanation may need while they hold the table's lock;
 * snprintf("%s") did the same at many times the cost on every open.
 */
static void
copy_text(char *buffer, size_t size, const char *text)
{
	size_t length = text ? strnlen(text, size - 1) : 0;

	memcpy(buffer, text ? text : "", length);
	buffer[length] = '\0';
}

/*
 * The shared text of rule; NULL without memory.  Call with table_lock
 * written.  The one found moves to the front: files are mostly created
 * in bursts under one rule.
 */
static const char *
rule_text_of(struct labels *labels, const struct policy_rule_info *rule)
{
	size_t glob_length = strlen(rule->glob);

	for (struct rule_text **link = &labels->rule_texts; *link; link = &(*link)->next) {
		struct rule_text *known = *link;
		if (known->line != rule->line || known->glob_length != glob_length ||
		    memcmp(known->text, rule->glob, glob_length) != 0)
			continue;
		*link = known->next;
		known->next = labels->rule_texts;
		labels->rule_texts = known;
		return known->text;
	}
	int length = snprintf(NULL, 0, "%s (line %d)", rule->glob, rule->line);
	if (length < 0)
		return NULL;
	struct rule_text *added = malloc(sizeof(*added) + (size_t)length + 1);
	if (added == NULL)
		return NULL;
	added->line = rule->line;
	added->glob_length = glob_length;
	snprintf(added->text, (size_t)length + 1, "%s (line %d)", rule->glob, rule->line);
	added->next = labels->rule_texts;
	labels->rule_texts = added;
	return added->text;
}

/* Remember that (device, inode) had a name under a rule of level. */
static void
index_rule(struct labels *labels, dev_t device, ino_t inode, int level,
           const struct policy_rule_info *rule)
{
	/* Most opens find it indexed already: look before taking the lock to write. */
	pthread_rwlock_rdlock(&labels->table_lock);
	const struct label_entry *known = table_find(labels, device, inode);
	bool indexed = known && known->rule >= level;
	pthread_rwlock_unlock(&labels->table_lock);
	if (indexed)
		return;
	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_get(labels, device, inode);
	if (level > entry->rule) {
		entry->rule = level;
		entry->rule_text = rule_text_of(labels, rule);
	}
	pthread_rwlock_unlock(&labels->table_lock);
}

/*
 * The effective label of the file (device, inode) opened by path (NULL:
 * path unknown, the inode's own labels only).
 */
static void
effective_label_at(struct labels *labels, dev_t device, ino_t inode, int path_level,
                   const struct policy_rule_info *rule, bool known_inode, struct label_view *view)
{
	view->path_rule_level = path_level;
	view->path_rule = path_level >= 0 ? *rule : (struct policy_rule_info){0};
	view->level = 0;
	view->source = SOURCE_DEFAULT;
	view->rule_text[0] = view->reason[0] = view->from_path[0] = view->from_hash[0] = '\0';
	view->explicit_level = view->propagated = -1;
	view->forced = false;
	view->from_version = 0;
	if (path_level > 0) {
		view->level = path_level;
		view->source = SOURCE_RULE;
	}
	if (!known_inode || atomic_load_explicit(&labels->entry_count, memory_order_relaxed) == 0)
		return;
	pthread_rwlock_rdlock(&labels->table_lock);
	const struct label_entry *entry = table_find(labels, device, inode);
	if (entry) {
		view->explicit_level = entry->explicit_level;
		view->forced = entry->forced;
		if (entry->reason)
			copy_text(view->reason, sizeof(view->reason), entry->reason);
		view->propagated = entry->propagated;
		if (entry->from_path)
			copy_text(view->from_path, sizeof(view->from_path), entry->from_path);
		view->from_version = entry->from_version;
		view->from_device = entry->from_device;
		view->from_inode = entry->from_inode;
		copy_text(view->from_hash, sizeof(view->from_hash), entry->from_hash);
		if (entry->forced) {
			view->level = entry->explicit_level;
			view->source = SOURCE_EXPLICIT;
		} else {
			if (entry->rule > view->level) {
				view->level = entry->rule;
				view->source = SOURCE_RULE;
				copy_text(view->rule_text, sizeof(view->rule_text), entry->rule_text);
			}
			if (entry->explicit_level > view->level) {
				view->level = entry->explicit_level;
				view->source = SOURCE_EXPLICIT;
			}
			if (entry->propagated > view->level) {
				view->level = entry->propagated;
				view->source = SOURCE_PROPAGATED;
			}
		}
	}
	pthread_rwlock_unlock(&labels->table_lock);
}

/* The effective label of (device, inode) opened by path (NULL: unknown). */
static void
effective_label(struct labels *labels, const struct policy *policy, dev_t device, ino_t inode,
                const char *path, bool known_inode, struct label_view *view)
{
	struct policy_rule_info rule;
	int path_level =
	    path && policy_has_path_rules(policy) ? policy_path_level(policy, path, &rule) : -1;

	effective_label_at(labels, device, inode, path_level, &rule, known_inode, view);
}

/* ---- the path-rule cache ----------------------------------------------------------
 *
 * The rule of a node's name needs its path, one readlink of /proc/self/fd/N:
 * on a virtual machine that system call costs more than the rest of the
 * decision.  The result is cached per inode in a fixed table (a collision
 * is a miss, never a wrong answer): the key holds the policy it was computed
 * with and the namespace generation, which a directory rename bumps (every
 * path below it changed); a rename, link or unlink of a file forgets that
 * file's slot.
 */

static size_t
path_cache_slot(dev_t device, ino_t inode)
{
	return table_slot(device, inode) & (PATH_CACHE_SLOTS - 1);
}

static void
path_cache_forget(struct labels *labels, dev_t device, ino_t inode)
{
	struct path_cache_entry *slot = &labels->path_cache[path_cache_slot(device, inode)];

	pthread_spin_lock(&slot->lock);
	if (slot->device == device && slot->inode == inode) {
		slot->policy = NULL;
		slot->regular = false; /* unlinked: the number may come back as a directory */
	}
	pthread_spin_unlock(&slot->lock);
}

static void
path_cache_store(struct labels *labels, const struct policy *policy, dev_t device, ino_t inode,
                 uint64_t generation, int level, const struct policy_rule_info *rule)
{
	struct path_cache_entry *slot = &labels->path_cache[path_cache_slot(device, inode)];

	pthread_spin_lock(&slot->lock);
	if (slot->device != device || slot->inode != inode)
		slot->regular = false;
	slot->device = device;
	slot->inode = inode;
	slot->policy = policy;
	slot->generation = generation;
	slot->level = level;
	slot->rule = *rule;
	pthread_spin_unlock(&slot->lock);
}

/* An open found (device, inode) a regular file: later opens need not look. */
static void
path_cache_note_regular(struct labels *labels, dev_t device, ino_t inode)
{
	struct path_cache_entry *slot = &labels->path_cache[path_cache_slot(device, inode)];

	pthread_spin_lock(&slot->lock);
	if (slot->device == device && slot->inode == inode && slot->policy)
		slot->regular = true;
	pthread_spin_unlock(&slot->lock);
}

/*
 * The rule level of node's current name (-1: none), from the cache or from
 * one readlink; path (may be NULL) gets the path when it had to be read.
 */
static int
node_path_rule(struct labels *labels, const struct policy *policy, const struct fs_node_info *node,
               struct policy_rule_info *rule, char **path, bool *regular)
{
	struct path_cache_entry *slot =
	    &labels->path_cache[path_cache_slot(node->device, node->inode)];
	uint64_t generation = atomic_load_explicit(&labels->path_generation, memory_order_acquire);
	int level = -2;

	if (!policy_has_path_rules(policy))
		return -1;
	pthread_spin_lock(&slot->lock);
	if (slot->policy == policy && slot->generation == generation &&
	    slot->device == node->device && slot->inode == node->inode) {
		level = slot->level;
		*rule = slot->rule;
		if (regular)
			*regular = slot->regular;
	}
	pthread_spin_unlock(&slot->lock);
	if (level != -2)
		return level;
	char *name = relative_path(labels, node->backing_fd);
	level = name ? policy_path_level(policy, name, rule) : -1;
	if (name)
		path_cache_store(labels, policy, node->device, node->inode, generation, level,
		                 rule);
	if (path)
		*path = name;
	else
		free(name);
	return level;
}

/* The effective label of node as opened by its current name. */
static void
effective_label_of_node(struct labels *labels, const struct policy *policy,
                        const struct fs_node_info *node, struct label_view *view, char **path,
                        bool *regular)
{
	struct policy_rule_info rule;
	int level = node_path_rule(labels, policy, node, &rule, path, regular);

	effective_label_at(labels, node->device, node->inode, level, &rule, true, view);
}

/*
 * A directory's path (malloc'd, NULL when unknown), for a create in it:
 * the same readlink, cached the same way, keyed by the namespace
 * generation; an rmdir forgets the directory's slot (its inode number may
 * come back as another directory).
 */
static char *
directory_path(struct labels *labels, const struct fs_node_info *directory)
{
	struct directory_cache_entry *slot =
	    &labels->directory_cache[table_slot(directory->device, directory->inode) &
	                             (DIRECTORY_CACHE_SLOTS - 1)];
	uint64_t generation = atomic_load_explicit(&labels->path_generation, memory_order_acquire);
	char *path = NULL;

	pthread_spin_lock(&slot->lock);
	if (slot->valid && slot->generation == generation && slot->device == directory->device &&
	    slot->inode == directory->inode)
		path = strdup(slot->path);
	pthread_spin_unlock(&slot->lock);
	if (path)
		return path;
	path = relative_path(labels, directory->backing_fd);
	if (path && strlen(path) < sizeof(slot->path)) {
		pthread_spin_lock(&slot->lock);
		slot->device = directory->device;
		slot->inode = directory->inode;
		slot->generation = generation;
		slot->valid = true;
		strcpy(slot->path, path);
		pthread_spin_unlock(&slot->lock);
	}
	return path;
}

static void
directory_cache_forget(struct labels *labels, dev_t device, ino_t inode)
{
	struct directory_cache_entry *slot =
	    &labels->directory_cache[table_slot(device, inode) & (DIRECTORY_CACHE_SLOTS - 1)];

	pthread_spin_lock(&slot->lock);
	if (slot->device == device && slot->inode == inode)
		slot->valid = false;
	pthread_spin_unlock(&slot->lock);
}

/*
 * The rule behind a view's label, "GLOB (line N)": the inode's indexed rule
 * when that one won, else the rule of the path opened ("" for none).  Only
 * explanations need the text, so a decision does not format it.
 */
static const char *
view_rule_text(const struct label_view *view, char *buffer, size_t size)
{
	if (view->rule_text[0])
		return view->rule_text;
	if (view->path_rule_level > 0 && view->path_rule.glob) {
		snprintf(buffer, size, "%s (line %d)", view->path_rule.glob, view->path_rule.line);
		return buffer;
	}
	return "";
}

/* "rule GLOB (line N)", "explicit", "propagated from PATH", "default". */
static void
describe_source(const struct label_view *view, char *out, size_t size)
{
	char rule[512];

	switch (view->source) {
	case SOURCE_RULE:
		snprintf(out, size, "rule %s", view_rule_text(view, rule, sizeof(rule)));
		break;
	case SOURCE_EXPLICIT:
		snprintf(out, size, view->forced ? "explicit (declassified)" : "explicit");
		break;
	case SOURCE_PROPAGATED:
		snprintf(out, size, "propagated from %s",
		         view->from_path[0] ? view->from_path : "?");
		break;
	case SOURCE_DEFAULT:
		snprintf(out, size, "default");
		break;
	}
}

/* Raise (device, inode)'s propagated label to level; true when it rose. */
static bool
raise_label(struct labels *labels, dev_t device, ino_t inode, int level, const struct mark *from)
{
	bool raised = false;

	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_get(labels, device, inode);
	if (level > entry->propagated) {
		entry->propagated = level;
		set_string(&entry->from_path, from->path);
		entry->from_device = from->device;
		entry->from_inode = from->inode;
		entry->from_version = 0;
		entry->from_hash[0] = '\0';
		raised = true;
	}
	/* A new version is being written: a declassification held for the old. */
	entry->forced = false;
	pthread_rwlock_unlock(&labels->table_lock);
	return raised;
}

/*
 * The data now written to (device, inode) carries level, which the file
 * already holds as its propagated label (an earlier version raised it): the
 * new version is recorded with that label too, from this input.  True when
 * it does.
 */
static bool
carry_label(struct labels *labels, dev_t device, ino_t inode, int level, const struct mark *from)
{
	bool carried = false;

	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_find(labels, device, inode);
	if (entry && level > 0 && level == entry->propagated) {
		set_string(&entry->from_path, from->path);
		entry->from_device = from->device;
		entry->from_inode = from->inode;
		entry->from_version = 0;
		entry->from_hash[0] = '\0';
		entry->forced = false;
		carried = true;
	}
	pthread_rwlock_unlock(&labels->table_lock);
	return carried;
}

/* Opened for writing: a declassification held for the version before. */
static void
end_declassification(struct labels *labels, dev_t device, ino_t inode)
{
	if (atomic_load_explicit(&labels->entry_count, memory_order_relaxed) == 0)
		return;
	pthread_rwlock_rdlock(&labels->table_lock);
	struct label_entry *entry = table_find(labels, device, inode);
	bool forced = entry && entry->forced;
	pthread_rwlock_unlock(&labels->table_lock);
	if (!forced)
		return;
	pthread_rwlock_wrlock(&labels->table_lock);
	entry = table_find(labels, device, inode);
	if (entry)
		entry->forced = false;
	pthread_rwlock_unlock(&labels->table_lock);
}

/* ---- read marks ------------------------------------------------------------------ */

static size_t
mark_slot_of_process(pid_t pid, int64_t start_ns)
{
	uint64_t key = (uint64_t)pid * 0x9e3779b97f4a7c15ULL ^ (uint64_t)start_ns;

	return (size_t)(key ^ (key >> 29)) & (MARK_SLOTS - 1);
}

static size_t
mark_slot_of_run(const char *uuid)
{
	uint64_t key = 1469598103934665603ULL;

	for (const char *p = uuid; *p; p++)
		key = (key ^ (unsigned char)*p) * 1099511628211ULL;
	return (size_t)key & (MARK_SLOTS - 1);
}

/* Under marks_lock.  run != NULL finds the run's marks. */
static struct marks *
marks_find(struct labels *labels, pid_t pid, int64_t start_ns, const char *run, bool create)
{
	size_t slot = run ? mark_slot_of_run(run) : mark_slot_of_process(pid, start_ns);
	struct marks *marks;

	for (marks = labels->mark_slots[slot]; marks; marks = marks->next)
		if (run ? marks->run && strcmp(marks->run, run) == 0
		        : !marks->run && marks->pid == pid && marks->start_ns == start_ns)
			return marks;
	if (!create)
		return NULL;
	marks = calloc(1, sizeof(*marks));
	if (marks == NULL)
		abort();
	marks->pid = pid;
	marks->start_ns = start_ns;
	marks->run = xstrdup_or_null(run);
	marks->next = labels->mark_slots[slot];
	labels->mark_slots[slot] = marks;
	atomic_fetch_add(&labels->mark_count, 1);
	return marks;
}

static void
mark_copy(struct mark *to, const struct mark *from)
{
	free(to->path);
	*to = *from;
	to->path = xstrdup_or_null(from->path);
}

static void
mark_level(struct marks *marks, int level, int64_t now, dev_t device, ino_t inode, const char *path)
{
	struct mark *mark = &marks->levels[level];

	if (mark->time_ns)
		return;
	*mark = (struct mark){now, device, inode, xstrdup_or_null(path)};
}

/* image opened a file of level for reading. */
static void
note_read(struct labels *labels, const struct policy *policy, struct process_info *image, int level,
          dev_t device, ino_t inode, int backing_fd, const char *path)
{
	int64_t now = wall_clock_ns();

	pthread_mutex_lock(&labels->marks_lock);
	struct marks *own = marks_find(labels, image->pid, image->start_ns, NULL, false);
	bool known = own && own->levels[level].time_ns &&
	             (!policy_propagates_by_run(policy) || image->run == NULL);
	pthread_mutex_unlock(&labels->marks_lock);
	if (known)
		return; /* read at this level before: the first read is the mark */
	char *name = path ? NULL : relative_path(labels, backing_fd);
	if (path == NULL)
		path = name;
	pthread_mutex_lock(&labels->marks_lock);
	mark_level(marks_find(labels, image->pid, image->start_ns, NULL, true), level, now, device,
	           inode, path);
	if (policy_propagates_by_run(policy) && image->run)
		mark_level(marks_find(labels, 0, 0, image->run->uuid, true), level, now, device,
		           inode, path);
	pthread_mutex_unlock(&labels->marks_lock);
	free(name);
}

/*
 * The read level of image: its own marks, its ancestors' marks made before
 * the child on the way down was started, and its run's (propagation = run).
 * 0 when it read nothing labeled; source gets the mark (path copied).
 */
static int
read_level(struct labels *labels, const struct policy *policy, const struct process_info *image,
           struct mark *source)
{
	int best = 0;

	*source = (struct mark){0};
	if (atomic_load_explicit(&labels->mark_count, memory_order_relaxed) == 0)
		return 0;
	int top = policy_level_count(policy) - 1;
	pthread_mutex_lock(&labels->marks_lock);
	struct marks *own = marks_find(labels, image->pid, image->start_ns, NULL, false);
	for (int level = top; own && level > best; level--) {
		if (own->levels[level].time_ns) {
			best = level;
			mark_copy(source, &own->levels[level]);
		}
	}
	int64_t child_start = image->start_ns;
	int depth = 0;
	for (const struct process_info *ancestor = image->parent; ancestor && depth < 128;
	     ancestor = ancestor->parent, depth++) {
		struct marks *marks =
		    marks_find(labels, ancestor->pid, ancestor->start_ns, NULL, false);
		for (int level = top; marks && level > best; level--) {
			const struct mark *mark = &marks->levels[level];
			if (mark->time_ns && mark->time_ns < child_start + CHILD_START_MARGIN_NS) {
				best = level;
				mark_copy(source, mark);
			}
		}
		child_start = ancestor->start_ns;
	}
	if (policy_propagates_by_run(policy) && image->run) {
		struct marks *marks = marks_find(labels, 0, 0, image->run->uuid, false);
		for (int level = top; marks && level > best; level--) {
			if (marks->levels[level].time_ns) {
				best = level;
				mark_copy(source, &marks->levels[level]);
			}
		}
	}
	pthread_mutex_unlock(&labels->marks_lock);
	return best;
}

static bool
same_process(const struct process_info *a, const struct process_info *b)
{
	return a->pid == b->pid && a->start_ns == b->start_ns;
}

/* Is holder (the opener of a handle) image itself, an ancestor, or of its run? */
static bool
shares_handles(const struct policy *policy, const struct process_info *holder,
               const struct process_info *image)
{
	int depth = 0;

	for (const struct process_info *p = image; p && depth < 128; p = p->parent, depth++)
		if (same_process(p, holder))
			return true;
	return policy_propagates_by_run(policy) && holder->run && image->run &&
	       strcmp(holder->run->uuid, image->run->uuid) == 0;
}

/* ---- read handles ---------------------------------------------------------------- */

static size_t
reader_slot(dev_t device, ino_t inode)
{
	uint64_t key = (uint64_t)inode * 0x9e3779b97f4a7c15ULL ^ (uint64_t)device;

	return (size_t)(key ^ (key >> 29)) & (READER_SLOTS - 1);
}

static pthread_mutex_t *
reader_lock(struct labels *labels, size_t slot)
{
	return &labels->reader_locks[slot & (READER_LOCKS - 1)];
}

static void
readers_add(struct labels *labels, struct handle *handle)
{
	size_t slot = reader_slot(handle->device, handle->inode);
	struct handle **head = &labels->readers[slot];

	pthread_mutex_lock(reader_lock(labels, slot));
	handle->reader_prev = NULL;
	handle->reader_next = *head;
	if (*head)
		(*head)->reader_prev = handle;
	*head = handle;
	pthread_mutex_unlock(reader_lock(labels, slot));
}

static void
readers_remove(struct labels *labels, struct handle *handle)
{
	size_t slot = reader_slot(handle->device, handle->inode);

	pthread_mutex_lock(reader_lock(labels, slot));
	if (handle->reader_prev)
		handle->reader_prev->reader_next = handle->reader_next;
	else
		labels->readers[slot] = handle->reader_next;
	if (handle->reader_next)
		handle->reader_next->reader_prev = handle->reader_prev;
	pthread_mutex_unlock(reader_lock(labels, slot));
}

/*
 * Is (device, inode) held open for reading by a process not known to be
 * cleared for level?  Then true, with its pid (0: not known) in
 * *reader_pid: the handle itself may be gone once its slot's lock is let
 * go.  image (may be NULL: then every such reader counts) and the
 * processes it shares handles with are left out: its ancestors could read
 * what it writes through a pipe as well.  Takes the slot's lock, after
 * handles_lock when the caller holds that.
 */
static bool
reader_not_cleared(struct labels *labels, const struct policy *policy, dev_t device, ino_t inode,
                   int level, const struct process_info *image, pid_t *reader_pid)
{
	size_t slot = reader_slot(device, inode);
	bool found = false;

	pthread_mutex_lock(reader_lock(labels, slot));
	for (const struct handle *h = labels->readers[slot]; h && !found; h = h->reader_next) {
		if (h->device != device || h->inode != inode || h->cleared >= level)
			continue;
		if (image && h->opener && shares_handles(policy, h->opener, image))
			continue;
		*reader_pid = h->opener ? h->opener->pid : 0;
		found = true;
	}
	pthread_mutex_unlock(reader_lock(labels, slot));
	return found;
}

/* ---- the subject of a decision ------------------------------------------------------ */

struct subject_context {
	struct labels *labels;
	fuse_req_t req;
	struct process_info *image;
};

static bool
subject_in_group(void *context, gid_t gid)
{
	struct subject_context *subject = context;

	return caller_in_group(subject->req, gid);
}

static int
subject_executable_hash(void *context, char hash[33])
{
	struct subject_context *subject = context;

	if (subject->image->executable_hash[0]) {
		memcpy(hash, subject->image->executable_hash, 33);
		return 0;
	}
	return process_table_executable_hash(subject->labels->processes, subject->image,
	                                     EXECUTABLE_HASH_WAIT_MS, hash);
}

static bool
subject_foreign_code(void *context)
{
	struct subject_context *subject = context;

	return process_table_foreign_code(subject->labels->processes, subject->image);
}

/*
 * Open a script named by an absolute path, never through the mount.  One
 * inside the mount is opened from the backing tree.  One outside is opened
 * without crossing into another mount (RESOLVE_NO_XDEV), so that no path
 * (a symlink into the mount) makes the daemon open its own files: this
 * runs on a request thread.  -EXDEV: the path crosses a mount point, and
 * the hashing thread must open it (open_script_crossing).
 */
static int
open_script(struct labels *labels, const char *path)
{
	size_t length = strlen(labels->mount_point);
	struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
	                       .resolve = RESOLVE_NO_MAGICLINKS};
	int fd;

	if (strncmp(path, labels->mount_point, length) == 0 && path[length] == '/') {
		how.resolve |= RESOLVE_IN_ROOT;
		fd = (int)syscall(SYS_openat2, labels->backing_fd, path + length + 1, &how,
		                  sizeof(how));
	} else {
		how.resolve |= RESOLVE_NO_XDEV;
		fd = (int)syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));
	}
	return fd < 0 ? -errno : fd;
}

static bool
same_stamp(const struct script_hash *known, const struct stat *st)
{
	return known->device == st->st_dev && known->inode == st->st_ino &&
	       known->size == st->st_size && known->mtime_ns == timespec_ns(st->st_mtim) &&
	       known->ctime_ns == timespec_ns(st->st_ctim);
}

/* Under scripts_lock: the entry for st's stamp, or NULL. */
static struct script_hash *
script_find(struct labels *labels, const struct stat *st)
{
	for (struct script_hash *known = labels->scripts; known; known = known->next)
		if (same_stamp(known, st))
			return known;
	return NULL;
}

/* Under scripts_lock: take entry out of the list. */
static void
script_unlink(struct labels *labels, struct script_hash *entry)
{
	for (struct script_hash **link = &labels->scripts; *link; link = &(*link)->next) {
		if (*link == entry) {
			*link = entry->next;
			return;
		}
	}
}

/* The pool's answer (a pool thread, or the submitter's when refused). */
static void
script_hashed(void *argument, int result, const char *hex, const struct stat *before,
              const struct stat *after)
{
	struct script_hash *entry = argument;
	struct labels *labels = entry->labels;
	/* The bytes hashed are the stamp's: unchanged from open to end. */
	bool good = result == 0 && hex && strlen(hex) == 32 && before && after &&
	            same_stamp(entry, before) && same_stamp(entry, after);

	pthread_mutex_lock(&labels->scripts_lock);
	if (good) {
		memcpy(entry->hash, hex, 33);
		entry->state = SCRIPT_KNOWN;
		/* Older contents of the same file are of no further use. */
		for (struct script_hash **link = &labels->scripts; *link;) {
			struct script_hash *old = *link;
			if (old != entry && old->state == SCRIPT_KNOWN &&
			    old->device == entry->device && old->inode == entry->inode) {
				*link = old->next;
				free(old);
			} else {
				link = &old->next;
			}
		}
	} else {
		script_unlink(labels, entry); /* the next decision tries again */
	}
	pthread_cond_broadcast(&labels->scripts_changed);
	pthread_mutex_unlock(&labels->scripts_lock);
	if (!good)
		free(entry);
}

/*
 * Queue the hash of the script open as fd (taken) with stamp st, unless a
 * job for that stamp is queued already.  Under no lock.
 */
static void
script_hash_submit(struct labels *labels, int fd, const struct stat *st)
{
	pthread_mutex_lock(&labels->scripts_lock);
	if (script_find(labels, st) || labels->script_hashes == NULL) {
		pthread_mutex_unlock(&labels->scripts_lock);
		close(fd);
		return;
	}
	struct script_hash *entry = calloc(1, sizeof(*entry));
	if (entry == NULL) {
		pthread_mutex_unlock(&labels->scripts_lock);
		close(fd);
		return;
	}
	*entry = (struct script_hash){.labels = labels,
	                              .device = st->st_dev,
	                              .inode = st->st_ino,
	                              .size = st->st_size,
	                              .mtime_ns = timespec_ns(st->st_mtim),
	                              .ctime_ns = timespec_ns(st->st_ctim),
	                              .state = SCRIPT_HASHING};
	entry->next = labels->scripts;
	labels->scripts = entry;
	pthread_mutex_unlock(&labels->scripts_lock);
	hash_pool_submit(labels->script_hashes, fd, script_hashed, entry);
}

/*
 * Wait (at most until deadline) for the hash of the stamp st; 0 with hash
 * when known, -2 while it is still being computed, -1 when it failed or
 * was never queued.
 */
static int
script_hash_wait(struct labels *labels, const struct stat *st, const struct timespec *deadline,
                 char hash[33])
{
	int result = -1;

	pthread_mutex_lock(&labels->scripts_lock);
	for (;;) {
		struct script_hash *entry = script_find(labels, st);
		if (entry && entry->state == SCRIPT_KNOWN) {
			memcpy(hash, entry->hash, 33);
			result = 0;
			break;
		}
		if (entry == NULL)
			break;
		if (pthread_cond_timedwait(&labels->scripts_changed, &labels->scripts_lock,
		                           deadline) != 0) {
			entry = script_find(labels, st);
			if (entry && entry->state == SCRIPT_KNOWN) {
				memcpy(hash, entry->hash, 33);
				result = 0;
			} else if (entry) {
				result = -2;
			}
			break;
		}
	}
	pthread_mutex_unlock(&labels->scripts_lock);
	return result;
}

/* ---- scripts whose path crosses a mount: opened off the request threads -------------
 *
 * Opening such a path may enter this very mount (a symlink into it): the
 * request thread would then wait on FUSE requests to its own daemon.  The
 * opener thread does it instead: it resolves the path to an O_PATH
 * descriptor (lookups at most, served by the request threads, none of which
 * waits for it longer than SCRIPT_HASH_WAIT_MS), refuses a file of this
 * mount (a script under the mount is named by its path there and read from
 * the backing tree), and only then opens it for reading.
 */

struct crossing_job {
	char *path;
	int fd; /* the result, or -errno */
	struct stat st;
	bool finished, abandoned;
	struct crossing_job *next;
};

struct crossing_opener {
	pthread_mutex_t lock;
	pthread_cond_t wake;     /* the opener: a job, or stop */
	pthread_cond_t finished; /* the requesters */
	struct crossing_job *head, *tail;
	size_t queued;
	bool stopping, running;
	pthread_t thread;
	dev_t mount_device;
	bool mount_device_known;
};

#define CROSSING_QUEUE 16

static int
open_crossing(struct crossing_opener *opener, const char *mount_point, const char *path,
              struct stat *st)
{
	char link[32];
	struct stat mount;

	if (!opener->mount_device_known && stat(mount_point, &mount) == 0) {
		opener->mount_device = mount.st_dev; /* the opener thread's own field */
		opener->mount_device_known = true;
	}
	if (!opener->mount_device_known)
		return -EAGAIN;
	int where = open(path, O_PATH | O_CLOEXEC);
	if (where < 0)
		return -errno;
	if (fstat(where, st) < 0 || st->st_dev == opener->mount_device) {
		close(where);
		return -EXDEV;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", where);
	int fd = open(link, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	int error = errno;
	close(where);
	if (fd < 0)
		return -error;
	if (fstat(fd, st) < 0 || st->st_dev == opener->mount_device) {
		close(fd);
		return -EXDEV;
	}
	return fd;
}

static void
crossing_job_free(struct crossing_job *job)
{
	if (job->fd >= 0)
		close(job->fd);
	free(job->path);
	free(job);
}

static void *
crossing_main(void *argument)
{
	struct labels *labels = argument;
	struct crossing_opener *opener = labels->crossing;

	pthread_mutex_lock(&opener->lock);
	for (;;) {
		while (!opener->stopping && opener->head == NULL)
			pthread_cond_wait(&opener->wake, &opener->lock);
		if (opener->stopping)
			break;
		struct crossing_job *job = opener->head;
		opener->head = job->next;
		if (opener->head == NULL)
			opener->tail = NULL;
		opener->queued--;
		pthread_mutex_unlock(&opener->lock);
		struct stat st;
		int fd = open_crossing(opener, labels->mount_point, job->path, &st);
		pthread_mutex_lock(&opener->lock);
		job->fd = fd;
		job->st = st;
		job->finished = true;
		if (job->abandoned)
			crossing_job_free(job);
		else
			pthread_cond_broadcast(&opener->finished);
	}
	/* Stopping: what is queued is abandoned or waited for no more. */
	while (opener->head) {
		struct crossing_job *job = opener->head;
		opener->head = job->next;
		job->fd = -ESHUTDOWN;
		job->finished = true;
		if (job->abandoned)
			crossing_job_free(job);
	}
	opener->tail = NULL;
	pthread_cond_broadcast(&opener->finished);
	pthread_mutex_unlock(&opener->lock);
	return NULL;
}

/* Open path on the opener thread, waiting until deadline; fd or -errno. */
static int
crossing_open(struct labels *labels, const char *path, const struct timespec *deadline,
              struct stat *st)
{
	struct crossing_opener *opener = labels->crossing;
	int fd;

	if (opener == NULL)
		return -ENOSYS;
	struct crossing_job *job = calloc(1, sizeof(*job));
	if (job == NULL || (job->path = strdup(path)) == NULL) {
		free(job);
		return -ENOMEM;
	}
	job->fd = -1;
	pthread_mutex_lock(&opener->lock);
	if (!opener->running || opener->stopping || opener->queued >= CROSSING_QUEUE) {
		pthread_mutex_unlock(&opener->lock);
		crossing_job_free(job);
		return -EBUSY;
	}
	if (opener->tail)
		opener->tail->next = job;
	else
		opener->head = job;
	opener->tail = job;
	opener->queued++;
	pthread_cond_signal(&opener->wake);
	while (!job->finished &&
	       pthread_cond_timedwait(&opener->finished, &opener->lock, deadline) == 0)
		;
	if (job->finished) {
		fd = job->fd;
		*st = job->st;
		job->fd = -1;
		crossing_job_free(job);
	} else {
		job->abandoned = true; /* the opener frees it */
		fd = -ETIMEDOUT;
	}
	pthread_mutex_unlock(&opener->lock);
	return fd;
}

/*
 * The hash of the script at an absolute path, or -1 (the grant then does
 * not hold, and the explanation says the hash is unknown).
 *
 * The request thread only opens and stamps the script (a few system calls,
 * never through the mount) and looks the stamp up: hashes are cached by
 * (device, inode, size, mtime, ctime) like the recorder's executables, so
 * a script rewritten and backdated has a new ctime.  A stamp not known yet
 * is hashed by the script pool; the decision waits for it at most
 * SCRIPT_HASH_WAIT_MS (a job per stamp, whoever asks meanwhile waits for
 * the same one), then says "script hash unknown" and the next open is
 * decided again.  Scripts larger than SCRIPT_HASH_LIMIT are not trusted.
 */
static int
subject_file_hash(void *context, const char *path, char hash[33])
{
	struct subject_context *subject = context;
	struct labels *labels = subject->labels;
	struct timespec deadline;
	struct stat st;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += SCRIPT_HASH_WAIT_MS / 1000;
	deadline.tv_nsec += (long)(SCRIPT_HASH_WAIT_MS % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	int fd = open_script(labels, path);
	if (fd == -EXDEV && path[0] == '/') {
		fd = crossing_open(labels, path, &deadline, &st);
		if (fd < 0)
			return fd == -ETIMEDOUT ? -2 : -1;
	} else if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > SCRIPT_HASH_LIMIT) {
		close(fd);
		return -1;
	}
	pthread_mutex_lock(&labels->scripts_lock);
	struct script_hash *known = script_find(labels, &st);
	bool ready = known && known->state == SCRIPT_KNOWN;
	if (ready)
		memcpy(hash, known->hash, 33);
	pthread_mutex_unlock(&labels->scripts_lock);
	if (ready) {
		close(fd);
		return 0;
	}
	script_hash_submit(labels, fd, &st);
	return script_hash_wait(labels, &st, &deadline, hash);
}

static void
decide(struct labels *labels, const struct policy *policy, fuse_req_t req,
       struct process_info *image, int label, struct policy_decision *decision)
{
	struct subject_context context = {labels, req, image};
	struct policy_subject subject = {
	    .uid = fuse_req_ctx(req)->uid,
	    .context = &context,
	    .in_group = subject_in_group,
	    .executable_hash = image ? subject_executable_hash : NULL,
	    .file_hash = subject_file_hash,
	    .foreign_code = image ? subject_foreign_code : NULL,
	};

	if (image) {
		subject.executable = image->executable;
		subject.argv = image->argv;
		subject.argv_length = image->argv_length;
		subject.cwd = image->cwd;
		subject.job = image->job;
		subject.traced = atomic_load(&image->traced);
		subject.injection = image->environment_injection;
	}
	policy_decide(policy, &subject, label, decision);
}

static bool
is_admin(const struct policy *policy, fuse_req_t req)
{
	gid_t admin;

	if (fuse_req_ctx(req)->uid == 0)
		return true;
	return policy_admin_group(policy, &admin) && caller_in_group(req, admin);
}

static uint64_t generation_of(int backing_fd);

/* Write a denial record (or, without a store, a log line). */
static void
record_denial(struct labels *labels, const struct policy *policy, fuse_req_t req,
              struct process_info *image, dev_t device, ino_t inode, int backing_fd,
              const char *path, const struct label_view *view,
              struct policy_decision *decision, const char *operation)
{
	char source[600];

	atomic_fetch_add(&labels->denials, 1);
	describe_source(view, source, sizeof(source));
	const char *grants = policy_explain(policy, decision);
	log_debug("denied %s of '%s' (%s, %s) to pid %d uid %u: clearance %s; %s", operation,
	          path ? path : "?", policy_level_name(policy, view->level), source,
	          image ? image->pid : 0, (unsigned)fuse_req_ctx(req)->uid,
	          policy_level_name(policy, decision->clearance), grants);
	if (labels->recorder == NULL)
		return;
	struct recorder_policy_record *record = calloc(1, sizeof(*record));
	if (record == NULL)
		return;
	record->kind = RECORDER_DENIAL;
	record->process = image ? process_info_acquire(image) : NULL;
	record->device = device;
	record->inode = inode;
	record->generation = backing_fd >= 0 ? generation_of(backing_fd) : 0;
	record->path = xstrdup_or_null(path ? path : "");
	record->uid = fuse_req_ctx(req)->uid;
	record->level = strdup(policy_level_name(policy, view->level));
	record->label_source = strdup(source);
	record->clearance = strdup(policy_level_name(policy, decision->clearance));
	record->grants = strdup(grants);
	record->operation = strdup(operation);
	record->revision = strdup(policy_revision(policy));
	record->time_ns = wall_clock_ns();
	recorder_record_policy(labels->recorder, record);
}

static int64_t
thread_cpu_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
	return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

static void
histogram_add(atomic_uint_fast64_t *histogram, int64_t elapsed)
{
	size_t bucket = (size_t)(elapsed / HISTOGRAM_BUCKET_NS);

	if (bucket > HISTOGRAM_BUCKETS)
		bucket = HISTOGRAM_BUCKETS;
	atomic_fetch_add_explicit(&histogram[bucket], 1, memory_order_relaxed);
}

/*
 * Time a decision: wall clock always (what a caller waits, preemption
 * included), and on one decision in 16 the thread's CPU time (what the
 * decision costs, whatever else the machine runs; reading that clock is a
 * system call, hence the sampling).
 */
struct decision_timer {
	int64_t wall_ns;
	int64_t cpu_ns; /* 0: not sampled */
	bool decided;   /* a clearance was decided (a read above the default) */
};

static struct decision_timer
decision_timer_start(struct labels *labels)
{
	bool sample =
	    (atomic_fetch_add_explicit(&labels->decisions, 1, memory_order_relaxed) & 15) == 0;

	return (struct decision_timer){monotonic_ns(), sample ? thread_cpu_ns() : 0, false};
}

static int64_t
count_decision(struct labels *labels, const struct decision_timer *timer)
{
	if (timer->cpu_ns)
		histogram_add(labels->cpu_histogram, thread_cpu_ns() - timer->cpu_ns);
	int64_t elapsed = monotonic_ns() - timer->wall_ns;
	histogram_add(labels->histogram, elapsed);
	if (timer->decided)
		histogram_add(labels->decided_histogram, elapsed);
	return elapsed;
}

static struct process_info *
caller_image(struct labels *labels, fuse_req_t req)
{
	struct caller caller;

	if (labels->processes == NULL)
		return NULL;
	caller_from_request(req, &caller);
	return process_table_lookup(labels->processes, caller.process_id);
}

/* ---- observer callbacks (request threads) ------------------------------------------ */

/* A write-down refused under no_write_down: the decision that explains it. */
static void
write_down_decision(const struct policy *policy, int level, const char *reason, const char *path,
                    struct policy_decision *decision)
{
	decision->allowed = false;
	decision->clearance = level;
	snprintf(decision->explanation, sizeof(decision->explanation), "no_write_down: %s %s (%s)",
	         reason, path && path[0] ? path : "?", policy_level_name(policy, level));
}

/* Under no_write_down, may image open this file (of view's level)? */
static bool
write_down_refused(struct labels *labels, const struct policy *policy, struct process_info *image,
                   bool reads, bool writes, const struct label_view *view,
                   struct policy_decision *decision)
{
	if (writes) {
		struct mark source;
		int level = read_level(labels, policy, image, &source);
		bool refused = level > view->level;
		if (refused)
			write_down_decision(policy, level, "the process has read", source.path,
			                    decision);
		free(source.path);
		if (refused)
			return true;
	}
	if (!reads || view->level == 0)
		return false;
	/* Reading this would raise a lower file it writes: refuse the read. */
	bool refused = false;
	pthread_mutex_lock(&labels->handles_lock);
	for (struct handle *handle = labels->handles; handle && !refused; handle = handle->next) {
		if (handle->opener == NULL || !shares_handles(policy, handle->opener, image))
			continue;
		struct label_view written;
		effective_label(labels, policy, handle->device, handle->inode, handle->path, true,
		                &written);
		if (written.level < view->level) {
			refused = true;
			write_down_decision(policy, written.level, "it holds open for writing",
			                    handle->path, decision);
		}
	}
	pthread_mutex_unlock(&labels->handles_lock);
	return refused;
}

/* A raise refused because a reader not cleared for it holds the file open. */
static void
exposure_decision(const struct policy *policy, int level, pid_t reader_pid, const char *source,
                  struct policy_decision *decision)
{
	decision->allowed = false;
	decision->clearance = level;
	if (source)
		snprintf(decision->explanation, sizeof(decision->explanation),
		         "the process has read %s (%s): the file is held open for reading by "
		         "pid %d, not cleared for it",
		         source[0] ? source : "?", policy_level_name(policy, level),
		         (int)reader_pid);
	else
		snprintf(decision->explanation, sizeof(decision->explanation),
		         "it holds open for writing a file held open for reading by pid %d, "
		         "not cleared for %s",
		         (int)reader_pid, policy_level_name(policy, level));
}

/*
 * Would this open raise a file that a process not cleared for the new
 * level holds open for reading?  An open descriptor reads whatever is
 * written to its file later (with kernel passthrough the daemon never sees
 * those reads), so its check at open says nothing of data written after
 * it.  Such a raise is refused, whatever no_write_down says: a write by a
 * process that has read above what the reader was checked for, and a read
 * above it by a process that holds the file open for writing (both would
 * raise it: on_opened()).  *image is looked up when needed.
 */
static bool
exposes_readers(struct labels *labels, const struct policy *policy, fuse_req_t req,
                struct process_info **image, bool reads, bool writes,
                const struct fs_node_info *node, const struct label_view *view,
                struct policy_decision *decision)
{
	int top = policy_level_count(policy) - 1;
	bool exposed = false;
	pid_t reader_pid = 0;
	char *path = NULL;
	int level = 0;

	if (writes) {
		/* The common case, nobody else reading: no process lookup. */
		bool read = reader_not_cleared(labels, policy, node->device, node->inode, top, NULL,
		                               &reader_pid);
		if (read && *image == NULL)
			*image = caller_image(labels, req);
		if (read && *image) {
			struct mark source;
			level = read_level(labels, policy, *image, &source);
			exposed = reader_not_cleared(labels, policy, node->device, node->inode, level,
			                             *image, &reader_pid);
			path = source.path;
		}
	}
	if (!exposed && reads && *image && view->level > policy_default_clearance(policy)) {
		level = view->level;
		pthread_mutex_lock(&labels->handles_lock);
		for (struct handle *h = labels->handles; h && !exposed; h = h->next) {
			if (h->opener == NULL || !shares_handles(policy, h->opener, *image))
				continue;
			exposed = reader_not_cleared(labels, policy, h->device, h->inode, level,
			                             *image, &reader_pid);
		}
		pthread_mutex_unlock(&labels->handles_lock);
	}
	if (exposed)
		exposure_decision(policy, level, reader_pid, writes && path ? path : NULL,
		                  decision);
	free(path);
	return exposed;
}

static int
on_check_open(void *context, fuse_req_t req, const struct fs_node_info *node, const char *name,
              int flags)
{
	struct labels *labels = context;
	const struct policy *policy = current_policy(labels);
	struct decision_timer timer = decision_timer_start(labels);
	uint64_t generation = atomic_load_explicit(&labels->path_generation, memory_order_acquire);
	int mode = flags & O_ACCMODE;
	bool reads = mode != O_WRONLY && name == NULL; /* a create reads nothing */
	bool writes = mode != O_RDONLY || (flags & O_TRUNC) || name != NULL;
	struct process_info *image = NULL;
	struct policy_decision decision;
	struct label_view view;
	char *path = NULL;
	bool regular = false;
	int result = 0;

	forget_last_check();
	if (name) {
		/* Create: node is the parent directory, name the new file. */
		char *directory = directory_path(labels, node);
		path = directory ? join_path(directory, name) : NULL;
		free(directory);
		effective_label(labels, policy, 0, 0, path, false, &view);
	} else {
		effective_label_of_node(labels, policy, node, &view, &path, &regular);
	}
	if (reads && view.level > policy_default_clearance(policy)) {
		timer.decided = true;
		image = caller_image(labels, req);
		decide(labels, policy, req, image, view.level, &decision);
		if (!decision.allowed) {
			if (path == NULL)
				path = relative_path(labels, node->backing_fd);
			record_denial(labels, policy, req, image, node->device, node->inode,
			              node->backing_fd, path, &view, &decision,
			              flags & OPEN_FOR_EXEC ? "exec" : "read");
			result = -EACCES;
			goto out;
		}
	}
	if (name == NULL &&
	    exposes_readers(labels, policy, req, &image, reads, writes, node, &view, &decision)) {
		if (path == NULL)
			path = relative_path(labels, node->backing_fd);
		record_denial(labels, policy, req, image, node->device, node->inode,
		              node->backing_fd, path, &view, &decision, "write-down");
		result = -EACCES;
		goto out;
	}
	if (policy_no_write_down(policy)) {
		if (image == NULL)
			image = caller_image(labels, req);
		if (image &&
		    write_down_refused(labels, policy, image, reads, writes, &view, &decision)) {
			if (path == NULL)
				path = relative_path(labels, node->backing_fd);
			record_denial(labels, policy, req, image, name ? 0 : node->device,
			              name ? 0 : node->inode, name ? -1 : node->backing_fd, path,
			              &view, &decision, "write-down");
			result = -EACCES;
			goto out;
		}
	}
	if (labels->next && labels->next->check_open)
		result = labels->next->check_open(labels->next->context, req, node, name, flags);
	if (result == 0 && (name == NULL || path != NULL)) {
		last_check.labels = labels;
		last_check.device = name ? 0 : node->device; /* a create: bound by its event */
		last_check.inode = name ? 0 : node->inode;
		last_check.level = view.level;
		last_check.path_rule_level = view.path_rule_level;
		last_check.path_rule = view.path_rule;
		last_check.created = name != NULL;
		last_check.created_name = name ? path + strlen(path) - strlen(name) : NULL;
		last_check.generation = generation;
		last_check.path = path;
		last_check.image = image;
		last_check.regular = regular;
		last_check.cost_ns = 0; /* set at out: */
		keep_last_check();
		path = NULL;
		image = NULL;
	}
out:
	process_info_release(image);
	free(path);
	int64_t elapsed = count_decision(labels, &timer);
	if (result == 0 && last_check.valid)
		last_check.cost_ns = elapsed;
	return result;
}

/*
 * image read data of level (above 0) from node: mark the read, and raise
 * what it, or a process it shares handles with (the shell of `cat secret
 * > out`), holds open for writing: that now holds the data.  *path (NULL:
 * not known yet) is read when needed, and stays the caller's.
 */
static void
read_propagated(struct labels *labels, const struct policy *policy, struct process_info *image,
                int level, const struct fs_node_info *node, char **path)
{
	note_read(labels, policy, image, level, node->device, node->inode, node->backing_fd,
	          *path);
	struct mark from = {1, node->device, node->inode, *path};
	pthread_mutex_lock(&labels->handles_lock);
	for (struct handle *h = labels->handles; h; h = h->next) {
		if (h->opener == NULL || !shares_handles(policy, h->opener, image))
			continue;
		if (*path == NULL)
			from.path = *path = relative_path(labels, node->backing_fd);
		bool rose = raise_label(labels, h->device, h->inode, level, &from);
		if (level > h->raised &&
		    (rose || carry_label(labels, h->device, h->inode, level, &from))) {
			h->raised = level;
			h->from_device = node->device;
			h->from_inode = node->inode;
		}
	}
	pthread_mutex_unlock(&labels->handles_lock);
}

static void *
on_opened(void *context, fuse_req_t req, const struct fs_node_info *node, int open_fd, int flags,
          bool created)
{
	struct labels *labels = context;
	const struct policy *policy = current_policy(labels);
	const struct fs_observer *next = labels->next;
	void *next_cookie = next && next->opened
	                        ? next->opened(next->context, req, node, open_fd, flags, created)
	                        : NULL;
	int64_t started = monotonic_ns();
	int mode = flags & O_ACCMODE;
	bool reads = mode != O_WRONLY && !created;
	bool writes = mode != O_RDONLY || (flags & O_TRUNC) || created;
	struct process_info *image = NULL;
	struct handle *handle = NULL;
	struct label_view view;
	char *path = NULL;
	/* A create makes a regular file (O_CREAT); a check may know it already. */
	bool regular = created || (last_check.valid && last_check.regular);

	/*
	 * Its check on this thread (for a create: bound to this inode by the
	 * CREATE event, and no rename since, or the path it computed is stale).
	 */
	bool checked = last_check.valid && last_check.labels == labels &&
	               last_check.created == created && last_check.device == node->device &&
	               last_check.inode == node->inode &&
	               (!created || last_check.generation ==
	                                atomic_load_explicit(&labels->path_generation,
	                                                     memory_order_acquire));
	int level = checked ? last_check.level : -1;
	int path_rule_level = checked ? last_check.path_rule_level : -1;
	struct policy_rule_info path_rule = last_check.path_rule;
	uint64_t generation = last_check.generation;
	int64_t cost = checked ? last_check.cost_ns : 0;
	if (checked) {
		path = last_check.path;
		last_check.path = NULL;
		image = last_check.image;
		last_check.image = NULL;
	}
	forget_last_check();
	if (!checked)
		regular = created;
	/* A reader is tracked while its opener may be below another level. */
	int top = policy_level_count(policy) - 1;
	bool tracked_reader = reads && policy_default_clearance(policy) < top;
	int cleared = 0;
	if (!regular && !created && (writes || tracked_reader || !checked || level > 0)) {
		/* The layer's look at the open file, when it took one: no fstat. */
		struct stat st;
		const struct stat *attributes = node->open_attributes;
		if (attributes == NULL && fstat(open_fd, &st) == 0)
			attributes = &st;
		regular = attributes && S_ISREG(attributes->st_mode);
		if (regular)
			path_cache_note_regular(labels, node->device, node->inode);
	}
	if (!regular)
		goto wrap;
	if (created) {
		/* A new name: its rule now, and in the cache for the opens to come. */
		if (!checked) {
			generation =
			    atomic_load_explicit(&labels->path_generation, memory_order_acquire);
			path = relative_path(labels, node->backing_fd);
			effective_label(labels, policy, node->device, node->inode, path, true,
			                &view);
		} else {
			effective_label_at(labels, node->device, node->inode, path_rule_level,
			                   &path_rule, true, &view);
		}
		if (path && policy_has_path_rules(policy)) {
			path_cache_store(labels, policy, node->device, node->inode, generation,
			                 view.path_rule_level, &view.path_rule);
			path_cache_note_regular(labels, node->device, node->inode);
		}
		level = view.level;
		path_rule_level = view.path_rule_level;
		path_rule = view.path_rule;
	} else if (!checked) {
		effective_label_of_node(labels, policy, node, &view, &path, NULL);
		level = view.level;
		path_rule_level = view.path_rule_level;
		path_rule = view.path_rule;
	}
	/* Its name under a labeled rule goes with the inode from now on. */
	if (path_rule_level > 0)
		index_rule(labels, node->device, node->inode, path_rule_level, &path_rule);
	/* The level it was checked for, at least the default clearance. */
	cleared = level > policy_default_clearance(policy) ? level : policy_default_clearance(policy);
	tracked_reader = tracked_reader && cleared < top;
	if (((reads && level > 0) || writes) && image == NULL)
		image = caller_image(labels, req);
	if (image && reads && level > 0)
		read_propagated(labels, policy, image, level, node, &path);
wrap:
	if (!regular)
		tracked_reader = false;
	if (!writes && !tracked_reader && next_cookie == NULL)
		goto out;
	handle = calloc(1, sizeof(*handle));
	if (handle == NULL)
		goto out;
	handle->labels = labels;
	handle->next_cookie = next_cookie;
	handle->writes = writes && regular;
	handle->device = node->device;
	handle->inode = node->inode;
	handle->raised = -1;
	/*
	 * A reader's opener is known when its open looked it up (a label
	 * above 0, or a handle that writes too); a read-only open of a file
	 * at level 0 is not looked up (the process table's lookup at such an
	 * open changed what the recorder records of a later fexecve of the
	 * same descriptor: hardening.bats), and its reader counts as another
	 * process's, the safe side.
	 */
	if (handle->writes || tracked_reader)
		handle->opener = image ? process_info_acquire(image) : NULL;
	if (tracked_reader) {
		handle->reads = true;
		handle->cleared = cleared;
		readers_add(labels, handle);
	}
	if (handle->writes) {
		/* Named in no_write_down refusals only. */
		if (policy_no_write_down(policy))
			handle->path =
			    path ? strdup(path) : relative_path(labels, node->backing_fd);
		if (image) {
			struct mark source;
			int read = read_level(labels, policy, image, &source);
			if ((read > level &&
			     raise_label(labels, node->device, node->inode, read, &source)) ||
			    (read == level &&
			     carry_label(labels, node->device, node->inode, read, &source))) {
				handle->raised = read;
				handle->from_device = source.device;
				handle->from_inode = source.inode;
			} else {
				end_declassification(labels, node->device, node->inode);
			}
			free(source.path);
		}
		pthread_mutex_lock(&labels->handles_lock);
		handle->next = labels->handles;
		if (labels->handles)
			labels->handles->prev = handle;
		labels->handles = handle;
		pthread_mutex_unlock(&labels->handles_lock);
	}
out:
	process_info_release(image);
	free(path);
	cost += monotonic_ns() - started;
	if (handle) {
		handle->cost_ns = cost;
		handle->created = created;
	} else {
		histogram_add(labels->open_cost_histogram[created], cost);
	}
	return handle;
}

static void
on_data_read(void *cookie, off_t offset, size_t bytes)
{
	struct handle *handle = cookie;

	if (handle->next_cookie && handle->labels->next->data_read)
		handle->labels->next->data_read(handle->next_cookie, offset, bytes);
}

static void
on_data_writing(void *cookie)
{
	struct handle *handle = cookie;

	if (handle->next_cookie && handle->labels->next->data_writing)
		handle->labels->next->data_writing(handle->next_cookie);
}

static void
on_data_write_ended(void *cookie)
{
	struct handle *handle = cookie;

	if (handle->next_cookie && handle->labels->next->data_write_ended)
		handle->labels->next->data_write_ended(handle->next_cookie);
}

static void
on_data_written(void *cookie, fuse_req_t req, const void *data, off_t offset, size_t bytes)
{
	struct handle *handle = cookie;

	if (handle->next_cookie && handle->labels->next->data_written)
		handle->labels->next->data_written(handle->next_cookie, req, data, offset, bytes);
}

/* Passthrough writers (no handle of ours names them): the recorder's alone. */
static void *
on_bypass_identify(void *context, pid_t pid)
{
	struct labels *labels = context;

	if (labels->next && labels->next->bypass_identify)
		return labels->next->bypass_identify(labels->next->context, pid);
	return NULL;
}

static void
on_bypass_forget(void *context, void *identity)
{
	struct labels *labels = context;

	if (labels->next && labels->next->bypass_forget)
		labels->next->bypass_forget(labels->next->context, identity);
}

static void
on_bypass_written(void *context, dev_t device, ino_t inode, pid_t pid, void *identity,
		  bool checked)
{
	struct labels *labels = context;

	if (labels->next && labels->next->bypass_written)
		labels->next->bypass_written(labels->next->context, device, inode, pid, identity,
					     checked);
}

static void *
on_bypass_identify_since(void *context, pid_t pid, int64_t since_ns)
{
	struct labels *labels = context;

	if (labels->next && labels->next->bypass_identify_since)
		return labels->next->bypass_identify_since(labels->next->context, pid, since_ns);
	return NULL;
}

static bool
on_bypass_identifies_late(void *context)
{
	struct labels *labels = context;

	return labels->next && labels->next->bypass_identify_since &&
	       labels->next->bypass_identifies_late &&
	       labels->next->bypass_identifies_late(labels->next->context);
}

static void
on_flushed(void *cookie, fuse_req_t req, const struct stat *attributes)
{
	struct handle *handle = cookie;

	if (handle->next_cookie && handle->labels->next->flushed)
		handle->labels->next->flushed(handle->next_cookie, req, attributes);
}

static void
on_released(void *cookie, int fd, const struct stat *attributes)
{
	struct handle *handle = cookie;
	struct labels *labels = handle->labels;

	/* The recorder first: its CLOSE makes the version the label goes on. */
	if (handle->next_cookie && labels->next->released)
		labels->next->released(handle->next_cookie, fd, attributes);
	int64_t started = monotonic_ns();
	if (handle->reads)
		readers_remove(labels, handle);
	if (handle->writes) {
		pthread_mutex_lock(&labels->handles_lock);
		if (handle->prev)
			handle->prev->next = handle->next;
		else
			labels->handles = handle->next;
		if (handle->next)
			handle->next->prev = handle->prev;
		int raised = handle->raised;
		pthread_mutex_unlock(&labels->handles_lock);
		if (raised >= 0 && labels->recorder) {
			struct recorder_policy_record *record = calloc(1, sizeof(*record));
			if (record) {
				record->kind = RECORDER_LABEL_PROPAGATED;
				record->device = handle->device;
				record->inode = handle->inode;
				record->level =
				    strdup(policy_level_name(current_policy(labels), raised));
				record->from_device = handle->from_device;
				record->from_inode = handle->from_inode;
				recorder_record_policy(labels->recorder, record);
			}
		}
	}
	process_info_release(handle->opener);
	free(handle->path);
	histogram_add(labels->open_cost_histogram[handle->created],
	              handle->cost_ns + monotonic_ns() - started);
	free(handle);
}

/* Setattrs concern the recorder only (hash_outcome). */
static void *
on_setattr_begin(void *context, const struct stat *before)
{
	struct labels *labels = context;

	if (labels->next && labels->next->setattr_begin)
		return labels->next->setattr_begin(labels->next->context, before);
	return NULL;
}

static void
on_setattr_end(void *context, void *token)
{
	struct labels *labels = context;

	labels->next->setattr_end(labels->next->context, token);
}

static uid_t
caller_uid(const struct fs_namespace_event *change)
{
	return change->caller ? change->caller->uid : 0;
}

/*
 * A label a file (st) keeps although none of its names is under the rule
 * that gave it any longer: a label change in the store saying why, which a
 * remount loads (load_persisted()).  path: a name the file has or had;
 * directory_fd and name, when it still has that name, give its generation.
 * uid: who moved it.  The index notes the level kept (label_entry.kept), so
 * that a walk of a directory renamed again keeps nothing twice.
 */
static void
record_kept_label(struct labels *labels, const struct policy *policy, const struct stat *st,
                  uid_t uid, int level, const char *path, int directory_fd, const char *name,
                  const char *reason)
{
	struct recorder_policy_record *record;
	unsigned int generation = 0;

	if (labels->recorder == NULL || (record = calloc(1, sizeof(*record))) == NULL)
		return;
	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_get(labels, st->st_dev, st->st_ino);
	if (level > entry->kept)
		entry->kept = level;
	pthread_rwlock_unlock(&labels->table_lock);
	if (directory_fd >= 0 && name) {
		int fd = openat(directory_fd, name,
		                O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd >= 0) {
			if (ioctl(fd, FS_IOC_GETVERSION, &generation) < 0)
				generation = 0;
			close(fd);
		}
	}
	record->kind = RECORDER_LABEL_CHANGE;
	record->device = st->st_dev;
	record->inode = st->st_ino;
	record->generation = generation;
	record->path = strdup(path);
	record->uid = uid;
	record->level = strdup(policy_level_name(policy, level));
	record->reason = strdup(reason);
	record->time_ns = wall_clock_ns();
	recorder_record_policy(labels->recorder, record);
}

static void renamed(struct labels *labels, const struct policy *policy,
                    const struct fs_namespace_event *change);

static void
on_namespace_changed(void *context, const struct fs_namespace_event *change)
{
	struct labels *labels = context;
	const struct policy *policy = current_policy(labels);

	if (labels->next && labels->next->namespace_changed)
		labels->next->namespace_changed(labels->next->context, change);
	if (change->attributes == NULL)
		return;
	const struct stat *st = change->attributes;
	/* Names changed: cached path rules of what moved are stale. */
	if (change->change == FS_CHANGE_RENAME)
		atomic_fetch_add_explicit(&labels->path_generation, 1, memory_order_release);
	else if (change->change == FS_CHANGE_LINK || change->change == FS_CHANGE_UNLINK)
		path_cache_forget(labels, st->st_dev, st->st_ino);
	if (change->change == FS_CHANGE_UNLINK && S_ISDIR(st->st_mode))
		directory_cache_forget(labels, st->st_dev, st->st_ino);
	/* The create being checked on this thread: its new inode. */
	if (change->change == FS_CHANGE_CREATE && S_ISREG(st->st_mode) && last_check.valid &&
	    last_check.created && last_check.labels == labels && change->name &&
	    strcmp(change->name, last_check.created_name) == 0) {
		last_check.device = st->st_dev;
		last_check.inode = st->st_ino;
	}
	if (change->change == FS_CHANGE_RENAME) {
		renamed(labels, policy, change);
		return;
	}
	if (!S_ISREG(st->st_mode))
		return;
	if (change->change == FS_CHANGE_LINK && change->new_name && change->new_parent_fd >= 0 &&
	    policy_has_path_rules(policy)) {
		/* A new name under a labeled rule labels the file, whatever name opens it. */
		char *directory = relative_path(labels, change->new_parent_fd);
		char *path = directory ? join_path(directory, change->new_name) : NULL;
		struct policy_rule_info rule;
		int level = path ? policy_path_level(policy, path, &rule) : -1;
		if (level > 0)
			index_rule(labels, st->st_dev, st->st_ino, level, &rule);
		/*
		 * A name under a lower rule for a file a rule labels ("ln
		 * conf/f pub/f"): its labeled names may all go ("rm conf/f"),
		 * and a remount would find it under the lower rule only, so
		 * the store keeps the label, as for a rename out from under it.
		 */
		char kept_rule[512] = "";
		pthread_rwlock_rdlock(&labels->table_lock);
		const struct label_entry *entry = table_find(labels, st->st_dev, st->st_ino);
		int file_rule = entry ? entry->rule : -1;
		if (entry && entry->rule_text)
			snprintf(kept_rule, sizeof(kept_rule), "%s", entry->rule_text);
		pthread_rwlock_unlock(&labels->table_lock);
		if (path && file_rule > 0 && file_rule > level) {
			char reason[1024];
			snprintf(reason, sizeof(reason), "kept from rule %s when linked as %s",
			         kept_rule, path);
			record_kept_label(labels, policy, st, caller_uid(change), file_rule, path,
			                  change->new_parent_fd, change->new_name, reason);
		}
		free(directory);
		free(path);
	}
	if (change->change == FS_CHANGE_UNLINK && change->before == NULL && st->st_nlink <= 1) {
		/* Its last name (a file that outlives the unlink comes with its
		 * attributes before): the inode number may be reused by another file. */
		pthread_rwlock_wrlock(&labels->table_lock);
		struct label_entry **link = &labels->slots[table_slot(st->st_dev, st->st_ino)];
		while (*link && !((*link)->device == st->st_dev && (*link)->inode == st->st_ino))
			link = &(*link)->next;
		if (*link) {
			struct label_entry *entry = *link;
			*link = entry->next;
			free(entry->from_path);
			free(entry->reason);
			free(entry);
			atomic_fetch_sub(&labels->entry_count, 1);
		}
		pthread_rwlock_unlock(&labels->table_lock);
	}
}

/* ---- user.* extended attributes ------------------------------------------------------ *
 *
 * An extended attribute of a regular file is data of the file kept beside
 * it: whatever its label keeps from a reader, it keeps from getxattr(2),
 * and whatever may not be written into it, may not be written into an
 * attribute either.  The virtual names (user.provfs.*) have their own
 * rules (on_virtual_xattr()); system.* (POSIX ACLs, which ls and getfacl
 * read), security.* (asked by the kernel before every write) and trusted.*
 * (root only) are never asked about (fs/passthrough.c: check_xattr()),
 * nor is listxattr, which gives names only.  A directory's attributes are
 * left alone, as its listing is: labels are decided at open(2) of files.
 *
 * Reading is an open for reading: refused (EACCES, an "xattr-read"
 * denial) to a caller not cleared for the label, refused as a write-down
 * where the open would be, and noted for propagation when allowed.
 *
 * Writing (set or remove) by a process whose read level is above the
 * file's label is refused (EACCES, a "write-down" denial), whatever
 * no_write_down says: propagation raises a file through the handle that
 * writes it, before the data arrives, and an attribute is changed with no
 * handle, by a process that may hold none.  Refusing is the safe rule:
 * the value would otherwise sit below its label for anyone to read.
 *
 * Cost: a read looks at the file's label only (the path cache, the inode
 * table), and looks up its caller when the label is above 0; a change
 * looks up its caller only once some process has read a labeled file,
 * and only for a file below the top level; both use the process table's
 * cache, never /proc on a warm path, nor the store.
 */

/* Is node a regular file?  known: the path cache said so; a failed fstat counts as one. */
static bool
node_is_regular(struct labels *labels, const struct fs_node_info *node, bool known)
{
	struct stat st;

	if (known)
		return true;
	if (fstat(node->backing_fd, &st) < 0)
		return true;
	if (!S_ISREG(st.st_mode))
		return false;
	path_cache_note_regular(labels, node->device, node->inode);
	return true;
}

static int
xattr_read_check(struct labels *labels, const struct policy *policy, fuse_req_t req,
                 const struct fs_node_info *node)
{
	struct process_info *image = NULL;
	struct policy_decision decision;
	const char *operation = NULL; /* of the denial; NULL: allowed */
	struct label_view view;
	char *path = NULL;
	bool regular = false;

	effective_label_of_node(labels, policy, node, &view, &path, &regular);
	if (view.level == 0 || !node_is_regular(labels, node, regular))
		goto out;
	image = caller_image(labels, req);
	if (view.level > policy_default_clearance(policy)) {
		decide(labels, policy, req, image, view.level, &decision);
		if (!decision.allowed) {
			operation = "xattr-read";
			goto out;
		}
	}
	if (exposes_readers(labels, policy, req, &image, true, false, node, &view, &decision) ||
	    (policy_no_write_down(policy) && image &&
	     write_down_refused(labels, policy, image, true, false, &view, &decision))) {
		operation = "write-down";
		goto out;
	}
	if (image)
		read_propagated(labels, policy, image, view.level, node, &path);
out:
	if (operation) {
		if (path == NULL)
			path = relative_path(labels, node->backing_fd);
		record_denial(labels, policy, req, image, node->device, node->inode,
		              node->backing_fd, path, &view, &decision, operation);
	}
	process_info_release(image);
	free(path);
	return operation ? -EACCES : 0;
}

static int
xattr_write_check(struct labels *labels, const struct policy *policy, fuse_req_t req,
                  const struct fs_node_info *node)
{
	int top = policy_level_count(policy) - 1;
	struct process_info *image = NULL;
	struct policy_decision decision;
	struct mark source = {0};
	struct label_view view;
	char *path = NULL;
	bool regular = false;
	int level = 0; /* the caller's read level */

	/* Nobody has read a labeled file yet: nobody can write one down. */
	if (atomic_load_explicit(&labels->mark_count, memory_order_relaxed) == 0)
		return 0;
	effective_label_of_node(labels, policy, node, &view, &path, &regular);
	if (view.level < top && (image = caller_image(labels, req)) != NULL)
		level = read_level(labels, policy, image, &source);
	bool refused = level > view.level && node_is_regular(labels, node, regular);
	if (refused) {
		decision.allowed = false;
		decision.label = view.level;
		decision.clearance = level;
		snprintf(decision.explanation, sizeof(decision.explanation),
		         "the process has read %s (%s): an extended attribute raises no label",
		         source.path && source.path[0] ? source.path : "?",
		         policy_level_name(policy, level));
		if (path == NULL)
			path = relative_path(labels, node->backing_fd);
		record_denial(labels, policy, req, image, node->device, node->inode,
		              node->backing_fd, path, &view, &decision, "write-down");
	}
	free(source.path);
	process_info_release(image);
	free(path);
	return refused ? -EACCES : 0;
}

/* check_xattr: a user.* name other than the virtual ones (see above). */
static int
on_check_xattr(void *context, fuse_req_t req, const struct fs_node_info *node, char op,
               const char *name)
{
	struct labels *labels = context;
	const struct policy *policy = current_policy(labels);
	int result = op == 'g' ? xattr_read_check(labels, policy, req, node)
	                       : xattr_write_check(labels, policy, req, node);

	if (result == 0 && labels->next && labels->next->check_xattr)
		result = labels->next->check_xattr(labels->next->context, req, node, op, name);
	return result;
}

/* ---- virtual extended attributes ------------------------------------------------------ */

static void
reply_value(fuse_req_t req, const char *value, size_t length, size_t size)
{
	if (size == 0)
		fuse_reply_xattr(req, length);
	else if (length > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, value, length);
}

static uint64_t
generation_of(int backing_fd)
{
	char link[32];
	unsigned int generation = 0;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", backing_fd);
	int fd = open(link, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd >= 0) {
		if (ioctl(fd, FS_IOC_GETVERSION, &generation) < 0)
			generation = 0;
		close(fd);
	}
	return generation;
}

static void
record_label_change(struct labels *labels, fuse_req_t req, const struct fs_node_info *node,
                    const char *path, const char *level, bool forced, const char *reason)
{
	if (labels->recorder == NULL)
		return;
	struct recorder_policy_record *record = calloc(1, sizeof(*record));
	if (record == NULL)
		return;
	record->kind = RECORDER_LABEL_CHANGE;
	record->device = node->device;
	record->inode = node->inode;
	record->generation = generation_of(node->backing_fd);
	record->path = xstrdup_or_null(path);
	record->uid = fuse_req_ctx(req)->uid;
	record->level = xstrdup_or_null(level);
	record->forced = forced;
	record->reason = xstrdup_or_null(reason);
	record->time_ns = wall_clock_ns();
	recorder_record_policy(labels->recorder, record);
}

/*
 * setxattr user.provfs.label (LEVEL) or user.provfs.declassify
 * (LEVEL\nREASON): admins only.  A plain label below what the rules and
 * propagation give the file is refused: lowering takes a declassification.
 */
static int
set_label(struct labels *labels, fuse_req_t req, const struct fs_node_info *node, const char *value,
          size_t size, bool declassify)
{
	const struct policy *policy = current_policy(labels);
	char text[256], *reason = NULL;

	if (!is_admin(policy, req))
		return EPERM;
	if (size == 0 || size >= sizeof(text) - 1)
		return EINVAL;
	memcpy(text, value, size);
	text[size] = '\0';
	if (declassify) {
		char *newline = strchr(text, '\n');
		if (newline == NULL || newline[1] == '\0')
			return EINVAL; /* a declassification says why */
		*newline = '\0';
		reason = newline + 1;
	} else if (text[size - 1] == '\n') {
		text[size - 1] = '\0';
	}
	int level = policy_level_index(policy, text);
	if (level < 0)
		return EINVAL;
	char *path = relative_path(labels, node->backing_fd);
	if (!declassify) {
		/* What the file is without an explicit label: rules and propagation. */
		struct policy_rule_info rule;
		int floor = path ? policy_path_level(policy, path, &rule) : -1;
		pthread_rwlock_rdlock(&labels->table_lock);
		const struct label_entry *entry = table_find(labels, node->device, node->inode);
		if (entry && entry->rule > floor)
			floor = entry->rule;
		if (entry && entry->propagated > floor)
			floor = entry->propagated;
		pthread_rwlock_unlock(&labels->table_lock);
		if (level < floor) {
			free(path);
			return EPERM;
		}
	}
	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_get(labels, node->device, node->inode);
	entry->explicit_level = level;
	entry->forced = declassify;
	set_string(&entry->reason, reason);
	pthread_rwlock_unlock(&labels->table_lock);
	record_label_change(labels, req, node, path, text, declassify, reason);
	log_info("label of '%s' set to %s%s by uid %u", path ? path : "?", text,
	         declassify ? " (declassified)" : "", (unsigned)fuse_req_ctx(req)->uid);
	free(path);
	return 0;
}

static int
unset_label(struct labels *labels, fuse_req_t req, const struct fs_node_info *node)
{
	const struct policy *policy = current_policy(labels);

	if (!is_admin(policy, req))
		return EPERM;
	bool had = false;
	pthread_rwlock_wrlock(&labels->table_lock);
	struct label_entry *entry = table_find(labels, node->device, node->inode);
	if (entry && entry->explicit_level >= 0) {
		had = true;
		entry->explicit_level = -1;
		entry->forced = false;
		set_string(&entry->reason, NULL);
	}
	pthread_rwlock_unlock(&labels->table_lock);
	if (!had)
		return ENODATA;
	char *path = relative_path(labels, node->backing_fd);
	record_label_change(labels, req, node, path, NULL, false, NULL);
	free(path);
	return 0;
}

static const char *const source_names[] = {
    [SOURCE_DEFAULT] = "default",
    [SOURCE_RULE] = "rule",
    [SOURCE_EXPLICIT] = "explicit",
    [SOURCE_PROPAGATED] = "propagated",
};

static json_object *
json_string_or_null(const char *s)
{
	return s && s[0] ? json_object_new_string(s) : NULL;
}

static json_object *
why_json(const struct policy *policy, const struct label_view *view)
{
	json_object *why = json_object_new_object();

	json_object_object_add(why, "label",
	                       json_object_new_string(policy_level_name(policy, view->level)));
	json_object_object_add(why, "source", json_object_new_string(source_names[view->source]));
	char rule[512];
	json_object_object_add(why, "rule",
	                       json_string_or_null(view_rule_text(view, rule, sizeof(rule))));
	json_object_object_add(why, "explicit",
	                       view->explicit_level >= 0 ? json_object_new_string(policy_level_name(
	                                                       policy, view->explicit_level))
	                                                 : NULL);
	/* Only when there is one: older readers compare the whole answer. */
	if (view->explicit_level >= 0 && view->reason[0])
		json_object_object_add(why, "reason", json_object_new_string(view->reason));
	json_object *from = NULL;
	if (view->propagated >= 0) {
		from = json_object_new_object();
		json_object_object_add(from, "path", json_string_or_null(view->from_path));
		json_object_object_add(
		    from, "version",
		    view->from_version ? json_object_new_int64(view->from_version) : NULL);
		json_object_object_add(from, "hash", json_string_or_null(view->from_hash));
	}
	json_object_object_add(why, "propagated_from", from);
	return why;
}

/* May the caller read what the file's lineage and label reasons say? */
static bool
may_read_details(struct labels *labels, const struct policy *policy, fuse_req_t req, int level)
{
	if (is_admin(policy, req))
		return true;
	struct process_info *image = caller_image(labels, req);
	struct policy_decision decision;
	decide(labels, policy, req, image, level, &decision);
	process_info_release(image);
	return decision.allowed;
}

static void lineage_request(struct labels *labels, fuse_req_t req, const struct fs_node_info *node,
                            const struct label_view *view, size_t size, json_object *why);

static void
on_virtual_xattr(void *context, fuse_req_t req, const struct fs_node_info *node, char op,
                 const char *name, const char *value, size_t size)
{
	struct labels *labels = context;
	const struct policy *policy = current_policy(labels);

	/*
	 * The admin route.  With default_permissions the kernel lets a caller
	 * set or remove a user.* attribute only with write permission on the
	 * file, so an admin without it never reaches us through
	 * user.provfs.label.  system.* names are left to the filesystem (no
	 * mode check in the VFS): system.provfs.label and
	 * system.provfs.declassify reach us from anyone, and set_label and
	 * unset_label decide, as for user.provfs.*, who may change a label:
	 * root or admin_group, EPERM otherwise.  Only these two names, and only
	 * on the file types user.* names apply to; the lineage and the reasons
	 * stay behind the kernel's read check of user.* names.
	 */
	if (strncmp(name, "system.provfs.", 14) == 0) {
		const char *rest = name + 14;
		struct stat st;
		if (strcmp(rest, "label") != 0 && strcmp(rest, "declassify") != 0) {
			fuse_reply_err(req, op == 'g' ? ENODATA : ENOTSUP);
			return;
		}
		if (fstat(node->backing_fd, &st) < 0 ||
		    !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode))) {
			fuse_reply_err(req, op == 'g' ? ENODATA : EPERM);
			return;
		}
		name = strcmp(rest, "label") == 0 ? "user.provfs.label" : "user.provfs.declassify";
	}
	bool label = strcmp(name, "user.provfs.label") == 0;
	bool why = strcmp(name, "user.provfs.label.why") == 0;
	bool lineage = strcmp(name, "user.provfs.lineage") == 0;
	bool declassify = strcmp(name, "user.provfs.declassify") == 0;

	if (op == 's' && (label || declassify)) {
		fuse_reply_err(req, set_label(labels, req, node, value, size, declassify));
		return;
	}
	if (op == 'r' && label) {
		fuse_reply_err(req, unset_label(labels, req, node));
		return;
	}
	if (op != 'g') {
		fuse_reply_err(req, why || lineage ? EPERM : ENOTSUP);
		return;
	}
	if (!label && !why && !lineage) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	char *path = relative_path(labels, node->backing_fd);
	struct label_view view;
	effective_label(labels, policy, node->device, node->inode, path, true, &view);
	free(path);
	if (label) {
		const char *level = policy_level_name(policy, view.level);
		reply_value(req, level, strlen(level), size);
		return;
	}
	if (!may_read_details(labels, policy, req, view.level)) {
		fuse_reply_err(req, EACCES);
		return;
	}
	if (lineage) {
		lineage_request(labels, req, node, &view, size, NULL);
		return;
	}
	json_object *json = why_json(policy, &view);
	if (view.propagated >= 0 && view.from_version == 0) {
		/* The input's version number and hash are in the store. */
		lineage_request(labels, req, node, &view, size, json);
		return;
	}
	const char *text = json_object_to_json_string_ext(json, JSON_C_TO_STRING_PLAIN |
	                                                            JSON_C_TO_STRING_NOSLASHESCAPE);
	reply_value(req, text, strlen(text), size);
	json_object_put(json);
}

/* ---- the lineage xattr: answered from the store, off the request thread ------------- */

struct lineage_job {
	fuse_req_t req;
	dev_t device;
	ino_t inode;
	size_t size;
	char label[64];
	json_object *why; /* a label.why answer to complete with the input's version */
	dev_t from_device;
	ino_t from_inode;
	struct lineage_job *next;
};

struct lineage_queue {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct lineage_job *head, *tail;
	bool stopping;
	pthread_t thread;
	bool running;
	struct store *store;
};

static struct lineage_queue *lineage_of(struct labels *labels);

static void
lineage_request(struct labels *labels, fuse_req_t req, const struct fs_node_info *node,
                const struct label_view *view, size_t size, json_object *why)
{
	struct lineage_queue *queue = lineage_of(labels);
	struct lineage_job *job;

	if (queue == NULL || !queue->running || (job = calloc(1, sizeof(*job))) == NULL) {
		if (why) {
			/* No store: the answer from memory alone. */
			const char *text = json_object_to_json_string_ext(
			    why, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
			reply_value(req, text, strlen(text), size);
			json_object_put(why);
		} else {
			fuse_reply_err(req, ENODATA); /* no store: no lineage */
		}
		return;
	}
	job->why = why;
	job->from_device = view->from_device;
	job->from_inode = view->from_inode;
	job->req = req;
	job->device = node->device;
	job->inode = node->inode;
	job->size = size;
	snprintf(job->label, sizeof(job->label), "%s",
	         policy_level_name(current_policy(labels), view->level));
	pthread_mutex_lock(&queue->lock);
	if (queue->tail)
		queue->tail->next = job;
	else
		queue->head = job;
	queue->tail = job;
	pthread_cond_signal(&queue->wake);
	pthread_mutex_unlock(&queue->lock);
}

static sqlite3_stmt *
prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		return NULL;
	return s;
}

static json_object *
column_string(sqlite3_stmt *s, int column)
{
	const unsigned char *text = sqlite3_column_text(s, column);

	return text ? json_object_new_string((const char *)text) : NULL;
}

/* The lineage document of (device, inode), or NULL when provfs never saw it. */
static json_object *
lineage_document(struct labels *labels, sqlite3 *db, const struct lineage_job *job)
{
	json_object *doc = NULL;
	int64_t file_id = 0, version_id = 0, producer = 0;
	sqlite3_stmt *s;

	s = prepare(db, "SELECT id, path FROM files WHERE host = ? AND device = ? AND inode = ? "
	                "ORDER BY id DESC LIMIT 1");
	if (s == NULL)
		return NULL;
	sqlite3_bind_text(s, 1, labels->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)job->device);
	sqlite3_bind_int64(s, 3, (int64_t)job->inode);
	if (sqlite3_step(s) == SQLITE_ROW) {
		file_id = sqlite3_column_int64(s, 0);
		doc = json_object_new_object();
		json_object_object_add(doc, "path", column_string(s, 1));
		json_object_object_add(doc, "label", json_object_new_string(job->label));
	}
	sqlite3_finalize(s);
	if (doc == NULL)
		return NULL;
	s = prepare(db, "SELECT id, number, hash, producer_process_id, origin FROM versions "
	                "WHERE file_id = ? ORDER BY number DESC LIMIT 1");
	if (s) {
		sqlite3_bind_int64(s, 1, file_id);
		if (sqlite3_step(s) == SQLITE_ROW) {
			version_id = sqlite3_column_int64(s, 0);
			json_object_object_add(doc, "version",
			                       json_object_new_int64(sqlite3_column_int64(s, 1)));
			json_object_object_add(doc, "hash", column_string(s, 2));
			json_object_object_add(doc, "origin", column_string(s, 4));
			producer = sqlite3_column_int64(s, 3);
		}
		sqlite3_finalize(s);
	}
	json_object *process = NULL;
	s = producer ? prepare(db, "SELECT p.pid, p.start_ns, p.executable, p.executable_hash, "
	                           "p.argv, p.uid, r.uuid, r.job_name FROM processes p LEFT JOIN "
	                           "runs r ON r.id = p.run_id WHERE p.id = ?")
	             : NULL;
	if (s) {
		sqlite3_bind_int64(s, 1, producer);
		if (sqlite3_step(s) == SQLITE_ROW) {
			char id[64];
			snprintf(id, sizeof(id), "%lld@%lld", (long long)sqlite3_column_int64(s, 0),
			         (long long)(sqlite3_column_int64(s, 1) / 1000000000LL));
			process = json_object_new_object();
			json_object_object_add(process, "id", json_object_new_string(id));
			json_object_object_add(process, "executable", column_string(s, 2));
			json_object_object_add(process, "executable_hash", column_string(s, 3));
			json_object *argv = json_object_new_array();
			const char *words = sqlite3_column_blob(s, 4);
			int length = sqlite3_column_bytes(s, 4);
			for (int at = 0; words && at < length;) {
				size_t word = strnlen(words + at, (size_t)(length - at));
				json_object_array_add(
				    argv, json_object_new_string_len(words + at, (int)word));
				at += (int)word + 1;
			}
			json_object_object_add(process, "argv", argv);
			json_object_object_add(process, "uid",
			                       json_object_new_int64(sqlite3_column_int64(s, 5)));
			json_object *run = json_object_new_object();
			json_object_object_add(run, "id", column_string(s, 6));
			json_object_object_add(run, "job", column_string(s, 7));
			json_object_object_add(doc, "run", run);
		}
		sqlite3_finalize(s);
	}
	json_object_object_add(doc, "process", process);
	json_object *inputs = json_object_new_array();
	bool truncated = false;
	s = producer ? prepare(db, "SELECT DISTINCT f.path, v.number, v.hash, v.label FROM "
	                           "accesses a JOIN versions v ON v.id = a.read_version_id JOIN "
	                           "files f ON f.id = v.file_id WHERE a.process_id = ? AND "
	                           "v.id != ? ORDER BY f.path, v.number")
	             : NULL;
	if (s) {
		size_t used = strlen(json_object_to_json_string_ext(
		    doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
		sqlite3_bind_int64(s, 1, producer);
		sqlite3_bind_int64(s, 2, version_id);
		while (sqlite3_step(s) == SQLITE_ROW) {
			json_object *input = json_object_new_object();
			json_object_object_add(input, "path", column_string(s, 0));
			json_object_object_add(input, "version",
			                       json_object_new_int64(sqlite3_column_int64(s, 1)));
			json_object_object_add(input, "hash", column_string(s, 2));
			json_object_object_add(input, "label", column_string(s, 3));
			size_t add = strlen(json_object_to_json_string_ext(
			    input, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
			if (used + add + 32 > LINEAGE_LIMIT) {
				json_object_put(input);
				truncated = true;
				break;
			}
			used += add + 1;
			json_object_array_add(inputs, input);
		}
		sqlite3_finalize(s);
	}
	json_object_object_add(doc, "inputs", inputs);
	if (truncated)
		json_object_object_add(doc, "truncated", json_object_new_boolean(true));
	return doc;
}

/*
 * The version and hash of the input a propagated label came from: the one
 * the labeled version names, or else (not flushed yet) the input's latest.
 */
static void
complete_why(struct labels *labels, sqlite3 *db, struct lineage_job *job)
{
	json_object *from = NULL;
	sqlite3_stmt *s;

	if (!json_object_object_get_ex(job->why, "propagated_from", &from) || from == NULL)
		return;
	s = prepare(db,
	            "SELECT sv.number, sv.hash FROM files f JOIN versions v ON v.file_id = "
	            "f.id JOIN versions sv ON sv.id = v.label_from_version_id WHERE f.host = ?1 "
	            "AND f.device = ?2 AND f.inode = ?3 ORDER BY f.id DESC, v.number DESC LIMIT 1");
	if (s == NULL)
		return;
	sqlite3_bind_text(s, 1, labels->host, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, (int64_t)job->device);
	sqlite3_bind_int64(s, 3, (int64_t)job->inode);
	int step = sqlite3_step(s);
	if (step != SQLITE_ROW) {
		sqlite3_finalize(s);
		s = prepare(db,
		            "SELECT v.number, v.hash FROM files f JOIN versions v ON v.file_id = "
		            "f.id WHERE f.host = ?1 AND f.device = ?2 AND f.inode = ?3 ORDER BY "
		            "f.id DESC, v.number DESC LIMIT 1");
		if (s == NULL)
			return;
		sqlite3_bind_text(s, 1, labels->host, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s, 2, (int64_t)job->from_device);
		sqlite3_bind_int64(s, 3, (int64_t)job->from_inode);
		step = sqlite3_step(s);
	}
	if (step == SQLITE_ROW) {
		json_object_object_add(from, "version",
		                       json_object_new_int64(sqlite3_column_int64(s, 0)));
		json_object_object_add(from, "hash", column_string(s, 1));
	}
	sqlite3_finalize(s);
}

static void *
lineage_main(void *argument)
{
	struct labels *labels = argument;
	struct lineage_queue *queue = lineage_of(labels);

	pthread_setname_np(pthread_self(), "provfs-lineage");
	pthread_mutex_lock(&queue->lock);
	for (;;) {
		while (queue->head == NULL && !queue->stopping)
			pthread_cond_wait(&queue->wake, &queue->lock);
		struct lineage_job *job = queue->head;
		if (job == NULL)
			break;
		queue->head = job->next;
		if (queue->head == NULL)
			queue->tail = NULL;
		pthread_mutex_unlock(&queue->lock);
		if (queue->store == NULL) {
			char error[512];
			queue->store = store_open(labels->store_path, STORE_READ_ONLY, NULL, error,
			                          sizeof(error));
			if (queue->store == NULL)
				log_warning("lineage xattr: %s", error);
		}
		json_object *doc;
		if (job->why) {
			if (queue->store && !queue->stopping)
				complete_why(labels, store_db(queue->store), job);
			doc = job->why;
		} else {
			doc = queue->store && !queue->stopping
			          ? lineage_document(labels, store_db(queue->store), job)
			          : NULL;
		}
		if (doc == NULL) {
			fuse_reply_err(job->req, ENODATA);
		} else {
			const char *text = json_object_to_json_string_ext(
			    doc, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
			reply_value(job->req, text, strlen(text), job->size);
			json_object_put(doc);
		}
		free(job);
		pthread_mutex_lock(&queue->lock);
	}
	pthread_mutex_unlock(&queue->lock);
	return NULL;
}

static struct lineage_queue *
lineage_of(struct labels *labels)
{
	return labels->lineage;
}

/* ---- the inode index: walk the backing tree under labeled rules -------------------- */

/*
 * What a walk does with each regular file it finds: directory_fd and name
 * open it, path names it from where the walk began.  True when it counts.
 */
typedef bool walk_visit_fn(void *context, int directory_fd, const char *name, const struct stat *st,
                           const char *path);

/* Test only: the mover's walks pause this long before each entry. */
static _Thread_local int walk_entry_pause_ms;

/*
 * Visit every regular file below directory_fd (taken over: closed here),
 * path (PATH_MAX bytes, path_length of them used) naming it.  Every step is
 * an *at() call from the descriptor above with O_NOFOLLOW, so a symlink is
 * never followed and the walk never leaves the tree it began in; 512 levels
 * at most, a descriptor each.  Returns how many visits counted.
 */
static size_t
walk_files(int directory_fd, char *path, size_t path_length, int depth, walk_visit_fn *visit,
           void *context)
{
	size_t counted = 0;
	DIR *directory = fdopendir(directory_fd);

	if (directory == NULL) {
		close(directory_fd);
		return 0;
	}
	struct dirent *entry;
	while ((entry = readdir(directory)) != NULL) {
		const char *name = entry->d_name;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (walk_entry_pause_ms > 0)
			nanosleep(&(struct timespec){.tv_sec = walk_entry_pause_ms / 1000,
			                             .tv_nsec = walk_entry_pause_ms % 1000 * 1000000L},
			          NULL);
		size_t name_length = strlen(name);
		if (path_length + name_length + 2 >= PATH_MAX)
			continue;
		size_t child_length = path_length;
		if (path_length)
			path[child_length++] = '/';
		memcpy(path + child_length, name, name_length + 1);
		child_length += name_length;
		struct stat st;
		if (fstatat(dirfd(directory), name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
			if (S_ISDIR(st.st_mode) && depth < 512) {
				int child = openat(dirfd(directory), name,
				                   O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
				if (child >= 0)
					counted += walk_files(child, path, child_length, depth + 1,
					                      visit, context);
			} else if (S_ISREG(st.st_mode)) {
				if (visit(context, dirfd(directory), name, &st, path))
					counted++;
			}
		}
		path[path_length] = '\0';
	}
	closedir(directory);
	return counted;
}

struct index_walk {
	struct labels *labels;
	const struct policy *policy;
};

static bool
index_visit(void *context, int directory_fd, const char *name, const struct stat *st,
            const char *path)
{
	struct index_walk *walk = context;
	struct policy_rule_info rule;

	if (policy_path_level(walk->policy, path, &rule) <= 0)
		return false;
	index_rule(walk->labels, st->st_dev, st->st_ino, rule.level, &rule);
	return true;
}

/*
 * Index every regular file under a labeled rule, so that the label
 * follows the inode to every other name it has (a hard link made before
 * the mount, in a public directory).  Runs before requests are served.
 */
static size_t
index_tree(struct labels *labels, const struct policy *policy)
{
	const char **roots;
	size_t count = policy_index_roots(policy, &roots), indexed = 0;
	struct index_walk walk = {.labels = labels, .policy = policy};
	char path[PATH_MAX];

	for (size_t i = 0; i < count; i++) {
		struct open_how how = {.flags = O_RDONLY | O_DIRECTORY | O_CLOEXEC,
		                       .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
		                                  RESOLVE_NO_MAGICLINKS};
		int fd = (int)syscall(SYS_openat2, labels->backing_fd, roots[i][0] ? roots[i] : ".",
		                      &how, sizeof(how));
		if (fd < 0)
			continue; /* not there (yet): nothing to index */
		snprintf(path, sizeof(path), "%s", roots[i]);
		indexed += walk_files(fd, path, strlen(path), 0, index_visit, &walk);
	}
	return indexed;
}

/* ---- directories renamed out from under their rules ------------------------------------
 *
 * A file renamed out from under its rule keeps its label in the store at
 * once (moved_object), whichever side of an exchange it was.  A directory
 * renamed, or exchanged with anything, moves every file below
 * it, and finding them is a walk, which never runs on a request thread: the
 * request thread opens the moved directory (one openat, O_NOFOLLOW) and
 * queues it with its old and new paths; the mover thread walks it from that
 * descriptor (walk_files) and, for each regular file whose label from a rule
 * (its old path's, or the index's from any name it had) is above what its
 * new path's rules give, records a kept label as a file rename does
 * (record_kept_label), unless the store already holds that level for it.
 * An explicit or propagated label is in the store already, keyed by inode,
 * whatever the path: the walk has nothing to add for those.
 *
 * Which renames are walked: those of a directory at or above a labeled
 * rule's directory (policy_index_roots); and every one that overlapped a
 * walk (one was queued or running when the rename was made, or ended after
 * it), so that a directory moved out of the tree being walked before the
 * walk reached it (mv pub/p/sub pub/sub) is walked too, and found labeled
 * by the index.  "When the rename was made" is the time the fs layer
 * stamps just before renameat2 (event->started_ns), not the time this
 * observer runs: a walk that listed sub, then found it gone and ended
 * before the rename's event was handled, overlapped it all the same.
 *
 * Races.  The open happens while the kernel still holds the rename's
 * directory locks (the event comes before the reply), so through the mount
 * the name is certainly the directory that moved.  The walk follows that
 * directory's inode, not its name: renamed again meanwhile, its files are
 * still found, and the next rename queues its own walk, from the name this
 * one gave it.  Removed meanwhile, readdir finds what is left; a file gone
 * keeps nothing.  The paths in the records are the names as of the rename
 * (the label belongs to the inode, which is what a remount loads).  Changes
 * made in the backing tree directly are not seen, as everywhere in provfs.
 *
 * Unmount: labels_stop() lets the mover finish every walk queued before it
 * joins it, and the daemon stops the recorder only after that, so every
 * kept label reaches the store; a long walk makes the unmount as long.
 * A full queue (MOVED_QUEUE_LIMIT directories, each holding a descriptor)
 * drops the walk with a warning: its files keep their labels until unmount.
 */

#define MOVED_QUEUE_LIMIT 1024

struct moved_directory {
	int fd;                      /* the directory, O_RDONLY | O_DIRECTORY */
	const struct policy *policy; /* in force at the rename; freed only at unmount */
	char *from, *to;             /* its paths before and after the rename */
	uid_t uid;                   /* who renamed it */
	struct timespec renamed_at;  /* CLOCK_REALTIME, just after the rename */
	struct moved_directory *next;
};

struct directory_mover {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct moved_directory *head, *tail; /* lock */
	size_t pending;                      /* queued or being walked; lock */
	int64_t last_walk_ended_ns;          /* CLOCK_MONOTONIC, after its last step; lock */
	bool stopping;                       /* lock */
	/* Test only (PROVFS_TEST_MOVED_WALK_DELAY_MS, PROVFS_TEST_RENAME_CHECK_DELAY_MS):
	 * the walk pauses before each entry, a rename before it decides. */
	int test_walk_delay_ms, test_rename_delay_ms;
	pthread_t thread;
	bool running; /* set before requests are served, cleared after */
};

/* One file's old and new paths, made from the walk's relative path. */
struct moved_walk {
	struct labels *labels;
	const struct moved_directory *moved;
	char from[PATH_MAX];
	char to[PATH_MAX];
};

/* Is a labeled rule's directory at, above or below path? */
static bool
near_labeled_root(const struct policy *policy, const char *path)
{
	const char **roots;
	size_t count = policy_index_roots(policy, &roots), length = strlen(path);

	for (size_t i = 0; i < count; i++) {
		size_t root_length = strlen(roots[i]);
		if (root_length == 0)
			return true;
		if (root_length <= length && strncmp(path, roots[i], root_length) == 0 &&
		    (path[root_length] == '\0' || path[root_length] == '/'))
			return true;
		if (length < root_length && strncmp(roots[i], path, length) == 0 &&
		    roots[i][length] == '/')
			return true;
	}
	return false;
}

/* directory/path into buffer; false when it does not fit. */
static bool
moved_path(char *buffer, size_t size, const char *directory, const char *path)
{
	int length = snprintf(buffer, size, "%s/%s", directory, path);

	return length > 0 && (size_t)length < size;
}

/*
 * Was the file made after t (its birth time, where the filesystem keeps
 * one)?  A file made in the moved directory after the rename, before the
 * walk reached it, was never below the old name; without this it would
 * keep the old name's label.  Birth times are read from the kernel's
 * coarse clock, never later than the true time, so a file made before the
 * rename is never taken for a later one (it keeps its label: the safe
 * side); unknown, it keeps it too.
 */
static bool
born_after(int directory_fd, const char *name, const struct timespec *t)
{
	struct statx attributes;

	if (statx(directory_fd, name, AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC, STATX_BTIME,
	          &attributes) < 0 ||
	    !(attributes.stx_mask & STATX_BTIME))
		return false;
	return attributes.stx_btime.tv_sec > t->tv_sec ||
	       (attributes.stx_btime.tv_sec == t->tv_sec &&
	        attributes.stx_btime.tv_nsec > (uint32_t)t->tv_nsec);
}

static bool
moved_visit(void *context, int directory_fd, const char *name, const struct stat *st,
            const char *path)
{
	struct moved_walk *walk = context;
	const struct moved_directory *moved = walk->moved;
	struct labels *labels = walk->labels;
	struct policy_rule_info rule;
	char kept_rule[512] = "", reason[2048];

	if (!moved_path(walk->from, sizeof(walk->from), moved->from, path) ||
	    !moved_path(walk->to, sizeof(walk->to), moved->to, path))
		return false;
	if (born_after(directory_fd, name, &moved->renamed_at))
		return false; /* made after the rename: never under the old name */
	int level = policy_path_level(moved->policy, walk->from, &rule);
	if (level > 0) {
		index_rule(labels, st->st_dev, st->st_ino, level, &rule);
		snprintf(kept_rule, sizeof(kept_rule), "%s (line %d)", rule.glob, rule.line);
	}
	/* A rule one of its other names has, or had before an earlier rename. */
	pthread_rwlock_rdlock(&labels->table_lock);
	const struct label_entry *entry = table_find(labels, st->st_dev, st->st_ino);
	if (entry && entry->rule > level && entry->rule_text) {
		level = entry->rule;
		copy_text(kept_rule, sizeof(kept_rule), entry->rule_text);
	}
	/* A declassification is not: the kept label is the safe side. */
	bool stored =
	    entry && (entry->kept >= level || (!entry->forced && entry->explicit_level >= level));
	pthread_rwlock_unlock(&labels->table_lock);
	if (level <= 0 || stored || policy_path_level(moved->policy, walk->to, NULL) >= level)
		return false;
	snprintf(reason, sizeof(reason),
	         "kept from rule %s when its directory %s was renamed to %s", kept_rule,
	         moved->from, moved->to);
	record_kept_label(labels, moved->policy, st, moved->uid, level, walk->to, directory_fd,
	                  name, reason);
	return true;
}

static void
moved_directory_free(struct moved_directory *moved)
{
	if (moved->fd >= 0)
		close(moved->fd);
	free(moved->from);
	free(moved->to);
	free(moved);
}

/* On the mover: walk one renamed directory (its descriptor is used up). */
static void
walk_moved(struct labels *labels, struct moved_directory *moved)
{
	struct moved_walk *walk = malloc(sizeof(*walk));
	char path[PATH_MAX] = "";

	if (walk == NULL) {
		log_warning("labels: out of memory walking '%s' (renamed from '%s')", moved->to,
		            moved->from);
		return;
	}
	walk->labels = labels;
	walk->moved = moved;
	size_t kept = walk_files(moved->fd, path, 0, 0, moved_visit, walk);
	moved->fd = -1;
	if (kept)
		log_info("labels: %zu files below '%s' (renamed from '%s') keep their labels in "
		         "the store",
		         kept, moved->to, moved->from);
	free(walk);
}

static void *
mover_main(void *argument)
{
	struct labels *labels = argument;
	struct directory_mover *mover = labels->mover;

	pthread_setname_np(pthread_self(), "provfs-moved");
	walk_entry_pause_ms = mover->test_walk_delay_ms;
	pthread_mutex_lock(&mover->lock);
	for (;;) {
		while (mover->head == NULL && !mover->stopping)
			pthread_cond_wait(&mover->wake, &mover->lock);
		struct moved_directory *moved = mover->head;
		if (moved == NULL)
			break; /* stopping, and every queued walk done */
		mover->head = moved->next;
		if (mover->head == NULL)
			mover->tail = NULL;
		pthread_mutex_unlock(&mover->lock);
		walk_moved(labels, moved);
		moved_directory_free(moved);
		pthread_mutex_lock(&mover->lock);
		mover->last_walk_ended_ns = monotonic_ns();
		mover->pending--;
	}
	pthread_mutex_unlock(&mover->lock);
	return NULL;
}

/*
 * On the request thread: queue the walk of the directory now at
 * (parent_fd, name), renamed from path `from` to path `to` by a rename
 * made at started_ns (CLOCK_MONOTONIC; 0: unknown).  Nothing but one
 * openat (O_DIRECTORY: no longer a directory, nothing).
 */
static void
queue_moved_directory(struct labels *labels, const struct policy *policy, uid_t uid, int parent_fd,
                      const char *name, const char *from, const char *to, int64_t started_ns)
{
	struct directory_mover *mover = labels->mover;
	struct moved_directory *moved = NULL;

	if (!mover->running || strcmp(from, to) == 0)
		return;
	if (mover->test_rename_delay_ms > 0)
		nanosleep(&(struct timespec){.tv_sec = mover->test_rename_delay_ms / 1000,
		                             .tv_nsec = mover->test_rename_delay_ms % 1000 * 1000000L},
		          NULL);
	pthread_mutex_lock(&mover->lock);
	size_t pending = mover->pending;
	/* A walk that ended after the rename began may have missed what it moved. */
	bool overlapped = pending > 0 || (mover->last_walk_ended_ns != 0 &&
	                                  mover->last_walk_ended_ns >= started_ns);
	pthread_mutex_unlock(&mover->lock);
	if (!overlapped && !near_labeled_root(policy, from))
		return; /* no labeled rule reaches below its old name, and no walk ran */
	if (pending >= MOVED_QUEUE_LIMIT) {
		log_warning("labels: %zu renamed directories wait for their walk: the labels of "
		            "the files below '%s' (renamed from '%s') are kept until unmount only",
		            pending, to, from);
		return;
	}
	int fd = openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if ((moved = calloc(1, sizeof(*moved))) == NULL)
		goto out_err;
	moved->fd = fd;
	moved->policy = policy;
	moved->uid = uid;
	clock_gettime(CLOCK_REALTIME, &moved->renamed_at);
	moved->from = strdup(from);
	moved->to = strdup(to);
	if (moved->from == NULL || moved->to == NULL)
		goto out_err;
	pthread_mutex_lock(&mover->lock);
	if (mover->tail)
		mover->tail->next = moved;
	else
		mover->head = moved;
	mover->tail = moved;
	mover->pending++;
	pthread_cond_signal(&mover->wake);
	pthread_mutex_unlock(&mover->lock);
	return;
out_err:
	log_warning("labels: out of memory queueing the walk of '%s' (renamed from '%s')", to,
	            from);
	if (moved)
		moved_directory_free(moved);
	else
		close(fd);
}

/*
 * What a rename moved (st, now at (parent_fd, name)) from path `from` to
 * path `to` (NULL: unknown).  A regular file: the label of the name it
 * leaves goes with it, and, moved below its rule, the store keeps it as a
 * label change saying why, so that a remount (whose walk no longer finds
 * the file under the rule) loads it again.  A directory: its files are
 * walked on the mover.
 */
static void
moved_object(struct labels *labels, const struct policy *policy, const struct stat *st, uid_t uid,
             const char *from, const char *to, int parent_fd, const char *name, int64_t started_ns)
{
	struct policy_rule_info rule;
	char reason[1024];

	if (S_ISDIR(st->st_mode)) {
		if (to)
			queue_moved_directory(labels, policy, uid, parent_fd, name, from, to,
			                      started_ns);
		return;
	}
	if (!S_ISREG(st->st_mode))
		return;
	int level = policy_path_level(policy, from, &rule);
	if (level <= 0)
		return;
	index_rule(labels, st->st_dev, st->st_ino, level, &rule);
	if (to == NULL || policy_path_level(policy, to, NULL) >= level)
		return;
	snprintf(reason, sizeof(reason), "kept from rule %s (line %d) when renamed from %s",
	         rule.glob, rule.line, from);
	record_kept_label(labels, policy, st, uid, level, to, parent_fd, name, reason);
}

/*
 * A rename through the mount moved change->attributes from (parent_fd,
 * name) to (new_parent_fd, new_name).  An exchange also moved what was at
 * the new name to the old one, whatever its type: one fstatat at the old
 * name identifies it (the kernel still holds the rename's directory locks,
 * so it is certainly what moved), and it keeps its label the same way.
 */
static void
renamed(struct labels *labels, const struct policy *policy, const struct fs_namespace_event *change)
{
	struct stat other; /* an exchange's other side, now at the old name */

	if (!policy_has_path_rules(policy) || change->name == NULL || change->parent_fd < 0)
		return;
	char *from_directory = relative_path(labels, change->parent_fd);
	char *to_directory = change->new_parent_fd >= 0 && change->new_name
	                         ? relative_path(labels, change->new_parent_fd)
	                         : NULL;
	char *from = from_directory ? join_path(from_directory, change->name) : NULL;
	char *to = to_directory ? join_path(to_directory, change->new_name) : NULL;

	if (from) {
		moved_object(labels, policy, change->attributes, caller_uid(change), from, to,
		             change->new_parent_fd, change->new_name, change->started_ns);
		if (to && (change->flags & RENAME_EXCHANGE) &&
		    fstatat(change->parent_fd, change->name, &other, AT_SYMLINK_NOFOLLOW) == 0)
			moved_object(labels, policy, &other, caller_uid(change), to, from,
			             change->parent_fd, change->name, change->started_ns);
	}
	free(from_directory);
	free(to_directory);
	free(from);
	free(to);
}

/* ---- labels persisted in the store ------------------------------------------------------ */

static void
load_persisted(struct labels *labels, const struct policy *policy)
{
	char error[512];
	size_t explicit_count = 0, propagated_count = 0;
	struct stat st;

	if (labels->store_path == NULL || stat(labels->store_path, &st) < 0)
		return;
	struct store *store =
	    store_open(labels->store_path, STORE_READ_ONLY, NULL, error, sizeof(error));
	if (store == NULL) {
		log_warning("labels: cannot load persisted labels: %s", error);
		return;
	}
	sqlite3 *db = store_db(store);
	/* The latest change per file; a declassification holds for its version only. */
	sqlite3_stmt *s = prepare(
	    db, "SELECT f.device, f.inode, c.level, c.forced, c.version_id IS "
	        "(SELECT id FROM versions WHERE file_id = f.id ORDER BY number DESC LIMIT 1), "
	        "c.reason FROM label_changes c JOIN files f ON f.id = c.file_id WHERE "
	        "f.host = ?1 AND f.backing_dir = ?2 AND c.id = (SELECT max(id) FROM "
	        "label_changes WHERE file_id = c.file_id)");
	if (s) {
		sqlite3_bind_text(s, 1, labels->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, labels->backing_dir, -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(s, 2);
			int level = name ? policy_level_index(policy, name) : -1;
			if (level < 0)
				continue;
			bool forced = sqlite3_column_int(s, 3) != 0;
			if (forced && !sqlite3_column_int(s, 4))
				continue; /* declassified a version since rewritten */
			pthread_rwlock_wrlock(&labels->table_lock);
			struct label_entry *entry =
			    table_get(labels, (dev_t)sqlite3_column_int64(s, 0),
			              (ino_t)sqlite3_column_int64(s, 1));
			entry->explicit_level = level;
			entry->forced = forced;
			set_string(&entry->reason, (const char *)sqlite3_column_text(s, 5));
			pthread_rwlock_unlock(&labels->table_lock);
			explicit_count++;
		}
		sqlite3_finalize(s);
	}
	/* The latest labeled version per file, with the input that carried it. */
	s = prepare(db, "SELECT f.device, f.inode, v.label, sv.number, sv.hash, sf.path, "
	                "sf.device, sf.inode FROM versions v JOIN files f ON f.id = v.file_id "
	                "LEFT JOIN versions sv ON sv.id = v.label_from_version_id LEFT JOIN files "
	                "sf ON sf.id = sv.file_id WHERE f.host = ?1 AND f.backing_dir = ?2 AND "
	                "v.id = (SELECT id FROM versions WHERE file_id = f.id AND label IS NOT "
	                "NULL ORDER BY number DESC LIMIT 1)");
	if (s) {
		sqlite3_bind_text(s, 1, labels->host, -1, SQLITE_STATIC);
		sqlite3_bind_text(s, 2, labels->backing_dir, -1, SQLITE_STATIC);
		while (sqlite3_step(s) == SQLITE_ROW) {
			const char *name = (const char *)sqlite3_column_text(s, 2);
			int level = name ? policy_level_index(policy, name) : -1;
			if (level < 0)
				continue;
			pthread_rwlock_wrlock(&labels->table_lock);
			struct label_entry *entry =
			    table_get(labels, (dev_t)sqlite3_column_int64(s, 0),
			              (ino_t)sqlite3_column_int64(s, 1));
			if (level > entry->propagated && !entry->forced) {
				entry->propagated = level;
				entry->from_version = sqlite3_column_int64(s, 3);
				const char *hash = (const char *)sqlite3_column_text(s, 4);
				snprintf(entry->from_hash, sizeof(entry->from_hash), "%s",
				         hash ? hash : "");
				set_string(&entry->from_path,
				           (const char *)sqlite3_column_text(s, 5));
				entry->from_device = (dev_t)sqlite3_column_int64(s, 6);
				entry->from_inode = (ino_t)sqlite3_column_int64(s, 7);
			}
			pthread_rwlock_unlock(&labels->table_lock);
			propagated_count++;
		}
		sqlite3_finalize(s);
	}
	store_close(store);
	if (explicit_count || propagated_count)
		log_debug("labels: %zu explicit and %zu propagated labels loaded from the store",
		          explicit_count, propagated_count);
}

/* ---- life cycle ----------------------------------------------------------------------- */

static struct policy *
compile_file_policy(const struct provfs_config *config, char *error, size_t error_size)
{
	char revision[33];

	if (policy_revision_of_file(config->source, revision) < 0) {
		snprintf(error, error_size, "cannot read '%s': %s", config->source,
		         strerror(errno));
		return NULL;
	}
	return policy_compile(config, revision, error, error_size);
}

struct labels *
labels_new(const struct labels_options *options, char *error, size_t error_size)
{
	struct labels *labels = calloc(1, sizeof(*labels));

	if (labels == NULL) {
		snprintf(error, error_size, "out of memory");
		return NULL;
	}
	struct policy *policy = compile_file_policy(options->config, error, error_size);
	if (policy == NULL) {
		free(labels);
		return NULL;
	}
	atomic_init(&labels->policy, policy);
	labels->config_path = xstrdup_or_null(options->config_path);
	labels->backing_dir = strdup(options->backing_dir);
	labels->mount_point = strdup(options->mount_point);
	labels->backing_fd = options->backing_fd;
	labels->store_path = xstrdup_or_null(options->store_path);
	labels->recorder = options->recorder;
	labels->next = options->recorder ? recorder_observer(options->recorder) : NULL;
	gethostname(labels->host, sizeof(labels->host) - 1);
	pthread_mutex_init(&labels->reload_lock, NULL);
	pthread_rwlock_init(&labels->table_lock, NULL);
	pthread_mutex_init(&labels->marks_lock, NULL);
	pthread_mutex_init(&labels->handles_lock, NULL);
	for (size_t i = 0; i < READER_LOCKS; i++)
		pthread_mutex_init(&labels->reader_locks[i], NULL);
	pthread_mutex_init(&labels->scripts_lock, NULL);
	pthread_condattr_t monotonic;
	pthread_condattr_init(&monotonic);
	pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
	pthread_cond_init(&labels->scripts_changed, &monotonic);
	pthread_condattr_destroy(&monotonic);
	sem_init(&labels->reload_requests, 0, 0);
	labels->slots = calloc(TABLE_SLOTS, sizeof(*labels->slots));
	labels->mark_slots = calloc(MARK_SLOTS, sizeof(*labels->mark_slots));
	labels->lineage = calloc(1, sizeof(*labels->lineage));
	labels->mover = calloc(1, sizeof(*labels->mover));
	labels->path_cache = calloc(PATH_CACHE_SLOTS, sizeof(*labels->path_cache));
	if (labels->path_cache == NULL)
		abort();
	for (size_t i = 0; i < PATH_CACHE_SLOTS; i++)
		pthread_spin_init(&labels->path_cache[i].lock, PTHREAD_PROCESS_PRIVATE);
	labels->directory_cache = calloc(DIRECTORY_CACHE_SLOTS, sizeof(*labels->directory_cache));
	if (labels->directory_cache == NULL)
		abort();
	for (size_t i = 0; i < DIRECTORY_CACHE_SLOTS; i++)
		pthread_spin_init(&labels->directory_cache[i].lock, PTHREAD_PROCESS_PRIVATE);
	if (labels->slots == NULL || labels->mark_slots == NULL || labels->lineage == NULL ||
	    labels->mover == NULL)
		abort();
	pthread_mutex_init(&labels->lineage->lock, NULL);
	pthread_cond_init(&labels->lineage->wake, NULL);
	pthread_mutex_init(&labels->mover->lock, NULL);
	pthread_cond_init(&labels->mover->wake, NULL);
	/* Test only: tests/bats/labels.bats makes a rename's event come after
	 * the walk it overlapped has ended.  Read once. */
	const char *test_walk_delay = getenv("PROVFS_TEST_MOVED_WALK_DELAY_MS");
	const char *test_rename_delay = getenv("PROVFS_TEST_RENAME_CHECK_DELAY_MS");
	if (test_walk_delay && atoi(test_walk_delay) > 0 && atoi(test_walk_delay) <= 10000)
		labels->mover->test_walk_delay_ms = atoi(test_walk_delay);
	if (test_rename_delay && atoi(test_rename_delay) > 0 && atoi(test_rename_delay) <= 10000)
		labels->mover->test_rename_delay_ms = atoi(test_rename_delay);

	size_t indexed = index_tree(labels, policy);
	load_persisted(labels, policy);
	log_debug("labels: policy %.12s, %d levels, %zu files indexed under labeled rules",
	          policy_revision(policy), policy_level_count(policy), indexed);

	labels->observer = (struct fs_observer){
	    .context = labels,
	    .check_open = on_check_open,
	    .opened = on_opened,
	    .data_read = on_data_read,
	    .data_writing = on_data_writing,
	    .data_write_ended = on_data_write_ended,
	    .data_written = on_data_written,
	    .flushed = on_flushed,
	    .released = on_released,
	    .namespace_changed = on_namespace_changed,
	    .setattr_begin = on_setattr_begin,
	    .setattr_end = on_setattr_end,
	    .virtual_xattr = on_virtual_xattr,
	    .check_xattr = on_check_xattr,
	    .bypass_identify = on_bypass_identify,
	    .bypass_forget = on_bypass_forget,
	    .bypass_written = on_bypass_written,
	    .bypass_identify_since = on_bypass_identify_since,
	    .bypass_identifies_late = on_bypass_identifies_late,
	};
	if (labels->next == NULL) {
		/* -o norecord: these only pass data events on to the recorder.
		 * Unasked, the layer neither counts bytes nor watches writers,
		 * and every handle's data passes through the kernel. */
		labels->observer.data_read = NULL;
		labels->observer.data_writing = NULL;
		labels->observer.data_write_ended = NULL;
		labels->observer.data_written = NULL;
		labels->observer.flushed = NULL;
		labels->observer.bypass_identify = NULL;
		labels->observer.bypass_forget = NULL;
		labels->observer.bypass_written = NULL;
		labels->observer.bypass_identify_since = NULL;
		labels->observer.bypass_identifies_late = NULL;
	}
	return labels;
}

const struct fs_observer *
labels_observer(struct labels *labels)
{
	return &labels->observer;
}

static bool
same_levels(const struct policy *a, const struct policy *b)
{
	if (policy_level_count(a) != policy_level_count(b))
		return false;
	for (int i = 0; i < policy_level_count(a); i++)
		if (strcmp(policy_level_name(a, i), policy_level_name(b, i)) != 0)
			return false;
	return true;
}

static void
record_reload(struct labels *labels, const char *revision, const char *failure)
{
	if (labels->recorder == NULL)
		return;
	struct recorder_policy_record *record = calloc(1, sizeof(*record));
	if (record == NULL)
		return;
	record->kind = RECORDER_CONFIG_RELOAD;
	record->failed = failure != NULL;
	record->reason = xstrdup_or_null(failure);
	record->revision = xstrdup_or_null(revision);
	record->time_ns = wall_clock_ns();
	recorder_record_policy(labels->recorder, record);
}

/* SIGHUP: the new provfs.conf, or the old policy and a reason. */
static void
reload(struct labels *labels)
{
	char error[600];
	struct policy *policy = NULL;
	struct provfs_config *config = config_load(labels->config_path, error, sizeof(error));

	if (config)
		policy = compile_file_policy(config, error, sizeof(error));
	struct policy *old = current_policy(labels);
	if (policy && !same_levels(policy, old)) {
		snprintf(error, sizeof(error),
		         "[classification] levels changed; levels change only with a remount");
		policy_free(policy);
		policy = NULL;
	}
	if (policy == NULL) {
		config_free(config);
		log_error("reload refused, the policy and [record] rules in force stay (%.12s): %s",
		          policy_revision(old), error);
		record_reload(labels, NULL, error);
		return;
	}
	/* The file is taken whole or not at all: its [record] rules with it. */
	if (labels->recorder)
		recorder_set_record_rules(labels->recorder, config);
	config_free(config);
	size_t indexed = index_tree(labels, policy);
	pthread_mutex_lock(&labels->reload_lock);
	struct policy **retired =
	    realloc(labels->retired, (labels->retired_count + 1) * sizeof(*retired));
	if (retired == NULL)
		abort();
	labels->retired = retired;
	retired[labels->retired_count++] = old;
	atomic_store_explicit(&labels->policy, policy, memory_order_release);
	pthread_mutex_unlock(&labels->reload_lock);
	/* A program grant new in this policy holds only for processes that
	 * exec from now on ("process not seen at exec"). */
	process_table_want_exec_facts(labels->processes, policy_has_program_grants(policy));
	log_info("reloaded '%s': policy %.12s, %zu files indexed under labeled rules",
	         labels->config_path ? labels->config_path : CONFIG_DEFAULT_PATH,
	         policy_revision(policy), indexed);
	record_reload(labels, policy_revision(policy), NULL);
}

static void *
reload_main(void *argument)
{
	struct labels *labels = argument;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-reload");
	for (;;) {
		while (sem_wait(&labels->reload_requests) < 0 && errno == EINTR)
			;
		if (atomic_load(&labels->stopping))
			break;
		reload(labels);
	}
	return NULL;
}

void
labels_request_reload(struct labels *labels)
{
	if (labels)
		sem_post(&labels->reload_requests);
}

int
labels_start(struct labels *labels)
{
	sigset_t all, old;

	labels->processes = labels->recorder ? recorder_processes(labels->recorder) : NULL;
	if (labels->processes == NULL) {
		/* -o norecord: a table of its own, reporting to no one. */
		struct process_table_options options = {.mount_point = labels->mount_point,
		                                        .backing_fd = labels->backing_fd};
		labels->processes = process_table_new(&options);
		if (labels->processes == NULL)
			return -1;
		labels->own_processes = true;
		process_table_start(labels->processes);
	}
	process_table_want_exec_facts(labels->processes,
	                              policy_has_program_grants(current_policy(labels)));
	/* The mount session names the provfs.conf in force from its start, so
	 * that provfs-query, asked without --config after the unmount, knows
	 * one was (a reload names the next). */
	record_reload(labels, policy_revision(current_policy(labels)), NULL);
	/* The threads take no signal: SIGHUP is the main thread's. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	if (pthread_create(&labels->reload_thread, NULL, reload_main, labels) == 0)
		labels->reload_running = true;
	labels->script_hashes = hash_pool_new(1, SCRIPT_HASH_QUEUE, labels->backing_fd);
	labels->crossing = calloc(1, sizeof(*labels->crossing));
	if (labels->crossing) {
		pthread_mutex_init(&labels->crossing->lock, NULL);
		pthread_cond_init(&labels->crossing->wake, NULL);
		pthread_condattr_t monotonic;
		pthread_condattr_init(&monotonic);
		pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC);
		pthread_cond_init(&labels->crossing->finished, &monotonic);
		pthread_condattr_destroy(&monotonic);
		labels->crossing->running = pthread_create(&labels->crossing->thread, NULL,
		                                           crossing_main, labels) == 0;
	}
	if (labels->store_path &&
	    pthread_create(&labels->lineage->thread, NULL, lineage_main, labels) == 0)
		labels->lineage->running = true;
	if (pthread_create(&labels->mover->thread, NULL, mover_main, labels) == 0)
		labels->mover->running = true;
	else
		log_warning("labels: no thread to walk renamed directories: the files below "
		            "one keep their labels until unmount only");
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return labels->reload_running ? 0 : -1;
}

/* The median and 99th percentile of a histogram, in microseconds; false when empty. */
static bool
percentiles(atomic_uint_fast64_t *histogram, uint64_t *total, double *median, double *p99)
{
	uint64_t seen = 0;

	*total = 0;
	*median = *p99 = -1;
	for (size_t i = 0; i <= HISTOGRAM_BUCKETS; i++)
		*total += atomic_load(&histogram[i]);
	for (size_t i = 0; *total && i <= HISTOGRAM_BUCKETS; i++) {
		seen += atomic_load(&histogram[i]);
		double upper = (double)((i + 1) * HISTOGRAM_BUCKET_NS) / 1000.0;
		if (*median < 0 && seen * 2 >= *total)
			*median = upper;
		if (*p99 < 0 && seen * 100 >= *total * 99)
			*p99 = upper;
	}
	return *total > 0;
}

static void
log_decision_times(struct labels *labels)
{
	uint64_t total, sampled, decided, opens, creates;
	double median, p99, cpu_median, cpu_p99, decided_median, decided_p99;
	double open_median, open_p99, create_median, create_p99;

	if (!percentiles(labels->histogram, &total, &median, &p99))
		return;
	percentiles(labels->cpu_histogram, &sampled, &cpu_median, &cpu_p99);
	percentiles(labels->decided_histogram, &decided, &decided_median, &decided_p99);
	percentiles(labels->open_cost_histogram[0], &opens, &open_median, &open_p99);
	percentiles(labels->open_cost_histogram[1], &creates, &create_median, &create_p99);
	log_info("policy: %llu decisions at open, median <= %.1f us (99th percentile <= %.1f us) "
	         "wall clock, median <= %.1f us (99th <= %.1f us) CPU over %llu sampled; "
	         "%llu of them reads above the default clearance (grants evaluated), "
	         "median <= %.1f us (99th <= %.1f us) wall clock; %llu denied",
	         (unsigned long long)total, median, p99, cpu_median, cpu_p99,
	         (unsigned long long)sampled, (unsigned long long)decided,
	         decided ? decided_median : 0.0, decided ? decided_p99 : 0.0,
	         (unsigned long long)atomic_load(&labels->denials));
	if (opens || creates)
		log_info("policy: its whole time per open (check, opened, release; the recorder's "
		         "excluded): median <= %.1f us (99th percentile <= %.1f us) over %llu opens, "
		         "median <= %.1f us (99th <= %.1f us) over %llu creates",
		         opens ? open_median : 0.0, opens ? open_p99 : 0.0, (unsigned long long)opens,
		         creates ? create_median : 0.0, creates ? create_p99 : 0.0,
		         (unsigned long long)creates);
}

void
labels_stop(struct labels *labels)
{
	if (labels == NULL)
		return;
	atomic_store(&labels->stopping, true);
	if (labels->reload_running) {
		sem_post(&labels->reload_requests);
		pthread_join(labels->reload_thread, NULL);
	}
	/*
	 * Every walk queued is finished, not dropped: its kept labels go to the
	 * recorder, which the daemon stops after this.  No rename comes now.
	 */
	struct directory_mover *mover = labels->mover;
	if (mover->running) {
		pthread_mutex_lock(&mover->lock);
		mover->stopping = true;
		pthread_cond_signal(&mover->wake);
		pthread_mutex_unlock(&mover->lock);
		pthread_join(mover->thread, NULL);
		mover->running = false;
	}
	pthread_mutex_destroy(&mover->lock);
	pthread_cond_destroy(&mover->wake);
	struct lineage_queue *queue = labels->lineage;
	if (queue->running) {
		pthread_mutex_lock(&queue->lock);
		queue->stopping = true;
		pthread_cond_signal(&queue->wake);
		pthread_mutex_unlock(&queue->lock);
		pthread_join(queue->thread, NULL);
	}
	if (queue->store)
		store_close(queue->store);
	log_decision_times(labels);
	/* What a check on this thread (-s: the requests' thread) still holds. */
	if (last_check.labels == labels)
		forget_last_check();
	/* Script jobs end first: their answers go into the scripts list. */
	if (labels->script_hashes) {
		hash_pool_stop(labels->script_hashes);
		hash_pool_free(labels->script_hashes);
	}
	struct crossing_opener *opener = labels->crossing;
	if (opener) {
		if (opener->running) {
			pthread_mutex_lock(&opener->lock);
			opener->stopping = true;
			pthread_cond_signal(&opener->wake);
			pthread_mutex_unlock(&opener->lock);
			pthread_join(opener->thread, NULL);
		}
		pthread_mutex_destroy(&opener->lock);
		pthread_cond_destroy(&opener->wake);
		pthread_cond_destroy(&opener->finished);
		free(opener);
	}
	if (labels->own_processes) {
		process_table_stop(labels->processes);
		process_table_free(labels->processes);
	}
	for (size_t i = 0; i < TABLE_SLOTS; i++) {
		while (labels->slots[i]) {
			struct label_entry *entry = labels->slots[i];
			labels->slots[i] = entry->next;
			free(entry->from_path);
			free(entry->reason);
			free(entry);
		}
	}
	while (labels->rule_texts) {
		struct rule_text *text = labels->rule_texts;
		labels->rule_texts = text->next;
		free(text);
	}
	for (size_t i = 0; i < MARK_SLOTS; i++) {
		while (labels->mark_slots[i]) {
			struct marks *marks = labels->mark_slots[i];
			labels->mark_slots[i] = marks->next;
			for (int level = 0; level < POLICY_MAX_LEVELS; level++)
				free(marks->levels[level].path);
			free(marks->run);
			free(marks);
		}
	}
	while (labels->scripts) {
		struct script_hash *next = labels->scripts->next;
		free(labels->scripts);
		labels->scripts = next;
	}
	/* Handles still open belong to a session that is gone: no release comes. */
	while (labels->handles) {
		struct handle *next = labels->handles->next;
		process_info_release(labels->handles->opener);
		free(labels->handles->path);
		free(labels->handles);
		labels->handles = next;
	}
	for (size_t i = 0; i < labels->retired_count; i++)
		policy_free(labels->retired[i]);
	free(labels->retired);
	policy_free(current_policy(labels));
	free(labels->slots);
	free(labels->mark_slots);
	free(labels->lineage);
	free(labels->mover);
	free(labels->path_cache);
	free(labels->directory_cache);
	pthread_cond_destroy(&labels->scripts_changed);
	sem_destroy(&labels->reload_requests);
	free(labels->config_path);
	free(labels->backing_dir);
	free(labels->mount_point);
	free(labels->store_path);
	free(labels);
}
