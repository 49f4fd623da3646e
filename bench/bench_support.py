"""What the bench's Python scripts share (imported from bench/; not a program).

nginx_main(work): the main context of a bench nginx config (as root, run as root so it reads the
files under `work`; one worker, daemonized, its pid file and error log in `work`, 1024
connections); the config's "http {" follows.

stop_nginx(pidfile): stops the nginx whose master's pid is in `pidfile` gracefully (SIGQUIT, so
that its access log is complete) and waits up to `timeout` seconds for the master to exit. A
missing or unreadable pid file, or a process already gone, is nothing to stop.
"""

import os
import signal
import time


def nginx_main(work):
    user = "user root root;\n" if os.geteuid() == 0 else ""
    return (f"{user}worker_processes 1;\ndaemon on;\npid {work}/nginx.pid;\n"
            f"error_log {work}/error.log;\nevents {{ worker_connections 1024; }}\n")


def stop_nginx(pidfile, timeout=10.0):
    try:
        with open(pidfile) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGQUIT)
    except (OSError, ValueError):  # no pid file, or no such process
        return
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
