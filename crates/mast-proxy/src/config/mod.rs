//! The xDS handler: converts resources to domain types and swaps them in. (Being written.)
