//! Producers and consumers as separate OS processes, every flavour.
//!
//! spsc streams: a million self-checking frames, spinning and blocking,
//! over a named file and over an fd-passed memfd; `kill -9` of either side
//! mid-stream and a restarted peer resuming with nothing lost.
//!
//! Many parties: 2 x 2 on an mpmc ring and 4 x 1 on an mpsc ring, a million
//! self-checking messages of random length each, spinning and blocking
//! (and `AnyRing` of each kind on a shorter stream). Every message is
//! delivered exactly once, intact; with one consumer, each producer's order
//! is kept.
//!
//! Liveness: a role held by a process that is killed with `kill -9` reads
//! as `Gone` (after `NeverAttached` and `Alive`) on every flavour, and wakes
//! the other side's blocked calls.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use common::model::TestFlavour;
use common::*;
use crossbeam_utils::Backoff;
use mmring::mpmc::Mpmc;
use mmring::mpsc::Mpsc;
use mmring::spsc::Spsc;
use mmring::{
    AnyKind, Config, Consumer, Error, Flavour, Kind, PeerState, Producer, RecvError, Ring,
    SendError, mpmc, spsc,
};

/// The heavy tests each occupy both cores; run them one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    if let Some(role) = role.strip_prefix("stream-") {
        return stream_peer(role);
    }
    let flavour: String = var("MMRING_FLAVOUR");
    match flavour.as_str() {
        "spsc" => party_peer::<Spsc>(&role),
        "mpsc" => party_peer::<Mpsc>(&role),
        "mpmc" => party_peer::<Mpmc>(&role),
        "any" => party_peer::<AnyKind>(&role),
        other => panic!("unknown flavour {other}"),
    }
}

// ---------------------------------------------------------------------
// spsc streams between two processes.
// ---------------------------------------------------------------------

const MAX_FRAME: usize = 1024;

fn config() -> Config {
    Config::new(1 << 16).max_frame(MAX_FRAME as u64)
}

/// How a peer finds the ring: `MMRING_PATH` or an inherited `MMRING_FD`.
fn peer_ring() -> spsc::Ring {
    if let Ok(path) = std::env::var("MMRING_PATH") {
        return spsc::Ring::open(path).expect("peer opens the ring");
    }
    let fd: i32 = var("MMRING_FD");
    // SAFETY: the parent passed this fd to us without CLOEXEC; we own it
    // from here on and nothing else in this process uses it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    spsc::Ring::from_fd(fd).expect("peer attaches through the fd")
}

/// Sends frames `from..to`, spinning or blocking. A consumer that dies
/// while the ring is full makes `send` return `Disconnected`; the peer
/// reports it once and keeps offering the frame until a consumer returns.
fn produce(tx: &mut spsc::Producer, from: u64, to: u64, blocking: bool) {
    let max = tx.max_frame().min(MAX_FRAME);
    let mut reported = false;
    for seq in from..to {
        let len = frame_len(seq, max);
        loop {
            let r = if blocking {
                tx.reserve(len)
            } else {
                let b = Backoff::new();
                loop {
                    match tx.try_reserve(len) {
                        Err(SendError::Full) => b.snooze(),
                        other => break other,
                    }
                }
            };
            match r {
                Ok(mut g) => {
                    fill_frame(seq, &mut g);
                    g.commit();
                    break;
                }
                Err(SendError::Disconnected) => {
                    if !reported {
                        say("PRODUCER-DISCONNECTED");
                        reported = true;
                    }
                    // Test-side wait for a new consumer; the library itself
                    // never polls.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("producer: frame {seq}: {e}"),
            }
        }
    }
}

/// Receives and checks frames `from..to`. `progress` prints each sequence
/// number before releasing it. Returns `Err(last)` on `Disconnected`.
fn consume(
    rx: &mut spsc::Consumer,
    from: u64,
    to: u64,
    blocking: bool,
    progress: bool,
) -> Result<(), u64> {
    let max = MAX_FRAME;
    let mut seq = from;
    let b = Backoff::new();
    while seq < to {
        let r = if blocking { rx.recv() } else { rx.try_recv() };
        match r {
            Ok(frame) => {
                if let Err(e) = check_frame(seq, &frame, max) {
                    panic!("consumer: {e}");
                }
                if progress {
                    say(format!("GOT {seq}"));
                }
                drop(frame);
                seq += 1;
                b.reset();
            }
            Err(RecvError::Empty) => b.snooze(),
            Err(RecvError::Disconnected) => return Err(seq.wrapping_sub(1)),
            Err(e) => panic!("consumer: at frame {seq}: {e}"),
        }
    }
    Ok(())
}

/// The `stream-*` peers: spsc, through `MMRING_PATH` or `MMRING_FD`.
fn stream_peer(role: &str) {
    let blocking = std::env::var("MMRING_BLOCKING").is_ok();
    let ring = peer_ring();
    match role {
        "producer" => {
            let from: u64 = var("MMRING_FROM");
            let to: u64 = var("MMRING_TO");
            let mut tx = ring.producer().expect("claim producer");
            say("ATTACHED");
            produce(&mut tx, from, to, blocking);
            say("SENT");
        }
        "consumer" => {
            let from: u64 = var("MMRING_FROM");
            let to: u64 = var("MMRING_TO");
            let progress = std::env::var("MMRING_PROGRESS").is_ok();
            let mut rx = ring.consumer().expect("claim consumer");
            say("ATTACHED");
            let mut start = from;
            loop {
                match consume(&mut rx, start, to, blocking, progress) {
                    Ok(()) => break,
                    Err(last) => {
                        // The producer is gone and everything it committed
                        // has been received: tell the parent where we are
                        // and wait until it has started a new producer.
                        say(format!("DISCONNECTED {last}"));
                        assert_eq!(wait_for_parent(), "go");
                        start = last + 1;
                    }
                }
            }
            say(format!("DONE {}", to - from));
        }
        other => panic!("unknown peer role {other}"),
    }
}

fn stream_between_processes(n: u64, blocking: bool) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("stream");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, config()).unwrap();
    let mut env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
    ];
    if blocking {
        env.push(("MMRING_BLOCKING", "1".into()));
    }
    let mut consumer = spawn_peer("stream-consumer", &env);
    let producer = spawn_peer("stream-producer", &env);
    assert_eq!(consumer.expect("DONE"), n.to_string());
    producer.join();
    consumer.join();
    // Everything was released: the ring is empty and both roles are free.
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert_eq!(st.head, st.tail);
    assert!(!st.producer.alive && !st.consumer.alive);
}

#[test]
fn million_frames_spinning() {
    stream_between_processes(1_000_000, false);
}

#[test]
fn million_frames_blocking() {
    stream_between_processes(1_000_000, true);
}

/// An anonymous ring's memfd passed to two exec'd processes by fd number.
#[test]
fn anonymous_ring_passed_by_fd() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let ring = spsc::Ring::anonymous(config()).unwrap();
    let fd = ring.as_fd().try_clone_to_owned().unwrap();
    // Let the duplicate survive exec in the children.
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).unwrap();
    let n = 200_000u64;
    let env = vec![
        ("MMRING_FD", fd.as_raw_fd().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
    ];
    let mut consumer = spawn_peer("stream-consumer", &env);
    let producer = spawn_peer("stream-producer", &env);
    assert_eq!(consumer.expect("DONE"), n.to_string());
    producer.join();
    consumer.join();
    let st = ring.stat();
    assert_eq!(
        (st.head, st.producer.attaches, st.consumer.attaches),
        (st.tail, 1, 1)
    );
}

/// `kill -9` the consumer mid-stream: the producer, blocked on the full
/// ring, gets `Disconnected`; a restarted consumer resumes at the last
/// released frame and nothing is lost.
#[test]
fn consumer_killed_and_restarted() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("killc");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(1 << 14).max_frame(MAX_FRAME as u64)).unwrap();
    let n = 100_000u64;
    let base = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
    ];
    let mut env1 = base.clone();
    env1.push(("MMRING_PROGRESS", "1".into()));
    let mut c1 = spawn_peer("stream-consumer", &env1);
    let mut producer = spawn_peer("stream-producer", &base);
    // Kill at a pseudo-random point, well before the end of the stream.
    let kill_at = 1_000 + mix(std::process::id() as u64) % 20_000;
    let mut last = None;
    while last.is_none_or(|l| l < kill_at) {
        let line = c1.line().expect("consumer 1 is streaming");
        if let Some(s) = line.strip_prefix("GOT ") {
            let s: u64 = s.parse().unwrap();
            assert_eq!(
                s,
                last.map_or(0, |l| l + 1),
                "consumer 1 saw frames in order"
            );
            last = Some(s);
        }
    }
    c1.kill9();
    // Lines already in the pipe still count.
    while let Some(line) = c1.line() {
        if let Some(s) = line.strip_prefix("GOT ") {
            let s: u64 = s.parse().unwrap();
            assert_eq!(Some(s), last.map(|l| l + 1));
            last = Some(s);
        }
    }
    let last = last.unwrap();
    // With the consumer dead the ring fills and the blocked producer is told.
    producer.expect("PRODUCER-DISCONNECTED");
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert!(
        !st.consumer.alive,
        "the kernel released the dead consumer's role"
    );
    assert!(
        st.consumer.pid().is_some(),
        "a killed holder cannot clear its pid"
    );

    // The restarted consumer starts at the frame after the last released
    // one: `last` itself if it was printed but not yet released.
    let mut env2 = base.clone();
    env2.push(("MMRING_PROGRESS", "1".into()));
    let first = {
        // Peek at what the header says was released, then check the new
        // consumer agrees by starting it there.
        let ring = spsc::Ring::open(&path).unwrap();
        let mut rx = ring.consumer().unwrap();
        let frame = rx.try_recv().unwrap();
        let seq = u64::from_le_bytes(frame[..8].try_into().unwrap());
        frame_release_without_consuming(frame);
        seq
    };
    assert!(
        first == last || first == last + 1,
        "resumed at {first}, last printed {last}"
    );
    env2[1] = ("MMRING_FROM", first.to_string());
    let mut c2 = spawn_peer("stream-consumer", &env2);
    assert_eq!(c2.expect("DONE"), (n - first).to_string());
    producer.join();
    c2.join();
}

/// Drops a grant *without* releasing it, by forgetting it, so the frame is
/// still there for the next consumer. (What a consumer killed between
/// receiving and releasing leaves behind.)
fn frame_release_without_consuming(frame: spsc::ReadGrant<'_>) {
    std::mem::forget(frame);
}

/// `kill -9` the producer mid-stream: the blocked consumer drains the ring
/// and gets `Disconnected`; a new producer resumes at the last committed
/// frame and the stream continues with nothing lost or duplicated.
#[test]
fn producer_killed_and_restarted() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("killp");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(1 << 14).max_frame(MAX_FRAME as u64)).unwrap();
    let n = 100_000u64;
    let env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
        ("MMRING_PROGRESS", "1".to_string()),
    ];
    let mut consumer = spawn_peer("stream-consumer", &env);
    let mut p1 = spawn_peer("stream-producer", &env[..4]);
    let kill_at = 1_000 + mix(std::process::id() as u64 ^ 7) % 20_000;
    loop {
        let line = consumer.line().expect("consumer is streaming");
        if let Some(s) = line.strip_prefix("GOT ") {
            if s.parse::<u64>().unwrap() >= kill_at {
                break;
            }
        }
    }
    p1.kill9();
    let last: u64 = consumer.expect("DISCONNECTED").parse().unwrap();
    assert!(last >= kill_at && last < n, "consumer stopped at {last}");
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert_eq!(st.head, st.tail, "everything committed was received");

    let mut env2 = env[..4].to_vec();
    env2[1] = ("MMRING_FROM", (last + 1).to_string());
    let mut p2 = spawn_peer("stream-producer", &env2);
    p2.expect("ATTACHED");
    consumer.send_line("go");
    assert_eq!(consumer.expect("DONE"), n.to_string());
    p2.expect("SENT");
    p2.join();
    consumer.join();
}

/// A role held by a live process is refused with its pid; once that process
/// is killed the kernel frees the role and it can be claimed again.
#[test]
fn role_taken_until_holder_dies() {
    let path = temp_path("role");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, config()).unwrap();
    let env = [
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FLAVOUR", "spsc".to_string()),
        ("MMRING_HOLD", "producer".to_string()),
    ];
    let mut holder = spawn_peer("holder", &env);
    holder.expect("HOLDING");
    match ring.producer() {
        Err(Error::RoleTaken { role, pid }) => {
            assert_eq!(role, mmring::Role::Producer);
            assert_eq!(pid, Some(holder.pid()));
        }
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    assert!(ring.stat().producer.alive);
    holder.kill9();
    assert!(!ring.stat().producer.alive);
    let tx = ring
        .producer()
        .expect("a dead holder's role can be claimed");
    assert_eq!(ring.stat().producer.pid(), Some(std::process::id()));
    drop(tx);
    assert_eq!(
        ring.stat().producer.pid(),
        None,
        "a clean detach clears the pid"
    );
}

// ---------------------------------------------------------------------
// Many parties: producers and consumers of any flavour as processes,
// self-checking messages keyed by producer and sequence number.
// ---------------------------------------------------------------------

const TOTAL: u64 = 1_000_000;
const MPMC_SLOT: u64 = 256;
const FRAMED_MAX: u64 = 1024;

fn key(producer: u64, seq: u64) -> u64 {
    producer << 40 | seq
}

fn party_config(kind: Kind) -> Config {
    match kind {
        Kind::Mpmc => Config::slots(1024, MPMC_SLOT),
        _ => Config::new(1 << 16).max_frame(FRAMED_MAX),
    }
}

fn send_frame<P: Flavour>(tx: &mut Producer<P>, k: u64, max: usize, blocking: bool) {
    let len = frame_len(k, max);
    let b = Backoff::new();
    loop {
        let r = if blocking {
            tx.reserve(len)
        } else {
            tx.try_reserve(len)
        };
        let sent = r.map(|mut g| {
            fill_frame(k, &mut g);
            g.commit();
        });
        match sent {
            Ok(()) => return,
            Err(SendError::Full) => {}
            Err(e) => panic!("producer: message {k:#x}: {e}"),
        }
        // A consumer that died or quit early must fail the test, not leave
        // the producers spinning on a full ring for ever.
        assert!(
            !tx.consumer_state().is_gone(),
            "producer: message {k:#x}: the consumers are gone"
        );
        b.snooze();
    }
}

/// The next message checked and decoded to its key; `None` once every
/// producer is gone and the ring is empty.
fn next_key<P: Flavour>(rx: &mut Consumer<P>, max: usize, blocking: bool) -> Option<u64> {
    let b = Backoff::new();
    loop {
        let r = if blocking {
            rx.recv().map(|g| decode(&g, max))
        } else {
            rx.try_recv().map(|g| decode(&g, max))
        };
        match r {
            Ok(k) => return Some(k),
            Err(RecvError::Disconnected) => return None,
            Err(RecvError::Empty) => {
                if !rx.is_producer_attached() {
                    // Producers detach after their last commit: one more
                    // look sees everything they sent.
                    return rx.try_recv().map(|g| decode(&g, max)).ok();
                }
                b.snooze();
            }
            Err(e) => panic!("consumer: {e}"),
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

/// The `party-*` and `holder` peers, for a ring of flavour `P`.
fn party_peer<P: TestFlavour>(role: &str) {
    let path: String = var("MMRING_PATH");
    let ring = P::open(path.as_ref()).unwrap();
    let blocking = std::env::var("MMRING_BLOCKING").is_ok();
    let max = ring.max_frame();
    let per_producer_order = ring.kind() != Kind::Mpmc;
    match role {
        "party-producer" => {
            let id: u64 = var("MMRING_ID");
            let count: u64 = var("MMRING_COUNT");
            let mut tx = ring.producer().unwrap();
            say("ATTACHED");
            assert_eq!(wait_for_parent(), "go");
            for seq in 0..count {
                send_frame(&mut tx, key(id, seq), max, blocking);
            }
            say("SENT");
        }
        "party-consumer" => {
            let producers: usize = var("MMRING_PRODUCERS");
            let mut rx = ring.consumer().unwrap();
            say("ATTACHED");
            // Per producer: count, sum of sequence numbers, xor of their
            // hashes; and with one consumer, strict per-producer order.
            let mut digest = vec![(0u64, 0u64, 0u64); producers];
            let mut next = vec![0u64; producers];
            while let Some(k) = next_key(&mut rx, max, blocking) {
                let (p, seq) = ((k >> 40) as usize, k & ((1 << 40) - 1));
                if per_producer_order {
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
            let hold: String = var("MMRING_HOLD");
            let _tx = (hold != "consumer").then(|| ring.producer().unwrap());
            let _rx = (hold != "producer").then(|| ring.consumer().unwrap());
            say("HOLDING");
            wait_for_parent();
        }
        other => panic!("unknown peer role {other}"),
    }
}

fn party<P: TestFlavour>(kind: Kind, producers: u64, consumers: u64, blocking: bool, total: u64) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path(P::NAME);
    let _cleanup = TempFile(path.clone());
    P::create(&path, kind, party_config(kind)).unwrap();
    let per = total / producers;
    let mut env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FLAVOUR", P::NAME.to_string()),
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
            spawn_peer("party-producer", &e)
        })
        .collect();
    for t in &mut txs {
        t.expect("ATTACHED");
    }
    let mut rxs: Vec<Peer> = (0..consumers)
        .map(|_| spawn_peer("party-consumer", &env))
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
            "{kind} via {}: producer {p}: every message exactly once",
            P::NAME
        );
    }
}

#[test]
fn mpmc_2x2_spinning() {
    party::<Mpmc>(Kind::Mpmc, 2, 2, false, TOTAL);
}

#[test]
fn mpmc_2x2_blocking() {
    party::<Mpmc>(Kind::Mpmc, 2, 2, true, TOTAL);
}

#[test]
fn mpsc_4x1_spinning() {
    party::<Mpsc>(Kind::Mpsc, 4, 1, false, TOTAL);
}

#[test]
fn mpsc_4x1_blocking() {
    party::<Mpsc>(Kind::Mpsc, 4, 1, true, TOTAL);
}

/// The same through `AnyRing` in every process, for each kind (spsc 1 x 1),
/// on a shorter stream.
#[test]
fn any_ring_parties_of_each_kind() {
    party::<AnyKind>(Kind::Spsc, 1, 1, true, 200_000);
    party::<AnyKind>(Kind::Mpsc, 3, 1, false, 200_000);
    party::<AnyKind>(Kind::Mpmc, 2, 2, true, 200_000);
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
        ("MMRING_HOLD", "both".to_string()),
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
    assert_eq!(st.producer.state, PeerState::Alive);
    let mut rx = ring.consumer().unwrap();
    let waiter = std::thread::spawn(move || rx.recv().map(|g| g.len()));
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        !waiter.is_finished(),
        "a live producer keeps the consumer waiting"
    );
    let pid = holder.pid();
    holder.kill9();
    assert_eq!(waiter.join().unwrap(), Err(RecvError::Disconnected));
    let st = ring.stat();
    assert!(!st.producer.alive);
    assert_eq!(st.producer.state, PeerState::Died, "killed, not detached");
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

/// Peer states across processes, for every flavour: a role never attached,
/// then held by a live process, then that process killed with `kill -9`:
/// `NeverAttached`, `Alive`, `Gone`, as the other side's handle, `stat`
/// (`RoleStat::state`, `alive`, the holder list) and a blocked call on the
/// other side all see it. First the producer is killed, then the consumer.
fn killed_peer_is_gone<P: TestFlavour>(kind: Kind) {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(4, 16),
        _ => Config::new(64),
    };
    for victim in ["producer", "consumer"] {
        let path = temp_path("gone");
        let _cleanup = TempFile(path.clone());
        let ring = P::create(&path, kind, cfg).unwrap();
        let role_stat = |ring: &Ring<P>| {
            let st = ring.stat();
            if victim == "producer" {
                st.producer
            } else {
                st.consumer
            }
        };
        let mut tx = None;
        let mut rx = None;
        if victim == "producer" {
            rx = Some(ring.consumer().unwrap());
        } else {
            let mut t = ring.producer().unwrap();
            // Fill the ring so that a send will block.
            while t.try_send(&[3; 8]).is_ok() {}
            tx = Some(t);
        }
        let state = |tx: &Option<Producer<P>>, rx: &Option<Consumer<P>>| match (tx, rx) {
            (Some(t), _) => t.consumer_state(),
            (_, Some(r)) => r.producer_state(),
            _ => unreachable!(),
        };
        assert_eq!(state(&tx, &rx), PeerState::NeverAttached, "{kind} {victim}");
        assert_eq!(role_stat(&ring).state, PeerState::NeverAttached);
        assert!(!role_stat(&ring).alive);
        // Not attached yet is not gone: blocking calls wait.
        if let Some(r) = &mut rx {
            assert_eq!(
                r.recv_timeout(Duration::from_millis(20)).unwrap_err(),
                RecvError::Timeout
            );
        }
        if let Some(t) = &mut tx {
            assert_eq!(
                t.send_timeout(&[3; 8], Duration::from_millis(20))
                    .unwrap_err(),
                SendError::Timeout
            );
        }

        let env = [
            ("MMRING_PATH", path.display().to_string()),
            ("MMRING_FLAVOUR", P::NAME.to_string()),
            ("MMRING_HOLD", victim.to_string()),
        ];
        let mut holder = spawn_peer("holder", &env);
        holder.expect("HOLDING");
        let pid = holder.pid();
        assert_eq!(state(&tx, &rx), PeerState::Alive, "{kind} {victim}");
        let rs = role_stat(&ring);
        assert_eq!(
            (rs.state, rs.alive, rs.attaches),
            (PeerState::Alive, true, 1)
        );
        let holders: Vec<_> = rs.holders.iter().map(|h| (h.pid, h.alive)).collect();
        assert_eq!(holders, [(pid, true)]);

        // A blocked call on our side, woken by the kill.
        let waiter = std::thread::spawn(move || {
            let r = match (&mut tx, &mut rx) {
                (Some(t), _) => t.send(&[3; 8]).map_err(|e| e.to_string()),
                (_, Some(r)) => r.recv().map(drop).map_err(|e| e.to_string()),
                _ => unreachable!(),
            };
            (r, tx, rx)
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !waiter.is_finished(),
            "{kind}: a live {victim} keeps us waiting"
        );
        holder.kill9();
        let (r, tx, rx) = waiter.join().unwrap();
        let want = if victim == "producer" {
            RecvError::Disconnected.to_string()
        } else {
            SendError::Disconnected.to_string()
        };
        assert_eq!(
            r,
            Err(want),
            "{kind}: blocked call after the {victim} was killed"
        );
        assert_eq!(state(&tx, &rx), PeerState::Died, "{kind} {victim}");
        let rs = role_stat(&ring);
        assert_eq!((rs.state, rs.alive), (PeerState::Died, false));
        let holders: Vec<_> = rs.holders.iter().map(|h| (h.pid, h.alive)).collect();
        assert_eq!(holders, [(pid, false)], "a killed holder stays listed");
    }
}

#[test]
fn killed_peer_state_is_died() {
    for_every_flavour!(killed_peer_is_gone);
}
