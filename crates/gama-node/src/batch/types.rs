//! The option, result and enum types of the `BatchProcessor` API as
//! `index.d.ts` declares them (options are read field by field in
//! `intake.rs` and the constructor, so unknown keys are refused).

use napi_derive::napi;

/// Operation types. PROCESS has no built-in processor (register one);
/// EXTRACT_FEATURES, ANALYZE and MEASURE run natively unless a JS processor
/// is registered for them. Any other string names a custom type.
#[napi(string_enum)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum BatchOperationType {
    /// Generic processing by a registered JS processor.
    PROCESS,
    /// Feature extraction (`data`: Float32Array or `{ audio, options }`), native.
    EXTRACT_FEATURES,
    /// Per-clip summary: duration, peak, RMS and dB, silence ratio, spectral centroid, ZCR; native.
    ANALYZE,
    /// One-pass level meter: peak, RMS and mean; native.
    MEASURE,
}

/// Names of `BatchProcessorOptions`.
pub(super) const PROCESSOR_OPTIONS: [&str; 11] = [
    "maxBatchSize",
    "maxConcurrentBatches",
    "maxWaitMs",
    "batchTimeoutMs",
    "threads",
    "maxQueueSize",
    "queueFullBehavior",
    "memoryManager",
    "featureCache",
    "featureOptions",
    "featureDevice",
];

/// Options of `new BatchProcessor(options)`.
#[napi(object, object_to_js = false, object_from_js = false)]
pub struct BatchProcessorOptions {
    /// Most items per batch (default 8).
    pub max_batch_size: Option<f64>,
    /// Most batches running at once (default 4).
    pub max_concurrent_batches: Option<f64>,
    /// How long (ms) a partial batch may wait for more similar items before
    /// it starts (default 0: start as soon as a slot is free; batches then
    /// fill while all slots are busy).
    pub max_wait_ms: Option<f64>,
    /// How long (ms) one batch may run before its items reject with E_TIMEOUT (default: no limit).
    pub batch_timeout_ms: Option<f64>,
    /// Worker threads for native operations (default: the machine's cores).
    pub threads: Option<f64>,
    /// Most items waiting (default: no limit).
    pub max_queue_size: Option<f64>,
    /// With a full queue, 'reject' (default: E_QUEUE_FULL) or 'wait' for room.
    #[napi(ts_type = "'reject' | 'wait'")]
    pub queue_full_behavior: Option<String>,
    /// Batches reserve their estimated memory here and shrink under pressure.
    #[napi(ts_type = "GAMAMemoryManager")]
    pub memory_manager: Option<()>,
    /// EXTRACT_FEATURES results are looked up and stored here, under
    /// `AudioFeatureCache.keyFor(audio, options) + ':' + featureName`.
    #[napi(ts_type = "AudioFeatureCache")]
    pub feature_cache: Option<()>,
    /// Extraction options for items that give none (default: librosa's at 22050 Hz).
    #[napi(ts_type = "ExtractOptions")]
    pub feature_options: Option<()>,
    /// Where EXTRACT_FEATURES batches run (default 'cpu'): with a
    /// memoryManager that has a GPU, 'cuda' runs them there and 'auto' runs
    /// those of 2,048 frames or more there; device memory comes from the
    /// manager's GPU budget, and a batch it has no room for runs on the
    /// workers (counted in getStats().gpuFallbacks). 'cuda' without such a
    /// manager throws E_NO_GPU.
    #[napi(ts_type = "FeatureDevice")]
    pub feature_device: Option<()>,
}

/// Options of `addItem` / `addItems`.
#[napi(object, object_to_js = false, object_from_js = false)]
pub struct AddItemOptions {
    /// 0 (lowest) to 10, or 'critical' (10) | 'high' (8) | 'normal' (5, default) | 'low' (1).
    #[napi(ts_type = "number | 'critical' | 'high' | 'normal' | 'low'")]
    pub priority: Option<()>,
    /// Passed to the processor with the item.
    #[napi(ts_type = "unknown")]
    pub metadata: Option<()>,
    /// Called with `{ stage: 'queued' | 'running' | 'done', progress }`.
    #[napi(ts_type = "(progress: ItemProgress) => void")]
    pub on_progress: Option<()>,
    /// Aborting it removes a queued item or stops a running one (rejects with an AbortError).
    #[napi(ts_type = "AbortSignal")]
    pub signal: Option<()>,
    /// Items with equal keys may share a batch (default: operation options and length bucket).
    pub similarity_key: Option<String>,
    /// A name for `cancel(id)` (addItem only).
    pub id: Option<String>,
}

/// Progress of one item.
#[napi(object, object_from_js = false)]
pub struct ItemProgress {
    /// Where the item is.
    #[napi(ts_type = "'queued' | 'running' | 'done'")]
    pub stage: String,
    /// 0 to 1.
    pub progress: f64,
}

/// Counts for a progress bar, given to `onProgress` listeners.
#[napi(object, object_from_js = false)]
pub struct BatchCounts {
    /// Items waiting.
    pub queued: f64,
    /// Items in started batches.
    pub running: f64,
    /// Items that succeeded.
    pub completed: f64,
    /// Items that failed.
    pub failed: f64,
    /// Items cancelled.
    pub cancelled: f64,
    /// All of the above.
    pub total: f64,
}

/// One item as a JS processor receives it.
#[napi(object, object_from_js = false)]
pub struct BatchItem {
    /// The item's id (the one given to addItem, else a number).
    #[napi(ts_type = "string | number")]
    pub id: String,
    /// The data given to addItem.
    #[napi(ts_type = "unknown")]
    pub data: String,
    /// The metadata given to addItem.
    #[napi(ts_type = "unknown")]
    pub metadata: String,
    /// The item's AbortSignal, if one was given.
    #[napi(ts_type = "AbortSignal | undefined")]
    pub signal: String,
    /// Reports the item's progress (0 to 1) to its onProgress.
    #[napi(ts_type = "(fraction: number) => void")]
    pub report_progress: String,
}

/// What a JS processor is told about the resources of its batch.
#[napi(object, object_from_js = false)]
pub struct ResourceStrategy {
    /// 'host' or 'gpu'.
    pub device: String,
    /// Items in this batch.
    pub batch_size: f64,
    /// Bytes reserved for the batch in the memory manager (0 without one).
    pub memory_budget: f64,
    /// Worker threads of the processor.
    pub threads: f64,
}

/// Latency percentiles in milliseconds.
#[napi(object)]
pub struct LatencyStats {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// What `getStats()` returns.
#[napi(object)]
pub struct BatchStats {
    /// Items waiting.
    pub queued: f64,
    /// Items in started batches.
    pub running: f64,
    /// Items that succeeded.
    pub completed: f64,
    /// Items that failed.
    pub failed: f64,
    /// Items cancelled.
    pub cancelled: f64,
    /// Batches started.
    pub batches: f64,
    /// Mean items per batch.
    pub average_batch_size: f64,
    /// Items finished per second since the processor started.
    pub throughput_per_second: f64,
    /// Time from submission to start.
    pub wait_latency: LatencyStats,
    /// Time from start to finish.
    pub run_latency: LatencyStats,
    /// Share of worker time spent on native items (0 to 1).
    pub worker_utilisation: f64,
    /// EXTRACT_FEATURES batches run on the GPU.
    pub gpu_batches: f64,
    /// Batches meant for the GPU that ran on the workers instead (no room
    /// in the GPU budget, or a GPU failure under 'auto').
    pub gpu_fallbacks: f64,
    /// Milliseconds of GPU kernel time (CUDA events).
    pub gpu_time_ms: f64,
    /// Milliseconds of GPU copies in and out.
    pub gpu_copy_time_ms: f64,
}

/// Options of `close`.
#[napi(object)]
pub struct CloseOptions {
    /// Reject everything pending with E_CLOSED instead of finishing it.
    pub force: Option<bool>,
}

impl From<gama_core::batch::Latency> for LatencyStats {
    fn from(l: gama_core::batch::Latency) -> Self {
        LatencyStats {
            p50: l.p50,
            p95: l.p95,
            p99: l.p99,
            max: l.max,
        }
    }
}
