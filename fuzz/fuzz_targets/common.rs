//! Shared by the fuzz targets `open` and `consume_corrupt`: files from
//! bytes. (The `ops_*` targets share the tests' model instead:
//! `tests/common/model.rs`.)
#![allow(dead_code)]

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::FileExt;

/// A memfd holding `bytes`: a "ring file" of any content and size, sealed
/// against shrinking as `from_fd` requires of a memfd.
pub fn file_with(bytes: &[u8]) -> std::fs::File {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd =
        rustix::fs::memfd_create("fuzz", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING).unwrap();
    let f = std::fs::File::from(fd);
    f.write_all_at(bytes, 0).unwrap();
    rustix::fs::fcntl_add_seals(&f, SealFlags::SHRINK | SealFlags::GROW).unwrap();
    f
}

/// An unlinked regular file (tmpfs when /dev/shm exists) holding a copy of
/// the first `len` bytes of `fd`: a ring whose file can be truncated and
/// grown again, as a named ring's can.
pub fn resizable_copy(fd: &impl AsFd, len: u64) -> std::fs::File {
    use rustix::fs::{Mode, OFlags};
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let tmp = rustix::fs::open(
        &dir,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let mut bytes = vec![0u8; len as usize];
    let mut got = 0;
    while got < bytes.len() {
        match rustix::io::pread(fd, &mut bytes[got..], got as u64).unwrap() {
            0 => break,
            n => got += n,
        }
    }
    let f = std::fs::File::from(tmp);
    f.write_all_at(&bytes, 0).unwrap();
    f
}

pub fn dup(f: &impl AsFd) -> OwnedFd {
    f.as_fd().try_clone_to_owned().unwrap()
}
