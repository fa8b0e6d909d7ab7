//! What a message offers besides its text: its actions (React, Reply,
//! and on one's own Edit and Delete), the emoji picker, its reactions,
//! the inline edit form, the delete confirmation and a reply's quote.
//!
//! Written as markup strings, not with `html!`: each `html!` element is
//! code in the bundle (its construction, attributes and diffing), where a
//! string is a few bytes of data, and these parts have many elements and
//! change rarely. Every piece of text from a user (names, emoji, quotes,
//! the text being edited) goes through [`esc`], which writes `&`, `<`,
//! `>`, `"` and `'` as entities, so nothing a user typed can become
//! markup (docs/security.md). Their buttons say what they do with
//! `data-act` (and `data-emoji`, `data-on`, `data-quote`), and their forms
//! are told apart by class: the message list has one listener for each
//! kind of event for all of them, as it has one for all thumbnails.

use hubbub_protocol::emoji::QUICK;
use hubbub_protocol::Quote;
use yew::prelude::*;

/// `menu` of the list: nothing open.
pub const CLOSED: u8 = 0;
/// `menu` of the list: the emoji picker of a message is open.
pub const PICKING: u8 = 1;
/// `menu` of the list: a message asks whether to delete it.
pub const CONFIRMING: u8 = 2;

/// Appends `text` to `out` as markup text (or an attribute value).
pub fn esc(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// Markup written here, as Yew nodes.
pub fn raw(markup: String) -> Html {
    Html::from_html_unchecked(markup.into())
}

/// A reply's quote of its original; a click brings the original into view.
pub fn quote(quote: &Quote) -> Html {
    let mut out = format!(
        "<button type=\"button\" class=\"quote\" data-act=\"quote\" data-quote=\"{}\" \
         title=\"Show the original message\"><span class=\"from\">",
        quote.seq
    );
    esc(&mut out, &quote.from);
    out.push_str("</span> ");
    esc(&mut out, &quote.text);
    out.push_str("</button>");
    raw(out)
}

/// The inline edit form of a message, holding `text`: Enter or Save
/// saves, Escape or Cancel cancels (the list's listeners).
pub fn edit_form(text: &str) -> Html {
    // The line break after `<textarea>` is not part of its value: a text
    // that starts with one keeps it.
    let mut out = String::from(
        "<form class=\"edit-form\"><label for=\"edit-input\" class=\"sr-only\">Edit message</label>\
         <textarea id=\"edit-input\" class=\"composer-input\" rows=\"2\">\n",
    );
    esc(&mut out, text);
    out.push_str(
        "</textarea><div class=\"edit-buttons\">\
         <button class=\"button primary small\" type=\"submit\">Save</button>\
         <button class=\"button small\" type=\"button\" data-act=\"cancel-edit\">Cancel</button>\
         <span class=\"muted small\">Enter to save · Escape to cancel</span></div></form>",
    );
    raw(out)
}

/// What a message shows under its text: "(edited)", its reactions (each
/// emoji, how many, who on hover; a click puts or takes back this user's),
/// the delete question or the emoji picker if open (`menu`), and its
/// actions (shown on hover and when focus is in it). `actions` is `None`
/// for what cannot be acted on (a deletion, the message being edited),
/// else whether it is `(own, editable)`.
pub fn under(
    edited: bool,
    reactions: &[(String, Vec<String>)],
    me: &str,
    menu: u8,
    actions: Option<(bool, bool)>,
    connected: bool,
) -> Html {
    let mut out = String::new();
    if edited {
        out.push_str("<span class=\"edited muted small\">(edited)</span>");
    }
    if !reactions.is_empty() {
        out.push_str("<div class=\"reactions\">");
        for (emoji, users) in reactions {
            let mut label = format!("{emoji} {}: ", users.len());
            label.push_str(&users.join(", "));
            emoji_button(&mut out, emoji, users, me, Some(&label));
        }
        out.push_str("</div>");
    }
    if menu == CONFIRMING {
        out.push_str(
            "<div class=\"confirm\" role=\"alertdialog\" aria-label=\"Delete this message?\">\
             <span>Delete this message for everyone?</span>\
             <button class=\"button small danger\" type=\"button\" data-act=\"really-delete\">Delete</button>\
             <button class=\"button small\" type=\"button\" data-act=\"cancel\">Cancel</button></div>",
        );
    }
    if menu == PICKING {
        out.push_str("<div class=\"picker card\" role=\"group\" aria-label=\"React with\">");
        for emoji in QUICK {
            let users = reactions
                .iter()
                .find(|(e, _)| e == emoji)
                .map_or(&[][..], |(_, u)| u.as_slice());
            emoji_button(&mut out, emoji, users, me, None);
        }
        out.push_str(
            "<form class=\"emoji-form\"><input class=\"input input-small\" type=\"text\" \
             aria-label=\"Another emoji\" placeholder=\"Other…\" maxlength=\"40\" \
             autocomplete=\"off\"></form></div>",
        );
    }
    if let Some((own, editable)) = actions {
        out.push_str("<div class=\"actions\" role=\"toolbar\" aria-label=\"Message actions\">");
        let expanded = if menu == PICKING { "true" } else { "false" };
        tool(&mut out, "react", "☺", "React", Some(expanded), connected);
        tool(&mut out, "reply", "↩", "Reply", None, connected);
        if own && editable {
            tool(&mut out, "edit", "✎", "Edit", None, connected);
        }
        if own {
            tool(&mut out, "delete", "🗑", "Delete", None, connected);
        }
        out.push_str("</div>");
    }
    raw(out)
}

/// One action button.
fn tool(
    out: &mut String,
    act: &str,
    icon: &str,
    label: &str,
    expanded: Option<&str>,
    connected: bool,
) {
    out.push_str("<button type=\"button\" class=\"icon-button\" data-act=\"");
    out.push_str(act);
    out.push_str("\" aria-label=\"");
    out.push_str(label);
    out.push_str("\" title=\"");
    out.push_str(label);
    if let Some(expanded) = expanded {
        out.push_str("\" aria-expanded=\"");
        out.push_str(expanded);
    }
    out.push('"');
    if !connected {
        out.push_str(" disabled");
    }
    out.push_str("><span aria-hidden=\"true\">");
    out.push_str(icon);
    out.push_str("</span></button>");
}

/// A button that puts (`data-on="1"`) or takes back this user's `emoji`,
/// pressed when this user's is on; with how many put it, if any.
fn emoji_button(out: &mut String, emoji: &str, users: &[String], me: &str, label: Option<&str>) {
    let pressed = users.iter().any(|u| u == me);
    out.push_str("<button type=\"button\" class=\"emoji\" data-act=\"emoji\" data-emoji=\"");
    esc(out, emoji);
    out.push_str(if pressed {
        "\" data-on=\"0\" aria-pressed=\"true\""
    } else {
        "\" data-on=\"1\" aria-pressed=\"false\""
    });
    if let Some(label) = label {
        out.push_str(" title=\"");
        esc(out, label);
        out.push_str("\" aria-label=\"");
        esc(out, label);
        out.push('"');
    }
    out.push('>');
    esc(out, emoji);
    if !users.is_empty() {
        out.push_str(&format!(" {}", users.len()));
    }
    out.push_str("</button>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped() {
        let mut out = String::new();
        esc(&mut out, "<img src=x onerror='a(\"1\")'> & 👍");
        assert_eq!(
            out,
            "&lt;img src=x onerror=&#39;a(&quot;1&quot;)&#39;&gt; &amp; 👍"
        );
    }

    #[test]
    fn a_reaction_says_who_and_whether_it_is_mine() {
        let mut out = String::new();
        let users = vec!["al".to_string(), "<b>".to_string()];
        emoji_button(&mut out, "👍", &users, "al", Some("👍 2: al, <b>"));
        assert_eq!(
            out,
            "<button type=\"button\" class=\"emoji\" data-act=\"emoji\" data-emoji=\"👍\" \
             data-on=\"0\" aria-pressed=\"true\" title=\"👍 2: al, &lt;b&gt;\" \
             aria-label=\"👍 2: al, &lt;b&gt;\">👍 2</button>"
        );
    }
}
