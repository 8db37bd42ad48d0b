/*
 * egress.h: the daemon's end of each run's control channel to its egress proxy (CONTRACTS 1).
 * The daemon makes a SOCK_SEQPACKET socketpair per run; the other end goes to `clawbox ask
 * --proxy-control-fd N`, which hands it to clawbox-proxy (never into the sandbox). On it the
 * proxy asks about requests it holds ("egress_ask": the approvals of approvals.h, action
 * "egress") and reports taint ("taint": taint.h); the daemon answers each ask once
 * ("egress_answer"). Every frame is checked as input from a less-trusted process: one bad
 * frame cuts the channel, and the proxy then denies whatever it holds.
 */
#ifndef CLAWBOX_DAEMON_EGRESS_H
#define CLAWBOX_DAEMON_EGRESS_H

struct daemon;
struct egress_chan;

#define EGRESS_FRAME_MAX  (16 * 1024)
#define EGRESS_ASKS_MAX   256 /* asks one run may make; past it, denied without a record */
#define EGRESS_TAINTS_MAX 16  /* taint causes noted per run; past it, counted */

/* A channel for run run_id of group, read on the daemon's loop. *ret_child_fd is the end for
 * ask (close-on-exec: the spawn clears it in the child), which the caller closes once ask is
 * started. 0 or -errno. */
int egress_chan_open(struct daemon *d, const char *group, const char *run_id,
                     struct egress_chan **ret, int *ret_child_fd);

/* The run ended: its held requests are denied (approvals_forget), the channel closed. NULL is
 * fine. */
void egress_chan_free(struct egress_chan *c);

#endif
