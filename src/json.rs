//! Strict JSON, the one reader for what callers send as JSON (a token's header
//! and claims, the request body): exactly one object, and no member name given
//! twice in any object at any depth. Two parsers that keep different
//! duplicates are how a second `UserId` or `iss` gets past a check.
//!
//! Its errors carry positions and which name repeated, never serde's text:
//! that quotes the caller's bytes, and messages built from it would carry them
//! into answers and logs. Callers say what went wrong in their own words.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Why a document is not one strict JSON object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StrictJsonError {
    /// Not JSON at all; the position (1-based) when serde_json knew one.
    Syntax { line: usize, column: usize },
    /// A member name given twice in one object.
    Duplicate(Duplicate),
    /// Valid JSON, but not an object.
    NotAnObject,
    /// An object followed by more than whitespace.
    TrailingCharacters,
}

/// A member name given twice. The name is the caller's text: show it only
/// when it is one the caller's reader knows (a model member), never otherwise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Duplicate {
    pub(crate) name: String,
    /// In the document's own object, not a nested one.
    pub(crate) top_level: bool,
}

/// Reads `bytes` as one JSON object with no duplicate member names.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, StrictJsonError> {
    // Anything but an object is refused before it is read at all.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(StrictJsonError::NotAnObject);
    }
    let duplicate = RefCell::new(None);
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = Strict {
        top_level: true,
        duplicate: &duplicate,
    }
    .deserialize(&mut de)
    .map_err(|e| match duplicate.take() {
        Some(found) => StrictJsonError::Duplicate(found),
        None => StrictJsonError::Syntax {
            line: e.line(),
            column: e.column(),
        },
    })?;
    de.end().map_err(|_| StrictJsonError::TrailingCharacters)?;
    match value {
        Value::Object(members) => Ok(members),
        _ => Err(StrictJsonError::NotAnObject),
    }
}

/// Reads one JSON value, refusing duplicate member names in every object.
#[derive(Clone, Copy)]
struct Strict<'a> {
    top_level: bool,
    /// Where a duplicate is noted: beside serde_json's error, not in it.
    duplicate: &'a RefCell<Option<Duplicate>>,
}

impl Strict<'_> {
    fn nested(self) -> Self {
        Strict {
            top_level: false,
            ..self
        }
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self.nested())? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut members = Map::new();
        while let Some(name) = map.next_key::<String>()? {
            if members.contains_key(&name) {
                *self.duplicate.borrow_mut() = Some(Duplicate {
                    name,
                    top_level: self.top_level,
                });
                // Never shown: `parse_object` answers from `duplicate`.
                return Err(de::Error::custom("duplicate member"));
            }
            let value = map.next_value_seed(self.nested())?;
            members.insert(name, value);
        }
        Ok(Value::Object(members))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duplicate(name: &str, top_level: bool) -> StrictJsonError {
        StrictJsonError::Duplicate(Duplicate {
            name: name.into(),
            top_level,
        })
    }

    #[test]
    fn one_object_is_read() {
        let members = parse_object(br#" {"a": 1, "b": [{"c": null}]} "#).unwrap();
        assert_eq!(members["b"][0]["c"], Value::Null);
    }

    #[test]
    fn a_member_given_twice_is_refused_at_any_depth_and_named_with_its_depth() {
        assert_eq!(parse_object(br#"{"a":1,"a":2}"#), Err(duplicate("a", true)));
        assert_eq!(parse_object(br#"{"a":{"b":1,"b":1}}"#), Err(duplicate("b", false)));
        assert_eq!(parse_object(br#"{"a":[{"b":1,"b":2}]}"#), Err(duplicate("b", false)));
        assert!(parse_object(br#"{"a":[{"b":1},{"b":2}]}"#).is_ok());
    }

    #[test]
    fn anything_but_one_object_is_refused() {
        assert_eq!(parse_object(b"[1]"), Err(StrictJsonError::NotAnObject));
        assert_eq!(parse_object(b"\"x\""), Err(StrictJsonError::NotAnObject));
        assert_eq!(parse_object(b""), Err(StrictJsonError::NotAnObject));
        assert_eq!(parse_object(b"{} {}"), Err(StrictJsonError::TrailingCharacters));
        assert_eq!(
            parse_object(b"{\n \"a\": }"),
            Err(StrictJsonError::Syntax { line: 2, column: 7 })
        );
    }
}
