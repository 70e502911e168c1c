//! RestMQ's request arguments and path names, decoded as cyclone 1.0 did (spec 2.5,
//! 2.6 and 12.3 items 1, 2, 5, 6), with Godwit's UTF-8 fixes (12.2 #19, 12.3 #32).
//!
//! The query-string splitter is hand-written because it follows Python 2's
//! `parse_qs` (both `&` and `;` separate, pieces without `=` and blank values are
//! dropped), which no form crate does; percent-decoding and multipart parsing come from
//! `percent-encoding` and `multer`. Whitespace stripping follows Python 2's
//! `unicode.strip()`, whose whitespace set differs from Rust's.

use std::collections::HashMap;

use axum::http::Method;
use bytes::Bytes;
use percent_encoding::percent_decode;

/// Why a request's arguments could not be read; either becomes the 400 page.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    /// A value (or a path name) is not valid UTF-8 after percent-decoding.
    #[error("an argument is not valid UTF-8")]
    InvalidUtf8,
    /// A multipart/form-data body could not be parsed.
    #[error("malformed form body: {0}")]
    BadForm(String),
}

/// The arguments of one request: the last value of each name, cleaned as RestMQ
/// handlers saw them (control characters turned into spaces, then stripped).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Args {
    values: HashMap<String, String>,
}

impl Args {
    /// Query string (any method) and, for POST only, the form body
    /// (`application/x-www-form-urlencoded` or `multipart/form-data`; other content
    /// types contribute nothing). Body arguments win over query ones of the same name;
    /// within one source the last occurrence wins. A blank raw value is absent in the
    /// query and urlencoded bodies but kept in multipart bodies. Every value must be
    /// UTF-8; a name that is not UTF-8 can never be asked for and is dropped.
    pub async fn parse(
        method: &Method,
        query: Option<&str>,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Args, ArgsError> {
        let mut args = Args::default();
        if let Some(query) = query {
            args.add_urlencoded(query.as_bytes())?;
        }
        if method == Method::POST {
            match content_type.map(form_kind) {
                Some(FormKind::UrlEncoded) => args.add_urlencoded(&body)?,
                Some(FormKind::Multipart(boundary)) => args.add_multipart(boundary, body).await?,
                Some(FormKind::Other) | None => {}
            }
        }
        Ok(args)
    }

    /// The value of argument `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.values.get(name).map(String::as_str)
    }

    /// Python 2 `parse_qs(text)` with `keep_blank_values=False`.
    fn add_urlencoded(&mut self, text: &[u8]) -> Result<(), ArgsError> {
        for piece in text.split(|b| *b == b'&' || *b == b';') {
            let Some(eq) = piece.iter().position(|b| *b == b'=') else {
                continue;
            };
            let (raw_name, raw_value) = (&piece[..eq], &piece[eq + 1..]);
            if raw_value.is_empty() {
                continue;
            }
            // A name that is not UTF-8 can never be asked for, so its value is never
            // decoded (cyclone failed only on the arguments a handler read).
            let Ok(name) = decode_plus(raw_name) else {
                continue;
            };
            let value = decode_plus(raw_value)?;
            self.insert(name, &value);
        }
        Ok(())
    }

    /// The non-file fields of a multipart body, blanks included.
    async fn add_multipart(&mut self, boundary: String, body: Bytes) -> Result<(), ArgsError> {
        let stream = futures_util::stream::once(async { Ok::<_, std::io::Error>(body) });
        let mut form = multer::Multipart::new(stream, boundary);
        loop {
            let field = match form.next_field().await {
                Ok(Some(field)) => field,
                Ok(None) => return Ok(()),
                Err(e) => return Err(ArgsError::BadForm(e.to_string())),
            };
            // File parts are files, not arguments, and nameless parts are ignored.
            let name = match (field.name(), field.file_name()) {
                (Some(name), None) => name.to_owned(),
                _ => continue,
            };
            let bytes = field
                .bytes()
                .await
                .map_err(|e| ArgsError::BadForm(e.to_string()))?;
            let value = String::from_utf8(bytes.to_vec()).map_err(|_| ArgsError::InvalidUtf8)?;
            self.insert(name, &value);
        }
    }

    fn insert(&mut self, name: String, raw: &str) {
        self.values.insert(name, clean_value(raw));
    }
}

/// Which body parser a content type selects (cyclone matched on the prefix).
enum FormKind {
    UrlEncoded,
    Multipart(String),
    Other,
}

fn form_kind(content_type: &str) -> FormKind {
    let lower = content_type.trim_start().to_ascii_lowercase();
    if lower.starts_with("application/x-www-form-urlencoded") {
        FormKind::UrlEncoded
    } else if lower.starts_with("multipart/form-data") {
        match multer::parse_boundary(content_type) {
            Ok(boundary) => FormKind::Multipart(boundary),
            // cyclone logged "Invalid multipart/form-data" and read no arguments.
            Err(_) => FormKind::Other,
        }
    } else {
        FormKind::Other
    }
}

/// `+` as space, then percent-decoding, then UTF-8.
fn decode_plus(raw: &[u8]) -> Result<String, ArgsError> {
    let spaced: Vec<u8> = raw
        .iter()
        .map(|b| if *b == b'+' { b' ' } else { *b })
        .collect();
    let bytes: Vec<u8> = percent_decode(&spaced).collect();
    String::from_utf8(bytes).map_err(|_| ArgsError::InvalidUtf8)
}

/// cyclone's `get_argument`: control characters `\x00`–`\x08` and `\x0e`–`\x1f` become
/// spaces, then Python's `unicode.strip()`.
fn clean_value(raw: &str) -> String {
    let replaced: String = raw
        .chars()
        .map(|c| match c {
            '\u{0}'..='\u{8}' | '\u{e}'..='\u{1f}' => ' ',
            _ => c,
        })
        .collect();
    replaced.trim_matches(is_python_space).to_owned()
}

/// Python 2.7's `unicode.isspace()` (Unicode 5.2): Rust's `White_Space` plus the
/// separators `\x1c`–`\x1f` and U+180E.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || matches!(c, '\u{1c}'..='\u{1f}' | '\u{180e}')
}

/// The queue name in a path tail (spec 2.6): `+` as space, percent-decoded, then UTF-8
/// (`a%2Bb+c` is `a+b c`).
pub fn decode_path_name(raw: &str) -> Result<String, ArgsError> {
    decode_plus(raw.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    async fn query(q: &str) -> Args {
        Args::parse(&Method::GET, Some(q), None, Bytes::new())
            .await
            .expect("valid query")
    }

    async fn post(q: Option<&str>, content_type: &str, body: &str) -> Result<Args, ArgsError> {
        Args::parse(
            &Method::POST,
            q,
            Some(content_type),
            Bytes::copy_from_slice(body.as_bytes()),
        )
        .await
    }

    fn multipart(fields: &[(&str, &str)]) -> String {
        let mut body = String::new();
        for (name, value) in fields {
            body.push_str(&format!(
                "--XyZ\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            ));
        }
        body.push_str("--XyZ--\r\n");
        body
    }

    const MULTIPART: &str = "multipart/form-data; boundary=XyZ";

    #[tokio::test]
    async fn values_are_cleaned_as_cyclone_did() {
        assert_eq!(query("value=a%01b").await.get("value"), Some("a b"));
        assert_eq!(
            query("value=%20%20spaced%20%20").await.get("value"),
            Some("spaced")
        );
        // Control characters become spaces first, then the ends are stripped.
        assert_eq!(query("value=%01a%1f").await.get("value"), Some("a"));
        // Tab, LF, VT, FF and CR inside a value are kept.
        assert_eq!(
            query("value=a%09b%0Ac%0Bd%0Ce%0Df").await.get("value"),
            Some("a\tb\nc\u{b}d\u{c}e\rf")
        );
        assert_eq!(query("value=a+b").await.get("value"), Some("a b"));
        assert_eq!(query("value=caf%C3%A9").await.get("value"), Some("café"));
        assert_eq!(query("value=%zz%4").await.get("value"), Some("%zz%4"));
        assert_eq!(query("value=a%2Bb").await.get("value"), Some("a+b"));
    }

    #[tokio::test]
    async fn stripping_is_unicode_aware() {
        assert_eq!(query("value=%C2%A0x%C2%A0").await.get("value"), Some("x"));
        assert_eq!(
            query("value=%E3%80%80x%E3%80%80").await.get("value"),
            Some("x")
        );
        assert_eq!(
            query("value=%E2%80%A8x%E2%80%A9").await.get("value"),
            Some("x")
        );
        assert_eq!(
            query("value=%C2%85x%E1%A0%8E").await.get("value"),
            Some("x")
        );
        // Inside a value, such spaces stay.
        assert_eq!(query("value=a%C2%A0b").await.get("value"), Some("a\u{a0}b"));
        // Zero-width space is not whitespace for Python 2.7.
        assert_eq!(
            query("value=%E2%80%8Bx").await.get("value"),
            Some("\u{200b}x")
        );
    }

    #[tokio::test]
    async fn blank_values_are_absent_but_whitespace_is_present() {
        let args = query("value=&msg=%20&callback=&ttl=+").await;
        assert_eq!(args.get("value"), None);
        assert_eq!(args.get("msg"), Some(""));
        assert_eq!(args.get("callback"), None);
        assert_eq!(args.get("ttl"), Some(""));
        // A blank does not erase an earlier value of the same name.
        assert_eq!(query("value=a&value=").await.get("value"), Some("a"));
    }

    #[tokio::test]
    async fn semicolons_separate_and_pieces_without_equals_are_dropped() {
        let args = query("value=a;b&queue=q;;flag&=anon&x=1=2").await;
        assert_eq!(args.get("value"), Some("a"));
        assert_eq!(args.get("b"), None);
        assert_eq!(args.get("queue"), Some("q"));
        assert_eq!(args.get("flag"), None);
        assert_eq!(args.get(""), Some("anon"));
        assert_eq!(args.get("x"), Some("1=2"));
        let body = post(None, FORM, "value=a;b").await.expect("form");
        assert_eq!(body.get("value"), Some("a"));
    }

    #[tokio::test]
    async fn last_occurrence_wins() {
        assert_eq!(
            query("value=1&value=2&value=3").await.get("value"),
            Some("3")
        );
        let body = post(None, FORM, "value=1&value=2").await.expect("form");
        assert_eq!(body.get("value"), Some("2"));
    }

    #[tokio::test]
    async fn post_body_wins_over_query() {
        let args = post(Some("value=q&queue=fromquery"), FORM, "value=b")
            .await
            .expect("form");
        assert_eq!(args.get("value"), Some("b"));
        assert_eq!(args.get("queue"), Some("fromquery"));
        // A blank body value is absent, so the query one stays.
        let args = post(Some("value=q"), FORM, "value=").await.expect("form");
        assert_eq!(args.get("value"), Some("q"));
    }

    #[tokio::test]
    async fn body_is_read_for_post_only() {
        for method in [Method::GET, Method::DELETE, Method::PUT] {
            let args = Args::parse(
                &method,
                Some("queue=q"),
                Some(FORM),
                Bytes::from_static(b"value=b"),
            )
            .await
            .expect("parse");
            assert_eq!(args.get("queue"), Some("q"), "{method}");
            assert_eq!(args.get("value"), None, "{method}");
        }
    }

    #[tokio::test]
    async fn other_content_types_contribute_nothing() {
        for ct in ["text/plain", "application/json", "multipart/form-data"] {
            let args = post(Some("a=1"), ct, "value=b").await.expect("parse");
            assert_eq!(args.get("value"), None, "{ct}");
            assert_eq!(args.get("a"), Some("1"), "{ct}");
        }
        let args = Args::parse(&Method::POST, None, None, Bytes::from_static(b"value=b"))
            .await
            .expect("parse");
        assert_eq!(args.get("value"), None);
        let args = post(
            None,
            "application/x-www-form-urlencoded; charset=UTF-8",
            "value=b",
        )
        .await
        .expect("parse");
        assert_eq!(args.get("value"), Some("b"));
    }

    #[tokio::test]
    async fn multipart_fields_are_arguments_and_keep_blanks() {
        let body = multipart(&[("queue", " q "), ("value", ""), ("msg", "a\u{1}b")]);
        let args = post(Some("value=fromquery"), MULTIPART, &body)
            .await
            .expect("multipart");
        assert_eq!(args.get("queue"), Some("q"));
        assert_eq!(args.get("value"), Some(""));
        assert_eq!(args.get("msg"), Some("a b"));
        let body = multipart(&[("value", "1"), ("value", "2")]);
        let args = post(None, MULTIPART, &body).await.expect("multipart");
        assert_eq!(args.get("value"), Some("2"));
    }

    #[tokio::test]
    async fn multipart_file_parts_are_not_arguments() {
        let body =
            "--XyZ\r\nContent-Disposition: form-data; name=\"value\"; filename=\"f.txt\"\r\n\
                    Content-Type: text/plain\r\n\r\nfile\r\n--XyZ--\r\n";
        let args = post(None, MULTIPART, body).await.expect("multipart");
        assert_eq!(args.get("value"), None);
    }

    #[tokio::test]
    async fn malformed_multipart_is_a_bad_form() {
        let err = post(None, MULTIPART, "--XyZ\r\nno end").await;
        assert!(matches!(err, Err(ArgsError::BadForm(_))), "{err:?}");
    }

    #[tokio::test]
    async fn invalid_utf8_values_are_errors() {
        let err = Args::parse(&Method::GET, Some("value=%FF"), None, Bytes::new()).await;
        assert_eq!(err, Err(ArgsError::InvalidUtf8));
        assert_eq!(
            post(None, FORM, "value=%C3").await,
            Err(ArgsError::InvalidUtf8)
        );
        let raw = Bytes::from_static(
            b"--XyZ\r\nContent-Disposition: form-data; name=\"value\"\r\n\r\n\xff\r\n--XyZ--\r\n",
        );
        let err = Args::parse(&Method::POST, None, Some(MULTIPART), raw).await;
        assert_eq!(err, Err(ArgsError::InvalidUtf8));
        // A name that is not UTF-8 is dropped, not an error.
        let args = query("%FF=%FF&value=v").await;
        assert_eq!(args.get("value"), Some("v"));
        assert_eq!(args.get("\u{fffd}"), None);
    }

    #[test]
    fn path_names_decode_plus_as_space() {
        assert_eq!(decode_path_name("a%2Bb+c"), Ok("a+b c".to_owned()));
        assert_eq!(decode_path_name(""), Ok(String::new()));
        assert_eq!(decode_path_name("a/b:c"), Ok("a/b:c".to_owned()));
        assert_eq!(decode_path_name("caf%C3%A9"), Ok("café".to_owned()));
        assert_eq!(decode_path_name("%20x%20"), Ok(" x ".to_owned()));
        assert_eq!(decode_path_name("100%"), Ok("100%".to_owned()));
        assert_eq!(decode_path_name("%FF"), Err(ArgsError::InvalidUtf8));
    }

    proptest! {
        #[test]
        fn parse_never_panics(
            q in proptest::option::of(any::<String>()),
            ct in proptest::option::of(prop_oneof![
                Just(FORM.to_owned()),
                Just(MULTIPART.to_owned()),
                any::<String>(),
            ]),
            body in proptest::collection::vec(any::<u8>(), 0..256),
            post in any::<bool>(),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().build().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let method = if post { Method::POST } else { Method::GET };
            let result = rt.block_on(Args::parse(&method, q.as_deref(), ct.as_deref(), Bytes::from(body)));
            if let Ok(args) = result {
                for value in args.values.values() {
                    prop_assert_eq!(value.trim_matches(is_python_space), value.as_str());
                }
            }
        }

        #[test]
        fn path_names_never_panic(raw in any::<String>()) {
            if let Ok(name) = decode_path_name(&raw) {
                prop_assert!(!raw.contains('%') || name.len() <= raw.len());
            }
        }
    }
}
