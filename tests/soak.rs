//! The kill -9 soak (issue 9): for every flavour (spsc 1x1, mpsc 3x1,
//! mpmc 2x2), producers and consumers run as separate processes on a named
//! ring while the parent SIGKILLs a random one every 50-500 ms and starts a
//! new one in its place. Messages are self-checking (length, contents and
//! checksum derived from a key) and sequenced; at the end the parent counts
//! what was lost, duplicated or corrupt, the stalls, and how long the ring
//! took to deliver again after each kill.
//!
//! Duration: `MMRING_SOAK_SECS` seconds per flavour; unset, 60 under
//! `CI=true` and 10 otherwise (so plain `cargo test` runs a 30 s soak). The
//! PRNG seed is printed; `MMRING_SOAK_SEED` replays a schedule. For a long
//! run: `MMRING_SOAK_SECS=600 cargo test --release --test soak -- --nocapture`.
//!
//! # Accounting
//!
//! Everything the parent needs survives a SIGKILL because it lives in small
//! files the parties map shared (stores to a `MAP_SHARED` page are in the
//! page cache the moment they are made: no syscall, nothing buffered in the
//! dead process):
//!
//! * Each producer *incarnation* (every restart is a new one) has its own
//!   id and file: a `committed` word it stores after each commit, and a
//!   bitmap with one bit per sequence number. Its messages are keys
//!   `id << 32 | seq`, `seq` counting from 0.
//! * Each consumer incarnation has a status file; for every message it
//!   writes the key to `in_hand`, checks the frame, sets the key's bit in
//!   the producer's bitmap (an atomic `fetch_or`: a bit already set is a
//!   duplicate), counts it, and only then drops the grant (which releases
//!   the message to the ring). `state` says whether it is inside `recv`
//!   (it may have taken a message it has not yet recorded) or holding the
//!   message in `in_hand`.
//!
//! At the end, for each producer incarnation, every `seq < committed` whose
//! bit is clear is missing. A killed producer may have committed one frame
//! after its last `committed` store: that frame may arrive (a bit at
//! `seq == committed`) or not; it is its "own uncommitted frame" and never
//! counted lost. Its in-flight claim is recovered by the ring and carries
//! nothing.
//!
//! A consumer killed after taking a message and before recording it:
//!
//! * framed rings (spsc, mpsc): the message is not released, so the next
//!   consumer reads it again. If the dead one had already set its bit, the
//!   next consumer's *first* message is a duplicate: counted as
//!   `redelivered`, not `duplicated`. Nothing a framed consumer takes can be
//!   lost (the release that a consumer killed while zeroing leaves half
//!   done drops only frames it had recorded).
//! * mpmc: a taken message is never redelivered (its slot is released by
//!   whoever is held up by it). If the dead consumer held it in `in_hand`
//!   without its bit, it is "delivered to a dead consumer"; if it was killed
//!   inside `recv`, it may have taken one message it never saw, so each such
//!   kill excuses at most one missing message (also counted as delivered to
//!   a dead consumer). Anything missing beyond that is `lost`.
//!
//! `duplicated` is every other bit found already set; `corrupt` every frame
//! that fails its check (and every `Corrupt` error). A stall is 2 s with no
//! message delivered by anyone while producers run (they are restarted at
//! once). Recovery time is from a kill to the next delivery by anyone.
//! The test asserts lost == 0, duplicated == 0, corrupt == 0, stalls == 0.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use common::*;
use memmap2::MmapMut;
use mmring::{Config, FixedKind, RecvError, SendError, mpmc, mpsc, spsc};

/// The flavours run one after another: each is several processes.
static HEAVY: Mutex<()> = Mutex::new(());

/// Largest payload on the framed rings.
const MAX: usize = 512;
/// Slot size of the mpmc ring.
const SLOT: usize = 256;
/// Messages per producer incarnation at most (one bitmap bit each); an
/// incarnation that gets there exits cleanly and is replaced.
const SEQ_CAP: u64 = 1 << 24;
/// Bytes before the bitmap in a producer file.
const BITMAP_AT: usize = 64;
/// A stall: no delivery by anyone for this long.
const STALL: Duration = Duration::from_secs(2);

// Consumer status words.
const C_STATE: usize = 0;
const C_IN_HAND: usize = 1;
const C_DELIVERED: usize = 2;
const C_DUP_FIRST: usize = 3;
const C_DUP_OTHER: usize = 4;
const C_CORRUPT: usize = 5;
// `state` values.
const IDLE: u64 = 0;
const TAKING: u64 = 1;
const HOLDING: u64 = 2;

fn key(id: u64, seq: u64) -> u64 {
    id << 32 | seq
}

/// A file mapped shared, seen as 64-bit atomic words.
struct Shm {
    ptr: *mut u8,
    len: usize,
    _map: MmapMut,
}

impl Shm {
    fn create(path: &Path, len: usize) -> Shm {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(path)
            .unwrap();
        f.set_len(len as u64).unwrap();
        Shm::map(&f)
    }

    fn open(path: &Path) -> Option<Shm> {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .ok()?;
        Some(Shm::map(&f))
    }

    fn map(f: &std::fs::File) -> Shm {
        // SAFETY: the file is ours (the soak's directory); every access
        // goes through atomics, so concurrent writers in other processes
        // are fine.
        let mut map = unsafe { MmapMut::map_mut(f) }.unwrap();
        Shm {
            ptr: map.as_mut_ptr(),
            len: map.len(),
            _map: map,
        }
    }

    fn word(&self, i: usize) -> &AtomicU64 {
        assert!(8 * i + 8 <= self.len);
        // SAFETY: in bounds (checked), 8-byte aligned (the mapping is page
        // aligned), and only ever accessed atomically.
        unsafe { &*(self.ptr.add(8 * i) as *const AtomicU64) }
    }

    /// Word `i` of a producer file's bitmap.
    fn bits(&self, i: usize) -> &AtomicU64 {
        self.word(BITMAP_AT / 8 + i)
    }
}

fn producer_file_len() -> usize {
    BITMAP_AT + (SEQ_CAP / 8) as usize
}

fn max_payload(flavour: &str) -> usize {
    if flavour == "mpmc" { SLOT } else { MAX }
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let flavour: String = var("SOAK_FLAVOUR");
    match flavour.as_str() {
        "spsc" => run_peer::<spsc::Spsc>(&role, &flavour),
        "mpsc" => run_peer::<mpsc::Mpsc>(&role, &flavour),
        "mpmc" => run_peer::<mpmc::Mpmc>(&role, &flavour),
        other => panic!("unknown flavour {other}"),
    }
}

fn run_peer<P: FixedKind>(role: &str, flavour: &str) {
    let dir = PathBuf::from(var::<String>("SOAK_DIR"));
    let ring = mmring::Ring::<P>::open(dir.join("ring")).unwrap();
    let ctl = Shm::open(&dir.join("ctl")).unwrap();
    let max = max_payload(flavour);
    match role {
        "producer" => {
            let id: u64 = var("SOAK_ID");
            let me = Shm::open(&dir.join(format!("p{id}"))).unwrap();
            let mut tx = ring.producer().unwrap();
            for seq in 0..SEQ_CAP {
                let k = key(id, seq);
                loop {
                    if ctl.word(0).load(Acquire) != 0 {
                        return;
                    }
                    match tx.reserve_timeout(frame_len(k, max), Duration::from_millis(100)) {
                        Ok(mut g) => {
                            fill_frame(k, &mut g);
                            g.commit();
                            break;
                        }
                        Err(SendError::Timeout) => {}
                        // The consumer died and the ring is full: wait for
                        // its successor.
                        Err(SendError::Disconnected) => {
                            std::thread::sleep(Duration::from_millis(2))
                        }
                        Err(e) => panic!("producer {id}: {e}"),
                    }
                }
                // ORDERING: Release; read by the parent after we are gone.
                me.word(0).store(seq + 1, Release);
            }
        }
        "consumer" => {
            let n: u64 = var("SOAK_N");
            let me = Shm::open(&dir.join(format!("c{n}"))).unwrap();
            let mut rx = ring.consumer().unwrap();
            let mut maps: HashMap<u64, Option<Shm>> = HashMap::new();
            let mut delivered = 0u64;
            loop {
                // ORDERING: Relaxed throughout for our own words: the parent
                // reads them after we die (the kernel orders that), or as
                // progress hints.
                me.word(C_STATE).store(TAKING, Relaxed);
                match rx.recv_timeout(Duration::from_millis(100)) {
                    Ok(g) => {
                        let k = if g.len() >= 8 {
                            u64::from_le_bytes(g[..8].try_into().unwrap())
                        } else {
                            u64::MAX
                        };
                        // In hand first (checking the frame takes a while),
                        // then checked.
                        me.word(C_IN_HAND).store(k, Relaxed);
                        me.word(C_STATE).store(HOLDING, Relaxed);
                        let (id, seq) = (k >> 32, k & 0xffff_ffff);
                        if seq >= SEQ_CAP || check_frame(k, &g, max).is_err() {
                            me.word(C_CORRUPT).fetch_add(1, Relaxed);
                            continue;
                        }
                        let Some(bits) = &*maps.entry(id).or_insert_with(|| {
                            Shm::open(&dir.join(format!("p{id}")))
                                .filter(|s| s.len == producer_file_len())
                        }) else {
                            me.word(C_CORRUPT).fetch_add(1, Relaxed);
                            continue;
                        };
                        let bit = 1u64 << (seq % 64);
                        // ORDERING: AcqRel; two consumers recording the same
                        // key must see each other's bit.
                        let old = bits.bits((seq / 64) as usize).fetch_or(bit, AcqRel);
                        if old & bit != 0 {
                            let which = if delivered == 0 {
                                C_DUP_FIRST
                            } else {
                                C_DUP_OTHER
                            };
                            me.word(which).fetch_add(1, Relaxed);
                        }
                        delivered += 1;
                        me.word(C_DELIVERED).store(delivered, Relaxed);
                        drop(g);
                        me.word(C_STATE).store(IDLE, Relaxed);
                    }
                    Err(RecvError::Timeout) => {}
                    Err(RecvError::Disconnected) => {
                        // No producer now: between a kill and a restart, or
                        // at the end once every producer has left.
                        if ctl.word(1).load(Acquire) != 0 {
                            me.word(C_STATE).store(IDLE, Relaxed);
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => {
                        eprintln!("soak consumer {n}: {e}");
                        me.word(C_CORRUPT).fetch_add(1, Relaxed);
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
}

/// xorshift64*: the kill schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn soak_secs() -> u64 {
    match std::env::var("MMRING_SOAK_SECS") {
        Ok(s) => s.parse().expect("MMRING_SOAK_SECS: whole seconds"),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => 60,
        Err(_) => 10,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Producer(u64),
    Consumer(u64),
}

struct Party {
    peer: Peer,
    kind: Kind,
}

/// Removes the soak's directory when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct Soak {
    flavour: &'static str,
    dir: PathBuf,
    next_id: u64,
    /// Every producer incarnation's id and file.
    producers: Vec<(u64, Shm)>,
    /// Every consumer incarnation's id and status file.
    consumers: Vec<(u64, Shm)>,
}

impl Soak {
    fn spawn(&mut self, producer: bool) -> Party {
        let n = self.next_id;
        self.next_id += 1;
        let env = vec![
            ("SOAK_DIR", self.dir.display().to_string()),
            ("SOAK_FLAVOUR", self.flavour.to_string()),
            (if producer { "SOAK_ID" } else { "SOAK_N" }, n.to_string()),
        ];
        let kind = if producer {
            self.producers.push((
                n,
                Shm::create(&self.dir.join(format!("p{n}")), producer_file_len()),
            ));
            Kind::Producer(n)
        } else {
            self.consumers
                .push((n, Shm::create(&self.dir.join(format!("c{n}")), 4096)));
            Kind::Consumer(n)
        };
        let role = if producer { "producer" } else { "consumer" };
        Party {
            peer: spawn_peer(role, &env),
            kind,
        }
    }

    fn delivered(&self) -> u64 {
        self.consumers
            .iter()
            // ORDERING: Relaxed; a progress hint.
            .map(|(_, c)| c.word(C_DELIVERED).load(Relaxed))
            .sum()
    }
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) * p / 100).min(sorted.len() - 1)]
}

fn soak<P: FixedKind>(flavour: &'static str, cfg: Config, producers: usize, consumers: usize) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let secs = soak_secs();
    let seed = std::env::var("MMRING_SOAK_SEED")
        .ok()
        .map(|s| s.parse().expect("MMRING_SOAK_SEED: a number"))
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("soak {flavour} {producers}x{consumers}: {secs} s, seed {seed}");
    let mut rng = Rng(seed);
    let dir = temp_path(&format!("soak-{flavour}"));
    std::fs::create_dir(&dir).unwrap();
    let _cleanup = TempDir(dir.clone());
    let ring = mmring::Ring::<P>::create(dir.join("ring"), cfg).unwrap();
    let ctl = Shm::create(&dir.join("ctl"), 4096);
    let mut s = Soak {
        flavour,
        dir,
        next_id: 0,
        producers: Vec::new(),
        consumers: Vec::new(),
    };
    let mut parties: Vec<Party> = (0..consumers).map(|_| s.spawn(false)).collect();
    parties.extend((0..producers).map(|_| s.spawn(true)));

    let (mut producer_kills, mut consumer_kills) = (0u64, 0u64);
    // mpmc consumers killed inside `recv`: each may have taken a message
    // it never saw.
    let mut unseen_takes = 0u64;
    // mpmc keys a killed consumer held unrecorded.
    let mut dead_in_hand: Vec<u64> = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    let mut recovery: Vec<Duration> = Vec::new();
    let mut pending: Vec<Instant> = Vec::new();
    let mut stalls = 0u64;
    let mut stalled = false;
    let mut last_total = 0u64;
    let mut last_progress = Instant::now();
    let start = Instant::now();
    let end = start + Duration::from_secs(secs);
    while Instant::now() < end {
        let next_kill = Instant::now() + Duration::from_millis(50 + rng.below(451));
        while Instant::now() < next_kill.min(end) {
            std::thread::sleep(Duration::from_millis(1));
            let now = Instant::now();
            let total = s.delivered();
            if total > last_total {
                last_total = total;
                last_progress = now;
                stalled = false;
                recovery.extend(pending.drain(..).map(|t| now - t));
            } else if now - last_progress > STALL && !stalled {
                stalled = true;
                stalls += 1;
                println!(
                    "soak {flavour}: STALL at {:?}: {:?}",
                    now - start,
                    ring.stat()
                );
            }
            // Parties that ended by themselves: a producer at SEQ_CAP exits
            // cleanly and is replaced; anything else is a failure.
            for p in parties.iter_mut() {
                if let Some(status) = p.peer.child.try_wait().unwrap() {
                    let producer = matches!(p.kind, Kind::Producer(_));
                    if !(producer && status.success()) {
                        failures.push(format!("{} ended with {status}", p.peer.name));
                    }
                    *p = s.spawn(producer);
                }
            }
        }
        if Instant::now() >= end {
            break;
        }
        let victim = rng.below(parties.len() as u64) as usize;
        let p = &mut parties[victim];
        p.peer.kill9();
        pending.push(Instant::now());
        let producer = match p.kind {
            Kind::Producer(_) => {
                producer_kills += 1;
                true
            }
            Kind::Consumer(n) => {
                consumer_kills += 1;
                let st = &s.consumers.iter().find(|(id, _)| *id == n).unwrap().1;
                // ORDERING: Relaxed; the writer is dead.
                match st.word(C_STATE).load(Relaxed) {
                    TAKING if flavour == "mpmc" => unseen_takes += 1,
                    HOLDING if flavour == "mpmc" => {
                        dead_in_hand.push(st.word(C_IN_HAND).load(Relaxed))
                    }
                    _ => {}
                }
                false
            }
        };
        *p = s.spawn(producer);
    }
    // Stop: producers first (they finish their frame and leave), then the
    // consumers, once they have drained the ring.
    ctl.word(0).store(1, Release);
    let (mut prods, cons): (Vec<Party>, Vec<Party>) = parties
        .into_iter()
        .partition(|p| matches!(p.kind, Kind::Producer(_)));
    for p in prods.drain(..) {
        p.peer.join();
    }
    ctl.word(1).store(1, Release);
    for c in cons {
        c.peer.join();
    }
    let elapsed = start.elapsed();

    // Accounting.
    let mut missing: Vec<u64> = Vec::new();
    let mut beyond = 0u64;
    for (id, f) in &s.producers {
        let id = *id;
        // ORDERING: Acquire; the writer is gone.
        let committed = f.word(0).load(Acquire);
        for w in 0..(SEQ_CAP / 64) as usize {
            let bits = f.bits(w).load(Acquire);
            let base = w as u64 * 64;
            if base > committed && bits == 0 {
                break;
            }
            for b in 0..64 {
                let seq = base + b;
                let set = bits & (1 << b) != 0;
                if seq < committed && !set {
                    missing.push(key(id, seq));
                } else if seq > committed && set {
                    // Beyond the one frame a killed producer may have
                    // committed without counting it.
                    beyond += 1;
                }
            }
        }
    }
    let total_missing = missing.len() as u64;
    missing.retain(|k| !dead_in_hand.contains(k));
    let identified = total_missing - missing.len() as u64;
    let unidentified = unseen_takes.min(missing.len() as u64);
    let lost = missing.len() as u64 - unidentified;
    let sum = |w: usize| -> u64 {
        s.consumers
            .iter()
            // ORDERING: Relaxed; everyone is gone.
            .map(|(_, c)| c.word(w).load(Relaxed))
            .sum()
    };
    let delivered = sum(C_DELIVERED);
    let (redelivered, duplicated) = if flavour == "mpmc" {
        (0, sum(C_DUP_FIRST) + sum(C_DUP_OTHER))
    } else {
        (sum(C_DUP_FIRST), sum(C_DUP_OTHER))
    };
    let corrupt = sum(C_CORRUPT) + beyond;
    recovery.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "soak {flavour} {producers}x{consumers}: {:.1} s, seed {seed}: kills {} \
         ({producer_kills} producers, {consumer_kills} consumers), delivered {delivered}, \
         lost {lost}, duplicated {duplicated}, redelivered {redelivered}, \
         delivered to a dead consumer {} ({identified} identified), corrupt {corrupt}, \
         stalls {stalls}, recovery p50 {:.1} ms p99 {:.1} ms max {:.1} ms, \
         recoveries by the ring {}",
        elapsed.as_secs_f64(),
        producer_kills + consumer_kills,
        identified + unidentified,
        ms(percentile(&recovery, 50)),
        ms(percentile(&recovery, 99)),
        ms(recovery.last().copied().unwrap_or_default()),
        ring.stat().recoveries,
    );
    assert!(failures.is_empty(), "parties failed: {failures:?}");
    assert!(delivered > 0, "nothing delivered");
    assert!(
        producer_kills + consumer_kills > 0 || secs == 0,
        "nobody was killed"
    );
    assert_eq!(
        lost,
        0,
        "lost messages (first: {:x?})",
        &missing[..missing.len().min(10)]
    );
    assert_eq!(duplicated, 0, "duplicated messages");
    assert_eq!(corrupt, 0, "corrupt messages");
    assert_eq!(stalls, 0, "stalls over {STALL:?}");
}

#[test]
fn soak_spsc_1x1() {
    soak::<spsc::Spsc>("spsc", Config::new(1 << 16).max_frame(MAX as u64), 1, 1);
}

#[test]
fn soak_mpsc_3x1() {
    soak::<mpsc::Mpsc>("mpsc", Config::new(1 << 16).max_frame(MAX as u64), 3, 1);
}

#[test]
fn soak_mpmc_2x2() {
    soak::<mpmc::Mpmc>("mpmc", Config::slots(256, SLOT as u64), 2, 2);
}
