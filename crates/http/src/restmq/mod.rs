//! RestMQ's dialect on the main listener; see `specs/restmq.md` (section 12 is what
//! Godwit keeps and fixes).
//!
//! The text layer: Python-2 JSON text and numeric conversion ([`pyjson`]), argument
//! and path-name decoding ([`args`]), the exact-byte replies ([`reply`]) and the ACL
//! file ([`acl`]). The routes, one module each, map onto the core: a RestMQ queue is a
//! core queue and its key `<queue>:<n>` message id n; hard GET and JSON `take` are a
//! take (confirmed once written), JSON `get` the soft get, `del` a delete by id,
//! `DELETE /q` a purge, `/p/` the queue's `live_policy`, `/control/` its `live_paused`,
//! and the live consumers (`live.rs`) streams of the hub that follow both.

pub mod acl;
pub mod args;
pub mod pyjson;
pub mod reply;

mod collectd;
mod command;
mod control;
mod jobs;
mod live;
mod policy;
mod q;
mod request;
mod root;
mod stats;

use std::path::PathBuf;
use std::time::Duration;

use axum::handler::Handler;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::AppState;

/// How often the ACL file is checked for changes.
pub const ACL_INTERVAL: Duration = Duration::from_secs(60);

/// The dialect's settings.
#[derive(Debug, Clone, Default)]
pub struct RestmqOptions {
    /// The ACL file (section 7 of the spec); `None` allows everyone.
    pub acl_file: Option<PathBuf>,
    /// Take the client's address from `X-Real-Ip` / `X-Forwarded-For` (behind a proxy).
    pub trust_proxy: bool,
    /// Serve the optional collectd handlers (`POST /collectd/data`, `/collectd/event`).
    pub collectd: bool,
}

/// What the dialect's routes share.
#[derive(Clone)]
pub struct Restmq {
    /// The live ACL rules.
    pub acl: acl::AclWatch,
    /// See [`RestmqOptions::trust_proxy`].
    pub trust_proxy: bool,
}

impl Restmq {
    /// The dialect's state: the ACL file read now (a file that does not parse is an
    /// error) and re-checked every [`ACL_INTERVAL`].
    pub fn new(opts: &RestmqOptions) -> Result<Self, acl::AclError> {
        let acl = match &opts.acl_file {
            Some(path) => acl::AclWatch::open(path.clone(), ACL_INTERVAL)?,
            None => acl::AclWatch::allow_all(),
        };
        Ok(Self {
            acl,
            trust_proxy: opts.trust_proxy,
        })
    }
}

async fn method_not_allowed() -> Response {
    reply::error_page(StatusCode::METHOD_NOT_ALLOWED)
}

/// `handler` for `methods`, RestMQ's 405 page for every other method (HEAD included).
fn only<H, T>(methods: MethodFilter, handler: H) -> MethodRouter<AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    on(methods, handler)
        .head(method_not_allowed)
        .fallback(method_not_allowed)
}

/// RestMQ's routes at the root (and the collectd handlers, when `collectd`). Patterns
/// need their trailing slash (`/q` alone is the 404 page, from the main router's
/// fallback); `/favicon.ico` and `/robots.txt` are static paths without a file.
pub fn router(collectd: bool) -> Router<AppState> {
    let get_post = MethodFilter::GET.or(MethodFilter::POST);
    let q = || only(get_post.or(MethodFilter::DELETE), q::route);
    let router = Router::new()
        .route("/", only(get_post, root::route))
        .route("/q/", q())
        .route("/q/{*queue}", q())
        .route("/queue", only(get_post, command::route))
        .route("/p/", only(get_post, policy::route))
        .route("/p/{*queue}", only(get_post, policy::route))
        .route("/control/", only(get_post, control::route))
        .route("/control/{*queue}", only(get_post, control::route))
        .route("/stats/", only(MethodFilter::GET, stats::route))
        .route("/stats/{*queue}", only(MethodFilter::GET, stats::route))
        .route("/j/", only(MethodFilter::GET, jobs::route))
        .route("/j/{*queue}", only(MethodFilter::GET, jobs::route))
        .route("/c/", only(MethodFilter::GET, live::comet))
        .route("/c/{*queue}", only(MethodFilter::GET, live::comet))
        .route("/sse/", only(MethodFilter::GET, live::sse))
        .route("/sse/{*queue}", only(MethodFilter::GET, live::sse))
        .route("/ws/", only(MethodFilter::GET, live::websocket))
        .route("/ws/{*queue}", only(MethodFilter::GET, live::websocket));
    let router = ["/favicon.ico", "/robots.txt"]
        .into_iter()
        .fold(router, |r, path| {
            r.route(path, only(MethodFilter::GET, not_found))
        });
    if collectd {
        router
            .route("/collectd/", only(MethodFilter::POST, collectd::route))
            .route(
                "/collectd/{*name}",
                only(MethodFilter::POST, collectd::route),
            )
    } else {
        router
    }
}

/// RestMQ's 404 page: what a path no face serves answers.
pub async fn not_found() -> Response {
    reply::error_page(StatusCode::NOT_FOUND)
}
