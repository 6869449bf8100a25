//! Shared by the fuzz targets `open` and `consume_corrupt`: files from
//! bytes. (The `ops_*` targets share the tests' model instead:
//! `tests/common/model.rs`.)
#![allow(dead_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

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
