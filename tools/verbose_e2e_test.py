#!/usr/bin/env python3
"""tapcat -V's decoded bodies equal what curl --compressed fetches from the nginx that served them
(issue 11, tests).

Runs as root (capturing on lo needs CAP_NET_RAW; exits 77, ctest's skip, with a message otherwise;
a missing nginx, curl or brotli is a skip too, but a failure under CI=true):

  1. nginx (nginx-light) on 127.0.97.1 and a free port, gzip on for JSON and text (its gzip
     module), and files it serves as stored with a Content-Encoding of their own: JSON made with
     the brotli tool (`br`), text compressed with Python's zlib (`deflate`), and text gzipped then
     brotli'd (`gzip, br`); a binary file and a text file too large for the body limit once
     gzipped;
  2. taprec -i lo -w out.tap, filtered to that server, while curl --compressed fetches each file;
  3. tapcat -V out.tap: each exchange's decoded response body (pretty JSON read back with json,
     text as text, hex dumps read back to bytes) equals curl's output: exactly, or, for the body cut
     at the body limit, as its prefix, with the lines saying so. tapcat -o json --body gives the
     same text. -V works with -c, and refuses --info, -o json; --body refuses -o text.

  verbose_e2e_test.py BUILD_DIR
"""

import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zlib

from e2e_support import NGINX_USER, SKIP, WAIT, can_capture, fail, skip, wait_for
import e2e_support

ADDRESS = "127.0.97.1"


def files(www):
    """Writes the served files; returns {url path: what curl --compressed should get}."""
    rnd = random.Random(11)
    items = {"items": [{"id": i, "name": f"caf\u00e9 {i}", "tags": ["a", "b"][: i % 3]}
                       for i in range(300)]}
    api = json.dumps(items, ensure_ascii=False, separators=(",", ":")) + "\n"
    text = "".join(f"line {i}\tsome text for the gzip module\n" for i in range(2000))
    big = "".join(rnd.choice("0123456789abcdef") for _ in range(240_000))  # > 64 KiB gzipped
    br_json = json.dumps({"coded": "by the brotli tool", "n": list(range(100))}) + "\n"
    deflated = "deflate with a zlib header, from Python's zlib\n" * 40
    stacked = "gzip first, then br: Content-Encoding: gzip, br\n" * 50
    binary = bytes(rnd.randrange(256) for _ in range(3000))
    want = {}

    def put(name, data, served=None):
        with open(os.path.join(www, name), "wb") as f:
            f.write(served if served is not None else data)
        want["/" + name] = data

    put("items.json", api.encode())
    put("lines.txt", text.encode())
    put("big.txt", big.encode())
    put("blob.bin", binary)
    put("deflated.txt", deflated.encode(), zlib.compress(deflated.encode()))
    br = subprocess.run(["brotli", "-c"], input=br_json.encode(), stdout=subprocess.PIPE,
                        check=True).stdout
    put("coded.json", br_json.encode(), br)
    stacked_br = subprocess.run(["brotli", "-c"], input=gzip.compress(stacked.encode()),
                                stdout=subprocess.PIPE, check=True).stdout
    put("stacked.txt", stacked.encode(), stacked_br)
    for name in os.listdir(www):
        os.chmod(os.path.join(www, name), 0o644)
    return want


def start_nginx(work, port):
    www = os.path.join(work, "www")
    os.makedirs(www)
    os.chmod(work, 0o755)
    os.chmod(www, 0o755)
    want = files(www)
    conf = os.path.join(work, "nginx.conf")
    # Files stored coded are served as they are with their Content-Encoding; nginx's gzip
    # module leaves alone a type outside gzip_types.
    coded = "".join(
        f"location = /{name} {{ types {{ }} default_type {ctype}; add_header Content-Encoding "
        f"\"{coding}\"; }}\n"
        for name, ctype, coding in (("coded.json", "application/x-coded", "br"),
                                    ("deflated.txt", "text/x-coded", "deflate"),
                                    ("stacked.txt", "text/x-coded", "gzip, br")))
    with open(conf, "w") as f:
        f.write(f"""{NGINX_USER}worker_processes 1; daemon on; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off;
  types {{ application/json json; text/plain txt; application/octet-stream bin; }}
  default_type application/octet-stream;
  gzip on; gzip_min_length 1; gzip_types application/json text/plain;
  server {{ listen {ADDRESS}:{port}; root {www};
    {coded}
  }}
}}
""")
    subprocess.run(["nginx", "-c", conf], check=True)
    wait_for(lambda: os.path.exists(os.path.join(work, "nginx.pid")), "nginx's pid file")
    return conf, want


def blocks(verbose):
    """tapcat -V's output as {url path: block text}."""
    out = {}
    for block in verbose.split("\n\n"):
        m = re.match(r"exchange \d+:\d+: GET \S+ (\S+) -> ", block)
        if m:
            out[m.group(1)] = block
    return out


def shown_body(block):
    """(head line, notes, content lines, no-newline marker) of the response body in a block."""
    lines = block.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("  response body: "):
            head, notes, content, no_nl = line[2:], [], [], False
            for rest in lines[i + 1:]:
                if rest.startswith("    "):
                    content.append(rest[4:])
                elif rest.startswith("  ! "):
                    notes.append(rest[4:])
                elif rest == "  \\ no newline at end of body":
                    no_nl = True
                else:
                    break
            return head, notes, content, no_nl
    fail(f"no response body in block:\n{block}")


def from_hex(lines):
    data = bytearray()
    for line in lines:
        m = re.match(r"([0-9a-f]{8})  ((?:[0-9a-f]{2} {1,2}| {3,4})+) \|", line)
        if not m or int(m.group(1), 16) != len(data):
            fail(f"not a hexdump -C line at offset {len(data)}: {line!r}")
        data += bytes.fromhex(m.group(2).replace(" ", ""))
    return bytes(data)


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    why = can_capture()
    if why:
        print(f"SKIP: verbose_e2e_test captures on lo and needs root with CAP_NET_RAW: {why}",
              flush=True)
        return SKIP
    for tool in ("nginx", "curl", "brotli"):
        if not shutil.which(tool):
            skip("verbose_e2e_test", f"{tool} is missing")
    taprec = os.path.join(build, "tools", "taprec")
    tapcat = os.path.join(build, "tools", "tapcat")
    port = e2e_support.free_port(ADDRESS)
    with tempfile.TemporaryDirectory(prefix="tapkit-verbose.") as work:
        conf, want = start_nginx(work, port)
        rec = None
        fetched = {}
        try:
            tap = os.path.join(work, "out.tap")
            err = open(os.path.join(work, "taprec.err"), "wb")
            rec = subprocess.Popen([taprec, "-i", "lo", "-Z", "root", "-w", tap,
                                    f"tcp and host {ADDRESS} and port {port}"],
                                   stdout=subprocess.DEVNULL, stderr=err)
            wait_for(lambda: os.path.exists(tap) or rec.poll() is not None, "taprec's file")
            if rec.poll() is not None:
                fail(f"taprec exited with {rec.returncode}")
            for path in sorted(want):
                out = os.path.join(work, "curl" + path.replace("/", "_"))
                subprocess.run(["curl", "-sS", "--compressed", "--max-time", str(int(WAIT)),
                                "-o", out, f"http://{ADDRESS}:{port}{path}"], check=True)
                fetched[path] = open(out, "rb").read()
                if fetched[path] != want[path]:
                    fail(f"curl --compressed {path}: got {len(fetched[path])} bytes, not the "
                         f"{len(want[path])} served")
            time.sleep(1.0)  # the last packets reach taprec
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=WAIT)
            if rec.returncode != 0:
                fail(f"taprec exited with {rec.returncode}: "
                     f"{open(os.path.join(work, 'taprec.err')).read()}")
        finally:
            if rec and rec.poll() is None:
                rec.kill()
            subprocess.run(["nginx", "-c", conf, "-s", "stop"], check=False)

        run = subprocess.run([tapcat, "-V", tap], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if run.returncode != 0:
            fail(f"tapcat -V: exit {run.returncode}: {run.stderr.decode()}")
        seen = blocks(run.stdout.decode())
        expect_coding = {"/items.json": "gzip", "/lines.txt": "gzip", "/big.txt": "gzip",
                         "/blob.bin": None, "/coded.json": "br", "/deflated.txt": "deflate",
                         "/stacked.txt": "gzip, br"}
        for path, body in sorted(fetched.items()):
            if path not in seen:
                fail(f"no -V block for GET {path}; blocks for {sorted(seen)}")
            head, notes, content, no_nl = shown_body(seen[path])
            coding = expect_coding[path]
            if coding and f", {coding} decoded to " not in head:
                fail(f"{path}: body line does not say {coding} was decoded: {head!r}")
            if path == "/big.txt":
                # Cut at the body limit: the decoded text is a prefix of what curl got.
                if not notes or not re.match(r"stored 65536 of \d+ bytes: truncated at the body "
                                             r"limit$", notes[0]):
                    fail(f"{path}: no body-limit line: {notes}")
                if "the gzip stream ends early: shown is what the stored bytes decode to" \
                        not in notes:
                    fail(f"{path}: no line saying the gzip stream is cut: {notes}")
                shown = "\n".join(content).encode()
                if not shown or not body.startswith(shown):
                    fail(f"{path}: the {len(shown)} bytes shown are not a prefix of curl's")
                print(f"ok {path}: {head}; {len(shown)} of {len(body)} bytes, a prefix of "
                      f"curl's", flush=True)
                continue
            # Over tapcat -V's 64 KiB display cap: a prefix, up to a line end, then a line saying
            # how much more there is.
            cap = [m for m in (re.match(r"shown the first (\d+) of (\d+) bytes; (\d+) more not "
                                        r"shown$", n) for n in notes) if m]
            if cap:
                notes = [n for n in notes if not n.startswith("shown the first ")]
                n, total, more = (int(g) for g in cap[0].groups())
                shown = ("\n".join(content) + "\n").encode()
                if (notes or n > 65536 or len(shown) != n or total != len(body) or
                        n + more != total or not body.startswith(shown)):
                    fail(f"{path}: {cap[0].group(0)!r}, {len(shown)} bytes shown, not a "
                         f"prefix of curl's {len(body)} up to the cap")
                print(f"ok {path}: {head}; the first {n} of {total} bytes", flush=True)
                continue
            if notes:
                fail(f"{path}: unexpected notes {notes}")
            if head.endswith(", binary (application/octet-stream)"):
                got = from_hex(content)
            elif ", json" in head:
                if json.loads("\n".join(content)) != json.loads(body):
                    fail(f"{path}: pretty-printed JSON differs from curl's")
                got = body
            else:
                got = ("\n".join(content) + ("" if no_nl else "\n")).encode()
            if got != body:
                fail(f"{path}: shown body ({len(got)} bytes) differs from curl's ({len(body)})")
            print(f"ok {path}: {head}", flush=True)

        # --body: the same decoded text in -o json.
        run = subprocess.run([tapcat, "-o", "json", "--body", tap], stdout=subprocess.PIPE,
                             check=True)
        for line in run.stdout.decode().splitlines():
            x = json.loads(line)
            path = x["request"]["path"]
            d = x["response"]["body"]["decoded"]
            if path == "/blob.bin":
                if d["kind"] != "binary" or "text" in d:
                    fail(f"--body {path}: {d}")
            elif path == "/big.txt":
                if d["complete"] or not fetched[path].startswith(d["text"].encode()):
                    fail(f"--body {path}: not a cut prefix of curl's")
            elif d["text"].encode() != fetched[path]:
                fail(f"--body {path}: decoded text differs from curl's")
            if (d["contentEncoding"] or None) != expect_coding[path]:
                fail(f"--body {path}: contentEncoding {d['contentEncoding']!r}")
        print("ok -o json --body: decoded text equals curl's", flush=True)

        # -c and the refused combinations (exit 2, one line).
        run = subprocess.run([tapcat, "-V", "-c", "2", tap], stdout=subprocess.PIPE, check=True)
        if len(blocks(run.stdout.decode())) != 2:
            fail("tapcat -V -c 2 did not print 2 blocks")
        for args, msg in ((["-V", "--info"], "-V and --info cannot be used together"),
                          (["-V", "-o", "json"], "-V and -o json cannot be used together"),
                          (["-V", "--stat"], "-V and --stat cannot be used together"),
                          (["--body", "-o", "text"], "--body and -o text cannot be used together"),
                          (["--body"], "--body: only with -o json")):
            run = subprocess.run([tapcat, *args, tap], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            if run.returncode != 2 or msg not in run.stderr.decode():
                fail(f"tapcat {' '.join(args)}: exit {run.returncode}, {run.stderr.decode()!r}")
        print("ok -c and refused combinations", flush=True)
    print("PASS", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
