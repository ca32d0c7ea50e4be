use std::sync::Mutex as StdMutex;

use super::*;
use crate::memory::advice::opportunities;

fn config(max: u64) -> ManagerConfig {
    ManagerConfig {
        max_memory: max,
        reserved_memory: 0,
        device: DeviceChoice::Cpu,
        ..ManagerConfig::default()
    }
}

#[test]
fn host_blocks_are_counted_pooled_and_reused() {
    let manager = MemoryManager::new(config(1 << 30)).unwrap();
    let mut lease = manager.allocate_host(60_000, "mel").unwrap();
    assert_eq!(lease.len(), 60_000);
    lease.as_mut_slice()[59_999] = 1;
    let usage = manager.usage();
    assert_eq!(usage.host.used, 65_536, "the pool's size class is counted");
    assert_eq!(usage.by_operation[0].0, "mel");
    let address = lease.as_ptr();
    drop(lease);
    let usage = manager.usage();
    assert_eq!((usage.host.used, usage.host.pooled), (0, 65_536));
    let again = manager.allocate_host(65_536, "mfcc").unwrap();
    assert_eq!(again.as_ptr(), address, "the pooled buffer is reused");
    let stats = manager.stats();
    assert_eq!((stats.host_pool.hits, stats.host_pool.misses), (1, 1));
    assert_eq!(stats.allocations, 2);
}

#[test]
fn over_budget_requests_are_refused_with_e_budget() {
    let manager = MemoryManager::new(ManagerConfig {
        reserved_memory: 1 << 20,
        ..config(4 << 20)
    })
    .unwrap();
    let held = manager.allocate_host(2 << 20, "a").unwrap();
    let err = manager.allocate_host(2 << 20, "b").err().unwrap();
    assert_eq!(err.code(), "E_BUDGET");
    let text = err.to_string();
    assert!(
        text.contains("2097152") && text.contains("1048576") && text.contains("'b'"),
        "{text}"
    );
    assert_eq!(manager.stats().failures, 1);
    drop(held);
    assert!(manager.allocate_host(2 << 20, "b").is_ok());
}

#[test]
fn pooled_memory_never_pushes_past_the_budget() {
    let manager = MemoryManager::new(config(8 << 20)).unwrap();
    drop(manager.allocate_host(4 << 20, "a").unwrap());
    assert_eq!(manager.usage().host.pooled, 4 << 20);
    let big = manager.allocate_host(8 << 20, "b").unwrap();
    let usage = manager.usage();
    assert_eq!((usage.host.used, usage.host.pooled), (8 << 20, 0));
    drop(big);
    assert_eq!(manager.trim(), (8 << 20, 0));
}

#[test]
fn pressure_is_reported_both_ways() {
    let manager = MemoryManager::new(ManagerConfig {
        threshold_percent: 50.0,
        ..config(1 << 20)
    })
    .unwrap();
    let events = Arc::new(StdMutex::new(Vec::new()));
    let sink = events.clone();
    manager.set_pressure_listener(Some(Arc::new(move |e: PressureEvent| {
        sink.lock()
            .unwrap()
            .push((e.device, e.rising, e.percentage));
    })));
    let a = manager.allocate_host(256 << 10, "a").unwrap();
    let b = manager.reserve(Device::Host, 300 << 10, "batch").unwrap();
    assert_eq!(b.bytes(), 300 << 10);
    drop(a);
    drop(b);
    let events = events.lock().unwrap().clone();
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(events[0].1 && events[0].2 >= 50.0);
    assert!(!events[1].1 && events[1].2 < 50.0);
}

#[test]
fn idle_pooled_memory_goes_back_on_its_own() {
    let manager = MemoryManager::new(ManagerConfig {
        idle_trim: Duration::from_millis(20),
        ..config(1 << 30)
    })
    .unwrap();
    drop(manager.allocate_host(1 << 20, "a").unwrap());
    // Pooled, or already trimmed if this thread stalled past the idle time.
    let (pooled, trimmed) = (
        manager.usage().host.pooled,
        manager.stats().host_pool.trimmed_bytes,
    );
    assert_eq!(pooled + trimmed, 1 << 20);
    let deadline = Instant::now() + Duration::from_secs(30);
    while manager.usage().host.pooled > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        manager.usage().host.pooled,
        0,
        "the reaper trimmed the idle buffer"
    );
    assert_eq!(manager.stats().host_pool.trimmed_bytes, 1 << 20);
}

#[test]
fn findings_name_leaks_and_a_dominant_operation() {
    let manager = MemoryManager::new(config(1 << 20)).unwrap();
    let _held = manager.allocate_host(800 << 10, "decoder").unwrap();
    manager.record_leak(4096);
    let found = opportunities(&manager.usage(), &manager.stats(), 70.0);
    let kinds: Vec<_> = found.iter().map(|o| o.kind).collect();
    assert!(kinds.contains(&"dominant-operation"), "{kinds:?}");
    assert!(kinds.contains(&"over-threshold"), "{kinds:?}");
    assert!(kinds.contains(&"leaked-blocks"), "{kinds:?}");
    let dominant = found
        .iter()
        .find(|o| o.kind == "dominant-operation")
        .unwrap();
    assert_eq!(dominant.operation.as_deref(), Some("decoder"));
    assert!(dominant.estimated_saving > 0);
    assert!(found
        .windows(2)
        .all(|w| w[0].estimated_saving >= w[1].estimated_saving));
}

#[test]
fn without_a_gpu_auto_falls_back_and_cuda_is_refused() {
    if crate::memory::gpu::driver_present() {
        return;
    }
    let auto = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Auto,
        ..config(1 << 20)
    })
    .unwrap();
    assert!(!auto.has_gpu() && auto.usage().gpu.is_none());
    assert_eq!(
        auto.allocate_gpu(1024, "x").err().unwrap().code(),
        "E_NO_GPU"
    );
    let err = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cuda,
        ..config(1 << 20)
    })
    .err()
    .unwrap();
    assert_eq!(err.code(), "E_NO_GPU");
}

/// Runs on a GPU machine with `GAMA_TEST_GPU=1`.
#[test]
fn gpu_blocks_round_trip_and_trim() {
    if std::env::var("GAMA_TEST_GPU").as_deref() != Ok("1") {
        return;
    }
    let manager = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cuda,
        gpu_chunk_size: 16 << 20,
        ..config(1 << 30)
    })
    .unwrap();
    let data: Vec<u8> = (0..(3 << 20)).map(|i| (i % 251) as u8).collect();
    let block = manager.allocate_gpu(data.len() as u64, "weights").unwrap();
    block.copy_in(0, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    block.copy_out(0, &mut back).unwrap();
    assert_eq!(back, data);
    let usage = manager.usage();
    let gpu = usage.gpu.expect("a GPU");
    assert_eq!(gpu.budget.used, 3 << 20);
    drop(block);
    assert_eq!(manager.trim().1, 16 << 20);
}
