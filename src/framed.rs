//! The reading side of the framed rings (spsc and mpsc): one consumer
//! walking frame words in order, reading payloads in place, and releasing
//! space by storing `head`.
//!
//! The two flavours differ in two places only. In an SPSC ring everything
//! below `tail` is published, so a zero frame word there is corruption. In
//! an MPSC ring `tail` only says what producers have *claimed*; a frame is
//! published by its own frame word, so a zero word means "not ready yet",
//! and the consumer zeroes what it releases so that every word of the next
//! lap starts out "not ready".

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::time::{Duration, Instant};

use crate::error::{Corruption, Error, RecvError};
use crate::layout::Role;
use crate::ring::{FramedMem, Parsed, RawRing};
use crate::roles::Attachment;
use crate::wait;
use crate::words::Word64;

type Shared = crate::shared::Shared<RawRing>;

/// The shared state of a framed ring (spsc or mpsc) over `region`, after
/// checking its cursors.
pub(crate) fn shared(region: crate::region::Region) -> Result<Arc<Shared>, Error> {
    // SAFETY: the region maps the header at offset 0 (page-aligned) and
    // `capacity` bytes at DATA_OFFSET; `Shared` owns the region, and the
    // RawRing never outlives it (both live in one Arc).
    let raw = unsafe { RawRing::new(region.header(), region.data(), region.geometry()) };
    raw.check_quiescent_cursors()?;
    Ok(Arc::new(Shared { region, raw }))
}

/// Claims the consumer role of a framed ring and positions the consumer at
/// the last released frame.
pub(crate) fn attach(shared: &Arc<Shared>, multi_producer: bool) -> Result<Consumer, Error> {
    let lock = shared.attach(Role::Consumer, true)?;
    let h = shared.header();
    // The head is ours now; tail is read after it, so a correct ring
    // satisfies the invariant whatever the producers are doing.
    let head = h.consumer.head.load(SeqCst);
    let tail = h.producer.tail.load(SeqCst);
    if let Err(c) = shared.raw.check_cursors(head, tail) {
        shared.detach(Role::Consumer, lock);
        return Err(c.into());
    }
    Ok(Consumer {
        shared: shared.clone(),
        lock: Some(lock),
        cur: Cursor {
            read: head,
            released: head,
            cached_tail: tail,
            multi_producer,
        },
    })
}

/// The consumer's private view of the cursors.
#[derive(Debug)]
struct Cursor {
    /// Next position to read (past any padding already skipped).
    read: u64,
    /// Head as last stored to the header; `released <= read`.
    released: u64,
    /// Last tail we read; the producer may be further along.
    cached_tail: u64,
    /// MPSC: a zero frame word below `tail` means "not ready", and
    /// released space is zeroed.
    multi_producer: bool,
}

impl Cursor {
    /// Locates the frame at `read`, skipping padding and skip records. When
    /// there is no frame to return but records were skipped, their space is
    /// released at once, so producers are never kept waiting for it.
    fn next(&mut self, shared: &Shared) -> Result<Option<Located>, Corruption> {
        let r = locate(
            &shared.raw,
            &mut self.read,
            self.released,
            &mut self.cached_tail,
            self.multi_producer,
        );
        if matches!(r, Ok(None)) && self.read > self.released {
            self.release_to(shared, self.read);
        }
        r
    }

    fn release_to(&mut self, shared: &Shared, pos: u64) {
        release_frames(&shared.raw, &mut self.released, pos, self.multi_producer);
        shared.space_point().notify();
    }
}

/// Hands `[*released, pos)` back to the producers: zeroed first for MPSC (so
/// every frame word of the next lap reads "not ready" until published),
/// then one Release store of `head`.
pub(crate) fn release_frames<M: FramedMem>(m: &M, released: &mut u64, pos: u64, multi: bool) {
    debug_assert!(pos >= *released);
    if multi {
        m.zero(*released, pos);
    }
    // ORDERING(head-release): Release; pairs with the producers' Acquire
    // head load, so our reads of the released bytes (and the zeroing)
    // finish before a producer reuses them. It is W1 of the wake-up
    // handshake; the caller's `notify` fences before reading the sleepers.
    m.head().store(pos, Release);
    *released = pos;
}

/// The reading half of a framed ring ([`spsc`](crate::spsc) or
/// [`mpsc`](crate::mpsc)). `Send` and `'static`. Dropping it detaches,
/// waking producers blocked on a full ring so they can return
/// [`SendError::Disconnected`](crate::SendError::Disconnected).
pub struct Consumer {
    shared: Arc<Shared>,
    lock: Option<Attachment>,
    cur: Cursor,
}

impl fmt::Debug for Consumer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("cursor", &self.cur)
            .finish_non_exhaustive()
    }
}

/// A frame located by [`Consumer::next_frame`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    /// Data-area offset of the payload.
    pub payload: u64,
    /// Payload length.
    pub len: u64,
    /// Position just past the frame.
    pub next: u64,
}

impl Consumer {
    /// Takes the next frame without blocking. The grant derefs to the
    /// payload inside the mapping; dropping it releases the space.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no committed frame is waiting;
    /// [`RecvError::Corrupt`] if the ring is inconsistent (the consumer
    /// stays in place, so every later call reports the same).
    pub fn try_recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        match self.next_frame()? {
            Some(f) => Ok(self.grant(f)),
            None => Err(RecvError::Empty),
        }
    }

    /// Takes the next frame, blocking while the ring is empty.
    ///
    /// # Errors
    ///
    /// [`RecvError::Disconnected`] once the ring is empty and the producer
    /// has detached or died (within about 200 ms of a `kill -9`);
    /// [`RecvError::Corrupt`].
    pub fn recv(&mut self) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(None)
    }

    /// As [`recv`](Consumer::recv), giving up with [`RecvError::Timeout`]
    /// after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let mut rx = ring.consumer()?;
    /// assert_eq!(
    ///     rx.recv_timeout(Duration::from_millis(10)).unwrap_err(),
    ///     mmring::RecvError::Timeout,
    /// );
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<ReadGrant<'_>, RecvError> {
        self.recv_until(Some(Instant::now() + timeout))
    }

    fn recv_until(&mut self, deadline: Option<Instant>) -> Result<ReadGrant<'_>, RecvError> {
        let f = self.wait_frame(deadline)?;
        Ok(self.grant(f))
    }

    fn wait_frame(&mut self, deadline: Option<Instant>) -> Result<Located, RecvError> {
        let shared = &*self.shared;
        let lock = self
            .lock
            .as_ref()
            .expect("role lock held while the handle lives");
        let cur = &mut self.cur;
        let r = wait::block(
            shared.data_point(),
            deadline,
            || cur.next(shared),
            || shared.peer_gone(lock, Role::Producer),
        );
        Ok(r?)
    }

    crate::grant::copying_recv!();

    /// Hands up to `max` waiting frames to `f`, in order, then releases
    /// them all with one cursor store: fewer cache-line transfers than one
    /// release per frame. Does not block; returns how many frames `f` saw.
    ///
    /// # Errors
    ///
    /// [`RecvError::Empty`] if no frame is waiting; [`RecvError::Corrupt`]
    /// if the first frame is corrupt (a corrupt frame after good ones ends
    /// the batch early, and the next call reports it).
    ///
    /// ```
    /// let ring = mmring::spsc::Ring::anonymous(mmring::Config::new(4096))?;
    /// let (mut tx, mut rx) = (ring.producer()?, ring.consumer()?);
    /// for i in 0..10u8 { tx.send(&[i])?; }
    /// let mut sum = 0;
    /// let n = rx.try_recv_batch(usize::MAX, |frame| sum += frame[0] as u32)?;
    /// assert_eq!((n, sum), (10, 45));
    /// # Ok::<(), mmring::Error>(())
    /// ```
    pub fn try_recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = match self.next_frame()? {
            Some(first) => first,
            None => return Err(RecvError::Empty),
        };
        Ok(self.drain(first, max, f))
    }

    /// As [`try_recv_batch`](Consumer::try_recv_batch), but blocks until at
    /// least one frame is waiting.
    ///
    /// # Errors
    ///
    /// As [`recv`](Consumer::recv).
    pub fn recv_batch(&mut self, max: usize, f: impl FnMut(&[u8])) -> Result<usize, RecvError> {
        let first = self.wait_frame(None)?;
        Ok(self.drain(first, max, f))
    }

    fn drain(&mut self, first: Located, max: usize, mut f: impl FnMut(&[u8])) -> usize {
        let mut frame = first;
        let mut n = 0;
        loop {
            // SAFETY: `locate` checked the frame lies in the data area and in
            // the committed, unreleased region, which the producer does not
            // touch until we store a head past it (after this loop).
            f(unsafe { self.payload(frame) });
            n += 1;
            self.cur.read = frame.next;
            if n >= max {
                break;
            }
            match self.next_frame() {
                Ok(Some(next)) => frame = next,
                Ok(None) | Err(_) => break,
            }
        }
        self.cur.release_to(&self.shared, self.cur.read);
        n
    }

    /// Bytes committed and not yet taken by this consumer (a lower bound:
    /// the producer may have committed more since).
    pub fn len_hint(&self) -> u64 {
        // ORDERING: Relaxed; a hint only, no data is read on its basis.
        let tail = self.shared.raw.header().producer.tail.load(Relaxed);
        tail.saturating_sub(self.cur.read)
    }

    /// Whether no committed frame is waiting right now. Answers from the
    /// consumer's cached view of the producer's cursor when that already
    /// shows frames, so a spin loop on it does not pull the producer's
    /// cache line across cores for every frame.
    pub fn is_empty(&self) -> bool {
        self.cur.read >= self.cur.cached_tail && self.len_hint() == 0
    }

    /// Whether a live producer holds the other role right now.
    pub fn is_producer_attached(&self) -> bool {
        self.lock
            .as_ref()
            .is_some_and(|l| l.is_held(Role::Producer))
    }

    /// Locates the frame at the read position, skipping padding.
    fn next_frame(&mut self) -> Result<Option<Located>, Corruption> {
        self.cur.next(&self.shared)
    }

    fn grant(&mut self, frame: Located) -> ReadGrant<'_> {
        ReadGrant {
            consumer: self,
            frame,
        }
    }

    /// # Safety
    ///
    /// `frame` came from `locate` and has not been released.
    unsafe fn payload(&self, frame: Located) -> &[u8] {
        // SAFETY: by the contract, `payload + len <= capacity`.
        let p = unsafe { self.shared.raw.bytes(frame.payload, frame.len) };
        // SAFETY: the bytes are committed and unreleased, so the producer
        // leaves them alone while the returned borrow lives.
        unsafe { std::slice::from_raw_parts(p.as_ptr(), frame.len as usize) }
    }
}

/// Finds the frame at `*read`, skipping padding (which advances `*read`).
/// Re-reads the producer's cursor only when the cached one says empty.
pub(crate) fn locate<M: FramedMem>(
    raw: &M,
    read: &mut u64,
    released: u64,
    cached_tail: &mut u64,
    multi_producer: bool,
) -> Result<Option<Located>, Corruption> {
    loop {
        if *read == *cached_tail {
            // ORDERING(tail-publish): Acquire; pairs with the Release tail
            // store in `spsc::Producer::publish`, making the frame words and
            // payloads before it visible (for mpsc, the frame word's own
            // Release store publishes the frame; see `RawRing::parse`). The
            // re-check (S4) of the wake-up handshake in `wait::block`.
            let tail = raw.tail().load(Acquire);
            if tail < *cached_tail {
                return Err(Corruption::CursorRegressed {
                    seen: *cached_tail,
                    found: tail,
                });
            }
            raw.check_cursors(released, tail)?;
            *cached_tail = tail;
            if *read == tail {
                return Ok(None);
            }
        }
        match raw.parse(*read, *cached_tail - *read)? {
            Parsed::Data { payload, len, size } => {
                return Ok(Some(Located {
                    payload,
                    len,
                    next: *read + size,
                }));
            }
            Parsed::Pad { skip } => *read += skip,
            // Claimed by a producer that has not published it yet.
            Parsed::NotReady if multi_producer => return Ok(None),
            Parsed::NotReady => {
                return Err(Corruption::FrameWord {
                    pos: *read,
                    word: 0,
                });
            }
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if let Some(lock) = self.lock.take() {
            self.shared.detach(Role::Consumer, lock);
        }
    }
}

/// A frame taken by [`Consumer::try_recv`] and friends.
///
/// Derefs to the payload inside the shared mapping, 8-byte aligned. The
/// space is released to the producer when the grant is dropped.
///
/// The bytes are committed and will not be touched by a correct producer
/// until released; a misbehaving process with write access to the mapping
/// could still change them under you, so validate what you parse. mmring
/// itself never derives an address from payload bytes.
#[must_use = "dropping a ReadGrant releases the frame immediately"]
pub struct ReadGrant<'a> {
    consumer: &'a mut Consumer,
    frame: Located,
}

impl fmt::Debug for ReadGrant<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadGrant")
            .field("len", &self.frame.len)
            .finish()
    }
}

crate::grant::read_grant_common!("Releases the frame (the same as dropping the grant).");

impl ReadGrant<'_> {
    fn payload(&self) -> std::ptr::NonNull<u8> {
        // SAFETY: `locate` checked `payload + len <= capacity`.
        unsafe {
            self.consumer
                .shared
                .raw
                .bytes(self.frame.payload, self.frame.len)
        }
    }

    fn payload_len(&self) -> usize {
        self.frame.len as usize
    }
}

impl Drop for ReadGrant<'_> {
    fn drop(&mut self) {
        let c = &mut *self.consumer;
        c.cur.read = self.frame.next;
        c.cur.release_to(&c.shared, self.frame.next);
    }
}

/// Model checks of the framed protocols with loom, running the ring's own
/// functions (`spsc::space` / `spsc::publish_frame`, `mpsc::claim` /
/// `mpsc::publish_claim`, `locate`, `release_frames`) on loom atomics. The
/// payload word of each frame lives in a loom `UnsafeCell`, so a missing
/// happens-before between writing a payload and reading it is reported.
///
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib loom_`
#[cfg(all(test, loom))]
mod loom_models {
    use super::*;
    use crate::layout::default_max_frame;
    use loom::cell::UnsafeCell;
    use loom::sync::Arc;
    use loom::sync::atomic::AtomicU64 as L64;

    const CAP: u64 = 64;

    /// A 64-byte data area on the heap: one loom atomic per 8-byte word
    /// (frame words), and one cell per word for payloads.
    struct Heap {
        head: L64,
        tail: L64,
        words: Vec<L64>,
        cells: Vec<UnsafeCell<u64>>,
    }

    impl Heap {
        fn new() -> Self {
            Heap {
                head: L64::new(0),
                tail: L64::new(0),
                words: (0..CAP / 8).map(|_| L64::new(0)).collect(),
                cells: (0..CAP / 8).map(|_| UnsafeCell::new(0)).collect(),
            }
        }

        fn write_payload(&self, start: u64, v: u64) {
            let i = (self.offset(start) / 8 + 1) as usize;
            // SAFETY: the protocol gives the producer this word until it
            // publishes; loom checks exactly that.
            self.cells[i].with_mut(|p| unsafe { *p = v });
        }

        fn read_payload(&self, f: Located) -> u64 {
            let i = (f.payload / 8) as usize;
            // SAFETY: located and not yet released; loom checks it.
            self.cells[i].with(|p| unsafe { *p })
        }
    }

    impl FramedMem for Heap {
        type W64 = L64;
        fn head(&self) -> &L64 {
            &self.head
        }
        fn tail(&self) -> &L64 {
            &self.tail
        }
        fn word(&self, pos: u64) -> &L64 {
            &self.words[(self.offset(pos) / 8) as usize]
        }
        fn capacity(&self) -> u64 {
            CAP
        }
        fn max_frame(&self) -> u64 {
            default_max_frame(CAP)
        }
        fn zero(&self, from: u64, to: u64) {
            let mut pos = from;
            while pos < to {
                self.word(pos).store(0, Relaxed);
                let i = (self.offset(pos) / 8) as usize;
                // SAFETY: the consumer owns [from, to) until its head store.
                self.cells[i].with_mut(|p| unsafe { *p = 0 });
                pos += 8;
            }
        }
    }

    /// The consumer's side: one attempt, releasing what it took.
    struct Reader {
        read: u64,
        released: u64,
        cached_tail: u64,
        multi: bool,
    }

    impl Reader {
        fn try_recv(&mut self, m: &Heap) -> Option<u64> {
            let got = locate(
                m,
                &mut self.read,
                self.released,
                &mut self.cached_tail,
                self.multi,
            );
            match got.unwrap() {
                Some(f) => {
                    let v = m.read_payload(f);
                    self.read = f.next;
                    release_frames(m, &mut self.released, f.next, self.multi);
                    Some(v)
                }
                None => {
                    if self.read > self.released {
                        release_frames(m, &mut self.released, self.read, self.multi);
                    }
                    None
                }
            }
        }

        fn drain(&mut self, m: &Heap, got: &mut Vec<u64>) {
            while let Some(v) = self.try_recv(m) {
                got.push(v);
            }
        }
    }

    fn spsc_send(m: &Heap, tail: &mut u64, cached_head: &mut u64, len: u64, v: u64) {
        let (pad, start) = crate::spsc::space(m, *tail, cached_head, len)
            .unwrap()
            .expect("the models size frames so they always fit");
        m.write_payload(start, v);
        *tail = crate::spsc::publish_frame(m, *tail, pad, start, len);
    }

    fn mpsc_send(m: &Heap, cached_head: &mut u64, len: u64, v: Option<u64>) {
        let c = crate::mpsc::claim(m, cached_head, len)
            .unwrap()
            .expect("the models size frames so they always fit");
        match v {
            Some(v) => {
                m.write_payload(c.start, v);
                crate::mpsc::publish_claim(m, c, Some(len));
            }
            None => crate::mpsc::publish_claim(m, c, None),
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut b = loom::model::Builder::new();
        b.preemption_bound = Some(2);
        b.check(f);
    }

    /// SPSC after wrap-around: the producer publishes an 8-byte frame and a
    /// 24-byte frame that needs padding, racing the consumer; the consumer
    /// sees them in order, with their payloads, and never a torn frame.
    #[test]
    fn loom_spsc_publish_consume_with_wrap() {
        model(|| {
            let m = Arc::new(Heap::new());
            // Move both cursors to 40 single-threaded, so the next frames
            // reuse released words and the second one wraps with padding.
            let (mut tail, mut ch) = (0, 0);
            let mut r = Reader {
                read: 0,
                released: 0,
                cached_tail: 0,
                multi: false,
            };
            for v in 0..5 {
                spsc_send(&m, &mut tail, &mut ch, 0, v);
                assert!(r.try_recv(&m).is_some());
            }
            assert_eq!(tail, 40);
            let p = m.clone();
            let producer = loom::thread::spawn(move || {
                spsc_send(&p, &mut tail, &mut ch, 8, 1); // 40..56
                spsc_send(&p, &mut tail, &mut ch, 24, 2); // pad 56..64, 64..96
            });
            let mut got: Vec<u64> = r.try_recv(&m).into_iter().collect();
            producer.join().unwrap();
            r.drain(&m, &mut got);
            assert_eq!(got, [1, 2]);
        });
    }

    /// MPSC after wrap-around: two producers claim and publish racing the
    /// consumer, one of them after giving a claim back; frames arrive in
    /// claim order, each once, the aborted one never, and the zeroing of
    /// released space keeps stale words from being read as frames.
    #[test]
    fn loom_mpsc_claim_publish_with_abort() {
        model(|| {
            let m = Arc::new(Heap::new());
            let mut r = Reader {
                read: 0,
                released: 0,
                cached_tail: 0,
                multi: true,
            };
            let mut ch = 0;
            for v in 0..3 {
                mpsc_send(&m, &mut ch, 8, Some(100 + v));
                assert_eq!(r.try_recv(&m), Some(100 + v));
            }
            let p1 = m.clone();
            let a = loom::thread::spawn(move || {
                let mut ch = 0;
                mpsc_send(&p1, &mut ch, 0, None); // an aborted claim
                mpsc_send(&p1, &mut ch, 8, Some(1));
            });
            let c = m.clone();
            let consumer = loom::thread::spawn(move || {
                let got: Vec<u64> = r.try_recv(&c).into_iter().collect();
                (r, got)
            });
            let mut ch = 0;
            mpsc_send(&m, &mut ch, 8, Some(2));
            a.join().unwrap();
            let (mut r, mut got) = consumer.join().unwrap();
            r.drain(&m, &mut got);
            got.sort_unstable();
            assert_eq!(got, [1, 2]);
        });
    }
}
