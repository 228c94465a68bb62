#!/usr/bin/env bash
# SigV4 upload benchmark: streaming chunk-signed uploads through Excalibur vs direct
# unsigned uploads, same client, same run. Needs s3s-fs (see .ci/run). Release build.
#   bash bench/sigv4.sh [--objects N] [--mib M] [--concurrency C]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked --bin excalibur --bin excalibur-bench-sigv4
exec target/release/excalibur-bench-sigv4 --gateway target/release/excalibur "$@"
