//! `use_focus`: gives the keyboard focus to an element when it appears, or
//! when what it is part of changes.

use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

/// Focuses `node` after the first render and after each render where `key`
/// or `on` changed, if `on` holds; with `select`, an input's text is then
/// selected too. One hook for the app's focus effects (the sign-in form's
/// first field, the message box, the lightbox, the rename field): each
/// `use_effect_with` of their own was a copy of Yew's effect code in the
/// bundle.
#[hook]
pub fn use_focus(node: &NodeRef, key: u8, on: bool, select: bool) {
    let node = node.clone();
    use_effect_with((key, on), move |&(_, on)| {
        if let (true, Some(el)) = (on, node.cast::<HtmlElement>()) {
            let _ = el.focus();
            if let (true, Some(input)) = (select, el.dyn_ref::<HtmlInputElement>()) {
                input.select();
            }
        }
    });
}
