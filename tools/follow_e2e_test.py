#!/usr/bin/env python3
"""tapcat -f prints an exchange appended by a running taprec within the flush interval, and exits
0 on SIGINT (issue 11, tests).

Runs as root (taprec -i lo needs CAP_NET_RAW; exits 77, ctest's skip, with a message otherwise; a
missing nginx or curl is a skip too, but a failure under CI=true):

  1. nginx (nginx-light) on 127.0.96.1 and a free port serves /hello.json;
  2. taprec -i lo -w out.tap, filtered to that server, keeps running; tapcat -f -o json out.tap
     follows the file;
  3. each of three curl requests, one at a time, must appear in tapcat's output within the writer's
     flush interval (format::kDefaultFlushIntervalNs, 1 s) plus a margin for a loaded machine,
     with the path and status curl saw; the request before it must not be printed twice;
  4. SIGINT to tapcat: exit 0 while taprec still runs; then SIGINT to taprec: exit 0, and the
     finished file holds the same three exchanges.

  follow_e2e_test.py BUILD_DIR
"""

import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from e2e_support import NGINX_USER, SKIP, WAIT, can_capture, fail, skip, wait_for
import e2e_support

ADDRESS = "127.0.96.1"
# The writer's flush interval is 1 s (format/format.h) and AsyncWriter wakes about 100 ms after
# it; the rest is margin for a shared, loaded machine.
PRINT_WITHIN = 8.0


def start_nginx(work, port):
    www = os.path.join(work, "www")
    os.makedirs(www)
    os.chmod(work, 0o755)
    os.chmod(www, 0o755)
    with open(os.path.join(www, "hello.json"), "w") as f:
        f.write('{"hello":"world"}\n')
    os.chmod(os.path.join(www, "hello.json"), 0o644)
    conf = os.path.join(work, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""{NGINX_USER}worker_processes 1; daemon on; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; default_type application/json;
  server {{ listen {ADDRESS}:{port}; root {www}; }}
}}
""")
    subprocess.run(["nginx", "-c", conf], check=True)
    wait_for(lambda: os.path.exists(os.path.join(work, "nginx.pid")), "nginx's pid file")
    return conf


class LineReader:
    """Lines of a pipe, read without blocking past a deadline."""

    def __init__(self, pipe):
        self.fd = pipe.fileno()
        self.buf = b""

    def line(self, timeout):
        end = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(self.fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    why = can_capture()
    if why:
        print(f"SKIP: follow_e2e_test captures on lo and needs root with CAP_NET_RAW: {why}",
              flush=True)
        return SKIP
    for tool in ("nginx", "curl"):
        if not shutil.which(tool):
            skip("follow_e2e_test", f"{tool} is missing")
    taprec = os.path.join(build, "tools", "taprec")
    tapcat = os.path.join(build, "tools", "tapcat")
    port = e2e_support.free_port(ADDRESS)
    with tempfile.TemporaryDirectory(prefix="tapkit-follow.") as work:
        conf = start_nginx(work, port)
        rec = cat = None
        try:
            tap = os.path.join(work, "out.tap")
            rec = subprocess.Popen([taprec, "-i", "lo", "-Z", "root", "-w", tap,
                                    f"tcp and host {ADDRESS} and port {port}"],
                                   stdout=subprocess.DEVNULL,
                                   stderr=open(os.path.join(work, "taprec.err"), "wb"))
            wait_for(lambda: os.path.exists(tap) or rec.poll() is not None, "taprec's file")
            if rec.poll() is not None:
                fail(f"taprec exited with {rec.returncode}")
            cat = subprocess.Popen([tapcat, "-f", "-o", "json", tap], stdout=subprocess.PIPE,
                                   stderr=open(os.path.join(work, "tapcat.err"), "wb"))
            lines = LineReader(cat.stdout)
            for i in range(3):
                path = f"/hello.json?n={i}"
                got = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
                                      "--max-time", str(int(WAIT)),
                                      f"http://{ADDRESS}:{port}{path}"],
                                     stdout=subprocess.PIPE, check=True).stdout.decode()
                sent = time.monotonic()
                line = lines.line(PRINT_WITHIN)
                if line is None:
                    fail(f"request {i}: tapcat -f printed nothing within {PRINT_WITHIN:.0f}s "
                         f"(tapcat: {open(os.path.join(work, 'tapcat.err')).read()!r})")
                if got != "200":
                    fail(f"request {i}: nginx answered {got}, not 200 ({work}/error.log)")
                x = json.loads(line)
                if x["request"]["path"] != path or str(x["response"]["httpStatus"]) != got:
                    fail(f"request {i}: printed {x['request']['path']} "
                         f"{x['response']['httpStatus']}, curl sent {path} and got {got}")
                print(f"request {i}: printed {time.monotonic() - sent:.2f}s after curl returned",
                      flush=True)
            cat.send_signal(signal.SIGINT)
            cat.wait(timeout=WAIT)
            if cat.returncode != 0:
                fail(f"tapcat -f exited with {cat.returncode} on SIGINT: "
                     f"{open(os.path.join(work, 'tapcat.err')).read()}")
            if rec.poll() is not None:
                fail("taprec ended while tapcat followed its file")
            rec.send_signal(signal.SIGINT)
            rec.wait(timeout=WAIT)
            if rec.returncode != 0:
                fail(f"taprec exited with {rec.returncode}")
        finally:
            for p in (cat, rec):
                if p and p.poll() is None:
                    p.kill()
            subprocess.run(["nginx", "-c", conf, "-s", "stop"], check=False)
        whole = subprocess.run([tapcat, "-o", "json", tap], stdout=subprocess.PIPE, check=True)
        paths = [json.loads(l)["request"]["path"] for l in whole.stdout.decode().splitlines()]
        if paths != [f"/hello.json?n={i}" for i in range(3)]:
            fail(f"the finished file holds {paths}")
    print("ok: each exchange printed by tapcat -f while taprec recorded; SIGINT ended it with 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
