//! Whole numbers in JSON bodies. JSON Schema's `integer` (what the OpenAPI document says of
//! these fields) includes numbers written with a zero fraction, such as `365.0`, which serde's
//! `i64` refuses; these take both, and refuse any other fraction as not an integer.

use serde::{Deserialize, Deserializer};

fn whole<E: serde::de::Error>(n: serde_json::Number) -> Result<i64, E> {
    if let Some(i) = n.as_i64() {
        return Ok(i);
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f >= i64::MIN as f64 && f < i64::MAX as f64 => Ok(f as i64),
        _ => Err(E::custom(format!("expected a whole number, got {n}"))),
    }
}

/// A required whole number.
pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    whole(serde_json::Number::deserialize(d)?)
}

/// An optional whole number (`null` or absent: `None`; give the field `#[serde(default)]`).
pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?.map(whole).transpose()
}

/// A whole number that may be sent as `null` (`Some(None)`) or left out (`None`; give the
/// field `#[serde(default)]`).
pub fn nullable<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
    optional(d).map(Some)
}

#[cfg(test)]
mod tests {
    #[derive(serde::Deserialize, Debug)]
    struct Body {
        #[serde(default, deserialize_with = "super::optional")]
        days: Option<i64>,
    }

    fn days(json: &str) -> Result<Option<i64>, String> {
        serde_json::from_str::<Body>(json)
            .map(|b| b.days)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn whole_numbers_may_carry_a_zero_fraction_and_nothing_else() {
        assert_eq!(days(r#"{"days": 365}"#), Ok(Some(365)));
        assert_eq!(days(r#"{"days": 365.0}"#), Ok(Some(365)));
        assert_eq!(days(r#"{"days": -1}"#), Ok(Some(-1)));
        assert_eq!(days(r#"{"days": null}"#), Ok(None));
        assert_eq!(days("{}"), Ok(None));
        for bad in [r#"{"days": 1.5}"#, r#"{"days": "365"}"#, r#"{"days": 1e300}"#] {
            assert!(days(bad).is_err(), "{bad}");
        }
    }
}
