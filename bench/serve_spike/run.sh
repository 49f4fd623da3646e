#!/usr/bin/env bash
# Issue 13's library spike: requests/s of nginx (1 worker, access_log off) and of one small server
# per candidate library (Boost.Beast, cpp-httplib, libmicrohttpd), all answering GET /a /b /c with
# the same fixed bodies (bodies.h) on 127.0.103.1, under `wrk -t1 -c8 -d5s` over the three paths.
# RUNS alternating rounds (default 3); prints each figure and each server's median ratio to nginx.
#   bench/serve_spike/run.sh [RUNS]
# Needs g++, nginx, wrk and the candidate libraries, installed below through scripts/deps.sh (only
# Beast, in libboost-dev, is one of the project's own dependencies).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runs="${1:-3}"
addr=127.0.103.1
work="$(mktemp -d /tmp/serve_spike.XXXXXX)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

TAPKIT_EXTRA_PACKAGES="nginx-light wrk libcpp-httplib-dev libmicrohttpd-dev pkg-config" \
  bash "$here/../../scripts/deps.sh" >/dev/null
for tool in g++ gcc nginx wrk; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found (scripts/deps.sh)" >&2; exit 2; }
done
echo "building spikes in $work" >&2
g++ -std=c++17 -O2 -DNDEBUG -o "$work/beast_spike" "$here/beast_spike.cc" -pthread
g++ -std=c++17 -O2 -DNDEBUG -o "$work/httplib_spike" "$here/httplib_spike.cc" $(pkg-config --cflags --libs cpp-httplib) -pthread
gcc -O2 -DNDEBUG -o "$work/mhd_spike" "$here/mhd_spike.c" -lmicrohttpd -pthread

# nginx serving the same bodies (return with literal text; default_type as the spikes send).
body() { sed -n "s|.*\"$1\") return \"\\(.*\\)\";|\\1|p" "$here/bodies.h"; }
mkdir -p "$work/nginx"
cat >"$work/nginx/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $work/nginx; proxy_temp_path $work/nginx; fastcgi_temp_path $work/nginx;
  uwsgi_temp_path $work/nginx; scgi_temp_path $work/nginx;
  default_type text/plain;
  server {
    listen $addr:18080;
    location = /a { return 200 "$(body /a)"; }
    location = /b { return 200 "$(body /b)"; }
    location = /c { return 200 "$(body /c)"; }
  }
}
CONF

start() {  # NAME PORT CMD...
  local name="$1" port="$2"; shift 2
  "$@" &
  pids+=($!)
  for _ in $(seq 50); do
    curl -sf "http://$addr:$port/a" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "run.sh: $name did not come up on $addr:$port" >&2; exit 1
}
start nginx 18080 nginx -c "$work/nginx/nginx.conf" -p "$work/nginx"
start beast 18081 "$work/beast_spike" "$addr" 18081
start httplib 18082 "$work/httplib_spike" "$addr" 18082
start mhd 18083 "$work/mhd_spike" "$addr" 18083
start mhd2 18084 "$work/mhd_spike" "$addr" 18084 2

# Same bytes from each server (body and Content-Length), checked once before timing.
for p in /a /b /c; do
  want="$(curl -s "http://$addr:18080$p")"
  for port in 18081 18082 18083 18084; do
    got="$(curl -s "http://$addr:$port$p")"
    [[ "$got" == "$want" ]] || { echo "run.sh: port $port $p differs from nginx" >&2; exit 1; }
  done
done

# Keep-alive: curl must reuse the connection for a second request (a server answering
# "Connection: close" would be timed on fresh connections instead).
for port in 18080 18081 18082 18083 18084; do
  curl -sv "http://$addr:$port/a" "http://$addr:$port/b" 2>&1 >/dev/null | grep -q 'Re-using existing connection' ||
    { echo "run.sh: port $port closes the connection after a response" >&2; exit 1; }
done

names=(nginx beast httplib mhd mhd2)
ports=(18080 18081 18082 18083 18084)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A rates
for r in $(seq "$runs"); do
  for i in "${!names[@]}"; do
    out="$(wrk -t1 -c8 -d5s -s "$here/paths.lua" "http://$addr:${ports[$i]}/")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    errs="$(grep -E 'Non-2xx|Socket errors' <<<"$out" || true)"
    printf 'run %d %-8s %10.0f req/s %s\n' "$r" "${names[$i]}" "$rps" "$errs"
    rates[${names[$i]}]+="$rps "
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
n="$(median "${rates[nginx]}")"
echo "median req/s and ratio to nginx (target >= 0.5):"
for name in "${names[@]}"; do
  m="$(median "${rates[$name]}")"
  awk -v n="$name" -v m="$m" -v b="$n" 'BEGIN {printf "  %-8s %10.0f  %.2f\n", n, m, m / b}'
done
