//! Arbitrary operation sequences on an spsc ring against a FIFO model:
//! every committed frame comes out once, in order, intact; aborted
//! reservations never appear; restarts and reopening lose nothing.
#![no_main]

#[path = "common.rs"]
mod common;

use std::collections::VecDeque;

use common::{Op, pattern, scale};
use libfuzzer_sys::fuzz_target;
use mmring::{Config, RecvError, SendError, spsc};

fuzz_target!(|input: (u8, Vec<Op>)| {
    let (cap_log2, ops) = input;
    let ring = spsc::Ring::anonymous(Config::new(64 << (cap_log2 % 6))).unwrap();
    let file = std::fs::File::from(common::dup(&ring.as_fd()));
    let max = ring.max_frame();
    let mut ring = Some(ring);
    let mut tx = ring.as_ref().unwrap().producer().unwrap();
    let mut rx = ring.as_ref().unwrap().consumer().unwrap();
    let mut model: VecDeque<Vec<u8>> = VecDeque::new();
    for (counter, op) in ops.into_iter().enumerate() {
        match op {
            Op::Reserve { len, keep, .. } => {
                let len = scale(len, max);
                match tx.try_reserve(len) {
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
                        assert!(!model.is_empty(), "an empty ring takes any frame up to max");
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
            Op::RestartProducer { .. } => {
                drop(tx);
                tx = ring.as_ref().unwrap().producer().unwrap();
            }
            Op::RestartConsumer { .. } => {
                drop(rx);
                rx = ring.as_ref().unwrap().consumer().unwrap();
            }
            Op::Reopen => {
                drop(tx);
                drop(rx);
                drop(ring.take()); // unmap before attaching again
                let r = spsc::Ring::from_fd(common::dup(&file)).unwrap();
                tx = r.producer().unwrap();
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
