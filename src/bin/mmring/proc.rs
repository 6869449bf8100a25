//! Process plumbing for `mmring bench`, the one cross-process benchmark
//! harness (the criterion benchmarks run the built binary rather than
//! include this file, except `benches/broadcast.rs`'s comparison with
//! `mmap-sync`, a dev-dependency the binary cannot link, which includes it
//! with `#[path]`): forking workers, a start gate, CPU pinning, the
//! monotonic clock, words shared across fork.

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64};

pub fn now_ns() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

/// A start gate for forked children: they block reading a pipe until the
/// parent closes its write end.
pub struct Gate {
    ready_r: OwnedFd,
    ready_w: Option<OwnedFd>,
    go_r: OwnedFd,
    go_w: Option<OwnedFd>,
}

impl Gate {
    pub fn new() -> Result<Gate, String> {
        let (ready_r, ready_w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (go_r, go_w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        Ok(Gate {
            ready_r,
            ready_w: Some(ready_w),
            go_r,
            go_w: Some(go_w),
        })
    }

    /// In a child: report ready, then wait for the start.
    pub fn child_wait(&mut self) {
        self.go_w = None;
        if let Some(w) = self.ready_w.take() {
            let _ = rustix::io::write(&w, b"r");
        }
        let mut b = [0u8; 1];
        let _ = rustix::io::read(&self.go_r, &mut b);
    }

    /// In the parent: wait until `n` children are ready, then start them
    /// all; returns the start time.
    pub fn open(&mut self, n: usize) -> Result<u64, String> {
        // With our write end closed, a child that dies before reporting
        // ready turns into end-of-file here instead of a hang.
        self.ready_w = None;
        let mut got = 0;
        let mut b = [0u8; 64];
        while got < n {
            match rustix::io::read(&self.ready_r, &mut b) {
                Ok(0) => return Err("a benchmark process exited before starting".into()),
                Ok(k) => got += k,
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(format!("gate: {e}")),
            }
        }
        let t = now_ns();
        self.go_w = None;
        Ok(t)
    }
}

/// Pins the calling process to CPU `i % n` of the CPUs it may use, so that
/// a producer and a consumer do not share a core by the scheduler's whim.
/// Best effort: an error leaves the process unpinned.
pub fn pin(i: usize) {
    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};
    let Ok(allowed) = sched_getaffinity(None) else {
        return;
    };
    let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
        .filter(|&c| allowed.is_set(c))
        .collect();
    if cpus.len() < 2 {
        return;
    }
    let mut set = CpuSet::new();
    set.set(cpus[i % cpus.len()]);
    let _ = sched_setaffinity(None, &set);
}

/// Forks a child that runs `f` and exits with its status.
pub fn fork_child(f: impl FnOnce() -> i32) -> Result<libc::pid_t, String> {
    // SAFETY: the benchmark forks only while it runs one thread (the
    // progress bar starts after the forks; the thread references join their
    // threads before returning), and the child leaves with `_exit`, never
    // returning into the parent's state.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or(101);
            let _ = std::io::stdout().flush();
            // SAFETY: end the child without running the parent's atexit
            // handlers or destructors a second time.
            unsafe { libc::_exit(code) }
        }
        pid => Ok(pid),
    }
}

pub fn wait_child(pid: libc::pid_t) -> Result<(), String> {
    let mut status = 0;
    // SAFETY: waiting for our own child.
    if unsafe { libc::waitpid(pid, &mut status, 0) } != pid {
        return Err(format!("waitpid: {}", std::io::Error::last_os_error()));
    }
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        Err(format!(
            "benchmark process {pid} failed (status {status:#x})"
        ))
    }
}

/// A fresh zeroed page shared with the children forked after this call.
/// Never unmapped: the benchmark maps a handful of these per run.
fn shared_page() -> Result<*mut std::ffi::c_void, String> {
    // SAFETY: a fresh anonymous shared mapping of one page, never unmapped.
    unsafe {
        rustix::mm::mmap_anonymous(
            std::ptr::null_mut(),
            4096,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
        )
    }
    .map_err(|e| format!("mmap: {e}"))
}

/// A counter shared with the children across fork (the consumed-frames
/// counter behind the progress bar; the cache-line floor's turn word).
pub fn shared_counter() -> Result<&'static AtomicU64, String> {
    // SAFETY: page-aligned, zero-initialised, never unmapped (see
    // `shared_page`), so the reference lives for the rest of the process
    // and its children.
    Ok(unsafe { &*shared_page()?.cast::<AtomicU64>() })
}

/// A 32-bit word shared with the children across fork, usable as a futex
/// (the futex floor's turn word).
pub fn shared_futex() -> Result<&'static AtomicU32, String> {
    // SAFETY: as in `shared_counter`.
    Ok(unsafe { &*shared_page()?.cast::<AtomicU32>() })
}

/// Lets the parent run anywhere again after a pinned phase.
pub fn unpin() {
    use rustix::thread::{CpuSet, sched_setaffinity};
    let mut all = CpuSet::new();
    for c in 0..CpuSet::MAX_CPU {
        all.set(c);
    }
    let _ = sched_setaffinity(None, &all);
}
