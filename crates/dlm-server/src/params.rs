//! Reading request fields out of a JSON object, one field at a time, so that every wrong
//! type or out-of-range value is answered with an error that names the field, says what
//! was expected and what was found.

use crate::error::ApiError;
use serde_json::{Map, Value};

/// A JSON request body that must be an object.
pub struct Fields<'a>(&'a Map<String, Value>);

/// The JSON type of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "an integer",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

impl<'a> Fields<'a> {
    pub fn new(body: &'a Value) -> Result<Fields<'a>, ApiError> {
        match body {
            Value::Object(map) => Ok(Fields(map)),
            other => Err(ApiError::bad_request(
                format!("the request body must be a JSON object, found {}", type_name(other)),
                "invalid_json",
            )),
        }
    }

    /// The field's value; an explicit `null` counts as absent.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        self.get(name).map(|v| v.as_bool().ok_or_else(|| wrong_type(name, "a boolean", v))).transpose()
    }

    pub fn str(&self, name: &str) -> Result<Option<&'a str>, ApiError> {
        self.get(name).map(|v| v.as_str().ok_or_else(|| wrong_type(name, "a string", v))).transpose()
    }

    /// A number within `[min, max]`.
    pub fn f64_in(&self, name: &str, min: f64, max: f64) -> Result<Option<f64>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let x = v.as_f64().ok_or_else(|| wrong_type(name, "a number", v))?;
        if !(min..=max).contains(&x) {
            return Err(ApiError::invalid(name, format!("`{name}` must be between {min} and {max}, got {x}")));
        }
        Ok(Some(x))
    }

    /// An integer within `[min, max]`.
    pub fn usize_in(&self, name: &str, min: usize, max: usize) -> Result<Option<usize>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let x = integer(name, v)?;
        if x < min as i128 || x > max as i128 {
            return Err(ApiError::invalid(name, format!("`{name}` must be an integer from {min} to {max}, got {x}")));
        }
        Ok(Some(x as usize))
    }

    /// Any 64-bit integer, negative ones taken modulo 2⁶⁴ (OpenAI's `seed` is an int64).
    pub fn seed(&self, name: &str) -> Result<Option<u64>, ApiError> {
        let Some(v) = self.get(name) else { return Ok(None) };
        let x = integer(name, v)?;
        if x < i64::MIN as i128 || x > u64::MAX as i128 {
            return Err(ApiError::invalid(name, format!("`{name}` must fit in 64 bits, got {x}")));
        }
        Ok(Some(if x < 0 { x as i64 as u64 } else { x as u64 }))
    }
}

fn integer(name: &str, v: &Value) -> Result<i128, ApiError> {
    v.as_i64().map(i128::from).or_else(|| v.as_u64().map(i128::from)).ok_or_else(|| wrong_type(name, "an integer", v))
}

pub fn wrong_type(name: &str, expected: &str, found: &Value) -> ApiError {
    ApiError::invalid(name, format!("`{name}` must be {expected}, found {}", type_name(found)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn fields_name_the_field_and_what_was_found() {
        let body = json!({"n": "2", "t": 3.5, "k": 7, "s": -1, "b": null});
        let f = Fields::new(&body).unwrap();
        let e = f.usize_in("n", 1, 4).unwrap_err();
        assert_eq!((e.param.as_deref(), e.message.as_str()), (Some("n"), "`n` must be an integer, found a string"));
        assert!(f.f64_in("t", 0.0, 2.0).unwrap_err().message.contains("between 0 and 2, got 3.5"));
        assert_eq!(f.usize_in("k", 1, 10).unwrap(), Some(7));
        assert!(f.usize_in("k", 1, 5).unwrap_err().message.contains("from 1 to 5, got 7"));
        assert_eq!(f.seed("s").unwrap(), Some(u64::MAX));
        assert_eq!(f.bool("b").unwrap(), None);
        assert_eq!(f.usize_in("missing", 1, 2).unwrap(), None);
        assert!(Fields::new(&json!([1])).is_err());
    }
}
