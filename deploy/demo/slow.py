#!/usr/bin/env python3
"""The demo mesh's slow dependency: answers every GET after a delay, so that the backend pods'
GET /api/slow (proxied here) takes about 1.5 s. Standard library only. Not a pod of the inventory:
a helper that mesh.sh starts and stops with the pods.

  slow.py --listen 127.0.20.9:8081 --delay 1.5 --pidfile WORKDIR/run/slow.pid

GET /healthz answers at once (mesh.sh's readiness probe); any other GET waits --delay seconds
(or ?ms=N, capped at 10 s) and answers 200 with a small JSON object. The pid file is written
once the socket is bound, and removed on SIGTERM/SIGINT."""

import argparse
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Handler(BaseHTTPRequestHandler):
    server_version = 'slow.py'
    sys_version = ''
    protocol_version = 'HTTP/1.1'  # keep-alive when the client asks for it
    delay = 1.5

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == '/healthz':
            self.reply(200, {'status': 'ok'})
            return
        delay = self.delay
        try:
            ms = parse_qs(url.query).get('ms')
            if ms:
                delay = min(max(int(ms[0]), 0), 10000) / 1000.0
        except ValueError:
            self.reply(400, {'error': 'ms must be an integer'})
            return
        time.sleep(delay)
        self.reply(200, {'status': 'ok', 'slow': True, 'delay_ms': int(delay * 1000)})

    def reply(self, status, obj):
        body = (json.dumps(obj) + '\n').encode()
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write('%s %s:%d %s\n' % (time.strftime('%Y-%m-%dT%H:%M:%S'),
                                             self.client_address[0], self.client_address[1],
                                             fmt % args))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--listen', default='127.0.20.9:8081', help='ADDR:PORT')
    ap.add_argument('--delay', type=float, default=1.5, help='seconds before answering')
    ap.add_argument('--pidfile', help='written after the socket is bound')
    args = ap.parse_args()
    host, _, port = args.listen.rpartition(':')
    Handler.delay = args.delay
    ThreadingHTTPServer.daemon_threads = True
    try:
        server = ThreadingHTTPServer((host, int(port)), Handler)
    except OSError as e:
        sys.exit(f'slow.py: cannot listen on {args.listen}: {e.strerror}')

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, so it must run on another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pidfile:
        tmp = args.pidfile + '.tmp'
        with open(tmp, 'w') as f:
            f.write(f'{os.getpid()}\n')
        os.replace(tmp, args.pidfile)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except FileNotFoundError:
                pass


if __name__ == '__main__':
    main()
