//! `mmring` with broadcast rings: create, any number of `recv` following
//! one `send`, lag reported on stderr, `stat` showing the publisher and the
//! live subscribers.
#![cfg(feature = "cli")]

mod common;

use std::io::Write;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{TempFile, temp_path};

fn mmring(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(args)
        .output()
        .expect("run mmring")
}

fn spawn_recv(path: &str) -> Child {
    Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(["recv", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mmring recv")
}

fn send(path: &str, input: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mmring"))
        .args(["send", path])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mmring send");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn stat(path: &str) -> String {
    let o = mmring(&["stat", path]);
    assert!(o.status.success(), "{o:?}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Waits until `stat` shows `n` live subscribers.
fn wait_for_subscribers(path: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !stat(path).contains(&format!("subscribers {n} live")) {
        assert!(Instant::now() < deadline, "{}", stat(path));
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn one_send_many_recv() {
    let t = TempFile(temp_path("cli-bcast"));
    let path = t.0.to_str().unwrap();
    let o = mmring(&["create", path, "--kind", "broadcast", "--capacity", "64K"]);
    assert!(o.status.success(), "{o:?}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("broadcast"));
    let subs: Vec<Child> = (0..3).map(|_| spawn_recv(path)).collect();
    wait_for_subscribers(path, 3);
    assert!(stat(path).contains("publisher   never attached"));
    let lines: String = (1..=200).map(|i| format!("line {i}\n")).collect();
    let o = send(path, lines.as_bytes());
    assert!(o.status.success(), "{o:?}");
    for s in subs {
        let o = s.wait_with_output().unwrap();
        assert!(o.status.success(), "{o:?}");
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            lines,
            "every subscriber, every line"
        );
    }
    let st = stat(path);
    assert!(
        st.contains("publisher   none attached (left cleanly)"),
        "{st}"
    );
    assert!(st.contains("subscribers 0 live"), "{st}");
    let j = mmring(&["stat", path, "--json"]);
    assert!(String::from_utf8_lossy(&j.stdout).contains("\"kind\":\"broadcast\""));
}

/// A subscriber stopped (SIGSTOP) while 2000 lines are published into a
/// small ring reports its lag on stderr once resumed; what it printed and
/// what it lost add up to every line, ending with the last.
#[test]
fn a_stalled_recv_reports_its_lag() {
    let t = TempFile(temp_path("cli-bcast-lag"));
    let path = t.0.to_str().unwrap();
    assert!(
        mmring(&["create", path, "--kind", "broadcast", "--capacity", "1K"])
            .status
            .success()
    );
    let sub = spawn_recv(path);
    wait_for_subscribers(path, 1);
    let pid = rustix::process::Pid::from_raw(sub.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::STOP).unwrap();
    let lines: String = (1..=2000).map(|i| format!("{i}\n")).collect();
    assert!(send(path, lines.as_bytes()).status.success());
    rustix::process::kill_process(pid, rustix::process::Signal::CONT).unwrap();
    let o = sub.wait_with_output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    let got: Vec<u64> = out.lines().map(|l| l.parse().unwrap()).collect();
    assert!(err.contains("lagged:"), "{err}");
    let lost: u64 = err
        .lines()
        .filter_map(|l| l.strip_prefix("mmring: lagged: "))
        .map(|l| l.split(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(got.len() as u64 + lost, 2000, "{err}");
    assert_eq!(got.last(), Some(&2000));
    assert!(got.windows(2).all(|w| w[0] < w[1]), "in order");
}
