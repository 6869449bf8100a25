//! Error types.
//!
//! Hot-path errors ([`SendError`], [`RecvError`], [`Corruption`]) are small,
//! `Copy`, and allocate nothing. Set-up errors are one [`Error`] enum, which
//! every hot-path error also converts into, so `?` works in a function that
//! returns `mmring::Error`.

use std::fmt;
use std::io;

use crate::layout::{Kind, Role};
use crate::wait::Gave;

/// What was found to be inconsistent in the shared mapping.
///
/// mmring never trusts a value read from shared memory: a cursor or frame
/// length that could not have been written by a correct peer is reported as
/// one of these instead of being used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Corruption {
    /// The cursors violate `head <= tail <= head + capacity`.
    Cursors {
        /// Consumer cursor read from the header.
        head: u64,
        /// Producer cursor read from the header.
        tail: u64,
        /// Data area size.
        capacity: u64,
    },
    /// A cursor is beyond the range a ring can ever reach (2^63).
    CursorOutOfRange {
        /// The cursor's value.
        cursor: u64,
    },
    /// A cursor is not a multiple of the 8-byte frame alignment.
    MisalignedCursor {
        /// The cursor's value.
        cursor: u64,
    },
    /// A cursor moved backwards, or the other side's cursor moved while we
    /// hold its role.
    CursorRegressed {
        /// What we had seen.
        seen: u64,
        /// What the header says now.
        found: u64,
    },
    /// A slot's sequence stamp is one no correct party could have written
    /// for that position (a slot ring).
    Stamp {
        /// The position (slot sequence number) being claimed.
        pos: u64,
        /// The stamp found.
        stamp: u64,
    },
    /// A slot's flags or length are invalid (a slot ring).
    Slot {
        /// The position of the slot.
        pos: u64,
        /// Its length field.
        len: u64,
        /// Its flags field.
        flags: u32,
    },
    /// A frame word is neither a data frame nor a padding record.
    FrameWord {
        /// Ring position (free-running byte count) of the frame.
        pos: u64,
        /// The word found.
        word: u64,
    },
    /// A frame position is covered by the claims of two dead producers
    /// with different extents and neither marked as taken, so which one
    /// owned it cannot be told (mpsc; needs two producers killed within a
    /// few instructions of each other).
    AmbiguousClaim {
        /// Ring position of the stuck frame.
        pos: u64,
    },
    /// A data frame claims more bytes than the maximum frame size.
    FrameTooLong {
        /// Ring position of the frame.
        pos: u64,
        /// Length it claims.
        len: u64,
        /// The ring's maximum payload.
        max: u64,
    },
    /// A frame (or padding record) reaches past the committed data or past
    /// the end of the data area.
    FrameOverrun {
        /// Ring position of the frame.
        pos: u64,
        /// Bytes it needs, header included.
        needs: u64,
        /// Bytes that were available for it.
        available: u64,
    },
    /// A broadcast frame that was not overwritten while it was read carries
    /// a sequence number other than the one due at its position.
    Sequence {
        /// Ring position of the frame.
        pos: u64,
        /// The sequence number due there.
        expected: u64,
        /// The one found.
        found: u64,
    },
    /// The ring's backing file shrank under the mapping (someone truncated
    /// it), so its memory was replaced with zero pages to keep the process
    /// alive. Nothing read from the ring since then can be trusted, and
    /// nothing written reaches the file.
    Truncated,
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Corruption::Cursors {
                head,
                tail,
                capacity,
            } => write!(
                f,
                "cursors out of range: head {head}, tail {tail}, capacity {capacity} \
                 (need head <= tail <= head + capacity)"
            ),
            Corruption::CursorOutOfRange { cursor } => {
                write!(f, "cursor {cursor} is beyond any reachable position")
            }
            Corruption::MisalignedCursor { cursor } => {
                write!(f, "cursor {cursor} is not a multiple of 8")
            }
            Corruption::CursorRegressed { seen, found } => {
                write!(f, "cursor moved unexpectedly from {seen} to {found}")
            }
            Corruption::Stamp { pos, stamp } => {
                write!(f, "slot stamp {stamp} is impossible at position {pos}")
            }
            Corruption::Slot { pos, len, flags } => write!(
                f,
                "slot at position {pos} has length {len} and flags {flags:#x}"
            ),
            Corruption::FrameWord { pos, word } => {
                write!(f, "invalid frame word {word:#018x} at position {pos}")
            }
            Corruption::AmbiguousClaim { pos } => write!(
                f,
                "frame at position {pos} is claimed by two dead producers with different extents"
            ),
            Corruption::FrameTooLong { pos, len, max } => write!(
                f,
                "frame at position {pos} claims {len} bytes, more than the maximum {max}"
            ),
            Corruption::FrameOverrun {
                pos,
                needs,
                available,
            } => write!(
                f,
                "frame at position {pos} needs {needs} bytes but only {available} are available"
            ),
            Corruption::Sequence {
                pos,
                expected,
                found,
            } => write!(
                f,
                "frame at position {pos} has sequence number {found}, expected {expected}"
            ),
            Corruption::Truncated => f.write_str(
                "the ring's file was truncated under its mapping (its memory now reads as zeros)",
            ),
        }
    }
}

impl std::error::Error for Corruption {}

/// Why a frame could not be reserved or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SendError {
    /// The ring has no room for the frame now (`try_*` only).
    Full,
    /// The frame is larger than the ring's maximum frame size.
    TooLarge {
        /// Requested payload length.
        len: usize,
        /// The ring's maximum payload length.
        max: usize,
    },
    /// No room became free before the deadline (`*_timeout` only).
    Timeout,
    /// The ring is full and its consumer has detached or died (blocking
    /// forms only; a ring whose consumer never attached is not disconnected).
    Disconnected,
    /// Waiting on a named ring whose path no longer names its file (removed,
    /// or replaced by a new ring) while no consumer is attached: no
    /// consumer can reach this ring through its name any more.
    Unlinked,
    /// The handle was inherited across `fork`: its role belongs to the
    /// parent. Claim a producer of your own from the inherited `Ring`.
    Forked,
    /// The shared mapping is inconsistent.
    Corrupt(Corruption),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::Full => f.write_str("ring is full"),
            SendError::TooLarge { len, max } => {
                write!(f, "frame of {len} bytes exceeds the maximum of {max} bytes")
            }
            SendError::Timeout => f.write_str("timed out waiting for space in the ring"),
            SendError::Disconnected => f.write_str("ring is full and its consumer is gone"),
            SendError::Unlinked => {
                f.write_str("ring file was removed or replaced while no consumer was attached")
            }
            SendError::Forked => f.write_str(
                "producer inherited across fork: claim one from the Ring in this process",
            ),
            SendError::Corrupt(c) => write!(f, "ring is corrupt: {c}"),
        }
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SendError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Corruption> for SendError {
    fn from(c: Corruption) -> Self {
        SendError::Corrupt(c)
    }
}

/// Why no frame could be received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RecvError {
    /// The ring holds no committed frame now (`try_*` only).
    Empty,
    /// No frame arrived before the deadline (`*_timeout` only).
    Timeout,
    /// The ring is empty and its producer has detached or died (blocking
    /// forms only; a ring whose producer never attached is not
    /// disconnected).
    Disconnected,
    /// Waiting on a named ring whose path no longer names its file (removed,
    /// or replaced by a new ring) while no producer is attached: no
    /// producer can reach this ring through its name any more.
    Unlinked,
    /// The handle was inherited across `fork`: its role belongs to the
    /// parent. Claim a consumer of your own from the inherited `Ring`.
    Forked,
    /// The shared mapping is inconsistent; the consumer stays where it is.
    Corrupt(Corruption),
    /// A broadcast subscriber was overrun by the publisher: this many
    /// frames were overwritten before it read them (exact: every frame
    /// carries its sequence number). The next call continues at the oldest
    /// frame still in the ring.
    Lagged(u64),
    /// Read-ahead ([`Consumer::try_recv_ahead`](crate::Consumer::try_recv_ahead))
    /// on a ring whose consumers cannot hold several messages: an mpmc
    /// consumer holds one slot at a time.
    NoReadAhead,
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecvError::Empty => f.write_str("ring is empty"),
            RecvError::Timeout => f.write_str("timed out waiting for a frame"),
            RecvError::Disconnected => f.write_str("ring is empty and its producer is gone"),
            RecvError::Unlinked => {
                f.write_str("ring file was removed or replaced while no producer was attached")
            }
            RecvError::Forked => f.write_str(
                "consumer inherited across fork: claim one from the Ring in this process",
            ),
            RecvError::Corrupt(c) => write!(f, "ring is corrupt: {c}"),
            RecvError::Lagged(n) => write!(f, "lagged behind the publisher: {n} frames skipped"),
            RecvError::NoReadAhead => f.write_str(
                "this ring's consumers cannot read ahead (an mpmc consumer holds one slot at a time)",
            ),
        }
    }
}

impl std::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RecvError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl From<Corruption> for RecvError {
    fn from(c: Corruption) -> Self {
        RecvError::Corrupt(c)
    }
}

impl From<Gave<Corruption>> for SendError {
    fn from(g: Gave<Corruption>) -> Self {
        match g {
            Gave::Timeout => SendError::Timeout,
            Gave::Disconnected => SendError::Disconnected,
            Gave::Unlinked => SendError::Unlinked,
            Gave::Err(c) => SendError::Corrupt(c),
        }
    }
}

impl From<Gave<Corruption>> for RecvError {
    fn from(g: Gave<Corruption>) -> Self {
        match g {
            Gave::Timeout => RecvError::Timeout,
            Gave::Disconnected => RecvError::Disconnected,
            Gave::Unlinked => RecvError::Unlinked,
            Gave::Err(c) => RecvError::Corrupt(c),
        }
    }
}

/// Everything that can go wrong creating, opening or attaching to a ring,
/// plus the hot-path errors wrapped for `?`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What mmring was doing.
        op: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The path exists but is not a regular file (a FIFO, device, directory…).
    #[error("not a regular file")]
    NotRegularFile,
    /// The file is shorter than its header says it must be (0 for an empty
    /// file).
    #[error("file is truncated: {len} bytes, at least {needed} needed")]
    Truncated {
        /// Bytes in the file.
        len: u64,
        /// Bytes the header requires.
        needed: u64,
    },
    /// The file does not start with the mmring magic.
    #[error("not an mmring file (magic {found:02x?})")]
    BadMagic {
        /// The first eight bytes of the file.
        found: [u8; 8],
    },
    /// The file was written by a different layout version.
    #[error("unsupported layout version {found} (this build reads version {supported})")]
    UnsupportedVersion {
        /// Version in the file.
        found: u32,
        /// Version this build reads and writes.
        supported: u32,
    },
    /// The file was written by a machine of another endianness or word size.
    #[error(
        "ring written by a {} platform (flags {found:#x}); this build is {} (flags {expected:#x})",
        platform(*.found),
        platform(*.expected)
    )]
    ForeignPlatform {
        /// Flags in the file.
        found: u32,
        /// Flags of this build.
        expected: u32,
    },
    /// The header's init word says it was never completely written.
    #[error("ring header is not initialised (init word {found:#x})")]
    Uninitialized {
        /// The init word found.
        found: u32,
    },
    /// The file holds a ring of another kind.
    #[error("ring is {found}, opened as {expected}")]
    WrongKind {
        /// Kind in the file, or `None` if the kind field is unknown.
        found: KindName,
        /// Kind that was asked for.
        expected: Kind,
    },
    /// The header names a kind this build does not know (when opened as
    /// any kind; opened as a given kind, it is [`Error::WrongKind`]).
    #[error("ring is of unknown kind {found}")]
    UnknownKind {
        /// The header's `kind` field.
        found: u32,
    },
    /// The ring is of a kind this handle type does not serve: a broadcast
    /// ring opened through [`AnyRing`](crate::AnyRing), whose queue API
    /// does not fit it (open it with [`broadcast::Ring`](crate::broadcast::Ring)).
    #[error("ring is {found}, which this handle type does not open")]
    UnsupportedKind {
        /// The ring's kind.
        found: Kind,
    },
    /// The header's geometry is impossible.
    #[error("bad ring geometry: {what} is {value}")]
    BadGeometry {
        /// Which field.
        what: &'static str,
        /// Its value.
        value: u64,
    },
    /// `open_or_create` found an existing ring whose geometry differs from
    /// the requested one.
    #[error("existing ring has {what} {existing}, requested {requested}")]
    GeometryMismatch {
        /// Which field.
        what: &'static str,
        /// In the file.
        existing: u64,
        /// In the [`Config`](crate::Config).
        requested: u64,
    },
    /// A [`Config`](crate::Config) value is out of range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(&'static str),
    /// The role is held by a live process.
    #[error("the {role} role is already taken{}", match .pid { Some(p) => format!(" by pid {p}"), None => String::new() })]
    RoleTaken {
        /// Which role.
        role: Role,
        /// Pid recorded by the holder, if any.
        pid: Option<u32>,
    },
    /// Every record of a multi-party ring's attachment table is held.
    #[error("too many handles attached (at most {max})")]
    TooManyAttachments {
        /// Size of the attachment table.
        max: u32,
    },
    /// The file at `path` is owned by another user (other than root), or is
    /// writable by its group or by others, so someone else could have
    /// planted it or can read and rewrite it. Opt in with
    /// [`Trust::allow_owner`](crate::Trust::allow_owner) /
    /// [`Trust::allow_shared_mode`](crate::Trust::allow_shared_mode) (or the
    /// same on [`Config`](crate::Config)).
    #[error(
        "refusing {}: owned by uid {uid} with mode {mode:04o}; only files of this user or root \
         that no one else can write are trusted (see Trust::allow_owner / allow_shared_mode)",
        .path.display()
    )]
    ForeignOwner {
        /// The path that was opened.
        path: std::path::PathBuf,
        /// The file's owner.
        uid: u32,
        /// The file's permission bits.
        mode: u32,
    },
    /// The last component of `path` is a symbolic link, which is not
    /// followed unless [`Trust::allow_symlink`](crate::Trust::allow_symlink).
    #[error(
        "refusing {}: it is a symbolic link (see Trust::allow_symlink)",
        .path.display()
    )]
    Symlink {
        /// The path that was opened.
        path: std::path::PathBuf,
    },
    /// A memfd passed to `from_fd` is not sealed against shrinking, so the
    /// process that holds it could truncate it under our mapping. Seal it
    /// with `F_SEAL_SHRINK` (rings from `anonymous` are sealed against
    /// shrinking and growing).
    #[error("memfd is not sealed against shrinking (seals {seals:#x}); add F_SEAL_SHRINK")]
    UnsealedMemfd {
        /// The seals it has (`F_GET_SEALS`).
        seals: u32,
    },
    /// This process already has the most ring mappings it can protect
    /// against truncation (see [`poisoned_mappings`](crate::poisoned_mappings)).
    #[error("too many rings mapped in this process (at most {max})")]
    TooManyMappings {
        /// Size of the process's registry of ring mappings.
        max: usize,
    },
    /// The mapping is inconsistent.
    #[error("ring is corrupt: {0}")]
    Corrupt(#[from] Corruption),
    /// A send-side operation failed.
    #[error(transparent)]
    Send(#[from] SendError),
    /// A receive-side operation failed.
    #[error(transparent)]
    Recv(#[from] RecvError),
}

impl Error {
    pub(crate) fn io(op: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Io { op, source }
    }

    pub(crate) fn errno(op: &'static str) -> impl FnOnce(rustix::io::Errno) -> Error {
        move |e| Error::Io {
            op,
            source: e.into(),
        }
    }
}

/// "little-endian 64-bit" etc. for a flags word; a byte-swapped word (a
/// creator of the other byte order) is recognised as such.
fn platform(flags: u32) -> String {
    use crate::layout::{FLAG_64BIT, FLAG_LITTLE_ENDIAN};
    let known = FLAG_64BIT | FLAG_LITTLE_ENDIAN;
    let f = if flags & !known == 0 {
        flags
    } else if flags.swap_bytes() & !known == 0 {
        flags.swap_bytes()
    } else {
        return "unknown".to_string();
    };
    format!(
        "{}-endian {}-bit",
        if f & FLAG_LITTLE_ENDIAN != 0 {
            "little"
        } else {
            "big"
        },
        if f & FLAG_64BIT != 0 { 64 } else { 32 }
    )
}

/// The kind named by a header: known, or the raw unknown value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KindName {
    /// A kind this build knows.
    Known(Kind),
    /// An unknown `kind` field.
    Unknown(u32),
}

impl fmt::Display for KindName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KindName::Known(k) => write!(f, "{k}"),
            KindName::Unknown(v) => write!(f, "of unknown kind {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_path_errors_are_small_and_copy() {
        fn is_copy<T: Copy>() {}
        is_copy::<SendError>();
        is_copy::<RecvError>();
        is_copy::<Corruption>();
        assert!(std::mem::size_of::<RecvError>() <= 40);
        assert!(std::mem::size_of::<SendError>() <= 40);
    }

    #[test]
    fn messages_name_the_problem() {
        let e = Error::RoleTaken {
            role: Role::Producer,
            pid: Some(42),
        };
        assert_eq!(
            e.to_string(),
            "the producer role is already taken by pid 42"
        );
        let e = Error::WrongKind {
            found: KindName::Known(Kind::Mpmc),
            expected: Kind::Spsc,
        };
        assert_eq!(e.to_string(), "ring is mpmc, opened as spsc");
        let e: Error = RecvError::Corrupt(Corruption::MisalignedCursor { cursor: 3 }).into();
        assert_eq!(
            e.to_string(),
            "ring is corrupt: cursor 3 is not a multiple of 8"
        );
    }
}
