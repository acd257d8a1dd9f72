//! Measurement as data: the stamp records the layers below return, the one place they are folded
//! into an upload's timeline, and the result types built from it.
//!
//! # Why a module of its own
//!
//! The profile is this crate's reason to exist, and a profile is only as good as the agreement
//! between where a stamp is taken and what the field is said to mean. So the two are kept
//! apart and both easy to find:
//!
//! - **Taken where the I/O happens.** Transport and the exchanges stamp immediately around the
//!   system call or handshake step that a field names, and *return* what they measured
//!   ([`ResolveStamps`], [`ConnectStamps`], [`ExchangeReport`] with its [`ExchangeStamps`]). They
//!   never see the upload's timeline. Data flows down (what to send), measurements flow up.
//! - **Folded in one place.** [`UploadRecord`] is the only writer of the [`Timeline`](timeline)
//!   and the only code that decides what a missing stamp means (a reused connection's connect
//!   fields equal `fetchStart`, plain HTTP's SSL fields are 0, ...). `call` tells it what
//!   happened, in order; at the end it builds [`Profile`] and [`ProfileExtensions`].
//! - **Named as the profile names them.** `ssl_connection_start` is `SSLconnectionStart`,
//!   `request_end` is `requestEnd`: searching for a field in either spelling lands where it is
//!   stamped and where it is folded.
//!
//! Also here, because they only read measurements: the project's one [`clock`], the network
//! quality estimator ([`quality`]), both pure functions of the instants they are given, and the
//! one phase model ([`phases`]) that turns a finished profile into the spans the CLI draws.
//! With the cargo feature `tracing`, the record also reports each fold as it happens, as a
//! `tracing` event in the upload's span (`trace.rs`: the one place that knows `tracing`).

pub mod clock;
pub mod phases;
pub(crate) mod profile;
// Chromium's estimator is kept whole (every connection type, its parameters), as before.
#[allow(dead_code)]
pub(crate) mod quality;
mod record;
pub(crate) mod stamps;
mod timeline;
mod trace;

pub use profile::{Profile, ProfileExtensions, Protocol};
pub(crate) use record::UploadRecord;
pub(crate) use stamps::{
    AckSource, BodyTransfer, ConnectStamps, ConnectionInfo, ConnectionUse, DnsSource,
    ExchangeReport, ExchangeStamps, ProxyFacts, ProxyStamps, ResolveStamps, StreamStamps,
};
// Without the `quic` feature only the "QUIC unavailable" report is made.
#[cfg_attr(not(feature = "quic"), allow(unused_imports))]
pub(crate) use stamps::{AttemptOutcome, HeadStartBasis, RaceReason, RaceReport, RaceWinner};
pub(crate) use trace::UploadTrace;
