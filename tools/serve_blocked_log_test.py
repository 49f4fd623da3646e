#!/usr/bin/env python3
"""tapreplay --serve with a standard output nobody reads (replay/serve_run.h): the log is written
by a thread of its own, so the mock keeps answering and SIGTERM still ends it, with the -w capture
whole.

Standard output is a FIFO the test holds open and never reads: its 64 KiB fill after a few
hundred log lines. The mock (127.0.105.11) passes every request through to python3's http.server
(127.0.105.12); curl sends 1500 requests. Every one must be answered with the upstream's file;
SIGTERM must end the process within 15 s (5 s of them for the log); `tapcat -o json` must read
1500 exchanges from the -w capture without a torn-tail notice; the summary line must count the
1500 passed through and say how many log lines were dropped.

  serve_blocked_log_test.py BUILD_DIR [TAPREPLAY]
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from e2e_support import fail, free_port, skip, wait_for

TEST = "serve_blocked_log_test"
MOCK, UPSTREAM = "127.0.105.11", "127.0.105.12"
REQUESTS = 1500
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    build = sys.argv[1]
    tapreplay = sys.argv[2] if len(sys.argv) > 2 else f"{build}/tools/tapreplay"
    tapcat = f"{build}/tools/tapcat"
    for tool in ("curl", "python3"):
        if shutil.which(tool) is None:
            skip(TEST, f"{tool} is not installed (scripts/deps.sh)")
    work = tempfile.mkdtemp(prefix="serve-blocked-")
    procs = []
    try:
        www = os.path.join(work, "www")
        os.mkdir(www)
        content = b"from the upstream\n"
        with open(os.path.join(www, "f.txt"), "wb") as f:
            f.write(content)
        up_port = free_port(UPSTREAM)
        upstream = subprocess.Popen(
            ["python3", "-m", "http.server", str(up_port), "--bind", UPSTREAM], cwd=www,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(upstream)
        wait_for(lambda: subprocess.run(
            ["curl", "-s", "-o", "/dev/null", f"http://{UPSTREAM}:{up_port}/f.txt"]).returncode
            == 0, "http.server")

        fifo = os.path.join(work, "log.fifo")
        os.mkfifo(fifo)
        reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # held open, never read
        writer = os.open(fifo, os.O_WRONLY)
        pass_tap = os.path.join(work, "pass.tap")
        err_path = os.path.join(work, "err.txt")
        with open(err_path, "wb") as err:
            mock = subprocess.Popen(
                [tapreplay, f"{ROOT}/fixtures/golden/v1.3.tap", "--serve", f"{MOCK}:0",
                 "--upstream", f"http://{UPSTREAM}:{up_port}", "-w", pass_tap],
                stdout=writer, stderr=err)
        procs.append(mock)
        os.close(writer)

        def serving():
            with open(err_path) as f:
                return re.search(r"serving .* on http://[0-9.]+:([0-9]+)\n", f.read())
        wait_for(serving, "the serving line")
        port = serving().group(1)

        # Long targets: each log line is some 300 bytes, so the FIFO is full after ~220.
        pad = "p" * 200
        got = subprocess.run(
            ["curl", "-s", "--fail-early", "--max-time", "5", "-w", "%{http_code}\n", "-o",
             "/dev/null",
             f"http://{MOCK}:{port}/f.txt?pad={pad}&n=[1-{REQUESTS}]"],
            capture_output=True, text=True, timeout=300)
        codes = got.stdout.split()
        if codes != ["200"] * REQUESTS:
            fail(f"{codes.count('200')} of {REQUESTS} requests answered 200 with the log "
                 f"blocked (codes seen: {sorted(set(codes))})")
        body = subprocess.run(["curl", "-s", "--max-time", "10", f"http://{MOCK}:{port}/f.txt"],
                              capture_output=True, timeout=30).stdout
        if body != content:
            fail(f"the mock served {body!r}, the upstream's file is {content!r}")

        started = time.monotonic()
        mock.send_signal(signal.SIGTERM)
        try:
            code = mock.wait(timeout=15)
        except subprocess.TimeoutExpired:
            fail("SIGTERM did not end tapreplay --serve within 15 s with its log blocked")
        took = time.monotonic() - started
        os.close(reader)
        with open(err_path) as f:
            err_text = f.read()
        if code != 0:
            fail(f"exit {code} after SIGTERM (want 0); stderr:\n{err_text}")
        summary = f"tapreplay: served 0 hits, 0 misses, {REQUESTS + 1} passed through\n"
        if summary not in err_text:
            fail(f"no {summary!r} on stderr:\n{err_text}")
        dropped = re.search(r"tapreplay: ([0-9]+) log lines dropped: standard output did not "
                            r"keep up\n", err_text)
        if not dropped or not 0 < int(dropped.group(1)) <= REQUESTS + 1:
            fail(f"no count of dropped log lines on stderr:\n{err_text}")

        cat = subprocess.run([tapcat, "-o", "json", pass_tap], capture_output=True, text=True,
                             timeout=60)
        if cat.returncode != 0 or cat.stderr:
            fail(f"tapcat {pass_tap}: exit {cat.returncode}: {cat.stderr}")
        rows = [json.loads(line) for line in cat.stdout.splitlines() if line.strip()]
        if len(rows) != REQUESTS + 1:
            fail(f"the -w capture holds {len(rows)} exchanges, {REQUESTS + 1} were passed "
                 "through")
        print(f"ok: {REQUESTS + 1} answered with the log blocked; SIGTERM ended it in "
              f"{took:.1f} s; {dropped.group(1)} log lines dropped; -w whole")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
