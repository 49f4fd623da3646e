#!/usr/bin/env python3
"""tapcat -o har, -o curl and -o pcap read back by real consumers (issue 11).

The inputs are fixture captures of nginx (fixtures/captures/, made by
scripts/make-capture-fixtures.py), recorded with taprec -r into .tap files. Then:

  1. -o har is validated against HAR 1.2's schema by har-validator (Debian's node-har-validator)
     and read by httpsnippet (npm, pinned in scripts/har/package-lock.json), which turns each
     entry into a curl command; each command, run against a fresh nginx with the fixtures' own
     configuration (make-capture-fixtures.py's start_nginx, on 127.0.0.97 and a free port, reached
     with curl --connect-to), gets the status the capture recorded;
  2. each -o curl command, run the same way, gets the recorded status too;
  3. -o pcap read by tshark gives the same requests (method, URI), responses (status) and bodies
     (http.file_data) as tshark reads from the original capture, every TCP checksum is one tshark
     calls good, packets are in time order and tshark's TCP analysis flags none, and taprec -r of the exported
     pcap gives back the same exchanges (tapcat -o json, all but the exchange ids) as the original;
  4. -o pcap to a terminal is refused with exit 2, and so are tapcat --info -o har and taprec -o
     pcap (taprec prints; exports wrap a whole file).

A missing tool (nginx, curl, tshark, node, the npm packages) skips with a message (exit 77),
except under CI=true, where it fails.

  export_test.py SOURCE_DIR BUILD_DIR
"""

import importlib.util
import json
import os
import pty
import shutil
import socket
import subprocess
import sys
import tempfile

SKIP = 77
ADDRESS = "127.0.0.97"
# Fixtures of complete exchanges with nginx (make-capture-fixtures.py base and pairing): POST
# bodies (plain, chunked with trailers, Expect: 100-continue), HEAD, 304, 404, IPv6, pipelining,
# keep-alive.
FIXTURES = ["expect-100-continue", "head-and-304", "ipv6-get", "chunked-request-trailers",
            "keepalive-4-gets", "pipelined-3-gets"]
# Incomplete ones: exported without error and read back by tshark; taprec reads back the same
# requests with the same completion (complete or not, no-response kept) and response lengths: a
# cut message stays cut (a hole in the sequence space where the unstored bytes were).
INCOMPLETE = ["keepalive-10-gets-third-response-lost", "keepalive-10-gets-third-request-lost",
              "lost-body-segment", "early-response-cuts-request", "snaplen-96"]


# As root, taprec -r gives up root for nobody unless -Z root: this test is not about that, and a
# sanitizer build's leak check cannot read /proc once the process became nobody.
KEEP_ROOT = ["-Z", "root"] if os.geteuid() == 0 else []

def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def skip(msg):
    if os.environ.get("CI") == "true":
        fail(f"{msg} (CI=true: tools must be present)")
    print(f"SKIP: {msg}", flush=True)
    sys.exit(SKIP)


def run(*cmd, **kw):
    return subprocess.run(cmd, capture_output=True, check=False, **kw)


def free_port():
    with socket.socket() as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def statuses(cmds, port, shell_words):
    """Runs each (recorded status, command) against nginx; returns the mismatches."""
    bad = []
    for want, cmd in cmds:
        # HEAD with --request HEAD (httpsnippet) waits for the announced body: -m bounds it, and
        # the status is printed all the same.
        full = (f"{cmd} -s -o /dev/null -w '%{{http_code}}' -m 3 "
                f"--connect-to ::{ADDRESS}:{port}")
        r = subprocess.run(["sh", "-c", full], capture_output=True, text=True)
        got = r.stdout.strip()
        if got != str(want):
            bad.append(f"{shell_words}: {cmd!r} -> {got!r} (exit {r.returncode}), recorded {want}")
    return bad


def tshark_messages(pcap):
    """(requests, responses) tshark reads from `pcap`: sorted (method, uri) and (code, body)."""
    r = run("tshark", "-r", pcap, "-d", "tcp.port==8091,http", "-T", "fields",
            "-E", "aggregator=\x1f", "-e", "http.request.method", "-e", "http.request.uri",
            "-e", "http.response.code", "-e", "http.file_data", "-Y", "http", text=True)
    if r.returncode != 0:
        fail(f"tshark -r {pcap}: {r.stderr}")
    reqs, rsps = [], []
    for line in r.stdout.splitlines():
        method, uri, code, data = (line.split("\t") + ["", "", "", ""])[:4]
        methods, uris = method.split("\x1f"), uri.split("\x1f")
        if method:
            reqs += list(zip(methods, uris))
        if code:
            codes = code.split("\x1f")
            bodies = data.split("\x1f") if data else []
            rsps += [(c, bodies[i] if i < len(bodies) else "") for i, c in enumerate(codes)]
    return sorted(reqs), sorted(rsps)


def exchanges(tapcat, tap):
    r = run(tapcat, "-o", "json", tap, text=True)
    if r.returncode != 0:
        fail(f"tapcat -o json {tap}: {r.stderr}")
    out = []
    for line in r.stdout.splitlines():
        x = json.loads(line)
        del x["id"]
        out.append(x)
    return sorted(out, key=lambda x: (x["requestTimeNs"], x["source"]["port"]))


def main():
    src, build = sys.argv[1], sys.argv[2]
    taprec, tapcat = os.path.join(build, "tools", "taprec"), os.path.join(build, "tools", "tapcat")
    for tool in ("nginx", "curl", "tshark", "node"):
        if not shutil.which(tool):
            skip(f"{tool} not installed (scripts/deps.sh)")
    har_dir = os.path.join(src, "scripts", "har")
    if not os.path.isdir(os.path.join(har_dir, "node_modules", "httpsnippet")):
        skip("httpsnippet not installed (scripts/deps.sh runs npm ci in scripts/har)")
    if not os.path.isdir("/usr/share/nodejs/har-validator"):
        skip("har-validator not installed (scripts/deps.sh: node-har-validator)")

    work = tempfile.mkdtemp()
    os.chmod(work, 0o755)  # nginx's workers (nobody, when run as root) read the files below
    try:
        captures = os.path.join(src, "fixtures", "captures")
        taps = {}
        for name in FIXTURES + INCOMPLETE:
            tap = os.path.join(work, name + ".tap")
            r = run(taprec, *KEEP_ROOT, "-r", os.path.join(captures, name + ".pcap"), "-w", tap)
            if r.returncode != 0:
                fail(f"taprec -r {name}.pcap: {r.stderr}")
            taps[name] = tap
        complete = [taps[n] for n in FIXTURES]

        # The fixtures' nginx, as make-capture-fixtures.py configures it, on our own address.
        spec = importlib.util.spec_from_file_location(
            "fixtures", os.path.join(src, "scripts", "make-capture-fixtures.py"))
        fx = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(fx)
        fx.PORT = free_port()
        www = os.path.join(work, "nginx")
        os.makedirs(www)
        try:
            conf = fx.start_nginx(www, addr=ADDRESS, v6=False, files={**fx.FOUR, **fx.TEN})
        except subprocess.CalledProcessError as e:
            skip(f"nginx did not start: {e}")
        try:
            recorded = [x for t in complete for x in exchanges(tapcat, t)]
            want = [x["response"]["httpStatus"] for x in recorded]
            # Written out from the fixtures' README: 12 answers 200, the conditional GET 304, /missing
            # 404.
            if sorted(want) != [200] * 12 + [304, 404]:
                fail(f"unexpected recorded statuses {want}")

            # 1. HAR: valid, and httpsnippet's curl commands get the recorded statuses.
            har_path = os.path.join(work, "all.har")
            with open(har_path, "wb") as f:
                r = subprocess.run([tapcat, "-o", "har", *complete], stdout=f,
                                   stderr=subprocess.PIPE)
            if r.returncode != 0:
                fail(f"tapcat -o har: {r.stderr}")
            env = dict(os.environ, NODE_PATH="/usr/share/nodejs")
            r = run("node", os.path.join(har_dir, "check.js"), har_path, env=env, text=True)
            if r.returncode != 0:
                fail(f"HAR check: {r.stderr}")
            snippets = [json.loads(l) for l in r.stdout.splitlines()]
            with open(har_path) as f:
                har = json.load(f)
            entries = har["log"]["entries"]
            # tapcat merges the files in request-start order, for every -o alike.
            in_order = [json.loads(l)["response"]["httpStatus"] for l in
                        run(tapcat, "-o", "json", *complete, text=True).stdout.splitlines()]
            if [e["response"]["status"] for e in entries] != in_order:
                fail("HAR statuses differ from tapcat -o json's")
            if len(snippets) != len(recorded):
                fail(f"httpsnippet read {len(snippets)} entries, want {len(recorded)}")
            bad = statuses([(s["status"], s["curl"]) for s in snippets], fx.PORT, "httpsnippet")
            if bad:
                fail("\n".join(bad))
            print(f"ok: HAR valid; {len(snippets)} httpsnippet commands got the recorded statuses")

            # 2. -o curl: each command gets the recorded status.
            r = run(tapcat, "-o", "curl", *complete, text=True)
            if r.returncode != 0:
                fail(f"tapcat -o curl: {r.stderr}")
            cmds = [l for l in r.stdout.splitlines() if not l.startswith("#")]
            if len(cmds) != len(in_order):
                fail(f"{len(cmds)} curl commands for {len(in_order)} exchanges")
            bad = statuses(list(zip(in_order, cmds)), fx.PORT, "tapcat -o curl")
            if bad:
                fail("\n".join(bad))
            print(f"ok: {len(cmds)} tapcat -o curl commands got the recorded statuses")
        finally:
            subprocess.run(["nginx", "-c", conf, "-s", "stop"], capture_output=True)

        # 3. -o pcap: tshark reads the same messages as from the original; taprec the same
        # exchanges.
        for name in FIXTURES + INCOMPLETE:
            pcap = os.path.join(work, name + ".export.pcap")
            with open(pcap, "wb") as f:
                r = subprocess.run([tapcat, "-o", "pcap", taps[name]], stdout=f,
                                   stderr=subprocess.PIPE)
            if r.returncode != 0:
                fail(f"tapcat -o pcap {name}: {r.stderr}")
            r = run("tshark", "-r", pcap, "-o", "tcp.check_checksum:TRUE", "-o",
                    "ip.check_checksum:TRUE", "-T", "fields", "-e", "tcp.checksum.status",
                    text=True)
            sums = r.stdout.split()
            if r.returncode != 0 or not sums or set(sums) != {"1"}:  # 1: tshark's "Good"
                fail(f"{name}: TCP checksums tshark does not call good: {sums}")
            # In time order, and nothing tshark's TCP analysis flags (retransmission, ACKed
            # unseen segment, ...).
            r = run("tshark", "-r", pcap, "-T", "fields", "-e", "frame.time_delta", text=True)
            if any(d.startswith("-") for d in r.stdout.split()):
                fail(f"{name}: packets out of time order")
            # (A cut message's hole is flagged as a lost segment, as in a capture that lost one.)
            r = run("tshark", "-r", pcap, "-Y", "tcp.analysis.flags", text=True)
            if r.stdout.strip() and name in FIXTURES:
                fail(f"{name}: tshark's TCP analysis flags:\n{r.stdout}")
            got = tshark_messages(pcap)
            if name in FIXTURES:
                want = tshark_messages(os.path.join(captures, name + ".pcap"))
                if got != want:
                    fail(f"{name}: tshark reads\n{got}\nfrom the export, and\n{want}\nfrom the capture")
                if not got[0] or not got[1]:
                    fail(f"{name}: tshark read no HTTP messages")
            back = os.path.join(work, name + ".back.tap")
            r = run(taprec, *KEEP_ROOT, "-r", pcap, "-w", back)
            if r.returncode != 0:
                fail(f"taprec -r {name}.export.pcap: {r.stderr}")
            if name in FIXTURES and exchanges(tapcat, back) != exchanges(tapcat, taps[name]):
                fail(f"{name}: taprec -r of the export gives other exchanges than the capture")
            if name in INCOMPLETE:
                def states(tap):
                    return [(x["request"]["path"] if x.get("request") else None,
                             x.get("end", {}).get("completion", "complete") == "complete",
                             x.get("end", {}).get("completion") == "no-response",
                             x["response"]["body"]["length"] if x.get("response") else None)
                            for x in exchanges(tapcat, tap)]
                got, want = states(back), states(taps[name])
                if got != want:
                    fail(f"{name}: taprec -r of the export reads (path, complete, no-response, "
                         f"response length)\n{got}\nand of the capture\n{want}")
            print(f"ok: {name}: pcap export read back by tshark and taprec")

        # 4. Binary output to a terminal is refused.
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(tapcat, [tapcat, "-o", "pcap", complete[0]])
        text = b""
        while True:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            text += chunk
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 2 or b"pcap output is binary" not in text:
            fail(f"tapcat -o pcap to a terminal: exit {status}, {text!r}")
        print("ok: -o pcap to a terminal refused")

        # 5. Exports where they cannot work are refused with one line and exit 2.
        for cmd, words in (([tapcat, "--info", "-o", "har", complete[0]], "cannot be used together"),
                           ([taprec, "-o", "pcap", "-r", os.path.join(captures, "ipv6-get.pcap")],
                            "taprec prints text, wide or json")):
            r = run(*cmd, text=True)
            if r.returncode != 2 or words not in r.stderr or r.stdout:
                fail(f"{' '.join(cmd)}: exit {r.returncode}, {r.stderr!r}")
        print("ok: --info -o har and taprec -o pcap refused")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
