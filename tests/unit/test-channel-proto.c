/*
 * test-channel-proto.c: the channel protocol (src/ipc/channel-proto.c) over a real
 * SOCK_SEQPACKET socketpair: frames both ways, descriptors with them, and each refusal the
 * daemon relies on (wrong direction, unknown or missing fields, strings past their bound or
 * with a NUL, descriptors not matching the files named, datagrams past the bound), each with
 * a reason; memfds sealed; text cut on a character boundary.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channel-proto.h"
#include "fd-util.h"
#include "json-util.h"
#include "tap.h"

static int sv[2];

/* Sends raw bytes (and fds) from the channel's end; the daemon's end decodes. */
static int
raw(const char *s, const int *fds, size_t n, struct chanproto_frame *f, char *why, size_t size)
{
	if (send_msg(sv[1], s, strlen(s), fds, n) < 0)
		return -999;
	memset(f, 0, sizeof(*f));
	return chanproto_recv(sv[0], CHANPROTO_TO_DAEMON, f, why, size);
}

static void
refused(const char *s, const char *reason)
{
	struct chanproto_frame f;
	char why[256] = "";
	int r = raw(s, NULL, 0, &f, why, sizeof(why));
	ok(r == -EBADMSG && strstr(why, reason), "refused: %.60s (%s)", s, why);
}

int
main(void)
{
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return 1;
	char why[256];
	struct chanproto_frame f;

	/* A message with an attachment, as a channel sends it. */
	int mfd = chanproto_memfd("note.txt", "hello", 5);
	ok(mfd >= 0, "a memfd for an attachment");
	ok(write(mfd, "x", 1) < 0 && errno == EPERM, "which is sealed against writes");
	json_t *m = json_pack("{s:s,s:s,s:s,s:s,s:s,s:[{s:s,s:i}]}", "t", "message", "chat", "42",
	                      "sender", "7", "text", "hi", "ext_id", "e1", "attachments", "name",
	                      "note.txt", "size", 5);
	ok(chanproto_send(sv[1], CHANPROTO_TO_DAEMON, m, &mfd, 1, why, sizeof(why)) == 0,
	   "a message with one file is sent");
	ok(chanproto_recv(sv[0], CHANPROTO_TO_DAEMON, &f, why, sizeof(why)) == 0 &&
	       f.type == CHANPROTO_MESSAGE && f.n_fds == 1,
	   "and received with its descriptor");
	char buf[8] = "";
	ok(f.n_fds == 1 && pread(f.fds[0], buf, sizeof(buf), 0) == 5 &&
	       memcmp(buf, "hello", 5) == 0,
	   "which reads as the file");
	ok(f.n_fds == 1 && (fcntl(f.fds[0], F_GETFD) & FD_CLOEXEC), "received close-on-exec");
	chanproto_frame_done(&f);
	ok(chanproto_send(sv[1], CHANPROTO_TO_DAEMON, m, NULL, 0, why, sizeof(why)) == -EBADMSG &&
	       strstr(why, "1 file named, 0 descriptors sent"),
	   "a sender is held to the rows too (%s)", why);
	json_decref(m);
	close(mfd);

	/* The daemon's refusals. */
	refused("{\"t\":\"start\",\"name\":\"x\",\"config\":{},\"cursor\":null,\"chats\":{}}",
	        "goes the other way");
	refused("{\"t\":\"nosuch\"}", "unknown frame type");
	refused("[1,2]", "a frame is a JSON object");
	refused("{\"t\":\"status\",\"state\":\"connected\",\"extra\":1}",
	        "unknown field \"extra\"");
	refused("{\"t\":\"status\",\"state\":\"happy\"}", "state: not one of the words");
	refused("{\"t\":\"sent\",\"ref\":-1,\"ext_id\":\"x\"}",
	        "ref: expected a non-negative integer");
	refused("{\"t\":\"sent\",\"ref\":1}", "\"ext_id\" is missing");
	refused("{\"t\":\"message\",\"chat\":\"1\",\"sender\":\"2\",\"text\":\"a\\u0000b\",\"ext_"
	        "id\":\"e\"}",
	        "text: holds a NUL");
	refused("{\"t\":\"status\",\"state\":\"connected\",\"state\":\"error\"}", "not JSON");
	refused("{\"t\":\"approval_answer\",\"approval\":1,\"answer\":\"always\",\"approver\":"
	        "\"telegram:1\"}",
	        "answer: not one of the words");
	refused(
	    "{\"t\":\"message\",\"chat\":\"1\",\"sender\":\"2\",\"text\":\"t\",\"ext_id\":\"e\","
	    "\"attachments\":[{\"name\":\"../x\",\"size\":1}]}",
	    "expected a file name");
	refused(
	    "{\"t\":\"message\",\"chat\":\"1\",\"sender\":\"2\",\"text\":\"t\",\"ext_id\":\"e\","
	    "\"attachments\":[{\"name\":\"x\",\"size\":99999999999}]}",
	    "size: expected 0 to");
	char id[CHANPROTO_ID_MAX + 64];
	memset(id, 'a', sizeof(id));
	id[sizeof(id) - 1] = '\0';
	char big[CHANPROTO_ID_MAX + 200];
	snprintf(big, sizeof(big), "{\"t\":\"sent\",\"ref\":1,\"ext_id\":\"%s\"}", id);
	refused(big, "ext_id: longer than 256 bytes");

	/* Descriptors that no file names: refused, and closed. */
	int pfd[2];
	if (pipe(pfd) < 0)
		return 1;
	char w[256] = "";
	int r = raw("{\"t\":\"status\",\"state\":\"connected\"}", &pfd[0], 1, &f, w, sizeof(w));
	ok(r == -EBADMSG && strstr(w, "0 files named, 1 descriptor sent"),
	   "a descriptor no file names is refused (%s)", w);
	close(pfd[0]);
	/* With our read end closed, a write finds no reader only if the copy that came over
	 * the socket was closed too. */
	signal(SIGPIPE, SIG_IGN);
	ok(write(pfd[1], "x", 1) < 0 && errno == EPIPE, "and the descriptor that came is closed");
	close(pfd[1]);

	/* Past the bound: a datagram of 70 KiB. */
	size_t n = 70 * 1024;
	char *huge = malloc(n + 1);
	memset(huge, ' ', n);
	memcpy(huge, "{\"t\":\"status\",\"state\":\"connected\"", 34);
	huge[n - 1] = '}';
	huge[n] = '\0';
	ok(send_msg(sv[1], huge, n, NULL, 0) == 0, "a 70 KiB datagram can be sent");
	memset(&f, 0, sizeof(f));
	w[0] = '\0';
	r = chanproto_recv(sv[0], CHANPROTO_TO_DAEMON, &f, w, sizeof(w));
	ok(r == -EMSGSIZE && w[0], "and is refused as too long (%s)", w);
	ok(chanproto_decode(huge, n, CHANPROTO_TO_DAEMON, 0, &m, &f.type, w, sizeof(w)) ==
	       -EMSGSIZE,
	   "the decoder alone refuses it too");
	free(huge);

	/* The other way: what the daemon sends is checked before it goes. */
	json_t *rep = json_pack("{s:s,s:I,s:s,s:s}", "t", "reply", "ref", (json_int_t)7, "chat",
	                        "42", "text", "hello");
	ok(chanproto_send(sv[0], CHANPROTO_TO_CHANNEL, rep, NULL, 0, why, sizeof(why)) == 0 &&
	       chanproto_recv(sv[1], CHANPROTO_TO_CHANNEL, &f, why, sizeof(why)) == 0 &&
	       f.type == CHANPROTO_REPLY && json_get_u64(f.j, "ref") == 7,
	   "a reply reaches the channel");
	chanproto_frame_done(&f);
	json_decref(rep);
	close(sv[1]);
	ok(chanproto_recv(sv[0], CHANPROTO_TO_DAEMON, &f, why, sizeof(why)) == -EPIPE,
	   "a closed peer is -EPIPE");
	close(sv[0]);

	const char *u = "a\xc3\xa9"; /* "aé": 3 bytes */
	ok(chanproto_cut(u, 3, 2) == 1 && chanproto_cut(u, 3, 3) == 3 &&
	       chanproto_cut(u, 3, 9) == 3,
	   "text is cut on a character boundary");
	ok(strcmp(chanproto_name(CHANPROTO_APPROVAL_ANSWER), "approval_answer") == 0 &&
	       strcmp(chanproto_name(CHANPROTO_N_TYPES), "?") == 0,
	   "types have their wire names");
	return tap_done();
}
