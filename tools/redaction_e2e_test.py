#!/usr/bin/env python3
"""Redaction end to end (issue 11): a secret planted in real traffic is nowhere in the .tap file.

Runs as root (tcpdump on lo; exits 77, ctest's skip, with a message otherwise, and fails instead
under CI=true; so does a missing tool):

  1. nginx on 127.0.95.1 serves a JSON file gzip-compressed by its gzip module, the same JSON
     brotli-compressed by the `brotli` tool and sent with Content-Encoding: br, a 302 whose
     Location carries the secret in its query, and answers POSTs;
  2. tcpdump -i lo writes what curl sends it: the secret in an Authorization header, a cookie, a
     query (token=), a Referer (api_key=), a form body (password=) and a JSON body (password);
  3. taprec -r reads the pcap twice: with --no-redact (the scan below must find the secret there,
     which shows it can) and with redaction and --redact-json-field for the JSON fields.

The scan of the redacted file, independent of tapkit's reader: the raw bytes; every block's
frames (found from format/SPEC.md section 3.1's header fields) decompressed by the `zstd` tool;
every body as tapcat prints it, its Content-Encoding undone by Python's gzip and the `brotli`
tool. The secret occurs nowhere; its markers are one and the same wherever it stood as a value
(query, Location, Referer, form, JSON request, gzip and br JSON responses); the br response's
Content-Length is its new length.

  redaction_e2e_test.py BUILD_DIR
"""

import base64
import gzip
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

from e2e_support import NGINX_USER, WAIT, fail, skip
import e2e_support

ADDR = "127.0.95.1"
SECRET = "S3cr3tPl4ntedT0ken"
MARKER = re.compile(r"tapkit-redacted:[0-9a-f]{12}")
SYNC = bytes.fromhex("D37A61705345479C")
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, timeout=WAIT, **kw)


def start_nginx(work, port):
    www = os.path.join(work, "www")
    os.makedirs(os.path.join(www, "br"))
    doc = {"data": {"token": SECRET, "id": 7}, "items": [{"sig": SECRET, "n": i} for i in range(3)],
           "note": "padding " * 40}
    text = json.dumps(doc).encode()
    with open(os.path.join(www, "secret.json"), "wb") as f:
        f.write(text)
    br = run(["brotli", "-c"], input=text)
    if br.returncode != 0:
        fail(f"brotli: {br.stderr.decode()}")
    with open(os.path.join(www, "br", "secret.json"), "wb") as f:
        f.write(br.stdout)
    for root, dirs, files in os.walk(work):
        os.chmod(root, 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{NGINX_USER}worker_processes 1; daemon on; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; types {{ }} default_type application/json;
  gzip on; gzip_types application/json; gzip_min_length 1;
  server {{ listen {ADDR}:{port}; root {www};
    location /br/ {{ gzip off; add_header Content-Encoding br; }}
    location = /redirect {{ return 302 http://{ADDR}:{port}/home?access_token={SECRET}&x=1; }}
    location = /form {{ return 200 "ok\\n"; }}
    location = /api {{ return 200 '{{"ok":true}}'; }}
  }} }}
""")
    r = run(["nginx", "-c", conf])
    if r.returncode != 0:
        fail(f"nginx: {r.stderr.decode()}")
    return os.path.join(work, "nginx.pid")


def capture(work, port):
    pcap = os.path.join(work, "planted.pcap")
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "--immediate-mode", "-w",
                                pcap, f"host {ADDR} and tcp port {port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # tcpdump says "listening on lo" once its capture is open.
    line = tcpdump.stderr.readline().decode()
    if "listening" not in line:
        tcpdump.kill()
        fail(f"tcpdump did not start: {line}")
    base = f"http://{ADDR}:{port}"
    curls = [
        ["-H", f"Authorization: Bearer {SECRET}", "-b", f"sid={SECRET}", "-H",
         "Accept-Encoding: gzip", f"{base}/secret.json?token={SECRET}&q=1"],
        ["-H", "Accept-Encoding: br", f"{base}/br/secret.json"],
        ["-e", f"http://app.example/home?api_key={SECRET}", f"{base}/redirect"],
        ["--data", f"user=ann&password={SECRET}", f"{base}/form"],
        ["-H", "Content-Type: application/json", "--data",
         json.dumps({"user": "ann", "password": SECRET}), f"{base}/api"],
    ]
    for args in curls:
        r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", *args])
        if r.returncode != 0 or r.stdout.decode() not in ("200", "302"):
            fail(f"curl {args}: {r.returncode} {r.stdout.decode()} {r.stderr.decode()}")
    time.sleep(0.5)
    tcpdump.send_signal(signal.SIGINT)
    tcpdump.wait(WAIT)
    return pcap


def frames(data):
    """Every frame of every block, decompressed by the zstd tool (format/SPEC.md 2 and 3.1)."""
    out = []
    (meta_len,) = struct.unpack_from("<I", data, 12)
    off = 24 + meta_len
    while off + 72 <= len(data) and data[off:off + 8] == SYNC:
        (h,) = struct.unpack_from("<H", data, off + 24)
        codec = data[off + 27]
        (meta_stored,) = struct.unpack_from("<I", data, off + 36)
        (body_stored,) = struct.unpack_from("<I", data, off + 44)
        start = off + h
        for frame in (data[start:start + meta_stored],
                      data[start + meta_stored:start + meta_stored + body_stored]):
            if not frame:
                continue
            if codec == 1:
                if not frame.startswith(ZSTD_MAGIC):
                    fail(f"offset {start}: a zstd frame without its magic")
                r = run(["zstd", "-dc"], input=frame)
                if r.returncode != 0:
                    fail(f"zstd -dc at offset {start}: {r.stderr.decode()}")
                frame = r.stdout
            out.append(frame)
        off = start + meta_stored + body_stored
    return out


def header(headers, name):
    for h in headers:
        if h["name"].lower() == name:
            return h["value"]
    return None


def decoded_bodies(build, tap):
    """(exchange, which, decoded body bytes, message) for every body tapcat prints."""
    r = run([os.path.join(build, "tools", "tapcat"), "-o", "json", tap])
    if r.returncode != 0:
        fail(f"tapcat: {r.stderr.decode()}")
    out = []
    for line in r.stdout.decode().splitlines():
        x = json.loads(line)
        for which in ("request", "response"):
            m = x.get(which) or {}
            b = m.get("body")
            if not b:
                continue
            raw = b["data"].encode() if b["encoding"] == "utf8" else base64.b64decode(b["data"])
            coding = header(m["headers"], "content-encoding")
            if coding == "gzip":
                raw = gzip.decompress(raw)
            elif coding == "br":
                d = run(["brotli", "-dc"], input=raw)
                if d.returncode != 0:
                    fail(f"brotli -dc of the {which} of {m.get('path')}: {d.stderr.decode()}")
                raw = d.stdout
            out.append((x, which, raw, m))
    return out, r.stdout


def verify(build, red, who):
    """Scans `red` (written by `who`) for the secret and checks its markers and policy."""
    secret = SECRET.encode()
    data = open(red, "rb").read()
    found = frames(data)
    if len(found) < 2:
        fail(f"{who}: only {len(found)} frames found in {red}")
    for name, hay in (("the file's bytes", data), ("its decompressed frames", b"".join(found))):
        if secret in hay:
            at = hay.find(secret)
            fail(f"{who}: the secret is in {name}: ...{hay[max(0, at - 80):at + 40]!r}")
    bodies, printed = decoded_bodies(build, red)
    if secret in printed:
        fail(f"{who}: the secret is in tapcat -o json's output")
    for x, which, raw, m in bodies:
        if secret in raw:
            fail(f"{who}: the secret is in the decoded {which} body of {x['request']['path']}: {raw[:200]!r}")

    # One marker for the secret wherever it was a value.
    markers = {}
    for line in printed.decode().splitlines():
        x = json.loads(line)
        path = x["request"]["path"]
        for key in ("token", "access_token", "api_key"):
            for source, text in (("path", path),
                                 ("Referer", header(x["request"]["headers"], "referer") or ""),
                                 ("Location", header(x["response"]["headers"], "location") or "")):
                m = re.search(rf"[?&]{key}=({MARKER.pattern})", text)
                if m:
                    markers[f"{source} {key}"] = m.group(1)
    for x, which, raw, m in bodies:
        text = raw.decode()
        if which == "request" and "password=" in text:
            markers["form password"] = re.search(rf"password=({MARKER.pattern})", text).group(1)
        elif text.startswith("{"):
            doc = json.loads(text)
            if "password" in doc:
                markers["JSON request password"] = doc["password"]
            if "data" in doc:
                coding = header(m["headers"], "content-encoding")
                markers[f"{coding} JSON data.token"] = doc["data"]["token"]
                for i, item in enumerate(doc["items"]):
                    markers[f"{coding} JSON items[{i}].sig"] = item["sig"]
                if coding == "br":
                    length = int(header(m["headers"], "content-length"))
                    if length != m["body"]["length"] or m["body"]["truncated"]:
                        fail(f"{who}: br body: Content-Length {length}, body {m['body']}")
    want = {"path token", "Referer api_key", "Location access_token", "form password",
            "JSON request password", "gzip JSON data.token", "br JSON data.token",
            "gzip JSON items[2].sig", "br JSON items[0].sig"}
    if not want <= set(markers):
        fail(f"{who}: markers missing: {sorted(want - set(markers))}; found {markers}")
    if len(set(markers.values())) != 1 or not MARKER.fullmatch(next(iter(markers.values()))):
        fail(f"{who}: equal secrets with different markers: {markers}")
    info = run([os.path.join(build, "tools", "tapcat"), "--info", "-o", "json", red])
    red_policy = json.loads(info.stdout)["metadata"]["redaction"]
    if red_policy["jsonFields"] != ["/data/token", "/items/*/sig", "/password"] or \
            "x-unused" not in red_policy["headers"] or "token" not in red_policy["queryParams"]:
        fail(f"{who}: the header's redaction policy: {red_policy}")
    return len(found), len(bodies), len(markers)


def main():
    if len(sys.argv) != 2:
        fail("usage: redaction_e2e_test.py BUILD_DIR")
    build = sys.argv[1]
    if os.geteuid() != 0:
        skip("redaction_e2e_test", "needs root for tcpdump -i lo")
    for tool in ("nginx", "curl", "tcpdump", "zstd", "brotli"):
        if not shutil.which(tool):
            skip("redaction_e2e_test", f"{tool} is not installed (scripts/deps.sh)")
    work = tempfile.mkdtemp(prefix="redaction_e2e.")
    port = e2e_support.free_port(ADDR)
    pid_file = start_nginx(work, port)
    try:
        pcap = capture(work, port)
    finally:
        try:
            with open(pid_file) as f:
                os.kill(int(f.read()), signal.SIGTERM)
        except (OSError, ValueError):
            pass
    taprec = os.path.join(build, "tools", "taprec")
    plain, red = os.path.join(work, "plain.tap"), os.path.join(work, "red.tap")
    for args in (["--no-redact", "-w", plain],
                 ["--redact-json-field", "/data/token", "--redact-json-field", "/items/*/sig",
                  "--redact-json-field", "/password", "--redact-header", "X-Unused", "-w", red]):
        # -Z root: this test is not about giving up root, and a sanitizer build's leak check
        # cannot read /proc once the process became nobody.
        r = run([taprec, "-r", pcap, "-Z", "root", *args])
        if r.returncode != 0:
            fail(f"taprec {args}: {r.stderr.decode()}")
        if "5 exchanges recorded" not in r.stderr.decode():
            fail(f"taprec {args}: expected 5 exchanges: {r.stderr.decode()}")
    secret = SECRET.encode()

    # The scan can see the secret where nothing redacted it.
    plain_bytes = open(plain, "rb").read()
    plain_frames = b"".join(frames(plain_bytes))
    plain_bodies, _ = decoded_bodies(build, plain)
    if plain_frames.count(secret) < 5:
        fail(f"control: the secret is in the unredacted frames only {plain_frames.count(secret)} times")
    if sum(raw.count(secret) for _, _, raw, _ in plain_bodies) < 8:
        fail("control: the secret is not in the unredacted decoded bodies")

    found, bodies, markers = verify(build, red, "taprec -r")
    # tapfilter redacts a capture recorded without redaction the same way (issue 11).
    filtered = os.path.join(work, "filtered.tap")
    r = run([os.path.join(build, "tools", "tapfilter"), "--redact", "--redact-json-field",
             "/data/token", "--redact-json-field", "/items/*/sig", "--redact-json-field",
             "/password", "--redact-header", "X-Unused", plain, "-w", filtered])
    if r.returncode != 0:
        fail(f"tapfilter --redact: {r.stderr.decode()}")
    verify(build, filtered, "tapfilter --redact")
    shutil.rmtree(work, ignore_errors=True)
    print(f"ok: {found} frames and {bodies} bodies scanned in each of taprec's and tapfilter's "
          f"output, no secret; one marker in {markers} places")


if __name__ == "__main__":
    main()
