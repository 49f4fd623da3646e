#!/usr/bin/env python3
"""tap-controlplane's command line: each case checks the exit code and the key words of the
message (exit 2, tapkit::kExitError, for every error, as in every tapkit program).

  --help            exit 0, "Usage: tap-controlplane [options]" and what it does
  --version         exit 0, "tap-controlplane (tapkit) X.Y.Z"
  no --inventory    exit 2, names the flag
  busy socket       a second control plane on the controlplane.sock another one listens on:
                    exit 2, "another control plane is listening there"
  runtime directory owned by another user (as root: chowned to nobody), mode 0777, a symbolic
                    link: exit 2, names the directory and what is wrong
  token file        mode 0644 for a TCP listener: exit 2, names the file and its mode

Everything happens in the test's own temporary directory. Sidecars are never started (--sidecar
/bin/true only has to be executable).

The client side (taprec, which root runs): a runtime directory another user made first, holding
their own listening controlplane.sock, is refused before anything connects to that socket (exit
2, names the directory); a token file others can read is refused the same way.

  tap_controlplane_test.py TAP_CONTROLPLANE INVENTORY TAPREC
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 3 else None
INVENTORY = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 2 else None
TAPREC = os.path.abspath(sys.argv.pop(1)) if len(sys.argv) > 1 else None
WAIT = 20.0  # seconds, any single wait


def run(*args, env=None):
    return subprocess.run([BIN, *args], capture_output=True, timeout=WAIT, env=env)


class ControlPlaneCli(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tap_controlplane_test.")
        self.env = dict(os.environ, TAPKIT_RUNTIME_DIR=os.path.join(self.dir, "run"))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_help_has_a_usage_line(self):
        r = run("--help")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout.decode()
        self.assertTrue(out.startswith("Usage: tap-controlplane [options]\n"), out)
        self.assertIn("control plane", out)
        self.assertIn("--inventory", out)

    def test_version(self):
        r = run("--version")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"^tap-controlplane \(tapkit\) \d+\.\d+\.\d+\n$")

    def test_missing_inventory_is_a_usage_error(self):
        r = run(env=self.env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("inventory", r.stderr.decode())

    def test_second_control_plane_on_a_busy_socket_exits_2(self):
        first = subprocess.Popen([BIN, "--inventory", INVENTORY, "--sidecar", "/bin/true"],
                                 env=self.env, stderr=subprocess.PIPE)
        try:
            sock = os.path.join(self.env["TAPKIT_RUNTIME_DIR"], "controlplane.sock")
            end = time.time() + WAIT
            while not os.path.exists(sock) and time.time() < end and first.poll() is None:
                time.sleep(0.05)
            self.assertTrue(os.path.exists(sock), "the first control plane did not listen")
            r = run("--inventory", INVENTORY, "--sidecar", "/bin/true", env=self.env)
            self.assertEqual(r.returncode, 2, r.stderr)
            err = r.stderr.decode()
            self.assertIn(sock, err)
            self.assertIn("another control plane is listening there", err)
            self.assertEqual(len(err.splitlines()), 1, err)
            self.assertIsNone(first.poll(), "the first one must keep running")
        finally:
            first.send_signal(signal.SIGTERM)
            _, err = first.communicate(timeout=WAIT)
        self.assertEqual(first.returncode, 0, err)

    def refused(self, what):
        run_dir = self.env["TAPKIT_RUNTIME_DIR"]
        r = run("--inventory", INVENTORY, "--sidecar", "/bin/true", env=self.env)
        self.assertEqual(r.returncode, 2, r.stderr)
        err = r.stderr.decode()
        self.assertIn("runtime directory " + run_dir + " is refused", err)
        self.assertIn(what, err)
        self.assertFalse(os.path.exists(os.path.join(run_dir, "controlplane.sock")))
        # --runtime-dir is checked the same way.
        r = run("--inventory", INVENTORY, "--sidecar", "/bin/true", "--runtime-dir", run_dir)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn(what, r.stderr.decode())

    def test_runtime_dir_of_another_user_is_refused(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to give a directory to another user")
        run_dir = self.env["TAPKIT_RUNTIME_DIR"]
        os.mkdir(run_dir, 0o700)
        os.chown(run_dir, 65534, 65534)
        self.refused("owned by uid 65534, not by uid 0")

    def test_runtime_dir_open_to_others_is_refused(self):
        run_dir = self.env["TAPKIT_RUNTIME_DIR"]
        os.mkdir(run_dir)
        os.chmod(run_dir, 0o777)
        self.refused("mode 0777")

    def test_runtime_dir_symlink_is_refused(self):
        real = os.path.join(self.dir, "elsewhere")
        os.mkdir(real, 0o700)
        os.symlink(real, self.env["TAPKIT_RUNTIME_DIR"])
        self.refused("symbolic link")

    def test_runtime_dir_symlink_with_a_trailing_slash_is_refused(self):
        # lstat("link/") follows the link: the check must not.
        real = os.path.join(self.dir, "elsewhere")
        os.mkdir(real, 0o700)
        os.symlink(real, self.env["TAPKIT_RUNTIME_DIR"])
        self.env["TAPKIT_RUNTIME_DIR"] += "/"
        self.refused("symbolic link")

    def test_runtime_dir_is_created_private(self):
        p = subprocess.Popen([BIN, "--inventory", INVENTORY, "--sidecar", "/bin/true"],
                             env=self.env, stderr=subprocess.PIPE)
        try:
            sock = os.path.join(self.env["TAPKIT_RUNTIME_DIR"], "controlplane.sock")
            end = time.time() + WAIT
            while not os.path.exists(sock) and time.time() < end and p.poll() is None:
                time.sleep(0.05)
            st = os.lstat(self.env["TAPKIT_RUNTIME_DIR"])
            self.assertEqual(st.st_mode & 0o7777, 0o700)
            self.assertEqual(os.lstat(sock).st_mode & 0o777, 0o600)
        finally:
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=WAIT)
        self.assertEqual(p.returncode, 0)

    def test_token_file_readable_by_others_is_refused(self):
        token = os.path.join(self.dir, "token")
        with open(token, "w") as f:
            f.write("s3cret\n")
        os.chmod(token, 0o644)
        r = run("--inventory", INVENTORY, "--sidecar", "/bin/true", "--listen", "127.0.0.1:0",
                "--token-file", token, env=self.env)
        self.assertEqual(r.returncode, 2, r.stderr)
        err = r.stderr.decode()
        self.assertIn("--token-file: token file " + token + " has mode 0644", err)
        self.assertIn("chmod 600", err)



class TaprecClient(unittest.TestCase):
    """The other user's planted socket, seen from root's taprec."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="tap_controlplane_test.")
        self.run_dir = os.path.join(self.dir, "run")
        self.env = dict(os.environ, TAPKIT_RUNTIME_DIR=self.run_dir)

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def taprec(self, *args):
        return subprocess.run([TAPREC, "deploy/backend", "-n", "demo", "-w",
                               os.path.join(self.dir, "out.tap"), *args],
                              capture_output=True, timeout=WAIT, env=self.env)

    def test_planted_socket_of_another_user_is_never_used(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to play the other user (chown to nobody)")
        os.mkdir(self.run_dir, 0o700)
        planted = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        planted.bind(os.path.join(self.run_dir, "controlplane.sock"))
        planted.listen(8)
        planted.setblocking(False)
        os.chown(os.path.join(self.run_dir, "controlplane.sock"), 65534, 65534)
        os.chown(self.run_dir, 65534, 65534)
        try:
            r = self.taprec()
            self.assertEqual(r.returncode, 2, r.stderr)
            err = r.stderr.decode()
            self.assertIn(self.run_dir, err)
            self.assertIn("owned by uid 65534, not by uid 0", err)
            self.assertEqual(len(err.splitlines()), 1, err)
            with self.assertRaises(BlockingIOError):
                planted.accept()  # taprec never connected
        finally:
            planted.close()
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out.tap")))

    def test_runtime_dir_open_to_others_is_refused(self):
        os.mkdir(self.run_dir)
        os.chmod(self.run_dir, 0o777)
        r = self.taprec()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("mode 0777", r.stderr.decode())

    def test_token_file_readable_by_others_is_refused(self):
        token = os.path.join(self.dir, "token")
        with open(token, "w") as f:
            f.write("s3cret\n")
        os.chmod(token, 0o640)
        r = self.taprec("--controlplane", "127.0.0.1:9", "--token-file", token)
        self.assertEqual(r.returncode, 2, r.stderr)
        err = r.stderr.decode()
        self.assertIn("--token-file", err)
        self.assertIn(token + " has mode 0640", err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "out.tap")))


if __name__ == "__main__":
    if not BIN or not INVENTORY or not TAPREC:
        print(__doc__)
        sys.exit(2)
    unittest.main(verbosity=2)
