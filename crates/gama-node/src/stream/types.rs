//! Option and result shapes of feature streams, for `index.d.ts` (the
//! binding reads options field by field, refusing unknown keys).

use napi::bindgen_prelude::Null;
use napi::Either;
use napi_derive::napi;

use crate::batch::LatencyStats;
use crate::features::ExtractOptions;

/// Options of `new FeatureStreams(options)`.
#[napi(object)]
pub struct FeatureStreamsOptions {
    /// How every stream extracts (sampleRate required); a stream may
    /// override any of them in `start`.
    pub options: ExtractOptions,
    /// Most streams open at once (default 100); `start` past it throws E_TOO_MANY_STREAMS.
    pub max_concurrent: Option<f64>,
    /// A stream not pushed to for this long is finalized (default 5000; null: never).
    #[napi(ts_type = "number | null")]
    pub idle_timeout_ms: Option<Either<f64, Null>>,
    /// Frames computed or pending but not consumed above which `push`
    /// returns false (default 1000, 10 s at a 10 ms hop).
    pub high_water_mark: Option<f64>,
    /// Counts the streams' buffers against this manager's host budget (E_BUDGET past it).
    #[napi(ts_type = "GAMAMemoryManager")]
    pub memory_manager: Option<()>,
    /// Finalized streams started with a `cacheKey` store their whole
    /// utterance's features (as `extractFeatures` gives them) here.
    #[napi(ts_type = "AudioFeatureCache")]
    pub feature_cache: Option<()>,
    /// How logMel's topDb floor applies (default 'none': no floor, frames
    /// equal `extractFeatures` with `topDb: null`; 'running': each frame
    /// floored at the loudest value so far minus topDb).
    #[napi(ts_type = "'none' | 'running'")]
    pub top_db_reference: Option<String>,
}

/// Options of `FeatureStreams.start`.
#[napi(object)]
pub struct StreamStartOptions {
    /// Receives every frame block, in order, as it is computed (the stream
    /// then has no other reader).
    #[napi(ts_type = "(block: FrameBlock) => void")]
    pub on_frames: Option<()>,
    /// Extraction options of this stream, over the streams' own.
    #[napi(ts_type = "Partial<ExtractOptions>")]
    pub options: Option<()>,
    /// Overrides the streams' `topDbReference`.
    #[napi(ts_type = "'none' | 'running'")]
    pub top_db_reference: Option<String>,
    /// With the streams' `featureCache`: the key the whole utterance's
    /// features are stored under once it is finalized (the blocks are kept
    /// until then).
    pub cache_key: Option<String>,
}

/// What `finalize()` resolves with.
#[napi(object)]
pub struct StreamSummary {
    /// The stream's utterance id.
    pub utterance_id: String,
    /// Frames delivered.
    pub frames: f64,
    /// Samples pushed.
    pub samples: f64,
    /// Seconds of audio pushed.
    pub duration_sec: f64,
    /// Why it ended: finalize(), idleTimeoutMs or close().
    #[napi(ts_type = "'finalized' | 'idle' | 'closed'")]
    pub reason: String,
    /// How many times its onFrames callback threw.
    pub callback_errors: f64,
    /// The key its features were cached under, when started with `cacheKey`.
    pub cache_key: Option<String>,
}

/// What `FeatureStreams.getStats()` returns.
#[napi(object)]
pub struct StreamsStats {
    /// Streams open now.
    pub open: f64,
    /// Streams started.
    pub started: f64,
    /// Streams ended by finalize().
    pub finalized: f64,
    /// Streams finalized for being idle.
    pub idle_closed: f64,
    /// Streams ended by close().
    pub closed: f64,
    /// Streams aborted.
    pub aborted: f64,
    /// Streams whose audio could not be extracted (e.g. none was pushed).
    pub failed: f64,
    /// Frames computed.
    pub frames: f64,
    /// Frames computed per second since the streams were made.
    pub frames_per_second: f64,
    /// From a push to its frames reaching their consumer, in ms.
    pub latency: LatencyStats,
    /// Bytes the open streams' buffers hold.
    pub pooled_bytes: f64,
}

impl From<gama_core::stream::StreamStats> for StreamsStats {
    fn from(s: gama_core::stream::StreamStats) -> Self {
        StreamsStats {
            open: s.open as f64,
            started: s.started as f64,
            finalized: s.finalized as f64,
            idle_closed: s.idle_closed as f64,
            closed: s.closed as f64,
            aborted: s.aborted as f64,
            failed: s.failed as f64,
            frames: s.frames as f64,
            frames_per_second: s.frames_per_second,
            latency: s.latency.into(),
            pooled_bytes: s.pooled_bytes as f64,
        }
    }
}
