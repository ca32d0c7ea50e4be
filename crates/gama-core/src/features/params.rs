//! Extraction parameters as a caller gives them (every field optional):
//! layered (an item's over its processor's) and only then resolved into
//! `FeatureOptions`, so derived defaults such as `fmax = sampleRate / 2` and
//! `hopLength = nFft / 4` follow the merged values, never stale ones.

use serde_json::{Map, Number, Value};

use super::options::{Feature, FeatureOptions, OptionError, PadMode, WindowKind};

/// librosa's default sample rate, used when none is given.
pub const DEFAULT_SAMPLE_RATE: f64 = 22_050.0;

/// Parameters as given; `None` means "not given" (librosa's default, or the
/// value derived from the others).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExtractParams {
    /// `sampleRate`.
    pub sample_rate: Option<f64>,
    /// `features`.
    pub features: Option<Vec<Feature>>,
    /// `nFft`.
    pub n_fft: Option<usize>,
    /// `hopLength` (default nFft / 4).
    pub hop_length: Option<usize>,
    /// `winLength` (default nFft).
    pub win_length: Option<usize>,
    /// `window`.
    pub window: Option<WindowKind>,
    /// `center`.
    pub center: Option<bool>,
    /// `padMode`.
    pub pad_mode: Option<PadMode>,
    /// `nMels`.
    pub n_mels: Option<usize>,
    /// `fmin`.
    pub fmin: Option<f64>,
    /// `fmax` (default sampleRate / 2).
    pub fmax: Option<f64>,
    /// `htk`.
    pub htk: Option<bool>,
    /// `norm`: `Some(true)` for 'slaney', `Some(false)` for null.
    pub slaney_norm: Option<bool>,
    /// `power`.
    pub power: Option<f64>,
    /// `nMfcc`.
    pub n_mfcc: Option<usize>,
    /// `topDb`: `Some(None)` for null (keep the whole range).
    pub top_db: Option<Option<f64>>,
}

impl ExtractParams {
    /// Every parameter name, as JS spells it.
    pub const NAMES: [&'static str; 16] = [
        "sampleRate",
        "features",
        "nFft",
        "hopLength",
        "winLength",
        "window",
        "center",
        "padMode",
        "nMels",
        "fmin",
        "fmax",
        "htk",
        "norm",
        "power",
        "nMfcc",
        "topDb",
    ];

    /// These parameters where given, `base`'s elsewhere.
    pub fn over(&self, base: &ExtractParams) -> ExtractParams {
        ExtractParams {
            sample_rate: self.sample_rate.or(base.sample_rate),
            features: self.features.clone().or_else(|| base.features.clone()),
            n_fft: self.n_fft.or(base.n_fft),
            hop_length: self.hop_length.or(base.hop_length),
            win_length: self.win_length.or(base.win_length),
            window: self.window.or(base.window),
            center: self.center.or(base.center),
            pad_mode: self.pad_mode.or(base.pad_mode),
            n_mels: self.n_mels.or(base.n_mels),
            fmin: self.fmin.or(base.fmin),
            fmax: self.fmax.or(base.fmax),
            htk: self.htk.or(base.htk),
            slaney_norm: self.slaney_norm.or(base.slaney_norm),
            power: self.power.or(base.power),
            n_mfcc: self.n_mfcc.or(base.n_mfcc),
            top_db: self.top_db.or(base.top_db),
        }
    }

    /// The full option set: librosa's defaults, derived values, then a check
    /// of every parameter (the error names the first bad one).
    pub fn resolve(&self) -> Result<FeatureOptions, OptionError> {
        let sample_rate = self.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE);
        let mut o = FeatureOptions::new(sample_rate);
        if let Some(n) = self.n_fft {
            o.n_fft = n;
        }
        o.win_length = self.win_length.unwrap_or(o.n_fft);
        o.hop_length = self.hop_length.unwrap_or((o.n_fft / 4).max(1));
        o.window = self.window.unwrap_or(o.window);
        o.center = self.center.unwrap_or(o.center);
        o.pad_mode = self.pad_mode.unwrap_or(o.pad_mode);
        o.n_mels = self.n_mels.unwrap_or(o.n_mels);
        o.fmin = self.fmin.unwrap_or(o.fmin);
        o.fmax = self.fmax.unwrap_or(sample_rate / 2.0);
        o.htk = self.htk.unwrap_or(o.htk);
        o.slaney_norm = self.slaney_norm.unwrap_or(o.slaney_norm);
        o.power = self.power.unwrap_or(o.power);
        o.n_mfcc = self.n_mfcc.unwrap_or(o.n_mfcc);
        o.top_db = self.top_db.unwrap_or(o.top_db);
        if let Some(features) = &self.features {
            o.features = features.clone();
        }
        o.validate()?;
        Ok(o)
    }

    /// The given parameters as JSON, spelt as JS gives them (numbers that
    /// are whole are written as integers, as JSON.stringify writes them):
    /// the parameter part of a cache key. `None` when nothing was given.
    pub fn to_json(&self) -> Option<Value> {
        let mut map = Map::new();
        let mut put = |name: &str, value: Option<Value>| {
            if let Some(v) = value {
                map.insert(name.to_string(), v);
            }
        };
        let count = |n: Option<usize>| n.map(|n| Value::from(n as u64));
        put("sampleRate", self.sample_rate.map(number));
        put(
            "features",
            self.features
                .as_ref()
                .map(|f| f.iter().map(|f| Value::from(f.name())).collect()),
        );
        put("nFft", count(self.n_fft));
        put("hopLength", count(self.hop_length));
        put("winLength", count(self.win_length));
        put("window", self.window.map(|w| Value::from(w.name())));
        put("center", self.center.map(Value::from));
        put("padMode", self.pad_mode.map(|p| Value::from(p.name())));
        put("nMels", count(self.n_mels));
        put("fmin", self.fmin.map(number));
        put("fmax", self.fmax.map(number));
        put("htk", self.htk.map(Value::from));
        put(
            "norm",
            self.slaney_norm.map(|s| {
                if s {
                    Value::from("slaney")
                } else {
                    Value::Null
                }
            }),
        );
        put("power", self.power.map(number));
        put("nMfcc", count(self.n_mfcc));
        put("topDb", self.top_db.map(|t| t.map_or(Value::Null, number)));
        (!map.is_empty()).then_some(Value::Object(map))
    }
}

/// A finite number as JSON: whole numbers as integers.
fn number(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 {
        Value::from(x as i64)
    } else {
        Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_defaults_follow_the_merged_values() {
        let processor = ExtractParams {
            sample_rate: Some(16_000.0),
            n_fft: Some(512),
            ..ExtractParams::default()
        };
        let item = ExtractParams {
            sample_rate: Some(44_100.0),
            ..ExtractParams::default()
        };
        let o = item.over(&processor).resolve().unwrap();
        assert_eq!(o.sample_rate, 44_100.0);
        assert_eq!(o.fmax, 22_050.0, "fmax is derived again, not kept at 8 kHz");
        assert_eq!((o.n_fft, o.hop_length, o.win_length), (512, 128, 512));
        let narrow = ExtractParams {
            sample_rate: Some(8_000.0),
            ..ExtractParams::default()
        };
        assert_eq!(narrow.over(&processor).resolve().unwrap().fmax, 4_000.0);
        let explicit = ExtractParams {
            fmax: Some(6_000.0),
            ..ExtractParams::default()
        };
        let err = narrow
            .over(&explicit.over(&processor))
            .resolve()
            .unwrap_err();
        assert_eq!(
            err.name, "fmax",
            "an fmax the caller did give is still checked"
        );
    }

    #[test]
    fn json_holds_what_was_given_and_tells_results_apart() {
        let a = ExtractParams {
            sample_rate: Some(16_000.0),
            n_fft: Some(512),
            top_db: Some(None),
            ..ExtractParams::default()
        };
        assert_eq!(
            a.to_json().unwrap(),
            serde_json::json!({ "sampleRate": 16000, "nFft": 512, "topDb": null })
        );
        let b = ExtractParams {
            sample_rate: Some(44_100.0),
            ..ExtractParams::default()
        };
        assert_ne!(b.over(&a).to_json(), a.to_json());
        assert_eq!(ExtractParams::default().to_json(), None);
        assert_eq!(
            ExtractParams::default().resolve().unwrap().sample_rate,
            DEFAULT_SAMPLE_RATE
        );
    }
}
