//! Every kind of bad file or tampered mapping gives its own specific error:
//! never a panic, never an out-of-bounds access, never garbage frames.
//!
//! Offsets come from docs/FORMAT.md, so these tests also pin the format.
//! spsc files are the main subject; the mpsc frame word and the mpmc slot
//! stamps and lengths are tampered with at the end.

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{TempFile, temp_path};
use mmring::{Config, Corruption, Error, Kind, KindName, RecvError, SendError, mpmc, mpsc, spsc};

const VERSION: u64 = 8;
const KIND: u64 = 12;
const FLAGS: u64 = 16;
const CAPACITY: u64 = 24;
const MAX_FRAME: u64 = 32;
const INIT: u64 = 64;
const HEAD: u64 = 128;
const TAIL: u64 = 256;
const DATA: u64 = 12288;

fn ring_file(tag: &str) -> TempFile {
    let path = temp_path(tag);
    spsc::Ring::create(&path, Config::new(4096)).unwrap();
    TempFile(path)
}

fn poke(path: &Path, offset: u64, bytes: &[u8]) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.write_all_at(bytes, offset).unwrap();
}

fn poke_u32(path: &Path, offset: u64, v: u32) {
    poke(path, offset, &v.to_ne_bytes());
}

fn poke_u64(path: &Path, offset: u64, v: u64) {
    poke(path, offset, &v.to_ne_bytes());
}

fn open_err(path: &Path) -> Error {
    spsc::Ring::open(path).expect_err("a bad file must be refused")
}

#[test]
fn empty_file_is_truncated() {
    let t = TempFile(temp_path("empty"));
    std::fs::write(&t.0, b"").unwrap();
    assert!(matches!(
        open_err(&t.0),
        Error::Truncated {
            len: 0,
            needed: DATA
        }
    ));
}

#[test]
fn random_bytes_are_bad_magic() {
    let t = TempFile(temp_path("random"));
    let bytes: Vec<u8> = (0..10_000u64).map(|i| common::mix(i) as u8).collect();
    std::fs::write(&t.0, &bytes).unwrap();
    match open_err(&t.0) {
        Error::BadMagic { found } => assert_eq!(&found[..], &bytes[..8]),
        e => panic!("expected BadMagic, got {e:?}"),
    }
    // Shorter than the magic itself.
    std::fs::write(&t.0, b"MM").unwrap();
    assert!(matches!(open_err(&t.0), Error::Truncated { len: 2, .. }));
    std::fs::write(&t.0, b"xy").unwrap();
    assert!(matches!(open_err(&t.0), Error::BadMagic { .. }));
}

#[test]
fn wrong_magic() {
    let t = ring_file("magic");
    poke(&t.0, 0, b"NOTARING");
    assert!(matches!(
        open_err(&t.0),
        Error::BadMagic { found } if &found == b"NOTARING"
    ));
}

#[test]
fn wrong_version() {
    // A file of an earlier layout (version 1: no claim records, 4 KiB
    // header; version 2: sleepers without the kernel barrier, which this
    // version's wakers rely on; version 3: an spsc consumer that polls
    // `tail` and a producer that writes no terminator; version 4: sleepers
    // that do not arm the futex word, whose wake-ups this version's wakers
    // would skip) is refused, never misread; so is a newer one.
    let t = ring_file("version");
    for version in [1, 2, 3, 4, 6] {
        poke_u32(&t.0, VERSION, version);
        assert!(matches!(
            open_err(&t.0),
            Error::UnsupportedVersion { found, supported: 5 } if found == version
        ));
    }
}

#[test]
fn foreign_platform() {
    let t = ring_file("flags");
    poke_u32(&t.0, FLAGS, 0);
    assert!(matches!(
        open_err(&t.0),
        Error::ForeignPlatform { found: 0, .. }
    ));
}

#[test]
fn uninitialised_header() {
    let t = ring_file("init");
    poke_u32(&t.0, INIT, 0);
    assert!(matches!(open_err(&t.0), Error::Uninitialized { found: 0 }));
}

#[test]
fn wrong_kind_and_unknown_kind() {
    let t = ring_file("kind");
    poke_u32(&t.0, KIND, Kind::Mpmc as u32);
    assert!(matches!(
        open_err(&t.0),
        Error::WrongKind {
            found: KindName::Known(Kind::Mpmc),
            expected: Kind::Spsc
        }
    ));
    poke_u32(&t.0, KIND, 77);
    assert!(matches!(
        open_err(&t.0),
        Error::WrongKind {
            found: KindName::Unknown(77),
            ..
        }
    ));
}

#[test]
fn truncated_file() {
    let t = ring_file("trunc");
    let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    f.set_len(DATA + 100).unwrap();
    assert!(matches!(
        open_err(&t.0),
        Error::Truncated { len, needed } if len == DATA + 100 && needed == DATA + 4096
    ));
    f.set_len(100).unwrap();
    assert!(matches!(
        open_err(&t.0),
        Error::Truncated {
            len: 100,
            needed: DATA
        }
    ));
}

#[test]
fn impossible_geometry() {
    let t = ring_file("geom");
    poke_u64(&t.0, CAPACITY, 3000);
    assert!(matches!(
        open_err(&t.0),
        Error::BadGeometry {
            what: "capacity",
            value: 3000
        }
    ));
    poke_u64(&t.0, CAPACITY, 4096);
    poke_u64(&t.0, MAX_FRAME, 1 << 40);
    assert!(matches!(
        open_err(&t.0),
        Error::BadGeometry {
            what: "max frame",
            ..
        }
    ));
    // A capacity that claims more than the file holds.
    poke_u64(&t.0, MAX_FRAME, 100);
    poke_u64(&t.0, CAPACITY, 1 << 20);
    assert!(matches!(
        open_err(&t.0),
        Error::Truncated { len, needed } if len == DATA + 4096 && needed == DATA + (1 << 20)
    ));
}

#[test]
fn not_a_regular_file() {
    assert!(matches!(
        spsc::Ring::open("/dev/null").unwrap_err(),
        Error::NotRegularFile
    ));
    let fifo = TempFile(temp_path("fifo"));
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &fifo.0,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    assert!(matches!(open_err(&fifo.0), Error::NotRegularFile));
}

#[test]
fn tampered_cursors() {
    let t = ring_file("cursors");
    // head > tail
    poke_u64(&t.0, HEAD, 64);
    poke_u64(&t.0, TAIL, 8);
    assert!(matches!(
        open_err(&t.0),
        Error::Corrupt(Corruption::Cursors {
            head: 64,
            tail: 8,
            ..
        })
    ));
    // tail - head > capacity
    poke_u64(&t.0, HEAD, 0);
    poke_u64(&t.0, TAIL, 8192);
    assert!(matches!(
        open_err(&t.0),
        Error::Corrupt(Corruption::Cursors { tail: 8192, .. })
    ));
    // beyond any reachable position (found by fuzzing: `pos + 1` overflowed)
    poke_u64(&t.0, HEAD, u64::MAX - 7);
    poke_u64(&t.0, TAIL, u64::MAX - 7);
    assert!(matches!(
        open_err(&t.0),
        Error::Corrupt(Corruption::CursorOutOfRange { .. })
    ));
    poke_u64(&t.0, HEAD, 0);
    // misaligned
    poke_u64(&t.0, TAIL, 13);
    assert!(matches!(
        open_err(&t.0),
        Error::Corrupt(Corruption::MisalignedCursor { cursor: 13 })
    ));
}

/// Cursors tampered after the ring was opened are caught when a handle
/// next reads them, with the handle staying where it was.
#[test]
fn cursors_tampered_while_open() {
    let t = ring_file("live-cursors");
    let ring = spsc::Ring::open(&t.0).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"one").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"one");
    // A tail that runs past head + capacity.
    poke_u64(&t.0, TAIL, 1 << 20);
    assert!(matches!(
        rx.try_recv(),
        Err(RecvError::Corrupt(Corruption::Cursors { .. }))
    ));
    assert!(
        matches!(rx.try_recv(), Err(RecvError::Corrupt(_))),
        "the consumer stays at the corrupt spot"
    );
    // A head beyond the producer's tail, seen when the producer must look.
    poke_u64(&t.0, HEAD, 1 << 21);
    let big = vec![0u8; tx.max_frame()];
    let mut sent = 0;
    let err = loop {
        match tx.try_send(&big) {
            Ok(()) => sent += 1,
            Err(e) => break e,
        }
    };
    assert!(sent < 8, "the producer stops once it must trust the head");
    assert!(matches!(err, SendError::Corrupt(_)), "got {err:?}");
}

#[test]
fn tampered_frame_words() {
    let t = ring_file("frames");
    let ring = spsc::Ring::open(&t.0).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.send(&[7u8; 40]).unwrap();
    // Attached after the send, the consumer's view of `tail` covers the
    // frame, so it judges the frame word against what was committed.
    let mut rx = ring.consumer().unwrap();
    let word = |len: u32| ((!len as u64) << 32) | len as u64;

    // Length changed without its check half.
    poke_u64(&t.0, DATA, word(40) ^ 0x8);
    assert!(matches!(
        rx.try_recv(),
        Err(RecvError::Corrupt(Corruption::FrameWord { pos: 0, .. }))
    ));
    // A well-formed word claiming more than max_frame.
    poke_u64(&t.0, DATA, word(4000));
    assert!(matches!(
        rx.try_recv(),
        Err(RecvError::Corrupt(Corruption::FrameTooLong {
            pos: 0,
            len: 4000,
            max: 2040
        }))
    ));
    // A well-formed word claiming more than was committed.
    poke_u64(&t.0, DATA, word(1000));
    assert!(matches!(
        rx.try_recv(),
        Err(RecvError::Corrupt(Corruption::FrameOverrun { pos: 0, .. }))
    ));
    // Restored, the frame reads normally: nothing was lost.
    poke_u64(&t.0, DATA, word(40));
    assert_eq!(&*rx.try_recv().unwrap(), &[7u8; 40]);

    // A consumer that has caught up polls the next frame word without
    // reading `tail` (one cache-line transfer per frame): a word claiming
    // more than was committed is then judged against the lap, not `tail`,
    // and taken. The consumer's next look at `tail` finds it behind what
    // it took, and says so.
    assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
    tx.send(&[8u8; 40]).unwrap();
    poke_u64(&t.0, DATA + 48, word(1000));
    let bogus = rx.try_recv().unwrap();
    assert_eq!(bogus.len(), 1000);
    drop(bogus);
    assert!(
        matches!(
            rx.try_recv(),
            Err(RecvError::Corrupt(
                Corruption::CursorRegressed { .. } | Corruption::Cursors { .. }
            ))
        ),
        "the consumer reports it"
    );
}

/// A padding word written over the terminator at `tail` sends a caught-up
/// consumer (which polls frame words, not `tail`) to the next lap, where
/// the stale frames of the first one lie. It reads `tail` at the start of
/// every lap, finds it behind, and reports the corruption at once: it
/// delivers no stale frame, and stores no `head` past `tail`. (Before, it
/// went round the stale laps for ever, delivering the same frames again.)
#[test]
fn a_padding_word_over_the_terminator_is_caught_at_the_lap() {
    let t = ring_file("padterm");
    let ring = spsc::Ring::open(&t.0).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    for i in 0..3u8 {
        tx.send(&[i; 8]).unwrap();
    }
    for i in 0..3u8 {
        assert_eq!(&*rx.try_recv().unwrap(), &[i; 8]);
    }
    let (head, tail) = (ring.stat().head, ring.stat().tail);
    assert_eq!((head, tail), (48, 48));
    poke_u64(&t.0, DATA + tail, 0x2144_4150_FFFF_FFFF); // "PAD!" padding
    assert!(
        matches!(
            rx.try_recv(),
            Err(RecvError::Corrupt(Corruption::CursorRegressed { .. }))
        ),
        "reported at the lap's first word"
    );
    assert_eq!(ring.stat().head, 48, "no head stored past tail");
    assert!(
        matches!(rx.try_recv(), Err(RecvError::Corrupt(_))),
        "and again"
    );
}

#[test]
fn oversize_frames_are_refused() {
    let ring = spsc::Ring::anonymous(Config::new(4096).max_frame(100)).unwrap();
    let mut tx = ring.producer().unwrap();
    assert_eq!(
        tx.try_reserve(101).unwrap_err(),
        SendError::TooLarge { len: 101, max: 100 }
    );
    assert_eq!(
        tx.send(&[0; 4096]).unwrap_err(),
        SendError::TooLarge {
            len: 4096,
            max: 100
        }
    );
    assert!(tx.try_send(&[0; 100]).is_ok());
}

#[test]
fn geometry_mismatch_on_open_or_create() {
    let t = ring_file("mismatch");
    match spsc::Ring::open_or_create(&t.0, Config::new(8192)) {
        Err(Error::GeometryMismatch {
            what: "capacity",
            existing: 4096,
            requested: 8192,
        }) => {}
        other => panic!("expected GeometryMismatch, got {other:?}"),
    }
    assert!(spsc::Ring::open_or_create(&t.0, Config::new(4096)).is_ok());
}

#[test]
fn invalid_configs() {
    for cfg in [
        Config::new(0),
        Config::new(100),
        Config::new(1 << 40),
        Config::new(4096).max_frame(4096),
    ] {
        assert!(matches!(
            spsc::Ring::anonymous(cfg),
            Err(Error::InvalidConfig(_))
        ));
    }
}

#[test]
fn create_refuses_existing_path() {
    let t = ring_file("exists");
    match spsc::Ring::create(&t.0, Config::new(4096)) {
        Err(Error::Io { source, .. }) => {
            assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists)
        }
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    // A non-ring file at the path is not clobbered either.
    let other = TempFile(temp_path("plain"));
    std::fs::write(&other.0, b"precious").unwrap();
    assert!(spsc::Ring::create(&other.0, Config::new(4096)).is_err());
    assert_eq!(std::fs::read(&other.0).unwrap(), b"precious");
}

/// A peer holding an anonymous ring's fd cannot shrink it under our
/// mapping (which would turn the next access into SIGBUS), nor grow it:
/// the memfd is sealed.
#[test]
fn anonymous_rings_cannot_be_truncated() {
    let ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let fd = ring.as_fd().try_clone_to_owned().unwrap();
    let file = std::fs::File::from(fd);
    for len in [0, 100, 4096, 1 << 20] {
        let err = file.set_len(len).unwrap_err();
        assert_eq!(
            err.raw_os_error(),
            Some(rustix::io::Errno::PERM.raw_os_error())
        );
    }
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"still fine").unwrap();
    assert_eq!(&*rx.recv().unwrap(), b"still fine");
}

#[test]
fn mpmc_tampered_stamps_and_lengths() {
    const STRIDE: u64 = 64; // slot header + 8-byte payload, padded to a cache line
    let t = TempFile(temp_path("stamps"));
    let ring = mpmc::Ring::create(&t.0, Config::slots(4, 8)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(b"ok").unwrap();
    // A stamp from the future on the slot the consumer would take next.
    poke_u64(&t.0, DATA, 1000);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::Stamp {
            pos: 0,
            stamp: 1000
        })
    );
    poke_u64(&t.0, DATA, 1);
    assert_eq!(&*rx.try_recv().unwrap(), b"ok");
    // A length beyond the slot: reported, and the slot is given back.
    tx.send(b"x").unwrap();
    poke_u32(&t.0, DATA + STRIDE + 8, 9);
    assert_eq!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::Slot {
            pos: 1,
            len: 9,
            flags: 0
        })
    );
    tx.send(b"after").unwrap();
    assert_eq!(&*rx.try_recv().unwrap(), b"after");
    // Cursors beyond any reachable position are refused, not overflowed.
    drop((tx, rx, ring));
    poke_u64(&t.0, 128, u64::MAX);
    poke_u64(&t.0, 256, u64::MAX);
    assert!(matches!(
        mpmc::Ring::open(&t.0).unwrap_err(),
        Error::Corrupt(Corruption::CursorOutOfRange { cursor: u64::MAX })
    ));
    poke_u64(&t.0, 128, 3);
    poke_u64(&t.0, 256, 3);
    let ring = mpmc::Ring::open(&t.0).unwrap();
    let mut tx = ring.producer().unwrap();
    // A stamp from the future where the producer claims next (position 3).
    poke_u64(&t.0, DATA + 3 * STRIDE, 100);
    assert_eq!(
        tx.try_send(b"y").unwrap_err(),
        SendError::Corrupt(Corruption::Stamp { pos: 3, stamp: 100 })
    );
}

#[test]
fn mpsc_tampered_frame_word() {
    let t = TempFile(temp_path("mpsc-word"));
    let ring = mpsc::Ring::create(&t.0, Config::new(4096)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(&[5; 16]).unwrap();
    poke_u64(&t.0, DATA, 0x1234_5678_0000_0010);
    assert!(matches!(
        rx.try_recv().unwrap_err(),
        RecvError::Corrupt(Corruption::FrameWord { pos: 0, .. })
    ));
}

/// The header checks hold for every flavour: each tampered field gives
/// its own error, whether the file is opened as its own kind or through
/// `AnyRing`.
fn header_errors<P: common::model::TestFlavour>(kind: Kind) {
    let cfg = match kind {
        Kind::Mpmc => Config::slots(16, 8),
        _ => Config::new(4096),
    };
    let t = TempFile(temp_path("hdr"));
    let fresh = || {
        let _ = std::fs::remove_file(&t.0);
        drop(P::create(&t.0, kind, cfg).unwrap());
    };
    let err = || P::open(&t.0).expect_err("a bad file must be refused");

    fresh();
    poke(&t.0, 0, b"NOTARING");
    assert!(
        matches!(err(), Error::BadMagic { found } if &found == b"NOTARING"),
        "{kind}"
    );
    fresh();
    poke_u32(&t.0, VERSION, 1);
    assert!(matches!(
        err(),
        Error::UnsupportedVersion {
            found: 1,
            supported: 5
        }
    ));
    fresh();
    poke_u32(&t.0, FLAGS, 0);
    assert!(matches!(err(), Error::ForeignPlatform { found: 0, .. }));
    fresh();
    poke_u32(&t.0, INIT, 0);
    assert!(matches!(err(), Error::Uninitialized { found: 0 }));
    fresh();
    let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    f.set_len(100).unwrap();
    assert!(
        matches!(
            err(),
            Error::Truncated {
                len: 100,
                needed: DATA
            }
        ),
        "{kind}"
    );
    fresh();
    // Cursors beyond any reachable position.
    poke_u64(&t.0, HEAD, u64::MAX - 7);
    poke_u64(&t.0, TAIL, u64::MAX - 7);
    assert!(
        matches!(err(), Error::Corrupt(Corruption::CursorOutOfRange { .. })),
        "{kind}: {:?}",
        err()
    );
    fresh();
    assert!(P::open(&t.0).is_ok(), "{kind}: a fresh file opens");
}

#[test]
fn header_errors_for_every_flavour() {
    common::for_every_flavour!(header_errors);
}

/// A corrupt message after good ones ends a receive batch early, and the
/// next call reports it; the blocking iterator ends there too.
#[test]
fn corrupt_frame_ends_a_batch_early() {
    let t = TempFile(temp_path("batch-corrupt"));
    let ring = mpsc::Ring::create(&t.0, Config::new(4096)).unwrap();
    let mut tx = ring.producer().unwrap();
    let mut rx = ring.consumer().unwrap();
    tx.send(&[1; 8]).unwrap(); // frame at 0, 16 bytes
    tx.send(&[2; 8]).unwrap(); // frame at 16
    tx.send(&[3; 8]).unwrap();
    poke_u64(&t.0, DATA + 16, 0x1234_5678_0000_0008);
    let mut got = Vec::new();
    assert_eq!(rx.try_recv_batch(10, |f| got.push(f[0])), Ok(1));
    assert_eq!(got, [1]);
    assert!(matches!(
        rx.try_recv_batch(10, |_| {}),
        Err(RecvError::Corrupt(Corruption::FrameWord { pos: 16, .. }))
    ));
    drop(tx); // so that iter cannot block, whatever it does
    assert_eq!(rx.iter().count(), 0, "iter ends at the corrupt frame");
    assert!(matches!(rx.try_recv(), Err(RecvError::Corrupt(_))));
}
