//! # uploadfile
//!
//! The mini-program API `uploadFile` (WeChat `wx.uploadFile`, Alipay `my.uploadFile`, Mpx
//! `mpx.uploadFile`) for Rust: upload a local file to a server as `multipart/form-data`, with
//! the original's options, result, `errMsg` and — the reason this crate exists — a `profile`
//! whose every timestamp is measured where the I/O happens, on a connection layer written here
//! (tokio + rustls + httparse; no high-level HTTP crate).
//!
//! ```no_run
//! # async fn demo() -> Result<(), uploadfile::UploadError> {
//! use uploadfile::{upload_file, UploadOptions};
//!
//! let task = upload_file(
//!     UploadOptions::new("https://example.com/upload", "/tmp/photo.png", "file")
//!         .form_data("user", "test"),
//! );
//! task.on_progress_update(|p| eprintln!("{}% ({} / {})", p.progress, p.total_bytes_sent, p.total_bytes_expected_to_send));
//! let res = task.await?;
//! println!("{} {}", res.status_code, res.data);
//! let profile = res.profile.unwrap();
//! println!("TLS took {:.3} ms", profile.ssl_connection_end - profile.ssl_connection_start);
//! # Ok(()) }
//! ```
//!
//! ## Layers
//!
//! Data flows down, measurements are returned up; no module imports one above it.
//!
//! - [`Client`], [`ClientBuilder`], [`UploadOptions`], [`UploadTask`], [`Callbacks`]: the API,
//!   in the original's terms ([`ClientConfig`] holds every setting).
//! - `call`: one upload: prepare, queue, the redirect loop, and each hop over HTTP/1.1 (with the
//!   stale-connection retry) or a multiplexed protocol (HTTP/2 and HTTP/3 share one send loop).
//! - `measure`: the one place an upload's timeline is written, from the stamp records the
//!   layers below return; [`Profile`] and [`ProfileExtensions`]; the [`clock`].
//! - `transport`: name resolution, TCP, TLS, QUIC, the pools (one generic pool for multiplexed
//!   connections), the h2 frame tap and the QUIC glue.
//! - [`proto`]: the sans-IO core: multipart body plan, request head, response decoder, the
//!   HTTP/1.1 exchange as a state machine, the h2 frame parser. Bytes and events in and out.
//! - `sys`: the only `unsafe`: socket options, `TCP_INFO`, TX_ACK timestamps, `sendfile`.
//!
//! ## Cargo features
//!
//! `ring` (default) or `aws-lc-rs`: the TLS crypto provider. `quic` (default): HTTP/3 for
//! `enableQuic`. `tracing` (off by default): one `tracing` span per upload and an event at each
//! phase boundary, named as the profile names it (`docs/profile.md`, "The phases in `tracing`").
//!
//! See `docs/architecture.md`, `docs/profile.md` and `docs/errors.md` in the repository.

// `unsafe` is forbidden in every module but `sys` (each `mod` below says so), and denied here.
#![deny(unsafe_code)]
#![warn(missing_docs)]

#[forbid(unsafe_code)]
mod call;
#[forbid(unsafe_code)]
mod client;
#[forbid(unsafe_code)]
mod config;
#[forbid(unsafe_code)]
pub mod dns;
#[forbid(unsafe_code)]
mod error;
#[forbid(unsafe_code)]
mod events;
#[forbid(unsafe_code)]
mod headers;
#[forbid(unsafe_code)]
mod measure;
#[forbid(unsafe_code)]
mod options;
#[forbid(unsafe_code)]
pub mod proto;
#[forbid(unsafe_code)]
pub mod proxy;
#[forbid(unsafe_code)]
mod success;
// The one place with `unsafe`: socket options and kernel interfaces tokio and socket2 lack.
#[allow(unsafe_code, dead_code)]
mod sys;
#[forbid(unsafe_code)]
mod task;
#[forbid(unsafe_code)]
mod transport;

pub use client::{
    read_pem_file, upload_file, upload_file_with_callbacks, Callbacks, Client, ClientBuilder,
};
pub use config::ClientConfig;
pub use error::{ErrorKind, UploadError};
pub use headers::ResponseHeaders;
pub use measure::clock;
pub use measure::phases;
pub use measure::{Profile, ProfileExtensions, Protocol};
pub use options::{UploadOptions, DEFAULT_TIMEOUT_MS};
/// The rustls this crate is built with, for
/// [`ClientBuilder::dangerous_certificate_verifier`]'s `ServerCertVerifier`.
pub use rustls;
pub use success::UploadSuccess;
pub use task::{HeadersReceived, ListenerId, ProgressUpdate, TaskHandle, UploadTask};

/// The README's Rust examples, compiled as doctests so they cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
