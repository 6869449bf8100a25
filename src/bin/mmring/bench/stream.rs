//! Streams: frames from producer processes to consumer processes over an
//! anonymous ring, or from one process to another over a byte stream (a
//! pipe or a Unix socket), timed from the start gate to the last frame.

use std::hint::black_box;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use mmring::{AnyConsumer, AnyProducer, AnyRing, Config, Kind, RecvError, SendError};

use super::{Access, MIN_SIZE, SAMPLE, histogram};
use crate::proc::{Gate, fork_child, now_ns, pin, shared_counter, wait_child};

/// One stream workload: who sends, who receives, how frames are touched.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub kind: Kind,
    pub size: usize,
    pub count: u64,
    pub producers: u32,
    pub consumers: u32,
    pub blocking: bool,
    pub access: Access,
    /// Offered load in frames per second, all producers together (0:
    /// as fast as they can, i.e. saturation). Paced frames each carry
    /// their scheduled send time, and every one is recorded.
    pub rate: f64,
    /// The ring's data area in bytes (`--capacity`); `None`: the default
    /// of each measurement.
    pub capacity: Option<u64>,
    /// How a blocking producer or consumer waits (`--wait`).
    pub wait: mmring::WaitStrategy,
    /// Frames per `try_send_batch` and per `try_recv_batch` (`--batch`;
    /// 1: plain `try_reserve` + `commit` and `try_recv`).
    pub batch: usize,
    /// Lazy release (`--release-every`): the consumer hands space back
    /// every this many frames (0: after each, the default).
    pub release_every: u32,
}

/// When frame `seq` of a producer paced at `rate` frames/s (0: unpaced)
/// is due, after `start`; a producer that falls behind sends at once, and
/// its frames' latency still counts from when they were due
/// (coordinated-omission corrected, as in wrk2).
fn due(start: u64, seq: u64, rate: f64) -> u64 {
    start + (seq as f64 * 1e9 / rate) as u64
}

/// Waits (spinning on the clock) until `t`.
fn wait_until(t: u64) {
    while now_ns() < t {
        std::hint::spin_loop();
    }
}

/// One frame in this many is timed: every frame when paced.
fn sampling(rate: f64) -> u64 {
    if rate > 0.0 { 1 } else { SAMPLE }
}

impl Shape {
    /// The errors a user sees for sizes and counts no workload can take.
    pub fn check_counts(&self) -> Result<(), String> {
        if self.size < MIN_SIZE {
            return Err(format!("--size must be at least {MIN_SIZE} bytes"));
        }
        if self.producers == 0 || self.consumers == 0 || self.count == 0 {
            return Err("--producers, --consumers and --count must be at least 1".into());
        }
        Ok(())
    }

    /// The errors a user sees for a shape the ring kind cannot take.
    pub fn check(&self) -> Result<(), String> {
        self.check_counts()?;
        if self.batch == 0 {
            return Err("--batch must be at least 1".into());
        }
        if self.batch > 1 && (self.blocking || self.access != Access::Header) {
            return Err("--batch applies to spinning streams with --access header only".into());
        }
        match self.kind {
            Kind::Spsc if self.producers != 1 || self.consumers != 1 => Err(
                "an spsc ring has one producer and one consumer; use --kind mpsc or mpmc".into(),
            ),
            Kind::Mpsc if self.consumers != 1 => {
                Err("an mpsc ring has one consumer; use --kind mpmc for several".into())
            }
            Kind::Broadcast if self.producers != 1 => {
                Err("a broadcast ring has one publisher (--producers 1)".into())
            }
            _ => Ok(()),
        }
    }

    /// A fresh anonymous ring for this shape: `--capacity` bytes, or room
    /// for at least 256 frames and 4 MiB at the least (mpmc: 4096 slots).
    pub fn ring(&self) -> Result<AnyRing, String> {
        let default = ((self.size as u64 + 8) * 256)
            .max(4 << 20)
            .next_power_of_two();
        let cfg = ring_config(self.kind, self.size, self.capacity, default, 4096)?;
        let ring =
            AnyRing::anonymous(self.kind, cfg).map_err(|e| format!("anonymous ring: {e}"))?;
        if self.size > ring.max_frame() {
            return Err(format!(
                "--size {} exceeds the max frame {} of a ring of {} bytes",
                self.size,
                ring.max_frame(),
                ring.capacity()
            ));
        }
        Ok(ring)
    }
}

/// The configuration of a ring of `kind` carrying `size`-byte frames.
/// `capacity` (`--capacity`): the data area in bytes, a power of two
/// between 64 bytes and 64 GiB; an mpmc ring gets as many slots as fit in
/// it (rounded down to a power of two, as the slot ring needs). Without it,
/// a framed ring of `framed` bytes or an mpmc ring of `slots` slots.
pub fn ring_config(
    kind: Kind,
    size: usize,
    capacity: Option<u64>,
    framed: u64,
    slots: u64,
) -> Result<Config, String> {
    let Some(cap) = capacity else {
        return Ok(match kind {
            Kind::Mpmc => Config::slots(slots, size as u64),
            _ => Config::new(framed),
        });
    };
    if !cap.is_power_of_two() || !(64..=1 << 36).contains(&cap) {
        return Err(format!(
            "--capacity {cap} is not a power of two between 64 bytes and 64 GiB (examples: 256K, 4M)"
        ));
    }
    if kind != Kind::Mpmc {
        return Ok(Config::new(cap));
    }
    // The slot stride as the library lays it out (header and padding
    // included): the data area of a two-slot ring, halved.
    let probe = AnyRing::anonymous(Kind::Mpmc, Config::slots(2, size as u64))
        .map_err(|e| format!("--size {size}: {e}"))?;
    let stride = probe.capacity() / 2;
    let fit = cap / stride;
    if fit < 2 {
        return Err(format!(
            "--capacity {cap} holds fewer than 2 mpmc slots of {size} bytes (each takes {stride} bytes)"
        ));
    }
    Ok(Config::slots(1 << fit.ilog2(), size as u64))
}

/// The ring's size for a reader: bytes, KiB or MiB, and the slots of an
/// mpmc ring.
pub fn describe(ring: &AnyRing) -> String {
    let bytes = ring.capacity();
    let human = match bytes {
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{} MiB", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{} KiB", b >> 10),
        b => format!("{b} B"),
    };
    if ring.kind() == Kind::Mpmc {
        // The slot count is the data area over the stride (see
        // `ring_config`); max_frame is the slot size.
        let stride = AnyRing::anonymous(Kind::Mpmc, Config::slots(2, ring.max_frame() as u64))
            .map(|r| r.capacity() / 2)
            .unwrap_or(1);
        format!(
            "{bytes} bytes ({human}: {} slots of {} bytes)",
            bytes / stride,
            ring.max_frame()
        )
    } else {
        format!("{bytes} bytes ({human})")
    }
}

/// What one stream measured.
pub struct Outcome {
    pub name: String,
    pub frame_size: usize,
    pub frames: u64,
    /// From the start gate to the last consumer's last frame.
    pub ns: u64,
    pub latency: Histogram<u64>,
    pub errors: u64,
}

impl Outcome {
    fn new(name: &str, frame_size: usize) -> Outcome {
        Outcome {
            name: name.to_string(),
            frame_size,
            frames: 0,
            ns: 0,
            latency: histogram(),
            errors: 0,
        }
    }

    pub fn secs(&self) -> f64 {
        self.ns as f64 / 1e9
    }

    pub fn frames_per_s(&self) -> f64 {
        self.frames as f64 / self.secs()
    }

    /// Adds one consumer's report (see `results_text`); returns its end
    /// time.
    fn add_results(&mut self, text: &str) -> Result<u64, String> {
        let mut end = 0;
        for line in text.lines() {
            let mut words = line.split(' ');
            let tag = words.next();
            let v: Vec<u64> = words.filter_map(|x| x.parse().ok()).collect();
            match (tag, v.as_slice()) {
                (Some("count"), [n]) => self.frames += n,
                (Some("errors"), [n]) => self.errors += n,
                (Some("end"), [t]) => end = *t,
                (Some("h"), [value, count]) => {
                    let _ = self.latency.record_n(*value, *count);
                }
                _ => return Err(format!("unexpected result line {line:?}")),
            }
        }
        Ok(end)
    }
}

/// A consumer's report to the parent: counts, end time, and its latency
/// histogram as exact (value, count) pairs, so merging loses nothing.
fn results_text(count: u64, errors: u64, end: u64, latency: &Histogram<u64>) -> String {
    let mut text = format!("count {count}\nerrors {errors}\nend {end}\n");
    for v in latency.iter_recorded() {
        text.push_str(&format!(
            "h {} {}\n",
            v.value_iterated_to(),
            v.count_at_value()
        ));
    }
    text
}

/// Streams `shape.count` frames over `ring` from `shape.producers` forked
/// producers to `shape.consumers` forked consumers, pinned to alternate
/// CPUs, every frame checked. `progress`: show a progress bar meanwhile.
pub fn run_ring(ring: &AnyRing, shape: &Shape, progress: bool) -> Result<Outcome, String> {
    let consumed = shared_counter()?;
    let mut gate = Gate::new()?;
    let Shape {
        size,
        blocking,
        access,
        ..
    } = *shape;
    let idle = Idle::new(blocking, shape.producers + shape.consumers);
    let mut pids = Vec::new();
    let mut results = Vec::new();
    for c in 0..shape.consumers {
        let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
        let checks_order = ring.kind() != Kind::Mpmc;
        let producers = shape.producers as usize;
        // `w` moves into the closure: the parent's copy closes when the
        // closure is dropped, right after the fork.
        let pid = fork_child(|| {
            pin(cpu_for(c as usize, 1));
            let mut rx = ring.consumer().expect("attach consumer");
            rx.set_wait_strategy(shape.wait);
            rx.set_release_every(shape.release_every);
            gate.child_wait();
            let out = Consume {
                every: sampling(shape.rate),
                idle,
                producers,
                checks_order,
                consumed,
                out: w,
            };
            match access {
                Access::Header if shape.batch > 1 => consume_batch(&mut rx, out, shape.batch),
                Access::Header => consume::<HEADER>(&mut rx, out),
                Access::Read => consume::<READ>(&mut rx, out),
                Access::Copy => consume::<COPY>(&mut rx, out),
            }
        })?;
        pids.push(pid);
        results.push((c, r));
    }
    for p in 0..shape.producers {
        let n = shape.count / shape.producers as u64
            + if p == 0 {
                shape.count % shape.producers as u64
            } else {
                0
            };
        let rate = shape.rate / shape.producers as f64;
        let pid = fork_child(|| {
            pin(cpu_for(p as usize, 0));
            let mut tx = ring.producer().expect("attach producer");
            tx.set_wait_strategy(shape.wait);
            gate.child_wait();
            match access {
                Access::Header if shape.batch > 1 => {
                    produce_batch(&mut tx, p, n, size, rate, shape.batch, idle)
                }
                Access::Copy => produce::<true>(&mut tx, p, n, size, idle, rate),
                Access::Header | Access::Read => produce::<false>(&mut tx, p, n, size, idle, rate),
            }
        })?;
        pids.push(pid);
    }
    let start = gate.open(pids.len())?;
    let bar = progress.then(|| {
        let bar = indicatif::ProgressBar::new(shape.count);
        bar.set_style(
            indicatif::ProgressStyle::with_template("  {bar:40} {pos}/{len} frames {per_sec}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut outcome = Outcome::new("mmring", size);
    let mut end = start;
    for (_, r) in results {
        let mut text = String::new();
        let mut f = std::fs::File::from(r);
        // While a consumer runs, its pipe stays open: show progress meanwhile.
        if let Some(bar) = &bar {
            while !readable(&f) {
                bar.set_position(consumed.load(Relaxed));
            }
        }
        f.read_to_string(&mut text)
            .map_err(|e| format!("results: {e}"))?;
        end = end.max(outcome.add_results(&text)?);
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for pid in pids {
        wait_child(pid)?;
    }
    // Frames lost or duplicated count as errors too.
    outcome.errors += shape.count.abs_diff(outcome.frames);
    outcome.ns = end - start;
    Ok(outcome)
}

/// CPU index for the `i`-th producer (`side` 0) or consumer (`side` 1):
/// producers and consumers alternate, so a 1 x 1 pair gets two cores.
fn cpu_for(i: usize, side: usize) -> usize {
    2 * i + side
}

/// Whether reading `f` would not block (data or EOF), waiting up to 100 ms.
fn readable(f: &std::fs::File) -> bool {
    let mut fds = [rustix::event::PollFd::new(f, rustix::event::PollFlags::IN)];
    let timeout = rustix::time::Timespec {
        tv_sec: 0,
        tv_nsec: 100_000_000,
    };
    matches!(rustix::event::poll(&mut fds, Some(&timeout)), Ok(n) if n > 0)
}

/// How a benchmark party waits for the other side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// The library's blocking calls (`--blocking`, with `--wait`).
    Block,
    /// Busy-wait with an exponential backoff, never yielding: each party
    /// has a CPU of its own.
    Spin,
    /// Busy-wait, then yield the CPU between looks (crossbeam's
    /// `Backoff::snooze`, as crossbeam-channel's own waits do): more
    /// spinning parties than CPUs, where a party that never yields holds
    /// the CPU that the party it waits for needs (a producer preempted
    /// between its claim and its publication holds up the consumer).
    SpinYield,
    /// Look again at once, with one spin-loop hint between looks, as the
    /// cache-line floor does: round trips, where a backoff between looks
    /// would add its own delay to every reply (up to half a batch of 64
    /// `pause` instructions, hundreds of ns).
    Poll,
}

impl Idle {
    /// The wait of a party among `parties` spinning ones (`blocking`: the
    /// library's blocking calls).
    pub fn new(blocking: bool, parties: u32) -> Idle {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        match blocking {
            true => Idle::Block,
            false if parties as usize > cpus => Idle::SpinYield,
            false => Idle::Spin,
        }
    }

    /// One turn of a spinning wait.
    #[inline]
    fn pause(self, backoff: &crossbeam_utils::Backoff) {
        match self {
            Idle::SpinYield => backoff.snooze(),
            Idle::Poll => std::hint::spin_loop(),
            Idle::Spin | Idle::Block => backoff.spin(),
        }
    }
}

/// Reserves `len` bytes (blocking, or spinning on `Full`), lets `fill`
/// write them, and commits.
pub fn send_with(
    tx: &mut AnyProducer,
    len: usize,
    idle: Idle,
    fill: impl FnOnce(&mut [u8]),
) -> Result<(), SendError> {
    let mut g = if idle == Idle::Block {
        tx.reserve(len)?
    } else {
        let backoff = crossbeam_utils::Backoff::new();
        loop {
            match tx.try_reserve(len) {
                Err(SendError::Full) => idle.pause(&backoff),
                other => break other?,
            }
        }
    };
    fill(&mut g);
    g.commit();
    Ok(())
}

/// Takes the next message (blocking, or spinning on `Empty`) and hands it
/// to `f`. A spinning wait ends with `Disconnected` too, once the producers
/// that attached are gone and nothing is left.
pub fn recv_with<R>(
    rx: &mut AnyConsumer,
    idle: Idle,
    f: impl FnOnce(&[u8]) -> R,
) -> Result<R, RecvError> {
    if idle == Idle::Block {
        return rx.recv().map(|g| f(&g));
    }
    // `f` runs at most once, inside `map`, so no grant outlives a loop turn.
    let mut f = Some(f);
    let mut call = |g: &[u8]| (f.take().expect("called once"))(g);
    let mut spins = 0u32;
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        match rx.try_recv().map(|g| call(&g)) {
            Err(RecvError::Empty) => {
                spins = spins.wrapping_add(1);
                // Now and then, ask whether anyone is left to send; the
                // blocking path does this itself.
                if spins % 4096 == 0 && rx.producer_state().is_gone() {
                    return match rx.try_recv().map(|g| call(&g)) {
                        Err(RecvError::Empty) => Err(RecvError::Disconnected),
                        other => other,
                    };
                }
                // Exponential busy-wait (yielding only when the CPUs are
                // oversubscribed): fewer looks at the producer's lines.
                idle.pause(&backoff);
            }
            other => return other,
        }
    }
}

/// Sends `n` frames: sequence number, producer id and (one in `SAMPLE`)
/// the clock in the first 24 bytes; with `COPY`, the whole frame is first
/// copied in from a buffer.
fn produce<const COPY: bool>(
    tx: &mut AnyProducer,
    id: u32,
    n: u64,
    size: usize,
    idle: Idle,
    rate: f64,
) -> i32 {
    let src = vec![0x5au8; if COPY { size } else { 0 }];
    let every = sampling(rate);
    let start = now_ns();
    for seq in 0..n {
        // Unpaced, the clock is read only for the frames that carry it: a
        // clock read per frame would cost more than the ring's own work.
        let stamp = if rate > 0.0 {
            let t = due(start, seq, rate);
            wait_until(t);
            t
        } else if seq % every == 0 {
            now_ns()
        } else {
            0
        };
        let r = send_with(tx, size, idle, |f| {
            if COPY {
                f.copy_from_slice(&src);
            }
            f[..8].copy_from_slice(&seq.to_le_bytes());
            f[8..12].copy_from_slice(&id.to_le_bytes());
            if seq % every == 0 {
                f[16..24].copy_from_slice(&stamp.to_le_bytes());
            }
        });
        if let Err(e) = r {
            eprintln!("mmring bench: producer {id}: {e}");
            return 1;
        }
    }
    0
}

/// As [`produce`] (header only, spinning), `k` frames per
/// `try_send_batch`: the frames are written into a buffer first and copied
/// into the ring by the batch, which publishes them with one cursor store.
fn produce_batch(
    tx: &mut AnyProducer,
    id: u32,
    n: u64,
    size: usize,
    rate: f64,
    k: usize,
    idle: Idle,
) -> i32 {
    let every = sampling(rate);
    let mut frames = vec![vec![0u8; size]; k];
    let start = now_ns();
    let mut seq = 0u64;
    while seq < n {
        let m = k.min((n - seq) as usize);
        let stamp = if rate > 0.0 {
            let t = due(start, seq, rate);
            wait_until(t);
            t
        } else {
            now_ns()
        };
        for (i, f) in frames[..m].iter_mut().enumerate() {
            let s = seq + i as u64;
            f[..8].copy_from_slice(&s.to_le_bytes());
            f[8..12].copy_from_slice(&id.to_le_bytes());
            if s % every == 0 {
                f[16..24].copy_from_slice(&stamp.to_le_bytes());
            }
        }
        let mut sent = 0;
        let backoff = crossbeam_utils::Backoff::new();
        while sent < m {
            match tx.try_send_batch(&frames[sent..m]) {
                Ok(j) => sent += j,
                Err(SendError::Full) => idle.pause(&backoff),
                Err(e) => {
                    eprintln!("mmring bench: producer {id}: {e}");
                    return 1;
                }
            }
        }
        seq += m as u64;
    }
    0
}

/// As [`consume`] (header only, spinning), up to `k` frames per
/// `try_recv_batch`.
fn consume_batch(rx: &mut AnyConsumer, c: Consume, k: usize) -> i32 {
    let mut latency = histogram();
    let mut next = vec![0u64; c.producers];
    let (mut count, mut errors) = (0u64, 0u64);
    let mut check = |f: &[u8]| {
        let seq = u64::from_le_bytes(f[..8].try_into().unwrap());
        let id = u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize;
        if seq % c.every == 0 {
            let sent = u64::from_le_bytes(f[16..24].try_into().unwrap());
            let _ = latency.record(now_ns().saturating_sub(sent).max(1));
        }
        if id >= c.producers || (c.checks_order && seq != next[id]) {
            errors += 1;
        } else if c.checks_order {
            next[id] += 1;
        }
        count += 1;
        if count % 65536 == 0 {
            c.consumed.fetch_add(65536, Relaxed);
        }
    };
    let mut spins = 0u32;
    let backoff = crossbeam_utils::Backoff::new();
    loop {
        match rx.try_recv_batch(k, &mut check) {
            Ok(_) => backoff.reset(),
            Err(RecvError::Empty) => {
                spins = spins.wrapping_add(1);
                // As `recv_with`: now and then, whether anyone is left to
                // send, then one last look.
                if spins % 4096 == 0 && rx.producer_state().is_gone() {
                    match rx.try_recv_batch(usize::MAX, &mut check) {
                        Ok(_) => continue,
                        Err(RecvError::Empty | RecvError::Disconnected) => break,
                        Err(e) => {
                            eprintln!("mmring bench: consumer: {e}");
                            return 1;
                        }
                    }
                }
                c.idle.pause(&backoff);
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => {
                eprintln!("mmring bench: consumer: {e}");
                return 1;
            }
        }
    }
    let text = results_text(count, errors, now_ns(), &latency);
    let mut f = std::fs::File::from(c.out);
    i32::from(f.write_all(text.as_bytes()).is_err())
}

/// How a consumer touches a frame besides its header (`Access` as a
/// const generic, so the header-only path carries no branch).
const HEADER: u8 = 0;
const READ: u8 = 1;
const COPY: u8 = 2;

struct Consume {
    /// Record the latency of one frame in this many.
    every: u64,
    idle: Idle,
    producers: usize,
    checks_order: bool,
    consumed: &'static AtomicU64,
    out: OwnedFd,
}

fn consume<const ACCESS: u8>(rx: &mut AnyConsumer, c: Consume) -> i32 {
    let mut latency = histogram();
    let mut next = vec![0u64; c.producers];
    let (mut count, mut errors) = (0u64, 0u64);
    let mut dst = Vec::new();
    loop {
        let r = recv_with(rx, c.idle, |f| {
            if ACCESS == READ {
                // Read every word of the frame in place.
                let sum = f.chunks_exact(8).fold(0u64, |a, w| {
                    a.wrapping_add(u64::from_le_bytes(w.try_into().unwrap()))
                });
                black_box(sum);
            } else if ACCESS == COPY {
                dst.clear();
                dst.extend_from_slice(f);
                black_box(&dst);
            }
            let seq = u64::from_le_bytes(f[..8].try_into().unwrap());
            let id = u32::from_le_bytes(f[8..12].try_into().unwrap()) as usize;
            if seq % c.every == 0 {
                let sent = u64::from_le_bytes(f[16..24].try_into().unwrap());
                let _ = latency.record(now_ns().saturating_sub(sent).max(1));
            }
            (seq, id)
        });
        match r {
            Ok((seq, id)) => {
                if id >= c.producers || (c.checks_order && seq != next[id]) {
                    errors += 1;
                } else if c.checks_order {
                    next[id] += 1;
                }
                count += 1;
                if count % 65536 == 0 {
                    c.consumed.fetch_add(65536, Relaxed);
                }
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => {
                eprintln!("mmring bench: consumer: {e}");
                return 1;
            }
        }
    }
    let text = results_text(count, errors, now_ns(), &latency);
    let mut f = std::fs::File::from(c.out);
    i32::from(f.write_all(text.as_bytes()).is_err())
}

/// The same 1 x 1 workload over a byte stream (a pipe or a Unix socket):
/// one `write` per frame, `read_exact` per frame.
pub fn run_stream(
    name: &str,
    read_end: OwnedFd,
    write_end: OwnedFd,
    size: usize,
    count: u64,
    rate: f64,
) -> Result<Outcome, String> {
    let every = sampling(rate);
    let mut gate = Gate::new()?;
    let (res_r, res_w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let producer = fork_child(|| {
        pin(0);
        let mut w = std::fs::File::from(write_end.try_clone().expect("dup"));
        gate.child_wait();
        let mut buf = vec![0u8; size];
        let start = now_ns();
        for seq in 0..count {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            if seq % every == 0 {
                let stamp = if rate > 0.0 {
                    let t = due(start, seq, rate);
                    wait_until(t);
                    t
                } else {
                    now_ns()
                };
                buf[16..24].copy_from_slice(&stamp.to_le_bytes());
            }
            if w.write_all(&buf).is_err() {
                return 1;
            }
        }
        0
    })?;
    let consumer = fork_child(|| {
        pin(1);
        let mut r = std::fs::File::from(read_end.try_clone().expect("dup"));
        gate.child_wait();
        let mut latency = histogram();
        let mut buf = vec![0u8; size];
        let mut errors = 0u64;
        for seq in 0..count {
            if r.read_exact(&mut buf).is_err() {
                return 1;
            }
            if u64::from_le_bytes(buf[..8].try_into().unwrap()) != seq {
                errors += 1;
            }
            if seq % every == 0 {
                let sent = u64::from_le_bytes(buf[16..24].try_into().unwrap());
                let _ = latency.record(now_ns().saturating_sub(sent).max(1));
            }
        }
        let text = results_text(count, errors, now_ns(), &latency);
        let mut f = std::fs::File::from(res_w.try_clone().expect("dup"));
        i32::from(f.write_all(text.as_bytes()).is_err())
    })?;
    drop(res_w);
    drop(read_end);
    drop(write_end);
    let start = gate.open(2)?;
    let mut text = String::new();
    std::fs::File::from(res_r)
        .read_to_string(&mut text)
        .map_err(|e| format!("results: {e}"))?;
    wait_child(producer)?;
    wait_child(consumer)?;
    let mut outcome = Outcome::new(name, size);
    let end = outcome.add_results(&text)?;
    outcome.errors += count.abs_diff(outcome.frames);
    outcome.ns = end - start;
    Ok(outcome)
}

/// `run_stream` over a fresh pipe.
pub fn pipe(size: usize, count: u64, rate: f64) -> Result<Outcome, String> {
    let (r, w) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    run_stream("pipe", r, w, size, count, rate)
}

/// `run_stream` over a fresh FIFO (`mkfifo`) in the temporary directory,
/// removed once both ends are open.
pub fn fifo(size: usize, count: u64, rate: f64) -> Result<Outcome, String> {
    use rustix::fs::{Mode, OFlags};
    let path = std::env::temp_dir().join(format!("mmring-bench-fifo-{}", std::process::id()));
    let _ = std::fs::remove_file(&path);
    rustix::fs::mkfifoat(rustix::fs::CWD, &path, Mode::RUSR | Mode::WUSR)
        .map_err(|e| format!("mkfifo {}: {e}", path.display()))?;
    // The read end first, without waiting for a writer; then the write end.
    let opened = rustix::fs::open(&path, OFlags::RDONLY | OFlags::NONBLOCK, Mode::empty())
        .and_then(|r| {
            let w = rustix::fs::open(&path, OFlags::WRONLY, Mode::empty())?;
            rustix::fs::fcntl_setfl(&r, OFlags::empty())?;
            Ok((r, w))
        });
    let _ = std::fs::remove_file(&path);
    let (r, w) = opened.map_err(|e| format!("fifo {}: {e}", path.display()))?;
    run_stream("fifo", r, w, size, count, rate)
}

/// `run_stream` over a fresh Unix stream socket pair.
pub fn socket(size: usize, count: u64, rate: f64) -> Result<Outcome, String> {
    let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    run_stream(
        "unix socket",
        OwnedFd::from(a),
        OwnedFd::from(b),
        size,
        count,
        rate,
    )
}
