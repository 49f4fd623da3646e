#!/usr/bin/env python3
"""How closely `tapreplay --speed 1` keeps a capture's recorded gaps, measured at the target
(bench/README.md, "tapreplay's pacing"). Issue 12's target: replaying a capture recorded at about
1,000 requests/s, the p99 lateness is at most 5% of the capture's median gap between requests.

    bench/replay_pacing.py [--requests 10000] [--rate 1000] [--runs 3]
    BUILD_DIR=build (default); TAPREPLAY=/path/to/tapreplay runs that binary instead of
    BUILD_DIR's; KEEP=1 keeps the work folder (pcaps, capture, access log).

1. bench/replay_site.py starts nginx on 127.0.99.1:8098 logging "$msec $request_uri".
2. The capture: a Python client sends --requests GETs over 4 keep-alive connections (round robin,
   each request after the previous answer) to the site's routes with "?seq=I" as the marker,
   about --rate per second: each gap drawn uniformly from 0.5 to 1.5 times the mean and slept
   with time.sleep, whose wake-up jitter adds the irregularity of a real client. tcpdump records
   lo; `taprec -r` makes the .tap. The recorded time of request I is the capture's requestTimeNs
   (the request's first byte), checked against the pcap's first data segment of the request.
3. Each run replays the capture with `tapreplay CAPTURE --target URL --speed 1` while tcpdump
   records lo again, and computes for every request
       lateness_I = (arrival_I - arrival_0) - (recorded_I - recorded_0)
   where 0 is the first recorded request (the issue's definition), and the same from the least
   offset: (arrival_I - recorded_I) - min over J of (arrival_J - recorded_J). A pacer never sends
   before the due time, so the least offset is its zero; the first request, which also opens a
   connection, may itself be late, and then every other one looks early by as much. Arrival
   comes from two clocks:
     - the packet capture at the target: the first data segment of the request, in nanoseconds
       (tcpdump --time-stamp-precision=nano; the kernel stamps lo's packets as they are sent);
     - nginx's $msec: milliseconds, taken when the request's log line is written, after the
       response.
   The bound is judged on the packet capture from the least offset: $msec's 1 ms step is 20
   times the 50 us bound, and the least offset is the stricter reference (never below the first).
   Also printed: how many requests were due while their connection still waited for nginx's
   previous answer (one request at a time travels on a connection, so those are the target's
   delay, not the pacer's), and the lateness of the others.

Needs root (tcpdump on lo). Loopback addresses only.
"""

import argparse
import bisect
import json
import os
import random
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import http.client

sys.dont_write_bytecode = True  # no __pycache__ left in bench/
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import replay_site  # noqa: E402

ADDR = "127.0.99.1"
PORT = 8098
CONNECTIONS = 4


def die(msg):
    print(f"replay_pacing.py: {msg}", file=sys.stderr, flush=True)
    sys.exit(2)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class Tcpdump:
    """tcpdump -i lo writing a pcap with nanosecond stamps, for the site's address and port."""

    def __init__(self, path):
        self.path = path
        self.err = open(path + ".log", "w+")
        self.proc = subprocess.Popen(
            ["tcpdump", "-i", "lo", "-s", "0", "-B", "65536", "--time-stamp-precision=nano",
             "-w", path, f"host {ADDR} and tcp port {PORT}"], stderr=self.err)
        end = time.monotonic() + 10
        while "listening on" not in open(path + ".log").read():
            if self.proc.poll() is not None or time.monotonic() > end:
                die(f"tcpdump did not start: {open(path + '.log').read().strip()}")
            time.sleep(0.05)

    def stop(self):
        # tcpdump hands packets over in blocks retired after at most 1 s (its default timeout);
        # SIGINT would lose a block not yet retired.
        time.sleep(1.5)
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        text = open(self.path + ".log").read()
        dropped = [line for line in text.splitlines() if "dropped by kernel" in line]
        if dropped and not dropped[0].startswith("0 "):
            die(f"tcpdump: {dropped[0]}: the arrival times would miss requests")


def read_pcap(pcap):
    """From a classic pcap (Ethernet or Linux cooked link types, IPv4): ({seq: stamp_ns} of the
    first TCP segment to PORT whose payload starts a request with a "seq=N" query, {seq: client
    port} of those, {client port: [stamp_ns of each segment with data from PORT]})."""
    with open(pcap, "rb") as f:
        data = f.read()
    if len(data) < 24:
        die(f"{pcap}: shorter than a pcap header")
    magic = struct.unpack_from("<I", data, 0)[0]
    if magic == 0xA1B23C4D:
        endian, nano = "<", True
    elif magic == 0xA1B2C3D4:
        endian, nano = "<", False
    elif magic == 0x4D3CB2A1:
        endian, nano = ">", True
    elif magic == 0xD4C3B2A1:
        endian, nano = ">", False
    else:
        die(f"{pcap}: offset 0: not a classic pcap (magic {magic:#x})")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    link_len = {1: 14, 113: 16}.get(linktype)
    if link_len is None:
        die(f"{pcap}: link type {linktype} is neither Ethernet nor Linux cooked")
    out, conn, answers = {}, {}, {}
    off = 24
    while off + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack_from(endian + "IIII", data, off)
        off += 16
        if off + caplen > len(data):
            die(f"{pcap}: offset {off}: record runs past the end of the file")
        pkt = data[off:off + caplen]
        off += caplen
        stamp = sec * 1_000_000_000 + (frac if nano else frac * 1000)
        ip = pkt[link_len:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        tcp = ip[ihl:total]
        if len(tcp) < 20:
            continue
        sport, dport = struct.unpack_from(">HH", tcp, 0)
        payload = tcp[(tcp[12] >> 4) * 4:]
        if not payload:
            continue
        if sport == PORT:
            answers.setdefault(dport, []).append(stamp)
            continue
        if dport != PORT:
            continue
        line = payload.split(b"\r\n", 1)[0].split(b" ")
        if len(line) != 3 or not line[2].startswith(b"HTTP/"):
            continue  # a later segment of a request, or not a request line
        seq = seq_of(line[1].decode("latin-1"))
        if seq is not None and seq not in out:
            out[seq] = stamp
            conn[seq] = sport
    return out, conn, answers


def held_by_target(recorded, wire, conn, answers):
    """The seqs due while their connection still waited for the target's previous answer: the
    last data from the target on that connection before the request came after the request's due
    time (recorded time plus the least offset). One request at a time travels on a connection, so
    a slow answer delays the next request whatever the pacer does."""
    zero = min(wire[s] - recorded[s] for s in recorded if s in wire)
    held = set()
    for s, stamp in wire.items():
        if s not in recorded:
            continue
        got = answers.get(conn[s], [])
        i = bisect.bisect_left(got, stamp)
        if i > 0 and got[i - 1] > recorded[s] + zero:
            held.add(s)
    return held


def seq_of(target):
    """The N of a request target's "seq=N" query, or None."""
    _, _, query = target.partition("?")
    for part in query.split("&"):
        if part.startswith("seq="):
            try:
                return int(part[4:])
            except ValueError:
                return None
    return None


def record(n, rate, seed):
    """Sends n paced requests over CONNECTIONS keep-alive connections (see the module's doc)."""
    rng = random.Random(seed)
    conns = [http.client.HTTPConnection(ADDR, PORT, timeout=10) for _ in range(CONNECTIONS)]
    mean = 1.0 / rate
    due = time.monotonic() + 0.05
    for i in range(n):
        left = due - time.monotonic()
        if left > 0:
            time.sleep(left)
        path = replay_site.PATHS[i % len(replay_site.PATHS)]
        c = conns[i % CONNECTIONS]
        c.request("GET", f"{path}?seq={i}", headers={"User-Agent": "tapkit-bench/1", "Accept": "*/*"})
        r = c.getresponse()
        r.read()
        if r.status != 200:
            die(f"recording: GET {path}?seq={i}: status {r.status}")
        due += mean * rng.uniform(0.5, 1.5)
    for c in conns:
        c.close()


def pct(values, p):
    """The p-th percentile (nearest rank) of values."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(p / 100.0 * len(s) + 0.5)) - 1))
    return s[k]


def lateness(recorded, arrival, reference):
    """[lateness_ns] over the seqs in both. reference "first": the issue's definition, relative
    to the first recorded request; "least": relative to the request whose arrival - recorded
    offset is least (a pacer never sends before the due time, so that offset is its zero)."""
    seqs = [s for s in recorded if s in arrival]
    if not seqs:
        return []
    offset = {s: arrival[s] - recorded[s] for s in seqs}
    if reference == "first":
        zero = offset[min(seqs, key=lambda s: recorded[s])]
    else:
        zero = min(offset.values())
    return [offset[s] - zero for s in seqs]


def summary(values, unit):
    scale = {"us": 1e3, "ms": 1e6}[unit]
    return (f"p50 {pct(values, 50) / scale:.1f} {unit}, p99 {pct(values, 99) / scale:.1f} {unit} "
            f"(p1 {pct(values, 1) / scale:.1f}, max {max(values) / scale:.1f})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--rate", type=float, default=1000.0)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=12)
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("tcpdump on lo needs root")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    build = os.environ.get("BUILD_DIR", "build")
    subprocess.run(["bash", "scripts/deps.sh", "nginx-light", "tcpdump"], check=True,
                   stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", build, "--target", "taprec", "tapcat"], check=True,
                   stdout=subprocess.DEVNULL)
    replay = os.environ.get("TAPREPLAY")
    if not replay:
        if subprocess.run(["cmake", "--build", build, "--target", "tapreplay"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            replay = os.path.join(build, "tools", "tapreplay")
        else:
            log(f"replay_pacing.py: no tapreplay target in {build}: recording and checking the capture only")

    work = tempfile.mkdtemp(prefix="tapkit-pacing-bench.")
    try:
        run(args, build, replay, work)
    finally:
        replay_site.stop(work)
        if os.environ.get("KEEP"):
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def run(args, build, replay, work):
    replay_site.start(work, ADDR, PORT, access_log=True)
    url = f"http://{ADDR}:{PORT}"

    # The capture.
    tap = os.path.join(work, "rec.tap")
    dump = Tcpdump(os.path.join(work, "rec.pcap"))
    t0 = time.monotonic()
    record(args.requests, args.rate, args.seed)
    secs = time.monotonic() - t0
    dump.stop()
    subprocess.run([os.path.join(build, "tools", "taprec"), "-r", dump.path, "-w", tap], check=True,
                   stderr=subprocess.DEVNULL)
    out = subprocess.run([os.path.join(build, "tools", "tapcat"), "-o", "json", tap], check=True,
                         stdout=subprocess.PIPE, text=True).stdout
    recorded = {}
    for line in out.splitlines():
        ex = json.loads(line)
        seq = seq_of((ex.get("request") or {}).get("path", ""))
        if seq is not None and ex["end"]["completion"] == "complete":
            recorded[seq] = ex["requestTimeNs"]
    if len(recorded) != args.requests:
        die(f"{tap}: {len(recorded)} complete exchanges with a seq marker, {args.requests} sent")
    wire = read_pcap(dump.path)[0]
    offsets = [recorded[s] - wire[s] for s in recorded if s in wire]
    times = sorted(recorded.values())
    gaps = [b - a for a, b in zip(times, times[1:])]
    median_gap = statistics.median(gaps)
    bound = 0.05 * median_gap
    log(f"capture (load average {open('/proc/loadavg').read().split()[0]}): {len(recorded)} requests in {secs:.2f} s ({len(recorded) / secs:.0f}/s) on "
        f"{CONNECTIONS} connections; gaps p10 {pct(gaps, 10) / 1e3:.0f} us, median "
        f"{median_gap / 1e3:.0f} us, p90 {pct(gaps, 90) / 1e3:.0f} us, max {max(gaps) / 1e3:.0f} us; "
        f"requestTimeNs - first data segment in the pcap: {min(offsets)}..{max(offsets)} ns")
    log(f"bound: p99 lateness <= 5% of the median gap = {bound / 1e3:.1f} us")
    if not replay:
        return

    access = os.path.join(work, "access.log")
    results = []
    for r in range(1, args.runs + 1):
        start_at = os.path.getsize(access)
        load_at_start = open("/proc/loadavg").read().split()[0]  # other work on the machine
        dump = Tcpdump(os.path.join(work, f"replay{r}.pcap"))
        p = subprocess.run([replay, tap, "--target", url, "--speed", "1"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        dump.stop()
        if p.returncode not in (0, 1):
            die(f"tapreplay exited {p.returncode}: {p.stderr.strip()[:300]}")
        note = "" if p.returncode == 0 else " (exit 1: some answers differ from the recorded ones)"
        wire, conn, answers = read_pcap(dump.path)
        held = held_by_target(recorded, wire, conn, answers)
        msec = {}
        with open(access) as f:
            f.seek(start_at)
            for line in f:
                stamp, _, target = line.strip().partition(" ")
                seq = seq_of(target)
                if seq is not None and seq not in msec:
                    msec[seq] = int(round(float(stamp) * 1000)) * 1_000_000
        late = {(clock, ref): lateness(recorded, arrivals, ref)
                for clock, arrivals in (("pcap", wire), ("msec", msec))
                for ref in ("first", "least")}
        late["pcap", "free"] = lateness({k: v for k, v in recorded.items() if k not in held},
                                        wire, "least")
        late["held"] = [len(held)]
        if len(late["pcap", "first"]) != len(recorded):
            die(f"run {r}: the replay's pcap holds {len(late['pcap', 'first'])} of {len(recorded)} requests")
        if len(late["msec", "first"]) != len(recorded):
            log(f"run {r}: nginx's access log holds {len(late['msec', 'first'])} of {len(recorded)} requests")
        results.append(late)
        log(f"run {r}{note} (load average {load_at_start}):\n"
            f"  packet capture, from the first request: {summary(late['pcap', 'first'], 'us')}\n"
            f"  packet capture, from the least offset:  {summary(late['pcap', 'least'], 'us')}\n"
            f"  the same without the {len(held)} requests due while their connection waited for "
            f"the target's previous answer: {summary(late['pcap', 'free'], 'us')}\n"
            f"  nginx $msec, from the first request:    {summary(late['msec', 'first'], 'ms')}\n"
            f"  nginx $msec, from the least offset:     {summary(late['msec', 'least'], 'ms')}")

    def med(key, p):
        return statistics.median(pct(r[key], p) for r in results)

    print(f"capture: {len(recorded)} requests, median gap {median_gap / 1e3:.1f} us; "
          f"bound: p99 lateness <= 5% of it = {bound / 1e3:.1f} us")
    print(f"lateness at the target, medians over {len(results)} runs of each run's p50 / p99:")
    for clock, unit in (("pcap", "us"), ("msec", "ms")):
        scale = {"us": 1e3, "ms": 1e6}[unit]
        for ref in ("first", "least"):
            name = {"pcap": "packet capture", "msec": "nginx $msec"}[clock]
            frm = {"first": "from the first request", "least": "from the least offset"}[ref]
            print(f"  {name + ', ' + frm + ':':45} p50 {med((clock, ref), 50) / scale:8.1f} {unit}, "
                  f"p99 {med((clock, ref), 99) / scale:8.1f} {unit}"
                  + ("   <- judged" if (clock, ref) == ("pcap", "least") else ""))
    print(f"  {'packet capture, connection free when due:':45} p50 {med(('pcap', 'free'), 50) / 1e3:8.1f} us, "
          f"p99 {med(('pcap', 'free'), 99) / 1e3:8.1f} us   (each run: "
          + ", ".join(f"{r['held'][0]}" for r in results) + " requests due while their connection "
          "waited for the target's previous answer, left out)")
    p99 = med(("pcap", "least"), 99)
    print(f"judged on the packet capture from the least offset (the stricter reference; $msec steps "
          f"by 1 ms): p99 {p99 / 1e3:.1f} us = {p99 / median_gap * 100:.1f}% of the median gap: "
          + ("bound met" if p99 <= bound else "bound NOT met"))


if __name__ == "__main__":
    main()
