//! Named shared-memory segments under `/dev/shm`.
//!
//! A [`Segment`] is a file in `/dev/shm` mapped shared and read-write: a 128-byte header
//! followed by the payload, which is where the modules built on segments keep their
//! rings, tables and wait words. The header records what lives in the payload (a `kind`
//! each user module defines), six kind-specific geometry words ([`PARAMS`]), the payload
//! length and the creating process; it is written once, before the name appears, and never
//! changes. The byte layout is documented on the private `header::RawHeader` type (see
//! `src/segment/header.rs`).
//!
//! # Creation
//!
//! [`Segment::create`] builds the file under a hidden temporary name
//! (`.<name>.<pid>.<counter>.tmp`, mode 0600), allocates all of it with `fallocate` so a
//! full `/dev/shm` fails now with [`SegmentError::NoSpace`] rather than with `SIGBUS` on
//! some later write, writes the header, and only then renames it to `name` without
//! replacing an existing file. An opener therefore never sees a half-made segment, and two
//! creators racing for a name get one [`Segment`] and one [`SegmentError::AlreadyExists`].
//!
//! # Unlink policy
//!
//! - The creator owns the name: its [`Segment`] unlinks the name when dropped, unless
//!   [`Segment::persist`] was called.
//! - Openers never unlink.
//! - Unlinking removes only the name. Mappings stay valid, so peers that opened the segment
//!   before keep working; new [`Segment::open`] calls get [`SegmentError::NotFound`].
//! - A creator that crashes leaves the name behind. Any process may call
//!   [`Segment::remove_if_stale`], which removes it once the recorded creator is dead
//!   (see [`ProcessId::is_alive`]), along with temporaries that crashed creators left.
//!
//! # Trust
//!
//! A segment's contents are untrusted input: another process may have written anything
//! into it. Opening validates the header from a private copy and reports damage as
//! [`SegmentError::Corrupt`] or [`SegmentError::Incompatible`], never a panic.
//!
//! Known limitation: a process with write access to the file (the same user, given mode
//! 0600) can truncate it, after which touching the lost pages raises `SIGBUS` in every
//! process that mapped them. Files in `/dev/shm` cannot be sealed against this (memfd
//! seals need an fd passed over a socket, not a name). Only share segments with processes
//! you trust not to truncate them.
//!
//! All participants must share a pid namespace, since liveness is judged by pid and start
//! time (see [`crate::process`]).

mod header;
mod name;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use memmap2::{MmapOptions, MmapRaw};
use rustix::fs::{FallocateFlags, FileType, Mode, OFlags, RenameFlags, CWD};
use rustix::io::Errno;

use self::header::{Header, HeaderError, HEADER_LEN};
use crate::process::ProcessId;

/// Number of kind-specific geometry words a segment header stores.
///
/// # Examples
///
/// ```
/// use ringport::segment::PARAMS;
///
/// // A ring might record its slot size and slot count, leaving the rest zero.
/// let params: [u64; PARAMS] = [64, 1024, 0, 0, 0, 0];
/// assert_eq!(params.len(), 6);
/// ```
pub const PARAMS: usize = 6;

/// Where segments live.
const DIR: &str = "/dev/shm";

/// Errors from creating, opening or removing a segment. Each names the segment.
///
/// # Examples
///
/// ```
/// use ringport::segment::{Segment, SegmentError};
///
/// let name = format!("doc-error-missing-{}", std::process::id());
/// match Segment::open(&name, 1) {
///     Err(SegmentError::NotFound { name: missing }) => assert_eq!(missing, name),
///     other => panic!("unexpected {other:?}"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SegmentError {
    /// No segment has this name.
    #[error("shared-memory segment `{name}` does not exist")]
    NotFound {
        /// The segment's name.
        name: String,
    },
    /// Creating failed because the name is taken.
    #[error("shared-memory segment `{name}` already exists")]
    AlreadyExists {
        /// The segment's name.
        name: String,
    },
    /// The file is not a segment this code can use: not ringport's, another layout
    /// version, or another kind.
    #[error("shared-memory segment `{name}` is incompatible: {reason}")]
    Incompatible {
        /// The segment's name.
        name: String,
        /// What was found, and what was expected.
        reason: String,
    },
    /// The file claims to be a ringport segment but its header is damaged or inconsistent.
    #[error("shared-memory segment `{name}` is corrupt: {reason}")]
    Corrupt {
        /// The segment's name.
        name: String,
        /// What is inconsistent.
        reason: String,
    },
    /// The file's mode or owner, or `/dev/shm`'s, does not allow the operation.
    #[error("permission denied for shared-memory segment `{name}`")]
    PermissionDenied {
        /// The segment's name.
        name: String,
    },
    /// The name breaks the naming rules (see [`Segment::create`]).
    #[error("invalid shared-memory segment name {name:?}: {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// `/dev/shm` has too little free space for the segment.
    #[error("no space in /dev/shm for shared-memory segment `{name}` ({bytes} bytes)")]
    NoSpace {
        /// The segment's name.
        name: String,
        /// Bytes requested, header included.
        bytes: u64,
    },
    /// Any other operating-system error.
    #[error("I/O error on shared-memory segment `{name}`: {source}")]
    Io {
        /// The segment's name.
        name: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// A named shared-memory segment, mapped read-write.
///
/// The payload starts at [`Segment::payload`] and spans [`Segment::payload_len`] bytes; other
/// processes that open the same name see the same bytes, so everything in it must be
/// accessed with atomics or under a protocol the kind defines. See the
/// [module documentation](self) for the life cycle and unlink policy.
///
/// # Examples
///
/// ```
/// use ringport::segment::Segment;
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
///
/// const KIND: u32 = 0xD0C_0001;
/// let name = format!("doc-segment-{}", std::process::id());
/// let owner = Segment::create(&name, KIND, [8, 0, 0, 0, 0, 0], 4096)?;
/// let peer = Segment::open(&name, KIND)?;
///
/// // SAFETY: the payload is 128-byte aligned, 4096 bytes long, mapped for as long as the
/// // segments live, and only ever accessed atomically.
/// let (a, b) = unsafe {
///     (
///         AtomicU64::from_ptr(owner.payload().as_ptr().cast()),
///         AtomicU64::from_ptr(peer.payload().as_ptr().cast()),
///     )
/// };
/// a.store(7, Ordering::Release);
/// assert_eq!(b.load(Ordering::Acquire), 7);
/// # Ok::<(), ringport::segment::SegmentError>(())
/// ```
pub struct Segment {
    name: String,
    map: MmapRaw,
    header: Header,
    /// The file this handle created or opened, so the owner unlinks only its own file.
    file: FileId,
    /// Atomics, not plain flags: a transferred port's segment changes hands while other
    /// handles of its region may read them.
    owner: AtomicBool,
    persisted: AtomicBool,
}

impl std::fmt::Debug for Segment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Segment")
            .field("name", &self.name)
            .field("kind", &self.header.kind)
            .field("params", &self.header.params)
            .field("payload_len", &self.header.payload_len)
            .field("creator", &self.header.creator)
            .field("owner", &self.owner.load(Ordering::Relaxed))
            .field("persisted", &self.persisted.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Segment {
    /// Creates the segment `name`, failing if it exists.
    ///
    /// `kind` says what lives in the payload (each user module defines its own constant)
    /// and [`Segment::open`] insists on it; `params` are kind-specific geometry words kept
    /// in the header; the payload is `payload_len` zeroed bytes. The returned handle owns
    /// the name and unlinks it on drop unless [`Segment::persist`] is called.
    ///
    /// A name is 1 to 200 bytes of ASCII letters, digits, `.`, `_` and `-`, does not start
    /// with `.` and does not contain `..`.
    ///
    /// # Errors
    ///
    /// [`SegmentError::InvalidName`], [`SegmentError::AlreadyExists`],
    /// [`SegmentError::NoSpace`] when `/dev/shm` cannot hold `128 + payload_len` bytes,
    /// [`SegmentError::PermissionDenied`], or [`SegmentError::Io`]. No file is left
    /// behind on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::{Segment, SegmentError};
    ///
    /// let name = format!("doc-create-{}", std::process::id());
    /// let seg = Segment::create(&name, 42, [1, 2, 3, 4, 5, 6], 1 << 16)?;
    /// assert!(seg.is_owner());
    /// assert!(matches!(
    ///     Segment::create(&name, 42, [0; 6], 16),
    ///     Err(SegmentError::AlreadyExists { .. })
    /// ));
    /// # Ok::<(), SegmentError>(())
    /// ```
    pub fn create(
        name: &str,
        kind: u32,
        params: [u64; PARAMS],
        payload_len: usize,
    ) -> Result<Segment, SegmentError> {
        validate(name)?;
        // A length beyond the address space is a request no /dev/shm can hold.
        let Some(total_len) = HEADER_LEN.checked_add(payload_len) else {
            return Err(SegmentError::NoSpace {
                name: name.to_owned(),
                bytes: u64::MAX,
            });
        };
        let bytes = total_len as u64;
        let header = Header {
            kind,
            params,
            payload_len,
            total_len,
            creator: ProcessId::current(),
        };
        let temp = TempFile::create(name)?;
        allocate(&temp.file, bytes).map_err(|errno| match errno {
            Errno::NOSPC => SegmentError::NoSpace {
                name: name.to_owned(),
                bytes,
            },
            _ => errno_error(name, errno),
        })?;
        // Written through the file rather than the mapping, so no Rust reference or
        // pointer ever touches bytes another process could be writing.
        temp.file
            .write_all_at(&header.encode(), 0)
            .map_err(|source| io_error(name, source))?;
        let map = MmapOptions::new()
            .len(total_len)
            .populate()
            .map_raw(&temp.file)
            .map_err(|source| io_error(name, source))?;
        let file = FileId::of(&temp.file).map_err(|errno| errno_error(name, errno))?;
        // Nothing after publishing may fail, or a published name would have no owner.
        temp.publish(name)?;
        Ok(Segment {
            name: name.to_owned(),
            map,
            header,
            file,
            owner: AtomicBool::new(true),
            persisted: AtomicBool::new(false),
        })
    }

    /// Opens the existing segment `name` and checks that it holds `kind`.
    ///
    /// # Errors
    ///
    /// [`SegmentError::InvalidName`], [`SegmentError::NotFound`],
    /// [`SegmentError::PermissionDenied`], [`SegmentError::Incompatible`] when the file is
    /// not a ringport segment, has another layout version or another kind,
    /// [`SegmentError::Corrupt`] when its header is damaged or disagrees with the file
    /// size, or [`SegmentError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::{Segment, SegmentError};
    ///
    /// let name = format!("doc-open-{}", std::process::id());
    /// let owner = Segment::create(&name, 7, [9, 0, 0, 0, 0, 0], 256)?;
    /// let peer = Segment::open(&name, 7)?;
    /// assert!(!peer.is_owner());
    /// assert_eq!(peer.params()[0], 9);
    /// assert!(matches!(Segment::open(&name, 8), Err(SegmentError::Incompatible { .. })));
    /// # Ok::<(), SegmentError>(())
    /// ```
    pub fn open(name: &str, kind: u32) -> Result<Segment, SegmentError> {
        validate(name)?;
        let (file, id, file_len) = open_existing(name, OFlags::RDWR)?;
        let header = read_header(name, &file, Some(kind), file_len)?;
        let map = MmapOptions::new()
            .len(header.total_len)
            .map_raw(&file)
            .map_err(|source| io_error(name, source))?;
        Ok(Segment {
            name: name.to_owned(),
            map,
            header,
            file: id,
            owner: AtomicBool::new(false),
            persisted: AtomicBool::new(false),
        })
    }

    /// The segment's name.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-name-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 0)?;
    /// assert_eq!(seg.name(), name);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What lives in the payload, as given to [`Segment::create`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-kind-{}", std::process::id());
    /// let seg = Segment::create(&name, 0xABC, [0; 6], 0)?;
    /// assert_eq!(seg.kind(), 0xABC);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn kind(&self) -> u32 {
        self.header.kind
    }

    /// The kind-specific geometry words given to [`Segment::create`].
    ///
    /// They come from a validated, checksummed header, but a kind must still bound-check
    /// them before using them as sizes or offsets into the payload.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-params-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [10, 20, 30, 40, 50, 60], 0)?;
    /// assert_eq!(Segment::open(&name, 1)?.params(), [10, 20, 30, 40, 50, 60]);
    /// # drop(seg);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn params(&self) -> [u64; PARAMS] {
        self.header.params
    }

    /// The process that created the segment.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::process::ProcessId;
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-creator-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 0)?;
    /// assert_eq!(seg.creator(), ProcessId::current());
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn creator(&self) -> ProcessId {
        self.header.creator
    }

    /// Start of the payload: aligned to at least 128 bytes, valid for
    /// [`Segment::payload_len`] bytes of reads and writes while `self` lives.
    ///
    /// Other processes may read and write the same bytes at any time, so access them with
    /// atomics (or a protocol that makes plain accesses race-free), and treat what you read
    /// as untrusted.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-payload-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 1024)?;
    /// assert_eq!(seg.payload().as_ptr() as usize % 128, 0);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn payload(&self) -> NonNull<u8> {
        // SAFETY: the mapping is at least HEADER_LEN bytes long, so adding HEADER_LEN stays
        // within it (or one past its end for an empty payload); an in-bounds offset from a
        // mapping cannot wrap around the address space, so the result is above
        // HEADER_LEN and not null.
        unsafe { NonNull::new_unchecked(self.map.as_mut_ptr().add(HEADER_LEN)) }
    }

    /// Payload length in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-payload-len-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 1000)?;
    /// assert_eq!(seg.payload_len(), 1000);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn payload_len(&self) -> usize {
        self.header.payload_len
    }

    /// Whether this handle created the segment (and so owns its name).
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-is-owner-{}", std::process::id());
    /// let owner = Segment::create(&name, 1, [0; 6], 0)?;
    /// let peer = Segment::open(&name, 1)?;
    /// assert!(owner.is_owner() && !peer.is_owner());
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn is_owner(&self) -> bool {
        self.owner.load(Ordering::Relaxed)
    }

    /// Keeps the name after this handle drops, so the segment outlives its creator until
    /// someone calls [`Segment::unlink`]. Has no effect on handles from [`Segment::open`],
    /// which never unlink.
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-persist-{}", std::process::id());
    /// let mut seg = Segment::create(&name, 1, [0; 6], 64)?;
    /// seg.persist();
    /// drop(seg);
    /// assert!(Segment::open(&name, 1).is_ok());
    /// Segment::unlink(&name)?;
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn persist(&mut self) {
        self.persisted.store(true, Ordering::Relaxed);
    }

    /// Hands the name's ownership away (to the process a port is transferred to): this
    /// handle will not unlink it. True if this handle owned it.
    pub(crate) fn disown(&self) -> bool {
        self.owner.load(Ordering::Relaxed) && !self.persisted.swap(true, Ordering::Relaxed)
    }

    /// Takes over the name's ownership from the handle that disowned it.
    pub(crate) fn adopt(&self) {
        self.owner.store(true, Ordering::Relaxed);
    }

    /// Removes this segment's name if it still names this segment's file (another
    /// creator may have reused the name since), whoever created it; returns whether it
    /// did. For a segment whose users agree among themselves on the last one out.
    pub(crate) fn unlink_if_same(&self) -> bool {
        let path = path_of(&self.name);
        matches!(rustix::fs::stat(&path), Ok(st) if FileId::from_stat(&st) == self.file)
            && rustix::fs::unlink(&path).is_ok()
    }

    /// Removes the name `name`, whatever file it names. Processes that have it mapped
    /// keep working; later opens get [`SegmentError::NotFound`].
    ///
    /// # Errors
    ///
    /// [`SegmentError::InvalidName`], [`SegmentError::NotFound`],
    /// [`SegmentError::PermissionDenied`], or [`SegmentError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::{Segment, SegmentError};
    ///
    /// let name = format!("doc-unlink-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 64)?;
    /// Segment::unlink(&name)?;
    /// assert!(matches!(Segment::open(&name, 1), Err(SegmentError::NotFound { .. })));
    /// assert_eq!(seg.payload_len(), 64);
    /// # Ok::<(), SegmentError>(())
    /// ```
    pub fn unlink(name: &str) -> Result<(), SegmentError> {
        validate(name)?;
        rustix::fs::unlink(path_of(name)).map_err(|errno| match errno {
            Errno::NOENT => SegmentError::NotFound {
                name: name.to_owned(),
            },
            _ => errno_error(name, errno),
        })
    }

    /// Removes `name` if its creator is dead, and returns whether it did.
    ///
    /// The segment is stale when the creator recorded in its header is no longer alive
    /// (see [`ProcessId::is_alive`]) or when the header is corrupt, since nobody can use
    /// it then. Returns `false` when the creator is alive or no file has the name. It also
    /// deletes temporaries (`.<name>.<pid>.<counter>.tmp`) that creators killed during
    /// [`Segment::create`] left behind.
    ///
    /// # Errors
    ///
    /// [`SegmentError::InvalidName`], [`SegmentError::Incompatible`] when the file is not
    /// a ringport segment of this layout version (it is left alone: it may belong to
    /// someone else), [`SegmentError::PermissionDenied`], or [`SegmentError::Io`].
    ///
    /// # Examples
    ///
    /// ```
    /// use ringport::segment::Segment;
    ///
    /// let name = format!("doc-remove-if-stale-{}", std::process::id());
    /// let seg = Segment::create(&name, 1, [0; 6], 64)?;
    /// // Its creator, this process, is alive.
    /// assert!(!Segment::remove_if_stale(&name)?);
    /// drop(seg);
    /// assert!(!Segment::remove_if_stale(&name)?);
    /// # Ok::<(), ringport::segment::SegmentError>(())
    /// ```
    pub fn remove_if_stale(name: &str) -> Result<bool, SegmentError> {
        validate(name)?;
        remove_stale_temps(name);
        let (file, id, file_len) = match open_existing(name, OFlags::RDONLY) {
            Ok(opened) => opened,
            Err(SegmentError::NotFound { .. }) => return Ok(false),
            Err(e) => return Err(e),
        };
        let stale = match read_header(name, &file, None, file_len) {
            Ok(header) => !header.creator.is_alive(),
            Err(SegmentError::Corrupt { .. }) => true,
            Err(e) => return Err(e),
        };
        if !stale {
            return Ok(false);
        }
        // A new creator may have replaced the name since it was inspected; its segment is
        // not stale, so unlink only the file that was judged.
        let path = path_of(name);
        match rustix::fs::stat(&path) {
            Ok(st) if FileId::from_stat(&st) == id => {}
            Ok(_) | Err(Errno::NOENT) => return Ok(false),
            Err(errno) => return Err(errno_error(name, errno)),
        }
        match rustix::fs::unlink(&path) {
            Ok(()) => Ok(true),
            Err(Errno::NOENT) => Ok(false),
            Err(errno) => Err(errno_error(name, errno)),
        }
    }
}

impl Drop for Segment {
    fn drop(&mut self) {
        if !self.owner.load(Ordering::Relaxed) || self.persisted.load(Ordering::Relaxed) {
            return;
        }
        let path = path_of(&self.name);
        // If someone unlinked our name and another creator reused it, the file there now
        // is theirs. The stat-then-unlink window is tiny, and closing it would need a lock
        // every creator honours.
        if matches!(rustix::fs::stat(&path), Ok(st) if FileId::from_stat(&st) == self.file) {
            // Nothing can report an error from drop, and a name that vanished meanwhile is
            // what was wanted anyway.
            let _ = rustix::fs::unlink(&path);
        }
    }
}

/// Identity of a file, to tell the file a handle holds from whatever now has its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of(file: &File) -> Result<FileId, Errno> {
        rustix::fs::fstat(file).map(|st| FileId::from_stat(&st))
    }

    fn from_stat(st: &rustix::fs::Stat) -> FileId {
        FileId {
            dev: st.st_dev,
            ino: st.st_ino,
        }
    }
}

/// A file being built under a temporary name, deleted on drop unless published.
struct TempFile {
    path: String,
    file: File,
    published: bool,
}

impl TempFile {
    fn create(name: &str) -> Result<TempFile, SegmentError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let pid = std::process::id();
        // The counter is unique within this process, so a name already taken can only be
        // a leftover from a dead process that had our pid; the next counter avoids it.
        for _ in 0..64 {
            let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = format!("{DIR}/.{name}.{pid}.{counter}.tmp");
            let flags = OFlags::CREATE | OFlags::EXCL | OFlags::RDWR | OFlags::CLOEXEC;
            match rustix::fs::open(&path, flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    return Ok(TempFile {
                        path,
                        file: File::from(fd),
                        published: false,
                    })
                }
                Err(Errno::EXIST) => continue,
                Err(errno) => return Err(errno_error(name, errno)),
            }
        }
        Err(errno_error(name, Errno::EXIST))
    }

    /// Gives the file its final name, which must not exist yet.
    fn publish(mut self, name: &str) -> Result<(), SegmentError> {
        let flags = RenameFlags::NOREPLACE;
        match rustix::fs::renameat_with(CWD, &self.path, CWD, path_of(name), flags) {
            Ok(()) => {
                self.published = true;
                Ok(())
            }
            Err(Errno::EXIST) => Err(SegmentError::AlreadyExists {
                name: name.to_owned(),
            }),
            Err(errno) => Err(errno_error(name, errno)),
        }
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if !self.published {
            // Best effort: remove_if_stale collects what an error here leaves behind.
            let _ = rustix::fs::unlink(&self.path);
        }
    }
}

/// Reserves `len` bytes for `file`.
fn allocate(file: &File, len: u64) -> Result<(), Errno> {
    loop {
        match rustix::fs::fallocate(file, FallocateFlags::empty(), 0, len) {
            // tmpfs abandons a large allocation when a signal arrives; retrying finishes it.
            Err(Errno::INTR) => continue,
            // Some /dev/shm mounts are not tmpfs (a bind mount from another filesystem in a
            // container, say) and cannot preallocate. Sizing the file still works; pages are
            // then allocated on first touch, where exhaustion shows up as SIGBUS.
            Err(Errno::OPNOTSUPP) => return rustix::fs::ftruncate(file, len),
            result => return result,
        }
    }
}

/// Opens the existing segment file, returning it with its identity and size.
fn open_existing(name: &str, access: OFlags) -> Result<(File, FileId, u64), SegmentError> {
    // NOFOLLOW: /dev/shm is world-writable, so the name could be a planted symlink.
    let flags = access | OFlags::CLOEXEC | OFlags::NOFOLLOW;
    let fd =
        rustix::fs::open(path_of(name), flags, Mode::empty()).map_err(|errno| match errno {
            Errno::NOENT => SegmentError::NotFound {
                name: name.to_owned(),
            },
            Errno::LOOP => incompatible(name, "a symbolic link, not a segment".into()),
            Errno::ISDIR => incompatible(name, "a directory, not a segment".into()),
            _ => errno_error(name, errno),
        })?;
    let st = rustix::fs::fstat(&fd).map_err(|errno| errno_error(name, errno))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(incompatible(name, "not a regular file".into()));
    }
    let file_len =
        u64::try_from(st.st_size).map_err(|_| corrupt(name, "negative file size".into()))?;
    Ok((File::from(fd), FileId::from_stat(&st), file_len))
}

/// Reads and validates the header of an open segment file of `file_len` bytes.
fn read_header(
    name: &str,
    file: &File,
    kind: Option<u32>,
    file_len: u64,
) -> Result<Header, SegmentError> {
    if file_len < HEADER_LEN as u64 {
        return Err(corrupt(
            name,
            format!("file is {file_len} bytes, shorter than the {HEADER_LEN}-byte header"),
        ));
    }
    // read(2) copies into private memory, so a peer scribbling on the header meanwhile
    // can only produce a header that fails validation, not a data race.
    let mut bytes = [0; HEADER_LEN];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => {
                corrupt(name, "file shrank while being read".into())
            }
            _ => io_error(name, source),
        })?;
    header::decode(&bytes, kind, file_len).map_err(|e| match e {
        HeaderError::Incompatible(reason) => incompatible(name, reason),
        HeaderError::Corrupt(reason) => corrupt(name, reason),
    })
}

/// Deletes `.<name>.<pid>.<counter>.tmp` files whose creating process is gone.
fn remove_stale_temps(name: &str) {
    let Ok(entries) = std::fs::read_dir(DIR) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(pid) = file_name.to_str().and_then(|f| temp_creator(f, name)) else {
            continue;
        };
        // Start time 0 means "unknown": only a pid that is provably gone (or a zombie)
        // counts as dead, so a live creator's temporary is never pulled from under it.
        if !(ProcessId { pid, start_time: 0 }).is_alive() {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pid in `file_name` if it is a temporary for segment `name`.
fn temp_creator(file_name: &str, name: &str) -> Option<u32> {
    let middle = file_name.strip_prefix('.')?.strip_suffix(".tmp")?;
    let mut parts = middle.rsplitn(3, '.');
    let counter = parts.next()?;
    let pid = parts.next()?;
    if parts.next()? != name || counter.is_empty() || !counter.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn validate(name: &str) -> Result<(), SegmentError> {
    name::validate(name).map_err(|reason| SegmentError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

fn path_of(name: &str) -> String {
    format!("{DIR}/{name}")
}

fn errno_error(name: &str, errno: Errno) -> SegmentError {
    match errno {
        Errno::ACCESS | Errno::PERM => SegmentError::PermissionDenied {
            name: name.to_owned(),
        },
        _ => io_error(name, errno.into()),
    }
}

fn io_error(name: &str, source: std::io::Error) -> SegmentError {
    SegmentError::Io {
        name: name.to_owned(),
        source,
    }
}

fn incompatible(name: &str, reason: String) -> SegmentError {
    SegmentError::Incompatible {
        name: name.to_owned(),
        reason,
    }
}

fn corrupt(name: &str, reason: String) -> SegmentError {
    SegmentError::Corrupt {
        name: name.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Segment>();
    }

    #[test]
    fn recognises_only_its_own_temporaries() {
        assert_eq!(temp_creator(".ring.12.0.tmp", "ring"), Some(12));
        assert_eq!(temp_creator(".a.b.12.345.tmp", "a.b"), Some(12));
        assert_eq!(temp_creator(".a.b.12.345.tmp", "b"), None);
        assert_eq!(temp_creator(".b.12.345.tmp", "a.b"), None);
        assert_eq!(temp_creator(".ring.12.x.tmp", "ring"), None);
        assert_eq!(temp_creator(".ring.x.0.tmp", "ring"), None);
        assert_eq!(temp_creator(".ring.12..tmp", "ring"), None);
        assert_eq!(temp_creator("ring.12.0.tmp", "ring"), None);
        assert_eq!(temp_creator(".ring.12.0", "ring"), None);
        assert_eq!(temp_creator(".ring", "ring"), None);
    }

    #[test]
    fn oversized_payload_is_refused_before_touching_the_filesystem() {
        let name = format!("unit-oversized-{}", std::process::id());
        assert!(matches!(
            Segment::create(&name, 1, [0; PARAMS], usize::MAX),
            Err(SegmentError::NoSpace {
                bytes: u64::MAX,
                ..
            })
        ));
    }
}
