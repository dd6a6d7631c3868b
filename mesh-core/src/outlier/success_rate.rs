//! Success-rate outliers over one interval's requests (Envoy's statistical mode, or a threshold).

use super::settings::{SuccessRate, SuccessRateMode};

/// The endpoints (by the position given in `candidates`) whose success rate over the interval
/// makes them outliers, worst first. Each candidate is `(position, requests, successes)`;
/// only those with at least `request_volume` requests are judged.
pub(crate) fn success_rate_outliers(
    settings: &SuccessRate,
    candidates: &[(usize, u32, u32)],
) -> Vec<usize> {
    let judged: Vec<(usize, f64)> = candidates
        .iter()
        .filter(|(_, requests, _)| *requests > 0 && *requests >= settings.request_volume)
        .map(|&(i, requests, successes)| {
            (
                i,
                100.0 * f64::from(successes.min(requests)) / f64::from(requests),
            )
        })
        .collect();
    let threshold = match settings.mode {
        SuccessRateMode::Stdev {
            minimum_hosts,
            factor,
        } => {
            if judged.is_empty() || judged.len() < minimum_hosts as usize {
                return Vec::new();
            }
            stdev_threshold(judged.iter().map(|(_, rate)| *rate), factor)
        }
        SuccessRateMode::Threshold {
            min_success_percent,
        } => f64::from(min_success_percent),
    };
    let mut outliers: Vec<(usize, f64)> = judged
        .into_iter()
        .filter(|(_, rate)| *rate < threshold)
        .collect();
    outliers.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    outliers.into_iter().map(|(i, _)| i).collect()
}

/// Envoy's ejection threshold: `mean - factor / 1000 * stdev` (population stdev) of `rates`.
pub(crate) fn stdev_threshold(rates: impl Iterator<Item = f64> + Clone, factor: u32) -> f64 {
    let (n, sum) = rates
        .clone()
        .fold((0.0, 0.0), |(n, sum), r| (n + 1.0, sum + r));
    if n == 0.0 {
        return 0.0;
    }
    let mean = sum / n;
    let variance = rates.map(|r| (r - mean) * (r - mean)).sum::<f64>() / n;
    mean - f64::from(factor) / 1000.0 * variance.sqrt()
}
