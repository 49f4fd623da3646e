#!/usr/bin/env python3
"""taprec -i: packets the kernel dropped are named drops in the trailer (issue 9, section 3).

Runs as root (capturing needs CAP_NET_RAW; exits 77, ctest's skip, with a message otherwise):

  1. an HTTP server in this process on a loopback address (127.0.91.1, a free port) that reads a
     POST body, pausing after the first part of it until the test says go on;
  2. taprec -i lo -B 512 (a 512 KiB capture ring) -w out.tap, filtered to that server;
  3. taprec is stopped (SIGSTOP) before curl uploads a large body: the ring fills with the
     connection's first packets and the kernel drops the rest of what passes while it is stopped;
  4. once the server has paused (the upload is still going), taprec continues (SIGCONT), the
     server reads the rest and answers, and taprec is interrupted (SIGINT) after curl finished.

Checks: taprec's stderr line (pcap_stats at close, as tcpdump prints it) says K > 0 packets were
dropped by the kernel; the trailer's kernel_dropped_packets (tapcat --info -o json) is exactly K;
the upload's exchange is recorded with completion `gap`, never `complete`. If no packet was
dropped (a very fast reader), the upload is retried larger. Every wait is bounded.

  kernel_drops_test.py BUILD_DIR
"""

import http.server
import json
import os
import re
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

SKIP = 77
ADDRESS = "127.0.91.1"
MIB = 1 << 20
# (whole upload, bytes the server reads before pausing), in bytes: tried in turn until the
# kernel drops something. The pause leaves the rest of the body (minus the socket buffers, a few
# MiB) to pass after taprec continues, so the request stream has bytes after its hole.
ATTEMPTS = [(24 * MIB, 8 * MIB), (64 * MIB, 24 * MIB), (160 * MIB, 64 * MIB)]
WAIT = 30.0  # seconds, any single wait


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def can_capture():
    if os.geteuid() != 0:
        return "not root"
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    if not int(line.split()[1], 16) & (1 << 13):  # CAP_NET_RAW
                        return "CAP_NET_RAW is missing"
    except OSError as e:
        return f"cannot read capabilities: {e}"
    return None


class Upload(http.server.BaseHTTPRequestHandler):
    """POST /upload: reads the body; after `pause_after` bytes waits for `resume`."""

    protocol_version = "HTTP/1.1"
    state = None  # set per attempt: dict of events and sizes

    def log_message(self, *args):
        pass

    def do_POST(self):
        st = Upload.state
        length = int(self.headers.get("Content-Length", "0"))
        got = 0
        paused = False
        while got < length:
            if not paused and got >= st["pause_after"]:
                paused = True
                st["paused"].set()
                if not st["resume"].wait(WAIT):
                    return  # the test gave up; curl times out
            chunk = self.rfile.read(min(1 << 16, length - got))
            if not chunk:
                break
            got += len(chunk)
        body = f"received {got}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    fail(f"timed out after {timeout:.0f}s waiting for {what}")


def stop(proc):
    if proc and proc.poll() is None:
        try:
            proc.send_signal(signal.SIGCONT)
            proc.kill()
            proc.wait(timeout=WAIT)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


def attempt(build, work, port, total, pause_after):
    """One upload while taprec is stopped. Returns (kernel drops from stderr, stderr, tap)."""
    taprec = os.path.join(build, "tools", "taprec")
    tap = os.path.join(work, f"drops-{total}.tap")
    errpath = tap + ".err"
    body = os.path.join(work, "body")
    with open(body, "wb") as f:
        f.truncate(total)  # zeros; the bytes do not matter, their count does
    st = {"paused": threading.Event(), "resume": threading.Event(), "pause_after": pause_after}
    Upload.state = st
    rec = curl = None
    try:
        with open(errpath, "wb") as err:
            rec = subprocess.Popen(
                [taprec, "-i", "lo", "-Z", "root", "-B", "512", "-w", tap,
                 f"tcp and host {ADDRESS} and port {port}"],
                stdout=subprocess.DEVNULL, stderr=err)
        # The file is created once the capture is open (taprec opens the interface first).
        wait_for(lambda: os.path.exists(tap) or rec.poll() is not None, WAIT, "taprec's file")
        if rec.poll() is not None:
            fail(f"taprec exited with {rec.returncode}: {open(errpath).read()}")
        rec.send_signal(signal.SIGSTOP)
        curl = subprocess.Popen(
            ["curl", "-sS", "-o", os.path.join(work, "response"), "-w", "%{http_code}",
             "--max-time", str(int(2 * WAIT)), "-H", "Expect:", "--data-binary", "@" + body,
             f"http://{ADDRESS}:{port}/upload"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if not st["paused"].wait(WAIT):
            fail("the server never received the first part of the upload")
        rec.send_signal(signal.SIGCONT)
        time.sleep(0.5)  # taprec drains the ring before the rest of the body comes
        st["resume"].set()
        out, cerr = curl.communicate(timeout=2 * WAIT)
        if curl.returncode != 0 or out.decode() != "200":
            fail(f"curl: exit {curl.returncode}, status {out.decode()!r}: {cerr.decode()}")
        want = f"received {total}\n"
        got = open(os.path.join(work, "response")).read()
        if got != want:
            fail(f"server answered {got!r}, expected {want!r}")
        time.sleep(1.0)  # the response's packets reach taprec
        rec.send_signal(signal.SIGINT)
        rec.wait(timeout=WAIT)
    except subprocess.TimeoutExpired as e:
        fail(f"timed out: {e}")
    finally:
        st["resume"].set()
        stop(curl)
        stop(rec)
    stderr = open(errpath).read()
    if rec.returncode != 0:
        fail(f"taprec exited with {rec.returncode}: {stderr}")
    m = re.search(r"(\d+) packets captured, (\d+) packets received by filter, "
                  r"(\d+) packets dropped by kernel", stderr)
    if not m:
        fail(f"no tcpdump-style summary line on taprec's stderr: {stderr!r}")
    ifdrop = re.search(r"(\d+) packets dropped by interface", stderr)
    return int(m.group(3)), int(ifdrop.group(1)) if ifdrop else 0, stderr, tap


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    build = sys.argv[1]
    why = can_capture()
    if why:
        print(f"SKIP: kernel_drops_test captures on lo and needs root with CAP_NET_RAW: {why}",
              flush=True)
        return SKIP
    tapcat = os.path.join(build, "tools", "tapcat")
    server = Server((ADDRESS, 0), Upload)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with tempfile.TemporaryDirectory(prefix="tapkit-drops.") as work:
            for total, pause_after in ATTEMPTS:
                dropped, ifdropped, stderr, tap = attempt(build, work, port, total, pause_after)
                print(f"upload of {total // MIB} MiB: {stderr.strip()}", flush=True)
                if dropped > 0:
                    break
                print("no packet dropped; retrying with a larger upload", flush=True)
            else:
                fail("the kernel dropped nothing even for the largest upload")

            info = subprocess.run([tapcat, "--info", "-o", "json", tap], capture_output=True,
                                  text=True, timeout=WAIT)
            if info.returncode != 0:
                fail(f"tapcat --info: exit {info.returncode}: {info.stderr}")
            obj = json.loads(info.stdout)
            drops = obj["drops"] or {}
            if drops.get("kernel_dropped_packets") != dropped:
                fail(f"trailer drops {drops}: kernel_dropped_packets should be {dropped}, as "
                     f"pcap_stats said at close")
            if drops.get("interface_dropped_packets", 0) != ifdropped:
                fail(f"trailer drops {drops}: interface_dropped_packets should be {ifdropped}")

            listing = subprocess.run([tapcat, "-o", "json", tap], capture_output=True, text=True,
                                     timeout=WAIT)
            if listing.returncode != 0:
                fail(f"tapcat -o json: exit {listing.returncode}: {listing.stderr}")
            uploads = [x for x in map(json.loads, listing.stdout.splitlines())
                       if x.get("request") and x["request"]["method"] == "POST"
                       and x["request"]["path"] == "/upload"]
            completions = [x["end"]["completion"] for x in uploads]
            if completions != ["gap"]:
                fail(f"the upload should be one exchange with completion gap, got {completions}")
            print(f"PASS: {dropped} packets dropped by the kernel, in the trailer as "
                  f"kernel_dropped_packets={dropped}; the upload is recorded as a gap", flush=True)
    finally:
        server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
