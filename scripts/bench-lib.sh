# Shared by the benchmark scripts (sourced, not run): a work folder removed on
# exit with every started process, free loopback ports, and waits on output.
# Needs $py (a python3) and sets $work and the pids array.

work=$(mktemp -d "/tmp/${BENCH_NAME:-exai-bench}.XXXXXX")
pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {
  "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# wait_line FILE TEXT: until FILE contains TEXT (20 s at most).
wait_line() {
  local i
  for i in $(seq 1 2000); do
    grep -q -- "$2" "$1" 2>/dev/null && return 0
    sleep 0.01
  done
  echo "bench: no '$2' in $1" >&2; cat "$1" >&2; exit 1
}
