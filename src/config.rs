//! Ring geometry and creation options.

use crate::error::Error;
use crate::layout::{self, Ident, Kind};

/// How to create a ring: its size, largest frame, and file mode.
///
/// ```
/// use mmring::Config;
/// let cfg = Config::new(1 << 16).max_frame(1024).mode(0o640);
/// assert_eq!(cfg.capacity(), 65536);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    capacity: u64,
    max_frame: Option<u64>,
    /// `(slot_count, slot_size)` for slot rings.
    slots: Option<(u64, u64)>,
    mode: u32,
}

impl Config {
    /// A framed ring whose data area holds `capacity_bytes` bytes (a power of
    /// two, at least 64). Frame headers and padding count against it, so a
    /// ring of `n` bytes holds `n / 16` empty frames or one frame of about
    /// `n / 2`. The file or memfd is `4096 + capacity_bytes` long.
    pub const fn new(capacity_bytes: u64) -> Config {
        Config {
            capacity: capacity_bytes,
            max_frame: None,
            slots: None,
            mode: 0o600,
        }
    }

    /// A slot ring ([`mpmc`](crate::mpmc)) of `slot_count` slots (a power of
    /// two, at least 2) each carrying up to `slot_size` bytes. Each slot
    /// takes `16 + slot_size` bytes rounded up to 8 in the data area.
    ///
    /// ```
    /// let ring = mmring::mpmc::Ring::anonymous(mmring::Config::slots(1024, 64))?;
    /// assert_eq!((ring.slot_count(), ring.max_frame()), (1024, 64));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub const fn slots(slot_count: u64, slot_size: u64) -> Config {
        Config {
            capacity: 0,
            max_frame: None,
            slots: Some((slot_count, slot_size)),
            mode: 0o600,
        }
    }

    /// Limits frames to `bytes` of payload. The default and the upper bound
    /// is `capacity / 2 - 8`, which guarantees that a frame of the maximum
    /// size always fits once the ring has drained.
    pub const fn max_frame(mut self, bytes: u64) -> Config {
        self.max_frame = Some(bytes);
        self
    }

    /// Permission bits for a created file (default `0o600`: owner only).
    /// Ignored for anonymous rings.
    pub const fn mode(mut self, mode: u32) -> Config {
        self.mode = mode;
        self
    }

    /// The data area size.
    pub const fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The file mode used at creation.
    pub const fn file_mode(&self) -> u32 {
        self.mode
    }

    /// The identity block this configuration creates, after range checks.
    pub(crate) fn ident(&self, kind: Kind) -> Result<Ident, Error> {
        if self.mode & !0o7777 != 0 {
            return Err(Error::InvalidConfig("mode has bits outside 0o7777"));
        }
        match (kind, self.slots) {
            (Kind::Mpmc, Some((count, size))) => return slot_ident(count, size),
            (Kind::Mpmc, None) => {
                return Err(Error::InvalidConfig(
                    "mpmc rings are sized with Config::slots(count, size)",
                ));
            }
            (_, Some(_)) => {
                return Err(Error::InvalidConfig(
                    "framed rings are sized with Config::new(capacity_bytes)",
                ));
            }
            (_, None) => {}
        }
        let cap = self.capacity;
        if !cap.is_power_of_two() || !(layout::MIN_CAPACITY..=layout::MAX_CAPACITY).contains(&cap) {
            return Err(Error::InvalidConfig(
                "capacity must be a power of two between 64 bytes and 64 GiB",
            ));
        }
        let limit = layout::default_max_frame(cap);
        let max_frame = self.max_frame.unwrap_or(limit);
        if max_frame > limit {
            return Err(Error::InvalidConfig(
                "max_frame must be at most capacity / 2 - 8",
            ));
        }
        Ok(Ident {
            magic: layout::MAGIC,
            version: layout::LAYOUT_VERSION,
            kind: kind as u32,
            flags: layout::NATIVE_FLAGS,
            data_offset: layout::DATA_OFFSET as u32,
            capacity: cap,
            max_frame,
            slot_size: 0,
            reserved: [0; 2],
        })
    }
}

fn slot_ident(count: u64, size: u64) -> Result<Ident, Error> {
    if !count.is_power_of_two() || count < 2 {
        return Err(Error::InvalidConfig(
            "slot count must be a power of two, at least 2",
        ));
    }
    if size == 0 || size > layout::MAX_FRAME_LIMIT {
        return Err(Error::InvalidConfig(
            "slot size must be between 1 byte and 2 GiB",
        ));
    }
    let capacity = count
        .checked_mul(layout::slot_stride(size))
        .filter(|&c| c <= layout::MAX_CAPACITY)
        .ok_or(Error::InvalidConfig("slot ring larger than 64 GiB"))?;
    Ok(Ident {
        magic: layout::MAGIC,
        version: layout::LAYOUT_VERSION,
        kind: Kind::Mpmc as u32,
        flags: layout::NATIVE_FLAGS,
        data_offset: layout::DATA_OFFSET as u32,
        capacity,
        max_frame: size,
        slot_size: size,
        reserved: [0; 2],
    })
}

/// A validated, process-local copy of a ring's geometry. Taken once when the
/// ring is opened; never re-read from shared memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geometry {
    pub kind: Kind,
    /// Data area bytes.
    pub capacity: u64,
    /// Largest payload.
    pub max_frame: u64,
    /// Slots in a slot ring; 0 for framed rings.
    pub slot_count: u64,
}

impl Geometry {
    /// Bytes the file or memfd must have.
    pub fn file_len(&self) -> u64 {
        layout::DATA_OFFSET + self.capacity
    }

    /// Validates an identity block read from a file, in the order that gives
    /// the most specific error first.
    /// `expected` of `None` accepts any kind this build knows.
    pub fn from_ident(id: &Ident, expected: Option<Kind>) -> Result<Geometry, Error> {
        if id.magic != layout::MAGIC {
            return Err(Error::BadMagic { found: id.magic });
        }
        if id.version != layout::LAYOUT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: id.version,
                supported: layout::LAYOUT_VERSION,
            });
        }
        if id.flags != layout::NATIVE_FLAGS {
            return Err(Error::ForeignPlatform {
                found: id.flags,
                expected: layout::NATIVE_FLAGS,
            });
        }
        let found = Kind::from_raw(id.kind);
        let kind = match (found, expected) {
            (Some(k), None) => k,
            (Some(k), Some(e)) if k == e => k,
            (Some(k), Some(expected)) => {
                return Err(Error::WrongKind {
                    found: crate::error::KindName::Known(k),
                    expected,
                });
            }
            (None, Some(expected)) => {
                return Err(Error::WrongKind {
                    found: crate::error::KindName::Unknown(id.kind),
                    expected,
                });
            }
            (None, None) => return Err(Error::UnknownKind { found: id.kind }),
        };
        if u64::from(id.data_offset) != layout::DATA_OFFSET {
            return Err(Error::BadGeometry {
                what: "data offset",
                value: id.data_offset.into(),
            });
        }
        if kind == Kind::Mpmc {
            return Geometry::slots_from_ident(id);
        }
        let cap = id.capacity;
        if !cap.is_power_of_two() || !(layout::MIN_CAPACITY..=layout::MAX_CAPACITY).contains(&cap) {
            return Err(Error::BadGeometry {
                what: "capacity",
                value: cap,
            });
        }
        if id.max_frame > layout::default_max_frame(cap) {
            return Err(Error::BadGeometry {
                what: "max frame",
                value: id.max_frame,
            });
        }
        if id.slot_size != 0 {
            return Err(Error::BadGeometry {
                what: "slot size",
                value: id.slot_size,
            });
        }
        Ok(Geometry {
            kind,
            capacity: cap,
            max_frame: id.max_frame,
            slot_count: 0,
        })
    }

    fn slots_from_ident(id: &Ident) -> Result<Geometry, Error> {
        let size = id.slot_size;
        if size == 0 || size > layout::MAX_FRAME_LIMIT {
            return Err(Error::BadGeometry {
                what: "slot size",
                value: size,
            });
        }
        if id.max_frame != size {
            return Err(Error::BadGeometry {
                what: "max frame",
                value: id.max_frame,
            });
        }
        let stride = layout::slot_stride(size);
        let cap = id.capacity;
        let count = cap / stride;
        if cap > layout::MAX_CAPACITY || cap % stride != 0 || !count.is_power_of_two() || count < 2
        {
            return Err(Error::BadGeometry {
                what: "capacity",
                value: cap,
            });
        }
        Ok(Geometry {
            kind: Kind::Mpmc,
            capacity: cap,
            max_frame: size,
            slot_count: count,
        })
    }

    /// Checks that an existing ring matches what `open_or_create` asked for.
    pub fn matches(&self, requested: &Ident) -> Result<(), Error> {
        for (what, existing, requested) in [
            ("capacity", self.capacity, requested.capacity),
            ("max frame", self.max_frame, requested.max_frame),
        ] {
            if existing != requested {
                return Err(Error::GeometryMismatch {
                    what,
                    existing,
                    requested,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_bounds() {
        assert!(Config::new(64).ident(Kind::Spsc).is_ok());
        assert!(Config::new(1 << 36).ident(Kind::Spsc).is_ok());
        for bad in [0, 32, 100, 1 << 37] {
            assert!(matches!(
                Config::new(bad).ident(Kind::Spsc),
                Err(Error::InvalidConfig(_))
            ));
        }
        assert!(Config::new(64).max_frame(24).ident(Kind::Spsc).is_ok());
        assert!(matches!(
            Config::new(64).max_frame(25).ident(Kind::Spsc),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::new(64).mode(0o10000).ident(Kind::Spsc),
            Err(Error::InvalidConfig(_))
        ));
    }

    #[test]
    fn slot_config_bounds() {
        let id = Config::slots(1024, 64).ident(Kind::Mpmc).unwrap();
        let geo = Geometry::from_ident(&id, Some(Kind::Mpmc)).unwrap();
        assert_eq!(
            (geo.slot_count, geo.max_frame, geo.capacity),
            (1024, 64, 1024 * 80)
        );
        for (count, size) in [(0, 8), (1, 8), (3, 8), (4, 0), (1 << 40, 8)] {
            assert!(matches!(
                Config::slots(count, size).ident(Kind::Mpmc),
                Err(Error::InvalidConfig(_))
            ));
        }
        assert!(matches!(
            Config::new(4096).ident(Kind::Mpmc),
            Err(Error::InvalidConfig(_))
        ));
        assert!(matches!(
            Config::slots(4, 8).ident(Kind::Spsc),
            Err(Error::InvalidConfig(_))
        ));
        let mut bad = id;
        bad.capacity += 8;
        assert!(matches!(
            Geometry::from_ident(&bad, Some(Kind::Mpmc)),
            Err(Error::BadGeometry {
                what: "capacity",
                ..
            })
        ));
    }

    #[test]
    fn ident_validation_order() {
        let good = Config::new(4096).ident(Kind::Spsc).unwrap();
        assert!(Geometry::from_ident(&good, Some(Kind::Spsc)).is_ok());

        let mut id = good;
        id.magic[0] = b'X';
        id.version = 99;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::BadMagic { .. })
        ));
        // A file of the previous layout (version 1) is refused, never misread.
        let mut id = good;
        id.version = 1;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::UnsupportedVersion {
                found: 1,
                supported: 2
            })
        ));
        let mut id = good;
        id.flags ^= layout::FLAG_LITTLE_ENDIAN;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::ForeignPlatform { .. })
        ));
        assert!(matches!(
            Geometry::from_ident(&good, Some(Kind::Mpmc)),
            Err(Error::WrongKind { .. })
        ));
        let mut id = good;
        id.capacity = 4095;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::BadGeometry {
                what: "capacity",
                ..
            })
        ));
        let mut id = good;
        id.max_frame = 4096;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::BadGeometry {
                what: "max frame",
                ..
            })
        ));
    }
}
