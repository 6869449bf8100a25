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
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::error::{Corruption, Error, SendError};
use crate::layout::{self, Kind, Role, frame_word};
use crate::region::Region;
use crate::ring::RawRing;

pub use crate::framed::{Consumer, ReadGrant};
use crate::roles::Attachment;
use crate::wait::{self, Gave};

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
        // SAFETY: the region maps the header at offset 0 (page-aligned) and
        // `capacity` bytes at DATA_OFFSET; `Shared` owns the region, and the
        // RawRing never outlives it (both live in one Arc).
        let raw = unsafe { RawRing::new(region.header(), region.data(), region.geometry()) };
        raw.check_quiescent_cursors()?;
        Ok(Ring {
            shared: Arc::new(Shared { region, raw }),
        })
    }

    fn cursors(&self) -> (u64, u64) {
        let h = self.shared.header();
        (h.consumer.head.load(SeqCst), h.producer.tail.load(SeqCst))
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

    /// Reserves room for a frame, blocking while the ring is full: spinning
    /// briefly, then sleeping until the consumer frees space.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`]; [`SendError::Disconnected`] if the ring is
    /// full and the consumer has detached or died (noticed within about
    /// 200 ms of a `kill -9`); [`SendError::Corrupt`].
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_>, SendError> {
        self.reserve_until(len, None)
    }

    /// As [`reserve`](Producer::reserve), giving up with
    /// [`SendError::Timeout`] after `timeout`.
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_>, SendError> {
        self.reserve_until(len, Some(Instant::now() + timeout))
    }

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
        match placed {
            Ok((pad, start)) => Ok(self.grant(pad, start, len)),
            Err(Gave::Timeout) => Err(SendError::Timeout),
            Err(Gave::Disconnected) => Err(SendError::Disconnected),
            Err(Gave::Err(e)) => Err(e.into()),
        }
    }

    /// Copies `frame` into the ring without blocking.
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Producer::try_reserve).
    pub fn try_send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let mut g = self.try_reserve(frame.len())?;
        g.copy_from_slice(frame);
        g.commit();
        Ok(())
    }

    /// Copies `frame` into the ring, blocking while it is full.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Producer::reserve).
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut tx = ring.producer()?;
    /// let mut rx = ring.consumer()?;
    /// let t = std::thread::spawn(move || {
    ///     for i in 0..1000u32 { tx.send(&i.to_le_bytes()).unwrap(); }
    /// });
    /// for i in 0..1000u32 { assert_eq!(&*rx.recv()?, &i.to_le_bytes()); }
    /// t.join().unwrap();
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn send(&mut self, frame: &[u8]) -> Result<(), SendError> {
        let mut g = self.reserve(frame.len())?;
        g.copy_from_slice(frame);
        g.commit();
        Ok(())
    }

    /// Copies `frame` into the ring, blocking at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`reserve_timeout`](Producer::reserve_timeout).
    pub fn send_timeout(&mut self, frame: &[u8], timeout: Duration) -> Result<(), SendError> {
        let mut g = self.reserve_timeout(frame.len(), timeout)?;
        g.copy_from_slice(frame);
        g.commit();
        Ok(())
    }

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
        }
    }

    /// Publishes a frame of `len` bytes at `start`, after `pad` bytes of
    /// padding.
    fn publish(&mut self, pad: u64, start: u64, len: u64) {
        let raw = &self.shared.raw;
        if pad > 0 {
            // ORDERING: Relaxed; made visible by the tail store below.
            raw.word(self.tail).store(frame_word::PAD, Relaxed);
        }
        // ORDERING: Relaxed; made visible by the tail store below.
        raw.word(start).store(frame_word::data(len as u32), Relaxed);
        let tail = start + layout::frame_size(len);
        // ORDERING(tail-publish): SeqCst store; its Release half pairs with
        // the SeqCst (Acquire) tail load in `Consumer::refresh`, so the
        // payload and frame words above are visible to a consumer that sees
        // this tail. SeqCst (not just Release) for the wake-up handshake
        // (W1 in wait.rs) with the `notify` below.
        raw.header().producer.tail.store(tail, SeqCst);
        self.tail = tail;
        self.shared.data_point().notify();
    }
}

/// Where a frame of `len` bytes fits, re-reading the consumer's cursor only
/// when the cached one says the ring is too full. `Ok(None)`: no room.
fn space(
    raw: &RawRing,
    tail: u64,
    cached_head: &mut u64,
    len: u64,
) -> Result<Option<(u64, u64)>, Corruption> {
    let (pad, start) = raw.place(tail, len);
    let end = start + layout::frame_size(len);
    if end - *cached_head <= raw.capacity() {
        return Ok(Some((pad, start)));
    }
    // ORDERING(head-release): SeqCst load; its Acquire half pairs with the
    // SeqCst head store in `Consumer::release`, so the consumer is done
    // reading the bytes it released before we overwrite them. SeqCst for
    // the wake-up handshake (S3 in wait.rs).
    let head = raw.header().consumer.head.load(SeqCst);
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
#[must_use = "a WriteGrant publishes nothing unless committed"]
pub struct WriteGrant<'a> {
    producer: &'a mut Producer,
    pad: u64,
    start: u64,
    len: usize,
}

impl fmt::Debug for WriteGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("pos", &self.start)
            .field("len", &self.len)
            .finish()
    }
}

impl WriteGrant<'_> {
    /// Publishes the whole reserved length.
    pub fn commit(self) {
        let len = self.len;
        self.commit_len(len);
    }

    /// Publishes the first `len` bytes as the frame.
    ///
    /// # Panics
    ///
    /// If `len` is larger than the reservation.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut g = tx.try_reserve(100)?;
    /// let n = { use std::io::Write; let mut w = &mut g[..]; write!(w, "id={}", 7).unwrap(); 100 - w.len() };
    /// g.commit_len(n);
    /// assert_eq!(&*rx.try_recv()?, b"id=7");
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn commit_len(self, len: usize) {
        assert!(
            len <= self.len,
            "commit_len({len}) exceeds the reservation of {}",
            self.len
        );
        self.producer.publish(self.pad, self.start, len as u64);
    }

    /// Drops the reservation without publishing anything (the same as
    /// dropping the grant).
    pub fn abort(self) {}

    /// Views the first `size_of::<T>()` bytes as a `T`, to build a value in
    /// place. The payload is 8-byte aligned, so any `T` with alignment up to
    /// 8 works.
    ///
    /// # Panics
    ///
    /// If the reservation is shorter than `T` or `T` needs more than 8-byte
    /// alignment.
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
    /// let frame = rx.try_recv()?;
    /// let tick: &Tick = frame.as_pod().unwrap(); // no copy: points into the ring
    /// assert_eq!((tick.seq, tick.price), (1, 9.5));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn as_pod_mut<T: bytemuck::Pod>(&mut self) -> &mut T {
        let n = size_of::<T>();
        bytemuck::from_bytes_mut(&mut self[..n])
    }

    /// Reserved length.
    pub fn capacity(&self) -> usize {
        self.len
    }
}

impl Deref for WriteGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let raw = &self.producer.shared.raw;
        let off = raw.offset(self.start) + layout::FRAME_HEADER;
        // SAFETY: `space` placed the frame wholly inside the data area
        // (`off + len <= capacity`).
        let p = unsafe { raw.bytes(off, self.len as u64) };
        // SAFETY: the range lies in the free region [tail, head + capacity),
        // which only the producer touches until it publishes.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), self.len) }
    }
}

impl DerefMut for WriteGrant<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        let raw = &self.producer.shared.raw;
        let off = raw.offset(self.start) + layout::FRAME_HEADER;
        // SAFETY: as in `deref`, the range is inside the data area.
        let p = unsafe { raw.bytes(off, self.len as u64) };
        // SAFETY: as in `deref`; the grant borrows the producer mutably, so
        // this is the only live view of those bytes in this process.
        unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), self.len) }
    }
}
