//! The framed ring core: raw access to a header and a data area, and the
//! frame format on top of it. Knows nothing about files, roles or waiting,
//! so the same code runs on a file mapping, a memfd, or (for model checking)
//! plain heap memory.
//!
//! Positions are free-running byte counts (`u64`, never wrapping in
//! practice: 2^64 bytes at 100 GB/s is 5 years). The offset of position `p`
//! in the data area is `p & (capacity - 1)`. Every position handed to this
//! module is a multiple of 8, so a frame word never straddles the end of
//! the data area.

use std::ptr::NonNull;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, SeqCst};

use crate::config::Geometry;
use crate::error::Corruption;
use crate::layout::{self, Header, frame_word};
use crate::words::Word64;

/// Pointers to one ring's header and data area, plus its validated
/// geometry. Copyable; whoever creates it keeps the memory alive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRing {
    hdr: NonNull<Header>,
    data: NonNull<u8>,
    capacity: u64,
    max_frame: u64,
}

// SAFETY: RawRing is a pair of pointers into memory shared with other
// processes anyway; it is only dereferenced through atomics or through the
// byte ranges the ring protocol assigns to one side.
unsafe impl Send for RawRing {}
// SAFETY: as above.
unsafe impl Sync for RawRing {}

impl RawRing {
    /// # Safety
    ///
    /// * `hdr` points to a live, 128-byte aligned `Header`;
    /// * `data` points to `geo.capacity` live bytes, 8-byte aligned;
    /// * both stay valid for as long as this value or a copy is used.
    pub unsafe fn new(hdr: NonNull<Header>, data: NonNull<u8>, geo: Geometry) -> RawRing {
        debug_assert!(geo.capacity.is_power_of_two());
        debug_assert_eq!(data.as_ptr() as usize % 8, 0);
        RawRing {
            hdr,
            data,
            capacity: geo.capacity,
            max_frame: geo.max_frame,
        }
    }

    /// The shared header.
    #[inline]
    pub fn header(&self) -> &Header {
        // SAFETY: `new`'s contract keeps the header alive and aligned; all
        // of its fields written after initialisation are atomics.
        unsafe { self.hdr.as_ref() }
    }

    /// Pointer to `len` bytes at data offset `off`.
    ///
    /// # Safety
    ///
    /// `off + len <= capacity`. The caller must own that range under the
    /// ring protocol (reserved by the producer, or committed and not yet
    /// released for the consumer) for as long as it uses the pointer.
    #[inline]
    pub unsafe fn bytes(&self, off: u64, len: u64) -> NonNull<u8> {
        debug_assert!(
            off.checked_add(len).is_some_and(|end| end <= self.capacity),
            "range {off}+{len} outside data area of {}",
            self.capacity
        );
        // SAFETY: by the contract, `off` is inside the data area.
        unsafe { self.data.add(off as usize) }
    }

    /// Refuses tampered cursors at open time without false alarms on a
    /// live ring: `head` is read twice around `tail`; if it did not move,
    /// the pair was consistent at the moment `tail` was read, so a
    /// violation is real.
    pub fn check_quiescent_cursors(&self) -> Result<(), Corruption> {
        let h = self.header();
        let head = h.consumer.head.load(SeqCst);
        let tail = h.producer.tail.load(SeqCst);
        if head == h.consumer.head.load(SeqCst) {
            self.check_cursors(head, tail)?;
        }
        Ok(())
    }
}

/// Where a framed ring's cursors and frame words live: the shared mapping
/// ([`RawRing`]), or loom atomics in the model checks, which thereby run the
/// ring's own protocol code.
pub(crate) trait FramedMem {
    type W64: Word64;
    /// The consumer's cursor.
    fn head(&self) -> &Self::W64;
    /// The producer's cursor (claim cursor for mpsc).
    fn tail(&self) -> &Self::W64;
    /// The frame word at position `pos` (a multiple of 8).
    fn word(&self, pos: u64) -> &Self::W64;
    /// Data area size in bytes (a power of two).
    fn capacity(&self) -> u64;
    /// Largest payload.
    fn max_frame(&self) -> u64;
    /// Zeroes `[from, to)` of the data area, which the caller owns.
    fn zero(&self, from: u64, to: u64);

    /// Offset of `pos` in the data area.
    #[inline]
    fn offset(&self, pos: u64) -> u64 {
        pos & (self.capacity() - 1)
    }

    /// Where a frame of `len` payload bytes goes if written at `tail`:
    /// `(pad, start)`, where `pad` bytes of padding come first when the frame
    /// does not fit before the end of the data area, and `start` is the
    /// frame's position. The frame ends at `start + frame_size(len)`.
    #[inline]
    fn place(&self, tail: u64, len: u64) -> (u64, u64) {
        let need = layout::frame_size(len);
        let contiguous = self.capacity() - self.offset(tail);
        if need <= contiguous {
            (0, tail)
        } else {
            (contiguous, tail + contiguous)
        }
    }

    /// Reads the frame at `pos`, given that `available` bytes from `pos` on
    /// are committed. Trusts nothing in the word.
    #[inline]
    fn parse(&self, pos: u64, available: u64) -> Result<Parsed, Corruption> {
        debug_assert!(available > 0);
        let off = self.offset(pos);
        // ORDERING(word-publish): Acquire. For SPSC the tail load before it
        // already made the word visible; for MPSC it pairs with the
        // producer's Release store of the word (the publication), and is the
        // re-check (S4) of the wake-up handshake.
        let word = self.word(pos).load(Acquire);
        match frame_word::decode(word) {
            frame_word::Decoded::Pad => {
                let skip = self.capacity() - off;
                if skip > available {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: skip,
                        available,
                    });
                }
                Ok(Parsed::Pad { skip })
            }
            frame_word::Decoded::Data(len) => {
                let len = u64::from(len);
                if len > self.max_frame() {
                    return Err(Corruption::FrameTooLong {
                        pos,
                        len,
                        max: self.max_frame(),
                    });
                }
                let size = layout::frame_size(len);
                let room = available.min(self.capacity() - off);
                if size > room {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: size,
                        available: room,
                    });
                }
                Ok(Parsed::Data {
                    payload: off + layout::FRAME_HEADER,
                    len,
                    size,
                })
            }
            frame_word::Decoded::Skip(body) => {
                let skip = layout::FRAME_HEADER + u64::from(body);
                let room = available.min(self.capacity() - off);
                if body as u64 % layout::FRAME_ALIGN != 0 {
                    return Err(Corruption::FrameWord { pos, word });
                }
                if skip > room {
                    return Err(Corruption::FrameOverrun {
                        pos,
                        needs: skip,
                        available: room,
                    });
                }
                Ok(Parsed::Pad { skip })
            }
            frame_word::Decoded::Empty => Ok(Parsed::NotReady),
            frame_word::Decoded::Invalid => Err(Corruption::FrameWord { pos, word }),
        }
    }

    /// Checks a cursor pair read from the header against the invariant
    /// `head <= tail <= head + capacity`, both multiples of 8.
    fn check_cursors(&self, head: u64, tail: u64) -> Result<(), Corruption> {
        for cursor in [head, tail] {
            check_range(cursor)?;
            if cursor % layout::FRAME_ALIGN != 0 {
                return Err(Corruption::MisalignedCursor { cursor });
            }
        }
        if head > tail || tail - head > self.capacity() {
            return Err(Corruption::Cursors {
                head,
                tail,
                capacity: self.capacity(),
            });
        }
        Ok(())
    }
}

impl FramedMem for RawRing {
    type W64 = AtomicU64;

    #[inline]
    fn head(&self) -> &AtomicU64 {
        &self.header().consumer.head
    }

    #[inline]
    fn tail(&self) -> &AtomicU64 {
        &self.header().producer.tail
    }

    /// The frame word at position `pos` (a multiple of 8).
    #[inline]
    fn word(&self, pos: u64) -> &AtomicU64 {
        let off = self.offset(pos);
        debug_assert_eq!(off % 8, 0, "frame positions are 8-byte aligned");
        // SAFETY: `off` is masked below `capacity`, so the pointer stays
        // inside the data area.
        let p = unsafe { self.data.add(off as usize) }.cast::<AtomicU64>();
        // SAFETY: `off` is a multiple of 8 (callers only pass validated,
        // aligned positions; the debug_assert guards it) and below
        // `capacity`, itself a multiple of 8, so the 8 bytes at `off` lie
        // inside the 8-byte aligned data area; atomics tolerate concurrent
        // access from other processes.
        unsafe { p.as_ref() }
    }

    #[inline]
    fn capacity(&self) -> u64 {
        self.capacity
    }

    #[inline]
    fn max_frame(&self) -> u64 {
        self.max_frame
    }

    fn zero(&self, from: u64, to: u64) {
        let mut pos = from;
        while pos < to {
            let off = self.offset(pos);
            let n = (to - pos).min(self.capacity - off);
            // SAFETY: `off + n <= capacity` by construction of `n`.
            let p = unsafe { self.bytes(off, n) };
            // SAFETY: the caller owns `[from, to)` (read, not yet released):
            // no producer writes it until the head store that follows.
            unsafe { p.as_ptr().write_bytes(0, n as usize) };
            pos += n;
        }
    }
}

/// Refuses a cursor at or beyond [`layout::MAX_CURSOR`], so that cursor
/// arithmetic can never overflow.
#[inline]
pub(crate) fn check_range(cursor: u64) -> Result<u64, Corruption> {
    if cursor >= layout::MAX_CURSOR {
        return Err(Corruption::CursorOutOfRange { cursor });
    }
    Ok(cursor)
}

/// What [`RawRing::parse`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A data frame: payload at data offset `payload`, `len` bytes; the
    /// whole frame takes `size` bytes.
    Data { payload: u64, len: u64, size: u64 },
    /// A padding or skip record: `skip` bytes that carry no frame.
    Pad { skip: u64 },
    /// A zero word: nothing published here yet.
    NotReady,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Kind;

    /// A heap-backed ring for unit tests: the core does not care where its
    /// memory lives.
    struct Heap {
        _hdr: Box<std::mem::MaybeUninit<Header>>,
        _data: Vec<u64>,
        raw: RawRing,
    }

    fn heap(capacity: u64) -> Heap {
        let mut hdr = Box::new(std::mem::MaybeUninit::<Header>::zeroed());
        let mut data = vec![0u64; (capacity / 8) as usize];
        let geo = Geometry {
            kind: Kind::Spsc,
            capacity,
            max_frame: layout::default_max_frame(capacity),
            slot_count: 0,
        };
        // SAFETY: both allocations live in `Heap` next to the RawRing and
        // are never moved (Box and Vec keep their heap addresses).
        let raw = unsafe {
            RawRing::new(
                NonNull::new(hdr.as_mut_ptr()).unwrap(),
                NonNull::new(data.as_mut_ptr().cast()).unwrap(),
                geo,
            )
        };
        Heap {
            _hdr: hdr,
            _data: data,
            raw,
        }
    }

    #[test]
    fn placement_pads_only_when_needed() {
        let h = heap(64);
        let r = h.raw;
        assert_eq!(r.place(0, 24), (0, 0));
        assert_eq!(r.place(32, 24), (0, 32)); // 32 + 32 == 64: fits exactly
        assert_eq!(r.place(40, 24), (24, 64)); // pads the last 24 bytes
        assert_eq!(r.place(64 + 56, 0), (0, 120)); // an empty frame fits in 8
    }

    #[test]
    fn parse_rejects_what_a_correct_producer_never_writes() {
        let h = heap(64);
        let r = h.raw;
        use std::sync::atomic::Ordering::Relaxed;
        r.word(0).store(frame_word::data(5), Relaxed);
        assert_eq!(
            r.parse(0, 16),
            Ok(Parsed::Data {
                payload: 8,
                len: 5,
                size: 16
            })
        );
        // Committed bytes shorter than the frame.
        assert!(matches!(
            r.parse(0, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        // Longer than max_frame (24 for a 64-byte ring).
        r.word(0).store(frame_word::data(25), Relaxed);
        assert!(matches!(
            r.parse(0, 64),
            Err(Corruption::FrameTooLong { len: 25, .. })
        ));
        // A frame that would run past the end of the data area.
        r.word(48).store(frame_word::data(16), Relaxed);
        assert!(matches!(
            r.parse(48, 64),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(48).store(frame_word::PAD, Relaxed);
        assert_eq!(r.parse(48, 16), Ok(Parsed::Pad { skip: 16 }));
        assert!(matches!(
            r.parse(48, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(0).store(frame_word::skip(8), Relaxed);
        assert_eq!(r.parse(0, 16), Ok(Parsed::Pad { skip: 16 }));
        assert!(matches!(
            r.parse(0, 8),
            Err(Corruption::FrameOverrun { .. })
        ));
        r.word(0).store(frame_word::skip(4), Relaxed);
        assert!(matches!(r.parse(0, 16), Err(Corruption::FrameWord { .. })));
        r.word(8).store(0xdead_beef, Relaxed);
        assert!(matches!(r.parse(8, 8), Err(Corruption::FrameWord { .. })));
        r.word(16).store(0, Relaxed);
        assert_eq!(r.parse(16, 8), Ok(Parsed::NotReady));
    }

    #[test]
    fn cursor_invariant() {
        let h = heap(64);
        let r = h.raw;
        assert!(r.check_cursors(0, 0).is_ok());
        assert!(r.check_cursors(8, 72).is_ok());
        assert!(matches!(
            r.check_cursors(16, 8),
            Err(Corruption::Cursors { .. })
        ));
        assert!(matches!(
            r.check_cursors(0, 72),
            Err(Corruption::Cursors { .. })
        ));
        assert!(matches!(
            r.check_cursors(3, 8),
            Err(Corruption::MisalignedCursor { cursor: 3 })
        ));
        assert!(matches!(
            r.check_cursors(u64::MAX - 7, u64::MAX - 7),
            Err(Corruption::CursorOutOfRange { .. })
        ));
    }
}
