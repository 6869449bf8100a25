//! Blocking without polling: spin briefly, then sleep in the kernel on a
//! shared futex word until the other side says something changed.
//!
//! Each direction of a ring has a [`WaitPoint`]: a futex word and a set of
//! sleepers (a 128-bit bitmap, one bit per attachment record), both in the
//! shared header. A side that finds the ring empty (or full) sets its bit
//! and sleeps on the word; the other side, after publishing its cursor,
//! bumps the word and calls `FUTEX_WAKE` only if some bit is set and a
//! sleeper armed the word since the last bump. While nobody sleeps, the
//! hot path makes no syscall; while a woken sleeper waits to be scheduled,
//! neither.
//!
//! A sleeper killed while asleep cannot clear its bit. Its bit belongs to
//! its attachment record, so it is cleared by whoever takes the record next,
//! and by a waker whose wake-ups keep finding nobody in the kernel (or
//! keep being skipped while the bit stays set), once the record's lock
//! shows the holder dead: a crash never leaves every publish paying a
//! syscall.
//!
//! # Why no wake-up is lost
//!
//! Sleeper `S` (say, a consumer on an empty ring) and waker `W` (the
//! producer) run:
//!
//! ```text
//!   S0  seen = word.fetch_or(ARMED)|1   W1  cursor.store(new, Release)
//!   S1  sleepers.fetch_or(bit)          W2  light barrier
//!   S2  heavy barrier                   W3  if sleepers.load() != 0
//!   S4  re-check cursor: still empty?   W3b   && word.load() & ARMED {
//!   S5  futex_wait(word, seen)          W4      word.fetch_add(1)
//!                                       W5      futex_wake(word) }
//! ```
//!
//! The barriers are asymmetric (`barrier.rs`): S2 is a `SeqCst` fence
//! followed by `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`; W2 is a
//! compiler barrier in a process registered for those barriers, and a
//! `SeqCst` fence in one that is not.
//!
//! *A fenced waker.* The two `SeqCst` fences are totally ordered. If S2's
//! fence comes first, then S1 (before it) is visible to W3 (after W2): W
//! reads a set bit and performs W4 and W5. W4 comes after W3 read S1,
//! which comes after S0, so S0 did not read W4: `seen` is older than W4,
//! and the kernel's `futex_wait` either sees `word != seen` and returns at
//! once, or is already asleep and is woken by W5 (the kernel checks the
//! value and queues the sleeper atomically with respect to `futex_wake`).
//! If W2 comes first, W1 (before W2) is visible to S4 (after S2): S sees the new cursor and does not sleep. This is the
//! fence pairing of crossbeam's `array_queue` and of Dekker's algorithm.
//!
//! *A registered waker.* The kernel makes W's thread execute a full
//! barrier B at some instruction boundary while S is inside `membarrier`
//! (or W is not running, and went through B when it was switched out). S1
//! happens before B, and B before the return of S2. If B falls before W3
//! in W's program, S1 is visible to W3: the first case above. If B falls
//! after W3, it falls after W1 too (the compiler barrier keeps W1 before
//! W3 in the program), so W1 is visible to S4: the second case. The IPI
//! cannot split W1 from its effect: the store sits in W's store buffer
//! until B drains it.
//!
//! "Cursor" is whatever publishes: the head store (every release), the
//! slot stamp (mpmc), for an mpsc producer the Release store of its frame
//! word (the claim CAS on `tail` publishes nothing), and for an spsc
//! producer the Release store of its publication's first frame word, the
//! last of its stores (its `tail` store comes before it and publishes
//! nothing a consumer reads first; layout version 4). A caught-up framed
//! consumer's S4 reads the frame word at its read position first and the
//! producers' cursor after it (`ring::locate`); reading the word W1 wrote
//! is the re-check, so the argument is the same.
//!
//! *The armed word* (layout version 5). Bit 0 of the futex word,
//! [`ARMED`], says that a futex sleeper armed the word since the last bump:
//! S0 sets it with a `fetch_or` and sleeps on the odd value it leaves; W4's
//! `fetch_add(1)` turns an odd word even, a value no sleeper sleeps on. A
//! waker that finds the bitmap non-empty but the word even (W3b) skips W4
//! and W5: every futex sleeper registered then armed before the last bump,
//! and that bump's waker wakes it (its `seen` is older than the bump).
//! Without this, every publication made while a woken sleeper waits to be
//! scheduled paid a `FUTEX_WAKE` of its own. W3b reads the word after W3:
//! if W3 saw S's bit, S1's `fetch_or` (Release) and W3's load (Acquire)
//! order S0 before W3b, so W3b sees S's arming or a later bump, whose
//! waker then wakes S. If W3 did not see the bit, the cases above apply.
//! An arming never changes an odd word, so it never invalidates another
//! sleeper's `seen`; arming is monotonic (odd to odd, even to the next
//! odd), so no sleeper's `seen` comes back (no ABA short of 2^31 bumps
//! during one sleep). The descriptor waiters (`notify.rs`) do not arm:
//! they get their datagram on every publication, as before.
//!
//! In every case S does not sleep through a publication. The `loom_models`
//! below check both waker kinds under every interleaving. Loom models
//! `SeqCst` fences exactly (it does not model the total order of `SeqCst`
//! *accesses*, which is why the protocol is written with fences); the
//! kernel barrier, which loom cannot express, is modelled as an interrupt
//! the waker serves at each of its instruction boundaries: the sleeper
//! posts a request and waits until the waker has executed a `SeqCst` fence
//! and acknowledged it, or has stopped running (a stopped thread went
//! through a fence). A sleeper without the heavy barrier, facing a
//! registered waker, makes the model fail.
//!
//! A sleeper whose `membarrier` call is refused (a seccomp filter) cannot
//! order registered wakers: it sleeps at most [`barrier::FALLBACK_SLICE`]
//! at a time, so a wake-up it misses costs at most that long.
//!
//! `seen` is loaded *before* the sleeper registers (S0), not after: with
//! the broadcast sleep flag, which one waker's swap clears for every
//! sleeper (W3), a waker may clear the flag S has just set and do W4 and
//! W5 before S sleeps; had S loaded `seen` after W4, it would sleep through
//! the next publication, whose waker finds the flag clear. With S0 first,
//! every W4 that follows a W3 that saw S1 is newer than `seen`, so the
//! wait returns at once and S sets the flag again. (The loom model
//! `loom_sleep_flag_two_publications` found the lost wake-up of the other
//! order.)
//!
//! # Dead peers
//!
//! A peer killed with SIGKILL never wakes anyone, so a sleeper never sleeps
//! longer than [`LIVENESS_SLICE`] at a time: after each slice it asks the
//! kernel (through the role locks, see `roles.rs`) whether its peer is still
//! there. A cleanly detaching peer bumps the word and wakes sleepers itself,
//! so that case is noticed at once.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

#[cfg(not(loom))]
use crossbeam_utils::Backoff;

/// Longest single sleep: the bound on how late a sleeper notices that its
/// peer died without waking it.
pub(crate) const LIVENESS_SLICE: Duration = Duration::from_millis(200);

/// Bit 0 of a futex word: a futex sleeper armed the word since the last
/// bump, so the next waker must bump and wake (module docs, "The armed
/// word").
pub(crate) const ARMED: u32 = 1;

/// What the wait protocol needs from a 32-bit word in shared memory. The
/// real one is an `AtomicU32` with `FUTEX_WAIT` / `FUTEX_WAKE` (shared, not
/// private: sleepers and wakers live in different processes); the loom
/// models plug in a mock, so they check this very code.
pub(crate) trait FutexWord {
    /// `load(SeqCst)`.
    fn load_seqcst(&self) -> u32;
    /// S0: `fetch_or(ARMED, SeqCst)`; returns the value now in the word
    /// (odd), the one to sleep on.
    fn arm(&self) -> u32;
    /// `fetch_add(n, SeqCst)`.
    fn add(&self, n: u32);
    /// Sleeps while the word equals `seen`, for at most `timeout`; may
    /// return early for no reason (callers loop and re-check).
    fn wait(&self, seen: u32, timeout: Duration);
    /// Wakes every sleeper on the word; returns how many the kernel woke.
    fn wake_all(&self) -> usize;
    /// The waker's barrier W2 (module docs): a compiler barrier in a
    /// process registered for kernel barriers, a `SeqCst` fence otherwise.
    fn light_barrier(&self);
    /// The sleeper's barrier S2: a `SeqCst` fence and a kernel barrier on
    /// every registered process. `false` if the kernel barrier failed.
    fn heavy_barrier(&self) -> bool;
}

impl FutexWord for AtomicU32 {
    #[inline]
    fn load_seqcst(&self) -> u32 {
        self.load(SeqCst)
    }

    #[inline]
    fn arm(&self) -> u32 {
        // ORDERING(wake-handshake): SeqCst, S0; sequenced before S1, whose
        // Release half orders it before the waker's W3b (module docs).
        self.fetch_or(ARMED, SeqCst) | ARMED
    }

    #[inline]
    fn add(&self, n: u32) {
        self.fetch_add(n, SeqCst);
    }

    fn wait(&self, seen: u32, timeout: Duration) {
        futex_wait(self, seen, timeout);
    }

    fn wake_all(&self) -> usize {
        futex_wake(self)
    }

    #[inline]
    fn light_barrier(&self) {
        crate::barrier::light();
    }

    fn heavy_barrier(&self) -> bool {
        crate::barrier::heavy()
    }
}

/// The sleepers of one wait point: one bit per attachment record.
pub(crate) trait SleeperSet {
    /// Adds `bit` (`fetch_or`, SeqCst).
    fn insert(&self, bit: u32);
    /// Removes `bit` (`fetch_and`, SeqCst).
    fn remove(&self, bit: u32);
    /// Whether any bit is set (SeqCst loads).
    fn any(&self) -> bool;
    /// The set bits, as a snapshot.
    fn members(&self) -> u128;
    /// The waker's check (W3): whether to wake. A set that the waker
    /// clears (the broadcast sleep flag) clears itself here.
    #[inline]
    fn take_for_wake(&self) -> bool {
        self.any()
    }
}

/// The sleep flag of a broadcast ring: one word for any number of
/// sleepers. Every sleeper sets it before each sleep (S1, re-armed on
/// every round of [`block`]), nobody but the waker clears it, and the
/// waker clears it with a swap before it wakes (W3), so a sleeper that
/// died (or left without sleeping) costs at most one futile wake-up, never
/// one per publication. A sleeper whose flag a waker cleared is woken by
/// that waker's `FUTEX_WAKE` (or sees its futex-word bump), and sets the
/// flag again before it sleeps again.
impl SleeperSet for AtomicU32 {
    #[inline]
    fn insert(&self, _bit: u32) {
        // ORDERING(wake-handshake): SeqCst, S1; see the module docs.
        self.store(1, SeqCst);
    }

    /// Leaving does not clear the flag: other sleepers may share it.
    #[inline]
    fn remove(&self, _bit: u32) {}

    #[inline]
    fn any(&self) -> bool {
        self.load(SeqCst) != 0
    }

    fn members(&self) -> u128 {
        u128::from(self.any())
    }

    #[inline]
    fn take_for_wake(&self) -> bool {
        // ORDERING(wake-handshake): SeqCst, W3; the load first keeps the
        // common case (nobody asleep) free of a locked instruction.
        self.load(SeqCst) != 0 && self.swap(0, SeqCst) != 0
    }
}

impl SleeperSet for [AtomicU64; 2] {
    #[inline]
    fn insert(&self, bit: u32) {
        self[(bit / 64) as usize % 2].fetch_or(1 << (bit % 64), SeqCst);
    }

    #[inline]
    fn remove(&self, bit: u32) {
        self[(bit / 64) as usize % 2].fetch_and(!(1 << (bit % 64)), SeqCst);
    }

    #[inline]
    fn any(&self) -> bool {
        (self[0].load(SeqCst) | self[1].load(SeqCst)) != 0
    }

    fn members(&self) -> u128 {
        u128::from(self[0].load(SeqCst)) | (u128::from(self[1].load(SeqCst)) << 64)
    }
}

/// One direction's futex word and sleeper set.
#[derive(Debug)]
pub(crate) struct WaitPoint<'a, W: FutexWord = AtomicU32, S: SleeperSet = [AtomicU64; 2]> {
    word: &'a W,
    sleepers: &'a S,
}

impl<W: FutexWord, S: SleeperSet> Clone for WaitPoint<'_, W, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<W: FutexWord, S: SleeperSet> Copy for WaitPoint<'_, W, S> {}

impl<'a, W: FutexWord, S: SleeperSet> WaitPoint<'a, W, S> {
    pub fn new(word: &'a W, sleepers: &'a S) -> Self {
        WaitPoint { word, sleepers }
    }

    /// The sleeper set, for reconciliation.
    pub fn sleepers(&self) -> &'a S {
        self.sleepers
    }

    /// The broadcast publisher's waker (`take`, then `wake_all`), for the
    /// tests: wakes sleepers if there are any. Call right after the Release
    /// store that published the change they wait for (W1 above). Returns
    /// `true` when a wake-up was sent and the kernel found nobody asleep: a
    /// hint that a sleeper died with its flag set (or is about to sleep).
    /// The flag is cleared here (W3). (A bitmap's waker is
    /// [`sleeping`](WaitPoint::sleeping), then
    /// [`wake_armed`](WaitPoint::wake_armed) and the descriptor waiters.)
    #[cfg(test)]
    pub fn notify(&self) -> bool {
        if self.take() {
            return self.wake_all() == 0;
        }
        false
    }

    /// W2 and W3 for a set the waker clears (the broadcast sleep flag):
    /// the light barrier, then whether anyone may sleep, clearing the set.
    #[inline]
    pub fn take(&self) -> bool {
        // ORDERING(wake-handshake): the light barrier W2 pairs with the
        // heavy barrier S2 in `register`; with them, the loads W3 see a
        // registered sleeper or the sleeper sees our publication (module
        // docs).
        self.word.light_barrier();
        self.sleepers.take_for_wake()
    }

    /// W2 and W3 of the handshake for a sleeper bitmap: the light barrier,
    /// then the set. `None` (the hot path) when nobody sleeps; otherwise
    /// the set, whose members the caller wakes: `wake_all` for the futex
    /// sleepers and a datagram for those waiting on a descriptor
    /// (`notify.rs`).
    #[inline]
    pub fn sleeping(&self) -> Option<u128> {
        // ORDERING(wake-handshake): as in `notify`.
        self.word.light_barrier();
        if !self.sleepers.any() {
            return None;
        }
        Some(self.sleepers.members())
    }

    /// W3b, W4 and W5 for the futex sleepers of a bitmap, after
    /// [`sleeping`](WaitPoint::sleeping) found members: bumps the word and
    /// wakes only when a sleeper armed it since the last bump. `None` when
    /// none did: every futex sleeper registered now was woken by an earlier
    /// bump and has yet to look again (or died asleep). Otherwise how many
    /// the kernel woke.
    #[inline]
    pub fn wake_armed(&self) -> Option<usize> {
        // ORDERING(wake-handshake): SeqCst load, W3b, after W3 (module
        // docs, "The armed word").
        if self.word.load_seqcst() & ARMED == 0 {
            return None;
        }
        Some(self.wake_all())
    }

    /// Wakes every sleeper unconditionally: used when a role attaches or
    /// detaches, which sleepers must notice even though no cursor moved.
    /// Returns how many the kernel woke.
    pub fn wake_all(&self) -> usize {
        // ORDERING(wake-handshake): SeqCst (W4); a sleeper that armed the
        // word before this does not sleep on the stale value. From an even
        // word (nobody armed) this leaves it odd: one spare wake-up later,
        // never a lost one.
        self.word.add(1);
        self.word.wake_all()
    }
}

/// Why a blocking call gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Gave<E> {
    /// The deadline passed.
    Timeout,
    /// The peer is gone and `attempt` still would block.
    Disconnected,
    /// The ring's path no longer names its file and no peer is attached:
    /// nothing will ever arrive through it.
    Unlinked,
    /// `attempt` failed.
    Err(E),
}

/// Runs `attempt` until it yields a value: first spinning with a backoff,
/// then sleeping on `point` between attempts, registered as sleeper `bit`
/// (the caller's attachment record).
///
/// * `attempt` must re-read the other side's cursor (with Acquire) when it
///   finds nothing to do (S4 in the module docs), and return `Ok(None)` for
///   "would block". It runs before every sleep, so it is also where a
///   stuck claim of a dead party is noticed and completed.
/// * `check` runs while about to sleep (a slow path: it may make system
///   calls) and ends the wait with its error: a ring file truncated or
///   removed under us.
/// * `peer_gone` is asked only while about to sleep.
/// * `deadline` of `None` blocks until a value, an error or a dead peer.
#[cfg(test)]
pub(crate) fn block<T, E, W: FutexWord, S: SleeperSet>(
    point: WaitPoint<'_, W, S>,
    bit: u32,
    deadline: Option<Instant>,
    attempt: impl FnMut() -> Result<Option<T>, E>,
    check: impl FnMut() -> Result<(), Gave<E>>,
    peer_gone: impl FnMut() -> bool,
) -> Result<T, Gave<E>> {
    block_with(
        WaitStrategy::SpinThenSleep,
        point,
        bit,
        deadline,
        attempt,
        check,
        peer_gone,
    )
}

/// How a handle's blocking calls (and async ones) wait for the other
/// side: set with `Consumer::set_wait_strategy` or
/// `Producer::set_wait_strategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WaitStrategy {
    /// Spin briefly (crossbeam's `Backoff`: a few microseconds), then sleep
    /// in the kernel. The default: a peer that answers quickly is met
    /// without a system call.
    #[default]
    SpinThenSleep,
    /// Register and sleep at once: no CPU spent spinning, every wait a
    /// kernel round trip (the futex floor).
    Sleep,
}

/// As [`block`], spinning first only with [`WaitStrategy::SpinThenSleep`].
#[allow(clippy::too_many_arguments)]
pub(crate) fn block_with<T, E, W: FutexWord, S: SleeperSet>(
    strategy: WaitStrategy,
    point: WaitPoint<'_, W, S>,
    bit: u32,
    deadline: Option<Instant>,
    mut attempt: impl FnMut() -> Result<Option<T>, E>,
    mut check: impl FnMut() -> Result<(), Gave<E>>,
    mut peer_gone: impl FnMut() -> bool,
) -> Result<T, Gave<E>> {
    // The loom models go straight to the sleeping protocol they check.
    #[cfg(loom)]
    let _ = strategy;
    #[cfg(not(loom))]
    if strategy == WaitStrategy::SpinThenSleep {
        let backoff = Backoff::new();
        while !backoff.is_completed() {
            if let Some(v) = attempt().map_err(Gave::Err)? {
                return Ok(v);
            }
            backoff.snooze();
        }
    }
    loop {
        // S0: arm the word before registering and re-checking; see module
        // docs.
        let seen = point.word.arm();
        // S1 and S2 (module docs).
        let (registered, ordered) = register(point, bit);
        let slice = match recheck(ordered, deadline, &mut attempt, &mut check, &mut peer_gone)? {
            Next::Done(v) => return Ok(v),
            Next::Sleep(slice) => slice,
        };
        point.word.wait(seen, slice);
        drop(registered);
    }
}

/// What a registered sleeper does next.
pub(crate) enum Next<T> {
    /// `attempt` yielded a value.
    Done(T),
    /// Nothing yet: sleep for at most this long, then look again.
    Sleep(Duration),
}

/// S4 and the checks between registering and sleeping, the same for the
/// futex and the descriptor waits: the re-check, the slow-path `check`, a
/// gone peer (one more look, then `Disconnected`), the deadline; then how
/// long to sleep: a liveness slice, or [`barrier::FALLBACK_SLICE`] when the
/// kernel barrier failed (`ordered` false), never past the deadline.
pub(crate) fn recheck<T, E>(
    ordered: bool,
    deadline: Option<Instant>,
    attempt: &mut impl FnMut() -> Result<Option<T>, E>,
    check: &mut impl FnMut() -> Result<(), Gave<E>>,
    peer_gone: &mut impl FnMut() -> bool,
) -> Result<Next<T>, Gave<E>> {
    if let Some(v) = attempt().map_err(Gave::Err)? {
        return Ok(Next::Done(v));
    }
    check()?;
    if peer_gone() {
        // The peer may have published and then gone: look once more now
        // that its departure is known.
        return match attempt().map_err(Gave::Err)? {
            Some(v) => Ok(Next::Done(v)),
            None => Err(Gave::Disconnected),
        };
    }
    let longest = if ordered {
        LIVENESS_SLICE
    } else {
        crate::barrier::FALLBACK_SLICE
    };
    Ok(Next::Sleep(match deadline {
        None => longest,
        Some(d) => {
            let left = d.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Gave::Timeout);
            }
            left.min(longest)
        }
    }))
}

/// S1 and S2 of the handshake: sets `bit` in the sleeper set and issues
/// the heavy barrier. The caller then re-checks the ring (S4) and sleeps
/// only if it still must; the bit is cleared when the guard drops. The
/// flag is `false` if the kernel barrier failed (sleep in short slices).
pub(crate) fn register<W: FutexWord, S: SleeperSet>(
    point: WaitPoint<'_, W, S>,
    bit: u32,
) -> (Registered<'_, S>, bool) {
    // ORDERING(wake-handshake): S1, then the heavy barrier S2, which pairs
    // with the light barrier W2 in `WaitPoint::sleeping` (module docs).
    point.sleepers.insert(bit);
    let registered = Registered(point.sleepers, bit);
    (registered, point.word.heavy_barrier())
}

/// A waiter on a descriptor publishes its socket's nonce in its attachment
/// record before it ever sets its sleeper bit (`notify.rs`).
pub(crate) fn publish_nonce<W: crate::words::Word64>(word: &W, nonce: u64) {
    // ORDERING: Release; pairs with the Acquire load in `signal_members`,
    // which a waker makes after its SeqCst load of the sleeper set saw our
    // bit, set (SeqCst read-modify-write) after this store.
    word.store(nonce, std::sync::atomic::Ordering::Release);
}

/// The descriptor half of W4/W5: for every sleeper in `members` whose
/// record (`nonce_of`) names a wake-up socket, a datagram (`send`). Returns
/// whether one was delivered.
pub(crate) fn signal_members<'w, W: crate::words::Word64 + 'w>(
    members: u128,
    nonce_of: impl Fn(u64) -> &'w W,
    mut send: impl FnMut(u64, u64) -> bool,
) -> bool {
    let mut delivered = false;
    // The set bits only, lowest first.
    let mut rest = members;
    while rest != 0 {
        let bit = u64::from(rest.trailing_zeros());
        rest &= rest - 1;
        // ORDERING: Acquire; pairs with the Release store in
        // `publish_nonce`.
        let nonce = nonce_of(bit).load(std::sync::atomic::Ordering::Acquire);
        if nonce != 0 {
            delivered |= send(bit, nonce);
        }
    }
    delivered
}

/// Deregisters a sleeper when dropped, so every exit path (including an
/// `attempt` that returns a value or an error) clears its bit.
pub(crate) struct Registered<'a, S: SleeperSet>(&'a S, u32);

impl<S: SleeperSet> Drop for Registered<'_, S> {
    fn drop(&mut self) {
        // ORDERING: SeqCst like the insert; a waker that reads the set after
        // this merely skips a wake nobody needs.
        self.0.remove(self.1);
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
fn futex_wake(word: &AtomicU32) -> usize {
    use rustix::thread::futex;
    let r = futex::wake(word, futex::Flags::empty(), i32::MAX as u32);
    if r == Err(rustix::io::Errno::FAULT) {
        // Truncated file, as in `futex_wait`: fault into the handler.
        let _ = word.load(SeqCst);
        return 0;
    }
    debug_assert!(r.is_ok(), "unexpected futex_wake result {r:?}");
    r.unwrap_or(0)
}

/// Model checks of the wake-up handshake with loom: every interleaving of a
/// sleeper in [`block`] and a waker publishing and calling
/// [`WaitPoint::notify`], with the futex replaced by a mock that sleeps for
/// real (a lost wake-up is a deadlock loom reports), and the kernel barrier
/// replaced by an interrupt the waker serves (module docs).
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use loom::sync::atomic::{AtomicU32 as LAtomicU32, AtomicU64 as LAtomicU64};
    use loom::sync::{Arc, Condvar, Mutex};
    use std::sync::atomic::Ordering::{Acquire, Release};

    /// How the parties of a model order their handshake.
    #[derive(Clone, Copy)]
    struct Barriers {
        /// The waker's light barrier is a `SeqCst` fence (a process that
        /// could not register); otherwise only a compiler barrier, i.e.
        /// nothing in the model beyond the interrupts it serves.
        fenced_waker: bool,
        /// The sleeper's heavy barrier includes the kernel barrier. `false`
        /// is the sabotage: the fence alone, the system call forgotten.
        kernel: bool,
        /// Sleeps end as if their liveness slice ran out (the sleeper then
        /// asks whether its peer is gone); otherwise a sleep lasts until a
        /// wake-up, so that a lost one hangs.
        sliced: bool,
        /// The sleeper arms the word (S0). `false` is the sabotage: it
        /// loads the word as before layout version 5, so a waker that
        /// finds the word unarmed skips a wake-up it owes.
        arm: bool,
    }

    const REGISTERED: Barriers = Barriers {
        fenced_waker: false,
        kernel: true,
        sliced: false,
        arm: true,
    };

    /// A futex word: the value check and the sleep are atomic with respect
    /// to `wake_all`, as the kernel makes them. It also carries the model of
    /// `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)` between the sleepers and
    /// the one waker thread of a model: a sleeper posts a request and waits
    /// until the waker has served it (a `SeqCst` fence at one of its
    /// instruction boundaries, [`MockFutex::interrupt_point`]) or has
    /// stopped running ([`MockFutex::stop`], a fence then a store: a
    /// descheduled thread went through a full barrier).
    struct MockFutex {
        v: LAtomicU32,
        lock: Mutex<()>,
        cond: Condvar,
        barriers: Barriers,
        /// Kernel barriers requested so far (read by the waker without the
        /// lock: an interrupt is only taken once it was requested).
        requested: LAtomicU32,
        /// The kernel's side: barriers served, and whether the waker runs.
        kernel: Mutex<(u32, bool)>,
        served: Condvar,
    }

    impl MockFutex {
        fn new(barriers: Barriers) -> Self {
            MockFutex {
                v: LAtomicU32::new(0),
                lock: Mutex::new(()),
                cond: Condvar::new(),
                barriers,
                requested: LAtomicU32::new(0),
                kernel: Mutex::new((0, true)),
                served: Condvar::new(),
            }
        }

        /// An instruction boundary of the waker, where a kernel barrier
        /// requested meanwhile is executed: a full fence, then the
        /// acknowledgement the sleeper's system call returns on.
        fn interrupt_point(&self) {
            let r = self.requested.load(SeqCst);
            let mut k = self.kernel.lock().unwrap();
            if r > k.0 {
                loom::sync::atomic::fence(SeqCst);
                k.0 = r;
                self.served.notify_all();
            }
        }

        /// The waker stops running, for ever: switched out, it went
        /// through a full barrier, and kernel barriers no longer wait for
        /// it.
        fn stop(&self) {
            loom::sync::atomic::fence(SeqCst);
            let mut k = self.kernel.lock().unwrap();
            k.1 = false;
            self.served.notify_all();
        }
    }

    impl FutexWord for MockFutex {
        fn load_seqcst(&self) -> u32 {
            self.v.load(SeqCst)
        }
        fn arm(&self) -> u32 {
            if !self.barriers.arm {
                return self.v.load(SeqCst);
            }
            self.v.fetch_or(ARMED, SeqCst) | ARMED
        }
        fn add(&self, n: u32) {
            self.v.fetch_add(n, SeqCst);
        }
        /// Ignores the timeout unless the model is `sliced`: in the model a
        /// lost wake-up must hang.
        fn wait(&self, seen: u32, _timeout: Duration) {
            if self.barriers.sliced {
                loom::thread::yield_now();
                return;
            }
            let g = self.lock.lock().unwrap();
            if self.v.load(SeqCst) == seen {
                drop(self.cond.wait(g).unwrap());
            }
        }
        fn wake_all(&self) -> usize {
            let _g = self.lock.lock().unwrap();
            self.cond.notify_all();
            1
        }
        fn light_barrier(&self) {
            if self.barriers.fenced_waker {
                loom::sync::atomic::fence(SeqCst);
            } else {
                // The compiler barrier: nothing, but an interrupt may land.
                self.interrupt_point();
            }
        }
        fn heavy_barrier(&self) -> bool {
            loom::sync::atomic::fence(SeqCst);
            if self.barriers.kernel {
                let mine = self.requested.fetch_add(1, SeqCst) + 1;
                let mut k = self.kernel.lock().unwrap();
                while k.0 < mine && k.1 {
                    k = self.served.wait(k).unwrap();
                }
                drop(k);
                loom::sync::atomic::fence(SeqCst);
            }
            true
        }
    }

    /// The sleeper bitmap on loom atomics.
    struct MockSleepers([LAtomicU64; 2]);

    impl SleeperSet for MockSleepers {
        fn insert(&self, bit: u32) {
            self.0[(bit / 64) as usize].fetch_or(1 << (bit % 64), SeqCst);
        }
        fn remove(&self, bit: u32) {
            self.0[(bit / 64) as usize].fetch_and(!(1 << (bit % 64)), SeqCst);
        }
        fn any(&self) -> bool {
            (self.0[0].load(SeqCst) | self.0[1].load(SeqCst)) != 0
        }
        fn members(&self) -> u128 {
            u128::from(self.0[0].load(SeqCst)) | (u128::from(self.0[1].load(SeqCst)) << 64)
        }
    }

    struct Chan {
        cursor: LAtomicU64,
        gone: LAtomicU32,
        word: MockFutex,
        sleepers: MockSleepers,
    }

    impl Chan {
        fn point(&self) -> WaitPoint<'_, MockFutex, MockSleepers> {
            WaitPoint::new(&self.word, &self.sleepers)
        }

        /// The waker: W1 then W2..W5 as `Shared::notify` runs them, with
        /// the instruction boundaries around them where an interrupt may
        /// land, then it stops running.
        fn publish(&self) {
            self.publish_value(1);
            self.word.stop();
        }

        /// W1 (the cursor to `v`), then W2..W5 as `Shared::notify`: the
        /// bitmap, then the armed word.
        fn publish_value(&self, v: u64) {
            self.word.interrupt_point();
            self.cursor.store(v, Release);
            self.notify();
            self.word.interrupt_point();
        }

        /// W2..W5 as `Shared::notify` runs them for a bitmap.
        fn notify(&self) {
            if self.point().sleeping().is_some() {
                self.word.interrupt_point();
                self.point().wake_armed();
            }
        }

        /// A sleeper waiting for the publication, as sleeper `bit`.
        fn wait(&self, bit: u32) -> Result<u64, Gave<()>> {
            self.wait_for(bit, 1)
        }

        /// A sleeper waiting until the cursor reaches `want`, as sleeper
        /// `bit`.
        fn wait_for(&self, bit: u32, want: u64) -> Result<u64, Gave<()>> {
            block::<u64, (), _, _>(
                self.point(),
                bit,
                None,
                || {
                    let v = self.cursor.load(Acquire);
                    Ok((v >= want).then_some(v))
                },
                || Ok(()),
                || self.gone.load(SeqCst) == 1,
            )
        }
    }

    fn chan(barriers: Barriers) -> Arc<Chan> {
        Arc::new(Chan {
            cursor: LAtomicU64::new(0),
            gone: LAtomicU32::new(0),
            word: MockFutex::new(barriers),
            sleepers: MockSleepers([LAtomicU64::new(0), LAtomicU64::new(0)]),
        })
    }

    /// One sleeper and one waker with the given barriers: the sleeper sees
    /// the publication, whatever the interleaving; its bit (the high word:
    /// bit 70) is cleared on every exit.
    fn one_sleeper(barriers: Barriers) {
        loom::model(move || {
            let c = chan(barriers);
            let p = c.clone();
            let waker = loom::thread::spawn(move || p.publish());
            assert_eq!(c.wait(70), Ok(1));
            waker.join().unwrap();
            assert!(!c.sleepers.any());
        });
    }

    /// A registered waker (compiler barrier only) against the kernel
    /// barrier.
    #[test]
    fn loom_no_lost_wakeup() {
        one_sleeper(REGISTERED);
    }

    /// A waker in a process that could not register (a fence) against the
    /// same sleeper.
    #[test]
    fn loom_no_lost_wakeup_fenced_waker() {
        one_sleeper(Barriers {
            fenced_waker: true,
            ..REGISTERED
        });
    }

    /// The model has teeth: a sleeper that fences but forgets the kernel
    /// barrier misses a registered waker's publication, and loom finds the
    /// resulting hang.
    #[test]
    #[should_panic]
    fn loom_catches_a_sleeper_without_the_kernel_barrier() {
        one_sleeper(Barriers {
            kernel: false,
            ..REGISTERED
        });
    }

    /// Two sleepers on one wait point (bits 3 and 64) and one publication:
    /// both see it, whatever the interleaving (three threads: preemption
    /// bound 2, as the ring models).
    #[test]
    fn loom_two_sleepers_one_publication() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = chan(REGISTERED);
            let p = c.clone();
            let waker = loom::thread::spawn(move || p.publish());
            let c2 = c.clone();
            let other = loom::thread::spawn(move || c2.wait(64));
            assert_eq!(c.wait(3), Ok(1));
            assert_eq!(other.join().unwrap(), Ok(1));
            waker.join().unwrap();
            assert!(!c.sleepers.any());
        });
    }

    /// A waker that stops for ever at each step (before publishing, after
    /// its cursor store, after its sleeper check W3, after its armed-word
    /// check W3b and wake-up) and is then found gone: the sleeper's kernel
    /// barrier never waits for a stopped party, and the sleeper ends with
    /// the publication if it was made, else with `Disconnected`.
    #[test]
    fn loom_waker_stopped_at_each_step() {
        for step in 0..4 {
            loom::model(move || {
                let c = chan(Barriers {
                    sliced: true,
                    ..REGISTERED
                });
                let p = c.clone();
                let waker = loom::thread::spawn(move || {
                    p.word.interrupt_point();
                    if step >= 1 {
                        p.cursor.store(1, Release);
                    }
                    if step >= 2 && p.point().sleeping().is_some() {
                        p.word.interrupt_point();
                        if step >= 3 {
                            p.point().wake_armed();
                            p.word.interrupt_point();
                        }
                    }
                    p.word.stop();
                    p.gone.store(1, SeqCst);
                });
                let got = c.wait(9);
                if step == 0 {
                    assert_eq!(got, Err(Gave::Disconnected));
                } else {
                    assert_eq!(got, Ok(1));
                }
                waker.join().unwrap();
                assert!(!c.sleepers.any());
            });
        }
    }

    /// The armed word (layout version 5): a sleeper waiting for the second
    /// of two publications may sleep, be woken by the first (whose bump
    /// disarms the word), and arm and sleep again; or the second waker may
    /// find its bit still set and the word unarmed and skip its wake-up.
    /// It is never left asleep.
    #[test]
    fn loom_armed_word_two_publications() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = chan(REGISTERED);
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                p.publish_value(1);
                p.publish_value(2);
                p.word.stop();
            });
            assert_eq!(c.wait_for(5, 2), Ok(2));
            waker.join().unwrap();
            assert!(!c.sleepers.any());
        });
    }

    /// The model has teeth: a sleeper that loads the word instead of
    /// arming it sleeps through a waker that skips the wake-up of an
    /// unarmed word, and loom finds the hang.
    #[test]
    #[should_panic]
    fn loom_catches_a_sleeper_that_does_not_arm() {
        one_sleeper(Barriers {
            arm: false,
            ..REGISTERED
        });
    }

    /// A wake-up socket: the kernel's receive queue (a datagram queued
    /// stays until read) and a blocking wait on it (`epoll_wait`).
    struct Socket {
        queued: Mutex<bool>,
        cond: Condvar,
    }

    /// The descriptor path (`notify.rs`, `event::block_async`): the waiter
    /// publishes its nonce, registers (the production `register`), re-checks
    /// and waits on its socket; the waker publishes and signals the members
    /// through the production `sleeping` and `signal_members`. No lost
    /// wake-up. With `late_nonce`, the sabotage: the nonce is published
    /// after the bit, Relaxed, so a waker can see the bit and no socket.
    fn descriptor_wait(late_nonce: bool) {
        loom::model(move || {
            let c = chan(REGISTERED);
            let nonce = Arc::new(LAtomicU64::new(0));
            let sock = Arc::new(Socket {
                queued: Mutex::new(false),
                cond: Condvar::new(),
            });
            let (p, pn, ps) = (c.clone(), nonce.clone(), sock.clone());
            let waker = loom::thread::spawn(move || {
                p.word.interrupt_point();
                p.cursor.store(1, Release);
                if let Some(members) = p.point().sleeping() {
                    signal_members(
                        members,
                        |_| &*pn,
                        |bit, n| {
                            assert_eq!((bit, n), (70, 42));
                            *ps.queued.lock().unwrap() = true;
                            ps.cond.notify_all();
                            true
                        },
                    );
                }
                p.word.interrupt_point();
                p.word.stop();
            });
            if !late_nonce {
                publish_nonce(&*nonce, 42);
            }
            let got = loop {
                let v = c.cursor.load(Acquire);
                if v > 0 {
                    break v;
                }
                let (registered, _) = register(c.point(), 70);
                if late_nonce {
                    nonce.store(42, std::sync::atomic::Ordering::Relaxed);
                }
                let v = c.cursor.load(Acquire);
                if v > 0 {
                    break v;
                }
                let mut q = sock.queued.lock().unwrap();
                while !*q {
                    q = sock.cond.wait(q).unwrap();
                }
                *q = false;
                drop(q);
                drop(registered);
            };
            assert_eq!(got, 1);
            waker.join().unwrap();
            assert!(!c.sleepers.any());
        });
    }

    #[test]
    fn loom_descriptor_wait_no_lost_wakeup() {
        descriptor_wait(false);
    }

    /// The model has teeth: a nonce published after the bit loses the
    /// wake-up, and loom finds the hang.
    #[test]
    #[should_panic]
    fn loom_catches_a_nonce_published_late() {
        descriptor_wait(true);
    }

    /// A peer that leaves wakes the sleeper, which reports it.
    #[test]
    fn loom_detach_wakes_sleeper() {
        loom::model(|| {
            let c = chan(REGISTERED);
            let p = c.clone();
            let leaver = loom::thread::spawn(move || {
                p.word.interrupt_point();
                p.gone.store(1, SeqCst);
                p.point().wake_all();
                p.word.interrupt_point();
                p.word.stop();
            });
            let got = block::<u64, (), _, _>(
                c.point(),
                0,
                None,
                || Ok(None),
                || Ok(()),
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
            let c = chan(REGISTERED);
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                p.word.interrupt_point();
                let sleepers = p.sleepers.any();
                p.word.interrupt_point();
                p.cursor.store(1, Release);
                if sleepers {
                    p.point().wake_all();
                }
                p.word.interrupt_point();
                p.word.stop();
            });
            let _ = c.wait(0);
            waker.join().unwrap();
        });
    }

    /// The broadcast sleep flag on a loom atomic: as `impl SleeperSet for
    /// AtomicU32`, with `clear_late` for the sabotage below.
    struct MockFlag {
        v: LAtomicU32,
        clear_late: bool,
    }

    impl SleeperSet for MockFlag {
        fn insert(&self, _bit: u32) {
            self.v.store(1, SeqCst);
        }
        fn remove(&self, _bit: u32) {}
        fn any(&self) -> bool {
            self.v.load(SeqCst) != 0
        }
        fn members(&self) -> u128 {
            u128::from(self.any())
        }
        fn take_for_wake(&self) -> bool {
            if self.clear_late {
                return self.any();
            }
            self.v.load(SeqCst) != 0 && self.v.swap(0, SeqCst) != 0
        }
    }

    struct Flagged {
        cursor: LAtomicU64,
        word: MockFutex,
        flag: MockFlag,
    }

    impl Flagged {
        fn point(&self) -> WaitPoint<'_, MockFutex, MockFlag> {
            WaitPoint::new(&self.word, &self.flag)
        }

        /// Publishes `v` and wakes sleepers, as the broadcast publisher,
        /// with the instruction boundaries around it where a kernel
        /// barrier may land.
        fn publish(&self, v: u64) {
            self.word.interrupt_point();
            self.cursor.store(v, std::sync::atomic::Ordering::Release);
            if self.point().notify() && self.flag.clear_late {
                // Sabotage: the flag cleared after the wake-up, which can
                // erase a sleeper's re-arming.
                self.flag.v.store(0, SeqCst);
            }
            if self.flag.clear_late {
                self.flag.v.store(0, SeqCst);
            }
            self.word.interrupt_point();
        }

        /// Blocks until the cursor reaches `want`.
        fn wait_for(&self, want: u64) -> Result<u64, Gave<()>> {
            block::<u64, (), _, _>(
                self.point(),
                0,
                None,
                || {
                    let v = self.cursor.load(std::sync::atomic::Ordering::Acquire);
                    Ok((v >= want).then_some(v))
                },
                || Ok(()),
                || false,
            )
        }
    }

    fn flagged(clear_late: bool) -> Arc<Flagged> {
        Arc::new(Flagged {
            cursor: LAtomicU64::new(0),
            word: MockFutex::new(REGISTERED),
            flag: MockFlag {
                v: LAtomicU32::new(0),
                clear_late,
            },
        })
    }

    /// The broadcast sleep flag: one flag for every sleeper, cleared by the
    /// waker's swap before its wake-up, set again by each sleeper before
    /// each sleep. A sleeper waiting for the second of two publications
    /// (so it may sleep, be woken by the first, and sleep again) is never
    /// left asleep.
    #[test]
    fn loom_sleep_flag_two_publications() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = flagged(false);
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                p.publish(1);
                p.publish(2);
                p.word.stop();
            });
            assert_eq!(c.wait_for(2), Ok(2));
            waker.join().unwrap();
        });
    }

    /// Two sleepers share the flag: one publication wakes both.
    #[test]
    fn loom_sleep_flag_two_sleepers() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = flagged(false);
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                p.publish(1);
                p.word.stop();
            });
            let c2 = c.clone();
            let other = loom::thread::spawn(move || c2.wait_for(1));
            assert_eq!(c.wait_for(1), Ok(1));
            assert_eq!(other.join().unwrap(), Ok(1));
            waker.join().unwrap();
        });
    }

    /// The model has teeth: a waker that clears the flag after its
    /// wake-up (instead of the swap before it) can erase the flag a sleeper
    /// set again before sleeping, and the next publication then wakes
    /// nobody: loom finds the hang.
    #[test]
    #[should_panic]
    fn loom_sleep_flag_catches_a_late_clear() {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(|| {
            let c = flagged(true);
            let p = c.clone();
            let waker = loom::thread::spawn(move || {
                p.publish(1);
                p.publish(2);
                p.word.stop();
            });
            let _ = c.wait_for(2);
            waker.join().unwrap();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    struct Chan {
        cursor: AtomicU64,
        word: AtomicU32,
        sleepers: [AtomicU64; 2],
    }

    impl Chan {
        fn point(&self) -> WaitPoint<'_> {
            WaitPoint::new(&self.word, &self.sleepers)
        }
    }

    fn chan() -> Arc<Chan> {
        Arc::new(Chan {
            cursor: AtomicU64::new(0),
            word: AtomicU32::new(0),
            sleepers: [AtomicU64::new(0), AtomicU64::new(0)],
        })
    }

    #[test]
    fn sleeper_is_woken_by_publication() {
        let c = chan();
        let c2 = c.clone();
        let waker = std::thread::spawn(move || {
            for i in 1..=2000u64 {
                c2.cursor.store(i, SeqCst);
                if c2.point().sleeping().is_some() {
                    c2.point().wake_armed();
                }
                if i % 100 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let mut seen = 0;
        while seen < 2000 {
            let deadline = Some(Instant::now() + Duration::from_secs(10));
            seen = block::<u64, (), _, _>(
                c.point(),
                127,
                deadline,
                || {
                    let v = c.cursor.load(SeqCst);
                    Ok((v > seen).then_some(v))
                },
                || Ok(()),
                || false,
            )
            .expect("published values arrive before the deadline");
        }
        waker.join().unwrap();
        assert!(!c.sleepers.any(), "every sleeper deregistered");
    }

    #[test]
    fn timeout_and_disconnect_are_reported() {
        let c = chan();
        let point = c.point();
        let start = Instant::now();
        let r = block::<(), (), _, _>(
            point,
            5,
            Some(start + Duration::from_millis(30)),
            || Ok(None),
            || Ok(()),
            || false,
        );
        assert_eq!(r, Err(Gave::Timeout));
        assert!(start.elapsed() >= Duration::from_millis(30));
        let r = block::<(), (), _, _>(point, 5, None, || Ok(None), || Ok(()), || true);
        assert_eq!(r, Err(Gave::Disconnected));
        let r = block::<(), u8, _, _>(point, 5, None, || Err(7), || Ok(()), || false);
        assert_eq!(r, Err(Gave::Err(7)));
        assert!(!c.sleepers.any());
    }

    /// A bit left set by a sleeper that died after arming the word: the
    /// next waker bumps and wakes (the kernel finds nobody, which the
    /// caller counts toward reconciling), and wakers after it skip the
    /// system call, the word being unarmed; with the bit cleared, nothing
    /// at all.
    #[test]
    fn a_stale_sleeper_bit_costs_one_wake() {
        let c = chan();
        let point = c.point();
        let seen = c.word.arm();
        assert_eq!(seen, 1);
        c.sleepers.insert(77);
        assert_eq!(point.sleeping(), Some(1u128 << 77));
        assert_eq!(point.wake_armed(), Some(0), "nobody asleep behind bit 77");
        assert_eq!(c.word.load(SeqCst), 2, "bumped to an even, unarmed value");
        assert_eq!(point.wake_armed(), None, "no wake-up owed");
        assert_eq!(c.word.load(SeqCst), 2);
        // A sleeper that arms again is woken again, on a new value.
        assert_eq!(c.word.arm(), 3);
        assert_eq!(point.wake_armed(), Some(0));
        assert_eq!(c.word.load(SeqCst), 4);
        c.sleepers.remove(77);
        assert_eq!(point.sleeping(), None);
    }

    /// The broadcast sleep flag left set by a sleeper that died: the next
    /// `notify` clears it with its swap and wakes (finding nobody), and the
    /// one after makes no wake-up at all.
    #[test]
    fn a_stale_sleep_flag_costs_one_wake() {
        let word = AtomicU32::new(0);
        let flag = AtomicU32::new(0);
        let point = WaitPoint::new(&word, &flag);
        flag.insert(5);
        assert!(point.notify(), "one futile wake-up");
        assert_eq!(flag.load(SeqCst), 0);
        assert_eq!(word.load(SeqCst), 1);
        assert!(!point.notify());
        assert_eq!(word.load(SeqCst), 1, "no further wake-up");
    }

    /// `signal_members` visits exactly the set bits, low and high words
    /// alike, and signals those whose record names a socket.
    #[test]
    fn signal_members_visits_the_set_bits() {
        let nonces: Vec<AtomicU64> = (0..128u64).map(|b| AtomicU64::new(b % 3)).collect();
        let members = 1u128 | (1 << 2) | (1 << 63) | (1 << 64) | (1 << 127);
        let mut sent = Vec::new();
        let delivered = signal_members(
            members,
            |bit| &nonces[bit as usize],
            |bit, nonce| {
                sent.push((bit, nonce));
                true
            },
        );
        assert!(delivered);
        // Bits 0 and 63 have nonce 0 (no socket): not signalled.
        assert_eq!(sent, vec![(2, 2), (64, 1), (127, 1)]);
        assert!(!signal_members(0, |bit| &nonces[bit as usize], |_, _| true));
    }

    /// A futex word whose page left the file (truncation): the system call
    /// gets EFAULT, not SIGBUS; `futex_wait` / `futex_wake` then touch the
    /// word so the fault handler poisons the mapping, and neither panics.
    #[test]
    #[cfg_attr(miri, ignore = "memfd, mmap and SIGBUS are not available under Miri")]
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
                _ => drop(futex_wake(word)),
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
