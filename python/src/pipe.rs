//! `mmring.Pipe`: two `Connection`s, like `multiprocessing.Pipe`.
//!
//! Each direction is an mpsc ring (variable-size frames; the sending end
//! can be used from several processes, as a `multiprocessing` connection
//! can, while receiving stays with one consumer at a time). Frames carry
//! the bytes as sent (`send` pickles, as `multiprocessing` does), with no
//! header.
//!
//! End of stream: `recv` raises `EOFError` once the ring is empty and
//! every copy of the sending end is closed, in every process, exactly as
//! with an OS pipe — because it *is* one: each direction has a small
//! liveness pipe whose write end every copy of the sending `Connection`
//! holds (inherited across `fork`, passed by descriptor otherwise). No
//! byte ever goes through it; its read end reports a hang-up when the last
//! copy is closed. The ring's own attachment records cannot tell this: a
//! child may not have attached yet when the parent closes its copy.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mmring::{AnyRing, Config, Kind, RecvError, SendError};
use pyo3::exceptions::{PyEOFError, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

use crate::frame::{self, RawBuf};
use crate::handles::{ConsPool, ProdPool, err, recv_err, send_err, too_large};
use crate::views::{ReadView, WriteView};
use crate::wait::{self, Recv, Sent, Wait};

pyo3::import_exception!(multiprocessing, BufferTooShort);

/// Default data area of each direction's ring: messages up to 2 MiB - 8.
pub const DEFAULT_PIPE_CAPACITY: u64 = 1 << 22;

struct TxSide {
    pool: Arc<ProdPool>,
    /// Write end of the liveness pipe.
    live: OwnedFd,
}

struct RxSide {
    pool: Arc<ConsPool>,
    /// Read end of the liveness pipe.
    live: OwnedFd,
    /// Messages `poll` took out of the ring, delivered first.
    pending: Mutex<VecDeque<Vec<u8>>>,
}

impl RxSide {
    /// Whether every copy of the sending end is closed, waiting up to `d`
    /// for it.
    fn hung_up(&self, py: Python<'_>, d: Duration) -> PyResult<bool> {
        let fd = self.live.as_raw_fd();
        let ms = d.as_millis().min(i32::MAX as u128) as i32;
        let revents = py.detach(|| {
            let mut p = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let rc = unsafe { libc::poll(&mut p, 1, ms) };
            if rc < 0 { 0 } else { p.revents }
        });
        Ok(revents & (libc::POLLHUP | libc::POLLERR) != 0)
    }

    fn pop_pending(&self) -> Option<Vec<u8>> {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop_front()
    }

    fn has_pending(&self) -> bool {
        !self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty()
    }

    /// Takes the next message and hands it to `f` (pending ones first).
    fn recv<R>(
        &self,
        py: Python<'_>,
        w: Wait,
        f: impl Fn(&[u8]) -> PyResult<R>,
    ) -> PyResult<Recv<R>> {
        if let Some(v) = self.pop_pending() {
            return f(&v).map(Recv::Got);
        }
        loop {
            let mut c = self.pool.take()?;
            let mut idle = |py: Python<'_>, d: Duration| self.hung_up(py, d);
            let r = wait::recv(py, &mut c, w, &mut idle, |g| f(&g));
            if matches!(r, Ok(Recv::Forked)) {
                continue;
            }
            self.pool.put(c);
            return r;
        }
    }
}

/// One end of a [`pipe`]: `multiprocessing.connection.Connection`'s
/// interface.
#[pyclass(module = "mmring", frozen, weakref)]
pub struct Connection {
    tx: Mutex<Option<Arc<TxSide>>>,
    rx: Mutex<Option<Arc<RxSide>>>,
    readable: bool,
    writable: bool,
}

fn os_pipe() -> PyResult<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    // SAFETY: pipe2 returned two new descriptors, owned from here on.
    let r = unsafe { OwnedFd::from_raw_fd(fds[0]) };
    // SAFETY: as above.
    let w = unsafe { OwnedFd::from_raw_fd(fds[1]) };
    Ok((r, w))
}

/// A ring and its liveness pipe: one direction.
fn direction(capacity: u64, max_message: Option<u64>) -> PyResult<(TxSide, RxSide)> {
    let mut cfg = Config::new(capacity);
    if let Some(m) = max_message {
        cfg = cfg.max_frame(m);
    }
    let ring = AnyRing::anonymous(Kind::Mpsc, cfg).map_err(err)?;
    let (r, w) = os_pipe()?;
    Ok(sides(ring, r, w))
}

fn sides(ring: AnyRing, r: OwnedFd, w: OwnedFd) -> (TxSide, RxSide) {
    (
        TxSide {
            pool: ProdPool::new(ring.clone()),
            live: w,
        },
        RxSide {
            pool: ConsPool::new(ring),
            live: r,
            pending: Mutex::new(VecDeque::new()),
        },
    )
}

impl Connection {
    fn new(tx: Option<TxSide>, rx: Option<RxSide>) -> Connection {
        Connection {
            readable: rx.is_some(),
            writable: tx.is_some(),
            tx: Mutex::new(tx.map(Arc::new)),
            rx: Mutex::new(rx.map(Arc::new)),
        }
    }

    fn tx(&self) -> PyResult<Arc<TxSide>> {
        if !self.writable {
            return Err(PyOSError::new_err("connection is read-only"));
        }
        match &*self.tx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(t) => Ok(t.clone()),
            None => Err(PyOSError::new_err("handle is closed")),
        }
    }

    fn rx(&self) -> PyResult<Arc<RxSide>> {
        if !self.readable {
            return Err(PyOSError::new_err("connection is write-only"));
        }
        match &*self.rx.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(r) => Ok(r.clone()),
            None => Err(PyOSError::new_err("handle is closed")),
        }
    }

    /// Sends `data` as one message, waiting for room.
    fn send_data(&self, py: Python<'_>, data: &[u8]) -> PyResult<()> {
        let tx = self.tx()?;
        let max = tx.pool.ring.max_frame();
        if data.len() > max {
            return Err(too_large(data.len(), max, 0));
        }
        loop {
            let mut p = tx.pool.take()?;
            let r = wait::reserve(py, &mut p, data.len(), Wait::Forever, |mut g| {
                g.copy_from_slice(data);
                g.commit();
                Ok(())
            });
            if matches!(r, Ok(Sent::Forked)) {
                continue;
            }
            tx.pool.put(p);
            return r.map(|_| ());
        }
    }

    fn recv_with<R>(&self, py: Python<'_>, f: impl Fn(&[u8]) -> PyResult<R>) -> PyResult<R> {
        match self.rx()?.recv(py, Wait::Forever, f)? {
            Recv::Got(r) => Ok(r),
            _ => Err(PyEOFError::new_err(())),
        }
    }
}

/// The slice of `buf` that `send_bytes(buf, offset, size)` sends, checked
/// as `multiprocessing` checks it.
fn window(n: usize, offset: isize, size: Option<isize>) -> PyResult<(usize, usize)> {
    if offset < 0 {
        return Err(PyValueError::new_err("offset is negative"));
    }
    let offset = offset as usize;
    if n < offset {
        return Err(PyValueError::new_err("buffer length < offset"));
    }
    let size = match size {
        None => n - offset,
        Some(s) if s < 0 => return Err(PyValueError::new_err("size is negative")),
        Some(s) => s as usize,
    };
    if offset + size > n {
        return Err(PyValueError::new_err("buffer length < offset + size"));
    }
    Ok((offset, size))
}

#[pymethods]
impl Connection {
    /// Rebuilds a connection from descriptors received from another
    /// process (used by pickling): ring and liveness descriptors of the
    /// receiving side, then of the sending side.
    #[staticmethod]
    fn _from_fds(
        rx_ring: Option<i32>,
        rx_live: Option<i32>,
        tx_ring: Option<i32>,
        tx_live: Option<i32>,
    ) -> PyResult<Connection> {
        // SAFETY: the caller hands over descriptors it owns
        // (DupFd.detach()).
        let own = |fd: i32| unsafe { OwnedFd::from_raw_fd(fd) };
        let rx = match (rx_ring, rx_live) {
            (Some(r), Some(l)) => {
                let ring = AnyRing::from_fd(own(r)).map_err(err)?;
                Some(RxSide {
                    pool: ConsPool::new(ring),
                    live: own(l),
                    pending: Mutex::new(VecDeque::new()),
                })
            }
            _ => None,
        };
        let tx = match (tx_ring, tx_live) {
            (Some(r), Some(l)) => {
                let ring = AnyRing::from_fd(own(r)).map_err(err)?;
                Some(TxSide {
                    pool: ProdPool::new(ring),
                    live: own(l),
                })
            }
            _ => None,
        };
        Ok(Connection::new(tx, rx))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let dupfd = py.import("multiprocessing.reduction")?.getattr("DupFd")?;
        let dup = |fd: i32| dupfd.call1((fd,));
        let none = || py.None().into_bound(py);
        let (rr, rl) = match me.readable.then(|| me.rx()).transpose()? {
            Some(rx) => (
                dup(rx.pool.ring.as_fd().as_raw_fd())?,
                dup(rx.live.as_raw_fd())?,
            ),
            None => (none(), none()),
        };
        let (tr, tl) = match me.writable.then(|| me.tx()).transpose()? {
            Some(tx) => (
                dup(tx.pool.ring.as_fd().as_raw_fd())?,
                dup(tx.live.as_raw_fd())?,
            ),
            None => (none(), none()),
        };
        let f = py.import("mmring")?.getattr("_rebuild_connection")?;
        let args = PyTuple::new(py, [rr, rl, tr, tl])?;
        PyTuple::new(py, [f, args.into_any()])
    }

    /// Sends a picklable object.
    fn send(&self, py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        self.tx()?;
        let b = frame::dumps(py, obj)?;
        self.send_data(py, b.as_bytes())
    }

    /// Sends bytes of a bytes-like object (`buf[offset:offset+size]`) as
    /// one message.
    #[pyo3(signature = (buf, offset=0, size=None))]
    fn send_bytes(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
        size: Option<isize>,
    ) -> PyResult<()> {
        self.tx()?;
        let b = RawBuf::get(buf, false)?;
        let (o, n) = window(b.len(), offset, size)?;
        self.send_data(py, &b.as_slice()[o..o + n])
    }

    /// Sends each bytes-like object of `bufs` as one message, publishing
    /// them together (one wake-up check per batch, more only when the
    /// ring fills up).
    fn send_bytes_many(&self, py: Python<'_>, bufs: &Bound<'_, PyAny>) -> PyResult<usize> {
        let tx = self.tx()?;
        let max = tx.pool.ring.max_frame();
        let mut held = Vec::new();
        for b in bufs.try_iter()? {
            let b = RawBuf::get(&b?, false)?;
            if b.len() > max {
                return Err(too_large(b.len(), max, 0));
            }
            held.push(b);
        }
        let mut sent = 0;
        let mut p = tx.pool.take()?;
        let r = (|| -> PyResult<()> {
            while sent < held.len() {
                let mut forked = false;
                {
                    let mut batch = p.batch();
                    while sent < held.len() {
                        let data = held[sent].as_slice();
                        match batch.try_reserve(data.len()) {
                            Ok(mut g) => {
                                g.copy_from_slice(data);
                                g.commit();
                                sent += 1;
                            }
                            Err(SendError::Full) => break,
                            Err(SendError::Forked) => {
                                forked = true;
                                break;
                            }
                            Err(e) => return Err(send_err(e)),
                        }
                    }
                }
                if forked {
                    p = tx.pool.take()?;
                    continue;
                }
                if sent == held.len() {
                    break;
                }
                let data = held[sent].as_slice();
                match wait::reserve(py, &mut p, data.len(), Wait::Forever, |mut g| {
                    g.copy_from_slice(data);
                    g.commit();
                    Ok(())
                })? {
                    Sent::Done(()) => sent += 1,
                    Sent::Forked => p = tx.pool.take()?,
                    Sent::Full => unreachable!("a wait without deadline ends with room"),
                }
            }
            Ok(())
        })();
        tx.pool.put(p);
        r.map(|()| sent)
    }

    /// Receives an object sent with `send` (unpickled in place). Raises
    /// `EOFError` once nothing is left and the other end is closed.
    fn recv<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let obj = self.recv_with(py, |b| frame::loads(py, b).map(Bound::unbind))?;
        Ok(obj.into_bound(py))
    }

    /// Receives one message as `bytes`. A message longer than `maxlength`
    /// raises `OSError` (and is dropped), as in `multiprocessing`.
    #[pyo3(signature = (maxlength=None))]
    fn recv_bytes<'py>(
        &self,
        py: Python<'py>,
        maxlength: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        if maxlength.is_some_and(|m| m < 0) {
            return Err(PyValueError::new_err("negative maxlength"));
        }
        let b = self.recv_with(py, |b| {
            if maxlength.is_some_and(|m| b.len() > m as usize) {
                return Err(PyOSError::new_err("bad message length"));
            }
            Ok(PyBytes::new(py, b).unbind())
        })?;
        Ok(b.into_bound(py))
    }

    /// Receives one message into a writable buffer at `offset`, returning
    /// its length; raises `multiprocessing.BufferTooShort` (carrying the
    /// message) if it does not fit.
    #[pyo3(signature = (buf, offset=0))]
    fn recv_bytes_into(
        &self,
        py: Python<'_>,
        buf: &Bound<'_, PyAny>,
        offset: isize,
    ) -> PyResult<usize> {
        let mut out = RawBuf::get(buf, true)?;
        if offset < 0 {
            return Err(PyValueError::new_err("negative offset"));
        }
        let offset = offset as usize;
        if offset > out.len() {
            return Err(PyValueError::new_err("offset too large"));
        }
        let room = out.len() - offset;
        let r = self.recv_with(py, |b| {
            if b.len() > room {
                return Ok(Err(PyBytes::new(py, b).unbind()));
            }
            Ok(Ok(b.to_vec()))
        })?;
        match r {
            Ok(v) => {
                out.as_mut_slice()[offset..offset + v.len()].copy_from_slice(&v);
                Ok(v.len())
            }
            Err(msg) => Err(BufferTooShort::new_err(msg)),
        }
    }

    /// Receives up to `max_messages` messages as `bytes` (at least one,
    /// waiting for it), releasing them together.
    #[pyo3(signature = (max_messages=1024))]
    fn recv_bytes_many<'py>(
        &self,
        py: Python<'py>,
        max_messages: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let rx = self.rx()?;
        let out = PyList::empty(py);
        let first = self.recv_bytes(py, None)?;
        out.append(first)?;
        if max_messages > 1 {
            let mut c = rx.pool.take()?;
            let mut failed = None;
            let r = c.try_recv_batch(max_messages - 1, |b| {
                if let Err(e) = out.append(PyBytes::new(py, b)) {
                    failed = Some(e);
                }
            });
            rx.pool.put(c);
            match r {
                Ok(_) | Err(RecvError::Empty) | Err(RecvError::Forked) => {}
                Err(e) => return Err(recv_err(e)),
            }
            if let Some(e) = failed {
                return Err(e);
            }
        }
        Ok(out)
    }

    /// Whether a message (or the end of the stream) is waiting, waiting
    /// up to `timeout` seconds for one (`None`: for ever).
    #[pyo3(signature = (timeout=0.0))]
    fn poll(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let rx = self.rx()?;
        if rx.has_pending() {
            return Ok(true);
        }
        match rx.recv(py, Wait::new(true, timeout)?, |b| Ok(b.to_vec()))? {
            Recv::Got(v) => {
                rx.pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push_back(v);
                Ok(true)
            }
            Recv::Eof => Ok(true),
            _ => Ok(false),
        }
    }

    /// Receives the next message as a read-only zero-copy view in the ring
    /// (see `ReadView`). Waits for it; `EOFError` at the end of the stream.
    fn recv_view(&self, py: Python<'_>) -> PyResult<ReadView> {
        let rx = self.rx()?;
        if rx.has_pending() {
            return Err(pyo3::exceptions::PyRuntimeError::new_err(
                "poll() copied the next message out of the ring: take it with recv_bytes()",
            ));
        }
        let mut idle = |py: Python<'_>, d: Duration| rx.hung_up(py, d);
        match ReadView::take(py, &rx.pool, Wait::Forever, &mut idle, |_| 0)? {
            Recv::Got(v) => Ok(v),
            _ => Err(PyEOFError::new_err(())),
        }
    }

    /// Reserves room for a message of `nbytes` bytes as a writable view;
    /// fill it and `commit()`.
    fn reserve(&self, py: Python<'_>, nbytes: usize) -> PyResult<WriteView> {
        let tx = self.tx()?;
        let max = tx.pool.ring.max_frame();
        if nbytes > max {
            return Err(too_large(nbytes, max, 0));
        }
        match WriteView::reserve(py, &tx.pool, &[], nbytes, Wait::Forever)? {
            Some(v) => Ok(v),
            None => unreachable!("a wait without deadline ends with room"),
        }
    }

    /// Closes this end in this process.
    fn close(&self) {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).take();
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            tx.pool.clear();
        }
        if let Some(rx) = rx {
            rx.pool.clear();
        }
    }

    /// Whether the connection is closed.
    #[getter]
    fn closed(&self) -> bool {
        let tx = self.tx.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        let rx = self.rx.lock().unwrap_or_else(|p| p.into_inner()).is_none();
        tx && rx
    }

    /// Whether the connection can receive.
    #[getter]
    fn readable(&self) -> bool {
        self.readable
    }

    /// Whether the connection can send.
    #[getter]
    fn writable(&self) -> bool {
        self.writable
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message(&self) -> PyResult<usize> {
        if self.writable {
            Ok(self.tx()?.pool.ring.max_frame())
        } else {
            Ok(self.rx()?.pool.ring.max_frame())
        }
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.close();
        false
    }

    fn __repr__(&self) -> String {
        format!(
            "<mmring.Connection readable={} writable={}{}>",
            self.readable,
            self.writable,
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// `Pipe(duplex=True, *, capacity=4 MiB, max_message=None)`: two
/// connections. With `duplex=False` the first can only receive and the
/// second only send. `capacity`: bytes in each direction's ring (a power
/// of two); `max_message`: the largest message (default and at most
/// `capacity / 2 - 8`).
#[pyfunction]
#[pyo3(signature = (duplex=true, *, capacity=DEFAULT_PIPE_CAPACITY, max_message=None))]
pub fn pipe(
    duplex: bool,
    capacity: u64,
    max_message: Option<u64>,
) -> PyResult<(Connection, Connection)> {
    let (tx_a, rx_a) = direction(capacity, max_message)?;
    if duplex {
        let (tx_b, rx_b) = direction(capacity, max_message)?;
        Ok((
            Connection::new(Some(tx_a), Some(rx_b)),
            Connection::new(Some(tx_b), Some(rx_a)),
        ))
    } else {
        Ok((
            Connection::new(None, Some(rx_a)),
            Connection::new(Some(tx_a), None),
        ))
    }
}
