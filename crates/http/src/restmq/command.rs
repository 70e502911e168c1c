//! `/queue`: RestMQ's JSON command protocol (`add`, `get` the soft get, `take`, `del`),
//! its text in the form field `body` or `msg`, or (Godwit) a raw `application/json`
//! body; `GET /queue` redirects to the help form.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::Response;
use godwit_core::NewMessage;
use serde_json::value::RawValue;

/// A command object, each field's JSON text kept (Python's type names need the text:
/// `1` is an int, `1.0` and `1e5` floats, 2^64 a long).
type Command = std::collections::HashMap<String, Box<RawValue>>;

use super::acl::Category;
use super::pyjson::{convert, dumps, PyValue};
use super::reply::{error_page, raw, HTML, JSON};
use super::request::{checked, key, take_one, text, Ctx};
use super::root::redirect;
use crate::AppState;

/// `/queue`, GET and POST.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    if req.method() == Method::GET {
        return redirect("/static/help.html");
    }
    let ctx = match checked(&app, req, Some(Category::RestProducer), "/queue").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let Some(command) = command(&ctx) else {
        return error_page(StatusCode::BAD_REQUEST);
    };
    let Some(cmd) = command
        .get("cmd")
        .and_then(|c| serde_json::from_str::<String>(c.get()).ok())
        .filter(|c| !c.is_empty())
    else {
        return error_page(StatusCode::BAD_REQUEST);
    };
    let reply = match cmd.as_str() {
        "add" => add(&app, &command).await,
        "get" => get(&app, &command).await,
        "take" => return take(&app, &command).await,
        "del" => del(&app, &command).await,
        _ => return raw(HTML, dumps(&error("null resultset"))),
    };
    raw(JSON, dumps(&reply))
}

/// The command object: from `msg` (unless empty) or `body`, else a raw JSON body.
fn command(ctx: &Ctx) -> Option<Command> {
    let field = match (ctx.args.get("msg"), ctx.args.get("body")) {
        (Some(msg), _) if !msg.is_empty() => Some(msg.as_bytes().to_vec()),
        (_, Some(body)) => Some(body.as_bytes().to_vec()),
        (Some(msg), None) => Some(msg.as_bytes().to_vec()),
        (None, None) => None,
    };
    let is_json = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.split(';').next().unwrap_or("").trim() == "application/json");
    let text = match field {
        Some(f) => f,
        None if is_json && ctx.method == Method::POST => ctx.body.to_vec(),
        None => return None,
    };
    // Only an object decodes as a map: any other JSON value is the 400 page.
    serde_json::from_slice(&text).ok()
}

fn error(text: &str) -> PyValue {
    PyValue::Dict(vec![("error".into(), PyValue::Str(text.into()))])
}

/// Python's name for the type of the JSON value `raw`, as its `'<type>' object has
/// no attribute 'encode'` error says it.
fn type_name(raw: &str) -> &'static str {
    match raw.as_bytes().first() {
        Some(b'n') => "NoneType",
        Some(b't' | b'f') => "bool",
        Some(b'"') => "str",
        Some(b'[') => "list",
        Some(b'{') => "dict",
        _ if raw.contains(['.', 'e', 'E']) => "float",
        _ if raw.parse::<i64>().is_ok() => "int",
        _ => "long",
    }
}

/// Field `name` as a string, or the reply RestMQ gives when it is missing (the
/// KeyError text) or not a string.
fn field(
    command: &Command,
    name: &str,
    not_text: impl Fn(&str) -> String,
) -> Result<String, PyValue> {
    let Some(raw) = command.get(name) else {
        return Err(error(&format!("'{name}'")));
    };
    serde_json::from_str::<String>(raw.get()).map_err(|_| error(&not_text(raw.get())))
}

fn no_encode(v: &str) -> String {
    format!("'{}' object has no attribute 'encode'", type_name(v))
}

async fn add(app: &AppState, command: &Command) -> PyValue {
    let queue = match field(command, "queue", no_encode) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let value = match field(command, "value", no_encode) {
        Ok(v) => v,
        Err(e) => return e,
    };
    match app
        .broker
        .push(&queue, vec![NewMessage::new(value.clone())])
        .await
    {
        Ok(out) => PyValue::Dict(vec![
            ("queue".into(), PyValue::Str(queue.clone())),
            ("value".into(), PyValue::Str(value)),
            ("key".into(), PyValue::Str(key(&queue, out[0].id))),
        ]),
        Err(e) => error(&e.to_string()),
    }
}

/// The soft get: the oldest message, its counter raised.
async fn get(app: &AppState, command: &Command) -> PyValue {
    let queue = match field(command, "queue", no_encode) {
        Ok(q) => q,
        Err(e) => return e,
    };
    match app.broker.soft_get(&queue, None).await {
        Ok(Some(m)) => PyValue::Dict(vec![
            ("queue".into(), PyValue::Str(queue.clone())),
            ("count".into(), PyValue::Int(m.soft_gets.to_string())),
            ("value".into(), convert(&text(&m.body))),
            ("key".into(), PyValue::Str(key(&queue, m.id))),
        ]),
        Ok(None) | Err(godwit_core::Error::NotFound(_)) => error("empty queue"),
        Err(e) => error(&e.to_string()),
    }
}

/// Pops the oldest message, confirmed once the reply was written.
async fn take(app: &AppState, command: &Command) -> Response {
    let queue = match field(command, "queue", no_encode) {
        Ok(q) => q,
        Err(e) => return raw(JSON, dumps(&e)),
    };
    let delivery = match take_one(app, &queue).await {
        Ok(Some(d)) => d,
        Ok(None) => return raw(JSON, dumps(&error("empty queue"))),
        Err(e) => return raw(JSON, dumps(&error(&e.to_string()))),
    };
    let m = &delivery.messages()[0];
    let reply = PyValue::Dict(vec![
        ("queue".into(), PyValue::Str(queue.clone())),
        ("value".into(), convert(&text(&m.body))),
        ("key".into(), PyValue::Str(key(&queue, m.id))),
    ]);
    crate::native::delivered::confirming(
        dumps(&reply).into(),
        header::HeaderValue::from_static(JSON),
        delivery,
    )
}

/// Deletes the message a key names (`<queue>:<id>`); the `queue` field is echoed.
async fn del(app: &AppState, command: &Command) -> PyValue {
    let queue = match field(command, "queue", no_encode) {
        Ok(q) => q,
        Err(e) => return e,
    };
    let key = match field(command, "key", |_| "data must be utf-8".into()) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let target = key
        .rsplit_once(':')
        .and_then(|(q, id)| Some((q, id.parse::<u64>().ok()?)));
    let deleted = match target {
        Some((q, id)) => match app.broker.delete(q, None, &[id]).await {
            Ok(n) => n > 0,
            Err(godwit_core::Error::NotFound(_) | godwit_core::Error::InvalidName(_)) => false,
            Err(e) => return error(&e.to_string()),
        },
        None => false,
    };
    PyValue::Dict(vec![
        ("queue".into(), PyValue::Str(queue)),
        ("deleted".into(), PyValue::Bool(deleted)),
        ("key".into(), PyValue::Str(key)),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_types_have_their_python_names() {
        let cases = [
            ("null", "NoneType"),
            ("true", "bool"),
            ("false", "bool"),
            ("1", "int"),
            ("-9223372036854775808", "int"),
            ("9223372036854775808", "long"),
            ("99999999999999999999999", "long"),
            ("1.5", "float"),
            ("1e5", "float"),
            ("\"s\"", "str"),
            ("[]", "list"),
            ("{}", "dict"),
        ];
        for (json, name) in cases {
            assert_eq!(type_name(json), name, "{json}");
        }
    }
}
