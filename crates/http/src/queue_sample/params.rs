//! A request's parameters as the original read them (spec 3.2, 8.2.2, 8.3): from the
//! query string for GET, PUT and DELETE, from a JSON object for POST, with
//! "required" meaning present and truthy, and typed accessors that produce the
//! dialect's 422 texts. Nothing here knows about the broker.

use serde_json::Value;

/// One parameter's raw value: every query value of that name, or the JSON value.
#[derive(Debug, Clone)]
enum Raw {
    /// Query values, in order (the first one counts).
    Query(Vec<String>),
    /// The JSON object's value, with an array already replaced by its first element.
    Json(Value),
}

/// The parameters of one request.
#[derive(Debug, Default)]
pub(crate) struct Params {
    pairs: Vec<(String, Raw)>,
    /// The JSON body's names whose value was an empty array: absent for every accessor
    /// but [`Params::message`], which refuses one (8.3.8).
    empty_arrays: Vec<String>,
}

/// Why a typed parameter could not be read: its 422 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Invalid(pub String);

/// Why a POST body gave no parameters: its 400 text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadBody(pub &'static str);

impl Params {
    /// Parameters from a query string: split on `&` only and on the first `=` of each
    /// pair, `+` and `%xx` decoded, empty values dropped.
    pub(crate) fn from_query(query: &str) -> Params {
        let mut params = Params::default();
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = decode(value);
            if value.is_empty() {
                continue;
            }
            let name = decode(name);
            match params.pairs.iter_mut().find(|(n, _)| *n == name) {
                Some((_, Raw::Query(values))) => values.push(value),
                _ => params.pairs.push((name, Raw::Query(vec![value]))),
            }
        }
        params
    }

    /// Parameters from a POST body, which must be a JSON object.
    pub(crate) fn from_json(body: &[u8]) -> Result<Params, BadBody> {
        let text = std::str::from_utf8(body).map_err(|_| BadBody(NOT_JSON))?;
        let value: Value = serde_json::from_str(text).map_err(|_| BadBody(NOT_JSON))?;
        let Value::Object(map) = value else {
            return Err(BadBody("POST body must be a JSON object"));
        };
        let mut params = Params::default();
        for (name, value) in map {
            let value = match value {
                Value::Array(items) => match items.into_iter().next() {
                    Some(first) => first,
                    None => {
                        params.empty_arrays.push(name);
                        continue;
                    }
                },
                other => other,
            };
            params.pairs.push((name, Raw::Json(value)));
        }
        Ok(params)
    }

    fn raw(&self, name: &str) -> Option<&Raw> {
        self.pairs.iter().find(|(n, _)| n == name).map(|(_, r)| r)
    }

    /// Whether the parameter was given at all (even with a falsy JSON value).
    pub(crate) fn has(&self, name: &str) -> bool {
        self.raw(name).is_some()
    }

    /// Whether the parameter is present and truthy: not an empty string, `null`,
    /// `false`, or a JSON `0`.
    pub(crate) fn present(&self, name: &str) -> bool {
        match self.raw(name) {
            None => false,
            Some(Raw::Query(_)) => true,
            Some(Raw::Json(v)) => truthy(v),
        }
    }

    /// A string parameter if present and truthy; a non-string JSON value is an error.
    pub(crate) fn string(&self, name: &str) -> Result<Option<String>, Invalid> {
        match self.raw(name) {
            None => Ok(None),
            Some(Raw::Query(values)) => Ok(values.first().cloned()),
            Some(Raw::Json(Value::String(s))) if s.is_empty() => Ok(None),
            Some(Raw::Json(Value::String(s))) => Ok(Some(s.clone())),
            Some(Raw::Json(v)) if !truthy(v) => Ok(None),
            Some(Raw::Json(v)) => Err(Invalid(expected("string", name, &json_shown(v)))),
        }
    }

    /// `publish`'s message: present unless missing or `null` (a JSON `""` is a message);
    /// anything but a string is an error (8.3.8, an empty array included).
    pub(crate) fn message(&self) -> Result<Option<String>, Invalid> {
        if self.empty_arrays.iter().any(|n| n == "message") {
            return Err(Invalid(expected("string", "message", "[]")));
        }
        match self.raw("message") {
            None | Some(Raw::Json(Value::Null)) => Ok(None),
            Some(Raw::Query(values)) => Ok(values.first().cloned()),
            Some(Raw::Json(Value::String(s))) => Ok(Some(s.clone())),
            Some(Raw::Json(v)) => Err(Invalid(expected("string", "message", &json_shown(v)))),
        }
    }

    /// An integer parameter if present and truthy: ASCII digits with an optional sign
    /// (and surrounding whitespace in text), 64-bit; anything else is an error whose
    /// text names `shown_as` (the original's `topic_reset` names the wrong one).
    pub(crate) fn int(&self, name: &str, shown_as: &str) -> Result<Option<i64>, Invalid> {
        let bad = |shown: String| Invalid(expected("integer", shown_as, &shown));
        match self.raw(name) {
            None => Ok(None),
            Some(Raw::Query(values)) => {
                let first = values.first().map(String::as_str).unwrap_or("");
                parse_int(first)
                    .map(Some)
                    .ok_or_else(|| bad(py_list_repr(values)))
            }
            Some(Raw::Json(v)) if !truthy(v) => Ok(None),
            Some(Raw::Json(Value::Number(n))) => {
                n.as_i64().map(Some).ok_or_else(|| bad(n.to_string()))
            }
            Some(Raw::Json(Value::String(s))) => {
                parse_int(s).map(Some).ok_or_else(|| bad(s.clone()))
            }
            Some(Raw::Json(v)) => Err(bad(json_shown(v))),
        }
    }
}

const NOT_JSON: &str = "POST body is not valid JSON";

/// The 422 text of a parameter of the wrong type.
fn expected(kind: &str, name: &str, shown: &str) -> String {
    format!("Expected {kind} value for the {name} parameter. Got [{shown}].")
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// A JSON value in an error text: a string as it is, anything else as compact JSON.
fn json_shown(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Decimal ASCII digits with an optional sign and surrounding whitespace, as `i64`.
pub(crate) fn parse_int(text: &str) -> Option<i64> {
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse().ok()
}

/// `+` as space and `%xx` decoded; invalid UTF-8 replaced, as Python's default.
fn decode(text: &str) -> String {
    let spaced = text.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8_lossy()
        .into_owned()
}

/// Python's `repr` of a list of strings: `['abc']`, `['a', 'b']`.
fn py_list_repr(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| py_str_repr(v)).collect();
    format!("[{}]", items.join(", "))
}

/// Python's `repr` of a string: single quotes unless it holds one and no double.
fn py_str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_drop_empties_and_keep_the_first() {
        let p = Params::from_query("topic=a+b%21&message=&topic=c&x");
        assert_eq!(p.string("topic").unwrap().as_deref(), Some("a b!"));
        assert!(!p.present("message"));
        assert!(!p.present("x"));
    }

    #[test]
    fn integers_follow_the_dialect() {
        let p = Params::from_query("a=+12&b=abc&c=1_0&d=99999999999999999999&e=a&e=b");
        assert_eq!(p.int("a", "a"), Ok(Some(12)));
        assert_eq!(
            p.int("b", "b"),
            Err(Invalid(
                "Expected integer value for the b parameter. Got [['abc']].".into()
            ))
        );
        assert!(p.int("c", "c").is_err());
        assert!(p.int("d", "d").is_err());
        assert_eq!(
            p.int("e", "e").unwrap_err().0,
            "Expected integer value for the e parameter. Got [['a', 'b']]."
        );
        let j = Params::from_json(br#"{"a": 1.5, "b": true, "c": 0, "d": ["7"], "e": [["x"]]}"#)
            .unwrap();
        assert_eq!(
            j.int("a", "a").unwrap_err().0,
            "Expected integer value for the a parameter. Got [1.5]."
        );
        assert!(j.int("b", "b").is_err());
        assert_eq!(j.int("c", "c"), Ok(None));
        assert_eq!(j.int("d", "d"), Ok(Some(7)));
        assert_eq!(
            j.int("e", "e").unwrap_err().0,
            "Expected integer value for the e parameter. Got [[\"x\"]]."
        );
    }

    #[test]
    fn bodies_must_be_json_objects() {
        assert_eq!(Params::from_json(b"").unwrap_err().0, NOT_JSON);
        assert_eq!(Params::from_json(b"\xff").unwrap_err().0, NOT_JSON);
        assert_eq!(
            Params::from_json(b"[1]").unwrap_err().0,
            "POST body must be a JSON object"
        );
    }

    #[test]
    fn reprs_match_python() {
        assert_eq!(py_str_repr("it's"), "\"it's\"");
        assert_eq!(py_str_repr("a'\"b"), "'a\\'\"b'");
    }
}
