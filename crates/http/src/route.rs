//! A face's route table: one entry per operation (method, path template, handler). The
//! same table builds the face's router and is compared with its documentation, so a
//! route cannot be served without being documented, or documented without being served.

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{on, MethodFilter, MethodRouter};
use axum::Router;

use crate::AppState;

/// One operation: `method` on the path template `path`, served by `handler`.
pub(crate) struct Route {
    /// The HTTP method (read by the check against the document).
    #[cfg_attr(not(test), allow(dead_code))]
    pub method: Method,
    /// The axum path template, e.g. `/v1/queues/{queue}`.
    pub path: &'static str,
    /// The handler, with any per-route layers.
    pub handler: MethodRouter<AppState>,
}

impl Route {
    fn on<H, T>(method: Method, filter: MethodFilter, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Self {
            method,
            path,
            handler: on(filter, handler),
        }
    }

    /// `GET path`.
    pub fn get<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::on(Method::GET, MethodFilter::GET, path, handler)
    }

    /// `POST path`.
    pub fn post<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::on(Method::POST, MethodFilter::POST, path, handler)
    }

    /// `PUT path`.
    pub fn put<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::on(Method::PUT, MethodFilter::PUT, path, handler)
    }

    /// `DELETE path`.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(path: &'static str, handler: H) -> Self {
        Self::on(Method::DELETE, MethodFilter::DELETE, path, handler)
    }

    /// The same route with `f` applied to its handler (for a per-route layer).
    pub fn map(mut self, f: impl FnOnce(MethodRouter<AppState>) -> MethodRouter<AppState>) -> Self {
        self.handler = f(self.handler);
        self
    }
}

/// Builds a router from a table (entries on one path are merged into one method router).
pub(crate) fn build(table: Vec<Route>) -> Router<AppState> {
    table.into_iter().fold(Router::new(), |router, route| {
        router.route(route.path, route.handler)
    })
}

/// The `(method, path)` pairs of a table, in the OpenAPI spelling (`get`, `/v1/...`).
#[cfg(test)]
pub(crate) fn operations(table: &[Route]) -> std::collections::BTreeSet<(String, String)> {
    table
        .iter()
        .map(|r| (r.method.as_str().to_ascii_lowercase(), r.path.to_owned()))
        .collect()
}
