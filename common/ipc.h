/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_IPC_H
#define P11E_IPC_H

#include <stddef.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/err.h"

/*
 * Message framing for the agent socket (doc/ipc.md): one JSON object per
 * message, terminated by a NUL byte.  A call is at most
 * P11E_IPC_MAX_FRAME bytes including the NUL, a reply at most
 * P11E_IPC_MAX_REPLY (a status of thousands of credentials); the limit
 * of a frame is the max of the buffer it is encoded into or read into.  Calls are {"method": M, "parameters": {...}};
 * replies are {"parameters": {...}} or {"error": NAME, "parameters":
 * {"code": N, "message": TEXT}} where NAME and N come from enum p11e_err.
 * Buffers that held a message are wiped: messages may carry secrets.
 */

#define P11E_IPC_MAX_FRAME (64 * 1024)
#define P11E_IPC_MAX_REPLY (16 * 1024 * 1024)

/*
 * Makes jansson allocate through a wiping allocator, so every string it
 * parsed or built is wiped when freed.  Call once at start, before any
 * other jansson call.  Idempotent.
 */
void p11e_ipc_json_init(void);

/*
 * Parses one frame (len bytes, without the NUL) into a JSON object.
 * Duplicate keys are refused.  P11E_ERR_PROTOCOL if it is not exactly
 * one JSON object; *msg is set only on success (caller json_decref()s).
 */
enum p11e_err
p11e_ipc_decode(const unsigned char *data, size_t len, json_t **msg);

/*
 * Serialises msg and appends it plus the terminating NUL to out.
 * P11E_ERR_TOO_LARGE if the frame would not fit in out's max.
 */
enum p11e_err p11e_ipc_encode(json_t *msg, struct p11e_buf *out);

/*
 * Takes the first complete frame from in (bytes received so far), parses
 * it and removes it from in.  Returns P11E_OK with *msg set, or P11E_OK
 * with *msg NULL when no complete frame is buffered yet (read more);
 * P11E_ERR_PROTOCOL for a frame that is not a JSON object (the frame is
 * consumed); P11E_ERR_TOO_LARGE when in holds its max in bytes without
 * a NUL.
 */
enum p11e_err p11e_ipc_take_frame(struct p11e_buf *in, json_t **msg);

/*
 * Blocking receive of one message on fd, buffering extra bytes in in
 * (initialise it with p11e_buf_init_wiped(in, LIMIT): P11E_IPC_MAX_FRAME
 * for calls, P11E_IPC_MAX_REPLY for replies).
 * P11E_ERR_CONNECTION_CLOSED on end of stream, P11E_ERR_TIMEOUT when a
 * receive timeout set on fd expires, P11E_ERR_SYSTEM for other errors.
 */
enum p11e_err p11e_ipc_recv(int fd, struct p11e_buf *in, json_t **msg);

/* Blocking send of one message (no SIGPIPE). */
enum p11e_err p11e_ipc_send(int fd, json_t *msg);

/*
 * Builders; each returns a new reference or NULL when out of memory.
 * params may be NULL (an empty object is used); the reference to params
 * is stolen.
 */
json_t *p11e_ipc_call_new(const char *method, json_t *params);
json_t *p11e_ipc_reply_new(json_t *params);
json_t *p11e_ipc_error_new(enum p11e_err err, const char *detail);

/*
 * Reads a reply.  If it is an error reply, returns its enum p11e_err
 * (P11E_ERR_PROTOCOL for an unknown name) and points *detail at its
 * message (borrowed from reply, may be NULL).  Otherwise returns P11E_OK
 * and points *params at the parameters object (borrowed).
 */
enum p11e_err
p11e_ipc_reply_parse(json_t *reply, json_t **params, const char **detail);

#endif /* P11E_IPC_H */
