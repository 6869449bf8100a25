//! The `mmring` binary end to end: create -> send -> recv -> stat round
//! trips for every kind, a two-process pipeline, a short bench, and every
//! error path printing one clear line and exiting non-zero.
#![cfg(feature = "cli")]

mod common;

use std::io::{Read, Write};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempFile, temp_path};

fn mmring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(args)
        .output()
        .expect("run mmring")
}

fn mmring_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mmring");
    // A command that fails before reading its input closes the pipe early:
    // the write may then fail, and the exit status is what the test checks.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// An error is one line on stderr, naming the file, and a failing status.
fn assert_one_line_error(o: &Output, needle: &str) {
    assert!(!o.status.success(), "expected failure, got {:?}", o.status);
    let err = stderr(o);
    assert_eq!(err.trim_end().lines().count(), 1, "one line, got: {err}");
    assert!(err.starts_with("mmring: "), "{err}");
    assert!(err.contains(needle), "{err:?} should mention {needle:?}");
}

#[test]
fn create_send_recv_stat_for_every_kind() {
    for (kind, extra) in [
        ("spsc", vec!["--capacity", "64K"]),
        ("mpsc", vec!["--capacity", "64K"]),
        ("mpmc", vec!["--slots", "64", "--slot-size", "128"]),
    ] {
        let t = TempFile(temp_path(&format!("cli-{kind}")));
        let path = t.0.to_str().unwrap();
        let mut args = vec!["create", path, "--kind", kind];
        args.extend(extra);
        let o = mmring(&args);
        assert!(o.status.success(), "create {kind}: {}", stderr(&o));
        assert!(stdout(&o).contains(&format!("({kind},")), "{}", stdout(&o));

        let lines = "alpha\nbeta\n\ngamma with spaces\n";
        let o = mmring_with_stdin(&["send", path], lines.as_bytes());
        assert!(o.status.success(), "send {kind}: {}", stderr(&o));
        assert!(stderr(&o).contains("sent 4 frames"));

        let o = mmring(&["stat", path, "--json"]);
        assert!(o.status.success());
        let json = stdout(&o);
        assert!(json.contains(&format!("\"kind\":\"{kind}\"")), "{json}");
        assert!(
            json.contains(
                "\"producer\":{\"attached\":false,\"state\":\"none attached (left cleanly)\",\"attaches\":1"
            ),
            "{json}"
        );
        assert!(json.contains("\"claims\":[],\"recoveries\":0"), "{json}");

        // The producer has gone: recv --no-wait drains the ring and exits.
        let o = mmring(&["recv", path, "--no-wait"]);
        assert!(o.status.success(), "recv {kind}: {}", stderr(&o));
        assert_eq!(stdout(&o), lines);

        let o = mmring(&["stat", path]);
        let text = stdout(&o);
        assert!(text.contains(&format!("{kind} ring")), "{text}");
        assert!(text.contains("fill      0 /"), "{text}");
    }
}

#[test]
fn raw_chunks_round_trip_and_count_limits() {
    let t = TempFile(temp_path("cli-raw"));
    let path = t.0.to_str().unwrap();
    assert!(
        mmring(&["create", path, "--kind", "spsc", "--capacity", "1M"])
            .status
            .success()
    );
    let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let o = mmring_with_stdin(&["send", path, "--chunk", "4K"], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sent 3 frames"));
    let o = mmring(&["recv", path, "--raw", "--count", "2"]);
    assert_eq!(o.stdout, &data[..8192]);
    let o = mmring(&["recv", path, "--raw", "--no-wait"]);
    assert_eq!(o.stdout, &data[8192..]);
}

/// Two shell pipelines talking through a named ring, like a faster mkfifo:
/// the receiver starts first and waits for the sender.
#[test]
fn pipeline_between_two_processes() {
    let t = TempFile(temp_path("cli-pipe"));
    let path = t.0.to_str().unwrap();
    assert!(
        mmring(&["create", path, "--kind", "spsc", "--capacity", "4K"])
            .status
            .success()
    );
    let recv = spawn_recv(path, &[]);
    // Drain the receiver while the sender runs, as a shell pipeline would.
    let reader = std::thread::spawn(move || recv.wait_with_output().unwrap());
    let input: String = (0..20_000).map(|i| format!("line {i}\n")).collect();
    let o = mmring_with_stdin(&["send", path], input.as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let out = reader.join().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8(out.stdout).unwrap(), input);
}

#[test]
fn bench_runs_and_checks_every_kind() {
    for args in [
        vec!["bench", "--count", "20000"],
        vec!["bench", "--count", "20000", "--blocking", "--size", "4K"],
        vec![
            "bench",
            "--kind",
            "mpsc",
            "--producers",
            "3",
            "--count",
            "30000",
        ],
        vec![
            "bench",
            "--kind",
            "mpmc",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--count",
            "30000",
        ],
    ] {
        let o = mmring(&args);
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(out.contains("M frames/s"), "{out}");
        assert!(
            out.contains("round trip, unloaded (100000 samples)"),
            "{out}"
        );
        assert!(!out.contains("CHECK ERRORS"), "{out}");
    }
}

#[test]
fn error_paths() {
    let missing = temp_path("cli-missing");
    let m = missing.to_str().unwrap();
    assert_one_line_error(&mmring(&["stat", m]), "create it first");
    assert_one_line_error(&mmring(&["recv", m]), m);
    assert_one_line_error(&mmring_with_stdin(&["send", m], b"x\n"), m);

    let t = TempFile(temp_path("cli-exists"));
    let path = t.0.to_str().unwrap();
    assert!(
        mmring(&["create", path, "--kind", "mpsc", "--capacity", "4K"])
            .status
            .success()
    );
    assert_one_line_error(
        &mmring(&["create", path, "--kind", "mpsc", "--capacity", "4K"]),
        "File exists",
    );
    // A line longer than the ring's max frame.
    let long = vec![b'x'; 5000];
    assert_one_line_error(
        &mmring_with_stdin(&["send", path], &long),
        "max frame (2040); use --raw; sent 0 frames; 1 lines read from stdin were not sent",
    );
    // Lines before it are sent; it and those after are reported, not lost
    // silently.
    let mut input = b"ok\n".to_vec();
    input.extend(&long);
    input.extend(b"\nafter\n");
    assert_one_line_error(
        &mmring_with_stdin(&["send", path], &input),
        "sent 1 frames; 2 lines read from stdin were not sent",
    );
    assert_eq!(left_in_ring(path), "ok\n");

    let bad = TempFile(temp_path("cli-bad"));
    std::fs::write(&bad.0, vec![7u8; 9000]).unwrap();
    assert_one_line_error(
        &mmring(&["stat", bad.0.to_str().unwrap()]),
        "not an mmring file",
    );

    let fresh = temp_path("cli-fresh");
    let f = fresh.to_str().unwrap();
    assert_one_line_error(
        &mmring(&["create", f, "--kind", "spsc", "--capacity", "1000"]),
        "power of two",
    );
    assert_one_line_error(
        &mmring(&["create", f, "--kind", "mpmc", "--capacity", "4K"]),
        "--slots",
    );
    assert!(!fresh.exists(), "a refused create leaves nothing behind");
    assert_one_line_error(
        &mmring(&["bench", "--kind", "spsc", "--producers", "2"]),
        "one producer",
    );
    assert_one_line_error(&mmring(&["bench", "--size", "8"]), "at least 24");
    // The broadcast bench refuses what it would ignore.
    for (extra, what) in [
        (["--producers", "2"], "--producers"),
        (["--capacity", "64K"], "--capacity"),
        (["--batch", "8"], "--batch"),
        (["--release-every", "8"], "--release-every"),
    ] {
        let mut args = vec!["bench", "--kind", "broadcast", "--count", "1000"];
        args.extend(extra);
        assert_one_line_error(&mmring(&args), what);
    }
    for flag in ["--blocking", "--json"] {
        assert_one_line_error(
            &mmring(&["bench", "--kind", "broadcast", "--count", "1000", flag]),
            flag,
        );
    }

    // Argument errors come from clap: non-zero exit too.
    let o = mmring(&["create", f, "--kind", "spsc", "--capacity", "lots"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a size"));
}

fn create(path: &str, extra: &[&str]) {
    let mut args = vec!["create", path];
    args.extend(extra);
    let o = mmring(&args);
    assert!(o.status.success(), "create: {}", stderr(&o));
}

fn spawn(args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mmring")
}

/// Starts `recv` and waits until it holds the consumer role, so a sender
/// started next is one it sees attach.
fn spawn_recv(path: &str, extra: &[&str]) -> Child {
    let mut args = vec!["recv", path];
    args.extend(extra);
    let recv = spawn(&args);
    wait_until("recv attached", || {
        stat_json(path).contains("\"consumer\":{\"attached\":true")
    });
    recv
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: a signal to our own child, which has not been reaped.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
}

/// Waits until `cond` holds, for at most 20 seconds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `stat --json`'s report, checked to be well-formed JSON.
fn stat_json(path: &str) -> String {
    let json = stdout(&mmring(&["stat", path, "--json"]));
    well_formed(&json);
    json
}

/// Fails unless `json` is one well-formed JSON document without padding
/// between its tokens.
fn well_formed(json: &str) {
    if let Err(e) = serde_json::from_str::<serde_json::Value>(json) {
        panic!("not JSON ({e}): {json}");
    }
    assert!(!json.contains("  "), "stray spaces: {json}");
}

/// The number in `"key":N` of a JSON object.
fn json_u64(json: &str, key: &str) -> u64 {
    let at = json.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    json[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

fn numbered(from: usize, to: usize) -> String {
    (from..to).map(|i| format!("line {i}\n")).collect()
}

/// What `recv --no-wait` still finds in the ring.
fn left_in_ring(path: &str) -> String {
    let o = mmring(&["recv", path, "--no-wait"]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

/// `mmring create PATH` with no options makes an spsc ring of 1 MiB, mode
/// 600, as `mkfifo PATH` makes a FIFO; sizes take K, M and G.
#[test]
fn create_with_no_options_is_spsc_1m_0600() {
    let t = TempFile(temp_path("cli-default"));
    let path = t.0.to_str().unwrap();
    create(path, &[]);
    let json = stat_json(path);
    assert!(json.contains("\"kind\":\"spsc\""), "{json}");
    assert_eq!(json_u64(&json, "capacity"), 1 << 20, "{json}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&t.0).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o600);

    for (size, bytes) in [("64K", 64u64 << 10), ("1M", 1 << 20), ("1G", 1 << 30)] {
        let t = TempFile(temp_path("cli-size"));
        let p = t.0.to_str().unwrap();
        create(p, &["--kind", "mpsc", "--capacity", size]);
        assert_eq!(json_u64(&stat_json(p), "capacity"), bytes, "{size}");
    }
}

/// A receiver started after a producer has come and gone drains what is
/// there and then waits, as a FIFO reader does, until a new producer
/// attaches; it ends when that one detaches.
#[test]
fn late_receiver_waits_for_a_new_producer() {
    let t = TempFile(temp_path("cli-late"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "64K"]);
    let first = numbered(0, 100);
    assert!(
        mmring_with_stdin(&["send", path], first.as_bytes())
            .status
            .success()
    );

    let mut recv = spawn(&["recv", path]);
    // It drains the first producer's lines, then keeps waiting.
    wait_until("the ring drained", || {
        json_u64(&stat_json(path), "head") > 0 && stat_json(path).contains("\"used\":0")
    });
    // `stat` counts messages, not only bytes, on a framed ring.
    assert_eq!(json_u64(&stat_json(path), "released_frames"), 100);
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        recv.try_wait().unwrap().is_none(),
        "recv quit with no producer attached"
    );

    let second = numbered(100, 200);
    assert!(
        mmring_with_stdin(&["send", path], second.as_bytes())
            .status
            .success()
    );
    let o = recv.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), first + &second);

    // --no-wait on an empty ring exits at once.
    let o = mmring(&["recv", path, "--no-wait"]);
    assert_eq!((o.status.code(), o.stdout.len()), (Some(0), 0));
}

/// A sender started on a ring whose receivers have all left (cleanly, or
/// killed) fills the ring and then waits, as a FIFO's writer waits for a
/// reader, instead of giving up with "the consumer is gone": that consumer
/// was never its receiver. The next receiver gets every line, in line and
/// raw mode. (It gave up, dropping the lines it had read, and the next
/// receiver waited for ever.)
#[test]
fn early_sender_on_a_used_ring_waits_for_the_next_receiver() {
    let t = TempFile(temp_path("cli-early"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "4K"]);
    // A first session: a receiver and a sender come and go.
    let recv = spawn_recv(path, &[]);
    let first = numbered(0, 10);
    assert!(
        mmring_with_stdin(&["send", path], first.as_bytes())
            .status
            .success()
    );
    let o = recv.wait_with_output().unwrap();
    assert_eq!(stdout(&o), first, "{}", stderr(&o));

    // Past half full: the 20 KB of input cannot all fit, so the sender is
    // about to wait for room (raw mode's 1 KiB chunks fill 3 KiB of 4).
    let full = |path: &str| {
        let json = stat_json(path);
        json_u64(&json, "used") * 2 > json_u64(&json, "capacity")
    };
    for (mode, killed) in [("lines", false), ("raw", false), ("lines", true)] {
        if killed {
            // The last receiver is killed while it waits for data.
            let recv = spawn_recv(path, &[]);
            signal(&recv, libc::SIGKILL);
            let _ = recv.wait_with_output();
        }
        let lines = numbered(0, 2000);
        let args: &[&str] = if mode == "raw" {
            &["send", path, "--raw"]
        } else {
            &["send", path]
        };
        let mut send = spawn(args);
        let mut input = send.stdin.take().unwrap();
        let writer = {
            let lines = lines.clone();
            std::thread::spawn(move || input.write_all(lines.as_bytes()))
        };
        wait_until("the ring full", || full(path));
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            send.try_wait().unwrap().is_none(),
            "{mode}, killed {killed}: send gave up with no receiver of its own"
        );
        // The sender is attached, so this receiver ends when it detaches.
        let recv_args: &[&str] = if mode == "raw" {
            &["recv", path, "--raw"]
        } else {
            &["recv", path]
        };
        let o = mmring(recv_args);
        assert_eq!(o.status.code(), Some(0), "{mode}: {}", stderr(&o));
        assert!(stdout(&o) == lines, "{mode}, killed {killed}: lines lost");
        writer.join().unwrap().unwrap();
        let s = send.wait_with_output().unwrap();
        assert_eq!(s.status.code(), Some(0), "{mode}: {}", stderr(&s));
        if killed {
            assert!(
                stderr(&s).contains("died without detaching; waiting"),
                "{}",
                stderr(&s)
            );
        }
    }
}

/// A ring others may write is refused without `--shared`, by `stat` and
/// `rm` alike, with one line that names the path once and the option to
/// pass (not the library's API); `rm --shared` removes it. `ls` lists it
/// as such, and passes over a file others may write that is not a ring.
#[test]
fn shared_rings_need_shared_in_stat_rm_and_ls() {
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("mmring-cli-shared-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let (ring, junk) = (dir.join("ring"), dir.join("junk"));
    let pr = ring.to_str().unwrap();
    create(pr, &[]);
    std::fs::write(&junk, [7u8; 16]).unwrap();
    for f in [&ring, &junk] {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o666)).unwrap();
    }

    let o = mmring(&["ls", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.lines()
            .any(|l| l.contains(pr) && l.contains("writable by others")),
        "{text}"
    );
    assert!(
        !text.contains("junk"),
        "a file that is not a ring listed: {text}"
    );

    for args in [vec!["stat", pr], vec!["rm", pr]] {
        let o = mmring(&args);
        assert!(!o.status.success(), "{args:?}");
        let err = stderr(&o);
        assert_one_line_error(&o, "pass --shared");
        assert!(!err.contains("Trust::"), "{args:?}: {err}");
        assert_eq!(err.matches(pr).count(), 1, "{args:?}: {err}");
    }
    assert!(ring.exists(), "refused, yet removed");
    let o = mmring(&["stat", pr, "--shared"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mmring(&["rm", "--shared", pr]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!ring.exists());
    // `--shared` trusts the owner and mode, not the contents.
    let o = mmring(&["rm", "--shared", junk.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(junk.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `--follow` keeps receiving across producers, a killed one included,
/// until it is told to stop.
#[test]
fn follow_keeps_going_across_producers() {
    let t = TempFile(temp_path("cli-follow"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "64K"]);
    let mut recv = spawn_recv(path, &["--follow"]);
    // Its stderr, line by line.
    let (tx, said) = std::sync::mpsc::channel::<String>();
    let err = recv.stderr.take().unwrap();
    let errs = std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(err).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    assert!(
        mmring_with_stdin(&["send", path], b"a\nb\n")
            .status
            .success()
    );

    let mut send = spawn(&["send", path]);
    let mut input = send.stdin.take().unwrap();
    input.write_all(b"c\n").unwrap();
    input.flush().unwrap();
    wait_until("c sent", || json_u64(&stat_json(path), "tail") >= 48);
    send.kill().unwrap();
    send.wait().unwrap();
    drop(input);
    // recv notices the death and keeps waiting.
    let line = said
        .recv_timeout(Duration::from_secs(20))
        .expect("recv said nothing");
    assert!(line.contains("the producer died; waiting"), "{line}");

    assert!(mmring_with_stdin(&["send", path], b"d\n").status.success());
    wait_until("d received", || {
        stat_json(path).contains("\"used\":0") && json_u64(&stat_json(path), "head") >= 64
    });
    std::thread::sleep(Duration::from_millis(200));
    assert!(recv.try_wait().unwrap().is_none(), "--follow ended early");
    signal(&recv, libc::SIGINT);
    let o = recv.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "a\nb\nc\nd\n");
    assert_eq!(o.status.code(), Some(130));
    errs.join().unwrap();
    let last = said.try_iter().last().unwrap_or_default();
    assert!(last.contains("stopped by SIGINT; wrote 4 frames"), "{last}");
}

/// A sender killed with `kill -9` is a crash, not an end of stream: `recv`
/// delivers what was committed, then says the producer died and exits with
/// status 3; after a clean `send`, it exits 0.
#[test]
fn a_killed_sender_is_not_a_clean_finish() {
    let t = TempFile(temp_path("cli-killed"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "64K"]);
    let recv = spawn_recv(path, &[]);
    let mut send = spawn(&["send", path]);
    let mut stdin = send.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    stdin.flush().unwrap();
    wait_until("sent", || json_u64(&stat_json(path), "tail") == 32);
    send.kill().unwrap();
    send.wait().unwrap();
    drop(stdin);
    let o = recv.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "one\ntwo\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("the producer died"), "{}", stderr(&o));
    // Asked afterwards, with nothing left: the same verdict.
    let o = mmring(&["recv", path, "--no-wait"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));

    // A clean finish exits 0.
    let recv = spawn_recv(path, &[]);
    let o = mmring_with_stdin(&["send", path], b"three\n");
    assert!(o.status.success());
    let o = recv.wait_with_output().unwrap();
    assert_eq!(stdout(&o), "three\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

/// A sender killed between its `tail` store and its publication's first
/// frame word (the `spsc-tail-stored` crash point of this debug build)
/// leaves frames no reader sees until someone stores that word:
/// `recv --no-wait` stores it (the producer is gone) and drains every line
/// the sender published, then reports the death; a second one finds
/// nothing more. (Before, `--no-wait` said "empty" at that word and
/// delivered none of the killed publication, however often it ran.)
#[test]
fn no_wait_drains_what_a_killed_sender_left_half_published() {
    common::require_crash_points();
    let t = TempFile(temp_path("cli-half-published"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "64K"]);
    let o = mmring_with_stdin(&["send", path], numbered(0, 5).as_bytes());
    assert!(o.status.success(), "{}", stderr(&o));
    let mut send = Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(["send", path])
        .env("MMRING_KILL_AT", "spsc-tail-stored:1")
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin
        .take()
        .unwrap()
        .write_all(numbered(5, 20).as_bytes())
        .unwrap();
    let status = send.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "killed at its crash point"
    );
    assert!(
        json_u64(&stat_json(path), "tail") > json_u64(&stat_json(path), "head"),
        "its tail store happened"
    );
    let o = mmring(&["recv", path, "--no-wait"]);
    assert_eq!(stdout(&o), numbered(0, 20));
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let o = mmring(&["recv", path, "--no-wait"]);
    assert_eq!(stdout(&o), "");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
}

/// SIGINT or SIGTERM to `recv` mid-stream, while it is blocked writing to a
/// pipe nobody reads, loses nothing: the lines in its output and the lines
/// left in the ring are every line sent, once, in order.
#[test]
fn an_interrupted_receiver_loses_nothing() {
    const N: usize = 200_000;
    let all = numbered(0, N);
    for (trial, (sig, cut)) in [
        (libc::SIGINT, 1_000usize),
        (libc::SIGTERM, 30_000),
        (libc::SIGINT, 120_000),
        (libc::SIGTERM, 7),
    ]
    .into_iter()
    .enumerate()
    {
        let t = TempFile(temp_path("cli-sigint"));
        let path = t.0.to_str().unwrap();
        create(path, &["--capacity", "8M"]);
        let o = mmring_with_stdin(&["send", path], all.as_bytes());
        assert!(o.status.success(), "{}", stderr(&o));

        let mut recv = spawn(&["recv", path, "--no-wait"]);
        let mut out = std::io::BufReader::new(recv.stdout.take().unwrap());
        let mut got = String::new();
        use std::io::BufRead;
        for _ in 0..cut {
            assert!(out.read_line(&mut got).unwrap() > 0, "recv ended early");
        }
        // Stop reading: recv fills the pipe and blocks in write.
        std::thread::sleep(Duration::from_millis(300));
        signal(&recv, sig);
        out.read_to_string(&mut got).unwrap();
        let status = recv.wait().unwrap();
        assert_eq!(status.code(), Some(128 + sig), "trial {trial}");
        assert!(
            got.len() < all.len(),
            "trial {trial}: recv finished before the signal"
        );
        assert!(got.ends_with('\n'), "trial {trial}: a line cut short");
        let rest = left_in_ring(path);
        assert_eq!(
            got.len() + rest.len(),
            all.len(),
            "trial {trial}: lost or doubled lines"
        );
        assert_eq!(got + &rest, all, "trial {trial}");
    }
}

/// `recv | head -n 10`: head exits, the pipe closes, recv stops; the lines
/// gone from the ring are the ones recv wrote into the pipe (it says how
/// many), and every other line is still in the ring, in order.
#[test]
fn recv_into_head_takes_only_what_the_pipe_accepted() {
    const N: usize = 100_000;
    let t = TempFile(temp_path("cli-head"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "4M"]);
    let all = numbered(0, N);
    assert!(
        mmring_with_stdin(&["send", path], all.as_bytes())
            .status
            .success()
    );
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "'{}' recv '{path}' --no-wait | head -n 10",
            env!("CARGO_BIN_EXE_mmring")
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), numbered(0, 10));
    let err = stderr(&o);
    let wrote: usize = err
        .split("wrote ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("recv should say how many it wrote: {err}"));
    assert!((10..N).contains(&wrote), "{err}");
    // No more than a pipe holds plus what head read ahead.
    assert!(numbered(0, wrote).len() <= 128 << 10, "{err}");
    assert_eq!(left_in_ring(path), numbered(wrote, N), "{err}");
}

/// The same with this test as the reader, so the bytes the pipe accepted
/// are known exactly: those read, plus those still in the pipe (FIONREAD)
/// when its read end is closed. The ring has lost exactly those lines.
#[test]
fn a_closed_pipe_takes_exactly_what_it_accepted() {
    const N: usize = 100_000;
    let all = numbered(0, N);
    // Lines, and raw frames of 1000 bytes (written with writev).
    for raw in [false, true] {
        let t = TempFile(temp_path("cli-epipe"));
        let path = t.0.to_str().unwrap();
        create(path, &["--capacity", "4M"]);
        let mut send = vec!["send", path];
        let mut recv = vec!["recv", path, "--no-wait"];
        if raw {
            send.extend(["--chunk", "1000"]);
            recv.push("--raw");
        }
        assert!(mmring_with_stdin(&send, all.as_bytes()).status.success());
        let mut recv = spawn(&recv);
        let mut out = recv.stdout.take().unwrap();
        let mut head = vec![0u8; 1500];
        out.read_exact(&mut head).unwrap();
        // Wait until recv is blocked on the full pipe: what it holds no
        // longer changes.
        let in_pipe = || {
            use std::os::fd::AsRawFd;
            let mut n: libc::c_int = 0;
            // SAFETY: FIONREAD writes one int, through a pointer to ours.
            assert_eq!(
                unsafe { libc::ioctl(out.as_raw_fd(), libc::FIONREAD, &mut n) },
                0
            );
            n as usize
        };
        let mut last = in_pipe();
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = in_pipe();
            if now == last && now > 0 {
                break;
            }
            last = now;
        }
        let accepted = head.len() + last;
        drop(out);
        let o = recv.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).contains("output closed"), "{}", stderr(&o));
        // Whole frames are released; one cut short by the pipe is not.
        let (rest, whole) = if raw {
            let o = mmring(&["recv", path, "--no-wait", "--raw"]);
            (stdout(&o), accepted / 1000 * 1000)
        } else {
            let whole = all[..accepted].rfind('\n').map_or(0, |i| i + 1);
            (left_in_ring(path), whole)
        };
        assert!(rest == all[whole..], "raw {raw}: accepted {accepted} bytes");
    }
}

/// SIGINT to a `send` blocked on a full ring: it says how many lines it had
/// read and not sent, and those it sent are in the ring; none vanish.
#[test]
fn an_interrupted_sender_reports_what_it_read_and_did_not_send() {
    const N: usize = 2_000;
    let t = TempFile(temp_path("cli-send-int"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "4K"]);
    let mut send = spawn(&["send", path]);
    let mut input = send.stdin.take().unwrap();
    // Fits in the pipe: all of it is written, and send reads it all.
    input.write_all(numbered(0, N).as_bytes()).unwrap();
    input.flush().unwrap();
    wait_until("the ring full", || {
        stat_json(path).contains("\"producers_waiting\":1")
    });
    assert!(stat_json(path).contains("\"stale_sleepers\":0"));
    signal(&send, libc::SIGINT);
    let o = send.wait_with_output().unwrap();
    drop(input);
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let err = stderr(&o);
    let num = |after: &str| -> usize {
        err.split(after)
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{after:?} in {err}"))
    };
    let (sent, unsent) = (num("sent "), num("frames; "));
    assert!(err.contains("lines read from stdin were not sent"), "{err}");
    assert!(sent > 0 && unsent > 0, "{err}");
    assert_eq!(sent + unsent, N, "{err}");
    assert_eq!(left_in_ring(path), numbered(0, sent));
}

/// `stat` of a ring whose sender was killed while it slept on a full
/// ring: still counted as sleeping (its bit is set until a waker clears
/// it), and said to be killed while asleep, in text and JSON.
#[test]
fn stat_tells_a_sleeper_killed_while_asleep() {
    let t = TempFile(temp_path("cli-stale"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "4K"]);
    let mut send = spawn(&["send", path]);
    let mut input = send.stdin.take().unwrap();
    input.write_all(numbered(0, 2_000).as_bytes()).unwrap();
    input.flush().unwrap();
    wait_until("the sender asleep", || {
        stat_json(path).contains("\"producers_waiting\":1")
    });
    send.kill().unwrap();
    send.wait().unwrap();
    drop(input);
    let json = stat_json(path);
    assert_eq!(json_u64(&json, "stale_sleepers"), 1, "{json}");
    let o = mmring(&["stat", path]);
    assert!(
        stdout(&o).contains("1 producer(s) (1 of them killed while asleep"),
        "{}",
        stdout(&o)
    );
}

fn xorshift_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    (0..n)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// `send --raw < file` into `recv --raw > out` is byte-identical (`cmp`)
/// for a text file without a trailing newline and for random binary data,
/// through a ring much smaller than the data.
#[test]
fn raw_round_trip_is_cmp_identical() {
    let dir = std::env::temp_dir();
    for (name, data) in [
        (
            "text",
            b"first line\nsecond line\nno newline at the end".to_vec(),
        ),
        ("binary", xorshift_bytes(3 << 20, 0x9e37_79b9_7f4a_7c15)),
        ("empty", Vec::new()),
    ] {
        let t = TempFile(temp_path("cli-rawcmp"));
        let path = t.0.to_str().unwrap();
        create(path, &["--capacity", "64K"]);
        let input = TempFile(dir.join(format!("mmring-cli-in-{}-{name}", std::process::id())));
        let output = TempFile(dir.join(format!("mmring-cli-out-{}-{name}", std::process::id())));
        std::fs::write(&input.0, &data).unwrap();
        let recv = Command::new(env!("CARGO_BIN_EXE_mmring"))
            .args(["recv", "--raw", path])
            .stdout(std::fs::File::create(&output.0).unwrap())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until("recv attached", || {
            stat_json(path).contains("\"consumer\":{\"attached\":true")
        });
        let o = Command::new(env!("CARGO_BIN_EXE_mmring"))
            .args(["send", "--raw", path])
            .stdin(std::fs::File::open(&input.0).unwrap())
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let r = recv.wait_with_output().unwrap();
        assert!(r.status.success(), "{name}: {}", stderr(&r));
        assert!(
            std::fs::read(&output.0).unwrap() == data,
            "{name}: output differs"
        );
        if let Ok(c) = Command::new("cmp").arg(&input.0).arg(&output.0).output() {
            assert!(c.status.success(), "{name}: cmp: {}", stdout(&c));
        }
    }
    // Line mode keeps boundaries and ends every message with a newline.
    let t = TempFile(temp_path("cli-lines"));
    let path = t.0.to_str().unwrap();
    create(path, &[]);
    assert!(mmring_with_stdin(&["send", path], b"a\nb").status.success());
    assert_eq!(left_in_ring(path), "a\nb\n");
}

/// `ls` lists every ring in a directory (and nothing else); `rm` refuses a
/// ring a live process holds unless `--force`, and any file that is not a
/// ring.
#[test]
fn ls_and_rm() {
    let dir = std::env::temp_dir().join(format!("mmring-cli-ls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).unwrap();
    let a = dir.join("a");
    let b = dir.join("b");
    let other = dir.join("notes.txt");
    let (pa, pb) = (a.to_str().unwrap(), b.to_str().unwrap());
    create(pa, &[]);
    create(
        pb,
        &["--kind", "mpmc", "--slots", "64", "--slot-size", "128"],
    );
    std::fs::write(&other, "not a ring").unwrap();
    let mut recv = spawn_recv(pa, &[]);

    let o = mmring(&["ls", dir.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let line_a = text.lines().find(|l| l.contains(pa)).expect("a listed");
    assert!(line_a.contains("spsc") && line_a.contains("1M"), "{text}");
    assert!(
        line_a.contains(&recv.id().to_string()) && line_a.contains("live"),
        "{text}"
    );
    let line_b = text.lines().find(|l| l.contains(pb)).expect("b listed");
    assert!(
        line_b.contains("mpmc") && line_b.contains("64x128") && line_b.contains("idle"),
        "{text}"
    );
    assert!(!text.contains("notes.txt"), "{text}");

    // `--json`: one well-formed object per ring, a name that needs
    // escaping included.
    let c = dir.join("q\"uo\\te");
    create(c.to_str().unwrap(), &[]);
    let o = mmring(&["ls", dir.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let mut paths: Vec<String> = text
        .lines()
        .map(|l| {
            well_formed(l);
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["path"].as_str().expect("path").to_owned()
        })
        .collect();
    paths.sort();
    let mut want: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|p| p.to_str().unwrap().to_owned())
        .collect();
    want.sort();
    assert_eq!(paths, want, "{text}");

    // A live ring is refused, a non-ring file too, an idle ring removed.
    let o = mmring(&["rm", pa, pb, other.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("held by live processes"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("not an mmring file"), "{}", stderr(&o));
    assert!(a.exists() && other.exists() && !b.exists());
    let o = mmring(&["rm", "--force", pa]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!a.exists());
    // A ring whose cursors are corrupt (head past tail) is refused, and
    // removed with --force; a file that is not a ring is not, even then.
    {
        use std::os::unix::fs::FileExt;
        let o = mmring(&["create", pa]);
        assert!(o.status.success(), "{}", stderr(&o));
        let f = std::fs::OpenOptions::new().write(true).open(&a).unwrap();
        f.write_all_at(&64u64.to_ne_bytes(), 128).unwrap(); // head = 64 > tail = 0
    }
    let o = mmring(&["rm", pa]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("corrupt") && stderr(&o).contains("--force removes it anyway"),
        "{}",
        stderr(&o)
    );
    assert!(a.exists());
    let o = mmring(&["rm", "--force", pa, other.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(!a.exists(), "{}", stderr(&o));
    assert!(other.exists());
    signal(&recv, libc::SIGTERM);
    recv.wait().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bench --json` prints one JSON object: the ring size, the warm-up, the
/// pacing, saturation and paced figures for the ring, a pipe, a FIFO and a
/// Unix socket, each checked; a rate that is not one is refused.
#[test]
fn bench_json_with_pacing_and_a_fifo() {
    let o = mmring(&[
        "bench",
        "--count",
        "20000",
        "--rate",
        "100K/s",
        "--compare",
        "--json",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let json = stdout(&o);
    assert_eq!(json.trim_end().lines().count(), 1, "{json}");
    assert!(
        json.starts_with('{') && json.trim_end().ends_with('}'),
        "{json}"
    );
    well_formed(&json);
    assert_eq!(json_u64(&json, "ring_bytes"), 4 << 20, "{json}");
    assert_eq!(json_u64(&json, "warmup_frames"), 10_000, "{json}");
    assert_eq!(json_u64(&json, "paced_rate"), 100_000, "{json}");
    for t in ["mmring", "pipe", "fifo", "unix socket"] {
        let at = json
            .find(&format!("\"transport\":\"{t}\""))
            .unwrap_or_else(|| panic!("{t} missing: {json}"));
        let row = &json[at..];
        assert_eq!(json_u64(row, "frames"), 20_000, "{t}: {json}");
        assert_eq!(json_u64(row, "errors"), 0, "{t}: {json}");
        // Paced: every frame timed.
        let paced = &row[row.find("\"paced\":").unwrap()..];
        assert_eq!(json_u64(paced, "count"), 20_000, "{t}: {json}");
    }
    // Argument errors come from clap.
    let o = mmring(&["bench", "--rate", "fast"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("'fast' is not a rate"),
        "{}",
        stderr(&o)
    );
}

/// `bench --capacity` sizes the ring and says so: in the text header, in
/// `--json`'s `ring_bytes`, in `--case`'s `ring_bytes` line, in every
/// `--workloads` line; an mpmc ring gets the slots that fit. A capacity
/// no ring can have is one clear error line and a failing status.
#[test]
fn bench_capacity_sizes_the_ring_and_reports_it() {
    let o = mmring(&[
        "bench",
        "--capacity",
        "256K",
        "--count",
        "20000",
        "--rate",
        "0",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .contains("ring of 262144 bytes (256 KiB)"),
        "{out}"
    );

    let o = mmring(&[
        "bench",
        "--kind",
        "mpmc",
        "--producers",
        "2",
        "--consumers",
        "2",
        "--capacity",
        "256K",
        "--count",
        "20000",
        "--rate",
        "0",
        "--json",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(
        json_u64(&stdout(&o), "ring_bytes"),
        256 << 10,
        "{}",
        stdout(&o)
    );

    for (kind, cap, bytes) in [("spsc", "1M", 1u64 << 20), ("mpsc", "64K", 64 << 10)] {
        let o = mmring(&[
            "bench",
            "--case",
            "ring",
            "--kind",
            kind,
            "--capacity",
            cap,
            "--count",
            "10000",
        ]);
        assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains(&format!("ring_bytes {bytes}\n")),
            "{kind}: {out}"
        );
        assert!(out.contains("elapsed_ns "), "{out}");
    }

    let o = mmring(&[
        "bench",
        "--workloads",
        "--capacity",
        "64K",
        "--count",
        "20000",
    ]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    let sized: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("over a ring of"))
        .collect();
    // W1, W2 twice, W5 twice.
    assert_eq!(sized.len(), 5, "{out}");
    for l in sized {
        assert!(l.contains("over a ring of 65536 bytes (64 KiB"), "{l}");
    }
    assert!(!out.contains("CHECK ERRORS"), "{out}");

    assert_one_line_error(
        &mmring(&["bench", "--capacity", "300K", "--count", "1000"]),
        "--capacity 307200 is not a power of two",
    );
    assert_one_line_error(
        &mmring(&[
            "bench",
            "--case",
            "ring",
            "--capacity",
            "64",
            "--count",
            "1000",
        ]),
        "exceeds the max frame 24 of a ring of 64 bytes",
    );
    assert_one_line_error(
        &mmring(&[
            "bench",
            "--case",
            "ring",
            "--kind",
            "mpmc",
            "--capacity",
            "128",
            "--count",
            "1000",
        ]),
        "fewer than 2 mpmc slots",
    );
    let o = mmring(&["bench", "--capacity", "lots"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a size"), "{}", stderr(&o));
}

/// The number on `bench --case`'s `KEY N` line of `out`.
fn case_value(out: &str, key: &str) -> u64 {
    out.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {out}"))
}

/// `bench --case` round trips print their median beside the total, with
/// either wait strategy; an unknown strategy is refused by clap.
#[test]
fn bench_round_trip_cases_print_the_median() {
    for wait in ["sleep", "spin-then-sleep"] {
        let o = mmring(&[
            "bench",
            "--case",
            "ring-rtt",
            "--blocking",
            "--wait",
            wait,
            "--count",
            "2000",
        ]);
        assert!(o.status.success(), "{wait}: {}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        let (p50, total) = (case_value(&out, "p50_ns"), case_value(&out, "elapsed_ns"));
        // The median of 2000 round trips cannot exceed their total.
        assert!(p50 > 0 && p50 <= total, "{wait}: {out}");
    }
    let o = mmring(&["bench", "--case", "ring-rtt", "--wait", "nap"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nap"), "{}", stderr(&o));
}

/// `bench --case ring-rtt-local` (both ends of the round trip in one
/// thread) checks every answer and prints its median, for each flavour
/// that carries round trips; a size no frame of the ring can have is
/// refused as for the other ring cases.
#[test]
fn bench_local_round_trip_case() {
    for kind in ["spsc", "mpsc", "mpmc"] {
        let o = mmring(&[
            "bench",
            "--case",
            "ring-rtt-local",
            "--kind",
            kind,
            "--count",
            "5000",
        ]);
        assert!(o.status.success(), "{kind}: {}{}", stdout(&o), stderr(&o));
        let out = stdout(&o);
        let (p50, total) = (case_value(&out, "p50_ns"), case_value(&out, "elapsed_ns"));
        assert!(p50 > 0 && p50 <= total, "{kind}: {out}");
    }
    let o = mmring(&["bench", "--case", "ring-rtt-local", "--size", "8"]);
    assert!(!o.status.success(), "{}", stdout(&o));
    assert!(stderr(&o).contains("24"), "{}", stderr(&o));
    // A broadcast ring has no consumer to answer or to run in a thread:
    // one error naming the kinds that do, for each such case.
    for case in ["ring-rtt", "ring-rtt-local", "ring-threads"] {
        let o = mmring(&["bench", "--case", case, "--kind", "broadcast"]);
        assert!(!o.status.success(), "{case}: {}", stdout(&o));
        let err = stderr(&o);
        assert!(
            err.contains(case) && err.contains("spsc, mpsc or mpmc"),
            "{case}: {err}"
        );
    }
}

/// `bench --batch K` streams through `try_send_batch` and `try_recv_batch`
/// with every frame checked (a lost, duplicated or reordered frame fails
/// the run), for one and for several producers; where it cannot apply it
/// is one clear error.
#[test]
fn bench_batch_streams_check_every_frame() {
    for args in [
        vec![
            "bench",
            "--case",
            "ring",
            "--batch",
            "64",
            "--capacity",
            "4K",
            "--count",
            "100000",
        ],
        vec![
            "bench",
            "--case",
            "ring",
            "--kind",
            "mpsc",
            "--producers",
            "2",
            "--batch",
            "7",
            "--count",
            "100001",
        ],
        vec![
            "bench",
            "--case",
            "ring",
            "--kind",
            "mpmc",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--batch",
            "16",
            "--capacity",
            "4K",
            "--count",
            "50000",
        ],
    ] {
        let o = mmring(&args);
        assert!(o.status.success(), "{args:?}: {}{}", stdout(&o), stderr(&o));
        assert!(
            stdout(&o).contains("elapsed_ns "),
            "{args:?}: {}",
            stdout(&o)
        );
    }
    let o = mmring(&["bench", "--batch", "16", "--count", "20000", "--rate", "0"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    assert!(!stdout(&o).contains("CHECK ERRORS"), "{}", stdout(&o));

    assert_one_line_error(
        &mmring(&["bench", "--case", "ring", "--batch", "4", "--blocking"]),
        "--batch applies to spinning streams",
    );
    assert_one_line_error(
        &mmring(&["bench", "--case", "ring", "--batch", "0"]),
        "--batch must be at least 1",
    );
}

/// A report whose reader goes away (`mmring stat --watch | head -1`,
/// `mmring bench | head -1`) ends quietly, killed by SIGPIPE as other Unix
/// tools are: no panic message on stderr, no status 101.
#[test]
fn reports_end_quietly_when_the_reader_goes_away() {
    use std::io::{BufRead, BufReader};
    use std::os::unix::process::ExitStatusExt;
    let t = TempFile(temp_path("cli-sigpipe"));
    let path = t.0.to_str().unwrap();
    create(path, &["--capacity", "64K"]);
    for args in [
        vec!["stat", path, "--watch"],
        vec!["bench", "--count", "20000", "--compare"],
    ] {
        let mut child = spawn(&args);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert!(!first.is_empty(), "{args:?}: no output");
        // `head -1` exits: the read end of the pipe is closed.
        drop(out);
        let o = child.wait_with_output().unwrap();
        assert_eq!(
            o.status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {:?}, stderr: {}",
            o.status,
            stderr(&o)
        );
        assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
    }
}
