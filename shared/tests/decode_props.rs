//! Property tests of the wire protocol: hostile input to [`decode_client`]
//! always gets an answer (a message or a classified error), never a panic,
//! and every message either side can build survives a JSON round trip.
//!
//! The same properties are fuzzed for longer by `fuzz/` (see `scripts/fuzz.sh`);
//! inputs the fuzzer once found interesting are pinned in `regressions` below.

use hubbub_protocol::{
    decode_client, Attachment, ClientMsg, ConversationInfo, DecodeError, ErrorCode, HistoryMessage,
    Limits, RoomInfo, ServerMsg,
};
use proptest::prelude::*;

/// Every `type` a client may send; anything else must be `unknown_type`.
const CLIENT_TYPES: &[&str] = &[
    "hello", "join", "leave", "send", "direct", "rename", "who", "rooms", "history", "typing",
    "ping", "quit",
];

/// The error codes `decode_client` may answer with.
const DECODE_CODES: &[ErrorCode] = &[
    ErrorCode::BadJson,
    ErrorCode::MissingType,
    ErrorCode::UnknownType,
    ErrorCode::BadField,
];

/// The wire names of every error code; those this build does not know are
/// skipped, so the list may run ahead of `ErrorCode`.
const ERROR_CODE_NAMES: &[&str] = &[
    "bad_json",
    "missing_type",
    "unknown_type",
    "bad_field",
    "binary_unsupported",
    "hello_required",
    "already_hello",
    "invalid_name",
    "name_taken",
    "invalid_room",
    "not_in_room",
    "too_many_rooms",
    "empty_text",
    "text_too_long",
    "unknown_user",
    "rate_limited",
    "unavailable",
    "forbidden",
];

/// Checks what must hold for every decoder answer, whatever the input.
fn check_answer(text: &str) -> Result<(), TestCaseError> {
    match decode_client(text) {
        Ok(msg) => {
            // Only a JSON object is a message (docs/protocol.md).
            let value: serde_json::Value = serde_json::from_str(text)
                .map_err(|e| TestCaseError::fail(format!("accepted non-JSON {text:?}: {e}")))?;
            prop_assert!(value.is_object(), "accepted a non-object: {text:?}");
            let json = serde_json::to_string(&msg).unwrap();
            prop_assert_eq!(decode_client(&json), Ok(msg), "re-encoded as {}", json);
        }
        Err(err) => {
            prop_assert!(DECODE_CODES.contains(&err.code()), "{:?}", err);
            prop_assert!(!err.to_string().is_empty(), "{:?}", err);
        }
    }
    Ok(())
}

/// Strings that stress escaping: anything, plus JSON metacharacters,
/// control characters, separators JavaScript treats as line breaks, a BOM,
/// astral-plane characters and the largest scalar values.
fn text() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '"',
        '\\',
        '/',
        '\0',
        '\n',
        '\r',
        '\t',
        '\u{7f}',
        '\u{1b}',
        '\u{2028}',
        '\u{2029}',
        '\u{feff}',
        '\u{fffd}',
        '\u{d7ff}',
        '\u{e000}',
        '\u{1F600}',
        '\u{10ffff}',
        'a',
        ' ',
    ]);
    prop_oneof![
        any::<String>(),
        prop::collection::vec(tricky, 0..24).prop_map(|cs| cs.into_iter().collect()),
        Just(String::new()),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

fn ids() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..3)
}

fn attachments() -> impl Strategy<Value = Vec<Attachment>> {
    let one = (
        text(),
        text(),
        any::<u64>(),
        text(),
        any::<Option<(u32, u32)>>(),
    )
        .prop_map(|(id, name, size, mime, dims)| Attachment {
            id,
            name,
            size,
            mime,
            width: dims.map(|d| d.0),
            height: dims.map(|d| d.1),
        });
    prop::collection::vec(one, 0..3)
}

fn client_msg() -> impl Strategy<Value = ClientMsg> {
    prop_oneof![
        text().prop_map(|name| ClientMsg::Hello { name }),
        (text(), any::<Option<u64>>()).prop_map(|(room, since)| ClientMsg::Join { room, since }),
        text().prop_map(|room| ClientMsg::Leave { room }),
        (text(), text(), opt_text(), ids()).prop_map(|(room, text, client_id, attachments)| {
            ClientMsg::Send {
                reply_to: None,
                room,
                text,
                client_id,
                attachments,
            }
        }),
        text().prop_map(|with| ClientMsg::Open { with }),
        Just(ClientMsg::Conversations),
        text().prop_map(|name| ClientMsg::Rename { name }),
        text().prop_map(|room| ClientMsg::Who { room }),
        Just(ClientMsg::Rooms),
        (text(), any::<Option<u64>>(), any::<Option<u32>>()).prop_map(|(room, before, limit)| {
            ClientMsg::History {
                room,
                before,
                limit,
            }
        }),
        text().prop_map(|room| ClientMsg::Typing { room }),
        any::<Option<u64>>().prop_map(|id| ClientMsg::Ping { id }),
        Just(ClientMsg::Quit),
    ]
}

fn error_code() -> impl Strategy<Value = ErrorCode> {
    prop::sample::select(ERROR_CODE_NAMES).prop_filter_map("code unknown to this build", |name| {
        serde_json::from_value(serde_json::Value::String(name.to_string())).ok()
    })
}

fn limits() -> impl Strategy<Value = Limits> {
    (any::<[usize; 7]>(), any::<u64>()).prop_map(|(l, file)| Limits {
        edit_window_ms: Limits::DEFAULT_EDIT_WINDOW_MS,
        max_conversations: Limits::DEFAULT_MAX_CONVERSATIONS,
        max_frame_bytes: l[0],
        max_text_bytes: l[1],
        max_name_chars: l[2],
        max_room_chars: l[3],
        max_rooms: l[4],
        max_history: l[5],
        max_files_per_message: l[6],
        max_file_bytes: file,
    })
}

fn users() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(text(), 0..4)
}

fn server_msg() -> impl Strategy<Value = ServerMsg> {
    let history_message = (any::<u64>(), text(), text(), any::<u64>(), attachments()).prop_map(
        |(seq, from, text, sent_at, attachments)| HistoryMessage {
            event: None,
            mentions: Vec::new(),
            reply_to: None,
            seq,
            from,
            text,
            sent_at,
            attachments,
        },
    );
    let room_info = (text(), any::<usize>()).prop_map(|(room, members)| RoomInfo { room, members });
    prop_oneof![
        (
            text(),
            any::<(u32, u64, u64, u64)>(),
            limits(),
            prop::option::of(text())
        )
            .prop_map(
                |(
                    user,
                    (protocol, heartbeat_ms, idle_timeout_ms, server_time),
                    limits,
                    upload_token,
                )| {
                    ServerMsg::Welcome {
                        user,
                        protocol,
                        heartbeat_ms,
                        idle_timeout_ms,
                        server_time,
                        limits,
                        upload_token,
                    }
                }
            ),
        (text(), users()).prop_map(|(room, users)| ServerMsg::Presence { room, users }),
        (text(), users()).prop_map(|(room, users)| ServerMsg::Joined { room, users }),
        (text(), users()).prop_map(|(room, users)| ServerMsg::Left { room, users }),
        text().prop_map(|room| ServerMsg::LeaveOk { room }),
        (
            text(),
            any::<u64>(),
            text(),
            text(),
            any::<u64>(),
            attachments()
        )
            .prop_map(
                |(room, seq, from, text, sent_at, attachments)| ServerMsg::Message {
                    event: None,
                    mentions: Vec::new(),
                    reply_to: None,
                    room,
                    seq,
                    from,
                    text,
                    sent_at,
                    attachments,
                }
            ),
        (
            text(),
            prop::collection::vec(history_message, 0..4),
            any::<(bool, Option<u64>, bool)>()
        )
            .prop_map(|(room, messages, (has_more, before, resync))| {
                ServerMsg::History {
                    room,
                    messages,
                    has_more,
                    before,
                    resync,
                }
            }),
        (opt_text(), opt_text(), any::<Option<u64>>()).prop_map(|(client_id, room, seq)| {
            ServerMsg::Ack {
                client_id,
                room,
                seq,
            }
        }),
        (text(), text()).prop_map(|(room, with)| ServerMsg::Conversation { room, with }),
        prop::collection::vec(
            (text(), text(), any::<bool>(), any::<u64>()).prop_map(
                |(room, with, online, last_seq)| ConversationInfo {
                    room,
                    with,
                    online,
                    last_seq
                }
            ),
            0..3
        )
        .prop_map(|conversations| ServerMsg::Conversations { conversations }),
        (opt_text(), text(), text(), opt_text()).prop_map(|(room, from, to, upload_token)| {
            ServerMsg::Renamed {
                room,
                from,
                to,
                upload_token,
            }
        }),
        prop::collection::vec(room_info, 0..4).prop_map(|rooms| ServerMsg::Rooms { rooms }),
        (text(), text()).prop_map(|(room, user)| ServerMsg::Typing { room, user }),
        any::<Option<u64>>().prop_map(|id| ServerMsg::Pong { id }),
        Just(ServerMsg::Heartbeat),
        (error_code(), text(), opt_text(), opt_text()).prop_map(
            |(code, message, client_id, room)| ServerMsg::Error {
                code,
                message,
                client_id,
                room,
            }
        ),
    ]
}

/// Byte strings built from JSON fragments, so most cases get past the first
/// character and exercise the object, tag and field paths of the decoder.
fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let fragment = prop::sample::select(vec![
        &b"{"[..],
        b"}",
        b"[",
        b"]",
        b":",
        b",",
        b" ",
        b"\"",
        b"\"type\"",
        b"\"hello\"",
        b"\"send\"",
        b"\"join\"",
        b"\"ping\"",
        b"\"quit\"",
        b"\"name\"",
        b"\"room\"",
        b"\"text\"",
        b"\"since\"",
        b"\"id\"",
        b"\"client_id\"",
        b"0",
        b"-1",
        b"18446744073709551616",
        b"1e999",
        b"1.5",
        b"null",
        b"true",
        b"\\u0000",
        b"\\ud800",
        b"\\",
        b"\xff",
        b"\xe2\x80",
    ]);
    prop::collection::vec(fragment, 0..32).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// (a) Arbitrary bytes, as a WebSocket text frame would carry them
    /// (valid UTF-8, so lossily decoded): a message or a decode error.
    #[test]
    fn any_bytes_get_an_answer(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        check_answer(&String::from_utf8_lossy(&bytes))?;
    }

    /// (a) The same, from JSON-looking fragments that reach deeper paths.
    #[test]
    fn jsonish_bytes_get_an_answer(bytes in jsonish()) {
        check_answer(&String::from_utf8_lossy(&bytes))?;
    }

    /// (a) Every real message, cut short at any character: never a panic.
    #[test]
    fn truncated_messages_get_an_answer(msg in client_msg(), cut in any::<prop::sample::Index>()) {
        let json = serde_json::to_string(&msg).unwrap();
        let cuts: Vec<usize> = json.char_indices().map(|(i, _)| i).collect();
        check_answer(&json[..cuts[cut.index(cuts.len())]])?;
    }

    /// (b) Every client message round-trips through JSON and the decoder.
    #[test]
    fn client_messages_round_trip(msg in client_msg()) {
        let json = serde_json::to_string(&msg).unwrap();
        prop_assert_eq!(decode_client(&json), Ok(msg.clone()), "{}", json);
        // Pretty-printed JSON (other whitespace) is the same message.
        let pretty = serde_json::to_string_pretty(&msg).unwrap();
        prop_assert_eq!(decode_client(&pretty), Ok(msg), "{}", pretty);
    }

    /// serde accepts an internally tagged enum as a sequence with the tag
    /// first; the protocol does not: any message sent as an array is `bad_json`.
    #[test]
    fn client_messages_as_arrays_are_bad_json(msg in client_msg()) {
        let serde_json::Value::Object(object) = serde_json::to_value(&msg).unwrap() else {
            unreachable!("a ClientMsg serializes to an object");
        };
        let mut array = vec![object["type"].clone()];
        array.extend(object.into_iter().filter(|(k, _)| k != "type").map(|(_, v)| v));
        let json = serde_json::Value::Array(array).to_string();
        prop_assert_eq!(decode_client(&json).map_err(|e| e.code()), Err(ErrorCode::BadJson), "{}", json);
    }

    /// (c) A JSON object whose `type` is not a client message type is
    /// `unknown_type`, echoing at most 64 characters of it, whatever else it holds.
    #[test]
    fn unknown_types_are_unknown_type(
        kind in text().prop_filter("a known type", |k| !CLIENT_TYPES.contains(&k.as_str())),
        extra in prop::collection::btree_map(text(), any::<Option<i64>>(), 0..4),
    ) {
        let mut object = serde_json::Map::new();
        for (key, value) in extra {
            object.insert(key, serde_json::json!(value));
        }
        object.insert("type".into(), serde_json::Value::String(kind.clone()));
        let json = serde_json::Value::Object(object).to_string();
        let err = decode_client(&json).unwrap_err();
        prop_assert_eq!(err.code(), ErrorCode::UnknownType);
        prop_assert_eq!(err, DecodeError::UnknownType(kind.chars().take(64).collect()));
    }

    /// (d) Every server message survives `to_json` and deserializing back.
    #[test]
    fn server_messages_round_trip(msg in server_msg()) {
        let json = msg.to_json();
        let back: ServerMsg = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(back, msg, "{}", json);
    }
}

/// Inputs worth keeping: edge cases of the decoder, and what the fuzzer found.
mod regressions {
    use super::*;

    fn answer(text: &str) {
        check_answer(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
    }

    #[test]
    fn edge_cases_get_an_answer() {
        let deep_array = "[".repeat(100_000);
        let deep_object = r#"{"type":"#.repeat(10_000);
        for text in [
            "",
            " ",
            "\u{feff}{}",
            "null",
            "{}",
            // Once accepted as `quit` and `hello` (serde's sequence form of
            // an internally tagged enum); now `bad_json`.
            r#"["quit"]"#,
            r#"["hello","alice"]"#,
            r#"{"type":null}"#,
            r#"{"type":"hello","type":"join","room":"r"}"#,
            r#"{"type":"hello","name":"a","name":"b"}"#,
            r#"{"type":"join","room":"r","since":-1}"#,
            r#"{"type":"join","room":"r","since":18446744073709551616}"#,
            r#"{"type":"join","room":"r","since":1e999}"#,
            r#"{"type":"send","room":"\ud800","text":"x"}"#,
            r#"{"type":"send","room":"\ud83d\ude00","text":"\u0000"}"#,
            &deep_array,
            &deep_object,
        ] {
            answer(text);
        }
    }
}
