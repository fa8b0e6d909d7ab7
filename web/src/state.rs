//! Everything the app shows, in one value changed only by [`Action`]s.
//!
//! Like Yew's `function_todomvc`, the state is a [`Reducible`]: components and
//! the connection task dispatch actions and never mutate it themselves. Rooms
//! and private conversations (rooms named `@alice+bob`, docs/protocol.md,
//! "Private conversations") share one shape, [`Chat`], kept behind `Rc` so
//! an action that touches one chat clones only that chat.
//!
//! Every server frame reaches [`ChatState::apply_server`] once, in one
//! `match` with an arm per message type (no catch-all: a new message type
//! does not compile until the UI decides what it shows). Own messages on
//! their way are not kept here: the connection task owns the one ledger of
//! them (the client core's [`Pending`], keyed by `client_id`) and hands the
//! state a shared, read-only [`Ledger`] after every change
//! ([`Action::Pending`]).

use std::cell::RefCell;
use std::rc::Rc;

use hubbub_client::pending::PendingSend;
use hubbub_client::{Link, Pending, Unread};
use hubbub_protocol::names::is_conversation;
use hubbub_protocol::{Attachment, ErrorCode, Event, Limits, Quote, SearchHit, ServerMsg};
use yew::prelude::*;

use crate::fmt::now_ms;

/// How many entries a chat keeps as new ones arrive; older ones are dropped.
const MAX_ENTRIES: usize = 500;
/// How many events (edits, deletions, reactions) a chat remembers having
/// folded, so one heard twice (live, then in a page of history) is folded
/// once; and how many it holds for messages not loaded yet.
const MAX_EVENTS: usize = 1_000;
/// The start of the `client_id`s of edits, deletions and reactions: they
/// are not in the ledger of sends, so a refusal of one is a notice.
pub const EVENT_ID: &str = "ev-";
/// How long a `typing` notice is shown, in milliseconds.
pub const TYPING_SHOWN_MS: f64 = 4_000.0;
/// A user who leaves and comes back (or comes and goes) within this many
/// milliseconds is not news: a page reload, a dropped link.
pub const PRESENCE_BLIP_MS: u64 = 60_000;

/// Where messages go: a room, by name. A private conversation is a room
/// too, named after its two people (`@alice+bob`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target(pub String);

/// One line in a chat's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// Something a user said.
    Message {
        /// Local id, unique in this page, used as the list key.
        id: u64,
        /// The room sequence number (`None` only in tests' made-up entries).
        seq: Option<u64>,
        from: String,
        text: String,
        /// Milliseconds since the Unix epoch, by the server's clock.
        sent_at: u64,
        /// Sent by this user (under the name it had then).
        own: bool,
        /// The files it carries (`text` is then an optional caption).
        files: Vec<Attachment>,
        /// The message this one answers, as quoted when it was sent.
        reply_to: Option<Quote>,
        /// The users its text mentions (the server's list).
        mentions: Vec<String>,
        /// Edited since it was sent.
        edited: bool,
        /// Deleted: a tombstone, with no text, files or reactions.
        deleted: bool,
        /// Each emoji put on it, with who put it there, in order.
        reactions: Vec<(String, Vec<String>)>,
    },
    /// A rename or other notice, shown apart from messages.
    System { id: u64, text: String, at: u64 },
    /// Who came online and who went offline, gathered while nothing else
    /// happened in between ("ana, bo and 12 others joined").
    Presence {
        id: u64,
        /// Who joined, with when, in order.
        joined: Vec<(String, u64)>,
        /// Who left, with when, in order.
        left: Vec<(String, u64)>,
        /// When the first of them happened.
        at: u64,
    },
}

impl Entry {
    pub fn id(&self) -> u64 {
        match self {
            Entry::Message { id, .. } | Entry::System { id, .. } | Entry::Presence { id, .. } => {
                *id
            }
        }
    }

    fn at(&self) -> u64 {
        match self {
            Entry::Message { sent_at, .. } => *sent_at,
            Entry::System { at, .. } | Entry::Presence { at, .. } => *at,
        }
    }
}

/// The line a presence notice reads as: "ana and bo joined · cy left".
pub fn presence_text(joined: &[(String, u64)], left: &[(String, u64)]) -> String {
    let names = |list: &[(String, u64)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    match (joined.is_empty(), left.is_empty()) {
        (false, true) => format!("{} joined", join_names(&names(joined))),
        (true, false) => format!("{} left", join_names(&names(left))),
        _ => format!(
            "{} joined · {} left",
            join_names(&names(joined)),
            join_names(&names(left))
        ),
    }
}

/// A message search and what it found: the results show in place of the
/// chat while the state has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Search {
    pub query: String,
    /// Newest first, page after page.
    pub hits: Vec<SearchHit>,
    /// Where the next (older) page starts, if there is one.
    pub next: Option<String>,
    /// Waiting for the server's answer.
    pub busy: bool,
}

/// A room or a private conversation, with what the UI shows for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chat {
    pub target: Target,
    /// For a private conversation, the other person, as they spell their
    /// name; `None` for a room.
    pub with: Option<String>,
    /// Who is online in the room, sorted (for a conversation, until its
    /// `presence` comes: the other person if the `conversations` answer
    /// said they were online).
    pub members: Vec<String>,
    pub entries: Vec<Rc<Entry>>,
    /// Unread messages past the user's read marker (kept by the server,
    /// [`ChatState::reads`]).
    pub unread: u32,
    /// Where the "new messages" divider goes: after this `seq` (the read
    /// marker when the user came to the room with unread messages).
    pub divider: Option<u64>,
    /// Who is typing, with when to stop showing it.
    pub typing: Vec<(String, u64)>,
    /// Whether the server has older messages than the first one shown.
    pub has_more: bool,
    /// Unread messages that mention this user (counted in `unread` too).
    pub mentions: u32,
    /// The `seq`s of the events folded (or held), newest last.
    folded: Vec<u64>,
    /// Events whose target is older than what is loaded, held until a
    /// page of history brings it: (event `seq`, sender, text, mentions).
    held: Vec<(u64, String, String, Vec<String>, Event)>,
    /// The oldest event `seq` loaded, if older than every message shown
    /// (a page of history may hold events only).
    floor: Option<u64>,
}

/// A message as a timeline entry: what the server said, not yet edited,
/// deleted or reacted to.
#[allow(clippy::too_many_arguments)]
fn said(
    id: u64,
    seq: Option<u64>,
    from: String,
    text: String,
    sent_at: u64,
    own: bool,
    files: Vec<Attachment>,
    reply_to: Option<Quote>,
    mentions: Vec<String>,
) -> Entry {
    Entry::Message {
        id,
        seq,
        from,
        text,
        sent_at,
        own,
        files,
        reply_to,
        mentions,
        edited: false,
        deleted: false,
        reactions: Vec::new(),
    }
}

impl Chat {
    fn new(target: Target) -> Chat {
        Chat {
            target,
            with: None,
            members: Vec::new(),
            entries: Vec::new(),
            unread: 0,
            divider: None,
            typing: Vec::new(),
            has_more: false,
            mentions: 0,
            folded: Vec::new(),
            held: Vec::new(),
            floor: None,
        }
    }

    /// `#room`, or `@name` of the other person of a conversation, as the
    /// UI writes it.
    pub fn label(&self) -> String {
        match &self.with {
            Some(with) => format!("@{with}"),
            None => format!("#{}", self.target.0),
        }
    }

    /// Whether the other person of a conversation is online: in its own
    /// presence, or in that of any of `chats` (they are online without
    /// having joined the conversation, e.g. before anything is said in it).
    pub fn peer_online(&self, chats: &[Rc<Chat>]) -> bool {
        self.with.as_ref().is_some_and(|with| {
            self.members
                .iter()
                .chain(chats.iter().flat_map(|c| c.members.iter()))
                .any(|m| same_name(m, with))
        })
    }

    /// Folds event `seq` (from `from`, with its `text` and `mentions`)
    /// into its target, or holds it until the target is loaded. An event
    /// heard before is skipped, so a replay changes nothing.
    fn fold(&mut self, seq: u64, from: String, text: String, mentions: Vec<String>, event: Event) {
        if self.folded.contains(&seq) {
            return;
        }
        if self.folded.len() >= MAX_EVENTS {
            self.folded.remove(0);
        }
        self.folded.push(seq);
        if self.first_seq().is_none_or(|first| seq < first) {
            self.floor = Some(seq);
        }
        let held = (seq, from, text, mentions, event);
        if !self.apply(&held) && self.held.len() < MAX_EVENTS {
            self.held.push(held);
        }
    }

    /// Applies the events held for messages that are now loaded, in
    /// `seq` order.
    fn apply_held(&mut self) {
        let mut held = std::mem::take(&mut self.held);
        // In `seq` order: an insertion sort (a handful of events; the
        // standard library's sort would cost the bundle ~4 KB).
        for i in 1..held.len() {
            let mut j = i;
            while j > 0 && held[j - 1].0 > held[j].0 {
                held.swap(j - 1, j);
                j -= 1;
            }
        }
        held.retain(|h| !self.apply(h));
        self.held = held;
    }

    /// Applies one event to its target; `false` if the target is not loaded.
    fn apply(
        &mut self,
        (_, from, new_text, new_mentions, event): &(u64, String, String, Vec<String>, Event),
    ) -> bool {
        let target = event.target();
        let Some(entry) = self
            .entries
            .iter_mut()
            .find(|e| matches!(&***e, Entry::Message { seq: Some(s), .. } if *s == target))
        else {
            return false;
        };
        if let Entry::Message {
            text,
            files,
            reply_to,
            mentions,
            edited,
            deleted: deleted @ false,
            reactions,
            ..
        } = Rc::make_mut(entry)
        {
            match event {
                Event::Edit { .. } => {
                    text.clone_from(new_text);
                    mentions.clone_from(new_mentions);
                    *edited = true;
                }
                Event::Delete { .. } => {
                    *deleted = true;
                    *edited = false;
                    text.clear();
                    files.clear();
                    mentions.clear();
                    reactions.clear();
                    *reply_to = None;
                }
                Event::React { emoji, on, .. } => {
                    let at = reactions.iter().position(|(e, _)| e == emoji);
                    match (at, *on) {
                        (Some(at), true) => {
                            if !reactions[at].1.contains(from) {
                                reactions[at].1.push(from.clone());
                            }
                        }
                        (None, true) => reactions.push((emoji.clone(), vec![from.clone()])),
                        (Some(at), false) => {
                            reactions[at].1.retain(|u| u != from);
                            if reactions[at].1.is_empty() {
                                reactions.remove(at);
                            }
                        }
                        (None, false) => {}
                    }
                }
            }
        }
        true
    }

    /// Inserts `entry` in time order (arrival order for equal times).
    fn push(&mut self, entry: Entry) {
        let at = entry.at();
        let pos = self
            .entries
            .iter()
            .rposition(|e| e.at() <= at)
            .map_or(0, |i| i + 1);
        let appended = pos == self.entries.len();
        self.entries.insert(pos, Rc::new(entry));
        // New messages push the oldest out (they stay on the server); older
        // pages the user asked for are kept.
        if appended && self.entries.len() > MAX_ENTRIES {
            let extra = self.entries.len() - MAX_ENTRIES;
            self.entries.drain(..extra);
            self.has_more = true;
            self.floor = None;
        }
    }

    /// Whether this exact room message is already shown (a replay after a
    /// reconnect). A restarted server may reuse `seq`, so the time and sender
    /// must match too.
    fn has_message(&self, seq: u64, from: &str, sent_at: u64) -> bool {
        self.entries.iter().rev().take(200).any(|e| {
            matches!(&**e, Entry::Message { seq: Some(s), from: f, sent_at: t, .. }
                if *s == seq && f == from && *t == sent_at)
        })
    }

    /// The oldest `seq` of the room loaded: its oldest message shown, or
    /// an older event (older history is asked for before it).
    pub fn first_seq(&self) -> Option<u64> {
        let first = self.entries.iter().find_map(|e| match &**e {
            Entry::Message { seq, .. } => *seq,
            Entry::System { .. } | Entry::Presence { .. } => None,
        });
        match (first, self.floor) {
            (Some(first), Some(floor)) => Some(first.min(floor)),
            (first, floor) => first.or(floor),
        }
    }

    /// The message `seq` of the room, if loaded.
    pub fn message(&self, seq: u64) -> Option<&Entry> {
        self.entries
            .iter()
            .map(|e| &**e)
            .find(|e| matches!(e, Entry::Message { seq: Some(s), .. } if *s == seq))
    }

    fn has_messages(&self) -> bool {
        self.entries
            .iter()
            .any(|e| matches!(&**e, Entry::Message { .. }))
    }

    fn add_members(&mut self, users: &[String]) {
        for user in users {
            if !self.members.contains(user) {
                self.members.push(user.clone());
            }
        }
        sort_names(&mut self.members);
    }

    fn remove_members(&mut self, users: &[String]) {
        self.members.retain(|m| !users.contains(m));
    }
}

/// Sorts case-insensitively for ASCII (Unicode case tables would cost the
/// bundle ~20 KB; other letters sort by code point), folding byte by byte
/// rather than making a lowercase copy per comparison. Stable, like the
/// standard library's sort, whose code (~4 KB) this small merge sort
/// keeps out of the bundle.
fn sort_names(names: &mut Vec<String>) {
    *names = merge_sort(std::mem::take(names));
}

fn merge_sort(mut left: Vec<String>) -> Vec<String> {
    if left.len() < 2 {
        return left;
    }
    let right = merge_sort(left.split_off(left.len() / 2));
    let left = merge_sort(left);
    let mut sorted = Vec::with_capacity(left.len() + right.len());
    let (mut left, mut right) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (left.peek(), right.peek()) {
        // An equal name from the right half goes after the left's: stable.
        let next = if folded(b).lt(folded(a)) {
            right.next()
        } else {
            left.next()
        };
        sorted.extend(next);
    }
    sorted.extend(left);
    sorted.extend(right);
    sorted
}

/// A name's bytes with ASCII letters lower-cased.
fn folded(name: &str) -> impl Iterator<Item = u8> + '_ {
    name.bytes().map(|c| c.to_ascii_lowercase())
}

/// A value compared by identity: every change comes as a new `Rc`, so no
/// field-by-field comparison (and no code for one in the bundle) is needed.
#[derive(Debug, Clone)]
pub struct Copied<T>(pub Rc<T>);

impl<T> PartialEq for Copied<T> {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl<T> std::ops::Deref for Copied<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

/// The connection task's one ledger of own messages on their way, shared
/// for reading, with the number of its last change: two `Ledger`s are equal
/// when no change came in between.
#[derive(Debug, Clone)]
pub struct Ledger(Rc<RefCell<Pending>>, u64);

impl Ledger {
    pub fn new(ledger: Rc<RefCell<Pending>>, version: u64) -> Ledger {
        Ledger(ledger, version)
    }
}

impl PartialEq for Ledger {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0) && self.1 == other.1
    }
}

/// A short message shown over the app, e.g. why a join was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub id: u64,
    pub text: String,
}

/// Whether two spellings name the same user, as far as the app can tell
/// without Unicode's case tables (~10 KB of the bundle): the server
/// spells names as they are, so only ASCII case is folded.
pub fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

/// The whole app state.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatState {
    /// The name the server welcomed us with (`None` before the first welcome).
    pub me: Option<String>,
    /// The name we ask for in `hello`: chosen on the first screen or remembered.
    pub wanted_name: Option<String>,
    /// Why the server refused the chosen name, shown on the first screen.
    pub name_error: Option<String>,
    /// The connection, as the top bar shows it.
    pub link: Link,
    /// The connection task's ledger of own messages on their way, to read.
    pub pending: Ledger,
    /// Joined rooms first (in join order), then private conversations
    /// (the latest first).
    pub chats: Vec<Rc<Chat>>,
    /// The chat on screen.
    pub current: Option<Target>,
    /// Rooms on the server with their member counts (the `rooms` answer).
    pub directory: Vec<(String, usize)>,
    pub notice: Option<Notice>,
    /// The server's limits (defaults until `welcome`).
    pub limits: Limits,
    /// A guest's upload token from the last `welcome` (`None` for an
    /// account, whose cookie authorizes its uploads and downloads).
    pub upload_token: Option<String>,
    /// Whether `GET /api/session` has answered; the first screen waits for it.
    pub session_checked: bool,
    /// The account signed in with; `None` for a guest (or nobody).
    pub account: Option<String>,
    /// Whether the server lets people chat as guests.
    pub guests: bool,
    /// Why the sign-in screen is showing (signed out elsewhere, session
    /// expired, guests turned off).
    pub auth_notice: Option<String>,
    /// Read markers and unread counts of the rooms (the client core's).
    pub reads: Unread,
    /// Times the tab became visible (or a held-back `read` came due):
    /// what is on screen then is read.
    pub visible: u32,
    /// The open search, if any.
    pub search: Option<Rc<Search>>,
    /// A message to bring into view (a search result, a reply's
    /// original): room and `seq`.
    pub found: Option<(String, u64)>,
    /// The message of the chat on screen being edited, by `seq`.
    pub editing: Option<u64>,
    /// The message the next one sent to the chat on screen answers.
    pub reply: Option<Quote>,
    /// The server's clock less this browser's, from the last `welcome`
    /// (whether a message is still in its edit window is the server's
    /// time).
    pub clock: i64,
    /// The name the user asked to message (`open`): its `conversation`
    /// answer becomes the chat on screen.
    pub opening: Option<String>,
    /// Source of local ids for entries and notices.
    next_id: u64,
}

impl ChatState {
    /// The initial state: a remembered name and rooms, or the first screen.
    pub fn new(name: Option<String>, rooms: Vec<String>, current: Option<Target>) -> ChatState {
        let chats: Vec<Rc<Chat>> = rooms
            .into_iter()
            .map(|room| Rc::new(Chat::new(Target(room))))
            .collect();
        let current = current
            .filter(|t| chats.iter().any(|c| &c.target == t))
            .or_else(|| chats.first().map(|c| c.target.clone()));
        ChatState {
            link: Link::Idle,
            pending: Ledger::new(Rc::new(RefCell::new(Pending::new(""))), 0),
            me: None,
            wanted_name: name,
            name_error: None,
            chats,
            current,
            directory: Vec::new(),
            notice: None,
            limits: Limits::default(),
            upload_token: None,
            session_checked: false,
            account: None,
            guests: true,
            auth_notice: None,
            reads: Unread::new(),
            visible: 0,
            search: None,
            found: None,
            editing: None,
            reply: None,
            clock: 0,
            opening: None,
            next_id: 1,
        }
    }

    /// The name to show for this user: confirmed, or the one asked for.
    pub fn display_name(&self) -> Option<&str> {
        self.me.as_deref().or(self.wanted_name.as_deref())
    }

    pub fn chat(&self, target: &Target) -> Option<&Rc<Chat>> {
        self.chats.iter().find(|c| &c.target == target)
    }

    pub fn current_chat(&self) -> Option<&Rc<Chat>> {
        self.current.as_ref().and_then(|t| self.chat(t))
    }

    /// Own messages on their way to `target`, oldest first.
    pub fn pending_for(&self, target: &Target) -> Vec<PendingSend> {
        self.pending
            .0
            .borrow()
            .iter()
            .filter(|p| p.room() == Some(target.0.as_str()))
            .cloned()
            .collect()
    }

    /// The conversation with `user`, if the user has it.
    pub fn conversation_with(&self, user: &str) -> Option<&Rc<Chat>> {
        self.chats
            .iter()
            .find(|c| c.with.as_deref().is_some_and(|w| same_name(w, user)))
    }

    fn is_me(&self, name: &str) -> bool {
        self.me.as_deref() == Some(name)
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn chat_mut(&mut self, target: &Target) -> Option<&mut Chat> {
        self.chats
            .iter_mut()
            .find(|c| &c.target == target)
            .map(Rc::make_mut)
    }

    /// The chat for `target`, created if new: a room after the other
    /// rooms, a conversation before the other conversations (the latest
    /// first), with the other person's name from the room's until a
    /// `conversation` frame spells it.
    fn chat_or_insert(&mut self, target: &Target) -> &mut Chat {
        if let Some(i) = self.chats.iter().position(|c| &c.target == target) {
            return Rc::make_mut(&mut self.chats[i]);
        }
        let mut chat = Chat::new(target.clone());
        if is_conversation(&target.0) {
            let me = self.me.clone().unwrap_or_default();
            chat.with = target.0[1..]
                .split('+')
                .find(|key| !same_name(key, &me))
                .map(str::to_string);
        }
        let pos = self
            .chats
            .iter()
            .position(|c| c.with.is_some())
            .unwrap_or(self.chats.len());
        self.chats.insert(pos, Rc::new(chat));
        Rc::make_mut(&mut self.chats[pos])
    }

    fn system(&mut self, target: &Target, text: String) {
        let id = self.take_id();
        if let Some(chat) = self.chat_mut(target) {
            chat.push(Entry::System {
                id,
                text,
                at: now_ms(),
            });
        }
    }

    /// Notes that `users` joined (or left) `target`. Consecutive notices
    /// gather in one entry, and a user who left and came back (or came and
    /// went) within [`PRESENCE_BLIP_MS`] drops out of it.
    /// A conversation says nothing of it: the other person's dot does.
    fn presence(&mut self, target: &Target, users: &[String], joined: bool) {
        if users.is_empty() || is_conversation(&target.0) {
            return;
        }
        let now = now_ms();
        let id = self.take_id();
        let Some(chat) = self.chat_mut(target) else {
            return;
        };
        let (id, mut came, mut went, at) = match chat.entries.last().map(|e| &**e) {
            Some(Entry::Presence {
                id,
                joined,
                left,
                at,
            }) => {
                let last = (*id, joined.clone(), left.clone(), *at);
                chat.entries.pop();
                last
            }
            _ => (id, Vec::new(), Vec::new(), now),
        };
        for user in users {
            let (add, undo) = if joined {
                (&mut came, &mut went)
            } else {
                (&mut went, &mut came)
            };
            // The opposite notice for the same user, still fresh: a blip.
            if let Some(i) = undo
                .iter()
                .position(|(u, t)| u == user && now.saturating_sub(*t) < PRESENCE_BLIP_MS)
            {
                undo.remove(i);
            } else if !add.iter().any(|(u, _)| u == user) {
                add.push((user.clone(), now));
            }
        }
        if !came.is_empty() || !went.is_empty() {
            chat.entries.push(Rc::new(Entry::Presence {
                id,
                joined: came,
                left: went,
                at,
            }));
        }
    }

    fn notify(&mut self, text: impl Into<String>) {
        let id = self.take_id();
        self.notice = Some(Notice {
            id,
            text: text.into(),
        });
    }

    fn open(&mut self, target: Target) {
        if self.current.as_ref() != Some(&target) {
            self.editing = None;
            self.reply = None;
        }
        if self
            .found
            .as_ref()
            .is_some_and(|(room, _)| target != Target(room.clone()))
        {
            self.found = None;
        }
        if let Some(chat) = self.chat_mut(&target) {
            chat.divider = None;
        }
        self.current = Some(target);
        self.divide();
    }

    /// The user comes to the chat on screen (opened it, or the tab became
    /// visible): with unread messages, the divider goes at the marker.
    fn divide(&mut self) {
        let Some(Target(room)) = self.current.clone() else {
            return;
        };
        let marker = self.reads.read(&room);
        let unread = self.reads.unread(&room);
        if let Some(chat) = self.chat_mut(&Target(room)) {
            if unread > 0 && chat.divider.is_none() {
                chat.divider = marker;
            }
        }
    }

    /// A room's counts follow its read marker.
    fn count_unread(&mut self, room: &str) {
        let unread = self.reads.unread(room).min(u32::MAX as u64) as u32;
        let mentions = self.reads.mentions(room).min(u32::MAX as u64) as u32;
        if let Some(chat) = self.chat_mut(&Target(room.to_string())) {
            if (chat.unread, chat.mentions) != (unread, mentions) {
                chat.unread = unread;
                chat.mentions = mentions;
            }
        }
    }

    /// Messages sent after this time (the server's clock) may still be
    /// edited.
    pub fn edit_after(&self) -> u64 {
        (now_ms() as i64 + self.clock)
            .max(0)
            .unsigned_abs()
            .saturating_sub(self.limits.edit_window_ms)
    }

    /// Starts editing this user's last message in the chat on screen, if
    /// it is still in its edit window.
    fn edit_last(&mut self) {
        let after = self.edit_after();
        let last = self.current_chat().and_then(|chat| {
            chat.entries.iter().rev().find_map(|e| match &**e {
                Entry::Message {
                    seq: Some(seq),
                    own: true,
                    deleted: false,
                    sent_at,
                    ..
                } => Some((*seq, *sent_at > after)),
                _ => None,
            })
        });
        if let Some((seq, true)) = last {
            self.editing = Some(seq);
        }
    }

    fn close(&mut self, target: &Target) {
        self.chats.retain(|c| &c.target != target);
        if self.current.as_ref() == Some(target) {
            self.current = self.chats.first().map(|c| c.target.clone());
        }
    }

    fn apply_server(&mut self, msg: ServerMsg) {
        // A page load's first marker for the room on screen places the
        // divider, as opening the room would.
        let first_marker =
            matches!(&msg, ServerMsg::Read { room, .. } if self.reads.read(room).is_none());
        self.reads.observe(&msg);
        if let ServerMsg::Message { room, .. }
        | ServerMsg::History { room, .. }
        | ServerMsg::Read { room, .. } = &msg
        {
            self.count_unread(room);
            if first_marker {
                self.divide();
            }
        }
        match msg {
            ServerMsg::Welcome {
                user,
                limits,
                upload_token,
                server_time,
                ..
            } => {
                self.upload_token = upload_token;
                self.clock = server_time as i64 - now_ms() as i64;
                self.me = Some(user.clone());
                self.wanted_name = Some(user);
                self.name_error = None;
                self.limits = limits;
            }
            ServerMsg::Presence { room, mut users } => {
                let chat = self.chat_or_insert(&Target(room));
                sort_names(&mut users);
                users.dedup();
                chat.members = users;
            }
            ServerMsg::Joined { room, users } => {
                let target = Target(room);
                let Some(chat) = self.chat_mut(&target) else {
                    return;
                };
                // Only who was not yet listed is news.
                let new: Vec<String> = users
                    .iter()
                    .filter(|u| !chat.members.contains(u))
                    .cloned()
                    .collect();
                chat.add_members(&users);
                let others = self.others(&new);
                self.presence(&target, &others, true);
            }
            ServerMsg::Left { room, users } => {
                let target = Target(room);
                let Some(chat) = self.chat_mut(&target) else {
                    return;
                };
                let gone: Vec<String> = users
                    .iter()
                    .filter(|u| chat.members.contains(u))
                    .cloned()
                    .collect();
                chat.remove_members(&users);
                chat.typing.retain(|(u, _)| !users.contains(u));
                let others = self.others(&gone);
                self.presence(&target, &others, false);
            }
            ServerMsg::Message {
                reply_to,
                mentions,
                event,
                room,
                seq,
                from,
                text,
                sent_at,
                attachments,
            } => {
                let target = Target(room);
                let own = self.is_me(&from);
                let id = self.take_id();
                let Some(chat) = self.chat_mut(&target) else {
                    return;
                };
                if let Some(event) = event {
                    chat.fold(seq, from, text, mentions, event);
                    return;
                }
                if chat.has_message(seq, &from, sent_at) {
                    return;
                }
                chat.typing.retain(|(u, _)| *u != from);
                chat.push(said(
                    id,
                    Some(seq),
                    from,
                    text,
                    sent_at,
                    own,
                    attachments,
                    reply_to,
                    mentions,
                ));
            }
            ServerMsg::History {
                room,
                messages,
                has_more,
                before,
                resync,
            } => {
                let me = self.me.clone();
                let first_id = self.next_id;
                self.next_id += messages.len() as u64;
                let Some(chat) = self.chat_mut(&Target(room)) else {
                    return;
                };
                if resync {
                    chat.entries.clear();
                    chat.folded.clear();
                    chat.held.clear();
                    chat.floor = None;
                }
                // A first page or an older page says whether there is more;
                // the catch-up after a resume does not.
                if resync || before.is_some() || !chat.has_messages() {
                    chat.has_more = has_more;
                }
                for (id, m) in (first_id..).zip(messages) {
                    if let Some(event) = m.event {
                        chat.fold(m.seq, m.from, m.text, m.mentions, event);
                        continue;
                    }
                    if chat.has_message(m.seq, &m.from, m.sent_at) {
                        continue;
                    }
                    let own = me.as_deref() == Some(m.from.as_str());
                    chat.push(said(
                        id,
                        Some(m.seq),
                        m.from,
                        m.text,
                        m.sent_at,
                        own,
                        m.attachments,
                        m.reply_to,
                        m.mentions,
                    ));
                }
                chat.apply_held();
            }
            // Own sends are settled in the connection task's ledger.
            ServerMsg::Ack { .. } => {}
            // A room was closed when the user chose to leave it; a
            // conversation still open was ended by the server (a guest's
            // name went).
            ServerMsg::LeaveOk { room } => {
                let target = Target(room);
                let chat = self.chat(&target).filter(|c| c.with.is_some());
                if let Some(label) = chat.map(|c| c.label()) {
                    self.close(&target);
                    self.notify(format!("The conversation with {label} has ended."));
                }
            }
            ServerMsg::Conversation { room, with } => {
                let target = Target(room);
                self.chat_or_insert(&target).with = Some(with.clone());
                // The answer to the user's `open`: show it.
                if self.opening.as_deref().is_some_and(|o| same_name(o, &with)) {
                    self.opening = None;
                    self.open(target);
                }
            }
            ServerMsg::Conversations { conversations } => {
                // One by one before the others: the latest ends up first.
                for c in conversations.into_iter().rev() {
                    let chat = self.chat_or_insert(&Target(c.room));
                    if c.online && chat.members.is_empty() {
                        chat.members = vec![c.with.clone()];
                    }
                    chat.with = Some(c.with);
                }
            }
            ServerMsg::Renamed {
                room: None,
                from,
                to,
                upload_token,
            } => {
                self.me = Some(to.clone());
                // The old token was for the old name.
                self.upload_token = upload_token;
                self.wanted_name = Some(to.clone());
                for chat in &mut self.chats {
                    if chat.members.contains(&from) {
                        let chat = Rc::make_mut(chat);
                        chat.remove_members(std::slice::from_ref(&from));
                        chat.add_members(std::slice::from_ref(&to));
                    }
                }
                self.notify(format!("You are now known as {to}."));
            }
            ServerMsg::Renamed {
                room: Some(room),
                from,
                to,
                ..
            } => {
                let target = Target(room);
                if let Some(chat) = self.chat_mut(&target) {
                    chat.remove_members(std::slice::from_ref(&from));
                    chat.add_members(std::slice::from_ref(&to));
                    self.system(&target, format!("{from} is now known as {to}"));
                }
            }
            ServerMsg::Rooms { rooms } => {
                // Already by name (docs/protocol.md): sorting again would
                // cost the bundle a second copy of the sort code.
                self.directory = rooms.into_iter().map(|r| (r.room, r.members)).collect();
            }
            ServerMsg::Typing { room, user } => {
                if self.is_me(&user) {
                    return;
                }
                let until = now_ms() + TYPING_SHOWN_MS as u64;
                if let Some(chat) = self.chat_mut(&Target(room)) {
                    chat.typing.retain(|(u, _)| *u != user);
                    chat.typing.push((user, until));
                }
            }
            ServerMsg::Error {
                code,
                message,
                client_id,
                room,
            } => self.apply_error(code, message, client_id, room),
            ServerMsg::SearchResults {
                query,
                results,
                next,
            } => {
                if let Some(search) = self.search.as_mut().filter(|s| s.query == query) {
                    let search = Rc::make_mut(search);
                    search.hits.extend(results);
                    search.next = next;
                    search.busy = false;
                }
            }
            // Counted above, with the messages.
            ServerMsg::Read { .. } | ServerMsg::Pong { .. } | ServerMsg::Heartbeat => {}
        }
    }

    fn apply_error(
        &mut self,
        code: ErrorCode,
        message: String,
        client_id: Option<String>,
        room: Option<String>,
    ) {
        // A refused edit, deletion or reaction: say why.
        if client_id
            .as_deref()
            .is_some_and(|id| id.starts_with(EVENT_ID))
        {
            self.notify(match code {
                ErrorCode::NotAuthor => "Only its author can edit or delete a message.".into(),
                ErrorCode::EditWindowPassed => {
                    "That message can no longer be edited: its edit window has passed.".into()
                }
                ErrorCode::UnknownMessage => {
                    "That message is no longer there (deleted, or too old to keep).".into()
                }
                ErrorCode::InvalidEmoji => format!("Not a reaction: {message}"),
                _ => message,
            });
            return;
        }
        // A refused send shows as failed, from the ledger.
        if client_id.is_some() {
            return;
        }
        // A refused search is no longer under way, a refused `open` no
        // longer awaited.
        if let Some(search) = self.search.as_mut().filter(|s| s.busy) {
            Rc::make_mut(search).busy = false;
        }
        self.opening = None;
        match (code, room) {
            // A refused join (the client core's tracker forgets the room).
            (
                ErrorCode::InvalidRoom
                | ErrorCode::TooManyRooms
                | ErrorCode::Forbidden
                | ErrorCode::UnknownUser,
                Some(room),
            ) => {
                self.notify(format!("Could not join {room}: {message}"));
                self.close(&Target(room));
            }
            (ErrorCode::NameTaken, _) => {
                self.notify(format!("That name is taken: {message}"));
            }
            _ => self.notify(message),
        }
    }

    /// `users` without this user.
    fn others(&self, users: &[String]) -> Vec<String> {
        users.iter().filter(|u| !self.is_me(u)).cloned().collect()
    }
}

/// "alice", "alice and bob", "alice, bob and 3 others".
fn join_names(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [a, b, rest @ ..] if rest.len() == 1 => format!("{a}, {b} and {}", rest[0]),
        [a, b, rest @ ..] => format!("{a}, {b} and {} others", rest.len()),
    }
}

/// A change to [`ChatState`].
#[derive(Debug)]
pub enum Action {
    /// `GET /api/session` answered: signed in as `user` (or not), and
    /// whether guests may chat. A remembered guest name connects at once.
    SessionChecked {
        user: Option<String>,
        guests: bool,
    },
    /// Signed in (or registered) as this account.
    SignedIn(String),
    /// Back to the sign-in screen, saying why if it was not the user's doing.
    SignedOut(Option<String>),
    /// The server refused a guest: guests are off.
    GuestsRefused(String),
    /// The user chose a guest name on the first screen.
    SignIn(String),
    /// The server refused the chosen name before welcoming us.
    NameRejected(String),
    /// The connection changed.
    Link(Link),
    /// The connection task's ledger changed (this is the same ledger, with
    /// a new change count).
    Pending(Ledger),
    /// A frame from the server.
    Server(ServerMsg),
    /// Show `target`, creating its chat (a room being joined).
    Open(Target),
    /// The user asked to message this user (`open`): the conversation
    /// the server answers with is shown.
    Opening(String),
    /// Leave a room or close a conversation.
    Close(Target),
    DismissNotice,
    /// Drop `typing` notices whose time is up.
    ExpireTyping,
    /// The tab became visible.
    Visible,
    /// Look again at what is on screen (a `read` held back is due).
    Recheck,
    /// Search for these words (a new search).
    Search(String),
    /// Ask for the next page of the open search.
    SearchMore,
    CloseSearch,
    /// Close the search and show this message of this room.
    ShowFound(String, u64),
    /// Edit this message of the chat on screen (`None`: stop editing).
    Editing(Option<u64>),
    /// Edit this user's last message in the chat on screen, if still
    /// editable.
    EditLast,
    /// Answer this message with the next one (`None`: do not).
    Reply(Option<Quote>),
    /// Say this over the app.
    Notice(String),
}

impl Reducible for ChatState {
    type Action = Action;

    fn reduce(self: Rc<Self>, action: Action) -> Rc<Self> {
        let mut state = Rc::unwrap_or_clone(self);
        match action {
            Action::SessionChecked { user, guests } => {
                state.session_checked = true;
                state.guests = guests;
                if let Some(user) = user {
                    state.account = Some(user.clone());
                    state.wanted_name = Some(user);
                }
                state.link = if state.wanted_name.is_some() && (state.account.is_some() || guests) {
                    Link::Connecting { attempt: 0 }
                } else {
                    Link::Idle
                };
            }
            Action::SignedIn(user) => {
                state.account = Some(user.clone());
                state.wanted_name = Some(user);
                state.name_error = None;
                state.auth_notice = None;
                state.link = Link::Connecting { attempt: 0 };
            }
            Action::SignedOut(why) => {
                state.account = None;
                state.me = None;
                state.wanted_name = None;
                state.name_error = None;
                state.auth_notice = why;
                state.link = Link::Idle;
            }
            Action::GuestsRefused(why) => {
                state.guests = false;
                state.me = None;
                state.auth_notice = Some(why);
                state.link = Link::Idle;
            }
            Action::SignIn(name) => {
                state.wanted_name = Some(name);
                state.name_error = None;
                state.auth_notice = None;
                state.link = Link::Connecting { attempt: 0 };
            }
            Action::NameRejected(reason) => {
                state.me = None;
                state.name_error = Some(reason);
                state.link = Link::Idle;
            }
            Action::Link(link) => state.link = link,
            Action::Pending(pending) => state.pending = pending,
            Action::Server(msg) => state.apply_server(msg),
            Action::Open(target) => {
                state.chat_or_insert(&target);
                state.open(target);
            }
            Action::Opening(user) => state.opening = Some(user),
            Action::Close(target) => state.close(&target),
            Action::DismissNotice => state.notice = None,
            Action::Search(query) => {
                state.search = Some(Rc::new(Search {
                    query,
                    hits: Vec::new(),
                    next: None,
                    busy: true,
                }));
            }
            Action::SearchMore => {
                if let Some(search) = state.search.as_mut() {
                    Rc::make_mut(search).busy = true;
                }
            }
            Action::CloseSearch => state.search = None,
            Action::ShowFound(room, seq) => {
                state.search = None;
                state.found = Some((room.clone(), seq));
                state.open(Target(room));
            }
            Action::Editing(seq) => state.editing = seq,
            Action::EditLast => state.edit_last(),
            Action::Reply(quote) => state.reply = quote,
            Action::Notice(text) => state.notify(text),
            Action::Recheck => state.visible += 1,
            Action::Visible => {
                state.visible += 1;
                state.divide();
            }
            Action::ExpireTyping => {
                let now = now_ms();
                for chat in &mut state.chats {
                    if chat.typing.iter().any(|(_, until)| *until <= now) {
                        Rc::make_mut(chat).typing.retain(|(_, until)| *until > now);
                    }
                }
            }
        }
        Rc::new(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hubbub_protocol::ClientMsg;

    #[test]
    fn join_names_reads_well() {
        let names = |n: &[&str]| n.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_names(&names(&["a"])), "a");
        assert_eq!(join_names(&names(&["a", "b"])), "a and b");
        assert_eq!(join_names(&names(&["a", "b", "c"])), "a, b and c");
        assert_eq!(
            join_names(&names(&["a", "b", "c", "d"])),
            "a, b and 2 others"
        );
    }

    /// A state welcomed as `al`, in `lobby`.
    fn welcomed() -> ChatState {
        welcomed_in(&["lobby"], None)
    }

    /// A state welcomed as `al`, in `rooms`, showing `current`.
    fn welcomed_in(rooms: &[&str], current: Option<&str>) -> ChatState {
        let mut state = ChatState::new(
            Some("al".into()),
            rooms.iter().map(|r| r.to_string()).collect(),
            current.map(|r| Target(r.into())),
        );
        state.apply_server(ServerMsg::Welcome {
            user: "al".into(),
            protocol: 1,
            heartbeat_ms: 1000,
            idle_timeout_ms: 3000,
            server_time: 0,
            limits: Limits::default(),
            upload_token: None,
        });
        state
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    fn system_texts(chat: &Chat) -> Vec<String> {
        chat.entries
            .iter()
            .filter_map(|e| match &**e {
                Entry::System { text, .. } => Some(text.clone()),
                Entry::Presence { joined, left, .. } => Some(presence_text(joined, left)),
                Entry::Message { .. } => None,
            })
            .collect()
    }

    fn history(seqs: &[u64], has_more: bool, before: Option<u64>, resync: bool) -> ServerMsg {
        ServerMsg::History {
            room: "lobby".into(),
            messages: seqs
                .iter()
                .map(|&seq| hubbub_protocol::HistoryMessage {
                    event: None,
                    mentions: Vec::new(),
                    reply_to: None,
                    seq,
                    from: "bob".into(),
                    text: format!("m{seq}"),
                    sent_at: seq * 10,
                    attachments: Vec::new(),
                })
                .collect(),
            has_more,
            before,
            resync,
        }
    }

    fn seqs(chat: &Chat) -> Vec<u64> {
        chat.entries
            .iter()
            .filter_map(|e| match &**e {
                Entry::Message { seq, .. } => *seq,
                Entry::System { .. } | Entry::Presence { .. } => None,
            })
            .collect()
    }

    #[test]
    fn member_lists_sort_ignoring_ascii_case_without_duplicates() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        state.apply_server(ServerMsg::Presence {
            room: "lobby".into(),
            users: names(&["zed", "Bob", "al", "ann", "Bob", "Al-2", "AL_1"]),
        });
        let chat = state.chat(&lobby).unwrap();
        // '-' < '_' < letters once folded: al, al-2, al_1, ann, bob, zed.
        assert_eq!(
            chat.members,
            names(&["al", "Al-2", "AL_1", "ann", "Bob", "zed"])
        );
    }

    proptest::proptest! {
        /// The merge sort puts names in the order of the standard library's
        /// stable sort with the same comparison, ties (names equal once
        /// folded, like "Ann" and "ann") included.
        #[test]
        fn names_sort_as_the_standard_stable_sort_does(
            mut list in proptest::collection::vec("[a-cA-C_-]{0,3}", 0..200)
        ) {
            let mut expected = list.clone();
            expected.sort_by(|a, b| folded(a).cmp(folded(b)));
            sort_names(&mut list);
            proptest::prop_assert_eq!(list, expected);
        }
    }

    #[test]
    fn the_directory_keeps_the_servers_order() {
        let mut state = welcomed();
        let rooms = [("Zoo", 0), ("lobby", 2), ("rust", 1)];
        state.apply_server(ServerMsg::Rooms {
            rooms: rooms
                .iter()
                .map(|&(room, members)| hubbub_protocol::RoomInfo {
                    room: room.into(),
                    members,
                })
                .collect(),
        });
        let directory: Vec<(&str, usize)> = state
            .directory
            .iter()
            .map(|(room, members)| (room.as_str(), *members))
            .collect();
        assert_eq!(directory, rooms);
    }

    #[test]
    fn presence_notices_are_set_operations() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        state.apply_server(ServerMsg::Presence {
            room: "lobby".into(),
            users: names(&["zed", "al"]),
        });
        state.apply_server(ServerMsg::Joined {
            room: "lobby".into(),
            users: names(&["al", "bob", "Carol", "zed"]),
        });
        let chat = state.chat(&lobby).unwrap();
        assert_eq!(chat.members, names(&["al", "bob", "Carol", "zed"]));
        state.apply_server(ServerMsg::Left {
            room: "lobby".into(),
            users: names(&["bob", "nobody"]),
        });
        state.apply_server(ServerMsg::Renamed {
            room: Some("lobby".into()),
            from: "zed".into(),
            to: "zoe".into(),
            upload_token: None,
        });
        let chat = state.chat(&lobby).unwrap();
        assert_eq!(chat.members, names(&["al", "Carol", "zoe"]));
        // bob came and went at once: not news.
        assert_eq!(
            system_texts(chat),
            names(&["Carol joined", "zed is now known as zoe"])
        );
    }

    #[test]
    fn presence_notices_collapse_and_blips_vanish() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        let joined = |user: &str| ServerMsg::Joined {
            room: "lobby".into(),
            users: names(&[user]),
        };
        let left = |user: &str| ServerMsg::Left {
            room: "lobby".into(),
            users: names(&[user]),
        };
        // Twenty people arriving one by one make one line.
        for i in 0..20 {
            state.apply_server(joined(&format!("u{i:02}")));
        }
        assert_eq!(
            system_texts(state.chat(&lobby).unwrap()),
            names(&["u00, u01 and 18 others joined"])
        );
        // A reload: left, then back. Nothing new to say.
        state.apply_server(left("u05"));
        state.apply_server(joined("u05"));
        assert_eq!(
            system_texts(state.chat(&lobby).unwrap()),
            names(&["u00, u01 and 18 others joined"])
        );
        // A message ends the run; what follows starts a new line.
        state.apply_server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 1,
            from: "u01".into(),
            text: "hi".into(),
            sent_at: now_ms(),
            attachments: Vec::new(),
        });
        state.apply_server(left("u02"));
        state.apply_server(left("u03"));
        state.apply_server(joined("zed"));
        assert_eq!(
            system_texts(state.chat(&lobby).unwrap()),
            names(&[
                "u00, u01 and 18 others joined",
                "zed joined · u02 and u03 left"
            ])
        );
        // Our own comings and goings are never announced.
        state.apply_server(left("al"));
        state.apply_server(joined("al"));
        assert_eq!(system_texts(state.chat(&lobby).unwrap()).len(), 2);
    }

    #[test]
    fn own_rename_and_refused_sends() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        state.apply_server(ServerMsg::Presence {
            room: "lobby".into(),
            users: names(&["al", "bob"]),
        });
        state.apply_server(ServerMsg::Renamed {
            room: None,
            from: "al".into(),
            to: "alice".into(),
            upload_token: None,
        });
        assert_eq!(state.me.as_deref(), Some("alice"));
        assert_eq!(
            state.chat(&lobby).unwrap().members,
            names(&["alice", "bob"])
        );

        // A refused send is the ledger's business: no notice over the app.
        state.notice = None;
        state.apply_server(ServerMsg::Error {
            code: ErrorCode::TextTooLong,
            message: "too long".into(),
            client_id: Some("c-9".into()),
            room: Some("lobby".into()),
        });
        assert!(state.notice.is_none());

        state.apply_server(ServerMsg::Error {
            code: ErrorCode::InvalidRoom,
            message: "bad".into(),
            client_id: None,
            room: Some("lobby".into()),
        });
        assert!(state.chat(&lobby).is_none());
        assert!(state.current.is_none());
        assert!(state.notice.is_some());
    }

    #[test]
    fn history_fills_resumes_pages_and_resyncs() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        state.apply_server(history(&[4, 5, 6], true, None, false));
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![4, 5, 6]);
        assert!(state.chat(&lobby).unwrap().has_more);
        // The catch-up after a resume keeps "there is more" as it was.
        state.apply_server(history(&[6, 7], false, None, false));
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![4, 5, 6, 7]);
        assert!(state.chat(&lobby).unwrap().has_more);
        assert_eq!(state.chat(&lobby).unwrap().first_seq(), Some(4));
        // An older page goes in front.
        state.apply_server(history(&[1, 2, 3], false, Some(4), false));
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![1, 2, 3, 4, 5, 6, 7]);
        assert!(!state.chat(&lobby).unwrap().has_more);
        // Too far behind: start over from what the server sends.
        state.apply_server(history(&[20, 21], true, None, true));
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![20, 21]);
        assert!(state.chat(&lobby).unwrap().has_more);
    }

    #[test]
    fn messages_are_deduplicated_and_pending_is_shown_per_chat() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        let mut ledger = Pending::new("p");
        ledger.send("lobby", "hi").unwrap();
        // The conversation's message carries a file; what the ledger shows
        // has it.
        ledger
            .send_files("@al+bob", "psst", names(&["f1"]))
            .unwrap();
        state = reduce(
            state,
            Action::Pending(Ledger::new(Rc::new(RefCell::new(ledger)), 1)),
        );
        assert_eq!(state.pending_for(&lobby)[0].text(), "hi");
        assert!(matches!(&state.pending_for(&lobby)[0].request,
            ClientMsg::Send { attachments, .. } if attachments.is_empty()));
        let psst = &state.pending_for(&Target("@al+bob".into()))[0];
        assert_eq!(psst.text(), "psst");
        assert!(matches!(&psst.request,
            ClientMsg::Send { attachments, .. } if *attachments == names(&["f1"])));
        let msg = ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 1,
            from: "al".into(),
            text: "hi".into(),
            sent_at: 10,
            attachments: Vec::new(),
        };
        state.apply_server(msg.clone());
        state.apply_server(msg);
        let chat = state.chat(&lobby).unwrap();
        assert_eq!(chat.entries.len(), 1);
        // A restarted server may reuse a seq for a different message.
        state.apply_server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 1,
            from: "bob".into(),
            text: "new".into(),
            sent_at: 20,
            attachments: Vec::new(),
        });
        assert_eq!(state.chat(&lobby).unwrap().entries.len(), 2);
    }

    fn reduce(state: ChatState, action: Action) -> ChatState {
        Rc::unwrap_or_clone(Rc::new(state).reduce(action))
    }

    #[test]
    fn session_check_decides_the_first_screen() {
        // A remembered guest name connects when guests are allowed...
        let guest = ChatState::new(Some("al".into()), vec![], None);
        assert!(!guest.session_checked);
        let state = reduce(
            guest.clone(),
            Action::SessionChecked {
                user: None,
                guests: true,
            },
        );
        assert_eq!(state.link, Link::Connecting { attempt: 0 });
        // ...and shows the sign-in screen when they are not.
        let state = reduce(
            guest,
            Action::SessionChecked {
                user: None,
                guests: false,
            },
        );
        assert_eq!(state.link, Link::Idle);
        assert!(!state.guests);
        // A signed-in browser connects as its account.
        let state = reduce(
            ChatState::new(None, vec![], None),
            Action::SessionChecked {
                user: Some("alice".into()),
                guests: false,
            },
        );
        assert_eq!(state.account.as_deref(), Some("alice"));
        assert_eq!(state.display_name(), Some("alice"));
        assert_eq!(state.link, Link::Connecting { attempt: 0 });
    }

    #[test]
    fn signing_out_forgets_the_account_and_says_why() {
        let state = reduce(welcomed(), Action::SignedIn("alice".into()));
        assert_eq!(state.account.as_deref(), Some("alice"));
        let state = reduce(
            state,
            Action::SignedOut(Some("Your session expired.".into())),
        );
        assert_eq!(state.link, Link::Idle);
        assert!(state.account.is_none() && state.me.is_none());
        assert_eq!(state.auth_notice.as_deref(), Some("Your session expired."));
        // Choosing a guest name clears the notice.
        let state = reduce(state, Action::SignIn("bo".into()));
        assert!(state.auth_notice.is_none());
        assert_eq!(state.link, Link::Connecting { attempt: 0 });
    }

    #[test]
    fn a_rooms_unread_count_and_divider_follow_the_read_marker() {
        let mut state = welcomed_in(&["lobby", "kitchen"], Some("kitchen"));
        let lobby = Target("lobby".into());
        let read = |seq| ServerMsg::Read {
            room: "lobby".into(),
            seq,
        };
        state.apply_server(history(&[1, 2, 3], false, None, false));
        state.apply_server(read(1));
        assert_eq!(state.chat(&lobby).unwrap().unread, 2);
        // Read in another tab: the count follows.
        state.apply_server(read(2));
        assert_eq!(state.chat(&lobby).unwrap().unread, 1);
        assert_eq!(state.chat(&lobby).unwrap().divider, None);
        // Coming to the room puts the divider at the marker; it stays
        // there once the room is read.
        state = reduce(state, Action::Open(lobby.clone()));
        assert_eq!(state.chat(&lobby).unwrap().divider, Some(2));
        assert_eq!(state.chat(&lobby).unwrap().unread, 1, "opened is not read");
        state.apply_server(read(3));
        assert_eq!(state.chat(&lobby).unwrap().unread, 0);
        assert_eq!(state.chat(&lobby).unwrap().divider, Some(2));
        state = reduce(state, Action::Open(Target("kitchen".into())));
        assert_eq!(state.chat(&lobby).unwrap().divider, Some(2));
        state = reduce(state, Action::Open(lobby.clone()));
        assert_eq!(state.chat(&lobby).unwrap().divider, None, "nothing new");
    }

    #[test]
    fn a_search_gathers_its_pages_and_a_result_opens_its_room_at_the_message() {
        let mut state = welcomed();
        let hit = |seq| SearchHit {
            room: "kitchen".into(),
            seq,
            from: "bob".into(),
            text: "lunch?".into(),
            sent_at: seq,
            attachments: Vec::new(),
        };
        state = reduce(state, Action::Search("lunch".into()));
        assert!(state.search.as_ref().unwrap().busy);
        state.apply_server(ServerMsg::SearchResults {
            query: "lunch".into(),
            results: vec![hit(9), hit(8)],
            next: Some("8.8.kitchen".into()),
        });
        // An answer to an older search is not this one's.
        state.apply_server(ServerMsg::SearchResults {
            query: "dinner".into(),
            results: vec![hit(1)],
            next: None,
        });
        state = reduce(state, Action::SearchMore);
        state.apply_server(ServerMsg::SearchResults {
            query: "lunch".into(),
            results: vec![hit(3)],
            next: None,
        });
        let search = state.search.clone().unwrap();
        let seqs: Vec<u64> = search.hits.iter().map(|h| h.seq).collect();
        assert_eq!(
            (seqs, search.next.clone(), search.busy),
            (vec![9, 8, 3], None, false)
        );
        // A refused search is not left "searching".
        state = reduce(state, Action::Search("".into()));
        state.apply_server(ServerMsg::error(ErrorCode::BadField, "empty"));
        assert!(!state.search.as_ref().unwrap().busy);

        state = reduce(state, Action::ShowFound("kitchen".into(), 8));
        assert!(state.search.is_none());
        assert_eq!(state.current, Some(Target("kitchen".into())));
        assert_eq!(state.found, Some(("kitchen".into(), 8)));
        // Going elsewhere forgets it.
        state = reduce(state, Action::Open(Target("lobby".into())));
        assert_eq!(state.found, None);
    }

    fn conversation(room: &str, with: &str, online: bool) -> hubbub_protocol::ConversationInfo {
        hubbub_protocol::ConversationInfo {
            room: room.into(),
            with: with.into(),
            online,
            last_seq: 1,
        }
    }

    /// The ids of the chats, in the order the room list shows them.
    fn order(state: &ChatState) -> Vec<&str> {
        state.chats.iter().map(|c| c.target.0.as_str()).collect()
    }

    #[test]
    fn conversations_are_listed_counted_shown_when_asked_and_ended() {
        let mut state = welcomed();
        let bob = Target("@al+bob".into());
        state.apply_server(ServerMsg::Conversations {
            conversations: vec![
                conversation("@al+bob", "Bob", true),
                conversation("@al+cy", "cy", false),
            ],
        });
        // After the rooms, the latest first; named as the server spells them.
        assert_eq!(order(&state), ["lobby", "@al+bob", "@al+cy"]);
        let chat = state.chat(&bob).unwrap();
        assert_eq!((chat.label(), chat.peer_online(&[])), ("@Bob".into(), true));
        assert!(!state
            .chat(&Target("@al+cy".into()))
            .unwrap()
            .peer_online(&state.chats));
        // Then the room's own presence says who is there; its notices make
        // no lines in the timeline (the dot says it).
        state.apply_server(ServerMsg::Presence {
            room: "@al+bob".into(),
            users: names(&["al"]),
        });
        assert!(!state.chat(&bob).unwrap().peer_online(&state.chats));
        state.apply_server(ServerMsg::Joined {
            room: "@al+bob".into(),
            users: names(&["Bob"]),
        });
        let chat = state.chat(&bob).unwrap();
        assert!(chat.peer_online(&state.chats));
        assert!(system_texts(chat).is_empty());
        // cy has not joined her conversation, but is in a room we share:
        // online all the same.
        let cy = state.chat(&Target("@al+cy".into())).unwrap().clone();
        state.apply_server(ServerMsg::Joined {
            room: "lobby".into(),
            users: names(&["cy"]),
        });
        assert!(cy.peer_online(&state.chats));
        // Unread like a room's: past the marker, someone else's.
        state.apply_server(ServerMsg::Read {
            room: "@al+bob".into(),
            seq: 0,
        });
        let mut hi = said_in_lobby(1, "Bob", "hi", None);
        if let ServerMsg::Message { room, .. } = &mut hi {
            *room = "@al+bob".into();
        }
        state.apply_server(hi);
        assert_eq!(state.chat(&bob).unwrap().unread, 1);
        // Someone new wrote: listed first, not shown.
        state.apply_server(ServerMsg::Conversation {
            room: "@al+dee".into(),
            with: "Dee".into(),
        });
        assert_eq!(order(&state), ["lobby", "@al+dee", "@al+bob", "@al+cy"]);
        assert_eq!(state.current, Some(Target("lobby".into())));
        // The user asked to message eve: her conversation is shown.
        state = reduce(state, Action::Opening("EVE".into()));
        state.apply_server(ServerMsg::Conversation {
            room: "@al+eve".into(),
            with: "eve".into(),
        });
        assert_eq!(state.current, Some(Target("@al+eve".into())));
        assert_eq!(state.opening, None);
        // A guest's name went: its conversation ends, with a word.
        state.apply_server(ServerMsg::LeaveOk {
            room: "@al+cy".into(),
        });
        assert!(state.chat(&Target("@al+cy".into())).is_none());
        assert!(state.notice.as_ref().unwrap().text.contains("@cy"));
        // The user's own closing says nothing more when it is confirmed.
        state = reduce(state, Action::DismissNotice);
        state = reduce(state, Action::Close(bob.clone()));
        state.apply_server(ServerMsg::LeaveOk {
            room: "@al+bob".into(),
        });
        assert!(state.chat(&bob).is_none());
        assert_eq!(state.notice, None);
        // A room left and joined again at once: its late `leave_ok` is
        // not an ending.
        state = reduce(state, Action::Open(Target("lobby".into())));
        state.apply_server(ServerMsg::LeaveOk {
            room: "lobby".into(),
        });
        assert!(state.chat(&Target("lobby".into())).is_some());
        assert_eq!(state.notice, None);
        // Before its frame names the other person, the room's name does.
        state.apply_server(ServerMsg::Presence {
            room: "@al+fay".into(),
            users: names(&["al"]),
        });
        assert_eq!(
            state.chat(&Target("@al+fay".into())).unwrap().label(),
            "@fay"
        );
    }

    fn photo(id: &str) -> Attachment {
        Attachment {
            id: id.into(),
            name: format!("{id}.png"),
            size: 1234,
            mime: "image/png".into(),
            width: Some(640),
            height: Some(480),
        }
    }

    #[test]
    fn attachments_stay_with_their_message_everywhere() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        let files = |state: &ChatState, target: &Target| -> Vec<Vec<String>> {
            state
                .chat(target)
                .unwrap()
                .entries
                .iter()
                .filter_map(|e| match &**e {
                    Entry::Message { files, .. } => {
                        Some(files.iter().map(|f| f.id.clone()).collect())
                    }
                    _ => None,
                })
                .collect()
        };
        let mut old = match history(&[1], false, None, false) {
            ServerMsg::History { messages, .. } => messages,
            _ => unreachable!(),
        };
        old[0].attachments = vec![photo("h1")];
        state.apply_server(ServerMsg::History {
            room: "lobby".into(),
            messages: old,
            has_more: false,
            before: None,
            resync: false,
        });
        // A message of files only: no caption.
        state.apply_server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq: 2,
            from: "bob".into(),
            text: String::new(),
            sent_at: 20,
            attachments: vec![photo("m1"), photo("m2")],
        });
        assert_eq!(
            files(&state, &lobby),
            vec![names(&["h1"]), names(&["m1", "m2"])]
        );
        // A conversation's, the same.
        state.apply_server(ServerMsg::Presence {
            room: "@al+bob".into(),
            users: names(&["al"]),
        });
        state.apply_server(ServerMsg::Message {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            room: "@al+bob".into(),
            seq: 1,
            from: "bob".into(),
            text: "look".into(),
            sent_at: 30,
            attachments: vec![photo("d1")],
        });
        assert_eq!(
            files(&state, &Target("@al+bob".into())),
            vec![names(&["d1"])]
        );
    }

    #[test]
    fn each_welcome_brings_the_current_upload_token() {
        let mut state = welcomed();
        assert_eq!(state.upload_token, None);
        let welcome = |token: Option<&str>| ServerMsg::Welcome {
            user: "al".into(),
            protocol: 1,
            heartbeat_ms: 1000,
            idle_timeout_ms: 3000,
            server_time: 0,
            limits: Limits {
                max_files_per_message: 3,
                ..Limits::default()
            },
            upload_token: token.map(str::to_string),
        };
        state.apply_server(welcome(Some("g1.a")));
        assert_eq!(state.upload_token.as_deref(), Some("g1.a"));
        assert_eq!(state.limits.max_files_per_message, 3);
        state.apply_server(welcome(Some("g1.b")));
        assert_eq!(state.upload_token.as_deref(), Some("g1.b"));
        // A rename brings the token of the new name.
        state.apply_server(ServerMsg::Renamed {
            room: None,
            from: "al".into(),
            to: "alf".into(),
            upload_token: Some("g1.c".into()),
        });
        assert_eq!(state.upload_token.as_deref(), Some("g1.c"));
        // Signed in now: the cookie authorizes, no token.
        state.apply_server(welcome(None));
        assert_eq!(state.upload_token, None);
    }

    /// A room message (`event` none) or event of `lobby`.
    fn said_in_lobby(seq: u64, from: &str, text: &str, event: Option<Event>) -> ServerMsg {
        ServerMsg::Message {
            event,
            mentions: Vec::new(),
            reply_to: None,
            room: "lobby".into(),
            seq,
            from: from.into(),
            text: text.into(),
            sent_at: seq * 10,
            attachments: Vec::new(),
        }
    }

    fn react(target: u64, emoji: &str, on: bool) -> Option<Event> {
        Some(Event::React {
            target,
            emoji: emoji.into(),
            on,
        })
    }

    /// The room's messages as (seq, text, edited, deleted, reactions).
    #[allow(clippy::type_complexity)]
    fn shown(state: &ChatState) -> Vec<(u64, String, bool, bool, Vec<(String, Vec<String>)>)> {
        state
            .chat(&Target("lobby".into()))
            .unwrap()
            .entries
            .iter()
            .filter_map(|e| match &**e {
                Entry::Message {
                    seq,
                    text,
                    edited,
                    deleted,
                    reactions,
                    ..
                } => Some((
                    seq.unwrap(),
                    text.clone(),
                    *edited,
                    *deleted,
                    reactions.clone(),
                )),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn edits_deletions_and_reactions_fold_into_their_target() {
        let mut state = welcomed();
        let edit = |target| Some(Event::Edit { target });
        state.apply_server(said_in_lobby(1, "al", "helo", None));
        state.apply_server(said_in_lobby(2, "bob", "hi", None));
        state.apply_server(said_in_lobby(3, "al", "hello", edit(1)));
        state.apply_server(said_in_lobby(4, "bob", "", react(1, "👍", true)));
        state.apply_server(said_in_lobby(5, "al", "", react(1, "👍", true)));
        state.apply_server(said_in_lobby(6, "al", "", react(1, "🎉", true)));
        state.apply_server(said_in_lobby(7, "bob", "", react(1, "👍", false)));
        state.apply_server(said_in_lobby(8, "al", "", react(1, "🎉", false)));
        let reactions = vec![("👍".to_string(), names(&["al"]))];
        assert_eq!(
            shown(&state),
            vec![
                (1, "hello".into(), true, false, reactions.clone()),
                (2, "hi".into(), false, false, vec![]),
            ],
            "events are never messages of their own"
        );
        // Heard again (a replay): nothing changes, even an older edit
        // after a newer one.
        state.apply_server(said_in_lobby(9, "al", "hello!", edit(1)));
        state.apply_server(said_in_lobby(3, "al", "hello", edit(1)));
        state.apply_server(said_in_lobby(4, "bob", "", react(1, "👍", true)));
        assert_eq!(
            shown(&state)[0],
            (1, "hello!".into(), true, false, reactions)
        );
        // A deletion leaves a tombstone that nothing changes any more.
        state.apply_server(said_in_lobby(
            10,
            "bob",
            "",
            Some(Event::Delete { target: 2 }),
        ));
        state.apply_server(said_in_lobby(11, "al", "", react(2, "😮", true)));
        state.apply_server(said_in_lobby(12, "bob", "back", edit(2)));
        assert_eq!(shown(&state)[1], (2, String::new(), false, true, vec![]));
        // Events do not count as unread.
        assert_eq!(state.chat(&Target("lobby".into())).unwrap().unread, 0);
    }

    #[test]
    fn events_for_messages_not_loaded_wait_for_their_page_of_history() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        let page = |seqs: &[(u64, Option<Event>)], before: Option<u64>| ServerMsg::History {
            room: "lobby".into(),
            messages: seqs
                .iter()
                .map(|(seq, event)| hubbub_protocol::HistoryMessage {
                    event: event.clone(),
                    mentions: Vec::new(),
                    reply_to: None,
                    seq: *seq,
                    from: "bob".into(),
                    // As stored: the latest text of an edited message.
                    text: if *seq == 1 {
                        "v3".into()
                    } else {
                        format!("m{seq}")
                    },
                    sent_at: seq * 10,
                    attachments: Vec::new(),
                })
                .collect(),
            has_more: before != Some(4),
            before,
            resync: false,
        };
        // The join's page: 6 and 7 are events for 1, which is older.
        state.apply_server(page(
            &[
                (5, None),
                (6, Some(Event::Edit { target: 1 })),
                (7, react(1, "👍", true)),
            ],
            None,
        ));
        state.apply_server(said_in_lobby(
            8,
            "bob",
            "v3",
            Some(Event::Edit { target: 1 }),
        ));
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![5]);
        // An older page of events only: older history is asked before it.
        state.apply_server(page(&[(4, react(1, "❤️", true))], Some(5)));
        assert_eq!(state.chat(&lobby).unwrap().first_seq(), Some(4));
        // The page with the target: every event held is folded, in order.
        state.apply_server(page(
            &[(1, None), (2, Some(Event::Edit { target: 1 })), (3, None)],
            Some(4),
        ));
        let first = shown(&state)[0].clone();
        assert_eq!((first.0, first.1.as_str(), first.2), (1, "v3", true));
        assert_eq!(
            first.4,
            vec![
                ("❤️".to_string(), names(&["bob"])),
                ("👍".to_string(), names(&["bob"]))
            ]
        );
        assert_eq!(seqs(state.chat(&lobby).unwrap()), vec![1, 3, 5]);
    }

    #[test]
    fn replies_mentions_and_editing_the_last_message() {
        let mut state = welcomed();
        let lobby = Target("lobby".into());
        state.apply_server(ServerMsg::Read {
            room: "lobby".into(),
            seq: 0,
        });
        state.apply_server(said_in_lobby(1, "al", "are we on?", None));
        state.apply_server(ServerMsg::Message {
            event: None,
            mentions: names(&["AL"]),
            reply_to: Some(Quote::of(1, "al", "are we on?")),
            room: "lobby".into(),
            seq: 2,
            from: "bob".into(),
            text: "@AL yes".into(),
            sent_at: 20,
            attachments: Vec::new(),
        });
        let chat = state.chat(&lobby).unwrap();
        assert_eq!((chat.unread, chat.mentions), (1, 1));
        assert!(matches!(chat.message(2),
            Some(Entry::Message { reply_to: Some(q), mentions, .. })
                if q.seq == 1 && q.from == "al" && mentions == &names(&["AL"])));
        // The edit window is the server's: an hour from sent_at (ms 10),
        // and the server's clock is this one (the test's welcome said 0).
        state.clock = 0;
        state = reduce(state, Action::EditLast);
        assert_eq!(state.editing, None, "1970 is long past");
        state.apply_server(said_in_lobby(3, "al", "x", None));
        let now = now_ms();
        let mut fresh = said_in_lobby(4, "al", "fresh", None);
        if let ServerMsg::Message { sent_at, .. } = &mut fresh {
            *sent_at = now;
        }
        state.apply_server(fresh);
        state = reduce(state, Action::EditLast);
        assert_eq!(state.editing, Some(4));
        state = reduce(state, Action::Reply(Some(Quote::of(2, "bob", "@AL yes"))));
        // Another chat: neither editing nor replying follows.
        state = reduce(state, Action::Open(Target("@al+bob".into())));
        assert_eq!((state.editing, state.reply.clone()), (None, None));
        // A refused edit says why, in words.
        state.apply_server(ServerMsg::Error {
            code: ErrorCode::EditWindowPassed,
            message: "too late".into(),
            client_id: Some(format!("{EVENT_ID}1")),
            room: Some("lobby".into()),
        });
        assert!(state.notice.as_ref().unwrap().text.contains("edit window"));
    }
}
