//! RestMQ's optional collectd handlers (off unless `--restmq-collectd`):
//! `POST /collectd/data` and `POST /collectd/event` read collectd's plain-text output
//! (`PUTVAL` lines and notification fields) into a JSON list pushed to queue
//! `collectd_data` or `collectd_event`; an `application/json` body is pushed as it is.
//! Another content type is the 415 page, a line that does not parse the 400 page.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use godwit_core::NewMessage;

use super::acl::Category;
use super::pyjson::{dumps, PyValue};
use super::reply::{error_page, write};
use super::request::{checked, core_error, key};
use crate::AppState;

/// Notification fields a line may start with (`Severity: FAILURE`).
const FIELDS: [&str; 12] = [
    "Severity",
    "Time",
    "Host",
    "Plugin",
    "Type",
    "TypeInstance",
    "DataSource",
    "CurrentValue",
    "WarningMin",
    "WarningMax",
    "FailureMin",
    "FailureMax",
];

/// One line of collectd text: a `PUTVAL` record, a notification field, nothing (other
/// lines), or `Err` when a `PUTVAL` line lacks its parts.
fn parse_line(line: &str) -> Result<Option<PyValue>, ()> {
    let tokens: Vec<&str> = line.split(' ').collect();
    let first = tokens[0];
    if first == "PUTVAL" {
        let (Some(ident), Some(interval), Some(value)) =
            (tokens.get(1), tokens.get(2), tokens.get(3))
        else {
            return Err(());
        };
        let parts: Vec<&str> = ident.split('/').collect();
        let [host, plugin, kind] = parts[..] else {
            return Err(());
        };
        let interval = interval.split_once('=').map(|(_, i)| i).ok_or(())?;
        return Ok(Some(PyValue::Dict(vec![
            ("host".into(), PyValue::Str(host.into())),
            ("type_instance".into(), PyValue::Str(kind.into())),
            ("plugin_instance".into(), PyValue::Str(plugin.into())),
            ("value".into(), PyValue::Str((*value).into())),
            ("interval".into(), PyValue::Str(interval.into())),
        ])));
    }
    let name = first.strip_suffix(':').unwrap_or(first);
    if FIELDS.contains(&name) {
        let value = tokens.get(1).ok_or(())?;
        return Ok(Some(PyValue::Dict(vec![(
            name.to_lowercase(),
            PyValue::Str((*value).into()),
        )])));
    }
    Ok(None)
}

/// The JSON list of a body's lines (`event`: the last line is the event text and the
/// one before it, the blank separator, is dropped).
fn records(body: &str, event: bool) -> Result<String, ()> {
    let mut lines: Vec<&str> = body
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if lines.last() == Some(&"") {
        lines.pop();
    }
    let event_text = if event {
        let text = lines.pop().ok_or(())?;
        lines.pop();
        Some(text)
    } else {
        None
    };
    let mut list = Vec::new();
    for line in lines {
        if let Some(record) = parse_line(line)? {
            list.push(record);
        }
    }
    if let Some(text) = event_text {
        list.push(PyValue::Dict(vec![(
            "event_text".into(),
            PyValue::Str(text.into()),
        )]));
    }
    // Plain `json.dumps`: RestMQ's `<\/` rewrite is not applied here (a `<\/` in the
    // output can only come from it: a backslash in text is written `\\`).
    Ok(dumps(&PyValue::List(list)).replace("<\\/", "</"))
}

/// `POST /collectd/<name>`.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked(&app, req, Some(Category::RestProducer), "/collectd/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let (queue, event) = match ctx.name.as_str() {
        "data" => ("collectd_data", false),
        "event" => ("collectd_event", true),
        _ => return error_page(StatusCode::BAD_REQUEST),
    };
    let content_type = ctx
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Ok(body) = std::str::from_utf8(&ctx.body) else {
        return error_page(StatusCode::BAD_REQUEST);
    };
    let value = match content_type {
        "text/plain" => match records(body, event) {
            Ok(json) => json,
            Err(()) => return error_page(StatusCode::BAD_REQUEST),
        },
        "application/json" => body.to_string(),
        _ => return error_page(StatusCode::UNSUPPORTED_MEDIA_TYPE),
    };
    match app.broker.push(queue, vec![NewMessage::new(value)]).await {
        Ok(out) => write(&key(queue, out[0].id), ctx.callback.as_deref()),
        Err(e) => core_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn putval_lines_and_notification_fields_become_a_json_list() {
        let body = "PUTVAL web1/cpu-0/cpu-idle interval=10 N:98.5\nSeverity: OKAY\nnoise here\n";
        assert_eq!(
            records(body, false).unwrap(),
            "[{\"host\": \"web1\", \"type_instance\": \"cpu-idle\", \"plugin_instance\": \"cpu-0\", \
             \"value\": \"N:98.5\", \"interval\": \"10\"}, {\"severity\": \"OKAY\"}]"
        );
        let event = "Severity: FAILURE\nHost: web1\n\nDisk </dev/sda> is full\n";
        assert_eq!(
            records(event, true).unwrap(),
            "[{\"severity\": \"FAILURE\"}, {\"host\": \"web1\"}, \
             {\"event_text\": \"Disk </dev/sda> is full\"}]"
        );
    }

    #[test]
    fn a_line_without_its_parts_does_not_parse() {
        assert!(records("PUTVAL a/b interval=1 N:1", false).is_err());
        assert!(records("PUTVAL a/b/c", false).is_err());
        assert!(records("PUTVAL a/b/c ten N:1", false).is_err());
        assert!(records("Host:", false).is_err());
        assert!(records("", true).is_err());
    }
}
