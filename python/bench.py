#!/usr/bin/env python3
"""mmring's Python binding beside the IPC Python users have today, in one run.

Two processes (fork) move N messages of SIZE bytes (default 1,000,000 x 64 B);
each message carries its sequence number in its first 8 bytes and the
receiver checks every one, so a lost, duplicated or reordered message fails
the run. Throughput = N / (receiver's last message - sender's first message),
both from CLOCK_MONOTONIC (time.perf_counter). Round trip: one message there
and back over a second channel, R samples (first 10% dropped as warm-up),
median and p99. The same method as the project's Python baselines.

Then numpy frames of 4 MiB: the sender fills a reserved slot in place
(``np.copyto`` into ``Queue.reserve``: one copy in), the receiver views it
in place (``Queue.get_view``: no copy out) and checks a stamp at both ends;
bytes/s against single-threaded memcpy (``np.copyto``) of the same size
in one process, measured in the same run.

Finally the Rust reference: ``mmring bench`` (the CLI, release build) for the
Rust ring's own streaming rate and blocking round trip, with the cache-line
round-trip floor it measures beside them (the two vCPUs of a small VM may
sit 80, 120 or 300+ ns apart).

usage: python bench.py [-n N] [--rtt R] [--size B] [--only NAME,...] [--json]
       [--frames F] [--mmring-bin PATH]
Contenders that are not installed (faster-fifo, pyzmq, iceoryx2) are skipped
with a message.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

# Run as `python python/bench.py`, the script's directory comes first on the
# path, and its mmring/ is the source package without the compiled module:
# use the installed package instead.
if sys.path and os.path.abspath(sys.path[0]) == os.path.dirname(os.path.abspath(__file__)):
    del sys.path[0]

SEQ = slice(0, 8)
BATCH = 1000


def msg(i, pad):
    return i.to_bytes(8, "little") + pad


def seq_of(m):
    return int.from_bytes(m[SEQ], "little")


def check(m, i, size):
    if seq_of(m) != i or len(m) != size:
        raise SystemExit(f"bad message {i}: seq {seq_of(m)}, {len(m)} bytes")


class Skip(Exception):
    """A contender that cannot run here (not installed)."""


# ------------------------------------------------------------- contenders
# make() -> channels (created before fork); tx/rx: one stream; ping/pong:
# round trips over channels "a" (there) and "b" (back).


class QueueLike:
    """Anything with put/get (multiprocessing.Queue, mmring.Queue)."""

    def queues(self):
        raise NotImplementedError

    def make(self):
        a, b = self.queues()
        return {"a": a, "b": b}

    def put(self, q, m):
        q.put(m)

    def get(self, q):
        return q.get()

    def tx(self, c, n, size, t0):
        q, pad = c["a"], bytes(size - 8)
        t0.value = time.perf_counter()
        for i in range(n):
            self.put(q, msg(i, pad))
        self.done(q)

    def done(self, q):
        pass

    def rx(self, c, n, size, ready):
        q = c["a"]
        ready.set()
        for i in range(n):
            check(self.get(q), i, size)
        return time.perf_counter()

    def ping(self, c, r, size):
        pad, out = bytes(size - 8), []
        a, b = c["a"], c["b"]
        for i in range(r):
            t = time.perf_counter_ns()
            self.put(a, msg(i, pad))
            m = self.get(b)
            out.append(time.perf_counter_ns() - t)
            check(m, i, size)
        return out

    def pong(self, c, r, size):
        a, b = c["a"], c["b"]
        for _ in range(r):
            self.put(b, self.get(a))


class MpQueue(QueueLike):
    def queues(self):
        return mp.Queue(), mp.Queue()

    def done(self, q):
        q.close()
        q.join_thread()


class MmringQueue(QueueLike):
    def queues(self):
        import mmring

        return (mmring.Queue(capacity=1024, max_message=256), mmring.Queue(capacity=1024, max_message=256))


class MmringQueueMany(MmringQueue):
    """put_many / get_many, batches of 1000."""

    def tx(self, c, n, size, t0):
        q, pad = c["a"], bytes(size - 8)
        t0.value = time.perf_counter()
        for base in range(0, n, BATCH):
            q.put_many([msg(i, pad) for i in range(base, min(n, base + BATCH))])

    def rx(self, c, n, size, ready):
        q = c["a"]
        ready.set()
        i = 0
        while i < n:
            for m in q.get_many(BATCH):
                check(m, i, size)
                i += 1
        return time.perf_counter()


class Bare:
    """A batched contender with the Python work per message taken out, to
    show the transport's own ceiling: the sender sends prebuilt batches of
    1000 messages (each stamped with its index in the batch), the receiver
    checks the last stamp of each batch it gets against the count so far,
    not every message (about
    0.4 us each in Python on this machine, more than the transport costs).
    Round trips are the parent contender's."""

    def batches(self, n, size):
        pad = bytes(size - 8)
        batch = [msg(i, pad) for i in range(BATCH)]
        return batch, n // BATCH

    def tx(self, c, n, size, t0):
        batch, rounds = self.batches(n, size)
        t0.value = time.perf_counter()
        for _ in range(rounds):
            self.send_batch(c, batch)
        self.done_batches(c)

    def done_batches(self, c):
        pass

    def rx(self, c, n, size, ready):
        ready.set()
        got, total = 0, (n // BATCH) * BATCH
        while got < total:
            ms = self.recv_batch(c)
            got += len(ms)
            # Message k carries stamp k % BATCH: the last one received must
            # match the count so far.
            last = ms[-1]
            if seq_of(last) != (got - 1) % BATCH or len(last) != size:
                raise SystemExit(f"bad message {got - 1}")
        return time.perf_counter()


class FasterFifo(QueueLike):
    def queues(self):
        try:
            from faster_fifo import Queue
        except ImportError as e:
            raise Skip(f"faster-fifo not installed ({e})") from e
        return Queue(max_size_bytes=1 << 20), Queue(max_size_bytes=1 << 20)

    def put(self, q, m):
        q.put(m, timeout=1e9)

    def get(self, q):
        return q.get(timeout=1e9)


class FasterFifoMany(FasterFifo):
    def tx(self, c, n, size, t0):
        q, pad = c["a"], bytes(size - 8)
        t0.value = time.perf_counter()
        for base in range(0, n, BATCH):
            q.put_many([msg(i, pad) for i in range(base, min(n, base + BATCH))], timeout=1e9)

    def rx(self, c, n, size, ready):
        q = c["a"]
        ready.set()
        i = 0
        while i < n:
            for m in q.get_many(timeout=1e9, max_messages_to_get=BATCH):
                check(m, i, size)
                i += 1
        return time.perf_counter()


class FasterFifoManyBare(Bare, FasterFifoMany):
    def send_batch(self, c, batch):
        c["a"].put_many(batch, timeout=1e9)

    def recv_batch(self, c):
        return c["a"].get_many(timeout=1e9, max_messages_to_get=BATCH)


class MmringQueueManyBare(Bare, MmringQueueMany):
    def send_batch(self, c, batch):
        c["a"].put_many(batch)

    def recv_batch(self, c):
        return c["a"].get_many(BATCH)


class PipeLike(QueueLike):
    """Connections: send_bytes / recv_bytes."""

    def pipes(self):
        raise NotImplementedError

    def make(self):
        a_r, a_w = self.pipes()
        b_r, b_w = self.pipes()
        return {"a": (a_r, a_w), "b": (b_r, b_w)}

    def put(self, q, m):
        q[1].send_bytes(m)

    def get(self, q):
        return q[0].recv_bytes()


class MpPipe(PipeLike):
    def pipes(self):
        return mp.Pipe(duplex=False)


class MmringPipe(PipeLike):
    def pipes(self):
        import mmring

        return mmring.Pipe(duplex=False)


class MmringPipeMany(MmringPipe):
    """send_bytes_many / recv_bytes_many, batches of 1000."""

    def tx(self, c, n, size, t0):
        w, pad = c["a"][1], bytes(size - 8)
        t0.value = time.perf_counter()
        for base in range(0, n, BATCH):
            w.send_bytes_many([msg(i, pad) for i in range(base, min(n, base + BATCH))])

    def rx(self, c, n, size, ready):
        r = c["a"][0]
        ready.set()
        i = 0
        while i < n:
            for m in r.recv_bytes_many(BATCH):
                check(m, i, size)
                i += 1
        return time.perf_counter()


class MmringPipeManyBare(Bare, MmringPipeMany):
    def send_batch(self, c, batch):
        c["a"][1].send_bytes_many(batch)

    def recv_batch(self, c):
        return c["a"][0].recv_bytes_many(BATCH)


class ZmqIpc:
    def make(self):
        try:
            import zmq  # noqa: F401
        except ImportError as e:
            raise Skip(f"pyzmq not installed ({e})") from e
        d = tempfile.mkdtemp(prefix="mmring-bench-zmq-")
        return {"a": f"ipc://{d}/a", "b": f"ipc://{d}/b", "dir": d}

    def _sock(self, kind, addr, bind):
        import zmq

        s = zmq.Context.instance().socket(kind)
        s.setsockopt(zmq.SNDHWM, 100000)
        s.setsockopt(zmq.RCVHWM, 100000)
        s.setsockopt(zmq.LINGER, -1)
        (s.bind if bind else s.connect)(addr)
        return s

    def tx(self, c, n, size, t0):
        import zmq

        s, pad = self._sock(zmq.PUSH, c["a"], False), bytes(size - 8)
        t0.value = time.perf_counter()
        for i in range(n):
            s.send(msg(i, pad), copy=True)
        s.close()
        zmq.Context.instance().term()  # flush before multiprocessing's os._exit

    def rx(self, c, n, size, ready):
        import zmq

        s = self._sock(zmq.PULL, c["a"], True)
        ready.set()
        for i in range(n):
            check(s.recv(), i, size)
        return time.perf_counter()

    def ping(self, c, r, size):
        import zmq

        s, pad, out = self._sock(zmq.PAIR, c["b"], True), bytes(size - 8), []
        s.recv()  # the pong side is connected
        for i in range(r):
            t = time.perf_counter_ns()
            s.send(msg(i, pad))
            m = s.recv()
            out.append(time.perf_counter_ns() - t)
            check(m, i, size)
        return out

    def pong(self, c, r, size):
        import zmq

        s = self._sock(zmq.PAIR, c["b"], False)
        s.send(b"hello")
        for _ in range(r):
            s.send(s.recv())
        s.close()
        zmq.Context.instance().term()


class Iceoryx2:
    """iceoryx2 publish-subscribe, lossless (the publisher retries until
    delivered); the receiver spins on receive() (no blocking receive on a
    subscriber in its Python binding)."""

    def make(self):
        try:
            import iceoryx2  # noqa: F401
        except ImportError as e:
            raise Skip(f"iceoryx2 not installed ({e})") from e
        # The baselines' short name: with a longer one
        # (f"...{pid}x{monotonic_ns}") the receiver saw message 1024 out of
        # order in most full runs here; not investigated further.
        tag = f"mmringbench{os.getpid()}"
        return {"a": f"{tag}/a", "b": f"{tag}/b"}

    def _service(self, name, size):
        import ctypes

        import iceoryx2 as iox2

        iox2.set_log_level(iox2.LogLevel.Error)

        class Msg(ctypes.Structure):
            _fields_ = [("seq", ctypes.c_uint64), ("pad", ctypes.c_uint8 * (size - 8))]

        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        svc = (
            node.service_builder(iox2.ServiceName.new(name))
            .publish_subscribe(Msg)
            .enable_safe_overflow(False)
            .subscriber_max_buffer_size(1024)
            .open_or_create()
        )
        return iox2, node, svc, Msg

    def _pub(self, name, size):
        iox2, node, svc, Msg = self._service(name, size)
        pub = svc.publisher_builder().backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered).create()
        return (node, svc, pub), Msg

    def _sub(self, name, size):
        iox2, node, svc, Msg = self._service(name, size)
        return node, svc, svc.subscriber_builder().buffer_size(1024).create()

    def _wait_subscriber(self, pub, svc):
        while svc.dynamic_config.number_of_subscribers < 1:
            time.sleep(0.001)
        pub.update_connections()

    def tx(self, c, n, size, t0):
        (node, svc, pub), Msg = self._pub(c["a"], size)
        self._wait_subscriber(pub, svc)
        m = Msg()
        t0.value = time.perf_counter()
        for i in range(n):
            m.seq = i
            pub.send_copy(m)
        while svc.dynamic_config.number_of_subscribers > 0:  # keep the data until read
            time.sleep(0.01)

    def rx(self, c, n, size, ready):
        node, svc, sub = self._sub(c["a"], size)
        ready.set()
        i = 0
        while i < n:
            s = sub.receive()
            if s is None:
                continue
            if s.payload().contents.seq != i:
                raise SystemExit(f"bad message {i}")
            s.delete()
            i += 1
        t = time.perf_counter()
        sub.delete()
        return t

    def ping(self, c, r, size):
        (node, svc, pub), Msg = self._pub(c["a"], size)
        _, _, sub = self._sub(c["b"], size)
        self._wait_subscriber(pub, svc)
        time.sleep(0.2)  # the pong side's publisher connects to our subscriber
        m, out = Msg(), []
        for i in range(r):
            t = time.perf_counter_ns()
            m.seq = i
            pub.send_copy(m)
            s = sub.receive()
            while s is None:
                s = sub.receive()
            out.append(time.perf_counter_ns() - t)
            if s.payload().contents.seq != i:
                raise SystemExit(f"bad round trip {i}")
            s.delete()
        return out

    def pong(self, c, r, size):
        _, _, sub = self._sub(c["a"], size)
        (node, svc, pub), Msg = self._pub(c["b"], size)
        self._wait_subscriber(pub, svc)
        m = Msg()
        for _ in range(r):
            s = sub.receive()
            while s is None:
                s = sub.receive()
            m.seq = s.payload().contents.seq
            s.delete()
            pub.send_copy(m)


CONTENDERS = {
    "mp_queue": MpQueue,
    "mp_pipe": MpPipe,
    "iceoryx2": Iceoryx2,
    "zmq_ipc": ZmqIpc,
    "faster_fifo": FasterFifo,
    "faster_fifo_many": FasterFifoMany,
    "mmring_queue": MmringQueue,
    "mmring_queue_many": MmringQueueMany,
    "mmring_pipe": MmringPipe,
    "mmring_pipe_many": MmringPipeMany,
    "faster_fifo_many_bare": FasterFifoManyBare,
    "mmring_queue_many_bare": MmringQueueManyBare,
    "mmring_pipe_many_bare": MmringPipeManyBare,
}

# ------------------------------------------------------------------ driver


def _tx_main(t, c, n, size, t0, go):
    go.wait()
    t.tx(c, n, size, t0)


def _rx_main(t, c, n, size, ready, t1):
    t1.value = t.rx(c, n, size, ready)


def _pong_main(t, c, r, size):
    t.pong(c, r, size)


def _cleanup(c):
    d = c.get("dir") if isinstance(c, dict) else None
    if d:
        shutil.rmtree(d, ignore_errors=True)


def throughput(t, n, size):
    c = t.make()
    t0, t1 = mp.Value("d", 0.0), mp.Value("d", 0.0)
    ready, go = mp.Event(), mp.Event()
    rx = mp.Process(target=_rx_main, args=(t, c, n, size, ready, t1))
    tx = mp.Process(target=_tx_main, args=(t, c, n, size, t0, go))
    rx.start()
    tx.start()
    ready.wait()
    time.sleep(0.2)
    go.set()
    rx.join()
    tx.join(timeout=30)
    if tx.is_alive():
        tx.terminate()
    _cleanup(c)
    if rx.exitcode != 0:
        raise RuntimeError(f"receiver failed with exit code {rx.exitcode}")
    return n / (t1.value - t0.value)


def round_trip(t, r, size):
    c = t.make()
    p = mp.Process(target=_pong_main, args=(t, c, r, size))
    p.start()
    rtts = t.ping(c, r, size)
    p.join()
    _cleanup(c)
    rtts = sorted(rtts[r // 10 :])
    return statistics.median(rtts), rtts[int(len(rtts) * 0.99)]


# ------------------------------------------------------------ numpy frames


WARM = 16  # frames (two laps of the 8-slot ring) before timing: page tables filled


def _frames_rx(q, frames, ready, t1, warm=None):
    import numpy as np

    ready.set()
    for i in range(frames + WARM):
        if i == WARM:
            warm.set()
        with q.get_view() as v:
            a = np.frombuffer(v, dtype=np.uint64)
            if a[0] != i or a[-1] != i:
                raise SystemExit(f"bad frame {i}")
            del a
    t1.value = time.perf_counter()


def numpy_frames(frames, nbytes):
    """4 MiB frames through mmring.Queue: bytes/s, and memcpy's in one
    process for the same size."""
    import numpy as np

    import mmring

    src = np.arange(nbytes // 8, dtype=np.uint64)
    # memcpy bandwidth, np.copyto of the same size in one process, best of
    # 5 rounds: into one warm buffer ("hot"), and round 8 buffers, the
    # ring's footprint of 8 slots ("cold": the destination is not in cache,
    # as a ring slot coming round again is not).
    def memcpy(dsts):
        best = 0.0
        for _ in range(5):
            t = time.perf_counter()
            for k in range(24):
                np.copyto(dsts[k % len(dsts)], src)
            best = max(best, 24 * nbytes / (time.perf_counter() - t))
        return best

    hot = memcpy([np.empty_like(src)])
    cold = memcpy([np.empty_like(src) for _ in range(8)])
    q = mmring.Queue(capacity=8, max_message=nbytes)
    ready, warm, t1 = mp.Event(), mp.Event(), mp.Value("d", 0.0)
    p = mp.Process(target=_frames_rx, args=(q, frames, ready, t1, warm))
    p.start()
    ready.wait()
    for i in range(WARM):
        src[0] = src[-1] = i
        with q.reserve(nbytes) as w:
            np.copyto(np.frombuffer(w, dtype=np.uint64), src)
    warm.wait()
    t0 = time.perf_counter()
    for i in range(WARM, frames + WARM):
        src[0] = src[-1] = i
        with q.reserve(nbytes) as w:
            np.copyto(np.frombuffer(w, dtype=np.uint64), src)  # the one copy
    p.join()
    if p.exitcode != 0:
        raise RuntimeError("numpy receiver failed")
    rate = frames * nbytes / (t1.value - t0)
    # The standard library's way for comparison: Pipe.send_bytes of the
    # array, recv_bytes_into a preallocated array.
    r, w = mp.Pipe(duplex=False)
    ready2, t2 = mp.Event(), mp.Value("d", 0.0)
    p = mp.Process(target=_pipe_frames_rx, args=(r, frames, nbytes, ready2, t2))
    p.start()
    ready2.wait()
    time.sleep(0.1)
    t0 = time.perf_counter()
    for i in range(frames):
        src[0] = src[-1] = i
        w.send_bytes(src)
    p.join()
    pipe_rate = frames * nbytes / (t2.value - t0)
    return rate, hot, cold, pipe_rate


def _pipe_frames_rx(r, frames, nbytes, ready, t2):
    import numpy as np

    buf = np.empty(nbytes // 8, dtype=np.uint64)
    ready.set()
    for i in range(frames):
        r.recv_bytes_into(buf)
        if buf[0] != i or buf[-1] != i:
            raise SystemExit(f"bad frame {i}")
    t2.value = time.perf_counter()


# ----------------------------------------------------------- Rust reference


def rust_reference(binary, size):
    if not binary or not os.path.exists(binary):
        return None, "no mmring binary (build with `cargo build --release`, or pass --mmring-bin)"
    out = []
    for args in (["--count", "1000000"], ["--count", "200000", "--blocking"]):
        cmd = [binary, "bench", "--size", str(size), *args]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        out.append("$ " + " ".join(["mmring", *cmd[1:]]) + "\n" + r.stdout + r.stderr)
    return "\n".join(out), None


def find_mmring_bin():
    here = os.path.dirname(os.path.abspath(__file__))
    for d in (os.environ.get("CARGO_TARGET_DIR"), os.path.join(here, "..", "target")):
        if d and os.path.exists(os.path.join(d, "release", "mmring")):
            return os.path.join(d, "release", "mmring")
    return shutil.which("mmring")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=1_000_000, help="messages per stream")
    ap.add_argument("--rtt", type=int, default=20_000, help="round trips")
    ap.add_argument("--size", type=int, default=64, help="message size in bytes (>= 8)")
    ap.add_argument("--only", default="", help="comma-separated contenders (default: all)")
    ap.add_argument("--frames", type=int, default=200, help="numpy 4 MiB frames (0: skip)")
    ap.add_argument("--mmring-bin", default=None, help="the mmring CLI for the Rust reference")
    ap.add_argument("--json", action="store_true", help="also print one JSON line per result")
    a = ap.parse_args()
    names = [x for x in a.only.split(",") if x] or list(CONTENDERS)
    rows = []
    print(f"# {a.n} x {a.size} B messages, {a.rtt} round trips, Python {sys.version.split()[0]}, "
          f"{os.cpu_count()} CPUs", flush=True)
    for name in names:
        t = CONTENDERS[name]()
        failures = []
        for attempt in range(2):  # a failed check is reported, then tried once more
            try:
                rate = throughput(t, a.n, a.size)
                p50, p99 = round_trip(t, a.rtt, a.size) if a.rtt else (float("nan"),) * 2
                break
            except Skip as e:
                failures = None
                print(f"{name:20s} skipped: {e}", flush=True)
                rows.append({"transport": name, "skipped": str(e)})
                break
            except Exception as e:  # report and go on
                failures.append(repr(e))
                print(f"{name:20s} FAILED (attempt {attempt + 1}): {e!r}", flush=True)
        if failures is None or len(failures) == 2:
            if failures:
                rows.append({"transport": name, "failed": "; ".join(failures)})
            continue
        row = {"transport": name, "size": a.size, "n": a.n, "msgs_per_s": round(rate),
               "rtt_p50_us": round(p50 / 1e3, 1), "rtt_p99_us": round(p99 / 1e3, 1)}
        if failures:
            row["failed_first"] = failures[0]
        rows.append(row)
        print(f"{name:20s} {rate / 1e6:7.2f} M msgs/s   round trip p50 {p50 / 1e3:7.1f} us  "
              f"p99 {p99 / 1e3:7.1f} us", flush=True)
    by = {r["transport"]: r for r in rows if "msgs_per_s" in r}
    print("\n# ratios (same run)")
    for mine, ref in (("mmring_queue", "mp_queue"), ("mmring_queue", "iceoryx2"),
                      ("mmring_queue_many", "mp_queue"), ("mmring_pipe", "mp_pipe"),
                      ("mmring_pipe_many", "mp_pipe"), ("mmring_queue_many", "faster_fifo_many"),
                      ("mmring_queue_many_bare", "faster_fifo_many_bare")):
        if mine in by and ref in by:
            r = by[mine]["msgs_per_s"] / by[ref]["msgs_per_s"]
            print(f"{mine} / {ref}: {r:.1f}x msgs/s, round trip p50 "
                  f"{by[mine]['rtt_p50_us']} vs {by[ref]['rtt_p50_us']} us")
    if a.frames:
        rate, hot, cold, pipe_rate = numpy_frames(a.frames, 4 << 20)
        print(f"\n# numpy 4 MiB frames x {a.frames}")
        print(f"mmring_queue reserve/get_view     {rate / 1e9:6.2f} GB/s  "
              f"= {100 * rate / cold:.0f} % of cold memcpy, {100 * rate / hot:.0f} % of hot memcpy")
        print(f"memcpy (np.copyto, one process)   {cold / 1e9:6.2f} GB/s cold (8 x 4 MiB destinations), "
              f"{hot / 1e9:.2f} GB/s hot (one)")
        print(f"mp_pipe send_bytes/recv_bytes_into {pipe_rate / 1e9:6.2f} GB/s")
        rows.append({"numpy_frames": a.frames, "bytes_per_s": round(rate), "memcpy_cold_bytes_per_s": round(cold),
                     "memcpy_hot_bytes_per_s": round(hot), "mp_pipe_bytes_per_s": round(pipe_rate)})
    text, why = rust_reference(a.mmring_bin or find_mmring_bin(), a.size)
    print("\n# Rust reference (mmring bench)")
    print(text if text else f"skipped: {why}")
    if a.json:
        for r in rows:
            print(json.dumps(r))


if __name__ == "__main__":
    mp.set_start_method("fork")
    main()
