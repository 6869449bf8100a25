//! A valid ring with frames in it, then arbitrary writes into its header and
//! data area (as a buggy peer would make) interleaved with receiving and
//! sending: every frame handed out lies inside the data area and within the
//! maximum size, or the call reports an error. The process never crashes,
//! not even when the file is truncated under the mapping (the access that
//! faults reads zeros; see `fault.rs`) and grown back.
#![no_main]

#[path = "common.rs"]
mod common;

use std::os::unix::fs::FileExt;

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use mmring::{Config, mpmc, mpsc, spsc};

/// Bytes in front of the data area (layout version 2).
const HEADER: u64 = 12288;

#[derive(Arbitrary, Debug)]
enum Action {
    /// Write `value` (1, 2, 4 or 8 bytes of it) at `offset` in the file.
    Poke {
        offset: u16,
        value: u64,
        width: u8,
    },
    Recv,
    Send {
        len: u16,
    },
    ReopenConsumer,
    /// Truncate the file to `len` (scaled to at most its ring length).
    Truncate {
        len: u16,
    },
    /// Grow the file back to its ring length (the mapping stays zeros if it
    /// was poisoned; the file's new pages are zeros too).
    Regrow,
}

#[derive(Arbitrary, Debug)]
struct Input {
    kind: u8,
    capacity_log2: u8,
    frames: Vec<u16>,
    actions: Vec<Action>,
}

/// Runs the actions against one flavour; `$ring` is its `Ring` type.
macro_rules! run {
    ($ring:ty, $file:expr, $input:expr, $cfg:expr) => {{
        let file = $file;
        let ring = <$ring>::from_fd(common::dup(&file)).unwrap();
        let max = ring.max_frame();
        let mut tx = ring.producer().unwrap();
        let mut rx = ring.consumer().unwrap();
        for len in &$input.frames {
            let _ = tx.try_send(&vec![0xab; *len as usize % (max + 1)]);
        }
        let file_len = file.metadata().unwrap().len();
        for a in &$input.actions {
            match a {
                Action::Poke {
                    offset,
                    value,
                    width,
                } => {
                    let w = 1usize << (width % 4);
                    let off = (*offset as u64) % file_len.saturating_sub(w as u64).max(1);
                    let _ = file.write_at(&value.to_ne_bytes()[..w], off);
                }
                Action::Recv => {
                    if let Ok(frame) = rx.try_recv() {
                        assert!(frame.len() <= max, "frame longer than max_frame");
                        // Touch every byte in place.
                        std::hint::black_box(frame.iter().fold(0u8, |x, b| x ^ b));
                    }
                }
                Action::Send { len } => {
                    let _ = tx.try_send(&vec![0xcd; *len as usize % (max + 1)]);
                }
                Action::Truncate { len } => {
                    let _ = file.set_len(*len as u64 % (file_len + 1));
                }
                Action::Regrow => {
                    let _ = file.set_len(file_len);
                }
                Action::ReopenConsumer => {
                    drop(rx);
                    match ring.consumer() {
                        Ok(c) => rx = c,
                        // Corrupt cursors refuse the attach; stop here.
                        Err(_) => return,
                    }
                }
            }
        }
    }};
}

fuzz_target!(|input: Input| {
    let cap = 1u64 << (6 + input.capacity_log2 % 7); // 64 .. 4096
    // A regular file copy of a fresh ring: unlike the (sealed) memfd of an
    // anonymous ring, it can be truncated and grown under the mapping.
    let anon_file = |f: std::os::fd::BorrowedFd<'_>, len: u64| common::resizable_copy(&f, len);
    match input.kind % 3 {
        0 => {
            let r = spsc::Ring::anonymous(Config::new(cap)).unwrap();
            let f = anon_file(r.as_fd(), HEADER + r.capacity());
            drop(r);
            run!(spsc::Ring, f, input, cap)
        }
        1 => {
            let r = mpsc::Ring::anonymous(Config::new(cap)).unwrap();
            let f = anon_file(r.as_fd(), HEADER + r.capacity());
            drop(r);
            run!(mpsc::Ring, f, input, cap)
        }
        _ => {
            let r = mpmc::Ring::anonymous(Config::slots(cap / 16, 24)).unwrap();
            let f = anon_file(r.as_fd(), HEADER + r.capacity());
            drop(r);
            run!(mpmc::Ring, f, input, cap)
        }
    }
});
