/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * p11enrolld-rest: what the agent turns into while it has nothing to do
 * (doc/p11enrolld.8 "Resting").  The agent execs this program in its own
 * process; it maps no TLS, PKCS#11 or JSON code and holds only what the
 * agent handed over: the listening socket, the lock (an inherited fd it
 * never touches) and the next deadline.  A connection, the deadline, the
 * clock being set or a failure turns it back into the agent (execv of the
 * agent with the arguments it gave); SIGTERM, SIGINT or SIGHUP stop it as
 * they stop the agent.  It links nothing but the C library: its memory is
 * the point.
 *
 *   p11enrolld-rest LISTEN-FD DEADLINE SOCKET|- AGENT [AGENT-ARG]...
 *
 * DEADLINE: seconds since the epoch (0: none).  SOCKET: the path to remove
 * when stopped ("-" when systemd owns the socket).
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

/* A decimal number in [min, max], or -1. */
static long long
number(const char *s, long long min, long long max)
{
	char *end;
	long long v;

	if (s[0] < '0' || s[0] > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return -1;
	return v;
}

int
main(int argc, char **argv)
{
	struct rlimit rl = { 0, 0 };
	struct itimerspec its;
	struct pollfd pfd[3];
	struct signalfd_siginfo si;
	sigset_t set;
	long long lfd, deadline;
	int acc = 0, sfd, tfd;
	socklen_t len = sizeof(acc);

	if (argc < 5 || (lfd = number(argv[1], 0, INT_MAX)) < 0 ||
	    (deadline = number(argv[2], 0, LLONG_MAX)) < 0 ||
	    argv[4][0] != '/') {
		fprintf(stderr,
		    "Usage: p11enrolld-rest LISTEN-FD DEADLINE SOCKET|- AGENT "
		    "[ARG]...\n"
		    "Started by p11enrolld itself while it rests "
		    "(p11enrolld(8)); not a command.\n");
		return 2;
	}
	if (getsockopt((int)lfd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) != 0 ||
	    !acc) {
		fprintf(stderr,
		    "p11enrolld: fd %lld is not a listening socket: not "
		    "resting\n",
		    lfd);
		return 2;
	}
	/* as the agent: no core, no ptrace (it holds nothing secret) */
	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

	/* the agent's signals: already blocked, as it left them */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &set, NULL) != 0 ||
	    (sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0 ||
	    (tfd = timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC)) < 0) {
		fprintf(stderr,
		    "p11enrolld: cannot rest (%s): waking the agent\n",
		    strerror(errno));
		goto wake;
	}
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = (time_t)deadline;
	/* the clock being set wakes us too: the agent looks again */
	if (deadline != 0 &&
	    timerfd_settime(tfd, TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET,
		&its, NULL) != 0) {
		fprintf(stderr,
		    "p11enrolld: timerfd_settime: %s: waking the agent\n",
		    strerror(errno));
		goto wake;
	}
	pfd[0].fd = (int)lfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = sfd;
	pfd[1].events = POLLIN;
	pfd[2].fd = tfd;
	pfd[2].events = POLLIN;
	while (poll(pfd, 3, -1) < 0) {
		if (errno != EINTR) {
			fprintf(stderr,
			    "p11enrolld: poll: %s: waking the agent\n",
			    strerror(errno));
			goto wake;
		}
	}
	if ((pfd[1].revents & POLLIN) &&
	    read(sfd, &si, sizeof(si)) == sizeof(si)) {
		fprintf(
		    stderr, "p11enrolld: signal %u: stopping\n", si.ssi_signo);
		if (strcmp(argv[3], "-") != 0)
			(void)unlink(argv[3]);
		return 0;
	}
wake:
	/*
	 * The agent takes the socket and lock back from its --resume
	 * argument; a pending connection waits in the socket's backlog.
	 */
	execv(argv[4], argv + 4);
	fprintf(stderr, "p11enrolld: cannot start %s again: %s\n", argv[4],
	    strerror(errno));
	if (strcmp(argv[3], "-") != 0)
		(void)unlink(argv[3]);
	return 1;
}
