//! Counters shared by every client task, and the latency histogram.
//!
//! Counters are relaxed atomics. Latencies go into one HDR histogram per
//! runtime thread (recorded without contention) that are merged on demand.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hdrhistogram::Histogram;
use parking_lot::Mutex;

/// Highest latency the histogram tracks exactly: 10 minutes, in µs.
const MAX_LATENCY_US: u64 = 600_000_000;

/// Every thread's histogram, for merging.
static HISTOGRAMS: Mutex<Vec<Arc<Mutex<Histogram<u64>>>>> = Mutex::new(Vec::new());

thread_local! {
    static LOCAL: RefCell<Option<Arc<Mutex<Histogram<u64>>>>> = const { RefCell::new(None) };
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Records one send-to-receive latency, in microseconds.
pub fn record_latency(us: u64) {
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let hist = local.get_or_insert_with(|| {
            let hist = Arc::new(Mutex::new(new_histogram()));
            HISTOGRAMS.lock().push(Arc::clone(&hist));
            hist
        });
        hist.lock().saturating_record(us.max(1));
    });
}

/// All latencies recorded so far, merged.
pub fn latencies() -> Histogram<u64> {
    let mut merged = new_histogram();
    for hist in HISTOGRAMS.lock().iter() {
        let _ = merged.add(&*hist.lock());
    }
    merged
}

/// A client that never got welcomed.
pub const NOT_CONNECTED: u8 = 0;
/// A client whose connection is open.
pub const OPEN: u8 = 1;
/// A client whose connection the server closed, or that failed.
pub const ENDED: u8 = 2;

/// Counters every client task updates.
pub struct Shared {
    /// Time zero for the timestamps carried in message texts.
    pub base: Instant,
    pub connected: AtomicU64,
    pub connect_failed: AtomicU64,
    /// Clients whose `join` was answered with `presence`.
    pub joined: AtomicU64,
    /// Clients that learned every member of their room (presence converged).
    pub converged: AtomicU64,
    /// Members per room, counted as `presence` answers arrive.
    pub room_members: Vec<AtomicU64>,
    /// Messages sent per room.
    pub sent_per_room: Vec<AtomicU64>,
    pub sent: AtomicU64,
    /// Bench messages received (first copy of each).
    pub delivered: AtomicU64,
    pub duplicates: AtomicU64,
    /// Messages skipped over in a sender's sequence (loss seen as a gap).
    pub gaps: AtomicU64,
    pub acks: AtomicU64,
    pub heartbeats: AtomicU64,
    pub errors: AtomicU64,
    /// Server-closed connections, by close code.
    pub closes: Mutex<std::collections::BTreeMap<u16, u64>>,
    /// Connections that ended without a close frame.
    pub dropped: AtomicU64,
    /// Error codes the server answered with, by code.
    pub error_codes: Mutex<std::collections::BTreeMap<String, u64>>,
    /// Bench messages each client received (first copies), by client index.
    pub received: Box<[AtomicU64]>,
    /// Each client's connection: [`NOT_CONNECTED`], [`OPEN`] or [`ENDED`]
    /// (closed by the server, or failed, before the run ended).
    pub state: Box<[AtomicU8]>,
    /// Clients in state [`ENDED`].
    pub ended_count: AtomicU64,
}

impl Shared {
    pub fn new(rooms: usize, clients: usize) -> Shared {
        let zeros = || (0..rooms).map(|_| AtomicU64::new(0)).collect();
        Shared {
            base: Instant::now(),
            connected: AtomicU64::new(0),
            connect_failed: AtomicU64::new(0),
            joined: AtomicU64::new(0),
            converged: AtomicU64::new(0),
            room_members: zeros(),
            sent_per_room: zeros(),
            sent: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            acks: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            closes: Mutex::default(),
            dropped: AtomicU64::new(0),
            error_codes: Mutex::default(),
            received: (0..clients).map(|_| AtomicU64::new(0)).collect(),
            state: (0..clients).map(|_| AtomicU8::new(NOT_CONNECTED)).collect(),
            ended_count: AtomicU64::new(0),
        }
    }

    /// Marks client `i`'s connection as open (welcomed).
    pub fn open(&self, i: usize) {
        self.state[i].store(OPEN, Ordering::Relaxed);
    }

    /// Marks client `i`'s connection as ended before the run did.
    pub fn end(&self, i: usize) {
        if self.state[i].swap(ENDED, Ordering::Relaxed) != ENDED {
            self.ended_count.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Microseconds since [`Shared::base`].
    pub fn now_us(&self) -> u64 {
        self.base.elapsed().as_micros() as u64
    }

    /// Deliveries the sends so far call for: each message reaches every
    /// member of its room, the sender included.
    pub fn expected(&self) -> u64 {
        self.sent_per_room
            .iter()
            .zip(&self.room_members)
            .map(|(sent, members)| sent.load(Ordering::Relaxed) * members.load(Ordering::Relaxed))
            .sum()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
