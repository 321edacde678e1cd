/*
 * backing_files_i.h - private to fs/: how each open handle's data is served
 * (fs/backing_files.c).
 */
#ifndef PROVFS_BACKING_FILES_I_H
#define PROVFS_BACKING_FILES_I_H

#include <fuse_lowlevel.h>
#include <stdbool.h>

enum fs_io_mode {
	FS_IO_CACHED,      /* through the daemon, with the kernel's page cache */
	FS_IO_PASSTHROUGH, /* the kernel reads, writes and maps the backing file itself */
	FS_IO_PASSTHROUGH_DIRECT, /* reads and writes through the daemon, uncached
				   * (FOPEN_DIRECT_IO); mmap of the backing file */
};

struct backing_files;

/* NULL on error (errno set). */
struct backing_files *backing_files_new(void);
void backing_files_free(struct backing_files *files);

/*
 * Choose the mode of a new handle on node ino whose backing descriptor is
 * fd.  eligible: the handle may be passed through (kernel passthrough is
 * on, the file is regular and carries no privileges to drop).  For the
 * passthrough modes, *backing_id is the id to put in the open reply.  0, or
 * -ENOMEM with nothing counted.  Every handle counted must be given back
 * with backing_files_close() and the same mode.
 */
/* Register backing files reopened by handle through view_fd (borrowed: a
 * noatime view of the mount mount_id), so that passed-through reads leave
 * atimes alone; files on other mounts are registered as they are. */
void backing_files_register_through(struct backing_files *files, int view_fd, int mount_id);
int backing_files_open(struct backing_files *files, fuse_ino_t ino, int fd, bool eligible,
		       enum fs_io_mode *mode, int *backing_id);
void backing_files_close(struct backing_files *files, fuse_ino_t ino, enum fs_io_mode mode);

#endif
