/*
 * log.h - one place where provfs says what went wrong.
 *
 * Before the daemon detaches, messages go to stderr as "provfs: message" so a
 * user at a terminal sees them; after log_use_syslog() they go to syslog with
 * the same text.  Library code never exits: it logs and returns -1 or -errno,
 * and only main() decides the exit status.
 */
#ifndef PROVFS_LOG_H
#define PROVFS_LOG_H

#include <stdbool.h>
#include <syslog.h>

/* Names the program in every message ("provfs", "provfs-query", ...). */
void log_set_program(const char *name);

/* From now on write to syslog instead of stderr. */
void log_use_syslog(void);

/* Enable LOG_DEBUG messages (the -d option). */
void log_set_debug(bool enabled);

void log_message(int priority, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#define log_error(...) log_message(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_message(LOG_WARNING, __VA_ARGS__)
#define log_info(...) log_message(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_message(LOG_DEBUG, __VA_ARGS__)

#endif
