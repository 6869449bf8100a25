//! Async waits against blocking waits and a tokio Unix socket, in one run
//! (feature `tokio`):
//!
//! ```text
//! cargo run --release --features tokio --example async_bench [-- ROUND_TRIPS FRAMES]
//! ```
//!
//! * round trips between two processes (ping on one ring, pong on another,
//!   64 bytes), p50 / p99: `recv_async` + `send_async` on a current-thread
//!   runtime, blocking `recv` + `send`, and a tokio `UnixStream` pair;
//! * a busy stream (a producer process sending 64-byte frames flat out):
//!   frames/s received with `recv_async` and with blocking `recv`;
//! * beside them, the cache-line round trip between the same two CPUs
//!   (`mmring bench --case cache-line-rtt`, when the `mmring` binary is built
//!   next to this example), since every cross-core figure moves with it.
//!
//! Both processes are pinned (parent CPU 1, child CPU 0).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Instant;

use mmring::{Config, RecvError, spsc};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const MSG: usize = 64;

fn pin(cpu: usize) {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    let _ = rustix::thread::sched_setaffinity(None, &set);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn child(args: &[&str]) -> Child {
    Command::new(std::env::current_exe().expect("own path"))
        .arg("--child")
        .args(args)
        .spawn()
        .expect("spawn the other process")
}

fn percentiles(mut v: Vec<u64>) -> (u64, u64) {
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 99 / 100])
}

fn print_rtt(name: &str, samples: Vec<u64>) -> u64 {
    let (p50, p99) = percentiles(samples);
    println!(
        "  {name:<28} p50 {:>8.2} us   p99 {:>8.2} us",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3
    );
    p50
}

/// The pong side: echoes `n` messages from ring `a` to ring `b`.
fn pong(mode: &str, a: &Path, b: &Path, n: u64) {
    let (ra, rb) = (spsc::Ring::open(a).unwrap(), spsc::Ring::open(b).unwrap());
    let (mut rx, mut tx) = (ra.consumer().unwrap(), rb.producer().unwrap());
    let mut buf = [0u8; MSG];
    if mode == "async" {
        runtime().block_on(async {
            for _ in 0..n {
                buf.copy_from_slice(&rx.recv_async().await.unwrap());
                tx.send_async(&buf).await.unwrap();
            }
        });
    } else {
        for _ in 0..n {
            buf.copy_from_slice(&rx.recv().unwrap());
            tx.send(&buf).unwrap();
        }
    }
}

fn ring_rtt(mode: &str, n: u64, warm: u64) -> Vec<u64> {
    let dir = std::env::temp_dir();
    let (a, b) = (
        dir.join(format!("mmring-abench-a-{}", std::process::id())),
        dir.join(format!("mmring-abench-b-{}", std::process::id())),
    );
    let (ra, rb) = (
        spsc::Ring::create(&a, Config::new(1 << 16)).unwrap(),
        spsc::Ring::create(&b, Config::new(1 << 16)).unwrap(),
    );
    let (mut tx, mut rx) = (ra.producer().unwrap(), rb.consumer().unwrap());
    let mut c = child(&[
        "pong",
        mode,
        a.to_str().unwrap(),
        b.to_str().unwrap(),
        &(n + warm).to_string(),
    ]);
    let msg = [7u8; MSG];
    let mut samples = Vec::with_capacity(n as usize);
    if mode == "async" {
        runtime().block_on(async {
            for i in 0..n + warm {
                let t = Instant::now();
                tx.send_async(&msg).await.unwrap();
                drop(rx.recv_async().await.unwrap());
                if i >= warm {
                    samples.push(t.elapsed().as_nanos() as u64);
                }
            }
        });
    } else {
        for i in 0..n + warm {
            let t = Instant::now();
            tx.send(&msg).unwrap();
            drop(rx.recv().unwrap());
            if i >= warm {
                samples.push(t.elapsed().as_nanos() as u64);
            }
        }
    }
    c.wait().unwrap();
    let _ = std::fs::remove_file(&a);
    let _ = std::fs::remove_file(&b);
    samples
}

fn socket_path() -> PathBuf {
    std::env::temp_dir().join(format!("mmring-abench-sock-{}", std::process::id()))
}

fn socket_pong(path: &Path, n: u64) {
    runtime().block_on(async {
        let mut s = tokio::net::UnixStream::connect(path).await.unwrap();
        let mut buf = [0u8; MSG];
        for _ in 0..n {
            s.read_exact(&mut buf).await.unwrap();
            s.write_all(&buf).await.unwrap();
        }
    });
}

fn socket_rtt(n: u64, warm: u64) -> Vec<u64> {
    let path = socket_path();
    let _ = std::fs::remove_file(&path);
    let rt = runtime();
    let listener = rt.block_on(async { tokio::net::UnixListener::bind(&path).unwrap() });
    let mut c = child(&["sockpong", path.to_str().unwrap(), &(n + warm).to_string()]);
    let samples = rt.block_on(async {
        let (mut s, _) = listener.accept().await.unwrap();
        let msg = [7u8; MSG];
        let mut buf = [0u8; MSG];
        let mut samples = Vec::with_capacity(n as usize);
        for i in 0..n + warm {
            let t = Instant::now();
            s.write_all(&msg).await.unwrap();
            s.read_exact(&mut buf).await.unwrap();
            if i >= warm {
                samples.push(t.elapsed().as_nanos() as u64);
            }
        }
        samples
    });
    c.wait().unwrap();
    let _ = std::fs::remove_file(&path);
    samples
}

/// The busy-stream producer: `n` 64-byte frames, blocking when full.
fn stream_producer(path: &Path, n: u64) {
    let ring = spsc::Ring::open(path).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut msg = [0u8; MSG];
    for seq in 0..n {
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        tx.send(&msg).unwrap();
    }
}

fn stream(mode: &str, n: u64) -> f64 {
    let path = std::env::temp_dir().join(format!("mmring-abench-s-{}", std::process::id()));
    let ring = spsc::Ring::create(&path, Config::new(1 << 22)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut c = child(&["producer", path.to_str().unwrap(), &n.to_string()]);
    let mut seq = 0u64;
    let check = |g: &[u8], seq: &mut u64| {
        assert_eq!(u64::from_le_bytes(g[..8].try_into().unwrap()), *seq);
        *seq += 1;
    };
    // The clock starts at the first frame.
    let start;
    if mode == "async" {
        start = runtime().block_on(async {
            check(&rx.recv_async().await.unwrap(), &mut seq);
            let start = Instant::now();
            loop {
                match rx.recv_async().await {
                    Ok(g) => check(&g, &mut seq),
                    Err(RecvError::Disconnected) => break,
                    Err(e) => panic!("{e}"),
                }
            }
            start
        });
    } else {
        check(&rx.recv().unwrap(), &mut seq);
        start = Instant::now();
        loop {
            match rx.recv() {
                Ok(g) => check(&g, &mut seq),
                Err(RecvError::Disconnected) => break,
                Err(e) => panic!("{e}"),
            }
        }
    }
    let rate = (n - 1) as f64 / start.elapsed().as_secs_f64() / 1e6;
    assert_eq!(seq, n);
    c.wait().unwrap();
    let _ = std::fs::remove_file(&path);
    rate
}

fn cache_line_rtt() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let mmring = exe.parent()?.parent()?.join("mmring");
    let out = Command::new(mmring)
        .args(["bench", "--case", "cache-line-rtt", "--count", "200000"])
        .output()
        .ok()?;
    let s = String::from_utf8_lossy(&out.stdout);
    let ns: f64 = s.trim().strip_prefix("elapsed_ns ")?.parse().ok()?;
    Some(format!("{:.0} ns", ns / 200_000.0))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        pin(0);
        let a: Vec<&str> = args[1..].iter().map(String::as_str).collect();
        match a[0] {
            "pong" => pong(
                a[1],
                Path::new(a[2]),
                Path::new(a[3]),
                a[4].parse().unwrap(),
            ),
            "sockpong" => socket_pong(Path::new(a[1]), a[2].parse().unwrap()),
            "producer" => stream_producer(Path::new(a[1]), a[2].parse().unwrap()),
            other => panic!("unknown child role {other}"),
        }
        return;
    }
    let rtts: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(20_000);
    let frames: u64 = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000);
    let warm = rtts / 10;
    // (Measured before pinning: the `mmring` process pins its own pair.)
    if let Some(floor) = cache_line_rtt() {
        println!("cache-line round trip (before): {floor}");
    }
    pin(1);
    println!("round trips, 64 B, two processes ({rtts} samples):");
    let a = print_rtt(
        "mmring recv_async/send_async",
        ring_rtt("async", rtts, warm),
    );
    let b = print_rtt(
        "mmring blocking recv/send",
        ring_rtt("blocking", rtts, warm),
    );
    let s = print_rtt("tokio UnixStream", socket_rtt(rtts, warm));
    println!(
        "  async / blocking p50: {:.2}x   async / UnixStream p50: {:.2}x",
        a as f64 / b as f64,
        a as f64 / s as f64
    );
    println!("busy stream, 64 B frames ({frames}), received:");
    let ra = stream("async", frames);
    let rb = stream("blocking", frames);
    println!(
        "  recv_async {ra:.2} M frames/s   blocking recv {rb:.2} M frames/s   ratio {:.2}",
        ra / rb
    );
    let mut all = rustix::thread::CpuSet::new();
    all.set(0);
    all.set(1);
    let _ = rustix::thread::sched_setaffinity(None, &all);
    if let Some(floor) = cache_line_rtt() {
        println!("cache-line round trip (after): {floor}");
    }
}
