/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "cli/doctor.h"
#include "common/conf.h"
#include "common/i18n.h"
#include "common/ipc.h"
#include "common/log.h"

struct command {
	const char *name;
	int (*fn)(struct p11e_cli *cli, int argc, char **argv);
	const char *help;
};

static int cmd_status(struct p11e_cli *cli, int argc, char **argv);
static int cmd_config(struct p11e_cli *cli, int argc, char **argv);
static int cmd_help(struct p11e_cli *cli, int argc, char **argv);

static const struct command commands[] = {
	{ "status", cmd_status,
	    N_("show the agent and what it is configured with") },
	{ "tokens", p11e_cmd_tokens,
	    N_("[URI]: list the tokens (modules, flags, key types)") },
	{ "token", p11e_cmd_token,
	    N_("objects|keygen|csr|import|delete URI ...: work on one token") },
	{ "enroll", p11e_cmd_enroll,
	    N_("--service NAME | --invitation FILE | --resume ID: key on the "
	       "token, certificate from the server") },
	{ "renew", p11e_cmd_renew,
	    N_("[--credential ID] [--now]: renew now (the agent also renews "
	       "by itself)") },
	{ "list", p11e_cmd_list,
	    N_("the tracked credentials: state, expiry, next action, last "
	       "error") },
	{ "service", p11e_cmd_service,
	    N_("add NAME URL [--trust-fingerprint PIN]: a service of your "
	       "own") },
	{ "admin", p11e_cmd_admin,
	    N_("enroll|login|users|user-add|reissue|revoke|keep|unlock|otp|"
	       "audit|logout|status: the administrator's commands") },
	{ "browser", p11e_cmd_browser,
	    N_("setup [--undo] [--system]: register p11-kit-proxy in "
	       "browsers") },
	{ "doctor", p11e_cmd_doctor,
	    N_("[--json]: check the setup (p11-kit, tokens, certificates, "
	       "browsers, servers) and say what to fix") },
	{ "config", cmd_config,
	    N_("config check: validate the configuration") },
	{ "help", cmd_help, N_("show this help") },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void
usage(FILE *f)
{
	size_t i;

	fprintf(f,
	    _("Usage: p11enroll [OPTION]... COMMAND [ARG]...\n"
	      "Enroll and renew certificates whose keys stay on a PKCS#11 "
	      "token.\n\n"
	      "Commands:\n"));
	for (i = 0; i < N_COMMANDS; i++)
		fprintf(
		    f, "  %-10s %s\n", commands[i].name, _(commands[i].help));
	fprintf(f,
	    _("\nOptions:\n"
	      "  -c, --config FILE  configuration file (default %s)\n"
	      "      --json         machine-readable output\n"
	      "      --no-autostart do not start the agent when it is not "
	      "running\n"
	      "      --pin-stdin    read the PIN from the first line of "
	      "standard "
	      "input\n"
	      "                     (default: ask on the terminal, without "
	      "echo)\n"
	      "      --final-try    allow a PIN try that locks the token if "
	      "wrong\n"
	      "  -v, --verbose      say more\n"
	      "  -h, --help         show this help and exit\n"
	      "  -V, --version      show the versions of this command and of "
	      "the running agent\n"
	      "\n"
	      "Commands talk to the agent, p11enrolld, over "
	      "$XDG_RUNTIME_DIR/p11enroll/agent.sock\n"
	      "and start it when it is not running (unless --no-autostart or "
	      "'autostart = no'\n"
	      "in [cli]).  Exit status: 0 success, 1 failure, 2 usage error,\n"
	      "3 a credential waits for its user (status, list), 4 token "
	      "absent,\n"
	      "5 PIN locked, 6 the certificate needs an administrator's "
	      "reissue.\n"),
	    p11e_conf_default_path());
}

void
p11e_cli_fail(const char *what, enum p11e_err err, const char *detail)
{
	const char *e = p11e_strerror(err);
	size_t n = strlen(e);

	/* a detail that starts with the error's own text says it all */
	if (detail != NULL && detail[0] != '\0' &&
	    (strncmp(detail, e, n) != 0 ||
		(detail[n] != '\0' && detail[n] != ':')))
		p11e_error("%s%s%s: %s", what ? what : "", what ? ": " : "", e,
		    detail);
	else
		p11e_error("%s%s%s", what ? what : "", what ? ": " : "",
		    detail != NULL && detail[0] != '\0' ? detail : e);
}

int
p11e_cli_exit_code(enum p11e_err err)
{
	if (err == P11E_OK)
		return P11E_EXIT_OK;
	if (err == P11E_ERR_TOKEN_ABSENT || err == P11E_ERR_TOKEN_NOT_FOUND)
		return P11E_EXIT_TOKEN_ABSENT;
	if (err == P11E_ERR_PIN_LOCKED)
		return P11E_EXIT_PIN_LOCKED;
	if (err == P11E_ERR_CERT_EXPIRED || err == P11E_ERR_CERT_REVOKED)
		return P11E_EXIT_NEEDS_REISSUE;
	return P11E_EXIT_FAILURE;
}

enum p11e_err
p11e_cli_call_agent(
    struct p11e_cli *cli, const char *method, json_t *params, json_t **result)
{
	const char *detail = NULL;
	enum p11e_err err;
	int fd;

	*result = NULL;
	if ((err = p11e_cli_connect(cli, &fd)) != P11E_OK) {
		json_decref(params);
		return err;
	}
	err = p11e_cli_call(fd, method, params, result, &detail);
	close(fd);
	if (err != P11E_OK)
		p11e_cli_fail(NULL, err, detail);
	return err;
}

/* Columns a code point takes on a terminal: 2 for East Asian wide ones. */
static int
cp_width(unsigned long c)
{
	return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf) ||
		(c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
		(c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
		(c >= 0xffe0 && c <= 0xffe6) || (c >= 0x20000 && c <= 0x3fffd)
	    ? 2
	    : 1;
}

const char *
p11e_cli_pad(char *buf, size_t len, const char *s, int width, bool right)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned long c;
	int w = 0, pad;

	while (*p != '\0') {
		if (*p < 0x80) {
			c = *p++;
		} else {
			int n = *p >= 0xf0 ? 3 : *p >= 0xe0 ? 2 : 1;

			c = *p++ & (0x3f >> n);
			for (; n > 0 && (*p & 0xc0) == 0x80; n--)
				c = (c << 6) | (*p++ & 0x3f);
		}
		w += cp_width(c);
	}
	pad = w < width ? width - w : 0;
	snprintf(
	    buf, len, "%*s%s%*s", right ? pad : 0, "", s, right ? 0 : pad, "");
	return buf;
}

void
p11e_cli_print_json(json_t *j)
{
	json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
	fputc('\n', stdout);
}

static const char *
str(json_t *obj, const char *key)
{
	const char *s = json_string_value(json_object_get(obj, key));

	return s ? s : "?";
}

static int
cmd_status(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *info, *services, *v;
	char when[64] = "?";
	time_t started;
	struct tm tm;
	size_t i;

	(void)argv;
	if (argc > 1) {
		p11e_error(_("status takes no arguments"));
		return P11E_EXIT_USAGE;
	}
	if (p11e_cli_call_agent(cli, "GetInfo", NULL, &info) != P11E_OK)
		return P11E_EXIT_FAILURE;
	if (cli->json) {
		json_t *creds = NULL, *out;
		int code = p11e_cli_print_credentials(cli, &creds);

		if (creds == NULL) {
			json_decref(info);
			return code;
		}
		out = json_pack("{s:i, s:O, s:O}", "format", 1, "agent", info,
		    "credentials", json_object_get(creds, "credentials"));
		json_decref(creds);

		p11e_cli_print_json(out);
		json_decref(out);
		json_decref(info);
		return code;
	}
	started = (time_t)json_integer_value(json_object_get(info, "started"));
	if (gmtime_r(&started, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	printf(_("agent:    running, version %s, pid %lld, since %s\n"),
	    str(info, "version"),
	    (long long)json_integer_value(json_object_get(info, "pid")), when);
	printf(_("socket:   %s\n"), str(info, "socket"));
	printf(_("state:    %s\n"), str(info, "state_dir"));
	printf(_("config:   %s\n"), str(info, "config"));
	services = json_object_get(info, "services");
	if (json_array_size(services) == 0) {
		/* "services:" is read by the completion: not translated */
		printf("services: none configured\n");
	} else {
		printf("services:");
		json_array_foreach(services, i, v)
		    printf("%s %s", i ? "," : "", json_string_value(v));
		printf("\n");
	}
	json_decref(info);
	printf("\n");
	return p11e_cli_print_credentials(cli, NULL);
}

struct check {
	const struct p11e_conf *conf;
	unsigned int problems;
};

static void
count_problem(void *data, const char *file, unsigned int line, const char *msg)
{
	struct check *c = data;

	c->problems++;
	if (line > 0)
		printf("%s:%u: %s\n", file, line, msg);
	else
		printf("%s: %s\n", file, msg);
}

static void
show_section(const struct p11e_conf *conf, const char *kind, const char *name)
{
	const struct p11e_conf_key *k;
	char section[128];
	unsigned int line;
	const char *v, *file;

	snprintf(section, sizeof(section), "%s%s%s", kind, name ? " " : "",
	    name ? name : "");
	for (k = p11e_agent_schema; k->section != NULL; k++) {
		if (strncmp(k->section, kind, strlen(kind)) != 0 ||
		    (k->section[strlen(kind)] != '\0') != (name != NULL))
			continue;
		if ((v = p11e_conf_get_str(conf, section, k->key)) == NULL)
			continue;
		file = p11e_conf_origin(conf, section, k->key, &line);
		printf("[%s] %s = %s\t(%s:%u)\n", section, k->key, v,
		    file ? file : "?", line);
	}
}

static void
show_service(void *data, const char *name)
{
	show_section(((struct check *)data)->conf, "service", name);
}

/* config check: every problem as file:line, or the values in effect. */
static int
cmd_config(struct p11e_cli *cli, int argc, char **argv)
{
	struct p11e_conf *conf = NULL;
	struct check c = { NULL, 0 };
	const char *path;
	enum p11e_err err;

	if (argc != 2 || strcmp(argv[1], "check") != 0) {
		p11e_error(_("usage: p11enroll config check"));
		return P11E_EXIT_USAGE;
	}
	path = cli->conf_path ? cli->conf_path : p11e_conf_default_path();
	err = p11e_conf_load(
	    p11e_agent_schema, path, NULL, count_problem, &c, &conf);
	if (err != P11E_OK) {
		printf(_("%u problem%s: the configuration is not used until "
			 "%s fixed\n"),
		    c.problems, c.problems == 1 ? "" : "s",
		    c.problems == 1 ? "it is" : "they are");
		return P11E_EXIT_FAILURE;
	}
	c.conf = conf;
	show_section(conf, "agent", NULL);
	show_section(conf, "cli", NULL);
	show_section(conf, "notify", NULL);
	(void)p11e_conf_sections(conf, "service", show_service, &c);
	printf(_("configuration OK (%s and its conf.d/)\n"), path);
	p11e_conf_free(conf);
	return P11E_EXIT_OK;
}

static int
cmd_help(struct p11e_cli *cli, int argc, char **argv)
{
	(void)cli;
	(void)argc;
	(void)argv;
	usage(stdout);
	return P11E_EXIT_OK;
}

/* --version: this program, and the agent if one answers (never starts it). */
static int
show_version(struct p11e_cli *cli)
{
	json_t *info = NULL;
	const char *detail;
	int fd;

	printf("p11enroll %s\n", PACKAGE_VERSION);
	cli->autostart = false;
	cli->quiet = true;
	if (p11e_cli_connect(cli, &fd) == P11E_OK) {
		if (p11e_cli_call(fd, "GetInfo", NULL, &info, &detail) ==
		    P11E_OK)
			printf(_("p11enrolld %s (running, pid %lld)\n"),
			    str(info, "version"),
			    (long long)json_integer_value(
				json_object_get(info, "pid")));
		close(fd);
	}
	if (info == NULL)
		printf(_("p11enrolld: not running\n"));
	json_decref(info);
	return P11E_EXIT_OK;
}

int
main(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_NO_AUTOSTART, OPT_PIN_STDIN, OPT_FINAL_TRY };
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "no-autostart", no_argument, NULL, OPT_NO_AUTOSTART },
		{ "pin-stdin", no_argument, NULL, OPT_PIN_STDIN },
		{ "final-try", no_argument, NULL, OPT_FINAL_TRY },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct p11e_cli cli = { .autostart = true };
	struct p11e_conf *conf = NULL;
	bool no_autostart = false, version = false;
	int c, rc;
	size_t i;

	p11e_log_init("p11enroll");
	p11e_i18n_init("p11enroll");
	p11e_ipc_json_init();
	/* options stop at the command: its own options follow it */
	while ((c = getopt_long(argc, argv, "+c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cli.conf_path = optarg;
			break;
		case OPT_JSON:
			cli.json = true;
			break;
		case OPT_NO_AUTOSTART:
			no_autostart = true;
			break;
		case OPT_PIN_STDIN:
			cli.pin_stdin = true;
			break;
		case OPT_FINAL_TRY:
			cli.final_try = true;
			break;
		case 'v':
			cli.verbose++;
			break;
		case 'h':
			usage(stdout);
			return P11E_EXIT_OK;
		case 'V':
			version = true;
			break;
		default:
			usage(stderr);
			return P11E_EXIT_USAGE;
		}
	}
	if (!version && optind >= argc) {
		usage(stderr);
		return P11E_EXIT_USAGE;
	}
	for (i = 0; !version && i < N_COMMANDS; i++) {
		if (strcmp(commands[i].name, argv[optind]) == 0)
			break;
	}
	if (!version && i == N_COMMANDS) {
		p11e_error(_("unknown command '%s' (see p11enroll --help)"),
		    argv[optind]);
		return P11E_EXIT_USAGE;
	}
	/* config check reports the problems itself */
	if (!version && commands[i].fn == cmd_config)
		return cmd_config(&cli, argc - optind, argv + optind);
	if (p11e_conf_load(p11e_agent_schema,
		cli.conf_path ? cli.conf_path : p11e_conf_default_path(), NULL,
		NULL, NULL, &conf) != P11E_OK) {
		p11e_error(_("fix the configuration first "
			     "(p11enroll config check lists every problem)"));
		return P11E_EXIT_FAILURE;
	}
	cli.autostart =
	    !no_autostart && p11e_conf_get_bool(conf, "cli", "autostart", true);
	p11e_conf_free(conf);
	if (version)
		return show_version(&cli);
	rc = commands[i].fn(&cli, argc - optind, argv + optind);
	return rc;
}
