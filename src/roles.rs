//! Role ownership and peer liveness through open-file-description locks.
//!
//! Each role (producer, consumer) owns one byte of the ring file: the first
//! byte of its role record. A single-holder role takes a write lock on that
//! byte with `F_OFD_SETLK` through a private open file description; a
//! multi-holder role (MPSC producers, MPMC producers and consumers) takes a
//! shared read lock on it. Every handle also takes a write lock on a record
//! of the attachment table, which identifies it: its pid, its in-flight
//! claim, its bit in the sleeper sets. The kernel drops the locks when the
//! description is closed, which happens when the holder drops its handle
//! *or dies*, `kill -9` included. Whether a
//! peer is alive is asked with `F_OFD_GETLK`. No pid, timestamp or heartbeat
//! is involved, so pid reuse cannot fool it.
//!
//! Every handle opens its own description by re-opening
//! `/proc/self/fd/<ring fd>`, which works for named files and memfds alike
//! and keeps two handles in one process (or a process and its `fork` child
//! that claims its roles after the fork) from sharing a lock.
//!
//! # Fork
//!
//! A `fork` child inherits every descriptor, and with it a reference to
//! every open file description: a role's lock would then outlive its holder
//! for as long as the child lives (a forked worker pool, Python's `fork`
//! start method), and a killed producer would look alive. So a
//! `pthread_atfork` child hook makes every inherited role descriptor inert
//! at once, in the child, before it runs any code of its own: it `dup2`s
//! `/dev/null` over each one (closing the child's reference to the locked
//! description, while keeping the fd number taken so that a later drop
//! cannot close an unrelated file that reused it), and bumps the fork
//! generation. A handle made before the fork sees a generation that is not
//! its own and refuses to work (`Forked`); the child claims roles of its
//! own on the `Ring` it inherited, which stays usable. The registry of
//! role descriptors is a fixed array of atomics, so the hook does nothing
//! but async-signal-safe calls.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::error::Error;
use crate::layout::{self, Role};

/// A held role: the open file description carrying the lock(s). Dropping
/// it closes the description, which releases every lock it holds.
#[derive(Debug)]
pub(crate) struct Attachment {
    ofd: File,
    /// This handle's record in the attachment table (its claim record and
    /// its bit in the sleeper sets).
    record: u64,
    /// The fork generation the attachment was made in.
    generation: u64,
    /// Its place in the registry of role descriptors.
    slot: usize,
}

impl Attachment {
    /// Takes `role`, alone (`exclusive`: a write lock on its byte, for the
    /// single producer or consumer of a ring) or as one of many (a read lock
    /// on it, which any number of holders share), and a free record of the
    /// attachment table (a write lock on the record's first byte). A record
    /// whose holder died is free again, its lock gone with it, once
    /// `reusable(i)` agrees: a dead holder's in-flight claim is kept until a
    /// live party has completed it.
    ///
    /// `Ok(None)` means the role is held (exclusively, or shared when we
    /// want it exclusively): a live holder has it.
    pub fn take(
        ring_fd: BorrowedFd<'_>,
        role: Role,
        exclusive: bool,
        reusable: impl Fn(u64) -> bool,
    ) -> Result<Option<Attachment>, Error> {
        let ofd = reopen(ring_fd)?;
        let l_type = if exclusive {
            libc::F_WRLCK
        } else {
            libc::F_RDLCK
        };
        if !set_lock(&ofd, role.lock_offset(), l_type)? {
            return Ok(None);
        }
        for i in 0..layout::ATTACH_SLOTS {
            let off = layout::attach_record_offset(i);
            if set_lock(&ofd, off, libc::F_WRLCK)? {
                if reusable(i) {
                    let slot = fork::register(ofd.as_raw_fd())?;
                    return Ok(Some(Attachment {
                        ofd,
                        record: i,
                        generation: fork::generation(),
                        slot,
                    }));
                }
                unlock(&ofd, off)?;
            }
        }
        Err(Error::TooManyAttachments {
            max: layout::ATTACH_SLOTS as u32,
        })
    }

    /// Whether some other open file description holds `peer`'s lock (any
    /// holder, exclusive or shared), asked through ours.
    pub fn is_held(&self, peer: Role) -> bool {
        is_held(self.ofd.as_fd(), peer.lock_offset()).unwrap_or(true)
    }

    /// Our record in the attachment table.
    pub fn record(&self) -> u64 {
        self.record
    }

    /// Whether this attachment was inherited across `fork`: its descriptor
    /// is inert in this process, and the role is not ours.
    #[inline]
    pub fn is_inherited(&self) -> bool {
        self.generation != fork::generation()
    }
}

impl Drop for Attachment {
    fn drop(&mut self) {
        // The descriptor itself closes with `ofd` (in a fork child: the
        // `/dev/null` duplicate that took its place).
        fork::unregister(self.slot);
    }
}

/// The registry of role descriptors and the fork generation.
mod fork {
    use std::os::fd::RawFd;
    use std::sync::Once;
    use std::sync::atomic::Ordering::{Relaxed, SeqCst};
    use std::sync::atomic::{AtomicI32, AtomicU64};

    use crate::error::Error;

    /// Role descriptors a process can hold at once (all rings together).
    const SLOTS: usize = 4096;

    #[allow(clippy::declare_interior_mutable_const)]
    const FREE: AtomicI32 = AtomicI32::new(-1);
    static FDS: [AtomicI32; SLOTS] = [FREE; SLOTS];
    static GENERATION: AtomicU64 = AtomicU64::new(0);
    static HOOK: Once = Once::new();

    /// The current fork generation of this process.
    #[inline]
    pub fn generation() -> u64 {
        // ORDERING: Relaxed; written only by the child hook, which runs
        // before any other code of the child (it has one thread then).
        GENERATION.load(Relaxed)
    }

    /// Installs the child hook, once per process.
    pub fn install_hook() {
        HOOK.call_once(|| {
            // SAFETY: `child` is an `extern "C" fn()` that makes only
            // async-signal-safe calls (open, dup2, close) and atomic stores,
            // as a fork child of a threaded process requires.
            unsafe { libc::pthread_atfork(None, None, Some(child)) };
        });
    }

    /// Records `fd` as a role descriptor; installs the child hook once.
    pub fn register(fd: RawFd) -> Result<usize, Error> {
        install_hook();
        for (i, slot) in FDS.iter().enumerate() {
            // ORDERING: SeqCst; pairs with the hook's loads (a fork after
            // this store sees the descriptor).
            if slot.compare_exchange(-1, fd, SeqCst, Relaxed).is_ok() {
                return Ok(i);
            }
        }
        Err(Error::TooManyAttachments { max: SLOTS as u32 })
    }

    /// Forgets slot `i`.
    pub fn unregister(i: usize) {
        // ORDERING: SeqCst, as in `register`.
        FDS[i].store(-1, SeqCst);
    }

    /// The `pthread_atfork` child hook: every inherited role descriptor
    /// becomes `/dev/null`, and handles made before the fork see a new
    /// generation.
    extern "C" fn child() {
        // SAFETY: a NUL-terminated path; `open` is async-signal-safe.
        let null = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        for slot in FDS.iter() {
            // ORDERING: SeqCst, as in `register`.
            let fd = slot.load(SeqCst);
            if fd >= 0 && null >= 0 {
                // SAFETY: `dup2` is async-signal-safe; `fd` is a descriptor
                // this process inherited (the registry holds open ones
                // only), and replacing it keeps its number taken.
                unsafe { libc::dup2(null, fd) };
            }
        }
        if null >= 0 {
            // SAFETY: our own descriptor from `open` above.
            unsafe { libc::close(null) };
        }
        // ORDERING: SeqCst; the child's only thread reads it afterwards.
        GENERATION.fetch_add(1, SeqCst);
        // The kernel barrier registration may not have survived the fork.
        crate::barrier::forked();
    }
}

/// Installs the fork child hook (once per process): it also resets the
/// kernel barrier registration (`barrier.rs`).
pub(crate) fn install_fork_hook() {
    fork::install_hook();
}

/// Whether any open file description other than the one behind `fd` holds
/// a lock on the byte at `offset`. Errors of the query itself are
/// reported, so a caller can decide how to treat "unknown".
pub(crate) fn is_held(fd: BorrowedFd<'_>, offset: u64) -> Result<bool, Error> {
    let mut fl = flock(libc::F_WRLCK, offset);
    // SAFETY: `fd` is open for the duration of the call; `fl` is a valid
    // `struct flock` the kernel overwrites with the conflicting lock, if any.
    let rc = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_GETLK, &mut fl) };
    if rc != 0 {
        return Err(Error::Io {
            op: "query the ring role lock",
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Takes a lock of `l_type` on the byte at `offset` without waiting;
/// `Ok(false)` if a conflicting lock is held elsewhere.
fn set_lock(ofd: &File, offset: u64, l_type: libc::c_int) -> Result<bool, Error> {
    let mut fl = flock(l_type, offset);
    // SAFETY: `ofd` is an open fd for the duration of the call and `fl`
    // is a valid, initialised `struct flock` that outlives it.
    let rc = unsafe { libc::fcntl(ofd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
    if rc == 0 {
        return Ok(true);
    }
    let err = std::io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(Error::Io {
            op: "lock the ring role",
            source: err,
        }),
    }
}

/// Drops our lock on the byte at `offset`.
fn unlock(ofd: &File, offset: u64) -> Result<(), Error> {
    set_lock(ofd, offset, libc::F_UNLCK).map(|_| ())
}

/// A fresh open file description of the same file as `fd`.
pub(crate) fn reopen(fd: BorrowedFd<'_>) -> Result<File, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map_err(Error::io("re-open the ring for its role lock"))
}

fn flock(l_type: libc::c_int, offset: u64) -> libc::flock {
    // SAFETY: `struct flock` is plain old data; all-zero is a valid value
    // (and F_OFD_* requires l_pid to be 0).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = offset as libc::off_t;
    fl.l_len = 1;
    fl
}
