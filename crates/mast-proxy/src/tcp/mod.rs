//! TCP proxy. (Being written.)
