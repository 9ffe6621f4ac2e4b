//! Named segments, with a real second process wherever a test needs one.
//!
//! A test that needs a peer re-executes this test binary with `--exact <test> --nocapture`
//! and `ROLE_VAR` set; the named test function sees the variable and plays the child's
//! part instead of the parent's. Children report progress with marker lines on stdout.

#[path = "common/peer.rs"]
mod peer;

use peer::{announce, Peer};
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use ringport::process::ProcessId;
use ringport::segment::{Segment, SegmentError, PARAMS};

const ROLE_VAR: &str = "RINGPORT_SEGMENT_TEST_ROLE";
const NAME_VAR: &str = "RINGPORT_SEGMENT_TEST_NAME";
const KIND: u32 = 0x5E6_7E57;
const PARAMS_IN: [u64; PARAMS] = [1, 2, 3, 0xdead_beef, u64::MAX, 0];

/// A name no other test or concurrent run uses.
fn unique(test: &str) -> String {
    format!("rp-test-{}-{test}", std::process::id())
}

fn path(name: &str) -> String {
    format!("/dev/shm/{name}")
}

fn exists(name: &str) -> bool {
    std::fs::symlink_metadata(path(name)).is_ok()
}

/// Temporaries `.<name>.*` left in /dev/shm.
fn temporaries(name: &str) -> Vec<String> {
    let prefix = format!(".{name}.");
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|f| f.starts_with(&prefix))
        .collect()
}

/// Removes the name when the test ends, passed or failed.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(path(&self.0));
    }
}

/// The payload as bytes that every process accesses atomically.
fn bytes(seg: &Segment) -> &[AtomicU8] {
    // SAFETY: the payload is valid for payload_len bytes while `seg` lives, AtomicU8 has
    // the size and alignment of u8, and these tests touch shared bytes only atomically.
    unsafe { std::slice::from_raw_parts(seg.payload().as_ptr().cast(), seg.payload_len()) }
}

fn child_role() -> Option<(String, String)> {
    let role = std::env::var(ROLE_VAR).ok()?;
    Some((role, std::env::var(NAME_VAR).expect("child gets a name")))
}

/// Starts this binary's test `test` as a child playing `role` on segment `name`.
fn spawn(test: &str, role: &str, name: &str) -> Peer {
    Peer::spawn(test, &[(ROLE_VAR, role), (NAME_VAR, name)])
}

#[test]
fn round_trip_between_processes() {
    if let Some((role, name)) = child_role() {
        assert_eq!(role, "reader");
        let seg = Segment::open(&name, KIND).unwrap();
        assert!(!seg.is_owner());
        assert_eq!(seg.kind(), KIND);
        assert_eq!(seg.params(), PARAMS_IN);
        assert_eq!(seg.payload_len(), 8192);
        assert_eq!(seg.creator().pid, std::os::unix::process::parent_id());
        assert!(seg.creator().is_alive());
        let b = bytes(&seg);
        for (i, byte) in b[..1024].iter().enumerate() {
            assert_eq!(byte.load(Ordering::Relaxed), (i * 7) as u8, "byte {i}");
        }
        for (i, byte) in b[4096..5120].iter().enumerate() {
            byte.store((i * 13) as u8, Ordering::Relaxed);
        }
        announce("@@DONE@@", "");
        return;
    }
    let name = unique("round-trip");
    let _cleanup = Cleanup(name.clone());
    let seg = Segment::create(&name, KIND, PARAMS_IN, 8192).unwrap();
    assert!(seg.is_owner());
    assert_eq!(seg.creator(), ProcessId::current());
    let b = bytes(&seg);
    assert!(
        b.iter().all(|x| x.load(Ordering::Relaxed) == 0),
        "payload starts zeroed"
    );
    for (i, byte) in b[..1024].iter().enumerate() {
        byte.store((i * 7) as u8, Ordering::Relaxed);
    }
    let mut peer = spawn("round_trip_between_processes", "reader", &name);
    peer.expect("@@DONE@@");
    peer.finish();
    for (i, byte) in b[4096..5120].iter().enumerate() {
        assert_eq!(byte.load(Ordering::Relaxed), (i * 13) as u8, "byte {i}");
    }
    assert!(b[5120..].iter().all(|x| x.load(Ordering::Relaxed) == 0));
}

#[test]
fn create_is_exclusive_and_leaves_no_temporaries() {
    let name = unique("exclusive");
    let _cleanup = Cleanup(name.clone());
    let first = Segment::create(&name, KIND, PARAMS_IN, 64).unwrap();
    match Segment::create(&name, KIND, [0; PARAMS], 64) {
        Err(SegmentError::AlreadyExists { name: n }) => assert_eq!(n, name),
        other => panic!("expected AlreadyExists, got {other:?}"),
    }
    assert_eq!(Segment::open(&name, KIND).unwrap().params(), PARAMS_IN);
    assert!(temporaries(&name).is_empty(), "{:?}", temporaries(&name));
    drop(first);

    let winners: usize = std::thread::scope(|s| {
        let name = &name;
        let racers: Vec<_> = (0..8)
            .map(|i| s.spawn(move || Segment::create(name, KIND, [i; PARAMS], 4096)))
            .collect();
        let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
        for r in &results {
            assert!(
                matches!(r, Ok(_) | Err(SegmentError::AlreadyExists { .. })),
                "{r:?}"
            );
        }
        results.iter().filter(|r| r.is_ok()).count()
    });
    assert_eq!(winners, 1);
    assert!(temporaries(&name).is_empty(), "{:?}", temporaries(&name));
    assert!(!exists(&name), "the winner's drop unlinked it");
}

#[test]
fn file_mode_is_0600() {
    let name = unique("mode");
    let _cleanup = Cleanup(name.clone());
    let _seg = Segment::create(&name, KIND, PARAMS_IN, 64).unwrap();
    let meta = std::fs::metadata(path(&name)).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
    assert_eq!(meta.len(), 128 + 64);
}

#[test]
fn missing_segments_are_not_found() {
    let name = unique("missing");
    match Segment::open(&name, KIND) {
        Err(e @ SegmentError::NotFound { .. }) => assert!(e.to_string().contains(&name)),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(matches!(
        Segment::unlink(&name),
        Err(SegmentError::NotFound { .. })
    ));
    assert!(!Segment::remove_if_stale(&name).unwrap());
}

#[test]
fn invalid_names_are_rejected_everywhere() {
    let long = "x".repeat(201);
    let cases = [
        ("", "name is empty"),
        (long.as_str(), "name is longer than 200 bytes"),
        ("a/b", "name contains '/'"),
        ("../escape", "name contains '/'"),
        (
            "has space",
            "name contains a character outside [A-Za-z0-9._-]",
        ),
        (".", "name starts with '.'"),
        ("..", "name starts with '.'"),
        (".hidden", "name starts with '.'"),
        ("a..b", "name contains \"..\""),
    ];
    for (name, reason) in cases {
        let results = [
            Segment::create(name, KIND, PARAMS_IN, 64).map(drop),
            Segment::open(name, KIND).map(drop),
            Segment::unlink(name),
            Segment::remove_if_stale(name).map(drop),
        ];
        for result in results {
            match result {
                Err(SegmentError::InvalidName { name: n, reason: r }) => {
                    assert_eq!((n.as_str(), r), (name, reason));
                }
                other => panic!("{name:?}: expected InvalidName, got {other:?}"),
            }
        }
    }
    let longest = format!("{:y<200}", unique("longest"));
    let _cleanup = Cleanup(longest.clone());
    assert!(Segment::create(&longest, KIND, [0; PARAMS], 0).is_ok());
}

#[test]
fn kind_mismatch_is_incompatible() {
    let name = unique("kind");
    let _cleanup = Cleanup(name.clone());
    let _seg = Segment::create(&name, KIND, PARAMS_IN, 64).unwrap();
    match Segment::open(&name, KIND + 1) {
        Err(e @ SegmentError::Incompatible { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&name), "{text}");
            assert!(
                text.contains(&format!(
                    "kind {KIND:#x} found, kind {:#x} expected",
                    KIND + 1
                )),
                "{text}"
            );
        }
        other => panic!("expected Incompatible, got {other:?}"),
    }
}

/// Writes `bytes` as the whole file `name` and opens it.
fn open_forged(name: &str, bytes: &[u8]) -> Result<Segment, SegmentError> {
    std::fs::write(path(name), bytes).unwrap();
    Segment::open(name, KIND)
}

fn fix_checksum(bytes: &mut [u8]) {
    let sum = crc32fast::hash(&bytes[..112]);
    bytes[112..116].copy_from_slice(&sum.to_le_bytes());
}

fn reason(result: Result<Segment, SegmentError>) -> String {
    match result {
        Err(SegmentError::Corrupt { reason, .. }) => format!("corrupt: {reason}"),
        Err(SegmentError::Incompatible { reason, .. }) => format!("incompatible: {reason}"),
        other => panic!("expected Corrupt or Incompatible, got {other:?}"),
    }
}

#[test]
fn forged_and_damaged_headers_are_rejected() {
    let name = unique("forged");
    let _cleanup = Cleanup(name.clone());
    let mut seg = Segment::create(&name, KIND, PARAMS_IN, 4096).unwrap();
    seg.persist();
    drop(seg);
    let good = std::fs::read(path(&name)).unwrap();
    assert_eq!(good.len(), 128 + 4096);

    let mut version = good.clone();
    version[8..12].copy_from_slice(&2u32.to_le_bytes());
    fix_checksum(&mut version);
    assert_eq!(
        reason(open_forged(&name, &version)),
        "incompatible: layout version 2 found, version 1 expected"
    );

    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NOTRINGP");
    assert_eq!(
        reason(open_forged(&name, &magic)),
        "incompatible: not a ringport segment"
    );
    // Not ours: remove_if_stale must leave it alone.
    assert!(matches!(
        Segment::remove_if_stale(&name),
        Err(SegmentError::Incompatible { .. })
    ));
    assert!(exists(&name));

    let mut damaged = good.clone();
    damaged[64] ^= 1;
    assert!(reason(open_forged(&name, &damaged)).starts_with("corrupt: header checksum"));

    let mut lengths = good.clone();
    lengths[40..48].copy_from_slice(&8192u64.to_le_bytes());
    fix_checksum(&mut lengths);
    assert_eq!(
        reason(open_forged(&name, &lengths)),
        "corrupt: total_len 4224 is not payload_offset 128 + payload_len 8192"
    );

    let mut longer = good.clone();
    longer.extend_from_slice(&[0; 4096]);
    assert_eq!(
        reason(open_forged(&name, &longer)),
        "corrupt: total_len 4224 differs from the file size 8320"
    );
    assert_eq!(
        reason(open_forged(&name, &good[..2048])),
        "corrupt: total_len 4224 differs from the file size 2048"
    );
    assert_eq!(
        reason(open_forged(&name, &good[..64])),
        "corrupt: file is 64 bytes, shorter than the 128-byte header"
    );
    assert_eq!(
        reason(open_forged(&name, &[])),
        "corrupt: file is 0 bytes, shorter than the 128-byte header"
    );

    // Corrupt segments are useless to everyone, so they count as stale.
    assert!(Segment::remove_if_stale(&name).unwrap());
    assert!(!exists(&name));

    // The intact bytes still open, and the header is what was created.
    let seg = open_forged(&name, &good).unwrap();
    assert_eq!(
        (seg.kind(), seg.params(), seg.payload_len()),
        (KIND, PARAMS_IN, 4096)
    );
}

#[test]
fn symlinks_and_non_files_are_refused() {
    let name = unique("symlink");
    let _cleanup = Cleanup(name.clone());
    std::os::unix::fs::symlink("/etc/hostname", path(&name)).unwrap();
    assert!(matches!(
        Segment::open(&name, KIND),
        Err(SegmentError::Incompatible { .. })
    ));
    assert!(matches!(
        Segment::remove_if_stale(&name),
        Err(SegmentError::Incompatible { .. })
    ));
    assert!(matches!(
        Segment::create(&name, KIND, PARAMS_IN, 0),
        Err(SegmentError::AlreadyExists { .. })
    ));
    std::fs::remove_file(path(&name)).unwrap();
    std::fs::create_dir(path(&name)).unwrap();
    let opened = Segment::open(&name, KIND);
    let removed = Segment::remove_if_stale(&name);
    std::fs::remove_dir(path(&name)).unwrap();
    assert!(
        matches!(opened, Err(SegmentError::Incompatible { .. })),
        "{opened:?}"
    );
    assert!(
        matches!(removed, Err(SegmentError::Incompatible { .. })),
        "{removed:?}"
    );
}

#[test]
fn creator_drop_unlinks_but_peers_keep_their_mapping() {
    if let Some((role, name)) = child_role() {
        assert_eq!(role, "creator");
        let seg = Segment::create(&name, KIND, PARAMS_IN, 4096).unwrap();
        announce("@@READY@@", "");
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        assert_eq!(
            bytes(&seg)[100].load(Ordering::Relaxed),
            42,
            "peer's write is visible"
        );
        drop(seg);
        announce("@@DROPPED@@", "");
        return;
    }
    let name = unique("creator-drop");
    let _cleanup = Cleanup(name.clone());
    let mut creator = spawn(
        "creator_drop_unlinks_but_peers_keep_their_mapping",
        "creator",
        &name,
    );
    creator.expect("@@READY@@");
    let peer = Segment::open(&name, KIND).unwrap();
    assert_eq!(peer.creator().pid, creator.pid());
    bytes(&peer)[100].store(42, Ordering::Relaxed);
    // An opener dropping does not unlink.
    drop(Segment::open(&name, KIND).unwrap());
    assert!(exists(&name));
    creator.tell("go");
    creator.expect("@@DROPPED@@");
    creator.finish();

    assert!(matches!(
        Segment::open(&name, KIND),
        Err(SegmentError::NotFound { .. })
    ));
    let b = bytes(&peer);
    assert_eq!(b[100].load(Ordering::Relaxed), 42);
    for (i, byte) in b.iter().enumerate() {
        byte.store(i as u8, Ordering::Relaxed);
    }
    assert!(b
        .iter()
        .enumerate()
        .all(|(i, x)| x.load(Ordering::Relaxed) == i as u8));
}

#[test]
fn persist_keeps_the_name() {
    let name = unique("persist");
    let _cleanup = Cleanup(name.clone());
    let mut seg = Segment::create(&name, KIND, PARAMS_IN, 64).unwrap();
    bytes(&seg)[0].store(9, Ordering::Relaxed);
    seg.persist();
    assert!(seg.is_owner());
    drop(seg);
    let reopened = Segment::open(&name, KIND).unwrap();
    assert_eq!(bytes(&reopened)[0].load(Ordering::Relaxed), 9);
    Segment::unlink(&name).unwrap();
    assert!(matches!(
        Segment::open(&name, KIND),
        Err(SegmentError::NotFound { .. })
    ));
}

#[test]
fn owner_drop_spares_a_new_segment_under_its_old_name() {
    let name = unique("reused-name");
    let _cleanup = Cleanup(name.clone());
    let old = Segment::create(&name, KIND, [1; PARAMS], 64).unwrap();
    Segment::unlink(&name).unwrap();
    let new = Segment::create(&name, KIND, [2; PARAMS], 64).unwrap();
    drop(old);
    assert_eq!(Segment::open(&name, KIND).unwrap().params(), [2; PARAMS]);
    drop(new);
    assert!(!exists(&name));
}

#[test]
fn killed_creator_leaves_a_stale_segment() {
    if let Some((role, name)) = child_role() {
        assert_eq!(role, "doomed-creator");
        let _seg = Segment::create(&name, KIND, PARAMS_IN, 4096).unwrap();
        announce("@@READY@@", "");
        // The parent kills us; the bound only matters if it fails to.
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let name = unique("stale");
    let _cleanup = Cleanup(name.clone());
    let mut creator = spawn(
        "killed_creator_leaves_a_stale_segment",
        "doomed-creator",
        &name,
    );
    creator.expect("@@READY@@");
    assert!(
        !Segment::remove_if_stale(&name).unwrap(),
        "creator is alive"
    );
    let peer = Segment::open(&name, KIND).unwrap();
    assert_eq!(peer.creator().pid, creator.pid());
    assert!(peer.creator().is_alive());

    creator.kill(true);
    assert!(!peer.creator().is_alive());
    assert!(exists(&name), "SIGKILL leaves the name behind");
    assert!(Segment::remove_if_stale(&name).unwrap());
    assert!(!exists(&name));
    assert!(!Segment::remove_if_stale(&name).unwrap());
    assert!(matches!(
        Segment::open(&name, KIND),
        Err(SegmentError::NotFound { .. })
    ));
    assert_eq!(bytes(&peer).len(), 4096);
}

#[test]
fn stale_temporaries_are_collected() {
    let name = unique("temps");
    let _cleanup = Cleanup(name.clone());
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let dead = format!(".{name}.{dead_pid}.3.tmp");
    let live = format!(".{name}.{}.999999.tmp", std::process::id());
    let _dead_cleanup = Cleanup(dead.clone());
    let _live_cleanup = Cleanup(live.clone());
    std::fs::write(path(&dead), b"half made").unwrap();
    std::fs::write(path(&live), b"in progress").unwrap();

    assert!(!Segment::remove_if_stale(&name).unwrap());
    assert!(!exists(&dead), "a dead creator's temporary is removed");
    assert!(exists(&live), "a live creator's temporary is kept");
}

#[test]
fn permission_denied_is_reported() {
    if let Some((role, name)) = child_role() {
        assert_eq!(role, "unprivileged");
        // Per-thread setuid is enough: this thread does all the opening.
        if let Err(e) = rustix::thread::set_thread_uid(rustix::process::Uid::from_raw(65534)) {
            announce("@@SKIP@@", format!("cannot drop privileges: {e}"));
            return;
        }
        assert!(matches!(
            Segment::open(&name, KIND),
            Err(SegmentError::PermissionDenied { .. })
        ));
        assert!(matches!(
            Segment::remove_if_stale(&name),
            Err(SegmentError::PermissionDenied { .. })
        ));
        // /dev/shm is sticky, so only the owner may unlink.
        assert!(matches!(
            Segment::unlink(&name),
            Err(SegmentError::PermissionDenied { .. })
        ));
        announce("@@DONE@@", "");
        return;
    }
    let name = unique("permission");
    let _cleanup = Cleanup(name.clone());
    let _seg = Segment::create(&name, KIND, PARAMS_IN, 64).unwrap();
    if rustix::process::geteuid().is_root() {
        // Root bypasses file modes, so a child drops to `nobody` and tries.
        let mut peer = spawn("permission_denied_is_reported", "unprivileged", &name);
        let line = read_outcome(&mut peer);
        peer.finish();
        if let Some(note) = line.strip_prefix("SKIP") {
            eprintln!("note: PermissionDenied not exercised as root:{note}");
        }
    } else {
        std::fs::set_permissions(path(&name), std::fs::Permissions::from_mode(0o000)).unwrap();
        assert!(matches!(
            Segment::open(&name, KIND),
            Err(SegmentError::PermissionDenied { .. })
        ));
    }
    assert!(exists(&name));
}

/// Waits for `@@DONE@@` or `@@SKIP@@` from `peer`, returning "DONE" or "SKIP <why>".
fn read_outcome(peer: &mut Peer) -> String {
    loop {
        let line = peer.next_line("an outcome");
        if line.contains("@@DONE@@") {
            return "DONE".into();
        }
        if let Some((_, why)) = line.split_once("@@SKIP@@") {
            return format!("SKIP {}", why.trim());
        }
    }
}

#[test]
fn full_dev_shm_fails_at_creation() {
    let vfs = rustix::fs::statvfs("/dev/shm").unwrap();
    if vfs.f_blocks == 0 {
        // An unlimited tmpfs would try to satisfy any request from memory.
        eprintln!("note: /dev/shm has no size limit; NoSpace not exercised");
        return;
    }
    // tmpfs refuses a fallocate larger than the whole filesystem before allocating
    // anything, so this cannot fill /dev/shm even briefly.
    let size = vfs.f_blocks * vfs.f_frsize * 2 + (1 << 30);
    let name = unique("no-space");
    let _cleanup = Cleanup(name.clone());
    match Segment::create(&name, KIND, PARAMS_IN, size as usize) {
        Err(e @ SegmentError::NoSpace { .. }) => {
            assert!(matches!(e, SegmentError::NoSpace { bytes, .. } if bytes == size + 128));
            assert!(e.to_string().contains(&name));
        }
        other => panic!("expected NoSpace, got {other:?}"),
    }
    assert!(!exists(&name));
    assert!(temporaries(&name).is_empty());
}
