#!/usr/bin/env bash
# Benchmark of issue 5: creditd over gRPC against the same Lua scripts called straight on Redis.
# Starts a private redis-server and a release `creditd serve` on it (scripts/bench-env.sh), then
# runs `creditd bench --baseline-redis --json` RUNS times at each concurrency, prints every JSON
# line and, per concurrency, the medians.
# Usage: [PIN=1] [SERVE_FLAGS="..."] scripts/bench.sh [RUNS] [DURATION_S] [CONCURRENCIES] [bench flags...]
#   e.g. scripts/bench.sh 3 10 "1 16 64" --scenario reserve-commit
runs="${1:-3}"; duration="${2:-10}"; concurrencies="${3:-1 16 64}"; shift 3 || shift $#
# shellcheck source=scripts/bench-env.sh
source "$(dirname "$0")/bench-env.sh"

out="$tmp/runs.jsonl"
for c in $concurrencies; do
  for _ in $(seq "$runs"); do
    "${bench[@]}" --concurrency "$c" --duration "$duration" --baseline-redis --json "$@" 2>/dev/null \
      | tail -1 | tee -a "$out"
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
keys = ["ops_per_s", "p50_us", "p99_us", "baseline_ops_per_s", "baseline_p50_us", "baseline_p99_us",
        "ratio", "rpc_p50_us", "baseline_rpc_p50_us", "rpc_overhead_p50_us", "client_cpu_s",
        "baseline_client_cpu_s", "redis_scripts_per_rpc", "redis_us_per_script", "redis_clients",
        "wake_rtt_p50_us"]
print("| scenario | concurrency | runs | " + " | ".join(keys) + " | ratio range | errors | conserved |")
print("|---" * (len(keys) + 6) + "|")
def cell(k, v):
    if k == "redis_scripts_per_rpc": return f"{v:.3f}"
    if k == "ratio": return f"{v:.2f}"
    if "cpu" in k: return f"{v:.2f}"
    if k in ("redis_us_per_script", "wake_rtt_p50_us"): return f"{v:.1f}"
    return f"{v:.0f}" if isinstance(v, float) else str(v)
for c in sorted({r["concurrency"] for r in runs}):
    rs = [r for r in runs if r["concurrency"] == c]
    med = [statistics.median(r.get(k, float("nan")) for r in rs) for k in keys]
    ratios = [r.get("ratio", float("nan")) for r in rs]
    print(f"| {rs[0]['scenario']} | {c} | {len(rs)} | " + " | ".join(cell(k, v) for k, v in zip(keys, med))
          + f" | {min(ratios):.2f}-{max(ratios):.2f} | {sum(r['errors'] for r in rs)} | {all(r['conserved'] for r in rs)} |")
PY
