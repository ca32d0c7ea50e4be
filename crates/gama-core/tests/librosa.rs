//! The extraction matches librosa on the fixtures `__test__/fixtures/`
//! holds (made by `make_librosa_fixtures.py`), with the tolerances the JS
//! tests use: so a change to the core is caught by `cargo test` alone.

use base64::Engine as _;
use gama_core::features::gpu::{extract_batch_gpu, gpu_status};
use gama_core::features::{ExtractParams, Extractor, Feature, FeatureMatrix, Features, PadMode};
use serde_json::Value;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../__test__/fixtures/librosa.json"
);

fn floats(b64: &str) -> Vec<f32> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .expect("fixture data is base64");
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// The fixture's parameters, as `extractFeatures` would read them.
fn params(p: &Value) -> ExtractParams {
    let int = |k: &str| p.get(k).and_then(Value::as_u64).map(|n| n as usize);
    let num = |k: &str| p.get(k).and_then(Value::as_f64);
    ExtractParams {
        sample_rate: num("sampleRate"),
        features: Some(Feature::ALL.to_vec()),
        n_fft: int("nFft"),
        hop_length: int("hopLength"),
        win_length: int("winLength"),
        center: p.get("center").and_then(Value::as_bool),
        pad_mode: p
            .get("padMode")
            .and_then(Value::as_str)
            .map(|m| PadMode::from_name(m).expect("a pad mode")),
        n_mels: int("nMels"),
        fmin: num("fmin"),
        fmax: num("fmax"),
        htk: p.get("htk").and_then(Value::as_bool),
        slaney_norm: p.get("norm").map(|n| !n.is_null()),
        power: num("power"),
        n_mfcc: int("nMfcc"),
        top_db: p.get("topDb").map(Value::as_f64),
        ..ExtractParams::default()
    }
}

/// Largest |a - b|, and that over the scale of `expected`: its range, or
/// its largest magnitude where that is larger (values that barely vary, as
/// the flatness of clicks does, are held to rounding of their size).
fn errors(actual: &[f32], expected: &[f32]) -> (f32, f32) {
    let (min, max) = expected
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let abs = actual
        .iter()
        .zip(expected)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    let scale = (max - min).max(max.abs()).max(min.abs());
    (abs, abs / if scale > 0.0 { scale } else { 1.0 })
}

/// Runs `extract` on every fixture case (its extractor and audio) and
/// checks each feature against librosa's.
fn check_every_fixture(extract: impl Fn(&Extractor, &[f32]) -> Features) {
    let text =
        std::fs::read_to_string(FIXTURES).expect("the librosa fixtures are in the repository");
    let fixtures: Value = serde_json::from_str(&text).expect("fixtures are JSON");
    let cases = fixtures["cases"].as_array().expect("cases");
    assert!(cases.len() >= 8, "every fixture case is checked");
    for case in cases {
        let name = case["name"].as_str().unwrap_or("?");
        let options = params(&case["params"])
            .resolve()
            .expect("fixture options are valid");
        let audio = floats(case["audio"].as_str().expect("audio"));
        let extractor = gama_core::features::shared_extractor(&options).expect("an extractor");
        let out = extract(&extractor, &audio);
        for (feature, matrix) in out.iter() {
            let want = &case["features"][feature.name()];
            let expected = floats(want["data"].as_str().expect("data"));
            let FeatureMatrix { frames, bins, data } = matrix;
            let (frames, bins) = (&frames, &bins);
            let place = format!("{name}/{}", feature.name());
            assert_eq!(data.len(), expected.len(), "{place}: length");
            if !feature.is_scalar() {
                assert_eq!(
                    (*frames as u64, *bins as u64),
                    (
                        want["frames"].as_u64().unwrap(),
                        want["bins"].as_u64().unwrap()
                    ),
                    "{place}: shape"
                );
            }
            let (abs, rel) = errors(data, &expected);
            match feature {
                Feature::SpectralRolloff => {
                    // One FFT bin where cumulative sums tie, in few frames.
                    let bin_hz = (options.sample_rate / options.n_fft as f64) as f32;
                    let near = data
                        .iter()
                        .zip(&expected)
                        .filter(|(a, b)| (*a - *b).abs() > 1e-3)
                        .count();
                    assert!(abs <= bin_hz * 1.01, "{place}: off by {abs} Hz");
                    assert!(
                        near <= (data.len() / 50).max(1),
                        "{place}: a bin off in {near} of {} frames",
                        data.len()
                    );
                }
                Feature::LogMel | Feature::Mfcc => {
                    assert!(abs <= 1e-3, "{place}: absolute error {abs}")
                }
                Feature::Zcr => assert!(abs <= 1e-6, "{place}: absolute error {abs}"),
                _ => assert!(rel <= 1e-4, "{place}: relative error {rel}"),
            }
        }
    }
}

#[test]
fn every_feature_matches_librosa_on_every_fixture() {
    check_every_fixture(|extractor, audio| extractor.extract(audio).expect("the fixture extracts"));
}

#[test]
fn every_feature_matches_librosa_on_the_gpu() {
    if let Err(e) = gpu_status() {
        eprintln!("skipping every_feature_matches_librosa_on_the_gpu: {e}");
        return;
    }
    check_every_fixture(|extractor, audio| {
        // The fixture's clip twice, in one batch with a shorter clip between.
        let clips = vec![
            audio.to_vec(),
            audio[..audio.len() / 3].to_vec(),
            audio.to_vec(),
        ];
        let mut batch = extract_batch_gpu(extractor, &clips, None).expect("the batch runs");
        let last = batch.results.pop().unwrap().expect("the fixture extracts");
        let first = batch.results[0].as_ref().expect("the fixture extracts");
        for ((feature, a), (_, b)) in first.iter().zip(last.iter()) {
            let (_, rel) = errors(a.data, b.data);
            assert!(
                rel <= 1e-6,
                "{}: the same clip twice differs by {rel}",
                feature.name()
            );
        }
        last
    });
}
