//! When quinn processed the ACK frames of a QUIC connection, and when a finished stream became
//! fully acknowledged.
//!
//! # Why
//!
//! quinn's public API tells whether a finished stream's data was all acknowledged
//! (`SendStream::stopped()` resolving with no code) but not *when*: the future resolves when the
//! upload task next runs, which can trail the acknowledgement and even land after the response
//! began. It has no per-stream acknowledged offset at all. What it does let a user plug in is
//! the congestion controller (`TransportConfig::congestion_controller_factory`), and quinn calls
//! that with every batch of newly acknowledged packets, passing the instant quinn received the
//! datagram carrying the ACK frame (`Controller::on_end_acks(now, ..)`).
//!
//! So, with no change to quinn:
//!
//! - [`LoggedCubic`] is quinn's default controller (Cubic), every call forwarded unchanged, that
//!   also keeps the instants of the recent ACK batches in the connection's [`AckLog`];
//! - [`stamped_stop`] polls `stopped()` through a waker that notes when quinn's connection driver
//!   woke it — the driver does that in the same pass in which it processed the ACK that
//!   completed the stream — and, once it resolves, the stream's acknowledged end is the latest
//!   ACK batch at or before that wake: the instant quinn received the acknowledgement.
//!
//! What is still missing from quinn for full parity with TCP: the acknowledged offset of a
//! stream (so acknowledged *progress* per stream; packets carry several streams' frames and the
//! controller sees packets, not frames). Progress over HTTP/3 therefore stays "written".

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use quinn::congestion::{Controller, ControllerFactory, CubicConfig};
use quinn_proto::RttEstimator;

/// ACK batches remembered per connection (a stream looks back at most a few).
const LOG_LEN: usize = 256;

/// The instants of a connection's recent ACK batches, as quinn processed them.
#[derive(Debug, Default)]
pub(crate) struct AckLog {
    batches: Mutex<VecDeque<Instant>>,
}

impl AckLog {
    fn record(&self, now: Instant) {
        let mut batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        if batches.len() >= LOG_LEN {
            batches.pop_front();
        }
        batches.push_back(now);
    }

    /// The latest ACK batch at or before `t`.
    pub(crate) fn latest_until(&self, t: Instant) -> Option<Instant> {
        let batches = self.batches.lock().unwrap_or_else(PoisonError::into_inner);
        batches.iter().rev().find(|&&b| b <= t).copied()
    }
}

/// The controller factory of one connection: quinn's default Cubic, logged into `log`.
#[derive(Debug)]
pub(crate) struct LoggedCubicFactory {
    pub log: Arc<AckLog>,
    pub config: Arc<CubicConfig>,
}

impl ControllerFactory for LoggedCubicFactory {
    fn build(self: Arc<Self>, now: Instant, current_mtu: u16) -> Box<dyn Controller> {
        Box::new(LoggedCubic {
            inner: self.config.clone().build(now, current_mtu),
            log: self.log.clone(),
        })
    }
}

/// A controller that forwards everything to Cubic and logs when ACK batches were processed.
pub(crate) struct LoggedCubic {
    inner: Box<dyn Controller>,
    log: Arc<AckLog>,
}

impl Controller for LoggedCubic {
    fn on_sent(&mut self, now: Instant, bytes: u64, last_packet_number: u64) {
        self.inner.on_sent(now, bytes, last_packet_number);
    }

    fn on_ack(
        &mut self,
        now: Instant,
        sent: Instant,
        bytes: u64,
        app_limited: bool,
        rtt: &RttEstimator,
    ) {
        self.inner.on_ack(now, sent, bytes, app_limited, rtt);
    }

    fn on_end_acks(
        &mut self,
        now: Instant,
        in_flight: u64,
        app_limited: bool,
        largest_packet_num_acked: Option<u64>,
    ) {
        self.log.record(now);
        self.inner
            .on_end_acks(now, in_flight, app_limited, largest_packet_num_acked);
    }

    fn on_congestion_event(
        &mut self,
        now: Instant,
        sent: Instant,
        is_persistent_congestion: bool,
        lost_bytes: u64,
    ) {
        self.inner
            .on_congestion_event(now, sent, is_persistent_congestion, lost_bytes);
    }

    fn on_mtu_update(&mut self, new_mtu: u16) {
        self.inner.on_mtu_update(new_mtu);
    }

    fn window(&self) -> u64 {
        self.inner.window()
    }

    fn metrics(&self) -> quinn::congestion::ControllerMetrics {
        self.inner.metrics()
    }

    fn clone_box(&self) -> Box<dyn Controller> {
        Box::new(LoggedCubic {
            inner: self.inner.clone_box(),
            log: self.log.clone(),
        })
    }

    fn initial_window(&self) -> u64 {
        self.inner.initial_window()
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        // Whoever downcasts expects quinn's own controller.
        self.inner.into_any()
    }
}

/// A fresh log and the factory that fills it, for one connection.
pub(crate) fn logged_cubic() -> (Arc<AckLog>, Arc<LoggedCubicFactory>) {
    let log = Arc::new(AckLog::default());
    let factory = Arc::new(LoggedCubicFactory {
        log: log.clone(),
        config: Arc::new(CubicConfig::default()),
    });
    (log, factory)
}

/// When a finished stream was acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StreamAcked {
    /// The acknowledgement's time.
    pub at: Instant,
    /// `true`: the ACK batch quinn processed (see the module docs); `false`: no batch was
    /// logged before the wake-up, so the wake-up (or the first poll) stands in.
    pub from_ack: bool,
}

/// Wakes the task and notes when it was woken.
struct StampingWaker {
    task: Mutex<Option<Waker>>,
    woken_at: Mutex<Option<Instant>>,
}

impl Wake for StampingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        *self.woken_at.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        if let Some(w) = self
            .task
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            w.wake_by_ref();
        }
    }
}

/// `stopped` (a finished stream's `SendStream::stopped()`), resolving to when every byte of the
/// stream was acknowledged, or `None` if the peer stopped the stream or the connection was lost
/// first.
pub(crate) fn stamped_stop<F, E>(
    stopped: F,
    log: Arc<AckLog>,
) -> impl Future<Output = Option<StreamAcked>> + Send + 'static
where
    F: Future<Output = Result<Option<quinn::VarInt>, E>> + Send + 'static,
{
    let waker = Arc::new(StampingWaker {
        task: Mutex::new(None),
        woken_at: Mutex::new(None),
    });
    let inner_waker = Waker::from(waker.clone());
    let mut stopped = Box::pin(stopped);
    std::future::poll_fn(move |cx: &mut Context<'_>| {
        *waker.task.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        let mut inner = Context::from_waker(&inner_waker);
        let result = match Pin::new(&mut stopped).poll(&mut inner) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(result) => result,
        };
        let Ok(None) = result else {
            return Poll::Ready(None);
        };
        let woken = *waker
            .woken_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let until = woken.unwrap_or_else(Instant::now);
        Poll::Ready(Some(match log.latest_until(until) {
            Some(at) => StreamAcked { at, from_ack: true },
            None => StreamAcked {
                at: until,
                from_ack: false,
            },
        }))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_latest_batch_until_a_moment() {
        let log = AckLog::default();
        let t0 = Instant::now();
        for ms in [1, 5, 9] {
            log.record(t0 + Duration::from_millis(ms));
        }
        assert_eq!(log.latest_until(t0), None);
        assert_eq!(
            log.latest_until(t0 + Duration::from_millis(6)),
            Some(t0 + Duration::from_millis(5))
        );
        assert_eq!(
            log.latest_until(t0 + Duration::from_secs(1)),
            Some(t0 + Duration::from_millis(9))
        );
        for _ in 0..1000 {
            log.record(t0);
        }
        assert_eq!(log.batches.lock().unwrap().len(), LOG_LEN);
    }

    #[tokio::test]
    async fn the_acknowledged_end_is_the_batch_before_the_wake_not_the_poll() {
        let log = Arc::new(AckLog::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let stopped = async move {
            let _ = rx.await;
            Ok::<_, ()>(None)
        };
        let watch = tokio::spawn(stamped_stop(stopped, log.clone()));
        tokio::time::sleep(Duration::from_millis(5)).await;
        let batch = Instant::now();
        log.record(batch);
        tx.send(()).unwrap(); // the "driver" wakes the stream's waker now
        let woke = Instant::now();
        // The task notices later; the answer is still the batch.
        let got = watch.await.unwrap().unwrap();
        assert_eq!(
            got,
            StreamAcked {
                at: batch,
                from_ack: true
            }
        );
        assert!(got.at <= woke);
    }

    #[tokio::test]
    async fn a_stopped_stream_has_no_acknowledged_end() {
        let log = Arc::new(AckLog::default());
        let stopped = async { Ok::<_, ()>(Some(quinn::VarInt::from_u32(7))) };
        assert_eq!(stamped_stop(stopped, log).await, None);
    }
}
