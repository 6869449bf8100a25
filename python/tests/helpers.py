"""Worker functions for child processes (importable under spawn/forkserver)."""

from __future__ import annotations

import dataclasses
import os
import signal
import time


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: float
    label: str


class Custom:
    def __init__(self, v):
        self.v = v

    def __eq__(self, other):
        return isinstance(other, Custom) and other.v == self.v


def echo_queue(qin, qout, n):
    for _ in range(n):
        qout.put(qin.get(timeout=30))


def produce(q, pid, n):
    for i in range(n):
        q.put((pid, i))


def produce_many(q, pid, n, batch):
    i = 0
    while i < n:
        k = min(batch, n - i)
        q.put_many([(pid, j) for j in range(i, i + k)])
        i += k


def consume_until_none(q, out):
    """Gets until a None; reports the (pid, seq) pairs seen as one list."""
    seen = []
    while True:
        item = q.get(timeout=60)
        if item is None:
            break
        seen.append(item)
    out.put(seen)


def consume_until_none_count(q, out, producers):
    """As consume_until_none, but reports per-producer sequence checks and
    a checksum instead of the whole list (for large runs)."""
    last = {}
    count = 0
    total = 0
    in_order = True
    while True:
        item = q.get(timeout=120)
        if item is None:
            break
        p, i = item
        if last.get(p, -1) >= i:
            in_order = False
        last[p] = i
        count += 1
        total += i + p * 1_000_003
    out.put((count, total, in_order))


def pipe_echo(conn, n):
    for _ in range(n):
        conn.send(conn.recv())
    conn.close()


def pipe_send_and_close(conn, items):
    for it in items:
        conn.send(it)
    conn.close()


def hold_view_then_wait(q, ready):
    v = q.get_view()  # noqa: F841 - held until killed
    ready.set()
    time.sleep(600)


def hold_reservation_then_wait(q, ready):
    w = q.reserve(16)  # noqa: F841 - held until killed
    ready.set()
    time.sleep(600)


def busy_consumer(q, ready):
    ready.set()
    while True:
        q.get()


def kill_self_midway(q, n):
    for i in range(n):
        q.put(("dying", i))
    os.kill(os.getpid(), signal.SIGKILL)


def block_until_interrupted(kind, obj, ready, report):
    """Blocks in `kind` on `obj` until SIGINT; reports the KeyboardInterrupt
    and its time, then shows that nothing was lost or added."""
    # Python's own handler, whatever this process inherited (a shell that
    # runs the tests in the background starts them with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ready.set()
    try:
        if kind == "get":
            obj.get()
        elif kind == "put":
            obj.put("overflow")  # the queue is full
        else:
            obj.recv()
        report.put(("returned", None))
    except KeyboardInterrupt:
        report.put(("interrupted", time.monotonic()))
    if kind == "get":
        report.put(obj.get(timeout=30))
    elif kind == "put":
        obj.put("after", timeout=30)
        report.put("put after")
    else:
        report.put(obj.recv())


def put_one(q, i):
    q.put(i)  # the process exits without detaching (multiprocessing's os._exit)
