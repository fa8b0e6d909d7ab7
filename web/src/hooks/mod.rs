//! Custom hooks. [`use_chat`] keeps the state reducer and starts the
//! connection task; components only see its handle.

mod use_chat;

pub use use_chat::{use_chat, UseChatHandle};
