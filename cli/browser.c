/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "common/buf.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/num.h"

/*
 * browser setup: registers p11-kit-proxy in the user's NSS databases
 * (Chromium's ~/.pki/nssdb, each Firefox profile), or writes the
 * system-wide browser policies (--system).
 *
 * The NSS databases are changed only through NSS's own tools, modutil
 * and certutil (Debian package libnss3-tools), run as child processes
 * with execvp: never through a shell, and their arguments are paths and
 * module names, never secrets.  Nothing is ever given trust here: the
 * CA that issues the token's certificates is not a trust anchor for
 * websites (DESIGN.md section 4).
 *
 * Every database is inspected first; if one cannot be used, nothing is
 * changed anywhere and the command fails with the reason.
 */

#define MODULE_NAME "p11-kit-proxy (p11enroll)"
#define TOOL_OUTPUT_MAX (64 * 1024)
#define INI_LINE_MAX 4096
#define MAX_DBS 64

enum result {
	R_ADDED,
	R_PRESENT,
	R_REMOVED,
	R_ABSENT,
	R_SKIPPED,
	R_FAILED,
};

static const char *const result_names[] = {
	[R_ADDED] = "added",
	[R_PRESENT] = "already-present",
	[R_REMOVED] = "removed",
	[R_ABSENT] = "not-present",
	[R_SKIPPED] = "skipped",
	[R_FAILED] = "failed",
};

/* One NSS database, or (--system) one policy file. */
struct target {
	const char *browser; /* "chromium", "firefox" */
	char *profile; /* Firefox profile name, or NULL */
	char *path; /* database directory or policy file */
	bool create; /* the Chromium database does not exist yet */
	enum result result;
	char *present_as; /* the name of the module already there */
	char reason[512];
};

struct run {
	bool undo, dry_run, system, json;
	const char *root; /* --root, for --system */
	const char *url, *issuer_cn; /* Chromium auto-selection policy */
	char proxy_real[PATH_MAX]; /* the proxy's resolved path */
	struct target t[MAX_DBS];
	size_t n;
};

static const char *proxy_path = P11KIT_PROXY_MODULE;

/*
 * snprintf that says whether everything fitted (a longer text is cut,
 * and the caller decides whether that matters).
 */
static bool fmt(char *dst, size_t size, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static bool
fmt(char *dst, size_t size, const char *format, ...)
{
	va_list ap;
	int n;

	va_start(ap, format);
	n = vsnprintf(dst, size, format, ap);
	va_end(ap);
	return n >= 0 && (size_t)n < size;
}

static void target_set(struct target *t, enum result r, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
target_set(struct target *t, enum result r, const char *fmt, ...)
{
	va_list ap;

	t->result = r;
	t->reason[0] = '\0';
	if (fmt != NULL) {
		va_start(ap, fmt);
		vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
		va_end(ap);
	}
}

static struct target *
add_target(
    struct run *r, const char *browser, const char *profile, const char *path)
{
	struct target *t;

	if (r->n == MAX_DBS) {
		p11e_error(_("more than %d browser databases: not all handled"),
		    MAX_DBS);
		return NULL;
	}
	t = &r->t[r->n];
	memset(t, 0, sizeof(*t));
	t->browser = browser;
	if ((profile != NULL && (t->profile = strdup(profile)) == NULL) ||
	    (t->path = strdup(path)) == NULL) {
		free(t->profile);
		p11e_error(_("out of memory"));
		return NULL;
	}
	r->n++;
	return t;
}

static void
run_clear(struct run *r)
{
	size_t i;

	for (i = 0; i < r->n; i++) {
		free(r->t[i].profile);
		free(r->t[i].path);
		free(r->t[i].present_as);
	}
	r->n = 0;
}

/* Whether PROG is an executable file in $PATH. */
static bool
in_path(const char *prog)
{
	const char *path = getenv("PATH"), *p, *end;
	char file[PATH_MAX];
	int n;

	if (path == NULL)
		path = "/usr/bin:/bin";
	for (p = path; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		n = snprintf(file, sizeof(file), "%.*s/%s",
		    end == p ? 1 : (int)(end - p), end == p ? "." : p, prog);
		if (n > 0 && (size_t)n < sizeof(file) &&
		    access(file, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * Runs argv[0] (found in $PATH) with standard input from /dev/null and
 * its output (standard output and error together, at most
 * TOOL_OUTPUT_MAX bytes kept) in *out.  Returns its exit status, or -1
 * when it could not be run or was killed (a message in *out).
 */
static int
run_tool(char *const argv[], struct p11e_buf *out)
{
	char chunk[4096];
	int fds[2], status, devnull;
	ssize_t n;
	pid_t pid;

	p11e_buf_reset(out);
	if (pipe2(fds, O_CLOEXEC) == -1) {
		(void)p11e_buf_append_str(out, strerror(errno));
		return -1;
	}
	fflush(NULL);
	if ((pid = fork()) == -1) {
		(void)p11e_buf_append_str(out, strerror(errno));
		close(fds[0]);
		close(fds[1]);
		return -1;
	}
	if (pid == 0) {
		devnull = open("/dev/null", O_RDONLY);
		if (devnull == -1 || dup2(devnull, 0) == -1 ||
		    dup2(fds[1], 1) == -1 || dup2(fds[1], 2) == -1)
			_exit(127);
		execvp(argv[0], argv);
		dprintf(2, "cannot run %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	close(fds[1]);
	for (;;) {
		n = read(fds[0], chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* the rest of a long output is read and dropped */
		(void)p11e_buf_append(out, chunk, (size_t)n);
	}
	close(fds[0]);
	while (waitpid(pid, &status, 0) == -1) {
		if (errno != EINTR) {
			(void)p11e_buf_append_str(out, strerror(errno));
			return -1;
		}
	}
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	(void)p11e_buf_append_str(out, "killed by a signal");
	return -1;
}

/*
 * The last line of a tool's output that says what went wrong: NSS
 * tools end with "modutil: function failed: SEC_ERROR_...".  Modules
 * loaded by the tool may print noise before it.
 */
static void
last_line(const struct p11e_buf *out, char *dst, size_t size)
{
	const char *s = out->data ? (const char *)out->data : "";
	const char *end = s + strlen(s), *start;
	size_t len;

	while (end > s && (end[-1] == '\n' || end[-1] == ' '))
		end--;
	start = end;
	while (start > s && start[-1] != '\n')
		start--;
	len = (size_t)(end - start);
	if (len == 0) {
		fmt(dst, size, "no output");
		return;
	}
	if (len >= size)
		len = size - 1;
	memcpy(dst, start, len);
	dst[len] = '\0';
}

/*
 * One value of an NSS module spec ("modutil -rawlist"): key=value with
 * value plain, or quoted with " or ' (a backslash escapes).  Moves *p
 * past it.  Returns a new string or NULL at the end of the line.
 */
static char *
spec_next(const char **p, char **key)
{
	const char *s = *p, *k;
	struct p11e_buf v;
	char quote = 0;

	*key = NULL;
	while (*s == ' ' || *s == '\t')
		s++;
	if (*s == '\0' || *s == '\n')
		return NULL;
	k = s;
	while (*s != '\0' && *s != '=' && *s != ' ' && *s != '\n')
		s++;
	if ((*key = strndup(k, (size_t)(s - k))) == NULL)
		return NULL;
	p11e_buf_init(&v, 4096);
	if (*s == '=') {
		s++;
		if (*s == '"' || *s == '\'')
			quote = *s++;
		while (*s != '\0' && *s != '\n') {
			if (quote == 0 && (*s == ' ' || *s == '\t'))
				break;
			if (quote != 0 && *s == quote) {
				s++;
				break;
			}
			if (*s == '\\' && s[1] != '\0')
				s++;
			(void)p11e_buf_append(&v, s, 1);
			s++;
		}
	}
	*p = s;
	if (v.data == NULL)
		(void)p11e_buf_append_str(&v, "");
	return v.data ? (char *)p11e_buf_steal(&v, NULL) : NULL;
}

/* Whether a module library path is the p11-kit proxy. */
static bool
is_proxy(const struct run *r, const char *lib)
{
	char real[PATH_MAX];

	if (strcmp(lib, proxy_path) == 0)
		return true;
	return realpath(lib, real) != NULL && strcmp(real, r->proxy_real) == 0;
}

/*
 * Reads "modutil -rawlist" output: sets *ours when our module name is
 * there and *proxy_name (new string) to the name of a module that loads
 * the proxy (ours first).
 */
static void
parse_modules(
    const struct run *r, const char *text, bool *ours, char **proxy_name)
{
	const char *line = text, *p;
	char *key, *val, *name, *lib;

	*ours = false;
	*proxy_name = NULL;
	while (line != NULL && *line != '\0') {
		name = lib = NULL;
		p = line;
		while ((val = spec_next(&p, &key)) != NULL) {
			if (strcmp(key, "name") == 0 && name == NULL)
				name = val;
			else if (strcmp(key, "library") == 0 && lib == NULL)
				lib = val;
			else
				free(val);
			free(key);
		}
		free(key);
		if (name != NULL && strcmp(name, MODULE_NAME) == 0)
			*ours = true;
		if (name != NULL && lib != NULL && lib[0] != '\0' &&
		    is_proxy(r, lib) &&
		    (*proxy_name == NULL || strcmp(name, MODULE_NAME) == 0)) {
			free(*proxy_name);
			*proxy_name = name;
			name = NULL;
		}
		free(name);
		free(lib);
		line = strchr(line, '\n');
		if (line != NULL)
			line++;
	}
}

/* "sql:DIR" for the NSS tools. */
static void
sql_dir(const char *dir, char *dst, size_t size)
{
	fmt(dst, size, "sql:%s", dir);
}

/* Checks one existing NSS database and decides what to do with it. */
static void
inspect_db(struct run *r, struct target *t, struct p11e_buf *out)
{
	static const char *const files[] = { "cert9.db", "key4.db",
		"pkcs11.txt" };
	char db[PATH_MAX + 8], file[PATH_MAX], line[400];
	char *list_argv[] = { "modutil", "-dbdir", db, "-rawlist", NULL };
	char *check_argv[] = { "certutil", "-L", "-d", db, "-h", "internal",
		NULL };
	char *name = NULL;
	bool ours;
	size_t i;
	int rc;

	sql_dir(t->path, db, sizeof(db));
	if (access(t->path, W_OK | X_OK) != 0) {
		target_set(t, R_FAILED, "cannot write to %s: %s", t->path,
		    strerror(errno));
		return;
	}
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		fmt(file, sizeof(file), "%s/%s", t->path, files[i]);
		if (access(file, R_OK | W_OK) != 0 && errno != ENOENT) {
			target_set(t, R_FAILED, "cannot use %s: %s", file,
			    strerror(errno));
			return;
		}
	}
	/* opens cert9.db and key4.db: a damaged database fails here */
	if ((rc = run_tool(check_argv, out)) != 0) {
		last_line(out, line, sizeof(line));
		target_set(t, R_FAILED,
		    "the NSS database cannot be opened (certutil exit %d: %s)",
		    rc, line);
		return;
	}
	if ((rc = run_tool(list_argv, out)) != 0) {
		last_line(out, line, sizeof(line));
		target_set(t, R_FAILED,
		    "cannot list its modules (modutil exit %d: %s)", rc, line);
		return;
	}
	parse_modules(r, (const char *)out->data, &ours, &name);
	if (!r->undo && name != NULL) {
		target_set(t, R_PRESENT, NULL);
		t->present_as = name;
		name = NULL;
	} else if (!r->undo) {
		target_set(t, R_ADDED, NULL);
	} else if (ours) {
		target_set(t, R_REMOVED, NULL);
	} else {
		target_set(t, R_ABSENT, NULL);
	}
	free(name);
}

/* The Chromium database: ~/.pki/nssdb, created by setup when missing. */
static void
inspect_chromium(struct run *r, struct target *t, struct p11e_buf *out)
{
	char file[PATH_MAX];
	struct stat st;

	fmt(file, sizeof(file), "%s/cert9.db", t->path);
	if (stat(file, &st) == 0) {
		inspect_db(r, t, out);
		return;
	}
	if (errno != ENOENT) {
		target_set(
		    t, R_FAILED, "cannot use %s: %s", file, strerror(errno));
	} else if (r->undo) {
		target_set(t, R_SKIPPED, "no NSS database");
	} else {
		t->create = true;
		target_set(t, R_ADDED, NULL);
	}
}

/*
 * Whether the profile's lock (a symlink "HOST:+PID", left behind when
 * Firefox exits without removing it) names a process that runs.  A lock
 * of another form counts as running.
 */
static bool
firefox_locked(const char *lock)
{
	char target[256], *plus;
	uint64_t pid;
	ssize_t n;

	if ((n = readlink(lock, target, sizeof(target) - 1)) < 0)
		return true;
	target[n] = '\0';
	if ((plus = strrchr(target, '+')) == NULL ||
	    p11e_num_parse_u64(plus + 1, 1, INT32_MAX, &pid) != P11E_OK)
		return true;
	return kill((pid_t)pid, 0) == 0 || errno != ESRCH;
}

static void
inspect_firefox(struct run *r, struct target *t, struct p11e_buf *out)
{
	char file[PATH_MAX];
	struct stat st;

	if (stat(t->path, &st) != 0 || !S_ISDIR(st.st_mode)) {
		target_set(
		    t, R_SKIPPED, "the profile directory does not exist");
		return;
	}
	fmt(file, sizeof(file), "%s/lock", t->path);
	if (lstat(file, &st) == 0 && firefox_locked(file)) {
		target_set(t, R_FAILED,
		    "Firefox is running with this profile (%s exists): quit "
		    "Firefox and run this again",
		    file);
		return;
	}
	fmt(file, sizeof(file), "%s/cert9.db", t->path);
	if (stat(file, &st) != 0) {
		target_set(t, R_SKIPPED,
		    errno == ENOENT ? "no cert9.db yet: start Firefox once "
				      "with this profile, then run this again"
				    : "cannot use cert9.db");
		return;
	}
	inspect_db(r, t, out);
}

/*
 * Lists the profiles of $HOME/.mozilla/firefox/profiles.ini.  A missing
 * file means no Firefox profile; a file that cannot be read is an error.
 */
static bool
find_firefox(struct run *r, const char *home)
{
	char ini[PATH_MAX], dir[PATH_MAX], path[PATH_MAX], line[INI_LINE_MAX];
	char name[256] = "", prof[PATH_MAX] = "";
	bool in_profile = false, relative = true, ok = true;
	unsigned int lineno = 0;
	FILE *f;

	if (!fmt(dir, sizeof(dir), "%s/.mozilla/firefox", home) ||
	    !fmt(ini, sizeof(ini), "%s/profiles.ini", dir)) {
		p11e_error(_("HOME is too long"));
		return false;
	}
	if ((f = fopen(ini, "re")) == NULL) {
		if (errno == ENOENT)
			return true;
		p11e_error(_("cannot read %s: %s"), ini, strerror(errno));
		return false;
	}
	for (;;) {
		bool eof = fgets(line, sizeof(line), f) == NULL;
		char *s = line, *eq;

		if (!eof) {
			lineno++;
			if (strchr(line, '\n') == NULL && !feof(f)) {
				p11e_error(
				    _("%s:%u: line too long"), ini, lineno);
				ok = false;
				break;
			}
			s[strcspn(s, "\r\n")] = '\0';
		}
		/* a section ends: keep the profile it described */
		if (eof || s[0] == '[') {
			if (in_profile && prof[0] != '\0') {
				if (!(relative ? fmt(path, sizeof(path),
						     "%s/%s", dir, prof)
					       : fmt(path, sizeof(path), "%s",
						     prof)) ||
				    add_target(r, "firefox",
					name[0] ? name : NULL, path) == NULL) {
					ok = false;
					break;
				}
			}
			if (eof)
				break;
			in_profile = strncmp(s, "[Profile", 8) == 0;
			name[0] = prof[0] = '\0';
			relative = true;
			continue;
		}
		if (!in_profile || (eq = strchr(s, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(s, "Name") == 0)
			fmt(name, sizeof(name), "%s", eq);
		else if (strcmp(s, "Path") == 0)
			fmt(prof, sizeof(prof), "%s", eq);
		else if (strcmp(s, "IsRelative") == 0)
			relative = strcmp(eq, "0") != 0;
	}
	if (ok && ferror(f)) {
		p11e_error(_("cannot read %s: %s"), ini, strerror(errno));
		ok = false;
	}
	fclose(f);
	return ok;
}

/* mkdir DIR (mode) unless it exists. */
static bool
make_dir(const char *dir, mode_t mode, char *why, size_t size)
{
	if (mkdir(dir, mode) == 0 || errno == EEXIST)
		return true;
	fmt(why, size, "cannot create %s: %s", dir, strerror(errno));
	return false;
}

/* Makes the change decided for t.  False (reason in t) on failure. */
static bool
apply_db(struct target *t, struct p11e_buf *out)
{
	char db[PATH_MAX + 8], parent[PATH_MAX], line[400];
	char *add_argv[] = { "modutil", "-dbdir", db, "-add", MODULE_NAME,
		"-libfile", (char *)proxy_path, "-force", NULL };
	char *del_argv[] = { "modutil", "-dbdir", db, "-delete", MODULE_NAME,
		"-force", NULL };
	char *new_argv[] = { "certutil", "-N", "-d", db, "--empty-password",
		NULL };
	char *slash;
	int rc;

	sql_dir(t->path, db, sizeof(db));
	if (t->create) {
		fmt(parent, sizeof(parent), "%s", t->path);
		slash = strrchr(parent, '/');
		if (slash != NULL && slash != parent)
			*slash = '\0';
		if (!make_dir(parent, 0700, t->reason, sizeof(t->reason)) ||
		    !make_dir(t->path, 0700, t->reason, sizeof(t->reason))) {
			t->result = R_FAILED;
			return false;
		}
		if ((rc = run_tool(new_argv, out)) != 0) {
			last_line(out, line, sizeof(line));
			target_set(t, R_FAILED,
			    "cannot create the NSS database (certutil exit "
			    "%d: %s)",
			    rc, line);
			return false;
		}
	}
	if (t->result == R_ADDED)
		rc = run_tool(add_argv, out);
	else if (t->result == R_REMOVED)
		rc = run_tool(del_argv, out);
	else
		return true;
	if (rc != 0) {
		last_line(out, line, sizeof(line));
		target_set(t, R_FAILED, "modutil exit %d: %s", rc, line);
		return false;
	}
	return true;
}

static const char *
home_dir(void)
{
	const char *home = getenv("HOME");
	struct passwd *pw;

	if (home != NULL && home[0] == '/')
		return home;
	pw = getpwuid(getuid());
	return pw != NULL && pw->pw_dir[0] == '/' ? pw->pw_dir : NULL;
}

/* The verb for a result, as the text report says it. */
static const char *
verb(const struct run *r, const struct target *t)
{
	switch (t->result) {
	case R_ADDED:
		return r->dry_run ? "would add" : "added";
	case R_PRESENT:
		return "already present";
	case R_REMOVED:
		return r->dry_run ? "would remove" : "removed";
	case R_ABSENT:
		return "not present, nothing to remove";
	case R_SKIPPED:
		return "skipped";
	case R_FAILED:
		return "FAILED";
	}
	return "?";
}

static void
report(const struct run *r, bool changed)
{
	const struct target *t;
	json_t *out, *list, *o;
	size_t i;

	if (r->json) {
		list = json_array();
		for (i = 0; i < r->n; i++) {
			t = &r->t[i];
			o = json_pack("{s:s, s:s, s:s, s:b}", "browser",
			    t->browser, "path", t->path, "result",
			    result_names[t->result], "created", t->create);
			if (t->profile != NULL)
				json_object_set_new(
				    o, "profile", json_string(t->profile));
			if (t->present_as != NULL)
				json_object_set_new(o, "present_as",
				    json_string(t->present_as));
			if (t->reason[0] != '\0')
				json_object_set_new(
				    o, "reason", json_string(t->reason));
			json_array_append_new(list, o);
		}
		out = json_pack("{s:s, s:s, s:b, s:b, s:{s:s, s:s}, s:o}",
		    "scope", r->system ? "system" : "user", "action",
		    r->undo ? "undo" : "setup", "dry_run", r->dry_run,
		    "changed", changed, "module", "name", MODULE_NAME,
		    "library", proxy_path, r->system ? "files" : "databases",
		    list);
		p11e_cli_print_json(out);
		json_decref(out);
		return;
	}
	if (r->n == 0)
		printf(_("no browser database found\n"));
	for (i = 0; i < r->n; i++) {
		t = &r->t[i];
		printf("%-8s %s%s%s%s: %s", t->browser, t->path,
		    t->profile ? " (profile " : "",
		    t->profile ? t->profile : "", t->profile ? ")" : "",
		    verb(r, t));
		if (t->present_as != NULL)
			printf(" as \"%s\"", t->present_as);
		if (t->create && t->result == R_ADDED)
			printf("%s",
			    r->dry_run ? _(" (would create the database)")
				       : _(" (created the database)"));
		if (t->reason[0] != '\0')
			printf(": %s", t->reason);
		printf("\n");
	}
}

/* The user's NSS databases. */
static int
user_setup(struct run *r)
{
	struct p11e_buf out;
	struct target *t;
	const char *home;
	char dir[PATH_MAX];
	bool failed = false, changed = false;
	size_t i;

	if (!in_path("modutil") || !in_path("certutil")) {
		p11e_error(_("modutil and certutil (NSS tools) not found: "
			     "install the Debian package libnss3-tools"));
		return P11E_EXIT_FAILURE;
	}
	if ((home = home_dir()) == NULL) {
		p11e_error(_("HOME is not set to an absolute path"));
		return P11E_EXIT_FAILURE;
	}
	if (!fmt(dir, sizeof(dir), "%s/.pki/nssdb", home)) {
		p11e_error(_("HOME is too long"));
		return P11E_EXIT_FAILURE;
	}
	if (add_target(r, "chromium", NULL, dir) == NULL ||
	    !find_firefox(r, home)) {
		p11e_error(_("nothing changed"));
		return P11E_EXIT_FAILURE;
	}
	p11e_buf_init(&out, TOOL_OUTPUT_MAX);
	for (i = 0; i < r->n; i++) {
		t = &r->t[i];
		if (strcmp(t->browser, "chromium") == 0)
			inspect_chromium(r, t, &out);
		else
			inspect_firefox(r, t, &out);
		failed |= t->result == R_FAILED;
	}
	for (i = 0; !failed && !r->dry_run && i < r->n; i++) {
		t = &r->t[i];
		if (!apply_db(t, &out))
			failed = true;
		else
			changed |= t->result == R_ADDED ||
			    t->result == R_REMOVED || t->create;
	}
	p11e_buf_clear(&out);
	report(r, changed);
	if (failed) {
		p11e_error(changed ? "stopped at the first failure: the "
				     "databases above it were changed"
				   : "nothing changed");
		return P11E_EXIT_FAILURE;
	}
	if (!r->json && !r->dry_run && changed)
		printf(_("restart the browsers to load the change\n"));
	return P11E_EXIT_OK;
}

/*
 * Doctor: p11-kit-proxy where browser setup registers it, and each NSS
 * database that browser setup would touch, registered or not (the
 * inspection of --dry-run: nothing is changed).
 */
enum p11e_err
p11e_browser_doctor(json_t *checks)
{
	static struct run r;
	const char *home = home_dir();
	char dir[PATH_MAX], msg[PATH_MAX + 700], where[PATH_MAX + 300];
	struct p11e_buf out;
	enum p11e_err err = P11E_OK;
	struct target *t;
	size_t i;

	memset(&r, 0, sizeof(r));
	r.dry_run = true;
	if (realpath(proxy_path, r.proxy_real) == NULL) {
		fmt(msg, sizeof(msg), "p11-kit-proxy is not at %s", proxy_path);
		return p11e_doctor_add(checks, "p11kit-proxy", "p11-kit",
		    "problem", msg,
		    "install the Debian package p11-kit-modules");
	}
	fmt(msg, sizeof(msg), "%s (the module browsers load)", proxy_path);
	if ((err = p11e_doctor_add(checks, "p11kit-proxy", "p11-kit", "ok", msg,
		 NULL)) != P11E_OK)
		return err;
	if (!in_path("modutil") || !in_path("certutil"))
		return p11e_doctor_add(checks, "browser", "browsers", "warning",
		    "modutil and certutil (NSS tools) are not installed: the "
		    "browsers' databases cannot be checked",
		    "install the Debian package libnss3-tools");
	if (home == NULL || !fmt(dir, sizeof(dir), "%s/.pki/nssdb", home) ||
	    add_target(&r, "chromium", NULL, dir) == NULL ||
	    !find_firefox(&r, home)) {
		run_clear(&r);
		return p11e_doctor_add(checks, "browser", "browsers", "warning",
		    "the browsers' databases cannot be listed (HOME, or "
		    "profiles.ini)",
		    "set HOME to your home directory");
	}
	p11e_buf_init(&out, TOOL_OUTPUT_MAX);
	for (i = 0; i < r.n && err == P11E_OK; i++) {
		t = &r.t[i];
		if (strcmp(t->browser, "chromium") == 0)
			inspect_chromium(&r, t, &out);
		else
			inspect_firefox(&r, t, &out);
		fmt(where, sizeof(where), "%s %s%s%s%s", t->browser, t->path,
		    t->profile ? " (profile " : "",
		    t->profile ? t->profile : "", t->profile ? ")" : "");
		if (t->result == R_PRESENT)
			err = p11e_doctor_add(checks, "browser", where, "ok",
			    "p11-kit-proxy is registered", NULL);
		else if (t->result == R_ADDED)
			err = p11e_doctor_add(checks, "browser", where,
			    "problem",
			    t->create ? "no NSS database yet: the browser "
					"cannot see the token"
				      : "p11-kit-proxy is not registered: the "
					"browser cannot see the token",
			    "p11enroll browser setup, then restart the "
			    "browser");
		else
			err = p11e_doctor_add(checks, "browser", where,
			    "warning", t->reason,
			    t->result == R_FAILED
				? "fix what it says, then p11enroll browser "
				  "setup"
				: NULL);
	}
	p11e_buf_clear(&out);
	run_clear(&r);
	return err;
}

/*
 * Writes j to path atomically (a temporary file in the same directory,
 * fsync, rename), mode 0644, creating missing parent directories 0755.
 */
static bool
write_json(const char *path, json_t *j, char *why, size_t size)
{
	char tmp[PATH_MAX], dir[PATH_MAX], *p;
	int fd = -1;

	fmt(dir, sizeof(dir), "%s", path);
	for (p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (!make_dir(dir, 0755, why, size))
			return false;
		*p = '/';
	}
	if (snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= (int)sizeof(tmp))
		goto fail;
	if ((fd = mkstemp(tmp)) == -1)
		goto fail;
	if (fchmod(fd, 0644) == -1 ||
	    json_dumpfd(j, fd, JSON_INDENT(2) | JSON_SORT_KEYS) != 0 ||
	    write(fd, "\n", 1) != 1 || fsync(fd) == -1)
		goto fail_unlink;
	if (close(fd) == -1) {
		fd = -1;
		goto fail_unlink;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail_unlink;
	return true;
fail_unlink:
	fmt(why, size, "cannot write %s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return false;
fail:
	fmt(why, size, "cannot write %s: %s", path, strerror(errno));
	return false;
}

/*
 * Firefox: policies.json "SecurityDevices": {"Add": {NAME: PATH}},
 * merged into what the file already holds.
 */
static void
firefox_policy(struct run *r, struct target *t, json_t **doc)
{
	json_t *root, *pol, *dev, *add, *v;
	json_error_t jerr;
	const char *k;

	*doc = NULL;
	root = json_load_file(t->path, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL && access(t->path, F_OK) == 0) {
		target_set(t, R_FAILED, "not valid JSON: %s:%d:%d: %s", t->path,
		    jerr.line, jerr.column, jerr.text);
		return;
	}
	if (root == NULL && r->undo) {
		target_set(t, R_ABSENT, NULL);
		return;
	}
	if (root == NULL)
		root = json_object();
	pol = json_object_get(root, "policies");
	dev = json_object_get(pol, "SecurityDevices");
	add = json_object_get(dev, "Add");
	if (!json_is_object(root) || (pol != NULL && !json_is_object(pol)) ||
	    (dev != NULL && !json_is_object(dev)) ||
	    (add != NULL && !json_is_object(add))) {
		target_set(t, R_FAILED,
		    "unexpected layout: \"policies\", \"SecurityDevices\" "
		    "and \"Add\" must be objects");
		json_decref(root);
		return;
	}
	if (r->undo) {
		if (json_object_get(add, MODULE_NAME) == NULL) {
			target_set(t, R_ABSENT, NULL);
			json_decref(root);
			return;
		}
		json_object_del(add, MODULE_NAME);
		if (json_object_size(add) == 0)
			json_object_del(dev, "Add");
		if (json_object_size(dev) == 0)
			json_object_del(pol, "SecurityDevices");
		target_set(t, R_REMOVED, NULL);
		*doc = root;
		return;
	}
	/* the proxy under any name, in "Add" or the older flat form */
	json_object_foreach(add, k, v)
	{
		if (json_is_string(v) && is_proxy(r, json_string_value(v)))
			break;
	}
	if (k == NULL) {
		json_object_foreach(dev, k, v)
		{
			if (json_is_string(v) &&
			    is_proxy(r, json_string_value(v)))
				break;
		}
	}
	if (k == NULL && json_object_get(add, MODULE_NAME) != NULL)
		k = MODULE_NAME;
	if (k != NULL) {
		target_set(t, R_PRESENT, NULL);
		t->present_as = strdup(k);
		json_decref(root);
		return;
	}
	if (pol == NULL)
		json_object_set_new(root, "policies", pol = json_object());
	if (dev == NULL)
		json_object_set_new(
		    pol, "SecurityDevices", dev = json_object());
	if (add == NULL)
		json_object_set_new(dev, "Add", add = json_object());
	json_object_set_new(add, MODULE_NAME, json_string(proxy_path));
	target_set(t, R_ADDED, NULL);
	*doc = root;
}

/*
 * Chromium: a managed policy file of our own holding only
 * AutoSelectCertificateForUrls (with --url and --issuer-cn).
 */
static void
chromium_policy(struct run *r, struct target *t, json_t **doc)
{
	json_t *want = NULL, *have, *o;
	char *rule = NULL;

	*doc = NULL;
	have = json_load_file(t->path, 0, NULL);
	if (r->undo) {
		json_decref(have);
		if (access(t->path, F_OK) == 0)
			target_set(t, R_REMOVED, NULL);
		else
			target_set(t, R_ABSENT, NULL);
		return;
	}
	/* the policy's list items are JSON texts themselves */
	o = json_pack("{s:s, s:{s:{s:s}}}", "pattern", r->url, "filter",
	    "ISSUER", "CN", r->issuer_cn);
	if (o != NULL)
		rule = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(o);
	if (rule != NULL)
		want =
		    json_pack("{s:[s]}", "AutoSelectCertificateForUrls", rule);
	if (rule != NULL) {
		/* allocated by jansson's (wiping) allocator */
		json_free_t jfree;

		json_get_alloc_funcs(NULL, &jfree);
		jfree(rule);
	}
	if (want == NULL) {
		target_set(t, R_FAILED, "out of memory");
	} else if (have != NULL && json_equal(have, want)) {
		target_set(t, R_PRESENT, NULL);
	} else {
		target_set(t, R_ADDED, NULL);
		*doc = want;
		want = NULL;
	}
	json_decref(want);
	json_decref(have);
}

/* --system: the policy files. */
static int
system_setup(struct run *r)
{
	json_t *docs[2] = { NULL, NULL };
	char path[PATH_MAX];
	const char *root = r->root ? r->root : "";
	bool failed = false, changed = false;
	size_t i;

	fmt(path, sizeof(path), "%s/etc/firefox/policies/policies.json", root);
	if (add_target(r, "firefox", NULL, path) == NULL)
		return P11E_EXIT_FAILURE;
	firefox_policy(r, &r->t[0], &docs[0]);
	if (r->undo || r->url != NULL) {
		fmt(path, sizeof(path),
		    "%s/etc/chromium/policies/managed/p11enroll.json", root);
		if (add_target(r, "chromium", NULL, path) == NULL) {
			json_decref(docs[0]);
			return P11E_EXIT_FAILURE;
		}
		chromium_policy(r, &r->t[1], &docs[1]);
	}
	for (i = 0; i < r->n; i++)
		failed |= r->t[i].result == R_FAILED;
	for (i = 0; !failed && !r->dry_run && i < r->n; i++) {
		struct target *t = &r->t[i];

		if (docs[i] != NULL &&
		    !write_json(
			t->path, docs[i], t->reason, sizeof(t->reason))) {
			t->result = R_FAILED;
			failed = true;
		} else if (docs[i] == NULL && t->result == R_REMOVED &&
		    unlink(t->path) == -1) {
			target_set(t, R_FAILED, "cannot remove %s: %s", t->path,
			    strerror(errno));
			failed = true;
		} else {
			changed |=
			    t->result == R_ADDED || t->result == R_REMOVED;
		}
	}
	json_decref(docs[0]);
	json_decref(docs[1]);
	report(r, changed);
	if (failed) {
		p11e_error(changed ? "stopped at the first failure: the "
				     "files above it were changed"
				   : "nothing changed");
		return P11E_EXIT_FAILURE;
	}
	return P11E_EXIT_OK;
}

static void
usage(void)
{
	p11e_error(_("usage:\n"
		     "  p11enroll browser setup [--undo] [--dry-run] [--json]\n"
		     "  p11enroll browser setup --system [--undo] [--dry-run] "
		     "[--json] [--root DIR]\n"
		     "                          [--url URL --issuer-cn NAME]"));
}

int
p11e_cmd_browser(struct p11e_cli *cli, int argc, char **argv)
{
	enum { O_UNDO = 256, O_SYSTEM, O_JSON, O_DRY, O_ROOT, O_URL, O_CN };
	static const struct option opts[] = {
		{ "undo", no_argument, NULL, O_UNDO },
		{ "system", no_argument, NULL, O_SYSTEM },
		{ "json", no_argument, NULL, O_JSON },
		{ "dry-run", no_argument, NULL, O_DRY },
		{ "root", required_argument, NULL, O_ROOT },
		{ "url", required_argument, NULL, O_URL },
		{ "issuer-cn", required_argument, NULL, O_CN },
		{ NULL, 0, NULL, 0 },
	};
	static struct run r; /* large: not on the stack */
	int c, rc;

	memset(&r, 0, sizeof(r));
	r.json = cli->json;
	if (argc < 2 || strcmp(argv[1], "setup") != 0) {
		usage();
		return P11E_EXIT_USAGE;
	}
	optind = 0;
	while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		switch (c) {
		case O_UNDO:
			r.undo = true;
			break;
		case O_SYSTEM:
			r.system = true;
			break;
		case O_JSON:
			r.json = true;
			break;
		case O_DRY:
			r.dry_run = true;
			break;
		case O_ROOT:
			r.root = optarg;
			break;
		case O_URL:
			r.url = optarg;
			break;
		case O_CN:
			r.issuer_cn = optarg;
			break;
		default:
			usage();
			return P11E_EXIT_USAGE;
		}
	}
	if (optind < argc - 1 || (r.url == NULL) != (r.issuer_cn == NULL) ||
	    (!r.system && (r.root || r.url)) || (r.undo && r.url) ||
	    (r.root != NULL && r.root[0] != '/')) {
		if (r.url != NULL && r.issuer_cn == NULL)
			p11e_error(_("--url needs --issuer-cn"));
		else if (r.issuer_cn != NULL && r.url == NULL)
			p11e_error(_("--issuer-cn needs --url"));
		usage();
		return P11E_EXIT_USAGE;
	}
	if (realpath(proxy_path, r.proxy_real) == NULL) {
		p11e_error(
		    _("p11-kit-proxy not found at %s: install the Debian "
		      "package p11-kit-modules"),
		    proxy_path);
		return P11E_EXIT_FAILURE;
	}
	rc = r.system ? system_setup(&r) : user_setup(&r);
	run_clear(&r);
	return rc;
}
