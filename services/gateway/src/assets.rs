//! The web UI, embedded in the binary from `web/dist` (built by `npm run build` in `web/`).
//!
//! `build.rs` points `PFC_WEB_DIST` at `web/dist` when it holds an `index.html`, and at
//! `services/gateway/fallback/` (a page saying how to build the UI) otherwise, so the gateway
//! always compiles, even from a checkout without the built UI.
//!
//! Path rule ([`resolve`]): an existing file is served as is; a directory with an `index.html`
//! serves that; a path whose last segment looks like a file name (has an extension) and does not
//! exist is a 404; anything else is a client-side route and gets the UI's `index.html`.

use axum::http::{header, Method, StatusCode, Uri};
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
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return Resolved::NotFound;
    }
    if exists("index.html") {
        Resolved::File("index.html".into())
    } else {
        Resolved::NotFound
    }
}

/// Content-Security-Policy of the UI and docs pages: everything from this origin only, no
/// inline scripts (styles may be inline: the UI sets widths, Swagger UI injects styles).
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'self'; \
    frame-ancestors 'none'; form-action 'self'";

/// Fallback handler: serves the UI to `GET`/`HEAD`; any other method on an unknown path (a
/// POST to a gRPC service that does not exist, say) is a JSON 404.
pub async fn serve(method: Method, uri: Uri) -> Response {
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
            None => StatusCode::NOT_FOUND.into_response(),
        },
        Resolved::NotFound => (StatusCode::NOT_FOUND, "not found").into_response(),
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

    /// Files are served, directories serve their index, file-like misses are 404s and every
    /// other path is a client-side route that gets index.html.
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
        assert_eq!(resolve("/stats", files), f("index.html"));
        assert_eq!(resolve("/jobs-view/123", files), f("index.html"));
        assert_eq!(resolve("/../etc/passwd", files), Resolved::NotFound);
        assert_eq!(resolve("/x", |_| false), Resolved::NotFound);
    }

    /// Some UI is always embedded: the built one, or the fallback page.
    #[test]
    fn an_index_is_embedded() {
        assert!(Assets::get("index.html").is_some());
    }
}
