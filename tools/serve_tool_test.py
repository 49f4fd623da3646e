#!/usr/bin/env python3
"""tapreplay --serve as a process: the help lists the mock server's flags in their own group, and
bad flags exit 2 with one line naming the flag (replay/serve_run.h). The serving itself against
real clients is serve_e2e's; here only what the binary's option parsing and dispatch decide.

  serve_tool_test.py BUILD_DIR
"""

import subprocess
import sys


def run(tapreplay, *args):
    return subprocess.run([tapreplay, *args], capture_output=True, text=True, timeout=30)


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
         "tapreplay: --miss-status 99: not a final status from 200 to 599 (RFC 9110 section "
         "15: 1xx is interim)"),
        (["--serve", "127.0.0.1:0", "--threads", "32", "in.tap"],
         "tapreplay: --threads 32: not a whole number from 1 to 16"),
        (["--serve", "127.0.0.1:0", "--idle-timeout", "0", "in.tap"],
         "tapreplay: --idle-timeout 0: give a duration above 0 and at most 24h (75s, 500ms)"),
        (["--target", "http://127.0.0.1:1", "--idle-timeout", "5s", "in.tap"],
         "tapreplay: --idle-timeout goes with --serve ADDR:PORT (it is an option of the mock "
         "server)"),
        (["--serve", "127.0.0.1:0", "--delay", "soon", "in.tap"],
         "tapreplay: --delay soon: give recorded, or a duration (50ms, 1.5s)"),
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

    for f in failures:
        print(f"FAIL: {f}")
    print(f"{1 + len(cases)} checks, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
