"""A Python process and a Rust process (the mmring CLI) through one named
ring file."""

from __future__ import annotations

import subprocess

import mmring


def test_python_sends_rust_receives(mmring_bin, shm_path):
    subprocess.run(
        [mmring_bin, "create", str(shm_path), "--kind", "mpmc", "--slots", "64", "--slot-size", "256"],
        check=True,
    )
    ring = mmring.Ring.open(str(shm_path))
    assert ring.kind == "mpmc"
    rust = subprocess.Popen(
        [mmring_bin, "recv", str(shm_path), "--count", "100"], stdout=subprocess.PIPE, text=True
    )
    tx = ring.producer()
    for i in range(100):
        assert tx.send(b"from python %d" % i, timeout=30)
    out, _ = rust.communicate(timeout=60)
    assert rust.returncode == 0
    assert out.splitlines() == ["from python %d" % i for i in range(100)]


def test_rust_sends_python_receives(mmring_bin, shm_path):
    subprocess.run(
        [mmring_bin, "create", str(shm_path), "--kind", "mpsc", "--capacity", "65536"], check=True
    )
    rx = mmring.Ring.open(str(shm_path)).consumer()
    lines = "".join("from rust %d\n" % i for i in range(500))
    subprocess.run([mmring_bin, "send", str(shm_path)], input=lines, text=True, check=True, timeout=60)
    got = [rx.recv(timeout=30) for _ in range(500)]
    assert got == [b"from rust %d" % i for i in range(500)]
    assert rx.recv(timeout=0.1) is None


def test_queue_on_a_ring_the_cli_created_and_reads(mmring_bin, shm_path):
    """A Queue on an existing named ring: bytes messages are framed with
    the Queue header (8 bytes) the CLI prints as it is; raw frames the CLI
    sends reach Queue.get as bytes, whole."""
    subprocess.run(
        [mmring_bin, "create", str(shm_path), "--kind", "mpmc", "--slots", "16", "--slot-size", "264"],
        check=True,
    )
    q = mmring.Queue(path=str(shm_path), capacity=16, max_message=256)
    subprocess.run([mmring_bin, "send", str(shm_path)], input="raw line\n", text=True, check=True, timeout=60)
    assert q.get(timeout=30) == b"raw line"
    q.put(b"framed")
    out = subprocess.run(
        [mmring_bin, "recv", str(shm_path), "--raw", "--count", "1"], capture_output=True, check=True, timeout=60
    ).stdout
    assert out == b"MQ\x01\x01\x00\x00\x00\x00framed"
