/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef P11E_AGENT_H
#define P11E_AGENT_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"

struct p11e_conf;

/* Default of [agent] rest-after (seconds; 0: the agent never rests). */
#define P11E_AGENT_REST_AFTER 60

/* What the agent knows about itself; one per process. */
struct p11e_agent {
	char socket_path[108]; /* sun_path */
	char runtime_dir[4096]; /* $XDG_RUNTIME_DIR/p11enroll */
	char state_dir[4096];
	char conf_path[4096]; /* main configuration file */
	struct p11e_conf *conf; /* owned; NULL when no file was read */
	time_t started;
	int stop; /* set by a signal or Shutdown */
	int reschedule; /* a method changed records: look at them again */
	int activated; /* the listening socket came from systemd */
	/* WAITING_TOKEN: how many at the last schedule (the udev monitor
	 * runs only while some wait); a udev event makes them due at once */
	size_t token_waiting;
	int token_event;
	time_t token_poll_at; /* their next look (every P11E_TOKEN_POLL s) */
	int reported; /* the unfinished credentials were logged at start */
	/* resting (p11e_agent_serve()): the lock it hands over, how long
	 * it waits with nothing to do (0: never rests), the arguments it
	 * was started with (for its return) and the socket it was given
	 * back by --resume (-1: none) */
	int lock_fd;
	unsigned int rest_after;
	long long sched_skew; /* the server clock skew the deadline is in */
	char **args;
	int resume_fd;
};

/*
 * The agent's state that only memory holds, carried through a rest as
 * --resume=LISTEN-FD,LOCK-FD,ACTIVATED,STARTED,REPORTED,SKEW (numbers).
 * p11e_agent_resume_parse() fills agent from it after checking that the
 * fds are a listening Unix stream socket and a file we hold the lock on;
 * P11E_ERR_INVALID_PARAMETER with a logged reason
 * otherwise.
 */
enum p11e_err
p11e_agent_resume_parse(struct p11e_agent *agent, const char *spec);

/* The monotonic clock in milliseconds (timeouts, never dates). */
long long p11e_agent_mono_ms(void);

/*
 * Handles one request frame (len bytes, no NUL) and appends exactly one
 * reply frame (with its NUL) to reply, which must be empty.  Never fails to answer: a bad
 * request gets an error reply.  Returns the error carried by the reply
 * (P11E_OK for a successful call).  No socket involved, so it can be
 * fuzzed directly.
 */
enum p11e_err p11e_agent_dispatch(struct p11e_agent *agent,
    const unsigned char *req, size_t len, struct p11e_buf *reply);

/*
 * Disables core dumps (RLIMIT_CORE 0) and makes the process non-dumpable,
 * which also keeps other processes of the same user from ptrace()ing it
 * or reading its memory through /proc.  Logs and returns
 * P11E_ERR_SYSTEM if either fails.
 */
enum p11e_err p11e_agent_harden(void);

/*
 * Binds the socket (or takes the one systemd passes: LISTEN_PID is ours
 * and LISTEN_FDS >= 1, fd 3, a listening Unix stream socket), serves
 * connections and runs the scheduler (p11e_agent_schedule()) at each
 * deadline until agent->stop is set, then removes the socket it bound.  Peers whose uid is not ours are refused with a
 * PeerRefused error frame and a logged reason.
 */
enum p11e_err p11e_agent_serve(struct p11e_agent *agent);

#endif /* P11E_AGENT_H */
