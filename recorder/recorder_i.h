/*
 * recorder_i.h - the recorder's private structures, shared by recorder.c
 * (request path, queue, threads) and writer.c (SQLite).  Not for use
 * outside recorder/.
 */
#ifndef PROVFS_RECORDER_I_H
#define PROVFS_RECORDER_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "hash_pool.h"
#include "process_table.h"
#include "recorder.h"
#include "store.h"

/* What identifies a version's content without reading it. */
struct stamp {
	off_t size;
	int64_t mtime_ns;
	int64_t ctime_ns;
	ino_t inode;
};

/*
 * Do size and times (a stamp taken some time) stand for the file as it was
 * before a change of its attributes, from before to after?  Either they are
 * before's, or a stat made while the change was under way took them: a
 * close's RELEASE stats the file while its writer's utimensat runs, and may
 * see one of the two times new and the other old.  The time the change set
 * names it.
 */
static inline bool
stamp_before_change(off_t size, int64_t mtime_ns, int64_t ctime_ns, const struct stamp *before,
		    const struct stamp *after)
{
	if (size != before->size)
		return false;
	if (mtime_ns == before->mtime_ns && ctime_ns == before->ctime_ns)
		return true;
	if (ctime_ns == after->ctime_ns && ctime_ns != before->ctime_ns)
		return mtime_ns == before->mtime_ns || mtime_ns == after->mtime_ns;
	return mtime_ns == after->mtime_ns && mtime_ns != before->mtime_ns &&
	       ctime_ns == before->ctime_ns;
}

/* A file_state's generation_epoch after a name of it went that it may not
 * survive: no namespace epoch is ever equal to it, so the next open reads
 * the generation again. */
#define GENERATION_IN_DOUBT UINT64_MAX

/*
 * Per-inode state.  Reference counted: the file table holds one, and so
 * does every access or version naming it.  Fields under `lock` are for the
 * request path; fields marked "writer" belong to the writer thread alone.
 */
struct file_state {
	atomic_int references;
	dev_t device;
	ino_t inode;
	uint64_t generation;
	struct file_state *next; /* file table chain; protected by the table lock */
	int64_t generation_ctime_ns; /* the file's ctime and the namespace epoch when */
	uint64_t generation_epoch;   /* generation was last read; under the table lock */
				     /* (GENERATION_IN_DOUBT: maybe freed since) */

	pthread_mutex_t lock;
	int writers;                    /* open handles that may write */
	uint64_t write_opens;           /* handles ever opened to write */
	bool dirty;                     /* written since the last version */
	bool truncated;                 /* truncated by setattr under open writers */
	bool stream_valid;              /* every write so far continued at stream_offset */
	uint64_t stream_offset;
	XXH3_state_t *stream;           /* running hash of the bytes written */
	bool stamp_known;               /* the current content is a recorded version */
	struct stamp known_stamp;
	struct access **pending_writers; /* wrote since the last version; referenced */
	size_t pending_count;
	/* The handles open to write (borrowed: each leaves at its release),
	 * to tell whether all of them were closed since they last wrote
	 * (on_opened: cut_version). */
	struct access **open_writers;
	size_t open_writer_count, open_writer_capacity;
	uint64_t changes;               /* content changes through the mount, ever */
	/* Content changes the daemon began for a handle it serves, ever
	 * (fs_observer.data_writing), and those of them not yet made and
	 * counted in changes (data_write_ended): so a handle open to write
	 * that writes nothing is known to change nothing.  Atomic: counted
	 * without the lock. */
	atomic_uint_fast64_t writes_begun;
	atomic_int writes_in_flight;
	int setattrs_in_flight;         /* changed, not yet reported (hash_outcome) */
	struct version *upcoming;       /* what the open writers will complete, once a
					 * reader waits for it; referenced */
	struct version *known_version;  /* the version made through the mount that
					 * known_stamp stands for, if any; referenced
					 * (a cycle: detach_known_version before freeing) */
	/* Processes that wrote through kernel passthrough since the last
	 * version, the latest last (fs_observer.bypass_written); each image
	 * referenced, NULL when it could not be identified (gone already, or
	 * writes unseen: pid 0). */
	struct bypass_writer {
		pid_t pid;
		struct process_info *image;
	} *bypass_writers;
	size_t bypass_writer_count;
	uint64_t bypass_reports;        /* passthrough writes reported, ever */
	/* What the file's stamp is by the changes the daemon made or saw
	 * (an open, a setattr, a rename) since the chain last broke (epoch):
	 * a passthrough writer's stamp that moved otherwise was written
	 * through a shared mapping, which nothing reports. */
	struct stamp explained_stamp;
	uint64_t explained_epoch;
	/* Versions cut, abandoned, or made by a truncate no handle writes
	 * through (under lock), and one past the latest of them queued
	 * (atomic, any thread): each is queued in the order it was cut
	 * (recorder.c: queue_in_cut_order). */
	uint64_t versions_cut;
	atomic_uint_fast64_t versions_queued;
	bool test_release_held_back;    /* test only (on_released) */
	char *open_path;                /* its path as an open last read it, with the */
	int64_t open_path_ctime_ns;     /* file's ctime and the mount's path epoch */
	uint64_t open_path_epoch;       /* then (recorder.c: node_path) */

	/* writer */
	int64_t store_id;
	int64_t latest_version_id;
	int64_t latest_number;
	struct stamp latest_stamp;
	char *recorded_path;
};

/*
 * Where the file's content stands by what the mount made or began: moves
 * with every change and every write begun (both only grow, so the sum
 * stays put only while both do).  Snapshots of it are compared by the hash
 * verdict (hash_outcome).  file->lock held.
 */
static inline uint64_t
change_mark(const struct file_state *file)
{
	return file->changes + atomic_load(&file->writes_begun);
}

/* A version produced through the mount, made when its last writer closes. */
struct version {
	atomic_int references;
	struct recorder *recorder;
	struct file_state *file;    /* referenced */
	struct stamp stamp;
	char hash[33];              /* set when hashed on the request path */
	struct process_info *producer; /* referenced */
	uint64_t changes;           /* change_mark(file) when it was completed */
	uint64_t cut_order;         /* file->versions_cut when it was completed or abandoned */
	int64_t completed_ns;       /* its writers' latest close(2) (0: unknown) */
	struct hash_source *hash_source; /* to hash in the pool once its row is committed */
	struct access **writers;    /* referenced */
	size_t writer_count;
	int64_t store_id;           /* writer */
	/* writer: readers that opened while it was being written (referenced),
	 * until it is recorded or abandoned (its writers wrote nothing, or its
	 * event was lost with a batch) */
	struct access **readers;
	size_t reader_count;
	bool abandoned;             /* writer: no row will come; readers resolve by stamp */
	bool lost;                  /* writer: its row was lost with a batch the store
				     * refused (a reader of it records it 'unrecorded') */
	/* writer: a setattr (a touch, a chmod) whose event came before the row's:
	 * the row takes the times after it */
	bool times_moved;
	int64_t moved_mtime_ns, moved_ctime_ns;
};

enum event_kind {
	EVENT_PROCESS,         /* image */
	EVENT_PROCESS_EXIT,    /* image, time, status */
	EVENT_EXECUTABLE_HASH, /* image, hash */
	EVENT_OPEN,            /* access */
	EVENT_CLOSE,           /* access */
	EVENT_VERSION,         /* version: completed when its last writer closed */
	EVENT_VERSION_HASH,    /* version, hash, hash_state */
	EVENT_READ_HASH,       /* access (its read version), hash, hash_state */
	EVENT_NAMESPACE,       /* change, image, paths, device/inode */
	EVENT_ABANDONED,       /* version: its writers closed without changing the file */
	EVENT_POLICY,          /* policy_record (label policy audit rows) */
	EVENT_RESUMED_HASH,    /* version_id, hash, hash_state: a version an earlier
				* daemon left pending (pending_hashes.c) */
};

struct event {
	enum event_kind kind;
	int64_t time_ns;
	struct process_info *process; /* referenced */
	struct access *access;        /* referenced */
	struct version *version;      /* referenced; namespace (setattr): the file's known
				       * version, whose row may not be written yet */
	bool status_known;
	int status;
	char hash[33];
	const char *hash_state; /* static string */
	int change;             /* enum fs_namespace_change */
	unsigned int flags;
	dev_t device;
	ino_t inode;
	char *path;     /* owned */
	char *new_path; /* owned */
	struct stamp stamp;     /* namespace: the node's attributes after the change */
	bool before_known;      /* namespace (setattr): before holds the attributes ahead of it */
	struct stamp before;
	bool truncated_closed;  /* namespace: truncate of a file no handle writes */
	/* namespace (truncate_closed): the file state it is queued in turn for
	 * (referenced) and its turn (recorder.c: queue_in_cut_order) */
	struct file_state *ordered_file;
	uint64_t cut_order;
	bool is_directory;      /* namespace: the node is a directory */
	bool is_regular;        /* namespace: the node is a regular file */
	/* namespace: the state of the regular file the change is about, as the
	 * table held it at the request (referenced), or NULL.  By the time the
	 * writer applies the event, a new file may have the inode's number. */
	struct file_state *file;
	uint64_t changes;       /* namespace (truncate): change_mark(file) after it */
	struct recorder_policy_record *policy_record; /* owned */
	bool embedded;          /* an access's OPEN or CLOSE, part of it (access_event) */
	int64_t version_id;     /* resumed hash: the versions row */
	struct event *next;
};

/* One open handle. */
struct access {
	atomic_int references;
	struct recorder *recorder;
	struct process_info *process; /* referenced; NULL until an exec completes */
	struct process_info *last_image; /* a later exec of the same process closed it */
	struct file_state *file;      /* referenced */
	char *path;
	/* The file had no name when opened (unlinked, reopened through
	 * /proc/PID/fd): path is the name it last had, not a current one. */
	bool nameless;
	int flags;
	bool is_exec;
	bool reads;   /* opened for reading existing content: an input */
	bool writes;  /* opened with write access */
	bool created; /* the open created the file */
	bool bypass;  /* kernel passthrough: its bytes and calls are unknown */
	bool writers_reported; /* bypass writer whose writers are reported (bypass_written) */
	bool writers_reported_late; /* after they wrote (fs_node_info) */
	uint64_t open_bypass_reports; /* file->bypass_reports at open */
	uint64_t explained_epoch;     /* file->explained_epoch at open */
	bool released; /* exec access closed before its image was known; under exec_lock */
	int64_t opened_ns;
	int64_t closed_ns;
	struct stamp open_stamp;
	uint64_t open_changes; /* change_mark(file) at open */
	/* Writers, under file->lock: file->changes just after the latest
	 * close(2) of the handle (its FLUSH; its writes were all made and
	 * reported by then), and the file's stamp then. */
	bool flushed;
	int64_t flushed_ns; /* wall clock then */
	uint64_t flushed_changes;
	uint64_t flushed_write_calls; /* write_calls then */
	struct stamp flushed_stamp;
	/* Its writes so far went into a version cut at another handle's open
	 * (cut_version): what it writes from then on is counted afresh. */
	bool cut;
	uint64_t write_calls_at_cut;
	bool recorded;  /* false: excluded or unidentified, kept only to see its writes */
	/* The version made through the mount that this handle reads, when the
	 * request path knows it: the one its writers will complete (opened while
	 * others wrote), or the known one (its row may not be written yet). */
	struct version *version_read;
	/* A handle only for reading whose version_read is the version there
	 * was at its open (nobody had changed the file since, though writers
	 * may have held it open): unless the file changed before it closed.
	 * Then version_read_later (set at release, before its CLOSE is
	 * queued; the writer takes it over) is the version the change makes. */
	bool read_known_version;
	struct version *version_read_later;
	struct hash_source *hash_source; /* to hash the version read when its stamp is unknown */
	atomic_int writer_thread;          /* thread of the last write request */
	struct process_info *writer_image; /* its process; under file->lock; referenced */
	atomic_uint_fast64_t bytes_read, bytes_written, read_calls, write_calls;
	int64_t store_id;        /* writer */
	int64_t read_version_id; /* writer */
	/* The batch that holds its CLOSE event, and the first that holds a
	 * VERSION it wrote: set as they are queued (under the queue lock),
	 * read by the writer, maybe while a later batch is being queued. */
	atomic_uint_fast64_t close_batch, version_batch;
	bool closed_in_row;      /* writer: its row was inserted closed (no CLOSE update) */
	bool row_pending;        /* writer: its closed row waits in the multi-row insert */
	/* Its OPEN and CLOSE events (one each at most), queued from here: two
	 * allocations fewer on the request path for every open, and two frees
	 * fewer on the writer's, each of memory another thread allocated.
	 * Each holds a reference to the access while queued. */
	struct event open_event, close_event;
};

/*
 * The [record] rules in force.  A reload of provfs.conf replaces them whole
 * (recorder_set_record_rules) while requests read them without a lock, so
 * the rules it replaced stay, chained through replaced, until the recorder
 * is freed: a few globs per reload.
 */
struct record_rules {
	struct string_list exclude;
	struct string_list redact;
	struct process_redaction redaction; /* redact's globs, for the process table */
	struct record_rules *replaced;
};

struct recorder {
	struct recorder_options options;
	_Atomic(struct record_rules *) rules;
	char *backing_dir;
	char *mount_point;
	char host[256];
	struct store *store;
	int64_t mount_session_id;
	struct fs_observer observer;
	struct process_table *processes;
	struct hash_pool *hashes;
	struct pending_hashes *pending_hashes; /* what earlier daemons left unhashed */

	/* file table; protected by files_lock */
	pthread_mutex_t files_lock;
	struct file_state **file_slots;
	size_t file_slot_count;
	size_t file_count;
	size_t file_table_limit; /* [record] remembered_files, or a test's smaller one */
	bool file_table_limit_fixed; /* the test's: reloads leave it */
	size_t evict_above;      /* file_count that starts the next eviction pass */
	uint64_t eviction_passes, files_evicted;

	/* event queue; protected by queue_lock */
	pthread_mutex_t queue_lock;
	pthread_cond_t queue_not_empty;
	pthread_cond_t queue_not_full;
	pthread_cond_t queue_drained;
	struct event *queue_head, *queue_tail;
	size_t queue_length;
	size_t queue_capacity;
	uint64_t queue_batch; /* the batch the queued events go in: close_batch, version_batch */
	bool stopping;
	bool flush_now;   /* shutting down: apply what is queued at once */
	bool writer_busy;
	pid_t writer_tid;            /* 0 until the writer runs in the background */
	bool writer_boosted;         /* made to run at normal priority (writer_main) */

	pthread_mutex_t exec_lock; /* access->process of exec accesses, access->released */

	/* A change waiting for its file's elder to be queued (queue_in_cut_order) */
	pthread_mutex_t version_order_lock;
	pthread_cond_t version_queued;
	atomic_int version_order_waiters;
	int test_version_queue_delay_ms; /* test only: PROVFS_TEST_VERSION_QUEUE_DELAY_MS */

	/* executable hash cache; protected by executables_lock */
	pthread_mutex_t executables_lock;
	struct executable_hash *executables;

	/* counters (atomics: read by the writer for recorder_stats) */
	atomic_uint_fast64_t events_queued;
	atomic_uint_fast64_t events_written;
	atomic_uint_fast64_t events_lost;
	atomic_uint_fast64_t batches;
	atomic_uint_fast64_t store_errors;
	atomic_uint_fast64_t queue_high_water;
	uint64_t hashes_completed; /* kept when the pool is gone */
	uint64_t hashes_refused;   /* likewise */
	char last_error[256]; /* writer */

	pthread_t writer;
	bool writer_running;
	int proc_fds; /* /proc/self/fd of the daemon (after it daemonized), or -1 */
	/* Renames through the mount, and removals of names whose file is not
	 * known (file_state_get: a generation read before may be another
	 * file's now).  The removal of a name a regular file may not survive
	 * puts that file's generation alone in doubt (GENERATION_IN_DOUBT)
	 * and counts in last_name_removals. */
	atomic_uint_fast64_t namespace_epoch;
	atomic_uint_fast64_t last_name_removals;
	/* The same but for the unlink of a file's last name (GNU tar makes one
	 * at the end of every extraction), which moves no other file's path. */
	atomic_uint_fast64_t path_epoch;
	/* Paths of the directories changes are made in (recorder.c:
	 * directory_path); the slots under directories_lock. */
	pthread_mutex_t directories_lock;
	struct directory_path *directories;
	atomic_uint_fast64_t directory_epoch; /* renames and removals of non-files */
};

/* Queue an event (blocks while the queue is full). */
void recorder_enqueue(struct recorder *recorder, struct event *event);
struct event *event_new(enum event_kind kind);
void event_free(struct event *event);

/* Hash-pool callback for a version: queues its EVENT_VERSION_HASH. */
void version_hash_done(void *argument, int result, const char *hex, const struct stat *before,
		       const struct stat *after);
/*
 * What a finished hash job means for content stamped expected: "hashed",
 * "changed" (written again, through the mount per the change mark, taken
 * as mark when the content was the expected one, or outside it per the
 * stamps), "unhashed" (refused by a full pool), "failed", or NULL when the
 * pool stopped first (the version stays pending).  file may be NULL (no
 * mark known).
 */
const char *hash_outcome(int result, const struct stamp *expected, const struct stat *before,
			 const struct stat *after, struct file_state *file, uint64_t mark);
struct file_state *recorder_find_file(struct recorder *recorder, dev_t device, ino_t inode);
void access_release(struct access *access);
void version_release(struct version *version);
struct file_state *file_state_acquire(struct file_state *file);
void file_state_release(struct file_state *file);

/* writer.c */
int writer_prepare(struct recorder *recorder, char *error, size_t error_size);
int writer_record_session(struct recorder *recorder, char *error, size_t error_size);
/* Apply one batch, in one transaction or, when it changes many rows, in
 * several, in order; -1 when the store failed: *unwritten is the first
 * event of the piece that rolled back (it and those after it are lost). */
int writer_apply_batch(struct recorder *recorder, struct event *batch, uint64_t batch_number,
		       struct event **unwritten);
void writer_close_session(struct recorder *recorder);
/*
 * Open the regular file at path in the backing tree for hashing, never
 * leaving the tree, never following a symlink, never blocking (a FIFO may
 * stand there now), and only when it is still the inode expected (inode 0:
 * any); *st is its fstat.  -1 otherwise.
 */
int recorder_open_beneath(const struct recorder *recorder, const char *path, ino_t inode,
			  struct stat *st);
/* Events from batch on were not written: versions of them will never have rows. */
void writer_batch_lost(struct event *batch);
/* version will never have a row: drop its waiting readers (writer, or after it). */
void writer_version_forgotten(struct version *version);
void writer_finish(struct recorder *recorder);

/* abandoned_runs.c */
/*
 * Close the open runs of host that no live daemon records and whose root
 * process is gone (runs.end_unknown, an ABORT in the outbox): the writer
 * thread, once, before its first batch.  0, or -1 after logging why (the
 * runs stay open; the next daemon looks again).
 */
int abandoned_runs_close(sqlite3 *db, const char *host);

/*
 * The mount sessions of host whose daemon still runs, other than this
 * daemon's, as a JSON array of ids (for json_each); malloc'd, NULL on a
 * store error or out of memory.
 */
char *live_mount_sessions(sqlite3 *db, const char *host);
/* Does a live daemon of host other than this one serve backing_dir?  1, 0, or -1. */
int backing_dir_served(sqlite3 *db, const char *host, const char *backing_dir);

/* moved_backing.c */
struct backing_identity {
	dev_t device;
	ino_t inode;
	uint64_t generation; /* 0 when the filesystem has none */
};
/* The backing directory's own device, inode and generation.  0, or -1. */
int backing_identity_of(int backing_fd, struct backing_identity *identity);
/*
 * Carry the files recorded under an earlier path of this very backing
 * directory (it was moved) over to its path now: the writer thread, once,
 * before its first batch.  0, or -1 after logging why.
 */
int moved_backing_follow(struct recorder *recorder);

/* pending_hashes.c */
struct pending_hashes;
struct pending_hashes *pending_hashes_new(void);
/*
 * Settle the versions earlier daemons left 'pending' in this backing
 * directory, and hash those whose file is unchanged in the background:
 * the writer thread, once, before its first batch.  1 when it settled
 * some in the store at once (an event waiting for their hashes may go),
 * 0, or -1 after logging why (they stay pending; the next daemon looks
 * again).
 */
int pending_hashes_resume(struct recorder *recorder);
/* No more of them go to the pool (the mount stops). */
void pending_hashes_stop(struct pending_hashes *lane);
/* After the pool is freed: those never submitted. */
void pending_hashes_free(struct pending_hashes *lane);

/* The writer's SQL, for tests that check every statement's query plan. */
size_t writer_statement_count(void);
const char *writer_statement_sql(size_t index);
int writer_apply_policy(struct event *event);

#endif
