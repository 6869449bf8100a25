//! The broadcast flavour: the operation model against a log of published
//! frames (proptest), the API's edges, and (in `broadcast_processes.rs`)
//! real processes.

mod common;

use common::bcast::{BOp, Model};
use mmring::{Config, Error, Kind, RecvError, SendError, broadcast};
use proptest::prelude::*;
use std::time::Duration;

fn op() -> impl Strategy<Value = BOp> {
    prop_oneof![
        6 => (any::<u16>(), proptest::option::weighted(0.3, any::<u16>()))
            .prop_map(|(len, grant)| BOp::Publish { len, grant }),
        6 => (0u8..4).prop_map(|sub| BOp::Recv { sub }),
        1 => (0u8..4).prop_map(|sub| BOp::Latest { sub }),
        1 => (0u8..4, any::<bool>()).prop_map(|(sub, oldest)| BOp::Subscribe { sub, oldest }),
        1 => Just(BOp::RestartPublisher),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Every returned frame is the logged one due, intact and in order;
    /// every gap is reported as `Lagged` of exactly its size.
    #[test]
    fn model_against_a_log(cap in prop::sample::select(vec![64u64, 256, 1024]), ops in proptest::collection::vec(op(), 1..300)) {
        let mut m = Model::new(cap);
        for op in &ops {
            m.step(op);
        }
    }
}

/// The model is not vacuous: a long run with a slow reader both delivers
/// frames and reports lags.
#[test]
fn model_sees_frames_and_lags() {
    let mut m = Model::new(256);
    for i in 0..2000u32 {
        m.step(&BOp::Publish {
            len: (i * 7 % 40) as u16,
            grant: (i % 3 == 0).then_some(3),
        });
        m.step(&BOp::Recv { sub: 0 });
        if i % 5 == 0 {
            m.step(&BOp::Recv { sub: 1 });
        }
    }
    for _ in 0..100 {
        m.step(&BOp::Recv { sub: 1 });
    }
    assert!(m.delivered > 2000, "{}", m.delivered);
    assert!(m.lagged > 100, "{}", m.lagged);
}

#[test]
fn handles_are_send_and_static() {
    fn is<T: Send + 'static>() {}
    is::<broadcast::Ring>();
    is::<broadcast::Publisher>();
    is::<broadcast::Subscriber>();
}

#[test]
fn roles_and_limits() {
    let ring = broadcast::Ring::anonymous(Config::new(1024)).unwrap();
    assert_eq!(ring.max_frame(), 1024 / 4 - 16);
    let mut tx = ring.publisher().unwrap();
    assert!(matches!(ring.publisher(), Err(Error::RoleTaken { .. })));
    assert!(matches!(
        tx.send(&[0; 241]),
        Err(SendError::TooLarge { len: 241, max: 240 })
    ));
    let subs: Vec<_> = (0..10).map(|_| ring.subscriber().unwrap()).collect();
    let st = ring.stat();
    assert_eq!(st.kind, Kind::Broadcast);
    assert!(st.producer.alive);
    assert_eq!(st.consumer.holders.iter().filter(|h| h.alive).count(), 10);
    drop(subs);
    assert_eq!(ring.stat().consumer.holders.len(), 0);
    drop(tx);
    assert!(ring.publisher().is_ok());
    assert!(matches!(
        broadcast::Ring::anonymous(Config::new(1024).max_frame(241)),
        Err(Error::InvalidConfig(_))
    ));
}

#[test]
fn other_kinds_refuse_a_broadcast_ring_and_vice_versa() {
    let path = common::temp_path("bcast-kind");
    let _f = common::TempFile(path.clone());
    broadcast::Ring::create(&path, Config::new(4096)).unwrap();
    assert_eq!(mmring::kind_of(&path).unwrap(), Kind::Broadcast);
    assert!(matches!(
        mmring::spsc::Ring::open(&path),
        Err(Error::WrongKind { .. })
    ));
    assert!(matches!(
        mmring::AnyRing::open(&path),
        Err(Error::UnsupportedKind {
            found: Kind::Broadcast
        })
    ));
    let other = common::temp_path("bcast-kind-spsc");
    let _g = common::TempFile(other.clone());
    mmring::spsc::Ring::create(&other, Config::new(4096)).unwrap();
    assert!(matches!(
        broadcast::Ring::open(&other),
        Err(Error::WrongKind { .. })
    ));
    // An older build reads kind 4 as an unknown kind (the check it has
    // for any value it does not know): simulated by a kind it does not
    // know in this build.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[12..16].copy_from_slice(&9u32.to_ne_bytes());
    std::fs::write(&path, &bytes).unwrap();
    assert!(matches!(
        mmring::AnyRing::open(&path),
        Err(Error::UnknownKind { found: 9 })
    ));
}

/// Blocking: a sleeping subscriber is woken by a publish, times out, and
/// is told `Disconnected` once the publisher is gone and it has read
/// everything; a new publisher continues.
#[test]
fn blocking_recv_wakes_times_out_and_disconnects() {
    let ring = broadcast::Ring::anonymous(Config::new(4096)).unwrap();
    let mut rx = ring.subscriber().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvError::Timeout
    );
    let r2 = ring.clone();
    let t = std::thread::spawn(move || {
        let mut tx = r2.publisher().unwrap();
        std::thread::sleep(Duration::from_millis(50));
        tx.send(b"late").unwrap();
        tx.send(b"last").unwrap();
    });
    assert_eq!(&*rx.recv().unwrap(), b"late");
    t.join().unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"last");
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    let mut tx = ring.publisher().unwrap();
    tx.send(b"again").unwrap();
    let f = rx.recv().unwrap();
    assert_eq!((&*f, f.seq()), (&b"again"[..], 2));
}

/// Many subscribers on threads, one publisher: each sees every frame (a
/// large ring) in order.
#[test]
fn threads_each_see_every_frame() {
    let ring = broadcast::Ring::anonymous(Config::new(1 << 22)).unwrap();
    let n = 20_000u64;
    let subs: Vec<_> = (0..3)
        .map(|_| {
            let mut rx = ring.subscriber().unwrap();
            std::thread::spawn(move || {
                let mut got = 0;
                loop {
                    match rx.recv() {
                        Ok(f) => {
                            assert_eq!(f.seq(), got);
                            assert_eq!(
                                f.to_vec(),
                                common::bcast::payload(got, (got % 50) as usize)
                            );
                            got += 1;
                        }
                        Err(RecvError::Disconnected) => return got,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            })
        })
        .collect();
    let mut tx = ring.publisher().unwrap();
    for s in 0..n {
        tx.send(&common::bcast::payload(s, (s % 50) as usize))
            .unwrap();
    }
    drop(tx);
    for s in subs {
        assert_eq!(s.join().unwrap(), n);
    }
}

/// Header positions a peer could have scribbled are checked before use: a
/// `latest` or `oldest` that is not a multiple of 8 is `Corrupt`, never a
/// misaligned atomic access (the fuzz target `ops_broadcast` found one).
#[test]
fn misaligned_header_positions_are_corrupt() {
    use std::os::unix::fs::FileExt;
    let path = common::temp_path("bcast-misaligned");
    let _f = common::TempFile(path.clone());
    let ring = broadcast::Ring::create(&path, Config::new(4096)).unwrap();
    let mut tx = ring.publisher().unwrap();
    for i in 0..10u8 {
        tx.send(&[i; 20]).unwrap();
    }
    drop(tx);
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // `latest` (offset 304) naming position 22.
    file.write_at(&23u64.to_ne_bytes(), 304).unwrap();
    let corrupt = |r: Result<broadcast::Subscriber, Error>| match r {
        Err(Error::Corrupt(mmring::Corruption::MisalignedCursor { cursor })) => cursor,
        other => panic!("{other:?}"),
    };
    assert_eq!(corrupt(ring.subscriber()), 22);
    assert!(matches!(
        ring.publisher(),
        Err(Error::Corrupt(mmring::Corruption::MisalignedCursor {
            cursor: 22
        }))
    ));
    // `oldest` (offset 296) at 13.
    file.write_at(&1u64.to_ne_bytes(), 304).unwrap();
    file.write_at(&13u64.to_ne_bytes(), 296).unwrap();
    assert_eq!(corrupt(ring.subscriber_from_oldest()), 13);
}

/// `latest` returns its last copy again while nothing newer was published,
/// and the newer frame as soon as there is one: also after `try_recv`
/// reused the subscriber's buffer, and across a change of publisher.
#[test]
fn latest_again_is_the_same_frame_until_a_newer_one() {
    let ring = broadcast::Ring::anonymous(Config::new(4096)).unwrap();
    let mut tx = ring.publisher().unwrap();
    let mut rx = ring.subscriber().unwrap();
    let latest = |rx: &mut broadcast::Subscriber| {
        rx.latest()
            .unwrap()
            .map(|f| (String::from_utf8(f.to_vec()).unwrap(), f.seq()))
    };
    tx.send(b"v1").unwrap();
    for _ in 0..3 {
        assert_eq!(latest(&mut rx), Some(("v1".into(), 0)));
    }
    tx.send(b"v2").unwrap();
    tx.send(b"v3").unwrap();
    assert_eq!(latest(&mut rx), Some(("v3".into(), 2)));
    assert_eq!(latest(&mut rx), Some(("v3".into(), 2)));
    tx.send(b"v4").unwrap();
    // The buffer the copy of v3 was in now holds v4.
    assert_eq!(&*rx.try_recv().unwrap(), b"v4");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!(latest(&mut rx), Some(("v4".into(), 3)));
    tx.send(b"v5").unwrap();
    assert_eq!(latest(&mut rx), Some(("v5".into(), 4)));
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // Enough frames to wrap the ring several times, then a new publisher.
    for i in 0..1000u32 {
        tx.send(format!("w{i}").as_bytes()).unwrap();
    }
    assert_eq!(latest(&mut rx), Some(("w999".into(), 1004)));
    drop(tx);
    let mut tx = ring.publisher().unwrap();
    assert_eq!(latest(&mut rx), Some(("w999".into(), 1004)));
    tx.send(b"v6").unwrap();
    assert_eq!(latest(&mut rx), Some(("v6".into(), 1005)));
    assert_eq!(latest(&mut rx), Some(("v6".into(), 1005)));
}
