//! The live stats stream, `GET /v1/stats/events`: the server's totals and every queue's
//! counters as one Server-Sent Event right away, then one per interval. The dashboard
//! (`/ui`) draws from it; rates are left to the client (deltas of the totals between
//! two events), so the server keeps no history.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::sse::Event;
use axum::response::Response;
use futures_util::stream;
use serde::{Deserialize, Serialize};
use tokio::time::MissedTickBehavior;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::live::sse_response;
use crate::native::extract::ApiQuery;
use crate::native::render::{StatsJson, TotalsJson};
use crate::AppState;

/// The shortest interval a client may ask for, in milliseconds.
pub const MIN_INTERVAL_MS: u64 = 100;
/// The longest interval a client may ask for, in milliseconds.
pub const MAX_INTERVAL_MS: u64 = 60_000;
/// The interval of a stream that does not ask for one, in milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 1_000;

/// Options of the stats stream, in the query string.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StatsEventsQuery {
    /// Milliseconds between two events (100..=60000, default 1000).
    pub interval_ms: Option<u64>,
}

/// One queue in a stats event: its counters as `GET /v1/queues` lists them, and the
/// live-delivery setting a dashboard shows beside them.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LiveQueueJson {
    /// The counters.
    #[serde(flatten)]
    pub stats: StatsJson,
    /// Live delivery (SSE and WebSocket streams) is stopped; plain reads go on.
    pub live_paused: bool,
    /// The queue's live policy for consumers that follow it; `null` never set.
    pub live_policy: Option<crate::native::render::LivePolicyJson>,
}

/// The data of one `stats` event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StatsEventJson {
    /// When the snapshot was taken, in milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// The server's totals, as `GET /v1/stats` answers.
    pub totals: TotalsJson,
    /// Every queue, by name.
    pub queues: Vec<LiveQueueJson>,
}

/// A snapshot of the broker's counters now.
fn snapshot(app: &AppState) -> StatsEventJson {
    let at_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let totals = app.broker.totals().into();
    let queues = app
        .broker
        .list()
        .into_iter()
        .map(|stats| {
            // A queue dropped between the listing and this look shows as not paused;
            // the next event leaves it out.
            let settings = app.broker.settings(&stats.name).ok();
            LiveQueueJson {
                stats: stats.into(),
                live_paused: settings
                    .as_ref()
                    .is_some_and(|s| s.live_paused == Some(true)),
                live_policy: settings.and_then(|s| s.live_policy).map(Into::into),
            }
        })
        .collect();
    StatsEventJson {
        at_ms,
        totals,
        queues,
    }
}

fn stats_event(app: &AppState) -> Event {
    let json = serde_json::to_string(&snapshot(app)).unwrap_or_default();
    Event::default().event("stats").data(json)
}

/// The server's counters as Server-Sent Events: one `stats` event at once, then one
/// every `interval_ms`, whose data is `{"at_ms", "totals", "queues"}`: `totals` as
/// `GET /v1/stats` answers, `queues` as `GET /v1/queues` lists them, each with its
/// `live_paused` setting. The stream ends when the client leaves.
#[utoipa::path(
    get,
    path = "/v1/stats/events",
    tag = "streams",
    params(StatsEventsQuery),
    responses(
        (status = 200, description = "The event stream; each event's data is a `StatsEventJson`", content_type = "text/event-stream", body = String),
        (status = 400, description = "`invalid_query` or `invalid_argument`: a bad parameter or an interval out of bounds", body = ErrorBody),
    )
)]
pub async fn events(
    State(app): State<AppState>,
    ApiQuery(q): ApiQuery<StatsEventsQuery>,
) -> Result<Response, ApiError> {
    let interval_ms = q.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS);
    if !(MIN_INTERVAL_MS..=MAX_INTERVAL_MS).contains(&interval_ms) {
        return Err(ApiError::invalid_argument(format!(
            "interval_ms must be {MIN_INTERVAL_MS}..={MAX_INTERVAL_MS}, not {interval_ms}"
        )));
    }
    let mut ticks = tokio::time::interval(Duration::from_millis(interval_ms));
    // A slow reader gets the next snapshot late, not a burst of stale ones.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let body = stream::unfold((app, ticks), |(app, mut ticks)| async move {
        ticks.tick().await;
        let event = stats_event(&app);
        Some((Ok::<_, std::convert::Infallible>(event), (app, ticks)))
    });
    Ok(sse_response(body))
}
