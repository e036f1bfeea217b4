#!/usr/bin/env bash
# One command: install what is missing, then build and run every test in an
# ASan+UBSan build and a TSan build (build/asan, build/tsan; reused when
# present), run every fuzz target for a short fixed time over its checked-in
# corpus (build/fuzz), then check formatting. The plain build (preset dev) is
# for day-to-day work: every test it runs also runs here, instrumented.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/deps.sh
# The npm packages of the MCP tests (the MCP SDK client) and of the browser
# test (puppeteer-core), pinned by each folder's package-lock.json;
# reinstalled only when a lock file changed.
for dir in tests/mcp tests/ui; do
  stamp=$dir/node_modules/.exai-lock.sha256
  lock_sum=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
  if [[ ! -f $stamp || $(cat "$stamp") != "$lock_sum" ]]; then
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    echo "$lock_sum" >"$stamp"
  fi
done
for preset in asan tsan; do
  echo "== $preset ($((SECONDS - start)) s)" >&2
  cmake --workflow --preset "$preset"
done
echo "== fuzz ($((SECONDS - start)) s)" >&2
scripts/fuzz.sh "${EXAI_FUZZ_SECONDS:-15}"
echo "== format ($((SECONDS - start)) s)" >&2
scripts/format.sh --check
echo "== all passed in $((SECONDS - start)) s" >&2
