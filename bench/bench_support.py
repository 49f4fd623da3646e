"""What the bench's Python scripts share (imported from bench/; not a program).

nginx_main(work, connections): tools/e2e_support.py's, re-exported (one nginx main context for
the tests and the bench).

stop_nginx(pidfile): stops the nginx whose master's pid is in `pidfile` gracefully (SIGQUIT, so
that its access log is complete) and waits up to `timeout` seconds for the master to exit. A
missing or unreadable pid file, or a process already gone, is nothing to stop.
"""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
from e2e_support import nginx_main  # noqa: E402,F401  (re-exported)


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
