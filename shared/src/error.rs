//! Stable error codes carried by `error` frames.

use serde::{Deserialize, Serialize};

/// Why a request was refused. The code is stable (clients match on it); the
/// accompanying `message` is for humans and may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame was not valid JSON.
    BadJson,
    /// The JSON had no string `type` field.
    MissingType,
    /// The `type` is not one this server knows.
    UnknownType,
    /// A field was missing or had the wrong type.
    BadField,
    /// A binary frame arrived; the protocol is JSON text only.
    BinaryUnsupported,
    /// A request other than `hello` came before `hello`.
    HelloRequired,
    /// `hello` was sent twice on one connection.
    AlreadyHello,
    /// The user name breaks the name rules.
    InvalidName,
    /// Someone online already has that name (names are unique, ignoring case).
    NameTaken,
    /// The room name breaks the room name rules.
    InvalidRoom,
    /// The request names a room this connection has not joined.
    NotInRoom,
    /// Joining would exceed the rooms-per-connection limit.
    TooManyRooms,
    /// The message text is empty or only white space.
    EmptyText,
    /// The message text is longer than `max_text_bytes`.
    TextTooLong,
    /// An `open` names nobody: no account, and no guest online, by that
    /// name; or a `send` to a conversation whose guest has left.
    UnknownUser,
    /// The client sends faster than its rate limit allows.
    RateLimited,
    /// The server cannot take the request now (e.g. storage is backed up); retry later.
    Unavailable,
    /// Not allowed for this user (e.g. renaming a registered account, a
    /// guest where the server requires signing in, or someone else's
    /// conversation).
    Forbidden,
    /// An `attachments` id is not a file this user uploaded.
    UnknownFile,
    /// More `attachments` than `max_files_per_message`.
    TooManyFiles,
    /// An `edit`, `delete`, `react` or `reply_to` names a `seq` that is not
    /// a message of the room (never said, deleted, gone with retention, or
    /// itself an event).
    UnknownMessage,
    /// An `edit` or `delete` of someone else's message.
    NotAuthor,
    /// An `edit` after the message's edit window (`edit_window_ms`) closed.
    EditWindowPassed,
    /// A `react` whose `emoji` is not one emoji.
    InvalidEmoji,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 24] = [
        ErrorCode::BadJson,
        ErrorCode::MissingType,
        ErrorCode::UnknownType,
        ErrorCode::BadField,
        ErrorCode::BinaryUnsupported,
        ErrorCode::HelloRequired,
        ErrorCode::AlreadyHello,
        ErrorCode::InvalidName,
        ErrorCode::NameTaken,
        ErrorCode::InvalidRoom,
        ErrorCode::NotInRoom,
        ErrorCode::TooManyRooms,
        ErrorCode::EmptyText,
        ErrorCode::TextTooLong,
        ErrorCode::UnknownUser,
        ErrorCode::RateLimited,
        ErrorCode::Unavailable,
        ErrorCode::Forbidden,
        ErrorCode::UnknownFile,
        ErrorCode::TooManyFiles,
        ErrorCode::UnknownMessage,
        ErrorCode::NotAuthor,
        ErrorCode::EditWindowPassed,
        ErrorCode::InvalidEmoji,
    ];

    /// The code spelled `code` on the wire (the inverse of [`Self::as_str`]),
    /// for clients that decode frames without serde.
    pub fn from_code(code: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == code)
    }

    /// The code as it appears on the wire, e.g. `"bad_json"`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::MissingType => "missing_type",
            ErrorCode::UnknownType => "unknown_type",
            ErrorCode::BadField => "bad_field",
            ErrorCode::BinaryUnsupported => "binary_unsupported",
            ErrorCode::HelloRequired => "hello_required",
            ErrorCode::AlreadyHello => "already_hello",
            ErrorCode::InvalidName => "invalid_name",
            ErrorCode::NameTaken => "name_taken",
            ErrorCode::InvalidRoom => "invalid_room",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::TooManyRooms => "too_many_rooms",
            ErrorCode::EmptyText => "empty_text",
            ErrorCode::TextTooLong => "text_too_long",
            ErrorCode::UnknownUser => "unknown_user",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::UnknownFile => "unknown_file",
            ErrorCode::TooManyFiles => "too_many_files",
            ErrorCode::UnknownMessage => "unknown_message",
            ErrorCode::NotAuthor => "not_author",
            ErrorCode::EditWindowPassed => "edit_window_passed",
            ErrorCode::InvalidEmoji => "invalid_emoji",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in ErrorCode::ALL {
            // A new variant missing from ALL fails to compile here.
            match code {
                ErrorCode::BadJson
                | ErrorCode::MissingType
                | ErrorCode::UnknownType
                | ErrorCode::BadField
                | ErrorCode::BinaryUnsupported
                | ErrorCode::HelloRequired
                | ErrorCode::AlreadyHello
                | ErrorCode::InvalidName
                | ErrorCode::NameTaken
                | ErrorCode::InvalidRoom
                | ErrorCode::NotInRoom
                | ErrorCode::TooManyRooms
                | ErrorCode::EmptyText
                | ErrorCode::TextTooLong
                | ErrorCode::UnknownUser
                | ErrorCode::RateLimited
                | ErrorCode::Unavailable
                | ErrorCode::Forbidden
                | ErrorCode::UnknownFile
                | ErrorCode::TooManyFiles
                | ErrorCode::UnknownMessage
                | ErrorCode::NotAuthor
                | ErrorCode::EditWindowPassed
                | ErrorCode::InvalidEmoji => {}
            }
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(ErrorCode::from_code(code.as_str()), Some(code));
        }
        assert_eq!(ErrorCode::from_code("no_such_code"), None);
    }
}
