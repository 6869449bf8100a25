//! Named ring files, every flavour: race-free creation across processes
//! and threads, permissions, persistence across every process exiting, and
//! reopening.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::model::{KINDS, TestFlavour};
use common::*;
use mmring::mpmc::Mpmc;
use mmring::mpsc::Mpsc;
use mmring::spsc::Spsc;
use mmring::{AnyKind, Config, Kind, RecvError, spsc};

/// The configuration the racers use: 64 KiB of data area for every kind.
fn race_config(kind: Kind) -> Config {
    match kind {
        Kind::Mpmc => Config::slots(1024, 48),
        _ => Config::new(1 << 16),
    }
}

fn race<P: TestFlavour>(path: &str, kind: Kind) {
    // Start together: every racer blocks until the parent says go.
    assert_eq!(wait_for_parent(), "go");
    let ring = P::open_or_create(path.as_ref(), kind, race_config(kind))
        .expect("open_or_create succeeds in every racer");
    say(format!("OPENED {}", ring.capacity()));
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let path: String = var("MMRING_PATH");
    let flavour: String = var("MMRING_FLAVOUR");
    let kind = match std::env::var("MMRING_KIND").as_deref() {
        Ok("mpsc") => Kind::Mpsc,
        Ok("mpmc") => Kind::Mpmc,
        _ => Kind::Spsc,
    };
    match (role.as_str(), flavour.as_str()) {
        ("racer", "spsc") => race::<Spsc>(&path, kind),
        ("racer", "mpsc") => race::<Mpsc>(&path, kind),
        ("racer", "mpmc") => race::<Mpmc>(&path, kind),
        ("racer", "any") => race::<AnyKind>(&path, kind),
        other => panic!("unknown peer {other:?}"),
    }
}

/// Many processes calling `open_or_create` at once end with one file, one
/// initialiser, and every process attached to a valid ring.
fn race_between_processes<P: TestFlavour>(kind: Kind, rounds: u32) {
    let capacity = P::anonymous(kind, race_config(kind)).unwrap().capacity();
    for round in 0..rounds {
        let path = temp_path(&format!("race{round}"));
        let _cleanup = TempFile(path.clone());
        let env = [
            ("MMRING_PATH", path.display().to_string()),
            ("MMRING_FLAVOUR", P::NAME.to_string()),
            ("MMRING_KIND", kind.to_string()),
        ];
        let mut racers: Vec<Peer> = (0..8).map(|_| spawn_peer("racer", &env)).collect();
        for r in &mut racers {
            r.send_line("go");
        }
        let pids: Vec<u32> = racers.iter().map(|r| r.pid()).collect();
        for mut r in racers {
            assert_eq!(r.expect("OPENED"), capacity.to_string());
            r.join();
        }
        // Exactly one of them wrote the header.
        let bytes = std::fs::read(&path).unwrap();
        let creator = u32::from_ne_bytes(bytes[68..72].try_into().unwrap());
        assert!(
            pids.contains(&creator),
            "creator {creator} is one of {pids:?}"
        );
        // And it is a usable ring of the right kind.
        assert_eq!(mmring::kind_of(&path).unwrap(), kind);
        let ring = P::open(&path).unwrap();
        ring.producer().unwrap().send(b"ok").unwrap();
        assert_eq!(&*ring.consumer().unwrap().recv().unwrap(), b"ok");
        // No temporary files were left beside it.
        let dir = path.parent().unwrap();
        let stem = path.file_name().unwrap().to_string_lossy().to_string();
        let leftovers: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(&stem) && *n != stem)
            .collect();
        assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
    }
}

#[test]
fn open_or_create_race_between_processes() {
    race_between_processes::<Spsc>(Kind::Spsc, 5);
    race_between_processes::<Mpsc>(Kind::Mpsc, 1);
    race_between_processes::<Mpmc>(Kind::Mpmc, 1);
    for kind in KINDS {
        race_between_processes::<AnyKind>(kind, 1);
    }
}

fn race_between_threads<P: TestFlavour>(kind: Kind) {
    let path = temp_path("trace");
    let _cleanup = TempFile(path.clone());
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                P::open_or_create(&path, kind, race_config(kind)).unwrap()
            });
        }
    });
    let want = P::anonymous(kind, race_config(kind)).unwrap().capacity();
    assert_eq!(P::open(&path).unwrap().capacity(), want);
}

#[test]
fn open_or_create_race_between_threads() {
    let path = temp_path("trace");
    let _cleanup = TempFile(path.clone());
    let barrier = std::sync::Barrier::new(8);
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| {
                barrier.wait();
                spsc::Ring::open_or_create(&path, Config::new(4096)).unwrap()
            });
        }
    });
    assert_eq!(spsc::Ring::open(&path).unwrap().capacity(), 4096);
    for_every_flavour!(race_between_threads);
}

#[test]
fn created_files_are_private_by_default() {
    let path = temp_path("mode");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(4096)).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let path2 = temp_path("mode2");
    let _cleanup2 = TempFile(path2.clone());
    spsc::Ring::create(&path2, Config::new(4096).mode(0o640)).unwrap();
    let mode = std::fs::metadata(&path2).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o640, 0o640 & !umask());
    // The header page, two pages of attachment table, the data area.
    assert_eq!(std::fs::metadata(&path2).unwrap().len(), 12288 + 4096);

    for kind in KINDS {
        let path = temp_path("mode-kind");
        let _cleanup = TempFile(path.clone());
        <AnyKind as TestFlavour>::create(&path, kind, race_config(kind)).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{kind}");
    }
}

fn umask() -> u32 {
    let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
    rustix::process::umask(old);
    old.bits()
}

fn small(kind: Kind) -> Config {
    match kind {
        Kind::Mpmc => Config::slots(64, 16),
        _ => Config::new(1 << 12),
    }
}

/// A file-backed ring keeps its frames after every handle (and here, the
/// whole mapping) is gone; reopening yields them in order, and a restarted
/// consumer resumes at the last released frame.
fn frames_persist<P: TestFlavour>(kind: Kind) {
    let path = temp_path("persist");
    let _cleanup = TempFile(path.clone());
    {
        let ring = P::create(&path, kind, small(kind)).unwrap();
        let mut tx = ring.producer().unwrap();
        for i in 0..50u32 {
            tx.send(format!("frame {i}").as_bytes()).unwrap();
        }
        let mut rx = ring.consumer().unwrap();
        for i in 0..10u32 {
            assert_eq!(&*rx.recv().unwrap(), format!("frame {i}").as_bytes());
        }
        ring.flush().unwrap();
    }
    let ring = P::open(&path).unwrap();
    let st = ring.stat();
    assert_eq!((st.producer.pid(), st.consumer.pid()), (None, None));
    let mut rx = ring.consumer().unwrap();
    for i in 10..50u32 {
        assert_eq!(&*rx.try_recv().unwrap(), format!("frame {i}").as_bytes());
    }
    assert!(rx.try_recv().is_err());
    // The producer resumes at the last committed frame.
    let mut tx = ring.producer().unwrap();
    tx.send(b"after reopen").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"after reopen");
}

#[test]
fn frames_persist_across_reopen() {
    for_every_flavour!(frames_persist);
}

/// An uncommitted reservation is never seen, even after the producer that
/// made it is gone, and its space is reused by the next producer.
fn uncommitted_never_seen<P: TestFlavour>(kind: Kind) {
    let path = temp_path("uncommitted");
    let _cleanup = TempFile(path.clone());
    let ring = P::create(&path, kind, small(kind)).unwrap();
    {
        let mut tx = ring.producer().unwrap();
        tx.send(b"committed").unwrap();
        let mut g = tx.try_reserve(100.min(ring.max_frame())).unwrap();
        g.fill(0xEE);
        // Not committed: the bytes sit in free space, unpublished, as when
        // a producer dies mid-write.
        drop(g);
    }
    let mut rx = ring.consumer().unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"committed");
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    let mut tx = ring.producer().unwrap();
    tx.send(b"next").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"next");
}

#[test]
fn uncommitted_reservation_is_never_seen() {
    for_every_flavour!(uncommitted_never_seen);
}
