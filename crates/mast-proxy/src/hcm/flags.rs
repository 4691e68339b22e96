//! Envoy's response flags (`%RESPONSE_FLAGS%`): why a request ended the way it did, in Envoy's
//! short codes so that access logs and `response_flags` metric labels read the same on both
//! proxies.

/// A set of response flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags(u32);

macro_rules! flags {
    ($($name:ident = $bit:expr, $code:literal, $doc:literal;)*) => {
        impl Flags {
            $(#[doc = $doc] pub const $name: Flags = Flags(1 << $bit);)*
            const ALL: &'static [(Flags, &'static str)] = &[$((Flags::$name, $code)),*];
        }
    };
}

flags! {
    NO_HEALTHY_UPSTREAM = 0, "UH", "No healthy upstream host.";
    UPSTREAM_CONNECTION_FAILURE = 1, "UF", "Upstream connection failure.";
    UPSTREAM_OVERFLOW = 2, "UO", "Circuit breaker overflow.";
    NO_ROUTE_FOUND = 3, "NR", "No route (or no filter chain) matched.";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 4, "URX", "Retries exhausted.";
    NO_CLUSTER_FOUND = 5, "NC", "The route's cluster does not exist.";
    DOWNSTREAM_CONNECTION_TERMINATION = 6, "DC", "The client went away.";
    UPSTREAM_REQUEST_TIMEOUT = 7, "UT", "Route or per-try timeout.";
    UPSTREAM_CONNECTION_TERMINATION = 8, "UC", "The upstream closed the connection.";
    UPSTREAM_REMOTE_RESET = 9, "UR", "The upstream reset the stream.";
    DELAY_INJECTED = 10, "DI", "A fault delay was injected.";
    FAULT_INJECTED = 11, "FI", "A fault abort was injected.";
    LOCAL_RESET = 12, "LR", "The proxy reset the stream.";
    DNS_FAILURE = 13, "DF", "DNS resolution failed.";
    STREAM_IDLE_TIMEOUT = 14, "SI", "Stream idle timeout.";
    DOWNSTREAM_PROTOCOL_ERROR = 15, "DPE", "The client broke the protocol.";
}

impl Flags {
    /// No flag.
    pub const NONE: Flags = Flags(0);

    /// Adds `other`.
    pub fn insert(&mut self, other: Flags) {
        self.0 |= other.0;
    }

    /// Whether `other` is set.
    pub fn contains(self, other: Flags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }

    /// Whether no flag is set.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl std::fmt::Display for Flags {
    /// Envoy's form: codes joined by commas, `-` when none.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_empty() {
            return f.write_str("-");
        }
        let mut first = true;
        for (flag, code) in Self::ALL {
            if self.contains(*flag) {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(code)?;
                first = false;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn displays_envoy_codes() {
        assert_eq!(Flags::NONE.to_string(), "-");
        let mut f = Flags::UPSTREAM_OVERFLOW;
        assert_eq!(f.to_string(), "UO");
        f.insert(Flags::UPSTREAM_RETRY_LIMIT_EXCEEDED);
        assert_eq!(f.to_string(), "UO,URX");
        assert!(f.contains(Flags::UPSTREAM_OVERFLOW));
        assert!(!f.contains(Flags::NO_ROUTE_FOUND));
    }
}
