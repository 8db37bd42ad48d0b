#!/usr/bin/env python3
"""chan-driver.py: plays the daemon's side of the channel protocol (src/ipc/channel-proto.h)
for one `clawbox-channel KIND`, so a channel can be tested against its real service without
the rest of clawbox. It starts the channel with its socket on fd 3, sends the start frame,
writes every frame the channel sends to --log (one JSON object a line), answers each
"message" with "stored" (as the daemon does once it has stored it), and sends on whatever
JSON frames appear as lines of --commands (a file it follows, as tail -f does).
With --files DIR, the files that come with a frame are saved there as N-NAME (N counting
from 1, NAME the frame's attachment name); a command with "_file": PATH is sent with PATH's
bytes as a sealed memfd (as the daemon sends send_file's file), "_file" left out.
It exits when the channel does, with the channel's status.
"""
import argparse, fcntl, json, os, signal, socket, subprocess, sys, time, select

ap = argparse.ArgumentParser()
ap.add_argument("--channel", required=True)
ap.add_argument("--kind", required=True)
ap.add_argument("--name", default=None)
ap.add_argument("--config", required=True, help="the channel's config, a JSON file")
ap.add_argument("--cursor", default=None)
ap.add_argument("--chats", default="{}")
ap.add_argument("--log", required=True)
ap.add_argument("--commands", required=True)
ap.add_argument("--stderr", required=True)
ap.add_argument("--timestamps", action="store_true",
                help='add "at_ms" (the wall clock when it came) to each frame logged')
ap.add_argument("--files", default=None, help="a directory for the files that come")
a = ap.parse_args()
n_files = 0

ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
def at_fd3():
    os.dup2(theirs.fileno(), 3)
err = open(a.stderr, "ab")
# Python's own descriptors are close-on-exec: only fd 3 (dup2 makes it inheritable) passes.
p = subprocess.Popen([a.channel, a.kind], preexec_fn=at_fd3, close_fds=False,
                     stdin=subprocess.DEVNULL, stdout=err, stderr=err)
theirs.close()
def stop(*_):
    # As the daemon stops a channel: it closes the socket, and the channel leaves cleanly.
    ours.close()
    try:
        p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.kill()
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
with open(a.config) as f:
    config = json.load(f)
ours.send(json.dumps({"t": "start", "name": a.name or a.kind, "config": config,
                      "cursor": a.cursor, "chats": json.loads(a.chats)}).encode())
log = open(a.log, "a", buffering=1)
cmds = open(a.commands, "a+")
cmds.seek(0)
while True:
    r, _, _ = select.select([ours], [], [], 0.01)
    if r:
        try:
            data, fds, _, _ = socket.recv_fds(ours, 65536, 4)
        except OSError:
            data = b""
        if not data:
            break
        frame = json.loads(data)
        for i, fd in enumerate(fds):
            if a.files:
                n_files += 1
                atts = frame.get("attachments") or [{}]
                name = os.path.basename(atts[min(i, len(atts) - 1)].get("name", "file"))
                with open(os.path.join(a.files, "%d-%s" % (n_files, name)), "wb") as out:
                    out.write(os.pread(fd, 1 << 26, 0))
            os.close(fd)
        if a.timestamps:
            frame["at_ms"] = int(time.time() * 1000)
        log.write(json.dumps(frame) + "\n")
        if frame.get("t") == "message":
            ours.send(json.dumps({"t": "stored", "ext_id": frame["ext_id"]}).encode())
    line = cmds.readline()
    while line:
        if line.strip() and '"_file"' in line:
            cmd = json.loads(line)
            with open(cmd.pop("_file"), "rb") as f:
                content = f.read()
            mfd = os.memfd_create("file", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
            os.write(mfd, content)
            fcntl.fcntl(mfd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW |
                        fcntl.F_SEAL_WRITE | fcntl.F_SEAL_SEAL)
            socket.send_fds(ours, [json.dumps(cmd).encode()], [mfd])
            os.close(mfd)
        elif line.strip():
            ours.send(line.strip().encode())
        line = cmds.readline()
    if p.poll() is not None:
        break
ours.close()
sys.exit(p.wait())
