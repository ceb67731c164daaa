#!/usr/bin/env bash
# Sets up iota on a fresh machine: system packages (when missing and when root), npm
# dependencies (when the lockfile changed), and the build. Safe to run again. It asks one
# question, and only on a terminal: whether to run `iota setup` (IOTA_NO_SETUP_OFFER=1: never).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

say() { printf '\033[1msetup:\033[0m %s\n' "$*"; }

usage() {
  cat <<'USAGE'
usage: ./setup.sh [--dev]
  Installs what iota needs and builds it. Run it again after pulling; it only redoes what changed.
  --dev   also install the test tools (python3-torch, chromium, tmux)
  On a terminal it then offers the guided start of a node (bin/iota setup).
USAGE
}

DEV=0
for arg in "$@"; do
  case "$arg" in
    --dev) DEV=1 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done

# Debian packages the project needs at run time, and for its tests. OpenBLAS and a C++
# compiler build the native CPU kernels (without them iota runs on wasm, slower).
APT_PACKAGES=(libopenblas-dev g++ make)
# Tests: the PyTorch reference, and a browser for the dashboard's test (driven by playwright-core).
# tmux: the setup wizard's test drives it through a terminal.
[ "$DEV" = 1 ] && APT_PACKAGES+=(python3-torch python3-numpy chromium tmux)

need_node() {
  if ! command -v node >/dev/null 2>&1; then
    echo "setup: Node.js 20 or newer is required (https://nodejs.org or your distribution's nodejs package)" >&2
    exit 1
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    echo "setup: Node.js $(node --version) is too old; iota needs 20 or newer" >&2
    exit 1
  fi
}

install_apt() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    say "missing system packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})"
    return 0
  fi
  say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Not fatal: without these iota still installs and runs (on wasm, without the PyTorch test).
  if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; }; then
    say "could not install ${missing[*]} (no package mirror?); continuing without them"
  fi
}

install_npm() {
  local stamp=node_modules/.iota-lock.sha256
  local want
  want=$(sha256sum package-lock.json | cut -d' ' -f1)
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    say "npm dependencies up to date"
    return 0
  fi
  say "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
}

need_node
[ ${#APT_PACKAGES[@]} -gt 0 ] && install_apt
install_npm
say "building"
npm run --silent build
# Compiled here, for this CPU; never fails: without a compiler or OpenBLAS it says why.
npm run --silent build:native
say "ready: bin/iota --help"

# On a terminal (never in scripts or CI), offer the guided start of a node.
if [ -t 0 ] && [ -t 1 ] && [ "$DEV" != 1 ] && [ -z "${IOTA_NO_SETUP_OFFER:-}" ]; then
  read -r -p "Set up this machine as a miner, validator or orchestrator now (bin/iota setup)? [y/N] " answer
  case "$answer" in
    y|Y|yes) bin/iota setup || say "setup did not finish; run bin/iota setup any time" ;;
  esac
fi
