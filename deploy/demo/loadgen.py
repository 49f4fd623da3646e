#!/usr/bin/env python3
"""The demo mesh's load generator: the pod demo/loadgen-..., whose connections leave from its own
address (127.0.30.1), sending a varied mix of requests to the frontend over keep-alive connections.
Standard library only; mesh.sh load runs it in the foreground.

  loadgen.py --source 127.0.30.1 --target 127.0.10.1:8080 --seconds 5 --rate 20 \
             [--connections 2] [--seed 1] [--log FILE] [--pidfile FILE]

The mix: GET / (10%), GET /api/items (25%), GET /api/items/N for N in 1..12 where 9..12 do not
exist (40%), POST /api/orders with a small JSON body (20%), GET /api/fail (5%). Requests are spread
evenly over time across the connections; a connection that fails is reopened for the next request.
At the end (or on SIGTERM/SIGINT) it prints one summary line to stdout:

  load: 100 requests in 5.00 s (20.0/s) 127.0.30.1 -> 127.0.10.1:8080: 200=70 201=20 ... errors=0 \
        by X-Pod: backend-...=45 backend-...=40 frontend-...=15

Exit status: 0 when every request got an HTTP response (any status), 1 when some failed at the
connection level, 2 on bad arguments."""

import argparse
import collections
import http.client
import json
import os
import random
import signal
import sys
import threading
import time

ITEMS = range(1, 13)  # the backend has items 1..8; 9..12 answer 404


def pick(rng, seq):
    """One request of the mix: (method, path, body or None)."""
    r = rng.random()
    if r < 0.10:
        return 'GET', '/', None
    if r < 0.35:
        return 'GET', '/api/items', None
    if r < 0.75:
        return 'GET', f'/api/items/{rng.choice(ITEMS)}', None
    if r < 0.95:
        order = {'item': rng.choice(ITEMS[:8]), 'quantity': rng.randint(1, 5), 'seq': seq}
        return 'POST', '/api/orders', json.dumps(order).encode()
    return 'GET', '/api/fail', None


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.status = collections.Counter()
        self.pods = collections.Counter()
        self.errors = 0

    def add(self, status, pod):
        with self.lock:
            self.status[status] += 1
            if pod:
                self.pods[pod] += 1

    def error(self):
        with self.lock:
            self.errors += 1


def worker(k, args, host, port, start, stop, stats, log):
    rng = random.Random(args.seed * 1000 + k)
    conn = None
    i = 0
    headers = {'User-Agent': 'tapkit-loadgen/1', 'Accept': 'application/json'}
    while not stop.is_set():
        # Request i of this worker is due at start + (i * connections + k) / rate.
        due = start + (i * args.connections + k) / args.rate
        if due >= start + args.seconds:
            break
        if stop.wait(max(0.0, due - time.monotonic())):
            break
        method, path, body = pick(rng, i * args.connections + k)
        h = dict(headers)
        if body is not None:
            h['Content-Type'] = 'application/json'
        t0 = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, port, timeout=args.timeout,
                                                  source_address=(args.source, 0))
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            resp.read()  # drain it, so the connection can carry the next request
            pod = resp.getheader('X-Pod', '')
            stats.add(resp.status, pod)
            line = f'{method} {path} {resp.status} {pod or "-"}'
            if resp.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            stats.error()
            line = f'{method} {path} error {type(e).__name__}: {e}'
            if conn is not None:
                conn.close()
            conn = None
        if log:
            log.write(f'{time.strftime("%H:%M:%S")} c{k} {line} {1000 * (time.monotonic() - t0):.1f}ms\n')
        i += 1
    if conn is not None:
        conn.close()


def main():
    ap = argparse.ArgumentParser(description='demo mesh load generator')
    ap.add_argument('--source', default='127.0.30.1', help='local address of the connections')
    ap.add_argument('--target', default='127.0.10.1:8080', help='frontend ADDR:PORT')
    ap.add_argument('--seconds', type=float, required=True)
    ap.add_argument('--rate', type=float, default=20.0, help='requests per second, all connections')
    ap.add_argument('--connections', type=int, default=2)
    ap.add_argument('--timeout', type=float, default=10.0, help='seconds per request')
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--log', help='append one line per request to this file')
    ap.add_argument('--pidfile', help='written at start, removed at exit (for mesh.sh down)')
    args = ap.parse_args()
    if args.seconds <= 0 or args.rate <= 0 or args.connections < 1:
        ap.error('--seconds and --rate must be > 0, --connections >= 1')
    host, _, port = args.target.rpartition(':')

    if args.pidfile:
        with open(args.pidfile, 'w') as f:
            f.write(f'{os.getpid()}\n')
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda s, f: stop.set())
    signal.signal(signal.SIGINT, lambda s, f: stop.set())
    log = open(args.log, 'a', buffering=1) if args.log else None
    stats = Stats()
    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k, args, host, int(port), start, stop, stats, log))
               for k in range(args.connections)]
    try:
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            for t in threads:
                t.join(0.2)
    finally:
        stop.set()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    elapsed = time.monotonic() - start
    total = sum(stats.status.values()) + stats.errors
    codes = ' '.join(f'{c}={n}' for c, n in sorted(stats.status.items()))
    pods = ' '.join(f'{p}={n}' for p, n in sorted(stats.pods.items()))
    print(f'load: {total} requests in {elapsed:.2f} s ({total / elapsed:.1f}/s) {args.source} -> '
          f'{args.target}: {codes}{" " if codes else ""}errors={stats.errors} by X-Pod: {pods or "-"}',
          flush=True)
    return 1 if stats.errors else 0


if __name__ == '__main__':
    sys.exit(main())
