//! `mmring bench --kind broadcast --consumers N`: publisher throughput with
//! N subscriber processes, beside spsc's 1 x 1 stream of the same frames
//! and the cache-line round trip, measured in the same run.
//!
//! The publisher never waits for subscribers, so its rate is what it can
//! publish; each subscriber reports how many frames it received and how
//! many it lost to overruns (`Lagged`), and checks every frame's sequence
//! number against the one written in its first 8 bytes.

use std::io::{Read, Write};
use std::process::ExitCode;

use mmring::{Config, Kind, RecvError, broadcast};

use super::stream::{self, Shape};
use super::{Access, ROUND_TRIPS, histogram, ns, p50, rtt};
use crate::proc::{Gate, fork_child, now_ns, pin, wait_child};

pub fn run(size: usize, count: u64, subscribers: u32, compare: bool) -> Result<ExitCode, String> {
    let ring = ring(size, count, subscribers)?;
    let cap = ring.capacity();
    println!(
        "mmring bench: broadcast, 1 publisher x {subscribers} subscriber process(es), {size}-byte frames, {count} frames, {cap}-byte ring (publisher on CPU 0, subscribers on the others)"
    );
    let others = others();
    let run = stream(&ring, size, count, subscribers, others)?;
    let rate = count as f64 / (run.publisher_ns as f64 / 1e9);
    println!(
        "  publisher    {:>7.2} M frames/s  {:>6.2} GB/s  ({:.3} s)",
        rate / 1e6,
        rate * size as f64 / 1e9,
        run.publisher_ns as f64 / 1e9
    );
    let mut ok = true;
    for (i, s) in run.subscribers.iter().enumerate() {
        let complete = s.errors == 0 && s.got + s.lost == count;
        ok &= complete;
        println!(
            "  subscriber {i:<2} received {}, lost {} to overruns ({:.1}%){}",
            s.got,
            s.lost,
            100.0 * s.lost as f64 / count as f64,
            if complete {
                String::new()
            } else {
                format!(
                    "  {} CHECK ERRORS, {} unaccounted",
                    s.errors,
                    count.abs_diff(s.got + s.lost)
                )
            }
        );
    }
    // The references, in the same run.
    let shape = Shape {
        kind: Kind::Spsc,
        size: size.max(super::MIN_SIZE),
        count,
        producers: 1,
        consumers: 1,
        blocking: false,
        access: Access::Header,
        rate: 0.0,
        capacity: None,
        wait: mmring::WaitStrategy::SpinThenSleep,
        batch: 1,
        release_every: 0,
    };
    let spsc = stream::run_ring(&shape.ring()?, &shape, false)?;
    println!(
        "  spsc 1 x 1   {:>7.2} M frames/s  ({}-byte frames, same count; publisher / spsc = {:.2})",
        spsc.frames_per_s() / 1e6,
        shape.size,
        rate / spsc.frames_per_s()
    );
    if compare {
        let pipe = stream::pipe(shape.size, count, 0.0)?;
        println!(
            "  pipe 1 x 1   {:>7.2} M frames/s  (publisher / pipe = {:.2})",
            pipe.frames_per_s() / 1e6,
            rate / pipe.frames_per_s()
        );
    }
    latency(&ring, size, subscribers, others)?;
    let floor = rtt::cache_line(ROUND_TRIPS)?;
    println!(
        "  floor        one cache line round trip between two processes: p50 {}",
        ns(p50(&floor.hist))
    );
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The ring the saturation stream runs over: room for about 4096 frames of
/// `size` bytes, 4 MiB at the least.
fn ring(size: usize, count: u64, subscribers: u32) -> Result<broadcast::Ring, String> {
    if size < 8 {
        return Err("--size must be at least 8 bytes for broadcast".into());
    }
    if subscribers == 0 || count == 0 {
        return Err("--consumers and --count must be at least 1".into());
    }
    let cap = ((size as u64 + 16) * 4096).max(4 << 20).next_power_of_two();
    let ring = broadcast::Ring::anonymous(Config::new(cap)).map_err(|e| format!("ring: {e}"))?;
    if size > ring.max_frame() {
        return Err(format!(
            "--size exceeds the ring's max frame {}",
            ring.max_frame()
        ));
    }
    Ok(ring)
}

/// CPUs other than the publisher's (CPU 0), at least 1. The publisher has
/// a CPU of its own; the subscribers share the others (on a 2-CPU machine,
/// all of them share the second), so what the publisher's rate shows is
/// what subscribers cost it through memory, not through the scheduler.
fn others() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().max(2) - 1)
}

/// What one subscriber process of [`stream`] counted.
pub struct SubscriberCount {
    /// Frames received.
    pub got: u64,
    /// Frames lost to overruns (the sum of the `Lagged` counts).
    pub lost: u64,
    /// Frames whose sequence number did not match the one written in them,
    /// and errors other than `Lagged`.
    pub errors: u64,
}

/// One saturation stream: its publisher's time and what each subscriber
/// counted.
pub struct Stream {
    /// Nanoseconds from the publisher's first send to its last.
    pub publisher_ns: u64,
    pub subscribers: Vec<SubscriberCount>,
}

impl Stream {
    /// Frames not accounted for: check errors, plus every subscriber's
    /// received + lost that does not add up to `count`.
    pub fn errors(&self, count: u64) -> u64 {
        self.subscribers
            .iter()
            .map(|s| s.errors + count.abs_diff(s.got + s.lost))
            .sum()
    }
}

/// The publisher (its own process, on CPU 0) sends `count` frames of
/// `size` bytes as fast as it can to `subscribers` processes on the other
/// CPUs, released together by a start gate; each subscriber checks the
/// sequence number in every frame's first 8 bytes and counts what it
/// received and lost.
fn stream(
    ring: &broadcast::Ring,
    size: usize,
    count: u64,
    subscribers: u32,
    others: usize,
) -> Result<Stream, String> {
    let mut gate = Gate::new()?;
    let mut pids = Vec::new();
    let mut pipes = Vec::new();
    for i in 0..subscribers {
        let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let pid = fork_child(|| {
            pin(1 + i as usize % others);
            let mut rx = ring.subscriber().expect("subscriber");
            gate.child_wait();
            let (mut got, mut lost, mut errors) = (0u64, 0u64, 0u64);
            loop {
                match rx.recv() {
                    Ok(f) => {
                        let seq = u64::from_le_bytes(f[..8].try_into().expect("8 bytes"));
                        errors += u64::from(seq != f.seq());
                        got += 1;
                    }
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(RecvError::Disconnected) => break,
                    Err(_) => {
                        errors += 1;
                        break;
                    }
                }
            }
            let mut w = std::fs::File::from(w);
            let _ = writeln!(w, "{got} {lost} {errors}");
            0
        })?;
        pids.push(pid);
        pipes.push(r);
    }
    let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let publisher = fork_child(|| {
        pin(0);
        let mut tx = ring.publisher().expect("publisher");
        let mut buf = vec![0u8; size];
        gate.child_wait();
        let t0 = now_ns();
        for seq in 0..count {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            tx.send(&buf).expect("send");
        }
        let t1 = now_ns();
        let mut w = std::fs::File::from(w);
        let _ = writeln!(w, "{}", t1 - t0);
        0
    })?;
    gate.open(pids.len() + 1)?;
    let mut text = String::new();
    std::fs::File::from(r)
        .read_to_string(&mut text)
        .map_err(|e| format!("results: {e}"))?;
    let publisher_ns: u64 = text
        .trim()
        .parse()
        .map_err(|_| "publisher failed".to_string())?;
    wait_child(publisher)?;
    let mut counts = Vec::new();
    for (i, r) in pipes.into_iter().enumerate() {
        let mut text = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut text)
            .map_err(|e| format!("results: {e}"))?;
        let v: Vec<u64> = text
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        let [got, lost, errors] = v[..] else {
            return Err(format!("subscriber {i} failed"));
        };
        counts.push(SubscriberCount { got, lost, errors });
    }
    for pid in pids {
        wait_child(pid)?;
    }
    Ok(Stream {
        publisher_ns,
        subscribers: counts,
    })
}

/// `--case ring --kind broadcast`: one saturation stream of `count` frames
/// to `subscribers` processes (as `mmring bench --kind broadcast` measures
/// first): the publisher's time, and the frames not accounted for.
pub fn case(size: usize, count: u64, subscribers: u32) -> Result<(u64, u64), String> {
    let ring = ring(size, count, subscribers)?;
    let run = stream(&ring, size, count, subscribers, others())?;
    Ok((run.publisher_ns, run.errors(count)))
}

/// Frames per second of the paced latency phase, and how many.
const PACED_RATE: u64 = 100_000;
const PACED_FRAMES: u64 = 100_000;

/// Subscriber latency at a paced rate: the publisher sends
/// [`PACED_RATE`] frames a second, each stamped with the monotonic clock;
/// each subscriber records receive time minus stamp (blocking `recv`: it
/// spins briefly, then sleeps on the futex). Prints p50 / p99 / p99.9 over
/// all subscribers.
fn latency(
    ring: &broadcast::Ring,
    size: usize,
    subscribers: u32,
    others: usize,
) -> Result<(), String> {
    if size < 16 {
        return Ok(());
    }
    let mut gate = Gate::new()?;
    let mut pids = Vec::new();
    let mut pipes = Vec::new();
    for i in 0..subscribers {
        let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let pid = fork_child(|| {
            pin(1 + i as usize % others);
            let mut rx = ring.subscriber().expect("subscriber");
            gate.child_wait();
            let mut h = histogram();
            let mut lost = 0;
            loop {
                match rx.recv() {
                    Ok(f) => {
                        let t = u64::from_le_bytes(f[8..16].try_into().expect("8 bytes"));
                        let _ = h.record(now_ns().saturating_sub(t).max(1));
                    }
                    Err(RecvError::Lagged(n)) => lost += n,
                    Err(_) => break,
                }
            }
            let mut w = std::fs::File::from(w);
            let mut text = format!("lost {lost}\n");
            for v in h.iter_recorded() {
                text.push_str(&format!(
                    "h {} {}\n",
                    v.value_iterated_to(),
                    v.count_at_value()
                ));
            }
            let _ = w.write_all(text.as_bytes());
            0
        })?;
        pids.push(pid);
        pipes.push(r);
    }
    let publisher = fork_child(|| {
        pin(0);
        let mut tx = ring.publisher().expect("publisher");
        let mut buf = vec![0u8; size];
        gate.child_wait();
        let t0 = now_ns();
        let period = 1_000_000_000 / PACED_RATE;
        for seq in 0..PACED_FRAMES {
            let due = t0 + seq * period;
            while now_ns() < due {
                std::hint::spin_loop();
            }
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            buf[8..16].copy_from_slice(&now_ns().to_le_bytes());
            tx.send(&buf).expect("send");
        }
        0
    })?;
    gate.open(pids.len() + 1)?;
    wait_child(publisher)?;
    let mut h = histogram();
    let mut lost = 0;
    for r in pipes {
        let mut text = String::new();
        std::fs::File::from(r)
            .read_to_string(&mut text)
            .map_err(|e| format!("results: {e}"))?;
        for line in text.lines() {
            let v: Vec<u64> = line
                .split(' ')
                .skip(1)
                .filter_map(|x| x.parse().ok())
                .collect();
            match (line.split(' ').next(), v.as_slice()) {
                (Some("lost"), [n]) => lost += n,
                (Some("h"), [value, count]) => {
                    let _ = h.record_n(*value, *count);
                }
                _ => return Err(format!("unexpected result line {line:?}")),
            }
        }
    }
    for pid in pids {
        wait_child(pid)?;
    }
    println!(
        "  latency      publish to receive at {PACED_RATE} frames/s ({} samples, {lost} lost): p50 {}  p99 {}  p99.9 {}",
        h.len(),
        ns(h.value_at_quantile(0.5)),
        ns(h.value_at_quantile(0.99)),
        ns(h.value_at_quantile(0.999)),
    );
    Ok(())
}
