#!/usr/bin/env bash
# Latency at half load (issue 5): finds the server's maximum pair rate with a closed loop at
# concurrency 64, then runs the open loop at half that rate RUNS times (server and baseline in
# the same run, at the same rate) and prints the medians of the pair and per-call latencies,
# over all runs and over the runs in which the hypervisor took at most QUIET_STEAL_S seconds of
# CPU from either phase.
# FRACTION (default 0.5) sets the open loop's rate as a share of that maximum: FRACTION=0.3 gives
# the latency at 30% of the maximum load.
# Usage: [PIN=1] [SERVE_FLAGS="..."] [QUIET_STEAL_S=0.2] [FRACTION=0.5] scripts/bench-latency.sh [RUNS] [DURATION_S] [bench flags...]
runs="${1:-5}"; duration="${2:-10}"; shift 2 || shift $#
# shellcheck source=scripts/bench-env.sh
source "$(dirname "$0")/bench-env.sh"

max="$("${bench[@]}" --concurrency 64 --duration "$duration" --json "$@" 2>/dev/null | tail -1 \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["ops_per_s"])')"
fraction="${FRACTION:-0.5}"
rate="$(python3 -c "print(round($max * $fraction))")"
echo "maximum: $max pairs/s (closed loop, concurrency 64); open loop at $rate pairs/s ($fraction of it)"
out="$tmp/runs.jsonl"
for _ in $(seq "$runs"); do
  "${bench[@]}" --rate "$rate" --concurrency 512 --duration "$duration" --baseline-redis --json "$@" \
    2>/dev/null | tail -1 | tee -a "$out"
done
python3 - "$out" "${QUIET_STEAL_S:-0.2}" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
quiet_s = float(sys.argv[2])
rows = [("pair", "p50_us", "p99_us", "p999_us"), ("call", "rpc_p50_us", "rpc_p99_us", "rpc_p999_us")]

def table(title, runs):
    print(f"{title}: {len(runs)} run(s)")
    if not runs:
        return
    print("| what | phase | p50 µs | p99 µs | p99.9 µs | p99 range µs | ops started late, p99 µs | stolen s |")
    print("|---|---|---|---|---|---|---|---|")
    for what, *keys in rows:
        for phase in ("server", "baseline"):
            vals = [[r[phase][k] for r in runs] for k in keys]
            lag = statistics.median(r[phase].get("start_lag_p99_us", 0) for r in runs)
            steal = statistics.median(r[phase]["steal_s"] for r in runs)
            med = [statistics.median(v) for v in vals]
            print(f"| {what} | {phase} | {med[0]:.0f} | {med[1]:.0f} | {med[2]:.0f} | "
                  f"{min(vals[1])}-{max(vals[1])} | {lag:.0f} | {steal:.2f} |")

print("each run: " + "; ".join(f"call p99 {r['rpc_p99_us']}/{r['baseline_rpc_p99_us']} µs, stolen "
      f"{r['server']['steal_s']:.2f}/{r['baseline']['steal_s']:.2f} s" for r in runs))
table("all runs", runs)
# A shared VM's hypervisor can take whole milliseconds from it (steal): the runs where it took
# little from either phase show what creditd and Redis do; the others show the VM.
table(f"runs with at most {quiet_s} s stolen in each phase",
      [r for r in runs if max(r["server"]["steal_s"], r["baseline"]["steal_s"]) <= quiet_s])
wake = [r["wake_rtt_p50_us"] for r in runs if "wake_rtt_p50_us" in r]
if wake:
    print(f"machine: wake-up round trip across two CPUs, p50 {statistics.median(wake):.1f} µs (median of the runs)")
print(f"runs: {len(runs)}; errors: {sum(r['errors'] + r.get('baseline_errors', 0) for r in runs)}; "
      f"conserved: {all(r['conserved'] for r in runs)}")
PY
