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
