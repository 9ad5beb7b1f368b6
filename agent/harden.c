/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "agent/agent.h"
#include "common/log.h"

enum p11e_err
p11e_agent_harden(void)
{
	struct rlimit rl = { 0, 0 };

	if (setrlimit(RLIMIT_CORE, &rl) != 0) {
		p11e_error("cannot disable core dumps: %s", strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	/*
	 * Non-dumpable: no core even if the limit is raised again, and
	 * ptrace(PTRACE_ATTACH) and /proc/PID/mem are refused to other
	 * processes of the same user (they need CAP_SYS_PTRACE).
	 */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
		p11e_error("cannot make the process non-dumpable: %s",
		    strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	return P11E_OK;
}
