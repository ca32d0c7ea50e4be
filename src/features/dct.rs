//! The orthonormal DCT-II as a matrix (scipy's `dct(type=2, norm="ortho")`).

use std::f64::consts::PI;

/// `n_out x n_in` coefficients, row-major: row k holds the k-th basis vector.
pub fn dct2_ortho(n_in: usize, n_out: usize) -> Vec<f32> {
    let n = n_in as f64;
    let mut m = vec![0f32; n_out * n_in];
    for k in 0..n_out {
        let scale = if k == 0 {
            (1.0 / n).sqrt()
        } else {
            (2.0 / n).sqrt()
        };
        for i in 0..n_in {
            m[k * n_in + i] =
                (scale * (PI * k as f64 * (2.0 * i as f64 + 1.0) / (2.0 * n)).cos()) as f32;
        }
    }
    m
}
