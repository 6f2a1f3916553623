//! Latency distributions: sort the samples, then take nearest-rank percentiles.
//!
//! Nearest rank (the textbook definition): the p-th percentile of n sorted samples is the
//! sample at 1-based rank ⌈p/100 · n⌉ (rank 1 for p = 0). It is always an observed value, never
//! an interpolation, so `min ≤ p50 ≤ p90 ≤ p99 ≤ p99.9 ≤ max` holds by construction.
//!
//! ```text
//! samples 10 20 30 40  ->  p50 = 20 (rank 2), p90 = 40 (rank ⌈3.6⌉ = 4)
//! ```

use serde::Serialize;

/// The distribution of one set of samples, in the samples' unit (ns here).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// How many samples.
    pub samples: usize,
    /// Smallest.
    pub min_ns: u64,
    /// Median (nearest rank).
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Largest.
    pub max_ns: u64,
}

/// The nearest-rank `p`-th percentile (0 ≤ p ≤ 100) of `sorted` (ascending); `None` if empty.
pub fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    // Integer per-mille arithmetic avoids float rounding at exact ranks (p90 of 10 is rank 9).
    let per_100k = (p * 1000.0).round() as u128;
    let rank = (per_100k * n as u128).div_ceil(100_000).max(1);
    let index = usize::try_from(rank - 1).unwrap_or(n - 1).min(n - 1);
    sorted.get(index).copied()
}

/// Sort `samples` in place and summarise them; `None` if there are none.
pub fn summarize(samples: &mut [u64]) -> Option<Summary> {
    samples.sort_unstable();
    let at = |p| percentile(samples, p);
    Some(Summary {
        samples: samples.len(),
        min_ns: *samples.first()?,
        p50_ns: at(50.0)?,
        p90_ns: at(90.0)?,
        p99_ns: at(99.0)?,
        p999_ns: at(99.9)?,
        max_ns: *samples.last()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_has_no_percentiles() {
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(summarize(&mut []), None);
    }

    #[test]
    fn single_sample_is_every_percentile() {
        let s = summarize(&mut [7]).unwrap_or_else(|| panic!("one sample"));
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p999_ns, s.max_ns, s.samples),
            (7, 7, 7, 7, 1)
        );
    }

    #[test]
    fn nearest_rank_on_small_sets() {
        let v = [10, 20, 30, 40];
        assert_eq!(percentile(&v, 0.0), Some(10));
        assert_eq!(percentile(&v, 25.0), Some(10));
        assert_eq!(percentile(&v, 50.0), Some(20));
        assert_eq!(percentile(&v, 51.0), Some(30));
        assert_eq!(percentile(&v, 90.0), Some(40));
        assert_eq!(percentile(&v, 100.0), Some(40));
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(
            percentile(&ten, 90.0),
            Some(9),
            "exact rank, no float drift"
        );
        assert_eq!(percentile(&ten, 99.9), Some(10));
    }

    #[test]
    fn thousand_samples() {
        let mut v: Vec<u64> = (1..=1000).rev().collect();
        let s = summarize(&mut v).unwrap_or_else(|| panic!("samples"));
        assert_eq!(
            (s.min_ns, s.p50_ns, s.p90_ns, s.p99_ns, s.p999_ns, s.max_ns),
            (1, 500, 900, 990, 999, 1000)
        );
    }

    #[test]
    fn percentiles_are_ordered() {
        let mut v: Vec<u64> = (0..997u64).map(|i| (i * 7919) % 1009).collect();
        let s = summarize(&mut v).unwrap_or_else(|| panic!("samples"));
        assert!(s.min_ns <= s.p50_ns && s.p50_ns <= s.p90_ns && s.p90_ns <= s.p99_ns);
        assert!(s.p99_ns <= s.p999_ns && s.p999_ns <= s.max_ns);
    }
}
