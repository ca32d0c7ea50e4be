use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{unbounded, Receiver, Sender};

use super::*;
use crate::error::Coded;
use crate::features::gpu::FeatureDevice;
use crate::features::FeatureOptions;
use crate::memory::{DeviceChoice, ManagerConfig, MemoryManager};

struct Channel(Sender<Event>);

impl Sink for Channel {
    fn deliver(&self, event: Event) {
        let _ = self.0.send(event);
    }
}

fn processor(config: Config, memory: Option<Arc<MemoryManager>>) -> (Processor, Receiver<Event>) {
    let (tx, rx) = unbounded();
    (
        Processor::new(config, Arc::new(Channel(tx)), memory, None).unwrap(),
        rx,
    )
}

/// A sink that stops the worker running item `hold` at its first progress
/// report past 0, until the test drops `Gate::open`: while held, the item is
/// provably in flight, whatever the machine's load.
struct Held {
    events: Sender<Event>,
    hold: ItemId,
    reached: Sender<()>,
    open: Receiver<()>,
}

impl Sink for Held {
    fn deliver(&self, event: Event) {
        if let Event::Progress {
            id,
            stage: Stage::Running,
            fraction,
        } = event
        {
            if id == self.hold && fraction > 0.0 {
                let _ = self.reached.send(());
                // Returns once the test drops the sender.
                let _ = self.open.recv();
            }
        }
        let _ = self.events.send(event);
    }
}

/// The test's side of a `Held` sink.
struct Gate {
    reached: Receiver<()>,
    open: Sender<()>,
}

impl Gate {
    /// Waits until the held item is running on a worker.
    fn wait_running(&self) {
        self.reached
            .recv_timeout(Duration::from_secs(60))
            .expect("the held item reaches its first progress report");
    }

    /// Lets the held item go on.
    fn release(self) {
        drop(self.open);
    }
}

fn held_processor(config: Config, hold: ItemId) -> (Processor, Receiver<Event>, Gate) {
    let (events, rx) = unbounded();
    let (reached_tx, reached) = unbounded();
    let (open, open_rx) = unbounded();
    let sink = Held {
        events,
        hold,
        reached: reached_tx,
        open: open_rx,
    };
    let processor = Processor::new(config, Arc::new(sink), None, None).unwrap();
    (processor, rx, Gate { reached, open })
}

/// An item that reports progress (and so can be held by a `Held` sink).
fn watched(id: ItemId, op: &str, priority: u8, samples: Samples) -> Item {
    Item {
        wants_progress: true,
        ..item(id, op, priority, samples)
    }
}

fn tone(len: usize) -> Samples {
    (0..len)
        .map(|i| (i as f32 * 0.05).sin() * 0.5)
        .collect::<Vec<_>>()
        .into()
}

fn item(id: ItemId, op: &str, priority: u8, samples: Samples) -> Item {
    let mut options = FeatureOptions::new(16000.0);
    options.n_fft = 512;
    options.win_length = 512;
    options.hop_length = 160;
    options.n_mels = 40;
    Item {
        id,
        op: op.into(),
        priority,
        group: samples.len().next_power_of_two() as u64,
        estimate: estimate(op, samples.len(), &options),
        input: Input::Audio {
            samples,
            options: Arc::new(options),
            cache_key: None,
        },
        wants_progress: false,
        stop: Arc::default(),
        enqueued: Instant::now(),
        seq: 0,
    }
}

fn done(rx: &Receiver<Event>, n: usize) -> Vec<(ItemId, Result<Output, ItemError>)> {
    let mut out = Vec::new();
    while out.len() < n {
        if let Event::Done { id, result } =
            rx.recv_timeout(Duration::from_secs(120)).expect("an event")
        {
            out.push((id, result));
        }
    }
    out
}

/// Two workers cutting batches of up to eight items.
fn batching_processor() -> (Processor, Receiver<Event>) {
    processor(
        Config {
            threads: 2,
            max_batch_size: 8,
            ..Config::default()
        },
        None,
    )
}

/// Checks that `result` holds `want`'s features (clip `i`); the batch
/// buffer it lies in, if it shares one.
fn shared_result(
    result: &Result<Output, ItemError>,
    want: &crate::features::Features,
    i: usize,
) -> Option<Arc<Vec<f32>>> {
    let got = features_of(result);
    assert_eq!(got.frames, want.frames, "clip {i}");
    let matrices = |f: &crate::features::Features| {
        f.iter()
            .map(|(feature, m)| (feature, m.data.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(matrices(got), matrices(want), "clip {i}");
    match got.clone().into_parts().0 {
        crate::features::Values::Shared { arena, .. } => Some(arena),
        crate::features::Values::Own(_) => None,
    }
}

#[test]
fn a_batch_of_clips_shares_one_buffer_and_each_result_equals_its_own_extraction() {
    let (p, rx) = batching_processor();
    // Six equal clips (one similarity group), then clips of other lengths
    // and an empty one, which fails beside the others.
    let lengths = [
        16000, 16000, 16000, 16000, 16000, 16000, 4000, 0, 9000, 600, 12345,
    ];
    let items: Vec<_> = lengths
        .iter()
        .enumerate()
        .map(|(i, &len)| item(i as ItemId + 1, EXTRACT_FEATURES, 5, tone(len)))
        .collect();
    let wanted: Vec<_> = items
        .iter()
        .zip(lengths)
        .map(|(it, len)| (len > 0).then(|| cpu_features(it)))
        .collect();
    p.submit(items).unwrap();
    let mut results = done(&rx, lengths.len());
    results.sort_by_key(|(id, _)| *id);
    let mut arenas = std::collections::HashSet::new();
    for (i, ((_, result), want)) in results.iter().zip(&wanted).enumerate() {
        let Some(want) = want else {
            assert_eq!(result.as_ref().unwrap_err().code, "E_EMPTY_AUDIO");
            continue;
        };
        let arena = shared_result(result, want, i);
        if i < 6 {
            arenas.extend(arena.map(|a| Arc::as_ptr(&a)));
        }
    }
    assert!(
        (1..6).contains(&arenas.len()),
        "the six equal clips ran in batches sharing their buffers: {} buffers",
        arenas.len()
    );
}

#[test]
fn long_clips_of_a_batch_take_buffers_of_bounded_size() {
    let (p, rx) = batching_processor();
    // Four minute-long clips: about 2 MiB of results each.
    let items: Vec<_> = (1..=4)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(960_000)))
        .collect();
    let want = cpu_features(&items[0]);
    let values: usize = want.iter().map(|(_, m)| m.data.len()).sum();
    assert!(
        values * 4 > 1 << 20,
        "four clips' results ({values} values each) exceed one buffer"
    );
    p.submit(items).unwrap();
    let mut arenas = std::collections::HashSet::new();
    for (id, result) in done(&rx, 4) {
        let arena = shared_result(&result, &want, id as usize).expect("a shared buffer");
        let bound = (1 << 20).max(values);
        assert!(arena.len() <= bound, "a buffer of {} values", arena.len());
        arenas.insert(Arc::as_ptr(&arena));
    }
    assert!(
        arenas.len() >= 2,
        "{} buffers for four long clips",
        arenas.len()
    );
}

#[test]
fn native_items_complete_in_batches() {
    let (p, rx) = processor(
        Config {
            threads: 2,
            ..Config::default()
        },
        None,
    );
    let items: Vec<_> = (1..=20)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(16000)))
        .collect();
    p.submit(items).unwrap();
    let results = done(&rx, 20);
    assert!(results
        .iter()
        .all(|(_, r)| matches!(r, Ok(Output::Features(f)) if f.frames == 101)));
    let stats = p.stats();
    assert_eq!(
        (stats.completed, stats.failed, stats.queued, stats.running),
        (20, 0, 0, 0)
    );
    assert!(
        stats.batches >= 3 && stats.average_batch_size > 1.0,
        "{stats:?}"
    );
}

#[test]
fn measure_keeps_long_inputs_exact() {
    // A minute of DC with a little noise at 48 kHz: the mean and RMS a
    // double-precision loop gives, to 1e-9.
    let mut state = 1u32;
    let samples: Vec<f32> = (0..2_880_000)
        .map(|_| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            0.3 + (state as f32 / u32::MAX as f32 - 0.5) * 0.01
        })
        .collect();
    let n = samples.len() as f64;
    let mean = samples.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n).sqrt();
    let level = measure(&samples).unwrap();
    assert!(
        (level.mean - mean).abs() <= 1e-9 * mean,
        "{} vs {mean}",
        level.mean
    );
    assert!(
        (level.rms - rms).abs() <= 1e-9 * rms,
        "{} vs {rms}",
        level.rms
    );
}

#[test]
fn analyze_summarises_a_clip() {
    let mut samples = vec![0f32; 16000];
    for (i, s) in samples.iter_mut().enumerate().take(8000) {
        *s = (i as f32 * 2.0 * std::f32::consts::PI * 1000.0 / 16000.0).sin() * 0.5;
    }
    let a = analyze(&samples, 16000.0).unwrap();
    assert_eq!(measure(&[]).unwrap_err().code, "E_EMPTY_AUDIO");
    assert_eq!(measure(&[1.0, f32::NAN]).unwrap_err().code, "E_NOT_FINITE");
    let level = measure(&[1.0, -3.0, 2.0, 0.0]).unwrap();
    assert_eq!((level.peak, level.mean), (3.0, 0.0));
    assert_eq!(a.duration, 1.0);
    assert!((a.peak - 0.5).abs() < 1e-3);
    assert!(
        (a.rms - 0.25).abs() < 1e-2,
        "half the clip is a 0.5 sine: rms 0.25"
    );
    assert!((a.silence_ratio - 0.5).abs() < 0.05);
    assert!(
        a.spectral_centroid_mean > 500.0 && a.spectral_centroid_mean < 1500.0,
        "{a:?}"
    );
    assert!(analyze(&[], 16000.0).is_err());
    assert_eq!(
        analyze(&[0.0, f32::NAN], 16000.0).unwrap_err().code,
        "E_NOT_FINITE"
    );
}

#[test]
fn a_critical_item_overtakes_queued_low_priority_work() {
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            max_concurrent_batches: 1,
            max_batch_size: 4,
            ..Config::default()
        },
        1000,
    );
    let low: Vec<_> = (1..=40).map(|i| item(i, ANALYZE, 1, tone(16000))).collect();
    let critical = item(999, ANALYZE, MAX_PRIORITY, tone(16000));
    p.submit(vec![watched(1000, EXTRACT_FEATURES, 5, tone(16000 * 60))])
        .unwrap();
    gate.wait_running();
    p.submit(low).unwrap();
    p.submit(vec![critical]).unwrap();
    gate.release();
    let order: Vec<ItemId> = done(&rx, 42).into_iter().map(|(id, _)| id).collect();
    let position = order.iter().position(|&id| id == 999).unwrap();
    assert!(position <= 1, "critical finished at position {position}");
}

#[test]
fn cancel_removes_a_queued_item_and_unknown_types_are_refused() {
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            max_concurrent_batches: 1,
            max_batch_size: 1,
            ..Config::default()
        },
        1,
    );
    let items: Vec<_> = (1..=5)
        .map(|i| watched(i, EXTRACT_FEATURES, 5, tone(160000)))
        .collect();
    p.submit(items).unwrap();
    gate.wait_running();
    assert_eq!(p.counts().queued, 4, "item 1 runs, the rest wait");
    assert!(p.cancel(5));
    assert!(!p.cancel(5), "an item ends once");
    assert!(!p.cancel(12345));
    gate.release();
    let results = done(&rx, 5);
    let cancelled = results.iter().find(|(id, _)| *id == 5).unwrap();
    assert_eq!(cancelled.1.as_ref().unwrap_err().code, "ABORT_ERR");
    assert_eq!(p.stats().cancelled, 1);
    let err = p.submit(vec![item(6, "PROCESS", 5, tone(10))]).unwrap_err();
    assert_eq!(err.code(), "E_NO_PROCESSOR");
}

#[test]
fn a_full_queue_refuses_and_close_force_ends_everything() {
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            max_concurrent_batches: 1,
            max_batch_size: 1,
            max_queue_size: Some(3),
            ..Config::default()
        },
        1,
    );
    p.submit(
        (1..=3)
            .map(|i| watched(i, EXTRACT_FEATURES, 5, tone(16000 * 60)))
            .collect(),
    )
    .unwrap();
    gate.wait_running();
    p.submit(vec![item(4, EXTRACT_FEATURES, 5, tone(16000))])
        .unwrap();
    let err = p
        .submit(
            (10..=12)
                .map(|i| item(i, EXTRACT_FEATURES, 5, tone(10)))
                .collect(),
        )
        .unwrap_err();
    assert_eq!(err.code(), "E_QUEUE_FULL");
    p.close(true);
    gate.release();
    let results = done(&rx, 4);
    assert!(
        results
            .iter()
            .all(|(_, r)| r.as_ref().is_err_and(|e| e.code == "E_CLOSED")),
        "forced close ends queued and running items with E_CLOSED: {results:?}"
    );
    assert_eq!(
        p.submit(vec![item(20, ANALYZE, 5, tone(10))])
            .unwrap_err()
            .code(),
        "E_CLOSED"
    );
}

#[test]
fn memory_is_reserved_per_batch_and_oversized_items_fail_with_e_budget() {
    let memory = MemoryManager::new(ManagerConfig {
        max_memory: 8 << 20,
        reserved_memory: 0,
        device: DeviceChoice::Cpu,
        ..ManagerConfig::default()
    })
    .unwrap();
    let (p, rx) = processor(
        Config {
            threads: 2,
            ..Config::default()
        },
        Some(memory.clone()),
    );
    let mut items: Vec<_> = (1..=6)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(48000)))
        .collect();
    items.push(item(7, EXTRACT_FEATURES, 5, tone(4_000_000)));
    p.submit(items).unwrap();
    let results = done(&rx, 7);
    for (id, result) in &results {
        if *id == 7 {
            assert_eq!(result.as_ref().unwrap_err().code, "E_BUDGET");
        } else {
            assert!(result.is_ok());
        }
    }
    let usage = memory.usage();
    assert!(usage
        .by_operation
        .iter()
        .any(|(name, op)| name == EXTRACT_FEATURES && op.peak > 0));
    assert_eq!(usage.host.used, 0, "reservations are given back");
}

#[test]
fn a_running_item_is_cancelled_at_its_next_frame_block() {
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            ..Config::default()
        },
        1,
    );
    let long = watched(1, EXTRACT_FEATURES, 5, tone(16000 * 60));
    let stop = long.stop.clone();
    p.submit(vec![long]).unwrap();
    gate.wait_running();
    assert!(p.cancel(1), "an item in flight can be cancelled");
    assert!(stop.is_set());
    gate.release();
    let results = done(&rx, 1);
    assert_eq!(results[0].1.as_ref().unwrap_err().code, "ABORT_ERR");
    assert_eq!(p.stats().cancelled, 1);
}

#[test]
fn an_item_is_cancellable_at_every_moment_until_it_ends() {
    // No window between leaving the queue and being listed as running:
    // cancel either ends the item (true, ABORT_ERR) or finds it finished
    // (false, its own outcome).
    for round in 0..200u64 {
        let (p, rx) = processor(
            Config {
                threads: 1,
                max_batch_size: 1,
                ..Config::default()
            },
            None,
        );
        p.submit((1..=3).map(|i| item(i, MEASURE, 5, tone(64))).collect())
            .unwrap();
        let target = 1 + round % 3;
        let cancelled = p.cancel(target);
        let results = done(&rx, 3);
        let outcome = &results.iter().find(|(id, _)| *id == target).unwrap().1;
        assert_eq!(
            cancelled,
            outcome.as_ref().is_err_and(|e| e.code == "ABORT_ERR"),
            "round {round}: cancel said {cancelled}, the item ended {outcome:?}"
        );
    }
}

#[test]
fn a_batch_past_its_timeout_fails_with_e_timeout() {
    let timeout = Duration::from_millis(20);
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            batch_timeout: Some(timeout),
            ..Config::default()
        },
        1,
    );
    p.submit(vec![watched(1, EXTRACT_FEATURES, 5, tone(16000 * 60))])
        .unwrap();
    // Either the item reaches its first progress report and is held there
    // until its deadline has passed, or (on a loaded machine) the deadline
    // passes before that report and the item stops there: both must end
    // in E_TIMEOUT.
    let Gate { reached, open } = gate;
    let early = loop {
        crossbeam_channel::select! {
            recv(reached) -> _ => break None,
            recv(rx) -> event => {
                if let Event::Done { result, .. } = event.expect("an event") {
                    break Some(result);
                }
            }
        }
    };
    let result = match early {
        Some(result) => result,
        None => {
            // The batch started before the gate was reached, so its
            // deadline has passed once `timeout` has elapsed from here.
            std::thread::sleep(timeout);
            drop(open);
            done(&rx, 1).remove(0).1
        }
    };
    assert_eq!(result.unwrap_err().code, "E_TIMEOUT");
    assert_eq!(p.stats().failed, 1);
}

#[test]
fn close_starts_a_partial_batch_at_once_instead_of_waiting_for_it_to_fill() {
    let (p, rx) = processor(
        Config {
            threads: 1,
            max_batch_size: 8,
            max_wait: Duration::from_secs(3600),
            ..Config::default()
        },
        None,
    );
    p.submit(vec![item(1, MEASURE, 5, tone(64))]).unwrap();
    p.close(false);
    // Within done()'s bound, far below the hour the batch would otherwise wait.
    let results = done(&rx, 1);
    assert!(results[0].1.is_ok());
}

#[test]
fn a_full_queue_with_wait_holds_items_in_order_and_counts_them_queued() {
    let (p, rx, gate) = held_processor(
        Config {
            threads: 1,
            max_concurrent_batches: 1,
            max_batch_size: 1,
            max_queue_size: Some(2),
            wait_when_full: true,
            ..Config::default()
        },
        1,
    );
    p.submit(vec![watched(1, EXTRACT_FEATURES, 5, tone(16000 * 60))])
        .unwrap();
    gate.wait_running();
    p.submit((2..=7).map(|i| item(i, MEASURE, 5, tone(100))).collect())
        .unwrap();
    assert_eq!(p.counts().queued, 6, "queue and overflow both count");
    assert!(p.cancel(6), "an item in the overflow can be cancelled");
    gate.release();
    let results = done(&rx, 7);
    let order: Vec<ItemId> = results.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        order,
        [6, 1, 2, 3, 4, 5, 7],
        "cancelled first, then in order"
    );
    assert!(results[0].1.as_ref().is_err_and(ItemError::is_stop));
    assert!(results[1..].iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn settle_order_puts_js_batches_then_urgent_items_first_keeping_each_items_order() {
    let progress = |id| Event::Progress {
        id,
        stage: Stage::Running,
        fraction: 0.5,
    };
    let finished = |id| Event::Done {
        id,
        result: Err(ItemError::aborted()),
    };
    let events = vec![
        progress(1),
        finished(1),
        progress(2),
        Event::RunJs {
            batch: 9,
            op: "JS".into(),
            ids: vec![3],
            strategy: ResourceStrategy {
                device: "host",
                batch_size: 1,
                memory_budget: 0,
                threads: 1,
            },
        },
        finished(2),
    ];
    let ordered = settle_order(events, |id| if id == 2 { 10 } else { 1 });
    let shape: Vec<(Option<ItemId>, bool)> = ordered
        .iter()
        .map(|e| (e.item(), matches!(e, Event::Done { .. })))
        .collect();
    assert_eq!(
        shape,
        [
            (None, false),
            (Some(2), false),
            (Some(2), true),
            (Some(1), false),
            (Some(1), true)
        ]
    );
}

#[test]
fn similarity_groups_follow_the_key_or_the_options_and_size_bucket() {
    let a = FeatureOptions::new(16000.0);
    let mut b = a.clone();
    assert_eq!(a.fingerprint(), b.fingerprint());
    b.n_mels = 64;
    assert_ne!(a.fingerprint(), b.fingerprint());
    let f = a.fingerprint();
    assert_eq!(
        similarity_group(None, f, 3000),
        similarity_group(None, f, 4096)
    );
    assert_ne!(
        similarity_group(None, f, 4096),
        similarity_group(None, f, 4097)
    );
    assert_ne!(
        similarity_group(None, f, 4096),
        similarity_group(None, b.fingerprint(), 4096)
    );
    assert_eq!(
        similarity_group(Some("speaker-1"), f, 10),
        similarity_group(Some("speaker-1"), b.fingerprint(), 1 << 20)
    );
}

#[test]
fn item_errors_carry_their_kind_from_the_core_error() {
    let e = ItemError::from_coded(&crate::features::ExtractError::Empty);
    assert_eq!((e.kind, e.code), (ItemErrorKind::Invalid, "E_EMPTY_AUDIO"));
    let e = ItemError::from(&SubmitError::Closed);
    assert_eq!((e.kind, e.code), (ItemErrorKind::Refused, "E_CLOSED"));
    assert!(ItemError::aborted().is_stop() && ItemError::closed().is_stop());
    assert!(!native::timed_out().is_stop());
}

/// A processor whose EXTRACT_FEATURES batches go to `device`, with a memory
/// manager on the GPU when there is one (`None` when there is none).
fn gpu_processor(device: FeatureDevice, gpu_bytes: u64) -> Option<(Processor, Receiver<Event>)> {
    let manager = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cuda,
        gpu_max_memory: Some(gpu_bytes),
        ..ManagerConfig::default()
    });
    let manager = match (manager, crate::features::gpu::gpu_status()) {
        (Ok(m), Ok(())) => m,
        (_, Err(e)) => {
            eprintln!("skipping a GPU batch test: {e}");
            return None;
        }
        (Err(e), Ok(())) => panic!("a GPU is here but no manager opens on it: {e}"),
    };
    Some(processor(
        Config {
            threads: 2,
            max_batch_size: 16,
            feature_device: device,
            ..Config::default()
        },
        Some(manager),
    ))
}

fn features_of(result: &Result<Output, ItemError>) -> &crate::features::Features {
    match result {
        Ok(Output::Features(f)) => f,
        other => panic!("features expected, got {other:?}"),
    }
}

/// What the CPU extractor gives for an EXTRACT_FEATURES item.
fn cpu_features(it: &Item) -> crate::features::Features {
    let Input::Audio {
        samples, options, ..
    } = &it.input
    else {
        unreachable!("a native item")
    };
    crate::features::shared_extractor(options)
        .unwrap()
        .extract(samples)
        .unwrap()
}

#[test]
fn without_a_gpu_in_the_manager_extraction_runs_on_the_workers() {
    let cpu_manager = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cpu,
        ..ManagerConfig::default()
    })
    .unwrap();
    let (p, rx) = processor(
        Config {
            threads: 2,
            feature_device: FeatureDevice::Cuda,
            ..Config::default()
        },
        Some(cpu_manager),
    );
    let it = item(1, EXTRACT_FEATURES, 5, tone(16_000));
    let want = cpu_features(&it);
    p.submit(vec![it]).unwrap();
    let results = done(&rx, 1);
    assert_eq!(features_of(&results[0].1), &want);
    let stats = p.stats();
    assert_eq!((stats.gpu_batches, stats.gpu_fallbacks), (0, 0));
}

#[test]
fn extract_features_batches_run_on_the_gpu_and_equal_the_cpu_path() {
    let Some((p, rx)) = gpu_processor(FeatureDevice::Cuda, 1 << 30) else {
        return;
    };
    let items: Vec<Item> = (1..=12)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(8_000 + 1_000 * i as usize)))
        .collect();
    let expected: Vec<_> = items.iter().map(cpu_features).collect();
    p.submit(items).unwrap();
    let mut results = done(&rx, 12);
    results.sort_by_key(|(id, _)| *id);
    for ((_, got), want) in results.iter().zip(&expected) {
        let got = features_of(got);
        for ((f, g), (_, w)) in got.iter().zip(want.iter()) {
            let worst = g
                .data
                .iter()
                .zip(w.data)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(worst <= 1e-3, "{}: off by {worst}", f.name());
        }
    }
    let stats = p.stats();
    assert!(stats.gpu_batches >= 1, "{stats:?}");
    assert!(stats.gpu_time > Duration::ZERO);
}

#[test]
fn a_batch_too_large_for_the_gpu_budget_runs_on_the_workers() {
    let Some((p, rx)) = gpu_processor(FeatureDevice::Cuda, 1 << 20) else {
        return;
    };
    let items: Vec<Item> = (1..=4)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(160_000)))
        .collect();
    p.submit(items).unwrap();
    let results = done(&rx, 4);
    assert!(
        results.iter().all(|(_, r)| r.is_ok()),
        "every item still succeeds"
    );
    let stats = p.stats();
    assert_eq!(stats.gpu_batches, 0);
    assert!(stats.gpu_fallbacks >= 1, "{stats:?}");
}

#[test]
fn gpu_batches_are_sized_by_the_room_below_the_gpu_budgets_threshold() {
    let items: Vec<Item> = (1..=12)
        .map(|i| item(i, EXTRACT_FEATURES, 5, tone(16_000)))
        .collect();
    // A GPU budget whose threshold has room for three items' estimates.
    let threshold = ManagerConfig::default().threshold_percent;
    let gpu_bytes = (items[0].estimate as f64 * 3.5 * 100.0 / threshold).ceil() as u64;
    let Some((p, rx)) = gpu_processor(FeatureDevice::Cuda, gpu_bytes) else {
        return;
    };
    p.submit(items).unwrap();
    let results = done(&rx, 12);
    assert!(
        results.iter().all(|(_, r)| r.is_ok()),
        "every item succeeds"
    );
    let stats = p.stats();
    assert!(
        stats.batches >= 4,
        "12 items, at most 3 per batch: {stats:?}"
    );
    assert!(stats.average_batch_size <= 3.0, "{stats:?}");
}
