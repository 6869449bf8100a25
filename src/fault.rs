//! Surviving a ring file that shrinks under its mapping.
//!
//! A named ring is a file, and anyone allowed to write it can `truncate` it
//! while we have it mapped. The next access to a page past the new end of
//! file raises `SIGBUS`, whose default action kills the process. Wayland
//! compositors face the same with clients' shared-memory pools and survive
//! it the way this module does (weston's `wl_shm_buffer_begin_access`,
//! wlroots' `wlr_shm`): a `SIGBUS` handler that recognises the faulting
//! address as one of "our" mappings maps anonymous zero pages over the whole
//! mapping (`mmap(MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS)`), flags the
//! mapping as *poisoned*, and returns. The faulting instruction runs again,
//! reads (or writes) a zero page, and the process goes on. The ring layer
//! then reports [`Corruption::Truncated`](crate::Corruption::Truncated)
//! instead of trusting the zeros.
//!
//! # The pieces
//!
//! * A fixed-size registry ([`SLOTS`] entries) of mapping ranges in a
//!   `static` array of atomics. [`Guard::register`] claims a free entry, and
//!   dropping the [`Guard`] frees it. No allocation, no lock: registering
//!   is a CAS over the entries (the very first registration of a process
//!   also installs the handler, under a `OnceLock`), unregistering is two
//!   stores around a wait for in-flight handlers (point 2), and the handler
//!   itself only loads and stores atomics.
//! * One `SIGBUS` handler for the whole process, installed the first time a
//!   mapping is registered (`SA_SIGINFO | SA_ONSTACK | SA_NODEFER`). It reads
//!   only the registry, calls only `mmap`, `sigaction` and `raise` (all plain
//!   system calls, async-signal-safe), and saves and restores `errno`.
//! * The handler that was installed before ours (Rust's own stack-overflow
//!   handler, Python's `faulthandler`, a sanitizer's) is kept and called for
//!   every `SIGBUS` that is not ours.
//!
//! # Why it is sound
//!
//! 1. **The handler only reads what registration published.** An entry
//!    goes `FREE → CLAIMED` (CAS by the registering thread), gets its range,
//!    then `→ LIVE` with a `SeqCst` store. The handler uses an entry's range
//!    only after loading `LIVE` from it (`SeqCst`, so it acquires the range
//!    written before that store). `CLAIMED`, `DEAD` and `FREE` entries are
//!    skipped.
//!
//! 2. **An unregister never races the handler into covering someone else's
//!    new mapping.** The danger is a handler that has matched an entry, is
//!    about to `mmap(MAP_FIXED)` over its range, and meanwhile the owner
//!    unmaps the range and another thread maps something new there. We rule
//!    it out with an in-flight counter, as in a Dekker handshake:
//!
//!    ```text
//!      handler                         Guard::drop (before the munmap)
//!      H1 IN_FLIGHT.fetch_add(1)       D1 state.store(DEAD)
//!      H2 state.load() == LIVE ?       D2 while IN_FLIGHT.load() != 0 {}
//!      H3 mmap(MAP_FIXED) over range   D3 state.store(FREE)
//!      H4 IN_FLIGHT.fetch_sub(1)       (then Region drops the MmapRaw)
//!    ```
//!
//!    All four of H1, H2, D1, D2 are `SeqCst`, so they are totally ordered.
//!    If H2 reads `LIVE`, D1 comes after H2 and so after H1; D2 then reads a
//!    count that includes H1 and the drop waits until H4. The `munmap` (and
//!    any reuse of the range) therefore happens after the handler's `mmap`,
//!    which only replaced *our* still-mapped range. If H2 comes after D1 it
//!    reads `DEAD` (or a later state of a new registration, whose range is
//!    then a *live* mapping of someone who registered it) and the stale range
//!    is never touched. `Region` declares its `Guard` before its `MmapRaw`,
//!    so the guard is dropped, and the wait done, before the `munmap`.
//!
//!    A thread faulting on a `Region` holds a reference to it, so in safe
//!    code the region cannot be dropped under its own fault; the handshake
//!    makes the guarantee hold whatever the faulting thread was doing: once
//!    `Guard::drop` returns, no handler will ever `mmap` over that range.
//!    Tested deterministically by `dropping_a_guard_waits_for_a_handler_in_flight`
//!    (a test hook holds a handler between H2 and H3; the drop must not
//!    return meanwhile; it fails if the wait is removed), and under load by
//!    `unregister_never_lets_a_handler_cover_a_new_mapping`.
//!
//!    The wait is bounded by the time a handler takes for one `mmap`; the
//!    handler never waits for anything. A `fork` while another thread is in
//!    the handler would copy a count that nothing in the child will ever
//!    decrement, so a `pthread_atfork` child hook resets it (the only thread
//!    of the child was calling `fork`, not in the handler). Raw `clone`
//!    without the atfork hooks is not covered.
//!
//! 3. **A thread that reads the replacement zeros can learn of it.** The
//!    handler sets the poisoned flag *before* its `mmap`. Any other thread
//!    that reads a zero page of the replacement does so after the kernel
//!    changed the page tables, which is after the flag store; [`Guard::is_poisoned`]
//!    issues an acquire fence before loading the flag, so a check made after
//!    reading data sees the flag. (On x86-64 this follows from TSO and the
//!    TLB-shootdown IPI; on other architectures it relies on the kernel's
//!    barriers around the page-table update.) The ring layer must re-check
//!    the flag in every wait loop and before every successful return, so
//!    zeros never pass as data; memory safety never depends on it, because
//!    every value read from the mapping is range-checked anyway. Tested by
//!    `a_reader_of_the_zeros_sees_the_poisoned_flag` (which fails when the
//!    flag is set after the `mmap` and the window is widened).
//!
//! 4. **Faults that are not ours go to whoever had them before.** A `SIGBUS`
//!    not generated by the kernel for an address (`si_code <= 0`, i.e.
//!    `kill`/`raise`/`sigqueue`), or at an address outside every `LIVE`
//!    entry, or one we could not repair (`mmap` failed), is passed on: to
//!    the previous `sa_sigaction` / `sa_handler` with the same arguments;
//!    if there was none (`SIG_DFL`), the default action is restored and the
//!    signal re-raised (for a fault, returning re-runs the access, which
//!    faults again and kills the process as it would have without us).
//!    `SIG_IGN` ignores a sent signal; a fault cannot be ignored (the
//!    kernel would kill the process), so it is treated as `SIG_DFL`. The
//!    previous handler's `sa_mask` and `SA_RESETHAND` are not emulated.
//!    A handler installed *after* ours owns `SIGBUS` and must chain to us
//!    itself, as we chain to our predecessor.
//!
//! What is not covered:
//!
//! * Mappings not made through `Region` (they chain, as above).
//! * An address reused between a fault and the handler's scan: if a
//!   non-ring mapping faults and, before the handler reads the registry,
//!   another thread unmaps it and a *new ring* is mapped and registered at
//!   the same address, the handler poisons that new ring (it reads zeros
//!   and reports `Truncated`). The faulting thread was itself racing an
//!   `munmap` of the memory it was reading. This costs a healthy ring, never
//!   memory safety; the handler's only input is the fault address, so it
//!   cannot tell the two apart.
//! * The previous action is read with one `sigaction` call and ours
//!   installed with a second; a handler installed by another thread between
//!   the two is overwritten (install happens once per process, at the first
//!   ring).
//! * A handler installed after ours that does not chain to it.

use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};

use crate::error::Error;

/// Most ring mappings one process can have at once.
pub(crate) const SLOTS: usize = 4096;

/// Entry states. Truth table:
///
/// | state     | range fields      | handler   | who moves it on            |
/// |-----------|-------------------|-----------|----------------------------|
/// | `FREE`    | stale             | skips     | `register` (CAS → CLAIMED) |
/// | `CLAIMED` | being written     | skips     | `register` (→ LIVE)        |
/// | `LIVE`    | a mapped range    | matches   | `Guard::drop` (→ DEAD)     |
/// | `DEAD`    | range being unmapped soon | skips | `Guard::drop` after quiescence (→ FREE) |
const FREE: u32 = 0;
const CLAIMED: u32 = 1;
const LIVE: u32 = 2;
const DEAD: u32 = 3;

struct Entry {
    state: AtomicU32,
    /// Set by the handler once it has replaced this mapping with zeros.
    poisoned: AtomicBool,
    /// Start of the mapping (page-aligned).
    base: AtomicUsize,
    /// Length of the mapping, rounded up to whole pages.
    len: AtomicUsize,
}

impl Entry {
    const fn new() -> Entry {
        Entry {
            state: AtomicU32::new(FREE),
            poisoned: AtomicBool::new(false),
            base: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
        }
    }
}

static REGISTRY: [Entry; SLOTS] = [const { Entry::new() }; SLOTS];

/// Handlers currently between H1 and H4 (see the module docs).
static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);

/// Mappings replaced with zeros since the process started.
static POISONED_TOTAL: AtomicU64 = AtomicU64::new(0);

/// The `SIGBUS` action that was installed before ours.
struct Previous(UnsafeCell<MaybeUninit<libc::sigaction>>);

// SAFETY: written once, in `install`, before `PREVIOUS_READY` is set with
// Release and before our handler is installed; only read after an Acquire
// load of `PREVIOUS_READY` returns true. Never written again.
unsafe impl Sync for Previous {}

static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));
static PREVIOUS_READY: AtomicBool = AtomicBool::new(false);

/// Result of installing the handler (once per process): the errno on failure.
static INSTALLED: OnceLock<Result<(), i32>> = OnceLock::new();

/// How many ring mappings this process has had replaced with zero pages
/// because their backing file shrank under them (or the kernel could not
/// page them in), since it started.
///
/// A ring whose mapping was replaced reports
/// [`Corruption::Truncated`](crate::Corruption::Truncated); this count lets
/// a process (or a test) see that it happened at all.
///
/// ```
/// assert_eq!(mmring::poisoned_mappings(), 0);
/// ```
pub fn poisoned_mappings() -> u64 {
    POISONED_TOTAL.load(Ordering::Relaxed)
}

/// One registered mapping. While it lives, a `SIGBUS` inside the range is
/// repaired with zero pages and flags it poisoned. Drop it *before*
/// unmapping the range.
#[derive(Debug)]
pub(crate) struct Guard {
    slot: usize,
}

impl Guard {
    /// Registers `[ptr, ptr + len)` (a live mapping; `len` is rounded up to
    /// whole pages), installing the handler on first use.
    pub fn register(ptr: *const u8, len: usize) -> Result<Guard, Error> {
        install()?;
        let page = rustix::param::page_size();
        let len = len
            .checked_next_multiple_of(page)
            .ok_or(Error::InvalidConfig("mapping length overflows"))?;
        for (slot, e) in REGISTRY.iter().enumerate() {
            // ORDERING(entry-free): Acquire; pairs with the Release store of
            // FREE in `Guard::drop`, so the previous owner is done with it.
            if e.state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
            {
                e.base.store(ptr as usize, Ordering::Relaxed);
                e.len.store(len, Ordering::Relaxed);
                e.poisoned.store(false, Ordering::Relaxed);
                // ORDERING(entry-publish): SeqCst (a Release store); pairs
                // with the handler's SeqCst load of `state`, which then sees
                // the range and the cleared flag written above.
                e.state.store(LIVE, Ordering::SeqCst);
                return Ok(Guard { slot });
            }
        }
        Err(Error::TooManyMappings { max: SLOTS })
    }

    /// Whether the handler has replaced this mapping with zero pages.
    pub fn is_poisoned(&self) -> bool {
        // ORDERING(poison-flag): the fence orders this check after every
        // read of mapped data that precedes it (a thread that read the
        // replacement zeros then sees the flag; see the module docs, point
        // 3); the Acquire load pairs with the handler's Release store.
        std::sync::atomic::fence(Ordering::Acquire);
        REGISTRY[self.slot].poisoned.load(Ordering::Acquire)
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let e = &REGISTRY[self.slot];
        // ORDERING(unregister): SeqCst; D1 of the handshake in the module
        // docs, totally ordered with the handler's H1 and H2.
        e.state.store(DEAD, Ordering::SeqCst);
        let backoff = crossbeam_utils::Backoff::new();
        // ORDERING(unregister): SeqCst; D2, pairs with H1/H4 (`IN_FLIGHT`).
        while IN_FLIGHT.load(Ordering::SeqCst) != 0 {
            backoff.snooze();
        }
        // ORDERING(entry-free): Release; pairs with the Acquire CAS in
        // `register`.
        e.state.store(FREE, Ordering::Release);
    }
}

/// Installs the handler once per process.
fn install() -> Result<(), Error> {
    let r = INSTALLED.get_or_init(|| {
        // SAFETY: `sigaction` with a null new action only reads the current
        // one into our static, which nobody reads before PREVIOUS_READY.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, std::ptr::null(), prev_ptr()) };
        if rc != 0 {
            return Err(errno());
        }
        // ORDERING(previous): Release; pairs with the Acquire load in
        // `chain`, which then reads the action written above.
        PREVIOUS_READY.store(true, Ordering::Release);
        // SAFETY: a zeroed sigaction is a valid value (empty mask, no flags).
        let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
        act.sa_sigaction = on_sigbus as *const () as libc::sighandler_t;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
        // SAFETY: `act` is a valid action whose handler is an
        // `extern "C" fn(c_int, *mut siginfo_t, *mut c_void)`, as
        // SA_SIGINFO requires.
        let rc = unsafe { libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) };
        if rc != 0 {
            return Err(errno());
        }
        // SAFETY: `reset_after_fork` is a plain extern "C" fn that only
        // stores to an atomic.
        unsafe { libc::pthread_atfork(None, None, Some(reset_after_fork)) };
        Ok(())
    });
    r.map_err(|e| Error::Io {
        op: "install the SIGBUS handler",
        source: std::io::Error::from_raw_os_error(e),
    })
}

fn prev_ptr() -> *mut libc::sigaction {
    PREVIOUS.0.get().cast()
}

/// The child of a `fork` has one thread, which was in `fork`, not in the
/// handler.
extern "C" fn reset_after_fork() {
    IN_FLIGHT.store(0, Ordering::SeqCst);
}

fn errno_slot() -> *mut libc::c_int {
    // SAFETY: `__errno_location` has no preconditions; it returns this
    // thread's errno slot, valid for the thread's lifetime.
    unsafe { libc::__errno_location() }
}

fn errno() -> i32 {
    // SAFETY: this thread's errno slot is valid and aligned.
    unsafe { *errno_slot() }
}

fn set_errno(v: i32) {
    // SAFETY: as in `errno`.
    unsafe { *errno_slot() = v };
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    let saved = errno();
    // ORDERING(in-flight): SeqCst; H1, see the module docs.
    IN_FLIGHT.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let handled = unsafe { repair(info) };
    // ORDERING(in-flight): SeqCst; H4, after our mmap.
    IN_FLIGHT.fetch_sub(1, Ordering::SeqCst);
    if !handled {
        // SAFETY: the arguments are the ones the kernel gave us.
        unsafe { chain(sig, info, ctx) };
    }
    set_errno(saved);
}

/// Replaces the registered mapping containing the faulting address with
/// zero pages. False if the fault is not ours or cannot be repaired.
///
/// # Safety
///
/// * `info` is the siginfo of a `SIGBUS` being handled.
unsafe fn repair(info: *mut libc::siginfo_t) -> bool {
    // SAFETY: `info` is valid (caller).
    let code = unsafe { (*info).si_code };
    if code <= 0 {
        // Sent by a process (kill, raise, sigqueue): no fault address.
        return false;
    }
    // SAFETY: `info` is valid (caller).
    let info = unsafe { &*info };
    // SAFETY: for a kernel-generated SIGBUS, si_addr is the fault address.
    let addr = unsafe { info.si_addr() } as usize;
    for e in &REGISTRY {
        // ORDERING(entry-publish): SeqCst; H2, pairs with the SeqCst store
        // of LIVE in `register` and with D1 in `Guard::drop`.
        if e.state.load(Ordering::SeqCst) != LIVE {
            continue;
        }
        let base = e.base.load(Ordering::Relaxed);
        let len = e.len.load(Ordering::Relaxed);
        if addr < base || addr - base >= len {
            continue;
        }
        #[cfg(all(test, not(miri)))]
        tests::hook::pause_if_asked(base);
        // Flag first: whoever reads the zeros below can then see it.
        // ORDERING(poison-flag): Release; pairs with the Acquire in
        // `Guard::is_poisoned`.
        e.poisoned.store(true, Ordering::Release);
        // SAFETY: [base, base + len) is a live mapping that the entry's
        // owner registered and cannot unmap before we leave (H4; the
        // handshake in the module docs). MAP_FIXED replaces exactly it.
        let p = unsafe {
            libc::mmap(
                base as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return false;
        }
        POISONED_TOTAL.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    false
}

/// Passes a `SIGBUS` that is not ours to the previously installed action.
///
/// # Safety
///
/// * The arguments are those the kernel passed to `on_sigbus`.
unsafe fn chain(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // ORDERING(previous): Acquire; pairs with the Release in `install`.
    if PREVIOUS_READY.load(Ordering::Acquire) {
        // SAFETY: written before PREVIOUS_READY, never written again.
        let prev = unsafe { &*prev_ptr() };
        let h = prev.sa_sigaction;
        if h == libc::SIG_IGN {
            // SAFETY: `info` is valid.
            if unsafe { (*info).si_code } <= 0 {
                return;
            }
        } else if h != libc::SIG_DFL {
            if prev.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: with SA_SIGINFO, the handler field holds a
                // three-argument handler, called with the kernel's arguments.
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    unsafe { std::mem::transmute::<libc::sighandler_t, _>(h) };
                f(sig, info, ctx);
            } else {
                // SAFETY: without SA_SIGINFO, the field holds a one-argument
                // handler.
                let f: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute::<libc::sighandler_t, _>(h) };
                f(sig);
            }
            return;
        }
    }
    // The default action: restore it and re-raise. For a fault, returning
    // would also do (the access faults again), but raising is uniform.
    // SAFETY: a zeroed sigaction with SIG_DFL (0) is the default action.
    let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
    dfl.sa_sigaction = libc::SIG_DFL;
    // SAFETY: installing the default action; async-signal-safe.
    unsafe { libc::sigaction(sig, &dfl, std::ptr::null_mut()) };
    // SAFETY: raise is async-signal-safe; SA_NODEFER left SIGBUS unblocked,
    // so the default action (termination) happens here.
    unsafe { libc::raise(sig) };
}

// Mapping, truncating and faulting real files: not under Miri.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    /// A file-backed shared mapping of `pages` pages, registered.
    struct Mapped {
        ptr: *mut u8,
        len: usize,
        file: std::fs::File,
        guard: Option<Guard>,
    }

    impl Mapped {
        fn new(pages: usize, fill: u8) -> Mapped {
            let page = rustix::param::page_size();
            let len = pages * page;
            let path = std::env::temp_dir().join(format!(
                "mmring-fault-{}-{:?}-{}",
                std::process::id(),
                std::thread::current().id(),
                POISONED_TOTAL.load(Ordering::Relaxed)
            ));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap();
            std::fs::remove_file(&path).unwrap();
            file.set_len(len as u64).unwrap();
            // SAFETY: a fresh shared mapping of our own file.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    file.as_raw_fd(),
                    0,
                )
            };
            assert_ne!(p, libc::MAP_FAILED);
            let ptr = p.cast::<u8>();
            // SAFETY: the mapping is `len` bytes, all backed by the file.
            unsafe { ptr.write_bytes(fill, len) };
            let guard = Some(Guard::register(ptr, len).unwrap());
            Mapped {
                ptr,
                len,
                file,
                guard,
            }
        }

        fn read(&self, i: usize) -> u8 {
            assert!(i < self.len);
            // SAFETY: `i < len`, in bounds of our mapping.
            let p = unsafe { self.ptr.add(i) };
            // SAFETY: a volatile read because the file may shrink under it
            // (the point of these tests); the fault handler makes it read 0.
            unsafe { p.read_volatile() }
        }

        fn poisoned(&self) -> bool {
            self.guard.as_ref().unwrap().is_poisoned()
        }
    }

    impl Drop for Mapped {
        fn drop(&mut self) {
            drop(self.guard.take());
            // SAFETY: our mapping; the guard is gone, so no handler can
            // remap it any more.
            unsafe { libc::munmap(self.ptr.cast(), self.len) };
        }
    }

    /// A way for a test to hold a handler between matching an entry and
    /// its `mmap`: the window the unregister handshake must cover.
    pub(super) mod hook {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

        /// Base address of the mapping whose repair pauses (0: none).
        pub static PAUSE_AT: AtomicUsize = AtomicUsize::new(0);
        pub static PAUSED: AtomicBool = AtomicBool::new(false);
        pub static RELEASE: AtomicBool = AtomicBool::new(false);

        /// Called by the handler; spins (async-signal-safe) until released,
        /// for at most a few seconds' worth of iterations.
        pub fn pause_if_asked(base: usize) {
            if PAUSE_AT.load(Ordering::SeqCst) != base {
                return;
            }
            PAUSED.store(true, Ordering::SeqCst);
            for _ in 0..(1u64 << 34) {
                if RELEASE.load(Ordering::SeqCst) {
                    break;
                }
                std::hint::spin_loop();
            }
        }
    }

    /// Deterministic check of the handshake: while a handler sits between
    /// matching a mapping and replacing it, dropping that mapping's guard
    /// does not return, so the range cannot be unmapped and reused under
    /// the handler.
    #[test]
    fn dropping_a_guard_waits_for_a_handler_in_flight() {
        let page = rustix::param::page_size();
        let mut m = Mapped::new(2, 0x33);
        let base = m.ptr as usize;
        hook::PAUSE_AT.store(base, Ordering::SeqCst);
        m.file.set_len(0).unwrap();
        let faulting = std::thread::spawn(move || {
            let p = (base + page) as *const u8;
            // SAFETY: inside the mapping, which outlives this thread (it is
            // only unmapped after the join below).
            unsafe { p.read_volatile() }
        });
        while !hook::PAUSED.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let guard = m.guard.take().unwrap();
        let dropped = std::sync::Arc::new(AtomicBool::new(false));
        let d = dropped.clone();
        let dropper = std::thread::spawn(move || {
            drop(guard);
            d.store(true, Ordering::SeqCst);
        });
        std::thread::sleep(std::time::Duration::from_millis(200));
        let early = dropped.load(Ordering::SeqCst);
        hook::RELEASE.store(true, Ordering::SeqCst);
        assert_eq!(faulting.join().unwrap(), 0);
        dropper.join().unwrap();
        hook::PAUSE_AT.store(0, Ordering::SeqCst);
        assert!(
            !early,
            "Guard::drop returned while a handler was about to remap its range"
        );
        assert!(dropped.load(Ordering::SeqCst));
    }

    #[test]
    fn truncated_mapping_reads_zeros_and_is_poisoned() {
        let page = rustix::param::page_size();
        let m = Mapped::new(4, 0xAB);
        assert_eq!(m.read(3 * page), 0xAB);
        assert!(!m.poisoned());
        let before = poisoned_mappings();
        m.file.set_len(page as u64).unwrap();
        // Page 3 is past the end of file: SIGBUS, repaired with zeros.
        assert_eq!(m.read(3 * page), 0);
        assert!(m.poisoned());
        assert!(poisoned_mappings() > before);
        // The whole mapping was replaced, page 0 included.
        assert_eq!(m.read(0), 0);
        // Writes go to private zero pages, not to the file.
        // SAFETY: in bounds of the (replaced) mapping.
        unsafe { m.ptr.write_volatile(7) };
        let mut b = [0u8; 1];
        rustix::io::pread(&m.file, &mut b, 0).unwrap();
        assert_eq!(b[0], 0xAB);
    }

    /// Point 3 of the module docs: a thread that reads the replacement
    /// zeros (without having faulted itself, or having) then sees the flag.
    #[test]
    fn a_reader_of_the_zeros_sees_the_poisoned_flag() {
        let page = rustix::param::page_size();
        for _ in 0..50 {
            let m = Mapped::new(2, 0xAB);
            let (base, slot) = (m.ptr as usize, m.guard.as_ref().unwrap().slot);
            let reader = std::thread::spawn(move || {
                let p = (base + page) as *const u8;
                // SAFETY: inside the mapping, unmapped only after the join.
                while unsafe { p.read_volatile() } != 0 {
                    std::hint::spin_loop();
                }
                let g = std::mem::ManuallyDrop::new(Guard { slot });
                g.is_poisoned()
            });
            m.file.set_len(0).unwrap();
            assert_eq!(m.read(page), 0);
            assert!(reader.join().unwrap(), "zeros read before the flag");
            assert!(m.poisoned());
        }
    }

    /// Mappings come and go (reusing address ranges) in some threads while
    /// others fault in truncated mappings. A stale handler covering a new
    /// mapping would turn its bytes into zeros; the handshake prevents it.
    #[test]
    fn unregister_never_lets_a_handler_cover_a_new_mapping() {
        std::thread::scope(|s| {
            for t in 0..2u8 {
                s.spawn(move || {
                    for i in 0..300 {
                        let fill = 0x10 + t + (i % 7) as u8;
                        let m = Mapped::new(2, fill);
                        let page = rustix::param::page_size();
                        for off in [0, page - 1, page, 2 * page - 1] {
                            assert_eq!(m.read(off), fill, "a live mapping was zeroed");
                        }
                        assert!(!m.poisoned());
                    }
                });
            }
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..300 {
                        let m = Mapped::new(2, 0x55);
                        m.file.set_len(0).unwrap();
                        assert_eq!(m.read(rustix::param::page_size()), 0);
                        assert!(m.poisoned());
                    }
                });
            }
        });
    }
}
