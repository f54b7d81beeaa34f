# Sourced by the bench scripts: builds creditd in release mode and starts a private redis-server
# (random port, a temp dir, no persistence; never the system Redis on 6379) and a release
# `creditd serve --shards 16` on it, both stopped on exit.
# Environment:
#   SERVE_FLAGS="..."  extra flags for `creditd serve` (e.g. "--redis-pool-size 16")
#   PIN=1              Redis on CPU 1 alone, the server and the bench on CPU 0 (taskset), as when
#                      Redis has a machine of its own; unset, the three share both cores
#   BIN=path           run this creditd build (server and bench) instead of building this tree:
#                      to compare two builds, run the same script with each, in turns
#   UDS=1              the server's gRPC on a Unix socket (unix:/PATH) instead of loopback TCP,
#                      as for a sidecar whose caller shares its pod; Redis stays on TCP
#   REDIS_UDS=1        Redis on a Unix socket (redis+unix:///PATH) for the server and the bench's
#                      baseline alike, instead of loopback TCP
# Sets: bin, tmp, shards, redis_url, grpc_target, and bench (the command prefix to run the bench).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shards=16

if [ -n "${BIN:-}" ]; then
  bin="$(realpath "$BIN")"
else
  cargo build --release --locked -q
  bin="$PWD/target/release/creditd"
fi
tmp="$(mktemp -d /tmp/creditd-bench-XXXXXX)"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port="$(free_port)"; grpc_port="$(free_port)"; http_port="$(free_port)"
cleanup() {
  [ -n "${serve_pid:-}" ] && kill "$serve_pid" 2>/dev/null || true
  [ -n "${redis_pid:-}" ] && kill "$redis_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

pin_redis=(); pin_rest=()
if [ "${PIN:-}" = 1 ]; then
  pin_redis=(taskset -c 1); pin_rest=(taskset -c 0)
fi
"${pin_redis[@]}" redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$tmp" --logfile "$tmp/redis.log" --daemonize no --unixsocket "$tmp/redis.sock" \
  --unixsocketperm 700 & redis_pid=$!
redis_url="redis://127.0.0.1:$redis_port/"
if [ "${REDIS_UDS:-}" = 1 ]; then
  redis_url="redis+unix://$tmp/redis.sock"
fi
grpc_target="127.0.0.1:$grpc_port"
if [ "${UDS:-}" = 1 ]; then
  grpc_target="unix:$tmp/grpc.sock"
fi
# shellcheck disable=SC2086
"${pin_rest[@]}" "$bin" serve --listen "$grpc_target" --http-listen "127.0.0.1:$http_port" \
  --redis-url "$redis_url" --shards "$shards" ${SERVE_FLAGS:-} >"$tmp/serve.log" 2>&1 & serve_pid=$!
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$http_port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
bench=("${pin_rest[@]}" "$bin" bench --target "$grpc_target" --redis-url "$redis_url" --shards "$shards")
echo "machine: $(nproc) cores, $(uname -sr), load $(cut -d' ' -f1-3 /proc/loadavg); redis $(redis-server --version | awk '{print $3}'); build: $bin; serve flags: ${SERVE_FLAGS:-none}; pinned: ${PIN:-no}; grpc: $grpc_target; redis: $redis_url"
