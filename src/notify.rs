//! Pollable wake-ups: a descriptor an event loop (epoll, mio, tokio) can
//! wait on instead of a futex.
//!
//! A handle that wants to wait in an event loop binds a Unix datagram socket
//! in the abstract namespace, named from the ring's identity (128 random
//! bits in its header, [`crate::layout::Ident::ring_id`]), its attachment
//! record and a fresh random nonce:
//!
//! ```text
//! mmring/<ring id, 32 hex digits>/<record>/<nonce, 16 hex digits>
//! ```
//!
//! and publishes the nonce in its attachment record (`notify`). It then
//! announces itself exactly as a sleeper does (its bit in the sleeper set,
//! the heavy barrier, a re-check of the ring; `wait.rs`), and polls the
//! socket. A waker that finds sleeper bits set wakes the futex and, for
//! every set bit whose record names a socket, sends that socket a one-byte
//! datagram. While nobody waits, nothing here runs: the hot path is the
//! futex path's, a compiler barrier and a load of the sleeper set.
//!
//! Why no wake-up is lost: the argument of `wait.rs`, with the datagram in
//! place of `FUTEX_WAKE` and the socket's receive queue in place of the
//! futex word. The nonce is stored (Release) before the bit is set
//! (`SeqCst` read-modify-write), so a waker that sees the bit sees the
//! nonce. A datagram sent after the waiter registered stays queued until the
//! waiter reads it, so its socket is readable whenever it starts to poll:
//! there is no "checked, then slept" window to lose it in. A full queue is
//! a readable socket too.
//!
//! Who can wake or block a waiter: nobody who cannot open the ring.
//!
//! * *Squatting.* The name needs the ring's identity, which only processes
//!   that can read the ring file (or hold its memfd) know, and a fresh
//!   nonce per socket, which is unpredictable even for a process that has
//!   seen other names in `/proc/net/unix`. A bind that finds its name taken
//!   draws another nonce.
//! * *Spoofing.* Every datagram carries the sender's credentials
//!   (`SCM_CREDENTIALS`, checked by the kernel); a datagram counts as a
//!   wake-up only if its sender's pid holds an attachment record of this
//!   ring. Others are read and dropped (a spurious wake-up: the waiter
//!   re-checks the ring and waits again).
//! * *Scope.* Abstract sockets live in a network namespace. Processes that
//!   share a ring across namespaces (containers sharing `/dev/shm`) cannot
//!   reach each other's sockets: a waker then gets an error, which it counts
//!   as a futile wake-up, and the waiter notices the ring's change when its
//!   liveness slice (200 ms) ends. Blocking (futex) waits are unaffected.
//!
//! A waiter killed while registered leaves its bit set and its name
//! unbound: sends fail (`ECONNREFUSED`), count as futile, and the waker's
//! reconciliation clears the bit once the record's lock shows its holder
//! dead, as for a dead futex sleeper.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::OnceLock;

use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

use crate::error::Error;

/// The socket name of attachment record `rec`'s wake-up socket.
fn name(ring_id: [u64; 2], rec: u64, nonce: u64) -> rustix::io::Result<SocketAddrUnix> {
    let s = format!(
        "mmring/{:016x}{:016x}/{rec}/{nonce:016x}",
        ring_id[0], ring_id[1]
    );
    SocketAddrUnix::new_abstract_name(s.as_bytes())
}

/// A random nonzero nonce.
fn nonce() -> u64 {
    let mut b = [0u8; 8];
    let n = rustix::rand::getrandom(&mut b[..], rustix::rand::GetRandomFlags::empty());
    let v = u64::from_le_bytes(b);
    if n == Ok(8) && v != 0 {
        return v;
    }
    // No randomness from the kernel: the clock and the pid still make a
    // name nobody predicts in advance to the nanosecond.
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    (t ^ (u64::from(std::process::id()) << 40)) | 1
}

/// A handle's wake-up socket: readable when a waker has signalled it since
/// it was last [`drain`](Notifier::drain)ed.
#[derive(Debug)]
pub struct Notifier {
    sock: OwnedFd,
    nonce: u64,
}

impl Notifier {
    /// Binds a fresh socket for record `rec` of the ring `ring_id`.
    pub(crate) fn bind(ring_id: [u64; 2], rec: u64) -> Result<Notifier, Error> {
        let io = |op| {
            move |e: rustix::io::Errno| Error::Io {
                op,
                source: e.into(),
            }
        };
        let mut tries = 0;
        loop {
            let sock = rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .map_err(io("create the wake-up socket"))?;
            rustix::net::sockopt::set_socket_passcred(&sock, true)
                .map_err(io("ask for the wake-up senders' credentials"))?;
            let nonce = nonce();
            let addr = name(ring_id, rec, nonce).map_err(io("name the wake-up socket"))?;
            match rustix::net::bind(&sock, &addr) {
                Ok(()) => return Ok(Notifier { sock, nonce }),
                // Taken: someone guessed or squats it; draw again.
                Err(rustix::io::Errno::ADDRINUSE) if tries < 8 => tries += 1,
                Err(e) => return Err(io("bind the wake-up socket")(e)),
            }
        }
    }

    /// The nonce that names the socket; goes into the attachment record.
    pub(crate) fn nonce(&self) -> u64 {
        self.nonce
    }

    /// Reads every queued wake-up without blocking. Returns whether one of
    /// them came from a sender `trusted` accepts (by pid); the others are
    /// dropped.
    pub(crate) fn drain(&self, trusted: impl Fn(u32) -> bool) -> bool {
        let mut any = false;
        loop {
            let mut byte = [0u8; 8];
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [IoSliceMut::new(&mut byte)];
            match rustix::net::recvmsg(&self.sock, &mut iov, &mut control, RecvFlags::DONTWAIT) {
                Ok(_) => {
                    for msg in control.drain() {
                        if let RecvAncillaryMessage::ScmCredentials(cred) = msg {
                            any |= trusted(cred.pid.as_raw_nonzero().get() as u32);
                        }
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                // AGAIN: empty. Anything else: nothing more to read now.
                Err(_) => return any,
            }
        }
    }
}

impl AsFd for Notifier {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl AsRawFd for Notifier {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

/// This process's sending socket (unbound; shared by every ring and, after
/// a fork, with the parent, which is harmless for datagrams).
fn sender() -> Option<BorrowedFd<'static>> {
    static SENDER: OnceLock<Option<OwnedFd>> = OnceLock::new();
    SENDER
        .get_or_init(|| {
            rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::DGRAM,
                SocketFlags::NONBLOCK | SocketFlags::CLOEXEC,
                None,
            )
            .ok()
        })
        .as_ref()
        .map(|s| s.as_fd())
}

/// Signals the wake-up socket of record `rec` (nonce `nonce`). `true` if a
/// waiter's queue holds a wake-up now (sent, or the queue was already
/// full); `false` if nobody is bound there (a dead waiter) or the send
/// failed.
pub(crate) fn wake(ring_id: [u64; 2], rec: u64, nonce: u64) -> bool {
    let (Some(sock), Ok(addr)) = (sender(), name(ring_id, rec, nonce)) else {
        return false;
    };
    match rustix::net::sendto(sock, b"w", SendFlags::DONTWAIT | SendFlags::NOSIGNAL, &addr) {
        Ok(_) => true,
        // A full queue: the socket is readable already.
        Err(rustix::io::Errno::AGAIN) => true,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A wake-up reaches the socket of its record and nonce, carries our
    /// pid, and a drained socket reads empty; a wrong nonce reaches nobody.
    #[test]
    #[cfg_attr(miri, ignore = "sockets are not available under Miri")]
    fn a_wake_reaches_its_socket_only() {
        let id = [0x1234, 0x5678];
        let n = Notifier::bind(id, 3).unwrap();
        assert!(!n.drain(|_| true), "fresh socket is empty");
        assert!(wake(id, 3, n.nonce()));
        let me = std::process::id();
        assert!(n.drain(|pid| pid == me), "our own pid is credited");
        assert!(!n.drain(|_| true), "drained");
        assert!(wake(id, 3, n.nonce()));
        assert!(!n.drain(|_| false), "an untrusted sender does not count");
        assert!(!wake(id, 3, n.nonce() ^ 1), "nobody is bound there");
        assert!(!wake(id, 4, n.nonce()), "nor there");
    }
}
