//! uploadfile: the mini-program `uploadFile` API for Rust (work in progress).
pub mod proto;
