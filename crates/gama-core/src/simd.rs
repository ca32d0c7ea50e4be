//! Which vector build of a hot loop this CPU runs: loops written once,
//! compiled a second time with `#[target_feature(enable = "avx2,fma")]`,
//! and chosen at run time by `has_avx2`.

#[cfg(target_arch = "x86_64")]
use std::sync::OnceLock;

/// Whether this CPU runs the AVX2 + FMA builds (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}
