/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "agent/est.h"
#include "agent/journal.h"
#include "common/log.h"
#include "common/num.h"
#include "common/rundir.h"
#include "common/secret.h"

#define JOURNAL_VERSION 1
#define SUBDIR "credentials"

static const char *const state_names[] = {
	"KEY_PENDING",
	"KEY_READY",
	"SUBMITTED",
	"ISSUED",
	"INSTALLED",
	"REJECTED",
	"NEEDS_OPERATOR",
	"RENEW_DUE",
	"RENEW_KEY_READY",
	"RENEW_SUBMITTED",
	"RENEW_ISSUED",
	"EXPIRED",
	"REVOKED",
};

static const char *const wait_names[] = {
	"",
	"WAITING_PIN",
	"WAITING_SERVER",
	"WAITING_TOKEN",
};

const char *
p11e_cred_state_name(enum p11e_cred_state s)
{
	if ((size_t)s >= sizeof(state_names) / sizeof(state_names[0]))
		return NULL;
	return state_names[s];
}

const char *
p11e_cred_display_state(const struct p11e_cred *c)
{
	if (c->wait != P11E_WAIT_NONE &&
	    (size_t)c->wait < sizeof(wait_names) / sizeof(wait_names[0]))
		return wait_names[c->wait];
	return p11e_cred_state_name(c->state);
}

void
p11e_cred_init(struct p11e_cred *c)
{
	memset(c, 0, sizeof(*c));
	c->renew_before = -1;
}

static void
der_clear(struct p11e_der *d)
{
	free(d->data);
	d->data = NULL;
	d->len = 0;
}

void
p11e_cred_clear(struct p11e_cred *c)
{
	size_t i;

	der_clear(&c->spki);
	der_clear(&c->csr);
	der_clear(&c->cert);
	der_clear(&c->new_spki);
	der_clear(&c->new_cert);
	der_clear(&c->old_cert);
	for (i = 0; i < P11E_CRED_CHAIN_MAX; i++)
		der_clear(&c->chain[i]);
	p11e_wipe(c, sizeof(*c));
}

enum p11e_err
p11e_der_set(struct p11e_der *d, const unsigned char *data, size_t len)
{
	unsigned char *p;

	if (len == 0 || (p = malloc(len)) == NULL)
		return len == 0 ? P11E_ERR_INVALID_PARAMETER : P11E_ERR_NOMEM;
	memcpy(p, data, len);
	free(d->data);
	d->data = p;
	d->len = len;
	return P11E_OK;
}

static json_t *
b64(const struct p11e_der *d)
{
	unsigned char *out;
	json_t *j;

	if (d->len == 0)
		return json_null();
	if ((out = malloc(4 * ((d->len + 2) / 3) + 1)) == NULL)
		return NULL;
	EVP_EncodeBlock(out, d->data, (int)d->len);
	j = json_string((char *)out);
	free(out);
	return j;
}

static void
hex(char *dst, const unsigned char *p, size_t len)
{
	size_t i;

	dst[0] = '\0';
	for (i = 0; i < len; i++)
		snprintf(dst + 2 * i, 3, "%02x", p[i]);
}

/* The optional "renewal" member: scheduling and the pairs in rotation. */
static enum p11e_err
encode_renewal(const struct p11e_cred *c, json_t *j)
{
	char nid[2 * P11E_ID_MAX + 1], oid[2 * P11E_ID_MAX + 1];
	json_t *r;

	hex(nid, c->new_id, c->new_idlen);
	hex(oid, c->old_id, c->old_idlen);
	r = json_pack("{s:I, s:I, s:s, s:I, s:b, s:s, s:o, s:o, s:s, s:o, "
		      "s:I, s:b, s:I}",
	    "next_action", (json_int_t)c->next_action, "renew_before",
	    (json_int_t)c->renew_before, "wait", wait_names[c->wait], "retries",
	    (json_int_t)c->retries, "same_key", c->same_key, "new_id", nid,
	    "new_spki", b64(&c->new_spki), "new_certificate", b64(&c->new_cert),
	    "old_id", oid, "old_certificate", b64(&c->old_cert),
	    "old_remove_at", (json_int_t)c->old_remove_at, "old_same_key",
	    c->old_same_key, "notices", (json_int_t)c->notices);
	if (r == NULL || json_object_set_new(j, "renewal", r) != 0)
		return P11E_ERR_NOMEM;
	return P11E_OK;
}

enum p11e_err
p11e_journal_encode(const struct p11e_cred *c, struct p11e_buf *out)
{
	char idhex[2 * P11E_ID_MAX + 1];
	json_t *j, *chain;
	enum p11e_err err = P11E_ERR_NOMEM;
	char *text = NULL;
	size_t i;

	hex(idhex, c->id, c->idlen);
	if ((chain = json_array()) == NULL)
		return P11E_ERR_NOMEM;
	for (i = 0; i < c->nchain; i++)
		json_array_append_new(chain, b64(&c->chain[i]));
	j = json_pack("{s:i, s:s, s:s, s:s, "
		      "s:{s:s, s:s, s:s}, "
		      "s:{s:s, s:s, s:o}, "
		      "s:s, s:s, s:o, s:o, s:o, "
		      "s:s, s:s, s:I, s:I, s:I, s:I, "
		      "s:{s:s?, s:s}}",
	    "p11enroll_credential", JOURNAL_VERSION, "name", c->name, "service",
	    c->service, "state", p11e_cred_state_name(c->state), "token", "uri",
	    c->token_uri, "serial", c->token_serial, "label", c->token_label,
	    "key", "type", p11e_key_type_name(c->key_type), "id", idhex, "spki",
	    b64(&c->spki), "contract_id", c->contract_id, "user_id", c->user_id,
	    "csr", b64(&c->csr), "certificate", b64(&c->cert), "chain", chain,
	    "subject", c->subject, "serial", c->serial, "not_before",
	    (json_int_t)c->not_before, "not_after", (json_int_t)c->not_after,
	    "created", (json_int_t)c->created, "updated",
	    (json_int_t)c->updated, "last_error", "name",
	    c->last_err != P11E_OK ? p11e_err_name(c->last_err) : NULL,
	    "message", c->last_error);
	if (j == NULL)
		return P11E_ERR_NOMEM;
	if ((err = encode_renewal(c, j)) != P11E_OK) {
		json_decref(j);
		return err;
	}
	err = P11E_ERR_NOMEM;
	text = json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (text != NULL && (err = p11e_buf_append_str(out, text)) == P11E_OK)
		err = p11e_buf_append(out, "\n", 1);
	if (text != NULL) {
		/* jansson's allocator (a wiping one in the agent) made it */
		json_malloc_t jm;
		json_free_t jf;

		json_get_alloc_funcs(&jm, &jf);
		jf(text);
	}
	json_decref(j);
	return err;
}

/* Reads member key of o as a string into dst (dlen bytes). */
static bool
get_str(json_t *o, const char *key, char *dst, size_t dlen, bool empty_ok)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) >= dlen ||
	    strlen(json_string_value(v)) != json_string_length(v) ||
	    (!empty_ok && json_string_length(v) == 0))
		return false;
	memcpy(dst, json_string_value(v), json_string_length(v) + 1);
	return true;
}

static bool
get_der(json_t *o, const char *key, struct p11e_der *d)
{
	json_t *v = json_object_get(o, key);
	struct p11e_buf b;
	bool ok;

	if (json_is_null(v))
		return true;
	if (!json_is_string(v))
		return false;
	p11e_buf_init(&b, P11E_JOURNAL_FILE_MAX);
	ok = p11e_est_b64_decode(
		 json_string_value(v), json_string_length(v), &b) == P11E_OK &&
	    p11e_der_set(d, b.data, b.len) == P11E_OK;
	p11e_buf_clear(&b);
	return ok;
}

static bool
get_time(json_t *o, const char *key, time_t *t)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return false;
	*t = (time_t)json_integer_value(v);
	return true;
}

static bool
valid_name(const char *s)
{
	size_t i;

	for (i = 0; s[i] != '\0'; i++) {
		if (!((s[i] >= 'a' && s[i] <= 'z') ||
			(s[i] >= 'A' && s[i] <= 'Z') ||
			(s[i] >= '0' && s[i] <= '9') || s[i] == '-' ||
			s[i] == '_' || s[i] == '.'))
			return false;
	}
	return i > 0 && s[0] != '.';
}

static bool
unhex(const char *s, unsigned char *out, size_t *len)
{
	size_t n = strlen(s), i;
	unsigned int v;

	if (n == 0 || n % 2 || n / 2 > P11E_ID_MAX)
		return false;
	for (i = 0; i < n; i += 2) {
		if (sscanf(s + i, "%2x", &v) != 1 ||
		    !strchr("0123456789abcdef", s[i]) ||
		    !strchr("0123456789abcdef", s[i + 1]))
			return false;
		out[i / 2] = (unsigned char)v;
	}
	*len = n / 2;
	return true;
}

static bool
get_id(json_t *o, const char *key, unsigned char *id, size_t *len)
{
	json_t *v = json_object_get(o, key);

	*len = 0;
	if (!json_is_string(v))
		return false;
	if (json_string_length(v) == 0)
		return true;
	return unhex(json_string_value(v), id, len);
}

/* The optional "renewal" member (absent in records of older agents). */
static const char *
parse_renewal(json_t *r, struct p11e_cred *c)
{
	json_t *v;
	size_t i;

	if (r == NULL)
		return NULL;
	if (!json_is_object(r))
		return "renewal";
	v = json_object_get(r, "renew_before");
	if (!json_is_integer(v) || json_integer_value(v) < -1)
		return "renewal.renew_before";
	c->renew_before = (long long)json_integer_value(v);
	v = json_object_get(r, "retries");
	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > 1000)
		return "renewal.retries";
	c->retries = (unsigned int)json_integer_value(v);
	if (!get_time(r, "next_action", &c->next_action) ||
	    !get_time(r, "old_remove_at", &c->old_remove_at))
		return "renewal times";
	v = json_object_get(r, "wait");
	for (i = 0; json_is_string(v) &&
	     i < sizeof(wait_names) / sizeof(wait_names[0]);
	     i++) {
		if (strcmp(json_string_value(v), wait_names[i]) == 0)
			break;
	}
	if (!json_is_string(v) ||
	    i == sizeof(wait_names) / sizeof(wait_names[0]))
		return "renewal.wait";
	c->wait = (enum p11e_cred_wait)i;
	if (!json_is_boolean(json_object_get(r, "same_key")) ||
	    !json_is_boolean(json_object_get(r, "old_same_key")))
		return "renewal.same_key";
	c->same_key = json_is_true(json_object_get(r, "same_key"));
	c->old_same_key = json_is_true(json_object_get(r, "old_same_key"));
	if (!get_id(r, "new_id", c->new_id, &c->new_idlen) ||
	    !get_id(r, "old_id", c->old_id, &c->old_idlen))
		return "renewal ids";
	if (!get_der(r, "new_spki", &c->new_spki) ||
	    !get_der(r, "new_certificate", &c->new_cert) ||
	    !get_der(r, "old_certificate", &c->old_cert))
		return "renewal objects";
	/* optional: absent in records of older agents */
	v = json_object_get(r, "notices");
	if (v != NULL &&
	    (!json_is_integer(v) || json_integer_value(v) < 0 ||
		json_integer_value(v) > 0xff))
		return "renewal.notices";
	c->notices = v != NULL ? (unsigned int)json_integer_value(v) : 0;
	return NULL;
}

enum p11e_err
p11e_journal_parse(
    const void *buf, size_t len, struct p11e_cred *c, char *detail, size_t dlen)
{
	char state[32], type[16], idhex[2 * P11E_ID_MAX + 1], ename[64];
	json_t *j, *tok, *key, *chain, *le, *v;
	const char *what = NULL;
	json_error_t jerr;
	size_t i;

	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(j)) {
		snprintf(detail, dlen, "not a JSON object (%s, line %d)",
		    j ? "wrong type" : jerr.text, jerr.line);
		json_decref(j);
		return P11E_ERR_JOURNAL_CORRUPT;
	}
	tok = json_object_get(j, "token");
	key = json_object_get(j, "key");
	chain = json_object_get(j, "chain");
	le = json_object_get(j, "last_error");
	v = json_object_get(j, "p11enroll_credential");
	if (!json_is_integer(v) || json_integer_value(v) != JOURNAL_VERSION)
		what = "version (p11enroll_credential 1 expected)";
	else if (!get_str(j, "name", c->name, sizeof(c->name), false) ||
	    !valid_name(c->name))
		what = "name";
	else if (!get_str(j, "service", c->service, sizeof(c->service), false))
		what = "service";
	else if (!get_str(j, "state", state, sizeof(state), false))
		what = "state";
	else if (!json_is_object(tok) ||
	    !get_str(tok, "uri", c->token_uri, sizeof(c->token_uri), false) ||
	    !get_str(tok, "serial", c->token_serial, sizeof(c->token_serial),
		true) ||
	    !get_str(
		tok, "label", c->token_label, sizeof(c->token_label), true))
		what = "token";
	else if (!json_is_object(key) ||
	    !get_str(key, "type", type, sizeof(type), false) ||
	    p11e_key_type_parse(type, &c->key_type) != P11E_OK ||
	    !get_str(key, "id", idhex, sizeof(idhex), false) ||
	    !unhex(idhex, c->id, &c->idlen) || !get_der(key, "spki", &c->spki))
		what = "key";
	else if (!get_str(j, "contract_id", c->contract_id,
		     sizeof(c->contract_id), true) ||
	    !get_str(j, "user_id", c->user_id, sizeof(c->user_id), true))
		what = "contract_id/user_id";
	else if (!get_der(j, "csr", &c->csr))
		what = "csr";
	else if (!get_der(j, "certificate", &c->cert))
		what = "certificate";
	else if (!json_is_array(chain) ||
	    json_array_size(chain) > P11E_CRED_CHAIN_MAX)
		what = "chain";
	else if (!get_str(j, "subject", c->subject, sizeof(c->subject), true) ||
	    !get_str(j, "serial", c->serial, sizeof(c->serial), true))
		what = "subject/serial";
	else if (!get_time(j, "not_before", &c->not_before) ||
	    !get_time(j, "not_after", &c->not_after) ||
	    !get_time(j, "created", &c->created) ||
	    !get_time(j, "updated", &c->updated))
		what = "times";
	else if (!json_is_object(le) ||
	    !get_str(le, "message", c->last_error, sizeof(c->last_error), true))
		what = "last_error";
	if (what == NULL) {
		for (i = 0; i < json_array_size(chain); i++) {
			json_t *w =
			    json_pack("{s:O}", "x", json_array_get(chain, i));

			if (w == NULL ||
			    json_is_null(json_array_get(chain, i)) ||
			    !get_der(w, "x", &c->chain[i]))
				what = "chain";
			json_decref(w);
			if (what != NULL)
				break;
			c->nchain++;
		}
	}
	if (what == NULL) {
		v = json_object_get(le, "name");
		if (json_is_string(v)) {
			snprintf(
			    ename, sizeof(ename), "%s", json_string_value(v));
			if (p11e_err_from_name(ename, &c->last_err) != P11E_OK)
				c->last_err = P11E_ERR_PARSE;
		} else if (!json_is_null(v) && v != NULL) {
			what = "last_error";
		}
	}
	if (what == NULL) {
		for (i = 0; i < sizeof(state_names) / sizeof(state_names[0]);
		     i++) {
			if (strcmp(state, state_names[i]) == 0)
				break;
		}
		if (i == sizeof(state_names) / sizeof(state_names[0]))
			what = "state";
		else
			c->state = (enum p11e_cred_state)i;
	}
	if (what == NULL)
		what = parse_renewal(json_object_get(j, "renewal"), c);
	/* what each state promises is there */
	if (what == NULL && c->state >= P11E_CRED_KEY_READY &&
	    c->state <= P11E_CRED_INSTALLED && c->spki.len == 0)
		what = "key.spki (missing for this state)";
	if (what == NULL && c->state >= P11E_CRED_SUBMITTED &&
	    c->state <= P11E_CRED_INSTALLED && c->csr.len == 0)
		what = "csr (missing for this state)";
	if (what == NULL && c->state >= P11E_CRED_ISSUED &&
	    c->state <= P11E_CRED_INSTALLED && c->cert.len == 0)
		what = "certificate (missing for this state)";
	if (what == NULL && c->state >= P11E_CRED_RENEW_DUE &&
	    c->state <= P11E_CRED_RENEW_ISSUED &&
	    (c->spki.len == 0 || c->cert.len == 0))
		what = "key.spki/certificate (missing for this state)";
	if (what == NULL && c->state >= P11E_CRED_RENEW_KEY_READY &&
	    c->state <= P11E_CRED_RENEW_ISSUED &&
	    (c->new_spki.len == 0 || c->new_idlen == 0))
		what = "renewal.new_spki (missing for this state)";
	if (what == NULL && c->state >= P11E_CRED_RENEW_SUBMITTED &&
	    c->state <= P11E_CRED_RENEW_ISSUED && c->csr.len == 0)
		what = "csr (missing for this state)";
	if (what == NULL && c->state == P11E_CRED_RENEW_ISSUED &&
	    c->new_cert.len == 0)
		what = "renewal.new_certificate (missing for this state)";
	json_decref(j);
	if (what != NULL) {
		snprintf(detail, dlen, "bad or missing member: %s", what);
		return P11E_ERR_JOURNAL_CORRUPT;
	}
	return P11E_OK;
}

static enum p11e_err
sub_dir(const char *dir, char *out, size_t outlen)
{
	if ((size_t)snprintf(out, outlen, "%s/" SUBDIR, dir) >= outlen)
		return P11E_ERR_TOO_LARGE;
	if (mkdir(out, 0700) != 0 && errno != EEXIST) {
		p11e_error("cannot create %s: %s", out, strerror(errno));
		return P11E_ERR_IO;
	}
	return P11E_OK;
}

enum p11e_err
p11e_journal_save(const char *dir, struct p11e_cred *c)
{
	char sub[4200], name[P11E_CRED_NAME_MAX + 8];
	struct p11e_buf text;
	enum p11e_err err;

	p11e_return_val_if_fail(
	    valid_name(c->name), P11E_ERR_INVALID_PARAMETER);
	p11e_buf_init(&text, P11E_JOURNAL_FILE_MAX);
	c->updated = time(NULL);
	if ((err = sub_dir(dir, sub, sizeof(sub))) != P11E_OK ||
	    (err = p11e_journal_encode(c, &text)) != P11E_OK)
		goto out;
	snprintf(name, sizeof(name), "%s.json", c->name);
	if ((err = p11e_file_replace(sub, name, text.data, text.len)) !=
	    P11E_OK) {
		p11e_error(
		    "cannot write %s/%s: %s", sub, name, strerror(errno));
		goto out;
	}
	p11e_debug(P11E_DEBUG_AGENT, "journal %s: %s", c->name,
	    p11e_cred_state_name(c->state));
out:
	p11e_buf_clear(&text);
	return err;
}

static enum p11e_err
read_file(const char *path, struct p11e_buf *out)
{
	unsigned char chunk[4096];
	enum p11e_err err = P11E_OK;
	ssize_t n;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0)
		return errno == ENOENT ? P11E_ERR_NOT_FOUND : P11E_ERR_IO;
	while (err == P11E_OK && (n = read(fd, chunk, sizeof(chunk))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			err = P11E_ERR_IO;
		else
			err = p11e_buf_append(out, chunk, (size_t)n);
	}
	close(fd);
	return err;
}

enum p11e_err
p11e_journal_load(const char *dir, const char *name, struct p11e_cred *c,
    char *detail, size_t dlen)
{
	char path[4400];
	struct p11e_buf text;
	enum p11e_err err;

	if (!valid_name(name) || strlen(name) > P11E_CRED_NAME_MAX) {
		snprintf(
		    detail, dlen, "'%.64s' is not a credential name", name);
		return P11E_ERR_INVALID_PARAMETER;
	}
	snprintf(path, sizeof(path), "%s/" SUBDIR "/%s.json", dir, name);
	p11e_buf_init(&text, P11E_JOURNAL_FILE_MAX);
	if ((err = read_file(path, &text)) != P11E_OK) {
		if (err == P11E_ERR_NOT_FOUND)
			snprintf(detail, dlen, "no credential '%s'", name);
		else
			snprintf(detail, dlen, "%s: cannot read it", path);
		if (err == P11E_ERR_TOO_LARGE)
			err = P11E_ERR_JOURNAL_CORRUPT;
		goto out;
	}
	err = p11e_journal_parse(text.data, text.len, c, detail, dlen);
	if (err == P11E_OK && strcmp(c->name, name) != 0) {
		snprintf(detail, dlen, "the record names another credential");
		err = P11E_ERR_JOURNAL_CORRUPT;
	}
	if (err == P11E_ERR_JOURNAL_CORRUPT) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s", detail);
		snprintf(detail, dlen, "%s: %s", path, tmp);
	}
out:
	p11e_buf_clear(&text);
	return err;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The record names of DIR/credentials, sorted (free each and *out). */
static size_t
list_names(const char *dir, char ***out)
{
	char sub[4200], **names = NULL, **tmp;
	struct dirent *e;
	size_t n = 0, cap = 0, l;
	DIR *d;

	*out = NULL;
	snprintf(sub, sizeof(sub), "%s/" SUBDIR, dir);
	if ((d = opendir(sub)) == NULL)
		return 0;
	while ((e = readdir(d)) != NULL) {
		l = strlen(e->d_name);
		if (e->d_name[0] == '.' || l <= 5 ||
		    l - 5 > P11E_CRED_NAME_MAX ||
		    strcmp(e->d_name + l - 5, ".json") != 0)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			if ((tmp = realloc(names, cap * sizeof(*names))) ==
			    NULL)
				break;
			names = tmp;
		}
		if ((names[n] = strndup(e->d_name, l - 5)) != NULL)
			n++;
	}
	closedir(d);
	if (n > 0)
		qsort(names, n, sizeof(names[0]), cmp_names);
	*out = names;
	return n;
}

size_t
p11e_journal_list(const char *dir,
    void (*cb)(void *data, const char *name, const struct p11e_cred *c,
	const char *problem),
    void *data)
{
	char **names, detail[1024];
	struct p11e_cred c;
	size_t n, i;

	n = list_names(dir, &names);
	for (i = 0; i < n; i++) {
		p11e_cred_init(&c);
		detail[0] = '\0';
		if (p11e_journal_load(
			dir, names[i], &c, detail, sizeof(detail)) == P11E_OK)
			cb(data, names[i], &c, NULL);
		else
			cb(data, names[i], NULL, detail);
		p11e_cred_clear(&c);
		free(names[i]);
	}
	free(names);
	return n;
}

/*
 * The scheduler's index (p11e_journal_scan): what it needs of each
 * record, with the file's identity (inode, mtime, size) when it was
 * read.  A record whose file is unchanged is not read again; the index
 * is kept in DIR/schedule.idx between runs (a cache: any doubt, and the
 * record is read).
 */
struct brief_entry {
	struct p11e_cred_brief b;
	unsigned long long ino, size;
	long long mtime_s, mtime_ns;
};

static struct brief_entry *idx;
static size_t nidx;
static char idx_dir[4096];
static bool idx_loaded;

#define IDX_NAME "schedule.idx"
#define IDX_MAGIC "p11enroll-schedule-index 1\n"

static int
cmp_entry(const void *a, const void *b)
{
	return strcmp(((const struct brief_entry *)a)->b.name,
	    ((const struct brief_entry *)b)->b.name);
}

static void
brief_of(const struct p11e_cred *c, struct p11e_cred_brief *b)
{
	snprintf(b->name, sizeof(b->name), "%s", c->name);
	b->damaged = false;
	b->state = c->state;
	b->wait = c->wait;
	b->next_action = c->next_action;
	b->not_before = c->not_before;
	b->not_after = c->not_after;
	b->old_remove_at = c->old_remove_at;
	b->renew_before = c->renew_before;
	b->notices = c->notices;
	b->has_old = c->old_idlen > 0;
	b->has_cert = c->cert.len > 0;
}

void
p11e_cred_from_brief(const struct p11e_cred_brief *b, struct p11e_cred *c)
{
	snprintf(c->name, sizeof(c->name), "%s", b->name);
	c->state = b->state;
	c->wait = b->wait;
	c->next_action = b->next_action;
	c->not_before = b->not_before;
	c->not_after = b->not_after;
	c->old_remove_at = b->old_remove_at;
	c->renew_before = b->renew_before;
	c->notices = b->notices;
	c->old_idlen = b->has_old ? 1 : 0;
}

/* Reads DIR/schedule.idx into idx (sorted); nothing on any doubt. */
static void
idx_read(const char *dir)
{
	char path[4400], line[512], name[P11E_CRED_NAME_MAX + 1];
	struct brief_entry e, *tmp;
	size_t cap = 0;
	int st, wt;
	FILE *f;

	snprintf(path, sizeof(path), "%s/" IDX_NAME, dir);
	if ((f = fopen(path, "re")) == NULL)
		return;
	if (fgets(line, sizeof(line), f) == NULL ||
	    strcmp(line, IDX_MAGIC) != 0) {
		fclose(f);
		return;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		int64_t v[15];
		char *p = line;
		size_t k, l;

		/* NAME and 15 numbers, one space apart */
		memset(&e, 0, sizeof(e));
		l = strcspn(p, " ");
		if (l == 0 || l > P11E_CRED_NAME_MAX || p[l] != ' ')
			continue;
		memcpy(name, p, l);
		name[l] = '\0';
		p += l + 1;
		for (k = 0; k < 15; k++) {
			l = strcspn(p, " \n");
			if (p[l] != (k < 14 ? ' ' : '\n'))
				break;
			p[l] = '\0';
			if (p11e_num_parse_i64(
				p, INT64_MIN, INT64_MAX, &v[k]) != P11E_OK)
				break;
			p += l + 1;
		}
		if (k < 15)
			continue;
		e.ino = (unsigned long long)v[0];
		e.mtime_s = v[1];
		e.mtime_ns = v[2];
		e.size = (unsigned long long)v[3];
		st = (int)v[4];
		wt = (int)v[5];
		if (v[4] < 0 || v[4] > P11E_CRED_REVOKED || v[5] < 0 ||
		    v[5] > P11E_WAIT_TOKEN || v[11] < 0 || v[11] > 0xff)
			continue;
		snprintf(e.b.name, sizeof(e.b.name), "%s", name);
		e.b.state = (enum p11e_cred_state)st;
		e.b.wait = (enum p11e_cred_wait)wt;
		e.b.next_action = (time_t)v[6];
		e.b.not_before = (time_t)v[7];
		e.b.not_after = (time_t)v[8];
		e.b.old_remove_at = (time_t)v[9];
		e.b.renew_before = v[10];
		e.b.notices = (unsigned int)v[11];
		e.b.has_old = v[12] != 0;
		e.b.has_cert = v[13] != 0;
		e.b.damaged = v[14] != 0;
		if (nidx == cap) {
			cap = cap ? cap * 2 : 256;
			if ((tmp = realloc(idx, cap * sizeof(*idx))) == NULL)
				break;
			idx = tmp;
		}
		idx[nidx++] = e;
	}
	fclose(f);
	if (nidx > 0)
		qsort(idx, nidx, sizeof(*idx), cmp_entry);
}

/* Writes the index (temporary file, rename); a failure only costs time. */
static void
idx_write(const char *dir)
{
	char path[4400], tmp[4400];
	size_t i;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "%s/" IDX_NAME, dir);
	snprintf(tmp, sizeof(tmp), "%s/." IDX_NAME ".tmp", dir);
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	    0)
		return;
	if ((f = fdopen(fd, "w")) == NULL) {
		close(fd);
		return;
	}
	fputs(IDX_MAGIC, f);
	for (i = 0; i < nidx; i++) {
		const struct brief_entry *e = &idx[i];

		fprintf(f,
		    "%s %llu %lld %lld %llu %d %d %lld %lld %lld %lld %lld "
		    "%u %d %d %d\n",
		    e->b.name, e->ino, e->mtime_s, e->mtime_ns, e->size,
		    (int)e->b.state, (int)e->b.wait,
		    (long long)e->b.next_action, (long long)e->b.not_before,
		    (long long)e->b.not_after, (long long)e->b.old_remove_at,
		    e->b.renew_before, e->b.notices, (int)e->b.has_old,
		    (int)e->b.has_cert, (int)e->b.damaged);
	}
	if (fclose(f) != 0 || rename(tmp, path) != 0)
		(void)unlink(tmp);
}

size_t
p11e_journal_scan(const char *dir,
    void (*cb)(void *data, const struct p11e_cred_brief *b), void *data)
{
	char **names, path[4400], detail[1024];
	struct brief_entry *next = NULL, *old;
	struct p11e_cred c;
	struct stat st;
	size_t n, i, j = 0, nnext = 0;
	bool dirty = false;

	if (!idx_loaded || strcmp(idx_dir, dir) != 0) {
		free(idx);
		idx = NULL;
		nidx = 0;
		snprintf(idx_dir, sizeof(idx_dir), "%s", dir);
		idx_read(dir);
		idx_loaded = true;
	}
	n = list_names(dir, &names);
	if (n > 0 && (next = calloc(n, sizeof(*next))) == NULL) {
		for (i = 0; i < n; i++)
			free(names[i]);
		free(names);
		return 0;
	}
	for (i = 0; i < n; i++) {
		struct brief_entry *e = &next[nnext];

		snprintf(
		    path, sizeof(path), "%s/" SUBDIR "/%s.json", dir, names[i]);
		if (stat(path, &st) != 0)
			goto next_name; /* gone meanwhile */
		e->ino = (unsigned long long)st.st_ino;
		e->size = (unsigned long long)st.st_size;
		e->mtime_s = (long long)st.st_mtim.tv_sec;
		e->mtime_ns = (long long)st.st_mtim.tv_nsec;
		/* both sorted: walk the old index along */
		while (j < nidx && strcmp(idx[j].b.name, names[i]) < 0)
			j++;
		old = j < nidx && strcmp(idx[j].b.name, names[i]) == 0 ? &idx[j]
								       : NULL;
		if (old != NULL && old->ino == e->ino && old->size == e->size &&
		    old->mtime_s == e->mtime_s &&
		    old->mtime_ns == e->mtime_ns) {
			e->b = old->b;
		} else {
			p11e_cred_init(&c);
			if (p11e_journal_load(dir, names[i], &c, detail,
				sizeof(detail)) == P11E_OK) {
				brief_of(&c, &e->b);
			} else {
				memset(&e->b, 0, sizeof(e->b));
				snprintf(e->b.name, sizeof(e->b.name), "%s",
				    names[i]);
				e->b.damaged = true;
			}
			p11e_cred_clear(&c);
			dirty = true;
		}
		cb(data, &e->b);
		nnext++;
	next_name:
		free(names[i]);
	}
	free(names);
	if (nnext != nidx)
		dirty = true;
	free(idx);
	idx = next;
	nidx = nnext;
	if (dirty)
		idx_write(dir);
	return nnext;
}

enum p11e_err
p11e_journal_remove(const char *dir, const char *name)
{
	char path[4400], sub[4200];
	enum p11e_err err = P11E_OK;
	int dfd;

	if (!valid_name(name) || strlen(name) > P11E_CRED_NAME_MAX)
		return P11E_ERR_INVALID_PARAMETER;
	snprintf(sub, sizeof(sub), "%s/" SUBDIR, dir);
	snprintf(path, sizeof(path), "%s/%s.json", sub, name);
	if (unlink(path) != 0) {
		if (errno == ENOENT)
			return P11E_ERR_NOT_FOUND;
		p11e_error("cannot remove %s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	if ((dfd = open(sub, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    fsync(dfd) != 0) {
		p11e_error("cannot sync %s: %s", sub, strerror(errno));
		err = P11E_ERR_IO;
	}
	if (dfd >= 0)
		close(dfd);
	return err;
}

enum p11e_err
p11e_journal_new_name(char *out, size_t outlen)
{
	unsigned char r[8];

	if (outlen < 19)
		return P11E_ERR_TOO_LARGE;
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r))
		return P11E_ERR_SYSTEM;
	memcpy(out, "c-", 2);
	hex(out + 2, r, sizeof(r));
	return P11E_OK;
}

enum p11e_cred_step
p11e_cred_next_step(const struct p11e_cred *c)
{
	switch (c->state) {
	case P11E_CRED_KEY_PENDING:
		return P11E_STEP_ADOPT_OR_GENERATE;
	case P11E_CRED_KEY_READY:
		return P11E_STEP_SUBMIT_NEW;
	case P11E_CRED_SUBMITTED:
		return P11E_STEP_RESUBMIT;
	case P11E_CRED_ISSUED:
		return P11E_STEP_STORE;
	case P11E_CRED_INSTALLED:
		return P11E_STEP_NONE;
	case P11E_CRED_REJECTED:
	case P11E_CRED_NEEDS_OPERATOR:
	case P11E_CRED_EXPIRED:
	case P11E_CRED_REVOKED:
		return P11E_STEP_OPERATOR;
	case P11E_CRED_RENEW_DUE:
	case P11E_CRED_RENEW_KEY_READY:
	case P11E_CRED_RENEW_SUBMITTED:
	case P11E_CRED_RENEW_ISSUED:
		return P11E_STEP_RENEW;
	}
	return P11E_STEP_OPERATOR;
}
