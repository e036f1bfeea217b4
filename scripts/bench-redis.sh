#!/usr/bin/env bash
# Shared capacity through Redis, measured (issue 18): 1, 2, 4 and 8 `exai serve`
# daemons on this machine sharing one private redis-server, loaded at once by
# `exai stress --targets` with `chat` calls against the fake upstream at zero latency.
# Prints per row: calls/s (all daemons together), p50/p99 of a call, Redis CPU per call
# (from INFO cpu before/after) and Redis round trips per call (from the daemons' health).
# Also the latency Redis adds to one call: p50 of sequential calls on one connection with
# and without EXAI_REDIS_URL (same daemon build, same fake, rounds alternating between the
# two daemons; medians over the rounds), and redis-cli --latency.
# Figures are printed, never asserted.
#
# Usage: scripts/bench-redis.sh
#   BENCH_BUILD=DIR      build directory with cmd/exai and tests/exai_fake_upstream
#                        (default build/release, built when missing pieces)
#   BENCH_CALLS=N        calls per row (default 4000)
#   BENCH_CONNS=N        connections per daemon (default 8)
#   BENCH_DAEMONS="1 2 4 8"
#   BENCH_LAT_ROUNDS=N   alternating rounds of 1000 sequential calls per side (default 6)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=${BENCH_BUILD:-$root/build/release}
calls=${BENCH_CALLS:-4000}
conns=${BENCH_CONNS:-8}
daemons=${BENCH_DAEMONS:-1 2 4 8}
lat_rounds=${BENCH_LAT_ROUNDS:-6}
py=/usr/bin/python3

exai=$build/cmd/exai
fake_bin=$build/tests/exai_fake_upstream
if [[ ! -x $exai || ! -x $fake_bin ]]; then
  echo "== building Release in $build" >&2
  (cd "$root" && cmake --preset release -DEXAI_WARNINGS_AS_ERRORS=OFF >/dev/null &&
    cmake --build "$build" --target exai exai_fake_upstream >&2)
fi
command -v redis-server >/dev/null || { echo "bench: apt-get install redis-server" >&2; exit 1; }

BENCH_NAME=exai-bench-redis
# shellcheck source=scripts/bench-lib.sh
source "$(dirname "$0")/bench-lib.sh"

# --- the private Redis and the fake upstream ---------------------------------------
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
  --loglevel warning >"$work/redis.log" 2>&1 </dev/null &
pids+=($!)
for i in $(seq 1 2000); do
  [[ $(redis-cli -p "$redis_port" ping 2>/dev/null) == PONG ]] && break
  sleep 0.01
done
redis_cpu() { # seconds of CPU the server has used
  redis-cli -p "$redis_port" info cpu | tr -d '\r' |
    awk -F: '/^used_cpu_sys:/ {s=$2} /^used_cpu_user:/ {u=$2} END {printf "%.6f", s + u}'
}

"$fake_bin" --port 0 --latency-ms 0 --max-threads 512 --ignore-stdin >"$work/fake.out" 2>&1 </dev/null &
pids+=($!)
wait_line "$work/fake.out" "listening on"
fake_port=$(sed -n 's/.*listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$work/fake.out")

# start_daemon NAME [ENV...]: starts exai serve; sets daemon_port and daemon_pid.
# (Not in a $(...): the daemon would hold the substitution's pipe open.)
start_daemon() {
  local name=$1
  shift
  mkdir -p "$work/$name"
  env -i "PATH=$PATH" "HOME=$work" "EXAI_STATE_DIR=$work/$name" \
    "GLM_API_KEY=bench-key-0123456789" "GLM_API_URL=http://127.0.0.1:$fake_port/v1" \
    "EXAI_WS_GLOBAL_MAX_INFLIGHT=256" "EXAI_WS_GLM_MAX_INFLIGHT=256" \
    "EXAI_WS_SESSION_MAX_INFLIGHT=64" "EXAI_UPSTREAM_STREAM=false" "$@" \
    "$exai" serve --port 0 >/dev/null 2>"$work/$name.log" &
  daemon_pid=$!
  pids+=("$daemon_pid")
  wait_line "$work/$name.log" "serve listening"
  daemon_port=$(sed -n 's/.*serve listening host=[^ ]* port=\([0-9]*\).*/\1/p' "$work/$name.log" | head -1)
}

# stress URLS CONNS CALLS: one run; prints its JSON file.
stress() {
  local out=$work/stress.$RANDOM.json
  env -i "PATH=$PATH" "HOME=$work" "$exai" --log-level error stress --json \
    --targets "$1" --connections "$2" --calls "$3" --mix normal=1 --tool chat \
    --drain-timeout 10 --rss-tolerance 100000% >"$out" || true
  echo "$out"
}

# --- added latency of the Redis round trips (1 daemon, 1 connection, sequential) ----
echo "== latency: 1 connection, sequential chat calls" >&2
start_daemon plain
plain=$daemon_port
plain_pid=$daemon_pid
start_daemon shared "EXAI_REDIS_URL=redis://127.0.0.1:$redis_port"
shared=$daemon_port
shared_pid=$daemon_pid
stress "ws://127.0.0.1:$plain/" 1 300 >/dev/null # warm-up
stress "ws://127.0.0.1:$shared/" 1 300 >/dev/null
# Alternating rounds, so a noisy moment of this shared machine hits both sides.
lat_files=()
for round in $(seq 1 "$lat_rounds"); do
  lat_files+=("$(stress "ws://127.0.0.1:$plain/" 1 1000)" "$(stress "ws://127.0.0.1:$shared/" 1 1000)")
done
"$py" - "${lat_files[@]}" <<'EOF'
import json, statistics, sys
def p(path, q):
    t = json.load(open(path))["targets"][0]
    return t.get("latency_ms", {}).get("all", {}).get(q, 0)
plain, shared = sys.argv[1::2], sys.argv[2::2]
a50 = statistics.median(p(f, "p50") for f in plain)
b50 = statistics.median(p(f, "p50") for f in shared)
a99 = statistics.median(p(f, "p99") for f in plain)
b99 = statistics.median(p(f, "p99") for f in shared)
diffs = sorted(p(b, "p50") - p(a, "p50") for a, b in zip(plain, shared))
print("   without Redis: p50 %.3f ms  p99 %.3f ms (medians of %d rounds)" % (a50, a99, len(plain)))
print("   with Redis:    p50 %.3f ms  p99 %.3f ms" % (b50, b99))
print("   added by Redis (p50 difference): %.3f ms per call (per round: %s)" %
      (b50 - a50, " ".join("%.3f" % d for d in diffs)))
EOF
echo "   redis-cli --latency (one PING round trip, 200 samples):" \
  "$(timeout 5 redis-cli -p "$redis_port" --latency -i 1 --raw 2>/dev/null | head -1 || true)"
kill "$plain_pid" "$shared_pid"
wait "$plain_pid" "$shared_pid" 2>/dev/null || true

# --- 1, 2, 4, 8 daemons sharing one Redis ------------------------------------------
printf "%-8s %10s %9s %9s %14s %12s %10s\n" daemons "calls/s" "p50 ms" "p99 ms" \
  "redis us/call" "rt/call" "ok"
for n in $daemons; do
  urls=()
  started=()
  for i in $(seq 1 "$n"); do
    start_daemon "d$n-$i" "EXAI_REDIS_URL=redis://127.0.0.1:$redis_port"
    started+=("$daemon_pid")
    urls+=("ws://127.0.0.1:$daemon_port/")
  done
  list=$(IFS=,; echo "${urls[*]}")
  stress "$list" "$((conns * n))" "$((calls / 4))" >/dev/null # warm-up
  before=$(redis_cpu)
  out=$(stress "$list" "$((conns * n))" "$calls")
  after=$(redis_cpu)
  rt=0
  for u in "${urls[@]}"; do
    p=${u#ws://127.0.0.1:}
    p=${p%/}
    rt=$("$py" -c "import json,sys,urllib.request; h=json.load(urllib.request.urlopen('http://127.0.0.1:$p/health')); print($rt + h['redis']['round_trips_per_call'])")
  done
  "$py" - "$out" "$n" "$before" "$after" "$rt" <<'EOF'
import json, sys
path, n, before, after, rt = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
r = json.load(open(path))
ts = r["targets"]
calls = max(1, r["calls"])
ok = sum(t.get("outcomes", {}).get("ok", 0) for t in ts)
p50 = sum(t.get("latency_ms", {}).get("all", {}).get("p50", 0) for t in ts) / len(ts)
p99 = max(t.get("latency_ms", {}).get("all", {}).get("p99", 0) for t in ts)
print("%-8d %10.0f %9.3f %9.3f %14.1f %12.2f %10s" % (n, r["calls_per_s"], p50, p99,
      (after - before) * 1e6 / calls, rt / n, "%d/%d" % (ok, calls)))
EOF
  kill "${started[@]}"
  wait "${started[@]}" 2>/dev/null || true
done
echo "(Redis CPU per call counts the warm-up-free run only; rt/call is the daemons' own" \
  "average since start-up, renewals included)" >&2
