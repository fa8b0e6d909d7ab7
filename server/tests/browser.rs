//! The real-browser end-to-end test: headless Chromium, driven through
//! chromedriver, against the `hubbub` binary serving the built web bundle.
//!
//! Two browser sessions pick guest names, join one room; one sends, the other
//! sees the message (as text, not HTML) and the sender in its presence list.
//! Then the server is killed (SIGKILL) and restarted on the same port: both
//! pages reconnect by themselves, and a message sent after the restart arrives.
//!
//! Accounts: a page registers in the UI, chats signed in, signs out (back to
//! the sign-in screen, its socket closed on the server), signs in again; a
//! wrong password shows the server's error; a guest cannot take the
//! registered name; a logout from elsewhere (close 4501) returns the page to
//! the sign-in screen; and when the server comes back with `--guests off`, a
//! connected guest's refused upgrade leads to the sign-in screen (not a
//! reconnect loop), which offers no guest button; a session that expires
//! while chatting (close 1008) ends there too, with a message.
//!
//! Needs `chromium` and `chromedriver` (Debian: `chromium chromium-driver`,
//! installed by `scripts/setup.sh --browser`) and the web bundle in web/dist
//! (`scripts/build-web.sh`); without them the test fails and says how to get
//! them. `HUBBUB_CHROMIUM` / `HUBBUB_CHROMEDRIVER` override the binaries.
//! Screenshots of each step (and `failure.png` of the page that timed out)
//! go to `$CARGO_TARGET_TMPDIR/browser/` (target/tmp/browser/).

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};
use tokio::process::{Child, Command};

/// How long any one expected change may take to show in the page.
const DEADLINE: Duration = Duration::from_secs(30);
/// How often the page is polled while waiting.
const POLL: Duration = Duration::from_millis(100);
/// Reconnecting waits a random backoff (capped at 15 s) on top of detection.
const RECONNECT_DEADLINE: Duration = Duration::from_secs(60);

const INSTALL_HINT: &str = "install them with `scripts/setup.sh --browser` \
    (Debian: apt-get install chromium chromium-driver), or point HUBBUB_CHROMIUM \
    and HUBBUB_CHROMEDRIVER at them";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("server/ has a parent")
        .to_path_buf()
}

/// The first of `names` found on PATH (or the override in `env`).
fn find_binary(env: &str, names: &[&str]) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!("browser test: none of {names:?} is installed (or set {env}); {INSTALL_HINT}");
}

/// The `hubbub` binary, started and killed by the test.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts hubbub on `listen` over `data`; waits for its listening line.
    async fn start(listen: &str, data: &Path) -> Server {
        Server::start_with(listen, data, &[]).await
    }

    /// [`Server::start`] with extra command-line arguments.
    async fn start_with(listen: &str, data: &Path, extra: &[&str]) -> Server {
        let mut args = vec![
            "--listen",
            listen,
            "--heartbeat",
            "2s",
            "--idle-timeout",
            "10s",
        ];
        args.extend_from_slice(extra);
        let (child, addr) = common::spawn_hubbub(data, &args).await;
        Server { child, addr }
    }

    async fn kill(mut self) {
        self.child.kill().await.expect("kill hubbub");
    }
}

/// chromedriver on an ephemeral port.
struct Driver {
    _child: Child,
    url: String,
}

impl Driver {
    async fn start() -> Driver {
        let binary = find_binary("HUBBUB_CHROMEDRIVER", &["chromedriver"]);
        let port = free_port();
        let child = Command::new(&binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!("cannot start {}: {err}; {INSTALL_HINT}", binary.display())
            });
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < DEADLINE,
                "chromedriver did not listen on {port} within {DEADLINE:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        Driver { _child: child, url }
    }

    /// A new headless Chromium session with its own profile, in the dark
    /// colour scheme if `dark`.
    async fn session(&self, profile: &Path, dark: bool) -> Client {
        let chromium = find_binary(
            "HUBBUB_CHROMIUM",
            &["chromium", "chromium-browser", "google-chrome"],
        );
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--no-first-run",
                    "--disable-quic",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.display()),
                ],
            },
        });
        let mut caps = caps;
        if dark {
            let args = caps["goog:chromeOptions"]["args"]
                .as_array_mut()
                .expect("args");
            args.push(json!("--force-dark-mode"));
            args.push(json!("--blink-settings=preferredColorScheme=0"));
        }
        let Value::Object(caps) = caps else {
            unreachable!()
        };
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&self.url)
            .await
            .unwrap_or_else(|err| panic!("cannot start a Chromium session: {err}; {INSTALL_HINT}"))
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Runs `script` in the page until it returns `true`, or panics after
/// `deadline` with `what` and the page's last answer.
async fn wait_until(page: &Client, what: &str, deadline: Duration, script: &str, args: Vec<Value>) {
    let started = Instant::now();
    loop {
        let answer = page.execute(script, args.clone()).await;
        if matches!(answer, Ok(Value::Bool(true))) {
            return;
        }
        if started.elapsed() > deadline {
            let status = page
                .execute(
                    "return document.getElementById('connection-status')?.textContent ?? null",
                    vec![],
                )
                .await
                .ok();
            screenshot(page, "failure").await;
            panic!("timed out after {deadline:?} waiting for {what}; last answer {answer:?}, status {status:?}");
        }
        tokio::time::sleep(POLL).await;
    }
}

async fn status_is(page: &Client, state: &str, deadline: Duration) {
    wait_until(
        page,
        &format!("connection status {state}"),
        deadline,
        "return document.getElementById('connection-status')?.dataset.state === arguments[0]",
        vec![json!(state)],
    )
    .await;
}

async fn sees_message(page: &Client, text: &str, deadline: Duration) {
    wait_until(
        page,
        &format!("message {text:?}"),
        deadline,
        "return [...document.querySelectorAll('.message:not(.pending) .text')]
            .some(p => p.textContent === arguments[0])",
        vec![json!(text)],
    )
    .await;
}

async fn sees_member(page: &Client, user: &str) {
    wait_until(
        page,
        &format!("{user} in the presence list"),
        DEADLINE,
        "return !!document.querySelector(`#presence-list li[data-user=\"${arguments[0]}\"]`)",
        vec![json!(user)],
    )
    .await;
}

/// Opens the app, continues as a guest named `name`, joins `room`.
async fn sign_in_and_join(page: &Client, base: &str, name: &str, room: &str) {
    page.goto(base).await.expect("open the app");
    click(page, "#guest-button").await;
    let input = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#name-input"))
        .await
        .expect("the name picker shows");
    input.send_keys(name).await.expect("type a name");
    input
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("submit the name");
    status_is(page, "connected", DEADLINE).await;
    join_room(page, name, room).await;
}

/// Joins `room` from the join form and waits until `me` is listed in it.
async fn join_room(page: &Client, me: &str, room: &str) {
    let join = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#join-input"))
        .await
        .expect("the join form shows");
    join.send_keys(room).await.expect("type a room");
    join.send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("join the room");
    wait_until(
        page,
        &format!("#{room} open"),
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '#' + arguments[0]",
        vec![json!(room)],
    )
    .await;
    sees_member(page, me).await;
}

/// Waits for the element `css` and clicks it.
async fn click(page: &Client, css: &str) {
    page.wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css} shows: {err}"))
        .click()
        .await
        .unwrap_or_else(|err| panic!("click {css}: {err}"));
}

/// Types `text` into the (empty) field `css`.
async fn fill(page: &Client, css: &str, text: &str) {
    let field = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css} shows: {err}"));
    field.clear().await.expect("clear the field");
    field.send_keys(text).await.expect("type into the field");
}

/// Waits until the element `css` exists (or, with `present` false, does not).
async fn element(page: &Client, css: &str, present: bool) {
    wait_until(
        page,
        &format!("{css} {}", if present { "present" } else { "absent" }),
        DEADLINE,
        "return !!document.querySelector(arguments[0]) === arguments[1]",
        vec![json!(css), json!(present)],
    )
    .await;
}

/// Waits until the text of `css` contains `text`.
async fn text_contains(page: &Client, css: &str, text: &str) {
    wait_until(
        page,
        &format!("{css} saying {text:?}"),
        DEADLINE,
        "return (document.querySelector(arguments[0])?.textContent ?? '').includes(arguments[1])",
        vec![json!(css), json!(text)],
    )
    .await;
}

/// The server's open-connection gauge, read from `/metrics`.
async fn open_connections(addr: SocketAddr) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to /metrics");
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .await
        .expect("ask for /metrics");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read /metrics");
    answer
        .lines()
        .find_map(|line| line.strip_prefix("hubbub_connections "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no hubbub_connections gauge in {answer:?}"))
}

/// `POST /api/logout` from outside the page, with its session `cookie`.
async fn logout_elsewhere(addr: SocketAddr, cookie: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the API");
    let request = format!(
        "POST /api/logout HTTP/1.0\r\nHost: {addr}\r\nCookie: hubbub_session={cookie}\r\nContent-Length: 0\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the logout");
    let mut answer = String::new();
    stream
        .read_to_string(&mut answer)
        .await
        .expect("read the answer");
    assert!(
        answer.starts_with("HTTP/1.0 204") || answer.starts_with("HTTP/1.1 204"),
        "logout answered {answer:?}"
    );
}

/// Waits until the server counts `n` open connections.
async fn connections_are(addr: SocketAddr, n: u64) {
    let started = Instant::now();
    loop {
        let open = open_connections(addr).await;
        if open == n {
            return;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "the server still counts {open} open connections, not {n}, after {DEADLINE:?}"
        );
        tokio::time::sleep(POLL).await;
    }
}

async fn say(page: &Client, text: &str) {
    let composer = page
        .find(Locator::Css("#composer-input"))
        .await
        .expect("the composer shows");
    composer.send_keys(text).await.expect("type a message");
    composer
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("send with Enter");
}

async fn screenshot(page: &Client, name: &str) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("create the screenshot dir");
    let png = page.screenshot().await.expect("take a screenshot");
    std::fs::write(dir.join(format!("{name}.png")), png).expect("save the screenshot");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_browsers_chat_and_reconnect_after_a_server_restart() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: the web bundle is not built ({} is missing); run scripts/build-web.sh",
        bundle.display()
    );
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");

    let server = Server::start("127.0.0.1:0", data.path()).await;
    let addr = server.addr;
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let alice = driver.session(&profiles.path().join("alice"), false).await;
    let bob = driver.session(&profiles.path().join("bob"), true).await;

    sign_in_and_join(&alice, &base, "alice", "e2e").await;
    sign_in_and_join(&bob, &base, "bob", "e2e").await;
    sees_member(&alice, "bob").await;
    sees_member(&bob, "alice").await;

    // Markup in a message is shown as characters, never run.
    let first = "hi alice <img src=x onerror=alert(1)>";
    say(&bob, first).await;
    sees_message(&alice, first, DEADLINE).await;
    sees_message(&bob, first, DEADLINE).await;
    wait_until(
        &alice,
        "no <img> element made from the message",
        DEADLINE,
        "return document.querySelector('.messages img') === null",
        vec![],
    )
    .await;
    screenshot(&alice, "1-chatting").await;

    // Kill the server outright and start it again on the same port.
    server.kill().await;
    wait_until(
        &alice,
        "the page to notice the server is gone",
        DEADLINE,
        "return document.getElementById('connection-status')?.dataset.state !== 'connected'",
        vec![],
    )
    .await;
    // What is sent while offline waits in the page and goes out later.
    let queued = "sent while the server was down";
    say(&alice, queued).await;
    wait_until(
        &alice,
        "the message shown as queued",
        DEADLINE,
        "return !!document.querySelector('.message.pending.queued')",
        vec![],
    )
    .await;
    screenshot(&alice, "2-offline").await;
    let server = Server::start(&addr.to_string(), data.path()).await;
    assert_eq!(server.addr, addr, "restarted on the same address");
    status_is(&alice, "connected", RECONNECT_DEADLINE).await;
    status_is(&bob, "connected", RECONNECT_DEADLINE).await;
    sees_member(&alice, "bob").await;
    sees_member(&bob, "alice").await;

    sees_message(&bob, queued, DEADLINE).await;
    sees_message(&alice, queued, DEADLINE).await;

    let second = "back after the restart";
    say(&alice, second).await;
    sees_message(&bob, second, DEADLINE).await;
    sees_message(&alice, second, DEADLINE).await;
    screenshot(&alice, "3-reconnected").await;
    screenshot(&bob, "3-reconnected-dark").await;

    // A direct message from the presence list.
    alice
        .find(Locator::Css(
            "button[aria-label='Send a direct message to bob']",
        ))
        .await
        .expect("a direct-message button for bob")
        .click()
        .await
        .expect("open the conversation");
    wait_until(
        &alice,
        "the conversation with bob open",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '@bob'",
        vec![],
    )
    .await;
    say(&alice, "just between us").await;
    sees_message(&alice, "just between us", DEADLINE).await;
    let conversation = bob
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(".nav-link[aria-label^='@alice']"))
        .await
        .expect("bob gets a conversation with alice");
    conversation.click().await.expect("open it");
    sees_message(&bob, "just between us", DEADLINE).await;

    // Renaming shows in the other member's list.
    click(&bob, ".user-button").await;
    click(&bob, "#change-name").await;
    let rename = bob
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#rename-input"))
        .await
        .expect("the rename form");
    rename.clear().await.expect("clear the old name");
    rename.send_keys("robert").await.expect("type a new name");
    rename
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("rename");
    alice
        .find(Locator::Css(".nav-link[aria-label^='#e2e']"))
        .await
        .expect("the room in alice's list")
        .click()
        .await
        .expect("back to the room");
    sees_member(&alice, "robert").await;

    // A phone-sized window: the room list becomes a drawer.
    for (page, name) in [(&alice, "4-phone"), (&bob, "4-phone-dark")] {
        page.set_window_size(360, 740).await.expect("resize");
        wait_until(
            page,
            "the rooms button on a narrow screen",
            DEADLINE,
            "return getComputedStyle(document.querySelector('.rooms-toggle')).display !== 'none'",
            vec![],
        )
        .await;
        screenshot(page, name).await;
    }

    // A guest can still sign in or create an account: the menu leads to
    // the sign-in screen, and the guest's socket closes.
    click(&alice, ".user-button").await;
    element(&alice, "#change-name", true).await;
    click(&alice, "#sign-in-instead").await;
    element(&alice, "#login-password", true).await;

    alice.close().await.expect("close alice's session");
    bob.close().await.expect("close bob's session");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_register_sign_out_sign_in_and_guests_off() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: the web bundle is not built ({} is missing); run scripts/build-web.sh",
        bundle.display()
    );
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let addr = server.addr;
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("carol"), false).await;
    let dark = driver.session(&profiles.path().join("dark"), true).await;
    for p in [&page, &dark] {
        p.set_window_size(360, 740)
            .await
            .expect("a phone-sized window");
    }

    // The sign-in screen, with the guest way in (guests are on by default).
    page.goto(&base).await.expect("open the app");
    element(&page, "#login-password", true).await;
    element(&page, "#guest-button", true).await;
    screenshot(&page, "auth-1-sign-in").await;
    dark.goto(&base).await.expect("open the app");
    element(&dark, "#login-password", true).await;
    screenshot(&dark, "auth-1-sign-in-dark").await;
    // The rest runs wide, where the room list is not a drawer.
    page.set_window_size(1280, 800)
        .await
        .expect("a wide window");
    // The dark page chats as a guest (until guests are turned off below).
    click(&dark, "#guest-button").await;
    fill(&dark, "#name-input", "dora").await;
    click(
        &dark,
        "form[aria-label='Continue as a guest'] button[type=submit]",
    )
    .await;
    status_is(&dark, "connected", DEADLINE).await;

    // Register in the UI; the rules are checked before anything is sent.
    click(&page, "#tab-register").await;
    fill(&page, "#account-name", "carol").await;
    fill(&page, "#register-password", "correct horse").await;
    fill(&page, "#register-confirm", "correct hors").await;
    click(&page, "#auth-submit").await;
    text_contains(&page, "#password-help", "do not match").await;
    screenshot(&page, "auth-2-register-mismatch").await;
    fill(&page, "#register-confirm", "correct horse").await;
    click(&page, "#auth-submit").await;
    status_is(&page, "connected", DEADLINE).await;

    // Chat signed in: the account name is who speaks.
    join_room(&page, "carol", "accounts").await;
    say(&page, "hello as an account").await;
    sees_message(&page, "hello as an account", DEADLINE).await;
    connections_are(addr, 2).await;

    // The user menu: the account name, "Sign out", no rename.
    click(&page, ".user-button").await;
    element(&page, "#sign-out", true).await;
    element(&page, "#change-name", false).await;
    element(&page, "#rename-input", false).await;
    text_contains(&page, "#account-menu", "carol").await;
    screenshot(&page, "auth-3-account-menu").await;

    // Sign out: back to the sign-in screen, the socket closed on the server.
    click(&page, "#sign-out").await;
    element(&page, "#login-password", true).await;
    connections_are(addr, 1).await;

    // A wrong password shows the server's answer under the form.
    fill(&page, "#account-name", "carol").await;
    fill(&page, "#login-password", "not the password").await;
    click(&page, "#auth-submit").await;
    text_contains(&page, "#auth-error", "Wrong name or password").await;
    screenshot(&page, "auth-4-wrong-password").await;

    // A guest cannot take the registered name.
    click(&page, "#guest-button").await;
    fill(&page, "#name-input", "carol").await;
    page.find(Locator::Css("#name-input"))
        .await
        .expect("the name field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("submit the guest name");
    text_contains(&page, "#name-help", "sign in").await;
    screenshot(&page, "auth-5-guest-name-registered").await;

    // Sign in again: the chat comes back, with the room.
    click(&page, "#back-to-sign-in").await;
    fill(&page, "#account-name", "carol").await;
    fill(&page, "#login-password", "correct horse").await;
    page.find(Locator::Css("#login-password"))
        .await
        .expect("the password field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("sign in with Enter");
    status_is(&page, "connected", DEADLINE).await;
    sees_member(&page, "carol").await;
    say(&page, "back again").await;
    sees_message(&page, "back again", DEADLINE).await;
    screenshot(&page, "auth-6-signed-in-again").await;

    // Signed out elsewhere (close 4501): back to the sign-in screen, saying so.
    let cookie = page
        .get_named_cookie("hubbub_session")
        .await
        .expect("the session cookie");
    logout_elsewhere(addr, cookie.value()).await;
    element(&page, "#login-password", true).await;
    text_contains(&page, "#auth-notice", "signed out").await;
    screenshot(&page, "auth-7-signed-out-elsewhere").await;

    // The server comes back without guests: the guest's reconnect is refused
    // at the upgrade (401), and the page goes to the sign-in screen, which
    // offers no guest button, instead of retrying forever.
    server.kill().await;
    let server = Server::start_with(&addr.to_string(), data.path(), &["--guests", "off"]).await;
    wait_until(
        &dark,
        "the guest sent to the sign-in screen",
        RECONNECT_DEADLINE,
        "return !!document.getElementById('login-password')",
        vec![],
    )
    .await;
    text_contains(&dark, "#auth-notice", "no longer takes guests").await;
    element(&dark, "#guest-button", false).await;
    screenshot(&dark, "auth-8-guests-off-dark").await;
    page.refresh().await.expect("reload the page");
    element(&page, "#login-password", true).await;
    element(&page, "#guest-button", false).await;

    // A session that expires while chatting (close 4502, `close::SESSION_EXPIRED`)
    // ends on the sign-in screen with a message.
    server.kill().await;
    let server = Server::start_with(&addr.to_string(), data.path(), &["--session-ttl", "3s"]).await;
    page.refresh().await.expect("reload the page");
    fill(&page, "#account-name", "carol").await;
    fill(&page, "#login-password", "correct horse").await;
    click(&page, "#auth-submit").await;
    status_is(&page, "connected", DEADLINE).await;
    text_contains(&page, "#auth-notice", "session expired").await;
    element(&page, "#login-password", true).await;
    screenshot(&page, "auth-9-session-expired").await;

    page.close().await.expect("close the session");
    dark.close().await.expect("close the session");
    server.kill().await;
}
