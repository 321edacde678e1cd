/*
 * recorder.h - the provenance recorder: what every process read and wrote.
 *
 * The recorder is an observer of the filesystem layer (passthrough.h).  On
 * the request path it only builds small in-memory events and queues them;
 * one writer thread turns them into SQLite transactions, a pool of hashing
 * threads computes content hashes, and a process watcher follows execs and
 * exits.  See recorder/recorder.c for the design.
 */
#ifndef PROVFS_RECORDER_H
#define PROVFS_RECORDER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "passthrough.h"

struct recorder;

struct recorder_options {
	const struct provfs_config *config; /* [record] rules (copied), reader group */
	const char *store_path;
	const char *backing_dir; /* canonical */
	const char *mount_point; /* canonical */
	bool backing_exposed;    /* others can reach backing_dir directly */
	bool policy;             /* labels enforced (recorded in the mount session) */
	int backing_fd;          /* O_PATH of the backing root; borrowed */
};

/*
 * Open the store and record the mount session.  Nothing runs yet; call
 * before mounting so store errors stop the mount.  NULL with a one-line
 * message in error on failure.
 */
struct recorder *recorder_new(const struct recorder_options *options, char *error,
			      size_t error_size);

/* Start the threads (after daemonizing: fork keeps only the caller). */
int recorder_start(struct recorder *recorder);

/*
 * A reload of provfs.conf: its [record] rules (exclude, redact) apply from
 * now on to opens, changes and newly seen processes.  What was recorded
 * stays as it was.  Call from one thread at a time (the reload thread).
 */
void recorder_set_record_rules(struct recorder *recorder, const struct provfs_config *config);

/* The observer to give the filesystem layer; valid while recorder lives. */
const struct fs_observer *recorder_observer(struct recorder *recorder);

/*
 * Flush everything queued, finish pending hashes, close the mount session
 * and the store, and free the recorder.
 */
void recorder_stop(struct recorder *recorder);

/* ---- label policy records (policy/enforce.c) ----------------------------------
 *
 * The label policy writes its audit rows through the recorder's queue, so
 * they land in order with the accesses and versions they refer to, on the
 * writer thread, in the same transactions.
 */
enum recorder_policy_kind {
	RECORDER_DENIAL,           /* a refused open: one row in denials */
	RECORDER_LABEL_PROPAGATED, /* the file's latest version carries level, from source */
	RECORDER_LABEL_CHANGE,     /* an admin set/unset/declassified: label_changes */
	RECORDER_CONFIG_RELOAD,    /* SIGHUP: revision in force, or a failure (reason) */
};

struct process_info;

struct recorder_policy_record {
	enum recorder_policy_kind kind;
	struct process_info *process; /* referenced; the recorder releases it; may be NULL */
	dev_t device;
	ino_t inode;
	uint64_t generation;  /* for a file row the recorder never saw */
	char *path;           /* relative to the mount root */
	uid_t uid;
	char *level;          /* label (denial, propagated, change; NULL: unset) */
	char *label_source;   /* denial: "rule GLOB (line N)", "explicit", "propagated from P" */
	char *clearance;      /* denial */
	char *grants;         /* denial: the grant lines considered */
	char *operation;      /* denial: "read", "exec", "xattr-read", "write-down" */
	char *revision;       /* denial, reload: hash of the provfs.conf in force */
	dev_t from_device;    /* propagated: the input file */
	ino_t from_inode;
	bool forced;          /* change: a declassification */
	bool failed;          /* reload */
	char *reason;         /* change: the declassification's reason; reload: the error */
	int64_t time_ns;
};

/* Queue record (its strings and reference are taken over). */
void recorder_record_policy(struct recorder *recorder, struct recorder_policy_record *record);
void recorder_policy_record_free(struct recorder_policy_record *record);

/* The process table (after recorder_start), shared with the label policy. */
struct process_table *recorder_processes(struct recorder *recorder);

#endif
