//! The hubbub wire protocol, shared by the server and every client.
//!
//! Everything both sides must agree on lives here and nowhere else: the JSON
//! messages ([`ClientMsg`], [`ServerMsg`]), the stable error codes
//! ([`ErrorCode`]), the WebSocket close codes ([`close`]), the default limits
//! ([`Limits`]), the rules for user and room names and `@name` mentions
//! ([`names`]) and what a reaction may be ([`emoji`]).
//!
//! The crate has no runtime dependencies beyond serde so it compiles for
//! `wasm32-unknown-unknown` (the web app) as well as for the server.
//! `docs/protocol.md` documents the same things for humans; keep them in step.

pub mod close;
pub mod emoji;
mod error;
mod limits;
mod msg;
pub mod names;

pub use error::ErrorCode;
pub use limits::Limits;
pub use msg::{
    decode_client, Attachment, ClientMsg, ConversationInfo, DecodeError, Event, HistoryMessage,
    Quote, RoomInfo, SearchHit, ServerMsg,
};

/// Version of the protocol spoken by this build, sent in `welcome`.
pub const PROTOCOL_VERSION: u32 = 1;
