#!/usr/bin/env bash
# Builds a large capture with real tools and times taprec -r on it against tshark and httpry,
# side by side in one run (bench/README.md, "capture engine").
#
#   bench/capture_vs_tools.sh [seconds of load, default 4] [runs per tool, default 3]
#   KEEP=1 keeps the work folder (the pcap and out.tap) for profiling.
#   TAPREC_BASELINE=/path/to/older/taprec also times that binary, alternately with the others,
#   and prints the median new/old wall-time ratio (a change's cost, measured in the same run).
#
# nginx serves a small JSON API on 127.0.0.77:8088 (loopback only); wrk drives it with 8
# connections while tcpdump writes lo to a pcap; then each tool reads that pcap `runs` times,
# alternating, and the medians are compared. Peak memory is GNU time's maximum RSS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs="${1:-4}"
runs="${2:-3}"
addr=127.0.0.77
port=8088
build="${BUILD_DIR:-build}"

TAPKIT_EXTRA_PACKAGES="nginx-light wrk tcpdump tshark httpry time zstd bc" bash scripts/deps.sh
cmake --build "$build" --target taprec tapcat >/dev/null

work="$(mktemp -d /tmp/tapkit-bench.XXXXXX)"
cleanup() {
  [[ -f "$work/nginx.pid" ]] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true
  [[ -n "${tcpdump_pid:-}" ]] && kill "$tcpdump_pid" 2>/dev/null || true
  if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

mkdir -p "$work/www/api"
chmod 755 "$work" "$work/www" "$work/www/api"  # nginx's workers run as www-data
python3 -c "
import json
items=[{'id':i,'name':'item %d'%i,'price':i*1.5,'tags':['a','b']} for i in range(6)]
open('$work/www/api/items.json','w').write(json.dumps({'items':items}))
"
cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon on;
pid $work/nginx.pid;
error_log $work/error.log;
events { worker_connections 256; }
http {
  access_log off;
  default_type application/json;
  server {
    listen $addr:$port;
    root $work/www;
    location / { try_files \$uri /api/items.json; }
  }
}
CONF
chmod 644 "$work/www/api/items.json"
nginx -c "$work/nginx.conf"
sleep 0.3
curl -sf "http://$addr:$port/api/items.json" > /dev/null || { echo "nginx does not serve" >&2; exit 1; }

tcpdump -i lo -s 0 -B 65536 -w "$work/cap.pcap" "host $addr and tcp port $port" 2>"$work/tcpdump.log" &
tcpdump_pid=$!
sleep 1
wrk -t1 -c8 -d"${secs}s" "http://$addr:$port/api/items.json" > "$work/wrk.txt"
sleep 1
kill -INT "$tcpdump_pid"
wait "$tcpdump_pid" 2>/dev/null || true
tcpdump_pid=
kill "$(cat "$work/nginx.pid")"

pcap="$work/cap.pcap"
pcap_bytes=$(stat -c %s "$pcap")
requests=$(awk '/requests in/ {print $1}' "$work/wrk.txt")
echo "capture: $pcap_bytes bytes, $requests requests by wrk ($(grep -o '[0-9]* packets received by filter' "$work/tcpdump.log" || true); $(grep -o '[0-9]* packets dropped by kernel' "$work/tcpdump.log" || true))"

# Runs "$@" with GNU time; prints "seconds max_rss_kib".
measure() {
  /usr/bin/time -f "%e %M" -o "$work/time.txt" "$@" > /dev/null 2> "$work/err.txt" || {
    echo "failed: $*" >&2; cat "$work/err.txt" >&2; exit 1; }
  cat "$work/time.txt"
}

declare -a t_taprec t_tshark t_httpry m_taprec m_tshark m_httpry t_base m_base
for ((i = 0; i < runs; i++)); do
  read -r s m < <(measure "$build/tools/taprec" -r "$pcap" -w "$work/out.tap"); t_taprec+=("$s"); m_taprec+=("$m")
  if [[ -n "${TAPREC_BASELINE:-}" ]]; then
    read -r s m < <(measure "$TAPREC_BASELINE" -r "$pcap" -w "$work/base.tap"); t_base+=("$s"); m_base+=("$m")
  fi
  read -r s m < <(measure tshark -r "$pcap" -Y http.request -T fields -e http.request.uri); t_tshark+=("$s"); m_tshark+=("$m")
  # httpry filters "tcp port 80 or 8080" unless told otherwise.
  read -r s m < <(measure httpry -r "$pcap" "tcp port $port"); t_httpry+=("$s"); m_httpry+=("$m")
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
tt=$(median "${t_taprec[@]}"); ts=$(median "${t_tshark[@]}"); th=$(median "${t_httpry[@]}")
mt=$(median "${m_taprec[@]}"); ms=$(median "${m_tshark[@]}"); mh=$(median "${m_httpry[@]}")

zstd -3 -q -f "$pcap" -o "$work/cap.pcap.zst"
zst_bytes=$(stat -c %s "$work/cap.pcap.zst")
tap_bytes=$(stat -c %s "$work/out.tap")
exchanges=$("$build/tools/tapcat" --info "$work/out.tap" | awk '/^Exchanges:/ {print $2}')

echo "exchanges recorded by taprec: $exchanges"
echo "median of $runs runs (seconds; peak RSS MiB):"
printf '  taprec  %6.2f s  %6.1f MiB\n' "$tt" "$(echo "$mt/1024" | bc -l)"
printf '  tshark  %6.2f s  %6.1f MiB\n' "$ts" "$(echo "$ms/1024" | bc -l)"
printf '  httpry  %6.2f s  %6.1f MiB\n' "$th" "$(echo "$mh/1024" | bc -l)"
ratio() { python3 -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print(f'{a/max(b,0.005):.1f}')" "$1" "$2"; }
if [[ -n "${TAPREC_BASELINE:-}" ]]; then
  tb=$(median "${t_base[@]}")
  printf '  baseline taprec (%s) %6.2f s  %6.1f MiB\n' "$TAPREC_BASELINE" "$tb" "$(echo "$(median "${m_base[@]}")/1024" | bc -l)"
  echo "taprec new/old wall time: $(python3 -c "import sys; print(f'{float(sys.argv[1])/max(float(sys.argv[2]),0.005):.3f}')" "$tt" "$tb") (target <= 1.10)"
fi
echo "taprec vs tshark: $(ratio "$ts" "$tt")x faster (target >= 30)"
echo "taprec vs httpry: $(ratio "$th" "$tt")x faster (target >= 3)"
echo "taprec peak RSS: $(echo "$mt/1024" | bc -l | cut -c1-5) MiB (target < 64)"
echo "out.tap $tap_bytes bytes vs pcap.zst (zstd -3) $zst_bytes bytes: $(python3 -c "print(f'{$tap_bytes/$zst_bytes:.2f}')") (target <= 0.5)"
