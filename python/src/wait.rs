//! Waiting for a message or for room with the GIL released, in slices.
//!
//! The library's `recv_timeout` / `reserve_timeout` sleep on a futex; here
//! they run with the GIL released for at most [`SLICE`] at a time, and
//! between slices `check_signals` runs the Python signal handlers, so
//! Ctrl-C raises `KeyboardInterrupt` within about [`SLICE`]. Nothing is
//! taken or claimed by a slice that timed out, so an interrupted call loses
//! nothing.

use std::time::{Duration, Instant};

use mmring::{AnyConsumer, AnyProducer, AnyReadGrant, AnyWriteGrant, RecvError, SendError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::handles::{recv_err, send_err};

/// The longest wait between two looks at pending signals.
pub const SLICE: Duration = Duration::from_millis(50);

/// How long a call may wait, from Python's `block` / `timeout`.
#[derive(Debug, Clone, Copy)]
pub enum Wait {
    /// One attempt (`block=False`).
    Once,
    /// Until it succeeds (`timeout=None`).
    Forever,
    /// Until this instant (a negative timeout is taken as 0, as
    /// `multiprocessing` does).
    Until(Instant),
}

impl Wait {
    pub fn new(block: bool, timeout: Option<f64>) -> PyResult<Wait> {
        if !block {
            return Ok(Wait::Once);
        }
        match timeout {
            None => Ok(Wait::Forever),
            Some(t) if t.is_nan() => Err(PyValueError::new_err("timeout must not be NaN")),
            Some(t) => {
                let d = Duration::try_from_secs_f64(t.max(0.0)).unwrap_or(Duration::MAX);
                Ok(match Instant::now().checked_add(d) {
                    Some(at) => Wait::Until(at),
                    None => Wait::Forever,
                })
            }
        }
    }

    /// The next slice to wait; `None` once the deadline has passed (or for
    /// `Once`).
    pub fn slice(&self) -> Option<Duration> {
        match *self {
            Wait::Once => None,
            Wait::Forever => Some(SLICE),
            Wait::Until(at) => {
                let left = at.saturating_duration_since(Instant::now());
                (!left.is_zero()).then(|| left.min(SLICE))
            }
        }
    }
}

/// What a receive came to.
pub enum Recv<R> {
    /// A message, as the callback made it.
    Got(R),
    /// Nothing before the deadline (or now, for `Once`).
    Empty,
    /// No message, and `idle` says none can come any more.
    Eof,
    /// The handle was inherited across `fork`: attach a new one.
    Forked,
}

/// What a reservation came to.
pub enum Sent<R> {
    Done(R),
    /// No room before the deadline (or now, for `Once`).
    Full,
    /// The handle was inherited across `fork`: attach a new one.
    Forked,
}

/// Called between slices while nothing arrives: with `Duration::ZERO`
/// after a slice that timed out, with a slice's length once every producer
/// is gone (the library then stops waiting, so `idle` does the waiting: a
/// `Queue` sleeps, since producers may attach later; a `Connection` waits
/// for its peer's descriptors to close). Returns whether no message can
/// come any more (end of stream).
pub type Idle<'a> = &'a mut dyn FnMut(Python<'_>, Duration) -> PyResult<bool>;

/// Takes the next message from `cons` and hands its grant to `f`, waiting
/// as `wait` allows.
pub fn recv<R>(
    py: Python<'_>,
    cons: &mut AnyConsumer,
    wait: Wait,
    idle: Idle<'_>,
    f: impl FnOnce(AnyReadGrant<'_>) -> PyResult<R>,
) -> PyResult<Recv<R>> {
    match cons.try_recv() {
        Ok(g) => return f(g).map(Recv::Got),
        Err(RecvError::Empty) => {}
        Err(RecvError::Forked) => return Ok(Recv::Forked),
        Err(e) => return Err(recv_err(e)),
    }
    loop {
        let Some(slice) = wait.slice() else {
            return Ok(Recv::Empty);
        };
        let ended = match py.detach(|| cons.recv_timeout(slice)) {
            Ok(g) => return f(g).map(Recv::Got),
            Err(RecvError::Timeout) => idle(py, Duration::ZERO)?,
            Err(RecvError::Disconnected | RecvError::Unlinked) => idle(py, slice)?,
            Err(RecvError::Forked) => return Ok(Recv::Forked),
            Err(e) => return Err(recv_err(e)),
        };
        if ended {
            // No producer can come any more: what is in the ring is all
            // there is.
            return match cons.try_recv() {
                Ok(g) => f(g).map(Recv::Got),
                Err(RecvError::Empty) => Ok(Recv::Eof),
                Err(e) => Err(recv_err(e)),
            };
        }
        py.check_signals()?;
    }
}

/// Reserves `len` bytes in `prod` and hands the grant to `f`, waiting as
/// `wait` allows. Consumers that are all gone may come back (another
/// process may attach one), so a full ring without consumers is waited on
/// like any full ring.
pub fn reserve<R>(
    py: Python<'_>,
    prod: &mut AnyProducer,
    len: usize,
    wait: Wait,
    f: impl FnOnce(AnyWriteGrant<'_>) -> PyResult<R>,
) -> PyResult<Sent<R>> {
    match prod.try_reserve(len) {
        Ok(g) => return f(g).map(Sent::Done),
        Err(SendError::Full) => {}
        Err(SendError::Forked) => return Ok(Sent::Forked),
        Err(e) => return Err(send_err(e)),
    }
    loop {
        let Some(slice) = wait.slice() else {
            return Ok(Sent::Full);
        };
        let r = py.detach(|| prod.reserve_timeout(len, slice));
        match r {
            Ok(g) => return f(g).map(Sent::Done),
            Err(SendError::Timeout) => {}
            Err(SendError::Disconnected | SendError::Unlinked) => {
                py.detach(|| std::thread::sleep(slice.min(Duration::from_millis(5))))
            }
            Err(SendError::Forked) => return Ok(Sent::Forked),
            Err(e) => return Err(send_err(e)),
        }
        py.check_signals()?;
    }
}

/// Sleeps `d` with the GIL released: a `Queue`'s `idle`.
pub fn sleep_idle(py: Python<'_>, d: Duration) -> PyResult<bool> {
    if !d.is_zero() {
        py.detach(|| std::thread::sleep(d.min(Duration::from_millis(5))));
    }
    Ok(false)
}
