//! Files people upload to share in chat: `POST /api/files` and
//! `GET /api/files/{id}`.
//!
//! **Upload.** The body is the file's raw bytes (any `Content-Type`), its
//! name in the `name` query parameter. It streams into a temporary file in
//! `<data-dir>/files/tmp/` while being hashed, and is refused, nothing
//! kept, as soon as its `Content-Length` or the bytes received pass
//! `--max-file-bytes`. Once whole it is synced and renamed to
//! `<data-dir>/files/ab/<sha256>` (content-addressed: the same bytes are
//! kept once), then recorded in the store ([`crate::store::Files`]) under
//! a random id: the record is the commit point, so a refused or broken
//! upload leaves no record and no bytes of its own. PostgreSQL also keeps
//! the bytes ([`crate::store::Files::put_blob`], before the record), and a
//! node that lacks a file's bytes fetches them from it at the first
//! download (`fetch`): `files/` is then a cache, and every node of a
//! cluster serves every file. The type is decided from the bytes
//! ([`sniff`]), never from the name or the request's headers.
//!
//! **Images** (PNG, JPEG, GIF, WebP by their bytes) are decoded on the
//! blocking pool, at most [`DECODERS`] at a time, within
//! [`image::Limits`] ([`MAX_IMAGE_SIDE`] pixels a side, [`MAX_IMAGE_ALLOC`]
//! bytes): a decompression bomb is refused (`image_too_large`) from its
//! header, before its pixels are inflated. What is kept and served is the
//! image re-encoded from its pixels (EXIF orientation applied), so no
//! metadata survives (EXIF, GPS, XMP, comments), plus a thumbnail of at
//! most [`THUMB_SIDE`] pixels a side (`GET /api/files/{id}/thumb`); its
//! width and height are recorded. An animated GIF keeps its first frame.
//! Bytes that look like an image but do not decode are kept as they are,
//! as `application/octet-stream`.
//!
//! **Who.** An account, by its session cookie or bearer token (as for
//! `/ws`); a guest, by the upload token its `welcome` carried
//! ([`Uploads::guest_token`]: an HMAC-SHA256 of its name, its node and
//! connection and an expiry, valid for [`GUEST_TOKEN_TTL`] and only while
//! that connection is open under that name; the key is random per process,
//! or in a cluster the nodes' shared one, and another node takes the token
//! while the node that made it holds the name for a guest). Per user:
//! `--uploads-per-minute` (governor) and `--max-upload-bytes-per-user`.
//!
//! **Download.** Its uploader may fetch a file, and so may ([`may_read`]) a
//! member (now, on any node) of a room whose stored messages carry it, and
//! a user a direct message carrying it was sent to; to anyone else it does
//! not exist (404, so ids cannot be probed). Which files a message carries
//! is checked when it is sent (`crate::session`: only the sender's own
//! uploads), and recorded with it ([`crate::store::Files::file_readers`]).
//!
//! **Deleting.** [`collect`] deletes, now and then, what no message carries
//! any more (uploads never sent, files of messages retention dropped), and
//! the bytes no file has. Served by tower-http's
//! `ServeFile` (ranges, `HEAD`), with `ETag` (the SHA-256),
//! `Cache-Control: private, max-age=31536000, immutable`, `nosniff`, and
//! `Content-Disposition: attachment` for everything but the image types
//! [`sniff`] recognizes. `GET /api/files/{id}/thumb` serves an image's
//! thumbnail the same way.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use futures_util::StreamExt;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use hubbub_protocol::names::name_key;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::auth::{self, ApiError, AppState};
use crate::config::Config;
use crate::hub::Hub;
use crate::registry::ConnId;
use crate::store::{FileReaders, FileRecord, StoreError};
use crate::timers::now_ms;

/// How long a guest's upload token is valid at most.
pub const GUEST_TOKEN_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// What a guest upload token starts with (a session token never does: it
/// is 43 characters of base64url).
const GUEST_PREFIX: &str = "g1.";
/// Longest file name kept, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// `Cache-Control` of a file: its bytes never change under its id.
const IMMUTABLE: &str = "private, max-age=31536000, immutable";
/// Widest and tallest image decoded, in pixels.
pub const MAX_IMAGE_SIDE: u32 = 12_000;
/// Most bytes a decoder may allocate for one image (its pixels included):
/// 256 MiB, e.g. 8000 × 8000 RGBA.
pub const MAX_IMAGE_ALLOC: u64 = 256 * 1024 * 1024;
/// Images decoded at once on this node (each may take [`MAX_IMAGE_ALLOC`]).
pub const DECODERS: usize = 2;
/// Largest width and height of a thumbnail.
pub const THUMB_SIDE: u32 = 320;
/// JPEG quality of re-encoded photos and their thumbnails.
const JPEG_QUALITY: u8 = 88;

/// The uploads of this node: where bytes go, the guest token key, the
/// per-user upload rate.
pub struct Uploads {
    /// `<data-dir>/files`.
    dir: PathBuf,
    /// Signs guest upload tokens: random at each start of a lone node (a
    /// restart ends them), shared by the nodes of a cluster (any node
    /// verifies any node's).
    key: [u8; 32],
    /// This node's id, in the tokens it makes.
    node: String,
    /// Uploads per user (by name key) per minute.
    rate: DefaultKeyedRateLimiter<String>,
    /// Bounds the images being decoded at once ([`DECODERS`]).
    decoders: tokio::sync::Semaphore,
    /// Held (shared) by an upload from putting its bytes in `files/` to
    /// recording them, and (exclusive) by [`collect`] while it deletes
    /// bytes no file has: the same bytes uploaded meanwhile stay.
    gate: tokio::sync::RwLock<()>,
}

impl Uploads {
    /// The uploads of node `node`, whose guest tokens `key` signs.
    pub fn new(config: &Config, node: &str, key: [u8; 32]) -> Uploads {
        let per_minute = NonZeroU32::new(config.uploads_per_minute).unwrap_or(NonZeroU32::MIN);
        Uploads {
            dir: config.data_dir.join("files"),
            key,
            node: node.to_string(),
            rate: RateLimiter::keyed(Quota::per_minute(per_minute)),
            decoders: tokio::sync::Semaphore::new(DECODERS),
            gate: tokio::sync::RwLock::new(()),
        }
    }

    fn mac(&self, signed: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length works");
        mac.update(signed.as_bytes());
        mac
    }

    /// A token that lets the guest `name` on this node's connection `conn`
    /// upload until `now_ms` plus [`GUEST_TOKEN_TTL`]: `g1.<expiry ms>.<conn>.
    /// <name, base64url>.<node, base64url>.<HMAC, base64url>`.
    pub fn guest_token(&self, name: &str, conn: ConnId, now_ms: u64) -> String {
        let expires = now_ms + GUEST_TOKEN_TTL.as_millis() as u64;
        let signed = format!(
            "{expires}.{conn}.{}.{}",
            URL_SAFE_NO_PAD.encode(name),
            URL_SAFE_NO_PAD.encode(&self.node)
        );
        let mac = URL_SAFE_NO_PAD.encode(self.mac(&signed).finalize().into_bytes());
        format!("{GUEST_PREFIX}{signed}.{mac}")
    }

    /// The guest name, node and connection `token` was made for, if it is
    /// signed with our key and unexpired.
    fn verify_guest_token(&self, token: &str, now_ms: u64) -> Option<GuestToken> {
        let signed_and_mac = token.strip_prefix(GUEST_PREFIX)?;
        let (signed, mac) = signed_and_mac.rsplit_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        self.mac(signed).verify_slice(&mac).ok()?;
        let mut parts = signed.splitn(4, '.');
        let (expires, conn, name, node) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if expires.parse::<u64>().ok()? <= now_ms {
            return None;
        }
        let text = |b64: &str| String::from_utf8(URL_SAFE_NO_PAD.decode(b64).ok()?).ok();
        Some(GuestToken {
            name: text(name)?,
            node: text(node)?,
            conn: conn.parse().ok()?,
        })
    }

    /// Where the bytes with this SHA-256 (hex) are kept.
    fn blob(&self, sha256: &str) -> PathBuf {
        blob_in(&self.dir, sha256)
    }
}

/// The MIME type of a file, from its first bytes: PNG, JPEG, GIF and WebP
/// by their magic numbers, anything else `application/octet-stream`.
pub fn sniff(head: &[u8]) -> &'static str {
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        "image/png"
    } else if head.starts_with(b"\xff\xd8\xff") {
        "image/jpeg"
    } else if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        "image/gif"
    } else if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        "image/webp"
    } else {
        "application/octet-stream"
    }
}

/// Bytes [`sniff`] looks at.
const SNIFF_BYTES: usize = 12;

/// Whether a file of this type is shown inline (an image we recognized)
/// rather than downloaded.
fn is_image(mime: &str) -> bool {
    mime.starts_with("image/")
}

/// The file routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/api/files",
            post(upload).fallback(|| async { ApiError::MethodNotAllowed("POST") }),
        )
        .route(
            "/api/files/{id}",
            get(download).fallback(|| async { ApiError::MethodNotAllowed("GET, HEAD") }),
        )
        .route(
            "/api/files/{id}/thumb",
            get(thumbnail).fallback(|| async { ApiError::MethodNotAllowed("GET, HEAD") }),
        )
}

#[derive(Deserialize)]
struct UploadQuery {
    name: Option<String>,
}

#[derive(Deserialize)]
struct DownloadQuery {
    /// A guest's upload token, for links that cannot carry a header.
    token: Option<String>,
}

/// The answer to an upload.
#[derive(Serialize)]
struct Uploaded {
    id: String,
    name: String,
    size: u64,
    mime: String,
    /// An image's size in pixels.
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<u32>,
    /// Where to download it (`GET`).
    url: String,
    /// An image's thumbnail.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumb_url: Option<String>,
}

/// What a guest upload token says.
#[derive(Debug, PartialEq, Eq)]
struct GuestToken {
    name: String,
    /// The node whose connection `conn` it was made for.
    node: String,
    conn: ConnId,
}

/// Who is asking: an account's name, or a connected guest's.
async fn who(hub: &Hub, headers: &HeaderMap, token: Option<&str>) -> Result<String, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| t.starts_with(GUEST_PREFIX));
    if let Some(token) = token.or(bearer) {
        let GuestToken { name, node, conn } = hub
            .uploads
            .verify_guest_token(token, now_ms())
            .ok_or(ApiError::Unauthorized)?;
        let key = name_key(&name);
        let connected = if node == hub.node_id {
            // Only while that very connection is open under that name.
            hub.registry
                .user(&key)
                .is_some_and(|(_, conns)| conns.iter().any(|c| c.id == conn && c.account.is_none()))
        } else if hub.clustered() {
            // Another node's guest: while that node holds the name for a
            // guest (guest names are one guest's on every node).
            hub.with_store(move |store| match store.node_presence() {
                Some(presence) => presence.guest_holds(&node, &key),
                None => Ok(false),
            })
            .await?
        } else {
            false
        };
        return if connected {
            Ok(name)
        } else {
            Err(ApiError::Unauthorized)
        };
    }
    match auth::identify(hub, headers).await? {
        Some(account) => Ok(account.name),
        None => Err(ApiError::Unauthorized),
    }
}

/// The upload's file name: given, at most [`MAX_NAME_CHARS`], no control
/// characters or path separators.
fn file_name(query: UploadQuery) -> Result<String, ApiError> {
    let name = query.name.unwrap_or_default();
    let name = name.trim();
    let bad = name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name
            .chars()
            .any(|c| c.is_control() || c == '/' || c == '\\');
    if bad {
        return Err(ApiError::InvalidFileName);
    }
    Ok(name.to_string())
}

/// `POST /api/files?name=NAME`: stores the body as a file of the caller's.
async fn upload(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let result = receive(&state.hub, &headers, request).await;
    match &result {
        Ok(_) => {}
        // Logged by its response, where the body was cut, or by the origin check.
        Err(ApiError::Internal(_) | ApiError::BodyTimeout | ApiError::ForbiddenOrigin) => {}
        Err(err) => tracing::info!(code = err.code(), "upload refused"),
    }
    result
}

async fn receive(hub: &Hub, headers: &HeaderMap, request: Request) -> Result<Response, ApiError> {
    let config = &hub.config;
    auth::check_origin(config, headers)?;
    let query = Query::<UploadQuery>::try_from_uri(request.uri())
        .map_err(|_| ApiError::InvalidFileName)?
        .0;
    let uploader = who(hub, headers, None).await?;
    let name = file_name(query)?;
    let key = name_key(&uploader);
    if hub.uploads.rate.len() > 100_000 {
        hub.uploads.rate.retain_recent();
    }
    hub.uploads
        .rate
        .check_key(&key)
        .map_err(|_| ApiError::TooManyUploads)?;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > config.max_file_bytes) {
        return Err(ApiError::FileTooLarge(config.max_file_bytes));
    }
    let owner = uploader.clone();
    let used = hub
        .with_store(move |store| store.uploaded_bytes(&owner))
        .await?;
    let quota = config.max_upload_bytes_per_user;
    if used.saturating_add(declared.unwrap_or(0)) > quota {
        return Err(ApiError::QuotaExceeded(quota));
    }

    // Stream into a temporary file, deleted if anything below fails.
    let tmp_dir = hub.uploads.dir.join("tmp");
    let tmp = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(&tmp_dir)?;
        tempfile::NamedTempFile::new_in(&tmp_dir)
    })
    .await
    .expect("creating a file does not panic")
    .map_err(io_error)?;
    let mut out = tokio::fs::File::from_std(tmp.reopen().map_err(io_error)?);
    let mut hasher = Sha256::new();
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    let mut size: u64 = 0;
    let mut body = request.into_body().into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|err| {
            if auth::cut_for_slowness(&err) {
                ApiError::BodyTimeout
            } else {
                ApiError::BadRequest("the body could not be read")
            }
        })?;
        size += chunk.len() as u64;
        if size > config.max_file_bytes {
            return Err(ApiError::FileTooLarge(config.max_file_bytes));
        }
        let want = SNIFF_BYTES.saturating_sub(head.len()).min(chunk.len());
        head.extend_from_slice(&chunk[..want]);
        hasher.update(&chunk);
        out.write_all(&chunk).await.map_err(io_error)?;
    }
    out.sync_all().await.map_err(io_error)?;
    drop(out);
    let mut kept = Kept {
        file: tmp,
        sha256: hex(&hasher.finalize()),
        size,
    };
    let mut mime = sniff(&head);
    let (mut image, mut thumb) = (None, None);
    if is_image(mime) {
        let _slot = hub.uploads.decoders.acquire().await.expect("never closed");
        let (path, dir) = (kept.file.path().to_path_buf(), hub.uploads.dir.join("tmp"));
        let cleaned = tokio::task::spawn_blocking(move || clean_image(&path, mime, &dir))
            .await
            .unwrap_or_else(|panicked| {
                // A decoder bug on hostile bytes: keep them as a plain file.
                tracing::warn!(error = %panicked, "image decoder panicked");
                Ok(None)
            });
        match cleaned {
            Ok(Some(clean)) => {
                kept = clean.image;
                thumb = Some(clean.thumb);
                image = Some((clean.width, clean.height));
            }
            Ok(None) => mime = "application/octet-stream",
            Err(ImageRefusal::TooLarge) => return Err(ApiError::ImageTooLarge),
            Err(ImageRefusal::Io(err)) => return Err(io_error(err)),
        }
    }
    if used.saturating_add(kept.size) > quota {
        return Err(ApiError::QuotaExceeded(quota));
    }
    let thumb_sha256 = thumb.as_ref().map(|t| t.sha256.clone());
    let (sha256, size) = (kept.sha256.clone(), kept.size);
    let _gate = hub.uploads.gate.read().await;
    let created = {
        let uploads_dir = hub.uploads.dir.clone();
        tokio::task::spawn_blocking(move || {
            let mut created = Vec::new();
            for kept in std::iter::once(kept).chain(thumb) {
                let blob = blob_in(&uploads_dir, &kept.sha256);
                if keep(kept.file, &blob)? {
                    created.push(blob);
                }
            }
            Ok(created)
        })
        .await
        .expect("renaming does not panic")
        .map_err(io_error)?
    };

    let mut id = [0u8; 16];
    rand::fill(&mut id);
    let record = FileRecord {
        id: URL_SAFE_NO_PAD.encode(id),
        name,
        size,
        mime: mime.to_string(),
        sha256,
        uploader,
        uploaded_at: now_ms(),
        width: image.map(|(w, _)| w),
        height: image.map(|(_, h)| h),
        thumb_sha256,
    };
    let stored = record.clone();
    let uploads_dir = hub.uploads.dir.clone();
    let recorded = hub
        .with_store(move |store| {
            // Bytes first (for the other nodes of a cluster), the record last.
            for sha256 in std::iter::once(&stored.sha256).chain(&stored.thumb_sha256) {
                let mut bytes = std::fs::File::open(blob_in(&uploads_dir, sha256))
                    .map_err(StoreError::Files)?;
                store.put_blob(sha256, &mut bytes)?;
            }
            store.add_file(&stored)
        })
        .await;
    if let Err(err) = recorded {
        // Nobody else's record can point at bytes we just created.
        for blob in created {
            let _ = tokio::fs::remove_file(blob).await;
        }
        return Err(err.into());
    }
    tracing::info!(id = %record.id, size, mime = %record.mime, user = %record.uploader, "file uploaded");
    let url = format!("/api/files/{}", record.id);
    let body = Uploaded {
        thumb_url: record.thumb_sha256.as_ref().map(|_| format!("{url}/thumb")),
        url,
        id: record.id,
        name: record.name,
        size,
        mime: record.mime,
        width: record.width,
        height: record.height,
    };
    Ok((
        StatusCode::CREATED,
        [(header::CACHE_CONTROL, "no-store")],
        Json(body),
    )
        .into_response())
}

/// Where the bytes with this SHA-256 (hex) are kept under `dir`.
fn blob_in(dir: &Path, sha256: &str) -> PathBuf {
    dir.join(&sha256[..2]).join(sha256)
}

/// Bytes in a temporary file, whole, with their hash and length.
struct Kept {
    file: tempfile::NamedTempFile,
    sha256: String,
    size: u64,
}

impl Kept {
    /// `bytes` written and synced to a new temporary file in `dir`.
    fn write(bytes: &[u8], dir: &Path) -> std::io::Result<Kept> {
        use std::io::Write as _;
        let mut file = tempfile::NamedTempFile::new_in(dir)?;
        file.write_all(bytes)?;
        file.as_file().sync_all()?;
        Ok(Kept {
            file,
            sha256: hex(&Sha256::digest(bytes)),
            size: bytes.len() as u64,
        })
    }
}

/// A cleaned image: re-encoded from its pixels, and its thumbnail.
struct CleanImage {
    image: Kept,
    thumb: Kept,
    width: u32,
    height: u32,
}

/// Why an image was not kept.
enum ImageRefusal {
    /// Past [`MAX_IMAGE_SIDE`] or [`MAX_IMAGE_ALLOC`].
    TooLarge,
    Io(std::io::Error),
}

/// Decodes the image of type `mime` at `path` within the limits and
/// re-encodes it and its thumbnail into temporary files in `dir`;
/// `Ok(None)` if the bytes do not decode as that type. Blocking.
fn clean_image(path: &Path, mime: &str, dir: &Path) -> Result<Option<CleanImage>, ImageRefusal> {
    use image::{DynamicImage, ImageDecoder, ImageError, ImageFormat, ImageReader};
    let format = match mime {
        "image/png" => ImageFormat::Png,
        "image/jpeg" => ImageFormat::Jpeg,
        "image/gif" => ImageFormat::Gif,
        _ => ImageFormat::WebP,
    };
    let file = std::fs::File::open(path).map_err(ImageRefusal::Io)?;
    let mut reader = ImageReader::new(std::io::BufReader::new(file));
    reader.set_format(format);
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_IMAGE_SIDE);
    limits.max_image_height = Some(MAX_IMAGE_SIDE);
    limits.max_alloc = Some(MAX_IMAGE_ALLOC);
    reader.limits(limits);
    let refused = |err: ImageError| match err {
        ImageError::Limits(_) => Err(ImageRefusal::TooLarge),
        ImageError::IoError(err) => Err(ImageRefusal::Io(err)),
        _ => Ok(None),
    };
    let mut decoder = match reader.into_decoder() {
        Ok(decoder) => decoder,
        Err(err) => return refused(err),
    };
    // Not every decoder counts the pixels against `max_alloc` (PNG's does
    // not): refuse by the header's size before a byte is inflated.
    if decoder.total_bytes() > MAX_IMAGE_ALLOC {
        return Err(ImageRefusal::TooLarge);
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut pixels = match DynamicImage::from_decoder(decoder) {
        Ok(pixels) => pixels,
        Err(err) => return refused(err),
    };
    pixels.apply_orientation(orientation);
    let (width, height) = (pixels.width(), pixels.height());
    let small = if width <= THUMB_SIDE && height <= THUMB_SIDE {
        pixels.clone()
    } else {
        pixels.thumbnail(THUMB_SIDE, THUMB_SIDE)
    };
    let encode = |img: &DynamicImage, format: ImageFormat| -> Result<Vec<u8>, ImageRefusal> {
        let mut out = std::io::Cursor::new(Vec::new());
        let written = match format {
            // JPEG has no alpha; GIF and WebP encoders take 8-bit RGBA.
            ImageFormat::Jpeg => DynamicImage::ImageRgb8(img.to_rgb8()).write_with_encoder(
                image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY),
            ),
            ImageFormat::Gif | ImageFormat::WebP => {
                DynamicImage::ImageRgba8(img.to_rgba8()).write_to(&mut out, format)
            }
            _ => img.write_to(&mut out, format),
        };
        match written {
            Ok(()) => Ok(out.into_inner()),
            Err(ImageError::IoError(err)) => Err(ImageRefusal::Io(err)),
            Err(err) => Err(ImageRefusal::Io(std::io::Error::other(err))),
        }
    };
    // Thumbnails: JPEG for photos, PNG (alpha kept) for the rest.
    let thumb_format = if format == ImageFormat::Jpeg {
        ImageFormat::Jpeg
    } else {
        ImageFormat::Png
    };
    let image = Kept::write(&encode(&pixels, format)?, dir).map_err(ImageRefusal::Io)?;
    let thumb = Kept::write(&encode(&small, thumb_format)?, dir).map_err(ImageRefusal::Io)?;
    Ok(Some(CleanImage {
        image,
        thumb,
        width,
        height,
    }))
}

/// Moves the whole upload to `blob`; `false` if those bytes were already
/// there (the upload is then dropped, and so deleted).
fn keep(tmp: tempfile::NamedTempFile, blob: &Path) -> std::io::Result<bool> {
    if blob.exists() {
        return Ok(false);
    }
    std::fs::create_dir_all(blob.parent().expect("a blob has a directory"))?;
    tmp.persist(blob).map_err(|err| err.error)?;
    Ok(true)
}

fn io_error(err: std::io::Error) -> ApiError {
    ApiError::Internal(StoreError::Files(err))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `GET /api/files/{id}`: the file, to whoever may see it.
async fn download(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let file = visible(&state.hub, &id, &headers, query_token(&request)).await?;
    let disposition = if is_image(&file.mime) {
        "inline"
    } else {
        "attachment"
    };
    let disposition = content_disposition(disposition, &file.name);
    serve(
        &state.hub,
        &file.sha256,
        &file.mime,
        &disposition,
        &headers,
        request,
    )
    .await
}

/// `GET /api/files/{id}/thumb`: an image's thumbnail (404 for other files).
async fn thumbnail(
    State(state): State<AppState>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let file = visible(&state.hub, &id, &headers, query_token(&request)).await?;
    let Some(thumb) = &file.thumb_sha256 else {
        return Err(ApiError::FileNotFound);
    };
    let mime = if file.mime == "image/jpeg" {
        "image/jpeg"
    } else {
        "image/png"
    };
    let disposition = content_disposition("inline", &file.name);
    serve(&state.hub, thumb, mime, &disposition, &headers, request).await
}

/// The `token` query parameter (a guest's upload token).
fn query_token(request: &Request) -> Option<String> {
    Query::<DownloadQuery>::try_from_uri(request.uri())
        .ok()
        .and_then(|q| q.0.token)
}

/// The file `id` if the caller may see it; else the 404 of a missing file.
async fn visible(
    hub: &Hub,
    id: &str,
    headers: &HeaderMap,
    token: Option<String>,
) -> Result<FileRecord, ApiError> {
    let user = match who(hub, headers, token.as_deref()).await {
        Ok(user) => user,
        Err(err) => {
            if !matches!(err, ApiError::Internal(_)) {
                tracing::info!(code = err.code(), "download refused");
            }
            return Err(err);
        }
    };
    let lookup = id.to_string();
    let (file, readers) = hub
        .with_store(move |store| {
            let Some(file) = store.file(&lookup)? else {
                return Ok((None, FileReaders::default()));
            };
            let readers = store.file_readers(&lookup)?;
            Ok((Some(file), readers))
        })
        .await?;
    let Some(file) = file else {
        tracing::info!(%id, %user, "download refused: no such file");
        return Err(ApiError::FileNotFound);
    };
    if may_read(hub, &user, &file, readers).await? {
        Ok(file)
    } else {
        tracing::info!(%id, %user, "download refused: not the uploader nor a reader");
        Err(ApiError::FileNotFound)
    }
}

/// Whether `user` may read `file`: its uploader; a user a direct message
/// gave it to (before direct messages were conversations); one of the two
/// people of a conversation whose messages carry it; a member now, on any
/// node, of a room whose messages carry it.
async fn may_read(
    hub: &Hub,
    user: &str,
    file: &FileRecord,
    readers: FileReaders,
) -> Result<bool, ApiError> {
    let key = name_key(user);
    if name_key(&file.uploader) == key || readers.users.contains(&key) {
        return Ok(true);
    }
    if readers
        .rooms
        .iter()
        .any(|room| hubbub_protocol::names::conversation_peer(room, &key).is_some())
    {
        return Ok(true);
    }
    if readers
        .rooms
        .iter()
        .any(|room| hub.room(room).is_some_and(|r| r.has_member(user)))
    {
        return Ok(true);
    }
    if readers.rooms.is_empty() || !hub.clustered() {
        return Ok(false);
    }
    // A member through another node (this one may not have the room open).
    let node = hub.node_id.clone();
    let elsewhere = hub
        .with_store(move |store| match store.node_presence() {
            Some(presence) => presence.others(&node, &readers.rooms),
            None => Ok(Vec::new()),
        })
        .await?;
    Ok(elsewhere.iter().any(|(_, name, _)| name_key(name) == key))
}

/// Deletes, now and then, the files no message carries any more
/// ([`crate::store::Files::collect_files`]): uploads never sent, older than
/// `--unsent-file-ttl`, and the files of messages retention dropped; a
/// direct message's share lasts as long as `--retention-age` keeps
/// messages. Bytes no file has any more leave `files/` (and the store).
pub async fn collect(hub: std::sync::Arc<Hub>) {
    let ttl = hub.config.unsent_file_ttl;
    let every = (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = hub.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = now_ms();
        let uploaded_before = now.saturating_sub(ttl.as_millis() as u64);
        let shared_before = hub
            .config
            .retention_age
            .map_or(0, |age| now.saturating_sub(age.as_millis() as u64));
        let unused = match hub
            .with_store(move |store| store.collect_files(uploaded_before, shared_before))
            .await
        {
            Ok(unused) => unused,
            Err(err) => {
                tracing::error!(error = %err, "cannot collect unused files");
                continue;
            }
        };
        if unused.is_empty() {
            continue;
        }
        let _gate = hub.uploads.gate.write().await;
        let mut removed = 0;
        for sha256 in unused {
            // The same bytes may have been uploaded again since.
            let check = sha256.clone();
            if let Ok(false) = hub
                .with_store(move |store| store.bytes_in_use(&check))
                .await
            {
                if tokio::fs::remove_file(hub.uploads.blob(&sha256))
                    .await
                    .is_ok()
                {
                    removed += 1;
                }
            }
        }
        tracing::info!(removed, "unused files deleted");
    }
}

/// Makes sure the bytes whose SHA-256 is `sha256` are in this node's
/// `files/`: in a cluster another node may have taken the upload, and the
/// store has them ([`crate::store::Files::get_blob`]). They are copied
/// whole to a temporary file, checked against their hash, then renamed
/// into place, so this directory is a cache any node can rebuild.
async fn fetch(hub: &Hub, sha256: &str) -> Result<(), ApiError> {
    let blob = hub.uploads.blob(sha256);
    if tokio::fs::try_exists(&blob).await.unwrap_or(false) {
        return Ok(());
    }
    let (dir, sha256) = (hub.uploads.dir.join("tmp"), sha256.to_string());
    hub.with_store(move |store| {
        std::fs::create_dir_all(&dir).map_err(StoreError::Files)?;
        let tmp = tempfile::NamedTempFile::new_in(&dir).map_err(StoreError::Files)?;
        let mut hashing = HashingWriter {
            inner: std::io::BufWriter::new(tmp.reopen().map_err(StoreError::Files)?),
            hasher: Sha256::new(),
        };
        if !store.get_blob(&sha256, &mut hashing)? {
            return Ok(()); // served as missing below
        }
        let HashingWriter { inner, hasher } = hashing;
        inner
            .into_inner()
            .map_err(|err| err.into_error())
            .and_then(|file| file.sync_all())
            .map_err(StoreError::Files)?;
        if hex(&hasher.finalize()) != sha256 {
            tracing::error!(%sha256, "the store's copy of a file does not match its hash");
            return Ok(());
        }
        keep(tmp, &blob).map_err(StoreError::Files)?;
        Ok(())
    })
    .await?;
    Ok(())
}

/// Writes through to `inner`, hashing what it writes.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Answers `request` with the bytes whose SHA-256 is `sha256`.
async fn serve(
    hub: &Hub,
    sha256: &str,
    mime: &str,
    disposition: &str,
    headers: &HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    let etag = HeaderValue::from_str(&format!("\"{sha256}\"")).expect("hex is ASCII");
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|tags| tags.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        fetch(hub, sha256).await?;
        let mime: mime::Mime = mime.parse().unwrap_or(mime::APPLICATION_OCTET_STREAM);
        let served = ServeFile::new_with_mime(hub.uploads.blob(sha256), &mime)
            .oneshot(request)
            .await
            .expect("ServeFile is infallible");
        if served.status() == StatusCode::NOT_FOUND {
            tracing::error!(%sha256, "a recorded file's bytes are missing");
            return Err(ApiError::FileNotFound);
        }
        served.map(Body::new)
    };
    let headers = response.headers_mut();
    headers.insert(header::ETAG, etag);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(IMMUTABLE));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(disposition).expect("the value is ASCII"),
    );
    Ok(response)
}

/// `attachment; filename="<ASCII fallback>"; filename*=UTF-8''<percent-encoded>`
/// (RFC 6266): the name cannot break out of the header.
fn content_disposition(kind: &str, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_come_from_magic_numbers() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), "image/png");
        assert_eq!(sniff(b"\xff\xd8\xff\xe0\0\x10JFIF"), "image/jpeg");
        assert_eq!(sniff(b"GIF89a\x01\0"), "image/gif");
        assert_eq!(sniff(b"RIFF\x24\0\0\0WEBPVP8 "), "image/webp");
        assert_eq!(sniff(b"RIFF\x24\0\0\0WAVEfmt "), "application/octet-stream");
        assert_eq!(sniff(b"<html><script>"), "application/octet-stream");
        assert_eq!(sniff(b"<svg xmlns="), "application/octet-stream");
        assert_eq!(sniff(b""), "application/octet-stream");
    }

    #[test]
    fn guest_tokens_are_signed_and_expire() {
        let uploads = Uploads::new(&Config::default(), "n1", [1; 32]);
        let token = uploads.guest_token("Zoë", 7, 1_000);
        let zoes = GuestToken {
            name: "Zoë".into(),
            node: "n1".into(),
            conn: 7,
        };
        assert_eq!(uploads.verify_guest_token(&token, 1_000), Some(zoes));
        // Another node with the cluster's key verifies it too.
        let other_node = Uploads::new(&Config::default(), "n2", [1; 32]);
        assert!(other_node.verify_guest_token(&token, 1_000).is_some());
        let ttl = GUEST_TOKEN_TTL.as_millis() as u64;
        assert_eq!(
            uploads.verify_guest_token(&token, 1_000 + ttl),
            None,
            "expired"
        );
        // Another name, connection, expiry or process key does not verify.
        let (_, mac) = token.rsplit_once('.').unwrap();
        let (zoe, n1) = (URL_SAFE_NO_PAD.encode("Zoë"), URL_SAFE_NO_PAD.encode("n1"));
        let later = format!("g1.{}.7.{zoe}.{n1}.{mac}", 1_000 + 2 * ttl);
        assert_eq!(uploads.verify_guest_token(&later, 1_000), None);
        let other_conn = format!("g1.{}.8.{zoe}.{n1}.{mac}", 1_000 + ttl);
        assert_eq!(uploads.verify_guest_token(&other_conn, 1_000), None);
        let bob = URL_SAFE_NO_PAD.encode("bob");
        let other_name = format!("g1.{}.7.{bob}.{n1}.{mac}", 1_000 + ttl);
        assert_eq!(uploads.verify_guest_token(&other_name, 1_000), None);
        let n2 = URL_SAFE_NO_PAD.encode("n2");
        let moved = format!("g1.{}.7.{zoe}.{n2}.{mac}", 1_000 + ttl);
        assert_eq!(uploads.verify_guest_token(&moved, 1_000), None);
        let restarted = Uploads::new(&Config::default(), "n1", [2; 32]);
        assert_eq!(restarted.verify_guest_token(&token, 1_000), None);
        assert_eq!(uploads.verify_guest_token("g1.garbage", 1_000), None);
    }

    #[test]
    fn file_names_cannot_escape_the_header() {
        assert_eq!(
            content_disposition("attachment", "a\"b\\c é.txt"),
            "attachment; filename=\"a_b_c _.txt\"; filename*=UTF-8''a%22b%5Cc%20%C3%A9.txt"
        );
        assert!(file_name(UploadQuery {
            name: Some("../etc/passwd".into())
        })
        .is_err());
        assert!(file_name(UploadQuery {
            name: Some("a\r\nb".into())
        })
        .is_err());
        assert!(file_name(UploadQuery { name: None }).is_err());
        assert_eq!(
            file_name(UploadQuery {
                name: Some(" cat.png ".into())
            })
            .unwrap(),
            "cat.png"
        );
    }
}
