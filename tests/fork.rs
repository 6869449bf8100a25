//! An anonymous (memfd) ring shared with a child across `fork`, for every
//! flavour.
//!
//! In its own test binary with a single test, so the process that forks has
//! no other test threads that could hold locks across the fork.

mod common;

use common::model::TestFlavour;
use common::{check_frame, fill_frame, for_every_flavour, frame_len};
use mmring::{Config, Kind};

const MAX: usize = 512;

fn across_fork<P: TestFlavour>(kind: Kind, n: u64) {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(256, MAX as u64),
        _ => Config::new(1 << 16).max_frame(MAX as u64),
    };
    let ring = P::anonymous(kind, cfg).unwrap();
    // SAFETY: the child only uses the ring (already mapped) and then
    // `_exit`s; it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: the producer. Roles are claimed after the fork, so the
        // child's role lock is its own.
        // (The child exits right after: nothing observes broken state.)
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut tx = ring.producer().unwrap();
            for seq in 0..n {
                let mut g = tx.reserve(frame_len(seq, MAX)).unwrap();
                fill_frame(seq, &mut g);
                g.commit();
            }
        }))
        .map_or(1, |_| 0);
        // SAFETY: ending the child without running the parent's atexit
        // handlers or test harness.
        unsafe { libc::_exit(code) };
    }
    let mut rx = ring.consumer().unwrap();
    for seq in 0..n {
        let frame = rx.recv().unwrap();
        check_frame(seq, &frame, MAX).unwrap();
    }
    // After the child exits, an empty ring reports the producer gone.
    assert_eq!(rx.recv().unwrap_err(), mmring::RecvError::Disconnected);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
}

/// A consumer in a fork child waits on its descriptor (`notify_fd`, an
/// epoll-style wait) for messages the parent publishes with pauses between
/// them: each one wakes it (a poll that times out instead fails the child).
fn descriptor_across_fork() {
    let ring = mmring::spsc::Ring::anonymous(Config::new(4096)).unwrap();
    // SAFETY: as in `across_fork`.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut rx = ring.consumer().unwrap();
            let mut got = 0u8;
            while got < 3 {
                while let Ok(m) = rx.try_recv() {
                    assert_eq!(&*m, &[got]);
                    got += 1;
                }
                if got == 3 || rx.arm().unwrap() {
                    continue;
                }
                let fd = rx.notify_fd().unwrap();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                let t = rustix::event::Timespec {
                    tv_sec: 5,
                    tv_nsec: 0,
                };
                assert_eq!(
                    rustix::event::poll(&mut fds, Some(&t)).unwrap(),
                    1,
                    "no wake-up"
                );
                rx.clear_notify();
            }
        }))
        .map_or(1, |_| 0);
        // SAFETY: as in `across_fork`.
        unsafe { libc::_exit(code) };
    }
    let mut tx = ring.producer().unwrap();
    for i in 0..3u8 {
        std::thread::sleep(std::time::Duration::from_millis(50));
        tx.send(&[i]).unwrap();
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "the child's descriptor wait failed ({status:#x})"
    );
}

#[test]
fn anonymous_ring_across_fork() {
    across_fork::<mmring::spsc::Spsc>(Kind::Spsc, 1_000_000);
    for_every_flavour!(across_fork, 100_000);
    descriptor_across_fork();
}
