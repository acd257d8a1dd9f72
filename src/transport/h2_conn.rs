//! HTTP/2 connections: one per origin, shared by every concurrent upload as streams.
//!
//! A connection is made by the usual connect (Happy Eyeballs, TLS with ALPN `h2`, or plain TCP
//! for prior-knowledge h2c), wrapped in a [`FrameTap`] that times each stream's frames, and
//! handed to the `h2` crate, whose connection task runs until the connection ends. Uploads take a
//! stream on the pooled connection; `SendRequest::ready` makes them wait when the server's
//! `SETTINGS_MAX_CONCURRENT_STREAMS` is reached (the wait is queue time in the profile). A new
//! connection opens only when there is none, or the pooled one is closed or going away (GOAWAY).

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use h2::client::SendRequest;

use super::ack_counters::AckCounters;
use super::connect::Connection;
use super::frame_tap::{FrameTap, TapBook};
use super::mux_pool::{Multiplexed, MuxPool};
use super::route::Route;
use super::target::Origin;
use crate::error::{ErrorKind, UploadError};
use crate::measure::ConnectionInfo;

/// Flow-control and buffering settings for HTTP/2 connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct H2Settings {
    /// Our receive windows (responses are small; these are generous anyway).
    pub initial_window_size: u32,
    pub initial_connection_window_size: u32,
    /// Bytes h2 buffers per stream before `poll_capacity` waits (h2 writes one DATA frame per
    /// flush, so larger buffers mean larger writes).
    pub max_send_buffer_size: usize,
    /// rustls' outgoing plaintext limit, when not its default.
    pub tls_buffer_limit: Option<usize>,
    /// The client tracks acknowledgements: the connection gets the kernel's counters and its
    /// frame tap places streams' bytes (without, it only times frames).
    pub track_acks: bool,
}

/// One HTTP/2 connection and what the profile needs to know about it.
pub(crate) struct H2Connection {
    send: SendRequest<Bytes>,
    pub book: Arc<TapBook>,
    pub info: Arc<ConnectionInfo>,
    /// A duplicate of the TCP socket, for TCP_INFO (`rtt`).
    pub tcp_fd: Option<std::sync::Arc<OwnedFd>>,
    /// The kernel's acknowledgement counters, where it has them (per-stream acknowledged
    /// progress and `bodyAckedEnd`).
    pub acks: Option<AckCounters>,
    /// Streams started on it so far.
    streams_started: AtomicU64,
    /// Streams of ours open on it now, and the wake-up for uploads waiting for a slot.
    active: Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>,
    /// The connection task ended (closed, failed) — with the reason.
    closed: Arc<AtomicBool>,
    close_reason: Arc<Mutex<Option<String>>>,
    /// Why no new stream may go on it although it is open (see [`H2Connection::retire`]).
    retired: Mutex<Option<String>>,
}

impl H2Connection {
    /// Run the HTTP/2 handshake on a freshly opened connection and start its connection task.
    pub(crate) async fn handshake(
        conn: Connection,
        settings: H2Settings,
    ) -> Result<Arc<H2Connection>, UploadError> {
        let book = TapBook::new();
        let tcp_fd = conn.stream.tcp_fd().ok();
        let mut stream = conn.stream;
        if let Some(limit) = settings.tls_buffer_limit {
            stream.set_tls_buffer_limit(limit);
        }
        let acks = settings
            .track_acks
            .then(|| AckCounters::start(&stream))
            .flatten();
        let mut io = FrameTap::new(stream, book.clone());
        if acks.is_some() {
            io = io.tracking_acks();
        }
        let (send, driver) = h2::client::Builder::new()
            .initial_window_size(settings.initial_window_size)
            .initial_connection_window_size(settings.initial_connection_window_size)
            .max_send_buffer_size(settings.max_send_buffer_size)
            .enable_push(false)
            .handshake::<_, Bytes>(io)
            .await
            .map_err(|e| {
                UploadError::new(ErrorKind::InvalidResponse, format!("HTTP/2 handshake: {e}"))
            })?;
        let closed = Arc::new(AtomicBool::new(false));
        let close_reason = Arc::new(Mutex::new(None));
        let (c, r) = (closed.clone(), close_reason.clone());
        tokio::spawn(async move {
            let result = driver.await;
            *r.lock().unwrap_or_else(|p| p.into_inner()) = Some(match result {
                Ok(()) => "the connection closed".to_string(),
                Err(e) => e.to_string(),
            });
            c.store(true, Ordering::SeqCst);
        });
        Ok(Arc::new(H2Connection {
            send,
            book,
            info: conn.info,
            tcp_fd,
            acks,
            streams_started: AtomicU64::new(0),
            active: Arc::new((
                std::sync::atomic::AtomicUsize::new(0),
                tokio::sync::Notify::new(),
            )),
            closed,
            close_reason,
            retired: Mutex::new(None),
        }))
    }

    /// The connection can take new streams: its task runs and no GOAWAY arrived.
    pub(crate) fn is_usable(&self) -> bool {
        !self.closed.load(Ordering::SeqCst)
            && self.book.connection().goaway_received.is_none()
            && self.retired().is_none()
    }

    /// Take no new streams on this connection (it stays open for the streams on it; it closes
    /// when the last of them and the pool let go of it). The first reason is kept.
    pub(crate) fn retire(&self, reason: String) {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(reason);
    }

    /// Why the connection was retired, if it was.
    pub(crate) fn retired(&self) -> Option<String> {
        self.retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Why the connection ended, if it did.
    pub(crate) fn close_reason(&self) -> Option<String> {
        self.close_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Wait for room for one more stream under the server's `SETTINGS_MAX_CONCURRENT_STREAMS`
    /// (h2 would queue the stream inside itself, where the wait cannot be timed; this gate makes
    /// it the upload's queue time), then hand out a handle to open it and the slot, which frees
    /// when dropped. Also counts the stream as started.
    pub(crate) async fn ready(&self) -> Result<(SendRequest<Bytes>, StreamSlot, u64), h2::Error> {
        let slot = loop {
            let (count, wake) = &*self.active;
            let notified = wake.notified();
            let max = self
                .book
                .connection()
                .max_concurrent_streams
                .unwrap_or(u32::MAX) as usize;
            let now = count.load(Ordering::SeqCst);
            if now < max.max(1) {
                if count
                    .compare_exchange(now, now + 1, Ordering::SeqCst, Ordering::SeqCst)
                    .is_ok()
                {
                    break StreamSlot(self.active.clone());
                }
                continue;
            }
            // Also wake up now and then: the limit may rise with a new SETTINGS frame.
            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), notified).await;
        };
        let send = self.send.clone().ready().await?;
        let before = self.streams_started.fetch_add(1, Ordering::SeqCst);
        Ok((send, slot, before))
    }
}

/// How the failure of a whole connection reads: the same on every stream it ends, naming the
/// server's GOAWAY (code and last-stream-id) when one came.
pub(crate) fn connection_failure(book: &TapBook, error: impl std::fmt::Display) -> String {
    match book.connection().goaway_received {
        Some((last, code)) => format!(
            "the HTTP/2 connection failed: {error} (the server sent GOAWAY {:?} with last stream {last})",
            h2::Reason::from(code)
        ),
        None => format!("the HTTP/2 connection failed: {error}"),
    }
}

/// One of a connection's stream slots, held for the life of an upload's stream.
pub(crate) struct StreamSlot(Arc<(std::sync::atomic::AtomicUsize, tokio::sync::Notify)>);

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let (count, wake) = &*self.0;
        count.fetch_sub(1, Ordering::SeqCst);
        wake.notify_one();
    }
}

impl Multiplexed for H2Connection {
    fn is_usable(&self) -> bool {
        H2Connection::is_usable(self)
    }
}

/// The pooled HTTP/2 connections (one per origin), and the origins that answered ALPN with
/// HTTP/1.1.
#[derive(Default)]
pub(crate) struct H2Pool {
    pub conns: MuxPool<Route, H2Connection>,
    /// Origins whose server answered ALPN with HTTP/1.1: no point waiting on the lock.
    http1_only: Mutex<std::collections::HashSet<Origin>>,
}

impl H2Pool {
    /// Remember that `origin` does not speak HTTP/2.
    pub(crate) fn mark_http1_only(&self, origin: &Origin) {
        self.http1_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(origin.clone());
    }

    /// `origin` answered ALPN with HTTP/1.1 before.
    pub(crate) fn is_http1_only(&self, origin: &Origin) -> bool {
        self.http1_only
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(origin)
    }

    /// Drop the pooled connections (their streams in flight keep them alive until they end).
    pub(crate) fn clear(&self) {
        self.conns.clear();
    }

    /// HTTP/2 connections pooled now.
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }
}
