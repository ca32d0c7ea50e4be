//! The GPU path against the CPU extractor. Tests that need a GPU print one
//! line saying why they skip when this machine has none; the kernels are
//! compiled whenever NVRTC alone is present.

use std::sync::Arc;

use super::*;
use crate::features::tests::options as speech;
use crate::features::{Feature, FeatureMatrix, Features, PadMode};

/// Whether a GPU is usable here; prints why not once per test otherwise.
fn gpu(test: &str) -> bool {
    match gpu_status() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("skipping {test}: {e}");
            false
        }
    }
}

fn clip(len: usize, seed: f32) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            0.5 * (2.0 * std::f32::consts::PI * (220.0 + 40.0 * seed) * t).sin()
                + 0.2 * (2.0 * std::f32::consts::PI * 3_100.0 * t * (1.0 + seed)).sin()
                + 0.05 * ((i as f32 * 12.9898 + seed).sin() * 43_758.547).fract()
        })
        .collect()
}

/// Asserts the GPU result equals the CPU one within librosa's tolerances.
fn assert_close(place: &str, gpu: &Features, cpu: &Features, bin_hz: f32) {
    assert_eq!(gpu.frames, cpu.frames, "{place}: frames");
    for ((f, g), (f2, c)) in gpu.iter().zip(cpu.iter()) {
        assert_eq!(f, f2, "{place}: feature order");
        let (FeatureMatrix { data: g, .. }, FeatureMatrix { data: c, .. }) = (g, c);
        assert_eq!(g.len(), c.len(), "{place}/{}: length", f.name());
        let range = c.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
        let worst = g
            .iter()
            .zip(c)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        let ok = match f {
            Feature::LogMel | Feature::Mfcc => worst <= 1e-3,
            Feature::Zcr => worst <= 1e-6,
            Feature::SpectralRolloff => worst <= bin_hz * 1.01,
            _ => worst <= 1e-4 * range,
        };
        assert!(ok, "{place}/{}: off by {worst} (range {range})", f.name());
    }
}

#[test]
fn kernels_compile_with_nvrtc() {
    if !libs::nvrtc_present() {
        eprintln!(
            "skipping kernels_compile_with_nvrtc: libnvrtc.so is not on LD_LIBRARY_PATH \
             (pip's nvidia-cuda-nvrtc wheel has one; no GPU is needed)"
        );
        return;
    }
    let ptx = engine::compile().expect("the kernels compile");
    let text = ptx.to_src();
    for kernel in ["fill", "frame_signal", "spectral", "finish", "time_domain"] {
        assert!(
            text.contains(&format!(".entry {kernel}(")),
            "kernel {kernel} is in the PTX"
        );
    }
}

#[test]
fn without_a_gpu_the_reason_is_given_and_nothing_panics() {
    let Err(e) = gpu_status() else {
        eprintln!("skipping without_a_gpu_the_reason_is_given_and_nothing_panics: a GPU is here");
        return;
    };
    assert!(matches!(e, ExtractError::NoGpu(_)), "{e:?}");
    let why = e.to_string();
    assert!(
        why.contains(".so") || why.contains("device"),
        "names what is missing: {why}"
    );
    let extractor = Extractor::new(FeatureOptions::new(16_000.0)).unwrap();
    let err = extract_batch_gpu(&extractor, &[clip(4_000, 0.0)], None).unwrap_err();
    assert_eq!(err, e, "a batch fails with the same reason");
    let opts = FeatureOptions::new(16_000.0);
    assert!(!auto_prefers_gpu(&opts, u64::MAX), "auto stays on the CPU");
}

#[test]
fn options_the_gpu_cannot_run_are_named() {
    let mut o = FeatureOptions::new(16_000.0);
    o.n_fft = 16_384;
    o.hop_length = 4096;
    o.win_length = 16_384;
    let e = gpu_supports(&o).unwrap_err();
    assert!(matches!(e, ExtractError::GpuUnsupported(_)));
    assert!(e.to_string().contains("nFft 16384"), "{e}");
    o.n_fft = GPU_MAX_N_FFT;
    o.win_length = GPU_MAX_N_FFT;
    assert!(gpu_supports(&o).is_ok());
    assert!(
        !auto_prefers_gpu(&o, AUTO_MIN_FRAMES - 1),
        "small batches stay on the CPU"
    );
}

#[test]
fn every_feature_of_clips_of_mixed_lengths_equals_the_cpu_path() {
    if !gpu("every_feature_of_clips_of_mixed_lengths_equals_the_cpu_path") {
        return;
    }
    let lengths = [16_000, 300, 160_000, 1, 48_123, 512, 16_000];
    let clips: Vec<Vec<f32>> = lengths
        .iter()
        .enumerate()
        .map(|(i, &n)| clip(n, i as f32 * 0.37))
        .collect();
    type Change = Box<dyn Fn(&mut FeatureOptions)>;
    let variants: Vec<Change> = vec![
        Box::new(|_| {}),
        Box::new(|o| o.pad_mode = PadMode::Reflect),
        Box::new(|o| {
            o.center = false;
            o.power = 1.0;
            o.top_db = None;
        }),
        Box::new(|o| {
            o.power = 1.5;
            o.win_length = 400;
            o.window = crate::features::WindowKind::Hamming;
            o.htk = true;
        }),
    ];
    for (v, change) in variants.iter().enumerate() {
        let mut o = speech(&Feature::ALL);
        change(&mut o);
        let extractor = Extractor::new(o.clone()).unwrap();
        // Twice: the second batch reuses plans, tables and staging.
        for round in 0..2 {
            let batch = extract_batch_gpu(&extractor, &clips, None).expect("the batch runs");
            assert_eq!(batch.results.len(), clips.len());
            for (i, (got, clip)) in batch.results.iter().zip(&clips).enumerate() {
                let want = extractor.extract(clip);
                let place = format!("variant {v}, round {round}, clip {i}");
                match (got, want) {
                    (Ok(g), Ok(c)) => assert_close(&place, g, &c, 16_000.0 / 512.0),
                    (g, c) => assert_eq!(g, &c, "{place}: same error"),
                }
            }
            assert!(batch.timing.compute > std::time::Duration::ZERO);
        }
    }
}

#[test]
fn bad_clips_get_the_cpu_errors_in_their_place_and_the_rest_run() {
    if !gpu("bad_clips_get_the_cpu_errors_in_their_place_and_the_rest_run") {
        return;
    }
    let mut o = speech(&[Feature::LogMel, Feature::Rms]);
    o.center = false;
    let extractor = Extractor::new(o).unwrap();
    let mut nan = clip(2_000, 1.0);
    nan[7] = f32::NAN;
    let clips = vec![
        clip(2_000, 0.0),
        Vec::new(),
        nan,
        clip(100, 0.0),
        clip(600, 2.0),
    ];
    let batch = extract_batch_gpu(&extractor, &clips, None).unwrap();
    assert_eq!(batch.results[1], Err(ExtractError::Empty));
    assert!(matches!(
        batch.results[2],
        Err(ExtractError::NotFinite { index: 7, .. })
    ));
    assert!(matches!(
        batch.results[3],
        Err(ExtractError::TooShort { .. })
    ));
    for i in [0, 4] {
        let want = extractor.extract(&clips[i]).unwrap();
        assert_close(
            &format!("clip {i}"),
            batch.results[i].as_ref().unwrap(),
            &want,
            31.25,
        );
    }
}

#[test]
fn device_memory_comes_from_the_manager_given_and_returns_to_it() {
    if !gpu("device_memory_comes_from_the_manager_given_and_returns_to_it") {
        return;
    }
    use crate::memory::{DeviceChoice, ManagerConfig, MemoryManager};
    let manager = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cuda,
        gpu_max_memory: Some(64 << 20),
        ..ManagerConfig::default()
    })
    .unwrap();
    let extractor = Extractor::new(speech(&[Feature::LogMel, Feature::Mfcc])).unwrap();
    let clips: Vec<Vec<f32>> = (0..8).map(|i| clip(16_000, i as f32)).collect();
    extract_batch_gpu(&extractor, &clips, Some(&manager)).unwrap();
    assert!(
        manager.stats().allocations >= 1,
        "the batch drew on the manager"
    );
    assert_eq!(
        manager.usage().gpu.map(|g| g.budget.used),
        Some(0),
        "and gave it back"
    );
    // A batch larger than the budget is refused with E_BUDGET, not run.
    let big: Vec<Vec<f32>> = (0..64).map(|i| clip(160_000, i as f32)).collect();
    let err = extract_batch_gpu(&extractor, &big, Some(&manager)).unwrap_err();
    assert!(matches!(err, ExtractError::GpuBudget(_)), "{err:?}");
    let cpu_only = MemoryManager::new(ManagerConfig {
        device: DeviceChoice::Cpu,
        ..ManagerConfig::default()
    })
    .unwrap();
    let err = extract_batch_gpu(&extractor, &clips, Some(&cpu_only)).unwrap_err();
    assert!(matches!(err, ExtractError::NoGpu(_)));
}

#[test]
fn batches_from_many_threads_take_turns_and_keep_their_own_results() {
    if !gpu("batches_from_many_threads_take_turns_and_keep_their_own_results") {
        return;
    }
    let o = speech(&[Feature::LogMel, Feature::Mfcc, Feature::Rms]);
    let extractor = Arc::new(Extractor::new(o).unwrap());
    let threads: Vec<_> = (0..6)
        .map(|t| {
            let extractor = extractor.clone();
            std::thread::spawn(move || {
                let clips: Vec<Vec<f32>> = (0..4 + t)
                    .map(|i| clip(3_000 + 700 * i + 13 * t, (t * 10 + i) as f32))
                    .collect();
                for round in 0..3 {
                    let batch = extract_batch_gpu(&extractor, &clips, None).unwrap();
                    for (i, (got, c)) in batch.results.iter().zip(&clips).enumerate() {
                        let want = extractor.extract(c).unwrap();
                        let place = format!("thread {t}, round {round}, clip {i}");
                        assert_close(&place, got.as_ref().unwrap(), &want, 31.25);
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no thread panicked");
    }
}
