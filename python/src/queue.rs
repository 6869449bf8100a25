//! `mmring.Queue`: the `multiprocessing.Queue` interface over an mpmc ring.
//!
//! Layout: an mpmc (slot) ring, because it is the flavour with many
//! producers *and* many consumers; each slot holds one message of up to
//! `max_message` bytes plus the 8-byte frame header (`frame.rs`). Slots
//! cost memory whether used or not (the ring's pages are reserved at
//! creation), so the default is 256 slots of 64 KiB: 16 MiB.
//!
//! `maxsize` counts messages as in `multiprocessing`: when it is a power of
//! two the ring has exactly that many slots and is itself the bound; any
//! other positive `maxsize` (or one different from an explicit
//! `capacity`) is enforced with a `multiprocessing.BoundedSemaphore` (of
//! the spawn context, which every start method can receive), as the
//! standard queue does. With `maxsize=0` the ring's slot count is the
//! only bound: `put` blocks, and `put_nowait` raises `queue.Full`, when
//! every slot is taken (the standard queue's buffer is unbounded).

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};

use mmring::{AnyProducer, AnyRing, Config, Kind, RecvError, SendError};
use pyo3::exceptions::{PyAssertionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};

use crate::frame::{self, HEADER_LEN};
use crate::handles::{ConsPool, ProdPool, err, recv_err, send_err, too_large};
use crate::views::{ReadView, WriteView};
use crate::wait::{self, Recv, SLICE, Sent, Wait, sleep_idle};

pyo3::import_exception!(queue, Full);
pyo3::import_exception!(queue, Empty);

/// Default largest message (payload bytes; the header is on top).
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;
/// Default slot count when `maxsize` does not set one.
pub const DEFAULT_SLOTS: u64 = 256;

/// A multi-producer, multi-consumer queue between processes. See the
/// module documentation.
#[pyclass(module = "mmring", frozen, weakref)]
pub struct Queue {
    prod: Arc<ProdPool>,
    cons: Arc<ConsPool>,
    maxsize: usize,
    /// The `multiprocessing.BoundedSemaphore` enforcing `maxsize`, when the
    /// slot count does not.
    sem: Option<Py<PyAny>>,
    closed: AtomicBool,
}

fn slot_size(max_message: usize) -> u64 {
    (max_message + HEADER_LEN) as u64
}

impl Queue {
    fn from_ring(ring: AnyRing, maxsize: usize, sem: Option<Py<PyAny>>) -> Queue {
        Queue {
            prod: ProdPool::new(ring.clone()),
            cons: ConsPool::new(ring),
            maxsize,
            sem,
            closed: AtomicBool::new(false),
        }
    }

    fn ring(&self) -> &AnyRing {
        &self.prod.ring
    }

    fn check_open(slf: &Bound<'_, Self>) -> PyResult<()> {
        if slf.get().closed.load(Relaxed) {
            return Err(PyValueError::new_err(format!(
                "Queue {} is closed",
                slf.repr()?
            )));
        }
        Ok(())
    }

    /// Acquires a maxsize permit; `false` if none came in time.
    fn acquire(&self, py: Python<'_>, w: Wait) -> PyResult<bool> {
        let Some(sem) = &self.sem else {
            return Ok(true);
        };
        let sem = sem.bind(py);
        let got = match w {
            Wait::Once => sem.call_method1("acquire", (false,))?,
            Wait::Forever => loop {
                // In slices, so that signals are seen (SemLock.acquire is
                // interruptible too, but this keeps one rule everywhere).
                let r = sem.call_method1("acquire", (true, SLICE.as_secs_f64()))?;
                if r.is_truthy()? {
                    break r;
                }
                py.check_signals()?;
            },
            Wait::Until(at) => {
                let left = at.saturating_duration_since(std::time::Instant::now());
                sem.call_method1("acquire", (true, left.as_secs_f64()))?
            }
        };
        got.is_truthy()
    }

    fn release_permit(&self, py: Python<'_>, n: usize) -> PyResult<()> {
        if let Some(sem) = &self.sem {
            for _ in 0..n {
                sem.bind(py).call_method0("release")?;
            }
        }
        Ok(())
    }

    /// Runs `op` on a producer of this process.
    fn with_producer<R>(
        &self,
        mut op: impl FnMut(&mut AnyProducer) -> PyResult<Sent<R>>,
    ) -> PyResult<Option<R>> {
        loop {
            let mut p = self.prod.take()?;
            match op(&mut p) {
                Ok(Sent::Done(r)) => {
                    self.prod.put(p);
                    return Ok(Some(r));
                }
                Ok(Sent::Full) => {
                    self.prod.put(p);
                    return Ok(None);
                }
                // Inherited across fork: drop it, attach our own.
                Ok(Sent::Forked) => continue,
                Err(e) => {
                    self.prod.put(p);
                    return Err(e);
                }
            }
        }
    }

    fn put_one(&self, py: Python<'_>, obj: &Bound<'_, PyAny>, w: Wait) -> PyResult<bool> {
        let enc = frame::encode(obj)?;
        let max = self.ring().max_frame();
        if enc.frame_len() > max {
            return Err(too_large(enc.frame_len(), max, HEADER_LEN));
        }
        if !self.acquire(py, w)? {
            return Ok(false);
        }
        let len = enc.frame_len();
        let r = self.with_producer(|p| {
            wait::reserve(py, p, len, w, |mut g| {
                enc.write(&mut g);
                g.commit();
                Ok(())
            })
        });
        match r {
            Ok(Some(())) => Ok(true),
            other => {
                self.release_permit(py, 1)?;
                other.map(|_| false)
            }
        }
    }

    /// Decodes one frame taken from the ring.
    fn get_one<'py>(&self, py: Python<'py>, w: Wait) -> PyResult<Option<Bound<'py, PyAny>>> {
        loop {
            let mut c = self.cons.take()?;
            let r = wait::recv(py, &mut c, w, &mut sleep_idle, |g| frame::decode(py, &g));
            match r {
                Ok(Recv::Got(obj)) => {
                    self.cons.put(c);
                    self.release_permit(py, 1)?;
                    return Ok(Some(obj));
                }
                Ok(Recv::Forked) => continue,
                Ok(_) => {
                    self.cons.put(c);
                    return Ok(None);
                }
                Err(e) => {
                    self.cons.put(c);
                    return Err(e);
                }
            }
        }
    }
}

#[pymethods]
impl Queue {
    /// `Queue(maxsize=0, *, capacity=None, max_message=65536, path=None)`.
    ///
    /// `capacity`: slots in the ring (a power of two; default `maxsize`
    /// rounded up to a power of two, or 256). `max_message`: the largest
    /// message in bytes (pickled size for objects). `path`: a named ring
    /// file (e.g. under `/dev/shm`), opened if it exists, else created;
    /// default an anonymous ring.
    #[new]
    #[pyo3(signature = (maxsize=0, *, capacity=None, max_message=DEFAULT_MAX_MESSAGE, path=None))]
    fn new(
        py: Python<'_>,
        maxsize: isize,
        capacity: Option<u64>,
        max_message: usize,
        path: Option<std::path::PathBuf>,
    ) -> PyResult<Queue> {
        // As in multiprocessing: maxsize <= 0 means no bound of its own.
        let maxsize = usize::try_from(maxsize).unwrap_or(0);
        let slots = match capacity {
            Some(c) => {
                if maxsize > 0 && (maxsize as u64) > c {
                    return Err(PyValueError::new_err(format!(
                        "maxsize {maxsize} exceeds capacity {c} (slots)"
                    )));
                }
                c
            }
            None if maxsize > 0 => (maxsize as u64).next_power_of_two().max(2),
            None => DEFAULT_SLOTS,
        };
        let cfg = Config::slots(slots, slot_size(max_message));
        let ring = match path {
            Some(p) => AnyRing::open_or_create(p, Kind::Mpmc, cfg),
            None => AnyRing::anonymous(Kind::Mpmc, cfg),
        }
        .map_err(err)?;
        let bound_by_ring = ring.kind() == Kind::Mpmc && ring.stat().slot_count == maxsize as u64;
        let sem = if maxsize > 0 && !bound_by_ring {
            // Made in the spawn context, so that it can go to children of
            // every start method (one made in the fork context may not be
            // sent to a spawned child; under fork it is inherited anyway).
            let mp = py.import("multiprocessing")?;
            let spawn = mp.call_method1("get_context", ("spawn",))?;
            Some(spawn.call_method1("BoundedSemaphore", (maxsize,))?.unbind())
        } else {
            None
        };
        Ok(Queue::from_ring(ring, maxsize, sem))
    }

    /// Rebuilds a queue from a ring descriptor received from another
    /// process (used by pickling).
    #[staticmethod]
    #[pyo3(signature = (fd, maxsize, sem))]
    fn _from_fd(fd: i32, maxsize: usize, sem: Option<Py<PyAny>>) -> PyResult<Queue> {
        // SAFETY: the caller hands over an fd it owns (DupFd.detach()).
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let ring = AnyRing::from_fd(fd).map_err(err)?;
        Ok(Queue::from_ring(ring, maxsize, sem))
    }

    /// Rebuilds a queue from a ring path (used by pickling).
    #[staticmethod]
    #[pyo3(signature = (path, maxsize, sem))]
    fn _from_path(
        path: std::path::PathBuf,
        maxsize: usize,
        sem: Option<Py<PyAny>>,
    ) -> PyResult<Queue> {
        let ring = AnyRing::open(path).map_err(err)?;
        Ok(Queue::from_ring(ring, maxsize, sem))
    }

    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let me = slf.get();
        let module = py.import("mmring")?;
        let sem = me.sem.as_ref().map(|s| s.clone_ref(py));
        match me.ring().path() {
            Some(p) => {
                let f = module.getattr("_rebuild_queue_path")?;
                let args = (p.to_path_buf(), me.maxsize, sem).into_pyobject(py)?;
                PyTuple::new(py, [f, args.into_any()])
            }
            None => {
                let dupfd = py.import("multiprocessing.reduction")?.getattr("DupFd")?;
                let handle = dupfd.call1((me.ring().as_fd().as_raw_fd(),))?;
                let f = module.getattr("_rebuild_queue_fd")?;
                let args = (handle, me.maxsize, sem).into_pyobject(py)?;
                PyTuple::new(py, [f, args.into_any()])
            }
        }
    }

    /// Puts `obj` in the queue, waiting for room if `block` (for at most
    /// `timeout` seconds); raises `queue.Full` when there is none.
    #[pyo3(signature = (obj, block=true, timeout=None))]
    fn put(
        slf: &Bound<'_, Self>,
        obj: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        Queue::check_open(slf)?;
        if slf
            .get()
            .put_one(slf.py(), obj, Wait::new(block, timeout)?)?
        {
            Ok(())
        } else {
            Err(Full::new_err(()))
        }
    }

    /// `put(obj, False)`.
    fn put_nowait(slf: &Bound<'_, Self>, obj: &Bound<'_, PyAny>) -> PyResult<()> {
        Queue::put(slf, obj, false, None)
    }

    /// Removes and returns an item, waiting for one if `block` (for at most
    /// `timeout` seconds); raises `queue.Empty` when there is none.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get<'py>(
        slf: &Bound<'py, Self>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Queue::check_open(slf)?;
        match slf.get().get_one(slf.py(), Wait::new(block, timeout)?)? {
            Some(obj) => Ok(obj),
            None => Err(Empty::new_err(())),
        }
    }

    /// `get(False)`.
    fn get_nowait<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Queue::get(slf, false, None)
    }

    /// Puts every object of `objs`, in order, publishing them together
    /// (one wake-up check per batch). Blocks for room as `put` does;
    /// returns how many were put. Raises `queue.Full` if none could be.
    #[pyo3(signature = (objs, block=true, timeout=None))]
    fn put_many(
        slf: &Bound<'_, Self>,
        objs: &Bound<'_, PyAny>,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<usize> {
        Queue::check_open(slf)?;
        let py = slf.py();
        let me = slf.get();
        let w = Wait::new(block, timeout)?;
        let max = me.ring().max_frame();
        let mut encoded = Vec::new();
        for obj in objs.try_iter()? {
            let enc = frame::encode(&obj?)?;
            if enc.frame_len() > max {
                return Err(too_large(enc.frame_len(), max, HEADER_LEN));
            }
            encoded.push(enc);
        }
        let mut sent = 0;
        let mut p = me.prod.take()?;
        let r = (|| -> PyResult<()> {
            while sent < encoded.len() {
                // As many as fit now, in one batch (published when dropped).
                let mut forked = false;
                let mut failed = None;
                {
                    let mut batch = p.batch();
                    while sent < encoded.len() {
                        if !me.acquire(py, Wait::Once)? {
                            break;
                        }
                        let enc = &encoded[sent];
                        match batch.try_reserve(enc.frame_len()) {
                            Ok(mut g) => {
                                enc.write(&mut g);
                                g.commit();
                                sent += 1;
                            }
                            Err(e) => {
                                me.release_permit(py, 1)?;
                                match e {
                                    SendError::Full => {}
                                    SendError::Forked => forked = true,
                                    e => failed = Some(send_err(e)),
                                }
                                break;
                            }
                        }
                    }
                }
                if forked {
                    // Inherited across fork: attach our own and go on.
                    p = me.prod.take()?;
                    continue;
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                if sent == encoded.len() {
                    break;
                }
                // No room (or no permit): wait for it for the next message.
                let enc = &encoded[sent];
                if !me.acquire(py, w)? {
                    break;
                }
                let len = enc.frame_len();
                match wait::reserve(py, &mut p, len, w, |mut g| {
                    enc.write(&mut g);
                    g.commit();
                    Ok(())
                }) {
                    Ok(Sent::Done(())) => sent += 1,
                    Ok(Sent::Forked) => {
                        me.release_permit(py, 1)?;
                        p = me.prod.take()?;
                    }
                    Ok(Sent::Full) => {
                        me.release_permit(py, 1)?;
                        break;
                    }
                    Err(e) => {
                        me.release_permit(py, 1)?;
                        return Err(e);
                    }
                }
            }
            Ok(())
        })();
        me.prod.put(p);
        if let Err(e) = r {
            if sent == 0 {
                return Err(e);
            }
        }
        if sent == 0 && !encoded.is_empty() {
            return Err(Full::new_err(()));
        }
        Ok(sent)
    }

    /// Removes up to `max_messages` items (at least one, waiting as `get`
    /// does; `queue.Empty` if none came), releasing them together.
    #[pyo3(signature = (max_messages=1024, block=true, timeout=None))]
    fn get_many<'py>(
        slf: &Bound<'py, Self>,
        max_messages: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        Queue::check_open(slf)?;
        let py = slf.py();
        let me = slf.get();
        let w = Wait::new(block, timeout)?;
        let max = max_messages.max(1);
        let out = PyList::empty(py);
        loop {
            let mut c = me.cons.take()?;
            let mut failed: Option<PyErr> = None;
            let mut collect = |frame: &[u8]| {
                if failed.is_none() {
                    match frame::decode(py, frame) {
                        Ok(obj) => {
                            if let Err(e) = out.append(obj) {
                                failed = Some(e);
                            }
                        }
                        Err(e) => failed = Some(e),
                    }
                }
            };
            let mut r = c.try_recv_batch(max, &mut collect);
            if matches!(r, Err(RecvError::Empty)) {
                // Wait for the first, with the GIL released, then take the
                // rest with it held.
                let mut first: Option<Vec<u8>> = None;
                r = loop {
                    let Some(slice) = w.slice() else {
                        break Err(RecvError::Empty);
                    };
                    let got = py.detach(|| c.recv_timeout(slice).map(|g| g.to_vec()));
                    match got {
                        Ok(v) => {
                            first = Some(v);
                            break Ok(1);
                        }
                        Err(RecvError::Timeout) => {}
                        Err(RecvError::Disconnected | RecvError::Unlinked) => {
                            sleep_idle(py, slice)?;
                        }
                        Err(e) => break Err(e),
                    }
                    if let Err(e) = py.check_signals() {
                        me.cons.put(c);
                        return Err(e);
                    }
                };
                if let Some(v) = first {
                    collect(&v);
                    if max > 1 {
                        r = Ok(1 + c.try_recv_batch(max - 1, &mut collect).unwrap_or(0));
                    }
                }
            }
            match r {
                Ok(n) => {
                    me.cons.put(c);
                    me.release_permit(py, n)?;
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    return Ok(out);
                }
                Err(RecvError::Forked) => continue,
                Err(RecvError::Empty) => {
                    me.cons.put(c);
                    return Err(Empty::new_err(()));
                }
                Err(e) => {
                    me.cons.put(c);
                    return Err(recv_err(e));
                }
            }
        }
    }

    /// Takes the next message as a read-only zero-copy view of its payload
    /// in the ring (the bytes of a `bytes`/`bytearray`/`memoryview`
    /// message, the pickle of an object). Waits as `get`; `queue.Empty`.
    #[pyo3(signature = (block=true, timeout=None))]
    fn get_view(slf: &Bound<'_, Self>, block: bool, timeout: Option<f64>) -> PyResult<ReadView> {
        Queue::check_open(slf)?;
        let py = slf.py();
        let me = slf.get();
        let offset: crate::views::Offset = |f| f.len() - frame::payload(f).len();
        match ReadView::take(
            py,
            &me.cons,
            Wait::new(block, timeout)?,
            &mut sleep_idle,
            offset,
        )? {
            Recv::Got(v) => {
                me.release_permit(py, 1)?;
                Ok(v)
            }
            _ => Err(Empty::new_err(())),
        }
    }

    /// Reserves room for a `bytes` message of `nbytes` bytes and returns it
    /// as a writable view: fill it and `commit()` (a `with` block commits
    /// on success). Waits for room as `put`; `queue.Full`.
    #[pyo3(signature = (nbytes, block=true, timeout=None))]
    fn reserve(
        slf: &Bound<'_, Self>,
        nbytes: usize,
        block: bool,
        timeout: Option<f64>,
    ) -> PyResult<WriteView> {
        Queue::check_open(slf)?;
        let py = slf.py();
        let me = slf.get();
        let max = me.ring().max_frame();
        if nbytes + HEADER_LEN > max {
            return Err(too_large(nbytes + HEADER_LEN, max, HEADER_LEN));
        }
        let w = Wait::new(block, timeout)?;
        if !me.acquire(py, w)? {
            return Err(Full::new_err(()));
        }
        let head = frame::header(1);
        match WriteView::reserve(py, &me.prod, &head, nbytes, w) {
            Ok(Some(v)) => Ok(v.with_permit(me.sem.as_ref().map(|s| s.clone_ref(py)))),
            Ok(None) => {
                me.release_permit(py, 1)?;
                Err(Full::new_err(()))
            }
            Err(e) => {
                me.release_permit(py, 1)?;
                Err(e)
            }
        }
    }

    /// Approximate number of messages in the queue.
    fn qsize(&self) -> PyResult<usize> {
        // (A handle inherited across fork still reads the right cursors.)
        let p = self.prod.take()?;
        let n = p.len_hint();
        self.prod.put(p);
        Ok(n as usize)
    }

    /// Whether the queue is empty (a snapshot).
    fn empty(&self) -> PyResult<bool> {
        let c = self.cons.take()?;
        let e = c.is_empty();
        self.cons.put(c);
        Ok(e)
    }

    /// Whether the queue is full (a snapshot).
    fn full(&self, py: Python<'_>) -> PyResult<bool> {
        if let Some(sem) = &self.sem {
            // As multiprocessing: no permit left.
            let v = sem.bind(py).getattr("_semlock")?.call_method0("_is_zero")?;
            return v.is_truthy();
        }
        let p = self.prod.take()?;
        let f = p.is_full();
        self.prod.put(p);
        Ok(f)
    }

    /// Closes the queue in this process: no more `put` or `get` here, and
    /// this process's handles detach. Messages in the ring stay for other
    /// processes.
    fn close(&self) {
        // ORDERING: Relaxed; as in `check_open`.
        self.closed.store(true, Relaxed);
        self.prod.clear();
        self.cons.clear();
    }

    /// As `multiprocessing.Queue.join_thread`: there is no feeder thread to
    /// join (a put is in the ring when it returns); only checks that the
    /// queue was closed.
    fn join_thread(slf: &Bound<'_, Self>) -> PyResult<()> {
        // ORDERING: Relaxed; as in `check_open`.
        if !slf.get().closed.load(Relaxed) {
            return Err(PyAssertionError::new_err(format!(
                "Queue {} not closed",
                slf.repr()?
            )));
        }
        Ok(())
    }

    /// No feeder thread, nothing to cancel.
    fn cancel_join_thread(&self) {}

    /// Largest message payload in bytes.
    #[getter]
    fn max_message(&self) -> usize {
        self.ring().max_frame() - HEADER_LEN
    }

    /// Slots in the ring.
    #[getter(capacity)]
    fn slot_count(&self) -> u64 {
        self.ring().stat().slot_count
    }

    /// The maxsize given at creation (0: none).
    #[getter]
    fn maxsize(&self) -> usize {
        self.maxsize
    }

    /// The ring file's path (`None` for an anonymous ring).
    #[getter]
    fn path(&self) -> Option<std::path::PathBuf> {
        self.ring().path().map(|p| p.to_path_buf())
    }

    /// The ring's file descriptor (the memfd of an anonymous ring).
    fn fileno(&self) -> i32 {
        self.ring().as_fd().as_raw_fd()
    }

    fn __repr__(&self) -> String {
        format!(
            "<mmring.Queue maxsize={} slots={} max_message={}{}>",
            self.maxsize,
            self.ring().stat().slot_count,
            self.ring().max_frame() - HEADER_LEN,
            match self.ring().path() {
                Some(p) => format!(" path={}", p.display()),
                None => String::new(),
            }
        )
    }
}
