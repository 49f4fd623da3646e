#!/usr/bin/env bash
# Times tapcat's outputs and selection against the format reader's whole read of the same file,
# alternately in one run, and tapfilter's memory when merging two large captures (bench/README.md,
# "Reading tools"). Issue 11's targets, as ratios of exchange rates:
#   tapcat --status 5xx (about 1% selected) >= 2x the whole read
#   tapcat -o json >= 0.4x, tapcat -o har >= 0.3x
#   tapfilter merging two 1 GB captures: peak RSS < 64 MiB
#
#   bench/tools_vs_reader.sh [exchanges, default 300000] [runs, default 5]
#   MERGE_MB=1024 size of each capture tapfilter merges (0 skips the merge); KEEP=1 keeps files.
#
# The baseline is bench/tap_read: open, verify, decompress both frames and iterate every exchange
# (format_bench's BM_ReadWhole, on the same file on disk). Rates use CPU time (user + system),
# since this machine is shared; wall times are printed beside them. Output goes to /dev/null.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n="${1:-300000}"
runs="${2:-5}"
merge_mb="${MERGE_MB:-1024}"
build="${BUILD_DIR:-build}"

TAPKIT_EXTRA_PACKAGES="time" bash scripts/deps.sh >/dev/null
cmake --build "$build" --target tapcat tapsynth tap_read >/dev/null
have_filter=0
if cmake --build "$build" --target tapfilter >/dev/null 2>&1; then have_filter=1; fi

work="$(mktemp -d /tmp/tapkit-bench.XXXXXX)"
cleanup() { if [[ -n "${KEEP:-}" ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi; }
trap cleanup EXIT

"$build/bench/tapsynth" -n "$n" --seed 7 -w "$work/mix.tap"
echo "capture: $n tapsynth exchanges, $(du -m "$work/mix.tap" | cut -f1) MB" >&2

# name|command, run alternately `runs` times each.
cases=(
  "whole read|$build/bench/tap_read $work/mix.tap"
  "tapcat --status 5xx|$build/tools/tapcat --status 5xx $work/mix.tap"
  "tapcat -o json|$build/tools/tapcat -o json $work/mix.tap"
  "tapcat -o har|$build/tools/tapcat -o har $work/mix.tap"
  "tapcat (text)|$build/tools/tapcat $work/mix.tap"
)
: > "$work/times"
for ((r = 0; r < runs; r++)); do
  for c in "${cases[@]}"; do
    name="${c%%|*}"
    cmd="${c#*|}"
    if ! /usr/bin/time -f "%e %U %S %M" -o "$work/t" $cmd > /dev/null 2> "$work/err"; then
      echo "$name: failed: $(head -c 300 "$work/err")" >&2
      echo "$name|fail" >> "$work/times"
      continue
    fi
    echo "$name|$(cat "$work/t")" >> "$work/times"
  done
done

python3 - "$work/times" "$n" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    name, rest = line.rstrip("\n").split("|", 1)
    if rest == "fail":
        rows.setdefault(name, [])
        continue
    wall, user, sys_, rss = rest.split()
    rows.setdefault(name, []).append((float(wall), float(user) + float(sys_), int(rss)))
n = int(sys.argv[2])
base = rows.get("whole read")
if not base:
    sys.exit("the baseline did not run")
base_cpu = statistics.median(r[1] for r in base)
base_wall = statistics.median(r[0] for r in base)
targets = {"tapcat --status 5xx": 2.0, "tapcat -o json": 0.4, "tapcat -o har": 0.3}
print(f"{'':24} {'cpu s':>7} {'wall s':>7} {'kex/s cpu':>10} {'ratio cpu':>9} {'ratio wall':>10} {'target':>7} {'RSS MiB':>8}")
for name, rs in rows.items():
    if not rs:
        print(f"{name:24} failed")
        continue
    cpu = statistics.median(r[1] for r in rs)
    wall = statistics.median(r[0] for r in rs)
    rss = max(r[2] for r in rs) / 1024
    t = targets.get(name)
    print(f"{name:24} {cpu:7.3f} {wall:7.3f} {n / cpu / 1000:10.0f} {base_cpu / cpu:9.2f} "
          f"{base_wall / wall:10.2f} {('>= %.1f' % t) if t else '':>7} {rss:8.1f}")
PY

if [[ "$merge_mb" -gt 0 && "$have_filter" -eq 1 ]]; then
  # About 405 bytes of file per tapsynth exchange at level 3 (bench/README.md).
  per=$((merge_mb * 1024 * 1024 / 405))
  "$build/bench/tapsynth" -n "$per" --seed 11 -w "$work/a.tap"
  "$build/bench/tapsynth" -n "$per" --seed 12 -w "$work/b.tap"
  rm -f "$work/mix.tap"
  /usr/bin/time -f "%e %U %S %M" -o "$work/t" \
    "$build/tools/tapfilter" "$work/a.tap" "$work/b.tap" -w "$work/merged.tap"
  read -r wall user sys_ rss < "$work/t"
  echo "tapfilter merge: $(du -m "$work/a.tap" | cut -f1) MB + $(du -m "$work/b.tap" | cut -f1) MB ->" \
       "$(du -m "$work/merged.tap" | cut -f1) MB in ${wall} s; peak RSS $((rss / 1024)) MiB (target < 64)"
fi
