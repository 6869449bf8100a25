//! The kind-erased flavour: a ring whose kind is learnt from its file, for
//! tools and bindings that take any ring (the `mmring` CLI, the Python
//! binding, the NATS bridge). Every operation dispatches on the kind with
//! one `match` and then runs that flavour's own protocol.

use std::os::fd::OwnedFd;
use std::path::Path;
use std::ptr::NonNull;

use super::mpmc::{self, Mpmc};
use super::mpsc::{self, Mpsc};
use super::spsc::{self, Spsc};
use crate::config::{Config, Trust};
use crate::error::{Corruption, Error};
use crate::handle::Ring;
use crate::layout::{Kind, Role};
use crate::protocol::Flavour;
use crate::protocol::sealed::Protocol;
use crate::region::Region;
use crate::ring::{Located, RawRing, ReadCursor};
use crate::slots::SlotRing;

/// The kind-erased flavour: the type parameter of [`AnyRing`],
/// [`AnyProducer`] and [`AnyConsumer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnyKind {}

/// A ring of any kind, learnt from its file: [`AnyRing::open`] takes any
/// mmring file, and its handles work whatever the kind. Semantics are the
/// underlying flavour's (e.g. an mpmc ring delivers each message to one of
/// its consumers; an spsc ring has one producer at a time).
///
/// ```
/// use mmring::{AnyRing, Config, Kind};
/// let ring = AnyRing::anonymous(Kind::Mpsc, Config::new(4096))?;
/// assert_eq!(ring.kind(), Kind::Mpsc);
/// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
/// tx.send(b"any")?;
/// assert_eq!(&*rx.recv()?, b"any");
/// # Ok::<(), mmring::Error>(())
/// ```
pub type AnyRing = Ring<AnyKind>;
/// A producer of an [`AnyRing`].
pub type AnyProducer = crate::Producer<AnyKind>;
/// A consumer of an [`AnyRing`].
pub type AnyConsumer = crate::Consumer<AnyKind>;
/// A reservation of an [`AnyProducer`].
pub type AnyWriteGrant<'a> = crate::WriteGrant<'a, AnyKind>;
/// A message taken by an [`AnyConsumer`].
pub type AnyReadGrant<'a> = crate::ReadGrant<'a, AnyKind>;

impl Flavour for AnyKind {}

/// The kind of the ring file at `path`, read from its header without
/// mapping it or taking a role.
///
/// # Errors
///
/// As [`AnyRing::open`].
///
/// ```no_run
/// match mmring::kind_of("/dev/shm/feed")? {
///     mmring::Kind::Mpmc => println!("a slot ring"),
///     kind => println!("a framed {kind} ring"),
/// }
/// # Ok::<(), mmring::Error>(())
/// ```
pub fn kind_of(path: impl AsRef<Path>) -> Result<Kind, Error> {
    kind_of_with(path, Trust::new())
}

/// As [`kind_of`], with `trust`'s checks in place of the default ones: the
/// kind of a ring of another user, or one others may write, when `trust`
/// allows it (`Trust::allow_owner`, `Trust::allow_shared_mode`).
///
/// # Errors
///
/// As [`kind_of`].
pub fn kind_of_with(path: impl AsRef<Path>, trust: Trust) -> Result<Kind, Error> {
    Ok(Region::probe(path.as_ref(), &trust)?.kind)
}

impl Ring<AnyKind> {
    /// Opens the ring file at `path`, whatever its kind.
    ///
    /// # Errors
    ///
    /// As [`Ring::open`](crate::Ring::open), with [`Error::UnknownKind`] in
    /// place of [`Error::WrongKind`].
    pub fn open(path: impl AsRef<Path>) -> Result<AnyRing, Error> {
        Ring::wrap(Region::open(path.as_ref(), None)?)
    }

    /// As [`AnyRing::open`], with the opt-ins of `trust` (see
    /// [`Ring::open_with`](crate::Ring::open_with)).
    ///
    /// # Errors
    ///
    /// As [`AnyRing::open`].
    pub fn open_with(path: impl AsRef<Path>, trust: Trust) -> Result<AnyRing, Error> {
        Ring::wrap(Region::open_with(path.as_ref(), &trust, None)?)
    }

    /// Attaches to a ring of any kind through a file descriptor.
    ///
    /// # Errors
    ///
    /// As [`AnyRing::open`].
    pub fn from_fd(fd: OwnedFd) -> Result<AnyRing, Error> {
        Ring::wrap(Region::from_fd(fd, None)?)
    }

    /// Creates a new ring file of `kind` at `path`.
    ///
    /// # Errors
    ///
    /// As [`Ring::create`](crate::Ring::create).
    pub fn create(path: impl AsRef<Path>, kind: Kind, cfg: Config) -> Result<AnyRing, Error> {
        Ring::wrap(Region::create(path.as_ref(), &cfg, kind, AnyKind::init)?)
    }

    /// Opens the ring at `path`, creating it as `kind` with `cfg` if it does
    /// not exist.
    ///
    /// # Errors
    ///
    /// As [`Ring::open_or_create`](crate::Ring::open_or_create).
    pub fn open_or_create(
        path: impl AsRef<Path>,
        kind: Kind,
        cfg: Config,
    ) -> Result<AnyRing, Error> {
        Ring::wrap(Region::open_or_create(
            path.as_ref(),
            &cfg,
            kind,
            AnyKind::init,
        )?)
    }

    /// Creates an anonymous ring of `kind`.
    ///
    /// # Errors
    ///
    /// As [`Ring::anonymous`](crate::Ring::anonymous).
    pub fn anonymous(kind: Kind, cfg: Config) -> Result<AnyRing, Error> {
        Ring::wrap(Region::anonymous(&cfg, kind, AnyKind::init)?)
    }
}

/// The flavour's view of the mapping, by kind.
#[derive(Debug)]
pub enum Mem {
    /// spsc.
    Spsc(RawRing),
    /// mpsc.
    Mpsc(RawRing),
    /// mpmc.
    Mpmc(SlotRing),
}

/// A producer's state, by kind.
#[derive(Debug)]
pub enum Tx {
    /// spsc.
    Spsc(spsc::Tx),
    /// mpsc.
    Mpsc(mpsc::Tx),
    /// mpmc.
    Mpmc(mpmc::Tx),
}

/// A consumer's state, by kind (spsc and mpsc share the framed one).
#[derive(Debug)]
pub enum Rx {
    /// spsc or mpsc.
    Framed(ReadCursor),
    /// mpmc.
    Mpmc(mpmc::Rx),
}

/// A claim, by kind.
#[derive(Debug, Clone, Copy)]
pub enum Claim {
    /// spsc.
    Spsc(spsc::Claim),
    /// mpsc.
    Mpsc(mpsc::Claim),
    /// mpmc.
    Mpmc(mpmc::Slot),
}

/// A taken message, by kind.
#[derive(Debug, Clone, Copy)]
pub enum Taken {
    /// spsc or mpsc.
    Framed(Located),
    /// mpmc.
    Mpmc(mpmc::Slot),
}

/// A handle's state is made from its ring's `Mem`, so the kinds always
/// agree; this is the arm that cannot be reached.
#[cold]
fn mismatch() -> ! {
    unreachable!("a handle's state is always of its ring's kind")
}

impl Protocol for AnyKind {
    type Mem = Mem;
    type Tx = Tx;
    type Rx = Rx;
    type Claim = Claim;
    type Taken = Taken;

    fn init(region: &Region) {
        if region.geometry().kind == Kind::Mpmc {
            Mpmc::init(region);
        }
    }

    fn mem(region: &Region) -> Result<Mem, Error> {
        Ok(match region.geometry().kind {
            Kind::Spsc => Mem::Spsc(Spsc::mem(region)?),
            Kind::Mpsc => Mem::Mpsc(Mpsc::mem(region)?),
            Kind::Mpmc => Mem::Mpmc(Mpmc::mem(region)?),
            found @ Kind::Broadcast => return Err(Error::UnsupportedKind { found }),
        })
    }

    fn kind(m: &Mem) -> Kind {
        match m {
            Mem::Spsc(_) => Kind::Spsc,
            Mem::Mpsc(_) => Kind::Mpsc,
            Mem::Mpmc(_) => Kind::Mpmc,
        }
    }

    fn exclusive(m: &Mem, role: Role) -> bool {
        match m {
            Mem::Spsc(r) => Spsc::exclusive(r, role),
            Mem::Mpsc(r) => Mpsc::exclusive(r, role),
            Mem::Mpmc(r) => Mpmc::exclusive(r, role),
        }
    }

    fn cursors(m: &Mem) -> (u64, u64) {
        match m {
            Mem::Spsc(r) | Mem::Mpsc(r) => r.cursors(),
            Mem::Mpmc(r) => Mpmc::cursors(r),
        }
    }

    fn max_frame(m: &Mem) -> u64 {
        match m {
            Mem::Spsc(r) | Mem::Mpsc(r) => Spsc::max_frame(r),
            Mem::Mpmc(r) => Mpmc::max_frame(r),
        }
    }

    fn producer(m: &Mem, rec: u64) -> Result<Tx, Corruption> {
        Ok(match m {
            Mem::Spsc(r) => Tx::Spsc(Spsc::producer(r, rec)?),
            Mem::Mpsc(r) => Tx::Mpsc(Mpsc::producer(r, rec)?),
            Mem::Mpmc(r) => Tx::Mpmc(Mpmc::producer(r, rec)?),
        })
    }

    #[inline(always)]
    fn try_claim(m: &Mem, tx: &mut Tx, len: u64) -> Result<Option<Claim>, Corruption> {
        Ok(match (m, tx) {
            (Mem::Spsc(r), Tx::Spsc(t)) => Spsc::try_claim(r, t, len)?.map(Claim::Spsc),
            (Mem::Mpsc(r), Tx::Mpsc(t)) => Mpsc::try_claim(r, t, len)?.map(Claim::Mpsc),
            (Mem::Mpmc(r), Tx::Mpmc(t)) => Mpmc::try_claim(r, t, len)?.map(Claim::Mpmc),
            _ => mismatch(),
        })
    }

    #[inline(always)]
    unsafe fn claim_payload(m: &Mem, c: &Claim) -> NonNull<u8> {
        match (m, c) {
            // SAFETY: the caller's contract, for the inner claim.
            (Mem::Spsc(r), Claim::Spsc(c)) => unsafe { Spsc::claim_payload(r, c) },
            // SAFETY: as above.
            (Mem::Mpsc(r), Claim::Mpsc(c)) => unsafe { Mpsc::claim_payload(r, c) },
            // SAFETY: as above.
            (Mem::Mpmc(r), Claim::Mpmc(c)) => unsafe { Mpmc::claim_payload(r, c) },
            _ => mismatch(),
        }
    }

    #[inline(always)]
    fn publish(m: &Mem, tx: &mut Tx, c: Claim, committed: Option<u64>) {
        match (m, tx, c) {
            (Mem::Spsc(r), Tx::Spsc(t), Claim::Spsc(c)) => Spsc::publish(r, t, c, committed),
            (Mem::Mpsc(r), Tx::Mpsc(t), Claim::Mpsc(c)) => Mpsc::publish(r, t, c, committed),
            (Mem::Mpmc(r), Tx::Mpmc(t), Claim::Mpmc(c)) => Mpmc::publish(r, t, c, committed),
            _ => mismatch(),
        }
    }

    #[inline(always)]
    fn flush(m: &Mem, tx: &mut Tx) -> bool {
        match (m, tx) {
            (Mem::Spsc(r), Tx::Spsc(t)) => Spsc::flush(r, t),
            (Mem::Mpsc(r), Tx::Mpsc(t)) => Mpsc::flush(r, t),
            (Mem::Mpmc(r), Tx::Mpmc(t)) => Mpmc::flush(r, t),
            _ => mismatch(),
        }
    }

    fn is_full(m: &Mem, tx: &Tx) -> bool {
        match (m, tx) {
            (Mem::Spsc(r), Tx::Spsc(t)) => Spsc::is_full(r, t),
            (Mem::Mpsc(r), Tx::Mpsc(t)) => Mpsc::is_full(r, t),
            (Mem::Mpmc(r), Tx::Mpmc(t)) => Mpmc::is_full(r, t),
            _ => mismatch(),
        }
    }

    fn unreleased(m: &Mem, tx: &Tx) -> u64 {
        match (m, tx) {
            (Mem::Spsc(r), Tx::Spsc(t)) => Spsc::unreleased(r, t),
            (Mem::Mpsc(r), Tx::Mpsc(t)) => Mpsc::unreleased(r, t),
            (Mem::Mpmc(r), Tx::Mpmc(t)) => Mpmc::unreleased(r, t),
            _ => mismatch(),
        }
    }

    fn consumer(m: &Mem, rec: u64) -> Result<Rx, Corruption> {
        Ok(match m {
            Mem::Spsc(r) => Rx::Framed(Spsc::consumer(r, rec)?),
            Mem::Mpsc(r) => Rx::Framed(Mpsc::consumer(r, rec)?),
            Mem::Mpmc(r) => Rx::Mpmc(Mpmc::consumer(r, rec)?),
        })
    }

    fn reusable(m: &Mem, i: u64) -> bool {
        match m {
            Mem::Spsc(r) => Spsc::reusable(r, i),
            Mem::Mpsc(r) => Mpsc::reusable(r, i),
            Mem::Mpmc(r) => Mpmc::reusable(r, i),
        }
    }

    fn claim_settled(m: &Mem, i: u64) -> bool {
        match m {
            Mem::Spsc(r) => Spsc::claim_settled(r, i),
            Mem::Mpsc(r) => Mpsc::claim_settled(r, i),
            Mem::Mpmc(r) => Mpmc::claim_settled(r, i),
        }
    }

    #[inline(always)]
    fn try_take(m: &Mem, rx: &mut Rx) -> Result<Option<Taken>, Corruption> {
        Ok(match (m, rx) {
            (Mem::Spsc(r), Rx::Framed(c)) => Spsc::try_take(r, c)?.map(Taken::Framed),
            (Mem::Mpsc(r), Rx::Framed(c)) => Mpsc::try_take(r, c)?.map(Taken::Framed),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::try_take(r, c)?.map(Taken::Mpmc),
            _ => mismatch(),
        })
    }

    #[inline(always)]
    unsafe fn taken_payload(m: &Mem, t: &Taken) -> (NonNull<u8>, usize) {
        match (m, t) {
            // SAFETY: the caller's contract, for the inner message.
            (Mem::Spsc(r) | Mem::Mpsc(r), Taken::Framed(f)) => unsafe { ReadCursor::payload(r, f) },
            // SAFETY: as above.
            (Mem::Mpmc(r), Taken::Mpmc(s)) => unsafe { Mpmc::taken_payload(r, s) },
            _ => mismatch(),
        }
    }

    #[inline(always)]
    fn consume(m: &Mem, rx: &mut Rx, t: Taken) {
        match (m, rx, t) {
            (Mem::Spsc(_) | Mem::Mpsc(_), Rx::Framed(c), Taken::Framed(f)) => c.consume(&f),
            (Mem::Mpmc(r), Rx::Mpmc(c), Taken::Mpmc(s)) => Mpmc::consume(r, c, s),
            _ => mismatch(),
        }
    }

    fn can_put_back(m: &Mem) -> bool {
        match m {
            Mem::Spsc(r) => Spsc::can_put_back(r),
            Mem::Mpsc(r) => Mpsc::can_put_back(r),
            Mem::Mpmc(r) => Mpmc::can_put_back(r),
        }
    }

    fn put_back(m: &Mem, rx: &mut Rx, t: Taken, count: u64) {
        match (m, rx, t) {
            (Mem::Spsc(r), Rx::Framed(c), Taken::Framed(f)) => Spsc::put_back(r, c, f, count),
            (Mem::Mpsc(r), Rx::Framed(c), Taken::Framed(f)) => Mpsc::put_back(r, c, f, count),
            (Mem::Mpmc(r), Rx::Mpmc(c), Taken::Mpmc(s)) => Mpmc::put_back(r, c, s, count),
            _ => mismatch(),
        }
    }

    #[inline(always)]
    fn release(m: &Mem, rx: &mut Rx) -> bool {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => c.release(r),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::release(r, c),
            _ => mismatch(),
        }
    }

    fn release_all(m: &Mem, rx: &mut Rx) -> bool {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => c.flush(r),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::release_all(r, c),
            _ => mismatch(),
        }
    }

    fn set_lazy(m: &Mem, rx: &mut Rx, frames: u32) -> bool {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => {
                c.set_lazy(r, frames);
                true
            }
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::set_lazy(r, c, frames),
            _ => mismatch(),
        }
    }

    fn position(t: &Taken) -> u64 {
        match t {
            Taken::Framed(f) => f.at,
            Taken::Mpmc(s) => Mpmc::position(s),
        }
    }

    fn can_read_ahead(m: &Mem) -> bool {
        matches!(m, Mem::Spsc(_) | Mem::Mpsc(_))
    }

    fn hold(rx: &mut Rx) {
        match rx {
            Rx::Framed(c) => c.hold(),
            Rx::Mpmc(_) => unreachable!("hold on a flavour that cannot read ahead"),
        }
    }

    fn end(t: &Taken) -> u64 {
        match t {
            Taken::Framed(f) => f.next,
            Taken::Mpmc(s) => Mpmc::end(s),
        }
    }

    fn release_to(m: &Mem, rx: &mut Rx, end: u64) -> bool {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => c.release_to(r, end),
            _ => unreachable!("release_to on a flavour that cannot read ahead"),
        }
    }

    fn recover_now(m: &Mem, rx: &mut Rx) -> Result<bool, Corruption> {
        match (m, rx) {
            (Mem::Spsc(r), Rx::Framed(c)) => Spsc::recover_now(r, c),
            (Mem::Mpsc(r), Rx::Framed(c)) => Mpsc::recover_now(r, c),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::recover_now(r, c),
            _ => mismatch(),
        }
    }

    fn is_empty(m: &Mem, rx: &Rx) -> bool {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => c.is_empty(r),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::is_empty(r, c),
            _ => mismatch(),
        }
    }

    fn waiting(m: &Mem, rx: &Rx) -> u64 {
        match (m, rx) {
            (Mem::Spsc(r) | Mem::Mpsc(r), Rx::Framed(c)) => c.waiting(r),
            (Mem::Mpmc(r), Rx::Mpmc(c)) => Mpmc::waiting(r, c),
            _ => mismatch(),
        }
    }
}
