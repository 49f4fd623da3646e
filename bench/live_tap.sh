#!/usr/bin/env bash
# The live tap under fixed-rate load, runs with and without a tap alternating in one script
# (bench/README.md, "live tap"):
#
#   bench/live_tap.sh [seconds per run, default 10] [rates, default "5000 20000"]
#
# The demo mesh (deploy/demo/mesh.sh) and the control plane run as in scripts/demo.sh; h2load
# (Debian's nghttp2-client) sends HTTP/1.1 at a fixed rate to the frontend pod (GET /, served by
# nginx itself, 40 connections). For each rate: a run without any capture, a run with tcpdump
# (the same filter, writing to /dev/null: the floor any libpcap capture sets), then a run with
# `taprec deploy/frontend -n demo -w FILE --delay-report`. Reported per rate:
#   - share of the requests nginx served (its access log) found in the file, and the drop
#     counters;
#   - the sidecar's CPU seconds per 100,000 exchanges (/proc/PID/stat before it stops);
#   - p99 delay from an exchange's last packet to its arrival in taprec;
#   - nginx's p99 latency as h2load measured it (--log-file): no capture / tcpdump / tap.
# Needs root (capture). Loopback addresses only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-10}"
rates="${2:-5000 20000}"
build="${BUILD_DIR:-build}"
[[ $EUID -eq 0 ]] || { echo "live_tap.sh: capturing needs root" >&2; exit 2; }

TAPKIT_EXTRA_PACKAGES="nghttp2-client tcpdump" bash scripts/deps.sh >&2
cmake --build "$build" --target taprec tapcat tap-controlplane tap-sidecar >/dev/null

work="$(mktemp -d /tmp/tapkit-live-bench.XXXXXX)"
chmod 755 "$work"
cp_pid=
cleanup() {
  set +e
  [[ -n "$cp_pid" ]] && kill "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  deploy/demo/mesh.sh down "$work/mesh" >/dev/null 2>&1
  pkill -f "tap-sidecar --listen unix:$work/" 2>/dev/null
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

deploy/demo/mesh.sh up "$work/mesh" >/dev/null
export TAPKIT_RUNTIME_DIR="$work/run"
"$build/controlplane/tap-controlplane" --inventory deploy/demo/inventory.yaml \
  --runtime-dir "$TAPKIT_RUNTIME_DIR" 2>"$work/cp.log" &
cp_pid=$!
for _ in $(seq 100); do [[ -S "$TAPKIT_RUNTIME_DIR/controlplane.sock" ]] && break; sleep 0.1; done

# h2load: completed requests and the p99 of its per-request durations (microseconds). 40
# keep-alive connections; the demo's nginx keeps a connection for up to 1,000,000 requests (at
# nginx's default of 1,000, h2load's connections closed after 1,000 requests each and a run
# silently ended early).
clients=40
load() {  # RATE LOGFILE
  local rate=$1 log=$2 per=$(( $1 / clients ))
  h2load --h1 -c "$clients" --rps "$per" -D "$secs" --log-file "$log" \
    http://127.0.10.1:8080/ > "$log.summary" 2>&1
  awk '/requests:/ {print $8}' "$log.summary"  # "N succeeded"
}
# GET / requests the frontend pod's nginx has served so far (its access log).
served() { cat "$work"/mesh/pods/frontend-*/logs/access.log | grep -c '"GET / HTTP/1.1" 200' || true; }
p99() { cut -f3 "$1" | sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.99)]}'; }

printf '%-8s %-10s %-10s %-10s %-9s %-14s %-10s %-30s\n' rate h2load served captured share \
  "cpu/100k exch" "delay p99" "nginx p99: no capture / tcpdump / tap"
for rate in $rates; do
  # Without a tap.
  base_ok=$(load "$rate" "$work/base-$rate.log")
  base_p99=$(p99 "$work/base-$rate.log")
  # The floor any libpcap capture sets: tcpdump with the sidecar's filter and buffer, writing
  # nowhere (the kernel's per-packet work: BPF, the copy into the ring, wake-ups).
  tcpdump -i lo -B 32768 -w /dev/null host 127.0.10.1 2>/dev/null &
  td=$!
  sleep 1
  load "$rate" "$work/tcpdump-$rate.log" >/dev/null
  kill "$td"
  wait "$td" || true
  tcpdump_p99=$(p99 "$work/tcpdump-$rate.log")
  # With a tap on the frontend pod.
  "$build/tools/taprec" deploy/frontend -n demo -w "$work/tap-$rate.tap" --delay-report \
    2>"$work/taprec-$rate.err" &
  tp=$!
  for _ in $(seq 100); do grep -q 'tapping pod' "$work/taprec-$rate.err" && break; sleep 0.1; done
  served0=$(served)
  ok=$(load "$rate" "$work/tap-$rate.log")
  tap_p99=$(p99 "$work/tap-$rate.log")
  sleep 1  # the last exchanges reach the file
  served1=$(served)
  sc=$(pgrep -f "tap-sidecar --listen unix:$work/" | head -1)
  ticks=$(awk '{print $14 + $15}' "/proc/$sc/stat")
  kill -INT "$tp"
  wait "$tp" || true
  info=$("$build/tools/tapcat" --info "$work/tap-$rate.tap")
  # Exchanges of h2load's connections: to the frontend's port from 127.0.0.1.
  captured=$("$build/tools/tapcat" -o json "$work/tap-$rate.tap" |
    grep -c '"destination":{"ip":"127.0.10.1"' || true)
  delay=$(grep -o 'p99 [0-9.]* ms' "$work/taprec-$rate.err" | cut -d' ' -f2)
  cpu=$(python3 -c "print(f'{$ticks/100/max($captured,1)*100000:.2f} s')")
  share=$(python3 -c "print(f'{100*$captured/max($served1-$served0,1):.2f}%')")
  printf '%-8s %-10s %-10s %-10s %-9s %-14s %-10s %-30s\n' "$rate/s" "$ok" \
    "$((served1 - served0))" "$captured" "$share" "$cpu" "${delay} ms" \
    "${base_p99} / ${tcpdump_p99} / ${tap_p99} µs"
  echo "$info" | grep -E '^Drops:' | sed "s/^/  $rate\/s /"
done
