//! One interface over the three flavours, for a tool that learns the kind
//! of a ring from its file.

use mmring::{Config, Error, Kind, KindName, RecvError, SendError, Stat, mpmc, mpsc, spsc};
use std::path::Path;

/// A ring of any kind.
pub enum AnyRing {
    Spsc(spsc::Ring),
    Mpsc(mpsc::Ring),
    Mpmc(mpmc::Ring),
}

/// A producer of any kind.
pub enum AnyTx {
    Spsc(spsc::Producer),
    Mpsc(mpsc::Producer),
    Mpmc(mpmc::Producer),
}

/// A consumer of any kind.
pub enum AnyRx {
    Spsc(spsc::Consumer),
    Mpsc(mpsc::Consumer),
    Mpmc(mpmc::Consumer),
}

/// Runs `$body` with `$r` bound to the inner value of any variant.
macro_rules! each {
    ($e:expr, $t:ident, $r:ident => $body:expr) => {
        match $e {
            $t::Spsc($r) => $body,
            $t::Mpsc($r) => $body,
            $t::Mpmc($r) => $body,
        }
    };
}

impl AnyRing {
    /// Opens `path` as whatever kind its header says.
    pub fn open(path: &Path) -> Result<AnyRing, Error> {
        match spsc::Ring::open(path) {
            Ok(r) => Ok(AnyRing::Spsc(r)),
            Err(Error::WrongKind {
                found: KindName::Known(k),
                ..
            }) => match k {
                Kind::Mpsc => mpsc::Ring::open(path).map(AnyRing::Mpsc),
                Kind::Mpmc => mpmc::Ring::open(path).map(AnyRing::Mpmc),
                Kind::Spsc => spsc::Ring::open(path).map(AnyRing::Spsc),
            },
            Err(e) => Err(e),
        }
    }

    pub fn create(path: &Path, kind: Kind, cfg: Config) -> Result<AnyRing, Error> {
        Ok(match kind {
            Kind::Spsc => AnyRing::Spsc(spsc::Ring::create(path, cfg)?),
            Kind::Mpsc => AnyRing::Mpsc(mpsc::Ring::create(path, cfg)?),
            Kind::Mpmc => AnyRing::Mpmc(mpmc::Ring::create(path, cfg)?),
        })
    }

    pub fn anonymous(kind: Kind, cfg: Config) -> Result<AnyRing, Error> {
        Ok(match kind {
            Kind::Spsc => AnyRing::Spsc(spsc::Ring::anonymous(cfg)?),
            Kind::Mpsc => AnyRing::Mpsc(mpsc::Ring::anonymous(cfg)?),
            Kind::Mpmc => AnyRing::Mpmc(mpmc::Ring::anonymous(cfg)?),
        })
    }

    pub fn producer(&self) -> Result<AnyTx, Error> {
        Ok(match self {
            AnyRing::Spsc(r) => AnyTx::Spsc(r.producer()?),
            AnyRing::Mpsc(r) => AnyTx::Mpsc(r.producer()?),
            AnyRing::Mpmc(r) => AnyTx::Mpmc(r.producer()?),
        })
    }

    pub fn consumer(&self) -> Result<AnyRx, Error> {
        Ok(match self {
            AnyRing::Spsc(r) => AnyRx::Spsc(r.consumer()?),
            AnyRing::Mpsc(r) => AnyRx::Mpsc(r.consumer()?),
            AnyRing::Mpmc(r) => AnyRx::Mpmc(r.consumer()?),
        })
    }

    pub fn stat(&self) -> Stat {
        each!(self, AnyRing, r => r.stat())
    }

    pub fn max_frame(&self) -> usize {
        each!(self, AnyRing, r => r.max_frame())
    }
}

impl AnyTx {
    /// Reserves `len` bytes (blocking, or spinning on `Full`), lets `fill`
    /// write them, and commits.
    pub fn send_with(
        &mut self,
        len: usize,
        blocking: bool,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), SendError> {
        macro_rules! go {
            ($t:expr) => {{
                let mut g = if blocking {
                    $t.reserve(len)?
                } else {
                    let backoff = crossbeam_utils::Backoff::new();
                    loop {
                        match $t.try_reserve(len) {
                            Err(SendError::Full) => backoff.spin(),
                            other => break other?,
                        }
                    }
                };
                fill(&mut g);
                g.commit();
                Ok(())
            }};
        }
        each!(self, AnyTx, t => go!(t))
    }

    pub fn send(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        self.send_with(bytes.len(), true, |g| g.copy_from_slice(bytes))
    }
}

impl AnyRx {
    /// Takes the next message (blocking, or spinning on `Empty`) and hands
    /// it to `f`. `Disconnected` ends a spinning wait too, once no producer
    /// is attached and nothing is left.
    pub fn recv_with<R>(
        &mut self,
        blocking: bool,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Result<R, RecvError> {
        // `f` runs at most once, inside `map`, so no grant outlives a loop turn.
        let mut f = Some(f);
        let mut call = |g: &[u8]| (f.take().expect("called once"))(g);
        macro_rules! go {
            ($c:expr) => {{
                if blocking {
                    return $c.recv().map(|g| call(&g));
                }
                let mut spins = 0u32;
                let backoff = crossbeam_utils::Backoff::new();
                loop {
                    match $c.try_recv().map(|g| call(&g)) {
                        Err(RecvError::Empty) => {
                            spins = spins.wrapping_add(1);
                            // Now and then, ask whether anyone is left to
                            // send; the blocking path does this itself.
                            if spins % 4096 == 0 && !$c.is_producer_attached() {
                                return match $c.try_recv().map(|g| call(&g)) {
                                    Err(RecvError::Empty) => Err(RecvError::Disconnected),
                                    other => other,
                                };
                            }
                            // Exponential busy-wait, never yielding: fewer
                            // loads of the producer's cursor line.
                            backoff.spin();
                        }
                        other => return other,
                    }
                }
            }};
        }
        each!(self, AnyRx, c => go!(c))
    }
}
