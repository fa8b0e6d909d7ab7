//! A store that keeps messages in memory only.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use parking_lot::Mutex;

use super::{
    fold_messages, search_words, Accounts, ConversationRecord, Conversations, FileReaders,
    FileRecord, Files, Fold, Messages, Retention, RoomRecord, SearchQuery, SessionRecord, Store,
    StoreError, StoredMessage, UserRecord,
};
use hubbub_protocol::names::{self, name_key};

#[derive(Default)]
struct RoomLog {
    last_seq: u64,
    messages: VecDeque<StoredMessage>,
    /// Reactions by message `seq`: the name keys of the users of each emoji.
    reactions: HashMap<u64, BTreeMap<String, BTreeSet<String>>>,
}

impl RoomLog {
    /// The stored message `seq`, if it is a message (not an event) and
    /// not deleted.
    fn live(&mut self, seq: u64) -> Option<&mut StoredMessage> {
        let at = self.messages.binary_search_by_key(&seq, |m| m.seq).ok()?;
        let msg = &mut self.messages[at];
        (msg.event.is_none() && !msg.deleted).then_some(msg)
    }

    /// Folds the event row `msg` into its target ([`Messages::append`]).
    fn fold(&mut self, msg: &StoredMessage) {
        match Fold::of(msg) {
            None => {}
            Some(Fold::Edit { .. }) => {
                fold_messages(msg, self.messages.iter_mut());
            }
            Some(Fold::Delete { target }) => {
                if self.live(target).is_some() {
                    self.reactions.remove(&target);
                }
                fold_messages(msg, self.messages.iter_mut());
            }
            Some(Fold::React { target, emoji, on }) => {
                if self.live(target).is_none() {
                    return;
                }
                let users = self.reactions.entry(target).or_default();
                let user = name_key(&msg.from);
                if on {
                    users.entry(emoji.to_string()).or_default().insert(user);
                } else if let Some(set) = users.get_mut(emoji) {
                    set.remove(&user);
                    if set.is_empty() {
                        users.remove(emoji);
                    }
                }
            }
        }
    }
}

/// Messages in memory: history within one run, nothing across restarts.
#[derive(Default)]
pub struct MemoryStore {
    rooms: Mutex<HashMap<String, RoomLog>>,
    /// Accounts by name key.
    users: Mutex<HashMap<String, UserRecord>>,
    /// Sessions by token hash: (account name key, expires_at).
    sessions: Mutex<HashMap<String, (String, u64)>>,
    /// Uploaded files by id.
    files: Mutex<HashMap<String, FileRecord>>,
    /// Files direct messages gave: (file id, reader's name key, at).
    shares: Mutex<Vec<(String, String, u64)>>,
    /// Read markers by (account name key, room).
    reads: Mutex<HashMap<(String, String), u64>>,
    /// Private conversations by room.
    conversations: Mutex<HashMap<String, ConversationRecord>>,
}

impl Messages for MemoryStore {
    fn load_room(
        &self,
        room: &str,
        recent: usize,
        client_ids: usize,
    ) -> Result<RoomRecord, StoreError> {
        let rooms = self.rooms.lock();
        let Some(log) = rooms.get(room) else {
            return Ok(RoomRecord::default());
        };
        let tail = |n: usize| {
            log.messages
                .iter()
                .skip(log.messages.len().saturating_sub(n))
        };
        Ok(RoomRecord {
            last_seq: log.last_seq,
            recent: tail(recent).cloned().collect(),
            client_ids: tail(client_ids)
                .filter_map(|m| Some((m.from.clone(), m.client_id.clone()?, m.seq)))
                .collect(),
        })
    }

    fn append(&self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        let mut rooms = self.rooms.lock();
        for msg in batch {
            let log = rooms.entry(msg.room.clone()).or_default();
            log.last_seq = log.last_seq.max(msg.seq);
            log.messages.push_back(msg.clone());
            log.fold(msg);
        }
        Ok(())
    }

    fn history(
        &self,
        room: &str,
        before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rooms = self.rooms.lock();
        let Some(log) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        let end = match before {
            Some(before) => log.messages.partition_point(|m| m.seq < before),
            None => log.messages.len(),
        };
        let start = end.saturating_sub(limit);
        Ok(log.messages.range(start..end).cloned().collect())
    }

    fn after(
        &self,
        room: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        let rooms = self.rooms.lock();
        let Some(log) = rooms.get(room) else {
            return Ok(Vec::new());
        };
        let start = log.messages.partition_point(|m| m.seq <= after);
        Ok(log.messages.range(start..).take(limit).cloned().collect())
    }

    fn message(&self, room: &str, seq: u64) -> Result<Option<StoredMessage>, StoreError> {
        let rooms = self.rooms.lock();
        Ok(rooms.get(room).and_then(|log| {
            let at = log.messages.binary_search_by_key(&seq, |m| m.seq).ok()?;
            Some(log.messages[at].clone())
        }))
    }

    fn reaction_emoji(&self, room: &str, seq: u64) -> Result<Vec<String>, StoreError> {
        let rooms = self.rooms.lock();
        Ok(rooms
            .get(room)
            .and_then(|log| log.reactions.get(&seq))
            .map(|users| users.keys().cloned().collect())
            .unwrap_or_default())
    }

    fn active_rooms(&self, since_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let rooms = self.rooms.lock();
        let mut active: Vec<(u64, &String)> = rooms
            .iter()
            .filter(|(name, _)| !names::is_conversation(name))
            .filter_map(|(name, log)| log.messages.back().map(|m| (m.sent_at, name)))
            .filter(|(at, _)| *at >= since_ms)
            .collect();
        active.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
        Ok(active
            .into_iter()
            .take(limit)
            .map(|(_, n)| n.clone())
            .collect())
    }

    fn search(&self, query: &SearchQuery) -> Result<Vec<StoredMessage>, StoreError> {
        // A scan of everything: this store is for tests and benchmarks.
        let rooms = self.rooms.lock();
        let mut found: Vec<&StoredMessage> = rooms
            .iter()
            .filter(|(name, _)| query.room.as_ref().is_none_or(|room| room == *name))
            .filter(|(name, _)| super::may_find(name, &query.reader))
            .flat_map(|(_, log)| &log.messages)
            .filter(|m| m.event.is_none() && !m.deleted)
            .filter(|m| query.before.as_ref().is_none_or(|at| at.is_before(m)))
            .filter(|m| {
                let words = search_words(&m.text);
                query.words.iter().all(|word| words.contains(word))
            })
            .collect();
        found.sort_by(|x, y| (y.sent_at, &y.room, y.seq).cmp(&(x.sent_at, &x.room, x.seq)));
        Ok(found.into_iter().take(query.limit).cloned().collect())
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> Result<u64, StoreError> {
        let mut rooms = self.rooms.lock();
        let mut dropped = 0;
        for log in rooms.values_mut() {
            let before = log.messages.len();
            if let Some(max) = retention.max_count {
                while log.messages.len() as u64 > max {
                    log.messages.pop_front();
                    dropped += 1;
                }
            }
            if let Some(age) = retention.max_age {
                let cutoff = now_ms.saturating_sub(age.as_millis() as u64);
                while log.messages.front().is_some_and(|m| m.sent_at < cutoff) {
                    log.messages.pop_front();
                    dropped += 1;
                }
            }
            if log.messages.len() < before {
                let first = log.messages.front().map_or(u64::MAX, |m| m.seq);
                log.reactions.retain(|seq, _| *seq >= first);
            }
        }
        Ok(dropped)
    }
}

impl MemoryStore {
    /// Deletes the conversations `which` picks, with their messages and
    /// read markers ([`Conversations::drop_conversations`]).
    fn drop_where(&self, which: impl Fn(&ConversationRecord) -> bool) -> Vec<String> {
        let gone: Vec<String> = {
            let mut conversations = self.conversations.lock();
            let gone = conversations
                .values()
                .filter(|c| which(c))
                .map(|c| c.room.clone())
                .collect::<Vec<_>>();
            for room in &gone {
                conversations.remove(room);
            }
            gone
        };
        let mut rooms = self.rooms.lock();
        for room in &gone {
            rooms.remove(room);
        }
        self.reads
            .lock()
            .retain(|(_, room), _| !gone.contains(room));
        gone
    }
}

impl Conversations for MemoryStore {
    fn open_conversation(&self, record: &ConversationRecord) -> Result<(), StoreError> {
        self.conversations
            .lock()
            .entry(record.room.clone())
            .or_insert_with(|| ConversationRecord {
                last_seq: 0,
                last_at: 0,
                ..record.clone()
            });
        Ok(())
    }

    fn conversations(
        &self,
        key: &str,
        limit: usize,
    ) -> Result<Vec<ConversationRecord>, StoreError> {
        let mut mine: Vec<ConversationRecord> = self
            .conversations
            .lock()
            .values()
            .filter(|c| c.a.key == key || c.b.key == key)
            .cloned()
            .collect();
        let rooms = self.rooms.lock();
        for c in &mut mine {
            if let Some(last) = rooms.get(&c.room).and_then(|log| log.messages.back()) {
                (c.last_seq, c.last_at) = (last.seq, last.sent_at);
            }
        }
        mine.sort_by(|x, y| {
            let at = |c: &ConversationRecord| {
                if c.last_seq > 0 {
                    c.last_at
                } else {
                    c.opened_at
                }
            };
            at(y).cmp(&at(x)).then_with(|| x.room.cmp(&y.room))
        });
        mine.truncate(limit);
        Ok(mine)
    }

    fn drop_conversations(&self, key: &str) -> Result<Vec<String>, StoreError> {
        Ok(self.drop_where(|c| c.a.key == key || c.b.key == key))
    }

    fn drop_guest_conversations(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.drop_where(|c| c.a.guest || c.b.guest))
    }
}

impl Accounts for MemoryStore {
    fn create_user(&self, user: &UserRecord) -> Result<bool, StoreError> {
        let mut users = self.users.lock();
        let key = name_key(&user.name);
        if users.contains_key(&key) {
            return Ok(false);
        }
        users.insert(key, user.clone());
        Ok(true)
    }

    fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(self.users.lock().get(&name_key(name)).cloned())
    }

    fn create_session(
        &self,
        token_hash: &str,
        name: &str,
        expires_at: u64,
    ) -> Result<(), StoreError> {
        self.sessions
            .lock()
            .insert(token_hash.to_string(), (name_key(name), expires_at));
        Ok(())
    }

    fn session(&self, token_hash: &str, now_ms: u64) -> Result<Option<SessionRecord>, StoreError> {
        let Some((key, expires_at)) = self.sessions.lock().get(token_hash).cloned() else {
            return Ok(None);
        };
        if expires_at <= now_ms {
            return Ok(None);
        }
        Ok(self.users.lock().get(&key).map(|user| SessionRecord {
            name: user.name.clone(),
            expires_at,
        }))
    }

    fn delete_session(&self, token_hash: &str) -> Result<(), StoreError> {
        self.sessions.lock().remove(token_hash);
        Ok(())
    }

    fn read_marker(&self, name: &str, room: &str) -> Result<Option<u64>, StoreError> {
        let key = (name_key(name), room.to_string());
        Ok(self.reads.lock().get(&key).copied())
    }

    fn mark_read(&self, name: &str, room: &str, seq: u64) -> Result<u64, StoreError> {
        let mut reads = self.reads.lock();
        let marker = reads.entry((name_key(name), room.to_string())).or_default();
        *marker = (*marker).max(seq);
        Ok(*marker)
    }
}

impl Files for MemoryStore {
    fn add_file(&self, file: &FileRecord) -> Result<(), StoreError> {
        self.files.lock().insert(file.id.clone(), file.clone());
        Ok(())
    }

    fn file(&self, id: &str) -> Result<Option<FileRecord>, StoreError> {
        Ok(self.files.lock().get(id).cloned())
    }

    fn uploaded_bytes(&self, uploader: &str) -> Result<u64, StoreError> {
        let key = name_key(uploader);
        Ok(self
            .files
            .lock()
            .values()
            .filter(|f| name_key(&f.uploader) == key)
            .map(|f| f.size)
            .sum())
    }

    fn share_files(&self, ids: &[String], user: &str, at_ms: u64) -> Result<(), StoreError> {
        let mut shares = self.shares.lock();
        shares.extend(ids.iter().map(|id| (id.clone(), user.to_string(), at_ms)));
        Ok(())
    }

    fn file_readers(&self, id: &str) -> Result<FileReaders, StoreError> {
        // Every stored message is looked at: this store is for tests and
        // benchmarks, not for a server with files.
        let mut rooms: Vec<String> = self
            .rooms
            .lock()
            .iter()
            .filter(|(_, log)| {
                log.messages
                    .iter()
                    .any(|m| m.attachments.iter().any(|a| a.id == id))
            })
            .map(|(name, _)| name.clone())
            .collect();
        rooms.sort();
        let mut users: Vec<String> = self
            .shares
            .lock()
            .iter()
            .filter(|(file, _, _)| file == id)
            .map(|(_, user, _)| user.clone())
            .collect();
        users.sort();
        users.dedup();
        Ok(FileReaders { rooms, users })
    }

    fn collect_files(
        &self,
        uploaded_before_ms: u64,
        shared_before_ms: u64,
    ) -> Result<Vec<String>, StoreError> {
        let mut shares = self.shares.lock();
        shares.retain(|(_, _, at)| *at >= shared_before_ms);
        let carried: std::collections::HashSet<String> = self
            .rooms
            .lock()
            .values()
            .flat_map(|log| log.messages.iter())
            .flat_map(|m| m.attachments.iter().map(|a| a.id.clone()))
            .chain(shares.iter().map(|(id, _, _)| id.clone()))
            .collect();
        let mut files = self.files.lock();
        let mut gone = Vec::new();
        files.retain(|id, f| {
            let keep = f.uploaded_at >= uploaded_before_ms || carried.contains(id);
            if !keep {
                gone.extend(
                    [Some(f.sha256.clone()), f.thumb_sha256.clone()]
                        .into_iter()
                        .flatten(),
                );
            }
            keep
        });
        gone.sort();
        gone.dedup();
        gone.retain(|sha| {
            !files
                .values()
                .any(|f| &f.sha256 == sha || f.thumb_sha256.as_ref() == Some(sha))
        });
        Ok(gone)
    }

    fn bytes_in_use(&self, sha256: &str) -> Result<bool, StoreError> {
        Ok(self
            .files
            .lock()
            .values()
            .any(|f| f.sha256 == sha256 || f.thumb_sha256.as_deref() == Some(sha256)))
    }
}

impl Store for MemoryStore {}
