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
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    fn nqe() -> NetworkQualityEstimator {
        NetworkQualityEstimator::new(EstimatorParams::default())
    }

    #[test]
    fn current_recomputes_on_growth_or_after_the_interval() {
        let mut q = nqe();
        let t0 = Instant::now();
        q.add_http_rtt(100.0, t0);
        assert_eq!(q.current(t0).http_rtt_ms, Some(100.0));
        // 1 -> 2 observations: grown by half, recomputed ([10, 100]: 10).
        q.add_http_rtt(10.0, t0);
        assert_eq!(q.current(t0).http_rtt_ms, Some(10.0));
        // 2 -> 3: recomputed ([10, 100, 100]: 100).
        q.add_http_rtt(100.0, t0);
        assert_eq!(q.current(t0).http_rtt_ms, Some(100.0));
        // 3 -> 4 is less than half more: the last estimate is served although the exact one
        // moved ([10, 10, 100, 100]: 10).
        q.add_http_rtt(10.0, t0);
        assert_eq!(q.estimate(t0 + secs(1)).http_rtt_ms, Some(10.0));
        assert_eq!(q.current(t0 + secs(1)).http_rtt_ms, Some(100.0));
        // Ten seconds after the last computation it is recomputed.
        let later = t0 + secs(10);
        assert_eq!(q.current(later), q.estimate(later));
        assert_eq!(q.current(later).http_rtt_ms, Some(10.0));
        // 4 -> 6 observations: recomputed at once.
        q.add_http_rtt(1000.0, later);
        q.add_http_rtt(1000.0, later);
        assert_eq!(q.current(later), q.estimate(later));
    }

    #[test]
    fn defaults_are_chromiums() {
        let p = EstimatorParams::default();
        assert_eq!(p.half_life, secs(60));
        assert_eq!(p.capacity, 300);
        assert_eq!(p.min_throughput_bytes, 32768);
        assert_eq!(
            QualityEstimate::default().ect,
            EffectiveConnectionType::Unknown
        );
    }

    #[test]
    fn empty_estimator_has_no_estimates() {
        let base = Instant::now();
        let e = nqe().estimate(base);
        assert_eq!(e, QualityEstimate::default());
        assert_eq!(e.http_rtt_ms, None);
        assert_eq!(e.transport_rtt_ms, None);
        assert_eq!(e.downstream_kbps, None);
        assert_eq!(e.ect, EffectiveConnectionType::Unknown);
        assert_eq!(e.ect.as_number(), 0);
    }

    #[test]
    fn equal_age_weighted_median_is_plain_median_odd_count() {
        let base = Instant::now();
        let mut n = nqe();
        for v in [500.0, 100.0, 300.0, 200.0, 400.0] {
            n.add_http_rtt(v, base);
            n.add_transport_rtt(v / 10.0, base);
        }
        let e = n.estimate(base);
        assert_eq!(e.http_rtt_ms, Some(300.0));
        assert_eq!(e.transport_rtt_ms, Some(30.0));
        // Same ages but all older: still equal weights, still the plain median.
        let e = n.estimate(base + secs(90));
        assert_eq!(e.http_rtt_ms, Some(300.0));
    }

    #[test]
    fn equal_age_weighted_median_even_count_returns_lower_middle() {
        // 4 equal weights w: cumulative 1w, 2w reaches 50 % of 4w at the 2nd smallest value,
        // so the lower middle (200) is returned, not 250 and not 300.
        let base = Instant::now();
        let mut n = nqe();
        for v in [400.0, 100.0, 300.0, 200.0] {
            n.add_http_rtt(v, base);
        }
        assert_eq!(n.estimate(base).http_rtt_ms, Some(200.0));
        // Equal weights of 0.5 (age exactly one half-life): same answer.
        assert_eq!(n.estimate(base + secs(60)).http_rtt_ms, Some(200.0));

        let mut two = nqe();
        two.add_http_rtt(900.0, base);
        two.add_http_rtt(100.0, base);
        assert_eq!(two.estimate(base).http_rtt_ms, Some(100.0));
    }

    #[test]
    fn single_observation_is_the_estimate_at_any_age() {
        let base = Instant::now();
        let mut n = nqe();
        n.add_http_rtt(123.0, base);
        // Weight is clamped to f64::MIN_POSITIVE, never 0: a lone ancient observation counts.
        assert_eq!(n.estimate(base + secs(1_000_000)).http_rtt_ms, Some(123.0));
    }

    #[test]
    fn age_weight_halves_every_half_life() {
        let hl = secs(60);
        assert_eq!(age_weight(Duration::ZERO, hl), 1.0);
        assert_eq!(age_weight(secs(60), hl), 0.5);
        assert_eq!(age_weight(secs(120), hl), 0.25);
        assert_eq!(age_weight(secs(180), hl), 0.125);
        assert_eq!(age_weight(secs(100_000), hl), f64::MIN_POSITIVE);
        // Zero half-life: only fresh observations carry real weight.
        assert_eq!(age_weight(Duration::ZERO, Duration::ZERO), 1.0);
        assert_eq!(age_weight(secs(1), Duration::ZERO), f64::MIN_POSITIVE);
    }

    #[test]
    fn sixty_second_old_observation_weighs_exactly_half() {
        // Slow 1000 ms at age 60 s (weight 0.5) vs fast 100 ms fresh (weight 1): total 1.5,
        // 50 % = 0.75; sorted: 100 (cum 1.0 >= 0.75) -> 100.
        let base = Instant::now();
        let mut n = nqe();
        n.add_http_rtt(1000.0, base);
        n.add_http_rtt(100.0, base + secs(60));
        assert_eq!(n.estimate(base + secs(60)).http_rtt_ms, Some(100.0));

        // Reversed ages: slow fresh (1.0), fast at 60 s (0.5): 100 has cum 0.5 < 0.75,
        // 1000 reaches 1.5 -> 1000. With equal ages it would be 100 (lower middle).
        let mut r = nqe();
        r.add_http_rtt(100.0, base);
        r.add_http_rtt(1000.0, base + secs(60));
        assert_eq!(r.estimate(base + secs(60)).http_rtt_ms, Some(1000.0));

        // Exactly half: two 60 s old slow observations weigh as much as one fresh fast one.
        // Values 100 (w 1) and 1000, 1000 (w 0.5 each): total 2, 50 % = 1; 100 reaches 1.0
        // -> 100 (exact tie goes to the first value reaching 50 %).
        let mut h = nqe();
        h.add_http_rtt(1000.0, base);
        h.add_http_rtt(1000.0, base);
        h.add_http_rtt(100.0, base + secs(60));
        assert_eq!(h.estimate(base + secs(60)).http_rtt_ms, Some(100.0));
        // The old ones one second younger (59 s, weight 0.5^(59/60) > 0.5 each) outweigh it.
        let mut h2 = nqe();
        h2.add_http_rtt(1000.0, base + secs(1));
        h2.add_http_rtt(1000.0, base + secs(1));
        h2.add_http_rtt(100.0, base + secs(60));
        // Total 1 + 2 * 0.5^(59/60) > 2, and 100 alone (weight 1) is below half of it.
        assert_eq!(h2.estimate(base + secs(60)).http_rtt_ms, Some(1000.0));
    }

    #[test]
    fn old_slow_observation_shifts_median_by_its_weight() {
        // At now = base + 120 s:
        //   3000 ms observed at base        -> age 120 s -> weight 0.25
        //    250 ms observed at base + 60 s -> age  60 s -> weight 0.5
        //    200 ms observed now            -> age   0 s -> weight 1
        // Unweighted median: 250. Weighted: total 1.75, 50 % = 0.875; sorted:
        // 200 (cum 1.0 >= 0.875) -> 200.
        let base = Instant::now();
        let now = base + secs(120);
        let mut n = nqe();
        n.add_http_rtt(3000.0, base);
        n.add_http_rtt(250.0, base + secs(60));
        n.add_http_rtt(200.0, now);
        let e = n.estimate(now);
        assert_eq!(e.http_rtt_ms, Some(200.0));
        assert_eq!(e.ect, EffectiveConnectionType::Type4G);
        // Read at base + 60 s instead: 3000 weighs 0.5, 250 weighs 1, 200 is from the future
        // and weighs 1: total 2.5, 50 % = 1.25; 200 (1.0), 250 (2.0) -> 250.
        assert_eq!(n.estimate(base + secs(60)).http_rtt_ms, Some(250.0));

        // The reverse: the slow observation fresh, the fast ones 120 s old (0.25 each):
        // total 1.5, 50 % = 0.75; 200 (0.25), 250 (0.5), 3000 (1.5) -> 3000.
        let mut s = nqe();
        s.add_http_rtt(200.0, base);
        s.add_http_rtt(250.0, base);
        s.add_http_rtt(3000.0, now);
        let e = s.estimate(now);
        assert_eq!(e.http_rtt_ms, Some(3000.0));
        assert_eq!(e.ect, EffectiveConnectionType::Slow2G);
    }

    #[test]
    fn future_observations_weigh_one() {
        // An observation at base + 300 s read at base weighs 1, like a fresh one: with a
        // fresh 100 and a "future" 900, equal weights -> lower middle 100. If the future one
        // weighed 0.5^(-5) = 32 it would win (900).
        let base = Instant::now();
        let mut n = nqe();
        n.add_http_rtt(900.0, base + secs(300));
        n.add_http_rtt(100.0, base);
        n.add_http_rtt(100.0, base);
        n.add_http_rtt(900.0, base + secs(300));
        assert_eq!(n.estimate(base).http_rtt_ms, Some(100.0));
    }

    #[test]
    fn capacity_drops_the_oldest() {
        // The oldest observation is 1 ms, the next 299 are 1000 ms: 300 kept, and the
        // minimum (0th percentile) is the 1 ms one.
        let base = Instant::now();
        let mut n = nqe();
        let mut scratch = Vec::new();
        n.add_http_rtt(1.0, base);
        for _ in 0..299 {
            n.add_http_rtt(1000.0, base);
        }
        assert_eq!(n.http_rtt.observations.len(), 300);
        assert_eq!(
            n.http_rtt.percentile(base, secs(60), 0.0, &mut scratch),
            Some(1.0)
        );
        // The 301st evicts it: the minimum is now 1000.
        n.add_http_rtt(1000.0, base);
        assert_eq!(n.http_rtt.observations.len(), 300);
        assert_eq!(
            n.http_rtt.percentile(base, secs(60), 0.0, &mut scratch),
            Some(1000.0)
        );
    }

    #[test]
    fn capacity_shows_in_the_median() {
        // Small capacity, visible through the public estimate: capacity 3, values
        // 1, 2, 3 -> median 2; add 10 -> kept {2, 3, 10} -> median 3 (1 is gone).
        let base = Instant::now();
        let mut n = NetworkQualityEstimator::new(EstimatorParams {
            capacity: 3,
            ..EstimatorParams::default()
        });
        for v in [1.0, 2.0, 3.0] {
            n.add_transport_rtt(v, base);
        }
        assert_eq!(n.estimate(base).transport_rtt_ms, Some(2.0));
        n.add_transport_rtt(10.0, base);
        assert_eq!(n.estimate(base).transport_rtt_ms, Some(3.0));
        // Capacity 0 behaves as 1: only the last observation is kept.
        let mut z = NetworkQualityEstimator::new(EstimatorParams {
            capacity: 0,
            ..EstimatorParams::default()
        });
        z.add_http_rtt(5.0, base);
        z.add_http_rtt(7.0, base);
        assert_eq!(z.estimate(base).http_rtt_ms, Some(7.0));
    }

    #[test]
    fn default_capacity_301_observations_drop_the_first() {
        // Through the public estimate, equal ages: first 1000 ms, then 150 x 1 ms and
        // 150 x 1000 ms (301 observations). Kept: 150 x 1 + 150 x 1000 -> the 50 % weight is
        // reached at the last 1 ms value -> 1. Had the first 1000 been kept (151 x 1000 of
        // 301) the median would be 1000.
        let base = Instant::now();
        let mut n = nqe();
        n.add_http_rtt(1000.0, base);
        for _ in 0..150 {
            n.add_http_rtt(1.0, base);
        }
        for _ in 0..150 {
            n.add_http_rtt(1000.0, base);
        }
        assert_eq!(n.estimate(base).http_rtt_ms, Some(1.0));

        // Values 0, 1, ..., 300: the buffer holds 1..=300 in insertion order.
        let mut m = nqe();
        for i in 0..301 {
            m.add_http_rtt(f64::from(i), base);
        }
        let values: Vec<f64> = m.http_rtt.observations.iter().map(|&(v, _)| v).collect();
        assert_eq!(values.len(), 300);
        assert_eq!(values.first(), Some(&1.0));
        assert_eq!(values.last(), Some(&300.0));
    }

    #[test]
    fn ect_thresholds() {
        use EffectiveConnectionType as E;
        assert_eq!(E::from_http_rtt(Some(2010.0)), E::Slow2G);
        assert_eq!(E::from_http_rtt(Some(5000.0)), E::Slow2G);
        assert_eq!(E::from_http_rtt(Some(2009.9)), E::Type2G);
        assert_eq!(E::from_http_rtt(Some(1420.0)), E::Type2G);
        assert_eq!(E::from_http_rtt(Some(1419.9)), E::Type3G);
        assert_eq!(E::from_http_rtt(Some(272.0)), E::Type3G);
        assert_eq!(E::from_http_rtt(Some(271.9)), E::Type4G);
        assert_eq!(E::from_http_rtt(Some(0.0)), E::Type4G);
        assert_eq!(E::from_http_rtt(None), E::Unknown);
        assert_eq!(E::from_http_rtt(Some(f64::NAN)), E::Unknown);
        assert_eq!(E::from_http_rtt(Some(-1.0)), E::Unknown);
    }

    #[test]
    fn ect_numbers_and_names() {
        use EffectiveConnectionType as E;
        let all = [
            (E::Unknown, 0, "unknown"),
            (E::Offline, 1, "offline"),
            (E::Slow2G, 2, "slow-2g"),
            (E::Type2G, 3, "2g"),
            (E::Type3G, 4, "3g"),
            (E::Type4G, 5, "4g"),
        ];
        for (ect, number, name) in all {
            assert_eq!(ect.as_number(), number);
            assert_eq!(ect.name(), name);
        }
        assert_eq!(E::default(), E::Unknown);
    }

    #[test]
    fn ect_follows_the_http_rtt_estimate() {
        let base = Instant::now();
        let mut n = nqe();
        n.add_transport_rtt(5000.0, base); // transport RTT does not drive the ECT
        assert_eq!(n.estimate(base).ect, EffectiveConnectionType::Unknown);
        n.add_http_rtt(1500.0, base);
        let e = n.estimate(base);
        assert_eq!(e.ect, EffectiveConnectionType::Type2G);
        assert_eq!(e.ect.as_number(), 3);
    }

    #[test]
    fn throughput_below_min_is_ignored() {
        let base = Instant::now();
        let mut n = nqe();
        assert!(!n.add_downstream(32 * 1024 - 1, Duration::from_millis(10), base));
        assert!(!n.add_downstream(0, Duration::from_millis(10), base));
        assert!(!n.add_downstream(1 << 20, Duration::ZERO, base));
        assert_eq!(n.estimate(base).downstream_kbps, None);
        assert!(n.add_downstream(32 * 1024, Duration::from_millis(1), base));
        assert!(n.estimate(base).downstream_kbps.is_some());
    }

    #[test]
    fn throughput_is_bits_per_millisecond() {
        let base = Instant::now();
        let mut n = nqe();
        // 32768 bytes = 262144 bits over 256 ms -> 1024 bits/ms = 1024 kbit/s.
        assert!(n.add_downstream(32768, Duration::from_millis(256), base));
        assert_eq!(n.estimate(base).downstream_kbps, Some(1024.0));
        // 1_000_000 bytes over 2 s -> 8_000_000 bits / 2000 ms = 4000 kbit/s; with a
        // 100_000 bytes / 100 ms = 8000 kbit/s: {1024, 4000, 8000} -> median 4000.
        assert!(n.add_downstream(1_000_000, secs(2), base));
        assert!(n.add_downstream(100_000, Duration::from_millis(100), base));
        assert_eq!(n.estimate(base).downstream_kbps, Some(4000.0));
        // Sub-millisecond durations are fine: 40960 bytes in 500 µs -> 327680 / 0.5 ms.
        let mut m = nqe();
        assert!(m.add_downstream(40960, Duration::from_micros(500), base));
        assert_eq!(m.estimate(base).downstream_kbps, Some(655_360.0));
    }

    #[test]
    fn custom_min_throughput_bytes() {
        let base = Instant::now();
        let mut n = NetworkQualityEstimator::new(EstimatorParams {
            min_throughput_bytes: 0,
            ..EstimatorParams::default()
        });
        assert!(n.add_downstream(1, Duration::from_millis(8), base));
        assert_eq!(n.estimate(base).downstream_kbps, Some(1.0));
    }

    #[test]
    fn non_finite_and_negative_observations_are_ignored() {
        let base = Instant::now();
        let mut n = nqe();
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -0.001] {
            n.add_http_rtt(bad, base);
            n.add_transport_rtt(bad, base);
        }
        assert_eq!(n.estimate(base), QualityEstimate::default());
        // They do not dilute real observations either.
        n.add_http_rtt(50.0, base);
        n.add_http_rtt(f64::INFINITY, base);
        n.add_http_rtt(f64::NAN, base);
        assert_eq!(n.estimate(base).http_rtt_ms, Some(50.0));
        assert_eq!(n.http_rtt.observations.len(), 1);
        // Zero (including negative zero, stored as +0) is a valid observation.
        n.add_transport_rtt(-0.0, base);
        let t = n.estimate(base).transport_rtt_ms.unwrap();
        assert_eq!(t, 0.0);
        assert!(t.is_sign_positive());
    }

    #[test]
    fn buffers_are_independent() {
        let base = Instant::now();
        let mut n = nqe();
        n.add_http_rtt(300.0, base);
        n.add_transport_rtt(20.0, base);
        assert!(n.add_downstream(65536, Duration::from_millis(64), base));
        let e = n.estimate(base);
        assert_eq!(e.http_rtt_ms, Some(300.0));
        assert_eq!(e.transport_rtt_ms, Some(20.0));
        assert_eq!(e.downstream_kbps, Some(8192.0));
        assert_eq!(e.ect, EffectiveConnectionType::Type3G);
    }
}
