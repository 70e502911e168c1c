//! `/j/<queue>`: the HTML job-info page (no ACL): the queue's name, how many messages
//! Godwit holds for it, how many wait, and the keys of the ten newest, newest first.

use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use godwit_core::{End, ReadOptions};

use super::q::escape_html;
use super::reply::HTML;
use super::request::{checked, key};
use crate::AppState;

/// `/j/<queue>`, GET.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked(&app, req, None, "/j/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let queue = &ctx.name;
    let stats = app.broker.stats(queue).ok();
    let held = stats
        .as_ref()
        .map_or(0, |s| s.ready + s.delayed + s.in_flight);
    let waiting = stats.as_ref().map_or(0, |s| s.ready + s.delayed);
    let newest = app
        .broker
        .peek_from(
            queue,
            ReadOptions {
                max: 10,
                end: End::Tail,
                ..ReadOptions::default()
            },
        )
        .await
        .unwrap_or_default();
    let name = escape_html(queue);
    let mut page = format!(
        "<html><head><title>jobs in queue {name}</title></head><body>\
         <p>queue name: {name}</p>\
         <p>queue objects: {{'objects': {held}}}</p>\
         <p>job count: {waiting}</p>\
         <p>latest 10 jobs</p><ul>"
    );
    for m in &newest {
        page.push_str(&format!("<li>{}</li>", escape_html(&key(queue, m.id))));
    }
    page.push_str("</ul></body></html>");
    ([(CONTENT_TYPE, HTML)], page).into_response()
}
