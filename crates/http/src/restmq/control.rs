//! `/control/<queue>`: live delivery's start and stop. `GET` shows a queue's status
//! (`1` started, `0` stopped, `null` never set), `GET /control/` every queue's;
//! `POST status=start|stop` sets the core's `live_paused` (plain reads go on).

use axum::extract::{Request, State};
use axum::http::Method;
use axum::response::Response;
use godwit_core::{QueueSettings, SettingsPatch};

use super::pyjson::{dumps, PyValue};
use super::reply::{raw, write, JSON};
use super::request::{checked_rest, core_error};
use crate::AppState;

/// What the `redis` field of `/stats/` and `/control/` holds: a description of the
/// store, where RestMQ described its Redis pool.
pub(crate) const STORE: &str = "<Godwit store: embedded>";

/// A queue's live status as RestMQ shows it: `Some(1)` started, `Some(0)` stopped,
/// `None` never set (a queue that never had a message and was never started or
/// stopped). A first message starts a queue whose status was never set (and keeps a
/// status set before it).
pub(crate) fn status(settings: Option<&QueueSettings>, next_id: u64) -> Option<u8> {
    let settings = settings?;
    match settings.live_paused {
        Some(true) => Some(0),
        Some(false) => Some(1),
        None => (next_id > 1).then_some(1),
    }
}

/// The status of `queue`, looked up.
pub(crate) fn status_of(app: &AppState, queue: &str) -> Option<u8> {
    let stats = app.broker.stats(queue).ok()?;
    status(app.broker.settings(queue).ok().as_ref(), stats.next_id)
}

fn status_value(s: Option<u8>) -> PyValue {
    s.map_or(PyValue::Null, |s| PyValue::Int(s.to_string()))
}

fn queue_status(queue: &str, s: Option<u8>) -> PyValue {
    PyValue::Dict(vec![
        ("queue".into(), PyValue::Str(queue.into())),
        ("status".into(), status_value(s)),
    ])
}

/// `/control/` and `/control/<queue>`, GET and POST.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked_rest(&app, req, "/control/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    if ctx.method == Method::GET {
        let reply = if ctx.name.is_empty() {
            let queues: Vec<(String, PyValue)> = app
                .broker
                .list()
                .into_iter()
                .map(|q| {
                    let s = status(app.broker.settings(&q.name).ok().as_ref(), q.next_id);
                    (q.name.clone(), queue_status(&q.name, s))
                })
                .collect();
            PyValue::Dict(vec![
                ("count".into(), PyValue::Int(queues.len().to_string())),
                ("queues".into(), PyValue::Dict(queues)),
                ("redis".into(), PyValue::Str(STORE.into())),
            ])
        } else {
            PyValue::Dict(vec![
                ("queue".into(), PyValue::Str(ctx.name.clone())),
                (
                    "status".into(),
                    queue_status(&ctx.name, status_of(&app, &ctx.name)),
                ),
                ("redis".into(), PyValue::Str(STORE.into())),
            ])
        };
        return raw(JSON, format!("{}\r\n", dumps(&reply)));
    }
    let paused = match ctx.args.get("status") {
        Some("start") => false,
        Some("stop") => true,
        other => {
            let shown = other.unwrap_or("None");
            let reply = PyValue::Dict(vec![(
                "stat".into(),
                PyValue::Str(format!("invalid status: {shown}")),
            )]);
            return stat_reply(&dumps(&reply), ctx.callback.as_deref());
        }
    };
    let patch = SettingsPatch {
        live_paused: Some(paused),
        ..SettingsPatch::default()
    };
    if let Err(e) = app.broker.configure(&ctx.name, patch).await {
        return core_error(&e);
    }
    let reply = PyValue::Dict(vec![(
        "stat".into(),
        queue_status(&ctx.name, Some(u8::from(!paused))),
    )]);
    stat_reply(&dumps(&reply), ctx.callback.as_deref())
}

/// The reply of a POST: the writer's `text⏎`, but JSONP as `cb(text)⏎` (no `;`).
fn stat_reply(text: &str, callback: Option<&str>) -> Response {
    match callback {
        Some(cb) => raw(super::reply::HTML, format!("{cb}({text})\r\n")),
        None => write(text, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_set_by_control_or_by_a_first_message() {
        let mut s = QueueSettings::default();
        assert_eq!(status(None, 5), None);
        assert_eq!(status(Some(&s), 1), None);
        assert_eq!(status(Some(&s), 2), Some(1));
        s.live_paused = Some(true);
        assert_eq!(status(Some(&s), 9), Some(0));
        s.live_paused = Some(false);
        assert_eq!(status(Some(&s), 1), Some(1));
    }
}
