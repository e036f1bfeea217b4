#!/usr/bin/env bash
# Benchmark (SPEC §7, issue 6): the same `exai stress` workload against
#   1. exai serve,
#   2. a minimal op-protocol daemon on Node's `ws` (tests/bench/node, no capacity control),
#   3. the same on Python `websockets` (tests/bench/python, Debian python3-websockets),
# with the fake upstream at zero latency behind all three for the chat rows, and a
# second, keep-alive fake that adds BENCH_CONNECT_DELAY_MS (default 20) of "network"
# latency to every NEW connection behind a second set of the servers for the
# chat_far rows: what upstream connection pooling saves. Chat rows compare like with
# like: `chat` rows are streamed (exai's default; the baselines with UPSTREAM_STREAM=1),
# `chat_plain` rows are plain requests (exai with EXAI_UPSTREAM_STREAM=false, the
# baselines without); the fake's CPU per call is printed too (it shares the cores).
# Prints calls/s, p50/p99 and server CPU per call at 1, 64 and 1,000
# connections for `version` and `chat`, the exai/Node and exai/Python ratios,
# exai RSS idle and at 10,000 idle connections, `exai health` wall time,
# start-up time to the first accepted connection, and chat p99 through exai vs
# the fake upstream called directly with curl (streamed and plain), next to what
# a minimal TCP relay in between adds (tests/tools/tcp_relay_main.cpp: the
# floor for any process in the path). Figures are printed, never asserted.
#
# Usage: scripts/bench.sh            (builds build/release; about 20 minutes with the defaults,
#                                    8 with BENCH_CALLS=8000)
#   BENCH_CALLS=N        calls per row and round at 64 and 1,000 connections (default
#                        20000; N/4 at 1 connection; chat: a quarter of those)
#   BENCH_ROUNDS=N       rounds of every row (default 3): each round runs every server once,
#                        in turn, so drift of a noisy machine falls on all of them alike;
#                        each cell is the median of its rounds
#   BENCH_IDLE=N         idle connections for the RSS figure (default 10000)
#   BENCH_SKIP_BUILD=1   use the existing build/release binaries
#   BENCH_CONNECT_DELAY_MS=N  per-new-connection delay of the chat_far fake (default 20)
#   BENCH_BASELINE_EXAI=PATH  also measure another exai binary (e.g. a release build of
#                        an earlier commit) in the same run, as "base", and print
#                        exai/base ratios: a before/after table from one invocation
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build/release
calls=${BENCH_CALLS:-20000}
rounds=${BENCH_ROUNDS:-3}
connect_delay=${BENCH_CONNECT_DELAY_MS:-20}
idle=${BENCH_IDLE:-10000}
py=/usr/bin/python3 # Debian's, which has python3-websockets
# exai's chat tool sends this system prompt; the baselines (which read
# SYSTEM_PROMPT_FILE; exai runs under env -i) and the direct curl calls send it
# too, so the fake, which shares the cores, parses the same request from each of
# them and the rows compare the daemons, not their request sizes.
prompt_file=$root/core/tools/prompts/chat.txt
export SYSTEM_PROMPT_FILE=$prompt_file

if [[ -z ${BENCH_SKIP_BUILD:-} ]]; then
  echo "== building Release in $build" >&2
  # Warnings stay warnings here: g++ 12 -O2 reports a false -Wnull-dereference
  # inside CLI11 (cmd/main.cpp) that would stop the Release build.
  (cd "$root" && cmake --preset release -DEXAI_WARNINGS_AS_ERRORS=OFF >/dev/null &&
    cmake --build "$build" --target exai exai_fake_upstream exai_bench_relay >&2)
fi
exai=$build/cmd/exai
fake_bin=$build/tests/exai_fake_upstream
relay_bin=$build/tests/exai_bench_relay
[[ -x $exai && -x $fake_bin && -x $relay_bin ]] ||
  { echo "bench: missing $exai, $fake_bin or $relay_bin" >&2; exit 1; }
"$py" -c 'import websockets' || { echo "bench: apt-get install python3-websockets" >&2; exit 1; }
(cd "$root/tests/bench/node" && npm ci --no-audit --no-fund --silent >&2)

BENCH_NAME=exai-bench
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"
ulimit -n "$(ulimit -Hn)"
# wait_port PORT: until something accepts on 127.0.0.1:PORT.
wait_port() {
  "$py" - "$1" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=0.1).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.005)
sys.exit("bench: nothing listens on port " + sys.argv[1])
EOF
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- the fake upstream ------------------------------------------------------
"$fake_bin" --port 0 --latency-ms 0 --max-threads 8192 --ignore-stdin >"$work/fake.out" 2>&1 &
fake_pid=$!
pids+=($fake_pid)
wait_line "$work/fake.out" "listening on"
fake_port=$(grep -o '[0-9]*$' "$work/fake.out" | head -1)
upstream=http://127.0.0.1:$fake_port/v1
"$fake_bin" --port 0 --latency-ms 0 --max-threads 8192 --connect-delay-ms "$connect_delay" \
  --ignore-stdin >"$work/fake_far.out" 2>&1 &
far_fake_pid=$!
pids+=($far_fake_pid)
wait_line "$work/fake_far.out" "listening on"
far_upstream=http://127.0.0.1:$(grep -o '[0-9]*$' "$work/fake_far.out" | head -1)/v1

exai_env=(env -i "PATH=$PATH" "HOME=$work" "EXAI_STATE_DIR=$work/state"
  "GLM_API_KEY=test-key" "GLM_API_URL=$upstream"
  MAX_CONNECTIONS=30000 MAX_CONNECTIONS_PER_IP=30000
  EXAI_WS_GLOBAL_MAX_INFLIGHT=2048 EXAI_WS_GLM_MAX_INFLIGHT=2048)

# --- start-up time to the first accepted connection (median of 5) --------------
startup_ms=$("$py" - "$exai" "$work" "$upstream" <<'EOF'
import os, socket, statistics, subprocess, sys, time
exai, work, upstream = sys.argv[1:4]
env = {"PATH": os.environ["PATH"], "HOME": work, "EXAI_STATE_DIR": work + "/state-startup",
       "GLM_API_KEY": "test-key", "GLM_API_URL": upstream}
times = []
for _ in range(5):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    t0 = time.perf_counter()
    p = subprocess.Popen([exai, "serve", "--port", str(port)], env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
            break
        except OSError:
            if time.perf_counter() - t0 > 10:
                sys.exit("exai serve did not start")
            time.sleep(0.0005)
    times.append((time.perf_counter() - t0) * 1000)
    p.terminate(); p.wait()
print("%.1f" % statistics.median(times))
EOF
)

# --- the three servers ----------------------------------------------------------
exai_port=$(free_port)
"${exai_env[@]}" "$exai" serve --port "$exai_port" 2>"$work/exai.log" &
exai_pid=$!
pids+=($exai_pid)
node_port=$(free_port)
UPSTREAM_URL=$upstream node "$root/tests/bench/node/server.js" "$node_port" >"$work/node.out" 2>&1 &
node_pid=$!
pids+=($node_pid)
nodes_port=$(free_port)
UPSTREAM_URL=$upstream UPSTREAM_STREAM=1 node "$root/tests/bench/node/server.js" "$nodes_port" \
  >"$work/node-stream.out" 2>&1 &
nodes_pid=$!
pids+=($nodes_pid)
python_port=$(free_port)
UPSTREAM_URL=$upstream "$py" "$root/tests/bench/python/server.py" "$python_port" >"$work/python.out" 2>&1 &
python_pid=$!
pids+=($python_pid)
pys_port=$(free_port)
UPSTREAM_URL=$upstream UPSTREAM_STREAM=1 "$py" "$root/tests/bench/python/server.py" "$pys_port" \
  >"$work/python-stream.out" 2>&1 &
pys_pid=$!
pids+=($pys_pid)
# chat_plain rows: exai without streaming, the same work as the baselines' plain
# requests (what streaming costs exai and the fake is the difference).
plain_port=$(free_port)
"${exai_env[@]}" EXAI_STATE_DIR="$work/state-plain" EXAI_UPSTREAM_STREAM=false "$exai" serve \
  --port "$plain_port" 2>"$work/plain.log" &
plain_pid=$!
pids+=($plain_pid)
wait_port "$plain_port"
wait_port "$exai_port"
wait_port "$node_port"
wait_port "$nodes_port"
wait_port "$python_port"
wait_port "$pys_port"
servers=("exai $exai_port $exai_pid" "node $node_port $node_pid" "python $python_port $python_pid")
# NAME PORT PID ROW: which server answers which chat row.
chat_servers=("exai $exai_port $exai_pid chat" "node $nodes_port $nodes_pid chat"
  "python $pys_port $pys_pid chat"
  "exai $plain_port $plain_pid chat_plain" "node $node_port $node_pid chat_plain"
  "python $python_port $python_pid chat_plain")
if [[ -n ${BENCH_BASELINE_EXAI:-} ]]; then
  base_port=$(free_port)
  "${exai_env[@]}" EXAI_STATE_DIR="$work/state-base" "$BENCH_BASELINE_EXAI" serve \
    --port "$base_port" 2>"$work/base.log" &
  base_pid=$!
  pids+=($base_pid)
  wait_port "$base_port"
  servers+=("base $base_port $base_pid")
  chat_servers+=("base $base_port $base_pid chat")
fi

# The same servers again, behind the far fake (chat_far rows).
far_servers=()
start_far() { # NAME COMMAND...: runs COMMAND PORT in the background as server NAME
  local name=$1 port pid
  shift
  port=$(free_port)
  "$@" "$port" >"$work/$name-far.out" 2>&1 &
  pid=$!
  pids+=($pid)
  wait_port "$port"
  far_servers+=("$name $port $pid")
}
# exec: the measured pid is the daemon's own.
exai_far() {
  exec "${exai_env[@]}" GLM_API_URL="$far_upstream" EXAI_STATE_DIR="$work/state-far-$1" \
    "$2" serve --port "$3"
}
start_far exai exai_far exai "$exai"
start_far node env UPSTREAM_URL="$far_upstream" UPSTREAM_STREAM=1 node \
  "$root/tests/bench/node/server.js"
start_far python env UPSTREAM_URL="$far_upstream" UPSTREAM_STREAM=1 "$py" \
  "$root/tests/bench/python/server.py"
if [[ -n ${BENCH_BASELINE_EXAI:-} ]]; then
  start_far base exai_far base "$BENCH_BASELINE_EXAI"
fi

results=$work/results.jsonl
# run NAME PORT PID TOOL CONNECTIONS CALLS [ROW]: one stress run, one line of
# results (labelled ROW, default TOOL).
run() {
  local name=$1 port=$2 pid=$3 tool=$4 conns=$5 n=$6 row=${7:-$4} before after fake fake_before
  fake=$fake_pid
  [[ $row == chat_far ]] && fake=$far_fake_pid
  before=$(cpu_ticks "$pid")
  fake_before=$(cpu_ticks "$fake")
  env -i "PATH=$PATH" "HOME=$work" "$exai" --log-level error stress --json \
    --url "ws://127.0.0.1:$port/" --connections "$conns" --calls "$n" --mix normal=1 \
    --tool "$tool" --drain-timeout 10 --rss-tolerance 100000% >"$work/run.json" || true
  after=$(cpu_ticks "$pid")
  "$py" - "$work/run.json" "$name" "$row" "$conns" "$((after - before))" \
    "$(getconf CLK_TCK)" "$(($(cpu_ticks "$fake") - fake_before))" >>"$results" <<'EOF'
import json, sys
path, name, tool, conns, ticks, hz, fake_ticks = sys.argv[1:8]
r = json.load(open(path))
calls = max(1, r.get("calls", 0))
lat = r.get("latency_ms", {}).get("all", {})
print(json.dumps({"server": name, "tool": tool, "connections": int(conns),
                  "calls": r.get("calls", 0), "ok": r.get("outcomes", {}).get("ok", 0),
                  "calls_per_s": r.get("calls_per_s", 0), "p50": lat.get("p50", 0),
                  "p99": lat.get("p99", 0),
                  "cpu_us_per_call": int(ticks) * 1e6 / int(hz) / calls,
                  "fake_cpu_us_per_call": int(fake_ticks) * 1e6 / int(hz) / calls}))
EOF
  echo "   $name $row x$conns: $(tail -1 "$results")" >&2
}

# --- exai RSS idle and at $idle idle connections --------------------------------
rss_idle=$(rss_kib "$exai_pid")
env -i "PATH=$PATH" "HOME=$work" "$exai" --log-level error stress --json \
  --url "ws://127.0.0.1:$exai_port/" --connections "$idle" --calls 1 --mix normal=1 \
  --hold 4 --drain-timeout 1 >/dev/null 2>&1 &
holder=$!
"$py" - "$exai_port" "$idle" <<'EOF'
import json, sys, time, urllib.request
port, want = sys.argv[1], int(sys.argv[2])
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        with urllib.request.urlopen("http://127.0.0.1:%s/health" % port, timeout=2) as r:
            body = r.read()
    except urllib.error.HTTPError as e:
        body = e.read()
    except OSError:
        body = b"{}"
    if json.loads(body or b"{}").get("connections", 0) >= want:
        sys.exit(0)
    time.sleep(0.05)
sys.exit("bench: the idle connections did not all open")
EOF
rss_held=$(rss_kib "$exai_pid")
wait "$holder" || true

# --- exai health wall time (median of 10) ----------------------------------------
health_ms=$("$py" - "$exai" "$exai_port" "$work" <<'EOF'
import os, statistics, subprocess, sys, time
exai, port, work = sys.argv[1:4]
env = {"PATH": os.environ["PATH"], "HOME": work, "EXAI_STATE_DIR": work + "/state"}
times = []
for _ in range(10):
    t0 = time.perf_counter()
    rc = subprocess.run([exai, "health", "--url", "http://127.0.0.1:" + port], env=env, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode
    times.append((time.perf_counter() - t0) * 1000)
    if rc not in (0, 1):
        print("n/a (exai health exits %d)" % rc)
        sys.exit(0)
print("%.1f ms" % statistics.median(times))
EOF
)

# --- throughput and latency -------------------------------------------------------
echo "== warm-up" >&2
for s in "${servers[@]}"; do
  set -- $s
  run "$1" "$2" "$3" version 8 2000
done
for s in "${chat_servers[@]}"; do
  set -- $s
  run "$1" "$2" "$3" chat 8 500 "$4"
done
for s in "${far_servers[@]}"; do
  set -- $s
  run "$1" "$2" "$3" chat 8 200 chat_far
done
: >"$results"
echo "== measuring" >&2
for tool in version chat; do
  for conns in 1 64 1000; do
    n=$calls
    [[ $conns == 1 ]] && n=$((calls / 4)) # enough calls for 10 ms CPU ticks to resolve
    [[ $tool == chat ]] && n=$((n / 4))
    for _ in $(seq 1 "$rounds"); do
      if [[ $tool == version ]]; then
        for s in "${servers[@]}"; do
          set -- $s
          run "$1" "$2" "$3" version "$conns" "$n"
        done
      else
        for s in "${chat_servers[@]}"; do
          set -- $s
          run "$1" "$2" "$3" chat "$conns" "$n" "$4"
        done
      fi
    done
  done
done
for conns in 1 64 1000; do
  n=$((calls / 4))
  [[ $conns == 1 ]] && n=$((calls / 16))
  for _ in $(seq 1 "$rounds"); do
    for s in "${far_servers[@]}"; do
      set -- $s
      run "$1" "$2" "$3" chat "$conns" "$n" chat_far
    done
  done
done

# --- chat through exai vs the fake upstream directly (1 connection, keep-alive) ---
# and through a minimal relay (the floor of any process in between).
"$relay_bin" "$fake_port" >"$work/relay.out" 2>&1 &
pids+=($!)
wait_line "$work/relay.out" "listening on"
relay_port=$(grep -o '[0-9]*$' "$work/relay.out" | head -1)
urls=()
relay_urls=()
for _ in $(seq 1 1000); do
  urls+=("$upstream/chat/completions")
  relay_urls+=("http://127.0.0.1:$relay_port/v1/chat/completions")
done
# The request exai's chat sends, streamed and plain: direct-true.json, direct-false.json.
"$py" - "$prompt_file" "$work" <<'EOF'
import json, sys
for stream in (True, False):
    with open("%s/direct-%s.json" % (sys.argv[2], str(stream).lower()), "w") as f:
        json.dump({"model": "glm-4.5-flash", "stream": stream,
                   "messages": [{"role": "system", "content": open(sys.argv[1]).read()},
                                {"role": "user", "content": "bench direct"}]}, f)
EOF
# direct STREAM FILE [URL...]: 1000 requests from one curl (to the fake, or
# the URLs given), each one's time_total in FILE.
direct() {
  local stream=$1 file=$2
  shift 2
  (($#)) || set -- "${urls[@]}"
  curl -s -X POST -H 'Content-Type: application/json' -H 'Authorization: Bearer test-key' \
    --data-binary "@$work/direct-$stream.json" \
    -w '%{stderr}%{time_total}\n' "$@" >/dev/null 2>"$file"
}
for r in $(seq 1 "$rounds"); do
  direct true "$work/direct-stream.$r.txt"
  direct true "$work/relay-stream.$r.txt" "${relay_urls[@]}"
  direct false "$work/direct-plain.$r.txt"
  direct false "$work/relay-plain.$r.txt" "${relay_urls[@]}"
done

# --- the table ----------------------------------------------------------------------
"$py" - "$results" "$work" "$rss_idle" "$rss_held" "$idle" "$health_ms" "$startup_ms" \
  "$connect_delay" "$rounds" <<'EOF'
import collections, json, statistics, sys
results, work, rss_idle, rss_held, idle, health, startup, delay, rounds = sys.argv[1:10]
rows = [json.loads(l) for l in open(results) if l.strip()]
# One cell per server, row and connections: the median of its rounds (calls and ok summed).
grouped = collections.defaultdict(list)
for r in rows:
    grouped[(r["server"], r["tool"], r["connections"])].append(r)
by = {}
for key, rs in grouped.items():
    cell = {k: statistics.median(r[k] for r in rs) for k in
            ("calls_per_s", "p50", "p99", "cpu_us_per_call", "fake_cpu_us_per_call")}
    cell.update(calls=sum(r["calls"] for r in rs), ok=sum(r["ok"] for r in rs))
    by[key] = cell
def ratio(a, b):
    return "%.2f" % (a / b) if b else "n/a"
print("exai benchmark: exai stress client, fake upstream at 0 ms, Release build; every cell"
      " is the median of %s alternating rounds; chat_far: the fake adds %s ms to every new"
      " connection (keep-alive)" % (rounds, delay))
print("%-15s | %-31s | %-31s | %-31s | %-17s | %-17s" % (
    "workload", "exai   calls/s  p50ms  p99ms cpu", "node   calls/s  p50ms  p99ms cpu",
    "python calls/s  p50ms  p99ms cpu", "exai/node c/s p50 p99", "exai/py c/s p50 p99"))
for tool in ("version", "chat", "chat_plain", "chat_far"):
    for conns in (1, 64, 1000):
        cells = []
        for s in ("exai", "node", "python"):
            r = by.get((s, tool, conns))
            # '!' marks a row where some calls failed (its figures time the failures).
            cells.append("%13.0f%s %6.3f %6.3f %4.0f" % (
                r["calls_per_s"], "!" if r["ok"] < r["calls"] else " ", r["p50"], r["p99"],
                r["cpu_us_per_call"]) if r else "n/a")
        e, n, p = (by.get((s, tool, conns)) for s in ("exai", "node", "python"))
        rn = " ".join(ratio(e[k], n[k]) for k in ("calls_per_s", "p50", "p99")) if e and n else "n/a"
        rp = " ".join(ratio(e[k], p[k]) for k in ("calls_per_s", "p50", "p99")) if e and p else "n/a"
        print("%-10s x%-4d | %s | %s | %s | %-17s | %-17s" % (tool, conns, *cells, rn, rp))
print("(cpu = server CPU time per call in microseconds, from /proc/PID/stat utime+stime;"
      " ! = not every call succeeded; chat, chat_far = streamed: exai's default, the"
      " baselines with UPSTREAM_STREAM=1; chat_plain = plain requests: exai with"
      " EXAI_UPSTREAM_STREAM=false)")
# The fake shares the cores: what it spends per call is taken from the server measured.
for conns in (1, 64, 1000):
    f = [by.get((s, t, conns)) for t in ("chat", "chat_plain") for s in ("exai", "node")]
    if all(f):
        print("fake upstream CPU per chat call x%-4d: streamed behind exai %.0f us, node %.0f us;"
              " plain behind exai %.0f us, node %.0f us" % (
              conns, *(r["fake_cpu_us_per_call"] for r in f)))
for conns in (1, 64, 1000):
    e, n, p = (by.get((s, "version", conns)) for s in ("exai", "node", "python"))
    if e and n and p:
        print("server CPU per version call x%-4d: exai %.1f us, node %.1f us, python %.1f us;"
              " exai/node %s, exai/python %s" % (conns, e["cpu_us_per_call"], n["cpu_us_per_call"],
              p["cpu_us_per_call"], ratio(e["cpu_us_per_call"], n["cpu_us_per_call"]),
              ratio(e["cpu_us_per_call"], p["cpu_us_per_call"])))
def pct(v, q):
    import math
    return v[max(0, min(len(v) - 1, math.ceil(q / 100 * len(v)) - 1))] if v else 0
def curl_times(name, kind):
    # Medians over the rounds, as for the cells.
    runs = [sorted(float(l) * 1000 for l in open("%s/%s-%s.%d.txt" % (work, name, kind, r))
                   if l.strip()) for r in range(1, int(rounds) + 1)]
    return (statistics.median(pct(t, q) for t in runs if t) for q in (50, 99))
for tool, kind in (("chat", "stream"), ("chat_plain", "plain")):
    d50, d99 = curl_times("direct", kind)
    r50, r99 = curl_times("relay", kind)
    e1 = by.get(("exai", tool, 1))
    if e1:
        print("%s p99, 1 connection: through exai %.3f ms, fake directly (curl keep-alive) %.3f ms,"
              " exai adds %.3f ms (p50 %.3f vs %.3f); a minimal TCP relay adds %.3f ms"
              " (p50 %.3f)" % (tool, e1["p99"], d99, e1["p99"] - d99, e1["p50"], d50, r99 - d99,
              r50 - d50))
held = (int(rss_held) - int(rss_idle)) / int(idle)
print("exai RSS idle: %.1f MB; with %s idle connections: %.1f MB (%.2f KB per connection)" % (
    int(rss_idle) / 1024, idle, int(rss_held) / 1024, held))
print("exai health wall time (median of 10): %s" % health)
print("exai serve start-up to first accepted connection (median of 5): %s ms" % startup)
if any(r["server"] == "base" for r in rows):
    print("exai vs the baseline exai (BENCH_BASELINE_EXAI), same run:")
    print("%-13s | %-31s | %-31s | exai/base c/s p50 p99 cpu" % (
        "workload", "exai   calls/s  p50ms  p99ms cpu", "base   calls/s  p50ms  p99ms cpu"))
    for tool in ("version", "chat", "chat_far"):
        for conns in (1, 64, 1000):
            e, b = by.get(("exai", tool, conns)), by.get(("base", tool, conns))
            if not (e and b):
                continue
            cell = lambda r: "%13.0f%s %6.3f %6.3f %4.0f" % (
                r["calls_per_s"], "!" if r["ok"] < r["calls"] else " ", r["p50"], r["p99"],
                r["cpu_us_per_call"])
            print("%-8s x%-4d | %s | %s | %s" % (tool, conns, cell(e), cell(b), " ".join(
                ratio(e[k], b[k]) for k in ("calls_per_s", "p50", "p99", "cpu_us_per_call"))))
EOF
