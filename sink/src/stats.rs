//! Counters and per-request records, with server-side timestamps.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Milliseconds since the Unix epoch, as an `f64` (sub-millisecond precision).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// What the sink saw of one request. Timestamps are the server's
/// `SystemTime` in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestRecord {
    /// Id of the connection (1 for the first accepted connection).
    pub connection_id: u64,
    /// 1-based index of this request on its connection.
    pub request_index: u64,
    /// Request method, e.g. `"POST"`.
    pub method: String,
    /// Request path, without the query.
    pub path: String,
    /// Request query string (empty if none).
    pub query: String,
    /// `"HTTP/1.1"` or `"HTTP/2.0"`.
    pub protocol: String,
    /// Body bytes read by the sink for this request.
    pub received_bytes: u64,
    /// Status answered; `None` if no response was given (closed early,
    /// client went away, or still in progress).
    pub status: Option<u16>,
    /// When the request head was received (the service was called).
    pub head_received_ms: f64,
    /// When the body was fully read; `None` if it was not read to its end.
    pub body_received_ms: Option<f64>,
    /// When the last byte of the response was handed to the connection;
    /// `None` if no response was (yet) sent.
    pub response_sent_ms: Option<f64>,
}

/// A snapshot of the sink's counters and records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStats {
    /// TCP connections accepted.
    pub connections_accepted: u64,
    /// Requests whose head was received.
    pub requests: u64,
    /// Request body bytes read, over all requests.
    pub body_bytes: u64,
    /// One record per request, in arrival order.
    pub records: Vec<RequestRecord>,
}

/// The live, shared statistics.
#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    connections: AtomicU64,
    requests: AtomicU64,
    body_bytes: AtomicU64,
    records: Mutex<Vec<RequestRecord>>,
}

impl StatsInner {
    /// Counts an accepted connection and returns its id (from 1).
    pub fn connection_accepted(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Adds body bytes to the global counter.
    pub fn add_body_bytes(&self, n: u64) {
        self.body_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Stores the record of a new request and returns its slot.
    pub fn begin(&self, record: RequestRecord) -> usize {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let mut records = self.lock();
        records.push(record);
        records.len() - 1
    }

    /// Updates the record in `slot`.
    pub fn update(&self, slot: usize, f: impl FnOnce(&mut RequestRecord)) {
        if let Some(r) = self.lock().get_mut(slot) {
            f(r);
        }
    }

    /// A consistent-enough copy of everything.
    pub fn snapshot(&self) -> SinkStats {
        let records = self.lock().clone();
        SinkStats {
            connections_accepted: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            records,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<RequestRecord>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }
}
