//! Value types that Istio configuration parses at load time: [`Duration`] (Go/protobuf
//! duration strings), [`Percent`] and [`StringMatch`] (exact, prefix or RE2-compatible
//! full-match regex), and the selector messages several kinds share. A malformed value
//! fails deserialization with a message naming it.

mod duration;
mod grpc;
mod percent;
mod selector;
mod string_match;

pub use duration::Duration;
pub use grpc::{GRPC_STATUS_NAMES, grpc_status_code};
pub use percent::Percent;
pub use selector::{PolicyTargetReference, PortSelector, WorkloadSelector};
pub use string_match::StringMatch;
