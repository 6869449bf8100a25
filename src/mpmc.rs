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

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::config::Geometry;
use crate::error::{Corruption, Error, RecvError, SendError};
use crate::layout::{self, Header, Kind, Role};
use crate::region::Region;
use crate::ring::check_range;
use crate::roles::Attachment;
use crate::slots;
use crate::wait;

type Shared = crate::shared::Shared<SlotRing>;

/// Raw access to a slot ring's header and slots.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SlotRing {
    hdr: NonNull<Header>,
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
    /// `hdr` points to a live `Header` and `data` to `geo.capacity` live,
    /// 8-byte aligned bytes, both valid as long as this value is used.
    unsafe fn new(hdr: NonNull<Header>, data: NonNull<u8>, geo: Geometry) -> SlotRing {
        debug_assert!(geo.slot_count.is_power_of_two());
        SlotRing {
            hdr,
            data,
            count: geo.slot_count,
            stride: layout::slot_stride(geo.max_frame),
            slot_size: geo.max_frame,
        }
    }

    fn header(&self) -> &Header {
        // SAFETY: `new`'s contract; all fields used are atomics.
        unsafe { self.hdr.as_ref() }
    }

    /// Start of the slot for position `pos`: the single choke point of slot
    /// address arithmetic.
    fn slot(&self, pos: u64) -> NonNull<u8> {
        let index = pos & (self.count - 1);
        debug_assert!((index + 1) * self.stride <= self.count * self.stride);
        // SAFETY: `index < count`, so the slot's `stride` bytes lie inside
        // the data area of `count * stride` bytes.
        unsafe { self.data.add((index * self.stride) as usize) }
    }

    fn stamp(&self, pos: u64) -> &AtomicU64 {
        // SAFETY: offset 0 of a slot, 8-byte aligned (8 | stride, page-aligned
        // data area), inside the data area; an atomic tolerates other
        // processes.
        unsafe { self.slot(pos).cast::<AtomicU64>().as_ref() }
    }

    /// The 32-bit field at `offset` (8: length, 12: flags) of a slot header.
    fn field(&self, pos: u64, offset: usize) -> &AtomicU32 {
        debug_assert!(offset == 8 || offset == 12);
        // SAFETY: offset < SLOT_HEADER <= stride, so inside the slot.
        let p = unsafe { self.slot(pos).add(offset) };
        // SAFETY: 4-byte aligned (the slot is 8-byte aligned), live for
        // `&self`; an atomic tolerates other processes.
        unsafe { p.cast::<AtomicU32>().as_ref() }
    }

    fn len(&self, pos: u64) -> &AtomicU32 {
        self.field(pos, 8)
    }

    fn flags(&self, pos: u64) -> &AtomicU32 {
        self.field(pos, 12)
    }

    /// The payload of the slot for `pos`, `len` bytes.
    ///
    /// # Safety
    ///
    /// `len <= slot_size`, and the caller holds the slot (claimed it and has
    /// not yet published or released it).
    unsafe fn payload(&self, pos: u64, len: u64) -> NonNull<u8> {
        debug_assert!(len <= self.slot_size);
        // SAFETY: SLOT_HEADER + len <= stride, so the range is in the slot.
        unsafe { self.slot(pos).add(layout::SLOT_HEADER as usize) }
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
    fn check_quiescent_cursors(&self) -> Result<(), Corruption> {
        let h = self.header();
        let head = h.consumer.head.load(SeqCst);
        let tail = h.producer.tail.load(SeqCst);
        if head == h.consumer.head.load(SeqCst) {
            self.check_cursors(head, tail)?;
        }
        Ok(())
    }
}

impl crate::slots::SlotMem for SlotRing {
    type W64 = AtomicU64;
    type W32 = AtomicU32;
    fn head(&self) -> &AtomicU64 {
        &self.header().consumer.head
    }
    fn tail(&self) -> &AtomicU64 {
        &self.header().producer.tail
    }
    fn stamp(&self, pos: u64) -> &AtomicU64 {
        SlotRing::stamp(self, pos)
    }
    fn len(&self, pos: u64) -> &AtomicU32 {
        SlotRing::len(self, pos)
    }
    fn flags(&self, pos: u64) -> &AtomicU32 {
        SlotRing::flags(self, pos)
    }
    fn count(&self) -> u64 {
        self.count
    }
    fn slot_size(&self) -> u64 {
        self.slot_size
    }
}

/// A many-producer many-consumer ring of fixed-size slots in shared
/// memory, sized with [`Config::slots`](crate::Config::slots). Any number
/// of producers and consumers (up to 128 handles in all) in any processes.
#[derive(Debug, Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

impl Ring {
    crate::shared::ring_common!(Kind::Mpmc, "mpmc", "Config::slots(1024, 64)");

    fn wrap(region: Region) -> Result<Ring, Error> {
        // SAFETY: the region maps the header at offset 0 and `capacity` =
        // slot_count * stride bytes at DATA_OFFSET; `Shared` owns the region
        // and the SlotRing never outlives it.
        let raw = unsafe { SlotRing::new(region.header(), region.data(), region.geometry()) };
        raw.check_quiescent_cursors()?;
        Ok(Ring {
            shared: Arc::new(Shared { region, raw }),
        })
    }

    /// Number of slots.
    pub fn slot_count(&self) -> u64 {
        self.shared.raw.count
    }

    /// Attaches a new producer. Call it once per writing thread or process.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyAttachments`] if 128 handles are attached already.
    pub fn producer(&self) -> Result<Producer, Error> {
        let lock = self.shared.attach(Role::Producer, false)?;
        Ok(Producer {
            shared: self.shared.clone(),
            lock: Some(lock),
        })
    }

    /// Attaches a new consumer. Call it once per reading thread or process.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyAttachments`] if 128 handles are attached already.
    pub fn consumer(&self) -> Result<Consumer, Error> {
        let lock = self.shared.attach(Role::Consumer, false)?;
        Ok(Consumer {
            shared: self.shared.clone(),
            lock: Some(lock),
        })
    }
}

/// One writer of an MPMC [`Ring`]. `Send` and `'static`.
pub struct Producer {
    shared: Arc<Shared>,
    lock: Option<Attachment>,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

impl Producer {
    /// Claims a slot for a message of up to `len` bytes without blocking.
    /// The grant derefs to `len` bytes of the slot; commit it, or drop it to
    /// publish the slot as aborted (consumers skip it).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] if `len > slot_size`; [`SendError::Full`];
    /// [`SendError::Corrupt`] on an impossible stamp.
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        self.check_len(len)?;
        match slots::claim_produce(&self.shared.raw)? {
            Some(pos) => Ok(self.grant(pos, len)),
            None => Err(SendError::Full),
        }
    }

    crate::grant::blocking_reserve!("every consumer has detached or died");

    fn reserve_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteGrant<'_>, SendError> {
        self.check_len(len)?;
        let shared = &*self.shared;
        let lock = self.lock.as_ref().expect("attached while the handle lives");
        let r = wait::block(
            shared.space_point(),
            deadline,
            || slots::claim_produce(&shared.raw),
            || shared.peer_gone(lock, Role::Consumer),
        );
        Ok(self.grant(r?, len))
    }

    crate::grant::copying_send!();

    /// Largest message (the slot size).
    pub fn max_frame(&self) -> usize {
        self.shared.raw.slot_size as usize
    }

    /// Whether at least one live consumer is attached right now.
    pub fn is_consumer_attached(&self) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.is_held(Role::Consumer))
    }

    fn check_len(&self, len: usize) -> Result<(), SendError> {
        if len as u64 > self.shared.raw.slot_size {
            return Err(SendError::TooLarge {
                len,
                max: self.shared.raw.slot_size as usize,
            });
        }
        Ok(())
    }

    fn grant(&mut self, pos: u64, len: usize) -> WriteGrant<'_> {
        WriteGrant {
            producer: self,
            pos,
            len,
            done: false,
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.shared.detach(Role::Producer, lock);
        }
    }
}

/// A slot claimed by an MPMC [`Producer`]. Derefs to the reserved bytes of
/// the slot. Commit it; dropping it publishes the slot as aborted, which
/// consumers skip.
#[must_use = "a WriteGrant publishes nothing unless committed"]
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    pos: u64,
    len: usize,
    done: bool,
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish()
    }
}

crate::grant::write_grant_common!(
    "Publishes the slot as aborted, which consumers skip (the same as dropping the grant)."
);

impl WriteGrant<'_> {
    fn payload(&self) -> NonNull<u8> {
        // SAFETY: `len <= slot_size` (checked at reserve) and we hold the
        // claimed slot until publishing it.
        unsafe { self.producer.shared.raw.payload(self.pos, self.len as u64) }
    }

    fn publish(&mut self, len: Option<u64>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let shared = &self.producer.shared;
        slots::publish(&shared.raw, self.pos, len);
        shared.data_point().notify();
    }
}

/// One reader of an MPMC [`Ring`]. `Send` and `'static`.
pub struct Consumer {
    shared: Arc<Shared>,
    lock: Option<Attachment>,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl Consumer {
    /// Takes the next message without blocking; the slot is released when
    /// the grant is dropped.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`]; [`RecvError::Corrupt`] on an impossible stamp
    /// or slot (the slot is released so others can continue).
    pub fn try_recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        let shared = &*self.shared;
        match slots::claim_consume(&shared.raw, || shared.space_point().notify())? {
            Some((pos, len)) => Ok(ReadGrant {
                consumer: self,
                pos,
                len,
            }),
            None => Err(RecvError::Empty),
        }
    }

    /// Takes the next message, blocking while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the ring is empty and every
    /// producer has detached or died; [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(None)
    }

    /// As [`recv`](Consumer::recv), giving up with [`RecvError::Timeout`]
    /// after `timeout`.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<ReadGrant<'_>, RecvError> {
        let shared = &*self.shared;
        let lock = self.lock.as_ref().expect("attached while the handle lives");
        let r = wait::block(
            shared.data_point(),
            deadline,
            || slots::claim_consume(&shared.raw, || shared.space_point().notify()),
            || shared.peer_gone(lock, Role::Producer),
        );
        let (pos, len) = r?;
        Ok(ReadGrant {
            consumer: self,
            pos,
            len,
        })
    }

    /// Whether at least one live producer is attached right now.
    pub fn is_producer_attached(&self) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.is_held(Role::Producer))
    }

    crate::grant::copying_recv!();
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.shared.detach(Role::Consumer, lock);
        }
    }
}

/// A message taken by an MPMC [`Consumer`]. Derefs to the payload in its
/// slot (8-byte aligned); dropping it releases the slot.
#[must_use = "dropping a ReadGrant releases the slot immediately"]
pub struct ReadGrant<'a> {
    consumer: &'a mut Consumer,
    pos: u64,
    len: u64,
}

impl fmt::Debug for ReadGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGrant")
            .field("pos", &self.pos)
            .field("len", &self.len)
            .finish()
    }
}

crate::grant::read_grant_common!("Releases the slot (the same as dropping the grant).");

impl ReadGrant<'_> {
    fn payload(&self) -> NonNull<u8> {
        // SAFETY: `claim_consume` checked `len <= slot_size`; we hold the
        // slot until this grant is dropped.
        unsafe { self.consumer.shared.raw.payload(self.pos, self.len) }
    }

    fn payload_len(&self) -> usize {
        self.len as usize
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        let shared = &self.consumer.shared;
        slots::release(&shared.raw, self.pos);
        shared.space_point().notify();
    }
}
