//! The account API (`/api/session`, `/api/login`, `/api/register`,
//! `/api/logout`), called with the browser's `fetch` on the page's own origin.
//!
//! The session itself is the `hubbub_session` cookie: HttpOnly, so page code
//! never sees it; the browser sends it with these requests and with the `/ws`
//! upgrade. Bodies are read and written with the browser's own `JSON` (no
//! serde here) to keep the bundle small.

use js_sys::{Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{RequestInit, Response};

/// Who the browser is signed in as, from `GET /api/session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhoAmI {
    /// The account name; `None` when not signed in.
    pub user: Option<String>,
    /// Whether the server lets people chat as guests (`--guests on`).
    pub guests: bool,
}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// The server could not be reached (or answered something unreadable).
    Network,
    /// The server refused: its `error` code and `message` for humans.
    Refused { code: String, message: String },
}

impl ApiError {
    /// A sentence to show next to the form.
    pub fn message(&self) -> String {
        match self {
            ApiError::Network => {
                "Cannot reach the server. Check the connection and try again.".into()
            }
            ApiError::Refused { message, .. } => sentence(message),
        }
    }
}

/// `message` with a capital first letter and a full stop, as the UI shows
/// the server's sentences.
pub fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut out: String = chars
        .next()
        .map(|c| c.to_ascii_uppercase())
        .into_iter()
        .chain(chars)
        .collect();
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// `GET /api/session`.
pub async fn session() -> Result<WhoAmI, ApiError> {
    let (status, body) = request("GET", "/api/session", None).await?;
    if status != 200 {
        return Err(refusal(&body));
    }
    Ok(WhoAmI {
        user: field(&body, "user").as_string(),
        guests: field(&body, "guests").as_bool().unwrap_or(false),
    })
}

/// `POST /api/login`; the signed-in account name.
pub async fn login(name: &str, password: &str) -> Result<String, ApiError> {
    credentials("/api/login", name, password).await
}

/// `POST /api/register` (which also signs in); the new account's name.
pub async fn register(name: &str, password: &str) -> Result<String, ApiError> {
    credentials("/api/register", name, password).await
}

/// `POST /api/logout`: ends the session; the server closes its sockets.
pub async fn logout() -> Result<(), ApiError> {
    let (status, body) = request("POST", "/api/logout", None).await?;
    match status {
        200..=299 | 401 => Ok(()), // 401: the session had already ended
        _ => Err(refusal(&body)),
    }
}

async fn credentials(path: &str, name: &str, password: &str) -> Result<String, ApiError> {
    let body = Object::new();
    let _ = Reflect::set(&body, &"name".into(), &name.into());
    let _ = Reflect::set(&body, &"password".into(), &password.into());
    let body = JSON::stringify(&body).map_err(|_| ApiError::Network)?;
    let (status, answer) = request("POST", path, Some(body.into())).await?;
    if !(200..300).contains(&status) {
        return Err(refusal(&answer));
    }
    field(&answer, "user").as_string().ok_or(ApiError::Network)
}

/// `object[name]` (`undefined` when it has no such field).
pub fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &name.into()).unwrap_or(JsValue::UNDEFINED)
}

fn refusal(body: &JsValue) -> ApiError {
    match (
        field(body, "error").as_string(),
        field(body, "message").as_string(),
    ) {
        (Some(code), Some(message)) => ApiError::Refused { code, message },
        _ => ApiError::Network,
    }
}

/// One same-origin request with an optional JSON body; the status and the
/// parsed JSON answer (`undefined` for none).
async fn request(
    method: &str,
    path: &str,
    body: Option<String>,
) -> Result<(u16, JsValue), ApiError> {
    let window = web_sys::window().ok_or(ApiError::Network)?;
    let init = RequestInit::new();
    init.set_method(method);
    if let Some(body) = body {
        let headers = Object::new();
        let _ = Reflect::set(&headers, &"content-type".into(), &"application/json".into());
        init.set_headers(&headers);
        init.set_body(&body.into());
    }
    let response = JsFuture::from(window.fetch_with_str_and_init(path, &init))
        .await
        .map_err(|_| ApiError::Network)?;
    let response: Response = response.dyn_into().map_err(|_| ApiError::Network)?;
    let status = response.status();
    let json = match response.json() {
        Ok(promise) => JsFuture::from(promise).await.unwrap_or(JsValue::UNDEFINED),
        Err(_) => JsValue::UNDEFINED,
    };
    Ok((status, json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_messages_read_as_sentences() {
        assert_eq!(
            sentence("wrong name or password"),
            "Wrong name or password."
        );
        assert_eq!(sentence("that name is taken"), "That name is taken.");
        assert_eq!(sentence("Done!"), "Done!");
    }
}
