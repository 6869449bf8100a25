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

/// Bytes in front of the data area (`layout::DATA_OFFSET`, layouts 2 and 3).
const HEADER: u64 = 12288;

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
        "chain_sig_dfl" => {
            // No handler at all before mmring's (not even Rust's).
            // SAFETY: a zeroed sigaction with SIG_DFL is the default action.
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: installing the default action.
            assert_eq!(
                unsafe { libc::sigaction(libc::SIGBUS, &dfl, std::ptr::null_mut()) },
                0
            );
            chain_to_default_action();
        }
        "squatter" => {
            // Another user plants a ring where root will look for one.
            become_nobody();
            let mode = u32::from_str_radix(&var::<String>("MMRING_MODE"), 8).unwrap();
            spsc::Ring::create(var::<String>("MMRING_PATH"), Config::new(4096).mode(mode)).unwrap();
            say("PLANTED");
        }
        "creator" => {
            // A typical shell: umask 022, which used to cut `--mode 666`.
            rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));
            let mode = u32::from_str_radix(&var::<String>("MMRING_MODE"), 8).unwrap();
            spsc::Ring::create(var::<String>("MMRING_PATH"), Config::new(4096).mode(mode)).unwrap();
            say("CREATED");
        }
        "other_user" => {
            become_nobody();
            let mut cfg = Config::new(4096);
            if var::<String>("MMRING_SHARED") == "1" {
                cfg = cfg.allow_shared_mode();
            }
            match spsc::Ring::open_or_create(var::<String>("MMRING_PATH"), cfg) {
                Ok(ring) => {
                    ring.producer().unwrap().send(b"from nobody").unwrap();
                    say("OPENED");
                }
                Err(e) => say(format!("REFUSED {e:?}")),
            }
        }
        other => panic!("unknown peer role {other}"),
    }
}

/// Sends numbered frames until the ring reports that its file was
/// truncated (an access to a lost page went through the SIGBUS handler, or
/// a wait's slow path found the file short).
fn truncated_producer(path: &str) {
    let ring = spsc::Ring::open(path).unwrap();
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
            Err(SendError::Timeout) => {}
            Err(e) => break format!("error({e})"),
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
            Err(RecvError::Timeout) => {}
            Err(e) => break format!("error({e})"),
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
        assert!(
            line.starts_with("error(ring is corrupt: the ring's file was truncated"),
            "{} must report the truncation as such: {line}",
            p.name
        );
        eprintln!("{}: {line}", p.name);
        noticed.push(line);
    }
    // Whoever touched the data area first took the SIGBUS and survived it;
    // with both busy, at least one of them did.
    assert!(
        noticed.iter().any(|l| !l.contains("poisoned=0")),
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
    // Through Rust's own handler (which restores the default and returns),
    // and with no handler at all before ours (SIG_DFL).
    for role in ["chain_default", "chain_sig_dfl"] {
        let mut p = spawn_peer(role, &[]);
        p.expect("TOUCHING");
        assert_eq!(
            p.line(),
            None,
            "{role}: the peer survived an unhandled SIGBUS"
        );
        let status = p.child.wait().unwrap();
        assert_eq!(status.signal(), Some(libc::SIGBUS), "{role}: {status}");
    }
}

// ---------------------------------------------------------------------------
// Squatting, symbolic links, exact modes (items 2 and 3 of issue 10).

const NOBODY: u32 = 65534;

/// Drops this (peer) process to uid and gid 65534.
fn become_nobody() {
    // SAFETY: plain system calls; the peer is root (the parent checked).
    let ok = unsafe { libc::setgroups(0, std::ptr::null()) == 0 && libc::setgid(NOBODY) == 0 };
    assert!(ok, "setgid: {}", std::io::Error::last_os_error());
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::setuid(NOBODY) },
        0,
        "setuid: {}",
        std::io::Error::last_os_error()
    );
}

/// True when these tests can act as a second user (they run as root).
fn can_switch_users(test: &str) -> bool {
    if rustix::process::geteuid().is_root() {
        return true;
    }
    eprintln!("SKIPPED {test}: needs root to act as a second user (uid {NOBODY})");
    false
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

fn plant(tag: &str, mode: &str) -> TempFile {
    let path = temp_path(tag);
    let env = [
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_MODE", mode.to_string()),
    ];
    let mut p = spawn_peer("squatter", &env);
    p.expect("PLANTED");
    p.join();
    TempFile(path)
}

#[test]
fn a_ring_planted_by_another_user_is_refused() {
    if !can_switch_users("a_ring_planted_by_another_user_is_refused") {
        return;
    }
    // Not writable by us or anyone else, but someone else's: they can read
    // what we would send.
    let t = plant("squat644", "644");
    let refused = |e: mmring::Error| match e {
        mmring::Error::ForeignOwner { path, uid, mode } => {
            assert_eq!((path, uid, mode), (t.0.clone(), NOBODY, 0o644))
        }
        e => panic!("expected ForeignOwner, got {e:?}"),
    };
    refused(spsc::Ring::open(&t.0).unwrap_err());
    refused(spsc::Ring::open_or_create(&t.0, Config::new(4096)).unwrap_err());
    let msg = spsc::Ring::open(&t.0).unwrap_err().to_string();
    assert!(
        msg.contains(&t.0.display().to_string()) && msg.contains("65534"),
        "{msg}"
    );
    // Opting in to that owner.
    let ring = spsc::Ring::open_or_create(&t.0, Config::new(4096).allow_owner(NOBODY)).unwrap();
    assert_eq!(ring.capacity(), 4096);

    // World-writable: the owner opt-in alone is not enough.
    let t = plant("squat666", "666");
    assert_eq!(mode_of(&t.0), 0o666);
    match spsc::Ring::open_or_create(&t.0, Config::new(4096).allow_owner(NOBODY)).unwrap_err() {
        mmring::Error::ForeignOwner { uid, mode, .. } => assert_eq!((uid, mode), (NOBODY, 0o666)),
        e => panic!("expected ForeignOwner, got {e:?}"),
    }
    let cfg = Config::new(4096).allow_owner(NOBODY).allow_shared_mode();
    assert!(spsc::Ring::open_or_create(&t.0, cfg).is_ok());
}

#[test]
fn a_symlink_at_the_path_is_refused() {
    let target = TempFile(temp_path("symlink-target"));
    spsc::Ring::create(&target.0, Config::new(4096)).unwrap();
    let link = TempFile(temp_path("symlink"));
    std::os::unix::fs::symlink(&target.0, &link.0).unwrap();
    for e in [
        spsc::Ring::open(&link.0).unwrap_err(),
        spsc::Ring::open_or_create(&link.0, Config::new(4096)).unwrap_err(),
    ] {
        match e {
            mmring::Error::Symlink { path } => assert_eq!(path, link.0),
            e => panic!("expected Symlink, got {e:?}"),
        }
    }
    // The link was not replaced by a new ring either.
    assert!(
        std::fs::symlink_metadata(&link.0)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    let ring = spsc::Ring::open_or_create(&link.0, Config::new(4096).allow_symlink()).unwrap();
    ring.producer().unwrap().send(b"through the link").unwrap();
    let ring = spsc::Ring::open(&target.0).unwrap();
    assert_eq!(
        &*ring.consumer().unwrap().recv().unwrap(),
        b"through the link"
    );
}

#[test]
fn the_requested_mode_is_applied_exactly() {
    let path = temp_path("exact-mode");
    let t = TempFile(path.clone());
    let env = [
        ("MMRING_PATH", path.display().to_string()),
        ("MMRING_MODE", "666".to_string()),
    ];
    let mut p = spawn_peer("creator", &env);
    p.expect("CREATED");
    p.join();
    assert_eq!(mode_of(&t.0), 0o666, "the umask cut the requested mode");

    if !can_switch_users("the_requested_mode_is_applied_exactly (second user)") {
        return;
    }
    // Another user may now open it, but only by saying it means to share.
    let other = |shared: &str| {
        let mut env = env.to_vec();
        env.push(("MMRING_SHARED", shared.to_string()));
        let mut p = spawn_peer("other_user", &env);
        let l = p.line().expect("a result line");
        p.join();
        l
    };
    let refused = other("0");
    assert!(
        refused.starts_with("REFUSED ForeignOwner") && refused.contains("mode: 438"),
        "{refused}"
    );
    assert_eq!(other("1"), "OPENED");
    let ring = spsc::Ring::open_or_create(&path, Config::new(4096).allow_shared_mode()).unwrap();
    assert_eq!(&*ring.consumer().unwrap().recv().unwrap(), b"from nobody");
}

// ---------------------------------------------------------------------------
// Unsealed memfds (item 6) and byte order (item 7).

/// A memfd holding a copy of a valid spsc ring.
fn ring_in_memfd(flags: rustix::fs::MemfdFlags) -> std::os::fd::OwnedFd {
    let src = spsc::Ring::anonymous(Config::new(4096)).unwrap();
    let len = (HEADER + 4096) as usize;
    let mut bytes = vec![0u8; len];
    assert_eq!(rustix::io::pread(src.as_fd(), &mut bytes, 0).unwrap(), len);
    let fd = rustix::fs::memfd_create("copy", flags).unwrap();
    assert_eq!(rustix::io::pwrite(&fd, &bytes, 0).unwrap(), len);
    fd
}

#[test]
fn an_unsealed_memfd_is_refused() {
    use rustix::fs::{MemfdFlags, SealFlags};
    let fd = ring_in_memfd(MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING);
    match spsc::Ring::from_fd(fd.try_clone().unwrap()).unwrap_err() {
        mmring::Error::UnsealedMemfd { seals } => assert_eq!(seals, 0),
        e => panic!("expected UnsealedMemfd, got {e:?}"),
    }
    // Sealed against shrinking: nobody can pull pages from under us.
    rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK).unwrap();
    let ring = spsc::Ring::from_fd(fd).unwrap();
    assert_eq!(ring.capacity(), 4096);

    // A memfd that can never be sealed.
    let fd = ring_in_memfd(MemfdFlags::CLOEXEC);
    assert!(matches!(
        spsc::Ring::from_fd(fd).unwrap_err(),
        mmring::Error::UnsealedMemfd { .. }
    ));
    // A named ring's file (tmpfs here) is a file, not a memfd: accepted.
    let t = TempFile(temp_path("fromfd-file"));
    spsc::Ring::create(&t.0, Config::new(4096)).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&t.0)
        .unwrap();
    assert!(spsc::Ring::from_fd(f.into()).is_ok());
}

#[test]
fn a_big_endian_creator_is_named_as_such() {
    use std::os::unix::fs::FileExt;
    let t = TempFile(temp_path("endian"));
    spsc::Ring::create(&t.0, Config::new(4096)).unwrap();
    let f = std::fs::OpenOptions::new().write(true).open(&t.0).unwrap();
    // What a 64-bit creator of the other byte order writes for version 1
    // and its flags, as we read them.
    let other_flags: u32 = if cfg!(target_endian = "little") { 2 } else { 1 };
    f.write_all_at(&1u32.swap_bytes().to_ne_bytes(), 8).unwrap();
    f.write_all_at(&other_flags.swap_bytes().to_ne_bytes(), 16)
        .unwrap();
    let e = spsc::Ring::open(&t.0).unwrap_err();
    assert!(matches!(e, mmring::Error::ForeignPlatform { .. }), "{e:?}");
    let msg = e.to_string();
    let other = if cfg!(target_endian = "little") {
        "big-endian 64-bit"
    } else {
        "little-endian 64-bit"
    };
    assert!(msg.contains(other), "{msg}");
    assert!(!msg.contains("version"), "{msg}");
}

// ---------------------------------------------------------------------------
// The command-line tool, as in the reports.

/// `mmring send` and `mmring recv` attached to a ring, `truncate -s 4096`
/// from a third process: neither tool dies of SIGBUS (it used to: exit 135
/// from a shell). Until the handle layer reports the poisoned ring, the
/// tools may keep waiting; they are stopped after a grace period, and only
/// a death by signal *before* that counts as a failure.
#[test]
fn cli_send_and_recv_survive_truncation() {
    use std::io::{Read, Write};
    use std::process::Stdio;
    let t = TempFile(temp_path("cli-trunc"));
    let path = t.0.to_str().unwrap();
    let exe = env!("CARGO_BIN_EXE_mmring");
    let o = Command::new(exe)
        .args(["create", path, "--kind", "spsc", "--capacity", "64K"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut recv = Command::new(exe)
        .args(["recv", path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut send = Command::new(exe)
        .args(["send", path])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Feed the sender and drain the receiver, as a shell pipeline would.
    let mut input = send.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let line = b"a line of text for the ring\n".repeat(64);
        while input.write_all(&line).is_ok() {}
    });
    let mut output = recv.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        let mut total = 0usize;
        let mut told = false;
        while let Ok(n) = output.read(&mut buf) {
            if n == 0 {
                break;
            }
            total += n;
            if total > (1 << 20) && !told {
                tx.send(()).unwrap();
                told = true;
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("a megabyte went through the ring");

    let st = Command::new("truncate")
        .args(["-s", "4096", path])
        .status()
        .unwrap();
    assert!(st.success());

    let deadline = Instant::now() + Duration::from_secs(2);
    let mut ended = [None, None];
    while Instant::now() < deadline && ended.iter().any(Option::is_none) {
        for (i, child) in [&mut send, &mut recv].into_iter().enumerate() {
            if ended[i].is_none() {
                ended[i] = child.try_wait().unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, child, status) in [("send", &mut send, ended[0]), ("recv", &mut recv, ended[1])] {
        let mut err = String::new();
        if status.is_none() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        if let Some(s) = status {
            assert_eq!(s.signal(), None, "mmring {name} was killed: {s} ({err})");
        }
        eprintln!("mmring {name}: {status:?} {}", err.trim());
    }
    writer.join().unwrap();
    reader.join().unwrap();
}

/// `umask 022; mmring create --mode 666` makes a 0666 file.
#[test]
fn cli_create_mode_is_exact() {
    let t = TempFile(temp_path("cli-mode"));
    let script = format!(
        "umask 022; exec '{}' create '{}' --kind spsc --capacity 4K --mode 666",
        env!("CARGO_BIN_EXE_mmring"),
        t.0.display()
    );
    let o = Command::new("sh").args(["-c", &script]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(mode_of(&t.0), 0o666);
}

/// A consumer waiting on a named ring with no producer, whose file is
/// removed and created again (a new ring that a new producer writes to),
/// learns that nothing will reach it through that name: `Unlinked`, not a
/// wait for ever. The same for a producer waiting for room.
#[test]
fn a_removed_and_recreated_ring_ends_the_wait() {
    let path = temp_path("recreated");
    let _cleanup = TempFile(path.clone());
    let ring = spsc::Ring::create(&path, Config::new(4096)).unwrap();
    let mut rx = ring.consumer().unwrap();
    let waiter =
        std::thread::spawn(move || rx.recv_timeout(Duration::from_secs(20)).map(|g| g.len()));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&path).unwrap();
    let new = spsc::Ring::create(&path, Config::new(4096)).unwrap();
    new.producer().unwrap().send(b"to the new ring").unwrap();
    assert_eq!(waiter.join().unwrap(), Err(RecvError::Unlinked));

    // A producer blocked on a full ring whose consumer never attached.
    let ring = spsc::Ring::open(&path).unwrap();
    drop(new);
    let mut tx = ring.producer().unwrap();
    while tx.try_send(&[0; 100]).is_ok() {}
    let waiter = std::thread::spawn(move || tx.send_timeout(&[0; 100], Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(100));
    std::fs::remove_file(&path).unwrap();
    assert_eq!(waiter.join().unwrap(), Err(SendError::Unlinked));
}
