//! gRPC status codes by their canonical names, shared by validation (fault `grpcStatus`) and
//! translation (Envoy's numeric abort status).

/// The canonical gRPC status names, indexed by code.
pub const GRPC_STATUS_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The code of a gRPC status given by name (any case) or number.
pub fn grpc_status_code(name: &str) -> Option<u32> {
    let name = name.trim();
    if let Ok(n) = name.parse::<u32>() {
        return (n < 17).then_some(n);
    }
    let upper = name.to_ascii_uppercase();
    GRPC_STATUS_NAMES
        .iter()
        .position(|n| *n == upper)
        .and_then(|i| u32::try_from(i).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(grpc_status_code("UNAVAILABLE"), Some(14));
        assert_eq!(grpc_status_code("unauthenticated"), Some(16));
        assert_eq!(grpc_status_code("4"), Some(4));
        assert_eq!(grpc_status_code("17"), None);
        assert_eq!(grpc_status_code("NOPE"), None);
    }
}
