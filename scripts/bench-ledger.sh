#!/usr/bin/env bash
# Benchmark of issue 4 §8: the reconciler's booking rate against the hot path's event rate.
# Starts a private redis-server and a private PostgreSQL (random ports, a temp dir; never the
# system instances), builds creditd in release mode, and runs `creditd bench-ledger` RUNS times.
# Usage: scripts/bench-ledger.sh [RUNS] [extra bench-ledger flags...]
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"; shift || true

cargo build --release --locked -q
bin="$PWD/target/release/creditd"
tmp="$(mktemp -d /tmp/creditd-bench-XXXXXX)"
pg_bin="$(dirname "$(command -v initdb 2>/dev/null || ls -d /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  chown postgres: "$tmp"
  as_pg=(setpriv --reuid=postgres --regid=postgres --init-groups --)
fi
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"; pg_port="$(free_port)"
cleanup() {
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  [ -n "${pg_pid:-}" ] && kill -INT "$pg_pid" 2>/dev/null && wait "$pg_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

mkdir "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp/redis" --logfile "$tmp/redis/redis.log" --daemonize no & redis_pid=$!
"${as_pg[@]}" "$pg_bin/initdb" -D "$tmp/pg" -U creditd --auth=trust -E UTF8 --no-locale --no-sync >"$tmp/initdb.log"
(cd "$tmp" && exec "${as_pg[@]}" "$pg_bin/postgres" -D "$tmp/pg" -p "$pg_port" -k "$tmp" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off >"$tmp/pg.log" 2>&1) & pg_pid=$!
for _ in $(seq 100); do
  psql -h 127.0.0.1 -p "$pg_port" -U creditd -d postgres -w -qc 'CREATE DATABASE creditd' \
    </dev/null >/dev/null 2>&1 && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(uname -sr); redis $(redis-server --version | awk '{print $3}'); $("$pg_bin/postgres" --version)"
for i in $(seq "$runs"); do
  "$bin" bench-ledger --redis-url "redis://127.0.0.1:$redis_port/" \
    --database-url "postgres://creditd@127.0.0.1:$pg_port/creditd" --json "$@" | tail -1
done
