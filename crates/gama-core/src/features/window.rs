//! Analysis windows, as scipy's `get_window(name, win_length, fftbins=True)`
//! padded to `n_fft` the way librosa's `pad_center` does.

use std::f64::consts::PI;

use super::options::WindowKind;

/// `n_fft` window coefficients: a periodic window of `win_length`, centred.
pub fn window(kind: WindowKind, win_length: usize, n_fft: usize) -> Vec<f64> {
    let n = win_length as f64;
    let coefficient = |i: usize| -> f64 {
        let x = 2.0 * PI * i as f64 / n;
        match kind {
            WindowKind::Hann => 0.5 - 0.5 * x.cos(),
            WindowKind::Hamming => 0.54 - 0.46 * x.cos(),
            WindowKind::Rectangular => 1.0,
        }
    };
    let mut out = vec![0f64; n_fft];
    let start = (n_fft - win_length) / 2;
    for i in 0..win_length {
        out[start + i] = coefficient(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periodic_hann_is_centred_in_the_fft_frame() {
        let w = window(WindowKind::Hann, 4, 8);
        let want = [0.0, 0.0, 0.0, 0.5, 1.0, 0.5, 0.0, 0.0];
        assert!(
            w.iter().zip(want).all(|(a, b)| (a - b).abs() < 1e-15),
            "{w:?}"
        );
    }
}
