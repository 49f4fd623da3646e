#!/usr/bin/env python3
"""bench/serve_nginx_conf.py, the baseline of the mock server's bench, against real servers.

  serve_nginx_conf_test.py BUILD_DIR

Runs as root (tcpdump -i lo; exits 77, ctest's skip, with a message otherwise, and fails instead
under CI=true; so does a missing nginx, curl or tcpdump). Every server listens on 127.0.102.0/24.

  1. bench/serve_site.py's nginx (20 routes: static JSON files, one gzip-compressed, `return`
     answers of 200, 404 and 204) is recorded with tcpdump and `taprec -r`, and kept running.
  2. The generated config passes `nginx -t` and the nginx started from it answers every route
     with the bytes the site's files hold (the gzip route: gunzip of its body; the `return`
     routes: the literals of serve_site.py), the recorded nginx's status, and the same header
     fields as the recorded nginx except Date and Server (values), Transfer-Encoding and
     Content-Length (the gzip route is chunked there, Content-Length here).
  3. `--check` passes for the two servers, and fails naming the route when one body differs.
  4. On a tapsynth capture (POST with bodies, 201 answers, queries on one path, a route recorded
     many times) the generator leaves out what nginx cannot serve, each with a line, and its
     config passes `nginx -t`.
"""

import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
sys.path.insert(0, HERE)
from e2e_support import can_capture, fail, free_port, skip  # noqa: E402
import serve_site  # noqa: E402
from bench_support import stop_nginx  # noqa: E402

TEST = "serve_nginx_conf_test"
GEN = os.path.join(HERE, "serve_nginx_conf.py")
SITE_ADDR, GEN_ADDR, BAD_ADDR = "127.0.102.21", "127.0.102.22", "127.0.102.23"


def curl(url, *extra):
    """(status, [(name lower, value)], body) as curl receives them (no decoding)."""
    with tempfile.NamedTemporaryFile() as body:
        r = subprocess.run(["curl", "-s", "-S", "--max-time", "10", "-D", "-", "-o", body.name,
                            *extra, url], capture_output=True)
        if r.returncode != 0:
            fail(f"curl {url}: {r.stderr.decode().strip()}")
        data = body.read()
    lines = r.stdout.decode("latin-1").split("\r\n")
    fields = [(l.split(":", 1)[0].lower(), l.split(":", 1)[1].strip())
              for l in lines[1:] if ":" in l]
    return int(lines[0].split()[1]), fields, data


def generate(capture, out, listen, tapcat):
    r = subprocess.run([sys.executable, GEN, "--tapcat", tapcat, "--listen", listen, capture, out],
                       capture_output=True, text=True)
    if r.returncode != 0:
        fail(f"serve_nginx_conf.py {capture}: exit {r.returncode}: {r.stderr}")
    return r.stderr


def start_nginx(conf, url):
    subprocess.run(["nginx", "-c", conf], check=True)
    serve_site.wait_http(url)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    build = sys.argv[1]
    taprec, tapcat = os.path.join(build, "tools", "taprec"), os.path.join(build, "tools", "tapcat")
    why = can_capture()
    if why:
        skip(TEST, f"tcpdump on lo: {why}")
    for tool in ("nginx", "curl", "tcpdump"):
        if shutil.which(tool) is None:
            skip(TEST, f"{tool} not found (scripts/deps.sh installs it)")
    work = tempfile.mkdtemp(prefix="serve-nginx-conf-test.")
    pidfiles = [os.path.join(work, d, "nginx.pid") for d in ("site", "gen", "bad", "synth")]
    try:
        run(work, taprec, tapcat, build)
    finally:
        for p in pidfiles:
            stop_nginx(p)
        shutil.rmtree(work, ignore_errors=True)
    print("PASS")


def run(work, taprec, tapcat, build):
    site_port, gen_port = free_port(SITE_ADDR), free_port(GEN_ADDR)
    tap = serve_site.record(work, SITE_ADDR, site_port, taprec, keep_running=True)
    site, gen_url = f"http://{SITE_ADDR}:{site_port}", f"http://{GEN_ADDR}:{gen_port}"

    # 2. The generated nginx serves what the site serves.
    notes = generate(tap, os.path.join(work, "gen"), f"{GEN_ADDR}:{gen_port}", tapcat)
    if "serve_nginx_conf: left out" in notes or "20 routes" not in notes:
        fail(f"the site's 20 routes are not all served: {notes}")
    start_nginx(os.path.join(work, "gen", "nginx.conf"), gen_url + "/healthz")
    routes = [u.split(site, 1)[1] for u in open(os.path.join(work, "site", "urls")).read().split()]
    volatile = {"date", "server", "transfer-encoding", "content-length"}
    for route in routes:
        want = serve_site.expected_body(work, route)
        s_status, s_fields, _ = curl(site + route, "-H", "Accept-Encoding: gzip")
        g_status, g_fields, g_body = curl(gen_url + route)
        if g_status != s_status:
            fail(f"GET {route}: generated nginx answers {g_status}, the site {s_status}")
        got = g_body
        if route == serve_site.GZIP_ROUTE[0]:
            if ("content-encoding", "gzip") not in g_fields:
                fail(f"GET {route}: no Content-Encoding: gzip in {g_fields}")
            got = gzip.decompress(g_body)
        if got != want:
            fail(f"GET {route}: {len(got)} bytes, not the site's {len(want)}")
        s_kept = [f for f in s_fields if f[0] not in volatile]
        g_kept = [f for f in g_fields if f[0] not in volatile]
        if sorted(s_kept) != sorted(g_kept):
            fail(f"GET {route}: header fields {sorted(g_kept)}, the site's {sorted(s_kept)}")
        length = dict(g_fields).get("content-length")
        if g_status != 204 and length != str(len(g_body)):
            fail(f"GET {route}: Content-Length {length} for {len(g_body)} bytes")

    # 3. --check: passes for equal servers, names the route that differs.
    r = subprocess.run([sys.executable, GEN, "--check", os.path.join(work, "gen"), gen_url, gen_url],
                       capture_output=True, text=True)
    if r.returncode != 0 or "all 20 routes" not in r.stderr:
        fail(f"--check of a server against itself: exit {r.returncode}: {r.stderr}")
    bad_port = free_port(BAD_ADDR)
    generate(tap, os.path.join(work, "bad"), f"{BAD_ADDR}:{bad_port}", tapcat)
    index = json.load(open(os.path.join(work, "bad", "routes.json")))
    victim = next(r for r in index if r["target"] == "/api/v1/config")
    with open(os.path.join(work, "bad", "bodies", victim["id"]), "r+b") as f:
        f.write(b"X")  # same length, another first byte
    start_nginx(os.path.join(work, "bad", "nginx.conf"), f"http://{BAD_ADDR}:{bad_port}/healthz")
    r = subprocess.run([sys.executable, GEN, "--check", os.path.join(work, "gen"), gen_url,
                        f"http://{BAD_ADDR}:{bad_port}"], capture_output=True, text=True)
    if r.returncode != 1 or "GET /api/v1/config:" not in r.stderr or "1 of 20 routes" not in r.stderr:
        fail(f"--check against a changed body: exit {r.returncode}: {r.stderr}")

    # 4. A capture with what nginx cannot serve from files.
    synth = os.path.join(build, "bench", "tapsynth")
    if not os.path.exists(synth):
        subprocess.run(["cmake", "--build", build, "--target", "tapsynth"], check=True,
                       stdout=subprocess.DEVNULL)
    synth_tap = os.path.join(work, "synth.tap")
    subprocess.run([synth, "-n", "300", "--seed", "7", "-w", synth_tap], check=True)
    notes = generate(synth_tap, os.path.join(work, "synth"), f"{GEN_ADDR}:{free_port(GEN_ADDR)}",
                     tapcat)
    kinds = {"POST /api/v1/orders": "a body on POST",
             "/api/v1/products?page=": "the query is not matched"}
    for what, why in kinds.items():
        if not any(what in line and why in line for line in notes.splitlines()):
            fail(f"tapsynth capture: no line about {what} ({why}) in: {notes}")
    if "nginx -t ok" not in notes:
        fail(f"tapsynth capture: {notes}")


if __name__ == "__main__":
    main()
