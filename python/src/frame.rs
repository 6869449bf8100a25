//! A `Queue` message's frame: an 8-byte header, then the payload.
//!
//! ```text
//! offset 0  b"MQ"    marks a frame written by mmring.Queue
//!        2  1        header version
//!        3  tag      0 pickle (protocol 5), 1 bytes, 2 bytearray, 3 memoryview
//!        4  0 0 0 0  reserved
//!        8  payload  (8-byte aligned in the ring, like every payload)
//! ```
//!
//! `bytes`, `bytearray` and `memoryview` are copied into the ring as they
//! are; anything else is pickled. A frame without this header (written by
//! the Rust API or the `mmring` CLI into a ring a `Queue` reads) is
//! delivered as `bytes`, whole.

use std::ffi::c_char;
use std::mem::MaybeUninit;

use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyMemoryView};

/// Bytes before the payload.
pub const HEADER_LEN: usize = 8;

const PICKLE: u8 = 0;
const BYTES: u8 = 1;
const BYTEARRAY: u8 = 2;
const MEMORYVIEW: u8 = 3;

/// The header of a frame carrying `tag`.
pub fn header(tag: u8) -> [u8; HEADER_LEN] {
    [b'M', b'Q', 1, tag, 0, 0, 0, 0]
}

/// The tag of a frame with a valid header.
fn tag_of(frame: &[u8]) -> Option<u8> {
    match frame {
        [b'M', b'Q', 1, tag @ 0..=3, 0, 0, 0, 0, ..] => Some(*tag),
        _ => None,
    }
}

/// The payload of a frame with a valid header (the whole frame otherwise).
pub fn payload(frame: &[u8]) -> &[u8] {
    match tag_of(frame) {
        Some(_) => &frame[HEADER_LEN..],
        None => frame,
    }
}

static DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn pickle_fn<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyAny>>,
    name: &str,
) -> PyResult<Bound<'py, PyAny>> {
    let f = cell.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
        Ok(py.import("pickle")?.getattr(name)?.unbind())
    })?;
    Ok(f.bind(py).clone())
}

/// `pickle.dumps(obj, protocol=5)`.
pub fn dumps<'py>(py: Python<'py>, obj: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let dumps = pickle_fn(py, &DUMPS, "dumps")?;
    Ok(dumps.call1((obj, 5))?.cast_into::<PyBytes>()?)
}

/// `pickle.loads` over `bytes` in place (a memoryview of them, released
/// before returning, so nothing keeps a pointer into the ring).
pub fn loads<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let loads = pickle_fn(py, &LOADS, "loads")?;
    let len = isize::try_from(bytes.len()).expect("a slice's length fits isize");
    // SAFETY: `bytes` is valid for `len` bytes for this call; the view is
    // read-only and is released below, before `bytes` can go away.
    let raw = unsafe {
        ffi::PyMemoryView_FromMemory(bytes.as_ptr() as *mut c_char, len, ffi::PyBUF_READ)
    };
    // SAFETY: a new reference or NULL with an exception set.
    let view = unsafe { Bound::from_owned_ptr_or_err(py, raw)? }.cast_into::<PyMemoryView>()?;
    let r = loads.call1((&view,));
    view.call_method0("release")?;
    r
}

/// A contiguous buffer of a Python object (`PyBUF_SIMPLE`), released on
/// drop. Lives only while the GIL is held.
pub struct RawBuf(Box<ffi::Py_buffer>);

impl RawBuf {
    pub fn get(obj: &Bound<'_, PyAny>, writable: bool) -> PyResult<RawBuf> {
        let mut view = Box::new(MaybeUninit::<ffi::Py_buffer>::zeroed());
        let flags = if writable {
            ffi::PyBUF_WRITABLE
        } else {
            ffi::PyBUF_SIMPLE
        };
        // SAFETY: `view` is writable storage for a Py_buffer; `obj` is a
        // live object.
        let rc = unsafe { ffi::PyObject_GetBuffer(obj.as_ptr(), view.as_mut_ptr(), flags) };
        if rc == -1 {
            return Err(PyErr::fetch(obj.py()));
        }
        // SAFETY: PyObject_GetBuffer returned 0, so it filled `view`.
        Ok(RawBuf(unsafe {
            Box::from_raw(Box::into_raw(view).cast::<ffi::Py_buffer>())
        }))
    }

    pub fn len(&self) -> usize {
        self.0.len as usize
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.0.len == 0 {
            return &[];
        }
        // SAFETY: a PyBUF_SIMPLE buffer is `len` contiguous bytes at `buf`,
        // valid until released (on drop); the GIL is held while this lives,
        // so no Python code resizes the exporter.
        unsafe { std::slice::from_raw_parts(self.0.buf as *const u8, self.len()) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.0.len == 0 {
            return &mut [];
        }
        // SAFETY: as `as_slice`, for a buffer obtained with PyBUF_WRITABLE.
        unsafe { std::slice::from_raw_parts_mut(self.0.buf as *mut u8, self.len()) }
    }
}

impl Drop for RawBuf {
    fn drop(&mut self) {
        // SAFETY: obtained by PyObject_GetBuffer and released once; the GIL
        // is held wherever a RawBuf lives.
        unsafe { ffi::PyBuffer_Release(&mut *self.0) };
    }
}

/// What a `Queue` puts in a frame for an object: its tag and its bytes.
pub enum Encoded<'py> {
    Bytes(u8, Bound<'py, PyBytes>),
    Buffer(u8, RawBuf),
}

impl Encoded<'_> {
    pub fn tag(&self) -> u8 {
        match self {
            Encoded::Bytes(t, _) | Encoded::Buffer(t, _) => *t,
        }
    }

    pub fn data(&self) -> &[u8] {
        match self {
            Encoded::Bytes(_, b) => b.as_bytes(),
            Encoded::Buffer(_, b) => b.as_slice(),
        }
    }

    /// Header plus payload.
    pub fn frame_len(&self) -> usize {
        HEADER_LEN + self.data().len()
    }

    /// Writes header and payload into `out` (exactly `frame_len` bytes).
    pub fn write(&self, out: &mut [u8]) {
        out[..HEADER_LEN].copy_from_slice(&header(self.tag()));
        out[HEADER_LEN..].copy_from_slice(self.data());
    }
}

/// Encodes `obj`: bytes-likes as they are, anything else pickled.
pub fn encode<'py>(obj: &Bound<'py, PyAny>) -> PyResult<Encoded<'py>> {
    if let Ok(b) = obj.cast::<PyBytes>() {
        return Ok(Encoded::Bytes(BYTES, b.clone()));
    }
    if obj.is_instance_of::<PyByteArray>() {
        return Ok(Encoded::Buffer(BYTEARRAY, RawBuf::get(obj, false)?));
    }
    if obj.is_instance_of::<PyMemoryView>() {
        return Ok(Encoded::Buffer(MEMORYVIEW, RawBuf::get(obj, false)?));
    }
    Ok(Encoded::Bytes(PICKLE, dumps(obj.py(), obj)?))
}

/// Decodes a frame: the object a `Queue` put, or the whole frame as
/// `bytes` when it has no `Queue` header. A `memoryview` arrives as
/// `bytes` (its contents; a view of the sender's memory cannot travel).
pub fn decode<'py>(py: Python<'py>, frame: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    match tag_of(frame) {
        Some(PICKLE) => loads(py, &frame[HEADER_LEN..]),
        Some(BYTEARRAY) => Ok(PyByteArray::new(py, &frame[HEADER_LEN..]).into_any()),
        Some(_) => Ok(PyBytes::new(py, &frame[HEADER_LEN..]).into_any()),
        None => Ok(PyBytes::new(py, frame).into_any()),
    }
}
