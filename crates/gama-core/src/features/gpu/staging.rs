//! Host memory the GPU copies from and into: page-locked ("pinned")
//! buffers, kept by the engine and grown when a batch needs more, so a
//! steady stream of batches allocates none; and the layout of the regions
//! a batch packs into one buffer.

use cudarc::driver::{result, DriverError};

use crate::features::ExtractError;

/// Every region starts at a multiple of this many bytes (what cuFFT and
/// coalesced loads like best).
pub(super) const ALIGN: u64 = 256;

/// Hands out aligned byte ranges one after another.
#[derive(Default)]
pub(super) struct Regions {
    end: u64,
}

impl Regions {
    /// The offset of a new region of `bytes` bytes.
    pub fn take(&mut self, bytes: u64) -> u64 {
        let at = self.end.div_ceil(ALIGN) * ALIGN;
        self.end = at + bytes;
        at
    }

    /// Bytes every region so far spans.
    pub fn len(&self) -> u64 {
        self.end
    }
}

/// Plain numbers that may be copied byte for byte.
pub(super) trait Plain: Copy {}
impl Plain for f32 {}
impl Plain for f64 {}
impl Plain for i32 {}
impl Plain for u32 {}
impl Plain for u64 {}

/// Writes `values` into `buffer` at byte `at`.
///
/// Panics when they do not fit (a layout bug, never input-dependent).
pub(super) fn put<T: Plain>(buffer: &mut [u8], at: u64, values: &[T]) {
    let bytes = std::mem::size_of_val(values);
    let at = usize::try_from(at).expect("offset fits in memory");
    let target = &mut buffer[at..at.checked_add(bytes).expect("no overflow")];
    // SAFETY: `target` is exactly `bytes` long and does not overlap
    // `values` (one is borrowed mutably); `T` is a plain number, so its
    // bytes are initialised.
    unsafe {
        std::ptr::copy_nonoverlapping(values.as_ptr().cast::<u8>(), target.as_mut_ptr(), bytes)
    };
}

/// Reads `out.len()` values from `buffer` at byte `at`.
pub(super) fn get<T: Plain>(buffer: &[u8], at: u64, out: &mut [T]) {
    let bytes = std::mem::size_of_val(out);
    let at = usize::try_from(at).expect("offset fits in memory");
    let source = &buffer[at..at.checked_add(bytes).expect("no overflow")];
    // SAFETY: as in `put`; every bit pattern is a valid `T`.
    unsafe { std::ptr::copy_nonoverlapping(source.as_ptr(), out.as_mut_ptr().cast::<u8>(), bytes) };
}

/// A page-locked host buffer (`cuMemHostAlloc`), freed on drop.
///
/// Invariant: `ptr` points to `len` bytes that only this value hands out.
pub(super) struct Pinned {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is owned memory with no thread affinity; `&Pinned`
// gives shared access only.
unsafe impl Send for Pinned {}

impl Pinned {
    /// `len` bytes (at least one); the engine's context must be current.
    fn new(len: usize) -> Result<Pinned, DriverError> {
        let len = len.max(1);
        // SAFETY: a context is current; the bytes are written before they are read.
        let ptr = unsafe { result::malloc_host(len, 0) }?.cast::<u8>();
        // SAFETY: `malloc_host` gave `len` bytes; zeroing makes them initialised.
        unsafe { std::ptr::write_bytes(ptr, 0, len) };
        Ok(Pinned { ptr, len })
    }

    /// The bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` holds `len` initialised bytes owned by `self`.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    /// The bytes, for writing.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; `&mut self` makes this the only access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `malloc_host` and is freed once.
        let _ = unsafe { result::free_host(self.ptr.cast()) };
    }
}

/// The engine's two staging buffers: clips and tables in, results out.
#[derive(Default)]
pub(super) struct Staging {
    input: Option<Pinned>,
    output: Option<Pinned>,
}

/// `slot`'s buffer with room for `len` bytes, grown (to at least twice its
/// old size, so a rising batch size reallocates rarely) when too small.
fn room(slot: &mut Option<Pinned>, len: u64) -> Result<&mut Pinned, ExtractError> {
    let len = usize::try_from(len)
        .map_err(|_| ExtractError::GpuBudget(format!("{len} bytes of staging memory")))?;
    if slot.as_ref().is_none_or(|p| p.len < len) {
        let grown = slot
            .as_ref()
            .map_or(len, |p| len.max(p.len.saturating_mul(2)));
        *slot = None;
        *slot = Some(Pinned::new(grown).map_err(|e| {
            ExtractError::GpuBudget(format!("cuMemHostAlloc of {grown} bytes failed: {e:?}"))
        })?);
    }
    Ok(slot.as_mut().expect("just filled"))
}

impl Staging {
    /// The input buffer, at least `len` bytes.
    pub fn input(&mut self, len: u64) -> Result<&mut Pinned, ExtractError> {
        room(&mut self.input, len)
    }

    /// The output buffer, at least `len` bytes.
    pub fn output(&mut self, len: u64) -> Result<&mut Pinned, ExtractError> {
        room(&mut self.output, len)
    }

    /// The input buffer's bytes (empty before the first batch).
    pub fn input_bytes(&self) -> &[u8] {
        self.input.as_ref().map_or(&[], Pinned::bytes)
    }

    /// The output buffer's bytes (empty before the first batch).
    pub fn output_bytes(&self) -> &[u8] {
        self.output.as_ref().map_or(&[], Pinned::bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_aligned_and_do_not_overlap() {
        let mut r = Regions::default();
        assert_eq!(r.take(10), 0);
        assert_eq!(r.take(1), ALIGN);
        assert_eq!(r.take(0), 2 * ALIGN);
        assert_eq!(r.take(300), 2 * ALIGN);
        assert_eq!(r.len(), 2 * ALIGN + 300);
    }

    #[test]
    fn values_round_trip_through_bytes() {
        let mut buffer = vec![0u8; 64];
        put(&mut buffer, 8, &[1.5f32, -2.0]);
        put(&mut buffer, 16, &[u64::MAX - 1]);
        let mut floats = [0f32; 2];
        let mut words = [0u64; 1];
        get(&buffer, 8, &mut floats);
        get(&buffer, 16, &mut words);
        assert_eq!(floats, [1.5, -2.0]);
        assert_eq!(words, [u64::MAX - 1]);
    }
}
