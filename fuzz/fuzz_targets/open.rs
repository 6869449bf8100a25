//! Arbitrary bytes as a ring file: opening gives a ring or an error, never
//! a panic or a crash; an opened ring's consumer yields frames or an error.
#![no_main]

use std::io::Write;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut f = std::fs::File::from(
        rustix::fs::memfd_create("fuzz", rustix::fs::MemfdFlags::CLOEXEC).unwrap(),
    );
    f.write_all(data).unwrap();
    let fd = std::os::fd::OwnedFd::from(f);
    if let Ok(ring) = mmring::spsc::Ring::from_fd(fd) {
        if let Ok(mut rx) = ring.consumer() {
            for _ in 0..64 {
                match rx.try_recv() {
                    Ok(frame) => {
                        let _ = frame.iter().fold(0u8, |a, b| a ^ b);
                    }
                    Err(_) => break,
                }
            }
        }
    }
});
