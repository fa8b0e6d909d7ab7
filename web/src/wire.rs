//! Frames to and from the server, read and written with the browser's own
//! `JSON.parse` / `JSON.stringify` instead of serde_json.
//!
//! The messages are the protocol crate's [`ClientMsg`] and [`ServerMsg`]; only
//! the JSON step differs. serde's generated code and serde_json's parser were
//! the largest part of the bundle after Yew (~35 KB of wasm); the browser
//! already has a JSON parser. The JSON shapes are exactly those of
//! docs/protocol.md: unknown fields are ignored, and a frame of an unknown
//! `type` or with a missing or mistyped field decodes to `None` (skipped).

use hubbub_protocol::{ClientMsg, ErrorCode, HistoryMessage, Limits, RoomInfo, ServerMsg};
use js_sys::{Array, Object, Reflect, JSON};
use wasm_bindgen::JsValue;

/// A parsed JSON object (or any JSON value) with typed field readers.
struct Obj(JsValue);

impl Obj {
    fn get(&self, key: &str) -> JsValue {
        Reflect::get(&self.0, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    fn field(&self, key: &str) -> Obj {
        Obj(self.get(key))
    }

    fn str(&self, key: &str) -> Option<String> {
        self.get(key).as_string()
    }

    /// An optional string: absent or `null` is `None`; another type fails.
    fn opt_str(&self, key: &str) -> Option<Option<String>> {
        optional(self.get(key), |v| v.as_string())
    }

    fn u64(&self, key: &str) -> Option<u64> {
        whole(&self.get(key))
    }

    fn opt_u64(&self, key: &str) -> Option<Option<u64>> {
        optional(self.get(key), |v| whole(&v))
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.get(key).as_bool()
    }

    fn strings(&self, key: &str) -> Option<Vec<String>> {
        self.list(key, |v| v.as_string())
    }

    fn list<T>(&self, key: &str, item: impl Fn(JsValue) -> Option<T>) -> Option<Vec<T>> {
        let value = self.get(key);
        if !Array::is_array(&value) {
            return None;
        }
        Array::from(&value).iter().map(item).collect()
    }
}

/// `None` for absent or `null`, else `read(value)` (which must succeed).
fn optional<T>(value: JsValue, read: impl Fn(JsValue) -> Option<T>) -> Option<Option<T>> {
    if value.is_undefined() || value.is_null() {
        Some(None)
    } else {
        read(value).map(Some)
    }
}

/// A non-negative whole number (exact up to 2^53, which covers times and seqs).
fn whole(value: &JsValue) -> Option<u64> {
    let n = value.as_f64()?;
    (n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_992.0).then_some(n as u64)
}

fn usize_or(o: &Obj, key: &str, default: usize) -> Option<usize> {
    Some(o.opt_u64(key)?.map_or(default, |n| n as usize))
}

fn limits(o: &Obj) -> Option<Limits> {
    Some(Limits {
        max_frame_bytes: o.u64("max_frame_bytes")? as usize,
        max_text_bytes: o.u64("max_text_bytes")? as usize,
        max_name_chars: o.u64("max_name_chars")? as usize,
        max_room_chars: o.u64("max_room_chars")? as usize,
        max_rooms: o.u64("max_rooms")? as usize,
        max_history: usize_or(o, "max_history", Limits::DEFAULT_MAX_HISTORY)?,
    })
}

/// Decodes one text frame from the server; `None` if it is not a frame this
/// client understands (a newer server's, or a malformed one).
pub fn decode(text: &str) -> Option<ServerMsg> {
    let o = Obj(JSON::parse(text).ok()?);
    if !o.0.is_object() {
        return None;
    }
    Some(match o.str("type")?.as_str() {
        "welcome" => ServerMsg::Welcome {
            user: o.str("user")?,
            protocol: o.u64("protocol")? as u32,
            heartbeat_ms: o.u64("heartbeat_ms")?,
            idle_timeout_ms: o.u64("idle_timeout_ms")?,
            server_time: o.u64("server_time")?,
            limits: limits(&o.field("limits"))?,
        },
        "presence" => ServerMsg::Presence {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "joined" => ServerMsg::Joined {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "leave_ok" => ServerMsg::LeaveOk {
            room: o.str("room")?,
        },
        "left" => ServerMsg::Left {
            room: o.str("room")?,
            users: o.strings("users")?,
        },
        "message" => ServerMsg::Message {
            room: o.str("room")?,
            seq: o.u64("seq")?,
            from: o.str("from")?,
            text: o.str("text")?,
            sent_at: o.u64("sent_at")?,
        },
        "history" => ServerMsg::History {
            room: o.str("room")?,
            messages: o.list("messages", |m| {
                let m = Obj(m);
                Some(HistoryMessage {
                    seq: m.u64("seq")?,
                    from: m.str("from")?,
                    text: m.str("text")?,
                    sent_at: m.u64("sent_at")?,
                })
            })?,
            has_more: o.bool("has_more")?,
            before: o.opt_u64("before")?,
            resync: optional(o.get("resync"), |v| v.as_bool())?.unwrap_or(false),
        },
        "ack" => ServerMsg::Ack {
            client_id: o.opt_str("client_id")?,
            room: o.opt_str("room")?,
            seq: o.opt_u64("seq")?,
        },
        "direct" => ServerMsg::Direct {
            from: o.str("from")?,
            to: o.str("to")?,
            text: o.str("text")?,
            sent_at: o.u64("sent_at")?,
        },
        "renamed" => ServerMsg::Renamed {
            room: o.opt_str("room")?,
            from: o.str("from")?,
            to: o.str("to")?,
        },
        "rooms" => ServerMsg::Rooms {
            rooms: o.list("rooms", |r| {
                let r = Obj(r);
                Some(RoomInfo {
                    room: r.str("room")?,
                    members: r.u64("members")? as usize,
                })
            })?,
        },
        "typing" => ServerMsg::Typing {
            room: o.str("room")?,
            user: o.str("user")?,
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

/// A JSON object being built; fields set to `None` are left out, as serde's
/// `skip_serializing_if = "Option::is_none"` does.
struct Out(Object);

impl Out {
    fn new(kind: &str) -> Out {
        Out(Object::new()).set("type", kind)
    }

    fn set(self, key: &str, value: impl Into<JsValue>) -> Out {
        let _ = Reflect::set(&self.0, &JsValue::from_str(key), &value.into());
        self
    }

    fn opt(self, key: &str, value: Option<impl Into<JsValue>>) -> Out {
        match value {
            Some(value) => self.set(key, value),
            None => self,
        }
    }
}

/// A number as JSON writes it (whole numbers up to 2^53 are exact).
fn num(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// Encodes one frame for the server: the same JSON serde writes for it.
pub fn encode(msg: &ClientMsg) -> String {
    let out = match msg {
        ClientMsg::Hello { name } => Out::new("hello").set("name", name),
        ClientMsg::Join { room, since } => Out::new("join")
            .set("room", room)
            .opt("since", since.map(num)),
        ClientMsg::Leave { room } => Out::new("leave").set("room", room),
        ClientMsg::Send {
            room,
            text,
            client_id,
        } => Out::new("send")
            .set("room", room)
            .set("text", text)
            .opt("client_id", client_id.as_deref()),
        ClientMsg::Direct {
            to,
            text,
            client_id,
        } => Out::new("direct")
            .set("to", to)
            .set("text", text)
            .opt("client_id", client_id.as_deref()),
        ClientMsg::Rename { name } => Out::new("rename").set("name", name),
        ClientMsg::Who { room } => Out::new("who").set("room", room),
        ClientMsg::Rooms => Out::new("rooms"),
        ClientMsg::History {
            room,
            before,
            limit,
        } => Out::new("history")
            .set("room", room)
            .opt("before", before.map(num))
            .opt("limit", limit.map(|n| num(n.into()))),
        ClientMsg::Typing { room } => Out::new("typing").set("room", room),
        ClientMsg::Ping { id } => Out::new("ping").opt("id", id.map(num)),
        ClientMsg::Quit => Out::new("quit"),
    };
    stringify(&out.0)
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
