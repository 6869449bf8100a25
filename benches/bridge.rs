//! What `mmring bridge` costs: ring A -> `mmring bridge` -> JetStream ->
//! `mmring bridge` -> ring B, beside the same messages published to
//! JetStream and read back straight through the server (the `nats bench
//! --js` pattern: asynchronous publishes with acknowledgements, an ordered
//! consumer), in one run against one `nats-server -js` on loopback.
//!
//! ```text
//! cargo bench --features nats --bench bridge              # 64 B and 4 KiB
//! cargo bench --features nats --bench bridge -- --quick   # a smoke run
//! ```
//!
//! For each message size it prints the saturated throughput of both paths
//! (messages/s from the first publish or send to the last receive), the
//! bridge's share of the server's own throughput (the goal: it costs under
//! 20 %), and the latency of each path at a paced rate (p50 and p99, from
//! the moment a message is published or sent to the moment the reader has
//! it; both ends are in this process, so one clock times them). Needs a
//! `nats-server` binary on `PATH` (or in /usr/sbin, /usr/bin,
//! /usr/local/bin); without one it prints a loud SKIPPED line.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

#[path = "../tests/common/nats_server.rs"]
mod nats_server;

use async_nats::jetstream::{self, consumer::pull, stream};
use futures_util::StreamExt;
use mmring::{Config, RecvError};
use nats_server::{Server, nats_server_bin};

/// The `mmring` binary cargo built beside this benchmark.
const MMRING: &str = env!("CARGO_BIN_EXE_mmring");

/// Publishes in flight, unacknowledged, on the direct path: the bridge's
/// default `--window`.
const WINDOW: usize = 1024;

/// Paced rate for the latency runs, messages per second.
const PACED_RATE: f64 = 2_000.0;

/// The clock both ends of a path stamp and read (nanoseconds since it).
fn base() -> Instant {
    static BASE: OnceLock<Instant> = OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

fn now_ns() -> u64 {
    base().elapsed().as_nanos() as u64
}

/// A message of `size` bytes: its number, when it was sent, then filler
/// derived from the number (checked by the reader).
fn message(i: u64, size: usize) -> Vec<u8> {
    let mut m = vec![(i as u8) ^ 0x5a; size];
    m[..8].copy_from_slice(&i.to_le_bytes());
    m[8..16].copy_from_slice(&now_ns().to_le_bytes());
    m
}

/// Checks that `m` is message `want` of `size` bytes; returns its latency
/// in nanoseconds.
fn check(m: &[u8], want: u64, size: usize) -> u64 {
    assert_eq!(m.len(), size, "message {want}: wrong length");
    let i = u64::from_le_bytes(m[..8].try_into().unwrap());
    assert_eq!(i, want, "message out of order or lost");
    assert!(
        m[16..].iter().all(|&b| b == (i as u8) ^ 0x5a),
        "message {i}: corrupt"
    );
    now_ns().saturating_sub(u64::from_le_bytes(m[8..16].try_into().unwrap()))
}

/// Throughput of one run, and the latencies it saw (nanoseconds).
struct Run {
    per_s: f64,
    lat: Vec<u64>,
}

impl Run {
    fn pct(&self, p: f64) -> f64 {
        let mut v = self.lat.clone();
        v.sort_unstable();
        let i = ((v.len() as f64 * p) as usize).min(v.len().saturating_sub(1));
        v.get(i).copied().unwrap_or(0) as f64 / 1e3
    }
}

/// The direct path: `n` messages published to `subject` with at most
/// `WINDOW` unacknowledged, read back by an ordered consumer; paced at
/// `rate` messages/s when given. With `ids`, each carries the headers the
/// outbound bridge sends (a message id, and the id expected last in the
/// stream), which the server checks: what exactly-once and order cost the
/// server itself, apart from the bridge's processes.
async fn direct(
    port: u16,
    subject: &str,
    size: usize,
    n: u64,
    rate: Option<f64>,
    ids: bool,
) -> Run {
    let client = async_nats::connect(format!("127.0.0.1:{port}"))
        .await
        .expect("connect");
    let js = jetstream::new(client);
    let s = js
        .get_or_create_stream(stream::Config {
            name: format!("BENCH_{}", subject.replace('.', "_")),
            subjects: vec![subject.to_string()],
            storage: stream::StorageType::File,
            ..Default::default()
        })
        .await
        .expect("create the stream");
    let mut messages = s
        .create_consumer(pull::OrderedConfig {
            filter_subject: subject.to_string(),
            ..Default::default()
        })
        .await
        .expect("ordered consumer")
        .messages()
        .await
        .expect("messages");
    let reader = tokio::spawn(async move {
        let mut lat = Vec::with_capacity(n as usize);
        for i in 0..n {
            let m = messages
                .next()
                .await
                .expect("stream ended")
                .expect("message");
            lat.push(check(&m.payload, i, size));
        }
        lat
    });
    let started = Instant::now();
    let mut acks = VecDeque::with_capacity(WINDOW);
    for i in 0..n {
        if let Some(r) = rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / r)).into())
                .await;
        }
        let ack = if ids {
            // The headers the outbound bridge sends: its message id (ring
            // id and position) and the id expected last in the stream.
            let id = |i: u64| format!("{:032x}-{}", (0x5eed_u128 << 64) | 7, i * 80);
            let mut m = jetstream::message::PublishMessage::build()
                .payload(message(i, size).into())
                .message_id(id(i));
            if i > 0 {
                m = m.expected_last_message_id(id(i - 1));
            }
            js.send_publish(subject.to_string(), m)
                .await
                .expect("publish")
        } else {
            js.publish(subject.to_string(), message(i, size).into())
                .await
                .expect("publish")
        };
        acks.push_back(ack);
        if acks.len() >= WINDOW {
            acks.pop_front().unwrap().await.expect("acknowledgement");
        }
    }
    for a in acks {
        a.await.expect("acknowledgement");
    }
    let lat = reader.await.expect("reader");
    Run {
        per_s: n as f64 / started.elapsed().as_secs_f64(),
        lat,
    }
}

/// A `mmring bridge` process, stopped with SIGTERM when dropped.
struct Bridge(Child);

impl Bridge {
    fn start(from: &str, to: &str) -> Bridge {
        Bridge(
            Command::new(MMRING)
                .args(["bridge", from, to, "--quiet"])
                .stdout(Stdio::null())
                .spawn()
                .expect("start mmring bridge"),
        )
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

/// Removes the files named when dropped.
struct Files(Vec<PathBuf>);

impl Drop for Files {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// The bridged path: `n` messages sent into ring A, carried by two
/// `mmring bridge` processes through `subject`, received from ring B;
/// paced at `rate` messages/s when given. One message goes through first
/// (not counted) so that both bridges are attached and the stream exists.
fn bridged(port: u16, subject: &str, size: usize, n: u64, rate: Option<f64>) -> Run {
    let tag = format!(
        "/dev/shm/mmring-bridge-bench-{}-{subject}",
        std::process::id()
    );
    let (pa, pb) = (format!("{tag}-a"), format!("{tag}-b"));
    let _files = Files(vec![
        pa.clone().into(),
        pb.clone().into(),
        format!("{pb}.nats-seq").into(),
    ]);
    let cfg = Config::new(4 << 20);
    let a = mmring::spsc::Ring::create(&pa, cfg).expect("ring A");
    let b = mmring::spsc::Ring::create(&pb, cfg).expect("ring B");
    let url = format!("nats://127.0.0.1:{port}/{subject}");
    let mut rx = b.consumer().unwrap();
    let mut tx = a.producer().unwrap();
    let _inbound = Bridge::start(&url, &pb);
    let _outbound = Bridge::start(&pa, &url);
    tx.send(&[0u8; 16]).unwrap();
    let g = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the warm-up message did not come through the bridges");
    assert_eq!(g.len(), 16);
    drop(g);
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        for i in 0..n {
            if let Some(r) = rate {
                let due = started + Duration::from_secs_f64(i as f64 / r);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
            }
            tx.send(&message(i, size)).expect("send into ring A");
        }
    });
    let mut lat = Vec::with_capacity(n as usize);
    for i in 0..n {
        let m = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(m) => m,
            Err(RecvError::Timeout) => panic!("message {i} did not arrive within 60 s"),
            Err(e) => panic!("ring B: {e}"),
        };
        lat.push(check(&m, i, size));
    }
    let per_s = n as f64 / started.elapsed().as_secs_f64();
    sender.join().unwrap();
    Run { per_s, lat }
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick" || a == "--test");
    let Some(bin) = nats_server_bin() else {
        eprintln!(
            "\n!!!!!!!! SKIPPED: no nats-server binary (apt-get install -y nats-server); \
             the bridge is NOT measured !!!!!!!!\n"
        );
        return;
    };
    let version = Command::new(&bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let server = Server::start(bin, None);
    base();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    println!(
        "mmring bridge bench: {version} on 127.0.0.1:{}, JetStream file store; direct = publish \
         with {WINDOW} unacknowledged + ordered consumer; bridged = ring A -> mmring bridge -> \
         JetStream -> mmring bridge -> ring B (window {WINDOW}); latency paced at {PACED_RATE} msg/s",
        server.port
    );
    println!(
        "{:>6} | {:>12} {:>12} {:>13} {:>7} {:>10} {:>9} | {:>16} {:>16} {:>10}",
        "size",
        "direct msg/s",
        "+ids msg/s",
        "bridged msg/s",
        "ratio",
        "cost <20%",
        "vs +ids",
        "direct p50/p99",
        "bridged p50/p99",
        "added p50"
    );
    for size in [64usize, 4096] {
        let n: u64 = match (quick, size) {
            (true, _) => 2_000,
            (false, 64) => 200_000,
            (false, _) => 50_000,
        };
        let paced = if quick { 200 } else { 4_000 };
        let d = rt.block_on(direct(
            server.port,
            &format!("direct.t{size}"),
            size,
            n,
            None,
            false,
        ));
        let di = rt.block_on(direct(
            server.port,
            &format!("ids.t{size}"),
            size,
            n,
            None,
            true,
        ));
        let b = bridged(server.port, &format!("bridged.t{size}"), size, n, None);
        let dl = rt.block_on(direct(
            server.port,
            &format!("direct.l{size}"),
            size,
            paced,
            Some(PACED_RATE),
            false,
        ));
        let bl = bridged(
            server.port,
            &format!("bridged.l{size}"),
            size,
            paced,
            Some(PACED_RATE),
        );
        let ratio = b.per_s / d.per_s;
        println!(
            "{:>6} | {:>12.0} {:>12.0} {:>13.0} {:>6.2}x {:>5.0} % {:<4} {:>8.2}x | {:>7.0}/{:<7.0}us {:>7.0}/{:<7.0}us {:>7.0} us",
            size,
            d.per_s,
            di.per_s,
            b.per_s,
            ratio,
            (1.0 - ratio) * 100.0,
            if ratio >= 0.8 { "met" } else { "miss" },
            b.per_s / di.per_s,
            dl.pct(0.5),
            dl.pct(0.99),
            bl.pct(0.5),
            bl.pct(0.99),
            bl.pct(0.5) - dl.pct(0.5),
        );
    }
    if quick {
        println!("(--quick: small counts, figures are not meaningful)");
    }
}
