//! The mesh model: an immutable [`MeshSnapshot`] of everything translation needs — services
//! with their ports and endpoints, and the Istio configuration indexed by host, namespace
//! and selector — plus [`ProxyNode`], the proxy a configuration is generated for, and the
//! [`diff`] that says what a change touches.
//!
//! Pure: no I/O, no clocks. A snapshot is built from validated resources (the registry
//! leaves invalid ones out) and never mutated; a change builds a new one.

pub mod diff;
pub mod gateway_api;
pub mod proxy;
pub mod service;
pub mod snapshot;

pub use diff::{Change, diff};
pub use proxy::{CaptureMode, NodeType, ProxyNode, ProxyNodeError};
pub use service::{Endpoint, Protocol, Resolution, Service, ServicePort};
pub use snapshot::{
    Config, InboundPort, MeshSnapshot, OutboundPolicy, SnapshotOptions, TraceCollector,
    TracingOptions,
};
