//! Accounts, sessions and the checks at the upgrade: what an attacker or a
//! signed-out user runs into, and what a signed-in user keeps.

mod common;

use std::time::Duration;

use common::{connect_with, http, joined, Ended, TestServer};
use hubbub_protocol::{close, ServerMsg};
use serde_json::json;

async fn register(server: &TestServer, name: &str, password: &str) -> common::HttpResponse {
    http(
        server.addr,
        "POST",
        "/api/register",
        &[],
        Some(json!({"name": name, "password": password})),
    )
    .await
}

async fn login(server: &TestServer, name: &str, password: &str) -> common::HttpResponse {
    http(
        server.addr,
        "POST",
        "/api/login",
        &[],
        Some(json!({"name": name, "password": password})),
    )
    .await
}

fn token(response: &common::HttpResponse) -> String {
    response.json()["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn register_login_and_chat_as_an_account() {
    let server = TestServer::default().await;
    let created = register(&server, "Alice", "correct horse").await;
    assert_eq!(created.status, 201, "{}", created.body);
    let cookie = created.header("set-cookie").unwrap();
    assert!(cookie.starts_with("hubbub_session="));
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    assert_eq!(created.json()["user"], "Alice");

    // The same name, any case, is taken.
    assert_eq!(register(&server, "alice", "another one").await.status, 409);
    // Weak input is refused with a reason.
    assert_eq!(register(&server, "bob", "short").await.status, 422);
    assert_eq!(
        register(&server, "no spaces", "long enough").await.status,
        422
    );

    let session = login(&server, "ALICE", "correct horse").await;
    assert_eq!(session.status, 200, "{}", session.body);
    let bearer = format!("Bearer {}", token(&session));

    // The socket is the account, whatever name hello gives; two tabs at once.
    let mut tab1 = connect_with(&server.url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    match tab1.hello("whoever").await {
        ServerMsg::Welcome { user, .. } => assert_eq!(user, "Alice"),
        other => panic!("{other:?}"),
    }
    let mut tab2 = connect_with(&server.url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    tab2.hello("Alice").await;
    tab1.join("lobby").await;
    tab2.join("lobby").await;
    let mut bob = server.join_as("bob").await;
    assert_eq!(
        bob.join("lobby").await,
        vec!["Alice".to_string()],
        "one user, two connections"
    );
    // A direct message: both tabs hear of the conversation.
    bob.join("@alice+bob").await;
    bob.say("@alice+bob", "to both tabs", "d-1").await;
    for tab in [&mut tab1, &mut tab2] {
        tab.recv_until(|m| matches!(m, ServerMsg::Conversation { room, with } if room == "@alice+bob" && with == "bob"))
            .await;
    }
    // An account's name is not for renaming.
    tab1.send(json!({"type": "rename", "name": "alicia"})).await;
    tab1.recv_until(|m| matches!(m, ServerMsg::Error { code, .. } if code.as_str() == "forbidden"))
        .await;

    // GET /api/session tells the browser who it is.
    let cookie_pair = cookie.split(';').next().unwrap();
    let me = http(
        server.addr,
        "GET",
        "/api/session",
        &[("cookie", cookie_pair)],
        None,
    )
    .await;
    assert_eq!(me.json()["user"], "Alice");
    let anon = http(server.addr, "GET", "/api/session", &[], None).await;
    assert_eq!(
        anon.json(),
        json!({"user": null, "expires_at": null, "guests": true})
    );
}

#[tokio::test]
async fn a_wrong_password_or_unknown_user_gets_the_same_refusal() {
    let server = TestServer::default().await;
    register(&server, "carol", "right password").await;
    let wrong = login(&server, "carol", "wrong password").await;
    let nobody = login(&server, "nobody", "wrong password").await;
    assert_eq!((wrong.status, nobody.status), (401, 401));
    assert_eq!(wrong.json()["error"], "bad_credentials");
    // API answers carry the security headers.
    assert_eq!(wrong.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(wrong.header("cache-control"), Some("no-store"));
    assert!(wrong
        .header("content-security-policy")
        .unwrap()
        .contains("frame-ancestors 'none'"));
    assert_eq!(wrong.json(), nobody.json(), "no hint which half was wrong");
    assert!(wrong.header("set-cookie").is_none());
}

#[tokio::test]
async fn without_credentials_no_socket_when_guests_are_off() {
    let server = TestServer::start(|c| c.guests = false).await;
    assert_eq!(connect_with(&server.url(), &[]).await.err(), Some(401));
    assert_eq!(
        connect_with(&server.url(), &[("authorization", "Bearer not-a-session")])
            .await
            .err(),
        Some(401)
    );
    let session = register(&server, "dave", "a fine password").await;
    let bearer = format!("Bearer {}", token(&session));
    let mut dave = connect_with(&server.url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    dave.hello("dave").await;
}

#[tokio::test]
async fn a_guest_cannot_take_a_registered_name() {
    let server = TestServer::default().await;
    register(&server, "Erin", "a fine password").await;
    let mut guest = common::Client::connect(&server.url()).await;
    guest.send(json!({"type": "hello", "name": "erin"})).await;
    guest.expect_error("name_taken").await;
    guest.hello("frank").await;
    guest.send(json!({"type": "rename", "name": "ERIN"})).await;
    guest.expect_error("name_taken").await;
    // And nobody can register a name a guest is using right now.
    assert_eq!(
        register(&server, "Frank", "a fine password").await.status,
        409
    );
}

#[tokio::test]
async fn logout_ends_the_session_and_closes_its_sockets() {
    let server = TestServer::default().await;
    let session = register(&server, "gina", "a fine password").await;
    let bearer = format!("Bearer {}", token(&session));
    let mut gina = connect_with(&server.url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    gina.hello("gina").await;
    gina.join("lobby").await;
    let mut watcher = server.join_as("watcher").await;
    watcher.join("lobby").await;

    let out = http(
        server.addr,
        "POST",
        "/api/logout",
        &[("authorization", &bearer)],
        None,
    )
    .await;
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(gina.ended().await, Ended::Close(close::LOGGED_OUT));
    watcher
        .recv_until(|m| common::left(m, "lobby", "gina"))
        .await;
    // The token is dead.
    assert_eq!(
        http(
            server.addr,
            "GET",
            "/api/session",
            &[("authorization", &bearer)],
            None
        )
        .await
        .json()["user"],
        json!(null)
    );
}

#[tokio::test]
async fn an_expired_session_cannot_connect_and_its_socket_is_closed_with_4502() {
    let server = TestServer::start(|c| {
        c.session_ttl = Duration::from_millis(1500);
        c.heartbeat = Duration::from_millis(100);
        c.idle_timeout = Duration::from_secs(2);
    })
    .await;
    let session = register(&server, "hank", "a fine password").await;
    let bearer = format!("Bearer {}", token(&session));
    let mut hank = connect_with(&server.url(), &[("authorization", &bearer)])
        .await
        .unwrap();
    hank.hello("hank").await;
    hank.join("lobby").await;
    hank.recv_until(|m| joined(m, "lobby", "hank")).await;
    assert_eq!(hank.ended().await, Ended::Close(close::SESSION_EXPIRED));
    assert_eq!(
        connect_with(&server.url(), &[("authorization", &bearer)])
            .await
            .err(),
        Some(401)
    );
}

#[tokio::test]
async fn a_cross_site_upgrade_or_api_call_is_refused() {
    let server =
        TestServer::start(|c| c.allowed_origins = vec!["https://friend.example".into()]).await;
    let evil = [("origin", "https://evil.example")];
    assert_eq!(connect_with(&server.url(), &evil).await.err(), Some(403));
    let login = http(
        server.addr,
        "POST",
        "/api/login",
        &evil,
        Some(json!({"name": "x", "password": "y"})),
    )
    .await;
    assert_eq!(login.status, 403);
    // Our own origin and an allowed one get through.
    let own = format!("http://{}", server.addr);
    connect_with(&server.url(), &[("origin", &own)])
        .await
        .unwrap();
    connect_with(&server.url(), &[("origin", "https://friend.example")])
        .await
        .unwrap();
}

#[tokio::test]
async fn connections_per_ip_and_per_user_are_capped() {
    let server = TestServer::start(|c| {
        c.max_conns_per_ip = 3;
        c.max_conns_per_user = 2;
    })
    .await;
    let session = register(&server, "ivy", "a fine password").await;
    let bearer = format!("Bearer {}", token(&session));
    let auth = [("authorization", bearer.as_str())];
    let mut first = connect_with(&server.url(), &auth).await.unwrap();
    first.hello("ivy").await;
    let mut second = connect_with(&server.url(), &auth).await.unwrap();
    second.hello("ivy").await;
    assert_eq!(
        connect_with(&server.url(), &auth).await.err(),
        Some(429),
        "per user"
    );
    let _third = common::Client::connect(&server.url()).await;
    assert_eq!(
        connect_with(&server.url(), &[]).await.err(),
        Some(429),
        "per IP"
    );
    // A slot frees when its connection ends.
    first.send(json!({"type": "quit"})).await;
    assert_eq!(first.ended().await, Ended::Close(close::NORMAL));
    let deadline = tokio::time::Instant::now() + common::DEADLINE;
    loop {
        match connect_with(&server.url(), &[]).await {
            Ok(_) => break,
            // The server frees the slot as its connection task ends, just
            // after the handshake; a round trip on a live socket lets it run.
            Err(429) if tokio::time::Instant::now() < deadline => {
                second.drain().await;
            }
            Err(status) => panic!("{status}"),
        }
    }
}

#[tokio::test]
async fn login_attempts_are_throttled_per_address() {
    let server = TestServer::default().await;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(login(&server, "nobody", "wrong password").await.status);
    }
    assert!(statuses[..10].iter().all(|&s| s == 401), "{statuses:?}");
    assert_eq!(statuses[11], 429, "{statuses:?}");
}
