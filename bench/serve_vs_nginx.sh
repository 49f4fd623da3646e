#!/usr/bin/env bash
# tapreplay --serve against nginx serving the same recorded responses on the same routes, under
# wrk -t1 -c8, alternately in one run (bench/README.md, "The mock server against nginx").
# Issue 13's target, as a ratio of requests per second: the mock >= 0.5 x nginx.
#
#   bench/serve_vs_nginx.sh [seconds per run, default 10] [rounds, default 5]
#   BUILD_DIR=build (default); TAPREPLAY=/path/to/tapreplay times that binary; KEEP=1 keeps the
#   work folder (capture, generated config, wrk outputs).
#
# 1. The capture: bench/serve_site.py's shop API (20 GET routes: JSON documents of 200 B to 20 KB,
#    one gzip-compressed, a text health check, a 404, a 204) on a real nginx at 127.0.102.1,
#    asked once per route by curl (keep-alive, Accept-Encoding: gzip) while tcpdump records lo,
#    read by `taprec -r`.
# 2. The baseline: bench/serve_nginx_conf.py generates an nginx config serving the capture's
#    recorded responses on the same routes (bodies from files, open_file_cache on and sendfile off,
#    1 worker, access_log off, as bench/replay_vs_wrk.sh runs nginx) on 127.0.102.2.
# 3. The mock: `tapreplay rec.tap --serve 127.0.102.3:8093` (1 thread, the default) and
#    `--threads 2` on 127.0.102.4, the log to /dev/null.
# 4. Before timing, curl asks every route of all servers and the script stops unless status and
#    body bytes are the recorded ones everywhere (the comparison is fair only if they are).
# 5. ROUNDS rounds, each running `wrk -t1 -c8 -d SECONDS -s paths.lua` (the routes in turn on each
#    connection) against nginx, the mock and the mock with 2 threads, in that order. Rates are
#    wrk's (requests completed over its run time); CPU per request is the server process's
#    user + system time (/proc/PID/stat: nginx's worker; the mock's whole process) over wrk's
#    count. Medians of the rounds; the ratios are of the medians.
# Nothing is pinned: on 2 cores wrk's thread and the server's take one core each (the mock with
# 2 threads then competes with wrk). Needs root (tcpdump on lo). Loopback addresses only.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-10}"
rounds="${2:-5}"
build="${BUILD_DIR:-build}"
[[ "$secs" =~ ^[0-9]+$ && "$secs" -gt 0 ]] || { echo "serve_vs_nginx.sh: seconds '$secs': not a positive integer" >&2; exit 2; }
[[ "$rounds" =~ ^[0-9]+$ && "$rounds" -gt 0 ]] || { echo "serve_vs_nginx.sh: rounds '$rounds': not a positive integer" >&2; exit 2; }
[[ $EUID -eq 0 ]] || { echo "serve_vs_nginx.sh: tcpdump on lo needs root" >&2; exit 2; }

TAPKIT_EXTRA_PACKAGES="nginx-light wrk tcpdump curl" bash scripts/deps.sh >/dev/null 2>&1 ||
  { echo "serve_vs_nginx.sh: scripts/deps.sh failed" >&2; exit 2; }
cmake --build "$build" --target taprec tapcat >/dev/null
replay="${TAPREPLAY:-}"
if [[ -z "$replay" ]]; then
  cmake --build "$build" --target tapreplay >/dev/null 2>&1 ||
    { echo "serve_vs_nginx.sh: building tapreplay in $build failed (cmake --build $build --target tapreplay)" >&2; exit 2; }
  replay="$build/tools/tapreplay"
fi
[[ "$("$replay" --help 2>&1)" == *--serve* ]] ||
  { echo "serve_vs_nginx.sh: $replay has no --serve: nothing to time against nginx" >&2; exit 2; }

work="$(mktemp -d /tmp/tapkit-serve-bench.XXXXXX)"
chmod 755 "$work"
mock_pids=()
cleanup() {
  set +e
  for p in "${mock_pids[@]}"; do kill -TERM "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  [[ -s "$work/nginx/nginx.pid" ]] && kill -QUIT "$(cat "$work/nginx/nginx.pid")" 2>/dev/null
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

wait_http() {  # URL NAME: until URL answers (any status)
  for _ in $(seq 100); do
    curl -s -o /dev/null --max-time 1 "$1" && return 0
    sleep 0.05
  done
  echo "serve_vs_nginx.sh: $2 does not answer $1" >&2; exit 2
}

# 1. The capture.
python3 bench/serve_site.py "$work" 127.0.102.1 8091 "$build/tools/taprec"
echo "capture: $("$build/tools/tapcat" -o json "$work/rec.tap" | wc -l) exchanges" >&2

# 2. nginx from the generated config.
python3 bench/serve_nginx_conf.py --tapcat "$build/tools/tapcat" --listen 127.0.102.2:8092 \
  "$work/rec.tap" "$work/nginx"
nginx -c "$work/nginx/nginx.conf"
wait_http http://127.0.102.2:8092/healthz "the generated nginx"
nginx_master="$(cat "$work/nginx/nginx.pid")"
nginx_worker="$(cat "/proc/$nginx_master/task/$nginx_master/children" | awk '{print $1}')"

# 3. The mock, with 1 and 2 threads.
names=(nginx)
urls_of=(http://127.0.102.2:8092)
pids_of=("$nginx_worker")
for threads in 1 2; do
  addr="127.0.102.$((2 + threads)):$((8092 + threads))"
  "$replay" "$work/rec.tap" --serve "$addr" --threads "$threads" >/dev/null 2>"$work/mock$threads.err" &
  mock_pids+=($!)
  wait_http "http://$addr/healthz" "tapreplay --serve --threads $threads"
  names+=("mock-t$threads"); urls_of+=("http://$addr"); pids_of+=("${mock_pids[-1]}")
done

# 4. The same status and body bytes from every server, and the recorded ones.
for i in "${!names[@]}"; do
  [[ $i -eq 0 ]] && continue
  python3 bench/serve_nginx_conf.py --check "$work/nginx" "${urls_of[0]}" "${urls_of[$i]}"
done

# 5. The rounds.
# utime + stime (fields 14 and 15 of /proc/PID/stat; the command name may hold spaces).
cpu_ticks() { sed 's/^.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
ticks_per_s="$(getconf CLK_TCK)"
: > "$work/runs"
for i in "${!names[@]}"; do  # warm-up, not counted
  wrk -t1 -c8 -d2s -s "$work/nginx/paths.lua" "${urls_of[$i]}" >/dev/null
done
for ((r = 1; r <= rounds; r++)); do
  for i in "${!names[@]}"; do
    load="$(cut -d' ' -f1 /proc/loadavg)"
    before="$(cpu_ticks "${pids_of[$i]}")"
    wrk -t1 -c8 -d"${secs}s" -s "$work/nginx/paths.lua" "${urls_of[$i]}" > "$work/wrk.out"
    after="$(cpu_ticks "${pids_of[$i]}")"
    n="$(awk '/requests in/ {print $1}' "$work/wrk.out")"
    took="$(awk '/requests in/ {sub(/s,$/, "", $4); print $4}' "$work/wrk.out")"
    rate="$(awk '/Requests\/sec/ {print $2}' "$work/wrk.out")"
    errs="$(grep -E 'Socket errors' "$work/wrk.out" | tr -s ' ' || true)"
    non2xx="$(awk '/Non-2xx/ {print $NF}' "$work/wrk.out")"
    cpu_us="$(python3 -c "print(round(($after - $before) / $ticks_per_s / $n * 1e6, 2))")"
    echo "${names[$i]} $rate $cpu_us $n" >> "$work/runs"
    printf 'round %d %-10s %9.0f requests/s (%s in %s), CPU %5.2f us/request, non-2xx %s, load average %s%s\n' \
      "$r" "${names[$i]}" "$rate" "$n" "$took" "$cpu_us" "${non2xx:-0}" "$load" "${errs:+, $errs}" >&2
  done
done

python3 - "$work/runs" "$secs" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rate, cpu, n = line.split()
    rows.setdefault(name, []).append((float(rate), float(cpu)))
base = statistics.median(r[0] for r in rows["nginx"])
base_cpu = statistics.median(r[1] for r in rows["nginx"])
labels = {"nginx": "nginx (generated, 1 worker)", "mock-t1": "tapreplay --serve",
          "mock-t2": "tapreplay --serve --threads 2"}
print(f"medians of {len(rows['nginx'])} rounds of {sys.argv[2]} s, wrk -t1 -c8:")
print(f"{'':31} {'requests/s':>10} {'/ nginx':>7} {'rounds':>11} {'>= 0.5':>7} "
      f"{'CPU us/request':>15} {'/ nginx':>7}")
for name, rs in rows.items():
    rate = statistics.median(r[0] for r in rs)
    cpu = statistics.median(r[1] for r in rs)
    target = (("met" if rate / base >= 0.5 else "MISSED") if name.startswith("mock") else "")
    # Each round's rate over nginx's in the same round: the spread the medians hide.
    per_round = [r[0] / n[0] for r, n in zip(rs, rows["nginx"])]
    spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
    print(f"{labels[name]:31} {rate:10.0f} {rate / base:7.2f} {spread:>11} {target:>7} "
          f"{cpu:15.2f} {cpu / base_cpu:7.2f}")
# Issue 13's target: the one-thread mock's median rate at least 0.5 of nginx's.
t1 = statistics.median(r[0] for r in rows["mock-t1"]) / base
print(f"target (--serve >= 0.5 of nginx's rate): {'met' if t1 >= 0.5 else 'MISSED'} ({t1:.2f})")
sys.exit(0 if t1 >= 0.5 else 1)
PY
