//! Lazy release (`Consumer::set_release_every`): `head` moves every k
//! messages (or a quarter of the ring), and always when the consumer finds
//! the ring empty, sleeps or is dropped; a killed lazy consumer's successor
//! receives again at most the unreleased messages; request/response over
//! two small rings with lazy consumers on both never stalls.

mod common;

use std::time::Duration;

use common::{TempFile, say, spawn_peer, temp_path, var, wait_for_parent};
use mmring::{AnyRing, Config, Kind, RecvError};

/// The peers. `lazy-reader`: receives `MMRING_COUNT` frames from
/// `MMRING_PATH` releasing every `MMRING_EVERY`, reports each, and waits
/// to be killed. `echo`: answers each request of ring `MMRING_REQ` on ring
/// `MMRING_RESP`, lazily releasing every `MMRING_EVERY`, until the
/// requests end.
#[test]
#[ignore]
fn peer() {
    let role: String = var("MMRING_PEER");
    let every: u32 = var("MMRING_EVERY");
    match role.as_str() {
        "lazy-reader" => {
            let ring = AnyRing::open(var::<String>("MMRING_PATH")).unwrap();
            let mut rx = ring.consumer().unwrap();
            assert!(rx.set_release_every(every));
            for _ in 0..var::<usize>("MMRING_COUNT") {
                let g = rx.try_recv().unwrap();
                say(format!("got {}", g[0]));
            }
            say("ready");
            wait_for_parent();
        }
        "echo" => {
            let req = AnyRing::open(var::<String>("MMRING_REQ")).unwrap();
            let resp = AnyRing::open(var::<String>("MMRING_RESP")).unwrap();
            let mut rx = req.consumer().unwrap();
            let mut tx = resp.producer().unwrap();
            assert!(rx.set_release_every(every));
            say("ready");
            loop {
                let msg = match rx.recv_timeout(Duration::from_secs(30)) {
                    Ok(g) => g.to_vec(),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("echo: {e}"),
                };
                tx.send(&msg).unwrap();
            }
        }
        r => panic!("unknown peer {r}"),
    }
}

#[test]
fn head_moves_every_k_frames_and_when_empty() {
    for kind in [Kind::Spsc, Kind::Mpsc] {
        let ring = AnyRing::anonymous(kind, Config::new(1 << 16)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        assert!(rx.set_release_every(4));
        for i in 0..10u8 {
            tx.send(&[i; 8]).unwrap();
        }
        // 16-byte frames: the head moves after the 4th and the 8th.
        let mut heads = Vec::new();
        for i in 0..9u8 {
            assert_eq!(rx.try_recv().unwrap()[0], i);
            heads.push(ring.stat().head);
        }
        assert_eq!(heads, [0, 0, 0, 64, 64, 64, 64, 128, 128], "{kind:?}");
        assert_eq!(ring.stat().released_frames, 8, "{kind:?}");
        // The 10th, then empty: everything is handed back.
        assert_eq!(rx.try_recv().unwrap()[0], 9);
        assert_eq!(ring.stat().head, 128, "{kind:?}");
        assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
        assert_eq!(ring.stat().head, 160, "{kind:?}");
        assert_eq!(ring.stat().released_frames, 10, "{kind:?}");
    }
}

#[test]
fn a_quarter_of_the_ring_is_handed_back_whatever_the_count() {
    let ring = mmring::spsc::Ring::anonymous(Config::new(1024)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(rx.set_release_every(1000));
    for i in 0..8u8 {
        tx.send(&[i; 56]).unwrap(); // 64-byte frames
    }
    for _ in 0..3 {
        drop(rx.try_recv().unwrap());
    }
    assert_eq!(ring.stat().head, 0);
    drop(rx.try_recv().unwrap()); // 256 bytes: a quarter of 1024
    assert_eq!(ring.stat().head, 256);
}

#[test]
fn blocking_and_batch_receives_hand_back_before_sleeping() {
    // A producer that waits for space in a ring a lazy consumer has read
    // to the end: the consumer hands it back before it sleeps, so both
    // make progress (a consumer that slept holding it would stall both).
    let ring = mmring::spsc::Ring::anonymous(Config::new(256)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(rx.set_release_every(1 << 20));
    let n = 20_000u32;
    let t = std::thread::spawn(move || {
        for i in 0..n {
            tx.send(&i.to_le_bytes()).unwrap();
        }
    });
    let mut next = 0u32;
    while next < n {
        if next % 2 == 0 {
            let g = rx.recv_timeout(Duration::from_secs(10)).unwrap();
            assert_eq!(u32::from_le_bytes(g[..4].try_into().unwrap()), next);
            next += 1;
        } else {
            rx.recv_batch_timeout(7, Duration::from_secs(10), |f| {
                assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()), next);
                next += 1;
            })
            .unwrap();
        }
    }
    t.join().unwrap();
}

#[test]
fn drop_hands_back_everything() {
    let ring = mmring::mpsc::Ring::anonymous(Config::new(4096)).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..5u8 {
        tx.send(&[i]).unwrap();
    }
    let mut rx = ring.consumer().unwrap();
    assert!(rx.set_release_every(64));
    for i in 0..3u8 {
        assert_eq!(rx.try_recv().unwrap()[0], i);
    }
    assert_eq!(ring.stat().head, 0);
    drop(rx);
    assert_eq!(ring.stat().head, 48);
    // The next consumer starts after what the first received: nothing twice.
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.try_recv().unwrap()[0], 3);
}

#[test]
fn mpmc_consumers_release_each_slot() {
    let ring = mmring::mpmc::Ring::anonymous(Config::slots(8, 64)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(!rx.set_release_every(16));
    tx.send(b"x").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"x");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
}

/// kill -9 of a lazy consumer: its successor receives again exactly the
/// messages received since the last hand-back (at most k), then the rest;
/// nothing is lost.
#[test]
fn a_killed_lazy_consumer_is_redelivered_at_most_k() {
    for kind in [Kind::Spsc, Kind::Mpsc] {
        let path = temp_path("lazy");
        let _f = TempFile(path.clone());
        let ring = AnyRing::create(&path, kind, Config::new(1 << 16)).unwrap();
        let mut tx = ring.producer().unwrap();
        for i in 0..100u8 {
            tx.send(&vec![i; 1 + i as usize % 40]).unwrap();
        }
        let k = 16;
        let env = [
            ("MMRING_PATH", path.display().to_string()),
            ("MMRING_EVERY", k.to_string()),
            ("MMRING_COUNT", "40".to_string()),
        ];
        let mut peer = spawn_peer("lazy-reader", &env);
        for i in 0..40u8 {
            assert_eq!(peer.expect("got"), i.to_string());
        }
        peer.expect("ready");
        peer.kill9();
        let mut rx = ring.consumer().unwrap();
        // Handed back after 16 and 32: 32..40 come again, then the rest.
        for i in 32..100u8 {
            let g = rx.try_recv().unwrap();
            assert_eq!(g[0], i, "{kind:?}");
            assert_eq!(g.len(), 1 + i as usize % 40, "{kind:?}");
        }
        assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
        assert!(40 - 32 <= k);
    }
}

/// Request/response over two small rings, lazy consumers on both ends
/// (the client's on the responses, the echo's on the requests), one
/// request at a time and in bursts: never a stall (each side hands its
/// space back before it waits for the other).
#[test]
fn request_response_over_two_small_rings_never_stalls() {
    for kind in [Kind::Spsc, Kind::Mpsc] {
        let (pq, pr) = (temp_path("lazy-req"), temp_path("lazy-resp"));
        let (_fq, _fr) = (TempFile(pq.clone()), TempFile(pr.clone()));
        let req = AnyRing::create(&pq, kind, Config::new(512)).unwrap();
        let resp = AnyRing::create(&pr, kind, Config::new(512)).unwrap();
        let env = [
            ("MMRING_REQ", pq.display().to_string()),
            ("MMRING_RESP", pr.display().to_string()),
            ("MMRING_EVERY", "64".to_string()),
        ];
        let mut peer = spawn_peer("echo", &env);
        peer.expect("ready");
        let mut tx = req.producer().unwrap();
        let mut rx = resp.consumer().unwrap();
        assert!(rx.set_release_every(64));
        let mut n = 0u64;
        for round in 0..4_000u64 {
            let burst = 1 + round % 8;
            for _ in 0..burst {
                tx.send(&n.to_le_bytes()).unwrap();
                n += 1;
            }
            for j in (0..burst).rev() {
                let g = rx
                    .recv_timeout(Duration::from_secs(10))
                    .unwrap_or_else(|e| panic!("{kind:?}: round {round}: {e}"));
                assert_eq!(u64::from_le_bytes(g[..8].try_into().unwrap()), n - 1 - j);
            }
        }
        drop(tx);
        assert!(
            peer.child.wait().unwrap().success(),
            "{kind:?}: echo failed"
        );
    }
}
