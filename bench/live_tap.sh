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
#
# An old build against a new one, alternated in one run:
#
#   TAPKIT_BASELINE_BUILD=/path/to/old/build [PAIRS=5] bench/live_tap.sh [seconds, default 6] [rates]
#
# For each rate (default "5000 20000"): a short warm-up load without a tap, then tap runs
# alternating old, new, old, new... (PAIRS of each), each with its build's own control plane,
# sidecar and taprec (a fresh control plane per run, so no sidecar of the other build runs
# meanwhile). Each run checks the exchanges in its file against nginx's access log. Then a table
# per rate: requests sent (h2load), the smallest share in the file over the runs, the median
# delivery p99 (taprec --delay-report) of each build and new/old of those medians. The new build
# is BUILD_DIR (default build). Only flags every build since the live tap accepts are passed. Files
# are counted with the new build's tapcat.
# Needs root (capture). Loopback addresses only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
baseline="${TAPKIT_BASELINE_BUILD:-}"
if [[ -n "$baseline" ]]; then secs="${1:-6}"; else secs="${1:-10}"; fi
rates="${2:-5000 20000}"
pairs="${PAIRS:-5}"
build="$(realpath "${BUILD_DIR:-build}")"
[[ $EUID -eq 0 ]] || { echo "live_tap.sh: capturing needs root" >&2; exit 2; }

TAPKIT_EXTRA_PACKAGES="nghttp2-client tcpdump" bash scripts/deps.sh >&2
cmake --build "$build" --target taprec tapcat tap-controlplane tap-sidecar >/dev/null
if [[ -n "$baseline" ]]; then
  baseline="$(realpath "$baseline")"
  if [[ -f "$baseline/CMakeCache.txt" ]]; then
    cmake --build "$baseline" --target taprec tap-controlplane tap-sidecar >/dev/null
  fi
  for b in tools/taprec controlplane/tap-controlplane sidecar/tap-sidecar; do
    [[ -x "$baseline/$b" ]] || { echo "live_tap.sh: no $baseline/$b" >&2; exit 2; }
  done
fi

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
# start_cp BUILD RUNTIME_DIR: that build's control plane, starting that build's sidecars.
start_cp() {
  "$1/controlplane/tap-controlplane" --inventory deploy/demo/inventory.yaml \
    --runtime-dir "$2" --sidecar "$1/sidecar/tap-sidecar" 2>"$2.cp.log" &
  cp_pid=$!
  for _ in $(seq 100); do [[ -S "$2/controlplane.sock" ]] && return 0; sleep 0.1; done
  echo "live_tap.sh: no control plane socket in $2 ($2.cp.log)" >&2
  exit 1
}
# stop_cp: SIGTERM stops its sidecars too.
stop_cp() { kill "$cp_pid" 2>/dev/null || true; wait "$cp_pid" 2>/dev/null || true; cp_pid=; }
if [[ -z "$baseline" ]]; then
  export TAPKIT_RUNTIME_DIR="$work/run"
  start_cp "$build" "$TAPKIT_RUNTIME_DIR"
fi

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

if [[ -n "$baseline" ]]; then
  # tap_run LABEL BUILD RATE N: one tap run; appends a line to $work/results.
  tap_run() {
    local label=$1 b=$2 rate=$3 n=$4 id="$1-$3-$4"
    local rd="$work/run-$id"
    start_cp "$b" "$rd"
    TAPKIT_RUNTIME_DIR="$rd" "$b/tools/taprec" deploy/frontend -n demo -w "$work/$id.tap" \
      --delay-report 2>"$work/$id.err" &
    local tp=$!
    for _ in $(seq 100); do grep -q 'tapping pod' "$work/$id.err" && break; sleep 0.1; done
    local served0 served1 sent sc ticks captured delay p50 drops nginx load1
    load1=$(cut -d' ' -f1 /proc/loadavg)  # others' work on the machine, for reading the noise
    served0=$(served)
    sent=$(load "$rate" "$work/$id.log")
    nginx=$(p99 "$work/$id.log")
    sleep 1  # the last exchanges reach the file
    served1=$(served)
    sc=$(pgrep -f "tap-sidecar --listen unix:$rd/" | head -1)
    ticks=$(awk '{print $14 + $15}' "/proc/$sc/stat")
    [[ "$(readlink -f "/proc/$sc/exe")" == "$b"/* ]] ||
      { echo "live_tap.sh: sidecar $(readlink -f "/proc/$sc/exe") is not $label's" >&2; exit 1; }
    kill -INT "$tp"
    wait "$tp" || true
    stop_cp
    captured=$("$build/tools/tapcat" -o json "$work/$id.tap" |
      grep -c '"destination":{"ip":"127.0.10.1"' || true)
    delay=$(grep -o 'p99 [0-9.]* ms' "$work/$id.err" | cut -d' ' -f2)
    p50=$(grep -o 'p50 [0-9.]* ms' "$work/$id.err" | cut -d' ' -f2)
    drops=$("$build/tools/tapcat" --info "$work/$id.tap" | sed -n 's/^Drops: *//p')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$rate" "$n" \
      "$sent" "$((served1 - served0))" "$captured" "${delay:-nan}" "${p50:-nan}" "$ticks" \
      "$nginx" "$load1" "${drops:-none}" | tee -a "$work/results"
  }
  echo "old: $baseline" >&2
  echo "new: $build" >&2
  printf 'build\trate\trun\tsent\tserved\tcaptured\tp99_ms\tp50_ms\tsidecar_ticks\tnginx_p99_us\tload\tdrops\n'
  for rate in $rates; do
    load "$rate" "$work/warmup-$rate.log" >/dev/null  # nginx and h2load warm, not measured
    for n in $(seq "$pairs"); do
      tap_run old "$baseline" "$rate" "$n"
      tap_run new "$build" "$rate" "$n"
    done
  done
  python3 - "$work/results" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
print()
print(f"{'rate':>8} {'sent old/new':>17} {'in file old/new (min)':>24} "
      f"{'delivery p99 ms old/new (median)':>33} {'new/old':>8} {'p50 ms old/new':>15} "
      f"{'new/old':>8} {'nginx p99 µs old/new':>21}")
for rate in dict.fromkeys(r[1] for r in rows):
    col = {}
    for b in ("old", "new"):
        rs = [r for r in rows if r[0] == b and r[1] == rate]
        share = min(100 * int(r[5]) / max(int(r[4]), 1) for r in rs)
        col[b] = (int(statistics.median(int(r[3]) for r in rs)), share,
                  statistics.median(float(r[6]) for r in rs),
                  int(statistics.median(int(r[9]) for r in rs)),
                  " ".join(r[6] for r in rs),
                  statistics.median(float(r[7]) for r in rs),
                  max(float(r[10]) for r in rs))
    o, n = col["old"], col["new"]
    print(f"{rate + '/s':>8} {f'{o[0]} / {n[0]}':>17} {f'{o[1]:.2f}% / {n[1]:.2f}%':>24} "
          f"{f'{o[2]:.2f} / {n[2]:.2f}':>33} {n[2] / o[2]:>8.2f} "
          f"{f'{o[5]:.2f} / {n[5]:.2f}':>15} {n[5] / o[5]:>8.2f} {f'{o[3]} / {n[3]}':>21}")
    print(f"{'':>8}   each run's p99 (ms): old {o[4]}; new {n[4]}; "
          f"highest load average {max(o[6], n[6]):.2f}")
    met = n[1] >= 100 and n[2] <= 1.2 * o[2]
    print(f"{'':>8}   issue 10 (new: 100% in the file, p99 at most 1.2x old's): "
          f"{'met' if met else 'NOT met'}")
PY
  exit 0
fi

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
