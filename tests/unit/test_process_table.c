/*
 * Unit tests of the process table's identity facts on live processes: the
 * injection variables, tracing (at first sight and by the connector's
 * ptrace events, sticky after a detach), the executable's hash waited for
 * with process_table_executable_hash(), exec chains that stay two images
 * long, and concurrent first lookups that agree on one image.
 *
 * Needs root (the process connector and ptrace of its children).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "clock.h"
#include "process_table.h"

static int failures;

#define CHECK(condition, ...)                                                   \
	do {                                                                    \
		if (!(condition)) {                                             \
			fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);    \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
			failures++;                                             \
		}                                                               \
	} while (0)

static void
hash_fd(int fd, char hex[33])
{
	XXH3_state_t *state = XXH3_createState();
	char buffer[65536];
	ssize_t count;

	XXH3_128bits_reset(state);
	while ((count = read(fd, buffer, sizeof(buffer))) > 0)
		XXH3_128bits_update(state, buffer, (size_t)count);
	XXH128_hash_t hash = XXH3_128bits_digest(state);
	XXH3_freeState(state);
	snprintf(hex, 33, "%016llx%016llx", (unsigned long long)hash.high64,
		 (unsigned long long)hash.low64);
}

/* ---- hooks ---------------------------------------------------------------------- */

struct hasher {
	struct process_table *table;
	bool answer; /* false: keep the table waiting forever */
};

static void
hash_now(void *context, struct process_info *image, int fd)
{
	struct hasher *hasher = context;
	char hex[33];

	if (!hasher->answer) {
		close(fd);
		return;
	}
	hash_fd(fd, hex);
	close(fd);
	process_table_executable_hashed(hasher->table, image, hex);
}

static struct process_table *
new_table(struct hasher *hasher)
{
	struct process_table_options options = {
		.redaction = NULL,
		.mount_point = "/nonexistent/provfs-unit-mount",
		.backing_fd = -1,
		.hooks = {.context = hasher, .hash_executable = hash_now},
	};
	struct process_table *table = process_table_new(&options);

	hasher->table = table;
	process_table_want_exec_facts(table, true); /* as a policy with exe: grants */
	if (table == NULL || process_table_start(table) != 0) {
		fprintf(stderr, "cannot start a process table with the connector (root?)\n");
		exit(77); /* skipped */
	}
	return table;
}

/* ---- children ------------------------------------------------------------------- */

/* Run argv with environment env (NULL: empty), stdin from in_fd (-1: /dev/null). */
static pid_t
spawn(char *const argv[], char *const env[], int in_fd)
{
	pid_t pid = fork();
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(in_fd >= 0 ? in_fd : null, 0);
		dup2(null, 2);
		static char *const empty[] = {NULL};
		execve(argv[0], argv, env ? env : empty);
		_exit(127);
	}
	return pid;
}

static void
reap(pid_t pid)
{
	kill(pid, SIGKILL);
	while (waitpid(pid, NULL, __WALL) < 0 && errno == EINTR)
		;
}

/* Look pid up until its image passes check (the child is still starting). */
static struct process_info *
lookup_until(struct process_table *table, pid_t pid,
	     bool (*check)(const struct process_info *, const void *), const void *argument)
{
	for (int i = 0; i < 500; i++) {
		struct process_info *image = process_table_lookup(table, pid);
		if (image && check(image, argument)) {
			/* Settle: the exec's event may come a moment after /proc
			 * shows the new image; take the image it leaves. */
			usleep(50000);
			process_info_release(image);
			image = process_table_lookup(table, pid);
			if (image && check(image, argument))
				return image;
		}
		process_info_release(image);
		usleep(10000);
	}
	return NULL;
}

/*
 * Runs program path, its execve done: between the exec's switch of exe and
 * the new stack, /proc shows the new exe with no argv and no environment.
 */
static bool
runs(const struct process_info *image, const void *path)
{
	return image->executable && strcmp(image->executable, path) == 0 &&
	       image->argv_length > 0;
}

static bool
exec_index_is(const struct process_info *image, const void *index)
{
	return image->exec_index == *(const int *)index;
}

/* ---- tests ---------------------------------------------------------------------- */

static void
test_injection_lists(void)
{
	static const struct {
		const char *environment; /* '|' stands for NUL */
		unsigned int expected;
	} cases[] = {
		{"PATH=/bin|HOME=/root|", 0},
		{"LD_PRELOAD=/tmp/evil.so|", PROCESS_INJECTION_LOADER},
		{"LD_LIBRARY_PATH=/tmp|", PROCESS_INJECTION_LOADER},
		{"LD_AUDIT=/tmp/a.so|", PROCESS_INJECTION_LOADER},
		{"GCONV_PATH=/tmp|", PROCESS_INJECTION_LOADER},
		{"LD_PRELOAD=|", 0}, /* empty: the loader does nothing */
		{"LD_RUN_PATH=/x|", 0}, /* the linker's, not the loader's */
		{"XLD_PRELOAD=/x|", 0},
		{"PYTHONPATH=/tmp|", PROCESS_INJECTION_SCRIPT},
		{"PYTHONSTARTUP=/tmp/s.py|", PROCESS_INJECTION_SCRIPT},
		{"PERL5OPT=-Mevil|", PROCESS_INJECTION_SCRIPT},
		{"NODE_OPTIONS=--require /tmp/x.js|", PROCESS_INJECTION_SCRIPT},
		{"BASH_ENV=/tmp/rc|", PROCESS_INJECTION_SCRIPT},
		{"BASH_FUNC_ls%%=() { id; }|", PROCESS_INJECTION_SCRIPT},
		{"LUA_INIT_5_4=@/tmp/x.lua|", PROCESS_INJECTION_SCRIPT},
		{"PYTHONPATHX=/tmp|", 0},
		{"PYTHONPATH|", 0}, /* no '=' */
		{"A=1|LD_PRELOAD=x.so|RUBYOPT=-rx|",
		 PROCESS_INJECTION_LOADER | PROCESS_INJECTION_SCRIPT},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char block[256];
		size_t length = strlen(cases[i].environment);
		memcpy(block, cases[i].environment, length);
		for (size_t j = 0; j < length; j++)
			if (block[j] == '|')
				block[j] = '\0';
		unsigned int got = process_injection_of(block, length);
		CHECK(got == cases[i].expected, "injection of \"%s\": %u, expected %u",
		      cases[i].environment, got, cases[i].expected);
	}
}

static void
test_injection_of_live_processes(struct process_table *table)
{
	static const struct {
		const char *variable;
		unsigned int expected;
	} cases[] = {
		{"LD_PRELOAD=/nonexistent/provfs-unit.so", PROCESS_INJECTION_LOADER},
		{"PYTHONPATH=/nonexistent", PROCESS_INJECTION_SCRIPT},
		{"LANG=C", 0},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {"/bin/sleep", "30", NULL};
		char *env[] = {(char *)cases[i].variable, NULL};
		pid_t child = spawn(argv, env, -1);
		struct process_info *image =
			lookup_until(table, child, runs, "/usr/bin/sleep");
		CHECK(image != NULL, "no image of sleep");
		/* ARGV0_UNTRUSTED is set, unlooked at, for any image but Python's. */
		if (image)
			CHECK((image->environment_injection & ~PROCESS_ARGV0_UNTRUSTED) ==
				      cases[i].expected,
			      "%s: injection %u, expected %u", cases[i].variable,
			      image->environment_injection, cases[i].expected);
		process_info_release(image);
		reap(child);
	}
}

/* ---- where argv[0] leads Python --------------------------------------------------- */

static char argv0_base[] = "/tmp/provfs-unit-argv0.XXXXXX";

/* base/relative, in a static buffer (one at a time per call site is enough). */
static const char *
at(const char *relative)
{
	static char paths[8][512];
	static int next;
	char *path = paths[next++ % 8];

	snprintf(path, 512, "%s/%s", argv0_base, relative);
	return path;
}

static void
make_directory(const char *relative, mode_t mode, uid_t uid, gid_t gid)
{
	CHECK(mkdir(at(relative), mode) == 0 || errno == EEXIST, "mkdir %s", relative);
	CHECK(chown(at(relative), uid, gid) == 0 && chmod(at(relative), mode) == 0, "chown %s",
	      relative);
}

static void
make_link(const char *target, const char *relative, uid_t uid)
{
	CHECK(symlink(target, at(relative)) == 0, "symlink %s", relative);
	CHECK(lchown(at(relative), uid, uid) == 0, "lchown %s", relative);
}

/*
 * A tree with an installed python (usr/bin/python3.11, its inode standing
 * for the executed one), a merged-/usr bin -> usr/bin, a group-writable
 * local/bin (Debian's /usr/local/bin: 2775 root:staff) and a user's venv.
 */
static void
make_argv0_tree(dev_t *device, ino_t *inode)
{
	struct stat st;
	char python[600];
	int fd;

	CHECK(mkdtemp(argv0_base) != NULL, "mkdtemp");
	CHECK(chmod(argv0_base, 0755) == 0, "chmod");
	make_directory("usr", 0755, 0, 0);
	make_directory("usr/bin", 0755, 0, 0);
	fd = open(at("usr/bin/python3.11"), O_CREAT | O_WRONLY, 0755);
	close(fd);
	CHECK(stat(at("usr/bin/python3.11"), &st) == 0, "stat python3.11");
	*device = st.st_dev;
	*inode = st.st_ino;
	make_link("python3.11", "usr/bin/python3", 0);
	make_link("usr/bin", "bin", 0);
	snprintf(python, sizeof(python), "%s", at("usr/bin/python3.11"));
	make_directory("local", 0755, 0, 0);
	make_directory("local/bin", 02775, 0, 50);
	make_link(python, "local/bin/python3", 0);
	make_directory("home", 0755, 0, 0);
	make_directory("home/u", 0755, 4242, 4242);
	make_directory("home/u/venv", 0755, 4242, 4242);
	make_directory("home/u/venv/bin", 0755, 4242, 4242);
	make_link(python, "home/u/venv/bin/python3", 4242);
	make_link("usr/bin", "userlink", 4242); /* a user's symlink to root's directory */
	make_directory("empty", 0755, 0, 0);
	make_directory("other", 0755, 0, 0);
	fd = open(at("other/python3"), O_CREAT | O_WRONLY, 0755); /* another python3 */
	close(fd);
	make_directory("sticky", 01777, 0, 0);
	make_directory("sticky/root", 0755, 0, 0);
	make_directory("sticky/root/bin", 0755, 0, 0);
	make_link(python, "sticky/root/bin/python3", 0);
	make_directory("sticky/bin", 0755, 0, 0);
	make_link(python, "sticky/bin/python3", 0);
	make_directory("gw", 0775, 0, 50);
	make_directory("gw/bin", 0755, 0, 0);
	make_link(python, "gw/bin/python3", 0);
	make_link("../usr/bin", "dots", 0); /* ".." in a target: not resolved */
}

/* "@" in in replaced by the tree's base, into out. */
static void
expand(const char *in, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (const char *c = in; c && *c && used < size; c++)
		used += (size_t)snprintf(out + used, size - used, "%s",
					 *c == '@' ? argv0_base : (char[]){*c, 0});
	CHECK(used < size, "%s: too long", in);
}

/* The tree's directories offered as trusted (those that pass are kept). */
static void
trusted_of_tree(struct process_trusted_directories *trusted, const char *mount_point)
{
	static const char *const offered[] = {
		"@/usr/bin",	   "@/bin",	     "@/local/bin", "@/home/u/venv/bin",
		"@/userlink",	   "@/dots",	     "@/sticky/root/bin", "@/sticky/bin",
		"@/gw/bin",	   "@/empty",	     "@/other",	     "@/missing",
	};
	char names[12][600], mount[600];
	const char *pointers[12];

	for (size_t i = 0; i < 12; i++) {
		expand(offered[i], names[i], sizeof(names[i]));
		pointers[i] = names[i];
	}
	if (mount_point)
		expand(mount_point, mount, sizeof(mount));
	process_trusted_directories_init(trusted, pointers, 12, mount_point ? mount : NULL);
}

static void
test_argv0_trust(void)
{
	struct process_trusted_directories trusted, under_mount;
	dev_t device;
	ino_t inode;
	char path[2048];

	make_argv0_tree(&device, &inode);
	trusted_of_tree(&trusted, NULL);
	CHECK(trusted.count == 5, "trusted: %zu directories, expected usr/bin, bin, "
	      "sticky/root/bin, empty, other", trusted.count);
	trusted_of_tree(&under_mount, "@/usr");
	CHECK(under_mount.count == 3, "under the mount: %zu trusted", under_mount.count);
	static const struct {
		const char *argv0; /* "@" stands for the tree's base */
		const char *cwd;
		const char *path; /* each "@" too; NULL: no PATH */
		bool mount;       /* the set made with the mount at @/usr */
		unsigned int expected;
	} cases[] = {
		/* A slash: argv0's own directory, by name. */
		{"@/usr/bin/python3", "/", NULL, false, 0},
		{"@/usr/bin/python3.11", "/", NULL, false, 0},
		{"@/bin/python3", "/", NULL, false, 0},  /* merged /usr: bin -> usr/bin */
		{"./python3", "@/usr/bin", NULL, false, 0},
		{"bin/python3", "@", NULL, false, 0},
		{"@/home/u/venv/bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/local/bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/userlink/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/dots/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/usr/bin/../bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/usr//bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/other/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED}, /* not the inode */
		{"@/empty/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"bin/python3", NULL, NULL, false, PROCESS_ARGV0_UNTRUSTED},
		/* /tmp-like: sticky above the parent is fine, as the parent it is not;
		 * a symlink out of a trusted directory is not followed. */
		{"@/sticky/root/bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/sticky/bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"@/gw/bin/python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		/* Never trusted under the mount: a look would ask this very daemon. */
		{"@/usr/bin/python3", "/", NULL, true, PROCESS_ARGV0_UNTRUSTED},
		{"@/bin/python3", "/", NULL, true, PROCESS_ARGV0_UNTRUSTED},
		/* A bare name: every PATH entry up to where it is found is trusted. */
		{"python3", "/", "@/usr/bin", false, 0},
		{"python3", "/", "@/bin:@/local/bin", false, 0},
		{"python3", "/", "@/empty:@/usr/bin", false, 0},
		{"python3", "/", "@/usr/bin:@/local/bin:@/home/u/venv/bin", false, 0},
		{"python3", "/", "@/missing:@/empty:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/local/bin:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/empty:@/local/bin:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/home/u/venv/bin:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/userlink:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/other:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/usr/bin/:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", ":@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "bin:@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/usr/bin:", false, 0},
		{"python3", "/", "@/empty", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/empty:", false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", NULL, false, PROCESS_ARGV0_UNTRUSTED},
		{"python3", "/", "@/usr/bin", true, PROCESS_ARGV0_UNTRUSTED},
		{"../python3", "/", "@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
		{"", "/", "@/usr/bin", false, PROCESS_ARGV0_UNTRUSTED},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char argv0[600], cwd[600];
		expand(cases[i].argv0, argv0, sizeof(argv0));
		expand(cases[i].cwd, cwd, sizeof(cwd));
		expand(cases[i].path, path, sizeof(path));
		unsigned int got = process_argv0_trust(cases[i].mount ? &under_mount : &trusted,
						       argv0, cases[i].cwd ? cwd : NULL,
						       cases[i].path ? path : NULL, device, inode);
		CHECK(got == cases[i].expected, "argv0 %s cwd %s PATH %s%s: %u, expected %u",
		      cases[i].argv0, cases[i].cwd ? cases[i].cwd : "(none)",
		      cases[i].path ? cases[i].path : "(none)",
		      cases[i].mount ? " (mount at @/usr)" : "", got, cases[i].expected);
	}
	/* The wrong inode is never trusted, whatever the name. */
	CHECK(process_argv0_trust(&trusted, at("usr/bin/python3"), "/", NULL, device, inode + 1) ==
		      PROCESS_ARGV0_UNTRUSTED,
	      "another inode");
	process_trusted_directories_release(&trusted);
	process_trusted_directories_release(&under_mount);
	snprintf(path, sizeof(path), "rm -rf '%s'", argv0_base);
	CHECK(system(path) == 0, "rm");
}

/*
 * A PATH entry on a filesystem that never answers is never looked at: a
 * FUSE mount whose server (this test) reads no request, where any lookup
 * waits for good.  The check runs in a child, which an alarm would kill.
 */
static void
test_argv0_never_walks_path(void)
{
	char point[] = "/tmp/provfs-unit-stall.XXXXXX", options[128], path[4200];
	struct process_trusted_directories trusted;
	struct stat python;
	int fuse_fd, status = -1;

	if (stat("/usr/bin/python3", &python) != 0 || mkdtemp(point) == NULL)
		return;
	fuse_fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	snprintf(options, sizeof(options), "fd=%d,rootmode=40000,user_id=0,group_id=0", fuse_fd);
	if (fuse_fd < 0 || mount("stall", point, "fuse.stall", MS_NOSUID | MS_NODEV, options) < 0) {
		fprintf(stderr, "no FUSE mount: the stalled-PATH test skipped\n");
		if (fuse_fd >= 0)
			close(fuse_fd);
		rmdir(point);
		return;
	}
	process_trusted_directories_init(&trusted, NULL, 0, NULL);
	snprintf(path, sizeof(path), "%s/bin:/usr/bin", point);
	pid_t child = fork();
	if (child == 0) {
		alarm(5);
		_exit(process_argv0_trust(&trusted, "python3", "/", path, python.st_dev,
					  python.st_ino) == PROCESS_ARGV0_UNTRUSTED
			      ? 0
			      : 1);
	}
	CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "a PATH entry on a stalled filesystem: status %#x (killed: it was walked)", status);
	snprintf(path, sizeof(path), "/usr/bin:%s/bin", point);
	child = fork();
	if (child == 0) {
		alarm(5);
		_exit(process_argv0_trust(&trusted, "python3", "/", path, python.st_dev,
					  python.st_ino) == 0
			      ? 0
			      : 1);
	}
	CHECK(child > 0 && waitpid(child, &status, 0) == child, "fork");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "found in /usr/bin before a stalled entry: status %#x", status);
	process_trusted_directories_release(&trusted);
	umount2(point, MNT_DETACH);
	close(fuse_fd);
	rmdir(point);
}

/*
 * The fact as the table reads it, on live Python processes: the system's
 * python3 by its merged-/usr name /bin/python3, by a bare name on PATH,
 * and through a symlink in a directory of a user's (a venv's bin).
 */
static void
test_argv0_of_live_python(struct process_table *table)
{
	char python[4096], venv[] = "/tmp/provfs-unit-venv.XXXXXX", link[4200];
	static char *const path_env[] = {"PATH=/usr/local/bin:/usr/bin:/bin", NULL};

	if (realpath("/usr/bin/python3", python) == NULL || access("/bin/python3", X_OK) != 0) {
		fprintf(stderr, "no /usr/bin/python3 and /bin/python3: live argv0 tests skipped\n");
		return;
	}
	CHECK(mkdtemp(venv) != NULL && chown(venv, 4242, 4242) == 0, "venv");
	snprintf(link, sizeof(link), "%s/python3", venv);
	CHECK(symlink(python, link) == 0, "symlink");
	static const char sleep_code[] = "import time; time.sleep(30)";
	struct {
		const char *file;  /* what execve runs */
		const char *argv0; /* what it is told */
		bool trusted;
	} cases[] = {
		{"/bin/python3", "/bin/python3", true},
		{"/usr/bin/python3", "python3", true},
		{link, link, false},
		/* Python looks on PATH, not where the kernel was told: /usr/bin's. */
		{link, "python3", true},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *argv[] = {(char *)cases[i].argv0, "-c", (char *)sleep_code, NULL};
		pid_t child = fork();
		if (child == 0) {
			int null = open("/dev/null", O_RDWR);
			dup2(null, 0);
			dup2(null, 2);
			execve(cases[i].file, argv, path_env);
			_exit(127);
		}
		struct process_info *image = lookup_until(table, child, runs, python);
		CHECK(image != NULL, "no image of %s", cases[i].argv0);
		if (image)
			CHECK(!(image->environment_injection & PROCESS_ARGV0_UNTRUSTED) ==
				      cases[i].trusted,
			      "%s as %s: facts %u", cases[i].file, cases[i].argv0,
			      image->environment_injection);
		process_info_release(image);
		reap(child);
	}
	unlink(link);
	rmdir(venv);
}

static bool
traced_now(struct process_table *table, pid_t pid, struct process_info *image)
{
	/* A lookup applies the connector's queued events. */
	for (int i = 0; i < 500; i++) {
		process_info_release(process_table_lookup(table, pid));
		if (atomic_load(&image->traced))
			return true;
		usleep(10000);
	}
	return false;
}

static void
detach(pid_t child)
{
	ptrace(PTRACE_INTERRUPT, child, 0, 0);
	waitpid(child, NULL, __WALL);
	ptrace(PTRACE_DETACH, child, 0, 0);
}

static void
test_traced(struct process_table *table)
{
	char *argv[] = {"/bin/sleep", "30", NULL};

	/* Traced before provfs first sees it: TracerPid. */
	pid_t child = spawn(argv, NULL, -1);
	usleep(100000); /* let it exec sleep before provfs sees it */
	CHECK(ptrace(PTRACE_SEIZE, child, 0, 0) == 0, "PTRACE_SEIZE: %s", strerror(errno));
	struct process_info *image = lookup_until(table, child, runs, "/usr/bin/sleep");
	CHECK(image && atomic_load(&image->traced), "a traced process at first sight is not traced");
	process_info_release(image);
	detach(child);
	reap(child);

	/* Attached after first sight: the connector's ptrace event, sticky. */
	child = spawn(argv, NULL, -1);
	image = lookup_until(table, child, runs, "/usr/bin/sleep");
	CHECK(image && !atomic_load(&image->traced), "an untraced process is traced");
	if (image) {
		CHECK(ptrace(PTRACE_SEIZE, child, 0, 0) == 0, "PTRACE_SEIZE: %s", strerror(errno));
		CHECK(traced_now(table, child, image), "attach after first sight not seen");
		detach(child);
		usleep(100000);
		struct process_info *again = process_table_lookup(table, child);
		CHECK(again == image, "a detach made a new image");
		CHECK(again && atomic_load(&again->traced), "traced cleared by a detach");
		process_info_release(again);
	}
	process_info_release(image);
	reap(child);
}

/* The child of parent that runs program (strace starts helpers first), or 0. */
static pid_t
child_running(pid_t parent, const char *program)
{
	char path[64], target[256];

	for (int attempt = 0; attempt < 500; attempt++) {
		FILE *children;
		int pid;
		snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)parent, (int)parent);
		if ((children = fopen(path, "r")) != NULL) {
			while (fscanf(children, "%d", &pid) == 1) {
				snprintf(path, sizeof(path), "/proc/%d/exe", pid);
				ssize_t length = readlink(path, target, sizeof(target) - 1);
				if (length > 0 && (target[length] = '\0', strcmp(target, program) == 0)) {
					fclose(children);
					return pid;
				}
			}
			fclose(children);
		}
		usleep(10000);
	}
	return 0;
}

static void
test_under_strace(struct process_table *table)
{
	char *argv[] = {"/usr/bin/strace", "-o", "/dev/null", "/bin/sleep", "30", NULL};

	if (access(argv[0], X_OK) != 0) {
		fprintf(stderr, "no strace: its test skipped\n");
		return;
	}
	pid_t tracer = spawn(argv, NULL, -1);
	pid_t child = child_running(tracer, "/usr/bin/sleep");
	CHECK(child > 0, "strace started no child");
	if (child > 0) {
		struct process_info *image = lookup_until(table, child, runs, "/usr/bin/sleep");
		CHECK(image && atomic_load(&image->traced), "a process under strace is not traced");
		process_info_release(image);
	}
	reap(tracer);
	if (child > 0)
		kill(child, SIGKILL);
}

static void
test_executable_hash(struct process_table *table)
{
	char *argv[] = {"/bin/sleep", "30", NULL};
	char expected[33] = "", got[33] = "";
	struct stat st;

	int fd = open("/usr/bin/sleep", O_RDONLY);
	if (fd >= 0) {
		hash_fd(fd, expected);
		fstat(fd, &st);
		close(fd);
	}
	pid_t child = spawn(argv, NULL, -1);
	struct process_info *image = lookup_until(table, child, runs, "/usr/bin/sleep");
	CHECK(image != NULL, "no image of sleep");
	if (image) {
		CHECK(process_table_executable_hash(table, image, 5000, got) == 0,
		      "executable hash not known");
		CHECK(strcmp(got, expected) == 0, "executable hash %s, expected %s", got, expected);
		CHECK(image->executable_device == st.st_dev && image->executable_inode == st.st_ino,
		      "executed inode %ju:%ju, expected %ju:%ju",
		      (uintmax_t)image->executable_device, (uintmax_t)image->executable_inode,
		      (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
	}
	process_info_release(image);
	reap(child);
}

static void
test_executable_hash_times_out(void)
{
	struct hasher silent = {.answer = false};
	struct process_table *table = new_table(&silent);
	char *argv[] = {"/bin/sleep", "30", NULL};
	char got[33];

	pid_t child = spawn(argv, NULL, -1);
	struct process_info *image = lookup_until(table, child, runs, "/usr/bin/sleep");
	CHECK(image != NULL, "no image of sleep");
	if (image) {
		int64_t start = monotonic_ns();
		CHECK(process_table_executable_hash(table, image, 200, got) == -1,
		      "a hash nobody computed is known");
		double waited = (double)(monotonic_ns() - start) / 1e9;
		CHECK(waited >= 0.19 && waited < 3, "waited %.3f s for a 200 ms timeout", waited);
	}
	process_info_release(image);
	reap(child);
	process_table_free(table);
}

static void
test_exec_chain_is_two_images(struct process_table *table)
{
	int pipe_fds[2];
	char *argv[] = {"/bin/sh", "-c", "read a; exec /bin/sh -c 'read b; exec /bin/sleep 30'",
			NULL};

	if (pipe(pipe_fds) < 0)
		return;
	char shell[4096];
	if (realpath("/bin/sh", shell) == NULL)
		return;
	pid_t child = spawn(argv, NULL, pipe_fds[0]);
	close(pipe_fds[0]);
	/* First seen once it runs the shell (not the fork before its exec). */
	struct process_info *image = lookup_until(table, child, runs, shell);
	CHECK(image != NULL, "no first image");
	int first = image ? image->exec_index : 0, index;
	process_info_release(image);
	(void)!write(pipe_fds[1], "x\n", 2);
	index = first + 1;
	image = lookup_until(table, child, exec_index_is, &index);
	CHECK(image != NULL, "no second image");
	process_info_release(image);
	(void)!write(pipe_fds[1], "y\n", 2);
	index = first + 2;
	image = lookup_until(table, child, exec_index_is, &index);
	CHECK(image != NULL, "no third image");
	if (image) {
		CHECK(image->previous && image->previous->exec_index == first + 1,
		      "the previous image is missing");
		CHECK(image->previous && image->previous->previous == NULL,
		      "an image keeps the whole exec chain");
	}
	process_info_release(image);
	close(pipe_fds[1]);
	reap(child);
}

struct racer {
	struct process_table *table;
	pid_t pid;
	struct process_info *image;
};

static void *
race(void *argument)
{
	struct racer *racer = argument;

	racer->image = process_table_lookup(racer->table, racer->pid);
	return NULL;
}

static void
test_concurrent_first_lookups(struct process_table *table)
{
	char *argv[] = {"/bin/sleep", "30", NULL};
	struct racer racers[8];
	pthread_t threads[8];

	pid_t child = spawn(argv, NULL, -1);
	usleep(100000);
	for (int i = 0; i < 8; i++) {
		racers[i] = (struct racer){.table = table, .pid = child};
		pthread_create(&threads[i], NULL, race, &racers[i]);
	}
	for (int i = 0; i < 8; i++)
		pthread_join(threads[i], NULL);
	for (int i = 0; i < 8; i++) {
		CHECK(racers[i].image != NULL, "lookup %d found nothing", i);
		CHECK(racers[i].image == racers[0].image, "two images of one process published");
		process_info_release(racers[i].image);
	}
	reap(child);
}

/* ---- facts from exec time -------------------------------------------------------- */

static void
test_exec_records(void)
{
	struct process_exec_records *records = process_exec_records_new(8); /* one set */
	struct process_exec_facts a = {.layout = 1, .argv_hash = 2, .environment_hash = 3},
				  b = {.layout = 4, .argv_hash = 5, .environment_hash = 6}, got;

	CHECK(records != NULL, "no records");
	if (records == NULL)
		return;
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_NONE,
	      "a record of an exec never noted");
	process_exec_records_fulfil(records, 5, 100, &a, process_exec_records_clock(records));
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_NONE,
	      "a read without an exec was kept");
	/* A read begun before the exec was noted may show the image before
	 * the exec (a lookup racing it): not kept, the record stays pending. */
	uint32_t before_exec = process_exec_records_clock(records);
	process_exec_records_note(records, 5);
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_PENDING,
	      "a noted exec is not pending");
	process_exec_records_fulfil(records, 5, 100, &b, before_exec);
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_PENDING,
	      "a read begun before the exec was noted was kept");
	process_exec_records_fulfil(records, 5, 100, &a, process_exec_records_clock(records));
	process_exec_records_fulfil(records, 5, 100, &b, /* a later read: the first stays */
				    process_exec_records_clock(records));
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_READ &&
		      memcmp(&got, &a, sizeof(a)) == 0,
	      "the first read is not the one kept");
	CHECK(process_exec_records_find(records, 5, 101, &got) == PROCESS_EXEC_RECORD_NONE,
	      "a reused pid (another start time) matched");
	process_exec_records_note(records, 5); /* exec'd again */
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_PENDING,
	      "a new exec left the old record");
	process_exec_records_exited(records, 5);
	CHECK(process_exec_records_find(records, 5, 100, &got) == PROCESS_EXEC_RECORD_NONE,
	      "an exit left its record");
	process_exec_records_note(records, 6);
	process_exec_records_fulfil(records, 6, 100, &a, process_exec_records_clock(records));
	CHECK(process_exec_records_complete_since(records, 6, 1),
	      "records taken as lost before any was");
	process_exec_records_clear(records);
	CHECK(process_exec_records_find(records, 6, 100, &got) == PROCESS_EXEC_RECORD_NONE,
	      "a clear left a record");
	/* A process started before the clear may have exec'd without a
	 * record now: it is not held to its parent's; a later one may be. */
	CHECK(!process_exec_records_complete_since(records, 6, 1),
	      "a process started before a clear is taken as seen");
	CHECK(process_exec_records_complete_since(records, 6, UINT64_MAX / 2),
	      "a process started after the clear is taken as unseen");
	/* Nine execs in a set of eight: the oldest goes, the rest stay. */
	for (pid_t pid = 1; pid <= 9; pid++) {
		process_exec_records_note(records, pid);
		process_exec_records_fulfil(records, pid, 7, &a, process_exec_records_clock(records));
	}
	CHECK(process_exec_records_find(records, 1, 7, &got) == PROCESS_EXEC_RECORD_NONE,
	      "the oldest record was not the one replaced");
	CHECK(!process_exec_records_complete_since(records, 1, 1),
	      "a replaced record leaves its set complete");
	for (pid_t pid = 2; pid <= 9; pid++)
		CHECK(process_exec_records_find(records, pid, 7, &got) == PROCESS_EXEC_RECORD_READ,
		      "record of %d lost", (int)pid);
	process_exec_records_free(records);
}

static void
test_exec_facts_apply(void)
{
	const unsigned int site = PROCESS_PYTHON_NO_USER_SITE;
	struct process_exec_facts at_exec = {.layout = 1, .argv_hash = 2, .environment_hash = 3},
				  now = at_exec;

	CHECK(process_exec_facts_apply(0, &at_exec, &now) == 0, "the same facts changed something");
	CHECK(process_exec_facts_apply(site, NULL, &now) == PROCESS_EXEC_UNSEEN,
	      "no record: not unseen, or PYTHONNOUSERSITE trusted");
	now.layout = 9; /* another image (a later exec) */
	CHECK(process_exec_facts_apply(0, &at_exec, &now) == PROCESS_EXEC_UNSEEN,
	      "another image's record was used");
	now = at_exec;
	now.argv_hash = 9;
	CHECK(process_exec_facts_apply(0, &at_exec, &now) == PROCESS_ARGV_CHANGED,
	      "argv rewritten, not seen");
	now = at_exec;
	now.environment_hash = 9;
	CHECK(process_exec_facts_apply(0, &at_exec, &now) == PROCESS_ENVIRONMENT_CHANGED,
	      "environ rewritten, not seen");
	/* LD_PRELOAD at exec, wiped since: still counted. */
	at_exec.injection = PROCESS_INJECTION_LOADER;
	CHECK(process_exec_facts_apply(0, &at_exec, &now) ==
		      (PROCESS_INJECTION_LOADER | PROCESS_ENVIRONMENT_CHANGED),
	      "injection at exec forgotten");
	/* PYTHONNOUSERSITE only when set at exec too. */
	at_exec.injection = 0;
	CHECK(process_exec_facts_apply(site | PROCESS_EXECUTABLE_NOT_ROOT, &at_exec, &at_exec) ==
		      PROCESS_EXECUTABLE_NOT_ROOT,
	      "PYTHONNOUSERSITE set after exec was trusted (or other facts lost)");
	at_exec.injection = site;
	CHECK(process_exec_facts_apply(site, &at_exec, &at_exec) == site,
	      "PYTHONNOUSERSITE set at exec and now was lost");
}

/* Overwrite the first occurrence of from in pid's argv memory with to (same length). */
static bool
rewrite_argv(pid_t pid, const char *from, const char *to)
{
	char path[64], stat[4096], argv[4096];
	unsigned long long start = 0, end = 0;
	bool done = false;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *file = fopen(path, "re");
	if (file == NULL || fgets(stat, sizeof(stat), file) == NULL) {
		if (file)
			fclose(file);
		return false;
	}
	fclose(file);
	char *cursor = strrchr(stat, ')') + 2;
	for (int field = 3; field < 48 && cursor; field++)
		cursor = strchr(cursor, ' ') ? strchr(cursor, ' ') + 1 : NULL;
	if (cursor == NULL || sscanf(cursor, "%llu %llu", &start, &end) != 2 || end <= start ||
	    end - start > sizeof(argv))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	int fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	size_t length = end - start;
	if (pread(fd, argv, length, (off_t)start) == (ssize_t)length) {
		char *found = memmem(argv, length, from, strlen(from));
		done = found &&
		       pwrite(fd, to, strlen(to), (off_t)(start + (size_t)(found - argv))) ==
			       (ssize_t)strlen(to);
	}
	close(fd);
	return done;
}

/*
 * A process that rewrites its argv after exec is told apart; its fork (no
 * exec) is held to its record, so a child of an honest one is trusted; a
 * process the table never saw exec is unseen.
 */
static void
test_exec_facts_of_live_processes(struct process_table *table, pid_t started_before)
{
	char *argv[] = {"/bin/sleep", "30", NULL};
	char *shell[] = {"/bin/sh", "-c", "(while :; do sleep 1; done) & wait", NULL};
	struct process_info *image;

	pid_t child = spawn(argv, NULL, -1);
	usleep(200000); /* the watcher has read it at exec */
	CHECK(rewrite_argv(child, "30", "31"), "cannot rewrite the child's argv");
	image = process_table_lookup(table, child);
	CHECK(image && (image->environment_injection & PROCESS_ARGV_CHANGED) &&
		      !(image->environment_injection & PROCESS_EXEC_UNSEEN),
	      "rewritten argv not seen: facts %#x", image ? image->environment_injection : 0);
	process_info_release(image);
	reap(child);

	child = spawn(shell, NULL, -1);
	usleep(200000);
	char path[64], children[256] = "";
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)child, (int)child);
	FILE *file = fopen(path, "re");
	if (file) {
		if (fgets(children, sizeof(children), file) == NULL)
			children[0] = '\0';
		fclose(file);
	}
	pid_t subshell = (pid_t)atoi(children);
	CHECK(subshell > 0, "no subshell");
	image = subshell > 0 ? process_table_lookup(table, subshell) : NULL;
	CHECK(image && (image->environment_injection &
			(PROCESS_EXEC_UNSEEN | PROCESS_ARGV_CHANGED | PROCESS_ENVIRONMENT_CHANGED)) == 0,
	      "a forked subshell is not held to its parent's exec: facts %#x",
	      image ? image->environment_injection : 0);
	process_info_release(image);
	kill(subshell, SIGKILL);
	reap(child);

	image = process_table_lookup(table, started_before);
	CHECK(image && (image->environment_injection & PROCESS_EXEC_UNSEEN),
	      "a process exec'd before the table started is not unseen");
	process_info_release(image);

	/* No program grant, no reads at exec: a process exec'd meanwhile is
	 * unseen, and stays so when a reload turns them back on. */
	process_table_want_exec_facts(table, false);
	child = spawn(argv, NULL, -1);
	usleep(200000);
	process_table_want_exec_facts(table, true);
	image = process_table_lookup(table, child);
	CHECK(image && (image->environment_injection & PROCESS_EXEC_UNSEEN),
	      "a process exec'd while exec facts were off is not unseen: facts %#x",
	      image ? image->environment_injection : 0);
	process_info_release(image);
	reap(child);
}

int
main(void)
{
	struct hasher hasher = {.answer = true};

	test_injection_lists();
	test_exec_records();
	test_exec_facts_apply();
	if (geteuid() != 0) {
		fprintf(stderr, "not root: live-process tests skipped\n");
		return failures ? 1 : 77;
	}
	test_argv0_trust();
	test_argv0_never_walks_path();
	char *sleeper[] = {"/bin/sleep", "30", NULL};
	pid_t started_before = spawn(sleeper, NULL, -1);
	usleep(100000); /* exec'd before the connector listens */
	struct process_table *table = new_table(&hasher);
	test_injection_of_live_processes(table);
	test_argv0_of_live_python(table);
	test_traced(table);
	test_under_strace(table);
	test_executable_hash(table);
	test_exec_chain_is_two_images(table);
	test_concurrent_first_lookups(table);
	test_exec_facts_of_live_processes(table, started_before);
	reap(started_before);
	process_table_free(table);
	test_executable_hash_times_out();
	if (failures)
		fprintf(stderr, "%d failure(s)\n", failures);
	return failures ? 1 : 0;
}
