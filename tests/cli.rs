//! The `mmring` binary end to end: create -> send -> recv -> stat round
//! trips for every kind, a two-process pipeline, a short bench, and every
//! error path printing one clear line and exiting non-zero.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};

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

        // The producer has gone: recv drains the ring and exits.
        let o = mmring(&["recv", path]);
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
    let o = mmring_with_stdin(&["send", path, "--raw", "4K"], &data);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("sent 3 frames"));
    let o = mmring(&["recv", path, "--raw", "--count", "2"]);
    assert_eq!(o.stdout, &data[..8192]);
    let o = mmring(&["recv", path, "--raw"]);
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
    let recv = Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(["recv", path])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
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
    assert_one_line_error(&mmring_with_stdin(&["send", path], &long), "max frame");

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

    // Argument errors come from clap: non-zero exit too.
    let o = mmring(&["create", f, "--kind", "spsc", "--capacity", "lots"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a size"));
}

/// A sender killed with `kill -9` is a crash, not an end of stream: `recv`
/// delivers what was committed, then says the producer died and exits with
/// status 3; after a clean `send`, it exits 0.
#[test]
fn a_killed_sender_is_not_a_clean_finish() {
    let t = TempFile(temp_path("cli-killed"));
    let path = t.0.to_str().unwrap();
    assert!(
        mmring(&["create", path, "--kind", "spsc", "--capacity", "64K"])
            .status
            .success()
    );
    let mut send = Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(["send", path])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = send.stdin.take().unwrap();
    stdin.write_all(b"one\ntwo\n").unwrap();
    stdin.flush().unwrap();
    // The sender has attached once `stat` shows its frames.
    let start = std::time::Instant::now();
    while !stdout(&mmring(&["stat", path, "--json"])).contains("\"tail\":32") {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(20),
            "sender never sent"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    send.kill().unwrap();
    send.wait().unwrap();
    drop(stdin);
    let o = mmring(&["recv", path]);
    assert_eq!(stdout(&o), "one\ntwo\n");
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("the producer died"), "{}", stderr(&o));

    // A clean finish exits 0.
    let o = mmring_with_stdin(&["send", path], b"three\n");
    assert!(o.status.success());
    let o = mmring(&["recv", path]);
    assert_eq!(stdout(&o), "three\n");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
