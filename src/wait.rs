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
//! producer) run:
//!
//! ```text
//!   S1  waiters.fetch_add(1)            W1  cursor.store(new, Release)
//!   S2  fence(SeqCst)                   W2  fence(SeqCst)
//!   S3  seen = word.load()              W3  if waiters.load() != 0 {
//!   S4  re-check cursor: still empty?   W4      word.fetch_add(1)
//!   S5  futex_wait(word, seen)          W5      futex_wake(word) }
//! ```
//!
//! The two `SeqCst` fences are totally ordered. If S2 comes first, then S1
//! (before S2) is visible to W3 (after W2): W reads a non-zero count and
//! performs W4 and W5. Either W4 lands before S3, and then S3 reads it,
//! W1 happens before S4 through it, and S sees the new cursor; or after S3,
//! and then the kernel's `futex_wait` either sees `word != seen` and returns
//! at once, or is already asleep and is woken by W5 (the kernel checks the
//! value and queues the sleeper atomically with respect to `futex_wake`). If
//! W2 comes first, W1 (before W2) is visible to S4 (after S2): S sees the
//! new cursor and does not sleep. In every case S does not sleep through a
//! publication. This is the fence pairing of crossbeam's `array_queue` and
//! of Dekker's algorithm. The `loom_models` below check it under every
//! interleaving (loom models `SeqCst` fences exactly; it does not model the
//! total order of `SeqCst` *accesses*, which is why the protocol is written
//! with fences).
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

#[cfg(not(loom))]
use crossbeam_utils::Backoff;

/// Longest single sleep: the bound on how late a sleeper notices that its
/// peer died without waking it.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(200);

/// What the wait protocol needs from a 32-bit word in shared memory. The
/// real one is an `AtomicU32` with `FUTEX_WAIT` / `FUTEX_WAKE` (shared, not
/// private: sleepers and wakers live in different processes); the loom
/// models plug in a mock, so they check this very code.
pub(crate) trait FutexWord {
    /// `load(SeqCst)`.
    fn load_seqcst(&self) -> u32;
    /// `fetch_add(n, SeqCst)`.
    fn add(&self, n: u32);
    /// `fetch_sub(n, SeqCst)`.
    fn sub(&self, n: u32);
    /// Sleeps while the word equals `seen`, for at most `timeout`; may
    /// return early for no reason (callers loop and re-check).
    fn wait(&self, seen: u32, timeout: Duration);
    /// Wakes every sleeper on the word.
    fn wake_all(&self);
    /// `fence(SeqCst)` (loom's, in the models).
    fn fence(&self);
}

impl FutexWord for AtomicU32 {
    #[inline]
    fn load_seqcst(&self) -> u32 {
        self.load(SeqCst)
    }

    #[inline]
    fn add(&self, n: u32) {
        self.fetch_add(n, SeqCst);
    }

    #[inline]
    fn sub(&self, n: u32) {
        self.fetch_sub(n, SeqCst);
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        futex_wait(self, seen, timeout);
    }

    fn wake_all(&self) {
        futex_wake(self);
    }

    #[inline]
    fn fence(&self) {
        std::sync::atomic::fence(SeqCst);
    }
}

/// One direction's futex word and sleeper count.
#[derive(Debug)]
pub(crate) struct WaitPoint<'a, W: FutexWord = AtomicU32> {
    word: &'a W,
    waiters: &'a W,
}

impl<W: FutexWord> Clone for WaitPoint<'_, W> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: FutexWord> Copy for WaitPoint<'_, W> {}

impl<'a, W: FutexWord> WaitPoint<'a, W> {
    pub fn new(word: &'a W, waiters: &'a W) -> Self {
        WaitPoint { word, waiters }
    }

    /// Wakes sleepers if there are any. Call right after the Release store
    /// that published the change they wait for (W1 above).
    #[inline]
    pub fn notify(&self) {
        // ORDERING(wake-handshake): the SeqCst fence W2 pairs with the fence
        // S2 in `block`; with it, the load W3 sees a registered sleeper or
        // the sleeper sees our publication (module docs).
        self.waiters.fence();
        if self.waiters.load_seqcst() != 0 {
            self.wake_all();
        }
    }

    /// Wakes every sleeper unconditionally: used when a role attaches or
    /// detaches, which sleepers must notice even though no cursor moved.
    pub fn wake_all(&self) {
        // ORDERING(wake-handshake): SeqCst (W4); a sleeper that loads the
        // word after this does not sleep on the stale value.
        self.word.add(1);
        self.word.wake_all();
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
/// * `attempt` must re-read the other side's cursor (with Acquire) when it
///   finds nothing to do (S4 in the module docs), and return `Ok(None)` for
///   "would block".
/// * `peer_gone` is asked only while about to sleep.
/// * `deadline` of `None` blocks until a value, an error or a dead peer.
pub(crate) fn block<T, E, W: FutexWord>(
    point: WaitPoint<'_, W>,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<T, Gave<E>> {
    // The loom models go straight to the sleeping protocol they check.
    #[cfg(not(loom))]
    {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if let Some(v) = attempt().map_err(Gave::Err)? {
                return Ok(v);
            }
            backoff.snooze();
        }
    }
    loop {
        // ORDERING(wake-handshake): S1, then the SeqCst fence S2, which pairs
        // with the fence W2 in `WaitPoint::notify` (module docs).
        point.waiters.add(1);
        let registered = Registered(point.waiters);
        point.waiters.fence();
        // S3: the word before the re-check; see module docs.
        let seen = point.word.load_seqcst();
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
        point.word.wait(seen, slice);
        drop(registered);
    }
}

/// Deregisters a sleeper when dropped, so every exit path (including an
/// `attempt` that returns a value or an error) undoes the increment.
struct Registered<'a, W: FutexWord>(&'a W);

impl<W: FutexWord> Drop for Registered<'_, W> {
    fn drop(&mut self) {
        // ORDERING: SeqCst like the increment; a waker that reads the count
        // after this merely skips a wake nobody needs.
        self.0.sub(1);
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
    if r == Err(rustix::io::Errno::FAULT) {
        // The word's page is no longer backed: the ring file was truncated
        // since we last touched it. A system call gets EFAULT where an
        // access gets SIGBUS, so touch the word: the fault handler
        // (`fault.rs`) replaces the mapping with zeros and poisons the ring,
        // which the caller's loop reports.
        let _ = word.load(SeqCst);
        return;
    }
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
    if r == Err(rustix::io::Errno::FAULT) {
        // Truncated file, as in `futex_wait`: fault into the handler.
        let _ = word.load(SeqCst);
        return;
    }
    debug_assert!(r.is_ok(), "unexpected futex_wake result {r:?}");
}

/// Model checks of the wake-up handshake with loom: every interleaving of a
/// sleeper in [`block`] and a waker publishing and calling
/// [`WaitPoint::notify`], with the futex replaced by a mock that sleeps for
/// real (a lost wake-up is a deadlock loom reports).
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::atomic::{AtomicU32 as LAtomicU32, AtomicU64 as LAtomicU64};
    use loom::sync::{Arc, Condvar, Mutex};

    /// A futex word: the value check and the sleep are atomic with respect
    /// to `wake_all`, as the kernel makes them.
    struct MockFutex {
        v: LAtomicU32,
        lock: Mutex<()>,
        cond: Condvar,
    }

    impl MockFutex {
        fn new() -> Self {
            MockFutex {
                v: LAtomicU32::new(0),
                lock: Mutex::new(()),
                cond: Condvar::new(),
            }
        }
    }

    impl FutexWord for MockFutex {
        fn load_seqcst(&self) -> u32 {
            self.v.load(SeqCst)
        }
        fn add(&self, n: u32) {
            self.v.fetch_add(n, SeqCst);
        }
        fn sub(&self, n: u32) {
            self.v.fetch_sub(n, SeqCst);
        }
        /// Ignores the timeout: in the model a lost wake-up must hang.
        fn wait(&self, seen: u32, _timeout: Duration) {
            let g = self.lock.lock().unwrap();
            if self.v.load(SeqCst) == seen {
                drop(self.cond.wait(g).unwrap());
            }
        }
        fn wake_all(&self) {
            let _g = self.lock.lock().unwrap();
            self.cond.notify_all();
        }
        fn fence(&self) {
            loom::sync::atomic::fence(SeqCst);
        }
    }

    struct Chan {
        cursor: LAtomicU64,
        gone: LAtomicU32,
        word: MockFutex,
        waiters: MockFutex,
    }

    fn chan() -> Arc<Chan> {
        Arc::new(Chan {
            cursor: LAtomicU64::new(0),
            gone: LAtomicU32::new(0),
            word: MockFutex::new(),
            waiters: MockFutex::new(),
        })
    }

    /// The sleeper sees the publication, whatever the interleaving.
    #[test]
    fn loom_no_lost_wakeup() {
        loom::model(|| {
            let c = chan();
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                // W1: the Release cursor store, then notify (W2..W5).
                p.cursor.store(1, std::sync::atomic::Ordering::Release);
                WaitPoint::new(&p.word, &p.waiters).notify();
            });
            let got = block::<u64, (), _>(
                WaitPoint::new(&c.word, &c.waiters),
                None,
                || {
                    let v = c.cursor.load(std::sync::atomic::Ordering::Acquire);
                    Ok((v > 0).then_some(v))
                },
                || false,
            );
            assert_eq!(got, Ok(1));
            waker.join().unwrap();
            assert_eq!(c.waiters.load_seqcst(), 0);
        });
    }

    /// A peer that leaves wakes the sleeper, which reports it.
    #[test]
    fn loom_detach_wakes_sleeper() {
        loom::model(|| {
            let c = chan();
            let p = c.clone();
            let leaver = loom::thread::spawn(move || {
                p.gone.store(1, SeqCst);
                WaitPoint::new(&p.word, &p.waiters).wake_all();
            });
            let got = block::<u64, (), _>(
                WaitPoint::new(&c.word, &c.waiters),
                None,
                || Ok(None),
                || c.gone.load(SeqCst) == 1,
            );
            assert_eq!(got, Err(Gave::Disconnected));
            leaver.join().unwrap();
        });
    }

    /// The model has teeth: a waker that checks for sleepers *before*
    /// publishing can miss one, and loom finds the resulting hang.
    #[test]
    #[should_panic]
    fn loom_catches_a_broken_waker() {
        loom::model(|| {
            let c = chan();
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                let sleepers = p.waiters.load_seqcst();
                p.cursor.store(1, std::sync::atomic::Ordering::Release);
                if sleepers != 0 {
                    WaitPoint::new(&p.word, &p.waiters).wake_all();
                }
            });
            let _ = block::<u64, (), _>(
                WaitPoint::new(&c.word, &c.waiters),
                None,
                || {
                    let v = c.cursor.load(SeqCst);
                    Ok((v > 0).then_some(v))
                },
                || false,
            );
            waker.join().unwrap();
        });
    }
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
            seen = block::<u64, (), _>(
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
        let r = block::<(), (), _>(
            point,
            Some(start + Duration::from_millis(30)),
            || Ok(None),
            || false,
        );
        assert_eq!(r, Err(Gave::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let r = block::<(), (), _>(point, None, || Ok(None), || true);
        assert_eq!(r, Err(Gave::Disconnected));
        let r = block::<(), u8, _>(point, None, || Err(7), || false);
        assert_eq!(r, Err(Gave::Err(7)));
        assert_eq!(c.waiters.load(SeqCst), 0);
    }

    /// A futex word whose page left the file (truncation): the system call
    /// gets EFAULT, not SIGBUS; `futex_wait` / `futex_wake` then touch the
    /// word so the fault handler poisons the mapping, and neither panics.
    #[test]
    fn futex_on_a_truncated_page_poisons_instead_of_failing() {
        use std::os::fd::AsRawFd;
        let page = rustix::param::page_size();
        for op in ["wait", "wake"] {
            let file = std::fs::File::from(
                rustix::fs::memfd_create("futex-efault", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
            );
            file.set_len(page as u64).unwrap();
            // SAFETY: a fresh shared mapping of our own memfd.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    page,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let guard = crate::fault::Guard::register(p.cast(), page).unwrap();
            file.set_len(0).unwrap();
            // SAFETY: page-aligned, inside the mapping, which outlives the
            // reference (unmapped below); the handler turns the lost page
            // into zeros.
            let word = unsafe { &*p.cast::<AtomicU32>() };
            match op {
                "wait" => futex_wait(word, 1, Duration::from_millis(10)),
                _ => futex_wake(word),
            }
            assert!(
                guard.is_poisoned(),
                "{op}: EFAULT was not turned into poison"
            );
            drop(guard);
            // SAFETY: our mapping, no longer registered.
            unsafe { libc::munmap(p, page) };
        }
    }
}
