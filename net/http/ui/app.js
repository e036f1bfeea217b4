// exai operator view: polls GET /api/top once a second and renders it.
// The token lives in sessionStorage and goes only in the Authorization
// header; nothing here is inline (the page's CSP forbids it).
"use strict";

(() => {
  const TOKEN_KEY = "exai-token";
  const POLL_MS = 1000;
  const $ = (id) => document.getElementById(id);
  const state = { sort: "elapsed_ms", descending: true, paused: false, timer: 0, last: null };

  function el(tag, text, className) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (className) node.className = className;
    return node;
  }
  function ms(value) {
    const n = Number(value) || 0;
    if (n < 1000) return `${Math.round(n)} ms`;
    if (n < 60000) return `${(n / 1000).toFixed(1)} s`;
    return `${Math.floor(n / 60000)}m ${Math.round((n % 60000) / 1000)}s`;
  }
  function fill(tbody, rows, columns, emptyText) {
    tbody.replaceChildren();
    if (rows.length === 0) {
      const tr = el("tr", null, "empty");
      const td = el("td", emptyText);
      td.colSpan = columns;
      tr.append(td);
      tbody.append(tr);
      return;
    }
    for (const cells of rows) {
      const tr = el("tr");
      for (const cell of cells) tr.append(cell);
      tbody.append(tr);
    }
  }

  function showLogin(message) {
    $("view").hidden = true;
    $("pause").hidden = true;
    $("login").hidden = false;
    const error = $("login-error");
    error.hidden = !message;
    error.textContent = message || "";
    $("status").textContent = "token needed";
    $("token").focus();
  }

  async function poll() {
    clearTimeout(state.timer);
    const token = sessionStorage.getItem(TOKEN_KEY);
    const headers = { Accept: "application/json" };
    if (token) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch("/api/top", { headers, cache: "no-store", credentials: "omit" });
    } catch (error) {
      setStatus(`daemon unreachable (${error.message}); retrying`, true);
      state.timer = setTimeout(poll, POLL_MS * 2);
      return;
    }
    if (response.status === 401) {
      sessionStorage.removeItem(TOKEN_KEY);
      showLogin(token ? "Wrong token: the daemon refused it." : "");
      return;
    }
    if (!response.ok) {
      setStatus(`daemon answered ${response.status}; retrying`, true);
      state.timer = setTimeout(poll, POLL_MS * 2);
      return;
    }
    const snapshot = await response.json();
    state.last = snapshot;
    $("login").hidden = true;
    $("view").hidden = false;
    $("pause").hidden = false;
    $("logout").hidden = !token;
    render(snapshot);
    if (!state.paused) state.timer = setTimeout(poll, POLL_MS);
  }

  function setStatus(text, bad) {
    const status = $("status");
    status.textContent = text;
    status.classList.toggle("bad", Boolean(bad));
  }

  function render(s) {
    const d = s.daemon;
    const reasons = d.degraded_reasons.length ? ` — ${d.degraded_reasons.join("; ")}` : "";
    setStatus(`${d.healthy ? "healthy" : "degraded"} · ${d.state} on ${d.host}:${d.port} · pid ${d.pid} · ` +
      `up ${d.uptime_human} · ${d.connections} connections · ${d.sessions} sessions · ` +
      `${d.mcp_sessions} MCP sessions${reasons}`, !d.healthy);
    renderGauges(s.scopes);
    renderInflight(s.inflight, s.show_content);
    renderProviders(s.providers);
    renderRecent(s.recent);
    renderUsage(s.usage);
    renderRate(s.per_minute);
  }

  function renderGauges(scopes) {
    const box = $("gauges");
    box.replaceChildren();
    for (const scope of scopes) {
      const gauge = el("div", null, "gauge");
      gauge.dataset.scope = scope.name;
      if (scope.waiting > 0) gauge.classList.add("waiting");
      const id = `gauge-${scope.name.replace(/\W+/g, "-")}`;
      const name = el("label", scope.name, "name");
      name.htmlFor = id;
      const meter = el("meter");
      meter.id = id;
      meter.min = 0;
      meter.max = Math.max(1, scope.capacity);
      meter.value = scope.in_use;
      meter.high = meter.max * 0.8;
      meter.optimum = 0;
      const nums = el("div", `${scope.in_use} / ${scope.capacity} in use · ${scope.waiting} waiting`, "nums");
      gauge.append(name, meter, nums);
      box.append(gauge);
    }
  }

  function renderInflight(calls, showContent) {
    const filter = $("filter").value.trim().toLowerCase();
    const shown = calls.filter((c) => !filter || c.tool.toLowerCase().includes(filter) ||
      c.session.toLowerCase().includes(filter));
    const key = state.sort;
    shown.sort((a, b) => {
      const x = a[key];
      const y = b[key];
      const order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
      return state.descending ? -order : order;
    });
    $("inflight-count").textContent = String(calls.length);
    const rows = [];
    for (const c of shown) {
      const stateText = c.state === "waiting" && c.waiting_for ? `waiting for ${c.waiting_for}` : c.state;
      const cells = [el("td", c.tool), el("td", c.model || "—"), el("td", c.provider || "—"),
        el("td", c.session), el("td", stateText, `state-${c.state}`), el("td", ms(c.elapsed_ms), "num")];
      rows.push(cells);
      if (showContent && c.prompt) {
        const prompt = el("td", c.prompt, "prompt");
        prompt.colSpan = 6;
        rows.push([prompt]);
      }
    }
    fill(document.querySelector("#inflight tbody"), rows, 6, "no calls in flight");
    for (const button of document.querySelectorAll("#inflight th button")) {
      if (button.dataset.sort === key) button.setAttribute("aria-sort", state.descending ? "descending" : "ascending");
      else button.removeAttribute("aria-sort");
    }
  }

  function renderProviders(providers) {
    const rows = providers.map((p) => [el("td", p.id), el("td", p.circuit, `circuit-${p.circuit}`),
      el("td", `${p.in_use ?? 0} / ${p.capacity ?? 0}`, "num"),
      // Histogram quantiles are bucket upper bounds.
      el("td", p.upstream && p.upstream.count ? `≤ ${ms(p.upstream.p50_ms)}` : "—", "num"),
      el("td", p.upstream && p.upstream.count ? `≤ ${ms(p.upstream.p95_ms)}` : "—", "num"),
      el("td", p.first_token && p.first_token.count ? `≤ ${ms(p.first_token.p50_ms)}` : "—", "num")]);
    fill(document.querySelector("#providers tbody"), rows, 6, "no providers");
  }

  function tokens(usage) {
    if (!usage) return "—";
    const total = (usage.total_tokens ?? ((usage.prompt_tokens || 0) + (usage.completion_tokens || 0)));
    return total ? String(total) : "—";
  }

  function renderRecent(recent) {
    const rows = [];
    for (const r of recent) {
      const ok = r.outcome === "ok";
      rows.push([el("td", (r.t || "").replace("T", " ").replace(/\.\d+Z$/, "Z")), el("td", r.tool),
        el("td", r.model || "—"), el("td", r.session), el("td", r.outcome, ok ? "outcome-ok" : "outcome-bad"),
        el("td", ms(r.duration_ms), "num"), el("td", tokens(r.usage), "num")]);
      if (r.prompt || r.output) {
        const text = el("td", `${r.prompt ? `prompt: ${r.prompt}` : ""}${r.prompt && r.output ? " · " : ""}` +
          `${r.output ? `answer: ${r.output}` : ""}`, "prompt");
        text.colSpan = 7;
        rows.push([text]);
      }
    }
    fill(document.querySelector("#recent tbody"), rows, 7, "no finished calls yet");
  }

  function renderUsage(usage) {
    const rows = (usage.by_model || []).map((m) => [el("td", m.provider), el("td", m.model),
      el("td", m.calls, "num"), el("td", m.tokens.prompt ?? 0, "num"), el("td", m.tokens.completion ?? 0, "num"),
      el("td", m.tokens.cached ?? 0, "num"), el("td", m.cost === undefined ? "—" : m.cost.toFixed(4), "num")]);
    fill(document.querySelector("#usage tbody"), rows, 7, "no tokens reported yet");
  }

  function renderRate(minutes) {
    const svg = $("rate");
    svg.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    const now = Math.floor(Date.now() / 60000);
    const byMinute = new Map(minutes.map((m) => [m.minute, m]));
    let peak = 1;
    for (const m of minutes) peak = Math.max(peak, m.calls);
    const width = 300 / 60;
    for (let i = 0; i < 60; i += 1) {
      const m = byMinute.get(now - 59 + i);
      if (!m) continue;
      for (const [kind, value] of [["calls", m.calls], ["errors", m.errors]]) {
        if (!value) continue;
        const rect = document.createElementNS(ns, "rect");
        const height = (value / peak) * 56;
        rect.setAttribute("x", String(i * width + 0.5));
        rect.setAttribute("width", String(width - 1));
        rect.setAttribute("y", String(58 - height));
        rect.setAttribute("height", String(height));
        rect.setAttribute("class", kind);
        const title = document.createElementNS(ns, "title");
        title.textContent = `${value} ${kind}`;
        rect.append(title);
        svg.append(rect);
      }
    }
  }

  function init() {
    $("login").addEventListener("submit", (event) => {
      event.preventDefault();
      const token = $("token").value.trim();
      if (!token) return;
      sessionStorage.setItem(TOKEN_KEY, token);
      $("token").value = "";
      $("login-error").hidden = true;
      poll();
    });
    $("logout").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      clearTimeout(state.timer);
      showLogin("");
    });
    $("pause").addEventListener("click", () => {
      state.paused = !state.paused;
      $("pause").textContent = state.paused ? "Resume" : "Pause";
      if (!state.paused) poll();
      else clearTimeout(state.timer);
    });
    $("filter").addEventListener("input", () => { if (state.last) renderInflight(state.last.inflight, state.last.show_content); });
    for (const button of document.querySelectorAll("#inflight th button")) {
      button.addEventListener("click", () => {
        if (state.sort === button.dataset.sort) state.descending = !state.descending;
        else { state.sort = button.dataset.sort; state.descending = state.sort === "elapsed_ms"; }
        if (state.last) renderInflight(state.last.inflight, state.last.show_content);
      });
    }
    poll();
  }

  document.addEventListener("DOMContentLoaded", init);
})();
