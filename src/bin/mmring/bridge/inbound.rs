//! JetStream -> ring.
//!
//! Reads the subject's stream with an ordered consumer (no acknowledgement
//! on the server: the bridge keeps its own place), from the sequence after
//! the last one committed into the ring. That sequence is recorded, with
//! the last message id committed from each source ring, in the sidecar file
//! `RING.nats-seq`, written (to a temporary file, then renamed over it)
//! after every `--window` commits and whenever the stream pauses. A bridge
//! killed between a commit and the record commits those messages again
//! when restarted: a reader of the ring may see at most `--window` messages
//! twice, the last ones before the kill, in order. Messages the stream
//! holds twice (published again after its duplicate window) are dropped:
//! a message whose id names a source ring and a position not after the
//! last one committed from that ring is not committed again.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull};
use futures_util::StreamExt;
use mmring::{AnyProducer, AnyRing, SendError, Trust};

use super::{Args, Target, parse_message_id};

/// Where the inbound bridge has got to, kept beside the ring.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Place {
    /// The identity of the ring written ([`AnyRing::id`]); a ring file
    /// created anew at the same path is another ring.
    pub ring: u128,
    /// The stream read.
    pub stream: String,
    /// When the stream was created (Unix nanoseconds): a stream deleted
    /// and created again under the same name is another stream, whose
    /// sequences mean other messages.
    pub created: i128,
    /// Last stream sequence committed into the ring (0: none).
    pub seq: u64,
    /// Per source ring id, the position of the last message committed.
    pub last: BTreeMap<u128, u64>,
}

impl Place {
    /// The sidecar file of `ring`.
    pub fn path(ring: &Path) -> PathBuf {
        let mut p = ring.as_os_str().to_owned();
        p.push(".nats-seq");
        PathBuf::from(p)
    }

    /// Reads the sidecar; `Ok(None)` when there is none.
    pub fn load(ring: &Path) -> Result<Option<Place>, String> {
        let path = Place::path(ring);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        let bad = |l: &str| {
            format!(
                "{}: bad line '{l}' (remove the file to start over)",
                path.display()
            )
        };
        let mut place = Place::default();
        for l in text.lines() {
            let mut w = l.split_whitespace();
            match (w.next(), w.next(), w.next()) {
                (Some("ring"), Some(r), None) => {
                    place.ring = u128::from_str_radix(r, 16).map_err(|_| bad(l))?
                }
                (Some("stream"), Some(s), None) => place.stream = s.to_string(),
                (Some("created"), Some(n), None) => {
                    place.created = n.parse().map_err(|_| bad(l))?
                }
                (Some("seq"), Some(n), None) => place.seq = n.parse().map_err(|_| bad(l))?,
                (Some("last"), Some(r), Some(p)) => {
                    let r = u128::from_str_radix(r, 16).map_err(|_| bad(l))?;
                    place.last.insert(r, p.parse().map_err(|_| bad(l))?);
                }
                (None, ..) => {}
                _ => return Err(bad(l)),
            }
        }
        Ok(Some(place))
    }

    /// Writes the sidecar: a temporary file renamed over it, so a kill
    /// leaves the old record or the new one.
    pub fn store(&self, ring: &Path) -> Result<(), String> {
        let path = Place::path(ring);
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let mut text = format!(
            "ring {:032x}\nstream {}\ncreated {}\nseq {}\n",
            self.ring, self.stream, self.created, self.seq
        );
        for (r, p) in &self.last {
            text.push_str(&format!("last {r:032x} {p}\n"));
        }
        std::fs::write(&tmp, text).map_err(|e| format!("{}: {e}", Path::new(&tmp).display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("{}: {e}", path.display()))
    }
}

#[derive(Default)]
struct Stats {
    committed: u64,
    duplicates: u64,
    bytes: u64,
    restarts: u64,
}

pub async fn run(target: &Target, path: &Path, args: &Args) -> Result<ExitCode, String> {
    let mut trust = Trust::new();
    if args.shared {
        trust = trust.allow_shared_mode();
    }
    let ring = AnyRing::open_with(path, trust).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut place = Place::load(path)?.unwrap_or_default();
    let client = super::connect(target, args).await?;
    let reconnects = Arc::new(AtomicU64::new(0));
    let js = jetstream::new(client.clone());
    let mut stream = super::stream_for(&js, target, true).await?;
    let name = stream.cached_info().config.name.clone();
    let info = stream.cached_info();
    let created = info.created.unix_timestamp_nanos();
    let last_seq = info.state.last_sequence;
    let sidecar = Place::path(path);
    if !place.stream.is_empty() {
        let gone = if place.ring != ring.id() {
            Some(format!(
                "ring {:032x}, but {} is ring {:032x} (created anew since)",
                place.ring,
                path.display(),
                ring.id()
            ))
        } else if place.stream != name {
            Some(format!(
                "stream {}, but subject '{}' is in stream {name}",
                place.stream, target.subject
            ))
        } else if place.created != created || place.seq > last_seq {
            Some(format!(
                "stream {name} up to sequence {}, but the server's stream {name} was created anew \
                 since (it ends at sequence {last_seq})",
                place.seq
            ))
        } else {
            None
        };
        if let Some(what) = gone {
            return Err(format!(
                "{} records where the bridge got to in {what}; resuming would skip or repeat \
                 messages: remove the file to start over from the stream's first message",
                sidecar.display()
            ));
        }
    }
    place.ring = ring.id();
    place.stream = name.clone();
    place.created = created;
    let stop = super::stop_flag()?;
    let mut tx = ring
        .producer()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let max_frame = tx.max_frame();
    if !args.quiet {
        eprintln!(
            "mmring bridge: nats://{}/{} (stream {name}, from sequence {}) -> {}",
            target.server,
            target.subject,
            place.seq + 1,
            path.display()
        );
    }
    let mut st = Stats::default();
    let mut unrecorded = 0usize;
    let started = Instant::now();
    let mut last_report = (Instant::now(), 0u64);
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut idle = tokio::time::interval(Duration::from_millis(20));
    let mut seen_state = client.connection_state();
    let _ = &reconnects;
    'consumer: loop {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let deliver = if place.seq == 0 {
            DeliverPolicy::All
        } else {
            DeliverPolicy::ByStartSequence {
                start_sequence: place.seq + 1,
            }
        };
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: target.subject.clone(),
                deliver_policy: deliver,
                ..Default::default()
            })
            .await;
        let mut messages = match consumer {
            Ok(c) => match c.messages().await {
                Ok(m) => m,
                Err(e) => {
                    retry_note(args, &e.to_string());
                    tokio::time::sleep(Duration::from_millis(250)).await;
                    continue;
                }
            },
            Err(e) => {
                retry_note(args, &e.to_string());
                tokio::time::sleep(Duration::from_millis(250)).await;
                if let Ok(s) = js.get_stream(&name).await {
                    stream = s;
                }
                continue;
            }
        };
        loop {
            tokio::select! {
                biased;
                m = messages.next() => {
                    let msg = match m {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => {
                            retry_note(args, &e.to_string());
                            st.restarts += 1;
                            continue 'consumer;
                        }
                        None => {
                            st.restarts += 1;
                            continue 'consumer;
                        }
                    };
                    let seq = match msg.info() {
                        Ok(i) => i.stream_sequence,
                        Err(e) => return Err(format!("a message from stream {name} without its metadata: {e}")),
                    };
                    if seq <= place.seq {
                        continue;
                    }
                    let id = msg
                        .headers
                        .as_ref()
                        .and_then(|h| h.get("Nats-Msg-Id"))
                        .and_then(|v| parse_message_id(v.as_str()));
                    if let Some((r, p)) = id
                        && place.last.get(&r).is_some_and(|&l| p <= l)
                    {
                        st.duplicates += 1;
                        place.seq = seq;
                        continue;
                    }
                    let payload = &msg.payload;
                    if payload.len() > max_frame {
                        record(&place, path, &mut unrecorded)?;
                        return Err(format!(
                            "stream {name} sequence {seq}: {} bytes is larger than the largest frame of {} ({max_frame} bytes); nothing after it was committed",
                            payload.len(),
                            path.display()
                        ));
                    }
                    if !commit(&mut tx, payload, &stop).await? {
                        break 'consumer;
                    }
                    st.committed += 1;
                    st.bytes += payload.len() as u64;
                    place.seq = seq;
                    if let Some((r, p)) = id {
                        place.last.insert(r, p);
                    }
                    unrecorded += 1;
                    if unrecorded >= args.window {
                        record(&place, path, &mut unrecorded)?;
                    }
                }
                _ = idle.tick() => {
                    record(&place, path, &mut unrecorded)?;
                    if stop.load(Ordering::SeqCst) {
                        break 'consumer;
                    }
                    // Back from a disconnection: read on from the last
                    // committed sequence rather than wait for the
                    // consumer's heartbeat to notice.
                    let now = client.connection_state();
                    let back = now == async_nats::connection::State::Connected
                        && seen_state != async_nats::connection::State::Connected;
                    seen_state = now;
                    if back {
                        st.restarts += 1;
                        continue 'consumer;
                    }
                }
                _ = tick.tick() => {
                    let now = Instant::now();
                    let rate = (st.committed - last_report.1) as f64 / now.duration_since(last_report.0).as_secs_f64();
                    last_report = (now, st.committed);
                    report(args, &st, &place, rate, started, false);
                }
            }
        }
    }
    record(&place, path, &mut unrecorded)?;
    report(args, &st, &place, 0.0, started, true);
    Ok(ExitCode::SUCCESS)
}

fn record(place: &Place, path: &Path, unrecorded: &mut usize) -> Result<(), String> {
    if *unrecorded > 0 {
        place.store(path)?;
        *unrecorded = 0;
    }
    Ok(())
}

/// Commits one frame, waiting while the ring is full (nothing more is
/// pulled meanwhile), also while no consumer is attached: the ring keeps
/// what it holds for the next one, and the stream the rest. `Ok(false)`:
/// stopped while waiting.
async fn commit(tx: &mut AnyProducer, payload: &[u8], stop: &AtomicBool) -> Result<bool, String> {
    loop {
        match tx.try_send(payload) {
            Ok(()) => return Ok(true),
            Err(SendError::Full) => {}
            Err(e) => return Err(format!("writing the ring: {e}")),
        }
        if stop.load(Ordering::SeqCst) {
            return Ok(false);
        }
        tokio::select! {
            r = tx.send_async(payload) => {
                match r {
                    Ok(()) => return Ok(true),
                    // Full, and every consumer that attached has left
                    // (the async send's answer at once): look again after
                    // a moment, as for room.
                    Err(SendError::Disconnected) => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    Err(e) => return Err(format!("writing the ring: {e}")),
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(50)) => {}
        }
    }
}

fn retry_note(args: &Args, e: &str) {
    if !args.quiet {
        eprintln!(
            "mmring bridge: reading the stream: {e}; reading on from the last committed sequence"
        );
    }
}

fn report(args: &Args, st: &Stats, place: &Place, rate: f64, started: Instant, last: bool) {
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "direction": "in",
                "final": last,
                "committed": st.committed,
                "duplicates": st.duplicates,
                "bytes": st.bytes,
                "last_sequence": place.seq,
                "consumer_restarts": st.restarts,
                "committed_per_s": rate,
                "seconds": started.elapsed().as_secs_f64(),
            })
        );
    }
    if !args.quiet {
        eprintln!(
            "mmring bridge: {} committed, {} duplicates dropped, stream sequence {}, {:.0} msg/s{}",
            st.committed,
            st.duplicates,
            place.seq,
            rate,
            if last { " (stopped)" } else { "" }
        );
    }
}
