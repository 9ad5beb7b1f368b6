/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "common/i18n.h"
#include "common/log.h"

/*
 * p11enroll doctor: checks the user's setup and says what to fix.  What
 * needs a token or the network is the agent's (the Doctor method: the
 * p11-kit modules, each credential's token, key, certificate and chain,
 * each service's TLS with its pinned key); the rest is read here: the
 * p11-kit call logging that would print PINs, the browsers' NSS
 * databases, sandboxed browsers.  Nothing is changed.
 */

#define LINE_MAX_ 1024

enum p11e_err
p11e_doctor_add(json_t *checks, const char *check, const char *subject,
    const char *status, const char *message, const char *fix)
{
	json_t *o = json_pack("{s:s, s:s, s:s, s:s}", "check", check, "subject",
	    subject, "status", status, "message", message);

	if (o == NULL)
		return P11E_ERR_NOMEM;
	if (fix != NULL && fix[0] != '\0')
		json_object_set_new(o, "fix", json_string(fix));
	return json_array_append_new(checks, o) == 0 ? P11E_OK : P11E_ERR_NOMEM;
}

/* Whether a P11_KIT_DEBUG value makes p11-kit log the calls. */
static bool
debug_logs_calls(const char *v)
{
	return v != NULL && (strstr(v, "rpc") != NULL || strstr(v, "all"));
}

/* "log-calls: yes" in one p11-kit module or config file. */
static bool
file_logs_calls(const char *path)
{
	char line[LINE_MAX_], *k, *v, *e;
	bool yes = false;
	FILE *f;

	if ((f = fopen(path, "re")) == NULL)
		return false;
	while (!yes && fgets(line, sizeof(line), f) != NULL) {
		for (k = line; *k == ' ' || *k == '\t'; k++)
			;
		if ((v = strchr(k, ':')) == NULL)
			continue;
		for (e = v; e > k && (e[-1] == ' ' || e[-1] == '\t'); e--)
			;
		*e = '\0';
		for (v++; *v == ' ' || *v == '\t'; v++)
			;
		v[strcspn(v, " \t\r\n#")] = '\0';
		yes = strcmp(k, "log-calls") == 0 &&
		    (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0);
	}
	fclose(f);
	return yes;
}

/* The p11-kit files (system and user) with log-calls: yes, into checks. */
static enum p11e_err
check_log_calls(json_t *checks, int *n_found)
{
	const char *home = getenv("HOME"), *xdg = getenv("XDG_CONFIG_HOME");
	char user[PATH_MAX], udir[PATH_MAX], uconf[PATH_MAX], path[PATH_MAX];
	const char *dirs[3] = { "/etc/pkcs11/modules",
		"/usr/share/p11-kit/modules", NULL };
	const char *confs[2] = { "/etc/pkcs11/pkcs11.conf", NULL };
	enum p11e_err err = P11E_OK;
	struct dirent *de;
	size_t i;
	DIR *d;

	user[0] = '\0';
	if (xdg != NULL && xdg[0] == '/')
		snprintf(user, sizeof(user), "%s/pkcs11", xdg);
	else if (home != NULL && home[0] == '/')
		snprintf(user, sizeof(user), "%s/.config/pkcs11", home);
	if (user[0] != '\0') {
		snprintf(udir, sizeof(udir), "%.4000s/modules", user);
		snprintf(uconf, sizeof(uconf), "%.4000s/pkcs11.conf", user);
		dirs[2] = udir;
		confs[1] = uconf;
	}
	for (i = 0; i < 2 && err == P11E_OK; i++) {
		if (confs[i] == NULL || !file_logs_calls(confs[i]))
			continue;
		(*n_found)++;
		err = p11e_doctor_add(checks, "p11kit-logging", confs[i],
		    "problem",
		    "log-calls: yes makes p11-kit log every PKCS#11 call, "
		    "the PIN of C_Login included",
		    "remove the log-calls line (or set it to no)");
	}
	for (i = 0; i < 3 && err == P11E_OK; i++) {
		if (dirs[i] == NULL || (d = opendir(dirs[i])) == NULL)
			continue;
		while (err == P11E_OK && (de = readdir(d)) != NULL) {
			size_t len = strlen(de->d_name);

			if (len < 8 ||
			    strcmp(de->d_name + len - 7, ".module") != 0)
				continue;
			snprintf(path, sizeof(path), "%.3000s/%.1000s", dirs[i],
			    de->d_name);
			if (!file_logs_calls(path))
				continue;
			(*n_found)++;
			err = p11e_doctor_add(checks, "p11kit-logging", path,
			    "problem",
			    "log-calls: yes makes p11-kit log every PKCS#11 "
			    "call of this module, the PIN of C_Login included",
			    "remove the log-calls line (or set it to no)");
		}
		closedir(d);
	}
	return err;
}

static enum p11e_err
check_logging(json_t *checks)
{
	const char *v = getenv("P11_KIT_DEBUG");
	char msg[600];
	enum p11e_err err;
	int found = 0;

	if (debug_logs_calls(v)) {
		found++;
		snprintf(msg, sizeof(msg),
		    "P11_KIT_DEBUG=%.200s is set: p11-kit prints the PKCS#11 "
		    "calls of the programs started from here (browsers too), "
		    "the PIN of C_Login included",
		    v);
		if ((err = p11e_doctor_add(checks, "p11kit-logging",
			 "environment", "problem", msg,
			 "unset P11_KIT_DEBUG (and remove it from your shell "
			 "and session start files)")) != P11E_OK)
			return err;
	}
	if ((err = check_log_calls(checks, &found)) != P11E_OK)
		return err;
	if (found > 0)
		return P11E_OK;
	return p11e_doctor_add(checks, "p11kit-logging", "p11-kit", "ok",
	    "p11-kit does not log PKCS#11 calls (no P11_KIT_DEBUG rpc/all, "
	    "no log-calls: yes)",
	    NULL);
}

/* Browsers in a sandbox that the host's p11-kit modules do not reach. */
static enum p11e_err
check_sandboxed(json_t *checks)
{
	static const struct {
		const char *path; /* under HOME when relative */
		const char *what;
	} places[] = {
		{ ".var/app/org.chromium.Chromium", "Chromium (Flatpak)" },
		{ ".var/app/org.mozilla.firefox", "Firefox (Flatpak)" },
		{ "/var/lib/flatpak/app/org.chromium.Chromium",
		    "Chromium (Flatpak)" },
		{ "/var/lib/flatpak/app/org.mozilla.firefox",
		    "Firefox (Flatpak)" },
		{ "/snap/bin/chromium", "Chromium (Snap)" },
		{ "/snap/bin/firefox", "Firefox (Snap)" },
	};
	const char *home = getenv("HOME");
	char path[PATH_MAX], msg[PATH_MAX + 300];
	enum p11e_err err = P11E_OK;
	struct stat st;
	size_t i;
	int found = 0;

	for (i = 0; i < sizeof(places) / sizeof(places[0]); i++) {
		if (places[i].path[0] == '/')
			snprintf(path, sizeof(path), "%s", places[i].path);
		else if (home != NULL && home[0] == '/')
			snprintf(path, sizeof(path), "%.3000s/%s", home,
			    places[i].path);
		else
			continue;
		if (stat(path, &st) != 0)
			continue;
		found++;
		snprintf(msg, sizeof(msg),
		    "%s is installed (%s): its sandbox does not load the "
		    "host's PKCS#11 modules, so it cannot see the token",
		    places[i].what, path);
		if ((err = p11e_doctor_add(checks, "sandboxed-browser", path,
			 "warning", msg,
			 "use the distribution's browser package (Debian: "
			 "chromium, firefox-esr) for the bank's site")) !=
		    P11E_OK)
			return err;
	}
	if (found > 0)
		return P11E_OK;
	return p11e_doctor_add(checks, "sandboxed-browser", "browsers", "ok",
	    "no Flatpak or Snap browser found", NULL);
}

/* The agent's checks, appended to checks. */
static enum p11e_err
check_agent(struct p11e_cli *cli, json_t *checks)
{
	const char *detail = NULL;
	json_t *res = NULL, *list;
	enum p11e_err err;
	size_t i;
	int fd;

	if ((err = p11e_cli_connect(cli, &fd)) != P11E_OK)
		return p11e_doctor_add(checks, "agent", "p11enrolld", "problem",
		    "the agent does not answer: tokens, certificates and "
		    "servers were not checked",
		    "p11enroll status says why (the agent's log is "
		    "$XDG_RUNTIME_DIR/p11enroll/agent.log)");
	err = p11e_cli_call(fd, "Doctor", NULL, &res, &detail);
	close(fd);
	if (err != P11E_OK) {
		char msg[1200];

		snprintf(msg, sizeof(msg), "the agent's checks failed: %s",
		    detail != NULL ? detail : p11e_strerror(err));
		return p11e_doctor_add(checks, "agent", "p11enrolld", "problem",
		    msg, "p11enroll status; the agent's log says more");
	}
	list = json_object_get(res, "checks");
	for (i = 0; i < json_array_size(list); i++)
		json_array_append(checks, json_array_get(list, i));
	json_decref(res);
	return P11E_OK;
}

static void
print_text(json_t *checks)
{
	const char *status, *fix;
	json_t *c;
	size_t i;

	for (i = 0; i < json_array_size(checks); i++) {
		c = json_array_get(checks, i);
		status = json_string_value(json_object_get(c, "status"));
		fix = json_string_value(json_object_get(c, "fix"));
		printf("%-8s %-17s %s: %s\n",
		    strcmp(status, "problem") == 0	 ? "PROBLEM"
			: strcmp(status, "warning") == 0 ? "warning"
							 : "ok",
		    json_string_value(json_object_get(c, "check")),
		    json_string_value(json_object_get(c, "subject")),
		    json_string_value(json_object_get(c, "message")));
		if (fix != NULL)
			printf(_("%-8s %-17s fix: %s\n"), "", "", fix);
	}
}

int
p11e_cmd_doctor(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *checks, *out;
	enum p11e_err err;
	size_t i, n[3] = { 0, 0, 0 };
	int a;

	for (a = 1; a < argc; a++) {
		if (strcmp(argv[a], "--json") != 0) {
			p11e_error(_("usage: p11enroll doctor [--json]"));
			return P11E_EXIT_USAGE;
		}
		cli->json = true;
	}
	if ((checks = json_array()) == NULL)
		return P11E_EXIT_FAILURE;
	if ((err = check_logging(checks)) != P11E_OK ||
	    (err = check_agent(cli, checks)) != P11E_OK ||
	    (err = p11e_browser_doctor(checks)) != P11E_OK ||
	    (err = check_sandboxed(checks)) != P11E_OK) {
		p11e_error(_("doctor: %s"), p11e_strerror(err));
		json_decref(checks);
		return P11E_EXIT_FAILURE;
	}
	for (i = 0; i < json_array_size(checks); i++) {
		const char *s = json_string_value(
		    json_object_get(json_array_get(checks, i), "status"));

		n[strcmp(s, "ok") == 0		    ? 0
			: strcmp(s, "warning") == 0 ? 1
						    : 2]++;
	}
	if (cli->json) {
		out = json_pack("{s:O, s:I, s:I, s:I}", "checks", checks, "ok",
		    (json_int_t)n[0], "warnings", (json_int_t)n[1], "problems",
		    (json_int_t)n[2]);
		if (out != NULL)
			p11e_cli_print_json(out);
		json_decref(out);
	} else {
		print_text(checks);
		printf(_("%zu ok, %zu warning%s, %zu problem%s\n"), n[0], n[1],
		    n[1] == 1 ? "" : "s", n[2], n[2] == 1 ? "" : "s");
	}
	json_decref(checks);
	return n[2] > 0 ? P11E_EXIT_FAILURE : P11E_EXIT_OK;
}
