//! Arbitrary operation sequences on a broadcast ring against the model the
//! tests also run (`tests/common/bcast.rs`, included below): every frame a
//! subscriber returns is the logged one due, intact; every `Lagged(n)` is
//! exactly the frames overwritten; `latest` is the newest frame; a new
//! publisher continues the sequence. Then the same operations again with
//! arbitrary writes into the ring's header and data area (a buggy peer):
//! no crash, no frame longer than `max_frame`, only errors.
#![no_main]

#[path = "../../tests/common/bcast.rs"]
mod bcast;

use std::os::unix::fs::FileExt;

use libfuzzer_sys::fuzz_target;
use mmring::RecvError;

fuzz_target!(|data: &[u8]| {
    let split = data.len() / 2;
    let (cap, ops) = bcast::decode(&data[..split]);
    let mut m = bcast::Model::new(cap);
    for op in &ops {
        m.step(op);
    }
    // Corruption phase: pokes interleaved with the operations, checked
    // only for safety.
    let file = std::fs::File::from(m.ring.as_fd().try_clone_to_owned().unwrap());
    let len = file.metadata().unwrap().len();
    let max = m.ring.max_frame();
    // Subscribers of its own: the model's expectations end here.
    let mut subs: Vec<_> = (0..3).filter_map(|_| m.ring.subscriber().ok()).collect();
    if subs.is_empty() {
        return;
    }
    for c in data[split..].chunks_exact(8) {
        let n = subs.len();
        let rx = &mut subs[usize::from(c[4]) % n];
        let off = u64::from(u32::from_le_bytes([c[1], c[2], c[3], 0])) % len;
        match c[0] % 6 {
            0 | 1 => {
                let w = 1usize << (c[0] / 6 % 4);
                let off = off.min(len - w as u64);
                let _ = file.write_at(&c[..w], off);
            }
            2 => match rx.try_recv() {
                Ok(f) => assert!(f.len() <= max),
                Err(RecvError::Lagged(_) | RecvError::Empty | RecvError::Corrupt(_)) => {}
                Err(e) => panic!("{e:?}"),
            },
            3 => {
                if let Ok(Some(f)) = rx.latest() {
                    assert!(f.len() <= max);
                }
            }
            4 => {
                let n = usize::from(c[5]) % (max + 1);
                let _ = m.publisher().send(&vec![0x5a; n]);
            }
            _ => {
                let _ = m.ring.subscriber();
                let _ = m.ring.subscriber_from_oldest();
            }
        }
    }
});
