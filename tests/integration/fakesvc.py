# fakesvc.py: the common part of the tests' fake Slack and Discord (fake-slack.py,
# fake-discord.py): an HTTPS server for the service's REST API and the test's controls
# (POST /_test/NAME, JSON in), a WebSocket server over TLS (python3-websockets) for its
# socket, both on loopback with the test's certificate, and a log of JSON lines the test
# asserts on. The REST server runs in threads; socket work is handed to the asyncio loop.
import asyncio
import json
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import websockets


class Fake:
    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.logf = open(args.log, "a", buffering=1)
        self.loop = None
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(args.cert, args.key)

    def log(self, kind, **kw):
        kw = {"kind": kind, "t": round(time.time(), 3), **kw}
        with self.lock:
            self.logf.write(json.dumps(kw, separators=(",", ":")) + "\n")

    def on_loop(self, coro, timeout=5):
        """Runs coro on the socket's loop from a REST thread and returns its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    # Subclasses: rest(method, path, headers, body_json) -> (status, headers, json or bytes);
    # a body that is not JSON comes as {"_raw": text, "_bytes": bytes}.
    # control(name, body_json) -> json; socket(ws, path) coroutine.

    def serve(self):
        fake = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def answer(self, status, headers, obj):
                raw = isinstance(obj, bytes)  # a file's bytes, as they are
                data = obj if raw else json.dumps(obj).encode() if obj is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if obj is not None:  # a 204 has no body
                    self.send_header("Content-Type", "application/octet-stream" if raw else "application/json")
                    self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def handle_any(self):
                n = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(n) if n else b""
                ctype = self.headers.get("Content-Type") or ""
                try:
                    if ctype.startswith("multipart/form-data"):  # kept whole: latin-1 is lossless
                        body = {"_multipart": raw.decode("latin-1"), "_type": ctype}
                    else:
                        body = json.loads(raw) if raw else None
                except ValueError:
                    body = {"_raw": raw.decode(errors="replace"), "_bytes": raw}
                if self.path.startswith("/_test/"):
                    try:
                        out = fake.control(self.path[7:], body or {})
                        self.answer(200, {}, out if out is not None else {"ok": True})
                    except Exception as e:  # the test's mistake: say it plainly
                        self.answer(500, {}, {"error": repr(e)})
                    return
                status, headers, obj = fake.rest(self.command, self.path, self.headers, body)
                self.answer(status, headers, obj)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = handle_any

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        httpd.daemon_threads = True
        httpd.socket = self.ctx.wrap_socket(httpd.socket, server_side=True)
        self.api_port = httpd.server_address[1]

        async def main():
            self.loop = asyncio.get_running_loop()
            async with websockets.serve(self.socket, "127.0.0.1", 0, ssl=self.ctx,
                                        ping_interval=None, compression=None) as server:
                self.ws_port = server.sockets[0].getsockname()[1]
                threading.Thread(target=httpd.serve_forever, daemon=True).start()
                with open(self.args.port_file + ".tmp", "w") as f:
                    f.write(f"{self.api_port} {self.ws_port}\n")
                import os
                os.rename(self.args.port_file + ".tmp", self.args.port_file)
                await asyncio.Future()

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            sys.exit(0)


def common_args(p):
    p.add_argument("--port-file", required=True, help="gets 'API_PORT WS_PORT'")
    p.add_argument("--log", required=True)
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    return p
