#!/usr/bin/python3
# fake-slack.py: a fake Slack for test-slack.sh, speaking the published protocols: the Web
# API (POST https://HOST/api/METHOD, JSON bodies, "Authorization: Bearer" tokens, {"ok":...}
# answers, 429 with Retry-After) and Socket Mode (apps.connections.open hands out a wss URL;
# the socket says "hello", delivers "events_api" envelopes, expects {"envelope_id"} acks,
# redelivers unacked envelopes on the next connection with retry_attempt + 1, and says
# "disconnect" when asked). The test drives it by POST /_test/NAME:
#   event {"event": {...}}      deliver an events_api envelope (a new envelope_id)
#   disconnect {}               a "disconnect" envelope (refresh_requested)
#   drop {}                     drop the socket without a close
#   ratelimit {"n": N}          the next N chat.postMessage/chat.update answer 429
#   drop_on_update {"n": N}     drop the socket when the Nth chat.update arrives
#   press {"user", "channel", "action_id"}   a block_actions press of a button (interactive)
#   big {"size": N}             a text message of N bytes (past the client's bound: it must
#                               close with 1009 and come back, not crash)
#   file {"name", "b64"}        serve those bytes at /files/NAME (url_private_download, with
#                               the bot token); uploads (files.getUploadURLExternal, a POST
#                               of the bytes, files.completeUploadExternal) log "file_shared"
#                               with the bytes' sha256
#   ws_host {"host": H}         hand out wss URLs naming host H (a name the certificate
#                               does not have: the client must refuse it)
# Everything received is logged (fakesvc.py).
import argparse
import base64
import hashlib
import asyncio
import itertools
import json
import urllib.parse

from fakesvc import Fake, common_args


class Slack(Fake):
    def __init__(self, args):
        super().__init__(args)
        self.ws = None  # the current connection
        self.unacked = {}  # envelope_id -> envelope
        self.ids = itertools.count(1)
        self.ts = itertools.count(1)
        self.limit = 0
        self.drop_at = 0
        self.updates = 0
        self.ws_host = "127.0.0.1"
        self.files = {}  # name -> bytes, served at /files/NAME (with the bot token)
        self.uploads = {}  # file_id -> what getUploadURLExternal and the upload said

    def rest(self, method, path, headers, body):
        body = body or {}
        name = path.rsplit("/", 1)[-1]
        auth = headers.get("Authorization", "")
        raw = body.pop("_bytes", None)
        self.log("api", method=name, body=body, auth_ok=None)
        if path.startswith("/upload/v1/") and method == "POST":  # the pre-signed upload URL
            up = self.uploads.get(name)
            if up is None or raw is None or len(raw) != up["length"]:
                return 400, {}, {"error": "bad upload"}
            up["sha256"] = hashlib.sha256(raw).hexdigest()
            up["size"] = len(raw)
            up["token_sent"] = bool(auth)
            return 200, {}, b"OK - %d" % len(raw)
        if name == "apps.connections.open":
            if auth != "Bearer " + self.args.app_token:
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            ticket = next(self.ids)
            return 200, {}, {"ok": True, "url": f"wss://{self.ws_host}:{self.ws_port}/link/?ticket={ticket}"}
        if auth != "Bearer " + self.args.bot_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        if path.startswith("/files/") and method == "GET":  # url_private_download
            data = self.files.get(path[len("/files/"):])
            self.log("download", path=path, found=data is not None)
            return (200, {}, data) if data is not None else (404, {}, {"error": "no such file"})
        if name == "files.getUploadURLExternal":
            form = urllib.parse.parse_qs(body.get("_raw", ""))
            fid = f"F{next(self.ids)}"
            self.uploads[fid] = {"filename": form.get("filename", [""])[0],
                                 "length": int(form.get("length", ["-1"])[0])}
            return 200, {}, {"ok": True, "file_id": fid,
                             "upload_url": f"https://127.0.0.1:{self.api_port}/upload/v1/{fid}"}
        if name == "files.completeUploadExternal":
            files = body.get("files") or []
            up = self.uploads.get(files[0].get("id")) if files else None
            if not up or "sha256" not in up:
                return 200, {}, {"ok": False, "error": "file_not_found"}
            self.log("file_shared", channel=body.get("channel_id"), thread_ts=body.get("thread_ts"),
                     comment=body.get("initial_comment"), title=files[0].get("title"), **up)
            return 200, {}, {"ok": True, "files": [{"id": files[0]["id"], "title": files[0].get("title")}]}
        if name == "auth.test":
            return 200, {}, {"ok": True, "user_id": "UBOT", "bot_id": "BBOT", "team_id": "T1"}
        if name == "chat.postEphemeral":
            self.log("ephemeral", channel=body.get("channel"), user=body.get("user"),
                     text=body.get("text"))
            return 200, {}, {"ok": True, "message_ts": "1.1"}
        if name in ("chat.postMessage", "chat.update"):
            with self.lock:
                limited = self.limit > 0
                if limited:
                    self.limit -= 1
            if limited:
                self.log("429", method=name)
                return 429, {"Retry-After": "1"}, {"ok": False, "error": "ratelimited"}
            if not body.get("channel") or not body.get("text"):
                return 200, {}, {"ok": False, "error": "no_text"}
            if name == "chat.update":
                with self.lock:
                    self.updates += 1
                    drop = self.drop_at and self.updates == self.drop_at
                if drop:
                    self.log("drop", why="mid-reply")
                    self.on_loop(self.drop())
                return 200, {}, {"ok": True, "channel": body["channel"], "ts": body.get("ts"), "text": body["text"]}
            ts = f"{1700000000 + next(self.ts)}.000100"
            self.log("posted", channel=body["channel"], ts=ts, text=body["text"],
                     thread_ts=body.get("thread_ts"), blocks=body.get("blocks"))
            return 200, {}, {"ok": True, "channel": body["channel"], "ts": ts}
        return 200, {}, {"ok": False, "error": "unknown_method"}

    async def send_envelope(self, env):
        if self.ws is not None:
            await self.ws.send(json.dumps(env))

    async def drop(self):
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None

    def control(self, name, body):
        if name == "event":
            eid = f"env-{next(self.ids)}"
            env = {"envelope_id": eid, "type": "events_api", "accepts_response_payload": False,
                   "retry_attempt": 0, "retry_reason": "",
                   "payload": {"token": "x", "team_id": "T1", "api_app_id": "A1",
                               "type": "event_callback", "event_id": "Ev" + eid,
                               "event_time": 1700000000, "event": body["event"]}}
            with self.lock:
                self.unacked[eid] = env
            self.on_loop(self.send_envelope(env))
            return {"envelope_id": eid}
        if name == "press":
            eid = f"env-{next(self.ids)}"
            env = {"envelope_id": eid, "type": "interactive", "accepts_response_payload": False,
                   "payload": {"type": "block_actions", "user": {"id": body["user"]},
                               "channel": {"id": body["channel"]}, "trigger_id": "tr1",
                               "response_url": "https://127.0.0.1/unused",
                               "actions": [{"type": "button", "action_id": body["action_id"],
                                            "value": body["action_id"]}]}}
            with self.lock:
                self.unacked[eid] = env
            self.on_loop(self.send_envelope(env))
            return {"envelope_id": eid}
        if name == "disconnect":
            self.on_loop(self.send_envelope({"type": "disconnect", "reason": "refresh_requested",
                                             "debug_info": {"host": "fake"}}))
        elif name == "drop":
            self.on_loop(self.drop())
        elif name == "ratelimit":
            with self.lock:
                self.limit = int(body.get("n", 1))
        elif name == "big":
            filler = "x" * int(body["size"])
            self.on_loop(self.send_envelope({"type": "events_api", "envelope_id": "big",
                                             "payload": {"pad": filler}}))
        elif name == "file":
            self.files[body["name"]] = base64.b64decode(body["b64"])
        elif name == "ws_host":
            self.ws_host = body["host"]
        elif name == "drop_on_update":
            with self.lock:
                self.drop_at = self.updates + int(body.get("n", 1))
        else:
            raise ValueError("no such control: " + name)
        return None

    async def socket(self, ws, path):
        if "ticket=" not in path:
            await ws.close(1008, "no ticket")
            return
        self.log("connect", path=path)
        self.ws = ws
        await ws.send(json.dumps({"type": "hello", "num_connections": 1,
                                  "debug_info": {"host": "fake"},
                                  "connection_info": {"app_id": "A1"}}))
        with self.lock:
            again = list(self.unacked.values())
        for env in again:  # what the last connection did not ack comes again
            env["retry_attempt"] += 1
            env["retry_reason"] = "timeout"
            await ws.send(json.dumps(env))
        try:
            async for msg in ws:
                try:
                    m = json.loads(msg)
                except ValueError:
                    self.log("bad_frame", text=msg[:200])
                    continue
                eid = m.get("envelope_id")
                with self.lock:
                    known = self.unacked.pop(eid, None) is not None
                self.log("ack", envelope_id=eid, known=known)
        except Exception:
            pass
        if self.ws is ws:
            self.ws = None
        self.log("disconnected", path=path, code=ws.close_code)


def main():
    p = common_args(argparse.ArgumentParser())
    p.add_argument("--app-token", required=True)
    p.add_argument("--bot-token", required=True)
    Slack(p.parse_args()).serve()


main()
