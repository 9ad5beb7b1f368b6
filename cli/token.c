/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/i18n.h"
#include "common/log.h"

/* The token commands: tokens, token objects|keygen|csr|import|delete. */

#define FILE_MAX (256 * 1024)

static const char *
str(json_t *o, const char *k)
{
	const char *s = json_string_value(json_object_get(o, k));

	return s ? s : "";
}

static bool
flag(json_t *o, const char *k)
{
	return json_is_true(json_object_get(json_object_get(o, "flags"), k));
}

static void
print_token(json_t *t)
{
	static const char *const flags[] = { "login_required", "protected_auth",
		"write_protected", "pin_count_low", "pin_final_try",
		"pin_locked", "pin_to_be_changed" };
	json_t *types = json_object_get(t, "key_types"), *v;
	size_t i, n = 0;

	if (!json_is_true(json_object_get(t, "present"))) {
		printf(_("module %s: empty slot\n"), str(t, "module"));
		return;
	}
	printf("%s\n", str(t, "uri"));
	printf(_("  token:  %s (serial %s, %s, %s)\n"), str(t, "label"),
	    str(t, "serial"), str(t, "model"), str(t, "manufacturer"));
	printf(_("  module: %s (%s)\n"), str(t, "module"), str(t, "library"));
	printf(_("  flags: "));
	for (i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		if (flag(t, flags[i]))
			printf("%s%s", n++ ? ", " : " ", flags[i]);
	}
	printf("%s\n", n ? "" : " none");
	printf(_("  keys:  "));
	json_array_foreach(types, i, v) printf(" %s", json_string_value(v));
	if (json_array_size(types) == 0)
		printf(_(" none (cannot generate keys p11enroll uses)"));
	if (!json_is_true(json_object_get(t, "rsa_tls13")))
		printf(_("  (RSA: TLS 1.2 only)"));
	printf("\n");
}

int
p11e_cmd_tokens(struct p11e_cli *cli, int argc, char **argv)
{
	json_t *params, *result, *t;
	enum p11e_err err;
	size_t i;

	if (argc > 2) {
		p11e_error(_("usage: p11enroll tokens [URI]"));
		return P11E_EXIT_USAGE;
	}
	params = json_object();
	if (argc == 2)
		json_object_set_new(params, "uri", json_string(argv[1]));
	err = p11e_cli_call_agent(cli, "ListTokens", params, &result);
	if (err != P11E_OK)
		return p11e_cli_exit_code(err);
	if (cli->json) {
		p11e_cli_print_json(result);
	} else {
		json_array_foreach(json_object_get(result, "tokens"), i, t)
		    print_token(t);
		if (json_array_size(json_object_get(result, "tokens")) == 0)
			printf(_("no token%s\n"), argc == 2 ? " matches" : "s");
	}
	json_decref(result);
	return P11E_EXIT_OK;
}

/*
 * Adds "pin" to params when the token needs one typed in: not when the
 * URI has a pin-source (or a pin-value, which the agent refuses), nor for
 * a PIN pad, nor when the URI does not name exactly one token (the agent
 * then reports what it found).  Adds "final_try" for --final-try.
 */
enum p11e_err
p11e_cli_add_pin(struct p11e_cli *cli, const char *uri, json_t *params)
{
	struct p11e_secret *pin = NULL;
	json_t *q, *res = NULL, *toks, *t;
	char prompt[256];
	enum p11e_err err;

	/* a PIN file can be the last try too */
	if (cli->final_try)
		json_object_set_new(params, "final_try", json_true());
	/* the agent refuses pin-value: no PIN to ask for */
	if (strstr(uri, "pin-source=") != NULL ||
	    strstr(uri, "pin-value=") != NULL)
		return P11E_OK;
	q = json_pack("{s:s}", "uri", uri);
	if ((err = p11e_cli_call_agent(cli, "ListTokens", q, &res)) != P11E_OK)
		return err;
	toks = json_object_get(res, "tokens");
	t = json_array_get(toks, 0);
	if (json_array_size(toks) != 1 || flag(t, "protected_auth") ||
	    flag(t, "pin_locked")) {
		json_decref(res);
		return P11E_OK;
	}
	if (flag(t, "pin_final_try"))
		p11e_info(_("warning: one more wrong PIN locks '%s'%s"),
		    str(t, "label"),
		    cli->final_try ? "" : " (--final-try to try anyway)");
	if (flag(t, "pin_final_try") && !cli->final_try) {
		/* not even asked: the agent refuses to try (PinFinalTry) */
		json_decref(res);
		return P11E_OK;
	} else if (flag(t, "pin_count_low"))
		p11e_info(_("warning: '%s' says few PIN tries are left"),
		    str(t, "label"));
	snprintf(prompt, sizeof(prompt), _("PIN for '%s' (serial %s): "),
	    str(t, "label"), str(t, "serial"));
	json_decref(res);
	if ((err = p11e_cli_read_secret(prompt, cli->pin_stdin, &pin)) !=
	    P11E_OK)
		return err;
	json_object_set_new(params, "pin",
	    json_stringn(
		(const char *)p11e_secret_data(pin), p11e_secret_len(pin)));
	p11e_secret_free(pin);
	return P11E_OK;
}

/* Reads a whole (public) file for import, bounded. */
static enum p11e_err
read_file(const char *path, struct p11e_buf *out)
{
	unsigned char chunk[4096];
	enum p11e_err err = P11E_OK;
	ssize_t n;
	int fd;

	fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		p11e_error(_("cannot open %s: %s"), path, strerror(errno));
		return P11E_ERR_IO;
	}
	while (err == P11E_OK && (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			p11e_error(
			    _("cannot read %s: %s"), path, strerror(errno));
			err = P11E_ERR_IO;
		} else if ((err = p11e_buf_append(out, chunk, (size_t)n)) ==
		    P11E_ERR_TOO_LARGE) {
			p11e_error(
			    _("%s is larger than %d bytes"), path, FILE_MAX);
		}
	}
	if (fd != 0)
		close(fd);
	return err;
}

static void
print_object(json_t *o)
{
	printf("%-12s %-8s id %s", str(o, "kind"), str(o, "key_type"),
	    str(o, "id"));
	if (str(o, "label")[0] != '\0')
		printf(_("  label \"%s\""), str(o, "label"));
	printf("\n");
	if (strcmp(str(o, "kind"), "certificate") == 0) {
		printf(_("    subject   %s\n"), str(o, "subject"));
		printf(_("    issuer    %s\n"), str(o, "issuer"));
		printf(_("    serial    %s, valid until %s UTC%s\n"),
		    str(o, "serial"), str(o, "not_after"),
		    json_is_true(json_object_get(o, "authority"))
			? ", CA certificate"
			: "");
	}
	printf("    %s\n", str(o, "uri"));
}

static void
sub_usage(void)
{
	p11e_error(_("usage:\n"
		     "  p11enroll token objects URI [--login]\n"
		     "  p11enroll token keygen URI [--type TYPE] [--id HEX] "
		     "[--label TEXT]\n"
		     "  p11enroll token csr URI --id HEX (--subject /CN=... | "
		     "--copy-from CERT.pem) [--out FILE]\n"
		     "  p11enroll token import URI FILE.pem [--id HEX] "
		     "[--label TEXT]\n"
		     "  p11enroll token delete URI --id HEX"));
}

int
p11e_cmd_token(struct p11e_cli *cli, int argc, char **argv)
{
	enum { O_TYPE = 256, O_ID, O_LABEL, O_SUBJECT, O_COPY, O_OUT, O_LOGIN };
	static const struct option opts[] = {
		{ "type", required_argument, NULL, O_TYPE },
		{ "id", required_argument, NULL, O_ID },
		{ "label", required_argument, NULL, O_LABEL },
		{ "subject", required_argument, NULL, O_SUBJECT },
		{ "copy-from", required_argument, NULL, O_COPY },
		{ "out", required_argument, NULL, O_OUT },
		{ "login", no_argument, NULL, O_LOGIN },
		{ NULL, 0, NULL, 0 },
	};
	const char *verb, *uri, *type = NULL, *id = NULL, *label = NULL,
				*subject = NULL, *copy = NULL, *outfile = NULL,
				*file = NULL, *method;
	json_t *params = NULL, *result = NULL, *o;
	struct p11e_buf buf;
	bool login = false, need_pin = true;
	enum p11e_err err;
	int c, rc = P11E_EXIT_FAILURE;
	size_t i;
	FILE *f;

	if (argc < 3) {
		sub_usage();
		return P11E_EXIT_USAGE;
	}
	verb = argv[1];
	optind = 0; /* restart getopt on the verb's arguments */
	while ((c = getopt_long(argc - 1, argv + 1, "", opts, NULL)) != -1) {
		switch (c) {
		case O_TYPE:
			type = optarg;
			break;
		case O_ID:
			id = optarg;
			break;
		case O_LABEL:
			label = optarg;
			break;
		case O_SUBJECT:
			subject = optarg;
			break;
		case O_COPY:
			copy = optarg;
			break;
		case O_OUT:
			outfile = optarg;
			break;
		case O_LOGIN:
			login = true;
			break;
		default:
			sub_usage();
			return P11E_EXIT_USAGE;
		}
	}
	/* argv + 1 was permuted: the positional arguments follow optind */
	if (optind >= argc - 1) {
		sub_usage();
		return P11E_EXIT_USAGE;
	}
	uri = argv[1 + optind];
	if (optind + 1 < argc - 1)
		file = argv[1 + optind + 1];
	p11e_buf_init(&buf, FILE_MAX);
	params = json_pack("{s:s}", "uri", uri);
	if (strcmp(verb, "objects") == 0 && file == NULL) {
		method = "ListObjects";
		need_pin = login;
		if (login)
			json_object_set_new(params, "login", json_true());
	} else if (strcmp(verb, "keygen") == 0 && file == NULL) {
		method = "GenerateKey";
		if (type != NULL)
			json_object_set_new(params, "type", json_string(type));
	} else if (strcmp(verb, "csr") == 0 && file == NULL && id != NULL &&
	    (subject != NULL) != (copy != NULL)) {
		method = "MakeCSR";
		if (subject != NULL)
			json_object_set_new(
			    params, "subject", json_string(subject));
		else if (read_file(copy, &buf) != P11E_OK)
			goto out;
		else
			json_object_set_new(params, "copy_from",
			    json_stringn((char *)buf.data, buf.len));
	} else if (strcmp(verb, "import") == 0 && file != NULL) {
		method = "ImportCertificates";
		if (read_file(file, &buf) != P11E_OK)
			goto out;
		json_object_set_new(
		    params, "pem", json_stringn((char *)buf.data, buf.len));
	} else if (strcmp(verb, "delete") == 0 && file == NULL && id != NULL) {
		method = "DeleteObjects";
	} else {
		sub_usage();
		rc = P11E_EXIT_USAGE;
		goto out;
	}
	if (id != NULL)
		json_object_set_new(params, "id", json_string(id));
	if (label != NULL)
		json_object_set_new(params, "label", json_string(label));
	if (need_pin && (err = p11e_cli_add_pin(cli, uri, params)) != P11E_OK) {
		rc = p11e_cli_exit_code(err);
		goto out;
	}
	err = p11e_cli_call_agent(cli, method, params, &result);
	params = NULL; /* transferred */
	if (err != P11E_OK) {
		rc = p11e_cli_exit_code(err);
		goto out;
	}
	rc = P11E_EXIT_OK;
	if (cli->json) {
		p11e_cli_print_json(result);
	} else if (strcmp(method, "ListObjects") == 0) {
		json_array_foreach(json_object_get(result, "objects"), i, o)
		    print_object(o);
		if (json_array_size(json_object_get(result, "objects")) == 0)
			printf(_("no objects%s\n"),
			    login ? "" : " visible without login (--login)");
	} else if (strcmp(method, "GenerateKey") == 0) {
		printf(_("generated %s key pair, id %s\n"),
		    str(result, "key_type"), str(result, "id"));
		if (str(result, "note")[0] != '\0')
			printf(_("note: %s\n"), str(result, "note"));
	} else if (strcmp(method, "MakeCSR") == 0) {
		f = outfile ? fopen(outfile, "w") : stdout;
		if (f == NULL) {
			p11e_error(
			    _("cannot write %s: %s"), outfile, strerror(errno));
			rc = P11E_EXIT_FAILURE;
			goto out;
		}
		fputs(str(result, "csr"), f);
		if (f != stdout && fclose(f) != 0) {
			p11e_error(_("cannot write %s"), outfile);
			rc = P11E_EXIT_FAILURE;
		}
	} else if (strcmp(method, "ImportCertificates") == 0) {
		if (json_is_true(json_object_get(result, "verified")))
			printf(_("stored the certificate of key %s and checked "
				 "that they belong together (signed on the "
				 "token, verified with the certificate)\n"),
			    str(result, "id"));
		printf(_("CA certificates: %lld added, %lld already present\n"),
		    (long long)json_integer_value(
			json_object_get(result, "ca_added")),
		    (long long)json_integer_value(
			json_object_get(result, "ca_present")));
	} else {
		printf(_("deleted %lld object(s) with id %s\n"),
		    (long long)json_integer_value(
			json_object_get(result, "deleted")),
		    id);
	}
out:
	json_decref(params);
	json_decref(result);
	p11e_buf_clear(&buf);
	return rc;
}
