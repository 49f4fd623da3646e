#!/usr/bin/env python3
"""The golden files read without tapkit: the blocks split by SPEC.md sections 2 and 3 in Python,
the frames undone by the zstd CLI, and every record and the header decoded by flatc (FlatBuffers'
own compiler) from format/tap.fbs. Checks what format 1.3 added: v1.3.tap's replay_of values and
capture point kind "replay" (the values format_golden_test.cc writes out by hand), and that no
record of v1.0.tap carries replay_of.

  golden_flatc_test.py SOURCE_DIR FLATC

Exit 0 passed, 1 failed, 77 skipped (zstd missing; a failure under CI=true)."""
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

MARKER = bytes.fromhex('d37a61705345479c')


def fail(msg):
    print('FAIL: ' + msg)
    sys.exit(1)


def flatc_json(flatc, schema, root, data, size_prefixed, work):
    path = os.path.join(work, 'buf.bin')
    with open(path, 'wb') as f:
        f.write(data)
    args = [flatc, '--json', '--strict-json', '--raw-binary', '--root-type', 'tapkit.fb.' + root,
            '-o', work, schema, '--', path]
    if size_prefixed:
        args.insert(4, '--size-prefixed')
    subprocess.run(args, check=True)
    with open(os.path.join(work, 'buf.json')) as f:
        return json.load(f)


def read(path, flatc, schema, work):
    """Returns (minor, header, [exchange records as dicts])."""
    with open(path, 'rb') as f:
        d = f.read()
    if d[:8] != b'\x89TAP\r\n\x1a\n':
        fail(path + ': bad magic')
    major, minor, m = struct.unpack('<HHI', d[8:16])
    header = flatc_json(flatc, schema, 'CaptureHeader', d[24:24 + m], False, work)
    records = []
    at = 24 + m
    while at < len(d) - 16:
        if d[at:at + 8] != MARKER:
            fail('%s: no block marker at %d' % (path, at))
        hlen, btype, codec = struct.unpack('<HBB', d[at + 24:at + 28])
        count, meta_stored, meta_raw, body_stored = struct.unpack('<IIII', d[at + 32:at + 48])
        meta = d[at + hlen:at + hlen + meta_stored]
        if codec == 1:
            meta = subprocess.run(['zstd', '-dc'], input=meta, capture_output=True,
                                  check=True).stdout
        if len(meta) != meta_raw:
            fail('%s: block at %d: %d raw bytes, header says %d' % (path, at, len(meta), meta_raw))
        if btype == 1:
            p = 0
            while p < len(meta):
                n = struct.unpack('<I', meta[p:p + 4])[0]
                records.append(flatc_json(flatc, schema, 'Exchange', meta[p:p + 4 + n], True, work))
                p += 4 + n
        at += hlen + meta_stored + body_stored
    return major, minor, header, records


def main():
    src, flatc = sys.argv[1], sys.argv[2]
    if not shutil.which('zstd'):
        msg = 'zstd CLI not found (scripts/deps.sh installs it)'
        if os.environ.get('CI') == 'true':
            fail(msg + '; CI=true')
        print('SKIP: ' + msg)
        sys.exit(77)
    schema = os.path.join(src, 'format', 'tap.fbs')
    golden = os.path.join(src, 'fixtures', 'golden')
    with tempfile.TemporaryDirectory() as work:
        major, minor, header, xs = read(os.path.join(golden, 'v1.3.tap'), flatc, schema, work)
        if (major, minor) != (1, 3):
            fail('v1.3.tap says version %d.%d' % (major, minor))
        points = [(p.get('id', 0), p.get('kind'), p.get('name')) for p in header['capture_points']]
        if points != [(0, 'replay', 'http://127.0.0.1:8080'), (1, 'interface', 'lo')]:
            fail('v1.3.tap capture points: %r' % points)
        if header.get('extra') != [{'key': 'tapreplay.source', 'value': 'v1.0.tap'}]:
            fail('v1.3.tap extra: %r' % header.get('extra'))
        t1 = 1764547200000000000
        got = [(x['sort_key'], x.get('capture_point', 0), x['stream_id'], x.get('replay_of'))
               for x in xs]
        want = [(t1 + 250000000, 0, 1, {'capture_point': 0, 'stream_id': 1}),
                (t1 + 750000000, 0, 2, {'capture_point': 0, 'stream_id': 2}),
                (t1 + 1250000000, 0, 3, {'capture_point': 1, 'stream_id': 9007199254740993}),
                (t1 + 1500000000, 1, 1, None)]
        if got != want:
            fail('v1.3.tap exchanges:\n  got  %r\n  want %r' % (got, want))
        if xs[2].get('completion') != 'NoResponse' or 'response' in xs[2]:
            fail('v1.3.tap exchange 3 should be NoResponse without a response: %r' % xs[2])

        major, minor, header, xs = read(os.path.join(golden, 'v1.0.tap'), flatc, schema, work)
        if (major, minor) != (1, 0) or len(xs) != 5:
            fail('v1.0.tap: version %d.%d, %d exchanges' % (major, minor, len(xs)))
        if any('replay_of' in x for x in xs):
            fail('v1.0.tap: a record carries replay_of')
    print('ok: v1.3.tap and v1.0.tap decoded by flatc and zstd')


if __name__ == '__main__':
    main()
