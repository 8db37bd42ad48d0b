#!/usr/bin/env python3
# egress-control.py: the daemon's side of a proxy's control channel (CONTRACTS 1), played by a
# test: a SOCK_SEQPACKET socketpair, one end given to COMMAND (its @FD@ replaced by the fd
# number), every frame the proxy sends logged as one JSON line to LOG. Asks are answered in
# the order they came, as EGRESS_ANSWERS says (comma-separated, one per ask), once
# EGRESS_WAIT_ASKS asks are in (default 1):
#   allow      {"t":"egress_answer","id":N,"verdict":"allow","reason":"by test"}
#   deny       the same with "deny"
#   malformed  a verdict that is not exactly "allow" ("allow ")
#   close      the channel is closed (the proxy must deny what it still holds)
# EGRESS_SETTLE=S: wait S seconds after the first batch is in before answering (so that a
# request past the proxy's cap has been refused by then).
# usage: egress-control.py LOG COMMAND...
import json
import os
import socket
import subprocess
import sys
import time

log_path, cmd = sys.argv[1], sys.argv[2:]
answers = [a for a in os.environ.get("EGRESS_ANSWERS", "").split(",") if a]
wait_asks = int(os.environ.get("EGRESS_WAIT_ASKS", "1"))
settle = float(os.environ.get("EGRESS_SETTLE", "0"))
ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
os.set_inheritable(theirs.fileno(), True)
child = subprocess.Popen([a.replace("@FD@", str(theirs.fileno())) for a in cmd],
                         pass_fds=[theirs.fileno()])
theirs.close()
ours.settimeout(0.2)
asks, log, t0, closed = [], open(log_path, "a"), time.time(), False
while child.poll() is None and time.time() - t0 < 120:
    if closed:
        time.sleep(0.1)
        continue
    try:
        m = ours.recv(65536)
    except socket.timeout:
        m = None
    if m == b"":  # the proxy ended
        closed = True
        continue
    if m:
        log.write(m.decode() + "\n")
        log.flush()
        frame = json.loads(m)
        if frame.get("t") == "egress_ask":
            asks.append(frame["id"])
    if not closed and asks and answers and len(asks) >= wait_asks and settle:
        time.sleep(settle)
        settle = 0
    while not closed and asks and answers and len(asks) >= wait_asks:
        wait_asks = 1  # the first batch is in: from now on, answer as they come
        a, i = answers.pop(0), asks.pop(0)
        if a == "close":
            ours.close()
            closed = True
            break
        verdict = {"allow": "allow", "deny": "deny", "malformed": "allow "}[a]
        reason = "malformed-answer" if a == "malformed" else "by test"
        ours.send(json.dumps({"t": "egress_answer", "id": i, "verdict": verdict,
                              "reason": reason}).encode())
child.wait()
sys.exit(child.returncode)
