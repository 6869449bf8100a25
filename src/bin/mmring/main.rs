//! `mmring`: benchmark, create, inspect and use shared-memory rings from the
//! shell.
//!
//! ```text
//! mmring bench [--kind spsc|mpsc|mpmc] [--size BYTES] [--count N]
//!              [--producers P] [--consumers C] [--blocking]
//!              [--access header|read|copy] [--compare]
//! mmring bench --workloads [--count N]  W1-W5 with floors, references, ratios
//! mmring bench --case CASE [...]        one measurement (cargo bench drives it)
//! mmring create PATH [--kind KIND] [--capacity BYTES] [--max-frame BYTES]
//!              [--slots N --slot-size BYTES] [--mode OCTAL]
//!                                      (default: spsc, 1M, mode 600)
//! mmring stat PATH [--watch] [--json]
//! mmring ls [DIR] [--json]             every ring in DIR (default /dev/shm)
//! mmring rm PATH... [--force]          remove rings no process holds
//! mmring send PATH [--raw] [--chunk N] stdin -> frames (one per line)
//! mmring recv PATH [--raw] [--count N] [--follow | --no-wait]
//!                                      frames -> stdout
//! mmring bridge RING nats://HOST:PORT/SUBJECT   (feature nats)
//! mmring bridge nats://HOST:PORT/SUBJECT RING   (feature nats)
//! ```

mod bcast;
mod bench;
#[cfg(feature = "nats")]
mod bridge;
mod ops;
mod proc;
mod stream;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "mmring",
    version,
    about = "Lock-free shared-memory rings: benchmark, create, inspect, send and receive"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// Ring flavours, as named on the command line.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum KindArg {
    Spsc,
    Mpsc,
    Mpmc,
    Broadcast,
}

impl From<KindArg> for mmring::Kind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Spsc => mmring::Kind::Spsc,
            KindArg::Mpsc => mmring::Kind::Mpsc,
            KindArg::Mpmc => mmring::Kind::Mpmc,
            KindArg::Broadcast => mmring::Kind::Broadcast,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Stream frames between producer and consumer processes on an
    /// anonymous ring; print throughput, latency histograms and the
    /// round-trip floor (also: --workloads, the W1-W5 suite).
    Bench(bench::Args),
    /// Bridge a ring and a NATS JetStream subject, losing nothing:
    /// `bridge RING nats://HOST:PORT/SUBJECT` publishes the ring's frames,
    /// `bridge nats://HOST:PORT/SUBJECT RING` commits the stream's messages
    /// into the ring, in order.
    #[cfg(feature = "nats")]
    Bridge(bridge::Args),
    /// Create a named ring file, as `mkfifo` does: with no options, an
    /// spsc ring of 1 MiB, mode 600.
    Create {
        path: PathBuf,
        #[arg(long, value_enum, default_value = "spsc")]
        kind: KindArg,
        /// Data area size for spsc/mpsc (a power of two; K, M, G suffixes;
        /// default 1M).
        #[arg(long, value_parser = parse_size)]
        capacity: Option<u64>,
        /// Largest frame for spsc/mpsc (default capacity / 2 - 8).
        #[arg(long, value_parser = parse_size)]
        max_frame: Option<u64>,
        /// Number of slots for mpmc (a power of two).
        #[arg(long)]
        slots: Option<u64>,
        /// Bytes per slot for mpmc.
        #[arg(long, value_parser = parse_size)]
        slot_size: Option<u64>,
        /// File permission bits, in octal.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
    },
    /// Show a ring's kind, geometry, cursors, fill, attached processes and
    /// sleepers.
    Stat {
        path: PathBuf,
        /// Print again every second, with rates (bytes/s and frames/s).
        #[arg(long)]
        watch: bool,
        /// Print one JSON object per snapshot.
        #[arg(long)]
        json: bool,
        /// Open a ring deliberately shared between users (another owner,
        /// group- or world-writable).
        #[arg(long)]
        shared: bool,
    },
    /// List the ring files in a directory (default /dev/shm): kind,
    /// geometry, fill, attached pids alive or dead, stuck claims.
    Ls {
        dir: Option<PathBuf>,
        /// One JSON object per ring.
        #[arg(long)]
        json: bool,
    },
    /// Remove ring files; refuses one that a live process holds, and any
    /// file that is not a ring.
    Rm {
        #[arg(required = true)]
        paths: Vec<PathBuf>,
        /// Remove a ring even while processes hold it (they keep their
        /// mapping; new ones cannot open it by name).
        #[arg(long)]
        force: bool,
        /// Open a ring deliberately shared between users (another owner,
        /// group- or world-writable) to check it before removing it.
        #[arg(long)]
        shared: bool,
    },
    /// Read stdin and send it: one frame per line (without its newline; a
    /// last line without one is sent too), or with --raw the bytes as they
    /// come, in frames of whatever each read returned.
    Send {
        path: PathBuf,
        /// Byte-transparent: frames of the input's bytes as read, no line
        /// splitting (pair with recv --raw).
        #[arg(long)]
        raw: bool,
        /// Raw frames of exactly this many bytes (the last may be shorter);
        /// implies --raw.
        #[arg(long, value_parser = parse_size)]
        chunk: Option<u64>,
        /// Open a ring deliberately shared between users.
        #[arg(long)]
        shared: bool,
    },
    /// Receive frames and write them to stdout, each followed by a newline
    /// (line mode keeps message boundaries), or back to back with --raw.
    /// Like a FIFO reader: drains the ring, waits for a producer while none
    /// is attached, and ends when a producer that fed it detaches (status
    /// 0) or dies (status 3). A frame is released only after it is
    /// written; on SIGINT/SIGTERM/SIGHUP or a closed output it stops with
    /// the rest still in the ring.
    Recv {
        path: PathBuf,
        /// Write frames back to back, without newlines (byte-transparent).
        #[arg(long)]
        raw: bool,
        /// Stop after this many frames.
        #[arg(long)]
        count: Option<u64>,
        /// Keep going across producers, clean or killed (as tail -F).
        #[arg(long, conflicts_with = "no_wait")]
        follow: bool,
        /// Drain what is there and exit when the ring is empty.
        #[arg(long)]
        no_wait: bool,
        /// Open a ring deliberately shared between users.
        #[arg(long)]
        shared: bool,
    },
}

/// Parses `4096`, `64K`, `1M`, `2G` (powers of 1024; `KiB` etc. accepted).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let stripped = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match stripped.chars().last() {
        Some('k') => (&stripped[..stripped.len() - 1], 10),
        Some('m') => (&stripped[..stripped.len() - 1], 20),
        Some('g') => (&stripped[..stripped.len() - 1], 30),
        _ => (stripped, 0),
    };
    let n: u64 = digits
        .replace('_', "")
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 4096, 64K, 1M)"))?;
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("'{s}' is too large"))
}

fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| format!("'{s}' is not an octal file mode (example: 640)"))
}

/// The reports (`bench`, `stat`, `ls`) end quietly when their reader goes
/// away (`mmring bench | head`), as other Unix tools do: SIGPIPE back to its
/// default action, which the Rust runtime had set to "ignore" (so a print
/// would panic on EPIPE). `send`, `recv` and `bridge` keep it ignored: they
/// handle EPIPE themselves and say what was not delivered.
fn die_on_broken_pipe() {
    // SAFETY: restoring a signal's default action; no handler runs, and
    // this happens before any thread or child process is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.cmd, Cmd::Bench(_) | Cmd::Stat { .. } | Cmd::Ls { .. }) {
        die_on_broken_pipe();
    }
    let result = match cli.cmd {
        Cmd::Bench(args) => bench::run(&args),
        #[cfg(feature = "nats")]
        Cmd::Bridge(args) => bridge::run(&args),
        Cmd::Create {
            path,
            kind,
            capacity,
            max_frame,
            slots,
            slot_size,
            mode,
        } => ops::create(
            &path,
            kind.into(),
            capacity,
            max_frame,
            slots,
            slot_size,
            mode,
        ),
        Cmd::Stat {
            path,
            watch,
            json,
            shared,
        } => ops::stat(&path, watch, json, shared),
        Cmd::Ls { dir, json } => ops::ls(dir.as_deref(), json),
        Cmd::Rm {
            paths,
            force,
            shared,
        } => ops::rm(&paths, force, shared),
        Cmd::Send {
            path,
            raw,
            chunk,
            shared,
        } => stream::send(&path, stream::SendOpts { raw, chunk, shared }),
        Cmd::Recv {
            path,
            raw,
            count,
            follow,
            no_wait,
            shared,
        } => stream::recv(
            &path,
            stream::RecvOpts {
                raw,
                count,
                follow,
                no_wait,
                shared,
            },
        ),
    };
    match result {
        Ok(code) => code,
        Err(msg) => {
            eprintln!("mmring: {msg}");
            ExitCode::FAILURE
        }
    }
}
