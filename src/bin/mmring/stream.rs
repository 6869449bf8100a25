//! `send` and `recv`: a named ring used like a FIFO from the shell, losing
//! nothing.
//!
//! * `recv` releases a frame only after its bytes are written to the
//!   output ([`mmring::Consumer::recv_batch_keep_timeout`]): it takes a
//!   batch in place, writes it (`--raw`: straight from the ring with
//!   `writev`; lines: copied into one buffer with their newlines), and
//!   releases the frames that were written whole. A frame cut short (a broken pipe, a
//!   second signal) stays in the ring whole, and is delivered again to the
//!   next receiver. On SIGINT, SIGTERM or SIGHUP it finishes the frame it
//!   is writing and stops; on a broken pipe (EPIPE; SIGPIPE is ignored) it
//!   stops. What a pipe has accepted belongs to its reader: after
//!   `recv | head`, the frames gone from the ring are those written into
//!   the pipe, which `head` may not have read. (An mpmc consumer holds one
//!   slot at a time and cannot put it back: there, a frame cut short by a
//!   broken pipe is released.)
//! * Like a FIFO reader, `recv` drains what is there, then waits for a
//!   producer when none is attached, and ends when a producer that fed it
//!   detaches (status 0) or dies (status 3); `--follow` keeps going across
//!   producers, `--no-wait` ends when the ring is empty.
//! * `send` reads its input into its own buffer (lines) or straight into a
//!   reserved grant (`--raw`), and on a signal or a vanished consumer says
//!   on stderr how many lines it read and did not send.

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering::Relaxed};
use std::time::Duration;

use mmring::{AnyProducer, AnyRing, PeerState, RecvError, Role, SendError};

use crate::ops::{EXIT_PRODUCER_DIED, explain, open};

/// How often a blocked `send` or `recv` looks at the signal flag, and how
/// often a `recv` without a producer looks for one.
const POLL: Duration = Duration::from_millis(50);
/// Bytes `recv` gathers into one write.
const OUT_BATCH: usize = 256 << 10;
/// Frames `recv` takes in one batch.
const MAX_BATCH: usize = 4096;

/// The last stop signal received (0: none) and how many arrived.
static SIGNAL: AtomicI32 = AtomicI32::new(0);
static SIGNALS: AtomicU32 = AtomicU32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    // ORDERING: Relaxed; read by the same process's main thread after the
    // interrupted call returns, no other data depends on it. Atomic stores
    // are async-signal-safe.
    SIGNAL.store(sig, Relaxed);
    SIGNALS.fetch_add(1, Relaxed);
}

/// Catches SIGINT, SIGTERM and SIGHUP without SA_RESTART, so a blocked
/// read or write returns EINTR and the loop stops cleanly.
fn catch_signals() {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        // SAFETY: a zeroed sigaction is valid (empty mask, no flags); the
        // handler only stores to atomics, which is async-signal-safe.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as usize;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(sig, &sa, std::ptr::null_mut());
        }
    }
}

fn stop_signal() -> Option<i32> {
    // ORDERING: Relaxed; see `on_signal`.
    match SIGNAL.load(Relaxed) {
        0 => None,
        s => Some(s),
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        libc::SIGHUP => "SIGHUP",
        _ => "a signal",
    }
}

/// The shell's status for a command stopped by `sig`.
fn signal_status(sig: i32) -> ExitCode {
    ExitCode::from(128u8.wrapping_add(sig as u8))
}

/// `recv`'s options.
#[derive(Debug, Clone, Copy)]
pub struct RecvOpts {
    pub raw: bool,
    pub count: Option<u64>,
    pub follow: bool,
    pub no_wait: bool,
    pub shared: bool,
}

/// How a write of one batch ended.
enum Wrote {
    All,
    /// The reader closed the pipe.
    Closed,
    /// A stop signal arrived.
    Stopped,
    Failed(std::io::Error),
}

/// Writes `buf` to `fd`, whose frames end at `ends`; returns the bytes
/// written. On a stop signal it finishes the frame being written (a
/// second signal gives up on it), so the output ends at a frame boundary.
fn write_frames(fd: BorrowedFd<'_>, buf: &[u8], ends: &[usize]) -> (usize, Wrote) {
    let mut done = 0;
    let at_boundary = |done: usize| done == 0 || ends.binary_search(&done).is_ok();
    while done < buf.len() {
        // ORDERING: Relaxed; see `on_signal`.
        let signals = SIGNALS.load(Relaxed);
        if signals >= 2 || (signals == 1 && at_boundary(done)) {
            return (done, Wrote::Stopped);
        }
        match rustix::io::write(fd, &buf[done..]) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::PIPE) => return (done, Wrote::Closed),
            Err(e) => return (done, Wrote::Failed(e.into())),
        }
    }
    (done, Wrote::All)
}

/// `--raw`: writes `frames` straight from the ring with `writev` (no copy),
/// stopping as `write_frames` does; returns how many were written whole.
fn writev_frames(fd: BorrowedFd<'_>, frames: &[&[u8]]) -> (usize, Wrote) {
    // Whole frames written, and bytes of the next one.
    let (mut done, mut part) = (0usize, 0usize);
    while done < frames.len() {
        // ORDERING: Relaxed; see `on_signal`.
        let signals = SIGNALS.load(Relaxed);
        if signals >= 2 || (signals == 1 && part == 0) {
            return (done, Wrote::Stopped);
        }
        let end = frames.len().min(done + IOV_MAX);
        let mut iov: Vec<std::io::IoSlice<'_>> = Vec::with_capacity(end - done);
        iov.push(std::io::IoSlice::new(&frames[done][part..]));
        iov.extend(
            frames[done + 1..end]
                .iter()
                .map(|f| std::io::IoSlice::new(f)),
        );
        match rustix::io::writev(fd, &iov) {
            Ok(mut n) => {
                // Advance over what was written.
                while done < frames.len() && n >= frames[done].len() - part {
                    n -= frames[done].len() - part;
                    done += 1;
                    part = 0;
                }
                part += n;
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::PIPE) => return (done, Wrote::Closed),
            Err(e) => return (done, Wrote::Failed(e.into())),
        }
    }
    (done, Wrote::All)
}

/// Buffers one `writev` takes (the kernel's UIO_MAXIOV).
const IOV_MAX: usize = 1024;

pub fn recv(path: &Path, o: RecvOpts) -> Result<ExitCode, String> {
    if crate::bcast::is(path) {
        return crate::bcast::recv(path, o.raw, o.count, o.shared);
    }
    let ring = open(path, o.shared)?;
    let mut rx = ring.consumer().map_err(|e| explain(path, &e))?;
    catch_signals();
    let p = path.display();
    let stdout = std::io::stdout();
    let fd = stdout.as_fd();
    let mut buf: Vec<u8> = Vec::with_capacity(OUT_BATCH + 4096);
    let mut ends: Vec<usize> = Vec::with_capacity(MAX_BATCH);
    let mut n = 0u64;
    let mut producer = Peer::new(&ring, path, Role::Producer);
    loop {
        if let Some(sig) = stop_signal() {
            eprintln!(
                "mmring: {p}: stopped by {}; wrote {n} frames, the rest stay in the ring",
                signal_name(sig)
            );
            return Ok(signal_status(sig));
        }
        let want = match o.count {
            Some(c) if n >= c => return Ok(ExitCode::SUCCESS),
            Some(c) => usize::try_from(c - n).unwrap_or(MAX_BATCH).min(MAX_BATCH),
            None => MAX_BATCH,
        };
        let mut outcome = Wrote::All;
        let write = |frames: &[&[u8]]| {
            if o.raw {
                let (done, how) = writev_frames(fd, frames);
                outcome = how;
                return done;
            }
            buf.clear();
            ends.clear();
            for f in frames {
                if !ends.is_empty() && buf.len() + f.len() > OUT_BATCH {
                    break;
                }
                buf.extend_from_slice(f);
                buf.push(b'\n');
                ends.push(buf.len());
            }
            let (written, how) = write_frames(fd, &buf, &ends);
            outcome = how;
            // Release the frames written whole; the rest stay in the ring.
            ends.partition_point(|&e| e <= written)
        };
        let r = if o.no_wait {
            // A zero timeout rather than `try_`: with no live producer left,
            // it first completes what a dead one left half published (an
            // spsc publication whose first word it never stored, an mpsc
            // claim), so that the drain gets every committed frame.
            match rx.recv_batch_keep_timeout(want, Duration::ZERO, write) {
                Err(RecvError::Timeout | RecvError::Disconnected) => Err(RecvError::Empty),
                r => r,
            }
        } else {
            rx.recv_batch_keep_timeout(want, POLL, write)
        };
        match r {
            Ok(k) => {
                n += k as u64;
                match outcome {
                    Wrote::All | Wrote::Stopped => {}
                    Wrote::Closed => {
                        eprintln!(
                            "mmring: {p}: output closed; wrote {n} frames, the rest stay in the ring"
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    Wrote::Failed(e) => return Err(format!("stdout: {e}")),
                }
            }
            Err(RecvError::Empty) => return Ok(end_status(path, rx.producer_state(), n)),
            Err(RecvError::Timeout) => {}
            Err(RecvError::Disconnected) => {
                // Empty, and no producer attached.
                match producer.left() {
                    Some(state) if !o.follow => return Ok(end_status(path, state, n)),
                    Some(state) => {
                        // --follow: wait for the next producer.
                        producer.forget();
                        if state == PeerState::Died {
                            eprintln!("mmring: {p}: the producer died; waiting for the next one");
                        }
                    }
                    None => {}
                }
                std::thread::sleep(POLL);
            }
            Err(e) => return Err(format!("{p}: {e}")),
        }
    }
}

/// Status 3 and a line on stderr when the producer died; 0 otherwise.
fn end_status(path: &Path, state: PeerState, n: u64) -> ExitCode {
    if state == PeerState::Died {
        // A crash is not an end of stream: say so, and exit non-zero.
        eprintln!(
            "mmring: {}: the producer died without detaching (received {n} frames)",
            path.display()
        );
        return ExitCode::from(EXIT_PRODUCER_DIED);
    }
    ExitCode::SUCCESS
}

/// `send`'s options.
#[derive(Debug, Clone, Copy)]
pub struct SendOpts {
    pub raw: bool,
    pub chunk: Option<u64>,
    pub shared: bool,
}

/// Why a send loop ended early.
enum Stop {
    Signal(i32),
    Failed(String),
}

/// The other side one end of the stream has met: one attached when this
/// end started, or one attached since (the role's attach count moved).
/// The library reports a ring whose other side has all left as
/// `Disconnected` (empty, to a receiver; full, to a sender), also when it
/// left before this end started. Only one this end met is one it lost;
/// until it meets one it waits, as a FIFO's two ends wait for each other.
struct Peer<'r> {
    ring: &'r AnyRing,
    path: &'r Path,
    role: Role,
    /// The role's attach count when this end started, or last forgot.
    attaches: u32,
    /// The count `left` read last.
    seen: u32,
    met: bool,
    told_dead: bool,
}

impl<'r> Peer<'r> {
    fn new(ring: &'r AnyRing, path: &'r Path, role: Role) -> Self {
        let now = Peer::stat_of(ring, role);
        Peer {
            ring,
            path,
            role,
            attaches: now.attaches,
            seen: now.attaches,
            met: now.state == PeerState::Alive,
            told_dead: false,
        }
    }

    fn stat_of(ring: &AnyRing, role: Role) -> mmring::RoleStat {
        let st = ring.stat();
        match role {
            Role::Producer => st.producer,
            Role::Consumer => st.consumer,
        }
    }

    /// After `Disconnected`: the role's state if a holder this end met has
    /// left; else `None`, having said once that the last holder died.
    fn left(&mut self) -> Option<PeerState> {
        let now = Peer::stat_of(self.ring, self.role);
        self.seen = now.attaches;
        self.met |= now.attaches != self.attaches;
        if self.met {
            return Some(now.state);
        }
        if now.state == PeerState::Died && !self.told_dead {
            self.told_dead = true;
            eprintln!(
                "mmring: {}: the last {} died without detaching; waiting for a new one",
                self.path.display(),
                self.role
            );
        }
        None
    }

    /// Forgets the holder met (`recv --follow`): waits for the next one.
    fn forget(&mut self) {
        self.met = false;
        self.attaches = self.seen;
    }

    /// A sender's answer to `Disconnected`: stop if the receiver it met is
    /// gone; else `None`, having waited a moment for one to attach.
    fn gone(&mut self) -> Option<Stop> {
        if self.left().is_some() {
            return Some(Stop::Failed("the consumer is gone".into()));
        }
        std::thread::sleep(POLL);
        None
    }
}

pub fn send(path: &Path, o: SendOpts) -> Result<ExitCode, String> {
    if crate::bcast::is(path) {
        // Raw input goes out in frames of `--chunk` bytes (default 4 KiB).
        let raw = o.raw.then(|| o.chunk.unwrap_or(4096));
        return crate::bcast::send(path, raw, o.shared);
    }
    let ring = open(path, o.shared)?;
    let mut tx = ring.producer().map_err(|e| explain(path, &e))?;
    let mut rx = Peer::new(&ring, path, Role::Consumer);
    catch_signals();
    let stdin = std::io::stdin();
    let fd = stdin.as_fd();
    let p = path.display();
    let mut sent = 0u64;
    let stopped = if o.raw || o.chunk.is_some() {
        let max = tx.max_frame();
        let (chunk, exact) = match o.chunk {
            Some(c) => {
                let c = usize::try_from(c).unwrap_or(usize::MAX);
                if c == 0 || c > max {
                    return Err(format!(
                        "{p}: --chunk {c} must be between 1 and the ring's max frame ({max})"
                    ));
                }
                (c, true)
            }
            // Large enough to take what a pipe holds in one read, small
            // enough to leave room for the reader's side of the ring.
            None => (
                max.min((tx.capacity() / 4) as usize).clamp(1, 1 << 20),
                false,
            ),
        };
        grow_pipe(fd);
        send_raw(&mut tx, &mut rx, fd, chunk, exact, &mut sent)
    } else {
        send_lines(&mut tx, &mut rx, fd, &mut sent)
    };
    match stopped {
        None => {
            eprintln!("mmring: sent {sent} frames to {p}");
            Ok(ExitCode::SUCCESS)
        }
        Some((why, unsent)) => {
            let left = if o.raw || o.chunk.is_some() {
                String::new()
            } else {
                format!("; {unsent} lines read from stdin were not sent")
            };
            match why {
                Stop::Signal(sig) => {
                    eprintln!(
                        "mmring: {p}: stopped by {}: sent {sent} frames{left}",
                        signal_name(sig)
                    );
                    Ok(signal_status(sig))
                }
                Stop::Failed(msg) => Err(format!("{p}: {msg}; sent {sent} frames{left}")),
            }
        }
    }
}

/// Asks for a 1 MiB pipe buffer on stdin when it is a pipe, so a fast
/// writer fills it in fewer, larger steps (best effort).
fn grow_pipe(fd: BorrowedFd<'_>) {
    // SAFETY: F_SETPIPE_SZ on a descriptor we borrow; it fails harmlessly
    // (EBADF, EINVAL, EPERM) on anything but a pipe we may grow.
    unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::F_SETPIPE_SZ,
            1 << 20,
        );
    }
}

/// Bytes of input available now without blocking (`FIONREAD`: a pipe's
/// contents, a regular file's remainder); 0 when unknown.
fn ready(fd: BorrowedFd<'_>) -> usize {
    rustix::io::ioctl_fionread(fd).map_or(0, |n| n as usize)
}

/// `--raw`: reads straight into reserved grants and commits what each read
/// returned (`exact`: fills each grant to `chunk` bytes first, for
/// fixed-size frames). Commits go into a send-side batch, published when
/// the input has nothing more ready, when a quarter of the ring is
/// unpublished, or before waiting for room: one wake-up of the receiver
/// per burst of input rather than per read.
fn send_raw(
    tx: &mut AnyProducer,
    rx: &mut Peer<'_>,
    fd: BorrowedFd<'_>,
    chunk: usize,
    exact: bool,
    sent: &mut u64,
) -> Option<(Stop, u64)> {
    let publish_every = (tx.capacity() / 4) as usize;
    let mut batch = tx.batch();
    let mut unpublished = 0usize;
    loop {
        if let Some(sig) = stop_signal() {
            return Some((Stop::Signal(sig), 0));
        }
        let mut g = match batch.reserve_timeout(chunk, POLL) {
            Ok(g) => g,
            Err(SendError::Timeout) => continue,
            Err(SendError::Disconnected) => match rx.gone() {
                Some(why) => return Some((why, 0)),
                None => continue,
            },
            Err(e) => return Some((Stop::Failed(e.to_string()), 0)),
        };
        let mut got = 0;
        let mut end = None;
        while got < chunk {
            match rustix::io::read(fd, &mut g[got..]) {
                Ok(0) => {
                    end = Some(None);
                    break;
                }
                Ok(n) => {
                    got += n;
                    if !exact {
                        break;
                    }
                }
                Err(rustix::io::Errno::INTR) => {
                    if stop_signal().is_some() {
                        break;
                    }
                }
                Err(e) => {
                    end = Some(Some(Stop::Failed(format!("stdin: {e}"))));
                    break;
                }
            }
        }
        // What was read is sent, whatever comes next.
        if got > 0 {
            g.commit_len(got);
            *sent += 1;
        } else {
            g.abort();
        }
        unpublished += got;
        if let Some(end) = end {
            return end.map(|why| (why, 0));
        }
        if unpublished >= publish_every || ready(fd) == 0 {
            drop(batch);
            batch = tx.batch();
            unpublished = 0;
        }
    }
}

/// Line mode: one frame per line, without its newline (a last line
/// without one is sent too). Returns how it stopped early, with the count
/// of lines read and not sent.
fn send_lines(
    tx: &mut AnyProducer,
    rx: &mut Peer<'_>,
    fd: BorrowedFd<'_>,
    sent: &mut u64,
) -> Option<(Stop, u64)> {
    let max = tx.max_frame();
    let mut buf = vec![0u8; 64 << 10];
    let (mut start, mut end) = (0usize, 0usize);
    let unsent = |b: &[u8]| {
        let lines = b.iter().filter(|&&c| c == b'\n').count();
        (lines + usize::from(b.last().is_some_and(|&c| c != b'\n'))) as u64
    };
    let too_long = |len: usize| {
        Stop::Failed(format!(
            "a line of {len} bytes exceeds the ring's max frame ({max}); use --raw"
        ))
    };
    let mut eof = false;
    loop {
        // Send every whole line in the buffer, published together.
        {
            let mut batch = tx.batch();
            while let Some(i) = buf[start..end].iter().position(|&c| c == b'\n') {
                if i > max {
                    return Some((too_long(i), unsent(&buf[start..end])));
                }
                if let Err(why) = send_one(&mut batch, rx, &buf[start..start + i]) {
                    return Some((why, unsent(&buf[start..end])));
                }
                start += i + 1;
                *sent += 1;
            }
            if eof {
                if start < end {
                    if end - start > max {
                        return Some((too_long(end - start), 1));
                    }
                    if let Err(why) = send_one(&mut batch, rx, &buf[start..end]) {
                        return Some((why, 1));
                    }
                    *sent += 1;
                }
                return None;
            }
        }
        if let Some(sig) = stop_signal() {
            return Some((Stop::Signal(sig), unsent(&buf[start..end])));
        }
        // Keep the partial line, and make room for more.
        buf.copy_within(start..end, 0);
        end -= start;
        start = 0;
        if end == buf.len() {
            if end > max {
                return Some((too_long(end), unsent(&buf[..end])));
            }
            buf.resize(buf.len() * 2, 0);
        }
        match rustix::io::read(fd, &mut buf[end..]) {
            Ok(0) => eof = true,
            Ok(n) => end += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => {
                return Some((Stop::Failed(format!("stdin: {e}")), unsent(&buf[..end])));
            }
        }
    }
}

/// Sends one line through `batch`, waiting for room while watching the
/// signal flag (what the batch holds is published before it waits).
fn send_one(
    batch: &mut mmring::WriteBatch<'_, mmring::AnyKind>,
    rx: &mut Peer<'_>,
    line: &[u8],
) -> Result<(), Stop> {
    // The common case: room now, no clock read for a deadline.
    match batch.try_reserve(line.len()) {
        Ok(mut g) => {
            g.copy_from_slice(line);
            g.commit();
            return Ok(());
        }
        Err(SendError::Full) => {}
        Err(e) => return Err(Stop::Failed(e.to_string())),
    }
    loop {
        if let Some(sig) = stop_signal() {
            return Err(Stop::Signal(sig));
        }
        match batch.reserve_timeout(line.len(), POLL) {
            Ok(mut g) => {
                g.copy_from_slice(line);
                g.commit();
                return Ok(());
            }
            Err(SendError::Timeout) => {}
            Err(SendError::Disconnected) => {
                if let Some(why) = rx.gone() {
                    return Err(why);
                }
            }
            Err(e) => return Err(Stop::Failed(e.to_string())),
        }
    }
}
