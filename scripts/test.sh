#!/usr/bin/env bash
# Runs creditd's whole test suite. The integration tests start their own redis-server and
# PostgreSQL server (random port, temporary directory); this script installs them first when the
# machine lacks them (Debian). PostgreSQL's initdb is not on PATH there but in
# /usr/lib/postgresql/<version>/bin; the package also makes the `postgres` user, which runs the
# test servers when the tests run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need_install=()
command -v redis-server >/dev/null 2>&1 || need_install+=(redis-server)
if ! command -v initdb >/dev/null 2>&1 && ! compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null; then
  need_install+=(postgresql)
fi
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
