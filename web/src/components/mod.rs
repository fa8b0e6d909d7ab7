//! The UI pieces. Each component owns its props and reports what the user
//! did through callbacks; none of them touches the socket.

pub mod auth;
pub mod chat_view;
pub mod composer;
pub mod message_list;
pub mod notice;
pub mod part;
pub mod presence;
pub mod room_list;
pub mod status;
pub mod user_menu;
