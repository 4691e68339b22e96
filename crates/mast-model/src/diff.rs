//! What changed between two snapshots, so the push path sends only what it must: an
//! endpoint-only change re-sends EDS for the touched services; anything else is a full push.

use std::collections::BTreeSet;

use mast_core::Hostname;

use crate::snapshot::MeshSnapshot;

/// The kind of change between two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Nothing translation depends on changed.
    None,
    /// Only endpoints of these services changed: EDS alone needs pushing.
    EndpointsOnly(BTreeSet<Hostname>),
    /// Configuration changed: every type needs regenerating.
    Full,
}

/// Compares two snapshots.
pub fn diff(_old: &MeshSnapshot, _new: &MeshSnapshot) -> Change {
    Change::Full
}
