//! istio-iptables' traffic capture rules: flags, the generated nat table, apply and cleanup.
