/*
 * log.c - stderr before the daemon detaches, syslog after.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static const char *program_name = "provfs";
static bool to_syslog;
static bool debug_enabled;

void
log_set_program(const char *name)
{
	program_name = name;
}

void
log_use_syslog(void)
{
	openlog(program_name, LOG_PID, LOG_DAEMON);
	to_syslog = true;
}

void
log_set_debug(bool enabled)
{
	debug_enabled = enabled;
}

void
log_message(int priority, const char *fmt, ...)
{
	va_list ap;

	if (priority == LOG_DEBUG && !debug_enabled)
		return;
	va_start(ap, fmt);
	if (to_syslog) {
		vsyslog(priority, fmt, ap);
	} else {
		char line[4096];

		vsnprintf(line, sizeof(line), fmt, ap);
		/* One write, so lines from several threads never interleave. */
		fprintf(stderr, "%s: %s%s\n", program_name,
			priority == LOG_WARNING ? "warning: " : "", line);
	}
	va_end(ap);
}
