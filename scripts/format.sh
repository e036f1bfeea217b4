#!/usr/bin/env bash
# scripts/format.sh [--check]: clang-format every tracked C++ source.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files -co --exclude-standard '*.cpp' '*.hpp' | while read -r f; do [[ -f $f ]] && echo "$f"; done)
if [[ ${1:-} == --check ]]; then
  clang-format --dry-run --Werror "${files[@]}"
  echo "format: ${#files[@]} files clean" >&2
else
  clang-format -i "${files[@]}"
fi
