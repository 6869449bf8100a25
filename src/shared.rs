//! What every handle of a ring shares, whatever its flavour: the mapped
//! region and the flavour's view of it, the two wait points, attaching and
//! detaching roles, peer liveness, and the `stat` snapshot.

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::Relaxed;

use crate::error::Error;
use crate::layout::{self, Kind, Role};
use crate::protocol::sealed::Protocol;
use crate::region::Region;
use crate::roles::{self, Attachment};
use crate::wait::{SleeperSet, WaitPoint};

/// What [`Shared`] needs from a ring flavour: its raw view of the mapping
/// and the few facts about roles and claims that attaching, liveness and
/// `stat` depend on. Every queue flavour has it through its `Protocol`;
/// the broadcast flavour, whose subscribers are not queue consumers,
/// implements it directly.
pub(crate) trait Base: Sized + Send + Sync + 'static {
    /// Raw access to the ring's cursors and data area.
    type Mem: Send + Sync + std::fmt::Debug;
    /// The flavour's view of `region`, after checking its cursors.
    fn mem(region: &Region) -> Result<Self::Mem, Error>;
    /// Whether `role` is held by one handle at a time.
    fn exclusive(mem: &Self::Mem, role: Role) -> bool;
    /// Whether dead record `i` may be reused (see `Protocol::reusable`).
    fn reusable(mem: &Self::Mem, i: u64) -> bool;
    /// Whether record `i`'s claim is settled (see `Protocol::claim_settled`).
    fn claim_settled(mem: &Self::Mem, i: u64) -> bool;
    /// `(head, tail)` in the flavour's units, for monitoring.
    fn cursors(mem: &Self::Mem) -> (u64, u64);
}

impl<P: Protocol> Base for P {
    type Mem = <P as Protocol>::Mem;
    fn mem(region: &Region) -> Result<Self::Mem, Error> {
        <P as Protocol>::mem(region)
    }
    fn exclusive(mem: &Self::Mem, role: Role) -> bool {
        <P as Protocol>::exclusive(mem, role)
    }
    fn reusable(mem: &Self::Mem, i: u64) -> bool {
        <P as Protocol>::reusable(mem, i)
    }
    fn claim_settled(mem: &Self::Mem, i: u64) -> bool {
        <P as Protocol>::claim_settled(mem, i)
    }
    fn cursors(mem: &Self::Mem) -> (u64, u64) {
        <P as Protocol>::cursors(mem)
    }
}

/// A mapped ring and its flavour's raw view of it, shared through an `Arc`
/// by the `Ring` value and every handle made from it.
#[derive(Debug)]
pub(crate) struct Shared<P: Base> {
    pub region: Region,
    pub mem: P::Mem,
}

impl<P: Base> Shared<P> {
    /// The flavour's view of `region`, after checking its cursors.
    pub fn new(region: Region) -> Result<Shared<P>, Error> {
        let mem = P::mem(&region)?;
        Ok(Shared { region, mem })
    }

    /// Where consumers sleep while there is nothing to read.
    pub fn data_point(&self) -> WaitPoint<'_> {
        let p = self.region.producer_block();
        WaitPoint::new(&p.data_futex, &p.data_sleepers)
    }

    /// Where producers sleep while there is no room.
    pub fn space_point(&self) -> WaitPoint<'_> {
        let c = self.region.consumer_block();
        WaitPoint::new(&c.space_futex, &c.space_sleepers)
    }

    /// The wait point the *other* side of `role` sleeps on: the one to wake
    /// when `role` attaches or detaches, or publishes.
    pub fn peer_point(&self, role: Role) -> WaitPoint<'_> {
        match role {
            Role::Producer => self.data_point(),
            Role::Consumer => self.space_point(),
        }
    }

    /// Wakes the other side of `role` if anyone sleeps there. `futile`
    /// counts wake-ups that found nobody asleep, and publications that
    /// needed none while sleeper bits stayed set; every 64th, the sleeper
    /// set is reconciled with the lock table, so a sleeper that died with
    /// its bit set costs a bounded number of syscalls, not one per publish.
    #[inline]
    pub fn notify(&self, role: Role, futile: &AtomicU32) {
        let point = self.peer_point(role);
        if let Some(members) = point.sleeping() {
            self.wake_members(point, members, futile);
        }
    }

    /// Wakes the sleepers `members` of `point`: the futex sleepers, and
    /// every waiter on a descriptor (its record names a wake-up socket).
    #[cold]
    #[inline(never)]
    fn wake_members(&self, point: WaitPoint<'_>, members: u128, futile: &AtomicU32) {
        // The futex sleepers only if one armed the word since the last
        // bump (`wait.rs`, "The armed word"); the descriptor waiters always.
        let woke = point.wake_armed();
        let ring_id = self.region.geometry().ring_id;
        let signalled = crate::wait::signal_members(
            members,
            |bit| &self.region.attach_record(bit).notify,
            |bit, nonce| crate::notify::wake(ring_id, bit, nonce),
        );
        // Nobody woken, or no wake-up needed while bits stay set: a
        // sleeper that died with its bit set, or one woken by an earlier
        // bump that has yet to run. Ask the lock table every 64 times.
        // ORDERING: Relaxed; a private statistic of this handle.
        if woke.unwrap_or(0) == 0 && !signalled && futile.fetch_add(1, Relaxed) % 64 == 63 {
            self.reconcile(point);
        }
    }

    /// Clears the bits of sleepers whose record's holder is dead.
    fn reconcile(&self, point: WaitPoint<'_>) {
        let mut dead = self.dead_sleepers(point);
        while dead != 0 {
            point.sleepers().remove(dead.trailing_zeros());
            dead &= dead - 1;
        }
    }

    /// The sleeper bits of `point` whose attachment record no live handle
    /// holds (the lock table's word; a failed look counts as held): killed
    /// while asleep.
    fn dead_sleepers(&self, point: WaitPoint<'_>) -> u128 {
        let members = point.sleepers().members();
        let dead = |bit: u32| {
            members & (1 << bit) != 0
                && !roles::is_held(self.region.fd(), layout::attach_record_offset(bit.into()))
                    .unwrap_or(true)
        };
        (0..layout::ATTACH_SLOTS as u32)
            .filter(|&bit| dead(bit))
            .fold(0, |set, bit| set | 1 << bit)
    }

    /// Claims `role` (alone or as one of many, as the flavour says) and an
    /// attachment record, records our pid and role there for diagnostics,
    /// clears what a dead previous holder of the record left (its sleeper
    /// bits), and wakes the other side's sleepers (a consumer may be
    /// waiting for its first producer).
    pub fn attach(&self, role: Role) -> Result<Attachment, Error> {
        // Before this handle can notify anyone: its wakers may then skip
        // the fence (`barrier.rs`).
        crate::barrier::register();
        let fd = self.region.fd();
        let exclusive = P::exclusive(&self.mem, role);
        let record = self.region.role_record(role);
        let mut tries = 0;
        let att = loop {
            // Records never used or left cleanly first: a dead holder's
            // record keeps the evidence of its death (its pid) for
            // `PeerState::Died` until no other record is free.
            let clean = |i: u64| {
                // ORDERING: Relaxed; a preference, re-checked by the lock.
                self.region.attach_record(i).pid.load(Relaxed) == 0 && P::reusable(&self.mem, i)
            };
            let taken = match Attachment::take(fd, role, exclusive, clean) {
                Err(Error::TooManyAttachments { .. }) => {
                    Attachment::take(fd, role, exclusive, |i| P::reusable(&self.mem, i))
                }
                other => other,
            };
            if let Some(att) = taken? {
                break att;
            }
            // ORDERING: Relaxed; diagnostics only.
            let pid = record.pid.load(Relaxed);
            // A lock held with no pid recorded is a role being claimed this
            // instant, or one just released while a child process (spawned
            // by another thread, between its clone and its exec) still holds
            // a copy of the descriptor: both pass within moments, so look
            // again for a little while before calling the role taken.
            tries += 1;
            if pid != 0 || tries > 50 {
                return Err(Error::RoleTaken {
                    role,
                    pid: (pid != 0).then_some(pid),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let i = att.record();
        let bit = u32::try_from(i).expect("records are numbered below 128");
        // The record is ours: a previous holder is dead, and its sleeper
        // bits are stale; so are the bits of any other dead sleeper.
        self.data_point().sleepers().remove(bit);
        self.space_point().sleepers().remove(bit);
        // ORDERING: Relaxed; only the bit (cleared above) makes a waker
        // read it.
        self.region.attach_record(i).notify.store(0, Relaxed);
        self.reconcile(self.data_point());
        self.reconcile(self.space_point());
        // ORDERING: Relaxed throughout; pids, roles and counts are
        // diagnostics and liveness hints, never synchronisation (that is
        // the locks' job). The role is read by recovery scans only through
        // a claim, which this handle makes after this store (and publishes
        // with its claim CAS).
        let r = self.region.attach_record(i);
        r.role.store(role.code(), Relaxed);
        r.pid.store(std::process::id(), Relaxed);
        if exclusive {
            record.pid.store(std::process::id(), Relaxed);
            // The role is ours alone now: a record still naming an earlier
            // holder of it is a dead one's, whose death the role record
            // told until this moment.
            for j in (0..layout::ATTACH_SLOTS).filter(|&j| j != i) {
                let r = self.region.attach_record(j);
                if r.pid.load(Relaxed) != 0
                    && r.role.load(Relaxed) == role.code()
                    && !roles::is_held(fd, layout::attach_record_offset(j)).unwrap_or(true)
                {
                    r.pid.store(0, Relaxed);
                }
            }
        }
        record.attaches.fetch_add(1, Relaxed);
        self.peer_point(role).wake_all();
        Ok(att)
    }

    /// Clears our pid, releases the lock(s), then wakes the other side's
    /// sleepers so they re-check liveness at once.
    pub fn detach(&self, role: Role, att: Attachment) {
        let r = self.region.attach_record(att.record());
        // ORDERING: Relaxed; our bits are clear (nobody reads the nonce
        // through them), and the pid is diagnostics only (a clean detach is
        // told from a death by the cleared pid).
        r.notify.store(0, Relaxed);
        r.pid.store(0, Relaxed);
        if P::exclusive(&self.mem, role) {
            self.region.role_record(role).pid.store(0, Relaxed);
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

    /// For a role no live handle holds: `NeverAttached`, `Died` if a holder
    /// died without detaching (its record keeps its pid), else `Gone`.
    fn unheld_state(&self, peer: Role) -> PeerState {
        // ORDERING: Relaxed; the count only grows, and a stale zero means a
        // peer that attached a moment ago, which the next check sees.
        if self.region.role_record(peer).attaches.load(Relaxed) == 0 {
            return PeerState::NeverAttached;
        }
        // An exclusive role's last holder is the one in the role record: its
        // pid stays there only if it did not detach.
        if P::exclusive(&self.mem, peer) {
            // ORDERING: Relaxed; diagnostics.
            return if self.region.role_record(peer).pid.load(Relaxed) != 0 {
                PeerState::Died
            } else {
                PeerState::Gone
            };
        }
        // A shared role: a holder that died keeps its pid in its record
        // (until the record is reused, last of all).

        let fd = self.region.fd();
        for i in 0..layout::ATTACH_SLOTS {
            let r = self.region.attach_record(i);
            // ORDERING: Relaxed; diagnostics.
            if r.pid.load(Relaxed) != 0
                && r.role.load(Relaxed) == peer.code()
                && !roles::is_held(fd, layout::attach_record_offset(i)).unwrap_or(true)
            {
                return PeerState::Died;
            }
        }
        PeerState::Gone
    }

    /// A snapshot for monitoring.
    pub fn stat(&self) -> Stat {
        let (head, tail) = P::cursors(&self.mem);
        let geo = self.region.geometry();
        let fd = self.region.fd();
        let held = |off: u64| roles::is_held(fd, off).unwrap_or(false);
        let mut claims = Vec::new();
        // ORDERING: Relaxed throughout: diagnostics.
        for i in 0..layout::ATTACH_SLOTS {
            let rec = self.region.attach_record(i);
            let c = rec.claim.load(Relaxed);
            if c != 0 && !P::claim_settled(&self.mem, i) {
                claims.push(ClaimStat {
                    pid: rec.pid.load(Relaxed),
                    role: if rec.role.load(Relaxed) == Role::Consumer.code() {
                        Role::Consumer
                    } else {
                        Role::Producer
                    },
                    pos: c - 1,
                    alive: held(layout::attach_record_offset(i)),
                });
            }
        }
        // An spsc publication whose `tail` is stored and whose first frame
        // word is not (in flight, or left so by a dead producer).
        if geo.kind == Kind::Spsc
            && let Ok(raw) = crate::ring::RawRing::of(&self.region)
            && let Some(pos) = crate::flavour::spsc::unpublished(&raw, head, tail)
        {
            claims.push(ClaimStat {
                pid: self.region.role_record(Role::Producer).pid.load(Relaxed),
                role: Role::Producer,
                pos,
                alive: held(Role::Producer.lock_offset()),
            });
        }
        let role = |role: Role| {
            let r = self.region.role_record(role);
            let mut holders = Vec::new();
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
        let sleeping = |p: WaitPoint<'_>| p.sleepers().members().count_ones();
        // Killed while asleep, not yet cleared by a waker's reconciliation.
        let stale = |p: WaitPoint<'_>| self.dead_sleepers(p).count_ones();
        Stat {
            kind: geo.kind,
            capacity: geo.capacity,
            max_frame: geo.max_frame,
            slot_count: geo.slot_count,
            head,
            tail,
            producer: role(Role::Producer),
            consumer: role(Role::Consumer),
            consumers_waiting: sleeping(self.data_point()),
            producers_waiting: sleeping(self.space_point()),
            stale_sleepers: stale(self.data_point()) + stale(self.space_point()),
            claims,
            recoveries: self.region.role_block().recoveries.load(Relaxed),
            released_frames: match geo.kind {
                // A slot holds one message: `head` counts them.
                Kind::Mpmc => head,
                _ => self.region.consumer_block().released_frames.load(Relaxed),
            },
        }
    }
}

/// Whether the other side of a ring is there: from the kernel's lock table
/// (a process killed with `kill -9` loses its locks at once), not from pids.
///
/// One transient: while another thread of the same process is spawning a
/// child, the child holds copies of the process's descriptors until it
/// execs (they are close-on-exec), so for that moment a holder that just
/// left may still read as `Alive`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerState {
    /// Never claimed since the ring was created: it may simply not have
    /// started yet, so waiting for it is not a disconnection.
    NeverAttached,
    /// Held by at least one live process now.
    Alive,
    /// Claimed before, and every holder detached cleanly (an end of
    /// stream).
    Gone,
    /// Claimed before, no live process holds it now, and a holder died
    /// without detaching (killed, or exited without dropping its handle):
    /// a crash, not an end of stream.
    Died,
}

impl PeerState {
    /// Whether the role was held and no longer is: [`Gone`](PeerState::Gone)
    /// or [`Died`](PeerState::Died). Blocking calls return `Disconnected`
    /// in both cases, once nothing is left to take or no room will come.
    pub fn is_gone(self) -> bool {
        matches!(self, PeerState::Gone | PeerState::Died)
    }
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
    /// Consumers asleep waiting for data: the bits set in the sleeper
    /// bitmap, so also any killed while asleep whose bit no waker has
    /// cleared yet (counted again in `stale_sleepers`).
    pub consumers_waiting: u32,
    /// Producers asleep waiting for space, counted as `consumers_waiting`.
    pub producers_waiting: u32,
    /// Of `consumers_waiting` and `producers_waiting`, the sleepers whose
    /// attachment record no live handle holds (the lock table's word): killed
    /// while asleep. A waker clears their bits once its wake-ups find nobody
    /// (every 64 such), or a handle attaching on their record does.
    pub stale_sleepers: u32,
    /// Claims in flight (space or slots claimed and not yet published or
    /// released; for spsc, a publication whose `tail` is stored and whose
    /// first frame word is not), with their owners; a claim whose owner is
    /// not alive is stuck until a live party completes it.
    pub claims: Vec<ClaimStat>,
    /// Dead parties' claims (and half-done releases) that live parties
    /// have completed since the ring was created.
    pub recoveries: u64,
    /// Messages consumers have released since the ring was created (for
    /// framed rings, stored with each release; a consumer killed between
    /// its `head` store and this count leaves it a few messages short).
    pub released_frames: u64,
}

/// A claim in flight, in a [`Stat`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimStat {
    /// Pid of the claimant.
    pub pid: u32,
    /// Whether a producer or a consumer claimed it.
    pub role: Role,
    /// Where the claim starts: a byte position (framed rings) or a slot
    /// position (mpmc).
    pub pos: u64,
    /// Whether its owner still holds its record.
    pub alive: bool,
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
