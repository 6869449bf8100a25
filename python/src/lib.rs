//! `mmring._mmring`: the native half of the Python binding.
//!
//! Everything here wraps the Rust library's kind-erased handles
//! ([`AnyRing`], [`AnyProducer`], [`AnyConsumer`] and their grants); no ring
//! logic is repeated. What lives here is Python's side of things: turning
//! objects into frames (a tag, then pickle protocol 5 or the raw bytes),
//! the `multiprocessing` interfaces (`Queue`, `Connection`), waiting with
//! the GIL released in slices so that Ctrl-C is seen, and buffer-protocol
//! views of grants.

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::unnecessary_safety_comment,
    clippy::multiple_unsafe_ops_per_block
)]

mod frame;
mod handles;
mod pipe;
mod queue;
mod raw;
mod views;
mod wait;

use pyo3::prelude::*;

/// The extension module.
#[pymodule]
fn _mmring(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<queue::Queue>()?;
    m.add_class::<pipe::Connection>()?;
    m.add_class::<views::ReadView>()?;
    m.add_class::<views::WriteView>()?;
    m.add_class::<raw::Ring>()?;
    m.add_class::<raw::Producer>()?;
    m.add_class::<raw::Consumer>()?;
    m.add_function(wrap_pyfunction!(pipe::pipe, m)?)?;
    m.add("HEADER_LEN", frame::HEADER_LEN)?;
    m.add("DEFAULT_MAX_MESSAGE", queue::DEFAULT_MAX_MESSAGE)?;
    m.add("DEFAULT_SLOTS", queue::DEFAULT_SLOTS)?;
    m.add("DEFAULT_PIPE_CAPACITY", pipe::DEFAULT_PIPE_CAPACITY)?;
    Ok(())
}
