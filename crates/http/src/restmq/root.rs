//! `/`: RestMQ's query-string API. `GET /` without `queue` redirects to the dashboard,
//! `GET /?queue=q` pops like `GET /q/q` (an empty queue is the 404 page), `POST /`
//! adds `value` (or `msg`) to `queue`.

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};

use super::q::{add, pop};
use super::reply::error_page;
use super::request::checked_rest;
use crate::AppState;

/// `/`, GET and POST.
pub(crate) async fn route(State(app): State<AppState>, req: Request) -> Response {
    let ctx = match checked_rest(&app, req, "/").await {
        Ok(ctx) => ctx,
        Err(refused) => return refused,
    };
    let queue = ctx.args.get("queue").map(str::to_string);
    match (ctx.method.clone(), queue) {
        (Method::GET, None) => redirect("/static/index.html"),
        (Method::GET, Some(queue)) => {
            pop(&app, &queue, ctx.callback.as_deref(), || {
                error_page(StatusCode::NOT_FOUND)
            })
            .await
        }
        (Method::POST, None) => error_page(StatusCode::BAD_REQUEST),
        (Method::POST, Some(queue)) => {
            let Some(value) = ctx.args.get("value").or_else(|| ctx.args.get("msg")) else {
                return error_page(StatusCode::BAD_REQUEST);
            };
            add(&app, &ctx, &queue, value).await
        }
        _ => error_page(StatusCode::METHOD_NOT_ALLOWED),
    }
}

/// A 302 to `to` with an empty body.
pub(crate) fn redirect(to: &'static str) -> Response {
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, to),
            (header::CONTENT_TYPE, super::reply::HTML),
        ],
        axum::body::Body::empty(),
    )
        .into_response()
}
