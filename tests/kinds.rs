//! Ring kinds: each fixed flavour refuses the others' files, and the
//! kind-erased `AnyRing` and `kind_of` take any of them (and refuse a kind
//! field they do not know).

mod common;

use std::os::unix::fs::FileExt;

use common::model::{KINDS, TestFlavour};
use common::{TempFile, temp_path};
use mmring::{
    AnyKind, AnyRing, Config, Error, Kind, KindName, RecvError, kind_of, mpmc, mpsc, spsc,
};

fn cfg(kind: Kind) -> Config {
    match kind {
        Kind::Mpmc => Config::slots(16, 8),
        _ => Config::new(4096),
    }
}

#[test]
fn every_kind_pair_is_refused() {
    let t = TempFile(temp_path("kinds"));
    for (make, kind) in [(0, Kind::Spsc), (1, Kind::Mpsc), (2, Kind::Mpmc)] {
        let _ = std::fs::remove_file(&t.0);
        match make {
            0 => drop(spsc::Ring::create(&t.0, Config::new(4096)).unwrap()),
            1 => drop(mpsc::Ring::create(&t.0, Config::new(4096)).unwrap()),
            _ => drop(mpmc::Ring::create(&t.0, Config::slots(16, 8)).unwrap()),
        }
        let results = [
            (Kind::Spsc, spsc::Ring::open(&t.0).err()),
            (Kind::Mpsc, mpsc::Ring::open(&t.0).err()),
            (Kind::Mpmc, mpmc::Ring::open(&t.0).err()),
        ];
        for (as_kind, err) in results {
            if as_kind == kind {
                assert!(err.is_none(), "{kind} opens as itself");
            } else {
                match err {
                    Some(Error::WrongKind { found, expected }) => {
                        assert_eq!(found, KindName::Known(kind));
                        assert_eq!(expected, as_kind);
                    }
                    other => panic!("{kind} opened as {as_kind}: {other:?}"),
                }
            }
        }
    }
}

/// `kind_of` names the kind of every ring file, however it was created,
/// without taking a role.
#[test]
fn kind_of_each_kind() {
    for kind in KINDS {
        let t = TempFile(temp_path("kind-of"));
        let ring = match kind {
            Kind::Spsc => spsc::Ring::create(&t.0, cfg(kind)).map(drop),
            Kind::Mpsc => mpsc::Ring::create(&t.0, cfg(kind)).map(drop),
            _ => mpmc::Ring::create(&t.0, cfg(kind)).map(drop),
        };
        ring.unwrap();
        assert_eq!(kind_of(&t.0).unwrap(), kind);
        let t2 = TempFile(temp_path("kind-of-any"));
        let any = AnyRing::create(&t2.0, kind, cfg(kind)).unwrap();
        assert_eq!(kind_of(&t2.0).unwrap(), kind);
        let st = any.stat();
        assert_eq!((st.producer.attaches, st.consumer.attaches), (0, 0));
    }
}

/// An unknown kind field: `kind_of` and `AnyRing::open` say
/// `UnknownKind`; a fixed flavour says `WrongKind` naming the number.
#[test]
fn unknown_kind_field() {
    const KIND_FIELD: u64 = 12; // docs/FORMAT.md
    for kind in KINDS {
        let t = TempFile(temp_path("unknown-kind"));
        drop(AnyRing::create(&t.0, kind, cfg(kind)).unwrap());
        let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
        f.write_all_at(&77u32.to_ne_bytes(), KIND_FIELD).unwrap();
        assert!(
            matches!(kind_of(&t.0), Err(Error::UnknownKind { found: 77 })),
            "{:?}",
            kind_of(&t.0)
        );
        assert!(matches!(
            AnyRing::open(&t.0),
            Err(Error::UnknownKind { found: 77 })
        ));
        assert!(matches!(
            mpmc::Ring::open(&t.0),
            Err(Error::WrongKind {
                found: KindName::Unknown(77),
                expected: Kind::Mpmc
            })
        ));
    }
}

#[test]
fn kind_of_refuses_what_is_not_a_ring() {
    let t = TempFile(temp_path("not-a-ring"));
    assert!(
        matches!(kind_of(&t.0), Err(Error::Io { .. })),
        "missing file"
    );
    std::fs::write(&t.0, vec![0x42; 8192]).unwrap();
    assert!(matches!(kind_of(&t.0), Err(Error::BadMagic { .. })));
    assert!(matches!(AnyRing::open(&t.0), Err(Error::BadMagic { .. })));
}

/// `AnyRing` opens a ring of each kind, however it was made, and its
/// handles follow that kind's rules: one producer on spsc, many on mpsc and
/// mpmc; one consumer on spsc and mpsc, many on mpmc.
#[test]
fn any_ring_on_each_kind() {
    for kind in KINDS {
        let t = TempFile(temp_path("any"));
        let fixed = <AnyKind as TestFlavour>::create(&t.0, kind, cfg(kind)).unwrap();
        for ring in [
            AnyRing::open(&t.0).unwrap(),
            AnyRing::open_or_create(&t.0, kind, cfg(kind)).unwrap(),
            AnyRing::from_fd(fixed.as_fd().try_clone_to_owned().unwrap()).unwrap(),
            AnyRing::anonymous(kind, cfg(kind)).unwrap(),
        ] {
            assert_eq!(ring.kind(), kind);
            assert_eq!(ring.capacity(), fixed.capacity());
            let mut tx = ring.producer().unwrap();
            let mut rx = ring.consumer().unwrap();
            assert_eq!((tx.kind(), rx.kind()), (kind, kind));
            let second_tx = ring.producer();
            let second_rx = ring.consumer();
            assert_eq!(
                second_tx.is_ok(),
                kind != Kind::Spsc,
                "{kind}: second producer"
            );
            assert_eq!(
                second_rx.is_ok(),
                kind == Kind::Mpmc,
                "{kind}: second consumer"
            );
            if kind != Kind::Mpmc {
                assert!(matches!(second_rx, Err(Error::RoleTaken { .. })));
            }
            drop((second_tx, second_rx));
            tx.send(b"any").unwrap();
            tx.try_send_pod(&7u64).unwrap();
            assert_eq!(&*rx.recv().unwrap(), b"any");
            assert_eq!(rx.try_recv().unwrap().as_pod::<u64>(), Ok(&7));
            assert_eq!(rx.try_recv().unwrap_err(), RecvError::Empty);
        }
        // And the fixed flavour reads what AnyRing wrote, through the file.
        let any = AnyRing::open(&t.0).unwrap();
        any.producer().unwrap().send(b"from any").unwrap();
        let got = match kind {
            Kind::Spsc => spsc::Ring::open(&t.0)
                .unwrap()
                .consumer()
                .unwrap()
                .try_recv()
                .unwrap()
                .to_vec(),
            Kind::Mpsc => mpsc::Ring::open(&t.0)
                .unwrap()
                .consumer()
                .unwrap()
                .try_recv()
                .unwrap()
                .to_vec(),
            _ => mpmc::Ring::open(&t.0)
                .unwrap()
                .consumer()
                .unwrap()
                .try_recv()
                .unwrap()
                .to_vec(),
        };
        assert_eq!(got, b"from any");
    }
}

/// `AnyRing::open_or_create` refuses an existing ring of another kind.
#[test]
fn any_ring_open_or_create_checks_the_kind() {
    let t = TempFile(temp_path("any-ooc"));
    drop(spsc::Ring::create(&t.0, Config::new(4096)).unwrap());
    let err = AnyRing::open_or_create(&t.0, Kind::Mpsc, Config::new(4096)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::WrongKind {
                found: KindName::Known(Kind::Spsc),
                expected: Kind::Mpsc
            }
        ),
        "{err:?}"
    );
}
