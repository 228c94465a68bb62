#!/usr/bin/env bash
# Control-plane scale: sets (provider, placeholder, rule, service credential) created one
# by one and by POST /api/import, the latency of one rotation, and RSS per set, at each
# size.   bash bench/scale.sh [--sizes 1000,10000,100000]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin excalibur --bin excalibur-bench-scale
exec target/release/excalibur-bench-scale --gateway target/release/excalibur "$@"
