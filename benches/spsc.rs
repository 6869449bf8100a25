//! In-process SPSC throughput (two threads), with `std::sync::mpsc` on the
//! same workload as the reference. The cross-process workloads W1–W5 and
//! their floors are the benchmarks issue's; this is the baseline.
//!
//! `cargo bench --bench spsc`

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mmring::{Config, RecvError, SendError, spsc};

const FRAME: usize = 64;

fn mmring_64b(iters: u64) -> Duration {
    let ring = spsc::Ring::anonymous(Config::new(1 << 20)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            for seq in 0..iters {
                let mut g = loop {
                    match tx.try_reserve(FRAME) {
                        Ok(g) => break g,
                        Err(SendError::Full) => std::hint::spin_loop(),
                        Err(e) => panic!("{e}"),
                    }
                };
                g[..8].copy_from_slice(&seq.to_le_bytes());
                g.commit();
            }
        });
        barrier.wait();
        let start = Instant::now();
        let mut seq = 0;
        while seq < iters {
            match rx.try_recv() {
                Ok(f) => {
                    assert_eq!(f[..8], seq.to_le_bytes());
                    seq += 1;
                }
                Err(RecvError::Empty) => std::hint::spin_loop(),
                Err(e) => panic!("{e}"),
            }
        }
        start.elapsed()
    })
}

fn std_sync_channel_64b(iters: u64) -> Duration {
    let (tx, rx) = std::sync::mpsc::sync_channel::<[u8; FRAME]>(1 << 14);
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        s.spawn(|| {
            barrier.wait();
            for seq in 0..iters {
                let mut f = [0u8; FRAME];
                f[..8].copy_from_slice(&seq.to_le_bytes());
                tx.send(f).unwrap();
            }
        });
        barrier.wait();
        let start = Instant::now();
        for seq in 0..iters {
            let f = rx.recv().unwrap();
            assert_eq!(f[..8], seq.to_le_bytes());
        }
        start.elapsed()
    })
}

fn w1_small_threads(c: &mut Criterion) {
    let mut g = c.benchmark_group("w1_small_threads");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mmring_spsc/64B", |b| b.iter_custom(mmring_64b));
    g.bench_function("std_sync_channel/64B", |b| {
        b.iter_custom(std_sync_channel_64b)
    });
    g.finish();
}

criterion_group!(benches, w1_small_threads);
criterion_main!(benches);
