//! `create`, `stat`, `ls`, `rm`: named rings from the shell.

use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mmring::{AnyRing, Config, Error, Kind, Stat, Trust};

/// One line: what went wrong, with which file, and what to do about it.
pub fn explain(path: &Path, e: &Error) -> String {
    let p = path.display();
    // The library's text for these names its API (`Trust::...`) and the
    // path again; the shell gets the option to pass instead.
    match e {
        Error::ForeignOwner { uid, mode, .. } => {
            return format!(
                "{p}: refused: owned by uid {uid} with mode {mode:04o}; only your own files (or root's) \
                 that no one else can write are trusted (pass --shared if it is shared on purpose)"
            );
        }
        Error::Symlink { .. } => {
            return format!("{p}: refused: it is a symbolic link (open the file it points to)");
        }
        _ => {}
    }
    let hint = match e {
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            format!(" (create it first: mmring create {p})")
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
        Error::InvalidConfig(_) => " (see mmring create --help)".to_string(),
        _ => String::new(),
    };
    format!("{p}: {e}{hint}")
}

/// Opens a ring of any kind. `shared`: a ring deliberately shared between
/// users, which may belong to another user and be writable by others (its
/// current owner, as the path names it, is trusted).
pub fn open(path: &Path, shared: bool) -> Result<AnyRing, String> {
    AnyRing::open_with(path, trust_for(path, shared)).map_err(|e| explain(path, &e))
}

/// The trust `--shared` asks for: the file's current owner, and a mode
/// others may write; without it, the library's default.
fn trust_for(path: &Path, shared: bool) -> Trust {
    let mut trust = Trust::new();
    if shared {
        trust = trust.allow_shared_mode();
        if let Ok(meta) = std::fs::metadata(path) {
            use std::os::unix::fs::MetadataExt;
            trust = trust.allow_owner(meta.uid());
        }
    }
    trust
}

/// The data area of `mmring create PATH` without `--capacity`.
pub const DEFAULT_CAPACITY: u64 = 1 << 20;

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
        (_, cap, None, None) => {
            let cfg = Config::new(cap.unwrap_or(DEFAULT_CAPACITY));
            match max_frame {
                Some(m) => cfg.max_frame(m),
                None => cfg,
            }
        }
        _ => {
            return Err(format!(
                "a {kind} ring takes --capacity BYTES (default 1M), not --slots"
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
                st.released_frames.saturating_sub(prev.released_frames) as f64 / dt,
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

fn print_stat(path: &Path, st: &Stat, rates: Option<(f64, f64, f64)>) {
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
    println!("  released  {} frames since creation", st.released_frames);
    println!(
        "  fill      {used} / {total} {u} ({:.1}%)",
        100.0 * used as f64 / total.max(1) as f64
    );
    if let Some((produced, consumed, frames)) = rates {
        if st.kind == Kind::Mpmc {
            // A slot holds one frame: slots/s are frames/s.
            println!(
                "  rates     produced {produced:.0} frames/s, consumed {consumed:.0} frames/s (at most {:.0} / {:.0} bytes/s)",
                produced * st.max_frame as f64,
                consumed * st.max_frame as f64
            );
        } else {
            println!(
                "  rates     produced {produced:.0} bytes/s, consumed {consumed:.0} bytes/s, {frames:.0} frames/s"
            );
        }
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
    let stale = if st.stale_sleepers > 0 {
        format!(
            " ({} of them killed while asleep, cleared by the next wake-ups)",
            st.stale_sleepers
        )
    } else {
        String::new()
    };
    println!(
        "  sleeping  {} consumer(s), {} producer(s){stale}",
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

fn to_json(path: &Path, st: &Stat, rates: Option<(f64, f64, f64)>) -> String {
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
        Some((p, c, fr)) => {
            let unit = if st.kind == Kind::Mpmc {
                "frames"
            } else {
                "bytes"
            };
            format!(
                ",\"produced_per_s\":{p:.1},\"consumed_per_s\":{c:.1},\"produced_{unit}_per_s\":{p:.1},\"consumed_{unit}_per_s\":{c:.1},\"consumed_frames_per_s\":{fr:.1}"
            )
        }
        None => String::new(),
    };
    format!(
        "{{\"path\":{},\"kind\":\"{}\",\"capacity\":{},\"max_frame\":{},\"slot_count\":{},\
         \"head\":{},\"tail\":{},\"used\":{used},\"total\":{total},\"units\":\"{}\",\
         \"producer\":{},\"consumer\":{},\"consumers_waiting\":{},\"producers_waiting\":{},\
         \"stale_sleepers\":{},\"claims\":[{}],\"recoveries\":{},\"released_frames\":{}{rates}}}",
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
        st.stale_sleepers,
        claims.join(","),
        st.recoveries,
        st.released_frames
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

/// `mmring recv`'s exit status when the ring's producer died (was killed,
/// or exited without detaching) rather than finishing cleanly.
pub const EXIT_PRODUCER_DIED: u8 = 3;

/// Pids holding a role, alive or dead, as `1234, 99 (dead)`.
fn pids(r: &mmring::RoleStat) -> String {
    if r.holders.is_empty() {
        return "-".into();
    }
    r.holders
        .iter()
        .map(|h| {
            if h.alive {
                h.pid.to_string()
            } else {
                format!("{} (dead)", h.pid)
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn live(st: &Stat) -> bool {
    st.producer.holders.iter().any(|h| h.alive) || st.consumer.holders.iter().any(|h| h.alive)
}

/// What `ls` says about a ring's health: claims stuck on a dead process,
/// holders that died, or nothing to say.
fn health(st: &Stat) -> String {
    let mut notes = Vec::new();
    let stuck = st.claims.iter().filter(|c| !c.alive).count();
    if stuck > 0 {
        notes.push(format!("stuck: {stuck} claim(s) of dead processes"));
    }
    let died = [&st.producer, &st.consumer]
        .iter()
        .any(|r| r.state == mmring::PeerState::Died);
    if !live(st) && died {
        notes.push("stale: no live holder, one died".into());
    } else if died {
        notes.push("a former holder died".into());
    }
    if notes.is_empty() {
        if live(st) { "live" } else { "idle" }.to_string()
    } else {
        notes.join("; ")
    }
}

fn human(bytes: u64) -> String {
    match bytes {
        b if b >= 1 << 30 && b % (1 << 30) == 0 => format!("{}G", b >> 30),
        b if b >= 1 << 20 && b % (1 << 20) == 0 => format!("{}M", b >> 20),
        b if b >= 1 << 10 && b % (1 << 10) == 0 => format!("{}K", b >> 10),
        b => b.to_string(),
    }
}

/// `mmring ls [DIR]`: every ring file in `dir` (default `/dev/shm`), one
/// line each; files that are not rings are passed over.
pub fn ls(dir: Option<&Path>, json: bool) -> Result<ExitCode, String> {
    let dir = dir.unwrap_or(Path::new("/dev/shm"));
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    entries.sort();
    if !json {
        println!(
            "{:<32} {:<5} {:<14} {:>6}  {:<18} {:<18} STATE",
            "PATH", "KIND", "GEOMETRY", "FILL", "PRODUCER", "CONSUMER"
        );
    }
    for path in entries {
        // Only files that start like a ring are listed.
        let kind = match mmring::kind_of(&path) {
            Ok(k) => k,
            // Listed only if it is a ring by its header, read as `--shared`
            // would read it.
            Err(Error::ForeignOwner { .. })
                if mmring::kind_of_with(&path, trust_for(&path, true)).is_ok() =>
            {
                if !json {
                    println!(
                        "{:<32} (a ring of another user, or writable by others)",
                        path.display()
                    );
                }
                continue;
            }
            Err(Error::UnsupportedVersion { .. }) => {
                if !json {
                    println!("{:<32} (a ring of another layout version)", path.display());
                }
                continue;
            }
            Err(_) => continue,
        };
        let ring = match AnyRing::open(&path) {
            Ok(r) => r,
            Err(e) => {
                if !json {
                    println!("{:<32} {:<5} ({e})", path.display(), kind.to_string());
                }
                continue;
            }
        };
        let st = ring.stat();
        let (used, total) = fill(&st);
        if json {
            println!("{}", to_json(&path, &st, None));
            continue;
        }
        let geometry = if st.kind == Kind::Mpmc {
            format!("{}x{}", st.slot_count, human(st.max_frame))
        } else {
            human(st.capacity)
        };
        println!(
            "{:<32} {:<5} {:<14} {:>5.1}%  {:<18} {:<18} {}",
            path.display(),
            st.kind.to_string(),
            geometry,
            100.0 * used as f64 / total.max(1) as f64,
            pids(&st.producer),
            pids(&st.consumer),
            health(&st)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `mmring rm PATH...`: removes rings no live process holds (all of them
/// with `force`); refuses files that are not rings. Fails if any was
/// refused.
pub fn rm(paths: &[std::path::PathBuf], force: bool, shared: bool) -> Result<ExitCode, String> {
    let mut ok = true;
    for path in paths {
        let p = path.display();
        let refusal = match AnyRing::open_with(path, trust_for(path, shared)) {
            Ok(ring) => {
                let st = ring.stat();
                (live(&st) && !force).then(|| {
                    format!(
                        "mmring: {p}: held by live processes (producer {}, consumer {}); not removed (--force removes it anyway)",
                        pids(&st.producer),
                        pids(&st.consumer)
                    )
                })
            }
            // A ring by its header whose cursors or words are corrupt: with
            // --force, removed like any other (nothing can read it).
            Err(mmring::Error::Corrupt(_)) if force => None,
            Err(e) => {
                let hint = if matches!(e, mmring::Error::Corrupt(_)) {
                    " (--force removes it anyway)"
                } else {
                    ""
                };
                Some(format!("mmring: {}; not removed{hint}", explain(path, &e)))
            }
        };
        if let Some(why) = refusal {
            eprintln!("{why}");
            ok = false;
            continue;
        }
        if let Err(e) = std::fs::remove_file(path) {
            eprintln!("mmring: {p}: {e}; not removed");
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
