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
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{Corruption, Error, RecvError, SendError};
use crate::layout::{self, Kind, Role, frame_word};
use crate::region::Region;
use crate::ring::{Parsed, RawRing};
use crate::roles::{self, RoleLock};
use crate::wait::{self, Gave, WaitPoint};

/// The mapping shared by a [`Ring`] and the handles made from it.
#[derive(Debug)]
struct Shared {
    region: Region,
    raw: RawRing,
}

impl Shared {
    fn new(region: Region) -> Result<Arc<Shared>, Error> {
        // SAFETY: the region maps the header at offset 0 (page-aligned) and
        // `capacity` bytes at DATA_OFFSET; `Shared` owns the region, and the
        // RawRing never outlives it (both live in this Arc).
        let raw = unsafe { RawRing::new(region.header(), region.data(), region.geometry()) };
        let shared = Shared { region, raw };
        shared.check_quiescent_cursors()?;
        Ok(Arc::new(shared))
    }

    /// Refuses tampered cursors at open time without false alarms on a live
    /// ring: `head` is read twice around `tail`; if it did not move, the
    /// pair was consistent at the moment `tail` was read, so a violation
    /// is real.
    fn check_quiescent_cursors(&self) -> Result<(), Error> {
        let h = self.raw.header();
        let head = h.consumer.head.load(SeqCst);
        let tail = h.producer.tail.load(SeqCst);
        if head == h.consumer.head.load(SeqCst) {
            self.raw.check_cursors(head, tail)?;
        }
        Ok(())
    }

    fn data_point(&self) -> WaitPoint<'_> {
        let p = &self.raw.header().producer;
        WaitPoint::new(&p.data_futex, &p.data_waiters)
    }

    fn space_point(&self) -> WaitPoint<'_> {
        let c = &self.raw.header().consumer;
        WaitPoint::new(&c.space_futex, &c.space_waiters)
    }

    /// Claims `role`, recording our pid for diagnostics.
    fn claim(&self, role: Role) -> Result<RoleLock, Error> {
        let record = &self.raw.header().roles.roles[role.index()];
        match RoleLock::try_claim(self.region.fd(), role)? {
            Some(lock) => {
                record.pid.store(std::process::id(), Relaxed);
                record.attaches.fetch_add(1, Relaxed);
                Ok(lock)
            }
            None => {
                let pid = record.pid.load(Relaxed);
                Err(Error::RoleTaken {
                    role,
                    pid: (pid != 0).then_some(pid),
                })
            }
        }
    }

    /// True when `peer` has attached at least once and no live process
    /// holds it now. A ring whose peer never attached is not disconnected:
    /// the first peer may simply not have started yet.
    fn peer_gone(&self, lock: &RoleLock, peer: Role) -> bool {
        let record = &self.raw.header().roles.roles[peer.index()];
        record.attaches.load(Relaxed) != 0 && !lock.is_held(peer)
    }

    /// Marks `role` as cleanly detached, releases its lock, then wakes the
    /// peer's sleepers so they re-check liveness at once.
    fn detach(&self, role: Role, lock: RoleLock, wake: WaitPoint<'_>) {
        self.raw.header().roles.roles[role.index()]
            .pid
            .store(0, Relaxed);
        drop(lock);
        wake.wake_all();
    }
}

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
    /// Creates a new ring file at `path` (mode `0o600` unless
    /// [`Config::mode`] says otherwise). Use a path under `/dev/shm` for a
    /// ring that lives in RAM only. The file appears under its name fully
    /// initialised or not at all.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the file
    /// exists (`AlreadyExists`) or cannot be created, sized or have its
    /// pages reserved (a full `/dev/shm` fails here, not later).
    ///
    /// ```no_run
    /// use mmring::{Config, spsc};
    /// let ring = spsc::Ring::create("/dev/shm/feed", Config::new(1 << 20))?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::create(path.as_ref(), &cfg, Kind::Spsc)?)
    }

    /// Opens an existing SPSC ring file.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be opened; [`Error::NotRegularFile`],
    /// [`Error::Truncated`], [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::ForeignPlatform`],
    /// [`Error::Uninitialized`], [`Error::WrongKind`],
    /// [`Error::BadGeometry`] or [`Error::Corrupt`] if it is not a valid
    /// SPSC ring.
    ///
    /// ```no_run
    /// let ring = mmring::spsc::Ring::open("/dev/shm/feed")?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Ring, Error> {
        Ring::wrap(Region::open(path.as_ref(), Kind::Spsc)?)
    }

    /// Opens the ring at `path`, creating it with `cfg` if it does not
    /// exist. Any number of processes may call this at once: exactly one
    /// creates the file and all of them end up attached to it.
    ///
    /// # Errors
    ///
    /// As [`Ring::create`] and [`Ring::open`], plus
    /// [`Error::GeometryMismatch`] when the existing ring's capacity or
    /// maximum frame differs from `cfg`.
    ///
    /// ```no_run
    /// use mmring::{Config, spsc};
    /// let ring = spsc::Ring::open_or_create("/dev/shm/feed", Config::new(1 << 20))?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>, cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::open_or_create(path.as_ref(), &cfg, Kind::Spsc)?)
    }

    /// Creates a ring in anonymous shared memory (a sealed memfd). It is
    /// shared with children across `fork` (claim roles after forking), and
    /// its fd ([`Ring::as_fd`]) can be passed to another process, which
    /// attaches with [`Ring::from_fd`].
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the memfd
    /// cannot be created or sized.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(1 << 16))?;
    /// assert_eq!(ring.capacity(), 1 << 16);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn anonymous(cfg: Config) -> Result<Ring, Error> {
        Ring::wrap(Region::anonymous(&cfg, Kind::Spsc)?)
    }

    /// Attaches to a ring through a file descriptor (a named ring's file or
    /// an anonymous ring's memfd), e.g. one received over a Unix socket or
    /// inherited across `exec`.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`].
    ///
    /// ```
    /// use mmring::{Config, spsc};
    /// let a = spsc::Ring::anonymous(Config::new(4096))?;
    /// let fd = a.as_fd().try_clone_to_owned().unwrap();
    /// let b = spsc::Ring::from_fd(fd)?;
    /// a.producer()?.send(b"via fd")?;
    /// assert_eq!(&*b.consumer()?.recv()?, b"via fd");
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Ring, Error> {
        Ring::wrap(Region::from_fd(fd, Kind::Spsc)?)
    }

    fn wrap(region: Region) -> Result<Ring, Error> {
        Ok(Ring {
            shared: Shared::new(region)?,
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
        let lock = s.claim(Role::Producer)?;
        let h = s.raw.header();
        // The tail is ours now; head is read after it, so a correct ring
        // satisfies the invariant whatever the consumer is doing.
        let tail = h.producer.tail.load(SeqCst);
        let head = h.consumer.head.load(SeqCst);
        if let Err(c) = s.raw.check_cursors(head, tail) {
            s.detach(Role::Producer, lock, s.data_point());
            return Err(c.into());
        }
        // A consumer waiting for a first producer re-checks now.
        s.data_point().wake_all();
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
        let s = &self.shared;
        let lock = s.claim(Role::Consumer)?;
        let h = s.raw.header();
        let head = h.consumer.head.load(SeqCst);
        let tail = h.producer.tail.load(SeqCst);
        if let Err(c) = s.raw.check_cursors(head, tail) {
            s.detach(Role::Consumer, lock, s.space_point());
            return Err(c.into());
        }
        s.space_point().wake_all();
        Ok(Consumer {
            shared: self.shared.clone(),
            lock: Some(lock),
            read: head,
            released: head,
            cached_tail: tail,
        })
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.shared.raw.capacity()
    }

    /// Largest payload a frame may carry.
    pub fn max_frame(&self) -> usize {
        self.shared.raw.max_frame() as usize
    }

    /// The ring's file descriptor (the file, or the memfd of an anonymous
    /// ring), e.g. to pass to another process.
    pub fn as_fd(&self) -> BorrowedFd<'_> {
        self.shared.region.fd()
    }

    /// The path of a named ring.
    pub fn path(&self) -> Option<&Path> {
        self.shared.region.path()
    }

    /// Writes the mapping back to its file (`msync`), for durability of a
    /// file-backed ring against power loss. Frames are visible to other
    /// processes without it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `msync` fails.
    pub fn flush(&self) -> Result<(), Error> {
        self.shared.region.flush()
    }

    /// A snapshot of the ring's cursors and attachments, for monitoring.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut tx = ring.producer()?;
    /// tx.send(b"abc")?;
    /// let st = ring.stat();
    /// assert_eq!(st.tail - st.head, 16); // 8-byte frame word + 3 bytes padded to 8
    /// assert_eq!(st.producer.pid, Some(std::process::id()));
    /// assert!(st.producer.alive && !st.consumer.alive);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn stat(&self) -> Stat {
        let s = &self.shared;
        let h = s.raw.header();
        let role = |role: Role| {
            let r = &h.roles.roles[role.index()];
            let pid = r.pid.load(Relaxed);
            RoleStat {
                pid: (pid != 0).then_some(pid),
                alive: roles::is_held(s.region.fd(), role).unwrap_or(false),
                attaches: r.attaches.load(Relaxed),
            }
        };
        Stat {
            kind: Kind::Spsc,
            capacity: s.raw.capacity(),
            max_frame: s.raw.max_frame(),
            head: h.consumer.head.load(SeqCst),
            tail: h.producer.tail.load(SeqCst),
            producer: role(Role::Producer),
            consumer: role(Role::Consumer),
            consumers_waiting: h.producer.data_waiters.load(Relaxed),
            producers_waiting: h.consumer.space_waiters.load(Relaxed),
        }
    }
}

/// A snapshot of a ring, from [`Ring::stat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// The ring's kind.
    pub kind: Kind,
    /// Bytes in the data area.
    pub capacity: u64,
    /// Largest payload.
    pub max_frame: u64,
    /// Bytes released by the consumer since creation.
    pub head: u64,
    /// Bytes committed by the producer since creation.
    pub tail: u64,
    /// The producer role.
    pub producer: RoleStat,
    /// The consumer role.
    pub consumer: RoleStat,
    /// Consumers asleep waiting for data.
    pub consumers_waiting: u32,
    /// Producers asleep waiting for space.
    pub producers_waiting: u32,
}

/// One role in a [`Stat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleStat {
    /// Pid recorded by the last holder; kept after a crash, cleared on a
    /// clean detach.
    pub pid: Option<u32>,
    /// Whether a live process holds the role (from the kernel's lock
    /// table, not the pid).
    pub alive: bool,
    /// How many times the role has been claimed.
    pub attaches: u32,
}

/// The writing half of a [`Ring`]. `Send` and `'static`: move it to the
/// thread that writes. Dropping it detaches, waking a consumer blocked on
/// an empty ring so it can return [`RecvError::Disconnected`].
pub struct Producer {
    shared: Arc<Shared>,
    lock: Option<RoleLock>,
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
            self.shared
                .detach(Role::Producer, lock, self.shared.data_point());
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

/// The reading half of a [`Ring`]. `Send` and `'static`. Dropping it
/// detaches, waking a producer blocked on a full ring so it can return
/// [`SendError::Disconnected`].
pub struct Consumer {
    shared: Arc<Shared>,
    lock: Option<RoleLock>,
    /// Next position to read (past any padding already skipped).
    read: u64,
    /// Head as last stored to the header; `released <= read`.
    released: u64,
    /// Last tail we read; the producer may be further along.
    cached_tail: u64,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("read", &self.read)
            .field("released", &self.released)
            .field("cached_tail", &self.cached_tail)
            .finish_non_exhaustive()
    }
}

/// A frame located by [`Consumer::next_frame`].
#[derive(Debug, Clone, Copy)]
struct Located {
    payload: u64,
    len: u64,
    next: u64,
}

impl Consumer {
    /// Takes the next frame without blocking. The grant derefs to the
    /// payload inside the mapping; dropping it releases the space.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no committed frame is waiting;
    /// [`RecvError::Corrupt`] if the ring is inconsistent (the consumer
    /// stays in place, so every later call reports the same).
    pub fn try_recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        match self.next_frame()? {
            Some(f) => Ok(self.grant(f)),
            None => Err(RecvError::Empty),
        }
    }

    /// Takes the next frame, blocking while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the ring is empty and the producer
    /// has detached or died (within about 200 ms of a `kill -9`);
    /// [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(None)
    }

    /// As [`recv`](Consumer::recv), giving up with [`RecvError::Timeout`]
    /// after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut rx = ring.consumer()?;
    /// assert_eq!(
    ///     rx.recv_timeout(Duration::from_millis(10)).unwrap_err(),
    ///     mmring::RecvError::Timeout,
    /// );
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<ReadGrant<'_>, RecvError> {
        let f = self.wait_frame(deadline)?;
        Ok(self.grant(f))
    }

    fn wait_frame(&mut self, deadline: Option<Instant>) -> Result<Located, RecvError> {
        let shared = &*self.shared;
        let lock = self
            .lock
            .as_ref()
            .expect("role lock held while the handle lives");
        let mut read = self.read;
        let cached_tail = &mut self.cached_tail;
        let released = self.released;
        let r = wait::block(
            shared.data_point(),
            deadline,
            || locate(&shared.raw, &mut read, released, cached_tail),
            || shared.peer_gone(lock, Role::Producer),
        );
        self.read = read;
        match r {
            Ok(f) => Ok(f),
            Err(Gave::Timeout) => Err(RecvError::Timeout),
            Err(Gave::Disconnected) => Err(RecvError::Disconnected),
            Err(Gave::Err(e)) => Err(e.into()),
        }
    }

    /// Copies the next frame into `buf` (replacing its contents) and
    /// releases it, without blocking. Returns the frame's length.
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Consumer::try_recv).
    pub fn try_recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        let g = self.try_recv()?;
        buf.clear();
        buf.extend_from_slice(&g);
        Ok(buf.len())
    }

    /// Copies the next frame into `buf` (replacing its contents) and
    /// releases it, blocking while the ring is empty.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv).
    pub fn recv_into(&mut self, buf: &mut Vec<u8>) -> Result<usize, RecvError> {
        let g = self.recv()?;
        buf.clear();
        buf.extend_from_slice(&g);
        Ok(buf.len())
    }

    /// Hands up to `max` waiting frames to `f`, in order, then releases
    /// them all with one cursor store: fewer cache-line transfers than one
    /// release per frame. Does not block; returns how many frames `f` saw.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no frame is waiting; [`RecvError::Corrupt`]
    /// if the first frame is corrupt (a corrupt frame after good ones ends
    /// the batch early, and the next call reports it).
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// for i in 0..10u8 { tx.send(&[i])?; }
    /// let mut sum = 0;
    /// let n = rx.try_recv_batch(usize::MAX, |frame| sum += frame[0] as u32)?;
    /// assert_eq!((n, sum), (10, 45));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = match self.next_frame()? {
            Some(first) => first,
            None => return Err(RecvError::Empty),
        };
        Ok(self.drain(first, max, f))
    }

    /// As [`try_recv_batch`](Consumer::try_recv_batch), but blocks until at
    /// least one frame is waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv).
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = self.wait_frame(None)?;
        Ok(self.drain(first, max, f))
    }

    fn drain(&mut self, first: Located, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut frame = first;
        let mut n = 0;
        loop {
            // SAFETY: `locate` checked the frame lies in the data area and in
            // the committed, unreleased region, which the producer does not
            // touch until we store a head past it (after this loop).
            f(unsafe { self.payload(frame) });
            n += 1;
            self.read = frame.next;
            if n >= max {
                break;
            }
            match self.next_frame() {
                Ok(Some(next)) => frame = next,
                Ok(None) | Err(_) => break,
            }
        }
        self.release_to(self.read);
        n
    }

    /// Bytes committed and not yet taken by this consumer (a lower bound:
    /// the producer may have committed more since).
    pub fn len_hint(&self) -> u64 {
        // ORDERING: Relaxed; a hint only, no data is read on its basis.
        let tail = self.shared.raw.header().producer.tail.load(Relaxed);
        tail.saturating_sub(self.read)
    }

    /// Whether no committed frame is waiting right now.
    pub fn is_empty(&self) -> bool {
        self.len_hint() == 0
    }

    /// Whether a live producer holds the other role right now.
    pub fn is_producer_attached(&self) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.is_held(Role::Producer))
    }

    /// Locates the frame at `self.read`, skipping padding.
    fn next_frame(&mut self) -> Result<Option<Located>, Corruption> {
        locate(
            &self.shared.raw,
            &mut self.read,
            self.released,
            &mut self.cached_tail,
        )
    }

    fn grant(&mut self, frame: Located) -> ReadGrant<'_> {
        ReadGrant {
            consumer: self,
            frame,
        }
    }

    /// # Safety
    ///
    /// `frame` came from `locate` and has not been released.
    unsafe fn payload(&self, frame: Located) -> &[u8] {
        // SAFETY: by the contract, `payload + len <= capacity`.
        let p = unsafe { self.shared.raw.bytes(frame.payload, frame.len) };
        // SAFETY: the bytes are committed and unreleased, so the producer
        // leaves them alone while the returned borrow lives.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), frame.len as usize) }
    }

    fn release_to(&mut self, pos: u64) {
        debug_assert!(pos >= self.released);
        // ORDERING(head-release): SeqCst store; its Release half pairs with
        // the SeqCst (Acquire) head load in `space`, so our reads of the
        // released bytes finish before the producer reuses them. SeqCst for
        // the wake-up handshake (W1 in wait.rs) with the `notify` below.
        self.shared.raw.header().consumer.head.store(pos, SeqCst);
        self.released = pos;
        self.shared.space_point().notify();
    }
}

/// Finds the frame at `*read`, skipping padding (which advances `*read`).
/// Re-reads the producer's cursor only when the cached one says empty.
fn locate(
    raw: &RawRing,
    read: &mut u64,
    released: u64,
    cached_tail: &mut u64,
) -> Result<Option<Located>, Corruption> {
    loop {
        if *read == *cached_tail {
            // ORDERING(tail-publish): SeqCst load; its Acquire half pairs with
            // the SeqCst tail store in `Producer::publish`, making the frame
            // words and payloads before it visible. SeqCst for the wake-up
            // handshake (S3 in wait.rs).
            let tail = raw.header().producer.tail.load(SeqCst);
            if tail < *cached_tail {
                return Err(Corruption::CursorRegressed {
                    seen: *cached_tail,
                    found: tail,
                });
            }
            raw.check_cursors(released, tail)?;
            *cached_tail = tail;
            if *read == tail {
                return Ok(None);
            }
        }
        match raw.parse(*read, *cached_tail - *read)? {
            Parsed::Data { payload, len, size } => {
                return Ok(Some(Located {
                    payload,
                    len,
                    next: *read + size,
                }));
            }
            Parsed::Pad { skip } => *read += skip,
            Parsed::NotReady => {
                return Err(Corruption::FrameWord {
                    pos: *read,
                    word: 0,
                });
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.shared
                .detach(Role::Consumer, lock, self.shared.space_point());
        }
    }
}

/// A frame taken by [`Consumer::try_recv`] and friends.
///
/// Derefs to the payload inside the shared mapping, 8-byte aligned. The
/// space is released to the producer when the grant is dropped.
///
/// The bytes are committed and will not be touched by a correct producer
/// until released; a misbehaving process with write access to the mapping
/// could still change them under you, so validate what you parse. mmring
/// itself never derives an address from payload bytes.
#[must_use = "dropping a ReadGrant releases the frame immediately"]
pub struct ReadGrant<'a> {
    consumer: &'a mut Consumer,
    frame: Located,
}

impl fmt::Debug for ReadGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGrant")
            .field("len", &self.frame.len)
            .finish()
    }
}

impl ReadGrant<'_> {
    /// Views the payload as a `T` without copying, if its length is exactly
    /// `size_of::<T>()` and `T` needs at most 8-byte alignment.
    ///
    /// # Errors
    ///
    /// `bytemuck`'s [`PodCastError`](bytemuck::PodCastError) on a size or
    /// alignment mismatch.
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, bytemuck::PodCastError> {
        bytemuck::try_from_bytes(self)
    }

    /// Releases the frame (the same as dropping the grant).
    pub fn release(self) {}
}

impl Deref for ReadGrant<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: the grant holds the consumer mutably, so the frame cannot
        // be released while this borrow lives.
        unsafe { self.consumer.payload(self.frame) }
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        self.consumer.read = self.frame.next;
        self.consumer.release_to(self.frame.next);
    }
}
