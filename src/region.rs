//! Where a ring's memory comes from: a named file or a memfd, mapped
//! `MAP_SHARED`. The only module that creates, sizes or maps files.
//!
//! A [`Region`] hands out raw pointers to the header and the data area and
//! never a reference to shared memory, because another process may write
//! any byte of it at any time.
//!
//! # Creation is atomic
//!
//! A named ring is built completely in an unnamed file (`O_TMPFILE`) in the
//! target directory, then linked to its name with `linkat`, which fails if
//! the name exists. No process can ever open a half-written ring under its
//! name, and of many processes racing in `open_or_create` exactly one link
//! succeeds; the others open the winner's file. Where `O_TMPFILE` is not
//! supported the same is done with a uniquely named temporary file that is
//! hard-linked, then unlinked.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::config::{Config, Geometry, Trust};
use crate::error::{Corruption, Error};
use crate::fault;
use crate::layout::{self, ConsumerBlock, Header, Ident, Kind, ProducerBlock, RoleRecord};

/// Writes a fresh ring's initial data-area state (before its header is
/// published); supplied by the flavour.
pub(crate) type Init = fn(&Region);

/// A mapped ring: the file (or memfd) and a shared mapping of its first
/// `DATA_OFFSET + capacity` bytes.
#[derive(Debug)]
pub struct Region {
    /// Declared (so dropped) before `map`: the guard must leave the fault
    /// registry before the range is unmapped (see `fault.rs`, point 2).
    guard: fault::Guard,
    map: MmapRaw,
    file: File,
    geo: Geometry,
    path: Option<PathBuf>,
}

// SAFETY: a Region owns an fd and a MAP_SHARED mapping; neither is tied to a
// thread. All access to the mapped bytes goes through atomics or through
// raw-pointer copies whose ranges the ring protocol hands to one side at a
// time, so sharing the Region between threads adds nothing that sharing it
// between processes does not already require.
unsafe impl Send for Region {}
// SAFETY: as above; `&Region` only exposes raw pointers and the fd.
unsafe impl Sync for Region {}

impl Region {
    /// Creates a new named ring; fails with `AlreadyExists` if `path` exists.
    /// `init` writes the flavour's initial data-area state (e.g. slot
    /// stamps) before the header is published.
    pub fn create(path: &Path, cfg: &Config, kind: Kind, init: Init) -> Result<Region, Error> {
        let ident = cfg.ident(kind)?;
        let geo = Geometry::from_ident(&ident, Some(kind))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        match OpenOptions::new()
            .read(true)
            .write(true)
            .mode(cfg.file_mode())
            .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
            .open(dir)
        {
            Ok(file) => {
                // Exactly the requested mode: the umask applied at open
                // would cut it (0o666 becoming 0o644), and this must happen
                // before the file has a name.
                set_mode(&file, cfg.file_mode())?;
                let region = Region::initialise(file, ident, geo, Some(path.to_owned()), init)?;
                let proc_path = format!("/proc/self/fd/{}", region.file.as_raw_fd());
                rustix::fs::linkat(
                    rustix::fs::CWD,
                    proc_path.as_str(),
                    rustix::fs::CWD,
                    path,
                    rustix::fs::AtFlags::SYMLINK_FOLLOW,
                )
                .map_err(Error::errno("create the ring file"))?;
                Ok(region)
            }
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)
                ) =>
            {
                Region::create_via_temp_name(path, dir, cfg, ident, geo, init)
            }
            Err(e) => Err(Error::Io {
                op: "create the ring file",
                source: e,
            }),
        }
    }

    /// Fallback for file systems without `O_TMPFILE`.
    fn create_via_temp_name(
        path: &Path,
        dir: &Path,
        cfg: &Config,
        ident: Ident,
        geo: Geometry,
        init: Init,
    ) -> Result<Region, Error> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.mmring-{}-{nanos}", std::process::id()));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(cfg.file_mode())
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
            .map_err(Error::io("create a temporary ring file"))?;
        let result = set_mode(&file, cfg.file_mode())
            .and_then(|()| Region::initialise(file, ident, geo, Some(path.to_owned()), init))
            .and_then(|r| {
                std::fs::hard_link(&tmp, path).map_err(Error::io("create the ring file"))?;
                Ok(r)
            });
        let _ = std::fs::remove_file(&tmp);
        result
    }

    /// Opens an existing named ring of `kind` (`None`: of any kind) that
    /// `Trust::new()` trusts.
    pub fn open(path: &Path, kind: Option<Kind>) -> Result<Region, Error> {
        Region::open_with(path, &Trust::new(), kind)
    }

    /// Opens an existing named ring of `kind`, refusing a symbolic link at
    /// `path` (`O_NOFOLLOW`) and a file `trust` does not trust (checked
    /// with `fstat` on the opened descriptor, so the check and the use are
    /// the same file), unless `trust` opts in.
    pub fn open_with(path: &Path, trust: &Trust, kind: Option<Kind>) -> Result<Region, Error> {
        let file = Region::open_file(path, trust)?;
        Region::attach(file, kind, Some(path.to_owned()))
    }

    /// Reads and validates the identity of the ring file at `path` without
    /// mapping it: its geometry (kind included).
    pub fn probe(path: &Path, trust: &Trust) -> Result<Geometry, Error> {
        let file = Region::open_file(path, trust)?;
        Ok(Region::validate(&file, None)?.1)
    }

    /// Opens a ring file for reading and writing, with `trust`'s checks.
    fn open_file(path: &Path, trust: &Trust) -> Result<File, Error> {
        let mut flags = libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;
        if !trust.follows_symlinks() {
            flags |= libc::O_NOFOLLOW;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)
            .map_err(|e| match e.raw_os_error() {
                Some(libc::EISDIR) => Error::NotRegularFile,
                // O_NOFOLLOW on a symbolic link (ELOOP can also mean a
                // loop in the directories above it).
                Some(libc::ELOOP)
                    if !trust.follows_symlinks()
                        && std::fs::symlink_metadata(path)
                            .is_ok_and(|m| m.file_type().is_symlink()) =>
                {
                    Error::Symlink {
                        path: path.to_owned(),
                    }
                }
                _ => Error::Io {
                    op: "open the ring file",
                    source: e,
                },
            })?;
        let st = rustix::fs::fstat(&file).map_err(Error::errno("stat the ring file"))?;
        if rustix::fs::FileType::from_raw_mode(st.st_mode) != rustix::fs::FileType::RegularFile {
            return Err(Error::NotRegularFile);
        }
        trust.check(
            path,
            st.st_uid,
            st.st_mode & 0o7777,
            rustix::process::geteuid().as_raw(),
        )?;
        Ok(file)
    }

    /// Opens `path` if it exists, else creates it; when it exists its
    /// geometry must equal `cfg`'s.
    pub fn open_or_create(
        path: &Path,
        cfg: &Config,
        kind: Kind,
        init: Init,
    ) -> Result<Region, Error> {
        let ident = cfg.ident(kind)?;
        // Each round either opens, creates, or observes that a concurrent
        // creator won the link (then the next open succeeds). A file that is
        // deleted between our failed create and our open makes us go round
        // again; a bounded number of rounds turns a pathological churn into
        // the last error rather than a hang.
        let mut last = None;
        for _ in 0..16 {
            match Region::open_with(path, &cfg.trust(), Some(kind)) {
                Ok(r) => {
                    r.geo.matches(&ident)?;
                    return Ok(r);
                }
                Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            match Region::create(path, cfg, kind, init) {
                Ok(r) => return Ok(r),
                Err(Error::Io { source, op })
                    if source.kind() == std::io::ErrorKind::AlreadyExists =>
                {
                    last = Some(Error::Io { source, op });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(Error::InvalidConfig("open_or_create did not converge")))
    }

    /// Creates an anonymous ring in a memfd, sealed against resizing.
    pub fn anonymous(cfg: &Config, kind: Kind, init: Init) -> Result<Region, Error> {
        use rustix::fs::{MemfdFlags, SealFlags};
        let ident = cfg.ident(kind)?;
        let geo = Geometry::from_ident(&ident, Some(kind))?;
        let fd =
            rustix::fs::memfd_create("mmring", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
                .map_err(Error::errno("create a memfd"))?;
        let region = Region::initialise(File::from(fd), ident, geo, None, init)?;
        // A peer holding the fd cannot shrink it under our mapping (which
        // would turn our next access into SIGBUS), nor grow it.
        rustix::fs::fcntl_add_seals(
            &region.file,
            SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL,
        )
        .map_err(Error::errno("seal the memfd"))?;
        Ok(region)
    }

    /// Attaches to a ring through an fd received from another process (or a
    /// duplicate of [`Region::fd`]).
    ///
    /// A memfd must be sealed against shrinking (as [`Region::anonymous`]
    /// seals its own): the process that sent it could otherwise truncate it
    /// under our mapping. Growing is harmless to us and not required. A
    /// regular file is accepted (whoever passed it chose it; a truncation is
    /// survived, see `fault.rs`), and so is a tmpfs file (which cannot be
    /// sealed).
    pub fn from_fd(fd: OwnedFd, kind: Option<Kind>) -> Result<Region, Error> {
        check_memfd_seals(fd.as_fd())?;
        Region::attach(File::from(fd), kind, None)
    }

    /// Sizes a fresh, empty file, reserves its pages, maps it, writes the
    /// header and publishes it with the init word.
    fn initialise(
        file: File,
        ident: Ident,
        geo: Geometry,
        path: Option<PathBuf>,
        init: Init,
    ) -> Result<Region, Error> {
        let len = geo.file_len();
        file.set_len(len).map_err(Error::io("size the ring file"))?;
        // Reserve the pages now, so a full /dev/shm fails here rather than
        // as SIGBUS on first touch. File systems without fallocate simply
        // skip the reservation.
        match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, len) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::OPNOTSUPP || e == rustix::io::Errno::NOSYS => {}
            Err(e) => {
                return Err(Error::Io {
                    op: "reserve the ring's pages",
                    source: e.into(),
                });
            }
        }
        let region = Region::map(file, geo, path)?;
        let hdr = region.header().as_ptr();
        // SAFETY: `hdr` points into the live mapping, which covers the header.
        let ident_ptr = unsafe { &raw mut (*hdr).id.ident };
        // SAFETY: the mapping is at least HEADER_LEN bytes, page-aligned, and
        // the file is not yet visible to any other process (unnamed or under
        // a temporary name, or a fresh memfd), so this write races nothing.
        unsafe { ident_ptr.write_volatile(ident) };
        init(&region);
        // SAFETY: as above; the header pointer is valid and aligned.
        let id = unsafe { &(*hdr).id };
        id.creator_pid.store(std::process::id(), Ordering::Relaxed);
        // ORDERING(init-publish): Release; pairs with the Acquire load of
        // `init` in `Region::attach`, so whoever sees INIT_READY sees the
        // identity written above.
        id.init.store(layout::INIT_READY, Ordering::Release);
        Ok(region)
    }

    /// Validates an opened file and maps it.
    fn attach(file: File, kind: Option<Kind>, path: Option<PathBuf>) -> Result<Region, Error> {
        let (ident, geo) = Region::validate(&file, kind)?;
        let region = Region::map(file, geo, path)?;
        // ORDERING(init-publish): Acquire; pairs with the Release store in
        // `Region::initialise`.
        let init = region.init_word().load(Ordering::Acquire);
        // Shrunk between the fstat above and our first access: the access
        // read zeros; say so rather than "uninitialised".
        region.check_size()?;
        region.check_poison()?;
        if init != layout::INIT_READY {
            return Err(Error::Uninitialized { found: init });
        }
        // The mapped identity must still be the one validated above; a peer
        // rewriting it between our read and our map is refused, not used.
        let hdr = region.header().as_ptr();
        // SAFETY: `hdr` points into the live mapping, which covers the header.
        let ident_ptr = unsafe { &raw const (*hdr).id.ident };
        // SAFETY: the pointer is valid and aligned; a volatile read of a Pod
        // value tolerates concurrent writers (we only compare the copy).
        let mapped = unsafe { ident_ptr.read_volatile() };
        if mapped != ident {
            return Err(Error::BadGeometry {
                what: "header identity (changed while opening)",
                value: 0,
            });
        }
        Ok(region)
    }

    /// Reads block 0 of an opened file with `pread` (a short file must give
    /// an error, not SIGBUS) and validates it.
    fn validate(file: &File, kind: Option<Kind>) -> Result<(Ident, Geometry), Error> {
        let meta = file.metadata().map_err(Error::io("stat the ring file"))?;
        if !meta.file_type().is_file() {
            return Err(Error::NotRegularFile);
        }
        let len = meta.len();
        // Read block 0 with pread, not through a mapping: a short file must
        // give an error, not SIGBUS.
        let mut block = [0u8; 128];
        let want = block.len().min(usize::try_from(len).unwrap_or(usize::MAX));
        let mut got = 0;
        while got < want {
            match rustix::io::pread(file, &mut block[got..want], got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => {
                    return Err(Error::Io {
                        op: "read the ring header",
                        source: e.into(),
                    });
                }
            }
        }
        let magic_len = got.min(layout::MAGIC.len());
        if block[..magic_len] != layout::MAGIC[..magic_len] {
            let mut found = [0u8; 8];
            found[..magic_len].copy_from_slice(&block[..magic_len]);
            return Err(Error::BadMagic { found });
        }
        if len < layout::DATA_OFFSET {
            return Err(Error::Truncated {
                len,
                needed: layout::DATA_OFFSET,
            });
        }
        let ident: Ident = bytemuck::pod_read_unaligned(&block[..size_of::<Ident>()]);
        let init = u32::from_ne_bytes([block[64], block[65], block[66], block[67]]);
        if ident.version == layout::LAYOUT_VERSION && init != layout::INIT_READY {
            return Err(Error::Uninitialized { found: init });
        }
        let geo = Geometry::from_ident(&ident, kind)?;
        if len < geo.file_len() {
            return Err(Error::Truncated {
                len,
                needed: geo.file_len(),
            });
        }
        Ok((ident, geo))
    }

    fn map(file: File, geo: Geometry, path: Option<PathBuf>) -> Result<Region, Error> {
        let len = usize::try_from(geo.file_len())
            .map_err(|_| Error::InvalidConfig("ring does not fit the address space"))?;
        let map = MmapOptions::new()
            .len(len)
            .map_raw(&file)
            .map_err(Error::io("map the ring"))?;
        // From here on, a truncation of the file turns accesses into zero
        // pages and a poisoned flag, not SIGBUS.
        let guard = fault::Guard::register(map.as_ptr(), map.len())?;
        Ok(Region {
            guard,
            map,
            file,
            geo,
            path,
        })
    }

    /// The header at offset 0 of the mapping.
    pub fn header(&self) -> NonNull<Header> {
        // mmap never returns null for a successful non-empty mapping, and the
        // page alignment covers Header's 128-byte alignment.
        NonNull::new(self.map.as_mut_ptr().cast::<Header>()).expect("mmap returned null")
    }

    /// Block 0's init-state word.
    pub fn init_word(&self) -> &AtomicU32 {
        let hdr = self.header().as_ptr();
        // SAFETY: `hdr` points into the live mapping, which covers the
        // header; projecting with `&raw const` creates no reference to the
        // plain (non-atomic) identity bytes beside the word.
        let p = unsafe { &raw const (*hdr).id.init };
        // SAFETY: aligned (field of an aligned header), live for `&self`, an
        // atomic that tolerates writes by other processes.
        unsafe { &*p }
    }

    /// Block 1, written by the consumer side. All atomics.
    pub fn consumer_block(&self) -> &ConsumerBlock {
        let hdr = self.header().as_ptr();
        // SAFETY: `hdr` points into the live mapping, which covers the
        // header; the projection creates no reference to block 0.
        let p = unsafe { &raw const (*hdr).consumer };
        // SAFETY: 128-byte aligned, live for `&self`, atomics only.
        unsafe { &*p }
    }

    /// Block 2, written by the producer side. All atomics.
    pub fn producer_block(&self) -> &ProducerBlock {
        let hdr = self.header().as_ptr();
        // SAFETY: as in `consumer_block`.
        let p = unsafe { &raw const (*hdr).producer };
        // SAFETY: as in `consumer_block`.
        unsafe { &*p }
    }

    /// Block 3: role records and the recovery count. All atomics.
    pub fn role_block(&self) -> &layout::RoleBlock {
        let hdr = self.header().as_ptr();
        // SAFETY: as in `consumer_block`.
        let p = unsafe { &raw const (*hdr).roles };
        // SAFETY: as in `consumer_block`.
        unsafe { &*p }
    }

    /// The role record of `role` in block 3. All atomics.
    pub fn role_record(&self, role: layout::Role) -> &RoleRecord {
        &self.role_block().roles[role.index()]
    }

    /// Record `i` of the attachment table.
    pub fn attach_record(&self, i: u64) -> &layout::AttachRecord {
        assert!(
            i < layout::ATTACH_SLOTS,
            "attachment record {i} out of range"
        );
        let off = layout::attach_record_offset(i);
        // SAFETY: `off + ATTACH_RECORD <= DATA_OFFSET <= mapping length` (a
        // compile-time assert in layout.rs and the assert above), so the
        // record lies inside the mapping.
        let p = unsafe { self.map.as_mut_ptr().add(off as usize) };
        // SAFETY: the record is 64-byte aligned (page-aligned mapping, 64 |
        // off), lives as long as `&self`, and consists of atomics only.
        unsafe { &*p.cast::<layout::AttachRecord>() }
    }

    /// Start of the data area (`capacity` bytes, page-aligned).
    pub fn data(&self) -> NonNull<u8> {
        // SAFETY: DATA_OFFSET < mapping length (the mapping is DATA_OFFSET +
        // capacity bytes, capacity >= 64), so the result stays in bounds.
        let p = unsafe { self.map.as_mut_ptr().add(layout::DATA_OFFSET as usize) };
        NonNull::new(p).expect("data pointer is non-null")
    }

    /// The validated geometry.
    pub fn geometry(&self) -> Geometry {
        self.geo
    }

    /// The ring's file descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }

    /// The path the ring was created or opened at, if named.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Whether a named ring's path no longer names the file we mapped (it
    /// was removed, or replaced by another file). Two system calls: for
    /// slow paths. `false` for anonymous rings and when unsure.
    pub fn is_unlinked(&self) -> bool {
        let Some(path) = &self.path else {
            return false;
        };
        let Ok(ours) = rustix::fs::fstat(&self.file) else {
            return false;
        };
        match rustix::fs::stat(path) {
            Ok(now) => (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino),
            Err(e) => e == rustix::io::Errno::NOENT,
        }
    }

    /// Whether the mapping was replaced with zero pages because the file
    /// shrank under it (see `fault.rs`). Once true, stays true: nothing read
    /// from the mapping since can be trusted. Cheap (one fence and one
    /// load): re-check it in every wait loop and before every successful
    /// return.
    pub fn is_poisoned(&self) -> bool {
        self.guard.is_poisoned()
    }

    /// [`Region::is_poisoned`] as the hot-path error.
    pub fn check_poison(&self) -> Result<(), Corruption> {
        if self.is_poisoned() {
            Err(Corruption::Truncated)
        } else {
            Ok(())
        }
    }

    /// Checks with `fstat` that the file still covers the whole mapping.
    /// For slow paths (a wait that timed out, a liveness check): it is a
    /// system call. A truncation is also caught on the hot path, at the
    /// first access past the new end, by [`Region::is_poisoned`].
    ///
    /// # Errors
    ///
    /// [`Error::Truncated`] with the file's current length when it is
    /// shorter than the ring; [`Error::Io`] if `fstat` fails.
    pub fn check_size(&self) -> Result<(), Error> {
        let st = rustix::fs::fstat(&self.file).map_err(Error::errno("stat the ring file"))?;
        let len = u64::try_from(st.st_size).unwrap_or(0);
        let needed = self.geo.file_len();
        if len < needed {
            return Err(Error::Truncated { len, needed });
        }
        Ok(())
    }

    /// `msync`s the whole mapping. A poisoned mapping (zeros, no longer the
    /// file) is not written back: that is `Corruption::Truncated`, as is an
    /// `msync` failure on a file that shrank meanwhile.
    pub fn flush(&self) -> Result<(), Error> {
        self.check_poison()?;
        match self.map.flush() {
            Ok(()) => self.check_poison().map_err(Error::from),
            Err(e) => {
                self.check_size()?;
                self.check_poison()?;
                Err(Error::Io {
                    op: "flush the ring",
                    source: e,
                })
            }
        }
    }
}

/// Sets `file`'s permission bits to exactly `mode` (`fchmod`), whatever the
/// umask cut at creation.
fn set_mode(file: &File, mode: u32) -> Result<(), Error> {
    rustix::fs::fchmod(file, rustix::fs::Mode::from_raw_mode(mode))
        .map_err(Error::errno("set the ring file's mode"))
}

/// Refuses a memfd that is not sealed against shrinking. Anything else (no
/// seal support: a regular file on disk or a plain tmpfs file) passes.
fn check_memfd_seals(fd: BorrowedFd<'_>) -> Result<(), Error> {
    use rustix::fs::SealFlags;
    let seals = match rustix::fs::fcntl_get_seals(fd) {
        Ok(s) => s,
        // Not a shmem or hugetlbfs file: seals do not exist there.
        Err(rustix::io::Errno::INVAL) => return Ok(()),
        Err(e) => {
            return Err(Error::Io {
                op: "read the memfd's seals",
                source: e.into(),
            });
        }
    };
    if seals.contains(SealFlags::SHRINK) {
        return Ok(());
    }
    // A tmpfs file opened by name reports F_SEAL_SEAL too (it can never be
    // sealed); only a memfd is refused. The kernel names a memfd
    // "/memfd:NAME (deleted)" in /proc.
    let link = rustix::fs::readlinkat(
        rustix::fs::CWD,
        format!("/proc/self/fd/{}", fd.as_raw_fd()),
        Vec::new(),
    )
    .map_err(Error::errno("identify the ring fd"))?;
    if link.as_bytes().starts_with(b"/memfd:") {
        return Err(Error::UnsealedMemfd {
            seals: seals.bits(),
        });
    }
    Ok(())
}

// Real files: not under Miri.
#[cfg(all(test, not(miri)))]
mod tests {
    use super::*;

    fn temp_path(tag: &str) -> PathBuf {
        let dir = if Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("mmring-region-{}-{tag}", std::process::id()))
    }

    /// A truncated ring file: the next access to a lost page reads zeros,
    /// the region reports itself poisoned, the slow-path size check and
    /// `flush` say `Truncated`, and a new attach is refused.
    #[test]
    fn truncation_poisons_the_region() {
        let path = temp_path("trunc");
        let _ = std::fs::remove_file(&path);
        let r = Region::create(&path, &Config::new(1 << 16), Kind::Spsc, |_| {}).unwrap();
        let cap = r.geometry().capacity as usize;
        // SAFETY: the data area is `cap` bytes; the ring is ours alone.
        unsafe { r.data().as_ptr().write_bytes(0x5A, cap) };
        assert!(!r.is_poisoned());
        assert!(r.check_size().is_ok());
        assert!(r.flush().is_ok());

        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(4096)
            .unwrap();
        match r.check_size() {
            Err(Error::Truncated { len, needed }) => {
                assert_eq!((len, needed), (4096, layout::DATA_OFFSET + cap as u64))
            }
            other => panic!("expected Truncated, got {other:?}"),
        }
        assert!(matches!(
            Region::open(&path, Some(Kind::Spsc)),
            Err(Error::Truncated { len: 4096, .. })
        ));
        // SAFETY: `cap - 1` is inside the data area.
        let last = unsafe { r.data().as_ptr().add(cap - 1) };
        // SAFETY: mapped; its page is gone from the file, so this faults and
        // the handler maps zeros over the region.
        let v = unsafe { last.read_volatile() };
        assert_eq!(v, 0);
        assert!(r.is_poisoned());
        assert_eq!(r.check_poison(), Err(Corruption::Truncated));
        // The header page was still in the file, but the whole mapping is
        // zeros now: nothing from it can be trusted.
        assert_eq!(r.init_word().load(Ordering::Relaxed), 0);
        assert!(matches!(
            r.flush(),
            Err(Error::Corrupt(Corruption::Truncated))
        ));
        drop(r);
        std::fs::remove_file(&path).unwrap();
    }
}
