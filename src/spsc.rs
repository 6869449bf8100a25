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
//! frame starts at offset 0. Padding and frame are published by one store
//! of `tail`, so a consumer never sees one without the other.
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

use std::fmt;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::Instant;

use crate::error::{Corruption, Error, SendError};
use crate::layout::{self, Kind, Role, frame_word};
use crate::region::Region;
use crate::ring::{FramedMem, RawRing};
use crate::words::Word64;

pub use crate::framed::{Consumer, ReadGrant};
use crate::roles::Attachment;
use crate::wait;

type Shared = crate::shared::Shared<RawRing>;

/// A single-producer single-consumer ring of variable-length frames in
/// shared memory.
///
/// `Ring` is the mapping; the [`Producer`] and [`Consumer`] handles made from
/// it do the work. A ring has at most one live producer and one live
/// consumer at a time, in any processes; a role whose holder died can be
/// claimed again and resumes where the ring stands.
///
/// # Constructors
///
/// | constructor                 | memory                                  |
/// |-----------------------------|-----------------------------------------|
/// | [`Ring::create`]            | new named file (fails if it exists)     |
/// | [`Ring::open`]              | existing named file                     |
/// | [`Ring::open_or_create`]    | either; race-free across processes      |
/// | [`Ring::anonymous`]         | memfd: shared across `fork` or by fd    |
/// | [`Ring::from_fd`]           | a ring fd received from another process |
#[derive(Debug, Clone)]
pub struct Ring {
    shared: Arc<Shared>,
}

impl Ring {
    crate::shared::ring_common!(Kind::Spsc, "spsc", "Config::new(1 << 20)");

    fn wrap(region: Region) -> Result<Ring, Error> {
        Ok(Ring {
            shared: crate::framed::shared(region)?,
        })
    }

    /// Claims the producer role.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (with the holder's pid) while another live
    /// handle, in any process, holds it; [`Error::Corrupt`] if the
    /// cursors are inconsistent.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let tx = ring.producer()?;
    /// assert!(matches!(ring.producer(), Err(mmring::Error::RoleTaken { .. })));
    /// drop(tx);
    /// let tx = ring.producer()?; // free again
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn producer(&self) -> Result<Producer, Error> {
        let s = &self.shared;
        let lock = s.attach(Role::Producer, true)?;
        let h = s.header();
        // The tail is ours now; head is read after it, so a correct ring
        // satisfies the invariant whatever the consumer is doing.
        let tail = h.producer.tail.load(SeqCst);
        let head = h.consumer.head.load(SeqCst);
        if let Err(c) = s.raw.check_cursors(head, tail) {
            s.detach(Role::Producer, lock);
            return Err(c.into());
        }
        Ok(Producer {
            shared: self.shared.clone(),
            lock: Some(lock),
            tail,
            cached_head: head,
        })
    }

    /// Claims the consumer role.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (with the holder's pid) while another live
    /// handle holds it; [`Error::Corrupt`] if the cursors are inconsistent.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let rx = ring.consumer()?;
    /// assert!(rx.is_empty());
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn consumer(&self) -> Result<Consumer, Error> {
        crate::framed::attach(&self.shared, false)
    }
}

/// The writing half of a [`Ring`]. `Send` and `'static`: move it to the
/// thread that writes. Dropping it detaches, waking a consumer blocked on
/// an empty ring so it can return
/// [`RecvError::Disconnected`](crate::RecvError::Disconnected).
pub struct Producer {
    shared: Arc<Shared>,
    lock: Option<Attachment>,
    /// Committed tail; only we write the header's copy.
    tail: u64,
    /// Last head we read; the consumer may be further along.
    cached_head: u64,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("tail", &self.tail)
            .field("cached_head", &self.cached_head)
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Reserves room for a frame of up to `len` bytes without blocking. The
    /// grant derefs to `len` bytes inside the mapping; write them, then
    /// [`commit`](WriteGrant::commit) (or `commit_len` a shorter prefix).
    /// Dropping the grant publishes nothing.
    ///
    /// The payload starts 8-byte aligned.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] if `len > max_frame`; [`SendError::Full`] if
    /// there is no room now; [`SendError::Corrupt`] if the consumer's cursor
    /// is inconsistent.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut g = tx.try_reserve(8)?;
    /// g.copy_from_slice(&42u64.to_le_bytes());
    /// g.commit();
    /// assert_eq!(rx.try_recv()?.as_pod::<u64>(), Ok(&42));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        let len64 = self.check_len(len)?;
        match space(&self.shared.raw, self.tail, &mut self.cached_head, len64)? {
            Some((pad, start)) => Ok(self.grant(pad, start, len)),
            None => Err(SendError::Full),
        }
    }

    crate::grant::blocking_reserve!(
        "the consumer has detached or died (noticed within about 200 ms of a `kill -9`)"
    );

    fn reserve_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
    ) -> Result<WriteGrant<'_>, SendError> {
        let len64 = self.check_len(len)?;
        let shared = &*self.shared;
        let tail = self.tail;
        let cached_head = &mut self.cached_head;
        let lock = self
            .lock
            .as_ref()
            .expect("role lock held while the handle lives");
        let placed = wait::block(
            shared.space_point(),
            deadline,
            || space(&shared.raw, tail, cached_head, len64),
            || shared.peer_gone(lock, Role::Consumer),
        );
        let (pad, start) = placed?;
        Ok(self.grant(pad, start, len))
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

    /// Bytes committed but not yet released by the consumer (an upper
    /// bound: the consumer may have moved on since).
    pub fn len_hint(&self) -> u64 {
        let head = self.shared.raw.header().consumer.head.load(Relaxed);
        self.tail.saturating_sub(head)
    }

    fn check_len(&self, len: usize) -> Result<u64, SendError> {
        let max = self.shared.raw.max_frame();
        match u64::try_from(len) {
            Ok(l) if l <= max => Ok(l),
            _ => Err(SendError::TooLarge {
                len,
                max: max as usize,
            }),
        }
    }

    fn grant(&mut self, pad: u64, start: u64, len: usize) -> WriteGrant<'_> {
        WriteGrant {
            producer: self,
            pad,
            start,
            len,
            done: false,
        }
    }

    /// Publishes a frame of `len` bytes at `start`, after `pad` bytes of
    /// padding.
    fn publish(&mut self, pad: u64, start: u64, len: u64) {
        self.tail = publish_frame(&self.shared.raw, self.tail, pad, start, len);
        self.shared.data_point().notify();
    }
}

/// Writes the padding word (if any) and the frame word of a frame of `len`
/// bytes at `start` (the payload is already in place), then publishes both
/// with one Release store of `tail`. Returns the new tail.
pub(crate) fn publish_frame<M: FramedMem>(m: &M, tail: u64, pad: u64, start: u64, len: u64) -> u64 {
    if pad > 0 {
        // ORDERING: Relaxed; made visible by the tail store below.
        m.word(tail).store(frame_word::PAD, Relaxed);
    }
    // ORDERING: Relaxed; made visible by the tail store below.
    m.word(start).store(frame_word::data(len as u32), Relaxed);
    let new_tail = start + layout::frame_size(len);
    // ORDERING(tail-publish): Release; pairs with the Acquire tail load in
    // `framed::locate`, so the payload and frame words above are visible to
    // a consumer that sees this tail. It is W1 of the wake-up handshake; the
    // caller's `notify` fences before reading the sleepers.
    m.tail().store(new_tail, Release);
    new_tail
}

/// Where a frame of `len` bytes fits, re-reading the consumer's cursor only
/// when the cached one says the ring is too full. `Ok(None)`: no room.
pub(crate) fn space<M: FramedMem>(
    raw: &M,
    tail: u64,
    cached_head: &mut u64,
    len: u64,
) -> Result<Option<(u64, u64)>, Corruption> {
    let (pad, start) = raw.place(tail, len);
    let end = start + layout::frame_size(len);
    if end - *cached_head <= raw.capacity() {
        return Ok(Some((pad, start)));
    }
    // ORDERING(head-release): Acquire; pairs with the Release head store in
    // `framed::Cursor::release_to`, so the consumer is done reading the
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

impl Drop for Producer {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.shared.detach(Role::Producer, lock);
        }
    }
}

/// Space reserved in the ring by [`Producer::try_reserve`] and friends.
///
/// Derefs to the reserved bytes inside the shared mapping. Nothing is
/// visible to the consumer until [`commit`](WriteGrant::commit) or
/// [`commit_len`](WriteGrant::commit_len); dropping the grant aborts it and
/// the space is reused by the next reservation.
///
/// Write in place, even a `Pod` value, and commit fewer bytes than reserved
/// if the message came out shorter:
///
/// ```
/// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
/// #[repr(C)]
/// struct Tick { seq: u64, price: f64 }
///
/// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// let mut g = tx.try_reserve(size_of::<Tick>())?;
/// *g.as_pod_mut::<Tick>() = Tick { seq: 1, price: 9.5 };
/// g.commit();
/// let mut g = tx.try_reserve(100)?;
/// let n = { use std::io::Write; let mut w = &mut g[..]; write!(w, "id={}", 7).unwrap(); 100 - w.len() };
/// g.commit_len(n);
///
/// let frame = rx.try_recv()?;
/// let tick: &Tick = frame.as_pod().unwrap(); // no copy: points into the ring
/// assert_eq!((tick.seq, tick.price), (1, 9.5));
/// drop(frame);
/// assert_eq!(&*rx.try_recv()?, b"id=7");
/// # Ok::<(), mmring::Error>(())
/// ```
#[must_use = "a WriteGrant publishes nothing unless committed"]
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    pad: u64,
    start: u64,
    len: usize,
    done: bool,
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("pos", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

crate::grant::write_grant_common!(
    "Drops the reservation without publishing anything (the same as dropping the grant)."
);

impl WriteGrant<'_> {
    fn payload(&self) -> NonNull<u8> {
        let raw = &self.producer.shared.raw;
        let off = raw.offset(self.start) + layout::FRAME_HEADER;
        // SAFETY: `space` placed the frame wholly inside the data area
        // (`off + len <= capacity`), in the free region [tail, head +
        // capacity) that only the producer touches until it publishes.
        unsafe { raw.bytes(off, self.len as u64) }
    }

    fn publish(&mut self, len: Option<u64>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        // An SPSC reservation is private until `tail` moves: giving it back
        // needs no store at all.
        if let Some(n) = len {
            self.producer.publish(self.pad, self.start, n);
        }
    }
}
