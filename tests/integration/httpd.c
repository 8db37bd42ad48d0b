/*
 * httpd.c: a small real HTTP server for the proxy tests (libevent's evhttp). Every response
 * says which server answered, the request line, and the headers it received, so tests can
 * check what the proxy passed on. Prints the port it listens on, then serves until killed
 * (at most 300 s: it never outlives a forgotten test).
 *
 * With LOGFILE, the request (line, headers, body) is appended there instead of being echoed
 * back: the credential tests must see what the server got without the sandbox seeing it.
 *   /redirect/PORT  302 to http://127.0.0.1:PORT/landing (another origin)
 *   /stream         a chunked response in parts, as an SSE stream comes
 *   /big/N          N MiB of zeros
 *   /v1/models/X    as /X (the model fence lets GET /v1/models/... through to a model
 *                   upstream: the credential tests reach these routes that way)
 *   /page.html      an HTML page (for the agent's web_fetch)
 *
 * With HTTPD_TLS_CERT and HTTPD_TLS_KEY in the environment it serves HTTPS instead.
 *
 * usage: httpd ADDRESS PORT NAME [LOGFILE]     (PORT 0: any)
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *name;
static FILE *logf;

static void
handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *out = evbuffer_new();
	const char *uri = evhttp_request_get_uri(req);
	int cmd = (int)evhttp_request_get_command(req);
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t body = evbuffer_get_length(in);

	evbuffer_add_printf(out, "server: %s\nrequest: %d %s\n", name, cmd, uri);
	if (logf) {
		fprintf(logf, "request: %d %s\n", cmd, uri);
		for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
			fprintf(logf, "header: %s: %s\n", kv->key, kv->value);
		fprintf(logf, "body: %.*s\n", (int)body, (const char *)evbuffer_pullup(in, -1));
		fflush(logf);
	} else {
		for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
			evbuffer_add_printf(out, "header: %s: %s\n", kv->key, kv->value);
	}
	evbuffer_add_printf(out, "body-bytes: %zu\n", body);
	if (strncmp(uri, "/v1/models/", 11) == 0)
		uri += 10;

	if (strncmp(uri, "/redirect/", 10) == 0) {
		char loc[128];
		snprintf(loc, sizeof(loc), "http://127.0.0.1:%ld/landing",
		         strtol(uri + 10, NULL, 10));
		evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
		evhttp_send_reply(req, 302, "Found", out);
	} else if (strcmp(uri, "/page.html") == 0) {
		/* For web_fetch: what must be dropped (script, style, comments), entities and
		 * block structure. */
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_add_printf(out, "<!doctype html><html><head><title>Test Page</title>"
		                         "<style>body { color: red }</style><script>var hidden = "
		                         "'SCRIPT-TEXT';</script></head><body><!-- COMMENT-TEXT -->"
		                         "<h1>Hello &amp; welcome</h1><p>First&nbsp;para &#8212; "
		                         "&#x41;&lt;&gt;</p><ul><li>one</li><li>two</li></ul>"
		                         "</body></html>");
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		                  "text/html; charset=utf-8");
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(uri, "/stream") == 0) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
		                  "text/event-stream");
		evhttp_send_reply_start(req, 200, "OK");
		evhttp_send_reply_chunk(req, out);
		for (int i = 1; i <= 3; i++) {
			evbuffer_add_printf(out, "event: part\ndata: %d\n\n", i);
			evhttp_send_reply_chunk(req, out);
		}
		evhttp_send_reply_end(req);
	} else {
		/* /big/N: N MiB of zeros, for transfer tests. */
		if (strncmp(uri, "/big/", 5) == 0) {
			long mib = strtol(uri + 5, NULL, 10);
			static char zeros[1 << 20];
			for (long i = 0; i < mib && i < 1024; i++)
				evbuffer_add_reference(out, zeros, sizeof(zeros), NULL, NULL);
		}
		evhttp_send_reply(req, 200, "OK", out);
	}
	evbuffer_free(out);
}

static SSL_CTX *tls;

static struct bufferevent *
tls_bev(struct event_base *base, void *arg)
{
	(void)arg;
	return bufferevent_openssl_socket_new(base, -1, SSL_new(tls), BUFFEREVENT_SSL_ACCEPTING,
	                                      BEV_OPT_CLOSE_ON_FREE);
}

int
main(int argc, char **argv)
{
	if (argc != 4 && argc != 5)
		return 2;
	name = argv[3];
	if (argc == 5 && !(logf = fopen(argv[4], "a")))
		return 1;
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	evhttp_set_gencb(http, handle, NULL);
	const char *cert = getenv("HTTPD_TLS_CERT"), *key = getenv("HTTPD_TLS_KEY");
	if (cert && key) {
		tls = SSL_CTX_new(TLS_server_method());
		if (!tls || SSL_CTX_use_certificate_chain_file(tls, cert) != 1 ||
		    SSL_CTX_use_PrivateKey_file(tls, key, SSL_FILETYPE_PEM) != 1)
			return 1;
		evhttp_set_bevcb(http, tls_bev, NULL);
	}
	struct evhttp_bound_socket *s =
	    evhttp_bind_socket_with_handle(http, argv[1], (unsigned short)atoi(argv[2]));
	if (!s)
		return 1;
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	getsockname(evhttp_bound_socket_get_fd(s), (struct sockaddr *)&ss, &len);
	unsigned port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
	                                              : ((struct sockaddr_in6 *)&ss)->sin6_port);
	printf("%u\n", port);
	fflush(stdout);
	alarm(300);
	event_base_dispatch(base);
	return 0;
}
