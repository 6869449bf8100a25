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
}

/// Claims the next free position for a producer. `Ok(None)`: full.
pub(crate) fn claim_produce<M: SlotMem>(m: &M) -> Result<Option<u64>, Corruption> {
    let tail = m.tail();
    // ORDERING: Relaxed; the stamp load below synchronises the slot.
    let mut pos = check_range(tail.load(Relaxed))?;
    loop {
        // ORDERING(stamp): Acquire; pairs with the consumer's Release stamp
        // store in `release`, so the previous reader is done with the slot.
        // The re-check (S4) of the wake-up handshake in `wait::block`.
        let stamp = m.stamp(pos).load(Acquire);
        if stamp == pos {
            // ORDERING: AcqRel on success orders the claim before our
            // writes; Relaxed on failure (we retry with what we read).
            match tail.cas_weak(pos, pos + 1, AcqRel, Relaxed) {
                Ok(_) => return Ok(Some(pos)),
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
/// position and the message length.
pub(crate) fn claim_consume<M: SlotMem>(
    m: &M,
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
            // ORDERING: AcqRel on success; Relaxed on failure (retry).
            match head.cas_weak(pos, pos + 1, AcqRel, Relaxed) {
                Ok(_) => {
                    let len = u64::from(m.len(pos).load(Relaxed));
                    let flags = m.flags(pos).load(Relaxed);
                    if flags == 0 && len <= m.slot_size() {
                        return Ok(Some((pos, len)));
                    }
                    // Aborted (skip it) or corrupt (report it); either way
                    // the slot goes back to the producers.
                    release(m, pos);
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

/// Publishes the slot of `pos` (producer): `len` bytes, or aborted.
pub(crate) fn publish<M: SlotMem>(m: &M, pos: u64, len: Option<u64>) {
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
}

/// Releases the slot of `pos` (consumer) for position `pos + count`.
pub(crate) fn release<M: SlotMem>(m: &M, pos: u64) {
    // ORDERING(stamp): Release; orders our reads of the slot before the
    // producer's next writes (its Acquire stamp load). W1 of the wake-up
    // handshake.
    m.stamp(pos).store(pos + m.count(), Release);
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
    use loom::sync::atomic::{AtomicU32 as L32, AtomicU64 as L64};

    /// A two-slot ring on the heap.
    struct Heap {
        head: L64,
        tail: L64,
        stamps: Vec<L64>,
        lens: Vec<L32>,
        flags: Vec<L32>,
        payload: Vec<UnsafeCell<u64>>,
    }

    const N: u64 = 2;

    impl Heap {
        fn new() -> Self {
            Heap {
                head: L64::new(0),
                tail: L64::new(0),
                stamps: (0..N).map(L64::new).collect(),
                lens: (0..N).map(|_| L32::new(0)).collect(),
                flags: (0..N).map(|_| L32::new(0)).collect(),
                payload: (0..N).map(|_| UnsafeCell::new(0)).collect(),
            }
        }

        /// One claim and publish; the models size the ring so a claim
        /// always finds room (loom cannot explore unbounded retries).
        fn send(&self, v: u64) {
            let pos = claim_produce(self).unwrap().expect("room for the message");
            self.payload[(pos % N) as usize].with_mut(|p| {
                // SAFETY: the claim gives this thread the slot until
                // `publish`; loom checks that claim.
                unsafe { *p = v }
            });
            publish(self, pos, Some(8));
        }

        fn abort_one(&self) {
            let pos = claim_produce(self).unwrap().expect("room for the claim");
            publish(self, pos, None);
        }

        /// One attempt to take a message.
        fn try_recv(&self) -> Option<u64> {
            let (pos, len) = claim_consume(self, || {}).unwrap()?;
            assert_eq!(len, 8);
            let v = self.payload[(pos % N) as usize].with(|p| {
                // SAFETY: the claim gives this thread the slot until
                // `release`; loom checks that claim.
                unsafe { *p }
            });
            release(self, pos);
            Some(v)
        }

        /// Moves the cursors a lap on, single-threaded, so the models run
        /// on reused slots (stamps `n` and above).
        fn lap(&self) {
            for v in 0..N {
                self.send(100 + v);
                assert_eq!(self.try_recv(), Some(100 + v));
            }
        }

        fn drain(&self, got: &mut Vec<u64>) {
            while let Some(v) = self.try_recv() {
                got.push(v);
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
            let p1 = loom::thread::spawn(move || r1.send(1));
            let r2 = ring.clone();
            let p2 = loom::thread::spawn(move || r2.send(2));
            let mut got: Vec<u64> = ring.try_recv().into_iter().collect();
            p1.join().unwrap();
            p2.join().unwrap();
            ring.drain(&mut got);
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
                r.abort_one();
                r.send(7);
            });
            let r1 = ring.clone();
            let c1 = loom::thread::spawn(move || r1.try_recv());
            let mut got: Vec<u64> = ring.try_recv().into_iter().collect();
            got.extend(c1.join().unwrap());
            p.join().unwrap();
            ring.drain(&mut got);
            assert_eq!(got, [7]);
        });
    }
}
