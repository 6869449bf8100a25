//! Many producers, one consumer, variable-length frames.
//!
//! Producers claim space with one compare-and-swap on `tail` (retried if
//! another producer moved it first), write their frame in place, and
//! publish it with one store of its frame word. Until then the word is
//! zero, "not ready", and the consumer, which reads frames strictly in
//! order, stops there. The consumer zeroes the space it releases, so every
//! word of the next lap starts out "not ready" (the scheme of Aeron's
//! many-to-one ring buffer). A consumer that has caught up therefore polls
//! the frame word at its read position, and reads `tail` only while that
//! word is zero: a frame and its "ready" mark reach it in one cache-line
//! transfer, and it leaves the line producers claim on to them.
//!
//! Variable-length claims need the CAS: a claim must check that its frame
//! (and any padding to the end of the data area) fits in the free space,
//! and a `fetch_add` of its length could overrun the consumer's `head`
//! before anyone checked. Aeron's many-to-one ring buffer claims with a
//! CAS for the same reason. The [`mpmc`](crate::mpmc) module docs give
//! the other reasons and the measured rate of failed claims, which is
//! small.
//!
//! Progress: claiming is lock-free (a failed CAS means another producer
//! succeeded). Consumption is in order, so a producer that has claimed but
//! not yet published holds back the frames claimed after it; an aborted
//! or dropped reservation is published as a skip record, never left
//! blocking the ring. Frames from one producer arrive in the order it
//! committed them; frames of different producers interleave in claim
//! order.
//!
//! ```
//! use mmring::{Config, mpsc};
//! # fn main() -> Result<(), mmring::Error> {
//! let ring = mpsc::Ring::anonymous(Config::new(1 << 16))?;
//! let mut rx = ring.consumer()?;
//! let writers: Vec<_> = (0..4u8)
//!     .map(|id| {
//!         let mut tx = ring.producer().unwrap(); // one handle per writer
//!         std::thread::spawn(move || {
//!             for i in 0..100u8 {
//!                 tx.send(&[id, i]).unwrap();
//!             }
//!         })
//!     })
//!     .collect();
//! let mut next = [0u8; 4];
//! for _ in 0..400 {
//!     let f = rx.recv()?;
//!     assert_eq!(f[1], next[f[0] as usize]); // per-producer order holds
//!     next[f[0] as usize] += 1;
//! }
//! for w in writers { w.join().unwrap(); }
//! # Ok(()) }
//! ```

use std::ptr::NonNull;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};

use crate::error::{Corruption, Error};
use crate::layout::{self, Kind, Role, frame_word};
use crate::protocol::sealed::Protocol;
use crate::protocol::{FixedKind, Flavour};
use crate::region::Region;
use crate::ring::{FramedMem, Located, RawRing, ReadCursor, check_range, clear_claim};
use crate::words::Word64;

/// The mpsc flavour: the type parameter of [`Ring`], [`Producer`] and
/// [`Consumer`] below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mpsc {}

/// A many-producer single-consumer ring of variable-length frames in shared
/// memory: any number of [`Producer`]s (up to 128 handles in all) in any
/// processes, one live [`Consumer`]. A ring of one flavour is refused when
/// opened as another.
pub type Ring = crate::Ring<Mpsc>;
/// One writer of an mpsc [`Ring`]; make one per writing thread or process.
pub type Producer = crate::Producer<Mpsc>;
/// The reading half of an mpsc [`Ring`].
pub type Consumer = crate::Consumer<Mpsc>;
/// Space claimed by an mpsc [`Producer`]. Dropping it uncommitted (or
/// [`abort`](crate::WriteGrant::abort)) publishes a skip record over the
/// claimed space, so the consumer passes over it instead of waiting.
pub type WriteGrant<'a> = crate::WriteGrant<'a, Mpsc>;
/// A frame taken by an mpsc [`Consumer`]; dropping it releases the space.
pub type ReadGrant<'a> = crate::ReadGrant<'a, Mpsc>;

impl Flavour for Mpsc {}

impl FixedKind for Mpsc {
    const KIND: Kind = Kind::Mpsc;
}

pub(crate) use state::{Claim, Tx};

/// The protocol's per-handle types: public to the sealed trait, unreachable
/// from outside the crate.
mod state {
    /// A producer's private state.
    #[derive(Debug)]
    pub struct Tx {
        /// Our attachment record, where claims are recorded.
        pub rec: u64,
        /// Last head we read; the consumer may be further along.
        pub cached_head: u64,
        /// A frame or skip record was published since the last wake-up.
        pub unflushed: bool,
    }

    /// A claimed range: padding (already published) then the frame.
    #[derive(Debug, Clone, Copy)]
    pub struct Claim {
        /// Position of the frame word.
        pub start: u64,
        /// Reserved payload length.
        pub len: u64,
        /// The claimant's attachment record, which records the claim.
        pub rec: u64,
    }
}

impl Protocol for Mpsc {
    type Mem = RawRing;
    type Tx = Tx;
    type Rx = ReadCursor;
    type Claim = Claim;
    type Taken = Located;

    fn mem(region: &Region) -> Result<RawRing, Error> {
        Ok(RawRing::of(region)?)
    }

    fn kind(_: &RawRing) -> Kind {
        Kind::Mpsc
    }

    fn exclusive(_: &RawRing, role: Role) -> bool {
        role == Role::Consumer
    }

    fn cursors(m: &RawRing) -> (u64, u64) {
        m.cursors()
    }

    fn max_frame(m: &RawRing) -> u64 {
        m.max_frame()
    }

    fn producer(m: &RawRing, rec: u64) -> Result<Tx, Corruption> {
        // ORDERING(head-release): Acquire; pairs with the consumer's
        // Release head store, as in `claim`.
        let head = check_range(m.head().load(Acquire))?;
        Ok(Tx {
            rec,
            cached_head: head,
            unflushed: false,
        })
    }

    #[inline(always)]
    fn try_claim(m: &RawRing, tx: &mut Tx, len: u64) -> Result<Option<Claim>, Corruption> {
        claim(m, tx.rec, &mut tx.cached_head, len)
    }

    #[inline(always)]
    unsafe fn claim_payload(m: &RawRing, c: &Claim) -> NonNull<u8> {
        // SAFETY: `claim` placed the frame wholly inside the data area, in
        // a range our CAS on `tail` gave to us alone; the consumer does not
        // read it before we publish its frame word.
        unsafe { m.bytes(m.offset(c.start) + layout::FRAME_HEADER, c.len) }
    }

    #[inline(always)]
    fn publish(m: &RawRing, tx: &mut Tx, c: Claim, committed: Option<u64>) {
        publish_claim(m, c, committed);
        tx.unflushed = true;
    }

    #[inline(always)]
    fn flush(_: &RawRing, tx: &mut Tx) -> bool {
        std::mem::take(&mut tx.unflushed)
    }

    fn is_full(m: &RawRing, _: &Tx) -> bool {
        // ORDERING: Relaxed; a snapshot, nothing is read on its basis.
        let head = m.head().load(Relaxed);
        let tail = m.tail().load(Relaxed);
        tail.saturating_sub(head) >= m.capacity()
    }

    fn unreleased(m: &RawRing, _: &Tx) -> u64 {
        // ORDERING: Relaxed; a hint only.
        let head = m.head().load(Relaxed);
        m.tail().load(Relaxed).saturating_sub(head)
    }

    fn consumer(m: &RawRing, _rec: u64) -> Result<ReadCursor, Corruption> {
        ReadCursor::attach(m, true)
    }

    /// A dead producer's record is reusable once the consumer has released
    /// past its claim (then it was published, or recovered).
    fn reusable(m: &RawRing, i: u64) -> bool {
        // ORDERING: Acquire; pairs with the Release clear in `publish_claim`.
        let c = m.claim(i).load(Acquire);
        if c == 0 {
            return true;
        }
        if Mpsc::claim_settled(m, i) {
            clear_claim(m.claim(i), c);
            return true;
        }
        false
    }

    /// Settled once the consumer has released past the claim's end.
    fn claim_settled(m: &RawRing, i: u64) -> bool {
        // ORDERING: Acquire; pairs with the Release clear in `publish_claim`.
        if m.claim(i).load(Acquire) == 0 {
            return true;
        }
        // ORDERING: Acquire; written before `claim`.
        let end = m.claim_end(i).load(Acquire) & !layout::CLAIM_WON;
        // ORDERING(head-release): Acquire, as in `claim`.
        end <= m.head().load(Acquire)
    }

    #[inline(always)]
    fn try_take(m: &RawRing, rx: &mut ReadCursor) -> Result<Option<Located>, Corruption> {
        rx.next_recovering(m, recover_claim)
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
        rx.recover_now(m, recover_claim)
    }

    fn is_empty(m: &RawRing, rx: &ReadCursor) -> bool {
        rx.is_empty(m)
    }

    fn waiting(m: &RawRing, rx: &ReadCursor) -> u64 {
        rx.waiting(m)
    }
}

/// Publishes a claim: a frame of `committed` bytes (the payload is already
/// in place) and a skip record over the rest, or a skip record over all of
/// it.
pub(crate) fn publish_claim<M: FramedMem>(raw: &M, claim: Claim, committed: Option<u64>) {
    let Claim { start, len, rec } = claim;
    let claimed_end = start + layout::frame_size(len);
    match committed {
        Some(n) => {
            let frame_end = start + layout::frame_size(n);
            if claimed_end > frame_end {
                // ORDERING(word-publish): Release, and before the frame
                // word: a consumer that sees the frame sees this too.
                raw.word(frame_end).store(
                    frame_word::skip((claimed_end - frame_end - 8) as u32),
                    Release,
                );
            }
            // ORDERING(word-publish): Release; pairs with the consumer's
            // Acquire word load in `FramedMem::parse`, publishing the payload
            // written before. W1 of the wake-up handshake.
            raw.word(start).store(frame_word::data(n as u32), Release);
        }
        None => {
            // ORDERING(word-publish): as above.
            raw.word(start)
                .store(frame_word::skip((claimed_end - start - 8) as u32), Release);
        }
    }
    // ORDERING(claim-record): Release; pairs with the Acquire claim load in
    // `recover_claim`: whoever sees the record cleared sees the word above.
    raw.claim(rec).store(0, Release);
}

/// Claims room for a frame of `len` bytes by moving `tail` with a CAS.
/// `Ok(None)`: no room. Publishes the padding record, if one is needed,
/// right away: it is complete as it stands.
///
/// The claim is recorded in attachment record `rec` *before* the CAS that
/// takes it (`claim = tail + 1`, `claim_end = end`), and marked won right
/// after (`CLAIM_WON`), so a producer killed at any step leaves a record of
/// what it may own; [`recover_claim`] completes it once its lock shows it
/// dead. A claim that is not taken is withdrawn before returning.
pub(crate) fn claim<M: FramedMem>(
    raw: &M,
    rec: u64,
    cached_head: &mut u64,
    len: u64,
) -> Result<Option<Claim>, Corruption> {
    let tail_word = raw.tail();
    // ORDERING: Relaxed; producers share nothing through `tail` but the
    // claim itself, which the CAS below decides.
    let mut tail = tail_word.load(Relaxed);
    let withdraw = || {
        // ORDERING: Relaxed; nothing was claimed, nothing to publish.
        raw.claim(rec).store(0, Relaxed);
    };
    loop {
        if let Err(e) = check_range(tail) {
            withdraw();
            return Err(e);
        }
        if tail % layout::FRAME_ALIGN != 0 {
            withdraw();
            return Err(Corruption::MisalignedCursor { cursor: tail });
        }
        let (pad, start) = raw.place(tail, len);
        let end = start + layout::frame_size(len);
        if end.wrapping_sub(*cached_head) > raw.capacity() {
            // ORDERING(head-release): Acquire; pairs with the consumer's
            // Release head store after zeroing, so the space we claim is
            // zeroed and no longer read. The re-check (S4) of the wake-up
            // handshake in `wait::block`.
            let head = raw.head().load(Acquire);
            let checked = if head < *cached_head {
                Err(Corruption::CursorRegressed {
                    seen: *cached_head,
                    found: head,
                })
            } else if head > tail {
                // Our tail is stale (the consumer has passed it, so other
                // producers moved it): retry with a fresh one, but only if it
                // did move, else the pair is impossible.
                let fresh = tail_word.load(Relaxed);
                if fresh != tail {
                    tail = fresh;
                    continue;
                }
                raw.check_cursors(head, tail)
            } else {
                raw.check_cursors(head, tail)
            };
            if let Err(e) = checked {
                withdraw();
                return Err(e);
            }
            *cached_head = head;
            if end - head > raw.capacity() {
                withdraw();
                return Ok(None);
            }
        }
        // ORDERING(claim-record): Relaxed stores, sequenced before the CAS
        // (Release): a consumer whose Acquire tail load sees this claim (or
        // any later one: the CASes on `tail` form one release sequence)
        // sees the record too.
        raw.claim_end(rec).store(end, Relaxed);
        raw.claim(rec).store(tail + 1, Relaxed);
        crate::testing::point("mpsc-recorded");
        // ORDERING: AcqRel on success (the claim is ordered before our
        // writes into the claimed space, and the record before the claim);
        // Relaxed on failure (we only retry with the value read).
        match tail_word.cas_weak(tail, end, AcqRel, Relaxed) {
            Ok(_) => {
                // ORDERING(claim-record): Relaxed; a hint that settles which
                // of two dead records at one position took it.
                raw.claim_end(rec).store(end | layout::CLAIM_WON, Relaxed);
                if pad > 0 {
                    // ORDERING(word-publish): Release; pairs with the
                    // consumer's Acquire word load in `FramedMem::parse`.
                    raw.word(tail).store(frame_word::PAD, Release);
                }
                crate::testing::point("mpsc-claimed");
                return Ok(Some(Claim { start, len, rec }));
            }
            Err(now) => tail = now,
        }
    }
}

/// Completes a dead producer's claim that holds the consumer at `read` (a
/// zero frame word below `tail`): Aeron's "unblock", but decided by the OS
/// lock table, never by a timeout. Only the consumer calls it, so only one
/// party ever writes the records below.
///
/// The attachment records say whose claim covers `read`. If any record
/// that covers it belongs to a live handle, that handle will publish (or
/// withdraw and move on): nothing to do. If only dead handles' records
/// cover it, the claim is theirs, and it is published as what an aborted
/// reservation would have left: a padding record where its padding was
/// due, a skip record over its frame. `Ok(true)` when something was
/// completed (look again at once).
///
/// Two dead records at one position with different extents can only come
/// from two producers killed within a few instructions of each other (one
/// just after winning the CAS, one just after losing it); the won mark
/// settles it, and without one the claim is reported as
/// [`Corruption::AmbiguousClaim`] rather than guessed.
pub(crate) fn recover_claim<M: FramedMem>(m: &M, read: u64) -> Result<bool, Corruption> {
    // (start, end, won, record) of the dead claim that covers `read`.
    let mut found: Option<(u64, u64, bool, u64)> = None;
    let mut ambiguous = false;
    // The claim record `i` covers `read` with: (start, end, won).
    let covers = |i: u64| {
        // ORDERING(claim-record): Acquire; pairs with the Release clear in
        // `publish_claim`, and (through our Acquire tail load that saw the
        // claim) with the stores before the claimant's CAS.
        let c = m.claim(i).load(Acquire);
        // ORDERING: Acquire; written before `claim` (see `claim`).
        let e = m.claim_end(i).load(Acquire);
        let (end, won) = (e & !layout::CLAIM_WON, e & layout::CLAIM_WON != 0);
        (c != 0 && c - 1 <= read && read < end).then(|| (c - 1, end, won))
    };
    for i in 0..m.records() {
        if covers(i).is_none() {
            continue;
        }
        if m.is_alive(i) {
            return Ok(false);
        }
        // Dead: read its record again, now that the lock table said so.
        // What was read before may predate the holder's last stores (it
        // may have moved on to a later claim before dying); the OS's word
        // on its death orders everything it ever wrote before this read.
        let Some((start, end, won)) = covers(i) else {
            continue;
        };
        found = match found {
            None => Some((start, end, won, i)),
            Some(f) if f.2 => Some(f),
            Some(_) if won => Some((start, end, won, i)),
            Some(f) => {
                ambiguous |= (f.0, f.1) != (start, end);
                Some(f)
            }
        };
    }
    let Some((start, end, won, i)) = found else {
        return Ok(false);
    };
    if ambiguous && !won {
        return Err(Corruption::AmbiguousClaim { pos: read });
    }
    // The claim's shape, as `claim` placed it: padding to the end of the
    // data area when the frame did not fit there, then the frame.
    let off = m.offset(start);
    let frame_start = if off + (end - start) > m.capacity() {
        start + (m.capacity() - off)
    } else {
        start
    };
    // ORDERING(tail-publish): Acquire; the claim lies below the claim cursor.
    let tail = m.tail().load(Acquire);
    let frame = end.saturating_sub(frame_start);
    let sane = start % layout::FRAME_ALIGN == 0
        && end % layout::FRAME_ALIGN == 0
        && end <= tail
        && frame >= layout::FRAME_HEADER
        && frame - layout::FRAME_HEADER <= layout::MAX_FRAME_LIMIT
        && (read == start || read == frame_start);
    if !sane {
        return Err(Corruption::FrameWord { pos: read, word: 0 });
    }
    // ORDERING(word-publish): Acquire, as in `FramedMem::parse`: the dead
    // producer may have written a word before it died.
    let mut wrote = false;
    if read < frame_start && m.word(read).load(Acquire) == 0 {
        // ORDERING(word-publish): Release, as the producer's padding store.
        m.word(read).store(frame_word::PAD, Release);
        wrote = true;
    }
    // ORDERING(word-publish): Acquire, as above.
    if m.word(frame_start).load(Acquire) == 0 {
        // ORDERING(word-publish): Release, as `publish_claim`'s.
        m.word(frame_start).store(
            frame_word::skip((frame - layout::FRAME_HEADER) as u32),
            Release,
        );
        wrote = true;
    }
    if wrote {
        m.count_recovery();
    }
    clear_claim(m.claim(i), start + 1);
    Ok(true)
}

/// Model checks of the mpsc protocol with loom, running `claim`,
/// `publish_claim` and the framed consumer (`ring::ReadCursor`, with its
/// zero-on-release) on loom atomics.
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::ring::loom_heap::{CAP, Heap, Reader, model};
    use loom::sync::Arc;

    fn send(m: &Heap, rec: u64, cached_head: &mut u64, len: u64, v: Option<u64>) {
        let c = claim(m, rec, cached_head, len)
            .unwrap()
            .expect("the models size frames so they always fit");
        match v {
            Some(v) => {
                m.write_payload(c.start, v);
                publish_claim(m, c, Some(len));
            }
            None => publish_claim(m, c, None),
        }
    }

    /// Takes everything left, completing dead producers' claims on the
    /// way, single-threaded.
    fn drain(r: &mut Reader, m: &Heap, got: &mut Vec<u64>) {
        loop {
            if let Some(v) = r.try_recv(m) {
                got.push(v);
                continue;
            }
            match r.0.stuck_at() {
                Some(pos) if recover_claim(m, pos).unwrap() => {}
                _ => break,
            }
        }
    }

    /// Three frames through the ring single-threaded, so the next ones
    /// reuse released (zeroed) words.
    fn warmed() -> (Arc<Heap>, Reader) {
        let m = Arc::new(Heap::new());
        let mut r = Reader::new(true);
        let mut ch = 0;
        for v in 0..3 {
            send(&m, 2, &mut ch, 8, Some(100 + v));
            assert_eq!(r.try_recv(&m), Some(100 + v));
        }
        (m, r)
    }

    /// After wrap-around: two producers claim and publish racing the
    /// consumer, one of them after giving a claim back; frames arrive in
    /// claim order, each once, the aborted one never, and the zeroing of
    /// released space keeps stale words from being read as frames.
    #[test]
    fn loom_mpsc_claim_publish_with_abort() {
        model(|| {
            let (m, r) = warmed();
            let p1 = m.clone();
            let a = loom::thread::spawn(move || {
                let mut ch = 0;
                send(&p1, 0, &mut ch, 0, None); // an aborted claim
                send(&p1, 0, &mut ch, 8, Some(1));
            });
            let c = m.clone();
            let consumer = loom::thread::spawn(move || {
                let mut r = r;
                let got: Vec<u64> = r.try_recv(&c).into_iter().collect();
                (r, got)
            });
            let mut ch = 0;
            send(&m, 1, &mut ch, 8, Some(2));
            a.join().unwrap();
            let (mut r, mut got) = consumer.join().unwrap();
            r.drain(&m, &mut got);
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
        });
    }

    /// A producer that stops for ever after its claim CAS (nothing
    /// published), racing a live producer and the consumer: the consumer
    /// completes the dead claim exactly once (a skip record), the live frame
    /// arrives once, and the ring goes on. `lie`: the lock table calls the
    /// live producer dead too (the sabotage).
    fn producer_dies_after_claim(lie: bool) {
        model(move || {
            let (m, r) = warmed();
            if lie {
                m.kill(1);
            }
            let p = m.clone();
            let dead = loom::thread::spawn(move || {
                let mut ch = 0;
                claim(&*p, 0, &mut ch, 8).unwrap().expect("room");
                p.kill(0);
            });
            let p = m.clone();
            let live = loom::thread::spawn(move || {
                let mut ch = 0;
                send(&p, 1, &mut ch, 8, Some(7));
            });
            // The consumer polls, recovering when held, while the producers
            // run (yielding lets loom run them between its steps).
            let mut r = r;
            let mut got = Vec::new();
            for _ in 0..3 {
                got.extend(r.try_recv(&m));
                if !got.is_empty() {
                    break;
                }
                if let Some(pos) = r.0.stuck_at() {
                    recover_claim(&*m, pos).unwrap();
                }
                loom::thread::yield_now();
            }
            dead.join().unwrap();
            live.join().unwrap();
            drain(&mut r, &m, &mut got);
            assert_eq!(got, [7]);
            assert_eq!(m.recoveries.load(Relaxed), 1);
            let mut ch = 0;
            send(&m, 1, &mut ch, 8, Some(8));
            assert_eq!(r.try_recv(&m), Some(8));
        });
    }

    #[test]
    fn loom_mpsc_producer_dies_after_claim() {
        producer_dies_after_claim(false);
    }

    /// The recovery models have teeth: a lock table that calls a live
    /// producer dead lets the consumer turn its claim into a skip record
    /// while it writes, and its frame is lost (or torn).
    #[test]
    #[should_panic]
    fn loom_mpsc_catches_recovery_of_a_live_claim() {
        producer_dies_after_claim(true);
    }

    /// A producer that stops for ever after recording a claim but before
    /// its CAS: it owns nothing, and nothing is recovered on its account.
    #[test]
    fn loom_mpsc_producer_dies_before_its_cas() {
        model(|| {
            let (m, r) = warmed();
            let p = m.clone();
            let dead = loom::thread::spawn(move || {
                let tail = p.tail().load(Relaxed);
                p.claim_end(0).store(tail + 16, Relaxed);
                p.claim(0).store(tail + 1, Relaxed);
                p.kill(0);
            });
            let p = m.clone();
            let live = loom::thread::spawn(move || {
                let mut ch = 0;
                send(&p, 1, &mut ch, 8, Some(7));
            });
            let mut r = r;
            let mut got = Vec::new();
            for _ in 0..3 {
                got.extend(r.try_recv(&m));
                if !got.is_empty() {
                    break;
                }
                if let Some(pos) = r.0.stuck_at() {
                    recover_claim(&*m, pos).unwrap();
                }
                loom::thread::yield_now();
            }
            dead.join().unwrap();
            live.join().unwrap();
            drain(&mut r, &m, &mut got);
            assert_eq!(got, [7]);
            assert_eq!(m.recoveries.load(Relaxed), 0);
        });
    }

    /// The word-first poll (`ring::locate`) with a consumer that holds a
    /// whole lap (read-ahead): a producer fills the ring while the consumer
    /// takes each frame as its word is published, releasing nothing. With
    /// every byte held, the word at `read` is the consumer's own oldest
    /// frame; the lap guard sends it to the claim cursor, which says
    /// empty. Once it releases, the producer's next frame arrives. With
    /// `sabotage` (no lap guard) that held word is parsed as a frame at
    /// `read` with no room left in the lap: the consumer reports a corrupt
    /// ring (a frame overrun) that is not corrupt, and the model fails.
    fn whole_lap_held_model(sabotage: bool) {
        model(move || {
            let (m, mut r) = warmed();
            if sabotage {
                r.0.sabotage = crate::ring::Sabotage::NoLapGuard;
            }
            r.0.hold();
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                let mut ch = 0;
                for v in 1..=4 {
                    send(&p, 0, &mut ch, 8, Some(v));
                }
            });
            let mut got = Vec::new();
            while got.len() < 4 {
                match r.0.next(&*m).unwrap() {
                    Some(f) => {
                        got.push(m.read_payload(f));
                        r.0.consume(&f);
                    }
                    None => loom::thread::yield_now(),
                }
            }
            producer.join().unwrap();
            assert_eq!(got, [1, 2, 3, 4]);
            assert_eq!(r.0.read - r.0.released, CAP, "a whole lap held");
            let extra = r.0.next(&*m).unwrap().map(|f| m.read_payload(f));
            assert_eq!(extra, None, "nothing new past a held lap");
            assert!(r.0.release_to(&*m, r.0.read));
            let mut ch = 0;
            send(&m, 1, &mut ch, 8, Some(5));
            assert_eq!(r.try_recv(&m), Some(5));
        });
    }

    #[test]
    fn loom_mpsc_word_first_poll_with_a_whole_lap_held() {
        whole_lap_held_model(false);
    }

    /// The word-first model has teeth (see `whole_lap_held_model`).
    #[test]
    #[should_panic]
    fn loom_mpsc_catches_a_poll_without_the_lap_guard() {
        whole_lap_held_model(true);
    }

    /// A consumer that stops for ever in the middle of a release (after
    /// announcing it and zeroing the first word, before its head store):
    /// the next consumer finishes the release when it attaches, never reads
    /// the zeroed word as an unpublished claim, and sees exactly the frames
    /// the dead one had not read, with a producer racing it.
    #[test]
    fn loom_mpsc_consumer_dies_while_zeroing() {
        model(|| {
            let (m, mut r) = warmed();
            let mut ch = 0;
            send(&m, 1, &mut ch, 8, Some(1));
            send(&m, 1, &mut ch, 8, Some(2));
            // The dead consumer reads both frames, then dies releasing them.
            for want in [1, 2] {
                let f = r.0.next(&*m).unwrap().expect("a frame");
                assert_eq!(m.read_payload(f), want);
                r.0.read = f.next;
            }
            m.pending().store(r.0.read, Release);
            m.word(r.0.released).store(0, Relaxed);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                let mut ch = 0;
                send(&p, 1, &mut ch, 8, Some(3));
            });
            let mut next = Reader(ReadCursor::attach(&*m, true).unwrap());
            let mut got: Vec<u64> = next.try_recv(&m).into_iter().collect();
            producer.join().unwrap();
            drain(&mut next, &m, &mut got);
            assert_eq!(got, [3]);
            assert_eq!(m.recoveries.load(Relaxed), 1);
        });
    }
}
