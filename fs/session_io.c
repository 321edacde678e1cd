/*
 * session_io.c - the transport between libfuse and /dev/fuse, with one
 * capability libfuse 3.14 cannot negotiate: FUSE_HANDLE_KILLPRIV_V2.
 *
 * WHY
 *
 * Before every write(2) the kernel asks whether the file carries privileges
 * to drop (suid, sgid, a security.capability xattr).  For a filesystem that
 * implements getxattr, that is one GETXATTR round trip per write system
 * call, unless the superblock is SB_NOSEC; FUSE sets SB_NOSEC only when
 * the daemon takes over killing privileges (FUSE_HANDLE_KILLPRIV_V2).  A
 * sqlite3 import makes twelve thousand such round trips, which cost more
 * than everything else it does through the mount.
 *
 * So provfs takes the job over: this file sets the flag in the INIT reply
 * when the kernel offers it, and notes, per request, whether the kernel
 * asked for privileges to be dropped (WRITE, SETATTR and OPEN carry a
 * KILL_SUIDGID flag that libfuse 3.14 does not pass on).  The request
 * handlers then drop them as the kernel would have done (drop_privileges()
 * in passthrough.c): clear suid, clear sgid when the group may execute or
 * the caller is not in the file's group, and remove security.capability.
 * The kernel sets the flag only for callers without CAP_FSETID, exactly
 * when the native filesystem drops them.
 *
 * libfuse reads each request and processes it on the same worker thread,
 * so a thread-local flag carries the note from read() to the handler.
 *
 * KERNEL PASSTHROUGH
 *
 * Linux 6.9+ can serve an open file's reads, writes and mmap from a backing
 * file itself, without a request to the daemon (FUSE_PASSTHROUGH).  libfuse
 * 3.14 knows nothing of it, so this file speaks that part of the protocol
 * too: it offers FUSE_PASSTHROUGH in the INIT reply (with the stacking depth
 * the kernel requires: the backing filesystem's depth must stay below it,
 * so 1 admits any non-stacked backing filesystem), registers backing files
 * with FUSE_DEV_IOC_BACKING_OPEN/CLOSE on the /dev/fuse descriptor, and
 * writes FOPEN_PASSTHROUGH and the backing id into the OPEN or CREATE reply
 * the handler is sending on this thread (libfuse writes a reply on the
 * thread that makes it).  The kernel refuses passthrough together with the
 * writeback cache; provfs then keeps the writeback cache the user asked
 * for and says so once.
 *
 * The kernel opens its own file on the backing inode for every passthrough
 * open, with the opener's flags and the credentials the daemon had when it
 * registered the backing file; writes through it run the backing
 * filesystem's own privilege dropping with those credentials.  So they are
 * registered as a writer who may keep nothing: without CAP_FSETID, with
 * the overflow group and no supplementary groups (caller.h's registrar;
 * a thread keeps them for the requests after that only look, so that a
 * run of read-only opens changes credentials once, not six times each).  A file that gains suid
 * or sgid while it is open loses them again on the next write through such
 * a handle, as it would for an unprivileged writer outside the file's group
 * on the native filesystem (a writer in the group would keep a sgid without
 * group execute: the one case where passthrough drops more).  (Files that carry
 * privileges when they are opened are not passed through at all; see
 * fs/backing_files.c.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include "caller.h"
#include "log.h"
#include "session_io_i.h"
#include "session_ring_i.h"

/* The parts of the kernel's protocol (linux/fuse.h, a stable ABI) used here. */
struct wire_in_header {
	uint32_t length;
	uint32_t opcode;
	uint64_t unique;
	uint64_t node;
	uint32_t uid, gid, pid;
	uint16_t total_extension_length;
	uint16_t padding;
};
struct wire_out_header {
	uint32_t length;
	int32_t error;
	uint64_t unique;
};
struct wire_init {
	uint32_t major, minor, max_readahead, flags;
};
struct wire_write_in {
	uint64_t handle, offset;
	uint32_t size, write_flags;
};
struct wire_open_in {
	uint32_t flags, open_flags;
};
struct wire_init_in {
	uint32_t major, minor, max_readahead, flags, flags2;
};
/* fuse_init_out up to max_stack_depth (protocol 7.40); libfuse 3.14 sends
 * 64 bytes, the tail of which it leaves zero. */
struct wire_init_out {
	uint32_t major, minor, max_readahead, flags;
	uint16_t max_background, congestion_threshold;
	uint32_t max_write, time_gran;
	uint16_t max_pages, map_alignment;
	uint32_t flags2, max_stack_depth;
};
struct wire_open_out {
	uint64_t handle;
	uint32_t open_flags;
	int32_t backing_id;
};
struct wire_backing_map {
	int32_t fd;
	uint32_t flags;
	uint64_t padding;
};
_Static_assert(sizeof(struct wire_init_out) == 40, "fuse_init_out through max_stack_depth");
_Static_assert(sizeof(struct wire_open_out) == 16, "fuse_open_out is 16 bytes");

#define DEV_IOC_BACKING_OPEN _IOW(229, 1, struct wire_backing_map)
#define DEV_IOC_BACKING_CLOSE _IOW(229, 2, uint32_t)
_Static_assert(sizeof(struct wire_in_header) == 40, "fuse_in_header is 40 bytes");
_Static_assert(sizeof(struct wire_out_header) == 16, "fuse_out_header is 16 bytes");

enum {
	OPCODE_LOOKUP = 1,
	OPCODE_FORGET = 2,
	OPCODE_GETATTR = 3,
	OPCODE_SETATTR = 4,
	OPCODE_READLINK = 5,
	OPCODE_OPEN = 14,
	OPCODE_READ = 15,
	OPCODE_WRITE = 16,
	OPCODE_STATFS = 17,
	OPCODE_RELEASE = 18,
	OPCODE_GETXATTR = 22,
	OPCODE_LISTXATTR = 23,
	OPCODE_INIT = 26,
	OPCODE_OPENDIR = 27,
	OPCODE_READDIR = 28,
	OPCODE_RELEASEDIR = 29,
	OPCODE_CREATE = 35,
	OPCODE_INTERRUPT = 36,
	OPCODE_BATCH_FORGET = 42,
	OPCODE_READDIRPLUS = 44,
	INIT_WRITEBACK_CACHE = 1u << 16, /* INIT flag */
	INIT_EXT = 1u << 30,             /* INIT flag: flags2 is valid */
	INIT2_PASSTHROUGH = 1u << 5,     /* FUSE_PASSTHROUGH (bit 37) in flags2 */
	INIT2_OVER_IO_URING = 1u << 9,   /* FUSE_OVER_IO_URING (bit 41) in flags2 */
	INIT_MAX_PAGES = 1u << 22,       /* INIT flag: max_pages is valid */
	DEFAULT_MAX_PAGES = 32,          /* the kernel's without INIT_MAX_PAGES */
	OPEN_PASSTHROUGH = 1u << 7,      /* FOPEN_PASSTHROUGH */
	PASSTHROUGH_STACK_DEPTH = 1,
	HANDLE_KILLPRIV_V2 = 1u << 28,   /* INIT flag */
	WRITE_KILL_SUIDGID = 1u << 2,    /* fuse_write_in.write_flags */
	SETATTR_KILL_SUIDGID = 1u << 11, /* FATTR_KILL_SUIDGID in fuse_setattr_in.valid */
	OPEN_KILL_SUIDGID = 1u << 0,     /* fuse_open_in.open_flags */
};

static uint64_t init_unique;   /* the INIT request's id, to find its reply */
static bool kernel_offers_v2;  /* set while handling INIT, before any other request */
static _Thread_local bool kill_requested;

static int device_fd = -1;            /* /dev/fuse, for the backing ioctls */
static bool passthrough_wanted;       /* set before mounting */
static bool kernel_offers_passthrough; /* set while handling INIT */
static atomic_bool passthrough_on;    /* the INIT reply enabled it */
static struct fuse_session *session_of_io;
static bool uring_wanted;             /* set before mounting */
static bool kernel_offers_uring;      /* set while handling INIT */
static _Thread_local uint64_t request_unique;  /* the request this thread handles */
static _Thread_local uint32_t request_opcode;
static _Thread_local int32_t reply_backing_id; /* for its OPEN/CREATE reply; 0 none */
static _Thread_local bool registrar_may_serve;   /* this request (caller_become_registrar) */

/*
 * May the request in buffer be served with the registrar's credentials
 * (caller.h: the daemon's, without CAP_FSETID, its fsgid the overflow
 * group, no supplementary groups)?  Those differ from the daemon's own
 * only where a file is made (its group), or changed where the kernel may
 * drop privileges (suid, sgid; chmod, chown, write, truncate): so the
 * requests that only look, and opens that only read.  Every other request
 * gets the daemon's own back before it is served, and caller_become()
 * does too.  A thread that registered a backing file for a read-only
 * open serves the next one without changing its credentials twice.
 */
static bool
served_as_registrar(uint32_t opcode, const char *argument, size_t argument_size)
{
	switch (opcode) {
	case OPCODE_LOOKUP:
	case OPCODE_FORGET:
	case OPCODE_GETATTR:
	case OPCODE_READLINK:
	case OPCODE_READ:
	case OPCODE_STATFS:
	case OPCODE_RELEASE:
	case OPCODE_GETXATTR:
	case OPCODE_LISTXATTR:
	case OPCODE_OPENDIR:
	case OPCODE_READDIR:
	case OPCODE_RELEASEDIR:
	case OPCODE_INTERRUPT:
	case OPCODE_BATCH_FORGET:
	case OPCODE_READDIRPLUS:
		return true;
	case OPCODE_OPEN: {
		if (argument_size < sizeof(struct wire_open_in))
			return false;
		uint32_t flags = ((const struct wire_open_in *)(const void *)argument)->flags;
		return (flags & O_ACCMODE) == O_RDONLY && !(flags & O_TRUNC);
	}
	default:
		return false;
	}
}

void
session_io_request_received(const void *buffer, size_t count)
{
	const struct wire_in_header *header = buffer;

	kill_requested = false;
	reply_backing_id = 0;
	registrar_may_serve = false;
	if (count < sizeof(*header)) {
		caller_become_daemon();
		return;
	}
	caller_request_received();
	request_unique = header->unique;
	request_opcode = header->opcode;
	const char *argument = (const char *)buffer + sizeof(*header);
	size_t argument_size = (size_t)count - sizeof(*header);
	registrar_may_serve = served_as_registrar(header->opcode, argument, argument_size);
	if (!registrar_may_serve)
		caller_become_daemon();
	switch (header->opcode) {
	case OPCODE_INIT:
		if (argument_size >= sizeof(struct wire_init)) {
			const struct wire_init *init = (const void *)argument;
			init_unique = header->unique;
			kernel_offers_v2 = (init->flags & HANDLE_KILLPRIV_V2) != 0;
			kernel_offers_passthrough = false;
			kernel_offers_uring = false;
			if (argument_size >= sizeof(struct wire_init_in)) {
				const struct wire_init_in *ext = (const void *)argument;
				kernel_offers_passthrough = (ext->flags & INIT_EXT) &&
							    (ext->flags2 & INIT2_PASSTHROUGH);
				kernel_offers_uring = (ext->flags & INIT_EXT) &&
						      (ext->flags2 & INIT2_OVER_IO_URING);
			}
		}
		break;
	case OPCODE_WRITE:
		if (argument_size >= sizeof(struct wire_write_in))
			kill_requested = ((const struct wire_write_in *)(const void *)argument)
						 ->write_flags & WRITE_KILL_SUIDGID;
		break;
	case OPCODE_SETATTR:
		if (argument_size >= sizeof(uint32_t)) {
			uint32_t valid;
			memcpy(&valid, argument, sizeof(valid));
			kill_requested = valid & SETATTR_KILL_SUIDGID;
		}
		break;
	case OPCODE_OPEN:
		if (argument_size >= sizeof(struct wire_open_in))
			kill_requested = ((const struct wire_open_in *)(const void *)argument)
						 ->open_flags & OPEN_KILL_SUIDGID;
		break;
	}
}

static ssize_t
session_read(int fd, void *buffer, size_t size, void *userdata)
{
	ssize_t count = read(fd, buffer, size);

	session_io_request_received(buffer, count > 0 ? (size_t)count : 0);
	return count;
}

/* Called with the successful INIT reply: turn passthrough on if we can. */
static void
negotiate_passthrough(struct wire_init_out *init, size_t size)
{
	if (!passthrough_wanted)
		return;
	if (!kernel_offers_passthrough || size < sizeof(*init)) {
		log_info("kernel FUSE passthrough unavailable (Linux 6.9+ with "
			 "CONFIG_FUSE_PASSTHROUGH): file data goes through the daemon");
		return;
	}
	if (init->flags & INIT_WRITEBACK_CACHE) {
		log_info("kernel FUSE passthrough is off: the kernel refuses it with "
			 "writeback_cache");
		return;
	}
	init->flags |= INIT_EXT;
	init->flags2 |= INIT2_PASSTHROUGH;
	init->max_stack_depth = PASSTHROUGH_STACK_DEPTH;
	atomic_store(&passthrough_on, true);
}

/*
 * Called with the successful INIT reply: accept FUSE over io_uring if the
 * kernel offers it (the fuse module's enable_uring) and every ring could
 * be made.  True when accepted: the rings start once the reply is written.
 */
static bool
negotiate_uring(struct wire_init_out *init, size_t size)
{
	if (!uring_wanted || size < sizeof(*init))
		return false;
	if (!kernel_offers_uring) {
		log_info("FUSE over io_uring unavailable (Linux 6.14+ with the fuse module's "
			 "enable_uring on): requests go through /dev/fuse");
		return false;
	}
	size_t max_pages = (init->flags & INIT_MAX_PAGES) ? init->max_pages : DEFAULT_MAX_PAGES;
	int error = session_ring_prepare(device_fd, init->max_write, max_pages);
	if (error < 0) {
		log_info("FUSE over io_uring is off: cannot set up its rings: %s",
			 strerror(-error));
		return false;
	}
	init->flags |= INIT_EXT;
	init->flags2 |= INIT2_OVER_IO_URING;
	return true;
}

/* The OPEN or CREATE reply this thread makes: its fuse_open_out ends it. */
static void
mark_passthrough_reply(struct iovec *iov, int count)
{
	struct iovec *last = &iov[count - 1];

	if (last->iov_len < sizeof(struct wire_open_out))
		return;
	struct wire_open_out *open_out =
		(void *)((char *)last->iov_base + last->iov_len - sizeof(struct wire_open_out));
	open_out->open_flags |= OPEN_PASSTHROUGH;
	open_out->backing_id = reply_backing_id;
}

static ssize_t
session_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	ssize_t written;

	if (count >= 2 && iov[0].iov_len >= sizeof(struct wire_out_header)) {
		const struct wire_out_header *header = iov[0].iov_base;
		if (header->unique == init_unique && header->error == 0 &&
		    iov[1].iov_len >= sizeof(struct wire_init) && init_unique != 0) {
			struct wire_init *init = iov[1].iov_base;
			if (kernel_offers_v2)
				init->flags |= HANDLE_KILLPRIV_V2;
			kernel_offers_v2 = false; /* once */
			negotiate_passthrough(iov[1].iov_base, iov[1].iov_len);
			bool uring = negotiate_uring(iov[1].iov_base, iov[1].iov_len);
			init_unique = 0;
			written = writev(fd, iov, count);
			if (uring && written > 0)
				session_ring_start(session_of_io);
			else if (uring)
				session_ring_discard();
			return written;
		} else if (reply_backing_id > 0 && header->unique == request_unique &&
			   header->error == 0 &&
			   (request_opcode == OPCODE_OPEN || request_opcode == OPCODE_CREATE)) {
			mark_passthrough_reply(iov, count);
			reply_backing_id = 0;
		}
	}
	if (session_ring_take_reply(iov, count, &written))
		return written;
	return writev(fd, iov, count);
}

static const struct fuse_custom_io session_io = {
	.read = session_read,
	.writev = session_writev,
};

int
fs_session_use_io(struct fuse_session *session, bool passthrough, bool uring)
{
	device_fd = fuse_session_fd(session);
	session_of_io = session;
	passthrough_wanted = passthrough;
	uring_wanted = uring;
	return fuse_session_custom_io(session, &session_io, device_fd);
}

bool
fs_session_kill_requested(void)
{
	return kill_requested;
}

bool
fs_session_passthrough(void)
{
	return atomic_load_explicit(&passthrough_on, memory_order_relaxed);
}

int
fs_session_backing_open(int fd)
{
	struct wire_backing_map map = {.fd = fd};
	int id, error;

	/* The kernel keeps the credentials of this call for the I/O it does
	 * on the handles (see KERNEL PASSTHROUGH above). */
	if ((error = caller_become_registrar()) < 0)
		return error;
	id = ioctl(device_fd, DEV_IOC_BACKING_OPEN, &map);
	error = id < 0 ? errno : 0;
	if (!registrar_may_serve)
		caller_become_daemon();
	return id < 0 ? -error : id;
}

void
fs_session_backing_close(int backing_id)
{
	uint32_t id = (uint32_t)backing_id;

	/* A connection that is gone (an unmount with files still open: the
	 * daemon discards their handles after the device is closed) took its
	 * backing files with it: nothing is left to release. */
	if (device_fd < 0)
		return;
	if (ioctl(device_fd, DEV_IOC_BACKING_CLOSE, &id) < 0 && errno != ENOTCONN &&
	    errno != ENODEV)
		log_error("cannot release backing file %d: %s", backing_id, strerror(errno));
}

void
fs_session_detach_io(void)
{
	device_fd = -1;
}

void
fs_session_pass_through(int backing_id)
{
	reply_backing_id = backing_id;
}
