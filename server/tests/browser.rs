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
//! while chatting (close 4502) ends there too, with a message.
//!
//! The first day of a new user (issue 13), each defect with the assertion
//! that would have caught it: a newcomer lands in `lobby` with focus in the
//! message box and sees a quiet room with recent history in the
//! directory; scrolling to the top loads older messages by itself and
//! keeps the message being read in place; a "New messages ↓" pill when
//! scrolled up; fourteen joins and a reload make one presence line; the
//! browser's `offline` event is noticed at once and `online` reconnects at
//! once; a dead link (server stopped with SIGSTOP, heartbeat 25 s) is found
//! by the ping probe in seconds; the retry countdown counts; form errors sit
//! under their own field; Escape on the user menu returns focus; no skip
//! link, no people column and a centred card with no room open; no key hint
//! on a touch screen (360 px); and axe-core (`scripts/setup.sh --browser`
//! installs it; `HUBBUB_AXE` overrides) finds no serious violation on the
//! sign-in screen, in a room, with no room, and on a phone.
//!
//! Images and files (issue 14): a file over the server's limit shows its
//! refusal on the upload; two images picked at once go with a caption, a
//! text file alone; the other member sees the thumbnails loaded and sized,
//! opens the lightbox (focus, →, Esc) and downloads the file byte for byte
//! with a guest's token; an image in a private conversation reaches the
//! other person.
//!
//! Unread counts and read markers (issue 15): messages in a room not on
//! screen are counted in the room list and the tab's title; a read in the
//! account's other tab lowers the count; opening the room puts "New
//! messages" where the user left off and the read reaches the other tab.
//!
//! Search (issue 15): the words are found in every room, newest first,
//! marked in each result (as text); a result opens its room, joining it,
//! at the message, with older history loaded back to it.
//!
//! Private conversations: two accounts in two browsers; alice opens hers
//! with bob from his name in the member list and writes; bob's page lists
//! it under "Direct messages", live, with the unread badge and alice's
//! online dot; he opens it and answers, and alice sees the answer; after a
//! reload bob's page still lists the conversation, with its history;
//! closed from the list, it comes back, unread, with alice's next message.
//! A guest's conversation ends with its name (a rename), with a notice. A
//! hidden tab is notified of the message that starts a conversation.
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

/// Fails the test, saying what to do, when the web bundle is not built.
fn require_bundle() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: the web bundle is not built ({} is missing); run scripts/build-web.sh",
        bundle.display()
    );
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

    /// A server with the default heartbeat (25 s) and idle timeout (60 s),
    /// so a dead link is not found by the heartbeat in the time a test
    /// allows, and with room to seed messages quickly.
    async fn start_slow_heartbeat(data: &Path) -> Server {
        let args = [
            "--listen",
            "127.0.0.1:0",
            "--rate",
            "1000",
            "--burst",
            "1000",
        ];
        let (child, addr) = common::spawn_hubbub(data, &args).await;
        Server { child, addr }
    }

    /// Stops (`SIGSTOP`) or resumes (`SIGCONT`) the process: its sockets
    /// stay open but nothing is read or written, like a dead network.
    fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("hubbub is running").to_string();
        let status = std::process::Command::new("kill")
            .args([signal, &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} {pid}");
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
        self.session_as(profile, dark, None).await
    }

    /// A phone: 360 px wide, with a touch screen (so CSS sees a coarse
    /// pointer and no hover).
    async fn phone(&self, profile: &Path) -> Client {
        let emulation = json!({
            "deviceMetrics": {"width": 360, "height": 740, "pixelRatio": 2.0, "touch": true},
            "userAgent": "Mozilla/5.0 (Linux; Android 14) Mobile hubbub-test",
        });
        self.session_as(profile, false, Some(emulation)).await
    }

    async fn session_as(&self, profile: &Path, dark: bool, mobile: Option<Value>) -> Client {
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
        if let Some(mobile) = mobile {
            caps["goog:chromeOptions"]["mobileEmulation"] = mobile;
        }
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

/// Types `text` into the field `css`, in place of what it held.
async fn fill(page: &Client, css: &str, text: &str) {
    let field = page
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|err| panic!("{css} shows: {err}"));
    replace_text(&field, text).await;
}

/// Replaces what `field` holds with `text` as a user does: select all,
/// then type. (WebDriver's clear fires no `input` event, so a field the
/// app keeps in its state got its old value back when the app happened
/// to render again before the first key: "bob" + "robert".)
async fn replace_text(field: &fantoccini::elements::Element, text: &str) {
    let select_all = format!("{}a{}", char::from(Key::Control), char::from(Key::Null));
    field
        .send_keys(&select_all)
        .await
        .expect("select the field's text");
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
    require_bundle();
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

    // Renaming shows in the other member's list. A guest's conversations
    // end with its name: alice is told, and the conversation is gone.
    click(&bob, ".user-button").await;
    click(&bob, "#change-name").await;
    let rename = bob
        .wait()
        .at_most(DEADLINE)
        .for_element(Locator::Css("#rename-input"))
        .await
        .expect("the rename form");
    replace_text(&rename, "robert").await;
    rename
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("rename");
    text_contains(&alice, ".toast", "The conversation with @bob has ended.").await;
    element(&alice, "#conversation-list", false).await;
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
    require_bundle();
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

    // A session that expires while chatting (close 4502, `close::SESSION_EXPIRED`,
    // matched by code)
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

/// chromedriver's `network_conditions` command: the page's network goes
/// off (the browser fires `offline`, `navigator.onLine` turns false and
/// requests fail) or back on.
#[derive(Debug)]
struct SetNetwork {
    offline: bool,
}

impl fantoccini::wd::WebDriverCompatibleCommand for SetNetwork {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/chromium/network_conditions"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"network_conditions": {
            "offline": self.offline,
            "latency": 0,
            "download_throughput": -1,
            "upload_throughput": -1,
        }});
        (http::Method::POST, Some(body.to_string()))
    }
}

async fn set_network(page: &Client, online: bool) {
    page.issue_cmd(SetNetwork { offline: !online })
        .await
        .unwrap_or_else(|err| {
            panic!(
                "set the network {}: {err}",
                if online { "on" } else { "off" }
            )
        });
}

/// Waits until `page` runs `script` to `true`, within `deadline`.
async fn becomes(page: &Client, what: &str, deadline: Duration, script: &str) {
    wait_until(page, what, deadline, script, vec![]).await;
}

/// Runs `script` and returns its answer.
async fn eval(page: &Client, script: &str) -> Value {
    page.execute(script, vec![])
        .await
        .unwrap_or_else(|err| panic!("run {script:?}: {err}"))
}

/// axe-core's `axe.min.js`, installed from npm by `scripts/setup.sh
/// --browser` into the tools cache (or `HUBBUB_AXE`).
fn axe_source() -> String {
    let path = std::env::var_os("HUBBUB_AXE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let cache = std::env::var_os("HUBBUB_TOOLS_DIR")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("XDG_CACHE_HOME")
                        .map(|d| PathBuf::from(d).join("hubbub-tools"))
                })
                .unwrap_or_else(|| {
                    PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                        .join(".cache/hubbub-tools")
                });
            cache.join("node_modules/axe-core/axe.min.js")
        });
    std::fs::read_to_string(&path).unwrap_or_else(|err| {
        panic!(
            "browser test: axe-core is not installed ({}: {err}); run scripts/setup.sh --browser \
             or point HUBBUB_AXE at axe.min.js",
            path.display()
        )
    })
}

/// Runs axe-core on the page as it is and fails on any serious or critical
/// violation, listing them. `label-content-name-mismatch` (a button whose
/// accessible name does not contain its visible text) is experimental in
/// axe and turned on here.
async fn accessible(page: &Client, axe: &str, what: &str) {
    page.execute(axe, vec![]).await.expect("inject axe-core");
    let answer = page
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { rules: { 'label-content-name-mismatch': { enabled: true } } })
                .then(r => done(r.violations
                    .filter(v => v.impact === 'serious' || v.impact === 'critical')
                    .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)))
                .catch(e => done(['axe failed: ' + e]));",
            vec![],
        )
        .await
        .expect("run axe-core");
    let violations = answer
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("axe-core did not answer with a list: {answer}"));
    if !violations.is_empty() {
        screenshot(page, &format!("axe-{what}")).await;
    }
    assert!(
        violations.is_empty(),
        "axe-core on {what}: serious violations:\n{}",
        violations
            .iter()
            .map(|v| v.as_str().unwrap_or_default().to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// Continues as a guest named `name` from the sign-in screen.
async fn start_as_guest(page: &Client, base: &str, name: &str) {
    page.goto(base).await.expect("open the app");
    click(page, "#guest-button").await;
    fill(page, "#name-input", name).await;
    page.find(Locator::Css("#name-input"))
        .await
        .expect("the name field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("submit the name");
    status_is(page, "connected", DEADLINE).await;
}

/// Where the message `text` is, in px from the top of the timeline's view.
/// (The text itself: its header may go when the message before it loads.)
const MESSAGE_TOP: &str = "const p = [...document.querySelectorAll('.message .text')]
        .find(p => p.textContent === arguments[0]);
    return p ? p.getBoundingClientRect().top - document.querySelector('.timeline').getBoundingClientRect().top : null";

async fn message_top(page: &Client, text: &str) -> f64 {
    page.execute(MESSAGE_TOP, vec![json!(text)])
        .await
        .expect("measure a message")
        .as_f64()
        .unwrap_or_else(|| panic!("message {text:?} is not shown"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_newcomer_lands_in_lobby_and_the_timeline_keeps_its_place() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: run scripts/build-web.sh first"
    );
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start_slow_heartbeat(data.path()).await;
    let base = format!("http://{}/", server.addr);
    let ws = format!("ws://{}/ws", server.addr);

    // 150 messages in lobby, more than a joiner gets as history (50).
    let mut old = common::Client::connect(&ws).await;
    old.hello("oldtimer").await;
    old.join("lobby").await;
    for i in 1..=150 {
        old.say("lobby", &format!("m{i}"), &format!("c{i}")).await;
    }
    // A room people talked in and left: nobody is there now.
    old.join("attic").await;
    old.say("attic", "anyone up here?", "attic-1").await;
    old.send(json!({"type": "leave", "room": "attic"})).await;

    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("ana"), false).await;

    // A newcomer lands in #lobby, typing: focus is in the message box, and
    // the skip link leads there.
    start_as_guest(&page, &base, "ana").await;
    text_contains(&page, "#chat-title", "lobby").await;
    // The directory lists the quiet room too, not only rooms with people.
    element(&page, "button[aria-label='Join #attic, 0 online']", true).await;
    becomes(
        &page,
        "focus in the message box after Start chatting",
        DEADLINE,
        "return document.activeElement?.id === 'composer-input'",
    )
    .await;
    element(&page, ".skip-link[href='#composer-input']", true).await;
    sees_message(&page, "m150", DEADLINE).await;
    sees_message(&page, "m101", DEADLINE).await;

    // Scrolled to the top, older messages load by themselves, and the
    // message that was on screen stays where it was.
    // Where m101 will be once scrolled to the top, measured before the
    // scroll starts the load.
    let before = message_top(&page, "m101").await
        + eval(
            &page,
            "return document.querySelector('.timeline').scrollTop",
        )
        .await
        .as_f64()
        .expect("a scroll position");
    eval(
        &page,
        "document.querySelector('.timeline').scrollTop = 0; return null",
    )
    .await;
    sees_message(&page, "m51", DEADLINE).await;
    let after = message_top(&page, "m101").await;
    assert!(
        (after - before).abs() <= 2.0,
        "m101 moved from {before} px to {after} px when older messages loaded"
    );
    screenshot(&page, "first-day-1-older-loaded").await;

    // Scrolled up, a new message shows a pill instead of nothing; the pill
    // brings the present back.
    element(&page, ".new-messages", false).await;
    old.say("lobby", "fresh news", "c-fresh").await;
    element(&page, ".new-messages", true).await;
    text_contains(&page, ".new-messages", "New messages").await;
    screenshot(&page, "first-day-2-new-messages-pill").await;
    click(&page, ".new-messages").await;
    becomes(
        &page,
        "the timeline at the bottom",
        DEADLINE,
        "const t = document.querySelector('.timeline');
         return t.scrollHeight - t.scrollTop - t.clientHeight < 10",
    )
    .await;
    element(&page, ".new-messages", false).await;

    // Fourteen people arriving one after another make one line, and one
    // of them reloading (leave + join) adds nothing.
    let notices = "return document.querySelectorAll('.presence-notice').length";
    let before_count = eval(&page, notices).await.as_u64().unwrap_or(0);
    let mut crowd = Vec::new();
    for i in 0..14 {
        let name = format!("p{i:02}");
        let mut c = common::Client::connect(&ws).await;
        c.hello(&name).await;
        c.join("lobby").await;
        sees_member(&page, &name).await;
        crowd.push(c);
    }
    let reloader = crowd.pop().expect("a crowd");
    drop(reloader);
    wait_until(
        &page,
        "p13 gone",
        DEADLINE,
        "return !document.querySelector('#presence-list li[data-user=\"p13\"]')",
        vec![],
    )
    .await;
    let mut back = common::Client::connect(&ws).await;
    back.hello("p13").await;
    back.join("lobby").await;
    sees_member(&page, "p13").await;
    let after_count = eval(&page, notices).await.as_u64().unwrap_or(0);
    assert_eq!(
        after_count,
        before_count + 1,
        "fourteen joins and a reload make one presence line"
    );
    text_contains(
        &page,
        ".presence-notice:last-of-type .system-text",
        "p00, p01 and 12 others joined",
    )
    .await;
    let last = eval(
        &page,
        "return [...document.querySelectorAll('.presence-notice .system-text')].pop().textContent",
    )
    .await;
    assert!(
        !last.as_str().unwrap_or_default().contains("left"),
        "a reload is not news: {last}"
    );
    screenshot(&page, "first-day-3-presence").await;

    page.close().await.expect("close the session");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_link_is_noticed_in_seconds_and_the_countdown_counts() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: run scripts/build-web.sh first"
    );
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    // A 25 s heartbeat: on heartbeats alone a dead link shows "Connected"
    // for ~54 s. The page must find out much sooner.
    let server = Server::start_slow_heartbeat(data.path()).await;
    let addr = server.addr;
    let base = format!("http://{addr}/");
    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("bo"), false).await;
    start_as_guest(&page, &base, "bo").await;
    text_contains(&page, "#chat-title", "lobby").await;
    sees_member(&page, "bo").await;

    // The browser goes offline: the page says so at once, and reconnects
    // the moment the network is back (not after a backoff).
    set_network(&page, false).await;
    becomes(
        &page,
        "the offline event noticed",
        Duration::from_secs(3),
        "return document.getElementById('connection-status').dataset.state !== 'connected'",
    )
    .await;
    screenshot(&page, "link-1-offline").await;
    set_network(&page, true).await;
    status_is(&page, "connected", Duration::from_secs(5)).await;

    // A network that drops everything without telling the browser (the
    // server process stopped): a message goes out, no ack comes, the ping
    // probe goes unanswered, and the page stops claiming to be connected.
    server.signal("-STOP");
    say(&page, "anyone there?").await;
    becomes(
        &page,
        "the unanswered probe noticed",
        Duration::from_secs(12),
        "return document.getElementById('connection-status').dataset.state !== 'connected'",
    )
    .await;
    screenshot(&page, "link-2-probe-failed").await;
    server.signal("-CONT");
    status_is(&page, "connected", RECONNECT_DEADLINE).await;
    sees_message(&page, "anyone there?", DEADLINE).await;

    // With the server gone, "retrying in N s" counts down.
    server.kill().await;
    wait_until(
        &page,
        "a countdown of 3 s or more",
        RECONNECT_DEADLINE,
        "const m = document.querySelector('#connection-status .status-text')?.textContent
             .match(/retrying in (\\d+) s \\(attempt (\\d+)\\)/);
         if (m && Number(m[1]) >= 3) { window.countdownFrom = m[0]; window.countdownAt = [Number(m[1]), m[2]]; return true; }
         return false",
        vec![],
    )
    .await;
    wait_until(
        &page,
        "the countdown to go down",
        Duration::from_secs(3),
        // Lower, same attempt: counting down, whichever second the poll
        // (slower under load) happens to see.
        "const [n, attempt] = window.countdownAt;
         const m = (document.querySelector('#connection-status .status-text')?.textContent ?? '')
             .match(/retrying in (\\d+) s \\(attempt (\\d+)\\)/);
         return !!m && m[2] === attempt && Number(m[1]) < n",
        vec![],
    )
    .await;
    screenshot(&page, "link-3-countdown").await;
    page.close().await.expect("close the session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_focus_layout_and_accessibility() {
    let bundle = repo_root().join("web/dist/index.html");
    assert!(
        bundle.is_file(),
        "browser test: run scripts/build-web.sh first"
    );
    let axe = axe_source();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("cy"), false).await;

    // The sign-in screen passes axe.
    page.goto(&base).await.expect("open the app");
    element(&page, "#login-password", true).await;
    accessible(&page, &axe, "sign-in").await;

    // Register: a short password is explained under the password, and the
    // empty confirmation is not marked wrong.
    click(&page, "#tab-register").await;
    fill(&page, "#account-name", "cyd").await;
    fill(&page, "#register-password", "short").await;
    click(&page, "#auth-submit").await;
    text_contains(&page, "#password-rules", "8 to 256").await;
    becomes(
        &page,
        "the error on the password field only",
        DEADLINE,
        "return document.getElementById('password-rules').classList.contains('error')
            && document.getElementById('register-password').getAttribute('aria-invalid') === 'true'
            && document.getElementById('register-confirm').getAttribute('aria-invalid') === 'false'
            && !document.getElementById('register-confirm').classList.contains('invalid')
            && document.getElementById('password-help').textContent === ''",
    )
    .await;
    screenshot(&page, "forms-1-register-short").await;

    // A bad guest name says why under the field, with aria-invalid.
    click(&page, "#tab-sign-in").await;
    click(&page, "#guest-button").await;
    fill(&page, "#name-input", "no spaces").await;
    becomes(
        &page,
        "the guest name explained",
        DEADLINE,
        "const help = document.getElementById('name-help');
         return help.classList.contains('error') && help.textContent.length > 0
            && document.getElementById('name-input').getAttribute('aria-invalid') === 'true'",
    )
    .await;
    screenshot(&page, "forms-2-bad-guest-name").await;

    // A good name: straight into #lobby, focus in the message box.
    fill(&page, "#name-input", "cy").await;
    click(
        &page,
        "form[aria-label='Continue as a guest'] button[type=submit]",
    )
    .await;
    status_is(&page, "connected", DEADLINE).await;
    text_contains(&page, "#chat-title", "lobby").await;
    becomes(
        &page,
        "focus in the message box",
        DEADLINE,
        "return document.activeElement?.id === 'composer-input'",
    )
    .await;
    say(&page, "hello axe").await;
    sees_message(&page, "hello axe", DEADLINE).await;
    // With a mouse and keyboard, the message box says how Enter works.
    text_contains(&page, "#composer-help", "Enter to send").await;
    element(&page, "main", true).await;
    element(&page, "ol.messages[role]", false).await;
    accessible(&page, &axe, "chat").await;

    // Escape on the user menu closes it and gives focus back to its button.
    click(&page, ".user-button").await;
    element(&page, "#account-menu", true).await;
    page.find(Locator::Css("#change-name"))
        .await
        .expect("the menu")
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .expect("press Escape");
    element(&page, "#account-menu", false).await;
    becomes(
        &page,
        "focus back on the user button",
        DEADLINE,
        "return document.activeElement?.classList.contains('user-button')",
    )
    .await;

    // No room open: no skip link to a message box that is not there, no
    // people column, and the card in the middle of what is left.
    click(&page, "button[aria-label='Leave #lobby']").await;
    element(&page, ".chat-empty", true).await;
    element(&page, ".skip-link", false).await;
    element(&page, "#people", false).await;
    becomes(
        &page,
        "the empty card centred with no column reserved",
        DEADLINE,
        "const main = document.querySelector('.chat-empty').getBoundingClientRect();
         const card = document.querySelector('.empty-card').getBoundingClientRect();
         return Math.abs(main.right - window.innerWidth) <= 1
             && Math.abs((card.left + card.right) / 2 - (main.left + main.right) / 2) <= 2",
    )
    .await;
    accessible(&page, &axe, "empty").await;
    screenshot(&page, "forms-3-empty").await;

    // A phone: nothing about keys under the message box.
    let phone = driver.phone(&profiles.path().join("phone")).await;
    start_as_guest(&phone, &base, "dee").await;
    text_contains(&phone, "#chat-title", "lobby").await;
    element(&phone, "#composer-help", true).await;
    becomes(
        &phone,
        "no keyboard hint on a touch screen",
        DEADLINE,
        "return matchMedia('(pointer: coarse)').matches
            && !document.getElementById('composer-help').innerText.includes('Enter')",
    )
    .await;
    accessible(&phone, &axe, "phone").await;
    screenshot(&phone, "forms-4-phone").await;
    page.close().await.expect("close the session");
    phone.close().await.expect("close the session");
    server.kill().await;
}

/// A gradient image encoded as `format`, saved at `path`.
fn save_image(path: &Path, width: u32, height: u32, format: image::ImageFormat) {
    let img = image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    img.save_with_format(path, format)
        .expect("save a test image");
}

/// Waits until the page's uploads are all uploaded (`n` of them).
async fn uploads_done(page: &Client, n: usize) {
    wait_until(
        page,
        &format!("{n} uploads done"),
        DEADLINE,
        "const all = document.querySelectorAll('.uploads .upload');
         return all.length === arguments[0]
             && [...all].every(u => u.classList.contains('done'))",
        vec![json!(n)],
    )
    .await;
}

/// Issue 14 in the browser: ann picks two images and sends them with a
/// caption, then a text file alone; bob, in the same room, sees the images
/// inline (thumbnails loaded, sized before they load) under the caption,
/// opens one in the lightbox (focus moves in, → goes to the next image,
/// Escape closes and gives the focus back to the thumbnail), and downloads
/// the text file from its card with the same bytes (both are guests: every
/// link carries the upload token). A file over the server's limit shows the
/// server's refusal on that upload. A file dropped on the chat and an image
/// pasted into the message box go too. Then bob sends ann an image in a
/// direct message, and she sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_and_files_in_messages() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let files = tempfile::tempdir().expect("a dir for the files to upload");
    let server =
        Server::start_with("127.0.0.1:0", data.path(), &["--max-file-bytes", "100000"]).await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let ann = driver.session(&profiles.path().join("ann"), false).await;
    let bob = driver.session(&profiles.path().join("bob"), false).await;
    sign_in_and_join(&ann, &base, "ann", "pics").await;
    sign_in_and_join(&bob, &base, "bob", "pics").await;

    let cat = files.path().join("cat.png");
    let dog = files.path().join("dog.jpg");
    let notes = files.path().join("notes.txt");
    let big = files.path().join("big.bin");
    save_image(&cat, 640, 480, image::ImageFormat::Png);
    save_image(&dog, 300, 600, image::ImageFormat::Jpeg);
    let notes_text = "<b>not markup</b> & some notes\n";
    std::fs::write(&notes, notes_text).expect("write notes.txt");
    std::fs::write(&big, vec![7u8; 150_000]).expect("write big.bin");
    let path = |p: &Path| p.to_str().expect("a UTF-8 temp path").to_string();

    // Over the limit (`welcome` says it): refused on that upload before a
    // byte is sent, and removing it leaves nothing to send.
    let picker = ann
        .find(Locator::Css("#attach-input"))
        .await
        .expect("the file picker");
    picker.send_keys(&path(&big)).await.expect("pick big.bin");
    wait_until(
        &ann,
        "big.bin refused",
        DEADLINE,
        "const u = document.querySelector('.uploads .upload.failed');
         return !!u && u.textContent.includes('big.bin')
             && /large|limit|bytes/i.test(u.querySelector('.upload-status').textContent)",
        vec![],
    )
    .await;
    screenshot(&ann, "files-refused").await;
    click(&ann, ".uploads .upload.failed button").await;
    element(&ann, ".uploads .upload", false).await;

    // Two images at once, with a caption.
    picker
        .send_keys(&format!("{}\n{}", path(&cat), path(&dog)))
        .await
        .expect("pick two images");
    uploads_done(&ann, 2).await;
    fill(&ann, "#composer-input", "our pets").await;
    click(&ann, "button.send").await;
    element(&ann, ".uploads .upload", false).await;
    // A file alone: no caption needed.
    picker
        .send_keys(&path(&notes))
        .await
        .expect("pick notes.txt");
    uploads_done(&ann, 1).await;
    click(&ann, "button.send").await;

    // bob sees the caption and both images inline, loaded, sized to fit
    // 320 pixels before they load.
    sees_message(&bob, "our pets", DEADLINE).await;
    wait_until(
        &bob,
        "two thumbnails loaded",
        DEADLINE,
        "const imgs = [...document.querySelectorAll('.message .attachments .thumb img')];
         return imgs.length === 2
             && imgs.every(i => i.complete && i.naturalWidth > 0)
             && imgs[0].getAttribute('width') === '320' && imgs[0].getAttribute('height') === '240'
             && imgs[1].getAttribute('width') === '160' && imgs[1].getAttribute('height') === '320'
             && imgs[0].alt === 'cat.png' && imgs[1].alt === 'dog.jpg'
             && imgs.every(i => i.src.includes('/thumb?token='))",
        vec![],
    )
    .await;
    // The text file is a card, never an image, its name shown as text.
    wait_until(
        &bob,
        "notes.txt as a card",
        DEADLINE,
        "const card = document.querySelector('.message a.file-card');
         return !!card && card.textContent === 'notes.txt'
             && !card.querySelector('img') && !card.querySelector('b')
             && card.dataset.size === '31 B'",
        vec![],
    )
    .await;
    screenshot(&bob, "files-inline").await;

    // The lightbox: the full image, focus inside, → to the next, Escape
    // closes and the thumbnail has the focus again.
    click(&bob, ".message .thumb").await;
    wait_until(
        &bob,
        "the lightbox showing cat.png",
        DEADLINE,
        "const box = document.querySelector('.lightbox');
         const img = box?.querySelector('img');
         return !!img && img.complete && img.naturalWidth === 640
             && document.activeElement === box
             && box.dataset.caption === 'cat.png · 1 of 2'",
        vec![],
    )
    .await;
    screenshot(&bob, "files-lightbox").await;
    let active = bob.active_element().await.expect("the focused element");
    active
        .send_keys(&char::from(Key::Right).to_string())
        .await
        .expect("press →");
    wait_until(
        &bob,
        "the lightbox showing dog.jpg",
        DEADLINE,
        "const img = document.querySelector('.lightbox img');
         return !!img && img.complete && img.naturalWidth === 300
             && document.querySelector('.lightbox').dataset.caption === 'dog.jpg · 2 of 2'",
        vec![],
    )
    .await;
    // A modal dialog keeps the focus: Tab goes round its three buttons.
    for _ in 0..4 {
        let active = bob.active_element().await.expect("the focused element");
        active
            .send_keys(&char::from(Key::Tab).to_string())
            .await
            .expect("press Tab");
    }
    let inside = bob
        .execute(
            "const box = document.querySelector('.lightbox');
             return document.activeElement.tagName === 'BUTTON' && box.contains(document.activeElement)",
            vec![],
        )
        .await
        .expect("where the focus is");
    assert_eq!(inside, json!(true), "Tab stays in the lightbox");
    let active = bob.active_element().await.expect("the focused element");
    active
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .expect("press Escape");
    wait_until(
        &bob,
        "the lightbox closed, focus back on the thumbnail",
        DEADLINE,
        "return !document.querySelector('.lightbox')
             && document.activeElement?.classList.contains('thumb')",
        vec![],
    )
    .await;

    // A click on the backdrop (not on the image) closes it too.
    click(&bob, ".message .thumb").await;
    element(&bob, ".lightbox img", true).await;
    bob.execute("document.querySelector('.lightbox img').click()", vec![])
        .await
        .expect("click the image");
    element(&bob, ".lightbox", true).await;
    bob.execute("document.querySelector('.lightbox').click()", vec![])
        .await
        .expect("click the backdrop");
    element(&bob, ".lightbox", false).await;

    // The card's link downloads the very bytes.
    let downloaded = bob
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const href = document.querySelector('.message a.file-card').href;
             fetch(href).then(r => r.text()).then(done, e => done('failed: ' + e))",
            vec![],
        )
        .await
        .expect("download notes.txt");
    assert_eq!(downloaded, json!(notes_text));

    // Dropped on the chat and pasted into the message box (the events a
    // browser fires, with files built in the page): a pasted image is named
    // after the moment.
    let dropped = ann
        .execute_async(
            "const done = arguments[arguments.length - 1];
             const thumb = document.querySelector('.message .thumb img').src;
             fetch(thumb).then(r => r.blob()).then(png => {
                 const drop = new DataTransfer();
                 drop.items.add(new File(['dropped bytes'], 'dropped.txt', {type: 'text/plain'}));
                 const chat = document.querySelector('main.chat');
                 chat.dispatchEvent(new DragEvent('dragover', {dataTransfer: drop, bubbles: true, cancelable: true}));
                 const over = chat.classList.contains('dropping');
                 chat.dispatchEvent(new DragEvent('drop', {dataTransfer: drop, bubbles: true, cancelable: true}));
                 const paste = new DataTransfer();
                 paste.items.add(new File([png], 'image.png', {type: 'image/png'}));
                 document.getElementById('composer-input').dispatchEvent(
                     new ClipboardEvent('paste', {clipboardData: paste, bubbles: true, cancelable: true}));
                 // Beside the chat a file is refused (the browser would
                 // open it in place of the app), text is not.
                 const beside = document.querySelector('.topbar');
                 const file = new DragEvent('drop', {dataTransfer: drop, bubbles: true, cancelable: true});
                 beside.dispatchEvent(file);
                 const words = new DataTransfer();
                 words.setData('text/plain', 'just words');
                 const text = new DragEvent('drop', {dataTransfer: words, bubbles: true, cancelable: true});
                 beside.dispatchEvent(text);
                 done(over && !chat.classList.contains('dropping')
                      && file.defaultPrevented && !text.defaultPrevented);
             }, e => done('failed: ' + e));",
            vec![],
        )
        .await
        .expect("drop and paste");
    assert_eq!(
        dropped,
        json!(true),
        "the drop zone shows while files are over the chat; a file dropped beside it is refused"
    );
    uploads_done(&ann, 2).await;
    click(&ann, "button.send").await;
    wait_until(
        &bob,
        "the dropped file and the pasted image",
        DEADLINE,
        "const last = [...document.querySelectorAll('.message .attachments')].pop();
         const card = last?.querySelector('a.file-card');
         const img = last?.querySelector('.thumb img');
         return !!card && card.textContent === 'dropped.txt'
             && !!img && img.complete && img.naturalWidth > 0
             && /^pasted-[0-9]{8}-[0-9]{6}[.]png$/.test(img.alt)",
        vec![],
    )
    .await;

    // A direct message carries files too; its recipient may see them.
    click(&bob, "button[aria-label='Send a direct message to ann']").await;
    wait_until(
        &bob,
        "the conversation with ann open",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '@ann'",
        vec![],
    )
    .await;
    bob.find(Locator::Css("#attach-input"))
        .await
        .expect("the file picker")
        .send_keys(&path(&dog))
        .await
        .expect("pick dog.jpg");
    uploads_done(&bob, 1).await;
    fill(&bob, "#composer-input", "for you").await;
    click(&bob, "button.send").await;
    click(&ann, ".nav-link[aria-label^='@bob']").await;
    sees_message(&ann, "for you", DEADLINE).await;
    wait_until(
        &ann,
        "the direct message's image loaded",
        DEADLINE,
        "const img = document.querySelector('.message .attachments .thumb img');
         return !!img && img.complete && img.naturalWidth > 0 && img.alt === 'dog.jpg'",
        vec![],
    )
    .await;
    screenshot(&ann, "files-direct").await;

    ann.close().await.expect("close ann");
    bob.close().await.expect("close bob");
    server.kill().await;
}

/// The nav link of `label` (`#lobby`) says `n` unread in its accessible
/// name ("#lobby, 3 unread"; just "#lobby" at 0).
async fn unread_is(page: &Client, label: &str, n: u32) {
    let name = if n == 0 {
        label.to_string()
    } else {
        format!("{label}, {n} unread")
    };
    wait_until(
        page,
        &format!("{name:?} in the room list"),
        DEADLINE,
        "return [...document.querySelectorAll('.nav-link')]
            .some(b => b.getAttribute('aria-label') === arguments[0])",
        vec![json!(name)],
    )
    .await;
}

async fn title_is(page: &Client, title: &str) {
    wait_until(
        page,
        &format!("the title {title:?}"),
        DEADLINE,
        "return document.title === arguments[0]",
        vec![json!(title)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_counts_and_read_markers_follow_the_account() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let addr = server.addr;
    let base = format!("http://{addr}/");
    let ws = format!("ws://{addr}/ws");
    // dana's account; her second tab is a WebSocket of the same session kind.
    let body = json!({"name": "dana", "password": "correct horse battery"});
    let created = common::http(addr, "POST", "/api/register", &[], Some(body.clone())).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let login = common::http(addr, "POST", "/api/login", &[], Some(body)).await;
    let bearer = format!("Bearer {}", login.json()["token"].as_str().unwrap());

    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("dana"), false).await;
    page.set_window_size(1280, 800)
        .await
        .expect("a wide window");
    page.goto(&base).await.expect("open the app");
    fill(&page, "#account-name", "dana").await;
    fill(&page, "#login-password", "correct horse battery").await;
    click(&page, "#auth-submit").await;
    status_is(&page, "connected", DEADLINE).await;
    join_room(&page, "dana", "lobby").await;
    join_room(&page, "dana", "kitchen").await;
    title_is(&page, "hubbub").await;

    // bob says three things in lobby while dana looks at kitchen.
    let mut bob = common::Client::connect(&ws).await;
    bob.hello("bob").await;
    bob.join("lobby").await;
    for i in 1..=3 {
        bob.say("lobby", &format!("unread {i}"), &format!("u{i}"))
            .await;
    }
    unread_is(&page, "#lobby", 3).await;
    title_is(&page, "(3) hubbub").await;
    screenshot(&page, "unread-1-counted").await;

    // Read in dana's other tab: the page's count follows.
    let mut tab = common::connect_with(&ws, &[("authorization", &bearer)])
        .await
        .expect("dana's second tab");
    tab.hello("dana").await;
    tab.join("lobby").await;
    tab.send(json!({"type": "read", "room": "lobby", "seq": 1}))
        .await;
    let echo = tab
        .recv_until(|m| matches!(m, hubbub_protocol::ServerMsg::Read { .. }))
        .await;
    assert!(
        matches!(echo, hubbub_protocol::ServerMsg::Read { seq: 1, .. }),
        "{echo:?}"
    );
    unread_is(&page, "#lobby", 2).await;
    title_is(&page, "(2) hubbub").await;

    // Opening lobby: "New messages" sits where she left off, the room is
    // read, and her other tab hears it.
    click(&page, "button.nav-link[aria-label^='#lobby']").await;
    wait_until(
        &page,
        "the divider above \"unread 2\"",
        DEADLINE,
        "const d = document.querySelector('.messages .divider');
         return !!d && d.textContent === 'New messages'
             && d.nextElementSibling?.querySelector('.text')?.textContent === 'unread 2'",
        vec![],
    )
    .await;
    unread_is(&page, "#lobby", 0).await;
    title_is(&page, "hubbub").await;
    let read = tab
        .recv_until(|m| matches!(m, hubbub_protocol::ServerMsg::Read { .. }))
        .await;
    assert_eq!(
        read,
        hubbub_protocol::ServerMsg::Read {
            room: "lobby".into(),
            seq: 3
        }
    );
    screenshot(&page, "unread-2-divider").await;

    // A message that comes while she is looking is read at once: no count.
    bob.say("lobby", "seen live", "u4").await;
    sees_message(&page, "seen live", DEADLINE).await;
    let read = tab
        .recv_until(|m| matches!(m, hubbub_protocol::ServerMsg::Read { .. }))
        .await;
    assert_eq!(
        read,
        hubbub_protocol::ServerMsg::Read {
            room: "lobby".into(),
            seq: 4
        }
    );
    title_is(&page, "hubbub").await;

    // Links and the Markdown subset, never HTML, never a script link.
    bob.say(
        "lobby",
        "**bold** _it_ `x<y` see https://example.com/a?b=1. <b>no</b> javascript:alert(1)",
        "u5",
    )
    .await;
    wait_until(
        &page,
        "the formatted message",
        DEADLINE,
        "const p = [...document.querySelectorAll('.message .text')].pop();
         const a = p?.querySelector('a');
         return !!p && p.querySelector('strong')?.textContent === 'bold'
             && p.querySelector('em')?.textContent === 'it'
             && p.querySelector('code')?.textContent === 'x<y'
             && p.querySelectorAll('a').length === 1
             && a.getAttribute('href') === 'https://example.com/a?b=1'
             && a.target === '_blank' && a.rel === 'noopener noreferrer'
             && !p.querySelector('b')
             && p.textContent.endsWith('<b>no</b> javascript:alert(1)')",
        vec![],
    )
    .await;
    bob.say("lobby", "> quoted\n```\nlet x = *y*;\n```", "u6")
        .await;
    wait_until(
        &page,
        "a quote and a code block",
        DEADLINE,
        "const m = [...document.querySelectorAll('.message .message-body')].pop();
         return m?.querySelector('blockquote')?.textContent === 'quoted'
             && m?.querySelector('pre code')?.textContent === 'let x = *y*;'",
        vec![],
    )
    .await;
    screenshot(&page, "unread-3-formatting").await;
    page.close().await.expect("close the session");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_messages_and_opens_the_room_at_one() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    // bob says 61 things at once: past the default burst.
    let server = Server::start_with("127.0.0.1:0", data.path(), &["--burst", "100"]).await;
    let base = format!("http://{}/", server.addr);
    let ws = format!("ws://{}/ws", server.addr);
    // bob's "lunch" in kitchen is older than the history a join shows.
    let mut bob = common::Client::connect(&ws).await;
    bob.hello("bob").await;
    bob.join("kitchen").await;
    bob.say("kitchen", "lunch at noon?", "k0").await;
    for i in 1..=60 {
        bob.say("kitchen", &format!("filler {i}"), &format!("k{i}"))
            .await;
    }
    let mut cat = common::Client::connect(&ws).await;
    cat.hello("cat").await;
    cat.join("lobby").await;
    cat.say("lobby", "Lunch was great <b>really</b>", "l1")
        .await;

    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("sue"), false).await;
    page.set_window_size(1280, 800)
        .await
        .expect("a wide window");
    sign_in_and_join(&page, &base, "sue", "lobby").await;
    fill(&page, "#search-input", "LUNCH").await;
    page.find(Locator::Css("#search-input"))
        .await
        .expect("the search field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("search");
    wait_until(
        &page,
        "two results, newest first, the word marked",
        DEADLINE,
        "const hits = [...document.querySelectorAll('.hits .hit')];
         return hits.length === 2
             && hits[0].querySelector('.hit-text').textContent === 'Lunch was great <b>really</b>'
             && hits[0].querySelector('mark')?.textContent === 'Lunch'
             && !hits[0].querySelector('b')
             && hits[1].querySelector('.hit-room').textContent === '#kitchen'
             && hits[1].querySelector('mark')?.textContent === 'lunch'",
        vec![],
    )
    .await;
    screenshot(&page, "search-1-results").await;
    accessible(&page, &axe_source(), "the search results").await;

    // The kitchen result: the room opens (joined), older history loads
    // back to the message, and it is on screen, marked.
    page.execute(
        "[...document.querySelectorAll('.hits .hit')][1].click()",
        vec![],
    )
    .await
    .expect("click the kitchen result");
    wait_until(
        &page,
        "the found message in view",
        DEADLINE,
        "const m = document.querySelector('.message[aria-current]');
         if (!m || document.getElementById('chat-title')?.textContent !== '#kitchen') return false;
         const r = m.getBoundingClientRect(), t = document.querySelector('.timeline').getBoundingClientRect();
         return m.querySelector('.text')?.textContent === 'lunch at noon?'
             && r.top >= t.top - 1 && r.bottom <= t.bottom + 1",
        vec![],
    )
    .await;
    screenshot(&page, "search-2-found").await;
    page.close().await.expect("close the session");
    server.kill().await;
}

/// A command of the Chrome DevTools Protocol, through chromedriver's
/// `goog/cdp/execute` (what Selenium's `execute_cdp_cmd` uses).
#[derive(Debug)]
struct Cdp {
    cmd: &'static str,
    params: Value,
}

impl fantoccini::wd::WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        let session = session_id.expect("a WebDriver session");
        base_url.join(&format!("session/{session}/goog/cdp/execute"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({"cmd": self.cmd, "params": self.params});
        (http::Method::POST, Some(body.to_string()))
    }
}

async fn cdp(page: &Client, cmd: &'static str, params: Value) {
    page.issue_cmd(Cdp { cmd, params })
        .await
        .unwrap_or_else(|err| panic!("CDP {cmd}: {err}"));
}

/// Clicks the element `css` from a script: the message actions show on
/// hover or focus, which a WebDriver click does not give them first.
async fn press(page: &Client, css: &str) {
    element(page, css, true).await;
    page.execute(
        "document.querySelector(arguments[0]).click()",
        vec![json!(css)],
    )
    .await
    .unwrap_or_else(|err| panic!("click {css}: {err}"));
}

/// The CSS of the room message saying `text` (by its `data-seq`).
async fn message_css(page: &Client, text: &str) -> String {
    wait_until(
        page,
        &format!("message {text:?}"),
        DEADLINE,
        "return [...document.querySelectorAll('.message[data-seq]')]
            .some(m => m.querySelector('.text')?.textContent === arguments[0])",
        vec![json!(text)],
    )
    .await;
    let seq = page
        .execute(
            "return [...document.querySelectorAll('.message[data-seq]')]
                .find(m => m.querySelector('.text')?.textContent === arguments[0]).dataset.seq",
            vec![json!(text)],
        )
        .await
        .expect("find the message");
    format!(".message[data-seq=\"{}\"]", seq.as_str().expect("a seq"))
}

/// Waits until `script`, run with the argument `css`, is true.
async fn about(page: &Client, what: &str, css: &str, script: &str) {
    wait_until(page, what, DEADLINE, script, vec![json!(css)]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edits_deletions_reactions_and_replies_reach_the_other_browser() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let base = format!("http://{}/", server.addr);
    let driver = Driver::start().await;
    let ann = driver.session(&profiles.path().join("ann"), false).await;
    let ben = driver.session(&profiles.path().join("ben"), true).await;
    for page in [&ann, &ben] {
        page.set_window_size(1280, 800)
            .await
            .expect("a wide window");
    }
    sign_in_and_join(&ann, &base, "ann", "plans").await;
    sign_in_and_join(&ben, &base, "ben", "plans").await;
    sees_member(&ann, "ben").await;

    say(&ann, "lunch at noon?").await;
    let at_ben = message_css(&ben, "lunch at noon?").await;
    let at_ann = message_css(&ann, "lunch at noon?").await;

    // Keyboard: focus in a message shows its actions; someone else's has
    // no Edit or Delete.
    ben.execute(
        "document.querySelector(arguments[0] + ' [data-act=react]').focus()",
        vec![json!(at_ben)],
    )
    .await
    .expect("focus React");
    about(
        &ben,
        "the actions shown on focus, React and Reply only",
        &at_ben,
        "const bar = document.querySelector(arguments[0] + ' .actions');
         return getComputedStyle(bar).opacity === '1'
             && [...bar.querySelectorAll('button')].map(b => b.getAttribute('aria-label')).join() === 'React,Reply'",
    )
    .await;
    // React: the quick six, the focus on the first; 👍.
    press(&ben, &format!("{at_ben} [data-act=react]")).await;
    about(
        &ben,
        "the picker, focused",
        &at_ben,
        "const p = document.querySelector(arguments[0] + ' .picker');
         return !!p && p.querySelectorAll('.emoji').length === 6
             && document.activeElement?.dataset.emoji === '👍'
             && !!p.querySelector('input[aria-label=\"Another emoji\"]')",
    )
    .await;
    screenshot(&ben, "events-1-picker").await;
    press(&ben, &format!("{at_ben} .picker [data-emoji='👍']")).await;
    let reacted = "const r = document.querySelector(arguments[0] + ' .reactions .emoji');
         return !!r && r.textContent === '👍 1' && r.title === '👍 1: ben'";
    about(&ann, "ben's 👍 live at ann's", &at_ann, reacted).await;
    about(
        &ben,
        "ben's 👍, pressed",
        &at_ben,
        &format!("{reacted} && r.getAttribute('aria-pressed') === 'true'"),
    )
    .await;
    about(
        &ann,
        "not pressed for ann",
        &at_ann,
        "return document.querySelector(arguments[0] + ' .reactions .emoji').getAttribute('aria-pressed') === 'false'",
    )
    .await;
    // ann joins in with a click on the reaction; then takes it back.
    press(&ann, &format!("{at_ann} .reactions .emoji")).await;
    about(
        &ben,
        "two 👍, both named",
        &at_ben,
        "const r = document.querySelector(arguments[0] + ' .reactions .emoji');
         return r?.textContent === '👍 2' && r.title === '👍 2: ben, ann'",
    )
    .await;
    press(&ann, &format!("{at_ann} .reactions .emoji")).await;
    about(&ben, "ann's 👍 taken back", &at_ben, reacted).await;
    // Any other single emoji from the field; more than one is refused there.
    press(&ann, &format!("{at_ann} [data-act=react]")).await;
    fill(&ann, &format!("{at_ann} .emoji-form input"), "🙂🙂").await;
    ann.find(Locator::Css(&format!("{at_ann} .emoji-form input")))
        .await
        .expect("the emoji field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("send the emoji");
    text_contains(&ann, ".toast", "Not a reaction: a reaction is one emoji.").await;
    fill(&ann, &format!("{at_ann} .emoji-form input"), "🙂").await;
    ann.find(Locator::Css(&format!("{at_ann} .emoji-form input")))
        .await
        .expect("the emoji field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("send the emoji");
    about(
        &ben,
        "ann's 🙂 beside ben's 👍",
        &at_ben,
        "return [...document.querySelectorAll(arguments[0] + ' .reactions .emoji')]
            .map(r => r.textContent).join() === '👍 1,🙂 1'",
    )
    .await;

    // Reply: the composer says to what; the reply carries its quote.
    press(&ben, &format!("{at_ben} [data-act=reply]")).await;
    text_contains(
        &ben,
        ".composer .replying",
        "Replying to ann: lunch at noon?",
    )
    .await;
    say(&ben, "yes, noon").await;
    for page in [&ann, &ben] {
        let reply = message_css(page, "yes, noon").await;
        about(
            page,
            "the reply's quote",
            &reply,
            "return document.querySelector(arguments[0] + ' .quote')?.textContent === 'ann lunch at noon?'",
        )
        .await;
    }
    element(&ben, ".composer .replying", false).await;
    screenshot(&ben, "events-2-reply").await;

    // Edit: Up in the empty message box edits ann's last message; Enter saves.
    let box_ = ann
        .find(Locator::Css("#composer-input"))
        .await
        .expect("the message box");
    box_.send_keys(&char::from(Key::Up).to_string())
        .await
        .expect("press Up");
    about(
        &ann,
        "the inline edit of her message, focused",
        &at_ann,
        "const f = document.querySelector(arguments[0] + ' #edit-input');
         return !!f && f.value === 'lunch at noon?' && document.activeElement === f",
    )
    .await;
    screenshot(&ann, "events-3-editing").await;
    fill(&ann, "#edit-input", "lunch at one?").await;
    ann.find(Locator::Css("#edit-input"))
        .await
        .expect("the edit field")
        .send_keys(&char::from(Key::Enter).to_string())
        .await
        .expect("save with Enter");
    for (page, css) in [(&ann, &at_ann), (&ben, &at_ben)] {
        about(
            page,
            "the edit, marked",
            css,
            "const m = document.querySelector(arguments[0]);
             return m?.querySelector('.text')?.textContent === 'lunch at one?'
                 && m.querySelector('.edited')?.textContent === '(edited)'",
        )
        .await;
    }
    // Escape cancels an edit.
    press(&ann, &format!("{at_ann} [data-act=edit]")).await;
    element(&ann, "#edit-input", true).await;
    ann.find(Locator::Css("#edit-input"))
        .await
        .expect("the edit field")
        .send_keys(&char::from(Key::Escape).to_string())
        .await
        .expect("Escape");
    element(&ann, "#edit-input", false).await;

    // Delete asks first; then the message is a tombstone for both.
    press(&ann, &format!("{at_ann} [data-act=delete]")).await;
    text_contains(
        &ann,
        &format!("{at_ann} .confirm"),
        "Delete this message for everyone?",
    )
    .await;
    screenshot(&ann, "events-4-confirm").await;
    press(&ann, &format!("{at_ann} .confirm [data-act=really-delete]")).await;
    for (page, css) in [(&ann, &at_ann), (&ben, &at_ben)] {
        about(
            page,
            "the tombstone: no text, reactions or actions",
            css,
            "const m = document.querySelector(arguments[0]);
             return m?.querySelector('.text.deleted')?.textContent === 'message deleted'
                 && !m.querySelector('.reactions') && !m.querySelector('.actions')",
        )
        .await;
    }
    screenshot(&ben, "events-5-deleted").await;
    accessible(
        &ben,
        &axe_source(),
        "a room with reactions, a reply and a deletion",
    )
    .await;

    ann.close().await.expect("close the session");
    ben.close().await.expect("close the session");
    server.kill().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_brings_its_original_from_older_history() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start_with("127.0.0.1:0", data.path(), &["--burst", "100"]).await;
    let base = format!("http://{}/", server.addr);
    let ws = format!("ws://{}/ws", server.addr);
    // The original is more than a page of history (50) before the reply.
    let mut bob = common::Client::connect(&ws).await;
    bob.hello("bob").await;
    bob.join("attic").await;
    let original = bob.say("attic", "the old plan", "a0").await;
    for i in 1..=60 {
        bob.say("attic", &format!("filler {i}"), &format!("a{i}"))
            .await;
    }
    bob.send(
        json!({"type": "send", "room": "attic", "text": "about that plan",
        "client_id": "a61", "reply_to": original}),
    )
    .await;
    bob.recv_until(
        |m| matches!(m, hubbub_protocol::ServerMsg::Ack { client_id: Some(c), .. } if c == "a61"),
    )
    .await;

    let driver = Driver::start().await;
    let page = driver.session(&profiles.path().join("sue"), false).await;
    page.set_window_size(1280, 800)
        .await
        .expect("a wide window");
    sign_in_and_join(&page, &base, "sue", "attic").await;
    let reply = message_css(&page, "about that plan").await;
    about(
        &page,
        "the quote of a message not loaded",
        &reply,
        "return document.querySelector(arguments[0] + ' .quote')?.textContent === 'bob the old plan'
            && ![...document.querySelectorAll('.message .text')].some(p => p.textContent === 'the old plan')",
    )
    .await;
    press(&page, &format!("{reply} .quote")).await;
    wait_until(
        &page,
        "the original loaded and in view",
        DEADLINE,
        "const m = document.querySelector('.message[aria-current]');
         if (!m) return false;
         const r = m.getBoundingClientRect(), t = document.querySelector('.timeline').getBoundingClientRect();
         return m.querySelector('.text')?.textContent === 'the old plan'
             && r.top >= t.top - 1 && r.bottom <= t.bottom + 1",
        vec![],
    )
    .await;
    screenshot(&page, "reply-original-found").await;
    page.close().await.expect("close the session");
    server.kill().await;
}

/// Run in the page before its own code (CDP
/// `Page.addScriptToEvaluateOnNewDocument`): `window.__hidden` decides
/// what `document.hidden` says (a headless tab is always visible), and
/// `Notification` is wrapped so the test sees each one the page makes
/// (`window.__notes`: title, body and the notification, whose `onclick`
/// the test calls as a click would) and each permission request
/// (`window.__asked`). Headless Chromium shows no notification even when
/// permission is granted, and may refuse to make one: then the wrapper
/// stands in an `EventTarget` for it, so the page's click handler still
/// runs. What is observed is that the page constructed the notification,
/// with what, and what a click on it does.
const NOTIFICATION_SPY: &str = "
window.__hidden = false;
window.__notes = [];
window.__asked = 0;
Object.defineProperty(Document.prototype, 'hidden', { configurable: true, get() { return window.__hidden; } });
Object.defineProperty(Document.prototype, 'visibilityState', { configurable: true,
    get() { return window.__hidden ? 'hidden' : 'visible'; } });
const Real = window.Notification;
function Spy(title, options) {
    let note;
    try { note = new Real(title, options); }
    catch (e) { note = Object.assign(new EventTarget(), { close() {} }); }
    window.__notes.push({ title, body: options && options.body, note });
    return note;
}
Object.defineProperty(Spy, 'permission', { get() { return Real.permission; } });
Spy.requestPermission = (...args) => { window.__asked++; return Real.requestPermission(...args); };
Spy.prototype = Real.prototype;
window.Notification = Spy;
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mentions_stand_out_count_apart_and_notify_a_hidden_tab() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let base = format!("http://{}/", server.addr);
    let ws = format!("ws://{}/ws", server.addr);
    let driver = Driver::start().await;

    // Without permission: the page never asks on load; the menu offers it.
    let asker = driver.session(&profiles.path().join("asker"), false).await;
    cdp(
        &asker,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": NOTIFICATION_SPY}),
    )
    .await;
    start_as_guest(&asker, &base, "asker").await;
    click(&asker, ".user-button").await;
    element(&asker, "#enable-notifications", true).await;
    assert_eq!(eval(&asker, "return window.__asked").await, json!(0));
    click(&asker, "#enable-notifications").await;
    becomes(
        &asker,
        "permission asked on the click",
        DEADLINE,
        "return window.__asked === 1",
    )
    .await;
    asker.close().await.expect("close the session");

    let page = driver.session(&profiles.path().join("eve"), false).await;
    page.set_window_size(1280, 800)
        .await
        .expect("a wide window");
    cdp(
        &page,
        "Browser.grantPermissions",
        json!({"permissions": ["notifications"], "origin": base.trim_end_matches('/')}),
    )
    .await;
    cdp(
        &page,
        "Page.addScriptToEvaluateOnNewDocument",
        json!({"source": NOTIFICATION_SPY}),
    )
    .await;
    sign_in_and_join(&page, &base, "eve", "lobby").await;
    join_room(&page, "eve", "kitchen").await;
    // Granted already: nothing to offer.
    click(&page, ".user-button").await;
    element(&page, "#account-menu", true).await;
    element(&page, "#enable-notifications", false).await;

    // bob mentions eve in lobby while she looks at kitchen.
    let mut bob = common::Client::connect(&ws).await;
    bob.hello("bob").await;
    bob.join("lobby").await;
    bob.say("lobby", "@eve look at this\nsecond line", "m1")
        .await;
    bob.say("lobby", "and this, for everyone", "m2").await;
    unread_is(&page, "#lobby, 2 unread, 1 mentioning you", 0).await;
    text_contains(
        &page,
        "button.nav-link[aria-label^='#lobby'] .badge.mention",
        "@1",
    )
    .await;
    screenshot(&page, "mentions-1-counted").await;
    assert_eq!(
        eval(&page, "return window.__notes.length").await,
        json!(0),
        "no notification while the tab is visible"
    );

    // Hidden tab: a mention and the message that starts a private
    // conversation notify; a plain message not.
    page.execute(
        "window.__hidden = true; document.dispatchEvent(new Event('visibilitychange'))",
        vec![],
    )
    .await
    .expect("hide the tab");
    bob.say("lobby", "nothing for eve", "m3").await;
    bob.say("lobby", "@Eve are you there?", "m4").await;
    bob.send(json!({"type": "open", "with": "eve"})).await;
    let conversation = match bob
        .recv_until(|m| matches!(m, hubbub_protocol::ServerMsg::Conversation { .. }))
        .await
    {
        hubbub_protocol::ServerMsg::Conversation { room, .. } => room,
        other => unreachable!("{other:?}"),
    };
    bob.join(&conversation).await;
    bob.say(&conversation, "psst\nmore", "d1").await;
    becomes(
        &page,
        "two notifications: the mention and the conversation's message",
        DEADLINE,
        "return window.__notes.map(n => n.title + ' / ' + n.body).sort().join(' | ')
            === 'bob / psst… | bob in #lobby / @Eve are you there?'",
    )
    .await;
    // A click on the mention's notification opens lobby at the front.
    // (The conversation's message and the room's may come in either order.)
    page.execute(
        "window.__hidden = false;
         window.__notes.find(n => n.title === 'bob in #lobby').note.onclick(new Event('click'))",
        vec![],
    )
    .await
    .expect("click the notification");
    wait_until(
        &page,
        "lobby opened",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '#lobby'",
        vec![],
    )
    .await;
    // The mention stands out, the name marked in the text.
    let mention = message_css(&page, "@eve look at this\nsecond line").await;
    about(
        &page,
        "the mention highlighted",
        &mention,
        "const m = document.querySelector(arguments[0]);
         return m.classList.contains('mentions-me') && m.querySelector('mark.mention')?.textContent === '@eve'",
    )
    .await;
    about(
        &page,
        "a message without a mention is not",
        &message_css(&page, "nothing for eve").await,
        "return !document.querySelector(arguments[0]).classList.contains('mentions-me')",
    )
    .await;
    screenshot(&page, "mentions-2-highlighted").await;
    page.close().await.expect("close the session");
    server.kill().await;
}

/// Signs `page` in as the account `name` (password "correct horse
/// battery") and waits for the link.
async fn sign_in_account(page: &Client, base: &str, name: &str) {
    page.goto(base).await.expect("open the app");
    fill(page, "#account-name", name).await;
    fill(page, "#login-password", "correct horse battery").await;
    click(page, "#auth-submit").await;
    status_is(page, "connected", DEADLINE).await;
}

/// The one conversation of `page`'s list has this accessible name.
async fn conversation_listed(page: &Client, what: &str, name: &str) {
    wait_until(
        page,
        what,
        DEADLINE,
        "const b = document.querySelectorAll('#conversation-list .nav-link');
         return b.length === 1 && b[0].getAttribute('aria-label') === arguments[0]",
        vec![json!(name)],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_conversations_between_accounts_live_and_after_a_reload() {
    require_bundle();
    let data = tempfile::tempdir().expect("a data dir");
    let profiles = tempfile::tempdir().expect("a profile dir");
    let server = Server::start("127.0.0.1:0", data.path()).await;
    let addr = server.addr;
    let base = format!("http://{addr}/");
    for name in ["alice", "bob"] {
        let body = json!({"name": name, "password": "correct horse battery"});
        let created = common::http(addr, "POST", "/api/register", &[], Some(body)).await;
        assert_eq!(created.status, 201, "{}", created.body);
    }
    let driver = Driver::start().await;
    let alice = driver.session(&profiles.path().join("alice"), false).await;
    let bob = driver.session(&profiles.path().join("bob"), true).await;
    for (page, name) in [(&alice, "alice"), (&bob, "bob")] {
        page.set_window_size(1280, 800)
            .await
            .expect("a wide window");
        sign_in_account(page, &base, name).await;
        join_room(page, name, "plans").await;
    }
    sees_member(&alice, "bob").await;
    element(&bob, "#conversation-list", false).await;
    say(&alice, "lunch plans, anyone?").await;
    sees_message(&bob, "lunch plans, anyone?", DEADLINE).await;

    // alice messages bob from his name: their conversation opens.
    click(&alice, "button[aria-label='Send a direct message to bob']").await;
    wait_until(
        &alice,
        "the conversation with bob open",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '@bob'",
        vec![],
    )
    .await;
    // Listed at once, bob online: he is in a room alice is in, though
    // his page joins the conversation only when something is said.
    conversation_listed(&alice, "bob listed at alice's, online", "@bob, online").await;
    say(&alice, "are you free at noon?").await;
    sees_message(&alice, "are you free at noon?", DEADLINE).await;
    conversation_listed(&alice, "bob online at alice's", "@bob, online").await;

    // bob, still in plans, has it listed at once: unread, alice online.
    conversation_listed(
        &bob,
        "alice's conversation listed live, unread, alice online",
        "@alice, online, 1 unread",
    )
    .await;
    wait_until(
        &bob,
        "the badge and the online dot",
        DEADLINE,
        "const b = document.querySelector('#conversation-list .nav-link');
         return b.querySelector('.presence-dot.online') !== null
             && b.querySelector('.badge')?.textContent === '1'",
        vec![],
    )
    .await;
    title_is(&bob, "(1) hubbub").await;
    text_contains(&bob, "#chat-title", "#plans").await;
    screenshot(&bob, "conversation-1-listed").await;

    // He opens it and answers; alice sees the answer.
    click(&bob, "#conversation-list .nav-link").await;
    wait_until(
        &bob,
        "the conversation with alice open",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '@alice'",
        vec![],
    )
    .await;
    sees_message(&bob, "are you free at noon?", DEADLINE).await;
    conversation_listed(&bob, "read", "@alice, online").await;
    title_is(&bob, "hubbub").await;
    say(&bob, "yes, noon works").await;
    sees_message(&alice, "yes, noon works", DEADLINE).await;
    // Open and in view: the answer is read at once, no badge.
    conversation_listed(&alice, "the answer read", "@bob, online").await;
    screenshot(&alice, "conversation-2-answered").await;

    // A reload: the conversation and its history are still there.
    bob.refresh().await.expect("reload bob's page");
    status_is(&bob, "connected", DEADLINE).await;
    conversation_listed(&bob, "the conversation after the reload", "@alice, online").await;
    click(&bob, "#conversation-list .nav-link").await;
    sees_message(&bob, "are you free at noon?", DEADLINE).await;
    sees_message(&bob, "yes, noon works", DEADLINE).await;
    screenshot(&bob, "conversation-3-after-reload").await;

    // Closed from the list, it comes back with the next message.
    click(&bob, "button[aria-label='Close @alice']").await;
    element(&bob, "#conversation-list", false).await;
    say(&alice, "see you there").await;
    conversation_listed(&bob, "the conversation back", "@alice, online, 1 unread").await;

    // From a message's sender, too: in #plans, bob clicks alice's name.
    click(&bob, ".room-list button.nav-link[aria-label^='#plans']").await;
    text_contains(&bob, "#chat-title", "#plans").await;
    click(&bob, ".message[data-from='alice'] button.from").await;
    wait_until(
        &bob,
        "the conversation opened from alice's name on her message",
        DEADLINE,
        "return document.getElementById('chat-title')?.textContent === '@alice'",
        vec![],
    )
    .await;
    sees_message(&bob, "see you there", DEADLINE).await;

    alice.close().await.expect("close alice");
    bob.close().await.expect("close bob");
    server.kill().await;
}
