/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/secret.h"

/*
 * enroll, list and service add.  The order of the user flow (DESIGN §6):
 * the token and its PIN, the key generated (journaled by the agent), and
 * only then the contract ID, user ID, password and one-time password, so
 * a slow key generation does not waste a one-time password.
 */

#define INVITATION_MAX (64 * 1024)

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

/*
 * The names of the agent's steps (agent/enroll.c step_done), here for the
 * catalogues: the agent sends them in English, the command shows them in
 * the user's language.
 */
static const char *const step_names[] __attribute__((unused)) = {
	N_("key generation"),
	N_("CA certificates"),
	N_("server session"),
	N_("certificate request"),
	N_("issuance"),
	N_("token write"),
	N_("pair verified"),
};

static void
print_steps(json_t *r)
{
	json_t *s;
	size_t i;

	json_array_foreach(json_object_get(r, "steps"), i, s)
	{
		char name[128];

		printf("  %s %8.1f ms\n",
		    p11e_cli_pad(
			name, sizeof(name), _(str(s, "step")), 22, false),
		    json_real_value(json_object_get(s, "ms")));
	}
	fflush(stdout);
}

static void
fmt_time(json_t *o, const char *k, char *out, size_t outlen)
{
	time_t t = (time_t)json_integer_value(json_object_get(o, k));
	struct tm tm;

	snprintf(out, outlen, "-");
	if (t > 0 && gmtime_r(&t, &tm) != NULL)
		strftime(out, outlen, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* Reads a line shown as typed (an ID) from the terminal. */
static bool
ask_plain(const char *prompt, char *out, size_t outlen)
{
	size_t n = 0;
	char c;
	int fd;

	if ((fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY)) < 0)
		return false;
	(void)write(fd, prompt, strlen(prompt));
	while (read(fd, &c, 1) == 1 && c != '\n') {
		if (c != '\r' && n + 1 < outlen)
			out[n++] = c;
	}
	out[n] = '\0';
	close(fd);
	return n > 0;
}

static bool
ask_id(const char *what, const char *opt, const char *have, char *out,
    size_t outlen)
{
	char prompt[128];

	if (have != NULL && have[0] != '\0') {
		snprintf(out, outlen, "%s", have);
		return true;
	}
	snprintf(prompt, sizeof(prompt), "%s: ", what);
	if (ask_plain(prompt, out, outlen))
		return true;
	p11e_error(_("no %s: give %s"), what, opt);
	return false;
}

/* Reads and checks an invitation file of p11enroll-ra. */
static json_t *
read_invitation(const char *path)
{
	json_error_t e;
	json_t *inv;

	inv = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
	if (inv == NULL) {
		p11e_error(
		    _("invitation %s: %s (line %d)"), path, e.text, e.line);
		return NULL;
	}
	if (json_integer_value(json_object_get(inv, "p11enroll_invitation")) !=
		1 ||
	    !json_is_string(json_object_get(inv, "url")) ||
	    !json_is_string(json_object_get(inv, "server_pin"))) {
		p11e_error(_("%s is not a p11enroll invitation (version 1 with "
			     "url and server_pin)"),
		    path);
		json_decref(inv);
		return NULL;
	}
	return inv;
}

/* A service name from a URL: host and port, e.g. "ra.example.jp-8443". */
static void
name_from_url(const char *url, char *out, size_t outlen)
{
	size_t n = 0;
	const char *p = strstr(url, "://");

	p = p ? p + 3 : url;
	for (; *p && *p != '/' && n + 1 < outlen; p++) {
		char c = *p;

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			(c >= '0' && c <= '9') || c == '.' || c == '-' ||
			c == '_'))
			c = '-';
		out[n++] = c;
	}
	out[n] = '\0';
}

static enum p11e_err
add_service(struct p11e_cli *cli, const char *name, const char *url,
    const char *pin, bool replace)
{
	json_t *params, *res = NULL;
	enum p11e_err err;

	params = json_pack("{s:s, s:s}", "name", name, "url", url);
	if (pin != NULL)
		json_object_set_new(params, "server_pin", json_string(pin));
	if (replace)
		json_object_set_new(params, "replace", json_true());
	err = p11e_cli_call_agent(cli, "AddService", params, &res);
	if (err == P11E_OK && !cli->json)
		printf(_("service %s: %s (%s)\n"), name, url, str(res, "file"));
	json_decref(res);
	return err;
}

/* The one token that can take a key, when the user named none. */
static enum p11e_err
pick_token(struct p11e_cli *cli, char *uri, size_t urilen)
{
	json_t *res = NULL, *t;
	enum p11e_err err;
	size_t i, n = 0;

	if ((err = p11e_cli_call_agent(cli, "ListTokens", NULL, &res)) !=
	    P11E_OK)
		return err;
	json_array_foreach(json_object_get(res, "tokens"), i, t)
	{
		/* an empty slot (SoftHSM2 keeps one) is no choice */
		if (!json_is_true(json_object_get(t, "present")) ||
		    !json_is_true(json_object_get(
			json_object_get(t, "flags"), "initialized")) ||
		    json_array_size(json_object_get(t, "key_types")) == 0)
			continue;
		if (n++ == 0)
			snprintf(uri, urilen, "%s", str(t, "uri"));
	}
	json_decref(res);
	if (n == 1)
		return P11E_OK;
	p11e_error(_("%s: choose one with --token URI (p11enroll tokens lists "
		     "them)"),
	    n == 0 ? _("no token that can generate keys is present")
		   : _("several tokens are present"));
	return P11E_ERR_TOKEN_NOT_FOUND;
}

/* An unfinished credential of service, to resume instead of starting. */
static bool
find_unfinished(struct p11e_cli *cli, const char *service, const char *user,
    char *name, size_t namelen, char *uri, size_t urilen)
{
	json_t *res = NULL, *c;
	const char *st;
	bool found = false;
	size_t i;

	if (p11e_cli_call_agent(cli, "ListCredentials", NULL, &res) != P11E_OK)
		return false;
	json_array_foreach(json_object_get(res, "credentials"), i, c)
	{
		st = str(c, "state");
		/* one service may serve several users of this account */
		if (strcmp(str(c, "service"), service) != 0 ||
		    (user != NULL && strcmp(str(c, "user_id"), user) != 0) ||
		    (strcmp(st, "KEY_PENDING") != 0 &&
			strcmp(st, "KEY_READY") != 0 &&
			strcmp(st, "SUBMITTED") != 0 &&
			strcmp(st, "ISSUED") != 0))
			continue;
		snprintf(name, namelen, "%s", str(c, "credential"));
		snprintf(uri, urilen, "%s", str(c, "token_uri"));
		if (!cli->json)
			printf(_("resuming %s (stopped at %s)\n"), name, st);
		found = true;
		break;
	}
	json_decref(res);
	return found;
}

static enum p11e_err
add_secret(json_t *params, const char *key, const char *prompt, bool stdin_)
{
	struct p11e_secret *s = NULL;
	enum p11e_err err;

	if ((err = p11e_cli_read_secret(prompt, stdin_, &s)) != P11E_OK)
		return err;
	json_object_set_new(params, key,
	    json_stringn(
		(const char *)p11e_secret_data(s), p11e_secret_len(s)));
	p11e_secret_free(s);
	return P11E_OK;
}

static void
next_action(enum p11e_err err, const char *cred)
{
	if (cred[0] == '\0')
		return;
	if (err == P11E_ERR_AUTH_FAILED || err == P11E_ERR_OTP_REPLAYED ||
	    err == P11E_ERR_SERVER_BUSY || err == P11E_ERR_SERVER_UNREACHABLE ||
	    err == P11E_ERR_TOKEN_NOT_FOUND || err == P11E_ERR_PIN_INCORRECT ||
	    err == P11E_ERR_CREDENTIALS_REQUIRED ||
	    err == P11E_ERR_TOKEN_ABSENT)
		p11e_error(_("the key stays on the token: 'p11enroll enroll "
			     "--resume %s' continues with it"),
		    cred);
}

int
p11e_cmd_enroll(struct p11e_cli *cli, int argc, char **argv)
{
	enum {
		O_SERVICE = 256,
		O_INVITATION,
		O_TOKEN,
		O_KEY_TYPE,
		O_CONTRACT,
		O_USER,
		O_SECRETS_STDIN,
		O_RESUME,
		O_ADMIN,
	};
	static const struct option opts[] = {
		{ "service", required_argument, NULL, O_SERVICE },
		{ "invitation", required_argument, NULL, O_INVITATION },
		{ "token", required_argument, NULL, O_TOKEN },
		{ "key-type", required_argument, NULL, O_KEY_TYPE },
		{ "contract-id", required_argument, NULL, O_CONTRACT },
		{ "user-id", required_argument, NULL, O_USER },
		{ "secrets-stdin", no_argument, NULL, O_SECRETS_STDIN },
		{ "resume", required_argument, NULL, O_RESUME },
		/* p11enroll admin enroll: the bank's one-time code */
		{ "admin-code", no_argument, NULL, O_ADMIN },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *inv_path = NULL, *token = NULL,
		   *key_type = NULL, *contract = NULL, *user = NULL,
		   *resume = NULL;
	char svc[80] = "", uri[1024] = "", cred[80] = "", cid[64], uid[64];
	char nb[40], na[40], rec_cid[64] = "", rec_uid[64] = "";
	bool from_stdin = false, fresh, admin = false;
	json_t *inv = NULL, *params = NULL, *res = NULL;
	enum p11e_err err = P11E_OK;
	int c;

	optind = 0; /* glibc: a full restart, with argument permutation */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case O_SERVICE:
			service = optarg;
			break;
		case O_INVITATION:
			inv_path = optarg;
			break;
		case O_TOKEN:
			token = optarg;
			break;
		case O_KEY_TYPE:
			key_type = optarg;
			break;
		case O_CONTRACT:
			contract = optarg;
			break;
		case O_USER:
			user = optarg;
			break;
		case O_SECRETS_STDIN:
			from_stdin = true;
			break;
		case O_RESUME:
			resume = optarg;
			break;
		case O_ADMIN:
			admin = true;
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc ||
	    (service == NULL && inv_path == NULL && resume == NULL))
		goto usage;
	/* --secrets-stdin: the lines PIN, password, one-time password */
	if (from_stdin)
		cli->pin_stdin = true;
	if (inv_path != NULL) {
		if ((inv = read_invitation(inv_path)) == NULL)
			return P11E_EXIT_FAILURE;
		if (service == NULL)
			name_from_url(str(inv, "url"), svc, sizeof(svc));
		else
			snprintf(svc, sizeof(svc), "%s", service);
		if (contract == NULL && str(inv, "contract_id")[0])
			contract = str(inv, "contract_id");
		if (user == NULL && str(inv, "user_id")[0])
			user = str(inv, "user_id");
		/* the invitation is the trust: it may bring a new pin */
		if ((err = add_service(cli, svc, str(inv, "url"),
			 str(inv, "server_pin"), true)) != P11E_OK)
			goto out;
	} else if (service != NULL) {
		snprintf(svc, sizeof(svc), "%s", service);
	}

	if (resume != NULL) {
		snprintf(cred, sizeof(cred), "%s", resume);
		fresh = false;
	} else {
		fresh = !find_unfinished(
		    cli, svc, user, cred, sizeof(cred), uri, sizeof(uri));
	}
	if (!fresh) {
		/* the record knows the token and who enrolls */
		json_t *l = NULL, *x;
		size_t i;

		if ((err = p11e_cli_call_agent(
			 cli, "ListCredentials", NULL, &l)) != P11E_OK)
			goto out;
		uri[0] = '\0';
		json_array_foreach(json_object_get(l, "credentials"), i, x)
		{
			if (strcmp(str(x, "credential"), cred) != 0)
				continue;
			snprintf(uri, sizeof(uri), "%s", str(x, "token_uri"));
			snprintf(rec_cid, sizeof(rec_cid), "%s",
			    str(x, "contract_id"));
			snprintf(
			    rec_uid, sizeof(rec_uid), "%s", str(x, "user_id"));
		}
		json_decref(l);
		if (uri[0] == '\0') {
			p11e_error(_("no credential %s (p11enroll list shows "
				     "them)"),
			    cred);
			err = P11E_ERR_NOT_FOUND;
			goto out;
		}
		if (contract == NULL && rec_cid[0] != '\0')
			contract = rec_cid;
		if (user == NULL && rec_uid[0] != '\0')
			user = rec_uid;
	}
	if (fresh) {
		if (token != NULL)
			snprintf(uri, sizeof(uri), "%s", token);
		else if ((err = pick_token(cli, uri, sizeof(uri))) != P11E_OK)
			goto out;
	}
	params = json_object();
	if ((err = p11e_cli_add_pin(cli, uri, params)) != P11E_OK)
		goto out;
	if (fresh) {
		/* 1. the key, before any server contact */
		json_object_set_new(params, "service", json_string(svc));
		json_object_set_new(params, "uri", json_string(uri));
		if (key_type != NULL)
			json_object_set_new(
			    params, "key_type", json_string(key_type));
		if (contract != NULL)
			json_object_set_new(
			    params, "contract_id", json_string(contract));
		if (user != NULL)
			json_object_set_new(
			    params, "user_id", json_string(user));
		if (!cli->json)
			printf(_("generating the key on the token...\n"));
		if ((err = p11e_cli_call_agent(cli, "EnrollKey",
			 json_incref(params), &res)) != P11E_OK)
			goto out;
		snprintf(cred, sizeof(cred), "%s", str(res, "credential"));
		if (!cli->json) {
			printf(_("credential %s: %s key, id %s on '%s'\n"),
			    cred, str(res, "key_type"), str(res, "id"),
			    str(res, "token_label"));
			print_steps(res);
		}
		json_decref(res);
		res = NULL;
		json_object_del(params, "service");
		json_object_del(params, "uri");
		json_object_del(params, "key_type");
	}
	/* a PIN file named in the URI serves the later steps too */
	if (strstr(uri, "pin-source=") != NULL)
		json_object_set_new(params, "uri", json_string(uri));
	json_object_set_new(params, "credential", json_string(cred));
	/* 2. a resumed record may need no new session at all */
	if (!fresh) {
		{
			int fd;
			const char *detail = NULL;

			if ((err = p11e_cli_connect(cli, &fd)) != P11E_OK)
				goto out;
			err = p11e_cli_call(
			    fd, "Enroll", json_incref(params), &res, &detail);
			close(fd);
			if (err != P11E_OK &&
			    err != P11E_ERR_CREDENTIALS_REQUIRED) {
				p11e_cli_fail(NULL, err, detail);
				goto out;
			}
		}
	} else {
		err = P11E_ERR_CREDENTIALS_REQUIRED;
	}
	if (err == P11E_ERR_CREDENTIALS_REQUIRED) {
		/* 3. the session factors, asked only now */
		if (!ask_id(_("contract ID (契約者ID)"), "--contract-id",
			contract, cid, sizeof(cid)) ||
		    !ask_id(_("user ID (利用者ID)"), "--user-id", user, uid,
			sizeof(uid))) {
			err = P11E_ERR_INVALID_PARAMETER;
			goto out;
		}
		json_object_set_new(params, "contract_id", json_string(cid));
		json_object_set_new(params, "user_id", json_string(uid));
		if (admin) {
			if ((err = add_secret(params, "admin_code",
				 _("one-time enrollment code (from the "
				   "bank): "),
				 from_stdin)) != P11E_OK)
				goto out;
		} else if ((err = add_secret(params, "password",
				_("password (利用者暗証番号): "),
				from_stdin)) != P11E_OK ||
		    (err = add_secret(params, "otp",
			 _("one-time password (ワンタイムパスワード): "),
			 from_stdin)) != P11E_OK) {
			goto out;
		}
		if ((err = p11e_cli_call_agent(
			 cli, "Enroll", json_incref(params), &res)) != P11E_OK)
			goto out;
	}
	if (cli->json) {
		p11e_cli_print_json(res);
	} else {
		print_steps(res);
		fmt_time(res, "not_before", nb, sizeof(nb));
		fmt_time(res, "not_after", na, sizeof(na));
		printf(_("enrolled: %s\n"), cred);
		printf(_("  subject  %s\n"), str(res, "subject"));
		printf(_("  serial   %s\n"), str(res, "serial"));
		printf(_("  valid    %s to %s\n"), nb, na);
		printf(_("  token    %s\n"), str(res, "token_uri"));
	}
out:
	if (err != P11E_OK)
		next_action(err, cred);
	json_decref(res);
	json_decref(params);
	json_decref(inv);
	return p11e_cli_exit_code(err);
usage:
	p11e_error(
	    _("usage: p11enroll enroll --service NAME | --invitation FILE "
	      "| --resume CREDENTIAL [--token URI] [--key-type TYPE] "
	      "[--contract-id ID] [--user-id ID] [--secrets-stdin]"));
	return P11E_EXIT_USAGE;
}

/* What the agent does at a credential's next action time. */
static const char *
next_what(json_t *c)
{
	const char *st = str(c, "state");
	json_int_t next = json_integer_value(json_object_get(c, "next_action"));

	if (next >= json_integer_value(json_object_get(c, "not_after")))
		return _("expiry");
	if (strcmp(st, "WAITING_SERVER") == 0 ||
	    strcmp(st, "WAITING_TOKEN") == 0)
		return _("retry");
	if (json_object_get(c, "old_id") != NULL &&
	    next == json_integer_value(json_object_get(c, "old_remove_at")))
		return _("removal of the replaced key");
	return _("renewal");
}

/*
 * The exit status the credentials call for, the most urgent first
 * (p11enroll(1) EXIT STATUS, doc/status.md): 6 when one needs an
 * administrator's reissue, 1 when one needs an operator (an unreadable
 * record), 3 when one waits for its user (the PIN, the token), else 0.
 */
static int
credentials_exit(json_t *list)
{
	static const struct {
		const char *state;
		int code;
	} urgent[] = {
		{ "EXPIRED", P11E_EXIT_NEEDS_REISSUE },
		{ "REVOKED", P11E_EXIT_NEEDS_REISSUE },
		{ "REJECTED", P11E_EXIT_NEEDS_REISSUE },
		{ "NEEDS_OPERATOR", P11E_EXIT_FAILURE },
		{ "WAITING_PIN", P11E_EXIT_WAITING },
		{ "WAITING_TOKEN", P11E_EXIT_WAITING },
	};
	size_t i, k, best = sizeof(urgent) / sizeof(urgent[0]);
	json_t *c;

	json_array_foreach(list, i, c)
	{
		for (k = 0; k < best; k++)
			if (strcmp(str(c, "state"), urgent[k].state) == 0)
				best = k;
	}
	return best < sizeof(urgent) / sizeof(urgent[0]) ? urgent[best].code
							 : P11E_EXIT_OK;
}

int
p11e_cli_print_credentials(struct p11e_cli *cli, json_t **out)
{
	json_t *res = NULL, *c, *le;
	char na[40];
	size_t i;
	int code;

	if (p11e_cli_call_agent(cli, "ListCredentials", NULL, &res) != P11E_OK)
		return P11E_EXIT_FAILURE;
	code = credentials_exit(json_object_get(res, "credentials"));
	if (out != NULL) {
		*out = res;
		return code;
	}
	if (json_array_size(json_object_get(res, "credentials")) == 0)
		printf(_("no credentials: p11enroll enroll starts one\n"));
	json_array_foreach(json_object_get(res, "credentials"), i, c)
	{
		fmt_time(c, "not_after", na, sizeof(na));
		printf(_("%s  %-14s service %s, user %s\n"),
		    str(c, "credential"), str(c, "state"), str(c, "service"),
		    str(c, "user_id"));
		if (str(c, "subject")[0])
			printf(_("    %s, serial %s, valid until %s\n"),
			    str(c, "subject"), str(c, "serial"), na);
		if (str(c, "token_uri")[0])
			printf(_("    key %s on %s\n"), str(c, "key_type"),
			    str(c, "token_uri"));
		if (json_object_get(c, "next_action") != NULL) {
			fmt_time(c, "next_action", na, sizeof(na));
			printf(
			    _("    next action %s (%s)\n"), na, next_what(c));
		}
		if (json_object_get(c, "old_id") != NULL) {
			fmt_time(c, "old_remove_at", na, sizeof(na));
			printf(_("    replaced key %s stays until %s\n"),
			    str(c, "old_id"), na);
		}
		if ((le = json_object_get(c, "last_error")) != NULL)
			printf(_("    last error: %s\n"), str(le, "message"));
	}
	json_decref(res);
	return code;
}

int
p11e_cmd_list(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *res = NULL;
	int code;

	(void)argv;
	if (argc > 1) {
		p11e_error(_("list takes no arguments"));
		return P11E_EXIT_USAGE;
	}
	code = p11e_cli_print_credentials(cli, cli->json ? &res : NULL);
	if (res != NULL) {
		p11e_cli_print_json(res);
		json_decref(res);
	}
	return code;
}

int
p11e_cmd_service(struct p11e_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "trust-fingerprint", required_argument, NULL, 'f' },
		{ NULL, 0, NULL, 0 },
	};
	const char *fp = NULL;
	enum p11e_err err;
	int c;

	optind = 0; /* glibc: a full restart, with argument permutation */
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c != 'f')
			goto usage;
		fp = optarg;
	}
	if (argc - optind != 3 || strcmp(argv[optind], "add") != 0)
		goto usage;
	err = add_service(cli, argv[optind + 1], argv[optind + 2], fp, false);
	return p11e_cli_exit_code(err);
usage:
	p11e_error(_("usage: p11enroll service add NAME URL "
		     "[--trust-fingerprint sha256//BASE64]"));
	return P11E_EXIT_USAGE;
}

/* Renews one credential; prints the outcome.  Returns the error. */
static enum p11e_err
renew_one(struct p11e_cli *cli, json_t *cred, bool now)
{
	const char *name = str(cred, "credential"), *detail = NULL;
	json_t *params, *res = NULL;
	enum p11e_err err;
	char na[40];
	int fd;

	params = json_pack("{s:s}", "credential", name);
	if (now)
		json_object_set_new(params, "now", json_true());
	if ((err = p11e_cli_add_pin(cli, str(cred, "token_uri"), params)) !=
	    P11E_OK) {
		json_decref(params);
		return err;
	}
	if (!cli->json)
		printf(_("renewing %s (serial %s)...\n"), name,
		    str(cred, "serial"));
	if ((err = p11e_cli_connect(cli, &fd)) != P11E_OK) {
		json_decref(params);
		return err;
	}
	err = p11e_cli_call(fd, "Renew", params, &res, &detail);
	close(fd);
	if (err != P11E_OK) {
		p11e_cli_fail(name, err, detail);
	} else if (cli->json) {
		p11e_cli_print_json(res);
	} else {
		fmt_time(res, "not_after", na, sizeof(na));
		printf(
		    _("renewed: %s\n  serial   %s\n  valid to %s\n  key id   "
		      "%s (the old key stays for the grace period)\n"),
		    name, str(res, "serial"), na, str(res, "id"));
	}
	json_decref(res);
	return err;
}

int
p11e_cmd_renew(struct p11e_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "credential", required_argument, NULL, 'c' },
		{ "now", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	const char *want = NULL, *st;
	json_t *res = NULL, *c;
	enum p11e_err err = P11E_OK, e;
	bool now = false;
	size_t i, n = 0;
	int o;

	optind = 0; /* glibc: a full restart, with argument permutation */
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'c')
			want = optarg;
		else if (o == 'n')
			now = true;
		else
			goto usage;
	}
	if (optind != argc)
		goto usage;
	if ((err = p11e_cli_call_agent(cli, "ListCredentials", NULL, &res)) !=
	    P11E_OK)
		return p11e_cli_exit_code(err);
	json_array_foreach(json_object_get(res, "credentials"), i, c)
	{
		st = str(c, "state");
		if (want != NULL && strcmp(str(c, "credential"), want) != 0)
			continue;
		/* without --credential: every one that can renew */
		if (want == NULL &&
		    (str(c, "serial")[0] == '\0' ||
			strcmp(st, "EXPIRED") == 0 ||
			strcmp(st, "REVOKED") == 0 ||
			strcmp(st, "REJECTED") == 0 ||
			strcmp(st, "NEEDS_OPERATOR") == 0 ||
			strncmp(st, "KEY_", 4) == 0 ||
			strcmp(st, "SUBMITTED") == 0 ||
			strcmp(st, "ISSUED") == 0))
			continue;
		n++;
		e = renew_one(cli, c, now);
		/* the first failure decides the exit code */
		if (err == P11E_OK)
			err = e;
	}
	json_decref(res);
	if (n == 0) {
		p11e_error(want ? "no credential %s (p11enroll list shows them)"
				: "no credential to renew (p11enroll list "
				  "shows them)%s",
		    want ? want : "");
		return P11E_EXIT_FAILURE;
	}
	return p11e_cli_exit_code(err);
usage:
	p11e_error(_("usage: p11enroll renew [--credential ID] [--now]"));
	return P11E_EXIT_USAGE;
}
