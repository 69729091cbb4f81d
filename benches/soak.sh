#!/usr/bin/env bash
# Soak (not in CI): the release binary under mixed traffic for 10 minutes by
# default. Usage: benches/soak.sh [seconds] [workers]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --bins --examples
exec target/release/examples/soak --seconds "${1:-600}" --workers "${2:-8}" \
  --binary target/release/connect-monitor-gateway
