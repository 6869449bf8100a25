//! Every flavour driven by threads in one process: exactly-once delivery
//! under contention (per-producer order where there is one consumer),
//! blocking calls woken by the other side arriving or leaving, send-side
//! batches that must publish before they wait, and the blocking iterator.
//! ThreadSanitizer runs this file (`.ci/run`).

mod common;

use std::time::Duration;

use common::for_every_flavour;
use common::model::TestFlavour;
use mmring::{Config, Kind, Producer, RecvError, Ring, SendError, mpmc, mpsc, spsc};

/// A ring of `kind` for thread tests: 4 KiB framed, or 64 slots of 16 bytes.
fn ring<P: TestFlavour>(kind: Kind) -> Ring<P> {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(64, 16),
        _ => Config::new(1 << 12),
    };
    P::anonymous(kind, cfg).unwrap()
}

/// A tiny ring of `kind` that fills after a few messages.
fn tiny<P: TestFlavour>(kind: Kind) -> Ring<P> {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(2, 24),
        _ => Config::new(64),
    };
    P::anonymous(kind, cfg).unwrap()
}

fn key(frame: &[u8]) -> (usize, u64) {
    let v = u64::from_le_bytes(frame[..8].try_into().unwrap());
    ((v >> 32) as usize, v & 0xffff_ffff)
}

/// Sends message `i` of producer `p`: its key, padded to a length derived
/// from `i`. `batched` sends groups of 7 through one blocking batch.
fn send_all<P: TestFlavour>(tx: &mut Producer<P>, p: u64, per: u64, span: u64, batched: bool) {
    let len = |i: u64| (8 + i % span) as usize;
    let mut i = 0;
    while i < per {
        if batched {
            let mut batch = tx.batch();
            for _ in 0..7.min(per - i) {
                let mut g = batch.reserve(len(i)).unwrap();
                g[..8].copy_from_slice(&(p << 32 | i).to_le_bytes());
                g.commit();
                i += 1;
            }
            batch.publish();
        } else {
            let mut g = tx.reserve(len(i)).unwrap();
            g[..8].copy_from_slice(&(p << 32 | i).to_le_bytes());
            g.commit();
            i += 1;
        }
    }
}

/// As many producers and consumers as the flavour allows (spsc 1 x 1, mpsc
/// 4 x 1, mpmc 2 x 2), each producer in its own thread: every message is
/// delivered exactly once, intact in length, and in per-producer order when
/// one consumer sees them all.
fn exactly_once<P: TestFlavour>(kind: Kind, per: u64, batched: bool) {
    let ring = ring::<P>(kind);
    let (np, nc, span) = match kind {
        Kind::Spsc => (1u64, 1, 40),
        Kind::Mpsc => (4, 1, 40),
        _ => (2, 2, 9),
    };
    let producers: Vec<_> = (0..np)
        .map(|p| {
            let mut tx = ring.producer().unwrap();
            std::thread::spawn(move || send_all(&mut tx, p, per, span, batched))
        })
        .collect();
    let consumers: Vec<_> = (0..nc)
        .map(|c| {
            let mut rx = ring.consumer().unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                let mut check = |f: &[u8]| {
                    let (p, i) = key(f);
                    assert_eq!(f.len() as u64, 8 + i % span, "length of {p}:{i}");
                    got.push((p, i));
                };
                loop {
                    let r = if c == 0 {
                        rx.recv_timeout(Duration::from_secs(10)).map(|g| check(&g))
                    } else {
                        rx.recv_batch_timeout(16, Duration::from_secs(10), &mut check)
                            .map(drop)
                    };
                    match r {
                        Ok(()) => {}
                        Err(RecvError::Disconnected) => break,
                        Err(e) => panic!("{}: {e}", P::NAME),
                    }
                }
                got
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let got: Vec<Vec<(usize, u64)>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
    if nc == 1 {
        let mut next = vec![0u64; np as usize];
        for &(p, i) in &got[0] {
            assert_eq!(i, next[p], "{kind}: producer {p} out of order");
            next[p] += 1;
        }
    }
    let mut all: Vec<(usize, u64)> = got.into_iter().flatten().collect();
    all.sort_unstable();
    let want: Vec<(usize, u64)> = (0..np as usize)
        .flat_map(|p| (0..per).map(move |i| (p, i)))
        .collect();
    assert_eq!(
        all,
        want,
        "{kind} via {}: every message exactly once",
        P::NAME
    );
}

/// Threads: 2 producers x 2 consumers (mpmc), 4 x 1 (mpsc) and 1 x 1
/// (spsc); every message exactly once, per-producer order kept by mpsc and
/// spsc. Once more through `AnyRing`, and with send-side batches.
#[test]
fn threads_exactly_once() {
    exactly_once::<mpmc::Mpmc>(Kind::Mpmc, 50_000, false);
    exactly_once::<mpsc::Mpsc>(Kind::Mpsc, 50_000, false);
    exactly_once::<spsc::Spsc>(Kind::Spsc, 50_000, false);
}

#[test]
fn threads_exactly_once_any_ring_and_batches() {
    for kind in common::model::KINDS {
        exactly_once::<mmring::AnyKind>(kind, 10_000, false);
    }
    for_every_flavour!(exactly_once, 10_000, true);
}

/// When the last producer goes, blocked consumers get `Disconnected`; when
/// every consumer goes, a producer blocked on a full ring does.
#[test]
fn last_party_gone_disconnects() {
    let ring = mpmc::Ring::anonymous(Config::slots(2, 8)).unwrap();
    let p1 = ring.producer().unwrap();
    let p2 = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    drop(p1);
    std::thread::sleep(Duration::from_millis(30));
    assert!(!t.is_finished(), "one producer is still attached");
    drop(p2);
    assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));

    let mut tx = ring.producer().unwrap();
    let c1 = ring.consumer().unwrap();
    let c2 = ring.consumer().unwrap();
    tx.send(b"1").unwrap();
    tx.send(b"2").unwrap();
    let t = std::thread::spawn(move || tx.send(b"3"));
    drop(c1);
    std::thread::sleep(Duration::from_millis(30));
    assert!(!t.is_finished());
    drop(c2);
    assert_eq!(t.join().unwrap(), Err(SendError::Disconnected));

    let ring = mpsc::Ring::anonymous(Config::new(64)).unwrap();
    let p1 = ring.producer().unwrap();
    let p2 = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    drop(p1);
    drop(p2);
    assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
}

/// Handles outlive the `Ring` value they came from and move into threads;
/// once the producer is gone and the ring empty, receiving says so.
fn handles_outlive_the_ring_value<P: TestFlavour>(kind: Kind) {
    let (mut tx, mut rx) = {
        let ring = ring::<P>(kind);
        (ring.producer().unwrap(), ring.consumer().unwrap())
    };
    let t = std::thread::spawn(move || {
        for i in 0..10_000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
    });
    let mut buf = Vec::new();
    for i in 0..10_000u32 {
        rx.recv_into(&mut buf).unwrap();
        assert_eq!(buf, i.to_le_bytes());
    }
    t.join().unwrap();
    // The producer is gone and the ring is empty.
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap_err(),
        RecvError::Disconnected
    );
}

#[test]
fn handles_outlive_the_ring() {
    for_every_flavour!(handles_outlive_the_ring_value);
}

fn blocked_consumer_wakes_when_producer_detaches<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "{kind}: a live producer keeps it waiting");
    drop(tx);
    assert_eq!(t.join().unwrap(), Err(RecvError::Disconnected));
}

#[test]
fn blocked_consumer_wakes_on_detach() {
    for_every_flavour!(blocked_consumer_wakes_when_producer_detaches);
}

fn blocked_producer_wakes_when_consumer_detaches<P: TestFlavour>(kind: Kind) {
    let ring = tiny::<P>(kind);
    let mut tx = ring.producer().unwrap();
    let rx = ring.consumer().unwrap();
    while tx.try_send(&[0; 24]).is_ok() {}
    let t = std::thread::spawn(move || tx.send(&[0; 24]));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!t.is_finished(), "{kind}: a live consumer keeps it waiting");
    drop(rx);
    assert_eq!(t.join().unwrap(), Err(SendError::Disconnected));
}

#[test]
fn blocked_producer_wakes_on_detach() {
    for_every_flavour!(blocked_producer_wakes_when_consumer_detaches);
}

/// No producer has ever attached: that is not a disconnect; the consumer
/// waits, and the first message wakes it.
fn consumer_waits_for_a_first_producer<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let mut rx = ring.consumer().unwrap();
    assert_eq!(
        rx.recv_timeout(Duration::from_millis(20)).unwrap_err(),
        RecvError::Timeout
    );
    let r2 = ring.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        r2.producer().unwrap().send(b"first").unwrap();
    });
    assert_eq!(&*rx.recv().unwrap(), b"first");
    t.join().unwrap();
}

#[test]
fn consumer_waits_for_first_producer() {
    for_every_flavour!(consumer_waits_for_a_first_producer);
}

/// `recv_batch` blocks for the first message, then takes what is there;
/// everything is released at the end.
fn batch_releases_once_and_blocks_for_the_first<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        for i in 0..100u8 {
            tx.send(&[i; 3]).unwrap();
        }
        tx
    });
    let mut seen = Vec::new();
    while seen.len() < 100 {
        rx.recv_batch(16, |f| seen.push(f[0])).unwrap();
    }
    assert_eq!(seen, (0..100).collect::<Vec<u8>>());
    let _tx = t.join().unwrap();
    let st = ring.stat();
    assert_eq!(st.head, st.tail);
}

#[test]
fn recv_batch_blocks_for_the_first() {
    for_every_flavour!(batch_releases_once_and_blocks_for_the_first);
}

/// A send-side batch bigger than the ring: its blocking `reserve` must
/// publish what the batch holds before it waits for room, or the consumer
/// (in another thread, waiting for those very messages) and the producer
/// would wait for each other for ever. The consumer's timeout turns such a
/// deadlock into a failure.
fn batch_publishes_before_it_waits<P: TestFlavour>(kind: Kind) {
    let ring = tiny::<P>(kind);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    const N: u8 = 50; // many times what the ring holds
    let t = std::thread::spawn(move || {
        let mut batch = tx.batch();
        for i in 0..N {
            batch.send(&[i; 5]).unwrap();
        }
        drop(batch);
        tx
    });
    for i in 0..N {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(f) => assert_eq!(&*f, &[i; 5]),
            Err(e) => panic!("{kind} via {}: message {i}: {e}", P::NAME),
        }
    }
    let _tx = t.join().unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
}

#[test]
fn batch_reserve_publishes_before_waiting() {
    for_every_flavour!(batch_publishes_before_it_waits);
}

/// `iter` blocks for messages and ends once the producer is gone and the
/// ring is drained: it yields exactly what was sent, in order.
fn iter_ends_when_the_producer_is_gone<P: TestFlavour>(kind: Kind) {
    let ring = tiny::<P>(kind);
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let t = std::thread::spawn(move || {
        for i in 0..1000u32 {
            tx.send(&i.to_le_bytes()).unwrap();
        }
        // Dropping `tx` ends the consumer's iterator.
    });
    let got: Vec<u32> = rx
        .iter()
        .map(|f| u32::from_le_bytes(f[..].try_into().unwrap()))
        .collect();
    t.join().unwrap();
    assert_eq!(
        got,
        (0..1000).collect::<Vec<u32>>(),
        "{kind} via {}",
        P::NAME
    );
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
}

#[test]
fn iter_ends_with_the_producer() {
    for_every_flavour!(iter_ends_when_the_producer_is_gone);
}
