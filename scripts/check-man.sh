#!/usr/bin/env bash
# Lints every man page with groff; any warning fails.
set -euo pipefail
dir=${1:-$(dirname "$0")/../man}
status=0
for page in "$dir"/*.[1-9]; do
  out=$(LC_ALL=C groff -man -ww -z "$page" 2>&1 || true)
  if [[ -n $out ]]; then
    echo "$page:"; echo "$out"; status=1
  fi
done
exit $status
