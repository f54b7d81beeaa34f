#!/usr/bin/env bash
# Benchmark of issue 5: creditd over gRPC against the same Lua scripts called straight on Redis.
# Starts a private redis-server (random port, a temp dir, no persistence; never the system Redis)
# and a release `creditd serve` on it, then runs `creditd bench --baseline-redis --json` RUNS
# times at each concurrency, prints every JSON line and, per concurrency, the medians.
# Usage: scripts/bench.sh [RUNS] [DURATION_S] [CONCURRENCIES] [extra bench flags...]
#   e.g. scripts/bench.sh 3 10 "1 16 64" --scenario reserve-commit
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-3}"; duration="${2:-10}"; concurrencies="${3:-1 16 64}"; shift 3 || shift $#
shards=16

cargo build --release --locked -q
bin="$PWD/target/release/creditd"
tmp="$(mktemp -d /tmp/creditd-bench-XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"; grpc_port="$(free_port)"; http_port="$(free_port)"
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no & redis_pid=$!
redis_url="redis://127.0.0.1:$redis_port/"
"$bin" serve --listen "127.0.0.1:$grpc_port" --http-listen "127.0.0.1:$http_port" \
  --redis-url "$redis_url" --shards "$shards" >"$tmp/serve.log" 2>&1 & serve_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done

echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg); redis $(redis-server --version | awk '{print $3}')"
out="$tmp/runs.jsonl"
for c in $concurrencies; do
  for _ in $(seq "$runs"); do
    "$bin" bench --target "127.0.0.1:$grpc_port" --redis-url "$redis_url" --shards "$shards" \
      --concurrency "$c" --duration "$duration" --baseline-redis --json "$@" 2>/dev/null \
      | tail -1 | tee -a "$out"
  done
done
python3 - "$out" <<'EOF'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
keys = ["ops_per_s", "p50_us", "p99_us", "baseline_ops_per_s", "baseline_p50_us", "baseline_p99_us",
        "ratio", "client_cpu_s", "baseline_client_cpu_s", "redis_scripts_per_rpc", "redis_clients"]
print("| scenario | concurrency | runs | " + " | ".join(keys) + " | errors | conserved |")
print("|---" * (len(keys) + 5) + "|")
for c in sorted({r["concurrency"] for r in runs}):
    rs = [r for r in runs if r["concurrency"] == c]
    med = [statistics.median(r.get(k, float("nan")) for r in rs) for k in keys]
    cells = [f"{v:.0f}" if k.endswith(("_s", "_us")) and "cpu" not in k else f"{v:.3f}" if k == "redis_scripts_per_rpc" else f"{v:.2f}" if isinstance(v, float) else str(v) for k, v in zip(keys, med)]
    print(f"| {rs[0]['scenario']} | {c} | {len(rs)} | " + " | ".join(cells)
          + f" | {sum(r['errors'] for r in rs)} | {all(r['conserved'] for r in rs)} |")
EOF
