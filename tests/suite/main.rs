//! The library's integration tests, one module per subject, in one test binary: each binary
//! links tokio, rustls, h2, quinn and hyper, and on two cores linking many of them was most of
//! CI's build time (issue 12). Run one module with a filter, e.g.
//! `cargo test --test suite http2::`.
//!
//! All modules run in one process, on libtest's parallel threads. A test that measures the whole
//! process (its descriptors, its RSS) runs alone in a process of its own
//! ([`common::alone`]); module-level locks serialise only tests of the same module.
//!
//! Three suites stay binaries of their own, because they need what a plain machine lacks and
//! skip without it: `nginx_h2` (nginx), `quic_interop` (Python's aioquic) and `accuracy_netns`
//! (root and network namespaces).

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/h2_script.rs"]
mod h2_script;
#[path = "../common/proxies.rs"]
mod proxies;
#[path = "../common/scripted_proxy.rs"]
mod scripted_proxy;

mod accuracy;
mod bad_input;
mod byte_counters;
mod hostile_h2;
mod hostile_http1;
mod http1;
mod http2;
mod http2_failures;
mod large;
mod lifecycle;
mod load;
mod proxy_kits;
mod quic;
mod raw_server;
mod resolve_and_redirect;
mod stalled_peer;
mod through_proxies;
mod tls_verification;
#[cfg(feature = "tracing")]
mod tracing_events;
mod zero_copy;
