/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <jansson.h>

#include "common/ipc.h"
#include "common/log.h"
#include "common/secret.h"

void
p11e_ipc_json_init(void)
{
	/* jansson keeps a copy of every string it parses or builds */
	json_set_alloc_funcs(p11e_wipe_malloc, p11e_wipe_free);
}

enum p11e_err
p11e_ipc_decode(const unsigned char *data, size_t len, json_t **msg)
{
	json_error_t jerr;
	json_t *j;

	*msg = NULL;
	j = json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		p11e_debug(P11E_DEBUG_IPC, "bad frame at %d: %s", jerr.position,
		    jerr.text);
		return P11E_ERR_PROTOCOL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		return P11E_ERR_PROTOCOL;
	}
	*msg = j;
	return P11E_OK;
}

enum p11e_err
p11e_ipc_encode(json_t *msg, struct p11e_buf *out)
{
	enum p11e_err err;
	size_t len, room;
	char *text;

	p11e_return_val_if_fail(
	    json_is_object(msg), P11E_ERR_INVALID_PARAMETER);
	len = json_dumpb(msg, NULL, 0, JSON_COMPACT);
	if (len == 0)
		return P11E_ERR_NOMEM;
	room = out->max - out->len;
	if (len >= room)
		return P11E_ERR_TOO_LARGE;
	/* into our own (wiped) storage, not jansson's allocator */
	if ((text = p11e_wipe_malloc(len + 1)) == NULL)
		return P11E_ERR_NOMEM;
	if (json_dumpb(msg, text, len, JSON_COMPACT) != len) {
		err = P11E_ERR_NOMEM;
	} else {
		text[len] = '\0';
		err = p11e_buf_append(out, text, len + 1);
	}
	p11e_wipe_free(text);
	return err;
}

enum p11e_err
p11e_ipc_take_frame(struct p11e_buf *in, json_t **msg)
{
	enum p11e_err err;
	unsigned char *nul;
	size_t flen;

	*msg = NULL;
	nul = in->len ? memchr(in->data, '\0', in->len) : NULL;
	if (nul == NULL)
		return in->len >= in->max ? P11E_ERR_TOO_LARGE : P11E_OK;
	flen = (size_t)(nul - in->data);
	err = p11e_ipc_decode(in->data, flen, msg);
	p11e_buf_consume(in, flen + 1);
	return err;
}

enum p11e_err
p11e_ipc_recv(int fd, struct p11e_buf *in, json_t **msg)
{
	unsigned char chunk[4096];
	enum p11e_err err;
	ssize_t n;
	size_t room;

	*msg = NULL;
	for (;;) {
		if ((err = p11e_ipc_take_frame(in, msg)) != P11E_OK ||
		    *msg != NULL)
			break;
		/* never read past the frame limit */
		room = in->max - in->len;
		n = recv(
		    fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = (errno == EAGAIN || errno == EWOULDBLOCK)
			    ? P11E_ERR_TIMEOUT
			    : P11E_ERR_SYSTEM;
			break;
		}
		if (n == 0) {
			err = P11E_ERR_CONNECTION_CLOSED;
			break;
		}
		err = p11e_buf_append(in, chunk, (size_t)n);
		p11e_wipe(chunk, (size_t)n);
		if (err != P11E_OK)
			break;
	}
	return err;
}

enum p11e_err
p11e_ipc_send(int fd, json_t *msg)
{
	struct p11e_buf out;
	enum p11e_err err;
	size_t off = 0;
	ssize_t n;

	p11e_buf_init_wiped(&out, P11E_IPC_MAX_FRAME);
	if ((err = p11e_ipc_encode(msg, &out)) != P11E_OK)
		goto out;
	while (off < out.len) {
		n = send(fd, out.data + off, out.len - off, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = errno == EPIPE || errno == ECONNRESET
			    ? P11E_ERR_CONNECTION_CLOSED
			    : P11E_ERR_SYSTEM;
			goto out;
		}
		off += (size_t)n;
	}
out:
	p11e_buf_clear(&out);
	return err;
}

static json_t *
message_new(const char *key, const char *value, json_t *params)
{
	json_t *msg;

	if (params == NULL)
		params = json_object();
	if (params == NULL)
		return NULL;
	msg = json_object();
	if (msg == NULL ||
	    json_object_set_new(msg, "parameters", params) != 0) {
		json_decref(msg);
		return NULL;
	}
	if (key != NULL &&
	    json_object_set_new(msg, key, json_string(value)) != 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *
p11e_ipc_call_new(const char *method, json_t *params)
{
	p11e_return_val_if_fail(method != NULL, NULL);
	return message_new("method", method, params);
}

json_t *
p11e_ipc_reply_new(json_t *params)
{
	return message_new(NULL, NULL, params);
}

json_t *
p11e_ipc_error_new(enum p11e_err err, const char *detail)
{
	const char *name = p11e_err_name(err);
	json_t *params;

	p11e_return_val_if_fail(name != NULL && err != P11E_OK, NULL);
	params = json_pack("{s:i, s:s}", "code", (int)err, "message",
	    detail ? detail : p11e_strerror(err));
	if (params == NULL)
		return NULL;
	return message_new("error", name, params);
}

enum p11e_err
p11e_ipc_reply_parse(json_t *reply, json_t **params, const char **detail)
{
	json_t *e, *p, *m;
	enum p11e_err err;

	*params = NULL;
	*detail = NULL;
	p = json_object_get(reply, "parameters");
	e = json_object_get(reply, "error");
	if (e != NULL) {
		if (!json_is_string(e) ||
		    p11e_err_from_name(json_string_value(e), &err) != P11E_OK ||
		    err == P11E_OK)
			return P11E_ERR_PROTOCOL;
		m = json_object_get(p, "message");
		if (json_is_string(m))
			*detail = json_string_value(m);
		return err;
	}
	if (!json_is_object(p))
		return P11E_ERR_PROTOCOL;
	*params = p;
	return P11E_OK;
}
