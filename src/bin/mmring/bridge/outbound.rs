//! Ring -> JetStream.
//!
//! A reader thread takes frames ahead from the ring (they stay there) and
//! hands copies to the publishing task over a channel as deep as the
//! window; the task publishes each with its message id and the expected id
//! of the one before, and hands the frame's release mark back to the
//! reader once JetStream acknowledged it, in order.
//!
//! Order in the stream: a message is published with the expectation that
//! the stream's last message is its predecessor (`Nats-Expected-Last-Msg-Id`),
//! except the oldest unacknowledged one when it is (re)sent: everything
//! before it is acknowledged, so it cannot overtake anything. A message
//! lost in a reconnection therefore makes the ones after it fail instead of
//! landing ahead of it; all unacknowledged messages are then sent again,
//! in order. The duplicate window (two minutes) drops what was stored
//! already.

use std::collections::VecDeque;
use std::future::{Future, IntoFuture};
use std::path::Path;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, context::PublishError, message::PublishMessage};
use bytes::Bytes;
use futures_util::FutureExt;
use mmring::{AnyConsumer, AnyRing, Kind, RecvError, ReleaseMark, Trust};

use super::{Args, Target, message_id};

type AckFuture =
    Pin<Box<dyn Future<Output = Result<jetstream::publish::PublishAck, PublishError>> + Send>>;

/// A frame copied out of the ring, still held there (a framed ring's;
/// a broadcast subscriber holds nothing: `end` is `None`).
struct Out {
    position: u64,
    end: Option<ReleaseMark>,
    bytes: Bytes,
}

/// Where the reader thread takes frames from.
enum Source {
    /// An spsc or mpsc ring's consumer, reading ahead.
    Ring(AnyConsumer),
    /// A broadcast ring's subscriber, from the oldest frame still in the
    /// ring; frames numbered below `from` are in the stream already.
    Broadcast {
        sub: mmring::broadcast::Subscriber,
        from: u64,
        lost: Arc<AtomicU64>,
    },
}

struct InFlight {
    out: Out,
    id: String,
    /// The id of the message before it, when it was published after it.
    prev: Option<String>,
    ack: AckFuture,
}

#[derive(Default, Debug)]
struct Stats {
    /// Broadcast: frames the publisher overwrote before the bridge read
    /// them (they cannot be bridged).
    lost: u64,
    published: u64,
    acked: u64,
    duplicates: u64,
    resent: u64,
    bytes: u64,
}

pub async fn run(path: &Path, target: &Target, args: &Args) -> Result<ExitCode, String> {
    let mut trust = Trust::new();
    if args.shared {
        trust = trust.allow_shared_mode();
    }
    // Any framed ring, or else a broadcast ring, both opened with the
    // trust asked for (`--shared`); anything else keeps the first error.
    let (ring, bring) = match AnyRing::open_with(path, trust) {
        Ok(r) => (Some(r), None),
        Err(e) => match mmring::broadcast::Ring::open_with(path, trust) {
            Ok(b) => (None, Some(b)),
            Err(_) => return Err(format!("{}: {e}", path.display())),
        },
    };
    if ring.as_ref().is_some_and(|r| r.kind() == Kind::Mpmc) {
        return Err(format!(
            "{}: an mpmc ring cannot be bridged out: its consumer holds one slot at a time, \
             so frames could not stay in the ring until JetStream acknowledged them \
             (use an spsc or mpsc ring)",
            path.display()
        ));
    }
    // Connect and find the stream before taking the consumer role: a bad
    // server or subject leaves the ring untouched.
    let client = super::connect(target, args).await?;
    let max_payload = client.server_info().max_payload;
    // The window is kept here (`inflight`), not by the client's semaphore
    // of acknowledgements in flight: an acknowledgement future dropped
    // before it resolved (every unacknowledged one when they are sent
    // again after a reconnection) keeps its permit until the client's ack
    // timeout, so a semaphore as deep as the window would leave the resend
    // waiting for permits that only the resend's own acknowledgements
    // could free. Room for four windows, a short ack timeout, and an
    // error instead of a wait when there is no permit (the message is then
    // sent again as the oldest, after a pause).
    let js = jetstream::ContextBuilder::new()
        .max_ack_inflight(args.window.max(1).saturating_mul(4))
        .ack_timeout(ACK_TIMEOUT)
        .backpressure_on_inflight(false)
        .build(client.clone());
    let stream = super::stream_for(&js, target, true).await?;
    let stream_name = stream.cached_info().config.name.clone();
    let stop = super::stop_flag()?;
    let lost = Arc::new(AtomicU64::new(0));
    let (source, ring_id) = match (&ring, &bring) {
        (Some(ring), _) => (
            Source::Ring(
                ring.consumer()
                    .map_err(|e| format!("{}: {e}", path.display()))?,
            ),
            ring.id(),
        ),
        (None, Some(b)) => {
            // A subscriber holds nothing in the ring, so a restarted
            // bridge finds where it got to in the stream: the frame
            // number in the id of the stream's last message from this
            // ring. It starts at the oldest frame still in the ring and
            // skips what the stream holds.
            let from = match stream
                .get_last_raw_message_by_subject(&target.subject)
                .await
            {
                Ok(m) => m
                    .headers
                    .get("Nats-Msg-Id")
                    .and_then(|v| super::parse_message_id(v.as_str()))
                    .filter(|&(r, _)| r == b.id())
                    .map_or(0, |(_, seq)| seq + 1),
                Err(_) => 0,
            };
            let sub = b
                .subscriber_from_oldest()
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if !args.quiet && from > 0 {
                eprintln!(
                    "mmring bridge: the stream holds this broadcast ring's frames up to number {}; continuing after it",
                    from - 1
                );
            }
            (
                Source::Broadcast {
                    sub,
                    from,
                    lost: lost.clone(),
                },
                b.id(),
            )
        }
        (None, None) => unreachable!("one of the two is open"),
    };
    let rx = source;

    // Frames go to the task, and release marks come back, in batches:
    // one wake-up of the other side per batch, not per frame.
    let (frame_tx, mut frame_rx) = tokio::sync::mpsc::channel::<Vec<Out>>(args.window);
    let (rel_tx, rel_rx) = std_mpsc::channel::<(Option<ReleaseMark>, usize)>();
    let reader_stop = Arc::new(AtomicBool::new(false));
    let rs = reader_stop.clone();
    let window = args.window;
    let reader = std::thread::spawn(move || reader(rx, frame_tx, rel_rx, window, &rs));

    if !args.quiet {
        eprintln!(
            "mmring bridge: {} -> nats://{}/{} (stream {stream_name}, window {}, max payload {max_payload} B)",
            path.display(),
            target.server,
            target.subject,
            args.window
        );
    }
    let mut st = Stats::default();
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut last_id: Option<String> = None;
    let mut fatal: Option<String> = None;
    let mut stopping = false;
    let mut reader_done = false;
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut last_report = (Instant::now(), 0u64);
    loop {
        if stop.load(Ordering::SeqCst) && !stopping {
            stopping = true;
        }
        if (stopping || reader_done) && inflight.is_empty() {
            break;
        }
        let can_take = !stopping && !reader_done && inflight.len() < args.window;
        tokio::select! {
            biased;
            r = async { (&mut inflight.front_mut().expect("guarded").ack).await }, if !inflight.is_empty() => {
                match r {
                    Ok(ack) => {
                        let mut f = inflight.pop_front().expect("guarded");
                        let mut n = 1;
                        st.duplicates += u64::from(ack.duplicate);
                        // Every acknowledgement already in, in order, goes
                        // back with this one; a failure stays at the front
                        // for the branch above.
                        while let Some(next) = inflight.front_mut() {
                            match (&mut next.ack).now_or_never() {
                                None => break,
                                Some(Ok(ack)) => {
                                    st.duplicates += u64::from(ack.duplicate);
                                    f = inflight.pop_front().expect("guarded");
                                    n += 1;
                                }
                                Some(Err(e)) => {
                                    next.ack = Box::pin(async move { Err(e) });
                                    break;
                                }
                            }
                        }
                        st.acked += n as u64;
                        // The reader may be gone only after a fatal error of
                        // its own; the frames then stay in the ring.
                        let _ = rel_tx.send((f.out.end, n));
                    }
                    Err(e) if stopping => {
                        // Stopping with the server unreachable: what is not
                        // acknowledged stays in the ring.
                        if !args.quiet {
                            eprintln!("mmring bridge: stopping with {} frames unacknowledged ({e}); they stay in the ring", inflight.len());
                        }
                        inflight.clear();
                    }
                    Err(e) => {
                        if !args.quiet {
                            eprintln!("mmring bridge: publish of {} not acknowledged ({e}); sending the {} unacknowledged again", inflight[0].id, inflight.len());
                        }
                        // Wait for the connection, then send every
                        // unacknowledged message again, in order: the
                        // oldest without an expectation (every message
                        // before it is acknowledged), the others after
                        // their predecessors. Their acknowledgements'
                        // timeouts then run together, not one after
                        // another.
                        wait_connected(&client, &stop).await;
                        // Let go of every old acknowledgement (and its
                        // permit) before sending again.
                        for f in inflight.iter_mut() {
                            f.ack = Box::pin(std::future::pending());
                        }
                        inflight[0].prev = None;
                        let mut queued = true;
                        for f in inflight.iter_mut() {
                            st.resent += 1;
                            match publish(&js, &target.subject, f).await {
                                Ok(ack) => f.ack = ack,
                                Err(e) => {
                                    // Not even queued: sent again when it
                                    // is the oldest.
                                    f.ack = Box::pin(async move { Err(e) });
                                    queued = false;
                                }
                            }
                        }
                        if !queued {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
            }
            f = frame_rx.recv(), if can_take && fatal.is_none() => {
                let Some(batch) = f else {
                    reader_done = true;
                    continue;
                };
                for out in batch {
                        if fatal.is_some() {
                            // Not published: released never, so it stays in
                            // the ring.
                            continue;
                        }
                        if out.bytes.len() > max_payload {
                            fatal = Some(format!(
                                "frame at position {} of {}: {} bytes is larger than the server's max payload of {max_payload} bytes; \
                                 it stays in the ring (raise max_payload in the server's configuration)",
                                out.position, path.display(), out.bytes.len()
                            ));
                            stopping = true;
                            continue;
                        }
                        let id = message_id(ring_id, out.position);
                        st.bytes += out.bytes.len() as u64;
                        let mut f = InFlight { out, prev: last_id.replace(id.clone()), id, ack: Box::pin(std::future::pending()) };
                        if inflight.is_empty() {
                            f.prev = None;
                        }
                        match publish(&js, &target.subject, &f).await {
                            Ok(ack) => f.ack = ack,
                            Err(e) => f.ack = Box::pin(async move { Err(e) }),
                        }
                        st.published += 1;
                        inflight.push_back(f);
                }
            }
            _ = tick.tick() => {
                st.lost = lost.load(Ordering::Relaxed);
                let now = Instant::now();
                let rate = (st.acked - last_report.1) as f64 / now.duration_since(last_report.0).as_secs_f64();
                last_report = (now, st.acked);
                report(args, &st, inflight.len(), rate, started, false);
            }
        }
    }
    reader_stop.store(true, Ordering::SeqCst);
    drop(rel_tx);
    drop(frame_rx);
    let read = reader
        .join()
        .map_err(|_| "the ring reader thread panicked".to_string())?;
    st.lost = lost.load(Ordering::Relaxed);
    report(args, &st, inflight.len(), 0.0, started, true);
    if let Some(e) = fatal {
        return Err(e);
    }
    read.map(|()| ExitCode::SUCCESS)
}

/// Most frames handed from the ring reader to the publishing task at once.
const BATCH: usize = 256;

/// How long the client waits for the acknowledgement of a publish whose
/// future was dropped before it resolved, before it frees its permit.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes `f` (with its id, and its predecessor's as the expected last
/// one when it has it); returns the acknowledgement's future.
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    f: &InFlight,
) -> Result<AckFuture, PublishError> {
    let mut m = PublishMessage::build()
        .payload(f.out.bytes.clone())
        .message_id(&f.id);
    if let Some(p) = &f.prev {
        m = m.expected_last_message_id(p);
    }
    Ok(js.send_publish(subject.to_string(), m).await?.into_future())
}

async fn wait_connected(client: &async_nats::Client, stop: &AtomicBool) {
    let since = Instant::now();
    while client.connection_state() != async_nats::connection::State::Connected {
        if stop.load(Ordering::SeqCst) && since.elapsed() > Duration::from_secs(10) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn report(args: &Args, st: &Stats, inflight: usize, rate: f64, started: Instant, last: bool) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "direction": "out",
                "final": last,
                "published": st.published,
                "acked": st.acked,
                "duplicates": st.duplicates,
                "resent": st.resent,
                "lost": st.lost,
                "in_flight": inflight,
                "bytes": st.bytes,
                "acked_per_s": rate,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    }
    if !args.quiet {
        eprintln!(
            "mmring bridge: {} published, {} acknowledged ({} duplicates dropped by the stream), {} in flight, {} resent, {:.0} msg/s{}{}",
            st.published,
            st.acked,
            st.duplicates,
            inflight,
            st.resent,
            rate,
            if st.lost > 0 {
                format!(", {} FRAMES LOST (overwritten before read)", st.lost)
            } else {
                String::new()
            },
            if last { " (stopped)" } else { "" }
        );
    }
}

/// Takes frames ahead from the ring and applies releases, keeping at most
/// `window` frames taken and unreleased. Stops taking when `stop` is set
/// or the task is gone, and returns once the task has dropped its release
/// sender (every acknowledged frame released).
fn reader(
    mut rx: Source,
    out: tokio::sync::mpsc::Sender<Vec<Out>>,
    rel: std_mpsc::Receiver<(Option<ReleaseMark>, usize)>,
    window: usize,
    stop: &AtomicBool,
) -> Result<(), String> {
    let mut outstanding = 0usize;
    let mut out = Some(out);
    let release = |rx: &mut Source, m: Option<ReleaseMark>| {
        if let (Source::Ring(c), Some(m)) = (rx, m) {
            c.release_to(m);
        }
    };
    loop {
        let mut last = None;
        loop {
            match rel.try_recv() {
                Ok((m, n)) => {
                    last = m.or(last);
                    outstanding -= n;
                }
                Err(std_mpsc::TryRecvError::Empty) => break,
                Err(std_mpsc::TryRecvError::Disconnected) => {
                    release(&mut rx, last);
                    return Ok(());
                }
            }
        }
        release(&mut rx, last);
        if stop.load(Ordering::SeqCst) {
            out = None;
        }
        let Some(tx) = out.as_ref().filter(|_| outstanding < window) else {
            match rel.recv_timeout(Duration::from_millis(20)) {
                Ok((m, n)) => {
                    outstanding -= n;
                    release(&mut rx, m);
                }
                Err(std_mpsc::RecvTimeoutError::Timeout) => {}
                Err(std_mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
            continue;
        };
        let room = window - outstanding;
        let batch = match &mut rx {
            Source::Ring(c) => take_ring(c, room)?,
            Source::Broadcast { sub, from, lost } => take_broadcast(sub, *from, lost, room)?,
        };
        if batch.is_empty() {
            continue;
        }
        outstanding += batch.len();
        if tx.blocking_send(batch).is_err() {
            out = None;
        }
    }
}

fn copy(position: u64, end: Option<ReleaseMark>, bytes: &[u8]) -> Out {
    Out {
        position,
        end,
        bytes: Bytes::copy_from_slice(bytes),
    }
}

/// Up to `room` (and a batch's worth of) frames read ahead from a framed
/// ring, waiting a moment for the first; empty when none came.
fn take_ring(rx: &mut AnyConsumer, room: usize) -> Result<Vec<Out>, String> {
    let first = match rx.recv_ahead_timeout(Duration::from_millis(20)) {
        Ok(g) => copy(g.position(), Some(g.end()), &g),
        Err(RecvError::Empty | RecvError::Timeout) => return Ok(Vec::new()),
        // No producer now: wait for the next one.
        Err(RecvError::Disconnected | RecvError::Unlinked) => {
            std::thread::sleep(Duration::from_millis(20));
            return Ok(Vec::new());
        }
        Err(e) => return Err(format!("reading the ring: {e}")),
    };
    // What else is already in the ring, up to the window and a batch's
    // worth, goes in the same hand-over.
    let mut batch = vec![first];
    while batch.len() < room.min(BATCH) {
        match rx.try_recv_ahead() {
            Ok(g) => batch.push(copy(g.position(), Some(g.end()), &g)),
            Err(_) => break,
        }
    }
    Ok(batch)
}

/// Up to `room` (and a batch's worth of) frames from a broadcast
/// subscriber, numbered from `from` on (older ones are in the stream);
/// a lag is counted in `lost` and reported on stderr at once: those
/// frames were overwritten before the bridge read them and cannot be
/// bridged.
fn take_broadcast(
    sub: &mut mmring::broadcast::Subscriber,
    from: u64,
    lost: &AtomicU64,
    room: usize,
) -> Result<Vec<Out>, String> {
    let mut batch = Vec::new();
    let mut wait = true;
    while batch.len() < room.min(BATCH) {
        let r = if wait {
            sub.recv_timeout(Duration::from_millis(20))
        } else {
            sub.try_recv()
        };
        match r {
            Ok(f) if f.seq() < from => {}
            Ok(f) => {
                wait = false;
                batch.push(copy(f.seq(), None, &f));
            }
            Err(RecvError::Lagged(n)) => {
                lost.fetch_add(n, Ordering::Relaxed);
                eprintln!(
                    "mmring bridge: LOST {n} frames: the publisher overwrote them before the bridge read them \
                     (a larger ring, or a faster server, keeps up)"
                );
            }
            Err(RecvError::Empty | RecvError::Timeout) => break,
            // No publisher now: wait for the next one.
            Err(RecvError::Disconnected) => {
                if wait {
                    std::thread::sleep(Duration::from_millis(20));
                }
                break;
            }
            Err(e) => return Err(format!("reading the ring: {e}")),
        }
    }
    Ok(batch)
}
