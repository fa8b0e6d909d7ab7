//! Limits the server enforces, with their defaults; sent to clients in `welcome`.

use serde::{Deserialize, Serialize};

/// The limits a client must respect. Every one is a server setting; these are
/// the defaults. `docs/protocol.md` lists them with their error and close codes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest WebSocket message the server reads; larger closes with 1009.
    pub max_frame_bytes: usize,
    /// Longest message text in bytes (UTF-8); longer gets `text_too_long`.
    pub max_text_bytes: usize,
    /// Longest user name in characters.
    pub max_name_chars: usize,
    /// Longest room name in characters.
    pub max_room_chars: usize,
    /// How many rooms one connection may be in at once.
    pub max_rooms: usize,
    /// Most messages one `history` answer carries.
    #[serde(default = "default_max_history")]
    pub max_history: usize,
    /// Most `attachments` one `send` may carry.
    #[serde(default = "default_max_files_per_message")]
    pub max_files_per_message: usize,
    /// Largest file one upload may be (`POST /api/files`); a client refuses
    /// a larger one before sending a byte.
    #[serde(default = "default_max_file_bytes")]
    pub max_file_bytes: u64,
    /// How long after sending its author may `edit` a message, in
    /// milliseconds; later gets `edit_window_passed`. Deleting has no window.
    #[serde(default = "default_edit_window_ms")]
    pub edit_window_ms: u64,
    /// How many private conversations one connection may be in at once
    /// (apart from `max_rooms`); also the most one `conversations` answer
    /// lists.
    #[serde(default = "default_max_conversations")]
    pub max_conversations: usize,
}

fn default_max_conversations() -> usize {
    Limits::DEFAULT_MAX_CONVERSATIONS
}

fn default_edit_window_ms() -> u64 {
    Limits::DEFAULT_EDIT_WINDOW_MS
}

fn default_max_file_bytes() -> u64 {
    Limits::DEFAULT_MAX_FILE_BYTES
}

fn default_max_files_per_message() -> usize {
    Limits::DEFAULT_MAX_FILES_PER_MESSAGE
}

fn default_max_history() -> usize {
    Limits::DEFAULT_MAX_HISTORY
}

impl Limits {
    pub const DEFAULT_MAX_FRAME_BYTES: usize = 64 * 1024;
    pub const DEFAULT_MAX_TEXT_BYTES: usize = 16 * 1024;
    pub const DEFAULT_MAX_ROOMS: usize = 50;
    pub const DEFAULT_MAX_CONVERSATIONS: usize = 100;
    pub const DEFAULT_MAX_HISTORY: usize = 200;
    pub const DEFAULT_MAX_FILES_PER_MESSAGE: usize = 10;
    pub const DEFAULT_MAX_FILE_BYTES: u64 = 25 * 1024 * 1024;
    /// An hour.
    pub const DEFAULT_EDIT_WINDOW_MS: u64 = 60 * 60 * 1000;
    /// Longest `search` query in bytes (UTF-8).
    pub const MAX_SEARCH_BYTES: usize = 200;
    /// Most words one `search` query may hold.
    pub const MAX_SEARCH_WORDS: usize = 10;
    /// Most hits one `search_results` page carries (and its default).
    pub const MAX_SEARCH_RESULTS: usize = 50;
    pub const DEFAULT_SEARCH_RESULTS: usize = 20;
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: Self::DEFAULT_MAX_FRAME_BYTES,
            max_text_bytes: Self::DEFAULT_MAX_TEXT_BYTES,
            max_name_chars: crate::names::MAX_NAME_CHARS,
            max_room_chars: crate::names::MAX_ROOM_CHARS,
            max_rooms: Self::DEFAULT_MAX_ROOMS,
            max_history: Self::DEFAULT_MAX_HISTORY,
            max_files_per_message: Self::DEFAULT_MAX_FILES_PER_MESSAGE,
            max_file_bytes: Self::DEFAULT_MAX_FILE_BYTES,
            edit_window_ms: Self::DEFAULT_EDIT_WINDOW_MS,
            max_conversations: Self::DEFAULT_MAX_CONVERSATIONS,
        }
    }
}
