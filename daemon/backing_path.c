/*
 * backing_path.c - paths of backing-tree inodes (see include/backing_path.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backing_path.h"

char *
backing_path_of(const char *backing_dir, int fd)
{
	char link[32], target[4096];
	ssize_t length;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	length = readlink(link, target, sizeof(target) - 1);
	if (length < 0)
		return NULL;
	target[length] = '\0';
	return backing_path_below(backing_dir, target);
}

char *
backing_path_below(const char *backing_dir, const char *target)
{
	size_t root_length = strlen(backing_dir);

	if (target[0] != '/')
		return NULL;
	if (strcmp(backing_dir, "/") == 0)
		return strdup(target + 1);
	if (strncmp(target, backing_dir, root_length) != 0)
		return NULL;
	if (target[root_length] == '\0')
		return strdup("");
	if (target[root_length] != '/')
		return NULL; /* a sibling that shares the prefix, or " (deleted)" */
	return strdup(target + root_length + 1);
}

char *
backing_path_join(const char *directory, const char *name)
{
	/* On every create and open: copies, not a format string to parse. */
	size_t directory_length = strlen(directory);
	size_t name_length = strlen(name);
	char *path = malloc(directory_length + name_length + 2);

	if (path == NULL)
		return NULL;
	char *end = mempcpy(path, directory, directory_length);
	if (directory_length > 0)
		*end++ = '/';
	memcpy(end, name, name_length + 1);
	return path;
}
