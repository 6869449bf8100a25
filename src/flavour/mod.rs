//! The flavours, one module each: its protocol (the `Protocol` impl and
//! the functions it runs, shared with its loom models), its docs, and the
//! aliases of the generic handles (`spsc::Ring` is `Ring<spsc::Spsc>`).
//!
//! | flavour            | producers | consumers | memory                                 |
//! |--------------------|-----------|-----------|----------------------------------------|
//! | [`spsc`](crate::spsc) | one    | one       | variable-length frames (Lamport)       |
//! | [`mpsc`](crate::mpsc) | many   | one       | variable-length frames (Aeron-style)   |
//! | [`mpmc`](crate::mpmc) | many   | many      | fixed-size slots (Vyukov)              |
//! | [`broadcast`](crate::broadcast) | one publisher | any number, each sees every frame | variable-length frames, overwritten when full (seqlock-validated copies) |
//! | [`any`](crate::AnyRing) | as the file's kind | | whatever the file holds        |

pub mod any;
pub mod broadcast;
pub mod mpmc;
pub mod mpsc;
pub mod spsc;
