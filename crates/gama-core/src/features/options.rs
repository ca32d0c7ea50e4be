//! Extraction options, named and defaulted as librosa names them.

use std::fmt;

use xxhash_rust::xxh3::Xxh3;

/// A feature `extract` can compute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Feature {
    /// Magnitude spectrogram |X|.
    Stft,
    /// Power spectrogram |X|^2.
    Power,
    /// Mel spectrogram of |X|^power.
    Mel,
    /// `power_to_db(mel, ref=1, amin=1e-10, top_db)`.
    LogMel,
    /// DCT-II (orthonormal) of the log-mel spectrogram.
    Mfcc,
    /// Root mean square of each frame of samples.
    Rms,
    /// Zero-crossing rate of each frame of samples.
    Zcr,
    /// Spectral centroid (Hz).
    SpectralCentroid,
    /// Spectral bandwidth, p = 2 (Hz).
    SpectralBandwidth,
    /// Frequency below which 85% of the spectral energy lies (Hz).
    SpectralRolloff,
    /// Geometric over arithmetic mean of the power spectrum.
    SpectralFlatness,
    /// Chromagram (12 pitch classes, tuning 0).
    Chroma,
}

impl Feature {
    /// Every feature, in output order.
    pub const ALL: [Feature; 12] = [
        Feature::Stft,
        Feature::Power,
        Feature::Mel,
        Feature::LogMel,
        Feature::Mfcc,
        Feature::Rms,
        Feature::Zcr,
        Feature::SpectralCentroid,
        Feature::SpectralBandwidth,
        Feature::SpectralRolloff,
        Feature::SpectralFlatness,
        Feature::Chroma,
    ];

    /// The name users pass and see (camelCase, as in the JS API).
    pub fn name(self) -> &'static str {
        match self {
            Feature::Stft => "stft",
            Feature::Power => "power",
            Feature::Mel => "mel",
            Feature::LogMel => "logMel",
            Feature::Mfcc => "mfcc",
            Feature::Rms => "rms",
            Feature::Zcr => "zcr",
            Feature::SpectralCentroid => "spectralCentroid",
            Feature::SpectralBandwidth => "spectralBandwidth",
            Feature::SpectralRolloff => "spectralRolloff",
            Feature::SpectralFlatness => "spectralFlatness",
            Feature::Chroma => "chroma",
        }
    }

    /// The feature with this name.
    pub fn from_name(name: &str) -> Option<Feature> {
        Feature::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether the output is one value per frame.
    pub fn is_scalar(self) -> bool {
        matches!(
            self,
            Feature::Rms
                | Feature::Zcr
                | Feature::SpectralCentroid
                | Feature::SpectralBandwidth
                | Feature::SpectralRolloff
                | Feature::SpectralFlatness
        )
    }
}

/// Analysis window.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WindowKind {
    /// Periodic Hann (librosa's default).
    Hann,
    /// Periodic Hamming.
    Hamming,
    /// Rectangular (scipy's "boxcar").
    Rectangular,
}

impl WindowKind {
    /// The name JS uses.
    pub fn name(self) -> &'static str {
        match self {
            WindowKind::Hann => "hann",
            WindowKind::Hamming => "hamming",
            WindowKind::Rectangular => "rectangular",
        }
    }

    /// The window with this name (scipy's 'boxcar' and 'ones' are rectangular).
    pub fn from_name(name: &str) -> Option<WindowKind> {
        match name {
            "hann" => Some(WindowKind::Hann),
            "hamming" => Some(WindowKind::Hamming),
            "rectangular" | "boxcar" | "ones" => Some(WindowKind::Rectangular),
            _ => None,
        }
    }
}

/// How `center` pads the signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    /// Zeros (librosa's default since 0.9).
    Constant,
    /// Mirror without repeating the edge sample.
    Reflect,
}

impl PadMode {
    /// The name JS uses.
    pub fn name(self) -> &'static str {
        match self {
            PadMode::Constant => "constant",
            PadMode::Reflect => "reflect",
        }
    }

    /// The mode with this name.
    pub fn from_name(name: &str) -> Option<PadMode> {
        match name {
            "constant" => Some(PadMode::Constant),
            "reflect" => Some(PadMode::Reflect),
            _ => None,
        }
    }
}

/// Every parameter of an extraction; `FeatureOptions::new(sample_rate)` gives librosa's defaults.
#[derive(Clone, Debug, PartialEq)]
pub struct FeatureOptions {
    /// Samples per second of the input.
    pub sample_rate: f64,
    /// FFT size.
    pub n_fft: usize,
    /// Samples between frame starts.
    pub hop_length: usize,
    /// Window length (zero-padded to `n_fft`, centred).
    pub win_length: usize,
    /// Analysis window.
    pub window: WindowKind,
    /// Whether frames are centred (signal padded by `n_fft / 2` each side).
    pub center: bool,
    /// Padding used when centring.
    pub pad_mode: PadMode,
    /// Mel bands.
    pub n_mels: usize,
    /// Lowest mel filter edge (Hz).
    pub fmin: f64,
    /// Highest mel filter edge (Hz).
    pub fmax: f64,
    /// HTK mel scale instead of Slaney's.
    pub htk: bool,
    /// Slaney area normalisation of the mel filters.
    pub slaney_norm: bool,
    /// Exponent of the magnitude fed to the mel filters.
    pub power: f64,
    /// MFCC coefficients.
    pub n_mfcc: usize,
    /// Dynamic range kept by `logMel` below its maximum (None keeps all).
    pub top_db: Option<f64>,
    /// What to compute.
    pub features: Vec<Feature>,
}

impl FeatureOptions {
    /// A canonical hash of every parameter (xxh3 over their bits, in field
    /// order): equal options give equal fingerprints in any process.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Xxh3::new();
        for bits in [self.sample_rate, self.fmin, self.fmax, self.power] {
            h.update(&bits.to_bits().to_le_bytes());
        }
        for n in [
            self.n_fft,
            self.hop_length,
            self.win_length,
            self.n_mels,
            self.n_mfcc,
        ] {
            h.update(&(n as u64).to_le_bytes());
        }
        h.update(&[
            self.window as u8,
            self.center as u8,
            self.pad_mode as u8,
            self.htk as u8,
            self.slaney_norm as u8,
        ]);
        match self.top_db {
            Some(db) => h.update(&db.to_bits().to_le_bytes()),
            None => h.update(&[0xff]),
        }
        h.update(&self.features.iter().map(|f| *f as u8).collect::<Vec<u8>>());
        h.digest()
    }

    /// librosa's defaults at `sample_rate`, computing logMel and mfcc.
    pub fn new(sample_rate: f64) -> Self {
        FeatureOptions {
            sample_rate,
            n_fft: 2048,
            hop_length: 512,
            win_length: 2048,
            window: WindowKind::Hann,
            center: true,
            pad_mode: PadMode::Constant,
            n_mels: 128,
            fmin: 0.0,
            fmax: sample_rate / 2.0,
            htk: false,
            slaney_norm: true,
            power: 2.0,
            n_mfcc: 20,
            top_db: Some(80.0),
            features: vec![Feature::LogMel, Feature::Mfcc],
        }
    }

    /// Checks every parameter; the error names the first bad one.
    pub fn validate(&self) -> Result<(), OptionError> {
        let bad = |name: &'static str, message: String| Err(OptionError { name, message });
        if !(self.sample_rate.is_finite() && self.sample_rate > 0.0) {
            return bad(
                "sampleRate",
                format!("must be a positive number of Hz, got {}", self.sample_rate),
            );
        }
        if self.n_fft < 2 || self.n_fft > 1 << 20 {
            return bad(
                "nFft",
                format!("must be from 2 to 1048576, got {}", self.n_fft),
            );
        }
        if self.hop_length == 0 {
            return bad("hopLength", "must be at least 1".into());
        }
        if self.win_length == 0 || self.win_length > self.n_fft {
            return bad(
                "winLength",
                format!(
                    "must be from 1 to nFft ({}), got {}",
                    self.n_fft, self.win_length
                ),
            );
        }
        let nyquist = self.sample_rate / 2.0;
        if !(self.fmin.is_finite() && self.fmin >= 0.0) {
            return bad("fmin", format!("must be >= 0 Hz, got {}", self.fmin));
        }
        if !(self.fmax.is_finite() && self.fmax > self.fmin && self.fmax <= nyquist) {
            return bad(
                "fmax",
                format!(
                    "must be above fmin ({}) and at most the Nyquist frequency {nyquist}, got {}",
                    self.fmin, self.fmax
                ),
            );
        }
        if self.n_mels == 0 || self.n_mels > 4096 {
            return bad(
                "nMels",
                format!("must be from 1 to 4096, got {}", self.n_mels),
            );
        }
        if self.n_mfcc == 0 || self.n_mfcc > self.n_mels {
            return bad(
                "nMfcc",
                format!(
                    "must be from 1 to nMels ({}), got {}",
                    self.n_mels, self.n_mfcc
                ),
            );
        }
        if !(self.power.is_finite() && self.power > 0.0) {
            return bad(
                "power",
                format!("must be a positive number, got {}", self.power),
            );
        }
        if let Some(top) = self.top_db {
            if !(top.is_finite() && top >= 0.0) {
                return bad("topDb", format!("must be a number >= 0, got {top}"));
            }
        }
        if self.features.is_empty() {
            return bad("features", "must name at least one feature".into());
        }
        Ok(())
    }

    /// Whether `feature` was asked for.
    pub fn wants(&self, feature: Feature) -> bool {
        self.features.contains(&feature)
    }
}

/// A parameter with a bad value.
#[derive(Clone, Debug, PartialEq)]
pub struct OptionError {
    /// The parameter's JS name.
    pub name: &'static str,
    /// What is wrong with it.
    pub message: String,
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.name, self.message)
    }
}

impl std::error::Error for OptionError {}
