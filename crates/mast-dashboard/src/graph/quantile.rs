//! Quantiles from histogram bucket rates, as PromQL's `histogram_quantile` computes them:
//! find the bucket holding the rank, interpolate linearly inside it (the first bucket starts
//! at 0), answer the highest finite bound when the rank falls in `+Inf`, and nothing without
//! a `+Inf` bucket or observations.

/// The `q`-quantile (0..=1) of cumulative buckets `(upper bound, count or rate)`, in any
/// order; `None` when it cannot be computed.
pub fn histogram_quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    if !(0.0..=1.0).contains(&q) || buckets.len() < 2 {
        return None;
    }
    let mut b: Vec<(f64, f64)> = buckets.to_vec();
    b.sort_by(|x, y| x.0.total_cmp(&y.0));
    let last = *b.last()?;
    if last.0 != f64::INFINITY {
        return None;
    }
    // Cumulative counts can be slightly non-monotonic (rates of separately reset
    // counters): PromQL takes the running maximum.
    for i in 1..b.len() {
        if b[i].1 < b[i - 1].1 {
            b[i].1 = b[i - 1].1;
        }
    }
    let observations = b.last()?.1;
    if observations <= 0.0 {
        return None;
    }
    let mut rank = q * observations;
    let i = b.iter().position(|(_, c)| *c >= rank)?;
    if i == b.len() - 1 {
        return Some(b[b.len() - 2].0);
    }
    if i == 0 && b[0].0 <= 0.0 {
        return Some(b[0].0);
    }
    let (mut start, end, mut count) = (0.0, b[i].0, b[i].1);
    if i > 0 {
        start = b[i - 1].0;
        count -= b[i - 1].1;
        rank -= b[i - 1].1;
    }
    if count <= 0.0 {
        return Some(end);
    }
    Some(start + (end - start) * (rank / count))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INF: f64 = f64::INFINITY;

    #[test]
    fn interpolates_inside_the_bucket() {
        // 10 observations: 4 ≤ 1 ms, 8 ≤ 5 ms, 10 ≤ 10 ms.
        let b = [(1.0, 4.0), (5.0, 8.0), (10.0, 10.0), (INF, 10.0)];
        // rank 5 falls in (1, 5]: 1 + 4 × (5 − 4) / 4 = 2.
        assert_eq!(histogram_quantile(0.5, &b), Some(2.0));
        // rank 9.9 in (5, 10]: 5 + 5 × 1.9 / 2 = 9.75.
        assert!((histogram_quantile(0.99, &b).unwrap_or(0.0) - 9.75).abs() < 1e-9);
        // The first bucket starts at 0: rank 2 → 0.5.
        assert_eq!(histogram_quantile(0.2, &b), Some(0.5));
    }

    #[test]
    fn the_inf_bucket_answers_the_highest_finite_bound() {
        let b = [(INF, 10.0), (5.0, 2.0), (1.0, 1.0)];
        assert_eq!(histogram_quantile(0.99, &b), Some(5.0));
    }

    #[test]
    fn nothing_without_observations_or_an_inf_bucket() {
        assert_eq!(histogram_quantile(0.5, &[(1.0, 0.0), (INF, 0.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[(1.0, 3.0), (5.0, 4.0)]), None);
        assert_eq!(histogram_quantile(0.5, &[]), None);
        assert_eq!(histogram_quantile(1.5, &[(1.0, 3.0), (INF, 4.0)]), None);
    }

    #[test]
    fn non_monotonic_buckets_are_fixed() {
        let b = [(1.0, 4.0), (5.0, 3.0), (INF, 4.0)];
        assert_eq!(histogram_quantile(0.5, &b), Some(0.5));
    }
}
