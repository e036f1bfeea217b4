#!/usr/bin/env bash
# Each long option in `exai <sub> --help` is documented in man/exai-<sub>.1,
# and the root options in man/exai.1.
set -euo pipefail
exai=$1
dir=$2
status=0
check() { # check <page> <help text>
  local page=$1 help=$2 opt text
  # roff writes "-" as "\-"; compare with the escapes removed.
  text=$(sed 's/\\-/-/g' "$page")
  for opt in $(grep -oE -- '--[a-z][a-z0-9-]+' <<<"$help" | sort -u); do
    [[ $opt == --help ]] && continue
    if ! grep -qF -- "$opt" <<<"$text"; then
      echo "$page does not document $opt" >&2; status=1
    fi
  done
}
check "$dir/exai.1" "$("$exai" --help | sed -n '/^Options:/,/^Subcommands:/p')"
for sub in serve detect-providers health stress mcp top; do
  page="$dir/exai-$sub.1"
  if [[ ! -f $page ]]; then
    # Subcommands whose issue has not landed yet have no page; they exit 70.
    echo "skip $sub: no $page" >&2; continue
  fi
  check "$page" "$("$exai" "$sub" --help)"
done
exit $status
