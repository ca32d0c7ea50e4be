//! Behaviour of the extractor that the librosa fixtures (in __test__/) do
//! not pin down: frame counts, cancellation, plain signal properties.

use std::f32::consts::PI;

use super::*;

/// Speech options (16 kHz, nFft 512, hop 160, 64 mels, 13 MFCCs) for `features`.
pub(crate) fn options(features: &[Feature]) -> FeatureOptions {
    let mut o = FeatureOptions::new(16_000.0);
    o.n_fft = 512;
    o.win_length = 512;
    o.hop_length = 160;
    o.n_mels = 64;
    o.n_mfcc = 13;
    o.features = features.to_vec();
    o
}

fn tone(hz: f32, samples: usize) -> Vec<f32> {
    (0..samples)
        .map(|i| (2.0 * PI * hz * i as f32 / 16_000.0).sin())
        .collect()
}

#[test]
fn frame_counts_follow_librosa() {
    let e = Extractor::new(options(&[Feature::Rms])).unwrap();
    assert_eq!(e.frame_count(16_000).unwrap(), 101);
    assert_eq!(e.frame_count(1).unwrap(), 1);
    let mut o = options(&[Feature::Rms]);
    o.center = false;
    let e = Extractor::new(o).unwrap();
    assert_eq!(e.frame_count(16_000).unwrap(), 1 + (16_000 - 512) / 160);
    assert_eq!(
        e.frame_count(100),
        Err(ExtractError::TooShort {
            samples: 100,
            n_fft: 512
        })
    );
}

#[test]
fn a_pure_tone_has_its_frequency_as_centroid_and_rms_of_a_sine() {
    let e = Extractor::new(options(&[
        Feature::SpectralCentroid,
        Feature::Rms,
        Feature::Zcr,
    ]))
    .unwrap();
    let out = e.extract(&tone(1_000.0, 16_000)).unwrap();
    let middle = 50;
    let centroid = out.get(Feature::SpectralCentroid).unwrap().data[middle];
    assert!((centroid - 1_000.0).abs() < 40.0, "centroid {centroid}");
    let rms = out.get(Feature::Rms).unwrap().data[middle];
    assert!(
        (rms - std::f32::consts::FRAC_1_SQRT_2).abs() < 0.01,
        "rms {rms}"
    );
    // 1 kHz crosses zero 2000 times a second: 64 times in 512 samples.
    let zcr = out.get(Feature::Zcr).unwrap().data[middle];
    assert!((zcr * 512.0 - 64.0).abs() <= 1.0, "zcr {zcr}");
}

#[test]
fn features_come_back_once_each_in_the_order_asked() {
    let e = Extractor::new(options(&[
        Feature::Mfcc,
        Feature::Rms,
        Feature::Mfcc,
        Feature::LogMel,
    ]))
    .unwrap();
    let out = e.extract(&tone(440.0, 8_000)).unwrap();
    let names: Vec<&str> = out.iter().map(|(f, _)| f.name()).collect();
    assert_eq!(names, ["mfcc", "rms", "logMel"]);
    let mfcc = out.get(Feature::Mfcc).unwrap();
    assert_eq!((mfcc.frames, mfcc.bins, mfcc.data.len()), (51, 13, 51 * 13));
    assert!(out.get(Feature::Chroma).is_none());
}

#[test]
fn extraction_can_be_cancelled_between_frame_blocks() {
    let e = Extractor::new(options(&[Feature::LogMel])).unwrap();
    let long = tone(440.0, 16_000 * 10);
    let calls = std::sync::Mutex::new(Vec::new());
    let result = e.extract_with(&long, &|done| {
        calls.lock().unwrap().push(done);
        done < 500
    });
    assert_eq!(result, Err(ExtractError::Cancelled));
    assert_eq!(*calls.lock().unwrap(), [256, 512]);
    let seen = std::sync::atomic::AtomicUsize::new(0);
    e.extract_with(&long, &|done| {
        seen.store(done, std::sync::atomic::Ordering::Relaxed);
        true
    })
    .unwrap();
    assert_eq!(seen.into_inner(), 1001, "the last call reports every frame");
    // Split over a pool, a refusal stops every piece.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    let result = pool.install(|| e.extract_parallel(&long, &|done| done < 500));
    assert_eq!(result, Err(ExtractError::Cancelled));
}

/// Every feature, so each output's rows are split with the clip.
fn all_features(center: bool, pad_mode: PadMode) -> FeatureOptions {
    let mut o = options(&Feature::ALL);
    o.center = center;
    o.pad_mode = pad_mode;
    o
}

/// A clip whose loudness changes over time, so the log-mel floor matters.
fn swell(len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            (0.05 + 0.9 * (t * 0.3).sin().abs()) * (t * 2_000.0 * std::f32::consts::PI).sin()
                + 0.01 * ((i * 7919) % 101) as f32 / 101.0
        })
        .collect()
}

#[test]
fn long_clips_split_over_the_pool_give_the_unsplit_result_exactly() {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for (center, pad) in [
        (true, PadMode::Constant),
        (true, PadMode::Reflect),
        (false, PadMode::Constant),
    ] {
        let e = Extractor::new(all_features(center, pad)).unwrap();
        // 2,049 to 2,051 frames: odd and even counts, a short last piece.
        for len in [327_680, 327_841, 328_000] {
            let audio = swell(len);
            let whole = e.extract(&audio).unwrap();
            assert!(whole.frames > 2 * 256, "long enough to be split");
            let split = pool
                .install(|| e.extract_parallel(&audio, &|_| true))
                .unwrap();
            assert!(split == whole, "center {center}, {pad:?}, {len} samples");
        }
    }
}

#[test]
fn bad_audio_is_refused() {
    let e = Extractor::new(options(&[Feature::Rms])).unwrap();
    assert_eq!(e.extract(&[]), Err(ExtractError::Empty));
    let mut samples = vec![0.0; 100];
    samples[42] = f32::NAN;
    assert!(matches!(
        e.extract(&samples),
        Err(ExtractError::NotFinite { index: 42, .. })
    ));
    samples[42] = f32::NEG_INFINITY;
    assert!(matches!(
        e.extract(&samples),
        Err(ExtractError::NotFinite { index: 42, .. })
    ));
}

#[test]
fn bad_options_name_the_parameter() {
    type Spoil = fn(&mut FeatureOptions);
    let cases: [(&str, Spoil); 6] = [
        ("nFft", |o| o.n_fft = 1),
        ("hopLength", |o| o.hop_length = 0),
        ("winLength", |o| o.win_length = 4096),
        ("fmax", |o| o.fmax = 9_000.0),
        ("nMfcc", |o| o.n_mfcc = 100),
        ("features", |o| o.features.clear()),
    ];
    for (name, spoil) in cases {
        let mut o = options(&[Feature::Mfcc]);
        spoil(&mut o);
        assert_eq!(Extractor::new(o).err().map(|e| e.name), Some(name));
    }
}

#[test]
fn one_extractor_serves_many_threads() {
    let e = std::sync::Arc::new(Extractor::new(options(&[Feature::Mfcc])).unwrap());
    let expected = e.extract(&tone(300.0, 4_000)).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let e = e.clone();
            std::thread::spawn(move || e.extract(&tone(300.0, 4_000)).unwrap())
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn digital_silence_gives_librosas_values_beside_loud_frames() {
    // Silence between two tones: frames paired with a loud partner in one
    // complex FFT must still see exact zeros.
    let mut audio = tone(1_000.0, 4_000);
    audio.extend(std::iter::repeat_n(0.0, 8_000));
    audio.extend(tone(3_000.0, 4_000));
    let e = Extractor::new(options(&[
        Feature::Stft,
        Feature::Power,
        Feature::Mel,
        Feature::SpectralCentroid,
        Feature::SpectralBandwidth,
        Feature::SpectralRolloff,
        Feature::SpectralFlatness,
    ]))
    .unwrap();
    let out = e.extract(&audio).unwrap();
    // Frames whose 512 samples (centred, hop 160) lie inside the silence.
    let silent: Vec<usize> = (0..out.frames)
        .filter(|f| {
            let start = (f * 160) as isize - 256;
            start >= 4_000 && start + 512 <= 12_000
        })
        .collect();
    assert!(silent.len() > 40 && silent.iter().any(|f| f % 2 == 1));
    for &f in &silent {
        for feature in [Feature::Stft, Feature::Power, Feature::Mel] {
            let m = out.get(feature).unwrap();
            let row = &m.data[f * m.bins..(f + 1) * m.bins];
            assert!(row.iter().all(|&v| v == 0.0), "{feature:?} frame {f}");
        }
        let at = |feature| out.get(feature).unwrap().data[f];
        assert_eq!(at(Feature::SpectralCentroid), 0.0, "frame {f}");
        assert_eq!(at(Feature::SpectralBandwidth), 0.0, "frame {f}");
        assert_eq!(at(Feature::SpectralRolloff), 0.0, "frame {f}");
        assert_eq!(at(Feature::SpectralFlatness), 1.0, "frame {f}");
    }
}
