//! Connections and pools to upstream endpoints. (Being written.)
