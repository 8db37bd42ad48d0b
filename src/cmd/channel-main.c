/*
 * channel-main.c: `clawbox-channel KIND`, every channel's executable. The daemon
 * (src/daemon/channels.c) starts one per configured channel with its end of a socketpair
 * on fd 3; KIND picks the row below, and chanlib runs it. One executable for all kinds: the
 * kinds share chanlib, libevent and libcurl, and a process runs only the kind it was
 * started as.
 *
 * Each kind's file (src/channels/KIND.c) defines its row, `const struct chan_kind
 * chan_kind_KIND`. The rows are weak references, so a kind whose file is not (yet) in the
 * tree is simply absent: adding a channel is adding its file, with no edit here that two
 * channels' authors would both make.
 */
#include <stdio.h>
#include <string.h>

#include "chanlib.h"

#define KIND(name) extern const struct chan_kind chan_kind_##name __attribute__((weak));
KIND(telegram)
KIND(slack)
KIND(discord)
KIND(matrix)
KIND(webhook)
KIND(email)
KIND(xmpp)
#undef KIND

static const struct chan_kind *const kinds[] = {
    &chan_kind_telegram, &chan_kind_slack, &chan_kind_discord, &chan_kind_matrix,
    &chan_kind_webhook,  &chan_kind_email, &chan_kind_xmpp,
};

static void
usage(FILE *out)
{
	fprintf(out, "usage: clawbox-channel KIND\n\n"
	             "One channel, started by 'clawbox serve' with its socket on fd 3; not meant\n"
	             "to be run by hand. Kinds built in:");
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i])
			fprintf(out, " %s", kinds[i]->name);
	fprintf(out, "\n");
}

int
main(int argc, char **argv)
{
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("clawbox-channel %s\n", CLAWBOX_VERSION);
		return 0;
	}
	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (kinds[i] && strcmp(kinds[i]->name, argv[1]) == 0)
			return chan_main(kinds[i]);
	fprintf(stderr, "clawbox-channel: no channel of kind \"%s\" in this build\n", argv[1]);
	return 2;
}
