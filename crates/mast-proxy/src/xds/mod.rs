//! The ADS client (delta xDS). (Being written.)
