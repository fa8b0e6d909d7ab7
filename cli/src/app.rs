//! The client's state, without any I/O: who I am, the rooms I am in and who
//! is online in each, the current room, what was said, and the [`Link`].
//! Both front ends (plain lines and the TUI) feed it typed lines and
//! [`NetEvent`]s, write the requests it returns to the connection, and show
//! what it keeps.
//!
//! What every client shares comes from the client core (`hubbub-client`):
//! the commands and their help ([`command::parse`], the same grammar as the
//! TCP gateway's), server frames as lines ([`Renderer`]), the resume
//! tracker (rooms and the last `seq` of each, rejoined with `since`), the
//! pending ledger (sends, edits, deletions and reactions not acknowledged
//! yet, resent after a reconnect), the unread counts (mentions of the user
//! apart) and the latest messages shown ([`Recent`]: what `/edit`,
//! `/delete`, `/react` and `/reply` act on without a `#SEQ`). Each server
//! frame is handled here once: the tracker, the ledger and the counts learn
//! from it, then the view changes and its lines are rendered.
//!
//! Private conversations (`@alice+bob`, shown as `@bob`) are rooms here
//! too: listed with the rooms, with their unread counts. After `welcome`
//! the client asks `conversations` and joins each one (with the rooms, the
//! resume tracker's `joins_for`), and joins one as soon as a `conversation`
//! frame announces it (the other person wrote first), so it appears live.
//! `/msg USER TEXT` joins the conversation first if need be and says TEXT
//! in it; if that join is refused (nobody by that name), the refusal is
//! said once and the send's consequent `not_in_room` is not.
//!
//! `/upload` asks the connection task to upload the file over HTTP
//! ([`Request::Upload`], with this connection's upload token); once it is
//! stored ([`NetEvent::Uploaded`]) its message enters the pending ledger
//! like any other, so a reconnect resends it with the same `client_id`.
//! Quitting waits for uploads under way and the `ack` of their messages.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use hubbub_client::command::{self, clean_line, help_lines, Command, CommandError};
use hubbub_client::{
    resume_frames, Line, Link, Pending, Recent, Renderer, ResumeTracker, Settled, Unread,
};
use hubbub_protocol::names::is_conversation;
use hubbub_protocol::{ClientMsg, ErrorCode, ServerMsg};

use crate::net::{NetEvent, Request};
use crate::upload::{self, UploadJob};

/// Most lines kept for the message pane.
const MAX_LOG: usize = 5_000;

/// Lines `/help` adds to the core's: the keys of the full-screen view.
const HELP_KEYS: &[&str] =
    &["full-screen view: Esc or Ctrl-C quits, Tab switches rooms, PgUp/PgDn scroll"];

#[derive(Debug, Default)]
pub struct RoomView {
    pub users: BTreeSet<String>,
}

pub struct App {
    pub url: String,
    /// The name to say `hello` with.
    name: String,
    pub current: Option<String>,
    /// Rooms this connection is a member of (their `presence` arrived).
    pub rooms: BTreeMap<String, RoomView>,
    /// Rooms asked to join and not answered yet.
    joining: BTreeSet<String>,
    /// The room to switch to once its join is answered.
    switch_to: Option<String>,
    /// Conversations whose join (asked by `/msg` or `/upload @USER`) the
    /// server refused, and said why: the `not_in_room` of the sends that
    /// followed it is not said again.
    refused: BTreeSet<String>,
    pub log: VecDeque<Line>,
    pub link: Link,
    /// Set when the connection ended for good: the front end exits.
    pub done: bool,
    /// Rooms to be in and the last `seq` of each: what a reconnect resumes.
    tracker: ResumeTracker,
    /// Sends not acknowledged yet.
    pending: Pending,
    /// Server frames as lines; knows who "me" is.
    renderer: Renderer,
    /// Read markers and unread counts: the current room is read as its
    /// messages arrive, and the server tells the user's other clients.
    unread: Unread,
    /// The latest messages shown per room: what a message command without
    /// `#SEQ` acts on.
    recent: Recent,
    /// When the last `read` went out: at most one each `read_every_ms`,
    /// so a busy room does not spend the request budget on reads.
    last_read_ms: u64,
    pub read_every_ms: u64,
    /// A `read` held back by that, sent with the next frame after it.
    read_owed: Option<ClientMsg>,
    /// Whether any connection was welcomed: a name refused after that is
    /// our own old connection, not yet gone.
    welcomed_once: bool,
    /// Uploads under way.
    uploading: usize,
    /// `/quit` came while uploads were under way: quit after the last.
    quit_after_uploads: bool,
    /// Uploads typed while the link was down: started after the next welcome.
    queued_uploads: Vec<UploadJob>,
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What one step produced: requests for the connection, lines to show.
pub type Step = (Vec<Request>, Vec<Line>);

impl App {
    /// A client named `name` that will join `rooms`, the first becoming
    /// current; `id_prefix` makes its `client_id`s its own.
    pub fn new(url: &str, name: &str, rooms: &[String], id_prefix: &str) -> App {
        let mut renderer = Renderer::new();
        if let Ok(base) = upload::http_base(url) {
            renderer.set_http_base(base);
        }
        App {
            url: url.to_string(),
            name: name.to_string(),
            current: None,
            rooms: BTreeMap::new(),
            joining: rooms.iter().cloned().collect(),
            switch_to: rooms.first().cloned(),
            refused: BTreeSet::new(),
            log: VecDeque::new(),
            link: Link::Connecting { attempt: 0 },
            done: false,
            tracker: ResumeTracker::with_rooms(rooms),
            pending: Pending::new(id_prefix),
            renderer,
            unread: Unread::new(),
            recent: Recent::new(),
            last_read_ms: 0,
            read_every_ms: 1_000,
            read_owed: None,
            welcomed_once: false,
            uploading: 0,
            quit_after_uploads: false,
            queued_uploads: Vec::new(),
        }
    }

    /// The name the server knows this user by, once welcomed.
    pub fn me(&self) -> Option<&str> {
        self.renderer.me()
    }

    /// Messages sent and not acknowledged yet.
    pub fn pending(&self) -> &Pending {
        &self.pending
    }

    fn push(&mut self, out: &mut Vec<Line>, line: Line) {
        if self.log.len() >= MAX_LOG {
            self.log.pop_front();
        }
        self.log.push_back(line.clone());
        out.push(line);
    }

    fn notice(&mut self, out: &mut Vec<Line>, room: Option<&str>, text: impl Into<String>) {
        let line = self.renderer.notice(now_ms(), room, text);
        self.push(out, line);
    }

    /// The rooms this connection is in, in the order the room list shows
    /// them and Tab goes through them: rooms by name, then conversations.
    pub fn room_list(&self) -> Vec<&str> {
        let mut rooms: Vec<&str> = self.rooms.keys().map(String::as_str).collect();
        rooms.sort_by_key(|room| (is_conversation(room), *room));
        rooms
    }

    /// How `room` is shown: its name, or `@bob` for the conversation with bob.
    pub fn label(&self, room: &str) -> String {
        self.renderer.room_label(room)
    }

    fn error(&mut self, out: &mut Vec<Line>, text: impl Into<String>) {
        self.push(out, Line::error(now_ms(), None, text));
    }

    /// Applies what the connection reports.
    pub fn on_net(&mut self, event: NetEvent) -> Step {
        let mut out = Vec::new();
        let mut requests = Vec::new();
        match event {
            NetEvent::Connecting { attempt } => {
                self.link = Link::Connecting { attempt };
                if attempt == 0 && self.log.is_empty() {
                    let text = format!("connecting to {}", self.url);
                    self.notice(&mut out, None, text);
                }
            }
            NetEvent::Open => requests.push(Request::Frame(ClientMsg::Hello {
                name: self.name.clone(),
            })),
            NetEvent::Lost {
                why,
                attempt,
                retry_in,
            } => {
                let text = format!(
                    "disconnected: {why}; reconnecting in {:.1} s",
                    retry_in.as_secs_f64()
                );
                self.link = Link::Reconnecting {
                    attempt,
                    why,
                    retry_at_ms: now_ms() + retry_in.as_millis() as u64,
                };
                for room in self.rooms.values_mut() {
                    room.users.clear();
                }
                self.notice(&mut out, None, text);
            }
            NetEvent::Ended { why } => {
                self.notice(&mut out, None, format!("disconnected: {why}"));
                self.link = Link::Ended { why };
                self.done = true;
            }
            NetEvent::Server(msg) => self.apply(msg, &mut requests, &mut out),
            NetEvent::Uploaded { job, result } => {
                self.uploaded(job, result, &mut requests, &mut out)
            }
        }
        (requests, out)
    }

    /// An upload finished: its message goes through the pending ledger.
    fn uploaded(
        &mut self,
        job: UploadJob,
        result: Result<hubbub_protocol::Attachment, String>,
        requests: &mut Vec<Request>,
        out: &mut Vec<Line>,
    ) {
        self.uploading = self.uploading.saturating_sub(1);
        match result {
            Ok(file) => {
                let files = vec![file.id];
                match self.pending.send_files(&job.room, &job.caption, files) {
                    // Else written after the next welcome, like any send.
                    Ok(send) if self.link.is_connected() => requests.push(Request::Frame(send)),
                    Ok(_) => {}
                    Err(full) => self.error(out, full.to_string()),
                }
            }
            Err(why) => {
                let text = format!("{} not sent: {why}", job.path.display());
                self.error(out, text);
            }
        }
        self.quit_when_done(requests);
    }

    /// After a `/quit` that waited for uploads: quits once they are done
    /// and their messages acknowledged (an `ack` comes after the message
    /// itself, so the user sees it), or at once if the link is down.
    fn quit_when_done(&mut self, requests: &mut Vec<Request>) {
        let settled = self.pending.is_empty() || !self.link.is_connected();
        if self.quit_after_uploads && self.uploading == 0 && settled {
            self.quit_after_uploads = false;
            requests.push(Request::Frame(ClientMsg::Quit));
        }
    }

    /// `/upload`: asks the connection task to upload the file, now or,
    /// while the link is down, after the next welcome (with its token).
    fn upload(
        &mut self,
        requests: &mut Vec<Request>,
        out: &mut Vec<Line>,
        to: Option<String>,
        path: &str,
        caption: String,
    ) {
        // The room being joined to become current counts as current.
        let room = match (to, self.current.as_ref().or(self.switch_to.as_ref())) {
            (Some(to), _) => match self.conversation(requests, &to) {
                Ok(room) => room,
                Err(mistake) => return self.error(out, mistake.to_string()),
            },
            (None, Some(room)) => room.clone(),
            (None, None) => return self.error(out, CommandError::NoRoom.to_string()),
        };
        let job = UploadJob {
            path: upload::local_path(path),
            room,
            caption,
            token: None,
        };
        self.uploading += 1;
        if self.link.is_connected() {
            self.start_upload(requests, out, job);
        } else {
            let text = format!("will upload {} once connected", job.path.display());
            self.notice(out, None, text);
            self.queued_uploads.push(job);
        }
    }

    /// Hands `job` to the connection task with this connection's upload token.
    fn start_upload(&mut self, requests: &mut Vec<Request>, out: &mut Vec<Line>, job: UploadJob) {
        let Some(token) = self.renderer.upload_token().map(String::from) else {
            // A guest's token names the connection and the name it had.
            self.uploading = self.uploading.saturating_sub(1);
            let text = format!(
                "{} not sent: this connection may not upload (the server gave it no \
                 upload token: restart hubbub-chat to send files)",
                job.path.display()
            );
            self.error(out, text);
            return self.quit_when_done(requests);
        };
        let text = format!("uploading {}", job.path.display());
        self.notice(out, None, text);
        requests.push(Request::Upload(UploadJob {
            token: Some(token),
            ..job
        }));
    }

    /// One server frame: the tracker and the ledger learn from it, then the
    /// view; its lines are rendered unless they repeat what was shown.
    fn apply(&mut self, mut msg: ServerMsg, requests: &mut Vec<Request>, out: &mut Vec<Line>) {
        // A message the tracker has already seen is a repeat (a room joined
        // again without `since`): shown once.
        if let ServerMsg::Message { room, seq, .. } = &msg {
            if !self.tracker.is_new(room, *seq) {
                return;
            }
        }
        if let ServerMsg::History {
            room,
            messages,
            resync: false,
            before: None,
            ..
        } = &mut msg
        {
            messages.retain(|m| self.tracker.is_new(room, m.seq));
        }
        self.tracker.observe(&msg);
        // Conversations listed or announced and not joined yet: join them.
        for join in self.tracker.joins_for(&msg) {
            if let ClientMsg::Join { room, .. } = &join {
                self.joining.insert(room.clone());
            }
            requests.push(Request::Frame(join));
        }
        self.unread.observe(&msg);
        self.recent.observe(&msg);
        let settled = self.pending.settle(&msg);
        let lines = self.renderer.render(&msg, now_ms());
        match msg {
            ServerMsg::Welcome { user, .. } => {
                self.link = Link::Connected;
                self.welcomed_once = true;
                self.name = user;
                let text = format!("connected to {}", self.url);
                self.notice(out, None, text);
                self.push_all(out, lines);
                // Rejoins answer with fresh presence.
                self.joining.extend(self.tracker.rooms().map(String::from));
                let resume = resume_frames(&self.tracker, &self.pending);
                requests.extend(resume.into_iter().map(Request::Frame));
                for job in std::mem::take(&mut self.queued_uploads) {
                    self.start_upload(requests, out, job);
                }
            }
            ServerMsg::Presence { room, users } => {
                self.refused.remove(&room);
                let member = self.joining.remove(&room) || self.rooms.contains_key(&room);
                if member {
                    let view = self.rooms.entry(room.clone()).or_default();
                    view.users = users.iter().cloned().collect();
                    if let Some(me) = self.renderer.me() {
                        view.users.insert(me.to_string());
                    }
                }
                self.push_all(out, lines);
                if member && (self.switch_to.as_ref() == Some(&room) || self.current.is_none()) {
                    self.switch_to = None;
                    self.switch(out, requests, room);
                }
            }
            ServerMsg::Joined { room, users } => {
                if let Some(view) = self.rooms.get_mut(&room) {
                    view.users.extend(users);
                }
                self.push_all(out, lines);
            }
            ServerMsg::Left { room, users } => {
                let me = self.renderer.me().map(String::from);
                if let Some(view) = self.rooms.get_mut(&room) {
                    // Presence only: our own leave is confirmed by `leave_ok`.
                    for user in users.iter().filter(|u| me.as_ref() != Some(*u)) {
                        view.users.remove(user);
                    }
                }
                self.push_all(out, lines);
            }
            ServerMsg::LeaveOk { room } => {
                self.push_all(out, lines);
                self.left_room(out, requests, &room);
            }
            ServerMsg::Message { room, .. }
            | ServerMsg::History { room, .. }
            | ServerMsg::Read { room, .. } => {
                // Shown in the current room: read.
                if self.current.as_deref() == Some(room.as_str()) {
                    requests.extend(self.read_shown(&room));
                }
                self.push_all(out, lines);
            }
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
                ..
            } => {
                if let Some(view) = self.rooms.get_mut(&room) {
                    view.users.remove(&from);
                    view.users.insert(to);
                }
                self.push_all(out, lines);
            }
            ServerMsg::Renamed {
                room: None,
                from,
                to,
                ..
            } => {
                for view in self.rooms.values_mut() {
                    if view.users.remove(&from) {
                        view.users.insert(to.clone());
                    }
                }
                self.name = to;
                self.push_all(out, lines);
            }
            ServerMsg::Error {
                code,
                room,
                client_id,
                ..
            } => {
                // A refused join (of a room being joined: an error about
                // a room joined already is about something else).
                let refused_join = room.as_ref().filter(|room| {
                    matches!(
                        code,
                        ErrorCode::InvalidRoom
                            | ErrorCode::TooManyRooms
                            | ErrorCode::Unavailable
                            | ErrorCode::Forbidden
                            | ErrorCode::UnknownUser
                    ) && self.joining.remove(*room)
                });
                if let Some(room) = refused_join {
                    if self.switch_to.as_ref() == Some(room) {
                        self.switch_to = None;
                    }
                    self.refused.insert(room.clone());
                }
                // A send right behind a join that was refused: that
                // refusal said it all.
                let after_refused_join = code == ErrorCode::NotInRoom
                    && client_id
                        .as_ref()
                        .and_then(|id| self.pending.get(id))
                        .and_then(|send| send.room())
                        .is_some_and(|room| self.refused.contains(room));
                if let (Some(Settled::Refused { .. }), Some(id)) = (&settled, &client_id) {
                    // Said once on screen; nothing here to retry it from.
                    self.pending.dismiss(id);
                }
                if !after_refused_join {
                    self.push_all(out, lines);
                }
                let refused_name = matches!(code, ErrorCode::NameTaken | ErrorCode::InvalidName);
                if refused_name && !self.link.is_connected() {
                    if self.welcomed_once {
                        // Our old connection may not be gone yet: try again later.
                        requests.push(Request::Reconnect {
                            why: "the name is not free yet".into(),
                        });
                    } else {
                        self.notice(out, None, "type another name");
                    }
                }
            }
            ServerMsg::Conversation { .. }
            | ServerMsg::Conversations { .. }
            | ServerMsg::Rooms { .. }
            | ServerMsg::SearchResults { .. }
            | ServerMsg::Ack { .. }
            | ServerMsg::Typing { .. }
            | ServerMsg::Pong { .. }
            | ServerMsg::Heartbeat => self.push_all(out, lines),
        }
        if settled.is_some() {
            self.quit_when_done(requests);
        }
        // A read held back goes with the first frame after its time
        // (behind the joins, after a reconnect).
        requests.extend(self.owed_read());
    }

    fn push_all(&mut self, out: &mut Vec<Line>, lines: Vec<Line>) {
        for line in lines {
            self.push(out, line);
        }
    }

    /// `room` is shown to its end: read here at once; the server is told
    /// now, or (at most one `read` each `read_every_ms`) with a later frame.
    fn read_shown(&mut self, room: &str) -> Option<Request> {
        let read = self.unread.seen_all(room)?;
        self.read_owed = Some(read);
        self.owed_read()
    }

    /// The `read` held back, if it may go now.
    fn owed_read(&mut self) -> Option<Request> {
        let now = now_ms();
        if now.saturating_sub(self.last_read_ms) < self.read_every_ms {
            return None;
        }
        let read = self.read_owed.take()?;
        self.last_read_ms = now;
        Some(Request::Frame(read))
    }

    /// Messages in `room` past the user's read marker, said by others.
    pub fn unread(&self, room: &str) -> u64 {
        self.unread.unread(room)
    }

    /// Unread messages in `room` that mention the user (counted in
    /// [`App::unread`] too).
    pub fn mentions(&self, room: &str) -> u64 {
        self.unread.mentions(room)
    }

    /// Unread mentions of the user in every room.
    pub fn total_mentions(&self) -> u64 {
        self.unread.total_mentions()
    }

    /// This connection is no longer in `room`: another becomes current.
    fn left_room(&mut self, out: &mut Vec<Line>, requests: &mut Vec<Request>, room: &str) {
        self.rooms.remove(room);
        self.joining.remove(room);
        if self.current.as_deref() == Some(room) {
            self.current = None;
            match self.room_list().first().map(|room| room.to_string()) {
                Some(next) => self.switch(out, requests, next),
                None => self.notice(out, None, "you are in no room now: /join ROOM"),
            }
        }
    }

    fn switch(&mut self, out: &mut Vec<Line>, requests: &mut Vec<Request>, room: String) {
        requests.extend(self.read_shown(&room));
        let text = format!("you are talking in {} now", self.label(&room));
        self.notice(out, Some(&room), text);
        self.current = Some(room);
    }

    /// Makes the next joined room current (Tab in the TUI): returns the
    /// `read` to send for it, if it had unread messages.
    pub fn next_room(&mut self) -> Option<Request> {
        let list = self.room_list();
        let at = self
            .current
            .as_ref()
            .and_then(|current| list.iter().position(|room| room == current));
        let next = match at {
            Some(at) => list.get(at + 1).or(list.first()),
            None => list.first(),
        };
        let room = next?.to_string();
        let read = self.read_shown(&room);
        self.current = Some(room);
        read
    }

    /// Handles one typed line.
    pub fn on_input(&mut self, line: &str) -> Step {
        let mut out = Vec::new();
        let mut requests = Vec::new();
        let line = clean_line(line);
        if line.trim().is_empty() {
            return (requests, out);
        }
        if self.me().is_none() && !line.starts_with('/') {
            // Before a welcome, a line is another try at a name.
            self.name = line.trim().to_string();
            requests.push(Request::Frame(ClientMsg::Hello {
                name: self.name.clone(),
            }));
            return (requests, out);
        }
        let command = match command::parse(&line) {
            None => return (requests, out),
            Some(Ok(command)) => command,
            Some(Err(mistake)) => {
                self.error(&mut out, mistake.to_string());
                return (requests, out);
            }
        };
        let connected = self.link.is_connected();
        match command {
            Command::Msg { to, text } => self.msg(&mut out, &mut requests, &to, text),
            // Messages and changes to them: into the ledger first, written
            // now if the link is up, else after the next welcome.
            command @ (Command::Say(_)
            | Command::Reply { .. }
            | Command::Edit { .. }
            | Command::Delete(_)
            | Command::React { .. }) => {
                let tracked = command
                    .request(self.me(), self.current.as_deref(), &self.recent)
                    .map(|request| request.map(|request| self.pending.track(request)));
                match tracked {
                    Ok(Some(Ok(request))) if connected => requests.push(Request::Frame(request)),
                    Ok(Some(Ok(_)) | None) => {}
                    Ok(Some(Err(full))) => self.error(&mut out, full.to_string()),
                    Err(mistake) => self.error(&mut out, mistake.to_string()),
                }
            }
            Command::Join(room) if self.rooms.contains_key(&room) => {
                self.switch(&mut out, &mut requests, room)
            }
            Command::Join(room) => {
                self.joining.insert(room.clone());
                self.switch_to = Some(room.clone());
                let join = self.tracker.join(&room);
                if connected {
                    requests.push(Request::Frame(join));
                }
            }
            Command::Leave(room) => match room.or_else(|| self.current.clone()) {
                Some(room) => {
                    let leave = self.tracker.leave(&room);
                    if connected {
                        requests.push(Request::Frame(leave));
                    } else {
                        // The server forgot us with the old connection.
                        let text = format!("you left {}", self.label(&room));
                        self.notice(&mut out, Some(&room), text);
                        self.left_room(&mut out, &mut requests, &room);
                    }
                }
                None => self.error(&mut out, CommandError::Usage("/leave ROOM").to_string()),
            },
            Command::Help => {
                self.notice(&mut out, None, "commands:");
                for line in help_lines() {
                    self.notice(&mut out, None, format!("  {line}"));
                }
                for line in HELP_KEYS {
                    self.notice(&mut out, None, format!("  {line}"));
                }
            }
            Command::Upload { to, path, caption } => {
                self.upload(&mut requests, &mut out, to, &path, caption)
            }
            Command::Quit if self.uploading > 0 => {
                self.quit_after_uploads = true;
                let text = format!("quitting once {} upload(s) are done", self.uploading);
                self.notice(&mut out, None, text);
            }
            // Quit goes to the connection whatever its state: it ends it.
            Command::Quit => requests.push(Request::Frame(ClientMsg::Quit)),
            command @ (Command::Who(_)
            | Command::Rooms
            | Command::Search { .. }
            | Command::Rename(_)) => {
                match command.request(self.me(), self.current.as_deref(), &self.recent) {
                    Ok(Some(request)) if connected => requests.push(Request::Frame(request)),
                    Ok(Some(_)) => {
                        self.error(&mut out, "not connected: try again once the link is back")
                    }
                    Ok(None) => {}
                    Err(mistake) => self.error(&mut out, mistake.to_string()),
                }
            }
        }
        (requests, out)
    }

    /// The room of the conversation with `to`, asked to join now (written
    /// at once if the link is up, else rejoined after the next welcome)
    /// unless it is to be in already.
    fn conversation(
        &mut self,
        requests: &mut Vec<Request>,
        to: &str,
    ) -> Result<String, CommandError> {
        let me = self.me().ok_or(CommandError::NoName)?;
        let room = command::conversation_with(me, to)?;
        if !self.tracker.contains(&room) {
            self.joining.insert(room.clone());
            self.refused.remove(&room);
            let join = self.tracker.join(&room);
            if self.link.is_connected() {
                requests.push(Request::Frame(join));
            }
        }
        Ok(room)
    }

    /// `/msg USER [TEXT]`: TEXT said in the conversation with USER (joined
    /// first if need be), through the ledger like any send; without TEXT,
    /// the conversation becomes current (once joined).
    fn msg(
        &mut self,
        out: &mut Vec<Line>,
        requests: &mut Vec<Request>,
        to: &str,
        text: Option<String>,
    ) {
        let room = match self.conversation(requests, to) {
            Ok(room) => room,
            Err(mistake) => return self.error(out, mistake.to_string()),
        };
        match text {
            Some(text) => match self.pending.send(&room, &text) {
                Ok(send) if self.link.is_connected() => requests.push(Request::Frame(send)),
                Ok(_) => {}
                Err(full) => self.error(out, full.to_string()),
            },
            None if self.rooms.contains_key(&room) => self.switch(out, requests, room),
            None => self.switch_to = Some(room),
        }
    }
}

/// `HH:MM:SS` in local time.
pub fn clock(at_ms: u64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_millis_opt(at_ms as i64)
        .single()
        .map(|t| t.format("%H:%M:%S").to_string())
        .unwrap_or_else(|| "--:--:--".to_string())
}

/// How long until `link`'s next attempt, for the status line.
pub fn retry_in(link: &Link) -> Option<Duration> {
    link.retry_in_ms(now_ms()).map(Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(requests: Vec<Request>) -> Vec<ClientMsg> {
        requests
            .into_iter()
            .map(|r| match r {
                Request::Frame(msg) => msg,
                Request::Reconnect { why } => panic!("reconnect: {why}"),
                Request::Upload(job) => panic!("upload: {job:?}"),
            })
            .collect()
    }

    fn app() -> App {
        let mut app = App::new("ws://x/ws", "alice", &["lobby".to_string()], "t");
        let (hello, _) = app.on_net(NetEvent::Open);
        assert_eq!(
            frames(hello),
            [ClientMsg::Hello {
                name: "alice".into()
            }]
        );
        let (resume, _) = app.on_net(NetEvent::Server(welcome()));
        assert_eq!(
            frames(resume),
            [
                ClientMsg::Join {
                    room: "lobby".into(),
                    since: None
                },
                ClientMsg::Conversations
            ]
        );
        app.on_net(NetEvent::Server(ServerMsg::Presence {
            room: "lobby".into(),
            users: vec!["bob".into()],
        }));
        app
    }

    fn welcome() -> ServerMsg {
        ServerMsg::Welcome {
            user: "alice".into(),
            protocol: 1,
            heartbeat_ms: 25_000,
            idle_timeout_ms: 60_000,
            server_time: 0,
            limits: Default::default(),
            upload_token: Some("g1.t".into()),
        }
    }

    fn message(seq: u64) -> NetEvent {
        NetEvent::Server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: "bob".into(),
            text: format!("m{seq}"),
            sent_at: 0,
            attachments: Vec::new(),
        })
    }

    #[test]
    fn joining_makes_the_room_current_and_tracks_presence() {
        let mut app = app();
        assert_eq!(app.current.as_deref(), Some("lobby"));
        let users = &app.rooms["lobby"].users;
        assert!(users.contains("alice") && users.contains("bob"));
        let (requests, _) = app.on_input("hello there");
        assert_eq!(
            frames(requests),
            [ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "hello there".into(),
                client_id: Some("t-1".into()),
                attachments: Vec::new(),
            }]
        );
        app.on_net(NetEvent::Server(ServerMsg::Left {
            room: "lobby".into(),
            users: vec!["bob".into()],
        }));
        assert!(!app.rooms["lobby"].users.contains("bob"));
    }

    #[test]
    fn the_current_room_is_read_as_shown_and_the_others_count_unread() {
        let mut app = app();
        app.read_every_ms = 0;
        let read = |room: &str, seq| ClientMsg::Read {
            room: room.into(),
            seq,
        };
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "lobby".into(),
            seq: 0,
        }));
        // The current room: shown, so read.
        assert_eq!(frames(app.on_net(message(1)).0), [read("lobby", 1)]);
        // Another room: counted until it becomes current.
        app.on_input("/join kitchen");
        let kitchen = |seq| {
            NetEvent::Server(ServerMsg::Message {
                event: None,
                mentions: Vec::new(),
                reply_to: None,
                room: "kitchen".into(),
                seq,
                from: "bob".into(),
                text: "hi".into(),
                sent_at: 0,
                attachments: Vec::new(),
            })
        };
        app.on_net(NetEvent::Server(ServerMsg::Presence {
            room: "kitchen".into(),
            users: vec![],
        }));
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "kitchen".into(),
            seq: 4,
        }));
        assert_eq!(app.current.as_deref(), Some("kitchen"));
        assert!(
            frames(app.on_net(message(2)).0).is_empty(),
            "lobby is not shown"
        );
        assert!(frames(app.on_net(message(3)).0).is_empty());
        assert_eq!(app.unread("lobby"), 2);
        assert_eq!(frames(app.on_net(kitchen(5)).0), [read("kitchen", 5)]);
        assert_eq!(app.next_room(), Some(Request::Frame(read("lobby", 3))));
        assert_eq!(app.unread("lobby"), 0);
        // Read on another device: the count follows.
        app.on_net(kitchen(6));
        app.on_net(kitchen(7));
        assert_eq!(app.unread("kitchen"), 2);
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "kitchen".into(),
            seq: 7,
        }));
        assert_eq!(app.unread("kitchen"), 0);
    }

    #[test]
    fn reads_are_held_to_one_each_interval_and_the_last_goes_later() {
        let mut app = app();
        app.read_every_ms = 60_000;
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "lobby".into(),
            seq: 0,
        }));
        let read = |seq| {
            Request::Frame(ClientMsg::Read {
                room: "lobby".into(),
                seq,
            })
        };
        assert_eq!(app.on_net(message(1)).0, [read(1)]);
        // Within the interval: read here, told later.
        assert!(app.on_net(message(2)).0.is_empty());
        assert!(app.on_net(message(3)).0.is_empty());
        assert_eq!(app.unread("lobby"), 0);
        // The interval is up: the next frame carries the latest read.
        app.read_every_ms = 0;
        assert_eq!(
            app.on_net(NetEvent::Server(ServerMsg::Heartbeat)).0,
            [read(3)]
        );
        assert!(app
            .on_net(NetEvent::Server(ServerMsg::Heartbeat))
            .0
            .is_empty());
    }

    #[test]
    fn repeated_messages_after_a_resume_are_shown_once() {
        let mut app = app();
        assert_eq!(app.on_net(message(1)).1.len(), 1);
        assert_eq!(app.on_net(message(2)).1.len(), 1);
        assert!(app.on_net(message(2)).1.is_empty());
    }

    #[test]
    fn what_is_typed_while_away_is_sent_after_the_next_welcome() {
        let mut app = app();
        app.on_net(message(5));
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::from_millis(100),
        });
        assert_eq!(app.link.kind(), "reconnecting");
        let (now, _) = app.on_input("typed while away");
        assert!(now.is_empty(), "nothing written while the link is down");
        let (_, lines) = app.on_input("/who");
        assert!(lines[0].text.starts_with("not connected"));
        app.on_net(NetEvent::Open);
        let (resume, _) = app.on_net(NetEvent::Server(ServerMsg::Welcome {
            user: "alice".into(),
            protocol: 1,
            heartbeat_ms: 25_000,
            idle_timeout_ms: 60_000,
            server_time: 0,
            limits: Default::default(),
            upload_token: None,
        }));
        assert_eq!(
            frames(resume),
            [
                ClientMsg::Join {
                    room: "lobby".into(),
                    since: Some(5)
                },
                ClientMsg::Conversations,
                ClientMsg::Send {
                    reply_to: None,
                    room: "lobby".into(),
                    text: "typed while away".into(),
                    client_id: Some("t-1".into()),
                    attachments: Vec::new(),
                }
            ]
        );
        app.on_net(NetEvent::Server(ServerMsg::Ack {
            client_id: Some("t-1".into()),
            room: Some("lobby".into()),
            seq: Some(6),
        }));
        assert!(app.pending().is_empty());
    }

    #[test]
    fn an_upload_is_sent_as_a_message_and_resent_after_a_reconnect() {
        let mut app = app();
        let (requests, lines) = app.on_input("/upload /tmp/cat.png look");
        let [Request::Upload(job)] = &requests[..] else {
            panic!("{requests:?}");
        };
        assert_eq!(job.room, "lobby");
        assert_eq!(job.caption, "look");
        assert_eq!(job.token.as_deref(), Some("g1.t"));
        assert!(lines[0].text.starts_with("uploading /tmp/cat.png"));

        // The link drops while the file uploads: its message waits.
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::from_millis(100),
        });
        let file = hubbub_protocol::Attachment {
            id: "up1".into(),
            name: "cat.png".into(),
            size: 3,
            mime: "image/png".into(),
            width: Some(1),
            height: Some(1),
        };
        let (now, _) = app.on_net(NetEvent::Uploaded {
            job: job.clone(),
            result: Ok(file),
        });
        assert!(now.is_empty(), "nothing written while the link is down");
        app.on_net(NetEvent::Open);
        let (resume, _) = app.on_net(NetEvent::Server(welcome()));
        assert_eq!(
            frames(resume)[2],
            ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "look".into(),
                client_id: Some("t-1".into()),
                attachments: vec!["up1".into()],
            }
        );

        // To a user: to the conversation with them, joined first.
        let (requests, _) = app.on_input("/upload @bob /tmp/x.bin");
        let [Request::Frame(join), Request::Upload(job)] = &requests[..] else {
            panic!("{requests:?}");
        };
        assert_eq!(
            join,
            &ClientMsg::Join {
                room: "@alice+bob".into(),
                since: None
            }
        );
        assert_eq!(job.room, "@alice+bob");
        // A refused upload sends nothing and says why.
        let (requests, lines) = app.on_net(NetEvent::Uploaded {
            job: job.clone(),
            result: Err("too big (file_too_large)".into()),
        });
        assert!(requests.is_empty());
        assert_eq!(
            lines[0].body(),
            "! /tmp/x.bin not sent: too big (file_too_large)"
        );
    }

    #[test]
    fn an_upload_typed_while_away_starts_after_the_next_welcome() {
        let mut app = app();
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::ZERO,
        });
        let (requests, lines) = app.on_input("/upload /tmp/a.txt hi");
        assert!(requests.is_empty());
        assert_eq!(lines[0].text, "will upload /tmp/a.txt once connected");
        app.on_net(NetEvent::Open);
        let (requests, _) = app.on_net(NetEvent::Server(welcome()));
        let uploads: Vec<&UploadJob> = requests
            .iter()
            .filter_map(|r| match r {
                Request::Upload(job) => Some(job),
                _ => None,
            })
            .collect();
        assert_eq!(
            uploads,
            [&UploadJob {
                path: "/tmp/a.txt".into(),
                room: "lobby".into(),
                caption: "hi".into(),
                token: Some("g1.t".into()),
            }]
        );
    }

    #[test]
    fn quitting_waits_for_uploads_under_way() {
        let mut app = app();
        let (requests, _) = app.on_input("/upload /tmp/a.txt");
        let [Request::Upload(job)] = &requests[..] else {
            panic!("{requests:?}");
        };
        let job = job.clone();
        let (requests, lines) = app.on_input("/quit");
        assert!(requests.is_empty());
        assert_eq!(lines[0].text, "quitting once 1 upload(s) are done");
        let (requests, _) = app.on_net(NetEvent::Uploaded {
            job: job.clone(),
            result: Err("gone".into()),
        });
        assert_eq!(frames(requests), [ClientMsg::Quit]);

        // A stored upload: its message is written, and the quit follows its ack.
        app.on_input("/upload /tmp/a.txt");
        app.on_input("/quit");
        let file = hubbub_protocol::Attachment {
            id: "up1".into(),
            name: "a.txt".into(),
            size: 1,
            mime: "application/octet-stream".into(),
            width: None,
            height: None,
        };
        let (requests, _) = app.on_net(NetEvent::Uploaded {
            job,
            result: Ok(file),
        });
        assert!(matches!(&frames(requests)[..], [ClientMsg::Send { .. }]));
        let (requests, _) = app.on_net(NetEvent::Server(ServerMsg::Ack {
            client_id: Some("t-1".into()),
            room: Some("lobby".into()),
            seq: Some(1),
        }));
        assert_eq!(frames(requests), [ClientMsg::Quit]);
    }

    #[test]
    fn without_an_upload_token_upload_says_why() {
        let mut app = app();
        // A server that sends no new token with a rename.
        app.on_net(NetEvent::Server(ServerMsg::Renamed {
            room: None,
            from: "alice".into(),
            to: "al".into(),
            upload_token: None,
        }));
        let (requests, lines) = app.on_input("/upload /tmp/a.txt");
        assert!(requests.is_empty());
        assert!(lines[0].text.contains("restart hubbub-chat"), "{lines:?}");
    }

    #[test]
    fn a_name_refused_after_a_reconnect_is_tried_again_later() {
        let mut app = app();
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::ZERO,
        });
        app.on_net(NetEvent::Open);
        let (requests, _) = app.on_net(NetEvent::Server(ServerMsg::error(
            ErrorCode::NameTaken,
            "taken",
        )));
        assert!(matches!(&requests[..], [Request::Reconnect { .. }]));
    }

    #[test]
    fn commands_parse_like_the_gateway() {
        let mut app = app();
        assert_eq!(
            frames(app.on_input("/msg bob hi there").0),
            [
                ClientMsg::Join {
                    room: "@alice+bob".into(),
                    since: None
                },
                ClientMsg::Send {
                    reply_to: None,
                    room: "@alice+bob".into(),
                    text: "hi there".into(),
                    client_id: Some("t-1".into()),
                    attachments: Vec::new(),
                }
            ]
        );
        assert_eq!(
            frames(app.on_input("/who").0),
            [ClientMsg::Who {
                room: "lobby".into()
            }]
        );
        assert_eq!(
            frames(app.on_input("/join #kitchen").0),
            [ClientMsg::Join {
                room: "kitchen".into(),
                since: None
            }]
        );
        assert_eq!(
            frames(app.on_input("//me").0),
            [ClientMsg::Send {
                reply_to: None,
                room: "lobby".into(),
                text: "/me".into(),
                client_id: Some("t-2".into()),
                attachments: Vec::new(),
            }]
        );
        assert!(app.on_input("/dance").0.is_empty());
        assert!(app.on_input("/msg").0.is_empty());
    }

    fn said(seq: u64, from: &str, mentions: &[&str]) -> NetEvent {
        NetEvent::Server(ServerMsg::Message {
            event: None,
            mentions: mentions.iter().map(|m| m.to_string()).collect(),
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: format!("m{seq}"),
            sent_at: 0,
            attachments: Vec::new(),
        })
    }

    #[test]
    fn edits_deletions_reactions_and_replies_go_through_the_ledger() {
        let mut app = app();
        app.on_net(said(1, "alice", &[]));
        app.on_net(said(2, "bob", &[]));
        let (requests, lines) = app.on_input("/edit fixed");
        assert!(lines.is_empty(), "{lines:?}");
        assert_eq!(
            frames(requests),
            [ClientMsg::Edit {
                room: "lobby".into(),
                seq: 1,
                text: "fixed".into(),
                client_id: Some("t-1".into()),
            }]
        );
        assert_eq!(
            frames(app.on_input("/react 🎉").0),
            [ClientMsg::React {
                room: "lobby".into(),
                seq: 2,
                emoji: "🎉".into(),
                on: true,
                client_id: Some("t-2".into()),
            }]
        );
        assert_eq!(
            frames(app.on_input("/reply #1 yes").0),
            [ClientMsg::Send {
                reply_to: Some(1),
                room: "lobby".into(),
                text: "yes".into(),
                client_id: Some("t-3".into()),
                attachments: Vec::new(),
            }]
        );
        // A bad emoji is caught here: nothing is sent.
        let (requests, lines) = app.on_input("/react :)");
        assert!(requests.is_empty());
        assert!(
            lines[0].body().starts_with("! a reaction is one emoji"),
            "{lines:?}"
        );
        // The edit's ack settles it like a send's.
        app.on_net(NetEvent::Server(ServerMsg::Ack {
            client_id: Some("t-1".into()),
            room: Some("lobby".into()),
            seq: Some(3),
        }));
        assert_eq!(app.pending().len(), 2);

        // Typed while away, and what was not acked yet: sent again with
        // the same ids after the next welcome.
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::ZERO,
        });
        assert!(app.on_input("/delete").0.is_empty());
        app.on_net(NetEvent::Open);
        let resent: Vec<Option<String>> = frames(app.on_net(NetEvent::Server(welcome())).0)
            .into_iter()
            .filter_map(|frame| match frame {
                ClientMsg::React { client_id, .. }
                | ClientMsg::Send { client_id, .. }
                | ClientMsg::Delete { client_id, .. } => Some(client_id),
                _ => None,
            })
            .collect();
        let ids = ["t-2", "t-3", "t-4"].map(|id| Some(id.to_string()));
        assert_eq!(resent, ids);

        // A refusal is said once and leaves the ledger.
        let (_, lines) = app.on_net(NetEvent::Server(ServerMsg::Error {
            code: ErrorCode::NotAuthor,
            message: "not your message".into(),
            client_id: Some("t-4".into()),
            room: Some("lobby".into()),
        }));
        assert_eq!(lines[0].body(), "! not your message (not_author)");
        assert!(app.pending().get("t-4").is_none());
    }

    #[test]
    fn without_a_message_to_default_to_the_command_says_how_to_name_one() {
        let mut app = app();
        let (requests, lines) = app.on_input("/edit oops");
        assert!(requests.is_empty());
        assert_eq!(
            lines[0].body(),
            "! no message of yours shown in this room yet: name one, /edit #SEQ TEXT"
        );
        assert!(app.pending().is_empty());
    }

    #[test]
    fn mentions_of_the_user_are_marked_and_counted_apart() {
        let mut app = app();
        app.on_input("/join kitchen");
        app.on_net(NetEvent::Server(ServerMsg::Presence {
            room: "kitchen".into(),
            users: vec![],
        }));
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "lobby".into(),
            seq: 0,
        }));
        let (_, lines) = app.on_net(said(1, "bob", &["Alice"]));
        assert_eq!(lines[0].body(), "@ [lobby] #1 <bob> m1");
        let (_, lines) = app.on_net(said(2, "bob", &["carol"]));
        assert_eq!(lines[0].body(), "[lobby] #2 <bob> m2");
        assert_eq!((app.unread("lobby"), app.mentions("lobby")), (2, 1));
        assert_eq!(app.total_mentions(), 1);
        app.next_room();
        assert_eq!(app.total_mentions(), 0, "read once shown");
    }

    #[test]
    fn leaving_switches_to_another_room_on_leave_ok() {
        let mut app = app();
        app.on_input("/join kitchen");
        app.on_net(NetEvent::Server(ServerMsg::Presence {
            room: "kitchen".into(),
            users: vec![],
        }));
        assert_eq!(app.current.as_deref(), Some("kitchen"));
        let (requests, _) = app.on_input("/leave");
        assert_eq!(
            frames(requests),
            [ClientMsg::Leave {
                room: "kitchen".into()
            }]
        );
        let (_, lines) = app.on_net(NetEvent::Server(ServerMsg::LeaveOk {
            room: "kitchen".into(),
        }));
        let bodies: Vec<String> = lines.iter().map(Line::body).collect();
        assert_eq!(
            bodies,
            [
                "[kitchen] * you left kitchen",
                "[lobby] * you are talking in lobby now"
            ]
        );
        assert!(!app.rooms.contains_key("kitchen"));
    }

    fn conversation_said(room: &str, seq: u64, from: &str, text: &str) -> NetEvent {
        NetEvent::Server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: room.into(),
            seq,
            from: from.into(),
            text: text.into(),
            sent_at: 0,
            attachments: Vec::new(),
        })
    }

    fn presence(room: &str) -> NetEvent {
        NetEvent::Server(ServerMsg::Presence {
            room: room.into(),
            users: vec!["bob".into()],
        })
    }

    #[test]
    fn conversations_are_joined_after_welcome_and_when_announced() {
        let mut app = app();
        let listed = ServerMsg::Conversations {
            conversations: vec![hubbub_protocol::ConversationInfo {
                room: "@alice+bob".into(),
                with: "Bob".into(),
                online: true,
                last_seq: 2,
            }],
        };
        let (requests, lines) = app.on_net(NetEvent::Server(listed));
        assert_eq!(
            frames(requests),
            [ClientMsg::Join {
                room: "@alice+bob".into(),
                since: None
            }]
        );
        assert_eq!(lines[0].body(), "* your conversations: Bob (online)");
        app.on_net(presence("@alice+bob"));
        assert_eq!(app.current.as_deref(), Some("lobby"), "stays where it was");
        app.on_net(NetEvent::Server(ServerMsg::Read {
            room: "@alice+bob".into(),
            seq: 0,
        }));
        let (_, lines) = app.on_net(conversation_said("@alice+bob", 1, "Bob", "psst"));
        assert_eq!(lines[0].body(), "[@Bob] #1 <Bob> psst");
        // Listed with the rooms, by the other person, unread counted.
        assert_eq!(
            app.room_list()
                .iter()
                .map(|r| app.label(r))
                .collect::<Vec<_>>(),
            ["lobby", "@Bob"]
        );
        assert_eq!(app.unread("@alice+bob"), 1);

        // Carol writes first: the conversation is joined at once, once.
        let news = NetEvent::Server(ServerMsg::Conversation {
            room: "@alice+carol".into(),
            with: "carol".into(),
        });
        let (requests, _) = app.on_net(news.clone());
        assert_eq!(
            frames(requests),
            [ClientMsg::Join {
                room: "@alice+carol".into(),
                since: None
            }]
        );
        assert!(app.on_net(news).0.is_empty(), "not twice");
        app.on_net(presence("@alice+carol"));
        assert!(app.rooms.contains_key("@alice+carol"));

        // After a reconnect: rejoined with `since`, and asked again.
        app.on_net(NetEvent::Lost {
            why: "connection lost".into(),
            attempt: 0,
            retry_in: Duration::ZERO,
        });
        app.on_net(NetEvent::Open);
        let resume = frames(app.on_net(NetEvent::Server(welcome())).0);
        assert!(resume.contains(&ClientMsg::Join {
            room: "@alice+bob".into(),
            since: Some(1)
        }));
        assert_eq!(resume.last(), Some(&ClientMsg::Conversations));
    }

    #[test]
    fn msg_alone_makes_the_conversation_current_and_text_goes_to_it() {
        let mut app = app();
        let (requests, _) = app.on_input("/msg Bob");
        assert_eq!(
            frames(requests),
            [ClientMsg::Join {
                room: "@alice+bob".into(),
                since: None
            }]
        );
        let (_, lines) = app.on_net(presence("@alice+bob"));
        assert_eq!(app.current.as_deref(), Some("@alice+bob"));
        assert_eq!(
            lines.last().unwrap().body(),
            "[@bob] * you are talking in @bob now"
        );
        // Joined now: text goes straight in, and plain lines too.
        assert_eq!(
            frames(app.on_input("/msg bob hi").0),
            [ClientMsg::Send {
                reply_to: None,
                room: "@alice+bob".into(),
                text: "hi".into(),
                client_id: Some("t-1".into()),
                attachments: Vec::new(),
            }]
        );
        assert!(matches!(
            &frames(app.on_input("and more").0)[..],
            [ClientMsg::Send { room, .. }] if room == "@alice+bob"
        ));
        let (requests, lines) = app.on_input("/msg alice hi");
        assert!(requests.is_empty());
        assert_eq!(lines[0].body(), "! that is you: /msg someone else");
    }

    #[test]
    fn a_refused_conversation_is_said_once() {
        let mut app = app();
        let (requests, _) = app.on_input("/msg nobody hello?");
        assert_eq!(frames(requests).len(), 2, "join, then send");
        let (_, lines) = app.on_net(NetEvent::Server(ServerMsg::Error {
            code: ErrorCode::UnknownUser,
            message: "nobody is called nobody".into(),
            client_id: None,
            room: Some("@alice+nobody".into()),
        }));
        assert_eq!(lines[0].body(), "! nobody is called nobody (unknown_user)");
        let (_, lines) = app.on_net(NetEvent::Server(ServerMsg::Error {
            code: ErrorCode::NotInRoom,
            message: "join first".into(),
            client_id: Some("t-1".into()),
            room: Some("@alice+nobody".into()),
        }));
        assert!(lines.is_empty(), "{lines:?}");
        assert!(app.pending().is_empty());
        assert!(!app.rooms.contains_key("@alice+nobody"));
        // A later try joins again.
        let (requests, _) = app.on_input("/msg nobody again");
        assert!(matches!(&frames(requests)[0], ClientMsg::Join { .. }));
    }
}
