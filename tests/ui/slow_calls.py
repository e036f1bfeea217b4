#!/usr/bin/python3
"""Starts slow chat calls over one WebSocket session and waits for them.

    slow_calls.py PORT TOKEN SLEEP_MS MODEL [MODEL...]

One call per MODEL, each started after the previous one's ack (so they are in
flight in that order), each held SLEEP_MS by the fake upstream. Prints
"started" once every call is acknowledged and "done" when every result has
arrived; exits 1 on an error result or after 60 s. For tests/ui/top_tmux.sh.
"""

import asyncio
import json
import sys

import websockets


async def main(port, token, sleep_ms, models):
    async with websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None) as ws:
        await ws.send(json.dumps({"op": "hello", "token": token}))
        while json.loads(await ws.recv()).get("op") != "hello_ack":
            pass
        results = 0
        for i, model in enumerate(models):
            await ws.send(json.dumps({
                "op": "call_tool", "request_id": f"top-{i}", "name": "chat",
                "arguments": {"prompt": f"exai top test [[sleep_ms={sleep_ms}]]", "model": model},
            }))
            while True:
                frame = json.loads(await ws.recv())
                if frame.get("op") == "call_tool_ack":
                    break
                if frame.get("op") == "call_tool_res":
                    results += 1
        print("started", flush=True)
        failed = False
        while results < len(models):
            frame = json.loads(await ws.recv())
            if frame.get("op") == "call_tool_res":
                results += 1
                failed = failed or "error" in frame
        print("done", flush=True)
        return 1 if failed else 0


if __name__ == "__main__":
    port, token, sleep_ms, *models = sys.argv[1:]
    sys.exit(asyncio.run(asyncio.wait_for(main(port, token, sleep_ms, models), 60)))
