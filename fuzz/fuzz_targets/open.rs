//! Arbitrary bytes as a ring file, of any size, opened as every kind: a ring
//! or a specific error, never a panic, hang or out-of-bounds access. An
//! opened ring is then used: frames read (in place) and written.
#![no_main]

#[path = "common.rs"]
mod common;

use libfuzzer_sys::fuzz_target;
use mmring::{mpmc, mpsc, spsc};

/// Opens the file as a ring of one flavour and, if that works, reads up to
/// 64 messages in place and writes a few.
macro_rules! exercise {
    ($f:expr, $ring:ty) => {
        if let Ok(ring) = <$ring>::from_fd(common::dup(&$f)) {
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
                for len in [0, 1, 8, 100] {
                    let _ = tx.try_send(&vec![7; len]);
                }
            }
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let f = common::file_with(data);
    exercise!(f, spsc::Ring);
    exercise!(f, mpsc::Ring);
    exercise!(f, mpmc::Ring);
});
