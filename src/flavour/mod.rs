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

/// The consumer-side methods of `Protocol` that the two framed flavours
/// (spsc and mpsc) share word for word: both read through a `ReadCursor`
/// over a `RawRing`, so releasing, lazy release, put-back and read-ahead
/// are the cursor's own. Expanded inside each flavour's `impl Protocol`.
macro_rules! framed_consumer {
    () => {
        fn release_all(m: &RawRing, rx: &mut ReadCursor) -> bool {
            rx.flush(m)
        }

        fn set_lazy(m: &RawRing, rx: &mut ReadCursor, frames: u32) -> bool {
            rx.set_lazy(m, frames);
            true
        }

        fn can_put_back(_: &RawRing) -> bool {
            true
        }

        fn put_back(_: &RawRing, rx: &mut ReadCursor, f: Located, count: u64) {
            rx.put_back(&f, count);
        }

        fn position(f: &Located) -> u64 {
            f.at
        }

        fn can_read_ahead(_: &RawRing) -> bool {
            true
        }

        fn hold(rx: &mut ReadCursor) {
            rx.hold();
        }

        fn end(f: &Located) -> u64 {
            f.next
        }

        fn release_to(m: &RawRing, rx: &mut ReadCursor, end: u64) -> bool {
            rx.release_to(m, end)
        }
    };
}

pub mod any;
pub mod broadcast;
pub mod mpmc;
pub mod mpsc;
pub mod spsc;
