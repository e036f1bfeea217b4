#!/usr/bin/python3
"""Minimal op-protocol daemon on Python `websockets` (Debian python3-websockets):
the Python baseline of scripts/bench.sh. hello -> hello_ack; call_tool ->
progress, call_tool_ack, call_tool_res; chat is proxied to the OpenAI-compatible
upstream in $UPSTREAM_URL over a small keep-alive HTTP/1.1 client on asyncio.
No capacity control: an upper bound for the Python daemon exai replaces. With
UPSTREAM_STREAM=1 it asks for `stream: true` and assembles the answer from the SSE
events (chunked), as exai does by default.
Usage: UPSTREAM_URL=http://127.0.0.1:PORT/v1 [UPSTREAM_STREAM=1] [SYSTEM_PROMPT_FILE=F]
       /usr/bin/python3 server.py PORT"""

import asyncio
import json
import os
import random
import resource
import sys
import time
import urllib.parse

import websockets

UPSTREAM = urllib.parse.urlsplit(os.environ.get("UPSTREAM_URL", "http://127.0.0.1:1/v1"))
PATH = UPSTREAM.path.rstrip("/") + "/chat/completions"
STREAMED = os.environ.get("UPSTREAM_STREAM") == "1"
# The system prompt exai's chat tool sends (SYSTEM_PROMPT_FILE): the upstream,
# which shares the machine's cores, then parses the same request from each daemon.
SYSTEM = (open(os.environ["SYSTEM_PROMPT_FILE"], encoding="utf-8").read()
          if os.environ.get("SYSTEM_PROMPT_FILE") else None)
STARTED = time.time()
connections = 0
idle_upstream = []  # (reader, writer) keep-alive connections


def envelope(content, tool):
    return json.dumps({"status": "success", "content": content, "content_type": "text",
                       "metadata": {"tool_name": tool}, "continuation_offer": None})


def result(rid, text):
    return json.dumps({"op": "call_tool_res", "request_id": rid,
                       "outputs": [{"type": "text", "text": text}], "text": text})


def failure(rid, code, message):
    return json.dumps({"op": "call_tool_res", "request_id": rid,
                       "error": {"code": code, "message": message, "details": {}}})


async def read_chunked(reader):
    body = b""
    while True:
        size = int((await reader.readline()).split(b";")[0], 16)
        if size == 0:
            while (await reader.readline()) not in (b"\r\n", b""):
                pass
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def post_chat(body):
    """The upstream's answer body (bytes) to a POST of `body`."""
    data = body.encode()
    request = (f"POST {PATH} HTTP/1.1\r\nHost: {UPSTREAM.netloc}\r\n"
               f"Content-Type: application/json\r\nAuthorization: Bearer test-key\r\n"
               f"Content-Length: {len(data)}\r\n\r\n").encode() + data
    status = b""
    while idle_upstream and not status:
        # A pooled connection the upstream closed while idle answers nothing:
        # the request is sent again on the next one, or on a new one.
        reader, writer = idle_upstream.pop()
        try:
            writer.write(request)
            status = await reader.readline()
        except (ConnectionError, OSError):
            status = b""
        if not status:
            writer.close()
    if not status:
        reader, writer = await asyncio.open_connection(UPSTREAM.hostname, UPSTREAM.port)
        writer.write(request)
        status = await reader.readline()
    length = 0
    chunked = False
    keep = True
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
        elif name.lower() == "connection" and value.strip().lower() == "close":
            keep = False
    payload = await read_chunked(reader) if chunked else await reader.readexactly(length)
    if keep:
        idle_upstream.append((reader, writer))
    else:
        writer.close()
    if b" 200 " not in status:
        raise RuntimeError(status.decode().strip())
    return payload


def sse_content(payload):
    content = ""
    for event in payload.decode().split("\n\n"):
        for line in event.split("\n"):
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            chunk = json.loads(line[5:])
            if "error" in chunk:
                raise RuntimeError(chunk["error"].get("message", "upstream error"))
            delta = (chunk.get("choices") or [{}])[0].get("delta") or {}
            content += delta.get("content") or ""
    return content


async def chat(ws, rid, args):
    messages = [{"role": "user", "content": str(args.get("prompt", ""))}]
    if SYSTEM is not None:
        messages.insert(0, {"role": "system", "content": SYSTEM})
    request = {"model": args.get("model", "glm-4.5-flash"), "messages": messages}
    if STREAMED:
        request["stream"] = True
    try:
        payload = await post_chat(json.dumps(request))
        content = (sse_content(payload) if STREAMED
                   else json.loads(payload)["choices"][0]["message"]["content"])
        await ws.send(result(rid, envelope(content, "chat")))
    except Exception as e:  # noqa: BLE001 - every failure becomes a result
        await ws.send(failure(rid, "PROVIDER_ERROR", str(e)))


def health():
    idle = {"capacity": 0, "in_use": 0, "waiting": 0}
    return {"state": "serving", "pid": os.getpid(), "sessions": connections,
            "connections": connections, "inflight_calls": 0, "executions": 0, "queued": 0,
            "rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "uptime_s": time.time() - STARTED,
            "capacity": {"global": idle, "providers": {}, "sessions": idle, "conversations": idle}}


async def handler(ws, path=None):
    global connections
    connections += 1
    tasks = set()
    try:
        async for data in ws:
            try:
                msg = json.loads(data)
            except ValueError:
                await ws.send(json.dumps({"op": "error", "error": {
                    "code": "VALIDATION_ERROR", "message": "not JSON", "details": {}}}))
                continue
            op, rid = msg.get("op"), msg.get("request_id")
            if op == "hello":
                await ws.send(json.dumps({"op": "hello_ack", "ok": True,
                                          "session_id": "py-%016x" % random.getrandbits(64)}))
            elif op == "health":
                await ws.send(json.dumps({"op": "health_res", "ok": True, "health": health()}))
            elif op == "call_tool":
                name = msg.get("name")
                await ws.send(json.dumps({"op": "progress", "request_id": rid, "name": name,
                                          "t": time.time(),
                                          "note": "accepted, awaiting provider/session capacity"}))
                await ws.send(json.dumps({"op": "call_tool_ack", "request_id": rid,
                                          "accepted": True, "timeout": 270, "name": name}))
                if name == "chat":
                    task = asyncio.ensure_future(chat(ws, rid, msg.get("arguments") or {}))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                elif name == "version":
                    await ws.send(result(rid, envelope("exai-bench-python 0.1.0", "version")))
                else:
                    await ws.send(failure(rid, "TOOL_NOT_FOUND", f"unknown tool {name}"))
            else:
                await ws.send(json.dumps({"op": "error", "request_id": rid, "error": {
                    "code": "PROTOCOL_ERROR", "message": f"Unknown operation: {op}",
                    "details": {}}}))
    except websockets.ConnectionClosed:
        pass
    finally:
        connections -= 1


async def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    async with websockets.serve(handler, "127.0.0.1", port, max_size=33554432,
                                ping_interval=None, compression=None) as server:
        print("listening on 127.0.0.1:%d" % server.sockets[0].getsockname()[1], flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
