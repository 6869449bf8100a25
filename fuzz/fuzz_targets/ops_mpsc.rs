//! Arbitrary operation sequences on an mpsc ring (three producers) against a FIFO
//! model:
//! every committed frame comes out once, in order, intact; aborted
//! reservations never appear; restarts and reopening lose nothing.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;

use common::{Op, pattern, scale};
use libfuzzer_sys::fuzz_target;
use mmring::{Config, RecvError, SendError, mpsc};

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (cap_log2, ops) = input;
    let ring = mpsc::Ring::anonymous(Config::new(64 << (cap_log2 % 6))).unwrap();
    let file = std::fs::File::from(common::dup(&ring.as_fd()));
    let max = ring.max_frame();
    let mut ring = Some(ring);
    let mut txs: Vec<_> = (0..3)
        .map(|_| ring.as_ref().unwrap().producer().unwrap())
        .collect();
    let mut rx = ring.as_ref().unwrap().consumer().unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for (counter, op) in ops.into_iter().enumerate() {
        match op {
            Op::Reserve {
                producer,
                len,
                keep,
            } => {
                let len = scale(len, max);
                match txs[producer as usize % 3].try_reserve(len) {
                    Ok(mut g) => {
                        let m = pattern(counter as u64, len);
                        g.copy_from_slice(&m);
                        match keep {
                            Some(k) => {
                                let k = scale(k, len);
                                g.commit_len(k);
                                model.push_back(m[..k].to_vec());
                            }
                            None => g.abort(),
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, SendError::Full);
                        // Skip records of aborted claims take room until the
                        // consumer passes them.
                        assert!(!model.is_empty() || rx.len_hint() > 0);
                    }
                }
            }
            Op::Recv { .. } => match rx.try_recv() {
                Ok(f) => assert_eq!(Some(&f[..]), model.pop_front().as_deref()),
                Err(e) => {
                    assert_eq!(e, RecvError::Empty);
                    assert!(model.is_empty());
                }
            },
            Op::Batch { max: m } => {
                let mut got = Vec::new();
                match rx.try_recv_batch(m as usize + 1, |f| got.push(f.to_vec())) {
                    Ok(n) => {
                        assert_eq!(n, (m as usize + 1).min(model.len()));
                        for f in got {
                            assert_eq!(Some(f), model.pop_front());
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, RecvError::Empty);
                        assert!(model.is_empty());
                    }
                }
            }
            Op::RestartProducer { producer } => {
                let i = producer as usize % 3;
                txs[i] = ring.as_ref().unwrap().producer().unwrap();
            }
            Op::RestartConsumer { .. } => {
                drop(rx);
                rx = ring.as_ref().unwrap().consumer().unwrap();
            }
            Op::Reopen => {
                txs.clear();
                drop(rx);
                drop(ring.take()); // unmap before attaching again
                let r = mpsc::Ring::from_fd(common::dup(&file)).unwrap();
                txs = (0..3).map(|_| r.producer().unwrap()).collect();
                rx = r.consumer().unwrap();
                ring = Some(r);
            }
        }
    }
    while let Some(want) = model.pop_front() {
        assert_eq!(&*rx.try_recv().unwrap(), &want[..]);
    }
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
});
