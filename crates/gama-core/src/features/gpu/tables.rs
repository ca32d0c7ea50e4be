//! The constant tables of one set of options (window, mel filters, DCT,
//! chroma filters, bin frequencies): built on the host once, copied to the
//! device in one allocation and kept there while the options are in use.

use std::sync::Arc;

use cudarc::driver::{result, sys, CudaContext};

use super::staging::{put, Regions};
use crate::features::chroma::chroma_filters;
use crate::features::dct::basis;
use crate::features::mel::mel_filters;
use crate::features::window::window;
use crate::features::{ExtractError, Feature, FeatureOptions};

/// The tables as the kernels read them.
#[derive(Debug, Default, PartialEq)]
pub(super) struct HostTables {
    /// `n_fft` window coefficients.
    pub window: Vec<f64>,
    /// Per mel band: first bin, bins covered and where its weights start.
    pub mel_start: Vec<i32>,
    pub mel_len: Vec<i32>,
    pub mel_at: Vec<i32>,
    /// Every band's weights, one band after another.
    pub mel_weights: Vec<f32>,
    /// `n_mfcc` rows of `n_mels` DCT-II basis values.
    pub dct: Vec<f32>,
    /// 12 rows of `n_fft / 2 + 1` chroma weights.
    pub chroma: Vec<f32>,
    /// Centre frequency of each bin (Hz).
    pub freqs: Vec<f32>,
}

impl HostTables {
    /// The tables `o` needs (those of features not asked for stay empty).
    pub fn of(o: &FeatureOptions) -> HostTables {
        let wants = |f| o.wants(f);
        let mel = wants(Feature::Mel) || wants(Feature::LogMel) || wants(Feature::Mfcc);
        let mut t = HostTables {
            window: window(o.window, o.win_length, o.n_fft),
            freqs: (0..=o.n_fft / 2)
                .map(|i| (i as f64 * o.sample_rate / o.n_fft as f64) as f32)
                .collect(),
            ..HostTables::default()
        };
        if mel {
            for filter in mel_filters(o) {
                t.mel_start.push(filter.start as i32);
                t.mel_len.push(filter.weights.len() as i32);
                t.mel_at.push(t.mel_weights.len() as i32);
                t.mel_weights.extend_from_slice(&filter.weights);
            }
        }
        if wants(Feature::Mfcc) {
            t.dct = (0..o.n_mfcc)
                .flat_map(|k| (0..o.n_mels).map(move |i| basis(o.n_mels, k, i) as f32))
                .collect();
        }
        if wants(Feature::Chroma) {
            t.chroma = chroma_filters(o);
        }
        t
    }
}

/// Device addresses of each table.
#[derive(Clone, Copy, Debug)]
pub(super) struct TableAddresses {
    pub window: u64,
    pub mel_start: u64,
    pub mel_len: u64,
    pub mel_at: u64,
    pub mel_weights: u64,
    pub dct: u64,
    pub chroma: u64,
    pub freqs: u64,
}

/// One set of options' tables on the device; freed on drop.
pub(super) struct DeviceTables {
    /// The options they were built for.
    pub options: FeatureOptions,
    /// Where each table lies.
    pub at: TableAddresses,
    base: sys::CUdeviceptr,
    context: Arc<CudaContext>,
}

impl DeviceTables {
    /// Builds `options`' tables and copies them to the device (the
    /// context must be current).
    pub fn upload(
        context: &Arc<CudaContext>,
        options: &FeatureOptions,
    ) -> Result<DeviceTables, ExtractError> {
        let t = HostTables::of(options);
        let mut regions = Regions::default();
        let mut place = |len: usize, size: usize| regions.take((len * size) as u64);
        let offsets = [
            place(t.window.len(), 8),
            place(t.mel_start.len(), 4),
            place(t.mel_len.len(), 4),
            place(t.mel_at.len(), 4),
            place(t.mel_weights.len(), 4),
            place(t.dct.len(), 4),
            place(t.chroma.len(), 4),
            place(t.freqs.len(), 4),
        ];
        let mut bytes = vec![0u8; regions.len().max(1) as usize];
        put(&mut bytes, offsets[0], &t.window);
        put(&mut bytes, offsets[1], &t.mel_start);
        put(&mut bytes, offsets[2], &t.mel_len);
        put(&mut bytes, offsets[3], &t.mel_at);
        put(&mut bytes, offsets[4], &t.mel_weights);
        put(&mut bytes, offsets[5], &t.dct);
        put(&mut bytes, offsets[6], &t.chroma);
        put(&mut bytes, offsets[7], &t.freqs);
        // SAFETY: the context is current; the size is non-zero.
        let base = unsafe { result::malloc_sync(bytes.len()) }
            .map_err(|e| ExtractError::GpuBudget(format!("cuMemAlloc of the tables: {e:?}")))?;
        let tables = DeviceTables {
            options: options.clone(),
            at: TableAddresses {
                window: base + offsets[0],
                mel_start: base + offsets[1],
                mel_len: base + offsets[2],
                mel_at: base + offsets[3],
                mel_weights: base + offsets[4],
                dct: base + offsets[5],
                chroma: base + offsets[6],
                freqs: base + offsets[7],
            },
            base,
            context: context.clone(),
        };
        // SAFETY: `base` holds `bytes.len()` bytes.
        unsafe { result::memcpy_htod_sync(base, &bytes) }
            .map_err(|e| ExtractError::Gpu(format!("copying the tables: {e:?}")))?;
        Ok(tables)
    }
}

impl Drop for DeviceTables {
    fn drop(&mut self) {
        if self.context.bind_to_thread().is_ok() {
            // SAFETY: `base` came from cuMemAlloc; no batch using it is in
            // flight (the engine drops tables only between batches).
            let _ = unsafe { result::free_sync(self.base) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::features::dct::Dct;

    #[test]
    fn tables_hold_what_the_cpu_extractor_uses() {
        let mut o = FeatureOptions::new(16_000.0);
        o.n_fft = 512;
        o.win_length = 512;
        o.n_mels = 40;
        o.n_mfcc = 13;
        o.features = vec![Feature::Mfcc, Feature::Chroma];
        let t = HostTables::of(&o);
        assert_eq!(t.window.len(), 512);
        assert_eq!(t.freqs.len(), 257);
        assert_eq!(t.chroma.len(), 12 * 257);
        // The mel bands, sparse, cover what the dense filters do.
        let filters = mel_filters(&o);
        assert_eq!(t.mel_start.len(), 40);
        for (m, f) in filters.iter().enumerate() {
            let at = t.mel_at[m] as usize;
            assert_eq!(t.mel_start[m] as usize, f.start);
            assert_eq!(
                &t.mel_weights[at..at + t.mel_len[m] as usize],
                &f.weights[..]
            );
        }
        // Row k of the DCT table applied by hand equals the CPU transform.
        let input: Vec<f32> = (0..40).map(|i| (i as f32 * 0.3).cos() * 20.0).collect();
        let mut want = vec![0f32; 13];
        Dct::new(40, 13).apply(&input, &mut want);
        for (k, w) in want.iter().enumerate() {
            let got: f32 = (0..40).map(|i| t.dct[k * 40 + i] * input[i]).sum();
            assert!((got - w).abs() < 1e-4, "coefficient {k}: {got} vs {w}");
        }
        // Features not asked for build nothing.
        o.features = vec![Feature::Rms];
        let t = HostTables::of(&o);
        assert!(t.mel_start.is_empty() && t.dct.is_empty() && t.chroma.is_empty());
    }
}
