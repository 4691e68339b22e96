//! Sidecar injection: adds `istio-init` and `istio-proxy` to a workload's pod template.
