//! The writing half of the two-terminal demo.
//!
//! ```text
//! terminal 1:  cargo run --release --example consumer
//! terminal 2:  cargo run --release --example producer -- /dev/shm/mmring-demo 1000000
//! ```
//!
//! Sends `COUNT` frames (default 10) on the named ring, each carrying its
//! sequence number, then detaches; the consumer sees `Disconnected` once it
//! has read them all. Either side may start first, and either may be
//! stopped and restarted: the ring file keeps what was committed.

use std::time::Instant;

use mmring::{Config, spsc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/dev/shm/mmring-demo".into());
    let count: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(10);

    let ring = spsc::Ring::open_or_create(&path, Config::new(1 << 20))?;
    let mut tx = ring.producer()?;
    let start = Instant::now();
    for seq in 0..count {
        let mut frame = tx.reserve(64)?; // blocks while the ring is full
        frame[..8].copy_from_slice(&seq.to_le_bytes());
        let text = format!("frame {seq}");
        frame[8..8 + text.len()].copy_from_slice(text.as_bytes());
        frame.commit_len(8 + text.len());
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {count} frames to {path} in {secs:.3} s ({:.2} M frames/s)",
        count as f64 / secs / 1e6
    );
    Ok(())
}
