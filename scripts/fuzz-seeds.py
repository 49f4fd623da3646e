#!/usr/bin/env python3
"""Turns packet captures (classic pcap or pcapng) into seeds for the fuzz targets whose input is not
a capture file, so that they start from real traffic instead of a handful of hand-made inputs:

  fuzz-seeds.py capture OUTDIR FILE...  fuzz_capture's input: a link type selector byte, then
                                        frames as (u16 big-endian length, bytes)
  fuzz-seeds.py pcapng OUTDIR FILE...   each classic pcap rewritten as a one-interface pcapng file
                                        (the corpus has few pcapng files, the only ones
                                        fuzz_pcapng could read)
  fuzz-seeds.py http1 OUTDIR FILE...    fuzz_http1's input, one file per TCP connection: its client
                                        and server bytes in capture order as (op, length, bytes)
                                        records, with gap records where the capture lost bytes

--max-len N stops adding frames or records before a seed grows past N bytes (libFuzzer would cut
it anywhere). Files that are not captures, or hold no usable frames, are passed over silently:
scripts/fuzz-run.sh feeds this whole directories, READMEs and damaged captures included.
Pure Python on purpose: it runs before every fuzz run (ctest, scripts/fuzz-coverage.sh) and must
not depend on the build it seeds nor on tools beyond python3."""
import argparse
import os
import struct
import sys

# fuzz_capture's selector byte indexes this list (kLinks in sidecar/fuzz_capture.cc; keep in step).
CAPTURE_LINKS = [1, 0, 113, 276, 101, 228, 229, 9, 104, 108, 129, 239, 117]
# Classic pcap: microseconds or nanoseconds, little or big endian.
PCAP_MAGICS = (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\xc3\xd4', b'\xa1\xb2\x3c\x4d')


def read_frames(path):
    """Yields (link_type, ts_ns, frame_bytes, wire_length) until the end or the first damage."""
    try:
        with open(path, 'rb') as f:
            data = f.read()
    except OSError:
        return
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in PCAP_MAGICS:
        yield from _read_pcap(data)
    elif magic == b'\x0a\x0d\x0d\x0a':
        yield from _read_pcapng(data)


def _read_pcap(data):
    le = data[:4] in (b'\xd4\xc3\xb2\xa1', b'\x4d\x3c\xb2\xa1')
    nano = data[:4] in (b'\x4d\x3c\xb2\xa1', b'\xa1\xb2\x3c\x4d')
    e = '<' if le else '>'
    link = struct.unpack(e + 'I', data[20:24])[0] & 0x0fffffff  # the top bits are FCS flags
    at = 24
    while at + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack(e + 'IIII', data[at:at + 16])
        at += 16
        if caplen > len(data) - at or caplen > 1 << 18:
            return
        yield link, sec * 10**9 + (frac if nano else frac * 1000), data[at:at + caplen], wire
        at += caplen


def _read_pcapng(data):
    e = '<'
    links = []  # per interface of the current section: (link type, ns per tick)
    at = 0
    while at + 12 <= len(data):
        btype = struct.unpack(e + 'I', data[at:at + 4])[0]
        if btype == 0x0A0D0D0A:  # a section header restarts byte order and interfaces
            bom = data[at + 8:at + 12]
            e = '<' if bom == b'\x4d\x3c\x2b\x1a' else '>' if bom == b'\x1a\x2b\x3c\x4d' else None
            if e is None:
                return
            links = []
        blen = struct.unpack(e + 'I', data[at + 4:at + 8])[0]
        if blen < 12 or blen % 4 or at + blen > len(data):
            return
        body = data[at + 8:at + blen - 4]
        at += blen
        if btype == 1 and len(body) >= 8:  # interface description: link type, then options
            link = struct.unpack(e + 'H', body[:2])[0]
            per_tick = 1000  # microseconds unless if_tsresol says otherwise
            o = 8
            while o + 4 <= len(body):
                code, olen = struct.unpack(e + 'HH', body[o:o + 4])
                if code == 0:
                    break
                if code == 9 and olen >= 1:
                    r = body[o + 4]
                    ticks = 2 ** (r & 0x7f) if r & 0x80 else 10 ** r
                    per_tick = max(1, 10**9 // ticks)
                o += 4 + (olen + 3) // 4 * 4
            links.append((link, per_tick))
        elif btype == 6 and len(body) >= 20:  # enhanced packet
            iface, hi, lo, caplen, wire = struct.unpack(e + 'IIIII', body[:20])
            if iface >= len(links) or 20 + caplen > len(body):
                return
            link, per_tick = links[iface]
            yield link, ((hi << 32) | lo) * per_tick, body[20:20 + caplen], wire
        elif btype == 3 and len(body) >= 4 and links:  # simple packet: interface 0, no time stamp
            wire = struct.unpack(e + 'I', body[:4])[0]
            yield links[0][0], 0, body[4:4 + min(wire, len(body) - 4)], wire


_saved = set()


def save(path, seed):
    """Writes a seed unless this run wrote the same bytes already (variants of one capture that
    differ only in framing or segmenting often give the same stream)."""
    seed = bytes(seed)
    if seed in _saved:
        return False
    _saved.add(seed)
    with open(path, 'wb') as f:
        f.write(seed)
    return True


def write_capture_seed(path, frames, max_len):
    """fuzz_capture: the first frame's link type (when the target has it), then its every frame."""
    out = None
    for link, _, frame, _ in frames:
        if out is None:
            if link not in CAPTURE_LINKS:
                return False
            first = link
            out = bytearray([CAPTURE_LINKS.index(link)])
        if link != first:
            continue
        frame = frame[:0xffff]
        if len(out) + 2 + len(frame) > max_len:
            break
        out += struct.pack('>H', len(frame)) + frame
    if out is None or len(out) == 1:
        return False
    return save(path, out)


def write_pcapng_seed(path, frames, max_len):
    """One section, one interface (the first frame's link type, nanosecond time stamps)."""
    def block(btype, body):
        body += b'\0' * (-len(body) % 4)
        n = len(body) + 12
        return struct.pack('<II', btype, n) + body + struct.pack('<I', n)
    out = bytearray(block(0x0A0D0D0A, struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1)))
    first = None
    count = 0
    for link, ts, frame, wire in frames:
        if first is None:
            first = link
            # if_tsresol (option 9) = 9: nanoseconds; then the end of options.
            out += block(1, struct.pack('<HHI', link, 0, 262144) +
                         struct.pack('<HHB3x', 9, 1, 9) + struct.pack('<HH', 0, 0))
        if link != first:
            continue
        epb = block(6, struct.pack('<IIIII', 0, ts >> 32, ts & 0xffffffff, len(frame), wire)
                    + frame)
        if len(out) + len(epb) > max_len:
            break
        out += epb
        count += 1
    if not count:
        return False
    return save(path, out)


def ip_packet(link, frame):
    """The IPv4/IPv6 packet a frame carries, or None (other link types, ARP, tunnels...)."""
    def ether_payload(b, etype_at):
        while etype_at + 2 <= len(b):
            etype = struct.unpack('>H', b[etype_at:etype_at + 2])[0]
            if etype in (0x8100, 0x88a8, 0x9100):  # VLAN tags, stacked or not
                etype_at += 4
            elif etype == 0x8864:  # PPPoE session: 6-byte header, then the PPP protocol
                proto = b[etype_at + 8:etype_at + 10]
                return b[etype_at + 10:] if proto in (b'\x00\x21', b'\x00\x57') else None
            else:
                return b[etype_at + 2:] if etype in (0x0800, 0x86dd) else None
        return None
    if link == 1:
        return ether_payload(frame, 12)
    if link == 113:
        return ether_payload(frame, 14)
    if link == 276:
        return frame[20:] if frame[:2] in (b'\x08\x00', b'\x86\xdd') else None
    if link in (0, 108):
        return frame[4:]
    if link in (101, 228, 229, 12, 14):
        return frame
    if link == 9:
        return frame[4:] if frame[:2] == b'\xff\x03' else frame[2:]
    if link == 104:
        return frame[4:]
    return None


def tcp_segment(ip):
    """(source, destination, seq, ack, flags, payload) of a TCP packet, or None."""
    if not ip:
        return None
    version = ip[0] >> 4
    if version == 4 and len(ip) >= 20:
        ihl = (ip[0] & 15) * 4
        total = struct.unpack('>H', ip[2:4])[0]
        if ip[9] != 6 or struct.unpack('>H', ip[6:8])[0] & 0x3fff:  # not TCP, or a fragment
            return None
        src, dst = ip[12:16], ip[16:20]
        tcp = ip[ihl:total] if total >= ihl else ip[ihl:]
    elif version == 6 and len(ip) >= 40:
        if ip[6] != 6:
            return None
        src, dst = ip[8:24], ip[24:40]
        tcp = ip[40:40 + struct.unpack('>H', ip[4:6])[0]]
    else:
        return None
    if len(tcp) < 20:
        return None
    sport, dport, seq, ack, off_flags = struct.unpack('>HHIIH', tcp[:14])
    off = (off_flags >> 12) * 4
    return (src, sport), (dst, dport), seq, ack, off_flags & 0x3f, tcp[off:]


class Side:
    def __init__(self):
        self.next = None   # the next sequence number to deliver
        self.syn = False   # the capture saw this side's SYN
        self.pending = {}  # sequence number -> payload, ahead of `next`


def http1_connections(frames):
    """Per TCP connection, its byte streams as events: (is_client, bytes) or (is_client, gap)."""
    conns = {}  # sorted endpoint pair -> dict
    order = []
    for link, _, frame, _ in frames:
        seg = tcp_segment(ip_packet(link, frame))
        if seg is None:
            continue
        src, dst, seq, ack, flags, payload = seg
        key = tuple(sorted((src, dst)))
        c = conns.get(key)
        if c is None or (flags & 0x02 and not flags & 0x10 and c['events']):
            # A new connection, or a new SYN reusing the ports of a finished one.
            c = {'client': None, 'sides': {src: Side(), dst: Side()}, 'events': []}
            conns[key] = c
            order.append(c)
        if c['client'] is None:
            if flags & 0x02:  # the SYN's sender (or the SYN-ACK's receiver) is the client
                c['client'] = dst if flags & 0x10 else src
            elif payload:
                c['client'] = dst if payload.startswith(b'HTTP/') else src
        side, other = c['sides'][src], c['sides'][dst]
        if flags & 0x02:
            side.syn, side.next = True, (seq + 1) & 0xffffffff
        elif side.next is None and payload:
            side.next = seq
        if payload and side.next is not None:
            side.pending.setdefault(seq, payload)
            deliver(c, src, side, None)
        if flags & 0x10 and other.next is not None:
            deliver(c, dst, other, ack)  # bytes the receiver acknowledged are lost to the capture
    for c in order:
        for ep, side in c['sides'].items():
            deliver(c, ep, side, 'end')
    return [c for c in order if c['client'] is not None and any(ev[1] for ev in c['events'])]


def deliver(c, ep, side, upto):
    """Moves side's contiguous pending bytes to the events; with `upto` (an ACK number, or 'end'),
    bytes missing below it become a gap first."""
    while side.pending:
        rel = {(s - side.next) & 0xffffffff: s for s in side.pending}
        behind = [r for r in rel if r >= 1 << 31]
        for r in behind:  # retransmissions, or segments overlapping `next`: keep only new bytes
            data = side.pending.pop(rel[r])
            overlap = (1 << 32) - r
            if overlap < len(data):
                side.pending.setdefault(side.next, data[overlap:])
        if behind:
            continue
        r = min(rel)
        if r > 0:
            if upto != 'end':
                acked = None if upto is None else (upto - side.next) & 0xffffffff
                if acked is None or acked >= 1 << 31 or acked < r:
                    return  # the hole may still be filled by a later (reordered) segment
            c['events'].append((ep, None, r))
            side.next = (side.next + r) & 0xffffffff
            continue
        data = side.pending.pop(rel[0])
        c['events'].append((ep, data, 0))
        side.next = (side.next + len(data)) & 0xffffffff


def write_http1_seed(path, c, max_len):
    client = c['client']
    out = bytearray()
    for ep, data, gap in c['events']:
        side = 0 if ep == client else 1
        recs = bytearray()
        if data is None:
            while gap > 0:
                recs += bytes([2 | side, min(gap, 255)])
                gap -= min(gap, 255)
        else:
            for at in range(0, len(data), 255):
                chunk = data[at:at + 255]
                recs += bytes([side, len(chunk)]) + chunk
        if len(out) + len(recs) > max_len:
            if not out:
                out = recs[:max_len]
            break
        out += recs
    if not out:
        return False
    # The first op byte also says whether each side's stream starts with its first byte (bit 2:
    # client, bit 3: server), i.e. whether the capture saw that side's SYN.
    out[0] |= (4 if c['sides'][client].syn else 0)
    server = next(ep for ep in c['sides'] if ep != client)
    out[0] |= (8 if c['sides'][server].syn else 0)
    return save(path, out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('kind', choices=['capture', 'pcapng', 'http1'])
    ap.add_argument('outdir')
    ap.add_argument('files', nargs='*')
    ap.add_argument('--max-len', type=int, default=16384)
    ap.add_argument('--prefix', default='', help='put before every seed file name')
    a = ap.parse_intermixed_args()  # options may come before or after the files
    os.makedirs(a.outdir, exist_ok=True)
    written = 0
    for path in a.files:
        if not os.path.isfile(path):
            continue
        stem = a.prefix + os.path.splitext(os.path.basename(path))[0]
        frames = list(read_frames(path))
        if not frames:
            continue
        if a.kind == 'capture':
            written += write_capture_seed(os.path.join(a.outdir, stem + '.bin'), frames, a.max_len)
        elif a.kind == 'pcapng':
            written += write_pcapng_seed(os.path.join(a.outdir, stem + '.pcapng'), frames,
                                         a.max_len)
        else:
            conns = http1_connections(frames)
            for i, c in enumerate(conns):
                name = stem + ('-%d' % (i + 1) if len(conns) > 1 else '') + '.bin'
                written += write_http1_seed(os.path.join(a.outdir, name), c, a.max_len)
    print('fuzz-seeds.py %s: %d seeds in %s' % (a.kind, written, a.outdir), file=sys.stderr)


if __name__ == '__main__':
    main()
