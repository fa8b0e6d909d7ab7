//! Frames to and from the server, read and written with the browser's own
//! `JSON.parse` / `JSON.stringify` instead of serde_json.
//!
//! The messages are the protocol crate's [`ClientMsg`] and [`ServerMsg`]; only
//! the JSON step differs. serde's generated code and serde_json's parser
//! would add 10–20 KB gzipped to a bundle that must stay under 150 KB (see
//! README, "Developing"); the browser already has a JSON parser. The JSON
//! shapes are exactly those of docs/protocol.md: unknown fields are ignored,
//! and a frame of an unknown `type` or with a missing or mistyped field
//! decodes to `None` (skipped).
//!
//! The mapping is written once, over two small traits ([`Json`] to read a
//! parsed value, [`JsonOut`] to build one), so the same code runs on the
//! browser's values in the app and on `serde_json::Value` in the native
//! tests, where a property test checks it against serde's own encoding of
//! every message: the two codecs cannot drift apart unnoticed.

use hubbub_protocol::{
    Attachment, ClientMsg, ConversationInfo, ErrorCode, Event, HistoryMessage, Limits, Quote,
    RoomInfo, SearchHit, ServerMsg,
};
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::JsValue;

/// Largest whole number a JavaScript number holds exactly (2^53); times,
/// seqs and ids stay far below it.
pub const MAX_EXACT: u64 = 9_007_199_254_740_992;

/// A parsed JSON value, as the decoder reads it.
pub trait Json: Sized {
    /// The field `key` of an object; `None` if absent (or not an object).
    fn field(&self, key: &str) -> Option<Self>;
    fn is_object(&self) -> bool;
    fn is_null(&self) -> bool;
    fn string(&self) -> Option<String>;
    /// A non-negative whole number up to [`MAX_EXACT`].
    fn whole(&self) -> Option<u64>;
    fn boolean(&self) -> Option<bool>;
    /// `read` of each item of an array; `None` if this is not an array or
    /// any item does not read.
    fn each<T>(&self, read: impl Fn(&Self) -> Option<T>) -> Option<Vec<T>>;
}

/// A JSON object being built, as the encoder writes it.
pub trait JsonOut {
    fn object() -> Self;
    fn set_str(&mut self, key: &str, value: &str);
    fn set_num(&mut self, key: &str, value: u64);
    fn set_strs(&mut self, key: &str, values: &[String]);
    fn set_bool(&mut self, key: &str, value: bool);
}

/// Typed readers over a [`Json`] object.
struct Obj<'a, J>(&'a J);

impl<J: Json> Obj<'_, J> {
    fn str(&self, key: &str) -> Option<String> {
        self.0.field(key)?.string()
    }

    /// An optional field: absent or `null` is `None`; another type fails.
    fn opt<T>(&self, key: &str, read: impl Fn(&J) -> Option<T>) -> Option<Option<T>> {
        match self.0.field(key) {
            None => Some(None),
            Some(v) if v.is_null() => Some(None),
            Some(v) => read(&v).map(Some),
        }
    }

    fn opt_str(&self, key: &str) -> Option<Option<String>> {
        self.opt(key, J::string)
    }

    fn u64(&self, key: &str) -> Option<u64> {
        self.0.field(key)?.whole()
    }

    fn opt_u64(&self, key: &str) -> Option<Option<u64>> {
        self.opt(key, J::whole)
    }

    fn usize(&self, key: &str) -> Option<usize> {
        usize::try_from(self.u64(key)?).ok()
    }

    fn u32(&self, key: &str) -> Option<u32> {
        u32::try_from(self.u64(key)?).ok()
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.0.field(key)?.boolean()
    }

    fn list<T>(&self, key: &str, item: impl Fn(&J) -> Option<T>) -> Option<Vec<T>> {
        self.0.field(key)?.each(item)
    }

    /// A list of objects, each read by `item`; anything else in it fails.
    fn objects<T>(&self, key: &str, item: impl Fn(Obj<'_, J>) -> Option<T>) -> Option<Vec<T>> {
        self.list(key, |v| if v.is_object() { item(Obj(v)) } else { None })
    }

    fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.list(key, J::string)
    }

    /// A message's `attachments`; absent is none.
    fn attachments(&self) -> Option<Vec<Attachment>> {
        if self.0.field("attachments").is_none() {
            return Some(Vec::new());
        }
        self.objects("attachments", |a| {
            Some(Attachment {
                id: a.str("id")?,
                name: a.str("name")?,
                size: a.u64("size")?,
                mime: a.str("mime")?,
                width: a.opt("width", |n| u32::try_from(n.whole()?).ok())?,
                height: a.opt("height", |n| u32::try_from(n.whole()?).ok())?,
            })
        })
    }

    /// A message's `reply_to`, `mentions` (absent is none) and `event`.
    #[allow(clippy::type_complexity)]
    fn extras(&self) -> Option<(Option<Quote>, Vec<String>, Option<Event>)> {
        let reply_to = self.opt("reply_to", |q| {
            let q = Obj(q).object()?;
            Some(Quote {
                seq: q.u64("seq")?,
                from: q.str("from")?,
                text: q.str("text")?,
            })
        })?;
        let mentions = match self.0.field("mentions") {
            Some(_) => self.strings("mentions")?,
            None => Vec::new(),
        };
        let event = self.opt("event", |e| {
            let e = Obj(e).object()?;
            let target = e.u64("target")?;
            Some(match e.str("kind")?.as_str() {
                "edit" => Event::Edit { target },
                "delete" => Event::Delete { target },
                "react" => Event::React {
                    target,
                    emoji: e.str("emoji")?,
                    on: e.bool("on")?,
                },
                _ => return None,
            })
        })?;
        Some((reply_to, mentions, event))
    }

    /// This value if it is an object.
    fn object(self) -> Option<Self> {
        self.0.is_object().then_some(self)
    }
}

fn limits<J: Json>(o: &J) -> Option<Limits> {
    let o = Obj(o);
    Some(Limits {
        max_frame_bytes: o.usize("max_frame_bytes")?,
        max_text_bytes: o.usize("max_text_bytes")?,
        max_name_chars: o.usize("max_name_chars")?,
        max_room_chars: o.usize("max_room_chars")?,
        max_rooms: o.usize("max_rooms")?,
        // Absent means the default; `null` is as wrong as any other type.
        max_history: match o.0.field("max_history") {
            Some(n) => usize::try_from(n.whole()?).ok()?,
            None => Limits::DEFAULT_MAX_HISTORY,
        },
        max_files_per_message: match o.0.field("max_files_per_message") {
            Some(n) => usize::try_from(n.whole()?).ok()?,
            None => Limits::DEFAULT_MAX_FILES_PER_MESSAGE,
        },
        max_file_bytes: match o.0.field("max_file_bytes") {
            Some(n) => n.whole()?,
            None => Limits::DEFAULT_MAX_FILE_BYTES,
        },
        edit_window_ms: match o.0.field("edit_window_ms") {
            Some(n) => n.whole()?,
            None => Limits::DEFAULT_EDIT_WINDOW_MS,
        },
        max_conversations: match o.0.field("max_conversations") {
            Some(n) => usize::try_from(n.whole()?).ok()?,
            None => Limits::DEFAULT_MAX_CONVERSATIONS,
        },
    })
}

/// Decodes a parsed server frame; `None` if it is not a frame this client
/// understands (a newer server's, or a malformed one).
pub fn decode_value<J: Json>(value: &J) -> Option<ServerMsg> {
    if !value.is_object() {
        return None;
    }
    let o = Obj(value);
    Some(match o.str("type")?.as_str() {
        "welcome" => ServerMsg::Welcome {
            user: o.str("user")?,
            protocol: o.u32("protocol")?,
            heartbeat_ms: o.u64("heartbeat_ms")?,
            idle_timeout_ms: o.u64("idle_timeout_ms")?,
            server_time: o.u64("server_time")?,
            limits: limits(&value.field("limits")?)?,
            upload_token: o.opt_str("upload_token")?,
        },
        "presence" => ServerMsg::Presence {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "joined" => ServerMsg::Joined {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "left" => ServerMsg::Left {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "leave_ok" => ServerMsg::LeaveOk {
            room: o.str("room")?,
        },
        "message" => {
            let (reply_to, mentions, event) = o.extras()?;
            ServerMsg::Message {
                room: o.str("room")?,
                seq: o.u64("seq")?,
                from: o.str("from")?,
                text: o.str("text")?,
                sent_at: o.u64("sent_at")?,
                attachments: o.attachments()?,
                reply_to,
                mentions,
                event,
            }
        }
        "history" => ServerMsg::History {
            room: o.str("room")?,
            messages: o.objects("messages", |m| {
                let (reply_to, mentions, event) = m.extras()?;
                Some(HistoryMessage {
                    seq: m.u64("seq")?,
                    from: m.str("from")?,
                    text: m.str("text")?,
                    sent_at: m.u64("sent_at")?,
                    attachments: m.attachments()?,
                    reply_to,
                    mentions,
                    event,
                })
            })?,
            has_more: o.bool("has_more")?,
            before: o.opt_u64("before")?,
            resync: match value.field("resync") {
                Some(v) => v.boolean()?,
                None => false,
            },
        },
        "ack" => ServerMsg::Ack {
            client_id: o.opt_str("client_id")?,
            room: o.opt_str("room")?,
            seq: o.opt_u64("seq")?,
        },
        "conversation" => ServerMsg::Conversation {
            room: o.str("room")?,
            with: o.str("with")?,
        },
        "conversations" => ServerMsg::Conversations {
            conversations: o.objects("conversations", |c| {
                Some(ConversationInfo {
                    room: c.str("room")?,
                    with: c.str("with")?,
                    online: c.bool("online")?,
                    last_seq: c.u64("last_seq")?,
                })
            })?,
        },
        "renamed" => ServerMsg::Renamed {
            room: o.opt_str("room")?,
            from: o.str("from")?,
            to: o.str("to")?,
            upload_token: o.opt_str("upload_token")?,
        },
        "rooms" => ServerMsg::Rooms {
            rooms: o.objects("rooms", |r| {
                Some(RoomInfo {
                    room: r.str("room")?,
                    members: r.usize("members")?,
                })
            })?,
        },
        "typing" => ServerMsg::Typing {
            room: o.str("room")?,
            user: o.str("user")?,
        },
        "read" => ServerMsg::Read {
            room: o.str("room")?,
            seq: o.u64("seq")?,
        },
        "search_results" => ServerMsg::SearchResults {
            query: o.str("query")?,
            results: o.objects("results", |h| {
                Some(SearchHit {
                    room: h.str("room")?,
                    seq: h.u64("seq")?,
                    from: h.str("from")?,
                    text: h.str("text")?,
                    sent_at: h.u64("sent_at")?,
                    attachments: h.attachments()?,
                })
            })?,
            next: o.opt_str("next")?,
        },
        "pong" => ServerMsg::Pong {
            id: o.opt_u64("id")?,
        },
        "heartbeat" => ServerMsg::Heartbeat,
        "error" => ServerMsg::Error {
            code: ErrorCode::from_code(&o.str("code")?)?,
            message: o.str("message")?,
            client_id: o.opt_str("client_id")?,
            room: o.opt_str("room")?,
        },
        _ => return None,
    })
}

/// A JSON object under construction; `None` fields are left out, as serde's
/// `skip_serializing_if = "Option::is_none"` does.
struct Out<O>(O);

impl<O: JsonOut> Out<O> {
    fn new(kind: &str) -> Out<O> {
        let mut o = O::object();
        o.set_str("type", kind);
        Out(o)
    }

    fn str(mut self, key: &str, value: &str) -> Out<O> {
        self.0.set_str(key, value);
        self
    }

    fn opt_str(self, key: &str, value: Option<&str>) -> Out<O> {
        match value {
            Some(value) => self.str(key, value),
            None => self,
        }
    }

    /// A list of strings, left out when empty (as serde's
    /// `skip_serializing_if = "Vec::is_empty"` does).
    fn strs(mut self, key: &str, values: &[String]) -> Out<O> {
        if !values.is_empty() {
            self.0.set_strs(key, values);
        }
        self
    }

    fn num(mut self, key: &str, value: u64) -> Out<O> {
        self.0.set_num(key, value);
        self
    }

    fn bool(mut self, key: &str, value: bool) -> Out<O> {
        self.0.set_bool(key, value);
        self
    }

    fn opt_num(mut self, key: &str, value: Option<u64>) -> Out<O> {
        if let Some(value) = value {
            self.0.set_num(key, value);
        }
        self
    }
}

/// Builds one frame for the server: the same JSON serde writes for it.
pub fn encode_value<O: JsonOut>(msg: &ClientMsg) -> O {
    let out = match msg {
        ClientMsg::Hello { name } => Out::new("hello").str("name", name),
        ClientMsg::Join { room, since } => {
            Out::new("join").str("room", room).opt_num("since", *since)
        }
        ClientMsg::Leave { room } => Out::new("leave").str("room", room),
        ClientMsg::Send {
            room,
            text,
            client_id,
            attachments,
            reply_to,
        } => Out::new("send")
            .str("room", room)
            .str("text", text)
            .opt_str("client_id", client_id.as_deref())
            .strs("attachments", attachments)
            .opt_num("reply_to", *reply_to),
        ClientMsg::Edit {
            room,
            seq,
            text,
            client_id,
        } => Out::new("edit")
            .str("room", room)
            .num("seq", *seq)
            .str("text", text)
            .opt_str("client_id", client_id.as_deref()),
        ClientMsg::Delete {
            room,
            seq,
            client_id,
        } => Out::new("delete")
            .str("room", room)
            .num("seq", *seq)
            .opt_str("client_id", client_id.as_deref()),
        ClientMsg::React {
            room,
            seq,
            emoji,
            on,
            client_id,
        } => Out::new("react")
            .str("room", room)
            .num("seq", *seq)
            .str("emoji", emoji)
            .bool("on", *on)
            .opt_str("client_id", client_id.as_deref()),
        ClientMsg::Open { with } => Out::new("open").str("with", with),
        ClientMsg::Conversations => Out::new("conversations"),
        ClientMsg::Rename { name } => Out::new("rename").str("name", name),
        ClientMsg::Who { room } => Out::new("who").str("room", room),
        ClientMsg::Rooms => Out::new("rooms"),
        ClientMsg::History {
            room,
            before,
            limit,
        } => Out::new("history")
            .str("room", room)
            .opt_num("before", *before)
            .opt_num("limit", limit.map(u64::from)),
        ClientMsg::Typing { room } => Out::new("typing").str("room", room),
        ClientMsg::Read { room, seq } => Out::new("read").str("room", room).num("seq", *seq),
        ClientMsg::Search {
            query,
            room,
            before,
            limit,
        } => Out::new("search")
            .str("query", query)
            .opt_str("room", room.as_deref())
            .opt_str("before", before.as_deref())
            .opt_num("limit", limit.map(u64::from)),
        ClientMsg::Ping { id } => Out::new("ping").opt_num("id", *id),
        ClientMsg::Quit => Out::new("quit"),
    };
    out.0
}

impl Json for JsValue {
    fn field(&self, key: &str) -> Option<JsValue> {
        if !self.is_object() {
            return None;
        }
        let value = Reflect::get(self, &JsValue::from_str(key)).ok()?;
        (!value.is_undefined()).then_some(value)
    }

    fn is_object(&self) -> bool {
        JsValue::is_object(self) && !Array::is_array(self)
    }

    fn is_null(&self) -> bool {
        JsValue::is_null(self)
    }

    fn string(&self) -> Option<String> {
        self.as_string()
    }

    fn whole(&self) -> Option<u64> {
        let n = self.as_f64()?;
        (n >= 0.0 && n.fract() == 0.0 && n <= MAX_EXACT as f64).then_some(n as u64)
    }

    fn boolean(&self) -> Option<bool> {
        self.as_bool()
    }

    fn each<T>(&self, read: impl Fn(&JsValue) -> Option<T>) -> Option<Vec<T>> {
        if !Array::is_array(self) {
            return None;
        }
        // A loop, not `collect::<Option<Vec<_>>>()`: its `GenericShunt`
        // is a copy of the iterator machinery per item type (the bundle).
        let array = Array::from(self);
        let mut items = Vec::new();
        for i in 0..array.length() {
            items.push(read(&array.get(i))?);
        }
        Some(items)
    }
}

impl JsonOut for Object {
    fn object() -> Object {
        Object::new()
    }

    fn set_str(&mut self, key: &str, value: &str) {
        let _ = Reflect::set(self, &JsValue::from_str(key), &JsValue::from_str(value));
    }

    fn set_num(&mut self, key: &str, value: u64) {
        let _ = Reflect::set(
            self,
            &JsValue::from_str(key),
            &JsValue::from_f64(value as f64),
        );
    }

    fn set_strs(&mut self, key: &str, values: &[String]) {
        let array: Array = values.iter().map(|v| JsValue::from_str(v)).collect();
        let _ = Reflect::set(self, &JsValue::from_str(key), &array);
    }

    fn set_bool(&mut self, key: &str, value: bool) {
        let _ = Reflect::set(self, &JsValue::from_str(key), &JsValue::from_bool(value));
    }
}

/// Decodes one text frame from the server (see [`decode_value`]).
pub fn decode(text: &str) -> Option<ServerMsg> {
    decode_value(&JSON::parse(text).ok()?)
}

/// Encodes one frame for the server (see [`encode_value`]).
pub fn encode(msg: &ClientMsg) -> String {
    stringify(&encode_value::<Object>(msg))
}

/// `JSON.stringify(value)`; plain objects, arrays and strings always encode.
pub fn stringify(value: &JsValue) -> String {
    JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_default()
}

/// `JSON.parse(text)`, or `undefined` for bad JSON.
pub fn parse(text: &str) -> JsValue {
    JSON::parse(text).unwrap_or(JsValue::UNDEFINED)
}

#[cfg(test)]
mod tests {
    //! The codec against serde's, over every message: what serde writes,
    //! this reads back as the same message; what this writes is what serde
    //! writes; and a frame with a field removed, nulled or retyped is
    //! refused by both or read alike. Run natively on `serde_json::Value`
    //! (the browser's values implement the same two traits).

    use hubbub_protocol::{
        ClientMsg, ConversationInfo, ErrorCode, HistoryMessage, Limits, RoomInfo, SearchHit,
        ServerMsg,
    };
    use proptest::prelude::*;
    use serde_json::{Map, Value};

    use super::*;

    impl Json for Value {
        fn field(&self, key: &str) -> Option<Value> {
            self.as_object()?.get(key).cloned()
        }

        fn is_object(&self) -> bool {
            Value::is_object(self)
        }

        fn is_null(&self) -> bool {
            Value::is_null(self)
        }

        fn string(&self) -> Option<String> {
            self.as_str().map(str::to_string)
        }

        fn whole(&self) -> Option<u64> {
            self.as_u64().filter(|n| *n <= MAX_EXACT)
        }

        fn boolean(&self) -> Option<bool> {
            self.as_bool()
        }

        fn each<T>(&self, read: impl Fn(&Value) -> Option<T>) -> Option<Vec<T>> {
            self.as_array()?.iter().map(read).collect()
        }
    }

    impl JsonOut for Value {
        fn object() -> Value {
            Value::Object(Map::new())
        }

        fn set_str(&mut self, key: &str, value: &str) {
            self.as_object_mut()
                .expect("an object")
                .insert(key.into(), value.into());
        }

        fn set_num(&mut self, key: &str, value: u64) {
            self.as_object_mut()
                .expect("an object")
                .insert(key.into(), value.into());
        }

        fn set_strs(&mut self, key: &str, values: &[String]) {
            self.as_object_mut()
                .expect("an object")
                .insert(key.into(), values.into());
        }

        fn set_bool(&mut self, key: &str, value: bool) {
            self.as_object_mut()
                .expect("an object")
                .insert(key.into(), value.into());
        }
    }

    /// Any text, plus characters JSON must escape.
    fn text() -> impl Strategy<Value = String> {
        let tricky = prop::sample::select(vec![
            '"',
            '\\',
            '/',
            '\0',
            '\n',
            '\t',
            '\u{7f}',
            '\u{2028}',
            '\u{feff}',
            '\u{1F600}',
            '\u{10ffff}',
            'a',
            ' ',
        ]);
        prop_oneof![
            any::<String>(),
            prop::collection::vec(tricky, 0..16).prop_map(|cs| cs.into_iter().collect()),
        ]
    }

    fn opt_text() -> impl Strategy<Value = Option<String>> {
        prop::option::of(text())
    }

    /// Numbers a JavaScript number holds exactly: all the protocol uses.
    fn num() -> impl Strategy<Value = u64> {
        prop_oneof![0..=MAX_EXACT, Just(0), Just(MAX_EXACT)]
    }

    fn opt_num() -> impl Strategy<Value = Option<u64>> {
        prop::option::of(num())
    }

    /// Sizes as the wasm build holds them (32-bit `usize`).
    fn size() -> impl Strategy<Value = usize> {
        any::<u32>().prop_map(|n| n as usize)
    }

    fn users() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(text(), 0..4)
    }

    fn ids() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(text(), 0..3)
    }

    fn attachments() -> impl Strategy<Value = Vec<Attachment>> {
        let one = (text(), text(), num(), text(), any::<Option<(u32, u32)>>()).prop_map(
            |(id, name, size, mime, dims)| Attachment {
                id,
                name,
                size,
                mime,
                width: dims.map(|d| d.0),
                height: dims.map(|d| d.1),
            },
        );
        prop::collection::vec(one, 0..3)
    }

    fn client_msg() -> impl Strategy<Value = ClientMsg> {
        prop_oneof![
            text().prop_map(|name| ClientMsg::Hello { name }),
            (text(), opt_num()).prop_map(|(room, since)| ClientMsg::Join { room, since }),
            text().prop_map(|room| ClientMsg::Leave { room }),
            (text(), text(), opt_text(), ids(), opt_num()).prop_map(
                |(room, text, client_id, attachments, reply_to)| ClientMsg::Send {
                    reply_to,
                    room,
                    text,
                    client_id,
                    attachments,
                }
            ),
            (text(), num(), text(), opt_text()).prop_map(|(room, seq, text, client_id)| {
                ClientMsg::Edit {
                    room,
                    seq,
                    text,
                    client_id,
                }
            }),
            (text(), num(), opt_text()).prop_map(|(room, seq, client_id)| ClientMsg::Delete {
                room,
                seq,
                client_id,
            }),
            (text(), num(), text(), any::<bool>(), opt_text()).prop_map(
                |(room, seq, emoji, on, client_id)| ClientMsg::React {
                    room,
                    seq,
                    emoji,
                    on,
                    client_id,
                }
            ),
            text().prop_map(|with| ClientMsg::Open { with }),
            Just(ClientMsg::Conversations),
            text().prop_map(|name| ClientMsg::Rename { name }),
            text().prop_map(|room| ClientMsg::Who { room }),
            Just(ClientMsg::Rooms),
            (text(), opt_num(), any::<Option<u32>>()).prop_map(|(room, before, limit)| {
                ClientMsg::History {
                    room,
                    before,
                    limit,
                }
            }),
            text().prop_map(|room| ClientMsg::Typing { room }),
            (text(), num()).prop_map(|(room, seq)| ClientMsg::Read { room, seq }),
            (text(), opt_text(), opt_text(), any::<Option<u32>>()).prop_map(
                |(query, room, before, limit)| ClientMsg::Search {
                    query,
                    room,
                    before,
                    limit,
                }
            ),
            opt_num().prop_map(|id| ClientMsg::Ping { id }),
            Just(ClientMsg::Quit),
        ]
    }

    /// A reply's quote, mentions and an event: what a message may carry
    /// besides its text and files.
    fn extras() -> impl Strategy<Value = (Option<Quote>, Vec<String>, Option<Event>)> {
        let quote = (num(), text(), text()).prop_map(|(seq, from, text)| Quote { seq, from, text });
        let event = prop_oneof![
            num().prop_map(|target| Event::Edit { target }),
            num().prop_map(|target| Event::Delete { target }),
            (num(), text(), any::<bool>()).prop_map(|(target, emoji, on)| Event::React {
                target,
                emoji,
                on
            }),
        ];
        (prop::option::of(quote), users(), prop::option::of(event))
    }

    fn server_msg() -> impl Strategy<Value = ServerMsg> {
        let history_message = (num(), text(), text(), num(), attachments(), extras()).prop_map(
            |(seq, from, text, sent_at, attachments, (reply_to, mentions, event))| HistoryMessage {
                event,
                mentions,
                reply_to,
                seq,
                from,
                text,
                sent_at,
                attachments,
            },
        );
        let limits =
            (prop::collection::vec(size(), 8), num(), num()).prop_map(|(l, file, edit)| Limits {
                edit_window_ms: edit,
                max_frame_bytes: l[0],
                max_text_bytes: l[1],
                max_name_chars: l[2],
                max_room_chars: l[3],
                max_rooms: l[4],
                max_history: l[5],
                max_files_per_message: l[6],
                max_file_bytes: file,
                max_conversations: l[7],
            });
        let room_info = (text(), size()).prop_map(|(room, members)| RoomInfo { room, members });
        let conversation_info =
            (text(), text(), any::<bool>(), num()).prop_map(|(room, with, online, last_seq)| {
                ConversationInfo {
                    room,
                    with,
                    online,
                    last_seq,
                }
            });
        let hit = (text(), num(), text(), text(), num(), attachments()).prop_map(
            |(room, seq, from, text, sent_at, attachments)| SearchHit {
                room,
                seq,
                from,
                text,
                sent_at,
                attachments,
            },
        );
        prop_oneof![
            (
                text(),
                any::<u32>(),
                (num(), num(), num()),
                limits,
                opt_text()
            )
                .prop_map(
                    |(
                        user,
                        protocol,
                        (heartbeat_ms, idle_timeout_ms, server_time),
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
                num(),
                text(),
                text(),
                num(),
                attachments(),
                extras()
            )
                .prop_map(
                    |(room, seq, from, text, sent_at, attachments, (reply_to, mentions, event))| {
                        ServerMsg::Message {
                            event,
                            mentions,
                            reply_to,
                            room,
                            seq,
                            from,
                            text,
                            sent_at,
                            attachments,
                        }
                    }
                ),
            (
                text(),
                prop::collection::vec(history_message, 0..4),
                (any::<bool>(), opt_num(), any::<bool>())
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
            (opt_text(), opt_text(), opt_num()).prop_map(|(client_id, room, seq)| {
                ServerMsg::Ack {
                    client_id,
                    room,
                    seq,
                }
            }),
            (text(), text()).prop_map(|(room, with)| ServerMsg::Conversation { room, with }),
            prop::collection::vec(conversation_info, 0..4)
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
            (text(), num()).prop_map(|(room, seq)| ServerMsg::Read { room, seq }),
            (text(), prop::collection::vec(hit, 0..4), opt_text()).prop_map(
                |(query, results, next)| ServerMsg::SearchResults {
                    query,
                    results,
                    next,
                }
            ),
            opt_num().prop_map(|id| ServerMsg::Pong { id }),
            Just(ServerMsg::Heartbeat),
            (
                prop::sample::select(ErrorCode::ALL.to_vec()),
                text(),
                opt_text(),
                opt_text()
            )
                .prop_map(|(code, message, client_id, room)| ServerMsg::Error {
                    code,
                    message,
                    client_id,
                    room,
                }),
        ]
    }

    /// Every field path of a JSON value (`[]` for the value itself), with
    /// array items by index.
    fn paths(value: &Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        match value {
            Value::Object(map) => {
                for (key, v) in map {
                    at.push(key.clone());
                    out.push(at.clone());
                    paths(v, at, out);
                    at.pop();
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    at.push(i.to_string());
                    out.push(at.clone());
                    paths(v, at, out);
                    at.pop();
                }
            }
            _ => {}
        }
    }

    /// How to damage one field of a frame.
    #[derive(Debug, Clone, Copy)]
    enum Damage {
        Remove,
        Null,
        Number,
        Text,
        Negative,
        Fraction,
    }

    /// `value` with the field at `path` damaged.
    fn damaged(mut value: Value, path: &[String], damage: Damage) -> Value {
        let (last, parents) = path.split_last().expect("a field");
        let mut node = &mut value;
        for key in parents {
            node = match node {
                Value::Object(map) => map.get_mut(key).expect("path exists"),
                Value::Array(items) => &mut items[key.parse::<usize>().expect("an index")],
                _ => unreachable!("paths go through objects and arrays"),
            };
        }
        let replacement = match damage {
            Damage::Remove => None,
            Damage::Null => Some(Value::Null),
            Damage::Number => Some(Value::from(7u64)),
            Damage::Text => Some(Value::from("7")),
            Damage::Negative => Some(Value::from(-1i64)),
            Damage::Fraction => Some(Value::from(1.5f64)),
        };
        match node {
            Value::Object(map) => match replacement {
                Some(v) => {
                    map.insert(last.clone(), v);
                }
                None => {
                    map.remove(last);
                }
            },
            Value::Array(items) => {
                let i = last.parse::<usize>().expect("an index");
                match replacement {
                    Some(v) => items[i] = v,
                    None => {
                        items.remove(i);
                    }
                }
            }
            _ => unreachable!("paths go through objects and arrays"),
        }
        value
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn what_serde_writes_decodes_to_the_same_message(msg in server_msg()) {
            let json = serde_json::to_string(&msg).unwrap();
            let value: Value = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(decode_value(&value), Some(msg));
        }

        #[test]
        fn what_this_writes_is_what_serde_writes(msg in client_msg()) {
            let ours: Value = encode_value(&msg);
            prop_assert_eq!(ours, serde_json::to_value(&msg).unwrap());
        }

        #[test]
        fn a_damaged_frame_is_read_as_serde_reads_it(
            msg in server_msg(),
            pick in any::<prop::sample::Index>(),
            damage in prop::sample::select(vec![
                Damage::Remove, Damage::Null, Damage::Number, Damage::Text,
                Damage::Negative, Damage::Fraction,
            ]),
        ) {
            let value = serde_json::to_value(&msg).unwrap();
            let mut all = Vec::new();
            paths(&value, &mut Vec::new(), &mut all);
            let path = pick.get(&all).clone();
            let value = damaged(value, &path, damage);
            let serde: Option<ServerMsg> = serde_json::from_value(value.clone()).ok();
            prop_assert_eq!(decode_value(&value), serde, "{:?} at {:?}", damage, path);
        }
    }

    #[test]
    fn unknown_types_and_non_objects_are_skipped() {
        for text in [
            r#"{"type":"future_thing","x":1}"#,
            r#"[{"type":"heartbeat"}]"#,
            r#""heartbeat""#,
            r#"{"type":7}"#,
            r#"{}"#,
        ] {
            let value: Value = serde_json::from_str(text).unwrap();
            assert_eq!(decode_value(&value), None, "{text}");
        }
        let value: Value =
            serde_json::from_str(r#"{"type":"heartbeat","new_field":[1,2]}"#).unwrap();
        assert_eq!(decode_value(&value), Some(ServerMsg::Heartbeat));
    }
}
