//! Role ownership and peer liveness through open-file-description locks.
//!
//! Each role (producer, consumer) owns one byte of the ring file: the first
//! byte of its role record. Claiming the role takes a write lock on that byte
//! with `F_OFD_SETLK` through a private open file description, and the
//! kernel drops the lock when that description is closed, which happens
//! when the holder drops its handle *or dies*, `kill -9` included. Whether a
//! peer is alive is asked with `F_OFD_GETLK`. No pid, timestamp or heartbeat
//! is involved, so pid reuse cannot fool it.
//!
//! Every handle opens its own description by re-opening
//! `/proc/self/fd/<ring fd>`, which works for named files and memfds alike
//! and keeps two handles in one process (or a process and its `fork` child
//! that claims its roles after the fork) from sharing a lock.

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use crate::error::Error;
use crate::layout::Role;

/// A held role: the open file description carrying the lock. Dropping it
/// closes the description, which releases the lock.
#[derive(Debug)]
pub(crate) struct RoleLock {
    ofd: File,
    role: Role,
}

impl RoleLock {
    /// Tries to take `role`'s lock on the ring behind `ring_fd`. `Ok(None)`
    /// means a live holder has it.
    pub fn try_claim(ring_fd: BorrowedFd<'_>, role: Role) -> Result<Option<RoleLock>, Error> {
        let ofd = reopen(ring_fd)?;
        let mut fl = flock(libc::F_WRLCK as libc::c_short, role);
        // SAFETY: `ofd` is an open fd for the duration of the call and `fl`
        // is a valid, initialised `struct flock` that outlives it.
        let rc = unsafe { libc::fcntl(ofd.as_raw_fd(), libc::F_OFD_SETLK, &mut fl) };
        if rc == 0 {
            return Ok(Some(RoleLock { ofd, role }));
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
            _ => Err(Error::Io {
                op: "lock the ring role",
                source: err,
            }),
        }
    }

    /// Whether some other open file description holds `peer`'s lock, asked
    /// through ours.
    pub fn is_held(&self, peer: Role) -> bool {
        is_held(self.ofd.as_fd(), peer).unwrap_or(true)
    }

    /// The role this lock holds.
    #[allow(dead_code)]
    pub fn role(&self) -> Role {
        self.role
    }
}

/// Whether any open file description other than the one behind `fd` holds
/// `role`'s lock. Errors of the query itself are reported, so a caller can
/// decide how to treat "unknown".
pub(crate) fn is_held(fd: BorrowedFd<'_>, role: Role) -> Result<bool, Error> {
    let mut fl = flock(libc::F_WRLCK as libc::c_short, role);
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

fn flock(l_type: libc::c_short, role: Role) -> libc::flock {
    // SAFETY: `struct flock` is plain old data; all-zero is a valid value
    // (and F_OFD_* requires l_pid to be 0).
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = l_type;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = role.lock_offset() as libc::off_t;
    fl.l_len = 1;
    fl
}
