//! Native audio feature extraction matching librosa: STFT, mel, log-mel,
//! MFCC, RMS, zero-crossing rate, spectral statistics and chroma; plus WAV
//! loading. Plain Rust, usable from any thread.
//!
//! Why two frames share one complex FFT instead of realfft: the frames of a
//! clip come in a loop anyway, so two real frames go through one `n_fft`
//! complex FFT (one as the real part, one as the imaginary part) and are
//! separated by the conjugate-symmetry identity (`split_powers`). That
//! halves the transform work per frame as a real-input FFT does, with one
//! rustfft plan per size (any size, odd ones included) and no second FFT
//! crate; a clip's odd last frame is paired with zeros.

mod arena;
mod batch;
mod chroma;
mod dct;
mod error;
mod extract;
pub mod gpu;
mod math;
mod mel;
mod options;
mod params;
mod plans;
#[cfg(test)]
pub(crate) mod tests;
mod wav;
mod window;

pub(crate) use arena::ArenaLayout;
pub use batch::{BatchRun, ClipResult};
pub use error::ExtractError;
pub(crate) use error::{non_finite_name, unwinding};
pub use extract::{Extractor, FeatureMatrix, Features, Span, Values, MAX_OUTPUT_BYTES};
pub(crate) use extract::{Floor, Signal};
pub(crate) use math::first_non_finite;
pub use mel::{hz_to_mel, mel_to_hz};
pub use options::{Feature, FeatureOptions, OptionError, PadMode, WindowKind};
pub use params::{ExtractParams, DEFAULT_SAMPLE_RATE};
pub use plans::shared_extractor;
pub use wav::{load_wav, AudioError, DecodedAudio};
