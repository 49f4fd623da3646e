#!/usr/bin/env python3
"""Runs format_bench and prints the ratios bench/README.md states as targets.

Usage: bench/format_ratios.py [path/to/format_bench] [--repetitions N]

Each benchmark runs N times, interleaved by Google Benchmark in one process; ratios use the
median items/s of each, so writer and zstd-only are measured side by side on the same bytes.
"""
import json
import subprocess
import sys


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    binary = args[0] if args else "build/bench/format_bench"
    reps = 5
    for a in sys.argv[1:]:
        if a.startswith("--repetitions="):
            reps = int(a.split("=", 1)[1])
    out = subprocess.run(
        [binary, f"--benchmark_repetitions={reps}", "--benchmark_enable_random_interleaving=true",
         "--benchmark_min_time=0.3", "--benchmark_format=json"],
        check=True, capture_output=True, text=True).stdout
    data = json.loads(out)
    med = {}
    counters = {}
    for b in data["benchmarks"]:
        if b.get("aggregate_name") != "median":
            continue
        name = b["run_name"]
        med[name] = b.get("items_per_second", 0.0)
        counters[name] = {k: v for k, v in b.items()
                          if k in ("bytes_per_exchange", "median_wire_bytes",
                                   "segments_decompressed_per_seek", "segments_in_file",
                                   "file_mib")}
        if name.startswith("BM_SeekMillion"):
            counters[name]["us_per_seek"] = b["real_time"]

    def ratio(a, b):
        return med[a] / med[b] if med.get(b) else float("nan")

    rows = []
    for level in (1, 3, 9):
        w, c = f"BM_Write/{level}", f"BM_CompressOnly/{level}"
        rows.append((f"writer / zstd compress-only, level {level}", ratio(w, c), 0.6,
                     f"{med[w]/1e3:.0f}k vs {med[c]/1e3:.0f}k exchanges/s, "
                     f"{counters[w]['bytes_per_exchange']:.0f} B/exchange in the file"))
    rows.append(("whole reader / zstd decompress-only", ratio("BM_ReadWhole", "BM_DecompressOnly"),
                 0.5, f"{med['BM_ReadWhole']/1e3:.0f}k vs {med['BM_DecompressOnly']/1e3:.0f}k "
                      "exchanges/s"))
    rows.append(("headers-only reader / whole reader",
                 ratio("BM_ReadHeadersOnly", "BM_ReadWhole"), 2.0,
                 f"{med['BM_ReadHeadersOnly']/1e3:.0f}k vs {med['BM_ReadWhole']/1e3:.0f}k "
                 "exchanges/s"))
    ok = True
    print(f"median of {reps} interleaved runs; synthetic mix median exchange "
          f"{counters['BM_Write/3']['median_wire_bytes']:.0f} bytes on the wire")
    for name, value, target, detail in rows:
        verdict = "ok" if value >= target else "BELOW TARGET"
        ok &= value >= target
        print(f"  {name:42s} {value:5.2f}  (target >= {target})  {verdict}  [{detail}]")
    s = counters.get("BM_SeekMillion", {})
    if s:
        print(f"  seek in 1,000,000 exchanges ({s['file_mib']:.0f} MiB, "
              f"{s['segments_in_file']:.0f} segments): {s['us_per_seek']:.0f} us per seek and first "
              f"exchange, {s['segments_decompressed_per_seek']:.2f} segments decompressed per seek")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
