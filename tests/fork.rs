//! An anonymous (memfd) ring shared with a child across `fork`.
//!
//! In its own test binary with a single test, so the process that forks has
//! no other test threads that could hold locks across the fork.

mod common;

use common::{check_frame, fill_frame, frame_len};
use mmring::{Config, spsc};

#[test]
fn anonymous_ring_across_fork() {
    const N: u64 = 1_000_000;
    const MAX: usize = 512;
    let ring = spsc::Ring::anonymous(Config::new(1 << 16).max_frame(MAX as u64)).unwrap();
    // SAFETY: the child only uses the ring (already mapped) and then
    // `_exit`s; it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // Child: the producer. Roles are claimed after the fork, so the
        // child's role lock is its own.
        let code = std::panic::catch_unwind(|| {
            let mut tx = ring.producer().unwrap();
            for seq in 0..N {
                let mut g = tx.reserve(frame_len(seq, MAX)).unwrap();
                fill_frame(seq, &mut g);
                g.commit();
            }
        })
        .map_or(1, |_| 0);
        // SAFETY: ending the child without running the parent's atexit
        // handlers or test harness.
        unsafe { libc::_exit(code) };
    }
    let mut rx = ring.consumer().unwrap();
    for seq in 0..N {
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
