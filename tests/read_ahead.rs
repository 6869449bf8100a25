//! Read-ahead (`Consumer::try_recv_ahead` / `release_to`) and message
//! positions (`ReadGrant::position`): frames read ahead stay in the ring
//! until released, also when the consumer process is killed, and come back
//! with the same positions.

mod common;

use common::{TempFile, say, spawn_peer, temp_path, var, wait_for_parent};
use mmring::{AnyRing, Config, Kind, RecvError};

/// The peer: attaches a consumer to `MMRING_PATH`, reads `MMRING_AHEAD`
/// frames ahead, releases the first `MMRING_RELEASE` of them, reports the
/// positions, and waits to be killed.
#[test]
#[ignore]
fn peer() {
    let role: String = var("MMRING_PEER");
    assert_eq!(role, "ahead");
    let path: String = var("MMRING_PATH");
    let ahead: usize = var("MMRING_AHEAD");
    let release: usize = var("MMRING_RELEASE");
    let ring = AnyRing::open(&path).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut marks = Vec::new();
    for _ in 0..ahead {
        let g = rx.try_recv_ahead().unwrap();
        say(format!("pos {} {}", g.position(), g[0]));
        marks.push(g.end());
    }
    if release > 0 {
        rx.release_to(marks[release - 1]);
    }
    say("ready");
    wait_for_parent();
}

fn positions(kind: Kind) {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(8, 64),
        _ => Config::new(4096),
    };
    let ring = AnyRing::anonymous(kind, cfg).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let mut last = None;
    for lap in 0..40u64 {
        for i in 0..5u8 {
            tx.send(&vec![i; 1 + (lap as usize * 7 + i as usize) % 50])
                .unwrap();
        }
        for _ in 0..5 {
            let p = rx.try_recv().unwrap().position();
            assert!(last.is_none_or(|l| p > l), "{kind:?}: {p} after {last:?}");
            last = Some(p);
        }
    }
    // Past several laps of the ring: positions keep growing.
    match kind {
        Kind::Mpmc => assert_eq!(last, Some(199)),
        _ => assert!(last.unwrap() > 4096, "{last:?}"),
    }
}

#[test]
fn positions_grow_across_laps() {
    for kind in [Kind::Spsc, Kind::Mpsc, Kind::Mpmc] {
        positions(kind);
    }
}

#[test]
fn mpmc_refuses_read_ahead() {
    let ring = mmring::mpmc::Ring::anonymous(Config::slots(8, 64)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.send(b"x").unwrap();
    assert!(!rx.can_read_ahead());
    assert_eq!(rx.try_recv_ahead().unwrap_err(), RecvError::NoReadAhead);
    // The message is still there for an ordinary receive.
    assert_eq!(&*rx.try_recv().unwrap(), b"x");
}

fn holds_until_released(kind: Kind, len: usize) {
    // A ring with room for a handful of `len`-byte frames (56: frames of
    // 64 bytes with their word, which fill an mpsc ring to the last byte,
    // so the frame word one lap past the oldest held frame is that
    // frame's).
    let ring = AnyRing::anonymous(kind, Config::new(1024)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(rx.can_read_ahead());
    let mut sent = 0u8;
    while tx.try_send(&vec![sent; len][..]).is_ok() {
        sent += 1;
    }
    // Read everything ahead: the producer still finds the ring full, even
    // after the consumer found it empty (an empty take releases what it
    // may, which must not be the held frames).
    let mut marks = Vec::new();
    for i in 0..sent {
        let g = rx.try_recv_ahead().unwrap();
        assert_eq!(g[0], i);
        marks.push(g.end());
    }
    assert_eq!(rx.try_recv_ahead().unwrap_err(), RecvError::Empty);
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    assert!(
        tx.try_send(&vec![0; len][..]).is_err(),
        "{kind:?}: held frames were released"
    );
    // Releasing the first two makes room for two, no more.
    rx.release_to(marks[1]);
    assert!(tx.try_send(&vec![100; len][..]).is_ok());
    assert!(tx.try_send(&vec![101; len][..]).is_ok());
    assert!(tx.try_send(&vec![102; len][..]).is_err());
    // A mark at or before what is released does nothing.
    rx.release_to(marks[0]);
    assert!(tx.try_send(&vec![102; len][..]).is_err());
    // Releasing the last one releases all, and ends the hold: ordinary
    // receives release again.
    rx.release_to(*marks.last().unwrap());
    assert_eq!(&*rx.try_recv().unwrap(), &vec![100; len][..]);
    assert_eq!(&*rx.try_recv().unwrap(), &vec![101; len][..]);
    let mut n = 0;
    while tx.try_send(&vec![7; len][..]).is_ok() {
        n += 1;
    }
    assert_eq!(n, sent as usize, "{kind:?}: not all space came back");
}

#[test]
fn read_ahead_holds_space_until_released() {
    for len in [64, 56] {
        holds_until_released(Kind::Mpsc, len);
    }
    // spsc keeps 8 bytes free (its terminator word), so after padding two
    // 64-byte frames no longer fit where two were released: 120-byte
    // frames (128 with their word) need none.
    for len in [120, 56] {
        holds_until_released(Kind::Spsc, len);
    }
    let ring = mmring::spsc::Ring::anonymous(Config::new(1024)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.send(&[1; 64]).unwrap();
    // The typed flavour too, and recv_ahead_timeout.
    let m = rx
        .recv_ahead_timeout(std::time::Duration::from_millis(100))
        .unwrap()
        .end();
    assert_eq!(
        rx.recv_ahead_timeout(std::time::Duration::from_millis(10))
            .unwrap_err(),
        RecvError::Timeout
    );
    rx.release_to(m);
}

/// A consumer process killed with frames read ahead: the frames it did not
/// release are received again by the next consumer, at the same positions,
/// and the released ones are not.
fn killed_reader(kind: Kind) {
    let path = temp_path("ahead");
    let _f = TempFile(path.clone());
    let ring = AnyRing::create(&path, kind, Config::new(1 << 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    for i in 0..10u8 {
        tx.send(&vec![i; 1 + i as usize * 13]).unwrap();
    }
    let env = [
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_AHEAD", "6".to_string()),
        ("MMRING_RELEASE", "2".to_string()),
    ];
    let mut peer = spawn_peer("ahead", &env);
    let mut seen = Vec::new();
    for _ in 0..6 {
        let l = peer.expect("pos");
        let mut it = l.split(' ');
        let pos: u64 = it.next().unwrap().parse().unwrap();
        let first: u8 = it.next().unwrap().parse().unwrap();
        seen.push((pos, first));
    }
    peer.expect("ready");
    peer.kill9();
    let mut rx = ring.consumer().unwrap();
    for (i, &(pos, first)) in seen.iter().enumerate().skip(2) {
        let g = rx.try_recv().unwrap();
        assert_eq!(g[0], first, "{kind:?}: frame {i}");
        assert_eq!(g.position(), pos, "{kind:?}: frame {i}");
    }
    for i in 6..10u8 {
        assert_eq!(rx.try_recv().unwrap()[0], i);
    }
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
}

#[test]
fn frames_read_ahead_survive_kill9() {
    killed_reader(Kind::Spsc);
    killed_reader(Kind::Mpsc);
}

/// `stat().released_frames` counts a frame when it is handed back, also
/// when read-ahead hands frames back a few at a time (with padding at the
/// wrap in between): never the frames still held, never one twice.
#[test]
fn released_frames_counts_what_read_ahead_hands_back() {
    for kind in [Kind::Spsc, Kind::Mpsc] {
        let ring = AnyRing::anonymous(kind, Config::new(1024)).unwrap();
        let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
        let mut released = 0;
        for round in 0..50u64 {
            // Lengths vary so that frames straddle the wrap (padding).
            for i in 0..6u64 {
                tx.send(&vec![i as u8; 1 + ((round * 13 + i * 29) % 90) as usize])
                    .unwrap();
            }
            let marks: Vec<_> = (0..6).map(|_| rx.try_recv_ahead().unwrap().end()).collect();
            assert_eq!(
                ring.stat().released_frames,
                released,
                "{kind:?}, round {round}"
            );
            rx.release_to(marks[1]);
            released += 2;
            assert_eq!(
                ring.stat().released_frames,
                released,
                "{kind:?}, round {round}"
            );
            rx.release_to(marks[4]);
            released += 3;
            assert_eq!(
                ring.stat().released_frames,
                released,
                "{kind:?}, round {round}"
            );
            // An old mark releases nothing more.
            rx.release_to(marks[0]);
            assert_eq!(
                ring.stat().released_frames,
                released,
                "{kind:?}, round {round}"
            );
            rx.release_to(marks[5]);
            released += 1;
            assert_eq!(
                ring.stat().released_frames,
                released,
                "{kind:?}, round {round}"
            );
        }
    }
}
