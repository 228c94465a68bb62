#!/usr/bin/env bash
# Write-path scaling: 1, 2 and 4 replicas on one PostgreSQL (Debian's postgresql must be
# installed: ./test.sh installs it), load over every replica, every flow recorded.
#   bash bench/replicas.sh [--requests N] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin excalibur --bin excalibur-bench-replicas
exec target/release/excalibur-bench-replicas --gateway target/release/excalibur "$@"
