//! The only module with `unsafe` (being written).
