#!/usr/bin/env python3
"""Each selection flag (format/select.h) against real captures, with tshark as the independent truth.

The pcaps in fixtures/captures/ are recorded with `taprec -r`; each flag's selection, printed by
`tapcat FLAGS FILE.tap -o json` and by `taprec -r FILE.pcap FLAGS -o json`, must name exactly the
requests that tshark's display filter for the same question finds in the same pcap (request
paths, in order, as a multiset). The expectations are computed from tshark at test time.

Only fixtures that tshark reads as tapkit does are used (fixtures/captures/README.md and
sidecar/capture_fixtures_test.cc say where they differ: pipelined requests, responses cut
early); latency only on captures where every message is one segment, since tshark's http.time
runs from the request's last segment and tapkit's latency from its first (docs/architecture.md
section 2).

  select_capture_test.py SOURCE_DIR BUILD_DIR
Exit 0 pass, 1 fail, 77 skip (tshark missing; a failure under CI=true).
"""

import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timezone
from urllib.parse import urlsplit

# Fixtures tshark reads as tapkit does.
ALL = [
    "keepalive-10-gets", "keepalive-10-gets-third-response-lost",
    "keepalive-10-gets-last-response-lost", "keepalive-4-gets", "head-and-304", "ipv6-get",
    "chunked-and-content-length", "expect-100-continue", "interim-with-content-length",
]
# Every request and response one segment: tshark's http.time is tapkit's latency.
ONE_SEGMENT = [
    "keepalive-10-gets", "keepalive-10-gets-third-response-lost", "keepalive-4-gets",
    "head-and-304", "ipv6-get", "chunked-and-content-length",
]

# (tapkit flags, tshark display filter, which packets the filter finds, fixtures)
# "req": request frames (their http.request.uri); "rsp": final-response frames (the path of
# their http.response_for.uri).
CASES = [
    (["--method", "POST"], 'http.request.method == "POST"', "req", ALL),
    (["--method", "GET,HEAD"], 'http.request.method == "GET" || http.request.method == "HEAD"', "req", ALL),
    (["--status", "200"], "http.response.code == 200", "rsp", ALL),
    (["--status", "3xx"], "http.response.code >= 300 && http.response.code <= 399", "rsp", ALL),
    (["--status", "200-299", "--status", "304"],
     "(http.response.code >= 200 && http.response.code <= 299) || http.response.code == 304",
     "rsp", ALL),
    (["--path", "/n0"], 'http.request.uri matches "^/n0"', "req", ALL),
    (["--path-regex", "json$"], 'http.request.uri matches "json$"', "req", ALL),
    (["--header", "user-agent: ^curl/"], 'http.user_agent matches "^curl/"', "req", ALL),
    (["--header", "rsp:content-type: ^text/plain"],
     'http.response && http.content_type matches "^text/plain"', "rsp", ALL),
    (["--authority", "127.0.0.93:8091"], 'http.request && http.host == "127.0.0.93:8091"', "req",
     ALL),
    (["--to", "127.0.0.93:8091"], "http.request && ip.dst == 127.0.0.93 && tcp.dstport == 8091",
     "req", ALL),
    (["--to", "::1"], "http.request && ipv6.dst == ::1", "req", ALL),
    (["--from", "127.0.0.0/8"], "http.request && ip.src == 127.0.0.0/8", "req", ALL),
    (["--incomplete"], "http.request && !http.response_in", "req", ALL),
    (["--min-latency", "100us"], "http.response && http.time >= 0.0001", "rsp", ONE_SEGMENT),
    (["--max-latency", "40us"], "http.response && http.time <= 0.00004", "rsp", ONE_SEGMENT),
    (["--min-latency", "39us", "--max-latency", "0.05ms"],
     "http.response && http.time >= 0.000039 && http.time <= 0.00005", "rsp", ONE_SEGMENT),
    (["--method", "GET", "--status", "200", "--path", "/n"],
     'http.response.code == 200 && http.response_for.uri contains "/n"', "rsp", ALL),
]


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def tshark(pcap, display_filter, fields):
    # -2: two passes, so that a request knows its response (http.response_in) when filtered.
    r = run(["tshark", "-2", "-r", pcap, "-Y", display_filter, "-T", "fields", "-E", "separator=\t"]
            + sum([["-e", f] for f in fields], []))
    if r.returncode != 0:
        raise RuntimeError(f"tshark -Y '{display_filter}' {pcap}: {r.stderr.strip()}")
    return [line.split("\t") for line in r.stdout.splitlines()]


def tshark_paths(pcap, display_filter, kind):
    if kind == "req":
        rows = tshark(pcap, f"http.request && ({display_filter})", ["http.request.uri"])
        return [r[0] for r in rows]
    rows = tshark(pcap, f"http.response.code >= 200 && ({display_filter})",
                  ["http.response_for.uri"])
    return [urlsplit(r[0]).path for r in rows]


def json_paths(text):
    out = []
    for line in text.splitlines():
        x = json.loads(line)
        out.append((x.get("request") or {}).get("path", ""))
    return out


def main():
    source, build = sys.argv[1], sys.argv[2]
    taprec, tapcat = f"{build}/tools/taprec", f"{build}/tools/tapcat"
    if run(["sh", "-c", "command -v tshark"]).returncode != 0:
        if os.environ.get("CI") == "true":
            print("FAIL: tshark not installed (scripts/deps.sh tshark); CI=true")
            return 1
        print("SKIP: tshark not installed (scripts/deps.sh tshark)")
        return 77
    # taprec -r as root gives up root (-Z); these files are the test's own.
    z = ["-Z", "root"] if os.geteuid() == 0 else []
    failures, checks = [], 0
    with tempfile.TemporaryDirectory() as tmp:
        taps = {}
        for name in ALL:
            pcap, tap = f"{source}/fixtures/captures/{name}.pcap", f"{tmp}/{name}.tap"
            r = run([taprec, *z, "-r", pcap, "-w", tap])
            if r.returncode != 0:
                failures.append(f"taprec -r {name}: exit {r.returncode}: {r.stderr.strip()}")
            taps[name] = (pcap, tap)

        def compare(what, got, want):
            nonlocal checks
            checks += 1
            if sorted(got) != sorted(want):
                failures.append(f"{what}: tapkit {sorted(got)} != tshark {sorted(want)}")

        for flags, display_filter, kind, fixtures in CASES:
            total = 0
            for name in fixtures:
                pcap, tap = taps[name]
                want = tshark_paths(pcap, display_filter, kind)
                total += len(want)
                c = run([tapcat, *flags, "-o", "json", tap])
                if c.returncode != 0:
                    failures.append(f"tapcat {' '.join(flags)} {name}: exit {c.returncode}: "
                                    f"{c.stderr.strip()}")
                    continue
                compare(f"tapcat {' '.join(flags)} {name}.tap", json_paths(c.stdout), want)
                r = run([taprec, *z, "-r", pcap, *flags, "-o", "json"])
                compare(f"taprec -r {name}.pcap {' '.join(flags)}", json_paths(r.stdout), want)
            # A case that selects nothing anywhere would prove little.
            if total == 0:
                failures.append(f"{' '.join(flags)}: tshark finds nothing in {fixtures}")

        # --since/--until: a time between the 5th and 6th of keepalive-10-gets' requests, as
        # tshark times them; RFC 3339 and +D (tapcat: from the earliest request; taprec -r: from
        # the first frame, as tshark's frame.time_relative).
        pcap, tap = taps["keepalive-10-gets"]
        rows = tshark(pcap, "http.request",
                      ["frame.time_epoch", "frame.time_relative", "http.request.uri"])

        def ns(text):
            whole, _, frac = text.partition(".")
            return int(whole) * 10**9 + int((frac + "000000000")[:9])

        epochs = [ns(r[0]) for r in rows]
        rel = [ns(r[1]) for r in rows]
        paths = [r[2] for r in rows]
        cut = (epochs[4] + epochs[5]) // 2
        stamp = datetime.fromtimestamp(cut // 10**9, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
        rfc3339 = f"{stamp}.{cut % 10**9:09d}Z"
        since_first_request = f"+{cut - epochs[0]}ns"
        since_first_frame = f"+{(rel[4] + rel[5]) // 2}ns"
        want_after = [p for e, p in zip(epochs, paths) if e >= cut]
        want_before = [p for e, p in zip(epochs, paths) if e < cut]
        want_mid = [p for e, p in zip(epochs, paths) if epochs[2] <= e < cut]
        for flags, want in [
            (["--since", rfc3339], want_after),
            (["--until", rfc3339], want_before),
            (["--since", since_first_request], want_after),
            (["--until", since_first_request], want_before),
            (["--since", datetime.fromtimestamp(epochs[2] // 10**9, timezone.utc)
              .strftime("%Y-%m-%dT%H:%M:%S") + f".{epochs[2] % 10**9:09d}+00:00",
              "--until", rfc3339], want_mid),
        ]:
            c = run([tapcat, *flags, "-o", "json", tap])
            compare(f"tapcat {' '.join(flags)} keepalive-10-gets.tap", json_paths(c.stdout), want)
        for flags, want in [(["--since", since_first_frame], want_after),
                            (["--until", since_first_frame], want_before),
                            (["--since", rfc3339], want_after)]:
            r = run([taprec, *z, "-r", pcap, *flags, "-o", "json"])
            compare(f"taprec -r keepalive-10-gets.pcap {' '.join(flags)}", json_paths(r.stdout),
                    want)

        # -c counts selected exchanges, over all files.
        all_taps = [taps[n][1] for n in ALL]
        ok_total = sum(len(tshark_paths(taps[n][0], "http.response.code == 200", "rsp"))
                       for n in ALL)
        c = run([tapcat, "--status", "200", "-c", "7", "-o", "json", *all_taps])
        checks += 1
        if len(c.stdout.splitlines()) != min(7, ok_total) or ok_total < 7:
            failures.append(f"tapcat --status 200 -c 7: {len(c.stdout.splitlines())} lines")
        r = run([taprec, *z, "-r", taps["keepalive-10-gets"][0], "--path", "/n1", "-c", "1",
                 "-o", "json"])
        compare("taprec -r --path /n1 -c 1", json_paths(r.stdout), ["/n10"])

        # A file written through a selection holds the selected exchanges and names the
        # selection in its header.
        out = f"{tmp}/selected.tap"
        r = run([taprec, *z, "-r", taps["keepalive-4-gets"][0], "--path-regex", "^/[bc]$",
                 "-w", out])
        info = json.loads(run([tapcat, "--info", "-o", "json", out]).stdout)
        checks += 1
        if {"name": "path-regex", "value": "^/[bc]$"} not in info["metadata"]["filters"]:
            failures.append(f"selected.tap's filters: {info['metadata']['filters']}")
        compare("taprec -r --path-regex ^/[bc]$ -w",
                json_paths(run([tapcat, "-o", "json", out]).stdout),
                tshark_paths(taps["keepalive-4-gets"][0], 'http.request.uri matches "^/[bc]$"',
                             "req"))

        # tapfilter selects with the same flags: two inputs merged, the selected ones written,
        # the rest counted as selected_out, the selection in the header.
        tapfilter = f"{build}/tools/tapfilter"
        merged = f"{tmp}/merged.tap"
        pair = ["keepalive-10-gets-third-response-lost", "head-and-304"]
        r = run([tapfilter, "--status", "200", "-w", merged, *[taps[n][1] for n in pair]])
        checks += 1
        if r.returncode != 0:
            failures.append(f"tapfilter --status 200: exit {r.returncode}: {r.stderr.strip()}")
        want = [p for n in pair for p in tshark_paths(
            taps[n][0], "http.response.code == 200", "rsp")]
        compare("tapfilter --status 200", json_paths(run([tapcat, "-o", "json", merged]).stdout),
                want)
        info = run([tapcat, "--info", "-o", "json", merged]).stdout
        total = sum(len(tshark_paths(taps[n][0], "http.request", "req")) for n in pair)
        checks += 1
        if ('{"name":"status","value":"200"}' not in info
                or f'"selected_out":{total - len(want)}' not in info):
            failures.append(f"tapfilter's header or selected_out: {info}")

        # Usage errors: one line naming the flag, exit 2, nothing printed.
        for args, line in [
            (["--status", "7xx", all_taps[0]], "tapcat: --status 7xx: unknown status class (1xx..5xx)\n"),
            (["--to", "deploy/web", all_taps[0]],
             f"tapcat: --to deploy/web: {all_taps[0]} has no endpoint labels (recorded without "
             "--inventory): select by address instead\n"),
            (["--info", "--status", "5xx", all_taps[0]],
             "tapcat: --info works on whole files; the selection flags go with printing "
             "exchanges\n"),
        ]:
            c = run([tapcat, *args])
            checks += 1
            if c.returncode != 2 or c.stderr != line or c.stdout:
                failures.append(f"tapcat {' '.join(args)}: exit {c.returncode}, {c.stderr!r}")

    for f in failures:
        print(f"FAIL: {f}")
    print(f"{checks} checks (selections against tshark, usage errors), {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
