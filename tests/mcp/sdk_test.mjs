// exai MCP conformance tests with the official TypeScript SDK client.
//
//   node sdk_test.mjs --exai PATH --fake PATH --transport stdio|http --scenario NAME
//
// Starts the fake upstream (exai_fake_upstream) and a real `exai serve` on
// ephemeral 127.0.0.1 ports in a scratch directory, then connects the SDK
// client either over stdio to `exai mcp` or over Streamable HTTP to /mcp.
// Scenarios: basic, progress, cancel, over-capacity, restart. Exit 0 = pass.
// No fixed sleeps: every wait is for a condition, under a deadline.

import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import assert from "node:assert/strict";
import { DEADLINE_MS, parseArgs, processes } from "../support/processes.mjs";

// Loaded in main() so that a missing `npm ci --prefix tests/mcp` is a skip (77).
let Client;
let StdioClientTransport;
let StreamableHTTPClientTransport;

const TOKEN = "sdk-test-token-0123456789abcdef";

const { scratch, cleanup, spawnUntil } = processes("exai-mcp-sdk-");
const here = dirname(fileURLToPath(import.meta.url));

async function startFake(fake) {
  const { child, match } = await spawnUntil(
    fake,
    ["--port", "0"],
    { stdio: ["pipe", "pipe", "inherit"] },
    "stdout",
    /listening on 127\.0\.0\.1:(\d+)/,
  );
  return { child, port: Number(match[1]) };
}

function daemonEnv(fakePort, extra = {}) {
  return {
    PATH: process.env.PATH,
    HOME: scratch,
    EXAI_STATE_DIR: join(scratch, "state"),
    EXAI_WS_TOKEN: TOKEN,
    GLM_API_KEY: "fake-glm-key-for-tests",
    GLM_API_URL: `http://127.0.0.1:${fakePort}/v1`,
    KIMI_API_KEY: "fake-kimi-key-for-tests",
    KIMI_API_URL: `http://127.0.0.1:${fakePort}/v1`,
    DEFAULT_MODEL: "glm-4.5-flash",
    EXAI_WS_PROGRESS_INTERVAL_SECS: "1",
    EXAI_SHUTDOWN_GRACE_SECS: "0",
    ...extra,
  };
}

async function startDaemon(exai, env, port = 0) {
  const { child, match } = await spawnUntil(
    exai,
    ["serve", "--port", String(port)],
    { cwd: scratch, env, stdio: ["ignore", "ignore", "pipe"] },
    "stderr",
    /serve listening host=\S+ port=(\d+)/,
  );
  child.stderr.on("data", () => {}); // keep draining
  return { child, port: Number(match[1]) };
}

async function stopProcess(child, signal) {
  if (child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill(signal);
  await exited;
}

async function connect(args, env, daemonPort) {
  const client = new Client({ name: "exai-sdk-test", version: "1.0.0" });
  let transport;
  if (args.transport === "stdio") {
    transport = new StdioClientTransport({
      command: args.exai,
      args: ["mcp", "--port", String(daemonPort), "--connect-timeout", "15"],
      env,
      cwd: scratch,
      stderr: "inherit",
    });
  } else {
    transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${daemonPort}/mcp`), {
      requestInit: { headers: { Authorization: `Bearer ${TOKEN}` } },
    });
  }
  await client.connect(transport);
  return client;
}

async function health(port) {
  const response = await fetch(`http://127.0.0.1:${port}/health`, {
    headers: { Authorization: `Bearer ${TOKEN}` },
  });
  return response.json();
}

// Polls `predicate` (async) until it holds or the deadline passes.
async function eventually(what, predicate) {
  const end = Date.now() + DEADLINE_MS;
  let last;
  while (Date.now() < end) {
    last = await predicate();
    if (last === true) {
      return;
    }
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setTimeout(resolve, 20)); // poll interval, not a wait for time to pass
  }
  throw new Error(`timed out waiting for ${what} (last: ${JSON.stringify(last)})`);
}

async function capacityReleased(port) {
  await eventually("capacity back to zero", async () => {
    const h = await health(port);
    return (h.global_inflight === 0 && h.inflight_calls === 0) || { global_inflight: h.global_inflight, inflight_calls: h.inflight_calls };
  });
}

function text(result) {
  return result.content.map((c) => c.text).join("\n");
}

// A chat call that hangs upstream; resolves `started` once the daemon reports
// the call accepted (first progress notification).
function hangingCall(client, prompt, signal) {
  let started;
  const startedPromise = new Promise((resolve) => (started = resolve));
  const result = client.callTool({ name: "chat", arguments: { prompt } }, undefined, {
    signal,
    timeout: DEADLINE_MS,
    onprogress: () => started(),
  });
  return { started: startedPromise, result };
}

const scenarios = {
  async basic({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const { tools } = await client.listTools();
    const names = tools.map((t) => t.name);
    for (const name of ["chat", "challenge", "listmodels", "status", "version"]) {
      assert.ok(names.includes(name), `tools/list lacks ${name}: ${names}`);
    }
    for (const tool of tools) {
      assert.equal(tool.inputSchema.type, "object");
      assert.equal(tool.inputSchema.additionalProperties, false, tool.name);
      assert.ok(tool.title, `${tool.name} has no title`);
      assert.equal(typeof tool.annotations.readOnlyHint, "boolean");
      assert.equal(tool.outputSchema.type, "object");
    }
    // The model field lists what can be used, auto and the K2 models included.
    const chatTool = tools.find((t) => t.name === "chat");
    const model = chatTool.inputSchema.properties.model;
    for (const name of ["auto", "kimi-k2-0905-preview", "kimi-k2-turbo-preview", "glm-4.5-flash"]) {
      assert.ok(model.enum.includes(name), `model enum lacks ${name}`);
    }
    assert.match(model.description, /256K context/);
    assert.equal(chatTool.inputSchema.properties.temperature.maximum, 1);
    const version = await client.callTool({ name: "version", arguments: {} });
    assert.equal(version.isError, false, text(version));
    assert.match(text(version), /version/);
    const chat = await client.callTool({ name: "chat", arguments: { prompt: "hello from the sdk" } });
    assert.equal(chat.isError, false, text(chat));
    assert.match(text(chat), /echo: hello from the sdk/);
    // structuredContent carries the same envelope, checked by the SDK against outputSchema.
    assert.equal(chat.structuredContent.status, "continuation_available");
    assert.match(chat.structuredContent.content, /echo: hello from the sdk/);
    assert.equal(chat.structuredContent.metadata.conversation_ready, true);
    const bad = await client.callTool({ name: "chat", arguments: { prompt: "x", promt: "typo" } });
    assert.equal(bad.isError, true);
    assert.match(text(bad), /VALIDATION_ERROR.*promt/s);
    await assert.rejects(client.callTool({ name: "no_such_tool", arguments: {} }), /-32602|Unknown tool/);
    await client.ping();
    await client.close();
  },

  // One full three-step analyze: two intermediate steps (no model call), then
  // the expert's answer with every step's findings and the file's lines.
  async workflow({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const file = join(env.HOME, "store.cpp"); // HOME is the daemon's file root
    writeFileSync(file, "struct Store {\n  std::mutex everything;\n};\n");
    const step = async (number, more, findings, extra = {}) => {
      const result = await client.callTool({
        name: "analyze",
        arguments: {
          step: `step ${number}: how the store scales`,
          step_number: number,
          total_steps: 3,
          next_step_required: more,
          findings,
          ...extra,
        },
      });
      assert.equal(result.isError, false, text(result));
      return result.structuredContent;
    };
    const one = await step(1, true, "one mutex guards every map", { relevant_files: [file] });
    assert.equal(one.status, "pause_for_analyze");
    assert.ok(one.continuation_id, "step 1 returns the thread");
    const two = await step(2, true, "the sweep holds that mutex for 40 ms", {
      continuation_id: one.continuation_id,
    });
    assert.equal(two.status, "pause_for_analyze");
    const three = await step(3, false, "sharding the maps would remove the stall", {
      continuation_id: one.continuation_id,
    });
    assert.equal(three.status, "analyze_complete");
    assert.equal(three.expert_analysis.status, "analysis_complete");
    // The fake expert echoes what it was sent: every step's findings and the file.
    assert.match(three.expert_analysis.content, /one mutex guards every map/);
    assert.match(three.expert_analysis.content, /the sweep holds that mutex for 40 ms/);
    assert.match(three.expert_analysis.content, /std::mutex everything;/);
    await client.close();
  },

  async progress({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const seen = [];
    const result = await client.callTool(
      { name: "chat", arguments: { prompt: "slow one [[sleep_ms=1500]]" } },
      undefined,
      { onprogress: (p) => seen.push(p), timeout: DEADLINE_MS },
    );
    assert.equal(result.isError, false, text(result));
    assert.ok(seen.length >= 2, `expected progress notifications, got ${JSON.stringify(seen)}`);
    for (let i = 1; i < seen.length; ++i) {
      assert.ok(seen[i].progress > seen[i - 1].progress, "progress must increase");
    }
    assert.ok(seen.some((p) => typeof p.message === "string" && p.message.length > 0));
    await client.close();
  },

  async queue({ args, env, daemon }) {
    // EXAI_WS_SESSION_MAX_INFLIGHT=1 here: the second call of the session
    // waits for the first (with progress saying so) instead of being refused.
    const client = await connect(args, env, daemon.port);
    const notes = [];
    const call = (prompt) =>
      client.callTool({ name: "chat", arguments: { prompt } }, undefined, {
        onprogress: (p) => notes.push(p.message ?? ""),
        timeout: DEADLINE_MS,
      });
    const [first, second] = await Promise.all([
      call("first [[sleep_ms=800]]"),
      call("second [[sleep_ms=800]]"),
    ]);
    assert.equal(first.isError, false, text(first));
    assert.equal(second.isError, false, text(second));
    assert.ok(
      notes.some((n) => /waiting for session capacity/.test(n)),
      `expected a waiting note, got ${JSON.stringify(notes)}`,
    );
    await capacityReleased(daemon.port);
    await client.close();
  },

  async cancel({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const abort = new AbortController();
    const call = hangingCall(client, "never answers [[hang]]", abort.signal);
    await call.started;
    await eventually("the call to hold capacity", async () => (await health(daemon.port)).global_inflight === 1);
    abort.abort("test cancels");
    await assert.rejects(call.result);
    await capacityReleased(daemon.port);
    // The session is still usable.
    const version = await client.callTool({ name: "version", arguments: {} });
    assert.equal(version.isError, false);
    await client.close();
  },

  async "over-capacity"({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const abort = new AbortController();
    const first = hangingCall(client, "holds the only slot [[hang]]", abort.signal);
    await first.started;
    await eventually("the call to hold capacity", async () => (await health(daemon.port)).global_inflight === 1);
    const second = await client.callTool({ name: "chat", arguments: { prompt: "no room for me" } });
    assert.equal(second.isError, true);
    assert.match(text(second), /OVER_CAPACITY/);
    abort.abort("done");
    await assert.rejects(first.result);
    await capacityReleased(daemon.port);
    await client.close();
  },

  async "idle-session"({ args, env, daemon }) {
    // SESSION_TIMEOUT_SECS=1 here: the session leaves the daemon's memory, and
    // the next call re-adopts it instead of failing with 404.
    const client = await connect(args, env, daemon.port);
    assert.equal((await client.callTool({ name: "version", arguments: {} })).isError, false);
    await eventually("the idle session to expire", async () => (await health(daemon.port)).mcp_sessions === 0);
    const after = await client.callTool({ name: "chat", arguments: { prompt: "after idling" } });
    assert.equal(after.isError, false, text(after));
    await client.close();
  },

  async "prompts-logging"({ args, env, daemon }) {
    const client = await connect(args, env, daemon.port);
    const { prompts } = await client.listPrompts();
    const names = prompts.map((p) => p.name);
    for (const name of ["chat", "analyze", "continue"]) {
      assert.ok(names.includes(name), `prompt ${name} in ${names}`);
    }
    const got = await client.getPrompt({ name: "chat", arguments: { model: "kimi-k2-0905-preview", prompt: "why?" } });
    assert.equal(got.messages[0].role, "user");
    assert.match(got.messages[0].content.text, /Use the exai tool chat with model "kimi-k2-0905-preview" for the following:\n\nwhy\?/);
    await assert.rejects(client.getPrompt({ name: "nope" }), /unknown prompt nope/);
    await assert.rejects(client.listTools({ cursor: "abc" }), /unknown cursor/);
    {
      // Log notifications (on the call's stream over HTTP) at or above the set level.
      const seen = [];
      const { LoggingMessageNotificationSchema } = await import("@modelcontextprotocol/sdk/types.js");
      client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => seen.push(n.params));
      await client.setLoggingLevel("warning");
      await client.callTool({ name: "chat", arguments: { prompt: "fine" } });
      const failed = await client.callTool({ name: "chat", arguments: { prompt: "x", temperature: 7 } });
      assert.equal(failed.isError, true);
      assert.equal(seen.length, 1, JSON.stringify(seen));
      assert.equal(seen[0].level, "warning");
      assert.equal(seen[0].data.code, "VALIDATION_ERROR");
      await client.setLoggingLevel("info");
      await client.callTool({ name: "chat", arguments: { prompt: "fine again" } });
      assert.equal(seen.length, 2, JSON.stringify(seen));
      assert.equal(seen[1].level, "info");
      assert.equal(seen[1].data.outcome, "ok");
    }
    await client.close();
  },

  async "wrong-token"({ args, env, daemon }) {
    const wrong = { ...env, EXAI_WS_TOKEN: "not-the-daemon-token-000000" };
    if (args.transport === "http") {
      const client = new Client({ name: "exai-sdk-test", version: "1.0.0" });
      const transport = new StreamableHTTPClientTransport(new URL(`http://127.0.0.1:${daemon.port}/mcp`), {
        requestInit: { headers: { Authorization: `Bearer ${wrong.EXAI_WS_TOKEN}` } },
      });
      await assert.rejects(client.connect(transport), /401|Unauthorized/);
      return;
    }
    // The bridge reports the refusal at once instead of retrying for
    // --connect-timeout (15 s here).
    const started = Date.now();
    const client = await connect(args, wrong, daemon.port);
    await assert.rejects(client.listTools(), /UNAUTHORIZED/);
    const call = await client.callTool({ name: "version", arguments: {} });
    assert.equal(call.isError, true);
    assert.match(text(call), /UNAUTHORIZED/);
    assert.ok(Date.now() - started < 10000, `took ${Date.now() - started} ms`);
    await client.close();
  },

  async "sdk-1.9"({ args, env, daemon }) {
    const { Client: OldClient } = await import("mcp-sdk-1.9/client/index.js");
    const { StdioClientTransport: OldStdio } = await import("mcp-sdk-1.9/client/stdio.js");
    const client = new OldClient({ name: "exai-sdk-1.9-test", version: "1.0.0" });
    await client.connect(
      new OldStdio({
        command: args.exai,
        args: ["mcp", "--port", String(daemon.port), "--connect-timeout", "15"],
        env,
        cwd: scratch,
        stderr: "inherit",
      }),
    );
    const { tools } = await client.listTools();
    assert.ok(tools.some((t) => t.name === "chat"));
    const reply = await client.callTool({ name: "chat", arguments: { prompt: "from 2024" } });
    assert.equal(reply.isError, false, text(reply));
    assert.match(text(reply), /echo: from 2024/);
    await client.close();
  },

  async conformance({ daemon }) {
    // The official conformance suite's server scenarios; the ones that need
    // the suite's own demo server are listed in conformance-baseline.yml.
    const cli = join(here, "node_modules/@modelcontextprotocol/conformance/dist/index.js");
    const run = spawnSync(
      process.execPath,
      [
        cli,
        "server",
        "--url",
        `http://127.0.0.1:${daemon.port}/mcp`,
        "--suite",
        "all",
        "--expected-failures",
        join(here, "conformance-baseline.yml"),
      ],
      { cwd: scratch, encoding: "utf8", timeout: 120000 },
    );
    const summary = (run.stdout ?? "").split("=== SUMMARY ===")[1] ?? run.stdout;
    assert.equal(run.status, 0, `conformance suite: ${summary}\n${run.stderr}`);
  },

  async "graceful-restart"({ args, env, daemon }) {
    // EXAI_SHUTDOWN_GRACE_SECS=5 here: a call made while the daemon drains is
    // not failed with SHUTTING_DOWN; it waits for the next daemon and is
    // answered there.
    const client = await connect(args, env, daemon.port);
    assert.equal((await client.callTool({ name: "version", arguments: {} })).isError, false);
    const draining = client.callTool(
      { name: "chat", arguments: { prompt: "keeps the old daemon draining [[sleep_ms=1500]]" } },
      undefined,
      { timeout: DEADLINE_MS },
    );
    await eventually("the call to run", async () => (await health(daemon.port)).global_inflight === 1);
    const exited = new Promise((resolve) => daemon.child.once("exit", resolve));
    // A draining daemon accepts no new connection (not even /health): its log
    // says when it drains.
    const stopping = new Promise((resolve) => {
      let seen = "";
      daemon.child.stderr.on("data", (chunk) => {
        seen += chunk;
        if (/serve stopping/.test(seen)) resolve();
      });
    });
    daemon.child.kill("SIGTERM");
    await stopping;
    const during = client.callTool(
      { name: "chat", arguments: { prompt: "made during the restart" } },
      undefined,
      { timeout: DEADLINE_MS },
    );
    await exited;
    const fresh = await startDaemon(args.exai, env, daemon.port);
    daemon.child = fresh.child;
    const first = await draining;
    assert.equal(first.isError, false, text(first));
    const second = await during;
    assert.equal(second.isError, false, text(second));
    assert.match(text(second), /echo: made during the restart/);
    await client.close();
  },

  async restart({ args, env, daemon, restart }) {
    let client = await connect(args, env, daemon.port);
    assert.equal((await client.callTool({ name: "version", arguments: {} })).isError, false);
    if (args.transport === "stdio") {
      const inflight = client.callTool(
        { name: "chat", arguments: { prompt: "lost in the restart [[hang]]" } },
        undefined,
        { timeout: DEADLINE_MS },
      );
      // Make sure the daemon has the call before it dies.
      await eventually("the call to run", async () => (await health(daemon.port)).global_inflight === 1);
      const fresh = await restart("SIGKILL");
      const lost = await inflight;
      assert.equal(lost.isError, true);
      assert.match(text(lost), /restarted/);
      // The same MCP session goes on: the bridge reconnected.
      const after = await client.callTool({ name: "chat", arguments: { prompt: "after restart" } });
      assert.equal(after.isError, false, text(after));
      assert.match(text(after), /echo: after restart/);
      assert.equal(fresh.port, daemon.port);
    } else {
      // The session id is signed by this install: a restarted daemon re-adopts
      // it, so the same client goes on without initializing again.
      for (const signal of ["SIGTERM", "SIGKILL"]) {
        await restart(signal);
        const after = await client.callTool({ name: "chat", arguments: { prompt: `after ${signal}` } });
        assert.equal(after.isError, false, text(after));
        assert.match(text(after), new RegExp(`echo: after ${signal}`));
      }
      // A call whose stream a SIGKILL breaks: the SDK resumes with
      // Last-Event-ID against the next daemon and gets a clear isError
      // result for that very call, never a hang.
      const inflight = client.callTool(
        { name: "chat", arguments: { prompt: "lost in the restart [[hang]]" } },
        undefined,
        { timeout: DEADLINE_MS },
      );
      await eventually("the call to run", async () => (await health(daemon.port)).global_inflight === 1);
      await restart("SIGKILL");
      const lost = await inflight;
      assert.equal(lost.isError, true);
      assert.match(text(lost), /DAEMON_RESTARTED/);
      // DELETE ends it for good, on every daemon of this install.
      const sessionId = client.transport.sessionId;
      await client.transport.terminateSession();
      const reply = await fetch(`http://127.0.0.1:${daemon.port}/mcp`, {
        method: "POST",
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          "Content-Type": "application/json",
          Accept: "application/json, text/event-stream",
          "Mcp-Session-Id": sessionId,
        },
        body: JSON.stringify({ jsonrpc: "2.0", id: 9, method: "tools/list" }),
      });
      assert.equal(reply.status, 404);
      return;
    }
    await client.close();
  },
};

async function loadSdk() {
  try {
    ({ Client } = await import("@modelcontextprotocol/sdk/client/index.js"));
    ({ StdioClientTransport } = await import("@modelcontextprotocol/sdk/client/stdio.js"));
    ({ StreamableHTTPClientTransport } = await import(
      "@modelcontextprotocol/sdk/client/streamableHttp.js"
    ));
  } catch (error) {
    console.error(`SKIP: the MCP SDK is not installed (run: npm ci --prefix tests/mcp): ${error}`);
    cleanup();
    process.exit(77);
  }
}

async function main() {
  const args = parseArgs(process.argv, ["exai", "fake", "transport", "scenario"]);
  await loadSdk();
  const scenario = scenarios[args.scenario];
  if (!scenario) {
    throw new Error(`unknown scenario ${args.scenario}`);
  }
  const fake = await startFake(args.fake);
  const extra =
    args.scenario === "over-capacity"
      ? { EXAI_WS_GLOBAL_MAX_INFLIGHT: "1", EXAI_WS_ACQUIRE_TIMEOUT_SECS: "0" }
      : args.scenario === "idle-session"
        ? { SESSION_TIMEOUT_SECS: "1" }
        : args.scenario === "graceful-restart"
          ? { EXAI_SHUTDOWN_GRACE_SECS: "5" }
          : args.scenario === "queue"
          ? { EXAI_WS_SESSION_MAX_INFLIGHT: "1" }
          : args.scenario === "conformance"
          ? { EXAI_WS_TOKEN: "" } // the suite sends no Authorization header
          : {};
  const env = daemonEnv(fake.port, extra);
  const daemon = await startDaemon(args.exai, env);
  const restart = async (signal) => {
    await stopProcess(daemon.child, signal);
    const fresh = await startDaemon(args.exai, env, daemon.port);
    daemon.child = fresh.child;
    return fresh;
  };
  const started = Date.now();
  await scenario({ args, env, daemon, restart });
  console.log(`ok ${args.transport} ${args.scenario} (${Date.now() - started} ms)`);
}

main()
  .then(() => {
    cleanup();
    process.exit(0);
  })
  .catch((error) => {
    console.error(`FAIL: ${error.stack ?? error}`);
    cleanup();
    process.exit(1);
  });
