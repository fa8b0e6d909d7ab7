//! A chat's timeline: messages, presence notices and own messages on their
//! way. Text is always rendered as text.
//!
//! Scrolling follows the reader: at the bottom, new messages scroll into
//! view; scrolled up, the view stays put and a "New messages ↓" pill says
//! that more arrived. Older messages load by themselves when the reader
//! nears the top (or with the button), and the message being read stays
//! where it was on screen: the distance to the bottom of the list is kept
//! across the render that adds them.
//!
//! Attachments: an image shows as its thumbnail (sized before it loads, so
//! nothing jumps) and opens full size in a lightbox (Esc closes it, ← and →
//! go through the chat's images, focus comes back to the thumbnail); any
//! other file is a card with a download link. Only what the server decoded
//! as an image is ever put in an `<img>`. A guest's links carry its upload
//! token, which changes with each `welcome`.

use std::rc::Rc;

use hubbub_protocol::emoji::validate_emoji;
use hubbub_protocol::{Attachment, ClientMsg, Quote};
use wasm_bindgen::JsCast;
use web_sys::{Element, HtmlElement};
use yew::prelude::*;

use super::message_tools::{self as tools, CLOSED, CONFIRMING, PICKING};
use super::user_menu::avatar;
use crate::fmt::{fit, full_time, iso_time, short_time, size};
use crate::hooks::use_focus;
use hubbub_client::pending::PendingSend;

use crate::state::{presence_text, same_name, Action, Chat, Copied, Entry};

/// Messages from one sender closer than this share one header.
const GROUP_MS: u64 = 5 * 60 * 1000;
/// Within this many pixels of the bottom, new messages scroll into view.
const STICK_PX: i32 = 80;
/// Within this many pixels of the top, older messages load by themselves.
const LOAD_OLDER_PX: i32 = 200;
/// Thumbnails are shown at most this many pixels a side (the server makes
/// them this size).
const THUMB_PX: u32 = 320;

#[derive(PartialEq)]
pub struct MessageListProps {
    pub chat: Copied<Chat>,
    pub connected: bool,
    /// This user's name, shown on own messages still on their way.
    pub me: Option<AttrValue>,
    /// A guest's upload token, for file links (`None` for an account).
    pub token: Option<AttrValue>,
    /// Own messages on their way to this chat, oldest first.
    pub pending: Copied<Vec<PendingSend>>,
    /// Forget a refused message (by `client_id`).
    pub on_dismiss: Callback<String>,
    /// Fetch the messages before this `seq`.
    pub on_load_older: Callback<u64>,
    /// The end of the chat is on screen (read, if the tab is visible).
    pub on_seen: Callback<()>,
    /// Times the tab became visible ([`crate::state::ChatState::visible`]).
    pub visible: u32,
    /// The `seq` of a message to bring into view (a search result): older
    /// pages are loaded until it is there.
    pub found: Option<u64>,
    /// Own messages sent after this time (the server's clock) may be edited.
    pub edit_after: u64,
    /// The message being edited, by `seq`.
    pub editing: Option<u64>,
    /// Send an `edit`, `delete` or `react` (without its `client_id`).
    pub on_change: Callback<ClientMsg>,
    /// Reply, edit, stop editing, or show a reply's original.
    pub on_action: Callback<Action>,
}

/// Puts the focus on the first element matching `selector`, if any.
pub fn focus(selector: &str) {
    let el = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector(selector).ok().flatten())
        .and_then(|el| el.dyn_into::<HtmlElement>().ok());
    if let Some(el) = el {
        let _ = el.focus();
    }
}

/// The `seq` of the message an event happened in.
fn seq_of(target: Option<web_sys::EventTarget>) -> Option<u64> {
    let el: Element = target?.dyn_into().ok()?;
    el.closest(".message")
        .ok()??
        .get_attribute("data-seq")?
        .parse()
        .ok()
}

/// What the list remembers between renders (not shown, so not state).
struct Scroll {
    /// Whether the view was at the bottom before this render.
    stick: bool,
    /// Distance from the bottom of the content to the bottom of the view,
    /// as of the last scroll or render: restored when older messages go in
    /// front.
    from_bottom: i32,
    /// The `before` of the older page asked for, until it arrives.
    asked: Option<u64>,
    /// The first and last entry shown by the last render, and the chat.
    shown: Option<(String, Option<u64>, Option<u64>)>,
    /// What opened the lightbox, to give the focus back to.
    opener: Option<HtmlElement>,
    /// The found message last brought into view.
    brought: Option<u64>,
    /// The message whose picker or delete question was open last, and which.
    menu: (u64, u8),
}

/// The timeline (a [`Piece`](super::part::Piece) of its own).
#[hook]
pub fn use_message_list(props: &MessageListProps) -> Html {
    let scroller = use_node_ref();
    let scroll = use_mut_ref(|| Scroll {
        stick: true,
        from_bottom: 0,
        asked: None,
        shown: None,
        opener: None,
        brought: None,
        menu: (0, CLOSED),
    });
    // Whether messages arrived below the view while scrolled up.
    let unseen = use_state(|| false);
    let chat = &props.chat;
    let first_seq = chat.first_seq().filter(|_| chat.has_more);
    {
        let scroller = scroller.clone();
        let scroll = scroll.clone();
        let unseen = unseen.clone();
        let now = (
            chat.target.0.clone(),
            chat.entries.first().map(|e| e.id()),
            chat.entries.last().map(|e| e.id()),
        );
        // Only someone else's message is news worth a pill.
        let news = matches!(
            chat.entries.last().map(|e| &**e),
            Some(Entry::Message { own: false, .. })
        );
        let pending = props.pending.len();
        let on_seen = props.on_seen.clone();
        let on_load_older = props.on_load_older.clone();
        let connected = props.connected;
        use_effect_with(
            (now, news, pending, props.visible, props.found, first_seq),
            move |(now, news, _, _, found, _)| {
                let Some(el) = scroller.cast::<Element>() else {
                    return;
                };
                let mut s = scroll.borrow_mut();
                let before = s.shown.replace(now.clone());
                let same_chat = before.as_ref().is_some_and(|b| b.0 == now.0);
                let older_in_front = same_chat && before.as_ref().is_some_and(|b| b.1 != now.1);
                let newer_below = same_chat && before.as_ref().is_some_and(|b| b.2 != now.2);
                if !same_chat || s.stick {
                    el.set_scroll_top(el.scroll_height());
                    s.stick = true;
                    if *unseen {
                        unseen.set(false);
                    }
                } else {
                    if older_in_front {
                        // Keep what was on screen where it was.
                        el.set_scroll_top(el.scroll_height() - el.client_height() - s.from_bottom);
                        s.asked = None;
                    }
                    if newer_below && *news && !*unseen {
                        unseen.set(true);
                    }
                }
                // A search result: into view once it is loaded, older
                // pages first if it is before them.
                if let Some(seq) = found.filter(|f| s.brought != Some(*f)) {
                    if let Ok(Some(msg)) = el.query_selector(".message[aria-current]") {
                        msg.scroll_into_view();
                        s.stick = false;
                        s.brought = Some(seq);
                    } else if let Some(first) = first_seq.filter(|&first| first > seq) {
                        if connected && s.asked != Some(first) {
                            s.asked = Some(first);
                            on_load_older.emit(first);
                        }
                    }
                }
                s.from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
                if s.stick {
                    on_seen.emit(());
                }
            },
        );
    }
    let onscroll = {
        let scroll = scroll.clone();
        let unseen = unseen.clone();
        let on_load_older = props.on_load_older.clone();
        let on_seen = props.on_seen.clone();
        let connected = props.connected;
        Callback::from(move |e: Event| {
            let el: Element = e.target_unchecked_into();
            let from_bottom = el.scroll_height() - el.scroll_top() - el.client_height();
            let mut s = scroll.borrow_mut();
            s.from_bottom = from_bottom;
            s.stick = from_bottom < STICK_PX;
            if s.stick {
                on_seen.emit(());
                if *unseen {
                    unseen.set(false);
                }
            }
            if let Some(first) = first_seq {
                if connected && el.scroll_top() < LOAD_OLDER_PX && s.asked != Some(first) {
                    s.asked = Some(first);
                    on_load_older.emit(first);
                }
            }
        })
    };
    let jump = {
        let scroller = scroller.clone();
        let scroll = scroll.clone();
        let unseen = unseen.clone();
        let on_seen = props.on_seen.clone();
        Callback::from(move |_: MouseEvent| {
            if let Some(el) = scroller.cast::<Element>() {
                el.set_scroll_top(el.scroll_height());
            }
            on_seen.emit(());
            let mut s = scroll.borrow_mut();
            s.stick = true;
            s.from_bottom = 0;
            unseen.set(false);
        })
    };
    // The chat's images, in order, for the lightbox.
    let images: Vec<&Attachment> = chat
        .entries
        .iter()
        .flat_map(|e| match &**e {
            Entry::Message { files, .. } => files.as_slice(),
            _ => &[],
        })
        .filter(|f| f.is_image())
        .collect();
    // The id of the image in the lightbox (empty: it is closed).
    let shown = use_state(String::new);
    let dialog = use_node_ref();
    // An opened lightbox takes the focus (its keys work at once).
    use_focus(&dialog, 0, !shown.is_empty(), false);
    let token = props.token.as_deref();
    // One listener per message's files: a click on a thumbnail opens it
    // (a click with a modifier key does what it does on any link).
    let open = {
        let shown = shown.clone();
        let scroll = scroll.clone();
        Callback::from(move |e: MouseEvent| {
            let Some(thumb) = closest(&e, ".thumb") else {
                return;
            };
            if e.ctrl_key() || e.meta_key() || e.shift_key() {
                return;
            }
            e.prevent_default();
            shown.set(thumb.get_attribute("data-id").unwrap_or_default());
            scroll.borrow_mut().opener = thumb.dyn_into().ok();
        })
    };
    // The message whose picker or delete question is open, and which.
    let menu = use_state(|| (0u64, CLOSED));
    {
        // What opens takes the focus: the picker's first emoji, the
        // delete question's button, the edit field. What closes gives it
        // back to the action that opened it (drawn anew by then).
        let key = (*menu, props.editing);
        let scroll = scroll.clone();
        use_effect_with(key, move |((seq, open), editing)| {
            let was = std::mem::replace(&mut scroll.borrow_mut().menu, (*seq, *open));
            match (*open, editing) {
                (PICKING, _) => focus(".picker button"),
                (CONFIRMING, _) => focus(".confirm .danger"),
                (_, Some(_)) => {
                    // The caret at the end of the text, ready to go on.
                    focus("#edit-input");
                    if let Some(area) = web_sys::window()
                        .and_then(|w| w.document())
                        .and_then(|d| d.get_element_by_id("edit-input"))
                        .and_then(|a| a.dyn_into::<web_sys::HtmlTextAreaElement>().ok())
                    {
                        let end = area.value().encode_utf16().count() as u32;
                        let _ = area.set_selection_range(end, end);
                    }
                }
                _ if was.1 != CLOSED => focus(&format!(
                    ".message[data-seq=\"{}\"] [data-act={}]",
                    was.0,
                    if was.1 == PICKING { "react" } else { "delete" }
                )),
                _ => {}
            }
        });
    }
    let me = props.me.clone().unwrap_or_default();
    let room = chat.target.0.clone();
    // One listener for every message's buttons (`data-act`).
    let act = {
        let (menu, chat, room) = (menu.clone(), chat.clone(), room.clone());
        let (on_change, on_action) = (props.on_change.clone(), props.on_action.clone());
        Callback::from(move |e: MouseEvent| {
            let Some(button) = closest(&e, "[data-act]") else {
                return;
            };
            let Some(seq) = seq_of(e.target()) else {
                return;
            };
            let attr = |name| button.get_attribute(name).unwrap_or_default();
            let room = room.clone();
            match attr("data-act").as_str() {
                "react" if *menu != (seq, PICKING) => menu.set((seq, PICKING)),
                "delete" => menu.set((seq, CONFIRMING)),
                "emoji" => {
                    on_change.emit(ClientMsg::React {
                        room,
                        seq,
                        emoji: attr("data-emoji"),
                        on: attr("data-on") == "1",
                        client_id: None,
                    });
                    menu.set((0, CLOSED));
                }
                "really-delete" => {
                    on_change.emit(ClientMsg::Delete {
                        room,
                        seq,
                        client_id: None,
                    });
                    menu.set((0, CLOSED));
                }
                "reply" => {
                    if let Some(Entry::Message { from, text, .. }) = chat.message(seq) {
                        on_action.emit(Action::Reply(Some(Quote::of(seq, from, text))));
                        focus("#composer-input");
                    }
                }
                "dm" => {
                    if let Some(Entry::Message { from, .. }) = chat.message(seq) {
                        on_action.emit(Action::Opening(from.clone()));
                        on_change.emit(ClientMsg::Open { with: from.clone() });
                    }
                }
                "edit" => on_action.emit(Action::Editing(Some(seq))),
                "cancel-edit" => {
                    on_action.emit(Action::Editing(None));
                    focus("#composer-input");
                }
                "quote" => {
                    let original: u64 = attr("data-quote").parse().unwrap_or_default();
                    // Already here: into view at once (the list's effect
                    // does it when older pages must load first).
                    if let Ok(Some(el)) = button.closest(".messages").map(|l| {
                        l.and_then(|l| {
                            l.query_selector(&format!("[data-seq=\"{original}\"]"))
                                .ok()
                                .flatten()
                        })
                    }) {
                        el.scroll_into_view();
                    }
                    on_action.emit(Action::ShowFound(room, original));
                }
                _ => menu.set((0, CLOSED)),
            }
        })
    };
    // Escape closes the picker or the delete question (the focus goes
    // back to the message's action), or cancels the edit; Enter in the
    // edit field saves.
    let onkeydown = {
        let (menu, on_action) = (menu.clone(), props.on_action.clone());
        Callback::from(move |e: KeyboardEvent| {
            let Some(target) = e.target().and_then(|t| t.dyn_into::<Element>().ok()) else {
                return;
            };
            let edit = target.closest(".edit-form").ok().flatten();
            match (e.key().as_str(), edit) {
                ("Escape", _) if menu.1 != CLOSED => menu.set((0, CLOSED)),
                ("Escape", Some(_)) => {
                    on_action.emit(Action::Editing(None));
                    focus("#composer-input");
                }
                ("Enter", Some(form)) if !e.shift_key() && !e.is_composing() => {
                    e.prevent_default();
                    if let Some(save) = form
                        .query_selector("[type=submit]")
                        .ok()
                        .flatten()
                        .and_then(|b| b.dyn_into::<HtmlElement>().ok())
                    {
                        save.click();
                    }
                }
                _ => return,
            }
            e.stop_propagation();
        })
    };
    // The edit form saves; the picker's field sends another emoji than
    // the quick six (one, or a notice says why not).
    let onsubmit = {
        let (chat, room, me, menu) = (chat.clone(), room.clone(), me.clone(), menu.clone());
        let (on_change, on_action) = (props.on_change.clone(), props.on_action.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            let (
                Some(seq),
                Some(Entry::Message {
                    text: old,
                    files,
                    reactions,
                    ..
                }),
            ) = (
                seq_of(e.target()),
                seq_of(e.target()).and_then(|s| chat.message(s)),
            )
            else {
                return;
            };
            let form: Element = e.target_unchecked_into();
            let value = form
                .query_selector("input,textarea")
                .ok()
                .flatten()
                .map(|f| {
                    js_sys::Reflect::get(&f, &"value".into())
                        .ok()
                        .and_then(|v| v.as_string())
                        .unwrap_or_default()
                })
                .unwrap_or_default();
            let room = room.clone();
            if form.class_name() == "emoji-form" {
                let emoji = value.trim().to_string();
                if let Err(why) = validate_emoji(&emoji) {
                    on_action.emit(Action::Notice(format!("Not a reaction: {why}.")));
                    return;
                }
                let on = !reactions
                    .iter()
                    .any(|(e, users)| *e == emoji && users.iter().any(|u| *u == *me));
                on_change.emit(ClientMsg::React {
                    room,
                    seq,
                    emoji,
                    on,
                    client_id: None,
                });
                menu.set((0, CLOSED));
                return;
            }
            let text = value.trim_end().to_string();
            if text.trim().is_empty() && files.is_empty() {
                return;
            }
            if text != *old {
                on_change.emit(ClientMsg::Edit {
                    room,
                    seq,
                    text,
                    client_id: None,
                });
            }
            on_action.emit(Action::Editing(None));
            focus("#composer-input");
        })
    };
    let view = View {
        found: props.found,
        token,
        open: &open,
        me: &me,
        edit_after: props.edit_after,
        editing: props.editing,
        menu: *menu,
        connected: props.connected,
    };
    let mut previous: Option<&Entry> = None;
    // "New messages" above the first one past the marker the user came
    // with (someone else's).
    let mut divider = chat.divider;
    let mut items = Vec::with_capacity(chat.entries.len() + 1);
    for entry in &chat.entries {
        let mut continued = matches!(
            (previous, &**entry),
            (
                Some(Entry::Message { from: a, sent_at: t0, .. }),
                Entry::Message { from: b, sent_at: t1, .. }
            ) if a == b && t1.saturating_sub(*t0) < GROUP_MS
        );
        previous = Some(entry);
        if let (
            Entry::Message {
                seq: Some(seq),
                own: false,
                ..
            },
            Some(marker),
        ) = (&**entry, divider)
        {
            if *seq > marker {
                divider = None;
                continued = false;
                items.push(html! {
                    <li key="new" class="divider" role="separator"><span>{ "New messages" }</span></li>
                });
            }
        }
        items.push(view_entry(entry, continued, &view));
    }
    // Pending messages continue the last group if it is our own.
    let after_own = matches!(
        chat.entries.last().map(|e| &**e),
        Some(Entry::Message { own: true, .. })
    );
    let pending = props.pending.iter().enumerate().map(|(i, p)| {
        let header = (i == 0 && !after_own).then_some(me.as_str());
        view_pending(p, header, props.connected, &props.on_dismiss)
    });
    let empty = chat.entries.is_empty() && props.pending.is_empty();
    let older = first_seq.map(|first| {
        let on_load_older = props.on_load_older.clone();
        let scroll = scroll.clone();
        let onclick = Callback::from(move |_: MouseEvent| {
            scroll.borrow_mut().asked = Some(first);
            on_load_older.emit(first);
        });
        html! {
            <div class="load-older">
                <button class="button small" type="button" {onclick} disabled={!props.connected}>
                    { "Load earlier messages" }
                </button>
            </div>
        }
    });
    html! {
        <div class="timeline-wrap">
            <div class="timeline" ref={scroller} {onscroll} tabindex="0" role="log"
                aria-live="polite" aria-relevant="additions"
                aria-label={format!("Messages in {}", chat.label())}>
                { for older }
                if empty {
                    <div class="timeline-empty">
                        <p class="muted">{ format!("This is the start of {}. Say hello!", chat.label()) }</p>
                    </div>
                }
                <ol class="messages" onclick={act} {onkeydown} {onsubmit}>
                    { for items }
                    { for pending }
                </ol>
            </div>
            if *unseen {
                <button class="new-messages" type="button" onclick={jump}>
                    { "New messages ↓" }
                </button>
            }
            { lightbox(&images, &shown, &scroll, &dialog, token) }
        </div>
    }
}

/// `path` with a guest's upload token, which links cannot carry in a header.
fn link(path: String, token: Option<&str>) -> String {
    match token {
        Some(token) => format!("{path}?token={token}"),
        None => path,
    }
}

/// The element matching `selector` that an event happened in (itself or
/// an ancestor).
fn closest(e: &MouseEvent, selector: &str) -> Option<Element> {
    let target: Element = e.target()?.dyn_into().ok()?;
    target.closest(selector).ok()?
}

/// A message's files: an image as its thumbnail, sized before it loads,
/// that opens the lightbox (`data-id`, one listener for them all); any
/// other file as a card whose icon and size (`data-size`) the stylesheet
/// draws. Only what the server decoded as an image gets an `<img>`.
fn view_files(files: &[Attachment], token: Option<&str>, open: &Callback<MouseEvent>) -> Html {
    let items = files.iter().map(|file| {
        let href = link(file.url(), token);
        match (file.thumb_url(), file.width, file.height) {
            (Some(thumb), Some(w), Some(h)) => {
                let (w, h) = fit(w, h, THUMB_PX);
                html! {
                    <a class="thumb" {href} data-id={file.id.clone()}>
                        <img src={link(thumb, token)} width={w.to_string()} height={h.to_string()}
                            alt={file.name.clone()} loading="lazy" />
                    </a>
                }
            }
            _ => html! {
                <a class="file-card" {href} download={file.name.clone()} data-size={size(file.size)}>
                    { file.name.clone() }
                </a>
            },
        }
    });
    html! { <div class="attachments" onclick={open.clone()}>{ for items }</div> }
}

/// The image `shown` full size over the page, with the chat's others a key
/// away (its buttons say where with `data-go`: an image's id, or nothing to
/// close); closing gives the focus back to what opened it.
fn lightbox(
    images: &[&Attachment],
    shown: &UseStateHandle<String>,
    scroll: &Rc<std::cell::RefCell<Scroll>>,
    dialog: &NodeRef,
    token: Option<&str>,
) -> Html {
    let Some(at) = images.iter().position(|i| i.id == **shown) else {
        return html! {};
    };
    let image = images[at];
    let count = images.len();
    let prev = images[(at + count - 1) % count].id.clone();
    let next = images[(at + 1) % count].id.clone();
    let go = {
        let shown = shown.clone();
        let scroll = scroll.clone();
        let dialog = dialog.clone();
        move |to: Option<String>| {
            let focus = match to {
                Some(_) => dialog.cast::<HtmlElement>(),
                None => scroll.borrow_mut().opener.take(),
            };
            if let Some(el) = focus {
                let _ = el.focus();
            }
            shown.set(to.unwrap_or_default());
        }
    };
    let onkeydown = {
        let go = go.clone();
        let (prev, next) = (prev.clone(), next.clone());
        let dialog = dialog.clone();
        Callback::from(move |e: KeyboardEvent| {
            let to = match e.key().as_str() {
                "Escape" => None,
                "ArrowLeft" => Some(prev.clone()),
                "ArrowRight" => Some(next.clone()),
                "Tab" => {
                    // A modal dialog keeps the focus: Tab cycles its buttons.
                    e.prevent_default();
                    cycle_focus(&dialog, e.shift_key());
                    return;
                }
                _ => return,
            };
            e.prevent_default();
            e.stop_propagation();
            go(to);
        })
    };
    // A button goes where it says; a click on the backdrop closes.
    let onclick = Callback::from(move |e: MouseEvent| {
        if let Some(button) = closest(&e, "[data-go]") {
            go(button.get_attribute("data-go").filter(|id| !id.is_empty()));
        } else if closest(&e, ".lightbox > img").is_none() {
            // (Yew listens at the app's root: `currentTarget` is not this.)
            go(None);
        }
    });
    html! {
        <div class="lightbox" ref={dialog.clone()} role="dialog" aria-modal="true"
            aria-label={image.name.clone()} tabindex="-1" {onkeydown} {onclick}
            data-caption={format!("{} · {} of {count}", image.name, at + 1)}>
            <img src={link(image.url(), token)} alt={image.name.clone()} />
            if count > 1 {
                <button type="button" class="lightbox-button prev" data-go={prev}
                    aria-label="Previous image">{ "‹" }</button>
                <button type="button" class="lightbox-button next" data-go={next}
                    aria-label="Next image">{ "›" }</button>
            }
            <button type="button" class="lightbox-button close" data-go=""
                aria-label="Close">{ "×" }</button>
        </div>
    }
}

/// Moves the focus to the next (`back`: previous) button of `dialog`,
/// around from the last to the first.
fn cycle_focus(dialog: &NodeRef, back: bool) {
    let Some(dialog) = dialog.cast::<Element>() else {
        return;
    };
    let Ok(buttons) = dialog.query_selector_all("button") else {
        return;
    };
    let n = buttons.length();
    if n == 0 {
        return;
    }
    let focused = dialog.owner_document().and_then(|d| d.active_element());
    let at = (0..n).find(|&i| {
        buttons
            .get(i)
            .zip(focused.as_ref())
            .is_some_and(|(b, f)| b.is_same_node(Some(f)))
    });
    let to = match (at, back) {
        (Some(i), false) => (i + 1) % n,
        (Some(i), true) => (i + n - 1) % n,
        (None, false) => 0,
        (None, true) => n - 1,
    };
    if let Some(button) = buttons
        .get(to)
        .and_then(|b| b.dyn_into::<HtmlElement>().ok())
    {
        let _ = button.focus();
    }
}

/// What every message's view needs from the list.
struct View<'a> {
    /// The `seq` of the message to bring into view.
    found: Option<u64>,
    token: Option<&'a str>,
    /// The thumbnails' listener.
    open: &'a Callback<MouseEvent>,
    me: &'a str,
    edit_after: u64,
    editing: Option<u64>,
    menu: (u64, u8),
    connected: bool,
}

fn view_entry(entry: &Entry, continued: bool, view: &View<'_>) -> Html {
    match entry {
        Entry::Presence {
            id,
            joined,
            left,
            at,
        } => html! {
            <li key={*id} class="system presence-notice">
                <span class="system-text">{ presence_text(joined, left) }</span>
                { time(*at) }
            </li>
        },
        Entry::System { id, text, at } => html! {
            <li key={*id} class="system">
                <span class="system-text">{ text.clone() }</span>
                { time(*at) }
            </li>
        },
        Entry::Message {
            id,
            seq,
            from,
            text,
            sent_at,
            own,
            files,
            reply_to,
            mentions,
            edited,
            deleted,
            reactions,
        } => {
            let mut class = String::from(if *own { "message own" } else { "message" });
            if continued {
                class.push_str(" continued");
            }
            if mentions.iter().any(|m| same_name(m, view.me)) && !own {
                class.push_str(" mentions-me");
            }
            let found = seq.is_some() && *seq == view.found;
            let editing = seq.is_some() && *seq == view.editing;
            // Only room messages that are still there can be acted on.
            let live = seq.filter(|_| !deleted && !editing);
            html! {
            <li key={*id} CLASS={class} data-seq={seq.map(|s| s.to_string())}
                data-from={from.clone()} aria-current={found.then_some("true")}>
                if continued {
                    <span class="gutter" aria-hidden="true">
                        { time(*sent_at) }
                    </span>
                } else {
                    { avatar(from, "avatar") }
                }
                <div class="message-body">
                    if !continued {
                        <div class="message-meta">
                            if *own {
                                <span class="from">{ from.clone() }</span>
                                <span class="you-tag">{ "you" }</span>
                            } else {
                                // Opens the private conversation with them.
                                <button class="from" type="button" data-act="dm"
                                    title="Message privately" disabled={!view.connected}>
                                    { from.clone() }
                                </button>
                            }
                            { time(*sent_at) }
                        </div>
                    }
                    if let Some(q) = reply_to {
                        { tools::quote(q) }
                    }
                    if *deleted {
                        <p class="text deleted">{ "message deleted" }</p>
                    } else if editing {
                        { tools::edit_form(text) }
                    } else if !text.is_empty() {
                        { crate::markup::view_text(text, view.me) }
                    }
                    if !files.is_empty() {
                        { view_files(files, view.token, view.open) }
                    }
                    { tools::under(
                        *edited && !editing,
                        reactions,
                        view.me,
                        live.filter(|s| view.menu.0 == *s).map_or(CLOSED, |_| view.menu.1),
                        live.map(|_| (*own, *sent_at > view.edit_after)),
                        view.connected,
                    ) }
                </div>
            </li>
            }
        }
    }
}

/// When something happened: `14:05`, the full date and time as its
/// tooltip. (One function for all of them: each `html!` element is code in
/// the bundle.)
fn time(at: u64) -> Html {
    html! { <time datetime={iso_time(at)} title={full_time(at)}>{ short_time(at) }</time> }
}

/// An own message not yet confirmed; `header` is the name to head it with
/// when it starts a group.
fn view_pending(
    pending: &PendingSend,
    header: Option<&str>,
    connected: bool,
    on_dismiss: &Callback<String>,
) -> Html {
    let (state, label) = match (&pending.failed, connected) {
        (Some((_, why)), _) => ("message own pending failed", format!("Not sent: {why}")),
        (None, true) => ("message own pending sending", "Sending…".to_string()),
        (None, false) => (
            "message own pending queued",
            "Queued · sends when reconnected".to_string(),
        ),
    };
    let mut class = String::from(state);
    if header.is_none() {
        class.push_str(" continued");
    }
    // Its files are named once the server has them; until then, counted.
    let text = match &pending.request {
        ClientMsg::Send { attachments, .. } if !attachments.is_empty() => {
            format!("{} 📎 {}", pending.text(), attachments.len())
        }
        _ => pending.text().to_string(),
    };
    let dismiss = on_dismiss.reform({
        let id = pending.client_id.clone();
        move |_: MouseEvent| id.clone()
    });
    html! {
        <li key={pending.client_id.clone()}
            CLASS={class}>
            if let Some(name) = header {
                { avatar(name, "avatar") }
            } else {
                <span class="gutter" aria-hidden="true"></span>
            }
            <div class="message-body">
                if let Some(name) = header {
                    <div class="message-meta">
                        <span class="from">{ name.to_string() }</span>
                        <span class="you-tag">{ "you" }</span>
                    </div>
                }
                <p class="text">{ text }</p>
                <p class="pending-state">
                    { label }
                    if pending.failed.is_some() {
                        <button class="link-button" type="button" onclick={dismiss}>{ "Dismiss" }</button>
                    }
                </p>
            </div>
        </li>
    }
}
