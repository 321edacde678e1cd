/*
 * backing_path.h - paths of backing-tree inodes, relative to the mount root.
 *
 * The recorder and the label policy both name files by their path below
 * the backing directory, as the store and provfs.conf's globs do.  They get
 * it from the O_PATH descriptor the filesystem layer lends them: the kernel
 * says where that inode is now (/proc/self/fd), so a rename made a moment
 * ago is already seen.  Nothing is looked up by name.
 */
#ifndef PROVFS_BACKING_PATH_H
#define PROVFS_BACKING_PATH_H

/*
 * The path of the inode fd names, relative to backing_dir ("" for the root
 * itself), newly allocated (free it); NULL when it lies outside backing_dir
 * (never through the mount) or is unlinked, or out of memory.
 */
char *backing_path_of(const char *backing_dir, int fd);

/*
 * The same for an absolute path as /proc/self/fd shows one (the
 * filesystem layer's fs_node_info.name_path): relative to backing_dir,
 * newly allocated; NULL when it lies outside backing_dir or out of memory.
 */
char *backing_path_below(const char *backing_dir, const char *target);

/* directory/name, or name alone when directory is ""; NULL out of memory. */
char *backing_path_join(const char *directory, const char *name);

#endif
