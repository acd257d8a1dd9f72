//! The `UploadTask` a call returns: a future of the result, plus abort and event listeners.
//!
//! As in the original, the upload starts at once and runs whether or not anyone awaits the
//! task: dropping an [`UploadTask`] detaches it (like dropping a `JoinHandle`); call
//! [`abort`](UploadTask::abort) to stop it. Listeners can be added and removed at any time,
//! also from inside a listener; they run on the runtime thread that drives the upload, so they
//! should be quick.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::error::{ErrorKind, UploadError};
use crate::headers::ResponseHeaders;
use crate::success::UploadSuccess;

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
pub struct ListenerId(u64);

type ProgressFn = Arc<dyn Fn(&ProgressUpdate) + Send + Sync>;
type HeadersFn = Arc<dyn Fn(&HeadersReceived) + Send + Sync>;

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

    fn next_id(&self) -> ListenerId {
        ListenerId(self.next_id.fetch_add(1, Ordering::Relaxed))
    }
}

/// A poisoned lock only means a listener panicked; the data is still consistent.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A cloneable handle on a running upload: abort it and manage its listeners from anywhere,
/// while the [`UploadTask`] itself is being awaited.
#[derive(Clone)]
pub struct TaskHandle {
    shared: Arc<TaskShared>,
}

impl TaskHandle {
    /// Abort the upload. It then fails with `uploadFile:fail abort` unless it had already
    /// finished; the connection it used is closed, never reused. Calling it again is harmless.
    pub fn abort(&self) {
        self.shared.abort_tx.send_replace(true);
    }

    /// Add a progress listener (`onProgressUpdate`).
    pub fn on_progress_update<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&ProgressUpdate) + Send + Sync + 'static,
    {
        let id = self.shared.next_id();
        lock(&self.shared.listeners)
            .progress
            .push((id, Arc::new(listener)));
        id
    }

    /// Remove the progress listener `id`, or all of them with `None` (`offProgressUpdate`).
    /// Returns whether anything was removed.
    pub fn off_progress_update(&self, id: Option<ListenerId>) -> bool {
        let mut l = lock(&self.shared.listeners);
        let before = l.progress.len();
        match id {
            Some(id) => l.progress.retain(|(i, _)| *i != id),
            None => l.progress.clear(),
        }
        l.progress.len() != before
    }

    /// Add a headers-received listener (`onHeadersReceived`).
    pub fn on_headers_received<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&HeadersReceived) + Send + Sync + 'static,
    {
        let id = self.shared.next_id();
        lock(&self.shared.listeners)
            .headers
            .push((id, Arc::new(listener)));
        id
    }

    /// Remove the headers-received listener `id`, or all of them with `None`
    /// (`offHeadersReceived`). Returns whether anything was removed.
    pub fn off_headers_received(&self, id: Option<ListenerId>) -> bool {
        let mut l = lock(&self.shared.listeners);
        let before = l.headers.len();
        match id {
            Some(id) => l.headers.retain(|(i, _)| *i != id),
            None => l.headers.clear(),
        }
        l.headers.len() != before
    }
}

/// A running upload: a [`Future`] of its result, with abort and event listeners.
///
/// ```no_run
/// # async fn demo() -> Result<(), uploadfile::UploadError> {
/// use uploadfile::{upload_file, UploadOptions};
/// let task = upload_file(UploadOptions::new("http://127.0.0.1:8080/upload", "photo.png", "file"));
/// task.on_progress_update(|p| eprintln!("{}%", p.progress));
/// let res = task.await?;
/// println!("{} {}", res.status_code, res.data);
/// # Ok(()) }
/// ```
pub struct UploadTask {
    handle: TaskHandle,
    result: oneshot::Receiver<Result<UploadSuccess, UploadError>>,
}

impl UploadTask {
    pub(crate) fn new(
        shared: Arc<TaskShared>,
        result: oneshot::Receiver<Result<UploadSuccess, UploadError>>,
    ) -> Self {
        UploadTask {
            handle: TaskHandle { shared },
            result,
        }
    }

    /// A cloneable handle for aborting and listening from elsewhere.
    pub fn handle(&self) -> TaskHandle {
        self.handle.clone()
    }

    /// See [`TaskHandle::abort`].
    pub fn abort(&self) {
        self.handle.abort()
    }

    /// See [`TaskHandle::on_progress_update`].
    pub fn on_progress_update<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&ProgressUpdate) + Send + Sync + 'static,
    {
        self.handle.on_progress_update(listener)
    }

    /// See [`TaskHandle::off_progress_update`].
    pub fn off_progress_update(&self, id: Option<ListenerId>) -> bool {
        self.handle.off_progress_update(id)
    }

    /// See [`TaskHandle::on_headers_received`].
    pub fn on_headers_received<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&HeadersReceived) + Send + Sync + 'static,
    {
        self.handle.on_headers_received(listener)
    }

    /// See [`TaskHandle::off_headers_received`].
    pub fn off_headers_received(&self, id: Option<ListenerId>) -> bool {
        self.handle.off_headers_received(id)
    }
}

impl Future for UploadTask {
    type Output = Result<UploadSuccess, UploadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match Pin::new(&mut self.result).poll(cx) {
            Poll::Ready(Ok(result)) => Poll::Ready(result),
            Poll::Ready(Err(_)) => Poll::Ready(Err(UploadError::new(
                ErrorKind::ClientClosed,
                "the runtime driving the upload shut down before it finished",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[test]
    fn progress_is_monotonic_and_listeners_can_be_removed() {
        let shared = TaskShared::new();
        let handle = TaskHandle {
            shared: shared.clone(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let id = handle.on_progress_update(move |p| s.lock().unwrap().push(p.total_bytes_sent));
        shared.emit_progress(10, 100);
        shared.emit_progress(5, 100); // a retry re-sending: not reported
        shared.emit_progress(100, 100);
        assert_eq!(*seen.lock().unwrap(), vec![10, 100]);
        assert!(handle.off_progress_update(Some(id)));
        assert!(!handle.off_progress_update(Some(id)));
        shared.emit_progress(200, 200);
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_listener_may_remove_listeners_while_running() {
        let shared = TaskShared::new();
        let handle = TaskHandle {
            shared: shared.clone(),
        };
        let calls = Arc::new(AtomicU32::new(0));
        let (h, c) = (handle.clone(), calls.clone());
        handle.on_progress_update(move |_| {
            c.fetch_add(1, Ordering::SeqCst);
            h.off_progress_update(None);
        });
        shared.emit_progress(1, 2);
        shared.emit_progress(2, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn percent_rounds_down_and_reaches_100_only_at_the_end() {
        let shared = TaskShared::new();
        let handle = TaskHandle {
            shared: shared.clone(),
        };
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        handle.on_progress_update(move |p| s.lock().unwrap().push(p.progress));
        shared.emit_progress(999, 1000);
        shared.emit_progress(1000, 1000);
        assert_eq!(*seen.lock().unwrap(), vec![99, 100]);
    }
}
