//! One operation model (`common/model.rs`) run over every flavour and over
//! `AnyRing` of every kind: random op sequences (reserve and commit, short
//! commit or abort; copying, pod and batched sends; receives one at a time,
//! in batches and by iterator; restarted handles; reattaching through the
//! fd) must match the model exactly at every step. The fuzz targets
//! `ops_*` run the same model on fuzzer input.

mod common;

use common::model::{self, Op, TestFlavour};
use mmring::mpmc::Mpmc;
use mmring::mpsc::Mpsc;
use mmring::spsc::Spsc;
use mmring::{AnyKind, Config, Kind, spsc};
use proptest::prelude::*;

fn handle() -> impl Strategy<Value = u8> {
    0u8..4
}

fn keep() -> impl Strategy<Value = Option<u16>> {
    proptest::option::weighted(0.8, any::<u16>())
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (handle(), any::<u16>(), keep(), proptest::bool::weighted(0.2))
            .prop_map(|(producer, len, keep, blocking)| Op::Reserve { producer, len, keep, blocking }),
        2 => (handle(), any::<u16>(), proptest::bool::weighted(0.2))
            .prop_map(|(producer, len, blocking)| Op::Send { producer, len, blocking }),
        1 => (handle(), any::<u64>()).prop_map(|(producer, value)| Op::SendPod { producer, value }),
        1 => (
            handle(),
            proptest::collection::vec((any::<u16>(), keep()), 0..6),
            proptest::option::of(handle()),
            any::<bool>(),
        )
            .prop_map(|(producer, frames, peek, publish)| Op::Batch { producer, frames, peek, publish }),
        1 => (handle(), proptest::collection::vec(any::<u16>(), 0..6))
            .prop_map(|(producer, lens)| Op::SendBatch { producer, lens }),
        4 => (handle(), any::<u8>()).prop_map(|(consumer, how)| Op::Recv { consumer, how }),
        1 => (handle(), 0u8..8, any::<bool>())
            .prop_map(|(consumer, max, blocking)| Op::RecvBatch { consumer, max, blocking }),
        1 => (handle(), 0u8..8).prop_map(|(consumer, max)| Op::TryIter { consumer, max }),
        1 => handle().prop_map(|producer| Op::RestartProducer { producer }),
        1 => handle().prop_map(|consumer| Op::RestartConsumer { consumer }),
        1 => Just(Op::Reopen),
    ]
}

fn ops(max_len: usize) -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..max_len)
}

fn run<P: TestFlavour>(kind: Kind, shape: u8, size: u8, ops: &[Op]) {
    let ring = P::anonymous(kind, model::small_config(kind, shape, size)).unwrap();
    model::run(ring, ops);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn spsc_matches_model(shape in any::<u8>(), ops in ops(400)) {
        run::<Spsc>(Kind::Spsc, shape, 0, &ops);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn mpsc_matches_model(shape in any::<u8>(), ops in ops(300)) {
        run::<Mpsc>(Kind::Mpsc, shape, 0, &ops);
    }

    #[test]
    fn mpmc_matches_model(shape in any::<u8>(), size in any::<u8>(), ops in ops(300)) {
        run::<Mpmc>(Kind::Mpmc, shape, size, &ops);
    }
}

proptest! {
    // The kind-erased handles dispatch to the same protocols: fewer cases.
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn any_ring_matches_model(
        kind in prop_oneof![Just(Kind::Spsc), Just(Kind::Mpsc), Just(Kind::Mpmc)],
        shape in any::<u8>(),
        size in any::<u8>(),
        ops in ops(300),
    ) {
        run::<AnyKind>(kind, shape, size, &ops);
    }
}

/// Cases proptest once shrank to, kept as plain tests.
#[test]
fn regressions() {
    // mpmc, 2 slots of 1 byte: an aborted slot, then two empty messages
    // (the third claim must wait for the aborted slot to be passed).
    let ops = [
        Op::Reserve {
            producer: 0,
            len: 0,
            keep: None,
            blocking: false,
        },
        Op::Send {
            producer: 0,
            len: 0,
            blocking: false,
        },
        Op::Send {
            producer: 0,
            len: 0,
            blocking: false,
        },
    ];
    for kind in model::KINDS {
        run::<AnyKind>(kind, 0, 0, &ops);
    }
    run::<Mpmc>(Kind::Mpmc, 0, 0, &ops);
}

/// The fuzz targets' decoder turns any bytes into ops, and the model runs
/// them: a smoke test of the fuzz entry points on stable.
#[test]
fn fuzz_decoder_runs_on_any_bytes() {
    for seed in 0..200u64 {
        let bytes: Vec<u8> = (0..seed * 3).map(|i| common::mix(seed ^ i) as u8).collect();
        let (shape, size, ops) = model::decode(&bytes);
        assert_eq!(ops.is_empty(), bytes.len() <= 2);
        for kind in model::KINDS {
            run::<AnyKind>(kind, shape, size, &ops);
        }
    }
}

/// `encode` writes what `decode` reads back, so fuzz seeds can be written
/// as op sequences and every op is reachable from fuzzer input.
#[test]
fn fuzz_input_encodes_and_decodes() {
    for seed in 0..300u64 {
        let bytes: Vec<u8> = (0..seed * 2)
            .map(|i| common::mix(seed ^ i << 8) as u8)
            .collect();
        let (shape, size, ops) = model::decode(&bytes);
        let again = model::encode(shape, size, &ops);
        assert_eq!(model::decode(&again), (shape, size, ops));
    }
}

/// Writes fuzz seeds for `ops_*` in the decoder's format: a few op
/// sequences that reach batches, peeks, iterators, restarts and reopening.
/// `cargo test --test model -- --ignored write_fuzz_seeds`
#[test]
#[ignore = "writes fuzz/seeds/ops_*/model-*; run by hand when the format changes"]
fn write_fuzz_seeds() {
    use Op::*;
    let seqs: Vec<Vec<Op>> = vec![
        // The mpmc regression: an aborted slot, then two empty messages.
        vec![
            Reserve {
                producer: 0,
                len: 0,
                keep: None,
                blocking: false,
            },
            Send {
                producer: 0,
                len: 0,
                blocking: false,
            },
            Send {
                producer: 0,
                len: 0,
                blocking: false,
            },
            Recv {
                consumer: 0,
                how: 0,
            },
        ],
        // A batch with a peek while open, then receives of every kind.
        vec![
            Send {
                producer: 1,
                len: 9,
                blocking: true,
            },
            Batch {
                producer: 1,
                frames: vec![(3, Some(2)), (17, None), (1, Some(1))],
                peek: Some(1),
                publish: true,
            },
            SendBatch {
                producer: 2,
                lens: vec![0, 1, 5, 9],
            },
            RecvBatch {
                consumer: 1,
                max: 2,
                blocking: true,
            },
            TryIter {
                consumer: 0,
                max: 3,
            },
            Recv {
                consumer: 0,
                how: 2,
            },
            Recv {
                consumer: 1,
                how: 1,
            },
        ],
        // Fill, restart both sides, reopen through the fd, drain.
        vec![
            SendPod {
                producer: 0,
                value: 0x0101_0101 * 7,
            },
            Reserve {
                producer: 1,
                len: 1,
                keep: Some(3),
                blocking: false,
            },
            Reserve {
                producer: 2,
                len: 1,
                keep: Some(1),
                blocking: true,
            },
            Send {
                producer: 0,
                len: 1,
                blocking: false,
            },
            Send {
                producer: 0,
                len: 1,
                blocking: false,
            },
            RestartProducer { producer: 0 },
            RestartConsumer { consumer: 0 },
            Reopen,
            RecvBatch {
                consumer: 0,
                max: 7,
                blocking: false,
            },
            TryIter {
                consumer: 1,
                max: 7,
            },
        ],
    ];
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for (i, ops) in seqs.iter().enumerate() {
        for target in ["ops_spsc", "ops_mpsc", "ops_mpmc"] {
            for (shape, size) in [(0u8, 0u8), (0x81, 7)] {
                let bytes = model::encode(shape, size, ops);
                assert_eq!(model::decode(&bytes).2, *ops);
                let name = format!("model-{i}-{shape:02x}");
                std::fs::write(dir.join(target).join(name), bytes).unwrap();
            }
        }
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
