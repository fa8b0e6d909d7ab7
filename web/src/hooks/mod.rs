//! Custom hooks. [`use_chat`] keeps the state reducer and starts the
//! connection task; components only see its handle. [`use_focus`] moves
//! the keyboard focus; [`use_every`] dispatches on a timer.

mod use_chat;
mod use_every;
mod use_focus;

pub use use_chat::{use_chat, UseChatHandle};
pub use use_every::use_every;
pub use use_focus::use_focus;
