#!/usr/bin/env bash
# Runs creditd's whole test suite. The integration tests start their own redis-server (random
# port, temporary directory); this script installs it first when the machine lacks it (Debian).
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=()
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
if [ ${#need_install[@]} -gt 0 ]; then
  echo "scripts/test.sh: installing ${need_install[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_install[@]}"
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "scripts/test.sh: cargo is missing; install Rust (https://rustup.rs) first" >&2
  exit 1
fi

exec cargo test --locked "$@"
