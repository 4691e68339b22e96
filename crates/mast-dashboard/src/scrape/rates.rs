//! Per-proxy history of scraped counters and the per-second rates over the window, as
//! PromQL's `rate()` sees them without extrapolation: (newest − oldest) / elapsed, where a
//! counter that went down (the proxy restarted) counts from zero, and a series absent from
//! the oldest scrape counts from zero (it was born since).

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::parse::Sample;

/// A series: metric name and sorted labels.
pub type SeriesId = (String, Vec<(String, String)>);

/// The scrapes of one proxy within the window (oldest first).
#[derive(Debug, Default)]
pub struct History {
    points: VecDeque<(Instant, HashMap<SeriesId, f64>)>,
}

impl History {
    /// Adds a scrape taken `at`, forgetting scrapes older than `keep` before it.
    pub fn push(&mut self, at: Instant, samples: Vec<Sample>, keep: Duration) {
        let values = samples
            .into_iter()
            .filter(|s| s.value.is_finite())
            .map(|s| ((s.name, s.labels), s.value))
            .collect();
        self.points.push_back((at, values));
        while self
            .points
            .front()
            .is_some_and(|(t, _)| at.saturating_duration_since(*t) > keep)
        {
            self.points.pop_front();
        }
    }

    /// The newest scrape's raw values.
    pub fn latest(&self) -> Option<&HashMap<SeriesId, f64>> {
        self.points.back().map(|(_, v)| v)
    }

    /// The per-second rate of every series of the newest scrape over the kept scrapes;
    /// empty until there are two scrapes.
    pub fn rates(&self) -> Vec<Sample> {
        let (Some((t0, old)), Some((t1, new))) = (self.points.front(), self.points.back()) else {
            return Vec::new();
        };
        let secs = t1.saturating_duration_since(*t0).as_secs_f64();
        if secs <= 0.0 {
            return Vec::new();
        }
        new.iter()
            .map(|((name, labels), &v)| {
                let delta = match old.get(&(name.clone(), labels.clone())) {
                    Some(&o) if v >= o => v - o,
                    _ => v,
                };
                Sample {
                    name: name.clone(),
                    labels: labels.clone(),
                    value: delta / secs,
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn s(name: &str, code: &str, value: f64) -> Sample {
        Sample {
            name: name.into(),
            labels: vec![("code".into(), code.into())],
            value,
        }
    }

    fn rate(h: &History, code: &str) -> Option<f64> {
        h.rates()
            .into_iter()
            .find(|x| x.labels[0].1 == code)
            .map(|x| x.value)
    }

    #[test]
    fn rate_over_the_kept_window() {
        let t = Instant::now();
        let keep = Duration::from_secs(10);
        let mut h = History::default();
        h.push(t, vec![s("r", "200", 100.0)], keep);
        assert!(h.rates().is_empty(), "one scrape gives no rate");
        h.push(t + Duration::from_secs(5), vec![s("r", "200", 150.0)], keep);
        assert_eq!(rate(&h, "200"), Some(10.0));
        h.push(
            t + Duration::from_secs(10),
            vec![s("r", "200", 200.0)],
            keep,
        );
        assert_eq!(rate(&h, "200"), Some(10.0));
        // The first scrape leaves the window: the rate is over the last 10 s only.
        h.push(
            t + Duration::from_secs(15),
            vec![s("r", "200", 400.0)],
            keep,
        );
        assert_eq!(rate(&h, "200"), Some(25.0));
        assert_eq!(h.latest().unwrap().len(), 1);
    }

    #[test]
    fn resets_and_new_series_never_go_negative() {
        let t = Instant::now();
        let keep = Duration::from_secs(60);
        let mut h = History::default();
        h.push(t, vec![s("r", "200", 1000.0)], keep);
        // The proxy restarted: 1000 → 20, and a 503 series appeared.
        h.push(
            t + Duration::from_secs(10),
            vec![s("r", "200", 20.0), s("r", "503", 5.0)],
            keep,
        );
        assert_eq!(rate(&h, "200"), Some(2.0));
        assert_eq!(rate(&h, "503"), Some(0.5));
        assert!(h.rates().iter().all(|x| x.value >= 0.0));
    }
}
