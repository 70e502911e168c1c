//! `/stats/<queue>` (`{"queue", "redis", "len"}`) and `/stats/` (every queue with its
//! status, raw policy id, name and length), `application/json` without CRLF; JSONP as
//! `cb(json)` without `;` (Godwit wraps JSON, not Python's repr).

use axum::extract::{Request, State};
use axum::response::Response;
use godwit_core::{LivePolicy, QueueStats};

use super::acl::Category;
use super::control::{status, STORE};
use super::pyjson::{dumps, PyValue};
use super::reply::{raw, JSON};
use super::request::checked;
use crate::AppState;

/// Messages in a queue's list as RestMQ counts them: waiting to be read.
fn len(stats: &QueueStats) -> u64 {
    stats.ready.saturating_add(stats.delayed)
}

/// `/stats/` and `/stats/<queue>`, GET.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked(&app, req, Some(Category::RestConsumer), "/stats/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let reply = if ctx.name.is_empty() {
        let queues: Vec<(String, PyValue)> = app
            .broker
            .list()
            .into_iter()
            .map(|q| {
                let settings = app.broker.settings(&q.name).ok();
                let status = status(settings.as_ref(), q.next_id)
                    .map_or(PyValue::Str(String::new()), |s| PyValue::Int(s.to_string()));
                let policy = match settings.and_then(|s| s.live_policy) {
                    Some(LivePolicy::Broadcast) => PyValue::Int("1".into()),
                    Some(LivePolicy::RoundRobin) => PyValue::Int("2".into()),
                    None => PyValue::Str(String::new()),
                };
                let entry = PyValue::Dict(vec![
                    ("status".into(), status),
                    ("policy".into(), policy),
                    ("name".into(), PyValue::Str(q.name.clone())),
                    ("len".into(), PyValue::Int(len(&q).to_string())),
                ]);
                (q.name.clone(), entry)
            })
            .collect();
        PyValue::Dict(vec![
            ("count".into(), PyValue::Int(queues.len().to_string())),
            ("queues".into(), PyValue::Dict(queues)),
            ("redis".into(), PyValue::Str(STORE.into())),
        ])
    } else {
        let n = app.broker.stats(&ctx.name).map_or(0, |s| len(&s));
        PyValue::Dict(vec![
            ("queue".into(), PyValue::Str(ctx.name.clone())),
            ("redis".into(), PyValue::Str(STORE.into())),
            ("len".into(), PyValue::Int(n.to_string())),
        ])
    };
    let json = dumps(&reply);
    match ctx.callback {
        Some(cb) => raw(JSON, format!("{cb}({json})")),
        None => raw(JSON, json),
    }
}
