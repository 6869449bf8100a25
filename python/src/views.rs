//! Zero-copy views: a received message as a read-only buffer, a reserved
//! message as a writable one.
//!
//! A [`ReadView`] owns a consumer handle (taken from its pool) and the read
//! grant that borrows it; the grant is released, and the handle given back,
//! when the view is released (`release()`, the end of a `with` block, or
//! garbage collection) and no buffer exported from it (a `memoryview`, a
//! numpy array) is alive any more. A released view exports nothing:
//! `memoryview(view)` raises `ValueError`. A [`WriteView`] likewise owns a
//! producer and its write grant until `commit()` or `abort()`.

use std::ffi::{c_int, c_void};
use std::ptr::NonNull;
use std::sync::Arc;

use mmring::{AnyConsumer, AnyProducer, AnyReadGrant, AnyWriteGrant};
use pyo3::exceptions::{PyBufferError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::handles::{ConsPool, ProdPool};
use crate::wait::{self, Idle, Recv, Sent, Wait};

/// A read grant together with the consumer it borrows.
struct HeldRead {
    /// Declared before `cons`'s owner is rebuilt: always dropped first.
    grant: Option<AnyReadGrant<'static>>,
    /// The consumer, leaked from its `Box` while the grant borrows it.
    cons: NonNull<AnyConsumer>,
    pool: Arc<ConsPool>,
}

// SAFETY: the grant and the consumer it points to move together, and both
// are `Send` (the library's handles are `Send`); nothing else refers to the
// consumer while it is held here.
unsafe impl Send for HeldRead {}
// SAFETY: through `&HeldRead` only the message's bytes are read (`bytes`),
// which nobody writes while the grant is held.
unsafe impl Sync for HeldRead {}

impl HeldRead {
    fn bytes(&self) -> &[u8] {
        self.grant.as_deref().expect("held until dropped")
    }
}

impl Drop for HeldRead {
    fn drop(&mut self) {
        // Release the message first: the grant borrows the consumer.
        drop(self.grant.take());
        // SAFETY: `cons` came from `Box::into_raw` in `ReadView::take`, and
        // the only borrow of it (the grant) is gone.
        let cons = unsafe { Box::from_raw(self.cons.as_ptr()) };
        self.pool.put(cons);
    }
}

/// A received message, viewed in place in the ring (read-only buffer
/// protocol). See the module documentation.
#[pyclass(module = "mmring")]
pub struct ReadView {
    held: Option<HeldRead>,
    /// Bytes of framing before the payload (a `Queue` frame's header).
    offset: usize,
    /// Buffers exported and not yet released.
    exports: usize,
    /// `release()` was called while buffers were exported.
    closing: bool,
}

/// `offset_of(frame)`: where the payload starts in a frame.
pub type Offset = fn(&[u8]) -> usize;

impl ReadView {
    /// Takes the next message from a consumer of `pool` as a view, waiting
    /// as `wait` allows.
    pub fn take(
        py: Python<'_>,
        pool: &Arc<ConsPool>,
        wait: Wait,
        idle: Idle<'_>,
        offset: Offset,
    ) -> PyResult<Recv<ReadView>> {
        loop {
            let cons = NonNull::from(Box::leak(pool.take()?));
            // SAFETY: `cons` is a leaked Box, referred to by nothing else;
            // the grant made from this borrow is kept in a `HeldRead` with
            // `cons`, which drops the grant before rebuilding the Box.
            let c: &'static mut AnyConsumer = unsafe { &mut *cons.as_ptr() };
            let r = wait::recv(py, c, wait, idle, |g| {
                // SAFETY: as above: the consumer outlives the grant.
                Ok(unsafe { std::mem::transmute::<AnyReadGrant<'_>, AnyReadGrant<'static>>(g) })
            });
            let give_back = || {
                // SAFETY: no grant of `cons` exists on this path.
                unsafe { Box::from_raw(cons.as_ptr()) }
            };
            return match r {
                Ok(Recv::Got(grant)) => {
                    let held = HeldRead {
                        grant: Some(grant),
                        cons,
                        pool: pool.clone(),
                    };
                    let offset = offset(held.bytes());
                    Ok(Recv::Got(ReadView {
                        held: Some(held),
                        offset,
                        exports: 0,
                        closing: false,
                    }))
                }
                Ok(Recv::Forked) => {
                    drop(give_back());
                    continue;
                }
                other => {
                    pool.put(give_back());
                    other.map(|r| match r {
                        Recv::Empty => Recv::Empty,
                        _ => Recv::Eof,
                    })
                }
            };
        }
    }

    fn data(&self) -> PyResult<&[u8]> {
        match &self.held {
            Some(h) if !self.closing => Ok(&h.bytes()[self.offset..]),
            _ => Err(PyValueError::new_err("the view was released")),
        }
    }
}

#[pymethods]
impl ReadView {
    /// # Safety
    ///
    /// Called by Python with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let mut me = slf.borrow_mut();
        if flags & ffi::PyBUF_WRITABLE == ffi::PyBUF_WRITABLE {
            return Err(PyBufferError::new_err("a received message is read-only"));
        }
        let data = me.data()?;
        let (ptr, len) = (data.as_ptr(), data.len() as isize);
        // SAFETY: `view` is Python's to fill; the bytes stay valid until the
        // matching `__releasebuffer__` (the grant is kept while `exports` >
        // 0), and the buffer is marked read-only.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(view, slf.as_ptr(), ptr as *mut c_void, len, 1, flags)
        };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        me.exports += 1;
        Ok(())
    }

    /// # Safety
    ///
    /// Called by Python once per filled view.
    unsafe fn __releasebuffer__(&mut self, _view: *mut ffi::Py_buffer) {
        self.exports -= 1;
        if self.exports == 0 && self.closing {
            self.held = None;
        }
    }

    /// Releases the message (its space goes back to the producers). If
    /// buffers exported from the view are still alive, the release happens
    /// when the last of them is released; the view exports nothing new.
    fn release(&mut self) {
        if self.exports == 0 {
            self.held = None;
        } else {
            self.closing = true;
        }
    }

    /// Whether the view was released.
    #[getter]
    fn released(&self) -> bool {
        self.held.is_none() || self.closing
    }

    /// A copy of the payload.
    fn tobytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        Ok(PyBytes::new(py, self.data()?))
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.data()?.len())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> bool {
        self.release();
        false
    }

    fn __repr__(&self) -> String {
        match self.data() {
            Ok(d) => format!("<mmring.ReadView of {} bytes>", d.len()),
            Err(_) => "<mmring.ReadView released>".to_owned(),
        }
    }
}

/// A write grant together with the producer it borrows.
struct HeldWrite {
    grant: Option<AnyWriteGrant<'static>>,
    prod: NonNull<AnyProducer>,
    pool: Arc<ProdPool>,
}

// SAFETY: as for `HeldRead`.
unsafe impl Send for HeldWrite {}
// SAFETY: nothing is reachable through `&HeldWrite`; every use of the grant
// goes through `&mut` (PyO3's exclusive borrow of the view).
unsafe impl Sync for HeldWrite {}

impl Drop for HeldWrite {
    fn drop(&mut self) {
        // An uncommitted grant gives its space back when dropped.
        drop(self.grant.take());
        // SAFETY: `prod` came from `Box::into_raw` in `WriteView::reserve`,
        // and its only borrow (the grant) is gone.
        let prod = unsafe { Box::from_raw(self.prod.as_ptr()) };
        self.pool.put(prod);
    }
}

/// Room reserved in the ring for one message, as a writable buffer: fill
/// it, then `commit()` (or leave a `with` block without an exception).
/// `abort()`, an exception in the `with` block, or dropping the view
/// gives the room back unpublished.
#[pyclass(module = "mmring")]
pub struct WriteView {
    held: Option<HeldWrite>,
    offset: usize,
    len: usize,
    exports: usize,
    /// A `Queue`'s maxsize permit, given back if nothing is committed.
    permit: Option<Py<PyAny>>,
}

impl WriteView {
    /// Reserves `offset + len` bytes in a producer of `pool`, writes
    /// `head` at the start, and views the `len` bytes after `offset`.
    pub fn reserve(
        py: Python<'_>,
        pool: &Arc<ProdPool>,
        head: &[u8],
        len: usize,
        wait: Wait,
    ) -> PyResult<Option<WriteView>> {
        let offset = head.len();
        loop {
            let prod = NonNull::from(Box::leak(pool.take()?));
            // SAFETY: as in `ReadView::take`, for the producer.
            let p: &'static mut AnyProducer = unsafe { &mut *prod.as_ptr() };
            let r = wait::reserve(py, p, offset + len, wait, |mut g| {
                g[..offset].copy_from_slice(head);
                // SAFETY: as above: the producer outlives the grant.
                Ok(unsafe { std::mem::transmute::<AnyWriteGrant<'_>, AnyWriteGrant<'static>>(g) })
            });
            let give_back = || {
                // SAFETY: no grant of `prod` exists on this path.
                unsafe { Box::from_raw(prod.as_ptr()) }
            };
            return match r {
                Ok(Sent::Done(grant)) => Ok(Some(WriteView {
                    held: Some(HeldWrite {
                        grant: Some(grant),
                        prod,
                        pool: pool.clone(),
                    }),
                    offset,
                    len,
                    exports: 0,
                    permit: None,
                })),
                Ok(Sent::Forked) => {
                    drop(give_back());
                    continue;
                }
                Ok(Sent::Full) => {
                    pool.put(give_back());
                    Ok(None)
                }
                Err(e) => {
                    pool.put(give_back());
                    Err(e)
                }
            };
        }
    }

    pub fn with_permit(mut self, permit: Option<Py<PyAny>>) -> WriteView {
        self.permit = permit;
        self
    }

    fn ended(&self) -> PyResult<()> {
        if self.held.is_none() {
            return Err(PyValueError::new_err("the grant was committed or aborted"));
        }
        Ok(())
    }

    fn give_back_permit(&mut self, py: Python<'_>) -> PyResult<()> {
        if let Some(sem) = self.permit.take() {
            sem.bind(py).call_method0("release")?;
        }
        Ok(())
    }
}

#[pymethods]
impl WriteView {
    /// # Safety
    ///
    /// Called by Python with a valid `view` to fill.
    unsafe fn __getbuffer__(
        slf: Bound<'_, Self>,
        view: *mut ffi::Py_buffer,
        flags: c_int,
    ) -> PyResult<()> {
        let mut me = slf.borrow_mut();
        me.ended()?;
        let (offset, len) = (me.offset, me.len);
        let held = me.held.as_mut().expect("checked above");
        let grant = held.grant.as_mut().expect("held until dropped");
        let ptr = grant[offset..offset + len].as_mut_ptr();
        // SAFETY: `view` is Python's to fill; the reserved bytes stay ours
        // until commit/abort, which are refused while `exports` > 0.
        let rc = unsafe {
            ffi::PyBuffer_FillInfo(
                view,
                slf.as_ptr(),
                ptr as *mut c_void,
                len as isize,
                0,
                flags,
            )
        };
        if rc == -1 {
            return Err(PyErr::fetch(slf.py()));
        }
        me.exports += 1;
        Ok(())
    }

    /// # Safety
    ///
    /// Called by Python once per filled view.
    unsafe fn __releasebuffer__(&mut self, _view: *mut ffi::Py_buffer) {
        self.exports -= 1;
    }

    /// Publishes the first `nbytes` bytes (all reserved bytes by default)
    /// as the message.
    #[pyo3(signature = (nbytes=None))]
    fn commit(&mut self, nbytes: Option<usize>) -> PyResult<()> {
        self.ended()?;
        if self.exports > 0 {
            return Err(PyBufferError::new_err(
                "buffers of the reserved message are still alive: release them before commit",
            ));
        }
        let n = nbytes.unwrap_or(self.len);
        if n > self.len {
            return Err(PyValueError::new_err(format!(
                "commit of {n} bytes exceeds the reservation of {} bytes",
                self.len
            )));
        }
        let mut held = self.held.take().expect("checked above");
        let grant = held.grant.take().expect("held until dropped");
        grant.commit_len(self.offset + n);
        self.permit = None;
        Ok(())
    }

    /// Gives the room back without publishing anything.
    fn abort(&mut self, py: Python<'_>) -> PyResult<()> {
        self.ended()?;
        if self.exports > 0 {
            return Err(PyBufferError::new_err(
                "buffers of the reserved message are still alive: release them before abort",
            ));
        }
        self.held = None;
        self.give_back_permit(py)
    }

    /// Bytes reserved.
    fn __len__(&self) -> usize {
        self.len
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &mut self,
        py: Python<'_>,
        t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        if self.held.is_some() {
            if t.is_none() {
                self.commit(None)?;
            } else {
                self.abort(py)?;
            }
        }
        Ok(false)
    }
}

impl Drop for WriteView {
    fn drop(&mut self) {
        if self.permit.is_some() {
            Python::attach(|py| {
                let _ = self.give_back_permit(py);
            });
        }
    }
}
