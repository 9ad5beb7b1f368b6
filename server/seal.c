/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "server/seal.h"

#define NONCE_LEN 12
#define TAG_LEN 16

enum p11e_err
p11e_seal_key_create(const char *path)
{
	unsigned char key[P11E_SEAL_KEY_LEN];
	enum p11e_err err = P11E_OK;
	int fd;

	if (RAND_bytes(key, sizeof(key)) != 1)
		return P11E_ERR_CRYPTO;
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (fd < 0) {
		p11e_error("%s: %s", path, strerror(errno));
		p11e_wipe(key, sizeof(key));
		return errno == EEXIST ? P11E_ERR_EXISTS : P11E_ERR_IO;
	}
	if (write(fd, key, sizeof(key)) != (ssize_t)sizeof(key) ||
	    fsync(fd) != 0) {
		p11e_error("%s: %s", path, strerror(errno));
		err = P11E_ERR_IO;
	}
	close(fd);
	p11e_wipe(key, sizeof(key));
	return err;
}

enum p11e_err
p11e_seal_key_load(const char *path, struct p11e_secret **key)
{
	unsigned char buf[P11E_SEAL_KEY_LEN + 1];
	enum p11e_err err = P11E_OK;
	struct stat stb;
	ssize_t n;
	int fd;

	*key = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		p11e_error("data key %s: %s", path, strerror(errno));
		return errno == ENOENT ? P11E_ERR_NOT_FOUND : P11E_ERR_IO;
	}
	if (fstat(fd, &stb) != 0 || stb.st_uid != geteuid() ||
	    (stb.st_mode & 077) != 0 || !S_ISREG(stb.st_mode)) {
		p11e_error("data key %s: must be a regular file of this user "
			   "and not accessible to others",
		    path);
		err = P11E_ERR_UNSAFE_PATH;
		goto out;
	}
	n = read(fd, buf, sizeof(buf));
	if (n != P11E_SEAL_KEY_LEN) {
		p11e_error(
		    "data key %s: expected %d bytes", path, P11E_SEAL_KEY_LEN);
		err = P11E_ERR_PARSE;
		goto out;
	}
	if ((*key = p11e_secret_new_from(buf, P11E_SEAL_KEY_LEN)) == NULL)
		err = P11E_ERR_NOMEM;
out:
	p11e_wipe(buf, sizeof(buf));
	close(fd);
	return err;
}

enum p11e_err
p11e_seal(const struct p11e_secret *key, const char *aad,
    const struct p11e_secret *plain, struct p11e_buf *out)
{
	unsigned char head[1 + NONCE_LEN], tag[TAG_LEN], *ct = NULL;
	size_t plen = p11e_secret_len(plain);
	enum p11e_err err = P11E_ERR_CRYPTO;
	EVP_CIPHER_CTX *ctx = NULL;
	int len = 0, fin = 0;

	p11e_return_val_if_fail(p11e_secret_len(key) == P11E_SEAL_KEY_LEN,
	    P11E_ERR_INVALID_PARAMETER);
	head[0] = 1;
	if (RAND_bytes(head + 1, NONCE_LEN) != 1)
		goto out;
	if ((ct = malloc(plen + 16)) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL,
		p11e_secret_data(key), head + 1) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &len, (const unsigned char *)aad,
		(int)strlen(aad)) != 1 ||
	    EVP_EncryptUpdate(
		ctx, ct, &len, p11e_secret_data(plain), (int)plen) != 1 ||
	    EVP_EncryptFinal_ex(ctx, ct + len, &fin) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
		goto out;
	if ((err = p11e_buf_append(out, head, sizeof(head))) != P11E_OK ||
	    (err = p11e_buf_append(out, ct, (size_t)(len + fin))) != P11E_OK ||
	    (err = p11e_buf_append(out, tag, sizeof(tag))) != P11E_OK)
		goto out;
	err = P11E_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	free(ct);
	return err;
}

enum p11e_err
p11e_unseal(const struct p11e_secret *key, const char *aad,
    const unsigned char *sealed, size_t len, struct p11e_secret **plain)
{
	struct p11e_secret *pt = NULL;
	enum p11e_err err = P11E_ERR_CRYPTO;
	EVP_CIPHER_CTX *ctx = NULL;
	unsigned char tag[TAG_LEN];
	unsigned char *tmp = NULL;
	size_t clen;
	int n = 0, fin = 0;

	*plain = NULL;
	p11e_return_val_if_fail(p11e_secret_len(key) == P11E_SEAL_KEY_LEN,
	    P11E_ERR_INVALID_PARAMETER);
	if (len < P11E_SEAL_OVERHEAD || sealed[0] != 1 ||
	    len - P11E_SEAL_OVERHEAD > P11E_SECRET_MAX)
		return P11E_ERR_PARSE;
	clen = len - P11E_SEAL_OVERHEAD;
	memcpy(tag, sealed + len - TAG_LEN, TAG_LEN);
	/* the plaintext is a secret: decrypt into a secret's storage */
	if ((pt = p11e_secret_new(clen > 0 ? clen : 1)) == NULL ||
	    (tmp = (unsigned char *)p11e_secret_data(pt)) == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	if ((ctx = EVP_CIPHER_CTX_new()) == NULL ||
	    EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL,
		p11e_secret_data(key), sealed + 1) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, (const unsigned char *)aad,
		(int)strlen(aad)) != 1 ||
	    EVP_DecryptUpdate(
		ctx, tmp, &n, sealed + 1 + NONCE_LEN, (int)clen) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, tmp + n, &fin) != 1) {
		p11e_error("sealed value (%s) does not open", aad);
		goto out;
	}
	/* set the length: append the bytes onto themselves */
	{
		struct p11e_secret *sized = p11e_secret_new_from(tmp, clen);

		if (sized == NULL) {
			err = P11E_ERR_NOMEM;
			goto out;
		}
		*plain = sized;
	}
	err = P11E_OK;
out:
	EVP_CIPHER_CTX_free(ctx);
	p11e_secret_free(pt);
	return err;
}
