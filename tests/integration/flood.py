#!/usr/bin/env python3
# flood.py PORT COUNT SECONDS [SOURCE]: opens up to COUNT idle TCP connections to 127.0.0.1:PORT
# (from SOURCE, a loopback address, if given), sending nothing, for at most SECONDS; prints
# how many it opened, then closes them all. Bounded in count and in time; loopback only.
import socket
import sys
import time

port, count, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
source = sys.argv[4] if len(sys.argv) > 4 else None
end = time.monotonic() + seconds
held = []
opened = 0
while opened < count and time.monotonic() < end:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.5)
    try:
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        held.append(s)
        opened += 1
    except OSError:
        s.close()
        time.sleep(0.01)
# Hold them until the time is up: the daemon must keep answering others meanwhile.
while time.monotonic() < end:
    time.sleep(0.05)
print(opened, flush=True)
for s in held:
    s.close()
