#!/usr/bin/env bash
# Benchmark (not a test, not in CI): a fleet of gateway replicas against one
# Connect account's quotas, without and with [shared] (Redis). Two runs per
# mode, the same traffic in each:
#   A  without [shared]: a budget per replica and per Connect operation, each
#      replica believing it has the whole quota; caches per replica
#   B  with [shared]: budgets and looked-up facts on a Redis the driver starts
#      on a free loopback port (no persistence) and stops at the end
# Each run: 4 replicas of the gateway binary (as shipped: --profile dist),
# each its own config and ports; an issuer stand-in; a Connect stand-in
# enforcing Connect's default account-wide quotas (DescribeContact 10/s burst
# 15, the others, GetCurrentUserData too, 2/s burst 5; 429
# ThrottlingException beyond them); a policy whose grant is Connect-aware
# (agents = "my_hierarchy"); 30 supervisors' dashboards in 6 teams (hierarchy
# groups under one site group) of 10 agents, each agent always on a contact
# of 20-60 s, then on its next one. The dashboards, on a random replica each
# request:
#   --mode checks (the default): dry-run (POST /contact/monitor/check) every
#      live contact of the team every 2 s
#   --mode listing: list (GET /contacts/monitorable) every 2 s, and dry-run
#      one contact of the last listing every second, with the capabilities
#      listed
#   --mode both: checks, then listing, in one execution
# Prints per run and side by side: answers by request and status, the share
# of decisions (checks answered 200/403, listings answered 200), Connect
# calls per operation per second, throttled calls, Connect calls per 1,000
# decisions, why non-decisions were refused (audit reasons), the replicas'
# CPU and Redis's command count; for listings, their completeness (of the
# team's contacts live for over live_ttl + 1 s when a listing was sent, the
# share it named); with --mode both, the modes' Connect calls per 1,000
# decisions compared.
# Driver: benches/src/bin/fleet_bench.rs. Linux only (/proc). Installs
# redis-server (.ci/install-redis) when it is missing.
#
# Usage: benches/fleet.sh [--mode checks|listing|both] [--quick] [--seconds S]
#          [--replicas N] [--dashboards N] [--teams N] [--agents N] [--period S]
#          [--ttl DURATION] [--live-ttl DURATION] [--share X] [--seed N] [--sticky]
#   defaults: --mode checks, 40 s per run, about 1.5 minutes after the build
#   (--mode both: about 3); --quick: 15 s per run. --period is how often a
#   dashboard checks its team (checks) or lists (listing). --sticky sends
#   dashboard i to replica i % N instead of a random replica per request.
#   --seed repeats a run's contacts and traffic. --live-ttl sets
#   [connect.lookups] live_ttl (5s).
#   Building the gateway with the dist profile (fat LTO, one codegen unit)
#   takes several minutes, the driver a few more.
# Exit status: 0 whatever the figures, 1 if the Connect stand-in refused a
# SigV4 signature, 2 if the benchmark could not run.
set -euo pipefail

args=()
for arg in "$@"; do
  case "$arg" in
    --quick) args+=(--seconds 15) ;;
    --mode=*) args+=(--mode "${arg#--mode=}") ;;
    -h|--help) awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; exit 0 ;;
    *) args+=("$arg") ;;
  esac
done
cd "$(dirname "$0")/.."

# --- what it needs, installed when missing -----------------------------------
redis_server=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)
if [ ! -x "$redis_server" ]; then
  [ -x .ci/install-redis ] || { echo "fleet bench: redis-server is missing (apt-get install redis-server)" >&2; exit 2; }
  .ci/install-redis
  redis_server=$(command -v redis-server 2>/dev/null || echo /usr/bin/redis-server)
fi

# --- build ---------------------------------------------------------------------
# The gateway in an invocation of its own, as deploy/Dockerfile builds it: in
# one with cmg-bench, cargo would unify features and the bench package's
# `test-util` would reach the binary under test.
cargo build --locked -p connect-monitor-gateway --no-default-features --profile dist --bin connect-monitor-gateway
cargo build --locked -p cmg-bench --profile dist --bin fleet_bench

# --- run: the driver in the background, so a signal reaches this trap, which
# stops the driver and every process it started (their pids are in $pids).
pids=$(mktemp "${TMPDIR:-/tmp}/cmg-fleet-pids.XXXXXX")
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

target/dist/fleet_bench \
  --binary target/dist/connect-monitor-gateway \
  --redis-server "$redis_server" \
  --pid-file "$pids" \
  "${args[@]}" &
driver=$!
status=0
wait "$driver" || status=$?
driver=""
exit "$status"
