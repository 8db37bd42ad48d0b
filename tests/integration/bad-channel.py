#!/usr/bin/env python3
"""bad-channel.py: a channel process that breaks the channel protocol (src/ipc/channel-proto.h)
in one way per kind, for test-channels.sh. The daemon runs it as `clawbox-channel KIND` when
CLAWBOX_CHANNEL_EXE points here, with its socket on fd 3 (SOCK_SEQPACKET, one JSON object a
datagram) and none of the daemon's environment. Each start is appended to the file its config's
"log" names as "NAME start cursor=C pid=P", with every frame the daemon sends as "NAME got TYPE ...", so the
test sees restarts and answers.

Kinds: garbage (not JSON), oversize (a 70 KiB datagram), badref (a receipt for a ref it was never
given), impostor (an approval answer as "cli"), fdlie (an attachment whose descriptor is not the
size it names), hostfile (a descriptor of a host file, /etc/passwd, as an attachment), unknownchat (well-behaved: a message for a chat not configured, then one for a
configured chat twice with one ext_id: dedupe), good (connects and stays).
"""
import array
import fcntl
import json
import os
import socket
import sys
import time

kind = sys.argv[1]
sock = socket.socket(fileno=3)


def memfd(name, data):
    """An attachment as channels make it (chanproto_memfd): a memfd, sealed."""
    fd = os.memfd_create(name, os.MFD_ALLOW_SEALING)
    os.write(fd, data)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
    return fd


def send(obj, fds=None):
    data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    if fds:
        sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        sock.send(data)


def frames(timeout):
    """Frames from the daemon for timeout seconds (each logged); stops at EOF."""
    end = time.time() + timeout
    while time.time() < end:
        sock.settimeout(max(0.05, end - time.time()))
        try:
            data = sock.recv(70000)
        except socket.timeout:
            return
        except OSError:
            sys.exit(0)
        if not data:
            sys.exit(0)
        f = json.loads(data)
        log.write("%s got %s %s\n" % (name, f["t"], json.dumps(f, sort_keys=True)))
        yield f


start = json.loads(sock.recv(70000))
log = open(start["config"]["log"], "a", buffering=1)
name = start["name"]
log.write("%s start cursor=%s pid=%d\n" % (name, start.get("cursor"), os.getpid()))
send({"t": "status", "state": "connected"})
time.sleep(0.3)

if kind == "garbage":
    send(b"this is not json {")
elif kind == "oversize":
    send(b'{"t": "status", "state": "connected", "detail": "' + b"x" * 70000 + b'"}')
elif kind == "badref":
    send({"t": "sent", "ref": 987654, "ext_id": "x"})
elif kind == "impostor":
    send({"t": "approval_answer", "approval": 1, "answer": "approve", "approver": "cli"})
elif kind == "fdlie":
    send({"t": "message", "chat": "c1", "sender": "u1", "text": "see file", "ext_id": "f1",
          "attachments": [{"name": "a.txt", "size": 999}]}, [memfd("lie", b"12345")])
elif kind == "hostfile":
    fd = os.open("/etc/passwd", os.O_RDONLY)
    send({"t": "message", "chat": "c1", "sender": "u1", "text": "see passwd", "ext_id": "p1",
          "attachments": [{"name": "passwd", "size": os.fstat(fd).st_size}]}, [fd])
elif kind == "unknownchat":
    for i in range(30):
        send({"t": "message", "chat": "c9", "sender": "u9", "text": "let me in %d" % i,
              "ext_id": "u%d" % i, "cursor": "cur-u%d" % i})
    msg = {"t": "message", "chat": "c1", "sender": "u1", "sender_name": "ana",
           "text": "hello from a channel", "mention": True, "ext_id": "m1", "cursor": "cur-m1"}
    send(msg)
    send(msg)  # the same ext_id again: a service's redelivery
    send({"t": "message", "chat": "c1", "sender": "u1", "text": "a file for you", "mention": True,
          "ext_id": "m2", "cursor": "cur-m2", "attachments": [{"name": "note.txt", "size": 15}]},
         [memfd("note", b"attached bytes\n")])
for _ in frames(3600):
    pass
