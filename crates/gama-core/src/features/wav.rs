//! WAV decoding (PCM 8/16/24/32-bit and 32-bit float, any channel count)
//! with optional down-mixing and band-limited resampling.

use std::fmt;
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;
use std::time::Instant;

use hound::{SampleFormat, WavReader};
use rubato::{FftFixedIn, Resampler};

use crate::error::Coded;
use crate::metrics;

/// Latency series of `load_wav`.
static LOAD_WAV: metrics::Handle = metrics::Handle::new("features", "load_wav");

/// Samples read from a file.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedAudio {
    /// Samples in [-1, 1], interleaved when `channels > 1`.
    pub samples: Vec<f32>,
    /// Samples per second per channel.
    pub sample_rate: u32,
    /// Channels in `samples`.
    pub channels: u16,
}

impl DecodedAudio {
    /// Length in seconds.
    pub fn duration_secs(&self) -> f64 {
        self.samples.len() as f64 / self.channels.max(1) as f64 / self.sample_rate as f64
    }
}

/// Why a file could not be loaded.
#[derive(Debug)]
pub enum AudioError {
    /// The file could not be opened or read.
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: io::Error,
    },
    /// The path is a directory.
    IsDirectory(String),
    /// The file is not a valid or complete WAV file.
    Format {
        /// The path.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The decoded (resampled) samples would exceed `MAX_OUTPUT_BYTES`.
    TooLarge {
        /// The path.
        path: String,
        /// Bytes the samples would take.
        bytes: u64,
    },
}

impl Coded for AudioError {
    /// Node's own codes for OS errors.
    fn code(&self) -> &'static str {
        match self {
            AudioError::Io { source, .. } => match source.kind() {
                io::ErrorKind::NotFound => "ENOENT",
                io::ErrorKind::PermissionDenied => "EACCES",
                _ => "E_AUDIO_IO",
            },
            AudioError::IsDirectory(_) => "EISDIR",
            AudioError::Format { .. } => "E_BAD_WAV",
            AudioError::TooLarge { .. } => "E_TOO_LARGE",
        }
    }
}

impl fmt::Display for AudioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AudioError::Io { path, source } => write!(f, "cannot read '{path}': {source}"),
            AudioError::IsDirectory(path) => write!(f, "'{path}' is a directory, not a WAV file"),
            AudioError::Format { path, message } => {
                write!(f, "'{path}' is not a valid WAV file: {message}")
            }
            AudioError::TooLarge { path, bytes } => write!(
                f,
                "'{path}' would decode to {bytes} bytes of samples, more than the limit of {}",
                super::MAX_OUTPUT_BYTES
            ),
        }
    }
}

impl std::error::Error for AudioError {}

/// Reads a WAV file; `mono` averages the channels; `sample_rate` resamples.
/// Its time is recorded as `features.load_wav`.
pub fn load_wav(
    path: &Path,
    sample_rate: Option<u32>,
    mono: bool,
) -> Result<DecodedAudio, AudioError> {
    let started = Instant::now();
    let result = decode(path, sample_rate, mono);
    LOAD_WAV.record_since(started);
    result
}

fn decode(path: &Path, sample_rate: Option<u32>, mono: bool) -> Result<DecodedAudio, AudioError> {
    let shown = path.display().to_string();
    if path.is_dir() {
        return Err(AudioError::IsDirectory(shown));
    }
    let format_error = |message: String| AudioError::Format {
        path: shown.clone(),
        message,
    };
    let file = File::open(path).map_err(|source| AudioError::Io {
        path: shown.clone(),
        source,
    })?;
    // Once the file is open, any failure is a malformed or truncated file.
    let reader = WavReader::new(BufReader::new(file)).map_err(|e| format_error(e.to_string()))?;
    let spec = reader.spec();
    if spec.channels == 0 || spec.sample_rate == 0 {
        return Err(format_error(
            "header declares no channels or a zero sample rate".into(),
        ));
    }
    let truncated = |e: hound::Error| format_error(format!("{e} (the file may be truncated)"));
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (SampleFormat::Float, 32) => reader
            .into_samples::<f32>()
            .collect::<Result<_, _>>()
            .map_err(truncated)?,
        (SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f64;
            reader
                .into_samples::<i32>()
                .map(|s| s.map(|v| (v as f64 * scale) as f32))
                .collect::<Result<_, _>>()
                .map_err(truncated)?
        }
        (format, bits) => {
            return Err(format_error(format!(
                "{bits}-bit {format:?} samples are not supported"
            )))
        }
    };
    let channels = spec.channels as usize;
    let mut planar: Vec<Vec<f32>> = (0..channels)
        .map(|c| {
            interleaved
                .iter()
                .skip(c)
                .step_by(channels)
                .copied()
                .collect()
        })
        .collect();
    if mono && channels > 1 {
        let frames = planar[0].len();
        let mixed = (0..frames)
            .map(|i| planar.iter().map(|ch| ch[i]).sum::<f32>() / channels as f32)
            .collect();
        planar = vec![mixed];
    }
    let rate = match sample_rate {
        Some(r) if r != spec.sample_rate => {
            let frames = planar.first().map_or(0, Vec::len) as u128;
            let bytes = frames * r as u128 / spec.sample_rate as u128 * planar.len() as u128 * 4;
            if bytes > super::MAX_OUTPUT_BYTES as u128 {
                return Err(AudioError::TooLarge {
                    path: shown,
                    bytes: bytes.min(u64::MAX as u128) as u64,
                });
            }
            planar = resample(&planar, spec.sample_rate, r).map_err(format_error)?;
            r
        }
        _ => spec.sample_rate,
    };
    let out_channels = planar.len();
    let frames = planar.first().map_or(0, Vec::len);
    let mut samples = Vec::with_capacity(frames * out_channels);
    for i in 0..frames {
        samples.extend(planar.iter().map(|ch| ch[i]));
    }
    Ok(DecodedAudio {
        samples,
        sample_rate: rate,
        channels: out_channels as u16,
    })
}

/// Band-limited FFT resampling of every channel, trimmed to `len * to / from`
/// frames with the resampler's delay removed.
fn resample(planar: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>, String> {
    const CHUNK: usize = 1024;
    let len = planar.first().map_or(0, Vec::len);
    let wanted = ((len as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, CHUNK, 2, planar.len())
        .map_err(|e| format!("cannot resample from {from} Hz to {to} Hz: {e}"))?;
    let delay = resampler.output_delay();
    let mut out: Vec<Vec<f32>> = vec![Vec::with_capacity(wanted + delay + CHUNK); planar.len()];
    let mut at = 0;
    let fail = |e: rubato::ResampleError| format!("resampling failed: {e}");
    while out[0].len() < wanted + delay {
        let need = resampler.input_frames_next();
        let chunk = if at + need <= len {
            let slices: Vec<&[f32]> = planar.iter().map(|ch| &ch[at..at + need]).collect();
            resampler.process(&slices, None).map_err(fail)?
        } else if at < len {
            let slices: Vec<&[f32]> = planar.iter().map(|ch| &ch[at..]).collect();
            resampler
                .process_partial(Some(&slices), None)
                .map_err(fail)?
        } else {
            resampler
                .process_partial::<&[f32]>(None, None)
                .map_err(fail)?
        };
        at += need;
        for (o, c) in out.iter_mut().zip(chunk) {
            o.extend_from_slice(&c);
        }
    }
    Ok(out
        .into_iter()
        .map(|ch| ch[delay..delay + wanted].to_vec())
        .collect())
}
