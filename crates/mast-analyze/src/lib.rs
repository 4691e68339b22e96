//! mast-analyze
