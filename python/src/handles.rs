//! Pools of the library's role handles, and errors as Python exceptions.
//!
//! A Python object (a `Queue`, one end of a `Pipe`) may be used by several
//! threads and, after `fork`, by a child that inherited it. Each operation
//! takes a handle from its pool (attaching a new one when the pool is
//! empty), uses it without holding any lock, and puts it back. A handle
//! inherited across `fork` answers `Forked`; it is dropped (which leaves the
//! parent's role alone) and a handle of this process's own is attached.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use mmring::{AnyConsumer, AnyProducer, AnyRing, Error, RecvError, SendError};
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;

/// A pool of producers of one ring. Handles are boxed: a view keeps its
/// handle at a fixed address while its grant borrows it.
#[allow(clippy::vec_box)]
pub struct ProdPool {
    pub ring: AnyRing,
    free: Mutex<Vec<Box<AnyProducer>>>,
    /// Closed: handles given back are detached instead of pooled.
    closed: AtomicBool,
}

/// A pool of consumers of one ring (boxed, as producers).
#[allow(clippy::vec_box)]
pub struct ConsPool {
    pub ring: AnyRing,
    free: Mutex<Vec<Box<AnyConsumer>>>,
    /// Closed: handles given back are detached instead of pooled.
    closed: AtomicBool,
}

impl ProdPool {
    pub fn new(ring: AnyRing) -> Arc<ProdPool> {
        Arc::new(ProdPool {
            ring,
            free: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// A producer of this process: pooled, or newly attached.
    pub fn take(&self) -> PyResult<Box<AnyProducer>> {
        if let Some(p) = lock(&self.free).pop() {
            return Ok(p);
        }
        self.ring.producer().map(Box::new).map_err(err)
    }

    /// Gives a producer back for the next operation (or detaches it once
    /// the pool is closed).
    pub fn put(&self, p: Box<AnyProducer>) {
        let mut free = lock(&self.free);
        // ORDERING: Relaxed; set under the same lock in `clear`.
        if self.closed.load(Relaxed) {
            drop(free);
            drop(p); // detached outside the lock
        } else {
            free.push(p);
        }
    }

    /// Detaches every pooled producer, and those in use as they come back.
    pub fn clear(&self) {
        let handles = {
            let mut free = lock(&self.free);
            // ORDERING: Relaxed; read under the same lock in `put`.
            self.closed.store(true, Relaxed);
            std::mem::take(&mut *free)
        };
        // Detached outside the lock.
        drop(handles);
    }
}

impl ConsPool {
    pub fn new(ring: AnyRing) -> Arc<ConsPool> {
        Arc::new(ConsPool {
            ring,
            free: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// A consumer of this process: pooled, or newly attached.
    pub fn take(&self) -> PyResult<Box<AnyConsumer>> {
        if let Some(c) = lock(&self.free).pop() {
            return Ok(c);
        }
        match self.ring.consumer() {
            Ok(c) => Ok(Box::new(c)),
            Err(Error::RoleTaken { pid, .. }) if pid == Some(std::process::id()) => {
                Err(PyRuntimeError::new_err(
                    "this connection's receiving side is in use: a received view is still \
                     held, or another thread is receiving",
                ))
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Gives a consumer back for the next operation (or detaches it once
    /// the pool is closed).
    pub fn put(&self, c: Box<AnyConsumer>) {
        let mut free = lock(&self.free);
        // ORDERING: Relaxed; set under the same lock in `clear`.
        if self.closed.load(Relaxed) {
            drop(free);
            drop(c); // detached outside the lock
        } else {
            free.push(c);
        }
    }

    /// Detaches every pooled consumer, and those in use as they come back.
    pub fn clear(&self) {
        let handles = {
            let mut free = lock(&self.free);
            // ORDERING: Relaxed; read under the same lock in `put`.
            self.closed.store(true, Relaxed);
            std::mem::take(&mut *free)
        };
        // Detached outside the lock.
        drop(handles);
    }
}

/// A poisoned pool lock only means a panic elsewhere; the handles are fine.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A library error as a Python exception: I/O as `OSError`, bad
/// configuration and bad files as `ValueError`, a role held elsewhere as
/// `RuntimeError`.
pub fn err(e: Error) -> PyErr {
    match e {
        Error::Io { op, source } => {
            let errno = source.raw_os_error().unwrap_or(0);
            PyOSError::new_err((errno, format!("mmring: {op} failed: {source}")))
        }
        Error::Send(s) => send_err(s),
        Error::Recv(r) => recv_err(r),
        e @ (Error::RoleTaken { .. } | Error::TooManyAttachments { .. }) => {
            PyRuntimeError::new_err(format!("mmring: {e}"))
        }
        e => PyValueError::new_err(format!("mmring: {e}")),
    }
}

/// A send error that is not one of the waiting outcomes the caller handles.
pub fn send_err(e: SendError) -> PyErr {
    match e {
        SendError::TooLarge { len, max } => too_large(len, max, 0),
        SendError::Corrupt(c) => PyRuntimeError::new_err(format!("mmring: ring corrupt: {c}")),
        e => PyRuntimeError::new_err(format!("mmring: {e}")),
    }
}

/// A receive error that is not one of the waiting outcomes the caller
/// handles.
pub fn recv_err(e: RecvError) -> PyErr {
    match e {
        RecvError::Corrupt(c) => PyRuntimeError::new_err(format!("mmring: ring corrupt: {c}")),
        e => PyRuntimeError::new_err(format!("mmring: {e}")),
    }
}

/// The `ValueError` of a message larger than the ring takes, naming both
/// sizes (in the caller's terms: `header` bytes of framing are not the
/// caller's).
pub fn too_large(len: usize, max: usize, header: usize) -> PyErr {
    PyValueError::new_err(format!(
        "message of {} bytes exceeds the ring's max_message of {} bytes",
        len.saturating_sub(header),
        max.saturating_sub(header)
    ))
}
