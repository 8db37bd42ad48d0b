#!/usr/bin/env python3
# svc-server.py: the services tests' upstream: an HTTPS server (Python's http.server and ssl)
# standing for a service such as api.github.com. Every request (line, headers, body) is
# appended to LOG, so a test sees what arrived without the sandbox seeing it. A request that
# carries the expected secret (Bearer, token or Basic credentials) gets 200 "auth: ok";
# /git/... is `git http-backend` (smart HTTP) for a client that proved the secret, and a 401
# Basic challenge for one that did not, as GitHub does. Prints its port, serves until killed
# (at most 300 s).
#
# usage: svc-server.py ADDRESS CERT KEY LOG SECRET GIT_ROOT [PORT]
import base64, http.server, os, ssl, subprocess, sys, threading

addr, cert, key, log, secret, git_root = sys.argv[1:7]
port = int(sys.argv[7]) if len(sys.argv) > 7 else 0
lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def authorized(self):
        auth = self.headers.get("Authorization", "")
        if auth in ("Bearer " + secret, "token " + secret):
            return True
        if auth.startswith("Basic "):
            try:
                user_pass = base64.b64decode(auth[6:]).decode()
            except Exception:
                return False
            return user_pass.split(":", 1)[-1] == secret
        return False

    def body(self):
        n = int(self.headers.get("Content-Length", "0") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, data, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def handle_any(self):
        data = self.body()
        with lock, open(log, "a") as f:
            f.write("request: %s %s\n" % (self.command, self.path))
            for k, v in self.headers.items():
                f.write("header: %s: %s\n" % (k, v))
            f.write("body: %s\n" % data.decode("latin-1"))
        if self.path.startswith("/git/"):
            return self.git(data)
        ok = self.authorized()
        self.reply(200, b"auth: %s\n" % (b"ok" if ok else b"missing"))

    def git(self, data):
        if not self.authorized():
            return self.reply(401, b"auth needed\n", [("WWW-Authenticate", 'Basic realm="git"')])
        path, _, query = self.path[4:].partition("?")
        env = dict(os.environ, GIT_PROJECT_ROOT=git_root, GIT_HTTP_EXPORT_ALL="1",
                   PATH_INFO=path, QUERY_STRING=query, REQUEST_METHOD=self.command,
                   CONTENT_TYPE=self.headers.get("Content-Type", ""),
                   CONTENT_LENGTH=str(len(data)), REMOTE_USER="test", REMOTE_ADDR="127.0.0.1")
        out = subprocess.run(["git", "http-backend"], input=data, env=env,
                             capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.split(b"\r\n"):
            k, _, v = line.decode().partition(":")
            if k.lower() == "status":
                status = int(v.split()[0])
            elif k:
                headers.append((k, v.strip()))
        self.reply(status, payload, headers)

    do_GET = do_POST = do_PUT = handle_any


server = http.server.ThreadingHTTPServer((addr, port), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
threading.Timer(300, lambda: os._exit(0)).start()
server.serve_forever()
