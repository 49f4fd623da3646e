#!/usr/bin/env python3
"""Makes the small captures in fixtures/captures/ with real tools: nginx serving on 127.0.0.91 and
[::1], curl and a raw-socket client as the clients, tcpdump writing the packets; then damaged or
re-framed variants with editcap, reordercap and tcprewrite. Run as root (tcpdump, nginx), from the
repository root:  scripts/make-capture-fixtures.py [base|nflog|pflog ...]  (default: all of them;
`base` is the loopback set, `nflog` and `pflog` the captures of those link types, see their functions)
The captures are committed; sidecar/capture_fixtures_test.cc asserts the exact exchanges in each.
Needs: nginx-light curl tcpdump wireshark-common (editcap, reordercap) tcpreplay (tcprewrite),
iproute2 and nftables for the NFLOG capture."""
import os, shutil, socket, subprocess, sys, tempfile, time

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'captures')
ADDR, PORT = '127.0.0.91', 8091
ADDR2 = '127.0.0.92' 

def run(*cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)

def start_nginx(work, prefix=()):
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
    run(*prefix, 'nginx', '-c', conf)
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
                'sidecar/capture_fixtures_test.cc asserts the exact exchanges of each.\n' +
                LINK_TYPE_README)
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
        t = Tcpdump(tmp)
        base = f'http://{ADDR}:{PORT}'
        run('curl', '-s', '-o', '/dev/null', '-o', '/dev/null', base + '/small.txt', base + '/items.json')
        run('curl', '-s', '-o', '/dev/null', '-g', f'http://[::1]:{PORT}/small.txt')
        t.stop()
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
            t = Tcpdump(tmp)
            base = f'http://{ADDR}:{PORT}'
            run('curl', '-s', '-o', '/dev/null', '-o', '/dev/null', base + '/small.txt', base + '/items.json')
            run('curl', '-s', '-o', '/dev/null', '-g', f'http://[::1]:{PORT}/small.txt')
            t.stop()
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

STEPS = {'base': main, 'nflog': nflog, 'pflog': pflog}

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
