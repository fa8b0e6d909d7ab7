//! What the app remembers in `localStorage` between visits: the display name,
//! the joined rooms and the chat last on screen.
//!
//! Storage can be full or disabled (private windows); every write is best
//! effort and a failed read is the same as nothing remembered.

use gloo_storage::{LocalStorage, Storage};

use crate::state::Target;

const NAME_KEY: &str = "hubbub.name";
const ROOMS_KEY: &str = "hubbub.rooms";
const CURRENT_KEY: &str = "hubbub.current";

pub fn name() -> Option<String> {
    LocalStorage::get::<String>(NAME_KEY)
        .ok()
        .filter(|n| hubbub_protocol::names::validate_name(n).is_ok())
}

pub fn set_name(name: Option<&str>) {
    match name {
        Some(name) => {
            let _ = LocalStorage::set(NAME_KEY, name);
        }
        None => LocalStorage::delete(NAME_KEY),
    }
}

pub fn rooms() -> Vec<String> {
    let mut rooms = LocalStorage::get::<Vec<String>>(ROOMS_KEY).unwrap_or_default();
    rooms.retain(|r| hubbub_protocol::names::validate_room(r).is_ok());
    rooms.dedup();
    rooms
}

pub fn set_rooms(rooms: &[String]) {
    let _ = LocalStorage::set(ROOMS_KEY, rooms);
}

/// The chat last on screen (only rooms are remembered).
pub fn current() -> Option<Target> {
    LocalStorage::get::<String>(CURRENT_KEY)
        .ok()
        .map(Target::Room)
}

pub fn set_current(target: Option<&Target>) {
    match target {
        Some(Target::Room(room)) => {
            let _ = LocalStorage::set(CURRENT_KEY, room);
        }
        Some(Target::Direct(_)) => {}
        None => LocalStorage::delete(CURRENT_KEY),
    }
}
