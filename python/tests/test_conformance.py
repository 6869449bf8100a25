"""One suite, two implementations: every scenario runs against
multiprocessing's Queue/Pipe and mmring's, and must observe the same."""

from __future__ import annotations

import datetime
import decimal
import fractions
import multiprocessing as mp
import queue
import time

import pytest

import mmring
from helpers import Custom, Point, echo_queue, pipe_echo, pipe_send_and_close, produce

QUEUES = {
    "multiprocessing": lambda ctx, maxsize=0: ctx.Queue(maxsize),
    "mmring": lambda ctx, maxsize=0: mmring.Queue(maxsize),
}
PIPES = {
    "multiprocessing": lambda ctx, duplex=True: ctx.Pipe(duplex),
    "mmring": lambda ctx, duplex=True: mmring.Pipe(duplex),
}

FORK = mp.get_context("fork")


@pytest.fixture(params=list(QUEUES))
def make_queue(request):
    return lambda maxsize=0, ctx=FORK: QUEUES[request.param](ctx, maxsize)


@pytest.fixture(params=list(PIPES))
def make_pipe(request):
    return lambda duplex=True, ctx=FORK: PIPES[request.param](ctx, duplex)


ASSORTED = [
    None,
    True,
    0,
    -1,
    2**100,
    3.25,
    float("inf"),
    complex(1, -2),
    "",
    "naïve ünïcode ✓",
    b"",
    b"\x00\xffbytes",
    bytearray(b"mutable"),
    (1, "two", 3.0),
    [1, [2, [3, []]]],
    {"k": {"nested": [1, 2]}, 5: None},
    {1, 2, 3},
    frozenset({"a"}),
    range(3, 30, 3),
    decimal.Decimal("1.10"),
    fractions.Fraction(1, 3),
    datetime.datetime(2026, 11, 30, 12, 0, 1),
    Point(1, 2.5, "p"),
    Custom([1, 2]),
    ValueError("boom"),
    "x" * 50_000,
    bytes(range(256)) * 100,
]


def same(a, b):
    if isinstance(a, BaseException):
        return type(a) is type(b) and a.args == b.args
    return type(a) is type(b) and a == b


# --- Queue ---------------------------------------------------------------


def test_fifo_order_and_types(make_queue):
    q = make_queue()
    for obj in ASSORTED:
        q.put(obj)
    got = [q.get(timeout=10) for _ in ASSORTED]
    assert all(same(a, b) for a, b in zip(ASSORTED, got)), got


def test_memoryview_arrives_as_its_bytes():
    # The standard queue pickles, and a memoryview cannot be pickled; mmring
    # copies its bytes and delivers them as bytes.
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(memoryview(b"x"), protocol=5)
    q = mmring.Queue()
    q.put(memoryview(b"view me")[5:])
    assert q.get(timeout=5) == b"me"


def test_empty_raises_where_the_stdlib_does(make_queue):
    q = make_queue()
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(False)
    t = time.monotonic()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.2)
    assert time.monotonic() - t >= 0.19
    with pytest.raises(queue.Empty):
        q.get(True, 0)
    q.put("x")
    assert q.get(timeout=5) == "x"
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)


@pytest.mark.parametrize("maxsize", [1, 2, 3, 4, 5])
def test_full_raises_where_the_stdlib_does(make_queue, maxsize):
    q = make_queue(maxsize)
    for i in range(maxsize):
        q.put_nowait(i)
    assert q.qsize() == maxsize
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait("over")
    with pytest.raises(queue.Full):
        q.put("over", False)
    t = time.monotonic()
    with pytest.raises(queue.Full):
        q.put("over", timeout=0.2)
    assert time.monotonic() - t >= 0.19
    assert q.get(timeout=5) == 0
    q.put_nowait(maxsize)  # room for exactly one again
    with pytest.raises(queue.Full):
        q.put_nowait("over")
    assert [q.get(timeout=5) for _ in range(maxsize)] == list(range(1, maxsize + 1))
    assert q.qsize() == 0
    assert not q.full()


def test_blocked_put_resumes_when_room_is_made(make_queue):
    import threading

    q = make_queue(1)
    q.put("first")
    threading.Timer(0.2, q.get).start()
    t = time.monotonic()
    q.put("second", timeout=10)
    assert time.monotonic() - t >= 0.15
    assert q.get(timeout=5) == "second"


def test_qsize_and_empty(make_queue):
    q = make_queue()
    assert q.qsize() == 0
    assert q.empty()
    for i in range(5):
        q.put(i)
    assert q.qsize() == 5
    deadline = time.monotonic() + 5
    while q.empty() and time.monotonic() < deadline:  # the stdlib's feeder thread lags
        time.sleep(0.01)
    assert not q.empty()
    for _ in range(5):
        q.get(timeout=5)
    assert q.qsize() == 0
    assert q.empty()


def test_closing(make_queue):
    q = make_queue()
    q.put(1)
    with pytest.raises(AssertionError):
        q.join_thread()
    q.close()
    with pytest.raises(ValueError, match="is closed"):
        q.put(2)
    with pytest.raises(ValueError, match="is closed"):
        q.get(timeout=1)
    q.join_thread()
    q.cancel_join_thread()


def test_order_per_producer_across_processes(make_queue):
    q = make_queue()
    n, producers = 300, 3
    procs = [FORK.Process(target=produce, args=(q, p, n)) for p in range(producers)]
    for p in procs:
        p.start()
    got = [q.get(timeout=30) for _ in range(n * producers)]
    for p in procs:
        p.join(30)
        assert p.exitcode == 0
    for pid in range(producers):
        assert [i for (p, i) in got if p == pid] == list(range(n))


def test_queue_crosses_every_start_method(make_queue, ctx):
    qin, qout = make_queue(ctx=ctx), make_queue(ctx=ctx)
    p = ctx.Process(target=echo_queue, args=(qin, qout, len(ASSORTED)))
    p.start()
    for obj in ASSORTED:
        qin.put(obj)
    got = [qout.get(timeout=60) for _ in ASSORTED]
    p.join(60)
    assert p.exitcode == 0
    assert all(same(a, b) for a, b in zip(ASSORTED, got))


# --- Pipe ----------------------------------------------------------------


def test_pipe_objects_both_ways(make_pipe):
    a, b = make_pipe()
    for obj in ASSORTED:
        a.send(obj)
        assert same(obj, b.recv())
        b.send(obj)
        assert same(obj, a.recv())


def test_pipe_bytes(make_pipe):
    a, b = make_pipe()
    a.send_bytes(b"hello world", 6)
    assert b.recv_bytes() == b"world"
    a.send_bytes(bytearray(b"hello world"), 0, 5)
    assert b.recv_bytes() == b"hello"
    a.send_bytes(memoryview(b"abcdef")[1:4])
    assert b.recv_bytes() == b"bcd"
    a.send_bytes(b"")
    assert b.recv_bytes() == b""
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", -1)
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", 4)
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", 1, 3)
    with pytest.raises(ValueError):
        a.send_bytes(b"abc", 0, -1)


def test_pipe_recv_bytes_into(make_pipe):
    a, b = make_pipe()
    buf = bytearray(10)
    a.send_bytes(b"abcd")
    assert b.recv_bytes_into(buf, 3) == 4
    assert buf == b"\x00\x00\x00abcd\x00\x00\x00"
    a.send_bytes(b"0123456789AB")
    with pytest.raises(mp.BufferTooShort) as e:
        b.recv_bytes_into(buf)
    assert e.value.args[0] == b"0123456789AB"


def test_pipe_recv_bytes_maxlength(make_pipe):
    a, b = make_pipe()
    a.send_bytes(b"0123456789")
    with pytest.raises(OSError):
        b.recv_bytes(5)


def test_pipe_poll(make_pipe):
    a, b = make_pipe()
    assert not b.poll()
    t = time.monotonic()
    assert not b.poll(0.2)
    assert time.monotonic() - t >= 0.19
    a.send("x")
    assert b.poll(5)
    assert b.poll()
    assert b.recv() == "x"
    assert not b.poll(0)


def test_pipe_eof_after_close(make_pipe):
    a, b = make_pipe()
    a.send(1)
    a.close()
    assert a.closed
    assert b.recv() == 1
    assert b.poll(1)  # end of stream counts as readable
    with pytest.raises(EOFError):
        b.recv()
    with pytest.raises(OSError):
        a.send(2)


def test_pipe_one_way(make_pipe):
    r, w = make_pipe(duplex=False)
    assert r.readable and not r.writable
    assert w.writable and not w.readable
    w.send("one way")
    assert r.recv() == "one way"
    with pytest.raises(OSError):
        r.send("back")
    with pytest.raises(OSError):
        w.recv()


def test_pipe_crosses_every_start_method(make_pipe, ctx):
    a, b = make_pipe(ctx=ctx)
    p = ctx.Process(target=pipe_echo, args=(b, len(ASSORTED)))
    p.start()
    b.close()
    for obj in ASSORTED:
        a.send(obj)
        assert same(obj, a.recv())
    with pytest.raises(EOFError):
        a.recv()  # the child closed its end and exited
    p.join(60)
    assert p.exitcode == 0


def test_pipe_eof_when_the_child_exits_without_sending(make_pipe, ctx):
    r, w = make_pipe(duplex=False, ctx=ctx)
    p = ctx.Process(target=pipe_send_and_close, args=(w, []))
    p.start()
    w.close()
    with pytest.raises(EOFError):
        r.recv()
    p.join(60)
    assert p.exitcode == 0


def test_threads_share_one_queue(make_queue):
    """Several threads of one process put and get on the same queue object
    at once (blocking calls release the GIL; mmring keeps a handle per
    concurrent caller)."""
    import threading

    q = make_queue()
    n, threads = 2000, 4
    got = [[] for _ in range(threads)]

    def put(t):
        for i in range(n):
            q.put((t, i))

    def get(t):
        for _ in range(n):
            got[t].append(q.get(timeout=30))

    ts = [threading.Thread(target=get, args=(t,)) for t in range(threads)]
    ts += [threading.Thread(target=put, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60)
    assert sorted(x for g in got for x in g) == sorted((t, i) for t in range(threads) for i in range(n))
    for g in got:  # each getter sees each putter's items in order
        for t in range(threads):
            seq = [i for (p, i) in g if p == t]
            assert seq == sorted(seq)
