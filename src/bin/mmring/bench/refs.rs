//! References measured in one process: a single-thread `memcpy` (the floor
//! for copying frames in and out) and channels between threads (an mmring
//! ring, crossbeam-channel, std's `sync_channel`), the numbers a reader
//! compares the cross-process ring against. Every thread is joined before
//! these return, so the harness can fork again afterwards.

use std::hint::black_box;
use std::time::Instant;

use mmring::{AnyRing, Kind};

use super::stream::{Idle, recv_with, ring_config, send_with};

/// The size of a message the thread references move (a `[u8; MSG]`).
pub const MSG: usize = 64;

fn need_msg_size(size: usize) -> Result<(), String> {
    if size == MSG {
        Ok(())
    } else {
        Err(format!(
            "the thread references move {MSG}-byte arrays: use --size {MSG}"
        ))
    }
}

/// `n` copies of `size` bytes out of a source larger than the caches, so
/// the copy streams like a ring does; ns.
pub fn memcpy(n: u64, size: usize) -> u64 {
    let src = vec![1u8; (8 << 20).max(size)];
    let mut dst = vec![0u8; size];
    let slots = src.len() / size;
    let t = Instant::now();
    for i in 0..n as usize {
        let off = (i % slots) * size;
        dst.copy_from_slice(&src[off..off + size]);
        black_box(&mut dst);
    }
    t.elapsed().as_nanos() as u64
}

/// `n` frames of `size` bytes from one thread to another over an anonymous
/// ring of `kind` (`capacity` bytes, by default as [`Shape::ring`]), each
/// checked; ns.
///
/// [`Shape::ring`]: super::stream::Shape::ring
pub fn ring_threads(
    kind: Kind,
    size: usize,
    n: u64,
    blocking: bool,
    capacity: Option<u64>,
) -> Result<u64, String> {
    let cfg = ring_config(
        kind,
        size,
        capacity,
        ((size as u64 + 8) * 256).max(4 << 20).next_power_of_two(),
        4096,
    )?;
    let ring = AnyRing::anonymous(kind, cfg).map_err(|e| e.to_string())?;
    let (mut tx, mut rx) = (
        ring.producer().map_err(|e| e.to_string())?,
        ring.consumer().map_err(|e| e.to_string())?,
    );
    let idle = Idle::new(blocking, 2);
    let t = Instant::now();
    std::thread::scope(|s| {
        let sender = s.spawn(move || {
            for seq in 0..n {
                send_with(&mut tx, size, idle, |f| {
                    f[..8].copy_from_slice(&seq.to_le_bytes())
                })
                .map_err(|e| e.to_string())?;
            }
            Ok::<(), String>(())
        });
        for seq in 0..n {
            let got = recv_with(&mut rx, idle, |f| {
                u64::from_le_bytes(f[..8].try_into().unwrap())
            })
            .map_err(|e| e.to_string())?;
            if got != seq {
                return Err(format!("threads: frame {seq} arrived as {got}"));
            }
        }
        sender.join().map_err(|_| "sender panicked".to_string())?
    })?;
    Ok(t.elapsed().as_nanos() as u64)
}

/// `n` messages of `size` (= `MSG`) bytes through one bounded
/// crossbeam-channel from `p` producer threads to `c` consumer threads; ns.
pub fn crossbeam_threads(n: u64, p: u32, c: u32, size: usize) -> Result<u64, String> {
    need_msg_size(size)?;
    let (tx, rx) = crossbeam_channel::bounded::<[u8; MSG]>(4096);
    let t = Instant::now();
    std::thread::scope(|s| {
        for i in 0..p as u64 {
            let tx = tx.clone();
            let per = n / p as u64 + if i == 0 { n % p as u64 } else { 0 };
            s.spawn(move || {
                for seq in 0..per {
                    let mut m = [0u8; MSG];
                    m[..8].copy_from_slice(&seq.to_le_bytes());
                    tx.send(m).expect("a consumer is left");
                }
            });
        }
        drop(tx);
        for _ in 0..c {
            let rx = rx.clone();
            s.spawn(move || {
                while let Ok(m) = rx.recv() {
                    black_box(m[0]);
                }
            });
        }
    });
    Ok(t.elapsed().as_nanos() as u64)
}

/// `n` messages of `size` (= `MSG`) bytes from one thread to another
/// through std's bounded `sync_channel`, each checked; ns.
pub fn std_threads(n: u64, size: usize) -> Result<u64, String> {
    need_msg_size(size)?;
    let (tx, rx) = std::sync::mpsc::sync_channel::<[u8; MSG]>(4096);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..n {
                let mut m = [0u8; MSG];
                m[..8].copy_from_slice(&seq.to_le_bytes());
                tx.send(m).expect("the consumer is left");
            }
        });
        for seq in 0..n {
            let m = rx.recv().map_err(|e| e.to_string())?;
            if m[..8] != seq.to_le_bytes() {
                return Err(format!("threads: message {seq} out of order"));
            }
        }
        Ok::<(), String>(())
    })?;
    Ok(t.elapsed().as_nanos() as u64)
}
