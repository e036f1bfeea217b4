#!/usr/bin/env bash
# One command: install what is missing, then build and run every test in a
# normal, an ASan+UBSan and a TSan build (build/dev, build/asan, build/tsan;
# reused when present), then check formatting.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS
scripts/deps.sh
for preset in dev asan tsan; do
  echo "== $preset ($((SECONDS - start)) s)" >&2
  cmake --workflow --preset "$preset"
done
echo "== format ($((SECONDS - start)) s)" >&2
scripts/format.sh --check
echo "== all passed in $((SECONDS - start)) s" >&2
