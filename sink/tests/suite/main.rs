//! The sink's integration tests, one module per subject, in one test binary (one link of
//! tokio, hyper, rustls and quinn instead of one per file; issue 12). Run one module with a
//! filter, e.g. `cargo test -p uploadfile-sink --test suite h3::`.
//!
//! All modules run in one process, on libtest's parallel threads: what a test installs for the
//! whole process (the panic hook of `h3`) must tell its own tests from the others.

mod common;

mod bin;
mod bounded;
mod h2;
mod h3;
mod http1;
mod knobs;
mod timing;
mod tls;
