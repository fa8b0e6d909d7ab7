//! The UI pieces, one per file. Each owns its props and reports what the
//! user did through callbacks; none of them touches the socket. A piece
//! with state of its own is a view hook run by the app's one component
//! type, [`part::Part`]; the others are plain functions of their props.

pub mod auth;
pub mod chat_view;
pub mod composer;
pub mod message_list;
pub mod message_tools;
pub mod notice;
pub mod part;
pub mod presence;
pub mod room_list;
pub mod search;
pub mod status;
pub mod user_menu;
