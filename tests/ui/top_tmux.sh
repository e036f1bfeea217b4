#!/usr/bin/env bash
# `exai top` in a real terminal (tmux, 160x40): it shows the calls in flight
# while the fake upstream holds them, `s` picks the sort column and `r`
# reverses it, `/` filters, `q` quits.
#
#   top_tmux.sh EXAI FAKE_UPSTREAM OUT_DIR
#
# Writes OUT_DIR/top-capture.txt (the screen while busy). Exit 0 = pass,
# 77 = skipped (no tmux, or no python3-websockets). Every wait is for a
# condition, under a deadline (the sleeps are poll intervals).
set -euo pipefail
exai=$1
fake=$2
out=$3
py=/usr/bin/python3 # Debian's, which has python3-websockets
command -v tmux >/dev/null || { echo "skip: no tmux" >&2; exit 77; }
"$py" -c 'import websockets' 2>/dev/null || { echo "skip: no python3-websockets" >&2; exit 77; }

token=top-test-token-0123456789abcdef
scratch=$(mktemp -d)
socket="exai-top-test-$$"
pids=()
cleanup() {
  tmux -L "$socket" kill-server 2>/dev/null || true
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$scratch" || true
}
trap cleanup EXIT

# Runs the condition (a command) until it succeeds or DEADLINE seconds pass.
wait_for() {
  local what=$1
  shift
  local deadline=$((SECONDS + 20))
  until "$@"; do
    if ((SECONDS >= deadline)); then
      echo "timed out waiting for: $what" >&2
      echo "--- screen:" >&2
      tmux -L "$socket" capture-pane -p -t top 2>/dev/null >&2 || true
      echo "--- daemon:" >&2
      tail -20 "$scratch/serve.err" >&2 || true
      exit 1
    fi
    sleep 0.1
  done
}
screen() { tmux -L "$socket" capture-pane -p -t top; }
screen_has() { screen | grep -q -- "$1"; }
port_in() { grep -o "$1" "$2" 2>/dev/null | head -1 | grep -o '[0-9]*$'; }

"$fake" --port 0 --ignore-stdin >"$scratch/fake.out" &
pids+=($!)
wait_for "fake upstream" grep -q "listening on" "$scratch/fake.out"
fake_port=$(port_in 'listening on 127.0.0.1:[0-9]*' "$scratch/fake.out")

env -i PATH=/usr/bin:/bin HOME="$scratch" EXAI_STATE_DIR="$scratch/state" EXAI_WS_TOKEN="$token" \
  GLM_API_KEY=fake-glm-key-for-tests GLM_API_URL="http://127.0.0.1:$fake_port/v1" \
  EXAI_SHUTDOWN_GRACE_SECS=0 "$exai" serve --port 0 2>"$scratch/serve.err" &
pids+=($!)
wait_for "daemon" grep -q "serve listening" "$scratch/serve.err"
port=$(port_in 'serve listening host=[^ ]* port=[0-9]*' "$scratch/serve.err")

"$py" "$(dirname "$0")/slow_calls.py" "$port" "$token" 15000 glm-4.5 glm-4.5-air >"$scratch/calls.out" &
calls=$!
pids+=("$calls")
wait_for "calls started" grep -q started "$scratch/calls.out"

tmux -L "$socket" -f /dev/null new-session -d -x 160 -y 40 -s top \
  env -i PATH=/usr/bin:/bin HOME="$scratch" TERM=xterm-256color EXAI_WS_TOKEN="$token" \
  "$exai" top --url "http://127.0.0.1:$port"
wait_for "two calls in flight" screen_has "calls in flight: 2"
wait_for "both rows" screen_has "glm-4.5-air"
screen >"$out/top-capture.txt"

# Sort by model: `s` three times moves from ELAPSED past STATE and TOOL to
# MODEL (still descending), `r` reverses.
order() { screen | grep -E '^chat +glm-4\.5(-air)? ' | awk '{print $2}' | tr '\n' ' '; }
order_is() { [[ $(order) == "$1" ]]; }
tmux -L "$socket" send-keys -t top s s s
wait_for "sorted by model, descending" screen_has "MODELv"
wait_for "descending model order" order_is "glm-4.5-air glm-4.5 "
tmux -L "$socket" send-keys -t top r
wait_for "sorted by model, ascending" screen_has "MODEL^"
wait_for "ascending model order" order_is "glm-4.5 glm-4.5-air "

# Filter by tool: '/', text, Enter.
tmux -L "$socket" send-keys -t top / n o s u c h Enter
wait_for "filter applied" screen_has '(filter "nosuch": 0 shown)'
tmux -L "$socket" send-keys -t top / Escape
wait_for "filter cleared" order_is "glm-4.5 glm-4.5-air "

tmux -L "$socket" send-keys -t top q
gone() { ! tmux -L "$socket" has-session -t top 2>/dev/null; }
wait_for "exai top to quit on q" gone
echo "ok: exai top showed the calls, sorted, filtered and quit"
