//! Per-client network quality estimator, after Chromium's `NetworkQualityEstimator` (`net/nqe`).
//!
//! It feeds the profile fields `httpRttEstimate`, `transportRttEstimate`,
//! `downstreamThroughputKbpsEstimate` and `estimate_nettype` (see `docs/profile.md`).
//!
//! # What Chromium does
//!
//! Chromium keeps one observation buffer per metric (HTTP RTT, transport RTT, downstream
//! throughput). Each buffer is a deque of at most 300 timestamped observations; when a new one
//! arrives and the buffer is full, the oldest is dropped. An estimate is a weighted percentile
//! of the buffer (`ObservationBuffer::GetPercentile`): every observation gets a weight that
//! decays with its age, `0.5^(age / half_life)` with a 60 s half-life by default (clamped to
//! `[DBL_MIN, 1]`, so an observation "from the future" weighs 1 and a very old one still
//! counts when it is alone), multiplied by a signal-strength factor. The observations are sorted
//! by value, their weights accumulated in that order, and the first value whose cumulative
//! weight reaches the desired percentile of the total weight is the answer. The estimates are
//! the 50th percentile (weighted median). Throughput observations come only from transfers of
//! at least 32 KiB, as `bits / milliseconds` (= kbit/s).
//!
//! The effective connection type (ECT) is derived from the HTTP RTT estimate with the
//! thresholds: `>= 2010 ms` slow-2g, `>= 1420 ms` 2g, `>= 272 ms` 3g, otherwise 4g; unknown when
//! there is no estimate.
//!
//! # What we keep and what we drop
//!
//! Kept: one buffer per metric, capacity 300 with oldest-dropped eviction, the age weighting
//! (same formula, same clamping to `[f64::MIN_POSITIVE, 1]`), the weighted-percentile rule
//! (including which element wins a tie, see below), the 32 KiB minimum for a throughput
//! observation, the kbit/s unit and the ECT thresholds.
//!
//! Dropped:
//!
//! - **No signal-strength weighting**: the only weight is the age weight.
//! - **No network-change reset**: Chromium clears its buffers (and restores cached estimates
//!   for the new network) when the OS reports a connection change; this estimator lives as
//!   long as its client and never resets.
//! - **No offline detection**: [`EffectiveConnectionType::Offline`] exists so the enum matches
//!   Chromium's numbers, but the estimator itself never produces it.
//! - No prior/default estimates per connection type and no estimates cached across runs:
//!   before the first observation of a metric its estimate is `None` (and the ECT unknown).
//! - No observation sources, no filtering by source, no per-host transport RTT aggregation,
//!   no clamping of the HTTP RTT by the transport RTT: the ECT reads the HTTP RTT estimate
//!   alone.
//! - No periodic recomputation or caching: [`NetworkQualityEstimator::estimate`] recomputes
//!   from the buffers each time it is called (300 entries per buffer is cheap to sort).
//!
//! Observations that are not finite, or negative, are ignored (silently: an estimator input
//! is best-effort, and a bogus sample must not poison the median). A negative zero is stored
//! as zero.
//!
//! ## Which element a weighted median returns
//!
//! With equal weights and an odd count the middle value is returned. With an even count `2k`
//! the cumulative weight first reaches 50 % of the total at the `k`-th smallest value, so the
//! **lower** of the two middle values is returned (no averaging), as in Chromium.
//!
//! # Observations in an upload client
//!
//! This module only aggregates numbers; it does not decide what one observation is. The driver
//! (the upload call) decides which moment of an upload yields an HTTP RTT observation, where
//! transport RTT samples come from (`TCP_INFO`, ...) and which response bodies count as a
//! download; that definition is documented in `docs/profile.md`, next to the profile fields.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Chromium's effective connection type enum, as the original's `estimate_nettype` number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EffectiveConnectionType {
    /// No estimate yet.
    #[default]
    Unknown = 0,
    /// Offline. Never produced by the estimator itself (no offline detection).
    Offline = 1,
    /// HTTP RTT >= 2010 ms.
    Slow2G = 2,
    /// HTTP RTT >= 1420 ms.
    Type2G = 3,
    /// HTTP RTT >= 272 ms.
    Type3G = 4,
    /// HTTP RTT < 272 ms.
    Type4G = 5,
}

impl EffectiveConnectionType {
    /// HTTP RTT threshold (ms) at or above which the connection is slow-2g.
    pub const SLOW_2G_HTTP_RTT_MS: f64 = 2010.0;
    /// HTTP RTT threshold (ms) at or above which the connection is (at best) 2g.
    pub const TYPE_2G_HTTP_RTT_MS: f64 = 1420.0;
    /// HTTP RTT threshold (ms) at or above which the connection is (at best) 3g.
    pub const TYPE_3G_HTTP_RTT_MS: f64 = 272.0;

    /// The number the original reports as `estimate_nettype` (Chromium's enum value).
    pub fn as_number(self) -> i32 {
        self as i32
    }

    /// The ECT for an HTTP RTT estimate, with Chromium's thresholds. `None` (and a value that is
    /// not finite or is negative, which no estimate can be) gives [`Self::Unknown`].
    pub fn from_http_rtt(rtt_ms: Option<f64>) -> Self {
        match rtt_ms {
            Some(rtt) if rtt.is_finite() && rtt >= 0.0 => {
                if rtt >= Self::SLOW_2G_HTTP_RTT_MS {
                    Self::Slow2G
                } else if rtt >= Self::TYPE_2G_HTTP_RTT_MS {
                    Self::Type2G
                } else if rtt >= Self::TYPE_3G_HTTP_RTT_MS {
                    Self::Type3G
                } else {
                    Self::Type4G
                }
            }
            _ => Self::Unknown,
        }
    }

    /// Chromium's name: `"unknown"`, `"offline"`, `"slow-2g"`, `"2g"`, `"3g"`, `"4g"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Offline => "offline",
            Self::Slow2G => "slow-2g",
            Self::Type2G => "2g",
            Self::Type3G => "3g",
            Self::Type4G => "4g",
        }
    }
}

/// Tuning of the estimator; [`Default`] gives Chromium's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimatorParams {
    /// Age at which an observation weighs half as much as a fresh one (60 s).
    pub half_life: Duration,
    /// Observations kept per buffer, oldest dropped first (300). A capacity of 0 is treated
    /// as 1.
    pub capacity: usize,
    /// Smallest transfer (bytes) that makes a throughput observation (32 KiB).
    pub min_throughput_bytes: u64,
}

impl Default for EstimatorParams {
    fn default() -> Self {
        Self {
            half_life: Duration::from_secs(60),
            capacity: 300,
            min_throughput_bytes: 32 * 1024,
        }
    }
}

/// One estimate snapshot (`None` = no observation yet).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct QualityEstimate {
    /// Weighted median of the HTTP RTT observations, in ms.
    pub http_rtt_ms: Option<f64>,
    /// Weighted median of the transport RTT observations, in ms.
    pub transport_rtt_ms: Option<f64>,
    /// Weighted median of the downstream throughput observations, in kbit/s.
    pub downstream_kbps: Option<f64>,
    /// ECT from `http_rtt_ms`; [`EffectiveConnectionType::Unknown`] while it is `None`.
    pub ect: EffectiveConnectionType,
}

/// One bounded buffer of timestamped observations.
#[derive(Debug, Clone)]
struct ObservationBuffer {
    observations: VecDeque<(f64, Instant)>,
    capacity: usize,
}

impl ObservationBuffer {
    fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Self {
            observations: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds an observation, dropping the oldest when full. Returns false (and stores nothing)
    /// for a value that is not finite or is negative.
    fn add(&mut self, value: f64, at: Instant) -> bool {
        if !value.is_finite() || value < 0.0 {
            return false;
        }
        if self.observations.len() == self.capacity {
            self.observations.pop_front();
        }
        // `+ 0.0` turns a negative zero into a positive one.
        self.observations.push_back((value + 0.0, at));
        true
    }

    /// Chromium's `GetPercentile`: the first value, in increasing order, whose cumulative
    /// weight reaches `percentile`% of the total weight. `scratch` is reused between calls.
    fn percentile(
        &self,
        now: Instant,
        half_life: Duration,
        percentile: f64,
        scratch: &mut Vec<(f64, f64)>,
    ) -> Option<f64> {
        scratch.clear();
        let mut total_weight = 0.0;
        for &(value, at) in &self.observations {
            let weight = age_weight(now.saturating_duration_since(at), half_life);
            total_weight += weight;
            scratch.push((value, weight));
        }
        // Stable sort: equal values keep their insertion order (irrelevant to the result).
        scratch.sort_by(|a, b| a.0.total_cmp(&b.0));

        let desired_weight = percentile / 100.0 * total_weight;
        let mut cumulative_weight = 0.0;
        for &(value, weight) in scratch.iter() {
            cumulative_weight += weight;
            if cumulative_weight >= desired_weight {
                return Some(value);
            }
        }
        // Only reachable through floating-point rounding (or an empty buffer).
        scratch.last().map(|&(value, _)| value)
    }
}

/// `0.5^(age / half_life)`, clamped to `[f64::MIN_POSITIVE, 1]` like Chromium's
/// `[DBL_MIN, 1]`. An observation "from the future" has age zero (the caller saturates), so
/// weight 1.
fn age_weight(age: Duration, half_life: Duration) -> f64 {
    if age.is_zero() {
        return 1.0;
    }
    let half_life = half_life.as_secs_f64();
    let weight = if half_life > 0.0 {
        0.5f64.powf(age.as_secs_f64() / half_life)
    } else {
        0.0
    };
    weight.clamp(f64::MIN_POSITIVE, 1.0)
}

/// Per-client network quality estimator: three observation buffers and their weighted medians.
/// A plain struct; the client wraps it in a `Mutex`.
#[derive(Debug, Clone)]
pub struct NetworkQualityEstimator {
    params: EstimatorParams,
    http_rtt: ObservationBuffer,
    transport_rtt: ObservationBuffer,
    downstream_kbps: ObservationBuffer,
    /// Observations accepted so far (all buffers, ever).
    observations: u64,
    /// The last computed estimate: when, and after how many observations.
    last: Option<(Instant, u64, QualityEstimate)>,
}

impl NetworkQualityEstimator {
    /// The percentile every estimate reads (the weighted median).
    const PERCENTILE: f64 = 50.0;

    /// An estimator with no observations.
    pub fn new(params: EstimatorParams) -> Self {
        Self {
            params,
            http_rtt: ObservationBuffer::new(params.capacity),
            transport_rtt: ObservationBuffer::new(params.capacity),
            downstream_kbps: ObservationBuffer::new(params.capacity),
            observations: 0,
            last: None,
        }
    }

    /// How often [`Self::current`] recomputes at the least (Chromium's
    /// `effective_connection_type_recomputation_interval`).
    pub const RECOMPUTE_INTERVAL: Duration = Duration::from_secs(10);

    /// The estimate as Chromium serves it: recomputed when none was made yet, when the
    /// observations have grown by half since the last computation (so the first uploads each
    /// see their own), or [`Self::RECOMPUTE_INTERVAL`] after the last one; otherwise the last
    /// one. Computing costs a weighted sort of every buffer (microseconds with full buffers),
    /// which per upload would be a large part of the profile's cost.
    pub fn current(&mut self, now: Instant) -> QualityEstimate {
        if let Some((at, count, estimate)) = self.last {
            let grown = self.observations * 2 >= count * 3;
            if !grown && now.saturating_duration_since(at) < Self::RECOMPUTE_INTERVAL {
                return estimate;
            }
        }
        let estimate = self.estimate(now);
        self.last = Some((now, self.observations, estimate));
        estimate
    }

    /// The parameters this estimator was built with.
    pub fn params(&self) -> &EstimatorParams {
        &self.params
    }

    /// An HTTP RTT observation in ms, made at `at`. Ignored when not finite or negative.
    pub fn add_http_rtt(&mut self, rtt_ms: f64, at: Instant) {
        self.observations += u64::from(self.http_rtt.add(rtt_ms, at));
    }

    /// A transport RTT observation in ms, made at `at`. Ignored when not finite or negative.
    pub fn add_transport_rtt(&mut self, rtt_ms: f64, at: Instant) {
        self.observations += u64::from(self.transport_rtt.add(rtt_ms, at));
    }

    /// A download observation: `bytes` received over `duration`; ignored (returns false) when
    /// bytes < min_throughput_bytes or duration is zero. The observation is
    /// `bytes * 8 / duration_in_ms` bits per millisecond, i.e. kbit/s.
    pub fn add_downstream(&mut self, bytes: u64, duration: Duration, at: Instant) -> bool {
        if bytes < self.params.min_throughput_bytes || duration.is_zero() {
            return false;
        }
        let millis = duration.as_secs_f64() * 1000.0;
        let kbps = bytes as f64 * 8.0 / millis;
        let added = self.downstream_kbps.add(kbps, at);
        self.observations += u64::from(added);
        added
    }

    /// The weighted medians as of `now`, and the ECT from the HTTP RTT estimate.
    pub fn estimate(&self, now: Instant) -> QualityEstimate {
        let half_life = self.params.half_life;
        let mut scratch = Vec::with_capacity(
            self.http_rtt
                .observations
                .len()
                .max(self.transport_rtt.observations.len())
                .max(self.downstream_kbps.observations.len()),
        );
        let http_rtt_ms = self
            .http_rtt
            .percentile(now, half_life, Self::PERCENTILE, &mut scratch);
        let transport_rtt_ms =
            self.transport_rtt
                .percentile(now, half_life, Self::PERCENTILE, &mut scratch);
        // Chromium reads throughput at `100 - percentile` (higher is better); at 50 it is the
        // same percentile.
        let downstream_kbps =
            self.downstream_kbps
                .percentile(now, half_life, 100.0 - Self::PERCENTILE, &mut scratch);
        QualityEstimate {
            http_rtt_ms,
            transport_rtt_ms,
            downstream_kbps,
            ect: EffectiveConnectionType::from_http_rtt(http_rtt_ms),
        }
    }
}

impl Default for NetworkQualityEstimator {
    fn default() -> Self {
        Self::new(EstimatorParams::default())
    }
}

#[cfg(test)]
mod tests;
