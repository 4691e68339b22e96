//! Tests of the upstream module.
