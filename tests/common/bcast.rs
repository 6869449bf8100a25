//! The broadcast operation model, shared by `tests/broadcast.rs` and the
//! fuzz target `ops_broadcast`: a log of every published frame with the
//! position the layout rules give it, and for each subscriber the sequence
//! number it is due. Every frame a subscriber returns must be the logged
//! frame it is due, intact; every `Lagged(n)` must skip exactly the frames
//! that were overwritten (the first frame after the gap is the oldest one
//! still whole in the ring); `Empty` only when nothing new was published;
//! `latest` is the newest logged frame.

use mmring::broadcast::{Publisher, Ring, Subscriber};
use mmring::{Config, RecvError};

/// One step of a model run.
#[derive(Debug, Clone)]
pub enum BOp {
    /// Publish a frame of `len % (max_frame + 1)` bytes: copied (`send`)
    /// or written in a grant of `len` and committed `short` shorter.
    Publish { len: u16, grant: Option<u16> },
    /// `try_recv` on subscriber `sub` (attached first if absent).
    Recv { sub: u8 },
    /// `latest` on subscriber `sub`.
    Latest { sub: u8 },
    /// Replace subscriber `sub` by a new one (at the next frame, or at the
    /// oldest frame still in the ring).
    Subscribe { sub: u8, oldest: bool },
    /// Drop the publisher and attach a new one.
    RestartPublisher,
}

/// The bytes of frame `seq` with `len` bytes.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (mix(seq.wrapping_mul(131) + i as u64) & 0xff) as u8)
        .collect()
}

/// splitmix64 (as `common::mix`; repeated so the fuzz target can include
/// this file alone).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Decodes fuzzer bytes: a capacity, then operations, 3 bytes each.
pub fn decode(data: &[u8]) -> (u64, Vec<BOp>) {
    let cap = [64u64, 256, 1024, 4096][data.first().map_or(0, |b| *b as usize % 4)];
    let ops = data
        .get(1..)
        .unwrap_or(&[])
        .chunks_exact(3)
        .map(|c| {
            let arg = u16::from_le_bytes([c[1], c[2]]);
            match c[0] % 16 {
                0..=5 => BOp::Publish {
                    len: arg,
                    grant: (c[0] & 0x40 != 0).then_some(arg >> 8),
                },
                6..=11 => BOp::Recv { sub: c[1] },
                12 => BOp::Latest { sub: c[1] },
                13 | 14 => BOp::Subscribe {
                    sub: c[1],
                    oldest: c[2] & 1 == 1,
                },
                _ => BOp::RestartPublisher,
            }
        })
        .collect();
    (cap, ops)
}

pub const SUBS: usize = 4;

pub struct Model {
    pub ring: Ring,
    tx: Option<Publisher>,
    subs: Vec<Option<(Subscriber, u64)>>,
    /// Published frames: (start position, payload).
    log: Vec<(u64, Vec<u8>)>,
    tail: u64,
    cap: u64,
    pub lagged: u64,
    pub delivered: u64,
}

impl Model {
    /// The publisher, for a corruption phase after the model.
    pub fn publisher(&mut self) -> &mut Publisher {
        self.tx.as_mut().unwrap()
    }
}

impl Model {
    pub fn new(capacity: u64) -> Model {
        let ring = Ring::anonymous(Config::new(capacity)).expect("ring");
        let tx = ring.publisher().expect("publisher");
        Model {
            cap: ring.capacity(),
            ring,
            tx: Some(tx),
            subs: (0..SUBS).map(|_| None).collect(),
            log: Vec::new(),
            tail: 0,
            lagged: 0,
            delivered: 0,
        }
    }

    /// Whether frame `seq` is still whole in the ring.
    fn intact(&self, seq: u64) -> bool {
        self.log[seq as usize].0 + self.cap >= self.tail
    }

    /// The oldest frame still whole (the log's length if none).
    fn first_intact(&self) -> u64 {
        (0..self.log.len() as u64)
            .find(|&s| self.intact(s))
            .unwrap_or(self.log.len() as u64)
    }

    fn sub(&mut self, i: u8) -> usize {
        let i = i as usize % SUBS;
        if self.subs[i].is_none() {
            let s = self.ring.subscriber().expect("subscriber");
            assert_eq!(
                s.next_seq(),
                self.log.len() as u64,
                "starts at the next frame"
            );
            self.subs[i] = Some((s, self.log.len() as u64));
        }
        i
    }

    pub fn step(&mut self, op: &BOp) {
        match *op {
            BOp::Publish { len, grant } => {
                let tx = self.tx.as_mut().unwrap();
                let max = tx.max_frame();
                let reserved = len as usize % (max + 1);
                let n = match grant {
                    Some(short) => reserved - (short as usize % (reserved + 1)),
                    None => reserved,
                };
                let seq = self.log.len() as u64;
                assert_eq!(tx.next_seq(), seq);
                let data = payload(seq, n);
                match grant {
                    None => tx.send(&data).unwrap(),
                    Some(_) => {
                        let mut g = tx.try_reserve(reserved).unwrap();
                        g[..n].copy_from_slice(&data);
                        g.commit_len(n).unwrap();
                    }
                }
                // The layout rule: a record of 16 + n rounded up to 8,
                // after padding to the end of the data area if it does not
                // fit before it.
                let size = 16 + (n as u64).div_ceil(8) * 8;
                let contiguous = self.cap - self.tail % self.cap;
                let start = if size > contiguous {
                    self.tail + contiguous
                } else {
                    self.tail
                };
                self.tail = start + size;
                self.log.push((start, data));
            }
            BOp::Recv { sub } => {
                let i = self.sub(sub);
                let due = self.subs[i].as_ref().unwrap().1;
                let r = self.subs[i]
                    .as_mut()
                    .unwrap()
                    .0
                    .try_recv()
                    .map(|f| (f.seq(), f.to_vec()));
                let next = match r {
                    Ok((seq, bytes)) => {
                        assert_eq!(seq, due, "frames arrive in order, none skipped silently");
                        // (It may have been overwritten since: a subscriber
                        // copies and validates frames ahead, in batches.)
                        assert_eq!(bytes, self.log[seq as usize].1, "frame {seq} intact");
                        self.delivered += 1;
                        seq + 1
                    }
                    Err(RecvError::Lagged(n)) => {
                        assert!(n > 0);
                        assert!(
                            (due as usize) < self.log.len() && !self.intact(due),
                            "lag reported for frame {due}, which is whole"
                        );
                        assert_eq!(
                            due + n,
                            self.first_intact(),
                            "the lag is exactly the overwritten frames"
                        );
                        self.lagged += n;
                        due + n
                    }
                    Err(RecvError::Empty) => {
                        assert_eq!(due, self.log.len() as u64, "Empty with frames waiting");
                        due
                    }
                    Err(e) => panic!("try_recv: {e:?}"),
                };
                self.subs[i].as_mut().unwrap().1 = next;
                assert_eq!(self.subs[i].as_ref().unwrap().0.next_seq(), next);
            }
            BOp::Latest { sub } => {
                let i = self.sub(sub);
                let r = self.subs[i]
                    .as_mut()
                    .unwrap()
                    .0
                    .latest()
                    .unwrap()
                    .map(|f| (f.seq(), f.to_vec()));
                match r {
                    None => assert!(self.log.is_empty(), "latest is None after a publish"),
                    Some((seq, bytes)) => {
                        assert_eq!(seq + 1, self.log.len() as u64, "latest is the newest frame");
                        assert_eq!(bytes, self.log[seq as usize].1);
                        self.subs[i].as_mut().unwrap().1 = seq + 1;
                    }
                }
            }
            BOp::Subscribe { sub, oldest } => {
                let i = sub as usize % SUBS;
                self.subs[i] = None;
                if oldest {
                    let s = self.ring.subscriber_from_oldest().expect("subscriber");
                    let first = self.first_intact();
                    assert_eq!(s.next_seq(), first, "starts at the oldest whole frame");
                    self.subs[i] = Some((s, first));
                } else {
                    self.sub(sub);
                }
            }
            BOp::RestartPublisher => {
                self.tx = None;
                let tx = self.ring.publisher().expect("publisher again");
                assert_eq!(
                    tx.next_seq(),
                    self.log.len() as u64,
                    "the sequence continues"
                );
                self.tx = Some(tx);
            }
        }
    }
}
