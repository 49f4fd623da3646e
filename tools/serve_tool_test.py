#!/usr/bin/env python3
"""tapreplay --serve as a process: the help lists the mock server's flags in their own group, and
bad flags exit 2 with one line naming the flag (replay/serve_run.h). The serving itself against
real clients is serve_e2e's; here what the binary decides around it, on 127.0.110.1 with a
capture taprec -r made of fixtures/captures/keepalive-two-gets.pcap (GET /items.json twice):
the line for standard input that is a pipe, the warning when the selection keeps nothing,
--idle-timeout closing a kept-alive connection (the socket's end of file is the witness), and,
with the descriptor limit lowered by the shell's ulimit, the line when accepting fails and the
failed accepts in the summary.

  serve_tool_test.py BUILD_DIR SOURCE_DIR [sanitized|plain]

The third argument (CMake's TAPKIT_SANITIZE) says whether the build is a sanitizer build: there
the ulimit check is skipped (the sanitizer runtime needs descriptors itself).
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time

ADDR = "127.0.110.1"


def run(tapreplay, *args):
    return subprocess.run([tapreplay, *args], capture_output=True, text=True, timeout=30)


SANITIZED = len(sys.argv) > 3 and sys.argv[3] == "sanitized"


def main():
    tapreplay = f"{sys.argv[1]}/tools/tapreplay"
    failures = []

    h = run(tapreplay, "--help")
    if h.returncode != 0:
        failures.append(f"--help: exit {h.returncode}")
    group = h.stdout.split("Mock server (--serve", 1)
    if len(group) != 2:
        failures.append("--help has no 'Mock server (--serve' group")
    else:
        # The group runs to the next blank line; every serve-only flag is in it.
        body = group[1].split("\n\n", 1)[0]
        for flag in ("--serve ADDRESS:PORT", "--match-header NAME", "--match-body",
                     "--ignore-param NAME", "--match-host", "--strict", "--session-header NAME",
                     "--miss-status N", "--upstream URL", "--delay recorded|D", "--threads N",
                     "--idle-timeout D"):
            if flag not in body:
                failures.append(f"--help: {flag!r} not in the mock server group")

    # (arguments, the one error line expected on stderr)
    cases = [
        (["--serve", "localhost:8080", "in.tap"],
         "tapreplay: --serve localhost:8080: not a literal IP address and port (the mock "
         "listens on exactly the address given; no name is resolved; IPv6 in brackets: "
         "[::1]:8080)"),
        (["--serve", "127.0.0.1:0", "--target", "http://127.0.0.1:1", "in.tap"],
         "tapreplay: --target cannot be used with --serve (it belongs to replaying against "
         "--target; --serve stands in for the recorded service)"),
        (["--serve", "127.0.0.1:0", "--junit", "r.xml", "in.tap"],
         "tapreplay: --junit cannot be used with --serve (it belongs to replaying against "
         "--target; --serve stands in for the recorded service)"),
        (["--target", "http://127.0.0.1:1", "--match-body", "in.tap"],
         "tapreplay: --match-body goes with --serve ADDR:PORT (it is an option of the mock "
         "server)"),
        (["--target", "http://127.0.0.1:1", "--upstream", "http://127.0.0.1:2", "in.tap"],
         "tapreplay: --upstream goes with --serve ADDR:PORT (it is an option of the mock "
         "server)"),
        (["--serve", "127.0.0.1:0", "--miss-status", "99", "in.tap"],
         "tapreplay: --miss-status 99: out of range: give a status from 200 to 599 (RFC 9110 "
         "section 15)"),
        (["--serve", "127.0.0.1:0", "--miss-status", "600", "in.tap"],
         "tapreplay: --miss-status 600: out of range: give a status from 200 to 599 (RFC 9110 "
         "section 15)"),
        (["--serve", "127.0.0.1:0", "--miss-status", "abc", "in.tap"],
         "tapreplay: --miss-status abc: not a number (give a status from 200 to 599)"),
        (["--serve", "127.0.0.1:0", "--miss-status", "100", "in.tap"],
         "tapreplay: --miss-status 100: 1xx is interim (RFC 9110 section 15.2): it cannot end "
         "an exchange; give a final status from 200 to 599"),
        (["--serve", "127.0.0.1:0", "--threads", "32", "in.tap"],
         "tapreplay: --threads 32: not a whole number from 1 to 16"),
        (["--serve", "127.0.0.1:0", "--idle-timeout", "0", "in.tap"],
         "tapreplay: --idle-timeout 0: give a duration above 0 and at most 24h (75s, 500ms)"),
        (["--target", "http://127.0.0.1:1", "--idle-timeout", "5s", "in.tap"],
         "tapreplay: --idle-timeout goes with --serve ADDR:PORT (it is an option of the mock "
         "server)"),
        (["--serve", "127.0.0.1:0", "--delay", "soon", "in.tap"],
         "tapreplay: --delay soon: give recorded, or a duration (50ms, 1.5s)"),
        (["--serve", "127.0.0.1:0", "--delay", "100000h", "in.tap"],
         "tapreplay: --delay 100000h: above the cap of 1h (give recorded, or 50ms, 1.5s)"),
        (["--serve", "127.0.0.1:0", "-w", "out.tap", "in.tap"],
         "tapreplay: -w goes with --upstream in --serve mode (it concerns the requests passed "
         "through to the upstream)"),
        (["--serve", "127.0.0.1:0", "/nonexistent/in.tap"],
         "tapreplay: /nonexistent/in.tap: open: No such file or directory"),
    ]
    for args, want in cases:
        r = run(tapreplay, *args)
        if r.returncode != 2 or r.stderr != want + "\n" or r.stdout != "":
            failures.append(f"{' '.join(args)}: exit {r.returncode}, stderr {r.stderr!r}, "
                            f"stdout {r.stdout!r}; want exit 2 and {want!r}")

    checks = 1 + len(cases)
    if len(sys.argv) > 2:
        with tempfile.TemporaryDirectory() as work:
            checks += serving_checks(sys.argv[1], sys.argv[2], work, failures)

    for f in failures:
        print(f"FAIL: {f}")
    print(f"{checks} checks, {len(failures)} failures")
    return 1 if failures else 0


def start(argv, **kw):
    """tapreplay started with stderr a pipe; returns the process and its first stderr line."""
    p = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, **kw)
    return p, p.stderr.readline()


def serving_port(line):
    m = re.fullmatch(r"tapreplay: serving .* on http://127\.0\.110\.1:(\d+)\n", line)
    return int(m.group(1)) if m else 0


def stop(p):
    """SIGTERM; the rest of stderr and the exit code."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        p.kill()
        _, err = p.communicate()
    return err, p.returncode


def get(port, keep=False):
    """GET /items.json over a new connection; the socket (left open with keep) and the answer's
    head and body, read by Content-Length."""
    s = socket.create_connection((ADDR, port), timeout=10)
    s.sendall(b"GET /items.json HTTP/1.1\r\nHost: mock\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    m = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
    while m and len(body) < int(m.group(1)):
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    if not keep:
        s.close()
        s = None
    return s, head.decode("latin-1"), body


def serving_checks(build, source, work, failures):
    tapreplay = f"{build}/tools/tapreplay"
    tap = os.path.join(work, "two.tap")
    # As root, keep root: taprec otherwise drops to nobody, and LeakSanitizer cannot examine a
    # process that changed its user (the ASan build's taprec then exits 1 at its end).
    keep_root = ["-Z", "root"] if os.geteuid() == 0 else []
    r = subprocess.run([f"{build}/tools/taprec", "-r",
                        f"{source}/fixtures/captures/keepalive-two-gets.pcap", *keep_root, "-w",
                        tap],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        failures.append(f"taprec -r: exit {r.returncode}: {r.stderr}")
        return 1
    checks = 0

    # Standard input a pipe: said before the capture arrives, then served once it ended.
    checks += 1
    read_end, write_end = os.pipe()
    p, first = start([tapreplay, "-", "--serve", f"{ADDR}:0"], stdin=read_end)
    os.close(read_end)
    want = ("tapreplay: reading standard input to its end before serving (a live tap never "
            "ends: write it to a file first)\n")
    if first != want:
        failures.append(f"stdin a pipe: first line {first!r}, want {want!r}")
    with open(tap, "rb") as f, os.fdopen(write_end, "wb") as w:
        w.write(f.read())
    line = p.stderr.readline()
    if not serving_port(line) or "serving 2 recorded exchanges (0 skipped)" not in line:
        failures.append(f"stdin a pipe: after the capture ended {line!r}")
    stop(p)

    # Standard input a regular file: no such line.
    checks += 1
    with open(tap, "rb") as f:
        p, first = start([tapreplay, "-", "--serve", f"{ADDR}:0"], stdin=f)
    if not serving_port(first):
        failures.append(f"stdin a file: first line {first!r}, want the serving line")
    stop(p)

    # A selection that keeps nothing: warned, still served (a miss).
    checks += 1
    p, first = start([tapreplay, tap, "--serve", f"{ADDR}:0", "--method", "POST"])
    want = "tapreplay: nothing to serve: the selection matched none of 2 exchanges\n"
    if first != want:
        failures.append(f"--method POST: first line {first!r}, want {want!r}")
    port = serving_port(p.stderr.readline())
    if not port:
        failures.append("--method POST: no serving line after the warning")
    else:
        _, head, _ = get(port)
        if not head.startswith("HTTP/1.1 404 "):
            failures.append(f"--method POST: GET answered {head.splitlines()[:1]}, want a 404")
    stop(p)

    # --idle-timeout 300ms: a kept-alive connection the client leaves idle is closed (end of
    # file) no sooner than that, and long before the default 75 s.
    checks += 1
    p, first = start([tapreplay, tap, "--serve", f"{ADDR}:0", "--idle-timeout", "300ms"])
    port = serving_port(first)
    if not port:
        failures.append(f"--idle-timeout: {first!r}")
    else:
        s, head, body = get(port, keep=True)
        answered = time.monotonic()
        if not head.startswith("HTTP/1.1 200 "):
            failures.append(f"--idle-timeout: GET answered {head.splitlines()[:1]}")
        s.settimeout(20)
        try:
            rest = s.recv(100)
        except socket.timeout:
            rest = None
        idle = time.monotonic() - answered
        s.close()
        if rest != b"" or not 0.25 <= idle < 20:
            failures.append(f"--idle-timeout 300ms: recv gave {rest!r} after {idle:.2f} s, "
                            "want end of file after 0.3 s")
    stop(p)

    # Out of descriptors (ulimit -n 24, 40 connections held): one line when accepting starts
    # failing, the failed accepts in the summary, and serving again once they are closed.
    # Not in a sanitizer build: its runtime needs descriptors itself (it checks memory through a
    # pipe), and with none left UBSan reports Boost's own objects as invalid (serve_test skips
    # its descriptor test there too); the plain build runs this check.
    if SANITIZED:
        print("skip: ulimit -n 24 check (sanitizer build: its runtime needs descriptors)")
        return checks
    checks += 1
    p, first = start(["sh", "-c", f"ulimit -n 24 && exec {tapreplay} {tap} --serve {ADDR}:0"])
    port = serving_port(first)
    if not port:
        failures.append(f"ulimit -n 24: {first!r}")
        stop(p)
        return checks
    held = [socket.create_connection((ADDR, port), timeout=10) for _ in range(40)]
    time.sleep(0.5)
    for s in held:
        s.close()
    # The accept loop backs off up to 1 s; then a request is answered again.
    head = ""
    for _ in range(50):
        time.sleep(0.1)
        try:
            _, head, _ = get(port)
            break
        except OSError:
            continue
    if not head.startswith("HTTP/1.1 200 "):
        failures.append(f"ulimit -n 24: after the connections closed, GET got {head!r}")
    err, code = stop(p)
    degraded = (rf"tapreplay: accept on {re.escape(ADDR)}:{port}: Too many open files; "
                r"retrying after 50 ms, doubling up to 1 s\n")
    if len(re.findall(degraded, err)) != 1:
        failures.append(f"ulimit -n 24: want one {degraded!r} line in {err!r}")
    if not re.search(r"tapreplay: served 1 hit, 0 misses, 0 passed through, "
                     r"[1-9][0-9]* failed accepts?\n$", err) or code != 0:
        failures.append(f"ulimit -n 24: summary {err!r}, exit {code}")
    return checks


if __name__ == "__main__":
    sys.exit(main())
