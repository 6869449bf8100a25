//! Waiting in an event loop: the notifier descriptor of a consumer wakes an
//! epoll loop in another, unrelated process (named rings, nothing passed
//! but the file names), and the descriptor API's contract in one process.

mod common;
// The example itself, run as a peer process of this test binary (so the
// test does not depend on examples being built, as under `--tests`).
#[path = "../examples/waitset.rs"]
mod waitset;

use std::time::Duration;

use common::*;
use mmring::{AnyRing, Config, Kind, RecvError, spsc};

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    // The waitset example, with its arguments in `MMRING_ARGS`.
    if std::env::var("MMRING_PEER").as_deref() == Ok("waitset") {
        let args: String = var("MMRING_ARGS");
        waitset::run(args.split('\n').map(String::from).collect()).unwrap();
        return;
    }
    // A producer: sends `MMRING_LINES` text lines `MMRING_TAG-<i>` to the
    // ring at `MMRING_PATH`, one each time the parent says "go".
    let path: String = var("MMRING_PATH");
    let tag: String = var("MMRING_TAG");
    let lines: u32 = var("MMRING_LINES");
    let ring = AnyRing::open(&path).unwrap();
    let mut tx = ring.producer().unwrap();
    say("ready");
    for i in 0..lines {
        assert_eq!(wait_for_parent(), "go");
        tx.send(format!("{tag}-{i}").as_bytes()).unwrap();
        say("sent");
    }
}

/// `examples/waitset.rs` in its own process waits on three rings with
/// epoll; three producer processes publish to them one message at a time,
/// in an order that makes every ring the one that wakes the loop. Every
/// message is printed, under its ring's index, and the loop sleeps between
/// them (it would spin otherwise: each message is sent only after the
/// previous one was printed).
#[test]
fn an_epoll_loop_in_another_process_is_woken_by_each_ring() {
    let files: Vec<TempFile> = (0..3)
        .map(|i| TempFile(temp_path(&format!("ws{i}"))))
        .collect();
    for (i, f) in files.iter().enumerate() {
        let kind = [Kind::Spsc, Kind::Mpsc, Kind::Mpsc][i];
        AnyRing::create(&f.0, kind, Config::new(1 << 14)).unwrap();
    }
    let order = [0usize, 2, 1, 1, 0, 2, 2, 0, 1];
    let per_ring = 3;
    let args: Vec<String> = ["--count".to_string(), order.len().to_string()]
        .into_iter()
        .chain(files.iter().map(|f| f.0.display().to_string()))
        .collect();
    let mut waitset = spawn_peer("waitset", &[("MMRING_ARGS", args.join("\n"))]);
    let mut producers: Vec<Peer> = files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            spawn_peer(
                "producer",
                &[
                    ("MMRING_PATH", f.0.display().to_string()),
                    ("MMRING_TAG", format!("r{i}")),
                    ("MMRING_LINES", per_ring.to_string()),
                ],
            )
        })
        .collect();
    for p in &mut producers {
        p.expect("ready");
    }
    let mut sent = [0u32; 3];
    for &r in &order {
        // Give the loop time to arm and fall asleep first.
        std::thread::sleep(Duration::from_millis(20));
        producers[r].send_line("go");
        producers[r].expect("sent");
        let line = waitset.raw_line().expect("waitset printed a line");
        assert_eq!(line, format!("{r}: r{r}-{}", sent[r]));
        sent[r] += 1;
    }
    for p in producers {
        p.join();
    }
    waitset.join();
}

/// The descriptor contract, in one process: `arm` re-checks (a message
/// already there means "do not sleep"); while armed, a publish makes the
/// descriptor readable; `clear_notify` reads it empty again and credits our
/// own (attached) pid; after `disarm`, publishes no longer signal it.
#[test]
fn arm_signal_clear_disarm() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let readable = |rx: &mut spsc::Consumer| {
        let fd = rx.notify_fd().unwrap();
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let zero = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut fds, Some(&zero)).unwrap() == 1
    };
    assert!(!readable(&mut rx));
    tx.send(b"early").unwrap();
    assert!(rx.arm().unwrap(), "a waiting message: do not sleep");
    assert_eq!(&*rx.try_recv().unwrap(), b"early");
    assert!(!rx.arm().unwrap(), "empty: sleep");
    assert!(!readable(&mut rx));
    tx.send(b"one").unwrap();
    assert!(readable(&mut rx), "a publish signals an armed consumer");
    assert!(rx.clear_notify(), "from an attached process");
    assert!(!readable(&mut rx));
    assert_eq!(&*rx.try_recv().unwrap(), b"one");
    rx.disarm();
    tx.send(b"two").unwrap();
    assert!(!readable(&mut rx), "disarmed: no signal");
    assert_eq!(&*rx.try_recv().unwrap(), b"two");
    assert_eq!(rx.try_recv().err(), Some(RecvError::Empty));
}

/// A producer waiting for room: the descriptor fires when the consumer
/// releases space.
#[test]
fn a_producer_is_signalled_when_room_is_freed() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    while tx.try_send(&[7u8; 500]).is_ok() {}
    while tx.try_send(&[]).is_ok() {}
    assert!(!tx.arm().unwrap(), "full: sleep");
    let fd = rustix::io::dup(tx.notify_fd().unwrap()).unwrap();
    let poll_in = |ms: i64| {
        let mut fds = [rustix::event::PollFd::new(
            &fd,
            rustix::event::PollFlags::IN,
        )];
        let t = rustix::event::Timespec {
            tv_sec: 0,
            tv_nsec: ms * 1_000_000,
        };
        rustix::event::poll(&mut fds, Some(&t)).unwrap() == 1
    };
    assert!(!poll_in(0));
    drop(rx.try_recv().unwrap());
    assert!(poll_in(0), "a release signals an armed producer");
    assert!(tx.clear_notify());
    tx.disarm();
    // (512 bytes freed; after the padding to the end, a 400-byte message
    // and the 8 bytes spsc keeps free fit in them)
    assert!(tx.try_send(&[7u8; 400]).is_ok());
}
