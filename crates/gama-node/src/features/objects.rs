//! The JS result objects of extracted features, made by `objects.js` many
//! at a time: one JS call for a whole batch instead of about five N-API
//! property sets per feature of every clip.

use napi::bindgen_prelude::Unknown;
use napi::{sys, Env, JsValue, Result};

use crate::js::napi::{to_value, Js};
use crate::js::raw::Persistent;
use crate::js::value::new_float64_array;
use gama_core::features::{Feature, Features, Span};

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
        let laid = Laid::new(Js::new(env), features)?;
        Self::make_one(env, &laid)
    }

    /// A JS array of the objects of `results`, in order.
    pub fn many(env: &Env, results: Vec<Features>) -> Result<sys::napi_value> {
        let js = Js::new(env);
        let laid = results
            .into_iter()
            .map(|f| Laid::new(js, f))
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
        let buffers = js.array()?;
        for (r, laid) in results.iter().enumerate() {
            js.set_element(buffers, r as u32, laid.buffer)?;
            layout.extend([laid.frames as f64, laid.items.len() as f64]);
            for (feature, span) in &laid.items {
                let name = match names.iter().position(|n| n == feature) {
                    Some(i) => i,
                    None => {
                        names.push(*feature);
                        names.len() - 1
                    }
                };
                layout.extend([name as f64, span.offset as f64, span.bins as f64]);
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
            &[names_js, scalar, buffers, layout],
        )
    }
}

/// One result ready for the maker: its values already a JS ArrayBuffer
/// (without a copy when large: `Js::f32_buffer`), and where each feature lies.
pub struct Laid {
    buffer: sys::napi_value,
    frames: usize,
    items: Vec<(Feature, Span)>,
}

impl Laid {
    /// Hands `features`' values to JS.
    pub fn new(js: Js, features: Features) -> Result<Laid> {
        let frames = features.frames;
        let (data, items) = features.into_parts();
        Ok(Laid {
            buffer: js.f32_buffer(data)?,
            frames,
            items,
        })
    }
}
