/*
 * path_glob.c - component-wise glob matching with "**".
 */
#include <fnmatch.h>
#include <string.h>

#include "path_glob.h"

/* Length of the component starting at s (up to '/' or the end). */
static size_t
component_length(const char *s)
{
	const char *slash = strchr(s, '/');

	return slash ? (size_t)(slash - s) : strlen(s);
}

static bool
match_components(const char *glob, const char *path)
{
	size_t glob_length = component_length(glob);
	const char *glob_rest = glob[glob_length] ? glob + glob_length + 1 : NULL;

	if (glob_length == 2 && glob[0] == '*' && glob[1] == '*') {
		if (glob_rest == NULL)
			return true; /* "**" at the end: everything beneath */
		/* Zero directories, then one more at a time. */
		for (const char *p = path; p; ) {
			if (match_components(glob_rest, p))
				return true;
			const char *slash = strchr(p, '/');
			p = slash ? slash + 1 : NULL;
		}
		return false;
	}
	size_t path_length = component_length(path);
	char pattern[256], name[256];
	if (glob_length >= sizeof(pattern) || path_length >= sizeof(name))
		return false;
	memcpy(pattern, glob, glob_length);
	pattern[glob_length] = '\0';
	memcpy(name, path, path_length);
	name[path_length] = '\0';
	if (fnmatch(pattern, name, 0) != 0)
		return false;
	const char *path_rest = path[path_length] ? path + path_length + 1 : NULL;
	if (glob_rest == NULL)
		return path_rest == NULL;
	if (path_rest == NULL)
		/* Only a trailing "**" may match nothing more. */
		return strcmp(glob_rest, "**") == 0;
	return match_components(glob_rest, path_rest);
}

bool
path_glob_match(const char *glob, const char *path)
{
	if (glob[0] == '\0' || path[0] == '\0')
		return false;
	if (strchr(glob, '/') == NULL && strcmp(glob, "**") != 0) {
		const char *base = strrchr(path, '/');
		return fnmatch(glob, base ? base + 1 : path, 0) == 0;
	}
	return match_components(glob, path);
}

size_t
path_glob_specificity(const char *glob)
{
	size_t literal = 0;

	for (const char *p = glob; *p; p++) {
		if (*p == '*' || *p == '?')
			continue;
		if (*p == '[') {
			const char *close = strchr(p + 1, ']');
			if (close) {
				p = close;
				continue;
			}
		}
		if (*p == '\\' && p[1])
			p++;
		literal++;
	}
	return literal;
}
