//! `mmring bench`: the project's one cross-process benchmark harness.
//!
//! Why here: the process plumbing (fork, start gate, CPU pinning, shared
//! words; `proc.rs`) and every cross-process workload live in this binary,
//! once. The criterion benchmarks (`benches/workloads.rs`) keep the
//! statistics and drive this binary through `--case` instead of carrying a
//! second copy of the plumbing (they used to include `proc.rs` with
//! `#[path]`). A shared plumbing crate was the other option; it would have
//! shared the fork helpers but left two harnesses measuring the same
//! workloads two ways, and a workspace crate the root binary depends on
//! cannot itself depend on mmring.
//!
//! Three modes:
//!
//! * default: the parent creates the ring, forks the producers and
//!   consumers, lets them attach, then releases them all at once and times
//!   the stream until the last consumer has checked the last frame. Every
//!   frame carries its producer's sequence number. A warm-up stream runs
//!   first and is not reported. Then three measurements, reported apart:
//!   saturation throughput (producers as fast as they go; one frame in 64
//!   carries its send time, and what that records is the time a frame
//!   waits in a full queue, not latency); one-way latency at an offered
//!   load (`--rate`, default 1M frames/s: producers send on a fixed
//!   schedule, every frame carries the time it was due, and the consumer
//!   records now minus that in an HDR histogram, so a stall counts for
//!   every frame it delays: coordinated-omission corrected, as wrk2 does);
//!   and unloaded round trips beside their floor (one cache line bounced
//!   between two processes when spinning, a futex ping-pong when
//!   blocking). `--compare` runs the same over a pipe, a FIFO and a Unix
//!   stream socket (1 x 1), or crossbeam-channel between threads (several
//!   producers or consumers), in the same run, with ratios. `--json`
//!   prints every figure as one JSON object.
//! * `--workloads`: W1–W5 once each with their floors and references, and
//!   the ratios from that one run.
//! * `--case CASE`: one measurement; prints `elapsed_ns N` only.

mod bcast;
mod refs;
mod rtt;
mod stream;

use std::process::ExitCode;

use clap::ValueEnum;
use hdrhistogram::Histogram;
use mmring::Kind;

use crate::KindArg;
use rtt::Rtt;
use stream::{Outcome, Shape};

/// Latency is sampled on one frame in this many.
const SAMPLE: u64 = 64;
/// Bytes every frame needs: sequence number, producer id, timestamp.
const MIN_SIZE: usize = 24;
/// Round trips measured in each latency phase.
const ROUND_TRIPS: u64 = 100_000;

/// How producers and consumers touch each frame.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Write and check the 24-byte header only.
    Header,
    /// Header, and the consumer reads every word of the frame in place.
    Read,
    /// The producer copies the whole frame in, the consumer copies it out.
    Copy,
}

/// How a `--blocking` wait waits ([`mmring::WaitStrategy`]).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitArg {
    /// Spin briefly, then sleep in the kernel (the default).
    SpinThenSleep,
    /// Sleep at once: every wait a kernel sleep and wake-up.
    Sleep,
}

impl From<WaitArg> for mmring::WaitStrategy {
    fn from(w: WaitArg) -> Self {
        match w {
            WaitArg::SpinThenSleep => mmring::WaitStrategy::SpinThenSleep,
            WaitArg::Sleep => mmring::WaitStrategy::Sleep,
        }
    }
}

/// One measurement for `--case` (what `benches/workloads.rs` drives).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// Stream --count frames over a ring between processes (--kind, --size,
    /// --producers, --consumers, --blocking, --access); with --kind
    /// broadcast, the publisher's time to send --count frames to
    /// --consumers subscriber processes.
    Ring,
    /// Stream --count frames over a pipe, 1 x 1.
    Pipe,
    /// Stream --count frames over a Unix stream socket, 1 x 1.
    Socket,
    /// --count round trips over two rings between processes.
    RingRtt,
    /// --count round trips over two rings in one thread, which sends,
    /// receives, answers and receives the answer itself: the ring's own
    /// work in a round trip, without the other CPU.
    RingRttLocal,
    /// --count round trips over two pipes.
    PipeRtt,
    /// --count round trips bouncing one cache line between two processes.
    CacheLineRtt,
    /// --count round trips through a futex shared by two processes.
    FutexRtt,
    /// --count single-thread copies of --size bytes.
    Memcpy,
    /// Stream --count frames over a ring between two threads.
    RingThreads,
    /// --count messages through crossbeam-channel, --producers x
    /// --consumers threads (64-byte messages).
    CrossbeamThreads,
    /// --count messages through std's sync_channel, 1 x 1 threads (64-byte
    /// messages).
    StdThreads,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Ring flavour.
    #[arg(long, value_enum, default_value = "spsc")]
    kind: KindArg,
    /// Bytes per frame (at least 24; K, M suffixes).
    #[arg(long, default_value = "64", value_parser = crate::parse_size)]
    size: u64,
    /// The ring's data area in bytes, a power of two (K, M suffixes; mpmc:
    /// as many slots as fit). Default: 4 MiB or 256 frames, whichever is
    /// larger (mpmc: 4096 slots); the round trips' rings default to 64
    /// frames. Applies to --case and --workloads too; the size used is
    /// printed (`ring_bytes` in --json and --case output).
    #[arg(long, value_parser = crate::parse_size)]
    capacity: Option<u64>,
    /// Frames in all (split among producers); with --case, frames, round
    /// trips or copies; with --workloads, the W1 and W5 frame count.
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
    /// Frames per send batch (`try_send_batch`) and per `try_recv_batch`
    /// in the saturation stream and `--case ring` (1: plain send and recv);
    /// spinning, --access header.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Lazy release: consumers hand space back every K frames (or a
    /// quarter of the ring), and when they find it empty, instead of after
    /// each frame (spsc, mpsc; 0: after each).
    #[arg(long, default_value_t = 0, value_name = "K")]
    release_every: u32,
    /// With --blocking: how producers and consumers wait (`sleep`: no spin
    /// first, so a round trip is a true sleep and wake-up).
    #[arg(long, value_enum, default_value = "spin-then-sleep")]
    wait: WaitArg,
    /// How producers and consumers touch each frame.
    #[arg(long, value_enum, default_value = "header")]
    access: Access,
    /// Also run the workload over a pipe and a Unix socket (1 x 1) or
    /// through crossbeam-channel between threads (several producers or
    /// consumers), and print ratios.
    #[arg(long)]
    compare: bool,
    /// Run workloads W1–W5 once each, with their floors and references, and
    /// print ratios from the same run.
    #[arg(long, conflicts_with_all = ["compare", "case"])]
    workloads: bool,
    /// Offered load for the latency measurement, frames per second in all
    /// (K, M suffixes are powers of 1000; `/s` optional; 0: skip it). The
    /// producers send on a fixed schedule and every frame's latency counts
    /// from when it was due (coordinated-omission corrected), so it is
    /// latency at that load, apart from saturation throughput.
    #[arg(long, default_value = "1M", value_parser = parse_rate)]
    rate: f64,
    /// Print one JSON object with every figure instead of text.
    #[arg(long, conflicts_with_all = ["workloads", "case"])]
    json: bool,
    /// Run one measurement and print only `elapsed_ns N` (for
    /// `cargo bench --bench workloads`), with `ring_bytes N` for a ring
    /// stream and `p50_ns N` for round trips.
    #[arg(long, value_enum, conflicts_with = "compare")]
    case: Option<Case>,
}

pub fn run(args: &Args) -> Result<ExitCode, String> {
    let size = usize::try_from(args.size).map_err(|_| "--size is too large".to_string())?;
    let shape = Shape {
        kind: args.kind.into(),
        size,
        count: args.count,
        producers: args.producers,
        consumers: args.consumers,
        blocking: args.blocking,
        access: args.access,
        rate: 0.0,
        capacity: args.capacity,
        wait: args.wait.into(),
        batch: args.batch,
        release_every: args.release_every,
    };
    if shape.kind == Kind::Broadcast && args.case.is_none() && !args.workloads {
        if args.capacity.is_some() {
            return Err("--capacity does not apply to --kind broadcast (its bench sizes the ring from --size)".into());
        }
        // The broadcast bench measures one publisher against --consumers
        // subscriber processes, spinning; refuse what it would ignore.
        let ignored = [
            (
                args.producers != 1,
                "--producers (a broadcast ring has one publisher)",
            ),
            (args.blocking, "--blocking"),
            (args.batch != 1, "--batch"),
            (args.release_every != 0, "--release-every"),
            (args.json, "--json"),
        ];
        if let Some((_, what)) = ignored.iter().find(|(given, _)| *given) {
            return Err(format!(
                "{what} does not apply to --kind broadcast (its bench: one publisher, --consumers subscribers, spinning)"
            ));
        }
        return bcast::run(size, args.count, args.consumers, args.compare);
    }
    if args.workloads {
        shape.check_counts()?;
        return workloads(args.count, args.capacity);
    }
    if let Some(case) = args.case {
        return run_case(case, &shape);
    }
    shape.check()?;
    let ring = shape.ring()?;
    let json = args.json;
    let mode = if shape.blocking {
        "blocking"
    } else {
        "spinning"
    };
    let access = match shape.access {
        Access::Header => "",
        Access::Read => ", read in place",
        Access::Copy => ", copied in and out",
    };
    let geometry = stream::describe(&ring);
    if !json {
        println!(
            "mmring bench: {}, {} producer(s) x {} consumer(s), {size}-byte frames, ring of {geometry}, {mode}{access}",
            shape.kind, shape.producers, shape.consumers
        );
    }
    // Warm up (page faults, CPU frequency, caches) before measuring: the
    // first run on a fresh machine is several times slower.
    let warm = Shape {
        count: (shape.count / 10).clamp(10_000, 1_000_000),
        ..shape
    };
    let w = stream::run_ring(&ring, &warm, false)?;
    let mut ok = w.errors == 0;
    let paced = Shape {
        count: ((args.rate * PACED_SECS) as u64).clamp(1_000, shape.count.max(1_000)),
        rate: args.rate,
        // Latency at an offered load is measured frame by frame.
        batch: 1,
        ..shape
    };
    if !json {
        println!(
            "  warm-up: {} frames, not reported; then {} frames as fast as they go, and {}",
            warm.count,
            shape.count,
            if args.rate > 0.0 {
                format!("{} frames paced at {} frames/s", paced.count, si(args.rate))
            } else {
                "no paced run (--rate 0)".into()
            }
        );
    }
    let mut rows = Vec::new();
    let sat = stream::run_ring(&ring, &shape, !json && shape.count >= 20_000_000)?;
    let lat = (args.rate > 0.0)
        .then(|| stream::run_ring(&ring, &paced, false))
        .transpose()?;
    let rtt = rtt::ring(&Shape {
        count: ROUND_TRIPS,
        ..shape
    })?;
    let floor = if shape.blocking {
        rtt::futex(ROUND_TRIPS)?
    } else {
        rtt::cache_line(ROUND_TRIPS)?
    };
    ok &= sat.errors == 0 && lat.as_ref().is_none_or(|o| o.errors == 0);
    rows.push(Row {
        sat,
        lat,
        rtt: Some(rtt),
    });
    if args.compare {
        if shape.producers == 1 && shape.consumers == 1 {
            let lat_of = |f: fn(usize, u64, f64) -> Result<Outcome, String>| {
                (args.rate > 0.0)
                    .then(|| f(size, paced.count, args.rate))
                    .transpose()
            };
            rows.push(Row {
                sat: stream::pipe(size, shape.count, 0.0)?,
                lat: lat_of(stream::pipe)?,
                rtt: Some(rtt::pipe(size, ROUND_TRIPS)?),
            });
            rows.push(Row {
                sat: stream::fifo(size, shape.count, 0.0)?,
                lat: lat_of(stream::fifo)?,
                rtt: None,
            });
            rows.push(Row {
                sat: stream::socket(size, shape.count, 0.0)?,
                lat: lat_of(stream::socket)?,
                rtt: Some(rtt::socket(size, ROUND_TRIPS)?),
            });
            for r in &rows[1..] {
                ok &= r.sat.errors == 0 && r.lat.as_ref().is_none_or(|o| o.errors == 0);
            }
        } else if !json {
            if size != refs::MSG {
                println!(
                    "(--compare with several producers or consumers runs crossbeam-channel threads with {}-byte messages only)",
                    refs::MSG
                );
            } else {
                let ns =
                    refs::crossbeam_threads(shape.count, shape.producers, shape.consumers, size)?;
                let cb = shape.count as f64 / (ns as f64 / 1e9);
                println!(
                    "  {:<12} {:>7.2} M msgs/s  ({} x {} threads, one bounded channel)",
                    "crossbeam",
                    cb / 1e6,
                    shape.producers,
                    shape.consumers
                );
                println!(
                    "  ratio (same run): mmring processes vs crossbeam-channel threads: throughput {:.2}x",
                    rows[0].sat.frames_per_s() / cb
                );
            }
        }
    }
    if json {
        println!(
            "{}",
            to_json(&shape, ring.capacity(), &warm, &paced, &rows, &floor)
        );
    } else {
        report(&rows, &floor, &paced);
    }
    Ok(exit(ok))
}

/// Seconds of paced sending (at most `--count` frames).
const PACED_SECS: f64 = 2.0;

/// One transport's figures: saturation, paced latency, round trips.
struct Row {
    sat: Outcome,
    lat: Option<Outcome>,
    rtt: Option<Rtt>,
}

/// Parses an offered load: `1M`, `250K/s`, `100000` (powers of 1000).
fn parse_rate(s: &str) -> Result<f64, String> {
    let t = s.trim().trim_end_matches("/s").to_ascii_lowercase();
    let (digits, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1e3),
        Some('m') => (&t[..t.len() - 1], 1e6),
        Some('g') => (&t[..t.len() - 1], 1e9),
        _ => (&t[..], 1.0),
    };
    digits
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * mul)
        .ok_or_else(|| format!("'{s}' is not a rate (examples: 1M, 250K/s, 100000)"))
}

/// 1500000 -> "1.5M".
fn si(v: f64) -> String {
    match v {
        v if v >= 1e9 => format!("{}G", v / 1e9),
        v if v >= 1e6 => format!("{}M", v / 1e6),
        v if v >= 1e3 => format!("{}K", v / 1e3),
        v => format!("{v}"),
    }
}

fn quantiles(h: &Histogram<u64>) -> String {
    format!(
        "p50 {}  p99 {}  p99.9 {}  max {}",
        ns(h.value_at_quantile(0.5)),
        ns(h.value_at_quantile(0.99)),
        ns(h.value_at_quantile(0.999)),
        ns(h.max())
    )
}

fn report(rows: &[Row], floor: &Rtt, paced: &Shape) {
    println!("saturation throughput (senders as fast as they can go):");
    for r in rows {
        let o = &r.sat;
        println!(
            "  {:<12} {:>7.2} M frames/s  {:>6.2} GB/s  ({:.3} s){}",
            o.name,
            o.frames_per_s() / 1e6,
            o.frames_per_s() * o.frame_size as f64 / 1e9,
            o.secs(),
            if o.errors == 0 {
                String::new()
            } else {
                format!("  {} CHECK ERRORS", o.errors)
            }
        );
        println!(
            "  {:<12} time in the full queue (not latency; 1 in {SAMPLE} frames): p50 {}  p99 {}",
            "",
            ns(o.latency.value_at_quantile(0.5)),
            ns(o.latency.value_at_quantile(0.99)),
        );
    }
    if rows[0].lat.is_some() {
        println!(
            "one-way latency at an offered load of {} frames/s (every frame, timed from its scheduled send: coordinated-omission corrected):",
            si(paced.rate)
        );
        for r in rows {
            if let Some(o) = &r.lat {
                // Short of the offered load: the figures are its backlog.
                let behind = o.frames_per_s() < 0.95 * paced.rate;
                println!(
                    "  {:<12} {}  ({} frames, {:.2} M frames/s achieved{}){}",
                    o.name,
                    quantiles(&o.latency),
                    o.frames,
                    o.frames_per_s() / 1e6,
                    if behind {
                        ": cannot keep up, this is its backlog"
                    } else {
                        ""
                    },
                    if o.errors == 0 {
                        String::new()
                    } else {
                        format!("  {} CHECK ERRORS", o.errors)
                    }
                );
            }
        }
    }
    println!("round trip, unloaded ({ROUND_TRIPS} samples):");
    for r in rows {
        if let Some(rtt) = &r.rtt {
            let h = &rtt.hist;
            println!(
                "  {:<12} p50 {}  p99 {}  p99.9 {}",
                r.sat.name,
                ns(h.value_at_quantile(0.5)),
                ns(h.value_at_quantile(0.99)),
                ns(h.value_at_quantile(0.999)),
            );
        }
    }
    if let Some(rtt) = &rows[0].rtt {
        report_floor(rtt, floor, paced.blocking);
    }
    if rows.len() > 1 {
        println!("ratios (same run):");
        let ours = &rows[0];
        for other in &rows[1..] {
            let mut line = format!(
                "  mmring vs {:<12} throughput {:>5.1}x higher",
                other.sat.name,
                ours.sat.frames_per_s() / other.sat.frames_per_s()
            );
            if let (Some(a), Some(b)) = (&ours.lat, &other.lat) {
                line += &format!(
                    "   paced p50 {:>5.1}x  p99 {:>5.1}x shorter",
                    p50(&b.latency) as f64 / p50(&a.latency).max(1) as f64,
                    b.latency.value_at_quantile(0.99) as f64
                        / a.latency.value_at_quantile(0.99).max(1) as f64
                );
            }
            if let (Some(a), Some(b)) = (&ours.rtt, &other.rtt) {
                line += &format!(
                    "   round trip {:>5.1}x shorter",
                    p50(&b.hist) as f64 / p50(&a.hist).max(1) as f64
                );
            }
            println!("{line}");
        }
    }
}

fn json_hist(h: &Histogram<u64>) -> String {
    format!(
        "{{\"p50\":{},\"p99\":{},\"p999\":{},\"max\":{},\"count\":{}}}",
        h.value_at_quantile(0.5),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
        h.len()
    )
}

fn json_outcome(o: &Outcome) -> String {
    format!(
        "{{\"frames\":{},\"ns\":{},\"frames_per_s\":{:.1},\"bytes_per_s\":{:.1},\"errors\":{},\"latency_ns\":{}}}",
        o.frames,
        o.ns,
        o.frames_per_s(),
        o.frames_per_s() * o.frame_size as f64,
        o.errors,
        json_hist(&o.latency)
    )
}

fn to_json(
    shape: &Shape,
    ring_bytes: u64,
    warm: &Shape,
    paced: &Shape,
    rows: &[Row],
    floor: &Rtt,
) -> String {
    let results: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "{{\"transport\":\"{}\",\"saturation\":{},\"paced\":{},\"round_trip_ns\":{}}}",
                r.sat.name,
                json_outcome(&r.sat),
                r.lat.as_ref().map_or("null".into(), json_outcome),
                r.rtt.as_ref().map_or("null".into(), |t| json_hist(&t.hist))
            )
        })
        .collect();
    format!(
        "{{\"kind\":\"{}\",\"producers\":{},\"consumers\":{},\"frame_size\":{},\"ring_bytes\":{ring_bytes},\"blocking\":{},\"access\":\"{:?}\",\"warmup_frames\":{},\"count\":{},\"paced_rate\":{},\"paced_frames\":{},\"saturation_latency_sampling\":{SAMPLE},\"results\":[{}],\"floor\":{{\"what\":\"{}\",\"ns\":{}}}}}",
        shape.kind,
        shape.producers,
        shape.consumers,
        shape.size,
        shape.blocking,
        shape.access,
        warm.count,
        shape.count,
        paced.rate,
        if paced.rate > 0.0 { paced.count } else { 0 },
        results.join(","),
        if shape.blocking {
            "futex ping-pong"
        } else {
            "one cache line"
        },
        json_hist(&floor.hist)
    )
}

fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The floor line under the ring's round trip.
fn report_floor(rtt: &Rtt, floor: &Rtt, blocking: bool) {
    let what = if blocking {
        "futex ping-pong"
    } else {
        "one cache line"
    };
    let f = &floor.hist;
    println!(
        "  {:<12} floor, {what} between two processes ({} samples): p50 {}  p99 {}  p99.9 {}  (round trip p50 = {:.2}x floor)",
        "",
        f.len(),
        ns(f.value_at_quantile(0.5)),
        ns(f.value_at_quantile(0.99)),
        ns(f.value_at_quantile(0.999)),
        p50(&rtt.hist) as f64 / p50(f).max(1) as f64
    );
}

fn p50(h: &Histogram<u64>) -> u64 {
    h.value_at_quantile(0.5)
}

fn ns(v: u64) -> String {
    match v {
        0..=999 => format!("{v} ns"),
        1_000..=999_999 => format!("{:.1} us", v as f64 / 1e3),
        _ => format!("{:.1} ms", v as f64 / 1e6),
    }
}

pub(crate) fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// `--case`: one measurement, `elapsed_ns N` on stdout (and `ring_bytes N`
/// for a ring stream, `p50_ns N` for round trips).
fn run_case(case: Case, shape: &Shape) -> Result<ExitCode, String> {
    let (n, size) = (shape.count, shape.size);
    // The cases that need a ring with a consumer, beside the stream.
    let consumer_cases = matches!(case, Case::RingRtt | Case::RingRttLocal | Case::RingThreads);
    if consumer_cases && shape.kind == Kind::Broadcast {
        let name = case.to_possible_value().map(|v| v.get_name().to_owned());
        return Err(format!(
            "--case {}: needs a ring with a consumer (--kind spsc, mpsc or mpmc); a broadcast ring has subscribers",
            name.unwrap_or_default()
        ));
    }
    // The ring's shape rules apply where a ring carries the stream.
    if consumer_cases || case == Case::Ring {
        shape.check()?;
    } else {
        shape.check_counts()?;
    }
    let (ns, errors) = match case {
        // The publisher's time for --count frames to --consumers subscriber
        // processes.
        Case::Ring if shape.kind == Kind::Broadcast => bcast::case(size, n, shape.consumers)?,
        Case::Ring => {
            let ring = shape.ring()?;
            println!("ring_bytes {}", ring.capacity());
            let o = stream::run_ring(&ring, shape, false)?;
            (o.ns, o.errors)
        }
        Case::Pipe | Case::Socket => {
            let o = if case == Case::Pipe {
                stream::pipe(size, n, 0.0)?
            } else {
                stream::socket(size, n, 0.0)?
            };
            (o.ns, o.errors)
        }
        Case::RingRtt
        | Case::RingRttLocal
        | Case::PipeRtt
        | Case::CacheLineRtt
        | Case::FutexRtt => {
            let r = match case {
                Case::RingRtt => rtt::ring(shape)?,
                Case::RingRttLocal => rtt::ring_local(shape)?,
                Case::PipeRtt => rtt::pipe(size, n)?,
                Case::CacheLineRtt => rtt::cache_line(n)?,
                _ => rtt::futex(n)?,
            };
            // The median beside the total: one stall moves the mean, not
            // the median the goals are stated in.
            println!("p50_ns {}", p50(&r.hist));
            (r.ns, 0)
        }
        Case::Memcpy => (refs::memcpy(n, size), 0),
        Case::RingThreads => (
            refs::ring_threads(shape.kind, size, n, shape.blocking, shape.capacity)?,
            0,
        ),
        Case::CrossbeamThreads => (
            refs::crossbeam_threads(n, shape.producers, shape.consumers, size)?,
            0,
        ),
        Case::StdThreads => (refs::std_threads(n, size)?, 0),
    };
    println!("elapsed_ns {ns}");
    if errors != 0 {
        eprintln!("mmring bench: {errors} CHECK ERRORS");
    }
    Ok(exit(errors == 0))
}

fn rate(n: u64, ns: u64) -> f64 {
    n as f64 / (ns.max(1) as f64 / 1e9)
}

/// `--workloads`: W1–W5 once each, floors and references beside them,
/// ratios from this one run.
fn workloads(count: u64, capacity: Option<u64>) -> Result<ExitCode, String> {
    const SMALL: usize = 64;
    const LARGE: usize = 4096;
    let n = count;
    let n2 = (count / 8).max(1);
    println!(
        "mmring bench --workloads: one run each, same machine, same run ({n} frames for W1 and W5, {n2} for W2, {ROUND_TRIPS} round trips for W3 and W4)"
    );
    let mut errors = 0;
    let mut ring = |shape: Shape| -> Result<f64, String> {
        let ring = shape.ring()?;
        println!(
            "   ({} {}-byte frames over a ring of {})",
            shape.kind,
            shape.size,
            stream::describe(&ring)
        );
        let o = stream::run_ring(&ring, &shape, false)?;
        errors += o.errors;
        Ok(o.frames_per_s())
    };
    let spsc = Shape {
        kind: Kind::Spsc,
        size: SMALL,
        count: n,
        producers: 1,
        consumers: 1,
        blocking: false,
        access: Access::Header,
        rate: 0.0,
        capacity,
        wait: mmring::WaitStrategy::SpinThenSleep,
        batch: 1,
        release_every: 0,
    };

    let w1 = ring(spsc)?;
    let pipe = stream::pipe(SMALL, n, 0.0)?;
    let sock = stream::socket(SMALL, n, 0.0)?;
    let cb = rate(n, refs::crossbeam_threads(n, 1, 1, SMALL)?);
    let stdc = rate(n, refs::std_threads(n, SMALL)?);
    println!(
        "W1 64 B frames/s: mmring {:.1} M, pipe {:.1} M, unix socket {:.1} M, crossbeam (threads) {:.1} M, std sync_channel (threads) {:.1} M",
        w1 / 1e6,
        pipe.frames_per_s() / 1e6,
        sock.frames_per_s() / 1e6,
        cb / 1e6,
        stdc / 1e6
    );
    println!(
        "   mmring / pipe = {:.1}x, mmring / unix socket = {:.1}x",
        w1 / pipe.frames_per_s(),
        w1 / sock.frames_per_s()
    );

    let large = Shape {
        size: LARGE,
        count: n2,
        ..spsc
    };
    let copy = ring(Shape {
        access: Access::Copy,
        ..large
    })? * LARGE as f64;
    let in_place = ring(Shape {
        access: Access::Read,
        ..large
    })? * LARGE as f64;
    let mc = rate(n2, refs::memcpy(n2, LARGE)) * LARGE as f64;
    println!(
        "W2 4 KiB GB/s: mmring copy in/out {:.1}, read in place {:.1}, memcpy floor {:.1}; copy / memcpy = {:.2}",
        copy / 1e9,
        in_place / 1e9,
        mc / 1e9,
        copy / mc
    );

    for blocking in [false, true] {
        let r = rtt::ring(&Shape {
            blocking,
            count: ROUND_TRIPS,
            ..spsc
        })?;
        let (floor, name, w) = if blocking {
            (rtt::futex(ROUND_TRIPS)?, "futex floor", "W4 blocking")
        } else {
            (rtt::cache_line(ROUND_TRIPS)?, "cache-line floor", "W3 spin")
        };
        println!(
            "{w} round trip ns: mmring p50 {} p99 {}, {name} p50 {} p99 {}; mmring / floor = {:.2}",
            p50(&r.hist),
            r.hist.value_at_quantile(0.99),
            p50(&floor.hist),
            floor.hist.value_at_quantile(0.99),
            p50(&r.hist) as f64 / p50(&floor.hist).max(1) as f64
        );
    }

    let multi = |kind, producers, consumers| Shape {
        kind,
        producers,
        consumers,
        blocking: true,
        ..spsc
    };
    let mpmc22 = ring(multi(Kind::Mpmc, 2, 2))?;
    let cb22 = rate(n, refs::crossbeam_threads(n, 2, 2, SMALL)?);
    let mpsc41 = ring(multi(Kind::Mpsc, 4, 1))?;
    let cb41 = rate(n, refs::crossbeam_threads(n, 4, 1, SMALL)?);
    println!(
        "W5 64 B msgs/s (blocking): mpmc 2x2 {:.1} M vs crossbeam threads {:.1} M ({:.2}x); mpsc 4x1 {:.1} M vs crossbeam threads {:.1} M ({:.2}x)",
        mpmc22 / 1e6,
        cb22 / 1e6,
        mpmc22 / cb22,
        mpsc41 / 1e6,
        cb41 / 1e6,
        mpsc41 / cb41
    );
    errors += pipe.errors + sock.errors;
    if errors != 0 {
        println!("{errors} CHECK ERRORS");
    }
    Ok(exit(errors == 0))
}
