#!/usr/bin/env python3
"""Producer/consumer processes: multiprocessing.Queue, then mmring.Queue.

Two producer processes put N small jobs (dicts) each; two consumer processes
get them and send back a sum. The only change between the two versions is
the queue's constructor.

    python producer_consumer.py [N]
"""

import multiprocessing as mp
import sys
import time

import mmring


def producer(q, pid, n):
    for i in range(n):
        q.put({"producer": pid, "seq": i, "value": i * 2})


def consumer(q, results):
    total = 0
    while (job := q.get()) is not None:
        total += job["value"]
    results.put(total)


def run(name, make_queue, n):
    jobs, results = make_queue(), make_queue()
    producers = [mp.Process(target=producer, args=(jobs, p, n)) for p in range(2)]
    consumers = [mp.Process(target=consumer, args=(jobs, results)) for _ in range(2)]
    t = time.perf_counter()
    for p in consumers + producers:
        p.start()
    for p in producers:
        p.join()
    for _ in consumers:
        jobs.put(None)
    total = sum(results.get() for _ in consumers)
    for p in consumers:
        p.join()
    dt = time.perf_counter() - t
    assert total == 2 * sum(i * 2 for i in range(n))
    print(f"{name:22s} {2 * n / dt / 1e6:6.2f} M jobs/s  ({2 * n} jobs in {dt:.2f} s)")


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    run("multiprocessing.Queue", mp.Queue, n)
    run("mmring.Queue", mmring.Queue, n)
