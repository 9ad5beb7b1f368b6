/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/notify.h"
#include "agent/pinentry.h"
#include "common/buf.h"
#include "common/conf.h"
#include "common/log.h"
#include "common/secret.h"

/*
 * A pinentry dialog (doc/p11enrolld.8 "PIN"), driven by the poll loop:
 * the agent writes one Assuan command, and the next only once the answer
 * to it came (an answer is a line: OK, ERR, or for GETPIN the D line of
 * the PIN first), so a write never finds the pipe full.  Everything read
 * is kept in a buffer that is wiped (the D line is the PIN); the PIN is
 * decoded into a struct p11e_secret and nothing of the dialog is logged
 * but its outcome.
 */

#define TIMEOUT_DEFAULT 120
/* pinentry closes itself at the timeout (SETTIMEOUT) and restores the
 * terminal; the agent kills it only this much later */
#define TIMEOUT_GRACE 5
#define QUEUE_MAX 16
#define CMDS_MAX 10
/* Assuan's limit of a line, with its LF */
#define LINE_MAX_ 1000
#define PIN_MAX 256

enum step {
	STEP_GREETING, /* waits for the server's OK */
	STEP_COMMAND, /* waits for the answer to cmds[next - 1] */
	STEP_GETPIN, /* waits for D ... then OK, or ERR */
	STEP_BYE, /* waits for OK, then the end of its output */
	STEP_END, /* waits for the end of its output */
};

enum outcome {
	OUT_NONE,
	OUT_PIN,
	OUT_CANCELLED,
	OUT_FAILED,
};

struct command {
	char *line; /* without the LF */
	bool optional; /* an ERR answer is not a failure */
};

static struct dialog {
	pid_t pid; /* 0: no dialog */
	int to, from; /* its stdin (we write), its stdout (we read) */
	struct timespec deadline; /* CLOCK_MONOTONIC */
	unsigned int timeout; /* s, for the message */
	enum step step;
	enum outcome outcome;
	struct command cmds[CMDS_MAX];
	size_t ncmds, next;
	struct p11e_buf in; /* wiped */
	struct p11e_secret *pin;
	char why[300]; /* OUT_FAILED, OUT_CANCELLED */
	char name[P11E_CRED_NAME_MAX + 1];
	char prog[4096];
} d = { .to = -1, .from = -1 };

static char queue[QUEUE_MAX][P11E_CRED_NAME_MAX + 1];
static size_t nqueue;

/* ---- the program ---- */

/* The program [agent] pinentry finds, into prog; false: none. */
static bool
program(const struct p11e_conf *conf, char *prog, size_t len)
{
	const char *v = p11e_conf_get_str(conf, "agent", "pinentry");
	const char *tty = p11e_conf_get_str(conf, "agent", "pinentry-tty");
	const char *dpy = getenv("DISPLAY"), *way = getenv("WAYLAND_DISPLAY");

	if (v != NULL && strcmp(v, "no") == 0)
		return false;
	if (v != NULL && v[0] == '/') {
		if (access(v, X_OK) != 0) {
			p11e_error("[agent] pinentry = %s: %s: no PIN dialog",
			    v, strerror(errno));
			return false;
		}
		snprintf(prog, len, "%s", v);
		return true;
	}
	/* auto: someone to see the dialog, and a pinentry */
	if ((dpy == NULL || dpy[0] == '\0') &&
	    (way == NULL || way[0] == '\0') && tty == NULL) {
		p11e_debug(P11E_DEBUG_AGENT,
		    "pinentry: no display and no [agent] pinentry-tty: "
		    "no PIN dialog");
		return false;
	}
	if (!p11e_find_prog("pinentry", prog, len)) {
		p11e_debug(
		    P11E_DEBUG_AGENT, "pinentry: none on PATH: no PIN dialog");
		return false;
	}
	return true;
}

/* ---- Assuan ---- */

/*
 * s percent-escaped into out (at most outlen - 1 bytes, cut before an
 * escape or a UTF-8 sequence, never in one).
 */
static void
escape(const char *s, char *out, size_t outlen)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0, n;
	const unsigned char *p = (const unsigned char *)s;

	while (*p != '\0') {
		if (*p == '%' || *p < 0x20 || *p == 0x7f) {
			if (o + 3 >= outlen)
				break;
			out[o++] = '%';
			out[o++] = hex[*p >> 4];
			out[o++] = hex[*p & 15];
			p++;
			continue;
		}
		/* a whole UTF-8 sequence or nothing */
		for (n = 1; (p[n] & 0xc0) == 0x80; n++)
			;
		if (o + n >= outlen)
			break;
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	out[o] = '\0';
}

static int
unhex(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The data of a D line (len bytes at p), decoded onto d.pin. */
static bool
decode_pin(const unsigned char *p, size_t len)
{
	unsigned char c;
	size_t i;
	int h, l;

	for (i = 0; i < len; i++) {
		c = p[i];
		if (c == '%') {
			if (i + 2 >= len)
				return false;
			if ((h = unhex(p[i + 1])) < 0 ||
			    (l = unhex(p[i + 2])) < 0)
				return false;
			c = (unsigned char)(h << 4 | l);
			i += 2;
		}
		if (p11e_secret_append(d.pin, &c, 1) != P11E_OK)
			return false;
	}
	p11e_wipe(&c, sizeof(c));
	return true;
}

/* Appends the command verb followed by arg. */
static void
command(const char *verb, const char *arg, bool optional)
{
	size_t len;

	if (d.ncmds >= CMDS_MAX)
		return;
	len = strlen(verb) + strlen(arg) + 1;
	if ((d.cmds[d.ncmds].line = malloc(len)) == NULL)
		return;
	snprintf(d.cmds[d.ncmds].line, len, "%s%s", verb, arg);
	d.cmds[d.ncmds].optional = optional;
	d.ncmds++;
}

/* Whether s is set and has no control character (one Assuan line). */
static bool
plain(const char *s)
{
	const unsigned char *p;

	if (s == NULL || *s == '\0')
		return false;
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
	}
	return true;
}

/* The commands of the dialog for c (none of them holds a secret). */
static void
commands(const struct p11e_conf *conf, const struct p11e_cred *c,
    unsigned int timeout)
{
	const char *tty = p11e_conf_get_str(conf, "agent", "pinentry-tty");
	const char *term = getenv("TERM"), *lc = getenv("LC_ALL");
	char text[700], esc[LINE_MAX_ - 16], num[16];

	if (plain(tty)) {
		command("OPTION ttyname=", tty, false);
		if (plain(term))
			command("OPTION ttytype=", term, true);
	}
	if (lc == NULL || lc[0] == '\0')
		lc = getenv("LC_CTYPE");
	if (lc == NULL || lc[0] == '\0')
		lc = getenv("LANG");
	if (plain(lc))
		command("OPTION lc-ctype=", lc, true);
	snprintf(num, sizeof(num), "%u", timeout);
	command("SETTIMEOUT ", num, true);
	command("SETTITLE ", "p11enroll: token PIN", false);
	snprintf(text, sizeof(text),
	    "Token '%s' (serial %s): its PIN is needed to renew the "
	    "certificate %.300s (service %s), whose renewal is due.\n"
	    "A wrong PIN is not tried again; cancel to enter it later with "
	    "'p11enroll renew --credential %s'.",
	    c->token_label, c->token_serial, c->subject, c->service, c->name);
	escape(text, esc, sizeof(esc));
	command("SETDESC ", esc, false);
	command("SETPROMPT ", "PIN:", false);
	command("GETPIN", "", false);
}

/* ---- the child ---- */

static bool
nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl >= 0 && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0;
}

/* Runs d.prog on two pipes; false (logged) when it could not start. */
static bool
spawn(void)
{
	struct p11e_env e = { { NULL }, 0 };
	static const char *const pass[] = { "PATH", "HOME", "DISPLAY",
		"WAYLAND_DISPLAY", "XAUTHORITY", "XDG_RUNTIME_DIR",
		"XDG_SESSION_TYPE", "DBUS_SESSION_BUS_ADDRESS", "LANG",
		"LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TERM", NULL };
	char *argv[] = { d.prog, NULL };
	int in[2] = { -1, -1 }, out[2] = { -1, -1 }, fd;
	sigset_t none;
	size_t i;
	pid_t pid;

	for (i = 0; pass[i] != NULL; i++)
		p11e_env_pass(&e, pass[i]);
	if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) {
		p11e_error("pinentry: pipe: %s", strerror(errno));
		goto fail;
	}
	if ((pid = fork()) < 0) {
		p11e_error("pinentry: fork: %s", strerror(errno));
		goto fail;
	}
	if (pid == 0) {
		/* the agent blocks the signals its signalfd reads */
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)signal(SIGPIPE, SIG_DFL);
		if (dup2(in[0], 0) < 0 || dup2(out[1], 1) < 0)
			_exit(127);
		if ((fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0)
			(void)dup2(fd, 2);
		closefrom(3);
		execve(argv[0], argv, e.v);
		_exit(127);
	}
	close(in[0]);
	close(out[1]);
	d.pid = pid;
	d.to = in[1];
	d.from = out[0];
	p11e_env_clear(&e);
	if (!nonblock(d.to) || !nonblock(d.from))
		p11e_error("pinentry: O_NONBLOCK: %s", strerror(errno));
	return true;
fail:
	for (i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (out[i] >= 0)
			close(out[i]);
	}
	p11e_env_clear(&e);
	return false;
}

/* The outcome, unless one is set already. */
static void
fail(enum outcome o, const char *why)
{
	if (d.outcome != OUT_NONE)
		return;
	d.outcome = o;
	snprintf(d.why, sizeof(d.why), "%.*s", (int)sizeof(d.why) - 1, why);
}

/* As fail(), with "PROG: " before why. */
static void
fail_prog(const char *why)
{
	char msg[sizeof(d.why) + 210];

	snprintf(msg, sizeof(msg), "%.200s: %s", d.prog, why);
	fail(OUT_FAILED, msg);
}

/* Sends one line; false (and a failure) when it could not. */
static bool
send_line(const char *line)
{
	size_t len = strlen(line);
	char buf[LINE_MAX_ + 1];
	ssize_t n;

	if (len + 1 > sizeof(buf)) {
		fail_prog("a command is too long");
		return false;
	}
	memcpy(buf, line, len);
	buf[len++] = '\n';
	do
		n = write(d.to, buf, len);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len) {
		fail_prog("it stopped reading its commands");
		return false;
	}
	return true;
}

/* The next command, or BYE after the last. */
static void
send_next(void)
{
	if (d.next >= d.ncmds) {
		d.step = send_line("BYE") ? STEP_BYE : STEP_END;
		return;
	}
	if (!send_line(d.cmds[d.next].line)) {
		d.step = STEP_END;
		return;
	}
	d.step = strcmp(d.cmds[d.next].line, "GETPIN") == 0 ? STEP_GETPIN
							    : STEP_COMMAND;
	d.next++;
}

/* The first word of a command, for messages (never its argument). */
static const char *
verb(const char *line, char *out, size_t outlen)
{
	snprintf(out, outlen, "%.*s", (int)strcspn(line, " "), line);
	if (strncmp(line, "OPTION ", 7) == 0)
		snprintf(out, outlen, "OPTION %.*s",
		    (int)strcspn(line + 7, "="), line + 7);
	return out;
}

/* One line (len bytes, no LF) of the server's. */
static void
line(const unsigned char *p, size_t len)
{
	bool ok =
	    len >= 2 && memcmp(p, "OK", 2) == 0 && (len == 2 || p[2] == ' ');
	bool err =
	    len >= 3 && memcmp(p, "ERR", 3) == 0 && (len == 3 || p[3] == ' ');
	char text[200], what[64], msg[300];

	if (len == 0 || p[0] == '#' || (len >= 2 && memcmp(p, "S ", 2) == 0))
		return; /* a comment, a status */
	snprintf(text, sizeof(text), "%.*s", (int)(len > 150 ? 150 : len),
	    err ? (const char *)p : "");
	switch (d.step) {
	case STEP_GREETING:
	case STEP_COMMAND:
		if (ok) {
			send_next();
			return;
		}
		if (err && d.step == STEP_COMMAND &&
		    d.cmds[d.next - 1].optional) {
			p11e_debug(P11E_DEBUG_AGENT, "pinentry: %s: %s",
			    verb(d.cmds[d.next - 1].line, what, sizeof(what)),
			    text);
			send_next();
			return;
		}
		if (d.step == STEP_GREETING) {
			fail_prog("no OK greeting");
		} else {
			snprintf(msg, sizeof(msg), "%s: %s",
			    verb(d.cmds[d.next - 1].line, what, sizeof(what)),
			    err ? text : "an unexpected answer");
			fail_prog(msg);
		}
		break;
	case STEP_GETPIN:
		if (len >= 2 && memcmp(p, "D ", 2) == 0) {
			if (!decode_pin(p + 2, len - 2))
				fail_prog("the PIN is too long or badly "
					  "encoded");
			return;
		}
		if (ok && d.outcome == OUT_NONE) {
			if (p11e_secret_len(d.pin) == 0)
				fail(OUT_CANCELLED,
				    "no PIN was entered in the dialog");
			else
				d.outcome = OUT_PIN;
		} else if (err && strstr(text, "imeout") != NULL) {
			snprintf(msg, sizeof(msg),
			    "nobody entered the PIN in the dialog within %u s",
			    d.timeout);
			fail(OUT_CANCELLED, msg);
		} else if (err &&
		    (strstr(text, "ancel") != NULL ||
			strncmp(text, "ERR 83886179", 12) == 0)) {
			fail(OUT_CANCELLED, "the PIN dialog was cancelled");
		} else if (err) {
			snprintf(msg, sizeof(msg), "GETPIN: %s", text);
			fail_prog(msg);
		} else if (!ok) {
			fail_prog("GETPIN: an unexpected answer");
		}
		break;
	case STEP_BYE:
		d.step = STEP_END;
		return;
	case STEP_END:
		return;
	}
	/* the dialog is over: good-bye */
	d.step = send_line("BYE") ? STEP_BYE : STEP_END;
}

/* ---- the dialog's life ---- */

/*
 * Collects the child.  One still running gets SIGINT first (a text
 * pinentry then cancels and gives its terminal its echo back, which
 * SIGTERM or SIGKILL would leave off), and SIGKILL after 200 ms: the
 * only wait of the agent's for a dialog, bounded.
 */
static void
reap(void)
{
	struct timespec tick = { 0, 10 * 1000 * 1000 };
	int status, i;
	pid_t r;

	if (d.pid <= 0)
		return;
	for (i = 0; i < 21; i++) {
		do
			r = waitpid(d.pid, &status, WNOHANG);
		while (r < 0 && errno == EINTR);
		if (r != 0)
			break;
		if (i == 0)
			(void)kill(d.pid, SIGINT);
		(void)nanosleep(&tick, NULL);
	}
	if (r == 0) {
		(void)kill(d.pid, SIGKILL);
		while (waitpid(d.pid, &status, 0) < 0 && errno == EINTR)
			;
	}
	d.pid = 0;
}

/* Releases the dialog (the PIN wiped); its credential is forgotten. */
static void
release(void)
{
	size_t i;

	if (d.to >= 0)
		close(d.to);
	if (d.from >= 0)
		close(d.from);
	d.to = d.from = -1;
	reap();
	for (i = 0; i < d.ncmds; i++)
		free(d.cmds[i].line);
	d.ncmds = d.next = 0;
	p11e_buf_clear(&d.in);
	p11e_secret_free(d.pin);
	d.pin = NULL;
	d.outcome = OUT_NONE;
	d.why[0] = '\0';
	d.name[0] = '\0';
}

/* Starts the dialog for c; false when none could be. */
static bool
start(struct p11e_agent *agent, const struct p11e_cred *c)
{
	struct timespec now;
	uint64_t t;

	if (!program(agent->conf, d.prog, sizeof(d.prog)))
		return false;
	t = p11e_conf_get_u64(
	    agent->conf, "agent", "pinentry-timeout", TIMEOUT_DEFAULT);
	d.timeout = (unsigned int)t;
	p11e_buf_init_wiped(&d.in, 8 * LINE_MAX_);
	if ((d.pin = p11e_secret_new(PIN_MAX)) == NULL)
		return false;
	snprintf(d.name, sizeof(d.name), "%s", c->name);
	commands(agent->conf, c, d.timeout);
	if (d.ncmds == 0 || !spawn()) {
		release();
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	d.deadline = now;
	d.deadline.tv_sec += (time_t)t + TIMEOUT_GRACE;
	d.step = STEP_GREETING;
	p11e_info("%s: asking for the token's PIN with %s (pid %ld, for %u s)",
	    c->name, d.prog, (long)d.pid, d.timeout);
	return true;
}

/* The next queued credential that still waits for its PIN. */
static void
start_queued(struct p11e_agent *agent)
{
	char detail[512], name[P11E_CRED_NAME_MAX + 1];
	struct p11e_cred c;
	bool started = false;

	while (!started && nqueue > 0) {
		snprintf(name, sizeof(name), "%s", queue[0]);
		memmove(queue[0], queue[1], (nqueue - 1) * sizeof(queue[0]));
		nqueue--;
		p11e_cred_init(&c);
		if (p11e_journal_load(agent->state_dir, name, &c, detail,
			sizeof(detail)) == P11E_OK &&
		    c.wait == P11E_WAIT_PIN)
			started = start(agent, &c);
		p11e_cred_clear(&c);
	}
}

/* The dialog is over: its outcome to the renewal, then the next one. */
static void
finish(struct p11e_agent *agent)
{
	char name[P11E_CRED_NAME_MAX + 1], why[sizeof(d.why) + 64];
	enum outcome o = d.outcome;
	struct p11e_secret *pin = d.pin;

	snprintf(name, sizeof(name), "%s", d.name);
	if (o == OUT_NONE)
		snprintf(
		    d.why, sizeof(d.why), "%.200s ended without a PIN", d.prog);
	snprintf(why, sizeof(why), "%s", d.why);
	d.pin = NULL; /* kept for the renewal below, then wiped */
	release();
	if (o == OUT_PIN) {
		p11e_info(
		    "%s: a PIN was entered in the dialog: renewing", name);
		p11e_agent_renew_pin(agent, name, pin);
	} else {
		p11e_agent_pin_unanswered(agent, name, why);
	}
	p11e_secret_free(pin);
	agent->reschedule = 1;
	start_queued(agent);
}

bool
p11e_pinentry_ask(struct p11e_agent *agent, const struct p11e_cred *c)
{
	char prog[4096];
	size_t i;

	if (d.pid > 0) {
		if (strcmp(d.name, c->name) == 0)
			return true;
		for (i = 0; i < nqueue; i++) {
			if (strcmp(queue[i], c->name) == 0)
				return true;
		}
		if (nqueue == QUEUE_MAX ||
		    !program(agent->conf, prog, sizeof(prog)))
			return false;
		snprintf(queue[nqueue++], sizeof(queue[0]), "%s", c->name);
		p11e_info("%s: its PIN dialog waits for the one of %s to end",
		    c->name, d.name);
		return true;
	}
	return start(agent, c);
}

bool
p11e_pinentry_busy(void)
{
	return d.pid > 0 || nqueue > 0;
}

int
p11e_pinentry_fd(void)
{
	return d.pid > 0 ? d.from : -1;
}

int
p11e_pinentry_timeout_ms(void)
{
	struct timespec now;
	long long ms;

	if (d.pid <= 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = ((long long)d.deadline.tv_sec - now.tv_sec) * 1000 +
	    (d.deadline.tv_nsec - now.tv_nsec) / 1000000;
	if (ms < 0)
		return 0;
	return ms > 3600 * 1000 ? 3600 * 1000 : (int)ms + 1;
}

void
p11e_pinentry_io(struct p11e_agent *agent)
{
	unsigned char chunk[1024], *nl;
	ssize_t n;
	size_t len;

	if (d.pid <= 0)
		return;
	for (;;) {
		n = read(d.from, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			break;
		if (n <= 0) {
			/* the end of its output: it exited */
			if (d.outcome == OUT_NONE && d.step != STEP_END &&
			    d.step != STEP_BYE)
				fail_prog("it ended during the dialog");
			finish(agent);
			return;
		}
		if (p11e_buf_append(&d.in, chunk, (size_t)n) != P11E_OK) {
			p11e_wipe(chunk, sizeof(chunk));
			fail_prog("it sent a line too long");
			finish(agent);
			return;
		}
		p11e_wipe(chunk, sizeof(chunk));
		while (d.in.len > 0 &&
		    (nl = memchr(d.in.data, '\n', d.in.len)) != NULL) {
			len = (size_t)(nl - d.in.data);
			line(d.in.data, len);
			p11e_buf_consume(&d.in, len + 1);
		}
	}
}

void
p11e_pinentry_tick(struct p11e_agent *agent)
{
	char msg[120];

	if (d.pid <= 0 || p11e_pinentry_timeout_ms() > 0)
		return;
	snprintf(msg, sizeof(msg),
	    "nobody entered the PIN in the dialog within %u s (%.40s was "
	    "stopped)",
	    d.timeout, d.prog[0] == '/' ? strrchr(d.prog, '/') + 1 : d.prog);
	/* the PIN, if it came, is not used after the deadline */
	d.outcome = OUT_NONE;
	fail(OUT_CANCELLED, msg);
	finish(agent);
}

void
p11e_pinentry_forget(struct p11e_agent *agent, const char *name)
{
	size_t i;

	for (i = 0; i < nqueue; i++) {
		if (strcmp(queue[i], name) == 0) {
			memmove(queue[i], queue[i + 1],
			    (nqueue - i - 1) * sizeof(queue[0]));
			nqueue--;
			break;
		}
	}
	if (d.pid > 0 && strcmp(d.name, name) == 0) {
		p11e_info(
		    "%s: the PIN came otherwise: the dialog is closed", name);
		release();
		start_queued(agent);
	}
}

void
p11e_pinentry_stop(void)
{
	nqueue = 0;
	if (d.pid > 0)
		release();
}
