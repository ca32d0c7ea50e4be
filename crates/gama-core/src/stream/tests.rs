//! Streams equal offline extraction for any chunking; the registry's
//! limits, ordering, backpressure, abort and idle ending.

use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::*;
use crate::features::tests::options;
use crate::features::{ExtractError, Extractor, Feature, Features, PadMode};

const ALL: [Feature; 8] = [
    Feature::LogMel,
    Feature::Mfcc,
    Feature::Rms,
    Feature::Zcr,
    Feature::SpectralCentroid,
    Feature::Stft,
    Feature::Chroma,
    Feature::SpectralFlatness,
];

/// Speech-like test audio: a gliding tone in noise, with silent stretches.
fn audio(samples: usize, seed: u32) -> Vec<f32> {
    let mut state = seed.wrapping_mul(2_654_435_761).max(1);
    (0..samples)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let noise = (state as f32 / u32::MAX as f32 - 0.5) * 0.1;
            let t = i as f32 / 16_000.0;
            let gate = if (i / 3000) % 4 == 3 { 0.0 } else { 1.0 };
            gate * ((2.0 * std::f32::consts::PI * (200.0 + 300.0 * t) * t).sin() * 0.5 + noise)
        })
        .collect()
}

/// Every block of a stream of `audio` pushed in `chunk`-sample pieces,
/// joined into one result per feature.
fn streamed(
    e: &Arc<Extractor>,
    reference: TopDbReference,
    audio: &[f32],
    chunk: usize,
) -> Features {
    let mut u = Utterance::new(e.clone(), reference);
    let mut blocks = Vec::new();
    for piece in audio.chunks(chunk) {
        u.push(piece).unwrap();
        blocks.extend(u.ready().unwrap());
    }
    blocks.extend(u.finish().unwrap());
    join(&blocks)
}

fn join(blocks: &[Block]) -> Features {
    let mut next = 0;
    let frames: usize = blocks.iter().map(|b| b.features.frames).sum();
    let mut joined: Vec<(Feature, Vec<f32>)> = Vec::new();
    for b in blocks {
        assert_eq!(b.first, next, "blocks come in order, without gaps");
        next += b.features.frames;
        for (i, (feature, m)) in b.features.iter().enumerate() {
            if joined.len() <= i {
                joined.push((feature, Vec::new()));
            }
            joined[i].1.extend_from_slice(m.data);
        }
    }
    Features::from_matrices(frames, joined.iter().map(|(f, v)| (*f, v.as_slice()))).unwrap()
}

#[test]
fn any_chunking_equals_offline_bit_for_bit() {
    let clip = audio(16_000 + 123, 7);
    for (center, pad) in [
        (true, PadMode::Constant),
        (true, PadMode::Reflect),
        (false, PadMode::Constant),
    ] {
        let mut o = options(&ALL);
        o.center = center;
        o.pad_mode = pad;
        o.top_db = None;
        let e = Arc::new(Extractor::new(o).unwrap());
        let offline = e.extract(&clip).unwrap();
        for chunk in [1, 7, 320, 16_000, clip.len()] {
            let s = streamed(&e, TopDbReference::None, &clip, chunk);
            assert_eq!(s, offline, "center {center}, {pad:?}, chunks of {chunk}");
        }
    }
}

#[test]
fn short_utterances_equal_offline_or_fail_as_it_does() {
    let e = Arc::new(
        Extractor::new({
            let mut o = options(&ALL);
            o.top_db = None;
            o.pad_mode = PadMode::Reflect;
            o
        })
        .unwrap(),
    );
    for len in [1, 2, 100, 256, 257, 511, 512, 513] {
        let clip = audio(len, 3);
        assert_eq!(
            streamed(&e, TopDbReference::None, &clip, 5),
            e.extract(&clip).unwrap(),
            "{len}"
        );
    }
    let mut u = Utterance::new(e.clone(), TopDbReference::None);
    assert_eq!(u.finish().unwrap_err(), ExtractError::Empty);
    let mut o = options(&[Feature::Rms]);
    o.center = false;
    let mut u = Utterance::new(Arc::new(Extractor::new(o).unwrap()), TopDbReference::None);
    u.push(&[0.5; 100]).unwrap();
    assert!(matches!(u.finish(), Err(ExtractError::TooShort { .. })));
}

#[test]
fn a_kept_utterance_joins_into_what_offline_gives_the_whole_clip_whatever_the_floor() {
    // Loud, then 60 dB quieter: the whole clip's floor (peak - top_db)
    // lifts the quiet part, which neither reference floors as offline does.
    let mut clip = audio(24_000, 5);
    clip[12_000..].iter_mut().for_each(|x| *x *= 1e-3);
    let features = [
        vec![Feature::LogMel, Feature::Mfcc, Feature::Rms],
        vec![Feature::Mfcc, Feature::SpectralCentroid],
        vec![Feature::Rms],
    ];
    for (features, top_db) in features.iter().zip([Some(30.0), Some(30.0), None]) {
        let mut o = options(features);
        o.top_db = top_db;
        let e = Arc::new(Extractor::new(o).unwrap());
        let offline = e.extract(&clip).unwrap();
        for reference in [TopDbReference::None, TopDbReference::Running] {
            for chunk in [1_000, 7_777, clip.len()] {
                let mut u = Utterance::new(e.clone(), reference).keeping_whole();
                for piece in clip.chunks(chunk) {
                    u.push(piece).unwrap();
                    u.ready().unwrap();
                }
                u.finish().unwrap();
                let whole = u.whole().unwrap();
                assert_eq!(
                    whole, offline,
                    "{features:?}, {reference:?}, chunks of {chunk}"
                );
            }
        }
        let streamed = streamed(&e, TopDbReference::None, &clip, 1_000);
        if top_db.is_some() {
            assert_ne!(streamed, offline, "the blocks themselves are not floored");
        }
    }
    let mut plain = Utterance::new(
        Arc::new(Extractor::new(options(&ALL)).unwrap()),
        TopDbReference::None,
    );
    plain.push(&clip).unwrap();
    plain.finish().unwrap();
    assert_eq!(plain.whole(), None, "kept only when asked");
}

#[test]
fn a_running_reference_floors_each_frame_at_the_peak_so_far() {
    let clip = audio(24_000, 11);
    let mut o = options(&[Feature::LogMel, Feature::Mfcc]);
    o.top_db = Some(30.0);
    let e = Arc::new(Extractor::new(o.clone()).unwrap());
    o.top_db = None;
    let raw = Extractor::new(o).unwrap().extract(&clip).unwrap();
    let raw = raw.get(Feature::LogMel).unwrap();
    let whole = streamed(&e, TopDbReference::Running, &clip, clip.len());
    let got = whole.get(Feature::LogMel).unwrap();
    let mut peak = f32::NEG_INFINITY;
    for f in 0..raw.frames {
        let row = &raw.data[f * 64..(f + 1) * 64];
        peak = row.iter().fold(peak, |m, &v| m.max(v));
        for (b, &v) in row.iter().enumerate() {
            assert_eq!(
                got.data[f * 64 + b],
                v.max(peak - 30.0),
                "frame {f} bin {b}"
            );
        }
    }
    // Chunking changes nothing, MFCCs included.
    for chunk in [1, 160, 333] {
        assert_eq!(streamed(&e, TopDbReference::Running, &clip, chunk), whole);
    }
}

#[test]
fn a_refused_sample_leaves_the_utterance_as_it_was() {
    let e = Arc::new(Extractor::new(options(&[Feature::Rms])).unwrap());
    let mut u = Utterance::new(e, TopDbReference::None);
    u.push(&[0.1; 10]).unwrap();
    let err = u.push(&[0.0, f32::NAN]).unwrap_err();
    assert!(matches!(err, ExtractError::NotFinite { index: 11, .. }));
    assert_eq!(u.received(), 10);
}

#[test]
fn the_window_stays_bounded_on_a_long_stream() {
    let e = Arc::new(Extractor::new(options(&[Feature::Rms])).unwrap());
    let mut u = Utterance::new(e, TopDbReference::None);
    let chunk = audio(320, 5);
    for _ in 0..5_000 {
        u.push(&chunk).unwrap();
        u.ready().unwrap();
    }
    assert!(u.window_bytes() < 64 * 1024, "{} bytes", u.window_bytes());
}

/// A sink that forwards every event to a channel.
struct ToChannel(Mutex<Sender<StreamEvent>>);

impl StreamSink for ToChannel {
    fn deliver(&self, event: StreamEvent) {
        let _ = self.0.lock().send(event);
    }
}

fn streams(config: StreamsConfig) -> (Streams, Receiver<StreamEvent>) {
    let (tx, rx) = channel();
    (
        Streams::new(config, Arc::new(ToChannel(Mutex::new(tx))), None),
        rx,
    )
}

/// Waits for the next event (the generous bound only turns a hang into a failure).
fn next(rx: &Receiver<StreamEvent>) -> StreamEvent {
    rx.recv_timeout(Duration::from_secs(60)).expect("an event")
}

fn extractor() -> Arc<Extractor> {
    let mut o = options(&[Feature::LogMel, Feature::Rms]);
    o.top_db = None;
    Arc::new(Extractor::new(o).unwrap())
}

#[test]
fn pushed_audio_comes_back_as_ordered_frames_then_a_summary() {
    let (s, rx) = streams(StreamsConfig::default());
    let clip = audio(8_000, 1);
    let stream = s
        .start("u1", extractor(), TopDbReference::None, false)
        .unwrap();
    for piece in clip.chunks(320) {
        assert!(stream.push(piece).unwrap());
    }
    stream.finalize();
    let mut blocks = Vec::new();
    let summary = loop {
        match next(&rx) {
            StreamEvent::Frames { serial, block, .. } => {
                assert_eq!(serial, stream.serial());
                blocks.push(block);
            }
            StreamEvent::Ended { outcome, .. } => break outcome.unwrap(),
        }
    };
    assert_eq!(join(&blocks), extractor().extract(&clip).unwrap());
    assert_eq!(summary.frames, 51);
    assert_eq!(summary.samples, 8_000);
    assert_eq!(summary.reason, EndReason::Finalized);
    assert!(!stream.is_open());
    assert!(matches!(stream.push(&clip), Err(StreamError::Closed(_))));
    let stats = s.stats();
    assert_eq!(
        (stats.open, stats.started, stats.finalized, stats.frames),
        (0, 1, 1, 51)
    );
}

#[test]
fn limits_and_bad_chunks_are_refused_with_their_codes() {
    use crate::error::Coded;
    let config = StreamsConfig {
        max_concurrent: 2,
        ..StreamsConfig::default()
    };
    let (s, _rx) = streams(config);
    let a = s
        .start("a", extractor(), TopDbReference::None, false)
        .unwrap();
    let dup = s
        .start("a", extractor(), TopDbReference::None, false)
        .err()
        .unwrap();
    assert_eq!(dup.code(), "E_DUPLICATE_STREAM");
    s.start("b", extractor(), TopDbReference::None, false)
        .unwrap();
    let many = s
        .start("c", extractor(), TopDbReference::None, false)
        .err()
        .unwrap();
    assert_eq!(many.code(), "E_TOO_MANY_STREAMS");
    assert_eq!(s.get("zz").err().unwrap().code(), "E_UNKNOWN_STREAM");
    assert_eq!(a.push(&[]).unwrap_err().code(), "E_EMPTY_CHUNK");
    let nan = a.push(&[0.0, 1.0, f32::INFINITY]).unwrap_err();
    assert!(matches!(nan, StreamError::NotFinite { index: 2, .. }));
    assert!(
        a.push(&[0.5; 10]).is_ok(),
        "the stream goes on after a refused chunk"
    );
    assert!(a.abort());
    assert!(!a.abort());
    assert_eq!(a.push(&[0.5]).unwrap_err().code(), "E_STREAM_CLOSED");
    // The aborted stream's place is free again.
    s.start("c", extractor(), TopDbReference::None, false)
        .unwrap();
    assert_eq!(s.close(), 2);
    assert_eq!(
        s.start("d", extractor(), TopDbReference::None, false)
            .err()
            .unwrap()
            .code(),
        "E_CLOSED"
    );
}

#[test]
fn backpressure_reports_frames_not_consumed() {
    let config = StreamsConfig {
        high_water_frames: 20,
        ..StreamsConfig::default()
    };
    let (s, rx) = streams(config);
    let stream = s
        .start("u", extractor(), TopDbReference::None, false)
        .unwrap();
    // 16,000 samples: 100 frames, far above the mark, however far the job got.
    assert!(!stream.push(&audio(16_000, 2)).unwrap());
    let mut sent = 0;
    while sent < 98 {
        if let StreamEvent::Frames { block, .. } = next(&rx) {
            sent += block.features.frames;
        }
    }
    assert!(!stream.consumed(50));
    assert!(stream.consumed(48));
}

#[test]
fn an_idle_stream_is_finalized_and_a_closed_set_ends_every_stream() {
    let config = StreamsConfig {
        idle_timeout: Some(Duration::from_millis(20)),
        ..StreamsConfig::default()
    };
    let (s, rx) = streams(config);
    let stream = s
        .start("idle", extractor(), TopDbReference::None, false)
        .unwrap();
    let pushed = stream.push(&audio(4_000, 3));
    let outcome = loop {
        if let StreamEvent::Ended { outcome, .. } = next(&rx) {
            break outcome;
        }
    };
    match pushed {
        Ok(_) => {
            assert_eq!(outcome.unwrap().reason, EndReason::Idle);
            assert_eq!(s.stats().idle_closed, 1);
        }
        // This thread stalled past the idle timeout before its push: the
        // stream idled out empty, as it should.
        Err(e) => {
            assert_eq!(crate::error::Coded::code(&e), "E_STREAM_CLOSED");
            assert_eq!(outcome.unwrap_err(), ExtractError::Empty);
        }
    }

    let (s, rx) = streams(StreamsConfig::default());
    let kept = s
        .start("kept", extractor(), TopDbReference::None, false)
        .unwrap();
    kept.push(&audio(1_000, 4)).unwrap();
    let empty = s
        .start("empty", extractor(), TopDbReference::None, false)
        .unwrap();
    assert_eq!(s.close(), 2);
    let mut ended = Vec::new();
    while ended.len() < 2 {
        if let StreamEvent::Ended { serial, outcome } = next(&rx) {
            ended.push((serial, outcome));
        }
    }
    ended.sort_by_key(|(serial, _)| *serial);
    assert_eq!(ended[0].1.as_ref().unwrap().reason, EndReason::Closed);
    assert_eq!(ended[1].0, empty.serial());
    assert_eq!(ended[1].1, Err(ExtractError::Empty));
}

#[test]
fn many_streams_pushed_from_many_threads_each_equal_offline() {
    let (s, rx) = streams(StreamsConfig {
        max_concurrent: 64,
        ..StreamsConfig::default()
    });
    let e = extractor();
    let clips: Vec<Vec<f32>> = (0..32)
        .map(|i| audio(3_000 + 97 * i, i as u32 + 1))
        .collect();
    let handles: Vec<Stream> = (0..clips.len())
        .map(|i| {
            s.start(&format!("u{i}"), e.clone(), TopDbReference::None, false)
                .unwrap()
        })
        .collect();
    // Four threads, each feeding eight streams in uneven chunks, interleaved.
    std::thread::scope(|scope| {
        for t in 0..4 {
            let (handles, clips) = (&handles, &clips);
            scope.spawn(move || {
                let mine: Vec<usize> = (t..clips.len()).step_by(4).collect();
                let mut at = vec![0; clips.len()];
                let mut open = mine.len();
                let mut round = 0;
                while open > 0 {
                    open = 0;
                    for &i in &mine {
                        let step = 1 + (round * 37 + i * 11) % 700;
                        let end = (at[i] + step).min(clips[i].len());
                        if at[i] < end {
                            handles[i].push(&clips[i][at[i]..end]).unwrap();
                            at[i] = end;
                            if end == clips[i].len() {
                                handles[i].finalize();
                            }
                        }
                        if at[i] < clips[i].len() {
                            open += 1;
                        }
                    }
                    round += 1;
                }
            });
        }
    });
    let mut blocks: Vec<Vec<Block>> = (0..clips.len()).map(|_| Vec::new()).collect();
    let mut ended = 0;
    while ended < clips.len() {
        match next(&rx) {
            StreamEvent::Frames { serial, block, .. } => {
                let i = handles.iter().position(|h| h.serial() == serial).unwrap();
                blocks[i].push(block);
            }
            StreamEvent::Ended { outcome, .. } => {
                assert_eq!(outcome.unwrap().reason, EndReason::Finalized);
                ended += 1;
            }
        }
    }
    for (i, clip) in clips.iter().enumerate() {
        assert_eq!(join(&blocks[i]), e.extract(clip).unwrap(), "stream {i}");
    }
    assert_eq!(s.stats().finalized, clips.len() as u64);
}
