//! MPSC and MPMC in one process: a multiset model under random operation
//! sequences, the edge cases (aborted reservations, empty and maximal
//! messages, stalled producers), tampering, and threads.

mod common;

use std::collections::VecDeque;
use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{TempFile, temp_path};
use mmring::{Config, Corruption, Error, Kind, RecvError, SendError, mpmc, mpsc, spsc};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Send { producer: u8, len: u16, abort: bool },
    ShortCommit { producer: u8, len: u16, keep: u16 },
    Recv { consumer: u8 },
    RestartProducer { producer: u8 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..3, any::<u16>(), proptest::bool::weighted(0.15))
            .prop_map(|(producer, len, abort)| Op::Send { producer, len, abort }),
        1 => (0u8..3, any::<u16>(), any::<u16>())
            .prop_map(|(producer, len, keep)| Op::ShortCommit { producer, len, keep }),
        4 => (0u8..2).prop_map(|consumer| Op::Recv { consumer }),
        1 => (0u8..3).prop_map(|producer| Op::RestartProducer { producer }),
    ]
}

fn scale(raw: u16, max: usize) -> usize {
    match raw % 8 {
        0 => 0,
        1 => max,
        _ => raw as usize % (max + 1),
    }
}

fn msg(counter: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (counter as usize * 13 + i) as u8)
        .collect()
}

/// Runs `ops` against an mpmc ring (two consumers) and a FIFO model. In one
/// thread Vyukov's queue is FIFO, so the multiset check is exact order.
fn run_mpmc(slots: u64, size: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ring = mpmc::Ring::anonymous(Config::slots(slots, size)).unwrap();
    let max = ring.max_frame();
    let mut txs: Vec<_> = (0..3).map(|_| ring.producer().unwrap()).collect();
    let mut rxs: Vec<_> = (0..2).map(|_| ring.consumer().unwrap()).collect();
    // `None` is an aborted slot: it occupies its slot until a consumer
    // passes over it, but is never delivered.
    let mut model: VecDeque<Option<Vec<u8>>> = VecDeque::new();
    let mut counter = 0;
    for op in ops {
        counter += 1;
        match op {
            Op::Send {
                producer,
                len,
                abort,
            } => {
                let tx = &mut txs[producer as usize];
                let len = scale(len, max);
                match tx.try_reserve(len) {
                    Ok(mut g) => {
                        let m = msg(counter, len);
                        g.copy_from_slice(&m);
                        if abort {
                            g.abort();
                            model.push_back(None);
                        } else {
                            g.commit();
                            model.push_back(Some(m));
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e, SendError::Full);
                        prop_assert_eq!(
                            model.len() as u64,
                            slots,
                            "full only with every slot used"
                        );
                    }
                }
            }
            Op::ShortCommit {
                producer,
                len,
                keep,
            } => {
                let tx = &mut txs[producer as usize];
                let len = scale(len, max);
                if let Ok(mut g) = tx.try_reserve(len) {
                    let m = msg(counter, len);
                    g.copy_from_slice(&m);
                    let k = scale(keep, len);
                    g.commit_len(k);
                    model.push_back(Some(m[..k].to_vec()));
                }
            }
            Op::Recv { consumer } => {
                let got = rxs[consumer as usize].try_recv().map(|g| g.to_vec());
                while model.front() == Some(&None) {
                    model.pop_front();
                }
                match got {
                    Ok(m) => prop_assert_eq!(Some(Some(m)), model.pop_front()),
                    Err(e) => {
                        prop_assert_eq!(e, RecvError::Empty);
                        prop_assert!(model.is_empty());
                    }
                }
            }
            Op::RestartProducer { producer } => {
                txs[producer as usize] = ring.producer().unwrap();
            }
        }
    }
    for want in model.into_iter().flatten() {
        let got = rxs[0].try_recv().unwrap().to_vec();
        prop_assert_eq!(got, want);
    }
    prop_assert_eq!(rxs[1].try_recv().unwrap_err(), RecvError::Empty);
    Ok(())
}

/// The same against an mpsc ring (one consumer): frames come out in claim
/// order, which in one thread is commit order.
fn run_mpsc(capacity: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ring = mpsc::Ring::anonymous(Config::new(capacity)).unwrap();
    let max = ring.max_frame();
    let mut txs: Vec<_> = (0..3).map(|_| ring.producer().unwrap()).collect();
    let mut rx = ring.consumer().unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut counter = 0;
    for op in ops {
        counter += 1;
        match op {
            Op::Send {
                producer,
                len,
                abort,
            } => {
                let len = scale(len, max);
                match txs[producer as usize].try_reserve(len) {
                    Ok(mut g) => {
                        let m = msg(counter, len);
                        g.copy_from_slice(&m);
                        if abort {
                            drop(g); // dropping publishes a skip record
                        } else {
                            g.commit();
                            model.push_back(m);
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e, SendError::Full);
                        prop_assert!(!model.is_empty() || rx.len_hint() > 0);
                    }
                }
            }
            Op::ShortCommit {
                producer,
                len,
                keep,
            } => {
                let len = scale(len, max);
                if let Ok(mut g) = txs[producer as usize].try_reserve(len) {
                    let m = msg(counter, len);
                    g.copy_from_slice(&m);
                    let k = scale(keep, len);
                    g.commit_len(k);
                    model.push_back(m[..k].to_vec());
                }
            }
            Op::Recv { .. } => match rx.try_recv() {
                Ok(g) => prop_assert_eq!(Some(g.to_vec()), model.pop_front()),
                Err(e) => {
                    prop_assert_eq!(e, RecvError::Empty);
                    prop_assert!(model.is_empty());
                }
            },
            Op::RestartProducer { producer } => {
                txs[producer as usize] = ring.producer().unwrap();
            }
        }
    }
    while let Some(want) = model.pop_front() {
        let got = rx.try_recv().unwrap().to_vec();
        prop_assert_eq!(got, want);
    }
    prop_assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // Everything released was zeroed for the next lap, and a maximal frame
    // fits again.
    prop_assert!(txs[0].try_send(&vec![9; max]).is_ok());
    prop_assert_eq!(rx.try_recv().unwrap().len(), max);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mpmc_matches_model(
        slots in prop_oneof![Just(2u64), Just(4), Just(16)],
        size in prop_oneof![Just(1u64), Just(8), Just(33)],
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        run_mpmc(slots, size, ops)?;
    }

    #[test]
    fn mpsc_matches_model(
        capacity in prop_oneof![Just(64u64), Just(256), Just(1024)],
        ops in proptest::collection::vec(op(), 1..300),
    ) {
        run_mpsc(capacity, ops)?;
    }
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

#[test]
fn every_kind_pair_is_refused() {
    let t = TempFile(temp_path("kinds"));
    for (make, kind) in [(0, Kind::Spsc), (1, Kind::Mpsc), (2, Kind::Mpmc)] {
        let _ = std::fs::remove_file(&t.0);
        match make {
            0 => drop(spsc::Ring::create(&t.0, Config::new(4096)).unwrap()),
            1 => drop(mpsc::Ring::create(&t.0, Config::new(4096)).unwrap()),
            _ => drop(mpmc::Ring::create(&t.0, Config::slots(16, 8)).unwrap()),
        }
        let results = [
            (Kind::Spsc, spsc::Ring::open(&t.0).err()),
            (Kind::Mpsc, mpsc::Ring::open(&t.0).err()),
            (Kind::Mpmc, mpmc::Ring::open(&t.0).err()),
        ];
        for (as_kind, err) in results {
            if as_kind == kind {
                assert!(err.is_none(), "{kind} opens as itself");
            } else {
                match err {
                    Some(Error::WrongKind { found, expected }) => {
                        assert_eq!(found, mmring::KindName::Known(kind));
                        assert_eq!(expected, as_kind);
                    }
                    other => panic!("{kind} opened as {as_kind}: {other:?}"),
                }
            }
        }
    }
}

fn poke_u64(path: &std::path::Path, offset: u64, v: u64) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_ne_bytes(), offset).unwrap();
}

fn poke_u32(path: &std::path::Path, offset: u64, v: u32) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(&v.to_ne_bytes(), offset).unwrap();
}

#[test]
fn mpmc_tampered_stamps_and_lengths() {
    const DATA: u64 = 12288;
    const STRIDE: u64 = 16 + 8; // slot header + 8-byte payload
    let t = TempFile(temp_path("stamps"));
    let ring = mpmc::Ring::create(&t.0, Config::slots(4, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"ok").unwrap();
    // A stamp from the future on the slot the consumer would take next.
    poke_u64(&t.0, DATA, 1000);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::Stamp {
            pos: 0,
            stamp: 1000
        })
    );
    poke_u64(&t.0, DATA, 1);
    assert_eq!(&*rx.try_recv().unwrap(), b"ok");
    // A length beyond the slot: reported, and the slot is given back.
    tx.send(b"x").unwrap();
    poke_u32(&t.0, DATA + STRIDE + 8, 9);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::Slot {
            pos: 1,
            len: 9,
            flags: 0
        })
    );
    tx.send(b"after").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"after");
    // Cursors beyond any reachable position are refused, not overflowed.
    drop((tx, rx, ring));
    poke_u64(&t.0, 128, u64::MAX);
    poke_u64(&t.0, 256, u64::MAX);
    assert!(matches!(
        mpmc::Ring::open(&t.0).unwrap_err(),
        Error::Corrupt(Corruption::CursorOutOfRange { cursor: u64::MAX })
    ));
    poke_u64(&t.0, 128, 3);
    poke_u64(&t.0, 256, 3);
    let ring = mpmc::Ring::open(&t.0).unwrap();
    let mut tx = ring.producer().unwrap();
    // A stamp from the future where the producer claims next (position 3).
    poke_u64(&t.0, DATA + 3 * STRIDE, 100);
    assert_eq!(
        tx.try_send(b"y").unwrap_err(),
        SendError::Corrupt(Corruption::Stamp { pos: 3, stamp: 100 })
    );
}

#[test]
fn mpsc_tampered_frame_word() {
    let t = TempFile(temp_path("mpsc-word"));
    let ring = mpsc::Ring::create(&t.0, Config::new(4096)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(&[5; 16]).unwrap();
    poke_u64(&t.0, 12288, 0x1234_5678_0000_0010);
    assert!(matches!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::FrameWord { pos: 0, .. })
    ));
}

/// Threads: 2 producers x 2 consumers (mpmc) and 4 x 1 (mpsc); every
/// message exactly once, per-producer order kept by mpsc.
#[test]
fn threads_exactly_once() {
    const PER: u64 = 50_000;
    let ring = mpmc::Ring::anonymous(Config::slots(64, 16)).unwrap();
    let producers: Vec<_> = (0..2u64)
        .map(|p| {
            let mut tx = ring.producer().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER {
                    tx.send(&(p << 32 | i).to_le_bytes()).unwrap();
                }
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = ring.consumer().unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match rx.recv_timeout(Duration::from_secs(10)) {
                        Ok(g) => got.push(u64::from_le_bytes(g[..8].try_into().unwrap())),
                        Err(RecvError::Disconnected) => return got,
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for p in producers {
        p.join().unwrap();
    }
    let mut all: Vec<u64> = consumers
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    all.sort_unstable();
    let want: Vec<u64> = (0..2u64)
        .flat_map(|p| (0..PER).map(move |i| p << 32 | i))
        .collect();
    assert_eq!(all, want);

    let ring = mpsc::Ring::anonymous(Config::new(1 << 12)).unwrap();
    let producers: Vec<_> = (0..4u64)
        .map(|p| {
            let mut tx = ring.producer().unwrap();
            std::thread::spawn(move || {
                for i in 0..PER {
                    let len = (i % 40) as usize + 8;
                    let mut g = tx.reserve(len).unwrap();
                    g[..8].copy_from_slice(&(p << 32 | i).to_le_bytes());
                    g.commit();
                }
            })
        })
        .collect();
    let mut rx = ring.consumer().unwrap();
    let mut next = [0u64; 4];
    let mut n = 0;
    loop {
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(g) => {
                let v = u64::from_le_bytes(g[..8].try_into().unwrap());
                let (p, i) = ((v >> 32) as usize, v & 0xffff_ffff);
                assert_eq!(i, next[p], "producer {p} out of order");
                assert_eq!(g.len(), (i % 40) as usize + 8);
                next[p] += 1;
                n += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("{e}"),
        }
    }
    for p in producers {
        p.join().unwrap();
    }
    assert_eq!((n, next), (4 * PER, [PER; 4]));
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
