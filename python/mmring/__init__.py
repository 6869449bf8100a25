"""mmring: ``multiprocessing.Queue`` and ``Pipe`` over lock-free shared-memory rings.

``mmring.Queue`` and ``mmring.Pipe`` have the interfaces of their
``multiprocessing`` namesakes and can be handed to ``multiprocessing.Process``
under the fork, spawn and forkserver start methods. Messages travel through
a ring in shared memory (the Rust crate ``mmring``); blocking calls sleep on
a futex with the GIL released and answer Ctrl-C within about 50 ms.

Zero-copy: ``Queue.get_view()`` / ``Connection.recv_view()`` return a
read-only view of a message in place (buffer protocol: ``memoryview(v)``,
``numpy.frombuffer(v, dtype)``), ``Queue.reserve(n)`` /
``Connection.reserve(n)`` a writable view of room in the ring to fill and
``commit()``.

``mmring.Ring`` gives raw access to any ring file the Rust API or the
``mmring`` command-line tool uses.
"""

from __future__ import annotations

from ._mmring import (
    DEFAULT_MAX_MESSAGE,
    DEFAULT_PIPE_CAPACITY,
    DEFAULT_SLOTS,
    HEADER_LEN,
    Connection,
    Consumer,
    Producer,
    Queue,
    ReadView,
    Ring,
    WriteView,
)
from ._mmring import pipe as _pipe

__all__ = [
    "Queue",
    "Pipe",
    "Connection",
    "ReadView",
    "WriteView",
    "Ring",
    "Producer",
    "Consumer",
    "DEFAULT_MAX_MESSAGE",
    "DEFAULT_SLOTS",
    "DEFAULT_PIPE_CAPACITY",
    "HEADER_LEN",
]


def Pipe(
    duplex: bool = True,
    *,
    capacity: int = DEFAULT_PIPE_CAPACITY,
    max_message: int | None = None,
) -> tuple[Connection, Connection]:
    """Two connected ``Connection`` objects, as ``multiprocessing.Pipe``.

    With ``duplex=False`` the first can only receive and the second only
    send. ``capacity``: bytes of each direction's ring (a power of two);
    ``max_message``: the largest message (default and at most
    ``capacity // 2 - 8``).
    """
    return _pipe(duplex, capacity=capacity, max_message=max_message)


def _detach(handle) -> int:
    # multiprocessing.reduction.DupFd: a descriptor duplicated for this
    # process (passed at spawn, sent over the forkserver's socket, or
    # fetched from the resource sharer).
    return handle.detach()


def _rebuild_queue_fd(handle, maxsize: int, sem) -> Queue:
    return Queue._from_fd(_detach(handle), maxsize, sem)


def _rebuild_queue_path(path, maxsize: int, sem) -> Queue:
    return Queue._from_path(path, maxsize, sem)


def _rebuild_connection(rx_ring, rx_live, tx_ring, tx_live) -> Connection:
    fds = [None if h is None else _detach(h) for h in (rx_ring, rx_live, tx_ring, tx_live)]
    return Connection._from_fds(*fds)
