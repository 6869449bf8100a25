//! The contract between the generic handle layer (`handle.rs`) and the
//! flavours (`flavour/`): one sealed trait, implemented once per flavour.
//!
//! A flavour implements [`Protocol`](sealed::Protocol): how a producer
//! claims space and publishes it, and how a consumer takes a message and
//! releases it, in two phases each (the shape of crossbeam-channel's
//! `start_send`/`write` and `start_recv`/`read`), plus the per-handle state
//! each side keeps between calls. Blocking, timeouts, copying helpers,
//! batches, grants, roles, liveness and `stat` are written once above it.
//!
//! A new flavour is a module under `flavour/` with a marker type, an
//! `impl Protocol` (its `Mem`, `Tx`, `Rx`, `Claim`, `Taken` and the methods
//! below), `impl Flavour` (and `impl FixedKind` with its `Kind`), its
//! arm in `AnyKind`, and loom models of its protocol functions.

/// A ring flavour: the type parameter of [`Ring`](crate::Ring),
/// [`Producer`](crate::Producer) and [`Consumer`](crate::Consumer).
///
/// Sealed: the flavours are [`spsc::Spsc`](crate::spsc::Spsc),
/// [`mpsc::Mpsc`](crate::mpsc::Mpsc), [`mpmc::Mpmc`](crate::mpmc::Mpmc) and
/// the kind-erased [`AnyKind`](crate::AnyKind). Code generic over
/// flavours names this bound:
///
/// ```
/// use mmring::{Consumer, Flavour, RecvError};
/// fn drain<P: Flavour>(rx: &mut Consumer<P>) -> Result<usize, RecvError> {
///     let mut n = 0;
///     while let Ok(frame) = rx.try_recv() {
///         n += frame.len();
///     }
///     Ok(n)
/// }
/// let ring = mmring::mpmc::Ring::anonymous(mmring::Config::slots(8, 16))?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.send(b"abc")?;
/// assert_eq!(drain(&mut rx)?, 3);
/// # Ok::<(), mmring::Error>(())
/// ```
pub trait Flavour: sealed::Protocol {}

/// A flavour of one fixed kind, which can create rings: every flavour but
/// the kind-erased [`AnyKind`](crate::AnyKind), whose constructors take
/// the kind.
pub trait FixedKind: Flavour {
    /// The kind of ring this flavour creates and opens.
    const KIND: crate::Kind;
}

pub(crate) mod sealed {
    use std::fmt;
    use std::ptr::NonNull;

    use crate::error::{Corruption, Error};
    use crate::layout::{Kind, Role};
    use crate::region::Region;

    /// What a flavour implements once. Every method takes the flavour's raw
    /// view of the mapping (`Mem`) and, on the producer or consumer side,
    /// that handle's private state (`Tx` / `Rx`). None of them blocks, sleeps
    /// or wakes anyone: after `flush` or `release` reports that something
    /// became visible, the handle layer wakes the other side.
    ///
    /// Nothing read from the mapping is trusted: every method that reads a
    /// cursor, stamp or frame word range-checks it and reports a
    /// [`Corruption`] instead of using it.
    pub trait Protocol: Sized + Send + Sync + 'static {
        /// Raw access to the ring's cursors and data area.
        type Mem: Send + Sync + fmt::Debug;
        /// A producer handle's private state (cached cursors, unpublished
        /// progress).
        type Tx: Send + fmt::Debug;
        /// A consumer handle's private state.
        type Rx: Send + fmt::Debug;
        /// Space claimed by a producer: owned by it until published.
        type Claim: Copy + fmt::Debug;
        /// A message taken by a consumer: owned by it until consumed.
        type Taken: Copy + fmt::Debug;

        /// Writes a new ring's initial data-area state (before the header
        /// is published). Most flavours start from zeroes.
        fn init(_region: &Region) {}

        /// The flavour's view of a mapped, validated region, after checking
        /// the cursors of a quiescent ring.
        fn mem(region: &Region) -> Result<Self::Mem, Error>;

        /// The ring's kind.
        fn kind(mem: &Self::Mem) -> Kind;

        /// Whether `role` is held by one handle at a time.
        fn exclusive(mem: &Self::Mem, role: Role) -> bool;

        /// `(head, tail)` in the flavour's units (bytes or slots), for
        /// monitoring.
        fn cursors(mem: &Self::Mem) -> (u64, u64);

        /// Largest payload.
        fn max_frame(mem: &Self::Mem) -> u64;

        /// The state of a producer that has just claimed its role and
        /// attachment record `rec` (where it records its claims).
        fn producer(mem: &Self::Mem, rec: u64) -> Result<Self::Tx, Corruption>;

        /// Claims room for `len <= max_frame` payload bytes without
        /// waiting. `Ok(None)`: no room now. Re-reads the consumers' cursor
        /// (Acquire) before saying so: the re-check (S4) of the wake-up
        /// handshake in `wait.rs`. When held up by a dead party's claim (a
        /// consumer that died holding a slot), completes it first, at most
        /// once per `ring::RECOVERY_GRACE`.
        fn try_claim(
            mem: &Self::Mem,
            tx: &mut Self::Tx,
            len: u64,
        ) -> Result<Option<Self::Claim>, Corruption>;

        /// Start of a claim's reserved payload bytes (8-byte aligned).
        ///
        /// # Safety
        ///
        /// `claim` came from [`try_claim`](Protocol::try_claim) on this
        /// `mem` with length `len` and has not been published.
        unsafe fn claim_payload(mem: &Self::Mem, claim: &Self::Claim) -> NonNull<u8>;

        /// Ends a claim: `Some(n)` commits its first `n` bytes (`n` no more
        /// than claimed), `None` gives it back. The frame may stay invisible
        /// to consumers until [`flush`](Protocol::flush).
        fn publish(mem: &Self::Mem, tx: &mut Self::Tx, claim: Self::Claim, committed: Option<u64>);

        /// Makes everything published so far visible; `true` if anything
        /// became visible since the last flush (then consumers are woken).
        fn flush(mem: &Self::Mem, tx: &mut Self::Tx) -> bool;

        /// Whether not even an empty message fits now (a snapshot).
        fn is_full(mem: &Self::Mem, tx: &Self::Tx) -> bool;

        /// Claimed or committed and not yet released by the consumers, in
        /// the flavour's units (an upper bound).
        fn unreleased(mem: &Self::Mem, tx: &Self::Tx) -> u64;

        /// The state of a consumer that has just claimed its role and
        /// attachment record `rec`. Finishes what a dead consumer left half
        /// done before it.
        fn consumer(mem: &Self::Mem, rec: u64) -> Result<Self::Rx, Corruption>;

        /// Whether attachment record `i`, whose holder is dead (we hold its
        /// lock now), may be reused: it records no claim that a live party
        /// still has to complete. Clears a completed one.
        fn reusable(mem: &Self::Mem, i: u64) -> bool;

        /// Whether the claim recorded in record `i` (if any) is settled:
        /// published, released, completed by a recovery, or passed by the
        /// consumers (a claim recorded by a producer that died before its
        /// CAS). Reads only; for `stat`.
        fn claim_settled(mem: &Self::Mem, i: u64) -> bool;

        /// Takes the next message without waiting. `Ok(None)`: none now.
        /// Re-reads the producers' cursor or stamp (Acquire) before saying
        /// so (S4 of the handshake). May hand back space it skipped; the
        /// caller then calls [`release`](Protocol::release). When held up
        /// by a dead producer's claim, completes it first, at most once per
        /// `ring::RECOVERY_GRACE`.
        fn try_take(mem: &Self::Mem, rx: &mut Self::Rx) -> Result<Option<Self::Taken>, Corruption>;

        /// The payload of a taken message and its length.
        ///
        /// # Safety
        ///
        /// `taken` came from [`try_take`](Protocol::try_take) on this `mem`
        /// and has not been consumed.
        unsafe fn taken_payload(mem: &Self::Mem, taken: &Self::Taken) -> (NonNull<u8>, usize);

        /// Marks a taken message as read. Its space may stay unreleased
        /// until [`release`](Protocol::release).
        fn consume(mem: &Self::Mem, rx: &mut Self::Rx, taken: Self::Taken);

        /// Whether this ring's consumer can take several messages before it
        /// consumes any, and put the ones it did not finish back
        /// ([`put_back`](Protocol::put_back)). Framed rings can (their
        /// consumer's read position is private until released); an mpmc
        /// consumer holds one slot at a time and cannot.
        fn can_put_back(_mem: &Self::Mem) -> bool {
            false
        }

        /// Makes `taken` (consumed, not yet released) and everything taken
        /// after it the next messages [`try_take`](Protocol::try_take)
        /// returns. Called only when [`can_put_back`](Protocol::can_put_back)
        /// says so, before any `release` since `taken` was taken.
        fn put_back(_mem: &Self::Mem, _rx: &mut Self::Rx, _taken: Self::Taken, _count: u64) {
            unreachable!("put_back on a flavour that cannot put back")
        }

        /// A taken message's position in the ring's stream: framed rings
        /// give the byte position of its frame word, mpmc its slot
        /// sequence number. Unique for the life of the ring (positions only
        /// grow), and the same for whichever consumer takes the message.
        fn position(taken: &Self::Taken) -> u64;

        /// Whether this ring's consumer can read ahead: consume several
        /// messages and release them later, up to a position
        /// ([`hold`](Protocol::hold), [`release_to`](Protocol::release_to)).
        /// Framed rings can (their read position is private until
        /// released); an mpmc consumer holds one slot at a time.
        fn can_read_ahead(_mem: &Self::Mem) -> bool {
            false
        }

        /// Read-ahead: from now on [`release`](Protocol::release) hands
        /// back nothing past what `release_to` allowed. Called only when
        /// [`can_read_ahead`](Protocol::can_read_ahead).
        fn hold(_rx: &mut Self::Rx) {
            unreachable!("hold on a flavour that cannot read ahead")
        }

        /// The position just past a taken message (what `release_to`
        /// takes to release it and everything before it).
        fn end(taken: &Self::Taken) -> u64;

        /// Read-ahead: hands back every consumed message that ends at or
        /// before `end` (clamped to what was consumed); stops holding once
        /// everything consumed is handed back. `true` if anything was
        /// handed back (then producers are woken).
        fn release_to(_mem: &Self::Mem, _rx: &mut Self::Rx, _end: u64) -> bool {
            unreachable!("release_to on a flavour that cannot read ahead")
        }

        /// Hands every consumed (or skipped) message's space back to the
        /// producers; `true` if anything was handed back since the last
        /// call (then producers are woken).
        fn release(mem: &Self::Mem, rx: &mut Self::Rx) -> bool;

        /// As [`release`](Protocol::release), also under lazy release
        /// ([`set_lazy`](Protocol::set_lazy)): called before the consumer
        /// reports the ring empty, sleeps, or detaches.
        fn release_all(mem: &Self::Mem, rx: &mut Self::Rx) -> bool {
            Self::release(mem, rx)
        }

        /// Lazy release: `release` hands space back only every `frames`
        /// messages (or a quarter of the ring); `false` where the flavour
        /// releases each message as it goes (mpmc: each slot is its own).
        fn set_lazy(_mem: &Self::Mem, _rx: &mut Self::Rx, _frames: u32) -> bool {
            false
        }

        /// Completes, without the grace period, a dead party's claim that
        /// holds this consumer: for when every producer is known gone, so
        /// that `Disconnected` is never returned while committed messages
        /// wait behind a dead claim. `Ok(true)` when the ring moved.
        fn recover_now(mem: &Self::Mem, rx: &mut Self::Rx) -> Result<bool, Corruption>;

        /// Whether no message is waiting now (a snapshot; never pulls a
        /// cache line the cached state already answers for).
        fn is_empty(mem: &Self::Mem, rx: &Self::Rx) -> bool;

        /// Committed or claimed and not yet taken by this consumer, in the
        /// flavour's units.
        fn waiting(mem: &Self::Mem, rx: &Self::Rx) -> u64;
    }
}
