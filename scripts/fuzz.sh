#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]: build the fuzz preset
# (clang-14, libFuzzer, ASan+UBSan) and run each fuzz target (default: every
# tests/fuzz/<name>_fuzz.cpp; name a target as frame_codec or fuzz_frame_codec)
# for SECONDS_PER_TARGET seconds (default 60).
# Each target runs over build/fuzz/corpus-work/<name>: a copy of the checked-in
# tests/fuzz/corpus/<name>, which is only read, plus what earlier runs found.
# Crashing inputs go to build/fuzz/artifacts/<name>/, the full output to
# build/fuzz/logs/<name>.log. Exits 1 if any target crashed (or leaked, timed
# out, ran out of memory), 64 on bad usage.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  echo "usage: scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]" >&2
  exit 64
}

seconds=${1:-60}
[[ $seconds =~ ^[1-9][0-9]*$ ]] || usage
if (($# > 0)); then
  shift
fi
names=()
for target in "$@"; do
  names+=("${target#fuzz_}")
done
if ((${#names[@]} == 0)); then
  for source in tests/fuzz/*_fuzz.cpp; do
    name=${source##*/}
    names+=("${name%_fuzz.cpp}")
  done
fi
for name in "${names[@]}"; do
  if [[ ! -f tests/fuzz/${name}_fuzz.cpp ]]; then
    echo "fuzz: no target $name (no tests/fuzz/${name}_fuzz.cpp)" >&2
    usage
  fi
done

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz --target "${names[@]/#/fuzz_}"

failed=()
for name in "${names[@]}"; do
  binary=build/fuzz/tests/fuzz/fuzz_$name
  work=build/fuzz/corpus-work/$name
  artifacts=build/fuzz/artifacts/$name
  log=build/fuzz/logs/$name.log
  mkdir -p "$work" "$artifacts" "${log%/*}"
  if [[ -d tests/fuzz/corpus/$name ]]; then
    cp -R "tests/fuzz/corpus/$name/." "$work/"
  fi
  command=("$binary" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048
    -print_final_stats=1 -artifact_prefix="$artifacts/" "$work")
  echo "fuzz: running ${command[*]} ($(find "$work" -type f | wc -l) inputs), log $log" >&2
  status=ok
  if ! "${command[@]}" >"$log" 2>&1; then
    status=FAILED
    failed+=("$name")
  fi
  # libFuzzer's last progress line ("#runs ... cov: ... exec/s: ...") and final stats.
  progress=$(grep -E '^#[0-9]+' "$log" | tail -n 1 || true)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
  echo "fuzz: fuzz_$name $status: ${execs:-?} runs, ${rate:-?} exec/s; $progress" >&2
  if [[ $status != ok ]]; then
    tail -n 40 "$log" >&2
    echo "fuzz: reproduce with: $binary <input from $artifacts/>" >&2
  fi
done

if ((${#failed[@]} > 0)); then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#names[@]} target(s) clean for ${seconds}s each: ${names[*]}" >&2
