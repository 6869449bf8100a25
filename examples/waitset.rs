//! Waits on several rings at once, in one thread, with epoll: the recipe
//! for any event loop (mio, a hand-written epoll loop, a reactor of another
//! language) that wants to wait on mmring rings beside its sockets.
//!
//! ```text
//! cargo run --example waitset -- [--count N] RING...
//! ```
//!
//! Opens each named ring (any kind) as a consumer and prints every message
//! as `INDEX: TEXT`, where INDEX is the ring's position on the command line.
//! It exits after N messages (with `--count`), or once every ring's
//! producers have gone and the rings are empty. The producers are any other
//! processes writing to those files (`mmring send RING`, say): nothing is
//! passed between the processes but the ring files.
//!
//! The loop: drain every ring; arm every consumer (which re-checks its ring
//! and says whether a message slipped in); only if none did, wait in
//! `epoll_wait` on the consumers' descriptors; clear the ones that fired;
//! start over. The timeout lets the loop notice producers killed without
//! detaching (a clean detach wakes the descriptor itself).

use std::io::Write;

use mmring::{AnyConsumer, AnyRing, RecvError};
use rustix::event::{Timespec, epoll};

#[allow(dead_code)] // `tests/event_loop.rs` includes this file and calls `run`.
fn main() -> Result<(), Box<dyn std::error::Error>> {
    run(std::env::args().skip(1).collect())
}

/// The whole program, given its arguments.
pub fn run(mut args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
    let mut count = u64::MAX;
    if args.first().map(String::as_str) == Some("--count") {
        count = args.get(1).ok_or("--count needs a number")?.parse()?;
        args.drain(..2);
    }
    if args.is_empty() {
        return Err("usage: waitset [--count N] RING...".into());
    }
    let rings = args
        .iter()
        .map(AnyRing::open)
        .collect::<Result<Vec<_>, _>>()?;
    let mut consumers: Vec<AnyConsumer> = rings
        .iter()
        .map(AnyRing::consumer)
        .collect::<Result<_, _>>()?;

    let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    for (i, rx) in consumers.iter_mut().enumerate() {
        epoll::add(
            &epoll,
            rx.notify_fd()?,
            epoll::EventData::new_u64(i as u64),
            epoll::EventFlags::IN,
        )?;
    }
    let mut out = std::io::stdout().lock();
    let mut got = 0u64;
    let mut events = Vec::with_capacity(consumers.len());
    while got < count {
        // 1. Drain.
        let mut idle = true;
        let mut all_gone = true;
        for (i, rx) in consumers.iter_mut().enumerate() {
            loop {
                match rx.try_recv() {
                    Ok(msg) => {
                        writeln!(out, "{i}: {}", String::from_utf8_lossy(&msg))?;
                        got += 1;
                        idle = false;
                    }
                    Err(RecvError::Empty) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            all_gone &= rx.producer_state().is_gone();
        }
        out.flush()?;
        if !idle {
            continue;
        }
        if all_gone {
            break;
        }
        // 2. Arm: announce the wait, then look once more.
        let mut ready = false;
        for rx in consumers.iter_mut() {
            ready |= rx.arm()?;
        }
        if ready {
            continue;
        }
        // 3. Sleep until a producer publishes (or 200 ms pass).
        events.clear();
        let timeout = Timespec {
            tv_sec: 0,
            tv_nsec: 200_000_000,
        };
        match epoll::wait(
            &epoll,
            rustix::buffer::spare_capacity(&mut events),
            Some(&timeout),
        ) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        // 4. Clear the descriptors that fired.
        for ev in &events {
            consumers[ev.data.u64() as usize].clear_notify();
        }
    }
    for rx in &mut consumers {
        rx.disarm();
    }
    Ok(())
}
