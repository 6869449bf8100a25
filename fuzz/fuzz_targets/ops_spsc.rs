//! Arbitrary operation sequences on an spsc ring (one producer, one consumer), or on an `AnyRing`
//! of that kind, against the one model the tests also run
//! (`tests/common/model.rs`, included below): every committed message comes
//! out once, in claim order, intact; aborted reservations never appear;
//! fullness, emptiness and the length hints are exact; restarts and
//! reattaching by fd lose nothing.
#![no_main]

#[path = "../../tests/common/model.rs"]
mod model;

use libfuzzer_sys::fuzz_target;
use mmring::{AnyRing, Kind, spsc};

fuzz_target!(|data: &[u8]| {
    let (shape, size, ops) = model::decode(data);
    let cfg = model::small_config(Kind::Spsc, shape, size);
    if shape & 0x80 == 0 {
        model::run(spsc::Ring::anonymous(cfg).unwrap(), &ops);
    } else {
        model::run(AnyRing::anonymous(Kind::Spsc, cfg).unwrap(), &ops);
    }
});
