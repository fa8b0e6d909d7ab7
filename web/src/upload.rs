//! Files on their way to the server, before the message that carries them.
//!
//! Each file picked, dropped or pasted is uploaded at once with
//! `POST /api/files?name=NAME` (docs/protocol.md, "Files") through an
//! `XMLHttpRequest`: `fetch` reports no upload progress, and `abort` cancels
//! it. What the server answers (an upload id, or a JSON refusal) stays with
//! the file until the message is sent with the ids as its `attachments`, or
//! the user removes it. Like the drafts, uploads are kept per chat for the
//! whole page ([`Uploads`]), so switching chats loses none; the composer on
//! screen registers itself to be drawn again when one moves on.

use std::cell::RefCell;
use std::rc::Rc;

use wasm_bindgen::closure::Closure;
use wasm_bindgen::JsCast;
use web_sys::{File, FileList, ProgressEvent, XmlHttpRequest};
use yew::Callback;

use crate::api::{field, sentence};
use crate::fmt::size;
use crate::state::Target;

/// Where one upload is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Bytes sent so far.
    Sending(u64),
    /// Stored by the server under this id.
    Done(String),
    /// Refused or failed, with why (a sentence).
    Failed(String),
}

/// One file being uploaded for a chat's next message.
pub struct Upload {
    /// Unique in this page; the list key.
    pub key: u64,
    pub target: Target,
    pub name: String,
    /// Bytes.
    pub size: u64,
    pub progress: Progress,
    /// The request while it runs, and its event handlers (kept alive as
    /// long as it may call them).
    request: Option<Request>,
}

/// A running upload's request and its progress, load and error handlers.
type Request = (XmlHttpRequest, [Closure<dyn FnMut(ProgressEvent)>; 3]);

#[derive(Default)]
struct Inner {
    list: Vec<Upload>,
    next_key: u64,
    /// A guest's upload token from the last `welcome`.
    token: Option<String>,
    /// The server's `max_files_per_message`.
    max_files: usize,
    /// The server's `max_file_bytes`.
    max_bytes: u64,
    /// Draws the composer on screen again.
    redraw: Option<Callback<()>>,
}

/// Every chat's uploads, shared by the page; cheap to clone.
#[derive(Clone, Default)]
pub struct Uploads(Rc<RefCell<Inner>>);

impl PartialEq for Uploads {
    fn eq(&self, other: &Self) -> bool {
        Rc::ptr_eq(&self.0, &other.0)
    }
}

impl Uploads {
    /// Takes the current credentials and limit (from the last `welcome`).
    pub fn configure(&self, token: Option<&str>, max_files: usize, max_bytes: u64) {
        let mut inner = self.0.borrow_mut();
        inner.token = token.map(str::to_string);
        inner.max_files = max_files;
        inner.max_bytes = max_bytes;
    }

    /// Who to draw again when an upload moves on.
    pub fn on_change(&self, redraw: Callback<()>) {
        self.0.borrow_mut().redraw = Some(redraw);
    }

    fn changed(&self) {
        let redraw = self.0.borrow().redraw.clone();
        if let Some(redraw) = redraw {
            redraw.emit(());
        }
    }

    /// Runs `f` on the uploads of `target`.
    pub fn with<R>(&self, target: &Target, f: impl FnOnce(Vec<&Upload>) -> R) -> R {
        let inner = self.0.borrow();
        f(inner.list.iter().filter(|u| &u.target == target).collect())
    }

    /// Starts uploading `files` (`pasted` from the clipboard) for
    /// `target`; those past the server's files-per-message limit are listed
    /// as refused instead.
    pub fn add(&self, target: &Target, files: Option<FileList>, pasted: bool) {
        let Some(files) = files else { return };
        for i in 0..files.length() {
            if let Some(file) = files.get(i) {
                self.add_file(target, file, pasted);
            }
        }
        self.changed();
    }

    fn add_file(&self, target: &Target, file: File, pasted: bool) {
        let name = file_name(&file, pasted);
        let mut inner = self.0.borrow_mut();
        let key = inner.next_key;
        inner.next_key += 1;
        let held = inner
            .list
            .iter()
            .filter(|u| &u.target == target && !matches!(u.progress, Progress::Failed(_)))
            .count();
        let mut upload = Upload {
            key,
            target: target.clone(),
            name,
            size: file.size() as u64,
            progress: Progress::Sending(0),
            request: None,
        };
        if held >= inner.max_files {
            upload.progress = Progress::Failed(format!(
                "At most {} files fit in one message.",
                inner.max_files
            ));
        } else if upload.size > inner.max_bytes {
            // Refused before a byte goes (the server would, from its length).
            upload.progress = Progress::Failed(format!(
                "Larger than the server takes ({}).",
                size(inner.max_bytes)
            ));
        } else {
            match self.start(key, &upload.name, &file, inner.token.as_deref()) {
                Some(request) => upload.request = Some(request),
                None => upload.progress = Progress::Failed(NETWORK.into()),
            }
        }
        inner.list.push(upload);
    }

    /// Sends the request; its handlers report back under `key`.
    fn start(&self, key: u64, name: &str, file: &File, token: Option<&str>) -> Option<Request> {
        let xhr = XmlHttpRequest::new().ok()?;
        let url = format!("/api/files?name={}", js_sys::encode_uri_component(name));
        xhr.open("POST", &url).ok()?;
        if let Some(token) = token {
            xhr.set_request_header("authorization", &format!("Bearer {token}"))
                .ok()?;
        }
        let handler = |f: fn(&XmlHttpRequest, &ProgressEvent) -> Progress| {
            let uploads = self.clone();
            let xhr = xhr.clone();
            Closure::<dyn FnMut(ProgressEvent)>::new(move |e: ProgressEvent| {
                uploads.set(key, f(&xhr, &e));
            })
        };
        let progress = handler(|_, e| Progress::Sending(e.loaded() as u64));
        let load = handler(|xhr, _| answer(xhr));
        let error = handler(|_, _| Progress::Failed(NETWORK.into()));
        // `addEventListener`, which the app imports anyway, rather than
        // three `on…` setters of their own.
        let listen =
            |on: &web_sys::EventTarget, event: &str, f: &Closure<dyn FnMut(ProgressEvent)>| {
                on.add_event_listener_with_callback(event, f.as_ref().unchecked_ref())
                    .ok()
            };
        let upload = xhr.upload().ok()?;
        listen(&upload, "progress", &progress)?;
        listen(&xhr, "load", &load)?;
        listen(&xhr, "error", &error)?;
        xhr.send_with_opt_blob(Some(file)).ok()?;
        Some((xhr, [progress, load, error]))
    }

    /// An upload moved on (called from its request's handlers, which stay
    /// alive: a finished request is forgotten only when its upload is).
    fn set(&self, key: u64, progress: Progress) {
        {
            let mut inner = self.0.borrow_mut();
            let Some(upload) = inner.list.iter_mut().find(|u| u.key == key) else {
                return;
            };
            // A late progress event never undoes the answer.
            if !matches!(upload.progress, Progress::Sending(_)) {
                return;
            }
            upload.progress = progress;
        }
        self.changed();
    }

    /// Cancels an upload still running, or forgets one done or refused.
    pub fn remove(&self, key: u64) {
        let removed = {
            let mut inner = self.0.borrow_mut();
            let at = inner.list.iter().position(|u| u.key == key);
            at.map(|at| inner.list.remove(at))
        };
        if let Some(Upload {
            request: Some((xhr, _handlers)),
            progress: Progress::Sending(_),
            ..
        }) = &removed
        {
            let _ = xhr.abort();
        }
        drop(removed);
        self.changed();
    }

    /// Whether any upload for `target` is still running, and whether any
    /// is done.
    pub fn state(&self, target: &Target) -> (bool, bool) {
        self.with(target, |list| {
            let any = |f: fn(&Progress) -> bool| list.iter().any(|u| f(&u.progress));
            (
                any(|p| matches!(p, Progress::Sending(_))),
                any(|p| matches!(p, Progress::Done(_))),
            )
        })
    }

    /// The ids of `target`'s finished uploads, for the message about to be
    /// sent; its list is emptied (a refused file's reason was shown).
    pub fn take(&self, target: &Target) -> Vec<String> {
        let mut ids = Vec::new();
        {
            let mut inner = self.0.borrow_mut();
            inner.list.retain(|u| {
                if &u.target != target {
                    return true;
                }
                if let Progress::Done(id) = &u.progress {
                    ids.push(id.clone());
                }
                false
            });
        }
        self.changed();
        ids
    }
}

const NETWORK: &str = "Upload failed: cannot reach the server.";

/// The server's answer: the new file's id (only a 201 has one), or its
/// refusal as a sentence.
fn answer(xhr: &XmlHttpRequest) -> Progress {
    let body = crate::wire::parse(&xhr.response_text().ok().flatten().unwrap_or_default());
    match field(&body, "id").as_string() {
        Some(id) => Progress::Done(id),
        None => Progress::Failed(match field(&body, "message").as_string() {
            Some(message) => sentence(&message),
            None => NETWORK.into(),
        }),
    }
}

/// The file's own name; an image pasted from the clipboard (which browsers
/// call `image.png` whatever it is) is named after the moment instead:
/// `pasted-20261130-210512.png`.
fn file_name(file: &File, pasted: bool) -> String {
    let kind = file.type_();
    match kind.strip_prefix("image/") {
        Some(ext) if pasted => format!("pasted-{}.{ext}", crate::fmt::stamp(crate::fmt::now_ms())),
        _ => file.name(),
    }
}
