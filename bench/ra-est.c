/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sys/resource.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509.h>

/*
 * A load client for p11enroll-ra serve on 127.0.0.1 (bench/ra-est.sh
 * drives it; doc/benchmarks.md has the figures).  Not a test.
 *
 *   --mode enroll    simpleenroll, one pre-created enrollment token per
 *                    request (--input: one token a line), keep-alive
 *                    connections, one fresh EC P-256 key and CSR each;
 *                    --out FILE writes each issued pair (key + cert PEM)
 *   --mode reenroll  simplereenroll with a new TLS connection (no
 *                    session resumption) and another client certificate
 *                    per request (--input: the pairs written by enroll)
 *   --mode session   the user session (password + TOTP; --input: lines
 *                    "contract user base32-secret password"), one user
 *                    per request
 *
 * Requests are prepared before the clock starts; --clients threads each
 * own one curl easy handle.  Prints one line: mode, clients, requests,
 * failures, per second, p50 and p99 in ms, and this client's own CPU
 * time (user + system, all threads) per request while the clock ran.
 */

struct job {
	char *auth; /* Authorization header, or NULL */
	char *body;
	size_t body_len;
	char *cert_pem, *key_pem; /* client certificate (reenroll) */
	char *new_key_pem; /* the key of the CSR (enroll --out) */
	char *reply;
	size_t reply_len;
	long status;
	double ms;
};

static struct job *jobs;
static size_t n_jobs;
static atomic_size_t next_job;
static const char *url, *cacert, *mode;
static bool fresh;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* This process's CPU time (user + system, every thread) in ms. */
static double
cpu_ms(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) != 0)
		return 0;
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	    (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static void
die(const char *what)
{
	fprintf(stderr, "ra-est: %s\n", what);
	exit(1);
}

static char *
b64(const unsigned char *der, size_t len)
{
	char *out = malloc(4 * (len / 3 + 2) + 1);

	if (out == NULL)
		die("out of memory");
	EVP_EncodeBlock((unsigned char *)out, der, (int)len);
	return out;
}

static char *
pem_of_key(EVP_PKEY *k)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

/* A new P-256 key and a CSR for it (subject from subj, or empty). */
static void
make_csr(struct job *j, const X509_NAME *subj)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509_REQ *r = X509_REQ_new();
	unsigned char *der = NULL;
	int len;

	if (k == NULL || r == NULL || X509_REQ_set_version(r, 0) != 1 ||
	    (subj != NULL && X509_REQ_set_subject_name(r, subj) != 1) ||
	    X509_REQ_set_pubkey(r, k) != 1 ||
	    X509_REQ_sign(r, k, EVP_sha256()) <= 0 ||
	    (len = i2d_X509_REQ(r, &der)) <= 0)
		die("cannot make a CSR");
	j->body = b64(der, (size_t)len);
	j->body_len = strlen(j->body);
	j->new_key_pem = pem_of_key(k);
	OPENSSL_free(der);
	X509_REQ_free(r);
	EVP_PKEY_free(k);
}

static int
b32_decode(const char *in, unsigned char *out, size_t max)
{
	unsigned int acc = 0, bits = 0;
	size_t n = 0;
	const char *p;

	for (p = in; *p != '\0'; p++) {
		const char *a = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
		const char *q = strchr(a, *p);

		if (*p == '=' || q == NULL)
			continue;
		acc = (acc << 5) | (unsigned int)(q - a);
		bits += 5;
		if (bits >= 8 && n < max) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	return (int)n;
}

/* RFC 6238 with SHA-1, 6 digits, 30 s. */
static void
totp(const char *b32secret, char out[7])
{
	unsigned char key[64], msg[8], md[20];
	unsigned int mdlen = 0, off;
	uint64_t t = (uint64_t)time(NULL) / 30;
	uint32_t v;
	int klen = b32_decode(b32secret, key, sizeof(key)), i;

	for (i = 7; i >= 0; i--) {
		msg[i] = (unsigned char)t;
		t >>= 8;
	}
	HMAC(EVP_sha1(), key, klen, msg, 8, md, &mdlen);
	off = md[19] & 0xf;
	v = ((uint32_t)(md[off] & 0x7f) << 24) | ((uint32_t)md[off + 1] << 16) |
	    ((uint32_t)md[off + 2] << 8) | md[off + 3];
	snprintf(out, 7, "%06u", v % 1000000);
}

static size_t
on_body(char *p, size_t sz, size_t n, void *ud)
{
	struct job *j = ud;
	char *grown = realloc(j->reply, j->reply_len + sz * n + 1);

	if (grown == NULL)
		return 0;
	j->reply = grown;
	memcpy(j->reply + j->reply_len, p, sz * n);
	j->reply_len += sz * n;
	j->reply[j->reply_len] = '\0';
	return sz * n;
}

static void *
worker(void *arg)
{
	CURL *h = curl_easy_init();
	struct curl_blob cb, kb;
	char err[CURL_ERROR_SIZE];
	size_t i;

	(void)arg;
	if (h == NULL)
		die("curl_easy_init");
	while ((i = atomic_fetch_add(&next_job, 1)) < n_jobs) {
		struct job *j = &jobs[i];
		struct curl_slist *hdr = NULL;
		double t0;

		if (strcmp(mode, "session") == 0) {
			char otp[7], *sp, line[512];

			/* the code is taken now: the step must be current */
			snprintf(line, sizeof(line), "%s", j->body);
			sp = strrchr(line, '"');
			totp(j->auth, otp);
			free(j->body);
			j->body = NULL;
			if (sp == NULL ||
			    asprintf(&j->body, "%.*s%s\"}", (int)(sp - line),
				line, otp) < 0)
				die("out of memory");
			j->body_len = strlen(j->body);
			hdr = curl_slist_append(
			    hdr, "Content-Type: application/json");
		} else {
			hdr = curl_slist_append(
			    hdr, "Content-Type: application/pkcs10");
			if (j->auth != NULL)
				hdr = curl_slist_append(hdr, j->auth);
		}
		curl_easy_setopt(h, CURLOPT_URL, url);
		curl_easy_setopt(h, CURLOPT_CAINFO, cacert);
#if LIBCURL_VERSION_NUM >= 0x075700
		/* the CA file parsed once per client, not per connection */
		curl_easy_setopt(h, CURLOPT_CA_CACHE_TIMEOUT, 3600L);
#endif
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, j->body);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)j->body_len);
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, j);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
		curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
		curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		if (fresh) {
			/* a full handshake with a client certificate */
			curl_easy_setopt(h, CURLOPT_FRESH_CONNECT, 1L);
			curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
			curl_easy_setopt(h, CURLOPT_SSL_SESSIONID_CACHE, 0L);
		}
		if (j->cert_pem != NULL) {
			cb.data = j->cert_pem;
			cb.len = strlen(j->cert_pem);
			cb.flags = CURL_BLOB_NOCOPY;
			kb.data = j->key_pem;
			kb.len = strlen(j->key_pem);
			kb.flags = CURL_BLOB_NOCOPY;
			curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &cb);
			curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
			curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &kb);
			curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
		}
		t0 = now_ms();
		if (curl_easy_perform(h) == CURLE_OK)
			curl_easy_getinfo(
			    h, CURLINFO_RESPONSE_CODE, &j->status);
		else
			fprintf(stderr, "ra-est: %s\n", err);
		j->ms = now_ms() - t0;
		curl_slist_free_all(hdr);
	}
	curl_easy_cleanup(h);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The certificate of a base64 certs-only reply, as PEM. */
static char *
reply_cert_pem(const struct job *j)
{
	unsigned char *der = malloc(j->reply_len);
	const unsigned char *p = der;
	char *clean = malloc(j->reply_len + 1), *out = NULL;
	PKCS7 *p7 = NULL;
	size_t i, n = 0;
	int len;
	BIO *b = NULL;
	long blen;
	char *bp;

	if (der == NULL || clean == NULL)
		die("out of memory");
	for (i = 0; i < j->reply_len; i++)
		if (j->reply[i] != '\n' && j->reply[i] != '\r')
			clean[n++] = j->reply[i];
	clean[n] = '\0';
	len = EVP_DecodeBlock(der, (unsigned char *)clean, (int)n);
	while (len > 0 && n > 0 && clean[--n] == '=')
		len--;
	if (len > 0 && (p7 = d2i_PKCS7(NULL, &p, len)) != NULL &&
	    PKCS7_type_is_signed(p7) && p7->d.sign->cert != NULL &&
	    sk_X509_num(p7->d.sign->cert) > 0 &&
	    (b = BIO_new(BIO_s_mem())) != NULL &&
	    PEM_write_bio_X509(b, sk_X509_value(p7->d.sign->cert, 0)) == 1) {
		blen = BIO_get_mem_data(b, &bp);
		out = strndup(bp, (size_t)blen);
	}
	BIO_free(b);
	PKCS7_free(p7);
	free(der);
	free(clean);
	return out;
}

static char *
read_all(FILE *f)
{
	size_t cap = 1 << 20, len = 0, n;
	char *buf = malloc(cap + 1), *grown;

	while (buf != NULL && (n = fread(buf + len, 1, cap - len, f)) > 0) {
		len += n;
		if (len == cap) {
			cap *= 2;
			if ((grown = realloc(buf, cap + 1)) == NULL)
				die("out of memory");
			buf = grown;
		}
	}
	if (buf == NULL)
		die("out of memory");
	buf[len] = '\0';
	return buf;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "cacert", required_argument, NULL, 'c' },
		{ "mode", required_argument, NULL, 'm' },
		{ "clients", required_argument, NULL, 'n' },
		{ "requests", required_argument, NULL, 'r' },
		{ "input", required_argument, NULL, 'i' },
		{ "skip", required_argument, NULL, 's' },
		{ "out", required_argument, NULL, 'o' },
		{ NULL, 0, NULL, 0 },
	};
	const char *input = NULL, *out = NULL;
	unsigned long clients = 1, requests = 100, skip = 0;
	pthread_t *th;
	double t0, c0, secs, cpu, *lat;
	size_t i, ok = 0;
	char *text, *line, *nl;
	FILE *f;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 'u':
			url = optarg;
			break;
		case 'c':
			cacert = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		case 'n':
		case 'r':
		case 's':
			errno = 0;
			unsigned long v = strtoul(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' ||
			    v > 1000000)
				die("bad number");
			if (c == 'n')
				clients = v;
			else if (c == 'r')
				requests = v;
			else
				skip = v;
			break;
		case 'i':
			input = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		default:
			return 2;
		}
	}
	if (url == NULL || cacert == NULL || mode == NULL || input == NULL ||
	    clients < 1 || clients > 256)
		die("usage: ra-est --url URL --cacert FILE --mode "
		    "enroll|reenroll|session --input FILE [--clients N] "
		    "[--requests N] [--skip N] [--out FILE]");
	curl_global_init(CURL_GLOBAL_ALL);
	if ((f = fopen(input, "re")) == NULL)
		die("cannot open --input");
	text = read_all(f);
	fclose(f);
	if ((jobs = calloc(requests, sizeof(*jobs))) == NULL)
		die("out of memory");
	if (strcmp(mode, "reenroll") == 0) {
		/* pairs: key PEM then certificate PEM, one after the other */
		BIO *b = BIO_new_mem_buf(text, -1);
		size_t k = 0;

		for (; k < skip + requests; k++) {
			EVP_PKEY *key =
			    PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
			X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
			BIO *m;
			char *p;
			long n;

			if (key == NULL || x == NULL)
				break;
			if (k >= skip) {
				struct job *j = &jobs[n_jobs++];

				j->key_pem = pem_of_key(key);
				m = BIO_new(BIO_s_mem());
				PEM_write_bio_X509(m, x);
				n = BIO_get_mem_data(m, &p);
				j->cert_pem = strndup(p, (size_t)n);
				BIO_free(m);
				make_csr(j, X509_get_subject_name(x));
			}
			EVP_PKEY_free(key);
			X509_free(x);
		}
		BIO_free(b);
		fresh = true;
	} else {
		size_t k = 0;

		for (line = text; *line != '\0' && n_jobs < requests;
		     line = nl, k++) {
			struct job *j;

			if ((nl = strchr(line, '\n')) != NULL)
				*nl++ = '\0';
			else
				nl = line + strlen(line);
			if (k < skip)
				continue;
			j = &jobs[n_jobs++];
			if (strcmp(mode, "enroll") == 0) {
				if (asprintf(&j->auth,
					"Authorization: Bearer %s", line) < 0)
					die("out of memory");
				make_csr(j, NULL);
			} else {
				char cid[16], uid[40], sec[128], pw[128];

				if (sscanf(line, "%15s %39s %127s %127s", cid,
					uid, sec, pw) != 4)
					die("bad session input line");
				j->auth = strdup(sec);
				if (asprintf(&j->body,
					"{\"contract_id\":\"%s\",\"user_id\":"
					"\"%s\",\"password\":\"%s\",\"otp\":"
					"\"\"}",
					cid, uid, pw) < 0)
					die("out of memory");
			}
		}
	}
	if (n_jobs < requests)
		die("not enough input for --requests");
	if ((th = calloc(clients, sizeof(*th))) == NULL ||
	    (lat = calloc(n_jobs, sizeof(*lat))) == NULL)
		die("out of memory");
	c0 = cpu_ms();
	t0 = now_ms();
	for (i = 0; i < clients; i++)
		pthread_create(&th[i], NULL, worker, NULL);
	for (i = 0; i < clients; i++)
		pthread_join(th[i], NULL);
	secs = (now_ms() - t0) / 1e3;
	cpu = cpu_ms() - c0;
	for (i = 0; i < n_jobs; i++) {
		lat[i] = jobs[i].ms;
		if (jobs[i].status == 200)
			ok++;
	}
	qsort(lat, n_jobs, sizeof(*lat), cmp_double);
	printf("%s clients=%lu requests=%zu failed=%zu per_s=%.0f p50_ms=%.2f "
	       "p99_ms=%.2f client_cpu_ms=%.3f\n",
	    mode, clients, n_jobs, n_jobs - ok, (double)ok / secs,
	    lat[n_jobs / 2], lat[(n_jobs * 99) / 100], cpu / (double)n_jobs);
	if (out != NULL && strcmp(mode, "session") != 0) {
		if ((f = fopen(out, "ae")) == NULL)
			die("cannot open --out");
		for (i = 0; i < n_jobs; i++) {
			char *pem;

			if (jobs[i].status != 200 ||
			    (pem = reply_cert_pem(&jobs[i])) == NULL)
				continue;
			fputs(jobs[i].new_key_pem, f);
			fputs(pem, f);
			free(pem);
		}
		fclose(f);
	}
	for (i = 0; i < n_jobs; i++) {
		if (jobs[i].status != 200 && i < 3)
			fprintf(stderr, "ra-est: status %ld: %.200s\n",
			    jobs[i].status, jobs[i].reply ? jobs[i].reply : "");
	}
	curl_global_cleanup();
	return ok == n_jobs ? 0 : 1;
}
