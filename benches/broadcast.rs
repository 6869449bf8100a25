//! The broadcast flavour between threads, beside tokio's
//! `sync::broadcast` channel doing the same job in the same run: one
//! publisher sends 64-byte messages as fast as it can while 1, 4 or 16
//! subscriber threads drain them (both are lossy for subscribers that fall
//! behind, and both report what they lost). What is timed is the
//! publisher's loop, from its first send to its last.
//!
//! ```text
//! cargo bench --bench broadcast
//! ```
//!
//! Between processes, `mmring bench --kind broadcast --consumers N`
//! measures the same with subscriber processes, beside spsc, a pipe, and
//! the cache-line round trip.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use mmring::{Config, RecvError, broadcast};

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

fn main() {
    let mut c = Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_millis(500))
        .configure_from_args();
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
    c.final_summary();
}
