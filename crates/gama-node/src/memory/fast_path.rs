//! Native half of `fast_path.js`: the functions behind `MemoryBlock` and
//! the plain-argument `allocate`, handed to the JS installer when the
//! module loads. Raw N-API callbacks (see `js::callback`): a pooled
//! allocate + release is a few hundred nanoseconds, and napi-rs's class
//! unwrapping and option parsing would cost several times that.

use std::cell::RefCell;
use std::rc::Rc;

use napi::bindgen_prelude::{ClassInstance, FromNapiValue, JsObjectValue, Object, Unknown};
use napi::{sys, Env, JsValue, Result};

use super::block::{Blocks, Lease};
use super::{memory_error, GAMAMemoryManager};
use crate::js::callback::{
    guarded, handle, make_handle, native_function, throw_type_error, Handle,
};
use crate::js::errors::{range_error, type_error, INVALID_ARG_TYPE, OUT_OF_RANGE};
use crate::js::fields::string_value;
use crate::js::napi::{unknown, Js};
use crate::js::raw::Persistent;
use gama_core::memory::size::MAX_SIZE;

/// What a manager's handle holds: its table of blocks, and the operation
/// of `allocate` calls that pass none (see `fast_path.js`).
struct BlocksHandle {
    blocks: Rc<Blocks>,
    operation: RefCell<String>,
}

// SAFETY: this tag is used by this type only.
unsafe impl Handle for BlocksHandle {
    const TAG: sys::napi_type_tag = sys::napi_type_tag {
        lower: 0x6761_6d61_626c_6f63,
        upper: 0x6b73_6661_7374_7061,
    };
}

/// The handle argument `value`; a TypeError when it is not one.
fn blocks<'js>(js: Js<'js>, value: sys::napi_value) -> Result<&'js BlocksHandle> {
    handle::<BlocksHandle>(js, value)?.ok_or_else(|| {
        let env = Env::from_raw(js.raw());
        type_error(&env, INVALID_ARG_TYPE, "invalid memory manager handle")
    })
}

/// The block table, the env and the block key of a `(handle, key, ...)` call.
fn block_call<'js>(js: Js<'js>, args: &[sys::napi_value]) -> Result<(&'js Blocks, Env, f64)> {
    let blocks = &blocks(js, args[0])?.blocks;
    Ok((blocks, Env::from_raw(js.raw()), js.number_value(args[1])?))
}

/// Defines a raw callback `$name` taking `$n` arguments that runs `$body`
/// with the live `Js` and the arguments.
macro_rules! callback {
    ($(#[$doc:meta])* $name:ident, $n:literal, |$js:ident, $args:ident| $body:block) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Called by N-API only, as a JS function's callback.
        unsafe extern "C" fn $name(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
            let body = |$js: Js| -> Result<sys::napi_value> {
                let $args = $js.args::<$n>(info)?;
                $body
            };
            // SAFETY: N-API's env of this callback.
            unsafe { guarded(env, c"GAMAMemoryManager", body) }
        }
    };
}

callback!(
    /// `makeHandle(manager)`: an external holding the manager's block table.
    make_blocks_handle, 1, |js, args| {
        // SAFETY: a live argument of this call.
        let Ok(instance) =
            (unsafe { ClassInstance::<GAMAMemoryManager>::from_napi_value(js.raw(), args[0]) })
        else {
            return throw_type_error(js, c"not a GAMAMemoryManager");
        };
        make_handle(
            js,
            BlocksHandle {
                blocks: instance.blocks.clone(),
                operation: RefCell::new("general".into()),
            },
        )
    }
);

callback!(
    /// `allocate(handle, bytes, gpu, operation, orNull)`: a new block's key,
    /// or -1 when `orNull` and the budget has no room. `bytes` must be a
    /// whole number from 1 to 2^53 (JS checks it; it is checked again
    /// here); `operation` a string, or undefined for the last one given.
    allocate, 5, |js, args| {
        let [handle_value, bytes, gpu, operation, or_null] = args;
        let handle = blocks(js, handle_value)?;
        let env = Env::from_raw(js.raw());
        // Kept first, whatever fails next: JS counts on native code having it.
        if js.type_of(operation)? != sys::ValueType::napi_undefined {
            let operation = string_value(&env, "options.operation", &unknown(&env, operation))?;
            *handle.operation.borrow_mut() = operation;
        }
        let bytes = js.number_value(bytes)?;
        if !(bytes >= 1.0 && bytes <= MAX_SIZE as f64 && bytes.fract() == 0.0) {
            return Err(range_error(&env, OUT_OF_RANGE, "size must be a whole number of bytes from 1 to 2^53"));
        }
        let bytes = bytes as u64;
        let operation = handle.operation.borrow();
        let (blocks, operation) = (&handle.blocks, operation.as_str());
        let manager = blocks.manager();
        let lease = if js.bool_value(gpu)? {
            manager.allocate_gpu(bytes, operation).map(Lease::Gpu)
        } else {
            manager.allocate_host(bytes, operation).map(|l| Lease::Host(l.into()))
        };
        match lease {
            Ok(lease) => js.number(blocks.insert(lease, bytes)),
            Err(e) if e.is_over_budget() && js.bool_value(or_null)? => js.number(-1.0),
            Err(e) => Err(memory_error(&env, e)),
        }
    }
);

callback!(
    /// `release(handle, key)`: the block's last release.
    release, 2, |js, args| {
        let blocks = &blocks(js, args[0])?.blocks;
        blocks.release(js.number_value(args[1])?);
        js.undefined()
    }
);

callback!(
    /// `collect(handle, key)`: the block was collected without its last release.
    collect, 2, |js, args| {
        let blocks = &blocks(js, args[0])?.blocks;
        blocks.collect(js.number_value(args[1])?);
        js.undefined()
    }
);

callback!(
    /// `view(handle, key, type)`: see `Blocks::view`.
    view, 3, |js, args| {
        let (blocks, env, key) = block_call(js, &args)?;
        Ok(blocks.view(&env, key, unknown(&env, args[2]))?.0)
    }
);

callback!(
    /// `copyFrom(handle, key, source, offset)`: see `Blocks::copy_from`.
    copy_from, 4, |js, args| {
        let (blocks, env, key) = block_call(js, &args)?;
        blocks.copy_from(&env, key, unknown(&env, args[2]), unknown(&env, args[3]))?;
        js.undefined()
    }
);

callback!(
    /// `copyTo(handle, key, target, offset)`: see `Blocks::copy_to`.
    copy_to, 4, |js, args| {
        let (blocks, env, key) = block_call(js, &args)?;
        blocks.copy_to(&env, key, unknown(&env, args[2]), unknown(&env, args[3]))?;
        js.undefined()
    }
);

/// Runs `fast_path.js` over the exports; returns its `adopt(manager, key,
/// bytes, gpu, operation, tag)`, which makes the JS block of a key
/// `allocate` inserted.
pub fn install(env: &Env, exports: &Object) -> Result<Persistent> {
    let class = |name: &str| -> Result<sys::napi_value> {
        Ok(exports.get_named_property_unchecked::<Unknown>(name)?.raw())
    };
    let installer: Unknown = env.run_script(include_str!("fast_path.js"))?;
    let js = Js::new(env);
    let argv = [
        class("GAMAMemoryManager")?,
        class("MemoryBlock")?,
        native_function(env, c"makeHandle", Some(make_blocks_handle))?,
        native_function(env, c"allocate", Some(allocate))?,
        native_function(env, c"release", Some(release))?,
        native_function(env, c"collect", Some(collect))?,
        native_function(env, c"view", Some(view))?,
        native_function(env, c"copyFrom", Some(copy_from))?,
        native_function(env, c"copyTo", Some(copy_to))?,
        js.number(MAX_SIZE as f64)?,
    ];
    let adopt = js.call(js.undefined()?, installer.raw(), &argv)?;
    Persistent::new(env, adopt)
}
