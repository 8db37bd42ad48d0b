/*
 * proxy-wire.h: what the egress proxy tells a client inside the sandbox beyond HTTP itself.
 * The proxy writes it and the agent reads it; both see src/base, so it is defined here once.
 */
#ifndef CLAWBOX_PROXY_WIRE_H
#define CLAWBOX_PROXY_WIRE_H

/* On the proxy's 502 when the model upstream could not be connected to at all (refused, or
 * the name does not resolve): a retry in a second would fail alike, so the failure is final.
 * A 502 without it (a gateway of the provider's failing) is worth retrying. */
#define PROXY_HDR_UNREACHABLE "X-Clawbox-Upstream-Unreachable"

#endif
