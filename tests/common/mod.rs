//! Shared test helpers: self-checking frames, peer processes, temp paths,
//! every flavour (`for_every_flavour!`), and the operation model (`model`).
//!
//! Peer processes are this same test binary, re-executed to run only the
//! `#[ignore]`d `peer` test of its file with `MMRING_PEER` naming the role.
//! Peers speak to the parent with lines starting `@@ ` on stdout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

pub mod bcast;
pub mod model;

/// Runs `$f::<P>(kind $(, args)*)` for every flavour: the three fixed
/// flavours, then `AnyRing` of each kind.
#[allow(unused_macros)]
macro_rules! for_every_flavour {
    ($f:ident $(, $arg:expr)* $(,)?) => {{
        $f::<mmring::spsc::Spsc>(mmring::Kind::Spsc $(, $arg)*);
        $f::<mmring::mpsc::Mpsc>(mmring::Kind::Mpsc $(, $arg)*);
        $f::<mmring::mpmc::Mpmc>(mmring::Kind::Mpmc $(, $arg)*);
        for kind in $crate::common::model::KINDS {
            $f::<mmring::AnyKind>(kind $(, $arg)*);
        }
    }};
}
#[allow(unused_imports)]
pub(crate) use for_every_flavour;

/// splitmix64: a tiny, good-enough deterministic mixer.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Length of frame `seq` for a ring whose frames may be `16..=max` bytes.
pub fn frame_len(seq: u64, max: usize) -> usize {
    16 + (mix(seq) % (max as u64 - 16 + 1)) as usize
}

/// FNV-1a over `bytes`.
pub fn checksum(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fills `buf` as frame `seq`: the sequence number, bytes derived from it,
/// and a checksum of everything before it in the last 8 bytes.
pub fn fill_frame(seq: u64, buf: &mut [u8]) {
    let n = buf.len();
    assert!(n >= 16);
    buf[..8].copy_from_slice(&seq.to_le_bytes());
    let mut state = mix(seq ^ 0x5555);
    for chunk in buf[8..n - 8].chunks_mut(8) {
        state = mix(state);
        let bytes = state.to_le_bytes();
        chunk.copy_from_slice(&bytes[..chunk.len()]);
    }
    let sum = checksum(&buf[..n - 8]);
    buf[n - 8..].copy_from_slice(&sum.to_le_bytes());
}

/// Checks that `frame` is exactly frame `seq` of a ring with frames up to
/// `max` bytes; returns a description of the first problem.
pub fn check_frame(seq: u64, frame: &[u8], max: usize) -> Result<(), String> {
    let want = frame_len(seq, max);
    if frame.len() != want {
        return Err(format!(
            "frame {seq}: length {} != expected {want}",
            frame.len()
        ));
    }
    let got = u64::from_le_bytes(frame[..8].try_into().unwrap());
    if got != seq {
        return Err(format!("expected frame {seq}, got frame {got}"));
    }
    let n = frame.len();
    let sum = u64::from_le_bytes(frame[n - 8..].try_into().unwrap());
    if sum != checksum(&frame[..n - 8]) {
        return Err(format!("frame {seq}: checksum mismatch"));
    }
    let mut expect = vec![0u8; n];
    fill_frame(seq, &mut expect);
    if expect != frame {
        return Err(format!("frame {seq}: content differs"));
    }
    Ok(())
}

/// A fresh path for a ring file, in /dev/shm when present.
pub fn temp_path(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = dir.join(format!("mmring-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_file(&p);
    p
}

/// Removes the file when dropped.
pub struct TempFile(pub PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A peer process with its stdin and stdout protocol lines.
pub struct Peer {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
    pub name: String,
}

/// Fails at once, with the reason, where a test would otherwise wait for
/// ever for a process to die at a crash point (`MMRING_KILL_AT`): crash
/// points are compiled in only with debug assertions, so under `cargo
/// test --release` the process never dies there.
pub fn require_crash_points() {
    if !cfg!(debug_assertions) {
        panic!(
            "this test stops processes at crash points (MMRING_KILL_AT), which exist only in \
             builds with debug assertions: run it without --release"
        );
    }
}

/// Starts this test binary's `peer` test as `role`, with extra environment.
pub fn spawn_peer(role: &str, env: &[(&str, String)]) -> Peer {
    if env.iter().any(|(k, _)| *k == "MMRING_KILL_AT") {
        require_crash_points();
    }
    let exe = std::env::current_exe().expect("test binary path");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "peer",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("MMRING_PEER", role)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn peer");
    let stdin = child.stdin.take();
    let out = BufReader::new(child.stdout.take().unwrap());
    Peer {
        child,
        stdin,
        out,
        name: role.to_string(),
    }
}

impl Peer {
    /// The next protocol line (without the `@@ ` prefix), or `None` at EOF.
    pub fn line(&mut self) -> Option<String> {
        let mut s = String::new();
        loop {
            s.clear();
            if self.out.read_line(&mut s).ok()? == 0 {
                return None;
            }
            // libtest may have printed "test peer ... " on the same line.
            if let Some(at) = s.find("@@ ") {
                return Some(s[at + 3..].trim_end().to_string());
            }
        }
    }

    /// The next line of output as printed (no `@@ ` protocol prefix
    /// expected), or `None` at EOF; libtest's own lines are skipped.
    pub fn raw_line(&mut self) -> Option<String> {
        let mut s = String::new();
        loop {
            s.clear();
            if self.out.read_line(&mut s).ok()? == 0 {
                return None;
            }
            let l = s.trim_end();
            // libtest prints "running 1 test" and may print "test peer ... "
            // in front of the first line.
            let l = l.strip_prefix("test peer ... ").unwrap_or(l);
            if l.is_empty() || l.starts_with("running ") {
                continue;
            }
            return Some(l.to_string());
        }
    }

    /// Reads protocol lines until one starts with `prefix`; returns the rest.
    pub fn expect(&mut self, prefix: &str) -> String {
        loop {
            match self.line() {
                Some(l) => {
                    if let Some(rest) = l.strip_prefix(prefix) {
                        return rest.trim().to_string();
                    }
                }
                None => panic!("{}: ended before printing {prefix:?}", self.name),
            }
        }
    }

    pub fn send_line(&mut self, s: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{s}").unwrap();
        stdin.flush().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the peer");
        let _ = self.child.wait();
    }

    /// Waits for a clean exit, panicking with the status otherwise.
    pub fn join(mut self) {
        drop(self.stdin.take());
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{} exited with {status}", self.name);
    }
}

/// Prints a protocol line from a peer.
pub fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "@@ {}", line.as_ref()).unwrap();
    out.flush().unwrap();
}

/// Blocks until the parent writes a line on our stdin.
pub fn wait_for_parent() -> String {
    let mut s = String::new();
    std::io::stdin().read_line(&mut s).unwrap();
    s.trim().to_string()
}

/// An environment variable of a peer, parsed.
pub fn var<T: std::str::FromStr>(name: &str) -> T {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} not set"))
        .parse()
        .unwrap_or_else(|_| panic!("{name} does not parse"))
}
