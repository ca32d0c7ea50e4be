//! `MemoryBlock`s as JS sees them. A block is a JS object made by
//! `fast_path.js`; its lease lives here, in its manager's `Blocks` table,
//! under a numeric key. A host block's `view()` is a typed array over the
//! pooled memory itself (an external ArrayBuffer). When the last reference
//! is released the ArrayBuffer is detached first, so JS can no longer reach
//! the memory, and only then does the memory go back to the pool. A block
//! the garbage collector reclaims without `release` is counted as a leak;
//! if its view is still reachable, the view keeps the memory alive until it
//! is collected too.

use std::cell::RefCell;
use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::Unknown;
use napi::{sys, Env, JsValue, Result};
use napi_derive::napi;
use parking_lot::Mutex;

use crate::js::errors::{check_status, coded, coded_error, range_error, type_error};
use crate::js::errors::{INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::js::napi::Js;
use crate::js::value::{RawValue, TypedArrayView};
use gama_core::memory::{GpuLease, HostLease, MemoryManager};

/// Code of a use of a block after its last release.
const RELEASED: &str = "E_RELEASED";
/// Code of a host-only call on a GPU block.
const WRONG_DEVICE: &str = "E_WRONG_DEVICE";

pub(super) enum Lease {
    Host(Arc<HostLease>),
    Gpu(GpuLease),
}

/// Holds the memory for an external ArrayBuffer until it is detached or collected.
type ViewSlot = Mutex<Option<Arc<HostLease>>>;

struct HostView {
    env: sys::napi_env,
    buffer: sys::napi_ref,
    slot: Arc<ViewSlot>,
}

impl HostView {
    /// Ends JS access: detaches the ArrayBuffer, then lets go of the memory.
    fn detach(self) {
        // SAFETY: called on the JS thread that created the reference.
        unsafe {
            let mut buffer = ptr::null_mut();
            if sys::napi_get_reference_value(self.env, self.buffer, &mut buffer)
                == sys::Status::napi_ok
                && !buffer.is_null()
            {
                sys::napi_detach_arraybuffer(self.env, buffer);
            }
            sys::napi_delete_reference(self.env, self.buffer);
        }
        self.slot.lock().take();
    }

    /// Forgets the ArrayBuffer without detaching it: JS may still read it,
    /// so the memory stays with it until it is collected.
    fn forget(self) {
        // SAFETY: as in `detach`.
        unsafe { sys::napi_delete_reference(self.env, self.buffer) };
    }
}

unsafe extern "C" fn drop_view_slot(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: `hint` is the `Box<Arc<ViewSlot>>` leaked in `view`.
    drop(unsafe { Box::from_raw(hint.cast::<Arc<ViewSlot>>()) });
}

/// A block of host or GPU memory from `GAMAMemoryManager.allocate`.
/// Reference-counted: `retain()` adds a holder, `release()` drops one, and
/// the memory returns to its pool when the count reaches zero.
// Its members are JS (`fast_path.js`) and are declared in `types.d.ts`
// (merged with this class): a native instance per block would cost more
// than the pool.
#[napi]
pub struct MemoryBlock {}

/// One live block: its memory and the ArrayBuffer its views share.
struct Held {
    lease: Lease,
    bytes: u64,
    view: Option<HostView>,
}

/// A slot of the table; `generation` tells a key of an earlier block in
/// this slot from the current one.
struct Slot {
    generation: u32,
    held: Option<Held>,
}

/// Keys are `generation * 2^32 + index`; generations wrap below 2^20 so a
/// key stays an exact JS number.
const GENERATIONS: u32 = 1 << 20;

/// The live blocks of one manager, on the JS thread: JS holds each block's
/// key and reference count, this table holds its lease. A key is valid
/// from `insert` until `release` or `collect`; any other number is refused.
pub(super) struct Blocks {
    manager: Arc<MemoryManager>,
    slots: RefCell<Vec<Slot>>,
    free: RefCell<Vec<u32>>,
}

impl Blocks {
    /// An empty table for `manager`'s leases.
    pub(super) fn new(manager: Arc<MemoryManager>) -> Self {
        Blocks {
            manager,
            slots: RefCell::new(Vec::new()),
            free: RefCell::new(Vec::new()),
        }
    }

    /// The manager the leases come from.
    pub(super) fn manager(&self) -> &Arc<MemoryManager> {
        &self.manager
    }

    /// Keeps `lease` of `bytes`; returns its key.
    pub(super) fn insert(&self, lease: Lease, bytes: u64) -> f64 {
        let mut slots = self.slots.borrow_mut();
        let held = Some(Held {
            lease,
            bytes,
            view: None,
        });
        let index = match self.free.borrow_mut().pop() {
            Some(index) => {
                slots[index as usize].held = held;
                index
            }
            None => {
                slots.push(Slot {
                    generation: 0,
                    held,
                });
                (slots.len() - 1) as u32
            }
        };
        let generation = slots[index as usize].generation;
        f64::from(generation) * 4_294_967_296.0 + f64::from(index)
    }

    /// The slot index of `key` when it names a live block.
    fn index(&self, key: f64) -> Option<usize> {
        if !(key >= 0.0 && key.fract() == 0.0 && key < f64::from(GENERATIONS) * 4_294_967_296.0) {
            return None;
        }
        let key = key as u64;
        let (generation, index) = ((key >> 32) as u32, (key & 0xffff_ffff) as usize);
        let slots = self.slots.borrow();
        let slot = slots.get(index)?;
        (slot.generation == generation && slot.held.is_some()).then_some(index)
    }

    /// Takes the block of `key` out of the table, freeing its slot.
    fn take(&self, key: f64) -> Option<Held> {
        let index = self.index(key)?;
        let mut slots = self.slots.borrow_mut();
        let slot = &mut slots[index];
        slot.generation = (slot.generation + 1) % GENERATIONS;
        let held = slot.held.take();
        self.free.borrow_mut().push(index as u32);
        held
    }

    /// The last release of `key`: detaches its view, then returns its
    /// memory to the pool. False when `key` names no live block.
    pub(super) fn release(&self, key: f64) -> bool {
        let Some(held) = self.take(key) else {
            return false;
        };
        if let Some(view) = held.view {
            view.detach();
        }
        drop(held.lease);
        true
    }

    /// `key`'s block was collected without its last release: counts a leak
    /// and returns the memory, unless a view still reaches it.
    pub(super) fn collect(&self, key: f64) {
        if let Some(held) = self.take(key) {
            self.manager.record_leak(held.bytes);
            if let Some(view) = held.view {
                view.forget();
            }
        }
    }

    /// Runs `f` on the live block of `key`; E_RELEASED otherwise.
    fn with<T>(
        &self,
        env: &Env,
        key: f64,
        what: &str,
        f: impl FnOnce(&mut Held) -> Result<T>,
    ) -> Result<T> {
        let index = self.index(key).ok_or_else(|| {
            coded_error(
                env,
                RELEASED,
                format!("{what}: the block was released (refCount is 0)"),
            )
        })?;
        let mut slots = self.slots.borrow_mut();
        f(slots[index]
            .held
            .as_mut()
            .expect("index() checked it is live"))
    }
}

impl Drop for Blocks {
    /// The table goes when neither its manager nor any block can be reached
    /// (or the environment ends): blocks still held are leaks.
    fn drop(&mut self) {
        for slot in self.slots.get_mut().drain(..) {
            if let Some(held) = slot.held {
                self.manager.record_leak(held.bytes);
                if let Some(view) = held.view {
                    view.forget();
                }
            }
        }
    }
}

/// Element type of `MemoryBlock.view`.
#[derive(Clone, Copy)]
enum ViewType {
    /// Float32Array (the default).
    Float32,
    /// Float64Array.
    Float64,
    /// Int16Array.
    Int16,
    /// Int32Array.
    Int32,
    /// Uint8Array.
    Uint8,
}

impl ViewType {
    fn parse(env: &Env, name: Option<&str>) -> Result<ViewType> {
        Ok(match name {
            None | Some("float32") => ViewType::Float32,
            Some("float64") => ViewType::Float64,
            Some("int16") => ViewType::Int16,
            Some("int32") => ViewType::Int32,
            Some("uint8") => ViewType::Uint8,
            Some(other) => {
                return Err(range_error(
                    env,
                    OUT_OF_RANGE,
                    format!(
                        "type must be 'float32', 'float64', 'int16', 'int32' or 'uint8'; got '{}'",
                        other.chars().take(40).collect::<String>()
                    ),
                ))
            }
        })
    }

    fn layout(self) -> (sys::napi_typedarray_type, usize) {
        use sys::TypedarrayType as T;
        match self {
            ViewType::Float32 => (T::float32_array, 4),
            ViewType::Float64 => (T::float64_array, 8),
            ViewType::Int16 => (T::int16_array, 2),
            ViewType::Int32 => (T::int32_array, 4),
            ViewType::Uint8 => (T::uint8_array, 1),
        }
    }
}

/// The memory of a typed array argument, named `name` in errors.
fn typed_array_arg<'env>(
    env: &'env Env,
    value: &Unknown,
    name: &str,
) -> Result<TypedArrayView<'env>> {
    TypedArrayView::of(Js::new(env), value.raw())?.ok_or_else(|| {
        type_error(
            env,
            INVALID_ARG_TYPE,
            format!("{name} must be a typed array or Buffer"),
        )
    })
}

/// The `offset` argument: a number, or undefined for 0; anything else is a
/// TypeError (its range is checked by `copy_range`).
fn offset_arg(env: &Env, offset: Option<Unknown>) -> Result<Option<f64>> {
    let Some(offset) = offset else {
        return Ok(None);
    };
    match offset.get_type()? {
        napi::ValueType::Undefined => Ok(None),
        // SAFETY: a live handle of this call, checked to be a number.
        napi::ValueType::Number => Ok(Some(unsafe {
            <f64 as napi::bindgen_prelude::FromNapiValue>::from_napi_value(env.raw(), offset.raw())?
        })),
        _ => Err(crate::js::errors::type_error(
            env,
            crate::js::errors::INVALID_ARG_TYPE,
            format!(
                "offset must be a number; got {}",
                crate::js::fields::describe(env, &offset)
            ),
        )),
    }
}

fn copy_range(env: &Env, block_bytes: u64, offset: Option<f64>, len: usize) -> Result<u64> {
    let offset = offset.unwrap_or(0.0);
    // Compared as f64 before any cast: a huge offset must not saturate or wrap.
    if !(offset.is_finite()
        && offset >= 0.0
        && offset.fract() == 0.0
        && offset <= block_bytes as f64)
    {
        return Err(range_error(
            env,
            OUT_OF_RANGE,
            format!(
                "offset must be a whole number of bytes from 0 to {block_bytes}; got {}",
                crate::js::fields::number_text(offset)
            ),
        ));
    }
    let offset = offset as u64;
    match offset.checked_add(len as u64) {
        Some(end) if end <= block_bytes => Ok(offset),
        _ => Err(range_error(
            env,
            OUT_OF_RANGE,
            format!("{len} bytes at offset {offset} do not fit in a {block_bytes} byte block"),
        )),
    }
}

impl Blocks {
    /// `view(type)` of `key`'s block: a typed array over its memory (no
    /// copy), host blocks only. Every call views the same ArrayBuffer.
    pub(super) fn view(&self, env: &Env, key: f64, kind: Unknown) -> Result<RawValue> {
        let kind = match kind.get_type()? {
            napi::ValueType::Undefined => None,
            _ => Some(crate::js::fields::string_value(env, "type", &kind)?),
        };
        let (kind, element) = ViewType::parse(env, kind.as_deref())?.layout();
        let raw_env = env.raw();
        self.with(env, key, "view", |held| {
            let host = match &held.lease {
                Lease::Host(lease) => lease.clone(),
                Lease::Gpu(_) => {
                    return Err(coded_error(
                        env,
                        WRONG_DEVICE,
                        "view: a GPU block has no host view; use copyTo(typedArray)",
                    ))
                }
            };
            // SAFETY: raw N-API calls on the JS thread with live handles;
            // none runs JS, so the table stays borrowed by this call only.
            // The external ArrayBuffer's memory is kept alive by the Arc in
            // its slot until it is detached (`release`) or collected
            // (finalizer).
            unsafe {
                if held.view.is_none() {
                    let slot = Arc::new(Mutex::new(Some(host.clone())));
                    let hint = Box::into_raw(Box::new(slot.clone()));
                    let mut buffer = ptr::null_mut();
                    let status = sys::napi_create_external_arraybuffer(
                        raw_env,
                        host.as_ptr().cast(),
                        host.len(),
                        Some(drop_view_slot),
                        hint.cast(),
                        &mut buffer,
                    );
                    if status != sys::Status::napi_ok {
                        drop(Box::from_raw(hint));
                        check_status(status, "napi_create_external_arraybuffer")?;
                    }
                    let mut reference = ptr::null_mut();
                    check_status(
                        sys::napi_create_reference(raw_env, buffer, 1, &mut reference),
                        "napi_create_reference",
                    )?;
                    held.view = Some(HostView {
                        env: raw_env,
                        buffer: reference,
                        slot,
                    });
                }
                let view = held.view.as_ref().expect("created above");
                let mut buffer = ptr::null_mut();
                check_status(
                    sys::napi_get_reference_value(raw_env, view.buffer, &mut buffer),
                    "napi_get_reference_value",
                )?;
                let mut array = ptr::null_mut();
                check_status(
                    sys::napi_create_typedarray(
                        raw_env,
                        kind,
                        host.len() / element,
                        buffer,
                        0,
                        &mut array,
                    ),
                    "napi_create_typedarray",
                )?;
                Ok(RawValue(array))
            }
        })
    }

    /// `copyFrom(source, offset)` of `key`'s block: a typed array's bytes
    /// into the block at `offset` bytes (host or GPU).
    pub(super) fn copy_from(
        &self,
        env: &Env,
        key: f64,
        source: Unknown,
        offset: Unknown,
    ) -> Result<()> {
        let offset = offset_arg(env, Some(offset))?;
        let view = typed_array_arg(env, &source, "source")?;
        let bytes = view.bytes();
        let len = bytes.len();
        self.with(env, key, "copyFrom", |held| {
            let offset = copy_range(env, held.bytes, offset, len)?;
            match &held.lease {
                Lease::Host(lease) => {
                    // SAFETY: inside the block (checked above); the JS thread
                    // is the only one touching a host block's memory.
                    unsafe { ptr::copy(bytes.as_ptr(), lease.as_ptr().add(offset as usize), len) };
                    Ok(())
                }
                Lease::Gpu(lease) => lease.copy_in(offset, bytes).map_err(|e| coded(env, &e)),
            }
        })
    }

    /// `copyTo(target, offset)` of `key`'s block: its bytes from `offset`
    /// into a typed array, filling it.
    pub(super) fn copy_to(
        &self,
        env: &Env,
        key: f64,
        target: Unknown,
        offset: Unknown,
    ) -> Result<()> {
        let offset = offset_arg(env, Some(offset))?;
        let mut view = typed_array_arg(env, &target, "target")?;
        let out = view.bytes_mut();
        let len = out.len();
        self.with(env, key, "copyTo", |held| {
            let offset = copy_range(env, held.bytes, offset, len)?;
            match &held.lease {
                Lease::Host(lease) => {
                    // SAFETY: as in `copy_from`.
                    unsafe {
                        ptr::copy(lease.as_ptr().add(offset as usize), out.as_mut_ptr(), len)
                    };
                    Ok(())
                }
                Lease::Gpu(lease) => lease.copy_out(offset, out).map_err(|e| coded(env, &e)),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gama_core::memory::manager::ManagerConfig;
    use gama_core::memory::DeviceChoice;

    fn table() -> Blocks {
        let manager = MemoryManager::new(ManagerConfig {
            device: DeviceChoice::Cpu,
            max_memory: 64 << 20,
            reserved_memory: 0,
            ..ManagerConfig::default()
        })
        .unwrap();
        Blocks::new(manager)
    }

    fn host(blocks: &Blocks, bytes: u64) -> f64 {
        let lease = blocks.manager().allocate_host(bytes, "test").unwrap();
        blocks.insert(Lease::Host(Arc::new(lease)), bytes)
    }

    #[test]
    fn a_key_is_released_once_and_a_reused_slot_refuses_the_old_key() {
        let blocks = table();
        let first = host(&blocks, 4096);
        assert!(blocks.release(first));
        assert!(
            !blocks.release(first),
            "a second release of a key does nothing"
        );
        let second = host(&blocks, 4096);
        assert_ne!(first, second, "the slot is reused under a new generation");
        assert!(blocks.index(first).is_none());
        for bad in [
            -1.0,
            0.5,
            f64::NAN,
            f64::INFINITY,
            2f64.powi(60),
            second + 1.0,
        ] {
            assert!(blocks.index(bad).is_none(), "{bad} names no block");
        }
        assert!(blocks.release(second));
        assert_eq!(blocks.manager().usage().host.used, 0);
        assert_eq!(blocks.manager().stats().leaks, 0);
    }

    #[test]
    fn collected_and_dropped_blocks_are_leaks_and_return_their_memory() {
        let blocks = table();
        let kept = host(&blocks, 8192);
        let collected = host(&blocks, 4096);
        blocks.collect(collected);
        blocks.collect(collected);
        let manager = blocks.manager().clone();
        assert_eq!(
            (manager.stats().leaks, manager.stats().leaked_bytes),
            (1, 4096)
        );
        assert!(blocks.release(kept));
        let held = host(&blocks, 1024);
        assert!(blocks.index(held).is_some());
        drop(blocks);
        assert_eq!(
            (manager.stats().leaks, manager.stats().leaked_bytes),
            (2, 5120)
        );
        assert_eq!(manager.usage().host.used, 0, "every lease went back");
    }
}
