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

#include "config.h"
#include "passthrough.h"

struct recorder;

struct recorder_options {
	const struct provfs_config *config; /* exclude/redact globs, store path, group */
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

/* The observer to give the filesystem layer; valid while recorder lives. */
const struct fs_observer *recorder_observer(struct recorder *recorder);

/*
 * Flush everything queued, finish pending hashes, close the mount session
 * and the store, and free the recorder.
 */
void recorder_stop(struct recorder *recorder);

#endif
