/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * fuzz_ipc_frame: bytes from the agent socket through the frame splitter
 * and the dispatcher, as agent/server.c feeds them.  Every reply must be
 * exactly one frame that parses.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "common/ipc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct p11e_agent agent;
	static int ready;
	struct p11e_buf in, reply;
	unsigned char *nul;
	json_t *msg;
	size_t flen;

	if (!ready) {
		p11e_ipc_json_init();
		ready = 1;
	}
	p11e_buf_init_wiped(&in, P11E_IPC_MAX_FRAME);
	if (p11e_buf_append(&in, data, size) != P11E_OK) {
		p11e_buf_clear(&in);
		return 0;
	}
	while (in.len > 0 && (nul = memchr(in.data, '\0', in.len)) != NULL) {
		flen = (size_t)(nul - in.data);
		p11e_buf_init_wiped(&reply, P11E_IPC_MAX_FRAME);
		(void)p11e_agent_dispatch(&agent, in.data, flen, &reply);
		p11e_buf_consume(&in, flen + 1);
		if (reply.len == 0 || reply.data[reply.len - 1] != '\0' ||
		    p11e_ipc_take_frame(&reply, &msg) != P11E_OK ||
		    msg == NULL || reply.len != 0)
			abort();
		json_decref(msg);
		p11e_buf_clear(&reply);
	}
	p11e_buf_clear(&in);
	return 0;
}
