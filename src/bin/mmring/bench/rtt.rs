//! Unloaded round trips between this process and a forked echo process,
//! pinned to two CPUs: over two rings, over byte streams, and the two
//! floors a ring round trip is judged against (one cache line bounced
//! between two processes when spinning; a futex handed back and forth when
//! sleeping).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::Instant;

use hdrhistogram::Histogram;
use mmring::AnyRing;

use super::histogram;
use super::stream::{Idle, Shape, recv_with, ring_config, send_with};
use crate::proc::{Gate, fork_child, now_ns, pin, shared_counter, shared_futex, unpin, wait_child};

/// What a round-trip run measured.
pub struct Rtt {
    /// Each round trip, in ns.
    pub hist: Histogram<u64>,
    /// All of them, start gate to last reply, in ns.
    pub ns: u64,
}

/// Times `n` round trips. `echo` runs in a forked child pinned to CPU 1:
/// it sets up, calls `ready` (the start gate), then answers `n` times and
/// returns its exit status. Here, pinned to CPU 0, `near` sets up and
/// `round_trip` does round trip `seq`.
fn ping_pong<S>(
    n: u64,
    echo: impl FnOnce(&mut dyn FnMut()) -> i32,
    near: impl FnOnce() -> Result<S, String>,
    mut round_trip: impl FnMut(&mut S, u64) -> Result<(), String>,
) -> Result<Rtt, String> {
    let mut gate = Gate::new()?;
    let pid = fork_child(|| {
        pin(1);
        echo(&mut || gate.child_wait())
    })?;
    pin(0);
    let mut s = near()?;
    let start = gate.open(1)?;
    let mut hist = histogram();
    for seq in 0..n {
        let t0 = Instant::now();
        round_trip(&mut s, seq)?;
        let _ = hist.record((t0.elapsed().as_nanos() as u64).max(1));
    }
    let ns = now_ns() - start;
    unpin();
    wait_child(pid)?;
    Ok(Rtt { hist, ns })
}

/// Round trips of a `size`-byte message over two rings of `kind` (ping,
/// pong); the echo process copies each message out and back in. From
/// `shape`: `count` round trips, the kind, frame size, `--blocking` and
/// `--wait`; each ring is `capacity` bytes (`--capacity`), by default 64
/// frames.
pub fn ring(shape: &Shape) -> Result<Rtt, String> {
    let Shape {
        size,
        blocking,
        count: n,
        wait,
        ..
    } = *shape;
    let [ping, pong] = rtt_rings(shape)?;
    let mut out = vec![0u8; size];
    // Spinning, each side polls without backing off, as the cache-line
    // floor it is judged against does.
    let idle = match Idle::new(blocking, 2) {
        Idle::Spin => Idle::Poll,
        other => other,
    };
    ping_pong(
        n,
        |ready| {
            let (mut rx, mut tx) = (ping.consumer().unwrap(), pong.producer().unwrap());
            rx.set_wait_strategy(wait);
            tx.set_wait_strategy(wait);
            ready();
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                if recv_with(&mut rx, idle, |f| buf.copy_from_slice(f)).is_err()
                    || send_with(&mut tx, size, idle, |f| f.copy_from_slice(&buf)).is_err()
                {
                    return 1;
                }
            }
            0
        },
        || {
            let mut tx = ping.producer().map_err(|e| e.to_string())?;
            let mut rx = pong.consumer().map_err(|e| e.to_string())?;
            tx.set_wait_strategy(wait);
            rx.set_wait_strategy(wait);
            Ok((tx, rx))
        },
        |(tx, rx), seq| {
            out[..8].copy_from_slice(&seq.to_le_bytes());
            send_with(tx, size, idle, |f| f.copy_from_slice(&out))
                .map_err(|e| format!("round trip: {e}"))?;
            let back = recv_with(rx, idle, |f| u64::from_le_bytes(f[..8].try_into().unwrap()))
                .map_err(|e| format!("round trip: {e}"))?;
            if back != seq {
                return Err(format!("round trip {seq}: got {back}"));
            }
            Ok(())
        },
    )
}

/// The two rings of a round trip (ping, pong), `--capacity` bytes each, by
/// default 64 frames.
fn rtt_rings(shape: &Shape) -> Result<[AnyRing; 2], String> {
    let cfg = ring_config(
        shape.kind,
        shape.size,
        shape.capacity,
        ((shape.size as u64 + 8) * 64).next_power_of_two().max(4096),
        64,
    )?;
    let ring = || AnyRing::anonymous(shape.kind, cfg).map_err(|e| e.to_string());
    Ok([ring()?, ring()?])
}

/// The round trip of [`ring`] with both ends in this thread: send a
/// message on `ping`, take it, copy it out and back into `pong`, take the
/// answer and check it. The ring's own work per round trip, with every
/// line already in this CPU's cache: what a cross-process round trip
/// costs beyond its cache-line transfers.
pub fn ring_local(shape: &Shape) -> Result<Rtt, String> {
    let (size, n) = (shape.size, shape.count);
    let [ping, pong] = rtt_rings(shape)?;
    let err = |e: &dyn std::fmt::Display| format!("round trip: {e}");
    let (mut ping_tx, mut ping_rx) = (
        ping.producer().map_err(|e| err(&e))?,
        ping.consumer().map_err(|e| err(&e))?,
    );
    let (mut pong_tx, mut pong_rx) = (
        pong.producer().map_err(|e| err(&e))?,
        pong.consumer().map_err(|e| err(&e))?,
    );
    // Every message is taken before the next is sent, so a send always
    // finds room and a receive always finds the message: nothing waits.
    let idle = Idle::Poll;
    let (mut out, mut buf) = (vec![0u8; size], vec![0u8; size]);
    let mut hist = histogram();
    let start = Instant::now();
    for seq in 0..n {
        let t0 = Instant::now();
        out[..8].copy_from_slice(&seq.to_le_bytes());
        send_with(&mut ping_tx, size, idle, |f| f.copy_from_slice(&out)).map_err(|e| err(&e))?;
        recv_with(&mut ping_rx, idle, |f| buf.copy_from_slice(f)).map_err(|e| err(&e))?;
        send_with(&mut pong_tx, size, idle, |f| f.copy_from_slice(&buf)).map_err(|e| err(&e))?;
        let back = recv_with(&mut pong_rx, idle, |f| {
            u64::from_le_bytes(f[..8].try_into().unwrap())
        })
        .map_err(|e| err(&e))?;
        if back != seq {
            return Err(format!("round trip {seq}: got {back}"));
        }
        let _ = hist.record((t0.elapsed().as_nanos() as u64).max(1));
    }
    Ok(Rtt {
        hist,
        ns: start.elapsed().as_nanos() as u64,
    })
}

/// Round trips over byte streams: `near` = [read, write] of this process,
/// `far` = [read, write] of the echo process.
pub fn stream(near: [OwnedFd; 2], far: [OwnedFd; 2], size: usize, n: u64) -> Result<Rtt, String> {
    ping_pong(
        n,
        // `far` moves into the child's closure: this process's copies close
        // when the closure is dropped, right after the fork.
        move |ready| {
            let [r, w] = far;
            let (mut r, mut w) = (std::fs::File::from(r), std::fs::File::from(w));
            ready();
            let mut buf = vec![0u8; size];
            for _ in 0..n {
                if r.read_exact(&mut buf).is_err() || w.write_all(&buf).is_err() {
                    return 1;
                }
            }
            0
        },
        move || {
            let [r, w] = near;
            Ok((
                std::fs::File::from(r),
                std::fs::File::from(w),
                vec![0u8; size],
            ))
        },
        |(r, w, buf), seq| {
            buf[..8].copy_from_slice(&seq.to_le_bytes());
            w.write_all(buf).map_err(|e| e.to_string())?;
            r.read_exact(buf).map_err(|e| e.to_string())
        },
    )
}

/// Round trips over two pipes.
pub fn pipe(size: usize, n: u64) -> Result<Rtt, String> {
    let (r1, w1) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    let (r2, w2) = rustix::pipe::pipe().map_err(|e| format!("pipe: {e}"))?;
    stream([r1, w2], [r2, w1], size, n)
}

/// Round trips over a Unix stream socket pair; each side reads and writes
/// its own end.
pub fn socket(size: usize, n: u64) -> Result<Rtt, String> {
    let (a, b) = std::os::unix::net::UnixStream::pair().map_err(|e| format!("socketpair: {e}"))?;
    let (a2, b2) = (
        a.try_clone().map_err(|e| e.to_string())?,
        b.try_clone().map_err(|e| e.to_string())?,
    );
    stream(
        [OwnedFd::from(a), OwnedFd::from(a2)],
        [OwnedFd::from(b), OwnedFd::from(b2)],
        size,
        n,
    )
}

/// The spinning floor: two processes taking turns on one shared cache line
/// (a turn counter: odd is the echo's turn, even is ours). No ring can
/// answer faster than a line can cross between the two cores.
pub fn cache_line(n: u64) -> Result<Rtt, String> {
    let w = shared_counter()?;
    w.store(0, Release);
    ping_pong(
        n,
        |ready| {
            ready();
            for i in 0..n {
                while w.load(Acquire) != 2 * i + 1 {
                    std::hint::spin_loop();
                }
                w.store(2 * i + 2, Release);
            }
            0
        },
        || Ok(()),
        |(), i| {
            w.store(2 * i + 1, Release);
            while w.load(Acquire) != 2 * i + 2 {
                std::hint::spin_loop();
            }
            Ok(())
        },
    )
}

/// The sleeping floor: two processes handing a turn back and forth through
/// a shared futex, each sleeping in the kernel until woken.
pub fn futex(n: u64) -> Result<Rtt, String> {
    use rustix::thread::futex;
    let w = shared_futex()?;
    let wait_for = |v: u32| loop {
        let cur = w.load(Acquire);
        if cur == v {
            return;
        }
        let _ = futex::wait(w, futex::Flags::empty(), cur, None);
    };
    let set = |v: u32| {
        w.store(v, Release);
        let _ = futex::wake(w, futex::Flags::empty(), 1);
    };
    // Turn numbers wrap: only the next value is ever compared.
    let turn = |i: u64, k: u64| (2 * i + k) as u32;
    ping_pong(
        n,
        |ready| {
            ready();
            for i in 0..n {
                wait_for(turn(i, 1));
                set(turn(i, 2));
            }
            0
        },
        || Ok(()),
        |(), i| {
            set(turn(i, 1));
            wait_for(turn(i, 2));
            Ok(())
        },
    )
}
