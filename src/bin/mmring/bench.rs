//! `mmring bench`: producer and consumer processes on an anonymous ring.
//!
//! The parent creates the ring, forks the producers and consumers, lets
//! them attach, then releases them all at once and times the stream until
//! the last consumer has checked the last frame. Every frame carries its
//! producer's sequence number; one in 64 also carries the monotonic clock
//! at send, from which the consumer records one-way latency (send to
//! receive, queueing included) in an HDR histogram. `--compare` runs the
//! same workload over a pipe and a Unix stream socket in the same run.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use mmring::{Config, Kind, RecvError};

use crate::KindArg;
use crate::proc::{Gate, fork_child, now_ns, pin, shared_counter, unpin, wait_child};
use mmring::{AnyConsumer, AnyProducer, AnyRing, SendError};

/// Latency is sampled on one frame in this many.
const SAMPLE: u64 = 64;
/// Bytes every frame needs: sequence number, producer id, timestamp.
const MIN_SIZE: usize = 24;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ring flavour.
    #[arg(long, value_enum, default_value = "spsc")]
    kind: KindArg,
    /// Bytes per frame (at least 24; K, M suffixes).
    #[arg(long, default_value = "64", value_parser = crate::parse_size)]
    size: u64,
    /// Frames in all (split among producers).
    #[arg(long, default_value_t = 5_000_000)]
    count: u64,
    /// Producer processes (spsc: 1).
    #[arg(long, default_value_t = 1)]
    producers: u32,
    /// Consumer processes (spsc and mpsc: 1).
    #[arg(long, default_value_t = 1)]
    consumers: u32,
    /// Wait by sleeping in the kernel instead of spinning.
    #[arg(long)]
    blocking: bool,
    /// Also run the workload over a pipe and a Unix socket, and print ratios.
    #[arg(long)]
    compare: bool,
}

/// What one run measured.
struct Outcome {
    name: String,
    frame_size: usize,
    frames: u64,
    secs: f64,
    latency: Histogram<u64>,
    /// Unloaded round trips, one message each way.
    rtt: Histogram<u64>,
    errors: u64,
}

impl Outcome {
    fn new(name: &str, frame_size: usize) -> Outcome {
        Outcome {
            name: name.to_string(),
            frame_size,
            frames: 0,
            secs: 0.0,
            latency: histogram(),
            rtt: histogram(),
            errors: 0,
        }
    }

    fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.secs
    }

    /// Adds one consumer's report (see `results_text`); returns its end
    /// time.
    fn add_results(&mut self, text: &str) -> Result<u64, String> {
        let mut end = 0;
        for line in text.lines() {
            let mut words = line.split(' ');
            let tag = words.next();
            let v: Vec<u64> = words.filter_map(|x| x.parse().ok()).collect();
            match (tag, v.as_slice()) {
                (Some("count"), [n]) => self.frames += n,
                (Some("errors"), [n]) => self.errors += n,
                (Some("end"), [t]) => end = *t,
                (Some("h"), [value, count]) => {
                    let _ = self.latency.record_n(*value, *count);
                }
                _ => return Err(format!("unexpected result line {line:?}")),
            }
        }
        Ok(end)
    }
}

/// A consumer's report to the parent: counts, end time, and its latency
/// histogram as exact (value, count) pairs, so merging loses nothing.
fn results_text(count: u64, errors: u64, end: u64, latency: &Histogram<u64>) -> String {
    let mut text = format!("count {count}\nerrors {errors}\nend {end}\n");
    for v in latency.iter_recorded() {
        text.push_str(&format!(
            "h {} {}\n",
            v.value_iterated_to(),
            v.count_at_value()
        ));
    }
    text
}

pub fn run(args: &Args) -> Result<ExitCode, String> {
    let kind: Kind = args.kind.into();
    let size = usize::try_from(args.size).map_err(|_| "--size is too large".to_string())?;
    if size < MIN_SIZE {
        return Err(format!("--size must be at least {MIN_SIZE} bytes"));
    }
    if args.producers == 0 || args.consumers == 0 || args.count == 0 {
        return Err("--producers, --consumers and --count must be at least 1".into());
    }
    match kind {
        Kind::Spsc if args.producers != 1 || args.consumers != 1 => {
            return Err(
                "an spsc ring has one producer and one consumer; use --kind mpsc or mpmc".into(),
            );
        }
        Kind::Mpsc if args.consumers != 1 => {
            return Err("an mpsc ring has one consumer; use --kind mpmc for several".into());
        }
        _ => {}
    }
    let cfg = match kind {
        Kind::Mpmc => Config::slots(4096, size as u64),
        _ => {
            // Room for at least 256 frames, 4 MiB at the least.
            let want = ((size as u64 + 8) * 256).max(4 << 20).next_power_of_two();
            Config::new(want)
        }
    };
    let ring = AnyRing::anonymous(kind, cfg).map_err(|e| format!("anonymous ring: {e}"))?;
    if size > ring.max_frame() {
        return Err(format!(
            "--size {size} exceeds the ring's max frame {}",
            ring.max_frame()
        ));
    }
    let mode = if args.blocking {
        "blocking"
    } else {
        "spinning"
    };
    println!(
        "mmring bench: {kind}, {} producer(s) x {} consumer(s), {size}-byte frames, {} frames, {mode}",
        args.producers, args.consumers, args.count
    );
    let mut ours = run_ring(&ring, args, size)?;
    ours.rtt = rtt_ring(kind, size, args.blocking)?;
    report(&ours);
    let mut ok = ours.errors == 0;
    if args.compare {
        if args.producers != 1 || args.consumers != 1 {
            println!(
                "(--compare runs 1 x 1 only: pipes and sockets have no fair multi-party form)"
            );
        } else {
            let pipe = {
                let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
                let mut o = run_stream("pipe", r, w, size, args.count)?;
                let (r1, w1) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
                let (r2, w2) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
                o.rtt = rtt_stream([r1, w2], [r2, w1], size)?;
                o
            };
            report(&pipe);
            let sock = {
                let (a, b) = std::os::unix::net::UnixStream::pair()
                    .map_err(|e| format!("socketpair: {e}"))?;
                let mut o = run_stream(
                    "unix socket",
                    OwnedFd::from(a),
                    OwnedFd::from(b),
                    size,
                    args.count,
                )?;
                let (a, b) = std::os::unix::net::UnixStream::pair()
                    .map_err(|e| format!("socketpair: {e}"))?;
                // Each side reads and writes its own end of the pair.
                let (a2, b2) = (
                    a.try_clone().map_err(|e| e.to_string())?,
                    b.try_clone().map_err(|e| e.to_string())?,
                );
                o.rtt = rtt_stream(
                    [OwnedFd::from(a), OwnedFd::from(a2)],
                    [OwnedFd::from(b), OwnedFd::from(b2)],
                    size,
                )?;
                o
            };
            report(&sock);
            ok &= pipe.errors == 0 && sock.errors == 0;
            println!("ratios (same run):");
            for other in [&pipe, &sock] {
                println!(
                    "  mmring vs {:<12} throughput {:>5.1}x higher   median round trip {:>5.1}x shorter",
                    other.name,
                    ours.frames_per_s() / other.frames_per_s(),
                    other.rtt.value_at_quantile(0.5) as f64
                        / ours.rtt.value_at_quantile(0.5).max(1) as f64
                );
            }
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn report(o: &Outcome) {
    let h = &o.latency;
    println!(
        "  {:<12} {:>7.2} M frames/s  {:>6.2} GB/s  ({:.3} s){}",
        o.name,
        o.frames_per_s() / 1e6,
        o.frames_per_s() * o.frame_size as f64 / 1e9,
        o.secs,
        if o.errors == 0 {
            String::new()
        } else {
            format!("  {} CHECK ERRORS", o.errors)
        }
    );
    println!(
        "  {:<12} one-way latency under load, queueing included (1 in {SAMPLE} sampled): p50 {}  p99 {}  p99.9 {}",
        "",
        ns(h.value_at_quantile(0.5)),
        ns(h.value_at_quantile(0.99)),
        ns(h.value_at_quantile(0.999)),
    );
    let r = &o.rtt;
    println!(
        "  {:<12} round trip, unloaded ({} samples): p50 {}  p99 {}  p99.9 {}",
        "",
        r.len(),
        ns(r.value_at_quantile(0.5)),
        ns(r.value_at_quantile(0.99)),
        ns(r.value_at_quantile(0.999)),
    );
}

fn ns(v: u64) -> String {
    match v {
        0..=999 => format!("{v} ns"),
        1_000..=999_999 => format!("{:.1} us", v as f64 / 1e3),
        _ => format!("{:.1} ms", v as f64 / 1e6),
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

fn run_ring(ring: &AnyRing, args: &Args, size: usize) -> Result<Outcome, String> {
    let consumed = shared_counter()?;
    let mut gate = Gate::new()?;
    let blocking = args.blocking;
    let mut pids = Vec::new();
    let mut results = Vec::new();
    for c in 0..args.consumers {
        let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let checks_order = ring_keeps_order(ring);
        let producers = args.producers as usize;
        // `w` moves into the closure: the parent's copy closes when the
        // closure is dropped, right after the fork.
        let pid = fork_child(|| {
            pin(cpu_for(c as usize, 1));
            let mut rx = ring.consumer().expect("attach consumer");
            gate.child_wait();
            consume(&mut rx, blocking, producers, checks_order, consumed, w)
        })?;
        pids.push(pid);
        results.push((c, r));
    }
    for p in 0..args.producers {
        let n = args.count / args.producers as u64
            + if p == 0 {
                args.count % args.producers as u64
            } else {
                0
            };
        let pid = fork_child(|| {
            pin(cpu_for(p as usize, 0));
            let mut tx = ring.producer().expect("attach producer");
            gate.child_wait();
            produce(&mut tx, p, n, size, blocking)
        })?;
        pids.push(pid);
    }
    let start = gate.open(pids.len())?;
    let bar = (args.count >= 20_000_000).then(|| {
        let bar = indicatif::ProgressBar::new(args.count);
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} frames {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut outcome = Outcome::new("mmring", size);
    let mut end = start;
    for (_, r) in results {
        let mut text = String::new();
        let mut f = std::fs::File::from(r);
        // While a consumer runs, its pipe stays open: show progress meanwhile.
        if let Some(bar) = &bar {
            while !readable(&f) {
                bar.set_position(consumed.load(Relaxed));
            }
        }
        f.read_to_string(&mut text)
            .map_err(|e| format!("results: {e}"))?;
        end = end.max(outcome.add_results(&text)?);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for pid in pids {
        wait_child(pid)?;
    }
    // Frames lost or duplicated count as errors too.
    outcome.errors += args.count.abs_diff(outcome.frames);
    outcome.secs = (end - start) as f64 / 1e9;
    Ok(outcome)
}

/// Round trips measured in each latency phase.
const ROUND_TRIPS: u64 = 100_000;

/// Unloaded round trips over two rings of `kind` (ping, pong): the parent
/// sends, a forked echo process replies, the parent times each exchange.
fn rtt_ring(kind: Kind, size: usize, blocking: bool) -> Result<Histogram<u64>, String> {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(64, size as u64),
        _ => Config::new(((size as u64 + 8) * 64).next_power_of_two().max(4096)),
    };
    let ping = AnyRing::anonymous(kind, cfg).map_err(|e| e.to_string())?;
    let pong = AnyRing::anonymous(kind, cfg).map_err(|e| e.to_string())?;
    let mut gate = Gate::new()?;
    let echo = fork_child(|| {
        pin(1);
        let (mut rx, mut tx) = (ping.consumer().unwrap(), pong.producer().unwrap());
        gate.child_wait();
        let mut buf = vec![0u8; size];
        for _ in 0..ROUND_TRIPS {
            if recv_with(&mut rx, blocking, |f| buf.copy_from_slice(f)).is_err()
                || send_with(&mut tx, size, blocking, |f| f.copy_from_slice(&buf)).is_err()
            {
                return 1;
            }
        }
        0
    })?;
    pin(0);
    let (mut tx, mut rx) = (
        ping.producer().map_err(|e| e.to_string())?,
        pong.consumer().map_err(|e| e.to_string())?,
    );
    gate.open(1)?;
    let mut h = histogram();
    let mut out = vec![0u8; size];
    for seq in 0..ROUND_TRIPS {
        let t0 = std::time::Instant::now();
        out[..8].copy_from_slice(&seq.to_le_bytes());
        send_with(&mut tx, size, blocking, |f| f.copy_from_slice(&out))
            .map_err(|e| format!("round trip: {e}"))?;
        let back = recv_with(&mut rx, blocking, |f| {
            u64::from_le_bytes(f[..8].try_into().unwrap())
        })
        .map_err(|e| format!("round trip: {e}"))?;
        let _ = h.record((t0.elapsed().as_nanos() as u64).max(1));
        if back != seq {
            return Err(format!("round trip {seq}: got {back}"));
        }
    }
    unpin();
    wait_child(echo)?;
    Ok(h)
}

/// Unloaded round trips over byte streams: `near` = [read, write] of the
/// parent, `far` = [read, write] of the echo process.
fn rtt_stream(
    near: [OwnedFd; 2],
    far: [OwnedFd; 2],
    size: usize,
) -> Result<Histogram<u64>, String> {
    let mut gate = Gate::new()?;
    let echo = fork_child(|| {
        pin(1);
        let mut r = std::fs::File::from(far[0].try_clone().expect("dup"));
        let mut w = std::fs::File::from(far[1].try_clone().expect("dup"));
        gate.child_wait();
        let mut buf = vec![0u8; size];
        for _ in 0..ROUND_TRIPS {
            if r.read_exact(&mut buf).is_err() || w.write_all(&buf).is_err() {
                return 1;
            }
        }
        0
    })?;
    drop(far);
    let [r, w] = near;
    let (mut r, mut w) = (std::fs::File::from(r), std::fs::File::from(w));
    pin(0);
    gate.open(1)?;
    let mut h = histogram();
    let mut buf = vec![0u8; size];
    for seq in 0..ROUND_TRIPS {
        let t0 = std::time::Instant::now();
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        w.write_all(&buf).map_err(|e| e.to_string())?;
        r.read_exact(&mut buf).map_err(|e| e.to_string())?;
        let _ = h.record((t0.elapsed().as_nanos() as u64).max(1));
    }
    unpin();
    wait_child(echo)?;
    Ok(h)
}

/// CPU index for the `i`-th producer (`side` 0) or consumer (`side` 1):
/// producers and consumers alternate, so a 1 x 1 pair gets two cores.
fn cpu_for(i: usize, side: usize) -> usize {
    2 * i + side
}

/// Whether reading `f` would not block (data or EOF), waiting up to 100 ms.
fn readable(f: &std::fs::File) -> bool {
    let mut fds = [rustix::event::PollFd::new(f, rustix::event::PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

fn ring_keeps_order(ring: &AnyRing) -> bool {
    ring.kind() != Kind::Mpmc
}

/// Reserves `len` bytes (blocking, or spinning on `Full`), lets `fill`
/// write them, and commits.
fn send_with(
    tx: &mut AnyProducer,
    len: usize,
    blocking: bool,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), SendError> {
    let mut g = if blocking {
        tx.reserve(len)?
    } else {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            match tx.try_reserve(len) {
                Err(SendError::Full) => backoff.spin(),
                other => break other?,
            }
        }
    };
    fill(&mut g);
    g.commit();
    Ok(())
}

/// Takes the next message (blocking, or spinning on `Empty`) and hands it
/// to `f`. A spinning wait ends with `Disconnected` too, once the producers
/// that attached are gone and nothing is left.
fn recv_with<R>(
    rx: &mut AnyConsumer,
    blocking: bool,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, RecvError> {
    if blocking {
        return rx.recv().map(|g| f(&g));
    }
    // `f` runs at most once, inside `map`, so no grant outlives a loop turn.
    let mut f = Some(f);
    let mut call = |g: &[u8]| (f.take().expect("called once"))(g);
    let mut spins = 0u32;
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        match rx.try_recv().map(|g| call(&g)) {
            Err(RecvError::Empty) => {
                spins = spins.wrapping_add(1);
                // Now and then, ask whether anyone is left to send; the
                // blocking path does this itself.
                if spins % 4096 == 0 && rx.producer_state().is_gone() {
                    return match rx.try_recv().map(|g| call(&g)) {
                        Err(RecvError::Empty) => Err(RecvError::Disconnected),
                        other => other,
                    };
                }
                // Exponential busy-wait, never yielding: fewer loads of the
                // producer's cursor line.
                backoff.spin();
            }
            other => return other,
        }
    }
}

fn produce(tx: &mut AnyProducer, id: u32, n: u64, size: usize, blocking: bool) -> i32 {
    for seq in 0..n {
        let r = send_with(tx, size, blocking, |f| {
            f[..8].copy_from_slice(&seq.to_le_bytes());
            f[8..12].copy_from_slice(&id.to_le_bytes());
            if seq % SAMPLE == 0 {
                f[16..24].copy_from_slice(&now_ns().to_le_bytes());
            }
        });
        if let Err(e) = r {
            eprintln!("mmring bench: producer {id}: {e}");
            return 1;
        }
    }
    0
}

fn consume(
    rx: &mut AnyConsumer,
    blocking: bool,
    producers: usize,
    checks_order: bool,
    consumed: &AtomicU64,
    out: OwnedFd,
) -> i32 {
    let mut latency = histogram();
    let mut next = vec![0u64; producers];
    let (mut count, mut errors) = (0u64, 0u64);
    loop {
        let r = recv_with(rx, blocking, |f| {
            let seq = u64::from_le_bytes(f[..8].try_into().unwrap());
            let id = u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize;
            if seq % SAMPLE == 0 {
                let sent = u64::from_le_bytes(f[16..24].try_into().unwrap());
                let _ = latency.record(now_ns().saturating_sub(sent).max(1));
            }
            (seq, id)
        });
        match r {
            Ok((seq, id)) => {
                if id >= producers || (checks_order && seq != next[id]) {
                    errors += 1;
                } else if checks_order {
                    next[id] += 1;
                }
                count += 1;
                if count % 65536 == 0 {
                    consumed.fetch_add(65536, Relaxed);
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => {
                eprintln!("mmring bench: consumer: {e}");
                return 1;
            }
        }
    }
    let text = results_text(count, errors, now_ns(), &latency);
    let mut f = std::fs::File::from(out);
    i32::from(f.write_all(text.as_bytes()).is_err())
}

/// The same workload over a byte stream (a pipe or a Unix socket): one
/// `write` per frame, `read_exact` per frame.
fn run_stream(
    name: &str,
    read_end: OwnedFd,
    write_end: OwnedFd,
    size: usize,
    count: u64,
) -> Result<Outcome, String> {
    let mut gate = Gate::new()?;
    let (res_r, res_w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let producer = fork_child(|| {
        pin(0);
        let mut w = std::fs::File::from(write_end.try_clone().expect("dup"));
        gate.child_wait();
        let mut buf = vec![0u8; size];
        for seq in 0..count {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            if seq % SAMPLE == 0 {
                buf[16..24].copy_from_slice(&now_ns().to_le_bytes());
            }
            if w.write_all(&buf).is_err() {
                return 1;
            }
        }
        0
    })?;
    let consumer = fork_child(|| {
        pin(1);
        let mut r = std::fs::File::from(read_end.try_clone().expect("dup"));
        gate.child_wait();
        let mut latency = histogram();
        let mut buf = vec![0u8; size];
        let mut errors = 0u64;
        for seq in 0..count {
            if r.read_exact(&mut buf).is_err() {
                return 1;
            }
            if u64::from_le_bytes(buf[..8].try_into().unwrap()) != seq {
                errors += 1;
            }
            if seq % SAMPLE == 0 {
                let sent = u64::from_le_bytes(buf[16..24].try_into().unwrap());
                let _ = latency.record(now_ns().saturating_sub(sent).max(1));
            }
        }
        let text = results_text(count, errors, now_ns(), &latency);
        let mut f = std::fs::File::from(res_w.try_clone().expect("dup"));
        i32::from(f.write_all(text.as_bytes()).is_err())
    })?;
    drop(res_w);
    drop(read_end);
    drop(write_end);
    let start = gate.open(2)?;
    let mut text = String::new();
    std::fs::File::from(res_r)
        .read_to_string(&mut text)
        .map_err(|e| format!("results: {e}"))?;
    wait_child(producer)?;
    wait_child(consumer)?;
    let mut outcome = Outcome::new(name, size);
    let end = outcome.add_results(&text)?;
    outcome.errors += count.abs_diff(outcome.frames);
    outcome.secs = (end - start) as f64 / 1e9;
    Ok(outcome)
}
