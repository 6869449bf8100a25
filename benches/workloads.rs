//! Workloads W1–W5 under criterion's statistics, each beside the floors and
//! references that say what its numbers mean.
//!
//! ```text
//! cargo bench --bench workloads             # criterion groups, then a ratio table
//! cargo bench --bench workloads -- w3       # one group
//! ```
//!
//! One harness: every measurement here is made by the built `mmring`
//! binary (`mmring bench --case CASE --count N`, which prints
//! `elapsed_ns N`), the same code that `mmring bench` and
//! `mmring bench --workloads` run. The fork / start-gate / CPU-pinning /
//! shared-word plumbing lives once, in `src/bin/mmring/proc.rs`; this file
//! only hands criterion the binary's timings (process start and ring setup
//! are outside them: the binary starts its clock at the start gate). A
//! plumbing crate shared by the binary and this file was the alternative;
//! it would still have left two harnesses measuring the same workloads.
//!
//! | group              | mmring                                 | floor / reference                                  |
//! |--------------------|----------------------------------------|----------------------------------------------------|
//! | `w1_small`         | spsc 64 B, two processes               | pipe, Unix socket; threads: mmring, crossbeam, std channel |
//! | `w2_large`         | spsc 4 KiB, copy in/out; read in place | single-thread `memcpy`, pipe                       |
//! | `w3_spin_rtt`      | ping-pong over two spsc rings, spin    | two processes bouncing one cache line              |
//! | `w4_blocking_rtt`  | the same, sleeping in the kernel       | two processes bouncing a futex                     |
//! | `w5_multi`         | mpmc 2 x 2, mpsc 4 x 1 (processes)     | crossbeam-channel, same shapes, threads            |
//!
//! After the criterion groups, `mmring bench --workloads` measures each
//! workload once more and prints ratios from that one run.

use std::process::Command;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

/// The `mmring` binary cargo built for this benchmark.
const MMRING: &str = env!("CARGO_BIN_EXE_mmring");

/// Runs `mmring bench --case CASE --count n ARGS...` and returns the time it
/// measured.
fn case(case: &str, args: &[&str], n: u64) -> Duration {
    let out = Command::new(MMRING)
        .args(["bench", "--case", case, "--count", &n.max(1).to_string()])
        .args(args)
        .output()
        .expect("run the mmring binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mmring bench --case {case} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ns = stdout
        .lines()
        .find_map(|l| l.strip_prefix("elapsed_ns "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no elapsed_ns in {stdout:?}"));
    Duration::from_nanos(ns)
}

/// One benchmark: `name` in `g`, measured by `mmring bench --case`.
fn bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: impl Into<String>,
    which: &'static str,
    args: &'static [&'static str],
) {
    g.bench_function(id.into(), |b| b.iter_custom(|n| case(which, args, n)));
}

fn w1_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_small");
    g.throughput(Throughput::Elements(1));
    bench(&mut g, "mmring_spsc/processes", "ring", &[]);
    bench(&mut g, "pipe/processes", "pipe", &[]);
    bench(&mut g, "unix_socket/processes", "socket", &[]);
    bench(&mut g, "mmring_spsc/threads", "ring-threads", &[]);
    bench(
        &mut g,
        "crossbeam_channel/threads",
        "crossbeam-threads",
        &[],
    );
    bench(&mut g, "std_sync_channel/threads", "std-threads", &[]);
    g.finish();
}

fn w2_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("w2_large");
    g.throughput(Throughput::Bytes(4096));
    bench(
        &mut g,
        "mmring_spsc/copy_in_out",
        "ring",
        &["--size", "4K", "--access", "copy"],
    );
    bench(
        &mut g,
        "mmring_spsc/read_in_place",
        "ring",
        &["--size", "4K", "--access", "read"],
    );
    bench(&mut g, "memcpy/single_thread", "memcpy", &["--size", "4K"]);
    bench(&mut g, "pipe/processes", "pipe", &["--size", "4K"]);
    g.finish();
}

fn w3_spin_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3_spin_rtt");
    bench(&mut g, "mmring_spsc/processes", "ring-rtt", &[]);
    bench(&mut g, "cache_line_floor/processes", "cache-line-rtt", &[]);
    g.finish();
}

fn w4_blocking_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w4_blocking_rtt");
    bench(&mut g, "mmring_spsc/processes", "ring-rtt", &["--blocking"]);
    bench(&mut g, "futex_floor/processes", "futex-rtt", &[]);
    g.finish();
}

fn w5_multi(c: &mut Criterion) {
    let mut g = c.benchmark_group("w5_multi");
    g.throughput(Throughput::Elements(1));
    let shapes: [(&str, &'static [&'static str]); 2] = [
        (
            "mpmc_2x2",
            &["--kind", "mpmc", "--producers", "2", "--consumers", "2"],
        ),
        (
            "mpsc_4x1",
            &["--kind", "mpsc", "--producers", "4", "--consumers", "1"],
        ),
    ];
    for (name, shape) in shapes {
        g.bench_function(BenchmarkId::new("mmring", name), |b| {
            b.iter_custom(|n| {
                let args: Vec<&str> = shape.iter().copied().chain(["--blocking"]).collect();
                case("ring", &args, n)
            })
        });
        // The thread reference takes the same shape; `--kind` does not
        // apply to it.
        g.bench_function(BenchmarkId::new("crossbeam_channel_threads", name), |b| {
            b.iter_custom(|n| case("crossbeam-threads", &shape[2..], n))
        });
    }
    g.finish();
}

fn main() {
    let mut c = Criterion::default()
        .without_plots()
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .configure_from_args();
    w1_small(&mut c);
    w2_large(&mut c);
    w3_spin_rtt(&mut c);
    w4_blocking_rtt(&mut c);
    w5_multi(&mut c);
    c.final_summary();
    // `--list` and criterion's `--test` smoke mode skip the summary pass.
    if std::env::args().all(|a| a != "--list" && a != "--test") {
        println!();
        let status = Command::new(MMRING)
            .args(["bench", "--workloads", "--count", "2000000"])
            .status()
            .expect("run the mmring binary");
        assert!(status.success(), "mmring bench --workloads: {status}");
    }
}
