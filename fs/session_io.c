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
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "session_io_i.h"

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
_Static_assert(sizeof(struct wire_in_header) == 40, "fuse_in_header is 40 bytes");
_Static_assert(sizeof(struct wire_out_header) == 16, "fuse_out_header is 16 bytes");

enum {
	OPCODE_SETATTR = 4,
	OPCODE_OPEN = 14,
	OPCODE_WRITE = 16,
	OPCODE_INIT = 26,
	HANDLE_KILLPRIV_V2 = 1u << 28,   /* INIT flag */
	WRITE_KILL_SUIDGID = 1u << 2,    /* fuse_write_in.write_flags */
	SETATTR_KILL_SUIDGID = 1u << 11, /* FATTR_KILL_SUIDGID in fuse_setattr_in.valid */
	OPEN_KILL_SUIDGID = 1u << 0,     /* fuse_open_in.open_flags */
};

static uint64_t init_unique;   /* the INIT request's id, to find its reply */
static bool kernel_offers_v2;  /* set while handling INIT, before any other request */
static _Thread_local bool kill_requested;

static ssize_t
session_read(int fd, void *buffer, size_t size, void *userdata)
{
	ssize_t count = read(fd, buffer, size);
	const struct wire_in_header *header = buffer;

	kill_requested = false;
	if (count < (ssize_t)sizeof(*header))
		return count;
	const char *argument = (const char *)buffer + sizeof(*header);
	size_t argument_size = (size_t)count - sizeof(*header);
	switch (header->opcode) {
	case OPCODE_INIT:
		if (argument_size >= sizeof(struct wire_init)) {
			const struct wire_init *init = (const void *)argument;
			init_unique = header->unique;
			kernel_offers_v2 = (init->flags & HANDLE_KILLPRIV_V2) != 0;
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
	return count;
}

static ssize_t
session_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	if (kernel_offers_v2 && count >= 2 && iov[0].iov_len >= sizeof(struct wire_out_header) &&
	    iov[1].iov_len >= sizeof(struct wire_init)) {
		const struct wire_out_header *header = iov[0].iov_base;
		if (header->unique == init_unique && header->error == 0) {
			struct wire_init *init = iov[1].iov_base;
			init->flags |= HANDLE_KILLPRIV_V2;
			kernel_offers_v2 = false; /* once */
		}
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io session_io = {
	.read = session_read,
	.writev = session_writev,
};

int
fs_session_use_io(struct fuse_session *session)
{
	return fuse_session_custom_io(session, &session_io, fuse_session_fd(session));
}

bool
fs_session_kill_requested(void)
{
	return kill_requested;
}
