//! mast-test-support
