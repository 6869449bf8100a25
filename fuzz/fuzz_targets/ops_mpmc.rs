//! Arbitrary operation sequences on an mpmc ring (three producers, two
//! consumers) against a FIFO model in which an aborted slot occupies its
//! place until a consumer passes over it: every committed message comes out
//! exactly once, intact, and aborted slots never appear.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;

use common::{Op, pattern, scale};
use libfuzzer_sys::fuzz_target;
use mmring::{Config, RecvError, SendError, mpmc};

fuzz_target!(|input: (u8, u8, Vec<Op>)| {
    let (slots_log2, size, ops) = input;
    let slots = 2u64 << (slots_log2 % 5);
    let ring = mpmc::Ring::anonymous(Config::slots(slots, 1 + size as u64 % 64)).unwrap();
    let file = std::fs::File::from(common::dup(&ring.as_fd()));
    let max = ring.max_frame();
    let mut ring = Some(ring);
    let attach = |r: &mpmc::Ring| {
        let txs: Vec<_> = (0..3).map(|_| r.producer().unwrap()).collect();
        let rxs: Vec<_> = (0..2).map(|_| r.consumer().unwrap()).collect();
        (txs, rxs)
    };
    let (mut txs, mut rxs) = attach(ring.as_ref().unwrap());
    let mut model: VecDeque<Option<Vec<u8>>> = VecDeque::new();
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
                                model.push_back(Some(m[..k].to_vec()));
                            }
                            None => {
                                g.abort();
                                model.push_back(None);
                            }
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, SendError::Full);
                        assert_eq!(model.len() as u64, slots, "full only with every slot used");
                    }
                }
            }
            Op::Recv { consumer } => {
                let got = rxs[consumer as usize % 2].try_recv().map(|g| g.to_vec());
                while model.front() == Some(&None) {
                    model.pop_front();
                }
                match got {
                    Ok(m) => assert_eq!(Some(Some(m)), model.pop_front()),
                    Err(e) => {
                        assert_eq!(e, RecvError::Empty);
                        assert!(model.is_empty());
                    }
                }
            }
            Op::RestartConsumer { consumer } => {
                rxs[consumer as usize % 2] = ring.as_ref().unwrap().consumer().unwrap();
            }
            Op::Batch { .. } => {}
            Op::RestartProducer { producer } => {
                txs[producer as usize % 3] = ring.as_ref().unwrap().producer().unwrap();
            }
            Op::Reopen => {
                txs.clear();
                rxs.clear();
                drop(ring.take()); // unmap before attaching again
                let r = mpmc::Ring::from_fd(common::dup(&file)).unwrap();
                (txs, rxs) = attach(&r);
                ring = Some(r);
            }
        }
    }
    for want in model.into_iter().flatten() {
        assert_eq!(rxs[0].try_recv().unwrap().to_vec(), want);
    }
    assert_eq!(rxs[1].try_recv().unwrap_err(), RecvError::Empty);
});
