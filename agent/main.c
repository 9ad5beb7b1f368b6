/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/http.h"
#include "agent/methods.h"
#include "common/conf.h"
#include "common/i18n.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/rundir.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "Usage: p11enrolld [OPTION]...\n"
	    "The p11enroll agent: keeps the user's token credentials enrolled "
	    "and renewed.\n"
	    "It listens on $XDG_RUNTIME_DIR/p11enroll/agent.sock and runs "
	    "in the foreground;\n"
	    "p11enroll starts it when needed.\n"
	    "\n"
	    "  -c, --config FILE  main configuration file (default %s;\n"
	    "                     drop-ins in conf.d/ beside it)\n"
	    "  -v, --verbose      log more (repeat for debug)\n"
	    "  -h, --help         show this help and exit\n"
	    "  -V, --version      show the version and exit\n"
	    "\n"
	    "Environment: XDG_RUNTIME_DIR (required), XDG_STATE_HOME, "
	    "P11ENROLL_CONF,\n"
	    "P11ENROLL_DEBUG=ipc,pkcs11,http,conf,agent,cli,db|all.\n",
	    p11e_conf_default_path());
}

static enum p11e_log_level
level_from_conf(const struct p11e_conf *conf)
{
	const char *l = p11e_conf_get_str(conf, "agent", "log-level");

	if (l == NULL || strcmp(l, "info") == 0)
		return P11E_LOG_INFO;
	if (strcmp(l, "error") == 0)
		return P11E_LOG_ERROR;
	if (strcmp(l, "verbose") == 0)
		return P11E_LOG_VERBOSE;
	return P11E_LOG_DEBUG;
}

/*
 * Takes the per-user lock; returns its fd, or -1 if another agent runs.
 * Back from a rest, the lock is already ours (agent->lock_fd).
 */
static int
take_lock(const struct p11e_agent *agent, enum p11e_err *err)
{
	const char *rundir = agent->runtime_dir;
	char path[4200];
	int fd;

	if (agent->lock_fd >= 0)
		return agent->lock_fd;

	snprintf(path, sizeof(path), "%s/agent.lock", rundir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		p11e_error("cannot open %s: %s", path, strerror(errno));
		*err = P11E_ERR_SYSTEM;
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		*err = errno == EWOULDBLOCK ? P11E_ERR_AGENT_RUNNING
					    : P11E_ERR_SYSTEM;
		p11e_error_r(*err, "cannot take %s", path);
		close(fd);
		return -1;
	}
	return fd;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		/* the agent's own, back from a rest (p11enrolld-rest) */
		{ "resume", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	static char *args[64];
	size_t nargs = 0;
	struct p11e_agent agent;
	enum p11e_err err;
	const char *conf_path = NULL, *state;
	int c, verbose = 0;

	p11e_log_init("p11enrolld");
	p11e_i18n_init("p11enroll");
	/* first, before any secret can reach memory */
	if (p11e_agent_harden() != P11E_OK)
		return 1;
	p11e_ipc_json_init();
	memset(&agent, 0, sizeof(agent));
	agent.lock_fd = -1;
	agent.resume_fd = -1;
	/* what a rest starts the agent with again, but --resume */
	for (c = 1; c < argc && nargs < sizeof(args) / sizeof(args[0]) - 1;
	     c++) {
		if (strcmp(argv[c], "--resume") == 0)
			c++;
		else if (strncmp(argv[c], "--resume=", 9) != 0)
			args[nargs++] = argv[c];
	}
	agent.args = args;

	while ((c = getopt_long(argc, argv, "c:vhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			conf_path = optarg;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("p11enrolld %s\n", PACKAGE_VERSION);
			return 0;
		case 'R':
			if (p11e_agent_resume_parse(&agent, optarg) != P11E_OK)
				return 2;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		p11e_error("unexpected argument '%s'", argv[optind]);
		usage(stderr);
		return 2;
	}
	if (conf_path == NULL)
		conf_path = p11e_conf_default_path();
	snprintf(agent.conf_path, sizeof(agent.conf_path), "%s", conf_path);
	err = p11e_conf_load(
	    p11e_agent_schema, agent.conf_path, NULL, NULL, NULL, &agent.conf);
	if (err != P11E_OK) {
		p11e_error_r(err, "not starting");
		goto out;
	}

	/* -v wins over log-level in [agent] */
	p11e_log_set_level(verbose >= 2 ? P11E_LOG_DEBUG
		: verbose		? P11E_LOG_VERBOSE
					: level_from_conf(agent.conf));
	p11e_http_set_skew_limit(p11e_conf_get_u64(
	    agent.conf, "agent", "clock-skew-limit", P11E_HTTP_SKEW_LIMIT));

	state = p11e_conf_get_str(agent.conf, "agent", "state-dir");
	if (state != NULL)
		snprintf(agent.state_dir, sizeof(agent.state_dir), "%s", state);
	else if ((err = p11e_state_dir_default(
		      agent.state_dir, sizeof(agent.state_dir))) != P11E_OK) {
		p11e_error("no state directory: set XDG_STATE_HOME or HOME, "
			   "or state-dir in [agent]");
		goto out;
	}
	if ((err = p11e_rundir_path(agent.runtime_dir,
		 sizeof(agent.runtime_dir), NULL)) != P11E_OK ||
	    (err = p11e_rundir_path(agent.socket_path,
		 sizeof(agent.socket_path), "agent.sock")) != P11E_OK) {
		p11e_error_r(err, "cannot place the socket");
		goto out;
	}
	if ((err = p11e_private_dir_ensure(agent.runtime_dir)) != P11E_OK ||
	    (err = p11e_private_dir_ensure(agent.state_dir)) != P11E_OK)
		goto out;
	if ((agent.lock_fd = take_lock(&agent, &err)) < 0)
		goto out;
	if (agent.started == 0)
		agent.started = time(NULL);
	agent.rest_after = (unsigned int)p11e_conf_get_u64(
	    agent.conf, "agent", "rest-after", P11E_AGENT_REST_AFTER);
	err = p11e_agent_serve(&agent);
out:
	/*
	 * Back from a rest but not starting (a configuration edited into
	 * an error meanwhile): the socket it was handed goes with it, as
	 * an agent's own socket does when it stops.
	 */
	if (err != P11E_OK && agent.resume_fd >= 0 && !agent.activated &&
	    p11e_rundir_path(agent.socket_path, sizeof(agent.socket_path),
		"agent.sock") == P11E_OK)
		(void)unlink(agent.socket_path);
	if (agent.lock_fd >= 0)
		close(agent.lock_fd);
	p11e_conf_free(agent.conf);
	return err == P11E_OK ? 0 : 1;
}
