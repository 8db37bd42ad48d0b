#!/usr/bin/python3
# fake-discord.py: a fake Discord for test-discord.sh, speaking the published protocols: the
# REST API (GET /api/v10/gateway/bot, POST/PATCH /channels/ID/messages[/ID], POST
# /channels/ID/typing; "Authorization: Bot TOKEN"; 429 with a JSON retry_after) and the
# Gateway (HELLO with a heartbeat_interval, heartbeats answered by ACKs, IDENTIFY -> READY
# with session_id and resume_gateway_url, numbered dispatches, RESUME replaying what came
# after the client's seq then RESUMED, RECONNECT, INVALID_SESSION). The test drives it by
# POST /_test/NAME:
#   message {"channel_id", "content", "author": {...}, "guild_id"?, "mentions"?,
#            "attachments"?: [{"id", "filename", "size", "url", "content_type"}]}
#   file {"id", "data_b64"}  a file on the CDN, served at GET /cdn/ID (no token asked)
#   drop {}                 drop the socket without a close
#   reconnect {}            send op 7
#   invalid_session {"resumable": bool}
#   noack {"n": N}          leave the next N heartbeats unanswered (a zombie connection)
#   ratelimit {"n": N}      the next N message POST/PATCHes answer 429
#   press {"user", "channel_id", "guild_id"?, "custom_id"}   a button's INTERACTION_CREATE
#                           (answered by POST /interactions/ID/TOKEN/callback, followed up
#                           by POST /webhooks/APP/TOKEN)
# A message POST may be multipart/form-data (payload_json + files[N], as Discord takes a file):
# its "posted" line then carries the file's name, type and bytes (base64).
# Everything received is logged (fakesvc.py).
import argparse
import base64
import email.parser
import email.policy
import itertools
import json
import re

from fakesvc import Fake, common_args


class Discord(Fake):
    def __init__(self, args):
        super().__init__(args)
        self.ws = None
        self.sessions = {}  # session_id -> list of (seq, payload) sent in it
        self.session = None
        self.ids = itertools.count(900000000000000001)
        self.sess_ids = itertools.count(1)
        self.limit = 0
        self.noack = 0
        self.nonces = {}  # (channel, nonce) -> message id
        self.interactions = {}  # id -> token
        self.files = {}  # CDN id -> bytes

    def multipart(self, body):
        """payload_json's JSON and the files of a multipart/form-data body."""
        raw = body["_multipart"].encode("latin-1")
        msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
            b"Content-Type: " + body["_type"].encode() + b"\r\n\r\n" + raw)
        payload, files = {}, []
        for part in msg.iter_parts():
            name = part.get_param("name", header="content-disposition")
            data = part.get_payload(decode=True) or b""
            if name == "payload_json":
                payload = json.loads(data)
            elif name and name.startswith("files["):
                files.append({"field": name, "filename": part.get_filename(),
                              "type": part.get_content_type(),
                              "b64": base64.b64encode(data).decode()})
        return payload, files

    def rest(self, method, path, headers, body):
        auth = headers.get("Authorization", "")
        files = None
        if isinstance(body, dict) and "_multipart" in body:
            body, files = self.multipart(body)
        self.log("api", method=method, path=path, body=body, files=files)
        cdn = re.fullmatch(r"/cdn/(\w+)/([^/]+)", path)
        if cdn:  # signed URLs: no token wanted (one sent is a leak, logged)
            data = self.files.get(cdn.group(1))
            self.log("cdn", id=cdn.group(1), auth=bool(auth), found=data is not None)
            return (200, {}, data) if data is not None else (404, {}, {"message": "404: Not Found"})
        if auth != "Bot " + self.args.token and "/interactions/" not in path and "/webhooks/" not in path:
            return 401, {}, {"message": "401: Unauthorized", "code": 0}
        if path == "/api/v10/gateway/bot":
            return 200, {}, {"url": f"wss://127.0.0.1:{self.ws_port}", "shards": 1,
                             "session_start_limit": {"total": 1000, "remaining": 999,
                                                     "reset_after": 0, "max_concurrency": 1}}
        cb = re.fullmatch(r"/api/v10/interactions/(\d+)/([\w.-]+)/callback", path)
        if cb:  # no bot token here: the interaction's token is the credential
            ok = self.interactions.get(cb.group(1)) == cb.group(2)
            self.log("interaction_callback", id=cb.group(1), ok=ok, type=(body or {}).get("type"))
            return (204, {}, None) if ok else (404, {}, {"message": "Unknown interaction"})
        wh = re.fullmatch(r"/api/v10/webhooks/(\d+)/([\w.-]+)", path)
        if wh:
            ok = wh.group(2) in self.interactions.values()
            self.log("followup", app=wh.group(1), ok=ok, content=(body or {}).get("content"),
                     flags=(body or {}).get("flags"))
            return (200, {}, {"id": str(next(self.ids))}) if ok else (404, {}, {"message": "Unknown Webhook"})
        m = re.fullmatch(r"/api/v10/channels/(\d+)/(messages|typing)(?:/(\d+))?", path)
        if not m:
            return 404, {}, {"message": "404: Not Found", "code": 0}
        chan, what, mid = m.groups()
        if what == "typing":
            self.log("typing", channel=chan)
            return 204, {}, None
        with self.lock:
            limited = self.limit > 0
            if limited:
                self.limit -= 1
        if limited:
            self.log("429", method=method)
            return 429, {"Retry-After": "1"}, {"message": "You are being rate limited.",
                                                "retry_after": 0.7, "global": False}
        content = (body or {}).get("content", "")
        if (not content and not files) or len(content) > 2000:
            return 400, {}, {"message": "Invalid Form Body", "code": 50035}
        if method == "PATCH" and mid:
            self.log("edited", channel=chan, id=mid, content=content)
            return 200, {}, {"id": mid, "channel_id": chan, "content": content}
        if method == "POST" and not mid:
            nonce = (body or {}).get("nonce")
            if nonce and (body or {}).get("enforce_nonce"):
                with self.lock:
                    seen = self.nonces.get((chan, nonce))
                if seen:  # Discord returns the message that nonce made, makes none
                    self.log("nonce_seen", channel=chan, nonce=nonce, id=seen)
                    return 200, {}, {"id": seen, "channel_id": chan, "content": content}
            new = str(next(self.ids))
            if nonce:
                with self.lock:
                    self.nonces[(chan, nonce)] = new
            self.log("posted", channel=chan, id=new, content=content,
                     reference=(body or {}).get("message_reference"),
                     components=(body or {}).get("components"), files=files,
                     attachments=(body or {}).get("attachments"))
            return 200, {}, {"id": new, "channel_id": chan, "content": content}
        return 405, {}, {"message": "405: Method Not Allowed", "code": 0}

    async def dispatch(self, t, d):
        """Numbers and sends a dispatch in the current session (kept for RESUME)."""
        if self.session is None:
            return
        events = self.sessions[self.session]
        seq = len(events) + 1
        payload = {"op": 0, "t": t, "s": seq, "d": d}
        events.append(payload)
        if self.ws is not None:
            await self.ws.send(json.dumps(payload))

    async def drop(self):
        if self.ws is not None:
            self.ws.transport.abort()
            self.ws = None

    async def send(self, obj):
        if self.ws is not None:
            await self.ws.send(json.dumps(obj))

    def control(self, name, body):
        if name == "message":
            d = {"id": str(next(self.ids)), "type": 0, "tts": False, "mentions": [],
                 "attachments": [], "embeds": [], "timestamp": "2026-12-03T11:00:00+00:00",
                 **body}
            self.on_loop(self.dispatch("MESSAGE_CREATE", d))
            return {"id": d["id"]}
        if name == "file":
            self.files[body["id"]] = base64.b64decode(body["data_b64"])
            return None
        if name == "press":
            iid, token = str(next(self.ids)), f"itok-{next(self.sess_ids)}.x_y-z"
            self.interactions[iid] = token
            d = {"id": iid, "application_id": "1", "type": 3, "token": token, "version": 1,
                 "channel_id": body["channel_id"], "data": {"custom_id": body["custom_id"],
                                                            "component_type": 2}}
            if body.get("guild_id"):
                d["guild_id"] = body["guild_id"]
                d["member"] = {"user": {"id": body["user"], "username": "u"}}
            else:
                d["user"] = {"id": body["user"], "username": "u"}
            self.on_loop(self.dispatch("INTERACTION_CREATE", d))
            return {"id": iid}
        if name == "drop":
            self.on_loop(self.drop())
        elif name == "reconnect":
            self.on_loop(self.send({"op": 7, "d": None}))
        elif name == "invalid_session":
            self.on_loop(self.send({"op": 9, "d": bool(body.get("resumable"))}))
        elif name == "noack":
            self.noack = int(body.get("n", 1))
        elif name == "ratelimit":
            with self.lock:
                self.limit = int(body.get("n", 1))
        else:
            raise ValueError("no such control: " + name)
        return None

    async def socket(self, ws, path):
        if "v=10" not in path or "encoding=json" not in path:
            await ws.close(4012, "Invalid API version")
            return
        self.log("connect", path=path)
        self.ws = ws
        await ws.send(json.dumps({"op": 10, "d": {"heartbeat_interval": self.args.heartbeat_ms}}))
        try:
            async for msg in ws:
                p = json.loads(msg)
                op, d = p.get("op"), p.get("d")
                if op == 1:
                    self.log("heartbeat", seq=d)
                    if self.noack > 0:
                        self.noack -= 1
                        continue
                    await ws.send(json.dumps({"op": 11}))
                elif op == 2:
                    ok = d.get("token") == self.args.token
                    self.log("identify", intents=d.get("intents"), token_ok=ok)
                    if not ok:
                        await ws.close(4004, "Authentication failed.")
                        return
                    self.session = f"sess-{next(self.sess_ids)}"
                    self.sessions[self.session] = []
                    await self.dispatch("READY", {
                        "v": 10, "session_id": self.session,
                        "resume_gateway_url": f"wss://127.0.0.1:{self.ws_port}",
                        "user": {"id": "100000000000000001", "username": "claw", "bot": True},
                        "guilds": [], "application": {"id": "1"}})
                elif op == 6:
                    sess, seq = d.get("session_id"), d.get("seq")
                    ok = d.get("token") == self.args.token and sess in self.sessions
                    self.log("resume", session=sess, seq=seq, ok=ok)
                    if not ok:
                        await ws.send(json.dumps({"op": 9, "d": False}))
                        continue
                    self.session = sess
                    for ev in self.sessions[sess]:
                        if ev["s"] > (seq or 0):
                            await ws.send(json.dumps(ev))
                    await self.dispatch("RESUMED", {})
                else:
                    self.log("bad_payload", payload=p)
        except Exception:
            pass
        if self.ws is ws:
            self.ws = None
        self.log("disconnected", path=path, code=ws.close_code)


def main():
    p = common_args(argparse.ArgumentParser())
    p.add_argument("--token", required=True)
    p.add_argument("--heartbeat-ms", type=int, default=1000)
    Discord(p.parse_args()).serve()


main()
