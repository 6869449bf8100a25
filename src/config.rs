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
    trust: Trust,
}

/// Which existing ring files to trust when opening one by path: the
/// opt-ins for files that another user could have planted, can write, or
/// that are reached through a symbolic link.
///
/// By default a file is trusted only when it is owned by the caller's
/// effective uid or by root and is writable by neither its group nor
/// others, and a symbolic link at the path is refused. The checks are made
/// with `fstat` on the opened descriptor (never on the path, which could be
/// swapped between check and use), and the last path component is opened
/// with `O_NOFOLLOW`. Directories above it are not checked.
///
/// ```
/// use mmring::{Config, Trust};
/// // A ring deliberately shared with the service account 1001, mode 0660.
/// let trust = Trust::new().allow_owner(1001).allow_shared_mode();
/// let cfg = Config::new(1 << 16).mode(0o660).allow_owner(1001).allow_shared_mode();
/// assert_eq!(cfg.trust(), trust);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Trust {
    owner: Option<u32>,
    shared_mode: bool,
    symlink: bool,
}

impl Trust {
    /// The default: own or root's files, not group- or other-writable, no
    /// symbolic link at the path.
    pub const fn new() -> Trust {
        Trust {
            owner: None,
            shared_mode: false,
            symlink: false,
        }
    }

    /// Also trust files owned by `uid` (one further owner; a second call
    /// replaces the first). Anyone who can act as `uid` can then hand you a
    /// ring, and read what you write to it.
    pub const fn allow_owner(mut self, uid: u32) -> Trust {
        self.owner = Some(uid);
        self
    }

    /// Accept files writable by their group or by others (a ring shared
    /// between users on purpose, e.g. created with mode `0o666`). Anyone
    /// with write access can then read and inject frames, and truncate the
    /// file (which mmring survives, see
    /// [`Corruption::Truncated`](crate::Corruption::Truncated)).
    pub const fn allow_shared_mode(mut self) -> Trust {
        self.shared_mode = true;
        self
    }

    /// Follow a symbolic link at the path instead of refusing it with
    /// [`Error::Symlink`]. The file it leads to is still checked.
    pub const fn allow_symlink(mut self) -> Trust {
        self.symlink = true;
        self
    }

    /// Whether a symbolic link at the path is followed.
    pub(crate) const fn follows_symlinks(&self) -> bool {
        self.symlink
    }

    /// Applies the rule to an opened file's owner and mode: `Ok` if trusted,
    /// else the error naming `path`.
    pub(crate) fn check(
        &self,
        path: &std::path::Path,
        uid: u32,
        mode: u32,
        euid: u32,
    ) -> Result<(), Error> {
        let owner_ok = uid == euid || uid == 0 || self.owner == Some(uid);
        let mode_ok = self.shared_mode || mode & 0o022 == 0;
        if owner_ok && mode_ok {
            Ok(())
        } else {
            Err(Error::ForeignOwner {
                path: path.to_owned(),
                uid,
                mode: mode & 0o7777,
            })
        }
    }
}

impl Config {
    /// A framed ring whose data area holds `capacity_bytes` bytes (a power of
    /// two, at least 64). Frame headers and padding count against it, so a
    /// ring of `n` bytes holds `n / 16` empty frames or one frame of about
    /// `n / 2`. The file or memfd is `12288 + capacity_bytes` long (the
    /// header page and two pages of attachment table first).
    pub const fn new(capacity_bytes: u64) -> Config {
        Config {
            capacity: capacity_bytes,
            max_frame: None,
            slots: None,
            mode: 0o600,
            trust: Trust::new(),
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
            trust: Trust::new(),
        }
    }

    /// Limits frames to `bytes` of payload. The default and the upper bound
    /// is `capacity / 2 - 8`, which guarantees that a frame of the maximum
    /// size always fits once the ring has drained.
    pub const fn max_frame(mut self, bytes: u64) -> Config {
        self.max_frame = Some(bytes);
        self
    }

    /// Permission bits for a created file (default `0o600`: owner only),
    /// applied exactly: the process's umask does not cut them. Ignored for
    /// anonymous rings. A group- or other-writable ring is opened by others
    /// only with [`Config::allow_shared_mode`].
    pub const fn mode(mut self, mode: u32) -> Config {
        self.mode = mode;
        self
    }

    /// When the ring already exists (`open_or_create`), also trust it if
    /// owned by `uid`. See [`Trust::allow_owner`].
    pub const fn allow_owner(mut self, uid: u32) -> Config {
        self.trust = self.trust.allow_owner(uid);
        self
    }

    /// When the ring already exists (`open_or_create`), accept it even if
    /// group- or other-writable. See [`Trust::allow_shared_mode`].
    pub const fn allow_shared_mode(mut self) -> Config {
        self.trust = self.trust.allow_shared_mode();
        self
    }

    /// Follow a symbolic link at the path (`open_or_create`). See
    /// [`Trust::allow_symlink`].
    pub const fn allow_symlink(mut self) -> Config {
        self.trust = self.trust.allow_symlink();
        self
    }

    /// Which existing files this configuration trusts.
    pub const fn trust(&self) -> Trust {
        self.trust
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
        let limit = layout::max_frame_limit(kind, cap);
        let max_frame = self.max_frame.unwrap_or(limit);
        if max_frame > limit {
            return Err(Error::InvalidConfig(if kind == Kind::Broadcast {
                "max_frame must be at most capacity / 4 - 16 on a broadcast ring"
            } else {
                "max_frame must be at most capacity / 2 - 8"
            }));
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
            ring_id: new_ring_id(),
        })
    }
}

/// 128 random bits from the kernel (`getrandom`), never all zero.
fn new_ring_id() -> [u64; 2] {
    let mut b = [0u8; 16];
    // The kernel's pool is ready once the system is up; should the call
    // fail anyway, the time and the pid still tell rings apart (the id is
    // a name, and `notify.rs` adds a nonce per socket).
    if rustix::rand::getrandom(&mut b[..], rustix::rand::GetRandomFlags::empty()) != Ok(16) {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        b[..16].copy_from_slice(&(t ^ (u128::from(std::process::id()) << 96)).to_le_bytes());
    }
    let id = [
        u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
        u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
    ];
    if id == [0, 0] { [1, 0] } else { id }
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
        ring_id: new_ring_id(),
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
    /// The ring's identity ([`Ident::ring_id`]).
    pub ring_id: [u64; 2],
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
        // Byte order and word size first: a file from a big-endian creator
        // reads its version 1 as 16777216, which would blame the version.
        if id.flags != layout::NATIVE_FLAGS {
            return Err(Error::ForeignPlatform {
                found: id.flags,
                expected: layout::NATIVE_FLAGS,
            });
        }
        if id.version != layout::LAYOUT_VERSION {
            return Err(Error::UnsupportedVersion {
                found: id.version,
                supported: layout::LAYOUT_VERSION,
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
        if id.max_frame > layout::max_frame_limit(kind, cap) {
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
            ring_id: id.ring_id,
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
            ring_id: id.ring_id,
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

    /// The flags word of a creator of the other byte order, as we read it.
    fn flags_of_other_endian() -> u32 {
        (layout::NATIVE_FLAGS ^ layout::FLAG_LITTLE_ENDIAN).swap_bytes()
    }

    #[test]
    fn trust_rule() {
        let p = std::path::Path::new("/dev/shm/x");
        let t = Trust::new();
        assert!(t.check(p, 1000, 0o600, 1000).is_ok());
        assert!(t.check(p, 0, 0o644, 1000).is_ok());
        for (uid, mode) in [(1001, 0o600), (1000, 0o620), (1000, 0o602), (0, 0o666)] {
            match t.check(p, uid, mode, 1000) {
                Err(Error::ForeignOwner {
                    path,
                    uid: u,
                    mode: m,
                }) => assert_eq!((path.as_path(), u, m), (p, uid, mode)),
                other => panic!("{uid} {mode:o}: {other:?}"),
            }
        }
        assert!(t.allow_owner(1001).check(p, 1001, 0o600, 1000).is_ok());
        assert!(t.allow_owner(1001).check(p, 1001, 0o666, 1000).is_err());
        assert!(t.allow_shared_mode().check(p, 1000, 0o666, 1000).is_ok());
        assert!(t.allow_shared_mode().check(p, 1001, 0o666, 1000).is_err());
        assert!(
            t.allow_owner(1001)
                .allow_shared_mode()
                .check(p, 1001, 0o666, 1000)
                .is_ok()
        );
    }

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
        // 16-byte header + 64-byte payload, padded to two cache lines.
        assert_eq!(
            (geo.slot_count, geo.max_frame, geo.capacity),
            (1024, 64, 1024 * 128)
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
        // A file of an earlier layout (1; 2, whose sleepers issue no
        // kernel barrier; 3, whose spsc consumer polls `tail` and whose
        // producer writes no terminator; 4, whose sleepers do not arm the
        // futex word) is refused, never misread.
        for old in [1, 2, 3, 4] {
            let mut id = good;
            id.version = old;
            assert!(matches!(
                Geometry::from_ident(&id, Some(Kind::Spsc)),
                Err(Error::UnsupportedVersion { found, supported: 5 }) if found == old
            ));
        }
        let mut id = good;
        id.flags ^= layout::FLAG_LITTLE_ENDIAN;
        assert!(matches!(
            Geometry::from_ident(&id, Some(Kind::Spsc)),
            Err(Error::ForeignPlatform { .. })
        ));
        // A creator of the other byte order: every field byte-swapped. The
        // flags are checked before the version, so the error names the
        // platform, not "version 16777216".
        let mut id = good;
        id.flags = flags_of_other_endian();
        id.version = layout::LAYOUT_VERSION.swap_bytes();
        id.kind = id.kind.swap_bytes();
        id.capacity = id.capacity.swap_bytes();
        let e = Geometry::from_ident(&id, Some(Kind::Spsc)).unwrap_err();
        assert!(matches!(e, Error::ForeignPlatform { .. }), "{e:?}");
        let msg = e.to_string();
        let other = if cfg!(target_endian = "little") {
            "big-endian"
        } else {
            "little-endian"
        };
        assert!(msg.contains(other), "{msg}");
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
