#!/usr/bin/env bash
# The test command: installs what the tests need (idempotent; quick when present),
# then runs the whole suite. `./test.sh --no-install` skips the installing, for people
# who manage their own tools. Extra arguments go to `cargo test`.
#
# Installs, when missing (Debian, as root or with sudo):
#   apt:  curl, make (jemalloc's build), python3 (+ venv), nodejs + npm, chromium (web UI tests, driven by
#         playwright-core), nginx (upstream mTLS peer), openssh-server + openssh-client
#         (SSH gateway), postgresql (store conformance, two-replica tests)
#   cargo install s3s-fs@0.14.1 (a real S3 server that verifies SigV4; ~4 min to build)
#   target/aws-venv: awscli, boto3, requests, authlib, flask, moto[server] (AWS CLI, boto3,
#         OAuth peer, a real STS API for the aws-sts exchange)
#   npm ci in tests/ui (playwright-core) and tests/peers/dpop (oidc-provider, oauth4webapi)
set -euo pipefail
cd "$(dirname "$0")"

install=1
args=()
for a in "$@"; do
  case "$a" in
    --no-install) install=0 ;;
    *) args+=("$a") ;;
  esac
done

if [ "$install" = 1 ]; then
  echo "== test.sh: installing what the tests need (skip with --no-install)"
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  need_apt=()
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
  command -v make >/dev/null 2>&1 || need_apt+=(make)
  command -v python3 >/dev/null 2>&1 || need_apt+=(python3 python3-pip)
  python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
  [ -x /usr/bin/chromium ] || need_apt+=(chromium)
  command -v node >/dev/null 2>&1 || need_apt+=(nodejs npm)
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
  [ -x /usr/sbin/sshd ] || need_apt+=(openssh-server)
  command -v scp >/dev/null 2>&1 || need_apt+=(openssh-client)
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
  if [ ${#need_apt[@]} -gt 0 ]; then
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
  fi
  python3 -c 'import requests' 2>/dev/null \
    || python3 -m pip install --quiet --disable-pip-version-check requests
  command -v s3s-fs >/dev/null 2>&1 || [ -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ] \
    || cargo install s3s-fs@0.14.1 --features binary --locked
  [ -x target/aws-venv/bin/aws ] || python3 -m venv target/aws-venv
  target/aws-venv/bin/python -c 'import awscli, boto3, requests, authlib, flask, moto' 2>/dev/null \
    || target/aws-venv/bin/pip install --quiet --disable-pip-version-check awscli boto3 requests authlib flask "moto[server]"
  for dir in tests/ui tests/peers/dpop; do
    # npm ci only when node_modules is missing or older than the lockfile.
    if [ ! -f "$dir/node_modules/.package-lock.json" ] \
      || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund)
    fi
  done
fi

echo "== test.sh: cargo test --workspace ${args[*]:-}"
cargo test --workspace "${args[@]}"
echo "UI screenshots: target/ui-screenshots/"
