//! `mast-proxy`: Mast's own sidecar proxy, configured only by xDS from mastd.
//!
//! It implements exactly the part of Envoy's API that mastd emits (`docs/xds-subset.md`), with
//! Envoy's semantics, so one conformance suite (`tests/e2e`) runs against both proxies.
//!
//! How the parts fit:
//! - [`bootstrap`]: flags and environment → who the proxy is (node id, metadata) and its ports.
//! - [`xds`]: the ADS client (delta); hands each response to a [`xds::Handler`] that NACKs what
//!   it cannot use; keeps the accepted resources for `/config_dump`.
//! - [`config`]: the handler: converts resources into the domain types below, off the hot
//!   path, and swaps them in atomically.
//! - [`route`]: route tables (RDS and inline), matching and per-route decisions (pure).
//! - [`cluster`]: clusters (CDS), endpoints (EDS), load balancing, circuit breakers, outlier
//!   detection; [`upstream`]: connections and pools to endpoints.
//! - [`listener`]: listeners (LDS), filter-chain match, accept loops; [`hcm`]: the HTTP
//!   connection manager and its filters (fault, CORS, router); [`tcp`]: TCP proxy.
//! - [`admin`]: the admin (15000) and health (15021) servers.
//! - [`tls`]: downstream and upstream TLS, SDS secrets from the in-process secret manager;
//!   [`rbac`]: Envoy's RBAC filters (authorization).
//! - [`stats`]: Envoy-named counters.
//! - [`error`], [`body`], [`signals`]: small types the parts share.

pub mod admin;
pub mod body;
pub mod bootstrap;
pub mod cluster;
pub mod config;
pub mod error;
pub mod hcm;
pub mod istio_stats;
pub mod limits;
pub mod listener;
pub mod matcher;
pub mod metered;
pub mod rbac;
pub mod route;
pub mod signals;
pub mod stats;
pub mod status;
pub mod tcp;
pub mod tls;
pub mod trace;
pub mod upstream;
pub mod xds;
