//! Custom hooks. [`use_chat`] owns the socket, the reconnect logic and the
//! state reducer; components only see its handle.

mod use_chat;

pub use use_chat::use_chat;
