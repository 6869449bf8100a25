//! `create`, `stat`, `send` and `recv` for broadcast rings, which have
//! their own handles (a publisher and subscribers, not a producer and a
//! consumer); `ops` hands them over here when the file is a broadcast ring.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use mmring::{Config, Kind, PeerState, RecvError, Trust, broadcast};

use crate::ops::{EXIT_PRODUCER_DIED, explain};

/// Whether `path` names a broadcast ring (any error: let the caller's own
/// open report it).
pub fn is(path: &Path) -> bool {
    matches!(mmring::kind_of(path), Ok(Kind::Broadcast))
}

fn open(path: &Path, shared: bool) -> Result<broadcast::Ring, String> {
    let mut trust = Trust::new();
    if shared {
        trust = trust.allow_shared_mode();
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            trust = trust.allow_owner(meta.uid());
        }
    }
    broadcast::Ring::open_with(path, trust).map_err(|e| explain(path, &e))
}

pub fn create(path: &Path, cfg: Config) -> Result<ExitCode, String> {
    let ring = broadcast::Ring::create(path, cfg).map_err(|e| explain(path, &e))?;
    println!(
        "created {} (broadcast, {} bytes of data, frames up to {} bytes)",
        path.display(),
        ring.capacity(),
        ring.max_frame()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn stat(path: &Path, json: bool, shared: bool) -> Result<ExitCode, String> {
    let ring = open(path, shared)?;
    let st = ring.stat();
    let alive = st.consumer.holders.iter().filter(|h| h.alive).count();
    let dead = st.consumer.holders.len() - alive;
    let state = |s: PeerState| match s {
        PeerState::Alive => "attached",
        PeerState::NeverAttached => "never attached",
        PeerState::Gone => "none attached (left cleanly)",
        PeerState::Died => "none attached (died)",
        _ => "unknown",
    };
    if json {
        println!(
            "{{\"path\":{:?},\"kind\":\"broadcast\",\"capacity\":{},\"max_frame\":{},\"oldest\":{},\"tail\":{},\"publisher\":{{\"state\":{:?},\"pid\":{}}},\"subscribers\":{{\"alive\":{alive},\"dead\":{dead}}}}}",
            path.display().to_string(),
            st.capacity,
            st.max_frame,
            st.head,
            st.tail,
            state(st.producer.state),
            st.producer
                .pid()
                .map_or("null".to_string(), |p| p.to_string()),
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}: broadcast ring", path.display());
    println!(
        "  geometry    {} bytes of data, frames up to {} bytes",
        st.capacity, st.max_frame
    );
    println!(
        "  cursors     oldest {}  tail {}  (bytes)",
        st.head, st.tail
    );
    println!(
        "  publisher   {} ; pid {} ; attached {} times",
        state(st.producer.state),
        st.producer.pid().map_or("-".to_string(), |p| p.to_string()),
        st.producer.attaches
    );
    let pids: Vec<String> = st
        .consumer
        .holders
        .iter()
        .map(|h| format!("{} ({})", h.pid, if h.alive { "alive" } else { "dead" }))
        .collect();
    println!(
        "  subscribers {alive} live{} ; pids: {}",
        if dead > 0 {
            format!(", {dead} dead")
        } else {
            String::new()
        },
        if pids.is_empty() {
            "-".to_string()
        } else {
            pids.join(", ")
        }
    );
    Ok(ExitCode::SUCCESS)
}

pub fn send(path: &Path, raw: Option<u64>, shared: bool) -> Result<ExitCode, String> {
    let ring = open(path, shared)?;
    let mut tx = ring.publisher().map_err(|e| explain(path, &e))?;
    let max = ring.max_frame();
    let mut input = std::io::stdin().lock();
    let mut sent = 0u64;
    let fail = |e: mmring::SendError| format!("{}: {e}", path.display());
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match raw {
            Some(size) => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                if size == 0 || size > max {
                    return Err(format!(
                        "{}: --raw {size} must be between 1 and the ring's max frame ({max})",
                        path.display()
                    ));
                }
                (&mut input)
                    .take(size as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| format!("stdin: {e}"))?
            }
            None => {
                let n = input
                    .read_until(b'\n', &mut buf)
                    .map_err(|e| format!("stdin: {e}"))?;
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                }
                n
            }
        };
        if n == 0 {
            break;
        }
        if buf.len() > max {
            return Err(format!(
                "{}: a line of {} bytes exceeds the ring's max frame ({max}); use --raw",
                path.display(),
                buf.len()
            ));
        }
        tx.send(&buf).map_err(fail)?;
        sent += 1;
    }
    eprintln!("mmring: published {sent} frames to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn recv(path: &Path, raw: bool, count: Option<u64>, shared: bool) -> Result<ExitCode, String> {
    let ring = open(path, shared)?;
    let mut rx = ring.subscriber().map_err(|e| explain(path, &e))?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let (mut n, mut lost) = (0u64, 0u64);
    while count.is_none_or(|c| n < c) {
        let r = match rx.try_recv() {
            Err(RecvError::Empty) => {
                // Keep a pipeline moving: flush before waiting.
                out.flush().map_err(|e| format!("stdout: {e}"))?;
                rx.recv()
            }
            r => r,
        };
        let w = match r {
            Ok(frame) => {
                n += 1;
                out.write_all(&frame)
                    .and_then(|()| if raw { Ok(()) } else { out.write_all(b"\n") })
            }
            Err(RecvError::Lagged(k)) => {
                lost += k;
                eprintln!("mmring: lagged: {k} frames overwritten before they were read");
                Ok(())
            }
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        };
        match w {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(e) => return Err(format!("stdout: {e}")),
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    if lost > 0 {
        eprintln!("mmring: received {n} frames, lost {lost}");
    }
    if rx.publisher_state() == PeerState::Died {
        eprintln!(
            "mmring: {}: the publisher died without detaching (received {n} frames)",
            path.display()
        );
        return Ok(ExitCode::from(EXIT_PRODUCER_DIED));
    }
    Ok(ExitCode::SUCCESS)
}
