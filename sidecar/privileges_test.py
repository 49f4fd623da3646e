#!/usr/bin/env python3
"""tap-sidecar and taprec -i give up root once the capture is open, as tcpdump's -Z (issue 10).

Runs as root (capturing lo needs CAP_NET_RAW; exits 77, ctest's skip, with a message otherwise).
While each process captures, the test reads its credentials as the kernel reports them, in
/proc/PID/status and /proc/PID/task/TID/status for every thread, and compares them with the
user database (Python's pwd and os.getgrouplist, not tapkit's code):

  - no -Z: Uid and Gid lines (real, effective, saved, filesystem) all nobody's uid and gid,
    Groups nobody's groups, CapInh, CapPrm, CapEff, CapAmb and CapBnd all zero, NoNewPrivs 1,
    on every thread; and the capture still works: the sidecar's socket accepts a connection,
    taprec records the request the test makes to its own HTTP server (read back by tapcat);
  - -Z daemon (another Debian 12 system user): that user's uid and gid instead;
  - -Z root: Uid stays 0 and CapEff is what it was;
  - -Z NAME with no such user: exit 2 and a message naming -Z and the user;
  - not root, -Z another user: exit 2, "only root can change to another user";
  - taprec -C in a directory nobody cannot write: exit 2 naming the directory, the user and -Z;
  - the sidecar still dies with its parent (the control plane's PR_SET_PDEATHSIG, which the
    kernel clears when the uid changes and the sidecar sets again).

  privileges_test.py BUILD_DIR
"""

import ctypes
import http.server
import json
import os
import pwd
import signal
import socket
import socketserver
import subprocess
import shutil
import sys
import tempfile
import threading
import time
import unittest
import uuid

SKIP = 77
BUILD = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else "build"
SIDECAR = os.path.join(BUILD, "sidecar", "tap-sidecar")
TAPREC = os.path.join(BUILD, "tools", "taprec")
TAPCAT = os.path.join(BUILD, "tools", "tapcat")
FIXTURE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       "fixtures", "captures", "pipelined-3-gets.pcap")
ADDRESS = "127.0.93.1"  # the test's HTTP server, its own loopback address
WAIT = 15.0  # seconds, any single wait
CAP_NET_RAW = 13


def status(path):
    """A /proc status file as {field: [words]}."""
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.split()
    return out


def threads(pid):
    """Every thread's status of process pid."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            out[tid] = status(f"/proc/{pid}/task/{tid}/status")
        except FileNotFoundError:
            pass  # it ended
    return out


def wait_for(pred, what, timeout=WAIT):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def uid_of(pid):
    try:
        return status(f"/proc/{pid}/status")["Uid"][0]
    except FileNotFoundError:
        return None


class Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"hello\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Privileges(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = socketserver.ThreadingTCPServer((ADDRESS, 0), Hello)
        cls.port = cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="tapkit-privs.")  # mode 0700, root's
        self.procs = []

    def tearDown(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()
            p.errfile.close()
            p.stdout.close()
        subprocess.run(["rm", "-rf", self.tmp])

    def spawn(self, args, **kw):
        err = open(os.path.join(self.tmp, f"{uuid.uuid4().hex}.err"), "w+")
        p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=err, **kw)
        p.errfile = err
        self.procs.append(p)
        return p

    def stderr_of(self, p):
        p.errfile.seek(0)
        return p.errfile.read()

    def sidecar(self, *extra, **kw):
        sock = os.path.join(self.tmp, "s.sock")
        p = self.spawn([SIDECAR, "--listen", "unix:" + sock, "-i", "lo", "--pod-address",
                        ADDRESS, *extra], **kw)
        # Printed once the capture is open, the socket listens and the drop is done.
        wait_for(lambda: "capturing" in self.stderr_of(p) or p.poll() is not None,
                 "the sidecar's start line")
        self.assertIsNone(p.poll(), self.stderr_of(p))
        return p, sock

    def assert_became(self, pid, name):
        pw = pwd.getpwnam(name)
        uid, gid = str(pw.pw_uid), str(pw.pw_gid)
        groups = sorted(str(g) for g in os.getgrouplist(name, pw.pw_gid))
        ts = threads(pid)
        self.assertGreaterEqual(len(ts), 1)
        for tid, s in ts.items():
            where = f"{name}, thread {tid}"
            self.assertEqual(s["Uid"], [uid] * 4, where)
            self.assertEqual(s["Gid"], [gid] * 4, where)
            self.assertEqual(sorted(s["Groups"]), groups, where)
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb", "CapBnd"):
                self.assertEqual(int(s[cap][0], 16), 0, f"{where}: {cap} {s[cap]}")
            self.assertEqual(s["NoNewPrivs"], ["1"], where)

    def assert_root(self, pid):
        mine = status("/proc/self/status")
        for tid, s in threads(pid).items():
            self.assertEqual(s["Uid"], ["0"] * 4, f"thread {tid}")
            self.assertEqual(s["CapEff"], mine["CapEff"], f"thread {tid}")

    def get(self, path):
        with socket.create_connection((ADDRESS, self.port), timeout=WAIT) as c:
            c.sendall(f"GET {path} HTTP/1.1\r\nHost: privs\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := c.recv(65536):
                data += chunk
        self.assertTrue(data.startswith(b"HTTP/1.0 200") or data.startswith(b"HTTP/1.1 200"),
                        data[:80])

    # tap-sidecar

    def test_sidecar_becomes_nobody_and_still_serves(self):
        p, sock = self.sidecar()
        self.assertIn("as user nobody", self.stderr_of(p))
        self.assert_became(p.pid, "nobody")
        # The socket bound as root in a root-only directory still accepts.
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(sock)
        self.assert_became(p.pid, "nobody")  # still, after serving
        p.send_signal(signal.SIGTERM)
        self.assertEqual(p.wait(WAIT), 0, self.stderr_of(p))

    def test_sidecar_becomes_the_named_user(self):
        try:
            pwd.getpwnam("daemon")
        except KeyError:
            self.skipTest("no user daemon here")
        p, _ = self.sidecar("-Z", "daemon")
        self.assert_became(p.pid, "daemon")

    def test_sidecar_with_z_root_keeps_root(self):
        p, _ = self.sidecar("-Z", "root")
        self.assertNotIn("as user", self.stderr_of(p))
        self.assert_root(p.pid)

    def test_sidecar_unknown_user_is_a_usage_error(self):
        name = "nosuch" + uuid.uuid4().hex[:8]
        p = self.spawn([SIDECAR, "--listen", "unix:" + os.path.join(self.tmp, "s.sock"), "-i",
                        "lo", "--relinquish-privileges", name])
        self.assertEqual(p.wait(WAIT), 2)
        self.assertIn(f"-Z {name}: no such user", self.stderr_of(p))

    def test_sidecar_still_dies_with_its_parent(self):
        # As the control plane starts it: PR_SET_PDEATHSIG SIGTERM in the child before exec.
        # The uid change clears it (prctl(2)); the sidecar sets it again.
        sock = os.path.join(self.tmp, "s.sock")
        parent = self.spawn([sys.executable, "-c", f"""
import ctypes, signal, subprocess, sys
libc = ctypes.CDLL(None, use_errno=True)
p = subprocess.Popen([{SIDECAR!r}, "--listen", "unix:{sock}", "-i", "lo", "--pod-address",
                      "{ADDRESS}"], preexec_fn=lambda: libc.prctl(1, signal.SIGTERM))
print(p.pid, flush=True)
p.wait()
"""])
        pid = int(parent.stdout.readline())

        def gone():
            try:
                return status(f"/proc/{pid}/status")["State"][0] == "Z"
            except FileNotFoundError:
                return True
        try:
            wait_for(lambda: uid_of(pid) not in (None, "0"), "the sidecar's drop")
            parent.kill()
            parent.wait()
            wait_for(gone, f"sidecar {pid} to end after its parent was killed", timeout=5)
        finally:
            if not gone():
                os.kill(pid, signal.SIGKILL)  # the orphan this test made

    # taprec -i lo

    def test_taprec_interface_becomes_nobody_and_records(self):
        tap = os.path.join(self.tmp, "lo.tap")
        p = self.spawn([TAPREC, "-i", "lo", "-w", tap,
                        f"tcp port {self.port} and host {ADDRESS}"])
        wait_for(lambda: uid_of(p.pid) != "0" or p.poll() is not None, "taprec's drop")
        self.assertIsNone(p.poll(), self.stderr_of(p))
        self.assert_became(p.pid, "nobody")
        path = "/privs-" + uuid.uuid4().hex
        self.get(path)
        time.sleep(0.5)  # the capture's 2 ms blocks, the engine, the writer
        self.assert_became(p.pid, "nobody")
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(WAIT), 0, self.stderr_of(p))
        out = subprocess.run([TAPCAT, "-o", "json", tap], capture_output=True, text=True,
                             timeout=WAIT, check=True).stdout
        paths = [json.loads(l)["request"]["path"] for l in out.splitlines() if l.strip()]
        self.assertEqual(paths, [path])

    def test_taprec_with_z_root_keeps_root(self):
        tap = os.path.join(self.tmp, "root.tap")
        p = self.spawn([TAPREC, "-i", "lo", "-Z", "root", "-w", tap, f"host {ADDRESS}"])
        # The file is created once the capture is open; the drop would come right after it.
        wait_for(lambda: os.path.exists(tap) or p.poll() is not None, "taprec's file")
        time.sleep(0.3)
        self.assertIsNone(p.poll(), self.stderr_of(p))
        self.assert_root(p.pid)
        p.send_signal(signal.SIGINT)
        self.assertEqual(p.wait(WAIT), 0, self.stderr_of(p))

    def test_taprec_unknown_user_is_a_usage_error(self):
        name = "nosuch" + uuid.uuid4().hex[:8]
        for source in (["-i", "lo"], ["-r", FIXTURE]):
            p = self.spawn([TAPREC, *source, "-Z", name])
            self.assertEqual(p.wait(WAIT), 2, source)
            self.assertEqual(self.stderr_of(p), f"taprec: -Z {name}: no such user\n")

    def test_taprec_not_root_cannot_become_another_user(self):
        nobody = pwd.getpwnam("nobody")

        def become_nobody():
            os.setgroups([])
            os.setresgid(nobody.pw_gid, nobody.pw_gid, nobody.pw_gid)
            os.setresuid(nobody.pw_uid, nobody.pw_uid, nobody.pw_uid)
        # nobody must reach the program and the capture: a clone in a directory only root can
        # search (as CI's may be) leaves nothing to test here.
        try:
            probe = subprocess.run([TAPREC, "--version"], preexec_fn=become_nobody,
                                   capture_output=True, timeout=WAIT)
        except PermissionError:
            self.skipTest(f"nobody cannot run {TAPREC} (a directory on its path is root's only)")
        self.assertEqual(probe.returncode, 0, probe.stderr)
        readable = tempfile.mkdtemp(prefix="privileges_test.")
        self.addCleanup(shutil.rmtree, readable, True)
        os.chmod(readable, 0o755)
        fixture = shutil.copy(FIXTURE, os.path.join(readable, "in.pcap"))
        os.chmod(fixture, 0o644)
        p = self.spawn([TAPREC, "-r", fixture, "-Z", "daemon"],
                       preexec_fn=become_nobody)
        self.assertEqual(p.wait(WAIT), 2)
        self.assertIn("-Z daemon: only root can change to another user (running as uid "
                      f"{nobody.pw_uid} (nobody))", self.stderr_of(p))
        # Its own name, or none: nothing to change.
        for z in (["-Z", "nobody"], []):
            p = self.spawn([TAPREC, "-r", fixture, "-c", "1", *z], preexec_fn=become_nobody)
            self.assertEqual(p.wait(WAIT), 0, self.stderr_of(p))

    def test_taprec_rotation_needs_a_directory_the_user_can_write(self):
        # self.tmp is root's, mode 0700: the first file opens as root, the next ones would not.
        # The refusal comes before the -w file is opened: a capture already there stays as it was.
        tap = os.path.join(self.tmp, "rot.tap")
        with open(tap, "wb") as f:
            f.write(b"an earlier capture")
        for rotate in (["-C", "1k"], ["-G", "2"]):
            p = self.spawn([TAPREC, "-r", FIXTURE, "-w", tap, *rotate])
            self.assertEqual(p.wait(WAIT), 2)
            self.assertEqual(
                self.stderr_of(p),
                f"taprec: -w {tap}: -C and -G create the next files as user nobody (-Z), who "
                f"cannot write in {self.tmp} ({self.tmp} (mode 0700, owner uid 0) gives nobody "
                f"no write permission): use a directory nobody can write, or -Z root\n")
            with open(tap, "rb") as f:
                self.assertEqual(f.read(), b"an earlier capture")
            self.assertEqual(os.stat(tap).st_uid, 0)
        # In a directory nobody can write, nobody could have put a symbolic link at the -w name
        # (a parser it compromised in an earlier run): root must not truncate and hand over the
        # file it points to.
        os.chmod(self.tmp, 0o777)
        nobody = pwd.getpwnam("nobody")
        for d in [os.path.dirname(self.tmp)] + [os.path.dirname(p) for p in parents(self.tmp)]:
            st = os.stat(d)
            if not st.st_mode & 0o001 and st.st_uid != nobody.pw_uid:
                self.skipTest(f"nobody cannot reach {self.tmp}: {d} has mode "
                              f"{st.st_mode & 0o7777:04o} (a root whose / is root's only?)")
        os.unlink(tap)
        precious = os.path.join(self.tmp, "precious")
        with open(precious, "wb") as f:
            f.write(b"root's own file")
        os.symlink(precious, tap)
        p = self.spawn([TAPREC, "-r", FIXTURE, "-w", tap, "-C", "1k"])
        self.assertEqual(p.wait(WAIT), 2)
        self.assertIn(f"{tap}: is a symbolic link; refusing to write through it",
                      self.stderr_of(p))
        with open(precious, "rb") as f:
            self.assertEqual(f.read(), b"root's own file")
        self.assertEqual(os.stat(precious).st_uid, 0)
        os.unlink(tap)
        os.unlink(precious)
        # Every file is nobody's, the first one included.
        # tcpdump's -G 1 -W 2 on lo: a second file a second later, then the capture ends.
        p = self.spawn([TAPREC, "-i", "lo", "-w", tap, "-G", "1", "-W", "2",
                        f"tcp port {self.port} and host {ADDRESS}"])
        wait_for(lambda: uid_of(p.pid) != "0" or p.poll() is not None, "taprec's drop")
        end = time.time() + WAIT
        while p.poll() is None and time.time() < end:
            self.get("/rotate")
            time.sleep(0.05)
        self.assertEqual(p.wait(WAIT), 0, self.stderr_of(p))
        files = sorted(f for f in os.listdir(self.tmp) if f.startswith("rot"))
        self.assertEqual(files, ["rot.tap", "rot1.tap"])
        for f in files:
            self.assertEqual(os.stat(os.path.join(self.tmp, f)).st_uid,
                             pwd.getpwnam("nobody").pw_uid, f)


def parents(path):
    """Every directory above `path`, nearest first, up to /."""
    out = []
    while True:
        parent = os.path.dirname(path)
        if parent == path:
            return out
        out.append(parent)
        path = parent


def main():
    if os.geteuid() != 0:
        print("SKIP: privileges_test checks that root gives up its privileges: run it as root",
              flush=True)
        return SKIP
    eff = int(status("/proc/self/status")["CapEff"][0], 16)
    if not eff & (1 << CAP_NET_RAW):
        print("SKIP: privileges_test captures on lo: CAP_NET_RAW is missing", flush=True)
        return SKIP
    for b in (SIDECAR, TAPREC, TAPCAT):
        if not os.access(b, os.X_OK):
            print(f"FAIL: {b} is not built", flush=True)
            return 1
    result = unittest.main(exit=False, verbosity=2).result
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
