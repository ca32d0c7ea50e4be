//! `MemoryBlock`: a reference-counted lease as JS sees it. A host block's
//! `view()` is a typed array over the pooled memory itself (an external
//! ArrayBuffer). When the last reference is released the ArrayBuffer is
//! detached first, so JS can no longer reach the memory, and only then does
//! the memory go back to the pool. A block the garbage collector reclaims
//! without `release` is counted as a leak; if its view is still reachable,
//! the view keeps the memory alive until it is collected too.

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
use gama_core::memory::{Device, GpuLease, HostLease, MemoryError, MemoryManager};

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
#[napi]
pub struct MemoryBlock {
    lease: Option<Lease>,
    ref_count: u32,
    bytes: u64,
    device: Device,
    operation: String,
    tag: Option<String>,
    view: Option<HostView>,
    manager: Arc<MemoryManager>,
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

impl MemoryBlock {
    pub(super) fn new(
        lease: Lease,
        bytes: u64,
        operation: String,
        tag: Option<String>,
        manager: Arc<MemoryManager>,
    ) -> Self {
        let device = match lease {
            Lease::Host(_) => Device::Host,
            Lease::Gpu(_) => Device::Gpu,
        };
        MemoryBlock {
            lease: Some(lease),
            ref_count: 1,
            bytes,
            device,
            operation,
            tag,
            view: None,
            manager,
        }
    }

    fn live(&self, env: &Env, what: &str) -> Result<&Lease> {
        self.lease.as_ref().ok_or_else(|| {
            coded_error(
                env,
                RELEASED,
                format!("{what}: the block was released (refCount is 0)"),
            )
        })
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

fn gpu_error(env: &Env, err: MemoryError) -> napi::Error {
    coded(env, &err)
}

#[napi]
impl MemoryBlock {
    /// Bytes requested.
    #[napi(catch_unwind, getter)]
    pub fn bytes(&self) -> f64 {
        self.bytes as f64
    }

    /// 'host' or 'gpu'.
    #[napi(catch_unwind, getter, ts_return_type = "'host' | 'gpu'")]
    pub fn device(&self) -> &'static str {
        self.device.name()
    }

    /// The operation it was allocated for.
    #[napi(catch_unwind, getter)]
    pub fn operation(&self) -> String {
        self.operation.clone()
    }

    /// The tag given to `allocate`, if any.
    #[napi(catch_unwind, getter)]
    pub fn tag(&self) -> Option<String> {
        self.tag.clone()
    }

    /// Holders left; 0 once released.
    #[napi(catch_unwind, getter)]
    pub fn ref_count(&self) -> u32 {
        self.ref_count
    }

    /// Whether the last reference was released.
    #[napi(catch_unwind, getter)]
    pub fn released(&self) -> bool {
        self.lease.is_none()
    }

    /// Adds a holder; returns the new count. Throws E_RELEASED after the last release.
    #[napi(catch_unwind)]
    pub fn retain(&mut self, env: Env) -> Result<u32> {
        self.live(&env, "retain")?;
        self.ref_count += 1;
        Ok(self.ref_count)
    }

    /// Drops a holder; at zero the view is detached and the memory returns
    /// to the pool. Returns the count left. Throws E_RELEASED when already 0.
    #[napi(catch_unwind)]
    pub fn release(&mut self, env: Env) -> Result<u32> {
        self.live(&env, "release")?;
        self.ref_count -= 1;
        if self.ref_count == 0 {
            if let Some(view) = self.view.take() {
                view.detach();
            }
            self.lease = None;
        }
        Ok(self.ref_count)
    }

    /// A typed array over the block's own memory (no copy), host blocks only.
    /// Every call views the same memory; all views go dead at the last release.
    #[napi(
        catch_unwind,
        ts_args_type = "type?: 'float32' | 'float64' | 'int16' | 'int32' | 'uint8'",
        ts_return_type = "Float32Array | Float64Array | Int16Array | Int32Array | Uint8Array"
    )]
    pub fn view(&mut self, env: Env, kind: Option<Unknown>) -> Result<RawValue> {
        let kind = match kind {
            Some(k) if !matches!(k.get_type()?, napi::ValueType::Undefined) => {
                Some(crate::js::fields::string_value(&env, "type", &k)?)
            }
            _ => None,
        };
        let kind = ViewType::parse(&env, kind.as_deref())?;
        let host = match self.live(&env, "view")? {
            Lease::Host(lease) => lease.clone(),
            Lease::Gpu(_) => {
                return Err(coded_error(
                    &env,
                    WRONG_DEVICE,
                    "view: a GPU block has no host view; use copyTo(typedArray)",
                ))
            }
        };
        let (kind, element) = kind.layout();
        let raw_env = env.raw();
        // SAFETY: raw N-API calls on the JS thread with live handles. The
        // external ArrayBuffer's memory is kept alive by the Arc in its slot
        // until it is detached (`release`) or collected (finalizer).
        unsafe {
            if self.view.is_none() {
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
                self.view = Some(HostView {
                    env: raw_env,
                    buffer: reference,
                    slot,
                });
            }
            let view = self.view.as_ref().expect("created above");
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
    }

    /// Copies a typed array's bytes into the block at `offset` bytes (host or GPU).
    #[napi(
        catch_unwind,
        ts_args_type = "source: ArrayBufferView, offset?: number"
    )]
    pub fn copy_from(&self, env: Env, source: Unknown, offset: Option<Unknown>) -> Result<()> {
        let offset = offset_arg(&env, offset)?;
        let view = typed_array_arg(&env, &source, "source")?;
        let bytes = view.bytes();
        let len = bytes.len();
        let offset = copy_range(&env, self.bytes, offset, len)?;
        match self.live(&env, "copyFrom")? {
            Lease::Host(lease) => {
                // SAFETY: inside the block (checked above); the JS thread is
                // the only one touching a host block's memory.
                unsafe { ptr::copy(bytes.as_ptr(), lease.as_ptr().add(offset as usize), len) };
                Ok(())
            }
            Lease::Gpu(lease) => lease.copy_in(offset, bytes).map_err(|e| gpu_error(&env, e)),
        }
    }

    /// Copies bytes of the block from `offset` into a typed array, filling it.
    #[napi(
        catch_unwind,
        ts_args_type = "target: ArrayBufferView, offset?: number"
    )]
    pub fn copy_to(&self, env: Env, target: Unknown, offset: Option<Unknown>) -> Result<()> {
        let offset = offset_arg(&env, offset)?;
        let mut view = typed_array_arg(&env, &target, "target")?;
        let out = view.bytes_mut();
        let len = out.len();
        let offset = copy_range(&env, self.bytes, offset, len)?;
        match self.live(&env, "copyTo")? {
            Lease::Host(lease) => {
                // SAFETY: as in `copy_from`.
                unsafe { ptr::copy(lease.as_ptr().add(offset as usize), out.as_mut_ptr(), len) };
                Ok(())
            }
            Lease::Gpu(lease) => lease.copy_out(offset, out).map_err(|e| gpu_error(&env, e)),
        }
    }
}

impl Drop for MemoryBlock {
    /// Runs when the garbage collector reclaims the block object.
    fn drop(&mut self) {
        if self.lease.take().is_some() {
            self.manager.record_leak(self.bytes);
        }
        if let Some(view) = self.view.take() {
            view.forget();
        }
    }
}
