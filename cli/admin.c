/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/qr.h"
#include "common/secret.h"

/*
 * p11enroll admin: the administrator's commands (the seed's steps
 * 1.(1)-(10)) through the agent's Admin* methods (doc/ipc.md).  The
 * admin token stays in the agent's memory; every command authenticates
 * with the administrator's key on the token (its PIN is asked each time,
 * or comes from the URI's pin-source).  Secrets are read without echo
 * and passed in the call's parameters only.
 */

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* Adds a secret read from the terminal (or stdin) as params[key]. */
static enum p11e_err
add_secret(
    struct p11e_cli *cli, json_t *params, const char *key, const char *prompt)
{
	struct p11e_secret *s = NULL;
	enum p11e_err err;

	if ((err = p11e_cli_read_secret(prompt, cli->pin_stdin, &s)) != P11E_OK)
		return err;
	err = json_object_set_new(params, key,
		  json_stringn(p11e_secret_str(s), p11e_secret_len(s))) == 0
	    ? P11E_OK
	    : P11E_ERR_INVALID_PARAMETER;
	p11e_secret_free(s);
	return err;
}

/* The token PIN for the admin session's token (AdminStatus says which). */
static enum p11e_err
add_token_pin(struct p11e_cli *cli, json_t *params, bool *logged_in)
{
	json_t *st = NULL;
	enum p11e_err err;

	if ((err = p11e_cli_call_agent(cli, "AdminStatus", NULL, &st)) !=
	    P11E_OK)
		return err;
	*logged_in = json_is_true(json_object_get(st, "logged_in"));
	if (*logged_in)
		err = p11e_cli_add_pin(cli, str(st, "uri"), params);
	json_decref(st);
	return err;
}

static int
admin_login(struct p11e_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "service", required_argument, NULL, 's' },
		{ "token", required_argument, NULL, 't' },
		{ "id", required_argument, NULL, 'i' },
		{ NULL, 0, NULL, 0 },
	};
	const char *service = NULL, *uri = NULL, *id = NULL;
	json_t *p = NULL, *g = NULL, *res = NULL, *ch;
	char prompt[256];
	enum p11e_err err;
	int o, i;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 's')
			service = optarg;
		else if (o == 't')
			uri = optarg;
		else if (o == 'i')
			id = optarg;
		else
			goto usage;
	}
	if (optind != argc || service == NULL || uri == NULL)
		goto usage;
	p = json_pack("{s:s, s:s}", "service", service, "uri", uri);
	if (p == NULL ||
	    (id != NULL &&
		json_object_set_new(p, "id", json_string(id)) != 0)) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	/* the token PIN (for the TLS client key), then the contract PIN */
	if ((err = p11e_cli_add_pin(cli, uri, p)) != P11E_OK ||
	    (err = add_secret(cli, p, "contract_pin",
		 _("Contract PIN (ご契約先暗証番号): "))) != P11E_OK)
		goto out;
	/* the same token PIN again for the grid step */
	g = json_object();
	if (g == NULL ||
	    (json_object_get(p, "pin") != NULL &&
		json_object_set(g, "pin", json_object_get(p, "pin")) != 0) ||
	    (json_object_get(p, "final_try") != NULL &&
		json_object_set(
		    g, "final_try", json_object_get(p, "final_try")) != 0)) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	err = p11e_cli_call_agent(cli, "AdminLogin", p, &res);
	p = NULL;
	if (err != P11E_OK)
		goto out;
	ch = json_object_get(res, "challenge");
	/* the two kana are no secret; on stderr with --json */
	fprintf(cli->json ? stderr : stdout,
	    _("お客様カードの %s と %s の数字を入力してください。\n"
	      "Enter the numbers of %s and %s on your customer card.\n"),
	    json_string_value(json_array_get(ch, 0)),
	    json_string_value(json_array_get(ch, 1)),
	    json_string_value(json_array_get(ch, 0)),
	    json_string_value(json_array_get(ch, 1)));
	fflush(cli->json ? stderr : stdout);
	if (json_object_set_new(g, "answers", json_array()) != 0) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	for (i = 0; i < 2; i++) {
		struct p11e_secret *s = NULL;

		snprintf(prompt, sizeof(prompt),
		    "%s: ", json_string_value(json_array_get(ch, (size_t)i)));
		if ((err = p11e_cli_read_secret(prompt, cli->pin_stdin, &s)) !=
		    P11E_OK)
			goto out;
		json_array_append_new(json_object_get(g, "answers"),
		    json_stringn(p11e_secret_str(s), p11e_secret_len(s)));
		p11e_secret_free(s);
	}
	json_decref(res);
	res = NULL;
	err = p11e_cli_call_agent(cli, "AdminGrid", g, &res);
	g = NULL;
	if (err != P11E_OK)
		goto out;
	if (cli->json)
		p11e_cli_print_json(res);
	else
		printf(
		    _("Logged in as administrator; the session ends after %lld "
		      "idle seconds (at %s at the latest).\n"),
		    (long long)json_integer_value(
			json_object_get(res, "idle_timeout")),
		    str(res, "expires"));
out:
	json_decref(p);
	json_decref(g);
	json_decref(res);
	return p11e_cli_exit_code(err);
usage:
	p11e_error(_("usage: p11enroll admin login --service NAME --token URI "
		     "[--id HEX]"));
	return P11E_EXIT_USAGE;
}

static void
print_users(json_t *res)
{
	char col[9][256];
	json_t *u, *c, *w;
	size_t i;

#define PAD(k, s, w) p11e_cli_pad(col[k], sizeof(col[k]), (s), (w), false)
#define RPAD(k, s, w) p11e_cli_pad(col[k], sizeof(col[k]), (s), (w), true)

	printf(_("契約者ID (contract) %s\n"), str(res, "contract_id"));
	/* the columns by display width: names and headings may be wide */
	printf("%s %s %s %s %s %s %s %s %s %s\n", PAD(0, _("USER"), 10),
	    PAD(1, _("NAME"), 16), RPAD(2, _("ISSUE"), 5),
	    PAD(3, _("STATUS"), 10), PAD(4, _("REGISTERED"), 20),
	    PAD(5, _("SERIAL"), 40), PAD(6, _("VALID UNTIL"), 20),
	    PAD(7, _("ISSUED FROM"), 15), PAD(8, _("KEY"), 8), _("WINDOW"));
	json_array_foreach(json_object_get(res, "users"), i, u)
	{
		char issue[16] = "-";

		c = json_object_get(u, "certificate");
		w = json_object_get(u, "window");
		if (json_is_object(c))
			snprintf(issue, sizeof(issue), "%lld",
			    (long long)json_integer_value(
				json_object_get(c, "issue_no")));
		printf("%s %s %s %-10s %-20s %-40s %-20s %-15s %-8s %s%s\n",
		    PAD(0, str(u, "user_id"), 10), PAD(1, str(u, "name"), 16),
		    RPAD(2, issue, 5),
		    json_is_object(c) ? str(c, "status") : "none",
		    json_is_object(c) ? str(c, "registered") : "-",
		    json_is_object(c) ? str(c, "serial") : "-",
		    json_is_object(c) ? str(c, "not_after") : "-",
		    json_is_object(c) ? str(c, "issued_from") : "-",
		    json_is_object(c) ? str(c, "key_type") : "-",
		    json_is_object(w) ? str(w, "closes") : "-",
		    json_is_true(json_object_get(u, "locked")) ? " (locked)"
							       : "");
	}
#undef PAD
#undef RPAD
}

static void
print_audit(json_t *res)
{
	json_t *r;
	size_t i;

	json_array_foreach(json_object_get(res, "audit"), i, r)
	    printf("%s %-22s %-18s %-20s %-8s %s\n", str(r, "at"),
		str(r, "actor"), str(r, "action"), str(r, "target"),
		str(r, "result"), str(r, "detail"));
}

static int
admin_get(struct p11e_cli *cli, const char *method, int argc)
{
	json_t *p = json_object(), *res = NULL;
	enum p11e_err err;
	bool in;

	if (argc != 1) {
		p11e_error(_("usage: p11enroll admin users|audit"));
		json_decref(p);
		return P11E_EXIT_USAGE;
	}
	if ((err = add_token_pin(cli, p, &in)) == P11E_OK)
		err = p11e_cli_call_agent(cli, method, p, &res);
	else
		json_decref(p);
	if (err == P11E_OK) {
		if (cli->json)
			p11e_cli_print_json(res);
		else if (strcmp(method, "AdminUsers") == 0)
			print_users(res);
		else
			print_audit(res);
	}
	json_decref(res);
	return p11e_cli_exit_code(err);
}

static int
admin_action(struct p11e_cli *cli, const char *action, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "reason", required_argument, NULL, 'r' },
		{ NULL, 0, NULL, 0 },
	};
	const char *reason = NULL, *user;
	json_t *p = NULL, *res = NULL, *inv, *v;
	enum p11e_err err;
	size_t i;
	bool in;
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'r' && strcmp(action, "keep") != 0)
			reason = optarg;
		else
			goto usage;
	}
	if (optind != argc - 1)
		goto usage;
	user = argv[optind];
	if (reason != NULL && strcmp(reason, "expired") != 0 &&
	    strcmp(reason, "lost") != 0 && strcmp(reason, "compromised") != 0)
		goto usage;
	if (strcmp(action, "reissue") == 0 && reason == NULL)
		reason = "expired";
	/* what will happen, before the confirmation PIN */
	if (!cli->json) {
		if (strcmp(action, "reissue") == 0)
			printf(
			    _("Reissue (再発行) for %s: opens an acquisition "
			      "window for a new certificate%s.\n"),
			    user,
			    strcmp(reason, "expired") != 0
				? _("; the current certificate is revoked NOW "
				    "(key compromise)")
				: _("; the current certificate stays valid "
				    "until it expires"));
		else if (strcmp(action, "revoke") == 0)
			printf(
			    _("Revoke (失効) %s: the user's certificates go "
			      "on the CRL and no new one can be enrolled.\n"),
			    user);
		else
			printf(_("Keep (現在の電子証明書を継続する) for %s: an "
				 "open acquisition window closes; nothing else "
				 "changes.\n"),
			    user);
		fflush(stdout);
	}
	p = json_pack("{s:s, s:s}", "user", user, "action", action);
	if (p == NULL ||
	    (reason != NULL &&
		json_object_set_new(p, "reason", json_string(reason)) != 0)) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((err = add_token_pin(cli, p, &in)) != P11E_OK)
		goto out;
	if (!in) {
		p11e_error(_("no admin session: p11enroll admin login"));
		err = P11E_ERR_CREDENTIALS_REQUIRED;
		goto out;
	}
	if ((err = add_secret(cli, p, "confirmation_pin",
		 _("Confirmation PIN (ご契約先確認暗証番号): "))) != P11E_OK)
		goto out;
	err = p11e_cli_call_agent(cli, "AdminCertificate", p, &res);
	p = NULL;
	if (err != P11E_OK)
		goto out;
	if (cli->json) {
		p11e_cli_print_json(res);
		goto out;
	}
	json_array_foreach(json_object_get(res, "revoked"), i, v)
	    printf(_("Revoked certificate %s.\n"), json_string_value(v));
	if (json_is_true(json_object_get(res, "window_closed")))
		printf(_("The acquisition window of %s is closed.\n"), user);
	if ((inv = json_object_get(res, "invitation")) != NULL) {
		printf(_("Acquisition window open until %s.  Tell the user:\n"),
		    str(inv, "window_closes"));
		printf(_("  service URL:             %s\n"
			 "  server pin:              %s\n"
			 "  契約者ID (contract ID):  %s\n"
			 "  利用者ID (user ID):      %s\n"
			 "  取得可能期間 (until):    %s\n"),
		    str(inv, "url")[0] ? str(inv, "url") : "(ask the bank)",
		    str(inv, "server_pin"), str(inv, "contract_id"),
		    str(inv, "user_id"), str(inv, "window_closes"));
	} else if (strcmp(action, "keep") == 0 &&
	    !json_is_true(json_object_get(res, "window_closed"))) {
		printf(_("No window was open: nothing changed.\n"));
	}
out:
	json_decref(p);
	json_decref(res);
	return p11e_cli_exit_code(err);
usage:
	p11e_error(_("usage: p11enroll admin %s USER%s"), action,
	    strcmp(action, "keep") == 0
		? ""
		: " [--reason expired|lost|compromised]");
	return P11E_EXIT_USAGE;
}

/*
 * Calls method {user, confirmation_pin} after saying what it will do
 * ("TITLE USER: EFFECT"), with the token PIN and the confirmation PIN.
 * *res: the agent's result.
 */
static enum p11e_err
user_confirmed(struct p11e_cli *cli, const char *method, const char *user,
    const char *title, const char *effect, json_t **res)
{
	json_t *p = NULL;
	enum p11e_err err;
	bool in;

	if (!cli->json) {
		printf("%s %s: %s\n", title, user, effect);
		fflush(stdout);
	}
	if ((p = json_pack("{s:s}", "user", user)) == NULL)
		return P11E_ERR_NOMEM;
	if ((err = add_token_pin(cli, p, &in)) != P11E_OK)
		goto out;
	if (!in) {
		p11e_error(_("no admin session: p11enroll admin login"));
		err = P11E_ERR_CREDENTIALS_REQUIRED;
		goto out;
	}
	if ((err = add_secret(cli, p, "confirmation_pin",
		 _("Confirmation PIN (ご契約先確認暗証番号): "))) != P11E_OK)
		goto out;
	err = p11e_cli_call_agent(cli, method, p, res);
	p = NULL;
out:
	json_decref(p);
	return err;
}

static int
admin_unlock(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *res = NULL;
	enum p11e_err err;

	if (argc != 2) {
		p11e_error(_("usage: p11enroll admin unlock USER"));
		return P11E_EXIT_USAGE;
	}
	if ((err = user_confirmed(cli, "AdminUnlock", argv[1],
		 _("Unlock (ロック解除)"),
		 _("its failure counters are cleared and it can log in again."),
		 &res)) != P11E_OK)
		goto out;
	if (cli->json)
		p11e_cli_print_json(res);
	else
		printf(_("%s unlocked (it was %slocked, %lld failures, %lld on "
			 "the card).\n"),
		    str(res, "user_id"),
		    json_is_true(json_object_get(res, "was_locked"))
			? ""
			: _("not "),
		    (long long)json_integer_value(
			json_object_get(res, "failures")),
		    (long long)json_integer_value(
			json_object_get(res, "grid_failures")));
out:
	json_decref(res);
	return p11e_cli_exit_code(err);
}

static int
admin_otp(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *res = NULL;
	enum p11e_err err;

	if (argc != 2) {
		p11e_error(_("usage: p11enroll admin otp USER"));
		return P11E_EXIT_USAGE;
	}
	if ((err = user_confirmed(cli, "AdminOtp", argv[1],
		 _("One-time password registration (ワンタイムパスワード登録) "
		   "for"),
		 _("a new TOTP secret replaces its current one, which stops "
		   "working at once."),
		 &res)) != P11E_OK)
		goto out;
	if (cli->json) {
		p11e_cli_print_json(res);
	} else {
		printf(_("One-time password token %s assigned to %s.\n"
			 "Scan into an authenticator app (shown only once):\n"
			 "  %s\n"),
		    str(res, "serial"), str(res, "user_id"),
		    str(res, "otpauth_uri"));
		p11e_qr_print(str(res, "otpauth_uri"));
	}
out:
	json_decref(res);
	return p11e_cli_exit_code(err);
}

static void
print_invitation(json_t *inv)
{
	printf(_("Acquisition window open until %s.  Tell the user:\n"),
	    str(inv, "window_closes"));
	printf(_("  service URL:             %s\n"
		 "  server pin:              %s\n"
		 "  契約者ID (contract ID):  %s\n"
		 "  利用者ID (user ID):      %s\n"
		 "  取得可能期間 (until):    %s\n"),
	    str(inv, "url")[0] ? str(inv, "url") : "(ask the bank)",
	    str(inv, "server_pin"), str(inv, "contract_id"),
	    str(inv, "user_id"), str(inv, "window_closes"));
}

static int
admin_user_add(struct p11e_cli *cli, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "name", required_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct p11e_secret *pw = NULL, *pw2 = NULL;
	const char *name = NULL, *user;
	json_t *p = NULL, *res = NULL;
	enum p11e_err err;
	bool in;
	int o;

	optind = 0;
	while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (o == 'n')
			name = optarg;
		else
			goto usage;
	}
	if (optind != argc - 1 || name == NULL)
		goto usage;
	user = argv[optind];
	if (!cli->json) {
		printf(_("User registration (利用者情報登録): %s (%s) with an "
			 "initial password and an acquisition window.\n"),
		    user, name);
		fflush(stdout);
	}
	if ((p = json_pack("{s:s, s:s}", "user_id", user, "name", name)) ==
	    NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((err = add_token_pin(cli, p, &in)) != P11E_OK)
		goto out;
	if (!in) {
		p11e_error(_("no admin session: p11enroll admin login"));
		err = P11E_ERR_CREDENTIALS_REQUIRED;
		goto out;
	}
	if ((err = p11e_cli_read_secret(
		 _("Initial password (利用者暗証番号): "), cli->pin_stdin,
		 &pw)) != P11E_OK ||
	    (!cli->pin_stdin &&
		(err = p11e_cli_read_secret(_("Repeat it: "), false, &pw2)) !=
		    P11E_OK))
		goto out;
	if (pw2 != NULL && !p11e_secret_equal(pw, pw2)) {
		p11e_error(_("the passwords differ"));
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	json_object_set_new(p, "password",
	    json_stringn(p11e_secret_str(pw), p11e_secret_len(pw)));
	if ((err = add_secret(cli, p, "confirmation_pin",
		 _("Confirmation PIN (ご契約先確認暗証番号): "))) != P11E_OK)
		goto out;
	err = p11e_cli_call_agent(cli, "AdminUserAdd", p, &res);
	p = NULL;
	if (err != P11E_OK)
		goto out;
	if (cli->json) {
		p11e_cli_print_json(res);
	} else {
		printf(_("User %s added.\n"), user);
		print_invitation(json_object_get(res, "invitation"));
	}
out:
	p11e_secret_free(pw);
	p11e_secret_free(pw2);
	json_decref(p);
	json_decref(res);
	return p11e_cli_exit_code(err);
usage:
	p11e_error(_("usage: p11enroll admin user-add USER --name NAME"));
	return P11E_EXIT_USAGE;
}

static int
admin_logout(struct p11e_cli *cli, int argc)
{
	json_t *p = json_object(), *res = NULL;
	enum p11e_err err;
	bool in;

	if (argc != 1) {
		json_decref(p);
		p11e_error(_("usage: p11enroll admin logout"));
		return P11E_EXIT_USAGE;
	}
	if ((err = add_token_pin(cli, p, &in)) == P11E_OK)
		err = p11e_cli_call_agent(cli, "AdminLogout", p, &res);
	else
		json_decref(p);
	if (err == P11E_OK) {
		if (cli->json)
			p11e_cli_print_json(res);
		else
			printf(_("Logged out.\n"));
	}
	json_decref(res);
	return p11e_cli_exit_code(err);
}

static int
admin_status(struct p11e_cli *cli)
{
	json_t *res = NULL;
	enum p11e_err err;

	if ((err = p11e_cli_call_agent(cli, "AdminStatus", NULL, &res)) !=
	    P11E_OK)
		return p11e_cli_exit_code(err);
	if (cli->json)
		p11e_cli_print_json(res);
	else if (json_is_true(json_object_get(res, "logged_in")))
		printf(
		    _("Logged in to %s (%lld idle seconds left, ends %s).\n"),
		    str(res, "service"),
		    (long long)json_integer_value(
			json_object_get(res, "idle_left")),
		    str(res, "expires"));
	else if (json_is_true(json_object_get(res, "pending")))
		printf(_("Waiting for the customer card answer.\n"));
	else
		printf(_("Not logged in.\n"));
	json_decref(res);
	return P11E_EXIT_OK;
}

/*
 * admin enroll: the user enrollment (cli/enroll.c, the same journaling
 * and checks) with the bank's one-time code instead of the password and
 * the one-time password.
 */
static int
admin_enroll(struct p11e_cli *cli, int argc, char **argv)
{
	char *args[32];
	int i, n = 0;

	if (argc > 30) {
		p11e_error(_("usage: p11enroll admin enroll --service NAME "
			     "[--token URI] ..."));
		return P11E_EXIT_USAGE;
	}
	for (i = 0; i < argc; i++)
		args[n++] = argv[i];
	args[n++] = (char *)"--admin-code";
	args[n] = NULL;
	return p11e_cmd_enroll(cli, n, args);
}

int
p11e_cmd_admin(struct p11e_cli *cli, int argc, char **argv)
{
	const char *sub = argc > 1 ? argv[1] : "";

	if (strcmp(sub, "enroll") == 0)
		return admin_enroll(cli, argc - 1, argv + 1);
	if (strcmp(sub, "login") == 0)
		return admin_login(cli, argc - 1, argv + 1);
	if (strcmp(sub, "users") == 0)
		return admin_get(cli, "AdminUsers", argc - 1);
	if (strcmp(sub, "audit") == 0)
		return admin_get(cli, "AdminAudit", argc - 1);
	if (strcmp(sub, "reissue") == 0 || strcmp(sub, "revoke") == 0 ||
	    strcmp(sub, "keep") == 0)
		return admin_action(cli, sub, argc - 1, argv + 1);
	if (strcmp(sub, "user-add") == 0)
		return admin_user_add(cli, argc - 1, argv + 1);
	if (strcmp(sub, "unlock") == 0)
		return admin_unlock(cli, argc - 1, argv + 1);
	if (strcmp(sub, "otp") == 0)
		return admin_otp(cli, argc - 1, argv + 1);
	if (strcmp(sub, "logout") == 0)
		return admin_logout(cli, argc - 1);
	if (strcmp(sub, "status") == 0)
		return admin_status(cli);
	p11e_error(
	    _("usage: p11enroll admin "
	      "enroll|login|users|user-add|reissue|revoke|keep|unlock|otp|"
	      "audit|logout|status ..."));
	return P11E_EXIT_USAGE;
}
