//! The `UploadTask` a call returns: a future of the result, plus abort and event listeners.
//!
//! As in the original, the upload starts at once and runs whether or not anyone awaits the
//! task: dropping an [`UploadTask`] detaches it (like dropping a `JoinHandle`); call
//! [`abort`](UploadTask::abort) to stop it. Listeners can be added and removed at any time,
//! also from inside a listener; they run on the runtime thread that drives the upload, so they
//! should be quick.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::{ErrorKind, UploadError};
use crate::events::TaskShared;
pub use crate::events::{HeadersReceived, ListenerId, ProgressUpdate};
use crate::success::UploadSuccess;

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
        self.shared.abort();
    }

    /// Add a progress listener (`onProgressUpdate`).
    pub fn on_progress_update<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&ProgressUpdate) + Send + Sync + 'static,
    {
        self.shared.add_progress_listener(Arc::new(listener))
    }

    /// Remove the progress listener `id`, or all of them with `None` (`offProgressUpdate`).
    /// Returns whether anything was removed.
    pub fn off_progress_update(&self, id: Option<ListenerId>) -> bool {
        self.shared.remove_progress_listener(id)
    }

    /// Add a headers-received listener (`onHeadersReceived`).
    pub fn on_headers_received<F>(&self, listener: F) -> ListenerId
    where
        F: Fn(&HeadersReceived) + Send + Sync + 'static,
    {
        self.shared.add_headers_listener(Arc::new(listener))
    }

    /// Remove the headers-received listener `id`, or all of them with `None`
    /// (`offHeadersReceived`). Returns whether anything was removed.
    pub fn off_headers_received(&self, id: Option<ListenerId>) -> bool {
        self.shared.remove_headers_listener(id)
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
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;

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
