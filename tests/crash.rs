//! Crash recovery (issue 9): a real process is killed at an exact step of a
//! protocol, either by a crash point (`MMRING_KILL_AT=name[:n]` in its
//! environment makes a debug-build process SIGKILL itself the n-th time it
//! reaches the named point) or by a `kill -9` from the parent, and the live
//! parties must go on: nothing committed lost, nothing delivered twice, no
//! wedge, no `Disconnected` while frames remain.
//!
//! The killed party is always a separate process (this test binary
//! re-executed as a peer); the live parties are the parent test process,
//! one handle (and one attachment, with its own lock) per thread.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use common::*;
use mmring::{Config, PeerState, RecvError, Role, SendError, mpmc, mpsc, spsc};

/// Largest payload of the framed rings here.
const MAX: usize = 256;
/// Slot size of the mpmc rings here.
const SLOT: usize = 64;
/// How long a live party may wait for one message or for room before the
/// test calls the ring wedged (recovery is due within ~10 ms of being held).
const WEDGE: Duration = Duration::from_secs(5);

fn key(producer: u64, seq: u64) -> u64 {
    producer << 40 | seq
}

fn split(k: u64) -> (u64, u64) {
    (k >> 40, k & ((1 << 40) - 1))
}

/// The checked key of a frame written by [`fill`].
fn decode(frame: &[u8], max: usize) -> u64 {
    let k = u64::from_le_bytes(frame[..8].try_into().unwrap());
    if let Err(e) = check_frame(k, frame, max) {
        panic!("corrupt frame: {e}");
    }
    k
}

/// Fills a fresh grant as frame `k`.
fn fill(k: u64, g: &mut [u8]) {
    fill_frame(k, g);
}

fn env(path: &std::path::Path) -> Vec<(&'static str, String)> {
    vec![("MMRING_PATH", path.display().to_string())]
}

/// Waits for a peer that must die of SIGKILL (from its crash point or from
/// us) and checks that it did.
fn expect_killed(mut p: Peer) {
    drop(p.stdin.take());
    let status = p.child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(9),
        "{} should have been killed by SIGKILL, exited with {status}",
        p.name
    );
}

/// Every protocol line a peer prints until it dies.
fn lines_until_death(p: &mut Peer) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(l) = p.line() {
        out.push(l);
    }
    out
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let path: String = var("MMRING_PATH");
    match role.as_str() {
        // An mpsc producer: sends MMRING_SENDS frames, then MMRING_THEN:
        // `reserve` (reserve(100) and hold the grant until killed), `exit`
        // (drop the handle cleanly), or `hold` (keep the handle, no claim).
        "mpsc-producer" | "spsc-producer" => {
            let id: u64 = var("MMRING_ID");
            let sends: u64 = var("MMRING_SENDS");
            let then: String = var("MMRING_THEN");
            macro_rules! body {
                ($tx:expr) => {{
                    let mut tx = $tx;
                    say("ATTACHED");
                    for seq in 0..sends {
                        let k = key(id, seq);
                        let mut g = tx.reserve(frame_len(k, MAX)).unwrap();
                        fill(k, &mut g);
                        g.commit();
                    }
                    say("SENT");
                    match then.as_str() {
                        "reserve" => {
                            // With MMRING_KILL_AT set, we die inside this.
                            let _g = tx.reserve(100).unwrap();
                            say("RESERVED");
                            wait_for_parent();
                            panic!("the parent should have killed us");
                        }
                        "hold" => {
                            wait_for_parent();
                            panic!("the parent should have killed us");
                        }
                        "exit" => drop(tx),
                        other => panic!("unknown MMRING_THEN {other}"),
                    }
                }};
            }
            if role == "spsc-producer" {
                body!(spsc::Ring::open(&path).unwrap().producer().unwrap())
            } else {
                body!(mpsc::Ring::open(&path).unwrap().producer().unwrap())
            }
        }
        // An mpsc consumer taking batches of MMRING_BATCH with
        // `try_recv_batch` and printing every key it reads (before the batch
        // is released).
        "mpsc-consumer" => {
            let batch: usize = var("MMRING_BATCH");
            let mut rx = mpsc::Ring::open(&path).unwrap().consumer().unwrap();
            say("ATTACHED");
            loop {
                match rx.try_recv_batch(batch, |f| say(format!("GOT {}", decode(f, MAX)))) {
                    Ok(_) => {}
                    Err(RecvError::Empty) => std::thread::sleep(Duration::from_millis(1)),
                    Err(e) => panic!("consumer: {e}"),
                }
            }
        }
        // An mpmc producer that reserves one slot (and dies in it).
        "mpmc-producer" => {
            let mut tx = mpmc::Ring::open(&path).unwrap().producer().unwrap();
            say("ATTACHED");
            let _g = tx.reserve(10).unwrap();
            say("SURVIVED");
        }
        // An mpmc consumer that takes one message (and dies holding it), or
        // sleeps in `recv` until killed.
        "mpmc-consumer" => {
            let mut rx = mpmc::Ring::open(&path).unwrap().consumer().unwrap();
            say("ATTACHED");
            let g = rx.recv();
            say(format!("SURVIVED {:?}", g.map(|g| g.len())));
        }
        other => panic!("unknown peer role {other}"),
    }
}

// ---------------------------------------------------------------------------
// 1. MPSC producer killed between reserve and commit.

/// How the first producer of [`mpsc_producer_dies`] stops.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Death {
    /// Crash point `mpsc-claimed`: after its CAS on `tail`, before publishing.
    Claimed,
    /// `kill -9` from outside while it holds a `reserve(100)` grant.
    External,
    /// Crash point `mpsc-recorded`: claim recorded, before its CAS (it owns
    /// nothing).
    Recorded,
}

/// Producer A (a process) sends 3 frames, then dies in or after
/// `reserve(100)`; producer B (here) sends many laps' worth of frames while
/// the consumer (here) reads: the consumer gets A's 3 frames and every one
/// of B's, in order, exactly once; B is never wedged by `Full`; `recv`
/// returns `Disconnected` only once everything is read; a fresh consumer
/// and producer on the same file work.
///
/// With `b_leaves_first`, B sends only 5 frames and detaches before the
/// consumer reads anything (the issue's "when B leaves, `recv` returns
/// `Disconnected` at once with committed frames still in the ring"): with
/// no live producer left, the consumer must still get past A's dead claim
/// to B's frames before it reports `Disconnected`.
fn mpsc_producer_dies(death: Death, b_leaves_first: bool) {
    const A_SENDS: u64 = 3;
    let b_sends: u64 = if b_leaves_first { 5 } else { 2000 };
    let path = temp_path("crash-mpsc-producer");
    let _cleanup = TempFile(path.clone());
    let ring = mpsc::Ring::create(&path, Config::new(4096).max_frame(MAX as u64)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut e = env(&path);
    e.push(("MMRING_ID", "1".into()));
    e.push(("MMRING_SENDS", A_SENDS.to_string()));
    e.push(("MMRING_THEN", "reserve".into()));
    match death {
        // The 4th claim is the reserve(100) after 3 sends.
        Death::Claimed => e.push(("MMRING_KILL_AT", "mpsc-claimed:4".into())),
        Death::Recorded => e.push(("MMRING_KILL_AT", "mpsc-recorded:4".into())),
        Death::External => {}
    }
    let mut a = spawn_peer("mpsc-producer", &e);
    a.expect("SENT");
    let a_pid = a.pid();
    if death == Death::External {
        a.expect("RESERVED");
        a.kill9();
    }
    expect_killed(a);

    // Before anyone is held by it, a claim of a dead owner is listed.
    let st = ring.stat();
    match death {
        Death::Claimed | Death::External => {
            let stuck: Vec<_> = st.claims.iter().map(|c| (c.pid, c.role, c.alive)).collect();
            assert_eq!(stuck, [(a_pid, Role::Producer, false)], "{st:?}");
        }
        Death::Recorded => {}
    }
    assert_eq!(st.recoveries, 0);
    assert_eq!(rx.producer_state(), PeerState::Died);

    let mut tx = ring.producer().unwrap();
    let sender = std::thread::spawn(move || {
        for seq in 0..b_sends {
            let k = key(2, seq);
            let since = Instant::now();
            loop {
                match tx.try_reserve(frame_len(k, MAX)) {
                    Ok(mut g) => {
                        fill(k, &mut g);
                        g.commit();
                        break;
                    }
                    Err(SendError::Full) => {
                        assert!(
                            since.elapsed() < WEDGE,
                            "producer B wedged: Full for {WEDGE:?} at frame {seq}"
                        );
                        std::thread::yield_now();
                    }
                    Err(e) => panic!("producer B: {e}"),
                }
            }
        }
        // B detaches cleanly here; the consumer must still read everything.
    });
    let mut sender = Some(sender);
    if b_leaves_first {
        sender.take().unwrap().join().unwrap();
        // Other tests of this binary spawn processes, whose children hold
        // copies of our descriptors until they exec: B's role may read as
        // held for that moment (see `PeerState`).
        let start = std::time::Instant::now();
        while rx.producer_state() == PeerState::Alive && start.elapsed() < WEDGE {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(rx.producer_state(), PeerState::Died, "A died, B left");
    }
    let mut next = [0u64; 3];
    loop {
        match rx.recv_timeout(WEDGE) {
            Ok(g) => {
                let (p, seq) = split(decode(&g, MAX));
                assert!(p == 1 || p == 2, "unknown producer {p}");
                assert_eq!(seq, next[p as usize], "producer {p}: order or duplicate");
                next[p as usize] += 1;
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!(
                "consumer: {e} after {next:?} frames; stat: {:?}",
                ring.stat()
            ),
        }
    }
    if let Some(sender) = sender {
        sender.join().unwrap();
    }
    assert_eq!(
        next[1..],
        [A_SENDS, b_sends],
        "Disconnected only after every committed frame of A and B"
    );
    let st = ring.stat();
    match death {
        Death::Claimed | Death::External => {
            assert!(st.recoveries >= 1, "{st:?}");
            assert!(st.claims.is_empty(), "claims left: {:?}", st.claims);
        }
        // It died before its CAS: it owned nothing, nothing was recovered.
        // (`stat` still lists its recorded claim: see
        // `stat_lists_no_claim_for_a_producer_killed_before_its_cas`.)
        Death::Recorded => assert_eq!(st.recoveries, 0, "{st:?}"),
    }

    // A fresh consumer and producer on the same file work.
    drop(rx);
    drop(ring);
    let ring = mpsc::Ring::open(&path).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut tx = ring.producer().unwrap();
    for seq in 0..100 {
        let k = key(3, seq);
        let mut g = tx.reserve_timeout(frame_len(k, MAX), WEDGE).unwrap();
        fill(k, &mut g);
        g.commit();
        let got = decode(&rx.recv_timeout(WEDGE).unwrap(), MAX);
        assert_eq!(got, k);
    }
}

#[test]
fn mpsc_producer_killed_after_claim() {
    mpsc_producer_dies(Death::Claimed, false);
}

#[test]
fn mpsc_producer_killed_after_claim_other_producer_gone() {
    mpsc_producer_dies(Death::Claimed, true);
}

#[test]
fn mpsc_producer_killed_holding_reserve_grant() {
    mpsc_producer_dies(Death::External, false);
}

#[test]
fn mpsc_producer_killed_holding_reserve_grant_other_producer_gone() {
    mpsc_producer_dies(Death::External, true);
}

#[test]
fn mpsc_producer_killed_before_its_cas() {
    mpsc_producer_dies(Death::Recorded, false);
}

// ---------------------------------------------------------------------------
// 1b. SPSC producer killed between its `tail` store and its frame word.

/// Who finds the publication an spsc producer left half done.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Finder {
    /// The consumer, already waiting in `recv` when the producer dies.
    WaitingConsumer,
    /// The consumer, attached after the death, with no producer left.
    LateConsumer,
    /// A new producer, attached before any consumer reads.
    NewProducer,
}

/// Every frame's key until `Disconnected`; any other error, or no frame
/// for `WEDGE`, fails the test.
fn receive_until_disconnected(rx: &mut spsc::Consumer) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(WEDGE) {
            Ok(g) => got.push(decode(&g, MAX)),
            Err(RecvError::Disconnected) => return got,
            Err(e) => panic!("consumer: {e} after {got:?}"),
        }
    }
}

/// An spsc producer (a process) sends 5 frames and is killed at the
/// `spsc-tail-stored` crash point of the 5th: its `tail` covers the frame,
/// whose frame word it never stored, so the consumer would stop at a zero
/// word below `tail`. Whoever finds it (the consumer, once the producer
/// role is free, or a new producer when it attaches) stores the recorded
/// word: all 5 frames arrive, in order, once, and a new producer's frames
/// follow them. Without the recovery the consumer waits for ever (the test
/// fails on its `WEDGE` timeout).
fn spsc_producer_dies_publishing(finder: Finder) {
    const A_SENDS: u64 = 5;
    let path = temp_path("crash-spsc-producer");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, Config::new(4096).max_frame(MAX as u64)).unwrap();
    let waiting = (finder == Finder::WaitingConsumer).then(|| {
        let mut rx = ring.consumer().unwrap();
        std::thread::spawn(move || (receive_until_disconnected(&mut rx), rx))
    });
    let mut e = env(&path);
    e.push(("MMRING_ID", "1".into()));
    e.push(("MMRING_SENDS", A_SENDS.to_string()));
    e.push(("MMRING_THEN", "exit".into()));
    e.push(("MMRING_KILL_AT", format!("spsc-tail-stored:{A_SENDS}")));
    let a = spawn_peer("spsc-producer", &e);
    let a_pid = a.pid();
    expect_killed(a);
    if finder != Finder::WaitingConsumer {
        // Until someone completes it, `stat` lists the dead producer's
        // publication as a claim in flight (and `mmring ls` as stuck).
        let st = ring.stat();
        let stuck: Vec<_> = st.claims.iter().map(|c| (c.pid, c.role, c.alive)).collect();
        assert_eq!(stuck, [(a_pid, Role::Producer, false)], "{st:?}");
        assert_eq!(st.recoveries, 0);
    }
    let (got, mut rx) = match finder {
        Finder::WaitingConsumer => waiting.unwrap().join().unwrap(),
        Finder::LateConsumer => {
            let mut rx = ring.consumer().unwrap();
            (receive_until_disconnected(&mut rx), rx)
        }
        Finder::NewProducer => {
            let tx = ring.producer().unwrap();
            assert_eq!(ring.stat().recoveries, 1, "completed at attach");
            let mut rx = ring.consumer().unwrap();
            let got = (0..A_SENDS)
                .map(|_| decode(&rx.recv_timeout(WEDGE).unwrap(), MAX))
                .collect();
            drop(tx);
            (got, rx)
        }
    };
    let want: Vec<u64> = (0..A_SENDS).map(|seq| key(1, seq)).collect();
    assert_eq!(got, want, "{finder:?}: every frame whose tail was stored");
    let st = ring.stat();
    assert_eq!(st.recoveries, 1, "{finder:?}");
    assert!(st.claims.is_empty(), "{finder:?}: {st:?}");
    // A new producer continues after them.
    let mut tx = ring.producer().unwrap();
    for seq in 0..100 {
        let k = key(2, seq);
        let mut g = tx.reserve_timeout(frame_len(k, MAX), WEDGE).unwrap();
        fill(k, &mut g);
        g.commit();
        assert_eq!(decode(&rx.recv_timeout(WEDGE).unwrap(), MAX), k);
    }
}

#[test]
fn spsc_producer_killed_after_its_tail_store_waiting_consumer() {
    spsc_producer_dies_publishing(Finder::WaitingConsumer);
}

#[test]
fn spsc_producer_killed_after_its_tail_store_late_consumer() {
    spsc_producer_dies_publishing(Finder::LateConsumer);
}

#[test]
fn spsc_producer_killed_after_its_tail_store_new_producer() {
    spsc_producer_dies_publishing(Finder::NewProducer);
}

/// A producer killed at `mpsc-recorded` recorded a claim position but never
/// made its CAS: it owns nothing, and once the consumer has read past that
/// position nothing can be stuck there. `stat` should not list it as a
/// claim in flight (`Stat::claims`: "claimed and not yet published").
#[test]
fn stat_lists_no_claim_for_a_producer_killed_before_its_cas() {
    let path = temp_path("crash-mpsc-recorded-stat");
    let _cleanup = TempFile(path.clone());
    let ring = mpsc::Ring::create(&path, Config::new(4096).max_frame(MAX as u64)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut e = env(&path);
    e.push(("MMRING_ID", "1".into()));
    e.push(("MMRING_SENDS", "3".into()));
    e.push(("MMRING_THEN", "reserve".into()));
    e.push(("MMRING_KILL_AT", "mpsc-recorded:4".into()));
    let mut a = spawn_peer("mpsc-producer", &e);
    a.expect("SENT");
    expect_killed(a);
    let mut tx = ring.producer().unwrap();
    for seq in 0..3 {
        assert_eq!(decode(&rx.recv().unwrap(), MAX), key(1, seq));
    }
    for seq in 0..100 {
        let k = key(2, seq);
        let mut g = tx.reserve_timeout(frame_len(k, MAX), WEDGE).unwrap();
        fill(k, &mut g);
        g.commit();
        assert_eq!(decode(&rx.recv_timeout(WEDGE).unwrap(), MAX), k);
    }
    let st = ring.stat();
    assert!(st.head == st.tail && st.recoveries == 0, "{st:?}");
    assert!(st.claims.is_empty(), "phantom claim: {:?}", st.claims);
}

// ---------------------------------------------------------------------------
// 2. MPSC consumer killed while zeroing released space.

/// The ring is filled; a consumer process takes batches of `batch` and is
/// killed in the middle of zeroing its `nth` release. The frames it had read
/// (including the batch it was releasing) are consumed by design; every
/// frame after its read position reaches the next consumer, once, in
/// order, and the ring then runs lap after lap.
fn mpsc_consumer_dies_zeroing(batch: usize, nth: u32) {
    let path = temp_path("crash-mpsc-zeroing");
    let _cleanup = TempFile(path.clone());
    let ring = mpsc::Ring::create(&path, Config::new(1 << 14).max_frame(MAX as u64)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut sent = 0u64;
    let send = |tx: &mut mpsc::Producer, seq: u64| -> bool {
        let k = key(0, seq);
        match tx.try_reserve(frame_len(k, MAX)) {
            Ok(mut g) => {
                fill(k, &mut g);
                g.commit();
                true
            }
            Err(SendError::Full) => false,
            Err(e) => panic!("producer: {e}"),
        }
    };
    while send(&mut tx, sent) {
        sent += 1;
    }
    let full = sent;
    assert!(full > 30, "ring holds {full} frames");

    let mut e = env(&path);
    e.push(("MMRING_BATCH", batch.to_string()));
    e.push(("MMRING_KILL_AT", format!("mpsc-zeroing:{nth}")));
    let mut c = spawn_peer("mpsc-consumer", &e);
    let got: Vec<u64> = lines_until_death(&mut c)
        .iter()
        .filter_map(|l| l.strip_prefix("GOT "))
        .map(|k| k.parse().unwrap())
        .collect();
    expect_killed(c);
    let read = got.len() as u64;
    assert_eq!(
        got,
        (0..read).collect::<Vec<_>>(),
        "the dead consumer's reads"
    );
    let expect_read = (batch as u64).saturating_mul(nth as u64).min(full);
    assert_eq!(
        read, expect_read,
        "killed in release {nth} of batches of {batch}"
    );
    // The completed releases (all but the last) freed their space; the
    // half-done release holds its own until the next consumer finishes it.
    while send(&mut tx, sent) {
        sent += 1;
    }
    let expect_room = batch.saturating_mul(nth as usize - 1) as u64;
    assert!(
        sent - full <= expect_room,
        "space of a half-done release reused: {} sent after the death",
        sent - full
    );

    // The next consumer finishes the release, then gets exactly the frames
    // after the dead consumer's read position.
    let mut rx = ring.consumer().unwrap();
    assert!(ring.stat().recoveries >= 1, "{:?}", ring.stat());
    let mut want = read;
    let drain = |rx: &mut mpsc::Consumer, want: &mut u64| loop {
        match rx.try_recv() {
            Ok(g) => {
                assert_eq!(decode(&g, MAX), key(0, *want), "lost or duplicated frame");
                *want += 1;
            }
            Err(RecvError::Empty) => break,
            Err(e) => panic!("consumer: {e}"),
        }
    };
    drain(&mut rx, &mut want);
    assert_eq!(want, sent, "every frame after the dead consumer's position");
    // No wedge: many more laps, each filling the ring.
    for _ in 0..20 {
        let before = sent;
        let since = Instant::now();
        while send(&mut tx, sent) {
            sent += 1;
        }
        assert!(
            sent - before >= full / 2,
            "ring wedged: only {} sent",
            sent - before
        );
        drain(&mut rx, &mut want);
        assert_eq!(want, sent);
        assert!(since.elapsed() < WEDGE);
    }
}

#[test]
fn mpsc_consumer_killed_zeroing_a_whole_ring() {
    // try_recv_batch(usize::MAX) on a full ring, killed in its release.
    mpsc_consumer_dies_zeroing(usize::MAX, 1);
}

#[test]
fn mpsc_consumer_killed_zeroing_mid_stream() {
    // Two batches of 10 released, killed releasing the third.
    mpsc_consumer_dies_zeroing(10, 3);
}

// ---------------------------------------------------------------------------
// 3 and 4. MPMC parties killed holding a slot.

/// One live producer (here) sends `count` messages to two consumers (here);
/// every message must be delivered exactly once, with no `Full` or empty
/// wedge. Returns the keys received, sorted.
fn mpmc_run(ring: &mpmc::Ring, id: u64, count: u64) -> BTreeSet<u64> {
    let mut tx = ring.producer().unwrap();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let mut rx = ring.consumer().unwrap();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    match rx.recv_timeout(WEDGE) {
                        Ok(g) => got.push(decode(&g, SLOT)),
                        Err(RecvError::Disconnected) => return got,
                        Err(e) => panic!("consumer wedged: {e} after {} messages", got.len()),
                    }
                }
            })
        })
        .collect();
    for seq in 0..count {
        let k = key(id, seq);
        let mut g = tx
            .reserve_timeout(frame_len(k, SLOT), WEDGE)
            .unwrap_or_else(|e| panic!("producer wedged at {seq}: {e}"));
        fill(k, &mut g);
        g.commit();
    }
    drop(tx);
    let mut all = BTreeSet::new();
    for c in consumers {
        for k in c.join().unwrap() {
            assert!(all.insert(k), "message {k:#x} delivered twice");
        }
    }
    all
}

/// Issue 9, failure 3: `slots(8, 64)`; a producer process is killed after
/// claiming a slot (crash point `mpmc-claimed`): the live producer and both
/// consumers go on for many laps, every message delivered once.
#[test]
fn mpmc_producer_killed_after_claim() {
    const COUNT: u64 = 8 * 1000;
    let path = temp_path("crash-mpmc-producer");
    let _cleanup = TempFile(path.clone());
    let ring = mpmc::Ring::create(&path, Config::slots(8, SLOT as u64)).unwrap();
    let mut e = env(&path);
    e.push(("MMRING_KILL_AT", "mpmc-claimed".into()));
    let p = spawn_peer("mpmc-producer", &e);
    let pid = p.pid();
    expect_killed(p);
    let st = ring.stat();
    let stuck: Vec<_> = st.claims.iter().map(|c| (c.pid, c.role, c.alive)).collect();
    assert_eq!(stuck, [(pid, Role::Producer, false)], "{st:?}");

    let got = mpmc_run(&ring, 1, COUNT);
    assert_eq!(
        got,
        (0..COUNT).map(|s| key(1, s)).collect(),
        "every message once"
    );
    let st = ring.stat();
    assert!(st.recoveries >= 1 && st.claims.is_empty(), "{st:?}");
}

/// As failure 1's "`Disconnected` with committed frames in the ring", on
/// mpmc: a producer process dies holding a slot, a second producer sends 5
/// messages after it and detaches. With no live producer left, the consumer
/// must still get past the dead slot to the 5 messages before it reports
/// `Disconnected`.
#[test]
fn mpmc_producer_killed_after_claim_other_producer_gone() {
    let path = temp_path("crash-mpmc-producer-gone");
    let _cleanup = TempFile(path.clone());
    let ring = mpmc::Ring::create(&path, Config::slots(8, SLOT as u64)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let mut e = env(&path);
    e.push(("MMRING_KILL_AT", "mpmc-claimed".into()));
    expect_killed(spawn_peer("mpmc-producer", &e));
    {
        let mut tx = ring.producer().unwrap();
        for seq in 0..5 {
            let k = key(1, seq);
            let mut g = tx.try_reserve(frame_len(k, SLOT)).unwrap();
            fill(k, &mut g);
            g.commit();
        }
    }
    assert_eq!(rx.producer_state(), PeerState::Died);
    let mut got = Vec::new();
    loop {
        match rx.recv_timeout(WEDGE) {
            Ok(g) => got.push(decode(&g, SLOT)),
            Err(RecvError::Disconnected) => break,
            Err(e) => panic!("consumer: {e} after {got:x?}"),
        }
    }
    assert_eq!(got, (0..5).map(|s| key(1, s)).collect::<Vec<_>>());
    assert!(ring.stat().recoveries >= 1, "{:?}", ring.stat());
}

/// Issue 9, failure 4: a consumer process is killed after taking a message
/// (crash point `mpmc-taken`): producers and consumers go on for many laps.
/// The message the dead consumer took is *not* redelivered: its slot is
/// released by whoever is held up by it, and the message is lost with the
/// consumer (as with any consumer that dies after taking a message).
#[test]
fn mpmc_consumer_killed_after_take() {
    const COUNT: u64 = 8 * 1000;
    let path = temp_path("crash-mpmc-consumer");
    let _cleanup = TempFile(path.clone());
    let ring = mpmc::Ring::create(&path, Config::slots(8, SLOT as u64)).unwrap();
    let mut e = env(&path);
    e.push(("MMRING_KILL_AT", "mpmc-taken".into()));
    let mut c = spawn_peer("mpmc-consumer", &e);
    c.expect("ATTACHED");
    // One message for the doomed consumer, from a producer that then
    // leaves.
    {
        let mut tx = ring.producer().unwrap();
        let k = key(0, 0);
        let mut g = tx.reserve(frame_len(k, SLOT)).unwrap();
        fill(k, &mut g);
        g.commit();
    }
    let pid = c.pid();
    expect_killed(c);
    let st = ring.stat();
    let stuck: Vec<_> = st.claims.iter().map(|c| (c.pid, c.role, c.alive)).collect();
    assert_eq!(stuck, [(pid, Role::Consumer, false)], "{st:?}");

    let got = mpmc_run(&ring, 1, COUNT);
    // Exactly the live producer's messages: key(0, 0) is not redelivered.
    assert_eq!(got, (0..COUNT).map(|s| key(1, s)).collect());
    let st = ring.stat();
    assert!(st.recoveries >= 1 && st.claims.is_empty(), "{st:?}");
}

// ---------------------------------------------------------------------------
// 5. Sleepers killed while asleep.

/// Starts three consumer processes, waits until all three sleep in `recv`
/// on an empty ring, and kills them.
fn kill_three_sleepers(ring: &mpmc::Ring, path: &std::path::Path) {
    let mut sleepers: Vec<Peer> = (0..3)
        .map(|_| spawn_peer("mpmc-consumer", &env(path)))
        .collect();
    for s in &mut sleepers {
        s.expect("ATTACHED");
    }
    let since = Instant::now();
    while ring.stat().consumers_waiting != 3 {
        assert!(
            since.elapsed() < WEDGE,
            "sleepers never slept: {:?}",
            ring.stat()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    for mut s in sleepers {
        s.kill9();
        expect_killed(s);
    }
    // Nobody reconciled yet: the dead sleepers are still counted, and
    // `stat` tells them apart by the lock table.
    assert_eq!(ring.stat().consumers_waiting, 3);
    assert_eq!(ring.stat().stale_sleepers, 3);
}

/// Issue 9, failure 5: three consumers killed while blocked in `recv`. The
/// stale sleeper bits are cleared (a) by a producer whose wake-ups find
/// nobody (reconciled with the lock table every 64 futile wakes), or (b) by
/// new consumers attaching on the dead ones' records. Afterwards the count
/// is 0, so publishing makes no wake-up syscall (the count is what the hot
/// path checks; asserting it is asserting the syscall is gone).
#[test]
fn sleepers_killed_while_blocked_are_reconciled() {
    let path = temp_path("crash-sleepers");
    let _cleanup = TempFile(path.clone());
    let ring = mpmc::Ring::create(&path, Config::slots(256, SLOT as u64)).unwrap();

    // (a) A producer publishes enough.
    kill_three_sleepers(&ring, &path);
    let mut tx = ring.producer().unwrap();
    for seq in 0..200 {
        let k = key(0, seq);
        let mut g = tx.try_reserve(frame_len(k, SLOT)).unwrap();
        fill(k, &mut g);
        g.commit();
    }
    assert_eq!(
        ring.stat().consumers_waiting,
        0,
        "stale sleepers after 200 publishes"
    );
    assert_eq!(ring.stat().stale_sleepers, 0);
    // Drain (with a consumer that attaches after the reconciliation).
    {
        let mut rx = ring.consumer().unwrap();
        for seq in 0..200 {
            assert_eq!(decode(&rx.try_recv().unwrap(), SLOT), key(0, seq));
        }
    }

    // (b) New consumers attach on the dead sleepers' records.
    kill_three_sleepers(&ring, &path);
    let rxs: Vec<_> = (0..3).map(|_| ring.consumer().unwrap()).collect();
    assert_eq!(
        ring.stat().consumers_waiting,
        0,
        "attaching on a dead sleeper's record clears its bit"
    );
    // And it stays 0 while messages flow.
    for seq in 0..100u64 {
        tx.send(&seq.to_le_bytes()).unwrap();
    }
    assert_eq!(ring.stat().consumers_waiting, 0);
    drop(rxs);
}

// ---------------------------------------------------------------------------
// 7. A dead producer is told from a clean finish.

/// Issue 9, failure 7, for a framed ring (`spsc` or `mpsc`): after
/// `kill -9` of the only producer the consumer sees `PeerState::Died`;
/// after a clean drop, `PeerState::Gone`; `recv` returns every committed
/// frame and then `Disconnected` in both cases. With `stuck`, the killed
/// producer held a reservation: `stat` lists the claim as not alive until
/// the consumer recovers it, then counts the recovery.
/// (An spsc reservation is private until committed: nothing to list or
/// recover.)
fn producer_state_after<P: mmring::FixedKind>(flavour: &str, kill: bool, reserving: bool) {
    const SENDS: u64 = 5;
    let path = temp_path("crash-state");
    let _cleanup = TempFile(path.clone());
    let ring = mmring::Ring::<P>::create(&path, Config::new(4096).max_frame(MAX as u64)).unwrap();
    let stuck = reserving && flavour == "mpsc";
    let mut rx = ring.consumer().unwrap();
    assert_eq!(rx.producer_state(), PeerState::NeverAttached);
    let mut e = env(&path);
    e.push(("MMRING_ID", "0".into()));
    e.push(("MMRING_SENDS", SENDS.to_string()));
    let then = match (kill, reserving) {
        (false, _) => "exit",
        (true, false) => "hold",
        (true, true) => "reserve",
    };
    e.push(("MMRING_THEN", then.into()));
    let mut p = spawn_peer(&format!("{flavour}-producer"), &e);
    p.expect("SENT");
    let pid = p.pid();
    if kill {
        if reserving {
            p.expect("RESERVED");
        }
        assert_eq!(rx.producer_state(), PeerState::Alive);
        p.kill9();
        expect_killed(p);
    } else {
        p.join();
    }
    let st = ring.stat();
    if stuck {
        let claims: Vec<_> = st.claims.iter().map(|c| (c.pid, c.role, c.alive)).collect();
        assert_eq!(claims, [(pid, Role::Producer, false)], "{st:?}");
    } else {
        assert!(st.claims.is_empty(), "{st:?}");
    }
    assert_eq!(st.recoveries, 0);
    let want = if kill {
        PeerState::Died
    } else {
        PeerState::Gone
    };
    assert_eq!(rx.producer_state(), want);
    assert_eq!(st.producer.state, want);
    for seq in 0..SENDS {
        let g = rx.recv().unwrap();
        assert_eq!(decode(&g, MAX), key(0, seq));
    }
    assert_eq!(rx.recv().unwrap_err(), RecvError::Disconnected);
    assert_eq!(rx.producer_state(), want, "still told apart afterwards");
    // A new producer: the consumer, held by the dead claim (if any),
    // recovers it and goes on.
    let mut tx = ring.producer().unwrap();
    let k = key(1, 0);
    let mut g = tx.reserve(frame_len(k, MAX)).unwrap();
    fill(k, &mut g);
    g.commit();
    assert_eq!(decode(&rx.recv_timeout(WEDGE).unwrap(), MAX), k);
    let st = ring.stat();
    assert!(st.claims.is_empty(), "{st:?}");
    if stuck {
        assert!(st.recoveries >= 1, "{st:?}");
    } else {
        assert_eq!(st.recoveries, 0, "{st:?}");
    }
}

#[test]
fn mpsc_killed_producer_is_died_clean_one_is_gone() {
    producer_state_after::<mpsc::Mpsc>("mpsc", true, false);
    producer_state_after::<mpsc::Mpsc>("mpsc", true, true);
    producer_state_after::<mpsc::Mpsc>("mpsc", false, false);
}

#[test]
fn spsc_killed_producer_is_died_clean_one_is_gone() {
    producer_state_after::<spsc::Spsc>("spsc", true, false);
    producer_state_after::<spsc::Spsc>("spsc", true, true);
    producer_state_after::<spsc::Spsc>("spsc", false, false);
}
