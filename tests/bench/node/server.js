// Minimal op-protocol daemon on Node's `ws`: the Node baseline of
// scripts/bench.sh. hello -> hello_ack; call_tool -> progress, call_tool_ack,
// call_tool_res; chat is proxied to the OpenAI-compatible upstream in
// $UPSTREAM_URL (keep-alive). No capacity control, no replay, no timeouts:
// the fastest a JavaScript daemon could be. With UPSTREAM_STREAM=1 it asks
// for `stream: true` and assembles the answer from the SSE events, as exai
// does by default: the like-for-like baseline for exai's streamed chat rows.
// With SYSTEM_PROMPT_FILE it sends that text as the system message, as exai's
// chat tool sends its own prompt: the upstream, which shares the machine's
// cores, then parses the same request from every daemon.
// Usage: UPSTREAM_URL=http://127.0.0.1:PORT/v1 [UPSTREAM_STREAM=1] [SYSTEM_PROMPT_FILE=F]
//        node server.js PORT
'use strict';
const http = require('http');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 0);
const upstream = new URL((process.env.UPSTREAM_URL || 'http://127.0.0.1:1/v1') + '/chat/completions');
const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
const streamed = process.env.UPSTREAM_STREAM === '1';
const system = process.env.SYSTEM_PROMPT_FILE
  ? require('fs').readFileSync(process.env.SYSTEM_PROMPT_FILE, 'utf8') : null;
const started = Date.now();
let connections = 0;

function envelope(content, tool) {
  return JSON.stringify({
    status: 'success', content, content_type: 'text',
    metadata: { tool_name: tool }, continuation_offer: null,
  });
}

function result(ws, id, text) {
  ws.send(JSON.stringify({ op: 'call_tool_res', request_id: id, outputs: [{ type: 'text', text }], text }));
}

function failure(ws, id, code, message) {
  ws.send(JSON.stringify({ op: 'call_tool_res', request_id: id, error: { code, message, details: {} } }));
}

// The content of an SSE stream of chat.completion.chunk events, or the Error
// of its first error event or malformed chunk.
function sse_reader() {
  let pending = '';
  let content = '';
  let failed = null;
  return {
    feed(text) {
      pending += text;
      let end;
      while ((end = pending.indexOf('\n\n')) >= 0) {
        const event = pending.slice(0, end);
        pending = pending.slice(end + 2);
        for (const line of event.split('\n')) {
          if (!line.startsWith('data:')) continue;
          const data = line.slice(5).trim();
          if (data === '[DONE]' || failed) continue;
          try {
            const chunk = JSON.parse(data);
            if (chunk.error) failed = new Error(chunk.error.message);
            const delta = chunk.choices && chunk.choices[0] && chunk.choices[0].delta;
            if (delta && typeof delta.content === 'string') content += delta.content;
          } catch (e) {
            failed = e;
          }
        }
      }
    },
    result() { return failed || content; },
  };
}

function chat(ws, id, args) {
  const request = {
    model: args.model || 'glm-4.5-flash',
    messages: [{ role: 'user', content: String(args.prompt || '') }],
  };
  if (system !== null) request.messages.unshift({ role: 'system', content: system });
  if (streamed) request.stream = true;
  const body = JSON.stringify(request);
  const req = http.request(upstream, {
    method: 'POST', agent,
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body),
               Authorization: 'Bearer test-key' },
  }, (res) => {
    const chunks = [];
    const sse = streamed ? sse_reader() : null;
    if (sse) res.setEncoding('utf8');
    res.on('data', (c) => (sse ? sse.feed(c) : chunks.push(c)));
    res.on('end', () => {
      try {
        const content = sse ? sse.result() : JSON.parse(Buffer.concat(chunks).toString()).choices[0].message.content;
        if (content instanceof Error) throw content;
        result(ws, id, envelope(content, 'chat'));
      } catch (e) {
        failure(ws, id, 'PROVIDER_ERROR', String(e));
      }
    });
  });
  req.on('error', (e) => failure(ws, id, 'PROVIDER_ERROR', String(e)));
  req.end(body);
}

function health() {
  const idle = { capacity: 0, in_use: 0, waiting: 0 };
  return {
    state: 'serving', pid: process.pid, sessions: connections, connections,
    inflight_calls: 0, executions: 0, queued: 0, rss_bytes: process.memoryUsage().rss,
    uptime_s: (Date.now() - started) / 1000,
    capacity: { global: idle, providers: {}, sessions: idle, conversations: idle },
  };
}

const wss = new WebSocketServer({ host: '127.0.0.1', port, maxPayload: 33554432 });
wss.on('listening', () => console.log(`listening on 127.0.0.1:${wss.address().port}`));
wss.on('connection', (ws) => {
  ++connections;
  ws.on('close', () => --connections);
  ws.on('message', (data) => {
    let msg;
    try {
      msg = JSON.parse(data);
    } catch (e) {
      ws.send(JSON.stringify({ op: 'error', error: { code: 'VALIDATION_ERROR', message: 'not JSON', details: {} } }));
      return;
    }
    const id = msg.request_id;
    switch (msg.op) {
      case 'hello':
        ws.send(JSON.stringify({ op: 'hello_ack', ok: true, session_id: 'node-' + Math.random().toString(36).slice(2) }));
        break;
      case 'health':
        ws.send(JSON.stringify({ op: 'health_res', ok: true, health: health() }));
        break;
      case 'call_tool': {
        const name = msg.name;
        const t = Date.now() / 1000;
        ws.send(JSON.stringify({ op: 'progress', request_id: id, name, t, note: 'accepted, awaiting provider/session capacity' }));
        ws.send(JSON.stringify({ op: 'call_tool_ack', request_id: id, accepted: true, timeout: 270, name }));
        if (name === 'chat') {
          chat(ws, id, msg.arguments || {});
        } else if (name === 'version') {
          result(ws, id, envelope('exai-bench-node 0.1.0', 'version'));
        } else {
          failure(ws, id, 'TOOL_NOT_FOUND', 'unknown tool ' + name);
        }
        break;
      }
      default:
        ws.send(JSON.stringify({ op: 'error', request_id: id, error: { code: 'PROTOCOL_ERROR', message: 'Unknown operation: ' + msg.op, details: {} } }));
    }
  });
});
