#!/usr/bin/env bash
# Proxy benchmark: through Excalibur (with substitution) vs direct to the same upstream,
# same client, same run. Release build. Prints req/s and p50/p99 per case.
#   bash bench/run.sh [--requests N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin excalibur --bin excalibur-bench
exec target/release/excalibur-bench --gateway target/release/excalibur "$@"
