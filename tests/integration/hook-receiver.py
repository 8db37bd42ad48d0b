#!/usr/bin/env python3
"""hook-receiver.py: a loopback HTTP server standing in for an automation (Home Assistant,
n8n) that receives the webhook channel's reply callbacks. Every POST is logged to --log as a
JSON line {"path", "delivery", "signature", "sig_ok", "body", "status", "at"}: sig_ok says
whether X-Hub-Signature-256 is "sha256=" and the HMAC-SHA256 of the body under --secret,
computed here with Python's hmac (independently of the channel's code). The first
--fail-first POSTs are answered 500, as a receiver that is briefly down; the rest 200.

usage: hook-receiver.py --secret S --log FILE --port-file FILE [--fail-first N]
"""
import argparse
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
state = {"failed": 0}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n) if n else b""
        want = "sha256=" + hmac.new(args.secret.encode(), raw, hashlib.sha256).hexdigest()
        sig = self.headers.get("X-Hub-Signature-256")
        with lock:
            fail = state["failed"] < args.fail_first
            if fail:
                state["failed"] += 1
        status = 500 if fail else 200
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        rec = {"path": self.path, "delivery": self.headers.get("X-Clawbox-Delivery"),
               "signature": sig, "sig_ok": sig is not None and hmac.compare_digest(sig, want),
               "body": body, "status": status, "at": time.time()}
        with lock:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()
        out = b'{"ok": true}' if status == 200 else b'{"error": "down for a moment"}'
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


p = argparse.ArgumentParser()
p.add_argument("--secret", required=True)
p.add_argument("--log", required=True)
p.add_argument("--port-file", required=True)
p.add_argument("--fail-first", type=int, default=0)
args = p.parse_args()
logf = open(args.log, "a")
srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
srv.serve_forever()
