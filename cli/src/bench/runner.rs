//! The load loop: `concurrency` workers sharing one client, each starting its next upload as
//! soon as its last one ended (a closed loop, as `ab` and `hey` do).
//!
//! A closed loop measures what the endpoint gives `concurrency` clients that each wait for their
//! answer; it never piles up more uploads than the server is taking (an open loop at a fixed
//! rate would measure the queue instead). Every worker takes a ticket before it starts an
//! upload, so `-n` is exact with any concurrency; `--duration` is checked before each ticket,
//! and uploads in flight when it runs out end normally (each bounded by `--timeout`) and are
//! counted. A stop signal (Ctrl-C, or an upload failing in a way no retry can change) aborts the
//! uploads in flight: those aborted ones are not counted.
//!
//! The workers are spread over the lanes (`lanes`: threads with a runtime and a client each),
//! worker `i` on lane `i mod N`; they share the tickets, the deadline and the stop signal.
//!
//! Warm-up uploads run first, with the same workers and client, and are waited for before the
//! counted part starts, so the counted part's wall time and waterfall hold only counted uploads
//! (on connections the warm-up may have opened).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use uploadfile::{clock, Client, ErrorKind, UploadOptions};

use super::lanes::Lanes;

use super::report::{RunFacts, StopReason};
use super::sample::Sample;

/// What stops the workers early.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Nothing: keep going.
    Running,
    /// Ctrl-C.
    Interrupted,
    /// An upload failed with a usage error (bad URL, missing file, ...): its `errMsg`.
    Usage(String),
}

/// How much to do.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Plan {
    /// Uploads made first and not counted.
    pub warmup: u64,
    /// Counted uploads, if limited by count.
    pub requests: Option<u64>,
    /// How long to keep starting counted uploads, if limited by time.
    pub duration: Option<Duration>,
    /// Workers (uploads in flight at once).
    pub concurrency: usize,
}

/// Live counters for a progress line.
#[derive(Debug, Default)]
pub struct Counters {
    /// Counted uploads ended.
    pub done: AtomicU64,
    /// Of those, failed.
    pub failed: AtomicU64,
    /// Warm-up uploads ended.
    pub warmup_done: AtomicU64,
}

/// Failures that no retry changes: the run stops with exit status 2.
pub fn is_usage_error(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::InvalidOptions
            | ErrorKind::InvalidUrl
            | ErrorKind::InvalidHeader
            | ErrorKind::FileNotFound
            | ErrorKind::NotAFile
            | ErrorKind::Config
    )
}

/// Runs the warm-up, then the counted part. `Err` carries the `errMsg` of a usage error.
pub async fn execute(
    lanes: &Lanes,
    options: UploadOptions,
    plan: Plan,
    stop: Arc<watch::Sender<Stop>>,
    counters: Arc<Counters>,
) -> Result<(Vec<Sample>, RunFacts), String> {
    let options = Arc::new(options);
    if plan.warmup > 0 {
        let warm = Phase {
            limit: Some(plan.warmup),
            deadline: None,
            counted: false,
            started: Instant::now(),
        };
        warm.run(lanes, &options, plan.concurrency, &stop, &counters)
            .await;
    }
    if let Stop::Usage(msg) = &*stop.borrow() {
        return Err(msg.clone());
    }
    let started = Instant::now();
    let counted = Phase {
        limit: plan.requests,
        deadline: plan.duration.map(|d| started + d),
        counted: true,
        started,
    };
    let out = if *stop.borrow() == Stop::Running {
        counted
            .run(lanes, &options, plan.concurrency, &stop, &counters)
            .await
    } else {
        PhaseOut::default()
    };
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let stopped_by = match &*stop.borrow() {
        Stop::Usage(msg) => return Err(msg.clone()),
        Stop::Interrupted => StopReason::Interrupted,
        Stop::Running if plan.requests.is_some_and(|n| out.tickets >= n) => StopReason::Requests,
        Stop::Running => StopReason::Duration,
    };
    let facts = RunFacts {
        started_at_ms: clock::epoch_ms(started),
        wall_ms,
        stopped_by,
        aborted_in_flight: out.aborted,
    };
    let mut samples = out.samples;
    samples.sort_by_key(|s| s.seq);
    Ok((samples, facts))
}

/// One part of the run (the warm-up or the counted part).
struct Phase {
    limit: Option<u64>,
    deadline: Option<Instant>,
    counted: bool,
    /// Time zero of the part's samples.
    started: Instant,
}

/// What a part gave.
#[derive(Default)]
struct PhaseOut {
    samples: Vec<Sample>,
    aborted: u64,
    /// Tickets taken (uploads started, or refused at the limit).
    tickets: u64,
}

impl Phase {
    async fn run(
        self,
        lanes: &Lanes,
        options: &Arc<UploadOptions>,
        concurrency: usize,
        stop: &Arc<watch::Sender<Stop>>,
        counters: &Arc<Counters>,
    ) -> PhaseOut {
        let started = self.started;
        let run_start_ms = clock::epoch_ms(started);
        let shared = Arc::new(Shared {
            next: AtomicU64::new(0),
            limit: self.limit,
            deadline: self.deadline,
            counted: self.counted,
            started,
            run_start_ms,
        });
        let workers: Vec<_> = (0..concurrency.max(1))
            .map(|i| {
                let lane = lanes.for_worker(i);
                let index = u32::try_from(i % lanes.len()).unwrap_or(u32::MAX);
                lane.handle.spawn(worker(
                    lane.client.clone(),
                    index,
                    Arc::clone(options),
                    Arc::clone(&shared),
                    Arc::clone(stop),
                    Arc::clone(counters),
                ))
            })
            .collect();
        let mut out = PhaseOut::default();
        for joined in workers {
            // A worker cannot panic short of a bug; its samples are then lost, the rest stand.
            if let Ok(w) = joined.await {
                out.samples.extend(w.samples);
                out.aborted += w.aborted;
            }
        }
        out.tickets = shared.next.load(Ordering::Relaxed);
        if let Some(limit) = self.limit {
            out.tickets = out.tickets.min(limit);
        }
        out
    }
}

/// What the workers of one part share.
struct Shared {
    next: AtomicU64,
    limit: Option<u64>,
    deadline: Option<Instant>,
    counted: bool,
    started: Instant,
    run_start_ms: f64,
}

impl Shared {
    /// Ms since the part started.
    fn since_start(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.started).as_secs_f64() * 1000.0
    }
}

/// What one worker gave.
#[derive(Default)]
struct WorkerOut {
    samples: Vec<Sample>,
    aborted: u64,
}

async fn worker(
    client: Client,
    lane: u32,
    options: Arc<UploadOptions>,
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<Stop>>,
    counters: Arc<Counters>,
) -> WorkerOut {
    let mut out = WorkerOut::default();
    let mut stopped = stop.subscribe();
    loop {
        if *stopped.borrow_and_update() != Stop::Running {
            break;
        }
        if shared.deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let seq = shared.next.fetch_add(1, Ordering::Relaxed);
        if shared.limit.is_some_and(|n| seq >= n) {
            break;
        }
        let issued = Instant::now();
        let mut task = client.upload_file((*options).clone());
        let mut aborted_by_us = false;
        let result = tokio::select! {
            res = &mut task => res,
            _ = stopped.changed() => {
                aborted_by_us = true;
                task.abort();
                task.await
            }
        };
        let done = Instant::now();
        if let Err(e) = &result {
            if is_usage_error(e.kind()) {
                let msg = e.err_msg();
                stop.send_if_modified(|s| {
                    let first = *s == Stop::Running;
                    if first {
                        *s = Stop::Usage(msg);
                    }
                    first
                });
                break;
            }
            if aborted_by_us && e.kind() == ErrorKind::Abort {
                out.aborted += u64::from(shared.counted);
                break;
            }
        }
        if !shared.counted {
            counters.warmup_done.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let (issued_ms, done_ms) = (shared.since_start(issued), shared.since_start(done));
        let mut sample = match &result {
            Ok(res) => Sample::success(seq, res, shared.run_start_ms, issued_ms, done_ms),
            Err(e) => {
                counters.failed.fetch_add(1, Ordering::Relaxed);
                Sample::failure(seq, e, issued_ms, done_ms)
            }
        };
        sample.lane = lane;
        counters.done.fetch_add(1, Ordering::Relaxed);
        out.samples.push(sample);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_are_the_ones_no_retry_changes() {
        for k in [
            ErrorKind::InvalidUrl,
            ErrorKind::FileNotFound,
            ErrorKind::InvalidHeader,
            ErrorKind::Config,
        ] {
            assert!(is_usage_error(k), "{k:?}");
        }
        for k in [
            ErrorKind::Connect,
            ErrorKind::ConnectionClosed,
            ErrorKind::Timeout,
            ErrorKind::Tls,
            ErrorKind::Abort,
        ] {
            assert!(!is_usage_error(k), "{k:?}");
        }
    }
}
