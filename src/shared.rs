//! What every handle of a ring shares, whatever its flavour: the mapped
//! region and the flavour's view of it, the two wait points, attaching and
//! detaching roles, peer liveness, and the `stat` snapshot.

use std::sync::atomic::Ordering::Relaxed;

use crate::error::Error;
use crate::layout::{self, Kind, Role};
use crate::protocol::Flavour;
use crate::region::Region;
use crate::roles::{self, Attachment};
use crate::wait::WaitPoint;

/// A mapped ring and its flavour's raw view of it, shared through an `Arc`
/// by the `Ring` value and every handle made from it.
#[derive(Debug)]
pub(crate) struct Shared<P: Flavour> {
    pub region: Region,
    pub mem: P::Mem,
}

impl<P: Flavour> Shared<P> {
    /// The flavour's view of `region`, after checking its cursors.
    pub fn new(region: Region) -> Result<Shared<P>, Error> {
        let mem = P::mem(&region)?;
        Ok(Shared { region, mem })
    }

    /// Where consumers sleep while there is nothing to read.
    pub fn data_point(&self) -> WaitPoint<'_> {
        let p = self.region.producer_block();
        WaitPoint::new(&p.data_futex, &p.data_waiters)
    }

    /// Where producers sleep while there is no room.
    pub fn space_point(&self) -> WaitPoint<'_> {
        let c = self.region.consumer_block();
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

    /// Claims `role` (alone or as one of many, as the flavour says),
    /// records our pid for diagnostics, and wakes the other side's sleepers
    /// (a consumer may be waiting for its first producer).
    pub fn attach(&self, role: Role) -> Result<Attachment, Error> {
        let fd = self.region.fd();
        let att = if P::exclusive(&self.mem, role) {
            Attachment::exclusive(fd, role)?
        } else {
            Attachment::shared(fd, role)?
        };
        let record = self.region.role_record(role);
        let Some(att) = att else {
            // ORDERING: Relaxed; diagnostics only.
            let pid = record.pid.load(Relaxed);
            return Err(Error::RoleTaken {
                role,
                pid: (pid != 0).then_some(pid),
            });
        };
        // ORDERING: Relaxed throughout; pids and counts are diagnostics and
        // liveness hints, never synchronisation (that is the locks' job).
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
        // ORDERING: Relaxed; diagnostics only.
        match att.record() {
            None => self.region.role_record(role).pid.store(0, Relaxed),
            Some(i) => self.region.attach_record(i).pid.store(0, Relaxed),
        }
        drop(att);
        self.peer_point(role).wake_all();
    }

    /// The state of `peer`, asked through our attachment.
    pub fn peer_state(&self, att: &Attachment, peer: Role) -> PeerState {
        if att.is_held(peer) {
            PeerState::Alive
        } else {
            self.unheld_state(peer)
        }
    }

    /// `Gone` if `peer` was ever claimed, else `NeverAttached`.
    fn unheld_state(&self, peer: Role) -> PeerState {
        // ORDERING: Relaxed; the count only grows, and a stale zero means a
        // peer that attached a moment ago, which the next check sees.
        if self.region.role_record(peer).attaches.load(Relaxed) == 0 {
            PeerState::NeverAttached
        } else {
            PeerState::Gone
        }
    }

    /// A snapshot for monitoring.
    pub fn stat(&self) -> Stat {
        let (head, tail) = P::cursors(&self.mem);
        let geo = self.region.geometry();
        let fd = self.region.fd();
        let held = |off: u64| roles::is_held(fd, off).unwrap_or(false);
        // ORDERING: Relaxed throughout: diagnostics.
        let role = |role: Role| {
            let r = self.region.role_record(role);
            let mut holders = Vec::new();
            let pid = r.pid.load(Relaxed);
            if pid != 0 {
                holders.push(Holder {
                    pid,
                    alive: held(role.lock_offset()),
                });
            }
            for i in 0..layout::ATTACH_SLOTS {
                let rec = self.region.attach_record(i);
                let pid = rec.pid.load(Relaxed);
                if pid != 0 && rec.role.load(Relaxed) == role.code() {
                    holders.push(Holder {
                        pid,
                        alive: held(layout::attach_record_offset(i)),
                    });
                }
            }
            let alive = held(role.lock_offset());
            RoleStat {
                alive,
                state: if alive {
                    PeerState::Alive
                } else {
                    self.unheld_state(role)
                },
                attaches: r.attaches.load(Relaxed),
                holders,
            }
        };
        let (c, p) = (self.region.consumer_block(), self.region.producer_block());
        Stat {
            kind: geo.kind,
            capacity: geo.capacity,
            max_frame: geo.max_frame,
            slot_count: geo.slot_count,
            head,
            tail,
            producer: role(Role::Producer),
            consumer: role(Role::Consumer),
            consumers_waiting: p.data_waiters.load(Relaxed),
            producers_waiting: c.space_waiters.load(Relaxed),
        }
    }
}

/// Whether the other side of a ring is there: from the kernel's lock table
/// (a process killed with `kill -9` loses its locks at once), not from pids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerState {
    /// Never claimed since the ring was created: it may simply not have
    /// started yet, so waiting for it is not a disconnection.
    NeverAttached,
    /// Held by at least one live process now.
    Alive,
    /// Claimed before, and no live process holds it now (it detached or
    /// died).
    Gone,
}

/// A snapshot of a ring, from [`Ring::stat`](crate::Ring::stat).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct RoleStat {
    /// Whether at least one live process holds the role (from the kernel's
    /// lock table, not from pids).
    pub alive: bool,
    /// The role as one of three states: held now, held once and gone, or
    /// never claimed.
    pub state: PeerState,
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
#[non_exhaustive]
pub struct Holder {
    /// Its pid when it attached.
    pub pid: u32,
    /// Whether it still holds the role.
    pub alive: bool,
}
