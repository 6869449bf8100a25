//! Crash points for the tests: a process whose `MMRING_KILL_AT` names a
//! point (`name` or `name:n`, the n-th time it is reached, default 1)
//! kills itself with SIGKILL there, so a test can stop a real process at an
//! exact step of a protocol (after claiming, before publishing; in the
//! middle of a release) and check that the others recover.
//!
//! Compiled in only with debug assertions (the test profile); in release
//! builds [`point`] is empty and the variable is ignored.
//!
//! | point           | where                                                      |
//! |-----------------|------------------------------------------------------------|
//! | `mpsc-recorded` | mpsc producer: claim recorded, before its CAS              |
//! | `mpsc-claimed`  | mpsc producer: after its CAS, before publishing            |
//! | `spsc-tail-stored` | spsc producer: `tail` stored, the publication's first frame word not yet |
//! | `mpsc-zeroing`  | mpsc consumer: release announced, first word zeroed, head not stored |
//! | `mpmc-claimed`  | mpmc producer: after its CAS on `tail`, before publishing  |
//! | `mpmc-taken`    | mpmc consumer: after its CAS on `head`, before releasing   |

/// Kills the process with SIGKILL if `MMRING_KILL_AT` names this point and
/// this is the n-th time it is reached.
#[inline]
pub(crate) fn point(name: &str) {
    #[cfg(all(debug_assertions, not(loom), not(miri)))]
    armed::check(name);
    #[cfg(not(all(debug_assertions, not(loom), not(miri))))]
    let _ = name;
}

#[cfg(all(debug_assertions, not(loom), not(miri)))]
mod armed {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

    /// The armed point and after how many hits it fires, read once.
    fn target() -> &'static Option<(String, u64)> {
        static TARGET: OnceLock<Option<(String, u64)>> = OnceLock::new();
        TARGET.get_or_init(|| {
            let v = std::env::var("MMRING_KILL_AT").ok()?;
            let (name, n) = match v.split_once(':') {
                Some((name, n)) => (name.to_owned(), n.parse().ok()?),
                None => (v, 1),
            };
            Some((name, n))
        })
    }

    pub fn check(name: &str) {
        static HITS: AtomicU64 = AtomicU64::new(0);
        if let Some((armed, n)) = target()
            && armed == name
            // ORDERING: Relaxed; a counter in this process only.
            && HITS.fetch_add(1, Relaxed) + 1 == *n
        {
            // SIGKILL cannot be caught: the process stops here, at once,
            // as a `kill -9` from outside would stop it.
            let _ = rustix::process::kill_process(
                rustix::process::getpid(),
                rustix::process::Signal::KILL,
            );
        }
    }
}
