//! A hostile environment: a third process truncating a ring under its
//! users, other `SIGBUS` handlers in the same process, squatted files.
//!
//! Every case runs in real processes: the peers are this test binary
//! re-executed (see `common`), and the truncation is done by `truncate(1)`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use mmring::{Config, RecvError, SendError, spsc};

/// Current length of the file behind `fd`.
fn file_len(fd: std::os::fd::BorrowedFd<'_>) -> u64 {
    rustix::fs::fstat(fd).unwrap().st_size as u64
}

/// How long a busy peer waits to notice a truncation before giving up.
const NOTICE_WITHIN: Duration = Duration::from_secs(30);

#[test]
#[ignore = "entry point for peer processes spawned by the other tests"]
fn peer() {
    let role: String = var("MMRING_PEER");
    match role.as_str() {
        "producer" => truncated_producer(&var::<String>("MMRING_PATH")),
        "consumer" => truncated_consumer(&var::<String>("MMRING_PATH")),
        "chain_custom" => chain_to_custom_handler(),
        "chain_default" => chain_to_default_action(),
        other => panic!("unknown peer role {other}"),
    }
}

/// Sends numbered frames until it notices that the ring's file was
/// truncated: by an error from the ring, by the process's poisoned-mapping
/// count, or (on a slow path: a timed-out send) by the file's size.
fn truncated_producer(path: &str) {
    let ring = spsc::Ring::open(path).unwrap();
    let needed = 4096 + ring.capacity();
    let mut tx = ring.producer().unwrap();
    let start = Instant::now();
    let mut seq = 0u64;
    let how = loop {
        let mut buf = [0u8; 64];
        buf[..8].copy_from_slice(&seq.to_le_bytes());
        match tx.send_timeout(&buf, Duration::from_millis(50)) {
            Ok(()) => {
                seq += 1;
                if seq == 1000 {
                    say("RUNNING");
                }
            }
            Err(SendError::Timeout) => {
                if file_len(ring.as_fd()) < needed && mmring::poisoned_mappings() == 0 {
                    break "fstat".to_string();
                }
            }
            Err(e) => break format!("error({e})"),
        }
        if mmring::poisoned_mappings() > 0 {
            break "poisoned".to_string();
        }
        if start.elapsed() > NOTICE_WITHIN {
            break "nothing".to_string();
        }
    };
    // Later operations must not kill the process either.
    let later: Vec<String> = (0..3)
        .map(|_| format!("{:?}", tx.try_send(b"after truncation")))
        .collect();
    say(format!(
        "NOTICED {how} poisoned={} later={later:?}",
        mmring::poisoned_mappings()
    ));
    // Keep the role until the parent has heard from both peers, so the
    // consumer cannot mistake our exit for its notice.
    wait_for_parent();
}

/// Receives and checks numbered frames until it notices the truncation.
fn truncated_consumer(path: &str) {
    let ring = spsc::Ring::open(path).unwrap();
    let needed = 4096 + ring.capacity();
    let mut rx = ring.consumer().unwrap();
    let start = Instant::now();
    let mut seq = 0u64;
    let mut bad = 0u64;
    let how = loop {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(frame) => {
                let got = u64::from_le_bytes(frame[..8].try_into().unwrap());
                drop(frame);
                if got != seq && mmring::poisoned_mappings() == 0 {
                    bad += 1;
                }
                seq += 1;
                if seq == 1000 {
                    say("RUNNING");
                }
            }
            Err(RecvError::Timeout) => {
                if file_len(ring.as_fd()) < needed && mmring::poisoned_mappings() == 0 {
                    break "fstat".to_string();
                }
            }
            Err(e) => break format!("error({e})"),
        }
        if mmring::poisoned_mappings() > 0 {
            break "poisoned".to_string();
        }
        if start.elapsed() > NOTICE_WITHIN {
            break "nothing".to_string();
        }
    };
    let later: Vec<String> = (0..3)
        .map(|_| format!("{:?}", rx.try_recv().map(|f| f.len())))
        .collect();
    say(format!(
        "NOTICED {how} poisoned={} bad={bad} later={later:?}",
        mmring::poisoned_mappings()
    ));
    wait_for_parent();
}

/// Runs a producer and a consumer on one named ring, lets them exchange
/// frames, truncates the file to `len` from a third process, and checks
/// that both notice and exit normally (a SIGBUS death is exit by signal 7).
fn truncation_by_third_process(len: u64) {
    let path = temp_path(&format!("trunc{len}"));
    let _cleanup = TempFile(path.clone());
    spsc::Ring::create(&path, Config::new(1 << 16)).unwrap();
    let env = [("MMRING_PATH", path.display().to_string())];
    let mut consumer = spawn_peer("consumer", &env);
    let mut producer = spawn_peer("producer", &env);
    consumer.expect("RUNNING");
    producer.expect("RUNNING");

    let st = Command::new("truncate")
        .args(["-s", &len.to_string()])
        .arg(&path)
        .status()
        .expect("run truncate(1)");
    assert!(st.success(), "truncate failed: {st}");

    let mut peers = [producer, consumer];
    let lines: Vec<String> = peers.iter_mut().map(|p| p.expect("NOTICED")).collect();
    let mut noticed = Vec::new();
    for (mut p, line) in peers.into_iter().zip(lines) {
        p.send_line("exit");
        drop(p.stdin.take());
        let status = p.child.wait().unwrap();
        assert_eq!(
            status.signal(),
            None,
            "{} was killed by signal {:?} ({line})",
            p.name,
            status.signal()
        );
        assert!(status.success(), "{} exited with {status} ({line})", p.name);
        assert!(
            !line.starts_with("nothing"),
            "{} never noticed the truncation: {line}",
            p.name
        );
        assert!(
            !line.contains("gone"),
            "{} took the truncation for a departed peer: {line}",
            p.name
        );
        assert!(!line.contains("bad=") || line.contains("bad=0"), "{line}");
        eprintln!("{}: {line}", p.name);
        noticed.push(line);
    }
    // Whoever touched the data area first took the SIGBUS and survived it;
    // with both busy, at least one of them did.
    assert!(
        noticed
            .iter()
            .any(|l| l.starts_with("poisoned") || l.starts_with("error")),
        "neither peer went through the SIGBUS handler: {noticed:?}"
    );
}

#[test]
fn truncating_the_data_area_kills_neither_peer() {
    truncation_by_third_process(4096);
}

#[test]
fn truncating_the_whole_file_kills_neither_peer() {
    truncation_by_third_process(0);
}

// ---------------------------------------------------------------------------
// Chaining to the handler that was there before.

static CUSTOM_CALLS: AtomicUsize = AtomicUsize::new(0);

/// A previously installed handler: counts calls and, for a fault, maps a
/// zero page at the faulting address so the access can re-run.
extern "C" fn custom_handler(_: libc::c_int, info: *mut libc::siginfo_t, _: *mut libc::c_void) {
    CUSTOM_CALLS.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let info = unsafe { &*info };
    if info.si_code > 0 {
        // SAFETY: a kernel-generated SIGBUS carries the fault address.
        let addr = unsafe { info.si_addr() } as usize & !4095;
        // SAFETY: replaces the one faulting page of the test's own scratch
        // mapping with a zero page.
        unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_FIXED | libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
    }
}

/// A two-page shared mapping of a scratch file that is not a ring, whose
/// file is then truncated to zero: touching it raises SIGBUS.
fn truncated_scratch_mapping(tag: &str) -> *mut u8 {
    let path = temp_path(tag);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    std::fs::remove_file(&path).unwrap();
    file.set_len(8192).unwrap();
    // SAFETY: a new shared mapping of our own file; leaked on purpose.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            std::os::fd::AsRawFd::as_raw_fd(&file),
            0,
        )
    };
    assert_ne!(p, libc::MAP_FAILED);
    file.set_len(0).unwrap();
    p.cast()
}

fn chain_to_custom_handler() {
    // SAFETY: a zeroed sigaction is valid; we fill in handler and flags.
    let mut act: libc::sigaction = unsafe { std::mem::zeroed() };
    act.sa_sigaction = custom_handler as *const () as libc::sighandler_t;
    act.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER;
    // SAFETY: installing a valid SA_SIGINFO handler.
    assert_eq!(
        unsafe { libc::sigaction(libc::SIGBUS, &act, std::ptr::null_mut()) },
        0
    );

    // A named ring installs mmring's handler on top of ours.
    let path = temp_path("chain");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, Config::new(1 << 16)).unwrap();
    let mut tx = ring.producer().unwrap();
    tx.send(b"before").unwrap();

    // 1. A fault outside every ring mapping reaches the previous handler.
    let scratch = truncated_scratch_mapping("scratch");
    // SAFETY: inside the scratch mapping; the previous handler repairs it.
    let v = unsafe { scratch.add(4096).read_volatile() };
    say(format!(
        "FAULT_OUTSIDE calls={} value={v}",
        CUSTOM_CALLS.load(Ordering::SeqCst)
    ));

    // 2. A signal sent by a process (no fault address) reaches it too.
    // SAFETY: raising a signal that has a handler.
    unsafe { libc::raise(libc::SIGBUS) };
    say(format!(
        "RAISED calls={}",
        CUSTOM_CALLS.load(Ordering::SeqCst)
    ));

    // 3. A fault inside a ring mapping is mmring's alone.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(4096)
        .unwrap();
    let r = (0..100).map(|_| tx.try_send(&[7u8; 4000])).last().unwrap();
    say(format!(
        "FAULT_INSIDE calls={} poisoned={} send={r:?}",
        CUSTOM_CALLS.load(Ordering::SeqCst),
        mmring::poisoned_mappings()
    ));
}

fn chain_to_default_action() {
    // Rust's runtime installed its stack-overflow SIGBUS handler; mmring's
    // goes on top when the first ring is made.
    let _ring = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let scratch = truncated_scratch_mapping("scratch-default");
    say("TOUCHING");
    // SAFETY: deliberately faulting: nobody handles this address, so the
    // process must die of SIGBUS as it would without mmring.
    let v = unsafe { scratch.add(4096).read_volatile() };
    say(format!("SURVIVED {v}"));
}

#[test]
fn faults_outside_rings_reach_the_previous_handler() {
    let mut p = spawn_peer("chain_custom", &[]);
    assert_eq!(p.expect("FAULT_OUTSIDE"), "calls=1 value=0");
    assert_eq!(p.expect("RAISED"), "calls=2");
    let inside = p.expect("FAULT_INSIDE");
    assert!(
        inside.starts_with("calls=2 poisoned=1"),
        "a ring fault went to the previous handler or was not repaired: {inside}"
    );
    p.join();
}

#[test]
fn faults_outside_rings_still_kill_without_a_previous_handler() {
    let mut p = spawn_peer("chain_default", &[]);
    p.expect("TOUCHING");
    assert_eq!(p.line(), None, "the peer survived an unhandled SIGBUS");
    let status = p.child.wait().unwrap();
    assert_eq!(status.signal(), Some(libc::SIGBUS), "{status}");
}
