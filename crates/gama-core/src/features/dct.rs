//! The orthonormal DCT-II (scipy's `dct(type=2, norm="ortho")`), stored
//! transposed so applying it is a sum of scaled rows: no horizontal sums,
//! and the inner loop vectorises.

use std::f64::consts::PI;

/// Lanes the output is padded to.
const LANES: usize = 8;

/// Basis value of coefficient `k` at input `i` of an orthonormal DCT-II of
/// `n_in` inputs.
pub(crate) fn basis(n_in: usize, k: usize, i: usize) -> f64 {
    let n = n_in as f64;
    let scale = if k == 0 {
        (1.0 / n).sqrt()
    } else {
        (2.0 / n).sqrt()
    };
    scale * (PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos()
}

/// The first `n_out` DCT-II coefficients of `n_in` inputs.
pub struct Dct {
    /// `n_in` rows of `stride` values: row i holds basis values k = 0..n_out at input i.
    transposed: Vec<f32>,
    stride: usize,
}

impl Dct {
    /// Plans the transform.
    pub fn new(n_in: usize, n_out: usize) -> Self {
        let stride = n_out.div_ceil(LANES) * LANES;
        let mut transposed = vec![0f32; n_in * stride];
        for i in 0..n_in {
            for k in 0..n_out {
                transposed[i * stride + k] = basis(n_in, k, i) as f32;
            }
        }
        Dct { transposed, stride }
    }

    /// Writes the transform of `input` into `output` (`n_out` values).
    #[inline(always)]
    pub fn apply(&self, input: &[f32], output: &mut [f32]) {
        for (block, out) in output.chunks_mut(LANES).enumerate() {
            // Eight outputs at a time, in four independent accumulators (so
            // the additions do not wait on each other), kept in registers.
            let mut acc = [[0f32; LANES]; 4];
            let basis = |i: usize| &self.transposed[i * self.stride + block * LANES..][..LANES];
            let quads = input.len() / 4;
            for q in 0..quads {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let i = q * 4 + j;
                    let (x, b) = (input[i], basis(i));
                    for l in 0..LANES {
                        acc[l] += x * b[l];
                    }
                }
            }
            for (i, &x) in input.iter().enumerate().skip(quads * 4) {
                let b = basis(i);
                for l in 0..LANES {
                    acc[0][l] += x * b[l];
                }
            }
            let acc: [f32; LANES] =
                std::array::from_fn(|l| (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]));
            out.copy_from_slice(&acc[..out.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_orthonormal() {
        // The full transform preserves energy.
        let input: Vec<f32> = (0..16).map(|i| (i as f32 * 0.7).sin()).collect();
        let dct = Dct::new(16, 16);
        let mut out = vec![0f32; 16];
        dct.apply(&input, &mut out);
        let energy = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>();
        assert!((energy(&input) - energy(&out)).abs() < 1e-4);
        // A constant input has only a DC term, sqrt(n) times the value.
        dct.apply(&[1.0; 16], &mut out);
        assert!((out[0] - 4.0).abs() < 1e-5 && out[1..].iter().all(|v| v.abs() < 1e-5));
    }
}
