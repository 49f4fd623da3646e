"""What the end-to-end tests in tools/ share: failing and skipping the way ctest reads it, the
capture check, a root test's start (its build folder and work folder), running a command,
loopback ports, waiting, how nginx runs as root and the lines every test's nginx config starts
with, tcpdump on lo, and reading a capture's exchanges as tapcat -o json shows them.

A test prints "FAIL: ..." and exits 1, or "SKIP: ..." and exits 77 (ctest's SKIP_RETURN_CODE);
under CI=true a skip is a failure, since scripts/deps.sh installs every prerequisite.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SKIP = 77
WAIT = 30.0  # seconds, any single wait for a process or a file

# As root, nginx's workers would run as nobody, who may not enter the directories above the
# served files (a fresh Debian root's / is 0700): they stay root, as in deploy/demo/mesh.sh.
NGINX_USER = "user root root; " if os.geteuid() == 0 else ""


def fail(msg):
    print(f"FAIL: {msg}", flush=True)
    sys.exit(1)


def skip(test, msg):
    if os.environ.get("CI") == "true":
        fail(f"{msg} (CI=true: scripts/deps.sh installs what the test needs)")
    print(f"SKIP: {test}: {msg}", flush=True)
    sys.exit(SKIP)


def can_capture():
    """None when this process may capture on lo (root with CAP_NET_RAW), else why not."""
    if os.geteuid() != 0:
        return "not root"
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:") and not int(line.split()[1], 16) & (1 << 13):
                return "CAP_NET_RAW is missing"
    return None


def start_root_test(test, tools):
    """The start of an end-to-end test that captures on lo: sys.argv must be [script, BUILD_DIR];
    skips (77) unless this process is root and every program in `tools` is on PATH. Returns the
    absolute build folder and a fresh work folder (mode 0755, so that nginx's workers may enter
    it), which the test removes."""
    if len(sys.argv) != 2:
        fail(f"usage: {test}.py BUILD_DIR")
    build = os.path.abspath(sys.argv[1])
    if os.geteuid() != 0:
        skip(test, "needs root for tcpdump -i lo")
    for t in tools:
        if not shutil.which(t):
            skip(test, f"{t} is not installed (scripts/deps.sh)")
    work = tempfile.mkdtemp(prefix=f"{test.removesuffix('_test')}.")
    os.chmod(work, 0o755)
    return build, work


def run(cmd, timeout=WAIT * 2, **kw):
    """subprocess.run with stdout and stderr captured (bytes) and a timeout in seconds."""
    return subprocess.run(cmd, capture_output=True, timeout=timeout, **kw)


def nginx_main(work, connections=64):
    """The main context of a test's nginx config: one worker, daemonized, its pid file
    (WORK/nginx.pid) and error log in `work`, `connections` connections (64; the bench's sites
    take 1024). The config's "http {" follows."""
    return (f"{NGINX_USER}worker_processes 1; daemon on; pid {work}/nginx.pid;\n"
            f"error_log {work}/error.log;\n"
            f"events {{ worker_connections {connections}; }}\n")


def nginx_temp_paths(work):
    """The http-context lines that keep nginx's temporary files in `work` (not in a system
    folder the test may not own)."""
    return (f"  client_body_temp_path {work}/body; proxy_temp_path {work}/proxy;\n"
            f"  fastcgi_temp_path {work}/fastcgi; uwsgi_temp_path {work}/uwsgi; "
            f"scgi_temp_path {work}/scgi;\n")


def start_tcpdump(pcap, bpf):
    """tcpdump on lo writing every packet matching the filter `bpf` to `pcap`, unbuffered; returns
    once it says it is listening (the Popen), or fails the test with what it said."""
    p = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "--immediate-mode", "-w", pcap,
                          bpf], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    line = p.stderr.readline().decode()
    if "listening" not in line:
        p.kill()
        p.wait()
        fail(f"tcpdump did not start: {line}")
    return p


def stop_tcpdump(p, settle):
    """Stops tcpdump `p` after `settle` seconds (for the last packets to reach it) with SIGINT,
    which makes it write out what it holds, and waits for it to exit."""
    time.sleep(settle)
    p.send_signal(signal.SIGINT)
    p.wait(WAIT)


def free_port(address):
    with socket.socket() as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def wait_for(pred, what):
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    fail(f"timed out after {WAIT:.0f}s waiting for {what}")


def exchanges(tapcat, path):
    """The exchanges of the capture at `path` as `tapcat -o json` prints them (docs/json.md), one
    dict each; a tapcat failure fails the test."""
    r = subprocess.run([tapcat, "-o", "json", path], capture_output=True, timeout=WAIT * 2)
    if r.returncode != 0:
        fail(f"tapcat -o json {path}: exit {r.returncode}: {r.stderr.decode()}")
    return [json.loads(l) for l in r.stdout.decode().splitlines() if l.strip()]


def header(headers, name):
    """The value of the first header called `name` (any case) in an exchange's JSON "headers"
    list (None or absent: no headers), or None."""
    for h in headers or []:
        if h["name"].lower() == name.lower():
            return h["value"]
    return None
