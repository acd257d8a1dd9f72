//! The CLI's integration tests: the `uploadfile` binary run as a process against sinks started
//! in the test, one module per command group, in one test binary (one link instead of one per
//! file; issue 12). Run one module with a filter, e.g.
//! `cargo test -p uploadfile-cli --test suite bench::`.

mod common;
#[path = "../../../tests/common/proxies.rs"]
mod proxies;

mod bench;
mod call;
mod cli;
mod proxy_env;
mod serve_flat;
