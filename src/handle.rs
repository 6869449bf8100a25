//! The handle layer, written once for every flavour: [`Ring`], its
//! [`Producer`] and [`Consumer`] handles, their grants and batches, and the
//! blocking, timeouts, copying helpers, liveness queries and `stat` they
//! share. A flavour supplies only its protocol (`flavour::sealed::Protocol`).
//!
//! Naming follows crossbeam and rtrb: `try_*` never blocks, the bare verb
//! blocks, `*_timeout` blocks for at most a `Duration`.

use std::fmt;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::config::{Config, Trust};
use crate::error::{Corruption, Error, RecvError, SendError};
use crate::layout::{Kind, Role};
use crate::notify::Notifier;
use crate::protocol::{FixedKind, Flavour};
use crate::region::Region;
use crate::roles::Attachment;
use crate::shared::{Base, PeerState, Shared, Stat};
use crate::wait::{self, Gave, SleeperSet, WaitStrategy};

/// The deadline `timeout` from now; `None` (no deadline) when it lies beyond
/// what an `Instant` can represent, e.g. `Duration::MAX`. Every `*_timeout`
/// method computes its deadline here, so none of them can overflow.
pub(crate) fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// A ring in shared memory: the mapping, from which [`Producer`] and
/// [`Consumer`] handles are made. Cheap to clone (an `Arc`); each handle
/// keeps the mapping alive.
///
/// `P` is the flavour: use the aliases [`spsc::Ring`](crate::spsc::Ring),
/// [`mpsc::Ring`](crate::mpsc::Ring), [`mpmc::Ring`](crate::mpmc::Ring), or
/// [`AnyRing`](crate::AnyRing) for a ring whose kind is learnt from its
/// file.
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
pub struct Ring<P: Flavour> {
    shared: Arc<Shared<P>>,
}

impl<P: Flavour> Clone for Ring<P> {
    fn clone(&self) -> Self {
        Ring {
            shared: self.shared.clone(),
        }
    }
}

impl<P: Flavour> fmt::Debug for Ring<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("kind", &self.kind())
            .field("path", &self.path())
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<P: FixedKind> Ring<P> {
    /// Creates a new ring file at `path` (mode `0o600` unless
    /// [`Config::mode`] says otherwise). Use a path under `/dev/shm` for a
    /// ring that lives in RAM only. The file appears under its name fully
    /// initialised or not at all.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad `cfg` (framed rings are sized with
    /// [`Config::new`], mpmc rings with [`Config::slots`]); [`Error::Io`] if
    /// the file exists (`AlreadyExists`) or cannot be created, sized or have
    /// its pages reserved (a full `/dev/shm` fails here, not later).
    ///
    /// ```no_run
    /// let ring = mmring::spsc::Ring::create("/dev/shm/feed", mmring::Config::new(1 << 20))?;
    /// let jobs = mmring::mpmc::Ring::create("/dev/shm/jobs", mmring::Config::slots(1024, 64))?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn create(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        Ring::wrap(Region::create(path.as_ref(), &cfg, P::KIND, P::init)?)
    }

    /// Opens an existing ring file of this flavour.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if it cannot be opened; [`Error::NotRegularFile`],
    /// [`Error::Truncated`], [`Error::BadMagic`],
    /// [`Error::UnsupportedVersion`], [`Error::ForeignPlatform`],
    /// [`Error::Uninitialized`], [`Error::WrongKind`],
    /// [`Error::BadGeometry`] or [`Error::Corrupt`] if it is not a valid
    /// ring of this flavour.
    ///
    /// ```no_run
    /// let ring = mmring::spsc::Ring::open("/dev/shm/feed")?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        Ring::wrap(Region::open(path.as_ref(), Some(P::KIND))?)
    }

    /// As [`open`](Ring::open), with the opt-ins of `trust`: a ring owned by
    /// another user, writable by group or others, or behind a symbolic link
    /// (see the README's trust model).
    ///
    /// # Errors
    ///
    /// As `open`; [`Error::ForeignOwner`] and [`Error::Symlink`] only for
    /// what `trust` does not allow.
    ///
    /// ```no_run
    /// use mmring::Trust;
    /// let shared = Trust::new().allow_shared_mode();
    /// let ring = mmring::mpsc::Ring::open_with("/dev/shm/team-log", shared)?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn open_with(path: impl AsRef<Path>, trust: Trust) -> Result<Self, Error> {
        Ring::wrap(Region::open_with(path.as_ref(), &trust, Some(P::KIND))?)
    }

    /// Opens the ring at `path`, creating it with `cfg` if it does not
    /// exist. Any number of processes may call this at once: exactly one
    /// creates the file and all of them end up attached to it.
    ///
    /// # Errors
    ///
    /// As `create` and `open`, plus [`Error::GeometryMismatch`] when the
    /// existing ring's geometry differs from `cfg`.
    ///
    /// ```no_run
    /// let ring = mmring::mpsc::Ring::open_or_create("/dev/shm/log", mmring::Config::new(1 << 20))?;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn open_or_create(path: impl AsRef<Path>, cfg: Config) -> Result<Self, Error> {
        Ring::wrap(Region::open_or_create(
            path.as_ref(),
            &cfg,
            P::KIND,
            P::init,
        )?)
    }

    /// Creates a ring in anonymous shared memory (a memfd sealed against
    /// resizing). It is shared with children across `fork` (claim roles
    /// after forking), and its fd ([`as_fd`](Ring::as_fd)) can be passed to
    /// another process, which attaches with [`from_fd`](Ring::from_fd).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the memfd
    /// cannot be created or sized.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(1 << 16))?;
    /// assert!(ring.path().is_none());
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn anonymous(cfg: Config) -> Result<Self, Error> {
        Ring::wrap(Region::anonymous(&cfg, P::KIND, P::init)?)
    }

    /// Attaches to a ring through a file descriptor (a named ring's file or
    /// an anonymous ring's memfd), e.g. one received over a Unix socket or
    /// inherited across `exec`.
    ///
    /// # Errors
    ///
    /// As `open`.
    ///
    /// ```
    /// let a = mmring::mpmc::Ring::anonymous(mmring::Config::slots(64, 32))?;
    /// let fd = a.as_fd().try_clone_to_owned().unwrap();
    /// let b = mmring::mpmc::Ring::from_fd(fd)?;
    /// assert_eq!(a.capacity(), b.capacity());
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn from_fd(fd: OwnedFd) -> Result<Self, Error> {
        Ring::wrap(Region::from_fd(fd, Some(P::KIND))?)
    }
}

impl<P: Flavour> Ring<P> {
    pub(crate) fn wrap(region: Region) -> Result<Self, Error> {
        Ok(Ring {
            shared: Arc::new(Shared::new(region)?),
        })
    }

    pub(crate) fn mem(&self) -> &P::Mem {
        &self.shared.mem
    }

    /// Attaches a producer. A single-producer ring (spsc) has one at a
    /// time; the others take any number (up to 128 handles of all roles in
    /// all processes): make one per writing thread or process.
    ///
    /// # Errors
    ///
    /// [`Error::RoleTaken`] (with the holder's pid) while another live
    /// handle, in any process, holds an exclusive role;
    /// [`Error::TooManyAttachments`] when 128 handles are attached;
    /// [`Error::Corrupt`] if the cursors are inconsistent.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let tx = ring.producer()?;
    /// assert!(matches!(ring.producer(), Err(mmring::Error::RoleTaken { .. })));
    /// drop(tx);
    /// let tx = ring.producer()?; // free again
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn producer(&self) -> Result<Producer<P>, Error> {
        let role = RoleGuard::attach(&self.shared, Role::Producer)?;
        let st = P::producer(&self.shared.mem, role.record())?;
        Ok(Producer {
            role,
            st,
            batched: false,
        })
    }

    /// Attaches a consumer, positioned at the oldest message not yet
    /// released. Framed rings (spsc, mpsc) have one consumer at a time;
    /// mpmc takes any number.
    ///
    /// # Errors
    ///
    /// As [`producer`](Ring::producer).
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let rx = ring.consumer()?;
    /// assert!(rx.is_empty());
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn consumer(&self) -> Result<Consumer<P>, Error> {
        let role = RoleGuard::attach(&self.shared, Role::Consumer)?;
        let st = P::consumer(&self.shared.mem, role.record())?;
        Ok(Consumer { role, st })
    }

    /// The ring's kind.
    pub fn kind(&self) -> Kind {
        P::kind(&self.shared.mem)
    }

    /// The ring's identity: 128 random bits drawn when it was created, the
    /// same in every process that maps it and different for every ring
    /// created (a file removed and created again at the same path is a new
    /// ring). Stable for the ring's life; a bridge can name its messages
    /// with it.
    ///
    /// ```
    /// let a = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let b = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.id(), a.clone().id());
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn id(&self) -> u128 {
        let [hi, lo] = self.shared.region.geometry().ring_id;
        (u128::from(hi) << 64) | u128::from(lo)
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.shared.region.geometry().capacity
    }

    /// Largest payload a message may carry (the slot size of an mpmc ring).
    pub fn max_frame(&self) -> usize {
        P::max_frame(&self.shared.mem) as usize
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
    /// file-backed ring against power loss. Messages are visible to other
    /// processes without it.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if `msync` fails.
    pub fn flush(&self) -> Result<(), Error> {
        self.shared.region.flush()
    }

    /// A snapshot of the ring's cursors, attachments (with whether each
    /// holder is alive) and sleepers, for monitoring. Cursors are in the
    /// flavour's units: bytes for framed rings, slots for mpmc.
    pub fn stat(&self) -> Stat {
        self.shared.stat()
    }
}

/// A held role: the attachment (OFD lock) and the ring it belongs to.
/// Dropping it detaches and wakes the other side.
pub(crate) struct RoleGuard<P: Base> {
    pub(crate) shared: Arc<Shared<P>>,
    role: Role,
    att: Option<Attachment>,
    /// Wake-ups that found nobody asleep (see `Shared::notify`).
    futile: AtomicU32,
    /// When the slow-path checks last ran.
    last_slow_check: LastCheck,
    /// The wake-up socket for waits in an event loop, bound on first use
    /// (`notify.rs`).
    pub(crate) notifier: Option<Notifier>,
    /// Our bit is set in the wait point by [`arm`](Consumer::arm).
    armed: bool,
    /// How blocking calls wait.
    pub(crate) strategy: WaitStrategy,
}

/// How often a waiting party re-checks the file (size, name).
const SLOW_CHECK_EVERY: Duration = Duration::from_millis(50);

/// The time of the last slow-path check, in nanoseconds after a
/// process-wide base instant (0: never), settable through `&self` (a
/// handle stays `Sync`).
#[derive(Debug, Default)]
struct LastCheck(AtomicU64);

impl LastCheck {
    fn nanos(now: Instant) -> u64 {
        static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
        let base = *BASE.get_or_init(Instant::now);
        u64::try_from(now.saturating_duration_since(base).as_nanos()).unwrap_or(u64::MAX) | 1
    }

    /// Whether a check is due at `now`.
    fn due(&self, now: Instant) -> bool {
        // ORDERING: Relaxed; a rate limit private to this handle.
        let last = self.0.load(Relaxed);
        last == 0 || Self::nanos(now).saturating_sub(last) >= SLOW_CHECK_EVERY.as_nanos() as u64
    }

    fn set(&self, now: Instant) {
        // ORDERING: Relaxed; as in `due`.
        self.0.store(Self::nanos(now), Relaxed);
    }
}

impl<P: Base> RoleGuard<P> {
    pub(crate) fn attach(shared: &Arc<Shared<P>>, role: Role) -> Result<Self, Error> {
        let att = shared.attach(role)?;
        Ok(RoleGuard {
            shared: shared.clone(),
            role,
            att: Some(att),
            futile: AtomicU32::new(0),
            last_slow_check: LastCheck::default(),
            notifier: None,
            armed: false,
            strategy: WaitStrategy::default(),
        })
    }

    /// The wait point this side sleeps on: consumers wait for data,
    /// producers for room.
    fn own_point(&self) -> wait::WaitPoint<'_> {
        match self.role {
            Role::Consumer => self.shared.data_point(),
            Role::Producer => self.shared.space_point(),
        }
    }

    /// Binds the wake-up socket if it is not yet, and names it in our
    /// attachment record.
    pub(crate) fn ensure_notifier(&mut self) -> Result<&Notifier, Error> {
        if self.notifier.is_none() {
            let n = Notifier::bind(self.shared.region.geometry().ring_id, self.record())?;
            // Before our bit is ever set (by `arm` or `event::block_async`).
            wait::publish_nonce(
                &self.shared.region.attach_record(self.record()).notify,
                n.nonce(),
            );
            self.notifier = Some(n);
        }
        Ok(self.notifier.as_ref().expect("bound above"))
    }

    /// Whether a wake-up datagram from `pid` counts: it must come from a
    /// process holding an attachment record of this ring.
    pub(crate) fn trusted(&self, pid: u32) -> bool {
        pid == std::process::id()
            || (0..crate::layout::ATTACH_SLOTS)
                // ORDERING: Relaxed; a pid recorded at attach, a hint.
                .any(|i| self.shared.region.attach_record(i).pid.load(Relaxed) == pid)
    }

    /// Sets our sleeper bit (S1) and issues the heavy barrier (S2); the
    /// caller re-checks the ring. `false` if the kernel barrier failed.
    fn arm(&mut self) -> Result<bool, Error> {
        self.ensure_notifier()?;
        let point = self.own_point();
        point.sleepers().insert(self.bit());
        self.armed = true;
        Ok(crate::barrier::heavy())
    }

    /// Clears our sleeper bit if `arm` set it.
    fn disarm(&mut self) {
        if std::mem::take(&mut self.armed) {
            let bit = self.bit();
            self.own_point().sleepers().remove(bit);
        }
    }

    /// Reads the queued wake-ups; `true` if one came from an attached party.
    pub(crate) fn clear_notify(&self) -> bool {
        match &self.notifier {
            Some(n) => n.drain(|pid| self.trusted(pid)),
            None => false,
        }
    }

    pub(crate) fn att(&self) -> &Attachment {
        self.att.as_ref().expect("attached while the handle lives")
    }

    /// Our attachment record.
    fn record(&self) -> u64 {
        self.att().record()
    }

    /// Our bit in the sleeper sets.
    pub(crate) fn bit(&self) -> u32 {
        self.record() as u32
    }

    /// Wakes the other side, if anyone sleeps there.
    #[inline]
    fn notify(&self) {
        self.shared.notify(self.role, &self.futile);
    }

    /// A truncated ring file: the fault handler replaced the mapping with
    /// zeros, and what was just read is not data.
    #[inline(always)]
    pub(crate) fn poisoned(&self) -> Result<(), Corruption> {
        self.shared.region.check_poison()
    }

    /// Reports what an error really was: once the mapping is poisoned,
    /// whatever the zeros looked like (a regressed cursor, a bad frame
    /// word) is a truncated file.
    #[cold]
    #[inline(never)]
    pub(crate) fn explain(&self, c: Corruption) -> Corruption {
        match self.poisoned() {
            Err(truncated) => truncated,
            Ok(()) => c,
        }
    }

    /// The slow-path checks of a party about to sleep: the file still as
    /// long as the ring (a waiter may never touch the lost pages), and,
    /// while the other side is not attached, the path still naming our
    /// file. System calls, so at most once per `SLOW_CHECK_EVERY`.
    pub(crate) fn slow_check(&self) -> Result<(), Gave<Corruption>> {
        self.poisoned().map_err(Gave::Err)?;
        let now = Instant::now();
        if !self.last_slow_check.due(now) {
            return Ok(());
        }
        let region = &self.shared.region;
        if let Err(Error::Truncated { .. }) = region.check_size() {
            return Err(Gave::Err(Corruption::Truncated));
        }
        if self.peer_state() != PeerState::Alive && region.is_unlinked() {
            return Err(Gave::Unlinked);
        }
        self.last_slow_check.set(now);
        Ok(())
    }

    /// The state of the other role.
    pub(crate) fn peer_state(&self) -> PeerState {
        let peer = match self.role {
            Role::Producer => Role::Consumer,
            Role::Consumer => Role::Producer,
        };
        self.shared.peer_state(self.att(), peer)
    }
}

impl<P: Base> Drop for RoleGuard<P> {
    fn drop(&mut self) {
        if self.att.as_ref().is_some_and(|a| !a.is_inherited()) {
            self.disarm();
        }
        if let Some(att) = self.att.take() {
            // An inherited handle's role is the parent's: its descriptor is
            // inert here, and its record is not ours to clear.
            if !att.is_inherited() {
                self.shared.detach(self.role, att);
            }
        }
    }
}

/// The writing half of a [`Ring`]. `Send` and `'static`: move it to the
/// thread that writes. Dropping it detaches, waking consumers blocked on an
/// empty ring so they can return [`RecvError::Disconnected`] once every
/// producer is gone.
pub struct Producer<P: Flavour> {
    role: RoleGuard<P>,
    st: P::Tx,
    /// The live grant belongs to a [`WriteBatch`], which makes it visible
    /// (kept here rather than in the grant: a smaller grant stays in
    /// registers on the hot path).
    batched: bool,
}

impl<P: Flavour> fmt::Debug for Producer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("kind", &P::kind(self.mem()))
            .field("state", &self.st)
            .finish_non_exhaustive()
    }
}

impl<P: Flavour> Producer<P> {
    fn mem(&self) -> &P::Mem {
        &self.role.shared.mem
    }

    #[inline(always)]
    fn check_len(&self, len: usize) -> Result<u64, SendError> {
        let max = P::max_frame(self.mem());
        match u64::try_from(len) {
            Ok(l) if l <= max => Ok(l),
            _ => Err(SendError::TooLarge {
                len,
                max: max as usize,
            }),
        }
    }

    /// Reserves room for a message of up to `len` bytes without blocking.
    /// The grant derefs to `len` bytes inside the mapping (8-byte aligned);
    /// write them, then [`commit`](WriteGrant::commit) (or
    /// [`commit_len`](WriteGrant::commit_len) a shorter prefix). Dropping the
    /// grant gives the space back (see the flavour's `WriteGrant` alias for
    /// how).
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`] if `len > max_frame`; [`SendError::Full`] if
    /// there is no room now; [`SendError::Corrupt`] if the ring is
    /// inconsistent.
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
    #[inline(always)]
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_, P>, SendError> {
        match self.try_claim(len)? {
            Some(claim) => Ok(self.grant(claim, len, false)),
            None => Err(SendError::Full),
        }
    }

    /// One attempt to claim room, with errors explained and the mapping
    /// checked before a claim is handed out.
    #[inline(always)]
    fn try_claim(&mut self, len: usize) -> Result<Option<P::Claim>, SendError> {
        let len64 = self.check_len(len)?;
        let role = &self.role;
        if role.att().is_inherited() {
            return Err(SendError::Forked);
        }
        let claim =
            P::try_claim(&role.shared.mem, &mut self.st, len64).map_err(|c| role.explain(c))?;
        if claim.is_some() {
            role.poisoned()?;
        }
        Ok(claim)
    }

    /// Reserves room for a message of up to `len` bytes, blocking while the
    /// ring is full: spinning briefly, then sleeping in the kernel until a
    /// consumer frees space.
    ///
    /// # Errors
    ///
    /// [`SendError::TooLarge`]; [`SendError::Disconnected`] if the ring is
    /// full and every consumer that attached has detached or died (noticed
    /// within about 200 ms of a `kill -9`; a ring whose consumer never
    /// attached waits for it); [`SendError::Corrupt`].
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_, P>, SendError> {
        self.reserve_until(len, None, false)
    }

    /// As [`reserve`](Producer::reserve), giving up with
    /// [`SendError::Timeout`] after `timeout` (a timeout too large to
    /// represent waits for ever).
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_, P>, SendError> {
        self.reserve_until(len, deadline(timeout), false)
    }

    fn reserve_until(
        &mut self,
        len: usize,
        deadline: Option<Instant>,
        batched: bool,
    ) -> Result<WriteGrant<'_, P>, SendError> {
        let claim = match self.try_claim(len)? {
            Some(claim) => claim,
            None => {
                let len64 = len as u64;
                let role = &self.role;
                let (mem, st) = (&role.shared.mem, &mut self.st);
                // What this producer has published but not yet made visible
                // (a batch) must be visible before it waits for room, or the
                // consumer could wait for it while it waits for the consumer.
                if P::flush(mem, st) {
                    role.notify();
                }
                let claim = wait::block_with(
                    role.strategy,
                    role.shared.space_point(),
                    role.bit(),
                    deadline,
                    || P::try_claim(mem, st, len64).map_err(|c| role.explain(c)),
                    || role.slow_check(),
                    || role.peer_state().is_gone(),
                )?;
                role.poisoned()?;
                claim
            }
        };
        Ok(self.grant(claim, len, batched))
    }

    #[inline(always)]
    fn grant(&mut self, claim: P::Claim, len: usize, batched: bool) -> WriteGrant<'_, P> {
        self.batched = batched;
        WriteGrant {
            producer: self,
            claim,
            len,
            done: false,
        }
    }

    /// Copies `msg` into the ring without blocking.
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Producer::try_reserve).
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.try_reserve(msg.len())?.fill(msg);
        Ok(())
    }

    /// Copies `msg` into the ring, blocking while it is full.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Producer::reserve).
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.reserve(msg.len())?.fill(msg);
        Ok(())
    }

    /// Copies `msg` into the ring, blocking at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`reserve_timeout`](Producer::reserve_timeout).
    pub fn send_timeout(&mut self, msg: &[u8], timeout: Duration) -> Result<(), SendError> {
        self.reserve_timeout(msg.len(), timeout)?.fill(msg);
        Ok(())
    }

    /// Copies the bytes of `value` into the ring as one message, without
    /// blocking. The consumer views it in place with
    /// [`ReadGrant::as_pod`] (payloads are 8-byte aligned, so any `T` with
    /// alignment up to 8 can be viewed without copying).
    ///
    /// # Errors
    ///
    /// As [`try_reserve`](Producer::try_reserve).
    ///
    /// ```
    /// #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable, PartialEq, Debug)]
    /// #[repr(C)]
    /// struct Tick { seq: u64, price: f64 }
    /// let ring = mmring::mpsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.try_send_pod(&Tick { seq: 1, price: 9.5 })?;
    /// assert_eq!(rx.try_recv()?.as_pod::<Tick>(), Ok(&Tick { seq: 1, price: 9.5 }));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.try_send(bytemuck::bytes_of(value))
    }

    /// As [`try_send_pod`](Producer::try_send_pod), blocking while the ring
    /// is full.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Producer::reserve).
    pub fn send_pod<T: bytemuck::Pod>(&mut self, value: &T) -> Result<(), SendError> {
        self.send(bytemuck::bytes_of(value))
    }

    /// Starts a send-side batch: messages reserved and committed through it
    /// become visible to consumers together, with one publication (one
    /// store of the cursor and one wake-up check on spsc; one wake-up check
    /// on mpsc and mpmc, whose messages are each published by their own
    /// frame word or stamp), when the batch is dropped or
    /// [`publish`](WriteBatch::publish)ed, or when it must wait for room.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let mut batch = tx.batch();
    /// for i in 0..10u8 {
    ///     batch.try_send(&[i])?;
    /// }
    /// assert!(rx.is_empty());        // nothing visible yet
    /// batch.publish();               // one publication for all ten
    /// assert_eq!(rx.try_recv_batch(usize::MAX, |_| {})?, 10);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn batch(&mut self) -> WriteBatch<'_, P> {
        WriteBatch { producer: self }
    }

    /// Copies as many of `msgs` as fit now into the ring, in order, and
    /// publishes them together (see [`batch`](Producer::batch)). Returns how
    /// many were sent; it stops at the first that does not fit, so that
    /// message and the rest remain the caller's.
    ///
    /// # Errors
    ///
    /// As [`try_send`](Producer::try_send), for the first message only (an
    /// error after some messages were sent ends the batch early; the next
    /// call reports it).
    ///
    /// ```
    /// let ring = mmring::mpmc::Ring::anonymous(mmring::Config::slots(4, 8))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// let msgs = [b"a", b"b", b"c", b"d", b"e"];
    /// assert_eq!(tx.try_send_batch(msgs)?, 4); // four slots
    /// assert_eq!(rx.len(), 4);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_send_batch<I>(&mut self, msgs: I) -> Result<usize, SendError>
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let mut batch = self.batch();
        let mut n = 0;
        for msg in msgs {
            match batch.try_send(msg.as_ref()) {
                Ok(()) => n += 1,
                Err(e) if n == 0 => return Err(e),
                Err(_) => break,
            }
        }
        Ok(n)
    }

    /// Largest payload a message may carry.
    pub fn max_frame(&self) -> usize {
        P::max_frame(self.mem()) as usize
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.role.shared.region.geometry().capacity
    }

    /// The ring's kind.
    pub fn kind(&self) -> Kind {
        P::kind(self.mem())
    }

    /// Whether the ring is full now: not even an empty message fits (for
    /// mpsc rings, fewer than 8 bytes are free; for spsc, fewer than 16, as
    /// it keeps 8 bytes free for its terminator word; for mpmc, every slot
    /// is claimed). A message of `n` bytes may not fit even when this is
    /// `false`: only [`try_reserve`](Producer::try_reserve) answers for a
    /// given length. A snapshot: consumers may free space at any moment.
    pub fn is_full(&self) -> bool {
        P::is_full(self.mem(), &self.st)
    }

    /// Claimed or committed and not yet released by the consumers: bytes
    /// for framed rings, slots for mpmc (an upper bound: consumers may have
    /// moved on since).
    pub fn len_hint(&self) -> u64 {
        P::unreleased(self.mem(), &self.st)
    }

    /// Whether a live consumer holds the other role right now.
    pub fn is_consumer_attached(&self) -> bool {
        self.consumer_state() == PeerState::Alive
    }

    /// The consumers' state: attached now, never attached, or attached once
    /// and since gone cleanly ([`PeerState::Gone`]) or died
    /// ([`PeerState::Died`]).
    pub fn consumer_state(&self) -> PeerState {
        self.role.peer_state()
    }
}

/// Space reserved by a [`Producer`]: derefs to the reserved bytes inside
/// the shared mapping (8-byte aligned). Nothing is visible to consumers
/// until [`commit`](WriteGrant::commit) or
/// [`commit_len`](WriteGrant::commit_len). Dropping the grant (or
/// [`abort`](WriteGrant::abort)) gives the space back.
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
pub struct WriteGrant<'a, P: Flavour> {
    producer: &'a mut Producer<P>,
    claim: P::Claim,
    len: usize,
    done: bool,
}

impl<P: Flavour> fmt::Debug for WriteGrant<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteGrant")
            .field("claim", &self.claim)
            .field("len", &self.len)
            .finish()
    }
}

impl<P: Flavour> WriteGrant<'_, P> {
    /// Publishes the whole reserved length.
    #[inline(always)]
    pub fn commit(self) {
        let len = self.len;
        self.commit_len(len);
    }

    /// Publishes the first `len` bytes as the message.
    ///
    /// # Panics
    ///
    /// If `len` is larger than the reservation.
    #[inline(always)]
    pub fn commit_len(self, len: usize) {
        assert!(
            len <= self.len,
            "commit_len({len}) exceeds the reservation of {}",
            self.len
        );
        // No drop glue on the hot path: it would take the grant's address
        // and keep it in memory, where reading it back after the payload
        // stores stalls on them (see `end`).
        let mut this = std::mem::ManuallyDrop::new(self);
        this.end(Some(len as u64));
    }

    /// Gives the space back without publishing a message (the same as
    /// dropping the grant): nothing at all on spsc, a skip record on mpsc,
    /// an aborted slot on mpmc, which consumers pass over.
    pub fn abort(mut self) {
        self.end(None);
    }

    /// Views the first `size_of::<T>()` bytes as a `T`, to build a value in
    /// place. The payload is 8-byte aligned, so any `T` with alignment up to
    /// 8 works.
    ///
    /// # Panics
    ///
    /// If the reservation is shorter than `T` or `T` needs more than 8-byte
    /// alignment.
    pub fn as_pod_mut<T: bytemuck::Pod>(&mut self) -> &mut T {
        let n = size_of::<T>();
        bytemuck::from_bytes_mut(&mut self[..n])
    }

    /// The reserved length in bytes: the most this grant can commit.
    pub fn reserved_len(&self) -> usize {
        self.len
    }

    /// Reserved length.
    #[deprecated(since = "0.2.0", note = "use `reserved_len`")]
    pub fn capacity(&self) -> usize {
        self.len
    }

    #[inline]
    fn fill(mut self, msg: &[u8]) {
        self.copy_from_slice(msg);
        self.commit();
    }

    #[inline(always)]
    fn payload(&self) -> NonNull<u8> {
        // SAFETY: the claim came from `try_claim` with this length and is
        // not yet published (`done` is false while the grant is usable).
        unsafe { P::claim_payload(self.producer.mem(), &self.claim) }
    }

    /// Publishes `committed` bytes, or gives the claim back; once.
    #[inline(always)]
    fn end(&mut self, committed: Option<u64>) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let p = &mut *self.producer;
        let shared = &*p.role.shared;
        P::publish(&shared.mem, &mut p.st, self.claim, committed);
        if !p.batched && P::flush(&shared.mem, &mut p.st) {
            p.role.notify();
        }
    }
}

impl<P: Flavour> std::ops::Deref for WriteGrant<'_, P> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `payload` points to `len` bytes inside the data area that
        // the protocol gives this grant alone until it publishes them.
        unsafe { std::slice::from_raw_parts(self.payload().as_ptr(), self.len) }
    }
}

impl<P: Flavour> std::ops::DerefMut for WriteGrant<'_, P> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`; the grant borrows its producer mutably, so
        // this is the only view of those bytes in this process.
        unsafe { std::slice::from_raw_parts_mut(self.payload().as_ptr(), self.len) }
    }
}

impl<P: Flavour> Drop for WriteGrant<'_, P> {
    #[inline(always)]
    fn drop(&mut self) {
        self.end(None);
    }
}

/// A send-side batch, from [`Producer::batch`]: grants committed through it
/// become visible together when it is dropped or
/// [`publish`](WriteBatch::publish)ed (or earlier, when a blocking
/// reservation must wait for room).
#[must_use = "a WriteBatch publishes its messages when dropped; drop or publish it"]
pub struct WriteBatch<'a, P: Flavour> {
    producer: &'a mut Producer<P>,
}

impl<P: Flavour> fmt::Debug for WriteBatch<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBatch")
            .field("producer", &self.producer)
            .finish()
    }
}

impl<P: Flavour> WriteBatch<'_, P> {
    /// As [`Producer::try_reserve`]; the committed message becomes visible
    /// with the batch.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_reserve`].
    #[inline(always)]
    pub fn try_reserve(&mut self, len: usize) -> Result<WriteGrant<'_, P>, SendError> {
        let p = &mut *self.producer;
        match p.try_claim(len)? {
            Some(claim) => Ok(p.grant(claim, len, true)),
            None => Err(SendError::Full),
        }
    }

    /// As [`Producer::reserve`]: while the ring is full, what the batch
    /// holds is published first, then the call waits for room.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve`].
    pub fn reserve(&mut self, len: usize) -> Result<WriteGrant<'_, P>, SendError> {
        self.producer.reserve_until(len, None, true)
    }

    /// As [`reserve`](WriteBatch::reserve), giving up with
    /// [`SendError::Timeout`] after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve_timeout`].
    pub fn reserve_timeout(
        &mut self,
        len: usize,
        timeout: Duration,
    ) -> Result<WriteGrant<'_, P>, SendError> {
        self.producer.reserve_until(len, deadline(timeout), true)
    }

    /// Copies `msg` into the batch without blocking.
    ///
    /// # Errors
    ///
    /// As [`Producer::try_reserve`].
    #[inline]
    pub fn try_send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.try_reserve(msg.len())?.fill(msg);
        Ok(())
    }

    /// Copies `msg` into the batch, blocking while the ring is full.
    ///
    /// # Errors
    ///
    /// As [`Producer::reserve`].
    pub fn send(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.reserve(msg.len())?.fill(msg);
        Ok(())
    }

    /// Makes every message committed through the batch visible, and wakes
    /// consumers that sleep (the same as dropping the batch).
    pub fn publish(self) {}
}

impl<P: Flavour> Drop for WriteBatch<'_, P> {
    #[inline]
    fn drop(&mut self) {
        let p = &mut *self.producer;
        if P::flush(&p.role.shared.mem, &mut p.st) {
            p.role.notify();
        }
    }
}

/// The reading half of a [`Ring`]. `Send` and `'static`. Dropping it
/// detaches, waking producers blocked on a full ring so they can return
/// [`SendError::Disconnected`] once every consumer is gone.
pub struct Consumer<P: Flavour> {
    role: RoleGuard<P>,
    st: P::Rx,
}

impl<P: Flavour> Drop for Consumer<P> {
    /// Hands back what lazy release still holds, before the role goes: a
    /// consumer that detaches cleanly leaves nothing to deliver twice.
    fn drop(&mut self) {
        if !self.role.att().is_inherited() && P::release_all(&self.role.shared.mem, &mut self.st) {
            self.role.notify();
        }
    }
}

impl<P: Flavour> fmt::Debug for Consumer<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("kind", &P::kind(self.mem()))
            .field("state", &self.st)
            .finish_non_exhaustive()
    }
}

/// One attempt to take a message; space skipped on the way (padding, skip
/// records, aborted slots) is handed back at once when nothing is found, so
/// producers are never kept waiting for it.
///
/// Errors are explained (zeros read from a truncated file are `Truncated`,
/// not whatever they looked like), and a message is handed out only after
/// the mapping is checked: zeros never pass as data.
#[inline(always)]
fn take<P: Flavour>(role: &RoleGuard<P>, st: &mut P::Rx) -> Result<Option<P::Taken>, Corruption> {
    let mem = &role.shared.mem;
    match P::try_take(mem, st).map_err(|c| role.explain(c))? {
        Some(taken) => {
            role.poisoned()?;
            Ok(Some(taken))
        }
        None => {
            // Before reporting the ring empty (and so before any sleep):
            // everything consumed goes back, lazy release or not.
            if P::release_all(mem, st) {
                role.notify();
            }
            Ok(None)
        }
    }
}

/// How a consumer's wait ended, as its caller reports it. When every
/// producer is gone, every claim left unpublished is a dead one: complete
/// them now, without the grace period, and deliver what waits behind them;
/// `Disconnected` only when nothing is left.
fn ended<P: Flavour>(
    role: &RoleGuard<P>,
    st: &mut P::Rx,
    r: Result<P::Taken, Gave<Corruption>>,
) -> Result<P::Taken, RecvError> {
    match r {
        Err(Gave::Disconnected) => {
            while P::recover_now(&role.shared.mem, st).map_err(|c| role.explain(c))? {
                if let Some(taken) = take(role, st)? {
                    return Ok(taken);
                }
            }
            Err(RecvError::Disconnected)
        }
        r => Ok(r?),
    }
}

impl<P: Flavour> Consumer<P> {
    pub(crate) fn mem(&self) -> &P::Mem {
        &self.role.shared.mem
    }

    /// Takes the next message without blocking. The grant derefs to the
    /// payload inside the mapping; dropping it releases the space.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no committed message is waiting;
    /// [`RecvError::Corrupt`] if the ring is inconsistent (a framed
    /// consumer stays in place, so every later call reports the same; an
    /// mpmc consumer hands the bad slot back and moves on).
    #[inline(always)]
    pub fn try_recv(&mut self) -> Result<ReadGrant<'_, P>, RecvError> {
        self.check_inherited()?;
        match take(&self.role, &mut self.st)? {
            Some(taken) => Ok(self.grant(taken)),
            None => Err(RecvError::Empty),
        }
    }

    /// Takes the next message, blocking while the ring is empty: spinning
    /// briefly, then sleeping in the kernel until a producer publishes.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the ring is empty and every producer
    /// that attached has detached or died (within about 200 ms of a
    /// `kill -9`; a ring whose producer never attached waits for it);
    /// [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<ReadGrant<'_, P>, RecvError> {
        let taken = self.wait_take(None)?;
        Ok(self.grant(taken))
    }

    /// As [`recv`](Consumer::recv), giving up with [`RecvError::Timeout`]
    /// after `timeout` (a timeout too large to represent waits for ever).
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
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv), plus [`RecvError::Timeout`].
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_, P>, RecvError> {
        let taken = self.wait_take(deadline(timeout))?;
        Ok(self.grant(taken))
    }

    /// Refuses a consumer inherited across `fork`.
    #[inline(always)]
    fn check_inherited(&self) -> Result<(), RecvError> {
        if self.role.att().is_inherited() {
            return Err(RecvError::Forked);
        }
        Ok(())
    }

    fn wait_take(&mut self, deadline: Option<Instant>) -> Result<P::Taken, RecvError> {
        self.check_inherited()?;
        let role = &self.role;
        let st = &mut self.st;
        if let Some(taken) = take(role, st)? {
            return Ok(taken);
        }
        let r = wait::block_with(
            role.strategy,
            role.shared.data_point(),
            role.bit(),
            deadline,
            || take(role, st),
            || role.slow_check(),
            || role.peer_state().is_gone(),
        );
        ended(role, st, r)
    }

    #[inline(always)]
    fn grant(&mut self, taken: P::Taken) -> ReadGrant<'_, P> {
        ReadGrant {
            consumer: self,
            taken,
        }
    }

    /// Lazy release (the cursor publication of Aeron's and the LMAX
    /// Disruptor's batching consumers): hand consumed space back to the
    /// producers every `frames` messages, or every quarter of the ring's
    /// bytes, whichever comes first, instead of after each message. The
    /// consumer still hands back everything it consumed before it reports
    /// the ring empty, before it sleeps, and when it is dropped, so a
    /// producer waiting for space is never kept waiting by a consumer that
    /// is waiting for messages. On a small ring, where producer and
    /// consumer otherwise pass the `head` cursor's cache line back and
    /// forth once per message, this makes it once per `frames`.
    ///
    /// The price, and why it is off by default (`frames` 0 or 1): space is
    /// handed back later, and if this consumer's process dies, the next
    /// consumer receives again up to `frames` messages (or a quarter of
    /// the ring) that this one had already received, not only the one in
    /// flight. A live consumer's messages are never delivered twice.
    ///
    /// Framed rings (spsc, mpsc); returns `false`, and changes nothing, on
    /// an mpmc ring, whose consumers hand back each slot on its own.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// assert!(rx.set_release_every(64));
    /// for i in 0..3u8 { tx.send(&[i])?; }
    /// for _ in 0..3 { drop(rx.try_recv()?); }
    /// assert_eq!(ring.stat().head, 0);          // not yet handed back
    /// assert!(rx.try_recv().is_err());          // empty: handed back now
    /// assert_eq!(ring.stat().head, ring.stat().tail);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn set_release_every(&mut self, frames: u32) -> bool {
        P::set_lazy(&self.role.shared.mem, &mut self.st, frames)
    }

    /// Whether this consumer can read ahead
    /// ([`try_recv_ahead`](Consumer::try_recv_ahead)): spsc and mpsc rings
    /// can, mpmc rings cannot (a consumer holds one slot at a time).
    pub fn can_read_ahead(&self) -> bool {
        P::can_read_ahead(self.mem())
    }

    /// Read-ahead: takes the next message without blocking and keeps it in
    /// the ring after the grant is dropped, until
    /// [`release_to`](Consumer::release_to) is given its
    /// [`end`](AheadGrant::end) (or a later one). Several messages can be
    /// read ahead this way; each call returns the one after the last.
    ///
    /// For forwarding messages somewhere that acknowledges them later (a
    /// network, a disk): what is not yet released stays in the ring, and if
    /// this consumer dies or detaches, the next consumer receives it again,
    /// with the same [`position`](AheadGrant::position). Producers see the
    /// held messages' space as used. Once every message read ahead is
    /// released the consumer works as before; until then, messages taken
    /// with [`try_recv`](Consumer::try_recv) and the other forms are held
    /// too (they come after the held ones) and released with them.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// for i in 0..3u8 { tx.send(&[i])?; }
    /// let a = rx.try_recv_ahead()?.end();
    /// let b = rx.try_recv_ahead()?.end();
    /// assert_eq!(&*rx.try_recv_ahead()?, &[2]);
    /// rx.release_to(a); // the first is acknowledged: released
    /// drop(rx);         // the second and third stay in the ring
    /// let mut rx = ring.consumer()?;
    /// assert_eq!(&*rx.try_recv()?, &[1]);
    /// # let _ = b;
    /// # Ok::<(), mmring::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// As [`try_recv`](Consumer::try_recv), and
    /// [`RecvError::NoReadAhead`] on an mpmc ring.
    pub fn try_recv_ahead(&mut self) -> Result<AheadGrant<'_, P>, RecvError> {
        if !self.can_read_ahead() {
            return Err(RecvError::NoReadAhead);
        }
        self.check_inherited()?;
        match take(&self.role, &mut self.st)? {
            Some(taken) => Ok(self.ahead(taken)),
            None => Err(RecvError::Empty),
        }
    }

    /// As [`try_recv_ahead`](Consumer::try_recv_ahead), waiting up to
    /// `timeout` for a message (a timeout too large to represent waits for
    /// ever).
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Consumer::recv_timeout), and
    /// [`RecvError::NoReadAhead`] on an mpmc ring.
    pub fn recv_ahead_timeout(
        &mut self,
        timeout: Duration,
    ) -> Result<AheadGrant<'_, P>, RecvError> {
        if !self.can_read_ahead() {
            return Err(RecvError::NoReadAhead);
        }
        let taken = self.wait_take(deadline(timeout))?;
        Ok(self.ahead(taken))
    }

    fn ahead(&mut self, taken: P::Taken) -> AheadGrant<'_, P> {
        P::hold(&mut self.st);
        AheadGrant {
            consumer: self,
            taken,
        }
    }

    /// Read-ahead: releases every message read ahead up to the one whose
    /// [`end`](AheadGrant::end) this is, and everything this consumer took
    /// before it. A mark at or before what is already released does
    /// nothing; a mark past what this consumer has read releases what it
    /// has read. Marks are positions in this ring's stream: one from
    /// another ring releases the wrong amount.
    pub fn release_to(&mut self, end: ReleaseMark) {
        if !self.can_read_ahead() {
            return;
        }
        let mem = &self.role.shared.mem;
        if P::release_to(mem, &mut self.st, end.0) {
            self.role.notify();
        }
    }
}

/// Where a message read ahead ends: what
/// [`Consumer::release_to`] takes to release it and every message before it.
/// Ordered as the messages are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ReleaseMark(u64);

impl ReleaseMark {
    /// The position just past the message (bytes for spsc/mpsc).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A message read ahead with [`Consumer::try_recv_ahead`]: derefs to the
/// payload in place. Dropping it marks it read but keeps it in the ring,
/// until [`Consumer::release_to`] is given its [`end`](AheadGrant::end).
pub struct AheadGrant<'a, P: Flavour> {
    consumer: &'a mut Consumer<P>,
    taken: P::Taken,
}

impl<P: Flavour> fmt::Debug for AheadGrant<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AheadGrant")
            .field("taken", &self.taken)
            .finish()
    }
}

impl<P: Flavour> AheadGrant<'_, P> {
    /// The message's position in the ring's stream, as
    /// [`ReadGrant::position`].
    pub fn position(&self) -> u64 {
        P::position(&self.taken)
    }

    /// What releases this message and every one before it
    /// ([`Consumer::release_to`]).
    pub fn end(&self) -> ReleaseMark {
        ReleaseMark(P::end(&self.taken))
    }
}

impl<P: Flavour> std::ops::Deref for AheadGrant<'_, P> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `taken` came from `try_take` and is consumed only on drop
        // (and released later still, by `release_to`).
        let (p, len) = unsafe { P::taken_payload(self.consumer.mem(), &self.taken) };
        // SAFETY: committed bytes inside the data area, which producers
        // leave alone until released; nothing is released while this
        // borrow of the consumer lives.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
    }
}

impl<P: Flavour> Drop for AheadGrant<'_, P> {
    fn drop(&mut self) {
        let c = &mut *self.consumer;
        // Consumed only: the consumer holds (`P::hold`), so no release
        // passes this message until `release_to`.
        P::consume(&c.role.shared.mem, &mut c.st, self.taken);
    }
}

impl<P: Flavour> Consumer<P> {
    /// Copies the next message into `buf` (replacing its contents) and
    /// releases it, without blocking. Returns its length.
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

    /// Copies the next message into `buf` (replacing its contents) and
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

    /// Hands up to `max` waiting messages (at least one) to `f`, in order,
    /// in place, then releases them all at once: one cursor store and one
    /// wake-up check for the lot on framed rings (mpmc hands each slot back
    /// by its stamp, with one wake-up check). Does not block; returns how
    /// many messages `f` saw.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no message is waiting; [`RecvError::Corrupt`]
    /// if the first one is corrupt (a corrupt message after good ones ends
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
    #[inline]
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        self.check_inherited()?;
        match take(&self.role, &mut self.st)? {
            Some(first) => Ok(self.drain(first, max, f)),
            None => Err(RecvError::Empty),
        }
    }

    /// As [`try_recv_batch`](Consumer::try_recv_batch), but blocks until at
    /// least one message is waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv).
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = self.wait_take(None)?;
        Ok(self.drain(first, max, f))
    }

    /// As [`recv_batch`](Consumer::recv_batch), giving up with
    /// [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Consumer::recv_timeout).
    pub fn recv_batch_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
        f: impl FnMut(&[u8]),
    ) -> Result<usize, RecvError> {
        let first = self.wait_take(deadline(timeout))?;
        Ok(self.drain(first, max, f))
    }

    /// Hands up to `max` waiting messages (at least one) to `f` together,
    /// in order, in place, and releases only those `f` has finished with:
    /// `f` returns how many of them, from the first, to release (clamped to
    /// how many it saw); the others stay in the ring, the next messages
    /// this consumer (or the next one, after it detaches) receives. Does
    /// not block; returns how many were released.
    ///
    /// For writing messages out before letting go of them, so that nothing
    /// is lost if the write fails or the process is killed while `f` runs:
    /// what `f` has not finished with is never released. Framed rings
    /// (spsc, mpsc) hand several messages at once; an mpmc consumer holds
    /// one slot at a time, so `f` sees one message, and it is released
    /// whatever `f` returns (other consumers have moved past its slot).
    ///
    /// # Errors
    ///
    /// As [`try_recv_batch`](Consumer::try_recv_batch).
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// for i in 0..10u8 { tx.send(&[i])?; }
    /// // Finish with the first three only.
    /// assert_eq!(rx.try_recv_batch_keep(usize::MAX, |frames| { assert_eq!(frames.len(), 10); 3 })?, 3);
    /// assert_eq!(&*rx.try_recv()?, &[3]); // the rest are still there
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_recv_batch_keep(
        &mut self,
        max: usize,
        f: impl FnOnce(&[&[u8]]) -> usize,
    ) -> Result<usize, RecvError> {
        self.check_inherited()?;
        match take(&self.role, &mut self.st)? {
            Some(first) => Ok(self.drain_keep(first, max, f)),
            None => Err(RecvError::Empty),
        }
    }

    /// As [`try_recv_batch_keep`](Consumer::try_recv_batch_keep), but
    /// waits up to `timeout` for a first message.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Consumer::recv_timeout).
    pub fn recv_batch_keep_timeout(
        &mut self,
        max: usize,
        timeout: Duration,
        f: impl FnOnce(&[&[u8]]) -> usize,
    ) -> Result<usize, RecvError> {
        let first = self.wait_take(deadline(timeout))?;
        Ok(self.drain_keep(first, max, f))
    }

    fn drain_keep(
        &mut self,
        first: P::Taken,
        max: usize,
        f: impl FnOnce(&[&[u8]]) -> usize,
    ) -> usize {
        let shared = &*self.role.shared;
        let mem = &shared.mem;
        let many = P::can_put_back(mem);
        let mut taken = vec![first];
        if many {
            // Consume as we go (a framed consumer's read position is
            // private until released), so each `try_take` finds the next.
            P::consume(mem, &mut self.st, first);
            while taken.len() < max {
                match P::try_take(mem, &mut self.st) {
                    Ok(Some(next)) if self.role.poisoned().is_ok() => {
                        P::consume(mem, &mut self.st, next);
                        taken.push(next);
                    }
                    _ => break,
                }
            }
        }
        let slices: Vec<&[u8]> = taken
            .iter()
            .map(|t| {
                // SAFETY: `t` came from `try_take` and is not released: a
                // framed consumer has consumed it only locally (nothing is
                // handed back before the `release` below), an mpmc one has
                // not consumed it yet.
                let (p, len) = unsafe { P::taken_payload(mem, t) };
                // SAFETY: the payload lies in the data area, and producers
                // leave it alone until it is released below.
                unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
            })
            .collect();
        let done = f(&slices).min(taken.len());
        drop(slices);
        if many {
            if done < taken.len() {
                P::put_back(mem, &mut self.st, taken[done], (taken.len() - done) as u64);
            }
        } else {
            P::consume(mem, &mut self.st, first);
        }
        if P::release(mem, &mut self.st) {
            self.role.notify();
        }
        if many { done } else { 1 }
    }

    #[inline]
    fn drain(&mut self, first: P::Taken, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let shared = &*self.role.shared;
        let mut taken = first;
        let mut n = 0;
        loop {
            // SAFETY: `taken` came from `try_take` and is not yet consumed.
            let (p, len) = unsafe { P::taken_payload(&shared.mem, &taken) };
            // SAFETY: the payload lies in the data area and belongs to this
            // consumer until `consume`; producers leave it alone until the
            // release below.
            f(unsafe { std::slice::from_raw_parts(p.as_ptr(), len) });
            P::consume(&shared.mem, &mut self.st, taken);
            n += 1;
            if n >= max {
                break;
            }
            match P::try_take(&shared.mem, &mut self.st) {
                Ok(Some(next)) if self.role.poisoned().is_ok() => taken = next,
                _ => break,
            }
        }
        if P::release(&shared.mem, &mut self.st) {
            self.role.notify();
        }
        n
    }

    /// An iterator over the messages waiting now, each copied out
    /// ([`Frame`]) and released; it ends when the ring is empty (or on an
    /// error, which the next `try_recv` reports). For zero-copy access use
    /// [`try_recv`](Consumer::try_recv) or
    /// [`try_recv_batch`](Consumer::try_recv_batch).
    ///
    /// ```
    /// let ring = mmring::mpsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send(b"a")?;
    /// tx.send(b"bc")?;
    /// let got: Vec<Vec<u8>> = rx.try_iter().map(|f| f.to_vec()).collect();
    /// assert_eq!(got, [b"a".to_vec(), b"bc".to_vec()]);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_iter(&mut self) -> TryIter<'_, P> {
        TryIter { consumer: self }
    }

    /// A blocking iterator over messages, each copied out ([`Frame`]) and
    /// released; it ends once every producer is gone and the ring is empty
    /// (or on an error, which the next `recv` reports).
    pub fn iter(&mut self) -> Iter<'_, P> {
        Iter { consumer: self }
    }

    /// Whether no message is waiting right now. Answers from the consumer's
    /// cached view of the producers' cursor when that already shows
    /// messages, so a spin loop on it does not pull the producers' cache
    /// line across cores for every message.
    pub fn is_empty(&self) -> bool {
        P::is_empty(self.mem(), &self.st)
    }

    /// Committed (or claimed, on mpsc and mpmc) and not yet taken by this
    /// consumer: bytes for framed rings, slots for mpmc. A hint: producers
    /// may have added more since.
    pub fn len_hint(&self) -> u64 {
        P::waiting(self.mem(), &self.st)
    }

    /// Largest payload a message may carry.
    pub fn max_frame(&self) -> usize {
        P::max_frame(self.mem()) as usize
    }

    /// Bytes in the data area.
    pub fn capacity(&self) -> u64 {
        self.role.shared.region.geometry().capacity
    }

    /// The ring's kind.
    pub fn kind(&self) -> Kind {
        P::kind(self.mem())
    }

    /// Whether a live producer holds the other role right now.
    pub fn is_producer_attached(&self) -> bool {
        self.producer_state() == PeerState::Alive
    }

    /// The producers' state: attached now, never attached, or attached once
    /// and since gone cleanly ([`PeerState::Gone`], an end of stream) or
    /// died ([`PeerState::Died`], a crash); [`recv`](Consumer::recv) returns
    /// [`RecvError::Disconnected`] in both cases.
    pub fn producer_state(&self) -> PeerState {
        self.role.peer_state()
    }
}

/// A message taken by a [`Consumer`]: derefs to the payload inside the
/// shared mapping, 8-byte aligned. The space is released to the producers
/// when the grant is dropped.
///
/// The bytes are committed and a correct producer leaves them alone until
/// released; a misbehaving process with write access to the mapping could
/// still change them under you, so validate what you parse. mmring itself
/// never derives an address from payload bytes.
#[must_use = "dropping a ReadGrant releases the message immediately"]
pub struct ReadGrant<'a, P: Flavour> {
    consumer: &'a mut Consumer<P>,
    taken: P::Taken,
}

impl<P: Flavour> fmt::Debug for ReadGrant<'_, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGrant")
            .field("taken", &self.taken)
            .finish()
    }
}

impl<P: Flavour> ReadGrant<'_, P> {
    /// Views the payload as a `T` without copying, if its length is exactly
    /// `size_of::<T>()` and `T` needs at most 8-byte alignment (payloads are
    /// 8-byte aligned).
    ///
    /// # Errors
    ///
    /// `bytemuck`'s [`PodCastError`](bytemuck::PodCastError) on a size or
    /// alignment mismatch.
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, bytemuck::PodCastError> {
        bytemuck::try_from_bytes(self)
    }

    /// Releases the message (the same as dropping the grant).
    pub fn release(self) {}

    /// The message's position in the ring's stream: for spsc and mpsc the
    /// byte position of its frame (counted from the ring's creation, over
    /// every lap), for mpmc its slot sequence number. Positions only grow,
    /// so the pair ([`Ring::id`], position) names one message for the life
    /// of the ring, whichever consumer (or process) receives it: a message
    /// left in the ring by a consumer that died is received again with the
    /// same position.
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send(b"a")?;
    /// tx.send(b"b")?;
    /// let first = rx.try_recv()?.position();
    /// assert!(rx.try_recv()?.position() > first);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn position(&self) -> u64 {
        P::position(&self.taken)
    }
}

impl<P: Flavour> std::ops::Deref for ReadGrant<'_, P> {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        // SAFETY: `taken` came from `try_take` and is consumed only on drop.
        let (p, len) = unsafe { P::taken_payload(self.consumer.mem(), &self.taken) };
        // SAFETY: committed bytes inside the data area, which producers
        // leave alone until this grant releases them on drop; the grant
        // borrows its consumer, so the release cannot happen while this
        // borrow lives.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), len) }
    }
}

impl<P: Flavour> Drop for ReadGrant<'_, P> {
    #[inline(always)]
    fn drop(&mut self) {
        let c = &mut *self.consumer;
        let mem = &c.role.shared.mem;
        P::consume(mem, &mut c.st, self.taken);
        if P::release(mem, &mut c.st) {
            c.role.notify();
        }
    }
}

/// A message copied out of a ring, from [`Consumer::try_iter`] or
/// [`Consumer::iter`]: derefs to `[u8]`, and its buffer is 8-byte aligned
/// like a payload in the ring, so [`as_pod`](Frame::as_pod) works on it
/// too.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Frame {
    words: Vec<u64>,
    len: usize,
}

impl Frame {
    /// A copy of `bytes`.
    pub fn copy_of(bytes: &[u8]) -> Frame {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Frame {
            words,
            len: bytes.len(),
        }
    }

    /// Views the bytes as a `T`, as [`ReadGrant::as_pod`].
    ///
    /// # Errors
    ///
    /// `bytemuck`'s [`PodCastError`](bytemuck::PodCastError) on a size or
    /// alignment mismatch.
    pub fn as_pod<T: bytemuck::Pod>(&self) -> Result<&T, bytemuck::PodCastError> {
        bytemuck::try_from_bytes(self)
    }
}

impl std::ops::Deref for Frame {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice::<u64, u8>(&self.words)[..self.len]
    }
}

impl AsRef<[u8]> for Frame {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Frame").field(&&**self).finish()
    }
}

/// The iterator of [`Consumer::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, P: Flavour> {
    consumer: &'a mut Consumer<P>,
}

impl<P: Flavour> Iterator for TryIter<'_, P> {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        self.consumer.try_recv().ok().map(|g| Frame::copy_of(&g))
    }
}

/// The iterator of [`Consumer::iter`].
#[derive(Debug)]
pub struct Iter<'a, P: Flavour> {
    consumer: &'a mut Consumer<P>,
}

impl<P: Flavour> Iterator for Iter<'_, P> {
    type Item = Frame;
    fn next(&mut self) -> Option<Frame> {
        self.consumer.recv().ok().map(|g| Frame::copy_of(&g))
    }
}

/// Waiting in an event loop (epoll, mio, or any reactor) instead of a
/// blocking call: a descriptor that becomes readable when the ring may have
/// changed in the direction this consumer waits for. The protocol and why
/// it loses no wake-up are in `notify.rs` and `docs/FORMAT.md`.
///
/// The loop, for a consumer:
///
/// 1. drain with [`try_recv`](Consumer::try_recv) until `Empty`;
/// 2. [`arm`](Consumer::arm): if it returns `true`, a message arrived
///    meanwhile: go to 1;
/// 3. poll [`notify_fd`](Consumer::notify_fd) (with a timeout of at most a
///    few hundred milliseconds, to notice a producer killed without
///    detaching through [`producer_state`](Consumer::producer_state));
/// 4. [`clear_notify`](Consumer::clear_notify), then go to 1.
///
/// While armed, every publish of a producer costs it a system call or two,
/// so [`disarm`](Consumer::disarm) once the consumer stops waiting (a
/// consumer that stays busy can stay armed: it pays nothing, the producers
/// do). Dropping the consumer disarms it. `examples/waitset.rs` waits on
/// several rings at once this way.
impl<P: Flavour> Consumer<P> {
    /// How this consumer's blocking calls wait for messages (async ones
    /// included): spinning briefly first (the default) or sleeping at once,
    /// which spends no CPU on spinning and makes every wait a kernel round
    /// trip.
    ///
    /// ```
    /// use mmring::WaitStrategy;
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut rx = ring.consumer()?;
    /// rx.set_wait_strategy(WaitStrategy::Sleep);
    /// assert_eq!(rx.wait_strategy(), WaitStrategy::Sleep);
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.role.strategy = strategy;
    }

    /// The current [`WaitStrategy`].
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.role.strategy
    }

    /// The descriptor to poll for readability (`POLLIN` / `EPOLLIN`): a Unix
    /// datagram socket of this consumer's own, bound on the first call and
    /// closed when the consumer drops.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be created or bound.
    pub fn notify_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        use std::os::fd::AsFd;
        Ok(self.role.ensure_notifier()?.as_fd())
    }

    /// Announces that this consumer is about to wait on
    /// [`notify_fd`](Consumer::notify_fd), then looks at the ring once more:
    /// `true` if a message is waiting (do not sleep: receive it), `false`
    /// if the caller may poll the descriptor. Stays armed until
    /// [`disarm`](Consumer::disarm) or drop.
    ///
    /// # Errors
    ///
    /// As [`notify_fd`](Consumer::notify_fd).
    pub fn arm(&mut self) -> Result<bool, Error> {
        let ordered = self.role.arm()?;
        // S4: the re-check. Without a kernel barrier (a seccomp filter), a
        // registered producer may not see our bit: never sleep then.
        Ok(!ordered || !self.is_empty())
    }

    /// Withdraws the announcement of [`arm`](Consumer::arm): producers stop
    /// signalling this consumer.
    pub fn disarm(&mut self) {
        self.role.disarm();
    }

    /// Reads the wake-ups queued on [`notify_fd`](Consumer::notify_fd) so it
    /// polls readable again only on the next one. Returns whether one came
    /// from a process attached to this ring (others are dropped: see
    /// `notify.rs` on spoofing).
    pub fn clear_notify(&mut self) -> bool {
        self.role.clear_notify()
    }
}

/// The same for a producer waiting for room: the descriptor becomes
/// readable when a consumer released space. See the consumer's methods.
impl<P: Flavour> Producer<P> {
    /// How this producer's blocking calls wait for room (async ones
    /// included): spinning briefly first (the default) or sleeping at once.
    pub fn set_wait_strategy(&mut self, strategy: WaitStrategy) {
        self.role.strategy = strategy;
    }

    /// The current [`WaitStrategy`].
    pub fn wait_strategy(&self) -> WaitStrategy {
        self.role.strategy
    }

    /// As [`Consumer::notify_fd`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] if the socket cannot be created or bound.
    pub fn notify_fd(&mut self) -> Result<BorrowedFd<'_>, Error> {
        use std::os::fd::AsFd;
        Ok(self.role.ensure_notifier()?.as_fd())
    }

    /// As [`Consumer::arm`]: `true` if at least an empty message fits now
    /// (try to reserve instead of sleeping; a larger one may still not fit,
    /// then arm again).
    ///
    /// # Errors
    ///
    /// As [`notify_fd`](Producer::notify_fd).
    pub fn arm(&mut self) -> Result<bool, Error> {
        let ordered = self.role.arm()?;
        Ok(!ordered || !self.is_full())
    }

    /// As [`Consumer::disarm`].
    pub fn disarm(&mut self) {
        self.role.disarm();
    }

    /// As [`Consumer::clear_notify`].
    pub fn clear_notify(&mut self) -> bool {
        self.role.clear_notify()
    }
}

/// Async receiving on tokio (feature `tokio`). No thread blocks: a task that
/// finds the ring empty awaits the consumer's wake-up socket through tokio's
/// reactor (see [`notify_fd`](Consumer::notify_fd)). Cancellation-safe:
/// dropping the future loses no message and leaves no registration behind.
#[cfg(feature = "tokio")]
impl<P: Flavour> Consumer<P> {
    /// As [`recv`](Consumer::recv), awaiting instead of blocking. Must run
    /// inside a tokio runtime with IO and time enabled.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv); a dead producer is noticed within the
    /// same bound (about 200 ms).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// tx.send_async(b"hello").await?;
    /// assert_eq!(&*rx.recv_async().await?, b"hello");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv_async(&mut self) -> Result<ReadGrant<'_, P>, RecvError> {
        let taken = self.wait_take_async(None).await?;
        Ok(self.grant(taken))
    }

    /// As [`recv_async`](Consumer::recv_async), giving up with
    /// [`RecvError::Timeout`] after `timeout`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Consumer::recv_timeout).
    pub async fn recv_timeout_async(
        &mut self,
        timeout: Duration,
    ) -> Result<ReadGrant<'_, P>, RecvError> {
        let taken = self.wait_take_async(deadline(timeout)).await?;
        Ok(self.grant(taken))
    }

    async fn wait_take_async(&mut self, deadline: Option<Instant>) -> Result<P::Taken, RecvError> {
        self.check_inherited()?;
        if let Some(taken) = take(&self.role, &mut self.st)? {
            return Ok(taken);
        }
        // Without a socket (it could not be bound), the wait polls.
        let _ = self.role.ensure_notifier();
        let role = &self.role;
        let st = &mut self.st;
        let notifier = role.notifier.as_ref();
        let r = crate::event::block_async(
            role.strategy,
            role.shared.data_point(),
            role.bit(),
            notifier,
            |pid| role.trusted(pid),
            deadline,
            || take(role, st),
            || role.slow_check(),
            || role.peer_state().is_gone(),
        )
        .await;
        ended(role, st, r)
    }
}

/// Async sending on tokio (feature `tokio`): as the consumer's async side.
#[cfg(feature = "tokio")]
impl<P: Flavour> Producer<P> {
    /// As [`reserve`](Producer::reserve), awaiting room instead of
    /// blocking. Cancellation-safe: a dropped future reserved nothing.
    ///
    /// # Errors
    ///
    /// As [`reserve`](Producer::reserve).
    pub async fn reserve_async(&mut self, len: usize) -> Result<WriteGrant<'_, P>, SendError> {
        let claim = match self.try_claim(len)? {
            Some(claim) => claim,
            None => {
                // Without a socket (it could not be bound), the wait polls.
                let _ = self.role.ensure_notifier();
                let len64 = len as u64;
                let role = &self.role;
                let (mem, st) = (&role.shared.mem, &mut self.st);
                // As in `reserve_until`: what a batch holds becomes visible
                // before we wait for room.
                if P::flush(mem, st) {
                    role.notify();
                }
                let notifier = role.notifier.as_ref();
                let claim = crate::event::block_async(
                    role.strategy,
                    role.shared.space_point(),
                    role.bit(),
                    notifier,
                    |pid| role.trusted(pid),
                    None,
                    || P::try_claim(mem, st, len64).map_err(|c| role.explain(c)),
                    || role.slow_check(),
                    || role.peer_state().is_gone(),
                )
                .await?;
                role.poisoned()?;
                claim
            }
        };
        Ok(self.grant(claim, len, false))
    }

    /// As [`send`](Producer::send), awaiting room instead of blocking.
    ///
    /// # Errors
    ///
    /// As [`send`](Producer::send).
    pub async fn send_async(&mut self, msg: &[u8]) -> Result<(), SendError> {
        self.reserve_async(msg.len()).await?.fill(msg);
        Ok(())
    }
}
