/*
 * channels.h: the channel processes, as the daemon runs them (channels.c). Each configured
 * channel is a `clawbox-channel KIND` child speaking channel-proto.h on a socketpair; these
 * start, feed, check and restart them.
 */
#ifndef CLAWBOX_CHANNELS_H
#define CLAWBOX_CHANNELS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct daemon;
struct evhttp_request;

/* Starts every configured channel (none: nothing). 0, or -errno when the channel
 * executable is missing or memory is short; a channel that cannot start is retried with
 * backoff, not an error. */
int channels_start(struct daemon *d);
/* Closes every channel's socket (they exit), reaps them (killed after a second). */
void channels_stop(struct daemon *d);
/* A reaped child that was a channel's: taken (true), its restart planned. */
bool channels_reaped(struct daemon *d, pid_t pid, int status);
/* A run's text as it streams, for its chats' progress messages (no chat: nothing). */
void channels_progress(struct daemon *d, const char *group, int64_t reply_to, const char *text,
                       size_t len);
/* A host action of group is held as approval id: its chats get buttons. text: what will
 * happen, in the daemon's words. */
void channels_approval(struct daemon *d, const char *group, int64_t approval, const char *text);
/* Something of group changed in the store (a reply stored, say): the channels with a chat
 * for it send what is due now rather than at their next tick. */
void channels_kick(struct daemon *d, const char *group);
/* [{"name", "kind", "state", "last_error", "since", "restarts", "chats"}], "web" first. */
json_t *channels_list(struct daemon *d);
/* GET /api/v1/channels: whether path was it (then it is answered). */
bool channels_route(struct daemon *d, struct evhttp_request *req, const char *path);

#endif
