#!/usr/bin/env bash
# Installs the Debian 12 packages exai needs to build and test, if missing.
# Idempotent: does nothing (no apt-get update) when everything is present.
set -euo pipefail

packages=(
  g++ cmake ninja-build pkg-config git
  libcli11-dev libpoco-dev nlohmann-json3-dev libspdlog-dev catch2 libssl-dev libjemalloc-dev libcurl4-openssl-dev
  groff-base clang-format openssl ca-certificates
  clang-14 libclang-rt-14-dev llvm-14
  python3 python3-websockets procps redis-server
  chromium tmux
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node may come from another source (e.g. NodeSource bundles npm, which then
# conflicts with Debian's npm package): only install it when absent.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}" >&2
  if [[ $(id -u) -ne 0 ]]; then sudo=sudo; else sudo=; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
