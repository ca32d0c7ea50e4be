//! Safe, status-checked calls into N-API for the code that walks JS values
//! call by call (structured cache values, keys, typed arrays, the settlement
//! of JS batches): one method per N-API function used, so the rest of the
//! binding holds no raw calls. It is used where napi-rs's typed `Object` /
//! `Array` API does not fit: walking a value of unknown shape (a structured
//! cache value, an option object) one handle at a time, and settling a
//! batch's items in one pass on the drain; elsewhere the binding uses the
//! typed API (`#[napi(object)]` results, `Function`, `PromiseRaw`).
//!
//! Invariants every method relies on (and states once here):
//! - a `Js` is made only from an `&Env`, which napi-rs hands out on the JS
//!   thread for the duration of a call or callback, so its `env` is live for
//!   `'env`;
//! - every `sys::napi_value` passed in is a handle made in the current call
//!   or callback (the binding never keeps one across calls: what it keeps is
//!   a `Persistent`), so it is valid in the open handle scope;
//! - out-pointers are locals of the method.

use std::ffi::{c_void, CStr};
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::{FromNapiValue, ToNapiValue, Unknown};
use napi::{sys, Env, Error, Result};

use super::errors::check_status as check;

/// N-API for the duration of one call on the JS thread.
#[derive(Clone, Copy)]
pub struct Js<'env> {
    env: sys::napi_env,
    _call: PhantomData<&'env Env>,
}

/// Bytes from which `Js::f32_buffer` hands memory over instead of copying.
const EXTERNAL_BYTES: usize = 8 << 10;

/// Runs one N-API function on `$js`'s env with the given arguments and a
/// fresh out-value; checks the status, naming the function.
macro_rules! out_call {
    ($js:expr, $f:ident, $init:expr $(, $arg:expr)*) => {{
        let mut out = $init;
        // SAFETY: see the module invariants: a live env, handles of the
        // current scope, and `out` a local of the right type.
        check(unsafe { sys::$f($js.env $(, $arg)*, &mut out) }, stringify!($f))?;
        out
    }};
}

/// Writes a fresh buffer's bytes in order (see `Js::buffer_written`).
pub struct Writer<'a> {
    out: &'a mut [MaybeUninit<u8>],
    at: usize,
}

impl Writer<'_> {
    /// Appends `bytes`; panics past the buffer's end.
    pub fn put(&mut self, bytes: &[u8]) {
        let end = self.at + bytes.len();
        for (slot, &byte) in self.out[self.at..end].iter_mut().zip(bytes) {
            *slot = MaybeUninit::new(byte);
        }
        self.at = end;
    }

    /// Appends `n` zero bytes; panics past the buffer's end.
    pub fn zeros(&mut self, n: usize) {
        let end = self.at + n;
        self.out[self.at..end].fill(MaybeUninit::new(0));
        self.at = end;
    }
}

/// Runs one N-API function that only reports a status.
macro_rules! call {
    ($js:expr, $f:ident $(, $arg:expr)*) => {{
        // SAFETY: see the module invariants: a live env and handles of the
        // current scope.
        check(unsafe { sys::$f($js.env $(, $arg)*) }, stringify!($f))
    }};
}

/// A typed array's element type, element count and memory, as N-API
/// reports them; the memory is valid while no JS runs (JS could detach it).
pub struct TypedArrayInfo {
    /// Element type.
    pub kind: sys::napi_typedarray_type,
    /// Elements.
    pub len: usize,
    /// First element (null for an empty or detached array).
    pub data: *const u8,
    /// The ArrayBuffer under it.
    pub buffer: sys::napi_value,
    /// Its byte offset in `buffer`.
    pub offset: usize,
}

impl<'env> Js<'env> {
    /// N-API of the call `env` belongs to.
    pub fn new(env: &'env Env) -> Self {
        Js {
            env: env.raw(),
            _call: PhantomData,
        }
    }

    /// N-API of the call whose raw env napi-rs hands to a conversion
    /// (`ToNapiValue`, `FromNapiValue`).
    ///
    /// # Safety
    /// `env` must be the live env of the current call on the JS thread.
    pub unsafe fn from_raw(env: sys::napi_env) -> Self {
        Js {
            env,
            _call: PhantomData,
        }
    }

    /// The raw env, for napi-rs conversions.
    pub fn raw(self) -> sys::napi_env {
        self.env
    }

    /// `typeof value`, as N-API names it.
    pub fn type_of(self, value: sys::napi_value) -> Result<sys::napi_valuetype> {
        Ok(out_call!(self, napi_typeof, 0, value))
    }

    /// A boolean's value.
    pub fn bool_value(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_get_value_bool, false, value))
    }

    /// A number's value.
    pub fn number_value(self, value: sys::napi_value) -> Result<f64> {
        Ok(out_call!(self, napi_get_value_double, 0f64, value))
    }

    /// A Date's time value (ms since the epoch).
    pub fn date_value(self, value: sys::napi_value) -> Result<f64> {
        Ok(out_call!(self, napi_get_date_value, 0f64, value))
    }

    /// Writes a string's UTF-8 into `buf` (whole characters, then a NUL)
    /// and returns the bytes written; with an empty `buf`, the string's full
    /// UTF-8 length. An error when `value` is not a string.
    pub fn utf8_into(self, value: sys::napi_value, buf: &mut [u8]) -> Result<usize> {
        let ptr = if buf.is_empty() {
            ptr::null_mut()
        } else {
            buf.as_mut_ptr().cast()
        };
        Ok(out_call!(
            self,
            napi_get_value_string_utf8,
            0usize,
            value,
            ptr,
            buf.len()
        ))
    }

    /// A string's UTF-16 code units.
    pub fn utf16(self, value: sys::napi_value) -> Result<Vec<u16>> {
        let len = out_call!(
            self,
            napi_get_value_string_utf16,
            0usize,
            value,
            ptr::null_mut(),
            0
        );
        let mut units = vec![0u16; len + 1];
        let written = out_call!(
            self,
            napi_get_value_string_utf16,
            0usize,
            value,
            units.as_mut_ptr(),
            units.len()
        );
        units.truncate(written);
        Ok(units)
    }

    /// A BigInt's sign (true: negative) and 64-bit words, least significant first.
    pub fn bigint_words(self, value: sys::napi_value) -> Result<(bool, Vec<u64>)> {
        // With neither sign nor words, N-API only counts the words.
        let mut count = 0usize;
        call!(
            self,
            napi_get_value_bigint_words,
            value,
            ptr::null_mut(),
            &mut count,
            ptr::null_mut()
        )?;
        let mut words = vec![0u64; count.max(1)];
        let mut sign = 0;
        let mut written = words.len();
        call!(
            self,
            napi_get_value_bigint_words,
            value,
            &mut sign,
            &mut written,
            words.as_mut_ptr()
        )?;
        words.truncate(written);
        Ok((sign != 0, words))
    }

    /// Whether `value` is an array.
    pub fn is_array(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_is_array, false, value))
    }

    /// Whether `value` is a Date.
    pub fn is_date(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_is_date, false, value))
    }

    /// Whether `value` is an ArrayBuffer.
    pub fn is_arraybuffer(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_is_arraybuffer, false, value))
    }

    /// Whether `value` is a DataView.
    pub fn is_dataview(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_is_dataview, false, value))
    }

    /// Whether `value` is a promise.
    pub fn is_promise(self, value: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_is_promise, false, value))
    }

    /// `value instanceof constructor` (may run JS: `Symbol.hasInstance`).
    pub fn instance_of(self, value: sys::napi_value, constructor: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_instanceof, false, value, constructor))
    }

    /// `a === b`.
    pub fn strict_equals(self, a: sys::napi_value, b: sys::napi_value) -> Result<bool> {
        Ok(out_call!(self, napi_strict_equals, false, a, b))
    }

    /// `Object.getPrototypeOf(value)`.
    pub fn prototype(self, value: sys::napi_value) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_get_prototype, ptr::null_mut(), value))
    }

    /// `globalThis`.
    pub fn global(self) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_get_global, ptr::null_mut()))
    }

    /// `null`.
    pub fn null(self) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_get_null, ptr::null_mut()))
    }

    /// `undefined`.
    pub fn undefined(self) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_get_undefined, ptr::null_mut()))
    }

    /// A boolean.
    pub fn boolean(self, value: bool) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_get_boolean, ptr::null_mut(), value))
    }

    /// A number.
    pub fn number(self, value: f64) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_create_double, ptr::null_mut(), value))
    }

    /// A string.
    pub fn string(self, value: &str) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_create_string_utf8,
            ptr::null_mut(),
            value.as_ptr().cast(),
            value.len() as isize
        ))
    }

    /// A Date at `time` ms since the epoch.
    pub fn date(self, time: f64) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_create_date, ptr::null_mut(), time))
    }

    /// A BigInt from its sign and words, least significant first.
    pub fn bigint(self, negative: bool, words: &[u64]) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_create_bigint_words,
            ptr::null_mut(),
            i32::from(negative),
            words.len(),
            words.as_ptr()
        ))
    }

    /// An empty array.
    pub fn array(self) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_create_array, ptr::null_mut()))
    }

    /// An empty plain object.
    pub fn object(self) -> Result<sys::napi_value> {
        Ok(out_call!(self, napi_create_object, ptr::null_mut()))
    }

    /// `object[name]` (may run a getter).
    pub fn named(self, object: sys::napi_value, name: &CStr) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_get_named_property,
            ptr::null_mut(),
            object,
            name.as_ptr()
        ))
    }

    /// `object[key]` (may run a getter).
    pub fn property(
        self,
        object: sys::napi_value,
        key: sys::napi_value,
    ) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_get_property,
            ptr::null_mut(),
            object,
            key
        ))
    }

    /// `object[index]` (may run a getter).
    pub fn element(self, object: sys::napi_value, index: u32) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_get_element,
            ptr::null_mut(),
            object,
            index
        ))
    }

    /// `index in object`.
    pub fn has_element(self, object: sys::napi_value, index: u32) -> Result<bool> {
        Ok(out_call!(self, napi_has_element, false, object, index))
    }

    /// An array's length.
    pub fn array_length(self, array: sys::napi_value) -> Result<u32> {
        Ok(out_call!(self, napi_get_array_length, 0u32, array))
    }

    /// Own enumerable string keys (indices as strings).
    pub fn own_keys(self, object: sys::napi_value) -> Result<Vec<sys::napi_value>> {
        let names = out_call!(
            self,
            napi_get_all_property_names,
            ptr::null_mut(),
            object,
            sys::KeyCollectionMode::own_only,
            sys::KeyFilter::enumerable | sys::KeyFilter::skip_symbols,
            sys::KeyConversion::numbers_to_strings
        );
        let length = self.array_length(names)?;
        (0..length).map(|i| self.element(names, i)).collect()
    }

    /// `object[index] = value` (may run a setter).
    pub fn set_element(
        self,
        object: sys::napi_value,
        index: u32,
        value: sys::napi_value,
    ) -> Result<()> {
        call!(self, napi_set_element, object, index, value)
    }

    /// `object[name] = value` (may run a setter).
    pub fn set_named(
        self,
        object: sys::napi_value,
        name: &CStr,
        value: sys::napi_value,
    ) -> Result<()> {
        call!(self, napi_set_named_property, object, name.as_ptr(), value)
    }

    /// Defines a writable, enumerable, configurable data property (runs no
    /// setter: a key such as `__proto__` stays data).
    pub fn define(
        self,
        object: sys::napi_value,
        name: sys::napi_value,
        value: sys::napi_value,
    ) -> Result<()> {
        self.define_with(
            object,
            name,
            value,
            sys::PropertyAttributes::writable
                | sys::PropertyAttributes::enumerable
                | sys::PropertyAttributes::configurable,
        )
    }

    /// Defines a read-only property that keys, loops and JSON skip (what a
    /// result array says about itself, beside its elements).
    pub fn define_hidden(
        self,
        object: sys::napi_value,
        name: &str,
        value: sys::napi_value,
    ) -> Result<()> {
        let name = self.string(name)?;
        self.define_with(object, name, value, sys::PropertyAttributes::default)
    }

    fn define_with(
        self,
        object: sys::napi_value,
        name: sys::napi_value,
        value: sys::napi_value,
        attributes: sys::napi_property_attributes,
    ) -> Result<()> {
        let descriptor = sys::napi_property_descriptor {
            utf8name: ptr::null(),
            name,
            method: None,
            getter: None,
            setter: None,
            value,
            attributes,
            data: ptr::null_mut(),
        };
        call!(self, napi_define_properties, object, 1, &descriptor)
    }

    /// `f.call(this, ...args)`; a throw is an error with status
    /// `PendingException` (the exception stays pending).
    pub fn call(
        self,
        this: sys::napi_value,
        f: sys::napi_value,
        args: &[sys::napi_value],
    ) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_call_function,
            ptr::null_mut(),
            this,
            f,
            args.len(),
            args.as_ptr()
        ))
    }

    /// `new constructor(...args)`.
    pub fn construct(
        self,
        constructor: sys::napi_value,
        args: &[sys::napi_value],
    ) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_new_instance,
            ptr::null_mut(),
            constructor,
            args.len(),
            args.as_ptr()
        ))
    }

    /// Takes the pending exception, if any (a throwing callback must not
    /// break the caller).
    pub fn take_exception(self) -> Option<sys::napi_value> {
        let pending = (|| Ok::<_, Error>(out_call!(self, napi_is_exception_pending, false)))();
        if !pending.unwrap_or(false) {
            return None;
        }
        (|| {
            Ok::<_, Error>(out_call!(
                self,
                napi_get_and_clear_last_exception,
                ptr::null_mut()
            ))
        })()
        .ok()
    }

    /// Reports `error` as an uncaught exception (`process.on('uncaughtException')`).
    pub fn report_uncaught(self, error: sys::napi_value) {
        let _ = call!(self, napi_fatal_exception, error);
    }

    /// The first `N` arguments of the running callback (`undefined` for
    /// those not given).
    pub fn args<const N: usize>(
        self,
        info: sys::napi_callback_info,
    ) -> Result<[sys::napi_value; N]> {
        let mut argv = [ptr::null_mut(); N];
        let mut argc = N;
        call!(
            self,
            napi_get_cb_info,
            info,
            &mut argc,
            argv.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut()
        )?;
        Ok(argv)
    }

    /// Throws a `TypeError` with `code` (a pending exception for the caller
    /// to return into).
    pub fn throw_type_error(self, code: &CStr, message: &CStr) {
        let _ = call!(self, napi_throw_type_error, code.as_ptr(), message.as_ptr());
    }

    /// Throws an `Error` with `code`.
    pub fn throw_error(self, code: &CStr, message: &CStr) {
        let _ = call!(self, napi_throw_error, code.as_ptr(), message.as_ptr());
    }

    /// The data pointer of the external `value` when it carries `tag`, else None.
    pub fn tagged_external(
        self,
        value: sys::napi_value,
        tag: &sys::napi_type_tag,
    ) -> Result<Option<*mut c_void>> {
        if !out_call!(self, napi_check_object_type_tag, false, value, tag) {
            return Ok(None);
        }
        Ok(Some(out_call!(
            self,
            napi_get_value_external,
            ptr::null_mut(),
            value
        )))
    }

    /// The memory of the ArrayBuffer `value`: its start and length in bytes,
    /// valid while no JS runs.
    pub fn arraybuffer_memory(self, value: sys::napi_value) -> Result<(*mut u8, usize)> {
        let (mut data, mut len) = (ptr::null_mut(), 0usize);
        call!(self, napi_get_arraybuffer_info, value, &mut data, &mut len)?;
        Ok((data.cast(), len))
    }

    /// The typed array `value`'s element type and memory; None when it is
    /// not a typed array (a Buffer is one).
    pub fn typed_array_info(self, value: sys::napi_value) -> Result<Option<TypedArrayInfo>> {
        if !out_call!(self, napi_is_typedarray, false, value) {
            return Ok(None);
        }
        let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut());
        let (mut buffer, mut offset) = (ptr::null_mut(), 0usize);
        call!(
            self,
            napi_get_typedarray_info,
            value,
            &mut kind,
            &mut len,
            &mut data,
            &mut buffer,
            &mut offset
        )?;
        Ok(Some(TypedArrayInfo {
            kind,
            len,
            data: data.cast_const().cast(),
            buffer,
            offset,
        }))
    }

    /// A copy of the bytes of the ArrayBuffer `value`.
    pub fn arraybuffer_bytes(self, value: sys::napi_value) -> Result<Vec<u8>> {
        let (mut data, mut len) = (ptr::null_mut(), 0usize);
        call!(self, napi_get_arraybuffer_info, value, &mut data, &mut len)?;
        // SAFETY: N-API reports `len` bytes at `data` for a live buffer; they
        // are copied before any JS can run (and detach it).
        Ok(unsafe { copy_out(data, len) })
    }

    /// A copy of the bytes the DataView `value` spans.
    pub fn dataview_bytes(self, value: sys::napi_value) -> Result<Vec<u8>> {
        let (mut len, mut data) = (0usize, ptr::null_mut());
        let (mut buffer, mut offset) = (ptr::null_mut(), 0usize);
        call!(
            self,
            napi_get_dataview_info,
            value,
            &mut len,
            &mut data,
            &mut buffer,
            &mut offset
        )?;
        // SAFETY: as in `arraybuffer_bytes`.
        Ok(unsafe { copy_out(data, len) })
    }

    /// A fresh ArrayBuffer holding a copy of `bytes`.
    pub fn arraybuffer_from(self, bytes: &[u8]) -> Result<sys::napi_value> {
        self.arraybuffer_filled(bytes.len(), |out| out.copy_from_slice(bytes))
    }

    /// A fresh zeroed ArrayBuffer of `len` bytes that `fill` writes.
    pub fn arraybuffer_filled(
        self,
        len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<sys::napi_value> {
        let mut data = ptr::null_mut();
        let buffer = out_call!(
            self,
            napi_create_arraybuffer,
            ptr::null_mut(),
            len,
            &mut data
        );
        if len > 0 && !data.is_null() {
            // SAFETY: the new ArrayBuffer holds `len` zeroed bytes at `data`
            // that nothing else refers to while `fill` runs (no JS runs).
            fill(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) });
        } else {
            fill(&mut []);
        }
        Ok(buffer)
    }

    /// A fresh Node `Buffer` of `len` bytes written in order by `fill`, with
    /// no zeroing first (Node allocates it uninitialised); bytes `fill`
    /// leaves unwritten are zeroed, so none is ever uninitialised.
    pub fn buffer_written(
        self,
        len: usize,
        fill: impl FnOnce(&mut Writer),
    ) -> Result<sys::napi_value> {
        let mut data = ptr::null_mut();
        let buffer = out_call!(self, napi_create_buffer, ptr::null_mut(), len, &mut data);
        let out: &mut [MaybeUninit<u8>] = if len > 0 && !data.is_null() {
            // SAFETY: the new Buffer holds `len` bytes at `data` that nothing
            // else refers to while `fill` runs (no JS runs); they are only
            // written through the `MaybeUninit` slice.
            unsafe { std::slice::from_raw_parts_mut(data.cast::<MaybeUninit<u8>>(), len) }
        } else {
            &mut []
        };
        let mut writer = Writer { out, at: 0 };
        fill(&mut writer);
        let rest = writer.out.len() - writer.at;
        writer.zeros(rest);
        Ok(buffer)
    }

    /// A fresh Node `Buffer` holding a copy of `bytes`.
    pub fn buffer_from(self, bytes: &[u8]) -> Result<sys::napi_value> {
        let mut data = ptr::null_mut();
        Ok(out_call!(
            self,
            napi_create_buffer_copy,
            ptr::null_mut(),
            bytes.len(),
            bytes.as_ptr().cast(),
            &mut data
        ))
    }

    /// A typed array of `kind` over `len` elements of `buffer` from `offset`.
    pub fn typed_array(
        self,
        kind: sys::napi_typedarray_type,
        len: usize,
        buffer: sys::napi_value,
        offset: usize,
    ) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_create_typedarray,
            ptr::null_mut(),
            kind,
            len,
            buffer,
            offset
        ))
    }

    /// A DataView over the first `len` bytes of `buffer`.
    pub fn data_view(self, len: usize, buffer: sys::napi_value) -> Result<sys::napi_value> {
        Ok(out_call!(
            self,
            napi_create_dataview,
            ptr::null_mut(),
            len,
            buffer,
            0
        ))
    }

    /// An ArrayBuffer holding `data`. From `EXTERNAL_BYTES` up it is over
    /// `data` itself (no copy): the memory stays ours until V8 collects the
    /// buffer and its finalizer drops the vector. Smaller data, and all data
    /// where the runtime refuses external memory (some embedders do), is
    /// copied into a fresh buffer: below that size a copy costs less than
    /// the finalizer Node registers for an external buffer.
    pub fn f32_buffer(self, data: Vec<f32>) -> Result<sys::napi_value> {
        if std::mem::size_of_val(data.as_slice()) < EXTERNAL_BYTES {
            return self.copied_buffer(&data);
        }
        self.external_floats(data)
    }

    /// An ArrayBuffer over the whole of `arena`, which the feature results
    /// of a batch share (no copy): the memory stays alive until V8 collects
    /// the buffer and its finalizer drops this hold on it. Where the
    /// runtime refuses external memory it is copied.
    pub fn shared_f32_buffer(self, arena: Arc<Vec<f32>>) -> Result<sys::napi_value> {
        self.external_floats(arena)
    }

    /// An ArrayBuffer over the floats `owner` holds, which it keeps alive
    /// until the buffer's finalizer drops it; a copy where the runtime
    /// refuses external memory.
    fn external_floats<T: Floats>(self, owner: T) -> Result<sys::napi_value> {
        /// Drops the owner `hint` points to once the buffer is collected.
        unsafe extern "C" fn drop_owner<T>(_: sys::napi_env, _: *mut c_void, hint: *mut c_void) {
            // SAFETY: `hint` is the box leaked below for this one buffer; N-API
            // calls the finalizer once, after which nothing reads the memory.
            drop(unsafe { Box::from_raw(hint.cast::<T>()) });
        }
        let owner = Box::into_raw(Box::new(owner));
        // SAFETY: `owner` is a live box just made; the floats' heap memory
        // does not move while the box is alive.
        let (memory, len) = unsafe { (*owner).memory() };
        let bytes = len * std::mem::size_of::<f32>();
        let mut buffer = ptr::null_mut();
        // SAFETY: a live env (module invariants); `memory` holds `bytes`
        // bytes kept alive by `owner`, which the finalizer frees exactly
        // once. JS may write to them: Rust no longer reads them once they
        // are handed over (a vector is given up; the results sharing a
        // batch's arena are all handed over in the same drain).
        let status = unsafe {
            sys::napi_create_external_arraybuffer(
                self.env,
                memory.cast(),
                bytes,
                Some(drop_owner::<T>),
                owner.cast(),
                &mut buffer,
            )
        };
        if status == sys::Status::napi_ok {
            return Ok(buffer);
        }
        // SAFETY: the buffer was not made, so the box is still ours alone.
        let owner = unsafe { Box::from_raw(owner) };
        if status != sys::Status::napi_no_external_buffers_allowed {
            check(status, "napi_create_external_arraybuffer")?;
        }
        self.copied_buffer(owner.floats())
    }

    /// A fresh ArrayBuffer holding a copy of `data`.
    fn copied_buffer(self, data: &[f32]) -> Result<sys::napi_value> {
        let bytes = std::mem::size_of_val(data);
        let mut memory: *mut c_void = ptr::null_mut();
        let buffer = out_call!(
            self,
            napi_create_arraybuffer,
            ptr::null_mut(),
            bytes,
            &mut memory
        );
        if bytes > 0 {
            // SAFETY: the new ArrayBuffer owns `bytes` writable bytes at
            // `memory`, distinct from `data`'s; no JS runs before this returns.
            unsafe {
                ptr::copy_nonoverlapping(data.as_ptr().cast::<u8>(), memory.cast::<u8>(), bytes)
            };
        }
        Ok(buffer)
    }

    /// A Node `Buffer` of `len` bytes, not zeroed, and its memory; the
    /// caller writes all of it before JS can read it.
    pub fn uninit_buffer(self, len: usize) -> Result<(sys::napi_value, *mut u8)> {
        let mut data = ptr::null_mut();
        let buffer = out_call!(self, napi_create_buffer, ptr::null_mut(), len, &mut data);
        Ok((buffer, data.cast()))
    }
}

/// Floats an external ArrayBuffer can be made over.
trait Floats: 'static {
    /// The floats, to copy.
    fn floats(&self) -> &[f32];
    /// Their memory (where JS writes) and count.
    fn memory(&mut self) -> (*mut f32, usize);
}

impl Floats for Vec<f32> {
    fn floats(&self) -> &[f32] {
        self
    }

    fn memory(&mut self) -> (*mut f32, usize) {
        (self.as_mut_ptr(), self.len())
    }
}

impl Floats for Arc<Vec<f32>> {
    fn floats(&self) -> &[f32] {
        self
    }

    /// Shared with the other results of the batch, each of which only
    /// views its own range and none of which Rust reads once handed over.
    fn memory(&mut self) -> (*mut f32, usize) {
        (self.as_ptr().cast_mut(), self.len())
    }
}

/// `value` read as `T` by napi-rs's own conversion, which checks the
/// value's type through N-API (a mismatch is an error, not undefined
/// behaviour).
pub fn convert<T: FromNapiValue>(env: &Env, value: sys::napi_value) -> Result<T> {
    // SAFETY: the live env of this call and a handle of it (module invariants).
    unsafe { T::from_napi_value(env.raw(), value) }
}

/// `value` made into a JS value by napi-rs's own conversion.
pub fn to_value<T: ToNapiValue>(env: &Env, value: T) -> Result<sys::napi_value> {
    // SAFETY: the live env of this call (module invariants).
    unsafe { T::to_napi_value(env.raw(), value) }
}

/// `value` as napi-rs's `Unknown` of the call `env` belongs to.
pub fn unknown(env: &Env, value: sys::napi_value) -> Unknown<'_> {
    // SAFETY: `value` is a handle of the current call (module invariants),
    // and the `Unknown` borrows `env`, so it lives no longer than the call.
    unsafe { Unknown::from_raw_unchecked(env.raw(), value) }
}

/// A copy of `len` bytes at `data` (empty for null or zero).
///
/// # Safety
/// `data` must point to `len` readable bytes for the duration of the call.
unsafe fn copy_out(data: *const c_void, len: usize) -> Vec<u8> {
    if data.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) }.to_vec()
}
