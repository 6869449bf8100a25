//! `create`, `stat`, `send`, `recv`: a named ring from the shell.

use std::io::{BufRead, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mmring::{AnyRing, Config, Error, Kind, RecvError, Stat, Trust};

/// One line: what went wrong, with which file, and what to do about it.
pub fn explain(path: &Path, e: &Error) -> String {
    let p = path.display();
    let hint = match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!(" (create it first: mmring create {p} --kind spsc --capacity 1M)")
        }
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            format!(" (remove it, or inspect it: mmring stat {p})")
        }
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::PermissionDenied => {
            " (check the file's owner and mode)".to_string()
        }
        Error::BadMagic { .. } | Error::NotRegularFile | Error::Truncated { .. } => {
            " (is this path an mmring ring?)".to_string()
        }
        Error::RoleTaken { .. } => " (stop the process holding it, or wait for it)".to_string(),
        Error::ForeignOwner { .. } => {
            " (not yours, or writable by others: pass --shared if it is shared on purpose)"
                .to_string()
        }
        Error::Symlink { .. } => " (open the file it points to)".to_string(),
        Error::InvalidConfig(_) => " (see mmring create --help)".to_string(),
        _ => String::new(),
    };
    format!("{p}: {e}{hint}")
}

/// Opens a ring of any kind. `shared`: a ring deliberately shared between
/// users, which may belong to another user and be writable by others (its
/// current owner, as the path names it, is trusted).
fn open(path: &Path, shared: bool) -> Result<AnyRing, String> {
    let mut trust = Trust::new();
    if shared {
        trust = trust.allow_shared_mode();
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            trust = trust.allow_owner(meta.uid());
        }
    }
    AnyRing::open_with(path, trust).map_err(|e| explain(path, &e))
}

pub fn create(
    path: &Path,
    kind: Kind,
    capacity: Option<u64>,
    max_frame: Option<u64>,
    slots: Option<u64>,
    slot_size: Option<u64>,
    mode: u32,
) -> Result<ExitCode, String> {
    let cfg = match (kind, capacity, slots, slot_size) {
        (Kind::Mpmc, None, Some(n), Some(size)) => Config::slots(n, size),
        (Kind::Mpmc, ..) => {
            return Err("an mpmc ring needs --slots N and --slot-size BYTES".into());
        }
        (_, Some(cap), None, None) => {
            let cfg = Config::new(cap);
            match max_frame {
                Some(m) => cfg.max_frame(m),
                None => cfg,
            }
        }
        _ => {
            return Err(format!(
                "a {kind} ring needs --capacity BYTES (and no --slots)"
            ));
        }
    };
    if kind == Kind::Broadcast {
        return crate::bcast::create(path, cfg.mode(mode));
    }
    let ring = AnyRing::create(path, kind, cfg.mode(mode)).map_err(|e| explain(path, &e))?;
    let st = ring.stat();
    println!(
        "created {} ({kind}, {} bytes of data, frames up to {} bytes)",
        path.display(),
        st.capacity,
        st.max_frame
    );
    Ok(ExitCode::SUCCESS)
}

pub fn stat(path: &Path, watch: bool, json: bool, shared: bool) -> Result<ExitCode, String> {
    if crate::bcast::is(path) {
        return crate::bcast::stat(path, json, shared);
    }
    let ring = open(path, shared)?;
    let mut last: Option<(Instant, Stat)> = None;
    loop {
        let now = Instant::now();
        let st = ring.stat();
        let rates = last.as_ref().map(|(t, prev)| {
            let dt = now.duration_since(*t).as_secs_f64();
            (
                (st.tail - prev.tail) as f64 / dt,
                (st.head - prev.head) as f64 / dt,
            )
        });
        if json {
            println!("{}", to_json(path, &st, rates));
        } else {
            print_stat(path, &st, rates);
        }
        if !watch {
            return Ok(ExitCode::SUCCESS);
        }
        last = Some((now, st));
        std::thread::sleep(Duration::from_secs(1));
    }
}

fn units(st: &Stat) -> &'static str {
    if st.kind == Kind::Mpmc {
        "slots"
    } else {
        "bytes"
    }
}

fn fill(st: &Stat) -> (u64, u64) {
    let total = if st.kind == Kind::Mpmc {
        st.slot_count
    } else {
        st.capacity
    };
    (st.tail.saturating_sub(st.head), total)
}

fn print_stat(path: &Path, st: &Stat, rates: Option<(f64, f64)>) {
    let (used, total) = fill(st);
    let u = units(st);
    println!("{}: {} ring", path.display(), st.kind);
    if st.kind == Kind::Mpmc {
        println!(
            "  geometry  {} slots of {} bytes ({} bytes of data)",
            st.slot_count, st.max_frame, st.capacity
        );
    } else {
        println!(
            "  geometry  {} bytes of data, frames up to {} bytes",
            st.capacity, st.max_frame
        );
    }
    println!("  cursors   head {}  tail {}  ({u})", st.head, st.tail);
    println!(
        "  fill      {used} / {total} {u} ({:.1}%)",
        100.0 * used as f64 / total.max(1) as f64
    );
    if let Some((produced, consumed)) = rates {
        println!("  rates     produced {produced:.0} {u}/s, consumed {consumed:.0} {u}/s");
    }
    for (name, role) in [("producer", &st.producer), ("consumer", &st.consumer)] {
        let holders: Vec<String> = role
            .holders
            .iter()
            .map(|h| format!("{} ({})", h.pid, if h.alive { "alive" } else { "dead" }))
            .collect();
        println!(
            "  {name:<9} {} ; pids: {} ; attached {} times",
            state_name(role.state),
            if holders.is_empty() {
                "-".to_string()
            } else {
                holders.join(", ")
            },
            role.attaches
        );
    }
    println!(
        "  sleeping  {} consumer(s), {} producer(s)",
        st.consumers_waiting, st.producers_waiting
    );
    for c in &st.claims {
        println!(
            "  claim     {} at {} ({u}) by pid {} ({})",
            c.role,
            c.pos,
            c.pid,
            if c.alive {
                "alive"
            } else {
                "dead: stuck until a live party completes it"
            }
        );
    }
    println!("  recovered {} dead parties' claims", st.recoveries);
}

/// A role's state in words.
fn state_name(s: mmring::PeerState) -> &'static str {
    match s {
        mmring::PeerState::Alive => "attached",
        mmring::PeerState::NeverAttached => "never attached",
        mmring::PeerState::Gone => "none attached (left cleanly)",
        mmring::PeerState::Died => "none attached (died)",
        _ => "unknown",
    }
}

fn to_json(path: &Path, st: &Stat, rates: Option<(f64, f64)>) -> String {
    let (used, total) = fill(st);
    let role = |r: &mmring::RoleStat| {
        let holders: Vec<String> = r
            .holders
            .iter()
            .map(|h| format!("{{\"pid\":{},\"alive\":{}}}", h.pid, h.alive))
            .collect();
        format!(
            "{{\"attached\":{},\"state\":\"{}\",\"attaches\":{},\"holders\":[{}]}}",
            r.alive,
            state_name(r.state),
            r.attaches,
            holders.join(",")
        )
    };
    let claims: Vec<String> = st
        .claims
        .iter()
        .map(|c| {
            format!(
                "{{\"role\":\"{}\",\"pos\":{},\"pid\":{},\"alive\":{}}}",
                c.role, c.pos, c.pid, c.alive
            )
        })
        .collect();
    let rates = match rates {
        Some((p, c)) => format!(",\"produced_per_s\":{p:.1},\"consumed_per_s\":{c:.1}"),
        None => String::new(),
    };
    format!(
        "{{\"path\":{},\"kind\":\"{}\",\"capacity\":{},\"max_frame\":{},\"slot_count\":{},\
         \"head\":{},\"tail\":{},\"used\":{used},\"total\":{total},\"units\":\"{}\",\
         \"producer\":{},\"consumer\":{},\"consumers_waiting\":{},\"producers_waiting\":{},\
         \"claims\":[{}],\"recoveries\":{}{rates}}}",
        json_string(&path.display().to_string()),
        st.kind,
        st.capacity,
        st.max_frame,
        st.slot_count,
        st.head,
        st.tail,
        units(st),
        role(&st.producer),
        role(&st.consumer),
        st.consumers_waiting,
        st.producers_waiting,
        claims.join(","),
        st.recoveries
    )
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

pub fn send(path: &Path, raw: Option<u64>, shared: bool) -> Result<ExitCode, String> {
    if crate::bcast::is(path) {
        return crate::bcast::send(path, raw, shared);
    }
    let ring = open(path, shared)?;
    let mut tx = ring.producer().map_err(|e| explain(path, &e))?;
    let max = ring.max_frame();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut sent = 0u64;
    let fail = |e: mmring::SendError| format!("{}: {e}", path.display());
    match raw {
        Some(size) => {
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if size == 0 || size > max {
                return Err(format!(
                    "{}: --raw {size} must be between 1 and the ring's max frame ({max})",
                    path.display()
                ));
            }
            let mut buf = vec![0u8; size];
            loop {
                let n = read_full(&mut input, &mut buf).map_err(|e| format!("stdin: {e}"))?;
                if n == 0 {
                    break;
                }
                tx.send(&buf[..n]).map_err(fail)?;
                sent += 1;
            }
        }
        None => {
            let mut line = Vec::new();
            loop {
                line.clear();
                let n = input
                    .read_until(b'\n', &mut line)
                    .map_err(|e| format!("stdin: {e}"))?;
                if n == 0 {
                    break;
                }
                if line.last() == Some(&b'\n') {
                    line.pop();
                }
                if line.len() > max {
                    return Err(format!(
                        "{}: a line of {} bytes exceeds the ring's max frame ({max}); use --raw",
                        path.display(),
                        line.len()
                    ));
                }
                tx.send(&line).map_err(fail)?;
                sent += 1;
            }
        }
    }
    eprintln!("mmring: sent {sent} frames to {}", path.display());
    Ok(ExitCode::SUCCESS)
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

pub fn recv(path: &Path, raw: bool, count: Option<u64>, shared: bool) -> Result<ExitCode, String> {
    if crate::bcast::is(path) {
        return crate::bcast::recv(path, raw, count, shared);
    }
    let ring = open(path, shared)?;
    let mut rx = ring.consumer().map_err(|e| explain(path, &e))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0u64;
    while count.is_none_or(|c| n < c) {
        let r = rx.recv().map(|frame| {
            out.write_all(&frame)?;
            if !raw {
                out.write_all(b"\n")?;
            }
            Ok::<(), std::io::Error>(())
        });
        match r {
            Ok(Ok(())) => n += 1,
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => break,
            Ok(Err(e)) => return Err(format!("stdout: {e}")),
            Err(RecvError::Disconnected) => break,
            Err(e) => return Err(format!("{}: {e}", path.display())),
        }
        // Keep a pipeline moving: flush whenever nothing more is waiting.
        if rx.is_empty() {
            out.flush().map_err(|e| format!("stdout: {e}"))?;
        }
    }
    out.flush().map_err(|e| format!("stdout: {e}"))?;
    if rx.producer_state() == mmring::PeerState::Died {
        // A crash is not an end of stream: say so, and exit non-zero.
        eprintln!(
            "mmring: {}: the producer died without detaching (received {n} frames)",
            path.display()
        );
        return Ok(ExitCode::from(EXIT_PRODUCER_DIED));
    }
    Ok(ExitCode::SUCCESS)
}

/// `mmring recv`'s exit status when the ring's producer died (was killed,
/// or exited without detaching) rather than finishing cleanly.
pub const EXIT_PRODUCER_DIED: u8 = 3;
