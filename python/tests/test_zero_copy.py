"""Zero-copy views: numpy frames in and out of the ring, the view's
address inside the ring's mapping, use after release refused."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue

import numpy as np
import pytest

import mmring

MiB = 1 << 20


def mapping_of(addr: int) -> str | None:
    """The /proc/self/maps line whose range holds `addr`."""
    with open("/proc/self/maps") as f:
        for line in f:
            lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
            if lo <= addr < hi:
                return line.strip()
    return None


def address(buf) -> int:
    return np.frombuffer(buf, dtype=np.uint8).__array_interface__["data"][0]


def numpy_consumer(q, out):
    v = q.get_view(timeout=60)
    arr = np.frombuffer(v, dtype=np.float64)
    out.put((float(arr.sum()), arr.shape, mapping_of(arr.__array_interface__["data"][0])))
    del arr
    v.release()


def test_numpy_4mib_round_trip_between_processes():
    ctx = mp.get_context("spawn")
    q = mmring.Queue(capacity=4, max_message=4 * MiB)
    out = mmring.Queue()
    p = ctx.Process(target=numpy_consumer, args=(q, out))
    p.start()
    src = np.random.default_rng(1).random(4 * MiB // 8)
    with q.reserve(src.nbytes, timeout=30) as w:
        dst = np.frombuffer(w, dtype=np.float64)
        dst[:] = src  # the one copy: into the ring
        del dst
    total, shape, where = out.get(timeout=60)
    p.join(60)
    assert p.exitcode == 0
    assert shape == src.shape
    assert total == float(src.sum())
    assert where is not None and "memfd:mmring" in where


def test_view_lies_inside_the_named_ring_mapping(shm_path):
    q = mmring.Queue(max_message=MiB, capacity=4, path=str(shm_path))
    payload = np.arange(MiB // 8, dtype=np.int64)
    q.put(payload.tobytes())
    with q.get_view() as v:
        addr = address(v)
        line = mapping_of(addr)
        assert line is not None, hex(addr)
        # The mapping is of the ring file (by inode: /proc names it by the
        # temporary name it was created under).
        assert int(line.split()[4]) == os.stat(shm_path).st_ino, line
        assert len(v) == payload.nbytes
        got = np.frombuffer(v, dtype=np.int64)
        assert got.flags.writeable is False
        assert (got == payload).all()
        del got
    # The payload starts after the 8-byte frame header, 8-byte aligned.
    assert addr % 8 == 0


def test_write_view_lies_inside_the_mapping():
    q = mmring.Queue(capacity=2, max_message=4096)
    w = q.reserve(100)
    line = mapping_of(address(w))
    assert line is not None and "memfd:mmring" in line, line
    with memoryview(w) as m:
        m[:5] = b"hello"
    w.commit(5)
    assert q.get(timeout=5) == b"hello"


def test_read_view_is_read_only():
    q = mmring.Queue()
    q.put(b"abc")
    v = q.get_view()
    m = memoryview(v)
    assert m.readonly
    with pytest.raises(TypeError):
        m[0] = 1
    with pytest.raises(ValueError):
        np.frombuffer(v, dtype=np.uint8)[0] = 1
    m.release()
    v.release()


def test_use_after_release_is_refused():
    q = mmring.Queue()
    q.put(b"first")
    q.put(b"second")
    v = q.get_view()
    m = memoryview(v)
    assert bytes(m) == b"first"
    m.release()
    with pytest.raises(ValueError):
        m[0]  # a released memoryview cannot be read
    v.release()
    assert v.released
    with pytest.raises(ValueError):
        memoryview(v)
    with pytest.raises(ValueError):
        bytes(v)
    with pytest.raises(ValueError):
        v.tobytes()
    with pytest.raises(ValueError):
        len(v)
    assert q.get(timeout=5) == b"second"


def test_release_waits_for_exported_buffers():
    """Releasing a view whose buffers are still alive (a numpy array made
    from it) keeps the message until the last buffer goes: the array never
    reads freed space, and the view exports nothing new."""
    q = mmring.Queue(capacity=2, max_message=64)
    q.put(b"12345678")
    v = q.get_view()
    arr = np.frombuffer(v, dtype=np.uint8)
    v.release()
    assert v.released
    with pytest.raises(ValueError):
        memoryview(v)
    # The slot is still held: the ring's two slots are one held + one free.
    q.put(b"x")
    with pytest.raises(queue.Full):
        q.put_nowait(b"y")
    assert bytes(arr) == b"12345678"
    del arr  # last export gone: the slot is released
    q.put(b"y", timeout=5)
    assert q.get(timeout=5) == b"x"
    assert q.get(timeout=5) == b"y"


def test_context_manager_releases():
    q = mmring.Queue(capacity=2, max_message=64)
    q.put(b"a")
    with q.get_view() as v:
        assert v.tobytes() == b"a"
    assert v.released
    with pytest.raises(ValueError):
        memoryview(v)


def test_write_view_commit_rules():
    q = mmring.Queue(capacity=2, max_message=64)
    w = q.reserve(8)
    m = memoryview(w)
    with pytest.raises(BufferError):
        w.commit()  # a live buffer could still write after publication
    m[:] = b"abcdefgh"
    m.release()
    with pytest.raises(ValueError):
        w.commit(9)
    w.commit()
    with pytest.raises(ValueError):
        w.commit()
    assert q.get(timeout=5) == b"abcdefgh"
    # An exception inside the with block aborts: nothing is published.
    with pytest.raises(RuntimeError):
        with q.reserve(4) as w:
            raise RuntimeError("changed my mind")
    with pytest.raises(queue.Empty):
        q.get(timeout=0.1)
    with pytest.raises(ValueError, match="65 bytes exceeds .* 64 bytes"):
        q.reserve(65)


def test_pipe_views():
    a, b = mmring.Pipe()
    w = a.reserve(16)
    np.frombuffer(w, dtype=np.uint64)[:] = [7, 9]
    w.commit()
    with b.recv_view() as v:
        assert np.frombuffer(v, dtype=np.uint64).tolist() == [7, 9]
        assert "memfd:mmring" in mapping_of(address(v))


def test_batches():
    q = mmring.Queue(capacity=64, max_message=64)
    assert q.put_many(range(50)) == 50
    got = q.get_many(20)
    assert got == list(range(20))
    got += q.get_many(100)
    assert got == list(range(50))
    with pytest.raises(queue.Empty):
        q.get_many(10, timeout=0.05)
    # More than fit: non-blocking puts what fits and says how many.
    assert q.put_many([b"x"] * 100, block=False) == 64
    with pytest.raises(queue.Full):
        q.put_many([b"y"], block=False)
    assert len(q.get_many(1000)) == 64
    a, b = mmring.Pipe()
    assert a.send_bytes_many([b"%d" % i for i in range(1000)]) == 1000
    got = []
    while len(got) < 1000:
        got += b.recv_bytes_many(300)
    assert got == [b"%d" % i for i in range(1000)]


def test_oversize_names_both_sizes():
    q = mmring.Queue(max_message=1000)
    with pytest.raises(ValueError, match="1001 bytes exceeds the ring's max_message of 1000 bytes"):
        q.put(b"x" * 1001)
    q.put(b"x" * 1000)
    assert q.get(timeout=5) == b"x" * 1000
    a, b = mmring.Pipe(capacity=4096)
    with pytest.raises(ValueError, match="4096 bytes exceeds the ring's max_message of 2040 bytes"):
        a.send_bytes(b"x" * 4096)
