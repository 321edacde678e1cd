/*
 * test_readdirplus.c - a READDIRPLUS reply that does not reach the kernel
 * gives back the lookups its entries took (issue 8, case 12).
 *
 * Each entry of a READDIRPLUS reply is a lookup the kernel counts when the
 * reply arrives, and forgets later.  When writing the reply fails (ENOENT:
 * the kernel no longer has the request), the kernel never counts them and
 * never forgets them: the daemon must give them back, or the nodes stay in
 * its table, each holding a descriptor, for the rest of the mount.
 *
 * Why not through a mount: on Linux the write of a reply fails only when
 * the request is no longer on the connection's processing list, which,
 * once the daemon has read it, happens only when the connection is aborted
 * (the daemon then exits) or after a FUSE_NOTIFY_RESEND the daemon itself
 * sends (provfs never does).  A signal to the reader does not: the kernel
 * sends FUSE_INTERRUPT and waits for the reply.  So this test drives the
 * filesystem's operations directly, with libfuse's request and reply
 * functions replaced by the ones below (the test's own definitions take
 * precedence over libfuse's when the static filesystem library is linked
 * in), and counts the daemon's open descriptors: every node holds one.
 * Both ways of listing are checked: from OPENDIR's stream, and without a
 * handle, as a kernel that lists without OPENDIR asks.
 */
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fuse_lowlevel.h>

#include "passthrough.h"

#define FILES 20

static struct fs *the_fs;
static struct fuse_ctx the_context;
static int reply_result;     /* what fuse_reply_buf() returns */
static size_t replied_bytes; /* the size of the last buffer replied */
static struct fuse_file_info opened;
static int request;          /* a request is only ever an address here */

/* ---- libfuse, as the filesystem sees it ------------------------------------ */

void *
fuse_req_userdata(fuse_req_t req)
{
	(void)req;
	return the_fs;
}

const struct fuse_ctx *
fuse_req_ctx(fuse_req_t req)
{
	(void)req;
	return &the_context;
}

int
fuse_reply_buf(fuse_req_t req, const char *buf, size_t size)
{
	(void)req;
	(void)buf;
	replied_bytes = size;
	return reply_result;
}

int
fuse_reply_open(fuse_req_t req, const struct fuse_file_info *fi)
{
	(void)req;
	opened = *fi;
	return 0;
}

int
fuse_reply_err(fuse_req_t req, int err)
{
	(void)req;
	if (err == 0)
		return 0;
	fprintf(stderr, "unexpected error reply: %s\n", strerror(err));
	abort();
}

/* ---- the test ------------------------------------------------------------------ */

static int
open_descriptors(void)
{
	DIR *directory = opendir("/proc/self/fd");
	int count = 0;

	assert(directory);
	while (readdir(directory))
		count++;
	closedir(directory);
	return count;
}

/*
 * One fs on backing: a READDIRPLUS whose reply fails keeps no node, one
 * that arrives keeps one per file.  With OPENDIR's stream (with_opendir),
 * or as a kernel that lists without OPENDIR asks (no handle: the daemon
 * opens the directory for the request).  0 or 1.
 */
static int
check_lookups(const char *backing, bool with_opendir)
{
	const char *how = with_opendir ? "with OPENDIR" : "without OPENDIR";
	struct fs_options options = {
		.backing_fd = open(backing, O_PATH | O_DIRECTORY | O_CLOEXEC), .timeout = 1.0};
	assert(options.backing_fd >= 0);
	the_fs = fs_new(&options);
	assert(the_fs);
	the_context.pid = getpid();
	const struct fuse_lowlevel_ops *ops = fs_operations();
	struct fuse_conn_info connection;
	memset(&connection, 0, sizeof(connection));
	ops->init(the_fs, &connection);

	struct fuse_file_info fi;
	memset(&fi, 0, sizeof(fi));
	if (with_opendir) {
		ops->opendir((fuse_req_t)&request, FUSE_ROOT_ID, &fi);
		fi = opened;
		assert(fi.fh != 0);
	}
	int before = open_descriptors();

	/* The reply fails: none of its lookups may stay. */
	reply_result = -ENOENT;
	replied_bytes = 0;
	ops->readdirplus((fuse_req_t)&request, FUSE_ROOT_ID, 1 << 16, 0, &fi);
	assert(replied_bytes > 0);
	int after_failure = open_descriptors();
	if (after_failure != before) {
		fprintf(stderr, "%s: a failed READDIRPLUS reply kept %d nodes\n", how,
			after_failure - before);
		return 1;
	}

	/* The reply arrives: the kernel now holds a lookup of every file, and
	 * every node its descriptor (the check above can see a leak). */
	reply_result = 0;
	ops->readdirplus((fuse_req_t)&request, FUSE_ROOT_ID, 1 << 16, 0, &fi);
	int after_success = open_descriptors();
	if (after_success != before + FILES) {
		fprintf(stderr, "%s: %d descriptors after a delivered reply of %d files, %d before\n",
			how, after_success, FILES, before);
		return 1;
	}

	if (with_opendir)
		ops->releasedir((fuse_req_t)&request, FUSE_ROOT_ID, &fi);
	fs_free(the_fs);
	return 0;
}

int
main(void)
{
	char backing[] = "/tmp/provfs-unit-readdirplus.XXXXXX";
	char path[128];

	assert(mkdtemp(backing));
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%02d", backing, i);
		int fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
		assert(fd >= 0);
		close(fd);
	}
	int failed = check_lookups(backing, true) || check_lookups(backing, false);
	for (int i = 0; i < FILES; i++) {
		snprintf(path, sizeof(path), "%s/f%02d", backing, i);
		unlink(path);
	}
	rmdir(backing);
	return failed;
}
