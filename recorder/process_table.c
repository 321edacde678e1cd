/*
 * process_table.c - process identity from /proc, kept current by the
 * kernel's process connector.
 *
 * DESIGN
 *
 * The table maps a pid to its current image (struct process_info).  A
 * lookup that misses reads /proc/PID once: stat (parent, session, start
 * ticks), cmdline, exe, cwd, cgroup and the few environment variables that
 * name a run.  Parents are looked up the same way, so every image links to
 * the chain above it and a pipeline is one tree.
 *
 * The watcher thread listens on the netlink process connector:
 *   - EXEC of a known pid replaces its image with a new one (exec_index + 1,
 *     previous = the old image, /proc read again for the new argv);
 *   - EXIT of a known thread-group leader reports the exit status and drops
 *     the entry, so the table holds only live processes.
 * An open with the exec flag means an execve is in progress for that pid:
 * the next lookup makes the new image itself (the process connector may be
 * a few microseconds behind), and the EXEC event that follows is then
 * recognised and not counted twice.
 *
 * Without the connector the table still works: a lookup checks the start
 * time in /proc/PID/stat (cheap, one read) to notice pid reuse, and the
 * sweep in the watcher thread notices processes that are gone, recording
 * the time seen gone and an unknown status.
 *
 * Runs: an image belongs to its parent's run when both are in the same
 * session and carry the same PROVFS_JOB; otherwise it roots a new run.  So
 * by default the run is the session (a cron job, a login shell), and
 * PROVFS_JOB names and delimits a job inside it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <linux/openat2.h>

#include "log.h"
#include "process_table.h"

#define TABLE_SLOTS 4096 /* power of two; chains grow beyond */
#define ENVIRON_LIMIT (1 << 20)
#define FUSE_SUPER_MAGIC 0x65735546

struct table_entry {
	pid_t pid;
	struct process_info *image; /* referenced */
	bool exec_in_progress;      /* an exec-open was seen; next lookup re-reads */
	bool expect_exec_event;     /* image made by a lookup; skip the next EXEC */
	void **exec_inputs;         /* cookies of opens made during the execve */
	size_t exec_input_count;
	struct table_entry *next;
};

struct process_table {
	pthread_mutex_t lock;                     /* protects slots and entries */
	struct table_entry *slots[TABLE_SLOTS];
	struct process_table_options options;
	char *mount_point;
	int64_t boot_ns;
	long ticks_per_second;
	int netlink_fd;      /* -1 when the connector is unavailable */
	pthread_mutex_t connector_lock; /* one reader of netlink_fd at a time */
	int stop_pipe[2];
	pthread_t watcher;
	bool watcher_running;
	char host[256];
};

int64_t
wall_clock_ns(void)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return (int64_t)now.tv_sec * 1000000000LL + now.tv_nsec;
}

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
	free(run);
}

void
process_info_release(struct process_info *image)
{
	while (image && atomic_fetch_sub(&image->references, 1) == 1) {
		struct process_info *parent = image->parent;
		process_info_release(image->previous);
		run_release(image->run);
		free(image->executable);
		free(image->argv);
		free(image->cwd);
		free(image->cgroup);
		free(image->job);
		free(image);
		image = parent; /* iterate up the chain instead of recursing */
	}
}

/* Read a whole small /proc file; returns a NUL-terminated buffer or NULL. */
static char *
read_proc_file(pid_t pid, const char *name, size_t limit, size_t *length)
{
	char path[64];
	size_t size = 0, capacity = 4096;
	char *buffer = malloc(capacity + 1);
	int fd;

	if (buffer == NULL)
		return NULL;
	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		free(buffer);
		return NULL;
	}
	for (;;) {
		if (size == capacity) {
			if (capacity >= limit)
				break;
			capacity *= 2;
			char *grown = realloc(buffer, capacity + 1);
			if (grown == NULL)
				break;
			buffer = grown;
		}
		ssize_t count = read(fd, buffer + size, capacity - size);
		if (count <= 0)
			break;
		size += (size_t)count;
	}
	close(fd);
	buffer[size] = '\0';
	if (length)
		*length = size;
	return buffer;
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
};

static int
read_stat(pid_t pid, struct stat_fields *fields)
{
	char *text = read_proc_file(pid, "stat", 4096, NULL);
	int result = -1;

	if (text == NULL)
		return -1;
	/* The command name may hold anything, ')' included: parse after the last. */
	char *after = strrchr(text, ')');
	if (after) {
		char state;
		int parent, group, session;
		unsigned long long start;
		if (sscanf(after + 1,
			   " %c %d %d %d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d "
			   "%*d %*d %llu",
			   &state, &parent, &group, &session, &start) == 5) {
			fields->parent_pid = parent;
			fields->session_id = session;
			fields->start_ticks = start;
			result = 0;
		}
	}
	free(text);
	return result;
}

static int64_t
start_ns_of(const struct process_table *table, unsigned long long ticks)
{
	return table->boot_ns +
	       (int64_t)(ticks * (1000000000ULL / (unsigned long long)table->ticks_per_second));
}

static bool
word_is_redacted(const struct process_table *table, const char *word)
{
	for (size_t i = 0; i < table->options.redact_count; i++)
		if (fnmatch(table->options.redact[i], word, 0) == 0)
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

	if (out == NULL)
		return NULL;
	for (size_t offset = 0; offset < raw_length;) {
		const char *word = raw + offset;
		size_t word_length = strnlen(word, raw_length - offset);
		bool redact = redact_next || word_is_redacted(table, word);
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
		char *parent_id = environment_value(environment, environment_length,
						    "OPENLINEAGE_PARENT_ID");
		run->parent_namespace = environment_value(environment, environment_length,
							  "OPENLINEAGE_PARENT_JOB_NAMESPACE");
		run->parent_job_name = environment_value(environment, environment_length,
							 "OPENLINEAGE_PARENT_JOB_NAME");
		run->parent_run_id = environment_value(environment, environment_length,
						       "OPENLINEAGE_PARENT_RUN_ID");
		/* OPENLINEAGE_PARENT_ID is namespace/job/runId; the run id is last. */
		if (parent_id && !run->parent_run_id) {
			char *first = strchr(parent_id, '/');
			char *last = strrchr(parent_id, '/');
			if (first && last > first) {
				run->parent_namespace = strndup(parent_id, (size_t)(first - parent_id));
				run->parent_job_name = strndup(first + 1, (size_t)(last - first - 1));
				run->parent_run_id = strdup(last + 1);
			}
		}
		free(parent_id);
	}
	make_run_uuid(table, run);
	return run;
}

static bool
same_job(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a && b && strcmp(a, b) == 0);
}

/*
 * Open the executable of pid for hashing without going through the mount:
 * one inside the mount is opened from the backing tree, beneath its root.
 */
static int
open_executable(const struct process_table *table, pid_t pid, const char *executable)
{
	char path[64];
	size_t length = strlen(table->mount_point);
	struct statfs filesystem;
	struct stat st;
	int fd;

	if (executable && strncmp(executable, table->mount_point, length) == 0 &&
	    (executable[length] == '/' || strcmp(table->mount_point, "/") == 0)) {
		struct open_how how = {.flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
				       .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS};
		const char *relative = executable + length;
		while (*relative == '/')
			relative++;
		fd = (int)syscall(SYS_openat2, table->options.backing_fd, relative, &how,
				  sizeof(how));
	} else {
		/*
		 * O_PATH first: the executable may be on a FUSE filesystem (this
		 * very mount, seen from another mount namespace), whose open would
		 * be a request to ourselves.  Those are not hashed.
		 */
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
		int path_fd = open(path, O_PATH | O_CLOEXEC);
		if (path_fd < 0)
			return -1;
		if (fstatfs(path_fd, &filesystem) < 0 || filesystem.f_type == FUSE_SUPER_MAGIC) {
			close(path_fd);
			return -1;
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", path_fd);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		close(path_fd);
	}
	/* Never block on, or hash, anything but a regular file. */
	if (fd >= 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static void drain_connector(struct process_table *table);
static void sweep(struct process_table *table);
/*
 * The inode of a pidfd: pidfs gives every process one that is never reused
 * while the system runs, finer than the start time's clock ticks.
 */
static uint64_t
kernel_id_of(pid_t pid)
{
	struct stat st;
	uint64_t id = 0;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);

	if (fd < 0)
		return 0;
	if (fstat(fd, &st) == 0)
		id = (uint64_t)st.st_ino;
	close(fd);
	return id;
}

static struct process_info *lookup_locked_miss(struct process_table *table, pid_t pid,
					       struct process_info *previous, int depth);

/*
 * Read /proc for pid and build its image.  previous is the image before an
 * execve (or NULL).  depth bounds the walk up the parent chain.
 */
static struct process_info *
read_image(struct process_table *table, pid_t pid, struct process_info *previous, int depth)
{
	struct stat_fields fields;
	struct process_info *image;
	char *raw_argv, *environment;
	size_t raw_length = 0, environment_length = 0;
	struct stat st;
	char path[64];

	if (read_stat(pid, &fields) < 0)
		return NULL;
	image = calloc(1, sizeof(*image));
	if (image == NULL)
		return NULL;
	atomic_init(&image->references, 1);
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
	image->executable = read_proc_link(pid, "exe");
	image->cwd = read_proc_link(pid, "cwd");
	raw_argv = read_proc_file(pid, "cmdline", 1 << 20, &raw_length);
	if (raw_argv) {
		image->argv = redact_argv(table, raw_argv, raw_length, &image->argv_length);
		free(raw_argv);
	}
	char *cgroup = read_proc_file(pid, "cgroup", 4096, NULL);
	if (cgroup) {
		char *line_end = strchr(cgroup, '\n');
		char *path_start = strstr(cgroup, "::");
		if (line_end)
			*line_end = '\0';
		image->cgroup = strdup(path_start ? path_start + 2 : cgroup);
		free(cgroup);
	}
	environment = read_proc_file(pid, "environ", ENVIRON_LIMIT, &environment_length);
	if (environment)
		image->job = environment_value(environment, environment_length, "PROVFS_JOB");

	if (previous) {
		image->exec_index = previous->exec_index + 1;
		image->previous = process_info_acquire(previous);
		image->parent = process_info_acquire(previous->parent);
	} else if (fields.parent_pid > 0 && depth < 64) {
		image->parent = lookup_locked_miss(table, fields.parent_pid, NULL, depth + 1);
	}
	struct process_info *parent = image->parent;
	if (previous && same_job(previous->job, image->job))
		image->run = previous->run, atomic_fetch_add(&previous->run->references, 1);
	else if (parent && parent->run && parent->session_id == image->session_id &&
		 same_job(parent->job, image->job))
		image->run = parent->run, atomic_fetch_add(&parent->run->references, 1);
	else
		image->run = new_run(table, image, environment, environment_length);
	free(environment);

	int fd = open_executable(table, pid, image->executable);
	if (fd >= 0 && table->options.hooks.hash_executable)
		table->options.hooks.hash_executable(table->options.hooks.context, image, fd);
	else if (fd >= 0)
		close(fd);
	if (table->options.hooks.image_seen)
		table->options.hooks.image_seen(table->options.hooks.context, image);
	return image;
}

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

/* Hand the opens made during an execve to the image they belong to. */
static void
deliver_exec_inputs(struct process_table *table, struct table_entry *entry,
		    struct process_info *image)
{
	for (size_t i = 0; i < entry->exec_input_count; i++)
		if (table->options.hooks.exec_input)
			table->options.hooks.exec_input(table->options.hooks.context, image,
							entry->exec_inputs[i]);
	free(entry->exec_inputs);
	entry->exec_inputs = NULL;
	entry->exec_input_count = 0;
}

static void
remove_entry(struct process_table *table, struct table_entry *entry)
{
	struct table_entry **link = slot_of(table, entry->pid);

	while (*link != entry)
		link = &(*link)->next;
	*link = entry->next;
	deliver_exec_inputs(table, entry, entry->image);
	process_info_release(entry->image);
	free(entry);
}

/*
 * Is pid still running the image recorded as image (same executable and
 * argv)?  After an exec-open, that means the execve failed.
 */
static bool
image_unchanged(const struct process_table *table, pid_t pid, const struct process_info *image)
{
	char *executable = read_proc_link(pid, "exe");
	size_t raw_length = 0, length = 0;
	char *raw = read_proc_file(pid, "cmdline", 1 << 20, &raw_length);
	char *argv = raw ? redact_argv(table, raw, raw_length, &length) : NULL;
	bool same = executable && image->executable && strcmp(executable, image->executable) == 0 &&
		    argv && image->argv && length == image->argv_length &&
		    memcmp(argv, image->argv, length) == 0;

	free(executable);
	free(raw);
	free(argv);
	return same;
}

/*
 * Without exit events: when entry's process is gone (or its pid now names
 * another process), record it as seen gone, status unknown, and drop it.
 * Caller holds table->lock.  True when dropped.
 */
static bool
drop_if_gone(struct process_table *table, struct table_entry *entry)
{
	struct stat_fields fields;

	if (read_stat(entry->pid, &fields) == 0 &&
	    start_ns_of(table, fields.start_ticks) == entry->image->start_ns)
		return false;
	if (table->options.hooks.image_exited)
		table->options.hooks.image_exited(table->options.hooks.context, entry->image,
						  wall_clock_ns(), false, 0);
	remove_entry(table, entry);
	return true;
}

/*
 * Caller holds table->lock.  Returns a new reference to pid's image,
 * creating it (and its ancestors) when missing or stale.
 */
static struct process_info *
lookup_locked_miss(struct process_table *table, pid_t pid, struct process_info *previous,
		   int depth)
{
	struct table_entry *entry = find_entry(table, pid);

	if (entry && !entry->exec_in_progress && previous == NULL) {
		if (table->netlink_fd < 0) {
			/* No exit events: make sure the pid was not reused. */
			if (drop_if_gone(table, entry))
				entry = NULL;
		}
		if (entry)
			return process_info_acquire(entry->image);
	}
	if (entry && entry->exec_in_progress) {
		if (image_unchanged(table, pid, entry->image)) {
			/* The execve failed (ENOEXEC, say): same program, same image. */
			entry->exec_in_progress = false;
			deliver_exec_inputs(table, entry, entry->image);
			return process_info_acquire(entry->image);
		}
		previous = entry->image;
	}
	struct process_info *image = read_image(table, pid, previous, depth);
	if (image == NULL)
		return NULL;
	if (entry == NULL) {
		entry = calloc(1, sizeof(*entry));
		if (entry == NULL)
			return image;
		entry->pid = pid;
		entry->next = *slot_of(table, pid);
		*slot_of(table, pid) = entry;
	} else {
		process_info_release(entry->image);
	}
	entry->expect_exec_event = entry->exec_in_progress;
	entry->exec_in_progress = false;
	entry->image = process_info_acquire(image);
	if (previous)
		deliver_exec_inputs(table, entry, image);
	return image;
}

struct process_info *
process_table_lookup(struct process_table *table, pid_t pid)
{
	struct process_info *image;

	if (pid <= 0)
		return NULL;
	drain_connector(table);
	pthread_mutex_lock(&table->lock);
	image = lookup_locked_miss(table, pid, NULL, 0);
	pthread_mutex_unlock(&table->lock);
	return image;
}

void
process_table_note_exec(struct process_table *table, pid_t pid, void *cookie)
{
	pthread_mutex_lock(&table->lock);
	/* The image before the execve is recorded too: it made the call. */
	process_info_release(lookup_locked_miss(table, pid, NULL, 0));
	struct table_entry *entry = find_entry(table, pid);
	void **inputs = entry ? realloc(entry->exec_inputs,
					(entry->exec_input_count + 1) * sizeof(void *))
			      : NULL;
	if (inputs) {
		entry->exec_in_progress = true;
		entry->exec_inputs = inputs;
		inputs[entry->exec_input_count++] = cookie;
	} else if (table->options.hooks.exec_input) {
		table->options.hooks.exec_input(table->options.hooks.context, NULL, cookie);
	}
	pthread_mutex_unlock(&table->lock);
}

static void
handle_exec(struct process_table *table, pid_t pid)
{
	pthread_mutex_lock(&table->lock);
	struct table_entry *entry = find_entry(table, pid);
	if (entry)
		log_debug("exec of known process %d", (int)pid);
	if (entry && entry->expect_exec_event) {
		entry->expect_exec_event = false;
	} else if (entry) {
		struct process_info *old = process_info_acquire(entry->image);
		struct process_info *image = lookup_locked_miss(table, pid, old, 0);
		process_info_release(image);
		process_info_release(old);
	}
	pthread_mutex_unlock(&table->lock);
}

static void
handle_exit(struct process_table *table, pid_t pid, int status, int64_t time_ns)
{
	pthread_mutex_lock(&table->lock);
	struct table_entry *entry = find_entry(table, pid);
	if (entry) {
		log_debug("exit of known process %d", (int)pid);
		if (table->options.hooks.image_exited)
			table->options.hooks.image_exited(table->options.hooks.context, entry->image,
							  time_ns, true, status);
		remove_entry(table, entry);
	}
	pthread_mutex_unlock(&table->lock);
}

/* Without the connector: drop entries whose process is gone. */
static void
sweep(struct process_table *table)
{
	pthread_mutex_lock(&table->lock);
	for (size_t i = 0; i < TABLE_SLOTS; i++) {
		struct table_entry *entry = table->slots[i];
		while (entry) {
			struct table_entry *next = entry->next;
			drop_if_gone(table, entry);
			entry = next;
		}
	}
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
	int size = 4 << 20;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof(size));
	return fd;
fail:
	close(fd);
	return -1;
}

/* Handle one datagram of the connector; false when none was waiting. */
static bool
read_connector(struct process_table *table)
{
	char buffer[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	ssize_t length = recv(table->netlink_fd, buffer, sizeof(buffer), MSG_DONTWAIT);

	if (length < 0) {
		if (errno == ENOBUFS) {
			/* Exits and execs were lost: check every entry against /proc. */
			log_warning("process connector overflowed: checking every process");
			sweep(table);
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
			handle_exec(table, event.event_data.exec.process_tgid);
		} else if (event.what == PROC_EVENT_EXIT &&
			   event.event_data.exit.process_pid == event.event_data.exit.process_tgid) {
			handle_exit(table, event.event_data.exit.process_tgid,
				    (int)event.event_data.exit.exit_code, wall_clock_ns());
		}
	}
	return true;
}

/*
 * Apply every connector event already queued by the kernel.  The kernel
 * queues an exec's event before the new image runs a single instruction,
 * so draining here before a lookup means a process is never taken for the
 * image it replaced, however far behind the watcher thread is.
 */
static void
drain_connector(struct process_table *table)
{
	if (table->netlink_fd < 0)
		return;
	/* Locked before looking: the watcher may hold an event it has read
	 * but not yet applied.  (Netlink has no FIONREAD: a non-blocking
	 * receive that finds nothing is the cheapest look.) */
	pthread_mutex_lock(&table->connector_lock);
	while (read_connector(table))
		;
	pthread_mutex_unlock(&table->connector_lock);
}

static void *
watcher_main(void *argument)
{
	struct process_table *table = argument;
	sigset_t all;

	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	pthread_setname_np(pthread_self(), "provfs-procs");
	for (;;) {
		struct pollfd fds[2] = {{.fd = table->stop_pipe[0], .events = POLLIN},
					{.fd = table->netlink_fd, .events = POLLIN}};
		int ready = poll(fds, table->netlink_fd >= 0 ? 2 : 1, 1000);
		if (ready < 0 && errno != EINTR)
			break;
		if (fds[0].revents)
			break;
		if (table->netlink_fd >= 0 && (fds[1].revents & POLLIN))
			drain_connector(table);
		else if (table->netlink_fd < 0 && ready == 0)
			sweep(table);
	}
	return NULL;
}

static int64_t
read_boot_ns(void)
{
	FILE *file = fopen("/proc/stat", "re");
	char line[256];
	long long boot = 0;

	if (file == NULL)
		return 0;
	while (fgets(line, sizeof(line), file))
		if (sscanf(line, "btime %lld", &boot) == 1)
			break;
	fclose(file);
	return boot * 1000000000LL;
}

struct process_table *
process_table_new(const struct process_table_options *options)
{
	struct process_table *table = calloc(1, sizeof(*table));

	if (table == NULL)
		return NULL;
	pthread_mutex_init(&table->lock, NULL);
	pthread_mutex_init(&table->connector_lock, NULL);
	table->options = *options;
	table->mount_point = strdup(options->mount_point);
	table->boot_ns = read_boot_ns();
	table->ticks_per_second = sysconf(_SC_CLK_TCK);
	if (table->ticks_per_second <= 0)
		table->ticks_per_second = 100;
	table->netlink_fd = -1;
	table->stop_pipe[0] = table->stop_pipe[1] = -1;
	gethostname(table->host, sizeof(table->host) - 1);
	return table;
}

int
process_table_start(struct process_table *table)
{
	table->netlink_fd = connector_open();
	if (table->netlink_fd < 0)
		log_warning("process connector unavailable (%s): exit statuses will be "
			    "recorded as unknown",
			    strerror(errno));
	if (pipe2(table->stop_pipe, O_CLOEXEC) < 0)
		return -1;
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
}

void
process_table_free(struct process_table *table)
{
	if (table == NULL)
		return;
	process_table_stop(table);
	for (size_t i = 0; i < TABLE_SLOTS; i++)
		while (table->slots[i])
			remove_entry(table, table->slots[i]);
	if (table->netlink_fd >= 0)
		close(table->netlink_fd);
	if (table->stop_pipe[0] >= 0) {
		close(table->stop_pipe[0]);
		close(table->stop_pipe[1]);
	}
	free(table->mount_point);
	pthread_mutex_destroy(&table->lock);
	free(table);
}
