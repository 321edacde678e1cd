/*
 * openlineage_sender.h - the daemon's thread that delivers spooled
 * OpenLineage events (the store's openlineage_outbox) to [openlineage]
 * transport = http (libcurl) or file.
 *
 * DELIVERY CONTRACT
 * - Order: events leave in outbox order (id), one at a time, so every run's
 *   START precedes its terminal event; a failing event holds back the ones
 *   after it until it is delivered or dead-lettered.
 * - http: 200, 201, 202 and 204 are success.  A connection error, a
 *   timeout or a 5xx is retried, the bytes unchanged, after a capped
 *   exponential backoff with jitter.  Any other status dead-letters the
 *   event (dead_ns, response), logged once; it is never retried.
 * - At least once; exactly once whenever the endpoint refused or failed
 *   the earlier attempt.  A duplicate is possible only when the response
 *   to an accepted event is lost (the receiver sees identical bytes).
 * - file: each event is appended as one line and fsync()ed before it is
 *   marked delivered.
 * - The sender has its own SQLite connection and holds the store's write
 *   lock only for one short UPDATE, never across network or file I/O; it
 *   never touches a FUSE request.  What is not delivered stays in the
 *   store and is sent after a restart (or a kill -9).
 */
#ifndef PROVFS_OPENLINEAGE_SENDER_H
#define PROVFS_OPENLINEAGE_SENDER_H

#include <stddef.h>

struct provfs_config;
struct openlineage_sender;

/*
 * Start the thread for config's [openlineage] transport (http or file),
 * opening store_path with a connection of its own.  NULL with a one-line
 * message in error when it cannot start.  Call after daemonizing.
 */
struct openlineage_sender *openlineage_sender_start(const struct provfs_config *config,
                                                    const char *store_path, char *error,
                                                    size_t error_size);

/* Stop the thread (an attempt in flight is abandoned) and free everything. NULL is fine. */
void openlineage_sender_stop(struct openlineage_sender *sender);

#endif
