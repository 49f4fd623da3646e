#!/usr/bin/env python3
"""The nginx site the replay benchmarks load (bench/README.md, "tapreplay"): one worker on a
loopback address, a few routes with small static bodies and one JSON document, and
/nginx_status (stub_status, not one of the routes) whose request counter is an independent count
of what the target served.

    bench/replay_site.py start WORK ADDR PORT [--access-log]   writes WORK/www, WORK/nginx.conf,
                                                               WORK/routes.lua; starts nginx
    bench/replay_site.py stop WORK
    bench/replay_site.py served ADDR PORT                      prints nginx's request counter

With --access-log, nginx logs "$msec $request_uri" per request to WORK/access.log (the pacing
bench's marker is the path's query); without it, access_log is off.
Imported by bench/replay_pacing.py; called by bench/replay_vs_wrk.sh.
"""

import json
import os
import subprocess
import sys
import time
import urllib.request

from bench_support import nginx_main, stop_nginx

# The routes: (path, body). Small static bodies and one JSON document, as a web backend serves.
ROUTES = [
    ("/healthz", None),  # nginx's own "ok" (return 200), no file
    ("/static/hello.txt", "hello from the replay bench\n"),
    ("/static/index.html",
     "<!doctype html>\n<html><head><title>tapkit bench</title></head>\n<body>\n"
     + "".join(f"<p>paragraph {i}: the quick brown fox jumps over the lazy dog.</p>\n"
               for i in range(16))
     + "</body></html>\n"),
    ("/api/items.json",
     json.dumps({"items": [{"id": i, "name": f"item {i}", "price": round(i * 1.25, 2),
                            "tags": ["bench", "replay"], "in_stock": i % 3 != 0}
                           for i in range(8)]}, indent=None) + "\n"),
]
PATHS = [p for p, _ in ROUTES]

# As root nginx's workers would run as nobody, who may not enter the work directory's parents.


def write_site(work, addr, port, access_log):
    www = os.path.join(work, "www")
    for path, body in ROUTES:
        if body is None:
            continue
        f = os.path.join(www, path.lstrip("/"))
        os.makedirs(os.path.dirname(f), exist_ok=True)
        with open(f, "w") as out:
            out.write(body)
    log = (f"log_format bench '$msec $request_uri';\n  access_log {work}/access.log bench;"
           if access_log else "access_log off;")
    conf = nginx_main(work, connections=1024) + f"""http {{
  {log}
  include /etc/nginx/mime.types;
  keepalive_requests 1000000;
  server {{
    listen {addr}:{port};
    root {www};
    location = /healthz {{ default_type text/plain; return 200 "ok\\n"; }}
    location = /nginx_status {{ stub_status; access_log off; }}
    location / {{ }}
  }}
}}
"""
    with open(os.path.join(work, "nginx.conf"), "w") as out:
        out.write(conf)
    # wrk's request() cycles the routes; the requests are formatted once, in init.
    lua = ("local paths = {" + ", ".join(f'"{p}"' for p in PATHS) + "}\n"
           "local reqs = {}\nlocal i = 0\n"
           "function init(args)\n  for k, p in ipairs(paths) do reqs[k] = wrk.format(\"GET\", p) end\nend\n"
           "function request()\n  i = i % #reqs + 1\n  return reqs[i]\nend\n")
    with open(os.path.join(work, "routes.lua"), "w") as out:
        out.write(lua)


def served(addr, port):
    """nginx's count of requests since it started (stub_status), this request included."""
    with urllib.request.urlopen(f"http://{addr}:{port}/nginx_status", timeout=5) as r:
        lines = r.read().decode().splitlines()
    # "Active connections: N", "server accepts handled requests", " A H R", ...
    return int(lines[2].split()[2])


def start(work, addr, port, access_log=False):
    os.makedirs(work, exist_ok=True)
    os.chmod(work, 0o755)
    write_site(work, addr, port, access_log)
    subprocess.run(["nginx", "-c", os.path.join(work, "nginx.conf")], check=True)
    end = time.monotonic() + 10
    while True:
        try:
            for path in PATHS:
                urllib.request.urlopen(f"http://{addr}:{port}{path}", timeout=2).read()
            return
        except OSError as e:
            if time.monotonic() > end:
                sys.exit(f"replay_site: nginx does not serve http://{addr}:{port}: {e} "
                         f"(see {work}/error.log)")
            time.sleep(0.05)


def stop(work):
    stop_nginx(os.path.join(work, "nginx.pid"))


def main(argv):
    if len(argv) >= 5 and argv[1] == "start":
        start(argv[2], argv[3], int(argv[4]), access_log="--access-log" in argv[5:])
    elif len(argv) == 3 and argv[1] == "stop":
        stop(argv[2])
    elif len(argv) == 4 and argv[1] == "served":
        print(served(argv[2], int(argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
