//! One publisher, any number of subscribers: every subscriber sees every
//! frame, or learns exactly how many it missed.
//!
//! The publisher never waits for subscribers and never reads anything they
//! write: when the ring is full it overwrites the oldest frames. Each
//! subscriber keeps its own position, reads a frame by *copying* it into
//! its own buffer, and then checks that the publisher did not start
//! overwriting it meanwhile (a seqlock-style validation, as in Agrona's
//! broadcast buffer and tokio's `broadcast` channel). A subscriber that was
//! overrun gets [`RecvError::Lagged`] with the exact number of frames it
//! lost (every frame carries its sequence number) and continues at the
//! oldest frame still in the ring. It never gets a torn frame.
//!
//! ```
//! use mmring::{Config, RecvError, broadcast};
//! # fn main() -> Result<(), mmring::Error> {
//! let ring = broadcast::Ring::anonymous(Config::new(4096))?;
//! let mut tx = ring.publisher()?;
//! let mut rx = ring.subscriber()?;          // starts at the next frame
//!
//! tx.send(b"tick")?;                        // never waits for readers
//! let mut g = tx.try_reserve(64)?;          // write a frame of up to 64 bytes
//! g[..3].copy_from_slice(b"abc");
//! g.commit_len(3);
//!
//! assert_eq!(&*rx.recv()?, b"tick");        // a validated copy: derefs to [u8]
//! assert_eq!(&*rx.try_recv()?, b"abc");
//! assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
//!
//! for i in 0..1000u32 { tx.send(&i.to_le_bytes())?; } // far more than the ring holds
//! match rx.try_recv() {
//!     Err(RecvError::Lagged(n)) => assert!(n > 0),   // n frames were overwritten
//!     other => panic!("{other:?}"),
//! }
//! let next = rx.try_recv()?;                // the oldest frame still in the ring
//! let i = u32::from_le_bytes(next[..4].try_into().unwrap());
//! assert_eq!(next.seq(), 2 + u64::from(i));  // frames are numbered from 0
//! # Ok(()) }
//! ```
//!
//! # Guarantees
//!
//! * Frames arrive in the order published, each intact, or not at all; a
//!   gap is always reported, as `Lagged(n)` with its exact size.
//! * The publisher is wait-free: a bounded number of steps per frame, none
//!   of which depends on subscribers; it writes only the ring's data and
//!   its own cache line of the header. One subscriber or a hundred cost it
//!   the same. A subscriber killed at any point leaves nothing behind that
//!   slows it (its record in the attachment table is reused later; the
//!   sleep flag it may have set costs one wake-up).
//! * Subscribers write nothing shared on their hot path. A blocking one
//!   sets the ring's sleep flag before it sleeps.
//! * Lossy for slow subscribers: a subscriber that falls more than the
//!   ring's capacity behind loses the frames that were overwritten.
//! * `recv` returns [`RecvError::Disconnected`] once the publisher has
//!   detached or died (noticed within about 200 ms of a `kill -9`) and the
//!   subscriber has read everything; a new publisher continues the sequence
//!   where the last published frame left it (a frame its predecessor was
//!   killed in the middle of writing was never published and is never
//!   delivered).
//!
//! # Memory model
//!
//! Every byte of the data area is written and read as `AtomicU64` words
//! (relaxed, ordered by fences): a subscriber copies words that the
//! publisher may be overwriting at that moment, which would be a data race
//! with plain loads. No `&[u8]` is ever formed over the ring's bytes: a
//! received frame is a copy in the subscriber's buffer, and
//! [`Publisher::try_reserve`] hands out a buffer of the publisher's own that
//! `commit` copies into the ring. The protocol, its orderings and why a
//! torn frame is never accepted are in `docs/FORMAT.md` ("Broadcast").
//!
//! # Subscribers are not a queue's consumers
//!
//! The queue flavours share the generic [`Ring`](crate::Ring) /
//! [`Producer`](crate::Producer) / [`Consumer`](crate::Consumer) handles;
//! broadcast has its own, because a subscriber's read is a validated copy
//! that may fail with `Lagged` (never a grant into the mapping that must be
//! released), and the publisher never waits or fails for lack of room. It
//! reuses everything around the protocol: the mapped region and its trust
//! checks, the role lock and attachment records (the publisher holds the
//! producer role alone; each subscriber holds an attachment record and a
//! shared lock on the consumer role, so `stat` lists them with their
//! liveness), the futex wait loop, and the truncation checks.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use crate::config::{Config, Trust};
use crate::error::{Corruption, Error, RecvError, SendError};
use crate::handle::{RoleGuard, deadline};
use crate::layout::{self, Kind, Role, bcast_frame_size, frame_word};
use crate::region::Region;
use crate::ring::{Blocks, check_range};

/// A position read from the header: below the cursor limit and a multiple
/// of 8 (every record starts 8-byte aligned), or `Corrupt`.
#[inline]
fn position(p: u64) -> Result<u64, Corruption> {
    check_range(p)?;
    if p % 8 != 0 {
        return Err(Corruption::MisalignedCursor { cursor: p });
    }
    Ok(p)
}
use crate::shared::{Base, PeerState, Shared, Stat};
use crate::wait::{self, WaitPoint};
use crate::words::Word64;

/// The broadcast flavour's marker type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Broadcast {}

// ---------------------------------------------------------------------
// The protocol, on any memory (the mapping, or loom atomics).
// ---------------------------------------------------------------------

/// Where a broadcast ring's header words and data live: the mapping
/// ([`Raw`]) or loom atomics in the model checks, which thereby run this
/// very code.
pub(crate) trait BcastMem {
    type W: Word64;
    /// End of the newest published record (Release by the publisher).
    fn tail(&self) -> &Self::W;
    /// End of the record being written; never decreases.
    fn intent(&self) -> &Self::W;
    /// Start of the oldest record not being overwritten.
    fn oldest(&self) -> &Self::W;
    /// Start of the newest published frame + 1; 0 before the first.
    fn latest(&self) -> &Self::W;
    /// The data-area word at position `pos` (a multiple of 8).
    fn word(&self, pos: u64) -> &Self::W;
    /// Data area bytes (a power of two).
    fn capacity(&self) -> u64;
    /// Largest payload.
    fn max_frame(&self) -> u64;
    /// `fence(Acquire)` (loom's in the models).
    fn fence_acquire(&self) {
        std::sync::atomic::fence(Acquire);
    }
    /// `fence(Release)` (loom's in the models).
    fn fence_release(&self) {
        std::sync::atomic::fence(Release);
    }

    /// Offset of `pos` in the data area.
    #[inline]
    fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity() - 1)
    }

    /// Appends the `n` words from position `pos` on to `buf`, each with a
    /// relaxed load: what a subscriber copies a payload with. A record
    /// never wraps around the data area, so the mapping reads them as one
    /// run (see [`Raw`]); the loads are the same.
    #[inline]
    fn load_words(&self, pos: u64, n: u64, buf: &mut Vec<u64>) {
        // ORDERING: Relaxed; the callers' tail load (Acquire) made the
        // words visible, and their Acquire fence orders these loads before
        // the validating load of `intent`.
        buf.extend((0..n).map(|i| self.word(pos + 8 * i).load(Relaxed)));
    }
}

/// What reading one record found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    /// The record was (being) overwritten while we read it.
    Lapped,
    /// A padding record of `skip` bytes.
    Pad { skip: u64 },
    /// A frame, validated: its sequence number, payload length, and the
    /// bytes it takes.
    Frame { seq: u64, len: u64, size: u64 },
}

/// Reads the record at `pos`, `avail` bytes below the tail we loaded
/// (Acquire), copying its payload into `buf` when `copy` (word by word,
/// relaxed atomic loads), then validates: after an Acquire fence, the
/// publisher's `intent` must not have reached `pos + capacity`, i.e. no
/// byte at or after `pos` has been overwritten since the frame was
/// published. Only then is anything read from the record trusted (so a
/// frame word torn by an overwrite is `Lapped`, not `Corrupt`).
pub(crate) fn read_record<M: BcastMem>(
    m: &M,
    pos: u64,
    avail: u64,
    buf: &mut Vec<u64>,
    copy: bool,
) -> Result<Read, Corruption> {
    read_record_checked(m, pos, avail, buf, copy, true)
}

/// [`read_record`], with the validation optional for the loom model that
/// shows it is needed.
#[inline]
fn read_record_checked<M: BcastMem>(
    m: &M,
    pos: u64,
    avail: u64,
    buf: &mut Vec<u64>,
    copy: bool,
    validate: bool,
) -> Result<Read, Corruption> {
    let cap = m.capacity();
    let off = m.offset(pos);
    // ORDERING: Relaxed; the tail load (Acquire) before this call made the
    // record's words visible, and the fence below orders this load before
    // the validating load of `intent`.
    let word = m.word(pos).load(Relaxed);
    let found = match frame_word::decode(word) {
        frame_word::Decoded::Pad if cap - off <= avail => Ok(Read::Pad { skip: cap - off }),
        frame_word::Decoded::Data(len) => {
            let len = u64::from(len);
            let size = bcast_frame_size(len);
            if len > m.max_frame() {
                Err(Corruption::FrameTooLong {
                    pos,
                    len,
                    max: m.max_frame(),
                })
            } else if size > avail.min(cap - off) {
                Err(Corruption::FrameOverrun {
                    pos,
                    needs: size,
                    available: avail.min(cap - off),
                })
            } else {
                // ORDERING: Relaxed, as the frame word.
                let seq = m.word(pos + 8).load(Relaxed);
                if copy {
                    buf.clear();
                    // Relaxed loads, as the frame word.
                    m.load_words(
                        pos + layout::BCAST_FRAME_HEADER,
                        layout::align_up(len) / 8,
                        buf,
                    );
                }
                Ok(Read::Frame { seq, len, size })
            }
        }
        frame_word::Decoded::Pad => Err(Corruption::FrameOverrun {
            pos,
            needs: cap - off,
            available: avail,
        }),
        _ => Err(Corruption::FrameWord { pos, word }),
    };
    // ORDERING(bcast-validate): this Acquire fence pairs with the
    // publisher's Release fence after its `intent` store: if any load above
    // read a word written after that fence, the `intent` load below sees
    // that `intent` (or a later one). So `intent <= pos + capacity` here
    // means every load above read what was there before any overwrite.
    m.fence_acquire();
    // ORDERING: Relaxed; ordered by the fence above.
    let intent = m.intent().load(Relaxed);
    if validate && intent > pos + cap {
        return Ok(Read::Lapped);
    }
    found
}

/// A frame copied in a batch, not yet delivered.
#[derive(Debug, Clone, Copy)]
struct Copied {
    pos: u64,
    seq: u64,
    len: u64,
    size: u64,
    /// Index of its first payload word in the cursor's buffer.
    at: usize,
}

/// Most frames copied by one refill.
const BATCH_FRAMES: usize = 64;
/// Most payload words copied by one refill (beyond its first frame).
const BATCH_WORDS: usize = 8192;

/// A subscriber's position: the next record to read and the sequence
/// number due there, and the frames copied ahead of it.
///
/// A refill copies every published frame from `read` on (at most
/// [`BATCH_FRAMES`] frames, [`BATCH_WORDS`] words), then validates them
/// all with one load of `intent`: a frame at `p` is intact when `intent
/// <= p + capacity`, and the copied frames all lie at or after `read`. So
/// a subscriber keeping up with the publisher reads the publisher's cache
/// line once per batch, not once per frame.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
    /// Position of the next record to read.
    pub read: u64,
    /// Sequence number of the next frame due.
    pub expected: u64,
    /// The tail last loaded.
    pub cached_tail: u64,
    /// Just moved to the oldest record after being overrun: the first frame
    /// found may be ahead of `expected` (the gap is the lag).
    pub resync: bool,
    /// Copied payloads, as words.
    pub buf: Vec<u64>,
    /// Index in `buf` of the frame last returned.
    pub current: usize,
    /// Validated frames copied ahead, in order.
    queue: std::collections::VecDeque<Copied>,
    /// Where the last refill ended, if at a record it could not decode
    /// (reported once the frames before it are delivered).
    suspect: Option<Corruption>,
    /// Frames the next refill may copy: [`BATCH_FRAMES`], down to 1 after
    /// an overrun (the oldest frames, where an overrun resumes, are the
    /// next to be overwritten), doubling back after each refill that
    /// validates.
    batch: usize,
    /// The frame [`latest`](Cursor::latest) last copied, while it is still
    /// at the start of `buf`: the `latest` word that named it, and the
    /// frame. A `latest` call that loads the same word returns this copy
    /// again (see there).
    latest_copy: Option<LatestCopy>,
}

/// See [`Cursor::latest_copy`].
#[derive(Debug, Clone, Copy)]
struct LatestCopy {
    word: u64,
    seq: u64,
    len: u64,
    size: u64,
}

/// What one read attempt returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Got {
    /// A frame of `len` bytes with sequence number `seq`, in the buffer.
    Frame { seq: u64, len: u64 },
    /// `n` frames were overwritten before they were read.
    Lagged(u64),
}

impl Cursor {
    /// A cursor at `read`, where frame `expected` is due.
    pub fn at(read: u64, expected: u64) -> Cursor {
        Cursor {
            read,
            expected,
            cached_tail: read,
            resync: false,
            buf: Vec::new(),
            current: 0,
            queue: std::collections::VecDeque::new(),
            suspect: None,
            batch: BATCH_FRAMES,
            latest_copy: None,
        }
    }

    /// The payload words of the frame last returned.
    pub fn frame_words(&self, len: u64) -> &[u64] {
        &self.buf[self.current..self.current + len.div_ceil(8) as usize]
    }

    /// Reads the next frame without waiting. `Ok(None)`: nothing new. The
    /// tail is re-read (Acquire) before saying so: the re-check (S4) of the
    /// wake-up handshake in `wait.rs`.
    pub fn next<M: BcastMem>(&mut self, m: &M) -> Result<Option<Got>, Corruption> {
        self.next_checked(m, true)
    }

    #[inline]
    fn next_checked<M: BcastMem>(
        &mut self,
        m: &M,
        validate: bool,
    ) -> Result<Option<Got>, Corruption> {
        let cap = m.capacity();
        loop {
            if let Some(f) = self.queue.pop_front() {
                if f.seq == self.expected {
                    self.read = f.pos + f.size;
                    self.expected += 1;
                    self.resync = false;
                    self.current = f.at;
                    return Ok(Some(Got::Frame {
                        seq: f.seq,
                        len: f.len,
                    }));
                }
                if self.resync && f.seq > self.expected {
                    // The frame stays where it is, and is due next.
                    let lost = f.seq - self.expected;
                    self.expected = f.seq;
                    self.resync = false;
                    self.queue.push_front(f);
                    return Ok(Some(Got::Lagged(lost)));
                }
                self.queue.clear();
                return Err(Corruption::Sequence {
                    pos: f.pos,
                    expected: self.expected,
                    found: f.seq,
                });
            }
            if let Some(c) = self.suspect.take() {
                return Err(c);
            }
            if self.read >= self.cached_tail {
                // ORDERING(bcast-publish): Acquire; pairs with the Release
                // tail store in `publish`, so the records below it are
                // visible.
                let tail = position(m.tail().load(Acquire))?;
                if tail < self.cached_tail || tail % 8 != 0 {
                    return Err(Corruption::CursorRegressed {
                        seen: self.cached_tail,
                        found: tail,
                    });
                }
                self.cached_tail = tail;
                if self.read >= tail {
                    return Ok(None);
                }
            }
            if self.cached_tail - self.read > cap {
                // Already overwritten: no need to look.
                self.batch = 1;
                self.resync(m)?;
                continue;
            }
            self.refill(m, validate)?;
        }
    }

    /// Copies the published records from `read` on, then validates them
    /// with one `intent` load (see the type's docs): queues the frames, or
    /// moves to the oldest record if `read` itself was overwritten.
    fn refill<M: BcastMem>(&mut self, m: &M, validate: bool) -> Result<(), Corruption> {
        let cap = m.capacity();
        self.buf.clear();
        self.latest_copy = None;
        let mut pos = self.read;
        let mut bad = None;
        while pos < self.cached_tail
            && self.queue.len() < self.batch
            && (self.queue.is_empty() || self.buf.len() < BATCH_WORDS)
        {
            let avail = self.cached_tail - pos;
            let off = m.offset(pos);
            // ORDERING: Relaxed; the tail load (Acquire) made the records
            // below it visible, and the fence below orders these loads
            // before the validating load of `intent`.
            let word = m.word(pos).load(Relaxed);
            match frame_word::decode(word) {
                frame_word::Decoded::Pad if cap - off <= avail => pos += cap - off,
                frame_word::Decoded::Data(len)
                    if u64::from(len) <= m.max_frame()
                        && bcast_frame_size(u64::from(len)) <= avail.min(cap - off) =>
                {
                    let len = u64::from(len);
                    // ORDERING: Relaxed, as the frame word.
                    let seq = m.word(pos + 8).load(Relaxed);
                    let at = self.buf.len();
                    // Relaxed loads, as the frame word.
                    m.load_words(
                        pos + layout::BCAST_FRAME_HEADER,
                        layout::align_up(len) / 8,
                        &mut self.buf,
                    );
                    let size = bcast_frame_size(len);
                    self.queue.push_back(Copied {
                        pos,
                        seq,
                        len,
                        size,
                        at,
                    });
                    pos += size;
                }
                _ => {
                    // Judged only once validated: a record being
                    // overwritten decodes as anything.
                    bad = Some(match frame_word::decode(word) {
                        frame_word::Decoded::Data(len) if u64::from(len) > m.max_frame() => {
                            Corruption::FrameTooLong {
                                pos,
                                len: len.into(),
                                max: m.max_frame(),
                            }
                        }
                        frame_word::Decoded::Data(_) | frame_word::Decoded::Pad => {
                            Corruption::FrameOverrun {
                                pos,
                                needs: cap - off,
                                available: avail,
                            }
                        }
                        _ => Corruption::FrameWord { pos, word },
                    });
                    break;
                }
            }
        }
        // ORDERING(bcast-validate): this Acquire fence pairs with the
        // publisher's Release fence after its `intent` store: if any load
        // above read a word written after that fence, the `intent` load
        // below sees that `intent` (or a later one). So `intent <= read +
        // capacity` means every record copied from `read` on is what was
        // published there.
        m.fence_acquire();
        // ORDERING: Relaxed; ordered by the fence above.
        let intent = m.intent().load(Relaxed);
        if validate && intent > self.read + cap {
            self.queue.clear();
            self.batch = 1;
            return self.resync(m);
        }
        self.batch = (self.batch * 2).min(BATCH_FRAMES);
        if self.queue.is_empty() {
            // Only padding (or nothing readable) before `pos`.
            if let Some(c) = bad {
                return Err(c);
            }
            self.read = pos;
        } else {
            self.suspect = bad;
        }
        Ok(())
    }

    /// Moves to the oldest record after being overrun.
    fn resync<M: BcastMem>(&mut self, m: &M) -> Result<(), Corruption> {
        // ORDERING(bcast-oldest): Acquire; pairs with the publisher's Release
        // `intent` store, which follows its `oldest` store: the `oldest`
        // loaded next is at least the one stored with this intent, so
        // `oldest >= intent - capacity > read`.
        let _intent = m.intent().load(Acquire);
        // ORDERING(bcast-oldest): Acquire; pairs with the Release `oldest`
        // store, which follows the tail store that published the record at
        // `oldest`: the tail loaded next covers it.
        let oldest = position(m.oldest().load(Acquire))?;
        // ORDERING(bcast-publish): Acquire, as in `next`.
        let tail = position(m.tail().load(Acquire))?;
        if oldest <= self.read || oldest > tail || oldest % 8 != 0 {
            return Err(Corruption::Cursors {
                head: oldest,
                tail,
                capacity: m.capacity(),
            });
        }
        self.read = oldest;
        self.cached_tail = tail.max(self.cached_tail);
        self.resync = true;
        self.suspect = None;
        Ok(())
    }

    /// Reads the newest frame and moves past it, so that the next `next`
    /// waits for a newer one. The newest frame is returned also when this
    /// cursor has read it already (the current value, as a config reader
    /// wants it). `Ok(None)`: nothing published yet.
    ///
    /// When the `latest` word still holds the value it held when this
    /// cursor last copied the newest frame, and that copy is still in the
    /// buffer, the copy is returned again without reading the ring: the
    /// word names a free-running position, which only grows (a publisher
    /// stores it after each publication; a new publisher's [`Tx::attach`]
    /// stores the position of the last published frame, never an earlier
    /// one), and a published frame never changes, so the same word means
    /// the same frame, validated when it was copied. A config reader
    /// polling a value that changes now and then pays one load of a shared
    /// word per call instead of a copy.
    pub fn latest<M: BcastMem>(&mut self, m: &M) -> Result<Option<Got>, Corruption> {
        self.latest_checked(m, true)
    }

    /// [`latest`](Cursor::latest); `recheck: false` (a model's sabotage)
    /// returns the cached copy without looking at the `latest` word.
    #[inline]
    fn latest_checked<M: BcastMem>(
        &mut self,
        m: &M,
        recheck: bool,
    ) -> Result<Option<Got>, Corruption> {
        // `latest` reads into the copy buffer, which the frames queued from
        // the last batch point into: drop them first, and step back to the
        // first of them, so the next batch copies them again (if they are
        // still there) whatever `latest` ends with, an error included. (A
        // queued frame left pointing into the overwritten buffer was found
        // by the fuzz target `ops_broadcast`.)
        if let Some(f) = self.queue.front() {
            self.read = f.pos;
        }
        self.queue.clear();
        self.suspect = None;
        let mut tries = 0u32;
        loop {
            // ORDERING(bcast-latest): Acquire; pairs with the Release store of
            // `latest` after the tail store that published the frame.
            let latest = m.latest().load(Acquire);
            if latest == 0 {
                return Ok(None);
            }
            let pos = position(latest - 1)?;
            if pos % 8 != 0 {
                return Err(Corruption::MisalignedCursor { cursor: pos });
            }
            if let Some(c) = self.latest_copy
                && (c.word == latest || !recheck)
                && c.seq + 1 >= self.expected
            {
                // The frame copied last time (see above); the cursor moves
                // as if it had been copied again.
                self.current = 0;
                self.read = c.word - 1 + c.size;
                self.cached_tail = self.cached_tail.max(self.read);
                self.expected = c.seq + 1;
                self.resync = false;
                return Ok(Some(Got::Frame {
                    seq: c.seq,
                    len: c.len,
                }));
            }
            self.latest_copy = None;
            match read_record(m, pos, m.capacity() - m.offset(pos), &mut self.buf, true)? {
                Read::Frame { seq, len, size } => {
                    self.queue.clear();
                    self.suspect = None;
                    self.current = 0;
                    if seq + 1 < self.expected {
                        // Older than a frame we already read: `latest` is
                        // stale for a moment (the publisher is between its
                        // tail and latest stores). Look again; a publisher
                        // killed there leaves nothing newer to report.
                        tries += 1;
                        if tries > 1000 {
                            return Ok(None);
                        }
                        std::hint::spin_loop();
                        continue;
                    }
                    self.read = pos + size;
                    self.cached_tail = self.cached_tail.max(self.read);
                    // A refill copied ahead: those frames are older now.
                    self.expected = seq + 1;
                    self.resync = false;
                    self.latest_copy = Some(LatestCopy {
                        word: latest,
                        seq,
                        len,
                        size,
                    });
                    return Ok(Some(Got::Frame { seq, len }));
                }
                Read::Pad { .. } => return Err(Corruption::FrameWord { pos, word: 0 }),
                // Overwritten since we loaded `latest`: the publisher has
                // published newer frames; look again.
                Read::Lapped => {
                    tries += 1;
                    if tries > 1000 {
                        return Err(Corruption::Cursors {
                            head: pos,
                            // ORDERING: Relaxed; for the error message.
                            tail: m.tail().load(Relaxed),
                            capacity: m.capacity(),
                        });
                    }
                }
            }
        }
    }
}

/// Where a new subscriber starts: just after the newest published frame
/// (`from_oldest`: at the oldest record still in the ring), with the
/// sequence number due there, read from a validated frame.
pub(crate) fn start<M: BcastMem>(m: &M, from_oldest: bool) -> Result<Cursor, Corruption> {
    let mut buf = Vec::new();
    for _ in 0..1000 {
        // ORDERING(bcast-latest): Acquire, as in `Cursor::latest`.
        let latest = m.latest().load(Acquire);
        if latest == 0 {
            // Nothing published yet (or the first frame is being published:
            // then it is read from position 0 as frame 0).
            return Ok(Cursor::at(0, 0));
        }
        let newest = position(latest - 1)?;
        if !from_oldest {
            match read_record(m, newest, m.capacity() - m.offset(newest), &mut buf, false)? {
                Read::Frame { seq, size, .. } => return Ok(Cursor::at(newest + size, seq + 1)),
                Read::Pad { .. } => {
                    return Err(Corruption::FrameWord {
                        pos: newest,
                        word: frame_word::PAD,
                    });
                }
                Read::Lapped => continue,
            }
        }
        // ORDERING(bcast-oldest): Acquire, as in `Cursor::resync`.
        let mut pos = position(m.oldest().load(Acquire))?;
        // ORDERING(bcast-publish): Acquire, as in `Cursor::next`.
        let tail = position(m.tail().load(Acquire))?;
        if pos > tail || pos % 8 != 0 {
            return Err(Corruption::Cursors {
                head: pos,
                tail,
                capacity: m.capacity(),
            });
        }
        loop {
            if pos >= tail {
                break;
            }
            match read_record(m, pos, tail - pos, &mut buf, false)? {
                Read::Pad { skip } => pos += skip,
                Read::Frame { seq, .. } => return Ok(Cursor::at(pos, seq)),
                Read::Lapped => break,
            }
        }
    }
    // ORDERING: Relaxed; for the error message.
    let (head, tail) = (m.oldest().load(Relaxed), m.tail().load(Relaxed));
    Err(Corruption::Cursors {
        head,
        tail,
        capacity: m.capacity(),
    })
}

/// The publisher's private state.
#[derive(Debug)]
pub(crate) struct Tx {
    /// End of the newest published record.
    pub tail: u64,
    /// The largest `intent` stored.
    pub intent: u64,
    /// Start of the oldest record not overwritten.
    pub oldest: u64,
    /// Sequence number of the next frame.
    pub next_seq: u64,
}

impl Tx {
    /// The state of a publisher that has just taken the role: resumes
    /// after the last *published* frame. A predecessor killed while writing
    /// left `intent > tail` and perhaps a stale `latest` (killed between
    /// its tail and latest stores): the records from the newest intact one
    /// up to `tail` are walked to find the last published frame and its
    /// sequence number, and `latest` is put right.
    pub fn attach<M: BcastMem>(m: &M) -> Result<Tx, Corruption> {
        let cap = m.capacity();
        // ORDERING(bcast-publish): Acquire; pairs with the previous
        // publisher's Release stores, so the records it published are
        // visible. Nobody else writes these words while we hold the role.
        let tail = position(m.tail().load(Acquire))?;
        let intent = position(m.intent().load(Acquire))?;
        let oldest = position(m.oldest().load(Acquire))?;
        let latest = m.latest().load(Acquire);
        let bad = || Corruption::Cursors {
            head: oldest,
            tail,
            capacity: cap,
        };
        for c in [tail, intent, oldest] {
            if c % 8 != 0 {
                return Err(Corruption::MisalignedCursor { cursor: c });
            }
        }
        if oldest > tail || tail - oldest > cap || latest > tail {
            return Err(bad());
        }
        // `intent` of a killed publisher may be ahead of `tail`, by one
        // record and its padding at most.
        if intent < tail || intent - tail > cap / 2 {
            return Err(Corruption::Cursors {
                head: tail,
                tail: intent,
                capacity: cap,
            });
        }
        let mut pos = if latest > oldest {
            position(latest - 1)?
        } else {
            oldest
        };
        let mut last: Option<(u64, u64)> = None;
        let mut buf = Vec::new();
        while pos < tail {
            match read_record(m, pos, tail - pos, &mut buf, false)? {
                Read::Pad { skip } => pos += skip,
                Read::Frame { seq, size, .. } => {
                    if let Some((_, prev)) = last
                        && seq != prev + 1
                    {
                        return Err(Corruption::Sequence {
                            pos,
                            expected: prev + 1,
                            found: seq,
                        });
                    }
                    last = Some((pos, seq));
                    pos += size;
                }
                // Not while we hold the role: the intact records lie at or
                // after `oldest`.
                Read::Lapped => return Err(bad()),
            }
        }
        let next_seq = match last {
            Some((at, seq)) => {
                if latest != at + 1 {
                    // ORDERING: Release, as the store in `commit`.
                    m.latest().store(at + 1, Release);
                }
                seq + 1
            }
            None if tail == 0 => 0,
            None => return Err(bad()),
        };
        Ok(Tx {
            tail,
            intent,
            oldest,
            next_seq,
        })
    }
}

/// A record placed by [`claim`]: padding (if the frame does not fit before
/// the end of the data area) then the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Placed {
    pub pad: u64,
    pub start: u64,
}

/// Announces the write of a frame of `len` bytes: moves `oldest` past every
/// record the write will overwrite, stores it, stores `intent` (the end of
/// the new record), then a Release fence; the payload may be written after
/// this returns, with relaxed stores.
pub(crate) fn claim<M: BcastMem>(m: &M, tx: &mut Tx, len: u64) -> Result<Placed, Corruption> {
    let cap = m.capacity();
    let size = bcast_frame_size(len);
    let contiguous = cap - m.offset(tx.tail);
    let (pad, start) = if size <= contiguous {
        (0, tx.tail)
    } else {
        (contiguous, tx.tail + contiguous)
    };
    let end = start + size;
    while tx.oldest + cap < end {
        if tx.oldest >= tx.tail {
            // Records of at most a quarter of the ring never overwrite the
            // newest frame; only a corrupt record walks us here.
            return Err(Corruption::Cursors {
                head: tx.oldest,
                tail: tx.tail,
                capacity: cap,
            });
        }
        // ORDERING: Relaxed; a word this publisher (or its predecessor,
        // made visible by the Acquire loads in `Tx::attach`) wrote.
        let word = m.word(tx.oldest).load(Relaxed);
        tx.oldest += match frame_word::decode(word) {
            frame_word::Decoded::Pad => cap - m.offset(tx.oldest),
            frame_word::Decoded::Data(l) if u64::from(l) <= m.max_frame() => {
                bcast_frame_size(u64::from(l))
            }
            _ => {
                return Err(Corruption::FrameWord {
                    pos: tx.oldest,
                    word,
                });
            }
        };
    }
    // ORDERING(bcast-oldest): Release; pairs with the Acquire load in
    // `Cursor::resync`: the tail that published the record at `oldest` was
    // stored before.
    m.oldest().store(tx.oldest, Release);
    tx.intent = tx.intent.max(end);
    // ORDERING(bcast-oldest): Release; orders the `oldest` store before it
    // for a subscriber that loads this intent with Acquire.
    m.intent().store(tx.intent, Release);
    // ORDERING(bcast-validate): Release fence; every data store after it
    // that a subscriber's load reads makes this `intent` visible to the
    // load after that subscriber's Acquire fence (`read_record`).
    m.fence_release();
    crate::testing::point("bcast-claimed");
    Ok(Placed { pad, start })
}

/// Publishes the frame of `len` bytes placed at `p` (its payload already
/// written): the padding word, the sequence number and the frame word,
/// then the tail (Release), then `latest`.
pub(crate) fn commit<M: BcastMem>(m: &M, tx: &mut Tx, p: Placed, len: u64) {
    write_header(m, tx, p, len);
    publish(m, tx, p, len);
    crate::testing::point("bcast-published");
    publish_latest(m, p);
}

/// The record's words other than the payload: padding word, sequence
/// number, frame word (relaxed; published by the tail store).
pub(crate) fn write_header<M: BcastMem>(m: &M, tx: &Tx, p: Placed, len: u64) {
    crate::testing::point("bcast-written");
    if p.pad > 0 {
        // ORDERING: Relaxed; published by the tail store.
        m.word(tx.tail).store(frame_word::PAD, Relaxed);
    }
    // ORDERING: Relaxed; published by the tail store.
    m.word(p.start + 8).store(tx.next_seq, Relaxed);
    // ORDERING: Relaxed; published by the tail store.
    m.word(p.start).store(frame_word::data(len as u32), Relaxed);
}

/// Publishes the record: the tail store.
pub(crate) fn publish<M: BcastMem>(m: &M, tx: &mut Tx, p: Placed, len: u64) {
    let end = p.start + bcast_frame_size(len);
    // ORDERING(bcast-publish): Release; pairs with the subscribers' Acquire
    // tail loads. W1 of the wake-up handshake.
    m.tail().store(end, Release);
    tx.tail = end;
    tx.next_seq += 1;
}

/// Names the newly published frame as the newest.
pub(crate) fn publish_latest<M: BcastMem>(m: &M, p: Placed) {
    // ORDERING(bcast-latest): Release; pairs with the Acquire loads of
    // `latest`. Stored after the tail, so `latest` always names a
    // published frame.
    m.latest().store(p.start + 1, Release);
}

/// Writes `bytes` as the payload starting at position `pos`, word by word
/// (relaxed atomic stores; the last word zero-padded).
pub(crate) fn store_bytes<M: BcastMem>(m: &M, pos: u64, bytes: &[u8]) {
    let mut chunks = bytes.chunks_exact(8);
    let mut p = pos;
    for c in &mut chunks {
        let w = u64::from_ne_bytes(c.try_into().expect("chunks of 8"));
        // ORDERING: Relaxed; after the Release fence of `claim`, published
        // by the tail store of `commit`.
        m.word(p).store(w, Relaxed);
        p += 8;
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // ORDERING: as above.
        m.word(p).store(u64::from_ne_bytes(w), Relaxed);
    }
}

// ---------------------------------------------------------------------
// The mapping.
// ---------------------------------------------------------------------

/// Pointers to a broadcast ring's header words and data area.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Raw {
    blocks: Blocks,
    data: NonNull<u8>,
    capacity: u64,
    max_frame: u64,
}

// SAFETY: pointers into a mapping shared with other processes anyway, only
// ever dereferenced to shared references of atomics; the owner keeps the
// Region beside this value.
unsafe impl Send for Raw {}
// SAFETY: as above.
unsafe impl Sync for Raw {}

impl BcastMem for Raw {
    type W = AtomicU64;
    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.blocks.producer().tail
    }
    #[inline]
    fn intent(&self) -> &AtomicU64 {
        &self.blocks.producer().intent
    }
    #[inline]
    fn oldest(&self) -> &AtomicU64 {
        &self.blocks.producer().oldest
    }
    #[inline]
    fn latest(&self) -> &AtomicU64 {
        &self.blocks.producer().latest
    }
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        let off = self.offset(pos);
        // SAFETY: `off < capacity` (masked) and a multiple of 8 (every
        // position handed here is), inside the page-aligned data area the
        // Region maps and keeps alive beside this value.
        let p = unsafe { self.data.as_ptr().add(off as usize) };
        // SAFETY: 8-byte aligned, live, and only ever accessed atomically
        // (by every process: this flavour has no plain accesses).
        unsafe { &*p.cast::<AtomicU64>() }
    }
    #[inline]
    fn capacity(&self) -> u64 {
        self.capacity
    }
    #[inline]
    fn max_frame(&self) -> u64 {
        self.max_frame
    }
    /// The words as one slice of the mapping when they do not cross its
    /// end (a record never does): no per-word masking, so the loop is a
    /// run of plain 8-byte loads (about half the time of the word-by-word
    /// form for a 4 KiB frame).
    #[inline]
    fn load_words(&self, pos: u64, n: u64, buf: &mut Vec<u64>) {
        let off = self.offset(pos);
        match n.checked_mul(8).and_then(|b| b.checked_add(off)) {
            Some(end) if end <= self.capacity => {
                // SAFETY: `off < capacity`: inside the data area the Region
                // maps and keeps alive beside this value.
                let first = unsafe { self.data.as_ptr().add(off as usize) };
                // SAFETY: `first` is 8-byte aligned (`off` is a multiple of
                // 8, as every position handed here is, and the data area is
                // page-aligned) and `off + 8 n <= capacity`: the `n` words
                // lie inside the mapped data area, and are only ever
                // accessed atomically (by every process).
                let words =
                    unsafe { std::slice::from_raw_parts(first.cast::<AtomicU64>(), n as usize) };
                // ORDERING: Relaxed; as in the trait's form.
                buf.extend(words.iter().map(|w| w.load(Relaxed)));
            }
            // ORDERING: Relaxed; as in the trait's form.
            _ => buf.extend((0..n).map(|i| self.word(pos + 8 * i).load(Relaxed))),
        }
    }
}

impl Base for Broadcast {
    type Mem = Raw;

    fn mem(region: &Region) -> Result<Raw, Error> {
        let geo = region.geometry();
        Ok(Raw {
            blocks: Blocks::of(region),
            data: region.data(),
            capacity: geo.capacity,
            max_frame: geo.max_frame,
        })
    }

    /// The publisher is alone; subscribers are many.
    fn exclusive(_: &Raw, role: Role) -> bool {
        role == Role::Producer
    }

    /// Nobody records claims.
    fn reusable(_: &Raw, _: u64) -> bool {
        true
    }

    fn claim_settled(_: &Raw, _: u64) -> bool {
        true
    }

    /// `(oldest, tail)`.
    fn cursors(m: &Raw) -> (u64, u64) {
        // ORDERING: Acquire; a snapshot for monitoring.
        (m.oldest().load(Acquire), m.tail().load(Acquire))
    }
}

// ---------------------------------------------------------------------
// The handles.
// ---------------------------------------------------------------------

/// A broadcast ring in shared memory: one [`Publisher`] at a time, any
/// number of [`Subscriber`]s (up to 127 handles in all processes), each
/// of which receives every frame or learns how many it missed. Cheap to
/// clone (an `Arc`).
///
/// Frames carry up to `capacity / 4 - 16` bytes (the default
/// [`max_frame`](Ring::max_frame)); each takes 16 bytes of header plus its
/// payload rounded up to 8.
#[derive(Clone)]
pub struct Ring {
    shared: Arc<Shared<Broadcast>>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("path", &self.path())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

fn no_init(_: &Region) {}

impl Ring {
    fn wrap(region: Region) -> Result<Ring, Error> {
        Ok(Ring {
            shared: Arc::new(Shared::new(region)?),
        })
    }

    /// Creates a new broadcast ring file at `path` (see
    /// [`spsc::Ring::create`](crate::Ring::create) for the file's
    /// creation, mode and errors). `cfg` is a [`Config::new`] capacity; its
    /// `max_frame` may be at most `capacity / 4 - 16`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the file
    /// exists or cannot be created.
    ///
    /// ```no_run
    /// let ring = mmring::broadcast::Ring::create("/dev/shm/prices", mmring::Config::new(1 << 20))?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::create(
            path.as_ref(),
            &cfg,
            Kind::Broadcast,
            no_init,
        )?)
    }

    /// Opens an existing broadcast ring file.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`](crate::Ring::open); a ring of another kind is
    /// [`Error::WrongKind`].
    pub fn open(path: impl AsRef<Path>) -> Result<Ring, Error> {
        Ring::wrap(Region::open(path.as_ref(), Some(Kind::Broadcast))?)
    }

    /// As [`open`](Ring::open), with the opt-ins of `trust`.
    ///
    /// # Errors
    ///
    /// As [`Ring::open_with`](crate::Ring::open_with).
    pub fn open_with(path: impl AsRef<Path>, trust: Trust) -> Result<Ring, Error> {
        Ring::wrap(Region::open_with(
            path.as_ref(),
            &trust,
            Some(Kind::Broadcast),
        )?)
    }

    /// Opens the ring at `path`, creating it with `cfg` if it does not
    /// exist; race-free across processes.
    ///
    /// # Errors
    ///
    /// As `create` and `open`, plus [`Error::GeometryMismatch`].
    pub fn open_or_create(path: impl AsRef<Path>, cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::open_or_create(
            path.as_ref(),
            &cfg,
            Kind::Broadcast,
            no_init,
        )?)
    }

    /// Creates a ring in anonymous shared memory (a sealed memfd), shared
    /// across `fork` or by passing [`as_fd`](Ring::as_fd).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`]; [`Error::Io`].
    pub fn anonymous(cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::anonymous(&cfg, Kind::Broadcast, no_init)?)
    }

    /// Attaches through a file descriptor of a broadcast ring.
    ///
    /// # Errors
    ///
    /// As `open`.
    pub fn from_fd(fd: OwnedFd) -> Result<Ring, Error> {
        Ring::wrap(Region::from_fd(fd, Some(Kind::Broadcast))?)
    }

    /// Takes the publisher role: one live publisher at a time, in any
    /// process. A publisher whose predecessor was killed continues after
    /// the last frame it published.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] while another live handle publishes;
    /// [`Error::TooManyAttachments`]; [`Error::Corrupt`] if the header's
    /// cursors or the records they name are inconsistent.
    pub fn publisher(&self) -> Result<Publisher, Error> {
        let role = RoleGuard::attach(&self.shared, Role::Producer)?;
        let st = Tx::attach(&self.shared.mem).map_err(|c| role.explain(c))?;
        role.poisoned()?;
        Ok(Publisher {
            role,
            st,
            stage: Vec::new(),
        })
    }

    /// Attaches a subscriber that starts at the next frame published (the
    /// first one after the newest frame in the ring now). Needs no
    /// publisher.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyAttachments`] when 128 handles are attached;
    /// [`Error::Corrupt`].
    pub fn subscriber(&self) -> Result<Subscriber, Error> {
        self.subscribe(false)
    }

    /// Attaches a subscriber that starts at the oldest frame still in the
    /// ring.
    ///
    /// # Errors
    ///
    /// As [`subscriber`](Ring::subscriber).
    pub fn subscriber_from_oldest(&self) -> Result<Subscriber, Error> {
        self.subscribe(true)
    }

    fn subscribe(&self, from_oldest: bool) -> Result<Subscriber, Error> {
        let role = RoleGuard::attach(&self.shared, Role::Consumer)?;
        let cur = start(&self.shared.mem, from_oldest).map_err(|c| role.explain(c))?;
        role.poisoned()?;
        Ok(Subscriber { role, cur })
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.shared.region.geometry().capacity
    }

    /// Largest payload a frame may carry.
    pub fn max_frame(&self) -> usize {
        self.shared.region.geometry().max_frame as usize
    }

    /// [`Kind::Broadcast`].
    pub fn kind(&self) -> Kind {
        Kind::Broadcast
    }

    /// The ring's file descriptor.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.region.fd()
    }

    /// The path of a named ring.
    pub fn path(&self) -> Option<&Path> {
        self.shared.region.path()
    }

    /// A snapshot for monitoring: `producer` is the publisher,
    /// `consumer.holders` the subscribers (with their liveness); `head` is
    /// the oldest record still in the ring and `tail` the end of the
    /// newest, in bytes.
    pub fn stat(&self) -> Stat {
        self.shared.stat()
    }

    /// The ring's identity: 128 random bits written when it was created,
    /// the same in every process that opens it, different for a ring
    /// created anew at the same path (as [`crate::Ring::id`]).
    pub fn id(&self) -> u128 {
        let [hi, lo] = self.shared.region.geometry().ring_id;
        (u128::from(hi) << 64) | u128::from(lo)
    }
}

/// The single writer of a broadcast [`Ring`]. `Send` and `'static`.
/// Dropping it detaches, waking blocked subscribers so that they return
/// [`RecvError::Disconnected`] once they have read everything.
pub struct Publisher {
    role: RoleGuard<Broadcast>,
    st: Tx,
    /// The buffer grants write into (`u64` words: 8-byte aligned).
    stage: Vec<u64>,
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher")
            .field("state", &self.st)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    fn mem(&self) -> &Raw {
        &self.role.shared.mem
    }

    fn check(&self, len: usize) -> Result<u64, SendError> {
        if self.role.att().is_inherited() {
            return Err(SendError::Forked);
        }
        let max = self.mem().max_frame;
        match u64::try_from(len) {
            Ok(l) if l <= max => Ok(l),
            _ => Err(SendError::TooLarge {
                len,
                max: max as usize,
            }),
        }
    }

    /// Publishes `msg` as one frame, overwriting the oldest frames if the
    /// ring is full: never waits. Wakes sleeping subscribers if any sleep.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] above [`max_frame`](Publisher::max_frame);
    /// [`SendError::Forked`]; [`SendError::Corrupt`] if a record the
    /// publisher is about to overwrite is not one it could have written.
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        let len = self.check(msg.len())?;
        let role = &self.role;
        let m = &role.shared.mem;
        let placed = claim(m, &mut self.st, len).map_err(|c| role.explain(c))?;
        store_bytes(m, placed.start + layout::BCAST_FRAME_HEADER, msg);
        commit(m, &mut self.st, placed, len);
        self.wake();
        Ok(())
    }

    /// Publishes the bytes of `value` as one frame.
    ///
    /// # Errors
    ///
    /// As [`send`](Publisher::send).
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.send(bytemuck::bytes_of(value))
    }

    /// A frame of up to `len` bytes to write before publishing it with
    /// [`commit`](BroadcastGrant::commit) or
    /// [`commit_len`](BroadcastGrant::commit_len); dropping the grant
    /// publishes nothing. The grant is a buffer of the publisher's own
    /// (8-byte aligned, reused from frame to frame), copied into the ring at
    /// commit: subscribers may be reading any byte of the ring at any time,
    /// so the ring's bytes are only ever written with atomic stores.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`], [`SendError::Forked`].
    pub fn try_reserve(&mut self, len: usize) -> Result<BroadcastGrant<'_>, SendError> {
        self.check(len)?;
        let words = len.div_ceil(8);
        if self.stage.len() < words {
            self.stage.resize(words, 0);
        }
        Ok(BroadcastGrant {
            publisher: self,
            len,
        })
    }

    fn commit_stage(&mut self, len: usize) -> Result<(), SendError> {
        let role = &self.role;
        let m = &role.shared.mem;
        let placed = claim(m, &mut self.st, len as u64).map_err(|c| role.explain(c))?;
        let start = placed.start + layout::BCAST_FRAME_HEADER;
        for (i, w) in self.stage[..len.div_ceil(8)].iter().enumerate() {
            // ORDERING: Relaxed; as in `store_bytes`.
            m.word(start + 8 * i as u64).store(*w, Relaxed);
        }
        commit(m, &mut self.st, placed, len as u64);
        self.wake();
        Ok(())
    }

    fn wake(&self) {
        let shared = &self.role.shared;
        let p = shared.region.producer_block();
        let point = WaitPoint::new(&p.data_futex, &p.sleep_flag);
        // A wake-up nobody needed needs no follow-up: the flag is clear
        // again, so a dead sleeper costs one.
        if point.take() {
            point.wake_all();
            // Subscribers waiting on a descriptor (`notify.rs`): their
            // records name their sockets. Only here, when someone may
            // sleep: the hot path never reads the table.
            let ring_id = shared.region.geometry().ring_id;
            wait::signal_members(
                u128::MAX,
                |bit| &shared.region.attach_record(bit).notify,
                |bit, nonce| crate::notify::wake(ring_id, bit, nonce),
            );
        }
    }

    /// Sequence number the next frame will carry (frames are numbered from
    /// 0 since the ring was created).
    pub fn next_seq(&self) -> u64 {
        self.st.next_seq
    }

    /// Largest payload a frame may carry.
    pub fn max_frame(&self) -> usize {
        self.mem().max_frame as usize
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.mem().capacity
    }
}

/// A frame being written by a [`Publisher`]: derefs to the reserved
/// bytes (zeroed the first time, else what the previous grant left).
#[must_use = "a BroadcastGrant publishes nothing unless committed"]
pub struct BroadcastGrant<'a> {
    publisher: &'a mut Publisher,
    len: usize,
}

impl fmt::Debug for BroadcastGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BroadcastGrant")
            .field("len", &self.len)
            .finish()
    }
}

impl BroadcastGrant<'_> {
    /// Publishes the whole reserved length.
    ///
    /// # Errors
    ///
    /// As [`Publisher::send`].
    pub fn commit(self) -> Result<(), SendError> {
        let len = self.len;
        self.commit_len(len)
    }

    /// Publishes the first `len` bytes as the frame.
    ///
    /// # Errors
    ///
    /// As [`Publisher::send`].
    ///
    /// # Panics
    ///
    /// If `len` is larger than the reservation.
    pub fn commit_len(self, len: usize) -> Result<(), SendError> {
        assert!(
            len <= self.len,
            "commit_len({len}) exceeds the reservation of {}",
            self.len
        );
        self.publisher.commit_stage(len)
    }

    /// Views the first `size_of::<T>()` bytes as a `T`, to build it in
    /// place.
    ///
    /// # Panics
    ///
    /// If the reservation is shorter than `T` or `T` needs more than 8-byte
    /// alignment.
    pub fn as_pod_mut<T: bytemuck::Pod>(&mut self) -> &mut T {
        bytemuck::from_bytes_mut(&mut self[..size_of::<T>()])
    }
}

impl std::ops::Deref for BroadcastGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.publisher.stage)[..self.len]
    }
}

impl std::ops::DerefMut for BroadcastGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut::<u64, u8>(&mut self.publisher.stage)[..self.len]
    }
}

/// The next frame (or lag) of `cur`, with errors explained and the
/// mapping checked before a frame is handed out: one attempt of every
/// receive, blocking or not.
fn take(role: &RoleGuard<Broadcast>, cur: &mut Cursor) -> Result<Option<Got>, Corruption> {
    let got = cur.next(&role.shared.mem).map_err(|c| role.explain(c))?;
    if got.is_some() {
        role.poisoned()?;
    }
    Ok(got)
}

/// A reader of a broadcast [`Ring`]. `Send` and `'static`. Holds its own
/// position; attaching or dropping it does not involve the publisher.
pub struct Subscriber {
    role: RoleGuard<Broadcast>,
    cur: Cursor,
}

impl fmt::Debug for Subscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscriber")
            .field("read", &self.cur.read)
            .field("next_seq", &self.cur.expected)
            .finish_non_exhaustive()
    }
}

/// A frame received by a [`Subscriber`]: a validated copy in the
/// subscriber's own buffer (8-byte aligned), valid until its next call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Received<'a> {
    bytes: &'a [u8],
    seq: u64,
}

impl Received<'_> {
    /// The frame's sequence number: frames are numbered from 0 since the
    /// ring was created.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Views the bytes as a `T`, if the length is exactly `size_of::<T>()`
    /// and `T` needs at most 8-byte alignment.
    ///
    /// # Errors
    ///
    /// `bytemuck`'s [`PodCastError`](bytemuck::PodCastError).
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, bytemuck::PodCastError> {
        bytemuck::try_from_bytes(self.bytes)
    }
}

impl std::ops::Deref for Received<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl AsRef<[u8]> for Received<'_> {
    fn as_ref(&self) -> &[u8] {
        self.bytes
    }
}

impl fmt::Debug for Received<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Received")
            .field("seq", &self.seq)
            .field("bytes", &self.bytes)
            .finish()
    }
}

impl Subscriber {
    fn frame(&self, seq: u64, len: u64) -> Received<'_> {
        Received {
            bytes: &bytemuck::cast_slice::<u64, u8>(self.cur.frame_words(len))[..len as usize],
            seq,
        }
    }

    fn attempt(&mut self) -> Result<Option<Got>, RecvError> {
        if self.role.att().is_inherited() {
            return Err(RecvError::Forked);
        }
        Ok(take(&self.role, &mut self.cur)?)
    }

    fn deliver(&self, got: Got) -> Result<Received<'_>, RecvError> {
        match got {
            Got::Frame { seq, len } => Ok(self.frame(seq, len)),
            Got::Lagged(n) => Err(RecvError::Lagged(n)),
        }
    }

    /// The next frame, without waiting.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no new frame is there;
    /// [`RecvError::Lagged`] (once per gap) if the publisher overwrote
    /// frames this subscriber had not read: the next call returns the
    /// oldest frame still in the ring; [`RecvError::Forked`];
    /// [`RecvError::Corrupt`].
    pub fn try_recv(&mut self) -> Result<Received<'_>, RecvError> {
        match self.attempt()? {
            Some(got) => self.deliver(got),
            None => Err(RecvError::Empty),
        }
    }

    /// The next frame, waiting for it: spinning briefly, then asleep on the
    /// ring's futex until the publisher publishes.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the publisher has detached or died
    /// and every frame it published has been read or lost (a ring whose
    /// publisher never attached is waited on); [`RecvError::Lagged`];
    /// [`RecvError::Unlinked`]; [`RecvError::Forked`];
    /// [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<Received<'_>, RecvError> {
        let got = self.wait(None)?;
        self.deliver(got)
    }

    /// As [`recv`](Subscriber::recv), giving up with [`RecvError::Timeout`]
    /// after `timeout`.
    ///
    /// # Errors
    ///
    /// As `recv`, plus [`RecvError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Received<'_>, RecvError> {
        let got = self.wait(deadline(timeout))?;
        self.deliver(got)
    }

    fn wait(&mut self, deadline: Option<Instant>) -> Result<Got, RecvError> {
        if let Some(got) = self.attempt()? {
            return Ok(got);
        }
        let role = &self.role;
        let cur = &mut self.cur;
        let p = role.shared.region.producer_block();
        let r = wait::block_with(
            role.strategy,
            WaitPoint::new(&p.data_futex, &p.sleep_flag),
            role.bit(),
            deadline,
            || take(role, cur),
            || role.slow_check(),
            || role.peer_state().is_gone(),
        );
        Ok(r?)
    }

    /// As [`recv`](Subscriber::recv), awaiting instead of blocking (feature
    /// `tokio`): no thread blocks, the task awaits this subscriber's
    /// wake-up socket (see [`Consumer::notify_fd`](crate::Consumer::notify_fd)).
    /// Cancellation-safe: a dropped future consumed nothing.
    ///
    /// # Errors
    ///
    /// As [`recv`](Subscriber::recv).
    #[cfg(feature = "tokio")]
    pub async fn recv_async(&mut self) -> Result<Received<'_>, RecvError> {
        let got = self.wait_async(None).await?;
        self.deliver(got)
    }

    /// As [`recv_async`](Subscriber::recv_async), giving up with
    /// [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Subscriber::recv_timeout).
    #[cfg(feature = "tokio")]
    pub async fn recv_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> Result<Received<'_>, RecvError> {
        let got = self.wait_async(deadline(timeout)).await?;
        self.deliver(got)
    }

    #[cfg(feature = "tokio")]
    async fn wait_async(&mut self, deadline: Option<Instant>) -> Result<Got, RecvError> {
        if let Some(got) = self.attempt()? {
            return Ok(got);
        }
        // Without a socket (it could not be bound), the wait polls.
        let _ = self.role.ensure_notifier();
        let role = &self.role;
        let cur = &mut self.cur;
        let p = role.shared.region.producer_block();
        let r = crate::event::block_async(
            role.strategy,
            WaitPoint::new(&p.data_futex, &p.sleep_flag),
            role.bit(),
            role.notifier.as_ref(),
            |pid| role.trusted(pid),
            deadline,
            || take(role, cur),
            || role.slow_check(),
            || role.peer_state().is_gone(),
        )
        .await;
        Ok(r?)
    }

    /// The newest frame in the ring, if any (`None`: nothing published
    /// yet), skipping everything older, and also when this subscriber has
    /// read it already (it is the current value):
    /// the next [`recv`](Subscriber::recv) waits for a frame newer than
    /// this one. For state that is published whole (a configuration, a
    /// price): read the current value with `latest`, then `recv` each
    /// change.
    ///
    /// Cost: a validated copy of the newest frame (for 4 KiB, about 100 ns
    /// of relaxed 8-byte loads on a current x86 core). When nothing was
    /// published since this subscriber's last `latest` (and no `recv`
    /// since has reused its buffer), it returns that copy again after one
    /// load of the ring's `latest` word, without reading the frame: a
    /// published frame never changes, and the word names it by its
    /// position, which only grows.
    ///
    /// # Errors
    ///
    /// [`RecvError::Forked`], [`RecvError::Corrupt`].
    ///
    /// ```
    /// let ring = mmring::broadcast::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut tx = ring.publisher()?;
    /// let mut rx = ring.subscriber()?;
    /// assert!(rx.latest()?.is_none());
    /// tx.send(b"v1")?;
    /// tx.send(b"v2")?;
    /// assert_eq!(rx.latest()?.as_deref(), Some(&b"v2"[..]));
    /// assert_eq!(rx.try_recv().unwrap_err(), mmring::RecvError::Empty);
    /// // Nothing newer: the current value again.
    /// assert_eq!(rx.latest()?.as_deref(), Some(&b"v2"[..]));
    /// tx.send(b"v3")?;
    /// assert_eq!(&*rx.recv()?, b"v3");
    /// assert_eq!(rx.latest()?.as_deref(), Some(&b"v3"[..]));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn latest(&mut self) -> Result<Option<Received<'_>>, RecvError> {
        if self.role.att().is_inherited() {
            return Err(RecvError::Forked);
        }
        let role = &self.role;
        let got = self
            .cur
            .latest(&role.shared.mem)
            .map_err(|c| role.explain(c))?;
        role.poisoned()?;
        Ok(match got {
            Some(Got::Frame { seq, len }) => Some(self.frame(seq, len)),
            _ => None,
        })
    }

    /// Sequence number of the next frame this subscriber expects.
    pub fn next_seq(&self) -> u64 {
        self.cur.expected
    }

    /// The publisher's state: attached now, never attached, or gone
    /// (cleanly or killed).
    pub fn publisher_state(&self) -> PeerState {
        self.role.peer_state()
    }

    /// Largest payload a frame may carry.
    pub fn max_frame(&self) -> usize {
        self.role.shared.mem.max_frame as usize
    }
}

/// Model checks of the broadcast protocol with loom: the publisher's
/// functions above against a subscriber's `Cursor`, on loom atomics (every
/// data word is one), after wrap-around.
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU64 as L64;

    const CAP: u64 = 128;

    struct Heap {
        tail: L64,
        intent: L64,
        oldest: L64,
        latest: L64,
        words: Vec<L64>,
    }

    impl Heap {
        fn new() -> Self {
            Heap {
                tail: L64::new(0),
                intent: L64::new(0),
                oldest: L64::new(0),
                latest: L64::new(0),
                words: (0..CAP / 8).map(|_| L64::new(0)).collect(),
            }
        }
    }

    impl BcastMem for Heap {
        type W = L64;
        fn tail(&self) -> &L64 {
            &self.tail
        }
        fn intent(&self) -> &L64 {
            &self.intent
        }
        fn oldest(&self) -> &L64 {
            &self.oldest
        }
        fn latest(&self) -> &L64 {
            &self.latest
        }
        fn word(&self, pos: u64) -> &L64 {
            &self.words[(self.offset(pos) / 8) as usize]
        }
        fn capacity(&self) -> u64 {
            CAP
        }
        fn max_frame(&self) -> u64 {
            layout::bcast_max_frame(CAP)
        }
        fn fence_acquire(&self) {
            loom::sync::atomic::fence(Acquire);
        }
        fn fence_release(&self) {
            loom::sync::atomic::fence(Release);
        }
    }

    /// Payload word `j` of frame `seq` written by publisher `w`.
    fn value(seq: u64, w: u64, j: u64) -> u64 {
        seq * 1000 + w * 100 + j + 1
    }

    /// Publishes frame `tx.next_seq` of `len` bytes as publisher `w`,
    /// stopping for ever after `stop` steps (6: all of them).
    fn send(m: &Heap, tx: &mut Tx, len: u64, w: u64, stop: u32) {
        let seq = tx.next_seq;
        let p = claim(m, tx, len).unwrap();
        if stop == 0 {
            return;
        }
        let words = len.div_ceil(8);
        for j in 0..words {
            m.word(p.start + 16 + 8 * j)
                .store(value(seq, w, j), Relaxed);
            if stop == 1 {
                return; // killed with part of the payload written
            }
        }
        if stop == 2 {
            return;
        }
        write_header(m, tx, p, len);
        if stop == 3 {
            return;
        }
        publish(m, tx, p, len);
        if stop == 4 {
            return;
        }
        publish_latest(m, p);
    }

    /// Frames 0..=2 of 16 bytes at 0, 32, 64, frame 3 of 8 bytes at 96:
    /// the tail is at 120, and the next 16-byte frame pads to 128 and
    /// overwrites frame 0.
    fn prefilled() -> (Arc<Heap>, Tx) {
        let m = Arc::new(Heap::new());
        let mut tx = Tx::attach(&*m).unwrap();
        for len in [16, 16, 16, 8] {
            send(&m, &mut tx, len, 0, 6);
        }
        assert_eq!((tx.tail, tx.next_seq), (120, 4));
        (m, tx)
    }

    /// Checks a delivered frame: intact (every word from one writer, of
    /// that frame), and returns its writer.
    fn check(c: &Cursor, seq: u64, len: u64) -> u64 {
        let words = c.frame_words(len);
        let w = (words[0] - 1 - seq * 1000) / 100;
        for (j, &v) in words.iter().enumerate() {
            assert_eq!(v, value(seq, w, j as u64), "torn frame {seq}: {words:?}");
        }
        w
    }

    /// Reads everything left; checks each frame and the lag arithmetic:
    /// returns the sequence numbers delivered and the total lag.
    fn drain(m: &Heap, c: &mut Cursor) -> (Vec<u64>, u64) {
        let (mut seqs, mut lag, mut due) = (Vec::new(), 0, c.expected);
        while let Some(got) = c.next(m).unwrap() {
            match got {
                Got::Frame { seq, len } => {
                    assert_eq!(seq, due);
                    check(c, seq, len);
                    seqs.push(seq);
                    due += 1;
                }
                Got::Lagged(n) => {
                    lag += n;
                    due += n;
                }
            }
        }
        (seqs, lag)
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }

    /// A subscriber reading frame 0 while the publisher, after padding to
    /// the end of the data area, overwrites it: it gets frame 0 intact or
    /// `Lagged(1)`, never a torn frame, and then frames 1..=4 in order.
    #[test]
    fn loom_broadcast_lapped_read_on_wrap() {
        model(|| {
            let (m, mut tx) = prefilled();
            let mut c = Cursor::at(0, 0);
            let p = m.clone();
            let publisher = loom::thread::spawn(move || send(&p, &mut tx, 16, 1, 6));
            let first = c.next(&*m).unwrap();
            if let Some(Got::Frame { seq, len }) = first {
                assert_eq!(seq, 0);
                assert_eq!(check(&c, 0, len), 0);
            }
            assert!(
                matches!(
                    first,
                    Some(Got::Frame { seq: 0, .. }) | Some(Got::Lagged(1))
                ),
                "{first:?}"
            );
            publisher.join().unwrap();
            let (seqs, lag) = drain(&m, &mut c);
            assert_eq!((seqs, lag), (vec![1, 2, 3, 4], 0));
        });
    }

    /// A subscriber that has read everything, reading across the padding
    /// while frame 4 is published: nothing, or frame 4 intact.
    #[test]
    fn loom_broadcast_caught_up_read_across_padding() {
        model(|| {
            let (m, mut tx) = prefilled();
            let mut c = Cursor::at(120, 4);
            let p = m.clone();
            let publisher = loom::thread::spawn(move || send(&p, &mut tx, 16, 1, 6));
            let first = c.next(&*m).unwrap();
            if let Some(got) = first {
                assert!(matches!(got, Got::Frame { seq: 4, .. }), "{got:?}");
                assert_eq!(check(&c, 4, 16), 1);
            }
            publisher.join().unwrap();
            let (seqs, lag) = drain(&m, &mut c);
            assert_eq!(lag, 0);
            assert_eq!(seqs.len() + usize::from(first.is_some()), 1);
        });
    }

    /// The model has teeth: a subscriber that skips the validation after
    /// its copy can return frame 0 mixed with frame 4's words, and the
    /// model finds it.
    #[test]
    #[should_panic]
    fn loom_broadcast_catches_a_read_without_validation() {
        model(|| {
            let (m, mut tx) = prefilled();
            let mut c = Cursor::at(0, 0);
            let p = m.clone();
            let publisher = loom::thread::spawn(move || send(&p, &mut tx, 16, 1, 6));
            if let Some(Got::Frame { seq, len }) = c.next_checked(&*m, false).unwrap() {
                check(&c, seq, len);
            }
            publisher.join().unwrap();
        });
    }

    /// `latest` twice while frame 4 is published (padding to the end of
    /// the data area, then overwriting frame 0), then once after: each call
    /// returns frame 3 or frame 4, intact, never older than the call
    /// before, and the last one frame 4. A call may return the previous
    /// call's copy (`recheck`: only while the `latest` word is unchanged).
    fn latest_twice(recheck: bool) {
        let (m, mut tx) = prefilled();
        let mut c = Cursor::at(120, 4);
        let p = m.clone();
        let publisher = loom::thread::spawn(move || send(&p, &mut tx, 16, 1, 6));
        let mut last = 3;
        for _ in 0..2 {
            match c.latest_checked(&*m, recheck).unwrap() {
                Some(Got::Frame { seq, len }) => {
                    assert!(seq == 3 || seq == 4, "frame {seq}");
                    assert!(seq >= last, "frame {seq} after frame {last}");
                    check(&c, seq, len);
                    last = seq;
                }
                other => panic!("{other:?}"),
            }
        }
        publisher.join().unwrap();
        match c.latest_checked(&*m, recheck).unwrap() {
            Some(Got::Frame { seq: 4, len }) => assert_eq!(check(&c, 4, len), 1),
            other => panic!("after the publication: {other:?}"),
        }
        assert_eq!(c.expected, 5);
    }

    #[test]
    fn loom_broadcast_latest_reuses_its_copy_only_while_unchanged() {
        model(|| latest_twice(true));
    }

    /// The model has teeth: a cursor that returns its last copy without
    /// reloading the `latest` word returns frame 3 after frame 4 was
    /// published, and the model finds it.
    #[test]
    #[should_panic]
    fn loom_broadcast_catches_a_stale_latest_copy() {
        model(|| latest_twice(false));
    }

    /// A publisher that stops for ever after each step of a publication
    /// (claimed; part of the payload; all of it; the header words; the
    /// tail store; everything), racing a subscriber reading the frame it
    /// overwrites; then a new publisher attaches. The subscriber never
    /// gets a torn frame nor the dead publisher's unpublished one; the new
    /// publisher continues the sequence after the last published frame,
    /// and the lag the subscriber reports is exact.
    #[test]
    fn loom_broadcast_publisher_stopped_at_each_step() {
        for stop in 0..=6u32 {
            model(move || {
                let (m, mut tx) = prefilled();
                let mut c = Cursor::at(0, 0);
                let p = m.clone();
                let publisher = loom::thread::spawn(move || send(&p, &mut tx, 16, 1, stop));
                let first = c.next(&*m).unwrap();
                if let Some(Got::Frame { seq, len }) = first {
                    assert_eq!((seq, check(&c, seq, len)), (0, 0));
                }
                publisher.join().unwrap();
                let published = stop >= 4;
                let mut tx2 = Tx::attach(&*m).unwrap();
                assert_eq!(tx2.next_seq, if published { 5 } else { 4 }, "stop {stop}");
                send(&m, &mut tx2, 8, 2, 6);
                let (seqs, lag) = drain(&m, &mut c);
                let head = u64::from(matches!(first, Some(Got::Frame { .. })));
                let lagged = match first {
                    Some(Got::Lagged(n)) => n,
                    _ => 0,
                };
                // Every frame 0..=last is delivered or counted as lost.
                let last = if published { 5 } else { 4 };
                assert_eq!(
                    head + lagged + lag + seqs.len() as u64,
                    last + 1,
                    "stop {stop}"
                );
                assert_eq!(*seqs.last().unwrap(), last);
                // The frame numbered 4 is the dead publisher's only if it
                // was published; otherwise the new publisher's.
                let m2 = &*m;
                let mut c4 = Cursor::at(0, 0);
                c4.latest(m2).unwrap();
                assert_eq!(c4.expected, last + 1);
            });
        }
    }
}

/// The protocol on plain heap atomics, publisher and subscriber on two
/// threads, the subscriber overrun again and again: every frame it returns
/// is intact and every gap is counted. Runs under Miri (`cargo miri test
/// --lib`), which checks that no access races: every word of the ring is
/// only ever accessed atomically.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    struct Heap {
        head: [AtomicU64; 4],
        words: Vec<AtomicU64>,
    }

    impl BcastMem for Heap {
        type W = AtomicU64;
        fn tail(&self) -> &AtomicU64 {
            &self.head[0]
        }
        fn intent(&self) -> &AtomicU64 {
            &self.head[1]
        }
        fn oldest(&self) -> &AtomicU64 {
            &self.head[2]
        }
        fn latest(&self) -> &AtomicU64 {
            &self.head[3]
        }
        fn word(&self, pos: u64) -> &AtomicU64 {
            &self.words[(self.offset(pos) / 8) as usize]
        }
        fn capacity(&self) -> u64 {
            (self.words.len() * 8) as u64
        }
        fn max_frame(&self) -> u64 {
            layout::bcast_max_frame(self.capacity())
        }
    }

    #[test]
    fn publisher_and_overrun_subscriber_on_threads() {
        let frames: u64 = if cfg!(miri) { 300 } else { 20_000 };
        let m = std::sync::Arc::new(Heap {
            head: Default::default(),
            words: (0..32).map(|_| AtomicU64::new(0)).collect(), // 256 bytes
        });
        let p = m.clone();
        let publisher = std::thread::spawn(move || {
            let mut tx = Tx::attach(&*p).unwrap();
            for seq in 0..frames {
                let len = seq % 40;
                let bytes: Vec<u8> = (0..len)
                    .map(|i| (seq as u8).wrapping_add(i as u8))
                    .collect();
                let placed = claim(&*p, &mut tx, len).unwrap();
                store_bytes(&*p, placed.start + layout::BCAST_FRAME_HEADER, &bytes);
                commit(&*p, &mut tx, placed, len);
            }
        });
        let mut c = Cursor::at(0, 0);
        let (mut seen, mut lost) = (0u64, 0u64);
        while seen + lost < frames {
            match c.next(&*m).unwrap() {
                Some(Got::Frame { seq, len }) => {
                    assert_eq!(seq, seen + lost);
                    assert_eq!(len, seq % 40);
                    let words = c.frame_words(len);
                    let bytes = &bytemuck::cast_slice::<u64, u8>(words)[..len as usize];
                    for (i, b) in bytes.iter().enumerate() {
                        assert_eq!(*b, (seq as u8).wrapping_add(i as u8), "frame {seq} torn");
                    }
                    seen += 1;
                }
                Some(Got::Lagged(n)) => lost += n,
                None => std::thread::yield_now(),
            }
        }
        publisher.join().unwrap();
        assert_eq!(seen + lost, frames);
        assert!(seen > 0);
    }
}
