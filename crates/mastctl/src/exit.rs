//! istioctl's exit codes, so scripts written for istioctl work with mastctl.

/// Success.
pub const OK: i32 = 0;
/// Any other failure.
pub const UNKNOWN: i32 = 1;
/// Bad flags or arguments.
pub const USAGE: i32 = 64;
/// Some input could not be read or parsed.
pub const DATA_ERROR: i32 = 65;
/// `analyze` found issues at or above the failure threshold.
pub const ANALYZER_FOUND_ISSUES: i32 = 79;
