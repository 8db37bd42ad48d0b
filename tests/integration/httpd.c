/*
 * httpd.c: a small real HTTP server for the proxy tests (libevent's evhttp). Every response
 * says which server answered, the request line, and the headers it received, so tests can
 * check what the proxy passed on. Prints the port it listens on, then serves until killed
 * (at most 300 s: it never outlives a forgotten test).
 *
 * usage: httpd ADDRESS PORT NAME     (PORT 0: any)
 */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *name;

static void
handle(struct evhttp_request *req, void *arg)
{
	(void)arg;
	struct evbuffer *out = evbuffer_new();
	evbuffer_add_printf(out, "server: %s\nrequest: %d %s\n", name,
	                    (int)evhttp_request_get_command(req), evhttp_request_get_uri(req));
	struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	for (struct evkeyval *kv = h->tqh_first; kv; kv = kv->next.tqe_next)
		evbuffer_add_printf(out, "header: %s: %s\n", kv->key, kv->value);
	size_t body = evbuffer_get_length(evhttp_request_get_input_buffer(req));
	evbuffer_add_printf(out, "body-bytes: %zu\n", body);
	/* /big/N: N MiB of zeros, for transfer tests. */
	const char *uri = evhttp_request_get_uri(req);
	if (strncmp(uri, "/big/", 5) == 0) {
		long mib = strtol(uri + 5, NULL, 10);
		static char zeros[1 << 20];
		for (long i = 0; i < mib && i < 1024; i++)
			evbuffer_add_reference(out, zeros, sizeof(zeros), NULL, NULL);
	}
	evhttp_send_reply(req, 200, "OK", out);
	evbuffer_free(out);
}

int
main(int argc, char **argv)
{
	if (argc != 4)
		return 2;
	name = argv[3];
	struct event_base *base = event_base_new();
	struct evhttp *http = evhttp_new(base);
	evhttp_set_gencb(http, handle, NULL);
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
