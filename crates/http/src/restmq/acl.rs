//! RestMQ's ACL file (spec 7): an INI file with one section per client category,
//! each with optional `hosts_allow`, `hosts_deny` (space-separated IP prefixes; `all`
//! or empty = no list), `username` and `password` (both set = authentication needed).
//!
//! Godwit keeps the format and the evaluation order (12.1), answers the challenge the
//! original meant to send (12.2 #7), enforces the WebSocket category (12.2 #8, cookie
//! `auth=user:password`), and keeps re-checking the file while the server runs (12.3
//! #29). SSE consumers use the `[comet:consumer]` rules; a `[sse:consumer]` section (from
//! the `v1.2` branch's file) is accepted and ignored.
//!
//! The INI reader is hand-written to follow Python 2's `ConfigParser` (comments with `#`
//! or `;` at line start, inline ` ;` comments, continuation lines, `[DEFAULT]`, keys
//! case-insensitive), which the INI crates do not match line for line. Values are
//! taken literally: the original's `%` interpolation, which silently dropped a password
//! containing `%`, is not reproduced.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use base64::Engine as _;
use parking_lot::RwLock;

use super::reply;

/// The client categories of the ACL file, one INI section each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    /// `[rest:producer]`: adds, purges, policy and status changes.
    RestProducer,
    /// `[rest:consumer]`: pops, stats, policy and status reads.
    RestConsumer,
    /// `[comet:consumer]`: Comet (and Godwit's SSE) live consumers.
    CometConsumer,
    /// `[websocket:consumer]`: WebSocket live consumers (credentials in a cookie).
    WebsocketConsumer,
}

impl Category {
    const ALL: [Category; 4] = [
        Category::RestProducer,
        Category::RestConsumer,
        Category::CometConsumer,
        Category::WebsocketConsumer,
    ];

    /// The INI section that holds this category's rules.
    pub fn section(self) -> &'static str {
        match self {
            Category::RestProducer => "rest:producer",
            Category::RestConsumer => "rest:consumer",
            Category::CometConsumer => "comet:consumer",
            Category::WebsocketConsumer => "websocket:consumer",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The outcome of an ACL check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The request may go on.
    Allow,
    /// The client address is refused: plain 401 page.
    DenyAddress,
    /// Credentials are missing or wrong: 401 page with a Basic challenge.
    NeedAuth,
}

/// Why an ACL file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum AclError {
    /// The file does not parse as the INI the original read.
    #[error("ACL file line {line}: {message}")]
    Parse {
        /// 1-based line number.
        line: usize,
        /// What is wrong with that line.
        message: String,
    },
    /// The file exists but could not be read.
    #[error("reading ACL file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// [`AclWatch::open`] was called outside a tokio runtime.
    #[error("watching the ACL file needs a tokio runtime")]
    NoRuntime,
}

/// One category's rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rules {
    hosts_allow: Option<Vec<String>>,
    hosts_deny: Option<Vec<String>>,
    /// Username and password, both non-empty.
    credentials: Option<(String, String)>,
}

/// Parsed ACL rules; `Acl::default()` allows everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Acl {
    rules: [Rules; 4],
}

impl Acl {
    /// Parses the text of an ACL file.
    pub fn parse(text: &str) -> Result<Acl, AclError> {
        let ini = Ini::parse(text)?;
        let mut acl = Acl::default();
        for category in Category::ALL {
            let section = category.section();
            let rules = &mut acl.rules[category.index()];
            rules.hosts_allow = ini.get(section, "hosts_allow").and_then(host_list);
            rules.hosts_deny = ini.get(section, "hosts_deny").and_then(host_list);
            let username = ini.get(section, "username").unwrap_or("");
            let password = ini.get(section, "password").unwrap_or("");
            if !username.is_empty() && !password.is_empty() {
                rules.credentials = Some((username.to_owned(), password.to_owned()));
            }
        }
        Ok(acl)
    }

    /// Parses the bytes of an ACL file, which must be UTF-8.
    fn parse_bytes(bytes: &[u8]) -> Result<Acl, AclError> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Acl::parse(text),
            Err(e) => Err(AclError::Parse {
                line: 1 + bytes[..e.valid_up_to()]
                    .iter()
                    .filter(|b| **b == b'\n')
                    .count(),
                message: "not valid UTF-8".to_owned(),
            }),
        }
    }

    /// Evaluates `category`'s rules (spec 7). `peer`: the client IP as text; `basic`: the
    /// decoded `user:password` of an `Authorization: Basic` header if any; `cookie_auth`:
    /// the value of an `auth` cookie if any (WebSocket uses the cookie, REST and Comet
    /// use Basic).
    pub fn check(
        &self,
        category: Category,
        peer: &str,
        basic: Option<&str>,
        cookie_auth: Option<&str>,
    ) -> Verdict {
        let rules = &self.rules[category.index()];
        let matches = |list: &[String]| list.iter().any(|prefix| peer.starts_with(prefix.as_str()));
        let allowed_by_list = match (&rules.hosts_allow, &rules.hosts_deny) {
            (Some(allow), _) if matches(allow) => true,
            (Some(_), None) => return Verdict::DenyAddress,
            _ => false,
        };
        if !allowed_by_list {
            if let Some(deny) = &rules.hosts_deny {
                if matches(deny) {
                    return Verdict::DenyAddress;
                }
            }
        }
        let Some((username, password)) = &rules.credentials else {
            return Verdict::Allow;
        };
        let given = match category {
            Category::WebsocketConsumer => cookie_auth,
            _ => basic,
        };
        let authenticated =
            given
                .and_then(|text| text.split_once(':'))
                .is_some_and(|(user, pass)| {
                    // Both compared in full, whatever the first one gives.
                    let user_ok = constant_time_eq(user.as_bytes(), username.as_bytes());
                    let pass_ok = constant_time_eq(pass.as_bytes(), password.as_bytes());
                    user_ok & pass_ok
                });
        if authenticated {
            Verdict::Allow
        } else {
            Verdict::NeedAuth
        }
    }
}

/// A host list value: `None` for `all` or an empty list.
fn host_list(value: &str) -> Option<Vec<String>> {
    if value == "all" {
        return None;
    }
    let list: Vec<String> = value
        .split(is_ascii_space)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!list.is_empty()).then_some(list)
}

/// Python 2's `str.isspace()`.
fn is_ascii_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The sections and options of an INI file, read as Python 2's `ConfigParser` does.
#[derive(Debug, Default)]
struct Ini {
    defaults: HashMap<String, String>,
    sections: HashMap<String, HashMap<String, String>>,
}

impl Ini {
    fn parse(text: &str) -> Result<Ini, AclError> {
        let mut ini = Ini::default();
        // `None` before the first header; `Some(None)` in `[DEFAULT]`.
        let mut section: Option<Option<String>> = None;
        let mut option: Option<String> = None;
        for (index, line) in text.split('\n').enumerate() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            let lineno = index + 1;
            if line.trim_matches(is_ascii_space).is_empty() || line.starts_with(['#', ';']) {
                continue;
            }
            let first_word = line.split(is_ascii_space).next().unwrap_or("");
            if first_word.eq_ignore_ascii_case("rem") {
                continue;
            }
            let starts_with_space = line.starts_with(is_ascii_space);
            if let (true, Some(sect), Some(opt)) = (starts_with_space, &section, &option) {
                let more = line.trim_matches(is_ascii_space);
                if !more.is_empty() {
                    if let Some(value) = ini.table(sect).get_mut(opt) {
                        value.push('\n');
                        value.push_str(more);
                    }
                }
                continue;
            }
            if let Some(name) = section_header(line) {
                section = Some((name != "DEFAULT").then(|| name.to_owned()));
                if let Some(Some(name)) = &section {
                    ini.sections.entry(name.clone()).or_default();
                }
                option = None;
                continue;
            }
            let Some(sect) = &section else {
                return Err(AclError::Parse {
                    line: lineno,
                    message: "an option before any [section] header".to_owned(),
                });
            };
            let Some((name, value)) = option_line(line) else {
                return Err(AclError::Parse {
                    line: lineno,
                    message: format!("not a section header nor a `name = value` line: {line:?}"),
                });
            };
            ini.table(sect).insert(name.clone(), value);
            option = Some(name);
        }
        Ok(ini)
    }

    fn table(&mut self, section: &Option<String>) -> &mut HashMap<String, String> {
        match section {
            None => &mut self.defaults,
            Some(name) => self.sections.entry(name.clone()).or_default(),
        }
    }

    /// An option of a section, or of `[DEFAULT]`; `None` if the section is absent.
    fn get(&self, section: &str, option: &str) -> Option<&str> {
        let table = self.sections.get(section)?;
        table
            .get(option)
            .or_else(|| self.defaults.get(option))
            .map(String::as_str)
    }
}

/// `[name]` at the start of a line (anything after the `]` is ignored).
fn section_header(line: &str) -> Option<&str> {
    let rest = line.strip_prefix('[')?;
    let end = rest.find(']')?;
    (end > 0).then(|| &rest[..end])
}

/// `name = value` or `name: value`, with Python's inline `;` comment rule; the name
/// lowercased.
fn option_line(line: &str) -> Option<(String, String)> {
    let sep = line.find([':', '='])?;
    let name = line[..sep].trim_end_matches(is_ascii_space);
    if name.is_empty() || line.starts_with(is_ascii_space) {
        return None;
    }
    let mut value = line[sep + 1..].trim_start_matches(is_ascii_space);
    if let Some(pos) = value.find(';') {
        // ConfigParser looks at the character before the first ';' (at 0, the last one).
        let before = if pos == 0 {
            value.chars().next_back()
        } else {
            value[..pos].chars().next_back()
        };
        if before.is_some_and(is_ascii_space) {
            value = &value[..pos];
        }
    }
    let value = value.trim_matches(is_ascii_space);
    let value = if value == "\"\"" { "" } else { value };
    Some((name.to_ascii_lowercase(), value.to_owned()))
}

/// Aborts the re-check task when the last [`AclWatch`] clone goes away.
#[derive(Debug)]
struct TaskGuard(tokio::task::AbortHandle);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The live rules: a file re-read every `interval` while the server runs and reloaded
/// when its content changes; a failed reload keeps the previous rules. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AclWatch {
    rules: Arc<RwLock<Arc<Acl>>>,
    _task: Option<Arc<TaskGuard>>,
}

/// The shortest re-check interval, so that a zero interval cannot spin.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

impl AclWatch {
    /// No ACL file: everything is allowed.
    pub fn allow_all() -> AclWatch {
        AclWatch::fixed(Acl::default())
    }

    /// Rules that never change (for tests and for configurations without a file).
    pub fn fixed(acl: Acl) -> AclWatch {
        AclWatch {
            rules: Arc::new(RwLock::new(Arc::new(acl))),
            _task: None,
        }
    }

    /// Reads `path` now and re-checks it every `interval` (60 s in production) from a
    /// tokio task that ends with the last clone of the watch. A file that exists but
    /// does not parse or cannot be read is an error; a missing file allows everything
    /// (the original's packaged default) until it appears, with a warning.
    pub fn open(path: PathBuf, interval: Duration) -> Result<AclWatch, AclError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| AclError::NoRuntime)?;
        let (acl, seen) = match std::fs::read(&path) {
            Ok(bytes) => (Acl::parse_bytes(&bytes)?, Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %path.display(), "RestMQ ACL file not found: allowing every client");
                (Acl::default(), None)
            }
            Err(source) => return Err(AclError::Read { path, source }),
        };
        let rules = Arc::new(RwLock::new(Arc::new(acl)));
        let task = runtime.spawn(recheck(
            path,
            interval.max(MIN_INTERVAL),
            Arc::downgrade(&rules),
            seen,
        ));
        Ok(AclWatch {
            rules,
            _task: Some(Arc::new(TaskGuard(task.abort_handle()))),
        })
    }

    /// The rules in force now.
    pub fn current(&self) -> Arc<Acl> {
        Arc::clone(&self.rules.read())
    }

    /// Checks a request: the peer address, its `Authorization: Basic` header and its
    /// `auth` cookie.
    pub fn check_request(&self, category: Category, peer: IpAddr, headers: &HeaderMap) -> Verdict {
        let peer = peer.to_canonical().to_string();
        let basic = basic_credentials(headers);
        let cookie = auth_cookie(headers);
        self.current()
            .check(category, &peer, basic.as_deref(), cookie.as_deref())
    }
}

/// The re-check loop of [`AclWatch::open`]; `seen` is the content last read.
async fn recheck(
    path: PathBuf,
    interval: Duration,
    rules: Weak<RwLock<Arc<Acl>>>,
    mut seen: Option<Vec<u8>>,
) {
    // Set while the file cannot be read, so the error is logged once per outage.
    let mut unreadable = seen.is_none();
    loop {
        tokio::time::sleep(interval).await;
        if rules.strong_count() == 0 {
            return;
        }
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) => {
                if !unreadable {
                    tracing::error!(path = %path.display(), error = %e, "cannot read the RestMQ ACL file; keeping the previous rules");
                }
                unreadable = true;
                continue;
            }
        };
        unreadable = false;
        if seen.as_deref() == Some(bytes.as_slice()) {
            continue;
        }
        let Some(rules) = rules.upgrade() else {
            return;
        };
        match Acl::parse_bytes(&bytes) {
            Ok(acl) => {
                *rules.write() = Arc::new(acl);
                tracing::info!(path = %path.display(), "reloaded the RestMQ ACL file");
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot reload the RestMQ ACL file; keeping the previous rules");
            }
        }
        seen = Some(bytes);
    }
}

/// The decoded `user:password` of an `Authorization: Basic …` header.
fn basic_credentials(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let mut parts = value.split_ascii_whitespace();
    let (scheme, data) = (parts.next()?, parts.next()?);
    if parts.next().is_some() || !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let engine = base64::engine::GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        base64::engine::GeneralPurposeConfig::new()
            .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
    );
    String::from_utf8(engine.decode(data).ok()?).ok()
}

/// The value of the last `auth` cookie, unquoted.
fn auth_cookie(headers: &HeaderMap) -> Option<String> {
    let mut found = None;
    for header in headers.get_all(COOKIE) {
        let Ok(text) = header.to_str() else { continue };
        for pair in text.split(';') {
            if let Some((name, value)) = pair.split_once('=') {
                if name.trim() == "auth" {
                    let value = value.trim();
                    let value = value
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(value);
                    found = Some(value.to_owned());
                }
            }
        }
    }
    found
}

/// The 401 replies for a verdict (`None` for [`Verdict::Allow`]).
pub fn refusal(verdict: Verdict) -> Option<Response> {
    match verdict {
        Verdict::Allow => None,
        Verdict::DenyAddress => Some(reply::error_page(StatusCode::UNAUTHORIZED)),
        Verdict::NeedAuth => {
            let mut response = reply::error_page(StatusCode::UNAUTHORIZED);
            response.headers_mut().insert(
                WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"RestMQ Restricted Access\""),
            );
            Some(response)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRODUCER: Category = Category::RestProducer;

    fn acl(text: &str) -> Acl {
        Acl::parse(text).expect("valid ACL")
    }

    #[test]
    fn an_empty_or_commented_file_allows_everything() {
        let packaged = "# RestMQ ACL\n#\n\n[rest:producer]\n#hosts_allow = 127.0.0.1 192.168.0.7\n\
                        #hosts_deny = all\n#username = lero\n#password = lero\n\n[rest:consumer]\n\
                        ; hosts_deny = 192.168.0.\n[comet:consumer]\n[websocket:consumer]\n";
        let parsed = acl(packaged);
        assert_eq!(parsed, Acl::default());
        for category in Category::ALL {
            assert_eq!(
                parsed.check(category, "10.1.2.3", None, None),
                Verdict::Allow
            );
            assert_eq!(
                Acl::default().check(category, "::1", None, None),
                Verdict::Allow
            );
        }
        assert_eq!(acl(""), Acl::default());
    }

    #[test]
    fn an_allow_match_is_allowed() {
        let a =
            acl("[rest:producer]\nhosts_allow = 127.0.0.1 192.168.0.\nhosts_deny = 192.168.0.7\n");
        assert_eq!(a.check(PRODUCER, "127.0.0.1", None, None), Verdict::Allow);
        // An allow match skips the deny list.
        assert_eq!(a.check(PRODUCER, "192.168.0.7", None, None), Verdict::Allow);
        // Prefixes are plain "starts with".
        assert_eq!(a.check(PRODUCER, "127.0.0.10", None, None), Verdict::Allow);
        // Other categories have no rules.
        assert_eq!(
            a.check(Category::RestConsumer, "8.8.8.8", None, None),
            Verdict::Allow
        );
    }

    #[test]
    fn no_allow_match_without_deny_list_is_refused() {
        let a = acl("[rest:producer]\nhosts_allow = 127.0.0.1\n");
        assert_eq!(
            a.check(PRODUCER, "10.0.0.1", None, None),
            Verdict::DenyAddress
        );
        let all = acl("[rest:producer]\nhosts_allow = 127.0.0.1\nhosts_deny = all\n");
        assert_eq!(
            all.check(PRODUCER, "10.0.0.1", None, None),
            Verdict::DenyAddress
        );
    }

    #[test]
    fn no_allow_match_goes_on_to_the_deny_list() {
        let a = acl("[rest:producer]\nhosts_allow = 127.0.0.1\nhosts_deny = 10.0.\n");
        assert_eq!(
            a.check(PRODUCER, "10.0.0.1", None, None),
            Verdict::DenyAddress
        );
        assert_eq!(a.check(PRODUCER, "172.16.0.1", None, None), Verdict::Allow);
    }

    #[test]
    fn a_deny_list_alone() {
        let a = acl("[rest:consumer]\nhosts_deny = 192.168.0. 10.\n");
        let c = Category::RestConsumer;
        assert_eq!(a.check(c, "192.168.0.9", None, None), Verdict::DenyAddress);
        assert_eq!(a.check(c, "10.9.9.9", None, None), Verdict::DenyAddress);
        assert_eq!(a.check(c, "192.168.1.9", None, None), Verdict::Allow);
    }

    #[test]
    fn all_and_empty_values_mean_no_list() {
        for value in ["all", "", "   "] {
            let a = acl(&format!(
                "[rest:producer]\nhosts_allow = {value}\nhosts_deny = {value}\n"
            ));
            assert_eq!(a, Acl::default(), "{value:?}");
            assert_eq!(a.check(PRODUCER, "10.0.0.1", None, None), Verdict::Allow);
        }
        // `all` is a whole value, not a list item: `all 10.` is the prefixes `all` and `10.`.
        let a = acl("[rest:producer]\nhosts_deny = all 10.\n");
        assert_eq!(
            a.check(PRODUCER, "10.0.0.1", None, None),
            Verdict::DenyAddress
        );
        assert_eq!(a.check(PRODUCER, "11.0.0.1", None, None), Verdict::Allow);
    }

    #[test]
    fn basic_credentials_for_rest_and_comet() {
        let text = "[rest:producer]\nusername = lero\npassword = s3:cr=t\n\
                    [comet:consumer]\nusername = zz\npassword = bla\n";
        let a = acl(text);
        assert_eq!(a.check(PRODUCER, "1.2.3.4", None, None), Verdict::NeedAuth);
        assert_eq!(
            a.check(PRODUCER, "1.2.3.4", Some("lero:s3:cr=t"), None),
            Verdict::Allow
        );
        assert_eq!(
            a.check(PRODUCER, "1.2.3.4", Some("lero:wrong"), None),
            Verdict::NeedAuth
        );
        assert_eq!(
            a.check(PRODUCER, "1.2.3.4", Some("lero"), None),
            Verdict::NeedAuth
        );
        assert_eq!(
            a.check(PRODUCER, "1.2.3.4", Some("other:s3:cr=t"), None),
            Verdict::NeedAuth
        );
        // The cookie is not a credential for REST.
        assert_eq!(
            a.check(PRODUCER, "1.2.3.4", None, Some("lero:s3:cr=t")),
            Verdict::NeedAuth
        );
        let comet = Category::CometConsumer;
        assert_eq!(
            a.check(comet, "1.2.3.4", Some("zz:bla"), None),
            Verdict::Allow
        );
        assert_eq!(a.check(comet, "1.2.3.4", None, None), Verdict::NeedAuth);
    }

    #[test]
    fn websocket_credentials_come_from_the_cookie() {
        let a = acl("[websocket:consumer]\nusername = lerr\npassword = lerr\n");
        let ws = Category::WebsocketConsumer;
        assert_eq!(
            a.check(ws, "1.2.3.4", None, Some("lerr:lerr")),
            Verdict::Allow
        );
        assert_eq!(
            a.check(ws, "1.2.3.4", Some("lerr:lerr"), None),
            Verdict::NeedAuth
        );
        assert_eq!(
            a.check(ws, "1.2.3.4", None, Some("lerr:x")),
            Verdict::NeedAuth
        );
    }

    #[test]
    fn credentials_need_both_username_and_password() {
        let a = acl("[rest:producer]\nusername = lero\n");
        assert_eq!(a.check(PRODUCER, "1.2.3.4", None, None), Verdict::Allow);
        let a = acl("[rest:producer]\nusername =\npassword = x\n");
        assert_eq!(a.check(PRODUCER, "1.2.3.4", None, None), Verdict::Allow);
    }

    #[test]
    fn addresses_are_checked_before_credentials() {
        let a = acl("[rest:producer]\nhosts_allow = 127.0.0.1\nusername = u\npassword = p\n");
        assert_eq!(
            a.check(PRODUCER, "10.0.0.1", Some("u:p"), None),
            Verdict::DenyAddress
        );
        assert_eq!(
            a.check(PRODUCER, "127.0.0.1", None, None),
            Verdict::NeedAuth
        );
        assert_eq!(
            a.check(PRODUCER, "127.0.0.1", Some("u:p"), None),
            Verdict::Allow
        );
        let a = acl("[rest:producer]\nhosts_deny = 10.\nusername = u\npassword = p\n");
        assert_eq!(
            a.check(PRODUCER, "10.0.0.1", Some("u:p"), None),
            Verdict::DenyAddress
        );
        assert_eq!(a.check(PRODUCER, "11.0.0.1", None, None), Verdict::NeedAuth);
        let a = acl(
            "[rest:producer]\nhosts_allow = 127.\nhosts_deny = 10.\nusername = u\npassword = p\n",
        );
        assert_eq!(
            a.check(PRODUCER, "11.0.0.1", Some("u:p"), None),
            Verdict::Allow
        );
        assert_eq!(a.check(PRODUCER, "11.0.0.1", None, None), Verdict::NeedAuth);
    }

    #[test]
    fn config_parser_syntax() {
        let text = "; comment\n# comment\nrem a remark\n[DEFAULT]\npassword = dflt\n\
                    [rest:producer]\r\nUserName: lero ; inline comment\r\n\
                    hosts_deny = 10.;not-a-comment\n\
                    hosts_allow = 127.0.0.1\n  192.168.0.\n\n\t172.16.\n\
                    [rest:producer] trailing text\nhosts_deny = \"\"\n\
                    [sse:consumer]\nhosts_allow = 1.\n";
        let a = acl(text);
        let r = &a.rules[PRODUCER.index()];
        assert_eq!(
            r.hosts_allow,
            Some(vec![
                "127.0.0.1".into(),
                "192.168.0.".into(),
                "172.16.".into()
            ])
        );
        assert_eq!(r.hosts_deny, None);
        assert_eq!(r.credentials, Some(("lero".into(), "dflt".into())));
        // `[DEFAULT]` only fills sections that exist.
        assert_eq!(a.rules[Category::RestConsumer.index()], Rules::default());
        let a = acl("[rest:producer]\nhosts_deny = 10.;x\n");
        assert_eq!(
            a.rules[PRODUCER.index()].hosts_deny,
            Some(vec!["10.;x".into()])
        );
    }

    #[test]
    fn parse_errors_carry_the_line_number() {
        let err = Acl::parse("# c\nhosts_allow = 1.\n").expect_err("no section");
        assert!(matches!(err, AclError::Parse { line: 2, .. }), "{err}");
        let err = Acl::parse("[rest:producer]\n\nhosts_allow 1.\n").expect_err("no separator");
        assert!(matches!(err, AclError::Parse { line: 3, .. }), "{err}");
        let err = Acl::parse("[rest:producer]\n[]\n").expect_err("empty header");
        assert!(matches!(err, AclError::Parse { line: 2, .. }), "{err}");
        let err = Acl::parse_bytes(b"[rest:producer]\nusername = \xff\n").expect_err("utf-8");
        assert!(matches!(err, AclError::Parse { line: 2, .. }), "{err}");
        assert_eq!(err.to_string(), "ACL file line 2: not valid UTF-8");
    }

    #[test]
    fn requests_are_checked_with_their_headers() {
        let watch = AclWatch::fixed(acl(
            "[rest:producer]\nhosts_deny = 10.\nusername = u\npassword = p:w\n\
             [websocket:consumer]\nusername = u\npassword = p\n",
        ));
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        let mut headers = HeaderMap::new();
        assert_eq!(
            watch.check_request(PRODUCER, ip("1.2.3.4"), &headers),
            Verdict::NeedAuth
        );
        // base64("u:p:w") = "dTpwOnc="
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dTpwOnc="));
        assert_eq!(
            watch.check_request(PRODUCER, ip("1.2.3.4"), &headers),
            Verdict::Allow
        );
        headers.insert(AUTHORIZATION, HeaderValue::from_static("basic dTpwOnc"));
        assert_eq!(
            watch.check_request(PRODUCER, ip("1.2.3.4"), &headers),
            Verdict::Allow
        );
        assert_eq!(
            watch.check_request(PRODUCER, ip("10.0.0.1"), &headers),
            Verdict::DenyAddress
        );
        // An IPv4 peer seen through a dual-stack socket still matches IPv4 prefixes.
        assert_eq!(
            watch.check_request(PRODUCER, ip("::ffff:10.0.0.1"), &headers),
            Verdict::DenyAddress
        );
        for bad in ["Bearer dTpwOnc=", "Basic", "Basic !!!", "Basic dTpwOnc= x"] {
            headers.insert(AUTHORIZATION, HeaderValue::from_static(bad));
            assert_eq!(
                watch.check_request(PRODUCER, ip("1.2.3.4"), &headers),
                Verdict::NeedAuth,
                "{bad}"
            );
        }
        let ws = Category::WebsocketConsumer;
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, HeaderValue::from_static("theme=dark; auth=u:p"));
        assert_eq!(
            watch.check_request(ws, ip("1.2.3.4"), &headers),
            Verdict::Allow
        );
        headers.insert(COOKIE, HeaderValue::from_static("auth=\"u:p\""));
        assert_eq!(
            watch.check_request(ws, ip("1.2.3.4"), &headers),
            Verdict::Allow
        );
        headers.insert(COOKIE, HeaderValue::from_static("auth=u:x"));
        assert_eq!(
            watch.check_request(ws, ip("1.2.3.4"), &headers),
            Verdict::NeedAuth
        );
    }

    #[tokio::test]
    async fn refusals_are_401_pages() {
        use http_body_util::BodyExt;
        assert!(refusal(Verdict::Allow).is_none());
        let page = "<html><title>401: Unauthorized</title><body>401: Unauthorized</body></html>";
        let deny = refusal(Verdict::DenyAddress).expect("a reply");
        assert_eq!(deny.status(), StatusCode::UNAUTHORIZED);
        assert!(deny.headers().get(WWW_AUTHENTICATE).is_none());
        let body = deny.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, page.as_bytes());
        let auth = refusal(Verdict::NeedAuth).expect("a reply");
        assert_eq!(auth.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            auth.headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok()),
            Some("Basic realm=\"RestMQ Restricted Access\"")
        );
        let body = auth.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(body, page.as_bytes());
    }

    /// Waits up to 5 s for the watch's rules to satisfy `pred`.
    async fn eventually(watch: &AclWatch, pred: impl Fn(&Acl) -> bool) -> bool {
        for _ in 0..500 {
            if pred(&watch.current()) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        false
    }

    fn denies(acl: &Acl, peer: &str) -> bool {
        acl.check(PRODUCER, peer, None, None) == Verdict::DenyAddress
    }

    #[tokio::test]
    async fn the_watch_reloads_a_changed_file_and_survives_a_bad_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acl.conf");
        std::fs::write(&path, "[rest:producer]\nhosts_deny = 10.\n").expect("write");
        let watch = AclWatch::open(path.clone(), Duration::from_millis(20)).expect("open");
        assert!(denies(&watch.current(), "10.0.0.1"));

        std::fs::write(&path, "[rest:producer]\nhosts_deny = 11.\n").expect("write");
        assert!(eventually(&watch, |a| denies(a, "11.0.0.1") && !denies(a, "10.0.0.1")).await);

        // A broken file keeps the rules in force…
        std::fs::write(&path, "[rest:producer]\nhosts_deny 12.\n").expect("write");
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(denies(&watch.current(), "11.0.0.1"));
        // …and so does a vanished one…
        std::fs::remove_file(&path).expect("remove");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(denies(&watch.current(), "11.0.0.1"));
        // …and the watch goes on: a later good file is loaded.
        std::fs::write(&path, "[rest:producer]\nhosts_deny = 13.\n").expect("write");
        assert!(eventually(&watch, |a| denies(a, "13.0.0.1") && !denies(a, "11.0.0.1")).await);
    }

    #[tokio::test]
    async fn a_missing_file_allows_all_until_it_appears() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acl.conf");
        let watch = AclWatch::open(path.clone(), Duration::from_millis(20)).expect("open");
        assert_eq!(*watch.current(), Acl::default());
        std::fs::write(&path, "[rest:producer]\nhosts_deny = 10.\n").expect("write");
        assert!(eventually(&watch, |a| denies(a, "10.0.0.1")).await);
    }

    #[tokio::test]
    async fn a_bad_file_at_start_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acl.conf");
        std::fs::write(&path, "hosts_deny = 10.\n").expect("write");
        let err = AclWatch::open(path, Duration::from_secs(60)).expect_err("bad file");
        assert!(matches!(err, AclError::Parse { line: 1, .. }), "{err}");
        let err = AclWatch::open(dir.path().to_path_buf(), Duration::from_secs(60))
            .expect_err("a directory");
        assert!(matches!(err, AclError::Read { .. }), "{err}");
    }

    #[test]
    fn open_needs_a_runtime() {
        let err = AclWatch::open(
            PathBuf::from("/nonexistent/acl.conf"),
            Duration::from_secs(1),
        )
        .expect_err("no runtime");
        assert!(matches!(err, AclError::NoRuntime));
    }

    #[tokio::test]
    async fn the_task_ends_with_the_last_watch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("acl.conf");
        std::fs::write(&path, "").expect("write");
        let watch = AclWatch::open(path, Duration::from_millis(10)).expect("open");
        let clone = watch.clone();
        let weak = Arc::downgrade(&watch.rules);
        drop(watch);
        assert!(weak.upgrade().is_some(), "a clone keeps the rules");
        drop(clone);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(weak.upgrade().is_none(), "nothing holds the rules any more");
    }

    #[test]
    fn allow_all_allows_all() {
        let watch = AclWatch::allow_all();
        let ip: IpAddr = "10.0.0.1".parse().expect("ip");
        for category in Category::ALL {
            assert_eq!(
                watch.check_request(category, ip, &HeaderMap::new()),
                Verdict::Allow
            );
        }
    }
}
