// The operator page in a real browser: Debian's chromium driven by
// puppeteer-core.
//
//   node --experimental-websocket ui_test.mjs --exai PATH --fake PATH --chromium PATH --out DIR
//
// Starts the fake upstream and `exai serve` (with a token) on ephemeral
// 127.0.0.1 ports in a scratch directory, opens the page, refuses a wrong
// token, logs in with the right one, drives slow calls through the fake
// upstream and watches the provider gauge and the in-flight table change,
// then sees the calls finish. Writes DIR/ui-page.png (busy, 1280x800) and
// DIR/ui-page-narrow.png on every run, DIR/ui-failure.png on failure.
// Exit 0 = pass, 77 = skipped (no puppeteer-core or no chromium). No fixed
// sleeps: every wait is for a condition, under a deadline.

import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import assert from "node:assert/strict";
import { DEADLINE_MS, parseArgs, processes } from "../support/processes.mjs";

const TOKEN = "ui-test-token-0123456789abcdef";
const SLOW_MS = 4000; // how long each driven call stays upstream

const { scratch, cleanup, spawnUntil } = processes("exai-ui-test-");

// Opens a WebSocket session and starts `count` slow chat calls; resolves
// with a promise of all their results.
async function slowCalls(port, count) {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
  const frames = [];
  const waiters = [];
  ws.addEventListener("message", (event) => {
    const frame = JSON.parse(event.data);
    frames.push(frame);
    for (const waiter of [...waiters]) waiter();
  });
  const until = (predicate, what) => new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), DEADLINE_MS);
    const check = () => {
      if (predicate()) {
        clearTimeout(timer);
        waiters.splice(waiters.indexOf(check), 1);
        resolve();
      }
    };
    waiters.push(check);
    check();
  });
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve, { once: true });
    ws.addEventListener("error", () => reject(new Error("websocket failed")), { once: true });
  });
  ws.send(JSON.stringify({ op: "hello", token: TOKEN }));
  await until(() => frames.some((f) => f.op === "hello_ack"), "hello_ack");
  for (let i = 0; i < count; i += 1) {
    ws.send(JSON.stringify({
      op: "call_tool",
      request_id: `slow-${i}`,
      name: "chat",
      arguments: { prompt: `ui test call ${i} [[sleep_ms=${SLOW_MS}]]`, model: "glm-4.5" },
    }));
  }
  const done = until(() => frames.filter((f) => f.op === "call_tool_res").length === count, "results")
    .then(() => {
      ws.close();
      return frames.filter((f) => f.op === "call_tool_res");
    });
  return done;
}

async function main() {
  const args = parseArgs(process.argv, ["exai", "fake", "chromium", "out"]);
  let puppeteer;
  try {
    puppeteer = (await import("puppeteer-core")).default;
  } catch {
    console.error("skip: puppeteer-core not installed (npm ci --prefix tests/ui)");
    return 77;
  }
  if (!existsSync(args.chromium)) {
    console.error(`skip: no chromium at ${args.chromium} (apt-get install chromium)`);
    return 77;
  }

  rmSync(join(args.out, "ui-failure.png"), { force: true }); // from an earlier run
  const fake = await spawnUntil(args.fake, ["--port", "0"], { stdio: ["pipe", "pipe", "inherit"] },
    "stdout", /listening on 127\.0\.0\.1:(\d+)/);
  const fakePort = Number(fake.match[1]);
  const env = {
    PATH: process.env.PATH,
    HOME: scratch,
    EXAI_STATE_DIR: join(scratch, "state"),
    EXAI_WS_TOKEN: TOKEN,
    GLM_API_KEY: "fake-glm-key-for-tests",
    GLM_API_URL: `http://127.0.0.1:${fakePort}/v1`,
    KIMI_API_KEY: "fake-kimi-key-for-tests",
    KIMI_API_URL: `http://127.0.0.1:${fakePort}/v1`,
    EXAI_WS_GLM_MAX_INFLIGHT: "2",
    EXAI_SHUTDOWN_GRACE_SECS: "0",
  };
  const daemon = await spawnUntil(args.exai, ["serve", "--port", "0"],
    { cwd: scratch, env, stdio: ["ignore", "ignore", "pipe"] }, "stderr", /serve listening host=\S+ port=(\d+)/);
  daemon.child.stderr.on("data", () => {});
  const base = `http://127.0.0.1:${Number(daemon.match[1])}`;
  const port = Number(daemon.match[1]);

  const browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    args: ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-dev-shm-usage",
      "--no-first-run", "--disable-extensions", `--user-data-dir=${join(scratch, "chromium")}`],
    defaultViewport: { width: 1280, height: 800 },
  });
  const page = await browser.newPage();
  const problems = [];
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    // Failed loads are reported with their URL by the response handler.
    if (message.type() === "error" && !/Failed to load resource/.test(message.text())) {
      problems.push(`console: ${message.text()}`);
    }
  });
  page.on("requestfailed", (request) => problems.push(`request failed: ${request.url()}`));
  page.on("response", (response) => {
    const status = response.status();
    if (status >= 400 && !(status === 401 && response.url().endsWith("/api/top"))) {
      problems.push(`${status} for ${response.url()}`);
    }
  });
  page.on("request", (request) => {
    const url = new URL(request.url());
    if (url.origin !== base) problems.push(`request to another origin: ${request.url()}`);
    if (url.search.includes(TOKEN)) problems.push(`token in a URL: ${request.url()}`);
  });
  const wait = (fn, ...rest) => page.waitForFunction(fn, { timeout: DEADLINE_MS, polling: 50 }, ...rest);

  try {
    const response = await page.goto(`${base}/`, { waitUntil: "domcontentloaded" });
    assert.equal(response.status(), 200);
    const csp = response.headers()["content-security-policy"];
    assert.ok(csp && csp.includes("default-src 'self'"), `CSP missing: ${csp}`);
    assert.ok(!csp.includes("unsafe-inline"), csp);

    // No token yet: the page asks for one.
    await wait(() => !document.getElementById("login").hidden);
    await page.type("#token", "not-the-right-token-000000");
    await page.keyboard.press("Enter");
    await wait(() => !document.getElementById("login-error").hidden);
    const error = await page.$eval("#login-error", (e) => e.textContent);
    assert.match(error, /wrong token/i);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("exai-token")), null);

    // The right token: the view opens, nothing in flight.
    await page.type("#token", TOKEN);
    await page.click("#login-button");
    await wait(() => !document.getElementById("view").hidden);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("exai-token")), TOKEN);
    assert.equal(await page.evaluate(() => document.cookie), "");
    await wait(() => document.querySelector('.gauge[data-scope="provider glm"] meter')?.value === 0);
    await wait(() => document.querySelector("#inflight tbody tr.empty") !== null);

    // Three slow calls on a provider with capacity 2: two run, one waits.
    const results = slowCalls(port, 3);
    await wait(() => document.querySelector('.gauge[data-scope="provider glm"] meter')?.value === 2);
    await wait(() => document.querySelectorAll("#inflight tbody tr:not(.empty)").length === 3);
    await wait(() => {
      const states = [...document.querySelectorAll("#inflight tbody tr td:nth-child(5)")].map((c) => c.textContent);
      return states.filter((s) => s === "running").length === 2 &&
        states.filter((s) => s === "waiting for provider (glm)").length === 1;
    });
    const gaugeText = await page.$eval('.gauge[data-scope="provider glm"] .nums', (e) => e.textContent);
    assert.match(gaugeText, /2 \/ 2 in use · 1 waiting/);
    const body = await page.evaluate(() => document.body.textContent);
    assert.ok(!body.includes("ui test call"), "prompt text shown without EXAI_UI_SHOW_CONTENT");
    await page.screenshot({ path: join(args.out, "ui-page.png") });

    // Keyboard: Tab reaches the sort buttons; Enter sorts.
    await page.focus('#inflight th button[data-sort="tool"]');
    await page.keyboard.press("Enter");
    await wait(() => document.querySelector('#inflight th button[data-sort="tool"]').getAttribute("aria-sort") !== null);

    // They finish: the table empties and the recent calls list them.
    const finished = await results;
    assert.equal(finished.length, 3);
    assert.ok(finished.every((f) => !f.error), JSON.stringify(finished.map((f) => f.error)));
    await wait(() => document.querySelector("#inflight tbody tr.empty") !== null);
    await wait(() => [...document.querySelectorAll("#recent tbody td:nth-child(5)")]
      .filter((c) => c.textContent === "ok").length >= 3);
    await wait(() => document.querySelector('.gauge[data-scope="provider glm"] meter')?.value === 0);
    await wait(() => document.querySelectorAll("#rate rect.calls").length >= 1);

    // A narrow window: nothing sticks out sideways.
    await page.setViewport({ width: 420, height: 800 });
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `page wider than a narrow window by ${overflow}px`);
    await page.screenshot({ path: join(args.out, "ui-page-narrow.png"), fullPage: true });

    // Forgetting the token asks for it again.
    await page.click("#logout");
    await wait(() => !document.getElementById("login").hidden);
    assert.equal(await page.evaluate(() => sessionStorage.getItem("exai-token")), null);

    assert.deepEqual(problems, []);
    console.log(`ok: screenshots in ${args.out}`);
    return 0;
  } catch (error) {
    await page.screenshot({ path: join(args.out, "ui-failure.png"), fullPage: true }).catch(() => {});
    console.error(`problems seen: ${JSON.stringify(problems)}`);
    throw error;
  } finally {
    await browser.close();
  }
}

main()
  .then((code) => {
    cleanup();
    process.exit(code);
  })
  .catch((error) => {
    console.error(error);
    cleanup();
    process.exit(1);
  });
