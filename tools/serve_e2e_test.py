#!/usr/bin/env python3
"""tapreplay --serve end to end (issue 13): real traffic recorded from nginx, served by the mock
to real clients (curl, and the demo mesh's frontend nginx).

Runs as root (tcpdump -i lo; exits 77, ctest's skip, with a message otherwise, and fails instead
under CI=true; so does a missing nginx, curl or tcpdump). Addresses: 127.0.100.0/24, and the demo
mesh's own (127.0.10.1, 127.0.20.1) for the mesh part. Every expected value comes from outside the
mock: what curl got from nginx at recording time (`curl -D hdrs -o body`), nginx's access log,
slow.py's requested delay, python's gzip module.

  1. "origin" nginx serves a JSON file, an SSI page (really chunked), a gzip-encoded text (chunked,
     Content-Encoding: gzip), a 404, a POST with a JSON body, a query string, a HEAD, a route
     answering a changing id (/seq, three times), a slow route (slow.py behind nginx) and a header
     echo. curl sends each while tcpdump writes the packets; `taprec -r` makes rec.tap. nginx is
     stopped; `tapreplay rec.tap --serve` answers the same requests (query reordered, another
     Host) with the status line, header fields and body bytes curl got from nginx, re-framed with
     Content-Length (no Transfer-Encoding); the gzip body still gzipped. A redacted Set-Cookie is
     served as its marker, or as --set-header says; a body cut by `taprec --snaplen-body` is
     served as stored with Tapkit-Truncated.
  2. The demo mesh (deploy/demo/mesh.sh): the frontend->backend traffic of curl requests to the
     frontend is recorded (tcpdump + taprec -r), the mesh is stopped, the mock serves that capture
     on the backend's address 127.0.20.1:8080, and `MESH_BACKEND=127.0.20.1:8080 mesh.sh up` starts
     the frontend pointed at it: each route answers with the recorded status and body.
  3. Sequences: /seq's three recorded answers; two clients (X-Client a/b) x3 fresh connections get
     1,2,3 each with --session-header X-Client; without it 1,2,3,3,3,3 in arrival order; --strict
     gives the miss status on the 4th. A selection flag (--path) picks what is served.
  4. Misses: Tapkit-Miss names the closest recorded request and the field (path, query parameter,
     method, header with --match-header, body with --match-body, host with --match-host);
     --ignore-param and JSON-aware --match-body hit; --miss-status 501; the -o json log parsed.
  5. --upstream to a second nginx with -w pass.tap: a miss is answered by nginx (its access log
     has the request id the client got and its Authorization), a hit is not passed; SIGTERM: exit
     0, pass.tap whole (tapcat reads it) with the Authorization redacted; a second mock with
     rec.tap and pass.tap serves it with nginx stopped; with the upstream gone, a miss gets 502.
  6. 16 curl processes x 100 requests, each on one kept-alive connection (curl's num_connects):
     all answered right, the log has exactly 1600 lines.
  7. --delay 50ms and --delay recorded (the slow route): lower bounds only.
  8. Bound to 127.0.100.5:P, 127.0.100.6:P is refused; `--serve localhost:P`: exit 2, one line.

  serve_e2e_test.py BUILD_DIR
"""

import gzip
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid

from e2e_support import WAIT, fail, header, run, wait_for
import e2e_support

TEST = "serve_e2e_test"
ADDRS = {"origin": "127.0.100.1", "upstream": "127.0.100.2", "mock": "127.0.100.3",
         "bind": "127.0.100.5", "other": "127.0.100.6", "slow": "127.0.100.9",
         "client": "127.0.100.20"}
MESH_FRONTEND = "http://127.0.10.1:8080"
MESH_BACKEND = "127.0.20.1:8080"

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = None
WORK = None
NGINX = {}  # name -> (port, work dir)
PROCS = []  # processes to stop at the end whatever happens
# Fields that frame a message or belong to one connection (RFC 9110 section 7.6.1, RFC 9112
# section 6): the mock frames its answers anew, so these may differ from what nginx sent.
FRAMING = {"transfer-encoding", "content-length", "connection", "keep-alive"}
ORDER = b'{"item":3,"qty":2,"note":"gift"}'
SECRET = "S3cr3t" + uuid.uuid4().hex[:8]
# Requests recorded besides CASES: /seq three times, /slow, /login.
EXTRA = 5


def tool(name):
    return os.path.join(BUILD, "tools", name)


# ---------------------------------------------------------------------------------------------
# Servers: nginx, slow.py

def start_slow():
    addr = ADDRS["slow"]
    port = e2e_support.free_port(addr)
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, "deploy", "demo", "slow.py"),
                          "--listen", f"{addr}:{port}", "--delay", "0"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(p)
    wait_for(lambda: run(["curl", "-s", "-o", "/dev/null", f"http://{addr}:{port}/healthz"]
                         ).returncode == 0, "slow.py")
    return f"{addr}:{port}"


def start_nginx(name, routes, files=None):
    addr = ADDRS[name]
    port = e2e_support.free_port(addr)
    work = os.path.join(WORK, name)
    www = os.path.join(work, "www")
    os.makedirs(www)
    for fname, data in (files or {}).items():
        with open(os.path.join(www, fname), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(www, fname), 0o644)
    for d in (work, www):
        os.chmod(d, 0o755)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{e2e_support.nginx_main(work)}http {{
  types {{ application/json json; text/plain txt; text/html html; }}
  default_type text/plain;
  log_format serve '$request_method $request_uri $status $request_id $http_authorization';
  access_log {work}/access.log serve;
{e2e_support.nginx_temp_paths(work)}  chunked_transfer_encoding on;
  server {{
    listen {addr}:{port}; root {www};
    location = /healthz {{ access_log off; return 200 "ok\\n"; }}
{routes}
  }}
}}
""")
    r = run(["nginx", "-c", conf])
    if r.returncode != 0:
        fail(f"nginx {name}: {r.stderr.decode()}")
    NGINX[name] = (port, work)
    wait_for(lambda: run(["curl", "-s", "-o", "/dev/null", f"http://{addr}:{port}/healthz"]
                         ).returncode == 0, f"nginx {name}")
    return f"http://{addr}:{port}"


def stop_nginx(name):
    port, work = NGINX.pop(name)
    try:
        with open(os.path.join(work, "nginx.pid")) as f:
            os.kill(int(f.read()), signal.SIGTERM)
    except (OSError, ValueError):
        return
    addr = ADDRS[name]
    wait_for(lambda: run(["curl", "-s", "-o", "/dev/null", f"http://{addr}:{port}/healthz"]
                         ).returncode == 7, f"nginx {name} to stop")


def access_log(work):
    with open(os.path.join(work, "access.log")) as f:
        # method, target, status, request id, Authorization ("-" when none)
        return [l.split(None, 4) for l in f.read().splitlines()]


# ---------------------------------------------------------------------------------------------
# curl

class Answer:
    def __init__(self, status_line, headers, body, code, ttfb):
        self.status_line = status_line  # "HTTP/1.1 200 OK"
        self.headers = headers          # [(name, value)] in order
        self.body = body
        self.code = code                # curl's exit code
        self.ttfb = ttfb                # curl's time_starttransfer, seconds

    def status(self):
        return int(self.status_line.split()[1]) if self.status_line else 0

    def field(self, name):
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)

    def fields(self, drop):
        return [(n, v) for n, v in self.headers if n.lower() not in drop]


COUNTER = [0]


def curl(url, *args, host=None, head=False):
    """One request on a fresh connection; the answer as curl saw it (headers from -D, body from
    -o). A curl failure is returned in .code (7: connection refused)."""
    COUNTER[0] += 1
    hdrs = os.path.join(WORK, f"curl{COUNTER[0]}.hdrs")
    body = os.path.join(WORK, f"curl{COUNTER[0]}.body")
    cmd = ["curl", "-sS", "--max-time", "20", "-D", hdrs, "-o", body,
           "-w", "%{time_starttransfer}"]
    if host:
        cmd += ["-H", f"Host: {host}"]
    if head:
        cmd += ["-I"]
    r = run(cmd + list(args) + [url])
    if r.returncode != 0:
        return Answer("", [], b"", r.returncode, 0.0)
    with open(hdrs, "rb") as f:
        raw = f.read().decode("latin-1")
    # The last response curl read (a 100 Continue would come first).
    block = [b for b in raw.split("\r\n\r\n") if b.strip()][-1].split("\r\n")
    headers = []
    for line in block[1:]:
        name, _, value = line.partition(":")
        headers.append((name, value.strip()))
    data = b""
    if not head:
        with open(body, "rb") as f:
            data = f.read()
    return Answer(block[0].strip(), headers, data, 0, float(r.stdout.decode()))


# ---------------------------------------------------------------------------------------------
# The mock: tapreplay --serve

SERVING = re.compile(r"^tapreplay: serving (\d+) recorded exchanges? \((\d+) skipped\) on "
                     r"(http://\S+)$")
SERVED = re.compile(r"^tapreplay: served (\d+) hits?, (\d+) miss(?:es)?, (\d+) passed through")


class Mock:
    """A running `tapreplay INPUTS --serve LISTEN ARGS`; its log lines are read as they come."""

    def __init__(self, inputs, *args, listen=None):
        listen = listen or f"{ADDRS['mock']}:0"
        self.cmd = [tool("tapreplay"), *inputs, "--serve", listen, *args]
        self.p = subprocess.Popen(self.cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        PROCS.append(self.p)
        self.out, self.err = [], []
        self.err_q = queue.Queue()
        self.threads = [threading.Thread(target=self._read, args=(self.p.stdout, self.out, None)),
                        threading.Thread(target=self._read, args=(self.p.stderr, self.err,
                                                                  self.err_q))]
        for t in self.threads:
            t.start()
        try:
            first = self.err_q.get(timeout=WAIT)
        except queue.Empty:
            self.p.kill()
            fail(f"{' '.join(self.cmd)}: no line on stderr within {WAIT:.0f}s")
        m = SERVING.match(first or "")
        if not m:
            self.p.kill()
            self.p.wait()
            for t in self.threads:
                t.join()
            fail(f"{' '.join(self.cmd)}: the first line on stderr is not 'tapreplay: serving "
                 f"...' (the mock was killed): {self.err}")
        self.served, self.skipped, self.url = int(m[1]), int(m[2]), m[3]

    @staticmethod
    def _read(pipe, lines, q):
        for raw in pipe:
            line = raw.decode(errors="replace").rstrip("\n")
            lines.append(line)
            if q:
                q.put(line)
        if q:
            q.put(None)

    def stop(self, what):
        """SIGTERM: exit 0 with the summary line; returns (log lines, (hits, misses, passed))."""
        self.p.send_signal(signal.SIGTERM)
        try:
            self.p.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail(f"{what}: the mock did not stop within {WAIT:.0f}s of SIGTERM")
        for t in self.threads:
            t.join()
        if self.p.returncode != 0:
            fail(f"{what}: the mock exited {self.p.returncode} on SIGTERM: {self.err}")
        m = SERVED.match(self.err[-1]) if len(self.err) >= 2 else None
        if not m:
            fail(f"{what}: the mock's last line on SIGTERM is not the summary: {self.err}")
        return self.out, (int(m[1]), int(m[2]), int(m[3]))


def json_log(lines, what):
    objs = []
    for line in lines:
        try:
            objs.append(json.loads(line))
        except json.JSONDecodeError as e:
            fail(f"{what}: -o json logged a line that is not JSON ({e}): {line!r}")
    return objs


# ---------------------------------------------------------------------------------------------
# 1. Recording from nginx, serving it back

DATA = {"id": 7, "name": "widget", "price": 10, "tags": ["red", "blue"]}
BIG = "".join(f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(400))

# (name, curl arguments, path recorded, path sent to the mock, HEAD)
CASES = [
    ("json", [], "/data.json", "/data.json", False),
    ("chunked", [], "/page.html", "/page.html", False),
    ("gzip", ["-H", "Accept-Encoding: gzip"], "/big.txt", "/big.txt", False),
    ("404", [], "/missing.txt", "/missing.txt", False),
    ("post", ["--data-binary", ORDER, "-H", "Content-Type: application/json"], "/orders",
     "/orders", False),
    ("query", [], "/search?q=widget&page=2&sort=price%20asc",
     "/search?sort=price%20asc&page=2&q=widget", False),
    ("head", [], "/data.json", "/data.json", True),
    ("tenant", ["-H", "X-Tenant: blue"], "/tenant", "/tenant", False),
]


def start_origin(slow):
    routes = f"""
    location = /page.html {{ ssi on; }}
    location = /big.txt {{ gzip on; gzip_types text/plain; gzip_min_length 0; }}
    location = /orders {{ default_type application/json; return 201 '{{"status":"created"}}\\n'; }}
    location = /search {{ default_type application/json;
                         return 200 '{{"q":"$arg_q","page":"$arg_page"}}\\n'; }}
    location = /tenant {{ return 200 "tenant $http_x_tenant\\n"; }}
    location = /seq {{ default_type application/json; return 200 '{{"answer":"$request_id"}}\\n'; }}
    location = /slow {{ proxy_pass http://{slow}; }}
    location = /login {{ add_header Set-Cookie "sid={SECRET}; Path=/"; return 200 "welcome\\n"; }}
"""
    files = {"data.json": json.dumps(DATA).encode() + b"\n",
             "page.html": b"<html><body>\n<!--# include virtual=\"/part.txt\" -->\n"
                          b"<p>end</p></body></html>\n",
             "part.txt": b"included part\n",
             "big.txt": BIG.encode()}
    return start_nginx("origin", routes, files)


def record(base):
    """Sends every request to nginx under tcpdump; returns rec.tap, curl's answers by case name,
    /seq's three bodies and /slow's."""
    port = NGINX["origin"][0]
    pcap = os.path.join(WORK, "rec.pcap")
    tcpdump = start_tcpdump(pcap, f"host {ADDRS['origin']} and tcp port {port}")
    got = {}
    for name, args, path, _, head in CASES:
        a = curl(base + path, *args, head=head)
        if a.code != 0:
            fail(f"recording {name}: curl exit {a.code}")
        got[name] = a
    seq = []
    for _ in range(3):
        seq.append(curl(base + "/seq").body)
    slow = curl(base + "/slow?ms=400")
    got["login"] = curl(base + "/login")
    stop_tcpdump(tcpdump)
    # The answers are what the checks need them to be (nginx really chunked, really gzipped).
    for name in ("chunked", "gzip"):
        if (got[name].field("Transfer-Encoding") or "").lower() != "chunked":
            fail(f"recording: nginx's {name} answer is not chunked: {got[name].headers}")
    if got["gzip"].field("Content-Encoding") != "gzip" or \
            gzip.decompress(got["gzip"].body).decode() != BIG:
        fail(f"recording: nginx's /big.txt is not gzip of the file: {got['gzip'].headers}")
    if got["404"].status() != 404 or got["post"].status() != 201 or len(set(seq)) != 3:
        fail(f"recording: 404 {got['404'].status_line}, POST {got['post'].status_line}, "
             f"/seq {seq}")
    if got["head"].field("Content-Length") != str(len(got["json"].body)):
        fail(f"recording: HEAD's Content-Length {got['head'].field('Content-Length')}")
    tap = os.path.join(WORK, "rec.tap")
    r = run([tool("taprec"), "-r", pcap, "-Z", "root", "-w", tap])
    if r.returncode != 0:
        fail(f"taprec -r: {r.stderr.decode()}")
    n = len(CASES) + EXTRA
    xs = e2e_support.exchanges(tool("tapcat"), tap)
    if len(xs) != n or any(x["end"]["completion"] != "complete" for x in xs):
        fail(f"recorded {len(xs)} exchanges, sent {n}: "
             f"{[(x['request']['path'], x['end']['completion']) for x in xs]}")
    return tap, got, seq, slow, xs


def start_tcpdump(pcap, bpf):
    p = e2e_support.start_tcpdump(pcap, bpf)
    PROCS.append(p)  # killed at the end should a check fail while it runs
    return p


def stop_tcpdump(p):
    e2e_support.stop_tcpdump(p, settle=0.3)


def check_served_as_recorded(tap, got):
    mock = Mock([tap])
    if mock.served != len(CASES) + EXTRA or mock.skipped != 0:
        fail(f"serving rec.tap: {mock.served} served, {mock.skipped} skipped")
    for name, args, _, path, head in CASES:
        a = curl(mock.url + path, *args, head=head, host="other.example:81")
        want = got[name]
        what = f"served {name} ({path})"
        if a.code != 0:
            fail(f"{what}: curl exit {a.code}")
        if a.status_line != want.status_line:
            fail(f"{what}: status line {a.status_line!r}, nginx sent {want.status_line!r}")
        if a.body != want.body:
            fail(f"{what}: body {a.body[:200]!r}, nginx sent {want.body[:200]!r}")
        if a.fields(FRAMING) != want.fields(FRAMING):
            fail(f"{what}: fields {a.fields(FRAMING)}, nginx sent {want.fields(FRAMING)}")
        if a.field("Transfer-Encoding") is not None:
            fail(f"{what}: served with Transfer-Encoding {a.field('Transfer-Encoding')}")
        length = want.field("Content-Length") if head else str(len(want.body))
        if a.field("Content-Length") != length:
            fail(f"{what}: Content-Length {a.field('Content-Length')}, wanted {length}")
    # Still gzipped: the bytes nginx sent, which python's gzip decodes to the file.
    again = curl(mock.url + "/big.txt")
    if again.field("Content-Encoding") != "gzip" or gzip.decompress(again.body).decode() != BIG:
        fail("served /big.txt is not the recorded gzip stream")
    log, (hits, misses, passed) = mock.stop("serving rec.tap")
    if (hits, misses, passed) != (len(CASES) + 1, 0, 0) or len(log) != len(CASES) + 1:
        fail(f"serving rec.tap: summary {hits} hits {misses} misses {passed} passed, log {log}")
    return (f"{len(CASES)} requests (JSON, chunked SSI, gzip, 404, POST, reordered query, HEAD) "
            "answered with nginx's status line, fields and body bytes; re-framed; gzip kept")


def check_redacted_and_cut(tap, got):
    """A redacted Set-Cookie is served as its marker unless --set-header gives one; a body cut at
    the recording's body limit is served as stored with Tapkit-Truncated."""
    sent = got["login"].field("Set-Cookie")
    if sent != f"sid={SECRET}; Path=/":
        fail(f"recording: nginx's /login Set-Cookie is {sent!r}")
    mock = Mock([tap])
    a = curl(mock.url + "/login")
    mock.stop("a redacted field")
    marker = a.field("Set-Cookie") or ""
    drop = FRAMING | {"set-cookie"}
    if not marker.startswith("tapkit-redacted:") or SECRET in marker or \
            a.body != got["login"].body or a.fields(drop) != got["login"].fields(drop):
        fail(f"/login served: Set-Cookie {marker!r}, fields {a.headers}, body {a.body!r}")
    mock = Mock([tap], "--set-header", "Set-Cookie: sid=fresh; Path=/")
    a = curl(mock.url + "/login")
    mock.stop("--set-header")
    if [v for n, v in a.headers if n.lower() == "set-cookie"] != ["sid=fresh; Path=/"]:
        fail(f"--set-header Set-Cookie: served {a.headers}")

    cut = os.path.join(WORK, "cut.tap")
    r = run([tool("taprec"), "-r", os.path.join(WORK, "rec.pcap"), "-Z", "root",
             "--snaplen-body", "10", "-w", cut])
    if r.returncode != 0:
        fail(f"taprec --snaplen-body 10: {r.stderr.decode()}")
    mock = Mock([cut], "--path", "/page.html")
    a = curl(mock.url + "/page.html")
    mock.stop("a cut body")
    whole = got["chunked"].body
    want = f"stored 10 of {len(whole)} bytes"
    if a.status_line != got["chunked"].status_line or a.body != whole[:10] or \
            a.field("Tapkit-Truncated") != want or a.field("Content-Length") != "10":
        fail(f"/page.html cut at 10 bytes: {a.status_line}, {a.body!r}, Tapkit-Truncated "
             f"{a.field('Tapkit-Truncated')!r} (wanted {want!r}), fields {a.headers}")
    return ("a redacted Set-Cookie served as its marker, --set-header replaces it; a body cut at "
            f"10 bytes served with Tapkit-Truncated: {want}")


# ---------------------------------------------------------------------------------------------
# 2. The demo mesh's frontend against the mock of its backend

MESH_REQUESTS = [("/api/items", []), ("/api/items/3", []), ("/api/items/9", []),
                 ("/api/orders", ["--data-binary", '{"item":3}', "-H",
                                  "Content-Type: application/json"]),
                 ("/api/fail", [])]


def check_mesh():
    mesh = os.path.join(ROOT, "deploy", "demo", "mesh.sh")
    rec_dir, mock_dir = os.path.join(WORK, "mesh"), os.path.join(WORK, "mesh-mock")
    env = dict(os.environ)
    env.pop("MESH_BACKEND", None)
    r = run([mesh, "up", rec_dir], timeout=120, env=env)
    if r.returncode != 0:
        fail(f"mesh.sh up: {r.stderr.decode()}")
    mock = None
    try:
        pcap = os.path.join(WORK, "mesh.pcap")
        tcpdump = start_tcpdump(pcap, "host 127.0.10.1 and tcp port 8080 and "
                                "(host 127.0.20.1 or host 127.0.20.2)")
        recorded = []
        for path, args in MESH_REQUESTS:
            a = curl(MESH_FRONTEND + path, *args)
            if a.code != 0:
                fail(f"mesh: curl {path}: exit {a.code}")
            recorded.append(a)
        stop_tcpdump(tcpdump)
        run([mesh, "down", rec_dir], timeout=120)
        tap = os.path.join(WORK, "mesh.tap")
        r = run([tool("taprec"), "-r", pcap, "-Z", "root", "-w", tap])
        if r.returncode != 0:
            fail(f"taprec -r mesh.pcap: {r.stderr.decode()}")
        xs = e2e_support.exchanges(tool("tapcat"), tap)
        if sorted(x["request"]["path"] for x in xs) != sorted(p for p, _ in MESH_REQUESTS):
            fail(f"mesh: recorded {[x['request']['path'] for x in xs]}")
        mock = Mock([tap], "-o", "json", listen=MESH_BACKEND)
        r = run([mesh, "up", mock_dir], timeout=120, env=dict(env, MESH_BACKEND=MESH_BACKEND))
        if r.returncode != 0:
            fail(f"MESH_BACKEND={MESH_BACKEND} mesh.sh up: {r.stderr.decode()}")
        for (path, args), want in zip(MESH_REQUESTS, recorded):
            a = curl(MESH_FRONTEND + path, *args)
            if (a.status_line, a.body, a.field("X-Pod")) != \
                    (want.status_line, want.body, want.field("X-Pod")):
                fail(f"mesh: {path} through the frontend to the mock: {a.status_line} "
                     f"{a.body!r} X-Pod {a.field('X-Pod')}; recorded {want.status_line} "
                     f"{want.body!r} X-Pod {want.field('X-Pod')}")
        run([mesh, "down", mock_dir], timeout=120)
        log, (hits, misses, _) = mock.stop("mesh mock")
        mock = None
        events = json_log(log, "mesh mock")
        clients = {e["client"]["ip"] for e in events}
        if hits != len(MESH_REQUESTS) or misses or clients != {"127.0.10.1"}:
            fail(f"mesh mock: {hits} hits, {misses} misses, clients {clients}")
    finally:
        if mock and mock.p.poll() is None:
            mock.p.kill()
        run([mesh, "down", rec_dir], timeout=120)
        run([mesh, "down", mock_dir], timeout=120)
    return (f"the mesh's frontend pointed at the mock of its backend: {len(MESH_REQUESTS)} routes "
            "answered with the recorded status, body and X-Pod")


# ---------------------------------------------------------------------------------------------
# 3. Sequences

def check_sequences(tap, seq, xs):
    mock = Mock([tap], "--session-header", "X-Client", "-o", "json")
    got = {"a": [], "b": []}
    for _ in range(3):
        for c in "ab":
            got[c].append(curl(mock.url + "/seq", "-H", f"X-Client: {c}").body)
    log, _ = mock.stop("--session-header")
    if got != {"a": seq, "b": seq}:
        fail(f"--session-header X-Client: client a got {got['a']}, b {got['b']}; recorded {seq}")
    events = json_log(log, "--session-header")
    # Each hit names the recorded exchange it served: /seq's i-th in tapcat's order.
    ids = [x["id"] for x in xs if x["request"]["path"] == "/seq"]
    if [(e["session"], e["position"], e["sequenceLength"], e["recorded"]) for e in events] != \
            [(c, i, 3, ids[i - 1]) for i in (1, 2, 3) for c in "ab"]:
        fail(f"--session-header: logged {events}, /seq recorded as {ids}")

    mock = Mock([tap])
    shared = [curl(mock.url + "/seq", "-H", f"X-Client: {c}").body for c in "ababab"]
    mock.stop("shared sequence")
    if shared != seq + [seq[2]] * 3:
        fail(f"without --session-header: {shared}, recorded {seq}")

    mock = Mock([tap], "--strict", "--path", "/seq")
    if mock.served != 3:
        fail(f"--path /seq: serving {mock.served} exchanges, not the 3 recorded for /seq")
    strict = [curl(mock.url + "/seq") for _ in range(4)]
    other = curl(mock.url + "/data.json")
    mock.stop("--strict")
    if [a.body for a in strict[:3]] != seq or strict[3].status() != 404 or \
            not (strict[3].field("Tapkit-Miss") or "").startswith("all 3 recorded responses"):
        fail(f"--strict: {[(a.status_line, a.body, a.field('Tapkit-Miss')) for a in strict]}")
    if other.status() != 404:
        fail(f"--path /seq served /data.json: {other.status_line}")
    return ("sequences: 1,2,3 per X-Client session, 1,2,3,3,3,3 shared, --strict 404 on the 4th; "
            "--path selects")


# ---------------------------------------------------------------------------------------------
# 4. Matching options and misses

def closest(recorded, field):
    return f"no recorded request matches; closest: {recorded} (differs on {field})"


def check_misses(tap, got):
    q = "/search?q=widget&page=2&sort=price%20asc"
    mock = Mock([tap], "--match-header", "X-Tenant", "--match-body", "--ignore-param", "utm",
                "-o", "json")
    sent = []  # (target, answer, expected Tapkit-Miss or None for a hit)

    def ask(target, want_miss, *args, method=None):
        a = curl(mock.url + target, *args, *(["-X", method] if method else []))
        sent.append((method or ("POST" if "--data-binary" in args else "GET"), target, a))
        what = f"{method or 'GET'} {target} {args}"
        if want_miss is None:
            if a.status() == 404 and a.field("Tapkit-Miss"):
                fail(f"{what}: a miss ({a.field('Tapkit-Miss')}), wanted a hit")
        else:
            if a.status() != 404 or a.field("Tapkit-Miss") != want_miss:
                fail(f"{what}: {a.status_line}, Tapkit-Miss {a.field('Tapkit-Miss')!r}, "
                     f"wanted 404 and {want_miss!r}")
            text = a.body.decode(errors="replace")
            if want_miss not in text or target not in text:
                fail(f"{what}: the miss body does not say why and which request: {text!r}")
        return a

    ask("/searc?q=widget&page=2&sort=price%20asc", closest(f"GET {q}", "path"))
    ask("/search?q=widget&page=3&sort=price%20asc", closest(f"GET {q}", "query parameter page"))
    ask("/search?q=widget&page=2&sort=price%20asc", closest(f"GET {q}", "method"), method="PUT")
    ask("/tenant", closest("GET /tenant", "header X-Tenant"), "-H", "X-Tenant: red")
    hit = ask("/tenant", None, "-H", "X-Tenant: blue")
    ask("/orders", closest("POST /orders", "body"), "--data-binary",
        b'{"item":4,"qty":2,"note":"gift"}', "-H", "Content-Type: application/json")
    # JSON-aware: members in another order and other white space are the same body.
    json_hit = ask("/orders", None, "--data-binary", b'{ "note": "gift", "qty": 2, "item": 3 }',
                   "-H", "Content-Type: application/json")
    ignored = ask("/search?utm=mail&sort=price%20asc&q=widget&page=2", None)
    log, (hits, misses, _) = mock.stop("matching options")
    if (hit.body, json_hit.body, ignored.body) != \
            (got["tenant"].body, got["post"].body, got["query"].body):
        fail(f"matching options: hits answered {hit.body!r} {json_hit.body!r} {ignored.body!r}")
    events = json_log(log, "matching options")
    if len(events) != len(sent) or (hits, misses) != (3, len(sent) - 3):
        fail(f"matching options: {hits} hits, {misses} misses, {len(events)} log lines, "
             f"{len(sent)} requests")
    for e, (method, target, a) in zip(events, sent):
        miss = a.field("Tapkit-Miss")
        want = ("miss" if miss else "hit", method, target, a.status())
        if (e["event"].lower(), e["method"], e["target"], e["status"]) != want or \
                (miss and e["explanation"] != miss):
            fail(f"matching options: logged {e}, wanted {want} {miss!r}")

    # The host, with --match-host; --miss-status.
    mock = Mock([tap], "--match-host", "--miss-status", "501")
    recorded_host = f"{ADDRS['origin']}:{NGINX_PORTS['origin']}"
    same = curl(mock.url + "/data.json", host=recorded_host)
    other = curl(mock.url + "/data.json", host="other.example")
    mock.stop("--match-host")
    if same.body != got["json"].body:
        fail(f"--match-host with the recorded Host: {same.status_line} {same.body!r}")
    if other.status() != 501 or \
            other.field("Tapkit-Miss") != closest("GET /data.json", "host"):
        fail(f"--match-host --miss-status 501 with another Host: {other.status_line} "
             f"{other.field('Tapkit-Miss')!r}")
    return ("misses name the closest request and the field (path, query parameter, method, "
            "header, body, host); --ignore-param, JSON-aware --match-body; --miss-status 501; "
            "-o json log")


NGINX_PORTS = {}


# ---------------------------------------------------------------------------------------------
# 5. Pass-through to a real upstream

def check_upstream(tap, got):
    base = start_nginx("upstream", """
    location = /fresh { default_type application/json; return 200 '{"fresh":"$request_id"}\\n'; }
""")
    port, work = NGINX["upstream"]
    passed = os.path.join(WORK, "pass.tap")
    mock = Mock([tap], "--upstream", base, "-w", passed)
    fresh = curl(mock.url + "/fresh?x=1", "-H", f"Authorization: Bearer {SECRET}")
    hit = curl(mock.url + "/data.json")
    _, (hits, misses, through) = mock.stop("--upstream")
    logged = access_log(work)
    if len(logged) != 1 or logged[0][:3] != ["GET", "/fresh?x=1", "200"] or \
            logged[0][4] != f"Bearer {SECRET}":
        fail(f"--upstream: nginx's access log {logged}, wanted the one miss /fresh?x=1 with "
             "the client's Authorization")
    if fresh.status() != 200 or json.loads(fresh.body) != {"fresh": logged[0][3]}:
        fail(f"--upstream: the client got {fresh.status_line} {fresh.body!r}; nginx logged "
             f"request id {logged[0][3]}")
    if hit.body != got["json"].body or (hits, misses, through) != (1, 0, 1):
        fail(f"--upstream: hit {hit.body!r}; summary {hits} hits, {misses} misses, {through} "
             "passed through")
    info = json.loads(run([tool("tapcat"), "--info", "-o", "json", passed]).stdout)
    if info["trailer"]["state"] != "present":
        fail(f"--upstream -w: pass.tap not closed whole: {info['trailer']}")
    xs = e2e_support.exchanges(tool("tapcat"), passed)
    if len(xs) != 1 or xs[0]["request"]["path"] != "/fresh?x=1" or \
            xs[0]["response"]["httpStatus"] != 200 or \
            xs[0]["response"]["body"]["data"].encode() != fresh.body:
        fail(f"--upstream -w: pass.tap holds {xs}")
    # Written redacted by default, as taprec would: the token nginx received is not in the file.
    auth = header(xs[0]["request"]["headers"], "Authorization") or ""
    if not auth.startswith("tapkit-redacted:") or SECRET in json.dumps(xs):
        fail(f"--upstream -w: the passed-through Authorization is stored as {auth!r}")
    stop_nginx("upstream")

    # The upstream gone: a miss gets 502 naming it.
    mock = Mock([tap], "--upstream", base, "-o", "json")
    gone = curl(mock.url + "/fresh?x=2")
    log, _ = mock.stop("--upstream to a stopped nginx")
    events = json_log(log, "--upstream to a stopped nginx")
    authority = base.removeprefix("http://")
    if gone.status() != 502 or authority not in (gone.field("Tapkit-Miss") or "") or \
            [(e["event"], e["status"]) for e in events] != [("upstream-error", 502)]:
        fail(f"--upstream to a stopped nginx: {gone.status_line}, Tapkit-Miss "
             f"{gone.field('Tapkit-Miss')!r}, logged {events}")
    mock = Mock([tap, passed])
    again = curl(mock.url + "/fresh?x=1")
    mock.stop("rec.tap + pass.tap")
    if again.body != fresh.body or again.status_line != fresh.status_line:
        fail(f"rec.tap + pass.tap without upstream: {again.status_line} {again.body!r}, "
             f"passed through {fresh.body!r}")
    return ("--upstream: a miss answered by nginx (its access log) and written to pass.tap "
            "(whole after SIGTERM, Authorization redacted); served from it with nginx stopped; "
            f"502 while it is gone ({gone.field('Tapkit-Miss')})")


# ---------------------------------------------------------------------------------------------
# 6. Concurrent clients

def check_concurrent(tap, got):
    mock = Mock([tap])
    routes = [("/data.json", got["json"].body),
              ("/search?page=2&q=widget&sort=price%20asc", got["query"].body)]
    procs, wants = [], []
    for i in range(16):
        args, want = ["curl", "-sS", "--max-time", "60"], b""
        for j in range(100):
            path, body = routes[(i + j) % 2]
            args += ["-w", "|%{http_code} %{num_connects}\\n", mock.url + path]
            # One connection, kept alive for the 100 requests (curl's count of connects).
            want += body + (b"|200 1\n" if j == 0 else b"|200 0\n")
        procs.append(subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        wants.append(want)
    for i, (p, want) in enumerate(zip(procs, wants)):
        out, err = p.communicate(timeout=WAIT * 2)
        if p.returncode != 0 or out != want:
            fail(f"concurrent client {i}: exit {p.returncode} {err.decode()!r}; "
                 f"{out.count(b'|200')} of 100 answered 200, {out.count(b'|200 1')} connects")
    log, (hits, misses, _) = mock.stop("concurrent clients")
    if len(log) != 1600 or hits != 1600 or misses:
        fail(f"concurrent clients: {len(log)} log lines, {hits} hits, {misses} misses")
    return ("16 curl processes x 100 requests: all answered right on one kept-alive connection "
            "each, 1600 log lines")


# ---------------------------------------------------------------------------------------------
# 7. Delays

def check_delay(tap, xs):
    mock = Mock([tap], "--delay", "50ms")
    fixed = [curl(mock.url + "/data.json").ttfb for _ in range(3)]
    mock.stop("--delay 50ms")
    if min(fixed) < 0.050:
        fail(f"--delay 50ms: answers after {fixed} s")
    slow = [x for x in xs if x["request"]["path"] == "/slow?ms=400"]
    recorded = slow[0]["latencyNs"] / 1e9
    # slow.py waited 400 ms before answering nginx: the recorded latency is at least that.
    if recorded < 0.395:
        fail(f"recorded /slow?ms=400 latency {recorded} s")
    mock = Mock([tap], "--delay", "recorded")
    served = curl(mock.url + "/slow?ms=400").ttfb
    mock.stop("--delay recorded")
    if served < recorded - 0.005:
        fail(f"--delay recorded: /slow?ms=400 answered after {served} s, recorded {recorded} s")
    return (f"--delay 50ms: first byte after >= {min(fixed) * 1000:.0f} ms; --delay recorded: "
            f"{served * 1000:.0f} ms for a recorded {recorded * 1000:.0f} ms")


# ---------------------------------------------------------------------------------------------
# 8. The listening address

def check_listen(tap, got):
    port = e2e_support.free_port(ADDRS["bind"])
    mock = Mock([tap], listen=f"{ADDRS['bind']}:{port}")
    if mock.url != f"http://{ADDRS['bind']}:{port}":
        fail(f"--serve {ADDRS['bind']}:{port}: serving on {mock.url}")
    ok = curl(f"http://{ADDRS['bind']}:{port}/data.json")
    refused = curl(f"http://{ADDRS['other']}:{port}/data.json")
    mock.stop("--serve on one address")
    if ok.body != got["json"].body or refused.code != 7:
        fail(f"bound to {ADDRS['bind']}:{port}: {ok.status_line}; {ADDRS['other']}:{port} "
             f"curl exit {refused.code} (7: refused)")
    r = run([tool("tapreplay"), tap, "--serve", f"localhost:{port}"])
    lines = r.stderr.decode().splitlines()
    if r.returncode != 2 or len(lines) != 1 or "--serve" not in lines[0] or \
            f"localhost:{port}" not in lines[0] or r.stdout:
        fail(f"--serve localhost:{port}: exit {r.returncode}, stderr {lines}")
    return (f"listens only on {ADDRS['bind']}:{port} ({ADDRS['other']} refused); a name: exit 2, "
            f"{lines[0]!r}")


def main():
    global BUILD, WORK
    BUILD, WORK = e2e_support.start_root_test(TEST, ("nginx", "curl", "tcpdump", "ss"))
    results = []
    started = time.monotonic()
    try:
        base = start_origin(start_slow())
        NGINX_PORTS["origin"] = NGINX["origin"][0]
        tap, got, seq, _, xs = record(base)
        stop_nginx("origin")
        results.append(check_served_as_recorded(tap, got))
        results.append(check_redacted_and_cut(tap, got))
        results.append(check_sequences(tap, seq, xs))
        results.append(check_misses(tap, got))
        results.append(check_upstream(tap, got))
        results.append(check_concurrent(tap, got))
        results.append(check_delay(tap, xs))
        results.append(check_listen(tap, got))
        results.append(check_mesh())
    finally:
        for name in list(NGINX):
            stop_nginx(name)
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
    shutil.rmtree(WORK, ignore_errors=True)
    for line in results:
        print("ok: " + line)
    print(f"ok: {TEST} in {time.monotonic() - started:.1f}s")


if __name__ == "__main__":
    main()
