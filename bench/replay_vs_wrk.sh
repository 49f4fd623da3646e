#!/usr/bin/env bash
# tapreplay --max against wrk on the same nginx and routes, alternately in one run (bench/README.md,
# "tapreplay against wrk"). Issue 12's targets, as ratios of requests per second:
#   tapreplay --max --concurrency 8 --no-compare >= 0.8 x wrk -t1 -c8
#   the same with comparison on                  >= 0.6 x wrk -t1 -c8
#
#   bench/replay_vs_wrk.sh [seconds per run, default 10] [runs, default 3]
#   BUILD_DIR=build (default); TAPREPLAY=/path/to/tapreplay times that binary instead of
#   BUILD_DIR's; KEEP=1 keeps the work folder (capture, outputs).
#
# bench/replay_site.py starts nginx (1 worker, access_log off, keep-alive) on 127.0.99.1:8099
# with four routes: nginx's own "ok", two small static files and a JSON document. The capture is
# real traffic: wrk cycling the routes (routes.lua) for 1 s with tcpdump on lo, read by
# `taprec -r`. Then each run, in this order: `wrk -t1 -c8 -d SECONDS -s routes.lua`, then
# `tapreplay --max --concurrency 8 --loop N --no-compare`, then the same with comparison, N chosen
# after a 3 s warm-up run of wrk so that a replay sends about SECONDS x wrk's rate requests. Every rate
# is nginx's count of requests served (stub_status, read before and after) over the load
# generator's wall time; wrk's own figure is printed beside it. The ratios are of the medians.
# CPU per request (GNU time's user + system over nginx's count) and wrk's over tapreplay's are
# printed too: a shared machine moves them far less than the rates.
# Nothing is pinned to a core: on 2 cores nginx's worker and the load generator (one thread each)
# take one core each. Needs root (tcpdump on lo). Loopback addresses only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-10}"
runs="${2:-3}"
addr=127.0.99.1
port=8099
build="${BUILD_DIR:-build}"
[[ $EUID -eq 0 ]] || { echo "replay_vs_wrk.sh: tcpdump on lo needs root" >&2; exit 2; }

TAPKIT_EXTRA_PACKAGES="nginx-light wrk tcpdump time" bash scripts/deps.sh >/dev/null
cmake --build "$build" --target taprec tapcat >/dev/null
replay="${TAPREPLAY:-}"
if [[ -z "$replay" ]]; then
  if cmake --build "$build" --target tapreplay >/dev/null 2>&1; then
    replay="$build/tools/tapreplay"
  else
    echo "replay_vs_wrk.sh: no tapreplay target in $build: measuring wrk only" >&2
  fi
fi

work="$(mktemp -d /tmp/tapkit-replay-bench.XXXXXX)"
tcpdump_pid=
cleanup() {
  set +e
  [[ -n "$tcpdump_pid" ]] && kill "$tcpdump_pid" 2>/dev/null && wait "$tcpdump_pid" 2>/dev/null
  python3 bench/replay_site.py stop "$work"
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

python3 bench/replay_site.py start "$work" "$addr" "$port"
served() { python3 bench/replay_site.py served "$addr" "$port"; }
url="http://$addr:$port"

# The capture: 1 s of wrk cycling the routes, as tcpdump saw it on lo.
tcpdump -i lo -s 0 -B 65536 -w "$work/rec.pcap" "host $addr and tcp port $port" 2>"$work/tcpdump.log" &
tcpdump_pid=$!
for _ in $(seq 100); do grep -qs "listening on" "$work/tcpdump.log" && break; sleep 0.05; done
wrk -t1 -c8 -d1s -s "$work/routes.lua" "$url" > "$work/wrk-rec.txt"
sleep 1.5  # tcpdump hands packets over in blocks retired after at most 1 s; SIGINT loses the rest
kill -INT "$tcpdump_pid"; wait "$tcpdump_pid" 2>/dev/null || true; tcpdump_pid=
"$build/tools/taprec" -r "$work/rec.pcap" -w "$work/rec.tap" 2>"$work/taprec.log"
read -r recorded complete < <("$build/tools/tapcat" -o json "$work/rec.tap" | python3 -c '
import json, sys
n = c = 0
for line in sys.stdin:
    n += 1
    c += json.loads(line)["end"]["completion"] == "complete"
print(n, c)')
echo "capture: $(awk '/requests in/ {print $1}' "$work/wrk-rec.txt") wrk requests;" \
     "$recorded exchanges, $complete complete ($(grep -o '[0-9]* packets dropped by kernel' "$work/tcpdump.log"))" >&2
[[ "$complete" -gt 0 ]] || { echo "replay_vs_wrk.sh: the capture holds no complete exchange" >&2; exit 2; }

# Runs "$@" with GNU time, counting nginx's requests; appends "name requests wall cpu rc" to
# $work/runs and leaves the command's stdout in $work/out.
measure() {
  local name="$1"; shift
  local before after rc=0
  load=$(cut -d' ' -f1 /proc/loadavg)  # other work on the machine, printed with the run
  before=$(served)
  /usr/bin/time -f "%e %U %S" -o "$work/time.txt" "$@" > "$work/out" 2> "$work/err" || rc=$?
  after=$(served)
  read -r wall user sys_ < "$work/time.txt"
  # The second stub_status request counts itself.
  echo "$name $((after - before - 1)) $wall $(python3 -c "print(round($user + $sys_, 2))") $rc" >> "$work/runs"
}

# Warm-up (nginx's caches, the page cache), not counted; its rate sets the replays' rounds.
: > "$work/runs"
measure warm-up wrk -t1 -c8 -d3s -s "$work/routes.lua" "$url"
read -r _ n wall _ < <(tail -1 "$work/runs")
: > "$work/runs"
loop=$(python3 -c "print(max(1, round($n / $wall * $secs / $complete)))")
[[ -z "$replay" ]] || echo "replays: $loop rounds of $complete exchanges ($((loop * complete)) requests)" >&2
for ((r = 1; r <= runs; r++)); do
  measure wrk wrk -t1 -c8 -d"${secs}s" -s "$work/routes.lua" "$url"
  wrk_self=$(awk '/Requests\/sec/ {print $2}' "$work/out")
  read -r _ n wall cpu _ < <(tail -1 "$work/runs")
  echo "run $r: wrk: $n requests in $wall s ($(python3 -c "print(round($n / $wall))")/s; wrk says $wrk_self/s), CPU $cpu s, load average $load" >&2
  [[ -n "$replay" ]] || continue
  for mode in no-compare compare; do
    flags=(--max --concurrency 8 --loop "$loop")
    [[ "$mode" == no-compare ]] && flags+=(--no-compare)
    measure "$mode" "$replay" "$work/rec.tap" --target "$url" "${flags[@]}"
    read -r _ n wall cpu rc < <(tail -1 "$work/runs")
    note=""
    [[ "$n" -eq $((loop * complete)) ]] || note=" (nginx counted $n, not the $((loop * complete)) sent)"
    case "$rc" in
      0) ;;
      1) note="$note (exit 1: mismatches; $(tail -3 "$work/out" | tr '\n' ' '))" ;;
      *) note="$note (exit $rc: $(head -c 300 "$work/err"))" ;;
    esac
    echo "run $r: tapreplay $mode: $n requests in $wall s ($(python3 -c "print(round($n / $wall))")/s), CPU $cpu s, load average $load$note" >&2
    [[ "$rc" -le 1 ]] || exit 2
  done
done

python3 - "$work/runs" "$secs" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, n, wall, cpu, rc = line.split()
    rows.setdefault(name, []).append((int(n) / float(wall), float(cpu) / int(n) * 1e6, int(n)))
base = statistics.median(r[0] for r in rows["wrk"])
base_cpu = statistics.median(r[1] for r in rows["wrk"])
targets = {"no-compare": 0.8, "compare": 0.6}
labels = {"wrk": "wrk -t1 -c8", "no-compare": "tapreplay --no-compare", "compare": "tapreplay (compare)"}
print(f"medians of {len(rows['wrk'])} runs of about {sys.argv[2]} s:")
print(f"{'':24} {'requests/s':>10} {'/ wrk':>6} {'target':>7} {'CPU us/request':>15} {'wrk CPU / its':>13}")
for name, rs in rows.items():
    rate = statistics.median(r[0] for r in rs)
    cpu = statistics.median(r[1] for r in rs)
    t = targets.get(name)
    print(f"{labels[name]:24} {rate:10.0f} {rate / base:6.2f} {('>= %.1f' % t) if t else '':>7} {cpu:15.1f} {base_cpu / cpu:13.2f}")
PY
