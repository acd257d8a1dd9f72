//! Exact order statistics of a set of durations.
//!
//! A load test is read by its tail (p99, max), and the tail of a few thousand samples is a few
//! dozen values: an estimating sketch (HDR histogram buckets, t-digest) would blur exactly what
//! is being looked at. Every sample is therefore kept and sorted, and a percentile is the
//! **nearest-rank** value: the smallest sample such that at least p % of the samples are less
//! than or equal to it (rank ⌈p/100 · N⌉, 1-based). It is always a value that was measured, never
//! an interpolation between two, and p50 ≤ p90 ≤ p99 ≤ max holds by construction. The rank is
//! computed in integers, so `p99` of 100 samples is the 99th, not the 100th through a rounding of
//! `0.99 * 100.0`.

/// The order statistics of one set of samples (milliseconds in this crate's use).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// How many samples there were (at least one).
    pub count: usize,
    /// The smallest sample.
    pub min: f64,
    /// The arithmetic mean.
    pub mean: f64,
    /// Nearest-rank 50th percentile (the median).
    pub p50: f64,
    /// Nearest-rank 90th percentile.
    pub p90: f64,
    /// Nearest-rank 99th percentile.
    pub p99: f64,
    /// The largest sample.
    pub max: f64,
}

impl Summary {
    /// The statistics of `samples` (any order; non-finite values are left out), or `None` when
    /// no finite sample is left.
    pub fn of(mut samples: Vec<f64>) -> Option<Summary> {
        samples.retain(|v| v.is_finite());
        samples.sort_by(f64::total_cmp);
        let count = samples.len();
        let (&min, &max) = (samples.first()?, samples.last()?);
        let mean = samples.iter().sum::<f64>() / count as f64;
        Some(Summary {
            count,
            min,
            mean,
            p50: nearest_rank(&samples, 50)?,
            p90: nearest_rank(&samples, 90)?,
            p99: nearest_rank(&samples, 99)?,
            max,
        })
    }
}

/// The nearest-rank `percent`-th percentile of `sorted` (ascending): the value at the 1-based
/// rank ⌈percent · N / 100⌉, with `percent` 0 giving the minimum and anything above 100 the
/// maximum. `None` for an empty slice.
pub fn nearest_rank(sorted: &[f64], percent: u32) -> Option<f64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let percent = u128::from(percent.min(100));
    // ⌈percent · n / 100⌉ in integers; at least rank 1.
    let rank = (percent * n as u128).div_ceil(100).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(n - 1).min(n - 1);
    sorted.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_to(n: usize) -> Vec<f64> {
        (1..=n).map(|i| i as f64).collect()
    }

    #[test]
    fn nearest_rank_of_one_to_a_hundred_is_the_rank_itself() {
        let v = one_to(100);
        assert_eq!(nearest_rank(&v, 50), Some(50.0));
        assert_eq!(nearest_rank(&v, 90), Some(90.0));
        assert_eq!(nearest_rank(&v, 99), Some(99.0));
        assert_eq!(nearest_rank(&v, 100), Some(100.0));
        assert_eq!(nearest_rank(&v, 0), Some(1.0));
        assert_eq!(nearest_rank(&v, 250), Some(100.0));
    }

    #[test]
    fn nearest_rank_rounds_the_rank_up() {
        // 10 samples: p50 -> rank 5, p90 -> rank 9, p99 -> rank ceil(9.9) = 10.
        let v = one_to(10);
        assert_eq!(nearest_rank(&v, 50), Some(5.0));
        assert_eq!(nearest_rank(&v, 90), Some(9.0));
        assert_eq!(nearest_rank(&v, 99), Some(10.0));
        // 3 samples: p50 -> rank ceil(1.5) = 2.
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 50), Some(2.0));
        // 1000 samples: p99 -> rank 990, p90 -> 900.
        let v = one_to(1000);
        assert_eq!(nearest_rank(&v, 99), Some(990.0));
        assert_eq!(nearest_rank(&v, 90), Some(900.0));
        // 101 samples: p99 -> rank ceil(99.99) = 100.
        assert_eq!(nearest_rank(&one_to(101), 99), Some(100.0));
    }

    #[test]
    fn nearest_rank_of_nothing_and_of_one() {
        assert_eq!(nearest_rank(&[], 50), None);
        for p in [0, 1, 50, 99, 100] {
            assert_eq!(nearest_rank(&[7.5], p), Some(7.5));
        }
    }

    #[test]
    fn summary_sorts_and_orders() {
        let s = Summary::of(vec![5.0, 1.0, 4.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.count, 5);
        assert_eq!((s.min, s.max), (1.0, 5.0));
        assert_eq!(s.mean, 3.0);
        assert_eq!(s.p50, 3.0);
        assert_eq!(s.p90, 5.0);
        assert_eq!(s.p99, 5.0);
    }

    #[test]
    fn summary_is_ordered_for_any_input() {
        // A deterministic pseudo-random spread with a long tail and duplicates.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for n in [1usize, 2, 3, 7, 99, 100, 101, 1234] {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let r = (x % 10_000) as f64 / 1000.0;
                    r * r * r
                })
                .collect();
            let s = Summary::of(v).unwrap();
            assert!(s.min <= s.p50 && s.p50 <= s.p90, "{s:?}");
            assert!(s.p90 <= s.p99 && s.p99 <= s.max, "{s:?}");
            assert!(s.min <= s.mean && s.mean <= s.max, "{s:?}");
        }
    }

    #[test]
    fn summary_leaves_out_non_finite_values() {
        assert_eq!(Summary::of(vec![]), None);
        assert_eq!(Summary::of(vec![f64::NAN, f64::INFINITY]), None);
        let s = Summary::of(vec![f64::NAN, 2.0, f64::NEG_INFINITY, 1.0]).unwrap();
        assert_eq!((s.count, s.min, s.max), (2, 1.0, 2.0));
    }

    #[test]
    fn negative_durations_are_kept() {
        // The phase model never yields a negative span, but the statistics do not rely on it:
        // a negative duration is kept, and sorts first.
        let s = Summary::of(vec![0.5, -1.25, 3.0]).unwrap();
        assert_eq!(s.min, -1.25);
        assert_eq!(s.p50, 0.5);
    }
}
