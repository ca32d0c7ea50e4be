//! One batch on the GPU: the clips are checked and laid out one after
//! another, copied in with their tables in one transfer, framed, transformed
//! by one batched FFT, reduced to every feature asked for by a few kernels
//! that each take one frame per block, and copied out in one transfer.

use std::sync::Arc;
use std::time::Duration;

use cudarc::driver::{result, sys, DeviceRepr, LaunchConfig, PushKernelArg};

use super::engine::Engine;
use super::failed;
use super::staging::{get, put, Regions};
use crate::features::{ClipResult, ExtractError, Extractor, Feature, Features, PadMode};
use crate::memory::MemoryManager;

/// Threads per block of every kernel.
const THREADS: u32 = 128;

/// Where each feature lies in a clip's result, as the kernels read it:
/// feature f starts `frames * prefix[f]` values in (`prefix[f] < 0`: not
/// asked for) and has `bins[f]` values per frame.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
struct KernelLayout {
    prefix: [i32; 12],
    bins: [i32; 12],
}

// SAFETY: a plain C struct of 24 i32s, declared identically in kernels.cu.
unsafe impl DeviceRepr for KernelLayout {}

/// What the GPU spent on a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct GpuTiming {
    /// Copying the clips in.
    pub copy_in: Duration,
    /// The kernels and the FFT.
    pub compute: Duration,
    /// Copying the results out.
    pub copy_out: Duration,
}

/// The results of a batch run on the GPU.
#[derive(Debug)]
pub struct GpuBatch {
    /// One result per clip, in order.
    pub results: Vec<ClipResult>,
    /// Time on the device.
    pub timing: GpuTiming,
}

/// A clip that passed the checks: its index in the batch and its frames.
struct Accepted {
    index: usize,
    frames: usize,
}

/// Runs `clips` through `extractor`'s options on the GPU, drawing device
/// memory from `manager`.
pub(super) fn run<C: AsRef<[f32]>>(
    engine: &mut Engine,
    manager: &Arc<MemoryManager>,
    extractor: &Extractor,
    clips: &[C],
) -> Result<GpuBatch, ExtractError> {
    let mut results: Vec<Option<ClipResult>> = (0..clips.len()).map(|_| None).collect();
    let mut accepted = Vec::with_capacity(clips.len());
    for (index, clip) in clips.iter().enumerate() {
        // The CPU path's checks, so both reject a clip alike.
        match extractor.check_input(clip.as_ref()) {
            Ok(frames) => accepted.push(Accepted { index, frames }),
            Err(e) => results[index] = Some(Err(e)),
        }
    }
    let mut timing = GpuTiming::default();
    if !accepted.is_empty() {
        let computed = batch(engine, manager, extractor, clips, &accepted, &mut timing)?;
        for (a, features) in accepted.iter().zip(computed) {
            results[a.index] = Some(Ok(features));
        }
    }
    Ok(GpuBatch {
        results: results
            .into_iter()
            .map(|r| r.expect("every clip has a result"))
            .collect(),
        timing,
    })
}

/// The byte offsets of a batch's regions, in the staging buffer (the input
/// part) and on the device (all of it).
struct Offsets {
    samples: u64,
    sample_start: u64,
    frame_start: u64,
    out_base: u64,
    /// Bytes copied in: the regions above.
    input_len: u64,
    frames: u64,
    spectrum: u64,
    work: u64,
    log_mel: u64,
    peaks: u64,
    out: u64,
    /// Values of the results.
    out_values: u64,
    total: u64,
}

fn batch<C: AsRef<[f32]>>(
    engine: &mut Engine,
    manager: &Arc<MemoryManager>,
    extractor: &Extractor,
    clips: &[C],
    accepted: &[Accepted],
    timing: &mut GpuTiming,
) -> Result<Vec<Features>, ExtractError> {
    // Every CUDA call below (plans, tables, pinned memory, copies,
    // launches) needs the engine's context current on this thread.
    engine
        .context
        .bind_to_thread()
        .map_err(|e| failed("binding the CUDA context", e))?;
    let o = extractor.options();
    let layout = extractor.layout();
    let (n, bins) = (o.n_fft, o.n_fft / 2 + 1);
    let wants = |f: Feature| layout.iter().any(|(g, _)| *g == f);
    let log_mel = wants(Feature::LogMel) || wants(Feature::Mfcc);
    let spectral = layout
        .iter()
        .any(|(f, _)| !matches!(f, Feature::Rms | Feature::Zcr));
    let time_domain = wants(Feature::Rms) || wants(Feature::Zcr);

    // The batch's tables: where each clip's samples, frames and results start.
    let count = accepted.len();
    let per_frame: usize = layout.iter().map(|(_, b)| b).sum();
    let mut sample_start = Vec::with_capacity(count + 1);
    let mut frame_start = Vec::with_capacity(count + 1);
    let mut out_base = Vec::with_capacity(count);
    let (mut samples, mut frames, mut values) = (0u64, 0u64, 0u64);
    for a in accepted {
        sample_start.push(samples);
        frame_start.push(frames);
        out_base.push(values);
        samples += clips[a.index].as_ref().len() as u64;
        frames += a.frames as u64;
        values += (a.frames * per_frame) as u64;
    }
    sample_start.push(samples);
    frame_start.push(frames);
    let total_frames = u32::try_from(frames)
        .ok()
        .filter(|f| *f < i32::MAX as u32)
        .ok_or_else(|| {
            ExtractError::GpuUnsupported(format!(
                "{frames} frames in one batch (at most 2^31 - 1; split the batch)"
            ))
        })?;
    let frame_start: Vec<u32> = frame_start.iter().map(|&f| f as u32).collect();

    let tables = engine.tables(o)?;
    // Planned once: the plan stays borrowed (from the engine's plans)
    // until its transform is queued below.
    let fft = if spectral {
        Some(engine.plans.get(n, total_frames as usize, &engine.stream)?)
    } else {
        None
    };
    let mut r = Regions::default();
    let mut offsets = Offsets {
        samples: r.take(samples * 4),
        sample_start: r.take(sample_start.len() as u64 * 8),
        frame_start: r.take(frame_start.len() as u64 * 4),
        out_base: r.take(out_base.len() as u64 * 8),
        input_len: 0,
        frames: 0,
        spectrum: 0,
        work: 0,
        log_mel: 0,
        peaks: 0,
        out: 0,
        out_values: values,
        total: 0,
    };
    offsets.input_len = r.len();
    if let Some(fft) = &fft {
        let batch = fft.batch as u64;
        offsets.frames = r.take(batch * n as u64 * 8);
        offsets.spectrum = r.take(batch * bins as u64 * 16);
        offsets.work = r.take(fft.work_bytes);
    }
    if log_mel {
        offsets.log_mel = r.take(frames * o.n_mels as u64 * 4);
    }
    offsets.peaks = r.take(count as u64 * 4);
    offsets.out = r.take(values * 4);
    offsets.total = r.len();

    let lease = manager
        .allocate_gpu(offsets.total, "extractFeaturesBatch")
        .map_err(|e| {
            if e.is_over_budget() {
                ExtractError::GpuBudget(e.to_string())
            } else {
                ExtractError::Gpu(e.to_string())
            }
        })?;
    let base = lease.device_address();
    // Dropped before the lease: on an early return, what the stream still
    // runs finishes before the memory goes back to the pool.
    let _drained = Drained(engine.stream.cu_stream());

    // Stage the input.
    let input = engine.staging.input(offsets.input_len)?;
    {
        let bytes = input.bytes_mut();
        for (a, at) in accepted.iter().zip(&sample_start) {
            put(bytes, offsets.samples + at * 4, clips[a.index].as_ref());
        }
        put(bytes, offsets.sample_start, &sample_start);
        put(bytes, offsets.frame_start, &frame_start);
        put(bytes, offsets.out_base, &out_base);
    }
    let stream = engine.stream.cu_stream();
    let events = engine.events;
    let record = |event: sys::CUevent| {
        // SAFETY: a live event and stream of the engine, context bound.
        unsafe { result::event::record(event, stream) }.map_err(|e| failed("cuEventRecord", e))
    };
    record(events[0])?;
    // SAFETY: the lease holds `input_len` bytes from `base`; the pinned
    // buffer is not touched again until the stream has been synchronised.
    unsafe {
        result::memcpy_htod_async(
            base,
            &engine.staging.input_bytes()[..offsets.input_len as usize],
            stream,
        )
    }
    .map_err(|e| failed("cuMemcpyHtoDAsync", e))?;
    record(events[1])?;

    let kernel_layout = kernel_layout(&layout);
    let clips_count = count as i32;
    let at = |offset: u64| base + offset;
    let per_frame_grid = |shared: u32| LaunchConfig {
        grid_dim: (total_frames, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: shared,
    };
    let (samples_at, sample_start_at, frame_start_at, out_base_at, out_at) = (
        at(offsets.samples),
        at(offsets.sample_start),
        at(offsets.frame_start),
        at(offsets.out_base),
        at(offsets.out),
    );
    let offset = if o.center { (n / 2) as i32 } else { 0 };
    let reflect = i32::from(o.pad_mode == PadMode::Reflect);
    let (n_i, hop) = (n as i32, o.hop_length as i32);
    let k = &engine.kernels;
    let s = &engine.stream;
    let launch_failed = |e| failed("a kernel launch", e);
    let peaks_at = at(offsets.peaks);
    let peaks_count = count as u32;
    let neg_inf = f32::NEG_INFINITY;
    // Every launch below passes the arguments of its kernel in kernels.cu
    // one for one; every address lies in the lease or the tables, sized
    // above for the frames and clips launched.
    // SAFETY: as just said.
    unsafe {
        s.launch_builder(&k.fill)
            .arg(&peaks_at)
            .arg(&peaks_count)
            .arg(&neg_inf)
            .launch(LaunchConfig::for_num_elems(peaks_count.max(1)))
    }
    .map_err(launch_failed)?;
    if let Some(fft) = fft {
        let frames_at = at(offsets.frames);
        let spectrum_at = at(offsets.spectrum);
        // SAFETY: as above.
        unsafe {
            s.launch_builder(&k.frame_signal)
                .arg(&samples_at)
                .arg(&sample_start_at)
                .arg(&frame_start_at)
                .arg(&clips_count)
                .arg(&tables.at.window)
                .arg(&n_i)
                .arg(&hop)
                .arg(&offset)
                .arg(&reflect)
                .arg(&frames_at)
                .launch(per_frame_grid(0))
        }
        .map_err(launch_failed)?;
        // SAFETY: frames, spectrum and work area were sized for this offsets.
        unsafe { fft.run(frames_at, spectrum_at, at(offsets.work))? };
        let bins_i = bins as i32;
        let mel_source: i32 = if o.power == 2.0 {
            0
        } else if o.power == 1.0 {
            1
        } else {
            2
        };
        let power = o.power as f32;
        let n_mels: i32 = if wants(Feature::Mel) || log_mel {
            o.n_mels as i32
        } else {
            0
        };
        let log_mel_at: u64 = if log_mel { at(offsets.log_mel) } else { 0 };
        // SAFETY: as above.
        unsafe {
            s.launch_builder(&k.spectral)
                .arg(&spectrum_at)
                .arg(&bins_i)
                .arg(&frame_start_at)
                .arg(&clips_count)
                .arg(&kernel_layout)
                .arg(&out_base_at)
                .arg(&out_at)
                .arg(&mel_source)
                .arg(&power)
                .arg(&tables.at.mel_start)
                .arg(&tables.at.mel_len)
                .arg(&tables.at.mel_at)
                .arg(&tables.at.mel_weights)
                .arg(&n_mels)
                .arg(&log_mel_at)
                .arg(&peaks_at)
                .arg(&tables.at.freqs)
                .arg(&tables.at.chroma)
                .launch(per_frame_grid(2 * bins as u32 * 4))
        }
        .map_err(launch_failed)?;
        if log_mel {
            let has_top_db = i32::from(o.top_db.is_some());
            let top_db = o.top_db.unwrap_or(0.0) as f32;
            let n_mfcc = o.n_mfcc as i32;
            let n_mels = o.n_mels as i32;
            // SAFETY: as above.
            unsafe {
                s.launch_builder(&k.finish)
                    .arg(&log_mel_at)
                    .arg(&n_mels)
                    .arg(&frame_start_at)
                    .arg(&clips_count)
                    .arg(&kernel_layout)
                    .arg(&out_base_at)
                    .arg(&out_at)
                    .arg(&peaks_at)
                    .arg(&has_top_db)
                    .arg(&top_db)
                    .arg(&tables.at.dct)
                    .arg(&n_mfcc)
                    .launch(per_frame_grid(o.n_mels as u32 * 4))
            }
            .map_err(launch_failed)?;
        }
    }
    if time_domain {
        // SAFETY: as above.
        unsafe {
            s.launch_builder(&k.time_domain)
                .arg(&samples_at)
                .arg(&sample_start_at)
                .arg(&frame_start_at)
                .arg(&clips_count)
                .arg(&n_i)
                .arg(&hop)
                .arg(&offset)
                .arg(&reflect)
                .arg(&kernel_layout)
                .arg(&out_base_at)
                .arg(&out_at)
                .launch(per_frame_grid(0))
        }
        .map_err(launch_failed)?;
    }
    record(events[2])?;
    let out_bytes = offsets.out_values * 4;
    let output = engine.staging.output(out_bytes)?;
    // SAFETY: the lease holds the results at `out`; the pinned buffer is
    // read only after the stream is synchronised below.
    unsafe {
        result::memcpy_dtoh_async(
            &mut output.bytes_mut()[..out_bytes as usize],
            at(offsets.out),
            stream,
        )
    }
    .map_err(|e| failed("cuMemcpyDtoHAsync", e))?;
    record(events[3])?;
    // SAFETY: a live stream of the engine's context.
    unsafe { result::stream::synchronize(stream) }.map_err(|e| failed("running the batch", e))?;
    let elapsed = |a: usize, b: usize| {
        // SAFETY: both events were recorded on the synchronised stream.
        let ms = unsafe { result::event::elapsed(events[a], events[b]) }.unwrap_or(0.0);
        Duration::from_secs_f64(f64::from(ms.max(0.0)) / 1e3)
    };
    *timing = GpuTiming {
        copy_in: elapsed(0, 1),
        compute: elapsed(1, 2),
        copy_out: elapsed(2, 3),
    };
    let bytes = engine.staging.output_bytes();
    Ok(accepted
        .iter()
        .zip(&out_base)
        .map(|(a, &base)| {
            let mut data = vec![0f32; a.frames * per_frame];
            get(bytes, base * 4, &mut data);
            Features::laid_out(a.frames, data, &layout)
        })
        .collect())
}

/// Waits for a stream when dropped.
struct Drained(sys::CUstream);

impl Drop for Drained {
    fn drop(&mut self) {
        // SAFETY: the engine's stream, which outlives every batch.
        let _ = unsafe { result::stream::synchronize(self.0) };
    }
}

/// `layout` as the kernels read it.
fn kernel_layout(layout: &[(Feature, usize)]) -> KernelLayout {
    let mut k = KernelLayout {
        prefix: [-1; 12],
        bins: [0; 12],
    };
    let mut prefix = 0;
    for &(feature, bins) in layout {
        k.prefix[feature as usize] = prefix as i32;
        k.bins[feature as usize] = bins as i32;
        prefix += bins;
    }
    k
}
