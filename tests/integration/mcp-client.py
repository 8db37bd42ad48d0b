#!/usr/bin/env python3
# mcp-client.py: a scripted JSON-RPC 2.0 client for `clawbox mcp-host` (test-mcp-host.sh).
# It plays a fake host-action socket (the daemon's side: records each request, answers as
# the daemon would) and drives mcp-host over its stdin/stdout, printing one line per check:
# "ok NAME" or "FAIL NAME: detail". Usage: mcp-client.py CLAWBOX WORKDIR
import json, os, socket, subprocess, sys, threading

clawbox, work = sys.argv[1], sys.argv[2]
sock_path = os.path.join(work, "host.sock")
seen = []

def daemon():
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sock_path)
    srv.listen(8)
    while True:
        c, _ = srv.accept()
        data = b""
        while not data.endswith(b"\n"):
            b = c.recv(65536)
            if not b:
                break
            data += b
        req = json.loads(data)
        seen.append(req)
        if req["input"].get("group") == "other":
            ans = {"ok": False, "error": "only the main group may act on another group"}
        else:
            ans = {"ok": True, "result": "sent to the chat"}
        c.sendall((json.dumps(ans) + "\n").encode())
        c.close()

threading.Thread(target=daemon, daemon=True).start()
while not os.path.exists(sock_path):
    pass

p = subprocess.Popen([clawbox, "mcp-host", "--host-socket", sock_path], stdin=subprocess.PIPE,
                     stdout=subprocess.PIPE, stderr=open(os.path.join(work, "mcp.err"), "wb"))
failed = 0

def check(name, cond, detail=""):
    global failed
    if cond:
        print("ok", name)
    else:
        failed += 1
        print("FAIL %s: %s" % (name, detail))
    sys.stdout.flush()

def send_raw(b):
    p.stdin.write(b)
    p.stdin.flush()

def reply():
    line = p.stdout.readline()
    return json.loads(line) if line else None

def call(method, params=None, id=1):
    m = {"jsonrpc": "2.0", "id": id, "method": method}
    if params is not None:
        m["params"] = params
    send_raw((json.dumps(m) + "\n").encode())
    return reply()

r = call("initialize", {"protocolVersion": "2025-03-26", "capabilities": {},
                        "clientInfo": {"name": "t", "version": "0"}})
check("initialize", r and r["id"] == 1 and r["result"]["protocolVersion"] == "2025-03-26"
      and "tools" in r["result"]["capabilities"], r)
send_raw(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
r = call("ping", id="p1")
check("notification unanswered, ping answered with its string id",
      r and r["id"] == "p1" and r["result"] == {}, r)
r = call("tools/list", {}, id=2)
names = [t["name"] for t in r["result"]["tools"]] if r and "result" in r else []
check("tools/list has the host actions and no local tool",
      "send_message" in names and "schedule_task" in names and "bash" not in names
      and all("inputSchema" in t for t in r["result"]["tools"]), names)
r = call("tools/call", {"name": "send_message", "arguments": {"text": "hello chat"}}, id=3)
check("tools/call send_message reaches the socket",
      r and r["result"]["isError"] is False and r["result"]["content"][0]["text"] == "sent to the chat"
      and seen and seen[-1] == {"tool": "send_message", "input": {"text": "hello chat"}}, (r, seen))
r = call("tools/call", {"name": "send_message", "arguments": {"text": "x", "group": "other"}}, id=4)
check("a refusal from the daemon is a tool error",
      r and r["result"]["isError"] is True and "refused: only the main group" in r["result"]["content"][0]["text"], r)
n = len(seen)
r = call("tools/call", {"name": "send_message", "arguments": {"group": "main"}}, id=5)
check("a missing argument is a tool error and never reaches the daemon",
      r and r["result"]["isError"] and "missing argument 'text'" in r["result"]["content"][0]["text"]
      and len(seen) == n, r)
r = call("tools/call", {"name": "send_message", "arguments": {"text": "y", "description": "d"}}, id=6)
check("an unknown extra argument is dropped",
      r and not r["result"]["isError"] and seen[-1]["input"] == {"text": "y"}, (r, seen[-1]))
r = call("tools/call", {"name": "bash", "arguments": {"command": "id"}}, id=7)
check("a local tool (bash) is not callable through mcp-host",
      r and r.get("error", {}).get("code") == -32602 and len(seen) == n + 1, r)
r = call("tools/call", {"arguments": {}}, id=8)
check("tools/call without a name: invalid params", r and r["error"]["code"] == -32602, r)
r = call("no/such", {}, id=9)
check("unknown method", r and r["id"] == 9 and r["error"]["code"] == -32601, r)
send_raw(b'{"jsonrpc": "2.0", "id": 10, "method": \n')
r = reply()
check("malformed JSON: parse error with id null", r and r["id"] is None and r["error"]["code"] == -32700, r)
send_raw(b'[{"jsonrpc":"2.0","id":11,"method":"ping"}]\n')
r = reply()
check("a batch is an invalid request", r and r["error"]["code"] == -32600, r)
send_raw(b'{"id":12,"method":"ping"}\n')
r = reply()
check("no jsonrpc member: invalid request", r and r["id"] == 12 and r["error"]["code"] == -32600, r)
r = call("tools/call", [1, 2], id=13)
check("params not an object: invalid params", r and r["error"]["code"] == -32602, r)
send_raw(b'{"jsonrpc":"2.0","id":14,"method":"ping","params":{"pad":"' + b"x" * (1 << 20) + b'"}}\n')
r = reply()
check("a 1 MiB message: one error, skipped", r and r["error"]["code"] == -32600 and "too large" in r["error"]["message"], r)
r = call("ping", id=15)
check("and the next message is served", r and r["id"] == 15 and r["result"] == {}, r)
send_raw(b"\n\n   \n")
r = call("ping", id=16)
check("blank lines are ignored", r and r["id"] == 16, r)
p.stdin.close()
p.wait(timeout=10)
check("EOF on stdin ends it cleanly", p.returncode == 0, p.returncode)
sys.exit(1 if failed else 0)
