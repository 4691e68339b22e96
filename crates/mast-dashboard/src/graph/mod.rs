//! The service graph: nodes (workloads, services, apps) and edges with rates, errors,
//! latency and mTLS state, computed from Istio's standard metrics.
