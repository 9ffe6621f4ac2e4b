//! The fuzz targets of `fuzz/` as ordinary tests on stable Rust.
//!
//! Each target's logic lives in `fuzz/src/targets.rs` (those of `ringport::state` in
//! `fuzz/src/state.rs`), which libFuzzer drives through `fuzz/fuzz_targets/` and which
//! this file includes as modules. The tests replay every file of `fuzz/corpus/<target>/`
//! and then `RINGPORT_FUZZ_REPLAY_RANDOM` (default 2000) pseudo-random inputs per
//! target: random bytes for the operation targets, and mutations of freshly made channel
//! files for `segment_open`, since random bytes would never get past the header's magic.
//!
//! A failing input is named (corpus file) or printed in hex (random input); saved as a
//! file under `fuzz/corpus/<target>/`, it replays here and under `cargo fuzz run`.

#[path = "../fuzz/src/support.rs"]
mod support;
#[path = "../fuzz/src/targets.rs"]
mod targets;

#[path = "../fuzz/src/state.rs"]
mod state;

// Channel files are damaged by this file's own `mutate`: the shared seed mutator goes unused.
#[allow(dead_code)]
#[path = "common/replay.rs"]
mod replay;

use std::fs;
use std::sync::atomic::{AtomicU64, Ordering};

use replay::{bounded, corpus_dir, random_count, replay_corpus, run_input, Rng};
use ringport::MessageChannel;

fn replay_random(run: fn(&[u8]), seed: u64, make: impl Fn(&mut Rng) -> Vec<u8>) {
    let mut rng = Rng(seed);
    for i in 0..random_count() {
        let data = make(&mut rng);
        run_input("random input", i, &data, run);
    }
}

fn random_ops(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(1024);
    rng.bytes(len)
}

#[test]
fn frame_ops_replay() {
    bounded("frame_ops", || {
        replay_corpus("frame_ops", targets::frame_ops);
        replay_random(targets::frame_ops, 0xF8A3_E0B5_0000_0001, random_ops);
    });
}

#[test]
fn pod_ops_replay() {
    bounded("pod_ops", || {
        replay_corpus("pod_ops", targets::pod_ops);
        replay_random(targets::pod_ops, 0x90D0_B5E5_0000_0002, random_ops);
    });
}

#[test]
fn hostile_peer_replay() {
    bounded("hostile_peer", || {
        replay_corpus("hostile_peer", targets::hostile_peer);
        replay_random(targets::hostile_peer, 0x4057_11E0_0000_0003, random_ops);
    });
}

#[test]
fn state_ops_replay() {
    bounded("state_ops", || {
        replay_corpus("state_ops", state::state_ops);
        replay_random(state::state_ops, 0x57A7_E0B5_0000_0005, random_ops);
    });
}

#[test]
fn state_hostile_replay() {
    bounded("state_hostile", || {
        replay_corpus("state_hostile", state::state_hostile);
        replay_random(state::state_hostile, 0x57A7_E405_0000_0006, random_ops);
    });
}

#[test]
fn segment_open_replay() {
    bounded("segment_open", || {
        replay_corpus("segment_open", targets::segment_open);
        let images = [
            channel_image(Flavor::Frames, Traffic::Pending),
            channel_image(Flavor::Frames, Traffic::Joined),
            channel_image(Flavor::Pod, Traffic::Pending),
            channel_image(Flavor::Pod, Traffic::None),
        ];
        replay_random(targets::segment_open, 0x5E6_0BE7_0000_0004, |rng| {
            let image = &images[rng.below(images.len())];
            mutate(rng, image)
        });
    });
}

/// Damages a channel file the ways a mutator would: flipped bytes (a fifth of them in
/// the header), overwritten words, and now and then a cut or extra bytes, which the
/// channel layout rejects outright. The target then also tries the damage with the
/// header's lengths and checksum forged to match.
fn mutate(rng: &mut Rng, image: &[u8]) -> Vec<u8> {
    let mut data = image.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(10) {
            0 | 1 => {
                let at = rng.below(data.len().min(128));
                data[at] ^= 1 + rng.below(255) as u8;
            }
            2..=4 => {
                let at = rng.below(data.len());
                data[at] ^= 1 + rng.below(255) as u8;
            }
            5..=7 => {
                let at = rng.below(data.len() / 8) * 8;
                let word = rng.next() >> (8 * rng.below(8));
                data[at..at + 8].copy_from_slice(&word.to_le_bytes());
            }
            8 => data.truncate(rng.below(data.len() + 1)),
            _ => {
                let extra = rng.below(300);
                data.extend(rng.bytes(extra));
            }
        }
        if data.len() < 8 {
            break;
        }
    }
    data
}

#[derive(Clone, Copy, Debug)]
enum Flavor {
    Frames,
    Pod,
}

#[derive(Clone, Copy, Debug)]
enum Traffic {
    /// Just created: the second side's ends are free.
    None,
    /// Created, with messages waiting for the side that will open it.
    Pending,
    /// Both sides attached and messages waiting each way: another open is Busy.
    Joined,
}

/// The bytes of a real channel file, as `MessageChannel::create` lays it out.
fn channel_image(flavor: Flavor, traffic: Traffic) -> Vec<u8> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "rpfz-image-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let read =
        || fs::read(format!("/dev/shm/{name}")).unwrap_or_else(|e| panic!("reading {name}: {e}"));
    match flavor {
        Flavor::Frames => {
            let mut creator = MessageChannel::create(&name, 256).expect("create a channel");
            let _opener = match traffic {
                Traffic::None => None,
                Traffic::Pending => {
                    creator.post_batch(&[&b"hello"[..], &[7; 8], b""]).unwrap();
                    None
                }
                Traffic::Joined => {
                    let mut opener = MessageChannel::open(&name).expect("open the channel");
                    creator.post_message(&[1; 40]).unwrap();
                    opener.post_message(b"reply").unwrap();
                    Some(opener)
                }
            };
            read()
        }
        Flavor::Pod => {
            let mut creator =
                MessageChannel::create_pod::<u64>(&name, 20).expect("create a pod channel");
            let _opener = match traffic {
                Traffic::None => None,
                Traffic::Pending => {
                    creator.post_batch(&[1, 2, 3, 4, 5, 6, 7, 8, 9]).unwrap();
                    None
                }
                Traffic::Joined => {
                    let mut opener =
                        MessageChannel::open_pod::<u64>(&name).expect("open the channel");
                    creator.post_message(11).unwrap();
                    opener.post_message(22).unwrap();
                    Some(opener)
                }
            };
            read()
        }
    }
}

/// The hand-made seeds of `segment_open`: real channel files and the classic damages.
fn segment_open_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let frames = channel_image(Flavor::Frames, Traffic::Pending);
    let pod = channel_image(Flavor::Pod, Traffic::Pending);
    let with = |image: &[u8], at: usize, bytes: &[u8], forge: bool| {
        let mut d = image.to_vec();
        d[at..at + bytes.len()].copy_from_slice(bytes);
        if forge {
            d = targets::forge_header(&d).expect("a changed header");
        }
        d
    };
    // The first frame's header (or pod stamp) in ring 1→2: after the 128-byte segment
    // header and the ring's 512-byte control block. Ring 2→1 of the 256-byte frame
    // channel starts 768 bytes into the payload; its `released` word comes first.
    let first_frame = 128 + 512;
    let released_2to1 = 128 + 768;
    vec![
        ("valid-frames-pending", frames.clone()),
        (
            "valid-frames-empty",
            channel_image(Flavor::Frames, Traffic::None),
        ),
        (
            "valid-frames-joined",
            channel_image(Flavor::Frames, Traffic::Joined),
        ),
        ("valid-pod-pending", pod.clone()),
        ("valid-pod-empty", channel_image(Flavor::Pod, Traffic::None)),
        (
            "valid-pod-joined",
            channel_image(Flavor::Pod, Traffic::Joined),
        ),
        ("bad-magic", with(&frames, 0, b"RINGPORX", false)),
        ("bad-version", with(&frames, 8, &2u32.to_le_bytes(), false)),
        ("bad-checksum", with(&frames, 70, &[0xff], false)),
        ("bad-kind", with(&frames, 12, b"TROP", true)),
        ("bad-flavor", with(&frames, 64, &3u64.to_le_bytes(), true)),
        (
            "bad-max-frame",
            with(&frames, 80, &(1u64 << 20).to_le_bytes(), true),
        ),
        ("bad-pod-size", with(&pod, 80, &4u64.to_le_bytes(), true)),
        (
            "bad-pod-capacity",
            with(&pod, 72, &u64::MAX.to_le_bytes(), true),
        ),
        ("truncated-header", frames[..100].to_vec()),
        (
            "truncated-payload",
            targets::forge_header(&frames[..frames.len() - 64]).expect("a changed header"),
        ),
        (
            "corrupt-frame-length",
            with(&frames, first_frame, &(1u32 << 30).to_le_bytes(), false),
        ),
        (
            "corrupt-frame-sequence",
            with(&frames, first_frame + 4, &[9], false),
        ),
        (
            "corrupt-pod-stamp",
            with(&pod, first_frame, &0xFFu32.to_le_bytes(), false),
        ),
        (
            "corrupt-released",
            with(&frames, released_2to1, &u64::MAX.to_le_bytes(), false),
        ),
    ]
}

/// Rewrites `fuzz/corpus/segment_open/` from the current layout. Run it after a layout
/// change, when `segment_open_seeds_are_current` fails:
/// `cargo test --test fuzz_replay write_segment_open_seeds -- --ignored`.
#[test]
#[ignore = "rewrites the committed seed corpus"]
fn write_segment_open_seeds() {
    let dir = corpus_dir("segment_open");
    fs::create_dir_all(&dir).expect("creating the corpus folder");
    for (name, data) in segment_open_seeds() {
        assert!(data.len() <= 4096, "seed {name} is {} bytes", data.len());
        fs::write(dir.join(name), data).unwrap_or_else(|e| panic!("writing seed {name}: {e}"));
    }
}

/// The committed channel-file seeds still open as channels, so the fuzzer starts from
/// files that get past the header, and the harness's checksum forger agrees with
/// ringport's.
#[test]
fn segment_open_seeds_are_current() {
    for (name, image) in segment_open_seeds()
        .into_iter()
        .filter(|(n, _)| n.starts_with("valid-"))
    {
        assert_eq!(
            targets::forge_header(&image),
            None,
            "forging changed {name}"
        );
        let committed = fs::read(corpus_dir("segment_open").join(name)).unwrap_or_else(|e| {
            panic!("seed {name}: {e}; run write_segment_open_seeds (see its doc)")
        });
        let (pod, busy) = (name.contains("pod"), name.contains("joined"));
        let shm = format!("rpfz-check-{}-{name}", std::process::id());
        fs::write(format!("/dev/shm/{shm}"), &committed).expect("writing a segment file");
        let opened = if pod {
            MessageChannel::open_pod::<u64>(&shm).map(drop)
        } else {
            MessageChannel::open(&shm).map(drop)
        };
        let _ = fs::remove_file(format!("/dev/shm/{shm}"));
        match (opened, busy) {
            (Ok(()), false) | (Err(ringport::ConnectError::Busy { .. }), true) => {}
            (other, _) => panic!(
                "seed {name} no longer opens as the seed it was ({other:?}): \
                 run write_segment_open_seeds (see its doc)"
            ),
        }
    }
}
