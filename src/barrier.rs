//! The asymmetric barrier of the wake-up handshake: a compiler barrier on
//! the hot side (every publish and every release), a `membarrier(2)` system
//! call on the rare side (a party about to sleep).
//!
//! The handshake in `wait.rs` is Dekker's: the waker stores its cursor and
//! then reads the sleeper set; the sleeper stores its bit and then re-reads
//! the cursor. Each side needs StoreLoad ordering between its store and its
//! load, which a `SeqCst` fence gives, at the price of a store-buffer drain
//! on every publish: on a small ring, where producer and consumer hand each
//! cursor line back and forth, the drain waits for the line to cross cores,
//! about half of a producer's time. Only sleepers need the ordering, and
//! they are rare, so the cost moves to them:
//!
//! * The **light** barrier (wakers) is a compiler barrier, when this process
//!   is registered with `MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED`, and a
//!   `SeqCst` fence otherwise.
//! * The **heavy** barrier (sleepers, once per sleep) is a `SeqCst` fence
//!   and `membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED)`: on return, every
//!   running thread of every registered process has executed a full memory
//!   barrier at some point of its execution during the call (a thread not
//!   running went through one when it was switched out).
//!
//! Together they order as two `SeqCst` fences would (the pairing used by
//! folly's `asymmetricLightBarrier` / `asymmetricHeavyBarrier` and by
//! userspace RCU): wherever the waker's barrier lands relative to its
//! cursor store and its sleeper load, either the waker's store is visible
//! to the sleeper's re-check, or the sleeper's bit is visible to the
//! waker's load. The argument, with its cases, is in `wait.rs`; the loom
//! models there represent the kernel's barrier as an interrupt the waker
//! serves at any of its instruction boundaries.
//!
//! Registration is per process and decided locally: a process that cannot
//! register (an old kernel, a seccomp filter) keeps the fence on its hot
//! path, which pairs with the sleepers' fence as before. A sleeper whose
//! `membarrier` call fails cannot order registered wakers, so it sleeps in
//! short slices ([`FALLBACK_SLICE`]) instead: never a lost wake-up, at
//! worst a late one. Every party of a ring runs this protocol because the
//! layout version (3) says so: a binary of layout 2, whose sleepers issue no
//! heavy barrier, cannot open the ring.
//!
//! A fork child inherits the flag saying "registered" but, depending on
//! the kernel, not the registration: the fork hook (`roles.rs`) resets it,
//! and the child registers again when it next attaches.

use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
use std::time::Duration;

/// The longest sleep of a party whose heavy barrier failed.
pub(crate) const FALLBACK_SLICE: Duration = Duration::from_millis(1);

const UNKNOWN: u8 = 0;
const FENCE: u8 = 1;
const LIGHT: u8 = 2;

/// This process's mode: not yet asked, fenced, or registered.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

/// Registers this process for global expedited barriers, once (and again
/// after a fork). Called whenever a handle attaches, before it can notify.
pub(crate) fn register() {
    // ORDERING: Relaxed; the mode is process-local, and a thread that sees
    // LIGHT sees it after the registration call returned in some thread of
    // this process, which is all the kernel needs (registration is per
    // process, in effect once the call returns).
    if MODE.load(Relaxed) != UNKNOWN {
        return;
    }
    // First the hook that forgets the registration in a fork child, so
    // that no child ever starts out believing it is registered.
    crate::roles::install_fork_hook();
    let mode = if cfg!(miri) || !available() {
        FENCE
    } else {
        use rustix::thread::{MembarrierCommand, membarrier};
        match membarrier(MembarrierCommand::RegisterGlobalExpedited) {
            Ok(()) => LIGHT,
            Err(_) => FENCE,
        }
    };
    // ORDERING: Relaxed, as above.
    MODE.store(mode, Relaxed);
}

fn available() -> bool {
    use rustix::thread::{MembarrierCommand, MembarrierQuery, membarrier_query};
    let q = membarrier_query();
    q.contains_command(MembarrierCommand::GlobalExpedited)
        && q.contains(MembarrierQuery::REGISTER_GLOBAL_EXPEDITED)
}

/// Forgets the registration: called by the fork child hook (an atomic
/// store, async-signal-safe).
pub(crate) fn forked() {
    // ORDERING: Relaxed; the child has one thread when the hook runs.
    MODE.store(UNKNOWN, Relaxed);
}

/// Whether this process's hot path runs without a fence.
pub(crate) fn is_light() -> bool {
    // ORDERING: Relaxed, as in `register`.
    MODE.load(Relaxed) == LIGHT
}

/// The waker's side: between its cursor store and its sleeper load.
#[inline]
pub(crate) fn light() {
    if is_light() {
        // ORDERING(wake-handshake): W2, light. The compiler keeps the
        // cursor store before the sleeper load; the hardware ordering is
        // supplied by the sleeper's `membarrier` (module docs).
        std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
    } else {
        // ORDERING(wake-handshake): W2, a full fence; pairs with the fence
        // in `heavy` (S2).
        std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    }
}

/// The sleeper's side: between its sleeper-bit store and its re-check.
/// `false` if the kernel barrier failed: the caller must not trust a
/// registered waker to see its bit, and sleeps in short slices.
pub(crate) fn heavy() -> bool {
    // ORDERING(wake-handshake): S2; the fence pairs with fenced wakers'
    // W2, the system call with registered wakers' compiler barrier.
    std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
    if cfg!(miri) {
        // No registered waker can exist under Miri (`register` picks FENCE).
        return true;
    }
    use rustix::thread::{MembarrierCommand, membarrier};
    match membarrier(MembarrierCommand::GlobalExpedited) {
        Ok(()) => true,
        // A kernel without the command: no process can have registered,
        // so every waker fences, and our fence above pairs with theirs.
        Err(rustix::io::Errno::NOSYS | rustix::io::Errno::INVAL) => true,
        // Refused (a seccomp filter): registered wakers are not ordered.
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A process is registered exactly when the kernel offers global
    /// expedited barriers; the heavy barrier then succeeds; and a fork child
    /// starts out unregistered (fenced) until it registers again.
    #[test]
    #[cfg_attr(miri, ignore = "membarrier and fork are not available under Miri")]
    fn registration_follows_the_kernel_and_is_forgotten_by_a_fork_child() {
        register();
        assert_eq!(is_light(), available());
        assert!(heavy(), "membarrier(GLOBAL_EXPEDITED) failed");
        // SAFETY: the child makes only atomic accesses and system calls
        // (no allocation, no locks) before `_exit`.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0);
        if pid == 0 {
            let forgot = !is_light();
            register();
            let again = is_light() == available();
            // SAFETY: ends the child without running the parent's
            // destructors or the test harness.
            unsafe { libc::_exit(if forgot && again { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for our own child.
        assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "the fork child kept a registration it may not have ({status:#x})"
        );
        assert_eq!(is_light(), available(), "the parent keeps its own");
    }
}
