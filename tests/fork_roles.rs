//! Roles across `fork`: a child never holds its parent's roles. An inherited
//! `Producer` or `Consumer` is refused in the child (`Forked`) and dropping
//! it there leaves the parent's role alone; the inherited `Ring` stays
//! usable, so the child claims roles of its own; and a forked helper that
//! never touches the ring does not keep a killed holder's role alive.
//!
//! One test per binary: the process that forks must have no other test
//! threads that could hold locks across the fork.

mod common;

use std::time::Duration;

use common::*;
use mmring::{Config, PeerState, RecvError, SendError, mpsc, spsc};

#[test]
fn roles_across_fork() {
    inherited_handles_are_refused_and_the_ring_is_shared();
    a_forked_helper_does_not_keep_a_killed_holder_alive();
}

fn inherited_handles_are_refused_and_the_ring_is_shared() {
    let ring = mpsc::Ring::anonymous(Config::new(1 << 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"parent-1").unwrap();
    // SAFETY: the child only uses the ring and its handles, then `_exit`s;
    // it never returns into the test harness.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            // The parent's handles are refused here...
            assert_eq!(tx.try_send(b"x"), Err(SendError::Forked));
            assert_eq!(tx.send(b"x"), Err(SendError::Forked));
            assert_eq!(rx.try_recv().unwrap_err(), RecvError::Forked);
            assert_eq!(rx.recv().unwrap_err(), RecvError::Forked);
            // ...and dropping them does not detach the parent.
            drop(tx);
            drop(rx);
            // The inherited ring takes roles of the child's own.
            let mut own = ring.producer().unwrap();
            own.send(b"child").unwrap();
        }))
        .map_or(1, |_| 0);
        // SAFETY: ending the child without running the test harness.
        unsafe { libc::_exit(code) };
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    assert_eq!(unsafe { libc::waitpid(pid, &mut status, 0) }, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "child failed: {status:#x}"
    );
    assert_eq!(&*rx.recv().unwrap(), b"parent-1");
    assert_eq!(&*rx.recv().unwrap(), b"child");
    // The parent's handles still hold their roles and work.
    tx.send(b"parent-2").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"parent-2");
    let st = ring.stat();
    let me = std::process::id();
    assert!(
        st.producer.holders.iter().any(|h| h.pid == me && h.alive),
        "{st:?}"
    );
    assert!(st.consumer.holders.iter().any(|h| h.pid == me && h.alive));
}

fn a_forked_helper_does_not_keep_a_killed_holder_alive() {
    let path = temp_path("fork-holder");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, Config::new(1 << 16)).unwrap();
    let mut holder = spawn_peer("holder", &[("MMRING_PATH", path.display().to_string())]);
    let helper: i32 = holder.expect("HOLDING").parse().unwrap();
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.producer_state(), PeerState::Alive);
    holder.kill9();
    // The helper lives on (it sleeps for a minute) with the descriptors it
    // inherited: the producer role must still read as dead.
    let r = rx.recv_timeout(Duration::from_secs(20));
    // SAFETY: signalling the helper we were told about; it is ours to end.
    unsafe { libc::kill(helper, libc::SIGKILL) };
    assert_eq!(r.unwrap_err(), RecvError::Disconnected);
    assert_eq!(rx.producer_state(), PeerState::Died);
    // And the role is free for a new producer.
    let _tx = ring.producer().unwrap();
}

#[test]
#[ignore = "run as a peer process by the tests above"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let path: String = var("MMRING_PATH");
    assert_eq!(role, "holder");
    let ring = spsc::Ring::open(&path).unwrap();
    let _tx = ring.producer().unwrap();
    // SAFETY: the child sleeps, then `_exit`s; it never touches the ring
    // or returns into the harness.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        std::thread::sleep(Duration::from_secs(60));
        // SAFETY: ending the helper.
        unsafe { libc::_exit(0) };
    }
    say(format!("HOLDING {pid}"));
    std::thread::sleep(Duration::from_secs(120));
}
