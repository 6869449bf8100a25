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
//! The peers that are crates (shmem-ipc between two processes, rtrb
//! between threads) are dev-dependencies and so cannot live in the
//! binary: they run here, in `mod peers`, forked and timed the same way
//! (start when the consumer is attached, end at the consumer's last
//! message, both processes pinned to the two CPUs).
//!
//! | group              | mmring                                 | floor / reference                                  |
//! |--------------------|----------------------------------------|----------------------------------------------------|
//! | `w1_small`         | spsc 64 B, 256 KiB ring, two processes | shmem-ipc (processes), pipe, Unix socket; threads: mmring, rtrb, crossbeam, std channel |
//! | `w1_large_ring`    | spsc 64 B, 4 MiB ring, two processes   | shmem-ipc, 4 MiB ring                              |
//! | `w2_large`         | spsc 4 KiB, 256 KiB ring, copy in/out; read in place | shmem-ipc 4 KiB (processes), single-thread `memcpy`, pipe |
//! | `w3_spin_rtt`      | ping-pong over two spsc rings, spin; the same in one thread (the ring's own work) | two processes bouncing one cache line |
//! | `w4_blocking_rtt`  | the same, blocking: spin then sleep; sleep at once (`--wait sleep`) | two processes bouncing a futex                     |
//! | `w5_multi`         | mpmc 2 x 2, mpsc 4 x 1 (processes)     | crossbeam-channel, same shapes, threads            |
//!
//! After the criterion groups a summary pass measures each row of issue 16's
//! table once more (best of three attempts each), with the cache-line round
//! trip measured right before the row, and prints mmring's figure, the best
//! peer's or the floor's, the ratio, the goal and whether it is met. The
//! ring is the issue's 256 KiB (4096 × 64 B) wherever a ring streams.
//!
//! Environment:
//! * `MMRING_BENCH_SUMMARY=only`: the summary pass alone (no criterion
//!   groups); `=0`: no summary pass.
//! * `MMRING_BENCH_QUICK=1`, or criterion's `--test`: the summary pass on
//!   tiny counts, one attempt each (a smoke run: its figures mean nothing).
//!
//! Run the built benchmark under `chrt -f 10` only as a whole: every case
//! with more than two spinning processes or threads (the W5 shapes) drops
//! back to the normal scheduler first, so no more than two real-time
//! processes ever spin on the two CPUs.

use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};

/// The `mmring` binary cargo built for this benchmark.
const MMRING: &str = env!("CARGO_BIN_EXE_mmring");

/// The issue's ring: 256 KiB, 4096 messages of 64 B.
const RING: &str = "256K";
/// Messages of 64 B in the issue's ring.
const RING_SLOTS: usize = 4096;
/// The large ring: 4 MiB.
const LARGE_RING: &str = "4M";
/// Messages of 64 B in the large ring.
const LARGE_RING_SLOTS: usize = 65536;

/// What one `mmring bench --case` run printed.
struct Run {
    ns: u64,
    /// Round trips: the median, ns.
    p50: Option<u64>,
}

/// Whether a case spins more than two processes or threads: it then runs
/// under the normal scheduler even when this benchmark runs real-time.
fn many_spinners(args: &[&str]) -> bool {
    let count = |flag: &str| {
        args.iter()
            .position(|a| *a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(1)
    };
    count("--producers") + count("--consumers") > 2
}

/// Runs `mmring bench --case CASE --count n ARGS...`.
fn run_case(case: &str, args: &[&str], n: u64) -> Run {
    let mut cmd = Command::new(MMRING);
    cmd.args(["bench", "--case", case, "--count", &n.max(1).to_string()])
        .args(args);
    if many_spinners(args) {
        // SAFETY: runs in the forked child before exec and only makes one
        // system call (no allocation, no lock), as `pre_exec` requires.
        unsafe {
            cmd.pre_exec(|| {
                peers::leave_realtime();
                Ok(())
            });
        }
    }
    let out = cmd.output().expect("run the mmring binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mmring bench --case {case} {args:?}: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let value = |key: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse().ok())
    };
    Run {
        ns: value("elapsed_ns ").unwrap_or_else(|| panic!("no elapsed_ns in {stdout:?}")),
        p50: value("p50_ns "),
    }
}

/// The time `mmring bench --case` measured.
fn case(case: &str, args: &[&str], n: u64) -> Duration {
    Duration::from_nanos(run_case(case, args, n).ns)
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
    bench(
        &mut g,
        "mmring_spsc/processes",
        "ring",
        &["--capacity", RING],
    );
    bench(
        &mut g,
        "mmring_spsc_batch64/processes",
        "ring",
        &["--capacity", RING, "--batch", "64"],
    );
    g.bench_function("shmem_ipc/processes", |b| {
        b.iter_custom(|n| peers::shmem_ipc::<8>(n, RING_SLOTS))
    });
    bench(&mut g, "pipe/processes", "pipe", &[]);
    bench(&mut g, "unix_socket/processes", "socket", &[]);
    bench(
        &mut g,
        "mmring_spsc/threads",
        "ring-threads",
        &["--capacity", RING],
    );
    g.bench_function("rtrb/threads", |b| {
        b.iter_custom(|n| peers::rtrb_threads(n, RING_SLOTS))
    });
    bench(
        &mut g,
        "crossbeam_channel/threads",
        "crossbeam-threads",
        &[],
    );
    bench(&mut g, "std_sync_channel/threads", "std-threads", &[]);
    g.finish();
}

fn w1_large_ring(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_large_ring");
    g.throughput(Throughput::Elements(1));
    bench(
        &mut g,
        "mmring_spsc/processes",
        "ring",
        &["--capacity", LARGE_RING],
    );
    g.bench_function("shmem_ipc/processes", |b| {
        b.iter_custom(|n| peers::shmem_ipc::<8>(n, LARGE_RING_SLOTS))
    });
    g.finish();
}

fn w2_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("w2_large");
    g.throughput(Throughput::Bytes(4096));
    bench(
        &mut g,
        "mmring_spsc/copy_in_out",
        "ring",
        &["--size", "4K", "--access", "copy", "--capacity", RING],
    );
    bench(
        &mut g,
        "mmring_spsc/read_in_place",
        "ring",
        &["--size", "4K", "--access", "read", "--capacity", RING],
    );
    g.bench_function("shmem_ipc/copy_in_out", |b| {
        b.iter_custom(|n| peers::shmem_ipc::<512>(n, RING_SLOTS / 64))
    });
    bench(&mut g, "memcpy/single_thread", "memcpy", &["--size", "4K"]);
    bench(&mut g, "pipe/processes", "pipe", &["--size", "4K"]);
    g.finish();
}

fn w3_spin_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3_spin_rtt");
    bench(&mut g, "mmring_spsc/processes", "ring-rtt", &[]);
    bench(&mut g, "mmring_spsc/one_thread", "ring-rtt-local", &[]);
    bench(&mut g, "cache_line_floor/processes", "cache-line-rtt", &[]);
    g.finish();
}

fn w4_blocking_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w4_blocking_rtt");
    bench(&mut g, "mmring_spsc/processes", "ring-rtt", &["--blocking"]);
    bench(
        &mut g,
        "mmring_spsc_sleep/processes",
        "ring-rtt",
        &["--blocking", "--wait", "sleep"],
    );
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
                let args: Vec<&str> = shape
                    .iter()
                    .copied()
                    .chain(["--blocking", "--capacity", RING])
                    .collect();
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

/// The peers that are crates, measured in this process and a forked one.
mod peers {
    use std::hint::{black_box, spin_loop};
    use std::os::fd::OwnedFd;
    use std::time::{Duration, Instant};

    use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

    /// Drops the calling process to the normal scheduler if it runs
    /// real-time (a process may always lower its own policy).
    pub fn leave_realtime() {
        // SAFETY: plain system calls on the calling process with a valid
        // `sched_param`.
        unsafe {
            if libc::sched_getscheduler(0) != libc::SCHED_OTHER {
                let p = libc::sched_param { sched_priority: 0 };
                libc::sched_setscheduler(0, libc::SCHED_OTHER, &p);
            }
        }
    }

    /// The scheduling policy of this process, for the summary's header.
    pub fn policy() -> &'static str {
        // SAFETY: a plain system call on the calling process.
        match unsafe { libc::sched_getscheduler(0) } {
            libc::SCHED_FIFO => "SCHED_FIFO (real-time)",
            libc::SCHED_RR => "SCHED_RR (real-time)",
            _ => "normal",
        }
    }

    /// CLOCK_MONOTONIC in ns: one clock for both processes.
    fn now_ns() -> u64 {
        let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
    }

    /// Pins the calling process to the `i`th CPU it may use (as
    /// `mmring bench` pins its producer and consumer), when it may use two
    /// or more. Best effort.
    fn pin(allowed: &CpuSet, i: usize) {
        let cpus: Vec<usize> = (0..CpuSet::MAX_CPU)
            .filter(|&c| allowed.is_set(c))
            .collect();
        if cpus.len() >= 2 {
            let mut set = CpuSet::new();
            set.set(cpus[i % cpus.len()]);
            let _ = sched_setaffinity(None, &set);
        }
    }

    fn read_all(fd: &OwnedFd) -> String {
        let mut out = Vec::new();
        let mut b = [0u8; 256];
        loop {
            match rustix::io::read(fd, &mut b) {
                Ok(0) => break,
                Ok(k) => out.extend_from_slice(&b[..k]),
                Err(rustix::io::Errno::INTR) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// `n` messages of `8 * W` bytes from this process to a forked one over
    /// shmem-ipc's sharedring (a memfd of `slots` messages, the receiver
    /// opening it from the sender's descriptors as a separate process
    /// would), both spinning and pinned to the two CPUs. Each message is
    /// written whole into its slot and read whole out of it (the producer
    /// numbers them, the consumer checks the numbers); one message per send
    /// and per receive, as mmring's plain send and recv. The spinning
    /// workload uses the ring directly (`sender_mut`, `receiver_mut`): with
    /// nobody asleep, sharedring's eventfd signals on the empty and full
    /// transitions would only add system calls.
    pub fn shmem_ipc<const W: usize>(n: u64, slots: usize) -> Duration {
        use shmem_ipc::sharedring::{Receiver, Sender};
        let n = n.max(1);
        let mut tx = Sender::<[u64; W]>::new(slots).expect("shmem-ipc sender");
        let memfd = tx.memfd().as_file().try_clone().expect("dup memfd");
        let empty = tx.empty_signal().try_clone().expect("dup eventfd");
        let full = tx.full_signal().try_clone().expect("dup eventfd");
        let (ready_r, ready_w) = rustix::pipe::pipe().expect("pipe");
        let (done_r, done_w) = rustix::pipe::pipe().expect("pipe");
        let allowed = sched_getaffinity(None).expect("sched_getaffinity");
        let parent = std::process::id();
        // SAFETY: this benchmark runs one thread when it forks (criterion
        // measures on the main thread; the thread peers join theirs), and
        // the child leaves with `_exit`, never returning into the parent's
        // state.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
        if pid == 0 {
            drop((ready_r, done_r));
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                pin(&allowed, 1);
                let mut rx =
                    Receiver::<[u64; W]>::open(slots, memfd, empty, full).expect("open receiver");
                let _ = rustix::io::write(&ready_w, b"r");
                drop(ready_w);
                let (mut seq, mut errors, mut idle) = (0u64, 0u64, 0u32);
                while seq < n {
                    // `recv` calls back only when a message is there.
                    let before = seq;
                    rx.receiver_mut()
                        .recv(|p, _len| {
                            // SAFETY: `recv` hands `_len` (>= 1) readable
                            // messages at `p` in the mapped ring.
                            let m = black_box(unsafe { p.read() });
                            errors += u64::from(m[0] != seq);
                            seq += 1;
                            1
                        })
                        .expect("shmem-ipc recv");
                    if seq == before {
                        spin_loop();
                        idle = idle.wrapping_add(1);
                        // Now and then, whether the sender is still there:
                        // an orphan would spin for ever.
                        if idle % (1 << 20) == 0 && std::os::unix::process::parent_id() != parent {
                            return 1;
                        }
                    }
                }
                let end = now_ns();
                let _ = rustix::io::write(&done_w, format!("{end} {errors}").as_bytes());
                0
            }))
            .unwrap_or(101);
            // SAFETY: end the child without running the parent's atexit
            // handlers or destructors a second time.
            unsafe { libc::_exit(code) }
        }
        drop((ready_w, done_w, memfd, empty, full));
        pin(&allowed, 0);
        let mut b = [0u8; 1];
        // One byte, or end-of-file if the receiver died first.
        while rustix::io::read(&ready_r, &mut b) == Err(rustix::io::Errno::INTR) {}
        assert_eq!(&b, b"r", "the shmem-ipc receiver did not start");
        let start = now_ns();
        let mut msg = [0u64; W];
        for seq in 0..n {
            msg[0] = seq;
            let mut sent = false;
            let mut spins = 0u32;
            while !sent {
                // `send` calls back only when a slot is free.
                tx.sender_mut()
                    .send(|p, _len| {
                        // SAFETY: `send` hands `_len` (>= 1) writable
                        // message slots at `p` in the mapped ring.
                        unsafe { p.write(msg) };
                        sent = true;
                        1
                    })
                    .expect("shmem-ipc send");
                if !sent {
                    spin_loop();
                    spins = spins.wrapping_add(1);
                    // Now and then, whether the receiver is still there
                    // (a full ring with nobody draining it would spin for
                    // ever).
                    if spins % (1 << 20) == 0 {
                        let mut status = 0;
                        // SAFETY: polling our own child without reaping
                        // it twice: a reaped child ends the benchmark.
                        let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                        assert_eq!(r, 0, "shmem-ipc receiver ended early (status {status:#x})");
                    }
                }
            }
        }
        let done = read_all(&done_r);
        let _ = sched_setaffinity(None, &allowed);
        let mut status = 0;
        // SAFETY: waiting for our own child.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "shmem-ipc receiver failed (status {status:#x})"
        );
        let (end, errors) = done
            .split_once(' ')
            .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
            .unwrap_or_else(|| panic!("shmem-ipc receiver reported {done:?}"));
        assert_eq!(errors, 0, "shmem-ipc: messages out of order");
        Duration::from_nanos(end.saturating_sub(start))
    }

    /// `n` messages of 64 bytes from one thread to another through rtrb's
    /// ring of `slots`, spinning, each checked.
    pub fn rtrb_threads(n: u64, slots: usize) -> Duration {
        let (mut tx, mut rx) = rtrb::RingBuffer::<[u64; 8]>::new(slots);
        let mut errors = 0u64;
        let t = Instant::now();
        std::thread::scope(|s| {
            s.spawn(move || {
                for seq in 0..n {
                    let mut m = [0u64; 8];
                    m[0] = seq;
                    while tx.push(m).is_err() {
                        spin_loop();
                    }
                }
            });
            for seq in 0..n {
                let m = loop {
                    match rx.pop() {
                        Ok(m) => break m,
                        Err(_) => spin_loop(),
                    }
                };
                // Counted, not asserted here: a panic would leave the
                // producer spinning on a full ring and the scope waiting.
                errors += u64::from(black_box(m)[0] != seq);
            }
        });
        let elapsed = t.elapsed();
        assert_eq!(errors, 0, "rtrb: messages out of order");
        elapsed
    }
}

/// How a figure compares with its peer or floor, and the issue's goal.
#[derive(Clone, Copy)]
enum Goal {
    /// Throughput: mmring / peer at least this.
    AtLeast(f64),
    /// Round trip: mmring / floor at most this.
    AtMost(f64),
    /// A reference beside the table; the issue sets no goal.
    None,
}

/// One row of the summary: figures in `unit` (higher is better for
/// throughput, lower for round trips).
struct Row {
    workload: &'static str,
    ours: f64,
    peer: String,
    theirs: f64,
    goal: Goal,
    /// The cache-line round trip p50 measured just before the row, ns.
    line_rtt: u64,
}

/// Counts for the summary pass.
struct Counts {
    msgs: u64,
    large: u64,
    round_trips: u64,
    attempts: u32,
}

/// Best of `attempts` throughputs (units per second x `scale`).
fn best_rate(attempts: u32, units: u64, scale: f64, mut f: impl FnMut() -> Duration) -> f64 {
    (0..attempts)
        .map(|_| units as f64 / f().as_secs_f64() * scale)
        .fold(0.0, f64::max)
}

/// Best (lowest) of `attempts` round-trip medians, ns.
fn best_p50(attempts: u32, case: &str, args: &[&str], n: u64) -> f64 {
    (0..attempts)
        .map(|_| run_case(case, args, n).p50.expect("p50_ns") as f64)
        .fold(f64::INFINITY, f64::min)
}

fn summary(quick: bool) {
    let k = if quick {
        Counts {
            msgs: 20_000,
            large: 2_000,
            round_trips: 2_000,
            attempts: 1,
        }
    } else {
        Counts {
            msgs: 2_000_000,
            large: 500_000,
            round_trips: 100_000,
            attempts: 3,
        }
    };
    println!();
    println!(
        "summary (issue 16's table): one run, best of {} attempt(s) per figure; {} 64 B messages, {} of 4 KiB, {} round trips; rings of 256 KiB unless named; scheduling: {}{}",
        k.attempts,
        k.msgs,
        k.large,
        k.round_trips,
        peers::policy(),
        if quick {
            "; QUICK (smoke) run: these figures mean nothing"
        } else {
            ""
        }
    );
    let line_rtt = || {
        run_case("cache-line-rtt", &[], k.round_trips)
            .p50
            .expect("p50_ns")
    };
    let mmring = |args: &[&str], units: u64, scale: f64| {
        best_rate(k.attempts, units, scale, || case("ring", args, units))
    };
    let m = 1e-6;
    let gb = 4096.0 * 1e-9;
    let mut rows = Vec::new();

    let rtt = line_rtt();
    let shmem_w1 = best_rate(k.attempts, k.msgs, m, || {
        peers::shmem_ipc::<8>(k.msgs, RING_SLOTS)
    });
    rows.push(Row {
        workload: "W1 64 B spin, M msgs/s",
        ours: mmring(&["--capacity", RING], k.msgs, m),
        peer: "shmem-ipc".into(),
        theirs: shmem_w1,
        goal: Goal::AtLeast(2.0),
        line_rtt: rtt,
    });
    let rtt = line_rtt();
    rows.push(Row {
        workload: "W1 64 B spin, send + recv batches of 64, M msgs/s",
        ours: mmring(&["--capacity", RING, "--batch", "64"], k.msgs, m),
        peer: "shmem-ipc (one message per send)".into(),
        theirs: shmem_w1,
        goal: Goal::AtLeast(3.0),
        line_rtt: rtt,
    });
    let rtt = line_rtt();
    rows.push(Row {
        workload: "W1 64 B spin, 4 MiB ring, M msgs/s",
        ours: mmring(&["--capacity", LARGE_RING], k.msgs, m),
        peer: "shmem-ipc 4 MiB".into(),
        theirs: best_rate(k.attempts, k.msgs, m, || {
            peers::shmem_ipc::<8>(k.msgs, LARGE_RING_SLOTS)
        }),
        goal: Goal::None,
        line_rtt: rtt,
    });
    let rtt = line_rtt();
    rows.push(Row {
        workload: "W1 64 B threads, M msgs/s",
        ours: best_rate(k.attempts, k.msgs, m, || {
            case("ring-threads", &["--capacity", RING], k.msgs)
        }),
        peer: "rtrb".into(),
        theirs: best_rate(k.attempts, k.msgs, m, || {
            peers::rtrb_threads(k.msgs, RING_SLOTS)
        }),
        goal: Goal::None,
        line_rtt: rtt,
    });
    let rtt = line_rtt();
    rows.push(Row {
        workload: "W2 4 KiB spin copy in/out, GB/s",
        ours: mmring(
            &["--size", "4K", "--access", "copy", "--capacity", RING],
            k.large,
            gb,
        ),
        peer: "shmem-ipc".into(),
        theirs: best_rate(k.attempts, k.large, gb, || {
            peers::shmem_ipc::<512>(k.large, RING_SLOTS / 64)
        }),
        goal: Goal::AtLeast(1.2),
        line_rtt: rtt,
    });
    // The floor of W3 is the cache-line round trip itself, measured just
    // before mmring's.
    let floor = line_rtt();
    rows.push(Row {
        workload: "W3 spin round trip p50, ns",
        ours: best_p50(k.attempts, "ring-rtt", &[], k.round_trips),
        peer: "cache-line floor".into(),
        theirs: floor as f64,
        goal: Goal::AtMost(1.3),
        line_rtt: floor,
    });
    // What of W3 is the ring's own work: the same round trip in one
    // thread, every line in this CPU's cache.
    rows.push(Row {
        workload: "W3 reference: the same round trip in one thread (the ring's own work) p50, ns",
        ours: best_p50(k.attempts, "ring-rtt-local", &[], k.round_trips),
        peer: "cache-line floor".into(),
        theirs: floor as f64,
        goal: Goal::None,
        line_rtt: floor,
    });
    let rtt = line_rtt();
    let futex = best_p50(k.attempts, "futex-rtt", &[], k.round_trips);
    rows.push(Row {
        workload: "W4 blocking, sleep at once, round trip p50, ns",
        ours: best_p50(
            k.attempts,
            "ring-rtt",
            &["--blocking", "--wait", "sleep"],
            k.round_trips,
        ),
        peer: "futex floor".into(),
        theirs: futex,
        goal: Goal::AtMost(1.2),
        line_rtt: rtt,
    });
    // The default wait strategy spins first: no sleep/wake round trip when
    // the peer answers within the spin.
    rows.push(Row {
        workload: "W4 blocking, spin then sleep (default), round trip p50, ns",
        ours: best_p50(k.attempts, "ring-rtt", &["--blocking"], k.round_trips),
        peer: "futex floor".into(),
        theirs: futex,
        goal: Goal::None,
        line_rtt: rtt,
    });
    let multi: [(
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
        &str,
    ); 3] = [
        (
            "W5 mpmc 2P x 2C blocking, M msgs/s",
            &["--kind", "mpmc", "--producers", "2", "--consumers", "2"],
            &["--blocking"],
            "crossbeam-channel 2P x 2C threads",
        ),
        (
            "mpsc 2P x 1C spin (3 spinners, 2 CPUs), M msgs/s",
            &["--kind", "mpsc", "--producers", "2", "--consumers", "1"],
            &[],
            "crossbeam-channel 2P x 1C threads",
        ),
        (
            "mpsc 2P x 1C blocking, M msgs/s",
            &["--kind", "mpsc", "--producers", "2", "--consumers", "1"],
            &["--blocking"],
            "crossbeam-channel 2P x 1C threads",
        ),
    ];
    for (workload, shape, mode, peer) in multi {
        let rtt = line_rtt();
        let args: Vec<&str> = shape
            .iter()
            .chain(mode)
            .copied()
            .chain(["--capacity", RING])
            .collect();
        rows.push(Row {
            workload,
            ours: mmring(&args, k.msgs, m),
            peer: peer.into(),
            theirs: best_rate(k.attempts, k.msgs, m, || {
                case("crossbeam-threads", &shape[2..], k.msgs)
            }),
            goal: Goal::AtLeast(2.0),
            line_rtt: rtt,
        });
    }

    println!(
        "| workload | mmring | best peer / floor | ratio | goal | met | cache-line RTT p50 just before |"
    );
    println!("|---|---|---|---|---|---|---|");
    let (mut met, mut missed) = (0, 0);
    for r in &rows {
        let ratio = r.ours / r.theirs;
        let (goal, verdict) = match r.goal {
            Goal::AtLeast(g) => (format!(">= {g}x"), ratio >= g),
            Goal::AtMost(g) => (format!("<= {g}x"), ratio <= g),
            Goal::None => ("-".into(), true),
        };
        let verdict = match r.goal {
            Goal::None => "-",
            _ if verdict => {
                met += 1;
                "met"
            }
            _ => {
                missed += 1;
                "MISSED"
            }
        };
        // Round trips in whole ns, rates to a tenth.
        let digits = if r.workload.ends_with("ns") { 0 } else { 1 };
        println!(
            "| {} | {:.*} | {} {:.*} | {:.3}x | {goal} | {verdict} | {} ns |",
            r.workload, digits, r.ours, r.peer, digits, r.theirs, ratio, r.line_rtt
        );
    }
    println!("goals: {met} met, {missed} missed; rows without a goal are references");
    println!(
        "crossbeam-channel spins, then parks its threads; the batched W1 row is judged against shmem-ipc's per-message figure, as the issue states its goal"
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test");
    let list = args.iter().any(|a| a == "--list");
    let which = std::env::var("MMRING_BENCH_SUMMARY").unwrap_or_default();
    let quick = smoke || std::env::var("MMRING_BENCH_QUICK").is_ok_and(|v| v != "0");
    if which != "only" {
        let mut c = Criterion::default()
            .without_plots()
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1))
            .configure_from_args();
        w1_small(&mut c);
        w1_large_ring(&mut c);
        w2_large(&mut c);
        w3_spin_rtt(&mut c);
        w4_blocking_rtt(&mut c);
        w5_multi(&mut c);
        c.final_summary();
    }
    if !list && which != "0" {
        summary(quick);
    }
}
