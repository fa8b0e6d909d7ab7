//! The web app bundle (trunk's output in `web/dist`), served at `/` as the
//! router's fallback, so one binary is the whole product.
//!
//! Release builds embed the bundle at compile time (rust-embed); debug builds
//! read `web/dist` from disk on each request, so a `trunk build` shows without
//! recompiling. A binary built before the bundle still runs: app paths answer
//! 503 with a page saying how to build it (`scripts/build-web.sh`).
//!
//! Each response gets:
//! - a content type from the file extension;
//! - `Content-Encoding: br` or `gzip` for compressible files when the client
//!   accepts it; each compressed variant is made once (off the async
//!   runtime) and kept, keyed by the file's content hash;
//! - caching: trunk's hashed names (`name-0123456789abcdef.ext`) are
//!   `immutable` for a year; `index.html` and other files are `no-cache`
//!   with an `ETag`, so a revisit costs a 304;
//! - security headers: a Content-Security-Policy that allows the wasm
//!   (`'wasm-unsafe-eval'`) and trunk's inline loader script (by its hash)
//!   and nothing else inline, `frame-ancestors 'none'`, `nosniff`.
//!
//! Paths whose last segment has no dot are app routes and get `index.html`;
//! other unknown paths, and anything under `/api/`, are 404.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

/// The bundle: embedded in release builds, read from disk in debug builds.
#[derive(rust_embed::Embed)]
#[folder = "../web/dist/"]
#[allow_missing = true]
struct Bundle;

/// Files smaller than this are sent as they are.
const MIN_COMPRESS_BYTES: usize = 1024;
/// Cache lifetime of hashed (content-addressed) files: one year.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Most compressed variants kept; only a debug build with a changing bundle
/// can reach it, and then the cache starts over.
const MAX_CACHED_VARIANTS: usize = 64;

/// A content encoding the server can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn header(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn compress(self, data: &[u8]) -> Vec<u8> {
        // Debug builds run unoptimized compressors: keep them quick there.
        let release = !cfg!(debug_assertions);
        match self {
            Encoding::Brotli => {
                let quality = if release { 11 } else { 4 };
                let mut out = Vec::with_capacity(data.len() / 3);
                {
                    let mut writer =
                        brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
                    writer
                        .write_all(data)
                        .expect("writing to a Vec cannot fail");
                }
                out
            }
            Encoding::Gzip => {
                let level = if release { 9 } else { 4 };
                let mut encoder = flate2::write::GzEncoder::new(
                    Vec::with_capacity(data.len() / 3),
                    flate2::Compression::new(level),
                );
                encoder
                    .write_all(data)
                    .expect("writing to a Vec cannot fail");
                encoder.finish().expect("writing to a Vec cannot fail")
            }
        }
    }
}

/// Compressed variants made so far, by content hash and encoding.
type Variants = Mutex<HashMap<([u8; 32], Encoding), Arc<[u8]>>>;

fn variants() -> &'static Variants {
    static VARIANTS: OnceLock<Variants> = OnceLock::new();
    VARIANTS.get_or_init(Default::default)
}

/// Serves a file of the web bundle (the router's fallback).
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") || !is_safe(path) {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    }
    let is_route = !path.rsplit('/').next().unwrap_or_default().contains('.');
    let (name, file) = match Bundle::get(path).filter(|_| !path.is_empty()) {
        Some(file) => (path, file),
        None if is_route => match Bundle::get("index.html") {
            Some(file) => ("index.html", file),
            None => return not_built(&headers),
        },
        None => return plain(StatusCode::NOT_FOUND, "not found\n"),
    };
    // For HEAD, hyper sends the headers (with the real length) and drops
    // the body.
    send_file(name, file, &headers).await
}

/// No `..`, no backslashes, no empty segments: only names trunk writes.
fn is_safe(path: &str) -> bool {
    path.is_empty()
        || path
            .split('/')
            .all(|seg| !seg.is_empty() && seg != ".." && seg != "." && !seg.contains('\\'))
}

async fn send_file(name: &str, file: rust_embed::EmbeddedFile, headers: &HeaderMap) -> Response {
    let hash = file.metadata.sha256_hash();
    let content_type = content_type(name);
    let is_html = content_type.starts_with("text/html");
    let compressible = is_compressible(content_type) && file.data.len() >= MIN_COMPRESS_BYTES;
    let encoding = if compressible {
        preferred_encoding(headers)
    } else {
        None
    };
    let tag = etag(&hash, encoding);

    let mut response = if if_none_match(headers, &hash) {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let body = match encoding {
            Some(encoding) => Body::from(compressed(hash, encoding, file.data).await.to_vec()),
            None => match file.data {
                Cow::Borrowed(bytes) => Body::from(bytes),
                Cow::Owned(bytes) => Body::from(bytes),
            },
        };
        Response::new(body)
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Some(encoding) = encoding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(encoding.header()),
        );
    }
    if compressible {
        h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    }
    if let Ok(tag) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, tag);
    }
    let cache = if is_hashed_name(name) {
        IMMUTABLE
    } else {
        "no-cache"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    security_headers(h);
    if is_html {
        if let Ok(csp) = HeaderValue::from_str(&content_security_policy(
            &inline_script_hashes(hash, &file_text(name)),
            headers,
        )) {
            h.insert(header::CONTENT_SECURITY_POLICY, csp);
        }
    }
    response
}

/// The text of `name` (for hashing the inline scripts of index.html).
fn file_text(name: &str) -> String {
    Bundle::get(name)
        .map(|f| String::from_utf8_lossy(&f.data).into_owned())
        .unwrap_or_default()
}

/// The `encoding` variant of a file, made on first use off the async runtime.
async fn compressed(hash: [u8; 32], encoding: Encoding, data: Cow<'static, [u8]>) -> Arc<[u8]> {
    if let Some(done) = variants().lock().get(&(hash, encoding)) {
        return Arc::clone(done);
    }
    let made: Arc<[u8]> = tokio::task::spawn_blocking(move || encoding.compress(&data).into())
        .await
        .expect("compressing does not panic");
    let mut cache = variants().lock();
    if cache.len() >= MAX_CACHED_VARIANTS {
        cache.clear();
    }
    cache.insert((hash, encoding), Arc::clone(&made));
    made
}

/// The best encoding the client accepts: br, then gzip.
fn preferred_encoding(headers: &HeaderMap) -> Option<Encoding> {
    let accept = headers.get(header::ACCEPT_ENCODING)?.to_str().ok()?;
    let accepts = |wanted: &str| {
        accept.split(',').any(|item| {
            let mut parts = item.split(';');
            let name = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            name.eq_ignore_ascii_case(wanted) && !refused
        })
    };
    if accepts("br") {
        Some(Encoding::Brotli)
    } else if accepts("gzip") {
        Some(Encoding::Gzip)
    } else {
        None
    }
}

fn etag(hash: &[u8; 32], encoding: Option<Encoding>) -> String {
    let hex: String = hash[..12].iter().map(|b| format!("{b:02x}")).collect();
    match encoding {
        Some(encoding) => format!("\"{hex}-{}\"", encoding.header()),
        None => format!("\"{hex}\""),
    }
}

/// Whether `If-None-Match` names any variant of the file with `hash`.
fn if_none_match(headers: &HeaderMap, hash: &[u8; 32]) -> bool {
    let Some(value) = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let ours = etag(hash, None);
    let ours = ours.trim_matches('"');
    value.split(',').any(|tag| {
        let tag = tag.trim().trim_start_matches("W/").trim_matches('"');
        tag == "*" || tag == ours || tag.strip_prefix(ours).is_some_and(|r| r.starts_with('-'))
    })
}

/// trunk's content-hashed names: `stem-<16 hex digits>.ext` (or `_bg.wasm`).
fn is_hashed_name(name: &str) -> bool {
    let file = name.rsplit('/').next().unwrap_or(name);
    let Some((stem, _ext)) = file.split_once('.') else {
        return false;
    };
    let Some((_, hash)) = stem.rsplit_once('-') else {
        return false;
    };
    // wasm-bindgen's module is `stem-<hash>_bg.wasm`.
    let hash = hash.strip_suffix("_bg").unwrap_or(hash);
    (12..=16).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

fn content_type(name: &str) -> &'static str {
    let ext = name.rsplit('.').next().unwrap_or_default();
    match ext.to_ascii_lowercase().as_str() {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn is_compressible(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || matches!(
            content_type,
            "application/wasm" | "application/json" | "application/manifest+json" | "image/svg+xml"
        )
}

/// `'sha256-…'` sources for each inline `<script>` of an HTML page, computed
/// once per page content.
fn inline_script_hashes(page_hash: [u8; 32], html: &str) -> Vec<String> {
    /// The last page's content hash and its script sources.
    type Memo = Mutex<Option<([u8; 32], Vec<String>)>>;
    static HASHES: OnceLock<Memo> = OnceLock::new();
    let cell = HASHES.get_or_init(Default::default);
    if let Some((hash, sources)) = &*cell.lock() {
        if *hash == page_hash {
            return sources.clone();
        }
    }
    let sources = hash_inline_scripts(html);
    *cell.lock() = Some((page_hash, sources.clone()));
    sources
}

fn hash_inline_scripts(html: &str) -> Vec<String> {
    let mut sources = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        rest = &rest[start + "<script".len()..];
        let Some(tag_end) = rest.find('>') else {
            break;
        };
        let attributes = &rest[..tag_end];
        rest = &rest[tag_end + 1..];
        let Some(close) = rest.find("</script") else {
            break;
        };
        let body = &rest[..close];
        rest = &rest[close..];
        if attributes.contains("src=") {
            continue;
        }
        let digest = Sha256::digest(body.as_bytes());
        sources.push(format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        ));
    }
    sources
}

/// The policy for HTML pages: own origin only, wasm allowed, no framing.
fn content_security_policy(script_hashes: &[String], request: &HeaderMap) -> String {
    // 'self' covers same-origin WebSockets in current browsers; naming the
    // host as ws:/wss: too keeps older ones working.
    let sockets = request
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            !h.is_empty()
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        })
        .map(|host| format!(" ws://{host} wss://{host}"))
        .unwrap_or_default();
    let scripts = script_hashes.join(" ");
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval' {scripts}; \
         style-src 'self'; img-src 'self' data:; connect-src 'self'{sockets}; \
         object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut response = (status, text).into_response();
    security_headers(response.headers_mut());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// 503: this binary was built without the web app.
fn not_built(request: &HeaderMap) -> Response {
    const PAGE: &str = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>hubbub: web app not built</title></head>\
<body><main><h1>The web app is not built into this binary</h1>\
<p>The chat server is running (WebSocket at <code>/ws</code>), but the web app \
bundle was missing when this binary was compiled.</p>\
<p>Build it, then the server, from the repository root:</p>\
<pre>scripts/setup.sh\nscripts/build-web.sh\ncargo build --release -p hubbub</pre>\
<p>or just run <code>scripts/run.sh</code>, which does all three.</p></main></body></html>\n";
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, PAGE).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    security_headers(h);
    if let Ok(csp) = HeaderValue::from_str(&content_security_policy(&[], request)) {
        h.insert(header::CONTENT_SECURITY_POLICY, csp);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        h
    }

    #[test]
    fn picks_brotli_then_gzip_and_honours_q_zero() {
        let pick = |v| preferred_encoding(&headers(&[("accept-encoding", v)]));
        assert_eq!(pick("gzip, deflate, br, zstd"), Some(Encoding::Brotli));
        assert_eq!(pick("gzip, deflate"), Some(Encoding::Gzip));
        assert_eq!(pick("br;q=0, gzip"), Some(Encoding::Gzip));
        assert_eq!(pick("identity"), None);
        assert_eq!(preferred_encoding(&HeaderMap::new()), None);
    }

    #[test]
    fn compression_round_trips() {
        let data = b"hubbub ".repeat(500);
        let gz = Encoding::Gzip.compress(&data);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut back).unwrap();
        assert_eq!(back, data);
        let br = Encoding::Brotli.compress(&data);
        let mut back = Vec::new();
        std::io::Read::read_to_end(&mut brotli::Decompressor::new(&br[..], 4096), &mut back)
            .unwrap();
        assert_eq!(back, data);
        assert!(br.len() < data.len() / 10);
    }

    #[test]
    fn hashed_names_are_trunks() {
        assert!(is_hashed_name("hubbub-web-0123456789abcdef.js"));
        assert!(is_hashed_name("hubbub-web-0123456789abcdef_bg.wasm"));
        assert!(is_hashed_name("app-fedcba9876543210.css"));
        assert!(!is_hashed_name("index.html"));
        assert!(!is_hashed_name("favicon.svg"));
        assert!(!is_hashed_name("my-app.js"));
    }

    #[test]
    fn unsafe_paths_are_refused() {
        assert!(is_safe(""));
        assert!(is_safe("index.html"));
        assert!(is_safe("rooms/lobby"));
        assert!(!is_safe("../etc/passwd"));
        assert!(!is_safe("a//b"));
        assert!(!is_safe("a\\b"));
    }

    #[test]
    fn inline_scripts_are_hashed_and_external_ones_skipped() {
        let html = "<script src=\"/x.js\"></script><script type=\"module\">alert(1)</script>";
        let digest = Sha256::digest(b"alert(1)");
        let expected = format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        );
        assert_eq!(hash_inline_scripts(html), vec![expected]);
    }

    #[test]
    fn etags_match_across_encodings() {
        let hash = [7u8; 32];
        let gz = etag(&hash, Some(Encoding::Gzip));
        let h = |v: &str| {
            let mut m = HeaderMap::new();
            m.insert(header::IF_NONE_MATCH, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(if_none_match(&h(&gz), &hash));
        assert!(if_none_match(&h(&format!("W/{gz}")), &hash));
        assert!(!if_none_match(&h("\"other\""), &hash));
    }

    #[test]
    fn policy_allows_wasm_and_forbids_framing() {
        let csp = content_security_policy(
            &["'sha256-abc'".into()],
            &headers(&[("host", "127.0.0.1:8080")]),
        );
        assert!(csp.contains("'wasm-unsafe-eval'"));
        assert!(csp.contains("'sha256-abc'"));
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("ws://127.0.0.1:8080"));
        let evil = content_security_policy(&[], &headers(&[("host", "x; script-src *")]));
        assert!(!evil.contains("script-src *"));
    }
}
