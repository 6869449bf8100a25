//! `mmring.Ring`, `Producer`, `Consumer`: a ring file as the Rust API and
//! the `mmring` CLI see it, frames as raw bytes (no `Queue` header, no
//! pickling), for talking to Rust processes.

use std::path::PathBuf;

use mmring::{AnyConsumer, AnyProducer, AnyRing, Config, Kind};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::frame::RawBuf;
use crate::handles::{err, recv_err, too_large};
use crate::wait::{self, Recv, Sent, Wait, sleep_idle};

fn kind(name: &str) -> PyResult<Kind> {
    match name {
        "spsc" => Ok(Kind::Spsc),
        "mpsc" => Ok(Kind::Mpsc),
        "mpmc" => Ok(Kind::Mpmc),
        k => Err(PyValueError::new_err(format!(
            "unknown ring kind {k:?}: expected 'spsc', 'mpsc' or 'mpmc'"
        ))),
    }
}

/// A ring file (or anonymous ring) of any kind.
#[pyclass(module = "mmring", frozen)]
pub struct Ring {
    ring: AnyRing,
}

#[pymethods]
impl Ring {
    /// Opens the ring file at `path`, whatever its kind.
    #[staticmethod]
    fn open(path: PathBuf) -> PyResult<Ring> {
        Ok(Ring {
            ring: AnyRing::open(path).map_err(err)?,
        })
    }

    /// Creates a ring file at `path` (or an anonymous ring when `path` is
    /// `None`): `kind` 'spsc' or 'mpsc' with `capacity` bytes (and
    /// optionally `max_message`), or 'mpmc' with `slots` slots of
    /// `max_message` bytes.
    #[staticmethod]
    #[pyo3(signature = (path, kind_name, *, capacity=None, slots=None, max_message=None))]
    fn create(
        path: Option<PathBuf>,
        kind_name: &str,
        capacity: Option<u64>,
        slots: Option<u64>,
        max_message: Option<u64>,
    ) -> PyResult<Ring> {
        let k = kind(kind_name)?;
        let cfg = match k {
            Kind::Mpmc => Config::slots(
                slots.ok_or_else(|| PyValueError::new_err("an mpmc ring needs slots="))?,
                max_message
                    .ok_or_else(|| PyValueError::new_err("an mpmc ring needs max_message="))?,
            ),
            _ => {
                let c = Config::new(
                    capacity
                        .ok_or_else(|| PyValueError::new_err("a framed ring needs capacity="))?,
                );
                match max_message {
                    Some(m) => c.max_frame(m),
                    None => c,
                }
            }
        };
        let ring = match path {
            Some(p) => AnyRing::create(p, k, cfg),
            None => AnyRing::anonymous(k, cfg),
        }
        .map_err(err)?;
        Ok(Ring { ring })
    }

    /// Attaches a producer.
    fn producer(&self) -> PyResult<Producer> {
        Ok(Producer {
            p: Some(self.ring.producer().map_err(err)?),
        })
    }

    /// Attaches a consumer.
    fn consumer(&self) -> PyResult<Consumer> {
        Ok(Consumer {
            c: Some(self.ring.consumer().map_err(err)?),
        })
    }

    /// 'spsc', 'mpsc' or 'mpmc'.
    #[getter]
    fn kind(&self) -> String {
        self.ring.kind().to_string()
    }

    /// Largest message in bytes.
    #[getter]
    fn max_message(&self) -> usize {
        self.ring.max_frame()
    }

    /// The ring file's path (`None` for an anonymous ring).
    #[getter]
    fn path(&self) -> Option<PathBuf> {
        self.ring.path().map(|p| p.to_path_buf())
    }

    /// `(head, tail)`: released and committed (framed) or claimed (mpmc)
    /// positions, in bytes (framed) or slots (mpmc).
    fn cursors(&self) -> (u64, u64) {
        let s = self.ring.stat();
        (s.head, s.tail)
    }
}

/// A producer of a [`Ring`]: sends raw frames.
#[pyclass(module = "mmring")]
pub struct Producer {
    p: Option<AnyProducer>,
}

impl Producer {
    fn get(&mut self) -> PyResult<&mut AnyProducer> {
        self.p
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the producer was closed"))
    }
}

#[pymethods]
impl Producer {
    /// Sends one frame, waiting for room (at most `timeout` seconds);
    /// returns whether it was sent.
    #[pyo3(signature = (data, timeout=None))]
    fn send(
        &mut self,
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<bool> {
        let b = RawBuf::get(data, false)?;
        let p = self.get()?;
        if b.len() > p.max_frame() {
            return Err(too_large(b.len(), p.max_frame(), 0));
        }
        let r = wait::reserve(py, p, b.len(), Wait::new(true, timeout)?, |mut g| {
            g.copy_from_slice(b.as_slice());
            g.commit();
            Ok(())
        })?;
        match r {
            Sent::Done(()) => Ok(true),
            Sent::Full => Ok(false),
            Sent::Forked => Err(PyRuntimeError::new_err(
                "producer inherited across fork: attach one in this process",
            )),
        }
    }

    /// Detaches.
    fn close(&mut self) {
        self.p = None;
    }
}

/// A consumer of a [`Ring`]: receives raw frames.
#[pyclass(module = "mmring")]
pub struct Consumer {
    c: Option<AnyConsumer>,
}

#[pymethods]
impl Consumer {
    /// Receives one frame as `bytes`, waiting at most `timeout` seconds
    /// (`None`: for ever); `None` on timeout.
    #[pyo3(signature = (timeout=None))]
    fn recv<'py>(
        &mut self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let c = self
            .c
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the consumer was closed"))?;
        let r = wait::recv(py, c, Wait::new(true, timeout)?, &mut sleep_idle, |g| {
            Ok(PyBytes::new(py, &g))
        })?;
        match r {
            Recv::Got(b) => Ok(Some(b)),
            Recv::Forked => Err(PyRuntimeError::new_err(
                "consumer inherited across fork: attach one in this process",
            )),
            _ => Ok(None),
        }
    }

    /// Every frame waiting now (up to `max_messages`), released together.
    #[pyo3(signature = (max_messages=1024))]
    fn recv_many<'py>(
        &mut self,
        py: Python<'py>,
        max_messages: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let c = self
            .c
            .as_mut()
            .ok_or_else(|| PyRuntimeError::new_err("the consumer was closed"))?;
        let out = PyList::empty(py);
        let mut failed = None;
        match c.try_recv_batch(max_messages, |b| {
            if let Err(e) = out.append(PyBytes::new(py, b)) {
                failed = Some(e);
            }
        }) {
            Ok(_) | Err(mmring::RecvError::Empty) => {}
            Err(e) => return Err(recv_err(e)),
        }
        match failed {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    /// Detaches.
    fn close(&mut self) {
        self.c = None;
    }
}
