//! The library in one command: a producer and a consumer process on an
//! anonymous ring, a few million checked frames, throughput and round-trip
//! latency (the README's `mmring` tool section names it; `mmring bench` is
//! the measuring harness).
//!
//! ```text
//! cargo run --release --example demo [-- FRAMES]
//! ```
//!
//! The process forks: the child produces (and later echoes), the parent
//! consumes and measures. Both stages check every frame's sequence number.

use std::time::{Duration, Instant};

use crossbeam_utils::Backoff;
use mmring::{Config, RecvError, SendError, spsc};

const FRAME: usize = 64;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let frames: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(5_000_000);
    let round_trips = 100_000u64;

    let stream = spsc::Ring::anonymous(Config::new(1 << 20))?;
    let ping = spsc::Ring::anonymous(Config::new(1 << 12))?;
    let pong = spsc::Ring::anonymous(Config::new(1 << 12))?;

    // SAFETY: single-threaded at this point; the child only uses the rings
    // and exits with `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    if pid == 0 {
        let code = match child(&stream, &ping, &pong, frames, round_trips) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("child: {e}");
                1
            }
        };
        // SAFETY: leave without unwinding into the parent's state.
        unsafe { libc::_exit(code) };
    }

    // Stage 1: throughput. The child writes 64-byte frames in place; we read
    // them in place, checking each sequence number.
    let mut rx = stream.consumer()?;
    let start = Instant::now();
    for seq in 0..frames {
        let frame = recv_spin(&mut rx)?;
        let got = u64::from_le_bytes(frame[..8].try_into()?);
        if got != seq || frame.len() != FRAME {
            return Err(format!("frame {seq}: got {got} ({} bytes)", frame.len()).into());
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "throughput: {frames} x {FRAME} B frames in {secs:.3} s = {:.1} M frames/s, {:.2} GB/s",
        frames as f64 / secs / 1e6,
        (frames * FRAME as u64) as f64 / secs / 1e9
    );

    // Stage 2: round trips over two rings, both sides spinning.
    let mut tx = ping.producer()?;
    let mut rx = pong.consumer()?;
    let mut rtts = Vec::with_capacity(round_trips as usize);
    for seq in 0..round_trips {
        let t0 = Instant::now();
        send_spin(&mut tx, &seq.to_le_bytes())?;
        let reply = recv_spin(&mut rx)?;
        rtts.push(t0.elapsed());
        if reply[..8] != seq.to_le_bytes() {
            return Err(format!("round trip {seq}: wrong reply").into());
        }
    }
    rtts.sort();
    let pct = |p: f64| rtts[((rtts.len() as f64 * p) as usize).min(rtts.len() - 1)];
    println!(
        "round trip (spinning, two processes): median {:?}, p99 {:?}, p99.9 {:?}",
        pct(0.5),
        pct(0.99),
        pct(0.999)
    );
    drop(tx);
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        return Err("child failed".into());
    }
    println!("all {frames} frames and {round_trips} round trips checked");
    Ok(())
}

fn child(
    stream: &spsc::Ring,
    ping: &spsc::Ring,
    pong: &spsc::Ring,
    frames: u64,
    round_trips: u64,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut tx = stream.producer()?;
    for seq in 0..frames {
        let mut g = loop {
            match tx.try_reserve(FRAME) {
                Ok(g) => break g,
                Err(SendError::Full) => std::hint::spin_loop(),
                Err(e) => return Err(e.into()),
            }
        };
        g[..8].copy_from_slice(&seq.to_le_bytes());
        g.commit();
    }
    let mut rx = ping.consumer()?;
    let mut tx = pong.producer()?;
    for _ in 0..round_trips {
        let msg = recv_spin(&mut rx)?;
        let mut buf = [0u8; 8];
        buf.copy_from_slice(&msg[..8]);
        drop(msg);
        send_spin(&mut tx, &buf)?;
    }
    // Wait for the parent to finish with the rings before exiting.
    let _ = rx.recv_timeout(Duration::from_secs(5));
    Ok(())
}

fn recv_spin(rx: &mut spsc::Consumer) -> Result<spsc::ReadGrant<'_>, RecvError> {
    let backoff = Backoff::new();
    // Spin (never sleeping: the point is the latency floor), letting the
    // scheduler in now and then on a busy machine.
    while rx.is_empty() {
        if backoff.is_completed() {
            std::thread::yield_now();
        } else {
            backoff.spin();
        }
    }
    rx.try_recv()
}

fn send_spin(tx: &mut spsc::Producer, bytes: &[u8]) -> Result<(), SendError> {
    loop {
        match tx.try_send(bytes) {
            Err(SendError::Full) => std::hint::spin_loop(),
            other => return other,
        }
    }
}
