//! The operation model of mmring, one file for every flavour and for both
//! its users: `tests/model.rs` runs it under proptest over every flavour
//! (and through `AnyRing` of every kind), and the fuzz targets `ops_spsc`,
//! `ops_mpsc` and `ops_mpmc` include this same file with
//! `#[path = "../../tests/common/model.rs"]` and feed it decoded bytes.
//! It depends on `std` and `mmring` only.
//!
//! In one thread every flavour delivers in claim order, so the model is a
//! queue of claimed entries (messages, and on mpsc and mpmc the aborted
//! claims that still occupy space until a consumer passes them), plus the
//! ring's byte positions for framed rings. It predicts exactly whether a
//! reservation fits, what each receive returns, and what `is_full`,
//! `is_empty`, `len_hint`, `len` and `stat` say after every step. That
//! exact order implies the weaker guarantees the threaded and multi-process
//! tests check: per-producer FIFO and exactly-once delivery (a multiset).
//! A send-side batch on spsc is invisible until published; on mpsc and
//! mpmc each message is visible as soon as it is committed.
#![allow(dead_code)]

use std::collections::VecDeque;
use std::fmt::Debug;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use mmring::mpmc::Mpmc;
use mmring::mpsc::Mpsc;
use mmring::spsc::Spsc;
use mmring::{
    AnyKind, AnyRing, Config, Consumer, Error, FixedKind, Flavour, Kind, Producer, RecvError, Ring,
    SendError,
};

/// A flavour as the tests drive it: one way to make, open and reattach a
/// ring of it, whatever its constructors look like.
pub trait TestFlavour: Flavour + Debug {
    /// For messages.
    const NAME: &'static str;
    /// A new anonymous ring of `kind` (the flavour's own kind, for the
    /// fixed flavours).
    fn anonymous(kind: Kind, cfg: Config) -> Result<Ring<Self>, Error>;
    /// A new ring file of `kind`.
    fn create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error>;
    /// An existing ring file.
    fn open(path: &Path) -> Result<Ring<Self>, Error>;
    /// An existing ring file, or a new one of `kind`.
    fn open_or_create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error>;
    /// A ring through its fd.
    fn from_fd(fd: OwnedFd) -> Result<Ring<Self>, Error>;
    /// `Consumer::len`, where the flavour has it (mpmc).
    fn exact_len(_rx: &Consumer<Self>) -> Option<usize> {
        None
    }
}

fn fixed_kind<P: FixedKind>(kind: Kind) {
    assert_eq!(kind, P::KIND, "a fixed flavour makes rings of its own kind");
}

impl TestFlavour for Spsc {
    const NAME: &'static str = "spsc";
    fn anonymous(kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::anonymous(cfg)
    }
    fn create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::create(path, cfg)
    }
    fn open(path: &Path) -> Result<Ring<Self>, Error> {
        Ring::<Self>::open(path)
    }
    fn open_or_create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::open_or_create(path, cfg)
    }
    fn from_fd(fd: OwnedFd) -> Result<Ring<Self>, Error> {
        Ring::<Self>::from_fd(fd)
    }
}

impl TestFlavour for Mpsc {
    const NAME: &'static str = "mpsc";
    fn anonymous(kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::anonymous(cfg)
    }
    fn create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::create(path, cfg)
    }
    fn open(path: &Path) -> Result<Ring<Self>, Error> {
        Ring::<Self>::open(path)
    }
    fn open_or_create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::open_or_create(path, cfg)
    }
    fn from_fd(fd: OwnedFd) -> Result<Ring<Self>, Error> {
        Ring::<Self>::from_fd(fd)
    }
}

impl TestFlavour for Mpmc {
    const NAME: &'static str = "mpmc";
    fn anonymous(kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::anonymous(cfg)
    }
    fn create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::create(path, cfg)
    }
    fn open(path: &Path) -> Result<Ring<Self>, Error> {
        Ring::<Self>::open(path)
    }
    fn open_or_create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        fixed_kind::<Self>(kind);
        Ring::<Self>::open_or_create(path, cfg)
    }
    fn from_fd(fd: OwnedFd) -> Result<Ring<Self>, Error> {
        Ring::<Self>::from_fd(fd)
    }
    fn exact_len(rx: &Consumer<Self>) -> Option<usize> {
        Some(rx.len())
    }
}

impl TestFlavour for AnyKind {
    const NAME: &'static str = "any";
    fn anonymous(kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        AnyRing::anonymous(kind, cfg)
    }
    fn create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        AnyRing::create(path, kind, cfg)
    }
    fn open(path: &Path) -> Result<Ring<Self>, Error> {
        AnyRing::open(path)
    }
    fn open_or_create(path: &Path, kind: Kind, cfg: Config) -> Result<Ring<Self>, Error> {
        AnyRing::open_or_create(path, kind, cfg)
    }
    fn from_fd(fd: OwnedFd) -> Result<Ring<Self>, Error> {
        AnyRing::from_fd(fd)
    }
}

/// Every kind of ring.
pub const KINDS: [Kind; 3] = [Kind::Spsc, Kind::Mpsc, Kind::Mpmc];

/// A small ring of `kind`, so that op sequences cross wrap-around and the
/// full and empty edges often: framed rings of `64 << (shape % 5)` bytes,
/// mpmc rings of `2 << (shape % 4)` slots of `1 + size % 40` bytes.
pub fn small_config(kind: Kind, shape: u8, size: u8) -> Config {
    match kind {
        Kind::Mpmc => Config::slots(2 << (shape % 4), 1 + size as u64 % 40),
        _ => Config::new(64 << (shape % 5)),
    }
}

/// How many producer and consumer handles the model drives on a ring of
/// `kind`: as many as the flavour allows, up to three and two.
pub fn handles(kind: Kind) -> (usize, usize) {
    match kind {
        Kind::Spsc => (1, 1),
        Kind::Mpsc => (3, 1),
        _ => (3, 2),
    }
}

/// One step. Lengths are raw values scaled onto `0..=max_frame` (or onto
/// the reservation) by [`scale`], with both edges common; handle indices
/// are taken modulo the number of handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Reserve, write a pattern, then commit `keep` of it or abort
    /// (`None`). `blocking` uses `reserve_timeout` with an enormous timeout
    /// when the model says the frame fits (it must return at once).
    Reserve {
        producer: u8,
        len: u16,
        keep: Option<u16>,
        blocking: bool,
    },
    /// Copying send: `try_send`, or `send_timeout(.., Duration::MAX)` when
    /// `blocking` and the model says it fits.
    Send {
        producer: u8,
        len: u16,
        blocking: bool,
    },
    /// `try_send_pod` of a `u64`.
    SendPod { producer: u8, value: u64 },
    /// A send-side batch through `Producer::batch`: each frame reserved,
    /// written and committed (`keep`) or aborted. With `peek`, a consumer
    /// receives once while the batch is still open; `publish` ends it with
    /// `publish()` rather than by dropping it.
    Batch {
        producer: u8,
        frames: Vec<(u16, Option<u16>)>,
        peek: Option<u8>,
        publish: bool,
    },
    /// `try_send_batch` of copied messages.
    SendBatch { producer: u8, lens: Vec<u16> },
    /// Receive one: `how % 3` picks `try_recv`, `try_recv_into`, or
    /// `recv_timeout(Duration::MAX)` (when the model has a message).
    Recv { consumer: u8, how: u8 },
    /// `try_recv_batch` of up to `max + 1`, or `recv_batch` when
    /// `blocking` and the model has a message.
    RecvBatch {
        consumer: u8,
        max: u8,
        blocking: bool,
    },
    /// `try_iter().take(max + 1)`.
    TryIter { consumer: u8, max: u8 },
    /// Drop a producer handle and attach a new one.
    RestartProducer { producer: u8 },
    /// Drop a consumer handle and attach a new one.
    RestartConsumer { consumer: u8 },
    /// Drop every handle and the ring (unmapping it), and attach again
    /// through a duplicate of its fd.
    Reopen,
}

/// Maps a raw value onto `0..=max`, with the edges (0 and max) common.
pub fn scale(raw: u16, max: usize) -> usize {
    match raw % 8 {
        0 => 0,
        1 => max,
        _ => raw as usize % (max + 1),
    }
}

/// The bytes of message number `counter`.
pub fn pattern(counter: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (counter as usize * 31 + i * 7) as u8)
        .collect()
}

/// A claim that is still in the ring.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    /// A committed message.
    Msg(Vec<u8>),
    /// Space a consumer passes over: an aborted mpmc slot, an mpsc skip
    /// record (an aborted claim, or the tail of a short commit).
    Skip,
}

/// The model state of one ring.
#[derive(Debug)]
struct Model {
    kind: Kind,
    max: usize,
    /// Bytes (framed) or slots (mpmc).
    capacity: u64,
    slots: u64,
    /// In claim order, with each entry's end position (framed rings).
    queue: VecDeque<(Entry, u64)>,
    /// Committed to an open spsc batch, not yet visible.
    staged: Vec<(Vec<u8>, u64)>,
    /// Framed rings: the producers' next position (spsc: committed, mpsc:
    /// claimed) and the position released by the consumer.
    tail: u64,
    head: u64,
}

/// Where a framed ring places a frame of `len` bytes at `tail`: (start,
/// end), after padding to the end of the data area if it does not fit
/// before it (docs/FORMAT.md).
fn place(capacity: u64, tail: u64, len: usize) -> (u64, u64) {
    let need = frame_size(len);
    let contiguous = capacity - tail % capacity;
    let start = if need <= contiguous {
        tail
    } else {
        tail + contiguous
    };
    (start, start + need)
}

/// A frame's size: the 8-byte frame word and the payload padded to 8.
fn frame_size(len: usize) -> u64 {
    8 + (len as u64).div_ceil(8) * 8
}

impl Model {
    fn framed(&self) -> bool {
        self.kind != Kind::Mpmc
    }

    /// Bytes a framed ring keeps free beyond its last frame: spsc, the 8
    /// of its terminator word (docs/FORMAT.md).
    fn reserve(&self) -> u64 {
        if self.kind == Kind::Spsc { 8 } else { 0 }
    }

    /// Whether a reservation of `len` bytes fits now.
    fn fits(&self, len: usize) -> bool {
        if self.framed() {
            let (_, end) = place(self.capacity, self.tail, len);
            end + self.reserve() - self.head <= self.capacity
        } else {
            (self.queue.len() as u64) < self.slots
        }
    }

    /// Records a reservation of `len` bytes that ends with `kept` bytes
    /// committed, or aborted (`None`); `batched` spsc commits stay staged.
    fn claim(&mut self, len: usize, kept: Option<Vec<u8>>, batched: bool) {
        match self.kind {
            Kind::Spsc => {
                let Some(msg) = kept else { return };
                let (start, _) = place(self.capacity, self.tail, len);
                self.tail = start + frame_size(msg.len());
                if batched {
                    self.staged.push((msg, self.tail));
                } else {
                    self.queue.push_back((Entry::Msg(msg), self.tail));
                }
            }
            Kind::Mpsc => {
                let (start, end) = place(self.capacity, self.tail, len);
                self.tail = end;
                match kept {
                    Some(msg) => {
                        let frame_end = start + frame_size(msg.len());
                        self.queue.push_back((Entry::Msg(msg), frame_end));
                        if frame_end < end {
                            self.queue.push_back((Entry::Skip, end));
                        }
                    }
                    None => self.queue.push_back((Entry::Skip, end)),
                }
            }
            _ => {
                let entry = kept.map_or(Entry::Skip, Entry::Msg);
                self.queue.push_back((entry, 0));
            }
        }
    }

    /// Makes an spsc batch's frames visible.
    fn publish(&mut self) {
        for (msg, end) in self.staged.drain(..) {
            self.queue.push_back((Entry::Msg(msg), end));
        }
    }

    /// What one take by a consumer returns: it passes skipped space, then
    /// takes the next message if there is one.
    fn take(&mut self) -> Option<Vec<u8>> {
        while let Some((Entry::Skip, end)) = self.queue.front() {
            self.head = *end;
            self.queue.pop_front();
        }
        let (Entry::Msg(msg), end) = self.queue.pop_front()? else {
            unreachable!("skips were passed above")
        };
        self.head = end;
        Some(msg)
    }

    /// Whether a message is waiting (so a blocking receive returns at once).
    fn has_message(&self) -> bool {
        self.queue.iter().any(|(e, _)| matches!(e, Entry::Msg(_)))
    }

    /// What a ring of this kind holds between steps, in its own units.
    fn occupied(&self) -> u64 {
        if self.framed() {
            self.tail - self.head
        } else {
            self.queue.len() as u64
        }
    }
}

/// The handles the model drives, and the fd to reattach through.
struct Handles<P: Flavour> {
    ring: Option<Ring<P>>,
    txs: Vec<Producer<P>>,
    rxs: Vec<Consumer<P>>,
}

impl<P: TestFlavour> Handles<P> {
    fn attach(ring: Ring<P>, kind: Kind) -> Self {
        let (np, nc) = handles(kind);
        let txs = (0..np).map(|_| ring.producer().unwrap()).collect();
        let rxs = (0..nc).map(|_| ring.consumer().unwrap()).collect();
        Handles {
            ring: Some(ring),
            txs,
            rxs,
        }
    }

    fn ring(&self) -> &Ring<P> {
        self.ring.as_ref().unwrap()
    }
}

/// Checks a received message against the model's, and that an 8-byte one
/// is viewable in place as a `u64` (payloads are 8-byte aligned).
fn check_msg(got: &[u8], want: Option<Vec<u8>>, step: usize) {
    assert_eq!(Some(got), want.as_deref(), "step {step}: received message");
}

fn check_pod(frame: &mmring::ReadGrant<'_, impl Flavour>, step: usize) {
    if frame.len() == 8 {
        let v = u64::from_ne_bytes(frame[..].try_into().unwrap());
        assert_eq!(frame.as_pod::<u64>(), Ok(&v), "step {step}: as_pod");
    } else {
        assert!(frame.as_pod::<u64>().is_err(), "step {step}: as_pod size");
    }
}

/// Runs `ops` on `ring` (fresh, never used) against the model, panicking
/// with the step number on the first difference. Ends by draining the ring
/// and sending a maximal frame into it.
pub fn run<P: TestFlavour>(ring: Ring<P>, ops: &[Op]) {
    let kind = ring.kind();
    let st = ring.stat();
    let fd_file = std::fs::File::from(ring.as_fd().try_clone_to_owned().unwrap());
    let mut m = Model {
        kind,
        max: ring.max_frame(),
        capacity: ring.capacity(),
        slots: st.slot_count,
        queue: VecDeque::new(),
        staged: Vec::new(),
        tail: st.tail,
        head: st.head,
    };
    assert_eq!(st.head, st.tail, "a fresh ring");
    let max = m.max;
    let mut h = Handles::attach(ring, kind);
    let (np, nc) = handles(kind);

    // A frame longer than max_frame is refused whatever the state.
    assert_eq!(
        h.txs[0].try_reserve(max + 1).unwrap_err(),
        SendError::TooLarge { len: max + 1, max }
    );

    for (step, op) in ops.iter().enumerate() {
        let counter = step as u64 + 1;
        match op {
            Op::Reserve {
                producer,
                len,
                keep,
                blocking,
            } => {
                let len = scale(*len, max);
                let fits = m.fits(len);
                let tx = &mut h.txs[*producer as usize % np];
                let r = if *blocking && fits {
                    tx.reserve_timeout(len, Duration::from_secs(u64::MAX / 2))
                } else {
                    tx.try_reserve(len)
                };
                match r {
                    Ok(mut g) => {
                        assert!(fits, "step {step}: reserved {len} though the model is full");
                        assert_eq!((g.len(), g.reserved_len()), (len, len));
                        let bytes = pattern(counter, len);
                        g.copy_from_slice(&bytes);
                        match keep {
                            Some(k) => {
                                let k = scale(*k, len);
                                g.commit_len(k);
                                m.claim(len, Some(bytes[..k].to_vec()), false);
                            }
                            None => {
                                g.abort();
                                m.claim(len, None, false);
                            }
                        }
                    }
                    Err(e) => {
                        assert_eq!(e, SendError::Full, "step {step}");
                        assert!(!fits, "step {step}: {len} bytes fit, yet Full");
                    }
                }
            }
            Op::Send {
                producer,
                len,
                blocking,
            } => {
                let len = scale(*len, max);
                let fits = m.fits(len);
                let bytes = pattern(counter, len);
                let tx = &mut h.txs[*producer as usize % np];
                let r = if *blocking && fits {
                    tx.send_timeout(&bytes, Duration::MAX)
                } else {
                    tx.try_send(&bytes)
                };
                match r {
                    Ok(()) => {
                        assert!(fits, "step {step}: sent {len} though the model is full");
                        m.claim(len, Some(bytes), false);
                    }
                    Err(e) => {
                        assert_eq!(e, SendError::Full, "step {step}");
                        assert!(!fits, "step {step}: {len} bytes fit, yet Full");
                    }
                }
            }
            Op::SendPod { producer, value } => {
                let fits = m.fits(8);
                let r = h.txs[*producer as usize % np].try_send_pod(value);
                if max < 8 {
                    assert_eq!(r, Err(SendError::TooLarge { len: 8, max }), "step {step}");
                } else if fits {
                    assert_eq!(r, Ok(()), "step {step}");
                    m.claim(8, Some(value.to_ne_bytes().to_vec()), false);
                } else {
                    assert_eq!(r, Err(SendError::Full), "step {step}");
                }
            }
            Op::Batch {
                producer,
                frames,
                peek,
                publish,
            } => {
                let mut batch = h.txs[*producer as usize % np].batch();
                for (i, (len, keep)) in frames.iter().enumerate() {
                    let len = scale(*len, max);
                    let fits = m.fits(len);
                    // A blocking reserve publishes the batch before it
                    // waits; when the frame fits it must not wait at all.
                    let r = if fits && i % 2 == 1 {
                        batch.reserve_timeout(len, Duration::MAX)
                    } else {
                        batch.try_reserve(len)
                    };
                    match r {
                        Ok(mut g) => {
                            assert!(fits, "step {step}: batch reserved {len} though full");
                            assert_eq!(g.reserved_len(), len);
                            let bytes = pattern(counter * 1000 + i as u64, len);
                            g.copy_from_slice(&bytes);
                            match keep {
                                Some(k) => {
                                    let k = scale(*k, len);
                                    g.commit_len(k);
                                    m.claim(len, Some(bytes[..k].to_vec()), true);
                                }
                                None => {
                                    g.abort();
                                    m.claim(len, None, true);
                                }
                            }
                        }
                        Err(e) => {
                            assert_eq!(e, SendError::Full, "step {step}");
                            assert!(!fits, "step {step}: batch: {len} bytes fit, yet Full");
                        }
                    }
                }
                if let Some(c) = peek {
                    // spsc: nothing committed in the open batch is visible
                    // yet; mpsc and mpmc: each message already is.
                    let rx = &mut h.rxs[*c as usize % nc];
                    check_is_empty(rx, &m, step);
                    let want = m.take();
                    match rx.try_recv() {
                        Ok(f) => check_msg(&f[..], want, step),
                        Err(e) => {
                            assert_eq!(e, RecvError::Empty, "step {step}");
                            assert_eq!(want, None, "step {step}: peek in an open batch");
                        }
                    }
                }
                if *publish {
                    batch.publish();
                } else {
                    drop(batch);
                }
                m.publish();
            }
            Op::SendBatch { producer, lens } => {
                let msgs: Vec<Vec<u8>> = lens
                    .iter()
                    .enumerate()
                    .map(|(i, l)| pattern(counter * 1000 + i as u64, scale(*l, max)))
                    .collect();
                let r = h.txs[*producer as usize % np].try_send_batch(&msgs);
                let sent = match r {
                    Ok(n) => n,
                    Err(e) => {
                        assert_eq!(e, SendError::Full, "step {step}");
                        assert!(!msgs.is_empty());
                        0
                    }
                };
                for msg in &msgs[..sent] {
                    assert!(m.fits(msg.len()), "step {step}: batch sent past full");
                    m.claim(msg.len(), Some(msg.clone()), false);
                }
                if let Some(next) = msgs.get(sent) {
                    assert!(
                        !m.fits(next.len()),
                        "step {step}: try_send_batch stopped at {sent} though the next fits"
                    );
                }
            }
            Op::Recv { consumer, how } => {
                let rx = &mut h.rxs[*consumer as usize % nc];
                match how % 3 {
                    1 => {
                        let mut buf = vec![0xAA; 3];
                        let r = rx.try_recv_into(&mut buf);
                        let want = m.take();
                        match r {
                            Ok(n) => {
                                assert_eq!(n, buf.len());
                                check_msg(&buf, want, step);
                            }
                            Err(e) => {
                                assert_eq!(e, RecvError::Empty, "step {step}");
                                assert_eq!(want, None, "step {step}: Empty, yet the model has");
                            }
                        }
                    }
                    2 if m.has_message() => {
                        let f = rx.recv_timeout(Duration::MAX).unwrap();
                        check_pod(&f, step);
                        check_msg(&f[..], m.take(), step);
                    }
                    _ => {
                        let r = rx.try_recv();
                        let want = m.take();
                        match r {
                            Ok(f) => {
                                check_pod(&f, step);
                                check_msg(&f[..], want, step);
                            }
                            Err(e) => {
                                assert_eq!(e, RecvError::Empty, "step {step}");
                                assert_eq!(want, None, "step {step}: Empty, yet the model has");
                            }
                        }
                    }
                }
            }
            Op::RecvBatch {
                consumer,
                max: bmax,
                blocking,
            } => {
                let bmax = *bmax as usize + 1;
                let rx = &mut h.rxs[*consumer as usize % nc];
                let mut got = Vec::new();
                let r = if *blocking && m.has_message() {
                    if step % 2 == 0 {
                        rx.recv_batch(bmax, |f| got.push(f.to_vec()))
                    } else {
                        rx.recv_batch_timeout(bmax, Duration::MAX, |f| got.push(f.to_vec()))
                    }
                } else {
                    rx.try_recv_batch(bmax, |f| got.push(f.to_vec()))
                };
                // The batch takes the first message, then more while there
                // are any, up to `bmax`.
                let mut want = Vec::new();
                while want.len() < bmax {
                    match m.take() {
                        Some(msg) => want.push(msg),
                        None => break,
                    }
                }
                match r {
                    Ok(n) => assert_eq!(n, got.len(), "step {step}"),
                    Err(e) => assert_eq!(e, RecvError::Empty, "step {step}"),
                }
                assert_eq!(got, want, "step {step}: batch of up to {bmax}");
            }
            Op::TryIter {
                consumer,
                max: imax,
            } => {
                let rx = &mut h.rxs[*consumer as usize % nc];
                let n = *imax as usize + 1;
                let got: Vec<mmring::Frame> = rx.try_iter().take(n).collect();
                for (i, f) in got.iter().enumerate() {
                    check_msg(&f[..], m.take(), step);
                    if f.len() == 8 {
                        let v = u64::from_ne_bytes(f[..].try_into().unwrap());
                        assert_eq!(f.as_pod::<u64>(), Ok(&v), "step {step}: Frame::as_pod {i}");
                    }
                }
                if got.len() < n {
                    // It ended because the ring was empty.
                    assert_eq!(m.take(), None, "step {step}: try_iter ended early");
                }
            }
            Op::RestartProducer { producer } => {
                // Detach first: an exclusive role is free only once the old
                // handle is gone.
                let i = *producer as usize % np;
                h.txs.remove(i);
                let tx = h.ring().producer().unwrap();
                h.txs.insert(i, tx);
            }
            Op::RestartConsumer { consumer } => {
                let i = *consumer as usize % nc;
                h.rxs.remove(i);
                let rx = h.ring().consumer().unwrap();
                h.rxs.insert(i, rx);
            }
            Op::Reopen => {
                h.txs.clear();
                h.rxs.clear();
                drop(h.ring.take()); // unmap before attaching again
                let dup = fd_file.as_fd().try_clone_to_owned().unwrap();
                h = Handles::attach(P::from_fd(dup).unwrap(), kind);
            }
        }
        check_state(&h, &m, step);
    }

    // Drain: everything the model holds comes out, in order, then nothing.
    while let Some(want) = m.take() {
        let got = h.rxs[0].try_recv().unwrap();
        assert_eq!(&got[..], &want[..], "drain");
    }
    assert_eq!(h.rxs[0].try_recv().unwrap_err(), RecvError::Empty);
    check_state(&h, &m, ops.len());
    // And a maximal message fits again, and comes out whole.
    h.txs[0].try_send(&vec![9; max]).unwrap();
    assert_eq!(h.rxs[nc - 1].try_recv().unwrap().len(), max);
}

/// `is_empty` says whether no message is waiting: false while one is, true
/// while nothing at all is. (With only skipped space waiting, an aborted
/// mpmc slot or an mpsc skip record, it says false today although no
/// message is waiting: `api.rs` `is_empty_with_only_skipped_space`.)
fn check_is_empty<P: Flavour>(rx: &Consumer<P>, m: &Model, step: usize) {
    if m.has_message() {
        assert!(!rx.is_empty(), "step {step}: a message waits, yet is_empty");
    }
    if m.queue.is_empty() {
        assert!(
            rx.is_empty(),
            "step {step}: nothing waits, yet not is_empty"
        );
    }
}

/// What the handles say about the ring between steps, against the model.
fn check_state<P: TestFlavour>(h: &Handles<P>, m: &Model, step: usize) {
    let occupied = m.occupied();
    let st = h.ring().stat();
    assert_eq!(st.tail - st.head, occupied, "step {step}: stat cursors");
    for tx in &h.txs {
        assert_eq!(tx.len_hint(), occupied, "step {step}: Producer::len_hint");
        let full = if m.framed() {
            occupied + 8 + m.reserve() > m.capacity
        } else {
            occupied >= m.slots
        };
        assert_eq!(tx.is_full(), full, "step {step}: is_full");
        // "Full" means exactly that not even an empty message fits.
        assert_eq!(full, !m.fits(0), "step {step}: model: full vs fits(0)");
    }
    for rx in &h.rxs {
        check_is_empty(rx, m, step);
        assert_eq!(rx.len_hint(), occupied, "step {step}: Consumer::len_hint");
        if let Some(len) = P::exact_len(rx) {
            assert_eq!(len, m.queue.len(), "step {step}: Consumer::len");
        }
    }
}

/// Reads the fuzzer's bytes as a ring shape and an op sequence: every
/// input decodes to something (missing bytes read as zero), so libFuzzer's
/// mutations all reach the model.
pub fn decode(data: &[u8]) -> (u8, u8, Vec<Op>) {
    let mut b = data.iter().copied();
    let mut byte = move || b.next();
    let shape = byte().unwrap_or(0);
    let size = byte().unwrap_or(0);
    let mut ops = Vec::new();
    while let Some(tag) = byte() {
        let mut u8_ = || byte().unwrap_or(0);
        let a = u8_();
        let l = u16::from_le_bytes([u8_(), u8_()]);
        let op = match tag % 12 {
            0 | 1 => Op::Reserve {
                producer: a,
                len: l,
                keep: (tag & 0x80 == 0).then(|| u16::from_le_bytes([u8_(), u8_()])),
                blocking: tag & 0x40 != 0,
            },
            2 => Op::Send {
                producer: a,
                len: l,
                blocking: tag & 0x40 != 0,
            },
            3 => Op::SendPod {
                producer: a,
                value: l as u64 * 0x0101_0101,
            },
            4 => Op::Batch {
                producer: a,
                frames: (0..l % 6)
                    .map(|_| {
                        let len = u16::from_le_bytes([u8_(), u8_()]);
                        let keep = u8_();
                        (len, (keep != 0).then_some(keep as u16))
                    })
                    .collect(),
                peek: (tag & 0x80 != 0).then_some(a),
                publish: tag & 0x40 != 0,
            },
            5 => Op::SendBatch {
                producer: a,
                lens: (0..l % 6)
                    .map(|_| u16::from_le_bytes([u8_(), u8_()]))
                    .collect(),
            },
            6 | 7 => Op::Recv {
                consumer: a,
                how: tag >> 4,
            },
            8 => Op::RecvBatch {
                consumer: a,
                max: l as u8,
                blocking: tag & 0x40 != 0,
            },
            9 => Op::TryIter {
                consumer: a,
                max: l as u8,
            },
            10 => match tag & 0x80 {
                0 => Op::RestartProducer { producer: a },
                _ => Op::RestartConsumer { consumer: a },
            },
            _ => Op::Reopen,
        };
        ops.push(op);
    }
    (shape, size, ops)
}

/// The bytes [`decode`] reads back as `shape`, `size` and `ops` (for ops
/// that `decode` can produce): how fuzz seeds are written, and a check that
/// the input format reaches every op.
pub fn encode(shape: u8, size: u8, ops: &[Op]) -> Vec<u8> {
    let mut out = vec![shape, size];
    for op in ops {
        // The first tag byte that decodes to this op's variant and flags.
        let (a, l, extra): (u8, u16, Vec<u8>) = match op {
            Op::Reserve {
                producer,
                len,
                keep,
                ..
            } => (
                *producer,
                *len,
                keep.map_or(vec![], |k| k.to_le_bytes().to_vec()),
            ),
            Op::Send { producer, len, .. } => (*producer, *len, vec![]),
            Op::SendPod { producer, value } => (*producer, (*value / 0x0101_0101) as u16, vec![]),
            Op::Batch {
                producer,
                frames,
                peek,
                ..
            } => (
                peek.unwrap_or(*producer),
                frames.len() as u16,
                frames
                    .iter()
                    .flat_map(|(len, keep)| {
                        let [x, y] = len.to_le_bytes();
                        [x, y, keep.map_or(0, |k| k as u8)]
                    })
                    .collect(),
            ),
            Op::SendBatch { producer, lens } => (
                *producer,
                lens.len() as u16,
                lens.iter().flat_map(|l| l.to_le_bytes()).collect(),
            ),
            Op::Recv { consumer, .. } => (*consumer, 0, vec![]),
            Op::RecvBatch { consumer, max, .. } | Op::TryIter { consumer, max } => {
                (*consumer, *max as u16, vec![])
            }
            Op::RestartProducer { producer: a } | Op::RestartConsumer { consumer: a } => {
                (*a, 0, vec![])
            }
            Op::Reopen => (0, 0, vec![]),
        };
        let mut bytes = vec![0, a];
        bytes.extend(l.to_le_bytes());
        bytes.extend(extra);
        let tag = (0..=255u8)
            .find(|&t| {
                bytes[0] = t;
                decode(&[&[0, 0][..], &bytes].concat()).2.first() == Some(op)
            })
            .unwrap_or_else(|| panic!("{op:?} cannot be encoded"));
        bytes[0] = tag;
        out.extend(bytes);
    }
    out
}
