//! Shared by the fuzz targets: files from bytes, and the operation model.
#![allow(dead_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

use libfuzzer_sys::arbitrary::{self, Arbitrary};

/// A memfd holding `bytes`: a "ring file" of any content and size.
pub fn file_with(bytes: &[u8]) -> std::fs::File {
    let fd = rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
    let f = std::fs::File::from(fd);
    f.write_all_at(bytes, 0).unwrap();
    f
}

pub fn dup(f: &impl AsFd) -> OwnedFd {
    f.as_fd().try_clone_to_owned().unwrap()
}

/// One step of an operation sequence.
#[derive(Arbitrary, Debug, Clone)]
pub enum Op {
    /// Reserve `len` (scaled), write a pattern, then commit `keep` bytes
    /// (scaled) or abort (`None`).
    Reserve {
        producer: u8,
        len: u16,
        keep: Option<u16>,
    },
    /// Take one message.
    Recv { consumer: u8 },
    /// Take up to `max` frames in one batch (framed rings).
    Batch { max: u8 },
    /// Drop a producer handle and attach a new one.
    RestartProducer { producer: u8 },
    /// Drop a consumer handle and attach a new one.
    RestartConsumer { consumer: u8 },
    /// Drop every handle and the ring, and attach again through the fd.
    Reopen,
}

/// Maps a raw value onto 0..=max, with the edges common.
pub fn scale(raw: u16, max: usize) -> usize {
    match raw % 8 {
        0 => 0,
        1 => max,
        _ => raw as usize % (max + 1),
    }
}

pub fn pattern(counter: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (counter as usize * 31 + i * 7) as u8)
        .collect()
}
