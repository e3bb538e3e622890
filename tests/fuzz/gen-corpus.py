#!/usr/bin/env python3
# gen-corpus.py - write the small committed seed corpora of the fuzz targets
# (tests/fuzz/corpus/<target>/).  The layouts are described at the top of
# each fuzz_<target>.c.  Run from anywhere; overwrites the seed files.
import os
import struct

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), 'wb') as f:
        f.write(data)


def pkt(cmd, body, msg_id=1):
    return struct.pack('<IHHII', 16 + len(body), cmd, 0, msg_id, 0) + body


def control(name, packet, nfds=0, flags=0, fixup=3):
    cm = b''
    ncm = 0
    if nfds:
        cm = bytes([1, 1, nfds])
        ncm = 1
    put('control', name, bytes([flags, (ncm << 2) | fixup]) + cm + packet)


control('hello', pkt(1, struct.pack('<HHIQ', 1, 0, 0, 1234)))
control('memory_add', pkt(2, struct.pack('<QII', 1 << 21, 0, 0)), nfds=1)
control('memory_add_ro_2fds', pkt(2, struct.pack('<QII', 1 << 21, 1, 0)), nfds=2)
control('memory_remove', pkt(3, struct.pack('<II', 4097, 0)))
control('region_add', pkt(4, struct.pack('<IIQQQQ', 4097, 0, 0, 1 << 25, 1 << 32, 1 << 21)))
control('region_add_overflow', pkt(4, struct.pack('<IIQQQQ', 1, 0, 0, 1 << 21, (1 << 64) - (1 << 21), 1 << 21)))
control('region_remove', pkt(5, struct.pack('<II', 4098, 0)))
control('ring_setup', pkt(6, struct.pack('<IIII', 256, 512, 0, 0)))
control('device_attach', pkt(7, struct.pack('<II', 0, 0)), nfds=1)
control('device_detach', pkt(8, struct.pack('<II', 1, 0)))
control('query_audit', pkt(9, struct.pack('<IIQII', 4, 1, 0, 4097, 2)))
control('bye_trailing', pkt(10, bytes(8)))
control('truncated', pkt(1, struct.pack('<HHIQ', 1, 0, 0, 0)), flags=1)
control('short', b'\x10\x00\x00')


def sqe(op, region, off, length, ud, steer=True, flags=0):
    return struct.pack('<BBHIQQQ', op, flags, 0x8000 if steer else 0, region, off, length, ud)


put('sqe', 'populate_discard', bytes([1, 0]) + sqe(1, 0, 0, 8 << 12, 1) + sqe(2, 0, 2 << 12, 2 << 12, 2))
put('sqe', 'mixed_regions', bytes([1, 0]) + b''.join(sqe(1 + (i & 1), i << 3, i, i + 3, 100 + i) for i in range(8)))
put('sqe', 'map_fault_mid', bytes([3, 2]) + sqe(1, 0, 0, 6 << 12, 7) + sqe(1, 8, 0, 4, 8))
put('sqe', 'unmap_fault', bytes([5 | 8, 0]) + sqe(1, 0, 0, 16, 1) + sqe(2, 0, 4, 3, 2) + sqe(2, 0, 9, 2, 3))
put('sqe', 'raw_bad', bytes([1, 0]) + sqe(3, 7, 1, 0, 9, steer=False) + sqe(1, 0, 4096, 1 << 63, 10, steer=False, flags=1))


def ring(name, shape, cmds):
    put('ring', name, bytes([shape]) + bytes(cmds))


ring('honest', 1, [7, 5, 6, 0, 7, 7, 6, 3])
ring('cq_full', 0, [7, 7, 6, 0, 7, 7, 6, 0, 2, 1, 6, 0])
ring('tail_jump', 2, [0, 40, 6, 0])
ring('tail_raw', 3, [1, 0xff, 0xff, 0xff, 0xff, 6, 1])
ring('slot_write', 1, [4, 0] + list(sqe(1, 0, 0, 2, 77)) + [0, 1, 6, 0, 2, 1, 6, 0])
ring('wait_flags', 5, [5, 15, 7, 3, 6, 0, 5, 0, 7, 2, 6, 2])
# The same shapes on the async path (byte 0 bit 3: the session's executor).
ring('honest_async', 1 | 8, [7, 5, 6, 0, 7, 7, 6, 3])
ring('cq_full_async', 0 | 8, [7, 7, 6, 0, 7, 7, 6, 0, 2, 1, 6, 0])
ring('tail_raw_async', 3 | 8, [7, 4, 1, 0xff, 0xff, 0xff, 0xff, 6, 1])
# Audit and queries with a planted STRAY and MISSING granule (bits 4 and 5).
put('sqe', 'audit_planted', bytes([1 | 0x30, 5]) + sqe(1, 0, 0, 12, 1) + sqe(1, 8, 3, 9, 2))
put('sqe', 'audit_bad_cursor', bytes([0x10 | 0x40, 3]))


# fuzz-session: requests as (op byte, body).  op: cmd | 16 (steer) | fd kind << 5.
def req(cmd, body=b'', steer=True, fd=0):
    return bytes([cmd | (16 if steer else 0) | (fd << 5), len(body)]) + body


mem_add = struct.pack('<QII', 255, 0, 0)          # steered to 1 MiB
region = struct.pack('<IIQQQQ', 0, 0, 0, 7, 3, 0)  # steered geometry
ring_setup = struct.pack('<IIII', 8, 16, 0, 0)
query = struct.pack('<IIQII', 3, 0, 0, 0, 0)
put('session', 'objects', bytes([0]) + req(2, mem_add, fd=1) + req(4, region) + req(4, region)
    + req(6, ring_setup) + req(9, query) + req(5, struct.pack('<II', 0, 0)) + req(3, struct.pack('<II', 0, 0))
    + req(10))
put('session', 'bad_fds', bytes([0]) + req(2, mem_add, fd=2) + req(2, mem_add, fd=3) + req(2, mem_add, fd=4)
    + req(2, mem_add, fd=5) + req(2, mem_add, fd=6) + req(7, struct.pack('<II', 0, 0), fd=7) + req(9, query, fd=1))
put('session', 'no_hello', bytes([0xff]) + req(9, query))
put('session', 'remove_busy', bytes([1]) + req(2, mem_add, fd=7) + req(4, region) + req(3, struct.pack('<II', 8, 0))
    + req(5, struct.pack('<II', 0, 0)) + req(3, struct.pack('<II', 0, 0)) + req(2, mem_add, fd=1))
