#!/usr/bin/env python3
"""Hand numpy frames (4 MiB) to another process: multiprocessing.Pipe, then
mmring.Queue without copying out.

The standard way: Connection.send_bytes(array) and recv_bytes_into a
preallocated array: the bytes go through the kernel, copied in and out. The
mmring way: reserve a slot in the ring and fill it in place (one copy in),
view the received frame in place on the other side (no copy out).

    python numpy_frames.py [FRAMES]
"""

import multiprocessing as mp
import sys
import time

import numpy as np

import mmring

SHAPE, DTYPE = (1024, 512), np.float64  # 4 MiB


def pipe_consumer(conn, frames, out):
    buf = np.empty(SHAPE, DTYPE)
    raw = buf.reshape(-1).view(np.uint8)  # recv_bytes_into counts len() as bytes
    total = 0.0
    for _ in range(frames):
        conn.recv_bytes_into(raw)
        total += buf[0, 0]
    out.put(total)


def ring_consumer(q, frames, out):
    total = 0.0
    for _ in range(frames):
        with q.get_view() as view:
            frame = np.frombuffer(view, DTYPE).reshape(SHAPE)  # no copy
            total += frame[0, 0]
            del frame
    out.put(total)


def run(name, frames, send, consumer, channel):
    out = mp.Queue()
    p = mp.Process(target=consumer, args=(channel, frames, out))
    p.start()
    frame = np.random.default_rng(0).random(SHAPE)
    t = time.perf_counter()
    for i in range(frames):
        frame[0, 0] = i
        send(frame)
    total = out.get()
    p.join()
    dt = time.perf_counter() - t
    assert total == sum(range(frames))
    print(f"{name:28s} {frames * frame.nbytes / dt / 1e9:6.2f} GB/s  ({frames / dt:7.1f} frames/s)")


if __name__ == "__main__":
    frames = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    nbytes = np.empty(SHAPE, DTYPE).nbytes

    r, w = mp.Pipe(duplex=False)
    run("multiprocessing.Pipe", frames, w.send_bytes, pipe_consumer, r)

    q = mmring.Queue(capacity=8, max_message=nbytes)

    def send(frame):
        with q.reserve(nbytes) as slot:  # room in the ring, filled in place
            np.copyto(np.frombuffer(slot, DTYPE).reshape(SHAPE), frame)

    run("mmring.Queue reserve/view", frames, send, ring_consumer, q)
