#!/usr/bin/env bash
# Benchmark (not a test, not in CI): the gateway's CPU cost of a Connect-aware
# grant. In one run, two gateways (the binary as shipped: --profile dist)
# against in-process stand-ins (issuer and SigV4-checking Connect), side by
# side in alternating short rounds:
#   A  a claims-only grant
#   B  the same grant plus agents = "my_hierarchy" and connect_permissions = true,
#      lookups cached for 1 h and warmed by the first request
# For each round it reads the gateway process's utime+stime from
# /proc/<pid>/stat and prints CPU seconds per 1000 requests, requests/s, the
# ratio B/A, and the Connect stand-in's call counts for B after warm-up and at
# the end (lookups happen only at warm-up). Exits 1 if any request did not get
# a 200, a signature failed, the audit missed a line, or B looked up again.
# Linux only (/proc). Driver: benches/src/bin/connect_aware_bench.rs.
#
# Usage: benches/connect_aware.sh [rounds] [requests-per-round] [concurrency]
#        (defaults 10, 2000, 8: a few seconds on 2 cores after the build;
#        CPU time is counted in 10 ms ticks, so more rounds give a steadier ratio)
# The gateway is built on its own, as deploy/Dockerfile builds it (so the
# drivers' test-util feature never reaches it); the drivers with -p cmg-bench.
# The first dist build (fat LTO, one codegen unit) takes several minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p connect-monitor-gateway --no-default-features --profile dist --bin connect-monitor-gateway
cargo build --locked -p cmg-bench --profile dist --bins
exec target/dist/connect_aware_bench \
  --rounds "${1:-10}" --requests "${2:-2000}" --concurrency "${3:-8}" \
  --binary target/dist/connect-monitor-gateway
