//! Behaviour of the store and the thread-safe cache under every policy.

use std::sync::Arc;
use std::thread;
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::*;
use crate::error::Coded;

fn config(policy: PolicyKind, max_entries: u64, max_bytes: u64) -> CacheConfig {
    CacheConfig {
        max_entries,
        max_bytes,
        default_ttl: None,
        policy,
        enable_warming: true,
    }
}

fn floats(n: usize, fill: f32) -> CacheValue {
    CacheValue::Float32(vec![fill; n].into())
}

const ALL: [PolicyKind; 4] = [
    PolicyKind::Lru,
    PolicyKind::Lfu,
    PolicyKind::Ttl,
    PolicyKind::TinyLfu,
];

#[test]
fn stores_and_reads_back_every_value_kind() {
    let mut store = Store::new(config(PolicyKind::TinyLfu, 100, 1 << 20));
    let values = [
        floats(4, 1.5),
        CacheValue::Float64(vec![1.0, -2.0].into()),
        CacheValue::Int16(vec![-3, 4].into()),
        CacheValue::Uint8(vec![5, 6].into()),
        CacheValue::Buffer(vec![7].into()),
        CacheValue::Structured(std::sync::Arc::new(crate::cache::structured::Node::Object(
            vec![("a".into(), crate::cache::structured::Node::Number(1.5))],
        ))),
    ];
    for (i, v) in values.iter().enumerate() {
        store
            .insert(&format!("k{i}"), v.clone(), EntryOptions::default())
            .unwrap();
    }
    for (i, v) in values.iter().enumerate() {
        assert_eq!(store.get(&format!("k{i}")).as_ref(), Some(v));
    }
    assert_eq!(store.get("absent"), None);
    let stats = store.stats();
    assert_eq!((stats.counters.hits, stats.counters.misses), (6, 1));
}

#[test]
fn never_exceeds_entry_or_byte_limits_under_any_policy() {
    for policy in ALL {
        let max_bytes = 40 * (ENTRY_OVERHEAD + 8 + 400);
        let mut store = Store::new(config(policy, 50, max_bytes));
        let mut rng = SmallRng::seed_from_u64(7);
        for i in 0..5_000u32 {
            let key = format!("key{:04}", rng.random_range(0..500u32));
            let n = rng.random_range(1..200usize);
            store
                .insert(&key, floats(n, i as f32), EntryOptions::default())
                .unwrap();
            assert!(store.len() <= 50, "{policy:?}: {} entries", store.len());
            assert!(
                store.bytes() <= max_bytes,
                "{policy:?}: {} bytes",
                store.bytes()
            );
            store.get(&format!("key{:04}", rng.random_range(0..500u32)));
        }
        let stats = store.stats();
        assert!(stats.counters.evictions > 0, "{policy:?} evicted nothing");
        let live: u64 = store
            .keys()
            .iter()
            .map(|k| {
                let v = store.get(k).unwrap();
                Store::weight_of(k, &v, &[])
            })
            .sum();
        assert_eq!(live, store.bytes(), "{policy:?}: byte accounting drifted");
    }
}

#[test]
fn a_value_larger_than_the_limit_is_refused_and_evicts_nothing() {
    let mut store = Store::new(config(PolicyKind::Lru, 10, 2_000));
    store
        .insert("small", floats(10, 1.0), EntryOptions::default())
        .unwrap();
    let err = store
        .insert("huge", floats(1_000, 1.0), EntryOptions::default())
        .unwrap_err();
    assert_eq!(err.code(), "E_TOO_LARGE");
    assert!(err.to_string().contains("huge"));
    assert!(store.contains("small"));
    assert_eq!(store.stats().counters.evictions, 0);
}

#[test]
fn lru_evicts_the_least_recently_read() {
    let mut store = Store::new(config(PolicyKind::Lru, 3, 1 << 20));
    for k in ["a", "b", "c"] {
        store
            .insert(k, floats(1, 0.0), EntryOptions::default())
            .unwrap();
    }
    store.get("a");
    store
        .insert("d", floats(1, 0.0), EntryOptions::default())
        .unwrap();
    assert!(!store.contains("b"));
    assert!(store.contains("a") && store.contains("c") && store.contains("d"));
}

#[test]
fn lfu_evicts_the_least_frequently_read() {
    let mut store = Store::new(config(PolicyKind::Lfu, 3, 1 << 20));
    for k in ["a", "b", "c"] {
        store
            .insert(k, floats(1, 0.0), EntryOptions::default())
            .unwrap();
    }
    for _ in 0..3 {
        store.get("a");
        store.get("c");
    }
    store.get("b");
    store.get("b");
    store.get("b");
    store.get("b");
    store.get("a");
    store
        .insert("d", floats(1, 0.0), EntryOptions::default())
        .unwrap();
    // a: 5 reads, b: 4, c: 3 -> c goes.
    assert!(!store.contains("c"));
    assert!(store.contains("a") && store.contains("b") && store.contains("d"));
}

#[test]
fn ttl_policy_evicts_the_entry_closest_to_expiry() {
    let mut store = Store::new(config(PolicyKind::Ttl, 3, 1 << 20));
    let ttl = |s| EntryOptions {
        ttl: Ttl::After(Duration::from_secs(s)),
        ..Default::default()
    };
    store.insert("long", floats(1, 0.0), ttl(300)).unwrap();
    store.insert("short", floats(1, 0.0), ttl(10)).unwrap();
    store
        .insert("none", floats(1, 0.0), EntryOptions::default())
        .unwrap();
    store.insert("new", floats(1, 0.0), ttl(100)).unwrap();
    assert!(!store.contains("short"));
    assert!(store.contains("long") && store.contains("none") && store.contains("new"));
}

#[test]
fn tinylfu_keeps_popular_keys_through_a_scan_where_lru_loses_them() {
    // 60 hot keys read in turn, each followed by one never-repeated scan key:
    // a hot key's reuse distance (120 keys) exceeds the capacity (100).
    let hot_hit_rate = |policy| {
        let mut store = Store::new(config(policy, 100, 1 << 24));
        let read = |store: &mut Store, k: &str| {
            let hit = store.get(k).is_some();
            if !hit {
                store
                    .insert(k, floats(1, 0.0), EntryOptions::default())
                    .unwrap();
            }
            hit
        };
        let mut hot_hits = 0;
        for i in 0..20_000 {
            hot_hits += read(&mut store, &format!("hot{}", i % 60)) as u32;
            read(&mut store, &format!("scan{i}"));
        }
        hot_hits as f64 / 20_000.0
    };
    let (lru, tiny) = (
        hot_hit_rate(PolicyKind::Lru),
        hot_hit_rate(PolicyKind::TinyLfu),
    );
    assert!(tiny > 0.9, "tinylfu hot hit rate {tiny:.3}");
    assert!(lru < 0.1, "lru hot hit rate {lru:.3}");
}

#[test]
fn tinylfu_beats_lru_on_a_skewed_trace() {
    let ratio = |policy| {
        let mut store = Store::new(config(policy, 500, 1 << 30));
        let mut rng = SmallRng::seed_from_u64(42);
        // Zipf-like: key = floor(n^u) for u uniform in [0,1) favours small keys.
        let mut hits = 0;
        for _ in 0..200_000 {
            let u: f64 = rng.random();
            let k = format!("{}", (10_000f64.powf(u)) as u64);
            if store.get(&k).is_some() {
                hits += 1;
            } else {
                store
                    .insert(&k, floats(1, 0.0), EntryOptions::default())
                    .unwrap();
            }
        }
        hits as f64 / 200_000.0
    };
    let (lru, tiny) = (ratio(PolicyKind::Lru), ratio(PolicyKind::TinyLfu));
    assert!(tiny > lru + 0.02, "tinylfu {tiny:.3} vs lru {lru:.3}");
}

#[test]
fn expired_entries_are_never_returned_and_are_reclaimed_without_a_read() {
    let cache = FeatureCache::new(config(PolicyKind::TinyLfu, 100, 1 << 20));
    let short = EntryOptions {
        ttl: Ttl::After(Duration::from_millis(30)),
        ..Default::default()
    };
    let inserted = std::time::Instant::now();
    cache.insert("a", floats(8, 1.0), short.clone()).unwrap();
    cache.insert("b", floats(8, 1.0), short).unwrap();
    cache
        .insert("keep", floats(8, 1.0), EntryOptions::default())
        .unwrap();
    let fresh = cache.get("a").is_some();
    // Only meaningful if this thread did not stall past the TTL meanwhile.
    if inserted.elapsed() < Duration::from_millis(30) {
        assert!(fresh, "a live entry is returned");
    }
    thread::sleep(Duration::from_millis(35));
    assert!(cache.get("a").is_none(), "an expired entry was returned");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while cache.len() > 1 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        cache.len(),
        1,
        "the reaper did not reclaim the expired entry"
    );
    assert_eq!(cache.stats().counters.expirations, 2);
    assert!(cache.contains("keep"));
}

#[test]
fn default_ttl_applies_unless_an_entry_says_never() {
    let mut cfg = config(PolicyKind::Lru, 100, 1 << 20);
    cfg.default_ttl = Some(Duration::from_millis(10));
    let mut store = Store::new(cfg);
    store
        .insert("dies", floats(1, 0.0), EntryOptions::default())
        .unwrap();
    let forever = EntryOptions {
        ttl: Ttl::Never,
        ..Default::default()
    };
    store.insert("lives", floats(1, 0.0), forever).unwrap();
    thread::sleep(Duration::from_millis(15));
    assert!(store.get("dies").is_none());
    assert!(store.get("lives").is_some());
}

#[test]
fn invalidates_by_tag_and_by_prefix() {
    let mut store = Store::new(config(PolicyKind::TinyLfu, 100, 1 << 20));
    let tagged = |tags: &[&str]| EntryOptions {
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    store
        .insert("mel:1", floats(1, 0.0), tagged(&["song-a"]))
        .unwrap();
    store
        .insert("mel:2", floats(1, 0.0), tagged(&["song-b"]))
        .unwrap();
    store
        .insert("mfcc:1", floats(1, 0.0), tagged(&["song-a", "mfcc"]))
        .unwrap();
    assert_eq!(store.invalidate(&Invalidation::Tag("song-a".into())), 2);
    assert_eq!(store.keys(), vec!["mel:2".to_string()]);
    store
        .insert("mel:3", floats(1, 0.0), EntryOptions::default())
        .unwrap();
    assert_eq!(store.invalidate(&Invalidation::Prefix("mel:".into())), 2);
    assert!(store.is_empty());
    assert_eq!(store.invalidate(&Invalidation::Tag("song-a".into())), 0);
}

#[test]
fn replacing_a_value_updates_bytes_and_tags() {
    let mut store = Store::new(config(PolicyKind::TinyLfu, 100, 1 << 20));
    let tagged = EntryOptions {
        tags: vec!["old".into()],
        ..Default::default()
    };
    store.insert("k", floats(100, 1.0), tagged).unwrap();
    store
        .insert("k", floats(10, 2.0), EntryOptions::default())
        .unwrap();
    assert_eq!(store.len(), 1);
    assert_eq!(store.bytes(), Store::weight_of("k", &floats(10, 2.0), &[]));
    assert_eq!(store.invalidate(&Invalidation::Tag("old".into())), 0);
    assert_eq!(store.get("k"), Some(floats(10, 2.0)));
}

#[test]
fn hits_on_computed_values_count_time_saved() {
    let mut store = Store::new(config(PolicyKind::Lru, 10, 1 << 20));
    let costly = EntryOptions {
        compute_cost: Duration::from_millis(40),
        ..Default::default()
    };
    store.insert("k", floats(1, 0.0), costly).unwrap();
    store.get("k");
    store.get("k");
    assert_eq!(store.stats().counters.time_saved, Duration::from_millis(80));
    store.reset_stats();
    assert_eq!(store.stats().counters.hits, 0);
}

#[test]
fn threads_share_one_cache_safely() {
    let cache = FeatureCache::new(config(PolicyKind::TinyLfu, 1_000, 1 << 22));
    let workers: Vec<_> = (0..4)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                let mut rng = SmallRng::seed_from_u64(t);
                for i in 0..20_000u32 {
                    let key = format!("k{}", rng.random_range(0..3_000u32));
                    match cache.get(&key) {
                        Some(CacheValue::Float32(v)) => assert_eq!(v.len(), 16),
                        Some(other) => panic!("unexpected {other:?}"),
                        None => cache
                            .insert(&key, floats(16, i as f32), EntryOptions::default())
                            .unwrap(),
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let stats = cache.stats();
    assert!(stats.entries <= 1_000);
    assert_eq!(stats.counters.hits + stats.counters.misses, 80_000);
}

#[test]
fn a_dropped_cache_is_released() {
    let cache = FeatureCache::new(config(PolicyKind::Lru, 10, 1 << 20));
    let value = floats(4, 1.0);
    cache
        .insert("k", value.clone(), EntryOptions::default())
        .unwrap();
    drop(cache);
    let CacheValue::Float32(data) = value else {
        unreachable!()
    };
    assert_eq!(Arc::strong_count(&data), 1);
}

#[test]
fn insert_many_stores_every_entry_or_none() {
    let cache = FeatureCache::new(config(PolicyKind::Lru, 100, 64 * 1024));
    let entries = vec![
        ("a".to_string(), floats(16, 1.0)),
        ("too-big".to_string(), floats(64 * 1024, 2.0)),
        ("b".to_string(), floats(16, 3.0)),
    ];
    let err = cache
        .insert_many(entries, EntryOptions::default())
        .unwrap_err();
    assert!(matches!(err, CacheError::TooLarge { ref key, .. } if key == "too-big"));
    assert!(cache.is_empty(), "nothing stored when one entry is refused");
    let entries = vec![
        ("a".to_string(), floats(16, 1.0)),
        ("b".to_string(), floats(16, 3.0)),
    ];
    assert_eq!(
        cache.insert_many(entries, EntryOptions::default()).unwrap(),
        2
    );
    assert_eq!(cache.get("b"), Some(floats(16, 3.0)));
}
