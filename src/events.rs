//! What a running upload tells the outside while it runs, and how it is told to stop.
//!
//! [`TaskShared`] is the state shared between an [`UploadTask`](crate::UploadTask)'s handles
//! (which add and remove listeners and ask for an abort) and the code driving the upload (which
//! emits progress and headers events and watches for the abort). It sits below both, so the
//! driver (`call`) does not depend on the API types that wrap it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

use crate::headers::ResponseHeaders;

/// A progress event (`onProgressUpdate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressUpdate {
    /// Percent of the body written, rounded down (100 only when every byte is written).
    pub progress: u32,
    /// Body bytes written so far.
    pub total_bytes_sent: u64,
    /// Body bytes to write in all (the multipart body's `Content-Length`).
    pub total_bytes_expected_to_send: u64,
}

/// A headers-received event (`onHeadersReceived`): the final response's headers, before the
/// body has arrived.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeadersReceived {
    /// The response headers.
    pub header: ResponseHeaders,
    /// The status code (an addition to the original's event).
    #[serde(rename = "statusCode")]
    pub status_code: u16,
}

/// The handle a listener registration returns, to remove that listener again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) u64);

pub(crate) type ProgressFn = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;
pub(crate) type HeadersFn = Arc<dyn Fn(&HeadersReceived) + Send + Sync>;

#[derive(Default)]
struct Listeners {
    progress: Vec<(ListenerId, ProgressFn)>,
    headers: Vec<(ListenerId, HeadersFn)>,
}

#[derive(Default)]
struct ProgressState {
    last_sent: Option<u64>,
}

/// State shared between the task's handles and the driver of the upload.
pub(crate) struct TaskShared {
    abort_tx: watch::Sender<bool>,
    listeners: Mutex<Listeners>,
    progress: Mutex<ProgressState>,
    next_id: AtomicU64,
}

impl TaskShared {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(TaskShared {
            abort_tx: watch::channel(false).0,
            listeners: Mutex::new(Listeners::default()),
            progress: Mutex::new(ProgressState::default()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Resolves once `abort()` was called (at once if it already was).
    pub(crate) async fn aborted(&self) {
        let mut rx = self.abort_tx.subscribe();
        // wait_for only errs when the sender is gone, and `self` holds it.
        let _ = rx.wait_for(|aborted| *aborted).await;
    }

    pub(crate) fn is_aborted(&self) -> bool {
        *self.abort_tx.borrow()
    }

    /// Report body progress. Never goes backwards: a retry on a fresh connection re-sends bytes
    /// already reported, and those are not reported again.
    pub(crate) fn emit_progress(&self, sent: u64, total: u64) {
        {
            let mut state = lock(&self.progress);
            if matches!(state.last_sent, Some(last) if sent <= last) {
                return;
            }
            state.last_sent = Some(sent);
        }
        let progress = if total == 0 {
            100
        } else {
            ((sent.min(total) as u128 * 100) / total as u128) as u32
        };
        let event = ProgressUpdate {
            progress,
            total_bytes_sent: sent,
            total_bytes_expected_to_send: total,
        };
        let listeners: Vec<ProgressFn> = lock(&self.listeners)
            .progress
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            f(&event);
        }
    }

    pub(crate) fn emit_headers(&self, event: &HeadersReceived) {
        let listeners: Vec<HeadersFn> = lock(&self.listeners)
            .headers
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            f(event);
        }
    }

    /// Ask the upload to stop (idempotent).
    pub(crate) fn abort(&self) {
        self.abort_tx.send_replace(true);
    }

    /// Add a progress listener.
    pub(crate) fn add_progress_listener(&self, listener: ProgressFn) -> ListenerId {
        let id = self.next_id();
        lock(&self.listeners).progress.push((id, listener));
        id
    }

    /// Remove the progress listener `id`, or all with `None`; whether anything was removed.
    pub(crate) fn remove_progress_listener(&self, id: Option<ListenerId>) -> bool {
        let mut l = lock(&self.listeners);
        let before = l.progress.len();
        match id {
            Some(id) => l.progress.retain(|(i, _)| *i != id),
            None => l.progress.clear(),
        }
        l.progress.len() != before
    }

    /// Add a headers-received listener.
    pub(crate) fn add_headers_listener(&self, listener: HeadersFn) -> ListenerId {
        let id = self.next_id();
        lock(&self.listeners).headers.push((id, listener));
        id
    }

    /// Remove the headers-received listener `id`, or all with `None`; whether anything was
    /// removed.
    pub(crate) fn remove_headers_listener(&self, id: Option<ListenerId>) -> bool {
        let mut l = lock(&self.listeners);
        let before = l.headers.len();
        match id {
            Some(id) => l.headers.retain(|(i, _)| *i != id),
            None => l.headers.clear(),
        }
        l.headers.len() != before
    }

    fn next_id(&self) -> ListenerId {
        ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A poisoned lock only means a listener panicked; the data is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
