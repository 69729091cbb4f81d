#!/usr/bin/env bash
# Benchmark (not a test, not in CI): the gateway's cost per request against
# its own stack's limit. One command, one run, alternating short rounds
# across configurations:
#   a  the upstream alone (nginx answering MonitorContact and, by path, the lookups)
#   b  a bare pass-through built from the gateway's stack (benches/src/bin/bench_passthrough.rs)
#   c  the gateway, one RS256 token reused       d  the gateway, a fresh token per request
#   e1 the gateway, a forged token -> 401         e2 the gateway, a policy deny -> 403
#   f  the gateway, a Connect-aware grant with warm caches
#   c0 d0 f0  with --baseline PATH: that gateway binary (an older build) as c, d
#      and f, same config file, each run right beside its counterpart
# For each: requests/s at saturation (wrk, 32 connections), CPU s per 1000
# requests of the server process (/proc/<pid>/stat), p50/p99/p99.9 at
# saturation and at ~1000 requests/s (open loop, paced by the driver);
# per process RssAnon and RssFile (/proc/<pid>/status) idle, at the largest
# 100 ms sample and at the end, and VmHWM; the gateway's exec-to-ready;
# ratios against (b) and the targets; with --baseline, the ratios
# new/baseline of requests/s and CPU per request for c, d and f, and both
# binaries' idle RssAnon/RssFile, peak and exec-to-ready.
# The gateway is built as the image builds it (--profile dist, default
# features off, on its own); the drivers with -p cmg-bench --profile dist.
# Driver: benches/src/bin/gateway_bench/main.rs. Linux only (/proc). Installs
# wrk and nginx with apt-get when they are missing.
#
# Usage: benches/gateway.sh [--rounds N] [--seconds S] [--quick] [--baseline PATH]
#        benches/gateway.sh --profile CONFIG [--profile-seconds S] [--profiler perf|callgrind]
#   defaults: 5 rounds x (5 s saturation + 5 s paced) x 7 configurations,
#   about 9 minutes on 2 cores after the build (with --baseline, 10
#   configurations: about 12 minutes); --quick: 2 rounds x (2 s + 2 s), about
#   2 minutes (2.5 with --baseline), a smoke run: its ratios move by 10% from
#   run to run. Building the gateway with the dist profile (fat LTO, one
#   codegen unit) takes 2 to 4 minutes, the drivers 1 to 2 more.
#   --baseline PATH: the other gateway binary (relative to where you run this);
#   it must accept the same config as the one built here. Keep it outside
#   target/dist (e.g. build the old commit in a worktree of its own, or copy
#   its binary to /tmp): this script rebuilds target/dist/connect-monitor-gateway
#   before it runs. A baseline that knows Connect budgets runs on the gateway's
#   config (budgets far above the pace); an older one on a config without them.
#   --otlp-endpoint URL: the gateway under test (not the baseline) exports a
#   span per request there; with the baseline the same binary and a port
#   nobody listens on, it measures what a collector that is down costs.
#   CONFIG: upstream|passthrough|one-token|fresh-token|forged|deny|
#   connect-aware (or a|b|c|d|e1|e2|f). --profile builds the gateway with the
#   dist profile, symbols kept and line tables, into target/bench-profile (the
#   normal build is not invalidated), records it under saturation with perf
#   (cpu-clock when the CPU's counters are unavailable; callgrind when perf
#   cannot run) and prints the top entries; the data and the full report stay
#   in target/bench-profile/.
# Exit status: 0 whatever the figures, 1 if a request got an unexpected
# status (the output names it), 2 if the benchmark could not run.
set -euo pipefail

profile=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  case "${args[$i]}" in
    --profile) profile="${args[$((i + 1))]:-}" ;;
    --baseline)
      # Resolved here, before the cd below, so a relative path means what
      # it meant where the script was started.
      baseline="${args[$((i + 1))]:-}"
      if [ -z "$baseline" ] || [ ! -x "$baseline" ] || [ -d "$baseline" ]; then
        echo "gateway bench: --baseline needs an executable gateway binary (got '${baseline}')" >&2
        exit 2
      fi
      args[$((i + 1))]=$(realpath "$baseline")
      ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
  esac
done
cd "$(dirname "$0")/.."

# --- what it needs, installed when missing -----------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
nginx_bin=$(command -v nginx 2>/dev/null || true)
[ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
[ -z "$nginx_bin" ] && need+=(nginx)
if [ -n "$profile" ]; then
  command -v perf >/dev/null 2>&1 || need+=(linux-perf)
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
# The gateway in an invocation of its own, exactly as deploy/Dockerfile builds
# it: in one with cmg-bench, cargo would unify features and the bench
# package's `test-util` would reach the binary under test.
gateway_build=(cargo build --locked -p connect-monitor-gateway --no-default-features --profile dist
  --bin connect-monitor-gateway)
if [ -n "$profile" ]; then
  # The same build with symbols and line tables, in a target dir of its own.
  CARGO_PROFILE_DIST_STRIP=false CARGO_PROFILE_DIST_DEBUG=line-tables-only \
    "${gateway_build[@]}" --target-dir target/bench-profile
  binary=target/bench-profile/dist/connect-monitor-gateway
else
  "${gateway_build[@]}"
  binary=target/dist/connect-monitor-gateway
fi
cargo build --locked -p cmg-bench --profile dist --bins

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

target/dist/gateway_bench \
  --binary "$binary" \
  --passthrough target/dist/bench_passthrough \
  --nginx "$nginx_bin" \
  --wrk "$(command -v wrk)" \
  --pid-file "$pids" \
  "${args[@]}" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
exit "$status"
