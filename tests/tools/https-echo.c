/* SPDX-License-Identifier: BSD-3-Clause */
#include "config.h"

/*
 * https-echo CERT KEY TRUST|- PORTFILE [MAX_BODY]: serves HTTPS on
 * 127.0.0.1 (any free port, written to PORTFILE) with server/http.c and
 * answers every request with JSON describing what the front end made of
 * it.  Stops on SIGTERM.  For tests/integration/https.sh.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/num.h"
#include "server/http.h"

static void
echo(void *ctx, const struct p11e_http_request *req,
    struct p11e_http_response *resp)
{
	json_t *j;
	char *text;

	(void)ctx;
	if (strcmp(req->path, "/problem") == 0) {
		p11e_http_problem(resp, 409, "example-problem", "An example",
		    "with a detail");
		snprintf(resp->retry_after, sizeof(resp->retry_after), "7");
		return;
	}
	j = json_pack("{s:s, s:s, s:s?, s:s, s:I, s:s%, s:I, s:b, s:b}",
	    "method", req->method, "path", req->path, "content_type",
	    req->content_type, "peer", req->peer, "body_len",
	    (json_int_t)req->body_len, "body",
	    req->body ? (char *)req->body : "", req->body_len, "n_certs",
	    (json_int_t)req->n_certs, "cert_verified", req->cert_verified,
	    "pkcs10",
	    p11e_http_media_type_is(req->content_type, "application/pkcs10"));
	text = j ? json_dumps(j, JSON_COMPACT) : NULL;
	resp->status = 200;
	snprintf(
	    resp->content_type, sizeof(resp->content_type), "application/json");
	if (text != NULL)
		(void)p11e_buf_append_str(&resp->body, text);
	free(text);
	json_decref(j);
}

static char *
slurp(const char *path)
{
	struct p11e_buf b;
	char chunk[4096];
	size_t n;
	FILE *f;

	if (strcmp(path, "-") == 0)
		return NULL;
	if ((f = fopen(path, "r")) == NULL) {
		perror(path);
		exit(1);
	}
	p11e_buf_init(&b, 1 << 20);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		(void)p11e_buf_append(&b, chunk, n);
	fclose(f);
	return (char *)p11e_buf_steal(&b, NULL);
}

int
main(int argc, char **argv)
{
	struct p11e_http_options o;
	struct p11e_http *http;
	uint64_t max = 0;
	sigset_t set;
	FILE *pf;
	int sig;

	p11e_log_init("https-echo");
	if (argc < 5 ||
	    (argc == 6 &&
		p11e_num_parse_u64(argv[5], 1, 1 << 20, &max) != P11E_OK)) {
		fprintf(stderr,
		    "usage: https-echo CERT KEY TRUST|- PORTFILE "
		    "[MAX_BODY]\n");
		return 2;
	}
	memset(&o, 0, sizeof(o));
	o.listen = "127.0.0.1:0";
	o.cert_pem = slurp(argv[1]);
	o.key_pem = slurp(argv[2]);
	o.trust_pem = slurp(argv[3]);
	o.max_body = (size_t)max;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (p11e_http_start(&o, echo, NULL, &http) != P11E_OK)
		return 1;
	if ((pf = fopen(argv[4], "w")) == NULL)
		return 1;
	fprintf(pf, "%u\n", p11e_http_port(http));
	fclose(pf);
	sigwait(&set, &sig);
	p11e_http_stop(http);
	return 0;
}
