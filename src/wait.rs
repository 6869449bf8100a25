//! Blocking without polling: spin briefly, then sleep in the kernel on a
//! shared futex word until the other side says something changed.
//!
//! Each direction of a ring has a [`WaitPoint`]: a futex word and a count of
//! sleepers, both in the shared header. A side that finds the ring empty (or
//! full) registers as a sleeper and sleeps on the word; the other side, after
//! publishing its cursor, bumps the word and calls `FUTEX_WAKE` only if the
//! count is non-zero. While nobody sleeps, the hot path makes no syscall.
//!
//! # Why no wake-up is lost
//!
//! Sleeper `S` (say, a consumer on an empty ring) and waker `W` (the
//! producer) run, with every access `SeqCst`:
//!
//! ```text
//!   S1  waiters.fetch_add(1)            W1  cursor.store(new)
//!   S2  seen = word.load()              W2  if waiters.load() != 0 {
//!   S3  re-check cursor: still empty?   W3      word.fetch_add(1)
//!   S4  futex_wait(word, seen)          W4      futex_wake(word) }
//! ```
//!
//! All `SeqCst` operations form one total order consistent with program
//! order. If S3 precedes W1 in it, then S1 precedes W2, so W2 reads a
//! non-zero count and W performs W3 and W4. Either W3 comes after S2 in the
//! order, and then the kernel's `futex_wait` either sees `word != seen` and
//! returns at once, or is already asleep and is woken by W4 (the kernel
//! checks the value and queues the sleeper atomically with respect to
//! `futex_wake`); or W3 comes before S2, then S2 reads it, W1 happens
//! before S3, and S3 sees the new cursor and does not sleep. If instead W1
//! precedes S3, S3 sees the new cursor and S does not sleep. In every case S
//! does not sleep through a publication. This is the Dekker-style pairing
//! crossbeam's `array_queue` and parking_lot's futex parker rely on; here
//! the cursor store itself is the `SeqCst` store, so no separate fence is
//! needed.
//!
//! # Dead peers
//!
//! A peer killed with SIGKILL never wakes anyone, so a sleeper never sleeps
//! longer than [`LIVENESS_SLICE`] at a time: after each slice it asks the
//! kernel (through the role locks, see `roles.rs`) whether its peer is still
//! there. A cleanly detaching peer bumps the word and wakes sleepers itself,
//! so that case is noticed at once.

use std::sync::atomic::{AtomicU32, Ordering::SeqCst};
use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;

/// Longest single sleep: the bound on how late a sleeper notices that its
/// peer died without waking it.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(200);

/// One direction's futex word and sleeper count.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WaitPoint<'a> {
    word: &'a AtomicU32,
    waiters: &'a AtomicU32,
}

impl<'a> WaitPoint<'a> {
    pub fn new(word: &'a AtomicU32, waiters: &'a AtomicU32) -> Self {
        WaitPoint { word, waiters }
    }

    /// Wakes sleepers if there are any. Call right after the `SeqCst` store
    /// that published the change they wait for (W1 above).
    #[inline]
    pub fn notify(&self) {
        // ORDERING(wake-handshake): SeqCst load (W2); pairs with the SeqCst
        // `waiters.fetch_add` (S1) in `block`, see the module docs.
        if self.waiters.load(SeqCst) != 0 {
            self.wake_all();
        }
    }

    /// Wakes every sleeper unconditionally: used when a role attaches or
    /// detaches, which sleepers must notice even though no cursor moved.
    pub fn wake_all(&self) {
        // ORDERING(wake-handshake): SeqCst (W3); a sleeper that loads the
        // word after this does not sleep on the stale value.
        self.word.fetch_add(1, SeqCst);
        futex_wake(self.word);
    }
}

/// Why a blocking call gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gave<E> {
    /// The deadline passed.
    Timeout,
    /// The peer is gone and `attempt` still would block.
    Disconnected,
    /// `attempt` failed.
    Err(E),
}

impl From<Gave<crate::Corruption>> for crate::SendError {
    fn from(g: Gave<crate::Corruption>) -> Self {
        match g {
            Gave::Timeout => crate::SendError::Timeout,
            Gave::Disconnected => crate::SendError::Disconnected,
            Gave::Err(c) => crate::SendError::Corrupt(c),
        }
    }
}

impl From<Gave<crate::Corruption>> for crate::RecvError {
    fn from(g: Gave<crate::Corruption>) -> Self {
        match g {
            Gave::Timeout => crate::RecvError::Timeout,
            Gave::Disconnected => crate::RecvError::Disconnected,
            Gave::Err(c) => crate::RecvError::Corrupt(c),
        }
    }
}

/// Runs `attempt` until it yields a value: first spinning with a backoff,
/// then sleeping on `point` between attempts.
///
/// * `attempt` must re-read the other side's cursor with a `SeqCst` load
///   when it finds nothing to do (S3 in the module docs), and return
///   `Ok(None)` for "would block".
/// * `peer_gone` is asked only while about to sleep.
/// * `deadline` of `None` blocks until a value, an error or a dead peer.
pub(crate) fn block<T, E>(
    point: WaitPoint<'_>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<T, Gave<E>> {
    let backoff = Backoff::new();
    while !backoff.is_completed() {
        if let Some(v) = attempt().map_err(Gave::Err)? {
            return Ok(v);
        }
        backoff.snooze();
    }
    loop {
        // ORDERING(wake-handshake): SeqCst (S1); pairs with the SeqCst load
        // of `waiters` in `WaitPoint::notify` (W2).
        point.waiters.fetch_add(1, SeqCst);
        let registered = Registered(point.waiters);
        // ORDERING(wake-handshake): SeqCst (S2); see module docs.
        let seen = point.word.load(SeqCst);
        if let Some(v) = attempt().map_err(Gave::Err)? {
            return Ok(v);
        }
        if peer_gone() {
            // The peer may have published and then gone: look once more
            // now that its departure is known.
            return match attempt().map_err(Gave::Err)? {
                Some(v) => Ok(v),
                None => Err(Gave::Disconnected),
            };
        }
        let slice = match deadline {
            None => LIVENESS_SLICE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(Gave::Timeout);
                }
                left.min(LIVENESS_SLICE)
            }
        };
        futex_wait(point.word, seen, slice);
        drop(registered);
    }
}

/// Deregisters a sleeper when dropped, so every exit path (including an
/// `attempt` that returns a value or an error) undoes `fetch_add`.
struct Registered<'a>(&'a AtomicU32);

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        // ORDERING: SeqCst like the increment; a waker that reads the count
        // after this merely skips a wake nobody needs.
        self.0.fetch_sub(1, SeqCst);
    }
}

/// Sleeps while `*word == seen`, for at most `timeout`. Spurious returns are
/// fine: callers loop and re-check.
#[cfg(target_os = "linux")]
fn futex_wait(word: &AtomicU32, seen: u32, timeout: Duration) {
    use rustix::thread::futex;
    let ts = futex::Timespec {
        tv_sec: timeout.as_secs() as _,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // Shared (not FUTEX_PRIVATE) futex: sleepers and wakers live in
    // different processes. EAGAIN (value changed), EINTR and ETIMEDOUT all
    // mean "go round again".
    let r = futex::wait(word, futex::Flags::empty(), seen, Some(&ts));
    debug_assert!(
        matches!(
            r,
            Ok(())
                | Err(rustix::io::Errno::AGAIN
                    | rustix::io::Errno::INTR
                    | rustix::io::Errno::TIMEDOUT)
        ),
        "unexpected futex_wait result {r:?}"
    );
}

#[cfg(target_os = "linux")]
fn futex_wake(word: &AtomicU32) {
    use rustix::thread::futex;
    let r = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    debug_assert!(r.is_ok(), "unexpected futex_wake result {r:?}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;

    struct Chan {
        cursor: AtomicU64,
        word: AtomicU32,
        waiters: AtomicU32,
    }

    fn chan() -> Arc<Chan> {
        Arc::new(Chan {
            cursor: AtomicU64::new(0),
            word: AtomicU32::new(0),
            waiters: AtomicU32::new(0),
        })
    }

    #[test]
    fn sleeper_is_woken_by_publication() {
        let c = chan();
        let c2 = c.clone();
        let waker = std::thread::spawn(move || {
            for i in 1..=2000u64 {
                c2.cursor.store(i, SeqCst);
                WaitPoint::new(&c2.word, &c2.waiters).notify();
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut seen = 0;
        while seen < 2000 {
            let point = WaitPoint::new(&c.word, &c.waiters);
            let deadline = Some(Instant::now() + Duration::from_secs(10));
            seen = block::<u64, ()>(
                point,
                deadline,
                || {
                    let v = c.cursor.load(SeqCst);
                    Ok((v > seen).then_some(v))
                },
                || false,
            )
            .expect("published values arrive before the deadline");
        }
        waker.join().unwrap();
        assert_eq!(c.waiters.load(SeqCst), 0, "every sleeper deregistered");
    }

    #[test]
    fn timeout_and_disconnect_are_reported() {
        let c = chan();
        let point = WaitPoint::new(&c.word, &c.waiters);
        let start = Instant::now();
        let r = block::<(), ()>(
            point,
            Some(start + Duration::from_millis(30)),
            || Ok(None),
            || false,
        );
        assert_eq!(r, Err(Gave::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let r = block::<(), ()>(point, None, || Ok(None), || true);
        assert_eq!(r, Err(Gave::Disconnected));
        let r = block::<(), u8>(point, None, || Err(7), || false);
        assert_eq!(r, Err(Gave::Err(7)));
        assert_eq!(c.waiters.load(SeqCst), 0);
    }
}
