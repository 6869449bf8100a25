//! Async waits on tokio (feature `tokio`; `cargo test --features tokio`).
//!
//! Eight rings fed by eight producer processes, one task per ring, all on a
//! single-threaded runtime: every frame arrives, checked, and since one
//! thread runs all eight tasks, none of them ever blocked it in a futex.
//! `select!` between a ring and a timer; cancellation in the middle of
//! `recv_async` loses nothing and leaves no registration; a killed producer
//! ends an async wait; a killed async waiter stops costing the producer.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mmring::{Config, RecvError, spsc};

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let path: String = var("MMRING_PATH");
    let role: String = var("MMRING_PEER");
    let ring = spsc::Ring::open(&path).unwrap();
    match role.as_str() {
        // Sends `MMRING_COUNT` self-checking frames (blocking) after "go".
        "producer" => {
            let count: u64 = var("MMRING_COUNT");
            let mut tx = ring.producer().unwrap();
            say("ready");
            assert_eq!(wait_for_parent(), "go");
            let mut buf = vec![0u8; MAX];
            for seq in 0..count {
                let len = frame_len(seq, MAX);
                fill_frame(seq, &mut buf[..len]);
                tx.send(&buf[..len]).unwrap();
            }
            say("done");
        }
        // Attaches, says so, then waits in `recv_async` for ever.
        "async-consumer" => {
            let mut rx = ring.consumer().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            say("waiting");
            let r = rt.block_on(async { rx.recv_async().await.map(|g| g.len()) });
            say(format!("returned {r:?}"));
        }
        "idle-producer" => {
            let _tx = ring.producer().unwrap();
            say("ready");
            wait_for_parent();
        }
        other => panic!("unknown role {other}"),
    }
}

const MAX: usize = 256;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The sleeper bitmap of consumers (`data_sleepers`, header offset 272)
/// of a ring file: 0 when no consumer is registered as waiting.
fn data_sleepers(path: &Path) -> u128 {
    let bytes = std::fs::read(path).unwrap();
    u128::from_ne_bytes(bytes[272..288].try_into().unwrap())
}

/// 8 rings, 8 producer processes, 1,000,000 frames in all (scale with
/// `MMRING_ASYNC_FRAMES`), one task per ring on one thread.
#[test]
fn eight_rings_eight_producer_processes_one_thread() {
    let total: u64 = std::env::var("MMRING_ASYNC_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let per = total / 8;
    let files: Vec<TempFile> = (0..8)
        .map(|i| TempFile(temp_path(&format!("async{i}"))))
        .collect();
    let rings: Vec<spsc::Ring> = files
        .iter()
        .map(|f| spsc::Ring::create(&f.0, Config::new(1 << 16).max_frame(MAX as u64)).unwrap())
        .collect();
    let mut peers: Vec<Peer> = files
        .iter()
        .map(|f| {
            spawn_peer(
                "producer",
                &[
                    ("MMRING_PATH", f.0.display().to_string()),
                    ("MMRING_COUNT", per.to_string()),
                ],
            )
        })
        .collect();
    for p in &mut peers {
        p.expect("ready");
    }
    let counts = runtime().block_on(async {
        let tasks: Vec<_> = rings
            .iter()
            .map(|ring| {
                let mut rx = ring.consumer().unwrap();
                tokio::spawn(async move {
                    let mut seq = 0u64;
                    loop {
                        match rx.recv_async().await {
                            Ok(frame) => {
                                check_frame(seq, &frame, MAX).unwrap();
                                seq += 1;
                            }
                            Err(RecvError::Disconnected) => return seq,
                            Err(e) => panic!("recv_async: {e}"),
                        }
                    }
                })
            })
            .collect();
        for p in &mut peers {
            p.send_line("go");
        }
        let mut counts = Vec::new();
        for t in tasks {
            counts.push(t.await.unwrap());
        }
        counts
    });
    assert_eq!(counts, vec![per; 8]);
    for p in peers {
        p.join();
    }
    for f in &files {
        assert_eq!(data_sleepers(&f.0), 0, "no registration left behind");
    }
}

/// `select!` between a ring and a timer: the timer wins while the ring is
/// empty, the ring wins once a message is sent.
#[test]
fn select_between_a_ring_and_a_timer() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    runtime().block_on(async {
        tokio::select! {
            r = rx.recv_async() => panic!("an empty ring delivered {:?}", r.map(|g| g.len())),
            _ = tokio::time::sleep(Duration::from_millis(30)) => {}
        }
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(b"tick").unwrap();
            tx
        });
        tokio::select! {
            r = rx.recv_async() => assert_eq!(&*r.unwrap(), b"tick"),
            _ = tokio::time::sleep(Duration::from_secs(20)) => panic!("the ring never woke the task"),
        }
        drop(sender.join().unwrap());
    });
}

/// `recv_async` cancelled (by a short timeout) again and again in the middle
/// of its wait while a producer thread streams with pauses: every frame
/// arrives exactly once and in order, some waits were cancelled, and no
/// sleeper bit is left set.
#[test]
fn cancelled_waits_lose_nothing_and_leave_no_registration() {
    let f = TempFile(temp_path("cancel"));
    let ring = spsc::Ring::create(&f.0, Config::new(1 << 14).max_frame(MAX as u64)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let n = 20_000u64;
    let producer = std::thread::spawn(move || {
        let mut buf = vec![0u8; MAX];
        for seq in 0..n {
            let len = frame_len(seq, MAX);
            fill_frame(seq, &mut buf[..len]);
            tx.send(&buf[..len]).unwrap();
            if seq % 500 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
    });
    let (got, cancelled) = runtime().block_on(async {
        let (mut seq, mut cancelled) = (0u64, 0u64);
        loop {
            match tokio::time::timeout(Duration::from_micros(300), rx.recv_async()).await {
                Ok(Ok(frame)) => {
                    check_frame(seq, &frame, MAX).unwrap();
                    seq += 1;
                }
                Ok(Err(RecvError::Disconnected)) => return (seq, cancelled),
                Ok(Err(e)) => panic!("recv_async: {e}"),
                Err(_elapsed) => {
                    cancelled += 1;
                    assert_eq!(data_sleepers(&f.0), 0, "a cancelled wait left its bit");
                }
            }
        }
    });
    producer.join().unwrap();
    assert_eq!(got, n);
    assert!(
        cancelled > 0,
        "no wait was cancelled: the test proved nothing"
    );
    assert_eq!(data_sleepers(&f.0), 0);
}

/// A producer killed with SIGKILL ends a consumer's async wait with
/// `Disconnected` (noticed within the liveness slice; the outer timeout
/// only keeps a broken build from hanging).
#[test]
fn a_killed_producer_ends_an_async_wait() {
    let f = TempFile(temp_path("asyncdead"));
    let ring = spsc::Ring::create(&f.0, Config::new(4096)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut p = spawn_peer(
        "idle-producer",
        &[("MMRING_PATH", f.0.display().to_string())],
    );
    p.expect("ready");
    let r = runtime().block_on(async {
        let wait = rx.recv_async();
        tokio::pin!(wait);
        tokio::select! {
            r = &mut wait => panic!("returned before the kill: {:?}", r.map(|g| g.len())),
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
        p.kill9();
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the dead producer was noticed")
            .map(|g| g.len())
    });
    assert_eq!(r, Err(RecvError::Disconnected));
}

/// A consumer process killed while waiting in `recv_async` leaves its bit
/// set; the producer's wake-ups to its socket fail, and after a bounded
/// number of them the producer clears the dead bit: publishing is back to
/// no system call at all.
#[test]
fn a_killed_async_waiter_stops_costing_the_producer() {
    let f = TempFile(temp_path("asyncwaiter"));
    let ring = spsc::Ring::create(&f.0, Config::new(1 << 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut c = spawn_peer(
        "async-consumer",
        &[("MMRING_PATH", f.0.display().to_string())],
    );
    c.expect("waiting");
    // The waiter is registered once its bit shows.
    let mut spins = 0;
    while data_sleepers(&f.0) == 0 {
        spins += 1;
        assert!(spins < 10_000, "the async waiter never registered");
        std::thread::sleep(Duration::from_millis(1));
    }
    c.kill9();
    assert_ne!(data_sleepers(&f.0), 0, "the dead waiter's bit is still set");
    for i in 0..200u32 {
        tx.try_send(&i.to_le_bytes()).unwrap();
    }
    assert_eq!(
        data_sleepers(&f.0),
        0,
        "the producer reconciled the dead waiter's bit"
    );
}

/// A broadcast subscriber awaits frames (no thread blocked): the publisher,
/// in another thread, publishes with pauses, so the subscriber sleeps on
/// its socket between frames; every frame arrives, in order; a timer wins
/// while nothing is published; the publisher leaving ends the wait.
#[test]
fn broadcast_subscriber_awaits_frames() {
    let ring = mmring::broadcast::Ring::anonymous(Config::new(1 << 14)).unwrap();
    let mut tx = ring.publisher().unwrap();
    let mut rx = ring.subscriber().unwrap();
    runtime().block_on(async {
        tokio::select! {
            r = rx.recv_async() => panic!("nothing was published: {:?}", r.map(|f| f.to_vec())),
            _ = tokio::time::sleep(Duration::from_millis(30)) => {}
        }
        let publisher = std::thread::spawn(move || {
            for i in 0..50u32 {
                std::thread::sleep(Duration::from_millis(2));
                tx.send(&i.to_le_bytes()).unwrap();
            }
        });
        for i in 0..50u32 {
            let f = tokio::time::timeout(Duration::from_secs(20), rx.recv_async())
                .await
                .expect("the publication woke the subscriber")
                .unwrap();
            assert_eq!(&*f, &i.to_le_bytes());
        }
        publisher.join().unwrap();
        let end = tokio::time::timeout(Duration::from_secs(20), rx.recv_async())
            .await
            .expect("the publisher's detach ended the wait");
        assert_eq!(end.map(|f| f.len()), Err(RecvError::Disconnected));
    });
}
