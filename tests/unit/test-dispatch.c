/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "agent/agent.h"
#include "common/conf.h"
#include "common/ipc.h"

static struct p11e_agent agent;

static int
setup(void **state)
{
	static const char conf[] = "[service b]\nurl = https://127.0.0.1:1\n"
				   "[service a]\nurl = https://127.0.0.1:2\n";

	(void)state;
	p11e_ipc_json_init();
	memset(&agent, 0, sizeof(agent));
	memcpy(agent.state_dir, "/state", 7);
	memcpy(agent.socket_path, "/run/sock", 10);
	memcpy(agent.conf_path, "/etc/x.conf", 12);
	agent.started = 1700000000;
	return p11e_conf_load_buffer(p11e_agent_schema, "x.conf", conf,
		   sizeof(conf) - 1, NULL, NULL, &agent.conf) == P11E_OK
	    ? 0
	    : -1;
}

static int
teardown(void **state)
{
	(void)state;
	p11e_conf_free(agent.conf);
	return 0;
}

/* Dispatches text and returns the parsed reply. */
static json_t *
dispatch(const char *text, enum p11e_err expect)
{
	struct p11e_buf reply;
	json_t *msg = NULL;

	p11e_buf_init_wiped(&reply, P11E_IPC_MAX_FRAME);
	assert_int_equal(p11e_agent_dispatch(&agent,
			     (const unsigned char *)text, strlen(text), &reply),
	    expect);
	/* exactly one frame */
	assert_int_equal(reply.data[reply.len - 1], '\0');
	assert_int_equal(p11e_ipc_take_frame(&reply, &msg), P11E_OK);
	assert_non_null(msg);
	assert_int_equal(reply.len, 0);
	p11e_buf_clear(&reply);
	return msg;
}

static void
test_get_info(void **state)
{
	json_t *msg, *p, *s;

	(void)state;
	msg = dispatch("{\"method\":\"GetInfo\"}", P11E_OK);
	p = json_object_get(msg, "parameters");
	assert_string_equal(
	    json_string_value(json_object_get(p, "version")), PACKAGE_VERSION);
	assert_string_equal(
	    json_string_value(json_object_get(p, "state_dir")), "/state");
	assert_int_equal(
	    json_integer_value(json_object_get(p, "started")), 1700000000);
	s = json_object_get(p, "services");
	assert_int_equal(json_array_size(s), 2);
	/* name order, whatever the file order */
	assert_string_equal(json_string_value(json_array_get(s, 0)), "a");
	assert_string_equal(json_string_value(json_array_get(s, 1)), "b");
	json_decref(msg);
}

static void
expect_error(const char *text, enum p11e_err err)
{
	json_t *msg = dispatch(text, err);

	assert_string_equal(json_string_value(json_object_get(msg, "error")),
	    p11e_err_name(err));
	assert_int_equal(json_integer_value(json_object_get(
			     json_object_get(msg, "parameters"), "code")),
	    err);
	json_decref(msg);
}

static void
test_errors(void **state)
{
	(void)state;
	expect_error("{\"method\":\"Nope\"}", P11E_ERR_UNKNOWN_METHOD);
	expect_error("{\"method\":7}", P11E_ERR_PROTOCOL);
	expect_error("{}", P11E_ERR_PROTOCOL);
	expect_error("[1]", P11E_ERR_PROTOCOL);
	expect_error(
	    "{\"method\":\"GetInfo\",\"parameters\":[]}", P11E_ERR_PROTOCOL);
	expect_error("{\"method\":\"GetInfo\",\"parameters\":{\"a\":1}}",
	    P11E_ERR_INVALID_PARAMETER);
	expect_error("", P11E_ERR_PROTOCOL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_get_info),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
