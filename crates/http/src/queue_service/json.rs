//! queue_service's JSON, as Flask 1.0.2 reads and writes it: the body's encoding
//! detected as `flask.json.detect_encoding` does (UTF-8 with or without a BOM, UTF-16,
//! UTF-32), parsed as Python's strict `json.loads` (integers of any size, duplicate keys
//! keep their last value), and written as `jsonify` writes it (keys sorted, compact
//! separators, `ensure_ascii`, Python's float `repr`). Spec sections 2.1, 2.4, 6.2 #7
//! and 6.3 #2.
//!
//! Hand-written on purpose: serde_json neither keeps integers of any size nor writes
//! Python's escapes and float digits. Nothing here knows about HTTP.

use std::collections::BTreeMap;

use crate::restmq::pyjson::{float_repr, write_str};

/// Deepest nesting a body may have (Python's recursion limit refused deeper ones too,
/// with a 500; here it is a 400, and the parser's stack stays small).
pub const MAX_DEPTH: usize = 512;

/// A JSON value as Python's `json.loads` gives it.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    /// `null` (`None`).
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer of any size: canonical decimal digits with an optional `-`.
    Int(String),
    /// A finite float (`1.5`, `1e5`).
    Float(f64),
    /// A string.
    Str(String),
    /// An array.
    List(Vec<Json>),
    /// An object; keys in code-point order, a repeated key keeps its last value.
    Object(BTreeMap<String, Json>),
}

/// Why a body is not JSON queue_service takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The bytes do not decode in the detected encoding.
    #[error("the body is not valid {0}")]
    Encoding(&'static str),
    /// The text is not JSON (or uses `NaN`, `Infinity`, or a float out of range).
    #[error("malformed JSON at character {0}")]
    Syntax(usize),
    /// The value nests deeper than [`MAX_DEPTH`].
    #[error("JSON nested deeper than {MAX_DEPTH}")]
    TooDeep,
}

/// Decodes a body as Flask 1.0.2 does before `json.loads`, then parses it.
pub fn loads(body: &[u8]) -> Result<Json, JsonError> {
    let text = decode(body)?;
    parse(&text)
}

/// The body as text, in the encoding `flask.json.detect_encoding` picks.
pub fn decode(body: &[u8]) -> Result<String, JsonError> {
    let head = &body[..body.len().min(4)];
    let utf8 = |b: &[u8]| {
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| JsonError::Encoding("UTF-8"))
    };
    if head.starts_with(b"\xef\xbb\xbf") {
        return utf8(&body[3..]);
    }
    if !head.contains(&0) {
        return utf8(body);
    }
    match head {
        [0, 0, 0xfe, 0xff] => return utf32(&body[4..], true),
        [0xff, 0xfe, 0, 0] => return utf32(&body[4..], false),
        _ => {}
    }
    match &head[..head.len().min(2)] {
        [0xfe, 0xff] => return utf16(&body[2..], true),
        [0xff, 0xfe] => return utf16(&body[2..], false),
        _ => {}
    }
    if let [a, b, c, d] = *head {
        if a == 0 && b == 0 && c == 0 {
            return utf32(body, true);
        }
        if a == 0 && c == 0 {
            return utf16(body, true);
        }
        if b == 0 && c == 0 && d == 0 {
            return utf32(body, false);
        }
        if b == 0 && d == 0 {
            return utf16(body, false);
        }
    }
    if head.len() == 2 {
        return utf16(body, head[0] == 0);
    }
    utf8(body)
}

fn utf16(bytes: &[u8], big_endian: bool) -> Result<String, JsonError> {
    if !bytes.len().is_multiple_of(2) {
        return Err(JsonError::Encoding("UTF-16"));
    }
    let units = bytes.chunks_exact(2).map(|p| {
        let pair = [p[0], p[1]];
        if big_endian {
            u16::from_be_bytes(pair)
        } else {
            u16::from_le_bytes(pair)
        }
    });
    char::decode_utf16(units)
        .collect::<Result<String, _>>()
        .map_err(|_| JsonError::Encoding("UTF-16"))
}

fn utf32(bytes: &[u8], big_endian: bool) -> Result<String, JsonError> {
    if !bytes.len().is_multiple_of(4) {
        return Err(JsonError::Encoding("UTF-32"));
    }
    bytes
        .chunks_exact(4)
        .map(|q| {
            let quad = [q[0], q[1], q[2], q[3]];
            let n = if big_endian {
                u32::from_be_bytes(quad)
            } else {
                u32::from_le_bytes(quad)
            };
            char::from_u32(n).ok_or(JsonError::Encoding("UTF-32"))
        })
        .collect()
}

/// Parses `text` as Python's strict `json.loads`, refusing `NaN`, `Infinity` and
/// floats out of a double's range (spec 6.2 #7), and lone surrogate escapes (which
/// have no UTF-8 form to store).
pub fn parse(text: &str) -> Result<Json, JsonError> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.at != p.s.len() {
        return Err(p.err());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn err(&self) -> JsonError {
        JsonError::Syntax(self.at)
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Result<(), JsonError> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(self.err())
        }
    }

    fn literal(&mut self, word: &str, v: Json) -> Result<Json, JsonError> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(v)
        } else {
            Err(self.err())
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.list(depth + 1),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err()),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.eat(b'{')?;
        let mut map = BTreeMap::new();
        self.ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Json::Object(map));
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err());
            }
            let key = self.string()?;
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v = self.value(depth)?;
            map.insert(key, v);
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Json::Object(map));
                }
                _ => return Err(self.err()),
            }
        }
    }

    fn list(&mut self, depth: usize) -> Result<Json, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.eat(b'[')?;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Json::List(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth)?);
            self.ws();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Json::List(items));
                }
                _ => return Err(self.err()),
            }
        }
    }

    fn digits(&mut self) -> usize {
        let start = self.at;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
        self.at - start
    }

    fn number(&mut self) -> Result<Json, JsonError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(self.err()),
        }
        let mut float = false;
        if self.peek() == Some(b'.') && matches!(self.s.get(self.at + 1), Some(b'0'..=b'9')) {
            self.at += 1;
            self.digits();
            float = true;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            let mark = self.at;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if self.digits() == 0 {
                // Python's number pattern stops before an incomplete exponent, which
                // then is extra data.
                self.at = mark;
            } else {
                float = true;
            }
        }
        // The slice holds only ASCII digits, signs, `.` and `e`.
        let text = std::str::from_utf8(&self.s[start..self.at]).map_err(|_| self.err())?;
        if float {
            match text.parse::<f64>() {
                Ok(f) if f.is_finite() => Ok(Json::Float(f)),
                _ => Err(JsonError::Syntax(start)),
            }
        } else if text == "-0" {
            Ok(Json::Int("0".into()))
        } else {
            Ok(Json::Int(text.to_owned()))
        }
    }

    fn hex4(&mut self) -> Result<u32, JsonError> {
        let quad = self.s.get(self.at..self.at + 4).ok_or_else(|| self.err())?;
        let mut n = 0u32;
        for &b in quad {
            let d = (b as char).to_digit(16).ok_or_else(|| self.err())?;
            n = n * 16 + d;
        }
        self.at += 4;
        Ok(n)
    }

    fn string(&mut self) -> Result<String, JsonError> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The input is a &str and the run stops only at ASCII bytes.
            out.push_str(std::str::from_utf8(&self.s[start..self.at]).map_err(|_| self.err())?);
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let c = self.peek().ok_or_else(|| self.err())?;
                    self.at += 1;
                    match c {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.escaped_char()?),
                        _ => return Err(JsonError::Syntax(self.at - 1)),
                    }
                }
                _ => return Err(self.err()),
            }
        }
    }

    /// The character of a `\uXXXX` escape (the `\u` already read), joining a
    /// surrogate pair written as two escapes.
    fn escaped_char(&mut self) -> Result<char, JsonError> {
        let at = self.at;
        let first = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&first) && self.s[self.at..].starts_with(b"\\u") {
            self.at += 2;
            let second = self.hex4()?;
            if !(0xdc00..0xe000).contains(&second) {
                return Err(JsonError::Syntax(at));
            }
            0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
        } else {
            first
        };
        char::from_u32(code).ok_or(JsonError::Syntax(at))
    }
}

/// Flask 1.0's `jsonify` text of `v` (keys sorted, `,` and `:`, `ensure_ascii`),
/// without the trailing newline.
pub fn dumps(v: &Json) -> String {
    let mut out = String::new();
    write(&mut out, v, true);
    out
}

/// The compact JSON text of `v` with non-ASCII characters kept as UTF-8: how a queued
/// value is stored (a third the size of its escaped form for non-Latin text).
pub fn dumps_utf8(v: &Json) -> String {
    let mut out = String::new();
    write(&mut out, v, false);
    out
}

fn write(out: &mut String, v: &Json, ascii: bool) {
    match v {
        Json::Null => out.push_str("null"),
        Json::Bool(true) => out.push_str("true"),
        Json::Bool(false) => out.push_str("false"),
        Json::Int(digits) => out.push_str(digits),
        Json::Float(f) => out.push_str(&float_repr(*f)),
        Json::Str(s) => write_str(out, s, ascii),
        Json::List(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write(out, item, ascii);
            }
            out.push(']');
        }
        Json::Object(map) => {
            out.push('{');
            for (i, (key, value)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_str(out, key, ascii);
                out.push(':');
                write(out, value, ascii);
            }
            out.push('}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn echo(body: &str) -> String {
        dumps(&loads(body.as_bytes()).unwrap())
    }

    #[test]
    fn replies_sort_keys_at_every_level_with_compact_separators() {
        assert_eq!(
            echo(r#"{"text":"hello","zeta":1,"alpha":[1,2]}"#),
            r#"{"alpha":[1,2],"text":"hello","zeta":1}"#
        );
        assert_eq!(
            echo(r#" { "b" : { "y" : 1 , "x" : [ ] } , "a" : { } } "#),
            r#"{"a":{},"b":{"x":[],"y":1}}"#
        );
        assert_eq!(echo(r#"{"a":1,"a":2}"#), r#"{"a":2}"#);
    }

    #[test]
    fn strings_are_escaped_as_ensure_ascii() {
        assert_eq!(
            echo(r#""a\"b\\c/d\u00e9\u007f\u0001\n\r\t\b\f""#),
            r#""a\"b\\c/d\u00e9\u007f\u0001\n\r\t\b\f""#
        );
        assert_eq!(echo("\"é😀\""), r#""\u00e9\ud83d\ude00""#);
        assert_eq!(echo(r#""\ud83d\ude00""#), r#""\ud83d\ude00""#);
        assert_eq!(
            dumps_utf8(&loads("\"é\\n\"".as_bytes()).unwrap()),
            "\"é\\n\""
        );
    }

    #[test]
    fn numbers_are_python_ints_and_float_reprs() {
        assert_eq!(
            echo("123456789012345678901234567890"),
            "123456789012345678901234567890"
        );
        assert_eq!(echo("-0"), "0");
        assert_eq!(echo("-0.0"), "-0.0");
        assert_eq!(echo("1.50"), "1.5");
        assert_eq!(echo("1e5"), "100000.0");
        assert_eq!(echo("1e16"), "1e+16");
        assert_eq!(echo("0.00001"), "1e-05");
        assert_eq!(echo("[true,false,null]"), "[true,false,null]");
    }

    #[test]
    fn non_json_and_out_of_range_numbers_are_refused() {
        for bad in [
            "",
            " ",
            "NaN",
            "Infinity",
            "-Infinity",
            "1e400",
            "-1e400",
            "01",
            "1.",
            ".5",
            "1e",
            "{\"a\":1,}",
            "[1,]",
            "{'a':1}",
            "\"\u{1}\"",
            "\"\\x\"",
            "\"\\ud800\"",
            "\"\\u12\"",
            "{\"a\" 1}",
            "[1 2]",
            "tru",
            "nul",
            "{} {}",
            "-",
            "\"abc",
        ] {
            assert!(loads(bad.as_bytes()).is_err(), "{bad:?} was accepted");
        }
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(loads(deep.as_bytes()), Err(JsonError::TooDeep));
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(loads(ok.as_bytes()).is_ok());
    }

    #[test]
    fn encodings_are_detected_as_flask_does() {
        let text = "{\"text\":\"é\"}";
        let want = loads(text.as_bytes()).unwrap();
        let mut bom8 = b"\xef\xbb\xbf".to_vec();
        bom8.extend_from_slice(text.as_bytes());
        let be16: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        let le16: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_be_bytes())
            .collect();
        let le32: Vec<u8> = text
            .chars()
            .flat_map(|c| (c as u32).to_le_bytes())
            .collect();
        let with = |bom: &[u8], rest: &[u8]| [bom, rest].concat();
        for body in [
            bom8,
            be16.clone(),
            le16.clone(),
            be32.clone(),
            le32.clone(),
            with(b"\xfe\xff", &be16),
            with(b"\xff\xfe", &le16),
            with(b"\x00\x00\xfe\xff", &be32),
            with(b"\xff\xfe\x00\x00", &le32),
        ] {
            assert_eq!(loads(&body), Ok(want.clone()), "{body:?}");
        }
        assert_eq!(loads(b"1\x00"), Ok(Json::Int("1".into())));
        assert!(matches!(loads(b"\xff\xff"), Err(JsonError::Encoding(_))));
        assert!(loads(b"\x00{\x00").is_err());
    }
}
