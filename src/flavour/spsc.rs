//! Single-producer single-consumer framed ring.
//!
//! The algorithm is Lamport's ring with free-running cursors: the producer
//! owns `tail`, the consumer owns `head`, and each keeps a private copy of
//! the other's cursor that it re-reads only when the ring looks full (or
//! empty), as rtrb and every fast SPSC queue do. Both operations are
//! wait-free: a bounded number of steps, no loops that depend on the peer.
//!
//! A frame is an 8-byte frame word (length and check) followed by the
//! payload, padded to 8 bytes. A frame never wraps: when it does not fit
//! before the end of the data area, a padding record fills the rest and the
//! frame starts at offset 0.
//!
//! **Publication.** The consumer polls the frame word at its read position
//! and reads `tail` only when that word is zero, so a caught-up consumer
//! receives a small frame and its "ready" mark in one cache-line transfer
//! (as the mpsc consumer, and Aeron's ring buffers, do). For that, the word
//! at the end of the last published frame must read zero until the next
//! frame is published, whatever the previous lap left there: the producer
//! writes a zero **terminator** word after each frame before it publishes
//! the frame, and keeps 8 bytes free beyond it (`tail` never comes within 8
//! bytes of `head + capacity`). A publication (one frame, or a batch
//! written with [`Producer::batch`](crate::Producer::batch)) writes every
//! payload, terminator and frame word except the **first** (the first
//! frame's word, or the padding word before it), records that deferred
//! word in the header (`deferred_at`, `deferred_word`), stores `tail`
//! (Release), and stores the deferred word last (Release): the consumer
//! sees all of the publication's frames, or none, and never reads past
//! `tail`, so `head <= tail` holds as in Lamport's ring.
//!
//! **Crash recovery.** A producer killed between its `tail` store and its
//! deferred word's store leaves committed frames the consumer cannot see:
//! the word at its read position stays zero below `tail`. The next producer
//! stores the recorded word when it attaches; a consumer held there stores
//! it itself once the producer role is free (the OS lock table says so),
//! so every frame whose `tail` store happened is delivered.
//!
//! ```
//! use mmring::{Config, spsc};
//! # fn main() -> Result<(), mmring::Error> {
//! let ring = spsc::Ring::anonymous(Config::new(4096))?;
//! let mut tx = ring.producer()?;
//! let mut rx = ring.consumer()?;
//!
//! let mut g = tx.try_reserve(64)?;        // WriteGrant: &mut [u8] in the mapping
//! g[..5].copy_from_slice(b"hello");
//! g.commit_len(5);                        // publish 5 bytes
//! tx.send(b"world")?;                     // copying helper
//!
//! assert_eq!(&*rx.recv()?, b"hello");     // ReadGrant: &[u8] in the mapping
//! assert_eq!(&*rx.try_recv()?, b"world"); // dropping the grant releases it
//! # Ok(()) }
//! ```

use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::error::{Corruption, Error};
use crate::layout::{self, Kind, Role, frame_word};
use crate::protocol::sealed::Protocol;
use crate::protocol::{FixedKind, Flavour};
use crate::region::Region;
use crate::ring::{FramedMem, Located, RawRing, ReadCursor};
use crate::words::Word64;

/// The spsc flavour: the type parameter of [`Ring`], [`Producer`] and
/// [`Consumer`] below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spsc {}

/// A single-producer single-consumer ring of variable-length frames in
/// shared memory: at most one live [`Producer`] and one live [`Consumer`]
/// at a time, in any processes. A role whose holder died can be claimed
/// again and resumes where the ring stands.
pub type Ring = crate::Ring<Spsc>;
/// The writing half of an spsc [`Ring`].
pub type Producer = crate::Producer<Spsc>;
/// The reading half of an spsc [`Ring`].
pub type Consumer = crate::Consumer<Spsc>;
/// Space reserved by an spsc [`Producer`]; dropping it uncommitted publishes
/// nothing, and the space is reused by the next reservation.
pub type WriteGrant<'a> = crate::WriteGrant<'a, Spsc>;
/// A frame taken by an spsc [`Consumer`]; dropping it releases the space.
pub type ReadGrant<'a> = crate::ReadGrant<'a, Spsc>;

impl Flavour for Spsc {}

impl FixedKind for Spsc {
    const KIND: Kind = Kind::Spsc;
}

pub(crate) use state::{Claim, Tx};

/// The protocol's per-handle types: public to the sealed trait, unreachable
/// from outside the crate.
mod state {
    /// The producer's private state.
    #[derive(Debug)]
    pub struct Tx {
        /// Committed tail, published or not; only we write the header's copy.
        pub tail: u64,
        /// The tail last stored to the header.
        pub published: u64,
        /// Last head we read; the consumer may be further along.
        pub cached_head: u64,
        /// The unpublished frames' first word, stored last: its position
        /// + 1 (0: nothing written since the last publication) and value.
        pub deferred: (u64, u64),
    }

    /// A reservation: padding (if the frame wraps) then the frame.
    #[derive(Debug, Clone, Copy)]
    pub struct Claim {
        pub pad: u64,
        pub start: u64,
        pub len: u64,
    }
}

impl Protocol for Spsc {
    type Mem = RawRing;
    type Tx = Tx;
    type Rx = ReadCursor;
    type Claim = Claim;
    type Taken = Located;

    fn mem(region: &Region) -> Result<RawRing, Error> {
        Ok(RawRing::of(region)?)
    }

    fn kind(_: &RawRing) -> Kind {
        Kind::Spsc
    }

    fn exclusive(_: &RawRing, _: Role) -> bool {
        true
    }

    fn cursors(m: &RawRing) -> (u64, u64) {
        m.cursors()
    }

    fn max_frame(m: &RawRing) -> u64 {
        m.max_frame()
    }

    fn producer(m: &RawRing, _rec: u64) -> Result<Tx, Corruption> {
        let (tail, head) = resume(m)?;
        Ok(Tx {
            tail,
            published: tail,
            cached_head: head,
            deferred: (0, 0),
        })
    }

    #[inline(always)]
    fn try_claim(m: &RawRing, tx: &mut Tx, len: u64) -> Result<Option<Claim>, Corruption> {
        Ok(
            space(m, tx.tail, &mut tx.cached_head, len)?.map(|(pad, start)| Claim {
                pad,
                start,
                len,
            }),
        )
    }

    #[inline(always)]
    unsafe fn claim_payload(m: &RawRing, c: &Claim) -> NonNull<u8> {
        // SAFETY: `space` placed the frame wholly inside the data area
        // (`offset + 8 + len <= capacity`), in the free region [tail, head +
        // capacity) that only the producer touches until it publishes.
        unsafe { m.bytes(m.offset(c.start) + layout::FRAME_HEADER, c.len) }
    }

    #[inline(always)]
    fn publish(m: &RawRing, tx: &mut Tx, c: Claim, committed: Option<u64>) {
        // An SPSC reservation is private until `tail` moves: giving it back
        // needs no store at all.
        if let Some(n) = committed {
            debug_assert!(n <= c.len);
            tx.tail = write_frame(m, tx.tail, c.pad, c.start, n, &mut tx.deferred);
        }
    }

    #[inline(always)]
    fn flush(m: &RawRing, tx: &mut Tx) -> bool {
        if tx.tail == tx.published {
            return false;
        }
        publish(m, tx.tail, &mut tx.deferred);
        tx.published = tx.tail;
        true
    }

    fn is_full(m: &RawRing, tx: &Tx) -> bool {
        // ORDERING: Relaxed; a snapshot, nothing is read on its basis.
        // Not even an empty frame (8 bytes) and its terminator fit.
        tx.tail - m.head().load(Relaxed).min(tx.tail) + 2 * layout::FRAME_ALIGN > m.capacity()
    }

    fn unreleased(m: &RawRing, tx: &Tx) -> u64 {
        // ORDERING: Relaxed; a hint only.
        tx.tail.saturating_sub(m.head().load(Relaxed))
    }

    fn consumer(m: &RawRing, _rec: u64) -> Result<ReadCursor, Corruption> {
        ReadCursor::attach(m, false)
    }

    /// No spsc party records claims: nothing it claims is ever visible to
    /// another before it publishes.
    fn reusable(_: &RawRing, _: u64) -> bool {
        true
    }

    fn claim_settled(_: &RawRing, _: u64) -> bool {
        true
    }

    #[inline(always)]
    fn try_take(m: &RawRing, rx: &mut ReadCursor) -> Result<Option<Located>, Corruption> {
        rx.next_recovering(m, recover_deferred)
    }

    #[inline(always)]
    unsafe fn taken_payload(m: &RawRing, f: &Located) -> (NonNull<u8>, usize) {
        // SAFETY: the caller's contract is `ReadCursor::payload`'s.
        unsafe { ReadCursor::payload(m, f) }
    }

    #[inline(always)]
    fn consume(_: &RawRing, rx: &mut ReadCursor, f: Located) {
        rx.consume(&f);
    }

    #[inline(always)]
    fn release(m: &RawRing, rx: &mut ReadCursor) -> bool {
        rx.release(m)
    }

    framed_consumer!();

    fn recover_now(m: &RawRing, rx: &mut ReadCursor) -> Result<bool, Corruption> {
        rx.recover_now(m, recover_deferred)
    }

    fn is_empty(m: &RawRing, rx: &ReadCursor) -> bool {
        rx.is_empty(m)
    }

    fn waiting(m: &RawRing, rx: &ReadCursor) -> u64 {
        rx.waiting(m)
    }
}

/// Writes the terminator, the padding word (if any) and the frame word of
/// a frame of `len` bytes at `start` (the payload is already in place), all
/// but the publication's first word, which goes to `deferred`. Returns the
/// new tail; nothing is visible to the consumer until [`publish`].
#[inline(always)]
pub(crate) fn write_frame<M: FramedMem>(
    m: &M,
    tail: u64,
    pad: u64,
    start: u64,
    len: u64,
    deferred: &mut (u64, u64),
) -> u64 {
    let end = start + layout::frame_size(len);
    // The terminator: the word at `end` reads zero (not ready) until the
    // next frame there is published, whatever the previous lap left. `space`
    // kept these 8 bytes free.
    // ORDERING: Relaxed; ordered before the consumer's read of `end` by the
    // Release store of the deferred word in `publish`, or of a later frame
    // word.
    #[cfg(loom)]
    let terminate = !sabotage::NO_TERMINATOR.with(|s| s.get());
    #[cfg(not(loom))]
    let terminate = true;
    if terminate {
        m.word(end).store(0, Relaxed);
    }
    let data = frame_word::data(len as u32);
    let first = if pad > 0 {
        // ORDERING: Relaxed; the padding word (or, if it is the deferred
        // one, its Release store) publishes it.
        m.word(start).store(data, Relaxed);
        (tail, frame_word::PAD)
    } else {
        (start, data)
    };
    if deferred.0 == 0 {
        *deferred = (first.0 + 1, first.1);
    } else {
        // ORDERING: Relaxed; published by the deferred word's Release store
        // in `publish`, which follows it.
        m.word(first.0).store(first.1, Relaxed);
    }
    end
}

/// Publishes every frame written below `tail`: records the deferred word,
/// stores `tail`, then stores the deferred word.
#[inline(always)]
pub(crate) fn publish<M: FramedMem>(m: &M, tail: u64, deferred: &mut (u64, u64)) {
    let (at, word) = std::mem::take(deferred);
    debug_assert!(at != 0, "a publication has a first word");
    #[cfg(loom)]
    let word_before_tail = sabotage::WORD_BEFORE_TAIL.with(|s| s.get());
    #[cfg(not(loom))]
    let word_before_tail = false;
    if word_before_tail {
        store_deferred(m, at, word);
    }
    publish_tail(m, tail, at, word);
    crate::testing::point("spsc-tail-stored");
    if !word_before_tail {
        store_deferred(m, at, word);
    }
}

/// Publication, first steps: records the deferred word (position + 1 `at`,
/// value `word`), then stores `tail`.
#[inline(always)]
pub(crate) fn publish_tail<M: FramedMem>(m: &M, tail: u64, at: u64, word: u64) {
    record_deferred(m, at, word);
    // ORDERING(tail-publish): Release; before the deferred word, so that a
    // consumer that sees any frame of this publication (and may release
    // past it) finds `tail` past it: `head <= tail`. Pairs with the Acquire
    // tail load in `ring::refresh_tail`.
    m.tail().store(tail, Release);
}

/// Records the deferred word (position + 1 `at`, value `word`) for
/// whoever completes a publication its producer died in.
#[inline(always)]
fn record_deferred<M: FramedMem>(m: &M, at: u64, word: u64) {
    // ORDERING: Release, both; pair with the Acquire loads in
    // `recover_deferred` and `resume`, which use them only below a `tail`
    // that this store order places after them.
    m.deferred_word().store(word, Release);
    m.deferred_at().store(at, Release);
}

/// Publication, last step: stores the deferred word.
#[inline(always)]
pub(crate) fn store_deferred<M: FramedMem>(m: &M, at: u64, word: u64) {
    // ORDERING(word-publish): Release; pairs with the consumer's Acquire
    // load of the word in `FramedMem::parse`, making every payload,
    // terminator and frame word written before visible. It is W1 of the
    // wake-up handshake; the caller's `notify` reads the sleepers next.
    m.word(at - 1).store(word, Release);
}

/// The deliberate breakages of the producer's protocol that the loom
/// models show are caught (thread-locals: loom runs a model's threads on
/// the test's own thread).
#[cfg(loom)]
pub(crate) mod sabotage {
    use std::cell::Cell;
    std::thread_local! {
        /// `write_frame` writes no terminator.
        pub static NO_TERMINATOR: Cell<bool> = const { Cell::new(false) };
        /// `publish` stores the deferred word before `tail`.
        pub static WORD_BEFORE_TAIL: Cell<bool> = const { Cell::new(false) };
        /// `resume` leaves a dead producer's deferred word unstored.
        pub static NO_RESUME: Cell<bool> = const { Cell::new(false) };
    }
}

/// A producer taking over the ring: its `(tail, head)`, after completing a
/// publication its dead predecessor left between the `tail` store and the
/// deferred word's store.
pub(crate) fn resume<M: FramedMem>(m: &M) -> Result<(u64, u64), Corruption> {
    // The tail is ours now; head is read after it, so a correct ring
    // satisfies the invariant whatever the consumer is doing.
    // ORDERING(tail-publish): Acquire; the previous producer's Release
    // tail store, whose frames we continue after.
    let tail = m.tail().load(Acquire);
    // ORDERING(head-release): Acquire; pairs with the consumer's Release
    // head store, as in `space`.
    let head = m.head().load(Acquire);
    m.check_cursors(head, tail)?;
    #[cfg(loom)]
    let skip = sabotage::NO_RESUME.with(|s| s.get());
    #[cfg(not(loom))]
    let skip = false;
    if !skip && let Some(at) = deferred_in(m, head, tail) {
        // ORDERING: Acquire; as `deferred_in`'s load of `deferred_at`.
        let word = m.deferred_word().load(Acquire);
        complete_deferred(m, at, word, tail)?;
    }
    Ok((tail, head))
}

/// The position of the recorded deferred word, if it lies in
/// `[head, tail)`: a publication whose `tail` store happened (its word may
/// be stored since).
fn deferred_in<M: FramedMem>(m: &M, head: u64, tail: u64) -> Option<u64> {
    // ORDERING: Acquire; pairs with `record_deferred`'s Release stores.
    let at = m.deferred_at().load(Acquire);
    (at != 0 && head < at && at - 1 < tail).then(|| at - 1)
}

/// For `stat`: the position of a publication's first frame word that lies
/// in `[head, tail)` and is still zero (a producer between its `tail` store
/// and that word's store, or killed there).
pub(crate) fn unpublished<M: FramedMem>(m: &M, head: u64, tail: u64) -> Option<u64> {
    // ORDERING(word-publish): Acquire; diagnostics.
    deferred_in(m, head, tail).filter(|&at| m.word(at).load(Acquire) == 0)
}

/// A consumer held at `read` (a zero frame word below `tail`): if the
/// producer role is free, its last holder died between its `tail` store and
/// its deferred word's store; store that word for it. `Ok(true)` when the
/// word at `read` is no longer zero (look again).
pub(crate) fn recover_deferred<M: FramedMem>(m: &M, read: u64) -> Result<bool, Corruption> {
    if m.producer_alive() {
        // A live producer publishes it (a new one completes a dead one's
        // publication when it attaches, before writing anything).
        return Ok(false);
    }
    // ORDERING: Acquire, both; pair with `publish`'s Release stores, so
    // a record newer than the word we found zero (a producer that attached,
    // completed the publication and published again since) orders that
    // completion before our look at the word below.
    let at = m.deferred_at().load(Acquire);
    let word = m.deferred_word().load(Acquire);
    if at == read + 1 {
        // ORDERING(tail-publish): Acquire; the deferred word lies below it.
        let tail = m.tail().load(Acquire);
        return complete_deferred(m, read, word, tail).map(|()| true);
    }
    // ORDERING(word-publish): Acquire, as in `FramedMem::parse`.
    if m.word(read).load(Acquire) != 0 {
        return Ok(true);
    }
    Err(Corruption::FrameWord { pos: read, word: 0 })
}

/// Stores the recorded deferred `word` at `at` (below `tail`) if it is
/// still zero.
fn complete_deferred<M: FramedMem>(m: &M, at: u64, word: u64, tail: u64) -> Result<(), Corruption> {
    // ORDERING(word-publish): Acquire, as in `FramedMem::parse`. Stored
    // already (by its producer, or by another party's recovery): nothing to
    // do, whatever the record says now.
    if m.word(at).load(Acquire) != 0 {
        return Ok(());
    }
    // The word must be a padding or data frame word (an spsc producer
    // writes no skip records) whose record a consumer would accept with
    // `tail` as the end of what is committed: padding covered by `tail`, a
    // frame no longer than `max_frame` ending at or before `tail` and the
    // end of the data area.
    let sound = at < tail
        && matches!(
            frame_word::decode(word),
            frame_word::Decoded::Pad | frame_word::Decoded::Data(_)
        )
        && m.parse_word(at, word, tail - at).is_ok();
    if !sound {
        return Err(Corruption::FrameWord { pos: at, word });
    }
    // ORDERING: AcqRel on success (Release publishes what the dead producer
    // wrote, as its own store would have: the OS ordered its writes before
    // our look at its lock; Acquire for the loser's view), Acquire on
    // failure: a producer or consumer racing us stored it first.
    if m.word(at).cas(0, word, AcqRel, Acquire).is_ok() {
        m.count_recovery();
    }
    Ok(())
}

/// Where a frame of `len` bytes fits, re-reading the consumer's cursor only
/// when the cached one says the ring is too full. `Ok(None)`: no room.
#[inline(always)]
pub(crate) fn space<M: FramedMem>(
    raw: &M,
    tail: u64,
    cached_head: &mut u64,
    len: u64,
) -> Result<Option<(u64, u64)>, Corruption> {
    let (pad, start) = raw.place(tail, len);
    // The frame, and its terminator's 8 bytes (kept free).
    let end = start + layout::frame_size(len) + layout::FRAME_ALIGN;
    if end - *cached_head <= raw.capacity() {
        return Ok(Some((pad, start)));
    }
    // ORDERING(head-release): Acquire; pairs with the Release head store in
    // `ring::release_frames`, so the consumer is done reading the
    // bytes it released before we overwrite them. The re-check (S4) of the
    // wake-up handshake when called from `wait::block`.
    let head = raw.head().load(Acquire);
    if head < *cached_head {
        return Err(Corruption::CursorRegressed {
            seen: *cached_head,
            found: head,
        });
    }
    raw.check_cursors(head, tail)?;
    *cached_head = head;
    Ok((end - head <= raw.capacity()).then_some((pad, start)))
}

/// Model checks of the spsc protocol with loom, running the functions
/// above and the framed consumer (`ring::ReadCursor`) on loom atomics.
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::ring::loom_heap::{Heap, Reader, model};
    use loom::sync::Arc;

    /// A producer's side: its private tail, cached head and deferred word.
    struct Writer {
        tail: u64,
        cached_head: u64,
        deferred: (u64, u64),
    }

    impl Writer {
        /// A producer taking over the ring (`resume`, as `producer()` does).
        fn resume(m: &Heap) -> Writer {
            let (tail, head) = resume(m).unwrap();
            Writer {
                tail,
                cached_head: head,
                deferred: (0, 0),
            }
        }

        /// Writes a frame with `v` as its payload if it fits; visible
        /// after `flush`.
        fn try_write(&mut self, m: &Heap, len: u64, v: u64) -> bool {
            match space(m, self.tail, &mut self.cached_head, len).unwrap() {
                Some((pad, start)) => {
                    m.write_payload(start, v);
                    self.tail = write_frame(m, self.tail, pad, start, len, &mut self.deferred);
                    true
                }
                None => false,
            }
        }

        fn write(&mut self, m: &Heap, len: u64, v: u64) {
            assert!(
                self.try_write(m, len, v),
                "the models size frames so they always fit"
            );
        }

        fn flush(&mut self, m: &Heap) {
            publish(m, self.tail, &mut self.deferred);
        }

        fn send(&mut self, m: &Heap, len: u64, v: u64) {
            self.write(m, len, v);
            self.flush(m);
        }

        fn try_send(&mut self, m: &Heap, len: u64, v: u64) -> bool {
            let ok = self.try_write(m, len, v);
            if ok {
                self.flush(m);
            }
            ok
        }

        /// Publishes up to the `tail` store and stops there for ever, as a
        /// producer killed at the `spsc-tail-stored` point.
        fn flush_and_die(&mut self, m: &Heap) {
            let (at, word) = std::mem::take(&mut self.deferred);
            publish_tail(m, self.tail, at, word);
            m.kill(0);
        }
    }

    /// Moves both cursors to 40 single-threaded, so the next frames reuse
    /// released words (each still holding a stale empty-frame word from
    /// the first lap) and a 24-byte frame wraps with padding.
    fn at_40(m: &Heap) -> (Writer, Reader) {
        let mut w = Writer {
            tail: 0,
            cached_head: 0,
            deferred: (0, 0),
        };
        let mut r = Reader::new(false);
        for v in 0..5 {
            w.send(m, 0, v);
            assert!(r.try_recv(m).is_some());
        }
        assert_eq!(w.tail, 40);
        (w, r)
    }

    /// The consumer's side of the crash models: receives `n` frames,
    /// recovering a dead producer's deferred word when held by it (as
    /// `try_take` does, without the grace period), yielding while the ring
    /// is empty.
    fn receive(m: &Heap, r: &mut Reader, n: usize) -> Vec<u64> {
        let mut got = Vec::new();
        while got.len() < n {
            match r.try_recv(m) {
                Some(v) => got.push(v),
                None => {
                    if let Some(pos) = r.0.stuck_at() {
                        recover_deferred(m, pos).unwrap();
                    }
                    loom::thread::yield_now();
                }
            }
        }
        got
    }

    /// After wrap-around: the producer publishes an 8-byte frame and a
    /// 24-byte frame that needs padding, racing the consumer, which polls
    /// frame words first; it sees them in order, with their payloads, never
    /// a torn frame, and never the stale words of the first lap.
    fn wrap_model() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.send(&p, 8, 1); // 40..56
                w.send(&p, 24, 2); // pad 56..64, 64..96
            });
            let mut got: Vec<u64> = Vec::new();
            for _ in 0..2 {
                got.extend(r.try_recv(&m));
            }
            producer.join().unwrap();
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 2]);
        });
    }

    #[test]
    fn loom_spsc_publish_consume_with_wrap() {
        wrap_model();
    }

    /// The terminator has teeth: without it, the consumer that has read
    /// the 24-byte frame at 64..96 polls the word at 96, a stale empty
    /// frame of the first lap, and takes it: the model fails.
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_missing_terminator() {
        sabotage::NO_TERMINATOR.with(|s| s.set(true));
        wrap_model();
    }

    /// The order of the last two stores has teeth: with the deferred word
    /// stored before `tail`, the consumer takes the frame, then finds
    /// `tail` behind what it took (and would release `head` past it):
    /// `CursorRegressed`, and the model fails.
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_word_stored_before_tail() {
        sabotage::WORD_BEFORE_TAIL.with(|s| s.set(true));
        wrap_model();
    }

    /// A send-side batch: two frames (the second wrapping) written, then
    /// published by one deferred word, racing the consumer: it sees none or
    /// both, in order, with their payloads.
    #[test]
    fn loom_spsc_batch_publishes_with_one_store() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.write(&p, 8, 1);
                w.write(&p, 24, 2);
                w.flush(&p);
            });
            let first: Vec<u64> = r.try_recv(&m).into_iter().collect();
            let second: Vec<u64> = r.try_recv(&m).into_iter().collect();
            // One store publishes both: seeing the first means the second
            // is there too.
            assert!(first.is_empty() || second == [2], "{first:?} {second:?}");
            let mut got = first;
            got.extend(second);
            producer.join().unwrap();
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 2]);
        });
    }

    /// The batch model has teeth: the same batch published with a Relaxed
    /// store of its deferred word lets the consumer see the word without
    /// the payloads written before it (a race on the payload), and the
    /// model fails.
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_relaxed_batch_publish() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.write(&p, 8, 1);
                w.write(&p, 24, 2);
                let (at, word) = std::mem::take(&mut w.deferred);
                publish_tail(&*p, w.tail, at, word);
                p.word(at - 1).store(word, Relaxed); // sabotage: not Release
            });
            let mut got: Vec<u64> = r.try_recv(&m).into_iter().collect();
            producer.join().unwrap();
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 2]);
        });
    }

    /// A consumer takes two frames (the second after padding), puts the
    /// second back (`ReadCursor::put_back`, as `try_recv_batch_keep` does
    /// for frames its caller did not finish) and releases; then, racing a
    /// producer that fills every byte it may, it takes that frame again and
    /// finds it whole. With `sabotage`, the consumer releases past the kept
    /// frame and reads it again anyway: the producer may overwrite it, and
    /// loom reports the race.
    fn put_back_model(sabotage: bool) {
        model(move || {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            w.send(&m, 8, 1); // 40..56
            w.send(&m, 24, 2); // pad 56..64, 64..96: payload at offset 8
            let a = r.0.next(&*m).unwrap().unwrap();
            r.0.consume(&a);
            let b = r.0.next(&*m).unwrap().unwrap();
            r.0.consume(&b);
            if !sabotage {
                r.0.put_back(&b, 1);
            }
            r.0.release(&*m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                // As many 16-byte frames as fit (the third, at 128..144,
                // has its payload where the kept frame's is, offset 8).
                for v in 10..14 {
                    if !w.try_send(&p, 8, v) {
                        break;
                    }
                }
            });
            let v = if sabotage {
                m.read_payload(b)
            } else {
                let again = r.0.next(&*m).unwrap().unwrap();
                assert_eq!(again.at, b.at);
                let v = m.read_payload(again);
                r.0.consume(&again);
                r.0.release(&*m);
                v
            };
            assert_eq!(v, 2);
            producer.join().unwrap();
        });
    }

    #[test]
    fn loom_spsc_put_back_keeps_the_frame() {
        put_back_model(false);
    }

    /// The put-back model has teeth (see `put_back_model`).
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_release_past_a_kept_frame() {
        put_back_model(true);
    }

    /// Read-ahead: a consumer holds (`ReadCursor::hold`), takes two frames
    /// (the second after padding), releases only the first
    /// (`release_to(a.next)`, as `Consumer::release_to` does once the first
    /// is acknowledged) and, racing a producer that fills every byte it
    /// may, reads the second again: it is whole, and releasing it later
    /// hands its space back. With `sabotage`, the hold is forgotten (a plain
    /// `release` hands back both): the producer may overwrite the second
    /// frame while it is read, and loom reports the race.
    fn read_ahead_model(sabotage: bool) {
        model(move || {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            w.send(&m, 8, 1); // 40..56
            w.send(&m, 24, 2); // pad 56..64, 64..96: payload at offset 8
            r.0.hold();
            let a = r.0.next(&*m).unwrap().unwrap();
            r.0.consume(&a);
            let b = r.0.next(&*m).unwrap().unwrap();
            r.0.consume(&b);
            if sabotage {
                r.0.hold = None;
                r.0.release(&*m);
            } else {
                assert!(r.0.release_to(&*m, a.next));
                // Releasing again, or an older mark, hands back nothing.
                assert!(!r.0.release(&*m));
                assert!(!r.0.release_to(&*m, a.at));
            }
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                let mut sent = 0;
                for v in 10..14 {
                    if !w.try_send(&p, 8, v) {
                        break;
                    }
                    sent += 1;
                }
                sent
            });
            assert_eq!(m.read_payload(b), 2);
            if !sabotage {
                assert!(r.0.release_to(&*m, b.next));
                assert_eq!(r.0.hold, None, "everything read is handed back");
            }
            producer.join().unwrap();
        });
    }

    #[test]
    fn loom_spsc_read_ahead_keeps_held_frames() {
        read_ahead_model(false);
    }

    /// The read-ahead model has teeth (see `read_ahead_model`).
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_release_past_a_held_frame() {
        read_ahead_model(true);
    }

    /// Lazy release (`ReadCursor::set_lazy`): the consumer hands space back
    /// only every 8 frames (never, in this model, by count or bytes), and
    /// always when it finds the ring empty (`flush`, as `take` does before
    /// it reports empty or sleeps). A producer sends 6 frames of 16 bytes
    /// through the 64-byte ring, waiting for space when it is full: it
    /// gets it, every frame arrives in order, and the consumer's `head`
    /// stores go back only to positions it has read. With `sabotage`, the
    /// empty ring is reported without a flush: the producer waits for
    /// space the consumer holds while the consumer waits for frames, and
    /// the model never ends (loom gives up on the execution and fails).
    fn lazy_release_model(sabotage: bool) {
        model(move || {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            r.0.set_lazy(&*m, 8);
            r.0.lazy_bytes = u64::MAX;
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                for v in 10..16 {
                    while !w.try_send(&p, 8, v) {
                        loom::thread::yield_now();
                    }
                }
            });
            let mut got = Vec::new();
            while got.len() < 6 {
                match r.0.next(&*m).unwrap() {
                    Some(f) => {
                        got.push(m.read_payload(f));
                        r.0.consume(&f);
                        // Lazy: hands nothing back before 8 frames.
                        assert!(!r.0.release(&*m));
                    }
                    None => {
                        if !sabotage {
                            r.0.flush(&*m);
                        }
                        loom::thread::yield_now();
                    }
                }
            }
            assert_eq!(got, [10, 11, 12, 13, 14, 15]);
            producer.join().unwrap();
        });
    }

    #[test]
    fn loom_spsc_lazy_release_hands_space_back_when_empty() {
        lazy_release_model(false);
    }

    /// The lazy-release model has teeth (see `lazy_release_model`).
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_lazy_consumer_that_keeps_space_when_empty() {
        lazy_release_model(true);
    }

    /// A producer that stops for ever after writing a frame but before
    /// recording or storing anything (killed mid-batch): the consumer never
    /// sees the frame, and a new producer writes over it; the consumer gets
    /// the new frame, not the stale words of the dead one's.
    #[test]
    fn loom_spsc_producer_stopped_before_publish() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.send(&p, 8, 1); // 40..56
                w.write(&p, 8, 2); // pad 56..64, 64..80, never published
                w.write(&p, 8, 3); // 80..96, never published
                p.kill(0);
            });
            let mut got: Vec<u64> = r.try_recv(&m).into_iter().collect();
            producer.join().unwrap();
            m.revive(0);
            let mut w = Writer::resume(&m);
            w.send(&m, 16, 4); // pad 56..64, 64..88: over the dead frames' words
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 4]);
            assert_eq!(m.recoveries.load(Relaxed), 0);
        });
    }

    /// A producer that stops for ever after recording its deferred word but
    /// before its `tail` store: as good as unpublished. The consumer does
    /// not deliver it (the record lies at `tail`, not below it), and a new
    /// producer's frame takes its place.
    #[test]
    fn loom_spsc_producer_stopped_after_recording() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.send(&p, 8, 1); // 40..56
                w.write(&p, 8, 2); // pad 56..64, 64..80
                let (at, word) = w.deferred;
                record_deferred(&*p, at, word);
                p.kill(0);
            });
            let mut got: Vec<u64> = r.try_recv(&m).into_iter().collect();
            producer.join().unwrap();
            // Held only by a view of `tail` older than frame 1's word; the
            // recorded word (frame 2's, at `tail`) is not stored for it.
            if let Some(pos) = r.0.stuck_at() {
                assert!(recover_deferred(&*m, pos).unwrap());
            }
            r.drain(&m, &mut got);
            assert_eq!(got, [1], "frame 2 was never published");
            assert_eq!(m.recoveries.load(Relaxed), 0);
            m.revive(0);
            let mut w = Writer::resume(&m);
            w.send(&m, 16, 3); // pad 56..64, 64..88
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 3]);
        });
    }

    /// A producer killed after its `tail` store, before its deferred word
    /// (the `spsc-tail-stored` crash point), with a batch of two frames
    /// (the second wrapping): the consumer, held at the zero word below
    /// `tail`, finds the producer role free and stores the recorded word;
    /// both frames arrive, in order, once.
    #[test]
    fn loom_spsc_consumer_completes_a_dead_producers_publication() {
        model(|| {
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                w.write(&p, 8, 1); // 40..56
                w.write(&p, 8, 2); // pad 56..64, 64..80
                w.flush_and_die(&p);
            });
            let got = receive(&m, &mut r, 2);
            producer.join().unwrap();
            assert_eq!(got, [1, 2]);
            assert_eq!(m.recoveries.load(Relaxed), 1);
            assert_eq!(r.try_recv(&m), None);
        });
    }

    /// The same crash, then a new producer takes the role while the
    /// consumer may be recovering too: whoever comes first stores the dead
    /// producer's word (once), the new producer's own frame follows, and
    /// the consumer gets all three in order. With `sabotage`, the new
    /// producer does not complete the publication when it attaches: the
    /// consumer, which leaves that to a live producer, waits for ever (the
    /// model never ends, and fails).
    fn takeover_model(sabotage: bool) {
        model(move || {
            sabotage::NO_RESUME.with(|s| s.set(sabotage));
            let m = Arc::new(Heap::new());
            let (mut w, mut r) = at_40(&m);
            w.write(&m, 8, 1); // 40..56
            w.write(&m, 8, 2); // pad 56..64, 64..80
            w.flush_and_die(&m);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                p.revive(0);
                let mut w = Writer::resume(&p);
                w.send(&p, 8, 3); // 80..96
            });
            let got = receive(&m, &mut r, 3);
            producer.join().unwrap();
            assert_eq!(got, [1, 2, 3]);
            assert_eq!(m.recoveries.load(Relaxed), 1);
        });
    }

    #[test]
    fn loom_spsc_new_producer_completes_a_dead_ones_publication() {
        takeover_model(false);
    }

    /// The takeover model has teeth (see `takeover_model`).
    #[test]
    #[should_panic]
    fn loom_spsc_catches_a_takeover_that_leaves_the_word_unstored() {
        takeover_model(true);
    }
}
