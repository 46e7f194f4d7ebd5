//! Conformance suite (placeholder until written).
