//! Raw-socket timing: the two clocks ([`now_ms`], [`Stamp`]), precise
//! deadlines, and the per-connection state that turns the notes of each
//! accepted connection's IO wrapper (`timed_io::TimedIo`: when reads returned
//! and writes completed) into the per-request timestamps of
//! [`RequestTiming`](crate::RequestTiming).
//!
//! The state is O(1) per connection: only the reads and writes that can
//! still answer a question about the current request are kept (the last
//! read, the first read after the last request boundary, the last read
//! before it, the last write, and what the in-flight response waits for).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// Milliseconds since the Unix epoch, as an `f64` (sub-millisecond precision).
pub fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// One moment on both clocks: the monotonic `Instant` and `SystemTime`
/// (CLOCK_REALTIME) in ms since the Unix epoch, read one right after the
/// other.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Stamp {
    pub at: Instant,
    pub wall_ms: f64,
}

impl Stamp {
    pub fn now() -> Self {
        Stamp {
            at: Instant::now(),
            wall_ms: now_ms(),
        }
    }
}

/// A precise deadline. tokio's timer fires 0.5 to 2 ms (under load 4 ms and
/// more) late: its wheel has 1 ms ticks and rounds deadlines up. A
/// `Deadline` is instead woken by one shared timer thread that sleeps on a
/// condition variable with a timeout (a high-resolution kernel timer, ~50 µs
/// of slack), so the task is polled within ~0.1 ms of the deadline on an
/// idle machine, without burning CPU in the meantime.
pub(crate) struct Deadline {
    target: Instant,
    id: Option<u64>,
}

impl Deadline {
    pub fn new(target: Instant) -> Self {
        Deadline { target, id: None }
    }
}

impl Future for Deadline {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.target {
            if let Some(id) = self.id.take() {
                precise_timer().cancel(id);
            }
            return Poll::Ready(());
        }
        let id = precise_timer().register(self.id, self.target, cx.waker());
        self.id = Some(id);
        Poll::Pending
    }
}

impl Drop for Deadline {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            precise_timer().cancel(id);
        }
    }
}

/// Waits until `target` precisely (see [`Deadline`]).
pub(crate) async fn sleep_until(target: Instant) {
    Deadline::new(target).await
}

/// The last deadline id given out, and deadline id to (deadline, waker).
type Agenda = (u64, HashMap<u64, (Instant, Waker)>);

/// The timer thread's state.
#[derive(Default)]
struct PreciseTimer {
    agenda: Mutex<Agenda>,
    changed: Condvar,
}

impl PreciseTimer {
    fn lock(&self) -> std::sync::MutexGuard<'_, Agenda> {
        self.agenda.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds or updates a deadline; returns its id.
    fn register(&self, id: Option<u64>, target: Instant, waker: &Waker) -> u64 {
        let mut agenda = self.lock();
        let id = id.unwrap_or_else(|| {
            agenda.0 += 1;
            agenda.0
        });
        match agenda.1.get_mut(&id) {
            Some((_, w)) if w.will_wake(waker) => return id,
            Some((_, w)) => *w = waker.clone(),
            None => {
                agenda.1.insert(id, (target, waker.clone()));
            }
        }
        drop(agenda);
        self.changed.notify_one();
        id
    }

    fn cancel(&self, id: u64) {
        self.lock().1.remove(&id);
    }

    fn run(&self) {
        let mut agenda = self.lock();
        loop {
            let now = Instant::now();
            let due: Vec<u64> = agenda
                .1
                .iter()
                .filter(|(_, (at, _))| *at <= now)
                .map(|(id, _)| *id)
                .collect();
            if !due.is_empty() {
                let wakers: Vec<Waker> = due
                    .iter()
                    .filter_map(|id| agenda.1.remove(id).map(|(_, w)| w))
                    .collect();
                drop(agenda);
                wakers.into_iter().for_each(Waker::wake);
                agenda = self.lock();
                continue;
            }
            let next = agenda.1.values().map(|(at, _)| *at).min();
            agenda = match next {
                None => self.changed.wait(agenda).unwrap_or_else(|e| e.into_inner()),
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    match self.changed.wait_timeout(agenda, wait) {
                        Ok((guard, _)) => guard,
                        Err(e) => e.into_inner().0,
                    }
                }
            };
        }
    }
}

/// The process-wide timer thread, started on first use.
fn precise_timer() -> &'static PreciseTimer {
    static TIMER: OnceLock<&'static PreciseTimer> = OnceLock::new();
    TIMER.get_or_init(|| {
        let timer: &'static PreciseTimer = Box::leak(Box::default());
        let spawned = std::thread::Builder::new()
            .name("uploadfile-sink-timer".into())
            .spawn(move || timer.run());
        if let Err(e) = spawned {
            panic!("uploadfile-sink: cannot start the timer thread: {e}");
        }
        timer
    })
}

/// When a connection was accepted and its TLS handshake completed.
///
/// The `Instant`s are on the process's monotonic clock, directly comparable
/// with a client's `Instant`s in the same process; the `*_ms` fields are the
/// same moments on the wall clock (`SystemTime`, ms since the Unix epoch),
/// for comparisons across processes.
///
/// For a QUIC connection (HTTP/3): `accepted` is when the endpoint handed
/// over the client's first packet, `tls_done` when quinn completed the
/// handshake, and the byte counts stay 0 (there is no socket of its own).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionTiming {
    /// Connection id (the `connection_id` of its requests), from 1.
    pub id: u64,
    /// Right after `accept` returned the connection.
    #[serde(skip)]
    pub accepted: Instant,
    /// The TLS handshake completed (the server's last handshake flight,
    /// including TLS 1.3 session tickets, was written and flushed); `None`
    /// without TLS or before completion.
    #[serde(skip)]
    pub tls_done: Option<Instant>,
    /// `accepted` on the wall clock.
    pub accepted_ms: f64,
    /// `tls_done` on the wall clock.
    pub tls_done_ms: Option<f64>,
    /// Raw bytes read from the socket so far (TLS records included).
    pub bytes_read: u64,
    /// Raw bytes written to the socket so far (TLS records included).
    pub bytes_written: u64,
}

/// What the connection's IO wrapper knows, shared with the service.
#[derive(Debug)]
pub(crate) struct IoTimer {
    id: u64,
    accepted: Stamp,
    state: Mutex<IoState>,
}

#[derive(Debug, Default)]
struct IoState {
    tls_done: Option<Stamp>,
    bytes_read: u64,
    bytes_written: u64,
    /// The most recent read that returned data.
    last_read: Option<Stamp>,
    /// `last_read` at the last request boundary.
    read_before_mark: Option<Stamp>,
    /// The first read that returned data after the last request boundary.
    first_read_after_mark: Option<Stamp>,
    /// The most recent write that wrote something.
    last_write: Option<Stamp>,
    /// The response whose first byte is awaited: (record slot, bytes
    /// written before it).
    head_watch: Option<(usize, u64)>,
    /// The response whose body was handed over in full, waiting for the
    /// flush that follows its last write.
    end_watch: Option<usize>,
}

impl IoTimer {
    /// A connection accepted at `accepted`.
    pub fn new(id: u64, accepted: Stamp) -> Self {
        IoTimer {
            id,
            accepted,
            state: Mutex::new(IoState::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, IoState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The public view.
    pub fn snapshot(&self) -> ConnectionTiming {
        let s = self.lock();
        ConnectionTiming {
            id: self.id,
            accepted: self.accepted.at,
            tls_done: s.tls_done.map(|t| t.at),
            accepted_ms: self.accepted.wall_ms,
            tls_done_ms: s.tls_done.map(|t| t.wall_ms),
            bytes_read: s.bytes_read,
            bytes_written: s.bytes_written,
        }
    }

    /// Notes a read that returned `n` bytes.
    pub fn on_read(&self, n: usize) {
        let stamp = Stamp::now();
        let mut s = self.lock();
        s.bytes_read += n as u64;
        s.last_read = Some(stamp);
        s.first_read_after_mark.get_or_insert(stamp);
    }

    /// Notes a write; returns the response whose first byte it carried.
    pub fn on_write(&self, n: usize) -> Option<(usize, Stamp)> {
        let stamp = Stamp::now();
        let mut s = self.lock();
        s.bytes_written += n as u64;
        s.last_write = Some(stamp);
        match s.head_watch {
            Some((slot, before)) if s.bytes_written > before => {
                s.head_watch = None;
                Some((slot, stamp))
            }
            _ => None,
        }
    }

    /// Notes a completed flush of the raw socket: everything written above
    /// it is now in the kernel. Returns the response whose last byte the
    /// last write carried, if one was waiting for this.
    pub fn on_flush(&self) -> Option<(usize, Stamp)> {
        let mut s = self.lock();
        if s.head_watch.is_some() {
            return None;
        }
        let slot = s.end_watch?;
        let last = s.last_write?;
        s.end_watch = None;
        Some((slot, last))
    }

    /// A request boundary: reads from now on belong to the next request.
    fn mark(s: &mut IoState) {
        s.read_before_mark = s.last_read;
        s.first_read_after_mark = None;
    }

    /// The TLS handshake completed.
    pub fn tls_done(&self) {
        let stamp = Stamp::now();
        let mut s = self.lock();
        s.tls_done = Some(stamp);
        Self::mark(&mut s);
    }

    /// The most recent read that returned data.
    pub fn last_read(&self) -> Option<Stamp> {
        self.lock().last_read
    }

    /// An HTTP/1 request head was parsed: the read that returned its first
    /// byte. That is the first read after the previous boundary; if there
    /// was none, the head arrived in the same read as the end of the
    /// previous request (pipelining, or TLS 1.3 data right behind the
    /// client's Finished), which is the last read before the boundary.
    pub fn request_head(&self) -> Option<Stamp> {
        let s = self.lock();
        s.first_read_after_mark.or(s.read_before_mark)
    }

    /// The request body ended: the last read that returned data, which is
    /// the one that delivered the last body byte. On HTTP/1 this is also a
    /// request boundary.
    pub fn body_end(&self, boundary: bool) -> Option<Stamp> {
        let mut s = self.lock();
        let last = s.last_read;
        if boundary {
            Self::mark(&mut s);
        }
        last
    }

    /// The service returned the response of `slot` (HTTP/1): its first byte
    /// is the next byte written to the socket.
    pub fn response_started(&self, slot: usize) {
        let mut s = self.lock();
        s.head_watch = Some((slot, s.bytes_written));
        s.end_watch = None;
    }

    /// The response body of `slot` was handed to hyper in full (HTTP/1): the
    /// next completed flush follows the write of its last byte.
    pub fn response_body_done(&self, slot: usize) {
        self.lock().end_watch = Some(slot);
    }
}
