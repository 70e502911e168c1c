//! `/p/<queue>`: the live-delivery policy. `GET` shows it (`"unknown"` when never
//! set), `POST policy=broadcast|roundrobin` sets the core's `live_policy` (`OK⏎`; any
//! other value `null⏎`; missing, the 400 page).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use godwit_core::{LivePolicy, SettingsPatch};

use super::pyjson::{dumps, PyValue};
use super::reply::{error_page, write};
use super::request::{checked_rest, core_error};
use crate::AppState;

/// `/p/<queue>`, GET and POST.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked_rest(&app, req, "/p/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    if ctx.method == Method::GET {
        let value = match app
            .broker
            .settings(&ctx.name)
            .ok()
            .and_then(|s| s.live_policy)
        {
            Some(LivePolicy::Broadcast) => "broadcast",
            Some(LivePolicy::RoundRobin) => "roundrobin",
            None => "unknown",
        };
        let reply = PyValue::Dict(vec![
            ("queue".into(), PyValue::Str(ctx.name.clone())),
            ("value".into(), PyValue::Str(value.into())),
        ]);
        return write(&dumps(&reply), ctx.callback.as_deref());
    }
    let policy = match ctx.args.get("policy") {
        None => return error_page(StatusCode::BAD_REQUEST),
        Some("broadcast") => LivePolicy::Broadcast,
        Some("roundrobin") => LivePolicy::RoundRobin,
        Some(_) => return write("null", ctx.callback.as_deref()),
    };
    let patch = SettingsPatch {
        live_policy: Some(policy),
        ..SettingsPatch::default()
    };
    match app.broker.configure(&ctx.name, patch).await {
        Ok(_) => write("OK", ctx.callback.as_deref()),
        Err(e) => core_error(&e),
    }
}
