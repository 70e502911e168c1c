//! The live web dashboard and RestMQ's static pages: `GET /ui` (the dashboard),
//! `GET /static/index.html` (the same page, where RestMQ's own dashboard lived),
//! `GET /static/help.html` (RestMQ's JSON-command form) and the page's CSS and script
//! under `/static/`.
//!
//! The files are plain HTML, CSS and JavaScript in `src/ui/assets/`, embedded in the
//! binary at build time (rust-embed), so the server needs no files beside it. The page
//! talks to the native API only: it draws from `GET /v1/stats/events` and pushes, takes,
//! peeks and pauses with the `/v1` routes. Nothing here calls the broker.
//!
//! A missing file and a method other than GET answer RestMQ's HTML error pages (404 and
//! 405), as the RestMQ dialect's other routes do.

use std::borrow::Cow;

use axum::extract::Path;
use axum::http::header::{ALLOW, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use rust_embed::RustEmbed;

/// The dashboard's files, embedded at build time.
#[derive(RustEmbed)]
#[folder = "src/ui/assets/"]
struct Assets;

/// The type of an HTML page, RestMQ's default content type.
const HTML: &str = "text/html; charset=UTF-8";

/// RestMQ's 404 page.
const NOT_FOUND_PAGE: &str =
    "<html><title>404: Not Found</title><body>404: Not Found</body></html>";
/// RestMQ's 405 page.
const METHOD_NOT_ALLOWED_PAGE: &str =
    "<html><title>405: Method Not Allowed</title><body>405: Method Not Allowed</body></html>";

/// The content type of an asset, by its file name's extension.
fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => HTML,
        Some("css") => "text/css; charset=UTF-8",
        Some("js") => "text/javascript; charset=UTF-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// An embedded file by its path under `/static/` (`index.html`, `help.html`, …): its
/// content type and bytes, or `None` when there is no such file.
pub fn asset(path: &str) -> Option<(&'static str, Cow<'static, [u8]>)> {
    Assets::get(path).map(|file| (content_type(path), file.data))
}

/// The dashboard's routes: `/ui` and `/static/…`, every method answered (GET serves,
/// the others get the 405 page). The pages need no state: they call the API from the
/// browser.
pub(crate) fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/ui", any(dashboard))
        .route("/static/", any(missing))
        .route("/static/{*path}", any(file))
}

/// `/ui`: the dashboard page.
async fn dashboard(method: Method) -> Response {
    serve(&method, "index.html")
}

/// `/static/{*path}`: one embedded file.
async fn file(method: Method, Path(path): Path<String>) -> Response {
    serve(&method, &path)
}

/// `/static/` itself names no file.
async fn missing(method: Method) -> Response {
    serve(&method, "")
}

fn serve(method: &Method, path: &str) -> Response {
    if method != Method::GET {
        return page(
            StatusCode::METHOD_NOT_ALLOWED,
            METHOD_NOT_ALLOWED_PAGE,
            true,
        );
    }
    match asset(path) {
        Some((content_type, bytes)) => (
            [(CONTENT_TYPE, content_type), (CACHE_CONTROL, "no-cache")],
            bytes,
        )
            .into_response(),
        None => page(StatusCode::NOT_FOUND, NOT_FOUND_PAGE, false),
    }
}

/// One of RestMQ's error pages.
fn page(status: StatusCode, body: &'static str, allow_get: bool) -> Response {
    let mut response = (status, [(CONTENT_TYPE, HTML)], body).into_response();
    if allow_get {
        response
            .headers_mut()
            .insert(ALLOW, axum::http::HeaderValue::from_static("GET"));
    }
    response
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt as _;

    use super::*;

    async fn call(method: Method, uri: &str) -> (StatusCode, String, String) {
        let router: Router = router();
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let resp = router.oneshot(req).await.unwrap();
        let status = resp.status();
        let content_type = resp.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        (
            status,
            content_type,
            String::from_utf8(bytes.to_vec()).unwrap(),
        )
    }

    #[tokio::test]
    async fn ui_and_static_index_are_the_same_page() {
        let (status, content_type, ui) = call(Method::GET, "/ui").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type, HTML);
        assert!(ui.contains("/v1/stats/events") || ui.contains("dashboard.js"));
        let (_, _, index) = call(Method::GET, "/static/index.html").await;
        assert_eq!(ui, index);
    }

    #[tokio::test]
    async fn assets_have_their_content_types() {
        for (path, want) in [
            ("/static/dashboard.css", "text/css; charset=UTF-8"),
            ("/static/dashboard.js", "text/javascript; charset=UTF-8"),
            ("/static/help.html", HTML),
        ] {
            let (status, content_type, body) = call(Method::GET, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(content_type, want, "{path}");
            assert!(!body.is_empty(), "{path}");
        }
        assert!(asset("index.html").is_some());
        assert!(asset("nope.html").is_none());
    }

    #[tokio::test]
    async fn missing_files_and_other_methods_get_restmq_pages() {
        for path in ["/static/nope.css", "/static/", "/static/a/../index.htm"] {
            let (status, content_type, body) = call(Method::GET, path).await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(content_type, HTML);
            assert_eq!(body, NOT_FOUND_PAGE);
        }
        for method in [Method::POST, Method::PUT, Method::DELETE] {
            let (status, content_type, body) = call(method, "/static/help.html").await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert_eq!(content_type, HTML);
            assert_eq!(body, METHOD_NOT_ALLOWED_PAGE);
        }
    }
}
