//! The web UI, embedded in the binary from `web/dist` (built by `npm run build` in `web/`).
//!
//! `build.rs` points `PFC_WEB_DIST` at `web/dist` when it holds an `index.html`, and at
//! `services/gateway/fallback/` (a page saying how to build the UI) otherwise, so the gateway
//! always compiles, even from a checkout without the built UI.
//!
//! Path rule ([`resolve`]): an existing file is served as is; a directory with an `index.html`
//! serves that (`/` is the UI, `/docs` the API docs); anything else is a 404. The UI routes with
//! the URL fragment (`/#/jobs/{id}`), which never reaches the server, so no other path is a UI
//! page, and a 404 tells a mistyped link or a client probing for files the truth instead of
//! answering 200 with the UI. Browsers (`Accept: text/html`) get a small HTML page with a link
//! to the UI; everyone else the usual JSON error body.

use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

/// The built UI.
#[derive(RustEmbed)]
#[folder = "$PFC_WEB_DIST"]
pub struct Assets;

/// What a request path resolves to.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// This embedded file.
    File(String),
    /// Nothing (404).
    NotFound,
}

/// Resolves a request path against the set of embedded files (`exists`).
pub fn resolve(path: &str, exists: impl Fn(&str) -> bool) -> Resolved {
    let path = path.trim_start_matches('/');
    if path.split('/').any(|seg| seg == "..") {
        return Resolved::NotFound;
    }
    if !path.is_empty() && exists(path) {
        return Resolved::File(path.to_string());
    }
    let dir_index = if path.is_empty() {
        "index.html".to_string()
    } else {
        format!("{}/index.html", path.trim_end_matches('/'))
    };
    if exists(&dir_index) {
        return Resolved::File(dir_index);
    }
    Resolved::NotFound
}

/// Content-Security-Policy of the UI and docs pages: everything from this origin only, no
/// inline scripts (styles may be inline: the UI sets widths, Swagger UI injects styles).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
    frame-ancestors 'none'; form-action 'self'";

/// The 404 page for browsers. It names no path: nothing from the request is echoed.
const NOT_FOUND_HTML: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
    <title>Not found - pfc</title></head><body><h1>Not found</h1>\
    <p>There is no page at this address. The pfc UI is at <a href=\"/\">/</a>, the API docs at \
    <a href=\"/docs\">/docs</a>.</p></body></html>\n";

/// The 404 answer: the HTML page when the client prefers HTML (a browser navigating), else the
/// JSON error body every API route uses.
fn not_found(headers: &HeaderMap) -> Response {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if !wants_html {
        return crate::ApiError::NotFound("no such route".into()).into_response();
    }
    (
        StatusCode::NOT_FOUND,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        NOT_FOUND_HTML,
    )
        .into_response()
}

/// Fallback handler: serves the UI's files to `GET`/`HEAD`; any other path, or any other
/// method on an unknown path (a POST to a gRPC service that does not exist, say), is a 404.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return crate::ApiError::NotFound("no such route".into()).into_response();
    }
    match resolve(uri.path(), |p| Assets::get(p).is_some()) {
        Resolved::File(name) => match Assets::get(&name) {
            Some(file) => {
                let mime = mime_guess::from_path(&name).first_or_octet_stream();
                // Vite fingerprints everything under assets/, so those never change.
                let cache = if name.starts_with("assets/") {
                    "public, max-age=31536000, immutable"
                } else {
                    "no-cache"
                };
                (
                    [
                        (header::CONTENT_TYPE, mime.as_ref().to_string()),
                        (header::CACHE_CONTROL, cache.to_string()),
                        (header::CONTENT_SECURITY_POLICY, CSP.to_string()),
                        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_string()),
                        (header::REFERRER_POLICY, "no-referrer".to_string()),
                        (header::X_FRAME_OPTIONS, "DENY".to_string()),
                    ],
                    file.data,
                )
                    .into_response()
            }
            None => not_found(&headers),
        },
        Resolved::NotFound => not_found(&headers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(p: &str) -> bool {
        [
            "index.html",
            "assets/app-1234.js",
            "docs/index.html",
            "favicon.svg",
        ]
        .contains(&p)
    }

    /// Files are served, directories serve their index, and every other path is a 404: the UI
    /// routes by `#` fragment, so no other path is one of its pages.
    #[test]
    fn path_rule() {
        let f = |s: &str| Resolved::File(s.into());
        assert_eq!(resolve("/", files), f("index.html"));
        assert_eq!(
            resolve("/assets/app-1234.js", files),
            f("assets/app-1234.js")
        );
        assert_eq!(resolve("/favicon.svg", files), f("favicon.svg"));
        assert_eq!(resolve("/docs", files), f("docs/index.html"));
        assert_eq!(resolve("/docs/", files), f("docs/index.html"));
        assert_eq!(resolve("/assets/missing.js", files), Resolved::NotFound);
        assert_eq!(resolve("/robots.txt", files), Resolved::NotFound);
        assert_eq!(resolve("/index.html", files), f("index.html"));
        assert_eq!(resolve("/docs/index.html", files), f("docs/index.html"));
        assert_eq!(resolve("/stats", files), Resolved::NotFound);
        assert_eq!(resolve("/no/such/route", files), Resolved::NotFound);
        assert_eq!(resolve("/jobs-view/123", files), Resolved::NotFound);
        assert_eq!(resolve("/assets", files), Resolved::NotFound);
        assert_eq!(resolve("/../etc/passwd", files), Resolved::NotFound);
        assert_eq!(resolve("/x", |_| false), Resolved::NotFound);
        assert_eq!(resolve("/", |_| false), Resolved::NotFound);
    }

    /// Some UI is always embedded: the built one, or the fallback page.
    #[test]
    fn an_index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }
}
