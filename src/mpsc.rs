//! Many producers, one consumer, variable-length frames.
//!
//! Producers claim space with one compare-and-swap on `tail` (retried if
//! another producer moved it first), write their frame in place, and
//! publish it with one store of its frame word. Until then the word is
//! zero, "not ready", and the consumer, which reads frames strictly in
//! order, stops there. The consumer zeroes the space it releases, so every
//! word of the next lap starts out "not ready" (the scheme of Aeron's
//! many-to-one ring buffer).
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

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

use crate::error::{Corruption, Error, SendError};
use crate::layout::{self, Kind, Role, frame_word};
use crate::region::Region;
use crate::ring::{FramedMem, RawRing, check_range};
use crate::roles::Attachment;
use crate::wait;
use crate::words::Word64;

pub use crate::framed::{Consumer, ReadGrant};

type Shared = crate::shared::Shared<RawRing>;

/// A many-producer single-consumer ring of variable-length frames in shared
/// memory. Any number of [`Producer`]s (up to 128 handles in all) in any
/// processes, one live [`Consumer`].
///
/// The constructors are those of [`spsc::Ring`](crate::spsc::Ring); a ring
/// of one flavour is refused when opened as another.
#[derive(Debug, Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

impl Ring {
    crate::shared::ring_common!(Kind::Mpsc, "mpsc", "Config::new(1 << 20)");

    fn wrap(region: Region) -> Result<Ring, Error> {
        Ok(Ring {
            shared: crate::framed::shared(region)?,
        })
    }

    /// Attaches a new producer. Call it once per writing thread or process.
    ///
    /// # Errors
    ///
    /// [`Error::TooManyAttachments`] if 128 handles are attached already.
    ///
    /// ```
    /// let ring = mmring::mpsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut a, mut b) = (ring.producer()?, ring.producer()?);
    /// a.send(b"from a")?;
    /// b.send(b"from b")?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn producer(&self) -> Result<Producer, Error> {
        let lock = self.shared.attach(Role::Producer, false)?;
        let head = self.shared.header().consumer.head.load(SeqCst);
        Ok(Producer {
            shared: self.shared.clone(),
            lock: Some(lock),
            cached_head: head,
        })
    }

    /// Claims the single consumer role.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (with the holder's pid) while another live
    /// handle holds it; [`Error::Corrupt`] if the cursors are inconsistent.
    pub fn consumer(&self) -> Result<Consumer, Error> {
        crate::framed::attach(&self.shared, true)
    }
}

/// One writer of an MPSC [`Ring`]. `Send` and `'static`; make one per
/// writing thread with [`Ring::producer`].
pub struct Producer {
    shared: Arc<Shared>,
    lock: Option<Attachment>,
    /// Last head we read; the consumer may be further along.
    cached_head: u64,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("cached_head", &self.cached_head)
            .finish_non_exhaustive()
    }
}

/// A claimed range: padding (already published) then the frame.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// Position of the frame word.
    pub start: u64,
    /// Reserved payload length.
    pub len: u64,
}

/// Publishes a claim: a frame of `committed` bytes (the payload is already
/// in place) and a skip record over the rest, or a skip record over all of
/// it.
pub(crate) fn publish_claim<M: FramedMem>(raw: &M, claim: Claim, committed: Option<u64>) {
    let Claim { start, len } = claim;
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
}

impl Producer {
    /// Claims room for a frame of up to `len` bytes without blocking (it
    /// may retry its CAS while other producers claim). The grant derefs to
    /// `len` bytes inside the mapping; commit it, or drop it to publish a
    /// skip record in its place.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`]; [`SendError::Full`]; [`SendError::Corrupt`]
    /// if the cursors are inconsistent.
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        let len64 = check_len(&self.shared.raw, len)?;
        match claim(&self.shared.raw, &mut self.cached_head, len64)? {
            Some(c) => Ok(self.grant(c, len)),
            None => Err(SendError::Full),
        }
    }

    crate::grant::blocking_reserve!("the consumer has detached or died");

    fn reserve_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteGrant<'_>, SendError> {
        let len64 = check_len(&self.shared.raw, len)?;
        let shared = &*self.shared;
        let cached_head = &mut self.cached_head;
        let lock = self.lock.as_ref().expect("attached while the handle lives");
        let r = wait::block(
            shared.space_point(),
            deadline,
            || claim(&shared.raw, cached_head, len64),
            || shared.peer_gone(lock, Role::Consumer),
        );
        Ok(self.grant(r?, len))
    }

    crate::grant::copying_send!();

    /// Largest payload a frame may carry.
    pub fn max_frame(&self) -> usize {
        self.shared.raw.max_frame() as usize
    }

    /// Whether a live consumer holds the other role right now.
    pub fn is_consumer_attached(&self) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.is_held(Role::Consumer))
    }

    fn grant(&mut self, claim: Claim, len: usize) -> WriteGrant<'_> {
        WriteGrant {
            producer: self,
            claim,
            len,
            done: false,
        }
    }
}

fn check_len(raw: &RawRing, len: usize) -> Result<u64, SendError> {
    let max = raw.max_frame();
    match u64::try_from(len) {
        Ok(l) if l <= max => Ok(l),
        _ => Err(SendError::TooLarge {
            len,
            max: max as usize,
        }),
    }
}

/// Claims room for a frame of `len` bytes by moving `tail` with a CAS.
/// `Ok(None)`: no room. Publishes the padding record, if one is needed,
/// right away: it is complete as it stands.
pub(crate) fn claim<M: FramedMem>(
    raw: &M,
    cached_head: &mut u64,
    len: u64,
) -> Result<Option<Claim>, Corruption> {
    let tail_word = raw.tail();
    // ORDERING: Relaxed; producers share nothing through `tail` but the
    // claim itself, which the CAS below decides.
    let mut tail = tail_word.load(Relaxed);
    loop {
        check_range(tail)?;
        if tail % layout::FRAME_ALIGN != 0 {
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
            if head < *cached_head {
                return Err(Corruption::CursorRegressed {
                    seen: *cached_head,
                    found: head,
                });
            }
            if head > tail {
                // Our tail is stale (the consumer has passed it, so other
                // producers moved it): retry with a fresh one, but only if it
                // did move, else the pair is impossible.
                let fresh = tail_word.load(Relaxed);
                if fresh == tail {
                    raw.check_cursors(head, tail)?;
                }
                tail = fresh;
                continue;
            }
            raw.check_cursors(head, tail)?;
            *cached_head = head;
            if end - head > raw.capacity() {
                return Ok(None);
            }
        }
        // ORDERING: AcqRel on success (the claim is ordered before our
        // writes into the claimed space); Relaxed on failure (we only retry
        // with the value read).
        match tail_word.cas_weak(tail, end, AcqRel, Relaxed) {
            Ok(_) => {
                if pad > 0 {
                    // ORDERING(word-publish): Release; pairs with the
                    // consumer's Acquire word load in `RawRing::parse`.
                    raw.word(tail).store(frame_word::PAD, Release);
                }
                return Ok(Some(Claim { start, len }));
            }
            Err(now) => tail = now,
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

/// Space claimed in an MPSC ring by [`Producer::try_reserve`] and friends.
///
/// Derefs to the reserved bytes inside the shared mapping. Nothing is
/// visible to the consumer until [`commit`](WriteGrant::commit) or
/// [`commit_len`](WriteGrant::commit_len). Dropping the grant (or
/// [`abort`](WriteGrant::abort)) publishes a skip record over the claimed
/// space, so the consumer passes over it instead of waiting.
#[must_use = "a WriteGrant publishes nothing unless committed"]
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    claim: Claim,
    len: usize,
    done: bool,
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("pos", &self.claim.start)
            .field("len", &self.len)
            .finish()
    }
}

crate::grant::write_grant_common!(
    "Gives the space back as a skip record (the same as dropping the grant)."
);

impl WriteGrant<'_> {
    fn payload(&self) -> NonNull<u8> {
        let raw = &self.producer.shared.raw;
        let off = raw.offset(self.claim.start) + layout::FRAME_HEADER;
        // SAFETY: `claim` placed the frame wholly inside the data area, in
        // a range our CAS on `tail` gave to us alone; the consumer does not
        // read it before we publish its frame word.
        unsafe { raw.bytes(off, self.len as u64) }
    }

    /// Publishes a frame of `committed` bytes, or none, and a skip record
    /// over whatever of the claim is left.
    fn publish(&mut self, committed: Option<u64>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        publish_claim(&self.producer.shared.raw, self.claim, committed);
        self.producer.shared.data_point().notify();
    }
}
