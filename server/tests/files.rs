//! Uploads and downloads over real HTTP against a real server: who may,
//! what is kept, how it is served, and every refusal.

mod common;

use std::path::Path;

use common::{http, http_raw, Body, RawResponse, TestServer};
use hubbub_protocol::{Attachment, ServerMsg};
use serde_json::json;
use sha2::{Digest, Sha256};

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// A guest connection named `name` and its upload token.
async fn guest(server: &TestServer, name: &str) -> (common::Client, String) {
    let mut client = common::Client::connect(&server.url()).await;
    match client.hello(name).await {
        ServerMsg::Welcome {
            upload_token: Some(token),
            ..
        } => (client, token),
        other => panic!("a guest's welcome carries an upload token: {other:?}"),
    }
}

async fn upload(server: &TestServer, token: &str, name: &str, bytes: &[u8]) -> RawResponse {
    http_raw(
        server.addr,
        "POST",
        &format!("/api/files?name={name}"),
        &[
            ("Authorization", &bearer(token)),
            ("Content-Type", "image/png"),
        ],
        Body::Sized(bytes),
    )
    .await
}

async fn download(
    server: &TestServer,
    token: &str,
    id: &str,
    extra: &[(&str, &str)],
) -> RawResponse {
    let auth = bearer(token);
    let mut headers = vec![("Authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    http_raw(
        server.addr,
        "GET",
        &format!("/api/files/{id}"),
        &headers,
        Body::None,
    )
    .await
}

/// Every file kept under the data directory's `files/`, temporary ones included.
fn kept_files(data: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path.display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(&data.join("files"), &mut out);
    out
}

#[tokio::test]
async fn a_guest_uploads_and_gets_the_same_bytes_back_with_caching_and_ranges() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    let bytes: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let created = upload(&server, &token, "notes%20v2.bin", &bytes).await;
    let file = created.created();
    assert_eq!(file["name"], "notes v2.bin");
    assert_eq!(file["size"], 3000);
    assert_eq!(file["mime"], "application/octet-stream");
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(file["url"], format!("/api/files/{id}"));

    // Kept once, content-addressed, nothing left in tmp/.
    let sha: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let blob = server.data.path().join("files").join(&sha[..2]).join(&sha);
    assert_eq!(std::fs::read(&blob).unwrap(), bytes);
    assert_eq!(kept_files(server.data.path()), [blob.display().to_string()]);

    let got = download(&server, &token, &id, &[]).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, bytes);
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert_eq!(
        got.header("content-disposition"),
        Some("attachment; filename=\"notes v2.bin\"; filename*=UTF-8''notes%20v2.bin")
    );
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(
        got.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let etag = format!("\"{sha}\"");
    assert_eq!(got.header("etag"), Some(etag.as_str()));

    // A browser's revalidation and a resumed download.
    let same = download(&server, &token, &id, &[("If-None-Match", &etag)]).await;
    assert_eq!(same.status, 304);
    assert!(same.body.is_empty());
    let part = download(&server, &token, &id, &[("Range", "bytes=1000-1009")]).await;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, bytes[1000..1010]);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1009/3000"));

    // A link that cannot carry a header passes the token in the query.
    let linked = http_raw(
        server.addr,
        "GET",
        &format!("/api/files/{id}?token={token}"),
        &[],
        Body::None,
    )
    .await;
    assert_eq!(linked.status, 200);
    assert_eq!(linked.body, bytes);

    // The same bytes again: a new file (own id and name), stored once.
    let again = upload(&server, &token, "copy.bin", &bytes).await;
    assert_eq!(again.status, 201);
    assert_ne!(again.json()["id"], id);
    assert_eq!(kept_files(server.data.path()).len(), 1);
}

#[tokio::test]
async fn the_type_comes_from_the_bytes_never_the_name_or_header() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    let html = b"<html><script>alert(document.cookie)</script></html>";
    let spoofed = upload(&server, &token, "x.png", html).await;
    assert_eq!(spoofed.status, 201);
    assert_eq!(spoofed.json()["mime"], "application/octet-stream");
    let id = spoofed.json()["id"].as_str().unwrap().to_string();
    let got = download(&server, &token, &id, &[]).await;
    assert_eq!(got.header("content-type"), Some("application/octet-stream"));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("attachment;"));
    assert_eq!(got.header("x-content-type-options"), Some("nosniff"));

    let png = encode(&gradient(4, 3), image::ImageFormat::Png);
    let image = upload(&server, &token, "photo.txt", &png).await;
    assert_eq!(image.json()["mime"], "image/png");
    let id = image.json()["id"].as_str().unwrap().to_string();
    let got = download(&server, &token, &id, &[]).await;
    assert_eq!(got.header("content-type"), Some("image/png"));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .starts_with("inline;"));
}

#[tokio::test]
async fn nobody_else_can_fetch_a_file_or_tell_it_exists() {
    let server = TestServer::default().await;
    let (_alice, alice_token) = guest(&server, "alice").await;
    let (_bob, bob_token) = guest(&server, "bob").await;
    let created = upload(&server, &alice_token, "secret.txt", b"for alice only").await;
    let id = created.json()["id"].as_str().unwrap().to_string();

    let theirs = download(&server, &bob_token, &id, &[]).await;
    let unknown = download(&server, &bob_token, "AAAAAAAAAAAAAAAAAAAAAA", &[]).await;
    assert_eq!(theirs.status, 404);
    assert_eq!(unknown.status, 404);
    assert_eq!(theirs.body, unknown.body, "the same answer as for no file");
    assert_eq!(theirs.json()["error"], "not_found");
}

#[tokio::test]
async fn uploads_need_a_valid_token_of_an_open_connection() {
    let server = TestServer::default().await;
    let (alice, token) = guest(&server, "alice").await;
    let (mut bob, _) = guest(&server, "bob").await;

    let anonymous = http_raw(
        server.addr,
        "POST",
        "/api/files?name=a.txt",
        &[],
        Body::Sized(b"hi"),
    )
    .await;
    assert_eq!(anonymous.status, 401);
    assert_eq!(anonymous.json()["error"], "unauthorized");
    let forged = format!("{}x", &token[..token.len() - 1]);
    assert_eq!(upload(&server, &forged, "a.txt", b"hi").await.status, 401);
    let session = upload(&server, "not-a-session-token", "a.txt", b"hi").await;
    assert_eq!(session.status, 401);
    assert_eq!(session.json()["error"], "unauthorized");

    // The token dies with its connection.
    bob.join("lobby").await;
    let mut alice = alice;
    alice.join("lobby").await;
    bob.recv_until(|m| common::joined(m, "lobby", "alice"))
        .await;
    drop(alice);
    bob.recv_until(|m| common::left(m, "lobby", "alice")).await;
    bob.drain().await;
    let late = upload(&server, &token, "a.txt", b"hi").await;
    assert_eq!(late.status, 401);
    assert!(kept_files(server.data.path()).is_empty());
}

#[tokio::test]
async fn an_account_uploads_with_its_session() {
    let server = TestServer::default().await;
    let registered = http(
        server.addr,
        "POST",
        "/api/register",
        &[],
        Some(json!({"name": "Carol", "password": "correct horse"})),
    )
    .await;
    assert_eq!(registered.status, 201);
    let session = registered.json()["token"].as_str().unwrap().to_string();
    let created = upload(&server, &session, "a.txt", b"hello").await;
    assert_eq!(created.status, 201);
    let id = created.json()["id"].as_str().unwrap().to_string();
    let cookie = format!("hubbub_session={session}");
    let got = http_raw(
        server.addr,
        "GET",
        &format!("/api/files/{id}"),
        &[("Cookie", &cookie)],
        Body::None,
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello");
    // Accounts get no guest token: their session does that.
    let mut client = common::connect_with(&server.url(), &[("Authorization", &bearer(&session))])
        .await
        .unwrap();
    match client.hello("Carol").await {
        ServerMsg::Welcome { upload_token, .. } => assert_eq!(upload_token, None),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_upload_is_refused_with_nothing_kept() {
    let server = TestServer::start(|c| c.max_file_bytes = 1000).await;
    let (_alice, token) = guest(&server, "alice").await;
    let auth = bearer(&token);
    let headers = [("Authorization", auth.as_str())];

    // Declared too large: refused before a byte is read.
    let declared = http_raw(
        server.addr,
        "POST",
        "/api/files?name=big.bin",
        &headers,
        Body::Declared(1001),
    )
    .await;
    assert_eq!(declared.status, 413);
    assert_eq!(declared.json()["error"], "file_too_large");

    // Not declared: refused when the bytes pass the limit.
    let big = vec![7u8; 2500];
    let streamed = http_raw(
        server.addr,
        "POST",
        "/api/files?name=big.bin",
        &headers,
        Body::Chunked(&big),
    )
    .await;
    assert_eq!(streamed.status, 413);
    assert_eq!(streamed.json()["error"], "file_too_large");
    assert!(kept_files(server.data.path()).is_empty());

    // Exactly the limit is fine, chunked too.
    let fits = http_raw(
        server.addr,
        "POST",
        "/api/files?name=fits.bin",
        &headers,
        Body::Chunked(&big[..1000]),
    )
    .await;
    assert_eq!(fits.status, 201);
    assert_eq!(fits.json()["size"], 1000);
}

#[tokio::test]
async fn uploads_per_minute_and_bytes_per_user_are_bounded() {
    let server = TestServer::start(|c| {
        c.uploads_per_minute = 3;
        c.max_upload_bytes_per_user = 10;
    })
    .await;
    let (_alice, token) = guest(&server, "alice").await;
    assert_eq!(upload(&server, &token, "a", b"123456").await.status, 201);
    let over = upload(&server, &token, "b", b"123456").await;
    assert_eq!(over.status, 413);
    assert_eq!(over.json()["error"], "quota_exceeded");
    assert_eq!(upload(&server, &token, "c", b"1234").await.status, 201);
    let fast = upload(&server, &token, "d", b"").await;
    assert_eq!(fast.status, 429);
    assert_eq!(fast.json()["error"], "too_many_uploads");
    // Another user has budgets of their own.
    let (_bob, bob_token) = guest(&server, "bob").await;
    assert_eq!(upload(&server, &bob_token, "e", b"12").await.status, 201);
    assert_eq!(kept_files(server.data.path()).len(), 3);
}

#[tokio::test]
async fn a_bad_name_is_refused() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    for name in ["", "..%2Fpasswd", "a%0Ab"] {
        let refused = upload(&server, &token, name, b"x").await;
        assert_eq!(refused.status, 422, "{name}");
        assert_eq!(refused.json()["error"], "invalid_file_name");
    }
}

/// An RGBA test image.
fn gradient(width: u32, height: u32) -> image::DynamicImage {
    image::DynamicImage::ImageRgba8(image::RgbaImage::from_fn(width, height, |x, y| {
        image::Rgba([(x % 256) as u8, (y % 256) as u8, 128, 255])
    }))
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    match format {
        image::ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(img.to_rgb8())
            .write_to(&mut out, format)
            .unwrap(),
        _ => img.write_to(&mut out, format).unwrap(),
    }
    out.into_inner()
}

/// A PNG that says it is `width` × `height` RGBA, with no pixels: what a
/// decompression bomb shows before it inflates.
fn png_claiming(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = b"IHDR".to_vec();
    ihdr.extend_from_slice(&width.to_be_bytes());
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 6, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc32fast::hash(&ihdr).to_be_bytes());
    // The start of an IDAT of zeros (a bomb's would go on for hundreds
    // of MiB inflated); the header is enough to refuse it.
    let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    std::io::Write::write_all(&mut zlib, &[0u8; 65536]).unwrap();
    let mut idat = b"IDAT".to_vec();
    idat.extend_from_slice(&zlib.finish().unwrap());
    png.extend_from_slice(&(idat.len() as u32 - 4).to_be_bytes());
    png.extend_from_slice(&idat);
    png.extend_from_slice(&crc32fast::hash(&idat).to_be_bytes());
    png.extend_from_slice(&[0, 0, 0, 0]);
    png.extend_from_slice(b"IEND");
    png.extend_from_slice(&crc32fast::hash(b"IEND").to_be_bytes());
    png
}

fn decoded(bytes: &[u8]) -> image::DynamicImage {
    image::load_from_memory(bytes).expect("a decodable image")
}

#[tokio::test]
async fn an_image_gets_its_size_and_a_thumbnail() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    let png = encode(&gradient(640, 480), image::ImageFormat::Png);
    let created = upload(&server, &token, "wide.png", &png).await;
    let file = created.created();
    assert_eq!(file["mime"], "image/png");
    assert_eq!(
        (file["width"].as_u64(), file["height"].as_u64()),
        (Some(640), Some(480))
    );
    let id = file["id"].as_str().unwrap().to_string();
    assert_eq!(file["thumb_url"], format!("/api/files/{id}/thumb"));

    let full = download(&server, &token, &id, &[]).await;
    assert_eq!(full.header("content-type"), Some("image/png"));
    let full = decoded(&full.body);
    assert_eq!((full.width(), full.height()), (640, 480));
    assert_eq!(
        full.to_rgba8().get_pixel(100, 50),
        gradient(640, 480).to_rgba8().get_pixel(100, 50)
    );

    let thumb = download(&server, &token, &format!("{id}/thumb"), &[]).await;
    assert_eq!(thumb.status, 200);
    assert_eq!(thumb.header("content-type"), Some("image/png"));
    assert_eq!(
        thumb.header("cache-control"),
        Some("private, max-age=31536000, immutable")
    );
    let thumb = decoded(&thumb.body);
    assert_eq!((thumb.width(), thumb.height()), (320, 240));

    // Other files have no thumbnail.
    let other = upload(&server, &token, "a.txt", b"text").await;
    let other_id = other.json()["id"].as_str().unwrap().to_string();
    assert!(other.json().get("thumb_url").is_none());
    let none = download(&server, &token, &format!("{other_id}/thumb"), &[]).await;
    assert_eq!(none.status, 404);
}

#[tokio::test]
async fn exif_and_gps_are_not_in_what_is_served() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    let jpeg = encode(&gradient(64, 48), image::ImageFormat::Jpeg);
    // An APP1 Exif segment right after SOI: a valid empty TIFF directory,
    // then the GPS position a phone would have written.
    let mut exif = b"Exif\0\0MM\0*\0\0\0\x08\0\0\0\0\0\0".to_vec();
    exif.extend_from_slice(b"GPSLatitude=48.858370N;GPSLongitude=2.294481E");
    let mut tagged = jpeg[..2].to_vec();
    tagged.extend_from_slice(&[0xff, 0xe1]);
    tagged.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
    tagged.extend_from_slice(&exif);
    tagged.extend_from_slice(&jpeg[2..]);
    assert_eq!(decoded(&tagged).width(), 64, "the test image is valid");

    let created = upload(&server, &token, "holiday.jpg", &tagged).await;
    let file = created.created();
    assert_eq!(file["mime"], "image/jpeg");
    assert_eq!(file["width"], 64);
    let id = file["id"].as_str().unwrap().to_string();
    for path in [id.clone(), format!("{id}/thumb")] {
        let served = download(&server, &token, &path, &[]).await;
        assert_eq!(served.status, 200);
        assert_eq!(served.header("content-type"), Some("image/jpeg"));
        let find = |needle: &[u8]| served.body.windows(needle.len()).any(|w| w == needle);
        assert!(
            !find(b"GPSLatitude") && !find(b"48.858370") && !find(b"Exif\0\0"),
            "{path}"
        );
        assert_eq!(decoded(&served.body).height(), 48);
    }
    // What was uploaded is not kept either: only the cleaned bytes are.
    for kept in kept_files(server.data.path()) {
        let bytes = std::fs::read(&kept).unwrap();
        assert!(!bytes.windows(11).any(|w| w == b"GPSLatitude"), "{kept}");
    }
}

#[tokio::test]
async fn a_decompression_bomb_is_refused_from_its_header() {
    let server = TestServer::default().await;
    let (_alice, token) = guest(&server, "alice").await;
    // Too wide; and within the sides but too many bytes (11000² RGBA is 462 MiB).
    for (w, h) in [(50_000, 50_000), (11_000, 11_000)] {
        let refused = upload(&server, &token, "bomb.png", &png_claiming(w, h)).await;
        assert_eq!(refused.status, 422, "{w}x{h}");
        assert_eq!(refused.json()["error"], "image_too_large");
    }
    assert!(kept_files(server.data.path()).is_empty());
    // Bytes that only look like an image are kept as a plain file.
    let broken = upload(
        &server,
        &token,
        "broken.png",
        b"\x89PNG\r\n\x1a\nnot really",
    )
    .await;
    assert_eq!(broken.status, 201);
    assert_eq!(broken.json()["mime"], "application/octet-stream");
}

/// The id of an upload's JSON answer.
fn id_of(created: &RawResponse) -> String {
    created.created()["id"].as_str().unwrap().to_string()
}

/// A file's thumbnail, with the token in the query as an `<img>` sends it.
async fn thumbnail(server: &TestServer, token: &str, id: &str) -> RawResponse {
    let path = format!("/api/files/{id}/thumb?token={token}");
    http_raw(server.addr, "GET", &path, &[], Body::None).await
}

#[tokio::test]
async fn a_file_sent_in_a_room_reaches_its_members_and_only_them() {
    let server = TestServer::default().await;
    let (mut alice, alice_token) = guest(&server, "alice").await;
    let (mut bob, bob_token) = guest(&server, "bob").await;
    let (mut carol, carol_token) = guest(&server, "carol").await;
    alice.join("lobby").await;
    bob.join("lobby").await;
    let png = encode(&gradient(40, 30), image::ImageFormat::Png);
    let image = upload(&server, &alice_token, "cat.png", &png).await;
    let image_size = image.json()["size"].as_u64().unwrap();
    let image_id = id_of(&image);
    let notes_id = id_of(&upload(&server, &alice_token, "notes.txt", b"hello notes").await);
    // Not sent yet: the uploader's alone.
    assert_eq!(
        download(&server, &bob_token, &image_id, &[]).await.status,
        404
    );

    alice
        .send(
            json!({"type":"send","room":"lobby","text":"","client_id":"c-1",
                     "attachments":[image_id, notes_id]}),
        )
        .await;
    let ServerMsg::Message {
        from,
        text,
        attachments,
        ..
    } = bob
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await
    else {
        unreachable!()
    };
    assert_eq!((from.as_str(), text.as_str()), ("alice", ""));
    assert_eq!(
        attachments,
        [
            Attachment {
                id: image_id.clone(),
                name: "cat.png".into(),
                size: image_size,
                mime: "image/png".into(),
                width: Some(40),
                height: Some(30),
            },
            Attachment {
                id: notes_id.clone(),
                name: "notes.txt".into(),
                size: 11,
                mime: "application/octet-stream".into(),
                width: None,
                height: None,
            }
        ]
    );
    assert!(matches!(
        alice
            .recv_until(|m| matches!(m, ServerMsg::Ack { .. }))
            .await,
        ServerMsg::Ack { seq: Some(1), .. }
    ));

    // A member gets the bytes the uploader gets, and the thumbnail.
    let mine = download(&server, &alice_token, &image_id, &[]).await;
    let his = download(&server, &bob_token, &image_id, &[]).await;
    assert_eq!((his.status, &his.body), (200, &mine.body));
    assert_eq!(thumbnail(&server, &bob_token, &image_id).await.status, 200);
    let notes = download(&server, &bob_token, &notes_id, &[]).await;
    assert_eq!(notes.body, b"hello notes");

    // Not a member: the 404 of no file, thumbnail included.
    let outside = download(&server, &carol_token, &image_id, &[]).await;
    assert_eq!(
        (outside.status, outside.json()["error"].clone()),
        (404, json!("not_found"))
    );
    assert_eq!(
        thumbnail(&server, &carol_token, &image_id).await.status,
        404
    );
    // A newcomer's history carries the files, and it may read them.
    let ServerMsg::History { messages, .. } = carol.join_with_history("lobby").await else {
        panic!("history on join")
    };
    assert_eq!(messages[0].attachments, attachments);
    assert_eq!(
        download(&server, &carol_token, &notes_id, &[]).await.status,
        200
    );
    // Leaving the room ends it.
    carol.send(json!({"type":"leave","room":"lobby"})).await;
    carol
        .recv_until(|m| matches!(m, ServerMsg::LeaveOk { .. }))
        .await;
    assert_eq!(
        download(&server, &carol_token, &notes_id, &[]).await.status,
        404
    );
}

#[tokio::test]
async fn attachments_are_checked() {
    let server = TestServer::start(|c| c.max_files_per_message = 2).await;
    let mut alice = common::Client::connect(&server.url()).await;
    let ServerMsg::Welcome {
        limits,
        upload_token: Some(alice_token),
        ..
    } = alice.hello("alice").await
    else {
        panic!("a welcome")
    };
    assert_eq!(limits.max_files_per_message, 2);
    let (_bob, bob_token) = guest(&server, "bob").await;
    alice.join("lobby").await;
    let mine: Vec<String> = futures_util::future::join_all(
        ["a.bin", "b.bin", "c.bin"]
            .map(|name| upload(&server, &alice_token, name, name.as_bytes())),
    )
    .await
    .iter()
    .map(id_of)
    .collect();
    let bobs = id_of(&upload(&server, &bob_token, "bob.bin", b"bob's").await);

    for (attachments, text, code) in [
        (json!(["AAAAAAAAAAAAAAAAAAAAAA"]), "", "unknown_file"),
        (json!([bobs]), "not mine", "unknown_file"),
        (json!(mine), "three", "too_many_files"),
        (json!([mine[0], mine[0]]), "twice", "bad_field"),
        (json!([]), " ", "empty_text"),
    ] {
        alice
            .send(
                json!({"type":"send","room":"lobby","text":text,"client_id":"x",
                         "attachments":attachments}),
            )
            .await;
        let refused = alice
            .recv_until(|m| matches!(m, ServerMsg::Error { .. }))
            .await;
        assert!(
            matches!(&refused, ServerMsg::Error { code: c, client_id: Some(id), room: Some(r), .. }
                     if c.as_str() == code && id == "x" && r == "lobby"),
            "{refused:?}"
        );
    }
    // Nothing of that was said; two of her own files, with no caption, are.
    alice
        .send(
            json!({"type":"send","room":"lobby","text":"","client_id":"ok",
                     "attachments":[mine[0], mine[1]]}),
        )
        .await;
    let said = alice
        .recv_until(|m| matches!(m, ServerMsg::Message { .. }))
        .await;
    assert!(
        matches!(said, ServerMsg::Message { seq: 1, ref attachments, .. } if attachments.len() == 2)
    );
}

#[tokio::test]
async fn a_direct_message_gives_its_files_to_the_other_person_only() {
    let server = TestServer::default().await;
    let (mut alice, alice_token) = guest(&server, "alice").await;
    let (mut bob, bob_token) = guest(&server, "bob").await;
    let (_carol, carol_token) = guest(&server, "carol").await;
    let id = id_of(&upload(&server, &alice_token, "psst.txt", b"between us").await);
    let room = "@alice+bob";
    alice.join(room).await;
    alice
        .send(
            json!({"type":"send","room":room,"text":"for you","client_id":"d-1",
                     "attachments":[id]}),
        )
        .await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    bob.recv_until(|m| matches!(m, ServerMsg::Conversation { .. }))
        .await;
    bob.send(json!({"type": "join", "room": room})).await;
    let got = bob
        .recv_until(|m| matches!(m, ServerMsg::History { .. }))
        .await;
    assert!(
        matches!(&got, ServerMsg::History { messages, .. }
                 if messages.len() == 1 && messages[0].attachments[0].id == id),
        "{got:?}"
    );
    assert_eq!(
        download(&server, &bob_token, &id, &[]).await.body,
        b"between us"
    );
    // Leaving the conversation does not take it away: it is his.
    bob.send(json!({"type": "leave", "room": room})).await;
    bob.recv_until(|m| matches!(m, ServerMsg::LeaveOk { .. }))
        .await;
    assert_eq!(download(&server, &bob_token, &id, &[]).await.status, 200);
    assert_eq!(download(&server, &carol_token, &id, &[]).await.status, 404);
}

/// Waits until `id` is gone for `token`'s user (the collector runs on its
/// own clock; there is no event to wait for).
async fn until_gone(server: &TestServer, token: &str, id: &str) {
    let gone = async {
        while download(server, token, id, &[]).await.status != 404 {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), gone)
        .await
        .expect("the file was collected");
}

/// Waits until the server keeps the bytes of `count` files: the collector
/// forgets a file (downloads 404) before it removes its bytes.
async fn until_kept(server: &TestServer, count: usize) {
    let kept = async {
        while kept_files(server.data.path()).len() != count {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), kept)
        .await
        .unwrap_or_else(|_| panic!("{:?} kept, not {count}", kept_files(server.data.path())));
}

#[tokio::test]
async fn files_no_message_carries_are_deleted_with_their_bytes() {
    let server = TestServer::start(|c| {
        c.retention_count = Some(1);
        c.retention_interval = std::time::Duration::from_millis(100);
        c.unsent_file_ttl = std::time::Duration::from_secs(1);
    })
    .await;
    let (mut alice, token) = guest(&server, "alice").await;
    alice.join("lobby").await;
    let sent = id_of(&upload(&server, &token, "sent.bin", b"carried by a message").await);
    alice
        .send(
            json!({"type":"send","room":"lobby","text":"","client_id":"c-1",
                     "attachments":[sent]}),
        )
        .await;
    alice
        .recv_until(|m| matches!(m, ServerMsg::Ack { .. }))
        .await;
    let unsent = id_of(&upload(&server, &token, "unsent.bin", b"never sent").await);
    assert_eq!(kept_files(server.data.path()).len(), 2);

    // Never sent: gone after its time, bytes too; the sent one stays.
    until_gone(&server, &token, &unsent).await;
    assert_eq!(download(&server, &token, &sent, &[]).await.status, 200);
    until_kept(&server, 1).await;

    // Retention drops the message that carried it: gone too.
    alice.say("lobby", "pushes the first one out", "c-2").await;
    until_gone(&server, &token, &sent).await;
    until_kept(&server, 0).await;
}

#[tokio::test]
async fn a_guests_rename_brings_a_new_upload_token() {
    let server = TestServer::default().await;
    let (mut alice, old) = guest(&server, "alice").await;
    alice.send(json!({"type":"rename","name":"alicia"})).await;
    let ServerMsg::Renamed {
        upload_token: Some(new),
        ..
    } = alice
        .recv_until(|m| matches!(m, ServerMsg::Renamed { .. }))
        .await
    else {
        panic!("the rename carries a new token")
    };
    assert_eq!(upload(&server, &old, "a.txt", b"old").await.status, 401);
    let created = upload(&server, &new, "a.txt", b"new").await;
    assert_eq!(created.status, 201);
    let id = id_of(&created);
    assert_eq!(download(&server, &new, &id, &[]).await.body, b"new");
}
