//! The JSON text RestMQ clients see, byte for byte: Python 2 `json.dumps` with its
//! default options (spec 2.4), Python's float `repr`, and the Redis client's
//! numeric conversion of stored text (spec 2.7, with Godwit's fix 12.2 #4).
//!
//! Hand-written on purpose: this formatting *is* the product. serde_json's separators,
//! escaping and float digits differ from Python's, and no crate reproduces CPython's
//! `repr(float)` or its `int()`/`float()` grammars. Nothing here knows about HTTP.

use std::fmt::Write as _;

/// A value as Python's `json.dumps` sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum PyValue {
    /// `None`, written `null`.
    Null,
    /// `True` / `False`, written `true` / `false`.
    Bool(bool),
    /// An integer of any size: canonical decimal digits, optional leading `-`.
    Int(String),
    /// A float, written as Python's `repr` (non-finite values are written `null`).
    Float(f64),
    /// A text string, written with `ensure_ascii` escaping.
    Str(String),
    /// A list, written `[a, b]`.
    List(Vec<PyValue>),
    /// A dict whose keys are written in the order given.
    Dict(Vec<(String, PyValue)>),
}

impl PyValue {
    /// A string value.
    pub fn str(text: impl Into<String>) -> PyValue {
        PyValue::Str(text.into())
    }

    /// An integer value from a machine integer.
    pub fn int(n: impl Into<i128>) -> PyValue {
        PyValue::Int(n.into().to_string())
    }

    /// A dict from `(key, value)` pairs, keeping their order.
    pub fn dict<K: Into<String>>(pairs: impl IntoIterator<Item = (K, PyValue)>) -> PyValue {
        PyValue::Dict(pairs.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

/// The text of `json.dumps(v)` in RestMQ (Python 2 defaults), followed by the
/// rewrite of every `</` into `<\/`.
pub fn dumps(v: &PyValue) -> String {
    let mut out = String::new();
    write_value(&mut out, v);
    if out.contains("</") {
        out = out.replace("</", "<\\/");
    }
    out
}

fn write_value(out: &mut String, v: &PyValue) {
    match v {
        PyValue::Null => out.push_str("null"),
        PyValue::Bool(true) => out.push_str("true"),
        PyValue::Bool(false) => out.push_str("false"),
        PyValue::Int(digits) => out.push_str(digits),
        // Python would write `Infinity`/`NaN`, which is not JSON; `convert` never
        // produces them (12.2 #4), and any other caller gets valid JSON.
        PyValue::Float(f) if !f.is_finite() => out.push_str("null"),
        PyValue::Float(f) => out.push_str(&float_repr(*f)),
        PyValue::Str(s) => write_str(out, s, true),
        PyValue::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_value(out, item);
            }
            out.push(']');
        }
        PyValue::Dict(pairs) => {
            out.push('{');
            for (i, (key, value)) in pairs.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(out, key, true);
                out.push_str(": ");
                write_value(out, value);
            }
            out.push('}');
        }
    }
}

/// A JSON string as Python's `json` writes it: `"`, `\` and control characters
/// escaped; with `ascii` (`ensure_ascii`, RestMQ's and Flask's default), everything
/// outside 0x20–0x7E too (`\uXXXX`, lowercase, surrogate pairs).
pub fn write_str(out: &mut String, s: &str, ascii: bool) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            c if !ascii && c > '\u{7f}' => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// Python's `repr(f)`: the shortest digits that round-trip, in fixed notation (with at
/// least one digit after the point) when the decimal exponent is in −4..=15, else in
/// exponent notation with a sign and at least two exponent digits.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let (digits, exp) = shortest_digits(f.abs());
    let mut out = String::with_capacity(digits.len() + 8);
    if f.is_sign_negative() {
        out.push('-');
    }
    if (-4..=15).contains(&exp) {
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else {
            // `exp` is 0..=15 here, so the cast is exact.
            let int_len = exp as usize + 1;
            if digits.len() > int_len {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            } else {
                out.push_str(&digits);
                for _ in digits.len()..int_len {
                    out.push('0');
                }
                out.push_str(".0");
            }
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let sign = if exp < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exp.unsigned_abs());
    }
    out
}

/// The shortest significant digits that round-trip to `f` (finite, not negative) and
/// the decimal exponent of the first one, as CPython's `dtoa` picks them.
fn shortest_digits(f: f64) -> (String, i32) {
    // Rust's `{:e}` gives the shortest round-trip digits: `1.5e16`, `1e-5`, `0e0`.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    // A tie between two shortest candidates needs 16 digits or more (doubles are
    // spaced by at least 2^-53 of their value).
    if digits.len() >= 16 {
        if let Some(even) = half_even_tie(f, &digits, exp) {
            return (even, exp);
        }
    }
    (digits, exp)
}

/// When `f` lies exactly halfway between two shortest candidates, Rust rounds the
/// last digit up and CPython to even: the even candidate if it differs and still
/// round-trips.
fn half_even_tie(f: f64, digits: &str, exp: i32) -> Option<String> {
    let n = digits.len();
    // Every double's exact decimal expansion has fewer than 800 significant digits.
    let exact = format!("{f:.800e}");
    let (mantissa, exact_exp) = exact.split_once('e')?;
    if exact_exp.parse::<i32>().ok()? != exp {
        return None;
    }
    let exact: Vec<u8> = mantissa.bytes().filter(|b| *b != b'.').collect();
    let is_tie = exact.get(n) == Some(&b'5') && exact.get(n + 1..)?.iter().all(|b| *b == b'0');
    let truncated = exact.get(..n)?;
    if !is_tie || truncated == digits.as_bytes() || truncated.last()? % 2 != 0 {
        return None;
    }
    let candidate = std::str::from_utf8(truncated).ok()?.trim_end_matches('0');
    let text = format!("{}.{}e{exp}", &candidate[..1], &candidate[1..]);
    (text.parse::<f64>().ok()? == f).then(|| candidate.to_owned())
}

/// What the reference Redis client made of a stored string (spec 2.7): a number if the
/// text starts with an ASCII digit, `+`, `-` or `.` and parses as a Python float (when
/// it contains a `.`) or int (otherwise); the text unchanged if not, or if the float
/// would be infinite (Godwit fix 12.2 #4).
pub fn convert(text: &str) -> PyValue {
    let starts_numeric = matches!(
        text.as_bytes().first(),
        Some(b'0'..=b'9' | b'+' | b'-' | b'.')
    );
    if starts_numeric {
        let parsed = if text.contains('.') {
            parse_py_float(text).map(PyValue::Float)
        } else {
            parse_py_int(text).map(PyValue::Int)
        };
        if let Some(v) = parsed {
            return v;
        }
    }
    PyValue::Str(text.to_owned())
}

/// The whitespace Python 2's `int()` and `float()` skip around a byte string.
fn trim_py_space(text: &str) -> &str {
    text.trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r'))
}

/// Python 2's `int(text)` in base 10, as canonical digits.
fn parse_py_int(text: &str) -> Option<String> {
    let t = trim_py_space(text);
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    // Python 2's int() (strtol) also skips whitespace between the sign and the digits:
    // int("- 5") is -5. float() does not.
    let digits = trim_py_space(digits);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let significant = digits.trim_start_matches('0');
    Some(match (significant.is_empty(), negative) {
        (true, _) => "0".to_owned(),
        (false, true) => format!("-{significant}"),
        (false, false) => significant.to_owned(),
    })
}

/// Python's `float(text)` for finite decimal literals; `None` if the grammar does not
/// match or the value overflows.
fn parse_py_float(text: &str) -> Option<f64> {
    let t = trim_py_space(text);
    if !is_decimal_literal(t) {
        return None;
    }
    // The grammar checked above is a subset of Rust's, which rounds correctly as
    // CPython's dtoa does.
    let f: f64 = t.parse().ok()?;
    f.is_finite().then_some(f)
}

/// `[sign] (digits [. [digits]] | . digits) [(e|E) [sign] digits]`.
fn is_decimal_literal(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    if matches!(b.first(), Some(b'+' | b'-')) {
        i += 1;
    }
    let int_start = i;
    while i < b.len() && b[i].is_ascii_digit() {
        i += 1;
    }
    let mut mantissa_digits = i - int_start;
    if i < b.len() && b[i] == b'.' {
        i += 1;
        let frac_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        mantissa_digits += i - frac_start;
    }
    if mantissa_digits == 0 {
        return false;
    }
    if i < b.len() && matches!(b[i], b'e' | b'E') {
        i += 1;
        if i < b.len() && matches!(b[i], b'+' | b'-') {
            i += 1;
        }
        let exp_start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if i == exp_start {
            return false;
        }
    }
    i == b.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn s(text: &str) -> PyValue {
        PyValue::str(text)
    }

    fn int(digits: &str) -> PyValue {
        PyValue::Int(digits.to_owned())
    }

    #[test]
    fn strings_are_escaped_as_python_ensure_ascii() {
        assert_eq!(dumps(&s("café </x>")), r#""caf\u00e9 <\/x>""#);
        assert_eq!(dumps(&s("😀")), r#""\ud83d\ude00""#);
        assert_eq!(dumps(&s("\u{7f}")), r#""\u007f""#);
        assert_eq!(dumps(&s("a\"b\\c/d")), r#""a\"b\\c/d""#);
        assert_eq!(dumps(&s("\n\r\t\u{8}\u{c}")), r#""\n\r\t\b\f""#);
        assert_eq!(
            dumps(&s("\u{0}\u{1}\u{b}\u{1f}")),
            r#""\u0000\u0001\u000b\u001f""#
        );
        assert_eq!(
            dumps(&s("\u{ff}\u{100}\u{abcd}")),
            r#""\u00ff\u0100\uabcd""#
        );
        assert_eq!(dumps(&s(" ~")), r#"" ~""#);
        assert_eq!(dumps(&s("")), r#""""#);
    }

    #[test]
    fn every_close_tag_opener_is_rewritten() {
        assert_eq!(dumps(&s("</a></b>")), r#""<\/a><\/b>""#);
        assert_eq!(
            dumps(&PyValue::dict([("</k", s("</v"))])),
            r#"{"<\/k": "<\/v"}"#
        );
        assert_eq!(dumps(&s("< /")), r#""< /""#);
    }

    #[test]
    fn containers_use_python_separators_and_given_key_order() {
        let v = PyValue::dict([
            ("count", PyValue::int(0)),
            ("key", s("test:1")),
            ("value", s("foobar")),
        ]);
        assert_eq!(
            dumps(&v),
            r#"{"count": 0, "key": "test:1", "value": "foobar"}"#
        );
        let nested = PyValue::dict([
            ("queue", s("dq")),
            (
                "status",
                PyValue::dict([("queue", s("dq")), ("status", PyValue::int(1))]),
            ),
            (
                "list",
                PyValue::List(vec![
                    PyValue::Null,
                    PyValue::Bool(true),
                    PyValue::Bool(false),
                ]),
            ),
            ("empty", PyValue::List(vec![])),
            ("none", PyValue::Dict(vec![])),
        ]);
        assert_eq!(
            dumps(&nested),
            r#"{"queue": "dq", "status": {"queue": "dq", "status": 1}, "list": [null, true, false], "empty": [], "none": {}}"#
        );
    }

    #[test]
    fn wire_samples_of_section_10_7() {
        let get = |value: &str| {
            dumps(&PyValue::dict([
                ("count", PyValue::int(0)),
                ("key", s("pq:1")),
                ("value", convert(value)),
            ]))
        };
        assert_eq!(get("007"), r#"{"count": 0, "key": "pq:1", "value": 7}"#);
        assert_eq!(
            get("-1.50"),
            r#"{"count": 0, "key": "pq:1", "value": -1.5}"#
        );
        assert_eq!(
            get("1.5e3"),
            r#"{"count": 0, "key": "pq:1", "value": 1500.0}"#
        );
        assert_eq!(get("1e5"), r#"{"count": 0, "key": "pq:1", "value": "1e5"}"#);
        assert_eq!(
            get("café </x>"),
            r#"{"count": 0, "key": "pq:1", "value": "caf\u00e9 <\/x>"}"#
        );
        assert_eq!(
            dumps(&PyValue::dict([
                ("queue", s("jq")),
                ("count", PyValue::int(1)),
                ("value", convert("a1")),
                ("key", s("jq:1")),
            ])),
            r#"{"queue": "jq", "count": 1, "value": "a1", "key": "jq:1"}"#
        );
    }

    #[test]
    fn non_finite_floats_are_never_written_as_invalid_json() {
        assert_eq!(dumps(&PyValue::Float(f64::INFINITY)), "null");
        assert_eq!(dumps(&PyValue::Float(f64::NAN)), "null");
        assert_eq!(float_repr(f64::NEG_INFINITY), "-inf");
        assert_eq!(float_repr(f64::NAN), "nan");
    }

    #[test]
    // The halfway cases below are written with their exact value on purpose.
    #[allow(clippy::excessive_precision)]
    fn float_repr_matches_python() {
        let cases: &[(f64, &str)] = &[
            (1500.0, "1500.0"),
            (-1.5, "-1.5"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (1e-5, "1e-05"),
            (2.5e-7, "2.5e-07"),
            (0.1, "0.1"),
            (1e22, "1e+22"),
            (123456789012345.0, "123456789012345.0"),
            // Exponent 15 is still fixed notation (checked against CPython 2.7.18).
            (1234567890123456.0, "1234567890123456.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            // Exactly halfway between two 17-digit candidates: CPython rounds to even.
            (1474018355666710.25, "1474018355666710.2"),
            (-1474018355666710.25, "-1474018355666710.2"),
            (263543548073632.125, "263543548073632.12"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (5.0, "5.0"),
            (0.5, "0.5"),
            (1.1, "1.1"),
            (0.1 + 0.2, "0.30000000000000004"),
            (123.456, "123.456"),
            (0.00012345, "0.00012345"),
            (1e100, "1e+100"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-2.5e-7, "-2.5e-07"),
            (1e-4, "0.0001"),
            (1.5e-5, "1.5e-05"),
        ];
        for (f, want) in cases {
            assert_eq!(float_repr(*f), *want, "repr of {f:e}");
        }
    }

    #[test]
    fn conversion_table_of_section_2_7() {
        assert_eq!(convert("007"), int("7"));
        assert_eq!(convert("-1.50"), PyValue::Float(-1.5));
        assert_eq!(convert("1.5e3"), PyValue::Float(1500.0));
        assert_eq!(convert("+5"), int("5"));
        assert_eq!(convert(".5"), PyValue::Float(0.5));
        assert_eq!(convert("5."), PyValue::Float(5.0));
        assert_eq!(convert("-0"), int("0"));
        for unchanged in ["1e5", "1e16", "1.2.3", "-", "0x10", " 5"] {
            assert_eq!(convert(unchanged), s(unchanged), "{unchanged:?}");
        }
        assert_eq!(convert("12345678901234567890"), int("12345678901234567890"));
        // Godwit fix (12.2 #4): overflow stays a string instead of `Infinity`.
        assert_eq!(convert("1.5e400"), s("1.5e400"));
        assert_eq!(convert("-1.5e400"), s("-1.5e400"));
        assert_eq!(dumps(&convert("1.5e400")), r#""1.5e400""#);
    }

    #[test]
    fn conversion_follows_python_grammars() {
        // Trailing whitespace is accepted by int() and float().
        assert_eq!(convert("5 "), int("5"));
        assert_eq!(convert("5\t\n"), int("5"));
        assert_eq!(convert("1.5 \r"), PyValue::Float(1.5));
        // Signs, zeros, sizes.
        assert_eq!(convert("-007"), int("-7"));
        assert_eq!(convert("-00"), int("0"));
        assert_eq!(convert("- 5"), int("-5"));
        assert_eq!(convert("+\t5"), int("5"));
        assert_eq!(convert("- 0"), int("0"));
        assert_eq!(convert("5\u{b}\u{c}"), int("5"));
        assert_eq!(convert("+0"), int("0"));
        assert_eq!(
            convert("-123456789012345678901234567890"),
            int("-123456789012345678901234567890")
        );
        assert_eq!(convert("1.5E3"), PyValue::Float(1500.0));
        assert_eq!(convert("-.5"), PyValue::Float(-0.5));
        assert_eq!(convert("+.5e-3"), PyValue::Float(0.0005));
        assert_eq!(convert("1.e2"), PyValue::Float(100.0));
        assert_eq!(convert("1.5e-400"), PyValue::Float(0.0));
        assert_eq!(convert("-0.0"), PyValue::Float(-0.0));
        // Not numbers.
        for unchanged in [
            "", ".", "+", "+-5", "--5", "1_000", "1_0.0", "5a", "1.5x", ".e5", "1.5e", "1.5e+",
            "0x1.0", "1,5", "1.5 5", "abc", "inf", "-inf", "-inf.", "nan", "-nan.0", "+.",
            "test:1", "٣", "1٣", "5\u{a0}", "5\u{1c}", "5\u{0}", "- 5.0", "- .5", "- -5", "+-5",
        ] {
            assert_eq!(convert(unchanged), s(unchanged), "{unchanged:?}");
        }
    }

    #[test]
    fn converted_numbers_are_written_as_python_would() {
        assert_eq!(dumps(&convert("007")), "7");
        assert_eq!(dumps(&convert("5.")), "5.0");
        assert_eq!(dumps(&convert("1e5")), r#""1e5""#);
        assert_eq!(dumps(&convert("0.00001")), "1e-05");
        assert_eq!(dumps(&convert("10000000000000000.0")), "1e+16");
        assert_eq!(dumps(&convert("0.1")), "0.1");
    }

    proptest! {
        #[test]
        fn convert_and_dumps_never_panic(text in any::<String>()) {
            let v = convert(&text);
            let out = dumps(&v);
            prop_assert!(out.is_ascii());
            let dict = dumps(&PyValue::dict([(text.clone(), PyValue::str(text.clone()))]));
            prop_assert!(dict.is_ascii());
        }

        #[test]
        fn numeric_looking_text_never_panics(text in "[-+.0-9eE \t]{0,24}") {
            let out = dumps(&convert(&text));
            prop_assert!(!out.contains("inf") && !out.contains("NaN"));
        }

        #[test]
        fn float_repr_round_trips(bits in any::<u64>()) {
            let f = f64::from_bits(bits);
            prop_assume!(f.is_finite());
            let text = float_repr(f);
            let back: f64 = text.parse().map_err(|e| TestCaseError::fail(format!("{text}: {e}")))?;
            prop_assert_eq!(back.to_bits(), f.to_bits(), "{}", text);
        }
    }
}
