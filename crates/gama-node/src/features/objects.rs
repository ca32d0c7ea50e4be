//! The JS result objects of extracted features, made by `objects.js` many
//! at a time: one JS call for a whole batch instead of about five N-API
//! property sets per feature of every clip.

use napi::bindgen_prelude::Unknown;
use napi::{sys, Env, JsValue, Result};

use crate::js::napi::{to_value, Js};
use crate::js::raw::Persistent;
use crate::js::value::new_float64_array;
use std::sync::Arc;

use hashbrown::HashMap;

use gama_core::features::{Feature, Features, Span, Values};

/// Makes feature result objects through `objects.js`; one per JS
/// environment, kept in the addon's instance data.
pub struct FeatureObjects(Persistent);

impl FeatureObjects {
    /// Compiles the maker for `env` (at load).
    pub fn new(env: &Env) -> Result<Self> {
        let maker: Unknown = env.run_script(include_str!("objects.js"))?;
        Ok(FeatureObjects(Persistent::new(env, maker.raw())?))
    }

    /// The JS object of one clip's `features`.
    pub fn one(env: &Env, features: Features) -> Result<sys::napi_value> {
        let laid = Laid::new(Js::new(env), features, &mut Buffers::default())?;
        Self::make_one(env, &laid)
    }

    /// A JS array of the objects of `results`, in order.
    pub fn many(env: &Env, results: Vec<Features>) -> Result<sys::napi_value> {
        let js = Js::new(env);
        let mut buffers = Buffers::default();
        let laid = results
            .into_iter()
            .map(|f| Laid::new(js, f, &mut buffers))
            .collect::<Result<Vec<_>>>()?;
        Self::make(env, &laid)
    }

    /// The JS object of one laid-out result.
    pub fn make_one(env: &Env, laid: &Laid) -> Result<sys::napi_value> {
        let objects = Self::make(env, std::slice::from_ref(laid))?;
        Js::new(env).element(objects, 0)
    }

    /// A JS array of the objects of `results`, in one call of the maker.
    pub fn make(env: &Env, results: &[Laid]) -> Result<sys::napi_value> {
        let maker = &crate::js::module::Scripts::of(env)?.features;
        let js = Js::new(env);
        let mut names: Vec<Feature> = Vec::new();
        let mut layout = Vec::new();
        let (buffers, shared) = (js.array()?, js.array()?);
        let mut marked = 0;
        for (r, laid) in results.iter().enumerate() {
            js.set_element(buffers, r as u32, laid.buffer)?;
            if laid.first_of_batch {
                js.set_element(shared, marked, laid.buffer)?;
                marked += 1;
            }
            layout.extend([laid.frames as f64, laid.items.len() as f64]);
            for (feature, span) in &laid.items {
                let name = match names.iter().position(|n| n == feature) {
                    Some(i) => i,
                    None => {
                        names.push(*feature);
                        names.len() - 1
                    }
                };
                let first = laid.base + span.offset;
                layout.extend([name as f64, first as f64, span.bins as f64]);
            }
        }
        let (names_js, scalar) = (js.array()?, js.array()?);
        for (i, feature) in names.iter().enumerate() {
            js.set_element(names_js, i as u32, to_value(env, feature.name())?)?;
            js.set_element(scalar, i as u32, to_value(env, feature.is_scalar())?)?;
        }
        let layout = new_float64_array(js, &layout)?;
        js.call(
            js.undefined()?,
            maker.0.get(env),
            &[names_js, scalar, buffers, layout, shared],
        )
    }
}

/// One result ready for the maker: its values already a JS ArrayBuffer
/// (without a copy when large: `Js::f32_buffer`; the results of a batch
/// share one: `Buffers`), and where each feature lies.
pub struct Laid {
    buffer: sys::napi_value,
    /// Index of the result's first value in `buffer`.
    base: usize,
    /// Whether `buffer` was made for this result's batch buffer, which
    /// later results of the batch share.
    first_of_batch: bool,
    frames: usize,
    items: Vec<(Feature, Span)>,
}

impl Laid {
    /// Hands `features`' values to JS (the ArrayBuffer of a batch's shared
    /// values through `buffers`, made once for all its results).
    pub fn new(js: Js, features: Features, buffers: &mut Buffers) -> Result<Laid> {
        let frames = features.frames;
        let (values, items) = features.into_parts();
        let (buffer, base, first_of_batch) = match values {
            Values::Own(data) => (js.f32_buffer(data)?, 0, false),
            Values::Shared { arena, offset, .. } => {
                let (buffer, made) = buffers.of(js, arena)?;
                (buffer, offset, made)
            }
        };
        Ok(Laid {
            buffer,
            base,
            first_of_batch,
            frames,
            items,
        })
    }
}

/// The ArrayBuffers made for shared values in one call, one per batch
/// buffer (keyed by its address: each ArrayBuffer holds its batch buffer
/// alive, so no address is reused while these are in use).
#[derive(Default)]
pub struct Buffers(HashMap<*const Vec<f32>, sys::napi_value>);

impl Buffers {
    /// The ArrayBuffer over `arena`, and whether this call made it.
    fn of(&mut self, js: Js, arena: Arc<Vec<f32>>) -> Result<(sys::napi_value, bool)> {
        let key = Arc::as_ptr(&arena);
        if let Some(&buffer) = self.0.get(&key) {
            return Ok((buffer, false));
        }
        let buffer = js.shared_f32_buffer(arena)?;
        self.0.insert(key, buffer);
        Ok((buffer, true))
    }
}
