//! Small numeric kernels written so the compiler vectorises them: dot
//! products and sums with eight independent accumulators, and a natural
//! logarithm accurate to about 1e-7 that works lane-wise.

/// Lanes of the accumulators (two AVX registers of f32 on x86-64).
const LANES: usize = 8;

/// Σ a[i] * b[i] over the shorter length.
#[inline(always)]
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    acc.iter().sum::<f32>() + tail
}

/// Σ a[i].
#[inline(always)]
pub fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for x in chunks {
        for i in 0..LANES {
            acc[i] += x[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Whether every value is finite (no NaN or infinity), in one branch-free pass.
#[inline(always)]
pub fn all_finite(a: &[f32]) -> bool {
    const EXPONENT: u32 = 0x7f80_0000;
    let mut acc = [0u32; LANES];
    let chunks = a.chunks_exact(LANES);
    let tail = chunks.remainder().iter().fold(0, |bad, x| {
        bad | ((x.to_bits() & EXPONENT) == EXPONENT) as u32
    });
    for x in chunks {
        for i in 0..LANES {
            acc[i] |= ((x[i].to_bits() & EXPONENT) == EXPONENT) as u32;
        }
    }
    acc.iter().fold(tail, |bad, a| bad | a) == 0
}

/// The index and value of the first NaN or infinite sample, if any (one
/// branch-free pass when there is none).
#[inline]
pub fn first_non_finite(a: &[f32]) -> Option<(usize, f32)> {
    if all_finite(a) {
        return None;
    }
    a.iter().position(|x| !x.is_finite()).map(|i| (i, a[i]))
}

/// Natural logarithm of a positive, finite, normal `x`.
///
/// Splits x = 2^e * m with m in [0.75, 1.5), then ln m = 2 atanh(s) with
/// s = (m - 1) / (m + 1), |s| <= 0.2, summed to the s^9 term (truncation
/// error below 2e-9).
#[inline(always)]
pub fn ln(x: f32) -> f32 {
    let bits = x.to_bits();
    let mut e = ((bits >> 23) & 0xff) as i32 - 127;
    let mut m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > 1.5;
    m = if high { m * 0.5 } else { m };
    e += high as i32;
    let s = (m - 1.0) / (m + 1.0);
    let s2 = s * s;
    let series =
        s * (2.0 + s2 * (2.0 / 3.0 + s2 * (2.0 / 5.0 + s2 * (2.0 / 7.0 + s2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_is_accurate_over_the_decibel_range() {
        let mut worst = 0f64;
        let mut x = 1e-10f32;
        while x < 1e10 {
            let err = (ln(x) as f64 - (x as f64).ln()).abs();
            worst = worst.max(err);
            x *= 1.0137;
        }
        assert!(worst < 5e-6, "worst ln error {worst}");
    }

    #[test]
    fn all_finite_finds_nan_and_infinities_anywhere() {
        let mut v = vec![1.0f32; 19];
        assert!(all_finite(&v));
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in [0, 7, 18] {
                v[at] = bad;
                assert!(!all_finite(&v));
                v[at] = 1.0;
            }
        }
        assert!(all_finite(&[f32::MAX, f32::MIN_POSITIVE, -0.0]));
    }

    #[test]
    fn dot_and_sum_match_plain_loops() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.01).collect();
        let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot(&a, &b) - plain).abs() < 1e-3);
        assert!((sum(&a) - a.iter().sum::<f32>()).abs() < 1e-3);
    }
}
