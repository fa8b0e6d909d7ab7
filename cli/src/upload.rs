//! Sending a file: `POST /api/files?name=NAME` to the server the client is
//! connected to (docs/protocol.md, "Files"), the file streamed from disk
//! in chunks with its `Content-Length` (so the server can refuse an
//! oversized file before a byte is sent), over hyper's HTTP/1.1 client.
//!
//! The server's answer is the upload (an [`Attachment`]) or a JSON error,
//! shown as its sentence and stable code (`file_too_large`, ...). What to
//! do with the upload (a `send` through the pending ledger, to a room or a
//! private conversation) is the app's business: this module only moves
//! bytes.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{future, stream, StreamExt, TryStreamExt};
use http_body_util::{BodyExt, Limited, StreamBody};
use hubbub_client::url_component;
use hubbub_protocol::Attachment;
use hyper::body::Frame;
use hyper::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, EXPECT, HOST};
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::io::ReaderStream;

/// How long connecting to the server may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the body waits for `100 Continue` before going anyway.
const CONTINUE_WAIT: Duration = Duration::from_secs(1);
/// Bytes read from the file per chunk of the body.
const CHUNK: usize = 64 * 1024;
/// Largest answer read: an upload's JSON or an error's.
const MAX_ANSWER: usize = 64 * 1024;

/// One `/upload`: the file, where its message goes, and with what caption.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadJob {
    /// The file, `~/` resolved.
    pub path: PathBuf,
    /// The room its message is said in (a private conversation's, for
    /// `/upload @USER`).
    pub room: String,
    /// The message's text; may be empty.
    pub caption: String,
    /// What authorizes the upload: `Authorization: Bearer` (a guest's
    /// upload token from its `welcome`).
    pub token: Option<String>,
}

/// The HTTP origin of the server at WebSocket URL `ws_url`: `ws://h:p/ws`
/// becomes `http://h:p`, `wss://` becomes `https://`.
pub fn http_base(ws_url: &str) -> Result<String, String> {
    let uri: Uri = ws_url
        .parse()
        .map_err(|err| format!("{ws_url:?} is not a URL: {err}"))?;
    let scheme = match uri.scheme_str() {
        Some("ws") | Some("http") => "http",
        Some("wss") | Some("https") => "https",
        _ => return Err(format!("{ws_url:?} is not a ws:// or wss:// URL")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{ws_url:?} names no server"))?;
    Ok(format!("{scheme}://{authority}"))
}

/// A typed path with a leading `~/` taken as the home directory.
pub fn local_path(typed: &str) -> PathBuf {
    match (typed.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(typed),
    }
}

/// Uploads the file at `path` to the server at `base` (an HTTP origin,
/// see [`http_base`]), authorized by `token`. The error is a sentence for
/// the user.
pub async fn upload(base: &str, token: Option<&str>, path: &Path) -> Result<Attachment, String> {
    let shown = path.display();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| format!("{shown} names no file"))?;
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|err| format!("cannot read {shown}: {err}"))?;
    let meta = file
        .metadata()
        .await
        .map_err(|err| format!("cannot read {shown}: {err}"))?;
    if !meta.is_file() {
        return Err(format!("{shown} is not a file"));
    }

    let uri: Uri = format!("{base}/api/files?name={}", url_component(&name))
        .parse()
        .map_err(|err| format!("bad server address {base:?}: {err}"))?;
    if uri.scheme_str() != Some("http") {
        return Err("hubbub-chat speaks plain http only (no TLS); use the web app".into());
    }
    let authority = uri.authority().expect("built with one").clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(80);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await
    {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(format!("cannot reach {base}: {err}")),
        Err(_) => return Err(format!("cannot reach {base}: timed out")),
    };
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|err| format!("cannot talk to {base}: {err}"))?;
    let connection = tokio::spawn(connection);

    // The body starts once the server says go (or after CONTINUE_WAIT).
    let go = Arc::new(Notify::new());
    let wait = {
        let go = Arc::clone(&go);
        async move {
            let _ = tokio::time::timeout(CONTINUE_WAIT, go.notified()).await;
        }
    };
    let chunks = stream::once(wait)
        .filter_map(|()| future::ready(None))
        .chain(ReaderStream::with_capacity(file, CHUNK));
    let body = StreamBody::new(chunks.map_ok(Frame::<Bytes>::data));
    let mut request = Request::post(uri.path_and_query().expect("built with one").as_str())
        .header(HOST, authority.as_str())
        .header(CONTENT_LENGTH, meta.len())
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(EXPECT, "100-continue");
    if let Some(token) = token {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request
        .body(body)
        .map_err(|err| format!("cannot make the request: {err}"))?;
    hyper::ext::on_informational(&mut request, move |response| {
        if response.status() == StatusCode::CONTINUE {
            go.notify_one();
        }
    });
    let response = sender
        .send_request(request)
        .await
        .map_err(|err| format!("upload failed: {err}"));
    let result = match response {
        Ok(response) => {
            let status = response.status();
            let answer = Limited::new(response.into_body(), MAX_ANSWER)
                .collect()
                .await
                .map(|body| body.to_bytes())
                .map_err(|err| format!("upload failed: {err}"));
            answer.and_then(|answer| read_answer(status, &answer))
        }
        Err(err) => Err(err),
    };
    connection.abort();
    result
}

/// The upload the server's answer describes, or its refusal as a sentence:
/// `the file is larger than 1000 bytes (file_too_large)`.
fn read_answer(status: StatusCode, answer: &[u8]) -> Result<Attachment, String> {
    if status.is_success() {
        return serde_json::from_slice(answer)
            .map_err(|err| format!("the server's answer is not an upload: {err}"));
    }
    let refusal: Option<serde_json::Value> = serde_json::from_slice(answer).ok();
    let field = |key| {
        refusal
            .as_ref()
            .and_then(|r| r.get(key))
            .and_then(|v| v.as_str())
            .filter(|v| !v.is_empty())
    };
    match (field("error"), field("message")) {
        (Some(code), Some(message)) => Err(format!("{message} ({code})")),
        (Some(code), None) => Err(format!("refused ({code})")),
        _ => Err(format!("refused: HTTP {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_origin_comes_from_the_websocket_url() {
        assert_eq!(
            http_base("ws://127.0.0.1:8080/ws").as_deref(),
            Ok("http://127.0.0.1:8080")
        );
        assert_eq!(
            http_base("wss://chat.example/ws?x=1").as_deref(),
            Ok("https://chat.example")
        );
        assert_eq!(
            http_base("ws://[::1]:9000/ws").as_deref(),
            Ok("http://[::1]:9000")
        );
        assert!(http_base("ftp://x/").is_err());
        assert!(http_base("/ws").is_err());
    }

    #[test]
    fn refusals_read_as_their_sentence_and_code() {
        let refused = read_answer(
            StatusCode::PAYLOAD_TOO_LARGE,
            br#"{"error":"file_too_large","message":"the file is larger than 10 bytes"}"#,
        );
        assert_eq!(
            refused,
            Err("the file is larger than 10 bytes (file_too_large)".into())
        );
        assert_eq!(
            read_answer(StatusCode::BAD_GATEWAY, b"<html>"),
            Err("refused: HTTP 502 Bad Gateway".into())
        );
        let ok = read_answer(
            StatusCode::CREATED,
            br#"{"id":"a1","name":"x.bin","size":3,"mime":"application/octet-stream","url":"/api/files/a1"}"#,
        )
        .unwrap();
        assert_eq!((ok.id.as_str(), ok.size), ("a1", 3));
    }

    #[test]
    fn a_home_path_is_expanded() {
        if let Some(home) = std::env::var_os("HOME") {
            assert_eq!(local_path("~/a.txt"), Path::new(&home).join("a.txt"));
        }
        assert_eq!(local_path("./a.txt"), PathBuf::from("./a.txt"));
    }
}
