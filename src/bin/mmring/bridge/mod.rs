//! `mmring bridge`: a ring to a NATS JetStream subject, or a subject to a
//! ring (feature `nats`).
//!
//! ```text
//! mmring bridge RING nats://HOST:PORT/SUBJECT   ring -> JetStream (outbound)
//! mmring bridge nats://HOST:PORT/SUBJECT RING   JetStream -> ring (inbound)
//! ```
//!
//! Outbound reads frames ahead ([`mmring::Consumer::try_recv_ahead`]) and
//! releases them from the ring only once JetStream acknowledged them; each
//! message carries the id `RINGID-POSITION` (the ring's 128-bit identity and
//! the frame's position), so what a restarted bridge publishes again is
//! dropped by the stream's duplicate window, and the expected id of the
//! message before it, so a message lost in a reconnection is never
//! overtaken by the ones after it. Inbound reads the stream in order from
//! the sequence after the last one it committed into the ring, recorded in
//! a sidecar file `RING.nats-seq` after each batch of commits.

mod inbound;
mod outbound;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Arguments of `mmring bridge`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Where frames come from: a ring file, or nats://HOST:PORT/SUBJECT.
    pub from: String,
    /// Where frames go: nats://HOST:PORT/SUBJECT, or a ring file.
    pub to: String,
    /// Most messages published and not yet acknowledged (outbound), or
    /// committed into the ring before the stream sequence is recorded
    /// (inbound: the most a reader may see twice after a kill -9).
    #[arg(long, default_value_t = 1024)]
    pub window: usize,
    /// Print one JSON object of statistics per second, and one at the end,
    /// on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
    /// Seconds to wait for the server at start before giving up.
    #[arg(long, default_value_t = 5.0)]
    pub connect_timeout: f64,
    /// Open a ring deliberately shared between users.
    #[arg(long)]
    pub shared: bool,
}

/// A parsed `nats://HOST:PORT/SUBJECT`.
#[derive(Debug, Clone)]
pub struct Target {
    /// `HOST:PORT`, as given.
    pub server: String,
    /// A literal subject (no wildcards).
    pub subject: String,
}

impl Target {
    /// Parses and checks a bridge URL.
    pub fn parse(s: &str) -> Result<Target, String> {
        let rest = s
            .strip_prefix("nats://")
            .ok_or_else(|| format!("'{s}' is not a nats://HOST:PORT/SUBJECT address"))?;
        let (server, subject) = rest
            .split_once('/')
            .ok_or_else(|| format!("'{s}' names no subject (expected nats://HOST:PORT/SUBJECT)"))?;
        if server.is_empty() {
            return Err(format!(
                "'{s}' names no server (expected nats://HOST:PORT/SUBJECT)"
            ));
        }
        check_subject(subject).map_err(|why| format!("'{s}': subject '{subject}' {why}"))?;
        Ok(Target {
            server: server.to_string(),
            subject: subject.to_string(),
        })
    }

    /// The name of the stream created for this subject when none holds it:
    /// `MMRING_` and the subject with every character outside
    /// `[A-Za-z0-9_-]` replaced by `_`.
    pub fn stream_name(&self) -> String {
        let s: String = self
            .subject
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("MMRING_{s}")
    }
}

/// A subject one bridge publishes to or reads from: dot-separated
/// non-empty tokens of printable characters, without the wildcards `*` and
/// `>` (a stream of a wildcard subject would mix several publishers, whose
/// order and duplicates the bridge cannot tell apart).
fn check_subject(subject: &str) -> Result<(), &'static str> {
    if subject.is_empty() {
        return Err("is empty");
    }
    if subject
        .split('.')
        .any(|t| t == "*" || t == ">" || t.contains(['*', '>']))
    {
        return Err("has a wildcard ('*' or '>'): a bridge needs one literal subject");
    }
    if subject.split('.').any(str::is_empty) {
        return Err("has an empty token (leading, trailing or double '.')");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("has whitespace or control characters");
    }
    Ok(())
}

/// Runs `mmring bridge`.
pub fn run(args: &Args) -> Result<ExitCode, String> {
    let is_url = |s: &str| s.contains("://");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    if args.window == 0 {
        return Err("--window must be at least 1".into());
    }
    match (is_url(&args.from), is_url(&args.to)) {
        (false, true) => {
            let target = Target::parse(&args.to)?;
            rt.block_on(outbound::run(Path::new(&args.from), &target, args))
        }
        (true, false) => {
            let target = Target::parse(&args.from)?;
            rt.block_on(inbound::run(&target, &PathBuf::from(&args.to), args))
        }
        _ => Err(format!(
            "bridge takes a ring and a nats://HOST:PORT/SUBJECT, one each way round \
             (got '{}' and '{}')",
            args.from, args.to
        )),
    }
}

/// Connects to the server, failing with a clear message when it cannot be
/// reached in time. After that the client reconnects by itself.
async fn connect(target: &Target, args: &Args) -> Result<async_nats::Client, String> {
    let timeout = Duration::from_secs_f64(args.connect_timeout.max(0.1));
    let opts = async_nats::ConnectOptions::new()
        .connection_timeout(timeout)
        .name("mmring bridge");
    let fut = async_nats::connect_with_options(target.server.as_str(), opts);
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("cannot connect to nats://{}: {e}", target.server)),
        Err(_) => Err(format!(
            "cannot connect to nats://{}: no answer within {:.1} s",
            target.server,
            timeout.as_secs_f64()
        )),
    }
}

/// The stream holding `target.subject`, created (file storage, two-minute
/// duplicate window) when none does.
async fn stream_for(
    js: &async_nats::jetstream::Context,
    target: &Target,
    create: bool,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    use async_nats::jetstream::stream;
    // Two bridges started together on one subject (the inbound and the
    // outbound end, say) both find no stream and both create it; the
    // server may refuse the second ("subjects overlap with an existing
    // stream") while the first is being set up. The loser looks again (up
    // to 10 times, 50 ms longer each time) and uses the stream the other
    // one made.
    let mut create_error = None;
    for attempt in 0..=10u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
        }
        match js.stream_by_subject(target.subject.clone()).await {
            Ok(name) => {
                return js
                    .get_stream(&name)
                    .await
                    .map_err(|e| format!("stream {name}: {e}"));
            }
            Err(e) if !create => {
                return Err(format!(
                    "no JetStream stream holds subject '{}' ({e})",
                    target.subject
                ));
            }
            Err(_) if attempt == 0 => {
                let created = js
                    .get_or_create_stream(stream::Config {
                        name: target.stream_name(),
                        subjects: vec![target.subject.clone()],
                        storage: stream::StorageType::File,
                        duplicate_window: Duration::from_secs(120),
                        ..Default::default()
                    })
                    .await;
                match created {
                    Ok(s) => return Ok(s),
                    Err(e) => create_error = Some(e),
                }
            }
            Err(_) => {}
        }
    }
    Err(format!(
        "cannot create stream {} for subject '{}': {} (is JetStream enabled: nats-server -js?)",
        target.stream_name(),
        target.subject,
        create_error.map_or_else(String::new, |e| e.to_string())
    ))
}

/// Set once SIGINT or SIGTERM arrives.
fn stop_flag() -> Result<Arc<AtomicBool>, String> {
    use tokio::signal::unix::{SignalKind, signal};
    let stop = Arc::new(AtomicBool::new(false));
    let mut int = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT handler: {e}"))?;
    let mut term = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM handler: {e}"))?;
    let s = stop.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
        s.store(true, Ordering::SeqCst);
    });
    Ok(stop)
}

/// The message id of the frame at `position` of ring `id`.
pub fn message_id(id: u128, position: u64) -> String {
    format!("{id:032x}-{position}")
}

/// Splits a message id made by [`message_id`].
pub fn parse_message_id(s: &str) -> Option<(u128, u64)> {
    let (r, p) = s.split_once('-')?;
    Some((u128::from_str_radix(r, 16).ok()?, p.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::parse("nats://127.0.0.1:4222/a.b-c").unwrap();
        assert_eq!(t.server, "127.0.0.1:4222");
        assert_eq!(t.subject, "a.b-c");
        assert_eq!(t.stream_name(), "MMRING_a_b-c");
        for bad in [
            "nats://h:1/a.*",
            "nats://h:1/>",
            "nats://h:1/a.>",
            "nats://h:1/",
            "nats://h:1/a..b",
            "nats://h:1/a b",
            "nats://h:1",
            "http://h:1/a",
            "nats:///a",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let e = Target::parse("nats://h:1/x.*").unwrap_err();
        assert!(e.contains("wildcard"), "{e}");
    }

    #[test]
    fn ids() {
        let id = message_id(0xabc_u128 << 100, 12345);
        assert_eq!(parse_message_id(&id), Some((0xabc_u128 << 100, 12345)));
        assert_eq!(parse_message_id("nope"), None);
    }
}
