//! The slot-stamp protocol of [`mpmc`](crate::mpmc) (Dmitry Vyukov's
//! bounded MPMC queue), written once over [`SlotMem`]: the ring runs it on
//! atomics inside the shared mapping, and the loom model below runs the
//! very same functions on loom atomics in heap memory.
//!
//! See the `mpmc` module docs for the stamp table.

use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

pub(crate) use crate::words::{Word32, Word64};

use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

use crate::config::Geometry;
use crate::error::Corruption;
use crate::layout::{self, SlotHeader};
use crate::ring::{Blocks, check_range};

/// Where a slot ring's cursors and slot headers live.
pub trait SlotMem {
    type W64: Word64;
    type W32: Word32;
    /// The consumers' cursor.
    fn head(&self) -> &Self::W64;
    /// The producers' cursor.
    fn tail(&self) -> &Self::W64;
    /// The stamp of the slot of position `pos`.
    fn stamp(&self, pos: u64) -> &Self::W64;
    /// The length field of the slot of `pos`.
    fn len(&self, pos: u64) -> &Self::W32;
    /// The flags field of the slot of `pos`.
    fn flags(&self, pos: u64) -> &Self::W32;
    /// Number of slots (a power of two).
    fn count(&self) -> u64;
    /// Largest message.
    fn slot_size(&self) -> u64;
    /// Number of attachment records.
    fn records(&self) -> u64;
    /// The in-flight claim of record `i`: `position + 1`, or 0.
    fn claim(&self, i: u64) -> &Self::W64;
    /// The role code of record `i` (1 producer, 2 consumer).
    fn role(&self, i: u64) -> u32;
    /// Whether a live handle holds record `i` (the OS lock table).
    fn is_alive(&self, i: u64) -> bool;
    /// Counts one completed recovery.
    fn count_recovery(&self);
}

/// Raw access to a slot ring's cursors and slots.
#[derive(Debug, Clone, Copy)]
pub struct SlotRing {
    blocks: Blocks,
    data: NonNull<u8>,
    count: u64,
    stride: u64,
    slot_size: u64,
}

// SAFETY: pointers into memory shared with other processes anyway, only
// dereferenced through atomics or through slots the protocol assigns to one
// party at a time.
unsafe impl Send for SlotRing {}
// SAFETY: as above.
unsafe impl Sync for SlotRing {}

impl SlotRing {
    /// # Safety
    ///
    /// `data` points to `geo.capacity` live, 8-byte aligned bytes; it and
    /// `blocks` stay valid as long as this value is used.
    pub unsafe fn new(blocks: Blocks, data: NonNull<u8>, geo: Geometry) -> SlotRing {
        debug_assert!(geo.slot_count.is_power_of_two());
        SlotRing {
            blocks,
            data,
            count: geo.slot_count,
            stride: layout::slot_stride(geo.max_frame),
            slot_size: geo.max_frame,
        }
    }

    /// The slot header for position `pos`: the single choke point of slot
    /// address arithmetic.
    fn slot(&self, pos: u64) -> &SlotHeader {
        let index = pos & (self.count - 1);
        debug_assert!((index + 1) * self.stride <= self.count * self.stride);
        // SAFETY: `index < count`, so the slot's `stride` bytes lie inside
        // the data area of `count * stride` bytes.
        let p = unsafe { self.data.add((index * self.stride) as usize) };
        // SAFETY: 8-byte aligned (8 | stride, page-aligned data area), live
        // for `&self`, all atomics, which tolerate other processes.
        unsafe { p.cast::<SlotHeader>().as_ref() }
    }

    /// The payload of the slot for `pos`, `len` bytes.
    ///
    /// # Safety
    ///
    /// `len <= slot_size`, and the caller holds the slot (claimed it and has
    /// not yet published or released it).
    pub unsafe fn payload(&self, pos: u64, len: u64) -> NonNull<u8> {
        debug_assert!(len <= self.slot_size);
        let slot = NonNull::from(self.slot(pos)).cast::<u8>();
        // SAFETY: SLOT_HEADER + len <= stride, so the range is in the slot.
        unsafe { slot.add(layout::SLOT_HEADER as usize) }
    }

    pub fn cursors(&self) -> (u64, u64) {
        self.blocks.cursors()
    }

    fn check_cursors(&self, head: u64, tail: u64) -> Result<(), Corruption> {
        check_range(head)?;
        check_range(tail)?;
        if head > tail || tail - head > self.count {
            return Err(Corruption::Cursors {
                head,
                tail,
                capacity: self.count,
            });
        }
        Ok(())
    }

    /// As `RawRing::check_quiescent_cursors`, in slots.
    pub fn check_quiescent_cursors(&self) -> Result<(), Corruption> {
        let head = self.blocks.consumer();
        let (h, tail) = self.cursors();
        // ORDERING: Acquire, as in `Blocks::cursors`; ordered after the
        // tail load.
        if h == head.head.load(Acquire) {
            self.check_cursors(h, tail)?;
        }
        Ok(())
    }
}

impl SlotMem for SlotRing {
    type W64 = AtomicU64;
    type W32 = AtomicU32;
    fn head(&self) -> &AtomicU64 {
        &self.blocks.consumer().head
    }
    fn tail(&self) -> &AtomicU64 {
        &self.blocks.producer().tail
    }
    fn stamp(&self, pos: u64) -> &AtomicU64 {
        &self.slot(pos).stamp
    }
    fn len(&self, pos: u64) -> &AtomicU32 {
        &self.slot(pos).len
    }
    fn flags(&self, pos: u64) -> &AtomicU32 {
        &self.slot(pos).flags
    }
    fn count(&self) -> u64 {
        self.count
    }
    fn slot_size(&self) -> u64 {
        self.slot_size
    }
    fn records(&self) -> u64 {
        layout::ATTACH_SLOTS
    }
    fn claim(&self, i: u64) -> &AtomicU64 {
        &self.blocks.record(i).claim
    }
    fn role(&self, i: u64) -> u32 {
        // ORDERING: Relaxed; written once at attach, before the holder's
        // first claim (which our Acquire claim load orders after it).
        self.blocks.record(i).role.load(Relaxed)
    }
    fn is_alive(&self, i: u64) -> bool {
        self.blocks.is_alive(i)
    }
    fn count_recovery(&self) {
        self.blocks.count_recovery();
    }
}

/// Role codes of attachment records (`Role::code`).
const PRODUCER: u32 = 1;
const CONSUMER: u32 = 2;

/// Withdraws record `rec`'s claim: nothing was taken.
fn withdraw<M: SlotMem>(m: &M, rec: u64) {
    // ORDERING: Relaxed; nothing was claimed, nothing to publish.
    m.claim(rec).store(0, Relaxed);
}

/// Claims the next free position for a producer. `Ok(None)`: full.
///
/// The position is recorded in attachment record `rec` before the CAS that
/// takes it, and withdrawn when the call takes nothing, so a producer
/// killed between claiming and publishing leaves a record of the slot it
/// holds ([`recover_dead_producer`]).
pub(crate) fn claim_produce<M: SlotMem>(m: &M, rec: u64) -> Result<Option<u64>, Corruption> {
    let r = claim_produce_recorded(m, rec);
    if !matches!(r, Ok(Some(_))) {
        withdraw(m, rec);
    }
    r
}

fn claim_produce_recorded<M: SlotMem>(m: &M, rec: u64) -> Result<Option<u64>, Corruption> {
    let tail = m.tail();
    // ORDERING: Relaxed; the stamp load below synchronises the slot.
    let mut pos = check_range(tail.load(Relaxed))?;
    loop {
        // ORDERING(stamp): Acquire; pairs with the consumer's Release stamp
        // store in `release`, so the previous reader is done with the slot.
        // The re-check (S4) of the wake-up handshake in `wait::block`.
        let stamp = m.stamp(pos).load(Acquire);
        if stamp == pos {
            // ORDERING(claim-record): Relaxed, sequenced before the CAS
            // (whose Release half publishes it with the claim).
            m.claim(rec).store(pos + 1, Relaxed);
            // ORDERING: AcqRel on success orders the claim (and its record)
            // before our writes; Relaxed on failure (we retry with what we
            // read).
            match tail.cas_weak(pos, pos + 1, AcqRel, Relaxed) {
                Ok(_) => {
                    crate::testing::point("mpmc-claimed");
                    return Ok(Some(pos));
                }
                Err(now) => pos = check_range(now)?,
            }
        } else if stamp < pos {
            // The slot is still busy with the previous lap: its producer is
            // writing (`pos - n`) or its message is not yet consumed
            // (`pos - n + 1`). Either way, full.
            if stamp == pos.wrapping_sub(m.count()) || stamp == (pos + 1).wrapping_sub(m.count()) {
                return Ok(None);
            }
            return Err(Corruption::Stamp { pos, stamp });
        } else {
            // Another producer claimed `pos`: move on, unless nobody did.
            let now = check_range(tail.load(Relaxed))?;
            if now == pos {
                return Err(Corruption::Stamp { pos, stamp });
            }
            pos = now;
        }
    }
}

/// Claims the next full position for a consumer, skipping aborted slots
/// (calling `space` after giving each back). `Ok(None)`: empty. Returns the
/// position and the message length; the position stays recorded in `rec`
/// until [`release`].
pub(crate) fn claim_consume<M: SlotMem>(
    m: &M,
    rec: u64,
    space: impl Fn(),
) -> Result<Option<(u64, u64)>, Corruption> {
    let r = claim_consume_recorded(m, rec, space);
    if !matches!(r, Ok(Some(_))) {
        withdraw(m, rec);
    }
    r
}

fn claim_consume_recorded<M: SlotMem>(
    m: &M,
    rec: u64,
    space: impl Fn(),
) -> Result<Option<(u64, u64)>, Corruption> {
    let head = m.head();
    let mut pos = check_range(head.load(Relaxed))?;
    loop {
        // ORDERING(stamp): Acquire; pairs with the producer's Release
        // publishing store in `publish`, making the payload visible. The
        // re-check (S4) of the wake-up handshake in `wait::block`.
        let stamp = m.stamp(pos).load(Acquire);
        if stamp == pos + 1 {
            // ORDERING(claim-record): Relaxed, sequenced before the CAS.
            m.claim(rec).store(pos + 1, Relaxed);
            // ORDERING: AcqRel on success; Relaxed on failure (retry).
            match head.cas_weak(pos, pos + 1, AcqRel, Relaxed) {
                Ok(_) => {
                    crate::testing::point("mpmc-taken");
                    let len = u64::from(m.len(pos).load(Relaxed));
                    let flags = m.flags(pos).load(Relaxed);
                    if flags == 0 && len <= m.slot_size() {
                        return Ok(Some((pos, len)));
                    }
                    // Aborted (skip it) or corrupt (report it); either way
                    // the slot goes back to the producers.
                    release(m, pos, rec);
                    space();
                    if flags != layout::SLOT_ABORTED {
                        return Err(Corruption::Slot { pos, len, flags });
                    }
                    pos += 1;
                }
                Err(now) => pos = check_range(now)?,
            }
        } else if stamp < pos + 1 {
            // Not produced yet for this lap (`pos`), or the previous lap's
            // consumer is still reading the slot (`pos - n + 1`). Either
            // way, empty.
            if stamp == pos || stamp == (pos + 1).wrapping_sub(m.count()) {
                return Ok(None);
            }
            return Err(Corruption::Stamp { pos, stamp });
        } else {
            let now = check_range(head.load(Relaxed))?;
            if now == pos {
                return Err(Corruption::Stamp { pos, stamp });
            }
            pos = now;
        }
    }
}

/// Publishes the slot of `pos` (producer): `len` bytes, or aborted; then
/// withdraws the claim from record `rec`.
pub(crate) fn publish<M: SlotMem>(m: &M, pos: u64, len: Option<u64>, rec: u64) {
    match len {
        Some(n) => {
            m.len(pos).store(n as u32, Relaxed);
            m.flags(pos).store(0, Relaxed);
        }
        None => {
            m.len(pos).store(0, Relaxed);
            m.flags(pos).store(layout::SLOT_ABORTED, Relaxed);
        }
    }
    // ORDERING(stamp): Release; publishes the payload and fields above to
    // the consumer's Acquire stamp load. W1 of the wake-up handshake.
    m.stamp(pos).store(pos + 1, Release);
    // ORDERING(claim-record): Release; pairs with the Acquire claim load in
    // `dead_claim`: whoever sees the record cleared sees the stamp above.
    m.claim(rec).store(0, Release);
}

/// Releases the slot of `pos` (consumer) for position `pos + count`, then
/// withdraws the claim from record `rec`.
pub(crate) fn release<M: SlotMem>(m: &M, pos: u64, rec: u64) {
    // ORDERING(stamp): Release; orders our reads of the slot before the
    // producer's next writes (its Acquire stamp load). W1 of the wake-up
    // handshake.
    m.stamp(pos).store(pos + m.count(), Release);
    // ORDERING(claim-record): Release, as in `publish`.
    m.claim(rec).store(0, Release);
}

/// The record of a dead `role` party whose claim is `pos`, if no live
/// party's record claims it: then nobody will ever publish (or release)
/// `pos`. Liveness is the OS lock table's word, never a timeout's.
fn dead_claim<M: SlotMem>(m: &M, role: u32, pos: u64) -> Option<u64> {
    let mut dead = None;
    // ORDERING(claim-record): Acquire; pairs with the Release clears in
    // `publish` and `release`, and (through the Acquire cursor load that
    // saw the claim) with the store before the claimant's CAS.
    let claims = |i: u64| m.claim(i).load(Acquire) == pos + 1 && m.role(i) == role;
    for i in 0..m.records() {
        if !claims(i) {
            continue;
        }
        if m.is_alive(i) {
            return None;
        }
        // Dead: read its record again, now that the lock table said so
        // (what was read before may predate its last stores).
        if claims(i) {
            dead = Some(i);
        }
    }
    dead
}

/// Completes the claim of a dead producer that holds the consumers at
/// `head == pos` (its slot's stamp still says `pos`, but `tail` has moved
/// past it): the calling consumer takes `pos` as if it held an aborted
/// message and releases the slot, so nothing is delivered for it.
/// `Ok(true)` when the ring moved (look again at once).
pub(crate) fn recover_dead_producer<M: SlotMem>(
    m: &M,
    rec: u64,
    pos: u64,
) -> Result<bool, Corruption> {
    // ORDERING(claim-record): Acquire; pairs with the producers' CAS on
    // `tail` (a release sequence): a tail past `pos` means `pos` was
    // claimed, and its claimant's record (stored before its CAS) is visible
    // to the scan below. Before that, `pos` is nobody's and a producer may
    // still claim it: recovering then would drop its message.
    if m.tail().load(Acquire) <= pos {
        return Ok(false);
    }
    // ORDERING(stamp): Acquire, as in `claim_consume`.
    if m.stamp(pos).load(Acquire) != pos {
        return Ok(false);
    }
    let Some(dead) = dead_claim(m, PRODUCER, pos) else {
        return Ok(false);
    };
    // Every record of `pos` is dead, so the stamp can no longer change
    // unless another consumer recovers it first: look once more, now that
    // the records are known.
    // ORDERING(stamp): Acquire, as above.
    if m.stamp(pos).load(Acquire) != pos {
        return Ok(true);
    }
    // ORDERING(claim-record): Relaxed, sequenced before the CAS, as in
    // `claim_consume`: if we die holding `pos`, producers recover it.
    m.claim(rec).store(pos + 1, Relaxed);
    // ORDERING: AcqRel on success, as in `claim_consume`; Relaxed on
    // failure (another consumer moved first).
    match m.head().cas_weak(pos, pos + 1, AcqRel, Relaxed) {
        Ok(_) => {
            release(m, pos, rec);
            m.count_recovery();
            crate::ring::clear_claim(m.claim(dead), pos + 1);
        }
        Err(_) => withdraw(m, rec),
    }
    Ok(true)
}

/// Completes the claim of a dead consumer that holds the producers at
/// `tail == pos`: the slot still holds position `q = pos - n`, published
/// and taken (`head > q`) but never released. It is released on the dead
/// consumer's behalf; its message was delivered to that consumer and is
/// not delivered again. `Ok(true)` when the ring moved.
pub(crate) fn recover_dead_consumer<M: SlotMem>(m: &M, pos: u64) -> Result<bool, Corruption> {
    let n = m.count();
    let Some(q) = pos.checked_sub(n) else {
        return Ok(false);
    };
    // ORDERING(stamp): Acquire, as in `claim_produce`.
    if m.stamp(q).load(Acquire) != q + 1 {
        return Ok(false);
    }
    // ORDERING(claim-record): Acquire; pairs with the consumers' CAS on
    // `head`: a head past `q` means `q` was taken, and its taker's record
    // (stored before its CAS) is visible to the scan below.
    if m.head().load(Acquire) <= q {
        return Ok(false);
    }
    let Some(dead) = dead_claim(m, CONSUMER, q) else {
        return Ok(false);
    };
    // ORDERING(stamp): AcqRel on success, as the consumer's own Release in
    // `release` (and ordering our decision after the stamp we saw);
    // Relaxed on failure (the slot moved on: nothing to do).
    if m.stamp(q).cas_weak(q + 1, q + n, AcqRel, Relaxed).is_ok() {
        m.count_recovery();
        crate::ring::clear_claim(m.claim(dead), q + 1);
    }
    Ok(true)
}

/// Model checks of the stamp protocol with loom, running the functions
/// above on loom atomics: messages (payload in loom `UnsafeCell`s, so a
/// missing happens-before is reported as a data race) cross a two-slot ring
/// and wrap around it, with an aborted slot in the way.
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::{AtomicBool, AtomicU32 as L32, AtomicU64 as L64};

    /// A two-slot ring on the heap, with four attachment records: 0 and 1
    /// producers, 2 and 3 consumers.
    struct Heap {
        head: L64,
        tail: L64,
        stamps: Vec<L64>,
        lens: Vec<L32>,
        flags: Vec<L32>,
        payload: Vec<UnsafeCell<u64>>,
        claims: Vec<L64>,
        alive: Vec<AtomicBool>,
        recoveries: L64,
        /// Sabotage: the lock table says every party is dead.
        lie: bool,
    }

    const N: u64 = 2;
    const ROLES: [u32; 4] = [PRODUCER, PRODUCER, CONSUMER, CONSUMER];

    impl Heap {
        fn new() -> Self {
            Heap {
                head: L64::new(0),
                tail: L64::new(0),
                stamps: (0..N).map(L64::new).collect(),
                lens: (0..N).map(|_| L32::new(0)).collect(),
                flags: (0..N).map(|_| L32::new(0)).collect(),
                payload: (0..N).map(|_| UnsafeCell::new(0)).collect(),
                claims: (0..4).map(|_| L64::new(0)).collect(),
                alive: (0..4).map(|_| AtomicBool::new(true)).collect(),
                recoveries: L64::new(0),
                lie: false,
            }
        }

        /// The party holding record `rec` stops for ever.
        fn kill(&self, rec: u64) {
            self.alive[rec as usize].store(false, std::sync::atomic::Ordering::SeqCst);
        }

        /// One claim and publish; the models size the ring so a claim
        /// always finds room (loom cannot explore unbounded retries).
        fn send(&self, rec: u64, v: u64) {
            let pos = claim_produce(self, rec)
                .unwrap()
                .expect("room for the message");
            self.payload[(pos % N) as usize].with_mut(|p| {
                // SAFETY: the claim gives this thread the slot until
                // `publish`; loom checks that claim.
                unsafe { *p = v }
            });
            publish(self, pos, Some(8), rec);
        }

        fn abort_one(&self, rec: u64) {
            let pos = claim_produce(self, rec)
                .unwrap()
                .expect("room for the claim");
            publish(self, pos, None, rec);
        }

        /// One attempt to take a message.
        fn try_recv(&self, rec: u64) -> Option<u64> {
            let (pos, len) = claim_consume(self, rec, || {}).unwrap()?;
            assert_eq!(len, 8);
            let v = self.payload[(pos % N) as usize].with(|p| {
                // SAFETY: the claim gives this thread the slot until
                // `release`; loom checks that claim.
                unsafe { *p }
            });
            release(self, pos, rec);
            Some(v)
        }

        /// One consumer-side recovery attempt at the current head.
        fn recover_producer(&self, rec: u64) -> bool {
            let head = self.head.load(Relaxed);
            recover_dead_producer(self, rec, head).unwrap()
        }

        /// One producer-side recovery attempt at the current tail.
        fn recover_consumer(&self) -> bool {
            let tail = self.tail.load(Relaxed);
            recover_dead_consumer(self, tail).unwrap()
        }

        /// Moves the cursors a lap on, single-threaded, so the models run
        /// on reused slots (stamps `n` and above).
        fn lap(&self) {
            for v in 0..N {
                self.send(1, 100 + v);
                assert_eq!(self.try_recv(3), Some(100 + v));
            }
        }

        /// Takes everything left, completing dead parties' claims on the
        /// way, single-threaded.
        fn drain(&self, rec: u64, got: &mut Vec<u64>) {
            loop {
                if let Some(v) = self.try_recv(rec) {
                    got.push(v);
                } else if !self.recover_producer(rec) {
                    break;
                }
            }
        }
    }

    impl SlotMem for Heap {
        type W64 = L64;
        type W32 = L32;
        fn head(&self) -> &L64 {
            &self.head
        }
        fn tail(&self) -> &L64 {
            &self.tail
        }
        fn stamp(&self, pos: u64) -> &L64 {
            &self.stamps[(pos % N) as usize]
        }
        fn len(&self, pos: u64) -> &L32 {
            &self.lens[(pos % N) as usize]
        }
        fn flags(&self, pos: u64) -> &L32 {
            &self.flags[(pos % N) as usize]
        }
        fn count(&self) -> u64 {
            N
        }
        fn slot_size(&self) -> u64 {
            8
        }
        fn records(&self) -> u64 {
            4
        }
        fn claim(&self, i: u64) -> &L64 {
            &self.claims[i as usize]
        }
        fn role(&self, i: u64) -> u32 {
            ROLES[i as usize]
        }
        fn is_alive(&self, i: u64) -> bool {
            !self.lie && self.alive[i as usize].load(std::sync::atomic::Ordering::SeqCst)
        }
        fn count_recovery(&self) {
            self.recoveries.fetch_add(1, Relaxed);
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }

    /// Two producers and a consumer racing on a ring that has wrapped:
    /// whatever the interleaving, each message arrives exactly once, with
    /// its payload (a missing happens-before would be a reported race).
    #[test]
    fn loom_mpmc_two_producers_after_wrap() {
        model(|| {
            let ring = Arc::new(Heap::new());
            ring.lap();
            let r1 = ring.clone();
            let p1 = loom::thread::spawn(move || r1.send(0, 1));
            let r2 = ring.clone();
            let p2 = loom::thread::spawn(move || r2.send(1, 2));
            let mut got: Vec<u64> = ring.try_recv(2).into_iter().collect();
            p1.join().unwrap();
            p2.join().unwrap();
            ring.drain(2, &mut got);
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
        });
    }

    /// Two consumers racing a producer that aborts one reservation and
    /// commits another: the aborted slot is never delivered nor blocking,
    /// and the message goes to exactly one consumer.
    #[test]
    fn loom_mpmc_two_consumers_and_an_abort() {
        model(|| {
            let ring = Arc::new(Heap::new());
            ring.lap();
            let r = ring.clone();
            let p = loom::thread::spawn(move || {
                r.abort_one(0);
                r.send(0, 7);
            });
            let r1 = ring.clone();
            let c1 = loom::thread::spawn(move || r1.try_recv(3));
            let mut got: Vec<u64> = ring.try_recv(2).into_iter().collect();
            got.extend(c1.join().unwrap());
            p.join().unwrap();
            ring.drain(2, &mut got);
            assert_eq!(got, [7]);
        });
    }

    /// A producer that stops for ever after claiming a slot (its CAS done,
    /// nothing published), racing a live producer and a consumer that
    /// recovers: the live message arrives exactly once, the dead claim is
    /// completed exactly once, and the ring keeps working for a full lap.
    /// `lie`: the lock table calls every party dead (the sabotage).
    fn producer_dies_after_claim(lie: bool) {
        model(move || {
            let mut heap = Heap::new();
            heap.lie = lie;
            let ring = Arc::new(heap);
            ring.lap();
            let r = ring.clone();
            let dead = loom::thread::spawn(move || {
                claim_produce(&*r, 0).unwrap().expect("room");
                r.kill(0);
            });
            let r = ring.clone();
            let live = loom::thread::spawn(move || r.send(1, 7));
            // The consumer polls, recovering when held, while the producers
            // run (yielding lets loom run them between its steps).
            let mut got = Vec::new();
            for _ in 0..3 {
                got.extend(ring.try_recv(2));
                if !got.is_empty() {
                    break;
                }
                ring.recover_producer(2);
                loom::thread::yield_now();
            }
            dead.join().unwrap();
            live.join().unwrap();
            ring.drain(2, &mut got);
            assert_eq!(got, [7]);
            assert_eq!(ring.recoveries.load(Relaxed), 1);
            ring.lap();
        });
    }

    #[test]
    fn loom_mpmc_producer_dies_after_claim() {
        producer_dies_after_claim(false);
    }

    /// The recovery models have teeth: a lock table that declares the live
    /// producer dead too lets a consumer complete its claim as aborted, and
    /// the message it was writing is lost.
    #[test]
    #[should_panic]
    fn loom_mpmc_catches_recovery_of_a_live_claim() {
        producer_dies_after_claim(true);
    }

    /// A producer that stops for ever after recording a claim but before
    /// its CAS: it owns nothing, and nothing is recovered on its account.
    #[test]
    fn loom_mpmc_producer_dies_before_its_cas() {
        model(|| {
            let ring = Arc::new(Heap::new());
            ring.lap();
            let r = ring.clone();
            let dead = loom::thread::spawn(move || {
                let pos = r.tail.load(Relaxed);
                r.claims[0].store(pos + 1, Relaxed);
                r.kill(0);
            });
            let r = ring.clone();
            let live = loom::thread::spawn(move || r.send(1, 7));
            // The consumer polls, recovering when held, while the producers
            // run (yielding lets loom run them between its steps).
            let mut got = Vec::new();
            for _ in 0..3 {
                got.extend(ring.try_recv(2));
                if !got.is_empty() {
                    break;
                }
                ring.recover_producer(2);
                loom::thread::yield_now();
            }
            dead.join().unwrap();
            live.join().unwrap();
            ring.drain(2, &mut got);
            assert_eq!(got, [7]);
            assert_eq!(ring.recoveries.load(Relaxed), 0);
            ring.lap();
        });
    }

    /// A consumer that stops for ever after taking a message (before
    /// releasing its slot): a producer that needs the slot releases it on
    /// the dead consumer's behalf, racing a live consumer; every other
    /// message arrives once and the ring keeps working.
    #[test]
    fn loom_mpmc_consumer_dies_holding_a_slot() {
        model(|| {
            let ring = Arc::new(Heap::new());
            ring.lap();
            ring.send(1, 1);
            ring.send(1, 2);
            let r = ring.clone();
            let dead = loom::thread::spawn(move || {
                let (_pos, _len) = claim_consume(&*r, 2, || {}).unwrap().expect("a message");
                r.kill(2);
            });
            let r = ring.clone();
            let live = loom::thread::spawn(move || r.try_recv(3));
            dead.join().unwrap();
            let got: Vec<u64> = live.join().unwrap().into_iter().collect();
            assert!(
                got == [1] || got == [2],
                "{got:?}: the other went to the dead consumer"
            );
            // Two laps of traffic: a producer that finds the ring full
            // because of the dead consumer's slot releases it and goes on.
            for v in 0..2 * N {
                let pos = loop {
                    match claim_produce(&*ring, 1).unwrap() {
                        Some(pos) => break pos,
                        None => assert!(ring.recover_consumer(), "full, and nothing to recover"),
                    }
                };
                ring.payload[(pos % N) as usize].with_mut(|p| {
                    // SAFETY: claimed by this thread until `publish`.
                    unsafe { *p = 10 + v }
                });
                publish(&*ring, pos, Some(8), 1);
                assert_eq!(ring.try_recv(3), Some(10 + v));
            }
            assert_eq!(ring.recoveries.load(Relaxed), 1);
        });
    }
}
