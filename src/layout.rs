//! The shared-memory ABI: the header at offset 0 of every mapping and the
//! frame word that starts every record in the data area.
//!
//! Everything another process (or another language) needs to read a ring is
//! fixed here, byte by byte, and frozen with compile-time offset asserts.
//! `docs/FORMAT.md` describes the same layout in prose. Only fixed-width
//! integers appear; no `usize`, no pointers.
//!
//! ```text
//! offset  size  block 0: identity (written once by the creator)
//!      0     8  magic            b"MMRING\0\x01"
//!      8     4  version          LAYOUT_VERSION
//!     12     4  kind             1 = spsc, 2 = mpsc, 3 = mpmc, 4 = broadcast
//!     16     4  flags            FLAG_LITTLE_ENDIAN | FLAG_64BIT (must equal ours)
//!     20     4  data_offset      DATA_OFFSET (12288)
//!     24     8  capacity         data area bytes, a power of two
//!     32     8  max_frame        largest payload in bytes
//!     40     8  slot_size        0 for framed rings (reserved for mpmc)
//!     48    16  ring_id          random at create: the ring's identity
//!     64     4  init             INIT_READY once the header is complete
//!     68     4  creator_pid      diagnostics only
//!     72    56  reserved         zero
//!         block 1: consumer side (128-byte aligned)
//!    128     8  head             released by the consumer(s) (free-running)
//!    136     4  space_futex      bumped by consumers to wake producers
//!    140     4  reserved         zero
//!    144    16  space_sleepers   bit i: the handle of attach[i] sleeps on space_futex
//!    160     8  released_frames  framed rings: messages released since creation
//!         block 2: producer side (128-byte aligned)
//!    256     8  tail             committed (spsc) or claimed (mpsc, mpmc)
//!    264     4  data_futex       bumped by producers to wake consumers
//!    268     4  sleep_flag       broadcast: a subscriber may sleep (else zero)
//!    272    16  data_sleepers    bit i: the handle of attach[i] sleeps on data_futex
//!    288     8  intent           broadcast: end of the record being written (else zero)
//!    296     8  oldest           broadcast: oldest record not overwritten (else zero)
//!    304     8  latest           broadcast: newest frame's position + 1 (else zero)
//!    312     8  deferred_at      spsc: position + 1 of the frame word a publication stores last
//!    320     8  deferred_word    spsc: that frame word
//!         block 3: role records (liveness lives in OFD locks)
//!    384    16  roles[0]         producer: pid, attaches, pending
//!    400    16  roles[1]         consumer: pid, attaches, pending (a release in progress)
//!    416     8  recoveries       dead parties' claims completed by live ones
//!    424    88  reserved         zero
//!    512  3584  reserved         zero
//!         attachment table (one record per attached handle)
//!   4096    64  attach[0]        pid, role, claim, claim_end, notify, reserved
//!    ...
//!  12224    64  attach[127]
//!  12288        data area (DATA_OFFSET): `capacity` bytes
//! ```
//!
//! The data area of a framed ring (spsc, mpsc) is a sequence of records,
//! each an 8-byte [`frame_word`] and its payload padded to 8 bytes. The data
//! area of a slot ring (mpmc) is `slot_count` slots of
//! [`slot_stride`]`(slot_size)` bytes, each a [`SlotHeader`] and the payload.

use std::sync::atomic::{AtomicU32, AtomicU64};

use bytemuck::{Pod, Zeroable};

/// The eight bytes every mmring file starts with.
pub const MAGIC: [u8; 8] = *b"MMRING\0\x01";

/// Version of the layout described in this module. Bumped on any change to
/// the header or the frame format; older or newer files are refused.
pub const LAYOUT_VERSION: u32 = 5;

/// Value of the `init` word once the creator has written the whole header.
/// It is stored last, with Release, so a reader that sees it sees the rest.
pub const INIT_READY: u32 = 0x5944_5952; // "RYDY" little-endian

/// Header flag: the creator is little-endian.
pub const FLAG_LITTLE_ENDIAN: u32 = 1 << 0;
/// Header flag: the creator uses 64-bit words (all cursors are `u64`
/// regardless; the flag records the writer for diagnostics and refusal).
pub const FLAG_64BIT: u32 = 1 << 1;

/// The flags this build writes and accepts.
pub const NATIVE_FLAGS: u32 = (if cfg!(target_endian = "little") {
    FLAG_LITTLE_ENDIAN
} else {
    0
}) | (if cfg!(target_pointer_width = "64") {
    FLAG_64BIT
} else {
    0
});

/// Size of the header structure in bytes.
pub const HEADER_LEN: u64 = 512;

/// Byte offset of the data area from the start of the mapping: the header
/// page and two pages of attachment table. A multiple of the page size, so
/// the data area is page-aligned and every 8-byte offset inside it is
/// 8-byte aligned in memory.
pub const DATA_OFFSET: u64 = 12288;

/// Smallest data area a ring may have.
pub const MIN_CAPACITY: u64 = 64;

/// Largest data area a ring may have (64 GiB).
pub const MAX_CAPACITY: u64 = 1 << 36;

/// Every cursor is below this. A cursor read from the mapping at or above it
/// is corrupt, which leaves headroom for cursor arithmetic never to
/// overflow. (2^63 bytes is 8 EiB of traffic: 29 years at 10 GB/s.)
pub const MAX_CURSOR: u64 = 1 << 63;

/// Frame payloads are padded so every frame starts 8-byte aligned.
pub const FRAME_ALIGN: u64 = 8;

/// Size of the frame word that precedes every payload.
pub const FRAME_HEADER: u64 = 8;

/// Largest payload a frame word can describe (the length field is 31 bits).
pub const MAX_FRAME_LIMIT: u64 = (1 << 31) - 1;

/// Which flavour of ring a file holds. A file of one kind is refused when
/// opened as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
#[non_exhaustive]
pub enum Kind {
    /// One producer, one consumer, variable-length frames.
    Spsc = 1,
    /// Many producers, one consumer, variable-length frames.
    Mpsc = 2,
    /// Many producers, many consumers, fixed slots.
    Mpmc = 3,
    /// One publisher, any number of subscribers, each of which sees every
    /// frame or learns how many it missed; variable-length frames.
    Broadcast = 4,
}

impl Kind {
    /// Decodes the header's `kind` field.
    pub fn from_raw(raw: u32) -> Option<Kind> {
        match raw {
            1 => Some(Kind::Spsc),
            2 => Some(Kind::Mpsc),
            3 => Some(Kind::Mpmc),
            4 => Some(Kind::Broadcast),
            _ => None,
        }
    }

    /// Lower-case name, as used in messages and the CLI.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Spsc => "spsc",
            Kind::Mpsc => "mpsc",
            Kind::Mpmc => "mpmc",
            Kind::Broadcast => "broadcast",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Block 0's immutable part: written once by the creator before `init`
/// becomes [`INIT_READY`], then only ever read, and read as a volatile copy so
/// that later writes by a misbehaving peer cannot change what we validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Pod, Zeroable)]
#[repr(C)]
pub struct Ident {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`LAYOUT_VERSION`].
    pub version: u32,
    /// [`Kind`] as `u32`.
    pub kind: u32,
    /// [`NATIVE_FLAGS`] of the creator.
    pub flags: u32,
    /// [`DATA_OFFSET`].
    pub data_offset: u32,
    /// Bytes in the data area; a power of two.
    pub capacity: u64,
    /// Largest payload in bytes.
    pub max_frame: u64,
    /// Slot size for slot rings; 0 for framed rings.
    pub slot_size: u64,
    /// 128 random bits drawn at creation: the ring's identity, the same for
    /// every process that maps it (it names the wake-up sockets, see
    /// `notify.rs`).
    pub ring_id: [u64; 2],
}

/// Block 0 as laid out in memory: the identity, then the init-state word.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct IdentBlock {
    /// The immutable identity.
    pub ident: Ident,
    /// Init-state word. Truth table:
    ///
    /// | value         | meaning                                          |
    /// |---------------|--------------------------------------------------|
    /// | `0`           | header not (fully) written: the file is refused  |
    /// | `INIT_READY`  | every other header field is valid                |
    /// | anything else | corrupt: the file is refused                     |
    pub init: AtomicU32,
    /// Pid of the process that created the ring (diagnostics only).
    pub creator_pid: AtomicU32,
}

/// Block 1: written by the consumer.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct ConsumerBlock {
    /// Free-running count of bytes the consumer has released. Only the
    /// consumer writes it; `head <= tail <= head + capacity` always.
    pub head: AtomicU64,
    /// Futex word producers sleep on while the ring is full. A consumer
    /// adds one to it (and wakes) after releasing space when
    /// `space_sleepers != 0`, and whenever a consumer attaches or detaches.
    pub space_futex: AtomicU32,
    /// Zero.
    pub reserved: AtomicU32,
    /// The producers between "about to sleep" and "awake" on `space_futex`:
    /// bit `i` (of the 128) is the handle holding attachment record `i`.
    /// A sleeper that dies leaves its bit set; whoever next takes record `i`,
    /// or a waker whose wake-ups keep finding nobody, clears it once the
    /// record's lock shows its holder dead.
    pub space_sleepers: [AtomicU64; 2],
    /// Framed rings: messages the consumer has released since creation
    /// (stored with each release, after `head`; a statistic for `stat`,
    /// never read by the protocol). Slot rings count slots in `head`.
    pub released_frames: AtomicU64,
}

/// Block 2: written by the producer.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct ProducerBlock {
    /// Free-running count of bytes the producer has committed. Only the
    /// producer writes it.
    pub tail: AtomicU64,
    /// Futex word consumers sleep on while the ring is empty. A producer
    /// adds one to it (and wakes) after committing when `data_sleepers != 0`,
    /// and whenever a producer attaches or detaches.
    pub data_futex: AtomicU32,
    /// Broadcast rings: nonzero while a subscriber may be asleep on
    /// `data_futex` (set by every subscriber before it sleeps, cleared with
    /// a swap by the publisher before it wakes them). Zero for other kinds.
    pub sleep_flag: AtomicU32,
    /// The consumers between "about to sleep" and "awake" on `data_futex`,
    /// one bit per attachment record, as `space_sleepers`. Unused (zero) on
    /// broadcast rings.
    pub data_sleepers: [AtomicU64; 2],
    /// Broadcast rings: the end of the record the publisher is writing (or
    /// `tail` when none is in progress); never decreases. Zero for other
    /// kinds.
    pub intent: AtomicU64,
    /// Broadcast rings: the position of the oldest record not yet (being)
    /// overwritten. Zero for other kinds.
    pub oldest: AtomicU64,
    /// Broadcast rings: the position of the newest published frame plus
    /// one; 0 before the first. Zero for other kinds.
    pub latest: AtomicU64,
    /// Spsc rings: the position + 1 of the frame word the producer's
    /// latest publication stores last (the word of its first frame, or of
    /// the padding before it), written before `tail`; 0 before the first
    /// publication. A producer killed between its `tail` store and that
    /// word's store leaves the word here, and whoever finds the consumer
    /// held at that position by a dead producer stores it (see
    /// `flavour::spsc`). Zero for other kinds.
    pub deferred_at: AtomicU64,
    /// Spsc rings: the frame word `deferred_at` names. Zero for other
    /// kinds.
    pub deferred_word: AtomicU64,
}

/// One attachment record. Liveness is *not* read from here (a pid can be
/// reused); it comes from an OFD lock on the record's first byte, which the
/// kernel drops when the holder dies. See `roles.rs`.
#[derive(Debug)]
#[repr(C)]
pub struct RoleRecord {
    /// Pid of the current holder, 0 when detached cleanly. A holder killed
    /// with SIGKILL leaves its pid here; the lock tells it is gone.
    pub pid: AtomicU32,
    /// Number of times this role has been claimed since the ring was created.
    pub attaches: AtomicU32,
    /// Consumer of an mpsc ring: the position a release in progress is
    /// zeroing up to (0: none). Written before zeroing, cleared after the
    /// `head` store; a consumer that finds it set when it attaches finishes
    /// the dead one's release before reading (see `ring::ReadCursor`).
    pub pending: AtomicU64,
}

/// Block 3: role records and the recovery count.
#[derive(Debug)]
#[repr(C, align(128))]
pub struct RoleBlock {
    /// `[producer, consumer]`.
    pub roles: [RoleRecord; 2],
    /// How many dead parties' claims live parties have completed.
    pub recoveries: AtomicU64,
}

/// The whole header. Lives at offset 0 of the mapping; never constructed as
/// a Rust value, only viewed through a pointer into shared memory.
#[derive(Debug)]
#[repr(C)]
pub struct Header {
    /// Block 0.
    pub id: IdentBlock,
    /// Block 1.
    pub consumer: ConsumerBlock,
    /// Block 2.
    pub producer: ProducerBlock,
    /// Block 3.
    pub roles: RoleBlock,
}

// The frozen layout. Changing any of these is a LAYOUT_VERSION bump.
const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<Ident>() == 64);
    assert!(offset_of!(Ident, version) == 8);
    assert!(offset_of!(Ident, kind) == 12);
    assert!(offset_of!(Ident, flags) == 16);
    assert!(offset_of!(Ident, data_offset) == 20);
    assert!(offset_of!(Ident, capacity) == 24);
    assert!(offset_of!(Ident, max_frame) == 32);
    assert!(offset_of!(Ident, slot_size) == 40);
    assert!(offset_of!(IdentBlock, init) == 64);
    assert!(offset_of!(IdentBlock, creator_pid) == 68);
    assert!(offset_of!(Header, consumer) == 128);
    assert!(offset_of!(Header, consumer) + offset_of!(ConsumerBlock, space_futex) == 136);
    assert!(offset_of!(Header, consumer) + offset_of!(ConsumerBlock, space_sleepers) == 144);
    assert!(offset_of!(Header, consumer) + offset_of!(ConsumerBlock, released_frames) == 160);
    assert!(offset_of!(Header, producer) == 256);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, data_futex) == 264);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, sleep_flag) == 268);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, data_sleepers) == 272);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, intent) == 288);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, oldest) == 296);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, latest) == 304);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, deferred_at) == 312);
    assert!(offset_of!(Header, producer) + offset_of!(ProducerBlock, deferred_word) == 320);
    assert!(size_of::<ProducerBlock>() == 128);
    assert!(offset_of!(Header, roles) == 384);
    assert!(size_of::<RoleRecord>() == 16);
    assert!(offset_of!(RoleRecord, pending) == 8);
    assert!(offset_of!(Header, roles) + offset_of!(RoleBlock, recoveries) == 416);
    assert!(size_of::<Header>() as u64 == HEADER_LEN);
    assert!(align_of::<Header>() == 128);
    assert!(HEADER_LEN <= DATA_OFFSET);
    assert!(DATA_OFFSET % 4096 == 0);
};

/// One of the two roles of a ring. Each has a record in the header and an
/// OFD lock byte that marks it as held (see `docs/FORMAT.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The writing side.
    Producer,
    /// The reading side.
    Consumer,
}

impl Role {
    /// Position of its record in the header's role block.
    pub(crate) fn index(self) -> usize {
        match self {
            Role::Producer => 0,
            Role::Consumer => 1,
        }
    }

    /// File offset of the byte whose OFD lock marks this role as held: the
    /// first byte of its role record.
    pub(crate) fn lock_offset(self) -> u64 {
        std::mem::offset_of!(Header, roles) as u64
            + (self.index() * std::mem::size_of::<RoleRecord>()) as u64
    }

    /// The value of [`AttachRecord::role`] for this role.
    pub(crate) fn code(self) -> u32 {
        self.index() as u32 + 1
    }

    /// Lower-case name for messages.
    pub fn name(self) -> &'static str {
        match self {
            Role::Producer => "producer",
            Role::Consumer => "consumer",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Rounds `n` up to the next multiple of [`FRAME_ALIGN`].
#[inline]
pub const fn align_up(n: u64) -> u64 {
    (n + (FRAME_ALIGN - 1)) & !(FRAME_ALIGN - 1)
}

/// Bytes a frame with `len` payload bytes occupies in the data area.
#[inline]
pub const fn frame_size(len: u64) -> u64 {
    FRAME_HEADER + align_up(len)
}

/// The largest payload a framed ring of `capacity` bytes can carry.
///
/// A frame never wraps: when it does not fit before the end of the data area
/// the producer writes a padding record and starts again at offset 0. With
/// frames of at most half the capacity, an empty ring always has room for
/// the largest frame on one side or the other of its current position.
#[inline]
pub const fn default_max_frame(capacity: u64) -> u64 {
    let half = capacity / 2 - FRAME_HEADER;
    if half > MAX_FRAME_LIMIT {
        MAX_FRAME_LIMIT
    } else {
        half
    }
}

/// The largest payload a framed ring of `kind` and `capacity` bytes may
/// be created with.
#[inline]
pub const fn max_frame_limit(kind: Kind, capacity: u64) -> u64 {
    match kind {
        Kind::Broadcast => bcast_max_frame(capacity),
        _ => default_max_frame(capacity),
    }
}

/// Bytes in front of a broadcast frame's payload: the frame word and the
/// frame's sequence number.
pub const BCAST_FRAME_HEADER: u64 = 16;

/// Bytes a broadcast frame with `len` payload bytes occupies.
#[inline]
pub const fn bcast_frame_size(len: u64) -> u64 {
    BCAST_FRAME_HEADER + align_up(len)
}

/// The largest payload a broadcast ring of `capacity` bytes can carry: a
/// quarter of the ring, less the frame header. With records of at most a
/// quarter of the ring, one record being written (with the padding in
/// front of it) never reaches the newest published frame, so there is
/// always a whole newest frame in the ring once one has been published
/// (see `docs/FORMAT.md`, "Broadcast").
#[inline]
pub const fn bcast_max_frame(capacity: u64) -> u64 {
    let quarter = capacity / 4 - BCAST_FRAME_HEADER;
    if quarter > MAX_FRAME_LIMIT {
        MAX_FRAME_LIMIT
    } else {
        quarter
    }
}

/// Bytes of slot header (stamp, length, flags) in front of each slot's
/// payload in a slot ring: `size_of::<SlotHeader>()`.
pub const SLOT_HEADER: u64 = 16;

/// The header of one slot of a slot ring (mpmc), at the start of the slot;
/// the payload follows at [`SLOT_HEADER`]. Only ever viewed through a
/// pointer into shared memory, and all atomics.
#[derive(Debug)]
#[repr(C)]
pub struct SlotHeader {
    /// Sequence stamp (see the `mpmc` module docs for its values).
    pub stamp: AtomicU64,
    /// Payload length of a published message.
    pub len: AtomicU32,
    /// `0`, or [`SLOT_ABORTED`].
    pub flags: AtomicU32,
}

const _: () = {
    use std::mem::{align_of, offset_of, size_of};
    assert!(size_of::<SlotHeader>() as u64 == SLOT_HEADER);
    assert!(offset_of!(SlotHeader, stamp) == 0);
    assert!(offset_of!(SlotHeader, len) == 8);
    assert!(offset_of!(SlotHeader, flags) == 12);
    assert!(align_of::<SlotHeader>() == 8);
};

/// Bytes one slot of `slot_size` payload bytes takes in the data area:
/// the header and payload rounded up to whole 64-byte cache lines, so that
/// a producer filling slot `i + 1` never writes the line a consumer is
/// reading slot `i` from (with 64-byte payloads, an 80-byte stride put
/// every neighbouring pair on a shared line).
#[inline]
pub const fn slot_stride(slot_size: u64) -> u64 {
    (SLOT_HEADER + slot_size).div_ceil(CACHE_LINE) * CACHE_LINE
}

/// The cache line the slot stride is padded to.
pub const CACHE_LINE: u64 = 64;

/// Slot flag: the producer aborted its reservation; consumers skip it.
pub const SLOT_ABORTED: u32 = 1;

/// One record of the attachment table: one per attached handle. Its first
/// byte carries the OFD write lock of the handle that holds it (liveness);
/// `claim` and `claim_end` record the handle's in-flight claim, written
/// *before* the claim is taken (the CAS on `tail` or `head`), so that a
/// live party that finds a claim stuck can tell whose it is and, once the
/// lock shows its owner dead, complete it.
///
/// | `claim`        | meaning                                                     |
/// |----------------|-------------------------------------------------------------|
/// | `0`            | no claim in flight                                          |
/// | `p + 1`        | claiming (or holding) from position `p` on                  |
///
/// `claim_end` is the position just past the claimed range (framed rings:
/// bytes, padding included; slot rings: `p + 1`), with [`CLAIM_WON`] set
/// once the claimant's CAS has succeeded. The claimant clears `claim` after
/// publishing (or releasing) what it claimed.
#[derive(Debug)]
#[repr(C)]
pub struct AttachRecord {
    /// Pid of the holder; 0 when free or detached cleanly.
    pub pid: AtomicU32,
    /// `1` producer, `2` consumer.
    pub role: AtomicU32,
    /// The in-flight claim: `start + 1`, or 0.
    pub claim: AtomicU64,
    /// End of the in-flight claim, with [`CLAIM_WON`] once it is taken.
    pub claim_end: AtomicU64,
    /// The nonce naming the holder's wake-up socket (`notify.rs`), or 0:
    /// a waker whose sleeper bit for this record is set sends a datagram
    /// there when it is not 0.
    pub notify: AtomicU64,
    /// Zero.
    pub reserved: [AtomicU64; 4],
}

/// Bit of [`AttachRecord::claim_end`]: the claim's CAS succeeded.
pub const CLAIM_WON: u64 = 1 << 63;

const _: () = {
    use std::mem::offset_of;
    assert!(std::mem::size_of::<AttachRecord>() as u64 == ATTACH_RECORD);
    assert!(offset_of!(AttachRecord, role) == 4);
    assert!(offset_of!(AttachRecord, claim) == 8);
    assert!(offset_of!(AttachRecord, claim_end) == 16);
    assert!(offset_of!(AttachRecord, notify) == 24);
};

/// First byte of the attachment table.
pub const ATTACH_TABLE: u64 = 4096;
/// Bytes per attachment record: a cache line, so that the claims recorded
/// by handles in different processes never share one.
pub const ATTACH_RECORD: u64 = 64;
/// Attachment records: the most handles a ring can have attached at once,
/// all processes and roles together. Also the width of the sleeper bitmaps.
pub const ATTACH_SLOTS: u64 = 128;

/// File offset of attachment record `i` (< [`ATTACH_SLOTS`]); its first
/// byte carries the holder's OFD lock.
#[inline]
pub const fn attach_record_offset(i: u64) -> u64 {
    ATTACH_TABLE + i * ATTACH_RECORD
}

const _: () = assert!(ATTACH_TABLE + ATTACH_SLOTS * ATTACH_RECORD <= DATA_OFFSET);
const _: () = assert!(ATTACH_TABLE >= HEADER_LEN);

/// The frame word: the 8 bytes in front of every record, read and written as
/// one `u64`.
///
/// | bits   | data frame         | skip record            | padding record | not yet written |
/// |--------|--------------------|------------------------|----------------|-----------------|
/// | 0..32  | payload length `n` | `s \| 0x8000_0000`     | `0xFFFF_FFFF`  | 0               |
/// | 32..64 | `!n` (bit 63 set)  | `!(s \| 0x8000_0000)`  | `PAD_CHECK`    | 0               |
///
/// A skip record covers `8 + s` bytes (`s` a multiple of 8) that a producer
/// claimed and gave back (an aborted or shortened MPSC reservation). The
/// check half makes a tampered length detectable, and no valid word is
/// zero, so an MPSC consumer can tell "not published yet" from any record.
/// Lengths are below 2^31.
pub mod frame_word {
    /// High half of a padding record.
    pub const PAD_CHECK: u32 = 0x2144_4150; // "PAD!" little-endian
    /// A padding record: the rest of the data area up to its end is unused.
    pub const PAD: u64 = ((PAD_CHECK as u64) << 32) | 0xFFFF_FFFF;

    /// Encodes a data frame of `len` payload bytes (`len` < 2^31).
    #[inline]
    pub const fn data(len: u32) -> u64 {
        ((!len as u64) << 32) | len as u64
    }

    /// Encodes a skip record whose body is `len` bytes (`len` < 2^31).
    #[inline]
    pub const fn skip(len: u32) -> u64 {
        let lo = len | (1 << 31);
        ((!lo as u64) << 32) | lo as u64
    }

    /// What a frame word says.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Decoded {
        /// A data frame with this payload length.
        Data(u32),
        /// A skip record with this body length.
        Skip(u32),
        /// A padding record.
        Pad,
        /// Zero: nothing written yet.
        Empty,
        /// Anything else.
        Invalid,
    }

    /// Decodes a frame word. Never trusts it: an unknown pattern is `Invalid`.
    #[inline]
    pub const fn decode(word: u64) -> Decoded {
        let len = word as u32;
        let check = (word >> 32) as u32;
        if word == PAD {
            Decoded::Pad
        } else if word == 0 {
            Decoded::Empty
        } else if check == !len && len < (1 << 31) {
            Decoded::Data(len)
        } else if check == !len {
            Decoded::Skip(len & !(1 << 31))
        } else {
            Decoded::Invalid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::frame_word::{self, Decoded};
    use super::*;

    #[test]
    fn frame_math() {
        assert_eq!(align_up(0), 0);
        assert_eq!(align_up(1), 8);
        assert_eq!(align_up(8), 8);
        assert_eq!(align_up(9), 16);
        assert_eq!(frame_size(0), 8);
        assert_eq!(frame_size(5), 16);
        assert_eq!(frame_size(16), 24);
        assert_eq!(default_max_frame(64), 24);
        assert_eq!(default_max_frame(1 << 20), (1 << 19) - 8);
        assert_eq!(default_max_frame(MAX_CAPACITY), MAX_FRAME_LIMIT);
    }

    #[test]
    fn largest_frame_fits_an_empty_ring_at_any_position() {
        for cap in [64u64, 128, 4096] {
            let max = frame_size(default_max_frame(cap));
            for pos in (0..cap).step_by(8) {
                let contiguous = cap - pos;
                assert!(contiguous >= max || pos >= max, "cap {cap} pos {pos}");
            }
        }
    }

    #[test]
    fn frame_words_round_trip_and_reject_tampering() {
        for len in [0u32, 1, 7, 8, 4096, (1 << 31) - 1] {
            assert_eq!(
                frame_word::decode(frame_word::data(len)),
                Decoded::Data(len)
            );
            // A length changed without its check is refused.
            let tampered = frame_word::data(len) ^ 1;
            assert_eq!(frame_word::decode(tampered), Decoded::Invalid);
        }
        assert_eq!(frame_word::decode(frame_word::PAD), Decoded::Pad);
        for len in [0u32, 8, 4096] {
            assert_eq!(
                frame_word::decode(frame_word::skip(len)),
                Decoded::Skip(len)
            );
            assert_ne!(frame_word::skip(len), frame_word::PAD);
        }
        assert_eq!(frame_word::decode(0), Decoded::Empty);
        assert_eq!(frame_word::decode(u64::MAX), Decoded::Invalid);
        assert_eq!(frame_word::decode(1 << 31), Decoded::Invalid);
    }

    #[test]
    fn role_lock_bytes_are_their_records() {
        assert_eq!(Role::Producer.lock_offset(), 384);
        assert_eq!(Role::Consumer.lock_offset(), 400);
    }

    #[test]
    fn kinds_round_trip() {
        for k in [Kind::Spsc, Kind::Mpsc, Kind::Mpmc, Kind::Broadcast] {
            assert_eq!(Kind::from_raw(k as u32), Some(k));
        }
        assert_eq!(Kind::from_raw(0), None);
        assert_eq!(Kind::from_raw(5), None);
    }
}
