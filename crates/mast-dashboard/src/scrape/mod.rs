//! Metrics collection: every `scrape_interval`, scrapes every connected proxy ([`proxies`])
//! or queries a real Prometheus ([`prom`]), turns the counters into per-second rates over
//! `rate_window` ([`rates`]) and series ([`istio`], [`envoy`]), and publishes one immutable
//! [`Traffic`] view through a `watch` channel that the API reads and the event stream waits
//! on.

pub mod client;
pub mod envoy;
pub mod istio;
pub mod parse;
pub mod prom;
pub mod proxies;
pub mod rates;
#[cfg(test)]
mod tests;
pub mod traffic;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::{Options, Sources};
pub use traffic::{
    HttpKey, HttpSeries, Origin, Peer, Protocol, ProxyKind, ProxyScrape, Reporter, TcpKey,
    TcpSeries, Traffic, TrafficSource,
};

/// The scraped metrics, shared with the API. Cheap to clone; the scraping task stops when
/// the last clone (and every subscriber) is dropped.
#[derive(Clone)]
pub struct Telemetry {
    rx: watch::Receiver<Arc<Traffic>>,
}

impl Telemetry {
    /// Starts scraping in the background (on the current Tokio runtime; outside one, the
    /// view stays empty).
    pub fn start(sources: &Sources, options: &Options) -> Self {
        let source = if options.prometheus.is_some() {
            TrafficSource::Prometheus
        } else {
            TrafficSource::Proxies
        };
        let window = options.rate_window.as_secs();
        let (tx, rx) = watch::channel(Arc::new(Traffic::empty(source, window)));
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(run(sources.clone(), options.clone(), tx));
            }
            Err(_) => tracing::warn!("no Tokio runtime: the dashboard will not scrape"),
        }
        Self { rx }
    }

    /// A view published by hand (tests of the API).
    pub fn fixed(traffic: Traffic) -> Self {
        let (_tx, rx) = watch::channel(Arc::new(traffic));
        Self { rx }
    }

    /// The latest view.
    pub fn current(&self) -> Arc<Traffic> {
        self.rx.borrow().clone()
    }

    /// A receiver that wakes after every scrape.
    pub fn subscribe(&self) -> watch::Receiver<Arc<Traffic>> {
        self.rx.clone()
    }
}

/// The scraping loop: one view per tick until nobody listens.
async fn run(sources: Sources, options: Options, tx: watch::Sender<Arc<Traffic>>) {
    let interval = options.scrape_interval.max(Duration::from_millis(100));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut scraper = proxies::ProxyScraper::new(options.rate_window + interval / 2);
    let client = client::HttpClient::new();
    let mut sequence = 0u64;
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = ticker.tick() => {}
        }
        sequence += 1;
        let window = options.rate_window.as_secs();
        let mut view = match &options.prometheus {
            Some(base) => {
                let mut view = Traffic::empty(TrafficSource::Prometheus, window);
                match prom::query(&client, base, options.rate_window).await {
                    Ok(samples) => (view.http, view.tcp) = istio::series(&samples),
                    Err(e) => {
                        tracing::debug!(error = %e, "Prometheus query failed");
                        view.error = Some(e);
                    }
                }
                view
            }
            None => {
                let snapshot = sources.snapshots.borrow().clone();
                let (http, tcp, proxies) = scraper.scrape(sources.xds.status(), &snapshot).await;
                Traffic {
                    http,
                    tcp,
                    proxies,
                    ..Traffic::empty(TrafficSource::Proxies, window)
                }
            }
        };
        view.sequence = sequence;
        tx.send_replace(Arc::new(view));
    }
}
