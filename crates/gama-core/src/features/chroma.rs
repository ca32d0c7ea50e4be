//! Chroma filterbank, as `librosa.filters.chroma` with tuning 0, 12 bins,
//! centre octave 5, octave width 2, rows starting at C.

use super::options::FeatureOptions;

/// Pitch classes.
pub const N_CHROMA: usize = 12;

/// `N_CHROMA` rows of `1 + n_fft / 2` weights, row-major.
pub fn chroma_filters(o: &FeatureOptions) -> Vec<f32> {
    let n_fft = o.n_fft;
    let n_chroma = N_CHROMA as f64;
    let a440 = 440.0;
    // Bins 1..n_fft of `linspace(0, sr, n_fft, endpoint=False)`, in chroma units.
    let mut frqbins: Vec<f64> = (1..n_fft)
        .map(|i| {
            let f = i as f64 * o.sample_rate / n_fft as f64;
            n_chroma * (f / (a440 / 16.0)).log2()
        })
        .collect();
    frqbins.insert(0, frqbins[0] - 1.5 * n_chroma);
    let mut binwidth: Vec<f64> = frqbins.windows(2).map(|w| (w[1] - w[0]).max(1.0)).collect();
    binwidth.push(1.0);
    let half = (n_chroma / 2.0).round();
    let mut wts = vec![0f64; N_CHROMA * n_fft];
    for (j, (&fb, &bw)) in frqbins.iter().zip(&binwidth).enumerate() {
        let mut norm = 0.0;
        for c in 0..N_CHROMA {
            let d = (fb - c as f64 + half + 10.0 * n_chroma).rem_euclid(n_chroma) - half;
            let w = (-0.5 * (2.0 * d / bw).powi(2)).exp();
            wts[c * n_fft + j] = w;
            norm += w * w;
        }
        let norm = norm.sqrt();
        let octave = (-0.5 * ((fb / n_chroma - 5.0) / 2.0).powi(2)).exp();
        for c in 0..N_CHROMA {
            let w = &mut wts[c * n_fft + j];
            *w = if norm > 0.0 { *w / norm } else { *w } * octave;
        }
    }
    // Roll so the first row is C (librosa's base_c), keep 1 + n_fft/2 columns.
    let bins = 1 + n_fft / 2;
    let mut out = vec![0f32; N_CHROMA * bins];
    for c in 0..N_CHROMA {
        let source = (c + 3) % N_CHROMA;
        for j in 0..bins {
            out[c * bins + j] = wts[source * n_fft + j] as f32;
        }
    }
    out
}
