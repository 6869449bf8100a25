//! Workloads W1–W5, each with the floors and references that say what its
//! numbers mean, measured in the same run.
//!
//! ```text
//! cargo bench --bench workloads             # criterion groups, then a ratio table
//! cargo bench --bench workloads -- w3       # one group
//! ```
//!
//! | group              | mmring                              | floor / reference                                  |
//! |--------------------|-------------------------------------|----------------------------------------------------|
//! | `w1_small`         | spsc 64 B, two processes            | pipe, Unix socket; threads: crossbeam, std channel |
//! | `w2_large`         | spsc 4 KiB, copy in/out; read in place | single-thread `memcpy`                          |
//! | `w3_spin_rtt`      | ping-pong over two spsc rings, spin | two processes bouncing one cache line              |
//! | `w4_blocking_rtt`  | the same, sleeping in the kernel    | two processes bouncing a futex                     |
//! | `w5_multi`         | mpmc 2 x 2, mpsc 4 x 1 (processes)  | crossbeam-channel, same shapes, threads            |
//!
//! Cross-process cases fork their peers (pinned to separate CPUs) and start
//! the clock only once everyone is attached. After the criterion groups, a
//! summary pass measures each workload once more and prints ratios
//! (mmring / floor, mmring / pipe) and round-trip percentiles.

#[path = "../src/bin/mmring/proc.rs"]
mod proc;

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::*};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use crossbeam_utils::Backoff;
use mmring::{Config, RecvError, SendError, mpmc, mpsc, spsc};
use proc::{Gate, fork_child, pin, unpin, wait_child};

const SMALL: usize = 64;
const LARGE: usize = 4096;

// ---------------------------------------------------------------- helpers

/// Busy-waits for room, never sleeping. The first successful try only
/// proves there is room (dropping an uncommitted SPSC grant publishes
/// nothing); the grant is taken again outside the loop, which today's
/// borrow checker accepts.
fn spin_reserve(tx: &mut spsc::Producer, len: usize) -> spsc::WriteGrant<'_> {
    let b = Backoff::new();
    loop {
        match tx.try_reserve(len) {
            Ok(_) => break,
            Err(SendError::Full) => b.spin(),
            Err(e) => panic!("{e}"),
        }
    }
    tx.try_reserve(len).expect("room was just seen")
}

fn spin_recv(rx: &mut spsc::Consumer) -> spsc::ReadGrant<'_> {
    let b = Backoff::new();
    while rx.is_empty() {
        b.spin();
    }
    rx.try_recv().expect("a frame was just seen")
}

/// Runs `child` in a forked, pinned process and `parent` here (pinned to
/// the other CPU), timing `parent` from the moment both are ready.
fn two_processes(child: impl FnOnce(), parent: impl FnOnce()) -> Duration {
    let mut gate = Gate::new().unwrap();
    let pid = fork_child(|| {
        pin(1);
        gate.child_wait();
        child();
        0
    })
    .unwrap();
    pin(0);
    gate.open(1).unwrap();
    let t = Instant::now();
    parent();
    let d = t.elapsed();
    unpin();
    wait_child(pid).unwrap();
    d
}

// --------------------------------------------------------------- W1 / W2

/// `n` frames of `size` bytes from a child producer to this consumer over
/// an spsc ring; the consumer checks each sequence number. `copy`: the
/// producer copies each frame in and the consumer copies it out; otherwise
/// both work in place (the consumer still reads every word).
fn spsc_stream(n: u64, size: usize, copy: bool) -> Duration {
    let ring = spsc::Ring::anonymous(Config::new(1 << 22)).unwrap();
    let src = vec![0x5au8; size];
    two_processes(
        || {
            let mut tx = ring.producer().unwrap();
            for seq in 0..n {
                let mut g = spin_reserve(&mut tx, size);
                if copy {
                    g.copy_from_slice(&src);
                }
                g[..8].copy_from_slice(&seq.to_le_bytes());
                g.commit();
            }
        },
        || {
            let mut rx = ring.consumer().unwrap();
            let mut dst = vec![0u8; size];
            for seq in 0..n {
                let f = spin_recv(&mut rx);
                if copy {
                    dst.copy_from_slice(&f);
                } else if size > SMALL {
                    // Touch the frame in place: read every word.
                    let sum = f.chunks_exact(8).fold(0u64, |a, w| {
                        a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
                    });
                    black_box(sum);
                }
                assert_eq!(f[..8], seq.to_le_bytes());
            }
            black_box(&dst);
        },
    )
}

/// The same stream over a byte stream (a pipe or a Unix socket): one write
/// and one exact read per frame.
fn byte_stream(n: u64, size: usize, read_end: OwnedFd, write_end: OwnedFd) -> Duration {
    two_processes(
        || {
            let mut w = std::fs::File::from(write_end.try_clone().unwrap());
            let mut buf = vec![0u8; size];
            for seq in 0..n {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                w.write_all(&buf).unwrap();
            }
        },
        || {
            let mut r = std::fs::File::from(read_end.try_clone().unwrap());
            let mut buf = vec![0u8; size];
            for seq in 0..n {
                r.read_exact(&mut buf).unwrap();
                assert_eq!(buf[..8], seq.to_le_bytes());
            }
        },
    )
}

fn pipe_stream(n: u64, size: usize) -> Duration {
    let (r, w) = rustix::pipe::pipe().unwrap();
    byte_stream(n, size, r, w)
}

fn socket_stream(n: u64, size: usize) -> Duration {
    let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
    byte_stream(n, size, OwnedFd::from(a), OwnedFd::from(b))
}

fn threads_spsc(n: u64) -> Duration {
    let ring = spsc::Ring::anonymous(Config::new(1 << 22)).unwrap();
    let (mut tx, mut rx) = (ring.producer().unwrap(), ring.consumer().unwrap());
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..n {
                let mut g = spin_reserve(&mut tx, SMALL);
                g[..8].copy_from_slice(&seq.to_le_bytes());
                g.commit();
            }
        });
        for seq in 0..n {
            assert_eq!(spin_recv(&mut rx)[..8], seq.to_le_bytes());
        }
    });
    t.elapsed()
}

fn threads_crossbeam(n: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; SMALL]>(1 << 14);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..n {
                let mut f = [0u8; SMALL];
                f[..8].copy_from_slice(&seq.to_le_bytes());
                tx.send(f).unwrap();
            }
        });
        for seq in 0..n {
            assert_eq!(rx.recv().unwrap()[..8], seq.to_le_bytes());
        }
    });
    t.elapsed()
}

fn threads_std(n: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<[u8; SMALL]>(1 << 14);
    let t = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            for seq in 0..n {
                let mut f = [0u8; SMALL];
                f[..8].copy_from_slice(&seq.to_le_bytes());
                tx.send(f).unwrap();
            }
        });
        for seq in 0..n {
            assert_eq!(rx.recv().unwrap()[..8], seq.to_le_bytes());
        }
    });
    t.elapsed()
}

fn memcpy(n: u64, size: usize) -> Duration {
    // A source larger than the caches, so the copy streams like a ring does.
    let src = vec![1u8; 8 << 20];
    let mut dst = vec![0u8; size];
    let slots = src.len() / size;
    let t = Instant::now();
    for i in 0..n as usize {
        let off = (i % slots) * size;
        dst.copy_from_slice(&src[off..off + size]);
        black_box(&mut dst);
    }
    t.elapsed()
}

// --------------------------------------------------------------- W3 / W4

/// `n` round trips of a 64-byte message over two spsc rings; returns each
/// round trip's duration in ns.
fn spsc_rtt(n: u64, blocking: bool) -> Vec<u64> {
    let ping = spsc::Ring::anonymous(Config::new(1 << 16)).unwrap();
    let pong = spsc::Ring::anonymous(Config::new(1 << 16)).unwrap();
    let mut samples = Vec::with_capacity(n as usize);
    two_processes(
        || {
            let (mut rx, mut tx) = (ping.consumer().unwrap(), pong.producer().unwrap());
            let mut buf = [0u8; SMALL];
            for _ in 0..n {
                if blocking {
                    buf.copy_from_slice(&rx.recv().unwrap());
                    tx.send(&buf).unwrap();
                } else {
                    buf.copy_from_slice(&spin_recv(&mut rx));
                    let mut g = spin_reserve(&mut tx, SMALL);
                    g.copy_from_slice(&buf);
                    g.commit();
                }
            }
        },
        || {
            let (mut tx, mut rx) = (ping.producer().unwrap(), pong.consumer().unwrap());
            let mut buf = [0u8; SMALL];
            for seq in 0..n {
                buf[..8].copy_from_slice(&seq.to_le_bytes());
                let t = Instant::now();
                if blocking {
                    tx.send(&buf).unwrap();
                    assert_eq!(rx.recv().unwrap()[..8], seq.to_le_bytes());
                } else {
                    let mut g = spin_reserve(&mut tx, SMALL);
                    g.copy_from_slice(&buf);
                    g.commit();
                    assert_eq!(spin_recv(&mut rx)[..8], seq.to_le_bytes());
                }
                samples.push(t.elapsed().as_nanos() as u64);
            }
        },
    );
    samples
}

/// A page of shared memory, shared with children across fork.
fn shared_words() -> &'static [AtomicU32; 2] {
    let c = proc::shared_counter().unwrap();
    // SAFETY: the page is 4096 bytes, page-aligned and zeroed; two
    // AtomicU32 fit in the AtomicU64's 8 bytes at its start.
    unsafe { &*(c as *const AtomicU64).cast::<[AtomicU32; 2]>() }
}

/// The spin floor: two processes bouncing one cache line (a turn counter).
fn cacheline_rtt(n: u64) -> Vec<u64> {
    let w = &shared_words()[0];
    let mut samples = Vec::with_capacity(n as usize);
    two_processes(
        || {
            for i in 0..n as u32 {
                while w.load(Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                w.store(2 * i + 2, Release);
            }
        },
        || {
            for i in 0..n as u32 {
                let t = Instant::now();
                w.store(2 * i + 1, Release);
                while w.load(Acquire) != 2 * i + 2 {
                    std::hint::spin_loop();
                }
                samples.push(t.elapsed().as_nanos() as u64);
            }
        },
    );
    samples
}

/// The blocking floor: two processes handing a turn back and forth through
/// a shared futex, each sleeping in the kernel until woken.
fn futex_rtt(n: u64) -> Vec<u64> {
    use rustix::thread::futex;
    let w = &shared_words()[1];
    let wait_for = |v: u32| loop {
        let cur = w.load(Acquire);
        if cur == v {
            return;
        }
        let _ = futex::wait(w, futex::Flags::empty(), cur, None);
    };
    let set = |v: u32| {
        w.store(v, Release);
        let _ = futex::wake(w, futex::Flags::empty(), 1);
    };
    let mut samples = Vec::with_capacity(n as usize);
    two_processes(
        || {
            for i in 0..n as u32 {
                wait_for(2 * i + 1);
                set(2 * i + 2);
            }
        },
        || {
            for i in 0..n as u32 {
                let t = Instant::now();
                set(2 * i + 1);
                wait_for(2 * i + 2);
                samples.push(t.elapsed().as_nanos() as u64);
            }
        },
    );
    samples
}

// -------------------------------------------------------------------- W5

/// `n` 64-byte messages from `p` producer processes to `c` consumer
/// processes (mpmc), or to this process (mpsc when `c == 0`).
fn multi(n: u64, p: u64, c: u64) -> Duration {
    let per = n / p;
    let mut gate = Gate::new().unwrap();
    let mut pids = Vec::new();
    let t;
    if c == 0 {
        let ring = mpsc::Ring::anonymous(Config::new(1 << 22)).unwrap();
        for i in 0..p {
            pids.push(
                fork_child(|| {
                    pin(i as usize + 1);
                    let mut tx = ring.producer().unwrap();
                    gate.child_wait();
                    for seq in 0..per {
                        tx.send(&[seq as u8; SMALL]).unwrap();
                    }
                    0
                })
                .unwrap(),
            );
        }
        let mut rx = ring.consumer().unwrap();
        pin(0);
        gate.open(p as usize).unwrap();
        t = Instant::now();
        for _ in 0..per * p {
            black_box(rx.recv().unwrap()[0]);
        }
    } else {
        let ring = mpmc::Ring::anonymous(Config::slots(4096, SMALL as u64)).unwrap();
        let done = proc::shared_counter().unwrap();
        done.store(0, Relaxed);
        for i in 0..p {
            pids.push(
                fork_child(|| {
                    pin(2 * i as usize);
                    let mut tx = ring.producer().unwrap();
                    gate.child_wait();
                    for seq in 0..per {
                        tx.send(&[seq as u8; SMALL]).unwrap();
                    }
                    0
                })
                .unwrap(),
            );
        }
        for i in 0..c {
            pids.push(
                fork_child(|| {
                    pin(2 * i as usize + 1);
                    let mut rx = ring.consumer().unwrap();
                    gate.child_wait();
                    loop {
                        match rx.recv() {
                            Ok(g) => {
                                black_box(g[0]);
                                done.fetch_add(1, Relaxed);
                            }
                            Err(RecvError::Disconnected) => return 0,
                            Err(e) => panic!("{e}"),
                        }
                    }
                })
                .unwrap(),
            );
        }
        gate.open((p + c) as usize).unwrap();
        t = Instant::now();
        for pid in pids.drain(..) {
            wait_child(pid).unwrap();
        }
        assert_eq!(done.load(Relaxed), per * p);
    }
    let d = t.elapsed();
    unpin();
    for pid in pids {
        wait_child(pid).unwrap();
    }
    d
}

fn threads_crossbeam_multi(n: u64, p: u64, c: u64) -> Duration {
    let (tx, rx) = crossbeam_channel::bounded::<[u8; SMALL]>(4096);
    let per = n / p;
    let t = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..p {
            let tx = tx.clone();
            s.spawn(move || {
                for seq in 0..per {
                    tx.send([seq as u8; SMALL]).unwrap();
                }
            });
        }
        drop(tx);
        for _ in 0..c.max(1) {
            let rx = rx.clone();
            s.spawn(move || {
                while let Ok(m) = rx.recv() {
                    black_box(m[0]);
                }
            });
        }
    });
    t.elapsed()
}

// ------------------------------------------------------------- criterion

fn total(samples: Vec<u64>) -> Duration {
    Duration::from_nanos(samples.iter().sum())
}

fn w1_small(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_small");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mmring_spsc/processes", |b| {
        b.iter_custom(|n| spsc_stream(n, SMALL, false))
    });
    g.bench_function("pipe/processes", |b| {
        b.iter_custom(|n| pipe_stream(n, SMALL))
    });
    g.bench_function("unix_socket/processes", |b| {
        b.iter_custom(|n| socket_stream(n, SMALL))
    });
    g.bench_function("mmring_spsc/threads", |b| b.iter_custom(threads_spsc));
    g.bench_function("crossbeam_channel/threads", |b| {
        b.iter_custom(threads_crossbeam)
    });
    g.bench_function("std_sync_channel/threads", |b| b.iter_custom(threads_std));
    g.finish();
}

fn w2_large(c: &mut Criterion) {
    let mut g = c.benchmark_group("w2_large");
    g.throughput(Throughput::Bytes(LARGE as u64));
    g.bench_function("mmring_spsc/copy_in_out", |b| {
        b.iter_custom(|n| spsc_stream(n, LARGE, true))
    });
    g.bench_function("mmring_spsc/read_in_place", |b| {
        b.iter_custom(|n| spsc_stream(n, LARGE, false))
    });
    g.bench_function("memcpy/single_thread", |b| {
        b.iter_custom(|n| memcpy(n, LARGE))
    });
    g.bench_function("pipe/processes", |b| {
        b.iter_custom(|n| pipe_stream(n, LARGE))
    });
    g.finish();
}

fn w3_spin_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w3_spin_rtt");
    g.bench_function("mmring_spsc/processes", |b| {
        b.iter_custom(|n| total(spsc_rtt(n, false)))
    });
    g.bench_function("cache_line_floor/processes", |b| {
        b.iter_custom(|n| total(cacheline_rtt(n)))
    });
    g.finish();
}

fn w4_blocking_rtt(c: &mut Criterion) {
    let mut g = c.benchmark_group("w4_blocking_rtt");
    g.bench_function("mmring_spsc/processes", |b| {
        b.iter_custom(|n| total(spsc_rtt(n, true)))
    });
    g.bench_function("futex_floor/processes", |b| {
        b.iter_custom(|n| total(futex_rtt(n)))
    });
    g.finish();
}

fn w5_multi(c: &mut Criterion) {
    let mut g = c.benchmark_group("w5_multi");
    g.throughput(Throughput::Elements(1));
    for (name, p, cons) in [("mpmc_2x2", 2, 2), ("mpsc_4x1", 4, 0)] {
        g.bench_function(BenchmarkId::new("mmring", name), |b| {
            b.iter_custom(|n| multi(n.max(4), p, cons))
        });
        g.bench_function(BenchmarkId::new("crossbeam_channel_threads", name), |b| {
            b.iter_custom(|n| threads_crossbeam_multi(n.max(4), p, cons))
        });
    }
    g.finish();
}

// --------------------------------------------------------------- summary

fn pct(mut v: Vec<u64>, p: f64) -> u64 {
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// One more pass over every workload, printing the ratios a reader needs.
fn summary() {
    const N: u64 = 2_000_000;
    const RT: u64 = 50_000;
    println!("\nsummary (one run each, same machine, same run)");
    let w1 = rate(N, spsc_stream(N, SMALL, false));
    let pipe = rate(N, pipe_stream(N, SMALL));
    let sock = rate(N, socket_stream(N, SMALL));
    let cb = rate(N, threads_crossbeam(N));
    let stdc = rate(N, threads_std(N));
    println!(
        "W1 64 B frames/s: mmring {:.1} M, pipe {:.1} M, unix socket {:.1} M, crossbeam (threads) {:.1} M, std sync_channel (threads) {:.1} M",
        w1 / 1e6,
        pipe / 1e6,
        sock / 1e6,
        cb / 1e6,
        stdc / 1e6
    );
    println!(
        "   mmring / pipe = {:.1}x, mmring / unix socket = {:.1}x",
        w1 / pipe,
        w1 / sock
    );
    let n2 = N / 8;
    let copy = rate(n2, spsc_stream(n2, LARGE, true)) * LARGE as f64;
    let inplace = rate(n2, spsc_stream(n2, LARGE, false)) * LARGE as f64;
    let mc = rate(n2, memcpy(n2, LARGE)) * LARGE as f64;
    println!(
        "W2 4 KiB GB/s: mmring copy in/out {:.1}, read in place {:.1}, memcpy floor {:.1}; copy / memcpy = {:.2}",
        copy / 1e9,
        inplace / 1e9,
        mc / 1e9,
        copy / mc
    );
    let (r, floor) = (spsc_rtt(RT, false), cacheline_rtt(RT));
    let (m, f) = (pct(r.clone(), 0.5), pct(floor.clone(), 0.5));
    println!(
        "W3 spin round trip ns: mmring p50 {m} p99 {}, cache-line floor p50 {f} p99 {}; mmring / floor = {:.2}",
        pct(r, 0.99),
        pct(floor, 0.99),
        m as f64 / f as f64
    );
    let (r, floor) = (spsc_rtt(RT, true), futex_rtt(RT));
    let (m, f) = (pct(r.clone(), 0.5), pct(floor.clone(), 0.5));
    println!(
        "W4 blocking round trip ns: mmring p50 {m} p99 {}, futex floor p50 {f} p99 {}; mmring / floor = {:.2}",
        pct(r, 0.99),
        pct(floor, 0.99),
        m as f64 / f as f64
    );
    let mpmc22 = rate(N, multi(N, 2, 2));
    let cb22 = rate(N, threads_crossbeam_multi(N, 2, 2));
    let mpsc41 = rate(N, multi(N, 4, 0));
    let cb41 = rate(N, threads_crossbeam_multi(N, 4, 1));
    println!(
        "W5 64 B msgs/s: mpmc 2x2 {:.1} M vs crossbeam threads {:.1} M ({:.2}x); mpsc 4x1 {:.1} M vs crossbeam threads {:.1} M ({:.2}x)",
        mpmc22 / 1e6,
        cb22 / 1e6,
        mpmc22 / cb22,
        mpsc41 / 1e6,
        cb41 / 1e6,
        mpsc41 / cb41
    );
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
        summary();
    }
}
