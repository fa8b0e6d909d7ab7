//! `Part`: the one Yew component type of the app. Every piece of the UI
//! that keeps state of its own (the app itself, the sign-in screen, the
//! account menu, the join form, a chat's timeline and its message box) is
//! a [`Part`] whose [`Piece`] says which; the piece's view is a hook
//! (`use_app`, `use_auth_screen`, ...) run by the part.
//!
//! Why one type, not one component per piece: each component type is its
//! own copy of Yew's lifecycle code in the bundle (~0.8 KB gzipped each);
//! one type keeps the behaviour of separate components (each part has its
//! own state, re-renders on its own, and is skipped when its props are
//! equal) for one copy. A part keeps its piece for life: every `Part` is
//! written with a `key` naming its piece, and Yew only reuses a component
//! whose type and key both match, so a part is never handed another
//! piece's props (its hooks would not match).

use yew::functional::{Hook, HookContext};
use yew::prelude::*;

use super::auth::{use_auth_screen, AuthProps};
use super::composer::{use_composer, ComposerProps};
use super::message_list::{use_message_list, MessageListProps};
use super::room_list::{use_join_form, JoinFormProps};
use super::user_menu::{use_user_menu, UserMenuProps};

/// Which piece of the UI a [`Part`] is, with that piece's props.
#[derive(PartialEq)]
pub enum Piece {
    /// The whole app (the root; see `main.rs`).
    App,
    Auth(AuthProps),
    UserMenu(UserMenuProps),
    JoinForm(JoinFormProps),
    MessageList(MessageListProps),
    Composer(ComposerProps),
}

#[derive(Properties, PartialEq)]
pub struct PartProps {
    pub piece: Piece,
}

#[function_component(Part)]
pub fn part(props: &PartProps) -> Html {
    use_piece(&props.piece)
}

/// Runs the view hook of `piece`. (A hook written out by hand: Yew's
/// `#[hook]` does not let a hook be chosen by a `match`, which is safe
/// here because a part's piece never changes; see the module doc.)
fn use_piece(piece: &Piece) -> impl '_ + Hook<Output = Html> {
    PieceHook(piece)
}

struct PieceHook<'a>(&'a Piece);

impl Hook for PieceHook<'_> {
    type Output = Html;

    fn run(self, ctx: &mut HookContext) -> Html {
        match self.0 {
            Piece::App => crate::use_app().run(ctx),
            Piece::Auth(props) => use_auth_screen(props).run(ctx),
            Piece::UserMenu(props) => use_user_menu(props).run(ctx),
            Piece::JoinForm(props) => use_join_form(props).run(ctx),
            Piece::MessageList(props) => use_message_list(props).run(ctx),
            Piece::Composer(props) => use_composer(props).run(ctx),
        }
    }
}
