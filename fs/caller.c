/*
 * caller.c - caller identity and per-thread credential switching.
 *
 * Two small caches keyed by thread id serve the request path:
 *   - thread id -> process id (the "Tgid:" line of /proc/TID/status)
 *   - thread id -> supplementary groups (fuse_req_getgroups reads the same)
 * Entries live one second.  Thread ids are handed out cyclically up to
 * pid_max, so a thread id seen alive within the last second and reused by
 * another process within that second would need pid_max forks in that time;
 * the recorder's process table (which watches exits) is the authority for
 * identity beyond that window.
 *
 * Groups and setgroups().  Reading /proc costs about 40 us, a tenth of a
 * small-file create through the mount, so creates use the cache.  Nothing
 * the daemon can see changes when a thread calls setgroups(), so the cache
 * is keyed on what does change when a process drops privileges
 * (setgroups() then setgid() and setuid()): the thread id with the uid and
 * gid of the request.  A process that changes only its groups (it has
 * CAP_SETGID) keeps its entry for up to a second.  Stale groups grant
 * nothing: the kernel has checked the create with the caller's true groups
 * before the request arrives, and stripped a setgid bit they do not allow.
 * They can only lack a group just joined, so that the backing filesystem
 * refuses (EACCES) what the kernel allowed: then the call is made once more
 * with the groups read afresh (caller_retry_with_fresh_groups()).  Every decision the daemon makes itself from
 * group membership (setgid bits kept or dropped, write access, ACLs) reads
 * the groups afresh: caller_in_group() and caller_become_exactly().
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "caller.h"
#include "log.h"

#define CACHE_SLOTS 1024 /* power of two */
#define CACHE_LIFETIME_NS 1000000000LL
#define MAX_GROUPS 256

struct thread_entry {
	pid_t thread_id;
	uid_t uid;       /* the request's, when the groups were read */
	gid_t gid;
	pid_t process_id;
	int group_count; /* -1: groups not cached */
	gid_t groups[MAX_GROUPS];
	long long expires_ns;
};

static struct thread_entry cache[CACHE_SLOTS]; /* protected by cache_lock */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static _Thread_local bool umask_unshared;

static pid_t
read_tgid(pid_t thread_id)
{
	char path[64], line[256];
	pid_t tgid = 0;
	FILE *file;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)thread_id);
	file = fopen(path, "re");
	if (file == NULL)
		return 0;
	while (fgets(line, sizeof(line), file))
		if (sscanf(line, "Tgid: %d", &tgid) == 1)
			break;
	fclose(file);
	return tgid;
}

pid_t
caller_process_of_thread(pid_t thread_id)
{
	struct thread_entry *entry = &cache[(unsigned)thread_id & (CACHE_SLOTS - 1)];
	int64_t now = monotonic_coarse_ns();
	pid_t process_id;

	if (thread_id <= 0)
		return 0;
	pthread_mutex_lock(&cache_lock);
	if (entry->thread_id == thread_id && entry->expires_ns > now && entry->process_id) {
		process_id = entry->process_id;
		pthread_mutex_unlock(&cache_lock);
		return process_id;
	}
	pthread_mutex_unlock(&cache_lock);

	process_id = read_tgid(thread_id);
	if (process_id == 0)
		return 0;
	pthread_mutex_lock(&cache_lock);
	if (entry->thread_id != thread_id || entry->expires_ns <= now) {
		entry->thread_id = thread_id;
		entry->group_count = -1;
		entry->expires_ns = now + CACHE_LIFETIME_NS;
	}
	entry->process_id = process_id;
	pthread_mutex_unlock(&cache_lock);
	return process_id;
}

void
caller_from_request(fuse_req_t req, struct caller *caller)
{
	const struct fuse_ctx *context = fuse_req_ctx(req);

	caller->thread_id = context->pid;
	caller->uid = context->uid;
	caller->gid = context->gid;
	caller->umask = context->umask;
	caller->process_id = caller_process_of_thread(context->pid);
}

/*
 * Supplementary groups of the caller into groups[capacity], cached per
 * thread id, uid and gid (fresh: read now, and cached).  Returns how many
 * the caller has: more than capacity when they did not all fit (then only
 * capacity were filled and nothing is cached).
 */
static int
caller_groups(fuse_req_t req, gid_t *groups, int capacity, bool fresh)
{
	const struct fuse_ctx *context = fuse_req_ctx(req);
	pid_t thread_id = context->pid;
	struct thread_entry *entry = &cache[(unsigned)thread_id & (CACHE_SLOTS - 1)];
	int64_t now = monotonic_coarse_ns();
	int count;

	pthread_mutex_lock(&cache_lock);
	if (!fresh && thread_id > 0 && entry->thread_id == thread_id && entry->expires_ns > now &&
	    entry->uid == context->uid && entry->gid == context->gid &&
	    entry->group_count >= 0 && entry->group_count <= capacity) {
		count = entry->group_count;
		memcpy(groups, entry->groups, (size_t)count * sizeof(gid_t));
		pthread_mutex_unlock(&cache_lock);
		return count;
	}
	pthread_mutex_unlock(&cache_lock);

	count = fuse_req_getgroups(req, capacity, groups);
	if (count < 0)
		return 0; /* caller gone or kernel request: primary group only */
	if (count > capacity || count > MAX_GROUPS || thread_id <= 0)
		return count;
	pthread_mutex_lock(&cache_lock);
	if (entry->thread_id != thread_id || entry->expires_ns <= now) {
		entry->thread_id = thread_id;
		entry->process_id = 0;
		entry->expires_ns = now + CACHE_LIFETIME_NS;
	}
	entry->uid = context->uid;
	entry->gid = context->gid;
	entry->group_count = count;
	memcpy(entry->groups, groups, (size_t)count * sizeof(gid_t));
	pthread_mutex_unlock(&cache_lock);
	return count;
}

/*
 * All supplementary groups of the caller: in buffer when they fit, else in
 * an allocated array the caller frees (a cut list would make the backing
 * filesystem refuse what the kernel allowed).  *count is their number.
 */
static gid_t *
caller_all_groups(fuse_req_t req, gid_t buffer[static MAX_GROUPS], int *count, bool fresh)
{
	int wanted = caller_groups(req, buffer, MAX_GROUPS, fresh);

	while (wanted > MAX_GROUPS) {
		gid_t *groups = malloc((size_t)wanted * sizeof(gid_t));
		if (groups == NULL)
			break; /* the first MAX_GROUPS, as before */
		int found = fuse_req_getgroups(req, wanted, groups);
		if (found >= 0 && found <= wanted) {
			*count = found;
			return groups;
		}
		free(groups);
		if (found < 0)
			break;
		wanted = found; /* grew meanwhile */
	}
	*count = wanted < 0 ? 0 : wanted > MAX_GROUPS ? MAX_GROUPS : wanted;
	return buffer;
}

bool
caller_in_group(fuse_req_t req, gid_t gid)
{
	gid_t buffer[MAX_GROUPS];
	int count;
	bool found = false;

	if (fuse_req_ctx(req)->gid == gid)
		return true;
	gid_t *groups = caller_all_groups(req, buffer, &count, true);
	for (int i = 0; i < count && !found; i++)
		found = groups[i] == gid;
	if (groups != buffer)
		free(groups);
	return found;
}

/* ---- the registrar's credentials (caller_become_registrar) ---------------------- */

enum { OVERFLOW_GID = 65534, SAVED_GROUPS_MAX = 256 };

enum thread_credentials { CREDENTIALS_UNKNOWN, CREDENTIALS_DAEMON, CREDENTIALS_REGISTRAR };

static _Thread_local enum thread_credentials thread_credentials;
static _Thread_local gid_t registrar_saved_groups[SAVED_GROUPS_MAX]; /* the daemon's, to give back */
static _Thread_local int registrar_saved_group_count;
static _Thread_local struct __user_cap_data_struct thread_capabilities[_LINUX_CAPABILITY_U32S_3];
static _Thread_local bool thread_capabilities_known;

/* This thread's effective capabilities: all it is permitted, CAP_FSETID only if fsetid. */
static int
set_effective_fsetid(bool fsetid)
{
	struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	if (!thread_capabilities_known) {
		/* The permitted set: capset() below never changes it. */
		if (syscall(SYS_capget, &header, thread_capabilities) < 0)
			return -errno;
		thread_capabilities_known = true;
	}
	memcpy(data, thread_capabilities, sizeof(data));
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		data[i].effective = data[i].permitted;
	if (!fsetid)
		data[CAP_TO_INDEX(CAP_FSETID)].effective &= ~CAP_TO_MASK(CAP_FSETID);
	/* The raw system call acts on this thread only. */
	return syscall(SYS_capset, &header, data) < 0 ? -errno : 0;
}

/*
 * Which credentials this thread has: a thread libfuse starts takes its
 * parent's, and a worker starts the next one right after it read a
 * request, so a thread may be born a registrar.  The daemon's fsgid is 0,
 * a registrar's the overflow group (setfsgid(-1) only reads it).
 */
static enum thread_credentials
credentials_of_thread(void)
{
	if (thread_credentials == CREDENTIALS_UNKNOWN) {
		thread_credentials = (gid_t)setfsgid((gid_t)-1) == OVERFLOW_GID
		                         ? CREDENTIALS_REGISTRAR
		                         : CREDENTIALS_DAEMON;
		registrar_saved_group_count = 0; /* born one: the daemon's groups are unknown */
	}
	return thread_credentials;
}

int
caller_become_registrar(void)
{
	int error;

	if (credentials_of_thread() == CREDENTIALS_REGISTRAR)
		return 0;
	/* The supplementary groups are the last caller's (become()): put back exactly. */
	int count = getgroups(SAVED_GROUPS_MAX, registrar_saved_groups);
	if (count < 0)
		return -errno;
	if ((error = set_effective_fsetid(false)) < 0)
		return error;
	if (count > 0 && syscall(SYS_setgroups, (size_t)0, NULL) < 0) {
		error = -errno;
		set_effective_fsetid(true);
		return error;
	}
	registrar_saved_group_count = count;
	setfsgid(OVERFLOW_GID);
	thread_credentials = CREDENTIALS_REGISTRAR;
	return 0;
}

void
caller_become_daemon(void)
{
	if (credentials_of_thread() != CREDENTIALS_REGISTRAR)
		return;
	setfsgid(0);
	/* Groups found empty were left alone (caller_become_registrar()): a
	 * setgroups() would only commit a copy of the same credentials. */
	if (registrar_saved_group_count > 0 &&
	    syscall(SYS_setgroups, (size_t)registrar_saved_group_count, registrar_saved_groups) < 0)
		log_error("cannot restore supplementary groups: %s", strerror(errno));
	if (set_effective_fsetid(true) < 0)
		log_error("cannot restore CAP_FSETID: %s", strerror(errno));
	thread_credentials = CREDENTIALS_DAEMON;
}

/* ---- acting as the caller ---------------------------------------------------------- */

/* What this thread last set, so a request for the same caller costs less. */
static _Thread_local int thread_fs_ids_root = -1; /* fsuid and fsgid 0 when not switched; -1 unknown */
static _Thread_local bool thread_fs_ids_switched;  /* by become(), until caller_restore() */
static _Thread_local gid_t thread_groups[MAX_GROUPS];
static _Thread_local int thread_group_count = -1;
static _Thread_local mode_t thread_umask = (mode_t)-1;

/* caller_become(), with the groups read afresh when fresh. */
static int
become(fuse_req_t req, bool fresh)
{
	const struct fuse_ctx *context = fuse_req_ctx(req);
	gid_t buffer[MAX_GROUPS];
	int count;

	caller_become_daemon(); /* the caller's identity is made from the daemon's */
	if (!umask_unshared) {
		/* Give this thread its own umask, so umask() below is per request. */
		if (unshare(CLONE_FS) < 0)
			return -errno;
		umask_unshared = true;
	}
	gid_t *groups = caller_all_groups(req, buffer, &count, fresh);
	if (groups != buffer || count != thread_group_count ||
	    memcmp(groups, thread_groups, (size_t)count * sizeof(gid_t)) != 0) {
		/* The raw system call: glibc's setgroups() changes every thread. */
		long result = syscall(SYS_setgroups, (size_t)count, groups);
		int error = errno;
		if (result == 0 && groups == buffer) {
			memcpy(thread_groups, groups, (size_t)count * sizeof(gid_t));
			thread_group_count = count;
		} else {
			thread_group_count = -1;
		}
		if (groups != buffer)
			free(groups);
		if (result < 0)
			return -error;
	}
	if (thread_fs_ids_root < 0)
		thread_fs_ids_root = (uid_t)setfsuid((uid_t)-1) == 0 && (gid_t)setfsgid((gid_t)-1) == 0;
	/*
	 * A caller with uid and gid 0 is what the thread is already (the
	 * daemon's root, which caller_restore() gives back): three system
	 * calls to set it and two to restore it would change nothing.
	 */
	if (context->uid != 0 || context->gid != 0 || !thread_fs_ids_root) {
		thread_fs_ids_switched = true;
		setfsgid(context->gid);
		setfsuid(context->uid);
		if ((uid_t)setfsuid((uid_t)-1) != context->uid) {
			caller_restore();
			return -EPERM;
		}
	}
	if (thread_umask != context->umask) {
		umask(context->umask);
		thread_umask = context->umask;
	}
	return 0;
}

int
caller_become(fuse_req_t req)
{
	return become(req, false);
}

bool
caller_retry_with_fresh_groups(fuse_req_t req, int error)
{
	gid_t before[MAX_GROUPS];
	int count = thread_group_count;

	if ((error != EACCES && error != EPERM) || count < 0)
		return false; /* not a refusal, or groups this thread did not cache */
	memcpy(before, thread_groups, (size_t)count * sizeof(gid_t));
	if (become(req, true) != 0)
		return false;
	return thread_group_count != count ||
	       memcmp(before, thread_groups, (size_t)count * sizeof(gid_t)) != 0;
}

/* The effective capabilities this thread gave up in caller_become_exactly(). */
static _Thread_local bool capabilities_dropped;

/* Set this thread's effective capabilities to none, or back to all it is permitted. */
static int
set_effective_capabilities(bool all)
{
	struct __user_cap_header_struct header = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3];

	/* The raw system calls act on this thread only (libcap's do too). */
	if (syscall(SYS_capget, &header, data) < 0)
		return -errno;
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		data[i].effective = all ? data[i].permitted : 0;
	return syscall(SYS_capset, &header, data) < 0 ? -errno : 0;
}

int
caller_become_exactly(fuse_req_t req)
{
	int error = become(req, true);

	if (error || fuse_req_ctx(req)->uid == 0)
		return error;
	error = set_effective_capabilities(false);
	if (error) {
		caller_restore();
		return error;
	}
	capabilities_dropped = true;
	return 0;
}

/*
 * Supplementary groups and umask stay as the last caller's: they matter
 * only while acting as a caller, and root's own work needs neither.
 */
void
caller_restore(void)
{
	if (capabilities_dropped && set_effective_capabilities(true) == 0)
		capabilities_dropped = false;
	if (!thread_fs_ids_switched)
		return; /* still the daemon's own */
	setfsuid(0);
	setfsgid(0);
	thread_fs_ids_switched = false;
}

static _Thread_local int64_t request_received_ns;

void
caller_request_received(void)
{
	request_received_ns = monotonic_ns();
}

int64_t
caller_request_received_ns(void)
{
	return request_received_ns;
}
