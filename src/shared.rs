//! What every flavour's handles share, whatever their protocol: the mapped
//! region, the two wait points, attaching and detaching roles, peer
//! liveness, and the `stat` snapshot.
//!
//! A flavour (spsc, mpsc, mpmc) adds only its cursor protocol on top, as
//! `Shared<R>` with `R` its raw accessor of the data area.

use std::sync::atomic::Ordering::Relaxed;

use crate::error::Error;
use crate::layout::{Header, Kind, Role};
use crate::region::Region;
use crate::roles::{self, Attachment};
use crate::wait::WaitPoint;

/// A mapped ring and its flavour's raw accessor, shared through an `Arc` by
/// the `Ring` value and every handle made from it.
#[derive(Debug)]
pub(crate) struct Shared<R> {
    pub region: Region,
    pub raw: R,
}

impl<R> Shared<R> {
    pub fn header(&self) -> &Header {
        self.region.header_ref()
    }

    /// Where consumers sleep while there is nothing to read.
    pub fn data_point(&self) -> WaitPoint<'_> {
        let p = &self.header().producer;
        WaitPoint::new(&p.data_futex, &p.data_waiters)
    }

    /// Where producers sleep while there is no room.
    pub fn space_point(&self) -> WaitPoint<'_> {
        let c = &self.header().consumer;
        WaitPoint::new(&c.space_futex, &c.space_waiters)
    }

    /// The wait point the *other* side of `role` sleeps on: the one to wake
    /// when `role` attaches or detaches.
    fn peer_point(&self, role: Role) -> WaitPoint<'_> {
        match role {
            Role::Producer => self.data_point(),
            Role::Consumer => self.space_point(),
        }
    }

    /// Claims `role`, alone (`exclusive`) or as one of many, records our pid
    /// for diagnostics, and wakes the other side's sleepers (a consumer may
    /// be waiting for its first producer).
    pub fn attach(&self, role: Role, exclusive: bool) -> Result<Attachment, Error> {
        let fd = self.region.fd();
        let att = if exclusive {
            Attachment::exclusive(fd, role)?
        } else {
            Attachment::shared(fd, role)?
        };
        let record = &self.header().roles.roles[role.index()];
        let Some(att) = att else {
            let pid = record.pid.load(Relaxed);
            return Err(Error::RoleTaken {
                role,
                pid: (pid != 0).then_some(pid),
            });
        };
        match att.record() {
            None => record.pid.store(std::process::id(), Relaxed),
            Some(i) => {
                let r = self.region.attach_record(i);
                r.role.store(role.code(), Relaxed);
                r.pid.store(std::process::id(), Relaxed);
            }
        }
        record.attaches.fetch_add(1, Relaxed);
        self.peer_point(role).wake_all();
        Ok(att)
    }

    /// Clears our pid, releases the lock(s), then wakes the other side's
    /// sleepers so they re-check liveness at once.
    pub fn detach(&self, role: Role, att: Attachment) {
        match att.record() {
            None => self.header().roles.roles[role.index()]
                .pid
                .store(0, Relaxed),
            Some(i) => self.region.attach_record(i).pid.store(0, Relaxed),
        }
        drop(att);
        self.peer_point(role).wake_all();
    }

    /// True when `peer` has attached at least once and no live process
    /// holds it now. A ring whose peer never attached is not disconnected:
    /// the first peer may simply not have started yet.
    pub fn peer_gone(&self, att: &Attachment, peer: Role) -> bool {
        let record = &self.header().roles.roles[peer.index()];
        record.attaches.load(Relaxed) != 0 && !att.is_held(peer)
    }

    /// A snapshot for monitoring; `head` and `tail` in the flavour's units.
    pub fn stat(&self, head: u64, tail: u64) -> Stat {
        let geo = self.region.geometry();
        let h = self.header();
        let fd = self.region.fd();
        let role = |role: Role| {
            let r = &h.roles.roles[role.index()];
            let mut holders = Vec::new();
            let pid = r.pid.load(Relaxed);
            if pid != 0 {
                holders.push(Holder {
                    pid,
                    alive: roles::is_held(fd, role.lock_offset()).unwrap_or(false),
                });
            }
            for i in 0..crate::layout::ATTACH_SLOTS {
                let rec = self.region.attach_record(i);
                let pid = rec.pid.load(Relaxed);
                if pid != 0 && rec.role.load(Relaxed) == role.code() {
                    let off = crate::layout::ATTACH_TABLE + i * crate::layout::ATTACH_RECORD;
                    holders.push(Holder {
                        pid,
                        alive: roles::is_held(fd, off).unwrap_or(false),
                    });
                }
            }
            RoleStat {
                alive: roles::is_held(fd, role.lock_offset()).unwrap_or(false),
                attaches: r.attaches.load(Relaxed),
                holders,
            }
        };
        Stat {
            kind: geo.kind,
            capacity: geo.capacity,
            max_frame: geo.max_frame,
            slot_count: geo.slot_count,
            head,
            tail,
            producer: role(Role::Producer),
            consumer: role(Role::Consumer),
            consumers_waiting: h.producer.data_waiters.load(Relaxed),
            producers_waiting: h.consumer.space_waiters.load(Relaxed),
        }
    }
}

/// A snapshot of a ring, from `Ring::stat`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    /// The ring's kind.
    pub kind: Kind,
    /// Bytes in the data area.
    pub capacity: u64,
    /// Largest payload.
    pub max_frame: u64,
    /// Slots of a slot ring (mpmc); 0 for framed rings.
    pub slot_count: u64,
    /// Released by consumers since creation: bytes for framed rings, slots
    /// for slot rings.
    pub head: u64,
    /// Committed (framed) or claimed (mpsc, mpmc) by producers since
    /// creation, in the same units.
    pub tail: u64,
    /// The producer role(s).
    pub producer: RoleStat,
    /// The consumer role(s).
    pub consumer: RoleStat,
    /// Consumers asleep waiting for data.
    pub consumers_waiting: u32,
    /// Producers asleep waiting for space.
    pub producers_waiting: u32,
}

/// One role in a [`Stat`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleStat {
    /// Whether at least one live process holds the role (from the kernel's
    /// lock table, not from pids).
    pub alive: bool,
    /// How many times the role has been claimed since creation.
    pub attaches: u32,
    /// Recorded holders. A holder that detached cleanly is removed; one
    /// that was killed stays listed, with `alive: false`.
    pub holders: Vec<Holder>,
}

impl RoleStat {
    /// The pid of the first recorded holder.
    pub fn pid(&self) -> Option<u32> {
        self.holders.first().map(|h| h.pid)
    }
}

/// A recorded holder of a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holder {
    /// Its pid when it attached.
    pub pid: u32,
    /// Whether it still holds the role.
    pub alive: bool,
}

/// The constructors and accessors every flavour's `Ring` has, over
/// `Shared<R>`. The flavour supplies `fn wrap(Region) -> Result<Ring, Error>`.
macro_rules! ring_common {
    ($kind:expr, $m:literal, $cfg:literal) => {
        #[doc = concat!("Creates a new ", $m, " ring file at `path` (mode `0o600` unless")]
        /// [`Config::mode`](crate::Config::mode) says otherwise). Use a path
        /// under `/dev/shm` for a ring that lives in RAM only. The file
        /// appears under its name fully initialised or not at all.
        ///
        /// # Errors
        ///
        /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the
        /// file exists (`AlreadyExists`) or cannot be created, sized or have
        /// its pages reserved (a full `/dev/shm` fails here, not later).
        ///
        /// ```no_run
        #[doc = concat!("let ring = mmring::", $m, "::Ring::create(\"/dev/shm/feed\", mmring::", $cfg, ")?;")]
        /// # Ok::<(), mmring::Error>(())
        /// ```
        pub fn create(
            path: impl AsRef<std::path::Path>,
            cfg: crate::Config,
        ) -> Result<Ring, crate::Error> {
            Ring::wrap(crate::region::Region::create(path.as_ref(), &cfg, $kind)?)
        }

        #[doc = concat!("Opens an existing ", $m, " ring file.")]
        ///
        /// # Errors
        ///
        /// [`Error::Io`] if it cannot be opened; [`Error::NotRegularFile`],
        /// [`Error::Truncated`], [`Error::BadMagic`],
        /// [`Error::UnsupportedVersion`], [`Error::ForeignPlatform`],
        /// [`Error::Uninitialized`], [`Error::WrongKind`],
        /// [`Error::BadGeometry`] or [`Error::Corrupt`] if it is not a valid
        #[doc = concat!($m, " ring.")]
        ///
        /// ```no_run
        #[doc = concat!("let ring = mmring::", $m, "::Ring::open(\"/dev/shm/feed\")?;")]
        /// # Ok::<(), mmring::Error>(())
        /// ```
        pub fn open(path: impl AsRef<std::path::Path>) -> Result<Ring, crate::Error> {
            Ring::wrap(crate::region::Region::open(path.as_ref(), $kind)?)
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
        #[doc = concat!("let ring = mmring::", $m, "::Ring::open_or_create(\"/dev/shm/feed\", mmring::", $cfg, ")?;")]
        /// # Ok::<(), mmring::Error>(())
        /// ```
        pub fn open_or_create(
            path: impl AsRef<std::path::Path>,
            cfg: crate::Config,
        ) -> Result<Ring, crate::Error> {
            Ring::wrap(crate::region::Region::open_or_create(
                path.as_ref(),
                &cfg,
                $kind,
            )?)
        }

        /// Creates a ring in anonymous shared memory (a memfd sealed against
        /// resizing). It is shared with children across `fork` (claim roles
        /// after forking), and its fd ([`as_fd`](Ring::as_fd)) can be passed
        /// to another process, which attaches with
        /// [`from_fd`](Ring::from_fd).
        ///
        /// # Errors
        ///
        /// [`Error::InvalidConfig`] for a bad `cfg`; [`Error::Io`] if the
        /// memfd cannot be created or sized.
        ///
        /// ```
        #[doc = concat!("let ring = mmring::", $m, "::Ring::anonymous(mmring::", $cfg, ")?;")]
        /// assert!(ring.path().is_none());
        /// # Ok::<(), mmring::Error>(())
        /// ```
        pub fn anonymous(cfg: crate::Config) -> Result<Ring, crate::Error> {
            Ring::wrap(crate::region::Region::anonymous(&cfg, $kind)?)
        }

        /// Attaches to a ring through a file descriptor (a named ring's file
        /// or an anonymous ring's memfd), e.g. one received over a Unix
        /// socket or inherited across `exec`.
        ///
        /// # Errors
        ///
        /// As `open`.
        ///
        /// ```
        #[doc = concat!("let a = mmring::", $m, "::Ring::anonymous(mmring::", $cfg, ")?;")]
        /// let fd = a.as_fd().try_clone_to_owned().unwrap();
        #[doc = concat!("let b = mmring::", $m, "::Ring::from_fd(fd)?;")]
        /// assert_eq!(a.capacity(), b.capacity());
        /// # Ok::<(), mmring::Error>(())
        /// ```
        pub fn from_fd(fd: std::os::fd::OwnedFd) -> Result<Ring, crate::Error> {
            Ring::wrap(crate::region::Region::from_fd(fd, $kind)?)
        }

        /// Bytes in the data area.
        pub fn capacity(&self) -> u64 {
            self.shared.region.geometry().capacity
        }

        /// Largest payload a frame may carry.
        pub fn max_frame(&self) -> usize {
            self.shared.region.geometry().max_frame as usize
        }

        /// The ring's file descriptor (the file, or the memfd of an
        /// anonymous ring), e.g. to pass to another process.
        pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
            self.shared.region.fd()
        }

        /// The path of a named ring.
        pub fn path(&self) -> Option<&std::path::Path> {
            self.shared.region.path()
        }

        /// Writes the mapping back to its file (`msync`), for durability of
        /// a file-backed ring against power loss. Frames are visible to
        /// other processes without it.
        ///
        /// # Errors
        ///
        /// [`Error::Io`] if `msync` fails.
        pub fn flush(&self) -> Result<(), crate::Error> {
            self.shared.region.flush()
        }

        /// A snapshot of the ring's cursors, attachments (with whether each
        /// holder is alive) and sleepers, for monitoring.
        pub fn stat(&self) -> crate::Stat {
            use std::sync::atomic::Ordering::SeqCst;
            let h = self.shared.header();
            self.shared
                .stat(h.consumer.head.load(SeqCst), h.producer.tail.load(SeqCst))
        }
    };
}

pub(crate) use ring_common;
