"""What the bench's Python scripts share (imported from bench/; not a program).

stop_nginx(pidfile): stops the nginx whose master's pid is in `pidfile` gracefully (SIGQUIT, so
that its access log is complete) and waits up to `timeout` seconds for the master to exit. A
missing or unreadable pid file, or a process already gone, is nothing to stop.
"""

import os
import signal
import time


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
