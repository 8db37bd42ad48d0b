/*
 * intercept.h: TLS interception for service hosts (services.h). A CONNECT to a service host
 * is answered by the proxy itself: it completes the tunnel's TLS with a certificate for that
 * host from the installation's CA (ca.h), reads the one HTTP request inside with the same
 * request reader and limits as plain HTTP, swaps the service's placeholder for its secret,
 * scans for leaks, then opens its own TLS connection to the checked address, verifying the
 * server against the system's trust store (or --fetch-ca-file), and relays the response.
 * Hosts without a service stay opaque CONNECT tunnels (tunnel.c).
 *
 * Internal to src/proxy: works on struct conn (conn.h).
 */
#ifndef CLAWBOX_INTERCEPT_H
#define CLAWBOX_INTERCEPT_H

#include <stdbool.h>
#include <stddef.h>

struct conn;
struct intercept;

/* Loads (or makes) the CA in ca_dir and the client-side trust (ca_file, or the system's
 * bundle). Before the proxy drops its privileges. NULL with *ret_why. */
struct intercept *intercept_new(const char *ca_dir, const char *ca_file, const char **ret_why);
void intercept_free(struct intercept *ic);

/* The CONNECT to a service host is decided and its address checked: take the tunnel over. */
void intercept_start(struct conn *c);

/* A connection made to the sandbox's port 443 (HTTPS to a service's name from a client that
 * uses no proxy): the proxy is its TLS server; its SNI names the destination, which must be
 * a service's host, or the handshake fails. */
void intercept_transparent(struct conn *c);

/* A transparent connection's address passed the SSRF guard. */
void intercept_address_ready(struct conn *c);

/* The request inside the intercepted tunnel has its head: judge it and connect. */
void intercept_decide(struct conn *c);

/* Leak checks (every request): the head, at decision time; returns false after refusing. */
bool conn_head_clean(struct conn *c);
/* A body chunk about to be forwarded; false after refusing (drop the chunk). */
bool conn_body_clean(struct conn *c, const char *data, size_t len);

#endif
