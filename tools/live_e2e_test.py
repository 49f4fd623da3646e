#!/usr/bin/env python3
"""End-to-end tests of the live tap: real nginx pods (deploy/demo/mesh.sh), the real control
plane and sidecars, curl clients on their own loopback addresses, taprec and tapcat.

Run by ctest (tools/CMakeLists.txt) as: live_e2e_test.py BUILD_DIR. Capturing needs root
(CAP_NET_RAW): as another user every test is skipped with a message (exit code 77 for ctest).
Only 127.0.0.0/8 carries traffic. Each test asserts exact values that the test computes itself
from what curl received (status, body, the X-Pod header naming the backend pod that answered).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else os.path.join(ROOT, "build")
TAPREC = os.path.join(BUILD, "tools", "taprec")
TAPCAT = os.path.join(BUILD, "tools", "tapcat")
CONTROLPLANE = os.path.join(BUILD, "controlplane", "tap-controlplane")
MESH = os.path.join(ROOT, "deploy", "demo", "mesh.sh")
INVENTORY = os.path.join(ROOT, "deploy", "demo", "inventory.yaml")
FRONTEND = "http://127.0.10.1:8080"
CLIENT = "127.0.30.1"

WORK = None
ENV = None
CP = None


def start_controlplane(runtime_dir):
    p = subprocess.Popen([CONTROLPLANE, "--inventory", INVENTORY, "--runtime-dir", runtime_dir],
                         stderr=open(os.path.join(WORK, "controlplane.log"), "a"))
    sock = os.path.join(runtime_dir, "controlplane.sock")
    for _ in range(100):
        if os.path.exists(sock):
            return p
        time.sleep(0.1)
    p.kill()
    raise RuntimeError("the control plane did not come up: " +
                       open(os.path.join(WORK, "controlplane.log")).read())


def setUpModule():
    global WORK, ENV, CP
    if os.geteuid() != 0:
        raise unittest.SkipTest("live capture needs root (CAP_NET_RAW); run the tests as root")
    WORK = tempfile.mkdtemp(prefix="tapkit-e2e.")
    os.chmod(WORK, 0o755)
    subprocess.run([MESH, "up", os.path.join(WORK, "mesh")], check=True,
                   stdout=subprocess.DEVNULL)
    ENV = dict(os.environ, TAPKIT_RUNTIME_DIR=os.path.join(WORK, "run"))
    CP = start_controlplane(ENV["TAPKIT_RUNTIME_DIR"])


def tearDownModule():
    if CP:
        CP.terminate()
        CP.wait(10)
    if WORK:
        subprocess.run([MESH, "down", os.path.join(WORK, "mesh")], stdout=subprocess.DEVNULL)
    subprocess.run(["pkill", "-f", "tap-sidecar --listen unix:" + (WORK or "/nonexistent")])
    if WORK:
        shutil.rmtree(WORK, ignore_errors=True)


def curl(path, method="GET", data=None, headers=()):
    """One request from the client's own address; returns (status, body, headers)."""
    cmd = ["curl", "-s", "-D", "-", "--interface", CLIENT, "-X", method, FRONTEND + path]
    for h in headers:
        cmd += ["-H", h]
    if data is not None:
        cmd += ["-H", "Content-Type: application/json", "--data-binary", data]
    out = subprocess.run(cmd, check=True, capture_output=True).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, body, hdrs


def taprec(*args, **kw):
    return subprocess.Popen([TAPREC, *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, **kw)


def wait_streaming(proc, n_pods, timeout=15):
    """Reads taprec's stderr until it says it taps n pods (lines kept in proc.early_err)."""
    proc.early_err = b""
    end = time.time() + timeout
    seen = 0
    while seen < n_pods and time.time() < end:
        line = proc.stderr.readline()
        if not line:
            break
        proc.early_err += line
        seen += line.startswith(b"taprec: tapping pod ")
    if seen < n_pods:
        raise AssertionError("taprec did not start tapping: " + proc.early_err.decode())


def proc_lines(b):
    return b.decode().splitlines()


def wait_no_sidecars(timeout=10):
    run = ENV["TAPKIT_RUNTIME_DIR"]
    end = time.time() + timeout
    while time.time() < end:
        if not [f for f in os.listdir(run) if f.startswith("sidecar-")]:
            return
        time.sleep(0.05)


def exchanges(path):
    out = subprocess.run([TAPCAT, "-o", "json", path], check=True, capture_output=True).stdout
    return [json.loads(l) for l in out.decode().splitlines() if l.strip()]


def load(seconds, rate=50):
    return subprocess.Popen([MESH, "load", os.path.join(WORK, "mesh"), str(seconds), str(rate)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def header(headers, name):
    for h in headers or []:
        if h["name"].lower() == name.lower():
            return h.get("value")
    return None


class LiveTap(unittest.TestCase):
    def setUp(self):
        wait_no_sidecars()
        self.dir = tempfile.mkdtemp(dir=WORK)

    def test_request_with_unique_header_arrives_with_every_field(self):
        f = os.path.join(self.dir, "one.tap")
        tag = str(uuid.uuid4())
        t = taprec("deploy/backend", "-n", "demo", "-w", f, "--max-requests", "1", "--path",
                   "/api/orders")
        wait_streaming(t, 2)
        status, body, hdrs = curl("/api/orders", "POST", '{"item": 3, "qty": 2}',
                                  ["X-Test-Id: " + tag])
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f)
        self.assertEqual(len(xs), 1)
        x = xs[0]
        self.assertEqual(x["request"]["method"], "POST")
        self.assertEqual(x["request"]["path"], "/api/orders")
        self.assertEqual(header(x["request"]["headers"], "X-Test-Id"), tag)
        self.assertEqual(x["response"]["httpStatus"], status)
        self.assertEqual(x["response"]["body"]["data"].encode(), body)
        self.assertEqual(x["proxyDirection"], "INBOUND")
        self.assertEqual(x["source"]["ip"], "127.0.10.1")
        self.assertEqual(x["source"]["metadata"].get("deployment"), "frontend")
        self.assertEqual(x["destination"]["metadata"]["pod"], hdrs["x-pod"])
        self.assertEqual(x["destination"]["metadata"].get("deployment"), "backend")
        self.assertEqual(x["destination"]["metadata"]["namespace"], "demo")

    def test_selection_the_sidecars_cannot_evaluate_is_matched_by_taprec(self):
        # --status, --direction and --path-regex are matched by taprec on ended exchanges; -c
        # counts what they select and ends the tap (Tap.Stop), exit 0.
        f = os.path.join(self.dir, "selected.tap")
        t = taprec("deploy/frontend", "-n", "demo", "-w", f, "--status", "2xx", "--direction",
                   "in", "--path-regex", "^/api/items/[24]$", "-c", "2")
        wait_streaming(t, 1)
        want = []
        for i in range(1, 7):
            status, _, _ = curl("/api/items/%d" % i)
            if i in (2, 4) and 200 <= status <= 299:
                want.append("/api/items/%d" % i)
        self.assertEqual(want, ["/api/items/2", "/api/items/4"])
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f)
        self.assertEqual([x["request"]["path"] for x in xs], want)
        for x in xs:
            self.assertEqual(x["proxyDirection"], "INBOUND")
        info = json.loads(subprocess.run([TAPCAT, "--info", "-o", "json", f], check=True,
                                         capture_output=True).stdout)
        self.assertIn({"name": "path-regex", "value": "^/api/items/[24]$"},
                      info["metadata"]["filters"])

    def test_sidecars_redact_query_parameters_and_json_fields(self):
        # A secret in a query parameter, a JSON field and a secret header, through the frontend
        # to the backend: the sidecars redact it before it leaves them, with one marker for all.
        f = os.path.join(self.dir, "redacted.tap")
        secret = "S" + uuid.uuid4().hex
        t = taprec("deploy/backend", "-n", "demo", "-w", f, "--max-requests", "1", "--path",
                   "/api/orders", "--redact-query-param", "sid", "--redact-json-field", "/item")
        wait_streaming(t, 2)
        status, _, _ = curl("/api/orders?sid=%s&page=2" % secret, "POST",
                            '{"item": "%s", "qty": 2}' % secret, ["X-Api-Key: " + secret])
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        with open(f, "rb") as fh:
            self.assertNotIn(secret.encode(), fh.read())
        printed = subprocess.run([TAPCAT, "-o", "json", f], check=True,
                                 capture_output=True).stdout.decode()
        self.assertNotIn(secret, printed)
        x = json.loads(printed.splitlines()[0])
        self.assertEqual(x["response"]["httpStatus"], status)
        m = re.fullmatch(r"/api/orders\?sid=(tapkit-redacted:[0-9a-f]{12})&page=2",
                         x["request"]["path"])
        self.assertTrue(m, x["request"]["path"])
        body = json.loads(x["request"]["body"]["data"])
        self.assertEqual(body, {"item": m.group(1), "qty": 2})
        self.assertEqual(header(x["request"]["headers"], "X-Api-Key"), m.group(1))
        info = json.loads(subprocess.run([TAPCAT, "--info", "-o", "json", f], check=True,
                                         capture_output=True).stdout)
        self.assertEqual(info["metadata"]["redaction"]["jsonFields"], ["/item"])
        self.assertIn("sid", info["metadata"]["redaction"]["queryParams"])

    def test_to_and_from_keep_exactly_the_right_exchanges(self):
        f_to = os.path.join(self.dir, "to.tap")
        t = taprec("deploy/frontend", "-n", "demo", "-w", f_to, "--max-requests", "4", "--to",
                   "deploy/backend")
        wait_streaming(t, 1)
        for i in range(6):
            curl("/api/items/%d" % (i + 1))
            curl("/")  # served by the frontend itself: never to the backend
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f_to)
        self.assertEqual(len(xs), 4)
        for x in xs:
            self.assertEqual(x["proxyDirection"], "OUTBOUND")
            self.assertEqual(x["destination"]["metadata"].get("deployment"), "backend")
            self.assertTrue(x["request"]["path"].startswith("/api/items/"))
        wait_no_sidecars()
        f_from = os.path.join(self.dir, "from.tap")
        t = taprec("deploy/frontend", "-n", "demo", "-w", f_from, "--max-requests", "4",
                   "--from", "deploy/loadgen")
        wait_streaming(t, 1)
        for i in range(6):
            curl("/")
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f_from)
        self.assertEqual(len(xs), 4)
        for x in xs:
            self.assertEqual(x["proxyDirection"], "INBOUND")
            self.assertEqual(x["source"]["ip"], CLIENT)
            self.assertEqual(x["source"]["metadata"].get("deployment"), "loadgen")
            self.assertEqual(x["request"]["path"], "/")

    def test_max_requests_gives_exactly_n_from_both_pods(self):
        f = os.path.join(self.dir, "max.tap")
        l = load(20, 100)
        t = taprec("deploy/backend", "-n", "demo", "-w", f, "--max-requests", "37")
        _, err = t.communicate(timeout=30)
        l.terminate()
        l.wait()
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f)
        self.assertEqual(len(xs), 37)
        pods = {x["destination"]["metadata"]["pod"] for x in xs}
        self.assertEqual(pods, {"backend-7c9d4f6b8-m2n7q", "backend-7c9d4f6b8-t5w9z"})
        self.assertIn(b"taprec: 37 exchanges recorded", err)
        # The tap drained at the limit: the sidecars' last counters reached the trailer, so they
        # count at least the 37 requests written (not the state of up to a second before).
        info = subprocess.run([TAPCAT, "--info", f], check=True, capture_output=True).stdout
        requests = sum(int(n) for n in re.findall(rb"http1_requests=(\d+)", info))
        self.assertGreaterEqual(requests, 37, info)

    def test_unknown_target_fails_with_the_names_that_exist(self):
        t = taprec("deploy/backnd", "-n", "demo")
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 2)
        self.assertIn('deployment "backnd" not found in namespace "demo"; deployments there: '
                      'backend, frontend, loadgen', err.decode())

    def test_killed_sidecar_is_reported_and_the_other_pod_streams_on(self):
        f = os.path.join(self.dir, "kill.tap")
        l = load(30, 60)
        t = taprec("deploy/backend", "-n", "demo", "-w", f)
        wait_streaming(t, 2)
        time.sleep(1)
        victim = "demo/backend-7c9d4f6b8-m2n7q"
        subprocess.run(["pkill", "-KILL", "-f", "capture-point " + victim], check=True)
        killed_at = time.time_ns()
        time.sleep(2)
        t.send_signal(signal.SIGINT)
        _, err = t.communicate(timeout=20)
        l.terminate()
        l.wait()
        self.assertEqual(t.returncode, 0, err)
        self.assertIn("pod " + victim + " lost", err.decode())
        after = [x for x in exchanges(f) if x["requestTimeNs"] > killed_at + 100_000_000]
        self.assertGreater(len(after), 10)
        self.assertEqual({x["destination"]["metadata"]["pod"] for x in after},
                         {"backend-7c9d4f6b8-t5w9z"})

    def test_sigkill_of_taprec_leaves_a_readable_file(self):
        f = os.path.join(self.dir, "killed.tap")
        l = load(30, 60)
        t = taprec("deploy/backend", "-n", "demo", "-w", f)
        wait_streaming(t, 2)
        time.sleep(3)
        t.kill()
        t.communicate()
        l.terminate()
        l.wait()
        r = subprocess.run([TAPCAT, "--info", f], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        n = int([l for l in r.stdout.decode().splitlines() if l.startswith("Exchanges:")][0]
                .split()[1])
        # About 60/s for 3 s reached the backends; at most ~1 s may be lost.
        self.assertGreater(n, 60)

    def test_live_text_shows_req_before_a_slow_response(self):
        t = taprec("deploy/backend", "-n", "demo", "--path", "/api/slow", "--max-requests", "1")
        wait_streaming(t, 2)
        c = subprocess.Popen(["curl", "-s", "--interface", CLIENT, FRONTEND + "/api/slow"],
                             stdout=subprocess.DEVNULL)
        seen = {}
        # taprec is killed if the lines never come: the test then fails instead of hanging.
        watchdog = threading.Timer(20, t.kill)
        watchdog.start()
        self.addCleanup(watchdog.cancel)
        lines = []
        for line in t.stdout:
            lines.append(line.decode())
            kind = lines[-1].split(" ", 1)[0]
            seen.setdefault(kind, time.time())
            if kind == "end":
                break
        rest, _ = t.communicate(timeout=20)
        lines += rest.decode().splitlines()
        c.wait(20)
        self.assertEqual(set(seen), {"req", "rsp", "end"})
        # The backend waits 1.5 s before answering: req is printed well before rsp.
        self.assertGreater(seen["rsp"] - seen["req"], 1.0)
        # Two requests match (frontend -> backend, and the backend's own call to the slow
        # service), but --max-requests 1 gives a place to the first seen only: one req, one rsp
        # and one end, for the same exchange.
        kinds = [l.split(" ", 1)[0] for l in lines]
        self.assertEqual(kinds, ["req", "rsp", "end"], lines)
        ids = {l.split()[1] for l in lines}
        self.assertEqual(len(ids), 1, lines)

    def test_interface_capture_with_bpf_and_rotation(self):
        base = os.path.join(self.dir, "lo.tap")
        # -Z root: this test is about rotation (privileges_test covers the drop; as nobody the
        # files after the first would need a directory nobody can reach and write).
        t = subprocess.Popen([TAPREC, "-i", "lo", "-Z", "root", "-w", base, "-C", "3k",
                              "tcp port 8080 and host 127.0.20.1"], stderr=subprocess.PIPE)
        time.sleep(0.5)
        answered = 0
        end = time.time() + 3
        while time.time() < end:
            _, _, hdrs = curl("/api/items")
            answered += hdrs.get("x-pod") == "backend-7c9d4f6b8-m2n7q"
        time.sleep(1.5)
        t.send_signal(signal.SIGINT)
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        # lo.tap, lo1.tap, ...: the number before the extension.
        files = sorted(f for f in os.listdir(self.dir) if re.fullmatch(r"lo\d*\.tap", f))
        self.assertGreaterEqual(len(files), 2, files)
        total = 0
        for name in files:
            xs = exchanges(os.path.join(self.dir, name))
            for x in xs:
                self.assertEqual(x["destination"]["ip"], "127.0.20.1")
            total += len(xs)
        self.assertEqual(total, answered)

    def test_label_selector_picks_the_pods_through_the_control_plane(self):
        # ns/demo narrowed by -l app=backend: the two backend pods, not the frontend or loadgen.
        f = os.path.join(self.dir, "sel.tap")
        t = taprec("ns/demo", "-n", "demo", "-l", "app=backend", "-w", f)
        wait_streaming(t, 2)
        tapped = sorted(l.split()[-1] for l in proc_lines(t.early_err)
                        if l.startswith("taprec: tapping pod "))
        self.assertEqual(tapped, ["demo/backend-7c9d4f6b8-m2n7q", "demo/backend-7c9d4f6b8-t5w9z"])
        for i in range(6):
            curl("/api/items?sel=%d" % i)
        time.sleep(1.5)
        t.send_signal(signal.SIGINT)
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 0, err)
        xs = [x for x in exchanges(f) if "sel=" in x["request"]["path"]]
        # Each request was seen once, inbound at the backend pod that served it (the frontend's
        # side of it was not tapped).
        self.assertEqual(sorted(x["request"]["path"] for x in xs),
                         ["/api/items?sel=%d" % i for i in range(6)])
        for x in xs:
            self.assertEqual(x["proxyDirection"], "INBOUND")
            self.assertEqual(x["source"]["metadata"]["pod"], "frontend-6b7d9f5c8-x4k2p")
            self.assertIn(x["destination"]["metadata"]["pod"],
                          ("backend-7c9d4f6b8-m2n7q", "backend-7c9d4f6b8-t5w9z"))
        # A selector nothing matches names the target and the selector.
        t = taprec("ns/demo", "-n", "demo", "-l", "app=nosuch")
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 2)
        self.assertIn('target "ns/demo" has no pods matching selector "app=nosuch"', err.decode())

    def test_interface_capture_rotates_by_time_and_stops_after_count_files(self):
        # tcpdump's -G 1 -W 3: a new file every second, and the capture ends by itself after the
        # third. Nothing is lost between files: each request carries a sequence number, and
        # the files together hold an unbroken run of them from the first.
        base = os.path.join(self.dir, "g.tap")
        t = subprocess.Popen([TAPREC, "-i", "lo", "-Z", "root", "-w", base, "-G", "1", "-W", "3",
                              "tcp port 8080 and host 127.0.10.1"], stderr=subprocess.PIPE)
        time.sleep(0.5)
        sent, started = 0, {}
        deadline = time.time() + 15
        while t.poll() is None and time.time() < deadline:
            sent += 1
            started[sent] = time.time()
            curl("/", headers=("X-Seq: %d" % sent,))
        exited = time.time()
        try:
            _, err = t.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            # Killed, so that a failure here does not hold ctest until the whole test's timeout.
            t.kill()
            _, err = t.communicate()
            self.fail(f"taprec -G 1 -W 3 still ran 20 s after {sent} requests: {err.decode()}")
        self.assertEqual(t.returncode, 0, err)
        # The number before the extension: every file ends in .tap.
        self.assertEqual(sorted(f for f in os.listdir(self.dir) if f.startswith("g")),
                         ["g.tap", "g1.tap", "g2.tap"])
        seqs, last_end = [], 0
        for name in ["g.tap", "g1.tap", "g2.tap"]:
            xs = exchanges(os.path.join(self.dir, name))
            self.assertTrue(xs, name + " is empty")
            times = [x["requestTimeNs"] for x in xs]
            self.assertGreaterEqual(min(times), last_end, name + " overlaps the file before")
            last_end = max(times)
            seqs += [int(header(x["request"]["headers"], "X-Seq")) for x in xs]
        self.assertEqual(seqs, list(range(1, len(seqs) + 1)))
        # What is missing is the tail sent while the third file closed and taprec exited.
        for seq in range(len(seqs) + 1, sent + 1):
            self.assertGreater(started[seq], exited - 0.5, "request %d of %d" % (seq, sent))
        self.assertGreater(last_end - min(started.values()) * 1e9, 2e9)

    def test_ctrl_c_keeps_what_is_still_open_and_the_last_counters(self):
        # Ctrl+C stops the tap gracefully (Tap.Stop): a request still waiting for its response
        # is kept, as tcpdump keeps its packets, marked capture-ended; the sidecars' last stats
        # reach the trailer.
        f = os.path.join(self.dir, "open.tap")
        t = taprec("deploy/backend", "-n", "demo", "--path", "/api/slow", "-w", f)
        wait_streaming(t, 2)
        c = subprocess.Popen(["curl", "-s", "--interface", CLIENT, FRONTEND + "/api/slow?open=1"],
                             stdout=subprocess.DEVNULL)
        time.sleep(0.7)  # the backend answers after 1.5 s
        t.send_signal(signal.SIGINT)
        _, err = t.communicate(timeout=20)
        c.wait(20)
        self.assertEqual(t.returncode, 0, err)
        xs = [x for x in exchanges(f) if x["request"]["path"] == "/api/slow?open=1"]
        # Inbound at the backend pod, and its own call to the slow service (outbound).
        self.assertEqual(sorted(x["proxyDirection"] for x in xs), ["INBOUND", "OUTBOUND"], xs)
        for x in xs:
            self.assertEqual(x["end"]["completion"], "capture-ended")
            self.assertIsNone(x.get("response"))
        info = subprocess.run([TAPCAT, "--info", f], check=True, capture_output=True).stdout
        requests = sum(int(n) for n in re.findall(rb"http1_requests=(\d+)", info))
        self.assertEqual(requests, 2, info)
        self.assertIn(b"exchanges recorded", err)

    def test_output_reader_going_away_ends_the_tap(self):
        # taprec ... | head -2: the tap ends when head exits, as tcpdump's does.
        l = load(20, 50)
        t = taprec("deploy/backend", "-n", "demo")
        wait_streaming(t, 2)
        t.stdout.readline()
        t.stdout.readline()
        t.stdout.close()
        try:
            t.wait(10)
        finally:
            l.terminate()
            l.wait()
        self.assertEqual(t.returncode, 0, t.stderr.read())

    def test_controlplane_unreachable_is_a_clear_error_and_no_file(self):
        # The file opens once the tap has started: a tap that never started leaves none.
        f = os.path.join(self.dir, "none.tap")
        t = taprec("deploy/backend", "-n", "demo", "-w", f, "--controlplane",
                   "unix:" + os.path.join(self.dir, "nothing.sock"))
        _, err = t.communicate(timeout=30)
        self.assertEqual(t.returncode, 2)
        self.assertIn("cannot reach the control plane", err.decode())
        self.assertFalse(os.path.exists(f))

    def test_controlplane_lost_midway_finishes_the_file(self):
        run = os.path.join(self.dir, "run2")
        cp = start_controlplane(run)
        f = os.path.join(self.dir, "lost.tap")
        l = load(30, 60)
        t = subprocess.Popen([TAPREC, "deploy/backend", "-n", "demo", "-w", f],
                             env=dict(ENV, TAPKIT_RUNTIME_DIR=run), stderr=subprocess.PIPE)
        time.sleep(3)
        cp.kill()
        cp.wait()
        _, err = t.communicate(timeout=20)
        l.terminate()
        l.wait()
        subprocess.run(["pkill", "-f", "tap-sidecar --listen unix:" + run])
        self.assertEqual(t.returncode, 2)
        self.assertIn("lost the control plane", err.decode())
        r = subprocess.run([TAPCAT, "--info", f], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Trailer:          present", r.stdout.decode())

    def test_controlplane_stopped_ends_the_tap_with_an_error(self):
        # A control plane stopped with SIGTERM ends the tap on its own: the capture is cut, so
        # taprec says so and exits 2 (not 0, as for Ctrl+C or a limit), and the file is finished.
        run = os.path.join(self.dir, "run4")
        cp = start_controlplane(run)
        f = os.path.join(self.dir, "stopped.tap")
        t = subprocess.Popen([TAPREC, "deploy/backend", "-n", "demo", "-w", f],
                             env=dict(ENV, TAPKIT_RUNTIME_DIR=run), stderr=subprocess.PIPE)
        wait_streaming(t, 2)
        cp.terminate()
        cp.wait(20)
        _, err = t.communicate(timeout=20)
        self.assertEqual(t.returncode, 2, err)
        self.assertIn("ended the tap", err.decode())
        r = subprocess.run([TAPCAT, "--info", f], capture_output=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("Trailer:          present", r.stdout.decode())

    def test_service_target_and_service_label(self):
        f = os.path.join(self.dir, "svc.tap")
        l = load(20, 60)
        t = taprec("svc/backend", "-n", "demo", "-w", f, "--max-requests", "6")
        _, err = t.communicate(timeout=30)
        l.terminate()
        l.wait()
        self.assertEqual(t.returncode, 0, err)
        xs = exchanges(f)
        self.assertEqual(len(xs), 6)
        for x in xs:
            self.assertEqual(x["destination"]["metadata"].get("deployment"), "backend")
            self.assertEqual(x["destination"]["metadata"].get("service"), "backend")

    def test_max_rps_holds_back_and_counts(self):
        f = os.path.join(self.dir, "rps.tap")
        l = load(20, 100)
        t = taprec("deploy/backend", "-n", "demo", "-w", f, "--max-rps", "5")
        wait_streaming(t, 2)
        time.sleep(3)
        t.send_signal(signal.SIGINT)
        _, err = t.communicate(timeout=20)
        l.terminate()
        l.wait()
        self.assertEqual(t.returncode, 0, err)
        n = len(exchanges(f))
        self.assertGreater(n, 5)
        self.assertLessEqual(n, 5 * 4 + 5)  # 5/s for at most ~4 s, plus a burst of 5
        info = subprocess.run([TAPCAT, "--info", f], capture_output=True).stdout.decode()
        held = int(re.search(r"max_rps_held_back=(\d+)", info).group(1))
        self.assertGreater(held, 0)
        # The summary tells held back (asked for) from dropped (lost).
        self.assertIn(("taprec: %d exchanges recorded, 0 dropped, %d held back by --max-rps"
                       % (n, held)).encode(), err)

    def test_ctrl_c_while_the_tap_starts_is_a_quiet_stop(self):
        # Stopped before its sidecars stream: the drain must not call them lost.
        for sig in (signal.SIGINT, signal.SIGTERM):
            f = os.path.join(self.dir, "early.tap")
            t = taprec("deploy/backend", "-n", "demo", "-w", f)
            time.sleep(0.05)
            t.send_signal(sig)
            _, err = t.communicate(timeout=20)
            self.assertEqual(t.returncode, 0, err)
            self.assertNotIn(b"lost", err)
            self.assertIn(b"taprec: 0 exchanges recorded, 0 dropped\n", err)
            self.assertEqual(exchanges(f), [])
            wait_no_sidecars()

    def test_concurrent_taps(self):
        fa, fb = os.path.join(self.dir, "a.tap"), os.path.join(self.dir, "b.tap")
        l = load(20, 80)
        a = taprec("deploy/backend", "-n", "demo", "-w", fa, "--max-requests", "15")
        b = taprec("deploy/frontend", "-n", "demo", "-w", fb, "--max-requests", "15")
        _, ea = a.communicate(timeout=30)
        _, eb = b.communicate(timeout=30)
        l.terminate()
        l.wait()
        self.assertEqual((a.returncode, b.returncode), (0, 0), ea + eb)
        self.assertEqual(len(exchanges(fa)), 15)
        self.assertEqual(len(exchanges(fb)), 15)
        self.assertEqual({x["destination"]["metadata"].get("deployment") for x in exchanges(fa)},
                         {"backend"})

    def test_tcp_listener_needs_its_token(self):
        port = "127.0.0.1:47911"
        r = subprocess.run([CONTROLPLANE, "--inventory", INVENTORY, "--listen", port],
                           capture_output=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--token-file", r.stderr.decode())
        token = os.path.join(self.dir, "token")
        with open(token, "w") as fh:
            fh.write("s3cret-" + str(uuid.uuid4()) + "\n")
        os.chmod(token, 0o600)  # tap-controlplane refuses a token file others can read
        cp = subprocess.Popen([CONTROLPLANE, "--inventory", INVENTORY, "--listen", port,
                               "--token-file", token, "--runtime-dir",
                               os.path.join(self.dir, "run3")], stderr=subprocess.DEVNULL)
        try:
            time.sleep(1)
            t = taprec("deploy/backend", "-n", "demo", "--controlplane", port, "--max-requests",
                       "1")
            _, err = t.communicate(timeout=20)
            self.assertEqual(t.returncode, 2)
            self.assertIn("bearer token", err.decode())
            l = load(10, 40)
            t = taprec("deploy/backend", "-n", "demo", "--controlplane", port, "--token-file",
                       token, "--max-requests", "2", "-o", "json")
            out, err = t.communicate(timeout=30)
            l.terminate()
            l.wait()
            self.assertEqual(t.returncode, 0, err)
            self.assertEqual(len(out.decode().splitlines()), 2)
        finally:
            cp.terminate()
            cp.wait(10)


if __name__ == "__main__":
    try:
        unittest.main(verbosity=2)
    except unittest.SkipTest as e:
        print("SKIPPED:", e)
        sys.exit(77)
