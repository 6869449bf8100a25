//! The reading half of the two-terminal demo (see `producer.rs`).
//!
//! ```text
//! cargo run --release --example consumer -- /dev/shm/mmring-demo
//! ```
//!
//! Waits for frames (sleeping in the kernel, not polling), checks that
//! their sequence numbers are consecutive, prints the first few and a
//! summary, and exits once a producer that attached while it ran has gone
//! and the ring is empty. Started after an earlier producer has come and
//! gone, it waits for the next one, as a FIFO reader does.

use mmring::{Config, RecvError, spsc};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/dev/shm/mmring-demo".into());
    let ring = spsc::Ring::open_or_create(&path, Config::new(1 << 20))?;
    let mut rx = ring.consumer()?;
    // Producers seen so far: one that attaches after this is ours.
    let attaches = ring.stat().producer.attaches;
    let mut fed = rx.is_producer_attached();
    println!("waiting for frames on {path}");
    let mut received = 0u64;
    let mut expected: Option<u64> = None;
    loop {
        match rx.recv() {
            Ok(frame) => {
                let seq = u64::from_le_bytes(frame[..8].try_into()?);
                if let Some(e) = expected {
                    if seq != e {
                        eprintln!("gap: expected frame {e}, got {seq}");
                    }
                }
                expected = Some(seq + 1);
                if received < 5 {
                    println!("{}", String::from_utf8_lossy(&frame[8..]));
                }
                received += 1;
            }
            Err(RecvError::Disconnected) => {
                fed |= ring.stat().producer.attaches != attaches;
                if fed {
                    break;
                }
                // No producer yet: look again shortly.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(e.into()),
        }
    }
    println!("producer gone; received {received} frames");
    Ok(())
}
