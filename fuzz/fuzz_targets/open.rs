//! Arbitrary bytes as a ring file, of any size, opened as every kind: a ring
//! or a specific error, never a panic, hang or out-of-bounds access. An
//! opened ring is then used: frames read (in place) and written.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mmring::{mpmc, mpsc, spsc};

fuzz_target!(|data: &[u8]| {
    let f = common::file_with(data);
    if let Ok(ring) = spsc::Ring::from_fd(common::dup(&f)) {
        let _ = ring.stat();
        if let Ok(mut rx) = ring.consumer() {
            for _ in 0..64 {
                match rx.try_recv() {
                    Ok(frame) => assert!(frame.len() <= ring.max_frame()),
                    Err(_) => break,
                }
            }
        }
        if let Ok(mut tx) = ring.producer() {
            for len in [0, 1, 8, 100] {
                let _ = tx.try_send(&vec![7; len]);
            }
        }
    }
    if let Ok(ring) = mpsc::Ring::from_fd(common::dup(&f)) {
        let _ = ring.stat();
        if let Ok(mut rx) = ring.consumer() {
            for _ in 0..64 {
                match rx.try_recv() {
                    Ok(frame) => assert!(frame.len() <= ring.max_frame()),
                    Err(_) => break,
                }
            }
        }
        if let Ok(mut tx) = ring.producer() {
            let _ = tx.try_send(&[1, 2, 3]);
        }
    }
    if let Ok(ring) = mpmc::Ring::from_fd(common::dup(&f)) {
        let _ = ring.stat();
        if let Ok(mut rx) = ring.consumer() {
            for _ in 0..64 {
                match rx.try_recv() {
                    Ok(msg) => assert!(msg.len() <= ring.max_frame()),
                    Err(_) => break,
                }
            }
        }
        if let Ok(mut tx) = ring.producer() {
            let _ = tx.try_send(&[1, 2, 3]);
        }
    }
});
