#!/usr/bin/env python3
"""Makes the small captures in fixtures/captures/ with real tools: nginx serving on 127.0.0.91 and
[::1], curl and a raw-socket client as the clients, tcpdump writing the packets; then damaged or
re-framed variants with editcap, reordercap and tcprewrite. Run as root (tcpdump, nginx), from the
repository root:  scripts/make-capture-fixtures.py
The captures are committed; sidecar/capture_fixtures_test.cc asserts the exact exchanges in each.
Needs: nginx-light curl tcpdump wireshark-common (editcap, reordercap) tcpreplay (tcprewrite)."""
import os, shutil, socket, subprocess, sys, tempfile, time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'captures')
ADDR, PORT = '127.0.0.91', 8091
ADDR2 = '127.0.0.92' 

def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)

def start_nginx(work):
    www = os.path.join(work, 'www')
    os.makedirs(www, exist_ok=True)
    os.chmod(work, 0o755); os.chmod(www, 0o755)
    with open(os.path.join(www, 'items.json'), 'w') as f:
        f.write('{"items":[' + ','.join('{"id":%d,"name":"item %d"}' % (i, i) for i in range(40)) + ']}\n')
    with open(os.path.join(www, 'small.txt'), 'w') as f:
        f.write('hello from nginx\n')
    for name in ('items.json', 'small.txt'):
        os.chmod(os.path.join(www, name), 0o644)
        os.utime(os.path.join(www, name), (1700000000, 1700000000))
    conf = os.path.join(work, 'nginx.conf')
    with open(conf, 'w') as f:
        f.write(f'''worker_processes 1; daemon on; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; default_type application/octet-stream; etag on;
  server {{ listen {ADDR}:{PORT}; listen [::1]:{PORT}; root {www};
    location = /upload {{ client_body_buffer_size 1m; proxy_pass http://{ADDR}:{PORT}/echo; }}
    location = /echo {{ return 200 "stored\\n"; }}
  }} }}
''')
    run('nginx', '-c', conf)
    time.sleep(0.3)
    return conf

class Tcpdump:
    def __init__(self, path, iface='lo', extra=()):
        # Immediate mode: without it packets wait in the kernel's block until it fills or times out,
        # and a tcpdump stopped right after a short exchange has written none of them.
        self.p = subprocess.Popen(['tcpdump', '-i', iface, '-s', '0', '-U', '--immediate-mode', '-w', path, *extra,
                                   f'tcp port {PORT}'], stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    def stop(self):
        time.sleep(1.0)
        self.p.terminate(); self.p.wait()

def segmenting_server(stop):
    """A keep-alive HTTP/1.1 server on ADDR2 that writes each response body in four pieces, 20 ms
    apart with Nagle off, so the capture holds a multi-segment body (loopback's 64 KiB MTU and
    GSO would otherwise carry any small response in one frame)."""
    import threading
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((ADDR2, PORT))
    srv.listen(4)
    srv.settimeout(0.2)
    def serve(c):
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        buf = b''
        while not stop.is_set():
            try:
                data = c.recv(65536)
            except OSError:
                break
            if not data:
                break
            buf += data
            while b'\r\n\r\n' in buf:
                head, buf = buf.split(b'\r\n\r\n', 1)
                path = head.split(b' ')[1]
                body = (b'{"items":[' + b','.join(b'{"id":%d}' % i for i in range(120)) + b']}\n'
                        if path == b'/items.json' else b'hello\n')
                c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n'
                          b'Content-Length: %d\r\n\r\n' % len(body))
                q = (len(body) + 3) // 4
                for i in range(0, len(body), q):
                    time.sleep(0.02)
                    c.sendall(body[i:i + q])
        c.close()
    def loop():
        while not stop.is_set():
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            threading.Thread(target=serve, args=(c,), daemon=True).start()
        srv.close()
    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t

def curl(*args):
    run('curl', '-s', '-o', '/dev/null', *args)

def raw(*messages, family=socket.AF_INET, host=ADDR, read_for=0.5, mss=0):
    """Sends each message and waits `read_for` seconds for the replies. A small `mss` makes the
    server cut its responses into small segments (the SYN's MSS option), as on a real network."""
    s = socket.socket(family, socket.SOCK_STREAM)
    if mss:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
    s.connect((host, PORT))
    for m in messages:
        s.sendall(m)
        time.sleep(read_for)
        s.recv(1 << 20)
    s.close()

def capture(name, action, iface='lo', extra=()):
    path = os.path.join(OUT, name)
    t = Tcpdump(path, iface, extra)
    try:
        action()
    finally:
        t.stop()
    os.chmod(path, 0o644)
    return path

def main():
    os.makedirs(OUT, exist_ok=True)
    work = tempfile.mkdtemp()
    start_nginx(work)
    base = f'http://{ADDR}:{PORT}'
    try:
        # Three requests written in one segment on one connection (pipelining).
        capture('pipelined-3-gets.pcap', lambda: raw(
            b''.join(b'GET /%s HTTP/1.1\r\nHost: fixture\r\n\r\n' % p
                     for p in (b'small.txt', b'items.json', b'missing'))))
        # A chunked request body with a trailer field, answered by nginx.
        capture('chunked-request-trailers.pcap', lambda: raw(
            b'POST /upload HTTP/1.1\r\nHost: fixture\r\nTransfer-Encoding: chunked\r\n\r\n'
            b'5\r\nhello\r\n7\r\n, world\r\n0\r\nX-Checksum: 12345\r\n\r\n'))
        # Expect: 100-continue with a 2000-byte body: 100 Continue, then 200.
        body = os.path.join(work, 'body.bin')
        with open(body, 'wb') as f:
            f.write(b'x' * 2000)
        capture('expect-100-continue.pcap', lambda: curl('-H', 'Expect: 100-continue',
                                                         '--data-binary', '@' + body, base + '/upload'))
        # HEAD (headers announce a body that is not sent) and a conditional GET answered 304.
        capture('head-and-304.pcap', lambda: (curl('-I', base + '/items.json'),
                                              curl('-H', 'If-Modified-Since: Tue, 14 Nov 2023 22:13:20 GMT',
                                                   base + '/items.json')))
        # IPv6 loopback.
        capture('ipv6-get.pcap', lambda: curl('-g', f'http://[::1]:{PORT}/small.txt'))
        # Linux cooked v2 (what tcpdump -i any writes).
        capture('sll2-get.pcap', lambda: curl(base + '/small.txt'), iface='any', extra=('-y', 'LINUX_SLL2'))
        # Two GETs on one keep-alive connection (curl), the first answered in five segments:
        # the base for the damaged variants below.
        import threading
        stop = threading.Event()
        server = segmenting_server(stop)
        capture('keepalive-two-gets.pcap', lambda: curl(f'http://{ADDR2}:{PORT}/items.json',
                                                         f'http://{ADDR2}:{PORT}/small.txt'))
        stop.set()
        server.join()
    finally:
        run('nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
        time.sleep(0.5)  # nginx removes its pid file as it exits
        shutil.rmtree(work, ignore_errors=True)

    src = os.path.join(OUT, 'keepalive-two-gets.pcap')
    def keep(name, ranges, source=src):
        out = os.path.join(OUT, name)
        run('editcap', '-r', source, out, *ranges)  # editcap: infile outfile packet-ranges
        os.chmod(out, 0o644)
        return out
    def join(name, parts):
        out = os.path.join(OUT, name)
        run('mergecap', '-a', '-w', out, *parts)
        os.chmod(out, 0o644)
        for p in parts:
            os.remove(p)
    # Frame numbers of the server's data segments, and of the second request.
    fields = subprocess.run(['tshark', '-r', src, '-T', 'fields', '-e', 'frame.number', '-e',
                             'tcp.srcport', '-e', 'tcp.len'], capture_output=True, text=True,
                            check=True).stdout.split('\n')
    rows = [tuple(int(x) for x in l.split('\t')) for l in fields if l.strip()]
    n = len(rows)
    server_data = [f for f, port, ln in rows if port == PORT and ln > 0]
    client_data = [f for f, port, ln in rows if port != PORT and ln > 0]
    first, middle = server_data[0], server_data[2]  # headers, then body pieces
    second_get = client_data[1]
    # VLAN: an 802.1Q tag (VLAN 42) in every frame.
    out = os.path.join(OUT, 'vlan-two-gets.pcap')
    run('tcprewrite', '--enet-vlan=add', '--enet-vlan-tag=42', '--enet-vlan-cfi=0',
        '--enet-vlan-pri=0', f'--infile={src}', f'--outfile={out}')
    os.chmod(out, 0o644)
    # A capture that starts mid-connection, at the second request.
    keep('midstream-second-get.pcap', [f'{second_get}-{n}'])
    # Two data segments of the first response swapped (reordered on the way): the body piece
    # after `middle` arrives before it.
    following = server_data[server_data.index(middle) + 1]
    a = keep('tmp-a.pcap', [f'1-{middle - 1}'])
    b = keep('tmp-b.pcap', [f'{following}'])
    c = keep('tmp-c.pcap', [f'{middle}-{following - 1}'])
    d = keep('tmp-d.pcap', [f'{following + 1}-{n}'])
    join('reordered-segments.pcap', [a, b, c, d])
    # A data segment of the first response seen twice (retransmitted).
    a = keep('tmp-a.pcap', [f'1-{middle}'])
    b = keep('tmp-b.pcap', [f'{middle}'])
    c = keep('tmp-c.pcap', [f'{middle + 1}-{n}'])
    join('retransmitted-segment.pcap', [a, b, c])
    # A data segment of the first response lost (missing from the capture).
    out = os.path.join(OUT, 'lost-body-segment.pcap')
    run('editcap', src, out, str(middle))
    os.chmod(out, 0o644)
    with open(os.path.join(OUT, 'README.md'), 'w') as f:
        f.write('Captures made by scripts/make-capture-fixtures.py with nginx, a raw-socket client and\n'
                'tcpdump on loopback, and variants cut with editcap, mergecap and tcprewrite.\n'
                f'keepalive-two-gets.pcap: server data segments at frames {server_data}, second GET at\n'
                f'frame {second_get}; the variants repeat or drop frame {middle}, or move frame\n'
                f'{following} before it.\n'
                'sidecar/capture_fixtures_test.cc asserts the exact exchanges of each.\n')
    print('wrote', sorted(os.listdir(OUT)))

if __name__ == '__main__':
    if os.geteuid() != 0:
        sys.exit('run as root (tcpdump and nginx need it)')
    main()
