//! Rotary-embedding settings as transformers reads them from `config.json`, in every layout
//! its versions have written:
//!
//! - v4 (< 4.43): `rope_theta` at the top level, `rope_scaling: {"type": "linear", ...}`;
//! - v4 (>= 4.43): the kind under `rope_type`; a config re-saved from a legacy one carries
//!   both keys (the config classes copy `type` into `rope_type` and write both back);
//! - v5: everything under `rope_parameters: {"rope_theta": ..., "rope_type": ..., ...}`, with
//!   no top-level `rope_theta` or `rope_scaling`.
//!
//! Reading only one layout silently falls back to a base of 10000 and drops the scaling,
//! which degrades every position; so every layout is read, contradictions between them are
//! refused by field name, and kinds the decoder does not implement (`dynamic`, `yarn`,
//! `longrope`, ...) are refused rather than run as plain RoPE.

use serde_json::Value;

use crate::model::config::RopeFields;
use crate::model::decoder::RopeKind;
use crate::model::error::{FieldError, field_err};

type Result<T> = std::result::Result<T, FieldError>;

/// transformers' default RoPE base (`rope_theta`) for every supported family.
pub const DEFAULT_ROPE_THETA: f64 = 10000.0;

/// The resolved RoPE base and frequency scaling.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// The base of the rotary frequencies (`rope_theta`): dimension pair `i` of a head of size
    /// `d` rotates at `theta^(-2i/d)` radians per position.
    pub theta: f64,
    /// How the frequencies are scaled for longer contexts (none, linear, Llama 3, ...).
    pub kind: RopeKind,
}

/// Resolves the RoPE fields of one config. `max_position_embeddings` is only used where
/// transformers falls back to it. Errors name the field (`rope_scaling.factor`, ...).
pub fn resolve(fields: &RopeFields) -> Result<Rope> {
    if let Some(f) = fields.partial_rotary_factor
        && f != 1.0
    {
        field_err!("partial_rotary_factor", "{f} is not supported (only 1.0, full rotation)");
    }
    let params = match &fields.rope_parameters {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => {
            if map.values().all(Value::is_object) && !map.is_empty() {
                field_err!(
                    "rope_parameters",
                    "per-layer-type RoPE settings ({}) are not supported",
                    map.keys().cloned().collect::<Vec<_>>().join(", ")
                );
            }
            Some(map)
        }
        Some(_) => field_err!("rope_parameters", "expected an object"),
    };
    let scaling = match &fields.rope_scaling {
        None | Some(Value::Null) => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => field_err!("rope_scaling", "expected an object or null"),
    };

    // The base: top-level (v4) or inside rope_parameters (v5); both must agree.
    let nested_theta = match params.and_then(|p| p.get("rope_theta")) {
        None | Some(Value::Null) => None,
        Some(v) => Some(v.as_f64().ok_or_else(|| {
            FieldError::new("rope_parameters.rope_theta", format!("expected a number, got {v}"))
        })?),
    };
    let theta = match (fields.rope_theta, nested_theta) {
        (Some(a), Some(b)) if a != b => field_err!(
            "rope_parameters.rope_theta",
            "`rope_theta` ({a}) and `rope_parameters.rope_theta` ({b}) disagree: \
             cannot tell which RoPE base the checkpoint was trained with"
        ),
        (a, b) => a.or(b).unwrap_or(DEFAULT_ROPE_THETA),
    };
    if !(theta.is_finite() && theta > 0.0) {
        field_err!("rope_theta", "must be a positive number, got {theta}");
    }

    let from_params = params.map(|p| kind_of(p, "rope_parameters", true)).transpose()?;
    let from_scaling = scaling.map(|s| kind_of(s, "rope_scaling", false)).transpose()?;
    let kind = match (from_params, from_scaling) {
        (Some(a), Some(b)) if a != b => field_err!(
            "rope_parameters",
            "`rope_scaling` and `rope_parameters` describe different RoPE scalings \
             ({a:?} vs {b:?})"
        ),
        (a, b) => a.or(b).unwrap_or(RopeKind::Default),
    };
    Ok(Rope { theta, kind })
}

/// The scaling kind of one `rope_scaling` / `rope_parameters` object. `type` and `rope_type`
/// may both be present (a re-saved legacy config) but must then agree. A v5
/// `rope_parameters` without a kind means `default`; a v4 `rope_scaling` object must name one
/// (transformers fails on it otherwise).
fn kind_of(map: &serde_json::Map<String, Value>, field: &str, v5: bool) -> Result<RopeKind> {
    let text = |key: &str| -> Result<Option<&str>> {
        match map.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.as_str())),
            Some(other) => field_err!(format!("{field}.{key}"), "expected a string, got {other}"),
        }
    };
    let rope_type = match (text("rope_type")?, text("type")?) {
        (Some(a), Some(b)) if a != b => {
            field_err!(field, "`rope_type` ({a}) and the legacy `type` ({b}) disagree")
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) if v5 => "default",
        (None, None) => {
            field_err!(format!("{field}.rope_type"), "missing (neither `rope_type` nor `type`)")
        }
    };
    let number = |key: &str| -> Result<f64> {
        match map.get(key) {
            Some(v) => v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                FieldError::new(format!("{field}.{key}"), format!("expected a number, got {v}"))
            }),
            None => field_err!(format!("{field}.{key}"), "required for rope type `{rope_type}`"),
        }
    };
    Ok(match rope_type {
        "default" => RopeKind::Default,
        "linear" => {
            let factor = number("factor")?;
            if factor <= 0.0 {
                field_err!(format!("{field}.factor"), "must be positive, got {factor}");
            }
            RopeKind::Linear { factor }
        }
        "llama3" => RopeKind::Llama3 {
            factor: number("factor")?,
            low_freq_factor: number("low_freq_factor")?,
            high_freq_factor: number("high_freq_factor")?,
            original_max_position: number("original_max_position_embeddings")? as i64,
        },
        other => field_err!(
            format!("{field}.rope_type"),
            "`{other}` is not supported (supported: default, linear, \
             llama3); running it as plain RoPE would give wrong outputs"
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(v: serde_json::Value) -> RopeFields {
        serde_json::from_value(v).unwrap()
    }

    /// The field a refused config names.
    fn refused(v: serde_json::Value) -> String {
        resolve(&fields(v)).unwrap_err().field
    }

    #[test]
    fn every_layout_of_linear_scaling_reads_the_same() {
        let want = Rope { theta: 10000.0, kind: RopeKind::Linear { factor: 4.0 } };
        for v in [
            json!({"rope_scaling": {"type": "linear", "factor": 4.0}}),
            json!({"rope_scaling": {"rope_type": "linear", "factor": 4}}),
            json!({"rope_scaling": {"rope_type": "linear", "type": "linear", "factor": 4.0}}),
            json!({"rope_parameters": {"rope_type": "linear", "factor": 4.0, "rope_theta": 1e4}}),
            json!({"rope_theta": 10000, "rope_parameters": {"type": "linear", "factor": 4.0}}),
        ] {
            assert_eq!(resolve(&fields(v.clone())).unwrap(), want, "{v}");
        }
    }

    #[test]
    fn v5_base_is_read_from_rope_parameters() {
        let r = resolve(&fields(
            json!({"rope_parameters": {"rope_theta": 1e6, "rope_type": "default"}}),
        ))
        .unwrap();
        assert_eq!(r, Rope { theta: 1e6, kind: RopeKind::Default });
        let r = resolve(&fields(json!({"rope_parameters": {"rope_theta": 5e5}}))).unwrap();
        assert_eq!(r.theta, 5e5);
        assert_eq!(resolve(&fields(json!({}))).unwrap().theta, 10000.0);
    }

    #[test]
    fn contradictions_and_unknown_kinds_are_refused_by_field() {
        let conflict =
            json!({"rope_scaling": {"rope_type": "linear", "type": "dynamic", "factor": 2}});
        assert_eq!(refused(conflict), "rope_scaling");
        let bases = json!({"rope_theta": 1e4, "rope_parameters": {"rope_theta": 1e6}});
        assert_eq!(refused(bases), "rope_parameters.rope_theta");
        for kind in ["yarn", "dynamic", "longrope", "su", "made-up"] {
            let e = resolve(&fields(json!({"rope_scaling": {"rope_type": kind, "factor": 2.0}})))
                .unwrap_err();
            assert_eq!(e.field, "rope_scaling.rope_type");
            assert!(e.message.contains(kind), "{e}");
            let v5 = json!({"rope_parameters": {"rope_type": kind, "factor": 2.0}});
            assert_eq!(refused(v5), "rope_parameters.rope_type");
        }
        assert_eq!(refused(json!({"rope_scaling": {"type": "linear"}})), "rope_scaling.factor");
        assert_eq!(refused(json!({"rope_scaling": {"factor": 2.0}})), "rope_scaling.rope_type");
        let llama3 = json!({"rope_scaling": {"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0}});
        assert_eq!(refused(llama3), "rope_scaling.original_max_position_embeddings");
        assert_eq!(refused(json!({"partial_rotary_factor": 0.5})), "partial_rotary_factor");
        let per_layer = json!({"rope_parameters": {"full_attention": {"rope_theta": 1e4},
            "sliding_attention": {"rope_theta": 1e4}}});
        assert_eq!(refused(per_layer), "rope_parameters");
        let mixed = json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0},
            "rope_parameters": {"rope_type": "linear", "factor": 4.0}});
        assert_eq!(refused(mixed), "rope_parameters");
    }
}
