//! Accounts and sessions, and who a WebSocket upgrade is.
//!
//! - `POST /api/register` `{"name","password"}` → 201, a session.
//! - `POST /api/login` `{"name","password"}` → 200, a session.
//! - `POST /api/logout` → 204; the session ends and its sockets close (4501).
//! - `GET /api/session` → who the caller is, and whether guests may chat.
//!
//! A session is a random 256-bit token, given to the browser as an
//! `HttpOnly; SameSite=Lax` cookie and to programs in the JSON body (they
//! send it as `Authorization: Bearer`). Only its SHA-256 is stored.
//! Passwords are hashed with argon2id. Login and registration are throttled
//! per client address; a failed login says nothing about which half was wrong.
//!
//! Every error of the API is JSON, `{"error": code, "message": text}`
//! ([`ApiError`]): bad bodies, too large or too slow ones ([`ApiJson`]),
//! unknown `/api` paths and wrong methods included.
//!
//! Every browser-reachable entry point (the API and `/ws`) checks `Origin`
//! against the server's own origin and `--allowed-origin`, which stops
//! cross-site WebSocket hijacking; requests without `Origin` (not from a
//! browser) pass.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, JsonRejection};
use axum::extract::{ConnectInfo, FromRef, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use base64::Engine as _;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hubbub_protocol::names;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::http::BodyError;
use crate::hub::Hub;
use crate::registry::Account;
use crate::store::{StoreError, UserRecord};
use crate::timers::now_ms;
use crate::PeerAddr;

/// The session cookie's name.
pub const COOKIE: &str = "hubbub_session";
/// Shortest and longest password accepted, in characters.
pub const PASSWORD_CHARS: std::ops::RangeInclusive<usize> = 8..=256;
/// Login and registration attempts per minute per client address.
pub const AUTH_ATTEMPTS_PER_MINUTE: u32 = 10;
/// Largest request body the HTTP API reads.
pub const API_BODY_LIMIT: usize = 16 * 1024;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub hub: Arc<Hub>,
    /// Throttles login and registration per client address.
    pub throttle: Arc<DefaultKeyedRateLimiter<IpAddr>>,
}

impl AppState {
    pub fn new(hub: Arc<Hub>) -> AppState {
        let per_minute = NonZeroU32::new(AUTH_ATTEMPTS_PER_MINUTE).expect("non-zero");
        AppState {
            hub,
            throttle: Arc::new(RateLimiter::keyed(Quota::per_minute(per_minute))),
        }
    }
}

impl FromRef<AppState> for Arc<Hub> {
    fn from_ref(state: &AppState) -> Arc<Hub> {
        Arc::clone(&state.hub)
    }
}

/// The account routes; any other `/api` path is a JSON 404, and a wrong
/// method a JSON 405.
pub fn routes() -> Router<AppState> {
    let post_only = || async { ApiError::MethodNotAllowed("POST") };
    Router::new()
        .route("/api/register", post(register).fallback(post_only))
        .route("/api/login", post(login).fallback(post_only))
        .route("/api/logout", post(logout).fallback(post_only))
        .route(
            "/api/session",
            get(session).fallback(|| async { ApiError::MethodNotAllowed("GET, HEAD") }),
        )
        .route("/api", any(|| async { ApiError::NotFound }))
        .route("/api/{*rest}", any(|| async { ApiError::NotFound }))
}

/// A JSON request body of the API, of at most [`API_BODY_LIMIT`] bytes.
/// Unlike axum's `Json`, every way it can be refused is an [`ApiError`];
/// a body declared too large is refused before a byte of it is read.
pub struct ApiJson<T>(pub T);

impl<T, S> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > API_BODY_LIMIT as u64) {
            tracing::info!(declared, "API request refused: body too large");
            return Err(ApiError::BodyTooLarge);
        }
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(ApiJson(value)),
            Err(rejection) => {
                let err = ApiError::from(rejection);
                // A slow body was logged where it was cut.
                if !matches!(err, ApiError::BodyTimeout) {
                    tracing::info!(code = err.code(), "API request refused: bad body");
                }
                Err(err)
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError::UnsupportedMediaType,
            JsonRejection::JsonSyntaxError(_) => ApiError::BadRequest("the body is not valid JSON"),
            JsonRejection::JsonDataError(_) => {
                ApiError::BadRequest("the body lacks a field or has one of the wrong type")
            }
            JsonRejection::BytesRejection(BytesRejection::FailedToBufferBody(
                FailedToBufferBody::LengthLimitError(_),
            )) => ApiError::BodyTooLarge,
            other if cut_for_slowness(&other) => ApiError::BodyTimeout,
            _ => ApiError::BadRequest("the body could not be read"),
        }
    }
}

/// Whether `err` comes from a body [`crate::http::TimedBody`] cut.
pub(crate) fn cut_for_slowness(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if matches!(err.downcast_ref::<BodyError>(), Some(BodyError::TooSlow)) {
            return true;
        }
        next = err.source();
    }
    false
}

/// Why an HTTP request was refused. The body is `{"error": code, "message": text}`;
/// internals are logged, never sent.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("sign in first")]
    Unauthorized,
    #[error("wrong name or password")]
    BadCredentials,
    #[error("{0}")]
    InvalidName(String),
    #[error("the password must be {min} to {max} characters", min = PASSWORD_CHARS.start(), max = PASSWORD_CHARS.end())]
    InvalidPassword,
    #[error("that name is taken")]
    NameTaken,
    #[error("cross-site request refused")]
    ForbiddenOrigin,
    #[error("too many attempts; wait a minute")]
    TooManyAttempts,
    #[error("too many open connections")]
    TooManyConnections,
    #[error("{0}")]
    BadRequest(&'static str),
    #[error("send the body as JSON, with Content-Type: application/json")]
    UnsupportedMediaType,
    #[error("the body is larger than {API_BODY_LIMIT} bytes")]
    BodyTooLarge,
    #[error("the request body arrived too slowly")]
    BodyTimeout,
    #[error("no such API endpoint")]
    NotFound,
    /// With the methods the path allows.
    #[error("this endpoint takes {0}")]
    MethodNotAllowed(&'static str),
    #[error(
        "give the file a name (`?name=`): at most 255 characters, no control characters or slashes"
    )]
    InvalidFileName,
    #[error("too many uploads; wait a minute")]
    TooManyUploads,
    #[error("the file is larger than {0} bytes")]
    FileTooLarge(u64),
    #[error("this upload would take your files past {0} bytes")]
    QuotaExceeded(u64),
    #[error("no such file")]
    FileNotFound,
    #[error("the image is too large to decode (at most {side} pixels a side, {mib} MiB decoded)", side = crate::files::MAX_IMAGE_SIDE, mib = crate::files::MAX_IMAGE_ALLOC >> 20)]
    ImageTooLarge,
    #[error("internal error")]
    Internal(#[from] StoreError),
}

impl ApiError {
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidFileName => "invalid_file_name",
            ApiError::TooManyUploads => "too_many_uploads",
            ApiError::FileTooLarge(_) => "file_too_large",
            ApiError::QuotaExceeded(_) => "quota_exceeded",
            ApiError::FileNotFound => "not_found",
            ApiError::ImageTooLarge => "image_too_large",
            ApiError::Unauthorized => "unauthorized",
            ApiError::BadCredentials => "bad_credentials",
            ApiError::InvalidName(_) => "invalid_name",
            ApiError::InvalidPassword => "invalid_password",
            ApiError::NameTaken => "name_taken",
            ApiError::ForbiddenOrigin => "forbidden_origin",
            ApiError::TooManyAttempts => "too_many_attempts",
            ApiError::TooManyConnections => "too_many_connections",
            ApiError::BadRequest(_) => "bad_request",
            ApiError::UnsupportedMediaType => "unsupported_media_type",
            ApiError::BodyTooLarge => "body_too_large",
            ApiError::BodyTimeout => "body_timeout",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed(_) => "method_not_allowed",
            ApiError::Internal(err) if err.is_unreachable() => "unavailable",
            ApiError::Internal(_) => "internal",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::BadCredentials => StatusCode::UNAUTHORIZED,
            ApiError::InvalidName(_) | ApiError::InvalidPassword => {
                StatusCode::UNPROCESSABLE_ENTITY
            }
            ApiError::NameTaken => StatusCode::CONFLICT,
            ApiError::ForbiddenOrigin => StatusCode::FORBIDDEN,
            ApiError::TooManyAttempts | ApiError::TooManyConnections => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            ApiError::NotFound | ApiError::FileNotFound => StatusCode::NOT_FOUND,
            ApiError::InvalidFileName | ApiError::ImageTooLarge => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyUploads => StatusCode::TOO_MANY_REQUESTS,
            ApiError::FileTooLarge(_) | ApiError::QuotaExceeded(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Internal(err) if err.is_unreachable() => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!(error = %err, "request failed");
        }
        let body = serde_json::json!({"error": self.code(), "message": self.to_string()});
        let mut response = (
            self.status(),
            [(header::CACHE_CONTROL, "no-store")],
            Json(body),
        )
            .into_response();
        if let ApiError::MethodNotAllowed(allow) = self {
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

#[derive(Deserialize)]
struct Credentials {
    name: String,
    password: String,
}

/// The answer to register and login.
#[derive(Serialize)]
struct SessionBody {
    user: String,
    /// For programs: send as `Authorization: Bearer <token>`.
    token: String,
    expires_at: u64,
}

/// The answer to `GET /api/session`.
#[derive(Serialize)]
struct WhoAmI {
    user: Option<String>,
    expires_at: Option<u64>,
    guests: bool,
}

/// Refuses a browser request from an origin other than ours or an allowed one.
pub fn check_origin(config: &Config, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return Ok(()); // not a browser: no cross-site risk
    };
    if config
        .allowed_origins
        .iter()
        .any(|allowed| allowed == origin)
    {
        return Ok(());
    }
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let authority = origin.split_once("://").map(|(_, rest)| rest);
    if host.is_some() && authority == host {
        return Ok(());
    }
    tracing::info!(%origin, ?host, "cross-origin request refused");
    Err(ApiError::ForbiddenOrigin)
}

/// The client's address: the peer, or the last `X-Forwarded-For` entry
/// when the server is told to trust it.
pub fn client_ip(config: &Config, peer: SocketAddr, headers: &HeaderMap) -> IpAddr {
    if config.trust_forwarded_for {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|ip| ip.trim().parse::<IpAddr>().ok())
            .next_back();
        if let Some(ip) = forwarded {
            return ip;
        }
    }
    peer.ip()
}

/// The session token the request carries: `Authorization: Bearer`, else the cookie.
fn token(headers: &HeaderMap) -> Option<String> {
    if let Some(bearer) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    {
        return Some(bearer.trim().to_string());
    }
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn hash_token(token: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Who the request is: `Ok(None)` for no credentials, an error for bad or
/// expired ones.
pub async fn identify(hub: &Hub, headers: &HeaderMap) -> Result<Option<Account>, ApiError> {
    let Some(token) = token(headers) else {
        return Ok(None);
    };
    let token_hash = hash_token(&token);
    let lookup = token_hash.clone();
    let record = hub
        .with_store(move |store| store.session(&lookup, now_ms()))
        .await?;
    let record = record.ok_or(ApiError::Unauthorized)?;
    Ok(Some(Account {
        name: record.name,
        token_hash,
        expires_at: record.expires_at,
    }))
}

/// Whether cookies should be marked `Secure`: served over TLS, directly or
/// (when trusted) behind a proxy that says so.
fn secure(config: &Config, headers: &HeaderMap) -> bool {
    config.tls_cert.is_some()
        || (config.trust_forwarded_for
            && headers
                .get("x-forwarded-proto")
                .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https")))
}

fn cookie(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    ))
    .expect("cookie is ASCII")
}

/// The checks before a login or registration: same origin, and within the
/// per-address attempt budget.
fn admit_attempt(state: &AppState, peer: SocketAddr, headers: &HeaderMap) -> Result<(), ApiError> {
    let config = &state.hub.config;
    check_origin(config, headers)?;
    if state.throttle.len() > 100_000 {
        state.throttle.retain_recent();
    }
    let ip = client_ip(config, peer, headers);
    state
        .throttle
        .check_key(&ip)
        .map_err(|_| ApiError::TooManyAttempts)
}

/// Starts a session for `name` and answers with its cookie and token.
async fn start_session(
    hub: &Hub,
    headers: &HeaderMap,
    name: String,
    status: StatusCode,
) -> Result<Response, ApiError> {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let ttl = hub.config.session_ttl;
    let expires_at = now_ms() + ttl.as_millis() as u64;
    let (hash, owner) = (hash_token(&token), name.clone());
    hub.with_store(move |store| store.create_session(&hash, &owner, expires_at))
        .await?;
    let set_cookie = cookie(&token, ttl.as_secs(), secure(&hub.config, headers));
    let body = SessionBody {
        user: name,
        token,
        expires_at,
    };
    Ok((
        status,
        [
            (header::SET_COOKIE, set_cookie),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Json(body),
    )
        .into_response())
}

async fn register(
    State(state): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let hub = &state.hub;
    admit_attempt(&state, peer, &headers)?;
    let Credentials { name, password } = credentials;
    names::validate_name(&name).map_err(ApiError::InvalidName)?;
    if !PASSWORD_CHARS.contains(&password.chars().count()) {
        return Err(ApiError::InvalidPassword);
    }
    // A guest online under the name (on any node) keeps it until they leave.
    if hub.connections_anywhere(&name).await? > 0 {
        return Err(ApiError::NameTaken);
    }
    let password_hash = tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|hash| hash.to_string())
    })
    .await
    .expect("hashing does not panic")
    .map_err(|err| ApiError::Internal(StoreError::Hash(err.to_string())))?;
    let user = UserRecord {
        name: name.clone(),
        password_hash,
        created_at: now_ms(),
    };
    // What a guest of the name left (its node killed before it could
    // drop them) is not the new account's: the same sweep as a guest
    // taking the name (one read when there is nothing; a failure is
    // logged there, and the registration goes on, as before).
    let _ = crate::conversation::before_guest(hub, &names::name_key(&name)).await;
    let created = hub
        .with_store(move |store| store.create_user(&user))
        .await?;
    if !created {
        return Err(ApiError::NameTaken);
    }
    tracing::info!(user = %name, "account registered");
    start_session(hub, &headers, name, StatusCode::CREATED).await
}

/// A valid argon2id hash of a random password: verifying against it when
/// the user does not exist makes a miss cost what a wrong password costs.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(b"no such user, no such password", &salt)
        .expect("hashing a constant works")
        .to_string()
});

async fn login(
    State(state): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ApiJson(credentials): ApiJson<Credentials>,
) -> Result<Response, ApiError> {
    let hub = &state.hub;
    admit_attempt(&state, peer, &headers)?;
    let lookup = credentials.name.clone();
    let user = hub.with_store(move |store| store.user(&lookup)).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| DUMMY_HASH.clone(), |u| u.password_hash.clone());
    let password = credentials.password;
    let verified = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .expect("verifying does not panic");
    match user {
        Some(user) if verified => start_session(hub, &headers, user.name, StatusCode::OK).await,
        _ => {
            tracing::info!(name = %credentials.name, "failed login");
            Err(ApiError::BadCredentials)
        }
    }
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let hub = &state.hub;
    check_origin(&hub.config, &headers)?;
    let token = token(&headers).ok_or(ApiError::Unauthorized)?;
    let token_hash = hash_token(&token);
    let forget = token_hash.clone();
    hub.with_store(move |store| store.delete_session(&forget))
        .await?;
    hub.end_session(&token_hash);
    Ok((
        StatusCode::NO_CONTENT,
        [(
            header::SET_COOKIE,
            cookie("", 0, secure(&hub.config, &headers)),
        )],
    )
        .into_response())
}

async fn session(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    let hub = &state.hub;
    let account = match identify(hub, &headers).await {
        Ok(account) => account,
        Err(ApiError::Unauthorized) => None, // a stale cookie: signed out
        Err(err) => return Err(err),
    };
    let body = WhoAmI {
        user: account.as_ref().map(|a| a.name.clone()),
        expires_at: account.map(|a| a.expires_at),
        guests: hub.config.guests,
    };
    Ok(([(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn origin_must_be_ours_or_allowed() {
        let mut config = Config::default();
        let ours = headers(&[
            ("host", "chat.example:8080"),
            ("origin", "http://chat.example:8080"),
        ]);
        assert!(check_origin(&config, &ours).is_ok());
        let evil = headers(&[
            ("host", "chat.example:8080"),
            ("origin", "https://evil.example"),
        ]);
        assert!(check_origin(&config, &evil).is_err());
        assert!(
            check_origin(&config, &headers(&[("host", "chat.example")])).is_ok(),
            "no Origin: not a browser"
        );
        config.allowed_origins = vec!["https://evil.example".into()];
        assert!(check_origin(&config, &evil).is_ok());
    }

    #[test]
    fn token_from_bearer_or_cookie() {
        assert_eq!(
            token(&headers(&[("authorization", "Bearer abc")])).as_deref(),
            Some("abc")
        );
        assert_eq!(
            token(&headers(&[(
                "cookie",
                "theme=dark; hubbub_session=xyz; other=1"
            )]))
            .as_deref(),
            Some("xyz")
        );
        assert_eq!(token(&headers(&[("cookie", "theme=dark")])), None);
    }

    #[test]
    fn forwarded_for_only_when_trusted() {
        let mut config = Config::default();
        let peer: SocketAddr = "10.0.0.1:5000".parse().unwrap();
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 5.6.7.8")]);
        assert_eq!(client_ip(&config, peer, &h), peer.ip());
        config.trust_forwarded_for = true;
        assert_eq!(
            client_ip(&config, peer, &h),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
    }
}
