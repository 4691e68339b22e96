//! mast-registry
