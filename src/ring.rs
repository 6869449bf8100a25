//! The framed ring core: raw access to a header and a data area, and the
//! frame format on top of it. Knows nothing about files, roles or waiting,
//! so the same code runs on a file mapping, a memfd, or (for model checking)
//! plain heap memory.
//!
//! Positions are free-running byte counts (`u64`, never wrapping in
//! practice: 2^64 bytes at 100 GB/s is 5 years). The offset of position `p`
//! in the data area is `p & (capacity - 1)`. Every position handed to this
//! module is a multiple of 8, so a frame word never straddles the end of
//! the data area.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::config::Geometry;
use crate::error::Corruption;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

use crate::layout::{self, AttachRecord, ConsumerBlock, ProducerBlock, RoleBlock, frame_word};
use crate::region::Region;
use crate::roles;
use crate::words::Word64;

/// The all-atomic parts of a ring's header and attachment table, as
/// pointers into the mapping: block 1 (the consumer side), block 2 (the
/// producer side), block 3 (role records) and the attachment table, plus
/// the ring's fd for asking the kernel whether a record's holder lives.
/// Never a reference to the whole header: block 0 holds plain bytes a peer
/// could write, and only these all-atomic parts are viewed as Rust values.
#[derive(Debug, Clone, Copy)]
pub struct Blocks {
    consumer: NonNull<ConsumerBlock>,
    producer: NonNull<ProducerBlock>,
    roles: NonNull<RoleBlock>,
    table: NonNull<AttachRecord>,
    fd: RawFd,
}

// SAFETY: pointers to atomics in memory shared with other processes anyway;
// only ever dereferenced to shared references of those atomics. The fd is a
// plain number, only used for lock queries while its Region lives.
unsafe impl Send for Blocks {}
// SAFETY: as above.
unsafe impl Sync for Blocks {}

impl Blocks {
    /// The blocks of a mapped region.
    pub fn of(region: &Region) -> Blocks {
        Blocks {
            consumer: NonNull::from(region.consumer_block()),
            producer: NonNull::from(region.producer_block()),
            roles: NonNull::from(region.role_block()),
            table: NonNull::from(region.attach_record(0)),
            fd: region.fd().as_raw_fd(),
        }
    }

    /// Block 1: `head` and the space wait point.
    #[inline]
    pub fn consumer(&self) -> &ConsumerBlock {
        // SAFETY: made from a live mapping (`of`) that outlives every use
        // (the owner keeps the Region beside this value); all fields are
        // atomics.
        unsafe { self.consumer.as_ref() }
    }

    /// Block 2: `tail` and the data wait point.
    #[inline]
    pub fn producer(&self) -> &ProducerBlock {
        // SAFETY: as in `consumer`.
        unsafe { self.producer.as_ref() }
    }

    /// Block 3: role records and the recovery count.
    #[inline]
    pub fn roles(&self) -> &RoleBlock {
        // SAFETY: as in `consumer`.
        unsafe { self.roles.as_ref() }
    }

    /// Attachment record `i`.
    #[inline]
    pub fn record(&self, i: u64) -> &AttachRecord {
        assert!(
            i < layout::ATTACH_SLOTS,
            "attachment record {i} out of range"
        );
        // SAFETY: the table holds ATTACH_SLOTS records (a compile-time
        // assert in layout.rs keeps it inside the mapping) and `i` is below
        // that.
        let p = unsafe { self.table.add(i as usize) };
        // SAFETY: aligned, live while the mapping is (see `consumer`), and
        // the records are all atomics.
        unsafe { p.as_ref() }
    }

    /// Whether a live handle (in any process, this one included) holds
    /// attachment record `i`: the kernel's lock table, never a pid or a
    /// timeout. A failed query counts as alive (never recover on doubt).
    pub fn is_alive(&self, i: u64) -> bool {
        // SAFETY: `fd` is the Region's fd, open while the Region (kept beside
        // this value by its owner) lives.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        roles::is_held(fd, layout::attach_record_offset(i)).unwrap_or(true)
    }

    /// The blocks of a header and attachment table laid out in `area`, as
    /// in a mapping, with no fd behind them (liveness queries fail, which
    /// counts as alive). For the heap-backed unit tests.
    ///
    /// # Safety
    ///
    /// `area` points to `DATA_OFFSET` zeroed (or validly written), 128-byte
    /// aligned bytes that stay valid as long as this value is used.
    #[cfg(test)]
    pub unsafe fn in_area(area: NonNull<u8>) -> Blocks {
        use crate::layout::Header;
        use std::mem::offset_of;
        // Every offset below lies inside the DATA_OFFSET bytes of `area`
        // (the caller's contract), which is what later dereferences need.
        let at = |off: usize| area.as_ptr().wrapping_add(off);
        Blocks {
            consumer: NonNull::new(at(offset_of!(Header, consumer)).cast()).unwrap(),
            producer: NonNull::new(at(offset_of!(Header, producer)).cast()).unwrap(),
            roles: NonNull::new(at(offset_of!(Header, roles)).cast()).unwrap(),
            table: NonNull::new(at(layout::ATTACH_TABLE as usize).cast()).unwrap(),
            fd: -1,
        }
    }

    /// Whether a live handle holds `role` (the kernel's lock table, as
    /// [`is_alive`](Blocks::is_alive); a failed query counts as alive).
    pub fn role_held(&self, role: layout::Role) -> bool {
        // SAFETY: as in `is_alive`.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        roles::is_held(fd, role.lock_offset()).unwrap_or(true)
    }

    /// Counts one completed recovery.
    pub fn count_recovery(&self) {
        // ORDERING: Relaxed; a statistic.
        self.roles().recoveries.fetch_add(1, Relaxed);
    }

    /// `(head, tail)`, for monitoring.
    pub fn cursors(&self) -> (u64, u64) {
        // ORDERING(head-release, tail-publish): Acquire, pairing with the
        // Release stores of head and tail; a snapshot, no data is read on
        // its basis.
        let head = self.consumer().head.load(Acquire);
        let tail = self.producer().tail.load(Acquire);
        (head, tail)
    }
}

/// Pointers to one framed ring's cursor blocks and data area, plus its
/// validated geometry. Copyable; whoever creates it keeps the memory alive.
#[derive(Debug, Clone, Copy)]
pub struct RawRing {
    blocks: Blocks,
    data: NonNull<u8>,
    capacity: u64,
    max_frame: u64,
}

// SAFETY: RawRing is a set of pointers into memory shared with other
// processes anyway; it is only dereferenced through atomics or through the
// byte ranges the ring protocol assigns to one side.
unsafe impl Send for RawRing {}
// SAFETY: as above.
unsafe impl Sync for RawRing {}

impl RawRing {
    /// # Safety
    ///
    /// * `data` points to `geo.capacity` live bytes, 8-byte aligned;
    /// * it and `blocks` stay valid for as long as this value or a copy is
    ///   used.
    pub unsafe fn new(blocks: Blocks, data: NonNull<u8>, geo: Geometry) -> RawRing {
        debug_assert!(geo.capacity.is_power_of_two());
        debug_assert_eq!(data.as_ptr() as usize % 8, 0);
        RawRing {
            blocks,
            data,
            capacity: geo.capacity,
            max_frame: geo.max_frame,
        }
    }

    /// The ring of a mapped region, after checking its cursors.
    pub fn of(region: &Region) -> Result<RawRing, Corruption> {
        // SAFETY: the region maps `capacity` bytes at DATA_OFFSET (page
        // aligned); its owner keeps the region beside this value.
        let raw = unsafe { RawRing::new(Blocks::of(region), region.data(), region.geometry()) };
        raw.check_quiescent_cursors()?;
        Ok(raw)
    }

    /// The cursor blocks.
    #[inline]
    pub fn blocks(&self) -> &Blocks {
        &self.blocks
    }

    /// `(head, tail)`, for monitoring.
    pub fn cursors(&self) -> (u64, u64) {
        self.blocks.cursors()
    }

    /// Pointer to `len` bytes at data offset `off`.
    ///
    /// # Safety
    ///
    /// `off + len <= capacity`. The caller must own that range under the
    /// ring protocol (reserved by the producer, or committed and not yet
    /// released for the consumer) for as long as it uses the pointer.
    #[inline]
    pub unsafe fn bytes(&self, off: u64, len: u64) -> NonNull<u8> {
        debug_assert!(
            off.checked_add(len).is_some_and(|end| end <= self.capacity),
            "range {off}+{len} outside data area of {}",
            self.capacity
        );
        // SAFETY: by the contract, `off` is inside the data area.
        unsafe { self.data.add(off as usize) }
    }

    /// Refuses tampered cursors at open time without false alarms on a
    /// live ring: `head` is read twice around `tail`; if it did not move,
    /// the pair was consistent at the moment `tail` was read, so a
    /// violation is real.
    pub fn check_quiescent_cursors(&self) -> Result<(), Corruption> {
        let (c, p) = (self.blocks.consumer(), self.blocks.producer());
        // ORDERING(head-release, tail-publish): Acquire, pairing with the
        // consumer's Release head store and the producer's Release tail
        // store; the re-read of head is ordered after the tail load.
        let head = c.head.load(Acquire);
        let tail = p.tail.load(Acquire);
        if head == c.head.load(Acquire) {
            self.check_cursors(head, tail)?;
        }
        Ok(())
    }
}

/// Where a framed ring's cursors and frame words live: the shared mapping
/// ([`RawRing`]), or loom atomics in the model checks, which thereby run the
/// ring's own protocol code.
pub trait FramedMem {
    type W64: Word64;
    /// The consumer's cursor.
    fn head(&self) -> &Self::W64;
    /// The producer's cursor (claim cursor for mpsc).
    fn tail(&self) -> &Self::W64;
    /// The frame word at position `pos` (a multiple of 8).
    fn word(&self, pos: u64) -> &Self::W64;
    /// Data area size in bytes (a power of two).
    fn capacity(&self) -> u64;
    /// Largest payload.
    fn max_frame(&self) -> u64;
    /// Zeroes `[from, to)` of the data area, which the caller owns.
    fn zero(&self, from: u64, to: u64);
    /// Number of attachment records.
    fn records(&self) -> u64;
    /// The in-flight claim of record `i`: `start + 1`, or 0.
    fn claim(&self, i: u64) -> &Self::W64;
    /// The end of record `i`'s claim, with `CLAIM_WON` once taken.
    fn claim_end(&self, i: u64) -> &Self::W64;
    /// Whether a live handle holds record `i` (the OS lock table).
    fn is_alive(&self, i: u64) -> bool;
    /// The consumer role record's `pending` word: where a release in
    /// progress zeroes up to.
    fn pending(&self) -> &Self::W64;
    /// The count of messages released since creation (`stat`).
    fn released_frames(&self) -> &Self::W64;
    /// Counts one completed recovery.
    fn count_recovery(&self);
    /// SPSC: position + 1 of the frame word the producer's latest
    /// publication stores last (0: none yet).
    fn deferred_at(&self) -> &Self::W64;
    /// SPSC: the frame word [`deferred_at`](FramedMem::deferred_at) names.
    fn deferred_word(&self) -> &Self::W64;
    /// SPSC: whether a live handle holds the producer role.
    fn producer_alive(&self) -> bool;

    /// Offset of `pos` in the data area.
    #[inline]
    fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity() - 1)
    }

    /// Where a frame of `len` payload bytes goes if written at `tail`:
    /// `(pad, start)`, where `pad` bytes of padding come first when the frame
    /// does not fit before the end of the data area, and `start` is the
    /// frame's position. The frame ends at `start + frame_size(len)`.
    #[inline]
    fn place(&self, tail: u64, len: u64) -> (u64, u64) {
        let need = layout::frame_size(len);
        let contiguous = self.capacity() - self.offset(tail);
        if need <= contiguous {
            (0, tail)
        } else {
            (contiguous, tail + contiguous)
        }
    }

    /// Reads the frame at `pos`, given that `available` bytes from `pos` on
    /// are committed. Trusts nothing in the word.
    #[inline]
    fn parse(&self, pos: u64, available: u64) -> Result<Parsed, Corruption> {
        // ORDERING(word-publish): Acquire; pairs with the producer's Release
        // store of the word (the publication: an mpsc frame's word, an spsc
        // publication's deferred word), and is the re-check (S4) of the
        // wake-up handshake. Words an spsc producer stored Relaxed are
        // ordered before the deferred word it stores last.
        let word = self.word(pos).load(Acquire);
        self.parse_word(pos, word, available)
    }

    /// As [`parse`](FramedMem::parse), for a frame word already read (or
    /// about to be stored) at `pos`.
    #[inline]
    fn parse_word(&self, pos: u64, word: u64, available: u64) -> Result<Parsed, Corruption> {
        debug_assert!(available > 0);
        let off = self.offset(pos);
        match frame_word::decode(word) {
            frame_word::Decoded::Pad => {
                let skip = self.capacity() - off;
                if skip > available {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: skip,
                        available,
                    });
                }
                Ok(Parsed::Pad { skip })
            }
            frame_word::Decoded::Data(len) => {
                let len = u64::from(len);
                if len > self.max_frame() {
                    return Err(Corruption::FrameTooLong {
                        pos,
                        len,
                        max: self.max_frame(),
                    });
                }
                let size = layout::frame_size(len);
                let room = available.min(self.capacity() - off);
                if size > room {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: size,
                        available: room,
                    });
                }
                Ok(Parsed::Data {
                    payload: off + layout::FRAME_HEADER,
                    len,
                    size,
                })
            }
            frame_word::Decoded::Skip(body) => {
                let skip = layout::FRAME_HEADER + u64::from(body);
                let room = available.min(self.capacity() - off);
                if body as u64 % layout::FRAME_ALIGN != 0 {
                    return Err(Corruption::FrameWord { pos, word });
                }
                if skip > room {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: skip,
                        available: room,
                    });
                }
                Ok(Parsed::Pad { skip })
            }
            frame_word::Decoded::Empty => Ok(Parsed::NotReady),
            frame_word::Decoded::Invalid => Err(Corruption::FrameWord { pos, word }),
        }
    }

    /// Checks a cursor pair read from the header against the invariant
    /// `head <= tail <= head + capacity`, both multiples of 8.
    fn check_cursors(&self, head: u64, tail: u64) -> Result<(), Corruption> {
        for cursor in [head, tail] {
            check_range(cursor)?;
            if cursor % layout::FRAME_ALIGN != 0 {
                return Err(Corruption::MisalignedCursor { cursor });
            }
        }
        if head > tail || tail - head > self.capacity() {
            return Err(Corruption::Cursors {
                head,
                tail,
                capacity: self.capacity(),
            });
        }
        Ok(())
    }
}

impl FramedMem for RawRing {
    type W64 = AtomicU64;

    #[inline]
    fn head(&self) -> &AtomicU64 {
        &self.blocks.consumer().head
    }

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.blocks.producer().tail
    }

    /// The frame word at position `pos` (a multiple of 8).
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        let off = self.offset(pos);
        debug_assert_eq!(off % 8, 0, "frame positions are 8-byte aligned");
        // SAFETY: `off` is masked below `capacity`, so the pointer stays
        // inside the data area.
        let p = unsafe { self.data.add(off as usize) }.cast::<AtomicU64>();
        // SAFETY: `off` is a multiple of 8 (callers only pass validated,
        // aligned positions; the debug_assert guards it) and below
        // `capacity`, itself a multiple of 8, so the 8 bytes at `off` lie
        // inside the 8-byte aligned data area; atomics tolerate concurrent
        // access from other processes.
        unsafe { p.as_ref() }
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    #[inline]
    fn max_frame(&self) -> u64 {
        self.max_frame
    }

    fn records(&self) -> u64 {
        layout::ATTACH_SLOTS
    }

    fn claim(&self, i: u64) -> &AtomicU64 {
        &self.blocks.record(i).claim
    }

    fn claim_end(&self, i: u64) -> &AtomicU64 {
        &self.blocks.record(i).claim_end
    }

    fn is_alive(&self, i: u64) -> bool {
        self.blocks.is_alive(i)
    }

    fn pending(&self) -> &AtomicU64 {
        &self.blocks.roles().roles[layout::Role::Consumer.index()].pending
    }

    fn deferred_at(&self) -> &AtomicU64 {
        &self.blocks.producer().deferred_at
    }

    fn deferred_word(&self) -> &AtomicU64 {
        &self.blocks.producer().deferred_word
    }

    fn producer_alive(&self) -> bool {
        self.blocks.role_held(layout::Role::Producer)
    }

    #[inline]
    fn released_frames(&self) -> &AtomicU64 {
        &self.blocks.consumer().released_frames
    }

    fn count_recovery(&self) {
        self.blocks.count_recovery();
    }

    fn zero(&self, from: u64, to: u64) {
        let mut pos = from;
        while pos < to {
            let off = self.offset(pos);
            let n = (to - pos).min(self.capacity - off);
            // SAFETY: `off + n <= capacity` by construction of `n`.
            let p = unsafe { self.bytes(off, n) };
            // SAFETY: the caller owns `[from, to)` (read, not yet released):
            // no producer writes it until the head store that follows.
            unsafe { p.as_ptr().write_bytes(0, n as usize) };
            pos += n;
        }
    }
}

/// The consumer of a framed ring (spsc or mpsc): where it reads, what it has
/// handed back, and its cached view of the producers' cursor.
///
/// In both framed flavours a frame is published by a Release store of a
/// frame word, and `tail` may run ahead of what is published: a zero word
/// means "not ready yet". They differ in how a word of the next lap comes
/// to read zero, selected by `multi_producer`: the mpsc consumer zeroes
/// what it releases; the spsc producer writes a zero terminator word after
/// each frame before it publishes the frame (see `flavour::spsc`).
#[derive(Debug)]
pub struct ReadCursor {
    /// Next position to read (past any padding already skipped).
    pub read: u64,
    /// Head as last stored to the header; `released <= read`.
    pub released: u64,
    /// Last tail we read; the producers may be further along.
    pub cached_tail: u64,
    /// MPSC: released space is zeroed.
    pub multi_producer: bool,
    /// Since when the consumer is held at `read` by an unpublished claim.
    pub held: Held,
    /// Messages consumed since the last release (for `released_frames`).
    pub consumed: u64,
    /// Read-ahead: while `Some(p)`, frames are released only up to `p`
    /// (a frame end the user has let go of), however far `read` is.
    pub hold: Option<u64>,
    /// Lazy release: [`release`](ReadCursor::release) stores `head` only
    /// once this many messages were consumed since the last store, or
    /// [`lazy_bytes`](ReadCursor::lazy_bytes) bytes; [`flush`]
    /// (ReadCursor::flush) always stores it. 0 or 1: every release stores.
    pub lazy: u64,
    /// Lazy release: the bytes consumed that make a release store `head`
    /// whatever the count (a quarter of the ring when set through
    /// [`set_lazy`](ReadCursor::set_lazy)).
    pub lazy_bytes: u64,
    /// Loom models only: a deliberate breakage (see [`Sabotage`]).
    #[cfg(loom)]
    pub(crate) sabotage: Sabotage,
}

impl ReadCursor {
    /// The cursor of a consumer that has just claimed its role: at the last
    /// released frame. The head is ours now; tail is read after it, so a
    /// correct ring satisfies the invariant whatever the producers do.
    ///
    /// For mpsc, a release that a dead consumer left half done (its
    /// `pending` word is past `head`: it had read those frames and was
    /// zeroing them) is finished first: zeroed again (zeroing is
    /// idempotent, and no producer writes below the unmoved `head`) and
    /// published. So the zeroed words a killed release leaves at `head`
    /// are never read as unpublished claims.
    pub fn attach<M: FramedMem>(m: &M, multi_producer: bool) -> Result<ReadCursor, Corruption> {
        // ORDERING: Acquire; `head` was last stored (Release) by the
        // previous consumer, whose releases we continue.
        let mut head = m.head().load(Acquire);
        // ORDERING(tail-publish): Acquire; pairs with the producers'
        // Release tail store (spsc) or claim CAS (mpsc).
        let tail = m.tail().load(Acquire);
        m.check_cursors(head, tail)?;
        if multi_producer {
            // ORDERING: Acquire; the dead consumer's last word, ordered by
            // the role lock's hand-over (it is dead before we hold the
            // role) and paired with its Release store for good measure.
            let pending = m.pending().load(Acquire);
            if pending != 0 {
                let valid = pending > head
                    && pending <= tail
                    && pending % layout::FRAME_ALIGN == 0
                    && pending - head <= m.capacity();
                if valid {
                    m.zero(head, pending);
                    // ORDERING(head-release): Release, as in `release_frames`.
                    m.head().store(pending, Release);
                    m.count_recovery();
                    head = pending;
                }
                // ORDERING: Relaxed; only consumers read it, one at a time.
                m.pending().store(0, Relaxed);
            }
        }
        Ok(ReadCursor {
            read: head,
            released: head,
            cached_tail: tail,
            multi_producer,
            held: Held::default(),
            consumed: 0,
            hold: None,
            lazy: 0,
            lazy_bytes: 0,
            #[cfg(loom)]
            sabotage: Sabotage::None,
        })
    }

    /// Lazy release: hand space back every `frames` messages, or every
    /// quarter of the ring, whichever comes first, instead of after each;
    /// 0 or 1 hands it back after each message.
    pub fn set_lazy<M: FramedMem>(&mut self, m: &M, frames: u32) {
        self.lazy = u64::from(frames);
        self.lazy_bytes = (m.capacity() / 4).max(layout::FRAME_ALIGN);
    }

    /// Locates the frame at `read`, skipping padding and skip records.
    #[inline(always)]
    pub fn next<M: FramedMem>(&mut self, m: &M) -> Result<Option<Located>, Corruption> {
        #[cfg(loom)]
        let sabotage = self.sabotage;
        #[cfg(not(loom))]
        let sabotage = Sabotage::None;
        locate(
            m,
            &mut self.read,
            self.released,
            &mut self.cached_tail,
            sabotage,
        )
    }

    /// The payload of a located frame and its length.
    ///
    /// # Safety
    ///
    /// `f` came from [`next`](ReadCursor::next) on this ring and has not
    /// been released.
    #[inline(always)]
    pub unsafe fn payload(m: &RawRing, f: &Located) -> (NonNull<u8>, usize) {
        // SAFETY: `locate` checked `payload + len <= capacity`; the frame is
        // published and unreleased (the caller's contract).
        (unsafe { m.bytes(f.payload, f.len) }, f.len as usize)
    }

    /// Marks a located frame as read; its space is handed back by
    /// [`release`](ReadCursor::release).
    #[inline(always)]
    pub fn consume(&mut self, f: &Located) {
        self.read = f.next;
        self.consumed += 1;
    }

    /// Makes a consumed but unreleased frame, and every frame after it, the
    /// next to be read again: moves the read position back to its frame
    /// word. Touches only this consumer's private state (nothing past
    /// `released` has been handed back, so the frames are still there).
    /// `count` is how many consumed messages that gives back (`f` and the
    /// ones consumed after it).
    pub fn put_back(&mut self, f: &Located, count: u64) {
        debug_assert!(self.released <= f.at && f.at <= self.read);
        debug_assert!(count <= self.consumed);
        self.read = f.at;
        self.consumed -= count;
    }

    /// As [`next`](ReadCursor::next); when the cursor is held by a frame not
    /// yet published, and has been for the grace period, asks `recover`
    /// (the flavour's completion of a dead producer's frame, `Ok(true)`
    /// when it moved the ring) and looks again.
    #[inline(always)]
    pub fn next_recovering<M: FramedMem>(
        &mut self,
        m: &M,
        recover: impl FnOnce(&M, u64) -> Result<bool, Corruption>,
    ) -> Result<Option<Located>, Corruption> {
        let got = self.next(m)?;
        if got.is_none()
            && let Some(pos) = self.stuck_at()
            && self.held.due(pos)
            && recover(m, pos)?
        {
            return self.next(m);
        }
        Ok(got)
    }

    /// As [`next_recovering`](ReadCursor::next_recovering)'s `recover`, at
    /// once (no grace period), for when every producer is known gone.
    pub fn recover_now<M: FramedMem>(
        &self,
        m: &M,
        recover: impl FnOnce(&M, u64) -> Result<bool, Corruption>,
    ) -> Result<bool, Corruption> {
        match self.stuck_at() {
            Some(pos) => recover(m, pos),
            None => Ok(false),
        }
    }

    /// Where the consumer is held up by a frame not yet published (an mpsc
    /// claim, or an spsc publication's deferred word): the read position,
    /// when it is below the producers' cursor.
    pub fn stuck_at(&self) -> Option<u64> {
        (self.read < self.cached_tail).then_some(self.read)
    }

    /// Hands everything read so far back to the producers; `false` if there
    /// was nothing to hand back. Under lazy release
    /// ([`set_lazy`](ReadCursor::set_lazy)) it does so only once enough was
    /// consumed; the caller [`flush`](ReadCursor::flush)es before it
    /// reports the ring empty, sleeps or detaches.
    #[inline(always)]
    pub fn release<M: FramedMem>(&mut self, m: &M) -> bool {
        if self.lazy > 1 && self.consumed < self.lazy && self.read - self.released < self.lazy_bytes
        {
            return false;
        }
        self.flush(m)
    }

    /// Hands everything read so far back to the producers, lazy or not;
    /// `false` if there was nothing to hand back.
    #[inline(always)]
    pub fn flush<M: FramedMem>(&mut self, m: &M) -> bool {
        let to = match self.hold {
            None => self.read,
            Some(p) => p.min(self.read),
        };
        if to <= self.released {
            return false;
        }
        // Frames handed back: all consumed ones, or, when read-ahead holds
        // some back, the data frames up to `to` (they were read, and stay
        // unreleased until now, so their words are intact to count).
        let handed = if to == self.read {
            std::mem::take(&mut self.consumed)
        } else {
            let n = data_frames(m, self.released, to).min(self.consumed);
            self.consumed -= n;
            n
        };
        release_frames(m, &mut self.released, to, self.multi_producer);
        let n = m.released_frames();
        // ORDERING: Relaxed, both: a statistic only this consumer writes.
        n.store(n.load(Relaxed) + handed, Relaxed);
        true
    }

    /// Read-ahead: from now on, [`release`](ReadCursor::release) hands back
    /// nothing past what [`release_to`](ReadCursor::release_to) allowed.
    pub fn hold(&mut self) {
        self.hold.get_or_insert(self.released);
    }

    /// Read-ahead: hands back every frame up to `end`, a frame's end
    /// ([`Located::next`]) this consumer has read; stops holding once
    /// everything read is handed back. `end` is clamped to what was read.
    pub fn release_to<M: FramedMem>(&mut self, m: &M, end: u64) -> bool {
        let p = self.hold.map_or(end, |h| h.max(end)).min(self.read);
        self.hold = (p < self.read).then_some(p);
        self.flush(m)
    }

    /// Bytes committed (or, for mpsc, claimed) and not yet read.
    pub fn waiting<M: FramedMem>(&self, m: &M) -> u64 {
        // ORDERING: Relaxed; a hint only, no data is read on its basis.
        m.tail().load(Relaxed).saturating_sub(self.read)
    }

    /// Whether no committed data frame is waiting: padding, skip records
    /// (aborted or shortened mpsc claims) and unpublished claims do not
    /// count. Reads the frame words from `read` on, and the producers'
    /// cursor only when the cached one shows nothing, so a spin loop on it
    /// does not pull their cache line across cores while frames wait.
    pub fn is_empty<M: FramedMem>(&self, m: &M) -> bool {
        let mut pos = self.read;
        let mut tail = self.cached_tail;
        loop {
            if pos >= tail {
                // ORDERING(tail-publish): Acquire, as in `locate`.
                let now = m.tail().load(Acquire);
                if now <= pos {
                    return true;
                }
                tail = now;
            }
            match m.parse(pos, tail - pos) {
                Ok(Parsed::Pad { skip }) => pos += skip,
                Ok(Parsed::NotReady) => return true,
                // A frame, or something `try_recv` will report.
                Ok(Parsed::Data { .. }) | Err(_) => return false,
            }
        }
    }
}

/// A frame located by [`locate`].
#[derive(Debug, Clone, Copy)]
pub struct Located {
    /// Position of the frame word (past any padding before it).
    pub at: u64,
    /// Data-area offset of the payload.
    pub payload: u64,
    /// Payload length.
    pub len: u64,
    /// Position just past the frame.
    pub next: u64,
}

/// Finds the frame at `*read`, skipping padding (which advances `*read`).
///
/// A caught-up consumer polls the frame word at `*read` first and reads
/// the producers' cursor only when that word is still zero, so a frame and
/// its "ready" mark reach it in one cache-line transfer, and its polling
/// leaves the producers' cursor line alone (Aeron's ring buffers poll the
/// same way). This is sound because the word at a frame boundary of the
/// current lap reads zero until a producer publishes it: the mpsc consumer
/// zeroes every word it releases, and `*read` is less than one lap past
/// `released` (the lap guard), so its word was released, not held by this
/// consumer; the spsc producer zeroes the word after each frame before it
/// publishes the frame, and never lets `tail` come within 8 bytes of a
/// lap past `head`.
#[inline(always)]
pub(crate) fn locate<M: FramedMem>(
    raw: &M,
    read: &mut u64,
    released: u64,
    cached_tail: &mut u64,
    sabotage: Sabotage,
) -> Result<Option<Located>, Corruption> {
    let start = *read;
    let found = locate_from(raw, read, released, cached_tail, sabotage);
    if found.is_err() {
        // Nothing past a corrupt stretch is consumed, not even the padding
        // skipped on the way to it: a release after the error stores no
        // `head` past what a sound ring's `tail` covers.
        *read = start;
    }
    found
}

#[inline(always)]
fn locate_from<M: FramedMem>(
    raw: &M,
    read: &mut u64,
    released: u64,
    cached_tail: &mut u64,
    sabotage: Sabotage,
) -> Result<Option<Located>, Corruption> {
    loop {
        // Word first (MPSC, caught up): the frame word at `*read` is
        // parsed before the producers' cursor is read. The lap guard: a
        // consumer that holds a whole ring (read-ahead) would find its own
        // oldest unreleased frame word there.
        // Not word first at the first byte of a lap that `cached_tail` does
        // not reach: `tail` is read there and must not lie behind `*read` (a
        // sound ring's `tail` covers every word published), so words
        // tampered with (a padding or frame word over a terminator) cannot
        // send the consumer round the stale laps for ever, at the price of
        // one load per lap.
        let word_first = *read >= *cached_tail
            && (*read - released < raw.capacity() || sabotage == Sabotage::NoLapGuard)
            && !(*read > *cached_tail && raw.offset(*read) == 0);
        if *read >= *cached_tail && !word_first && !refresh_tail(raw, *read, released, cached_tail)?
        {
            return Ok(None);
        }
        // `parse`'s Acquire load is the publication (ORDERING(word-publish));
        // word first, the frame may reach as far as the producers may
        // write, one lap past `released`.
        let available = if word_first {
            released + raw.capacity() - *read
        } else {
            *cached_tail - *read
        };
        match raw.parse(*read, available)? {
            Parsed::Data { payload, len, size } => {
                return Ok(Some(Located {
                    at: *read,
                    payload,
                    len,
                    next: *read + size,
                }));
            }
            Parsed::Pad { skip } => *read += skip,
            // Nothing published at `*read` yet: ask the producers' cursor
            // (and parse again below it, now that it is fresh).
            Parsed::NotReady if word_first => {
                if !refresh_tail(raw, *read, released, cached_tail)? {
                    return Ok(None);
                }
            }
            // Claimed (mpsc) or committed (spsc) by a producer that has
            // not published it yet: `stuck_at` says where, and recovery
            // takes over if that producer is dead.
            Parsed::NotReady => return Ok(None),
        }
    }
}

/// Re-reads the producers' cursor into `cached_tail`; `false` when nothing
/// lies past `read`.
#[inline(always)]
fn refresh_tail<M: FramedMem>(
    raw: &M,
    read: u64,
    released: u64,
    cached_tail: &mut u64,
) -> Result<bool, Corruption> {
    // ORDERING(tail-publish): Acquire; pairs with the Release tail store in
    // `spsc::publish` or the claim CAS (mpsc). It publishes no frame (each
    // frame word's own Release store does; see `FramedMem::parse`), but it
    // is read after a zero word, as the re-check (S4) of the wake-up
    // handshake in `wait::block`, and it says whether `read` is held.
    let tail = raw.tail().load(Acquire);
    // (Every word the consumer took ahead of its cached tail was published
    // after the tail store or claim CAS that covers it, and the Acquire
    // load of the word orders that store before this load: a tail below
    // `read` is a cursor gone back.)
    if tail < *cached_tail || tail < read {
        return Err(Corruption::CursorRegressed {
            seen: (*cached_tail).max(read),
            found: tail,
        });
    }
    raw.check_cursors(released, tail)?;
    *cached_tail = tail;
    Ok(read < tail)
}

/// A deliberate breakage of the consumer's protocol, for the loom models
/// that show it is caught; always `None` outside them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Sabotage {
    #[default]
    None,
    /// MPSC: poll the frame word at `read` even when the consumer holds a
    /// whole lap unreleased.
    #[cfg_attr(not(loom), allow(dead_code))]
    NoLapGuard,
}

/// Hands `[*released, pos)` back to the producers: zeroed first for MPSC (so
/// every frame word of the next lap reads "not ready" until published),
/// then one Release store of `head`.
///
/// The zeroing is announced first in the consumer role record's `pending`
/// word and withdrawn after the `head` store: a consumer killed while
/// zeroing leaves `pending > head`, and the next consumer finishes the
/// release before reading anything (`ReadCursor::attach`).
#[inline(always)]
pub(crate) fn release_frames<M: FramedMem>(m: &M, released: &mut u64, pos: u64, multi: bool) {
    debug_assert!(pos >= *released);
    if multi {
        // ORDERING: Release; read (Acquire) only by a later consumer, after
        // we are gone.
        m.pending().store(pos, Release);
        let first = pos.min(*released + layout::FRAME_ALIGN);
        m.zero(*released, first);
        crate::testing::point("mpsc-zeroing");
        m.zero(first, pos);
    }
    // ORDERING(head-release): Release; pairs with the producers' Acquire
    // head load, so our reads of the released bytes (and the zeroing)
    // finish before a producer reuses them. It is W1 of the wake-up
    // handshake; the caller's `notify` fences before reading the sleepers.
    m.head().store(pos, Release);
    if multi {
        // ORDERING: Relaxed; `pending <= head` already reads as "none".
        m.pending().store(0, Relaxed);
    }
    *released = pos;
}

/// How many data frames lie in `[from, to)`, a stretch this consumer has
/// read and not released (so every word in it is a published frame or a
/// padding or skip record). Stops at anything else.
fn data_frames<M: FramedMem>(m: &M, from: u64, to: u64) -> u64 {
    let (mut pos, mut n) = (from, 0);
    while pos < to {
        match m.parse(pos, to - pos) {
            Ok(Parsed::Data { size, .. }) => {
                n += 1;
                pos += size;
            }
            Ok(Parsed::Pad { skip }) => pos += skip,
            _ => break,
        }
    }
    n
}

/// Withdraws a dead party's completed claim from its record, unless the
/// record has changed since (a new holder's claim is left alone).
pub(crate) fn clear_claim<W: Word64>(claim: &W, seen: u64) {
    // ORDERING: Relaxed; the claim is complete, whoever reads the record.
    while claim.load(Relaxed) == seen {
        if claim.cas_weak(seen, 0, Relaxed, Relaxed).is_ok() {
            break;
        }
    }
}

/// How long a party is held at one position before it asks the lock table
/// whether the claim holding it belongs to a dead party: short enough that
/// recovery lands well within a second, long enough that a live claimant
/// mid-write is not asked about on every poll.
pub(crate) const RECOVERY_GRACE: std::time::Duration = std::time::Duration::from_millis(10);

/// When a party was first held at its current position, so that recovery
/// scans run at most once per [`RECOVERY_GRACE`] while it stays held.
#[derive(Debug, Default)]
pub struct Held {
    pos: u64,
    since: Option<std::time::Instant>,
}

impl Held {
    /// Whether the party, held at `pos`, is due for a recovery scan: held
    /// there for at least the grace period since the last scan.
    pub fn due(&mut self, pos: u64) -> bool {
        let now = std::time::Instant::now();
        match self.since {
            Some(t) if self.pos == pos => {
                let due = now.duration_since(t) >= RECOVERY_GRACE;
                if due {
                    self.since = Some(now);
                }
                due
            }
            _ => {
                self.pos = pos;
                self.since = Some(now);
                false
            }
        }
    }
}

/// Refuses a cursor at or beyond [`layout::MAX_CURSOR`], so that cursor
/// arithmetic can never overflow.
#[inline]
pub(crate) fn check_range(cursor: u64) -> Result<u64, Corruption> {
    if cursor >= layout::MAX_CURSOR {
        return Err(Corruption::CursorOutOfRange { cursor });
    }
    Ok(cursor)
}

/// What [`FramedMem::parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A data frame: payload at data offset `payload`, `len` bytes; the
    /// whole frame takes `size` bytes.
    Data { payload: u64, len: u64, size: u64 },
    /// A padding or skip record: `skip` bytes that carry no frame.
    Pad { skip: u64 },
    /// A zero word: nothing published here yet.
    NotReady,
}

/// A framed ring on the heap for the loom models of the spsc and mpsc
/// protocols: a 64-byte data area with one loom atomic per 8-byte word
/// (frame words) and one loom cell per word for payloads, so a missing
/// happens-before between writing a payload and reading it is reported.
#[cfg(all(test, loom))]
pub(crate) mod loom_heap {
    use super::*;
    use crate::layout::default_max_frame;
    use loom::cell::UnsafeCell;
    use loom::sync::atomic::AtomicU64 as L64;

    pub const CAP: u64 = 64;

    /// Attachment records in the models.
    pub const RECORDS: u64 = 3;

    pub struct Heap {
        head: L64,
        tail: L64,
        words: Vec<L64>,
        cells: Vec<UnsafeCell<u64>>,
        claims: Vec<(L64, L64)>,
        alive: Vec<loom::sync::atomic::AtomicBool>,
        pending: L64,
        released_frames: L64,
        pub recoveries: L64,
        deferred_at: L64,
        deferred_word: L64,
    }

    impl Heap {
        pub fn new() -> Self {
            Heap {
                head: L64::new(0),
                tail: L64::new(0),
                words: (0..CAP / 8).map(|_| L64::new(0)).collect(),
                cells: (0..CAP / 8).map(|_| UnsafeCell::new(0)).collect(),
                claims: (0..RECORDS).map(|_| (L64::new(0), L64::new(0))).collect(),
                alive: (0..RECORDS)
                    .map(|_| loom::sync::atomic::AtomicBool::new(true))
                    .collect(),
                pending: L64::new(0),
                released_frames: L64::new(0),
                recoveries: L64::new(0),
                deferred_at: L64::new(0),
                deferred_word: L64::new(0),
            }
        }

        /// The party holding record `i` stops for ever: from now on the
        /// (model's) lock table says so.
        pub fn kill(&self, i: u64) {
            self.alive[i as usize].store(false, std::sync::atomic::Ordering::SeqCst);
        }

        /// A new party takes record `i` (its role) after its holder died.
        pub fn revive(&self, i: u64) {
            self.alive[i as usize].store(true, std::sync::atomic::Ordering::SeqCst);
        }

        /// Writes `v` as the first payload word of the frame at `start`.
        pub fn write_payload(&self, start: u64, v: u64) {
            let i = (self.offset(start) / 8 + 1) as usize;
            // SAFETY: the protocol gives the producer this word until it
            // publishes; loom checks exactly that.
            self.cells[i].with_mut(|p| unsafe { *p = v });
        }

        pub fn read_payload(&self, f: Located) -> u64 {
            let i = (f.payload / 8) as usize;
            // SAFETY: located and not yet released; loom checks it.
            self.cells[i].with(|p| unsafe { *p })
        }
    }

    impl FramedMem for Heap {
        type W64 = L64;
        fn head(&self) -> &L64 {
            &self.head
        }
        fn tail(&self) -> &L64 {
            &self.tail
        }
        fn word(&self, pos: u64) -> &L64 {
            &self.words[(self.offset(pos) / 8) as usize]
        }
        fn capacity(&self) -> u64 {
            CAP
        }
        fn max_frame(&self) -> u64 {
            default_max_frame(CAP)
        }
        fn records(&self) -> u64 {
            RECORDS
        }
        fn claim(&self, i: u64) -> &L64 {
            &self.claims[i as usize].0
        }
        fn claim_end(&self, i: u64) -> &L64 {
            &self.claims[i as usize].1
        }
        fn is_alive(&self, i: u64) -> bool {
            self.alive[i as usize].load(std::sync::atomic::Ordering::SeqCst)
        }
        fn released_frames(&self) -> &L64 {
            &self.released_frames
        }
        fn pending(&self) -> &L64 {
            &self.pending
        }
        fn count_recovery(&self) {
            self.recoveries.fetch_add(1, Relaxed);
        }
        fn deferred_at(&self) -> &L64 {
            &self.deferred_at
        }
        fn deferred_word(&self) -> &L64 {
            &self.deferred_word
        }
        /// The spsc models' producer holds record 0.
        fn producer_alive(&self) -> bool {
            self.is_alive(0)
        }
        fn zero(&self, from: u64, to: u64) {
            let mut pos = from;
            while pos < to {
                self.word(pos).store(0, Relaxed);
                let i = (self.offset(pos) / 8) as usize;
                // SAFETY: the consumer owns [from, to) until its head store.
                self.cells[i].with_mut(|p| unsafe { *p = 0 });
                pos += 8;
            }
        }
    }

    /// The consumer's side, on the ring's own `ReadCursor`: one attempt,
    /// releasing what it took.
    pub struct Reader(pub ReadCursor);

    impl Reader {
        pub fn new(multi: bool) -> Self {
            Reader(ReadCursor {
                read: 0,
                released: 0,
                cached_tail: 0,
                multi_producer: multi,
                held: Held::default(),
                consumed: 0,
                hold: None,
                lazy: 0,
                lazy_bytes: 0,
                sabotage: Sabotage::None,
            })
        }

        pub fn try_recv(&mut self, m: &Heap) -> Option<u64> {
            let got = self.0.next(m).unwrap();
            let v = got.map(|f| {
                let v = m.read_payload(f);
                self.0.read = f.next;
                v
            });
            self.0.release(m);
            v
        }

        pub fn drain(&mut self, m: &Heap, got: &mut Vec<u64>) {
            while let Some(v) = self.try_recv(m) {
                got.push(v);
            }
        }
    }

    /// Runs a model with the preemption bound the framed models use.
    pub fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Kind;

    /// A heap-backed ring for unit tests: the core does not care where its
    /// memory lives.
    struct Heap {
        _area: Vec<u128>,
        _data: Vec<u64>,
        raw: RawRing,
    }

    fn heap(capacity: u64) -> Heap {
        // The header and attachment table, zeroed, 16-byte aligned words;
        // over-allocated so the area can start 128-byte aligned.
        let mut area = vec![0u128; (layout::DATA_OFFSET as usize + 128) / 16];
        let mut data = vec![0u64; (capacity / 8) as usize];
        let geo = Geometry {
            kind: Kind::Spsc,
            capacity,
            max_frame: layout::default_max_frame(capacity),
            slot_count: 0,
            ring_id: [1, 0],
        };
        let base = area.as_mut_ptr().cast::<u8>();
        let pad = base.align_offset(128);
        // SAFETY: `pad < 128` and the allocation has 128 spare bytes.
        let start = NonNull::new(unsafe { base.add(pad) }).unwrap();
        // SAFETY: DATA_OFFSET zeroed bytes from `start`, 128-byte aligned,
        // kept alive in `Heap` beside the RawRing (a Vec's heap buffer does
        // not move).
        let blocks = unsafe { Blocks::in_area(start) };
        // SAFETY: both allocations live in `Heap` next to the RawRing and
        // are never moved (Vec keeps its heap addresses).
        let raw =
            unsafe { RawRing::new(blocks, NonNull::new(data.as_mut_ptr().cast()).unwrap(), geo) };
        Heap {
            _area: area,
            _data: data,
            raw,
        }
    }

    #[test]
    fn placement_pads_only_when_needed() {
        let h = heap(64);
        let r = h.raw;
        assert_eq!(r.place(0, 24), (0, 0));
        assert_eq!(r.place(32, 24), (0, 32)); // 32 + 32 == 64: fits exactly
        assert_eq!(r.place(40, 24), (24, 64)); // pads the last 24 bytes
        assert_eq!(r.place(64 + 56, 0), (0, 120)); // an empty frame fits in 8
    }

    #[test]
    fn parse_rejects_what_a_correct_producer_never_writes() {
        let h = heap(64);
        let r = h.raw;
        use std::sync::atomic::Ordering::Relaxed;
        r.word(0).store(frame_word::data(5), Relaxed);
        assert_eq!(
            r.parse(0, 16),
            Ok(Parsed::Data {
                payload: 8,
                len: 5,
                size: 16
            })
        );
        // Committed bytes shorter than the frame.
        assert!(matches!(
            r.parse(0, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        // Longer than max_frame (24 for a 64-byte ring).
        r.word(0).store(frame_word::data(25), Relaxed);
        assert!(matches!(
            r.parse(0, 64),
            Err(Corruption::FrameTooLong { len: 25, .. })
        ));
        // A frame that would run past the end of the data area.
        r.word(48).store(frame_word::data(16), Relaxed);
        assert!(matches!(
            r.parse(48, 64),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(48).store(frame_word::PAD, Relaxed);
        assert_eq!(r.parse(48, 16), Ok(Parsed::Pad { skip: 16 }));
        assert!(matches!(
            r.parse(48, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(0).store(frame_word::skip(8), Relaxed);
        assert_eq!(r.parse(0, 16), Ok(Parsed::Pad { skip: 16 }));
        assert!(matches!(
            r.parse(0, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(0).store(frame_word::skip(4), Relaxed);
        assert!(matches!(r.parse(0, 16), Err(Corruption::FrameWord { .. })));
        r.word(8).store(0xdead_beef, Relaxed);
        assert!(matches!(r.parse(8, 8), Err(Corruption::FrameWord { .. })));
        r.word(16).store(0, Relaxed);
        assert_eq!(r.parse(16, 8), Ok(Parsed::NotReady));
    }

    #[test]
    fn cursor_invariant() {
        let h = heap(64);
        let r = h.raw;
        assert!(r.check_cursors(0, 0).is_ok());
        assert!(r.check_cursors(8, 72).is_ok());
        assert!(matches!(
            r.check_cursors(16, 8),
            Err(Corruption::Cursors { .. })
        ));
        assert!(matches!(
            r.check_cursors(0, 72),
            Err(Corruption::Cursors { .. })
        ));
        assert!(matches!(
            r.check_cursors(3, 8),
            Err(Corruption::MisalignedCursor { cursor: 3 })
        ));
        assert!(matches!(
            r.check_cursors(u64::MAX - 7, u64::MAX - 7),
            Err(Corruption::CursorOutOfRange { .. })
        ));
    }
}
