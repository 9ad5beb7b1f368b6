/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <microhttpd.h>

#include "common/log.h"
#include "common/num.h"
#include "server/http.h"

#define DEFAULT_MAX_BODY (16 * 1024)

/* TLS 1.2 and 1.3 only (RFC 8996), the server's preference first. */
#define PRIORITIES \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:%SERVER_PRECEDENCE"

struct p11e_http {
	struct MHD_Daemon *daemon;
	p11e_http_handler handler;
	void *ctx;
	size_t max_body;
	unsigned int port;
	char *cert_pem, *key_pem, *trust_pem; /* MHD keeps pointers */
};

/* Per request state, from the first call of the access handler. */
struct request_state {
	struct p11e_buf body;
	bool too_large;
};

void
p11e_http_problem(struct p11e_http_response *resp, unsigned int status,
    const char *type, const char *title, const char *detail)
{
	json_t *j;
	char *text;

	resp->status = status;
	snprintf(resp->content_type, sizeof(resp->content_type),
	    "application/problem+json");
	p11e_buf_reset(&resp->body);
	j = json_pack("{s:s, s:s, s:i}", "type", type, "title", title, "status",
	    (int)status);
	if (j != NULL && detail != NULL)
		json_object_set_new(j, "detail", json_string(detail));
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	if (text != NULL)
		(void)p11e_buf_append_str(&resp->body, text);
	if (text != NULL) {
		/* jansson's allocator may be a wiping one (common/ipc.h) */
		json_malloc_t jmalloc;
		json_free_t jfree;

		json_get_alloc_funcs(&jmalloc, &jfree);
		jfree(text);
	}
	json_decref(j);
}

void
p11e_http_body(struct p11e_http_response *resp, const char *ctype,
    const void *data, size_t len)
{
	resp->status = 200;
	snprintf(resp->content_type, sizeof(resp->content_type), "%s", ctype);
	p11e_buf_reset(&resp->body);
	if (p11e_buf_append(&resp->body, data, len) != P11E_OK)
		p11e_http_problem(
		    resp, 500, "internal-error", "Internal error", NULL);
}

void
p11e_http_json(struct p11e_http_response *resp, const json_t *j)
{
	char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	json_malloc_t jmalloc;
	json_free_t jfree;

	if (text == NULL) {
		p11e_http_problem(
		    resp, 500, "internal-error", "Internal error", NULL);
		return;
	}
	resp->body.wipe = true; /* may hold a token */
	p11e_http_body(resp, "application/json", text, strlen(text));
	json_get_alloc_funcs(&jmalloc, &jfree);
	jfree(text); /* the wiping allocator of common/ipc.h */
}

void
p11e_http_method_not_allowed(struct p11e_http_response *resp, const char *allow)
{
	p11e_http_problem(
	    resp, 405, "method-not-allowed", "Method not allowed", NULL);
	snprintf(resp->allow, sizeof(resp->allow), "%s", allow);
}

void
p11e_http_unavailable(struct p11e_http_response *resp, const char *detail)
{
	p11e_http_problem(
	    resp, 503, "unavailable", "Service unavailable", detail);
	snprintf(resp->retry_after, sizeof(resp->retry_after), "5");
}

bool
p11e_http_media_type_is(const char *header, const char *type)
{
	size_t n;

	if (header == NULL)
		return false;
	while (*header == ' ' || *header == '\t')
		header++;
	n = strcspn(header, "; \t");
	return n == strlen(type) && strncasecmp(header, type, n) == 0;
}

/* The verified client chain, when one was presented. */
static void
peer_certs(struct MHD_Connection *conn, struct p11e_http_request *req)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	gnutls_session_t session;
	unsigned int n = 0, status = 0, i;
	int ret;

	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return;
	session = (gnutls_session_t)ci->tls_session;
	certs = gnutls_certificate_get_peers(session, &n);
	if (certs == NULL || n == 0)
		return;
	for (i = 0; i < n && i < P11E_HTTP_MAX_CHAIN; i++) {
		req->cert_der[i] = certs[i].data;
		req->cert_len[i] = certs[i].size;
	}
	req->n_certs = i;
	/* both: the return value alone accepts untrusted certificates */
	ret = gnutls_certificate_verify_peers2(session, &status);
	req->cert_verified = ret == 0 && status == 0;
	if (!req->cert_verified)
		p11e_verbose("client certificate from %s not verified: ret %d, "
			     "status 0x%x",
		    req->peer, ret, status);
}

static void
peer_address(struct MHD_Connection *conn, char *buf, size_t len)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;

	snprintf(buf, len, "?");
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	if (ci == NULL || (sa = ci->client_addr) == NULL)
		return;
	if (sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr,
		    buf, (socklen_t)len);
	else if (sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6,
		    &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
		    (socklen_t)len);
}

static enum MHD_Result
send_response(struct MHD_Connection *conn, struct p11e_http_response *resp)
{
	struct MHD_Response *r;
	enum MHD_Result ret;

	r = MHD_create_response_from_buffer(resp->body.len,
	    resp->body.data ? resp->body.data : (void *)"",
	    MHD_RESPMEM_MUST_COPY);
	if (r == NULL)
		return MHD_NO;
	if (resp->content_type[0] != '\0')
		MHD_add_response_header(
		    r, MHD_HTTP_HEADER_CONTENT_TYPE, resp->content_type);
	if (resp->retry_after[0] != '\0')
		MHD_add_response_header(
		    r, MHD_HTTP_HEADER_RETRY_AFTER, resp->retry_after);
	if (resp->www_authenticate[0] != '\0')
		MHD_add_response_header(r, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
		    resp->www_authenticate);
	if (resp->allow[0] != '\0')
		MHD_add_response_header(r, MHD_HTTP_HEADER_ALLOW, resp->allow);
	/* credentials and certificates are never cached */
	MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	ret = MHD_queue_response(conn, resp->status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result
too_large(struct p11e_http *http, struct MHD_Connection *conn)
{
	struct p11e_http_response resp;
	enum MHD_Result ret;
	char detail[64];

	memset(&resp, 0, sizeof(resp));
	p11e_buf_init(&resp.body, P11E_HTTP_RESPONSE_MAX);
	snprintf(
	    detail, sizeof(detail), "the limit is %zu bytes", http->max_body);
	p11e_http_problem(
	    &resp, 413, "request-too-large", "Request body too large", detail);
	ret = send_response(conn, &resp);
	p11e_buf_clear(&resp.body);
	return ret;
}

static enum MHD_Result
access_cb(void *cls, struct MHD_Connection *conn, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **con_cls)
{
	struct p11e_http *http = cls;
	struct request_state *st = *con_cls;
	struct p11e_http_request req;
	struct p11e_http_response resp;
	char peer[INET6_ADDRSTRLEN];
	const char *cl;
	enum MHD_Result ret;
	uint64_t len;

	(void)version;
	if (st == NULL) {
		if ((st = calloc(1, sizeof(*st))) == NULL)
			return MHD_NO;
		p11e_buf_init(&st->body, http->max_body);
		cl = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
		*con_cls = st;
		/* refused before a byte of the body is read */
		if (cl != NULL &&
		    p11e_num_parse_u64(cl, 0, http->max_body, &len) != P11E_OK)
			return too_large(http, conn);
		return MHD_YES;
	}
	if (*upload_size != 0) {
		if (!st->too_large &&
		    p11e_buf_append(&st->body, upload, *upload_size) != P11E_OK)
			st->too_large = true;
		*upload_size = 0;
		return MHD_YES;
	}
	memset(&req, 0, sizeof(req));
	memset(&resp, 0, sizeof(resp));
	p11e_buf_init(&resp.body, P11E_HTTP_RESPONSE_MAX);
	peer_address(conn, peer, sizeof(peer));
	if (st->too_large) {
		p11e_buf_clear(&resp.body);
		return too_large(http, conn);
	} else {
		req.method = method;
		req.path = url;
		req.content_type = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		req.authorization = MHD_lookup_connection_value(
		    conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
		req.peer = peer;
		req.body = st->body.data;
		req.body_len = st->body.len;
		peer_certs(conn, &req);
		resp.status = 500;
		http->handler(http->ctx, &req, &resp);
	}
	ret = send_response(conn, &resp);
	p11e_buf_clear(&resp.body);
	return ret;
}

static void
completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
	struct request_state *st = *con_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (st == NULL)
		return;
	/* bodies may hold passwords and OTPs */
	p11e_buf_clear(&st->body);
	free(st);
	*con_cls = NULL;
}

/* Parses "host:port" / "[v6]:port" into a socket address. */
static enum p11e_err
parse_listen(const char *listen, struct sockaddr_storage *ss, bool *v6)
{
	char host[64];
	const char *colon;
	uint64_t port;
	size_t hl;

	memset(ss, 0, sizeof(*ss));
	if (listen[0] == '[') {
		const char *end = strchr(listen, ']');

		if (end == NULL || end[1] != ':')
			return P11E_ERR_CONFIG;
		hl = (size_t)(end - listen - 1);
		if (hl >= sizeof(host))
			return P11E_ERR_CONFIG;
		memcpy(host, listen + 1, hl);
		colon = end + 1;
	} else {
		if ((colon = strrchr(listen, ':')) == NULL)
			return P11E_ERR_CONFIG;
		hl = (size_t)(colon - listen);
		if (hl >= sizeof(host))
			return P11E_ERR_CONFIG;
		memcpy(host, listen, hl);
	}
	host[hl] = '\0';
	if (p11e_num_parse_u64(colon + 1, 0, 65535, &port) != P11E_OK)
		return P11E_ERR_CONFIG;
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)ss)->sin_addr) ==
	    1) {
		((struct sockaddr_in *)ss)->sin_family = AF_INET;
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
		*v6 = false;
		return P11E_OK;
	}
	if (inet_pton(
		AF_INET6, host, &((struct sockaddr_in6 *)ss)->sin6_addr) == 1) {
		((struct sockaddr_in6 *)ss)->sin6_family = AF_INET6;
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
		*v6 = true;
		return P11E_OK;
	}
	return P11E_ERR_CONFIG;
}

static char *
dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

enum p11e_err
p11e_http_start(const struct p11e_http_options *opts, p11e_http_handler handler,
    void *ctx, struct p11e_http **out)
{
	const union MHD_DaemonInfo *di;
	struct sockaddr_storage ss;
	struct p11e_http *http;
	unsigned int flags;
	bool v6 = false;

	*out = NULL;
	if (parse_listen(opts->listen, &ss, &v6) != P11E_OK) {
		p11e_error("cannot listen on '%s': give ADDRESS:PORT "
			   "(127.0.0.1:8443, [::1]:8443)",
		    opts->listen);
		return P11E_ERR_CONFIG;
	}
	if ((http = calloc(1, sizeof(*http))) == NULL)
		return P11E_ERR_NOMEM;
	http->handler = handler;
	http->ctx = ctx;
	http->max_body = opts->max_body ? opts->max_body : DEFAULT_MAX_BODY;
	http->cert_pem = dup_or_null(opts->cert_pem);
	http->key_pem = dup_or_null(opts->key_pem);
	http->trust_pem = dup_or_null(opts->trust_pem);
	/*
	 * poll(), not epoll: with epoll, libmicrohttpd 0.9.75 spun on a TLS
	 * handshake waiting for its client (52 epoll_wait and 47 empty recv
	 * per re-enrollment at one client against 6 poll and 2), which
	 * nearly doubled the server's CPU per new connection.
	 */
	flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL |
	    MHD_USE_ERROR_LOG | (v6 ? MHD_USE_IPv6 : 0);
	http->daemon = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, http,
	    MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
	    MHD_OPTION_HTTPS_MEM_CERT, http->cert_pem, MHD_OPTION_HTTPS_MEM_KEY,
	    http->key_pem, MHD_OPTION_HTTPS_PRIORITIES, PRIORITIES,
	    MHD_OPTION_NOTIFY_COMPLETED, completed_cb, http,
	    MHD_OPTION_CONNECTION_TIMEOUT,
	    (unsigned int)(opts->timeout ? opts->timeout : 10),
	    MHD_OPTION_CONNECTION_LIMIT,
	    (unsigned int)(opts->max_connections ? opts->max_connections : 256),
	    MHD_OPTION_PER_IP_CONNECTION_LIMIT,
	    (unsigned int)(opts->max_per_ip ? opts->max_per_ip : 0),
	    MHD_OPTION_THREAD_POOL_SIZE,
	    (unsigned int)(opts->threads ? opts->threads : 2),
	    /* last: without a trust list no certificate is asked for */
	    http->trust_pem ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END,
	    http->trust_pem, MHD_OPTION_END);
	if (http->daemon == NULL) {
		p11e_error("cannot serve HTTPS on %s (address in use, or bad "
			   "certificate or key)",
		    opts->listen);
		p11e_http_stop(http);
		return P11E_ERR_SYSTEM;
	}
	di = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
	http->port = di ? di->port : 0;
	*out = http;
	return P11E_OK;
}

unsigned int
p11e_http_port(const struct p11e_http *http)
{
	return http->port;
}

void
p11e_http_stop(struct p11e_http *http)
{
	if (http == NULL)
		return;
	if (http->daemon != NULL)
		MHD_stop_daemon(http->daemon);
	free(http->cert_pem);
	if (http->key_pem != NULL) {
		explicit_bzero(http->key_pem, strlen(http->key_pem));
		free(http->key_pem);
	}
	free(http->trust_pem);
	free(http);
}
