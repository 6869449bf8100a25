"""mmring.Queue between many processes: exactly-once delivery at scale,
workers killed with SIGKILL, Ctrl-C during a blocking get."""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

import mmring
from helpers import (
    consume_until_none_count,
    hold_reservation_then_wait,
    hold_view_then_wait,
    kill_self_midway,
    produce,
)

STRESS = int(os.environ.get("MMRING_PY_STRESS_MESSAGES", "1000000"))


def test_four_producers_four_consumers_exactly_once():
    """4 producer and 4 consumer processes; every message arrives exactly
    once, in order per producer (each consumer sees a subsequence)."""
    ctx = mp.get_context("fork")
    producers, consumers = 4, 4
    per = STRESS // producers
    q = mmring.Queue(capacity=1024, max_message=256)
    out = mmring.Queue()
    ps = [ctx.Process(target=produce, args=(q, p, per)) for p in range(producers)]
    cs = [ctx.Process(target=consume_until_none_count, args=(q, out, producers)) for _ in range(consumers)]
    t = time.monotonic()
    for p in cs + ps:
        p.start()
    for p in ps:
        p.join(600)
        assert p.exitcode == 0
    for _ in cs:
        q.put(None)
    results = [out.get(timeout=600) for _ in cs]
    for p in cs:
        p.join(60)
        assert p.exitcode == 0
    elapsed = time.monotonic() - t
    count = sum(r[0] for r in results)
    total = sum(r[1] for r in results)
    expected_total = sum(i + p * 1_000_003 for p in range(producers) for i in range(per))
    assert count == per * producers
    assert total == expected_total
    assert all(r[2] for r in results), "a consumer saw a producer's messages out of order"
    print(f"\n4x4: {count} messages in {elapsed:.1f} s ({count / elapsed / 1e6:.2f} M msgs/s)")


def kill(p):
    os.kill(p.pid, signal.SIGKILL)
    p.join(10)
    assert p.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("worker", [hold_view_then_wait, hold_reservation_then_wait])
def test_worker_killed_holding_a_slot_does_not_wedge_the_queue(ctx, worker):
    """A consumer killed while it holds a message's slot (a view), or a
    producer killed while it holds a reserved slot, does not stop the
    others: the slot is recovered when the ring comes round to it."""
    q = mmring.Queue(capacity=4, max_message=64)
    ready = ctx.Event()
    if worker is hold_view_then_wait:
        q.put("taken by the worker")
    p = ctx.Process(target=worker, args=(q, ready))
    p.start()
    assert ready.wait(60)
    kill(p)
    for i in range(40):  # ten laps of the ring
        q.put(i, timeout=10)
        assert q.get(timeout=10) == i


def test_producer_killed_mid_stream_loses_only_its_own_unsent():
    ctx = mp.get_context("fork")
    q = mmring.Queue(capacity=64, max_message=64)
    p = ctx.Process(target=kill_self_midway, args=(q, 10))
    p.start()
    p.join(30)
    assert p.exitcode == -signal.SIGKILL
    got = [q.get(timeout=10) for _ in range(10)]
    assert got == [("dying", i) for i in range(10)]
    q.put("after")
    assert q.get(timeout=10) == "after"


def test_consumer_killed_while_blocked_does_not_wedge():
    ctx = mp.get_context("spawn")
    q = mmring.Queue(capacity=8, max_message=64)
    ready = ctx.Event()
    from helpers import busy_consumer

    p = ctx.Process(target=busy_consumer, args=(q, ready))
    p.start()
    assert ready.wait(60)
    time.sleep(0.2)  # asleep in get()
    kill(p)
    for i in range(100):  # twelve laps of the ring
        q.put(i, timeout=10)
        assert q.get(timeout=10) == i


CTRL_C_CHILD = textwrap.dedent(
    """
    import signal, sys, time, mmring
    # Python's own handler, whatever this process inherited (a shell that
    # runs the tests in the background starts them with SIGINT ignored).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    q = mmring.Queue(path=sys.argv[1])
    print("waiting", flush=True)
    try:
        q.get()
        print("unexpected message", flush=True)
    except KeyboardInterrupt:
        print("interrupted", time.monotonic(), flush=True)
    print("got", q.get(timeout=30), flush=True)
    """
)


def test_ctrl_c_interrupts_a_blocking_get_and_loses_nothing(shm_path):
    q = mmring.Queue(path=str(shm_path))
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_CHILD, str(shm_path)],
        stdout=subprocess.PIPE, text=True,
    )
    # A child that never answers fails the test instead of hanging it.
    watchdog = threading.Timer(60, child.kill)
    watchdog.start()
    assert child.stdout.readline().strip() == "waiting"
    time.sleep(0.3)  # asleep in get()
    sent = time.monotonic()
    child.send_signal(signal.SIGINT)
    line = child.stdout.readline().split()
    assert line[0] == "interrupted"
    latency = float(line[1]) - sent
    q.put("after the interrupt")
    assert child.stdout.readline().strip() == "got after the interrupt"
    assert child.wait(30) == 0
    watchdog.cancel()
    print(f"\nCtrl-C to KeyboardInterrupt: {latency * 1000:.1f} ms")
    assert latency < 5.0, "the blocking get did not see the signal"


def test_named_queue_travels_by_path(ctx, shm_path):
    from helpers import echo_queue

    qin = mmring.Queue(path=str(shm_path), capacity=16, max_message=1024)
    qout = mmring.Queue(maxsize=3)  # a semaphore-bounded queue travels too
    assert qin.__reduce__()[1][0] == shm_path  # by path, not by descriptor
    p = ctx.Process(target=echo_queue, args=(qin, qout, 20))
    p.start()
    for i in range(20):
        qin.put(("item", i))
    assert [qout.get(timeout=60) for _ in range(20)] == [("item", i) for i in range(20)]
    p.join(60)
    assert p.exitcode == 0
    assert qout.qsize() == 0


@pytest.mark.parametrize("kind", ["get", "put", "recv"])
def test_ctrl_c_interrupts_every_blocking_call(kind):
    """SIGINT raises KeyboardInterrupt in a blocked Queue.get, a Queue.put
    on a full queue, and a Connection.recv; the call takes or adds nothing."""
    from helpers import block_until_interrupted

    ctx = mp.get_context("fork")
    report = mmring.Queue()
    ready = ctx.Event()
    if kind == "recv":
        obj, other = mmring.Pipe()
    else:
        obj = mmring.Queue(2)
        if kind == "put":
            obj.put("first")
            obj.put("second")
    p = ctx.Process(target=block_until_interrupted, args=(kind, obj, ready, report))
    p.start()
    assert ready.wait(30)
    time.sleep(0.3)  # blocked by now
    sent = time.monotonic()
    os.kill(p.pid, signal.SIGINT)
    what, when = report.get(timeout=30)
    assert what == "interrupted"
    print(f"\n{kind}: KeyboardInterrupt {1000 * (when - sent):.1f} ms after SIGINT")
    if kind == "get":
        obj.put("after")
        assert report.get(timeout=30) == "after"
    elif kind == "put":
        assert obj.get(timeout=5) == "first"
        assert report.get(timeout=30) == "put after"
        assert [obj.get(timeout=5), obj.get(timeout=5)] == ["second", "after"]
        with pytest.raises(queue.Empty):
            obj.get(timeout=0.1)  # "overflow" was never put
    else:
        other.send("after")
        assert report.get(timeout=30) == "after"
    p.join(30)
    assert p.exitcode == 0


def test_short_lived_workers_do_not_use_up_attachments():
    """200 worker processes in turn (more than a ring's 128 attachment
    records), each putting once and exiting without detaching: the records
    of exited workers are reused."""
    from helpers import put_one

    ctx = mp.get_context("fork")
    q = mmring.Queue()
    for i in range(200):
        p = ctx.Process(target=put_one, args=(q, i))
        p.start()
        p.join(30)
        assert p.exitcode == 0
        assert q.get(timeout=10) == i
