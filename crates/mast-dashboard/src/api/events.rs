//! `/api/events`: server-sent events. On connect the current `graph` and `config`; then
//! `event: graph` (data: the `/api/graph` body) after every scrape and `event: config`
//! (data: `{"generation": n}`) when the configuration store publishes a new state; a comment
//! keep-alive every 15 s.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use mast_registry::StoreState;
use tokio::sync::watch;

use super::view::View;
use crate::Dashboard;
use crate::scrape::Traffic;

/// How often an idle stream gets a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

struct Feed {
    dashboard: Dashboard,
    traffic: Option<watch::Receiver<Arc<Traffic>>>,
    store: Option<watch::Receiver<Arc<StoreState>>>,
    pending: VecDeque<Event>,
}

/// What woke the feed.
enum Wake {
    Traffic,
    Store,
    TrafficClosed,
    StoreClosed,
}

async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> bool {
    match rx {
        Some(rx) => rx.changed().await.is_ok(),
        None => std::future::pending().await,
    }
}

fn graph_event(d: &Dashboard) -> Event {
    let graph = View::of(d).graph;
    Event::default()
        .event("graph")
        .json_data(&graph)
        .unwrap_or_else(|_| Event::default().comment("graph not serialisable"))
}

fn config_event(generation: u64) -> Event {
    Event::default()
        .event("config")
        .data(format!("{{\"generation\":{generation}}}"))
}

impl Feed {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some((Ok(e), self));
            }
            if self.traffic.is_none() && self.store.is_none() {
                // Nothing more will come; keep-alives continue until the client leaves.
                std::future::pending::<()>().await;
            }
            let wake = tokio::select! {
                ok = changed(&mut self.traffic) => if ok { Wake::Traffic } else { Wake::TrafficClosed },
                ok = changed(&mut self.store) => if ok { Wake::Store } else { Wake::StoreClosed },
            };
            match wake {
                Wake::Traffic => self.pending.push_back(graph_event(&self.dashboard)),
                Wake::Store => {
                    let generation = self
                        .store
                        .as_mut()
                        .map_or(0, |rx| rx.borrow_and_update().generation);
                    self.pending.push_back(config_event(generation));
                }
                Wake::TrafficClosed => self.traffic = None,
                Wake::StoreClosed => self.store = None,
            }
        }
    }
}

/// The event stream of a dashboard.
pub fn stream(d: Dashboard) -> impl Stream<Item = Result<Event, Infallible>> {
    let mut traffic = d.telemetry().subscribe();
    let mut store = d.sources().store.subscribe();
    traffic.borrow_and_update();
    let generation = store.borrow_and_update().generation;
    let pending = VecDeque::from([graph_event(&d), config_event(generation)]);
    let feed = Feed {
        dashboard: d,
        traffic: Some(traffic),
        store: Some(store),
        pending,
    };
    futures::stream::unfold(feed, Feed::next)
}

/// `GET /api/events`.
pub async fn events(
    State(d): State<Dashboard>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    Sse::new(stream(d)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
}
