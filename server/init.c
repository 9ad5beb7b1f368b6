/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "pkcs11/evp.h"
#include "pkcs11/p11.h"
#include "server/ca.h"
#include "server/ra.h"
#include "server/seal.h"

#define MAX_HOSTNAMES 16
#define MAX_CREATED 16

struct init {
	char dir[PATH_MAX];
	bool made_dir;
	char *created[MAX_CREATED]; /* removed again on failure */
	size_t n_created;
	bool rsa;
	bool intermediate;
	const char *ca_key_uri;
	const char *server_ca_cert, *server_ca_key;
	const char *hostnames[MAX_HOSTNAMES];
	size_t n_hostnames;
	const char *listen;
	/* results */
	char key_uri[1200];
	char server_pin[64];
	char ca_fingerprint[100];
	/* a CA key on a token */
	struct p11e_p11 *p11;
	struct p11e_token *tok;
	struct p11e_evp_key *evp;
};

static void
usage_init(void)
{
	fprintf(stderr,
	    "Usage: p11enroll-ra init DIR [--rsa] [--ca-key-uri URI] "
	    "[--intermediate]\n"
	    "         [--server-ca-cert FILE --server-ca-key FILE]\n"
	    "         [--hostname NAME]... [--listen ADDR:PORT] [--json]\n");
}

static enum p11e_err
path_in(struct init *in, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", in->dir, name);

	return n < 0 || (size_t)n >= len ? P11E_ERR_TOO_LARGE : P11E_OK;
}

static enum p11e_err
created(struct init *in, const char *path)
{
	if (in->n_created == MAX_CREATED ||
	    (in->created[in->n_created] = strdup(path)) == NULL)
		return P11E_ERR_NOMEM;
	in->n_created++;
	return P11E_OK;
}

/* Creates DIR/name with mode and writes len bytes of data (O_EXCL). */
static enum p11e_err
write_file(struct init *in, const char *name, mode_t mode, const void *data,
    size_t len)
{
	char path[PATH_MAX];
	enum p11e_err err;
	ssize_t n;
	int fd;

	if ((err = path_in(in, name, path, sizeof(path))) != P11E_OK)
		return err;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0) {
		p11e_error("%s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	if ((err = created(in, path)) != P11E_OK) {
		close(fd);
		unlink(path);
		return err;
	}
	n = write(fd, data, len);
	if (n < 0 || (size_t)n != len || fsync(fd) != 0) {
		p11e_error("%s: %s", path, strerror(errno));
		close(fd);
		return P11E_ERR_IO;
	}
	close(fd);
	return P11E_OK;
}

/* PEM of a certificate (or chain) or key into DIR/name. */
static enum p11e_err
write_pem(struct init *in, const char *name, mode_t mode, X509 *cert,
    X509 *cert2, EVP_PKEY *key)
{
	enum p11e_err err = P11E_ERR_CRYPTO;
	BIO *b = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	if (b == NULL)
		return P11E_ERR_NOMEM;
	if ((cert != NULL && PEM_write_bio_X509(b, cert) != 1) ||
	    (cert2 != NULL && PEM_write_bio_X509(b, cert2) != 1) ||
	    (key != NULL &&
		PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL) !=
		    1))
		goto out;
	len = BIO_get_mem_data(b, &data);
	err = write_file(in, name, mode, data, (size_t)len);
out:
	if (key != NULL && data != NULL)
		OPENSSL_cleanse(data, (size_t)BIO_get_mem_data(b, &data));
	BIO_free(b);
	return err;
}

static enum p11e_err
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509_EXTENSION *ext;
	X509V3_CTX ctx;
	int ok;

	X509V3_set_ctx(&ctx, issuer != NULL ? issuer : x, x, NULL, NULL, 0);
	if ((ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value)) == NULL)
		return P11E_ERR_CRYPTO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok == 1 ? P11E_OK : P11E_ERR_CRYPTO;
}

/*
 * A certificate for pub: a CA (self-signed when issuer is NULL) that may
 * have pathlen CAs below it, or (pathlen < 0) a TLS server leaf with the
 * SAN san ("IP:...,DNS:...").
 */
static enum p11e_err
make_cert(const char *cn, EVP_PKEY *pub, X509 *issuer, EVP_PKEY *issuer_key,
    long days, int pathlen, const char *san, X509 **out)
{
	unsigned char serial[16];
	enum p11e_err err = P11E_ERR_CRYPTO;
	ASN1_INTEGER *ai = NULL;
	X509_NAME *name = NULL;
	BIGNUM *bn = NULL;
	X509 *x = NULL;

	*out = NULL;
	if (RAND_bytes(serial, sizeof(serial)) != 1)
		goto out;
	serial[0] = (unsigned char)((serial[0] & 0x7f) | 0x01);
	if ((bn = BN_bin2bn(serial, sizeof(serial), NULL)) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (x = X509_new()) == NULL || (name = X509_NAME_new()) == NULL ||
	    X509_NAME_add_entry_by_NID(name, NID_organizationName,
		MBSTRING_UTF8, (const unsigned char *)"p11enroll-ra", -1, -1,
		0) != 1 ||
	    X509_NAME_add_entry_by_NID(name, NID_commonName, MBSTRING_UTF8,
		(const unsigned char *)cn, -1, -1, 0) != 1 ||
	    X509_set_version(x, X509_VERSION_3) != 1 ||
	    X509_set_serialNumber(x, ai) != 1 ||
	    X509_set_subject_name(x, name) != 1 ||
	    X509_set_issuer_name(x,
		issuer != NULL ? X509_get_subject_name(issuer) : name) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(x), -300) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) ==
		NULL ||
	    X509_set_pubkey(x, pub) != 1)
		goto out;
	if (pathlen >= 0) {
		char bc[64];

		snprintf(
		    bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", pathlen);
		if ((err = add_ext(x, issuer, NID_basic_constraints, bc)) !=
			P11E_OK ||
		    (err = add_ext(x, issuer, NID_key_usage,
			 "critical,keyCertSign,cRLSign")) != P11E_OK)
			goto out;
	} else {
		if ((err = add_ext(x, issuer, NID_basic_constraints,
			 "critical,CA:FALSE")) != P11E_OK ||
		    (err = add_ext(x, issuer, NID_key_usage,
			 "critical,digitalSignature")) != P11E_OK ||
		    (err = add_ext(x, issuer, NID_ext_key_usage,
			 "serverAuth")) != P11E_OK ||
		    (err = add_ext(x, issuer, NID_subject_alt_name, san)) !=
			P11E_OK)
			goto out;
	}
	if ((err = add_ext(x, issuer, NID_subject_key_identifier, "hash")) !=
		P11E_OK ||
	    (err = add_ext(x, issuer, NID_authority_key_identifier,
		 "keyid:always")) != P11E_OK)
		goto out;
	err = P11E_ERR_CRYPTO;
	if (X509_sign(x, issuer_key, p11e_ca_sign_md(issuer_key)) <= 0)
		goto out;
	*out = x;
	x = NULL; /* transferred */
	err = P11E_OK;
out:
	if (err != P11E_OK)
		p11e_ca_log_ossl("certificate");
	X509_free(x);
	X509_NAME_free(name);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return err;
}

/* The directory must not exist, or be an empty directory. */
static enum p11e_err
prepare_dir(struct init *in, const char *dir)
{
	struct dirent *de;
	DIR *d;

	if (mkdir(dir, 0700) == 0) {
		in->made_dir = true;
	} else if (errno == EEXIST) {
		if ((d = opendir(dir)) == NULL) {
			p11e_error("%s: %s", dir, strerror(errno));
			return P11E_ERR_IO;
		}
		while ((de = readdir(d)) != NULL)
			if (strcmp(de->d_name, ".") != 0 &&
			    strcmp(de->d_name, "..") != 0)
				break;
		closedir(d);
		if (de != NULL) {
			p11e_error("%s is not empty: refusing to initialise "
				   "it (nothing was changed)",
			    dir);
			return P11E_ERR_EXISTS;
		}
	} else {
		p11e_error("%s: %s", dir, strerror(errno));
		return P11E_ERR_IO;
	}
	if (realpath(dir, in->dir) == NULL) {
		p11e_error("%s: %s", dir, strerror(errno));
		return P11E_ERR_IO;
	}
	if (!in->made_dir && chmod(in->dir, 0700) != 0) {
		p11e_error("%s: %s", in->dir, strerror(errno));
		return P11E_ERR_IO;
	}
	return P11E_OK;
}

/* key-uri with id= of the new key inserted before the query. */
static enum p11e_err
uri_with_id(
    struct init *in, const char *uri, const unsigned char *id, size_t idlen)
{
	const char *q = strchr(uri, '?');
	size_t plen = q != NULL ? (size_t)(q - uri) : strlen(uri);
	char idenc[3 * P11E_ID_MAX + 1];
	size_t i;
	int n;

	for (i = 0; i < idlen; i++)
		snprintf(idenc + 3 * i, 4, "%%%02x", id[i]);
	n = snprintf(in->key_uri, sizeof(in->key_uri), "%.*s%sid=%s%s",
	    (int)plen, uri, plen > 7 ? ";" : "", idenc, q != NULL ? q : "");
	return n < 0 || (size_t)n >= sizeof(in->key_uri) ? P11E_ERR_TOO_LARGE
							 : P11E_OK;
}

/* The CA key on the token named by in->ca_key_uri (generated there). */
static enum p11e_err
token_ca_key(struct init *in, EVP_PKEY **key)
{
	unsigned char id[P11E_ID_RANDOM_LEN];
	struct p11e_buf spki;
	enum p11e_err err;

	*key = NULL;
	p11e_buf_init(&spki, 4096);
	if (strstr(in->ca_key_uri, "pin-value") != NULL) {
		p11e_error("--ca-key-uri: no pin-value in URIs; use "
			   "pin-source=file:PATH");
		err = P11E_ERR_INVALID_PARAMETER;
		goto out;
	}
	if ((err = p11e_p11_new(&in->p11)) != P11E_OK ||
	    (err = p11e_token_open(in->p11, in->ca_key_uri, &in->tok)) !=
		P11E_OK ||
	    (err = p11e_token_login(in->tok, NULL, false)) != P11E_OK ||
	    (err = p11e_token_new_id(in->tok, id, sizeof(id))) != P11E_OK ||
	    (err = p11e_token_keygen(in->tok,
		 in->rsa ? P11E_KEY_RSA_3072 : P11E_KEY_EC_P256, id, sizeof(id),
		 "p11enroll-ra issuing CA", &spki)) != P11E_OK ||
	    (err = p11e_token_evp_key(in->tok, id, sizeof(id), &in->evp)) !=
		P11E_OK ||
	    (err = uri_with_id(in, in->ca_key_uri, id, sizeof(id))) != P11E_OK)
		goto out;
	*key = p11e_evp_key_pkey(in->evp);
	EVP_PKEY_up_ref(*key);
out:
	if (err != P11E_OK && in->p11 != NULL &&
	    p11e_p11_detail(in->p11)[0] != '\0')
		p11e_error("CA key on the token: %s", p11e_p11_detail(in->p11));
	p11e_buf_clear(&spki);
	return err;
}

static enum p11e_err
load_pem(const char *path, X509 **cert, EVP_PKEY **key)
{
	FILE *f = fopen(path, "re");

	if (f == NULL) {
		p11e_error("%s: %s", path, strerror(errno));
		return P11E_ERR_IO;
	}
	if (cert != NULL)
		*cert = PEM_read_X509(f, NULL, NULL, NULL);
	else
		*key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if ((cert != NULL && *cert == NULL) || (key != NULL && *key == NULL)) {
		p11e_ca_log_ossl(path);
		return P11E_ERR_PARSE;
	}
	return P11E_OK;
}

static enum p11e_err
make_san(struct init *in, char *san, size_t len)
{
	unsigned char addr[16];
	size_t i, off;
	int n;

	n = snprintf(san, len, "IP:127.0.0.1,IP:::1,DNS:localhost");
	off = (size_t)n;
	for (i = 0; i < in->n_hostnames; i++) {
		const char *h = in->hostnames[i];
		bool ip = inet_pton(AF_INET, h, addr) == 1 ||
		    inet_pton(AF_INET6, h, addr) == 1;

		if (strpbrk(h, ",:= ") != NULL && !ip) {
			p11e_error("--hostname %s: not a host name", h);
			return P11E_ERR_INVALID_PARAMETER;
		}
		n = snprintf(
		    san + off, len - off, ",%s:%s", ip ? "IP" : "DNS", h);
		if (n < 0 || (size_t)n >= len - off)
			return P11E_ERR_TOO_LARGE;
		off += (size_t)n;
	}
	return P11E_OK;
}

static enum p11e_err
write_conf(struct init *in)
{
	char buf[8192], url[300];
	const char *host = in->n_hostnames > 0 ? in->hostnames[0] : "127.0.0.1";
	const char *port;
	int n;

	port = strrchr(in->listen, ':');
	snprintf(url, sizeof(url), "https://%s%s%s%s",
	    strchr(host, ':') != NULL ? "[" : "", host,
	    strchr(host, ':') != NULL ? "]" : "", port != NULL ? port : "");
	n = snprintf(buf, sizeof(buf),
	    "# p11enroll-ra configuration, written by p11enroll-ra init.\n"
	    "# See p11enroll-ra(8).  Secrets never go into this file.\n"
	    "\n"
	    "[server]\n"
	    "# address:port to listen on (HTTPS, TLS 1.2+)\n"
	    "listen = %s\n"
	    "# the service URL given to users in their invitations\n"
	    "url = %s\n"
	    "# the server's TLS chain and key\n"
	    "tls-cert = %s/" P11E_RA_TLS_CERT "\n"
	    "tls-key = %s/" P11E_RA_TLS_KEY "\n"
	    "\n"
	    "[ca]\n"
	    "# the issuing CA of client certificates\n"
	    "cert = %s/" P11E_RA_CA_CERT "\n"
	    "%s%s%s%s%s"
	    "\n"
	    "[policy]\n"
	    "# certificate lifetime (1 year + 1 day) and notBefore backdating\n"
	    "#validity = 366d\n"
	    "#backdate = 5m\n"
	    "# re-enrollment allowed from this long before expiry\n"
	    "#renew-before = 30d\n"
	    "# acquisition window (取得可能期間) after user add or reissue\n"
	    "#window = 14d\n"
	    "# lifetime of an enrollment token (at least 10m)\n"
	    "#token-lifetime = 10m\n"
	    "# TOTP step (30 or 60 s, as the tokens) and steps accepted "
	    "either side\n"
	    "#otp-step = 30\n"
	    "#otp-skew = 1\n"
	    "# consecutive failures before the lock (password/PIN/OTP; grid)\n"
	    "#max-failures = 5\n"
	    "#grid-max-failures = 3\n"
	    "# key types accepted in certificate requests\n"
	    "#key-types = ec-p256,ec-p384,rsa-2048,rsa-3072,rsa-4096\n",
	    in->listen, url, in->dir, in->dir, in->dir,
	    in->ca_key_uri != NULL ? "# the CA key on a PKCS#11 token\n"
				     "key-uri = "
				   : "# the CA key (PEM, 0600)\nkey = ",
	    in->ca_key_uri != NULL ? in->key_uri : in->dir,
	    in->ca_key_uri != NULL ? "" : "/",
	    in->ca_key_uri != NULL ? "" : P11E_RA_CA_KEY, "\n");
	if (n < 0 || (size_t)n >= sizeof(buf))
		return P11E_ERR_TOO_LARGE;
	return write_file(in, P11E_RA_CONF, 0600, buf, (size_t)n);
}

static enum p11e_err
fingerprint(X509 *x, char *out, size_t len)
{
	unsigned char md[32];
	unsigned int mdlen = 0, i;

	if (X509_digest(x, EVP_sha256(), md, &mdlen) != 1 || mdlen != 32 ||
	    len < 96)
		return P11E_ERR_CRYPTO;
	for (i = 0; i < mdlen; i++)
		snprintf(
		    out + 3 * i, 4, "%02X%s", md[i], i + 1 < mdlen ? ":" : "");
	return P11E_OK;
}

/*
 * The root above an intermediate issuing CA: its certificate into
 * root-ca.crt, its key into root-ca.key (0600, to be taken offline: the
 * RA never uses it).
 */
static enum p11e_err
make_root(struct init *in, X509 **root, EVP_PKEY **key)
{
	enum p11e_err err;

	if ((*key = in->rsa ? EVP_RSA_gen(3072) : EVP_EC_gen("P-256")) == NULL)
		return P11E_ERR_CRYPTO;
	if ((err = make_cert("p11enroll-ra root CA", *key, NULL, *key, 20 * 366,
		 1, NULL, root)) != P11E_OK ||
	    (err = write_pem(
		 in, P11E_RA_ROOT_CA_CERT, 0644, *root, NULL, NULL)) != P11E_OK)
		return err;
	return write_pem(in, P11E_RA_ROOT_CA_KEY, 0600, NULL, NULL, *key);
}

static enum p11e_err
run_init(struct p11e_ra *ra, struct init *in, const char *dir)
{
	EVP_PKEY *ca_key = NULL, *srv_ca_key = NULL, *srv_key = NULL;
	EVP_PKEY *root_key = NULL;
	X509 *ca_cert = NULL, *srv_ca = NULL, *srv_cert = NULL, *root = NULL;
	struct p11e_db *db = NULL;
	char path[PATH_MAX], san[2048];
	enum p11e_err err;

	if ((err = prepare_dir(in, dir)) != P11E_OK)
		return err;
	ra->dir = in->dir;
	/* the issuing CA, self-signed or under a root made here */
	if (in->ca_key_uri != NULL)
		err = token_ca_key(in, &ca_key);
	else if ((ca_key = in->rsa ? EVP_RSA_gen(3072) : EVP_EC_gen("P-256")) ==
	    NULL)
		err = P11E_ERR_CRYPTO;
	if (err == P11E_OK && in->intermediate &&
	    (err = make_root(in, &root, &root_key)) != P11E_OK)
		goto out;
	if (err != P11E_OK ||
	    (err = make_cert("p11enroll-ra issuing CA", ca_key, root,
		 root != NULL ? root_key : ca_key,
		 root != NULL ? 10 * 366 : 20 * 366, 0, NULL, &ca_cert)) !=
		P11E_OK ||
	    (err = write_pem(in, P11E_RA_CA_CERT, 0644, ca_cert, root, NULL)) !=
		P11E_OK ||
	    (in->ca_key_uri == NULL &&
		(err = write_pem(
		     in, P11E_RA_CA_KEY, 0600, NULL, NULL, ca_key)) != P11E_OK))
		goto out;
	/* the server's TLS CA: given, or made here */
	if (in->server_ca_cert != NULL) {
		if ((err = load_pem(in->server_ca_cert, &srv_ca, NULL)) !=
			P11E_OK ||
		    (err = load_pem(in->server_ca_key, NULL, &srv_ca_key)) !=
			P11E_OK)
			goto out;
		if (X509_check_private_key(srv_ca, srv_ca_key) != 1) {
			p11e_error("--server-ca-key does not belong to "
				   "--server-ca-cert");
			err = P11E_ERR_CERT_KEY_MISMATCH;
			goto out;
		}
	} else if ((srv_ca_key = EVP_EC_gen("P-256")) == NULL ||
	    (err = make_cert("p11enroll-ra server CA", srv_ca_key, NULL,
		 srv_ca_key, 10 * 366, 0, NULL, &srv_ca)) != P11E_OK ||
	    (err = write_pem(in, P11E_RA_SERVER_CA_KEY, 0600, NULL, NULL,
		 srv_ca_key)) != P11E_OK) {
		if (err == P11E_OK)
			err = P11E_ERR_CRYPTO;
		goto out;
	}
	if ((err = write_pem(in, P11E_RA_SERVER_CA_CERT, 0644, srv_ca, NULL,
		 NULL)) != P11E_OK ||
	    (err = make_san(in, san, sizeof(san))) != P11E_OK)
		goto out;
	if ((srv_key = EVP_EC_gen("P-256")) == NULL) {
		err = P11E_ERR_CRYPTO;
		goto out;
	}
	if ((err = make_cert(
		 in->n_hostnames > 0 ? in->hostnames[0] : "localhost", srv_key,
		 srv_ca, srv_ca_key, 825, -1, san, &srv_cert)) != P11E_OK ||
	    (err = write_pem(in, P11E_RA_TLS_CERT, 0644, srv_cert, srv_ca,
		 NULL)) != P11E_OK ||
	    (err = write_pem(in, P11E_RA_TLS_KEY, 0600, NULL, NULL, srv_key)) !=
		P11E_OK ||
	    (err = p11e_ca_spki_pin(srv_cert, in->server_pin,
		 sizeof(in->server_pin))) != P11E_OK ||
	    (err = fingerprint(ca_cert, in->ca_fingerprint,
		 sizeof(in->ca_fingerprint))) != P11E_OK)
		goto out;
	/* the data key and the database */
	if ((err = path_in(in, P11E_RA_DATA_KEY, path, sizeof(path))) !=
		P11E_OK ||
	    (err = p11e_seal_key_create(path)) != P11E_OK ||
	    (err = created(in, path)) != P11E_OK ||
	    (err = write_conf(in)) != P11E_OK ||
	    (err = path_in(in, P11E_RA_DB, path, sizeof(path))) != P11E_OK)
		goto out;
	if ((err = created(in, path)) != P11E_OK ||
	    (err = p11e_db_open(path, true, &db)) != P11E_OK ||
	    (err = p11e_db_audit(db, ra->actor, "init", in->dir, "ok", NULL,
		 in->ca_key_uri != NULL ? "CA key on a PKCS#11 token"
					: "CA key in a file")) != P11E_OK)
		goto out;
out:
	p11e_db_close(db);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(root_key);
	X509_free(root);
	X509_free(ca_cert);
	X509_free(srv_ca);
	X509_free(srv_cert);
	return err;
}

static void
undo(struct init *in)
{
	char path[PATH_MAX + 8];
	size_t i;

	for (i = in->n_created; i > 0; i--) {
		unlink(in->created[i - 1]);
		/* the database's companions */
		snprintf(path, sizeof(path), "%s-wal", in->created[i - 1]);
		unlink(path);
		snprintf(path, sizeof(path), "%s-shm", in->created[i - 1]);
		unlink(path);
	}
	if (in->made_dir)
		rmdir(in->dir);
}

int
p11e_ra_cmd_init(struct p11e_ra *ra, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rsa", no_argument, NULL, 'r' },
		{ "intermediate", no_argument, NULL, 'i' },
		{ "ca-key-uri", required_argument, NULL, 'u' },
		{ "server-ca-cert", required_argument, NULL, 'c' },
		{ "server-ca-key", required_argument, NULL, 'k' },
		{ "hostname", required_argument, NULL, 'H' },
		{ "listen", required_argument, NULL, 'l' },
		{ "json", no_argument, NULL, 'j' },
		{ NULL, 0, NULL, 0 },
	};
	struct init in;
	enum p11e_err err;
	size_t i;
	int c;

	memset(&in, 0, sizeof(in));
	in.listen = "127.0.0.1:8443";
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			in.rsa = true;
			break;
		case 'i':
			in.intermediate = true;
			break;
		case 'u':
			in.ca_key_uri = optarg;
			break;
		case 'c':
			in.server_ca_cert = optarg;
			break;
		case 'k':
			in.server_ca_key = optarg;
			break;
		case 'H':
			if (in.n_hostnames == MAX_HOSTNAMES) {
				p11e_error(
				    "at most %d --hostname", MAX_HOSTNAMES);
				return P11E_RA_EXIT_USAGE;
			}
			in.hostnames[in.n_hostnames++] = optarg;
			break;
		case 'l':
			in.listen = optarg;
			break;
		case 'j':
			ra->json = true;
			break;
		default:
			usage_init();
			return P11E_RA_EXIT_USAGE;
		}
	}
	if (optind != argc - 1 ||
	    (in.server_ca_cert != NULL) != (in.server_ca_key != NULL)) {
		usage_init();
		return P11E_RA_EXIT_USAGE;
	}
	if (in.ca_key_uri != NULL &&
	    strncmp(in.ca_key_uri, "pkcs11:", 7) != 0) {
		p11e_error("--ca-key-uri must be a pkcs11: URI");
		return P11E_RA_EXIT_USAGE;
	}
	err = run_init(ra, &in, argv[optind]);
	p11e_evp_key_free(in.evp);
	p11e_token_close(in.tok);
	p11e_p11_free(in.p11);
	if (err != P11E_OK) {
		undo(&in);
		p11e_ra_fail(err, NULL);
	} else if (ra->json) {
		json_t *j =
		    json_pack("{s:s, s:s, s:s, s:s, s:s}", "dir", in.dir,
			"ca_key", in.ca_key_uri != NULL ? in.key_uri : "file",
			"ca_fingerprint_sha256", in.ca_fingerprint,
			"server_pin", in.server_pin, "listen", in.listen);

		if (in.intermediate)
			json_object_set_new(
			    j, "root_ca", json_string(P11E_RA_ROOT_CA_CERT));

		json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
		fputc('\n', stdout);
		json_decref(j);
	} else {
		printf("Initialised the RA in %s\n"
		       "  issuing CA:  %s (SHA-256 %s)\n"
		       "  CA key:      %s\n"
		       "  TLS:         %s, %s\n"
		       "  server pin:  %s\n"
		       "  database:    %s, data key %s\n"
		       "  config:      %s\n",
		    in.dir, P11E_RA_CA_CERT, in.ca_fingerprint,
		    in.ca_key_uri != NULL ? in.key_uri : P11E_RA_CA_KEY,
		    P11E_RA_TLS_CERT, P11E_RA_TLS_KEY, in.server_pin,
		    P11E_RA_DB, P11E_RA_DATA_KEY, P11E_RA_CONF);
		if (in.intermediate)
			printf(
			    "  root CA:     %s above the issuing CA (%s holds "
			    "both); its key %s: take it offline, the RA "
			    "never uses it\n",
			    P11E_RA_ROOT_CA_CERT, P11E_RA_CA_CERT,
			    P11E_RA_ROOT_CA_KEY);
	}
	for (i = 0; i < in.n_created; i++)
		free(in.created[i]);
	ra->dir = NULL;
	return p11e_ra_exit(err);
}
