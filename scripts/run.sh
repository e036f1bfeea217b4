#!/usr/bin/env bash
# One command: install what is missing, build a release binary, run `exai serve`.
# Extra arguments go to `exai serve` (e.g. scripts/run.sh --port 9000).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cmake --preset release >/dev/null
cmake --build --preset release --target exai
exec build/release/cmd/exai serve "$@"
