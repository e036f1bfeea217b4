// Call latency through the MCP transports, measured with the official SDK client
// against a running daemon (not a test; prints figures, asserts nothing).
//
//   node tests/mcp/bench.mjs --exai PATH --port N [--calls 500] [--tool version]
//                            [--token T] [--arguments JSON]
//
// Runs `--calls` sequential tools/call requests over stdio (`exai mcp`) and
// over Streamable HTTP (/mcp) and prints p50/p95/p99 and calls/s for each.

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const args = { calls: "500", tool: "version", token: "", arguments: "{}" };
for (let i = 2; i < process.argv.length; i += 2) {
  args[process.argv[i].replace(/^--/, "")] = process.argv[i + 1];
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function measure(label, transport) {
  const client = new Client({ name: "exai-bench", version: "1.0.0" });
  await client.connect(transport);
  const toolArguments = JSON.parse(args.arguments);
  for (let i = 0; i < 20; ++i) {
    await client.callTool({ name: args.tool, arguments: toolArguments }); // warm-up
  }
  const times = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < Number(args.calls); ++i) {
    const t0 = process.hrtime.bigint();
    const result = await client.callTool({ name: args.tool, arguments: toolArguments });
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
    if (result.isError) {
      throw new Error(`${label}: ${JSON.stringify(result.content)}`);
    }
  }
  const total = Number(process.hrtime.bigint() - start) / 1e9;
  times.sort((a, b) => a - b);
  console.log(
    `${label.padEnd(6)} calls=${times.length} p50=${percentile(times, 50).toFixed(3)}ms ` +
      `p95=${percentile(times, 95).toFixed(3)}ms p99=${percentile(times, 99).toFixed(3)}ms ` +
      `rate=${(times.length / total).toFixed(0)}/s`,
  );
  await client.close();
}

const env = { ...process.env, EXAI_WS_PORT: args.port };
if (args.token) {
  env.EXAI_WS_TOKEN = args.token;
}
await measure(
  "stdio",
  new StdioClientTransport({ command: args.exai, args: ["mcp", "--port", args.port], env }),
);
await measure(
  "http",
  new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${args.port}/mcp`), {
    requestInit: args.token ? { headers: { Authorization: `Bearer ${args.token}` } } : {},
  }),
);
