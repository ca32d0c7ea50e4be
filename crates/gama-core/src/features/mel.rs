//! Mel filterbank, computed as `librosa.filters.mel` does (in f64, stored
//! as f32) and kept sparse: each filter only over the FFT bins it touches.

use super::options::FeatureOptions;

/// Hz to mels on the Slaney (default) or HTK scale.
pub fn hz_to_mel(hz: f64, htk: bool) -> f64 {
    if htk {
        return 2595.0 * (1.0 + hz / 700.0).log10();
    }
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// Mels to Hz, the inverse of `hz_to_mel`.
pub fn mel_to_hz(mel: f64, htk: bool) -> f64 {
    if htk {
        return 700.0 * (10f64.powf(mel / 2595.0) - 1.0);
    }
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// One triangular filter: weights for bins `start..start + weights.len()`.
#[derive(Clone, Debug)]
pub struct Filter {
    /// First FFT bin with a non-zero weight.
    pub start: usize,
    /// Weights of consecutive bins.
    pub weights: Vec<f32>,
}

impl Filter {
    /// Weighted sum of `spectrum` under this filter.
    #[inline(always)]
    pub fn apply(&self, spectrum: &[f32]) -> f32 {
        super::math::dot(
            &spectrum[self.start..self.start + self.weights.len()],
            &self.weights,
        )
    }
}

/// `n_mels` filters over `1 + n_fft / 2` bins.
pub fn mel_filters(o: &FeatureOptions) -> Vec<Filter> {
    let bins = 1 + o.n_fft / 2;
    let fft_freqs: Vec<f64> = (0..bins)
        .map(|i| i as f64 * o.sample_rate / o.n_fft as f64)
        .collect();
    let (low, high) = (hz_to_mel(o.fmin, o.htk), hz_to_mel(o.fmax, o.htk));
    let edges: Vec<f64> = (0..o.n_mels + 2)
        .map(|i| mel_to_hz(low + (high - low) * i as f64 / (o.n_mels + 1) as f64, o.htk))
        .collect();
    (0..o.n_mels)
        .map(|m| {
            let (left, center, right) = (edges[m], edges[m + 1], edges[m + 2]);
            let scale = if o.slaney_norm {
                2.0 / (right - left)
            } else {
                1.0
            };
            let dense: Vec<f32> = fft_freqs
                .iter()
                .map(|&f| {
                    let lower = (f - left) / (center - left);
                    let upper = (right - f) / (right - center);
                    (lower.min(upper).max(0.0) * scale) as f32
                })
                .collect();
            let start = dense.iter().position(|&w| w != 0.0).unwrap_or(0);
            let end = dense
                .iter()
                .rposition(|&w| w != 0.0)
                .map_or(start, |e| e + 1);
            Filter {
                start,
                weights: dense[start..end].to_vec(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_round_trip() {
        for hz in [0.0, 440.0, 999.0, 1000.0, 4000.0, 11025.0] {
            for htk in [false, true] {
                assert!((mel_to_hz(hz_to_mel(hz, htk), htk) - hz).abs() < 1e-6);
            }
        }
        assert!((hz_to_mel(1000.0, false) - 15.0).abs() < 1e-12);
    }
}
