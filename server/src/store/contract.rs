//! The behaviour every [`Store`] must have, as functions that take a fresh
//! store and panic on the first difference. Each implementation's tests call
//! them: the memory and SQLite stores in this crate's unit tests, the
//! PostgreSQL store in `server/tests/postgres.rs` (it needs a server).

use std::time::Duration;

use hubbub_protocol::{Attachment, Event, Quote};

use super::{
    search_words, Accounts, ConversationRecord, FileReaders, FileRecord, Files, Messages, Party,
    Retention, SearchCursor, SearchQuery, Store, StoredMessage, UserRecord,
};
use hubbub_protocol::names;

fn msg(room: &str, seq: u64, sent_at: u64) -> StoredMessage {
    StoredMessage {
        room: room.into(),
        seq,
        from: "alice".into(),
        text: format!("m{seq}"),
        sent_at,
        client_id: Some(format!("c-{seq}")),
        ..StoredMessage::default()
    }
}

/// The message behaviour every store must have, on an empty store.
pub fn messages(store: &dyn Messages) {
    assert_eq!(store.load_room("lobby", 10, 10).unwrap().last_seq, 0);
    let batch: Vec<_> = (1..=5).map(|s| msg("lobby", s, 1000 * s)).collect();
    store.append(&batch).unwrap();
    store.append(&[msg("kitchen", 1, 1)]).unwrap();

    let record = store.load_room("lobby", 3, 4).unwrap();
    assert_eq!(record.last_seq, 5);
    assert_eq!(
        record.recent.iter().map(|m| m.seq).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_eq!(record.recent[2], batch[4]);
    assert_eq!(
        record
            .client_ids
            .iter()
            .map(|(_, id, seq)| (id.as_str(), *seq))
            .collect::<Vec<_>>(),
        [("c-2", 2), ("c-3", 3), ("c-4", 4), ("c-5", 5)]
    );

    let page = store.history("lobby", Some(4), 2).unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [2, 3]);
    let page = store.history("lobby", None, 100).unwrap();
    assert_eq!(page.len(), 5);
    assert!(store.history("nowhere", None, 10).unwrap().is_empty());
    let page = store.after("lobby", 2, 2).unwrap();
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [3, 4]);
    assert_eq!(page[0], batch[2]);
    assert_eq!(store.after("lobby", 4, 10).unwrap().len(), 1);
    assert!(store.after("lobby", 5, 10).unwrap().is_empty());
    assert!(store.after("nowhere", 0, 10).unwrap().is_empty());
    // Many rooms' spans at once, each room's messages in order.
    let spans = [
        ("lobby".to_string(), 1, 3),
        ("kitchen".to_string(), 0, 9),
        ("nowhere".to_string(), 0, 9),
    ];
    let mut got: Vec<(String, u64)> = store
        .between(&spans)
        .unwrap()
        .into_iter()
        .map(|m| (m.room, m.seq))
        .collect();
    got.sort();
    let lobby = |seq| ("lobby".to_string(), seq);
    assert_eq!(got, [("kitchen".to_string(), 1), lobby(2), lobby(3)]);
    // lobby's last message was sent at 5000, kitchen's at 1.
    assert_eq!(store.active_rooms(0, 10).unwrap(), ["lobby", "kitchen"]);
    assert_eq!(store.active_rooms(0, 1).unwrap(), ["lobby"]);
    assert_eq!(store.active_rooms(2, 10).unwrap(), ["lobby"]);
    assert!(store.active_rooms(5001, 10).unwrap().is_empty());

    // Keep the last 2 of each room, then nothing older than 4.5 s.
    let dropped = store
        .prune(
            Retention {
                max_count: Some(2),
                max_age: None,
            },
            10_000,
        )
        .unwrap();
    assert_eq!(dropped, 3);
    assert_eq!(
        store
            .history("lobby", None, 10)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        [4, 5]
    );
    store
        .prune(
            Retention {
                max_count: None,
                max_age: Some(Duration::from_millis(5_500)),
            },
            10_000,
        )
        .unwrap();
    assert_eq!(
        store
            .history("lobby", None, 10)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect::<Vec<_>>(),
        [5]
    );
    // The sequence survives pruning.
    assert_eq!(store.load_room("lobby", 10, 10).unwrap().last_seq, 5);
}

/// `(room, seq)` of what `store` finds for `query` (in `room`, after
/// `before`, at most `limit`).
fn found(
    store: &dyn Messages,
    query: &str,
    room: Option<&str>,
    before: Option<SearchCursor>,
    limit: usize,
) -> Vec<(String, u64)> {
    found_by(store, "alice", query, room, before, limit)
}

/// [`found`] by the user whose name key is `reader`.
fn found_by(
    store: &dyn Messages,
    reader: &str,
    query: &str,
    room: Option<&str>,
    before: Option<SearchCursor>,
    limit: usize,
) -> Vec<(String, u64)> {
    let query = SearchQuery {
        words: search_words(query),
        room: room.map(String::from),
        reader: reader.into(),
        before,
        limit,
    };
    store
        .search(&query)
        .unwrap()
        .into_iter()
        .map(|m| (m.room, m.seq))
        .collect()
}

/// The search behaviour every store must have, on an empty store. Leaves
/// messages with "lunch" stored.
pub fn search(store: &dyn Messages) {
    let said = |room: &str, seq, sent_at, text: &str| StoredMessage {
        text: text.into(),
        ..msg(room, seq, sent_at)
    };
    store
        .append(&[
            said("lobby", 1, 1000, "Lunch at noon?"),
            said("lobby", 2, 2000, "lunch: tacos or pizza"),
            said("kitchen", 1, 2000, "LUNCH is ready"),
            said("lobby", 3, 3000, "launch the rocket"),
            said("lobby", 4, 4000, "we had lunches"),
            said("kitchen", 2, 5000, "tacos for lunch, near the door"),
            said("lobby", 5, 6000, r#"say "quoted" * OR NEAR(x) -minus"#),
        ])
        .unwrap();
    let at = |room: &str, seq| (room.to_string(), seq);

    // Whole words, ignoring case; newest first, then by room and seq
    // (descending) at the same time.
    let lunch = [
        at("kitchen", 2),
        at("lobby", 2),
        at("kitchen", 1),
        at("lobby", 1),
    ];
    assert_eq!(found(store, "lunch", None, None, 10), lunch);
    assert_eq!(found(store, "LUNCH", None, None, 10), lunch);
    // Every word is needed.
    assert_eq!(
        found(store, "Tacos lunch", None, None, 10),
        [at("kitchen", 2), at("lobby", 2)]
    );
    assert!(found(store, "lunch rocket", None, None, 10).is_empty());
    assert!(
        found(store, "lunc", None, None, 10).is_empty(),
        "whole words"
    );
    // Only in one room.
    assert_eq!(
        found(store, "lunch", Some("kitchen"), None, 10),
        [at("kitchen", 2), at("kitchen", 1)]
    );
    assert!(found(store, "lunch", Some("nowhere"), None, 10).is_empty());

    // Page by page, one at a time: the same, no gap, no repeat.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let query = SearchQuery {
            words: search_words("lunch"),
            room: None,
            reader: "alice".into(),
            before: before.clone(),
            limit: 1,
        };
        let page = store.search(&query).unwrap();
        let Some(last) = page.last() else { break };
        before = Some(SearchCursor::at(last));
        paged.extend(page.iter().map(|m| (m.room.clone(), m.seq)));
        assert!(paged.len() <= lunch.len(), "paging goes on: {paged:?}");
    }
    assert_eq!(paged, lunch);
    // Many at one instant in two rooms, in pages of 5.
    let burst: Vec<_> = (1..=12u64)
        .map(|i| {
            said(
                if i % 2 == 0 { "a" } else { "b" },
                i.div_ceil(2),
                7000,
                "ping",
            )
        })
        .collect();
    store.append(&burst).unwrap();
    let mut paged = Vec::new();
    let mut before = None;
    for _ in 0..4 {
        let page = found(store, "ping", None, before.clone(), 5);
        if let Some((room, seq)) = page.last() {
            before = Some(SearchCursor {
                sent_at: 7000,
                room: room.clone(),
                seq: *seq,
            });
        }
        paged.extend(page);
    }
    let mut expected: Vec<_> = burst.iter().map(|m| (m.room.clone(), m.seq)).collect();
    expected.sort_by(|x, y| y.cmp(x));
    assert_eq!(paged, expected);

    // What looks like FTS5 or tsquery syntax is only words.
    let quoted = [at("lobby", 5)];
    assert_eq!(
        found(store, r#""quoted" NEAR( -minus*"#, None, None, 10),
        quoted
    );
    assert_eq!(found(store, r#"quoted" x)"#, None, None, 10), quoted);
    assert_eq!(
        found(store, "OR", None, None, 10),
        [at("lobby", 5), at("lobby", 2)]
    );
    assert_eq!(found(store, "* - NEAR x", None, None, 10), quoted);

    // A message retention dropped is not found.
    store
        .prune(
            Retention {
                max_count: None,
                max_age: Some(Duration::from_millis(8_500)),
            },
            10_000,
        )
        .unwrap();
    assert_eq!(found(store, "lunch", None, None, 10), &lunch[..3]);
    store
        .prune(
            Retention {
                max_count: Some(4),
                max_age: None,
            },
            10_000,
        )
        .unwrap();
    // lobby keeps 2..=5: lobby 1 is gone already; kitchen keeps both.
    assert_eq!(found(store, "lunch", None, None, 10), &lunch[..3]);
    let a: Vec<_> = found(store, "ping", Some("a"), None, 10);
    assert_eq!(a, [at("a", 6), at("a", 5), at("a", 4), at("a", 3)]);
}

/// The account behaviour every store must have, on an empty store.
pub fn accounts(store: &dyn Accounts) {
    let alice = UserRecord {
        name: "Alice".into(),
        password_hash: "$argon2id$fake".into(),
        created_at: 1,
    };
    assert!(store.create_user(&alice).unwrap());
    let mut again = alice.clone();
    again.name = "ALICE".into();
    assert!(
        !store.create_user(&again).unwrap(),
        "names are unique ignoring case"
    );
    assert_eq!(store.user("alice").unwrap(), Some(alice));
    assert_eq!(store.user("bob").unwrap(), None);

    let now = crate::timers::now_ms();
    store.create_session("h1", "alice", now + 5_000).unwrap();
    let session = store.session("h1", now + 4_999).unwrap().unwrap();
    assert_eq!(
        (session.name.as_str(), session.expires_at),
        ("Alice", now + 5_000)
    );
    assert_eq!(store.session("h1", now + 5_000).unwrap(), None, "expired");
    assert_eq!(store.session("nope", now).unwrap(), None);
    store.delete_session("h1").unwrap();
    assert_eq!(store.session("h1", 0).unwrap(), None);
    store.delete_session("h1").unwrap();

    // Read markers: per account (ignoring case) and room, never back.
    assert_eq!(store.read_marker("alice", "lobby").unwrap(), None);
    assert_eq!(store.mark_read("alice", "lobby", 7).unwrap(), 7);
    assert_eq!(
        store.mark_read("ALICE", "lobby", 3).unwrap(),
        7,
        "never back"
    );
    assert_eq!(store.read_marker("Alice", "lobby").unwrap(), Some(7));
    assert_eq!(store.mark_read("alice", "lobby", 9).unwrap(), 9);
    assert_eq!(store.read_marker("alice", "kitchen").unwrap(), None);
    assert_eq!(store.read_marker("bob", "lobby").unwrap(), None);
    assert_eq!(store.mark_read("alice", "kitchen", 0).unwrap(), 0);
    assert_eq!(store.read_marker("alice", "kitchen").unwrap(), Some(0));
}

/// Keeps `f`'s bytes (some; a store that keeps bytes checks they are
/// there), then records it.
fn add(store: &dyn Files, f: &FileRecord) {
    for sha256 in std::iter::once(&f.sha256).chain(&f.thumb_sha256) {
        store.put_blob(sha256, &mut &b"bytes"[..]).unwrap();
    }
    store.add_file(f).unwrap();
}

fn file(id: &str, uploader: &str, size: u64) -> FileRecord {
    FileRecord {
        id: id.into(),
        name: format!("{id}.png"),
        size,
        mime: "image/png".into(),
        sha256: "ab".repeat(32),
        uploader: uploader.into(),
        uploaded_at: 1_700_000_000_000,
        width: None,
        height: None,
        thumb_sha256: None,
    }
}

/// The file behaviour every store must have, on an empty store; leaves
/// 10 bytes uploaded by `Alice`.
pub fn files(store: &dyn Files) {
    assert_eq!(store.file("nope").unwrap(), None);
    assert_eq!(store.uploaded_bytes("alice").unwrap(), 0);
    let first = FileRecord {
        width: Some(640),
        height: Some(480),
        thumb_sha256: Some("cd".repeat(32)),
        ..file("f1", "Alice", 4)
    };
    add(store, &first);
    add(store, &file("f2", "alice", 6));
    add(store, &file("f3", "bob", 100));
    assert_eq!(store.file("f1").unwrap(), Some(first));
    assert_eq!(store.file("F1").unwrap(), None, "ids are exact");
    let other = file("f3", "bob", 100);
    assert_eq!(store.file("f3").unwrap(), Some(other));
    // Quotas are per name, whatever its case.
    assert_eq!(store.uploaded_bytes("ALICE").unwrap(), 10);
    assert_eq!(store.uploaded_bytes("bob").unwrap(), 100);
}

/// What a store that nodes share must do with files' bytes
/// ([`Files::put_blob`], [`Files::get_blob`]), on an empty store.
pub fn shared_blobs(store: &dyn Files) {
    let mut out = Vec::new();
    assert!(!store.get_blob("h1", &mut out).unwrap());
    assert!(out.is_empty());
    // Over two chunks, so it spans three rows.
    let bytes: Vec<u8> = (0..2_500_000u32).map(|i| (i % 251) as u8).collect();
    store.put_blob("h1", &mut &bytes[..]).unwrap();
    // Bytes are named by their hash: a second put keeps the first.
    store.put_blob("h1", &mut &b"other"[..]).unwrap();
    assert!(store.get_blob("h1", &mut out).unwrap());
    assert_eq!(out, bytes);
    let exact = vec![7u8; 1024 * 1024];
    for (name, bytes) in [("empty", &[][..]), ("exact", &exact[..])] {
        store.put_blob(name, &mut &bytes[..]).unwrap();
        let mut out = Vec::new();
        assert!(store.get_blob(name, &mut out).unwrap(), "{name}");
        assert_eq!(out, bytes, "{name}");
    }
    // A file is recorded only with its bytes there.
    let without = FileRecord {
        sha256: "ef".repeat(32),
        ..file("f9", "alice", 1)
    };
    assert!(store.add_file(&without).is_err());
    assert_eq!(store.file("f9").unwrap(), None);
}

/// What every store must do with files that messages carry, on an empty
/// store: a message keeps its attachments, its room may read them, a direct
/// message's recipient may read what it gave, and what nothing refers to
/// any more is collected, its bytes with it once no file has them.
pub fn attachments(store: &dyn Store) {
    let (bytes, thumb, other) = ("aa".repeat(32), "bb".repeat(32), "cc".repeat(32));
    let image = FileRecord {
        sha256: bytes.clone(),
        thumb_sha256: Some(thumb.clone()),
        width: Some(2),
        height: Some(1),
        uploaded_at: 1_000,
        ..file("f1", "alice", 10)
    };
    let same_bytes = FileRecord {
        id: "f2".into(),
        thumb_sha256: None,
        ..image.clone()
    };
    let given = FileRecord {
        sha256: other.clone(),
        uploaded_at: 1_000,
        ..file("f3", "bob", 5)
    };
    for f in [&image, &same_bytes, &given] {
        add(store, f);
    }
    let carried = Attachment {
        id: "f1".into(),
        name: "f1.png".into(),
        size: 10,
        mime: "image/png".into(),
        width: Some(2),
        height: Some(1),
    };
    let first = StoredMessage {
        attachments: vec![carried],
        text: String::new(),
        ..msg("r", 1, 2_000)
    };
    store.append(std::slice::from_ref(&first)).unwrap();
    store.append(&[msg("r", 2, 2_001)]).unwrap();
    assert_eq!(
        store.history("r", None, 10).unwrap()[0],
        first,
        "kept whole"
    );
    assert_eq!(store.after("r", 0, 10).unwrap()[0], first);
    assert_eq!(
        store.file_readers("f1").unwrap(),
        FileReaders {
            rooms: vec!["r".into()],
            users: vec![]
        }
    );
    store.share_files(&["f3".into()], "carol", 2_000).unwrap();
    assert_eq!(store.file_readers("f3").unwrap().users, ["carol"]);
    assert_eq!(store.file_readers("f2").unwrap(), FileReaders::default());

    // Too new to collect; then f2, never sent, goes, but its bytes are f1's.
    assert_eq!(store.collect_files(1_000, 0).unwrap(), Vec::<String>::new());
    assert!(store.file("f2").unwrap().is_some());
    assert_eq!(store.collect_files(5_000, 0).unwrap(), Vec::<String>::new());
    assert_eq!(store.file("f2").unwrap(), None);
    assert!(store.bytes_in_use(&bytes).unwrap());

    // Retention drops the message that carried f1: f1 goes with its bytes.
    store
        .prune(
            Retention {
                max_count: Some(1),
                max_age: None,
            },
            3_000,
        )
        .unwrap();
    assert_eq!(store.file_readers("f1").unwrap(), FileReaders::default());
    let mut gone = store.collect_files(5_000, 0).unwrap();
    gone.sort();
    assert_eq!(gone, [bytes.clone(), thumb.clone()]);
    assert_eq!(store.file("f1").unwrap(), None);
    assert!(!store.bytes_in_use(&bytes).unwrap() && !store.bytes_in_use(&thumb).unwrap());
    assert_eq!(
        store.uploaded_bytes("alice").unwrap(),
        0,
        "the quota is freed"
    );

    // A share lasts until it is older than what retention keeps.
    assert!(store.file("f3").unwrap().is_some());
    assert_eq!(store.collect_files(5_000, 3_000).unwrap(), [other]);
    assert_eq!(store.file("f3").unwrap(), None);
}

/// What every store must do with edits, deletions and reactions (event
/// rows), replies and mentions, on an empty store: each event is stored in
/// the room's stream and folded into its target on commit; event rows and
/// deleted messages are never search hits; a deleted message keeps no
/// text, files, reactions or quotes of it. Leaves message 1 of `lobby`
/// edited to "lunch at one" and message 2 deleted.
pub fn events(store: &dyn Store) {
    let said = |seq, from: &str, text: &str| StoredMessage {
        from: from.into(),
        text: text.into(),
        ..msg("lobby", seq, 1_000 * seq)
    };
    let event = |seq, from: &str, text: &str, event| StoredMessage {
        event: Some(event),
        ..said(seq, from, text)
    };
    let react = |seq, from: &str, target, emoji: &str, on| {
        let emoji = emoji.to_string();
        event(seq, from, "", Event::React { target, emoji, on })
    };
    add(store, &file("f-del", "alice", 3));
    let plan = Attachment {
        id: "f-del".into(),
        name: "plan.txt".into(),
        size: 3,
        mime: "text/plain".into(),
        width: None,
        height: None,
    };
    let quote = Quote::of(2, "alice", "secret plan");
    store
        .append(&[
            StoredMessage {
                mentions: vec!["Bob".into()],
                ..said(1, "alice", "lunch at noon @bob")
            },
            StoredMessage {
                attachments: vec![plan],
                ..said(2, "alice", "secret plan")
            },
            StoredMessage {
                reply_to: Some(quote.clone()),
                ..said(3, "bob", "count me in")
            },
        ])
        .unwrap();
    assert_eq!(
        store.message("lobby", 3).unwrap().unwrap().reply_to,
        Some(quote)
    );
    assert_eq!(
        store.message("lobby", 1).unwrap().unwrap().mentions,
        ["Bob"]
    );
    assert_eq!(store.file_readers("f-del").unwrap().rooms, ["lobby"]);

    // One batch, folded in order, with the events later batches bring.
    store
        .append(&[
            event(4, "alice", "lunch at one", Event::Edit { target: 1 }),
            event(5, "alice", "", Event::Delete { target: 2 }),
            react(6, "bob", 1, "👍", true),
            react(7, "carol", 1, "👍", true),
        ])
        .unwrap();
    store
        .append(&[
            react(8, "bob", 1, "🎉", true),
            react(9, "BOB", 1, "👍", false),
            react(10, "bob", 1, "🎉", true),
            // A deleted message and an event are nobody's targets.
            event(11, "alice", "revived", Event::Edit { target: 2 }),
            react(12, "bob", 2, "👍", true),
            event(13, "alice", "eventful", Event::Edit { target: 4 }),
            event(14, "alice", "", Event::Delete { target: 4 }),
        ])
        .unwrap();

    let edited = store.message("lobby", 1).unwrap().unwrap();
    assert_eq!(
        (edited.text.as_str(), edited.mentions.len(), edited.deleted),
        ("lunch at one", 0, false),
        "the latest text, its mentions with it"
    );
    let deleted = store.message("lobby", 2).unwrap().unwrap();
    assert!(deleted.deleted);
    assert_eq!((deleted.text.as_str(), deleted.attachments.len()), ("", 0));
    assert_eq!(deleted.from, "alice", "who said it stays");
    assert_eq!(
        store.message("lobby", 3).unwrap().unwrap().reply_to,
        Some(Quote {
            seq: 2,
            from: "alice".into(),
            text: String::new()
        }),
        "a reply's quote of a deleted message loses its text"
    );
    assert_eq!(
        store.file_readers("f-del").unwrap(),
        FileReaders::default(),
        "its files are the room's no more"
    );
    let row = store.message("lobby", 4).unwrap().unwrap();
    assert_eq!(row.event, Some(Event::Edit { target: 1 }));
    assert_eq!(row.text, "lunch at one", "an event row is kept as said");
    assert!(!row.deleted);
    assert_eq!(store.message("lobby", 99).unwrap(), None);

    let mut emoji = store.reaction_emoji("lobby", 1).unwrap();
    emoji.sort();
    assert_eq!(
        emoji,
        ["🎉", "👍"],
        "carol's 👍 and bob's 🎉 (twice is once)"
    );
    assert!(store.reaction_emoji("lobby", 2).unwrap().is_empty());
    assert!(store.reaction_emoji("lobby", 4).unwrap().is_empty());

    // Search: the new text, not the old; never an event row or a deleted
    // message.
    let hits = |words: &str| found(store, words, None, None, 10);
    assert_eq!(hits("lunch"), [("lobby".to_string(), 1)]);
    assert_eq!(hits("one"), [("lobby".to_string(), 1)]);
    assert!(hits("noon").is_empty(), "the old text is not found");
    assert!(hits("secret").is_empty() && hits("plan").is_empty());
    assert!(hits("revived").is_empty() && hits("eventful").is_empty());

    // Everything that replays the room replays the events, as said.
    let history = store.history("lobby", None, 100).unwrap();
    assert_eq!(history.len(), 14);
    assert_eq!(history[0], edited);
    assert_eq!(history[4].event, Some(Event::Delete { target: 2 }));
    let after = store.after("lobby", 5, 100).unwrap();
    assert_eq!(
        after[0].event,
        Some(Event::React {
            target: 1,
            emoji: "👍".into(),
            on: true
        })
    );
    assert_eq!(after[3].from, "BOB");
    let record = store.load_room("lobby", 2, 100).unwrap();
    assert_eq!(record.last_seq, 14);
    assert_eq!(record.recent[1].event, Some(Event::Delete { target: 4 }));
    assert_eq!(
        record.client_ids.last(),
        Some(&("alice".to_string(), "c-14".to_string(), 14)),
        "retries of events are recognised like any message's"
    );

    // Deleting an edited message takes its earlier texts with it: the edit
    // rows keep their place in the stream, not their words.
    store
        .append(&[event(15, "alice", "", Event::Delete { target: 1 })])
        .unwrap();
    let edit = store.message("lobby", 4).unwrap().unwrap();
    assert_eq!(edit.event, Some(Event::Edit { target: 1 }));
    assert_eq!(edit.text, "", "the edit's text went with the message");
    assert_eq!(
        store.message("lobby", 13).unwrap().unwrap().text,
        "eventful",
        "an edit of another target is left alone"
    );
    assert!(hits("lunch").is_empty() && hits("one").is_empty());
}

/// What every store must do with private conversations, on an empty store:
/// opening one twice is opening it once; each person lists theirs, latest
/// message first, with its last `seq`; only its two people find its words,
/// and the directory never lists it; dropping a person's conversations
/// takes everything their rooms held (messages, search entries,
/// reactions, the links to files, read markers, the numbering), and
/// dropping the guests' ones leaves the accounts'. Leaves the conversation
/// of `Al.ice` and `Bob` open with one message, "again", at seq 1.
pub fn conversations(store: &dyn Store) {
    let party = |name: &str, guest| Party {
        key: names::name_key(name),
        name: name.into(),
        guest,
    };
    let (alice, bob, carol, gus) = (
        party("Al.ice", false),
        party("Bob", false),
        party("carol", false),
        party("Gus", true),
    );
    let record = |x: &Party, y: &Party, opened_at| {
        let (a, b) = if x.key < y.key { (x, y) } else { (y, x) };
        ConversationRecord {
            room: names::conversation(&a.name, &b.name),
            a: a.clone(),
            b: b.clone(),
            opened_at,
            last_seq: 0,
            last_at: 0,
        }
    };
    let ab = record(&alice, &bob, 1_000);
    let bc = record(&bob, &carol, 2_000);
    let ag = record(&alice, &gus, 3_000);
    assert_eq!(ab.room, "@al.ice+bob");
    for c in [&ab, &bc, &ag] {
        store.open_conversation(c).unwrap();
    }
    // Opened again (by the other, later): it is the same one.
    store
        .open_conversation(&ConversationRecord {
            opened_at: 9_000,
            ..record(&bob, &alice, 9_000)
        })
        .unwrap();
    let listed = |key: &str, limit| -> Vec<(String, u64, u64)> {
        store
            .conversations(key, limit)
            .unwrap()
            .into_iter()
            .map(|c| (c.room, c.last_seq, c.last_at))
            .collect()
    };
    let at = |c: &ConversationRecord, seq, sent_at| (c.room.clone(), seq, sent_at);
    // Without messages, by when each was opened.
    assert_eq!(listed("al.ice", 10), [at(&ag, 0, 0), at(&ab, 0, 0)]);
    assert_eq!(
        store.conversations("al.ice", 10).unwrap()[1],
        ab,
        "kept whole"
    );

    let said = |room: &str, seq, from: &str, sent_at, text: &str| StoredMessage {
        from: from.into(),
        text: text.into(),
        ..msg(room, seq, sent_at)
    };
    let menu_file = FileRecord {
        sha256: "dd".repeat(32),
        uploaded_at: 1_000,
        ..file("f-dm", "Al.ice", 4)
    };
    add(store, &menu_file);
    let menu = Attachment {
        id: "f-dm".into(),
        name: "menu.txt".into(),
        size: 4,
        mime: "text/plain".into(),
        width: None,
        height: None,
    };
    store
        .append(&[
            StoredMessage {
                attachments: vec![menu],
                ..said(&ab.room, 1, "Al.ice", 4_000, "secret lunch plan")
            },
            said("lobby", 1, "carol", 4_500, "lunch in the lobby"),
            said(&ab.room, 2, "Bob", 5_000, "lunch works"),
            said(&ag.room, 1, "Gus", 3_500, "guest lunch"),
        ])
        .unwrap();
    store
        .append(&[StoredMessage {
            event: Some(Event::React {
                target: 1,
                emoji: "👍".into(),
                on: true,
            }),
            ..said(&ab.room, 3, "Bob", 5_500, "")
        }])
        .unwrap();
    store.mark_read("Al.ice", &ab.room, 3).unwrap();
    store.mark_read("bob", &ab.room, 2).unwrap();
    store.mark_read("bob", "lobby", 1).unwrap();

    // The latest message first, each with its last seq (events count).
    assert_eq!(listed("al.ice", 10), [at(&ab, 3, 5_500), at(&ag, 1, 3_500)]);
    assert_eq!(listed("al.ice", 1), [at(&ab, 3, 5_500)]);
    assert_eq!(listed("bob", 10), [at(&ab, 3, 5_500), at(&bc, 0, 0)]);
    assert!(listed("dave", 10).is_empty(), "a third user has none");
    assert!(listed("al", 10).is_empty(), "keys match whole");

    // Only its two people find a conversation's words; everyone finds
    // every room's.
    let lunch = |reader: &str, room: Option<&str>| found_by(store, reader, "lunch", room, None, 10);
    let hit = |room: &str, seq| (room.to_string(), seq);
    let theirs = [hit(&ab.room, 2), hit("lobby", 1), hit(&ab.room, 1)];
    assert_eq!(
        lunch("al.ice", None),
        [&theirs[..], &[hit(&ag.room, 1)]].concat()
    );
    assert_eq!(lunch("bob", None), theirs);
    assert_eq!(lunch("carol", None), [hit("lobby", 1)]);
    assert_eq!(
        lunch("al", None),
        [hit("lobby", 1)],
        "not a prefix of a name"
    );
    assert_eq!(lunch("ice", None), [hit("lobby", 1)], "nor a suffix");
    assert!(lunch("carol", Some(&ab.room)).is_empty());
    assert_eq!(
        lunch("bob", Some(&ab.room)),
        [hit(&ab.room, 2), hit(&ab.room, 1)]
    );
    // Paging through a conversation's hits: its cursor names the room.
    let first = found_by(store, "bob", "lunch", None, None, 1);
    let cursor = SearchCursor::decode(
        &SearchCursor {
            sent_at: 5_000,
            room: first[0].0.clone(),
            seq: first[0].1,
        }
        .encode(),
    )
    .expect("a conversation's cursor decodes");
    assert_eq!(
        found_by(store, "bob", "lunch", None, Some(cursor), 10),
        &theirs[1..]
    );

    // The directory lists rooms, never a conversation.
    assert_eq!(store.active_rooms(0, 10).unwrap(), ["lobby"]);

    // Bob's conversations go, with everything they held.
    assert_eq!(
        store.file_readers("f-dm").unwrap().rooms,
        [ab.room.as_str()]
    );
    let mut gone = store.drop_conversations("bob").unwrap();
    gone.sort();
    assert_eq!(gone, [ab.room.clone(), bc.room.clone()]);
    assert_eq!(listed("al.ice", 10), [at(&ag, 1, 3_500)]);
    assert!(listed("bob", 10).is_empty() && listed("carol", 10).is_empty());
    assert!(store.history(&ab.room, None, 10).unwrap().is_empty());
    assert_eq!(store.message(&ab.room, 1).unwrap(), None);
    assert!(store.reaction_emoji(&ab.room, 1).unwrap().is_empty());
    assert_eq!(lunch("bob", None), [hit("lobby", 1)]);
    assert_eq!(lunch("al.ice", None), [hit("lobby", 1), hit(&ag.room, 1)]);
    assert_eq!(store.read_marker("al.ice", &ab.room).unwrap(), None);
    assert_eq!(store.read_marker("bob", &ab.room).unwrap(), None);
    assert_eq!(
        store.read_marker("bob", "lobby").unwrap(),
        Some(1),
        "a room's stays"
    );
    assert_eq!(store.file_readers("f-dm").unwrap(), FileReaders::default());
    assert_eq!(
        store.collect_files(1_000_000, 0).unwrap(),
        [menu_file.sha256.as_str()],
        "a file only its messages carried is collected"
    );
    assert!(store.drop_conversations("bob").unwrap().is_empty());

    // Talking again starts afresh, from seq 1.
    store
        .open_conversation(&record(&alice, &bob, 6_000))
        .unwrap();
    let again = store.load_room(&ab.room, 10, 10).unwrap();
    assert_eq!((again.last_seq, again.recent.len()), (0, 0));
    store
        .append(&[said(&ab.room, 1, "Bob", 6_500, "lunch again")])
        .unwrap();
    assert_eq!(store.load_room(&ab.room, 10, 10).unwrap().last_seq, 1);
    assert_eq!(lunch("bob", Some(&ab.room)), [hit(&ab.room, 1)]);
    assert_eq!(listed("bob", 10), [at(&ab, 1, 6_500)]);

    // A guest's go as a lone server starts; accounts' stay.
    assert_eq!(
        store.drop_guest_conversations().unwrap(),
        [ag.room.as_str()]
    );
    assert!(store.history(&ag.room, None, 10).unwrap().is_empty());
    assert_eq!(store.load_room(&ag.room, 10, 10).unwrap().last_seq, 0);
    assert_eq!(listed("al.ice", 10), [at(&ab, 1, 6_500)]);
    assert!(listed("gus", 10).is_empty());
    assert!(store.drop_guest_conversations().unwrap().is_empty());
}
