#!/usr/bin/env bash
# Benchmark (not a test, not in CI): the gateway's cost per request against
# its own stack's limit (issue 11). One command, one run, alternating short
# rounds across configurations:
#   a  the upstream alone (nginx answering MonitorContact and, by path, the lookups)
#   b  a bare pass-through built from the gateway's stack (examples/bench_passthrough.rs)
#   c  the gateway, one RS256 token reused       d  the gateway, a fresh token per request
#   e1 the gateway, a forged token -> 401         e2 the gateway, a policy deny -> 403
#   f  the gateway, a Connect-aware grant with warm caches
# For each: requests/s at saturation (wrk, 32 connections), CPU s per 1000
# requests of the server process (/proc/<pid>/stat), p50/p99/p99.9 at
# saturation and at ~1000 requests/s (open loop, paced by the driver); RSS idle
# and peak, exec-to-ready; ratios against (b) and the issue's targets.
# Driver: examples/gateway_bench/main.rs. Linux only (/proc). Installs wrk and nginx
# with apt-get when they are missing.
#
# Usage: benches/gateway.sh [--rounds N] [--seconds S] [--quick]
#        benches/gateway.sh --profile CONFIG [--profile-seconds S] [--profiler perf|callgrind]
#        benches/gateway.sh --code-order link/code-order.txt
#   defaults: 5 rounds x (5 s saturation + 5 s paced) x 7 configurations, about
#   8 minutes on 2 cores after the build; --quick: 2 rounds x (2 s + 2 s), about
#   a minute. CONFIG: upstream|passthrough|one-token|fresh-token|forged|deny|
#   connect-aware (or a|b|c|d|e1|e2|f). --profile builds a release binary with
#   line tables into target/bench-profile (normal builds are not invalidated),
#   records the gateway under saturation with perf (cpu-clock when the CPU's
#   counters are unavailable; callgrind when perf cannot run) and prints the
#   top entries; the data and the full report stay in target/bench-profile/.
#   --code-order rewrites the list of start-up and request functions that
#   build.rs has the linker lay out first (runs the gateway under callgrind,
#   about 3 minutes; then rebuild to apply it).
# Exit status: 0 whatever the figures, 1 if a request got an unexpected
# status (the output names it), 2 if the benchmark could not run.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=""
code_order=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --profile) profile="${args[$((i + 1))]:-}" ;;
    --code-order) code_order="${args[$((i + 1))]:-}" ;;
    -h|--help) sed -n '2,32p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  esac
done

# --- what it needs, installed when missing -----------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
nginx_bin=$(command -v nginx 2>/dev/null || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
[ -z "$nginx_bin" ] && need+=(nginx)
if [ -n "$profile" ]; then
  command -v perf >/dev/null 2>&1 || need+=(linux-perf)
fi
if [ -n "$profile" ] || [ -n "$code_order" ]; then
  command -v valgrind >/dev/null 2>&1 || need+=(valgrind)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "gateway bench: installing ${need[*]} (apt-get)"
  as_root apt-get update -qq
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${need[@]}" >/dev/null
  nginx_bin=$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)
fi
# The driver runs nginx itself (its own config, a free loopback port, no daemon,
# as the current user); a packaged service, where one was started, is left alone.

# --- build ---------------------------------------------------------------------
# The gateway alone first, so it is built exactly as `cargo build --release`
# builds it (the examples' dev-dependencies would add features to shared crates).
cargo build --release --bin connect-monitor-gateway
cargo build --release --example gateway_bench --example bench_passthrough
binary=target/release/connect-monitor-gateway
if [ -n "$profile" ]; then
  CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
    cargo build --release --target-dir target/bench-profile --bin connect-monitor-gateway
  binary=target/bench-profile/release/connect-monitor-gateway
fi

# --- run: the driver in the background, so a signal reaches this trap, which
# stops the driver and every process it started (their pids are in $pids).
pids=$(mktemp "${TMPDIR:-/tmp}/cmg-bench-pids.XXXXXX")
driver=""
cleanup() {
  trap - EXIT INT TERM HUP
  if [ -n "$driver" ] && kill -0 "$driver" 2>/dev/null; then
    kill -TERM "$driver" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$driver" 2>/dev/null || break; sleep 0.2; done
    kill -KILL "$driver" 2>/dev/null || true
  fi
  while read -r pid; do
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null || true
  done <"$pids"
  rm -f "$pids"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

target/release/examples/gateway_bench \
  --binary "$binary" \
  --passthrough target/release/examples/bench_passthrough \
  --nginx "$nginx_bin" \
  --wrk "$(command -v wrk)" \
  --pid-file "$pids" \
  "$@" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
exit "$status"
