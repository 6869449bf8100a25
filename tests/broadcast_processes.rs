//! Broadcast between real processes: one publisher and four subscriber
//! processes on a named ring, self-checking frames of random length; the
//! three fast subscribers see every frame, the deliberately slow one
//! reports lags whose sizes add up exactly, and nobody ever gets a torn
//! frame. Then the publisher is killed (`kill -9`, at crash points inside
//! a publication): subscribers get `Disconnected` and never the torn
//! frame; a new publisher continues the sequence and they follow it.
//!
//! `MMRING_BCAST_FRAMES` scales the first test (default 1,000,000 frames).

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use mmring::{Config, PeerState, RecvError, broadcast};

/// Largest frame (lengths are 16..=MAX, from the sequence number).
const MAX: usize = 512;

/// The heavy tests each occupy both cores; run them one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

/// Where fast subscribers report how far they got, so the publisher can
/// keep within the ring's reach of them (broadcast itself never waits:
/// this pacing is the test's, to make "sees every frame" testable on a
/// 2-core machine where a subscriber can be descheduled for milliseconds).
struct Progress {
    map: memmap2::MmapMut,
}

impl Progress {
    fn create(path: &std::path::Path) {
        let f = std::fs::File::create(path).unwrap();
        f.set_len(4096).unwrap();
    }

    fn open(path: &std::path::Path) -> Progress {
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        // SAFETY: a test file of ours, 4096 bytes, accessed only through
        // the atomics below.
        let map = unsafe { memmap2::MmapMut::map_mut(&f).unwrap() };
        Progress { map }
    }

    fn slot(&self, i: usize) -> &AtomicU64 {
        assert!(i < 8);
        // SAFETY: 64-byte aligned slots inside the 4096-byte mapping, only
        // ever accessed atomically.
        unsafe { &*self.map.as_ptr().add(64 * i).cast::<AtomicU64>() }
    }
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let ring = broadcast::Ring::open(var::<String>("MMRING_PATH")).expect("open");
    match role.as_str() {
        "publisher" => publisher(ring),
        "subscriber" => subscriber(ring),
        other => panic!("unknown role {other}"),
    }
}

fn publisher(ring: broadcast::Ring) {
    let frames: u64 = var("MMRING_FRAMES");
    let fast: usize = var("MMRING_FAST");
    let window: u64 = var("MMRING_WINDOW");
    let progress =
        (fast > 0).then(|| Progress::open(std::path::Path::new(&var::<String>("MMRING_PROGRESS"))));
    let mut tx = ring.publisher().expect("publisher");
    let from = tx.next_seq();
    say(format!("from {from}"));
    let mut buf = vec![0u8; MAX];
    for seq in from..frames {
        if let Some(p) = &progress {
            // Keep within `window` frames of the slowest fast subscriber.
            loop {
                let min = (0..fast)
                    .map(|i| p.slot(i).load(Ordering::Acquire))
                    .min()
                    .unwrap();
                if seq < min + window {
                    break;
                }
                std::thread::yield_now();
            }
        }
        let len = frame_len(seq, MAX);
        assert_eq!(tx.next_seq(), seq);
        if seq % 2 == 0 {
            fill_frame(seq, &mut buf[..len]);
            tx.send(&buf[..len]).unwrap();
        } else {
            let mut g = tx.try_reserve(MAX).unwrap();
            fill_frame(seq, &mut g[..len]);
            g.commit_len(len).unwrap();
        }
    }
    say("done");
}

fn subscriber(ring: broadcast::Ring) {
    let id: usize = var("MMRING_ID");
    let slow: bool = var::<u8>("MMRING_SLOW") == 1;
    let progress = std::env::var("MMRING_PROGRESS")
        .ok()
        .map(|p| Progress::open(std::path::Path::new(&p)));
    let mut rx = ring.subscriber().expect("subscriber");
    say(format!("ready {}", rx.next_seq()));
    let (mut delivered, mut lagged, mut lags) = (0u64, 0u64, 0u64);
    loop {
        match rx.recv() {
            Ok(f) => {
                if let Err(e) = check_frame(f.seq(), &f, MAX) {
                    say(format!("torn {e}"));
                    panic!("{e}");
                }
                delivered += 1;
                if !slow && let Some(p) = &progress {
                    p.slot(id).store(f.seq() + 1, Ordering::Release);
                }
                if slow && delivered % 64 == 0 {
                    std::thread::sleep(Duration::from_micros(500));
                }
            }
            Err(RecvError::Lagged(n)) => {
                lagged += n;
                lags += 1;
            }
            Err(RecvError::Disconnected) => {
                let state = match rx.publisher_state() {
                    PeerState::Died => "died",
                    PeerState::Gone => "gone",
                    _ => "other",
                };
                say(format!(
                    "disconnected {delivered} {lagged} {lags} {} {state}",
                    rx.next_seq()
                ));
                // The parent says whether to follow a new publisher.
                if wait_for_parent() != "again" {
                    return;
                }
            }
            Err(e) => panic!("recv: {e:?}"),
        }
    }
}

fn parse(s: &str) -> Vec<u64> {
    s.split_whitespace()
        .filter_map(|w| w.parse().ok())
        .collect()
}

/// 1 publisher, 3 fast and 1 slow subscriber process, a million frames.
#[test]
fn one_publisher_four_subscriber_processes() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let frames: u64 = std::env::var("MMRING_BCAST_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let path = temp_path("bcast-procs");
    let _f = TempFile(path.clone());
    let prog = temp_path("bcast-progress");
    let _g = TempFile(prog.clone());
    Progress::create(&prog);
    let ring = broadcast::Ring::create(&path, Config::new(1 << 20)).unwrap();
    // Records are at most 16 + 512 bytes: the ring holds ~2000 of them;
    // the publisher stays within half of that of the fast subscribers.
    let window = (1 << 20) / (16 + MAX as u64) / 2;
    let env = |id: usize, slow: bool| {
        vec![
            ("MMRING_PATH", path.display().to_string()),
            ("MMRING_ID", id.to_string()),
            ("MMRING_SLOW", u8::from(slow).to_string()),
            ("MMRING_PROGRESS", prog.display().to_string()),
        ]
    };
    let mut subs: Vec<_> = (0..4)
        .map(|i| spawn_peer("subscriber", &env(i, i == 3)))
        .collect();
    for s in &mut subs {
        assert_eq!(s.expect("ready"), "0");
    }
    assert_eq!(
        ring.stat()
            .consumer
            .holders
            .iter()
            .filter(|h| h.alive)
            .count(),
        4
    );
    let start = std::time::Instant::now();
    let mut p = spawn_peer(
        "publisher",
        &[
            ("MMRING_PATH", path.display().to_string()),
            ("MMRING_FRAMES", frames.to_string()),
            ("MMRING_FAST", "3".into()),
            ("MMRING_WINDOW", window.to_string()),
            ("MMRING_PROGRESS", prog.display().to_string()),
        ],
    );
    assert_eq!(p.expect("from"), "0");
    p.expect("done");
    p.join();
    let elapsed = start.elapsed();
    for (i, mut s) in subs.into_iter().enumerate() {
        let v = parse(&s.expect("disconnected"));
        let (delivered, lagged, lags, next) = (v[0], v[1], v[2], v[3]);
        s.send_line("stop");
        s.join();
        assert_eq!(next, frames, "subscriber {i} ends after the last frame");
        assert_eq!(
            delivered + lagged,
            frames,
            "subscriber {i}: every frame delivered or counted lost"
        );
        if i < 3 {
            assert_eq!(lagged, 0, "fast subscriber {i} lagged");
        } else {
            assert!(
                lags > 0 && lagged > 0,
                "the slow subscriber never lagged ({delivered} delivered)"
            );
            eprintln!("slow subscriber: {delivered} delivered, {lagged} lost in {lags} lags");
        }
    }
    eprintln!("{frames} frames to 4 subscriber processes in {elapsed:?}");
}

/// `kill -9` of the publisher inside a publication, at each crash point:
/// claimed (oldest and intent stored, nothing written), written (payload
/// over old frames, not published), published (tail stored, `latest` not).
#[test]
fn publisher_killed_mid_write_then_a_new_one_continues() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    for (point, published) in [
        ("bcast-claimed", false),
        ("bcast-written", false),
        ("bcast-published", true),
    ] {
        let path = temp_path("bcast-kill");
        let _f = TempFile(path.clone());
        // A small ring, so the killed publication overwrites old frames.
        let ring = broadcast::Ring::create(&path, Config::new(1 << 14)).unwrap();
        let env = |id: usize| {
            vec![
                ("MMRING_PATH", path.display().to_string()),
                ("MMRING_ID", id.to_string()),
                ("MMRING_SLOW", "0".to_string()),
            ]
        };
        let mut subs: Vec<_> = (0..2).map(|i| spawn_peer("subscriber", &env(i))).collect();
        for s in &mut subs {
            s.expect("ready");
        }
        let dies_at = 3000u64; // the 3000th publication: frame 2999
        let pub_env = |frames: u64| {
            vec![
                ("MMRING_PATH", path.display().to_string()),
                ("MMRING_FRAMES", frames.to_string()),
                ("MMRING_FAST", "0".into()),
                ("MMRING_WINDOW", "0".into()),
            ]
        };
        let mut env1 = pub_env(10_000);
        env1.push(("MMRING_KILL_AT", format!("{point}:{dies_at}")));
        let mut p = spawn_peer("publisher", &env1);
        assert_eq!(p.expect("from"), "0");
        let status = p.child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            status.signal(),
            Some(9),
            "{point}: the publisher was killed"
        );
        let next = if published { dies_at } else { dies_at - 1 };
        for (i, s) in subs.iter_mut().enumerate() {
            let line = s.expect("disconnected");
            assert!(line.ends_with("died"), "{point}: subscriber {i}: {line}");
            let v = parse(&line);
            assert_eq!(
                v[3], next,
                "{point}: subscriber {i} read up to the last published frame"
            );
            assert_eq!(
                v[0] + v[1],
                next,
                "{point}: subscriber {i}: delivered + lost"
            );
        }
        assert_eq!(ring.stat().producer.state, PeerState::Died);
        let mut p = spawn_peer("publisher", &pub_env(next + 2000));
        assert_eq!(
            p.expect("from"),
            next.to_string(),
            "{point}: the sequence continues"
        );
        // Subscribers follow the new publisher once it holds the role.
        for s in &mut subs {
            s.send_line("again");
        }
        p.expect("done");
        p.join();
        for (i, mut s) in subs.into_iter().enumerate() {
            let line = s.expect("disconnected");
            assert!(line.ends_with("gone"), "{point}: {line}");
            let v = parse(&line);
            assert_eq!(v[3], next + 2000, "{point}: subscriber {i}");
            assert_eq!(v[0] + v[1], next + 2000, "{point}: subscriber {i}");
            s.send_line("stop");
            s.join();
        }
    }
}
