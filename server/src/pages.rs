//! The pages of a room's committed messages that readers behind its
//! in-memory log read from the store ([`crate::feed`]'s catch-up), shared
//! by every such reader of the room.
//!
//! A burst leaves hundreds of members behind the log at once, each reading
//! the same messages from the store. Pages start after a multiple of
//! [`CATCH_UP_PAGE`], so readers at different positions ask for the same
//! pages; each page is read and framed once, by whichever reader asks
//! first, while the others wait for it. Committed messages never change,
//! so a page read is right for as long as it is kept. The room keeps at
//! most [`MAX_BYTES`] of pages, dropping those that start lowest (readers
//! move forward); a short page (the store's end) is not kept.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::OnceCell;

use crate::feed::CATCH_UP_PAGE;
use crate::room::Wire;

/// Most bytes of pages one room keeps.
pub const MAX_BYTES: usize = 16 << 20;

/// One page: its messages, framed, oldest first.
pub type Page = Arc<[Wire]>;

/// A page being read or read.
type Slot = Arc<OnceCell<Page>>;

/// A room's pages, by the `seq` each starts after.
#[derive(Default)]
pub struct Pages {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    slots: BTreeMap<u64, Slot>,
    /// Bytes of the pages in `slots` that were read.
    bytes: usize,
}

impl Pages {
    /// Where the page holding the message after `seq` starts.
    pub fn start_for(seq: u64) -> u64 {
        seq / CATCH_UP_PAGE as u64 * CATCH_UP_PAGE as u64
    }

    /// The slot of the page after `start`: read, being read, or new (the
    /// caller reads it then, and calls [`Pages::read`]).
    pub fn slot(&self, start: u64) -> Arc<OnceCell<Page>> {
        Arc::clone(self.inner.lock().slots.entry(start).or_default())
    }

    /// The page after `start` was read into `slot`: it counts against the
    /// bound, or goes if it is short.
    pub fn read(&self, start: u64, slot: &Slot, page: &Page) {
        let mut inner = self.inner.lock();
        if !inner
            .slots
            .get(&start)
            .is_some_and(|s| Arc::ptr_eq(s, slot))
        {
            return; // dropped meanwhile
        }
        if page.len() < CATCH_UP_PAGE {
            inner.slots.remove(&start);
            return;
        }
        inner.bytes += size(page);
        while inner.bytes > MAX_BYTES {
            let Some((_, oldest)) = inner.slots.pop_first() else {
                break;
            };
            inner.bytes -= oldest.get().map_or(0, size);
        }
    }

    /// How many pages are kept (read or being read).
    pub fn len(&self) -> usize {
        self.inner.lock().slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn size(page: &Page) -> usize {
    page.iter().map(|wire| wire.bytes.len()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredMessage;

    fn page(from: u64, n: u64, text_bytes: usize) -> Page {
        (from..from + n)
            .map(|seq| {
                Wire::of(&StoredMessage {
                    room: "lobby".into(),
                    seq,
                    from: "ann".into(),
                    text: "x".repeat(text_bytes),
                    sent_at: 1,
                    client_id: None,
                    ..StoredMessage::default()
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn readers_share_a_page_and_the_oldest_go_past_the_bound() {
        let pages = Pages::default();
        assert_eq!(Pages::start_for(1000), 896);
        assert_eq!(Pages::start_for(127), 0);
        let n = CATCH_UP_PAGE as u64;
        // Two readers of one page: one read.
        let first = pages.slot(0);
        let second = pages.slot(0);
        assert!(Arc::ptr_eq(&first, &second));
        let read = first.get_or_init(|| async { page(1, n, 100) }).await;
        pages.read(0, &first, read);
        assert_eq!(second.get().unwrap().len(), CATCH_UP_PAGE);
        // A short page is not kept: more may be stored later.
        let end = pages.slot(n);
        let short = end.get_or_init(|| async { page(n + 1, 3, 100) }).await;
        pages.read(n, &end, short);
        assert_eq!(pages.len(), 1);
        // Big pages push the oldest out.
        let per_page = MAX_BYTES / CATCH_UP_PAGE / 2 + 1;
        for k in 1..=3 {
            let slot = pages.slot(k * n);
            let read = slot
                .get_or_init(|| async { page(k * n + 1, n, per_page) })
                .await;
            pages.read(k * n, &slot, read);
        }
        assert_eq!(pages.len(), 1, "only the newest big page fits");
        assert!(
            !Arc::ptr_eq(&pages.slot(0), &first),
            "the first was dropped"
        );
    }
}
