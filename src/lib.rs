//! Lock-free inter-process ring buffers over shared memory.
//!
//! mmring moves frames between processes on one machine at memory speed:
//! a producer writes a frame straight into a shared mapping, a consumer
//! reads it in place, and neither copies through the kernel, takes a lock,
//! or sleeps on a timer. Blocking calls sleep on a futex and are woken by
//! the other side; a dead peer is noticed instead of waited on forever.
//!
//! ```
//! use mmring::{Config, spsc};
//! # fn main() -> Result<(), mmring::Error> {
//! let ring = spsc::Ring::anonymous(Config::new(1 << 16))?;
//! let mut tx = ring.producer()?;
//! let mut rx = ring.consumer()?;
//!
//! let writer = std::thread::spawn(move || -> Result<(), mmring::SendError> {
//!     for i in 0..100u64 {
//!         let mut g = tx.reserve(8)?;          // zero-copy: write in place
//!         g.copy_from_slice(&i.to_le_bytes());
//!         g.commit();
//!     }
//!     Ok(())
//! });
//! for i in 0..100u64 {
//!     let frame = rx.recv()?;                  // zero-copy: read in place
//!     assert_eq!(frame.as_pod::<u64>(), Ok(&i));
//! }                                            // dropping a frame releases it
//! writer.join().unwrap()?;
//! # Ok(()) }
//! ```
//!
//! # Flavours
//!
//! * [`spsc`]: one producer, one consumer, variable-length frames;
//!   wait-free.
//! * [`mpsc`]: many producers, one consumer, variable-length frames;
//!   producers claim space with a CAS and publish by their frame word.
//! * [`mpmc`]: many producers, many consumers, fixed-size slots with
//!   sequence stamps (Vyukov's bounded queue).
//! * [`broadcast`]: one publisher, any number of subscribers, each of
//!   which receives every frame or learns exactly how many it missed
//!   (`Lagged`); the publisher never waits.
//! * [`AnyRing`]: a ring whose kind is learnt from its file
//!   ([`kind_of`]), for tools that take any ring.
//!
//! Every flavour has the same handles, generic over the flavour:
//! [`Ring<P>`](Ring), [`Producer<P>`](Producer),
//! [`Consumer<P>`](Consumer), [`WriteGrant`], [`ReadGrant`] and
//! [`WriteBatch`]; each flavour's module names them with aliases
//! (`spsc::Ring` is `Ring<spsc::Spsc>`).
//!
//! # Memory
//!
//! A ring is a header (magic, version, geometry, cursors, futex words, role
//! records; see `docs/FORMAT.md`) followed by a power-of-two data area. It
//! lives in a named file (any path; `/dev/shm/...` keeps it in RAM) or in an
//! anonymous memfd shared across `fork` or passed as an fd.
//!
//! # Trust
//!
//! Peers are expected to be cooperating processes, but nothing read from
//! the mapping is trusted for memory safety: every cursor and frame length
//! is range-checked, and an inconsistency is reported as
//! [`Corruption`], never a panic or an out-of-bounds access. A named ring's
//! file truncated under its mapping is survived (the mapping is replaced
//! with zero pages and reported as [`Corruption::Truncated`]; see
//! [`poisoned_mappings`]), and a file another user could have planted, or
//! a symbolic link at the path, is refused unless [`Trust`] opts in.
//!
//! # Platform
//!
//! Linux (futex, memfd, open-file-description locks).

#![deny(unsafe_op_in_unsafe_fn, missing_docs, missing_debug_implementations)]
#![warn(
    clippy::undocumented_unsafe_blocks,
    clippy::unnecessary_safety_comment,
    clippy::multiple_unsafe_ops_per_block
)]

#[cfg(not(target_os = "linux"))]
compile_error!("mmring currently supports Linux only (futex, memfd and OFD locks)");

mod barrier;
mod config;
mod error;
#[cfg(feature = "tokio")]
mod event;
mod fault;
mod flavour;
mod handle;
mod layout;
mod notify;
mod protocol;
mod region;
mod ring;
mod roles;
mod shared;
mod slots;
mod testing;
mod wait;
mod words;

pub use config::{Config, Trust};
pub use error::{Corruption, Error, KindName, RecvError, SendError};
pub use fault::poisoned_mappings;
pub use flavour::any::{
    AnyConsumer, AnyKind, AnyProducer, AnyReadGrant, AnyRing, AnyWriteGrant, kind_of, kind_of_with,
};
pub use flavour::{broadcast, mpmc, mpsc, spsc};
pub use handle::{
    AheadGrant, Consumer, Frame, Iter, Producer, ReadGrant, ReleaseMark, Ring, TryIter, WriteBatch,
    WriteGrant,
};
pub use layout::{Kind, Role};
pub use protocol::{FixedKind, Flavour};
pub use shared::{ClaimStat, Holder, PeerState, RoleStat, Stat};
pub use wait::WaitStrategy;

// The README's examples are compiled and run as doc-tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
