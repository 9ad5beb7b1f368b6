/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/ipc.h"

static int
setup(void **state)
{
	(void)state;
	p11e_ipc_json_init();
	return 0;
}

static void
test_round_trip(void **state)
{
	struct p11e_buf buf;
	json_t *call, *msg = NULL;

	(void)state;
	p11e_buf_init_wiped(&buf, P11E_IPC_MAX_FRAME);
	call = p11e_ipc_call_new("GetInfo", json_pack("{s:s}", "k", "v\001"));
	assert_int_equal(p11e_ipc_encode(call, &buf), P11E_OK);
	/* one frame, ends with its NUL, no NUL inside */
	assert_int_equal(buf.data[buf.len - 1], '\0');
	assert_null(memchr(buf.data, '\0', buf.len - 1));
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_non_null(msg);
	assert_int_equal(buf.len, 0);
	assert_true(json_equal(call, msg));
	json_decref(call);
	json_decref(msg);
	p11e_buf_clear(&buf);
}

static void
test_partial_and_two_frames(void **state)
{
	static const char two[] = "{\"method\":\"A\"}\0{\"method\":\"B\"}";
	struct p11e_buf buf;
	json_t *msg = NULL;

	(void)state;
	p11e_buf_init_wiped(&buf, P11E_IPC_MAX_FRAME);
	assert_int_equal(p11e_buf_append(&buf, "{\"meth", 6), P11E_OK);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_null(msg);
	assert_int_equal(buf.len, 6); /* kept for later */
	p11e_buf_reset(&buf);
	/* the second frame is incomplete until its NUL arrives */
	assert_int_equal(p11e_buf_append(&buf, two, sizeof(two) - 1), P11E_OK);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_string_equal(
	    json_string_value(json_object_get(msg, "method")), "A");
	json_decref(msg);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_null(msg);
	assert_int_equal(p11e_buf_append(&buf, "", 1), P11E_OK);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_string_equal(
	    json_string_value(json_object_get(msg, "method")), "B");
	json_decref(msg);
	p11e_buf_clear(&buf);
}

static void
test_bad_frames(void **state)
{
	static const char *const bad[] = { "", "[]", "\"x\"", "42", "{",
		"{\"a\":1,\"a\":2}", "{} {}", "{\"a\":\"\\u0000\"", "null" };
	json_t *msg = (json_t *)1;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(p11e_ipc_decode((const unsigned char *)bad[i],
				     strlen(bad[i]), &msg),
		    P11E_ERR_PROTOCOL);
		assert_null(msg);
	}
}

static void
test_size_cap(void **state)
{
	struct p11e_buf buf;
	json_t *msg = NULL, *big;
	char *s;

	(void)state;
	/* a full frame's worth without a NUL is refused, not buffered on */
	p11e_buf_init_wiped(&buf, P11E_IPC_MAX_FRAME);
	s = malloc(P11E_IPC_MAX_FRAME);
	memset(s, ' ', P11E_IPC_MAX_FRAME);
	assert_int_equal(p11e_buf_append(&buf, s, P11E_IPC_MAX_FRAME), P11E_OK);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_ERR_TOO_LARGE);
	assert_null(msg);
	assert_int_equal(p11e_buf_append(&buf, "x", 1), P11E_ERR_TOO_LARGE);
	p11e_buf_reset(&buf);
	/* encoding a message over the cap fails and appends nothing */
	s[P11E_IPC_MAX_FRAME - 1] = '\0';
	big = json_pack("{s:s}", "method", s);
	assert_int_equal(p11e_ipc_encode(big, &buf), P11E_ERR_TOO_LARGE);
	assert_int_equal(buf.len, 0);
	json_decref(big);
	free(s);
	p11e_buf_clear(&buf);
}

/* A reply may pass the call limit up to P11E_IPC_MAX_REPLY. */
static void
test_reply_cap(void **state)
{
	struct p11e_buf buf;
	json_t *msg = NULL, *big, *list;
	size_t i, n = 3 * P11E_IPC_MAX_FRAME / 64;

	(void)state;
	list = json_array();
	for (i = 0; i < n; i++)
		json_array_append_new(list,
		    json_string("0123456789abcdef0123456789abcdef0123456789a"));
	big = json_pack("{s:{s:o}}", "parameters", "credentials", list);
	/* over the call limit ... */
	p11e_buf_init_wiped(&buf, P11E_IPC_MAX_FRAME);
	assert_int_equal(p11e_ipc_encode(big, &buf), P11E_ERR_TOO_LARGE);
	assert_int_equal(buf.len, 0);
	p11e_buf_clear(&buf);
	/* ... within the reply limit, and read back whole */
	p11e_buf_init_wiped(&buf, P11E_IPC_MAX_REPLY);
	assert_int_equal(p11e_ipc_encode(big, &buf), P11E_OK);
	assert_true(buf.len > P11E_IPC_MAX_FRAME);
	assert_int_equal(p11e_ipc_take_frame(&buf, &msg), P11E_OK);
	assert_non_null(msg);
	assert_int_equal(
	    json_array_size(json_object_get(
		json_object_get(msg, "parameters"), "credentials")),
	    n);
	assert_int_equal(buf.len, 0);
	json_decref(msg);
	json_decref(big);
	p11e_buf_clear(&buf);
}

static void
test_error_reply(void **state)
{
	const char *detail = NULL;
	json_t *e, *params = (json_t *)1, *r;

	(void)state;
	e = p11e_ipc_error_new(P11E_ERR_PEER_REFUSED, NULL);
	assert_string_equal(
	    json_string_value(json_object_get(e, "error")), "PeerRefused");
	assert_int_equal(
	    p11e_ipc_reply_parse(e, &params, &detail), P11E_ERR_PEER_REFUSED);
	assert_null(params);
	assert_string_equal(detail, p11e_strerror(P11E_ERR_PEER_REFUSED));
	json_decref(e);

	e = json_pack("{s:s}", "error", "NoSuchThing");
	assert_int_equal(
	    p11e_ipc_reply_parse(e, &params, &detail), P11E_ERR_PROTOCOL);
	json_decref(e);
	e = json_pack("{s:s}", "error", "Ok");
	assert_int_equal(
	    p11e_ipc_reply_parse(e, &params, &detail), P11E_ERR_PROTOCOL);
	json_decref(e);

	r = p11e_ipc_reply_new(json_pack("{s:i}", "n", 3));
	assert_int_equal(p11e_ipc_reply_parse(r, &params, &detail), P11E_OK);
	assert_int_equal(json_integer_value(json_object_get(params, "n")), 3);
	json_decref(r);
}

static void
test_socket(void **state)
{
	struct p11e_buf in;
	json_t *call, *msg = NULL;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p11e_buf_init_wiped(&in, P11E_IPC_MAX_FRAME);
	call = p11e_ipc_call_new("GetInfo", NULL);
	assert_int_equal(p11e_ipc_send(sv[0], call), P11E_OK);
	assert_int_equal(p11e_ipc_send(sv[0], call), P11E_OK);
	assert_int_equal(p11e_ipc_recv(sv[1], &in, &msg), P11E_OK);
	assert_true(json_equal(call, msg));
	json_decref(msg);
	/* the second one was already read into the buffer */
	assert_int_equal(p11e_ipc_recv(sv[1], &in, &msg), P11E_OK);
	json_decref(msg);
	close(sv[0]);
	assert_int_equal(
	    p11e_ipc_recv(sv[1], &in, &msg), P11E_ERR_CONNECTION_CLOSED);
	assert_null(msg);
	close(sv[1]);
	json_decref(call);
	p11e_buf_clear(&in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_partial_and_two_frames),
		cmocka_unit_test(test_bad_frames),
		cmocka_unit_test(test_size_cap),
		cmocka_unit_test(test_reply_cap),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_socket),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
