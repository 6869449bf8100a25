//! The broadcast flavour's benchmarks, each beside a reference measured in
//! the same run.
//!
//! | group                  | mmring                                         | reference                                   |
//! |------------------------|------------------------------------------------|---------------------------------------------|
//! | `broadcast_threads`    | publisher, 64-byte frames, 1/4/16 subscriber threads | tokio's `sync::broadcast`, same shapes |
//! | `broadcast_processes`  | publisher, 64-byte frames, 1/4/16 subscriber processes | spsc 1 x 1, 64-byte frames, processes |
//! | `config_latest`        | `Subscriber::latest` of a 4 KiB value, 1/4 reader processes | `mmap-sync`, same value and readers |
//!
//! ```text
//! cargo bench --bench broadcast                  # every group, then the config summary
//! cargo bench --bench broadcast -- config_latest # one group (and the summary)
//! ```
//!
//! *Threads*: one publisher sends 64-byte messages as fast as it can while
//! 1, 4 or 16 subscriber threads drain them (both are lossy for
//! subscribers that fall behind, and both report what they lost). What is
//! timed is the publisher's loop, from its first send to its last.
//!
//! *Processes*: measured by the built `mmring` binary
//! (`mmring bench --case ring --kind broadcast --consumers N --count n`,
//! the stream `mmring bench --kind broadcast` reports first), the one
//! cross-process harness that `benches/workloads.rs` drives too.
//!
//! *Config sharing*: a writer process replaces a 4 KiB value every
//! [`UPDATE_PERIOD`] while 1 or 4 reader processes read the current value
//! in a loop: with mmring, `Subscriber::latest` on a broadcast ring (a
//! validated copy of the newest frame); with `mmap-sync` (a single-writer,
//! many-reader crate built for this pattern), `Synchronizer::read` (the
//! value in place, behind a reader count). Every read is checked the same
//! way on both sides: the value carries its update counter and a checksum
//! over all its words, and a reader asserts the checksum and that the
//! counter never goes back, so neither side can skip the bytes or return
//! a torn value. The time is from the start gate until the last reader has
//! done its reads. mmap-sync lives only here, not in the binary (it is a
//! dev-dependency), so this group forks its processes itself, with the
//! binary's process plumbing (`src/bin/mmring/proc.rs`, included below).
//! After the groups a summary runs each config case once more and prints
//! the mmring / mmap-sync ratios from that one run, beside the cache-line
//! round trip measured just before it; then once more with a writer that
//! replaces the value as fast as it can (where each side's writer speed
//! decides how often readers meet a changed value: the summary prints the
//! updates written and the distinct values the readers saw).

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use mmap_sync::locks::LockDisabled;
use mmap_sync::synchronizer::Synchronizer;
use mmring::{Config, RecvError, broadcast};

// The fork, start-gate, pinning and shared-word helpers of the `mmring`
// binary's benchmark harness; this file uses some of them.
#[allow(dead_code)]
#[path = "../src/bin/mmring/proc.rs"]
mod proc;

/// The `mmring` binary cargo built for this benchmark.
const MMRING: &str = env!("CARGO_BIN_EXE_mmring");

const MSG: usize = 64;
const PER_ITER: u64 = 100_000;
/// Ring of about 4096 messages (tokio: 4096 slots).
const SLOTS: usize = 4096;

fn mmring_threads(subscribers: usize, iters: u64) -> Duration {
    let ring =
        broadcast::Ring::anonymous(Config::new(((MSG + 16) * SLOTS).next_power_of_two() as u64))
            .expect("ring");
    let stop = Arc::new(AtomicBool::new(false));
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = ring.subscriber().expect("subscriber");
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = 0u64;
                loop {
                    match rx.try_recv() {
                        Ok(f) => got += u64::from(f[0]),
                        Err(RecvError::Lagged(_)) => {}
                        Err(_) if stop.load(Ordering::Acquire) => return got,
                        Err(_) => std::hint::spin_loop(),
                    }
                }
            })
        })
        .collect();
    let mut tx = ring.publisher().expect("publisher");
    let msg = [1u8; MSG];
    let start = Instant::now();
    for _ in 0..iters * PER_ITER {
        tx.send(&msg).expect("send");
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    for s in subs {
        std::hint::black_box(s.join().expect("subscriber"));
    }
    elapsed
}

fn tokio_threads(subscribers: usize, iters: u64) -> Duration {
    use tokio::sync::broadcast::error::TryRecvError;
    let (tx, _) = tokio::sync::broadcast::channel::<[u8; MSG]>(SLOTS);
    let stop = Arc::new(AtomicBool::new(false));
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            let mut rx = tx.subscribe();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut got = 0u64;
                loop {
                    match rx.try_recv() {
                        Ok(m) => got += u64::from(m[0]),
                        Err(TryRecvError::Lagged(_)) => {}
                        Err(_) if stop.load(Ordering::Acquire) => return got,
                        Err(_) => std::hint::spin_loop(),
                    }
                }
            })
        })
        .collect();
    let msg = [1u8; MSG];
    let start = Instant::now();
    for _ in 0..iters * PER_ITER {
        let _ = tx.send(msg);
    }
    let elapsed = start.elapsed();
    stop.store(true, Ordering::Release);
    for s in subs {
        std::hint::black_box(s.join().expect("subscriber"));
    }
    elapsed
}

/// Runs `mmring bench --case CASE --count n ARGS...` and returns the time
/// it measured (its `elapsed_ns` line), as `benches/workloads.rs` does.
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

// ---------------------------------------------------------------------
// Config sharing: `latest()` against mmap-sync.
// ---------------------------------------------------------------------

/// The shared value: 4 KiB, as 512 words.
const WORDS: usize = 512;
/// How often the writer replaces the value (it sleeps in between).
const UPDATE_PERIOD: Duration = Duration::from_micros(100);
/// Reads per reader in the summary pass.
const SUMMARY_READS: u64 = 1_000_000;

/// The value as mmap-sync stores it (rkyv-archived: the same 4 KiB of
/// words, in place).
#[derive(rkyv::Archive, rkyv::Serialize)]
#[archive(check_bytes)]
struct Value {
    words: [u64; WORDS],
}

/// mmap-sync's synchronizer with its own defaults (wyhash checksums, no
/// write lock, 1 KiB serializer scratch) except the writer's back-off: it
/// polls for readers still on the buffer it is about to overwrite every
/// 10 us instead of every second, so a reader preempted mid-read stalls
/// the updates for microseconds, not a second.
type Sync = Synchronizer<wyhash::WyHash, LockDisabled, 1024, 10_000>;

/// Fills `words` as update `n`: the counter, words that depend on it and on
/// their index, and last the checksum of all the others.
fn fill(words: &mut [u64; WORDS], n: u64) {
    words[0] = n;
    for (i, w) in words.iter_mut().enumerate().take(WORDS - 1).skip(1) {
        *w = n.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ (i as u64).wrapping_mul(0xff51_afd7_ed55_8ccd);
    }
    words[WORDS - 1] = checksum(words);
}

/// The checksum of every word but the last: each word xored with a
/// constant of its index, summed (a torn value, words of two updates,
/// fails it; a reader has to load every word to compute it).
fn checksum(words: &[u64; WORDS]) -> u64 {
    words[..WORDS - 1]
        .iter()
        .enumerate()
        .fold(0u64, |acc, (i, w)| {
            acc.wrapping_add(w ^ (i as u64).wrapping_mul(0xc4ce_b9fe_1a85_ec53))
        })
}

/// A reader's check of one value: the checksum holds and the counter did
/// not go back. Counts the distinct updates seen.
#[derive(Default)]
struct Seen {
    last: u64,
    updates: u64,
    errors: u64,
}

impl Seen {
    #[inline]
    fn check(&mut self, words: &[u64; WORDS]) {
        let n = words[0];
        if checksum(words) != words[WORDS - 1] || n < self.last {
            self.errors += 1;
        }
        self.updates += u64::from(n != self.last);
        self.last = n;
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Mmring,
    MmapSync,
}

/// One config-sharing run.
struct ConfigRun {
    /// From the start gate to the last reader's last read.
    ns: u64,
    /// Updates the writer made meanwhile (including those while the readers
    /// were attaching).
    updates: u64,
    /// Distinct updates the readers saw, summed over readers.
    seen: u64,
}

/// A fresh path prefix for mmap-sync's files (`_state`, `_data_0`,
/// `_data_1`), in /dev/shm like the mmring ring (a memfd: tmpfs too).
fn sync_prefix() -> String {
    use std::sync::atomic::AtomicU32;
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "/dev/shm/mmring-bench-mmap-sync-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Reads a child's one-line report.
fn report(r: std::os::fd::OwnedFd) -> Vec<u64> {
    let mut text = String::new();
    std::fs::File::from(r)
        .read_to_string(&mut text)
        .expect("read a child's report");
    text.split_whitespace()
        .map(|x| x.parse().expect("a number"))
        .collect()
}

/// The writer process: publishes update 0, waits at its gate, then
/// replaces the value every `period` (0: as fast as it can) until `stop`;
/// reports the
/// number of updates. Returns its pid, its report pipe, and the word that
/// stops it.
fn writer(
    side: Side,
    ring: &broadcast::Ring,
    prefix: &str,
    period: Duration,
) -> (
    libc::pid_t,
    std::os::fd::OwnedFd,
    &'static std::sync::atomic::AtomicU64,
) {
    let stop = proc::shared_counter().expect("shared word");
    let (r, w) = rustix::pipe::pipe().expect("pipe");
    let mut gate = proc::Gate::new().expect("gate");
    let pid = proc::fork_child(|| {
        proc::pin(0);
        let mut value = Value { words: [0; WORDS] };
        let mut publish: Box<dyn FnMut(&Value)> = match side {
            Side::Mmring => {
                let mut tx = ring.publisher().expect("publisher");
                Box::new(move |v| tx.send_pod(&v.words).expect("send"))
            }
            Side::MmapSync => {
                let mut sync = Sync::with_params(prefix.as_ref());
                Box::new(move |v| {
                    sync.write(v, Duration::from_secs(1))
                        .expect("mmap-sync write");
                })
            }
        };
        fill(&mut value.words, 0);
        publish(&value);
        gate.child_wait();
        let period = period.as_nanos() as u64;
        let mut due = proc::now_ns();
        let mut n = 0;
        // ORDERING: Relaxed; a flag, nothing to order.
        while stop.load(Ordering::Relaxed) == 0 {
            n += 1;
            fill(&mut value.words, n);
            publish(&value);
            due += period;
            let now = proc::now_ns();
            if due > now {
                std::thread::sleep(Duration::from_nanos(due - now));
            } else {
                due = now;
            }
        }
        let _ = writeln!(std::fs::File::from(w), "{n}");
        0
    })
    .expect("fork the writer");
    gate.open(1).expect("the writer starts");
    (pid, r, stop)
}

/// `readers` reader processes each read the value `reads` times while the
/// writer updates it; see the file's docs.
fn config_run(side: Side, readers: usize, reads: u64, period: Duration) -> ConfigRun {
    let ring = broadcast::Ring::anonymous(Config::new(64 << 10)).expect("ring");
    let prefix = sync_prefix();
    let (writer_pid, writer_report, stop) = writer(side, &ring, &prefix, period);
    let mut gate = proc::Gate::new().expect("gate");
    let mut children = Vec::new();
    for i in 0..readers {
        let (r, w) = rustix::pipe::pipe().expect("pipe");
        let pid = proc::fork_child(|| {
            // Reader i on CPU 1, 0, 1, 0...: the writer sleeps between
            // updates, so four readers share both CPUs.
            proc::pin(1 + i);
            let mut seen = Seen::default();
            let end = match side {
                Side::Mmring => {
                    let mut rx = ring.subscriber().expect("subscriber");
                    let mut read = |seen: &mut Seen| {
                        let v = rx.latest().expect("latest").expect("a value");
                        seen.check(v.as_pod::<[u64; WORDS]>().expect("4 KiB"));
                    };
                    read(&mut seen);
                    gate.child_wait();
                    for _ in 0..reads {
                        read(&mut seen);
                    }
                    proc::now_ns()
                }
                Side::MmapSync => {
                    let mut sync = Sync::with_params(prefix.as_ref());
                    let mut read = |seen: &mut Seen| {
                        // SAFETY: the files hold values of type `Value`
                        // archived by the writer above, the only writer;
                        // rkyv's validation is skipped (mmap-sync's fast
                        // path), the checksum checks every read instead.
                        let v = unsafe { sync.read::<Value>(false) }.expect("mmap-sync read");
                        seen.check(&v.words);
                    };
                    read(&mut seen);
                    gate.child_wait();
                    for _ in 0..reads {
                        read(&mut seen);
                    }
                    proc::now_ns()
                }
            };
            let _ = writeln!(
                std::fs::File::from(w),
                "{end} {} {}",
                seen.updates,
                seen.errors
            );
            0
        })
        .expect("fork a reader");
        children.push((pid, r));
    }
    let t0 = gate.open(readers).expect("the readers start");
    let (mut end, mut seen) = (t0, 0);
    for (pid, r) in children {
        let v = report(r);
        proc::wait_child(pid).expect("a reader");
        let [t, updates, errors] = v[..] else {
            panic!("a reader's report: {v:?}");
        };
        assert_eq!(errors, 0, "{side:?}: {errors} reads failed their check");
        end = end.max(t);
        seen += updates;
    }
    // ORDERING: Relaxed; a flag, nothing to order.
    stop.store(1, Ordering::Relaxed);
    let updates = report(writer_report)[0];
    proc::wait_child(writer_pid).expect("the writer");
    for f in ["_state", "_data_0", "_data_1"] {
        let _ = std::fs::remove_file(format!("{prefix}{f}"));
    }
    ConfigRun {
        ns: end - t0,
        updates,
        seen,
    }
}

fn broadcast_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_threads");
    g.throughput(Throughput::Elements(PER_ITER));
    for subs in [1usize, 4, 16] {
        g.bench_function(BenchmarkId::new("mmring", subs), |b| {
            b.iter_custom(|iters| mmring_threads(subs, iters))
        });
        g.bench_function(BenchmarkId::new("tokio", subs), |b| {
            b.iter_custom(|iters| tokio_threads(subs, iters))
        });
    }
    g.finish();
}

fn broadcast_processes(c: &mut Criterion) {
    let mut g = c.benchmark_group("broadcast_processes");
    g.throughput(Throughput::Elements(1));
    for subs in ["1", "4", "16"] {
        g.bench_function(BenchmarkId::new("mmring", subs), |b| {
            b.iter_custom(|n| case("ring", &["--kind", "broadcast", "--consumers", subs], n))
        });
    }
    // The same frames over spsc, 1 x 1 (W1).
    g.bench_function("spsc_1x1", |b| b.iter_custom(|n| case("ring", &[], n)));
    g.finish();
}

fn config_latest(c: &mut Criterion) {
    let mut g = c.benchmark_group("config_latest");
    for readers in [1usize, 4] {
        // One element: one read by each reader.
        g.throughput(Throughput::Elements(readers as u64));
        for (name, side) in [("mmring", Side::Mmring), ("mmap_sync", Side::MmapSync)] {
            g.bench_function(BenchmarkId::new(name, readers), |b| {
                b.iter_custom(|n| {
                    Duration::from_nanos(config_run(side, readers, n, UPDATE_PERIOD).ns)
                })
            });
        }
    }
    g.finish();
}

/// The config comparison once more, in one run, with its ratios, beside
/// the cache-line round trip measured just before; then the same with a
/// writer that replaces the value as fast as it can (the case least
/// favourable to `latest()`, which copies a changed value).
fn config_summary() {
    const RTTS: u64 = 100_000;
    let rtt = case("cache-line-rtt", &[], RTTS);
    println!(
        "\nconfig sharing, one run: 4 KiB value; {SUMMARY_READS} checked reads per reader; \
         cache-line round trip between two processes just before: {:.0} ns (mean of {RTTS})",
        rtt.as_nanos() as f64 / RTTS as f64
    );
    for period in [UPDATE_PERIOD, Duration::ZERO] {
        if period.is_zero() {
            println!("  writer replacing the value as fast as it can:");
        } else {
            println!(
                "  writer replacing the value every {} us:",
                period.as_micros()
            );
        }
        config_ratios(period);
    }
}

/// One line per side and reader count, and the ratios.
fn config_ratios(period: Duration) {
    for readers in [1usize, 4] {
        let mut rate = [0.0; 2];
        for (k, side) in [Side::Mmring, Side::MmapSync].into_iter().enumerate() {
            let r = config_run(side, readers, SUMMARY_READS, period);
            let total = (readers as u64 * SUMMARY_READS) as f64;
            rate[k] = total / (r.ns as f64 / 1e9);
            println!(
                "  {readers} reader(s)  {:<9}  {:>7.2} M reads/s in all  ({:.0} ns a read per reader; {} updates written, {} distinct seen by the readers)",
                if side == Side::Mmring {
                    "mmring"
                } else {
                    "mmap-sync"
                },
                rate[k] / 1e6,
                r.ns as f64 / SUMMARY_READS as f64,
                r.updates,
                r.seen
            );
        }
        println!(
            "  {readers} reader(s)  mmring / mmap-sync = {:.2}x",
            rate[0] / rate[1]
        );
    }
}

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
    broadcast_threads(&mut c);
    broadcast_processes(&mut c);
    config_latest(&mut c);
    c.final_summary();
    // `--list` and criterion's `--test` smoke mode skip the summary pass.
    if std::env::args().all(|a| a != "--list" && a != "--test") {
        config_summary();
    }
}
