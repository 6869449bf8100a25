//! Random operation sequences against a `VecDeque<Vec<u8>>` model: every
//! committed frame comes out once, in order, intact; aborted reservations
//! never appear; small rings make every sequence cross wrap-around and the
//! full and empty edges many times.

use std::collections::VecDeque;

use mmring::{Config, RecvError, SendError, spsc};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    /// Reserve `len` (scaled to max_frame), write, then commit `keep` of it
    /// (scaled), or abort.
    Reserve { len: u16, keep: Option<u16> },
    /// Copying send.
    Send { len: u16 },
    /// Take one frame.
    Recv,
    /// Take up to `max` frames in one batch.
    Batch { max: u8 },
    /// Drop the consumer and claim the role again.
    RestartConsumer,
    /// Drop the producer and claim the role again.
    RestartProducer,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u16>(), proptest::option::weighted(0.8, any::<u16>()))
            .prop_map(|(len, keep)| Op::Reserve { len, keep }),
        2 => any::<u16>().prop_map(|len| Op::Send { len }),
        4 => Just(Op::Recv),
        1 => (1u8..8).prop_map(|max| Op::Batch { max }),
        1 => Just(Op::RestartConsumer),
        1 => Just(Op::RestartProducer),
    ]
}

/// Maps a raw value onto 0..=max, with the edges (0 and max) common.
fn scale(raw: u16, max: usize) -> usize {
    match raw % 8 {
        0 => 0,
        1 => max,
        _ => raw as usize % (max + 1),
    }
}

fn pattern(counter: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (counter as usize * 31 + i * 7) as u8)
        .collect()
}

fn run(capacity: u64, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let ring = spsc::Ring::anonymous(Config::new(capacity)).unwrap();
    let max = ring.max_frame();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    let mut counter = 0u64;

    let check_full = |model: &VecDeque<Vec<u8>>, err: SendError| -> Result<(), TestCaseError> {
        prop_assert_eq!(err, SendError::Full);
        prop_assert!(
            !model.is_empty(),
            "an empty ring must take any frame up to max"
        );
        Ok(())
    };

    for op in ops {
        match op {
            Op::Reserve { len, keep } => {
                let len = scale(len, max);
                counter += 1;
                match tx.try_reserve(len) {
                    Ok(mut g) => {
                        prop_assert_eq!(g.len(), len);
                        let bytes = pattern(counter, len);
                        g.copy_from_slice(&bytes);
                        match keep {
                            Some(k) => {
                                let k = scale(k, len);
                                g.commit_len(k);
                                model.push_back(bytes[..k].to_vec());
                            }
                            None => g.abort(),
                        }
                    }
                    Err(e) => check_full(&model, e)?,
                }
            }
            Op::Send { len } => {
                let len = scale(len, max);
                counter += 1;
                let bytes = pattern(counter, len);
                match tx.try_send(&bytes) {
                    Ok(()) => model.push_back(bytes),
                    Err(e) => check_full(&model, e)?,
                }
            }
            Op::Recv => match rx.try_recv() {
                Ok(frame) => {
                    let want = model.pop_front();
                    prop_assert_eq!(Some(&frame[..]), want.as_deref());
                }
                Err(e) => {
                    prop_assert_eq!(e, RecvError::Empty);
                    prop_assert!(
                        model.is_empty(),
                        "ring empty but model holds {}",
                        model.len()
                    );
                }
            },
            Op::Batch { max } => {
                let mut got = Vec::new();
                match rx.try_recv_batch(max as usize, |f| got.push(f.to_vec())) {
                    Ok(n) => {
                        prop_assert_eq!(n, got.len());
                        prop_assert_eq!(n, (max as usize).min(model.len()));
                        for frame in got {
                            prop_assert_eq!(Some(frame), model.pop_front());
                        }
                    }
                    Err(e) => {
                        prop_assert_eq!(e, RecvError::Empty);
                        prop_assert!(model.is_empty());
                    }
                }
            }
            Op::RestartConsumer => {
                drop(rx);
                rx = ring.consumer().unwrap();
            }
            Op::RestartProducer => {
                drop(tx);
                tx = ring.producer().unwrap();
            }
        }
    }
    // Drain: everything the model holds comes out, then the ring is empty.
    while let Some(want) = model.pop_front() {
        let frame = rx.try_recv().unwrap();
        prop_assert_eq!(&frame[..], &want[..]);
    }
    prop_assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    // And a maximal frame fits again.
    prop_assert!(tx.try_send(&vec![1; max]).is_ok());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn spsc_matches_model(
        capacity in prop_oneof![Just(64u64), Just(128), Just(256), Just(1024)],
        ops in proptest::collection::vec(op(), 1..400),
    ) {
        run(capacity, ops)?;
    }
}

/// After any sequence of frames, a full ring drained completely accepts a
/// frame of exactly `max_frame` bytes at every possible position.
#[test]
fn maximal_frame_fits_after_drain_at_every_offset() {
    for capacity in [64u64, 128, 4096] {
        let ring = spsc::Ring::anonymous(Config::new(capacity)).unwrap();
        let max = ring.max_frame();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        for step in 0..(capacity / 8) * 3 {
            // Advance the cursors by one empty frame (8 bytes) at a time.
            tx.try_send(&[]).unwrap();
            assert_eq!(rx.try_recv().unwrap().len(), 0);
            let big = vec![step as u8; max];
            tx.try_send(&big).unwrap();
            assert_eq!(&*rx.try_recv().unwrap(), &big[..]);
        }
    }
}
