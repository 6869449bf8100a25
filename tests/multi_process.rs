//! Many producers and consumers as separate processes: 2 x 2 on an mpmc
//! ring and 4 x 1 on an mpsc ring, a million self-checking messages of
//! random length each, spinning and blocking. Every message is delivered
//! exactly once, intact; mpsc keeps each producer's order.

mod common;

use std::sync::Mutex;

use common::*;
use crossbeam_utils::Backoff;
use mmring::{Config, RecvError, SendError, mpmc, mpsc};

static HEAVY: Mutex<()> = Mutex::new(());

const TOTAL: u64 = 1_000_000;
const MPMC_SLOT: usize = 256;
const MPSC_MAX: usize = 1024;

fn key(producer: u64, seq: u64) -> u64 {
    producer << 40 | seq
}

/// A producer handle of either flavour, behind the calls the peer uses.
enum Tx {
    Mpmc(mpmc::Producer),
    Mpsc(mpsc::Producer),
}

enum Rx {
    Mpmc(mpmc::Consumer),
    Mpsc(mpsc::Consumer),
}

impl Tx {
    fn send_frame(&mut self, k: u64, max: usize, blocking: bool) {
        let len = frame_len(k, max);
        let b = Backoff::new();
        loop {
            let r = match (&mut *self, blocking) {
                (Tx::Mpmc(t), true) => t.reserve(len).map(|mut g| {
                    fill_frame(k, &mut g);
                    g.commit()
                }),
                (Tx::Mpmc(t), false) => t.try_reserve(len).map(|mut g| {
                    fill_frame(k, &mut g);
                    g.commit()
                }),
                (Tx::Mpsc(t), true) => t.reserve(len).map(|mut g| {
                    fill_frame(k, &mut g);
                    g.commit()
                }),
                (Tx::Mpsc(t), false) => t.try_reserve(len).map(|mut g| {
                    fill_frame(k, &mut g);
                    g.commit()
                }),
            };
            match r {
                Ok(()) => return,
                Err(SendError::Full) => b.snooze(),
                Err(e) => panic!("producer: message {k:#x}: {e}"),
            }
        }
    }
}

impl Rx {
    /// The next message checked and decoded to its key; `None` once every
    /// producer is gone and the ring is empty.
    fn next_key(&mut self, max: usize, blocking: bool) -> Option<u64> {
        let b = Backoff::new();
        loop {
            let r = match (&mut *self, blocking) {
                (Rx::Mpmc(c), true) => c.recv().map(|g| decode(&g, max)),
                (Rx::Mpmc(c), false) => c.try_recv().map(|g| decode(&g, max)),
                (Rx::Mpsc(c), true) => c.recv().map(|g| decode(&g, max)),
                (Rx::Mpsc(c), false) => c.try_recv().map(|g| decode(&g, max)),
            };
            match r {
                Ok(k) => return Some(k),
                Err(RecvError::Disconnected) => return None,
                Err(RecvError::Empty) => {
                    let attached = match self {
                        Rx::Mpmc(c) => c.is_producer_attached(),
                        Rx::Mpsc(c) => c.is_producer_attached(),
                    };
                    if !attached {
                        // Producers detach after their last commit: one more
                        // look sees everything they sent.
                        let last = match self {
                            Rx::Mpmc(c) => c.try_recv().map(|g| decode(&g, max)),
                            Rx::Mpsc(c) => c.try_recv().map(|g| decode(&g, max)),
                        };
                        return last.ok();
                    }
                    b.snooze();
                }
                Err(e) => panic!("consumer: {e}"),
            }
        }
    }
}

fn decode(frame: &[u8], max: usize) -> u64 {
    let k = u64::from_le_bytes(frame[..8].try_into().unwrap());
    if let Err(e) = check_frame(k, frame, max) {
        panic!("consumer: {e}");
    }
    k
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let path: String = var("MMRING_PATH");
    let flavour: String = var("MMRING_FLAVOUR");
    let blocking = std::env::var("MMRING_BLOCKING").is_ok();
    let max = if flavour == "mpmc" {
        MPMC_SLOT
    } else {
        MPSC_MAX
    };
    match role.as_str() {
        "producer" => {
            let id: u64 = var("MMRING_ID");
            let count: u64 = var("MMRING_COUNT");
            let mut tx = if flavour == "mpmc" {
                Tx::Mpmc(mpmc::Ring::open(&path).unwrap().producer().unwrap())
            } else {
                Tx::Mpsc(mpsc::Ring::open(&path).unwrap().producer().unwrap())
            };
            say("ATTACHED");
            assert_eq!(wait_for_parent(), "go");
            for seq in 0..count {
                tx.send_frame(key(id, seq), max, blocking);
            }
            say("SENT");
        }
        "consumer" => {
            let producers: usize = var("MMRING_PRODUCERS");
            let mut rx = if flavour == "mpmc" {
                Rx::Mpmc(mpmc::Ring::open(&path).unwrap().consumer().unwrap())
            } else {
                Rx::Mpsc(mpsc::Ring::open(&path).unwrap().consumer().unwrap())
            };
            say("ATTACHED");
            // Per producer: count, sum of sequence numbers, xor of their
            // hashes; and for mpsc, strict per-producer order.
            let mut digest = vec![(0u64, 0u64, 0u64); producers];
            let mut next = vec![0u64; producers];
            while let Some(k) = rx.next_key(max, blocking) {
                let (p, seq) = ((k >> 40) as usize, k & ((1 << 40) - 1));
                if flavour == "mpsc" {
                    assert_eq!(seq, next[p], "producer {p} out of order");
                    next[p] += 1;
                }
                let d = &mut digest[p];
                d.0 += 1;
                d.1 += seq;
                d.2 ^= mix(seq);
            }
            for (p, (n, sum, x)) in digest.iter().enumerate() {
                say(format!("DIGEST {p} {n} {sum} {x}"));
            }
            say("DONE");
        }
        "holder" => {
            let ring = mpmc::Ring::open(&path).unwrap();
            let _tx = ring.producer().unwrap();
            let _rx = ring.consumer().unwrap();
            say("HOLDING");
            wait_for_parent();
        }
        other => panic!("unknown peer role {other}"),
    }
}

/// Multi-party attachments are liveness tokens too: a consumer blocked on
/// an empty ring gets `Disconnected` once the only producer is killed, and
/// the dead holder's records stay listed as not alive.
#[test]
fn killed_producer_disconnects_blocked_consumer() {
    let path = temp_path("mpmc-kill");
    let _cleanup = TempFile(path.clone());
    let ring = mpmc::Ring::create(&path, Config::slots(16, 8)).unwrap();
    let env = [
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FLAVOUR", "mpmc".to_string()),
    ];
    let mut holder = spawn_peer("holder", &env);
    holder.expect("HOLDING");
    let st = ring.stat();
    assert!(st.producer.alive && st.consumer.alive);
    let holders: Vec<_> = st
        .producer
        .holders
        .iter()
        .map(|h| (h.pid, h.alive))
        .collect();
    assert_eq!(holders, [(holder.pid(), true)]);
    assert_eq!(st.producer.state, mmring::PeerState::Alive);
    let mut rx = ring.consumer().unwrap();
    let waiter = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert!(
        !waiter.is_finished(),
        "a live producer keeps the consumer waiting"
    );
    let pid = holder.pid();
    holder.kill9();
    assert_eq!(waiter.join().unwrap(), Err(RecvError::Disconnected));
    let st = ring.stat();
    assert!(!st.producer.alive);
    assert_eq!(
        st.producer.state,
        mmring::PeerState::Died,
        "killed, not detached"
    );
    let holders: Vec<_> = st
        .producer
        .holders
        .iter()
        .map(|h| (h.pid, h.alive))
        .collect();
    assert_eq!(holders, [(pid, false)]);
    // The dead holder's records are free again.
    let _tx = ring.producer().unwrap();
}

fn run(flavour: &str, producers: u64, consumers: u64, blocking: bool) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path(flavour);
    let _cleanup = TempFile(path.clone());
    if flavour == "mpmc" {
        mpmc::Ring::create(&path, Config::slots(1024, MPMC_SLOT as u64)).unwrap();
    } else {
        mpsc::Ring::create(&path, Config::new(1 << 16).max_frame(MPSC_MAX as u64)).unwrap();
    }
    let per = TOTAL / producers;
    let mut env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FLAVOUR", flavour.to_string()),
        ("MMRING_COUNT", per.to_string()),
        ("MMRING_PRODUCERS", producers.to_string()),
    ];
    if blocking {
        env.push(("MMRING_BLOCKING", "1".into()));
    }
    // Producers attach first, so no consumer can mistake "not yet started"
    // for "gone"; then consumers attach; then everyone runs.
    let mut txs: Vec<Peer> = (0..producers)
        .map(|id| {
            let mut e = env.clone();
            e.push(("MMRING_ID", id.to_string()));
            spawn_peer("producer", &e)
        })
        .collect();
    for t in &mut txs {
        t.expect("ATTACHED");
    }
    let mut rxs: Vec<Peer> = (0..consumers)
        .map(|_| spawn_peer("consumer", &env))
        .collect();
    for r in &mut rxs {
        r.expect("ATTACHED");
    }
    for t in &mut txs {
        t.send_line("go");
    }
    for mut t in txs {
        t.expect("SENT");
        t.join();
    }
    let mut total = vec![(0u64, 0u64, 0u64); producers as usize];
    for mut r in rxs {
        loop {
            let line = r.line().expect("consumer reports");
            if line == "DONE" {
                break;
            }
            let f: Vec<u64> = line
                .strip_prefix("DIGEST ")
                .expect("digest line")
                .split(' ')
                .map(|x| x.parse().unwrap())
                .collect();
            let d = &mut total[f[0] as usize];
            d.0 += f[1];
            d.1 += f[2];
            d.2 ^= f[3];
        }
        r.join();
    }
    let want_xor = (0..per).fold(0, |x, s| x ^ mix(s));
    for (p, d) in total.iter().enumerate() {
        assert_eq!(
            *d,
            (per, per * (per - 1) / 2, want_xor),
            "producer {p}: every message exactly once"
        );
    }
}

#[test]
fn mpmc_2x2_spinning() {
    run("mpmc", 2, 2, false);
}

#[test]
fn mpmc_2x2_blocking() {
    run("mpmc", 2, 2, true);
}

#[test]
fn mpsc_4x1_spinning() {
    run("mpsc", 4, 1, false);
}

#[test]
fn mpsc_4x1_blocking() {
    run("mpsc", 4, 1, true);
}
