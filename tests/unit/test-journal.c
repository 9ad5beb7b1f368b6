/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

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

#include "agent/journal.h"
#include "common/ipc.h"
#include "common/rundir.h"

static char dir[] = "/tmp/p11e-journal-XXXXXX";

static int
setup(void **state)
{
	(void)state;
	p11e_ipc_json_init();
	return mkdtemp(dir) != NULL ? 0 : -1;
}

static int
teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static void
fill(struct p11e_cred *c, enum p11e_cred_state st)
{
	static const unsigned char der[] = { 0x30, 0x03, 0x02, 0x01, 0x05 };

	p11e_cred_init(c);
	assert_int_equal(
	    p11e_journal_new_name(c->name, sizeof(c->name)), P11E_OK);
	snprintf(c->service, sizeof(c->service), "bank");
	snprintf(c->token_uri, sizeof(c->token_uri),
	    "pkcs11:serial=1234;token=t%%20x");
	snprintf(c->token_serial, sizeof(c->token_serial), "1234");
	c->key_type = P11E_KEY_EC_P384;
	memset(c->id, 0xa5, 20);
	c->idlen = 20;
	c->state = st;
	if (st >= P11E_CRED_KEY_READY)
		assert_int_equal(
		    p11e_der_set(&c->spki, der, sizeof(der)), P11E_OK);
	if (st >= P11E_CRED_SUBMITTED)
		assert_int_equal(p11e_der_set(&c->csr, der, 4), P11E_OK);
	if (st >= P11E_CRED_ISSUED) {
		assert_int_equal(p11e_der_set(&c->cert, der, 3), P11E_OK);
		assert_int_equal(p11e_der_set(&c->chain[0], der, 2), P11E_OK);
		c->nchain = 1;
	}
	snprintf(c->contract_id, sizeof(c->contract_id), "12345678901");
	snprintf(c->user_id, sizeof(c->user_id), "S0001");
	snprintf(c->subject, sizeof(c->subject), "CN=S0001,O=しんきん");
	c->not_after = 1800000000;
	c->created = 1700000000;
	c->last_err = P11E_ERR_AUTH_FAILED;
	snprintf(c->last_error, sizeof(c->last_error), "wrong \"password\"");
}

static void
test_roundtrip(void **state)
{
	struct p11e_cred a, b;
	struct p11e_buf text;
	char d[512];
	int st;

	(void)state;
	for (st = P11E_CRED_KEY_PENDING; st <= P11E_CRED_NEEDS_OPERATOR; st++) {
		fill(&a, (enum p11e_cred_state)st);
		p11e_buf_init(&text, P11E_JOURNAL_FILE_MAX);
		assert_int_equal(p11e_journal_encode(&a, &text), P11E_OK);
		p11e_cred_init(&b);
		assert_int_equal(
		    p11e_journal_parse(text.data, text.len, &b, d, sizeof(d)),
		    P11E_OK);
		assert_string_equal(a.name, b.name);
		assert_int_equal(a.state, b.state);
		assert_int_equal(a.key_type, b.key_type);
		assert_int_equal(a.idlen, b.idlen);
		assert_memory_equal(a.id, b.id, a.idlen);
		assert_int_equal(a.spki.len, b.spki.len);
		assert_int_equal(a.csr.len, b.csr.len);
		assert_int_equal(a.cert.len, b.cert.len);
		assert_int_equal(a.nchain, b.nchain);
		assert_string_equal(a.subject, b.subject);
		assert_string_equal(a.token_uri, b.token_uri);
		assert_int_equal(b.last_err, P11E_ERR_AUTH_FAILED);
		assert_string_equal(a.last_error, b.last_error);
		assert_int_equal(b.not_after, 1800000000);
		p11e_buf_clear(&text);
		p11e_cred_clear(&a);
		p11e_cred_clear(&b);
	}
}

static void
expect_corrupt(const char *text)
{
	struct p11e_cred c;
	char d[512] = "";

	p11e_cred_init(&c);
	assert_int_equal(
	    p11e_journal_parse(text, strlen(text), &c, d, sizeof(d)),
	    P11E_ERR_JOURNAL_CORRUPT);
	assert_true(d[0] != '\0');
	p11e_cred_clear(&c);
}

/* A valid record's text with one substitution. */
static char *
variant(enum p11e_cred_state st, const char *from, const char *to)
{
	struct p11e_cred c;
	struct p11e_buf text;
	char *s, *p, *out;

	fill(&c, st);
	p11e_buf_init(&text, P11E_JOURNAL_FILE_MAX);
	assert_int_equal(p11e_journal_encode(&c, &text), P11E_OK);
	s = (char *)text.data;
	p = strstr(s, from);
	assert_non_null(p);
	out = malloc(text.len + strlen(to) + 1);
	memcpy(out, s, (size_t)(p - s));
	memcpy(out + (p - s), to, strlen(to));
	memcpy(out + (p - s) + strlen(to), p + strlen(from),
	    strlen(p + strlen(from)) + 1);
	p11e_buf_clear(&text);
	p11e_cred_clear(&c);
	return out;
}

static void
test_corrupt(void **state)
{
	struct p11e_cred c;
	struct p11e_buf text;
	size_t cut;
	char *v;

	(void)state;
	expect_corrupt("");
	expect_corrupt("[]");
	expect_corrupt("{\"p11enroll_credential\": 1}");
	/* every truncation of a valid record is refused */
	fill(&c, P11E_CRED_ISSUED);
	p11e_buf_init(&text, P11E_JOURNAL_FILE_MAX);
	assert_int_equal(p11e_journal_encode(&c, &text), P11E_OK);
	for (cut = 0; cut + 2 < text.len; cut += 7) {
		char *t = strndup((char *)text.data, cut);

		expect_corrupt(t);
		free(t);
	}
	p11e_buf_clear(&text);
	p11e_cred_clear(&c);
	v = variant(P11E_CRED_KEY_READY, "\"p11enroll_credential\": 1",
	    "\"p11enroll_credential\": 2");
	expect_corrupt(v);
	free(v);
	v = variant(P11E_CRED_KEY_READY, "\"KEY_READY\"", "\"FLYING\"");
	expect_corrupt(v);
	free(v);
	/* a state without what it needs */
	v = variant(P11E_CRED_KEY_PENDING, "\"KEY_PENDING\"", "\"ISSUED\"");
	expect_corrupt(v);
	free(v);
	v = variant(
	    P11E_CRED_SUBMITTED, "\"csr\": \"MAMCAQ==\"", "\"csr\": null");
	expect_corrupt(v);
	free(v);
	v = variant(P11E_CRED_SUBMITTED, "\"csr\": \"MAMCAQ==\"",
	    "\"csr\": \"MA!CAQ==\"");
	expect_corrupt(v);
	free(v);
	v = variant(
	    P11E_CRED_KEY_READY, "\"type\": \"ec-p384\"", "\"type\": \"dsa\"");
	expect_corrupt(v);
	free(v);
	v = variant(P11E_CRED_KEY_READY, "\"service\": \"bank\",",
	    "\"service\": \"bank\", \"service\": \"x\",");
	expect_corrupt(v);
	free(v);
	v = variant(P11E_CRED_KEY_READY, "\"name\": \"c-", "\"name\": \"../c-");
	expect_corrupt(v);
	free(v);
}

static void
test_save_load(void **state)
{
	struct p11e_cred a, b;
	char path[256], tmp[256], d[512];
	struct stat sb;

	(void)state;
	fill(&a, P11E_CRED_SUBMITTED);
	assert_int_equal(p11e_journal_save(dir, &a), P11E_OK);
	snprintf(path, sizeof(path), "%s/credentials/%s.json", dir, a.name);
	snprintf(tmp, sizeof(tmp), "%s/credentials/.%s.json.tmp", dir, a.name);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	assert_int_equal(access(tmp, F_OK), -1);
	p11e_cred_init(&b);
	assert_int_equal(
	    p11e_journal_load(dir, a.name, &b, d, sizeof(d)), P11E_OK);
	assert_int_equal(b.state, P11E_CRED_SUBMITTED);
	assert_int_equal(b.updated >= a.created, true);
	p11e_cred_clear(&b);
	/* a later save replaces it */
	a.state = P11E_CRED_ISSUED;
	assert_int_equal(
	    p11e_der_set(&a.cert, (const unsigned char *)"0", 1), P11E_OK);
	assert_int_equal(p11e_journal_save(dir, &a), P11E_OK);
	p11e_cred_init(&b);
	assert_int_equal(
	    p11e_journal_load(dir, a.name, &b, d, sizeof(d)), P11E_OK);
	assert_int_equal(b.state, P11E_CRED_ISSUED);
	p11e_cred_clear(&b);
	p11e_cred_init(&b);
	assert_int_equal(p11e_journal_load(dir, "c-nothere", &b, d, sizeof(d)),
	    P11E_ERR_NOT_FOUND);
	assert_int_equal(p11e_journal_load(dir, "../x", &b, d, sizeof(d)),
	    P11E_ERR_INVALID_PARAMETER);
	p11e_cred_clear(&b);
	p11e_cred_clear(&a);
}

static void
test_save_fails(void **state)
{
	char bad[256], cmd[300];
	struct p11e_cred a;
	FILE *f;

	(void)state;
	/* "credentials" is a file: nothing can be written under it */
	snprintf(bad, sizeof(bad), "%s/bad", dir);
	assert_int_equal(mkdir(bad, 0700), 0);
	snprintf(cmd, sizeof(cmd), "%s/credentials", bad);
	f = fopen(cmd, "w");
	assert_non_null(f);
	fclose(f);
	fill(&a, P11E_CRED_KEY_PENDING);
	assert_int_not_equal(p11e_journal_save(bad, &a), P11E_OK);
	p11e_cred_clear(&a);
}

static void
assert_file_is(const char *path, const char *want)
{
	char buf[64];
	FILE *f = fopen(path, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, n);
}

/* The durable replacement under the journal and the service files. */
static void
test_file_replace(void **state)
{
	char d[256], path[300], tmp[300];
	struct stat st;

	(void)state;
	snprintf(d, sizeof(d), "%s/replace", dir);
	assert_int_equal(mkdir(d, 0700), 0);
	snprintf(path, sizeof(path), "%s/a.conf", d);
	snprintf(tmp, sizeof(tmp), "%s/.a.conf.tmp", d);
	assert_int_equal(p11e_file_replace(d, "a.conf", "one", 3), P11E_OK);
	assert_int_equal(p11e_file_replace(d, "a.conf", "second", 6), P11E_OK);
	assert_file_is(path, "second");
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_not_equal(stat(tmp, &st), 0); /* no temporary left */
	/* a symlink where the temporary goes: refused, the file unchanged */
	assert_int_equal(symlink(path, tmp), 0);
	assert_int_equal(
	    p11e_file_replace(d, "a.conf", "third", 5), P11E_ERR_IO);
	assert_file_is(path, "second");
	assert_int_equal(unlink(tmp), 0);
	/* no such directory: an error, nothing made */
	snprintf(path, sizeof(path), "%s/none", d);
	assert_int_equal(
	    p11e_file_replace(path, "a.conf", "x", 1), P11E_ERR_IO);
	assert_int_not_equal(stat(path, &st), 0);
}

struct seen {
	int good, bad;
};

static void
count_cb(void *data, const char *name, const struct p11e_cred *c,
    const char *problem)
{
	struct seen *s = data;

	assert_non_null(name);
	if (c != NULL) {
		s->good++;
	} else {
		assert_non_null(problem);
		s->bad++;
	}
}

static void
test_list_corrupt(void **state)
{
	char path[256];
	struct seen s = { 0, 0 };
	struct p11e_cred c;
	FILE *f;

	(void)state;
	fill(&c, P11E_CRED_KEY_READY);
	assert_int_equal(p11e_journal_save(dir, &c), P11E_OK);
	p11e_cred_clear(&c);
	/* a truncated record: listed as needing an operator */
	snprintf(path, sizeof(path), "%s/credentials/c-broken.json", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("{\"p11enroll_credential\": 1, \"na", f);
	fclose(f);
	(void)p11e_journal_list(dir, count_cb, &s);
	assert_true(s.good >= 1);
	assert_int_equal(s.bad, 1);
	unlink(path);
}

struct briefs {
	int n, damaged;
	char name[P11E_CRED_NAME_MAX + 1];
	struct p11e_cred_brief b; /* the one named name */
};

static void
brief_cb(void *data, const struct p11e_cred_brief *b)
{
	struct briefs *s = data;

	s->n++;
	if (b->damaged)
		s->damaged++;
	if (strcmp(b->name, s->name) == 0)
		s->b = *b;
}

static void
test_scan_index(void **state)
{
	char sub[256], idx[300], cmd[600];
	struct briefs s;
	struct p11e_cred a;
	FILE *f;
	int i;

	(void)state;
	snprintf(sub, sizeof(sub), "%s/scan", dir);
	snprintf(idx, sizeof(idx), "%s/schedule.idx", sub);
	assert_int_equal(mkdir(sub, 0700), 0);
	/* more than the 1,024 a listing once stopped at */
	for (i = 0; i < 1030; i++) {
		fill(&a, P11E_CRED_INSTALLED);
		a.not_after = 1800000000 + i;
		assert_int_equal(p11e_journal_save(sub, &a), P11E_OK);
		p11e_cred_clear(&a);
	}
	fill(&a, P11E_CRED_INSTALLED);
	a.wait = P11E_WAIT_TOKEN;
	a.notices = 3;
	assert_int_equal(p11e_journal_save(sub, &a), P11E_OK);
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", a.name);
	assert_int_equal(p11e_journal_scan(sub, brief_cb, &s), 1031);
	assert_int_equal(s.n, 1031);
	assert_int_equal(s.b.wait, P11E_WAIT_TOKEN);
	assert_int_equal(s.b.notices, 3);
	assert_int_equal(s.b.not_after, 1800000000);
	assert_true(s.b.has_cert);
	assert_int_equal(access(idx, F_OK), 0);
	/* a change is seen (a new file), the rest comes from the index */
	a.wait = P11E_WAIT_NONE;
	a.not_after = 1900000000;
	assert_int_equal(p11e_journal_save(sub, &a), P11E_OK);
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", a.name);
	assert_int_equal(p11e_journal_scan(sub, brief_cb, &s), 1031);
	assert_int_equal(s.b.wait, P11E_WAIT_NONE);
	assert_int_equal(s.b.not_after, 1900000000);
	/* a damaged index is only a cache: the records are read again */
	f = fopen(idx, "w");
	assert_non_null(f);
	fputs("p11enroll-schedule-index 1\nc-x 1 2 3\ngarbage\n", f);
	fclose(f);
	/* another directory first: the index is read from the file again */
	memset(&s, 0, sizeof(s));
	(void)p11e_journal_scan(dir, brief_cb, &s);
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", a.name);
	assert_int_equal(p11e_journal_scan(sub, brief_cb, &s), 1031);
	assert_int_equal(s.b.not_after, 1900000000);
	/* a removed record is gone from the next scan */
	snprintf(cmd, sizeof(cmd), "%s/credentials/%s.json", sub, a.name);
	assert_int_equal(unlink(cmd), 0);
	memset(&s, 0, sizeof(s));
	snprintf(s.name, sizeof(s.name), "%s", a.name);
	assert_int_equal(p11e_journal_scan(sub, brief_cb, &s), 1030);
	assert_int_equal(s.b.name[0], '\0');
	assert_int_equal(s.damaged, 0);
	p11e_cred_clear(&a);
}

static void
test_next_step(void **state)
{
	static const struct {
		enum p11e_cred_state st;
		enum p11e_cred_step step;
	} want[] = {
		{ P11E_CRED_KEY_PENDING, P11E_STEP_ADOPT_OR_GENERATE },
		{ P11E_CRED_KEY_READY, P11E_STEP_SUBMIT_NEW },
		{ P11E_CRED_SUBMITTED, P11E_STEP_RESUBMIT },
		{ P11E_CRED_ISSUED, P11E_STEP_STORE },
		{ P11E_CRED_INSTALLED, P11E_STEP_NONE },
		{ P11E_CRED_REJECTED, P11E_STEP_OPERATOR },
		{ P11E_CRED_NEEDS_OPERATOR, P11E_STEP_OPERATOR },
	};
	struct p11e_cred c;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		p11e_cred_init(&c);
		c.state = want[i].st;
		assert_int_equal(p11e_cred_next_step(&c), want[i].step);
		assert_non_null(p11e_cred_state_name(want[i].st));
	}
	assert_null(p11e_cred_state_name((enum p11e_cred_state)99));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_corrupt),
		cmocka_unit_test(test_save_load),
		cmocka_unit_test(test_save_fails),
		cmocka_unit_test(test_file_replace),
		cmocka_unit_test(test_list_corrupt),
		cmocka_unit_test(test_scan_index),
		cmocka_unit_test(test_next_step),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
