/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/conf.h"

/*
 * Debian's libinih calls the reader with num = 200 (INI_MAX_LINE): a line
 * may hold 198 bytes before its newline.  p11enroll.conf(5) says so too.
 */
#define LINE_MAX_BYTES 198

#define MAX_PATHS 32

struct fixture {
	char dir[256];
	char main_path[PATH_MAX];
	char *paths[MAX_PATHS]; /* created, removed in reverse order */
	size_t n_paths;
	char problems[16384]; /* "file:line: msg\n", dir shown as "D" */
	size_t len;
	unsigned int count;
};

static int
setup(void **state)
{
	struct fixture *f;
	const char *tmp = getenv("TMPDIR");

	f = calloc(1, sizeof(*f));
	assert_non_null(f);
	if (tmp == NULL || *tmp == '\0')
		tmp = "/tmp";
	assert_true((size_t)snprintf(f->dir, sizeof(f->dir),
			"%s/test-conf.XXXXXX", tmp) < sizeof(f->dir));
	assert_non_null(mkdtemp(f->dir));
	snprintf(
	    f->main_path, sizeof(f->main_path), "%s/p11enroll.conf", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	size_t i;

	for (i = f->n_paths; i > 0; i--) {
		if (lstat(f->paths[i - 1], &st) == 0 && S_ISDIR(st.st_mode))
			assert_int_equal(rmdir(f->paths[i - 1]), 0);
		else
			assert_int_equal(unlink(f->paths[i - 1]), 0);
		free(f->paths[i - 1]);
	}
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static char *
add_path(struct fixture *f, const char *rel)
{
	char path[PATH_MAX];

	assert_true(f->n_paths < MAX_PATHS);
	snprintf(path, sizeof(path), "%s/%s", f->dir, rel);
	f->paths[f->n_paths] = strdup(path);
	assert_non_null(f->paths[f->n_paths]);
	return f->paths[f->n_paths++];
}

static void
put_n(struct fixture *f, const char *rel, const void *data, size_t len)
{
	const char *path = add_path(f, rel);
	FILE *fp = fopen(path, "w");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void
put(struct fixture *f, const char *rel, const char *text)
{
	put_n(f, rel, text, strlen(text));
}

static void
make_dir(struct fixture *f, const char *rel)
{
	assert_int_equal(mkdir(add_path(f, rel), 0700), 0);
}

/* Collects problems, with the temporary directory shown as "D". */
static void
collect(void *data, const char *file, unsigned int line, const char *msg)
{
	struct fixture *f = data;
	size_t dlen = strlen(f->dir), room = sizeof(f->problems) - f->len;
	const char *d = "";
	char where[32] = "";
	int n;

	if (strncmp(file, f->dir, dlen) == 0) {
		d = "D";
		file += dlen;
	}
	if (line > 0)
		snprintf(where, sizeof(where), ":%u", line);
	n = snprintf(
	    f->problems + f->len, room, "%s%s%s: %s\n", d, file, where, msg);
	assert_true(n > 0 && (size_t)n < room);
	f->len += (size_t)n;
	f->count++;
}

static enum p11e_err
load(struct fixture *f, struct p11e_conf **conf)
{
	f->len = 0;
	f->count = 0;
	f->problems[0] = '\0';
	*conf = (struct p11e_conf *)(uintptr_t)1; /* must be cleared */
	return p11e_conf_load(
	    p11e_agent_schema, f->main_path, NULL, collect, f, conf);
}

/* Loads expecting failure with exactly the problems expected. */
static void
load_fails(struct fixture *f, const char *expected)
{
	struct p11e_conf *conf;

	assert_int_equal(load(f, &conf), P11E_ERR_CONFIG);
	assert_null(conf);
	assert_string_equal(f->problems, expected);
}

static void
load_buf_fails(const char *text, size_t len, const char *expected)
{
	struct fixture f = { .dir = "/nowhere" };
	struct p11e_conf *conf = (struct p11e_conf *)(uintptr_t)1;

	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text,
			     len, collect, &f, &conf),
	    P11E_ERR_CONFIG);
	assert_null(conf);
	assert_string_equal(f.problems, expected);
}

#define PIN "sha256//47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="

static void
test_good(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf;
	unsigned int line;

	put(f, "p11enroll.conf",
	    "; p11enroll configuration\n"
	    "# another comment\n"
	    "\n"
	    "[agent]\n"
	    "state-dir = /var/lib/p11enroll ; an inline comment\n"
	    "log-level=verbose\n"
	    "[cli] # a comment after the header\n"
	    "autostart = no\r\n"
	    "[ service  bank ]\n"
	    "url = https://ra.example.jp/base?a=b#frag\n"
	    "server-pin = " PIN "\n"
	    "ca-file = /etc/ssl/bank.pem\n"
	    "proxy = http://proxy.example:3128\n"
	    "token = pkcs11:token=My%20Token;serial=42\n"
	    "\t\n");
	assert_int_equal(load(f, &conf), P11E_OK);
	assert_string_equal(f->problems, "");
	assert_non_null(conf);
	assert_string_equal(p11e_conf_get_str(conf, "agent", "state-dir"),
	    "/var/lib/p11enroll");
	assert_string_equal(
	    p11e_conf_get_str(conf, "agent", "log-level"), "verbose");
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", true));
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "url"),
	    "https://ra.example.jp/base?a=b#frag");
	assert_string_equal(
	    p11e_conf_get_str(conf, "service bank", "server-pin"), PIN);
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "ca-file"),
	    "/etc/ssl/bank.pem");
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "proxy"),
	    "http://proxy.example:3128");
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "token"),
	    "pkcs11:token=My%20Token;serial=42");
	assert_null(p11e_conf_get_str(conf, "service other", "url"));
	assert_string_equal(
	    p11e_conf_origin(conf, "cli", "autostart", &line) + strlen(f->dir),
	    "/p11enroll.conf");
	assert_int_equal(line, 8);
	p11e_conf_free(conf);
}

static void
test_missing_files(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf;
	unsigned int line = 9;

	/* neither the main file nor conf.d: the defaults */
	assert_int_equal(load(f, &conf), P11E_OK);
	assert_non_null(conf);
	assert_string_equal(f->problems, "");
	assert_null(p11e_conf_get_str(conf, "agent", "state-dir"));
	assert_true(p11e_conf_get_bool(conf, "cli", "autostart", true));
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", false));
	assert_int_equal(p11e_conf_sections(conf, "service", NULL, NULL), 0);
	assert_null(p11e_conf_origin(conf, "cli", "autostart", &line));
	assert_int_equal(line, 0);
	p11e_conf_free(conf);
	p11e_conf_free(NULL);

	/* only a drop-in */
	make_dir(f, "conf.d");
	put(f, "conf.d/10-a.conf", "[cli]\nautostart = no\n");
	assert_int_equal(load(f, &conf), P11E_OK);
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", true));
	p11e_conf_free(conf);
}

static void
test_dropins(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf;
	unsigned int line;

	put(f, "p11enroll.conf",
	    "[cli]\nautostart = yes\n"
	    "[service bank]\nurl = https://main.example\n"
	    "proxy = http://main-proxy\n");
	make_dir(f, "conf.d");
	put(f, "conf.d/20-b.conf", "[cli]\n\nautostart = no\n");
	put(f, "conf.d/10-a.conf",
	    "[cli]\nautostart = on\n[service bank]\nurl = https://a.example\n");
	/* byte order, not numeric and not the locale's: "10" < "9" < "Z" */
	put(f, "conf.d/9.conf", "[service bank]\nproxy = http://nine\n");
	put(f, "conf.d/Z.conf", "[service bank]\nproxy = http://zed\n");
	/* not read: wrong suffix, hidden, or nothing before .conf */
	put(f, "conf.d/30-c.conf.disabled", "[bogus]\n");
	put(f, "conf.d/.40-hidden.conf", "[bogus]\n");
	put(f, "conf.d/.conf", "[bogus]\n");
	put(f, "conf.d/README", "[bogus]\n");
	assert_int_equal(load(f, &conf), P11E_OK);
	assert_string_equal(f->problems, "");
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", true));
	assert_string_equal(
	    p11e_conf_origin(conf, "cli", "autostart", &line) + strlen(f->dir),
	    "/conf.d/20-b.conf");
	assert_int_equal(line, 3);
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "url"),
	    "https://a.example");
	assert_string_equal(
	    p11e_conf_get_str(conf, "service bank", "proxy"), "http://zed");
	p11e_conf_free(conf);
}

static void
test_dropin_dir_argument(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf = NULL;
	char dir[PATH_MAX];

	make_dir(f, "elsewhere");
	put(f, "elsewhere/a.conf", "[cli]\nautostart = no\n");
	snprintf(dir, sizeof(dir), "%s/elsewhere", f->dir);
	assert_int_equal(p11e_conf_load(p11e_agent_schema, f->main_path, dir,
			     collect, f, &conf),
	    P11E_OK);
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", true));
	p11e_conf_free(conf);
}

static void
test_unknown_key(void **state)
{
	struct fixture *f = *state;

	make_dir(f, "conf.d");
	put(f, "conf.d/10-bank.conf",
	    "[service bank]\nurl = https://a.example\nurll = https://b\n");
	load_fails(f,
	    "D/conf.d/10-bank.conf:3: unknown key 'urll' in "
	    "[service bank]\n");
	assert_int_equal(f->count, 1);
}

static void
test_unknown_section(void **state)
{
	struct fixture *f = *state;

	/* the keys of a refused section are not reported again */
	put(f, "p11enroll.conf",
	    "[agnet]\nstate-dir = relative\nwhatever = 1\n"
	    "[service]\nurl = x\n"
	    "[service b@d]\nurl = x\n"
	    "[service two words]\n"
	    "[agent extra]\n"
	    "[]\n"
	    "[cli]\nautostart = maybe\n");
	load_fails(f,
	    "D/p11enroll.conf:1: unknown section [agnet]\n"
	    "D/p11enroll.conf:4: missing name in [service]: expected "
	    "[service NAME]\n"
	    "D/p11enroll.conf:6: bad name in [service b@d]: expected 1 to 64 "
	    "of A-Z a-z 0-9 . _ -\n"
	    "D/p11enroll.conf:8: bad name in [service two words]: expected 1 "
	    "to 64 of A-Z a-z 0-9 . _ -\n"
	    "D/p11enroll.conf:9: unknown section [agent extra]\n"
	    "D/p11enroll.conf:10: unknown section []\n"
	    "D/p11enroll.conf:12: bad value for 'autostart': expected yes "
	    "or no\n");
}

static void
collect_names(void *data, const char *name)
{
	char *out = data;
	size_t len = strlen(out);

	snprintf(out + len, 512 - len, "%s,", name);
}

static void
test_named_sections(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf;
	char names[512] = "";
	char name64[65], header[128], expected[256];

	/* 64 characters: longer than inih's own 49-byte section buffer */
	memset(name64, 'n', 64);
	name64[64] = '\0';
	snprintf(header, sizeof(header), "[service %s]\n[cli]\n", name64);
	make_dir(f, "conf.d");
	put(f, "p11enroll.conf",
	    "[service zeta]\nurl = https://z\n"
	    "[service alpha]\n"
	    "[agent]\n");
	put(f, "conf.d/a.conf", "[service Bank-2.x_y]\nurl = https://b\n");
	put(f, "conf.d/b.conf", header);
	assert_int_equal(load(f, &conf), P11E_OK);
	assert_int_equal(
	    p11e_conf_sections(conf, "service", collect_names, names), 4);
	snprintf(header, sizeof(header), "Bank-2.x_y,alpha,%s,zeta,", name64);
	assert_string_equal(names, header);
	assert_int_equal(p11e_conf_sections(conf, "agent", NULL, NULL), 0);
	assert_int_equal(p11e_conf_sections(conf, "serv", NULL, NULL), 0);
	assert_string_equal(
	    p11e_conf_get_str(conf, "service Bank-2.x_y", "url"), "https://b");
	p11e_conf_free(conf);

	/* 65 characters */
	snprintf(header, sizeof(header), "[service %sn]\n", name64);
	snprintf(expected, sizeof(expected),
	    "B:1: bad name in [service %sn]: expected 1 to 64 of A-Z a-z 0-9 "
	    ". _ -\n",
	    name64);
	load_buf_fails(header, strlen(header), expected);
}

static void
test_bad_values(void **state)
{
	struct fixture *f = *state;

	put(f, "p11enroll.conf",
	    "[agent]\n"
	    "state-dir = var/lib\n"
	    "log-level = loud\n"
	    "[cli]\n"
	    "autostart = maybe\n"
	    "[service bank]\n"
	    "url = http://ra.example\n"
	    "url = https://\n"
	    "ca-file =\n"
	    "token = slot=1\n"
	    "proxy = a\tb\n");
	load_fails(f,
	    "D/p11enroll.conf:2: bad value for 'state-dir': expected an "
	    "absolute path\n"
	    "D/p11enroll.conf:3: bad value for 'log-level': expected one of "
	    "error, info, verbose, debug\n"
	    "D/p11enroll.conf:5: bad value for 'autostart': expected yes or "
	    "no\n"
	    "D/p11enroll.conf:7: bad value for 'url': expected an https:// "
	    "URL\n"
	    "D/p11enroll.conf:8: bad value for 'url': expected an https:// "
	    "URL\n"
	    "D/p11enroll.conf:9: bad value for 'ca-file': empty value\n"
	    "D/p11enroll.conf:10: bad value for 'token': expected a value "
	    "starting with 'pkcs11:'\n"
	    "D/p11enroll.conf:11: bad value for 'proxy': control character "
	    "in value\n");
	assert_int_equal(f->count, 8);
}

static void
test_dropin_not_dir(void **state)
{
	struct fixture *f = *state;

	put(f, "conf.d", "");
	load_fails(f, "D/conf.d: cannot read directory: Not a directory\n");
}

/* A line of exactly len bytes (before its newline) setting a proxy. */
static char *
long_line(size_t len)
{
	char *s = malloc(len + 2);

	assert_non_null(s);
	assert_true(len > 8);
	memcpy(s, "proxy = ", 8);
	memset(s + 8, 'p', len - 8);
	s[len] = '\n';
	s[len + 1] = '\0';
	return s;
}

static void
test_long_lines(void **state)
{
	struct fixture *f = *state;
	struct p11e_conf *conf;
	char text[1024], expected[256];
	char *line;

	/* at the limit: accepted whole, also without a final newline */
	line = long_line(LINE_MAX_BYTES);
	snprintf(text, sizeof(text), "[service bank]\n%s", line);
	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text,
			     strlen(text), NULL, NULL, &conf),
	    P11E_OK);
	assert_int_equal(
	    strlen(p11e_conf_get_str(conf, "service bank", "proxy")),
	    LINE_MAX_BYTES - 8);
	p11e_conf_free(conf);
	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text,
			     strlen(text) - 1, NULL, NULL, &conf),
	    P11E_OK);
	assert_int_equal(
	    strlen(p11e_conf_get_str(conf, "service bank", "proxy")),
	    LINE_MAX_BYTES - 8);
	p11e_conf_free(conf);
	free(line);

	/* one more, and much more: refused, and the file is read no
	 * further (the unknown key after it is not reported) */
	line = long_line(LINE_MAX_BYTES + 1);
	snprintf(text, sizeof(text), "[service bank]\n%sbogus = 1\n", line);
	put(f, "p11enroll.conf", text);
	snprintf(expected, sizeof(expected),
	    "D/p11enroll.conf:2: line too long (%d bytes; at most %d)\n",
	    LINE_MAX_BYTES + 1, LINE_MAX_BYTES);
	load_fails(f, expected);
	free(line);

	line = long_line(250);
	snprintf(text, sizeof(text), "[service bank]\n\n%sbogus = 1\n", line);
	snprintf(expected, sizeof(expected),
	    "B:3: line too long (250 bytes; at most %d)\n", LINE_MAX_BYTES);
	load_buf_fails(text, strlen(text), expected);
	/* the same at the end of the file without a newline */
	snprintf(text, sizeof(text), "[service bank]\n\n%s", line);
	load_buf_fails(text, strlen(text) - 1, expected);
	free(line);

	/* leading space counts: the line is refused, never cut */
	snprintf(text, sizeof(text), "[cli]\n%*sautostart = no\n",
	    LINE_MAX_BYTES, "");
	snprintf(expected, sizeof(expected),
	    "B:2: line too long (%d bytes; at most %d)\n", LINE_MAX_BYTES + 14,
	    LINE_MAX_BYTES);
	load_buf_fails(text, strlen(text), expected);
}

static void
test_no_continuation(void **state)
{
	struct p11e_conf *conf;
	const char *text = "[service bank]\n"
			   "url = https://a.example\n"
			   "    token = pkcs11:model=x\n"
			   "\tproxy = http://p\n"
			   "  ; an indented comment\n"
			   "   [cli]\n"
			   "  autostart = no\n";

	(void)state;
	/* indented lines are ordinary lines, never part of the value above */
	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text,
			     strlen(text), NULL, NULL, &conf),
	    P11E_OK);
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "url"),
	    "https://a.example");
	assert_string_equal(
	    p11e_conf_get_str(conf, "service bank", "token"), "pkcs11:model=x");
	assert_string_equal(
	    p11e_conf_get_str(conf, "service bank", "proxy"), "http://p");
	assert_false(p11e_conf_get_bool(conf, "cli", "autostart", true));
	p11e_conf_free(conf);

	/* what inih would have joined to the url is a syntax error */
	text = "[service bank]\nurl = https://a.example\n  /more\n";
	load_buf_fails(
	    text, strlen(text), "B:3: syntax error: expected key = value\n");
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "[agent]\nstate-dir = /x\0y\nbogus = 1\n";

	(void)state;
	load_buf_fails(text, sizeof(text) - 1, "B:2: NUL byte in line\n");
}

static void
test_comments(void **state)
{
	struct p11e_conf *conf;
	const char *text = "; semicolon\n"
			   "# hash\n"
			   "[service bank] ; comment\n"
			   "url = https://a.example/x;y ; comment\n"
			   "proxy = http://p/#frag # not a comment\n"
			   "#url = https://commented.example\n";

	(void)state;
	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text,
			     strlen(text), NULL, NULL, &conf),
	    P11E_OK);
	/* ';' starts a comment only after white space; '#' only a line */
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "url"),
	    "https://a.example/x;y");
	assert_string_equal(p11e_conf_get_str(conf, "service bank", "proxy"),
	    "http://p/#frag # not a comment");
	p11e_conf_free(conf);
}

static void
test_syntax(void **state)
{
	const char *text = "autostart = no\n"
			   "[cli\n"
			   "autostart = no\n"
			   "[cli] junk\n"
			   "[cli]\n"
			   "justaword\n"
			   "= no\n"
			   "autostart : no\n";

	(void)state;
	load_buf_fails(text, strlen(text),
	    "B:1: key 'autostart' outside of a section\n"
	    "B:2: syntax error: expected [section]\n"
	    "B:4: syntax error: expected [section]\n"
	    "B:6: syntax error: expected key = value\n"
	    "B:7: syntax error: expected key = value\n");
}

static void
test_multiple_problems(void **state)
{
	struct fixture *f = *state;

	put(f, "p11enroll.conf",
	    "[agent]\nstate-dir = /ok\nlog-level = chatty\n");
	make_dir(f, "conf.d");
	put(f, "conf.d/10-bank.conf",
	    "[service bank]\n"
	    "url = https://a\n"
	    "urll = https://b\n"
	    "\n"
	    "server-pin = sha256//short=\n");
	put(f, "conf.d/20-x.conf", "[x]\n");
	load_fails(f,
	    "D/p11enroll.conf:3: bad value for 'log-level': expected one of "
	    "error, info, verbose, debug\n"
	    "D/conf.d/10-bank.conf:3: unknown key 'urll' in [service bank]\n"
	    "D/conf.d/10-bank.conf:5: bad value for 'server-pin': expected "
	    "sha256// and the base64 of a SHA-256 digest (44 characters)\n"
	    "D/conf.d/20-x.conf:1: unknown section [x]\n");
	assert_int_equal(f->count, 4);
}

static void
test_too_many_problems(void **state)
{
	struct fixture f = { .dir = "/nowhere" };
	struct p11e_conf *conf;
	char text[4096];
	size_t i, o = 0;

	(void)state;
	for (i = 0; i < 150; i++)
		o += (size_t)snprintf(text + o, sizeof(text) - o, "x%zu\n", i);
	assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B", text, o,
			     collect, &f, &conf),
	    P11E_ERR_CONFIG);
	assert_int_equal(f.count, P11E_CONF_PROBLEMS_MAX + 1);
	assert_non_null(strstr(f.problems,
	    "B:100: syntax error: expected key = value\n"
	    "B: too many problems; stopped reading\n"));
}

static void
test_duplicate(void **state)
{
	const char *text = "[service bank]\n"
			   "url = https://a\n"
			   "[agent]\n"
			   "[service bank]\n"
			   "url = https://b\n";

	(void)state;
	load_buf_fails(text, strlen(text),
	    "B:5: duplicate key 'url' in [service bank] (first on line 2)\n");
}

static void
test_server_pin(void **state)
{
	static const struct {
		const char *pin;
		bool ok;
	} cases[] = {
		{ PIN, true },
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		    true },
		/* the unused low bits of the last character are not zero */
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB=",
		    false },
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		    false },
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    false },
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
		    false },
		{ "sha256//AAAAAAAAAAAAAAAAAAAA*AAAAAAAAAAAAAAAAAAAAAA=",
		    false },
		{ "sha256//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
		    false },
		{ "sha1//AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", false },
		{ "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=", false },
		{ PIN ";" PIN, false },
	};
	struct p11e_conf *conf;
	char text[256];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text),
		    "[service bank]\nserver-pin = %s\n", cases[i].pin);
		if (cases[i].ok) {
			assert_int_equal(
			    p11e_conf_load_buffer(p11e_agent_schema, "B", text,
				strlen(text), NULL, NULL, &conf),
			    P11E_OK);
			assert_string_equal(p11e_conf_get_str(conf,
						"service bank", "server-pin"),
			    cases[i].pin);
			p11e_conf_free(conf);
		} else {
			load_buf_fails(text, strlen(text),
			    "B:2: bad value for 'server-pin': expected "
			    "sha256// and the base64 of a SHA-256 digest "
			    "(44 characters)\n");
		}
	}
}

static const struct p11e_conf_key test_schema[] = {
	{ "t", "n", P11E_CONF_UINT, 1, 10, NULL, "a number" },
	{ "t", "d", P11E_CONF_DURATION, 60, 86400, NULL, "a duration" },
	{ "t", "s", P11E_CONF_STRING, 0, 4, NULL, "a short string" },
	{ "t", "b", P11E_CONF_BOOL, 0, 0, NULL, "a flag" },
	{ NULL, NULL, P11E_CONF_STRING, 0, 0, NULL, NULL },
};

static void
test_numbers(void **state)
{
	struct fixture f = { .dir = "/nowhere" };
	struct p11e_conf *conf;
	const char *text = "[t]\nn = 10\nd = 15m\ns = abcd\nb = true\n";

	(void)state;
	assert_int_equal(p11e_conf_load_buffer(test_schema, "B", text,
			     strlen(text), NULL, NULL, &conf),
	    P11E_OK);
	assert_int_equal(p11e_conf_get_u64(conf, "t", "n", 0), 10);
	assert_int_equal(p11e_conf_get_u64(conf, "t", "d", 0), 900);
	assert_true(p11e_conf_get_bool(conf, "t", "b", false));
	p11e_conf_free(conf);
	assert_int_equal(p11e_conf_get_u64(NULL, "t", "n", 7), 7);

	text = "[t]\nn = 11\nn = 0x1\nd = 2d\nd = 59\ns = abcde\nb = Yes\n";
	assert_int_equal(p11e_conf_load_buffer(test_schema, "B", text,
			     strlen(text), collect, &f, &conf),
	    P11E_ERR_CONFIG);
	assert_string_equal(f.problems,
	    "B:2: bad value for 'n': expected a number from 1 to 10\n"
	    "B:3: bad value for 'n': expected a number from 1 to 10\n"
	    "B:4: bad value for 'd': expected a duration from 60 to 86400 "
	    "seconds (units s, m, h, d)\n"
	    "B:5: bad value for 'd': expected a duration from 60 to 86400 "
	    "seconds (units s, m, h, d)\n"
	    "B:6: bad value for 's': longer than 4 bytes\n"
	    "B:7: bad value for 'b': expected yes or no\n");
}

static void
test_not_regular(void **state)
{
	struct fixture *f = *state;
	char expected[256];

	make_dir(f, "p11enroll.conf");
	make_dir(f, "conf.d");
	make_dir(f, "conf.d/x.conf");
	load_fails(f,
	    "D/p11enroll.conf: not a regular file\n"
	    "D/conf.d/x.conf: not a regular file\n");
	if (geteuid() == 0)
		return; /* root reads files whatever their mode */
	put(f, "conf.d/y.conf", "[cli]\n");
	assert_int_equal(chmod(f->paths[f->n_paths - 1], 0), 0);
	snprintf(expected, sizeof(expected),
	    "D/p11enroll.conf: not a regular file\n"
	    "D/conf.d/x.conf: not a regular file\n"
	    "D/conf.d/y.conf: cannot open: %s\n",
	    strerror(EACCES));
	load_fails(f, expected);
}

static void
test_default_path(void **state)
{
	const char *p;

	(void)state;
	assert_int_equal(setenv("P11ENROLL_CONF", "/x/y.conf", 1), 0);
	assert_string_equal(p11e_conf_default_path(), "/x/y.conf");
	assert_int_equal(setenv("P11ENROLL_CONF", "", 1), 0);
	p = p11e_conf_default_path();
	assert_string_equal(p, SYSCONFDIR "/p11enroll/p11enroll.conf");
	assert_int_equal(unsetenv("P11ENROLL_CONF"), 0);
	assert_string_equal(p11e_conf_default_path(), p);
}

/* A word of the list or an absolute path ([agent] pinentry). */
static void
test_word_or_path(void **state)
{
	static const char *const good[] = { "auto", "no",
		"/usr/bin/pinentry-tty" };
	struct p11e_conf *conf;
	char text[128];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(
		    text, sizeof(text), "[agent]\npinentry = %s\n", good[i]);
		assert_int_equal(p11e_conf_load_buffer(p11e_agent_schema, "B",
				     text, strlen(text), NULL, NULL, &conf),
		    P11E_OK);
		assert_string_equal(
		    p11e_conf_get_str(conf, "agent", "pinentry"), good[i]);
		p11e_conf_free(conf);
	}
	snprintf(text, sizeof(text),
	    "[agent]\npinentry = yes\npinentry-tty = pts/3\n");
	load_buf_fails(text, strlen(text),
	    "B:2: bad value for 'pinentry': expected auto, no or an "
	    "absolute path\n"
	    "B:3: bad value for 'pinentry-tty': expected an absolute "
	    "path\n");
}

#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_good),
		T(test_missing_files),
		T(test_dropins),
		T(test_dropin_dir_argument),
		T(test_unknown_key),
		T(test_unknown_section),
		T(test_named_sections),
		T(test_bad_values),
		T(test_dropin_not_dir),
		T(test_long_lines),
		T(test_no_continuation),
		T(test_nul_byte),
		T(test_comments),
		T(test_syntax),
		T(test_multiple_problems),
		T(test_too_many_problems),
		T(test_duplicate),
		T(test_server_pin),
		T(test_numbers),
		T(test_not_regular),
		T(test_default_path),
		T(test_word_or_path),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
