//! What the app remembers in `localStorage` between visits: the guest name,
//! the joined rooms and the chat last on screen.
//!
//! Values are stored as JSON (as `gloo-storage` used to write them, so older
//! entries still read), encoded by the browser ([`crate::wire`]). Storage can
//! be full or disabled (private windows); every write is best effort and a
//! failed read is the same as nothing remembered.

use hubbub_protocol::names::is_conversation;
use js_sys::Array;
use wasm_bindgen::JsValue;
use web_sys::Storage;

use crate::state::Target;
use crate::wire;

const NAME_KEY: &str = "hubbub.name";
const ROOMS_KEY: &str = "hubbub.rooms";
const CURRENT_KEY: &str = "hubbub.current";

fn local() -> Option<Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The parsed JSON value under `key` (`undefined` when there is none).
fn get(key: &str) -> JsValue {
    match local().and_then(|s| s.get_item(key).ok().flatten()) {
        Some(text) => wire::parse(&text),
        None => JsValue::UNDEFINED,
    }
}

fn set(key: &str, value: &JsValue) {
    if let Some(storage) = local() {
        let _ = storage.set_item(key, &wire::stringify(value));
    }
}

fn delete(key: &str) {
    if let Some(storage) = local() {
        let _ = storage.remove_item(key);
    }
}

/// The guest name chosen last time.
pub fn name() -> Option<String> {
    get(NAME_KEY)
        .as_string()
        .filter(|n| crate::names::validate_name(n).is_ok())
}

pub fn set_name(name: Option<&str>) {
    match name {
        Some(name) => set(NAME_KEY, &name.into()),
        None => delete(NAME_KEY),
    }
}

pub fn rooms() -> Vec<String> {
    let value = get(ROOMS_KEY);
    if !Array::is_array(&value) {
        return Vec::new();
    }
    let mut rooms: Vec<String> = Array::from(&value)
        .iter()
        .filter_map(|r| r.as_string())
        .filter(|r| hubbub_protocol::names::validate_room(r).is_ok())
        .collect();
    rooms.dedup();
    rooms
}

pub fn set_rooms(rooms: &[String]) {
    let array: Array = rooms.iter().map(|r| JsValue::from_str(r)).collect();
    set(ROOMS_KEY, &array);
}

/// The room last on screen (only rooms are remembered: the server lists
/// the conversations after `welcome`, once the first screen is drawn).
pub fn current() -> Option<Target> {
    get(CURRENT_KEY).as_string().map(Target)
}

pub fn set_current(target: Option<&Target>) {
    match target {
        Some(Target(room)) if is_conversation(room) => {}
        Some(Target(room)) => set(CURRENT_KEY, &room.into()),
        None => delete(CURRENT_KEY),
    }
}
