//! Async waits on tokio (feature `tokio`): the wait protocol of `wait.rs`
//! with the futex replaced by the handle's wake-up socket (`notify.rs`),
//! polled by tokio's reactor through `AsyncFd`. No thread blocks: a task
//! that must wait registers its sleeper bit, re-checks the ring, and awaits
//! the socket's readability, for at most a liveness slice at a time.
//!
//! Cancellation: dropping the future at its await drops the registration
//! (the bit is cleared) and the reactor registration of the socket; nothing
//! was taken from the ring before the future completes, so nothing is lost.
//!
//! Why tokio and not a runtime-agnostic layer (`async-io`): tokio is the
//! runtime the services that embed mmring run, its `AsyncFd` is exactly
//! "wake me when this descriptor is readable", and the feature keeps it out
//! of every other build. Any other reactor can poll
//! [`Consumer::notify_fd`](crate::Consumer::notify_fd) with the recipe
//! documented there.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;

use crate::notify::Notifier;
use crate::wait::{self, Gave, SleeperSet, WaitPoint, WaitStrategy};

/// Attempts before the first registration: spins of 1, 2, .. 64 pauses,
/// then yields to the runtime (crossbeam's `Backoff` schedule, which the
/// blocking path uses).
const SPIN_STEPS: u32 = 11;
const YIELD_STEPS: u32 = 4;

/// A descriptor borrowed for one wait (the `AsyncFd` does not own it).
struct Fd(RawFd);

impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// As [`wait::block`], awaiting `notifier`'s socket instead of sleeping on
/// the futex. `trusted` decides which senders' datagrams count (the others
/// are read and dropped). Without a socket (it could not be bound) or a
/// reactor to register it with, the task re-checks the ring every
/// [`FALLBACK_SLICE`](crate::barrier::FALLBACK_SLICE) instead.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn block_async<T, E, S: SleeperSet>(
    strategy: WaitStrategy,
    point: WaitPoint<'_, std::sync::atomic::AtomicU32, S>,
    bit: u32,
    notifier: Option<&Notifier>,
    trusted: impl Fn(u32) -> bool,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut check: impl FnMut() -> Result<(), Gave<E>>,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<T, Gave<E>> {
    // First a short spin, as the blocking path's backoff: a peer that
    // answers within microseconds is met without the sleeping protocol's
    // system calls. The later steps yield to the runtime instead of
    // spinning, so other tasks run meanwhile.
    let spins = match strategy {
        WaitStrategy::Sleep => 0,
        _ => SPIN_STEPS,
    };
    for step in 0..spins {
        if let Some(v) = attempt().map_err(Gave::Err)? {
            return Ok(v);
        }
        if step < SPIN_STEPS - YIELD_STEPS {
            for _ in 0..1u32 << step {
                std::hint::spin_loop();
            }
        } else {
            tokio::task::yield_now().await;
        }
    }
    loop {
        if let Some(v) = attempt().map_err(Gave::Err)? {
            return Ok(v);
        }
        // S1, S2: the bit and the heavy barrier; cleared on every exit,
        // cancellation included (the guard drops with the future).
        let (registered, ordered) = wait::register(point, bit);
        // S4 and the checks before sleeping, as the futex path's.
        let slice =
            match wait::recheck(ordered, deadline, &mut attempt, &mut check, &mut peer_gone)? {
                wait::Next::Done(v) => return Ok(v),
                wait::Next::Sleep(slice) => slice,
            };
        // S5: await a datagram. A wake-up sent since S1 is queued, so the
        // socket is readable now and this returns at once.
        let registration = notifier.map(|n| {
            // SAFETY: the descriptor is the notifier's socket, borrowed for
            // this whole call; the `AsyncFd` is dropped at the end of this
            // loop turn (or with the future), before the socket can close.
            let r =
                unsafe { AsyncFd::register_with_interest(Fd(n.as_raw_fd()), Interest::READABLE) };
            (n, r)
        });
        match registration {
            Some((notifier, Ok(afd))) => {
                if let Ok(Ok(mut ready)) = tokio::time::timeout(slice, afd.readable()).await {
                    notifier.drain(&trusted);
                    ready.clear_ready();
                }
            }
            // No socket, or no reactor to register it with: wait a short
            // slice instead; the loop re-checks the ring either way.
            _ => tokio::time::sleep(slice.min(crate::barrier::FALLBACK_SLICE)).await,
        }
        drop(registered);
    }
}
