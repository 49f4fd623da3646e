"""What the end-to-end tests in tools/ share: failing and skipping the way ctest reads it, the
capture check, loopback ports, waiting, how nginx runs as root, and reading a capture's exchanges
as tapcat -o json shows them.

A test prints "FAIL: ..." and exits 1, or "SKIP: ..." and exits 77 (ctest's SKIP_RETURN_CODE);
under CI=true a skip is a failure, since scripts/deps.sh installs every prerequisite.
"""

import json
import os
import socket
import subprocess
import sys
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
