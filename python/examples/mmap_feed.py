#!/usr/bin/env python3
"""A price feed between processes: an mmap polled with sleep(), then a named
mmring ring.

The common hand-rolled version: the writer stores (seq, price) into a shared
mmap; the reader polls it every millisecond and sees only the latest value
(updates in between are lost, each one is late by up to a sleep). The
mmring version: every update is a message in a ring file under /dev/shm
(the same file the Rust API and the `mmring` CLI could open); the reader
blocks on it, gets every update in order, woken as soon as it is published.

    python mmap_feed.py [N]
"""

import mmap
import multiprocessing as mp
import os
import struct
import sys
import tempfile
import time

import mmring

REC = struct.Struct("<qd")  # seq, price


# ---- standard library: mmap + sleep() polling -----------------------------


def mmap_writer(path, n):
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), REC.size) as m:
        for i in range(1, n + 1):
            m[: REC.size] = REC.pack(i, 100.0 + i / 100)


def mmap_reader(path, n, out):
    seen, last = 0, 0
    with open(path, "r+b") as f, mmap.mmap(f.fileno(), REC.size) as m:
        while last < n:
            seq, _price = REC.unpack(m[: REC.size])
            if seq != last:
                seen += 1
                last = seq
            else:
                time.sleep(0.001)
    out.put(seen)


def run_mmap(n):
    fd, path = tempfile.mkstemp(dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    os.write(fd, bytes(REC.size))
    os.close(fd)
    out = mp.Queue()
    r = mp.Process(target=mmap_reader, args=(path, n, out))
    r.start()
    t = time.perf_counter()
    mmap_writer(path, n)
    seen = out.get()
    r.join()
    dt = time.perf_counter() - t
    os.unlink(path)
    print(f"mmap + sleep(0.001)   {n / dt / 1e6:6.2f} M updates/s written, "
          f"{seen} of {n} seen by the reader ({100 * seen / n:.2f} %)")


# ---- mmring: a named ring, every update delivered -------------------------


def ring_reader(path, n, out):
    rx = mmring.Ring.open(path).consumer()
    seen = 0
    for i in range(1, n + 1):
        seq, _price = REC.unpack(rx.recv())
        assert seq == i
        seen += 1
    out.put(seen)


def run_ring(n):
    path = f"/dev/shm/mmring-feed-example-{os.getpid()}"
    ring = mmring.Ring.create(path, "spsc", capacity=1 << 20)
    out = mp.Queue()
    r = mp.Process(target=ring_reader, args=(path, n, out))
    r.start()
    tx = ring.producer()
    t = time.perf_counter()
    for i in range(1, n + 1):
        tx.send(REC.pack(i, 100.0 + i / 100))
    seen = out.get()
    r.join()
    dt = time.perf_counter() - t
    os.unlink(path)
    print(f"mmring named ring     {n / dt / 1e6:6.2f} M updates/s, {seen} of {n} delivered in order")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
    run_mmap(n)
    run_ring(n)
