//! Regression benchmarks of `SharedState`, a compact subset of `ringport bench --only
//! state`: uncontended reads of a 64-byte value by key against an unsynchronised
//! `HashMap` lookup plus copy, reads through entry handles against a plain copy, and
//! `set` of a 64-byte value by key. One thread, 1024 keys like `sensor.0042.temperature`
//! visited in a fixed shuffled order, the same for every bench.
//!
//! Criterion tracks each number against its last run; the comparison between rows (with
//! percentiles, read throughput beside a writer and wake-up latency) is
//! `cargo run --release -- bench --only state`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringport::state::{SharedState, StateOptions};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

/// Keys in every table.
const KEYS: usize = 1024;

/// A 64-byte value.
type Value = [u8; 64];

/// The keys in visiting order (a fixed shuffle) and their values.
fn keys() -> Vec<(String, Value)> {
    let mut order: Vec<usize> = (0..KEYS).collect();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..KEYS).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        order.swap(i, (x % (i as u64 + 1)) as usize);
    }
    order
        .into_iter()
        .map(|id| {
            let mut v = [0u8; 64];
            v[..8].copy_from_slice(&(id as u64).to_le_bytes());
            v[56..].copy_from_slice(&(!(id as u64)).to_le_bytes());
            (format!("sensor.{id:04}.temperature"), v)
        })
        .collect()
}

/// A heap table holding `keys`.
fn table(keys: &[(String, Value)]) -> SharedState {
    let state = SharedState::new(StateOptions {
        capacity: KEYS,
        max_key_len: 32,
        max_value_len: 64,
    });
    for (k, v) in keys {
        state.set(k, v).expect("set");
    }
    state
}

/// Runs `op` on the keys in visiting order, one per iteration.
fn rotating(c: &mut Criterion, name: &str, mut op: impl FnMut(usize)) {
    let mut next = 0;
    c.bench_function(name, |b| {
        b.iter(|| {
            op(next);
            next = (next + 1) % KEYS;
        })
    });
}

/// Reads by key: `SharedState::get_pod` against `HashMap` get plus copy.
fn by_key(c: &mut Criterion) {
    let keys = keys();
    let map: HashMap<String, Value> = keys.iter().cloned().collect();
    rotating(c, "state/hashmap-get", |i| {
        let v: Value = *map.get(&keys[i].0).expect("present");
        assert_eq!(black_box(v)[..8], keys[i].1[..8], "wrong value");
    });
    let state = table(&keys);
    rotating(c, "state/get-pod", |i| {
        let got = state.get_pod::<Value>(&keys[i].0).expect("get");
        let v = got.expect("present").value;
        assert_eq!(black_box(v)[..8], keys[i].1[..8], "wrong value");
    });
}

/// Reads through handles: `Entry::get_pod` against a plain copy from a table of values.
fn entries(c: &mut Criterion) {
    let keys = keys();
    let values: Vec<Value> = keys.iter().map(|k| k.1).collect();
    rotating(c, "state/plain-copy", |i| {
        let v: Value = *black_box(&values[i]);
        assert_eq!(black_box(v)[..8], keys[i].1[..8], "wrong value");
    });
    let state = table(&keys);
    let handles: Vec<_> = keys
        .iter()
        .map(|k| state.entry(&k.0).expect("entry"))
        .collect();
    rotating(c, "state/entry-get-pod", |i| {
        let got = handles[i].get_pod::<Value>().expect("get");
        let v = got.expect("present").value;
        assert_eq!(black_box(v)[..8], keys[i].1[..8], "wrong value");
    });
}

/// Writes by key: `SharedState::set` of a 64-byte value; every version is the next.
fn writes(c: &mut Criterion) {
    let keys = keys();
    let state = table(&keys);
    let mut last = state.version();
    let mut g = c.benchmark_group("state");
    g.throughput(Throughput::Elements(1));
    let mut next = 0;
    g.bench_function("set", |b| {
        b.iter(|| {
            let (k, v) = &keys[next];
            let version = state.set(k, v).expect("set");
            assert_eq!(version, last + 1, "a write took no version or two");
            last = version;
            next = (next + 1) % KEYS;
        })
    });
    g.finish();
}

/// Short runs: these benches track regressions, `ringport bench` does the comparison.
fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
}

criterion_group! {
    name = benches;
    config = config();
    targets = by_key, entries, writes
}
criterion_main!(benches);
