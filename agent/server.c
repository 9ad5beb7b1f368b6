/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <linux/close_range.h>
#include <sys/file.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <unistd.h>

#include <libudev.h>

#include "agent/agent.h"
#include "agent/http.h"
#include "agent/methods.h"
#include "agent/pinentry.h"
#include "common/crashpoint.h"
#include "common/ipc.h"
#include "common/log.h"
#include "common/num.h"
#include "common/secret.h"

/*
 * One poll() loop serves every connection: nothing blocks on a slow
 * client, and the agent sleeps while there is nothing to do.
 */

#define MAX_CLIENTS 32

struct client {
	int fd;
	pid_t pid;
	struct p11e_buf in;
	struct p11e_buf out;
	int closing; /* close once out is sent */
};

static struct client clients[MAX_CLIENTS];

/*
 * Token hot-plug (doc/p11enrolld.8 "Tokens"): a udev monitor of the
 * subsystems tokens and readers appear in, open only while a credential
 * waits for its token (an idle agent holds none and never wakes up).
 * An event makes the waiting records look for their token at once;
 * between events they look every P11E_TOKEN_POLL seconds (SoftHSM2
 * tokens are files and make no event; p11-kit's proxy has no
 * C_WaitForSlotEvent).
 */
static struct udev *udev;
static struct udev_monitor *udev_mon;

static int
udev_open(void)
{
	static const char *const subsystems[] = { "usb", "hidraw", "usbmisc",
		NULL };
	size_t i;

	if ((udev = udev_new()) == NULL ||
	    (udev_mon = udev_monitor_new_from_netlink(udev, "udev")) == NULL)
		goto fail;
	for (i = 0; subsystems[i] != NULL; i++) {
		if (udev_monitor_filter_add_match_subsystem_devtype(
			udev_mon, subsystems[i], NULL) < 0)
			goto fail;
	}
	if (udev_monitor_enable_receiving(udev_mon) < 0)
		goto fail;
	p11e_debug(P11E_DEBUG_AGENT, "watching udev for tokens");
	return udev_monitor_get_fd(udev_mon);
fail:
	/* no udev (a container): the poll alone finds the token */
	p11e_debug(P11E_DEBUG_AGENT, "no udev monitor: polling only");
	udev_monitor_unref(udev_mon);
	udev_unref(udev);
	udev_mon = NULL;
	udev = NULL;
	return -1;
}

static void
udev_close(void)
{
	udev_monitor_unref(udev_mon);
	udev_unref(udev);
	udev_mon = NULL;
	udev = NULL;
}

/* Drains the monitor; true if a device came or went. */
static bool
udev_event(void)
{
	struct udev_device *d;
	bool any = false;

	while ((d = udev_monitor_receive_device(udev_mon)) != NULL) {
		p11e_debug(P11E_DEBUG_AGENT, "udev: %s %s",
		    udev_device_get_action(d) ? udev_device_get_action(d) : "?",
		    udev_device_get_subsystem(d) ? udev_device_get_subsystem(d)
						 : "?");
		udev_device_unref(d);
		any = true;
	}
	return any;
}

static void
client_close(struct client *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	p11e_buf_clear(&c->in);
	p11e_buf_clear(&c->out);
}

/* Discards whatever input is waiting on the non-blocking fd. */
static void
drain(int fd)
{
	unsigned char junk[4096];
	int i;

	for (i = 0; i < 16; i++) {
		if (recv(fd, junk, sizeof(junk), MSG_DONTWAIT) <= 0)
			break;
	}
}

/*
 * fd must be a listening Unix stream socket (from systemd, or our own
 * handed back after a rest); made non-blocking and close-on-exec.
 */
static bool
listener_ok(int fd)
{
	int type = 0, acc = 0, fl;
	socklen_t len = sizeof(type);
	struct sockaddr_un sa;
	socklen_t salen = sizeof(sa);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
	    type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc,
		&(socklen_t){ sizeof(acc) }) != 0 ||
	    !acc || getsockname(fd, (struct sockaddr *)&sa, &salen) != 0 ||
	    sa.sun_family != AF_UNIX)
		return false;
	if ((fl = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
	    fcntl(fd, F_SETFD, FD_CLOEXEC) != 0)
		return false;
	return true;
}

/*
 * Socket activation (sd_listen_fds(3), without libsystemd): LISTEN_PID
 * names us and LISTEN_FDS is at least 1; the first passed fd (3) must be
 * a listening Unix stream socket.  Returns it, or -1 when none was
 * passed (then we bind our own) or -2 when what was passed is unusable.
 * The variables are removed so that no child inherits them.
 */
static int
activated_socket(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	char want[32];

	if (pid == NULL || fds == NULL)
		return -1;
	snprintf(want, sizeof(want), "%ld", (long)getpid());
	if (strcmp(pid, want) != 0)
		return -1;
	(void)unsetenv("LISTEN_PID");
	(void)unsetenv("LISTEN_FDS");
	(void)unsetenv("LISTEN_FDNAMES");
	if (fds[0] < '1' || fds[0] > '9') {
		p11e_error("LISTEN_FDS=%.16s: no socket passed", fds);
		return -2;
	}
	if (!listener_ok(3)) {
		p11e_error("fd 3 from systemd is not a listening Unix stream "
			   "socket");
		return -2;
	}
	return 3;
}

static int
listen_socket(struct p11e_agent *agent)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(agent->socket_path) >= sizeof(sa.sun_path)) {
		p11e_error("socket path too long: %s", agent->socket_path);
		return -1;
	}
	memcpy(sa.sun_path, agent->socket_path, strlen(agent->socket_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		p11e_error("socket: %s", strerror(errno));
		return -1;
	}
	/* The lock is held: a socket left here is stale. */
	(void)unlink(agent->socket_path);
	old = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc != 0 || chmod(agent->socket_path, 0600) != 0 ||
	    listen(fd, 16) != 0) {
		p11e_error("cannot listen on %s: %s", agent->socket_path,
		    strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void
refuse(int fd, const struct ucred *cred)
{
	json_t *msg;

	p11e_error("refused connection from uid %u (pid %d): "
		   "not the agent's user (uid %u)",
	    (unsigned int)cred->uid, (int)cred->pid, (unsigned int)geteuid());
	msg = p11e_ipc_error_new(P11E_ERR_PEER_REFUSED, NULL);
	if (msg != NULL)
		(void)p11e_ipc_send(fd, msg);
	json_decref(msg);
	/*
	 * Unread input makes close() reset the connection, which can hide
	 * the error from the peer: drop what already arrived, unread.
	 */
	(void)shutdown(fd, SHUT_WR);
	drain(fd);
	close(fd);
}

static void
accept_client(int lfd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, i;

	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			p11e_error("accept: %s", strerror(errno));
		return;
	}
	/* credentials as of connect(): the peer cannot change them later */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
		p11e_error("SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if (cred.uid != geteuid()) {
		refuse(fd, &cred);
		return;
	}
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd < 0)
			break;
	}
	if (i == MAX_CLIENTS) {
		p11e_error("refused connection from pid %d: %d connections "
			   "open",
		    (int)cred.pid, MAX_CLIENTS);
		close(fd);
		return;
	}
	clients[i].fd = fd;
	clients[i].pid = cred.pid;
	clients[i].closing = 0;
	p11e_buf_init_wiped(&clients[i].in, P11E_IPC_MAX_FRAME);
	p11e_buf_init_wiped(
	    &clients[i].out, P11E_IPC_MAX_REPLY + P11E_IPC_MAX_FRAME);
	p11e_debug(P11E_DEBUG_IPC, "connection from pid %d", (int)cred.pid);
}

/*
 * Answers the complete frames in c->in, one at a time: a reply is sent
 * whole before the next call is answered (client_write() comes back
 * here), so a client that sends calls without reading its replies holds
 * one reply's memory at the most.
 */
static void
handle_frames(struct p11e_agent *agent, struct client *c)
{
	struct p11e_buf reply;
	unsigned char *nul;
	size_t flen;

	while (!c->closing && c->out.len == 0 && c->in.len > 0 &&
	    (nul = memchr(c->in.data, '\0', c->in.len)) != NULL) {
		flen = (size_t)(nul - c->in.data);
		p11e_buf_init_wiped(&reply, P11E_IPC_MAX_REPLY);
		(void)p11e_agent_dispatch(agent, c->in.data, flen, &reply);
		p11e_buf_consume(&c->in, flen + 1);
		p11e_crashpoint("agent-before-reply");
		if (p11e_buf_append(&c->out, reply.data, reply.len) !=
		    P11E_OK) {
			p11e_error("pid %d does not read its replies: closing",
			    (int)c->pid);
			c->closing = 1;
		}
		p11e_buf_clear(&reply);
	}
	if (!c->closing && c->in.len >= P11E_IPC_MAX_FRAME) {
		json_t *msg = p11e_ipc_error_new(
		    P11E_ERR_TOO_LARGE, "message larger than the frame limit");

		p11e_error("pid %d sent a message over %d bytes: closing",
		    (int)c->pid, P11E_IPC_MAX_FRAME);
		p11e_buf_reset(&c->out);
		if (msg != NULL)
			(void)p11e_ipc_encode(msg, &c->out);
		json_decref(msg);
		c->closing = 1;
	}
}

static void
client_read(struct p11e_agent *agent, struct client *c)
{
	unsigned char chunk[4096];
	size_t room = P11E_IPC_MAX_FRAME - c->in.len;
	ssize_t n;

	n = recv(c->fd, chunk, room < sizeof(chunk) ? room : sizeof(chunk), 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		client_close(c);
		return;
	}
	if (n == 0) {
		/* the peer is done sending: answer what it sent, then close */
		c->closing = 1;
		if (c->out.len == 0)
			client_close(c);
		return;
	}
	(void)p11e_buf_append(&c->in, chunk, (size_t)n);
	p11e_wipe(chunk, (size_t)n);
	handle_frames(agent, c);
}

static void
client_write(struct p11e_agent *agent, struct client *c)
{
	ssize_t n;

	n = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) {
		client_close(c);
		return;
	}
	p11e_buf_consume(&c->out, (size_t)n);
	if (c->out.len == 0 && !c->closing)
		handle_frames(agent, c);
	if (c->out.len == 0 && c->closing) {
		/* unread input would turn the close into a reset */
		(void)shutdown(c->fd, SHUT_WR);
		drain(c->fd);
		client_close(c);
	}
}

/*
 * Resting (doc/p11enrolld.8 "Resting"): after rest-after seconds with no
 * connection, no PIN dialog, no administrator session and no credential
 * waiting for its token, the agent execs p11enrolld-rest in its own
 * process (same pid, for systemd and for status).  That program maps
 * none of the TLS, PKCS#11 and JSON libraries and keeps only the
 * listening socket, the lock and the next deadline; a connection, the
 * deadline or the clock being set execs the agent again with --resume,
 * which reads the journal as at any start.  What only memory holds comes
 * through --resume (p11e_agent_resume_parse()).
 */

enum p11e_err
p11e_agent_resume_parse(struct p11e_agent *agent, const char *spec)
{
	char buf[160], *f[6], *p = buf;
	uint64_t lfd, lockfd, act, started, reported;
	int64_t skew;
	struct stat st;
	size_t n = 0;

	if (strlen(spec) >= sizeof(buf))
		goto bad;
	memcpy(buf, spec, strlen(spec) + 1);
	while (n < 6) {
		f[n++] = p;
		if ((p = strchr(p, ',')) == NULL)
			break;
		*p++ = '\0';
	}
	if (n != 6 || p != NULL ||
	    p11e_num_parse_u64(f[0], 3, 65535, &lfd) != P11E_OK ||
	    p11e_num_parse_u64(f[1], 3, 65535, &lockfd) != P11E_OK ||
	    lfd == lockfd || p11e_num_parse_u64(f[2], 0, 1, &act) != P11E_OK ||
	    p11e_num_parse_u64(f[3], 0, INT64_MAX, &started) != P11E_OK ||
	    p11e_num_parse_u64(f[4], 0, 1, &reported) != P11E_OK ||
	    p11e_num_parse_i64(
		f[5], -(INT64_C(1) << 40), INT64_C(1) << 40, &skew) != P11E_OK)
		goto bad;
	if (!listener_ok((int)lfd)) {
		p11e_error("--resume: fd %d is not a listening Unix stream "
			   "socket",
		    (int)lfd);
		return P11E_ERR_INVALID_PARAMETER;
	}
	/* the lock: a file of ours that this open file still holds */
	if (fstat((int)lockfd, &st) != 0 || !S_ISREG(st.st_mode) ||
	    flock((int)lockfd, LOCK_EX | LOCK_NB) != 0 ||
	    fcntl((int)lockfd, F_SETFD, FD_CLOEXEC) != 0) {
		p11e_error(
		    "--resume: fd %d is not the agent's lock", (int)lockfd);
		return P11E_ERR_INVALID_PARAMETER;
	}
	agent->resume_fd = (int)lfd;
	agent->lock_fd = (int)lockfd;
	agent->activated = (int)act;
	agent->started = (time_t)started;
	agent->reported = (int)reported;
	p11e_http_restore_skew((long long)skew);
	return P11E_OK;
bad:
	p11e_error("--resume=%.160s: not LISTEN-FD,LOCK-FD,ACTIVATED,STARTED,"
		   "REPORTED,SKEW; this option is for the agent's own use",
	    spec);
	return P11E_ERR_INVALID_PARAMETER;
}

/* Nothing in memory that a rest would lose, and nothing soon. */
static bool
can_rest(const struct p11e_agent *agent, time_t deadline)
{
	int i;

	if (agent->rest_after == 0 || agent->reschedule ||
	    agent->token_waiting > 0 || p11e_pinentry_busy() ||
	    p11e_agent_admin_busy())
		return false;
	for (i = 0; i < MAX_CLIENTS; i++) {
		if (clients[i].fd >= 0)
			return false;
	}
	return deadline == 0 || deadline > time(NULL) + 1;
}

/* The program to rest in: P11ENROLL_REST (absolute), else installed. */
static const char *
rest_program(void)
{
	const char *p = getenv("P11ENROLL_REST");

	return p != NULL && p[0] == '/' ? p
					: LIBEXECDIR
	    "/p11enroll/p11enrolld-rest";
}

static void
set_cloexec(int fd, bool on)
{
	int fl = fcntl(fd, F_GETFD);

	if (fl >= 0)
		(void)fcntl(
		    fd, F_SETFD, on ? fl | FD_CLOEXEC : fl & ~FD_CLOEXEC);
}

/*
 * Execs the rest program; returns only if that failed (then the agent
 * stays up and does not try again).
 */
static void
rest(struct p11e_agent *agent, int lfd, time_t deadline)
{
	char self[4096], sock[4200], num[2][32], resume[192];
	const char *prog = rest_program();
	char *argv[64];
	size_t n = 0, i;
	ssize_t len;

	len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (len <= 0 || (size_t)len >= sizeof(self) - 1) {
		p11e_verbose("not resting: /proc/self/exe: %s",
		    len < 0 ? strerror(errno) : "too long");
		goto never;
	}
	self[len] = '\0';
	if (len > 10 && strcmp(self + len - 10, " (deleted)") == 0) {
		p11e_info("not resting: %s was replaced; restart the agent "
			  "to run the new one",
		    self);
		goto never;
	}
	if (access(prog, X_OK) != 0) {
		p11e_verbose("not resting: %s: %s", prog, strerror(errno));
		goto never;
	}
	snprintf(num[0], sizeof(num[0]), "%d", lfd);
	snprintf(num[1], sizeof(num[1]), "%lld", (long long)deadline);
	snprintf(sock, sizeof(sock), "%s",
	    agent->activated ? "-" : agent->socket_path);
	snprintf(resume, sizeof(resume), "--resume=%d,%d,%d,%lld,%d,%lld", lfd,
	    agent->lock_fd, agent->activated ? 1 : 0, (long long)agent->started,
	    agent->reported ? 1 : 0, p11e_http_skew());
	argv[n++] = (char *)prog;
	argv[n++] = num[0];
	argv[n++] = num[1];
	argv[n++] = sock;
	argv[n++] = self;
	argv[n++] = resume;
	for (i = 0; agent->args != NULL && agent->args[i] != NULL &&
	     n < sizeof(argv) / sizeof(argv[0]) - 1;
	     i++)
		argv[n++] = agent->args[i];
	argv[n] = NULL;
	if (deadline != 0)
		p11e_verbose("nothing to do: resting until %lld (%lld s)",
		    (long long)deadline, (long long)(deadline - time(NULL)));
	else
		p11e_verbose("nothing to do: resting until a connection");
	udev_close();
	p11e_pinentry_stop();
	/* modules an enrollment kept: finalized, not carried */
	p11e_agent_modules_drop();
	/*
	 * Nothing but the socket and the lock goes along: whatever the
	 * agent inherited or a library opened without O_CLOEXEC is closed
	 * at the exec.
	 */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
		p11e_verbose("not resting: close_range: %s", strerror(errno));
		goto never;
	}
	set_cloexec(lfd, false);
	set_cloexec(agent->lock_fd, false);
	fflush(NULL);
	execv(prog, argv);
	p11e_error("cannot rest in %s: %s; staying up", prog, strerror(errno));
	set_cloexec(lfd, true);
	set_cloexec(agent->lock_fd, true);
never:
	agent->rest_after = 0;
}

long long
p11e_agent_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
signal_fd(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0)
		return -1;
	return signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
}

/*
 * Arms the timer for the wall-clock deadline (0: disarmed).  A realtime
 * absolute timer fires on time after a suspend and when the clock is
 * set (TFD_TIMER_CANCEL_ON_SET wakes us to look again).
 */
static void
arm(int tfd, time_t deadline)
{
	struct itimerspec its;

	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = deadline;
	if (timerfd_settime(tfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
		&its, NULL) != 0)
		p11e_error("timerfd_settime: %s", strerror(errno));
}

enum p11e_err
p11e_agent_serve(struct p11e_agent *agent)
{
	struct pollfd pfd[5 + MAX_CLIENTS];
	struct signalfd_siginfo si;
	uint64_t ticks;
	time_t deadline = 0;
	int lfd, sfd, tfd, ufd = -1, i, n, timeout;
	long long active =
	    p11e_agent_mono_ms(); /* the last event, for resting */
	enum p11e_err err = P11E_OK;

	for (i = 0; i < MAX_CLIENTS; i++)
		clients[i].fd = -1;
	if ((sfd = signal_fd()) < 0) {
		p11e_error("signalfd: %s", strerror(errno));
		return P11E_ERR_SYSTEM;
	}
	if ((tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK)) <
	    0) {
		p11e_error("timerfd: %s", strerror(errno));
		close(sfd);
		return P11E_ERR_SYSTEM;
	}
	if (agent->resume_fd >= 0) {
		lfd = agent->resume_fd;
		p11e_debug(P11E_DEBUG_AGENT, "back from a rest");
	} else
		lfd = activated_socket();
	if (agent->resume_fd >= 0) {
		/* as it was */
	} else if (lfd >= 0) {
		agent->activated = 1;
		p11e_info("listening on the socket systemd passed (%s)",
		    agent->socket_path);
	} else if (lfd == -1 && (lfd = listen_socket(agent)) >= 0) {
		p11e_info("listening on %s", agent->socket_path);
	}
	if (lfd < 0) {
		close(tfd);
		close(sfd);
		return P11E_ERR_SYSTEM;
	}
	agent->reschedule = 1;
	while (!agent->stop) {
		/* replies go out first: a renewal may block for a while */
		for (i = 0; i < MAX_CLIENTS; i++) {
			if (clients[i].fd >= 0 && clients[i].out.len > 0)
				break;
		}
		if (i == MAX_CLIENTS &&
		    (agent->reschedule ||
			/* a call saw the server's clock anew (its Date) */
			agent->sched_skew != p11e_http_skew() ||
			(deadline != 0 && time(NULL) >= deadline))) {
			agent->reschedule = 0;
			deadline = p11e_agent_schedule(agent);
			agent->sched_skew = p11e_http_skew();
			arm(tfd, deadline);
			if (agent->token_waiting > 0 && udev_mon == NULL)
				ufd = udev_open();
			else if (agent->token_waiting == 0 &&
			    udev_mon != NULL) {
				udev_close();
				ufd = -1;
			}
		}
		pfd[0].fd = lfd;
		pfd[0].events = POLLIN;
		pfd[1].fd = sfd;
		pfd[1].events = POLLIN;
		pfd[2].fd = tfd;
		pfd[2].events = POLLIN;
		for (i = 0; i < MAX_CLIENTS; i++) {
			pfd[3 + i].fd = clients[i].fd;
			/* no more input while a reply is on its way */
			pfd[3 + i].events =
			    (clients[i].closing || clients[i].out.len
				    ? 0
				    : POLLIN) |
			    (clients[i].out.len ? POLLOUT : 0);
		}
		pfd[3 + MAX_CLIENTS].fd = ufd;
		pfd[3 + MAX_CLIENTS].events = POLLIN;
		pfd[3 + MAX_CLIENTS].revents = 0;
		/* a PIN dialog's answers (agent/pinentry.c) */
		pfd[4 + MAX_CLIENTS].fd = p11e_pinentry_fd();
		pfd[4 + MAX_CLIENTS].events = POLLIN;
		pfd[4 + MAX_CLIENTS].revents = 0;
		/*
		 * No timeout but a PIN dialog's: a connection, a signal or
		 * the timer of the next deadline (none while nothing is
		 * due) wakes us.
		 */
		timeout = p11e_pinentry_timeout_ms();
		if (can_rest(agent, deadline)) {
			long long left = active +
			    (long long)agent->rest_after * 1000 -
			    p11e_agent_mono_ms();

			if (left <= 0) {
				rest(agent, lfd, deadline);
				continue;
			}
			if (timeout < 0 || left < timeout)
				timeout = (int)left;
		}
		n = poll(pfd, 5 + MAX_CLIENTS, timeout);
		if (n > 0)
			active = p11e_agent_mono_ms();
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			p11e_error("poll: %s", strerror(errno));
			err = P11E_ERR_SYSTEM;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				p11e_info("signal %u: stopping", si.ssi_signo);
				agent->stop = 1;
			}
		}
		if (pfd[2].revents & POLLIN) {
			/* the deadline, or ECANCELED: the clock was set */
			if (read(tfd, &ticks, sizeof(ticks)) < 0 &&
			    errno == ECANCELED)
				p11e_info("the clock was set: looking at the "
					  "schedule again");
			agent->reschedule = 1;
		}
		if (pfd[4 + MAX_CLIENTS].revents & (POLLIN | POLLHUP | POLLERR))
			p11e_pinentry_io(agent);
		p11e_pinentry_tick(agent);
		if ((pfd[3 + MAX_CLIENTS].revents & POLLIN) && udev_event()) {
			agent->token_event = 1;
			agent->reschedule = 1;
		}
		for (i = 0; i < MAX_CLIENTS; i++) {
			struct client *c = &clients[i];
			short re = pfd[3 + i].revents;

			if (c->fd < 0 || re == 0)
				continue;
			if (re & POLLIN)
				client_read(agent, c);
			if (c->fd >= 0 && (re & POLLOUT))
				client_write(agent, c);
			if (c->fd >= 0 && (re & (POLLHUP | POLLERR)) &&
			    !(re & POLLIN))
				client_close(c);
		}
		if (pfd[0].revents & POLLIN)
			accept_client(lfd);
	}
	for (i = 0; i < MAX_CLIENTS; i++)
		client_close(&clients[i]);
	p11e_pinentry_stop();
	udev_close();
	close(lfd);
	close(sfd);
	close(tfd);
	/* systemd owns an activated socket and keeps listening on it */
	if (!agent->activated)
		(void)unlink(agent->socket_path);
	return err;
}
