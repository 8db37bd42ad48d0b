#!/usr/bin/env python3
"""fake-matrix.py: the Matrix client-server API as clawbox's Matrix channel uses it, on
loopback, for tests (Python 3 stdlib only).

  GET  /_matrix/client/v3/account/whoami
  GET  /_matrix/client/v3/sync?since=&timeout=&filter=     long polling, since tokens "sN"
  PUT  /_matrix/client/v3/rooms/ROOM/send/m.room.message/TXN  idempotent per (room, txn)
  PUT  /_matrix/client/v3/rooms/ROOM/typing/USER
  POST /_matrix/client/v3/join/ROOM, /_matrix/client/v3/rooms/ROOM/leave
  GET  /_matrix/client/v1/media/download/SERVER/ID, POST /_matrix/media/v3/upload

A stream of positions: each event or invite the test adds (POST /_test/event, /_test/invite)
takes the next one, and so does each message a client sends (real servers echo our own
messages back in /sync). /sync with since sN answers everything after N at once, or waits up
to timeout ms for something to come; without since (an initial sync) it answers the last
event of each room only, as a timeline limit of 1 would. A duplicate event (the same event_id
again) is served again, as a server may after a gappy sync.

POST /_test/ratelimit {"match": "send", "count": N, "retry_after_ms": MS}: the next N requests
whose path contains match get 429 M_LIMIT_EXCEEDED. POST /_test/media {"id", "data"} stores a
file for mxc://test/ID. Every request is logged to --log as a JSON line {"method", "path",
"query", "body", "status", "answer", "at"}; the wrong token gets 401 M_UNKNOWN_TOKEN.

usage: fake-matrix.py --token T --log FILE --port-file FILE [--user @claw:test]
"""
import argparse
import json
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Condition()
stream = []  # (pos, kind, room, dict)
txns = {}  # (room, txn) -> event_id
media = {}
limits = []  # [match, count, retry_after_ms]
next_event = [0]
args = None
logf = None


def add(kind, room, ev):
    with lock:
        stream.append((len(stream) + 1, kind, room, ev))
        lock.notify_all()


def event_id():
    next_event[0] += 1
    return "$ev%d:test" % next_event[0]


def sync_body(since):
    rooms = {"join": {}, "invite": {}, "leave": {}}
    if since is None:  # initial: the last event of each room
        last = {}
        for pos, kind, room, ev in stream:
            last[(kind, room)] = (pos, kind, room, ev)
        items = sorted(last.values())
    else:
        items = [s for s in stream if s[0] > since]
    for pos, kind, room, ev in items:
        if kind == "event":
            r = rooms["join"].setdefault(room, {"timeline": {"events": [], "limited": False}})
            r["timeline"]["events"].append(ev)
        else:
            rooms["invite"][room] = {"invite_state": {"events": [ev]}}
    return {"next_batch": "s%d" % len(stream), "rooms": rooms}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def answer(self, status, obj, raw=None, ctype="application/json"):
        data = raw if raw is not None else json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        u = urllib.parse.urlsplit(self.path)
        body = self.body
        try:
            body = json.loads(body) if body else None
        except ValueError:
            body = body.decode(errors="replace")
        rec = {"method": self.command, "path": urllib.parse.unquote(u.path),
               "query": dict(urllib.parse.parse_qsl(u.query)), "body": body,
               "status": status, "answer": obj, "at": time.time()}
        with lock:
            logf.write(json.dumps(rec) + "\n")
            logf.flush()

    def handle_any(self):
        n = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(n) if n else b""
        u = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(u.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        if path.startswith("/_test/"):
            return self.control(path, json.loads(self.body or b"{}"))
        if self.headers.get("Authorization") != "Bearer " + args.token:
            return self.answer(401, {"errcode": "M_UNKNOWN_TOKEN", "error": "Invalid token"})
        with lock:
            for lim in limits:
                if lim[0] in path and lim[1] > 0:
                    lim[1] -= 1
                    return self.answer(429, {"errcode": "M_LIMIT_EXCEEDED",
                                             "error": "Too Many Requests",
                                             "retry_after_ms": lim[2]})
        parts = path.split("/")
        if path == "/_matrix/client/v3/account/whoami":
            return self.answer(200, {"user_id": args.user, "device_id": "FAKE"})
        if path == "/_matrix/client/v3/sync" and self.command == "GET":
            since = q.get("since")
            try:
                filt = json.loads(q.get("filter", "{}"))
            except ValueError:
                return self.answer(400, {"errcode": "M_BAD_JSON", "error": "bad filter"})
            if not isinstance(filt, dict):
                return self.answer(400, {"errcode": "M_BAD_JSON", "error": "bad filter"})
            pos = None
            if since is not None:
                if not since.startswith("s") or not since[1:].isdigit():
                    return self.answer(400, {"errcode": "M_INVALID_PARAM", "error": "since"})
                pos = int(since[1:])
            deadline = time.time() + int(q.get("timeout", "0")) / 1000.0
            with lock:
                while pos is not None and len(stream) <= pos and time.time() < deadline:
                    lock.wait(max(0.0, deadline - time.time()))
                body = sync_body(pos)
            return self.answer(200, body)
        if (len(parts) == 9 and parts[4] == "rooms" and parts[6] == "send"
                and self.command == "PUT"):
            room, txn = parts[5], parts[8]
            try:
                content = json.loads(self.body)
            except ValueError:
                return self.answer(400, {"errcode": "M_NOT_JSON", "error": "not JSON"})
            with lock:
                if (room, txn) in txns:
                    return self.answer(200, {"event_id": txns[(room, txn)]})
                eid = event_id()
                txns[(room, txn)] = eid
            add("event", room, {"type": parts[7], "event_id": eid, "sender": args.user,
                                "origin_server_ts": int(time.time() * 1000),
                                "content": content})
            return self.answer(200, {"event_id": eid})
        if len(parts) == 8 and parts[4] == "rooms" and parts[6] == "typing":
            return self.answer(200, {})
        if len(parts) == 6 and parts[4] == "join" and self.command == "POST":
            return self.answer(200, {"room_id": parts[5]})
        if len(parts) == 7 and parts[4] == "rooms" and parts[6] == "leave":
            return self.answer(200, {})
        if path == "/_matrix/media/v3/upload" and self.command == "POST":
            with lock:
                mid = "up%d" % (len(media) + 1)
                media[mid] = self.body
            return self.answer(200, {"content_uri": "mxc://test/" + mid})
        if path.startswith("/_matrix/client/v1/media/download/") and len(parts) == 8:
            data = media.get(parts[7])
            if data is None:
                return self.answer(404, {"errcode": "M_NOT_FOUND", "error": "no such media"})
            return self.answer(200, None, raw=data, ctype="application/octet-stream")
        return self.answer(404, {"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})

    def control(self, path, req):
        if path == "/_test/event":
            content = req.get("content") or {"msgtype": "m.text", "body": req["body"]}
            ev = {"type": "m.room.message", "sender": req["sender"],
                  "event_id": req.get("event_id") or event_id(),
                  "origin_server_ts": int(time.time() * 1000), "content": content}
            add("event", req["room"], ev)
            return self.answer(200, {"event_id": ev["event_id"]})
        if path == "/_test/invite":
            add("invite", req["room"], {"type": "m.room.member", "state_key": args.user,
                                        "sender": req["sender"],
                                        "content": {"membership": "invite"}})
            return self.answer(200, {})
        if path == "/_test/ratelimit":
            with lock:
                limits.append([req["match"], req["count"], req["retry_after_ms"]])
            return self.answer(200, {})
        if path == "/_test/media":
            media[req["id"]] = req["data"].encode()
            return self.answer(200, {"content_uri": "mxc://test/" + req["id"]})
        return self.answer(404, {})

    do_GET = do_PUT = do_POST = handle_any


def main():
    global args, logf
    p = argparse.ArgumentParser()
    p.add_argument("--token", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--port-file", required=True)
    p.add_argument("--user", default="@claw:test")
    args = p.parse_args()
    logf = open(args.log, "a")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(args.port_file + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()


if __name__ == "__main__":
    main()
