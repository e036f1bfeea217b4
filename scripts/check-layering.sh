#!/usr/bin/env bash
# Dependencies point one way: cmd -> net -> core. core/ includes no Poco,
# CLI11, net/ or cmd/ header; net/ includes no cmd/ or CLI11 header.
set -euo pipefail
root=${1:-$(dirname "$0")/..}
status=0
if grep -rnE '#include [<"](Poco/|CLI/|net/|cmd/)' "$root/core"; then
  echo "layering: core/ must not include Poco, CLI11, net/ or cmd/" >&2
  status=1
fi
if grep -rnE '#include [<"](CLI/|cmd/)' "$root/net"; then
  echo "layering: net/ must not include CLI11 or cmd/" >&2
  status=1
fi
exit $status
