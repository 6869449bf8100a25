//! Many producers, many consumers, fixed-size slots: work sharing across
//! processes, every message delivered to exactly one consumer.
//!
//! The algorithm is Dmitry Vyukov's bounded MPMC queue (as in crossbeam's
//! `ArrayQueue`): each slot carries a sequence stamp. For position `p` (a
//! free-running slot count) in slot `p % n`:
//!
//! | stamp       | meaning                                                   |
//! |-------------|-----------------------------------------------------------|
//! | `p - n`     | the producer of position `p - n` is still writing         |
//! | `p - n + 1` | position `p - n` is published or still being read         |
//! | `p`         | free: the producer that claims `p` may write it           |
//! | `p + 1`     | full: the consumer that claims `p` may read it            |
//! | `p + n`     | released: free for position `p + n`                       |
//!
//! A producer at `p` sees the first two as "full", a consumer at `p` sees
//! `p - n + 1` and `p` as "empty"; later stamps mean another party took
//! `p` already and the cursor has moved on.
//!
//! Producers claim a position with a CAS on `tail`, consumers with a CAS on
//! `head`; the stamp store publishes (producer) or releases (consumer) the
//! slot. A stalled producer or consumer holds up only its own slot; the
//! cursors of everyone else move on. An aborted reservation is published
//! with an "aborted" flag, and consumers skip it.
//!
//! Every stamp is checked against the positions that could legally produce
//! it; anything else is reported as [`Corruption::Stamp`] instead of being
//! waited on forever. The protocol itself lives in `slots.rs`, generic over
//! where the slots are, so that loom checks the same functions.
//!
//! ## Claims by compare-and-swap, not `fetch_add`
//!
//! Queues that claim positions with `fetch_add` (Morrison and Afek's LCRQ,
//! Nikolaev's SCQ) take a position unconditionally, from a full or an
//! empty ring alike, so they must be able to abandon one: a consumer that
//! overtakes the producers marks its slot unusable, the producer that later
//! draws that position draws again, and a threshold stops consumers from
//! running the cursor ahead for ever. mmring claims with a CAS that takes
//! only a position whose stamp says it is ready, for three reasons:
//!
//! * **`try_send` and `try_recv` must not take a position they cannot
//!   use.** They report `Full` and `Empty` instead. A `fetch_add` on a full
//!   ring takes a position whose slot still holds an unconsumed message of
//!   the previous lap; the call can neither wait for it (it is a `try_`
//!   call, or its deadline has passed) nor give it back (other parties
//!   have claimed past it).
//! * **Recovery reads the claim from the attachment record, stored before
//!   the CAS that takes the position.** A party killed between the two
//!   leaves a record of a position it never took, which is harmless; it
//!   never leaves a position taken with no record of it. `fetch_add`
//!   tells its caller the position only after taking it, so a kill between
//!   the two would leave a slot that no record claims, and the live
//!   parties could not tell it from a slot whose claimant is alive and
//!   about to record it. That would need another recovery design.
//! * **There is nothing to win on the machines measured.** An instrumented
//!   build counted the failed claim CASes in `mmring bench --case ring`
//!   (2 000 000 messages of 64 B, 256 KiB ring, spinning and blocking).
//!   With the harness's placement (producers on one CPU, consumers on the
//!   other) none of the 2 000 000 claims on either side failed, in mpmc
//!   2P × 2C and in mpsc 2P × 1C. Unpinned, 0.1–1.0% of the consumers'
//!   claims failed once in mpmc 2P × 2C, and 1.6–2.4% of the producers'
//!   claims in mpsc 2P × 1C. A CAS that succeeds costs what a `fetch_add`
//!   costs (`lock cmpxchg` and `lock xadd` alike wait for the cursor's
//!   cache line and drain the store buffer), and that wait is where a
//!   claim's samples fall.
//!
//! ```
//! use mmring::{Config, mpmc};
//! # fn main() -> Result<(), mmring::Error> {
//! let ring = mpmc::Ring::anonymous(Config::slots(64, 16))?;
//! let mut tx = ring.producer()?;
//! let mut rx1 = ring.consumer()?;
//! let mut rx2 = ring.consumer()?;
//! tx.send(b"job 1")?;
//! tx.send(b"job 2")?;
//! assert_eq!(&*rx1.try_recv()?, b"job 1"); // each job goes to one consumer
//! assert_eq!(&*rx2.try_recv()?, b"job 2");
//! # Ok(()) }
//! ```

use std::cell::Cell;
use std::ptr::NonNull;
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::error::{Corruption, Error};
use crate::layout::{Kind, Role};
use crate::protocol::sealed::Protocol;
use crate::protocol::{FixedKind, Flavour};
use crate::region::Region;
use crate::ring::Blocks;
use crate::slots::SlotMem;
use crate::slots::{self, SlotRing};

/// The mpmc flavour: the type parameter of [`Ring`], [`Producer`] and
/// [`Consumer`] below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpmc {}

/// A many-producer many-consumer ring of fixed-size slots in shared
/// memory, sized with [`Config::slots`](crate::Config::slots). Any number
/// of producers and consumers (up to 128 handles in all) in any processes.
pub type Ring = crate::Ring<Mpmc>;
/// One writer of an mpmc [`Ring`].
pub type Producer = crate::Producer<Mpmc>;
/// One reader of an mpmc [`Ring`].
pub type Consumer = crate::Consumer<Mpmc>;
/// A slot claimed by an mpmc [`Producer`]. Dropping it uncommitted (or
/// [`abort`](crate::WriteGrant::abort)) publishes the slot as aborted,
/// which consumers skip.
pub type WriteGrant<'a> = crate::WriteGrant<'a, Mpmc>;
/// A message taken by an mpmc [`Consumer`]; dropping it releases the slot.
pub type ReadGrant<'a> = crate::ReadGrant<'a, Mpmc>;

impl Flavour for Mpmc {}

impl FixedKind for Mpmc {
    const KIND: Kind = Kind::Mpmc;
}

impl crate::Ring<Mpmc> {
    /// Number of slots.
    pub fn slot_count(&self) -> u64 {
        self.mem().count()
    }
}

impl crate::Consumer<Mpmc> {
    /// Messages claimed by producers and not yet taken by any consumer (a
    /// snapshot; it counts slots still being written, and aborted ones).
    pub fn len(&self) -> usize {
        let (head, tail) = self.mem().cursors();
        tail.saturating_sub(head) as usize
    }
}

pub(crate) use state::{Rx, Slot, Tx};

/// The protocol's per-handle types: public to the sealed trait, unreachable
/// from outside the crate.
mod state {
    /// A claimed or taken slot: its position and message length.
    #[derive(Debug, Clone, Copy)]
    pub struct Slot {
        pub pos: u64,
        pub len: u64,
    }

    /// A producer's private state.
    #[derive(Debug)]
    pub struct Tx {
        /// Our attachment record, where claims are recorded.
        pub rec: u64,
        /// A slot was published since the last wake-up.
        pub unflushed: bool,
        /// Since when we are held at `tail` by a full ring.
        pub held: crate::ring::Held,
    }

    /// A consumer's private state.
    #[derive(Debug)]
    pub struct Rx {
        /// Our attachment record, where claims are recorded.
        pub rec: u64,
        /// A slot was released since the last wake-up.
        pub unreleased: bool,
        /// Since when we are held at `head` by an unpublished slot.
        pub held: crate::ring::Held,
    }
}

impl Protocol for Mpmc {
    type Mem = SlotRing;
    type Tx = Tx;
    type Rx = Rx;
    type Claim = Slot;
    type Taken = Slot;

    /// Slot `i` starts with stamp `i`: free for the producer of position `i`.
    fn init(region: &Region) {
        // SAFETY: the region maps `capacity = slot_count * stride` bytes at
        // DATA_OFFSET; the SlotRing lives only for this call.
        let ring = unsafe { SlotRing::new(Blocks::of(region), region.data(), region.geometry()) };
        for i in 0..ring.count() {
            // ORDERING: Relaxed; the file is not visible to anyone yet, and
            // the Release store of `init` publishes the stamps with the
            // header.
            ring.stamp(i).store(i, Relaxed);
        }
    }

    fn mem(region: &Region) -> Result<SlotRing, Error> {
        // SAFETY: the region maps the header and `capacity` = slot_count *
        // stride bytes at DATA_OFFSET; the owner keeps the region beside
        // the SlotRing.
        let ring = unsafe { SlotRing::new(Blocks::of(region), region.data(), region.geometry()) };
        ring.check_quiescent_cursors()?;
        Ok(ring)
    }

    fn kind(_: &SlotRing) -> Kind {
        Kind::Mpmc
    }

    fn exclusive(_: &SlotRing, _: Role) -> bool {
        false
    }

    fn cursors(m: &SlotRing) -> (u64, u64) {
        m.cursors()
    }

    fn max_frame(m: &SlotRing) -> u64 {
        m.slot_size()
    }

    fn producer(_: &SlotRing, rec: u64) -> Result<Tx, Corruption> {
        Ok(Tx {
            rec,
            unflushed: false,
            held: Default::default(),
        })
    }

    #[inline(always)]
    fn try_claim(m: &SlotRing, tx: &mut Tx, len: u64) -> Result<Option<Slot>, Corruption> {
        if let Some(pos) = slots::claim_produce(m, tx.rec)? {
            return Ok(Some(Slot { pos, len }));
        }
        // Full. Held by a dead consumer's slot? Ask at most once per grace
        // period while held at the same position.
        // ORDERING: Relaxed; only a position to check, `recover_dead_consumer`
        // synchronises on the stamp.
        let tail = m.tail().load(Relaxed);
        if tx.held.due(tail) && slots::recover_dead_consumer(m, tail)? {
            return Ok(slots::claim_produce(m, tx.rec)?.map(|pos| Slot { pos, len }));
        }
        Ok(None)
    }

    #[inline(always)]
    unsafe fn claim_payload(m: &SlotRing, s: &Slot) -> NonNull<u8> {
        // SAFETY: `len <= slot_size` (checked before claiming) and we hold
        // the claimed slot until publishing it.
        unsafe { m.payload(s.pos, s.len) }
    }

    #[inline(always)]
    fn publish(m: &SlotRing, tx: &mut Tx, s: Slot, committed: Option<u64>) {
        slots::publish(m, s.pos, committed, tx.rec);
        tx.unflushed = true;
    }

    #[inline(always)]
    fn flush(_: &SlotRing, tx: &mut Tx) -> bool {
        std::mem::take(&mut tx.unflushed)
    }

    fn is_full(m: &SlotRing, _: &Tx) -> bool {
        let (head, tail) = m.cursors();
        tail.saturating_sub(head) >= m.count()
    }

    fn unreleased(m: &SlotRing, _: &Tx) -> u64 {
        let (head, tail) = m.cursors();
        tail.saturating_sub(head)
    }

    fn consumer(_: &SlotRing, rec: u64) -> Result<Rx, Corruption> {
        Ok(Rx {
            rec,
            unreleased: false,
            held: Default::default(),
        })
    }

    /// A dead party's record is reusable once its claim is settled: a
    /// producer's slot published (or recovered), a consumer's released.
    fn reusable(m: &SlotRing, i: u64) -> bool {
        // ORDERING(claim-record): Acquire, as in `slots::dead_claim`.
        let c = m.claim(i).load(Acquire);
        let settled = Mpmc::claim_settled(m, i);
        if settled && c != 0 {
            crate::ring::clear_claim(m.claim(i), c);
        }
        settled
    }

    /// A producer's claim is settled once its slot's stamp moved past the
    /// claimed position (published, or recovered and released); a
    /// consumer's once the slot is released (or was never taken by it).
    fn claim_settled(m: &SlotRing, i: u64) -> bool {
        // ORDERING(claim-record): Acquire, as in `slots::dead_claim`.
        let c = m.claim(i).load(Acquire);
        if c == 0 {
            return true;
        }
        let pos = c - 1;
        // ORDERING(stamp): Acquire, as in `slots::claim_consume`.
        let stamp = m.stamp(pos).load(Acquire);
        match m.role(i) {
            1 => stamp != pos,
            _ => stamp != pos + 1,
        }
    }

    #[inline(always)]
    fn try_take(m: &SlotRing, rx: &mut Rx) -> Result<Option<Slot>, Corruption> {
        let skipped = Cell::new(false);
        let r = slots::claim_consume(m, rx.rec, || skipped.set(true));
        rx.unreleased |= skipped.get();
        if let Some((pos, len)) = r? {
            return Ok(Some(Slot { pos, len }));
        }
        // Empty. Held by a dead producer's claim (`tail` past `head`)? Ask
        // at most once per grace period while held at the same position.
        let (head, tail) = m.cursors();
        if tail > head && rx.held.due(head) && slots::recover_dead_producer(m, rx.rec, head)? {
            rx.unreleased = true;
            let r = slots::claim_consume(m, rx.rec, || skipped.set(true));
            rx.unreleased |= skipped.get();
            return Ok(r?.map(|(pos, len)| Slot { pos, len }));
        }
        Ok(None)
    }

    #[inline(always)]
    unsafe fn taken_payload(m: &SlotRing, s: &Slot) -> (NonNull<u8>, usize) {
        // SAFETY: `claim_consume` checked `len <= slot_size`; we hold the
        // slot until it is consumed (the caller's contract).
        (unsafe { m.payload(s.pos, s.len) }, s.len as usize)
    }

    #[inline(always)]
    fn consume(m: &SlotRing, rx: &mut Rx, s: Slot) {
        slots::release(m, s.pos, rx.rec);
        rx.unreleased = true;
    }

    #[inline(always)]
    fn release(_: &SlotRing, rx: &mut Rx) -> bool {
        std::mem::take(&mut rx.unreleased)
    }

    fn position(s: &Slot) -> u64 {
        s.pos
    }

    fn end(s: &Slot) -> u64 {
        s.pos + 1
    }

    fn recover_now(m: &SlotRing, rx: &mut Rx) -> Result<bool, Corruption> {
        let (head, tail) = m.cursors();
        if tail <= head {
            return Ok(false);
        }
        let moved = slots::recover_dead_producer(m, rx.rec, head)?;
        rx.unreleased |= moved;
        Ok(moved)
    }

    /// No published message at `head` or after it: aborted slots (which
    /// `try_recv` skips) do not count.
    fn is_empty(m: &SlotRing, _: &Rx) -> bool {
        // ORDERING: Relaxed; a snapshot, nothing is read on its basis.
        let head = m.head().load(Relaxed);
        for pos in head..head.saturating_add(m.count()) {
            // ORDERING(stamp): Acquire, as in `slots::claim_consume`; it
            // makes the flags below visible.
            if m.stamp(pos).load(Acquire) != pos.wrapping_add(1) {
                return true;
            }
            // ORDERING: Relaxed; published by the stamp.
            if m.flags(pos).load(Relaxed) != crate::layout::SLOT_ABORTED {
                return false;
            }
        }
        true
    }

    fn waiting(m: &SlotRing, _: &Rx) -> u64 {
        let (head, tail) = m.cursors();
        tail.saturating_sub(head)
    }
}
