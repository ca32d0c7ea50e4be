//! WAV decoding (PCM 8 to 32-bit, 32 and 64-bit float, A-law and µ-law,
//! any channel count) with optional down-mixing and band-limited
//! resampling.

use std::fmt;
use std::fs::File;
use std::io;
use std::path::Path;
use std::time::Instant;

use rubato::{FftFixedIn, Resampler};
use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{Decoder, DecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::{FormatOptions, FormatReader};
use symphonia::core::io::MediaSourceStream;
use symphonia::default::codecs::PcmDecoder;
use symphonia::default::formats::WavReader;

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
    /// Resampling was asked for and a sample is NaN or infinite (a float
    /// file can hold them; a resampler cannot filter them).
    NotFinite {
        /// The path.
        path: String,
        /// Index of the first such sample, counted in the file's order.
        index: usize,
        /// Its value.
        value: f32,
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
            AudioError::NotFinite { .. } => "E_NOT_FINITE",
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
            AudioError::NotFinite { path, index, value } => write!(
                f,
                "'{path}' holds {} at sample {index}: a file with NaN or infinite samples cannot be resampled (load it at its own rate to see them)",
                super::error::non_finite_name(*value)
            ),
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
    let Decoded {
        interleaved,
        rate,
        channels,
    } = read_wav(file).map_err(format_error)?;
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
        Some(r) if r != rate => {
            if let Some((index, value)) = super::math::first_non_finite(&interleaved) {
                return Err(AudioError::NotFinite {
                    path: shown,
                    index,
                    value,
                });
            }
            let frames = planar.first().map_or(0, Vec::len) as u128;
            let bytes = frames * r as u128 / rate as u128 * planar.len() as u128 * 4;
            if bytes > super::MAX_OUTPUT_BYTES as u128 {
                return Err(AudioError::TooLarge {
                    path: shown,
                    bytes: bytes.min(u64::MAX as u128) as u64,
                });
            }
            planar = resample(&planar, rate, r).map_err(format_error)?;
            r
        }
        _ => rate,
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

/// A WAV file's samples as read, before mixing or resampling.
struct Decoded {
    interleaved: Vec<f32>,
    rate: u32,
    channels: usize,
}

/// Writers that stream a WAV file (ffmpeg or sox writing to a pipe) cannot
/// go back to fill in the data chunk's size and leave a placeholder:
/// 0xFFFFFFFF, or a size just under 2 GiB. A file declaring at least this
/// many bytes of samples and holding fewer is read to its end, as
/// libsndfile does, instead of being taken as truncated.
const STREAMED_DATA_BYTES: u64 = 0x7FFF_F000;

/// Reads every sample of a WAV file (PCM 8 to 32-bit, 32 or 64-bit float,
/// A-law or µ-law, plain or WAVE_FORMAT_EXTENSIBLE) as f32 in [-1, 1],
/// with symphonia; a file shorter than its header says is an error,
/// unless the size is a streaming writer's placeholder.
fn read_wav(file: File) -> Result<Decoded, String> {
    let source = MediaSourceStream::new(Box::new(file), Default::default());
    let mut reader =
        WavReader::try_new(source, &FormatOptions::default()).map_err(|e| e.to_string())?;
    let track = reader
        .default_track()
        .ok_or("the file has no audio track")?;
    let params = track.codec_params.clone();
    let rate = params.sample_rate.filter(|&r| r > 0);
    let channels = params.channels.map(|c| c.count()).filter(|&n| n > 0);
    let (Some(rate), Some(channels)) = (rate, channels) else {
        return Err("header declares no channels or a zero sample rate".into());
    };
    let mut decoder = PcmDecoder::try_new(&params, &DecoderOptions::default())
        .map_err(|e| {
            format!("{e}: its sample format is not one read here (PCM 8 to 32-bit, 32 or 64-bit float, A-law, µ-law)")
        })?;
    let mut interleaved = Vec::with_capacity(
        params
            .n_frames
            .map_or(0, |n| (n as usize).saturating_mul(channels))
            .min(1 << 28),
    );
    let mut buffer: Option<SampleBuffer<f32>> = None;
    loop {
        let packet = match reader.next_packet() {
            Ok(packet) => packet,
            Err(SymphoniaError::IoError(e)) if e.kind() == io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e.to_string()),
        };
        let decoded = decoder.decode(&packet).map_err(|e| e.to_string())?;
        let needed = decoded.capacity() * decoded.spec().channels.count();
        let buffer = match &mut buffer {
            Some(b) if b.capacity() >= needed => b,
            slot => slot.insert(SampleBuffer::new(
                decoded.capacity() as u64,
                *decoded.spec(),
            )),
        };
        buffer.copy_interleaved_ref(decoded);
        interleaved.extend_from_slice(buffer.samples());
    }
    if let Some(declared) = params.n_frames {
        let read = (interleaved.len() / channels) as u64;
        let bytes_per_frame = channels as u64 * u64::from(params.bits_per_sample.unwrap_or(8) / 8);
        let streamed = declared.saturating_mul(bytes_per_frame.max(1)) >= STREAMED_DATA_BYTES;
        if read < declared && !streamed {
            return Err(format!(
                "the header declares {declared} frames, the file holds {read} (it may be truncated)"
            ));
        }
    }
    Ok(Decoded {
        interleaved,
        rate,
        channels,
    })
}

/// Input frames per FFT of the resampler: about this many (sharper filters
/// than fewer; the whole file is resampled, so latency does not matter).
const RESAMPLE_CHUNK: usize = 2048;

/// Input frames per FFT: an even number of the rates' shortest whole period
/// (`from / gcd(from, to)` input frames, giving `to / gcd` output frames),
/// near `RESAMPLE_CHUNK`. Even, so both FFT sizes are even and the filter's
/// delay (half the input FFT) is a whole number of output frames, the one
/// `output_delay` reports: with an odd count, 48 kHz to 16 kHz came out one
/// input sample late (a 0.5-amplitude 440 Hz tone off by up to 0.029).
fn resample_chunk(from: u32, to: u32) -> usize {
    let (mut a, mut b) = (from as usize, to as usize);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    let period = from as usize / a;
    2 * RESAMPLE_CHUNK.div_ceil(2 * period) * period
}

/// Band-limited FFT resampling of every channel, trimmed to `len * to / from`
/// frames with the resampler's delay removed.
fn resample(planar: &[Vec<f32>], from: u32, to: u32) -> Result<Vec<Vec<f32>>, String> {
    let len = planar.first().map_or(0, Vec::len);
    let wanted = ((len as u128 * to as u128 + from as u128 / 2) / from as u128) as usize;
    let chunk = resample_chunk(from, to);
    let mut resampler = FftFixedIn::<f32>::new(from as usize, to as usize, chunk, 1, planar.len())
        .map_err(|e| format!("cannot resample from {from} Hz to {to} Hz: {e}"))?;
    let delay = resampler.output_delay();
    let mut out: Vec<Vec<f32>> =
        vec![
            Vec::with_capacity(wanted + delay + chunk * to as usize / from as usize + 1);
            planar.len()
        ];
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Worst error against the true tone, away from the ends, after
    /// resampling a 0.5-amplitude tone of `hz` from `from` to `to` Hz.
    fn tone_error(hz: f64, from: u32, to: u32) -> f64 {
        let tone = |rate: u32, n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| (0.5 * (std::f64::consts::TAU * hz * i as f64 / rate as f64).sin()) as f32)
                .collect()
        };
        let input = tone(from, 2 * from as usize);
        let out = resample(&[input], from, to).unwrap().remove(0);
        let want = tone(to, out.len());
        assert_eq!(out.len(), 2 * to as usize, "{from} -> {to} Hz: length");
        let edge = to as usize / 10;
        out[edge..out.len() - edge]
            .iter()
            .zip(&want[edge..])
            .map(|(a, b)| (a - b).abs() as f64)
            .fold(0.0, f64::max)
    }

    #[test]
    fn resampling_keeps_tones_in_place_at_every_rate_pair() {
        // Pairs whose shortest whole period is odd or short included (48 kHz
        // to 16 kHz was one input sample late before the FFT sizes were even).
        for (from, to) in [
            (48_000, 16_000),
            (24_000, 16_000),
            (96_000, 22_050),
            (8_000, 44_100),
            (44_100, 16_000),
            (16_000, 48_000),
            (22_050, 16_000),
            (44_101, 16_000),
        ] {
            for hz in [440.0, 3_000.0] {
                let err = tone_error(hz, from, to);
                assert!(err < 1e-3, "{hz} Hz from {from} to {to} Hz: off by {err}");
            }
        }
    }
}
