#!/usr/bin/env python3
"""Makes the small captures in fixtures/captures/ with real tools: nginx serving on 127.0.0.91 and
[::1], curl and a raw-socket client as the clients, tcpdump writing the packets; then damaged or
re-framed variants with editcap, reordercap and tcprewrite. Run as root (tcpdump, nginx), from the
repository root:  scripts/make-capture-fixtures.py [base|nflog|pflog|pairing|rfc ...]  (default: all of them;
`base` is the loopback set, `nflog` and `pflog` the captures of those link types, `pairing` and
`rfc` the pairing and RFC 9112 cases of issue 9 on 127.0.0.93, `h2c` an h2c Upgrade on 127.0.0.94;
see their functions)
The captures are committed; sidecar/capture_fixtures_test.cc asserts the exact exchanges in each.
Needs: nginx-light curl tcpdump wireshark-common (editcap, reordercap) tcpreplay (tcprewrite),
iproute2 and nftables for the NFLOG capture, nghttp2-client nghttp2-server nghttp2-proxy for h2c."""
import os, shutil, socket, subprocess, sys, tempfile, time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'captures')
ADDR, PORT = '127.0.0.91', 8091
ADDR2 = '127.0.0.92' 

# As root, nginx's workers would run as nobody, who may not enter the directories above the
# served files (a fresh Debian root's / is 0700): they stay root, as in deploy/demo/mesh.sh.
NGINX_USER = "user root root; " if os.geteuid() == 0 else ""


def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)

def start_nginx(work, prefix=(), addr=ADDR, v6=True, files=None):
    """nginx on addr:PORT (and [::1]:PORT when `v6`) serving items.json, small.txt and `files`
    (name: content), every file dated 2023-11-14 so its Last-Modified and ETag never change."""
    www = os.path.join(work, 'www')
    os.makedirs(www, exist_ok=True)
    os.chmod(work, 0o755); os.chmod(www, 0o755)
    with open(os.path.join(www, 'items.json'), 'w') as f:
        f.write('{"items":[' + ','.join('{"id":%d,"name":"item %d"}' % (i, i) for i in range(40)) + ']}\n')
    with open(os.path.join(www, 'small.txt'), 'w') as f:
        f.write('hello from nginx\n')
    for name, content in (files or {}).items():
        with open(os.path.join(www, name), 'w') as f:
            f.write(content)
    for name in ('items.json', 'small.txt', *(files or {})):
        os.chmod(os.path.join(www, name), 0o644)
        os.utime(os.path.join(www, name), (1700000000, 1700000000))
    conf = os.path.join(work, 'nginx.conf')
    listen6 = f'listen [::1]:{PORT};' if v6 else ''
    with open(conf, 'w') as f:
        f.write(f'''{NGINX_USER}worker_processes 1; daemon on; pid {work}/nginx.pid; error_log {work}/error.log;
events {{ worker_connections 64; }}
http {{ access_log off; default_type application/octet-stream; etag on;
  server {{ listen {addr}:{PORT}; {listen6} root {www};
    location = /upload {{ client_body_buffer_size 1m; proxy_pass http://{addr}:{PORT}/echo; }}
    location = /echo {{ return 200 "stored\\n"; }}
  }} }}
''')
    run(*prefix, 'nginx', '-c', conf)
    time.sleep(0.3)
    return conf

class Tcpdump:
    def __init__(self, path, iface='lo', extra=(), expr=f'tcp port {PORT}'):
        # Immediate mode: without it packets wait in the kernel's block until it fills or times out,
        # and a tcpdump stopped right after a short exchange has written none of them.
        self.p = subprocess.Popen(['tcpdump', '-i', iface, '-s', '0', '-U', '--immediate-mode', '-w', path, *extra,
                                   expr], stderr=subprocess.DEVNULL)
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

def capture(name, action, iface='lo', extra=(), expr=f'tcp port {PORT}'):
    path = os.path.join(OUT, name)
    t = Tcpdump(path, iface, extra, expr)
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
                'sidecar/capture_fixtures_test.cc asserts the exact exchanges of each.\n' +
                LINK_TYPE_README + ISSUE9_README)
    print('wrote', sorted(os.listdir(OUT)))

# --- Link types other than loopback's Ethernet: NFLOG (239) and PFLOG (117) -------------------

import struct

# What fixtures/captures/README.md says of the captures of nflog() and pflog() (main() writes the
# rest of it, and this after it).
LINK_TYPE_README = """
Other link types (`scripts/make-capture-fixtures.py nflog pflog` remakes only these), each with two
GETs on one keep-alive connection to nginx on 127.0.0.91 (/small.txt, /items.json) and one GET of
/small.txt over IPv6 ([::1]), 22 frames:
- nflog-keepalive-ipv6.pcap: LINKTYPE_NFLOG (239), recorded by `tcpdump -i nflog:7` in a network
  namespace whose nftables output hook logs the port's packets to NFLOG group 7. libpcap 1.10
  stamps each NFLOG frame with the time it reads it, and the kernel hands logged packets over in
  batches: the times are when tcpdump read them (some a second late), not when they were sent.
- nflog-big-endian.pcap: the same frames as a big-endian host writes them: file and record
  headers and every TLV's length and type big-endian (readers swap the TLV fields, as libpcap).
- pflog-keepalive-ipv6.pcap: LINKTYPE_PFLOG (117), converted from a loopback capture of the same
  traffic: each Ethernet header replaced by a FreeBSD pf log header (length 69, padded to 72;
  family 2, or FreeBSD's AF_INET6 28 for IPv6; action pass, reason match, interface lo0, rule 0,
  direction out); wire lengths adjusted by the same difference.
"""

# What fixtures/captures/README.md says of the captures of pairing() and rfc() (main() writes it
# after LINK_TYPE_README, so that remaking `base` keeps it).
ISSUE9_README = """
Pairing and RFC 9112 cases of issue 9 (`scripts/make-capture-fixtures.py pairing rfc` remakes only
these; `pairing` after `base`, whose pipelined-3-gets.pcap it cuts, `rfc` after `pairing`), with
servers on 127.0.0.93:8091. nginx serves /a../d ("body of /a: a\\n", one letter more each, 14..17
bytes) and /n01../n10 ("body of /n01: x\\n", one x more each, 16..25 bytes), so that a response
paired with the wrong request shows. Each request and each response is one segment.
- keepalive-4-gets.pcap: curl GETs /a /b /c /d on one keep-alive connection (16 frames: requests
  at frames 4, 8, 10, 12, responses at 6, 9, 11, 13).
- keepalive-4-gets-responses-first.pcap: the same with each response's frame moved just before
  its request's (mergecap -a of editcap pieces: the moved frames go back in time).
- keepalive-10-gets.pcap: curl GETs /n01../n10 on one connection (requests at frames 4, 8, 10,
  ..., 24, responses at 6, 9, 11, ..., 25).
- keepalive-10-gets-third-response-lost.pcap: without frame 11 (the response to /n03).
- keepalive-10-gets-third-request-lost.pcap: without frame 10 (the request /n03).
- keepalive-10-gets-third-and-fourth-responses-lost.pcap: without frames 11 and 13 (the
  responses to /n03 and /n04).
- keepalive-10-gets-last-response-lost.pcap: without frame 25 (the response to /n10); the FINs
  of both sides follow.
- pipelined-3-gets-second-response-lost.pcap: pipelined-3-gets.pcap without frame 8 (the response
  to /items.json; the three requests are frame 4, the responses frames 6, 8, 10).
- pipelined-3-gets-first-two-responses-lost.pcap: pipelined-3-gets.pcap without frames 6 and 8:
  the 404 that remains may answer /items.json or /missing (the lost bytes hold one or two
  responses), an ambiguous pairing.
- pipelined-3-gets-responses-first.pcap: pipelined-3-gets.pcap with frames 6, 8, 10 moved before
  frame 4.
- interim-with-content-length.pcap: a Python server answers curl's GET /early-hints with
  `103 Early Hints` carrying `Content-Length: 5` and no body, then 200 "hello world\\n"; and a
  POST /upload of 2000 bytes (Expect: 100-continue) with `100 Continue` + `Content-Length: 5`, then
  200 "received  2000 bytes". Two connections.
- http09-reply.pcap: curl --http0.9 GET /old answered by 43 bytes with no status line, then close.
- junk-reply-then-close.pcap: curl's GET / answered by an SSH server's banner and complaint (76
  bytes); curl closes, the server resets (SO_LINGER 0).
- chunked-and-content-length.pcap: a raw client POSTs /both with `Content-Length: 3` and
  `Transfer-Encoding: chunked` (body "hello" chunked); a Python server reads it as chunked and
  answers 200 "chunked body of 5 bytes: hello\\n" with Connection: close.
- snaplen-96.pcap: curl GETs /a and /b from nginx, captured with tcpdump -s 96 (30 bytes of each
  segment: "GET /a HTTP/1.1\\r\\nHost: 127.0.0", "HTTP/1.1 200 OK\\r\\nServer: nginx").
- early-response-cuts-request.pcap: a raw client POSTs /upload declaring Content-Length: 100000,
  sends the headers with 4000 body bytes, then 4000 more 100 ms later; a Python server answers
  413 after the headers, closes, and resets the connection when the second piece arrives.
- differing-retransmission.pcap: keepalive-4-gets.pcap with frame 9 (the response to /b) repeated
  as frame 10 with its body's "bb" changed to "XX", nothing else (checksums included).
"""

NFLOG_GROUP = 7
NETNS = 'tapkit-fixtures'

def read_pcap(path):
    """(header fields, records) of a classic pcap file: linktype, snaplen, nanosecond flag, and
    (seconds, fraction, wire length, bytes) per record, whatever the file's byte order."""
    with open(path, 'rb') as f:
        data = f.read()
    magic = struct.unpack('<I', data[:4])[0]
    order = '<' if magic in (0xa1b2c3d4, 0xa1b23c4d) else '>'
    magic, _, _, _, _, snaplen, linktype = struct.unpack(order + 'IHHiIII', data[:24])
    nano = magic == 0xa1b23c4d
    records, at = [], 24
    while at + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(order + 'IIII', data[at:at + 16])
        records.append((sec, frac, wire, data[at + 16:at + 16 + caplen]))
        at += 16 + caplen
    return linktype, snaplen, nano, records

def write_pcap(path, linktype, records, nano=False, order='<', snaplen=262144):
    """A classic pcap file (version 2.4) in byte order `order`; records as read_pcap gives them."""
    with open(path, 'wb') as f:
        f.write(struct.pack(order + 'IHHiIII', 0xa1b23c4d if nano else 0xa1b2c3d4, 2, 4, 0, 0,
                            snaplen, linktype))
        for sec, frac, wire, data in records:
            f.write(struct.pack(order + 'IIII', sec, frac, len(data), wire) + data)
    os.chmod(path, 0o644)

class Namespace:
    """A network namespace of our own with its loopback up: nginx, curl and tcpdump run in it, so
    nothing else on this machine's loopback ends up in the capture and no rule leaks out."""
    def __init__(self):
        subprocess.run(['ip', 'netns', 'del', NETNS], stderr=subprocess.DEVNULL)
        run('ip', 'netns', 'add', NETNS)
        self.prefix = ('ip', 'netns', 'exec', NETNS)
        run(*self.prefix, 'ip', 'link', 'set', 'lo', 'up')
    def close(self):
        run('ip', 'netns', 'del', NETNS)

def serve_and_fetch(ns, capture_cmd, path, settle=1.0, bpf=()):
    """In namespace `ns`: nginx on 127.0.0.91 and [::1]; `capture_cmd` (tcpdump ..., then -w path
    and the expression `bpf`) running while curl fetches two URLs on one keep-alive IPv4 connection, then one over IPv6;
    the capture is stopped `settle` seconds after the last one."""
    work = tempfile.mkdtemp()
    start_nginx(work, ns.prefix)
    t = subprocess.Popen([*ns.prefix, *capture_cmd, '-w', path, *bpf], stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        base = f'http://{ADDR}:{PORT}'
        run(*ns.prefix, 'curl', '-s', '-o', '/dev/null', '-o', '/dev/null', base + '/small.txt',
            base + '/items.json')
        run(*ns.prefix, 'curl', '-s', '-o', '/dev/null', '-g', f'http://[::1]:{PORT}/small.txt')
        time.sleep(settle)
    finally:
        t.terminate(); t.wait()
        run(*ns.prefix, 'nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)
    os.chmod(path, 0o644)

def fetch_fixture_traffic(path):
    """The link-type fixtures' traffic on this machine's loopback, written by tcpdump to `path`:
    two GETs on one keep-alive connection (curl), one GET over IPv6, from the nginx running."""
    t = Tcpdump(path)
    base = f'http://{ADDR}:{PORT}'
    run('curl', '-s', '-o', '/dev/null', '-o', '/dev/null', base + '/small.txt', base + '/items.json')
    run('curl', '-s', '-o', '/dev/null', '-g', f'http://[::1]:{PORT}/small.txt')
    t.stop()

def nflog_tlv(tlv_type, value, order='<'):
    """One netlink attribute: length (header included, padding not) and type in `order`, the
    value, padding to 4 bytes."""
    tlv = struct.pack(order + 'HH', 4 + len(value), tlv_type) + value
    return tlv + b'\0' * (-len(tlv) % 4)

def nflog():
    """nflog-keepalive-ipv6.pcap: recorded by tcpdump -i nflog:7 in a network namespace whose
    nftables output hook logs the HTTP port's packets to NFLOG group 7 (on loopback each packet
    passes the output hook once). Where no namespace or nftables can be had, the same traffic
    captured on loopback is wrapped in NFLOG headers instead, and the script says so.
    nflog-big-endian.pcap: the same frames as a big-endian host would have written them: file and
    record headers and every TLV's length and type in big-endian order."""
    out = os.path.join(OUT, 'nflog-keepalive-ipv6.pcap')
    ns = None
    try:
        ns = Namespace()
        rules = (f'table inet tapkit_fixtures {{\n chain out {{\n'
                 f'  type filter hook output priority 0;\n'
                 f'  tcp dport {PORT} log group {NFLOG_GROUP}\n'
                 f'  tcp sport {PORT} log group {NFLOG_GROUP}\n }}\n}}\n')
        run(*ns.prefix, 'nft', '-f', '-', input=rules.encode())
        # The kernel sends logged packets to the group in batches, flushed at least once a
        # second (nfnetlink_log's default flush timeout): wait longer than that.
        serve_and_fetch(ns, ('tcpdump', '-i', f'nflog:{NFLOG_GROUP}', '-s', '0', '-U'), out,
                        settle=3.0)
        print(f'nflog: recorded live by tcpdump -i nflog:{NFLOG_GROUP} in network namespace {NETNS}')
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f'nflog: no NFLOG capture possible here ({e}); wrapping a loopback capture instead')
        if ns:
            ns.close()
        ns = None
        wrap_loopback_in_nflog(out)
    finally:
        if ns:
            ns.close()
    linktype, snaplen, nano, records = read_pcap(out)
    assert linktype == 239, linktype
    swapped = []
    for sec, frac, wire, data in records:
        b, at = bytearray(data), 4
        while at + 4 <= len(b):
            length, tlv_type = struct.unpack('<HH', b[at:at + 4])
            b[at:at + 4] = struct.pack('>HH', length, tlv_type)
            at += (length + 3) & ~3
        swapped.append((sec, frac, wire, bytes(b)))
    write_pcap(os.path.join(OUT, 'nflog-big-endian.pcap'), 239, swapped, nano, '>', snaplen)

def wrap_loopback_in_nflog(out):
    """The fallback: the fixture traffic captured on this machine's loopback (Ethernet), each IP
    packet wrapped as tcpdump -i nflog would record it: family, version 0, resource id (group) in
    network order, then NFULA_PACKET_HDR (1: hw_protocol, hook 3 = output), NFULA_PREFIX (10)
    and NFULA_PAYLOAD (9) with the packet."""
    work = tempfile.mkdtemp()
    tmp = os.path.join(work, 'lo.pcap')
    start_nginx(work)
    try:
        fetch_fixture_traffic(tmp)
        _, _, nano, records = read_pcap(tmp)
    finally:
        run('nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)
    wrapped = []
    for sec, frac, wire, data in records:
        ethertype, ip = struct.unpack('>H', data[12:14])[0], data[14:]
        family = {0x0800: 2, 0x86dd: 10}[ethertype]
        body = (struct.pack('>BBH', family, 0, NFLOG_GROUP) +
                nflog_tlv(1, struct.pack('>HBB', ethertype, 3, 0)) + nflog_tlv(10, b'\0') +
                nflog_tlv(9, ip))
        wrapped.append((sec, frac, len(body) + wire - len(data), body))
    write_pcap(out, 239, wrapped, nano)

def pflog():
    """pflog-keepalive-ipv6.pcap: the fixture traffic (two GETs on one keep-alive connection,
    one GET over IPv6) captured by tcpdump on loopback (in a network namespace of its own when
    one can be had), each IP packet then given a FreeBSD pf log header in place of its Ethernet
    header: length 69 (padded to 72), family 2 or FreeBSD's AF_INET6 28, action pass, reason
    match, interface lo0, rule 0 with no subrule, uid and pid -1 (none), direction out."""
    out = os.path.join(OUT, 'pflog-keepalive-ipv6.pcap')
    work = tempfile.mkdtemp()
    tmp = os.path.join(work, 'lo.pcap')
    try:
        ns = Namespace()
        try:
            serve_and_fetch(ns, ('tcpdump', '-i', 'lo', '-s', '0', '-U', '--immediate-mode'), tmp,
                            bpf=(f'tcp port {PORT}',))
        finally:
            ns.close()
        print(f'pflog: loopback captured in network namespace {NETNS}')
    except (subprocess.CalledProcessError, FileNotFoundError) as e:
        print(f'pflog: no network namespace here ({e}); capturing on this machine\'s loopback')
        start_nginx(work)
        try:
            fetch_fixture_traffic(tmp)
        finally:
            run('nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
            time.sleep(0.5)
    linktype, _, nano, records = read_pcap(tmp)
    shutil.rmtree(work, ignore_errors=True)
    assert linktype == 1, linktype
    converted = []
    for sec, frac, wire, data in records:
        ethertype, ip = struct.unpack('>H', data[12:14])[0], data[14:]
        af = {0x0800: 2, 0x86dd: 28}[ethertype]
        # length, af, action (PF_PASS 0), reason (PFRES_MATCH 0), ifname[16], ruleset[16],
        # rulenr, subrulenr (-1: none), uid, pid, rule_uid, rule_pid (host order, -1: none),
        # dir (PF_OUT 2), pad[3], ridentifier, reserve, pad2[3]: 72 bytes, length 69.
        header = (struct.pack('>BBBB16s16sII', 69, af, 0, 0, b'lo0', b'', 0, 0xffffffff) +
                  struct.pack('<IiIi', 0xffffffff, -1, 0xffffffff, -1) +
                  struct.pack('>B3xIB3x', 2, 0, 0))
        assert len(header) == 72
        converted.append((sec, frac, wire - 14 + len(header), header + ip))
    write_pcap(out, 117, converted, nano)

# --- Pairing and RFC cases (issue 9): `pairing` and `rfc` ----------------------------------------
#
# Both run their servers on 127.0.0.93 and capture only that address, so that they neither clash
# with another nginx on 127.0.0.91 nor pick up its traffic. `pairing` also derives variants from
# pipelined-3-gets.pcap of `base` (remake `pairing` after `base`); `rfc` derives
# differing-retransmission.pcap from keepalive-4-gets.pcap of `pairing`.

import threading

ADDR3 = '127.0.0.93'
EXPR3 = f'host {ADDR3} and tcp port {PORT}'

def frames(path):
    """(frame number, TCP source port, TCP payload length) of each frame of `path`, by tshark."""
    out = subprocess.run(['tshark', '-r', path, '-T', 'fields', '-e', 'frame.number', '-e',
                          'tcp.srcport', '-e', 'tcp.len'], capture_output=True, text=True,
                         check=True).stdout
    return [tuple(int(x) for x in l.split('\t')) for l in out.split('\n') if l.strip()]

def data_frames(path):
    """The frame numbers of the client's and of the server's data segments."""
    rows = frames(path)
    return ([f for f, port, ln in rows if port != PORT and ln > 0],
            [f for f, port, ln in rows if port == PORT and ln > 0], len(rows))

def without(source, name, drop):
    """`name`: `source` without the frames `drop` (editcap deletes the frames listed)."""
    out = os.path.join(OUT, name)
    run('editcap', '-F', 'pcap', source, out, *(str(f) for f in drop))
    os.chmod(out, 0o644)

def rearranged(source, name, order):
    """`name`: the frames of `source` in the order `order` (frame numbers), each run of
    consecutive frames cut out with editcap and the runs concatenated with mergecap -a, which
    keeps every frame's capture time: the moved frames go back in time, as in a merged capture."""
    runs = []
    for f in order:
        if runs and runs[-1][1] + 1 == f:
            runs[-1][1] = f
        else:
            runs.append([f, f])
    parts = []
    for i, (a, b) in enumerate(runs):
        part = os.path.join(OUT, f'tmp-{i}.pcap')
        run('editcap', '-F', 'pcap', '-r', source, part, f'{a}-{b}')
        parts.append(part)
    out = os.path.join(OUT, name)
    run('mergecap', '-F', 'pcap', '-a', '-w', out, *parts)
    os.chmod(out, 0o644)
    for p in parts:
        os.remove(p)

def curl_quiet(*args):
    # curl writes the bodies of the URLs after the first to standard output.
    run('curl', '-s', *args, stdout=subprocess.DEVNULL)

# Files whose bodies differ in length, so that a response paired with the wrong request shows.
FOUR = {c: f'body of /{c}: ' + c * (i + 1) + '\n' for i, c in enumerate('abcd')}
TEN = {f'n{i:02}': f'body of /n{i:02}: ' + 'x' * i + '\n' for i in range(1, 11)}

def pairing():
    """keepalive-4-gets.pcap: curl GETs /a, /b, /c, /d from nginx on one keep-alive connection.
    keepalive-10-gets.pcap: the same with ten files /n01../n10, each response one segment; its
    variants without the third response's data segment and without the third request's.
    keepalive-4-gets-responses-first.pcap: each response's segment moved before its request.
    From pipelined-3-gets.pcap (base): the second response's segment deleted, and the three
    response segments moved before the request segment."""
    work = tempfile.mkdtemp()
    start_nginx(work, addr=ADDR3, v6=False, files={**FOUR, **TEN})
    base = f'http://{ADDR3}:{PORT}'
    try:
        capture('keepalive-4-gets.pcap', lambda: curl_quiet(*(f'{base}/{c}' for c in FOUR)),
                expr=EXPR3)
        capture('keepalive-10-gets.pcap', lambda: curl_quiet(*(f'{base}/{n}' for n in TEN)),
                expr=EXPR3)
    finally:
        run('nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)
    notes = []
    ten = os.path.join(OUT, 'keepalive-10-gets.pcap')
    requests, responses, n = data_frames(ten)
    assert len(requests) == 10 and len(responses) == 10, (requests, responses)
    without(ten, 'keepalive-10-gets-third-response-lost.pcap', [responses[2]])
    without(ten, 'keepalive-10-gets-third-request-lost.pcap', [requests[2]])
    # Two responses in a row lost, and the last one (the connection then closes, both FINs
    # captured: the server's FIN sequence number proves the lost bytes were sent).
    without(ten, 'keepalive-10-gets-third-and-fourth-responses-lost.pcap', responses[2:4])
    without(ten, 'keepalive-10-gets-last-response-lost.pcap', [responses[9]])
    notes.append(f'keepalive-10-gets.pcap: requests at frames {requests}, responses at {responses}')
    four = os.path.join(OUT, 'keepalive-4-gets.pcap')
    requests, responses, n = data_frames(four)
    assert len(requests) == 4 and len(responses) == 4, (requests, responses)
    order = [f for f in range(1, n + 1) if f not in responses]
    for q, r in zip(requests, responses):
        order.insert(order.index(q), r)
    rearranged(four, 'keepalive-4-gets-responses-first.pcap', order)
    notes.append(f'keepalive-4-gets.pcap: requests at frames {requests}, responses at {responses}; '
                 f'responses-first order {order}')
    pipe = os.path.join(OUT, 'pipelined-3-gets.pcap')
    requests, responses, n = data_frames(pipe)
    assert len(requests) == 1 and len(responses) == 3, (requests, responses)
    without(pipe, 'pipelined-3-gets-second-response-lost.pcap', [responses[1]])
    # The first two responses lost: the 404 may answer /items.json or /missing (ambiguous).
    without(pipe, 'pipelined-3-gets-first-two-responses-lost.pcap', responses[0:2])
    order = [f for f in range(1, n + 1) if f not in responses]
    order[order.index(requests[0]):order.index(requests[0])] = responses
    rearranged(pipe, 'pipelined-3-gets-responses-first.pcap', order)
    notes.append(f'pipelined-3-gets.pcap: request at frame {requests}, responses at {responses}; '
                 f'responses-first order {order}')
    print('\n'.join(notes))

class PyServer:
    """A one-connection-at-a-time server on ADDR3:PORT running handler(socket) per connection, for
    replies nginx will not produce; a context manager."""
    def __init__(self, handler):
        self.stop = threading.Event()
        self.srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind((ADDR3, PORT))
        self.srv.listen(4)
        self.srv.settimeout(0.2)
        def loop():
            while not self.stop.is_set():
                try:
                    c, _ = self.srv.accept()
                except socket.timeout:
                    continue
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    handler(c)
                except OSError:
                    pass
                c.close()
            self.srv.close()
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
    def __enter__(self):
        return self
    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()

def read_head(c):
    """The request's header section (up to and with its blank line) and the bytes after it."""
    buf = b''
    while b'\r\n\r\n' not in buf:
        data = c.recv(65536)
        if not data:
            return buf, b''
        buf += data
    head, rest = buf.split(b'\r\n\r\n', 1)
    return head + b'\r\n\r\n', rest

def drain(c):
    """Reads until the client closes (its FIN), so that the server's close follows it."""
    c.settimeout(2.0)
    try:
        while c.recv(65536):
            pass
    except OSError:
        pass

def interim_handler(c):
    # A 1xx with Content-Length: 5 and no body (RFC 9112 section 6.3: a 1xx ends at its blank
    # line whatever its fields say), then the final response.
    head, rest = read_head(c)
    if head.startswith(b'GET'):
        c.sendall(b'HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n'
                  b'Content-Length: 5\r\n\r\n')
        time.sleep(0.05)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n'
                  b'hello world\n')
    else:  # POST with Expect: 100-continue
        c.sendall(b'HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\n')
        length = int([l for l in head.split(b'\r\n') if l.lower().startswith(b'content-length:')][0]
                     .split(b':')[1])
        while len(rest) < length:
            rest += c.recv(65536)
        c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 20\r\n\r\n'
                  b'received %5d bytes\n' % len(rest))
    drain(c)

def http09_handler(c):
    # HTTP/0.9: the reply is the body alone, ended by the close.
    read_head(c)
    c.sendall(b'<html>hello from an HTTP/0.9 server</html>\n')

def junk_handler(c):
    # What an SSH server says to a client that is not SSH, then a reset (SO_LINGER 0).
    read_head(c)
    c.sendall(b'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\nInvalid SSH identification string.\r\n')
    time.sleep(0.05)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))

def chunked_handler(c):
    # Transfer-Encoding overrides Content-Length (RFC 9112 section 6.3 item 3): the body is read
    # as chunked, and the connection closed after the response, as that section asks.
    head, rest = read_head(c)
    while not rest.endswith(b'0\r\n\r\n'):
        rest += c.recv(65536)
    body, at = b'', 0
    while True:
        eol = rest.index(b'\r\n', at)
        size = int(rest[at:eol], 16)
        if size == 0:
            break
        body += rest[eol + 2:eol + 2 + size]
        at = eol + 2 + size + 2
    reply = b'chunked body of %d bytes: %s\n' % (len(body), body)
    c.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n'
              b'Connection: close\r\n\r\n%s' % (len(reply), reply))

def early_413_handler(c):
    # Refuses the upload from its headers alone, as a server with a body size limit does, and
    # closes without reading the body.
    read_head(c)
    c.sendall(b'HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain\r\n'
              b'Content-Length: 18\r\nConnection: close\r\n\r\nbody is too large\n')
    time.sleep(0.05)

def raw3(*messages, pause=0.2):
    """A raw client to ADDR3: sends each message `pause` seconds apart (stopping when the server
    has reset the connection), then reads what the server sent until it closes."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.connect((ADDR3, PORT))
    try:
        for m in messages:
            s.sendall(m)
            time.sleep(pause)
        s.settimeout(1.0)
        while s.recv(65536):
            pass
    except OSError:
        pass
    s.close()

def rfc():
    """The RFC 9112 cases, each a real server on 127.0.0.93 (Python where nginx will not produce
    the bytes, nginx otherwise) and curl or a raw client; see fixtures/captures/README.md."""
    # 103 Early Hints with Content-Length: 5 before a GET's 200; 100 Continue with
    # Content-Length: 5 before a POST's 200 (curl, Expect: 100-continue): two connections.
    body = tempfile.NamedTemporaryFile(delete=False)
    body.write(b'x' * 2000)
    body.close()
    with PyServer(interim_handler):
        capture('interim-with-content-length.pcap', lambda: (
            curl_quiet(f'http://{ADDR3}:{PORT}/early-hints'),
            curl_quiet('-H', 'Expect: 100-continue', '--data-binary', '@' + body.name,
                       f'http://{ADDR3}:{PORT}/upload')), expr=EXPR3)
    os.remove(body.name)
    with PyServer(http09_handler):
        capture('http09-reply.pcap', lambda: subprocess.run(
            ['curl', '-s', '--http0.9', f'http://{ADDR3}:{PORT}/old'], stdout=subprocess.DEVNULL),
            expr=EXPR3)
    with PyServer(junk_handler):
        capture('junk-reply-then-close.pcap', lambda: subprocess.run(
            ['curl', '-s', f'http://{ADDR3}:{PORT}/'], stdout=subprocess.DEVNULL), expr=EXPR3)
    # Content-Length: 3 would cut the chunked body at "5\r\n": read that way, "hello..." would
    # follow as a malformed second request.
    with PyServer(chunked_handler):
        capture('chunked-and-content-length.pcap', lambda: raw3(
            b'POST /both HTTP/1.1\r\nHost: fixture\r\nContent-Length: 3\r\n'
            b'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n'), expr=EXPR3)
    # A 100000-byte upload sent 4000 bytes at a time, refused with 413 after its headers.
    with PyServer(early_413_handler):
        capture('early-response-cuts-request.pcap', lambda: raw3(
            b'POST /upload HTTP/1.1\r\nHost: fixture\r\nContent-Type: application/octet-stream\r\n'
            b'Content-Length: 100000\r\n\r\n' + b'y' * 4000, *([b'y' * 4000] * 24), pause=0.1),
            expr=EXPR3)
    # Two GETs from nginx on one keep-alive connection captured with a 96-byte snaplen: 66 bytes
    # of Ethernet, IPv4 and TCP (with timestamps) headers leave 30 of each segment.
    work = tempfile.mkdtemp()
    start_nginx(work, addr=ADDR3, v6=False, files=FOUR)
    try:
        capture('snaplen-96.pcap', lambda: curl_quiet(f'http://{ADDR3}:{PORT}/a',
                                                      f'http://{ADDR3}:{PORT}/b'),
                extra=('-s', '96'), expr=EXPR3)
    finally:
        run('nginx', '-c', os.path.join(work, 'nginx.conf'), '-s', 'stop')
        time.sleep(0.5)
        shutil.rmtree(work, ignore_errors=True)
    # The second response's segment of keepalive-4-gets.pcap seen again right after it, with
    # different bytes in its body ("bb" made "XX"); nothing else changed, checksums included.
    four = os.path.join(OUT, 'keepalive-4-gets.pcap')
    _, responses, _ = data_frames(four)
    linktype, snaplen, nano, records = read_pcap(four)
    i = responses[1] - 1
    sec, frac, wire, data = records[i]
    at = data.rindex(b': bb\n')
    changed = data[:at] + b': XX\n' + data[at + 5:]
    records.insert(i + 1, (sec, frac + 1, wire, changed))
    write_pcap(os.path.join(OUT, 'differing-retransmission.pcap'), linktype, records, nano,
               snaplen=snaplen)
    print(f'differing-retransmission.pcap: frame {responses[1] + 1} repeats frame {responses[1]}')

ADDR4, ADDR5, PORT4 = '127.0.0.94', '127.0.0.95', 8094

def h2c():
    """h2c-upgrade.pcap: nghttp (nghttp2-client) asks nghttpx (nghttp2-proxy) on 127.0.0.94 for /
    with an HTTP/1.1 `Upgrade: h2c` request (RFC 7540 section 3.2); nghttpx answers 101 Switching
    Protocols and then HTTP/2, with the response fetched from nghttpd (nghttp2-server, HTTP/2
    without TLS) on 127.0.0.95. The capture holds the frontend connection only (port 8094): the
    bytes after the 101 on both sides are what the protocol seam hands to an h2c parser
    (sidecar/protocol_seam_test.cc)."""
    work = tempfile.mkdtemp()
    os.makedirs(os.path.join(work, 'www'))
    with open(os.path.join(work, 'www', 'index.html'), 'w') as f:
        f.write('hello h2c\n')
    procs = []
    try:
        procs.append(subprocess.Popen(['nghttpd', '-a', ADDR5, '-d', os.path.join(work, 'www'),
                                       '--no-tls', str(PORT4 + 1)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(['nghttpx', '--conf=/dev/null', f'-f{ADDR4},{PORT4};no-tls',
                                       f'-b{ADDR5},{PORT4 + 1};;proto=h2', '--workers=1',
                                       '--log-level=WARN',
                                       '--errorlog-file=' + os.path.join(work, 'error.log'),
                                       '--accesslog-file=' + os.path.join(work, 'access.log')],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.0)
        capture('h2c-upgrade.pcap', lambda: run('nghttp', '-u', f'http://{ADDR4}:{PORT4}/',
                                                stdout=subprocess.DEVNULL),
                expr=f'tcp port {PORT4}')
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)

STEPS = {'base': main, 'nflog': nflog, 'pflog': pflog, 'pairing': pairing, 'rfc': rfc, 'h2c': h2c}

if __name__ == '__main__':
    if os.geteuid() != 0:
        sys.exit('run as root (tcpdump and nginx need it)')
    chosen = sys.argv[1:] or list(STEPS)
    unknown = [c for c in chosen if c not in STEPS]
    if unknown:
        sys.exit(f'usage: {sys.argv[0]} [{"|".join(STEPS)} ...] (default: all); unknown: {unknown}')
    os.makedirs(OUT, exist_ok=True)
    for c in chosen:
        STEPS[c]()
