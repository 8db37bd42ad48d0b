#!/usr/bin/env python3
# mcp-bad-server.py MODE: an MCP server over stdio that misbehaves (test-mcp-client.sh).
#   hang   - initializes, lists one tool, never answers a call
#   flood  - initializes, lists one tool, answers a call with 3 MiB and no end of line
#   mute   - never answers initialize
#   many   - lists 100 tools (more than the agent takes) and one with a 40 KiB schema
import json, sys, time

mode = sys.argv[1]
def send(m):
    sys.stdout.write(json.dumps(m) + "\n")
    sys.stdout.flush()

for line in sys.stdin:
    m = json.loads(line)
    if "id" not in m:
        continue
    meth = m.get("method")
    if mode == "mute":
        time.sleep(3600)
    if meth == "initialize":
        print("a log line on stdout, not JSON", flush=True)
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"protocolVersion": "2025-06-18",
              "capabilities": {"tools": {}}, "serverInfo": {"name": mode, "version": "0"}}})
    elif meth == "tools/list":
        schema = {"type": "object", "properties": {"x": {"type": "string"}}}
        tools = [{"name": "work", "description": "does " + mode, "inputSchema": schema}]
        if mode == "many":
            tools += [{"name": "t%d" % i, "inputSchema": schema} for i in range(100)]
            tools.insert(0, {"name": "huge", "inputSchema": {"type": "object",
                             "description": "x" * 40000}})
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"tools": tools}})
    elif meth == "tools/call":
        if mode == "hang":
            time.sleep(3600)
        if mode == "flood":
            sys.stdout.write("y" * (3 << 20))
            sys.stdout.flush()
            time.sleep(3600)
        send({"jsonrpc": "2.0", "id": m["id"], "result": {"content": [{"type": "text", "text": "worked"}]}})
