//! The handle API, on every flavour (and `AnyRing` of every kind) where it
//! applies: `Send`/`Sync`, grants (`reserved_len`, short commits, aborted and
//! stalled reservations), send-side batches, `try_iter`, `is_full` /
//! `is_empty` / `len` / `len_hint`, peer states and `RoleStat::state` within
//! one process, timeouts too large to represent, typed (`Pod`) messages and
//! `Frame` alignment, and the attachment table's bound. Threads are in
//! `threads.rs`, other processes in `processes.rs`.

mod common;

use std::time::Duration;

use common::for_every_flavour;
use common::model::TestFlavour;
use mmring::{
    AnyRing, Config, Error, Frame, Kind, PeerState, RecvError, Ring, SendError, mpmc, mpsc, spsc,
};

/// A ring of `kind`: 4 KiB framed, or 64 slots of 32 bytes.
fn ring<P: TestFlavour>(kind: Kind) -> Ring<P> {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(64, 32),
        _ => Config::new(1 << 12),
    };
    P::anonymous(kind, cfg).unwrap()
}

fn assert_send_static<T: Send + 'static>() {}
fn assert_sync<T: Sync>() {}

#[test]
fn handles_are_send_and_static() {
    assert_send_static::<spsc::Producer>();
    assert_send_static::<spsc::Consumer>();
    assert_send_static::<spsc::Ring>();
    assert_sync::<spsc::Ring>();
    assert_send_static::<mpsc::Producer>();
    assert_send_static::<mpsc::Consumer>();
    assert_send_static::<mpsc::Ring>();
    assert_sync::<mpsc::Ring>();
    assert_send_static::<mpmc::Producer>();
    assert_send_static::<mpmc::Consumer>();
    assert_send_static::<mpmc::Ring>();
    assert_sync::<mpmc::Ring>();
    assert_send_static::<mmring::AnyProducer>();
    assert_send_static::<mmring::AnyConsumer>();
    assert_send_static::<AnyRing>();
    assert_sync::<AnyRing>();
    assert_send_static::<Frame>();
}

/// The geometry getters agree across the ring and its handles.
fn getters_agree<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!((tx.kind(), rx.kind(), ring.kind()), (kind, kind, kind));
    assert_eq!(tx.capacity(), ring.capacity());
    assert_eq!(rx.capacity(), ring.capacity());
    assert_eq!(tx.max_frame(), ring.max_frame());
    assert_eq!(rx.max_frame(), ring.max_frame());
    let want_max = if kind == Kind::Mpmc { 32 } else { 2040 };
    assert_eq!(ring.max_frame(), want_max, "{kind}");
    assert_eq!(ring.stat().max_frame, want_max as u64);
}

#[test]
fn getters() {
    for_every_flavour!(getters_agree);
}

/// `reserved_len` (and the deprecated `capacity`) is the length asked for,
/// at both edges; `commit_len` publishes a prefix of it.
fn reserved_len<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let max = ring.max_frame();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for len in [0, 1, 7, 8, 9, max - 1, max] {
        let mut g = tx.try_reserve(len).unwrap();
        assert_eq!((g.reserved_len(), g.len()), (len, len), "{kind}");
        #[allow(deprecated)]
        let old = g.capacity();
        assert_eq!(old, len);
        g.fill(0x5A);
        let keep = len / 2;
        g.commit_len(keep);
        let f = rx.try_recv().unwrap();
        assert_eq!(&*f, &vec![0x5A; keep][..], "{kind}: reserved {len}");
        drop(f);
        // Nothing else was published; and on mpsc this passes the skip
        // record over the uncommitted rest, releasing it.
        assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    }
    assert!(matches!(
        tx.try_reserve(max + 1),
        Err(SendError::TooLarge { len, max: m }) if len == max + 1 && m == max
    ));
}

#[test]
fn write_grant_reserved_len() {
    for_every_flavour!(reserved_len);
}

#[test]
#[should_panic(expected = "exceeds the reservation")]
fn commit_len_beyond_the_reservation_panics() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.try_reserve(8).unwrap().commit_len(9);
}

#[test]
fn mpmc_aborted_and_stalled_reservations() {
    let ring = mpmc::Ring::anonymous(Config::slots(8, 16)).unwrap();
    let mut a = ring.producer().unwrap();
    let mut b = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    // A stalled reservation holds back only what queues behind its slot...
    let mut ga = a.try_reserve(16).unwrap();
    b.send(b"b1").unwrap();
    b.send(b"b2").unwrap();
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    ga.copy_from_slice(&[7; 16]);
    ga.commit();
    assert_eq!(&*rx.try_recv().unwrap(), &[7; 16]);
    assert_eq!(&*rx.try_recv().unwrap(), b"b1");
    assert_eq!(&*rx.try_recv().unwrap(), b"b2");
    // ...and an aborted one is skipped, not waited on.
    let ga = a.try_reserve(4).unwrap();
    b.send(b"b3").unwrap();
    drop(ga);
    assert_eq!(&*rx.try_recv().unwrap(), b"b3");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // Empty and exactly-maximal messages; one byte more is refused.
    a.send(b"").unwrap();
    a.send(&[1; 16]).unwrap();
    assert_eq!(rx.try_recv().unwrap().len(), 0);
    assert_eq!(rx.try_recv().unwrap().len(), 16);
    assert_eq!(
        a.try_send(&[0; 17]).unwrap_err(),
        SendError::TooLarge { len: 17, max: 16 }
    );
}

#[test]
fn mpsc_aborted_and_stalled_reservations() {
    let ring = mpsc::Ring::anonymous(Config::new(256)).unwrap();
    let mut a = ring.producer().unwrap();
    let mut b = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut ga = a.try_reserve(10).unwrap();
    b.send(b"b1").unwrap();
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Empty,
        "in order: a first"
    );
    ga[..2].copy_from_slice(b"a1");
    ga.commit_len(2);
    assert_eq!(&*rx.try_recv().unwrap(), b"a1");
    assert_eq!(&*rx.try_recv().unwrap(), b"b1");
    let ga = a.try_reserve(100).unwrap();
    b.send(b"b2").unwrap();
    ga.abort();
    assert_eq!(&*rx.try_recv().unwrap(), b"b2");
    let max = ring.max_frame();
    a.send(b"").unwrap();
    a.send(&vec![3; max]).unwrap();
    assert_eq!(rx.try_recv().unwrap().len(), 0);
    assert_eq!(rx.try_recv().unwrap().len(), max);
    assert!(matches!(
        a.try_send(&vec![0; max + 1]),
        Err(SendError::TooLarge { .. })
    ));
    // One consumer only.
    assert!(matches!(ring.consumer(), Err(Error::RoleTaken { .. })));
}

/// A send-side batch: on spsc nothing committed through it is visible
/// before it is published (one tail store), then all of it is; on mpsc and
/// mpmc each message is published by its own frame word or stamp, so it is
/// visible at once. Dropping the batch publishes like `publish()`.
fn send_batch_visibility<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let at_once = kind != Kind::Spsc;
    for publish in [true, false] {
        let mut batch = tx.batch();
        batch.try_send(b"one").unwrap();
        let mut g = batch.try_reserve(8).unwrap();
        g.copy_from_slice(b"two-two!");
        g.commit();
        batch.try_reserve(5).unwrap().abort();
        batch.send(b"three").unwrap();
        assert_eq!(rx.is_empty(), !at_once, "{kind}: is_empty in an open batch");
        assert_eq!(
            rx.len_hint() > 0,
            at_once,
            "{kind}: len_hint in an open batch"
        );
        if at_once {
            assert_eq!(&*rx.try_recv().unwrap(), b"one");
        } else {
            assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
            assert_eq!(
                ring.stat().tail,
                ring.stat().head,
                "spsc: tail not yet stored"
            );
        }
        if publish {
            batch.publish();
        } else {
            drop(batch);
        }
        let got: Vec<Vec<u8>> = rx.try_iter().map(|f| f.to_vec()).collect();
        let mut want = vec![b"one".to_vec(), b"two-two!".to_vec(), b"three".to_vec()];
        if at_once {
            want.remove(0);
        }
        assert_eq!(got, want, "{kind} via {}", P::NAME);
    }
}

#[test]
fn send_batch_publishes_together() {
    for_every_flavour!(send_batch_visibility);
}

/// `try_send_batch` sends as many as fit, in order, and says how many; the
/// first that does not fit and the rest are not sent. Nothing fitting at
/// all is `Full`.
fn try_send_batch_counts<P: TestFlavour>(kind: Kind) {
    // Four 8-byte messages (16 bytes each) in 64 bytes; spsc keeps 8 bytes
    // free for its terminator word, so three, then an empty one fills it.
    let cfg = match kind {
        Kind::Mpmc => Config::slots(4, 8),
        _ => Config::new(64),
    };
    let fit = if kind == Kind::Spsc { 3 } else { 4 };
    let ring = P::anonymous(kind, cfg).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let msgs: Vec<[u8; 8]> = (0..6u64).map(|i| i.to_le_bytes()).collect();
    assert_eq!(tx.try_send_batch(&msgs), Ok(fit), "{kind}");
    if kind == Kind::Spsc {
        assert!(!tx.is_full(), "{kind}: an empty message still fits");
        assert_eq!(tx.try_send_batch(&msgs), Err(SendError::Full));
        assert_eq!(tx.try_send_batch([b""]), Ok(1));
    }
    assert!(tx.is_full(), "{kind}");
    assert_eq!(tx.try_send_batch(&msgs), Err(SendError::Full));
    assert_eq!(tx.try_send_batch(Vec::<Vec<u8>>::new()), Ok(0));
    let mut got = Vec::new();
    let received = rx.try_recv_batch(usize::MAX, |f| got.push(f.to_vec()));
    let mut want: Vec<Vec<u8>> = msgs[..fit].iter().map(|m| m.to_vec()).collect();
    if kind == Kind::Spsc {
        want.push(Vec::new());
    }
    assert_eq!(received, Ok(want.len()));
    assert_eq!(got, want);
    assert_eq!(tx.try_send_batch(&msgs[4..]), Ok(2));
    assert_eq!(&*rx.try_recv().unwrap(), &msgs[4]);
    assert_eq!(&*rx.try_recv().unwrap(), &msgs[5]);
    // An error after some messages were sent ends the batch early (those
    // are sent); the next call reports it.
    let too_large = vec![0u8; tx.max_frame() + 1];
    let mixed: [&[u8]; 3] = [b"a", &too_large, b"c"];
    assert_eq!(tx.try_send_batch(mixed), Ok(1));
    assert!(matches!(
        tx.try_send_batch(&mixed[1..]),
        Err(SendError::TooLarge { .. })
    ));
    assert_eq!(
        rx.try_iter().map(|f| f.to_vec()).collect::<Vec<_>>(),
        [b"a".to_vec()]
    );
}

#[test]
fn try_send_batch_sends_what_fits() {
    for_every_flavour!(try_send_batch_counts);
}

/// `try_iter` yields the waiting messages, copied out and released, and
/// ends when the ring is empty; a later `try_iter` sees later messages.
fn try_iter_drains_what_is_there<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert_eq!(rx.try_iter().count(), 0);
    for i in 0..10u8 {
        tx.send(&[i; 3]).unwrap();
    }
    let got: Vec<Frame> = rx.try_iter().take(4).collect();
    assert_eq!(got.len(), 4);
    let rest: Vec<Frame> = rx.try_iter().collect();
    let all: Vec<u8> = got.iter().chain(&rest).map(|f| f[0]).collect();
    assert_eq!(all, (0..10).collect::<Vec<u8>>(), "{kind}");
    assert!(rest.iter().all(|f| f.len() == 3));
    assert!(rx.is_empty());
    // Released: the producer's view of the ring is empty again.
    assert_eq!(tx.len_hint(), 0);
    tx.send(b"later").unwrap();
    assert_eq!(
        rx.try_iter().map(|f| f.to_vec()).collect::<Vec<_>>(),
        [b"later".to_vec()]
    );
}

#[test]
fn try_iter() {
    for_every_flavour!(try_iter_drains_what_is_there);
}

/// `is_full` means exactly "not even an empty message fits". On a 64-byte
/// framed ring, 16-byte messages (24 bytes each) stop fitting with 16 bytes
/// free: `Full`, yet not `is_full`; empty messages (8 bytes) then fill it to
/// the last byte (spsc: to the last 8 bytes, which it keeps free for its
/// terminator word), and `is_full` turns true; one receive makes it false.
fn is_full_exactly<P: TestFlavour>(kind: Kind) {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(4, 16),
        _ => Config::new(64),
    };
    let ring = P::anonymous(kind, cfg).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    assert!(!tx.is_full());
    let mut sent = 0;
    while tx.try_send(&[1; 16]).is_ok() {
        sent += 1;
    }
    if kind == Kind::Mpmc {
        // A slot holds one message whatever its length.
        assert_eq!(sent, 4);
    } else {
        assert_eq!(sent, 2, "two 24-byte frames in 64 bytes");
        assert!(
            !tx.is_full(),
            "{kind}: 16 bytes are free: an empty message fits"
        );
        tx.try_send(&[]).unwrap();
        if kind != Kind::Spsc {
            assert!(!tx.is_full(), "{kind}: 8 bytes free");
            tx.try_send(&[]).unwrap();
        }
    }
    assert!(tx.is_full(), "{kind}");
    assert_eq!(tx.try_reserve(0).unwrap_err(), SendError::Full);
    let full = match kind {
        Kind::Mpmc => 4,
        Kind::Spsc => 56,
        _ => 64,
    };
    assert_eq!(tx.len_hint(), full);
    drop(rx.try_recv().unwrap());
    assert!(!tx.is_full(), "{kind}: one message received");
    tx.try_reserve(0).unwrap().commit();
    // Filling with empty messages only: full at exactly the capacity (spsc:
    // less its 8 free bytes).
    while rx.try_recv().is_ok() {}
    let mut n = 0;
    while tx.try_send(&[]).is_ok() {
        n += 1;
    }
    assert!(
        tx.is_full(),
        "{kind}: filled with empty messages until Full"
    );
    let n_full = match kind {
        Kind::Mpmc => 4,
        Kind::Spsc => 7,
        _ => 8,
    };
    assert_eq!(n, n_full);
    drop(rx.try_recv().unwrap());
    assert!(!tx.is_full());
}

#[test]
fn is_full_means_not_even_an_empty_message_fits() {
    for_every_flavour!(is_full_exactly);
}

/// `is_empty` and `len_hint` on the consumer side, and `len` on mpmc: a
/// claimed slot counts before it is committed, an aborted one until a
/// consumer passes it.
#[test]
fn mpmc_len_counts_claimed_slots() {
    let ring = mpmc::Ring::anonymous(Config::slots(8, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let rx2 = ring.consumer().unwrap();
    assert_eq!((rx.len(), rx.is_empty()), (0, true));
    tx.send(b"a").unwrap();
    tx.send(b"b").unwrap();
    assert_eq!((rx.len(), rx2.len(), rx.is_empty()), (2, 2, false));
    let g = tx.try_reserve(1).unwrap();
    assert_eq!(rx.len(), 3, "a claimed, uncommitted slot counts");
    g.abort();
    assert_eq!(rx.len(), 3, "an aborted slot counts until passed");
    assert_eq!(rx.len_hint(), 3);
    assert_eq!(&*rx.try_recv().unwrap(), b"a");
    assert_eq!(rx2.len(), 2, "len is the ring's, shared by every consumer");
    assert_eq!(&*rx.try_recv().unwrap(), b"b");
    assert_eq!(rx.len(), 1, "the aborted slot, not yet passed");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    assert_eq!((rx.len(), rx.is_empty()), (0, true));
    for i in 0..8u8 {
        tx.send(&[i]).unwrap();
    }
    assert_eq!(rx.len(), 8);
    assert!(tx.is_full());
}

/// `is_empty` is "whether no message is waiting right now": with only
/// skipped space waiting (an aborted mpmc slot, an mpsc skip record, or the
/// unused tail of an mpsc short commit whose frame was received) no message
/// is waiting, `try_recv` says `Empty`, and so does `is_empty`.
#[test]
fn is_empty_with_only_skipped_space() {
    let ring = mpmc::Ring::anonymous(Config::slots(4, 8)).unwrap();
    let (mut tx, rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_reserve(1).unwrap().abort();
    assert!(rx.is_empty(), "mpmc: only an aborted slot waits");

    let ring = mpsc::Ring::anonymous(Config::new(256)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.try_reserve(1).unwrap().abort();
    assert!(rx.is_empty(), "mpsc: only a skip record waits");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    let mut g = tx.try_reserve(100).unwrap();
    g[0] = 1;
    g.commit_len(1);
    assert_eq!(&*rx.try_recv().unwrap(), &[1]);
    assert!(
        rx.is_empty(),
        "mpsc: only a short commit's unused tail waits"
    );
}

/// The producers' and consumers' state as each side sees it, and in
/// `stat`: never attached, then alive, then gone, for every flavour (a
/// `kill -9` of the peer is in `processes.rs`).
fn peer_states<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let st = ring.stat();
    assert_eq!(st.producer.state, PeerState::NeverAttached);
    assert_eq!(st.consumer.state, PeerState::NeverAttached);
    assert!(!st.producer.alive && !st.consumer.alive);
    assert_eq!((st.producer.attaches, st.consumer.attaches), (0, 0));

    let tx = ring.producer().unwrap();
    assert_eq!(tx.consumer_state(), PeerState::NeverAttached, "{kind}");
    assert!(!tx.is_consumer_attached());
    let st = ring.stat();
    assert_eq!(
        (st.producer.state, st.consumer.state),
        (PeerState::Alive, PeerState::NeverAttached)
    );
    assert!(st.producer.alive);

    let rx = ring.consumer().unwrap();
    assert_eq!(tx.consumer_state(), PeerState::Alive);
    assert_eq!(rx.producer_state(), PeerState::Alive);
    assert!(tx.is_consumer_attached() && rx.is_producer_attached());
    assert_eq!(ring.stat().consumer.state, PeerState::Alive);

    drop(tx);
    assert_eq!(rx.producer_state(), PeerState::Gone, "{kind}");
    assert!(!rx.is_producer_attached());
    let st = ring.stat();
    assert_eq!(
        (st.producer.state, st.producer.alive),
        (PeerState::Gone, false)
    );
    assert_eq!(st.producer.attaches, 1);

    let tx = ring.producer().unwrap();
    assert_eq!(rx.producer_state(), PeerState::Alive, "attached again");
    drop(rx);
    assert_eq!(tx.consumer_state(), PeerState::Gone);
    assert_eq!(ring.stat().consumer.state, PeerState::Gone);
    assert_eq!(ring.stat().producer.attaches, 2);
}

#[test]
fn peer_state_never_attached_alive_gone() {
    for_every_flavour!(peer_states);
}

/// With several producers (mpsc, mpmc), the role is alive while any one
/// holds it.
#[test]
fn peer_state_with_many_producers() {
    let ring = mpmc::Ring::anonymous(Config::slots(4, 8)).unwrap();
    let rx = ring.consumer().unwrap();
    let p1 = ring.producer().unwrap();
    let p2 = ring.producer().unwrap();
    drop(p1);
    assert_eq!(rx.producer_state(), PeerState::Alive);
    assert_eq!(ring.stat().producer.state, PeerState::Alive);
    drop(p2);
    assert_eq!(rx.producer_state(), PeerState::Gone);
    assert_eq!(ring.stat().producer.attaches, 2);
}

/// Timeouts too large for an `Instant` (`Duration::MAX`, `u64::MAX / 2`
/// seconds) mean "wait for ever": with a message or room already there the
/// calls return it at once, and none of them panics on the deadline
/// arithmetic.
fn huge_timeouts_return_at_once<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let huge = Duration::from_secs(u64::MAX / 2);
    tx.send_timeout(b"max", Duration::MAX).unwrap();
    let mut g = tx.reserve_timeout(4, huge).unwrap();
    g.copy_from_slice(b"half");
    g.commit();
    {
        let mut batch = tx.batch();
        batch
            .reserve_timeout(1, Duration::MAX)
            .unwrap()
            .commit_len(0);
    }
    assert_eq!(&*rx.recv_timeout(Duration::MAX).unwrap(), b"max");
    assert_eq!(&*rx.recv_timeout(huge).unwrap(), b"half");
    let mut n = 0;
    assert_eq!(
        rx.recv_batch_timeout(8, Duration::MAX, |f| n += f.len()),
        Ok(1)
    );
    assert_eq!(n, 0);
    assert_eq!(
        rx.recv_timeout(Duration::ZERO).unwrap_err(),
        RecvError::Timeout,
        "{kind}: and a zero timeout on an empty ring times out"
    );
}

#[test]
fn huge_timeouts_do_not_panic() {
    for_every_flavour!(huge_timeouts_return_at_once);
}

/// `recv_timeout(Duration::MAX)` on an empty ring waits (it is not turned
/// into an immediate timeout) until a message arrives.
fn max_timeout_waits<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(30));
        tx.send(b"late").unwrap();
        tx
    });
    assert_eq!(&*rx.recv_timeout(Duration::MAX).unwrap(), b"late", "{kind}");
    drop(t.join().unwrap());
}

#[test]
fn max_timeout_waits_for_a_message() {
    for_every_flavour!(max_timeout_waits);
}

#[test]
fn send_timeout_on_a_full_ring() {
    let ring = spsc::Ring::anonymous(Config::new(64)).unwrap();
    let mut tx = ring.producer().unwrap();
    let _rx = ring.consumer().unwrap();
    while tx.try_send(&[1; 24]).is_ok() {}
    assert_eq!(tx.try_send(&[1; 24]).unwrap_err(), SendError::Full);
    assert_eq!(
        tx.send_timeout(&[1; 24], Duration::from_millis(20))
            .unwrap_err(),
        SendError::Timeout
    );
}

#[derive(Clone, Copy, Debug, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
struct Tick {
    seq: u64,
    price: f64,
    qty: u32,
    side: u32,
}

/// `try_send_pod` / `send_pod` and `as_pod` round trip in place, at every
/// position of the ring (payloads are 8-byte aligned); a view of the wrong
/// size is refused.
fn pod_round_trip<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    for i in 0..500u64 {
        let t = Tick {
            seq: i,
            price: i as f64 * 0.25,
            qty: i as u32 * 3,
            side: (i % 2) as u32,
        };
        if i % 2 == 0 {
            tx.try_send_pod(&t).unwrap();
        } else {
            tx.send_pod(&t).unwrap();
        }
        // An odd-length message in between moves the next one around.
        tx.send(&vec![7; (i % 13) as usize]).unwrap();
        let f = rx.try_recv().unwrap();
        assert_eq!(f.as_ptr() as usize % 8, 0, "{kind}: payload alignment");
        assert_eq!(f.as_pod::<Tick>(), Ok(&t), "{kind}");
        assert!(f.as_pod::<u64>().is_err(), "size mismatch");
        drop(f);
        assert_eq!(rx.try_recv().unwrap().len(), (i % 13) as usize);
    }
    // In place on the producer side too.
    let mut g = tx.try_reserve(size_of::<Tick>()).unwrap();
    *g.as_pod_mut::<Tick>() = Tick {
        seq: 9,
        price: 1.5,
        qty: 2,
        side: 1,
    };
    g.commit();
    assert_eq!(rx.try_recv().unwrap().as_pod::<Tick>().unwrap().seq, 9);
}

#[test]
fn pod_messages_round_trip() {
    for_every_flavour!(pod_round_trip);
}

/// A `Frame` copies its bytes into an 8-byte-aligned buffer, so `as_pod`
/// works on it whatever the alignment of the bytes it was made from (where
/// the same view of the source slice is refused).
#[test]
fn frame_as_pod_is_aligned() {
    let words = [0u64, 0x0807_0605_0403_0201, 0];
    let bytes: &[u8] = bytemuck::cast_slice(&words);
    for off in 0..8 {
        let src = &bytes[off..off + 8];
        let want = u64::from_ne_bytes(src.try_into().unwrap());
        let f = Frame::copy_of(src);
        assert_eq!(f.as_ptr() as usize % 8, 0);
        assert_eq!(f.as_pod::<u64>(), Ok(&want), "source offset {off}");
        assert_eq!(&*f, src);
        if off % 8 != 0 {
            assert_eq!(
                bytemuck::try_from_bytes::<u64>(src),
                Err(bytemuck::PodCastError::TargetAlignmentGreaterAndInputNotAligned),
                "the unaligned source itself cannot be viewed"
            );
        }
        assert!(f.as_pod::<u32>().is_err(), "size mismatch");
    }
    let empty = Frame::copy_of(&[]);
    assert!(empty.is_empty());
    assert_eq!(empty, Frame::default());
    // Frames from the ring keep the guarantee.
    let ring = mpsc::Ring::anonymous(Config::new(4096)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    tx.send_pod(&42u64).unwrap();
    tx.send(b"odd").unwrap();
    let frames: Vec<Frame> = rx.try_iter().collect();
    assert_eq!(frames[0].as_pod::<u64>(), Ok(&42));
    assert_eq!(&*frames[1], b"odd");
    assert_eq!(frames[1].as_ref(), b"odd");
}

#[test]
fn attachment_table_is_bounded_and_reusable() {
    let ring = mpmc::Ring::anonymous(Config::slots(4, 8)).unwrap();
    let mut handles: Vec<_> = (0..128).map(|_| ring.producer().unwrap()).collect();
    assert!(matches!(
        ring.consumer(),
        Err(Error::TooManyAttachments { max: 128 })
    ));
    handles.pop();
    let _rx = ring.consumer().unwrap();
    assert_eq!(ring.stat().producer.holders.len(), 127);
}

/// `try_recv_batch_keep` releases exactly the prefix `f` finished with: over
/// many laps of a small ring (frames of varying length, so padding and, on
/// mpsc, zeroed space lie between them), the messages arrive once each, in
/// order, whatever prefix each call keeps; an mpmc consumer sees one at a
/// time and releases it.
fn batch_keep_releases_a_prefix<P: TestFlavour>(kind: Kind) {
    let ring = ring::<P>(kind);
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let many = kind != Kind::Mpmc;
    assert_eq!(
        rx.try_recv_batch_keep(8, |_| panic!("nothing to see")),
        Err(RecvError::Empty)
    );
    let (mut sent, mut got) = (0u32, 0u32);
    for round in 0..2_000u32 {
        // Top up with messages of 4..=27 bytes carrying their number.
        while sent < got + 20 {
            let mut msg = sent.to_le_bytes().to_vec();
            msg.resize(4 + (sent as usize * 7) % 24, 0xab);
            match tx.try_send(&msg) {
                Ok(()) => sent += 1,
                Err(SendError::Full) => break,
                Err(e) => panic!("{kind}: {e}"),
            }
        }
        let mut seen = 0;
        let released = rx
            .try_recv_batch_keep(7, |frames| {
                seen = frames.len();
                assert!(seen >= 1 && seen <= if many { 7 } else { 1 }, "{kind}");
                for (i, f) in frames.iter().enumerate() {
                    let n = u32::from_le_bytes(f[..4].try_into().unwrap());
                    assert_eq!(n, got + i as u32, "{kind}: round {round}");
                    assert_eq!(f.len(), 4 + (n as usize * 7) % 24);
                }
                // Keep none, some or all.
                (round as usize * 5) % (seen + 2)
            })
            .unwrap();
        let expect = if many {
            ((round as usize * 5) % (seen + 2)).min(seen)
        } else {
            1
        };
        assert_eq!(released, expect, "{kind}: round {round}");
        got += released as u32;
        if round % 50 == 0 {
            // Messages put back are not counted as released.
            assert_eq!(ring.stat().released_frames, u64::from(got), "{kind}");
        }
    }
    assert!(got > 1_000, "{kind}: only {got} messages moved");
    // What is left arrives in order.
    while let Ok(f) = rx.try_recv() {
        assert_eq!(u32::from_le_bytes(f[..4].try_into().unwrap()), got);
        got += 1;
    }
    assert_eq!(got, sent, "{kind}");
    assert_eq!(tx.len_hint(), 0, "{kind}: everything released");
    assert_eq!(ring.stat().released_frames, u64::from(sent), "{kind}");
}

#[test]
fn try_recv_batch_keep_releases_what_f_finished() {
    for_every_flavour!(batch_keep_releases_a_prefix);
}

/// Messages a consumer kept are there for the next consumer after it
/// detaches: nothing beyond what `f` finished with is released.
#[test]
fn kept_messages_outlive_their_consumer() {
    for kind in [Kind::Spsc, Kind::Mpsc] {
        let ring = AnyRing::anonymous(kind, Config::new(1 << 12)).unwrap();
        let mut tx = ring.producer().unwrap();
        for i in 0..10u8 {
            tx.send(&[i]).unwrap();
        }
        let mut rx = ring.consumer().unwrap();
        let n = rx
            .recv_batch_keep_timeout(usize::MAX, Duration::from_secs(5), |frames| {
                assert_eq!(frames.len(), 10);
                4
            })
            .unwrap();
        assert_eq!(n, 4);
        drop(rx);
        let mut rx = ring.consumer().unwrap();
        let rest: Vec<u8> = rx.try_iter().map(|f| f[0]).collect();
        assert_eq!(rest, (4..10).collect::<Vec<u8>>(), "{kind}");
    }
}
