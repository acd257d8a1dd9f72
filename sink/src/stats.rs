//! Counters and per-request records, with server-side timestamps.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::timing::{ConnectionTiming, IoTimer};

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
    /// `"HTTP/1.1"`, `"HTTP/2.0"` or `"HTTP/3"`.
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

/// The sink's own, raw-socket view of when one request happened, on the
/// process's monotonic clock (`Instant`, directly comparable with a client's
/// `Instant`s in the same process) and, in the `*_ms` twins, on the wall
/// clock (`SystemTime`/CLOCK_REALTIME in ms since the Unix epoch, read right
/// after the `Instant`), for comparisons across processes.
///
/// `timings[i]` of a [`SinkStats`] belongs to `records[i]`. (A separate
/// record rather than new fields of [`RequestRecord`]: code outside this crate
/// builds `RequestRecord` values with struct literals, which new fields would
/// break.)
///
/// "Read" and "write" below are the `read`/`write` calls on the accepted
/// `TcpStream` itself, under TLS when there is TLS, so a read returns TLS
/// records (ciphertext) and a write carries them. A read's time is when the
/// call returned with data: when the bytes arrived plus the sink's wake-up
/// latency (a few µs to tens of µs on an idle machine; more under load). A
/// write's time is when the call returned, i.e. when the bytes were in the
/// kernel's send buffer, not when they reached the peer.
///
/// On h2 the connection is shared by concurrent streams, so only
/// `head_parsed_at` and `body_end_at` are recorded, the latter as an upper
/// bound (the last read before the stream's body ended, which may have
/// carried another stream's frames); the other fields stay `None`.
///
/// On HTTP/3 there is no socket of the connection's own to time (QUIC runs
/// over one UDP socket and quinn reassembles streams from packets): only
/// `head_parsed_at` (when the h3 stream delivered the resolved head) and
/// `body_end_at` (the poll in which the stream delivered the body's end, FIN
/// or trailers) are recorded; the other fields stay `None`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestTiming {
    /// Id of the connection, as in [`RequestRecord::connection_id`].
    pub connection_id: u64,
    /// As in [`RequestRecord::request_index`].
    pub request_index: u64,
    /// The read that returned the first byte of this request's head: the
    /// first read that returned data after the previous request boundary.
    /// Boundaries: the accept (plain HTTP), the end of the TLS handshake
    /// (HTTPS: so it is the read of the first TLS record after the
    /// handshake, not a handshake read), and the end of the previous
    /// request's body. When no read returned data since the boundary before
    /// the head was parsed, the head came in the same read as what preceded
    /// the boundary (a pipelined request behind the previous body, or TLS 1.3
    /// application data in the same segment as the client's Finished), and
    /// this is that read. Exact to the read: each read is one syscall.
    #[serde(skip)]
    pub first_byte_at: Option<Instant>,
    /// hyper parsed the head and called the sink's service (this is when
    /// [`RequestRecord::head_received_ms`] is taken too).
    #[serde(skip)]
    pub head_parsed_at: Option<Instant>,
    /// The read that delivered the last byte of the body (for a chunked body,
    /// the terminating chunk; for a body-less request, the end of the head):
    /// the last read that returned data before hyper's body stream yielded
    /// its end. No read happens between the two on HTTP/1, except that a
    /// pipelined next request could arrive in between (never with a client
    /// that waits for the response). `None` if the body was not read to its
    /// end.
    #[serde(skip)]
    pub body_end_at: Option<Instant>,
    /// The write that carried the response's first byte (the status line) to
    /// the socket: the first write after the service returned the response,
    /// found by comparing the connection's cumulative written-byte count with
    /// its value at that moment. Exact to the write. `None` if no response
    /// was written.
    #[serde(skip)]
    pub response_head_written_at: Option<Instant>,
    /// The write that carried the response's last byte to the socket: the
    /// last write before the first completed flush of the socket after the
    /// response body's last chunk was handed to hyper (hyper, and rustls
    /// under it, flush only once their buffers are empty, so that write
    /// carried the last byte). Exact to the write. `None` if the response was
    /// not written in full.
    #[serde(skip)]
    pub response_end_written_at: Option<Instant>,
    /// `first_byte_at` on the wall clock.
    pub first_byte_ms: Option<f64>,
    /// `head_parsed_at` on the wall clock.
    pub head_parsed_ms: Option<f64>,
    /// `body_end_at` on the wall clock.
    pub body_end_ms: Option<f64>,
    /// `response_head_written_at` on the wall clock.
    pub response_head_written_ms: Option<f64>,
    /// `response_end_written_at` on the wall clock.
    pub response_end_written_ms: Option<f64>,
}

impl RequestTiming {
    /// Empty timings of a request.
    pub(crate) fn new(connection_id: u64, request_index: u64) -> Self {
        RequestTiming {
            connection_id,
            request_index,
            first_byte_at: None,
            head_parsed_at: None,
            body_end_at: None,
            response_head_written_at: None,
            response_end_written_at: None,
            first_byte_ms: None,
            head_parsed_ms: None,
            body_end_ms: None,
            response_head_written_ms: None,
            response_end_written_ms: None,
        }
    }
}

/// A redirect the sink answered (query `redirect=CODE&to=URL`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RedirectRecord {
    /// Id of the connection.
    pub connection_id: u64,
    /// Index of the request on its connection.
    pub request_index: u64,
    /// 301, 302, 303, 307 or 308.
    pub status: u16,
    /// The `Location` sent (the decoded `to`).
    pub location: String,
}

/// A snapshot of the sink's counters and records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SinkStats {
    /// Connections accepted: TCP, and QUIC with [`SinkConfig::h3`](crate::SinkConfig::h3)
    /// (counted when the client's first packet arrives).
    pub connections_accepted: u64,
    /// Requests whose head was received.
    pub requests: u64,
    /// Request body bytes read, over all requests.
    pub body_bytes: u64,
    /// One record per request, in arrival order (with
    /// [`SinkConfig::record_limit`](crate::SinkConfig::record_limit), the last that many).
    pub records: Vec<RequestRecord>,
    /// The raw-socket timings of each request: `timings[i]` belongs to
    /// `records[i]`.
    pub timings: Vec<RequestTiming>,
    /// The redirects answered, in order (with a record limit, the last that many).
    pub redirects: Vec<RedirectRecord>,
}

impl SinkStats {
    /// The timings of the request `request_index` on connection
    /// `connection_id`.
    pub fn timing(&self, connection_id: u64, request_index: u64) -> Option<&RequestTiming> {
        self.timings
            .iter()
            .find(|t| t.connection_id == connection_id && t.request_index == request_index)
    }
}

/// The records of requests as they finish, from [`SinkHandle::finished_records`](crate::SinkHandle::finished_records):
/// for a consumer that wants each request once (a log) rather than the sink's history.
///
/// The channel is bounded: when `capacity` records are waiting, newer ones are not queued but
/// counted in [`dropped`](Self::dropped), so a consumer that stalls costs at most `capacity`
/// records of memory. Records are allocated only while waiting.
#[derive(Debug)]
pub struct FinishedRecords {
    rx: mpsc::Receiver<RequestRecord>,
    dropped: Arc<AtomicU64>,
}

impl FinishedRecords {
    /// Waits for at least one finished request, then moves up to `limit` of those waiting into
    /// `buf` (in the order they finished) and returns how many. 0 once the sink is gone and
    /// every record has been received (or when `limit` is 0). Cancel-safe.
    pub async fn recv_many(&mut self, buf: &mut Vec<RequestRecord>, limit: usize) -> usize {
        self.rx.recv_many(buf, limit).await
    }

    /// The next waiting record, without waiting; `None` if there is none (yet).
    pub fn try_recv(&mut self) -> Option<RequestRecord> {
        self.rx.try_recv().ok()
    }

    /// How many finished requests were not queued because `capacity` records were waiting.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// The sending side of [`FinishedRecords`].
#[derive(Debug)]
struct Feed {
    tx: mpsc::Sender<RequestRecord>,
    dropped: Arc<AtomicU64>,
}

/// The live, shared statistics.
#[derive(Debug, Default)]
pub(crate) struct StatsInner {
    connections: AtomicU64,
    requests: AtomicU64,
    body_bytes: AtomicU64,
    records: Mutex<RecordStore>,
    redirects: Mutex<Window<RedirectRecord>>,
    connection_timers: Mutex<Window<Arc<IoTimer>>>,
    feed: Mutex<Option<Feed>>,
}

/// One request's record and timings, and whether the request has finished.
#[derive(Debug)]
struct Entry {
    record: RequestRecord,
    timing: RequestTiming,
    finished: bool,
}

/// The records, by their index in the arrival order: the last `limit` in a [`Window`]. A
/// request pushed out of the window while still in flight moves to `orphans` until it
/// finishes, so that what it still writes before then (its status, its byte count, its
/// stamps) reaches its [`FinishedRecords`] entry, and a poller waiting for it
/// (`records_since`) still finds it; `orphans` holds at most the requests in flight.
#[derive(Debug, Default)]
struct RecordStore {
    window: Window<Entry>,
    limit: Option<usize>,
    orphans: HashMap<usize, Entry>,
}

impl RecordStore {
    fn with_limit(limit: Option<usize>) -> Self {
        RecordStore {
            limit: limit.map(|l| l.max(1)),
            ..RecordStore::default()
        }
    }

    fn push(&mut self, entry: Entry) -> usize {
        let index = self.window.push(entry);
        if let Some(limit) = self.limit {
            while self.window.items.len() > limit {
                match self.window.pop_front() {
                    Some((i, e)) if !e.finished => {
                        self.orphans.insert(i, e);
                    }
                    Some(_) => {}
                    None => break,
                }
            }
        }
        index
    }

    fn get(&self, index: usize) -> Option<&Entry> {
        self.window.get(index).or_else(|| self.orphans.get(&index))
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut Entry> {
        match self.window.get_mut(index) {
            Some(e) => Some(e),
            None => self.orphans.get_mut(&index),
        }
    }

    /// Marks the request finished; an orphan leaves. Returns its record when `copy`.
    fn finish(&mut self, index: usize, copy: bool) -> Option<RequestRecord> {
        if let Some(e) = self.orphans.remove(&index) {
            return copy.then_some(e.record);
        }
        let e = self.window.get_mut(index)?;
        e.finished = true;
        copy.then(|| e.record.clone())
    }
}

/// The last `limit` items of a growing sequence, addressed by their index in the whole
/// sequence (a slot stays valid, or becomes a miss, as older items are dropped).
#[derive(Debug)]
struct Window<T> {
    /// Index of `items[0]` in the whole sequence.
    base: usize,
    items: VecDeque<T>,
    limit: Option<usize>,
}

impl<T> Default for Window<T> {
    fn default() -> Self {
        Window {
            base: 0,
            items: VecDeque::new(),
            limit: None,
        }
    }
}

impl<T> Window<T> {
    fn with_limit(limit: Option<usize>) -> Self {
        Window {
            limit,
            ..Window::default()
        }
    }

    /// Appends and returns the item's index in the whole sequence.
    fn push(&mut self, item: T) -> usize {
        self.items.push_back(item);
        if let Some(limit) = self.limit {
            while self.items.len() > limit.max(1) {
                self.items.pop_front();
                self.base += 1;
            }
        }
        self.base + self.items.len() - 1
    }

    /// One past the last index.
    fn end(&self) -> usize {
        self.base + self.items.len()
    }

    fn get(&self, index: usize) -> Option<&T> {
        self.items.get(index.checked_sub(self.base)?)
    }

    fn get_mut(&mut self, index: usize) -> Option<&mut T> {
        self.items.get_mut(index.checked_sub(self.base)?)
    }

    fn iter(&self) -> impl Iterator<Item = &T> {
        self.items.iter()
    }

    /// Removes the oldest item; returns it with its index.
    fn pop_front(&mut self) -> Option<(usize, T)> {
        let item = self.items.pop_front()?;
        self.base += 1;
        Some((self.base - 1, item))
    }
}

impl StatsInner {
    /// Statistics that keep only the last `limit` records, redirects and connection timings
    /// (`None`: all). Whatever else the sink keeps is O(1) per open connection and request in
    /// flight, so with a limit its memory does not grow with the requests it has served.
    pub fn with_record_limit(limit: Option<usize>) -> Self {
        StatsInner {
            records: Mutex::new(RecordStore::with_limit(limit)),
            redirects: Mutex::new(Window::with_limit(limit)),
            connection_timers: Mutex::new(Window::with_limit(limit)),
            ..StatsInner::default()
        }
    }

    /// Counts an accepted connection and returns its id (from 1).
    pub fn connection_accepted(&self) -> u64 {
        self.connections.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Keeps the timer of a new connection for [`Self::connection_timings`].
    pub fn add_connection_timer(&self, timer: Arc<IoTimer>) {
        lock(&self.connection_timers).push(timer);
    }

    /// Every connection's timing, by id.
    pub fn connection_timings(&self) -> Vec<ConnectionTiming> {
        let timers: Vec<Arc<IoTimer>> = lock(&self.connection_timers).iter().cloned().collect();
        let mut all: Vec<ConnectionTiming> = timers.iter().map(|t| t.snapshot()).collect();
        all.sort_by_key(|t| t.id);
        all
    }

    /// Adds body bytes to the global counter.
    pub fn add_body_bytes(&self, n: u64) {
        self.body_bytes.fetch_add(n, Ordering::Relaxed);
    }

    /// Stores the record of a new request and returns its slot.
    pub fn begin(&self, record: RequestRecord, timing: RequestTiming) -> usize {
        self.requests.fetch_add(1, Ordering::Relaxed);
        lock(&self.records).push(Entry {
            record,
            timing,
            finished: false,
        })
    }

    /// Updates the record in `slot`.
    pub fn update(&self, slot: usize, f: impl FnOnce(&mut RequestRecord)) {
        if let Some(e) = lock(&self.records).get_mut(slot) {
            f(&mut e.record);
        }
    }

    /// Updates the timings in `slot`.
    pub fn update_timing(&self, slot: usize, f: impl FnOnce(&mut RequestTiming)) {
        if let Some(e) = lock(&self.records).get_mut(slot) {
            f(&mut e.timing);
        }
    }

    /// A copy of the timings in `slot`.
    pub fn timing(&self, slot: usize) -> Option<RequestTiming> {
        lock(&self.records).get(slot).map(|e| e.timing.clone())
    }

    /// The request in `slot` has finished (its response handed over in full, or it ended
    /// without one): it may now leave the record store, and its record goes to the
    /// [`FinishedRecords`] subscriber, if there is one.
    pub fn finish(&self, slot: usize) {
        let feed = lock(&self.feed);
        let record = lock(&self.records).finish(slot, feed.is_some());
        if let (Some(feed), Some(record)) = (feed.as_ref(), record) {
            if let Err(mpsc::error::TrySendError::Full(_)) = feed.tx.try_send(record) {
                feed.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Sends the record of every request that finishes from now on to the returned receiver
    /// (replacing an earlier subscriber), at most `capacity` waiting at a time.
    pub fn subscribe(&self, capacity: usize) -> FinishedRecords {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let dropped = Arc::new(AtomicU64::new(0));
        *lock(&self.feed) = Some(Feed {
            tx,
            dropped: dropped.clone(),
        });
        FinishedRecords { rx, dropped }
    }

    /// Notes a redirect answered.
    pub fn add_redirect(&self, redirect: RedirectRecord) {
        lock(&self.redirects).push(redirect);
    }

    /// Copies of the records with index `start` and later, and of those at `also` (cheap to
    /// poll: only what the caller has not seen complete). With a record limit, the records
    /// dropped since are missing: a caller finds them as gaps in the indices (a request still
    /// in flight is not dropped before it finishes).
    pub fn records_since(
        &self,
        start: usize,
        also: &[usize],
    ) -> Vec<(usize, RequestRecord, RequestTiming)> {
        let records = lock(&self.records);
        let window = &records.window;
        also.iter()
            .copied()
            .filter(|&i| i < start)
            .chain(start.max(window.base)..window.end())
            .filter_map(|i| {
                records
                    .get(i)
                    .map(|e| (i, e.record.clone(), e.timing.clone()))
            })
            .collect()
    }

    /// A consistent-enough copy of everything.
    pub fn snapshot(&self) -> SinkStats {
        let (records, timings) = lock(&self.records)
            .window
            .iter()
            .map(|e| (e.record.clone(), e.timing.clone()))
            .unzip();
        SinkStats {
            connections_accepted: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            body_bytes: self.body_bytes.load(Ordering::Relaxed),
            records,
            timings,
            redirects: lock(&self.redirects).iter().cloned().collect(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod window_tests {
    use super::{RequestRecord, RequestTiming, StatsInner, Window};

    #[test]
    fn a_window_keeps_the_last_items_under_their_whole_sequence_index() {
        let mut w = Window::with_limit(Some(3));
        for i in 0..5 {
            assert_eq!(w.push(i * 10), i);
        }
        assert_eq!(w.end(), 5);
        assert_eq!(w.get(1), None, "dropped");
        assert_eq!(w.get(2), Some(&20));
        *w.get_mut(4).unwrap() += 1;
        assert_eq!(w.iter().copied().collect::<Vec<_>>(), [20, 30, 41]);
        let mut all = Window::with_limit(None);
        for i in 0..100 {
            all.push(i);
        }
        assert_eq!(all.get(0), Some(&0));
    }

    fn record(i: u64) -> (RequestRecord, RequestTiming) {
        let r = RequestRecord {
            connection_id: 1,
            request_index: i,
            method: "POST".into(),
            path: "/upload".into(),
            query: String::new(),
            protocol: "HTTP/1.1".into(),
            received_bytes: 0,
            status: None,
            head_received_ms: 0.0,
            body_received_ms: None,
            response_sent_ms: None,
        };
        (r, RequestTiming::new(1, i))
    }

    #[test]
    fn the_store_keeps_the_last_records_and_the_unfinished_until_they_finish() {
        let stats = StatsInner::with_record_limit(Some(3));
        let mut feed = stats.subscribe(100);
        let slots: Vec<usize> = (1..=1000)
            .map(|i| {
                let (r, t) = record(i);
                stats.begin(r, t)
            })
            .collect();
        // Every request but the first finishes at once.
        for &slot in &slots[1..] {
            stats.update(slot, |r| r.status = Some(200));
            stats.finish(slot);
        }
        let store = stats.records.lock().unwrap();
        assert_eq!(store.window.items.len(), 3, "the last 3");
        assert_eq!(store.orphans.len(), 1, "the one in flight");
        drop(store);
        // The first still takes its updates, and leaves once finished.
        stats.update(slots[0], |r| r.status = Some(201));
        stats.finish(slots[0]);
        assert!(stats.records.lock().unwrap().orphans.is_empty());
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.requests, 1000);
        let kept: Vec<u64> = snapshot.records.iter().map(|r| r.request_index).collect();
        assert_eq!(kept, [998, 999, 1000]);
        // The subscriber got the first 100 to finish, then counted the rest.
        let mut got = Vec::new();
        while let Some(r) = feed.try_recv() {
            got.push((r.request_index, r.status));
        }
        assert_eq!(got.len(), 100);
        assert_eq!(got[0], (2, Some(200)));
        assert_eq!(feed.dropped(), 900);
    }
}
