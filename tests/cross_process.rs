//! Producer and consumer as separate OS processes on one ring: a million
//! self-checking frames, spinning and blocking, over a named file and over
//! an fd-passed memfd; and `kill -9` of either side mid-stream.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;
use std::time::Duration;

use common::*;
use crossbeam_utils::Backoff;
use mmring::{Config, Error, RecvError, SendError, spsc};

/// The heavy tests each occupy both cores; run them one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

const MAX_FRAME: usize = 1024;

fn config() -> Config {
    Config::new(1 << 16).max_frame(MAX_FRAME as u64)
}

/// How a peer finds the ring: `MMRING_PATH` or an inherited `MMRING_FD`.
fn peer_ring() -> spsc::Ring {
    if let Ok(path) = std::env::var("MMRING_PATH") {
        return spsc::Ring::open(path).expect("peer opens the ring");
    }
    let fd: i32 = var("MMRING_FD");
    // SAFETY: the parent passed this fd to us without CLOEXEC; we own it
    // from here on and nothing else in this process uses it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    spsc::Ring::from_fd(fd).expect("peer attaches through the fd")
}

/// Sends frames `from..to`, spinning or blocking. A consumer that dies
/// while the ring is full makes `send` return `Disconnected`; the peer
/// reports it once and keeps offering the frame until a consumer returns.
fn produce(tx: &mut spsc::Producer, from: u64, to: u64, blocking: bool) {
    let max = tx.max_frame().min(MAX_FRAME);
    let mut reported = false;
    for seq in from..to {
        let len = frame_len(seq, max);
        loop {
            let r = if blocking {
                tx.reserve(len)
            } else {
                let b = Backoff::new();
                loop {
                    match tx.try_reserve(len) {
                        Err(SendError::Full) => b.snooze(),
                        other => break other,
                    }
                }
            };
            match r {
                Ok(mut g) => {
                    fill_frame(seq, &mut g);
                    g.commit();
                    break;
                }
                Err(SendError::Disconnected) => {
                    if !reported {
                        say("PRODUCER-DISCONNECTED");
                        reported = true;
                    }
                    // Test-side wait for a new consumer; the library itself
                    // never polls.
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("producer: frame {seq}: {e}"),
            }
        }
    }
}

/// Receives and checks frames `from..to`. `progress` prints each sequence
/// number before releasing it. Returns `Err(last)` on `Disconnected`.
fn consume(
    rx: &mut spsc::Consumer,
    from: u64,
    to: u64,
    blocking: bool,
    progress: bool,
) -> Result<(), u64> {
    let max = MAX_FRAME;
    let mut seq = from;
    let b = Backoff::new();
    while seq < to {
        let r = if blocking { rx.recv() } else { rx.try_recv() };
        match r {
            Ok(frame) => {
                if let Err(e) = check_frame(seq, &frame, max) {
                    panic!("consumer: {e}");
                }
                if progress {
                    say(format!("GOT {seq}"));
                }
                drop(frame);
                seq += 1;
                b.reset();
            }
            Err(RecvError::Empty) => b.snooze(),
            Err(RecvError::Disconnected) => return Err(seq.wrapping_sub(1)),
            Err(e) => panic!("consumer: at frame {seq}: {e}"),
        }
    }
    Ok(())
}

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    let blocking = std::env::var("MMRING_BLOCKING").is_ok();
    let ring = peer_ring();
    match role.as_str() {
        "producer" => {
            let from: u64 = var("MMRING_FROM");
            let to: u64 = var("MMRING_TO");
            let mut tx = ring.producer().expect("claim producer");
            say("ATTACHED");
            produce(&mut tx, from, to, blocking);
            say("SENT");
        }
        "consumer" => {
            let from: u64 = var("MMRING_FROM");
            let to: u64 = var("MMRING_TO");
            let progress = std::env::var("MMRING_PROGRESS").is_ok();
            let mut rx = ring.consumer().expect("claim consumer");
            say("ATTACHED");
            let mut start = from;
            loop {
                match consume(&mut rx, start, to, blocking, progress) {
                    Ok(()) => break,
                    Err(last) => {
                        // The producer is gone and everything it committed
                        // has been received: tell the parent where we are
                        // and wait until it has started a new producer.
                        say(format!("DISCONNECTED {last}"));
                        assert_eq!(wait_for_parent(), "go");
                        start = last + 1;
                    }
                }
            }
            say(format!("DONE {}", to - from));
        }
        "holder" => {
            let _tx = ring.producer().expect("claim producer");
            say("HOLDING");
            wait_for_parent();
        }
        other => panic!("unknown peer role {other}"),
    }
}

fn stream_between_processes(n: u64, blocking: bool) {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("stream");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, config()).unwrap();
    let mut env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
    ];
    if blocking {
        env.push(("MMRING_BLOCKING", "1".into()));
    }
    let mut consumer = spawn_peer("consumer", &env);
    let producer = spawn_peer("producer", &env);
    assert_eq!(consumer.expect("DONE"), n.to_string());
    producer.join();
    consumer.join();
    // Everything was released: the ring is empty and both roles are free.
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert_eq!(st.head, st.tail);
    assert!(!st.producer.alive && !st.consumer.alive);
}

#[test]
fn million_frames_spinning() {
    stream_between_processes(1_000_000, false);
}

#[test]
fn million_frames_blocking() {
    stream_between_processes(1_000_000, true);
}

/// An anonymous ring's memfd passed to two exec'd processes by fd number.
#[test]
fn anonymous_ring_passed_by_fd() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let ring = spsc::Ring::anonymous(config()).unwrap();
    let fd = ring.as_fd().try_clone_to_owned().unwrap();
    // Let the duplicate survive exec in the children.
    rustix::io::fcntl_setfd(&fd, rustix::io::FdFlags::empty()).unwrap();
    let n = 200_000u64;
    let env = vec![
        ("MMRING_FD", fd.as_raw_fd().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
    ];
    let mut consumer = spawn_peer("consumer", &env);
    let producer = spawn_peer("producer", &env);
    assert_eq!(consumer.expect("DONE"), n.to_string());
    producer.join();
    consumer.join();
    let st = ring.stat();
    assert_eq!(
        (st.head, st.producer.attaches, st.consumer.attaches),
        (st.tail, 1, 1)
    );
}

/// `kill -9` the consumer mid-stream: the producer, blocked on the full
/// ring, gets `Disconnected`; a restarted consumer resumes at the last
/// released frame and nothing is lost.
#[test]
fn consumer_killed_and_restarted() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("killc");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(1 << 14).max_frame(MAX_FRAME as u64)).unwrap();
    let n = 100_000u64;
    let base = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
    ];
    let mut env1 = base.clone();
    env1.push(("MMRING_PROGRESS", "1".into()));
    let mut c1 = spawn_peer("consumer", &env1);
    let mut producer = spawn_peer("producer", &base);
    // Kill at a pseudo-random point, well before the end of the stream.
    let kill_at = 1_000 + mix(std::process::id() as u64) % 20_000;
    let mut last = None;
    while last.is_none_or(|l| l < kill_at) {
        let line = c1.line().expect("consumer 1 is streaming");
        if let Some(s) = line.strip_prefix("GOT ") {
            let s: u64 = s.parse().unwrap();
            assert_eq!(
                s,
                last.map_or(0, |l| l + 1),
                "consumer 1 saw frames in order"
            );
            last = Some(s);
        }
    }
    c1.kill9();
    // Lines already in the pipe still count.
    while let Some(line) = c1.line() {
        if let Some(s) = line.strip_prefix("GOT ") {
            let s: u64 = s.parse().unwrap();
            assert_eq!(Some(s), last.map(|l| l + 1));
            last = Some(s);
        }
    }
    let last = last.unwrap();
    // With the consumer dead the ring fills and the blocked producer is told.
    producer.expect("PRODUCER-DISCONNECTED");
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert!(
        !st.consumer.alive,
        "the kernel released the dead consumer's role"
    );
    assert!(
        st.consumer.pid().is_some(),
        "a killed holder cannot clear its pid"
    );

    // The restarted consumer starts at the frame after the last released
    // one: `last` itself if it was printed but not yet released.
    let mut env2 = base.clone();
    env2.push(("MMRING_PROGRESS", "1".into()));
    let first = {
        // Peek at what the header says was released, then check the new
        // consumer agrees by starting it there.
        let ring = spsc::Ring::open(&path).unwrap();
        let mut rx = ring.consumer().unwrap();
        let frame = rx.try_recv().unwrap();
        let seq = u64::from_le_bytes(frame[..8].try_into().unwrap());
        frame_release_without_consuming(frame);
        seq
    };
    assert!(
        first == last || first == last + 1,
        "resumed at {first}, last printed {last}"
    );
    env2[1] = ("MMRING_FROM", first.to_string());
    let mut c2 = spawn_peer("consumer", &env2);
    assert_eq!(c2.expect("DONE"), (n - first).to_string());
    producer.join();
    c2.join();
}

/// Drops a grant *without* releasing it, by forgetting it, so the frame is
/// still there for the next consumer. (What a consumer killed between
/// receiving and releasing leaves behind.)
fn frame_release_without_consuming(frame: spsc::ReadGrant<'_>) {
    std::mem::forget(frame);
}

/// `kill -9` the producer mid-stream: the blocked consumer drains the ring
/// and gets `Disconnected`; a new producer resumes at the last committed
/// frame and the stream continues with nothing lost or duplicated.
#[test]
fn producer_killed_and_restarted() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let path = temp_path("killp");
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(1 << 14).max_frame(MAX_FRAME as u64)).unwrap();
    let n = 100_000u64;
    let env = vec![
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_FROM", "0".to_string()),
        ("MMRING_TO", n.to_string()),
        ("MMRING_BLOCKING", "1".to_string()),
        ("MMRING_PROGRESS", "1".to_string()),
    ];
    let mut consumer = spawn_peer("consumer", &env);
    let mut p1 = spawn_peer("producer", &env[..4]);
    let kill_at = 1_000 + mix(std::process::id() as u64 ^ 7) % 20_000;
    loop {
        let line = consumer.line().expect("consumer is streaming");
        if let Some(s) = line.strip_prefix("GOT ") {
            if s.parse::<u64>().unwrap() >= kill_at {
                break;
            }
        }
    }
    p1.kill9();
    let last: u64 = consumer.expect("DISCONNECTED").parse().unwrap();
    assert!(last >= kill_at && last < n, "consumer stopped at {last}");
    let st = spsc::Ring::open(&path).unwrap().stat();
    assert_eq!(st.head, st.tail, "everything committed was received");

    let mut env2 = env[..4].to_vec();
    env2[1] = ("MMRING_FROM", (last + 1).to_string());
    let mut p2 = spawn_peer("producer", &env2);
    p2.expect("ATTACHED");
    consumer.send_line("go");
    assert_eq!(consumer.expect("DONE"), n.to_string());
    p2.expect("SENT");
    p2.join();
    consumer.join();
}

/// A role held by a live process is refused with its pid; once that process
/// is killed the kernel frees the role and it can be claimed again.
#[test]
fn role_taken_until_holder_dies() {
    let path = temp_path("role");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, config()).unwrap();
    let mut holder = spawn_peer("holder", &[("MMRING_PATH", path.display().to_string())]);
    holder.expect("HOLDING");
    match ring.producer() {
        Err(Error::RoleTaken { role, pid }) => {
            assert_eq!(role, mmring::Role::Producer);
            assert_eq!(pid, Some(holder.pid()));
        }
        other => panic!("expected RoleTaken, got {other:?}"),
    }
    assert!(ring.stat().producer.alive);
    holder.kill9();
    assert!(!ring.stat().producer.alive);
    let tx = ring
        .producer()
        .expect("a dead holder's role can be claimed");
    assert_eq!(ring.stat().producer.pid(), Some(std::process::id()));
    drop(tx);
    assert_eq!(
        ring.stat().producer.pid(),
        None,
        "a clean detach clears the pid"
    );
}
