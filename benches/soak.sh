#!/usr/bin/env bash
# Soak (not a test, not in CI): the gateway as shipped (--profile dist) under
# mixed traffic against in-process stand-ins (issuer, SigV4-checking Connect
# answering after 5 ms): mostly allowed requests, with denied, forged,
# invalid and throttled ones mixed in. It prints the gateway's RssAnon and
# RssFile at start, every minute and at the end, answers by status, and audit
# lines against requests; exits 1 if a request got no answer, the audit missed
# a line or Connect refused a signature. Driver: benches/src/bin/soak.rs.
#
# Usage: benches/soak.sh [seconds] [workers]
#   defaults 600 s (10 minutes, plus the build), 8 concurrent workers.
# The gateway is built on its own, as deploy/Dockerfile builds it (so the
# drivers' test-util feature never reaches it); the drivers with -p cmg-bench.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked -p connect-monitor-gateway --no-default-features --profile dist --bin connect-monitor-gateway
cargo build --locked -p cmg-bench --profile dist --bins
exec target/dist/soak --seconds "${1:-600}" --workers "${2:-8}" \
  --binary target/dist/connect-monitor-gateway
