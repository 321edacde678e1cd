/*
 * path_glob.h - globs over paths relative to the mount root.
 *
 * The syntax of provfs.conf's [record] exclude and [paths] rules:
 * fnmatch(3) patterns matched component by component (a '*' never crosses
 * a '/'), where a component "**" matches any number of directories,
 * none included.  A glob without '/' matches a name at any depth, as in
 * .gitignore ("*.swp" excludes every swap file); a glob with a slash is
 * anchored at the mount root ("raw/crm/" followed by "**").
 */
#ifndef PROVFS_PATH_GLOB_H
#define PROVFS_PATH_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Does glob match path (relative, no leading '/')? */
bool path_glob_match(const char *glob, const char *path);

/*
 * How specific a glob is: its count of literal (non-wildcard) characters.
 * Among rules that match, the most specific wins; ties go to the later.
 */
size_t path_glob_specificity(const char *glob);

#endif
