/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/buf.h"
#include "common/ipc.h"
#include "common/i18n.h"
#include "common/log.h"
#include "common/rundir.h"

#define START_TIMEOUT_MS 5000
#define CALL_TIMEOUT_S 30

/* Returns a connected fd, or -1 with errno set. */
static int
try_connect(const char *path)
{
	struct sockaddr_un sa;
	struct timeval tv = { CALL_TIMEOUT_S, 0 };
	int fd, saved;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

static const char *
agent_program(void)
{
	const char *p = getenv("P11ENROLL_AGENT");

	return p != NULL && p[0] == '/' ? p : BINDIR "/p11enrolld";
}

/* Prints what the agent logged since offset (its reason for failing). */
static void
show_log_since(const char *log, off_t offset)
{
	char line[512];
	FILE *f = fopen(log, "r");

	if (f == NULL)
		return;
	if (fseeko(f, offset, SEEK_SET) == 0) {
		while (fgets(line, sizeof(line), f) != NULL)
			fprintf(stderr, "  %s", line);
	}
	fclose(f);
}

static enum p11e_err
start_agent(const struct p11e_cli *cli, const char *sock, int *fd)
{
	char rundir[4096], log[4200];
	const char *prog = agent_program();
	struct stat st;
	enum p11e_err err;
	off_t offset = 0;
	int logfd, status, waited;
	pid_t pid;

	if ((err = p11e_rundir_path(rundir, sizeof(rundir), NULL)) != P11E_OK ||
	    (err = p11e_private_dir_ensure(rundir)) != P11E_OK)
		return err;
	snprintf(log, sizeof(log), "%s/agent.log", rundir);
	logfd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (logfd < 0) {
		p11e_error(_("cannot open %s: %s"), log, strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	if (fstat(logfd, &st) == 0)
		offset = st.st_size;
	if (cli->verbose)
		p11e_info(_("starting the agent: %s"), prog);
	pid = fork();
	if (pid < 0) {
		close(logfd);
		p11e_error(_("fork: %s"), strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		/* its own session: it outlives this command and its tty */
		(void)setsid();
		if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
		    dup2(logfd, 2) < 0)
			_exit(127);
		/* nothing of this command's but 0, 1 and 2 goes along */
		(void)close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
		if (cli->conf_path != NULL)
			execl(prog, "p11enrolld", "--config", cli->conf_path,
			    (char *)NULL);
		else
			execl(prog, "p11enrolld", (char *)NULL);
		dprintf(
		    2, "p11enroll: cannot run %s: %s\n", prog, strerror(errno));
		_exit(127);
	}
	close(logfd);
	for (waited = 0; waited < START_TIMEOUT_MS; waited += 25) {
		if ((*fd = try_connect(sock)) >= 0)
			return P11E_OK;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			p11e_error(
			    _("the agent (%s) exited at start with status "
			      "%d; its log says:"),
			    prog, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
			show_log_since(log, offset);
			return P11E_ERR_AGENT_UNREACHABLE;
		}
		(void)poll(NULL, 0, 25);
	}
	p11e_error(_("the agent (%s) did not answer within %d s; see %s"), prog,
	    START_TIMEOUT_MS / 1000, log);
	return P11E_ERR_AGENT_UNREACHABLE;
}

enum p11e_err
p11e_cli_connect(const struct p11e_cli *cli, int *fd)
{
	char sock[108];
	enum p11e_err err;

	*fd = -1;
	if ((err = p11e_rundir_path(sock, sizeof(sock), "agent.sock")) !=
	    P11E_OK) {
		if (!cli->quiet)
			p11e_error_r(err, _("cannot find the agent"));
		return err;
	}
	if ((*fd = try_connect(sock)) >= 0)
		return P11E_OK;
	if (cli->quiet)
		return P11E_ERR_AGENT_UNREACHABLE;
	if (errno != ENOENT && errno != ECONNREFUSED) {
		p11e_error(
		    _("cannot connect to %s: %s"), sock, strerror(errno));
		return P11E_ERR_AGENT_UNREACHABLE;
	}
	if (!cli->autostart) {
		p11e_error(_("the agent is not running (%s) and autostart is "
			     "off: start p11enrolld or drop --no-autostart"),
		    sock);
		return P11E_ERR_AGENT_UNREACHABLE;
	}
	return start_agent(cli, sock, fd);
}

enum p11e_err
p11e_cli_call(int fd, const char *method, json_t *params, json_t **result,
    const char **detail)
{
	static char detail_copy[512];
	struct p11e_buf in;
	json_t *call, *reply = NULL, *p;
	const char *d = NULL;
	enum p11e_err err, rerr;

	*result = NULL;
	*detail = NULL;
	p11e_buf_init_wiped(&in, P11E_IPC_MAX_REPLY);
	call = p11e_ipc_call_new(method, params);
	if (call == NULL) {
		err = P11E_ERR_NOMEM;
		goto out;
	}
	err = p11e_ipc_send(fd, call);
	/*
	 * A closed connection may still hold the agent's last word (a
	 * refusal sent before it closed): read it before giving up.
	 */
	if (err != P11E_OK && err != P11E_ERR_CONNECTION_CLOSED)
		goto out;
	rerr = p11e_ipc_recv(fd, &in, &reply);
	if (rerr != P11E_OK) {
		if (err == P11E_OK)
			err = rerr;
		goto out;
	}
	err = p11e_ipc_reply_parse(reply, &p, &d);
	if (err == P11E_OK) {
		*result = json_incref(p);
	} else if (d != NULL) {
		snprintf(detail_copy, sizeof(detail_copy), "%s", d);
		*detail = detail_copy;
	}
out:
	json_decref(call);
	json_decref(reply);
	p11e_buf_clear(&in);
	return err;
}
