/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * lossy-proxy: a loopback TCP proxy for "lost response" tests.
 *
 *   lossy-proxy --connect HOST:PORT [--listen ADDR] [--port-file FILE]
 *       [--drop-response N]... [--drop-all-responses] [--reset-after BYTES]
 *       [--reset-conn N] [--max-connections K] [--log FILE]
 *
 * Listens on ADDR (127.0.0.1 by default, or ::1) on a port the kernel
 * picks, prints that port as the first line of stdout (and, atomically,
 * into --port-file), and forwards each accepted connection to HOST:PORT.
 * Both ends must be loopback addresses (127.0.0.0/8, ::1 or "localhost"):
 * anything else is refused.
 *
 * --drop-response N: for the N-th connection (from 1; may be repeated),
 *   the whole request reaches the server, the server's response is read
 *   and thrown away, and the client side is closed without a byte once
 *   the server closes its side: the request was delivered, the response
 *   lost.
 * --drop-all-responses: the same for every connection.
 * --reset-after BYTES: after BYTES of response have reached a client,
 *   its connection is reset (RST), mid-stream.
 * --reset-conn N: --reset-after only for the N-th connection (from 1);
 *   the others are forwarded whole (over TLS: the N-th request of a
 *   client that opens one connection per request).
 * --max-connections K: accept K connections, then exit once they end.
 * --log FILE: one line per connection when it ends:
 *   "conn N: request bytes X, response bytes Y, dropped" (or forwarded,
 *   reset, error).
 *
 * One thread, one ppoll() loop; SIGTERM and SIGINT end it cleanly.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/log.h"
#include "common/num.h"

#define MAX_CONNS 64
#define MAX_DROPS 64
#define BUF_SIZE 65536

struct pipe_buf {
	unsigned char data[BUF_SIZE];
	size_t len;
};

struct conn {
	bool used;
	uint64_t id;
	int client;
	int server;
	bool connecting;
	bool client_eof; /* client sent FIN */
	bool server_eof; /* server sent FIN */
	bool drop;
	struct pipe_buf up; /* client -> server */
	struct pipe_buf down; /* server -> client */
	uint64_t req_bytes;
	uint64_t resp_bytes;
	uint64_t sent_bytes; /* response bytes that reached the client */
	uint64_t reset_at; /* reset after that many response bytes, or 0 */
};

static struct conn conns[MAX_CONNS];
static struct sockaddr_storage target;
static socklen_t target_len;
static uint64_t drops[MAX_DROPS];
static size_t n_drops;
static bool drop_all;
static uint64_t reset_after;
static uint64_t reset_conn;
static uint64_t max_conns;
static FILE *log_fp;
static volatile sig_atomic_t stop;

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void
usage(void)
{
	fprintf(stderr,
	    "usage: lossy-proxy --connect HOST:PORT [--listen ADDR] "
	    "[--port-file FILE]\n"
	    "         [--drop-response N]... [--drop-all-responses] "
	    "[--reset-after BYTES]\n"
	    "         [--reset-conn N] [--max-connections K] [--log FILE]\n");
	exit(2);
}

static bool
is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

		return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)sa;

		return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
	}
	return false;
}

/*
 * Resolves a loopback host ("127.0.0.1", "::1", "[::1]", "localhost")
 * and a port into *ss.  Exits with a message on anything else.
 */
static void
resolve(const char *host, const char *port, struct sockaddr_storage *ss,
    socklen_t *len)
{
	struct addrinfo hints, *res = NULL;
	char h[256];
	size_t hl = strlen(host);
	int rc;

	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']') {
		host++;
		hl -= 2;
	}
	if (hl >= sizeof(h)) {
		p11e_error("host name too long");
		exit(2);
	}
	memcpy(h, host, hl);
	h[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags =
	    AI_NUMERICSERV | (strcmp(h, "localhost") == 0 ? 0 : AI_NUMERICHOST);
	if ((rc = getaddrinfo(h, port, &hints, &res)) != 0) {
		/* Names other than localhost are never looked up. */
		if (rc == EAI_NONAME)
			p11e_error("%s is not a loopback address: refused", h);
		else
			p11e_error("%s port %s: %s", h, port, gai_strerror(rc));
		exit(2);
	}
	if (!is_loopback(res->ai_addr) ||
	    res->ai_addrlen > (socklen_t)sizeof(*ss)) {
		p11e_error("%s is not a loopback address: refused", h);
		freeaddrinfo(res);
		exit(2);
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);
}

static uint64_t
parse_num(const char *opt, const char *s, uint64_t min)
{
	uint64_t v;

	if (p11e_num_parse_u64(s, min, UINT64_MAX, &v) != P11E_OK) {
		p11e_error("%s: bad number '%s'", opt, s);
		exit(2);
	}
	return v;
}

static void
write_port_file(const char *path, unsigned int port)
{
	char tmp[4096];
	FILE *fp;

	/* Written then renamed: a poller never sees a partial number. */
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		p11e_error("--port-file path too long");
		exit(1);
	}
	if ((fp = fopen(tmp, "w")) == NULL || fprintf(fp, "%u\n", port) < 0 ||
	    fclose(fp) != 0 || rename(tmp, path) != 0) {
		p11e_error("%s: %s", path, strerror(errno));
		exit(1);
	}
}

static void
conn_end(struct conn *c, const char *how)
{
	if (log_fp != NULL) {
		fprintf(log_fp,
		    "conn %llu: request bytes %llu, response bytes %llu, %s\n",
		    (unsigned long long)c->id, (unsigned long long)c->req_bytes,
		    (unsigned long long)c->resp_bytes, how);
		fflush(log_fp);
	}
	if (c->client != -1)
		close(c->client);
	if (c->server != -1)
		close(c->server);
	c->used = false;
}

/* Closes the client with an RST instead of a FIN. */
static void
conn_reset(struct conn *c)
{
	struct linger lg = { 1, 0 };

	(void)setsockopt(c->client, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	conn_end(c, "reset");
}

static bool
should_drop(uint64_t id)
{
	size_t i;

	if (drop_all)
		return true;
	for (i = 0; i < n_drops; i++) {
		if (drops[i] == id)
			return true;
	}
	return false;
}

static void
accept_one(int lfd, uint64_t id)
{
	struct conn *c = NULL;
	int cfd, sfd;
	size_t i;

	cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (cfd == -1)
		return;
	for (i = 0; i < MAX_CONNS; i++) {
		if (!conns[i].used) {
			c = &conns[i];
			break;
		}
	}
	if (c == NULL) {
		p11e_error("more than %d connections at once", MAX_CONNS);
		close(cfd);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->id = id;
	c->client = cfd;
	c->server = -1;
	c->drop = should_drop(id);
	c->reset_at = reset_conn == 0 || reset_conn == id ? reset_after : 0;
	sfd = socket(
	    target.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sfd == -1) {
		conn_end(c, "error");
		return;
	}
	c->server = sfd;
	if (connect(sfd, (struct sockaddr *)&target, target_len) == -1) {
		if (errno != EINPROGRESS) {
			conn_end(c, "error");
			return;
		}
		c->connecting = true;
	}
}

/* Moves bytes from fd into b; returns false on error. */
static bool
fill(int fd, struct pipe_buf *b, bool *eof, uint64_t *count)
{
	ssize_t n = read(fd, b->data + b->len, sizeof(b->data) - b->len);

	if (n == -1)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		*eof = true;
	b->len += (size_t)n;
	*count += (uint64_t)n;
	return true;
}

/* Writes at most limit bytes of b to fd; returns bytes written or -1. */
static ssize_t
drain(int fd, struct pipe_buf *b, size_t limit)
{
	ssize_t n;

	n = send(fd, b->data, b->len < limit ? b->len : limit, MSG_NOSIGNAL);
	if (n == -1)
		return errno == EAGAIN || errno == EINTR ? 0 : -1;
	memmove(b->data, b->data + n, b->len - (size_t)n);
	b->len -= (size_t)n;
	return n;
}

/* Handles the poll results of one connection; may end it. */
static void
service(struct conn *c, short cev, short sev)
{
	if (c->connecting && (sev & (POLLOUT | POLLERR | POLLHUP))) {
		int err = 0;
		socklen_t len = sizeof(err);

		if (getsockopt(c->server, SOL_SOCKET, SO_ERROR, &err, &len) ==
			-1 ||
		    err != 0) {
			conn_end(c, "error");
			return;
		}
		c->connecting = false;
	}
	if (c->connecting)
		return;
	/* A reset from either side ends it (and would spin poll() if kept). */
	if ((cev & POLLERR) || (sev & POLLERR)) {
		conn_end(c, "error");
		return;
	}
	/* Client to server. */
	if ((cev & (POLLIN | POLLHUP | POLLERR)) && !c->client_eof &&
	    c->up.len < sizeof(c->up.data)) {
		if (!fill(c->client, &c->up, &c->client_eof, &c->req_bytes)) {
			conn_end(c, "error");
			return;
		}
	}
	if (c->up.len > 0 && drain(c->server, &c->up, SIZE_MAX) == -1) {
		conn_end(c, "error");
		return;
	}
	if (c->client_eof && c->up.len == 0)
		(void)shutdown(c->server, SHUT_WR);
	/* Server to client. */
	if ((sev & (POLLIN | POLLHUP | POLLERR)) && !c->server_eof &&
	    c->down.len < sizeof(c->down.data)) {
		if (!fill(
			c->server, &c->down, &c->server_eof, &c->resp_bytes)) {
			conn_end(c, "error");
			return;
		}
	}
	if (c->drop) {
		c->down.len = 0; /* the response is lost */
		if (c->server_eof) {
			conn_end(c, "dropped");
			return;
		}
	} else if (c->down.len > 0) {
		size_t limit = SIZE_MAX;
		ssize_t n;

		if (c->reset_at > 0)
			limit = (size_t)(c->reset_at - c->sent_bytes);
		n = drain(c->client, &c->down, limit);
		if (n == -1) {
			conn_end(c, "error");
			return;
		}
		c->sent_bytes += (uint64_t)n;
		if (c->reset_at > 0 && c->sent_bytes >= c->reset_at) {
			conn_reset(c);
			return;
		}
	}
	if (c->server_eof && c->down.len == 0 && !c->drop) {
		(void)shutdown(c->client, SHUT_WR);
		if (c->client_eof && c->up.len == 0)
			conn_end(c, "forwarded");
	}
}

static int
listen_on(const char *addr, unsigned int *port)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1;

	resolve(addr, "0", &ss, &len);
	fd =
	    socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, 16) == -1) {
		p11e_error("listen on %s: %s", addr, strerror(errno));
		exit(1);
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		p11e_error("getsockname: %s", strerror(errno));
		exit(1);
	}
	*port = ntohs(ss.ss_family == AF_INET
		? ((struct sockaddr_in *)&ss)->sin_port
		: ((struct sockaddr_in6 *)&ss)->sin6_port);
	return fd;
}

int
main(int argc, char **argv)
{
	const char *listen_addr = "127.0.0.1", *connect_to = NULL;
	const char *port_file = NULL, *log_path = NULL;
	struct pollfd pfd[1 + 2 * MAX_CONNS];
	size_t idx[MAX_CONNS];
	struct sigaction sa;
	sigset_t block, orig;
	uint64_t accepted = 0;
	unsigned int port;
	int lfd, i;

	p11e_log_init("lossy-proxy");
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (strcmp(a, "--drop-all-responses") == 0) {
			drop_all = true;
			continue;
		}
		if (v == NULL)
			usage();
		i++;
		if (strcmp(a, "--connect") == 0) {
			connect_to = v;
		} else if (strcmp(a, "--listen") == 0) {
			listen_addr = v;
		} else if (strcmp(a, "--port-file") == 0) {
			port_file = v;
		} else if (strcmp(a, "--log") == 0) {
			log_path = v;
		} else if (strcmp(a, "--drop-response") == 0) {
			if (n_drops == MAX_DROPS)
				usage();
			drops[n_drops++] = parse_num(a, v, 1);
		} else if (strcmp(a, "--reset-after") == 0) {
			reset_after = parse_num(a, v, 1);
		} else if (strcmp(a, "--reset-conn") == 0) {
			reset_conn = parse_num(a, v, 1);
		} else if (strcmp(a, "--max-connections") == 0) {
			max_conns = parse_num(a, v, 1);
		} else {
			usage();
		}
	}
	if (connect_to == NULL)
		usage();
	{
		const char *colon = strrchr(connect_to, ':');
		char host[256];
		size_t hl;

		if (colon == NULL ||
		    (hl = (size_t)(colon - connect_to)) >= sizeof(host))
			usage();
		memcpy(host, connect_to, hl);
		host[hl] = '\0';
		(void)parse_num("--connect port", colon + 1, 1);
		resolve(host, colon + 1, &target, &target_len);
	}
	if (log_path != NULL && (log_fp = fopen(log_path, "a")) == NULL) {
		p11e_error("%s: %s", log_path, strerror(errno));
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	/* Signals only arrive inside ppoll(): no race with the stop check. */
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &orig);

	lfd = listen_on(listen_addr, &port);
	printf("%u\n", port);
	fflush(stdout);
	if (port_file != NULL)
		write_port_file(port_file, port);

	while (!stop) {
		nfds_t n = 0;
		size_t k, active = 0;

		if (lfd != -1) {
			pfd[n].fd = lfd;
			pfd[n++].events = POLLIN;
		}
		for (k = 0; k < MAX_CONNS; k++) {
			struct conn *c = &conns[k];
			short cev = 0, sev = 0;

			if (!c->used)
				continue;
			active++;
			idx[k] = n;
			if (!c->client_eof && c->up.len < sizeof(c->up.data))
				cev |= POLLIN;
			if (c->down.len > 0)
				cev |= POLLOUT;
			if (c->connecting || c->up.len > 0)
				sev |= POLLOUT;
			if (!c->server_eof &&
			    c->down.len < sizeof(c->down.data))
				sev |= POLLIN;
			pfd[n].fd = c->client;
			pfd[n++].events = cev;
			pfd[n].fd = c->server;
			pfd[n++].events = sev;
		}
		if (lfd == -1 && active == 0)
			break; /* --max-connections reached and all done */
		if (ppoll(pfd, n, NULL, &orig) == -1) {
			if (errno == EINTR)
				continue;
			p11e_error("poll: %s", strerror(errno));
			return 1;
		}
		for (k = 0; k < MAX_CONNS; k++) {
			if (conns[k].used)
				service(&conns[k], pfd[idx[k]].revents,
				    pfd[idx[k] + 1].revents);
		}
		if (lfd != -1 && (pfd[0].revents & POLLIN)) {
			accept_one(lfd, ++accepted);
			if (max_conns > 0 && accepted >= max_conns) {
				close(lfd);
				lfd = -1;
			}
		}
	}
	for (i = 0; i < MAX_CONNS; i++) {
		if (conns[i].used)
			conn_end(&conns[i], "interrupted");
	}
	if (lfd != -1)
		close(lfd);
	if (log_fp != NULL)
		fclose(log_fp);
	return 0;
}
