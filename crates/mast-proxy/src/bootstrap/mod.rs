//! Flags and environment → the proxy's node and ports. (Being written.)
