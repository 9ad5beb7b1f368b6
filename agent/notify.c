/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent/notify.h"
#include "common/conf.h"
#include "common/log.h"

/*
 * What the agent tells the user without being asked (doc/p11enrolld.8
 * "Notices"): the log, a desktop notification, the hook.  Helpers run
 * detached (a double fork: the agent waits only for the middle process,
 * which exits at once), with no shell, stdin/stdout/stderr on /dev/null,
 * the signal mask cleared and no descriptor of the agent, in an
 * environment built here (never a secret: none is at hand).
 */

static const char *const event_names[] = {
	[P11E_EVENT_EXPIRY_NOTICE] = "expiry-notice",
	[P11E_EVENT_EXPIRED] = "expired",
	[P11E_EVENT_RENEWED] = "renewed",
	[P11E_EVENT_RENEWAL_FAILED] = "renewal-failed",
	[P11E_EVENT_PIN_NEEDED] = "pin-needed",
};

void
p11e_env_add(struct p11e_env *e, const char *name, const char *value)
{
	size_t len;

	if (value == NULL || e->n >= P11E_ENV_MAX)
		return;
	len = strlen(name) + strlen(value) + 2;
	if ((e->v[e->n] = malloc(len)) == NULL)
		return;
	snprintf(e->v[e->n], len, "%s=%s", name, value);
	e->n++;
	e->v[e->n] = NULL;
}

void
p11e_env_pass(struct p11e_env *e, const char *name)
{
	p11e_env_add(e, name, getenv(name));
}

void
p11e_env_clear(struct p11e_env *e)
{
	size_t i;

	for (i = 0; i < e->n; i++)
		free(e->v[i]);
	e->n = 0;
	e->v[0] = NULL;
}

bool
p11e_find_prog(const char *name, char *out, size_t outlen)
{
	const char *path = getenv("PATH"), *p, *end;

	if (path == NULL || path[0] == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; *p != '\0'; p = *end ? end + 1 : end) {
		end = strchr(p, ':');
		if (end == NULL)
			end = p + strlen(p);
		if (end > p && *p == '/' &&
		    (size_t)snprintf(out, outlen, "%.*s/%s", (int)(end - p), p,
			name) < outlen &&
		    access(out, X_OK) == 0)
			return true;
	}
	return false;
}

/*
 * Runs argv[0] (an absolute path) detached.  Returns false when it could
 * not be started (logged).
 */
static bool
spawn(char *const argv[], char *const envp[])
{
	sigset_t none;
	pid_t pid, gpid;
	int status, fd;

	if ((pid = fork()) < 0) {
		p11e_error(
		    "cannot start %s: fork: %s", argv[0], strerror(errno));
		return false;
	}
	if (pid == 0) {
		gpid = fork();
		if (gpid != 0)
			_exit(gpid < 0 ? 1 : 0);
		sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		(void)setsid();
		if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
			(void)dup2(fd, 0);
			(void)dup2(fd, 1);
			(void)dup2(fd, 2);
		}
		closefrom(3);
		execve(argv[0], argv, envp);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		p11e_error("cannot start %s: fork failed", argv[0]);
		return false;
	}
	return true;
}

/* A GVariant string literal for gdbus call: 'text' with \ and ' escaped. */
static char *
gvariant_str(const char *s)
{
	size_t n = strlen(s), i, o = 0;
	char *out = malloc(2 * n + 3);

	if (out == NULL)
		return NULL;
	out[o++] = '\'';
	for (i = 0; i < n; i++) {
		if (s[i] == '\\' || s[i] == '\'')
			out[o++] = '\\';
		out[o++] = s[i];
	}
	out[o++] = '\'';
	out[o] = '\0';
	return out;
}

/*
 * A desktop notification when a session bus is there: notify-send, else
 * gdbus call org.freedesktop.Notifications.Notify.
 */
static void
desktop(const char *summary, const char *body, bool urgent)
{
	char prog[4096], bus[4200], busaddr[4300], *gs = NULL, *gb = NULL;
	const char *rt = getenv("XDG_RUNTIME_DIR");
	struct p11e_env e = { { NULL }, 0 };
	struct stat st;

	if (getenv("DBUS_SESSION_BUS_ADDRESS") != NULL) {
		p11e_env_pass(&e, "DBUS_SESSION_BUS_ADDRESS");
	} else if (rt != NULL &&
	    (size_t)snprintf(bus, sizeof(bus), "%s/bus", rt) < sizeof(bus) &&
	    stat(bus, &st) == 0 && S_ISSOCK(st.st_mode)) {
		/* a systemd user session's bus */
		snprintf(busaddr, sizeof(busaddr), "unix:path=%s", bus);
		p11e_env_add(&e, "DBUS_SESSION_BUS_ADDRESS", busaddr);
	} else {
		p11e_debug(P11E_DEBUG_AGENT,
		    "no session bus: no desktop "
		    "notification");
		return;
	}
	p11e_env_pass(&e, "PATH");
	p11e_env_pass(&e, "HOME");
	p11e_env_pass(&e, "XDG_RUNTIME_DIR");
	p11e_env_pass(&e, "DISPLAY");
	p11e_env_pass(&e, "WAYLAND_DISPLAY");
	p11e_env_pass(&e, "LANG");
	if (p11e_find_prog("notify-send", prog, sizeof(prog))) {
		char *argv[] = { prog, "--app-name=p11enroll",
			urgent ? "--urgency=critical" : "--urgency=normal",
			"--", (char *)summary, (char *)body, NULL };

		(void)spawn(argv, e.v);
	} else if (p11e_find_prog("gdbus", prog, sizeof(prog)) &&
	    (gs = gvariant_str(summary)) != NULL &&
	    (gb = gvariant_str(body)) != NULL) {
		char *argv[] = { prog, "call", "--session", "--dest",
			"org.freedesktop.Notifications", "--object-path",
			"/org/freedesktop/Notifications", "--method",
			"org.freedesktop.Notifications.Notify", "'p11enroll'",
			"0", "''", gs, gb, "[]", "{}", "-1", NULL };

		(void)spawn(argv, e.v);
	} else {
		p11e_debug(P11E_DEBUG_AGENT,
		    "neither notify-send nor gdbus: no desktop notification");
	}
	free(gs);
	free(gb);
	p11e_env_clear(&e);
}

static void
utc_iso(time_t t, char *out, size_t outlen)
{
	struct tm tm;

	out[0] = '\0';
	if (gmtime_r(&t, &tm) != NULL)
		strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* the hook of [notify], with the event in its environment */
static void
hook(const struct p11e_conf *conf, enum p11e_event ev,
    const struct p11e_cred *c, long long days_left)
{
	const char *path = p11e_conf_get_str(conf, "notify", "hook");
	char days[24], na[32], uri[sizeof(c->token_uri)], cmd[128];
	struct p11e_env e = { { NULL }, 0 };

	if (path == NULL)
		return;
	snprintf(days, sizeof(days), "%lld", days_left);
	utc_iso(c->not_after, na, sizeof(na));
	/* the token's identity only: no query attributes */
	snprintf(uri, sizeof(uri), "%.*s", (int)strcspn(c->token_uri, "?"),
	    c->token_uri);
	p11e_env_add(&e, "P11ENROLL_EVENT", event_names[ev]);
	p11e_env_add(&e, "P11ENROLL_CREDENTIAL", c->name);
	p11e_env_add(&e, "P11ENROLL_SERVICE", c->service);
	p11e_env_add(&e, "P11ENROLL_DAYS_LEFT", days);
	p11e_env_add(&e, "P11ENROLL_NOT_AFTER", na);
	p11e_env_add(&e, "P11ENROLL_SUBJECT", c->subject);
	p11e_env_add(&e, "P11ENROLL_SERIAL", c->serial);
	p11e_env_add(&e, "P11ENROLL_TOKEN_URI", uri);
	if (ev == P11E_EVENT_PIN_NEEDED) {
		snprintf(cmd, sizeof(cmd), "p11enroll renew --credential %s",
		    c->name);
		p11e_env_add(&e, "P11ENROLL_COMMAND", cmd);
	}
	p11e_env_pass(&e, "PATH");
	p11e_env_pass(&e, "HOME");
	p11e_env_pass(&e, "XDG_RUNTIME_DIR");
	p11e_env_pass(&e, "DBUS_SESSION_BUS_ADDRESS");
	p11e_env_pass(&e, "LANG");
	{
		char *argv[] = { (char *)path, (char *)event_names[ev], NULL };

		if (spawn(argv, e.v))
			p11e_verbose("%s: hook %s started (%s)", c->name, path,
			    event_names[ev]);
	}
	p11e_env_clear(&e);
}

void
p11e_agent_event(struct p11e_agent *agent, enum p11e_event ev,
    const struct p11e_cred *c, time_t now)
{
	char summary[160], body[1024], when[40];
	long long days = 0;
	struct tm tm;

	when[0] = '\0';
	if (gmtime_r(&c->not_after, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
	if (c->not_after > now)
		days =
		    ((long long)c->not_after - (long long)now + 86399) / 86400;
	switch (ev) {
	case P11E_EVENT_EXPIRY_NOTICE:
		p11e_error("credential %s (service %s, %s) expires in %lld "
			   "day%s, at %s%s",
		    c->name, c->service, c->subject, days, days == 1 ? "" : "s",
		    when,
		    c->wait == P11E_WAIT_PIN
			? ": the renewal needs the PIN: run 'p11enroll renew'"
			: "");
		snprintf(summary, sizeof(summary),
		    "Certificate expires in %lld day%s", days,
		    days == 1 ? "" : "s");
		snprintf(body, sizeof(body),
		    "%s (service %s) expires at %s. If it is not renewed by "
		    "then, run: p11enroll renew --credential %s",
		    c->subject, c->service, when, c->name);
		break;
	case P11E_EVENT_EXPIRED:
		snprintf(summary, sizeof(summary), "Certificate expired");
		snprintf(body, sizeof(body),
		    "%s (service %s) expired at %s: ask your administrator "
		    "to reissue",
		    c->subject, c->service, when);
		break;
	case P11E_EVENT_RENEWAL_FAILED:
		snprintf(
		    summary, sizeof(summary), "Certificate renewal refused");
		snprintf(body, sizeof(body), "%.300s (service %s): %.500s",
		    c->subject, c->service, c->last_error);
		break;
	case P11E_EVENT_PIN_NEEDED:
		/* logged by the renewal, with why */
		snprintf(summary, sizeof(summary),
		    "Certificate renewal needs the token PIN");
		snprintf(body, sizeof(body),
		    "%.300s (service %s) is due for renewal, which needs the "
		    "PIN of token '%s' (serial %s). Run: "
		    "p11enroll renew --credential %s",
		    c->subject, c->service, c->token_label, c->token_serial,
		    c->name);
		break;
	case P11E_EVENT_RENEWED:
		summary[0] = '\0';
		break;
	}
	if (ev != P11E_EVENT_RENEWED &&
	    p11e_conf_get_bool(agent->conf, "notify", "desktop", true))
		desktop(summary, body,
		    ev != P11E_EVENT_EXPIRY_NOTICE &&
			ev != P11E_EVENT_PIN_NEEDED);
	hook(agent->conf, ev, c, days);
}
