//! The HTTP connection manager and its filters. (Being written.)
